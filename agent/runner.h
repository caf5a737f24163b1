/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runners for native tuning tasks (DESIGN.md §3, issue 5): each task runs
 * in a forked child, leader of its own process group with default signal
 * dispositions (child_setup.h), in a fresh work dir removed afterwards
 * (workdir.h).  The agent never runs task code itself.
 *
 *  - kernel (runner_kernel.c): the child dlopen()s the artifact, checks the
 *    kernel ABI (<npufarm/kernel.h>), allocates and fills the tensors the
 *    task describes, calls the entry point once untimed, then times
 *    number x repeat calls with CLOCK_MONOTONIC as TVM's time_evaluator
 *    does (a repeat shorter than min_repeat_ms is redone with a larger
 *    number; cooldown_ms between repeats).
 *  - exec (runner_exec.c): the child is a small monitor that runs the
 *    artifact (or the configured command) with the measurement in its
 *    environment (NPUFARM_*, docs/kernel-abi.md), keeps at most
 *    RUNNER_EXEC_STDOUT_MAX bytes of its stdout, where it reports costs as
 *    JSON, and the last RUNNER_TAIL_MAX bytes of its stderr.
 *
 * A kernel task with a "check" first runs the reference kernel
 * (runner_config.ref_path) on the same inputs, then the candidate once;
 * outputs that differ end the task as WRONG before anything is timed.
 * The reference's outputs are kept in runner_config.ref_cache, keyed by
 * the reference and the inputs, so it runs once per board and input.
 * runner_start() with no artifact (NULL) runs the agent's built-in probe
 * kernel on runner_probe_spec(): a known-good kernel the board's health
 * is judged by (board.c).
 *
 * Either way the child writes one report to a pipe and exits.  Built for a
 * single-threaded event loop, like supervisor.h; nothing blocks unless
 * asked to:
 *
 *	runner_start()                  watch runner_fd() for reading, and
 *	                                arm the task's deadline
 *	fd readable -> runner_read() == 1 (EOF): stop watching the fd
 *	SIGCHLD -> runner_collect(run, false, ..) == 1: the result; then
 *	    runner_free()
 *	deadline or cancel -> supervisor_session_kill(runner_pid(run),
 *	    SUPERVISOR_KILL_TERM), SUPERVISOR_KILL_FORCE after
 *	    SUPERVISOR_KILL_GRACE_MS unless collected by then; the collected
 *	    result then says CRASH by SIGTERM/SIGKILL, and the caller, who
 *	    knows why it killed, records TIMEOUT or CANCELLED instead.
 *
 * runner_read() must keep up while the child runs: a report larger than
 * the pipe's buffer blocks the child until it is read.  A task's work dir
 * is named as a session's (supervisor_session_workdir()), so that the
 * supervisor's reaper removes it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <npufarm/outcome.h>

struct npufarm_err;
struct task_spec;
struct runner;

#define RUNNER_MAX_COSTS       1000  /* == TASK_SPEC_MAX_REPEAT */
#define RUNNER_MSG_MAX         1024  /* == NPUFARM_KERNEL_ERR_MAX */
#define RUNNER_TAIL_MAX        1024  /* stderr tail kept (exec) */
#define RUNNER_EXEC_STDOUT_MAX 65536 /* stdout an exec program may write */
#define RUNNER_REPORT_MAX      (256 * 1024) /* child -> agent report */

struct runner_config {
	const char *workdir;   /* parent of the per-task work dirs, created
				* 0700 if missing; borrowed */
	const char *exec_cmd;  /* exec runner: run this with /bin/sh -c
				* instead of the artifact (which it finds in
				* $NPUFARM_ARTIFACT); NULL: run the artifact;
				* borrowed */
	int stderr_fd;         /* the children's own stderr, i.e. the agent
				* log (the kernel's too); -1: inherit */
	const char *ref_path;  /* the reference kernel of the task's
				* "check", kept like the artifact; NULL:
				* none; borrowed */
	const char *ref_cache; /* dir of the references' outputs, per
				* reference and input (created 0700);
				* NULL: the reference runs every time;
				* borrowed */
};

/* Bounds of runner_config.ref_cache: outputs cached, and files kept. */
#define RUNNER_REF_CACHE_MAX_BYTES (64ULL << 20)
#define RUNNER_REF_CACHE_MAX_FILES 64

/* How a task ended, as far as the runner can tell. */
struct runner_result {
	enum npufarm_outcome outcome;   /* OK, EXCEPTION, CRASH or WRONG */
	uint32_t number;                /* calls per repeat that the costs
					 * average over (after min_repeat_ms
					 * growth) */
	uint32_t ncosts;                /* entries of costs; 0 unless OK */
	double costs[RUNNER_MAX_COSTS]; /* seconds per call, one per repeat */
	int status;                     /* exit status of the program (exec) or
					 * of the runner child; -1: signalled */
	int signal;                     /* terminating signal, or 0 */
	int cleanup;                    /* 0, or -errno when the work dir could
					 * not be removed entirely */
	char msg[RUNNER_MSG_MAX];       /* "" when OK; EXCEPTION: the message,
					 * verbatim; CRASH: "SIGSEGV (signal
					 * 11)", "exited with status 3";
					 * WRONG: the first mismatch */
	char tail[RUNNER_TAIL_MAX]; /* exec: the end of stderr; "" if none */
};

int runner_start(const struct runner_config *cfg, const struct task_spec *spec,
    const char *artifact_path, struct runner **ret_run,
    struct npufarm_err *err);
pid_t runner_pid(const struct runner *run);
int runner_fd(const struct runner *run);
int runner_read(struct runner *run, struct npufarm_err *err);
int runner_collect(struct runner *run, bool wait,
    struct runner_result *ret_result, struct npufarm_err *err);
struct runner *runner_free(struct runner *run);

/*
 * Inside the runner child only (runner.c forks, runner_kernel.c and
 * runner_exec.c run the task): the report on @fd, then _exit(0).
 */
_Noreturn void runner_child_report(int fd, const struct runner_result *res);
_Noreturn void runner_child_fail(int fd, enum npufarm_outcome outcome,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
_Noreturn void runner_kernel_child(const struct task_spec *spec,
    const char *artifact, const char *ref, const char *ref_cache, int fd);
void runner_probe_spec(struct task_spec *ret_spec);
_Noreturn void runner_exec_child(const struct runner_config *cfg,
    const struct task_spec *spec, const char *artifact, const char *workdir,
    int fd);
