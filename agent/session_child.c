/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The session child's life, in the order of spec tvm-c-runtime-api.md §9:
 * fork hygiene, a fresh work dir, the runtime (RTLD_GLOBAL, never
 * dlclose()d), the server environment, then rpc.ServerLoop on fd 3.  It
 * leaves with _exit(): nothing of the agent's that fork() copied (stdio
 * buffers, atexit handlers) runs twice.
 */
#include "config.h"

#include "session_child.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child_setup.h"
#include "err.h"
#include "log.h"
#include "session_env.h"
#include "tvm_runtime.h"
#include "workdir.h"

/* Log @e, whose text comes from the runtime, escaped. */
static void
log_runtime_error(const char *what, const struct npufarm_err *e)
{
	char line[2 * NPUFARM_ERR_MSG_MAX];

	(void)log_escape(line, sizeof(line), e->msg, strlen(e->msg));
	log_warn("session %ld: %s: %s", (long)getpid(), what, line);
}

/*
 * Serve one session and exit; see session_child.h.  @cfg and the strings
 * it points to are the agent's, copied into this process by fork().  Call
 * only in a child from child_setup_fork(true): its own process group,
 * SIGPIPE ignored, every other signal at its default.
 */
_Noreturn void
session_child_run(const struct session_child_config *cfg)
{
	static struct tvm_runtime rt;  /* the runtime, for life */
	static struct session_env env; /* the callbacks' argument, for life */
	struct npufarm_err e = {0};
	int fd;

	fd = child_setup_fds(cfg->fd, cfg->stderr_fd);
	if (fd < 0) {
		log_err("session %ld: setting up fds: %s", (long)getpid(),
		    strerror(-fd));
		_exit(SESSION_CHILD_EXIT_OSERR);
	}
	/* ServerLoop fails at once on a non-blocking fd (spec §6). */
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);

	/* Created before dlopen, and entered after it, so that a relative
	 * runtime path still means what it meant to the agent. */
	if (workdir_create(cfg->workdir, env.dir, sizeof(env.dir), &e) < 0) {
		log_err("session %ld: %s", (long)getpid(), e.msg);
		_exit(SESSION_CHILD_EXIT_WORKDIR);
	}
	if (tvm_runtime_open(cfg->runtime_path, &rt, &e) < 0) {
		log_err("session %ld: %s: %s", (long)getpid(),
		    cfg->runtime_path, e.msg);
		_exit(SESSION_CHILD_EXIT_RUNTIME);
	}
	if (cfg->dialect != TVM_RPC_DIALECT_UNKNOWN &&
	    cfg->dialect != tvm_runtime_dialect(&rt))
		log_warn("session %ld: %s has the %s now, not the %s it had "
			 "when the agent started; serving it",
		    (long)getpid(), cfg->runtime_path, tvm_runtime_abi(&rt),
		    tvm_runtime_abi_of_dialect(cfg->dialect));
	if (chdir(env.dir) < 0) {
		log_err("session %ld: chdir %s: %s", (long)getpid(), env.dir,
		    strerror(errno));
		_exit(SESSION_CHILD_EXIT_WORKDIR);
	}
	if (session_env_register(&env, &rt, &e) < 0) {
		log_err("session %ld: %s: %s", (long)getpid(),
		    cfg->runtime_path, e.msg);
		_exit(SESSION_CHILD_EXIT_RUNTIME);
	}
	/* The loop has closed fd on every path (spec §6). */
	if (tvm_runtime_serve(&rt, fd, &e) < 0) {
		log_runtime_error("rpc.ServerLoop", &e);
		_exit(SESSION_CHILD_EXIT_LOOP);
	}
	_exit(SESSION_CHILD_EXIT_OK);
}

/*
 * The agent's start-up probe of its runtime, in a child of its own (the
 * agent never loads board code itself): open @runtime_path exactly as a
 * session does and write the outcome on @fd, one byte with the dialect
 * (TVM_RPC_DIALECT_UNKNOWN: refused) followed by the reason, then exit.
 * Call only in a child from child_setup_fork().
 */
_Noreturn void
session_child_probe(const char *runtime_path, int fd, int stderr_fd)
{
	static struct tvm_runtime rt;
	struct npufarm_err e = {0};
	unsigned char d;
	ssize_t k;

	fd = child_setup_fds(fd, stderr_fd);
	if (fd < 0)
		_exit(SESSION_CHILD_EXIT_OSERR);
	if (tvm_runtime_open(runtime_path, &rt, &e) < 0)
		d = TVM_RPC_DIALECT_UNKNOWN;
	else
		d = (unsigned char)tvm_runtime_dialect(&rt);
	k = write(fd, &d, 1);
	if (k == 1 && d == TVM_RPC_DIALECT_UNKNOWN)
		k = write(fd, e.msg, strlen(e.msg));
	_exit(k < 0 ? SESSION_CHILD_EXIT_OSERR : SESSION_CHILD_EXIT_OK);
}
