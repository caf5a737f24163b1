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

#include <dlfcn.h>
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
#include "tvm_capi.h"
#include "workdir.h"

/* Log the first line of the runtime's last error, which names its type. */
static void
log_runtime_error(const struct tvm_capi *api, const char *what)
{
	const char *last = api->TVMGetLastError();
	char line[256];
	size_t n;

	if (last == NULL)
		last = "(no error text)";
	n = strcspn(last, "\n");
	(void)log_escape(line, sizeof(line), last, n);
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
	static struct tvm_capi api;
	static struct session_env env; /* the callbacks' resource, for life */
	struct npufarm_err e = {0};
	TVMFunctionHandle loop = NULL;
	TVMValue arg, rv;
	int code = kDLInt, rcode, fd, rc;
	void *lib;

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
	lib = dlopen(cfg->runtime_path, RTLD_NOW | RTLD_GLOBAL);
	if (lib == NULL) {
		log_err("session %ld: dlopen: %s", (long)getpid(), dlerror());
		_exit(SESSION_CHILD_EXIT_RUNTIME);
	}
	if (chdir(env.dir) < 0) {
		log_err("session %ld: chdir %s: %s", (long)getpid(), env.dir,
		    strerror(errno));
		_exit(SESSION_CHILD_EXIT_WORKDIR);
	}
	env.api = &api;
	if (tvm_capi_load(lib, &api, &e) < 0 ||
	    session_env_register(&env, &e) < 0) {
		log_err("session %ld: %s: %s", (long)getpid(),
		    cfg->runtime_path, e.msg);
		_exit(SESSION_CHILD_EXIT_RUNTIME);
	}
	if (api.TVMFuncGetGlobal("rpc.ServerLoop", &loop) != 0 ||
	    loop == NULL) {
		log_err("session %ld: %s has no rpc.ServerLoop", (long)getpid(),
		    cfg->runtime_path);
		_exit(SESSION_CHILD_EXIT_RUNTIME);
	}

	arg.v_int64 = fd; /* an integer selects the socket variant */
	rc = api.TVMFuncCall(loop, &arg, &code, 1, &rv, &rcode);
	/* The loop has closed fd on every path (spec §6). */
	if (rc != 0)
		log_runtime_error(&api, "rpc.ServerLoop");
	_exit(rc == 0 ? SESSION_CHILD_EXIT_OK : SESSION_CHILD_EXIT_LOOP);
}
