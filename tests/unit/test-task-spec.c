/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task specs and DLPack helpers (common/task_spec.c, common/dlpack_util.c):
 * dtype strings both ways, byte sizes and their overflow, tensors filled
 * the same way everywhere, every validation message with its exact path,
 * and every limit exceeded.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "dlpack_util.h"
#include "err.h"
#include "harness.h"
#include "task_spec.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static json_t *
load(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);

	ck_assert_msg(v != NULL, "bad test JSON: %s: %s", text, je.text);
	return v;
}

/* Parse @text as the task at "tasks[3]"; returns the code. */
static int
parse_at(const char *text, struct task_spec *spec, struct npufarm_err *e)
{
	json_t *v = load(text);
	int r;

	memset(e, 0, sizeof(*e));
	r = task_spec_parse(v, "tasks[3]", spec, e);
	json_decref(v);
	return r;
}

/* ---- dtypes ---------------------------------------------------------- */

START_TEST(test_dtype_round_trip)
{
	static const struct {
		const char *s;
		uint8_t code, bits;
		uint16_t lanes;
	} ok[] = {
	    {"int8", kDLInt, 8, 1},
	    {"int16", kDLInt, 16, 1},
	    {"int32", kDLInt, 32, 1},
	    {"int64", kDLInt, 64, 1},
	    {"uint8", kDLUInt, 8, 1},
	    {"uint16", kDLUInt, 16, 1},
	    {"uint32", kDLUInt, 32, 1},
	    {"uint64", kDLUInt, 64, 1},
	    {"float16", kDLFloat, 16, 1},
	    {"float32", kDLFloat, 32, 1},
	    {"float64", kDLFloat, 64, 1},
	    {"bfloat16", kDLBfloat, 16, 1},
	    {"float32x4", kDLFloat, 32, 4},
	    {"int8x256", kDLInt, 8, 256},
	};
	char buf[DLPACK_UTIL_DTYPE_MAX];
	DLDataType t;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(
		    dlpack_util_dtype_parse(ok[i].s, &t) == 0, "%s", ok[i].s);
		ck_assert_uint_eq(t.code, ok[i].code);
		ck_assert_uint_eq(t.bits, ok[i].bits);
		ck_assert_uint_eq(t.lanes, ok[i].lanes);
		ck_assert_int_eq(
		    dlpack_util_dtype_format(t, buf, sizeof(buf)), 0);
		ck_assert_str_eq(buf, ok[i].s);
	}
	ck_assert_int_eq(dlpack_util_dtype_format(t, buf, 3), -ENOSPC);
}
END_TEST

START_TEST(test_dtype_rejects)
{
	static const char *const bad[] = {"flaot32", "float8", "int4", "int",
	    "uint", "", "float32x0", "float32x257", "float32x", "int08",
	    "bfloat32", "float32 ", "Float32", "int8x4x2", "complex64",
	    "float32x04", "int99999999999"};
	DLDataType t = {0};
	char buf[DLPACK_UTIL_DTYPE_MAX];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(dlpack_util_dtype_parse(bad[i], &t) == -EINVAL,
		    "\"%s\" was accepted", bad[i]);
	t.code = kDLComplex;
	t.bits = 64;
	t.lanes = 1;
	ck_assert_int_eq(
	    dlpack_util_dtype_format(t, buf, sizeof(buf)), -EINVAL);
	t.code = kDLFloat;
	t.bits = 8;
	ck_assert_int_eq(
	    dlpack_util_dtype_format(t, buf, sizeof(buf)), -EINVAL);
}
END_TEST

START_TEST(test_nbytes)
{
	int64_t shape[3] = {2, 3, 4}, big[2] = {INT64_MAX, 4};
	DLDataType t;
	uint64_t n = 0;

	ck_assert_int_eq(dlpack_util_dtype_parse("float32", &t), 0);
	ck_assert_int_eq(dlpack_util_nbytes(t, shape, 3, &n), 0);
	ck_assert_uint_eq(n, 96);
	ck_assert_int_eq(dlpack_util_nbytes(t, shape, 0, &n), 0);
	ck_assert_uint_eq(n, 4); /* a scalar */
	ck_assert_int_eq(dlpack_util_dtype_parse("float16x4", &t), 0);
	ck_assert_int_eq(dlpack_util_nbytes(t, shape, 2, &n), 0);
	ck_assert_uint_eq(n, 48);
	ck_assert_int_eq(dlpack_util_nbytes(t, big, 2, &n), -EOVERFLOW);
	ck_assert_uint_eq(n, 48); /* untouched */
	big[0] = -1;
	ck_assert_int_eq(dlpack_util_nbytes(t, big, 2, &n), -EINVAL);
}
END_TEST

/* A tensor of @dtype and @shape, filled. */
static void
make(DLTensor *t, const char *dtype, int64_t *shape, int ndim,
    enum dlpack_util_fill fill, uint64_t seed)
{
	DLDataType dt;

	ck_assert_int_eq(dlpack_util_dtype_parse(dtype, &dt), 0);
	ck_assert_int_eq(dlpack_util_tensor_alloc(t, dt, shape, ndim, NULL), 0);
	ck_assert_uint_eq((uintptr_t)t->data % DLPACK_UTIL_ALIGN, 0);
	ck_assert_int_eq(t->device.device_type, kDLCPU);
	ck_assert_ptr_null(t->strides);
	dlpack_util_fill(t, fill, seed);
}

START_TEST(test_fill_ones)
{
	int64_t shape[2] = {3, 5};
	DLTensor t;
	int i;

	make(&t, "float32", shape, 2, DLPACK_UTIL_FILL_ONES, 0);
	for (i = 0; i < 15; i++)
		ck_assert(((float *)t.data)[i] == 1.0f);
	dlpack_util_tensor_free(&t);
	make(&t, "float16", shape, 2, DLPACK_UTIL_FILL_ONES, 0);
	ck_assert_uint_eq(((uint16_t *)t.data)[14], 0x3c00);
	dlpack_util_tensor_free(&t);
	make(&t, "bfloat16", shape, 2, DLPACK_UTIL_FILL_ONES, 0);
	ck_assert_uint_eq(((uint16_t *)t.data)[14], 0x3f80);
	dlpack_util_tensor_free(&t);
	make(&t, "int8x4", shape, 2, DLPACK_UTIL_FILL_ONES, 0);
	for (i = 0; i < 60; i++) /* every lane */
		ck_assert_int_eq(((int8_t *)t.data)[i], 1);
	dlpack_util_tensor_free(&t);
	make(&t, "uint64", shape, 1, DLPACK_UTIL_FILL_ONES, 0);
	ck_assert_uint_eq(((uint64_t *)t.data)[2], 1);
	dlpack_util_tensor_free(&t);
	make(&t, "float64", shape, 2, DLPACK_UTIL_FILL_ZEROS, 0);
	ck_assert(((double *)t.data)[14] == 0.0);
	dlpack_util_tensor_free(&t);
	ck_assert_ptr_null(t.data);
}
END_TEST

START_TEST(test_fill_random_is_seeded)
{
	int64_t shape[1] = {1000};
	DLTensor a, b, c;
	int i, negative = 0;

	make(&a, "float32", shape, 1, DLPACK_UTIL_FILL_RANDOM, 42);
	make(&b, "float32", shape, 1, DLPACK_UTIL_FILL_RANDOM, 42);
	make(&c, "float32", shape, 1, DLPACK_UTIL_FILL_RANDOM, 43);
	ck_assert_mem_eq(a.data, b.data, 4000);
	ck_assert(memcmp(a.data, c.data, 4000) != 0);
	for (i = 0; i < 1000; i++) {
		float v = ((float *)a.data)[i];

		ck_assert(v >= -1.0f && v < 1.0f);
		negative += v < 0;
	}
	/* Uniform over [-1, 1): a sane share of each sign. */
	ck_assert_int_gt(negative, 300);
	ck_assert_int_lt(negative, 700);
	dlpack_util_tensor_free(&a);
	dlpack_util_tensor_free(&b);
	dlpack_util_tensor_free(&c);
	/* The same values on every agent: pinned down for seed 1. */
	make(&a, "uint32", shape, 1, DLPACK_UTIL_FILL_RANDOM, 1);
	make(&b, "uint64", shape, 1, DLPACK_UTIL_FILL_RANDOM, 1);
	ck_assert_uint_eq(
	    ((uint32_t *)a.data)[0], (uint32_t)(((uint64_t *)b.data)[0] >> 32));
	ck_assert_uint_eq(((uint64_t *)b.data)[0], 0x910a2dec89025cc1ULL);
	dlpack_util_tensor_free(&a);
	dlpack_util_tensor_free(&b);
}
END_TEST

START_TEST(test_fill_values_and_half_rounding)
{
	static const struct {
		double v;
		uint16_t half, bf;
	} cases[] = {
	    {1.0, 0x3c00, 0x3f80},
	    {0.5, 0x3800, 0x3f00},
	    {-2.0, 0xc000, 0xc000},
	    {65504.0, 0x7bff, 0x4780},
	    {1e6, 0x7c00, 0x4974},
	    {5.9604644775390625e-8, 0x0001, 0x3380}, /* 2^-24 */
	    {1e-9, 0x0000, 0x3089},
	    {0.1, 0x2e66, 0x3dcd},
	};
	DLTensor h, b, i8, u16;
	DLDataType dt;
	size_t i;

	ck_assert_int_eq(dlpack_util_dtype_parse("float16", &dt), 0);
	ck_assert_int_eq(dlpack_util_tensor_alloc(&h, dt, NULL, 0, NULL), 0);
	ck_assert_int_eq(dlpack_util_dtype_parse("bfloat16", &dt), 0);
	ck_assert_int_eq(dlpack_util_tensor_alloc(&b, dt, NULL, 0, NULL), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dlpack_util_fill_float(&h, cases[i].v);
		dlpack_util_fill_float(&b, cases[i].v);
		ck_assert_msg(((uint16_t *)h.data)[0] == cases[i].half,
		    "half(%g) = 0x%04x", cases[i].v, ((uint16_t *)h.data)[0]);
		ck_assert_msg(((uint16_t *)b.data)[0] == cases[i].bf,
		    "bfloat(%g) = 0x%04x", cases[i].v, ((uint16_t *)b.data)[0]);
	}
	ck_assert_int_eq(dlpack_util_dtype_parse("int8", &dt), 0);
	ck_assert_int_eq(dlpack_util_tensor_alloc(&i8, dt, NULL, 0, NULL), 0);
	dlpack_util_fill_int(&i8, -128);
	ck_assert_int_eq(((int8_t *)i8.data)[0], -128);
	ck_assert_int_eq(dlpack_util_dtype_parse("uint16", &dt), 0);
	ck_assert_int_eq(dlpack_util_tensor_alloc(&u16, dt, NULL, 0, NULL), 0);
	dlpack_util_fill_int(&u16, 65535);
	ck_assert_uint_eq(((uint16_t *)u16.data)[0], 65535);
	dlpack_util_tensor_free(&h);
	dlpack_util_tensor_free(&b);
	dlpack_util_tensor_free(&i8);
	dlpack_util_tensor_free(&u16);
}
END_TEST

/* ---- task specs ------------------------------------------------------ */

START_TEST(test_parse_full_task)
{
	struct task_spec s;
	struct npufarm_err e;

	ck_assert_int_eq(
	    parse_at(
		"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\","
		" \"entry\": \"matmul\", \"name\": \"tile=16\","
		" \"args\": [{\"dtype\": \"float32\", \"shape\": [64, 32],"
		"   \"fill\": {\"random\": 7}, \"device\": \"cpu\"},"
		"  {\"dtype\": \"int8\", \"shape\": [3], \"fill\": \"ones\"},"
		"  {\"dtype\": \"int32\", \"value\": -5},"
		"  {\"dtype\": \"float64\", \"value\": 2.5}],"
		" \"measurement\": {\"number\": 10, \"repeat\": 3,"
		"   \"min_repeat_ms\": 100, \"cooldown_ms\": 5},"
		" \"timeout\": 2.5}",
		&s, &e),
	    0);
	ck_assert_int_eq(s.runner, TASK_RUNNER_KERNEL);
	ck_assert_str_eq(s.artifact, SHA);
	ck_assert_str_eq(s.entry, "matmul");
	ck_assert_str_eq(s.name, "tile=16");
	ck_assert_int_eq(s.nargs, 4);
	ck_assert_int_eq(s.args[0].ndim, 2);
	ck_assert_int_eq(s.args[0].shape[0], 64);
	ck_assert_int_eq(s.args[0].shape[1], 32);
	ck_assert_uint_eq(s.args[0].nbytes, 64 * 32 * 4);
	ck_assert_int_eq(s.args[0].fill, DLPACK_UTIL_FILL_RANDOM);
	ck_assert_uint_eq(s.args[0].seed, 7);
	ck_assert_int_eq(s.args[1].fill, DLPACK_UTIL_FILL_ONES);
	ck_assert(s.args[2].is_scalar);
	ck_assert_int_eq(s.args[2].ndim, 0);
	ck_assert_int_eq(s.args[2].ivalue, -5);
	ck_assert(s.args[3].fvalue == 2.5);
	ck_assert_uint_eq(s.measure.number, 10);
	ck_assert_uint_eq(s.measure.repeat, 3);
	ck_assert_uint_eq(s.measure.min_repeat_ms, 100);
	ck_assert_uint_eq(s.measure.cooldown_ms, 5);
	ck_assert_uint_eq(s.timeout_ms, 2500);
}
END_TEST

START_TEST(test_parse_defaults)
{
	struct task_spec s;
	struct npufarm_err e;

	ck_assert_int_eq(
	    parse_at("{\"runner\": \"exec\", \"artifact\": \"" SHA "\","
		     " \"args\": [{\"dtype\": \"uint8\", \"shape\": []}]}",
		&s, &e),
	    0);
	ck_assert_int_eq(s.runner, TASK_RUNNER_EXEC);
	ck_assert_str_eq(s.entry, "");
	ck_assert_str_eq(s.name, "");
	ck_assert_int_eq(s.args[0].fill, DLPACK_UTIL_FILL_ZEROS);
	ck_assert_int_eq(s.args[0].ndim, 0);
	ck_assert_uint_eq(s.measure.number, 1);
	ck_assert_uint_eq(s.measure.repeat, 1);
	ck_assert_uint_eq(s.measure.min_repeat_ms, 0);
	ck_assert_uint_eq(s.measure.cooldown_ms, 0);
	ck_assert_uint_eq(s.timeout_ms, TASK_SPEC_DEFAULT_TIMEOUT_MS);
	/* Exec entries are arguments, not symbols. */
	ck_assert_int_eq(
	    parse_at("{\"runner\": \"exec\", \"artifact\": \"" SHA "\","
		     " \"entry\": \"--mode=fast\"}",
		&s, &e),
	    0);
	ck_assert_str_eq(s.entry, "--mode=fast");
}
END_TEST

/* Each a task at "tasks[3]", the code and the whole message it gets. */
static const struct {
	const char *json;
	int code;
	const char *msg;
} bad_tasks[] = {
    {"[]", -EINVAL, "tasks[3]: must be an object"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"argz\": []}",
	-EINVAL, "tasks[3]: unknown key \"argz\""},
    {"{\"artifact\": \"" SHA "\"}", -EINVAL,
	"tasks[3].runner: missing (\"kernel\" or \"exec\")"},
    {"{\"runner\": \"tvm\", \"artifact\": \"" SHA "\"}", -EINVAL,
	"tasks[3].runner: unknown runner \"tvm\" (\"kernel\" or \"exec\")"},
    {"{\"runner\": 1, \"artifact\": \"" SHA "\"}", -EINVAL,
	"tasks[3].runner: must be a string"},
    {"{\"runner\": \"kernel\"}", -EINVAL, "tasks[3].artifact: missing"},
    {"{\"runner\": \"kernel\", \"artifact\": \"ABCDEF\"}", -EINVAL,
	"tasks[3].artifact: \"ABCDEF\" is no sha256 (64 lowercase hex "
	"digits)"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"entry\": "
     "\"my-kernel\"}",
	-EINVAL, "tasks[3].entry: \"my-kernel\" is no C identifier"},
    {"{\"runner\": \"exec\", \"artifact\": \"" SHA "\", \"entry\": "
     "\"a\\nb\"}",
	-EINVAL, "tasks[3].entry: must be non-empty printable ASCII"},
    {"{\"runner\": \"exec\", \"artifact\": \"" SHA "\", \"name\": "
     "\"a\\u0007\"}",
	-EINVAL, "tasks[3].name: must be printable ASCII"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": {}}",
	-EINVAL, "tasks[3].args: must be an array of arguments"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": [2]}, 5]}",
	-EINVAL, "tasks[3].args[1]: must be an object"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": [2]}, {\"dtype\": \"flaot32\", "
     "\"shape\": [2]}]}",
	-EINVAL, "tasks[3].args[1].dtype: unknown dtype \"flaot32\""},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"shape\": [2]}]}",
	-EINVAL, "tasks[3].args[0].dtype: missing"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": [2], \"strides\": [1]}]}",
	-EINVAL, "tasks[3].args[0]: unknown key \"strides\""},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": [2, 0]}]}",
	-EINVAL, "tasks[3].args[0].shape[1]: must be a positive integer"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": 4}]}",
	-EINVAL, "tasks[3].args[0].shape: must be an array of dimensions"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\"}]}",
	-EINVAL,
	"tasks[3].args[0]: needs a shape (tensor) or a value (scalar)"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"int32\", \"shape\": [1], \"value\": 1}]}",
	-EINVAL,
	"tasks[3].args[0]: either a shape (tensor) or a value (scalar), not "
	"both"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"int32\", \"value\": 1, \"fill\": \"ones\"}]}",
	-EINVAL, "tasks[3].args[0]: a scalar has a value, not a fill"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"int8\", \"value\": 300}]}",
	-EINVAL, "tasks[3].args[0].value: 300 does not fit in int8"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"uint32\", \"value\": -1}]}",
	-EINVAL, "tasks[3].args[0].value: -1 does not fit in uint32"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"int64\", \"value\": 1.5}]}",
	-EINVAL, "tasks[3].args[0].value: must be an integer for int64"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"value\": \"1\"}]}",
	-EINVAL, "tasks[3].args[0].value: must be a finite number"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": [2], \"fill\": \"twos\"}]}",
	-EINVAL,
	"tasks[3].args[0].fill: must be \"zeros\", \"ones\" or {\"random\": "
	"SEED}"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": [2], \"fill\": {\"random\": "
     "-1}}]}",
	-EINVAL,
	"tasks[3].args[0].fill: random: the seed must be a non-negative "
	"integer"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": [2], \"device\": \"cuda\"}]}",
	-EINVAL,
	"tasks[3].args[0].device: unsupported device \"cuda\" (only "
	"\"cpu\")"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", "
     "\"measurement\": []}",
	-EINVAL, "tasks[3].measurement: must be an object"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", "
     "\"measurement\": {\"numbr\": 1}}",
	-EINVAL, "tasks[3].measurement: unknown key \"numbr\""},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", "
     "\"measurement\": {\"number\": 0}}",
	-EINVAL, "tasks[3].measurement.number: must be at least 1"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", "
     "\"measurement\": {\"repeat\": \"3\"}}",
	-EINVAL,
	"tasks[3].measurement.repeat: must be an integer from 1 to 1000"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", "
     "\"measurement\": {\"cooldown_ms\": -5}}",
	-EINVAL, "tasks[3].measurement.cooldown_ms: must be at least 0"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"timeout\": 0}",
	-EINVAL, "tasks[3].timeout: must be a positive number of seconds"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"timeout\": "
     "\"10\"}",
	-EINVAL, "tasks[3].timeout: must be a positive number of seconds"},
    /* limits */
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", "
     "\"measurement\": {\"repeat\": 1001}}",
	-E2BIG, "tasks[3].measurement.repeat: 1001 is over the limit of 1000"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", "
     "\"measurement\": {\"number\": 1000000001}}",
	-E2BIG,
	"tasks[3].measurement.number: 1000000001 is over the limit of "
	"1000000000"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", "
     "\"measurement\": {\"min_repeat_ms\": 600001}}",
	-E2BIG,
	"tasks[3].measurement.min_repeat_ms: 600001 is over the limit of "
	"600000"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", "
     "\"measurement\": {\"cooldown_ms\": 60001}}",
	-E2BIG,
	"tasks[3].measurement.cooldown_ms: 60001 is over the limit of 60000"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"timeout\": "
     "86401}",
	-E2BIG, "tasks[3].timeout: 86401 s is over the limit of 86400 s"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": [1, 1, 1, 1, 1, 1, 1, 1, 1]}]}",
	-E2BIG, "tasks[3].args[0].shape: 9 dimensions is over the limit of 8"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": [8192, 8193]}]}",
	-E2BIG,
	"tasks[3].args[0]: 268468224 bytes is over the limit of 268435456 "
	"per tensor"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float64x256\", \"shape\": [9223372036854775807, "
     "9223372036854775807]}]}",
	-E2BIG,
	"tasks[3].args[0]: more than 2^64 bytes is over the limit of "
	"268435456 per tensor"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"float32\", \"shape\": [8192, 8192]},"
     " {\"dtype\": \"float32\", \"shape\": [8192, 8192]},"
     " {\"dtype\": \"int8\", \"shape\": [1]}]}",
	-E2BIG,
	"tasks[3].args: 536870913 bytes in all is over the limit of "
	"536870912 per task"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"entry\": \""
     "a1234567890123456789012345678901234567890123456789012345678901234567"
     "8901234567890123456789012345678901234567890123456789012345678\"}",
	-E2BIG, "tasks[3].entry: longer than 127 bytes"},
    /* check (issue 11) */
    {"{\"runner\": \"exec\", \"artifact\": \"" SHA "\", \"check\": "
     "{\"ref\": \"" SHA "\"}}",
	-EINVAL, "tasks[3].check: only the kernel runner compares outputs"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"int32\", \"shape\": [4]}], \"check\": {}}",
	-EINVAL, "tasks[3].check.ref: missing (the reference's sha256)"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"int32\", \"shape\": [4]}], \"check\": {\"ref\": "
     "\"" SHA "\", \"rtol\": -1}}",
	-EINVAL, "tasks[3].check.rtol: must be a number >= 0"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"int32\", \"value\": 4}], \"check\": {\"ref\": "
     "\"" SHA "\"}}",
	-EINVAL, "tasks[3].check: the task has no tensor to compare"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"int32\", \"value\": 4}, {\"dtype\": \"int32\", "
     "\"shape\": [2]}], \"check\": {\"ref\": \"" SHA "\", "
     "\"outputs\": [0]}}",
	-EINVAL,
	"tasks[3].check.outputs[0]: args[0] is a scalar, not an output"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"int32\", \"shape\": [2]}], \"check\": {\"ref\": "
     "\"" SHA "\", \"outputs\": [1]}}",
	-EINVAL,
	"tasks[3].check.outputs[0]: must be an index into args (0..0)"},
    {"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": "
     "[{\"dtype\": \"int32\", \"shape\": [2]}], \"check\": {\"ref\": "
     "\"" SHA "\", \"tol\": 1}}",
	-EINVAL, "tasks[3].check: unknown key \"tol\""},
};

/* A check's defaults, its outputs, and the group a task is ranked in. */
START_TEST(test_parse_check_and_group)
{
	struct task_spec s;
	struct npufarm_err e;
	char g[TASK_SPEC_GROUP_MAX];

	ck_assert_int_eq(
	    parse_at("{\"runner\": \"kernel\", \"artifact\": \"" SHA
		     "\", \"args\": [{\"dtype\": \"float32\","
		     " \"shape\": [2, 3]}, {\"dtype\": \"int32\","
		     " \"value\": 7}, {\"dtype\": \"float16\","
		     " \"shape\": [4]}], \"check\": {\"ref\": \"" SHA "\"}}",
		&s, &e),
	    0);
	ck_assert(s.check.on);
	ck_assert(s.check.rtol == 1e-5 && s.check.atol == 1e-8);
	ck_assert(task_spec_check_output(&s, 0));
	ck_assert(!task_spec_check_output(&s, 1)); /* a scalar */
	ck_assert(task_spec_check_output(&s, 2));
	task_spec_group(&s, g, sizeof(g));
	ck_assert_str_eq(g, "float32[2,3] int32=7 float16[4]");
	ck_assert_int_eq(
	    parse_at("{\"runner\": \"kernel\", \"artifact\": \"" SHA
		     "\", \"group\": \"n=64\"}",
		&s, &e),
	    0);
	ck_assert(!s.check.on);
	task_spec_group(&s, g, sizeof(g));
	ck_assert_str_eq(g, "n=64");
}
END_TEST

/* Values read back as doubles, every dtype, float16/bfloat16 exactly. */
START_TEST(test_tensor_values_read_back)
{
	int64_t shape[1] = {3};
	DLTensor t;

	make(&t, "float16", shape, 1, DLPACK_UTIL_FILL_ZEROS, 0);
	dlpack_util_fill_float(&t, -1.5);
	ck_assert_uint_eq(dlpack_util_values(&t), 3);
	ck_assert(dlpack_util_value(&t, 2) == -1.5);
	dlpack_util_tensor_free(&t);
	make(&t, "bfloat16", shape, 1, DLPACK_UTIL_FILL_ONES, 0);
	ck_assert(dlpack_util_value(&t, 0) == 1.0);
	dlpack_util_tensor_free(&t);
	make(&t, "int8", shape, 1, DLPACK_UTIL_FILL_ZEROS, 0);
	dlpack_util_fill_int(&t, -7);
	ck_assert(dlpack_util_value(&t, 1) == -7.0);
	dlpack_util_tensor_free(&t);
	make(&t, "uint16", shape, 1, DLPACK_UTIL_FILL_ZEROS, 0);
	dlpack_util_fill_int(&t, 65535);
	ck_assert(dlpack_util_value(&t, 1) == 65535.0);
	dlpack_util_tensor_free(&t);
	make(&t, "float64", shape, 1, DLPACK_UTIL_FILL_ZEROS, 0);
	dlpack_util_fill_float(&t, 0.1);
	ck_assert(dlpack_util_value(&t, 0) == 0.1);
	dlpack_util_tensor_free(&t);
	make(&t, "float32x4", shape, 1, DLPACK_UTIL_FILL_ONES, 0);
	ck_assert_uint_eq(dlpack_util_values(&t), 12);
	ck_assert(dlpack_util_value(&t, 11) == 1.0);
	dlpack_util_tensor_free(&t);
}
END_TEST

START_TEST(test_parse_rejects)
{
	struct task_spec s;
	struct npufarm_err e;
	int r;

	memset(&s, 0x5a, sizeof(s));
	r = parse_at(bad_tasks[_i].json, &s, &e);
	ck_assert_msg(r == bad_tasks[_i].code, "%s: %d (%s)",
	    bad_tasks[_i].json, r, e.msg);
	ck_assert_int_eq(e.code, bad_tasks[_i].code);
	ck_assert_str_eq(e.msg, bad_tasks[_i].msg);
	ck_assert_uint_eq(((unsigned char *)&s)[0], 0x5a); /* untouched */
}
END_TEST

START_TEST(test_parse_quotes_peer_text)
{
	struct task_spec s;
	struct npufarm_err e;

	ck_assert_int_eq(
	    parse_at("{\"runner\": \"kernel\", \"artifact\": \"" SHA "\","
		     " \"args\": [{\"dtype\": \"\\u001b[31mfloat32\\n\","
		     " \"shape\": [1]}]}",
		&s, &e),
	    -EINVAL);
	ck_assert_str_eq(e.msg,
	    "tasks[3].args[0].dtype: unknown dtype \"\\x1b[31mfloat32\\x0a\"");
	/* Long input is cut, the message still names the place. */
	ck_assert_int_eq(
	    parse_at(
		"{\"runner\": \"kernel\", \"artifact\": \"" SHA "\","
		" \"args\": [{\"dtype\": \"float32xxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxx\", \"shape\": [1]}]}",
		&s, &e),
	    -EINVAL);
	ck_assert_ptr_nonnull(
	    strstr(e.msg, "tasks[3].args[0].dtype: unknown dtype \"float32x"));
	ck_assert_ptr_nonnull(strstr(e.msg, "...\""));
	/* With no path, the fields stand alone. */
	{
		json_t *v = load("{\"runner\": \"kernel\"}");

		ck_assert_int_eq(task_spec_parse(v, "", &s, &e), -EINVAL);
		ck_assert_str_eq(e.msg, "artifact: missing");
		json_decref(v);
		v = load("7");
		ck_assert_int_eq(task_spec_parse(v, "", &s, &e), -EINVAL);
		ck_assert_str_eq(e.msg, "task: must be an object");
		json_decref(v);
	}
}
END_TEST

START_TEST(test_validate_tasks)
{
	struct npufarm_err e = {0};
	json_t *tasks, *t;
	int i;

	tasks = load("[{\"runner\": \"kernel\", \"artifact\": \"" SHA "\"},"
		     " {\"runner\": \"exec\", \"artifact\": \"" SHA "\"},"
		     " {\"runner\": \"kernel\", \"artifact\": \"" SHA "\","
		     "  \"args\": [{\"dtype\": \"float32\", \"shape\": [1]},"
		     "   {\"dtype\": \"flaot32\", \"shape\": [1]}]}]");
	ck_assert_int_eq(task_spec_validate_tasks(tasks, &e), -EINVAL);
	ck_assert_str_eq(
	    e.msg, "tasks[2].args[1].dtype: unknown dtype \"flaot32\"");
	ck_assert_int_eq(json_array_remove(tasks, 2), 0);
	ck_assert_int_eq(task_spec_validate_tasks(tasks, &e), 2);
	json_decref(tasks);

	tasks = load("[]");
	ck_assert_int_eq(task_spec_validate_tasks(tasks, &e), -EINVAL);
	ck_assert_str_eq(e.msg, "tasks: must be a non-empty array");
	json_decref(tasks);
	tasks = load("{}");
	ck_assert_int_eq(task_spec_validate_tasks(tasks, &e), -EINVAL);
	json_decref(tasks);

	tasks = json_array();
	t = load("{\"runner\": \"kernel\", \"artifact\": \"" SHA "\"}");
	for (i = 0; i < TASK_SPEC_MAX_TASKS; i++)
		ck_assert_int_eq(json_array_append(tasks, t), 0);
	ck_assert_int_eq(
	    task_spec_validate_tasks(tasks, &e), TASK_SPEC_MAX_TASKS);
	ck_assert_int_eq(json_array_append(tasks, t), 0);
	ck_assert_int_eq(task_spec_validate_tasks(tasks, &e), -E2BIG);
	ck_assert_str_eq(
	    e.msg, "tasks: 10001 tasks is over the limit of 10000");
	json_decref(t);
	json_decref(tasks);
}
END_TEST

START_TEST(test_args_limit)
{
	struct task_spec s;
	struct npufarm_err e;
	char text[8192];
	size_t off;
	int i;

	off = (size_t)snprintf(text, sizeof(text),
	    "{\"runner\": \"kernel\", \"artifact\": \"" SHA "\", \"args\": [");
	for (i = 0; i < TASK_SPEC_MAX_ARGS + 1; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off,
		    "%s{\"dtype\": \"int8\", \"value\": 1}", i > 0 ? ", " : "");
	(void)snprintf(text + off, sizeof(text) - off, "]}");
	ck_assert_int_eq(parse_at(text, &s, &e), -E2BIG);
	ck_assert_str_eq(
	    e.msg, "tasks[3].args: 33 arguments is over the limit of 32");
}
END_TEST

START_TEST(test_args_json_round_trip)
{
	struct task_spec s, back;
	struct npufarm_err e;
	json_t *args, *task;
	char *text;

	ck_assert_int_eq(
	    parse_at(
		"{\"runner\": \"exec\", \"artifact\": \"" SHA "\","
		" \"args\": [{\"dtype\": \"float16x2\", \"shape\": [4, 5],"
		"   \"fill\": {\"random\": 9}},"
		"  {\"dtype\": \"int8\", \"shape\": [3], \"fill\": \"ones\"},"
		"  {\"dtype\": \"uint8\", \"shape\": [3]},"
		"  {\"dtype\": \"int64\", \"value\": -7},"
		"  {\"dtype\": \"float32\", \"value\": 0.25}]}",
		&s, &e),
	    0);
	args = task_spec_args_json(&s);
	ck_assert_ptr_nonnull(args);
	text = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
	ck_assert_str_eq(text,
	    "[{\"dtype\":\"float16x2\",\"fill\":{\"random\":9},\"shape\":[4,5]}"
	    ","
	    "{\"dtype\":\"int8\",\"fill\":\"ones\",\"shape\":[3]},"
	    "{\"dtype\":\"uint8\",\"fill\":\"zeros\",\"shape\":[3]},"
	    "{\"dtype\":\"int64\",\"value\":-7},"
	    "{\"dtype\":\"float32\",\"value\":0.25}]");
	free(text);
	task = json_pack(
	    "{s:s, s:s, s:o}", "runner", "exec", "artifact", SHA, "args", args);
	ck_assert_int_eq(task_spec_parse(task, "", &back, &e), 0);
	ck_assert_mem_eq(back.args, s.args, sizeof(s.args));
	json_decref(task);
	ck_assert_str_eq(task_spec_runner_name(TASK_RUNNER_EXEC), "exec");
	ck_assert_ptr_null(task_spec_runner_name(TASK_RUNNER_MAX));
	ck_assert_int_eq(
	    task_spec_runner_from_name("kernel"), TASK_RUNNER_KERNEL);
	ck_assert_int_eq(task_spec_runner_from_name("Kernel"), -1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("task-spec");
	TCase *tc;

	tc = tcase_create("dlpack");
	tcase_add_test(tc, test_dtype_round_trip);
	tcase_add_test(tc, test_dtype_rejects);
	tcase_add_test(tc, test_nbytes);
	tcase_add_test(tc, test_fill_ones);
	tcase_add_test(tc, test_fill_random_is_seeded);
	tcase_add_test(tc, test_fill_values_and_half_rounding);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_parse_full_task);
	tcase_add_test(tc, test_parse_defaults);
	tcase_add_loop_test(tc, test_parse_rejects, 0,
	    sizeof(bad_tasks) / sizeof(bad_tasks[0]));
	tcase_add_test(tc, test_parse_quotes_peer_text);
	tcase_add_test(tc, test_validate_tasks);
	tcase_add_test(tc, test_args_limit);
	tcase_add_test(tc, test_args_json_round_trip);
	tcase_add_test(tc, test_parse_check_and_group);
	tcase_add_test(tc, test_tensor_values_read_back);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
