/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Native tuning jobs end to end: the real broker, real agents running real
 * kernels (tests/kernels) in forked children, over the HTTP API.  Every
 * outcome class, validation messages, artifacts, cancel, expiry, an agent
 * killed mid-task (lost, retried elsewhere), and a broker killed mid-job
 * (every task ends exactly once).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "harness.h"

#define T_MS     20000
#define MAX_AGTS 4

static struct harness_broker b;
static pid_t agents[MAX_AGTS];
static const char *const broker_extra[] = {"--agent-heartbeat", "0.2",
    "--task-grace", "1", "--max-artifact", "1048576", NULL};

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

/* Agent @i: "j@i", key cpu. */
static void
agent_up(int i)
{
	agents[i] = harness_agent_start(&b, "j", i, NULL);
}

static void
wait_sql(const char *sql, const char *want)
{
	harness_wait_sql(b.db, sql, want, 30000);
}

static const char *
outcome_of(json_t *job, int idx)
{
	return json_string_value(
	    json_object_get(harness_job_task(job, idx), "outcome"));
}

START_TEST(test_job_every_outcome)
{
	char mm8[65], mm16[65], hang[65], crash[65], error[65], json[4096];
	json_t *job;
	long id;

	agent_up(0);
	agent_up(1);
	harness_wait_idle(&b, 2);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "matmul_t8", mm8);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "matmul_t16", mm16);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "hang", hang);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "crash", crash);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "error", error);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"user\":\"alice\",\"tasks\":["
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"matmul\","
	    "\"name\":\"tile=8\"," HARNESS_MATMUL_ARGS
	    ",\"measurement\":{\"number\":2,\"repeat\":3}},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"matmul\","
	    "\"name\":\"tile=16\"," HARNESS_MATMUL_ARGS
	    ",\"measurement\":{\"number\":2,\"repeat\":3}},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"timeout\":1},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\"},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\"}]}",
	    mm8, mm16, hang, crash, error);
	id = harness_job_submit(b.http, json);
	job = harness_job_wait(b.http, id);
	ck_assert_str_eq(
	    json_string_value(json_object_get(job, "state")), "done");
	ck_assert_str_eq(outcome_of(job, 0), "ok");
	ck_assert_str_eq(outcome_of(job, 1), "ok");
	ck_assert_int_eq(
	    json_array_size(json_object_get(harness_job_task(job, 0), "costs")),
	    3);
	ck_assert_str_eq(outcome_of(job, 2), "timeout");
	ck_assert_str_eq(outcome_of(job, 3), "crash");
	ck_assert_msg(strstr(json_string_value(json_object_get(
				 harness_job_task(job, 3), "detail")),
			  "SIGSEGV"),
	    "%s",
	    json_string_value(
		json_object_get(harness_job_task(job, 3), "detail")));
	ck_assert_str_eq(outcome_of(job, 4), "exception");
	json_decref(job);
	/* Exactly one attempt each, and the ledger agrees. */
	wait_sql("SELECT count(*), sum(attempts) FROM tasks", "5|5\n");
	wait_sql("SELECT group_concat(outcome, ',') FROM (SELECT outcome"
		 " FROM attempts ORDER BY task_id)",
	    "ok,ok,timeout,crash,exception\n");
	/* The boards are back. */
	harness_wait_idle(&b, 2);
}
END_TEST

/*
 * An artifact larger than one chunk of the agent link (256 KiB) reaches
 * the agent in several, is verified, cached, and runs.
 */
START_TEST(test_big_artifact_fetched_in_chunks)
{
	char big[65], json[512], *row;
	json_t *job;
	long id;

	agent_up(0);
	harness_wait_idle(&b, 1);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "big", big);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"tasks\":[{\"runner\":\"kernel\","
	    "\"artifact\":\"%s\"}]}",
	    big);
	id = harness_job_submit(b.http, json);
	job = harness_job_wait(b.http, id);
	ck_assert_str_eq(outcome_of(job, 0), "ok");
	json_decref(job);
	row = harness_sql(b.db, "SELECT size > 2 * 262144 FROM artifacts");
	ck_assert_str_eq(row, "1\n");
	free(row);
}
END_TEST

START_TEST(test_job_validation_and_artifacts)
{
	char mm[65], url[128], *body, big[4096];
	int status;

	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "matmul_t8", mm);
	/* Idempotent. */
	(void)snprintf(url, sizeof(url), "/v1/artifacts/%s", mm);
	free(harness_http(b.http, "HEAD", url, &status));
	ck_assert_int_eq(status, 200);
	body = harness_http_body(b.http, "PUT", url, "wrong", 5, &status);
	ck_assert_int_eq(status, 400);
	ck_assert_msg(strstr(body, "body's sha256 is"), "%s", body);
	free(body);
	free(harness_http(b.http, "HEAD",
	    "/v1/artifacts/0000000000000000000000000000000000000000000000000000"
	    "000000000000",
	    &status));
	ck_assert_int_eq(status, 404);
	/* Over --max-artifact (1 MiB). */
	{
		size_t n = 2u << 20;
		char *blob = calloc(1, n);

		body = harness_http_body(b.http, "PUT",
		    "/v1/artifacts/"
		    "1111111111111111111111111111111111111111111111111111111111"
		    "111111",
		    blob, n, &status);
		ck_assert_int_eq(status, 413);
		free(body);
		free(blob);
	}
	(void)snprintf(big, sizeof(big),
	    "{\"key\":\"cpu\",\"tasks\":[{\"runner\":\"kernel\","
	    "\"artifact\":\"%s\"},{\"runner\":\"kernel\",\"artifact\":\"%s\","
	    "\"args\":[{\"dtype\":\"float32\",\"shape\":[2]},"
	    "{\"dtype\":\"flaot32\",\"shape\":[2]}]}]}",
	    mm, mm);
	body = harness_http_body(
	    b.http, "POST", "/v1/jobs", big, strlen(big), &status);
	ck_assert_int_eq(status, 400);
	ck_assert_msg(
	    strstr(
		body, "tasks[1].args[1].dtype: unknown dtype \\\"flaot32\\\""),
	    "%s", body);
	free(body);
	(void)snprintf(big, sizeof(big),
	    "{\"key\":\"cpu\",\"tasks\":[{\"runner\":\"kernel\",\"artifact\":"
	    "\"2222222222222222222222222222222222222222222222222222222222222222"
	    "\"}]}");
	body = harness_http_body(
	    b.http, "POST", "/v1/jobs", big, strlen(big), &status);
	ck_assert_int_eq(status, 400);
	ck_assert_msg(
	    strstr(body, "tasks[0].artifact: no artifact"), "%s", body);
	free(body);
	body = harness_http_body(
	    b.http, "POST", "/v1/jobs", "{\"key\":1}", 9, &status);
	ck_assert_int_eq(status, 400);
	free(body);
	/* Nothing of the refused jobs is queued. */
	body = harness_sql(b.db, "SELECT count(*) FROM jobs WHERE state IN"
				 " ('queued', 'running')");
	ck_assert_str_eq(body, "0\n");
	free(body);
}
END_TEST

START_TEST(test_job_cancel_and_expiry)
{
	char hang[65], json[2048], path[64], *body;
	json_t *job;
	long id;
	int status, i;

	agent_up(0);
	harness_wait_idle(&b, 1);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "hang", hang);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"tasks\":[{\"runner\":\"kernel\",\"artifact\":"
	    "\"%s\",\"timeout\":60},{\"runner\":\"kernel\",\"artifact\":\"%s\"}"
	    ","
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\"}]}",
	    hang, hang, hang);
	id = harness_job_submit(b.http, json);
	wait_sql("SELECT count(*) FROM tasks WHERE state = 'running'", "1\n");
	(void)snprintf(path, sizeof(path), "/v1/jobs/%ld/cancel", id);
	body = harness_http(b.http, "POST", path, &status);
	ck_assert_msg(status == 200 && strstr(body, "\"cancelled\":3"), "%d %s",
	    status, body);
	free(body);
	job = harness_job_wait(b.http, id);
	ck_assert_str_eq(
	    json_string_value(json_object_get(job, "state")), "cancelled");
	for (i = 0; i < 3; i++)
		ck_assert_str_eq(outcome_of(job, i), "cancelled");
	json_decref(job);
	harness_wait_idle(&b, 1);
	/* A key without boards: queued past the queue timeout, expired. */
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"nobody\",\"queue_timeout\":0.3,\"tasks\":["
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\"}]}",
	    hang);
	id = harness_job_submit(b.http, json);
	job = harness_job_wait(b.http, id);
	ck_assert_str_eq(outcome_of(job, 0), "expired");
	json_decref(job);
}
END_TEST

/* Kill -9 the agent running the job's only task: lost, retried, ok. */
START_TEST(test_agent_killed_mid_task)
{
	char probe[65], json[2048], *row;
	json_t *job;
	long id;
	int victim;

	agent_up(0);
	agent_up(1);
	harness_wait_idle(&b, 2);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "probe", probe);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"tasks\":[{\"runner\":\"kernel\",\"artifact\":"
	    "\"%s\",\"entry\":\"spin_us\",\"args\":[{\"dtype\":\"int32\","
	    "\"value\":300000}],\"measurement\":{\"repeat\":3},"
	    "\"timeout\":30}]}",
	    probe);
	id = harness_job_submit(b.http, json);
	wait_sql("SELECT count(*) FROM tasks WHERE state = 'running'", "1\n");
	row = harness_sql(b.db, "SELECT b.name FROM tasks t JOIN boards b ON"
				" b.id = t.board_id");
	victim = row[1] - '0';
	free(row);
	ck_assert_int_eq(kill(agents[victim], SIGKILL), 0);
	(void)harness_reap(agents[victim], T_MS);
	agents[victim] = 0;
	job = harness_job_wait(b.http, id);
	ck_assert_str_eq(outcome_of(job, 0), "ok");
	ck_assert_int_eq(json_integer_value(json_object_get(
			     harness_job_task(job, 0), "attempts")),
	    2);
	json_decref(job);
	wait_sql("SELECT group_concat(outcome, ',') FROM (SELECT outcome FROM"
		 " attempts ORDER BY attempt)",
	    "lost,ok\n");
}
END_TEST

/*
 * Kill -9 the broker in the middle of a job of many tasks, restart it:
 * every task ends exactly once, ok.
 */
START_TEST(test_broker_killed_mid_job)
{
	char probe[65], *json, *p, *row;
	int i, n = 300;
	json_t *job;
	long id;

	agent_up(0);
	agent_up(1);
	harness_wait_idle(&b, 2);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "probe", probe);
	json = malloc((size_t)n * 160 + 64);
	p = json + sprintf(json, "{\"key\":\"cpu\",\"tasks\":[");
	for (i = 0; i < n; i++)
		p += sprintf(p,
		    "%s{\"runner\":\"kernel\",\"artifact\":\"%s\","
		    "\"entry\":\"noop\"}",
		    i ? "," : "", probe);
	(void)sprintf(p, "]}");
	id = harness_job_submit(b.http, json);
	free(json);
	wait_sql("SELECT count(*) > 40 FROM tasks WHERE state = 'done'", "1\n");
	ck_assert_int_eq(kill(b.pid, SIGKILL), 0);
	(void)harness_reap(b.pid, T_MS);
	(void)snprintf(b.listen, sizeof(b.listen), "%s", b.farm);
	harness_broker_restart(&b, broker_extra);
	job = harness_job_wait(b.http, id);
	ck_assert_str_eq(
	    json_string_value(json_object_get(job, "state")), "done");
	json_decref(job);
	row = harness_sql(b.db, "SELECT count(*), sum(outcome = 'ok'),"
				" sum(state = 'done') FROM tasks");
	ck_assert_str_eq(row, "300|300|300\n");
	free(row);
	/* One terminal outcome per attempt (a task whose result was not
	 * acknowledged before the kill is reported again, not run again). */
	row = harness_sql(b.db, "SELECT count(*) FROM attempts WHERE outcome"
				" IS NULL");
	ck_assert_str_eq(row, "0\n");
	free(row);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("jobs");
	TCase *tc = tcase_create("jobs");

	tcase_add_checked_fixture(tc, broker_up, broker_down);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_job_every_outcome);
	tcase_add_test(tc, test_job_validation_and_artifacts);
	tcase_add_test(tc, test_big_artifact_fetched_in_chunks);
	tcase_add_test(tc, test_job_cancel_and_expiry);
	tcase_add_test(tc, test_agent_killed_mid_task);
	tcase_add_test(tc, test_broker_killed_mid_job);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(suite());
}
