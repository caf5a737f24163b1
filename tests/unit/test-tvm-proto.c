/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tracker codec against the spec's vectors: requests are decoded from
 * the exact bytes TVM peers send; replies must equal the bytes TVM sends.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>
#include <jansson.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "frame.h"
#include "harness.h"
#include "json_util.h"
#include "tvm_proto.h"

static json_t *
load_vector(const char *hex)
{
	unsigned char v[512];
	size_t n = harness_unhex(hex, v, sizeof(v));
	struct npufarm_err err;
	json_t *root = NULL;

	ck_assert_uint_eq(frame_get_le32(v), n - 4);
	ck_assert_int_eq(
	    json_util_load((char *)v + 4, n - 4, 32, &root, &err), 0);
	return root;
}

static void
parse_ok(const char *hex, struct tvm_tracker_msg *m, json_t **root)
{
	struct npufarm_err err = {0};

	*root = load_vector(hex);
	ck_assert_msg(
	    tvm_tracker_parse(*root, 256, m, &err) == 0, "%s", err.msg);
}

START_TEST(test_parse_update_info_python_and_cpp)
{
	struct tvm_tracker_msg m;
	json_t *root;

	/* TRK-03 */
	parse_ok("330000005b352c207b226b6579223a20227365727665723a726b33353838"
		 "222c202261646472223a205b6e756c6c2c20393039305d7d5d",
	    &m, &root);
	ck_assert_int_eq(m.code, NPUFARM_TVM_UPDATE_INFO);
	ck_assert_str_eq(m.info_key, "server:rk3588");
	ck_assert_ptr_null(m.info_host);
	ck_assert_int_eq(m.port, 9090);
	json_decref(root);
	/* TRK-05: the C++ server sends the port as a string. */
	parse_ok("350000005b352c207b226b6579223a20227365727665723a726b33353838"
		 "222c202261646472223a205b6e756c6c2c202239303930225d7d5d",
	    &m, &root);
	ck_assert_int_eq(m.port, 9090);
	json_decref(root);
}
END_TEST

START_TEST(test_parse_put_variants)
{
	struct tvm_tracker_msg m;
	json_t *root;

	/* TRK-06 */
	parse_ok("380000005b332c2022726b33353838222c205b393039302c2022726b3335"
		 "38383a302e38343434323138353135323530343831225d2c206e756c6c5d",
	    &m, &root);
	ck_assert_int_eq(m.code, NPUFARM_TVM_PUT);
	ck_assert_str_eq(m.key, "rk3588");
	ck_assert_int_eq(m.port, 9090);
	ck_assert_str_eq(m.matchkey, "rk3588:0.8444218515250481");
	ck_assert_ptr_null(m.custom_addr);
	json_decref(root);
	/* TRK-07: custom_addr */
	parse_ok("420000005b332c2022726b33353838222c205b393039302c2022726b3335"
		 "38383a302e38343434323138353135323530343831225d2c20223139322e"
		 "3136382e312e3230225d",
	    &m, &root);
	ck_assert_str_eq(m.custom_addr, "192.168.1.20");
	json_decref(root);
	/* TRK-08: C++ matchkey */
	parse_ok("2e0000005b332c2022726b33353838222c205b393039302c2022726b3335"
		 "38383a302e353438383134225d2c206e756c6c5d",
	    &m, &root);
	ck_assert_str_eq(m.matchkey, "rk3588:0.548814");
	json_decref(root);
}
END_TEST

START_TEST(test_parse_request_and_small_codes)
{
	struct tvm_tracker_msg m;
	json_t *root;

	/* TRK-09 */
	parse_ok("140000005b342c2022726b33353838222c2022222c20315d", &m, &root);
	ck_assert_int_eq(m.code, NPUFARM_TVM_REQUEST);
	ck_assert_str_eq(m.key, "rk3588");
	ck_assert_str_eq(m.user, "");
	ck_assert(m.priority == 1.0);
	json_decref(root);
	parse_ok("030000005b375d", &m, &root); /* TRK-11 */
	ck_assert_int_eq(m.code, NPUFARM_TVM_GET_PENDING_MATCHKEYS);
	json_decref(root);
	parse_ok("030000005b365d", &m, &root); /* TRK-14 */
	ck_assert_int_eq(m.code, NPUFARM_TVM_SUMMARY);
	json_decref(root);
	parse_ok("030000005b315d", &m, &root); /* TRK-16 */
	ck_assert_int_eq(m.code, NPUFARM_TVM_PING);
	json_decref(root);
	/* TRK-17 */
	parse_ok("200000005b322c2022747261636b65723a302e3936313837343438343235"
		 "36393338225d",
	    &m, &root);
	ck_assert_int_eq(m.code, NPUFARM_TVM_STOP);
	ck_assert_str_eq(m.stop_key, "tracker:0.961874484256938");
	json_decref(root);
}
END_TEST

static int
parse_text(const char *text, size_t max_key, struct npufarm_err *err)
{
	struct tvm_tracker_msg m;
	json_t *root = json_loads(text, JSON_DECODE_ANY, NULL);
	int r;

	ck_assert_ptr_nonnull(root);
	r = tvm_tracker_parse(root, max_key, &m, err);
	json_decref(root);
	return r;
}

START_TEST(test_parse_rejects_bad_input_with_reason)
{
	struct npufarm_err err;

	/* TRK-N3: unknown code */
	ck_assert_int_eq(parse_text("[99]", 256, &err), -EPROTO);
	ck_assert(strstr(err.msg, "99") != NULL);
	ck_assert_int_eq(parse_text("1", 256, &err), -EINVAL);
	ck_assert_int_eq(parse_text("[\"3\"]", 256, &err), -EINVAL);
	ck_assert_int_eq(
	    parse_text("[3, \"k\", [\"x\", \"k:1\"]]", 256, &err), -EINVAL);
	ck_assert(strstr(err.msg, "PUT port") != NULL);
	ck_assert_int_eq(
	    parse_text("[3, \"k\", [70000, \"k:1\"]]", 256, &err), -ERANGE);
	ck_assert_int_eq(
	    parse_text("[4, \"k\", \"\", \"high\"]", 256, &err), -EINVAL);
	ck_assert(strstr(err.msg, "priority") != NULL);
	ck_assert_int_eq(
	    parse_text("[5, {\"key\": \"server:k\"}]", 256, &err), -EINVAL);
	ck_assert(strstr(err.msg, "addr") != NULL);
	/* Key length limit: 9 bytes against a limit of 8. */
	ck_assert_int_eq(
	    parse_text("[4, \"123456789\", \"\", 1]", 8, &err), -ENAMETOOLONG);
	ck_assert_int_eq(parse_text("[4, \"12345678\", \"\", 1]", 8, &err), 0);
}
END_TEST

static void
check_out(struct evbuffer *out, const char *hex)
{
	unsigned char want[512], got[512];
	size_t n = harness_unhex(hex, want, sizeof(want));

	ck_assert_uint_eq(evbuffer_get_length(out), n);
	evbuffer_remove(out, got, n);
	ck_assert(memcmp(got, want, n) == 0);
}

START_TEST(test_replies_match_vectors)
{
	struct evbuffer *out = evbuffer_new();
	json_t *v;

	ck_assert_int_eq(tvm_tracker_add_code(out, 0), 0);
	check_out(out, "0100000030"); /* TRK-04 */
	ck_assert_int_eq(tvm_tracker_add_code(out, -1), 0);
	check_out(out, "020000002d31"); /* TRK-18 */
	ck_assert_int_eq(tvm_tracker_add_grant(out, "192.168.1.20", 9090,
			     "rk3588:0.8444218515250481"),
	    0);
	check_out(out, /* TRK-10 */
	    "380000005b302c205b223139322e3136382e312e3230222c20393039302c2022"
	    "726b333538383a302e38343434323138353135323530343831225d5d");
	v = json_pack("[s]", "rk3588:0.8444218515250481");
	ck_assert_int_eq(tvm_tracker_add_json(out, v), 0);
	json_decref(v);
	check_out(out, /* TRK-12 */
	    "1d0000005b22726b333538383a302e38343434323138353135323530343831225"
	    "d");
	v = json_array();
	ck_assert_int_eq(tvm_tracker_add_json(out, v), 0);
	json_decref(v);
	check_out(out, "020000005b5d"); /* TRK-13 */
	v = json_loads(
	    "[0, {\"queue_info\": {\"rk3588\": {\"free\": 1, "
	    "\"pending\": 0}}, \"server_info\": [{\"key\": "
	    "\"server:rk3588\", \"addr\": [\"192.168.1.20\", 9090]}]}]",
	    0, NULL);
	ck_assert_int_eq(tvm_tracker_add_json(out, v), 0);
	json_decref(v);
	check_out(out, /* TRK-15 */
	    "850000005b302c207b2271756575655f696e666f223a207b22726b33353838"
	    "223a207b2266726565223a20312c202270656e64696e67223a20307d7d2c2022"
	    "7365727665725f696e666f223a205b7b226b6579223a20227365727665723a72"
	    "6b33353838222c202261646472223a205b223139322e3136382e312e3230222c"
	    "20393039305d7d5d7d5d");
	evbuffer_free(out);
}
END_TEST

START_TEST(test_fail_reply_is_python_shaped)
{
	struct evbuffer *out = evbuffer_new();
	char buf[128];
	size_t n;

	ck_assert_int_eq(tvm_tracker_add_fail(out, "no board: \xc3\xa9"), 0);
	n = evbuffer_get_length(out);
	evbuffer_remove(out, buf, n);
	buf[n] = '\0';
	/* Non-ASCII escaped like json.dumps, so byte count == char count. */
	ck_assert_str_eq(buf + 4, "[-1, \"no board: \\u00e9\"]");
	evbuffer_free(out);
}
END_TEST

static bool
str_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/*
 * @text through tvm_tracker_parse_fast(); when it takes the frame, the
 * message must equal what jansson and tvm_tracker_parse() make of it.
 * Returns whether the fast path took it.
 */
static bool
fast_same(const char *text, size_t max_key)
{
	struct tvm_tracker_msg f, m;
	struct npufarm_err err;
	char scratch[1024];
	json_t *root;
	size_t len = strlen(text);

	memset(&f, 0x5a, sizeof(f));
	if (tvm_tracker_parse_fast(
		text, len, max_key, 32, scratch, sizeof(scratch), &f) != 1)
		return false;
	ck_assert_msg(json_util_load(text, len, 32, &root, &err) == 0,
	    "fast path took invalid JSON %s", text);
	ck_assert_msg(tvm_tracker_parse(root, max_key, &m, &err) == 0,
	    "fast path took %s, which tvm_tracker_parse() refuses: %s", text,
	    err.msg);
	ck_assert_int_eq(f.code, m.code);
	ck_assert(str_same(f.key, m.key));
	ck_assert(str_same(f.user, m.user));
	ck_assert(f.priority == m.priority);
	ck_assert_int_eq(f.port, m.port);
	ck_assert(str_same(f.matchkey, m.matchkey));
	ck_assert(str_same(f.custom_addr, m.custom_addr));
	ck_assert_ptr_null(f.stop_key);
	ck_assert_ptr_null(f.info);
	ck_assert_ptr_null(f.info_key);
	ck_assert_ptr_null(f.info_host);
	json_decref(root);
	return true;
}

/*
 * The fast path takes what TVM's Python and C++ peers send in a lease
 * cycle and decodes it as jansson does; it leaves everything unusual,
 * and every error, to jansson, so the reasons logged stay the same.
 */
START_TEST(test_parse_fast_matches_jansson)
{
	static const char *const taken[] = {
	    "[4, \"rk3588\", \"\", 1]",
	    "[4,\"rk3588\",\"alice\",0]",
	    "[4, \"k\", \"u\", 123456789]",
	    " \t\r\n[ 4 , \"k\" , \"\" , 10 ] \n",
	    "[3, \"rk3588\", [9090, \"rk3588:0.8444218515250481\"], null]",
	    "[3,\"k\",[0,\"m\"],\"10.0.0.1\"]",
	    "[3, \"k\", [65535, \"m\"], \"host name ~!@#$%^&*()\"]",
	    "[3, \"\", [1, \"\"], null]",
	    "[1]",
	    "[6]",
	    "[ 7 ]",
	};
	static const char *const left[] = {
	    /* legal, but unusual: jansson decodes them */
	    "[4, \"k\", \"\", 1.5]",
	    "[4, \"k\", \"\", 1e3]",
	    "[4, \"k\", \"\", -1]",
	    "[4, \"k\", \"\", 1234567890]",
	    "[4, \"k\", null, 1]",
	    "[4, \"k\", \"\"]",
	    "[4, \"k\", \"\", 1, \"extra\"]",
	    "[4, \"k\\u00e9\", \"\", 1]",
	    "[4, \"k\\\"q\", \"\", 1]",
	    "[4, \"k\xc3\xa9\", \"\", 1]",
	    "[4, \"k\x7f\", \"\", 1]",
	    "[3, \"k\", [\"9090\", \"m\"], null]",
	    "[3, \"k\", [9090, \"m\"]]",
	    "[3, \"k\", [9090, \"m\"], \"a\\/b\"]",
	    "[1, 2]",
	    "[2, \"k\"]",
	    "[5, {\"key\": \"server:k\", \"addr\": [null, 9090]}]",
	    /* errors: jansson and tvm_tracker_parse() say why */
	    "[3, \"k\", [65536, \"m\"], null]",
	    "[3, \"k\", [09, \"m\"], null]",
	    "[4, \"k\", \"\", 01]",
	    "[04, \"k\", \"\", 1]",
	    "[4, \"k\", \"\", 1]x",
	    "[4, \"k\", \"\", 1],",
	    "[4, \"k\", \"\", 1",
	    "[4, \"k\", \"\",, 1]",
	    "[4, \"k\t\", \"\", 1]",
	    "[4, \"k, \"\", 1]",
	    "[8]",
	    "[0]",
	    "[3, \"k\", [1, \"m\"], nul]",
	    "[3, \"k\", [1, \"m\"], nullx]",
	    "4",
	    "",
	};
	char big[300], text[400];
	size_t i;

	for (i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
		ck_assert_msg(
		    fast_same(taken[i], 256), "not taken: %s", taken[i]);
	for (i = 0; i < sizeof(left) / sizeof(left[0]); i++)
		ck_assert_msg(!fast_same(left[i], 256), "taken: %s", left[i]);
	/* A key of exactly the limit is taken; one byte more is left for
	 * tvm_tracker_parse() to refuse. */
	memset(big, 'k', 256);
	big[256] = '\0';
	(void)snprintf(text, sizeof(text), "[4, \"%s\", \"\", 1]", big);
	ck_assert(fast_same(text, 256));
	ck_assert(!fast_same(text, 255));
	(void)snprintf(
	    text, sizeof(text), "[3, \"k\", [1, \"%s\"], null]", big);
	ck_assert(fast_same(text, 256));
	ck_assert(!fast_same(text, 255));
	/* Every prefix of a taken frame is left (and is invalid JSON). */
	for (i = 0; i < strlen(taken[4]); i++) {
		struct tvm_tracker_msg m;
		char scratch[1024];

		ck_assert_int_eq(tvm_tracker_parse_fast(taken[4], i, 256, 32,
				     scratch, sizeof(scratch), &m),
		    0);
	}
}
END_TEST

/* The body of the one frame in @out (NUL-terminated, malloc'd), drained. */
static char *
take_body(struct evbuffer *out)
{
	size_t n = evbuffer_get_length(out);
	char *buf = malloc(n + 1);

	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_ge(n, 4);
	evbuffer_remove(out, buf, n);
	ck_assert_uint_eq(frame_get_le32((unsigned char *)buf), n - 4);
	memmove(buf, buf + 4, n - 4);
	buf[n - 4] = '\0';
	return buf;
}

/*
 * The replies are written without jansson; each must be byte for byte
 * what json_util_dumps_py() makes of the same value, awkward strings
 * included, and a string jansson refuses (not UTF-8) fails the reply.
 */
START_TEST(test_direct_replies_match_jansson)
{
	static const char *const strs[] = {
	    "",
	    "192.168.1.20",
	    "rk3588:0.8444218515250481",
	    "a \"quoted\" key",
	    "back\\slash\\",
	    "\\\"",
	    "/slash/",
	    "tab\tnl\ncr\rbs\bff\f",
	    "\x01\x02\x1f\x7f",
	    "\xc3\xa9t\xc3\xa9",        /* U+00E9 */
	    "\xe2\x82\xac",             /* U+20AC */
	    "\xef\xbf\xbd\xef\xbb\xbf", /* U+FFFD, U+FEFF */
	    "\xf0\x9f\x98\x80 smile",   /* U+1F600: a surrogate pair */
	    "\xf4\x8f\xbf\xbf",         /* U+10FFFF */
	    "\xdf\xbf\xe0\xa0\x80",     /* U+07FF, U+0800 */
	    "mixed \"\\\x05\xc3\xa9\xf0\x90\x80\x80/",
	};
	static const char *const bad[] = {
	    "\xc3",             /* truncated */
	    "\xc0\xaf",         /* overlong */
	    "\xe0\x80\xaf",     /* overlong */
	    "\xed\xa0\x80",     /* a surrogate */
	    "\xf4\x90\x80\x80", /* above U+10FFFF */
	    "\x80",             /* a stray continuation */
	    "ok\xff",
	};
	static const long ports[] = {0, 1, 9090, 65535, -1, 1234567890L};
	struct evbuffer *out = evbuffer_new();
	char all[128], *got, *want;
	size_t i, j;
	json_t *v;

	for (i = 1; i < 128; i++)
		all[i - 1] = (char)i;
	all[127] = '\0';
	for (i = 0; i <= sizeof(strs) / sizeof(strs[0]); i++) {
		const char *s =
		    i < sizeof(strs) / sizeof(strs[0]) ? strs[i] : all;

		for (j = 0; j < sizeof(ports) / sizeof(ports[0]); j++) {
			const char *mk =
			    strs[(i + j) % (sizeof(strs) / sizeof(strs[0]))];

			ck_assert_int_eq(
			    tvm_tracker_add_grant(out, s, ports[j], mk), 0);
			got = take_body(out);
			v = json_pack("[i[sIs]]", NPUFARM_TVM_SUCCESS, s,
			    (json_int_t)ports[j], mk);
			ck_assert_ptr_nonnull(v);
			want = json_util_dumps_py(v);
			json_decref(v);
			ck_assert_str_eq(got, want);
			free(got);
			free(want);
		}
		ck_assert_int_eq(tvm_tracker_add_fail(out, s), 0);
		got = take_body(out);
		v = json_pack("[is]", NPUFARM_TVM_FAIL, s);
		want = json_util_dumps_py(v);
		json_decref(v);
		ck_assert_str_eq(got, want);
		free(got);
		free(want);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_ptr_null(json_string(bad[i]));
		ck_assert_int_lt(tvm_tracker_add_grant(out, bad[i], 1, "k"), 0);
		ck_assert_int_lt(tvm_tracker_add_grant(out, "h", 1, bad[i]), 0);
		ck_assert_int_lt(tvm_tracker_add_fail(out, bad[i]), 0);
		ck_assert_uint_eq(evbuffer_get_length(out), 0);
	}
	for (i = 0; i < 3; i++) {
		static const int codes[] = {0, -1, 2147483647};
		char num[16];

		ck_assert_int_eq(tvm_tracker_add_code(out, codes[i]), 0);
		got = take_body(out);
		(void)snprintf(num, sizeof(num), "%d", codes[i]);
		ck_assert_str_eq(got, num);
		free(got);
	}
	evbuffer_free(out);
}
END_TEST

START_TEST(test_json_depth_limit)
{
	struct npufarm_err err;
	json_t *root;

	ck_assert_int_eq(json_util_depth("[[[1]]]", 7, 3), 0);
	ck_assert_int_eq(json_util_depth("[[[[1]]]]", 9, 3), -E2BIG);
	/* Brackets inside strings do not count. */
	ck_assert_int_eq(json_util_depth("[\"[[[[\\\"[[\"]", 12, 2), 0);
	ck_assert_int_eq(
	    json_util_load("[[[[1]]]]", 9, 3, &root, &err), -E2BIG);
	ck_assert_int_eq(json_util_load("[1,", 3, 3, &root, &err), -EBADMSG);
	ck_assert(strstr(err.msg, "column") != NULL);
	ck_assert_int_eq(
	    json_util_load("{\"a\":1,\"a\":2}", 13, 3, &root, &err), -EBADMSG);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tvm_proto");
	TCase *tc = tcase_create("tracker");

	tcase_add_test(tc, test_parse_update_info_python_and_cpp);
	tcase_add_test(tc, test_parse_put_variants);
	tcase_add_test(tc, test_parse_request_and_small_codes);
	tcase_add_test(tc, test_parse_rejects_bad_input_with_reason);
	tcase_add_test(tc, test_replies_match_vectors);
	tcase_add_test(tc, test_fail_reply_is_python_shaped);
	tcase_add_test(tc, test_json_depth_limit);
	tcase_add_test(tc, test_direct_replies_match_jansson);
	tcase_add_test(tc, test_parse_fast_matches_jansson);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
