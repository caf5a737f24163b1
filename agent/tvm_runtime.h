/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The board's TVM runtime as a session child uses it, whichever C ABI it
 * has (spec tvm-ffi-era.md §4.6): tvm_runtime_open() dlopen()s it, tells
 * the ABI by its symbols and binds one of two small adapters behind one
 * interface, namely register a str -> str or str -> Module callback, call
 * rpc.ServerLoop with an int fd, and read the last error:
 *
 *   exports TVMFFIFunctionGetGlobal  tvm-ffi C API (TVM v0.21+), tvm_ffi.h;
 *                                    the session speaks type indexes
 *   else exports TVMFuncGetGlobal    v0.14 C API (TVM v0.14 .. v0.20),
 *                                    tvm_capi.h; the session speaks type
 *                                    codes
 *   neither                          refused
 *
 * Each real runtime exports one family only.  The rest of the agent needs
 * only the dialect (tvm_rpc.h) that the ABI implies.  Everything here runs
 * in a session child (or the agent's start-up probe child), never in the
 * agent: the runtime is loaded with RTLD_NOW | RTLD_GLOBAL and never
 * dlclose()d.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "tvm_capi.h"
#include "tvm_ffi.h"
#include "tvm_rpc.h"

struct npufarm_err;
struct tvm_runtime;

/* Room for the text of an error a server function raises. */
#define TVM_RUNTIME_MSG_MAX 1024
/* Functions a session can register. */
#define TVM_RUNTIME_FNS_MAX 8

/* An error for the client, from a server function. */
struct tvm_runtime_error {
	const char *kind; /* "ValueError"; static */
	char msg[TVM_RUNTIME_MSG_MAX];
};

/*
 * The ABI-independent half of a registered function: takes the str
 * argument @s (NUL-terminated, borrowed for the call) and returns 0 with
 * *ret_str a malloc()ed result (the adapter frees it), or -1 with @e
 * filled.  For a module function the result is the path to load.
 */
typedef int tvm_runtime_str_fn(
    void *arg, const char *s, char **ret_str, struct tvm_runtime_error *e);

/* A registered function: the resource the runtime calls it with. */
struct tvm_runtime_fn {
	struct tvm_runtime *rt; /* borrowed, outlives it */
	const char *name;       /* borrowed, static */
	tvm_runtime_str_fn *fn;
	void *arg;   /* borrowed, outlives it */
	bool module; /* str -> Module: load the path fn returns */
};

/* An entry point of an ABI: its name and its slot in the API struct. */
struct tvm_runtime_sym {
	const char *name;
	size_t offset; /* of the function pointer */
};

#define TVM_RUNTIME_SYM(type, name)         \
	{                                   \
#name, offsetof(type, name) \
	}

/* One ABI's adapter (tvm_capi.c, tvm_ffi.c). */
struct tvm_runtime_ops {
	const char *abi; /* for people: "tvm-ffi C API (TVMFFI*)" */
	enum tvm_rpc_dialect dialect;
	/* A new reference to global function @name, or NULL when none. */
	int (*get_global)(struct tvm_runtime *rt, const char *name,
	    void **ret_fn, struct npufarm_err *err);
	/* Register @f (which lives as long as the process) as f->name. */
	int (*register_fn)(struct tvm_runtime *rt, struct tvm_runtime_fn *f,
	    struct npufarm_err *err);
	/* rpc.ServerLoop(@fd): 0, or -EPROTO with the runtime's error. */
	int (*serve)(struct tvm_runtime *rt, int fd, struct npufarm_err *err);
};

/* A loaded runtime; lives until the process exits. */
struct tvm_runtime {
	const struct tvm_runtime_ops *ops;
	union {
		struct tvm_capi v014;
		struct tvm_ffi ffi;
	} api;
	void *loop;       /* rpc.ServerLoop; owned, never freed */
	void *loader;     /* the module loader, or NULL when absent */
	const char *load; /* its name */
	struct tvm_runtime_fn fns[TVM_RUNTIME_FNS_MAX];
	size_t nfns;
};

int tvm_runtime_resolve(void *lib, const struct tvm_runtime_sym *syms, size_t n,
    void *ret_api, size_t size, struct npufarm_err *err);
int tvm_runtime_open(
    const char *path, struct tvm_runtime *rt, struct npufarm_err *err);
int tvm_runtime_find(struct tvm_runtime *rt, struct npufarm_err *err);
enum tvm_rpc_dialect tvm_runtime_dialect(const struct tvm_runtime *rt);
const char *tvm_runtime_abi(const struct tvm_runtime *rt);
int tvm_runtime_register(struct tvm_runtime *rt, const char *name,
    tvm_runtime_str_fn *fn, void *arg, bool module, struct npufarm_err *err);
int tvm_runtime_serve(struct tvm_runtime *rt, int fd, struct npufarm_err *err);
const char *tvm_runtime_abi_of_dialect(enum tvm_rpc_dialect d);
