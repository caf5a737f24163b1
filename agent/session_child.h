/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The session child: the process, forked by the supervisor, that loads the
 * board's TVM runtime and serves one RPC session on a socket with the
 * runtime's own rpc.ServerLoop (spec tvm-c-runtime-api.md §9).  It never
 * runs in the agent itself, and it never returns: its exit status says how
 * the session ended (SESSION_CHILD_EXIT_*), and what went wrong is written
 * to its stderr, which the supervisor points at the agent log.  The runtime
 * may have either C ABI (tvm_runtime.h): the child serves both alike.
 */
#pragma once

#include <sysexits.h>

#include "tvm_rpc.h"

/*
 * Exit statuses.  RUNTIME covers dlopen, dlsym and registering the server
 * environment; OSERR the fd setup.  Anything else comes from the runtime or
 * a module: 127 is ld.so's "symbol lookup error" (a runtime opened without
 * RTLD_GLOBAL, spec §1), and a signal is a crash.
 */
#define SESSION_CHILD_EXIT_OK      0            /* ServerLoop returned 0 */
#define SESSION_CHILD_EXIT_LOOP    1            /* ServerLoop failed */
#define SESSION_CHILD_EXIT_RUNTIME EX_SOFTWARE  /* 70 */
#define SESSION_CHILD_EXIT_OSERR   EX_OSERR     /* 71 */
#define SESSION_CHILD_EXIT_WORKDIR EX_CANTCREAT /* 73: the work dir */

struct session_child_config {
	const char *runtime_path; /* libtvm_runtime.so to dlopen */
	const char *workdir;      /* this session's work dir, created here */
	int fd;                   /* the session socket: connected, blocking;
				   * handed to rpc.ServerLoop, which closes
				   * it */
	int stderr_fd;            /* becomes fd 2; -1: keep the inherited */
	enum tvm_rpc_dialect dialect; /* what the agent's start-up probe
				       * found, or UNKNOWN; a runtime that
				       * changed since is served, with a
				       * warning */
};

_Noreturn void session_child_run(const struct session_child_config *cfg);
_Noreturn void session_child_probe(
    const char *runtime_path, int fd, int stderr_fd);
