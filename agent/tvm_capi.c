/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The v0.14 C API: resolved with dlsym(), all or nothing (a runtime that
 * lacks any entry point the session child calls is refused before anything
 * is registered, with the missing name in the message), and the adapter
 * behind tvm_runtime.h.  Errors follow the API's convention (spec §3-§4):
 * a failing callback copies "Kind: message" into the runtime with
 * TVMAPISetLastError() and returns -1; the client gets that text in a
 * kException and the session goes on.
 */
#include "config.h"

#include "tvm_capi.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tvm_runtime.h"

/* Every entry point a session child calls. */
static const struct tvm_runtime_sym capi_entries[] = {
    TVM_RUNTIME_SYM(struct tvm_capi, TVMFuncGetGlobal),
    TVM_RUNTIME_SYM(struct tvm_capi, TVMFuncCall),
    TVM_RUNTIME_SYM(struct tvm_capi, TVMFuncFree),
    TVM_RUNTIME_SYM(struct tvm_capi, TVMFuncCreateFromCFunc),
    TVM_RUNTIME_SYM(struct tvm_capi, TVMFuncRegisterGlobal),
    TVM_RUNTIME_SYM(struct tvm_capi, TVMCFuncSetReturn),
    TVM_RUNTIME_SYM(struct tvm_capi, TVMGetLastError),
    TVM_RUNTIME_SYM(struct tvm_capi, TVMAPISetLastError),
    TVM_RUNTIME_SYM(struct tvm_capi, TVMModFree),
};

/*
 * Fill @ret_api from @lib, a handle from dlopen() (borrowed; it must stay
 * open as long as @ret_api is used, i.e. forever: the runtime is never
 * dlclose()d).  Returns 0, or -ENOENT naming the first missing symbol;
 * @ret_api is untouched on failure.  Does not log.
 */
int
tvm_capi_load(void *lib, struct tvm_capi *ret_api, struct npufarm_err *err)
{
	return tvm_runtime_resolve(lib, capi_entries,
	    sizeof(capi_entries) / sizeof(capi_entries[0]), ret_api,
	    sizeof(*ret_api), err);
}

/* Copy the first line of the runtime's last error into @err. */
static int
capi_error(
    const struct tvm_capi *api, const char *what, struct npufarm_err *err)
{
	const char *last = api->TVMGetLastError();
	size_t n;

	if (last == NULL)
		last = "(no error text)";
	n = strcspn(last, "\n"); /* the first line names its type */
	return err_set(err, -EPROTO, "%s: %.*s", what, (int)n, last);
}

/* Hand @e to the runtime as "Kind: message"; returns -1. */
static int
capi_fail(const struct tvm_capi *api, const struct tvm_runtime_error *e)
{
	char msg[TVM_RUNTIME_MSG_MAX + 64];

	(void)snprintf(msg, sizeof(msg), "%s: %s", e->kind, e->msg);
	api->TVMAPISetLastError(msg);
	return -1;
}

/*
 * Load the module at @path with the runtime's loader and make it the
 * callback's result.  loadfile_so hands us one owned reference;
 * TVMCFuncSetReturn() adds the client's own, so ours is dropped on every
 * path (spec §3: skipping it keeps the .so mapped).
 */
static int
capi_load_module(
    struct tvm_runtime *rt, const char *path, TVMRetValueHandle ret)
{
	const struct tvm_capi *api = &rt->api.v014;
	struct tvm_runtime_error e = {.kind = "RuntimeError"};
	const char *last;
	TVMValue a, m;
	int acode = kTVMStr, mcode = kTVMNullptr, r;

	if (rt->loader == NULL) {
		(void)snprintf(
		    e.msg, sizeof(e.msg), "this runtime has no %s", rt->load);
		return capi_fail(api, &e);
	}
	a.v_str = path;
	if (api->TVMFuncCall(rt->loader, &a, &acode, 1, &m, &mcode) != 0) {
		/* The next failing call reuses the error's storage: copy the
		 * text before handing it back (spec §3). */
		last = api->TVMGetLastError();
		(void)snprintf(e.msg, sizeof(e.msg), "%s",
		    last != NULL ? last : "loading the module failed");
		api->TVMAPISetLastError(e.msg);
		return -1;
	}
	if (mcode != kTVMModuleHandle) {
		(void)snprintf(e.msg, sizeof(e.msg),
		    "%s returned type code %d, not a Module", rt->load, mcode);
		return capi_fail(api, &e);
	}
	r = api->TVMCFuncSetReturn(ret, &m, &mcode, 1);
	(void)api->TVMModFree(m.v_handle);
	return r == 0 ? 0 : -1;
}

/* Every registered function: @resource is its struct tvm_runtime_fn. */
static int
capi_callback(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	const struct tvm_runtime_fn *f = resource;
	const struct tvm_capi *api = &f->rt->api.v014;
	struct tvm_runtime_error e = {.kind = "TypeError"};
	char *out = NULL;
	TVMValue v;
	int code = kTVMStr, r;

	if (n < 1 || codes[0] != kTVMStr) {
		(void)snprintf(e.msg, sizeof(e.msg),
		    "%s takes a file name (str)", f->name);
		return capi_fail(api, &e);
	}
	if (f->fn(f->arg, args[0].v_str, &out, &e) < 0)
		return capi_fail(api, &e);
	if (f->module) {
		r = capi_load_module(f->rt, out, ret);
	} else {
		v.v_str = out; /* copied by the runtime */
		r = api->TVMCFuncSetReturn(ret, &v, &code, 1) == 0 ? 0 : -1;
	}
	free(out);
	return r;
}

static int
capi_get_global(struct tvm_runtime *rt, const char *name, void **ret_fn,
    struct npufarm_err *err)
{
	TVMFunctionHandle h = NULL;

	if (rt->api.v014.TVMFuncGetGlobal(name, &h) != 0)
		return capi_error(&rt->api.v014, name, err);
	*ret_fn = h;
	return 0;
}

/*
 * Ownership per spec §3: the handle from TVMFuncCreateFromCFunc is ours
 * and is freed once the registry holds its own reference.  No finalizer:
 * registered functions are never released.
 */
static int
capi_register(
    struct tvm_runtime *rt, struct tvm_runtime_fn *f, struct npufarm_err *err)
{
	const struct tvm_capi *api = &rt->api.v014;
	TVMFunctionHandle h = NULL;
	int r = 0;

	if (api->TVMFuncCreateFromCFunc(capi_callback, f, NULL, &h) != 0)
		return capi_error(api, f->name, err);
	if (api->TVMFuncRegisterGlobal(f->name, h, 1) != 0)
		r = capi_error(api, f->name, err);
	(void)api->TVMFuncFree(h);
	return r;
}

static int
capi_serve(struct tvm_runtime *rt, int fd, struct npufarm_err *err)
{
	const struct tvm_capi *api = &rt->api.v014;
	TVMValue arg, rv;
	int code = kDLInt, rcode;

	arg.v_int64 = fd; /* an integer selects the socket variant */
	if (api->TVMFuncCall(rt->loop, &arg, &code, 1, &rv, &rcode) != 0)
		return capi_error(api, "rpc.ServerLoop", err);
	return 0;
}

static const struct tvm_runtime_ops capi_ops = {
    .abi = "v0.14 C API (TVMFunc*)",
    .dialect = TVM_RPC_DIALECT_V014,
    .get_global = capi_get_global,
    .register_fn = capi_register,
    .serve = capi_serve,
};

/*
 * Make @rt use the v0.14 adapter over @api (copied into @rt unless it is
 * @rt's own).  Global functions are still to be found
 * (tvm_runtime_find()).
 */
void
tvm_capi_bind(struct tvm_runtime *rt, const struct tvm_capi *api)
{
	if (api != &rt->api.v014)
		rt->api.v014 = *api;
	rt->ops = &capi_ops;
}
