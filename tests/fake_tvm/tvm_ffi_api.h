/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tvm-ffi's C API (TVM v0.21+, spec tvm-ffi-era.md §4.2, LP64) for the
 * tvm-ffi flavour of the fake runtime (built with FAKE_TVM_FFI) and for
 * the tests that dlopen() it.  Kept apart from agent/tvm_ffi.h on purpose,
 * as tvm_c_api.h is from agent/tvm_capi.h: a double that shared the
 * agent's reading of the spec could not catch a mistake in it.  The names
 * are tvm-ffi's, because they are the ABI.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Type indexes (spec §2.2). */
enum {
	kTVMFFINone = 0,
	kTVMFFIInt = 1,
	kTVMFFIBool = 2,
	kTVMFFIFloat = 3,
	kTVMFFIOpaquePtr = 4,
	kTVMFFIDataType = 5,
	kTVMFFIDevice = 6,
	kTVMFFIDLTensorPtr = 7,
	kTVMFFIRawStr = 8,
	kTVMFFIByteArrayPtr = 9,
	kTVMFFIObjectRValueRef = 10,
	kTVMFFISmallStr = 11,
	kTVMFFISmallBytes = 12,
	kTVMFFIStaticObjectBegin = 64,
	kTVMFFIStr = 65,
	kTVMFFIBytes = 66,
	kTVMFFIError = 67,
	kTVMFFIFunction = 68,
	kTVMFFITensor = 70,
	kTVMFFIModule = 73,
	kTVMFFIRPCObjectRef = 115, /* RPC's remote object (128 - 13) */
};

typedef struct {
	int32_t type_index;
	uint32_t small_str_len; /* 11 and 12 only */
	union {
		int64_t v_int64;
		double v_float64;
		void *v_ptr;
		const char *v_c_str;
		char v_bytes[8];
	};
} TVMFFIAny;

typedef struct {
	const char *data;
	size_t size;
} TVMFFIByteArray;

/* Every object's header; the cell follows (24 bytes). */
typedef struct {
	uint64_t combined_ref_count;
	int32_t type_index;
	uint32_t padding;
	void (*deleter)(void *self, int flags);
} TVMFFIObject;

/* An Error object's cell, as far as the spec names it. */
typedef struct {
	TVMFFIByteArray kind;
	TVMFFIByteArray message;
	TVMFFIByteArray backtrace;
} TVMFFIErrorCell;

typedef void *TVMFFIObjectHandle;
typedef int (*TVMFFISafeCallType)(
    void *self, const TVMFFIAny *args, int32_t num_args, TVMFFIAny *result);

/* Function types of the entry points, for dlsym() users. */
typedef int tvm_ffi_function_get_global_fn(
    const TVMFFIByteArray *name, TVMFFIObjectHandle *out);
typedef int tvm_ffi_function_call_fn(
    TVMFFIObjectHandle f, TVMFFIAny *args, int32_t num_args, TVMFFIAny *result);
typedef int tvm_ffi_function_create_fn(void *self, TVMFFISafeCallType safe_call,
    void (*deleter)(void *self), TVMFFIObjectHandle *out);
typedef int tvm_ffi_function_set_global_fn(
    const TVMFFIByteArray *name, TVMFFIObjectHandle f, int allow_override);
typedef void tvm_ffi_error_move_from_raised_fn(TVMFFIObjectHandle *result);
typedef void tvm_ffi_error_set_raised_from_cstr_fn(
    const char *kind, const char *message);
typedef int tvm_ffi_string_from_byte_array_fn(
    const TVMFFIByteArray *input, TVMFFIAny *out);
typedef int tvm_ffi_object_ref_fn(TVMFFIObjectHandle obj);

/* What the tvm-ffi flavour exports; nothing of v0.14's C API. */
#define TVM_FFI_API_EXPORT __attribute__((visibility("default")))

TVM_FFI_API_EXPORT tvm_ffi_function_get_global_fn TVMFFIFunctionGetGlobal;
TVM_FFI_API_EXPORT tvm_ffi_function_call_fn TVMFFIFunctionCall;
TVM_FFI_API_EXPORT tvm_ffi_function_create_fn TVMFFIFunctionCreate;
TVM_FFI_API_EXPORT tvm_ffi_function_set_global_fn TVMFFIFunctionSetGlobal;
TVM_FFI_API_EXPORT tvm_ffi_error_move_from_raised_fn TVMFFIErrorMoveFromRaised;
TVM_FFI_API_EXPORT tvm_ffi_error_set_raised_from_cstr_fn
    TVMFFIErrorSetRaisedFromCStr;
TVM_FFI_API_EXPORT tvm_ffi_string_from_byte_array_fn TVMFFIStringFromByteArray;
TVM_FFI_API_EXPORT tvm_ffi_object_ref_fn TVMFFIObjectIncRef;
TVM_FFI_API_EXPORT tvm_ffi_object_ref_fn TVMFFIObjectDecRef;
