/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Native tuning a tuner can trust (issue 11), end to end with the real
 * broker and agents on real kernels: candidates that crash leave the
 * boards in service; a board whose known-good probe fails is quarantined
 * with a reason that says so and returns by itself; a fast wrong kernel
 * is caught by its task's check and recorded as `wrong`.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "harness.h"

#define T_MS     20000
#define MAX_AGTS 3

static struct harness_broker b;
static pid_t agents[MAX_AGTS];
static const char *const broker_extra[] = {
    "--agent-heartbeat", "0.2", "--task-grace", "1", NULL};

static void
broker_up(void)
{
	harness_broker_start(&b, broker_extra);
}

static void
broker_down(void)
{
	harness_farm_stop(&b, agents, MAX_AGTS, T_MS);
}

/* Agent @i ("n@i", key cpu) with @extra flags (NULL-terminated). */
static void
agent_up(int i, const char *const *extra)
{
	agents[i] = harness_agent_start(&b, "n", i, extra);
}

static void
wait_sql(const char *sql, const char *want)
{
	harness_wait_sql(b.db, sql, want, 30000);
}

/* The whole file @path (to free). */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(buf);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static const char *
str_of(json_t *job, int idx, const char *key)
{
	return json_string_value(
	    json_object_get(harness_job_task(job, idx), key));
}

/* A job of @n tasks, each the kernel @sha with the default entry. */
static long
submit_n(const char *sha, int n)
{
	size_t len = 64 + (size_t)n * 128, off;
	char *json = malloc(len);
	long id;
	int i;

	ck_assert_ptr_nonnull(json);
	off = (size_t)snprintf(json, len, "{\"key\":\"cpu\",\"tasks\":[");
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(json + off, len - off,
		    "%s{\"runner\":\"kernel\",\"artifact\":\"%s\"}",
		    i ? "," : "", sha);
	(void)snprintf(json + off, len - off, "]}");
	id = harness_job_submit(b.http, json);
	free(json);
	return id;
}

/*
 * A job of 20 crashing candidates on three boards with the default
 * --quarantine-after 3: every candidate crashes, the built-in probe
 * clears each board it suspects, and every board ends idle.
 */
START_TEST(test_crashing_candidates_leave_boards_idle)
{
	char crash[65], *row;
	json_t *job;
	int i;

	for (i = 0; i < MAX_AGTS; i++)
		agent_up(i, NULL);
	harness_wait_idle(&b, MAX_AGTS);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "crash", crash);
	job = harness_job_wait(b.http, submit_n(crash, 20));
	ck_assert_str_eq(
	    json_string_value(json_object_get(job, "state")), "done");
	for (i = 0; i < 20; i++)
		ck_assert_str_eq(str_of(job, i, "outcome"), "crash");
	json_decref(job);
	harness_wait_idle(&b, MAX_AGTS);
	wait_sql("SELECT count(*) FROM tasks WHERE outcome = 'crash'", "20\n");
	row = harness_sql(b.db, "SELECT count(*) FROM events WHERE kind ="
				" 'board_quarantined'");
	ck_assert_str_eq(row, "0\n");
	free(row);
	/* The probe ran: each board crashed at least 3 times in a row. */
	for (i = 0; i < MAX_AGTS; i++) {
		char log[320], cmd[400];

		(void)snprintf(log, sizeof(log), "%s/agent-%d.log", b.dir, i);
		(void)snprintf(cmd, sizeof(cmd),
		    "grep -q 'built-in probe passed' %s", log);
		if (system(cmd) == 0)
			break;
	}
	ck_assert_int_lt(i, MAX_AGTS);
}
END_TEST

/*
 * A board whose probe fails is quarantined with a reason naming the probe
 * and what it said; it comes back by itself once the probe passes.
 */
START_TEST(test_probe_failure_quarantines_until_it_passes)
{
	char crash[65], probe[512], flag[320], *row;
	const char *extra[] = {"--probe-kernel", probe, "--quarantine-after",
	    "2", "--health-interval", "0.3", NULL};
	FILE *f;
	json_t *job;

	(void)snprintf(
	    probe, sizeof(probe), "%s/libflaky_probe.so", NPUFARM_TEST_KERNELS);
	(void)snprintf(flag, sizeof(flag), "%s/broken", b.dir);
	f = fopen(flag, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(setenv("NPUFARM_TEST_PROBE_FAIL", flag, 1), 0);
	agent_up(0, extra);
	ck_assert_int_eq(unsetenv("NPUFARM_TEST_PROBE_FAIL"), 0);
	harness_wait_idle(&b, 1);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "crash", crash);
	job = harness_job_wait(b.http, submit_n(crash, 2));
	json_decref(job);
	wait_sql(
	    "SELECT state FROM boards WHERE kind = 'agent'", "quarantined\n");
	row = harness_sql(b.db, "SELECT detail FROM boards WHERE kind ="
				" 'agent'");
	ck_assert_msg(strstr(row, "the probe kernel failed") != NULL &&
			  strstr(row, "the accelerator is broken") != NULL &&
			  strstr(row, "2 non-ok outcomes in a row") != NULL,
	    "%s", row);
	free(row);
	/* Repaired: the next probe passes and the board is back. */
	ck_assert_int_eq(unlink(flag), 0);
	harness_wait_idle(&b, 1);
	wait_sql("SELECT count(*) FROM events WHERE kind = 'board_quarantined'",
	    "1\n");
}
END_TEST

/*
 * A check against a reference: the correct candidate is ok, the fast one
 * that skips work is `wrong` with the first mismatch, everywhere.
 */
START_TEST(test_wrong_answer_caught)
{
	char ref[65], good[65], bad[65], json[2048], *row;
	int status;
	const char *d;
	json_t *job;

	agent_up(0, NULL);
	harness_wait_idle(&b, 1);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "matmul_t8", ref);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "matmul_t16", good);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "wrong", bad);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"tasks\":["
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"matmul\","
	    "\"name\":\"good\"," HARNESS_MATMUL_ARGS
	    ",\"check\":{\"ref\":\"%s\"}},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"matmul\","
	    "\"name\":\"fast\"," HARNESS_MATMUL_ARGS
	    ",\"check\":{\"ref\":\"%s\",\"entry\":\"matmul\",\"rtol\":1e-4,"
	    "\"outputs\":[2]}}]}",
	    good, ref, bad, ref);
	job = harness_job_wait(b.http, harness_job_submit(b.http, json));
	ck_assert_str_eq(str_of(job, 0, "outcome"), "ok");
	ck_assert_str_eq(str_of(job, 1, "outcome"), "wrong");
	d = str_of(job, 1, "detail");
	ck_assert_msg(d != NULL &&
			  strstr(d, "args[2][1,0] = 0 but the "
				    "reference has") != NULL &&
			  strstr(d, "4032 of 4096 values differ") != NULL,
	    "%s", d ? d : "(null)");
	ck_assert_int_eq(
	    json_array_size(json_object_get(harness_job_task(job, 1), "costs")),
	    0);
	json_decref(job);
	wait_sql("SELECT group_concat(outcome, ',') FROM (SELECT outcome"
		 " FROM tasks ORDER BY idx)",
	    "ok,wrong\n");
	/* A wrong answer is the candidate's: the board stays in service. */
	harness_wait_idle(&b, 1);
	row = harness_http_get(b.http, "/metrics", &status);
	ck_assert_int_eq(status, 200);
	ck_assert_msg(strstr(row, "outcome=\"wrong\"} 1") != NULL, "%s", row);
	free(row);
}
END_TEST

/* A check names a reference the broker does not have: refused at once. */
START_TEST(test_check_validation)
{
	char good[65], json[1024], *body;
	int status;

	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "matmul_t16", good);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"tasks\":[{\"runner\":\"kernel\","
	    "\"artifact\":\"%s\"," HARNESS_MATMUL_ARGS
	    ",\"check\":{\"ref\":\"%064d\"}}]}",
	    good, 7);
	body = harness_http_body(
	    b.http, "POST", "/v1/jobs", json, strlen(json), &status);
	ck_assert_int_eq(status, 400);
	ck_assert_msg(strstr(body, "tasks[0].check.ref: no artifact") != NULL,
	    "%s", body);
	free(body);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"tasks\":[{\"runner\":\"exec\","
	    "\"artifact\":\"%s\",\"check\":{\"ref\":\"%s\"}}]}",
	    good, good);
	body = harness_http_body(
	    b.http, "POST", "/v1/jobs", json, strlen(json), &status);
	ck_assert_int_eq(status, 400);
	ck_assert_msg(
	    strstr(body, "only the kernel runner") != NULL, "%s", body);
	free(body);
}
END_TEST

/* Run the CLI with @args against the broker; its stdout (to free). */
static char *
cli(const char *args)
{
	const char *bin = getenv("NPUFARM_CLI_BIN");
	char cmd[1024];
	size_t len = 0, cap = 65536;
	char *out = calloc(1, cap);
	FILE *p;

	ck_assert_msg(bin != NULL, "NPUFARM_CLI_BIN is not set");
	ck_assert_ptr_nonnull(out);
	(void)snprintf(
	    cmd, sizeof(cmd), "%s --broker http://%s %s", bin, b.http, args);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	len = fread(out, 1, cap - 1, p);
	out[len] = '\0';
	(void)pclose(p);
	return out;
}

/* JSON of GET @path (200 asserted). */
static json_t *
get_json(const char *path)
{
	int status;
	char *body = harness_http_get(b.http, path, &status);
	json_t *v = json_loads(body, 0, NULL);

	ck_assert_msg(status == 200 && v != NULL, "%d %s", status, body);
	free(body);
	return v;
}

/*
 * Every view tells the truth about native work: a waiting task shows in
 * /v1/queue as a task of its job with the job's priority (today's code
 * read it as a TVM request: garbage priority, no peer); a board running
 * one shows its job, task and user in /v1/boards and `npufarm status`.
 */
START_TEST(test_views_of_native_work)
{
	char hang[65], json[512], want[64], metric[256], *out;
	json_t *v, *q, *r, *board;
	long running, waiting;
	int status;

	agent_up(0, NULL);
	harness_wait_idle(&b, 1);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "hang", hang);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"user\":\"alice\",\"tasks\":[{\"runner\":"
	    "\"kernel\",\"artifact\":\"%s\",\"timeout\":60}]}",
	    hang);
	running = harness_job_submit(b.http, json);
	wait_sql("SELECT state FROM tasks WHERE job_id = (SELECT max(id) FROM"
		 " jobs)",
	    "running\n");
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"user\":\"bob\",\"priority\":5,"
	    "\"queue_timeout\":600,\"tasks\":[{\"runner\":\"kernel\","
	    "\"artifact\":\"%s\",\"name\":\"second\"}]}",
	    hang);
	waiting = harness_job_submit(b.http, json);

	v = get_json("/v1/queue");
	q = json_array_get(json_object_get(v, "queues"), 0);
	r = json_array_get(json_object_get(q, "requests"), 0);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(json_string_value(json_object_get(r, "kind")), "task");
	ck_assert_str_eq(json_string_value(json_object_get(r, "user")), "bob");
	ck_assert(json_is_integer(json_object_get(r, "priority")));
	ck_assert_int_eq(json_integer_value(json_object_get(r, "priority")), 5);
	ck_assert(json_is_null(json_object_get(r, "peer")));
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "job")), waiting);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "task")), 0);
	json_decref(v);

	v = get_json("/v1/boards");
	board = json_array_get(json_object_get(v, "boards"), 0);
	r = json_object_get(board, "task");
	ck_assert_msg(json_is_object(r), "%s", json_dumps(board, 0));
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "job")), running);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "task")), 0);
	ck_assert_str_eq(
	    json_string_value(json_object_get(r, "user")), "alice");
	json_decref(v);

	/* The jobs API: integers are integers. */
	(void)snprintf(json, sizeof(json), "/v1/jobs/%ld", waiting);
	v = get_json(json);
	ck_assert(json_is_integer(json_object_get(v, "priority")));
	ck_assert(json_is_integer(json_object_get(v, "queue_timeout")));
	json_decref(v);

	out = harness_http_get(b.http, "/metrics", &status);
	ck_assert_int_eq(status, 200);
	(void)snprintf(metric, sizeof(metric),
	    "npufarm_board_task_seconds{key=\"cpu\",board=\"n0\",job=\"%ld\","
	    "task=\"0\",user=\"alice\"} ",
	    running);
	ck_assert_msg(strstr(out, metric) != NULL, "no %s in %s", metric, out);
	free(out);

	out = cli("status");
	(void)snprintf(want, sizeof(want), "job %ld #0", running);
	ck_assert_msg(
	    strstr(out, want) != NULL && strstr(out, "alice"), "%s", out);
	(void)snprintf(want, sizeof(want), "job %ld #0", waiting);
	ck_assert_msg(
	    strstr(out, want) != NULL && strstr(out, "bob"), "%s", out);
	free(out);
	out = cli("jobs");
	ck_assert_msg(strstr(out, " 5 ") != NULL, "%s", out);
	free(out);

	(void)snprintf(json, sizeof(json), "/v1/jobs/%ld/cancel", waiting);
	free(harness_http(b.http, "POST", json, &status));
	ck_assert_int_eq(status, 200);
	(void)snprintf(json, sizeof(json), "/v1/jobs/%ld/cancel", running);
	free(harness_http(b.http, "POST", json, &status));
	ck_assert_int_eq(status, 200);
	wait_sql("SELECT count(*) FROM jobs WHERE state = 'cancelled'", "2\n");
}
END_TEST

/*
 * `npufarm submit --check-ref` over a sweep of two problem sizes: the fast
 * wrong kernel is caught at both, and `wait` names the best per problem
 * (not the smallest size), saying so.
 */
START_TEST(test_cli_check_ref_and_best_per_problem)
{
	char args[2048], *out;
	const char *k = NPUFARM_TEST_KERNELS;

	agent_up(0, NULL);
	agent_up(1, NULL);
	harness_wait_idle(&b, 2);
	(void)snprintf(args, sizeof(args),
	    "submit --key cpu --kernel %s/libmatmul_t16.so --kernel "
	    "%s/libwrong.so --entry matmul --sweep n=32,64 --arg "
	    "float32:{n}x{n}:random=1 --arg float32:{n}x{n}:random=2 --arg "
	    "float32:{n}x{n} --check-ref %s/libmatmul_t8.so --repeat 3 --wait "
	    "2>&1",
	    k, k, k);
	out = cli(args);
	ck_assert_msg(strstr(out, "best per problem") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "float32[32,32] float32[32,32] "
				  "float32[32,32]: task") != NULL &&
			  strstr(out, "float32[64,64] float32[64,64] "
				      "float32[64,64]: task") != NULL,
	    "%s", out);
	ck_assert_msg(strstr(out, "ok 2, wrong 2") != NULL, "%s", out);
	free(out);
	wait_sql("SELECT group_concat(outcome, ',') FROM (SELECT outcome FROM"
		 " tasks WHERE name LIKE '%wrong%' ORDER BY idx)",
	    "wrong,wrong\n");
	wait_sql("SELECT group_concat(outcome, ',') FROM (SELECT outcome FROM"
		 " tasks WHERE name LIKE '%t16%' ORDER BY idx)",
	    "ok,ok\n");
	/* The ledger's candidates view agrees: best and median per task. */
	wait_sql("SELECT count(*) FROM candidates WHERE outcome = 'ok' AND"
		 " best_s > 0 AND median_s >= best_s",
	    "2\n");
}
END_TEST

/*
 * A job for a key no board has: accepted with a warning that names the
 * keys that exist, and after --unknown-key-grace its tasks end rejected
 * with the same words (it used to wait an hour without a word).
 */
START_TEST(test_job_for_unknown_key)
{
	static const char *const extra[] = {
	    "--unknown-key-grace", "1", "--agent-heartbeat", "0.2", NULL};
	char crash[65], json[512], *body;
	const char *d;
	json_t *v, *job;
	int status;

	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_restart(&b, extra);
	agent_up(0, NULL);
	harness_wait_idle(&b, 1);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "crash", crash);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpux\",\"tasks\":[{\"runner\":\"kernel\","
	    "\"artifact\":\"%s\"},{\"runner\":\"kernel\",\"artifact\":"
	    "\"%s\"}]}",
	    crash, crash);
	body = harness_http_body(
	    b.http, "POST", "/v1/jobs", json, strlen(json), &status);
	ck_assert_msg(status == 201, "%d %s", status, body);
	v = json_loads(body, 0, NULL);
	d = json_string_value(json_object_get(v, "warning"));
	ck_assert_msg(d != NULL && strstr(d, "no board has key 'cpux'") &&
			  strstr(d, "fails in 1 s") &&
			  strstr(d, "keys with boards: 'cpu'"),
	    "%s", body);
	job = harness_job_wait(
	    b.http, (long)json_integer_value(json_object_get(v, "id")));
	json_decref(v);
	free(body);
	ck_assert_str_eq(str_of(job, 0, "outcome"), "rejected");
	ck_assert_str_eq(str_of(job, 1, "outcome"), "rejected");
	d = str_of(job, 1, "detail");
	ck_assert_msg(strstr(d, "no board with key 'cpux' registered within "
				"1 s (unknown_key_grace); keys with boards: "
				"'cpu'") != NULL,
	    "%s", d);
	json_decref(job);
}
END_TEST

/*
 * Drain and undrain take --reason and leave ledger events saying who,
 * when (ISO, in events_readable) and why; a connected board is reported
 * live, not "offline now".
 */
START_TEST(test_drain_reason_recorded)
{
	char *out, *row;

	agent_up(0, NULL);
	harness_wait_idle(&b, 1);
	ck_assert_int_eq(setenv("USER", "carol", 1), 0);
	out = cli("drain --reason 'fan replaced' n0");
	ck_assert_msg(strstr(out, "drained") != NULL &&
			  strstr(out, "offline now") == NULL,
	    "%s", out);
	free(out);
	wait_sql("SELECT state FROM boards WHERE kind = 'agent'", "draining\n");
	out = cli("undrain --reason 'back from maintenance' n0");
	ck_assert_msg(strstr(out, "undrained") != NULL &&
			  strstr(out, "offline now") == NULL,
	    "%s", out);
	free(out);
	harness_wait_idle(&b, 1);
	/* An undrain that changes no mark (as for a quarantined board) used
	 * to call the connected board offline. */
	out = cli("undrain n0");
	ck_assert_msg(strstr(out, "offline now") == NULL, "%s", out);
	free(out);
	wait_sql("SELECT kind || '|' || board || '|' || actor || '|' ||"
		 " coalesce(detail, '-')"
		 " FROM events_readable WHERE kind LIKE 'board_%drain'"
		 " ORDER BY id",
	    "board_drain|n0|carol@127.0.0.1|fan replaced\n"
	    "board_undrain|n0|carol@127.0.0.1|back from maintenance\n"
	    "board_undrain|n0|carol@127.0.0.1|-\n");
	row = harness_sql(b.db, "SELECT count(*) FROM events_readable WHERE at"
				" GLOB '20[0-9][0-9]-[01][0-9]-[0-3][0-9]T*Z'"
				" AND kind = 'board_drain'");
	ck_assert_str_eq(row, "1\n");
	free(row);
}
END_TEST

/*
 * Every query in docs/ledger.md runs against a ledger a real job wrote
 * (the first one used to fail: no such column: costs), and the views
 * count what happened: tasks and sessions together.
 */
START_TEST(test_ledger_docs_queries_run)
{
	char ref[65], good[65], bad[65], crash[65], json[2048], *doc, *p, *q;
	char *row;
	int n = 0;

	agent_up(0, NULL);
	harness_wait_idle(&b, 1);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "matmul_t8", ref);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "matmul_t16", good);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "wrong", bad);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "crash", crash);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"tasks\":["
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"matmul\","
	    "\"name\":\"t16\"," HARNESS_MATMUL_ARGS
	    ",\"measurement\":{\"repeat\":3},"
	    "\"check\":{\"ref\":\"%s\"}},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"matmul\","
	    "\"name\":\"t8\"," HARNESS_MATMUL_ARGS
	    ",\"measurement\":{\"repeat\":3}},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"matmul\","
	    "\"name\":\"fast\"," HARNESS_MATMUL_ARGS
	    ",\"check\":{\"ref\":\"%s\"}},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\"}]}",
	    good, ref, ref, bad, ref, crash);
	json_decref(harness_job_wait(b.http, harness_job_submit(b.http, json)));
	harness_wait_idle(&b, 1);
	doc = slurp(NPUFARM_SOURCE_ROOT "/docs/ledger.md");
	for (p = strstr(doc, "```sql\n"); p != NULL;
	     p = strstr(q + 3, "```sql\n")) {
		p += 7;
		q = strstr(p, "```");
		ck_assert_ptr_nonnull(q);
		*q = '\0';
		/* harness_sql() fails the test on any sqlite error. */
		free(harness_sql(b.db, p));
		n++;
	}
	free(doc);
	ck_assert_int_ge(n, 10);
	row = harness_sql(b.db, "SELECT leases, tasks, runs, failures FROM"
				" board_history WHERE name = 'n0'");
	ck_assert_str_eq(row, "0|4|4|2\n");
	free(row);
	/* /v1/boards says the same. */
	{
		json_t *v = get_json("/v1/boards"), *bd;

		bd = json_array_get(json_object_get(v, "boards"), 0);
		ck_assert_int_eq(
		    json_integer_value(json_object_get(bd, "runs")), 4);
		ck_assert_int_eq(
		    json_integer_value(json_object_get(bd, "failures")), 2);
		json_decref(v);
	}
	row = harness_sql(b.db,
	    "SELECT runs, tasks, sessions, failures, failure_rate, crash,"
	    " wrong FROM failure_rates WHERE board = 'n0'");
	ck_assert_str_eq(row, "4|4|0|2|0.5|1|1\n");
	free(row);
	row = harness_sql(b.db, "SELECT name FROM candidates WHERE job_id = 1"
				" AND median_s >= best_s AND best_s > 0"
				" ORDER BY idx");
	ck_assert_str_eq(row, "t16\nt8\n");
	free(row);
}
END_TEST

/*
 * One broker per ledger: a second one on the same ledger (ports of its
 * own) exits at once naming the running one's pid, and leaves the farm's
 * boards as they are (it used to mark every live board offline).
 */
START_TEST(test_second_broker_refused)
{
	const char *bin = getenv("NPUFARM_BROKER_BIN");
	const char *argv[] = {bin, "--db", b.db, "--listen", "127.0.0.1:0",
	    "--http", "127.0.0.1:0", NULL};
	char log[320], want[64], *row, *out;
	int status = -1, i;
	pid_t pid;

	ck_assert_ptr_nonnull(bin);
	agent_up(0, NULL);
	harness_wait_idle(&b, 1);
	(void)snprintf(log, sizeof(log), "%s/second-broker.log", b.dir);
	pid = harness_spawn(bin, argv, log);
	for (i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) != pid; i++)
		usleep(10000);
	if (i == 1000) {
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, &status, 0);
		ck_abort_msg("the second broker kept running");
	}
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	(void)snprintf(want, sizeof(want), "pid %ld", (long)b.pid);
	out = slurp(log);
	ck_assert_msg(strstr(out, "one broker per ledger") != NULL &&
			  strstr(out, want) != NULL,
	    "no '%s' in: %s", want, out);
	free(out);
	row = harness_sql(b.db, "SELECT state, detail IS NULL FROM boards"
				" WHERE kind = 'agent'");
	ck_assert_str_eq(row, "idle|1\n");
	free(row);
	row = harness_sql(
	    b.db, "SELECT count(*) FROM events WHERE kind = 'broker_start'");
	ck_assert_str_eq(row, "1\n");
	free(row);
}
END_TEST

/*
 * Tags are kept (ledger, /v1/boards), filter npufarm status, and a job
 * that names tags runs only on boards that carry them.
 */
START_TEST(test_tags_kept_shown_and_obeyed)
{
	static const char *const rack_a[] = {"--tag", "rack=A", NULL};
	static const char *const rack_b[] = {"--tag", "rack=B", NULL};
	char mm[65], args[1024], *out, *row;
	json_t *job;
	int i;

	agent_up(0, rack_a);
	agent_up(1, rack_b);
	harness_wait_idle(&b, 2);
	row = harness_sql(b.db, "SELECT name, tags FROM boards WHERE kind ="
				" 'agent' ORDER BY name");
	ck_assert_str_eq(row, "n0|{\"rack\":\"A\"}\nn1|{\"rack\":\"B\"}\n");
	free(row);
	out = cli("status --tag rack=B");
	ck_assert_msg(
	    strstr(out, "n1") != NULL && strstr(out, "n0 ") == NULL, "%s", out);
	free(out);
	out = cli("--json status --tag rack=A");
	ck_assert_msg(strstr(out, "\"rack\": \"A\"") != NULL &&
			  strstr(out, "\"rack\": \"B\"") == NULL,
	    "%s", out);
	free(out);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "matmul_t16", mm);
	(void)snprintf(args, sizeof(args),
	    "submit --key cpu --tag rack=B --kernel %s/libmatmul_t16.so "
	    "--entry matmul --sweep n=8,16,24,32 --arg float32:{n}x{n} --arg "
	    "float32:{n}x{n} --arg float32:{n}x{n}",
	    NPUFARM_TEST_KERNELS);
	out = cli(args);
	job = harness_job_wait(b.http, strtol(out, NULL, 10));
	free(out);
	for (i = 0; i < 4; i++) {
		ck_assert_str_eq(str_of(job, i, "outcome"), "ok");
		ck_assert_str_eq(str_of(job, i, "board"), "n1");
	}
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(job, "tags"), "rack")),
	    "B");
	json_decref(job);
	row = harness_sql(b.db, "SELECT tags FROM jobs");
	ck_assert_str_eq(row, "{\"rack\":\"B\"}\n");
	free(row);
}
END_TEST

static Suite *
native_suite(void)
{
	Suite *s = suite_create("native");
	TCase *tc = tcase_create("native");

	tcase_add_checked_fixture(tc, broker_up, broker_down);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_crashing_candidates_leave_boards_idle);
	tcase_add_test(tc, test_probe_failure_quarantines_until_it_passes);
	tcase_add_test(tc, test_wrong_answer_caught);
	tcase_add_test(tc, test_check_validation);
	tcase_add_test(tc, test_views_of_native_work);
	tcase_add_test(tc, test_second_broker_refused);
	tcase_add_test(tc, test_cli_check_ref_and_best_per_problem);
	tcase_add_test(tc, test_job_for_unknown_key);
	tcase_add_test(tc, test_drain_reason_recorded);
	tcase_add_test(tc, test_ledger_docs_queries_run);
	tcase_add_test(tc, test_tags_kept_shown_and_obeyed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(native_suite());
}
