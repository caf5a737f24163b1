/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's session supervisor, parent side: it forks session children
 * (session_child.h) and hook commands, kills their whole process group, and
 * reaps and classifies them.  Built for a single-threaded event loop:
 * nothing here blocks unless asked to (the `wait` flags and
 * supervisor_run_hook()), and there are no threads or signal handlers.
 *
 * Every child is the leader of its own process group (pgid == pid), so a
 * kill reaches whatever the runtime or a kernel spawned.  Children are
 * reaped by pid only (never waitpid(-1)), so the agent may run other
 * children of its own; it must not set SIGCHLD to SIG_IGN, or the kernel
 * reaps them and the exit status is lost.  A typical loop:
 *
 *	supervisor_session_start()      fd to relay, pid to watch
 *	SIGCHLD -> supervisor_session_reap(.., false, ..) == 1: ended
 *	deadline -> supervisor_session_kill(pid, SUPERVISOR_KILL_TERM) and a
 *	    SUPERVISOR_KILL_GRACE_MS timer -> supervisor_session_kill(pid,
 *	    SUPERVISOR_KILL_FORCE) unless reaped by then
 *
 * The reaper does not know why a child died: a session the caller killed
 * at its deadline comes back as a crash by SIGTERM or SIGKILL, and the
 * caller, which knows it killed it, records a timeout instead.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <npufarm/outcome.h>

#include "tvm_rpc.h"

struct npufarm_err;

/* How long a child has between SIGTERM and SIGKILL. */
#define SUPERVISOR_KILL_GRACE_MS 200

/* How long the start-up probe of the runtime may take. */
#define SUPERVISOR_PROBE_TIMEOUT_MS 30000

/* Room in struct supervisor_end's msg. */
#define SUPERVISOR_END_MSG_MAX 64

struct supervisor_config {
	const char *runtime_path;     /* libtvm_runtime.so, dlopen()ed only in
				       * session children; borrowed */
	const char *workdir;          /* parent of the per-session work dirs
				       * (created 0700 if missing); borrowed */
	int stderr_fd;                /* the children's stderr, i.e. the agent
				       * log; -1: inherit the agent's */
	enum tvm_rpc_dialect dialect; /* the runtime's, from
				       * supervisor_runtime_probe(); UNKNOWN
				       * when not probed */
};

/* The two steps of a kill. */
enum supervisor_kill {
	SUPERVISOR_KILL_TERM,  /* SIGTERM to the process group */
	SUPERVISOR_KILL_FORCE, /* SIGKILL to the process group */
};

/* How a child ended. */
struct supervisor_end {
	enum npufarm_outcome outcome; /* OK (exit 0), CRASH (other exit or a
				       * signal), TIMEOUT (a hook killed at
				       * its deadline) */
	int status;                   /* exit status; -1 when signalled */
	int signal;                   /* terminating signal, or 0 */
	int cleanup;                  /* sessions: 0, or -errno when the work
				       * dir could not be removed entirely
				       * (detail in the reap's err) */
	char msg[SUPERVISOR_END_MSG_MAX]; /* "" when OK; "exited with status
					   * 3", "SIGSEGV (signal 11)", "timed
					   * out after 500 ms" */
};

int supervisor_runtime_probe(const char *runtime_path, int stderr_fd,
    enum tvm_rpc_dialect *ret_dialect, struct npufarm_err *err);
int supervisor_session_start(const struct supervisor_config *cfg, int *ret_fd,
    pid_t *ret_pid, struct npufarm_err *err);
int supervisor_session_kill(pid_t pid, enum supervisor_kill how);
int supervisor_session_reap(const struct supervisor_config *cfg, pid_t pid,
    bool wait, struct supervisor_end *ret_end, struct npufarm_err *err);
int supervisor_session_workdir(
    const struct supervisor_config *cfg, pid_t pid, char *buf, size_t len);

int supervisor_hook_start(
    const char *cmd, int stderr_fd, pid_t *ret_pid, struct npufarm_err *err);
int supervisor_hook_reap(pid_t pid, bool wait, struct supervisor_end *ret_end,
    struct npufarm_err *err);
int supervisor_run_hook(const char *cmd, int timeout_ms, int stderr_fd,
    struct supervisor_end *ret_end, struct npufarm_err *err);
