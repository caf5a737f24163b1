/* SPDX-License-Identifier: Apache-2.0 */
/* common/frame.c against the spec's tracker vectors, whole and split. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>
#include <jansson.h>

#include "err.h"
#include "frame.h"
#include "harness.h"

/* TRK-06: PUT from the Python server. */
static const char trk06[] =
    "380000005b332c2022726b33353838222c205b393039302c2022726b333538383a302e"
    "38343434323138353135323530343831225d2c206e756c6c5d";
static const char trk06_json[] =
    "[3, \"rk3588\", [9090, \"rk3588:0.8444218515250481\"], null]";

static void
feed_and_check(const unsigned char *v, size_t n, size_t step)
{
	struct evbuffer *in = evbuffer_new();
	const char *body;
	size_t len, off;
	int r = FRAME_INCOMPLETE, frames = 0;

	for (off = 0; off < n; off += step) {
		size_t k = n - off < step ? n - off : step;

		evbuffer_add(in, v + off, k);
		r = frame_next(in, 1 << 20, &body, &len);
		if (off + k < n)
			ck_assert_int_eq(r, FRAME_INCOMPLETE);
	}
	ck_assert_int_eq(r, FRAME_READY);
	ck_assert_uint_eq(len, strlen(trk06_json));
	ck_assert(memcmp(body, trk06_json, len) == 0);
	frame_consume(in, len);
	frames++;
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	ck_assert_int_eq(frames, 1);
	evbuffer_free(in);
}

START_TEST(test_frame_next_whole_and_split)
{
	unsigned char v[128];
	size_t n = harness_unhex(trk06, v, sizeof(v));

	ck_assert_uint_eq(n, 60);
	feed_and_check(v, n, n);
	feed_and_check(v, n, 1);
	feed_and_check(v, n, 3);
	feed_and_check(v, n, 4); /* header then body, as Python sends */
	feed_and_check(v, n, 7);
}
END_TEST

START_TEST(test_frame_next_two_frames_in_one_read)
{
	struct evbuffer *in = evbuffer_new();
	unsigned char v[16];
	const char *body;
	size_t n, len;

	/* TRK-16 PING twice back to back. */
	n = harness_unhex("030000005b315d", v, sizeof(v));
	evbuffer_add(in, v, n);
	evbuffer_add(in, v, n);
	ck_assert_int_eq(frame_next(in, 64, &body, &len), FRAME_READY);
	ck_assert(len == 3 && memcmp(body, "[1]", 3) == 0);
	frame_consume(in, len);
	ck_assert_int_eq(frame_next(in, 64, &body, &len), FRAME_READY);
	frame_consume(in, len);
	ck_assert_int_eq(frame_next(in, 64, &body, &len), FRAME_INCOMPLETE);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_frame_next_rejects_zero_length)
{
	struct evbuffer *in = evbuffer_new();
	unsigned char v[4];
	const char *body;
	size_t len;

	/* TRK-N2: TVM wedges; we must report it. */
	evbuffer_add(in, v, harness_unhex("00000000", v, sizeof(v)));
	ck_assert_int_eq(frame_next(in, 64, &body, &len), -EBADMSG);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_frame_next_rejects_oversize_before_body)
{
	struct evbuffer *in = evbuffer_new();
	unsigned char hdr[4];
	const char *body;
	size_t len;

	frame_put_le32(hdr, 1024 * 1024 + 1);
	evbuffer_add(in, hdr, 4); /* no body yet: rejected on the header */
	ck_assert_int_eq(frame_next(in, 1024 * 1024, &body, &len), -EMSGSIZE);
	frame_put_le32(hdr, 0x80000000u); /* negative int32 */
	evbuffer_drain(in, 4);
	evbuffer_add(in, hdr, 4);
	ck_assert_int_eq(frame_next(in, 1024 * 1024, &body, &len), -EMSGSIZE);
	evbuffer_free(in);
}
END_TEST

/* frame_pull_json(): split frames wait, good JSON is returned and
 * consumed, bad JSON is consumed and explained, framing errors leave
 * the buffer alone. */
START_TEST(test_frame_pull_json)
{
	struct evbuffer *in = evbuffer_new();
	struct npufarm_err err;
	json_t *v = NULL;

	ck_assert_int_eq(frame_add(in, "{\"a\":1}", 7), 0);
	ck_assert_int_eq(frame_add(in, "{bad", 4), 0);
	ck_assert_int_eq(frame_add(in, "[[[1]]]", 7), 0);
	/* A header alone is incomplete, not an error. */
	{
		struct evbuffer *part = evbuffer_new();

		ck_assert_int_eq(evbuffer_add(part, "\x07\0\0\0{", 5), 0);
		ck_assert_int_eq(
		    frame_pull_json(part, 64, 8, &v, &err), FRAME_INCOMPLETE);
		ck_assert_uint_eq(evbuffer_get_length(part), 5);
		evbuffer_free(part);
	}
	ck_assert_int_eq(frame_pull_json(in, 64, 8, &v, &err), FRAME_READY);
	ck_assert_int_eq(json_integer_value(json_object_get(v, "a")), 1);
	json_decref(v);
	ck_assert_int_eq(frame_pull_json(in, 64, 8, &v, &err), FRAME_BAD_JSON);
	ck_assert_ptr_nonnull(strstr(err.msg, "invalid JSON"));
	/* Deeper than allowed: consumed and explained too. */
	ck_assert_int_eq(frame_pull_json(in, 64, 2, &v, &err), FRAME_BAD_JSON);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	/* Over the size limit: refused on the header, nothing consumed. */
	ck_assert_int_eq(frame_add(in, "{\"a\":1}", 7), 0);
	ck_assert_int_eq(frame_pull_json(in, 6, 8, &v, &err), -EMSGSIZE);
	ck_assert_uint_eq(evbuffer_get_length(in), 11);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_frame_add_matches_vector)
{
	struct evbuffer *out = evbuffer_new();
	unsigned char v[8], got[8];

	/* TRK-04: the SUCCESS reply. */
	ck_assert_uint_eq(harness_unhex("0100000030", v, sizeof(v)), 5);
	ck_assert_int_eq(frame_add(out, "0", 1), 0);
	ck_assert_uint_eq(evbuffer_get_length(out), 5);
	evbuffer_copyout(out, got, 5);
	ck_assert(memcmp(got, v, 5) == 0);
	/* One contiguous chain: header and body leave in one write. */
	ck_assert_int_eq(evbuffer_peek(out, -1, NULL, NULL, 0), 1);
	evbuffer_free(out);
}
END_TEST

START_TEST(test_frame_add_buffer_moves_body)
{
	struct evbuffer *out = evbuffer_new(), *body = evbuffer_new();
	unsigned char v[8], got[8];

	evbuffer_add(body, "0", 1);
	ck_assert_int_eq(frame_add_buffer(out, body), 0);
	ck_assert_uint_eq(evbuffer_get_length(body), 0);
	ck_assert_uint_eq(harness_unhex("0100000030", v, sizeof(v)), 5);
	ck_assert_uint_eq(evbuffer_get_length(out), 5);
	evbuffer_copyout(out, got, 5);
	ck_assert(memcmp(got, v, 5) == 0);
	evbuffer_free(body);
	evbuffer_free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("frame");

	tcase_add_test(tc, test_frame_next_whole_and_split);
	tcase_add_test(tc, test_frame_next_two_frames_in_one_read);
	tcase_add_test(tc, test_frame_next_rejects_zero_length);
	tcase_add_test(tc, test_frame_next_rejects_oversize_before_body);
	tcase_add_test(tc, test_frame_pull_json);
	tcase_add_test(tc, test_frame_add_matches_vector);
	tcase_add_test(tc, test_frame_add_buffer_moves_body);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
