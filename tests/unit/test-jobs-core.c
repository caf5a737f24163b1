/* SPDX-License-Identifier: Apache-2.0 */
/*
 * broker/jobs.c without the HTTP API or an agent: the tracker, the agent
 * links, an artifact store and a real ledger in a temp dir.  A submitted
 * job's tasks wait in their key's queue as struct lease_requests that
 * describe themselves as tasks; a wait is answered through its callback
 * (at once when the job moved past it, later on progress, never after
 * jobs_wait_drop()); a cancel ends every waiting task as cancelled, in
 * the ledger too, and frees the live job.  A job the API records waits
 * for its commit before anything else (jobs_submit_parsed(), then
 * jobs_submit_committed() from ledger_after()).
 */
#include "config.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "agent_link.h"
#include "artifacts.h"
#include "broker_config.h"
#include "conn.h"
#include "err.h"
#include "harness.h"
#include "jobs.h"
#include "ledger.h"
#include "metrics.h"
#include "scheduler.h"
#include "sha256_util.h"
#include "tracker.h"

static struct event_base *base;
static struct broker_config cfg;
static struct conn_set *set;
static struct ledger *ledger;
static struct sched *sched;
static struct metrics *metrics;
static struct tracker *trk;
static struct agent_links *links;
static struct artifacts *arts;
static struct jobs *jobs;
static char dir[] = "/tmp/npufarm-test-jobs-XXXXXX";
static char db[300];
static char artifact[ARTIFACTS_SHA256_HEX + 1];

static void
put_artifact(void)
{
	static const char blob[] = "\177ELF not really a kernel";
	unsigned char md[32];
	struct evbuffer *b = evbuffer_new();
	bool created;

	ck_assert_int_eq(
	    EVP_Digest(blob, sizeof(blob), md, NULL, EVP_sha256(), NULL), 1);
	sha256_util_hex(md, artifact);
	ck_assert_int_eq(evbuffer_add(b, blob, sizeof(blob)), 0);
	ck_assert_int_eq(artifacts_put(arts, artifact, b, &created, NULL), 0);
	evbuffer_free(b);
}

static void
setup(void)
{
	struct npufarm_err err;
	struct jobs_deps deps;

	/* A fresh template each time (CK_FORK=no runs them in one process). */
	(void)snprintf(dir, sizeof(dir), "%s", "/tmp/npufarm-test-jobs-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(db, sizeof(db), "%s/ledger.db", dir);
	broker_config_defaults(&cfg);
	base = event_base_new();
	ck_assert_msg(
	    ledger_open(db, false, &ledger, &err) == 0, "%s", err.msg);
	sched = sched_new();
	ck_assert_int_eq(metrics_new(16, &metrics), 0);
	ck_assert_int_eq(conn_set_new(base, &cfg, 8, &set), 0);
	ck_assert_int_eq(
	    tracker_new(base, &cfg, ledger, sched, metrics, set, &trk), 0);
	links = agent_links_new(
	    base, &cfg, ledger, metrics, trk, tracker_boards(trk));
	ck_assert_ptr_nonnull(links);
	tracker_set_peers(trk, links, NULL);
	ck_assert_msg(
	    artifacts_open(dir, 1 << 20, &arts, &err) == 0, "%s", err.msg);
	put_artifact();
	deps = (struct jobs_deps){
	    .base = base,
	    .cfg = &cfg,
	    .ledger = ledger,
	    .metrics = metrics,
	    .artifacts = arts,
	    .sched = sched,
	    .trk = trk,
	    .links = links,
	};
	ck_assert_int_eq(jobs_new(&deps, &jobs, NULL), 0);
	ck_assert_int_eq(jobs_agent_register(jobs), 0);
}

static void
teardown(void)
{
	jobs = jobs_free(jobs);
	ledger_commit(ledger);
	ledger = ledger_close(ledger);
	links = agent_links_free(links);
	trk = tracker_free(trk);
	set = conn_set_free(set);
	arts = artifacts_close(arts);
	metrics = metrics_free(metrics);
	sched = sched_free(sched);
	event_base_free(base);
	broker_config_deinit(&cfg);
	(void)harness_rmtree(dir);
}

/* A job of @ntasks kernel tasks for key "k". */
static json_t *
job_body(int ntasks)
{
	json_t *body, *tasks = json_array();
	int i;

	for (i = 0; i < ntasks; i++)
		ck_assert_int_eq(
		    json_array_append_new(tasks,
			json_pack("{ss ss ss s[{ss s[i]}]}", "runner", "kernel",
			    "artifact", artifact, "entry", "run", "args",
			    "dtype", "float32", "shape", 4)),
		    0);
	body = json_pack("{ss so}", "key", "k", "tasks", tasks);
	ck_assert_ptr_nonnull(body);
	return body;
}

static int64_t
submit(int ntasks, int *ret_n)
{
	struct npufarm_err err;
	json_t *body = job_body(ntasks);
	int64_t id = 0;

	ck_assert_msg(jobs_submit(jobs, body, "test", &id, ret_n, &err) == 0,
	    "%s", err.msg);
	json_decref(body);
	ck_assert_int_gt(id, 0);
	return id;
}

struct seen {
	int n, tasks;
	int64_t job;
};

static void
req_cb(const struct tracker_request_info *r, void *arg)
{
	struct seen *x = arg;

	x->n++;
	if (strcmp(r->kind, "task") == 0)
		x->tasks++;
	x->job = r->job;
}

struct answer {
	int calls;
	bool done;
	json_int_t seq;
	char counts[128];
};

static void
wait_cb(void *arg, json_t *v)
{
	struct answer *a = arg;

	a->calls++;
	ck_assert_ptr_nonnull(v);
	a->done = json_is_true(json_object_get(v, "done"));
	a->seq = json_integer_value(json_object_get(v, "seq"));
}

static bool
match_any(void *arg, void *ctx)
{
	return arg == ctx;
}

START_TEST(test_jobs_tasks_wait_in_the_queue_as_tasks)
{
	struct seen x = {0};
	int64_t id;
	int n = 0;
	json_t *live;

	id = submit(3, &n);
	ck_assert_int_eq(n, 3);
	tracker_foreach_request(trk, "k", req_cb, &x);
	ck_assert_int_eq(x.n, 3);
	ck_assert_int_eq(x.tasks, 3);
	ck_assert_int_eq(x.job, id);
	live = jobs_live_summary(jobs, id);
	ck_assert_ptr_nonnull(live);
	json_decref(live);
	/* Recorded before acknowledged. */
	{
		char *rows = harness_sql(db, "SELECT count(*) FROM tasks");

		ck_assert_str_eq(rows, "3\n");
		free(rows);
	}
}
END_TEST

START_TEST(test_jobs_wait_and_cancel)
{
	struct answer now = {0}, later = {0}, dropped = {0};
	struct seen x = {0};
	uint64_t after;
	int64_t id;
	int n = 0, r;
	char *rows;

	id = submit(2, &n);
	/* Not live: the caller answers from the ledger. */
	ck_assert_int_eq(jobs_wait(jobs, id + 100, 0, 5, wait_cb, &now), 1);
	ck_assert_int_eq(now.calls, 0);
	/* A wait for progress past 0: answered at once if the submit
	 * counted as progress, else later. */
	r = jobs_wait(jobs, id, 0, 5, wait_cb, &now);
	ck_assert(r == 0 || r == JOBS_WAITING);
	ck_assert_int_eq(now.calls, r == 0 ? 1 : 0);
	after = r == 0 ? (uint64_t)now.seq : 0;
	/* A wait past the current progress waits; one dropped before
	 * anything happens is never answered. */
	ck_assert_int_eq(
	    jobs_wait(jobs, id, after, 5, wait_cb, &later), JOBS_WAITING);
	ck_assert_int_eq(
	    jobs_wait(jobs, id, after, 5, wait_cb, &dropped), JOBS_WAITING);
	jobs_wait_drop(jobs, match_any, &dropped);
	ck_assert_int_eq(later.calls, 0);
	/* Cancel: both tasks end cancelled and the job is over. */
	ck_assert_int_eq(jobs_cancel(jobs, id, &n), 0);
	ck_assert_int_eq(n, 2);
	/* Answered once, on the first task's end (progress). */
	ck_assert_int_eq(later.calls, 1);
	ck_assert_int_gt(later.seq, (json_int_t)after);
	ck_assert_int_eq(dropped.calls, 0);
	ck_assert_ptr_null(jobs_live_summary(jobs, id));
	/* Over: the ledger has the final word now. */
	ck_assert_int_eq(jobs_wait(jobs, id, 0, 5, wait_cb, &now), 1);
	tracker_foreach_request(trk, "k", req_cb, &x);
	ck_assert_int_eq(x.n, 0);
	ck_assert_int_eq(ledger_sync(ledger, NULL), 0);
	rows =
	    harness_sql(db, "SELECT outcome, count(*) FROM tasks GROUP BY 1");
	ck_assert_str_eq(rows, "cancelled|2\n");
	free(rows);
}
END_TEST

/* ledger_after()'s verdict on a batch, kept for the test to act on. */
struct verdict {
	int calls;
	bool failed;
	struct npufarm_err err;
};

static void
verdict_cb(const struct npufarm_err *err, void *arg)
{
	struct verdict *v = arg;

	v->calls++;
	v->failed = err != NULL;
	if (err != NULL)
		v->err = *err;
}

static int
queued_tasks(void)
{
	struct seen x = {0};

	tracker_foreach_request(trk, "k", req_cb, &x);
	ck_assert_int_eq(x.n, x.tasks);
	return x.tasks;
}

static void
assert_sql(const char *sql, const char *want)
{
	char *rows = harness_sql(db, sql);

	ck_assert_msg(strcmp(rows, want) == 0, "%s: got '%s', want '%s'", sql,
	    rows, want);
	free(rows);
}

/*
 * Recorded is not acknowledged: until jobs_submit_committed() is told the
 * batch committed, the job's tasks are not queued, no cancel or live
 * summary finds it (its id is not out), and a wait by its id waits.  A
 * batch that failed (a real one: a bad row beside the job's) forgets the
 * job with the ledger's error; an abandoned one is cancelled in the
 * ledger, so a restart would not run it.
 */
START_TEST(test_jobs_submit_waits_for_its_commit)
{
	struct verdict v = {0};
	struct answer a = {0};
	struct npufarm_err err;
	struct jobs_parsed *p;
	struct ledger_lease bad = {
	    .key = "k",
	    .user = "u",
	    .peer = "p",
	    .requested_us = 1,
	    .outcome = "kShutdown",
	};
	json_t *body = job_body(2);
	int64_t id, id2, id3, lease;
	char sql[128];
	int n = 0, m = 0;

	ck_assert_msg(
	    jobs_parse(&cfg, arts, body, "test", &p, &err) == 0, "%s", err.msg);
	json_decref(body);
	ck_assert_msg(jobs_submit_parsed(jobs, p, "test", &id, &n, &err) == 0,
	    "%s", err.msg);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(ledger_after(ledger, verdict_cb, &v, NULL), 0);
	ck_assert_int_eq(v.calls, 0); /* its rows are in the batch */
	ck_assert_int_eq(queued_tasks(), 0);
	ck_assert_int_eq(jobs_cancel(jobs, id, &m), -ENOENT);
	ck_assert_ptr_null(jobs_live_summary(jobs, id));
	ck_assert_int_eq(jobs_wait(jobs, id, 0, 5, wait_cb, &a), JOBS_WAITING);
	assert_sql("SELECT count(*) FROM tasks", "0\n");
	ck_assert_int_eq(ledger_sync(ledger, NULL), 0);
	ledger_notified(ledger);
	ck_assert_int_eq(v.calls, 1);
	ck_assert(!v.failed);
	assert_sql("SELECT count(*) FROM tasks", "2\n");
	ck_assert_int_eq(queued_tasks(), 0); /* still not before it is told */
	ck_assert_msg(
	    jobs_submit_committed(jobs, id, NULL, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(queued_tasks(), 2);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_int_eq(
	    jobs_submit_committed(jobs, id, NULL, &err), -EIO); /* once */
	ck_assert_int_eq(queued_tasks(), 2);

	/* A failed batch: the job is forgotten, the ledger's error said. */
	v = (struct verdict){0};
	ck_assert_int_eq(
	    jobs_submit_parsed(jobs, p, "test", &id2, &n, &err), 0);
	ck_assert_int_gt(id2, id);
	ck_assert_int_eq(ledger_lease_insert(ledger, &bad, &lease, &err), 0);
	ck_assert_int_eq(ledger_after(ledger, verdict_cb, &v, NULL), 0);
	ck_assert_int_eq(ledger_sync(ledger, NULL), -EIO);
	ledger_notified(ledger);
	ck_assert_int_eq(v.calls, 1);
	ck_assert(v.failed);
	ck_assert_int_eq(jobs_submit_committed(jobs, id2, &v.err, &err), -EIO);
	ck_assert_int_eq(err.code, -EIO);
	ck_assert_msg(
	    strncmp(err.msg, "the ledger could not commit the job: ledger",
		43) == 0,
	    "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "CHECK") != NULL, "%s", err.msg);
	ck_assert_int_eq(queued_tasks(), 2); /* only the first job's */
	ck_assert_int_eq(jobs_cancel(jobs, id2, &m), -ENOENT);

	/* Abandoned before its commit: cancelled in the ledger. */
	ck_assert_int_eq(
	    jobs_submit_parsed(jobs, p, "test", &id3, &n, &err), 0);
	jobs_submit_abandon(jobs, id3);
	ck_assert_int_eq(
	    jobs_submit_committed(jobs, id3, NULL, &err), -EIO); /* gone */
	ck_assert_int_eq(ledger_sync(ledger, NULL), 0);
	(void)snprintf(sql, sizeof(sql),
	    "SELECT state FROM jobs WHERE id = %lld", (long long)id3);
	assert_sql(sql, "cancelled\n");
	ck_assert_int_eq(queued_tasks(), 2);
	jobs_parsed_free(p);
	/* The first one is live now: a cancel ends its two tasks. */
	ck_assert_int_eq(jobs_cancel(jobs, id, &m), 0);
	ck_assert_int_eq(m, 2);
	ck_assert_int_eq(a.calls, 1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("jobs-core");
	TCase *tc = tcase_create("jobs-core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_jobs_tasks_wait_in_the_queue_as_tasks);
	tcase_add_test(tc, test_jobs_wait_and_cancel);
	tcase_add_test(tc, test_jobs_submit_waits_for_its_commit);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
