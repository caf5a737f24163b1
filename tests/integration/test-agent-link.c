/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent link (docs/protocol.md) against the real broker: hello and
 * welcome, the board in the API and the ledger, one agent per name,
 * heartbeats, and every protocol violation closing only that link.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "err.h"
#include "frame.h"
#include "harness.h"
#include "tvmpeer.h"

#define T_MS 5000

static struct harness_broker b;

static void
start(void)
{
	static const char *const extra[] = {"--agent-heartbeat", "0.2", NULL};

	harness_broker_start(&b, extra);
}

static void
stop(void)
{
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}

static void
hello(struct tvmpeer *p, const char *name)
{
	char buf[512];
	json_t *v;

	(void)snprintf(buf, sizeof(buf),
	    "{\"type\":\"hello\",\"protocol\":1,\"name\":\"%s\","
	    "\"key\":\"rk3588\",\"version\":\"test\",\"tags\":{\"rack\":\"2\"},"
	    "\"tvm\":true,\"runners\":[\"kernel\"]}",
	    name);
	v = harness_link_hello(p, buf, T_MS);
	ck_assert_int_eq(json_integer_value(json_object_get(v, "protocol")), 1);
	ck_assert_int_gt(json_integer_value(json_object_get(v, "board_id")), 0);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(v, "heartbeat_ms")), 200);
	json_decref(v);
	/* Its board is offered (idle) once the agent says it is ready. */
	harness_send_text(p, "{\"type\":\"state\",\"state\":\"ready\"}");
}

/* The next frame is an error with @code, then the link closes. */
static void
expect_refused(struct tvmpeer *p, const char *code)
{
	json_t *v = harness_recv_obj(p, T_MS);

	ck_assert_str_eq(
	    json_string_value(json_object_get(v, "type")), "error");
	ck_assert_str_eq(json_string_value(json_object_get(v, "code")), code);
	ck_assert(json_is_string(json_object_get(v, "message")));
	json_decref(v);
	ck_assert(harness_wait_closed(tvmpeer_fd(p), T_MS));
	tvmpeer_free(p);
}

static char *
board_row(void)
{
	return harness_sql(b.db, "SELECT kind, key, name, state FROM boards");
}

START_TEST(test_agent_hello_and_board)
{
	struct tvmpeer *a = harness_link_open(b.farm, T_MS);
	char *body, *row;
	int status, i;

	hello(a, "board7");
	harness_send_text(a, "{\"type\":\"heartbeat\"}");
	body = harness_http_get(b.http, "/v1/boards", &status);
	ck_assert_int_eq(status, 200);
	ck_assert_msg(strstr(body, "\"kind\":\"agent\"") &&
			  strstr(body, "\"name\":\"board7\"") &&
			  strstr(body, "\"state\":\"idle\""),
	    "%s", body);
	free(body);
	/* Heartbeats keep it up across several periods... */
	for (i = 0; i < 8; i++) {
		usleep(100000);
		harness_send_text(a, "{\"type\":\"heartbeat\"}");
	}
	row = board_row();
	ck_assert_str_eq(row, "agent|rk3588|board7|idle\n");
	free(row);
	/* ...and silence takes it down after three. */
	ck_assert(harness_wait_closed(tvmpeer_fd(a), T_MS));
	tvmpeer_free(a);
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	row = harness_sql(b.db, "SELECT state, detail FROM boards");
	ck_assert_str_eq(row, "offline|agent link closed\n");
	free(row);
	ck_assert(harness_log_contains(&b, "no heartbeat from agent 'board7'"));
}
END_TEST

START_TEST(test_agent_duplicate_name_refused)
{
	struct tvmpeer *a = harness_link_open(b.farm, T_MS),
		       *dup = harness_link_open(b.farm, T_MS);

	hello(a, "board7");
	harness_send_text(dup,
	    "{\"type\":\"hello\",\"protocol\":1,\"name\":\"board7\","
	    "\"key\":\"rk3588\",\"version\":\"test\"}");
	expect_refused(dup, "duplicate-name");
	/* The first one is unaffected. */
	harness_send_text(a, "{\"type\":\"heartbeat\"}");
	usleep(100000);
	{
		char *row = board_row();

		ck_assert_str_eq(row, "agent|rk3588|board7|idle\n");
		free(row);
	}
	tvmpeer_free(a);
}
END_TEST

START_TEST(test_agent_protocol_errors)
{
	struct tvmpeer *p;

	p = harness_link_open(b.farm, T_MS);
	harness_send_text(p, "{\"type\":\"heartbeat\"}");
	expect_refused(p, "no-hello");
	p = harness_link_open(b.farm, T_MS);
	harness_send_text(p,
	    "{\"type\":\"hello\",\"protocol\":2,\"name\":\"x\","
	    "\"key\":\"k\",\"version\":\"v\"}");
	expect_refused(p, "protocol-version");
	p = harness_link_open(b.farm, T_MS);
	harness_send_text(p,
	    "{\"type\":\"hello\",\"protocol\":1,\"name\":\"x\","
	    "\"key\":\"k\",\"version\":\"v\",\"colour\":\"red\"}");
	expect_refused(p, "bad-hello");
	p = harness_link_open(b.farm, T_MS);
	harness_send_text(p, "{\"type\":\"hello\",");
	expect_refused(p, "bad-json");
	p = harness_link_open(b.farm, T_MS);
	hello(p, "board8");
	harness_send_text(p, "{\"type\":\"launch-missiles\"}");
	expect_refused(p, "unknown-type");
	ck_assert(harness_log_contains(&b, "unknown frame type"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("agent_link");
	TCase *tc = tcase_create("agent_link");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, start, stop);
	tcase_add_test(tc, test_agent_hello_and_board);
	tcase_add_test(tc, test_agent_duplicate_name_refused);
	tcase_add_test(tc, test_agent_protocol_errors);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
