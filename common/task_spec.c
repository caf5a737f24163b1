/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task JSON to struct task_spec (see task_spec.h).  Every check names the
 * field it failed on by its full path, built as the parse descends:
 * "<path>.args[1].shape[0]".  Invalid input is -EINVAL, a limit exceeded
 * -E2BIG; the first problem found is reported.  Peer strings are quoted
 * with control characters escaped and cut short.
 */
#include "config.h"

#include "task_spec.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "sha256_util.h"

/* Room for a field's path: "tasks[9999].args[31].shape[7]" and more. */
#define PATH_MAX_LEN 96

/* Room for a quoted peer string in a message. */
#define QUOTE_MAX 40

static const char *const runner_names[TASK_RUNNER_MAX] = {
    [TASK_RUNNER_KERNEL] = "kernel",
    [TASK_RUNNER_EXEC] = "exec",
};

static const char *const task_keys[] = {"runner", "artifact", "entry", "name",
    "args", "measurement", "timeout", "group", "check", NULL};
static const char *const check_keys_[] = {
    "ref", "entry", "rtol", "atol", "outputs", NULL};
static const char *const arg_keys[] = {
    "dtype", "shape", "fill", "device", "value", NULL};
static const char *const measure_keys[] = {
    "number", "repeat", "min_repeat_ms", "cooldown_ms", NULL};

/* The name of @runner ("kernel", "exec"), or NULL when it is none. */
const char *
task_spec_runner_name(enum task_runner runner)
{
	return (unsigned)runner < TASK_RUNNER_MAX ? runner_names[runner] : NULL;
}

/* The runner called @name, or -1. */
int
task_spec_runner_from_name(const char *name)
{
	int i;

	for (i = 0; i < TASK_RUNNER_MAX; i++)
		if (strcmp(name, runner_names[i]) == 0)
			return i;
	return -1;
}

/* "@path: " + message, into @err; returns @code. */
__attribute__((format(printf, 4, 5))) static int
fail(struct npufarm_err *err, int code, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)err_setv(err, code, fmt, ap);
	va_end(ap);
	err_prefix(err, "%s: ", path);
	return code;
}

/* Format a path into @buf; a path too long for it is cut short. */
__attribute__((format(printf, 3, 4))) static const char *
pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return buf;
}

/* "@path.@field" (or "@field" when @path is empty) into @buf. */
static const char *
join(char *buf, size_t len, const char *path, const char *field)
{
	return pathf(
	    buf, len, "%s%s%s", path, path[0] != '\0' ? "." : "", field);
}

/* @s, escaped and cut to fit a message, into @buf (QUOTE_MAX). */
static const char *
quote(char *buf, const char *s)
{
	char all[4 * QUOTE_MAX];
	size_t n = strlen(s);

	if (log_escape(all, sizeof(all), s, n) < QUOTE_MAX) {
		memcpy(buf, all, strlen(all) + 1);
		return buf;
	}
	/* Too long: cut at a whole character, and say so. */
	n = log_escape(buf, QUOTE_MAX - 3, s, n);
	memcpy(buf + n, "...", 4);
	return buf;
}

/* Refuse keys of object @v that are not in @keys. */
static int
check_keys(const json_t *v, const char *const *keys, const char *path,
    struct npufarm_err *err)
{
	const char *key;
	char q[QUOTE_MAX];
	json_t *val;
	size_t i;

	json_object_foreach((json_t *)v, key, val) {
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(key, keys[i]) == 0)
				break;
		if (keys[i] == NULL)
			return fail(err, -EINVAL, path, "unknown key \"%s\"",
			    quote(q, key));
	}
	return 0;
}

/*
 * The integer @key of object @obj into @ret, @def when absent: an integer
 * from @min to @max, -E2BIG above @max.
 */
static int
get_uint(const json_t *obj, const char *key, const char *path, uint64_t min,
    uint64_t max, uint64_t def, uint64_t *ret, struct npufarm_err *err)
{
	const json_t *v = json_object_get(obj, key);
	char p[PATH_MAX_LEN];
	json_int_t i;

	if (v == NULL) {
		*ret = def;
		return 0;
	}
	join(p, sizeof(p), path, key);
	if (!json_is_integer(v))
		return fail(err, -EINVAL, p,
		    "must be an integer from %llu to %llu",
		    (unsigned long long)min, (unsigned long long)max);
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min)
		return fail(err, -EINVAL, p, "must be at least %llu",
		    (unsigned long long)min);
	if ((uint64_t)i > max)
		return fail(err, -E2BIG, p, "%lld is over the limit of %llu",
		    (long long)i, (unsigned long long)max);
	*ret = (uint64_t)i;
	return 0;
}

/* The optional string @key of @obj, at most @max - 1 bytes; NULL if absent. */
static int
get_string(const json_t *obj, const char *key, const char *path, size_t max,
    const char **ret, struct npufarm_err *err)
{
	const json_t *v = json_object_get(obj, key);
	char p[PATH_MAX_LEN];

	*ret = NULL;
	if (v == NULL)
		return 0;
	join(p, sizeof(p), path, key);
	if (!json_is_string(v))
		return fail(err, -EINVAL, p, "must be a string");
	if (json_string_length(v) >= max)
		return fail(err, -E2BIG, p, "longer than %zu bytes", max - 1);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(err, -EINVAL, p, "contains a NUL byte");
	*ret = json_string_value(v);
	return 0;
}

/* @v at @path must be an array of at most @max @what. */
static int
check_array(const json_t *v, const char *path, size_t max, const char *what,
    struct npufarm_err *err)
{
	if (!json_is_array(v))
		return fail(err, -EINVAL, path, "must be an array of %s", what);
	if (json_array_size(v) > max)
		return fail(err, -E2BIG, path,
		    "%zu %s is over the limit of %zu", json_array_size(v), what,
		    max);
	return 0;
}

/* Integer range of an int/uint dtype of @bits. */
static bool
int_fits(DLDataType dtype, json_int_t v)
{
	int bits = dtype.bits;

	if (dtype.code == kDLUInt)
		return v >= 0 && (bits >= 63 || v < ((json_int_t)1 << bits));
	if (bits >= 64)
		return true;
	return v >= -((json_int_t)1 << (bits - 1)) &&
	       v < ((json_int_t)1 << (bits - 1));
}

/* "value" of a scalar argument at @path. */
static int
parse_value(const json_t *v, const char *path, struct task_arg *arg,
    struct npufarm_err *err)
{
	char p[PATH_MAX_LEN], dt[DLPACK_UTIL_DTYPE_MAX];

	join(p, sizeof(p), path, "value");
	(void)dlpack_util_dtype_format(arg->dtype, dt, sizeof(dt));
	if (dlpack_util_dtype_is_float(arg->dtype)) {
		if (!json_is_number(v) || !isfinite(json_number_value(v)))
			return fail(err, -EINVAL, p, "must be a finite number");
		arg->fvalue = json_number_value(v);
		return 0;
	}
	if (!json_is_integer(v))
		return fail(err, -EINVAL, p, "must be an integer for %s", dt);
	if (!int_fits(arg->dtype, json_integer_value(v)))
		return fail(err, -EINVAL, p, "%lld does not fit in %s",
		    (long long)json_integer_value(v), dt);
	arg->ivalue = json_integer_value(v);
	return 0;
}

/* "fill" of a tensor argument at @path. */
static int
parse_fill(const json_t *v, const char *path, struct task_arg *arg,
    struct npufarm_err *err)
{
	char p[PATH_MAX_LEN];
	const json_t *seed;

	join(p, sizeof(p), path, "fill");
	if (json_is_string(v) && strcmp(json_string_value(v), "zeros") == 0) {
		arg->fill = DLPACK_UTIL_FILL_ZEROS;
		return 0;
	}
	if (json_is_string(v) && strcmp(json_string_value(v), "ones") == 0) {
		arg->fill = DLPACK_UTIL_FILL_ONES;
		return 0;
	}
	seed = json_is_object(v) && json_object_size(v) == 1
		   ? json_object_get(v, "random")
		   : NULL;
	if (seed == NULL)
		return fail(err, -EINVAL, p,
		    "must be \"zeros\", \"ones\" or {\"random\": SEED}");
	if (!json_is_integer(seed) || json_integer_value(seed) < 0)
		return fail(err, -EINVAL, p,
		    "random: the seed must be a non-negative integer");
	arg->fill = DLPACK_UTIL_FILL_RANDOM;
	arg->seed = (uint64_t)json_integer_value(seed);
	return 0;
}

/* "shape" of a tensor argument at @path, and its byte size. */
static int
parse_shape(const json_t *v, const char *path, struct task_arg *arg,
    struct npufarm_err *err)
{
	char p[PATH_MAX_LEN], pi[PATH_MAX_LEN];
	const json_t *d;
	size_t i;
	int r;

	join(p, sizeof(p), path, "shape");
	r = check_array(v, p, TASK_SPEC_MAX_RANK, "dimensions", err);
	if (r < 0)
		return r;
	json_array_foreach(v, i, d) {
		if (!json_is_integer(d) || json_integer_value(d) < 1) {
			pathf(pi, sizeof(pi), "%s[%zu]", p, i);
			return fail(
			    err, -EINVAL, pi, "must be a positive integer");
		}
		arg->shape[i] = json_integer_value(d);
	}
	arg->ndim = (int)json_array_size(v);
	r = dlpack_util_nbytes(arg->dtype, arg->shape, arg->ndim, &arg->nbytes);
	if (r < 0)
		return fail(err, -E2BIG, path,
		    "more than 2^64 bytes is over the limit of %llu per tensor",
		    (unsigned long long)TASK_SPEC_MAX_TENSOR_BYTES);
	if (arg->nbytes > TASK_SPEC_MAX_TENSOR_BYTES)
		return fail(err, -E2BIG, path,
		    "%llu bytes is over the limit of %llu per tensor",
		    (unsigned long long)arg->nbytes,
		    (unsigned long long)TASK_SPEC_MAX_TENSOR_BYTES);
	return 0;
}

/* One argument at @path ("tasks[3].args[1]"). */
static int
parse_arg(const json_t *v, const char *path, struct task_arg *arg,
    struct npufarm_err *err)
{
	const json_t *shape, *value, *fill;
	const char *s;
	char p[PATH_MAX_LEN], q[QUOTE_MAX];
	int r;

	memset(arg, 0, sizeof(*arg));
	if (!json_is_object(v))
		return fail(err, -EINVAL, path, "must be an object");
	r = check_keys(v, arg_keys, path, err);
	if (r < 0)
		return r;
	r = get_string(v, "dtype", path, 1024, &s, err);
	if (r < 0)
		return r;
	join(p, sizeof(p), path, "dtype");
	if (s == NULL)
		return fail(err, -EINVAL, p, "missing");
	if (dlpack_util_dtype_parse(s, &arg->dtype) < 0)
		return fail(
		    err, -EINVAL, p, "unknown dtype \"%s\"", quote(q, s));
	r = get_string(v, "device", path, 16, &s, err);
	if (r < 0)
		return r;
	if (s != NULL && strcmp(s, "cpu") != 0)
		return fail(err, -EINVAL, join(p, sizeof(p), path, "device"),
		    "unsupported device \"%s\" (only \"cpu\")", quote(q, s));

	shape = json_object_get(v, "shape");
	value = json_object_get(v, "value");
	fill = json_object_get(v, "fill");
	if (shape != NULL && value != NULL)
		return fail(err, -EINVAL, path,
		    "either a shape (tensor) or a value (scalar), not both");
	if (value != NULL) {
		if (fill != NULL)
			return fail(err, -EINVAL, path,
			    "a scalar has a value, not a fill");
		arg->is_scalar = true;
		arg->nbytes =
		    ((uint64_t)arg->dtype.bits * arg->dtype.lanes + 7) / 8;
		return parse_value(value, path, arg, err);
	}
	if (shape == NULL)
		return fail(err, -EINVAL, path,
		    "needs a shape (tensor) or a value (scalar)");
	r = parse_shape(shape, path, arg, err);
	if (r < 0)
		return r;
	return fill == NULL ? 0 : parse_fill(fill, path, arg, err);
}

/* "args" of the task at @path. */
static int
parse_args(const json_t *v, const char *path, struct task_spec *spec,
    struct npufarm_err *err)
{
	char p[PATH_MAX_LEN], pi[PATH_MAX_LEN];
	uint64_t total = 0;
	const json_t *a;
	size_t i;
	int r;

	join(p, sizeof(p), path, "args");
	r = check_array(v, p, TASK_SPEC_MAX_ARGS, "arguments", err);
	if (r < 0)
		return r;
	json_array_foreach(v, i, a) {
		pathf(pi, sizeof(pi), "%s[%zu]", p, i);
		r = parse_arg(a, pi, &spec->args[i], err);
		if (r < 0)
			return r;
		total += spec->args[i].nbytes; /* each <= 256 MiB: no wrap */
	}
	spec->nargs = (int)json_array_size(v);
	if (total > TASK_SPEC_MAX_TASK_BYTES)
		return fail(err, -E2BIG, p,
		    "%llu bytes in all is over the limit of %llu per task",
		    (unsigned long long)total,
		    (unsigned long long)TASK_SPEC_MAX_TASK_BYTES);
	return 0;
}

/* "measurement" of the task at @path. */
static int
parse_measure(const json_t *v, const char *path, struct task_measure *m,
    struct npufarm_err *err)
{
	char p[PATH_MAX_LEN];
	uint64_t number, repeat, min_ms, cool_ms;
	int r;

	join(p, sizeof(p), path, "measurement");
	if (!json_is_object(v))
		return fail(err, -EINVAL, p, "must be an object");
	r = check_keys(v, measure_keys, p, err);
	if (r == 0)
		r = get_uint(
		    v, "number", p, 1, TASK_SPEC_MAX_NUMBER, 1, &number, err);
	if (r == 0)
		r = get_uint(
		    v, "repeat", p, 1, TASK_SPEC_MAX_REPEAT, 1, &repeat, err);
	if (r == 0)
		r = get_uint(v, "min_repeat_ms", p, 0,
		    TASK_SPEC_MAX_MIN_REPEAT_MS, 0, &min_ms, err);
	if (r == 0)
		r = get_uint(v, "cooldown_ms", p, 0, TASK_SPEC_MAX_COOLDOWN_MS,
		    0, &cool_ms, err);
	if (r < 0)
		return r;
	m->number = (uint32_t)number;
	m->repeat = (uint32_t)repeat;
	m->min_repeat_ms = (uint32_t)min_ms;
	m->cooldown_ms = (uint32_t)cool_ms;
	return 0;
}

/* "timeout" (seconds, integer or not) of the task at @path. */
static int
parse_timeout(const json_t *v, const char *path, uint64_t *ret_ms,
    struct npufarm_err *err)
{
	char p[PATH_MAX_LEN];
	double s;

	join(p, sizeof(p), path, "timeout");
	if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
	    json_number_value(v) <= 0)
		return fail(
		    err, -EINVAL, p, "must be a positive number of seconds");
	s = json_number_value(v);
	if (s * 1000 > (double)TASK_SPEC_MAX_TIMEOUT_MS)
		return fail(err, -E2BIG, p, "%g s is over the limit of %llu s",
		    s, (unsigned long long)(TASK_SPEC_MAX_TIMEOUT_MS / 1000));
	*ret_ms = (uint64_t)ceil(s * 1000);
	return 0;
}

/* A C identifier: what dlsym() can find in a library built from C. */
static bool
is_identifier(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') ||
			(s[i] >= 'A' && s[i] <= 'Z') ||
			(i > 0 && s[i] >= '0' && s[i] <= '9')))
			return false;
	return i > 0;
}

/* Printable ASCII only: it ends up in argv, logs and tables. */
static bool
is_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* "runner", "artifact", "entry" and "name" of the task at @path. */
static int
parse_head(const json_t *v, const char *path, struct task_spec *spec,
    struct npufarm_err *err)
{
	char p[PATH_MAX_LEN], q[QUOTE_MAX];
	const char *s;
	int r;

	r = get_string(v, "runner", path, 16, &s, err);
	if (r < 0)
		return r;
	join(p, sizeof(p), path, "runner");
	if (s == NULL)
		return fail(
		    err, -EINVAL, p, "missing (\"kernel\" or \"exec\")");
	r = task_spec_runner_from_name(s);
	if (r < 0)
		return fail(err, -EINVAL, p,
		    "unknown runner \"%s\" (\"kernel\" or \"exec\")",
		    quote(q, s));
	spec->runner = (enum task_runner)r;

	r = get_string(v, "artifact", path, 128, &s, err);
	if (r < 0)
		return r;
	join(p, sizeof(p), path, "artifact");
	if (s == NULL)
		return fail(err, -EINVAL, p, "missing");
	if (!sha256_util_valid(s))
		return fail(err, -EINVAL, p,
		    "\"%s\" is no sha256 (64 lowercase hex digits)",
		    quote(q, s));
	memcpy(spec->artifact, s, 65);

	r = get_string(v, "entry", path, TASK_SPEC_ENTRY_MAX, &s, err);
	if (r < 0)
		return r;
	join(p, sizeof(p), path, "entry");
	if (s != NULL && spec->runner == TASK_RUNNER_KERNEL &&
	    !is_identifier(s))
		return fail(
		    err, -EINVAL, p, "\"%s\" is no C identifier", quote(q, s));
	if (s != NULL && (s[0] == '\0' || !is_printable(s)))
		return fail(
		    err, -EINVAL, p, "must be non-empty printable ASCII");
	if (s != NULL)
		memcpy(spec->entry, s, strlen(s) + 1);

	r = get_string(v, "name", path, TASK_SPEC_NAME_MAX, &s, err);
	if (r < 0)
		return r;
	if (s != NULL && !is_printable(s))
		return fail(err, -EINVAL, join(p, sizeof(p), path, "name"),
		    "must be printable ASCII");
	if (s != NULL)
		memcpy(spec->name, s, strlen(s) + 1);
	return 0;
}

/* A tolerance of "check": a finite number >= 0, @def when absent. */
static int
get_tol(const json_t *obj, const char *key, const char *path, double def,
    double *ret, struct npufarm_err *err)
{
	const json_t *v = json_object_get(obj, key);
	char p[PATH_MAX_LEN];

	*ret = def;
	if (v == NULL)
		return 0;
	join(p, sizeof(p), path, key);
	if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
	    json_number_value(v) < 0)
		return fail(err, -EINVAL, p, "must be a number >= 0");
	*ret = json_number_value(v);
	return 0;
}

/* "check" of the task at @path (after its args). */
static int
parse_check(const json_t *v, const char *path, struct task_spec *spec,
    struct npufarm_err *err)
{
	struct task_check *c = &spec->check;
	char p[PATH_MAX_LEN], pi[PATH_MAX_LEN], q[QUOTE_MAX];
	const json_t *outs, *o;
	const char *s;
	size_t i;
	int r;

	join(p, sizeof(p), path, "check");
	if (!json_is_object(v))
		return fail(err, -EINVAL, p, "must be an object");
	if (spec->runner != TASK_RUNNER_KERNEL)
		return fail(
		    err, -EINVAL, p, "only the kernel runner compares outputs");
	r = check_keys(v, check_keys_, p, err);
	if (r < 0)
		return r;
	r = get_string(v, "ref", p, 128, &s, err);
	if (r < 0)
		return r;
	join(pi, sizeof(pi), p, "ref");
	if (s == NULL)
		return fail(
		    err, -EINVAL, pi, "missing (the reference's sha256)");
	if (!sha256_util_valid(s))
		return fail(err, -EINVAL, pi,
		    "\"%s\" is no sha256 (64 lowercase hex digits)",
		    quote(q, s));
	memcpy(c->ref, s, 65);
	r = get_string(v, "entry", p, TASK_SPEC_ENTRY_MAX, &s, err);
	if (r < 0)
		return r;
	if (s != NULL && !is_identifier(s))
		return fail(err, -EINVAL, join(pi, sizeof(pi), p, "entry"),
		    "\"%s\" is no C identifier", quote(q, s));
	if (s != NULL)
		memcpy(c->entry, s, strlen(s) + 1);
	r = get_tol(v, "rtol", p, TASK_SPEC_DEFAULT_RTOL, &c->rtol, err);
	if (r == 0)
		r = get_tol(
		    v, "atol", p, TASK_SPEC_DEFAULT_ATOL, &c->atol, err);
	if (r < 0)
		return r;
	outs = json_object_get(v, "outputs");
	if (outs != NULL) {
		join(pi, sizeof(pi), p, "outputs");
		r = check_array(outs, pi, TASK_SPEC_MAX_ARGS, "indices", err);
		if (r < 0)
			return r;
		if (json_array_size(outs) == 0)
			return fail(err, -EINVAL, pi,
			    "must name at least one argument");
		json_array_foreach(outs, i, o) {
			json_int_t k = json_integer_value(o);

			pathf(pi, sizeof(pi), "%s.outputs[%zu]", p, i);
			if (!json_is_integer(o) || k < 0 || k >= spec->nargs)
				return fail(err, -EINVAL, pi,
				    "must be an index into args (0..%d)",
				    spec->nargs - 1);
			if (spec->args[k].is_scalar)
				return fail(err, -EINVAL, pi,
				    "args[%lld] is a scalar, not an output",
				    (long long)k);
			c->outputs |= 1u << k;
		}
	}
	for (i = 0; i < (size_t)spec->nargs; i++)
		if (task_spec_check_output(spec, (int)i))
			break;
	if (i == (size_t)spec->nargs)
		return fail(
		    err, -EINVAL, p, "the task has no tensor to compare");
	c->on = true;
	return 0;
}

/*
 * Whether "check" compares args[@i] of @spec: named in "outputs", or,
 * when that is absent, any tensor (not scalar) argument.
 */
bool
task_spec_check_output(const struct task_spec *spec, int i)
{
	if (i < 0 || i >= spec->nargs)
		return false;
	if (spec->check.outputs != 0)
		return (spec->check.outputs >> i & 1u) != 0;
	return !spec->args[i].is_scalar;
}

/*
 * The group @spec is ranked in (the best per problem, issue 11) into
 * @buf: its own "group", else its inputs as "float32[64,64] int32=7 ..."
 * (dtype and shape of each tensor, dtype and value of each scalar; fills
 * are not part of the problem).  Cut to fit @len.
 */
void
task_spec_group(const struct task_spec *spec, char *buf, size_t len)
{
	char dt[DLPACK_UTIL_DTYPE_MAX];
	size_t off = 0;
	int i, d, n;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (spec->group[0] != '\0') {
		(void)snprintf(buf, len, "%s", spec->group);
		return;
	}
	for (i = 0; i < spec->nargs && off < len; i++) {
		const struct task_arg *a = &spec->args[i];

		(void)dlpack_util_dtype_format(a->dtype, dt, sizeof(dt));
		if (a->is_scalar && dlpack_util_dtype_is_float(a->dtype))
			n = snprintf(buf + off, len - off, "%s%s=%g",
			    i ? " " : "", dt, a->fvalue);
		else if (a->is_scalar)
			n = snprintf(buf + off, len - off, "%s%s=%lld",
			    i ? " " : "", dt, (long long)a->ivalue);
		else
			n = snprintf(
			    buf + off, len - off, "%s%s[", i ? " " : "", dt);
		off += n > 0 ? (size_t)n : 0;
		for (d = 0; !a->is_scalar && d < a->ndim && off < len; d++) {
			n = snprintf(buf + off, len - off, "%s%lld",
			    d ? "," : "", (long long)a->shape[d]);
			off += n > 0 ? (size_t)n : 0;
		}
		if (!a->is_scalar && off < len) {
			n = snprintf(buf + off, len - off, "]");
			off += n > 0 ? (size_t)n : 0;
		}
	}
	if (spec->nargs == 0)
		(void)snprintf(buf, len, "no arguments");
}

/*
 * Parse and validate the task object @v into @ret_spec, filling defaults.
 * @path is where @v sits, for messages ("tasks[3]"; "" for none).  Returns
 * 0, or -EINVAL (invalid) / -E2BIG (a limit exceeded) with @err naming the
 * field: "tasks[3].args[1].dtype: unknown dtype \"flaot32\"".  @ret_spec
 * is untouched on failure.  Borrows @v; keeps nothing of it.  Does not log.
 */
int
task_spec_parse(const json_t *v, const char *path, struct task_spec *ret_spec,
    struct npufarm_err *err)
{
	struct task_spec spec;
	const json_t *f;
	const char *s;
	char p[PATH_MAX_LEN], pg[PATH_MAX_LEN];
	int r;

	memset(&spec, 0, sizeof(spec));
	pathf(p, sizeof(p), "%s", path);
	if (!json_is_object(v))
		return fail(err, -EINVAL, p[0] != '\0' ? p : "task",
		    "must be an object");
	r = check_keys(v, task_keys, p[0] != '\0' ? p : "task", err);
	if (r < 0)
		return r;
	r = parse_head(v, p, &spec, err);
	if (r < 0)
		return r;
	f = json_object_get(v, "args");
	if (f != NULL && (r = parse_args(f, p, &spec, err)) < 0)
		return r;
	spec.measure.number = 1;
	spec.measure.repeat = 1;
	f = json_object_get(v, "measurement");
	if (f != NULL && (r = parse_measure(f, p, &spec.measure, err)) < 0)
		return r;
	spec.timeout_ms = TASK_SPEC_DEFAULT_TIMEOUT_MS;
	f = json_object_get(v, "timeout");
	if (f != NULL && (r = parse_timeout(f, p, &spec.timeout_ms, err)) < 0)
		return r;
	r = get_string(v, "group", p, TASK_SPEC_NAME_MAX, &s, err);
	if (r < 0)
		return r;
	if (s != NULL && !is_printable(s))
		return fail(err, -EINVAL, join(pg, sizeof(pg), p, "group"),
		    "must be printable ASCII");
	if (s != NULL)
		memcpy(spec.group, s, strlen(s) + 1);
	f = json_object_get(v, "check");
	if (f != NULL && (r = parse_check(f, p, &spec, err)) < 0)
		return r;
	*ret_spec = spec;
	return 0;
}

/*
 * Validate a job's "tasks": a non-empty array of at most
 * TASK_SPEC_MAX_TASKS tasks, each valid for task_spec_parse() with the
 * path "tasks[i]".  Returns the number of tasks, or -EINVAL/-E2BIG with
 * @err naming the first problem.  Does not log.
 */
int
task_spec_validate_tasks(const json_t *tasks, struct npufarm_err *err)
{
	struct task_spec spec;
	char p[PATH_MAX_LEN];
	const json_t *t;
	size_t i;
	int r;

	if (!json_is_array(tasks) || json_array_size(tasks) == 0)
		return fail(err, -EINVAL, "tasks", "must be a non-empty array");
	if (json_array_size(tasks) > TASK_SPEC_MAX_TASKS)
		return fail(err, -E2BIG, "tasks",
		    "%zu tasks is over the limit of %d", json_array_size(tasks),
		    TASK_SPEC_MAX_TASKS);
	json_array_foreach(tasks, i, t) {
		pathf(p, sizeof(p), "tasks[%zu]", i);
		r = task_spec_parse(t, p, &spec, err);
		if (r < 0)
			return r;
	}
	return (int)json_array_size(tasks);
}

/*
 * The arguments of @spec as JSON, in the form the task gave them with the
 * defaults filled in ({"dtype", "shape", "fill"} or {"dtype", "value"}),
 * for the exec runner's NPUFARM_ARGS.  Returns a new reference, or NULL
 * when out of memory.
 */
json_t *
task_spec_args_json(const struct task_spec *spec)
{
	static const char *const fills[DLPACK_UTIL_FILL_MAX] = {
	    [DLPACK_UTIL_FILL_ZEROS] = "zeros",
	    [DLPACK_UTIL_FILL_ONES] = "ones",
	};
	char dt[DLPACK_UTIL_DTYPE_MAX];
	json_t *args, *a, *shape, *fill;
	int i, d;

	args = json_array();
	for (i = 0; args != NULL && i < spec->nargs; i++) {
		const struct task_arg *arg = &spec->args[i];

		(void)dlpack_util_dtype_format(arg->dtype, dt, sizeof(dt));
		if (arg->is_scalar) {
			a = json_pack("{s:s, s:o}", "dtype", dt, "value",
			    dlpack_util_dtype_is_float(arg->dtype)
				? json_real(arg->fvalue)
				: json_integer(arg->ivalue));
		} else {
			shape = json_array();
			for (d = 0; shape != NULL && d < arg->ndim; d++)
				if (json_array_append_new(shape,
					json_integer(arg->shape[d])) < 0) {
					json_decref(shape);
					shape = NULL;
				}
			fill = arg->fill == DLPACK_UTIL_FILL_RANDOM
				   ? json_pack("{s:I}", "random",
					 (json_int_t)arg->seed)
				   : json_string(fills[arg->fill]);
			if (shape == NULL || fill == NULL) {
				json_decref(shape);
				json_decref(fill);
				a = NULL;
			} else {
				a = json_pack("{s:s, s:o, s:o}", "dtype", dt,
				    "shape", shape, "fill", fill);
			}
		}
		if (a == NULL || json_array_append_new(args, a) < 0) {
			json_decref(args);
			args = NULL;
		}
	}
	return args;
}
