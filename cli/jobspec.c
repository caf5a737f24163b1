/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Building the JSON of POST /v1/jobs on the client side.  Everything here
 * works on jansson values the caller owns and reports bad input through
 * npufarm_err with the place named the way the broker names it
 * ("tasks[3].artifact_file: ..."), so a spec is refused before anything
 * is uploaded.  Artifact files are hashed with libcrypto's EVP sha256.
 */
#include "config.h"

#include "jobspec.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "sha256_util.h"
#include "task_spec.h"
#include "xmalloc.h"

/* Read size for hashing. */
#define JOBSPEC_CHUNK (64 * 1024)

/* Longest NAME of a --sweep parameter. */
#define JOBSPEC_PARAM_MAX 32

/*
 * Hash the file at @path with sha256 into @ret_hex (lowercase) and its
 * size into *@ret_size.  Returns 0, or -errno with @err saying what failed
 * (the message starts with the path).  Does not log.
 */
int
jobspec_sha256_file(const char *path, char ret_hex[JOBSPEC_SHA256_HEX],
    uint64_t *ret_size, struct npufarm_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE], *buf = NULL;
	EVP_MD_CTX *ctx = NULL;
	unsigned int mdlen = 0;
	uint64_t size = 0;
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(
		    err, -errno, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = err_set(err, -EINVAL, "'%s' is not a regular file", path);
		goto out;
	}
	buf = xmalloc(JOBSPEC_CHUNK);
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = err_set(err, -ENOMEM, "cannot start sha256");
		goto out;
	}
	while ((n = read(fd, buf, JOBSPEC_CHUNK)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = err_set(err, -errno, "cannot read '%s': %s", path,
			    strerror(errno));
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			r = err_set(err, -EIO, "sha256 failed");
			goto out;
		}
		size += (uint64_t)n;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		r = err_set(err, -EIO, "sha256 failed");
		goto out;
	}
	sha256_util_hex(md, ret_hex);
	*ret_size = size;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	(void)close(fd);
	return r;
}

/* Release what jobspec_resolve() collected; @arts itself is the caller's. */
void
jobspec_artifacts_deinit(struct jobspec_artifacts *arts)
{
	size_t i;

	for (i = 0; i < arts->n; i++)
		free(arts->v[i].path);
	free(arts->v);
	arts->v = NULL;
	arts->n = 0;
}

/* The artifact at @path in @arts, hashing and adding it when new. */
static int
jobspec_artifact_get(struct jobspec_artifacts *arts, const char *path,
    const struct jobspec_artifact **ret, struct npufarm_err *err)
{
	struct jobspec_artifact a = {0};
	size_t i;
	int r;

	for (i = 0; i < arts->n; i++) {
		if (strcmp(arts->v[i].path, path) == 0) {
			*ret = &arts->v[i];
			return 0;
		}
	}
	r = jobspec_sha256_file(path, a.sha256, &a.size, err);
	if (r < 0)
		return r;
	a.path = xstrdup(path);
	arts->v = xreallocarray(arts->v, arts->n + 1, sizeof(*arts->v));
	arts->v[arts->n] = a;
	*ret = &arts->v[arts->n++];
	return 0;
}

/* jobspec_artifact_get() of @file, relative to @base_dir unless absolute. */
static int
jobspec_file_get(struct jobspec_artifacts *arts, const char *base_dir,
    const char *file, const struct jobspec_artifact **ret,
    struct npufarm_err *err)
{
	char *path;
	int r;

	if (file[0] == '/' || base_dir == NULL)
		path = xstrdup(file);
	else
		path = xasprintf("%s/%s", base_dir, file);
	r = jobspec_artifact_get(arts, path, ret, err);
	free(path);
	return r;
}

/*
 * A task's "check": {"ref_file": PATH} becomes {"ref": SHA256}, the file
 * hashed and added to @arts like an artifact_file.
 */
static int
jobspec_resolve_ref(json_t *t, size_t i, const char *base_dir,
    struct jobspec_artifacts *arts, struct npufarm_err *err)
{
	const struct jobspec_artifact *a;
	struct npufarm_err ferr = {0};
	json_t *check = json_object_get(t, "check");
	const char *file;
	int r;

	if (!json_is_object(check) ||
	    json_object_get(check, "ref_file") == NULL)
		return 0;
	file = json_string_value(json_object_get(check, "ref_file"));
	if (file == NULL || *file == '\0')
		return err_set(err, -EINVAL,
		    "tasks[%zu].check.ref_file: must be a path", i);
	if (json_object_get(check, "ref") != NULL)
		return err_set(err, -EINVAL,
		    "tasks[%zu].check: give \"ref\" or \"ref_file\", not both",
		    i);
	r = jobspec_file_get(arts, base_dir, file, &a, &ferr);
	if (r < 0)
		return err_set(
		    err, r, "tasks[%zu].check.ref_file: %s", i, ferr.msg);
	if (json_object_set_new(check, "ref", json_string(a->sha256)) < 0 ||
	    json_object_del(check, "ref_file") < 0)
		return err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/*
 * Replace every task's "artifact_file" in @spec (a job object) by
 * "artifact", the file's sha256.  A relative path is taken from
 * @base_dir (the spec file's directory; NULL: the working directory).
 * The distinct files are appended to @arts, each hashed once, even when
 * it fails halfway (the caller deinits @arts either way).  Returns 0, or
 * -errno with @err naming the task ("tasks[2].artifact_file: cannot open
 * 'x.so': No such file or directory").  Other fields are left for
 * jobspec_check().
 */
int
jobspec_resolve(json_t *spec, const char *base_dir,
    struct jobspec_artifacts *arts, struct npufarm_err *err)
{
	const struct jobspec_artifact *a;
	struct npufarm_err ferr = {0};
	json_t *tasks = json_object_get(spec, "tasks"), *t, *f;
	const char *file;
	size_t i;
	int r;

	if (!json_is_array(tasks))
		return err_set(
		    err, -EINVAL, "tasks: must be a non-empty array");
	json_array_foreach(tasks, i, t) {
		r = jobspec_resolve_ref(t, i, base_dir, arts, err);
		if (r < 0)
			return r;
		f = json_object_get(t, "artifact_file");
		if (f == NULL)
			continue;
		file = json_string_value(f);
		if (file == NULL || *file == '\0')
			return err_set(err, -EINVAL,
			    "tasks[%zu].artifact_file: must be a path", i);
		if (json_object_get(t, "artifact") != NULL)
			return err_set(err, -EINVAL,
			    "tasks[%zu]: give \"artifact\" or "
			    "\"artifact_file\", not both",
			    i);
		r = jobspec_file_get(arts, base_dir, file, &a, &ferr);
		if (r < 0)
			return err_set(err, r, "tasks[%zu].artifact_file: %s",
			    i, ferr.msg);
		if (json_object_set_new(t, "artifact", json_string(a->sha256)) <
			0 ||
		    json_object_del(t, "artifact_file") < 0)
			return err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* A JSON number for @v: an integer when it is whole. */
static json_t *
jobspec_number(double v)
{
	if (v == floor(v) && fabs(v) < 9e15)
		return json_integer((json_int_t)v);
	return json_real(v);
}

static int jobspec_apply_tags(
    json_t *spec, const struct jobspec_job *job, struct npufarm_err *err);
static int jobspec_apply_check(
    json_t *spec, const struct jobspec_job *job, struct npufarm_err *err);

/*
 * Set the job-level fields @job gives on @spec, over the spec's own, and
 * its --tag and --check-ref.  Returns 0, -EINVAL (a bad --tag) or
 * -ENOMEM.
 */
int
jobspec_apply_job(
    json_t *spec, const struct jobspec_job *job, struct npufarm_err *err)
{
	if ((job->key != NULL &&
		json_object_set_new(spec, "key", json_string(job->key)) < 0) ||
	    (job->user != NULL && json_object_set_new(spec, "user",
				      json_string(job->user)) < 0) ||
	    (job->has_priority && json_object_set_new(spec, "priority",
				      json_integer(job->priority)) < 0) ||
	    (job->queue_timeout >= 0 &&
		json_object_set_new(spec, "queue_timeout",
		    jobspec_number(job->queue_timeout)) < 0))
		return err_set(err, -ENOMEM, "out of memory");
	if (jobspec_apply_tags(spec, job, err) < 0)
		return -EINVAL;
	return jobspec_apply_check(spec, job, err);
}

/* --tag K=V: the job's "tags", which boards must carry to run it. */
static int
jobspec_apply_tags(
    json_t *spec, const struct jobspec_job *job, struct npufarm_err *err)
{
	json_t *tags;
	const char *eq;
	size_t i;

	if (job->ntags == 0)
		return 0;
	tags = json_object_get(spec, "tags");
	if (!json_is_object(tags)) {
		tags = json_object();
		if (tags == NULL || json_object_set_new(spec, "tags", tags) < 0)
			return err_set(err, -ENOMEM, "out of memory");
	}
	for (i = 0; i < job->ntags; i++) {
		eq = strchr(job->tags[i], '=');
		if (eq == NULL || eq == job->tags[i])
			return err_set(err, -EINVAL,
			    "--tag %s: expected KEY=VALUE", job->tags[i]);
		if (json_object_setn_new(tags, job->tags[i],
			(size_t)(eq - job->tags[i]), json_string(eq + 1)) < 0)
			return err_set(err, -EINVAL, "--tag %s: not UTF-8 text",
			    job->tags[i]);
	}
	return 0;
}

/*
 * --check-ref FILE: every kernel task without a "check" of its own gets
 * {"ref_file": FILE} (resolved by jobspec_resolve()), with --check-entry,
 * --rtol and --atol when given.
 */
static int
jobspec_apply_check(
    json_t *spec, const struct jobspec_job *job, struct npufarm_err *err)
{
	json_t *tasks = json_object_get(spec, "tasks"), *t, *c;
	const char *runner;
	size_t i;

	if (job->check_ref == NULL)
		return 0;
	json_array_foreach(tasks, i, t) {
		runner = json_string_value(json_object_get(t, "runner"));
		if (!json_is_object(t) || json_object_get(t, "check") != NULL ||
		    (runner != NULL && strcmp(runner, "kernel") != 0))
			continue;
		c = json_pack("{ss}", "ref_file", job->check_ref);
		if (c != NULL && job->check_entry != NULL)
			(void)json_object_set_new(
			    c, "entry", json_string(job->check_entry));
		if (c != NULL && job->rtol >= 0)
			(void)json_object_set_new(
			    c, "rtol", json_real(job->rtol));
		if (c != NULL && job->atol >= 0)
			(void)json_object_set_new(
			    c, "atol", json_real(job->atol));
		if (c == NULL || json_object_set_new(t, "check", c) < 0)
			return err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/*
 * Check @spec as the broker will, so that a bad spec is refused before
 * any upload: an object with a "key" string and valid "tasks" (the
 * broker's own validator, common/task_spec.c).  Returns the number of
 * tasks, or -EINVAL/-E2BIG with @err naming the field.
 */
int
jobspec_check(const json_t *spec, struct npufarm_err *err)
{
	const char *key;

	if (!json_is_object(spec))
		return err_set(err, -EINVAL, "the job must be a JSON object");
	key = json_string_value(json_object_get(spec, "key"));
	if (key == NULL || *key == '\0')
		return err_set(err, -EINVAL,
		    "key: required (the board key the job runs on)");
	return task_spec_validate_tasks(json_object_get(spec, "tasks"), err);
}

/* Parse all of @s as a JSON integer (true) or a finite real (false). */
static json_t *
jobspec_parse_number(const char *s)
{
	char *end;
	long long ll;
	double d;

	if (*s == '\0' || isspace((unsigned char)*s))
		return NULL;
	errno = 0;
	ll = strtoll(s, &end, 10);
	if (*end == '\0' && errno == 0)
		return json_integer(ll);
	d = strtod(s, &end);
	if (*end != '\0' || !isfinite(d))
		return NULL;
	return json_real(d);
}

/* Parse "64x64" (or "" for a 0-d tensor) into a JSON array. */
/* Whether @s is valid UTF-8, as every string in a JSON job must be. */
static bool
jobspec_utf8(const char *s)
{
	json_t *v = json_string(s);

	json_decref(v);
	return v != NULL;
}

static json_t *
jobspec_parse_shape(const char *s, size_t len)
{
	json_t *shape = json_array();
	const char *p = s, *end = s + len;
	char *e;
	long long d;

	while (p < end) {
		if (!isdigit((unsigned char)*p))
			goto fail;
		errno = 0;
		d = strtoll(p, &e, 10);
		if (errno != 0 || d < 1 || e > end ||
		    (e < end && *e != 'x' && *e != 'X'))
			goto fail;
		(void)json_array_append_new(shape, json_integer(d));
		p = e < end ? e + 1 : e;
		if (e < end && p == end)
			goto fail; /* a trailing 'x' */
	}
	return shape;
fail:
	json_decref(shape);
	return NULL;
}

/*
 * Parse one --arg: "DTYPE=VALUE" is a scalar ({"dtype", "value"});
 * "DTYPE:SHAPE[:FILL]" a tensor, SHAPE as "128x64" ("" for 0-d) and FILL
 * "zeros" (the default), "ones", "random=SEED" or "random" (seeded with
 * @position, the argument's place from 1, so that arguments differ).
 * dtypes are checked later by jobspec_check().  Returns 0 with a new
 * reference in *@ret_arg, or -EINVAL with @err saying what is wrong.
 */
int
jobspec_parse_arg(
    const char *s, size_t position, json_t **ret_arg, struct npufarm_err *err)
{
	const char *colon = strchr(s, ':'), *eq = strchr(s, '=');
	const char *fill, *shape_end;
	json_t *arg, *v, *shape;
	long long seed;
	char *end;

	/* Else json_pack() fails on the dtype and leaks what follows it. */
	if (!jobspec_utf8(s))
		return err_set(err, -EINVAL, "--arg: not valid UTF-8");
	if (colon == NULL && eq != NULL) {
		if (eq == s || (v = jobspec_parse_number(eq + 1)) == NULL)
			goto bad;
		arg = json_pack(
		    "{s:s%, s:o}", "dtype", s, (size_t)(eq - s), "value", v);
		goto done;
	}
	if (colon == NULL || colon == s)
		goto bad;
	shape_end = strchr(colon + 1, ':');
	fill = shape_end != NULL ? shape_end + 1 : NULL;
	if (shape_end == NULL)
		shape_end = colon + strlen(colon);
	shape = jobspec_parse_shape(colon + 1, (size_t)(shape_end - colon - 1));
	if (shape == NULL)
		return err_set(err, -EINVAL,
		    "--arg '%s': the shape must be dimensions like 128x64", s);
	arg = json_pack(
	    "{s:s%, s:o}", "dtype", s, (size_t)(colon - s), "shape", shape);
	if (fill == NULL || strcmp(fill, "zeros") == 0)
		goto done;
	if (strcmp(fill, "ones") == 0) {
		v = json_string("ones");
	} else if (strcmp(fill, "random") == 0) {
		v = json_pack("{s:I}", "random", (json_int_t)position);
	} else if (strncmp(fill, "random=", 7) == 0) {
		errno = 0;
		seed = strtoll(fill + 7, &end, 10);
		if (!isdigit((unsigned char)fill[7]) || *end != '\0' ||
		    errno != 0) {
			json_decref(arg);
			return err_set(err, -EINVAL,
			    "--arg '%s': the seed must be a number", s);
		}
		v = json_pack("{s:I}", "random", (json_int_t)seed);
	} else {
		json_decref(arg);
		return err_set(err, -EINVAL,
		    "--arg '%s': the fill is zeros, ones, random or "
		    "random=SEED",
		    s);
	}
	(void)json_object_set_new(arg, "fill", v);
done:
	if (arg == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	*ret_arg = arg;
	return 0;
bad:
	return err_set(err, -EINVAL,
	    "--arg '%s': expected DTYPE:SHAPE[:FILL] "
	    "(float32:128x128:random=1) "
	    "or DTYPE=VALUE (int32=16)",
	    s);
}

/* One --sweep parameter: its name and values, split in place. */
struct jobspec_param {
	char name[JOBSPEC_PARAM_MAX];
	char **values; /* owned, each owned */
	size_t nvalues;
	size_t uses; /* placeholders that name it */
};

static void
jobspec_params_free(struct jobspec_param *p, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < p[i].nvalues; j++)
			free(p[i].values[j]);
		free(p[i].values);
	}
	free(p);
}

/* Split "NAME=V1,V2,..." into @ret. */
static int
jobspec_param_parse(
    const char *s, struct jobspec_param *ret, struct npufarm_err *err)
{
	const char *eq = strchr(s, '='), *v, *comma;
	size_t i, len;

	if (eq == NULL || eq == s || (size_t)(eq - s) >= JOBSPEC_PARAM_MAX)
		goto bad;
	for (i = 0; s + i < eq; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_') ||
		    (i == 0 && isdigit((unsigned char)s[i])))
			goto bad;
	memcpy(ret->name, s, (size_t)(eq - s));
	ret->name[eq - s] = '\0';
	for (v = eq + 1;; v = comma + 1) {
		comma = strchrnul(v, ',');
		len = (size_t)(comma - v);
		if (len == 0)
			goto bad;
		ret->values = xreallocarray(
		    ret->values, ret->nvalues + 1, sizeof(*ret->values));
		ret->values[ret->nvalues++] = xasprintf("%.*s", (int)len, v);
		if (*comma == '\0')
			break;
	}
	return 0;
bad:
	return err_set(err, -EINVAL,
	    "--sweep '%s': expected NAME=V1,V2,... (NAME a C identifier, "
	    "no empty value)",
	    s);
}

/*
 * @tmpl with each "{NAME}" of a parameter replaced by its value at
 * @point (an index per parameter).  Returns a new string, or NULL when a
 * placeholder names no parameter (*@ret_unknown then points at it).
 */
static char *
jobspec_subst(const char *tmpl, struct jobspec_param *params, size_t nparams,
    const size_t *point, const char **ret_unknown)
{
	char *out = NULL;
	size_t len = 0, i, n;
	FILE *f = open_memstream(&out, &len);
	const char *p, *close;

	if (f == NULL) {
		(void)fprintf(stderr, "npufarm: out of memory\n");
		exit(1);
	}
	for (p = tmpl; *p != '\0'; p++) {
		close = *p == '{' ? strchr(p, '}') : NULL;
		if (close == NULL) {
			(void)fputc(*p, f);
			continue;
		}
		n = (size_t)(close - p - 1);
		for (i = 0; i < nparams; i++)
			if (strlen(params[i].name) == n &&
			    strncmp(params[i].name, p + 1, n) == 0)
				break;
		if (i == nparams) {
			(void)fclose(f);
			free(out);
			*ret_unknown = p;
			return NULL;
		}
		params[i].uses++;
		(void)fputs(params[i].values[point[i]], f);
		p = close;
	}
	if (fclose(f) != 0) {
		(void)fprintf(stderr, "npufarm: out of memory\n");
		exit(1);
	}
	return out;
}

/* The label of kernel file @path: its base name without ".so". */
static char *
jobspec_kernel_label(const char *path)
{
	const char *base = strrchr(path, '/');
	size_t len;

	base = base != NULL ? base + 1 : path;
	len = strlen(base);
	if (len > 3 && strcmp(base + len - 3, ".so") == 0)
		len -= 3;
	return xasprintf("%.*s", (int)len, base);
}

/* One task of a sweep: kernel @kernel at sweep point @point. */
static int
jobspec_sweep_task(const struct jobspec_sweep *sw, size_t kernel,
    struct jobspec_param *params, const size_t *point, json_t **ret_task,
    struct npufarm_err *err)
{
	json_t *task, *args, *m, *arg;
	const char *unknown = NULL;
	char name[TASK_SPEC_NAME_MAX] = "", *s, *label;
	size_t i, off = 0;
	int r;

	if (sw->nkernels > 1 || sw->nparams == 0) {
		label = jobspec_kernel_label(sw->kernels[kernel]);
		off = (size_t)snprintf(name, sizeof(name), "%s", label);
		free(label);
	}
	for (i = 0; i < sw->nparams && off < sizeof(name); i++)
		off += (size_t)snprintf(name + off, sizeof(name) - off,
		    "%s%s=%s", off > 0 ? " " : "", params[i].name,
		    params[i].values[point[i]]);
	/* Truncation may have cut a character in two: drop its start. */
	off = strlen(name);
	while (off > 0 && !jobspec_utf8(name))
		name[--off] = '\0';
	if (!jobspec_utf8(sw->kernels[kernel]) ||
	    (sw->runner != NULL && !jobspec_utf8(sw->runner)))
		return err_set(
		    err, -EINVAL, "--kernel or --runner: not valid UTF-8");
	task = json_pack("{s:s, s:s, s:s}", "runner",
	    sw->runner != NULL ? sw->runner : "kernel", "artifact_file",
	    sw->kernels[kernel], "name", name);
	if (task == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	args = json_array();
	if (args == NULL || json_object_set_new(task, "args", args) < 0) {
		json_decref(task);
		return err_set(err, -ENOMEM, "out of memory");
	}
	if (sw->entry != NULL) {
		s = jobspec_subst(
		    sw->entry, params, sw->nparams, point, &unknown);
		if (s == NULL)
			goto unknown;
		if (!jobspec_utf8(s)) {
			free(s);
			json_decref(task);
			return err_set(
			    err, -EINVAL, "--entry: not valid UTF-8");
		}
		(void)json_object_set_new(task, "entry", json_string(s));
		free(s);
	}
	for (i = 0; i < sw->nargs; i++) {
		s = jobspec_subst(
		    sw->args[i], params, sw->nparams, point, &unknown);
		if (s == NULL)
			goto unknown;
		r = jobspec_parse_arg(s, i + 1, &arg, err);
		free(s);
		if (r < 0) {
			json_decref(task);
			return r;
		}
		(void)json_array_append_new(args, arg);
	}
	m = json_object();
	if (sw->number >= 0)
		(void)json_object_set_new(
		    m, "number", json_integer(sw->number));
	if (sw->repeat >= 0)
		(void)json_object_set_new(
		    m, "repeat", json_integer(sw->repeat));
	if (sw->min_repeat_ms >= 0)
		(void)json_object_set_new(
		    m, "min_repeat_ms", json_integer(sw->min_repeat_ms));
	if (sw->cooldown_ms >= 0)
		(void)json_object_set_new(
		    m, "cooldown_ms", json_integer(sw->cooldown_ms));
	if (json_object_size(m) > 0)
		(void)json_object_set_new(task, "measurement", m);
	else
		json_decref(m);
	if (sw->timeout >= 0)
		(void)json_object_set_new(
		    task, "timeout", jobspec_number(sw->timeout));
	*ret_task = task;
	return 0;
unknown:
	json_decref(task);
	return err_set(err, -EINVAL, "'%.*s' names no --sweep parameter",
	    (int)strcspn(unknown, "}") + 1, unknown);
}

/*
 * Build the job of a single-kernel sweep: one task per kernel file and
 * per point of the --sweep parameters' cross product, kernels outermost,
 * the last parameter varying fastest.  "{NAME}" in --entry and --arg is
 * replaced by the parameter's value at each point; the task is named by
 * the kernel (when there are several) and the point ("tile=16").  Tasks
 * carry "artifact_file" for jobspec_resolve() and no key, for
 * jobspec_apply_job().  Returns 0 with a new reference in *@ret_spec, or
 * -EINVAL/-E2BIG with @err saying which flag is wrong.
 */
int
jobspec_sweep(
    const struct jobspec_sweep *sw, json_t **ret_spec, struct npufarm_err *err)
{
	struct jobspec_param *params = NULL;
	size_t *point = NULL, ntasks, i, k;
	json_t *spec = NULL, *tasks, *task = NULL;
	int r = 0;

	if (sw->nkernels == 0)
		return err_set(err, -EINVAL, "give at least one --kernel FILE");
	params = xcalloc(sw->nparams + 1, sizeof(*params));
	point = xcalloc(sw->nparams + 1, sizeof(*point));
	ntasks = sw->nkernels;
	for (i = 0; i < sw->nparams; i++) {
		r = jobspec_param_parse(sw->params[i], &params[i], err);
		if (r < 0)
			goto out;
		for (k = 0; k < i; k++)
			if (strcmp(params[k].name, params[i].name) == 0) {
				r = err_set(err, -EINVAL,
				    "--sweep %s is given twice",
				    params[i].name);
				goto out;
			}
		if (ntasks > JOBSPEC_MAX_TASKS)
			break;
		ntasks *= params[i].nvalues;
	}
	if (ntasks > JOBSPEC_MAX_TASKS) {
		r = err_set(err, -E2BIG, "the sweep makes more than %d tasks",
		    JOBSPEC_MAX_TASKS);
		goto out;
	}
	spec = json_object();
	tasks = json_array();
	if (spec == NULL || json_object_set_new(spec, "tasks", tasks) < 0) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (k = 0; k < sw->nkernels; k++) {
		memset(point, 0, (sw->nparams + 1) * sizeof(*point));
		for (;;) {
			r = jobspec_sweep_task(
			    sw, k, params, point, &task, err);
			if (r < 0)
				goto out;
			(void)json_array_append_new(tasks, task);
			/* Advance the odometer, last parameter fastest. */
			for (i = sw->nparams; i > 0; i--) {
				if (++point[i - 1] < params[i - 1].nvalues)
					break;
				point[i - 1] = 0;
			}
			if (i == 0)
				break;
		}
	}
	for (i = 0; i < sw->nparams; i++)
		if (params[i].uses == 0) {
			r = err_set(err, -EINVAL,
			    "--sweep %s: no --arg or --entry uses {%s}",
			    params[i].name, params[i].name);
			goto out;
		}
	*ret_spec = spec;
	spec = NULL;
out:
	json_decref(spec);
	jobspec_params_free(params, sw->nparams);
	free(point);
	return r;
}
