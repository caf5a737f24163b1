/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tvm-ffi C API of the fake runtime's tvm-ffi flavour (FAKE_TVM_FFI),
 * written from spec tvm-ffi-era.md §4.2-§4.3, over the same objects,
 * registry and error slot as the v0.14 flavour (fake_runtime.c):
 *
 *   - Function and Module handles are the fake's objects, whose header has
 *     tvm-ffi's layout; String and Error objects are made here, header and
 *     cell as tvm-ffi lays them out, since the agent reads cells directly.
 *   - Results are owned: a str comes back as an inline small string (11,
 *     up to 7 bytes) or a String object (65); a Module moves its reference
 *     to the caller.  TVMFFIFunctionCall insists on result->type_index 0.
 *   - A callback gets its str arguments as a raw C string (8) when the
 *     call came over RPC, and as a small string or String object when the
 *     runtime itself calls (upload and download call workpath so); its
 *     result must be owned, and a raw C string result is refused.
 *   - Errors are raised into the thread's slot as "Kind: message" and
 *     moved out as an Error object with kind and message apart.
 *
 * Misuse the real runtime would turn into memory corruption fails here
 * with a message instead, so a test sees the agent's mistake.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_runtime.h"

#define FFI_STR_MAGIC 0x53544646u /* a live String object of ours */

/* A String object (65) or an Error object (67): header, cell, bytes. */
struct ffi_str {
	struct fake_hdr hdr;
	TVMFFIByteArray cell; /* String: data, size */
	unsigned magic;
	char data[]; /* NUL-terminated */
};

struct ffi_error {
	struct fake_hdr hdr;
	TVMFFIErrorCell cell; /* kind, message, backtrace ("") */
	unsigned magic;
	char data[]; /* kind NUL message NUL */
};

/* A new String object holding @s (@len bytes), one reference; or NULL. */
static struct ffi_str *
ffi_str_new(const char *s, size_t len)
{
	struct ffi_str *o = malloc(sizeof(*o) + len + 1);

	if (o == NULL) {
		fake_error("out of memory");
		return NULL;
	}
	memset(o, 0, sizeof(*o));
	o->hdr.refs = 1;
	o->hdr.type_index = kTVMFFIStr;
	o->magic = FFI_STR_MAGIC;
	memcpy(o->data, s, len);
	o->data[len] = '\0';
	o->cell.data = o->data;
	o->cell.size = len;
	return o;
}

/*
 * @s as an owned Any, as tvm-ffi stores a String: inline (11) up to 7
 * bytes, else a String object (65).  Returns 0 or -1 (error set).
 */
static int
ffi_str_any(const char *s, size_t len, TVMFFIAny *out)
{
	struct ffi_str *o;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(out->v_bytes)) {
		out->type_index = kTVMFFISmallStr;
		out->small_str_len = (uint32_t)len;
		memcpy(out->v_bytes, s, len);
		return 0;
	}
	o = ffi_str_new(s, len);
	if (o == NULL)
		return -1;
	out->type_index = kTVMFFIStr;
	out->v_ptr = o;
	return 0;
}

/* The bytes of a str Any (8, 11 or 65); NULL for anything else. */
static const char *
ffi_any_str(const TVMFFIAny *a, size_t *ret_len)
{
	const struct ffi_str *o;

	switch (a->type_index) {
	case kTVMFFIRawStr:
		if (a->v_c_str == NULL)
			return NULL;
		*ret_len = strlen(a->v_c_str);
		return a->v_c_str;
	case kTVMFFISmallStr:
		if (a->small_str_len >= sizeof(a->v_bytes))
			return NULL;
		*ret_len = a->small_str_len;
		return a->v_bytes;
	case kTVMFFIStr:
		o = a->v_ptr;
		if (o == NULL || o->magic != FFI_STR_MAGIC)
			return NULL;
		*ret_len = o->cell.size;
		return o->cell.data;
	default:
		return NULL;
	}
}

/* ---- objects -------------------------------------------------------- */

/*
 * Take one more reference to any object of this runtime.  Returns 0, or
 * -1 (error raised) for a pointer that is none.
 */
int
TVMFFIObjectIncRef(TVMFFIObjectHandle obj)
{
	struct fake_hdr *h = obj;
	struct fake_obj *o;

	if (h == NULL)
		return fake_error("TVMFFIObjectIncRef: NULL object");
	if (h->type_index == kTVMFFIStr &&
	    ((struct ffi_str *)h)->magic == FFI_STR_MAGIC) {
		h->refs++;
		return 0;
	}
	o = fake_obj_check(obj, 0);
	if (o == NULL)
		return fake_error("TVMFFIObjectIncRef: %p is not an object of "
				  "this runtime",
		    obj);
	(void)fake_obj_ref(o);
	return 0;
}

/*
 * Drop one reference to any object of this runtime (functions, modules,
 * strings, errors); the last one frees it.  Returns 0, or -1 (error
 * raised) for a pointer that is none, e.g. one released once too often.
 */
int
TVMFFIObjectDecRef(TVMFFIObjectHandle obj)
{
	struct fake_hdr *h = obj;
	struct fake_obj *o;

	if (h == NULL)
		return fake_error("TVMFFIObjectDecRef: NULL object");
	if (h->type_index == kTVMFFIStr &&
	    ((struct ffi_str *)h)->magic == FFI_STR_MAGIC) {
		if (--h->refs == 0) {
			((struct ffi_str *)h)->magic = 0;
			free(h);
		}
		return 0;
	}
	if (h->type_index == kTVMFFIError &&
	    ((struct ffi_error *)h)->magic == FFI_STR_MAGIC) {
		if (--h->refs == 0) {
			((struct ffi_error *)h)->magic = 0;
			free(h);
		}
		return 0;
	}
	o = fake_obj_check(obj, 0);
	if (o == NULL)
		return fake_error("TVMFFIObjectDecRef: %p is not a live object "
				  "of this runtime",
		    obj);
	fake_obj_unref(o);
	return 0;
}

/* Release what an owned Any holds. */
static void
ffi_any_clear(TVMFFIAny *a)
{
	if (a->type_index >= kTVMFFIStaticObjectBegin && a->v_ptr != NULL)
		(void)TVMFFIObjectDecRef(a->v_ptr);
	memset(a, 0, sizeof(*a));
}

/*
 * @s (@len bytes) as an owned String Any: 11 up to 7 bytes, else 65.
 * Returns 0 or -1.
 */
int
TVMFFIStringFromByteArray(const TVMFFIByteArray *input, TVMFFIAny *out)
{
	if (input == NULL || out == NULL ||
	    (input->data == NULL && input->size > 0))
		return fake_error("TVMFFIStringFromByteArray: NULL argument");
	return ffi_str_any(input->data, input->size, out);
}

/* ---- errors --------------------------------------------------------- */

/* Raise an error of @kind with @message in the calling thread. */
void
TVMFFIErrorSetRaisedFromCStr(const char *kind, const char *message)
{
	(void)fake_error("%s: %s", kind != NULL ? kind : "RuntimeError",
	    message != NULL ? message : "");
}

/*
 * Move the calling thread's raised error out as an Error object (kind and
 * message apart; the caller owns one reference), clearing it; *result is
 * NULL when none was raised.
 */
void
TVMFFIErrorMoveFromRaised(TVMFFIObjectHandle *result)
{
	const char *text, *msg;
	struct ffi_error *e;
	size_t kind_len, msg_len;

	*result = NULL;
	if (!fake_error_pending())
		return;
	text = fake_error_text();
	msg = fake_error_message(text, &kind_len);
	if (kind_len == 0) {
		text = "RuntimeError";
		kind_len = strlen(text);
	}
	msg_len = strlen(msg);
	e = malloc(sizeof(*e) + kind_len + msg_len + 2);
	if (e == NULL)
		return; /* the error stays raised */
	memset(e, 0, sizeof(*e));
	e->hdr.refs = 1;
	e->hdr.type_index = kTVMFFIError;
	e->magic = FFI_STR_MAGIC;
	memcpy(e->data, text, kind_len);
	e->data[kind_len] = '\0';
	memcpy(e->data + kind_len + 1, msg, msg_len + 1);
	e->cell.kind.data = e->data;
	e->cell.kind.size = kind_len;
	e->cell.message.data = e->data + kind_len + 1;
	e->cell.message.size = msg_len;
	e->cell.backtrace.data = "";
	fake_error_clear();
	*result = e;
}

/* ---- calls ---------------------------------------------------------- */

/* Arguments converted for one call, and what they own. */
struct ffi_args {
	TVMValue *v;
	int *codes;
	TVMFFIAny *any;
	char **strs; /* owned NUL-terminated copies, or NULL */
	int n;
};

static void
ffi_args_free(struct ffi_args *a)
{
	int i;

	for (i = 0; i < a->n; i++) {
		if (a->strs != NULL)
			free(a->strs[i]);
		if (a->any != NULL)
			ffi_any_clear(&a->any[i]);
	}
	free(a->v);
	free(a->codes);
	free(a->any);
	free(a->strs);
}

/* Room for @n arguments; Anys only @with_any.  0 or -1 (error set). */
static int
ffi_args_alloc(struct ffi_args *a, int n, bool with_any)
{
	memset(a, 0, sizeof(*a));
	a->n = n;
	a->v = calloc((size_t)n + 1, sizeof(*a->v));
	a->codes = calloc((size_t)n + 1, sizeof(*a->codes));
	a->strs = calloc((size_t)n + 1, sizeof(*a->strs));
	if (with_any)
		a->any = calloc((size_t)n + 1, sizeof(*a->any));
	if (a->v == NULL || a->codes == NULL || a->strs == NULL ||
	    (with_any && a->any == NULL))
		return fake_error("out of memory");
	return 0;
}

/* Forget the module and function views in a->any: they are borrowed. */
static void
ffi_views_drop(struct ffi_args *a)
{
	int i;

	for (i = 0; i < a->n && a->any != NULL; i++)
		if (a->any[i].type_index == kTVMFFIModule ||
		    a->any[i].type_index == kTVMFFIFunction)
			a->any[i].type_index = kTVMFFINone;
}

/*
 * Internal values and type codes @args/@codes as the Anys a tvm-ffi
 * callback gets, into a->any (borrowed views, but for String objects made
 * for FAKE_STR_OBJ, which a->any owns).
 */
static int
ffi_to_any(struct ffi_args *a, const TVMValue *args, const int *codes)
{
	TVMFFIAny *o;
	int i;

	for (i = 0; i < a->n; i++) {
		o = &a->any[i];
		switch (codes[i]) {
		case kDLInt:
		case kDLUInt:
			o->type_index = kTVMFFIInt;
			o->v_int64 = args[i].v_int64;
			break;
		case kDLFloat:
			o->type_index = kTVMFFIFloat;
			o->v_float64 = args[i].v_float64;
			break;
		case kTVMNullptr:
			o->type_index = kTVMFFINone;
			break;
		case kTVMOpaqueHandle:
			o->type_index = kTVMFFIOpaquePtr;
			o->v_ptr = args[i].v_handle;
			break;
		case kTVMStr:
			o->type_index = kTVMFFIRawStr;
			o->v_c_str = args[i].v_str;
			break;
		case FAKE_STR_OBJ:
			if (ffi_str_any(
				args[i].v_str, strlen(args[i].v_str), o) < 0)
				return -1;
			break;
		case kTVMBytes:
			o->type_index = kTVMFFIByteArrayPtr;
			o->v_ptr = args[i].v_handle;
			break;
		case kTVMModuleHandle:
		case kTVMPackedFuncHandle:
			/* A view: ffi_views_drop() before a->any is freed. */
			o->type_index = codes[i] == kTVMModuleHandle
					    ? kTVMFFIModule
					    : kTVMFFIFunction;
			o->v_ptr = args[i].v_handle;
			break;
		default:
			return fake_error("type code %d cannot be passed to a "
					  "tvm-ffi function by the npufarm "
					  "fake runtime",
			    codes[i]);
		}
	}
	return 0;
}

/*
 * An owned Any result @r of a callback into @ret (strings copied, objects
 * with a reference of @ret's own), then released.  A raw C string (8) is
 * refused: results must be owned (spec §4.3).
 */
static int
ffi_result(TVMFFIAny *r, struct fake_ret *ret)
{
	const char *s;
	TVMValue v = {.v_int64 = 0};
	size_t len;
	int code, rc;

	switch (r->type_index) {
	case kTVMFFINone:
		return 0;
	case kTVMFFIInt:
	case kTVMFFIBool:
		v.v_int64 = r->v_int64;
		code = kDLInt;
		break;
	case kTVMFFIFloat:
		v.v_float64 = r->v_float64;
		code = kDLFloat;
		break;
	case kTVMFFIOpaquePtr:
		v.v_handle = r->v_ptr;
		code = kTVMOpaqueHandle;
		break;
	case kTVMFFISmallStr:
	case kTVMFFIStr:
		s = ffi_any_str(r, &len);
		if (s == NULL || memchr(s, '\0', len) != NULL) {
			ffi_any_clear(r);
			return fake_error("a tvm-ffi callback returned a "
					  "malformed string");
		}
		v.v_str = strndup(s, len);
		if (v.v_str == NULL) {
			ffi_any_clear(r);
			return fake_error("out of memory");
		}
		rc = fake_ret_set(ret, v, kTVMStr);
		free((char *)v.v_str);
		ffi_any_clear(r);
		return rc;
	case kTVMFFIModule:
	case kTVMFFIFunction:
		v.v_handle = r->v_ptr;
		code = r->type_index == kTVMFFIModule ? kTVMModuleHandle
						      : kTVMPackedFuncHandle;
		rc = fake_ret_set(ret, v, code);
		ffi_any_clear(r);
		return rc;
	case kTVMFFIRawStr:
		return fake_error("a tvm-ffi callback returned a raw C string "
				  "(type index 8): results must be owned, "
				  "e.g. from TVMFFIStringFromByteArray");
	default:
		code = r->type_index;
		ffi_any_clear(r);
		return fake_error("a tvm-ffi callback returned type index %d, "
				  "which the npufarm fake runtime does not "
				  "take",
		    code);
	}
	return fake_ret_set(ret, v, code);
}

/*
 * Call the tvm-ffi function @fn with internal arguments (fake_call() comes
 * here for functions made by TVMFFIFunctionCreate or found in a module).
 * Returns 0 with @ret set, or -1 with the callback's error raised.
 */
int
fake_ffi_call(struct fake_obj *fn, TVMValue *args, int *codes, int n,
    struct fake_ret *ret)
{
	TVMFFISafeCallType safe;
	TVMFFIAny result;
	struct ffi_args a;
	void *self;
	int rc = -1;

	safe = fake_func_safe(fn, &self);
	if (ffi_args_alloc(&a, n, true) < 0 || ffi_to_any(&a, args, codes) < 0)
		goto out;
	memset(&result, 0, sizeof(result));
	fake_error_clear(); /* what it raises, or nothing */
	rc = safe(self, a.any, n, &result);
	if (rc != 0) {
		ffi_any_clear(&result);
		rc = -1;
		goto out;
	}
	rc = ffi_result(&result, ret);
out:
	ffi_views_drop(&a);
	ffi_args_free(&a);
	return rc;
}

/*
 * Anys @any from a tvm-ffi caller as internal values and type codes into
 * @a (strings copied NUL-terminated).  Returns 0 or -1 (error raised).
 */
static int
ffi_from_any(struct ffi_args *a, const TVMFFIAny *any)
{
	const char *s;
	size_t len;
	int i;

	for (i = 0; i < a->n; i++) {
		switch (any[i].type_index) {
		case kTVMFFIInt:
		case kTVMFFIBool:
			a->codes[i] = kDLInt;
			a->v[i].v_int64 = any[i].v_int64;
			break;
		case kTVMFFIFloat:
			a->codes[i] = kDLFloat;
			a->v[i].v_float64 = any[i].v_float64;
			break;
		case kTVMFFINone:
			a->codes[i] = kTVMNullptr;
			break;
		case kTVMFFIOpaquePtr:
			a->codes[i] = kTVMOpaqueHandle;
			a->v[i].v_handle = any[i].v_ptr;
			break;
		case kTVMFFIRawStr:
		case kTVMFFISmallStr:
		case kTVMFFIStr:
			s = ffi_any_str(&any[i], &len);
			if (s == NULL)
				return fake_error("argument %d: malformed "
						  "string",
				    i);
			a->strs[i] = strndup(s, len);
			if (a->strs[i] == NULL)
				return fake_error("out of memory");
			a->codes[i] = kTVMStr;
			a->v[i].v_str = a->strs[i];
			break;
		case kTVMFFIModule:
		case kTVMFFIFunction:
			a->codes[i] = any[i].type_index == kTVMFFIModule
					  ? kTVMModuleHandle
					  : kTVMPackedFuncHandle;
			a->v[i].v_handle = any[i].v_ptr;
			break;
		default:
			return fake_error("argument %d: type index %d is not "
					  "supported by the npufarm fake "
					  "runtime",
			    i, (int)any[i].type_index);
		}
	}
	return 0;
}

/*
 * Call @f with @num_args borrowed arguments; the result is owned by the
 * caller (strings as 11 or 65, a Module or Function with one reference).
 * @result->type_index must be None on entry.  Returns 0, or -1 with the
 * callee's error raised (typed, spec §4).
 */
int
TVMFFIFunctionCall(
    TVMFFIObjectHandle f, TVMFFIAny *args, int32_t num_args, TVMFFIAny *result)
{
	struct fake_obj *o = fake_obj_check(f, FAKE_FUNC);
	struct fake_ret r;
	struct ffi_args a;
	int rc = -1;

	if (o == NULL)
		return fake_error(
		    "TVMFFIFunctionCall: %p is not a function", f);
	if (num_args < 0 || (num_args > 0 && args == NULL) || result == NULL)
		return fake_error("TVMFFIFunctionCall: bad arguments");
	if (result->type_index != kTVMFFINone)
		return fake_error("TVMFFIFunctionCall: the result must be None "
				  "on entry, not type index %d",
		    (int)result->type_index);
	if (ffi_args_alloc(&a, num_args, false) < 0 ||
	    ffi_from_any(&a, args) < 0)
		goto out;
	if (fake_call(o, a.v, a.codes, a.n, &r) < 0)
		goto out;
	memset(result, 0, sizeof(*result));
	switch (r.code) {
	case kTVMNullptr:
		rc = 0;
		break;
	case kDLInt:
	case kDLUInt:
		result->type_index = kTVMFFIInt;
		result->v_int64 = r.v.v_int64;
		rc = 0;
		break;
	case kDLFloat:
		result->type_index = kTVMFFIFloat;
		result->v_float64 = r.v.v_float64;
		rc = 0;
		break;
	case kTVMStr:
		rc = ffi_str_any(r.buf, strlen(r.buf), result);
		break;
	case kTVMModuleHandle:
	case kTVMPackedFuncHandle:
		result->type_index = r.code == kTVMModuleHandle
					 ? kTVMFFIModule
					 : kTVMFFIFunction;
		result->v_ptr = r.v.v_handle;
		r.code = kTVMNullptr; /* the reference moves to the caller */
		rc = 0;
		break;
	default:
		rc = fake_error("TVMFFIFunctionCall: a result of type code %d "
				"is not supported by the npufarm fake runtime",
		    r.code);
		break;
	}
	fake_ret_clear(&r);
out:
	ffi_args_free(&a);
	return rc;
}

/* ---- functions and the registry ------------------------------------- */

/*
 * Wrap @safe_call as a function; *out is an owned reference, and
 * @deleter(@self) runs when the last one goes.  Returns 0 or -1.
 */
int
TVMFFIFunctionCreate(void *self, TVMFFISafeCallType safe_call,
    void (*deleter)(void *self), TVMFFIObjectHandle *out)
{
	struct fake_obj *o;

	if (out == NULL)
		return fake_error("TVMFFIFunctionCreate: NULL out");
	if (fake_func_new_safe(safe_call, self, deleter, &o) < 0)
		return -1;
	*out = o;
	return 0;
}

/* @name as a NUL-terminated copy in @buf, or NULL (error raised). */
static const char *
ffi_name(const TVMFFIByteArray *name, char *buf, size_t len)
{
	if (name == NULL || (name->data == NULL && name->size > 0) ||
	    name->size >= len || memchr(name->data, '\0', name->size) != NULL) {
		(void)fake_error("malformed function name");
		return NULL;
	}
	memcpy(buf, name->data, name->size);
	buf[name->size] = '\0';
	return buf;
}

/*
 * The global function @name as a new reference in *out, NULL when there
 * is none (not an error).  Returns 0 or -1.
 */
int
TVMFFIFunctionGetGlobal(const TVMFFIByteArray *name, TVMFFIObjectHandle *out)
{
	char buf[512];

	if (out == NULL || ffi_name(name, buf, sizeof(buf)) == NULL)
		return fake_error("TVMFFIFunctionGetGlobal: bad arguments");
	*out = fake_global(buf);
	return 0;
}

/*
 * Register @f as the global function @name; the registry takes its own
 * reference (the caller still releases its own).  Returns 0 or -1.
 */
int
TVMFFIFunctionSetGlobal(
    const TVMFFIByteArray *name, TVMFFIObjectHandle f, int allow_override)
{
	struct fake_obj *o = fake_obj_check(f, FAKE_FUNC);
	char buf[512];

	if (ffi_name(name, buf, sizeof(buf)) == NULL)
		return -1;
	if (o == NULL)
		return fake_error(
		    "TVMFFIFunctionSetGlobal: %p is not a function", f);
	return fake_register_obj(buf, o, allow_override);
}
