/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server environment functions (see session_env.h).  Each callback
 * follows the runtime's error convention (spec §4): on failure it copies
 * its text into the runtime with TVMAPISetLastError() and returns -1; the
 * client gets a kException with that text and the session goes on.  A
 * refused file name is also logged (the child's stderr is the agent log),
 * since it is a client trying to leave its work dir.
 */
#include "config.h"

#include "session_env.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "workdir.h"

#define ENV_WORKPATH    "tvm.rpc.server.workpath"
#define ENV_LOAD_MODULE "tvm.rpc.server.load_module"
#define ENV_LISTDIR     "tvm.rpc.server.listdir"

/* Room for an error text handed to the runtime. */
#define ENV_MSG_MAX 1024

/* Hand a formatted error to the runtime; returns -1 for the callback. */
static int __attribute__((format(printf, 2, 3)))
env_fail(const struct session_env *env, const char *fmt, ...)
{
	char msg[ENV_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	env->api->TVMAPISetLastError(msg);
	return -1;
}

/*
 * The confined path for the callback's first argument (a str), or -1 with
 * the runtime's error set: PermissionError for a name that leaves the
 * work dir, TypeError/ValueError otherwise.
 */
static int
env_path(const struct session_env *env, const char *fn, TVMValue *args,
    int *codes, int n, char *buf, size_t len)
{
	struct npufarm_err e = {0};
	int r;

	if (n < 1 || codes[0] != kTVMStr)
		return env_fail(
		    env, "TypeError: %s takes a file name (str)", fn);
	r = workdir_path(env->dir, args[0].v_str, buf, len, &e);
	if (r == -EPERM) {
		log_warn(
		    "session %ld: %s refused: %s", (long)getpid(), fn, e.msg);
		return env_fail(env, "PermissionError: %s: %s", fn, e.msg);
	}
	if (r < 0)
		return env_fail(env, "ValueError: %s: %s", fn, e.msg);
	return 0;
}

/* tvm.rpc.server.workpath: str name -> str absolute path. */
static int
env_workpath(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	const struct session_env *env = resource;
	char path[PATH_MAX];
	TVMValue v;
	int code = kTVMStr;

	if (env_path(env, ENV_WORKPATH, args, codes, n, path, sizeof(path)) < 0)
		return -1;
	v.v_str = path; /* copied by the runtime */
	return env->api->TVMCFuncSetReturn(ret, &v, &code, 1) == 0 ? 0 : -1;
}

/*
 * tvm.rpc.server.load_module: str name -> Module.  loadfile_so hands us
 * one owned reference; TVMCFuncSetReturn() adds the client's own, so ours
 * is dropped on every path (spec §3: skipping it keeps the .so mapped).
 */
static int
env_load_module(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	const struct session_env *env = resource;
	const struct tvm_capi *api = env->api;
	char path[PATH_MAX], msg[ENV_MSG_MAX];
	const char *last;
	TVMValue a, m;
	int acode = kTVMStr, mcode = kTVMNullptr, r;

	if (env_path(env, ENV_LOAD_MODULE, args, codes, n, path, sizeof(path)) <
	    0)
		return -1;
	if (env->loadso == NULL)
		return env_fail(env, "RuntimeError: this runtime has no "
				     "runtime.module.loadfile_so");
	a.v_str = path;
	if (api->TVMFuncCall(env->loadso, &a, &acode, 1, &m, &mcode) != 0) {
		/* The next failing call reuses the error's storage: copy the
		 * text before handing it back (spec §3). */
		last = api->TVMGetLastError();
		(void)snprintf(msg, sizeof(msg), "%s",
		    last != NULL ? last : "loading the module failed");
		api->TVMAPISetLastError(msg);
		return -1;
	}
	if (mcode != kTVMModuleHandle)
		return env_fail(env,
		    "RuntimeError: runtime.module.loadfile_so returned type "
		    "code %d, not a Module",
		    mcode);
	r = api->TVMCFuncSetReturn(ret, &m, &mcode, 1);
	(void)api->TVMModFree(m.v_handle);
	return r == 0 ? 0 : -1;
}

/*
 * tvm.rpc.server.listdir: str name -> str, every entry's full path
 * followed by ',' in readdir order, without "." and ".." (the format of
 * TVM's C++ server; spec §5).
 */
static int
env_listdir(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	const struct session_env *env = resource;
	char path[PATH_MAX];
	const char *sep;
	struct dirent *de;
	char *list = NULL;
	size_t list_len = 0;
	FILE *f = NULL;
	DIR *d = NULL;
	TVMValue v;
	int code = kTVMStr, r = -1;

	if (env_path(env, ENV_LISTDIR, args, codes, n, path, sizeof(path)) < 0)
		return -1;
	d = opendir(path);
	if (d == NULL) {
		r = env_fail(env, "ValueError: %s: %s: %s", ENV_LISTDIR,
		    args[0].v_str, strerror(errno));
		goto out;
	}
	f = open_memstream(&list, &list_len);
	if (f == NULL) {
		r = env_fail(
		    env, "RuntimeError: %s: out of memory", ENV_LISTDIR);
		goto out;
	}
	sep = path[strlen(path) - 1] == '/' ? "" : "/";
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		(void)fprintf(f, "%s%s%s,", path, sep, de->d_name);
	}
	if (fclose(f) != 0) {
		f = NULL;
		r = env_fail(
		    env, "RuntimeError: %s: out of memory", ENV_LISTDIR);
		goto out;
	}
	f = NULL;
	v.v_str = list; /* copied by the runtime */
	r = env->api->TVMCFuncSetReturn(ret, &v, &code, 1) == 0 ? 0 : -1;
out:
	if (f != NULL)
		(void)fclose(f);
	free(list);
	if (d != NULL)
		(void)closedir(d);
	return r;
}

static const struct {
	const char *name;
	TVMPackedCFunc fn;
} env_functions[] = {
    {ENV_WORKPATH, env_workpath},
    {ENV_LOAD_MODULE, env_load_module},
    {ENV_LISTDIR, env_listdir},
};

/* Copy the runtime's last error into @err, prefixed by @what. */
static int
env_api_error(
    const struct tvm_capi *api, const char *what, struct npufarm_err *err)
{
	const char *last = api->TVMGetLastError();
	size_t n;

	n = last != NULL ? strcspn(last, "\n") : 0; /* first line: the type */
	return err_set(
	    err, -EPROTO, "%s: %.*s", what, (int)n, last != NULL ? last : "");
}

/*
 * Register the server environment functions with @env as their resource
 * (borrowed by the runtime until exit: no finalizer, since registered
 * functions are never released) and look up runtime.module.loadfile_so
 * for load_module.  Ownership per spec §3: each handle from
 * TVMFuncCreateFromCFunc is ours and is freed once the registry holds its
 * own reference.  Names are registered with override, as a fresh runtime
 * has none of them.  Returns 0, or -EPROTO with the runtime's error text.
 * Does not log.
 */
int
session_env_register(struct session_env *env, struct npufarm_err *err)
{
	const struct tvm_capi *api = env->api;
	TVMFunctionHandle h;
	size_t i;
	int r;

	for (i = 0; i < sizeof(env_functions) / sizeof(env_functions[0]); i++) {
		h = NULL;
		if (api->TVMFuncCreateFromCFunc(
			env_functions[i].fn, env, NULL, &h) != 0)
			return env_api_error(api, env_functions[i].name, err);
		r = api->TVMFuncRegisterGlobal(env_functions[i].name, h, 1);
		if (r != 0)
			r = env_api_error(api, env_functions[i].name, err);
		(void)api->TVMFuncFree(h);
		if (r < 0)
			return r;
	}
	env->loadso = NULL;
	if (api->TVMFuncGetGlobal("runtime.module.loadfile_so", &env->loadso) !=
	    0)
		return env_api_error(api, "runtime.module.loadfile_so", err);
	return 0;
}
