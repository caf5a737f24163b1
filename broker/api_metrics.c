/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /metrics (docs/api.md "Metrics"): the registry's counters and
 * histograms (metrics.c), and the gauges computed at scrape time from the
 * broker's live state, the ledger and the process.  The board counts come
 * from the board view GET /v1/boards shows (api_boards.c), read once the
 * ledger has committed the board states.
 */
#include "config.h"

#include "api_metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api_boards.h"
#include "auth.h"
#include "hist.h"
#include "http.h"
#include "lease.h"
#include "ledger.h"
#include "metrics.h"
#include "scheduler.h"
#include "tracker.h"

/* Board states as the ledger and the API name them. */
static const char *const board_states[] = {
    "idle", "leased", "busy", "draining", "quarantined", "offline"};
#define NSTATES (sizeof(board_states) / sizeof(board_states[0]))

/* ---- gauges computed at scrape time --------------------------------- */

struct board_row {
	char *key;
	size_t state; /* index in board_states */
};

struct boards_ctx {
	struct board_row *rows;
	size_t nrows, caprows;
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

/* A board: its live state if it is live, else the ledger's (offline,
 * for one whose connection is gone). */
static int
view_cb(const struct api_board *b, void *arg)
{
	struct boards_ctx *x = arg;

	if (b->live != NULL)
		return row_add(
		    x, b->row ? b->row->key : b->live->key, b->live->state);
	return row_add(x, b->row->key, b->row->state);
}

static int
row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct board_row *)a)->key,
	    ((const struct board_row *)b)->key);
}

/* npufarm_boards, from the board view the API shows too. */
static int
write_boards(const struct http_env *env, struct evbuffer *out)
{
	struct boards_ctx x = {0};
	size_t i, j, s, counts[NSTATES];
	int r;

	r = api_board_view(env, view_cb, &x, NULL);
	if (r >= 0)
		r = metrics_add_header(out, "npufarm_boards", "gauge",
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
				r = metrics_add_key_label(out, x.rows[i].key);
			if (r >= 0)
				r = evbuffer_add_printf(out,
				    ",state=\"%s\"} %zu\n", board_states[s],
				    counts[s]);
		}
	}
	for (i = 0; i < x.nrows; i++)
		free(x.rows[i].key);
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
	    metrics_add_key_label(out, b->key) < 0 ||
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
write_board_tasks(const struct http_env *env, struct evbuffer *out)
{
	struct tasks_ctx x = {.out = out, .now_us = ledger_now_us()};

	if (metrics_add_header(out, "npufarm_board_task_seconds", "gauge",
		"Seconds the native task a board runs has run, by board, "
		"job, task and user.") < 0)
		return -ENOMEM;
	tracker_foreach_board(env->tracker, board_task_cb, &x);
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
write_queues(const struct http_env *env, struct evbuffer *out)
{
	struct metrics *m = env->metrics;
	size_t n = sched_queue_count(env->sched), i = 0, depth[2];
	struct sched_queue **qs, *q;
	int r;

	qs = calloc(n ? n : 1, sizeof(*qs));
	if (qs == NULL)
		return -ENOMEM;
	for (q = sched_queue_first(env->sched); q != NULL && i < n;
	     q = sched_queue_next(q)) {
		qs[i++] = q;
		metrics_touch_key(m, sched_queue_key(q));
	}
	qsort(qs, i, sizeof(*qs), queue_cmp);
	r = metrics_add_header(out, "npufarm_queue_depth", "gauge",
	    "Requests waiting for a board, by key and kind (tvm: TVM "
	    "requests and RPC clients; task: native tasks).");
	for (n = i, i = 0; r >= 0 && i < n; i++) {
		depth[0] = depth[1] = 0;
		sched_foreach_waiting(qs[i], waiting_cb, depth);
		r = evbuffer_add(out, "npufarm_queue_depth", 19);
		if (r >= 0)
			r = metrics_add_key_label(out, sched_queue_key(qs[i]));
		if (r >= 0)
			r = evbuffer_add_printf(
			    out, ",kind=\"tvm\"} %zu\n", depth[0]);
		if (r >= 0)
			r = evbuffer_add(out, "npufarm_queue_depth", 19);
		if (r >= 0)
			r = metrics_add_key_label(out, sched_queue_key(qs[i]));
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
		r = metrics_add_header(out, "process_open_fds", "gauge",
		    "Number of open file descriptors.");
		if (r >= 0)
			r = evbuffer_add_printf(
			    out, "process_open_fds %ld\n", fds);
	}
	if (r >= 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY) {
		r = metrics_add_header(out, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.");
		if (r >= 0)
			r = evbuffer_add_printf(out, "process_max_fds %llu\n",
			    (unsigned long long)rl.rlim_cur);
	}
	if (r < 0 || !ps.ok)
		return r < 0 ? -ENOMEM : 0;
	r = metrics_add_header(out, "process_cpu_seconds_total", "counter",
	    "Total user and system CPU time spent in seconds.");
	if (r >= 0)
		r = evbuffer_add_printf(
		    out, "process_cpu_seconds_total %.3f\n", ps.cpu_seconds);
	if (r >= 0)
		r = metrics_add_header(out, "process_resident_memory_bytes",
		    "gauge", "Resident memory size in bytes.");
	if (r >= 0)
		r = evbuffer_add_printf(out,
		    "process_resident_memory_bytes %llu\n",
		    (unsigned long long)ps.rss);
	if (r >= 0)
		r = metrics_add_header(out, "process_virtual_memory_bytes",
		    "gauge", "Virtual memory size in bytes.");
	if (r >= 0)
		r = evbuffer_add_printf(out,
		    "process_virtual_memory_bytes %llu\n",
		    (unsigned long long)ps.vsize);
	if (r >= 0)
		r = metrics_add_header(out, "process_start_time_seconds",
		    "gauge",
		    "Start time of the process since unix epoch in seconds.");
	if (r >= 0)
		r = evbuffer_add_printf(
		    out, "process_start_time_seconds %.2f\n", ps.start_seconds);
	return r < 0 ? -ENOMEM : 0;
}

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
 * Append the exposition of every metric of the broker (the registry, its
 * live state and the ledger) to @out, in the Prometheus text format 0.0.4.
 * Call it once the ledger has committed the board states (as GET
 * /v1/boards).  Loop thread.  0 or -ENOMEM.
 */
static int
write_page(const struct http_env *env, struct evbuffer *out)
{
	struct hist commit;
	uint64_t failed = 0;
	int r;

	r = metrics_add_header(out, "npufarm_build_info", "gauge",
	    "The broker's version, as a label; always 1.");
	if (r >= 0)
		r = evbuffer_add_printf(out,
			"npufarm_build_info{version=\"%s\"} 1\n",
			NPUFARM_VERSION) < 0
			? -ENOMEM
			: 0;
	if (r >= 0)
		r = write_boards(env, out);
	if (r >= 0)
		r = write_board_tasks(env, out);
	if (r >= 0)
		r = write_queues(env, out);
	if (r >= 0) {
		/* Relayed agent leases whose report is overdue count first. */
		lease_book_settle(tracker_lease_book(env->tracker));
		r = metrics_write_registry(env->metrics, out);
	}
	ledger_commit_stats(env->ledger, &commit, &failed);
	if (r >= 0)
		r = metrics_add_header(out, "npufarm_ledger_commit_seconds",
		    "histogram",
		    "Time the ledger's writer took per committed transaction "
		    "(BEGIN to COMMIT, fsync included).");
	if (r >= 0)
		r = metrics_add_hist(
		    out, "npufarm_ledger_commit_seconds", "", &commit);
	if (r >= 0)
		r = metrics_add_header(out, "npufarm_ledger_commits_total",
		    "counter", "Ledger transactions committed.");
	if (r >= 0)
		r = write_counter(
		    out, "npufarm_ledger_commits_total", "", commit.count);
	if (r >= 0)
		r = metrics_add_header(out,
		    "npufarm_ledger_commit_failures_total", "counter",
		    "Ledger batches that failed and were rolled back.");
	if (r >= 0)
		r = write_counter(
		    out, "npufarm_ledger_commit_failures_total", "", failed);
	if (r >= 0)
		r = write_process(out);
	return r < 0 ? -ENOMEM : 0;
}

static void
get_metrics_committed(const struct http_call *c)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(c->req);

	if (write_page(c->env, out) < 0) {
		(void)evbuffer_drain(out, (size_t)-1);
		http_reply_error(
		    c->req, 500, "Internal Server Error", "out of memory");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(c->req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(c->req, 200, "OK", NULL);
}

/* GET /metrics: the Prometheus text exposition. */
static void
get_metrics(const struct http_call *c)
{
	(void)tracker_flush_boards(c->env->tracker);
	http_after_commit(c, get_metrics_committed);
}

static const struct http_route routes[] = {
    {EVHTTP_REQ_GET, "/metrics", AUTH_SCOPE_READ, get_metrics, 405,
	"only GET is allowed here"},
};

/* Serve GET /metrics on @h.  0 or -E2BIG. */
int
api_metrics_add(struct http_api *h)
{
	return http_add_routes(h, routes, sizeof(routes) / sizeof(routes[0]));
}
