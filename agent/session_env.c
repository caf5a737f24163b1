/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server environment functions (see session_env.h), in the
 * ABI-independent form of tvm_runtime.h: a str in, a str out, or an error
 * with a kind ("PermissionError") and a message, which the runtime's
 * adapter hands to the client as its ABI does.  load_module is workpath
 * whose result the adapter loads with the runtime's own module loader.  A
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
#include "tvm_runtime.h"
#include "workdir.h"

#define ENV_WORKPATH    "tvm.rpc.server.workpath"
#define ENV_LOAD_MODULE "tvm.rpc.server.load_module"
#define ENV_LISTDIR     "tvm.rpc.server.listdir"

/* Fill @e; returns -1 for the callback. */
static int __attribute__((format(printf, 3, 4)))
env_fail(struct tvm_runtime_error *e, const char *kind, const char *fmt, ...)
{
	va_list ap;

	e->kind = kind;
	va_start(ap, fmt);
	(void)vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * The confined path of @name for function @fn, malloc()ed into *ret_path,
 * or -1 with @e: PermissionError for a name that leaves the work dir,
 * ValueError otherwise.
 */
static int
env_path(const struct session_env *env, const char *fn, const char *name,
    char **ret_path, struct tvm_runtime_error *e)
{
	struct npufarm_err err = {0};
	char path[PATH_MAX];
	int r;

	r = workdir_path(env->dir, name, path, sizeof(path), &err);
	if (r == -EPERM) {
		log_warn(
		    "session %ld: %s refused: %s", (long)getpid(), fn, err.msg);
		return env_fail(e, "PermissionError", "%s: %s", fn, err.msg);
	}
	if (r < 0)
		return env_fail(e, "ValueError", "%s: %s", fn, err.msg);
	*ret_path = strdup(path);
	if (*ret_path == NULL)
		return env_fail(e, "RuntimeError", "%s: out of memory", fn);
	return 0;
}

/* tvm.rpc.server.workpath: str name -> str absolute path. */
static int
env_workpath(
    void *arg, const char *name, char **ret, struct tvm_runtime_error *e)
{
	return env_path(arg, ENV_WORKPATH, name, ret, e);
}

/* tvm.rpc.server.load_module: str name -> Module (of the path). */
static int
env_load_module(
    void *arg, const char *name, char **ret, struct tvm_runtime_error *e)
{
	return env_path(arg, ENV_LOAD_MODULE, name, ret, e);
}

/*
 * tvm.rpc.server.listdir: str name -> str, every entry's full path
 * followed by ',' in readdir order, without "." and ".." (the format of
 * TVM's C++ server; spec §5).
 */
static int
env_listdir(
    void *arg, const char *name, char **ret, struct tvm_runtime_error *e)
{
	const struct session_env *env = arg;
	char *path = NULL, *list = NULL;
	const char *sep;
	struct dirent *de;
	size_t list_len = 0;
	FILE *f = NULL;
	DIR *d = NULL;
	int r = -1;

	if (env_path(env, ENV_LISTDIR, name, &path, e) < 0)
		return -1;
	d = opendir(path);
	if (d == NULL) {
		r = env_fail(e, "ValueError", "%s: %s: %s", ENV_LISTDIR, name,
		    strerror(errno));
		goto out;
	}
	f = open_memstream(&list, &list_len);
	if (f == NULL) {
		r = env_fail(
		    e, "RuntimeError", "%s: out of memory", ENV_LISTDIR);
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
		    e, "RuntimeError", "%s: out of memory", ENV_LISTDIR);
		goto out;
	}
	f = NULL;
	*ret = list;
	list = NULL;
	r = 0;
out:
	if (f != NULL)
		(void)fclose(f);
	free(list);
	if (d != NULL)
		(void)closedir(d);
	free(path);
	return r;
}

static const struct {
	const char *name;
	tvm_runtime_str_fn *fn;
	bool module;
} env_functions[] = {
    {ENV_WORKPATH, env_workpath, false},
    {ENV_LOAD_MODULE, env_load_module, true},
    {ENV_LISTDIR, env_listdir, false},
};

/*
 * Register the server environment functions into @rt with @env as their
 * argument (borrowed by the runtime until exit).  Returns 0, or -EPROTO
 * with the runtime's error text.  Does not log.
 */
int
session_env_register(
    struct session_env *env, struct tvm_runtime *rt, struct npufarm_err *err)
{
	size_t i;
	int r;

	for (i = 0; i < sizeof(env_functions) / sizeof(env_functions[0]); i++) {
		r = tvm_runtime_register(rt, env_functions[i].name,
		    env_functions[i].fn, env, env_functions[i].module, err);
		if (r < 0)
			return r;
	}
	return 0;
}
