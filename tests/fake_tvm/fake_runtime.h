/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the fake libtvm_runtime.so, shared by its three files:
 * fake_runtime.c (objects, the global registry, the per-thread error slot,
 * the exported C API), fake_rpc.c (rpc.ServerLoop) and fake_funcs.c (the
 * functions the runtime registers itself).  Nothing here is exported from
 * the .so: the library is built with hidden visibility and only the
 * TVM_C_API_EXPORT declarations of tvm_c_api.h leave it.
 *
 * Objects (functions and modules) are reference counted; a handle is a
 * struct fake_obj pointer.  Function failures follow the C API: -1 with the
 * text in the calling thread's error slot (fake_error()).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "tvm_c_api.h"

/* Room of the per-thread error slot; longer texts are cut. */
#define FAKE_ERR_MAX 8192

enum fake_kind {
	FAKE_FUNC = 1,
	FAKE_MODULE = 2,
};

struct fake_obj;

/*
 * A return value being built by a callback: what TVMRetValueHandle points
 * to.  Strings and bytes are owned copies in buf; a module or function
 * handle in v holds one reference.  Valid for TVMCFuncSetReturn() only
 * while magic is set, i.e. during the call.
 */
struct fake_ret {
	unsigned magic;
	TVMValue v;
	int code;           /* a type code; kTVMNullptr when nothing was set */
	char *buf;          /* owned: kTVMStr text (NUL-terminated) or bytes */
	TVMByteArray bytes; /* kTVMBytes: {buf, size} */
};

int fake_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *fake_error_text(void);
int fake_grow(void *arr, size_t n, size_t *cap, size_t size);

struct fake_obj *fake_obj_check(void *h, int kind);
struct fake_obj *fake_obj_ref(struct fake_obj *o);
void fake_obj_unref(struct fake_obj *o);
int fake_func_new(TVMPackedCFunc fn, void *resource,
    TVMPackedCFuncFinalizer fin, struct fake_obj **ret_obj);
int fake_module_new(void *dl, struct fake_obj **ret_obj);
void *fake_module_dl(const struct fake_obj *m);

void fake_ret_init(struct fake_ret *r);
void fake_ret_clear(struct fake_ret *r);
int fake_call(struct fake_obj *fn, TVMValue *args, int *codes, int n,
    struct fake_ret *ret);

int fake_register(const char *name, TVMPackedCFunc fn);
struct fake_obj *fake_global(const char *name);

void fake_funcs_register(void);
int fake_rpc_server_loop(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource);
