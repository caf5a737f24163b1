/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prometheus metrics: the registry and the text exposition (format 0.0.4).
 *
 * Counters and histograms are kept per board key, in one sorted array of
 * at most max_keys entries; once it is full, further keys share the series
 * key="_other", so a peer that asks for endless made-up keys cannot grow
 * the registry or the scrape without bound.  Every series of a key is
 * written from the moment the key is first seen (zeros included), so
 * rate() and "== 0" alerts work from the first scrape.
 *
 * A lease counts once, by its final outcome.  A lease on an agent's board
 * whose session was relayed is classified by the agent's report, which
 * may come before or after the relay ends: such a lease is parked from
 * pair-up (metrics_lease_relayed) until both the broker's end and the
 * report are in, then counted with the report's outcome.  If no report
 * comes within METRICS_REPORT_GRACE_S of the broker's end (the agent died
 * with the session), the broker's view is counted, and a report that comes
 * later still is ignored here (the ledger takes it, as always).
 */
#include "config.h"

#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include <npufarm/outcome.h>

#include "ledger.h"
#include "scheduler.h"
#include "server.h"
#include "tracker.h"

/* How long a relayed agent lease waits for its agent's report. */
#define METRICS_REPORT_GRACE_S 30
/* The shared series of keys beyond the registry's limit. */
#define METRICS_OTHER_KEY      "_other"
/* Lease outcome label index for "not observed" (a board registered again
 * after a session the broker did not relay). */
#define METRICS_UNKNOWN        NPUFARM_OUTCOME_MAX

/* Board states as the ledger and the API name them. */
static const char *const board_states[] = {
    "idle", "leased", "busy", "draining", "quarantined", "offline"};
#define NSTATES (sizeof(board_states) / sizeof(board_states[0]))

struct metrics_key {
	char *key;
	uint64_t leases[NPUFARM_OUTCOME_MAX + 1]; /* by outcome, + unknown */
	uint64_t tasks[NPUFARM_OUTCOME_MAX];
	struct hist queue_wait;
	struct hist session;
	struct hist task_run;
};

/* A relayed lease, from its pair-up until it is counted. */
struct relayed {
	int64_t lease_id;
	int64_t board_id;        /* an agent's board, or 0 */
	char *session;           /* the agent's session id, or NULL */
	struct metrics_key *key; /* borrowed from the registry */
	int64_t start_us;        /* pair-up, monotonic */
	bool ended;              /* the broker's end is in: in m->awaiting */
	int outcome;             /* ... and its outcome index */
	int64_t ended_us;        /* monotonic */
	int reported;            /* the agent's outcome, or -1 */
	TAILQ_ENTRY(relayed) link;
};

struct metrics {
	struct metrics_key **keys; /* sorted by key */
	size_t nkeys, cap, max_keys;
	struct metrics_key *other; /* keys beyond max_keys, or NULL */
	void *by_lease;            /* tsearch of struct relayed by lease id */
	void *by_session;          /* ... of agent ones by board and session */
	TAILQ_HEAD(, relayed)
	awaiting; /* ended, waiting for a report,
		   * oldest first */
	uint64_t relay_to_board, relay_to_client; /* bytes */
	uint64_t agent_connects;
	int64_t grace_us; /* METRICS_REPORT_GRACE_S, or a test's */
};

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- registry ------------------------------------------------------- */

static struct metrics_key *
key_new(const char *key)
{
	struct metrics_key *k = calloc(1, sizeof(*k));

	if (k == NULL || (k->key = strdup(key)) == NULL) {
		free(k);
		return NULL;
	}
	hist_init(&k->queue_wait, HIST_SCALE_SESSION);
	hist_init(&k->session, HIST_SCALE_SESSION);
	hist_init(&k->task_run, HIST_SCALE_SESSION);
	return k;
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(
	    *(const char *const *)a, (*(struct metrics_key *const *)b)->key);
}

/*
 * The series of @key, created on first use; past max_keys, the shared
 * METRICS_OTHER_KEY series.  NULL only when out of memory (the sample is
 * then dropped: metrics never fail the work they count).
 */
static struct metrics_key *
key_get(struct metrics *m, const char *key)
{
	struct metrics_key **found, *k, **grown;
	size_t lo = 0, hi = m->nkeys, mid;

	if (key == NULL)
		key = "";
	/* bsearch() wants a non-null base even for no elements. */
	found = m->nkeys > 0 ? bsearch(&key, m->keys, m->nkeys,
				   sizeof(*m->keys), key_cmp)
			     : NULL;
	if (found != NULL)
		return *found;
	if (m->nkeys >= m->max_keys) {
		if (m->other == NULL)
			m->other = key_new(METRICS_OTHER_KEY);
		return m->other;
	}
	if (m->nkeys == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 16;

		grown = realloc(m->keys, cap * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		m->keys = grown;
		m->cap = cap;
	}
	k = key_new(key);
	if (k == NULL)
		return NULL;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(m->keys[mid]->key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(
	    m->keys + lo + 1, m->keys + lo, (m->nkeys - lo) * sizeof(*m->keys));
	m->keys[lo] = k;
	m->nkeys++;
	return k;
}

static void
key_free(struct metrics_key *k)
{
	if (k == NULL)
		return;
	free(k->key);
	free(k);
}

/*
 * An empty registry holding at most @max_keys keys (0: no limit beyond
 * memory).  0 or -ENOMEM.
 */
int
metrics_new(size_t max_keys, struct metrics **ret_metrics)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return -ENOMEM;
	m->max_keys = max_keys ? max_keys : SIZE_MAX;
	TAILQ_INIT(&m->awaiting);
	m->grace_us = METRICS_REPORT_GRACE_S * 1000000LL;
	*ret_metrics = m;
	return 0;
}

/* How long relayed agent leases wait for their report (tests). */
void
metrics_set_report_grace(struct metrics *m, double seconds)
{
	m->grace_us = (int64_t)(seconds * 1e6);
}

static void
relayed_free(void *p)
{
	struct relayed *r = p;

	free(r->session);
	free(r);
}

static void
noop_free(void *p)
{
	(void)p;
}

/* Free @m and everything it counts.  Accepts NULL; returns NULL. */
struct metrics *
metrics_free(struct metrics *m)
{
	size_t i;

	if (m == NULL)
		return NULL;
	tdestroy(m->by_session, noop_free);
	tdestroy(m->by_lease, relayed_free);
	for (i = 0; i < m->nkeys; i++)
		key_free(m->keys[i]);
	key_free(m->other);
	free(m->keys);
	free(m);
	return NULL;
}

static int
outcome_index(const char *outcome)
{
	int o = outcome != NULL ? npufarm_outcome_from_name(outcome) : -1;

	return o < 0 ? METRICS_UNKNOWN : o;
}

/* ---- leases and their relayed sessions ------------------------------ */

static int
lease_cmp(const void *a, const void *b)
{
	const struct relayed *x = a, *y = b;

	return (x->lease_id > y->lease_id) - (x->lease_id < y->lease_id);
}

static int
session_cmp(const void *a, const void *b)
{
	const struct relayed *x = a, *y = b;

	if (x->board_id != y->board_id)
		return (x->board_id > y->board_id) -
		       (x->board_id < y->board_id);
	return strcmp(x->session, y->session);
}

static void
relayed_drop(struct metrics *m, struct relayed *r)
{
	if (r->ended)
		TAILQ_REMOVE(&m->awaiting, r, link);
	if (r->session != NULL) {
		struct relayed **found = tfind(r, &m->by_session, session_cmp);

		if (found != NULL && *found == r)
			(void)tdelete(r, &m->by_session, session_cmp);
	}
	(void)tdelete(r, &m->by_lease, lease_cmp);
	relayed_free(r);
}

/* Count the relayed leases whose report did not come in time. */
static void
expire(struct metrics *m, int64_t now)
{
	struct relayed *r;

	while ((r = TAILQ_FIRST(&m->awaiting)) != NULL &&
	       now - r->ended_us >= m->grace_us) {
		r->key->leases[r->outcome]++;
		relayed_drop(m, r);
	}
}

/*
 * Lease @lease_id of @key was paired with a client and its session is
 * relayed from now on; on an agent's board @board_id (else 0) under the
 * agent's session id @session (copied; NULL for other boards).  Its
 * session time runs from here to metrics_lease_end().
 */
void
metrics_lease_relayed(struct metrics *m, int64_t lease_id, const char *key,
    int64_t board_id, const char *session)
{
	struct relayed *r, **found;

	if (lease_id == 0)
		return; /* not tracked (out of memory at the grant) */
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return;
	r->lease_id = lease_id;
	r->board_id = board_id;
	r->key = key_get(m, key);
	r->start_us = mono_us();
	r->reported = -1;
	if (session != NULL && board_id != 0)
		r->session = strdup(session);
	if (r->key == NULL ||
	    (session != NULL && board_id != 0 && r->session == NULL)) {
		relayed_free(r);
		return;
	}
	found = tsearch(r, &m->by_lease, lease_cmp);
	if (found == NULL || *found != r) {
		relayed_free(r); /* out of memory, or relayed twice */
		return;
	}
	if (r->session != NULL) {
		found = tsearch(r, &m->by_session, session_cmp);
		if (found == NULL || *found != r) {
			/* Not findable by its report: the broker's view. */
			free(r->session);
			r->session = NULL;
		}
	}
}

/*
 * Lease @lease_id of @key (0: a request that ended without a board) is
 * over for the broker, as @outcome (NULL: not observed).  Counted now, or
 * for a relayed session on an agent's board, when its agent's report is
 * in (see the file comment).
 */
void
metrics_lease_end(
    struct metrics *m, int64_t lease_id, const char *key, const char *outcome)
{
	struct relayed probe = {.lease_id = lease_id}, **found = NULL, *r;
	struct metrics_key *k;
	int64_t now = mono_us();

	if (lease_id != 0)
		found = tfind(&probe, &m->by_lease, lease_cmp);
	if (found == NULL) {
		k = key_get(m, key);
		if (k != NULL)
			k->leases[outcome_index(outcome)]++;
		expire(m, now);
		return;
	}
	r = *found;
	hist_observe(&r->key->session, (double)(now - r->start_us) / 1e6);
	if (r->session == NULL || r->reported >= 0) {
		r->key->leases[r->session == NULL ? outcome_index(outcome)
						  : r->reported]++;
		relayed_drop(m, r);
	} else {
		r->ended = true;
		r->outcome = outcome_index(outcome);
		r->ended_us = now;
		TAILQ_INSERT_TAIL(&m->awaiting, r, link);
	}
	expire(m, now);
}

/*
 * Agent board @board_id reported how its session @session ended
 * (@outcome).  It classifies the session's lease; a resend, or a report
 * of a lease this process did not relay or already counted, is ignored.
 */
void
metrics_agent_report(struct metrics *m, int64_t board_id, const char *session,
    const char *outcome)
{
	struct relayed probe = {.board_id = board_id}, **found, *r;

	probe.session = (char *)session;
	found = tfind(&probe, &m->by_session, session_cmp);
	if (found == NULL)
		return;
	r = *found;
	if (r->reported >= 0)
		return; /* a resend: the first report stands */
	r->reported = outcome_index(outcome);
	if (r->ended) {
		r->key->leases[r->reported]++;
		relayed_drop(m, r);
	}
}

/* A request or task of @key waited @seconds in the queue for its board. */
void
metrics_queue_wait(struct metrics *m, const char *key, double seconds)
{
	struct metrics_key *k = key_get(m, key);

	if (k != NULL)
		hist_observe(&k->queue_wait, seconds);
}

/* A task of @key ended for good as @outcome. */
void
metrics_task_end(struct metrics *m, const char *key, const char *outcome)
{
	struct metrics_key *k = key_get(m, key);
	int o = outcome_index(outcome);

	if (k != NULL && o < NPUFARM_OUTCOME_MAX)
		k->tasks[o]++;
}

/* An attempt of a task of @key ran @seconds on its board. */
void
metrics_task_run(struct metrics *m, const char *key, double seconds)
{
	struct metrics_key *k = key_get(m, key);

	if (k != NULL)
		hist_observe(&k->task_run, seconds);
}

/* A relayed session moved these bytes. */
void
metrics_relay_bytes(struct metrics *m, uint64_t to_board, uint64_t to_client)
{
	m->relay_to_board += to_board;
	m->relay_to_client += to_client;
}

/* An agent's link was welcomed. */
void
metrics_agent_connect(struct metrics *m)
{
	m->agent_connects++;
}

/* ---- exposition ----------------------------------------------------- */

/*
 * Append @v as the inside of a quoted label value: backslash, double quote
 * and line feed escaped as the text format requires.  0 or -ENOMEM.
 */
int
metrics_add_label_value(struct evbuffer *out, const char *v)
{
	const char *p = v;
	size_t n;
	int r = 0;

	while (r == 0 && *p != '\0') {
		n = strcspn(p, "\\\"\n");
		if (n > 0)
			r = evbuffer_add(out, p, n);
		p += n;
		if (r == 0 && *p != '\0') {
			r = evbuffer_add(out,
			    *p == '\\'  ? "\\\\"
			    : *p == '"' ? "\\\""
					: "\\n",
			    2);
			p++;
		}
	}
	return r < 0 ? -ENOMEM : 0;
}

static int
add_header(
    struct evbuffer *out, const char *name, const char *type, const char *help)
{
	return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name,
		   help, name, type) < 0
		   ? -ENOMEM
		   : 0;
}

/* `{key="K"` with K escaped, no closing brace. */
static int
add_key_label(struct evbuffer *out, const char *key)
{
	if (evbuffer_add(out, "{key=\"", 6) < 0 ||
	    metrics_add_label_value(out, key) < 0 ||
	    evbuffer_add(out, "\"", 1) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * Append the samples of histogram @h as @name: cumulative _bucket lines
 * ending in le="+Inf", then _sum and _count.  @labels is the inside of
 * the label set without braces, already escaped ("" for none).  No HELP or
 * TYPE lines.  0 or -ENOMEM.
 */
int
metrics_add_hist(struct evbuffer *out, const char *name, const char *labels,
    const struct hist *h)
{
	const char *sep = labels[0] != '\0' ? "," : "";
	uint64_t cum = 0;
	size_t i;
	int r = 0;

	for (i = 0; r >= 0 && i <= h->nbounds; i++) {
		cum += h->buckets[i];
		if (i < h->nbounds)
			r = evbuffer_add_printf(out,
			    "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels,
			    sep, h->bounds[i], (unsigned long long)cum);
		else
			r = evbuffer_add_printf(out,
			    "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
			    sep, (unsigned long long)cum);
	}
	if (r >= 0)
		r = evbuffer_add_printf(out, "%s_sum%s%s%s %.9g\n", name,
		    labels[0] ? "{" : "", labels, labels[0] ? "}" : "", h->sum);
	if (r >= 0)
		r = evbuffer_add_printf(out, "%s_count%s%s%s %llu\n", name,
		    labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
		    (unsigned long long)h->count);
	return r < 0 ? -ENOMEM : 0;
}

/* The keys of the registry in order, "_other" last; NULL past the end. */
static struct metrics_key *
key_at(const struct metrics *m, size_t i)
{
	if (i < m->nkeys)
		return m->keys[i];
	return i == m->nkeys ? m->other : NULL;
}

static int
write_counters(struct metrics *m, struct evbuffer *out, bool tasks)
{
	const char *name =
	    tasks ? "npufarm_tasks_total" : "npufarm_leases_total";
	struct metrics_key *k;
	size_t i;
	int o, n = tasks ? NPUFARM_OUTCOME_MAX : NPUFARM_OUTCOME_MAX + 1;
	int r;

	r = add_header(out, name, "counter",
	    tasks ? "Native tasks that ended for good, by key and outcome."
		  : "TVM leases and requests that ended, by key and final "
		    "outcome (unknown: a session the broker did not relay).");
	for (i = 0; r >= 0 && (k = key_at(m, i)) != NULL; i++)
		for (o = 0; r >= 0 && o < n; o++) {
			r = evbuffer_add_printf(out, "%s", name);
			if (r >= 0)
				r = add_key_label(out, k->key);
			if (r >= 0)
				r = evbuffer_add_printf(out,
				    ",outcome=\"%s\"} %llu\n",
				    o == METRICS_UNKNOWN
					? "unknown"
					: npufarm_outcome_name(
					      (enum npufarm_outcome)o),
				    (unsigned long long)(tasks ? k->tasks[o]
							       : k->leases[o]));
		}
	return r < 0 ? -ENOMEM : 0;
}

/* `key="K"` with K escaped, for metrics_add_hist(); NULL on OOM. */
static char *
key_labels(const char *key)
{
	char *s = malloc(2 * strlen(key) + sizeof("key=\"\""));
	char *p = s;

	if (s == NULL)
		return NULL;
	p += sprintf(p, "key=\"");
	for (; *key != '\0'; key++) {
		if (*key == '\\' || *key == '"' || *key == '\n')
			*p++ = '\\';
		*p++ = *key == '\n' ? 'n' : *key;
	}
	strcpy(p, "\"");
	return s;
}

enum key_hist {
	HIST_QUEUE_WAIT,
	HIST_SESSION,
	HIST_TASK_RUN,
};

static int
write_hists(struct metrics *m, struct evbuffer *out, const char *name,
    const char *help, enum key_hist which)
{
	struct metrics_key *k;
	char *labels;
	size_t i;
	int r;

	r = add_header(out, name, "histogram", help);
	for (i = 0; r >= 0 && (k = key_at(m, i)) != NULL; i++) {
		labels = key_labels(k->key);
		if (labels == NULL)
			return -ENOMEM;
		r = metrics_add_hist(out, name, labels,
		    which == HIST_QUEUE_WAIT ? &k->queue_wait
		    : which == HIST_SESSION  ? &k->session
					     : &k->task_run);
		free(labels);
	}
	return r < 0 ? -ENOMEM : 0;
}

/* ---- gauges computed at scrape time --------------------------------- */

struct live_board {
	int64_t id;
	char *key;
	const char *state; /* static */
	bool seen;         /* in the ledger's list */
};

struct board_row {
	char *key;
	size_t state; /* index in board_states */
};

struct boards_ctx {
	struct live_board *live;
	size_t nlive, caplive;
	struct board_row *rows;
	size_t nrows, caprows;
	int err;
};

static const char *
state_static(const char *s)
{
	size_t i;

	for (i = 0; s != NULL && i < NSTATES; i++)
		if (strcmp(s, board_states[i]) == 0)
			return board_states[i];
	return NULL;
}

static void
live_cb(const struct tracker_board_info *b, void *arg)
{
	struct boards_ctx *x = arg;
	struct live_board *grown;

	if (x->nlive == x->caplive) {
		size_t cap = x->caplive ? 2 * x->caplive : 16;

		grown = realloc(x->live, cap * sizeof(*grown));
		if (grown == NULL) {
			x->err = -ENOMEM;
			return;
		}
		x->live = grown;
		x->caplive = cap;
	}
	x->live[x->nlive] = (struct live_board){
	    .id = b->id,
	    .key = strdup(b->key),
	    .state = state_static(b->state),
	};
	if (x->live[x->nlive].key == NULL) {
		x->err = -ENOMEM;
		return;
	}
	x->nlive++;
}

static int
live_cmp(const void *a, const void *b)
{
	const struct live_board *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static int
row_add(struct boards_ctx *x, const char *key, const char *state)
{
	struct board_row *grown;
	size_t i;

	state = state_static(state);
	if (state == NULL)
		return 0; /* not a state we know: not shown */
	for (i = 0; board_states[i] != state; i++)
		;
	if (x->nrows == x->caprows) {
		size_t cap = x->caprows ? 2 * x->caprows : 16;

		grown = realloc(x->rows, cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		x->rows = grown;
		x->caprows = cap;
	}
	x->rows[x->nrows].key = strdup(key);
	if (x->rows[x->nrows].key == NULL)
		return -ENOMEM;
	x->rows[x->nrows++].state = i;
	return 0;
}

/* A board the ledger knows: its live state if it is live, else the
 * ledger's (offline, for one whose connection is gone). */
static int
ledger_cb(const struct ledger_board *b, void *arg)
{
	struct boards_ctx *x = arg;
	struct live_board probe = {.id = b->id}, *l;

	l = x->nlive > 0
		? bsearch(&probe, x->live, x->nlive, sizeof(*x->live), live_cmp)
		: NULL;
	if (l != NULL) {
		l->seen = true;
		return row_add(x, b->key, l->state);
	}
	return row_add(x, b->key, b->state);
}

static int
row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct board_row *)a)->key,
	    ((const struct board_row *)b)->key);
}

static int
write_boards(struct server *srv, struct evbuffer *out)
{
	struct boards_ctx x = {0};
	size_t i, j, s, counts[NSTATES];
	int r;

	(void)tracker_flush_boards(srv);
	/* Read our own writes; a failed batch was already logged. */
	(void)ledger_sync(srv->ledger, NULL);
	tracker_foreach_board(srv, live_cb, &x);
	r = x.err;
	if (r >= 0) {
		if (x.nlive > 0)
			qsort(x.live, x.nlive, sizeof(*x.live), live_cmp);
		r = ledger_foreach_board(srv->ledger, ledger_cb, &x, NULL);
	}
	/* Live boards the ledger's read did not show yet. */
	for (i = 0; r >= 0 && i < x.nlive; i++)
		if (!x.live[i].seen)
			r = row_add(&x, x.live[i].key, x.live[i].state);
	if (r >= 0)
		r = add_header(out, "npufarm_boards", "gauge",
		    "Boards the broker knows, by key and state.");
	if (x.nrows > 0)
		qsort(x.rows, x.nrows, sizeof(*x.rows), row_cmp);
	for (i = 0; r >= 0 && i < x.nrows; i = j) {
		memset(counts, 0, sizeof(counts));
		for (j = i;
		     j < x.nrows && strcmp(x.rows[j].key, x.rows[i].key) == 0;
		     j++)
			counts[x.rows[j].state]++;
		for (s = 0; r >= 0 && s < NSTATES; s++) {
			r = evbuffer_add(out, "npufarm_boards", 14);
			if (r >= 0)
				r = add_key_label(out, x.rows[i].key);
			if (r >= 0)
				r = evbuffer_add_printf(out,
				    ",state=\"%s\"} %zu\n", board_states[s],
				    counts[s]);
		}
	}
	for (i = 0; i < x.nlive; i++)
		free(x.live[i].key);
	for (i = 0; i < x.nrows; i++)
		free(x.rows[i].key);
	free(x.live);
	free(x.rows);
	return r < 0 ? -ENOMEM : 0;
}

struct tasks_ctx {
	struct evbuffer *out;
	int64_t now_us;
	int err;
};

/* One sample per board that runs a native task: its job, task and user. */
static void
board_task_cb(const struct tracker_board_info *b, void *arg)
{
	struct tasks_ctx *x = arg;
	struct evbuffer *out = x->out;

	if (b->task.job <= 0 || x->err < 0)
		return;
	if (evbuffer_add(out, "npufarm_board_task_seconds", 26) < 0 ||
	    add_key_label(out, b->key) < 0 ||
	    evbuffer_add(out, ",board=\"", 8) < 0 ||
	    metrics_add_label_value(out, b->address) < 0 ||
	    evbuffer_add_printf(out, "\",job=\"%lld\",task=\"%d\",user=\"",
		(long long)b->task.job, b->task.idx) < 0 ||
	    metrics_add_label_value(out, b->task.user) < 0 ||
	    evbuffer_add_printf(out, "\"} %.6f\n",
		b->task.started_us > 0
		    ? (double)(x->now_us - b->task.started_us) / 1e6
		    : 0.0) < 0)
		x->err = -ENOMEM;
}

/*
 * npufarm_board_task_seconds: what each busy agent board runs (issue 11:
 * a board running a task is no anonymous "leased").
 */
static int
write_board_tasks(struct server *srv, struct evbuffer *out)
{
	struct tasks_ctx x = {.out = out, .now_us = ledger_now_us()};

	if (add_header(out, "npufarm_board_task_seconds", "gauge",
		"Seconds the native task a board runs has run, by board, "
		"job, task and user.") < 0)
		return -ENOMEM;
	tracker_foreach_board(srv, board_task_cb, &x);
	return x.err;
}

static void
waiting_cb(struct sched_request *r, void *arg)
{
	size_t *depth = arg;

	depth[r->kind == SCHED_KIND_TASK]++;
}

static int
queue_cmp(const void *a, const void *b)
{
	return strcmp(sched_queue_key(*(struct sched_queue *const *)a),
	    sched_queue_key(*(struct sched_queue *const *)b));
}

/*
 * npufarm_queue_depth; and every key with a queue gets its counters and
 * histograms from now on (zeros), so they exist before their first event.
 */
static int
write_queues(struct metrics *m, struct server *srv, struct evbuffer *out)
{
	size_t n = sched_queue_count(srv->sched), i = 0, depth[2];
	struct sched_queue **qs, *q;
	int r;

	qs = calloc(n ? n : 1, sizeof(*qs));
	if (qs == NULL)
		return -ENOMEM;
	for (q = sched_queue_first(srv->sched); q != NULL && i < n;
	     q = sched_queue_next(q)) {
		qs[i++] = q;
		(void)key_get(m, sched_queue_key(q));
	}
	qsort(qs, i, sizeof(*qs), queue_cmp);
	r = add_header(out, "npufarm_queue_depth", "gauge",
	    "Requests waiting for a board, by key and kind (tvm: TVM "
	    "requests and RPC clients; task: native tasks).");
	for (n = i, i = 0; r >= 0 && i < n; i++) {
		depth[0] = depth[1] = 0;
		sched_foreach_waiting(qs[i], waiting_cb, depth);
		r = evbuffer_add(out, "npufarm_queue_depth", 19);
		if (r >= 0)
			r = add_key_label(out, sched_queue_key(qs[i]));
		if (r >= 0)
			r = evbuffer_add_printf(
			    out, ",kind=\"tvm\"} %zu\n", depth[0]);
		if (r >= 0)
			r = evbuffer_add(out, "npufarm_queue_depth", 19);
		if (r >= 0)
			r = add_key_label(out, sched_queue_key(qs[i]));
		if (r >= 0)
			r = evbuffer_add_printf(
			    out, ",kind=\"task\"} %zu\n", depth[1]);
	}
	free(qs);
	return r < 0 ? -ENOMEM : 0;
}

/* ---- process figures (/proc/self) ----------------------------------- */

struct proc_stat {
	double cpu_seconds;
	double start_seconds; /* since the epoch */
	uint64_t vsize, rss;  /* bytes */
	bool ok;
};

static double
boot_time(void)
{
	char line[256];
	double btime = 0;
	FILE *f = fopen("/proc/stat", "re");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "btime %lf", &btime) == 1)
			break;
	fclose(f);
	return btime;
}

static struct proc_stat
proc_self_stat(void)
{
	struct proc_stat ps = {0};
	unsigned long utime, stime, vsize;
	unsigned long long start;
	long rss, tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	char buf[1024], *p;
	size_t n;
	FILE *f = fopen("/proc/self/stat", "re");

	if (f == NULL)
		return ps;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip past the
	 * last ')'.  Then fields 3 (state) onwards; we want 14, 15, 22-24. */
	p = strrchr(buf, ')');
	if (p == NULL || tck <= 0 || page <= 0 ||
	    sscanf(p + 2,
		"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d "
		"%*d %*d %*d %*d %llu %lu %ld",
		&utime, &stime, &start, &vsize, &rss) != 5)
		return ps;
	ps.cpu_seconds = (double)(utime + stime) / (double)tck;
	ps.start_seconds = boot_time() + (double)start / (double)tck;
	ps.vsize = vsize;
	ps.rss = (uint64_t)rss * (uint64_t)page;
	ps.ok = true;
	return ps;
}

static long
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static int
write_process(struct evbuffer *out)
{
	struct proc_stat ps = proc_self_stat();
	struct rlimit rl;
	long fds = open_fds();
	int r = 0;

	if (fds >= 0) {
		r = add_header(out, "process_open_fds", "gauge",
		    "Number of open file descriptors.");
		if (r >= 0)
			r = evbuffer_add_printf(
			    out, "process_open_fds %ld\n", fds);
	}
	if (r >= 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY) {
		r = add_header(out, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.");
		if (r >= 0)
			r = evbuffer_add_printf(out, "process_max_fds %llu\n",
			    (unsigned long long)rl.rlim_cur);
	}
	if (r < 0 || !ps.ok)
		return r < 0 ? -ENOMEM : 0;
	r = add_header(out, "process_cpu_seconds_total", "counter",
	    "Total user and system CPU time spent in seconds.");
	if (r >= 0)
		r = evbuffer_add_printf(
		    out, "process_cpu_seconds_total %.3f\n", ps.cpu_seconds);
	if (r >= 0)
		r = add_header(out, "process_resident_memory_bytes", "gauge",
		    "Resident memory size in bytes.");
	if (r >= 0)
		r = evbuffer_add_printf(out,
		    "process_resident_memory_bytes %llu\n",
		    (unsigned long long)ps.rss);
	if (r >= 0)
		r = add_header(out, "process_virtual_memory_bytes", "gauge",
		    "Virtual memory size in bytes.");
	if (r >= 0)
		r = evbuffer_add_printf(out,
		    "process_virtual_memory_bytes %llu\n",
		    (unsigned long long)ps.vsize);
	if (r >= 0)
		r = add_header(out, "process_start_time_seconds", "gauge",
		    "Start time of the process since unix epoch in seconds.");
	if (r >= 0)
		r = evbuffer_add_printf(
		    out, "process_start_time_seconds %.2f\n", ps.start_seconds);
	return r < 0 ? -ENOMEM : 0;
}

/* ---- the whole page ------------------------------------------------- */

static int
write_counter(
    struct evbuffer *out, const char *name, const char *labels, uint64_t v)
{
	return evbuffer_add_printf(
		   out, "%s%s %llu\n", name, labels, (unsigned long long)v) < 0
		   ? -ENOMEM
		   : 0;
}

/*
 * Append what the registry @m counts (leases, tasks, the per-key
 * histograms, relay bytes, agent connects) to @out.  Counts relayed agent
 * leases whose report is overdue first.  0 or -ENOMEM.
 */
int
metrics_write_registry(struct metrics *m, struct evbuffer *out)
{
	int r;

	expire(m, mono_us());
	r = write_counters(m, out, false);
	if (r >= 0)
		r = write_counters(m, out, true);
	if (r >= 0)
		r = write_hists(m, out, "npufarm_queue_wait_seconds",
		    "Time from a request's or task's arrival to its grant, by "
		    "key.",
		    HIST_QUEUE_WAIT);
	if (r >= 0)
		r = write_hists(m, out, "npufarm_session_seconds",
		    "Time from pair-up to the end of relayed TVM sessions, by "
		    "key.",
		    HIST_SESSION);
	if (r >= 0)
		r = write_hists(m, out, "npufarm_task_run_seconds",
		    "Time native task attempts held their board, by key.",
		    HIST_TASK_RUN);
	if (r >= 0)
		r = add_header(out, "npufarm_relay_bytes_total", "counter",
		    "Bytes of relayed TVM sessions, counted when each ends.");
	if (r >= 0)
		r = write_counter(out, "npufarm_relay_bytes_total",
		    "{direction=\"to_board\"}", m->relay_to_board);
	if (r >= 0)
		r = write_counter(out, "npufarm_relay_bytes_total",
		    "{direction=\"to_client\"}", m->relay_to_client);
	if (r >= 0)
		r = add_header(out, "npufarm_agent_link_connects_total",
		    "counter",
		    "Agent links welcomed (first connects and "
		    "reconnects).");
	if (r >= 0)
		r = write_counter(out, "npufarm_agent_link_connects_total", "",
		    m->agent_connects);
	return r < 0 ? -ENOMEM : 0;
}

/*
 * Append the exposition of every metric of @srv (registry @m, its live
 * state and the ledger) to @out, in the Prometheus text format 0.0.4.
 * Syncs the ledger first (like GET /v1/boards) so board states are
 * current.  Loop thread.  0 or -ENOMEM.
 */
int
metrics_write(struct metrics *m, struct server *srv, struct evbuffer *out)
{
	struct hist commit;
	uint64_t failed = 0;
	int r;

	r = add_header(out, "npufarm_build_info", "gauge",
	    "The broker's version, as a label; always 1.");
	if (r >= 0)
		r = evbuffer_add_printf(out,
			"npufarm_build_info{version=\"%s\"} 1\n",
			NPUFARM_VERSION) < 0
			? -ENOMEM
			: 0;
	if (r >= 0)
		r = write_boards(srv, out);
	if (r >= 0)
		r = write_board_tasks(srv, out);
	if (r >= 0)
		r = write_queues(m, srv, out);
	if (r >= 0)
		r = metrics_write_registry(m, out);
	ledger_commit_stats(srv->ledger, &commit, &failed);
	if (r >= 0)
		r = add_header(out, "npufarm_ledger_commit_seconds",
		    "histogram",
		    "Time the ledger's writer took per committed transaction "
		    "(BEGIN to COMMIT, fsync included).");
	if (r >= 0)
		r = metrics_add_hist(
		    out, "npufarm_ledger_commit_seconds", "", &commit);
	if (r >= 0)
		r = add_header(out, "npufarm_ledger_commits_total", "counter",
		    "Ledger transactions committed.");
	if (r >= 0)
		r = write_counter(
		    out, "npufarm_ledger_commits_total", "", commit.count);
	if (r >= 0)
		r = add_header(out, "npufarm_ledger_commit_failures_total",
		    "counter",
		    "Ledger batches that failed and were rolled back.");
	if (r >= 0)
		r = write_counter(
		    out, "npufarm_ledger_commit_failures_total", "", failed);
	if (r >= 0)
		r = write_process(out);
	return r < 0 ? -ENOMEM : 0;
}
