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

#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>

#include <npufarm/outcome.h>

/* How long a relayed agent lease waits for its agent's report. */
#define METRICS_REPORT_GRACE_S 30
/* The shared series of keys beyond the registry's limit. */
#define METRICS_OTHER_KEY      "_other"
/* Lease outcome label index for "not observed" (a board registered again
 * after a session the broker did not relay). */
#define METRICS_UNKNOWN        NPUFARM_OUTCOME_MAX

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

/*
 * From now on, key @key has its series in the exposition (zeros until
 * its first event), like a key something was counted under.  For keys
 * that have a queue before anything ended there.
 */
void
metrics_touch_key(struct metrics *m, const char *key)
{
	(void)key_get(m, key);
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

/* The # HELP and # TYPE lines of metric @name.  0 or -ENOMEM. */
int
metrics_add_header(
    struct evbuffer *out, const char *name, const char *type, const char *help)
{
	return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name,
		   help, name, type) < 0
		   ? -ENOMEM
		   : 0;
}

/* `{key="K"` with K escaped, no closing brace.  0 or -ENOMEM. */
int
metrics_add_key_label(struct evbuffer *out, const char *key)
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

	r = metrics_add_header(out, name, "counter",
	    tasks ? "Native tasks that ended for good, by key and outcome."
		  : "TVM leases and requests that ended, by key and final "
		    "outcome (unknown: a session the broker did not relay).");
	for (i = 0; r >= 0 && (k = key_at(m, i)) != NULL; i++)
		for (o = 0; r >= 0 && o < n; o++) {
			r = evbuffer_add_printf(out, "%s", name);
			if (r >= 0)
				r = metrics_add_key_label(out, k->key);
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

	r = metrics_add_header(out, name, "histogram", help);
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
		r = metrics_add_header(out, "npufarm_relay_bytes_total",
		    "counter",
		    "Bytes of relayed TVM sessions, counted when each ends.");
	if (r >= 0)
		r = write_counter(out, "npufarm_relay_bytes_total",
		    "{direction=\"to_board\"}", m->relay_to_board);
	if (r >= 0)
		r = write_counter(out, "npufarm_relay_bytes_total",
		    "{direction=\"to_client\"}", m->relay_to_client);
	if (r >= 0)
		r = metrics_add_header(out, "npufarm_agent_link_connects_total",
		    "counter",
		    "Agent links welcomed (first connects and "
		    "reconnects).");
	if (r >= 0)
		r = write_counter(out, "npufarm_agent_link_connects_total", "",
		    m->agent_connects);
	return r < 0 ? -ENOMEM : 0;
}
