/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every limit of the farm port, exceeded by one connection while a
 * registered board looks on: the offender is closed with a logged reason,
 * the bystander keeps working and keeps its registration.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "err.h"
#include "frame.h"
#include "harness.h"
#include "tvmpeer.h"

#define T_MS 5000

static const char *const limits[] = {"--max-frame", "64", "--max-json-depth",
    "4", "--max-key-len", "16", "--max-pending", "2", "--max-connections", "6",
    "--handshake-timeout", "0.3", "--max-keys", "2", NULL};

static struct harness_broker b;
static struct tvmpeer *bystander;

static struct tvmpeer *
peer(void)
{
	struct npufarm_err err;
	struct tvmpeer *p;

	ck_assert_msg(
	    tvmpeer_connect(b.farm, T_MS, &p, &err) == 0, "%s", err.msg);
	return p;
}

static void
start(void)
{
	struct npufarm_err err;

	harness_broker_start(&b, limits);
	bystander = peer();
	ck_assert_int_eq(tvmpeer_update_info(bystander, "k1", 9090), 0);
	ck_assert_int_eq(tvmpeer_recv_ok(bystander, T_MS, &err), 0);
	ck_assert_int_eq(tvmpeer_put(bystander, "k1", 9090, "k1:0.1", NULL), 0);
	ck_assert_int_eq(tvmpeer_recv_ok(bystander, T_MS, &err), 0);
}

/* The bystander still answers and its board is still free. */
static void
bystander_fine(void)
{
	struct npufarm_err err;
	json_t *v;

	ck_assert_int_eq(tvmpeer_ping(bystander), 0);
	ck_assert_int_eq(tvmpeer_recv_ok(bystander, T_MS, &err), 0);
	ck_assert_int_eq(tvmpeer_get_pending(bystander), 0);
	ck_assert_int_eq(tvmpeer_recv_json(bystander, T_MS, &v, &err), 0);
	ck_assert_str_eq(json_string_value(json_array_get(v, 0)), "k1:0.1");
	json_decref(v);
}

static void
stop(void)
{
	bystander_fine();
	bystander = tvmpeer_free(bystander);
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}

static void
expect_closed(struct tvmpeer *p, const char *log_needle)
{
	ck_assert(harness_wait_closed(tvmpeer_fd(p), T_MS));
	tvmpeer_free(p);
	ck_assert_msg(
	    harness_log_contains(&b, log_needle), "log lacks '%s'", log_needle);
}

START_TEST(test_limit_frame_size)
{
	struct tvmpeer *p = peer();
	unsigned char hdr[4];

	/* 65 > --max-frame 64: closed on the header, before any body. */
	frame_put_le32(hdr, 65);
	ck_assert_int_eq(tvmpeer_send_raw(p, hdr, 4), 0);
	expect_closed(p, "exceeds max_frame=64");
}
END_TEST

START_TEST(test_limit_zero_and_negative_length)
{
	struct tvmpeer *p = peer();
	unsigned char hdr[4];

	frame_put_le32(hdr, 0);
	ck_assert_int_eq(tvmpeer_send_raw(p, hdr, 4), 0);
	expect_closed(p, "zero-length frame");
	p = peer();
	frame_put_le32(hdr, 0xfffffffeu);
	ck_assert_int_eq(tvmpeer_send_raw(p, hdr, 4), 0);
	expect_closed(p, "or is negative");
}
END_TEST

START_TEST(test_limit_json_depth)
{
	struct tvmpeer *p = peer();

	harness_send_text(p, "[5, {\"addr\": [null, 1], \"x\": [[[1]]]}]");
	expect_closed(p, "JSON nested deeper than 4 levels");
}
END_TEST

START_TEST(test_limit_key_length)
{
	struct tvmpeer *p = peer();

	harness_send_text(
	    p, "[4, \"k23456789abcdefgh\", \"\", 1]"); /* 17 bytes */
	expect_closed(p, "REQUEST key: 17 bytes long, limit is 16");
}
END_TEST

START_TEST(test_limit_pending_requests)
{
	struct tvmpeer *p = peer();

	harness_send_text(p, "[4, \"k1x\", \"\", 1]");
	harness_send_text(p, "[4, \"k1x\", \"\", 1]");
	harness_send_text(p, "[4, \"k1x\", \"\", 1]");
	expect_closed(p, "limit max_pending=2");
}
END_TEST

START_TEST(test_limit_keys)
{
	struct tvmpeer *p = peer(), *q = peer();

	/* k1 exists; one more key is allowed, the third is not. */
	harness_send_text(p, "[4, \"k2\", \"\", 1]");
	ck_assert_int_eq(tvmpeer_ping(p), 0);
	ck_assert_int_eq(tvmpeer_recv_ok(p, T_MS, NULL), 0);
	harness_send_text(q, "[4, \"k3\", \"\", 1]");
	expect_closed(q, "too many distinct keys (limit max_keys=2)");
	tvmpeer_free(p);
}
END_TEST

START_TEST(test_limit_connections)
{
	struct tvmpeer *p[5];
	struct npufarm_err err;
	struct tvmpeer *extra;
	int i;

	/* The bystander is one; five more reach the limit of six. */
	for (i = 0; i < 5; i++)
		p[i] = peer();
	ck_assert_int_eq(tvmpeer_open(b.farm, T_MS, &extra, &err), 0);
	ck_assert(harness_wait_closed(tvmpeer_fd(extra), T_MS));
	tvmpeer_free(extra);
	ck_assert(harness_log_contains(&b, "limit max_connections=6"));
	for (i = 0; i < 5; i++)
		tvmpeer_free(p[i]);
}
END_TEST

START_TEST(test_handshake_timeout_and_bad_magic)
{
	struct npufarm_err err;
	struct tvmpeer *p;

	ck_assert_int_eq(tvmpeer_open(b.farm, T_MS, &p, &err), 0);
	expect_closed(p, "no protocol magic within 300 ms");
	ck_assert_int_eq(tvmpeer_open(b.farm, T_MS, &p, &err), 0);
	ck_assert_int_eq(tvmpeer_send_raw(p, "GET / HTTP/1.1\r\n\r\n", 18), 0);
	expect_closed(p, "unknown protocol magic 47 45 54 20");
}
END_TEST

START_TEST(test_bad_json_and_types)
{
	struct tvmpeer *p = peer();

	harness_send_text(p, "[3, \"k1\", [9090");
	expect_closed(p, "frame 1: invalid JSON");
	p = peer();
	harness_send_text(p, "[3, \"k1\", [\"9090\", 5]]");
	expect_closed(p, "PUT matchkey: expected a string");
	p = peer();
	harness_send_text(p, "[99]");
	expect_closed(p, "unknown tracker code 99");
}
END_TEST

START_TEST(test_limit_rpc_hello)
{
	struct npufarm_err err;
	unsigned char buf[64];
	struct tvmpeer *p;

	/* RPC magic and a length, then silence: the handshake deadline. */
	ck_assert_int_eq(tvmpeer_open(b.farm, T_MS, &p, &err), 0);
	frame_put_le32(buf, 0xFF271);
	frame_put_le32(buf + 4, 10);
	ck_assert_int_eq(tvmpeer_send_raw(p, buf, 8), 0);
	expect_closed(p, "no complete RPC hello within 300 ms");
	/* A key over --max-key-len 16, refused on its length alone. */
	ck_assert_int_eq(tvmpeer_open(b.farm, T_MS, &p, &err), 0);
	frame_put_le32(buf + 4, 40);
	ck_assert_int_eq(tvmpeer_send_raw(p, buf, 8), 0);
	expect_closed(p, "RPC hello:");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, start, stop);
	tcase_add_test(tc, test_limit_frame_size);
	tcase_add_test(tc, test_limit_zero_and_negative_length);
	tcase_add_test(tc, test_limit_json_depth);
	tcase_add_test(tc, test_limit_key_length);
	tcase_add_test(tc, test_limit_pending_requests);
	tcase_add_test(tc, test_limit_keys);
	tcase_add_test(tc, test_limit_connections);
	tcase_add_test(tc, test_handshake_timeout_and_bad_magic);
	tcase_add_test(tc, test_bad_json_and_types);
	tcase_add_test(tc, test_limit_rpc_hello);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
