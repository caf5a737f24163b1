/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fake libtvm_runtime.so for testing the agent's session child, written
 * from spec tvm-c-runtime-api.md: the C API of §2 with the ownership rules
 * of §3, reference-counted function and module objects, a process-wide
 * registry of global functions, and the per-thread error slot.  The
 * registry is global state on purpose: it is what TVM's runtime has, and
 * each session child dlopen()s a fresh copy (spec §1.4).
 *
 * Misuse that the real runtime turns into memory corruption (a stale
 * handle, a return slot used after its callback) fails here with -1 and a
 * message instead, so that a test sees the agent's mistake.
 */
#include "config.h"

#include "fake_runtime.h"

#include <ctype.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_OBJ_MAGIC 0x4f424a46u /* a live struct fake_obj */
#define FAKE_RET_MAGIC 0x52455446u /* a struct fake_ret inside its call */

struct fake_obj {
	struct fake_hdr hdr; /* tvm-ffi: type_index Function or Module */
	unsigned magic;      /* FAKE_OBJ_MAGIC while alive */
	enum fake_kind kind;
	atomic_int refs;
	TVMPackedCFunc fn;           /* FAKE_FUNC */
	void *resource;              /* FAKE_FUNC: passed to fn and fin */
	TVMPackedCFuncFinalizer fin; /* FAKE_FUNC: may be NULL */
	void *dl;                    /* FAKE_MODULE: owned dlopen() handle */
	TVMFFISafeCallType safe;     /* FAKE_FUNC of tvm-ffi: instead of fn */
	void *self;                  /* passed to safe and safe_fin */
	void (*safe_fin)(void *self);
};

/* One registered name; entries are never removed. */
struct fake_entry {
	char *name;          /* owned */
	struct fake_obj *fn; /* one reference, held by the registry */
};

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_entry *fake_entries; /* under fake_lock */
static size_t fake_nentries, fake_cap_entries;
/* Functions replaced with override=1: kept, never released (spec §3). */
static struct fake_obj **fake_retired;
static size_t fake_nretired, fake_cap_retired;

/* The calling thread's error slot (spec §3: per thread, NULL at first). */
static _Thread_local char fake_err[FAKE_ERR_MAX];
static _Thread_local int fake_err_isset;
/* TVMFuncCall() results valid until the next call on the thread. */
static _Thread_local char *fake_tls_buf;
static _Thread_local TVMByteArray fake_tls_bytes;
static _Thread_local const char **fake_tls_names;

/*
 * Record printf-style text in the calling thread's error slot, cut to
 * FAKE_ERR_MAX.  The arguments may point into the slot itself.  Returns -1,
 * the C API's failure value, so a caller can `return fake_error(...)`.
 */
int
fake_error(const char *fmt, ...)
{
	char tmp[FAKE_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(fake_err, tmp, strlen(tmp) + 1);
	fake_err_isset = 1;
	return -1;
}

/*
 * The calling thread's error text, "" when none was ever set.  Borrowed:
 * valid until the next error is recorded on the thread.
 */
const char *
fake_error_text(void)
{
	return fake_err_isset ? fake_err : "";
}

/* Whether an error is recorded (tvm-ffi: raised and not yet moved out). */
bool
fake_error_pending(void)
{
	return fake_err_isset != 0;
}

/* Forget the recorded error (tvm-ffi's TVMFFIErrorMoveFromRaised). */
void
fake_error_clear(void)
{
	fake_err_isset = 0;
	fake_err[0] = '\0';
}

/*
 * The message of a typed error text "Kind: message": a pointer past
 * "Kind: ", with the kind's length in *ret_kind_len; the text itself (and
 * 0) when it has no kind.  What tvm-ffi keeps apart, and what its what()
 * and so a v0.2x kException carry: the message alone (tvm-ffi-era.md
 * §2.5).
 */
const char *
fake_error_message(const char *text, size_t *ret_kind_len)
{
	size_t i = 0;

	while (isalnum((unsigned char)text[i]) || text[i] == '_')
		i++;
	if (i == 0 || isdigit((unsigned char)text[0]) || text[i] != ':' ||
	    text[i + 1] != ' ') {
		*ret_kind_len = 0;
		return text;
	}
	*ret_kind_len = i;
	return text + i + 2;
}

/*
 * After a callback failed: give the text a type as TVM does (spec §4).  A
 * text that starts with an identifier followed by ':' keeps it; any other
 * gets "TVMError: " in front.
 */
static void
fake_error_normalize(void)
{
	size_t i = 0;

	if (fake_err_isset) {
		while (
		    isalnum((unsigned char)fake_err[i]) || fake_err[i] == '_')
			i++;
		if (i > 0 && !isdigit((unsigned char)fake_err[0]) &&
		    fake_err[i] == ':')
			return;
	}
	(void)fake_error("TVMError: %s", fake_error_text());
}

/*
 * @h as an object of @kind (0: any kind), or NULL when it is not a live
 * object of this runtime.  Borrowed; no reference is taken.
 */
struct fake_obj *
fake_obj_check(void *h, int kind)
{
	struct fake_obj *o = h;

	if (o == NULL || o->magic != FAKE_OBJ_MAGIC)
		return NULL;
	if (kind != 0 && (int)o->kind != kind)
		return NULL;
	return o;
}

/* Take one more reference to @o; returns @o. */
struct fake_obj *
fake_obj_ref(struct fake_obj *o)
{
	atomic_fetch_add(&o->refs, 1);
	return o;
}

/*
 * Drop one reference to @o (NULL is ignored).  The last one runs a
 * function's finalizer or dlclose()s a module, then frees the object.
 */
void
fake_obj_unref(struct fake_obj *o)
{
	if (o == NULL || atomic_fetch_sub(&o->refs, 1) != 1)
		return;
	if (o->kind == FAKE_FUNC && o->fin != NULL)
		o->fin(o->resource);
	if (o->kind == FAKE_FUNC && o->safe_fin != NULL)
		o->safe_fin(o->self);
	if (o->kind == FAKE_MODULE && o->dl != NULL)
		(void)dlclose(o->dl);
	o->magic = 0;
	free(o);
}

/* A new object of @kind with one reference, or NULL (error set). */
static struct fake_obj *
fake_obj_new(enum fake_kind kind)
{
	struct fake_obj *o;

	o = calloc(1, sizeof(*o));
	if (o == NULL) {
		fake_error("out of memory");
		return NULL;
	}
	o->magic = FAKE_OBJ_MAGIC;
	o->kind = kind;
	o->hdr.type_index = kind == FAKE_FUNC ? kTVMFFIFunction : kTVMFFIModule;
	atomic_init(&o->refs, 1);
	return o;
}

/*
 * A new function object calling @fn with @resource, whose last reference
 * runs @fin(@resource) when @fin is not NULL.  On success *ret_obj holds
 * one reference, owned by the caller.  Returns 0 or -1 (error set).
 */
int
fake_func_new(TVMPackedCFunc fn, void *resource, TVMPackedCFuncFinalizer fin,
    struct fake_obj **ret_obj)
{
	struct fake_obj *o;

	if (fn == NULL)
		return fake_error("TVMFuncCreateFromCFunc: NULL function");
	o = fake_obj_new(FAKE_FUNC);
	if (o == NULL)
		return -1;
	o->fn = fn;
	o->resource = resource;
	o->fin = fin;
	*ret_obj = o;
	return 0;
}

/*
 * A new function object of the tvm-ffi kind: calls @safe with @self, and
 * its last reference runs @fin(@self) when @fin is not NULL.  Returns 0 or
 * -1 (error set), as fake_func_new().
 */
int
fake_func_new_safe(TVMFFISafeCallType safe, void *self, void (*fin)(void *self),
    struct fake_obj **ret_obj)
{
	struct fake_obj *o;

	if (safe == NULL)
		return fake_error("TVMFFIFunctionCreate: NULL function");
	o = fake_obj_new(FAKE_FUNC);
	if (o == NULL)
		return -1;
	o->safe = safe;
	o->self = self;
	o->safe_fin = fin;
	*ret_obj = o;
	return 0;
}

/* The safe call of a tvm-ffi function and its self; NULL for others. */
TVMFFISafeCallType
fake_func_safe(const struct fake_obj *f, void **ret_self)
{
	*ret_self = f->self;
	return f->safe;
}

/*
 * A new module object; takes ownership of @dl (a dlopen() handle, closed
 * with the last reference) only on success.  *ret_obj holds one reference.
 * Returns 0 or -1 (error set).
 */
int
fake_module_new(void *dl, struct fake_obj **ret_obj)
{
	struct fake_obj *o = fake_obj_new(FAKE_MODULE);

	if (o == NULL)
		return -1;
	o->dl = dl;
	*ret_obj = o;
	return 0;
}

/* The dlopen() handle of module @m; borrowed, lives as long as @m. */
void *
fake_module_dl(const struct fake_obj *m)
{
	return m->dl;
}

/* An empty return slot (None), usable by TVMCFuncSetReturn(). */
void
fake_ret_init(struct fake_ret *r)
{
	memset(r, 0, sizeof(*r));
	r->magic = FAKE_RET_MAGIC;
	r->code = kTVMNullptr;
}

/* Release what @r holds and make it None again; keeps it usable. */
void
fake_ret_clear(struct fake_ret *r)
{
	if (r->code == kTVMModuleHandle || r->code == kTVMPackedFuncHandle)
		fake_obj_unref(r->v.v_handle);
	free(r->buf);
	r->buf = NULL;
	r->bytes.data = NULL;
	r->bytes.size = 0;
	r->v.v_int64 = 0;
	r->code = kTVMNullptr;
}

/*
 * Store @v of type @code in @r, replacing what it held: numbers and plain
 * handles by value, strings and bytes copied, module and function handles
 * with a new reference (spec §3, TVMCFuncSetReturn).  Returns 0 or -1.
 */
int
fake_ret_set(struct fake_ret *r, TVMValue v, int code)
{
	const TVMByteArray *ba;
	struct fake_obj *o = NULL;
	char *buf = NULL;
	size_t nbytes = 0;

	switch (code) {
	case kDLInt:
	case kDLUInt:
	case kDLFloat:
	case kTVMOpaqueHandle:
	case kTVMNullptr:
	case kTVMDataType:
	case kDLDevice:
		break;
	case kTVMStr:
		if (v.v_str == NULL)
			return fake_error("TVMCFuncSetReturn: NULL string");
		buf = strdup(v.v_str);
		if (buf == NULL)
			return fake_error("out of memory");
		v.v_str = buf;
		break;
	case kTVMBytes:
		ba = v.v_handle;
		if (ba == NULL || (ba->data == NULL && ba->size > 0))
			return fake_error("TVMCFuncSetReturn: NULL bytes");
		buf = malloc(ba->size > 0 ? ba->size : 1);
		if (buf == NULL)
			return fake_error("out of memory");
		if (ba->size > 0)
			memcpy(buf, ba->data, ba->size);
		nbytes = ba->size;
		break;
	case kTVMModuleHandle:
	case kTVMPackedFuncHandle:
		o = fake_obj_check(v.v_handle,
		    code == kTVMModuleHandle ? FAKE_MODULE : FAKE_FUNC);
		if (o == NULL)
			return fake_error(
			    "TVMCFuncSetReturn: %p is not a %s of "
			    "this runtime",
			    v.v_handle,
			    code == kTVMModuleHandle ? "module" : "function");
		fake_obj_ref(o);
		break;
	default:
		return fake_error("TVMCFuncSetReturn: type code %d is not "
				  "supported by the npufarm fake runtime",
		    code);
	}
	fake_ret_clear(r);
	r->v = v;
	r->code = code;
	r->buf = buf;
	if (code == kTVMBytes) {
		r->bytes.data = buf;
		r->bytes.size = nbytes;
		r->v.v_handle = &r->bytes;
	}
	return 0;
}

/*
 * Call function @fn with borrowed @args and @codes.  On success @ret holds
 * the result (the caller releases it with fake_ret_clear()); on failure it
 * is None and the error text has its type (spec §4).  Returns 0 or -1.
 */
int
fake_call(struct fake_obj *fn, TVMValue *args, int *codes, int n,
    struct fake_ret *ret)
{
	int rc;

	fake_ret_init(ret);
#ifdef FAKE_TVM_FFI
	if (fn->safe != NULL)
		rc = fake_ffi_call(fn, args, codes, n, ret);
	else
#endif
		rc = fn->fn(args, codes, n, ret, fn->resource);
	ret->magic = 0;
	if (rc != 0) {
		fake_ret_clear(ret);
		fake_error_normalize();
		return -1;
	}
	return 0;
}

/*
 * Make room for element @n of the array *@arr (a pointer to any array
 * pointer) of @size-byte elements and capacity *@cap, doubling it when
 * full.  Returns 0 or -1 (error set); the array is unchanged on failure.
 */
int
fake_grow(void *arr, size_t n, size_t *cap, size_t size)
{
	void **pa = arr, *na;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? 2 * *cap : 16;
	na = realloc(*pa, ncap * size);
	if (na == NULL)
		return fake_error("out of memory");
	*pa = na;
	*cap = ncap;
	return 0;
}

/* The registry entry named @name, or NULL.  Call with fake_lock held. */
static struct fake_entry *
fake_find(const char *name)
{
	size_t i;

	for (i = 0; i < fake_nentries; i++)
		if (strcmp(fake_entries[i].name, name) == 0)
			return &fake_entries[i];
	return NULL;
}

/*
 * Register @fn under @name: -1 (error set) when the name exists and
 * @override is 0; with @override the old function is kept but never
 * released (spec §3).  The registry takes its own reference.
 */
int
fake_register_obj(const char *name, struct fake_obj *fn, int override)
{
	struct fake_entry *e;
	char *copy = NULL;
	int r = -1;

	pthread_mutex_lock(&fake_lock);
	e = fake_find(name);
	if (e != NULL && !override) {
		fake_error("Global PackedFunc %s is already registered", name);
		goto out;
	}
	if (e != NULL) {
		if (fake_grow(&fake_retired, fake_nretired, &fake_cap_retired,
			sizeof(*fake_retired)) < 0)
			goto out;
		fake_retired[fake_nretired++] = e->fn;
		e->fn = fake_obj_ref(fn);
		r = 0;
		goto out;
	}
	if (fake_grow(&fake_entries, fake_nentries, &fake_cap_entries,
		sizeof(*fake_entries)) < 0)
		goto out;
	copy = strdup(name);
	if (copy == NULL) {
		fake_error("out of memory");
		goto out;
	}
	fake_entries[fake_nentries].name = copy;
	fake_entries[fake_nentries].fn = fake_obj_ref(fn);
	fake_nentries++;
	r = 0;
out:
	pthread_mutex_unlock(&fake_lock);
	return r;
}

/*
 * Register a function of the runtime itself (no resource, no finalizer)
 * under @name, replacing nothing.  Returns 0 or -1 (error set).
 */
int
fake_register(const char *name, TVMPackedCFunc fn)
{
	struct fake_obj *o = NULL;
	int r;

	if (fake_func_new(fn, NULL, NULL, &o) < 0)
		return -1;
	r = fake_register_obj(name, o, 0);
	fake_obj_unref(o);
	return r;
}

/* A new reference to the global function @name, or NULL when missing. */
struct fake_obj *
fake_global(const char *name)
{
	struct fake_entry *e;
	struct fake_obj *o = NULL;

	pthread_mutex_lock(&fake_lock);
	e = fake_find(name);
	if (e != NULL)
		o = fake_obj_ref(e->fn);
	pthread_mutex_unlock(&fake_lock);
	return o;
}

/* The runtime's own functions exist as soon as the library is loaded. */
__attribute__((constructor)) static void
fake_init(void)
{
	fake_funcs_register();
}

/* ---- the exported C API (spec §2, §3) ------------------------------- */

/*
 * Look up the global function @name.  *out is a new reference (free it
 * with TVMFuncFree()), or NULL when there is no such function, which is
 * not an error.  Returns 0, or -1 for NULL arguments.
 */
int
TVMFuncGetGlobal(const char *name, TVMFunctionHandle *out)
{
	if (name == NULL || out == NULL)
		return fake_error("TVMFuncGetGlobal: NULL argument");
	*out = fake_global(name);
	return 0;
}

/*
 * Call @f with @num_args borrowed arguments.  The result goes to *ret_val
 * and *ret_type_code: numbers by value; a string or bytes in thread-local
 * storage valid until the next TVMFuncCall() on this thread; a module or
 * function handle as one reference the caller owns.  Returns 0, or -1 with
 * the callee's error text (typed, spec §4) in TVMGetLastError().
 */
int
TVMFuncCall(TVMFunctionHandle f, TVMValue *args, int *type_codes, int num_args,
    TVMValue *ret_val, int *ret_type_code)
{
	struct fake_obj *o = fake_obj_check(f, FAKE_FUNC);
	struct fake_ret r;

	if (o == NULL)
		return fake_error(
		    "TVMFuncCall: %p is not a function handle", f);
	if (num_args < 0 ||
	    (num_args > 0 && (args == NULL || type_codes == NULL)) ||
	    ret_val == NULL || ret_type_code == NULL)
		return fake_error("TVMFuncCall: bad arguments");
	if (fake_call(o, args, type_codes, num_args, &r) < 0)
		return -1;
	free(fake_tls_buf);
	fake_tls_buf = NULL;
	if (r.code == kTVMStr) {
		fake_tls_buf = r.buf;
		ret_val->v_str = fake_tls_buf;
	} else if (r.code == kTVMBytes) {
		fake_tls_buf = r.buf;
		fake_tls_bytes.data = fake_tls_buf;
		fake_tls_bytes.size = r.bytes.size;
		ret_val->v_handle = &fake_tls_bytes;
	} else {
		*ret_val = r.v; /* handles: r's reference moves to the caller */
	}
	*ret_type_code = r.code;
	return 0;
}

/* Drop one reference to a function (NULL is a no-op).  Returns 0 or -1. */
int
TVMFuncFree(TVMFunctionHandle f)
{
	return TVMObjectFree(f);
}

/* Drop one reference to a module (NULL is a no-op).  Returns 0 or -1. */
int
TVMModFree(TVMModuleHandle m)
{
	return TVMObjectFree(m);
}

/*
 * Drop one reference to any object of this runtime (NULL is a no-op).
 * Returns 0, or -1 when @o is not a live object.
 */
int
TVMObjectFree(TVMObjectHandle o)
{
	struct fake_obj *obj;

	if (o == NULL)
		return 0;
	obj = fake_obj_check(o, 0);
	if (obj == NULL)
		return fake_error("TVMObjectFree: %p is not a live object", o);
	fake_obj_unref(obj);
	return 0;
}

/*
 * Wrap the C callback @f as a function.  *out is an owned reference;
 * @fin(@resource_handle) runs when the last reference dies.  Returns 0 or
 * -1.
 */
int
TVMFuncCreateFromCFunc(TVMPackedCFunc f, void *resource_handle,
    TVMPackedCFuncFinalizer fin, TVMFunctionHandle *out)
{
	struct fake_obj *o = NULL;

	if (out == NULL)
		return fake_error("TVMFuncCreateFromCFunc: NULL out");
	if (fake_func_new(f, resource_handle, fin, &o) < 0)
		return -1;
	*out = o;
	return 0;
}

/*
 * Register @f as the global function @name; the registry takes its own
 * reference, so the caller still frees @f.  An existing name fails unless
 * @override, which replaces it without releasing the old function.
 * Returns 0 or -1.
 */
int
TVMFuncRegisterGlobal(const char *name, TVMFunctionHandle f, int override)
{
	struct fake_obj *o = fake_obj_check(f, FAKE_FUNC);

	if (name == NULL)
		return fake_error("TVMFuncRegisterGlobal: NULL name");
	if (o == NULL)
		return fake_error("TVMFuncRegisterGlobal: %p is not a function "
				  "handle",
		    f);
	return fake_register_obj(name, o, override);
}

/*
 * Inside a callback, set its result to @value[0] of type @type_code[0]:
 * strings and bytes are copied, module and function handles get a new
 * reference (the caller keeps and frees its own).  Only @num_ret == 1.
 * Returns 0, or -1 when @ret is not the slot of a running callback.
 */
int
TVMCFuncSetReturn(
    TVMRetValueHandle ret, TVMValue *value, int *type_code, int num_ret)
{
	struct fake_ret *r = ret;

	if (r == NULL || r->magic != FAKE_RET_MAGIC)
		return fake_error("TVMCFuncSetReturn: %p is not the return "
				  "value of a running callback",
		    ret);
	if (num_ret != 1)
		return fake_error(
		    "TVMCFuncSetReturn: num_ret must be 1, not %d", num_ret);
	if (value == NULL || type_code == NULL)
		return fake_error("TVMCFuncSetReturn: NULL argument");
	return fake_ret_set(r, value[0], type_code[0]);
}

/*
 * The calling thread's last error text, or NULL before its first error.
 * Borrowed: the next error recorded on this thread overwrites it.
 */
const char *
TVMGetLastError(void)
{
	return fake_err_isset ? fake_err : NULL;
}

/* Copy @msg into the calling thread's error slot (it may be the slot). */
void
TVMAPISetLastError(const char *msg)
{
	size_t n;

	if (msg == NULL)
		msg = "";
	n = strnlen(msg, FAKE_ERR_MAX - 1);
	memmove(fake_err, msg, n);
	fake_err[n] = '\0';
	fake_err_isset = 1;
}

/*
 * The names of all global functions: *out_names is thread-local storage
 * valid until the next call on this thread.  Returns 0 or -1.
 */
int
TVMFuncListGlobalNames(int *out_size, const char ***out_names)
{
	const char **names;
	size_t i;
	int r = -1;

	if (out_size == NULL || out_names == NULL)
		return fake_error("TVMFuncListGlobalNames: NULL argument");
	pthread_mutex_lock(&fake_lock);
	names = realloc(fake_tls_names, (fake_nentries + 1) * sizeof(*names));
	if (names == NULL) {
		fake_error("out of memory");
		goto out;
	}
	fake_tls_names = names;
	for (i = 0; i < fake_nentries; i++)
		names[i] = fake_entries[i].name;
	*out_size = (int)fake_nentries;
	*out_names = names;
	r = 0;
out:
	pthread_mutex_unlock(&fake_lock);
	return r;
}
