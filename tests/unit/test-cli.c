/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the CLI's pure helpers: duration, time and escape
 * formatting (format.c), table layout (table.c), argument parsing (cli.c)
 * and the HTTP client's refusals that need no server (http.c).  Talking
 * to a broker, or to no broker, is tests/integration/test-cli.c's job.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "cli.h"
#include "err.h"
#include "format.h"
#include "harness.h"
#include "http.h"
#include "table.h"

static const char *
dur(double s)
{
	static char buf[FORMAT_DURATION_MAX];

	return format_duration(s, buf, sizeof(buf));
}

START_TEST(test_format_duration_units)
{
	ck_assert_str_eq(dur(0), "0us");
	ck_assert_str_eq(dur(0.000120), "120us");
	ck_assert_str_eq(dur(0.000999), "999us");
	ck_assert_str_eq(dur(0.0032), "3.2ms");
	ck_assert_str_eq(dur(0.045), "45ms");
	ck_assert_str_eq(dur(0.25), "250ms");
	ck_assert_str_eq(dur(1.5), "1.5s");
	ck_assert_str_eq(dur(59.94), "59.9s");
	ck_assert_str_eq(dur(123), "2m03s");
	ck_assert_str_eq(dur(3723), "1h02m");
	ck_assert_str_eq(dur(90061), "1d01h");
}
END_TEST

/* Rounding happens before the unit is chosen: no "1000us" or "60.0s". */
START_TEST(test_format_duration_rounding_boundaries)
{
	ck_assert_str_eq(dur(0.0009996), "1.0ms");
	ck_assert_str_eq(dur(0.0099996), "10ms");
	ck_assert_str_eq(dur(0.9996), "1.0s");
	ck_assert_str_eq(dur(59.96), "1m00s");
	ck_assert_str_eq(dur(3599.6), "1h00m");
	ck_assert_str_eq(dur(86399), "1d00h");
}
END_TEST

START_TEST(test_format_duration_invalid_is_dash)
{
	ck_assert_str_eq(dur(-0.5), "-");
	ck_assert_str_eq(dur(NAN), "-");
	ck_assert_str_eq(dur(INFINITY), "-");
	ck_assert_str_eq(dur(1e13), "-");
}
END_TEST

START_TEST(test_format_duration_truncates_safely)
{
	char buf[4];

	ck_assert_str_eq(format_duration(3723, buf, sizeof(buf)), "1h0");
}
END_TEST

START_TEST(test_format_parse_time_utc)
{
	int64_t us = 0;

	ck_assert_int_eq(
	    format_parse_time("1970-01-01T00:00:01.000002Z", &us, NULL), 0);
	ck_assert_int_eq(us, 1000002);
	ck_assert_int_eq(
	    format_parse_time("2026-11-24T22:01:02.123456Z", &us, NULL), 0);
	ck_assert_int_eq(us, INT64_C(1795557662123456));
	ck_assert_int_eq(
	    format_parse_time("2026-11-24T22:01:02Z", &us, NULL), 0);
	ck_assert_int_eq(us, INT64_C(1795557662000000));
}
END_TEST

START_TEST(test_format_parse_time_offset_and_long_fraction)
{
	int64_t us = 0;

	ck_assert_int_eq(
	    format_parse_time("1970-01-01T01:00:00.5+01:00", &us, NULL), 0);
	ck_assert_int_eq(us, 500000);
	ck_assert_int_eq(
	    format_parse_time("1970-01-01T00:00:00.1234567Z", &us, NULL), 0);
	ck_assert_int_eq(us, 123456);
}
END_TEST

START_TEST(test_format_parse_time_rejects_junk)
{
	struct npufarm_err err = {0};
	int64_t us = 42;

	ck_assert_int_eq(format_parse_time("", &us, NULL), -EINVAL);
	ck_assert_int_eq(format_parse_time("2026-11-24", &us, NULL), -EINVAL);
	ck_assert_int_eq(
	    format_parse_time("2026-11-24T22:01:02", &us, NULL), -EINVAL);
	ck_assert_int_eq(
	    format_parse_time("2026-13-24T22:01:02Z", &us, NULL), -EINVAL);
	ck_assert_int_eq(
	    format_parse_time("2026-11-24T22:01:02.Z", &us, NULL), -EINVAL);
	ck_assert_int_eq(
	    format_parse_time("2026-11-24T22:01:02Zjunk", &us, &err), -EINVAL);
	ck_assert_int_eq(us, 42);
	ck_assert_ptr_nonnull(strstr(err.msg, "RFC 3339"));
}
END_TEST

START_TEST(test_format_age_past_and_future)
{
	char buf[64];

	ck_assert_str_eq(format_age(0, 1500000, buf, sizeof(buf)), "1.5s ago");
	ck_assert_str_eq(
	    format_age(0, INT64_C(123000000), buf, sizeof(buf)), "2m03s ago");
	ck_assert_str_eq(format_age(5, 5, buf, sizeof(buf)), "just now");
	ck_assert_str_eq(format_age(10, 5, buf, sizeof(buf)), "just now");
}
END_TEST

START_TEST(test_format_escape_control_characters)
{
	char *s;

	s = format_escape("a\x1b[31mb\tc\x7f");
	ck_assert_str_eq(s, "a\\x1b[31mb\\x09c\\x7f");
	free(s);
	s = format_escape("ünï\\code");
	ck_assert_str_eq(s, "ünï\\code");
	free(s);
	s = format_escape("");
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

static const struct table_column test_cols[] = {
    {"ID", TABLE_RIGHT},
    {"NAME", TABLE_LEFT},
    {"DETAIL", TABLE_LEFT},
};

/* Render @t into a new string, owned by the caller. */
static char *
render(const struct table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	table_print(t, f);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

START_TEST(test_table_layout_aligns_columns)
{
	struct table *t = table_new(test_cols, 3);
	char *out;

	table_add(t, "7");
	table_add(t, "rk3588");
	table_add(t, "a detail");
	table_addf(t, "%d", 1234);
	table_add(t, "x");
	table_add(t, "y");
	ck_assert_uint_eq(table_rows(t), 2);
	out = render(t);
	ck_assert_str_eq(out, "  ID  NAME    DETAIL\n"
			      "   7  rk3588  a detail\n"
			      "1234  x       y\n");
	free(out);
	table_free(t);
}
END_TEST

/* Short cells in the last column leave no trailing blanks. */
START_TEST(test_table_layout_no_trailing_blanks)
{
	static const struct table_column cols[] = {
	    {"LONGHEADER", TABLE_LEFT},
	    {"B", TABLE_LEFT},
	};
	struct table *t = table_new(cols, 2);
	char *out;

	table_add(t, "a");
	table_add(t, "");
	table_add(t, "");
	table_add(t, "b");
	out = render(t);
	ck_assert_str_eq(out, "LONGHEADER  B\n"
			      "a\n"
			      "            b\n");
	free(out);
	table_free(t);
}
END_TEST

START_TEST(test_table_layout_null_and_incomplete_rows_are_dashes)
{
	struct table *t = table_new(test_cols, 3);
	char *out;

	table_add(t, NULL);
	table_add(t, "n");
	out = render(t);
	ck_assert_str_eq(out, "ID  NAME  DETAIL\n"
			      " -  n     -\n");
	free(out);
	table_free(t);
}
END_TEST

START_TEST(test_table_layout_counts_code_points_and_escapes)
{
	struct table *t = table_new(test_cols, 3);
	char *out;

	table_add(t, "1");
	table_add(t, "ünï");
	table_add(t, "bell\a");
	table_add(t, "2");
	table_add(t, "plain");
	table_add(t, "z");
	out = render(t);
	ck_assert_str_eq(out, "ID  NAME   DETAIL\n"
			      " 1  ünï    bell\\x07\n"
			      " 2  plain  z\n");
	free(out);
	table_free(t);
}
END_TEST

START_TEST(test_table_layout_empty_prints_header)
{
	struct table *t = table_new(test_cols, 3);
	char *out;

	ck_assert_uint_eq(table_rows(t), 0);
	out = render(t);
	ck_assert_str_eq(out, "ID  NAME  DETAIL\n");
	free(out);
	ck_assert_ptr_null(table_free(t));
	ck_assert_ptr_null(table_free(NULL));
}
END_TEST

START_TEST(test_table_width_utf8)
{
	ck_assert_uint_eq(table_width(""), 0);
	ck_assert_uint_eq(table_width("abc"), 3);
	ck_assert_uint_eq(table_width("ünïcode"), 7);
	ck_assert_uint_eq(table_width("\xe2\x82\xac"), 1); /* euro sign */
}
END_TEST

START_TEST(test_cli_parse_int_bounds)
{
	long v = -1;

	ck_assert_int_eq(cli_parse_int("50", 1, 1000, &v), 0);
	ck_assert_int_eq(v, 50);
	ck_assert_int_eq(cli_parse_int("0", 1, 1000, &v), -ERANGE);
	ck_assert_int_eq(cli_parse_int("1001", 1, 1000, &v), -ERANGE);
	ck_assert_int_eq(
	    cli_parse_int("99999999999999999999", 1, 1000, &v), -ERANGE);
	ck_assert_int_eq(cli_parse_int("", 1, 1000, &v), -EINVAL);
	ck_assert_int_eq(cli_parse_int("5x", 1, 1000, &v), -EINVAL);
	ck_assert_int_eq(v, 50);
}
END_TEST

START_TEST(test_http_get_rejects_bad_urls)
{
	struct npufarm_err err = {0};
	struct http_reply reply = {0};

	ck_assert_int_eq(
	    http_get("https://127.0.0.1:1", "/v1/queue", 1000, &reply, &err),
	    -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "http://"));
	ck_assert_int_eq(http_get("http://127.0.0.1:1/?q=1", "/v1/queue", 1000,
			     &reply, &err),
	    -EINVAL);
	ck_assert_int_eq(
	    http_get("http://:80", "/v1/queue", 1000, &reply, &err), -EINVAL);
	ck_assert_ptr_null(reply.body);
}
END_TEST

static Suite *
cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc;

	tc = tcase_create("format_duration");
	tcase_add_test(tc, test_format_duration_units);
	tcase_add_test(tc, test_format_duration_rounding_boundaries);
	tcase_add_test(tc, test_format_duration_invalid_is_dash);
	tcase_add_test(tc, test_format_duration_truncates_safely);
	suite_add_tcase(s, tc);

	tc = tcase_create("format_parse_time");
	tcase_add_test(tc, test_format_parse_time_utc);
	tcase_add_test(tc, test_format_parse_time_offset_and_long_fraction);
	tcase_add_test(tc, test_format_parse_time_rejects_junk);
	suite_add_tcase(s, tc);

	tc = tcase_create("format_age");
	tcase_add_test(tc, test_format_age_past_and_future);
	suite_add_tcase(s, tc);

	tc = tcase_create("format_escape");
	tcase_add_test(tc, test_format_escape_control_characters);
	suite_add_tcase(s, tc);

	tc = tcase_create("table");
	tcase_add_test(tc, test_table_layout_aligns_columns);
	tcase_add_test(tc, test_table_layout_no_trailing_blanks);
	tcase_add_test(
	    tc, test_table_layout_null_and_incomplete_rows_are_dashes);
	tcase_add_test(tc, test_table_layout_counts_code_points_and_escapes);
	tcase_add_test(tc, test_table_layout_empty_prints_header);
	tcase_add_test(tc, test_table_width_utf8);
	suite_add_tcase(s, tc);

	tc = tcase_create("cli_parse_int");
	tcase_add_test(tc, test_cli_parse_int_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("http_get");
	tcase_add_test(tc, test_http_get_rejects_bad_urls);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return harness_run(cli_suite());
}
