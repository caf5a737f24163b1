/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Open the board's runtime and pick its adapter (see tvm_runtime.h).
 */
#include "config.h"

#include "tvm_runtime.h"

#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include "err.h"

/* Room for the API struct tvm_runtime_resolve() builds. */
#define RUNTIME_API_MAX 256

/*
 * The symbol that tells each ABI (spec tvm-ffi-era.md §4.6).  The refusal
 * naming both must fit struct npufarm_err (160 bytes).
 */
#define RUNTIME_FFI_PROBE  "TVMFFIFunctionGetGlobal"
#define RUNTIME_V014_PROBE "TVMFuncGetGlobal"

/* The module loader of each ABI (spec §4.4). */
#define RUNTIME_FFI_LOADER  "ffi.ModuleLoadFromFile"
#define RUNTIME_V014_LOADER "runtime.module.loadfile_so"

/*
 * Fill the API struct @ret_api (@size bytes of function pointers) with
 * the @n entry points @syms from @lib, a handle from dlopen() (borrowed;
 * it stays open for good: the runtime is never dlclose()d).  All or
 * nothing: returns 0, or -ENOENT naming the first missing symbol with
 * @ret_api untouched.  Does not log.
 */
int
tvm_runtime_resolve(void *lib, const struct tvm_runtime_sym *syms, size_t n,
    void *ret_api, size_t size, struct npufarm_err *err)
{
	unsigned char api[RUNTIME_API_MAX];
	size_t i;

	_Static_assert(sizeof(void *) == sizeof(void (*)(void)),
	    "POSIX: function pointers travel through dlsym's void *");
	assert(size <= sizeof(api));
	memset(api, 0, sizeof(api));
	for (i = 0; i < n; i++) {
		void *sym;

		assert(syms[i].offset + sizeof(sym) <= size);
		(void)dlerror();
		sym = dlsym(lib, syms[i].name);
		if (sym == NULL)
			return err_set(err, -ENOENT,
			    "the runtime does not export %s", syms[i].name);
		memcpy(api + syms[i].offset, &sym, sizeof(sym));
	}
	memcpy(ret_api, api, size);
	return 0;
}

/*
 * Look up what serving needs once the adapter is bound: rpc.ServerLoop,
 * which a runtime built without RPC lacks (refused), and the module
 * loader, whose absence only fails load_module later.  Returns 0 or
 * -ENOENT / -EPROTO.  Does not log.
 */
int
tvm_runtime_find(struct tvm_runtime *rt, struct npufarm_err *err)
{
	int r;

	rt->load = rt->ops->dialect == TVM_RPC_DIALECT_FFI
		       ? RUNTIME_FFI_LOADER
		       : RUNTIME_V014_LOADER;
	r = rt->ops->get_global(rt, "rpc.ServerLoop", &rt->loop, err);
	if (r < 0)
		return r;
	if (rt->loop == NULL)
		return err_set(err, -ENOENT,
		    "no global function rpc.ServerLoop (a runtime built "
		    "without USE_RPC?)");
	return rt->ops->get_global(rt, rt->load, &rt->loader, err);
}

/*
 * dlopen() the runtime at @path with RTLD_NOW | RTLD_GLOBAL (uploaded
 * modules resolve TVM's symbols from it; spec §4.1), tell its ABI by its
 * symbols, resolve that ABI's entry points all or nothing, and look up
 * rpc.ServerLoop and the module loader.  @rt lives until the process
 * exits.  Returns 0, or -ENOENT / -EPROTO with @err saying what was
 * missing (without the path: the caller names it).  Does not log.
 */
int
tvm_runtime_open(
    const char *path, struct tvm_runtime *rt, struct npufarm_err *err)
{
	void *lib;
	int r;

	memset(rt, 0, sizeof(*rt));
	lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (lib == NULL)
		return err_set(err, -ENOENT, "dlopen: %s", dlerror());
	if (dlsym(lib, RUNTIME_FFI_PROBE) != NULL) {
		r = tvm_ffi_load(lib, &rt->api.ffi, err);
		if (r < 0)
			return r;
		tvm_ffi_bind(rt, &rt->api.ffi);
	} else if (dlsym(lib, RUNTIME_V014_PROBE) != NULL) {
		r = tvm_capi_load(lib, &rt->api.v014, err);
		if (r < 0)
			return r;
		tvm_capi_bind(rt, &rt->api.v014);
	} else {
		return err_set(err, -ENOENT,
		    "not a TVM runtime: it exports neither " RUNTIME_FFI_PROBE
		    " (tvm-ffi, TVM v0.21+, with libtvm_ffi.so beside it) "
		    "nor " RUNTIME_V014_PROBE " (TVM v0.14 .. v0.20)");
	}
	return tvm_runtime_find(rt, err);
}

/* The wire dialect the runtime's ABI implies. */
enum tvm_rpc_dialect
tvm_runtime_dialect(const struct tvm_runtime *rt)
{
	return rt->ops->dialect;
}

/* "tvm-ffi C API (TVMFFI*)" or "v0.14 C API (TVMFunc*)"; static. */
const char *
tvm_runtime_abi(const struct tvm_runtime *rt)
{
	return rt->ops->abi;
}

/* The ABI of a dialect, for people; static. */
const char *
tvm_runtime_abi_of_dialect(enum tvm_rpc_dialect d)
{
	switch (d) {
	case TVM_RPC_DIALECT_FFI:
		return "tvm-ffi C API (TVMFFI*, TVM v0.21+)";
	case TVM_RPC_DIALECT_V014:
		return "v0.14 C API (TVMFunc*, TVM v0.14 .. v0.20)";
	default:
		return "unknown C API";
	}
}

/*
 * Register @fn as the global function @name (with override, as TVM's
 * servers do), called with @arg and the str argument; with @module its
 * result is a path that the runtime's module loader loads, and the
 * client gets the Module.  @name and @arg must outlive the process.
 * Returns 0, or -ENOSPC / -EPROTO with the runtime's error.  Does not log.
 */
int
tvm_runtime_register(struct tvm_runtime *rt, const char *name,
    tvm_runtime_str_fn *fn, void *arg, bool module, struct npufarm_err *err)
{
	struct tvm_runtime_fn *f;
	int r;

	if (rt->nfns == TVM_RUNTIME_FNS_MAX)
		return err_set(err, -ENOSPC, "%s: too many functions", name);
	f = &rt->fns[rt->nfns];
	*f = (struct tvm_runtime_fn){
	    .rt = rt,
	    .name = name,
	    .fn = fn,
	    .arg = arg,
	    .module = module,
	};
	r = rt->ops->register_fn(rt, f, err);
	if (r < 0)
		return r;
	rt->nfns++;
	return 0;
}

/*
 * Run rpc.ServerLoop on the connected, blocking socket @fd, which the loop
 * closes on every path.  Returns 0 after a clean end, or -EPROTO with the
 * first line of the runtime's error in @err.  Does not log.
 */
int
tvm_runtime_serve(struct tvm_runtime *rt, int fd, struct npufarm_err *err)
{
	return rt->ops->serve(rt, fd, err);
}
