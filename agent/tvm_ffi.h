/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The part of tvm-ffi's C API (TVM v0.21 and later, LP64) that a session
 * child uses, written from spec tvm-ffi-era.md §4.2-§4.3 rather than the
 * headers: the agent never links TVM.  In those runtimes libtvm_runtime.so
 * exports no TVMFunc* at all; these entry points live in libtvm_ffi.so,
 * which libtvm_runtime.so pulls in (NEEDED, RUNPATH $ORIGIN), so dlsym() on
 * the runtime's handle finds them.  Entry points return 0 on success and
 * -1 on failure with an Error object raised in thread-local storage
 * (TVMFFIErrorMoveFromRaised).  The ABI's own names are kept, against the
 * house rule on typedefs, so that code here reads like the spec.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct npufarm_err;
struct tvm_runtime;

/* Type indexes (spec §2.2; tvm/ffi/c_api.h). */
enum {
	kTVMFFINone = 0,
	kTVMFFIInt = 1,
	kTVMFFIBool = 2,
	kTVMFFIFloat = 3,
	kTVMFFIOpaquePtr = 4,
	kTVMFFIRawStr = 8,    /* const char *, NUL-terminated, borrowed */
	kTVMFFISmallStr = 11, /* <= 7 bytes inline, small_str_len */
	kTVMFFIStaticObjectBegin = 64,
	kTVMFFIStr = 65, /* String object: a TVMFFIByteArray cell */
	kTVMFFIError = 67,
	kTVMFFIFunction = 68,
	kTVMFFIModule = 73,
};

/* One argument or result: 16 bytes. */
typedef struct {
	int32_t type_index;
	uint32_t small_str_len; /* kTVMFFISmallStr; 0 otherwise */
	union {
		int64_t v_int64;
		double v_float64;
		void *v_ptr; /* objects (>= 64): the object header */
		const char *v_c_str;
		char v_bytes[8];
	};
} TVMFFIAny;
_Static_assert(sizeof(TVMFFIAny) == 16, "TVMFFIAny is 16 bytes");

typedef struct {
	const char *data;
	size_t size;
} TVMFFIByteArray;

/* The header every object starts with; its cell follows. */
typedef struct {
	uint64_t combined_ref_count;
	int32_t type_index;
	uint32_t padding;
	void *deleter;
} TVMFFIObject;
_Static_assert(sizeof(TVMFFIObject) == 24, "the object header is 24 bytes");

/* The start of an Error object's cell (spec §4.2). */
typedef struct {
	TVMFFIByteArray kind;
	TVMFFIByteArray message;
	TVMFFIByteArray backtrace;
} TVMFFIErrorCell;

typedef void *TVMFFIObjectHandle;
typedef int (*TVMFFISafeCallType)(
    void *self, const TVMFFIAny *args, int32_t num_args, TVMFFIAny *result);

/* The runtime's entry points, resolved by tvm_ffi_load(). */
struct tvm_ffi {
	int (*TVMFFIFunctionGetGlobal)(
	    const TVMFFIByteArray *name, TVMFFIObjectHandle *out);
	int (*TVMFFIFunctionCall)(TVMFFIObjectHandle f, TVMFFIAny *args,
	    int32_t num_args, TVMFFIAny *result);
	int (*TVMFFIFunctionCreate)(void *self, TVMFFISafeCallType safe_call,
	    void (*deleter)(void *self), TVMFFIObjectHandle *out);
	int (*TVMFFIFunctionSetGlobal)(const TVMFFIByteArray *name,
	    TVMFFIObjectHandle f, int allow_override);
	void (*TVMFFIErrorMoveFromRaised)(TVMFFIObjectHandle *result);
	void (*TVMFFIErrorSetRaisedFromCStr)(
	    const char *kind, const char *message);
	int (*TVMFFIStringFromByteArray)(
	    const TVMFFIByteArray *input, TVMFFIAny *out);
	int (*TVMFFIObjectDecRef)(TVMFFIObjectHandle obj);
};

int tvm_ffi_load(void *lib, struct tvm_ffi *ret_api, struct npufarm_err *err);
void tvm_ffi_bind(struct tvm_runtime *rt, const struct tvm_ffi *api);
