/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 12's reproducers against the real broker: peers that crashed it
 * or that made it spend memory and CPU they control.  Each test ends by
 * checking the broker is still alive and exits cleanly (the fixture's
 * stop), which the sanitizer build turns into "no use-after-free, no
 * uninitialised read, no leak".
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
start_with(const char *const *extra)
{
	harness_broker_start(&b, extra);
}

static void
start(void)
{
	static const char *const extra[] = {"--agent-heartbeat", "0.2", NULL};

	start_with(extra);
}

static void
stop(void)
{
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}

static struct tvmpeer *
raw_open(void)
{
	struct npufarm_err err;
	struct tvmpeer *p;

	ck_assert_msg(tvmpeer_open(b.farm, T_MS, &p, &err) == 0, "%s", err.msg);
	return p;
}

static void
send_text(struct tvmpeer *p, const char *json)
{
	ck_assert_int_eq(tvmpeer_send_frame(p, json, strlen(json)), 0);
}

static json_t *
recv_obj(struct tvmpeer *p)
{
	struct npufarm_err err;
	json_t *v;

	ck_assert_msg(tvmpeer_recv_json(p, T_MS, &v, &err) == 0, "%s", err.msg);
	ck_assert(json_is_object(v));
	return v;
}

/* An agent link named @name for key "k", welcomed. */
static struct tvmpeer *
agent_open(const char *name, const char *extra_json)
{
	struct tvmpeer *p = raw_open();
	char buf[512];
	json_t *v;

	ck_assert_int_eq(tvmpeer_send_raw(p, "NPUF", 4), 0);
	(void)snprintf(buf, sizeof(buf),
	    "{\"type\":\"hello\",\"protocol\":1,\"name\":\"%s\","
	    "\"key\":\"k\",\"version\":\"x\",\"tvm\":true%s}",
	    name, extra_json);
	send_text(p, buf);
	v = recv_obj(p);
	ck_assert_str_eq(
	    json_string_value(json_object_get(v, "type")), "welcome");
	json_decref(v);
	return p;
}

/* The agent's waiting TVM data connection: RPC magic, "server:k ...". */
static struct tvmpeer *
data_open(const char *name, const char *session)
{
	struct tvmpeer *p = raw_open();
	unsigned char hdr[8];
	char key[128];
	int n;

	n = snprintf(
	    key, sizeof(key), "server:k agent=%s session=%s", name, session);
	frame_put_le32(hdr, 0xFF271);
	frame_put_le32(hdr + 4, (uint32_t)n);
	ck_assert_int_eq(tvmpeer_send_raw(p, hdr, 8), 0);
	ck_assert_int_eq(tvmpeer_send_raw(p, key, (size_t)n), 0);
	return p;
}

static struct tvmpeer *
tracker_open(void)
{
	struct npufarm_err err;
	struct tvmpeer *p;

	ck_assert_msg(
	    tvmpeer_connect(b.farm, T_MS, &p, &err) == 0, "%s", err.msg);
	return p;
}

/* The broker answers a tracker PING: it is alive and its loop turns. */
static void
broker_alive(void)
{
	struct tvmpeer *p = tracker_open();
	struct npufarm_err err;

	ck_assert_int_eq(tvmpeer_ping(p), 0);
	ck_assert_msg(tvmpeer_recv_ok(p, T_MS, &err) == 0, "%s", err.msg);
	tvmpeer_free(p);
}

/*
 * Issue 12, crash 1: an agent's link drops while a grant of its board waits
 * for its client to connect back.  Tearing the board down released its
 * lease, which offered the dying board again; the next REQUEST was granted
 * freed memory.
 */
START_TEST(test_board_torn_down_while_grant_waits)
{
	struct tvmpeer *l, *d, *t, *u;
	struct tvmpeer_grant g;
	struct npufarm_err err;
	int r;

	l = agent_open("a0", "");
	d = data_open("a0", "s1");
	usleep(300000);
	t = tracker_open();
	ck_assert_int_eq(tvmpeer_request(t, "k", "", 0), 0);
	ck_assert_msg(
	    tvmpeer_recv_grant(t, T_MS, &g, &err) == 0, "%s", err.msg);
	/* The link goes while the grant waits for pair-up. */
	tvmpeer_free(l);
	harness_wait_sql(b.db, "SELECT state FROM boards", "offline\n", T_MS);
	/* A new REQUEST for the key must wait: there is no board any more. */
	u = tracker_open();
	ck_assert_int_eq(tvmpeer_request(u, "k", "", 0), 0);
	r = tvmpeer_recv_grant(u, 700, &g, &err);
	ck_assert_msg(r < 0, "granted a board that is gone: %s", g.matchkey);
	broker_alive();
	/* ...until a new agent of the key arrives. */
	l = agent_open("a1", "");
	tvmpeer_free(d);
	d = data_open("a1", "s2");
	ck_assert_msg(
	    tvmpeer_recv_grant(u, T_MS, &g, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(strstr(g.matchkey, "k:"));
	tvmpeer_free(u);
	tvmpeer_free(t);
	tvmpeer_free(d);
	tvmpeer_free(l);
	broker_alive();
}
END_TEST

/* The next frame is an error with @code naming @needle; then it closes. */
static void
expect_refused(struct tvmpeer *p, const char *code, const char *needle)
{
	json_t *v = recv_obj(p);
	const char *msg;

	ck_assert_str_eq(
	    json_string_value(json_object_get(v, "type")), "error");
	ck_assert_str_eq(json_string_value(json_object_get(v, "code")), code);
	msg = json_string_value(json_object_get(v, "message"));
	ck_assert_msg(msg != NULL && strstr(msg, needle) != NULL,
	    "message '%s' lacks '%s'", msg ? msg : "(none)", needle);
	json_decref(v);
	ck_assert(harness_wait_closed(tvmpeer_fd(p), T_MS));
	tvmpeer_free(p);
}

/*
 * Issue 12, crash 2: {"type":"fetch"} without a string sha256 read an
 * uninitialised pointer.  Every task frame is unpacked strictly and a
 * malformed one closes the link with bad-frame, like every other frame.
 */
START_TEST(test_malformed_task_frames_close_the_link)
{
	static const char *const frames[][2] = {
	    {"{\"type\":\"fetch\"}", "fetch: "},
	    {"{\"type\":\"fetch\",\"sha256\":7,\"offset\":0}", "fetch: "},
	    {"{\"type\":\"fetch\",\"sha256\":\"../../etc/passwd\","
	     "\"offset\":0}",
		"sha256"},
	    {"{\"type\":\"fetch\",\"sha256\":\"ab\",\"offset\":-1}", "offset"},
	    {"{\"type\":\"running\",\"task\":1}", "running: "},
	    {"{\"type\":\"running\",\"task\":1,\"attempt\":1,"
	     "\"x\":1}",
		"running: "},
	    {"{\"type\":\"result\",\"id\":\"r\",\"task\":1}", "result: "},
	    {"{\"type\":\"result\",\"id\":\"r\",\"task\":1,"
	     "\"attempt\":1,\"outcome\":\"splendid\"}",
		"outcome"},
	    {"{\"type\":\"result\",\"id\":\"r\",\"task\":1,"
	     "\"attempt\":1,\"outcome\":\"ok\",\"costs\":{}}",
		"costs"},
	};
	size_t i;

	for (i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
		struct tvmpeer *a = agent_open("f0", "");

		send_text(a, frames[i][0]);
		expect_refused(a, "bad-frame", frames[i][1]);
		broker_alive();
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("hardening");
	TCase *tc = tcase_create("crashes");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, start, stop);
	tcase_add_test(tc, test_board_torn_down_while_grant_waits);
	tcase_add_test(tc, test_malformed_task_frames_close_the_link);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
