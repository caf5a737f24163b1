/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The board's known-good probe (DESIGN.md §5): a trivial kernel run in a
 * forked child through the kernel runner (runner.h), under a deadline.
 * The built-in one is carried in the agent (runner_probe_spec()); an
 * operator may name a kernel of their own (--probe-kernel) that exercises
 * the accelerator.  Its verdict is evidence about the board, unlike the
 * outcome of any candidate: board.c quarantines a board only when a probe
 * (or the health command) fails.
 *
 *	probe_start()   the child runs; SIGCHLD -> probe_child_exited()
 *	done(arg, passed, detail)   once per start, from the event loop
 */
#pragma once

#include <stdbool.h>

struct event_base;
struct npufarm_err;
struct probe;

/* @detail: "" when it passed, else what failed ("crash: SIGSEGV ..."). */
typedef void probe_done_fn(void *arg, bool passed, const char *detail);

struct probe_config {
	const char *workdir; /* parent of the run's work dir; borrowed */
	const char *kernel;  /* --probe-kernel, or NULL: the built-in one */
	int stderr_fd;       /* the child's stderr; -1: inherit */
	probe_done_fn *done;
	void *arg;
};

int probe_new(struct event_base *base, const struct probe_config *cfg,
    struct probe **ret_probe, struct npufarm_err *err);
int probe_start(struct probe *p, struct npufarm_err *err);
bool probe_running(const struct probe *p);
void probe_child_exited(struct probe *p);
struct probe *probe_free(struct probe *p);
