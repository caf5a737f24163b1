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
 * It counts what it is told and reads nobody: a lease's final outcome is
 * decided in lease.c, which counts each lease once here
 * (metrics_lease_count()).
 */
#include "config.h"

#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include <npufarm/outcome.h>

/* The shared series of keys beyond the registry's limit. */
#define METRICS_OTHER_KEY "_other"
/* Lease outcome label index for "not observed" (a board registered again
 * after a session the broker did not relay). */
#define METRICS_UNKNOWN   NPUFARM_OUTCOME_MAX

struct metrics_key {
	char *key;
	uint64_t leases[NPUFARM_OUTCOME_MAX + 1]; /* by outcome, + unknown */
	uint64_t tasks[NPUFARM_OUTCOME_MAX];
	struct hist queue_wait;
	struct hist session;
	struct hist task_run;
};

struct metrics {
	struct metrics_key **keys; /* sorted by key */
	size_t nkeys, cap, max_keys;
	struct metrics_key *other; /* keys beyond max_keys, or NULL */
	uint64_t relay_to_board, relay_to_client; /* bytes */
	uint64_t agent_connects;
};

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
	*ret_metrics = m;
	return 0;
}

/* Free @m and everything it counts.  Accepts NULL; returns NULL. */
struct metrics *
metrics_free(struct metrics *m)
{
	size_t i;

	if (m == NULL)
		return NULL;
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

/* ---- leases, tasks, relays, links ---------------------------------- */

/*
 * A lease or request of @key ended for good as @outcome (enum
 * npufarm_outcome; anything else, such as -1, counts as "unknown": not
 * observed).  lease.c decides it, once per lease.
 */
void
metrics_lease_count(struct metrics *m, const char *key, int outcome)
{
	struct metrics_key *k = key_get(m, key);

	if (k != NULL)
		k->leases[outcome >= 0 && outcome < NPUFARM_OUTCOME_MAX
			      ? outcome
			      : METRICS_UNKNOWN]++;
}

/* A relayed session of a lease of @key lasted @seconds, pair-up to end. */
void
metrics_session_time(struct metrics *m, const char *key, double seconds)
{
	struct metrics_key *k = key_get(m, key);

	if (k != NULL)
		hist_observe(&k->session, seconds);
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
 * histograms, relay bytes, agent connects) to @out.  0 or -ENOMEM.
 */
int
metrics_write_registry(struct metrics *m, struct evbuffer *out)
{
	int r;

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
