/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A native tuning task (DESIGN.md §3, issue 5), parsed and validated from
 * its JSON by one piece of code that the broker (on submit) and the agent
 * (before it runs anything) both use, so a task the broker accepted is one
 * the agent can run.  A task is:
 *
 *   {"runner": "kernel" | "exec",
 *    "artifact": "<sha256, 64 lowercase hex>",
 *    "entry": "matmul",                      optional, see below
 *    "name": "tile=16",                      optional label
 *    "args": [{"dtype": "float32", "shape": [64, 64],
 *              "fill": "zeros" | "ones" | {"random": SEED},  default zeros
 *              "device": "cpu"},                              default cpu
 *             {"dtype": "int32", "value": 7}, ...],           a scalar
 *    "measurement": {"number": 1, "repeat": 1, "min_repeat_ms": 0,
 *                    "cooldown_ms": 0},      each optional, defaults shown
 *    "timeout": 10,                          seconds, default 10
 *    "group": "n=64",                        optional: tasks to rank
 *                                            together (default: by args)
 *    "check": {"ref": "<sha256>",            optional: compare outputs
 *              "entry": "matmul_ref",        default: the task's entry
 *              "rtol": 1e-5, "atol": 1e-8,   defaults shown
 *              "outputs": [2]}}              default: every tensor arg
 *
 * `entry` is the kernel's symbol (default NPUFARM_KERNEL_DEFAULT_ENTRY) or,
 * for exec, an argument passed to the program (default none).  A scalar
 * argument is a 0-d tensor whose one value is `value`.  Unknown keys are
 * errors.  Messages name the exact place, starting with the path the
 * caller gives: `tasks[3].args[1].dtype: unknown dtype "flaot32"`.
 *
 * With "check" (kernel runner only) the agent runs the reference kernel
 * `ref` on the same inputs, then the candidate once, and compares every
 * value of the `outputs` tensors: |got - want| <= atol + rtol * |want|
 * (numpy.isclose; NaN matches only NaN).  A mismatch is the outcome
 * `wrong`, with the first mismatching index and both values.
 *
 * The struct is plain data with no pointers: it can be copied, kept in a
 * forked child, and needs no release.
 */
#pragma once

#include <dlpack/dlpack.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "dlpack_util.h"

struct npufarm_err;

/* Limits; a task beyond one is refused with -E2BIG and a message. */
#define TASK_SPEC_MAX_TASKS         10000 /* tasks in one job */
#define TASK_SPEC_MAX_ARGS          32
#define TASK_SPEC_MAX_RANK          8
#define TASK_SPEC_MAX_TENSOR_BYTES  (256ULL << 20) /* one tensor */
#define TASK_SPEC_MAX_TASK_BYTES    (512ULL << 20) /* all of a task's */
#define TASK_SPEC_MAX_NUMBER        1000000000
#define TASK_SPEC_MAX_REPEAT        1000
#define TASK_SPEC_MAX_MIN_REPEAT_MS 600000 /* 10 min */
#define TASK_SPEC_MAX_COOLDOWN_MS   60000
#define TASK_SPEC_MAX_TIMEOUT_MS    (86400ULL * 1000) /* a day */
#define TASK_SPEC_ENTRY_MAX         128               /* with its NUL */
#define TASK_SPEC_NAME_MAX          128               /* with its NUL */
#define TASK_SPEC_GROUP_MAX         512 /* task_spec_group(), with NUL */

/* Defaults for what a task leaves out. */
#define TASK_SPEC_DEFAULT_TIMEOUT_MS 10000
#define TASK_SPEC_DEFAULT_RTOL       1e-5
#define TASK_SPEC_DEFAULT_ATOL       1e-8

enum task_runner {
	TASK_RUNNER_KERNEL,
	TASK_RUNNER_EXEC,
	TASK_RUNNER_MAX,
};

/* One argument: a tensor, or a scalar (ndim 0, is_scalar). */
struct task_arg {
	DLDataType dtype;
	int ndim;                          /* 0..TASK_SPEC_MAX_RANK */
	int64_t shape[TASK_SPEC_MAX_RANK]; /* each >= 1 */
	uint64_t nbytes;                   /* computed from dtype and shape */
	bool is_scalar;                    /* "value" given, no "shape" */
	enum dlpack_util_fill fill;        /* tensors */
	uint64_t seed;                     /* DLPACK_UTIL_FILL_RANDOM */
	int64_t ivalue;                    /* scalars of int/uint dtype */
	double fvalue;                     /* scalars of float dtype */
};

/* A reference to compare the outputs with ("check"). */
struct task_check {
	bool on;                         /* "check" given */
	char ref[65];                    /* the reference's sha256 */
	char entry[TASK_SPEC_ENTRY_MAX]; /* "" = the task's entry */
	double rtol, atol;               /* >= 0 */
	uint32_t outputs;                /* bit i: compare args[i]; 0 = every
					  * tensor argument */
};

/* Same meaning as TVM's time_evaluator. */
struct task_measure {
	uint32_t number;        /* calls per repeat, 1..TASK_SPEC_MAX_NUMBER */
	uint32_t repeat;        /* costs reported, 1..TASK_SPEC_MAX_REPEAT */
	uint32_t min_repeat_ms; /* a shorter repeat is redone with a larger
				 * number */
	uint32_t cooldown_ms;   /* sleep between two repeats */
};

struct task_spec {
	enum task_runner runner;
	char artifact[65];               /* sha256, lowercase hex */
	char entry[TASK_SPEC_ENTRY_MAX]; /* "" = the runner's default */
	char name[TASK_SPEC_NAME_MAX];   /* "" when none */
	int nargs;                       /* 0..TASK_SPEC_MAX_ARGS */
	struct task_arg args[TASK_SPEC_MAX_ARGS];
	struct task_measure measure;
	uint64_t timeout_ms;            /* run timeout, >= 1 */
	char group[TASK_SPEC_NAME_MAX]; /* "" when none */
	struct task_check check;
};

int task_spec_parse(const json_t *v, const char *path,
    struct task_spec *ret_spec, struct npufarm_err *err);
int task_spec_validate_tasks(const json_t *tasks, struct npufarm_err *err);
const char *task_spec_runner_name(enum task_runner runner);
int task_spec_runner_from_name(const char *name);
json_t *task_spec_args_json(const struct task_spec *spec);
bool task_spec_check_output(const struct task_spec *spec, int i);
void task_spec_group(const struct task_spec *spec, char *buf, size_t len);
