/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tvm-ffi C API: resolved with dlsym(), all or nothing, and the
 * adapter behind tvm_runtime.h (spec tvm-ffi-era.md §4.3).  Ownership:
 * TVMFFIFunctionGetGlobal and TVMFFIFunctionCreate give new references;
 * TVMFFIFunctionSetGlobal takes its own; a callback's arguments are
 * borrowed and its result must be owned (strings through
 * TVMFFIStringFromByteArray, never a raw C string).  Errors: a failing
 * callback raises one with TVMFFIErrorSetRaisedFromCStr(kind, message), or
 * leaves a nested call's error raised, and returns -1; the client gets the
 * message (tvm-ffi's what() carries no kind) and the session goes on.
 */
#include "config.h"

#include "tvm_ffi.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tvm_runtime.h"

/* Every entry point a session child calls. */
static const struct tvm_runtime_sym ffi_entries[] = {
    TVM_RUNTIME_SYM(struct tvm_ffi, TVMFFIFunctionGetGlobal),
    TVM_RUNTIME_SYM(struct tvm_ffi, TVMFFIFunctionCall),
    TVM_RUNTIME_SYM(struct tvm_ffi, TVMFFIFunctionCreate),
    TVM_RUNTIME_SYM(struct tvm_ffi, TVMFFIFunctionSetGlobal),
    TVM_RUNTIME_SYM(struct tvm_ffi, TVMFFIErrorMoveFromRaised),
    TVM_RUNTIME_SYM(struct tvm_ffi, TVMFFIErrorSetRaisedFromCStr),
    TVM_RUNTIME_SYM(struct tvm_ffi, TVMFFIStringFromByteArray),
    TVM_RUNTIME_SYM(struct tvm_ffi, TVMFFIObjectDecRef),
};

/*
 * Fill @ret_api from @lib, a handle from dlopen() (borrowed, never
 * closed).  Returns 0, or -ENOENT naming the first missing symbol;
 * @ret_api is untouched on failure.  Does not log.
 */
int
tvm_ffi_load(void *lib, struct tvm_ffi *ret_api, struct npufarm_err *err)
{
	return tvm_runtime_resolve(lib, ffi_entries,
	    sizeof(ffi_entries) / sizeof(ffi_entries[0]), ret_api,
	    sizeof(*ret_api), err);
}

/* The cell of object @obj (after its 24-byte header). */
static const void *
ffi_cell(const void *obj)
{
	return (const char *)obj + sizeof(TVMFFIObject);
}

/*
 * Move the raised error out of the runtime into @err ("what: Kind: first
 * line of the message"), clearing it.  Returns -EPROTO.
 */
static int
ffi_error(const struct tvm_ffi *api, const char *what, struct npufarm_err *err)
{
	const TVMFFIErrorCell *cell;
	TVMFFIObjectHandle e = NULL;
	size_t n;
	int r;

	api->TVMFFIErrorMoveFromRaised(&e);
	if (e == NULL)
		return err_set(
		    err, -EPROTO, "%s: failed without raising an error", what);
	cell = ffi_cell(e);
	n = cell->message.size;
	if (cell->message.data == NULL)
		n = 0;
	else if (memchr(cell->message.data, '\n', n) != NULL)
		n = (size_t)((const char *)memchr(cell->message.data, '\n', n) -
			     cell->message.data);
	r = err_set(err, -EPROTO, "%s: %.*s: %.*s", what, (int)cell->kind.size,
	    cell->kind.data ? cell->kind.data : "", (int)n,
	    cell->message.data ? cell->message.data : "");
	(void)api->TVMFFIObjectDecRef(e);
	return r;
}

/* Raise kind @kind with a formatted message; returns -1. */
static int __attribute__((format(printf, 3, 4)))
ffi_raise(const struct tvm_ffi *api, const char *kind, const char *fmt, ...)
{
	char msg[TVM_RUNTIME_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api->TVMFFIErrorSetRaisedFromCStr(kind, msg);
	return -1;
}

/*
 * The bytes of a str argument, which arrives as a raw C string (8: what
 * RPC passes), a small string (11) or a String object (65: what the
 * runtime's own upload and download pass).  Borrowed from @a.
 */
static int
ffi_str_arg(const TVMFFIAny *a, const char **ret_s, size_t *ret_len)
{
	const TVMFFIByteArray *b;

	switch (a->type_index) {
	case kTVMFFIRawStr:
		if (a->v_c_str == NULL)
			return -1;
		*ret_s = a->v_c_str;
		*ret_len = strlen(a->v_c_str);
		return 0;
	case kTVMFFISmallStr:
		if (a->small_str_len > sizeof(a->v_bytes))
			return -1;
		*ret_s = a->v_bytes;
		*ret_len = a->small_str_len;
		return 0;
	case kTVMFFIStr:
		if (a->v_ptr == NULL)
			return -1;
		b = ffi_cell(a->v_ptr);
		*ret_s = b->data;
		*ret_len = b->size;
		return b->data != NULL || b->size == 0 ? 0 : -1;
	default:
		return -1;
	}
}

/*
 * Load the module at @path with ffi.ModuleLoadFromFile into @result.  Its
 * Module reference moves to the caller as is; a loader error stays raised
 * and reaches the client.
 */
static int
ffi_load_module(struct tvm_runtime *rt, const char *path, TVMFFIAny *result)
{
	const struct tvm_ffi *api = &rt->api.ffi;
	TVMFFIAny a = {.type_index = kTVMFFIRawStr, .v_c_str = path};
	TVMFFIAny m = {.type_index = kTVMFFINone};

	if (rt->loader == NULL)
		return ffi_raise(
		    api, "RuntimeError", "this runtime has no %s", rt->load);
	if (api->TVMFFIFunctionCall(rt->loader, &a, 1, &m) != 0)
		return -1;
	if (m.type_index != kTVMFFIModule) {
		if (m.type_index >= kTVMFFIStaticObjectBegin)
			(void)api->TVMFFIObjectDecRef(m.v_ptr);
		return ffi_raise(api, "RuntimeError",
		    "%s returned type index %d, not a Module", rt->load,
		    (int)m.type_index);
	}
	*result = m;
	return 0;
}

/* Every registered function: @self is its struct tvm_runtime_fn. */
static int
ffi_callback(void *self, const TVMFFIAny *args, int32_t n, TVMFFIAny *result)
{
	const struct tvm_runtime_fn *f = self;
	const struct tvm_ffi *api = &f->rt->api.ffi;
	struct tvm_runtime_error e = {.kind = "RuntimeError"};
	TVMFFIByteArray b;
	char *in, *out = NULL;
	const char *s;
	size_t len;
	int r;

	if (n < 1 || ffi_str_arg(&args[0], &s, &len) < 0)
		return ffi_raise(
		    api, "TypeError", "%s takes a file name (str)", f->name);
	if (memchr(s, '\0', len) != NULL)
		return ffi_raise(api, "ValueError",
		    "%s: a file name with a NUL byte", f->name);
	in = strndup(s, len);
	if (in == NULL)
		return ffi_raise(api, "RuntimeError", "out of memory");
	r = f->fn(f->arg, in, &out, &e);
	free(in);
	if (r < 0)
		return ffi_raise(api, e.kind, "%s", e.msg);
	if (f->module) {
		r = ffi_load_module(f->rt, out, result);
	} else {
		b.data = out;
		b.size = strlen(out);
		r = api->TVMFFIStringFromByteArray(&b, result) == 0 ? 0 : -1;
	}
	free(out);
	return r;
}

static int
ffi_get_global(struct tvm_runtime *rt, const char *name, void **ret_fn,
    struct npufarm_err *err)
{
	TVMFFIByteArray b = {name, strlen(name)};
	TVMFFIObjectHandle h = NULL;

	if (rt->api.ffi.TVMFFIFunctionGetGlobal(&b, &h) != 0)
		return ffi_error(&rt->api.ffi, name, err);
	*ret_fn = h;
	return 0;
}

/*
 * Registered for life, without a deleter: the registry takes its own
 * reference (spec §4.3), so ours is dropped once it holds it.
 */
static int
ffi_register(
    struct tvm_runtime *rt, struct tvm_runtime_fn *f, struct npufarm_err *err)
{
	const struct tvm_ffi *api = &rt->api.ffi;
	TVMFFIByteArray b = {f->name, strlen(f->name)};
	TVMFFIObjectHandle h = NULL;
	int r = 0;

	if (api->TVMFFIFunctionCreate(f, ffi_callback, NULL, &h) != 0)
		return ffi_error(api, f->name, err);
	if (api->TVMFFIFunctionSetGlobal(&b, h, 1) != 0)
		r = ffi_error(api, f->name, err);
	(void)api->TVMFFIObjectDecRef(h);
	return r;
}

static int
ffi_serve(struct tvm_runtime *rt, int fd, struct npufarm_err *err)
{
	const struct tvm_ffi *api = &rt->api.ffi;
	TVMFFIAny arg = {.type_index = kTVMFFIInt, .v_int64 = fd};
	TVMFFIAny res = {.type_index = kTVMFFINone};

	if (api->TVMFFIFunctionCall(rt->loop, &arg, 1, &res) != 0)
		return ffi_error(api, "rpc.ServerLoop", err);
	if (res.type_index >= kTVMFFIStaticObjectBegin)
		(void)api->TVMFFIObjectDecRef(res.v_ptr);
	return 0;
}

static const struct tvm_runtime_ops ffi_ops = {
    .abi = "tvm-ffi C API (TVMFFI*)",
    .dialect = TVM_RPC_DIALECT_FFI,
    .get_global = ffi_get_global,
    .register_fn = ffi_register,
    .serve = ffi_serve,
};

/*
 * Make @rt use the tvm-ffi adapter over @api (copied into @rt unless it is
 * @rt's own).  Global functions are still to be found
 * (tvm_runtime_find()).
 */
void
tvm_ffi_bind(struct tvm_runtime *rt, const struct tvm_ffi *api)
{
	if (api != &rt->api.ffi)
		rt->api.ffi = *api;
	rt->ops = &ffi_ops;
}
