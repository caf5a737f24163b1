/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the CLI's pure helpers: duration, time and escape
 * formatting (format.c), table layout (table.c), argument parsing (cli.c),
 * the HTTP client's refusals that need no server (http.c), and the job
 * commands' spec building (jobspec.c) and views (jobview.c).  Talking
 * to a broker, or to no broker, is tests/integration/test-cli.c's job.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "cli.h"
#include "err.h"
#include "format.h"
#include "harness.h"
#include "http.h"
#include "jobspec.h"
#include "jobview.h"
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

/* --- jobs (issue 5): jobspec.c and jobview.c --- */

static json_t *
parse_arg(const char *s)
{
	struct npufarm_err err = {0};
	json_t *v = NULL;

	ck_assert_msg(
	    jobspec_parse_arg(s, 2, &v, &err) == 0, "%s: %s", s, err.msg);
	return v;
}

static void
assert_json(json_t *v, const char *expect)
{
	char *got = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);

	ck_assert_str_eq(got, expect);
	free(got);
	json_decref(v);
}

START_TEST(test_jobspec_parse_arg_forms)
{
	assert_json(parse_arg("float32:128x64"),
	    "{\"dtype\":\"float32\",\"shape\":[128,64]}");
	assert_json(parse_arg("float32:128x64:random=7"),
	    "{\"dtype\":\"float32\",\"fill\":{\"random\":7},"
	    "\"shape\":[128,64]}");
	/* Plain "random" is seeded with the argument's position. */
	assert_json(parse_arg("int8:4:random"),
	    "{\"dtype\":\"int8\",\"fill\":{\"random\":2},\"shape\":[4]}");
	assert_json(parse_arg("float16:2x2x2:ones"),
	    "{\"dtype\":\"float16\",\"fill\":\"ones\",\"shape\":[2,2,2]}");
	assert_json(parse_arg("float32::zeros"),
	    "{\"dtype\":\"float32\",\"shape\":[]}");
	assert_json(
	    parse_arg("int32=16"), "{\"dtype\":\"int32\",\"value\":16}");
	assert_json(parse_arg("float64=-0.5"),
	    "{\"dtype\":\"float64\",\"value\":-0.5}");
}
END_TEST

START_TEST(test_jobspec_parse_arg_rejects)
{
	static const char *const bad[] = {"float32", "float32:0x4",
	    "float32:4x", "float32:x4", "float32:4:random=x", "float32:4:twos",
	    "int32=", "int32=abc", "=4", ":4", "float32:-4",
	    /* Not UTF-8 (issue 12: leaked, and said "out of memory"). */
	    "\xff\xfe:4", "\xff=3"};
	struct npufarm_err err = {0};
	json_t *v = NULL;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(jobspec_parse_arg(bad[i], 1, &v, &err) == -EINVAL,
		    "accepted '%s'", bad[i]);
		ck_assert_ptr_nonnull(strstr(err.msg, "--arg"));
	}
	ck_assert_ptr_null(v);
}
END_TEST

/* Write @text to a new temporary file; its path in @path. */
static void
temp_file(const char *text, char *path, size_t len)
{
	int fd;

	(void)snprintf(path, len, "/tmp/npufarm-test-cli-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

START_TEST(test_jobspec_sha256_file)
{
	char path[64], hex[JOBSPEC_SHA256_HEX];
	struct npufarm_err err = {0};
	uint64_t size = 0;

	temp_file("abc", path, sizeof(path));
	ck_assert_int_eq(jobspec_sha256_file(path, hex, &size, &err), 0);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9c"
			      "b410ff61f20015ad");
	ck_assert_uint_eq(size, 3);
	unlink(path);
	ck_assert_int_eq(jobspec_sha256_file(path, hex, &size, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, path));
	ck_assert_int_eq(
	    jobspec_sha256_file("/tmp", hex, &size, &err), -EINVAL);
}
END_TEST

/*
 * artifact_file becomes artifact: relative to the base dir, each file
 * hashed once, "artifact" tasks left alone.
 */
START_TEST(test_jobspec_resolve_rewrites_artifact_file)
{
	struct jobspec_artifacts arts = {0};
	struct npufarm_err err = {0};
	char path[64], spec_text[512], *dir, *base;
	json_t *spec, *tasks;

	temp_file("abc", path, sizeof(path));
	base = strrchr(path, '/') + 1;
	dir = strndup(path, (size_t)(base - path - 1));
	(void)snprintf(spec_text, sizeof(spec_text),
	    "{\"key\": \"k\", \"tasks\": ["
	    "{\"runner\": \"kernel\", \"artifact_file\": \"%s\"},"
	    "{\"runner\": \"kernel\", \"artifact_file\": \"%s\"},"
	    "{\"runner\": \"kernel\", \"artifact\": \"%064d\"}]}",
	    base, path, 0);
	spec = json_loads(spec_text, 0, NULL);
	ck_assert_ptr_nonnull(spec);
	ck_assert_int_eq(jobspec_resolve(spec, dir, &arts, &err), 0);
	/* Relative to the base dir or absolute: one file, hashed once. */
	ck_assert_uint_eq(arts.n, 1);
	ck_assert_str_eq(arts.v[0].path, path);
	tasks = json_object_get(spec, "tasks");
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_array_get(tasks, 0), "artifact")),
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ck_assert_ptr_null(
	    json_object_get(json_array_get(tasks, 1), "artifact_file"));
	ck_assert_int_eq(jobspec_check(spec, &err), 3);
	jobspec_artifacts_deinit(&arts);
	json_decref(spec);

	/* Both fields, or a missing file: the task is named. */
	spec = json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "key", "k", "tasks",
	    "runner", "kernel", "artifact", "x", "artifact_file", path);
	ck_assert_int_eq(jobspec_resolve(spec, NULL, &arts, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "tasks[0]: give"));
	json_decref(spec);
	spec = json_pack("{s:s, s:[{s:s}, {s:s, s:s}]}", "key", "k", "tasks",
	    "runner", "kernel", "runner", "kernel", "artifact_file",
	    "no-such-file.so");
	ck_assert_int_eq(jobspec_resolve(spec, dir, &arts, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "tasks[1].artifact_file: "));
	json_decref(spec);
	jobspec_artifacts_deinit(&arts);
	unlink(path);
	free(dir);
}
END_TEST

START_TEST(test_jobspec_check_names_fields)
{
	struct npufarm_err err = {0};
	json_t *spec;

	spec = json_pack("{s:[{s:s, s:s}]}", "tasks", "runner", "kernel",
	    "artifact",
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ck_assert_int_eq(jobspec_check(spec, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "key: required"));
	ck_assert_int_eq(jobspec_apply_job(spec,
			     &(struct jobspec_job){.key = "rk3588",
				 .has_priority = true,
				 .priority = 2,
				 .queue_timeout = 1.5},
			     &err),
	    0);
	ck_assert_int_eq(jobspec_check(spec, &err), 1);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(spec, "priority")), 2);
	ck_assert(
	    json_real_value(json_object_get(spec, "queue_timeout")) == 1.5);
	(void)json_object_set_new(
	    json_array_get(json_object_get(spec, "tasks"), 0), "number",
	    json_integer(3));
	ck_assert_int_eq(jobspec_check(spec, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "tasks[0]"));
	json_decref(spec);
}
END_TEST

static struct jobspec_sweep
sweep_defaults(void)
{
	return (struct jobspec_sweep){
	    .number = -1,
	    .repeat = -1,
	    .min_repeat_ms = -1,
	    .cooldown_ms = -1,
	    .timeout = -1,
	};
}

START_TEST(test_jobspec_sweep_cross_product)
{
	static const char *const kernels[] = {"dir/mm_a.so", "mm_b"};
	static const char *const args[] = {"float32:{n}x{n}", "int32={t}"};
	static const char *const params[] = {"n=8,16", "t=1,2,3"};
	struct jobspec_sweep sw = sweep_defaults();
	struct npufarm_err err = {0};
	json_t *spec = NULL, *tasks, *t;

	sw.kernels = kernels;
	sw.nkernels = 2;
	sw.args = args;
	sw.nargs = 2;
	sw.params = params;
	sw.nparams = 2;
	sw.entry = "mm_{t}";
	sw.repeat = 3;
	ck_assert_int_eq(jobspec_sweep(&sw, &spec, &err), 0);
	tasks = json_object_get(spec, "tasks");
	ck_assert_uint_eq(json_array_size(tasks), 12);
	t = json_array_get(tasks, 0);
	assert_json(json_incref(t),
	    "{\"args\":[{\"dtype\":\"float32\",\"shape\":[8,8]},"
	    "{\"dtype\":\"int32\",\"value\":1}],"
	    "\"artifact_file\":\"dir/mm_a.so\",\"entry\":\"mm_1\","
	    "\"measurement\":{\"repeat\":3},\"name\":\"mm_a n=8 t=1\","
	    "\"runner\":\"kernel\"}");
	/* The last parameter varies fastest, kernels outermost. */
	ck_assert_str_eq(json_string_value(
			     json_object_get(json_array_get(tasks, 4), "name")),
	    "mm_a n=16 t=2");
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_array_get(tasks, 11), "name")),
	    "mm_b n=16 t=3");
	json_decref(spec);
}
END_TEST

/*
 * Issue 12: a sweep value that is not UTF-8 leaked the task's arguments
 * and said "out of memory"; a name cut in the middle of a character did
 * the same with valid values.
 */
START_TEST(test_jobspec_sweep_utf8)
{
	static const char *const kernels[] = {"mm.so"};
	static const char *const args[] = {"float32:{n}"};
	static const char *const bad[] = {"n=4\xff"};
	char longv[300];
	const char *params[1];
	struct jobspec_sweep sw = sweep_defaults();
	struct npufarm_err err = {0};
	json_t *spec = NULL;
	size_t i;

	sw.kernels = kernels;
	sw.nkernels = 1;
	sw.args = args;
	sw.nargs = 1;
	sw.params = bad;
	sw.nparams = 1;
	ck_assert_int_eq(jobspec_sweep(&sw, &spec, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "UTF-8") != NULL, "%s", err.msg);
	ck_assert_ptr_null(spec);
	/* n=4 then a comment in two-byte characters: the name is cut. */
	memcpy(longv, "n=4", 3);
	for (i = 3; i + 2 < sizeof(longv) - 1; i += 2)
		memcpy(longv + i, i == 3 ? ",\xc3" : "\xa9\xc3", 2);
	longv[i] = '\0';
	longv[i - 1] = '\0'; /* ends on a whole character */
	sw.args = (const char *const[]){"float32:4"};
	sw.entry = "e{n}";
	params[0] = longv;
	sw.params = params;
	ck_assert_msg(jobspec_sweep(&sw, &spec, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(json_array_size(json_object_get(spec, "tasks")), 2);
	json_decref(spec);
}
END_TEST

START_TEST(test_jobspec_sweep_errors)
{
	static const char *const one[] = {"k.so"};
	static const char *const args[] = {"int32={x}"};
	static const char *const unused[] = {"y=1,2"};
	static const char *const empty[] = {"x=1,,2"};
	static const char *const big[] = {"x=1,2,3,4,5,6,7,8,9,10",
	    "y=1,2,3,4,5,6,7,8,9,10", "z=1,2,3,4,5,6,7,8,9,10",
	    "w=1,2,3,4,5,6,7,8,9,10,11"};
	struct jobspec_sweep sw = sweep_defaults();
	struct npufarm_err err = {0};
	json_t *spec = NULL;

	ck_assert_int_eq(jobspec_sweep(&sw, &spec, &err), -EINVAL);
	sw.kernels = one;
	sw.nkernels = 1;
	sw.args = args;
	sw.nargs = 1;
	ck_assert_int_eq(jobspec_sweep(&sw, &spec, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "'{x}' names no --sweep"));
	sw.params = unused;
	sw.nparams = 1;
	ck_assert_int_eq(jobspec_sweep(&sw, &spec, &err), -EINVAL);
	sw.params = empty;
	ck_assert_int_eq(jobspec_sweep(&sw, &spec, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "NAME=V1,V2"));
	sw.params = big;
	sw.nparams = 4;
	ck_assert_int_eq(jobspec_sweep(&sw, &spec, &err), -E2BIG);
	ck_assert_ptr_null(spec);
	/* One kernel, no parameters: one task named after the file. */
	sw.nparams = 0;
	sw.nargs = 0;
	ck_assert_int_eq(jobspec_sweep(&sw, &spec, &err), 0);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(spec, "tasks"), 0), "name")),
	    "k");
	json_decref(spec);
}
END_TEST

static const char *
cost(double s)
{
	static char buf[JOBVIEW_COST_MAX];

	return jobview_cost(s, buf, sizeof(buf));
}

START_TEST(test_jobview_cost_three_digits)
{
	ck_assert_str_eq(cost(0.00257), "2.57ms");
	ck_assert_str_eq(cost(0.000143), "143us");
	ck_assert_str_eq(cost(8.5e-7), "850ns");
	ck_assert_str_eq(cost(0.0123), "12.3ms");
	ck_assert_str_eq(cost(1.43), "1.43s");
	ck_assert_str_eq(cost(0.0009996), "1.00ms");
	ck_assert_str_eq(cost(0), "0s");
	ck_assert_str_eq(cost(2000), "2000s");
	ck_assert_str_eq(cost(-1), "-");
	ck_assert_str_eq(cost(NAN), "-");
}
END_TEST

START_TEST(test_jobview_median_and_best)
{
	json_t *c = json_pack("[f, f, f, f]", 0.4, 0.1, 0.3, 0.2);

	ck_assert(fabs(jobview_median(c) - 0.25) < 1e-12);
	ck_assert(fabs(jobview_best(c) - 0.1) < 1e-12);
	json_decref(c);
	c = json_pack("[f, i, f]", 0.3, 1, 0.2);
	ck_assert(fabs(jobview_median(c) - 0.3) < 1e-12);
	json_decref(c);
	ck_assert(isnan(jobview_median(json_null())));
	c = json_array();
	ck_assert(isnan(jobview_median(c)));
	ck_assert(isnan(jobview_best(c)));
	json_decref(c);
}
END_TEST

/* The lowest median among ok tasks wins, not the lowest single cost. */
START_TEST(test_jobview_best_task_by_median_among_ok)
{
	json_t *list =
	    json_loads("[{\"outcome\": \"ok\", \"costs\": [3, 3, 3]},"
		       " {\"outcome\": \"timeout\", \"costs\": [0.1]},"
		       " {\"outcome\": \"ok\", \"costs\": [1, 2.5, 2.5]},"
		       " {\"outcome\": \"ok\", \"costs\": [2, 2, 2]},"
		       " {\"outcome\": \"ok\", \"costs\": null},"
		       " {\"state\": \"queued\"},"
		       " {\"outcome\": \"ok\", \"costs\": [2, 2, 2]}]",
		0, NULL);

	ck_assert_int_eq(jobview_best_task(list), 3);
	json_decref(list);
	list = json_loads("[{\"outcome\": \"crash\"}]", 0, NULL);
	ck_assert_int_eq(jobview_best_task(list), -1);
	json_decref(list);
	ck_assert_int_eq(jobview_best_task(NULL), -1);
}
END_TEST

/*
 * Candidates are ranked within their problem: the smallest size is not
 * the best of a sweep over sizes; one line per group, first seen first.
 */
START_TEST(test_jobview_best_per_group)
{
	json_t *job = json_loads(
	    "{\"tasks\": {\"total\": 4, \"ok\": 3, \"wrong\": 1},"
	    " \"task_list\": ["
	    "  {\"index\": 0, \"name\": \"big-a\", \"outcome\": \"ok\","
	    "   \"costs\": [0.004], \"group\": \"n=64\"},"
	    "  {\"index\": 1, \"name\": \"small\", \"outcome\": \"ok\","
	    "   \"costs\": [0.001], \"group\": \"n=32\"},"
	    "  {\"index\": 2, \"name\": \"big-b\", \"outcome\": \"ok\","
	    "   \"costs\": [0.003], \"group\": \"n=64\"},"
	    "  {\"index\": 3, \"name\": \"fast\", \"outcome\": \"wrong\","
	    "   \"costs\": null, \"group\": \"n=64\"}]}",
	    0, NULL);
	const json_t *list = json_object_get(job, "task_list");
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_int_eq(jobview_best_in_group(list, "n=64"), 2);
	ck_assert_int_eq(jobview_best_in_group(list, "n=32"), 1);
	ck_assert_int_eq(jobview_best_in_group(list, "n=8"), -1);
	f = open_memstream(&buf, &len);
	jobview_print_tasks(job, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_msg(strstr(buf, "ok 3, wrong 1\n"
				  "best per problem (tasks that share their "
				  "inputs, or their \"group\"):\n"
				  "  n=64: task 2 (big-b), median 3.00ms (best "
				  "3.00ms)\n"
				  "  n=32: task 1 (small), median 1.00ms (best "
				  "1.00ms)\n") != NULL,
	    "%s", buf);
	free(buf);
	json_decref(job);
	/* One problem with an ok candidate: the single best line says so. */
	job = json_loads(
	    "{\"task_list\": ["
	    " {\"index\": 0, \"outcome\": \"crash\","
	    "  \"group\": \"no arguments\"},"
	    " {\"index\": 1, \"outcome\": \"ok\", \"costs\": [0.002],"
	    "  \"group\": \"n=64\"}]}",
	    0, NULL);
	buf = NULL;
	f = open_memstream(&buf, &len);
	jobview_print_tasks(job, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_msg(strstr(buf, "best: task 1, median 2.00ms (best 2.00ms)\n"
				  "(the only problem with a candidate that "
				  "ended ok: n=64)\n") != NULL,
	    "%s", buf);
	free(buf);
	json_decref(job);
}
END_TEST

START_TEST(test_jobview_progress_formats)
{
	json_t *job = json_loads("{\"id\": 12, \"state\": \"running\", "
				 "\"tasks\": {\"total\": 42, \"queued\": 30, "
				 "\"running\": 4, \"timeout\": 1, \"ok\": 5, "
				 "\"weird\": 0, \"novel\": 2}}",
	    0, NULL);
	char *s;

	s = jobview_progress_line(job);
	ck_assert_str_eq(s, "job 12 running: 8/42 finished (ok 5, timeout 1, "
			    "novel 2), 4 running, 30 queued");
	free(s);
	s = jobview_progress_bar(job, 1.5);
	ck_assert_str_eq(s, "job 12 [#####.........................] 8/42  "
			    "ok 5, timeout 1, novel 2  4 running, 30 queued  "
			    "1.50s");
	ck_assert_ptr_null(strpbrk(s, "\r\n\033"));
	free(s);
	json_decref(job);

	/* Nothing finished yet, no total: counted from the states. */
	job = json_loads("{\"id\": 3, \"state\": \"queued\", \"tasks\": "
			 "{\"queued\": 2}}",
	    0, NULL);
	s = jobview_progress_line(job);
	ck_assert_str_eq(s, "job 3 queued: 0/2 finished, 0 running, 2 queued");
	free(s);
	json_decref(job);
}
END_TEST

START_TEST(test_jobview_exit_status_and_finished)
{
	json_t *job;

	job = json_loads("{\"state\": \"done\", \"tasks\": {\"total\": 2, "
			 "\"ok\": 2}}",
	    0, NULL);
	ck_assert_int_eq(jobview_exit_status(job), CLI_EXIT_OK);
	ck_assert(jobview_finished(job));
	json_decref(job);
	job = json_loads("{\"state\": \"cancelled\", \"tasks\": {\"total\": "
			 "2, \"ok\": 1, \"cancelled\": 1}}",
	    0, NULL);
	ck_assert_int_eq(jobview_exit_status(job), CLI_EXIT_FAIL);
	ck_assert(jobview_finished(job));
	json_decref(job);
	/* Counts from task_list when the job has no "tasks" object. */
	job = json_loads("{\"done\": true, \"task_list\": [{\"outcome\": "
			 "\"ok\"}, {\"outcome\": \"lost\"}]}",
	    0, NULL);
	ck_assert_int_eq(jobview_exit_status(job), CLI_EXIT_FAIL);
	ck_assert(jobview_finished(job));
	json_decref(job);
	job = json_loads("{\"state\": \"running\", \"done\": false}", 0, NULL);
	ck_assert(!jobview_finished(job));
	ck_assert_int_eq(jobview_exit_status(job), CLI_EXIT_OK);
	json_decref(job);
}
END_TEST

START_TEST(test_jobview_print_tasks_table)
{
	json_t *job = json_loads(
	    "{\"tasks\": {\"total\": 3, \"ok\": 2, \"crash\": 1},"
	    " \"task_list\": ["
	    "  {\"index\": 0, \"name\": \"a\", \"outcome\": \"ok\","
	    "   \"costs\": [0.002, 0.003, 0.004], \"board\": \"b1\"},"
	    "  {\"index\": 1, \"name\": \"b\", \"outcome\": \"crash\","
	    "   \"costs\": null, \"board\": \"b2\","
	    "   \"detail\": \"SIGSEGV (signal 11)\\nstderr tail\"},"
	    "  {\"index\": 2, \"name\": \"c\\u001b\", \"outcome\": \"ok\","
	    "   \"costs\": [0.001], \"board\": null}]}",
	    0, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	jobview_print_tasks(job, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_str_eq(buf,
	    "#  NAME   OUTCOME    BEST  MEDIAN  BOARD  DETAIL\n"
	    "0  a      ok       2.00ms  3.00ms  b1     -\n"
	    "1  b      crash         -       -  b2     SIGSEGV (signal 11)...\n"
	    "2  c\\x1b  ok       1.00ms  1.00ms  -      -\n"
	    "\n"
	    "3 tasks, 3 finished: ok 2, crash 1\n"
	    "best: task 2 (c\\x1b), median 1.00ms (best 1.00ms)\n");
	free(buf);
	json_decref(job);
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

	tc = tcase_create("jobspec");
	tcase_add_test(tc, test_jobspec_parse_arg_forms);
	tcase_add_test(tc, test_jobspec_parse_arg_rejects);
	tcase_add_test(tc, test_jobspec_sha256_file);
	tcase_add_test(tc, test_jobspec_resolve_rewrites_artifact_file);
	tcase_add_test(tc, test_jobspec_check_names_fields);
	tcase_add_test(tc, test_jobspec_sweep_cross_product);
	tcase_add_test(tc, test_jobspec_sweep_errors);
	tcase_add_test(tc, test_jobspec_sweep_utf8);
	suite_add_tcase(s, tc);

	tc = tcase_create("jobview");
	tcase_add_test(tc, test_jobview_cost_three_digits);
	tcase_add_test(tc, test_jobview_median_and_best);
	tcase_add_test(tc, test_jobview_best_task_by_median_among_ok);
	tcase_add_test(tc, test_jobview_best_per_group);
	tcase_add_test(tc, test_jobview_progress_formats);
	tcase_add_test(tc, test_jobview_exit_status_and_finished);
	tcase_add_test(tc, test_jobview_print_tasks_table);
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
