/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the fake libtvm_runtime.so, shared by its files:
 * fake_runtime.c (objects, the global registry, the per-thread error slot,
 * the exported C API), fake_rpc.c (rpc.ServerLoop) and fake_funcs.c (the
 * functions the runtime registers itself), plus fake_ffi.c in the tvm-ffi
 * flavour.  Nothing here is exported from the .so: the library is built
 * with hidden visibility and only the TVM_C_API_EXPORT declarations of
 * tvm_c_api.h leave it, or, built with FAKE_TVM_FFI (a TVM v0.21+ runtime:
 * tvm-ffi C API, type indexes on the wire), only those of tvm_ffi_api.h.
 *
 * Objects (functions and modules) are reference counted; a handle is a
 * struct fake_obj pointer.  Function failures follow the C API: -1 with the
 * text in the calling thread's error slot (fake_error()).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tvm_c_api.h"
#include "tvm_ffi_api.h"

/* Room of the per-thread error slot; longer texts are cut. */
#define FAKE_ERR_MAX 8192

enum fake_kind {
	FAKE_FUNC = 1,
	FAKE_MODULE = 2,
};

struct fake_obj;

/*
 * tvm-ffi's object header (TVMFFIObject): every object starts with one, so
 * that tvm-ffi's TVMFFIObjectDecRef() can tell them apart by type_index.
 * Unused by the v0.14 flavour.
 */
struct fake_hdr {
	uint64_t refs; /* objects of fake_ffi.c; fake_obj has its own */
	int32_t type_index;
	uint32_t padding;
	void *deleter;
};

#ifdef FAKE_TVM_FFI
/*
 * An argument code beside the type codes: a str that a tvm-ffi callback
 * gets as a String object (11 or 65), as the runtime's own upload and
 * download pass it, where RPC passes a raw C string (8).
 */
#define FAKE_STR_OBJ 0x7fff0b
#endif

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
bool fake_error_pending(void);
void fake_error_clear(void);
const char *fake_error_message(const char *text, size_t *ret_kind_len);
int fake_grow(void *arr, size_t n, size_t *cap, size_t size);

struct fake_obj *fake_obj_check(void *h, int kind);
struct fake_obj *fake_obj_ref(struct fake_obj *o);
void fake_obj_unref(struct fake_obj *o);
int fake_func_new(TVMPackedCFunc fn, void *resource,
    TVMPackedCFuncFinalizer fin, struct fake_obj **ret_obj);
int fake_func_new_safe(TVMFFISafeCallType safe, void *self,
    void (*fin)(void *self), struct fake_obj **ret_obj);
TVMFFISafeCallType fake_func_safe(const struct fake_obj *f, void **ret_self);
int fake_module_new(void *dl, struct fake_obj **ret_obj);
void *fake_module_dl(const struct fake_obj *m);

void fake_ret_init(struct fake_ret *r);
void fake_ret_clear(struct fake_ret *r);
int fake_ret_set(struct fake_ret *r, TVMValue v, int code);
int fake_call(struct fake_obj *fn, TVMValue *args, int *codes, int n,
    struct fake_ret *ret);

int fake_register(const char *name, TVMPackedCFunc fn);
int fake_register_obj(const char *name, struct fake_obj *fn, int override);
struct fake_obj *fake_global(const char *name);

void fake_funcs_register(void);
#ifdef FAKE_TVM_FFI
int fake_ffi_call(struct fake_obj *fn, TVMValue *args, int *codes, int n,
    struct fake_ret *ret);
#endif
int fake_rpc_server_loop(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource);
