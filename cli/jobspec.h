/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Job specs for npufarm submit: a job JSON as POST /v1/jobs takes it
 * (docs/api.md), except that a task may name a local file with
 * "artifact_file" instead of giving "artifact", the file's sha256.  This
 * module turns such a spec, or the flags of a single-kernel sweep, into
 * the JSON the broker takes plus the list of files to upload.  Pure
 * functions besides reading the artifact files, so they are unit-tested.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct npufarm_err;

/* Room for a sha256 in lowercase hex, with its NUL. */
#define JOBSPEC_SHA256_HEX 65

/* Most tasks a sweep may expand to (the broker's per-job limit). */
#define JOBSPEC_MAX_TASKS 10000

/* One artifact file a spec names, hashed. */
struct jobspec_artifact {
	char sha256[JOBSPEC_SHA256_HEX];
	char *path;    /* owned; as opened (joined with the spec's dir) */
	uint64_t size; /* bytes, when hashed */
};

/* The distinct artifact files of a spec, in the order first named. */
struct jobspec_artifacts {
	struct jobspec_artifact *v; /* owned, n entries */
	size_t n;
};

/* Job-level settings from flags; they override a spec file's. */
struct jobspec_job {
	const char *key;         /* NULL: keep the spec's; borrowed */
	const char *user;        /* NULL: keep (the broker's default) */
	bool has_priority;       /* priority given */
	long priority;           /* any integer */
	double queue_timeout;    /* seconds; < 0: keep */
	const char *check_ref;   /* --check-ref FILE: every kernel task
				  * without a "check" gets one; borrowed */
	const char *check_entry; /* its entry point; NULL: the task's */
	double rtol, atol;       /* < 0: the broker's defaults */
	const char *const *tags; /* --tag K=V, borrowed */
	size_t ntags;
};

/* npufarm submit's sweep flags: one task per kernel and sweep point. */
struct jobspec_sweep {
	const char *runner;         /* "kernel" (NULL too) or "exec" */
	const char *entry;          /* NULL: the runner's default */
	const char *const *kernels; /* artifact files, borrowed */
	size_t nkernels;
	const char *const *args; /* --arg strings, in order, borrowed */
	size_t nargs;
	const char *const *params; /* --sweep NAME=V1,V2,..., borrowed */
	size_t nparams;
	long number, repeat, min_repeat_ms, cooldown_ms; /* < 0: not given */
	double timeout; /* run timeout in seconds; < 0: not given */
};

int jobspec_sha256_file(const char *path, char ret_hex[JOBSPEC_SHA256_HEX],
    uint64_t *ret_size, struct npufarm_err *err);
int jobspec_resolve(json_t *spec, const char *base_dir,
    struct jobspec_artifacts *arts, struct npufarm_err *err);
void jobspec_artifacts_deinit(struct jobspec_artifacts *arts);
int jobspec_apply_job(
    json_t *spec, const struct jobspec_job *job, struct npufarm_err *err);
int jobspec_parse_arg(
    const char *s, size_t position, json_t **ret_arg, struct npufarm_err *err);
int jobspec_sweep(
    const struct jobspec_sweep *sw, json_t **ret_spec, struct npufarm_err *err);
int jobspec_check(const json_t *spec, struct npufarm_err *err);
