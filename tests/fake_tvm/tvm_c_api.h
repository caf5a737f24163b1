/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM's runtime C API as spec tvm-c-runtime-api.md §2 declares it (v0.14.0
 * ABI, LP64), for the fake libtvm_runtime.so and for the tests that dlopen()
 * it.  Written from the spec on purpose and kept apart from agent/'s copy:
 * a test double that shared the agent's reading of the spec could not catch
 * a mistake in it.  The names and typedefs are TVM's, because they are the
 * ABI.  Each entry point also has a function type (tvm_*_fn) so that a
 * dlsym() user declares a correctly typed pointer without restating it.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* One argument or return value: 8 bytes. */
typedef union {
	int64_t v_int64;   /* kDLInt, kDLUInt */
	double v_float64;  /* kDLFloat */
	void *v_handle;    /* 3, 7..10, 13; kTVMBytes: a TVMByteArray * */
	const char *v_str; /* kTVMStr: NUL-terminated UTF-8 */
	struct {
		uint8_t code, bits;
		uint16_t lanes;
	} v_type; /* kTVMDataType */
	struct {
		int32_t device_type, device_id;
	} v_device; /* kDLDevice; kDLCPU = 1 */
} TVMValue;
_Static_assert(sizeof(TVMValue) == 8, "TVMValue is 8 bytes in the ABI");

/* The payload of a kTVMBytes value; not NUL-terminated. */
typedef struct {
	const char *data;
	size_t size;
} TVMByteArray;

/* Type codes, of arguments, return values and PackedSeq entries. */
enum {
	kDLInt = 0,
	kDLUInt = 1,
	kDLFloat = 2,
	kTVMOpaqueHandle = 3,
	kTVMNullptr = 4,
	kTVMDataType = 5,
	kDLDevice = 6,
	kTVMDLTensorHandle = 7,
	kTVMObjectHandle = 8,
	kTVMModuleHandle = 9,
	kTVMPackedFuncHandle = 10,
	kTVMStr = 11,
	kTVMBytes = 12,
	kTVMNDArrayHandle = 13,
	kTVMObjectRValueRefArg = 14,
};

typedef void *TVMFunctionHandle;
typedef void *TVMModuleHandle;
typedef void *TVMRetValueHandle;
typedef void *TVMObjectHandle;
typedef int (*TVMPackedCFunc)(TVMValue *args, int *type_codes, int num_args,
    TVMRetValueHandle ret, void *resource_handle);
typedef void (*TVMPackedCFuncFinalizer)(void *resource_handle);

/* Function types of the entry points (spec §2), for dlsym() users. */
typedef int tvm_func_get_global_fn(const char *name, TVMFunctionHandle *out);
typedef int tvm_func_call_fn(TVMFunctionHandle f, TVMValue *args,
    int *type_codes, int num_args, TVMValue *ret_val, int *ret_type_code);
typedef int tvm_func_free_fn(TVMFunctionHandle f);
typedef int tvm_func_create_from_cfunc_fn(TVMPackedCFunc f,
    void *resource_handle, TVMPackedCFuncFinalizer fin, TVMFunctionHandle *out);
typedef int tvm_func_register_global_fn(
    const char *name, TVMFunctionHandle f, int override);
typedef int tvm_cfunc_set_return_fn(
    TVMRetValueHandle ret, TVMValue *value, int *type_code, int num_ret);
typedef const char *tvm_get_last_error_fn(void);
typedef void tvm_api_set_last_error_fn(const char *msg);
typedef int tvm_mod_free_fn(TVMModuleHandle m);
typedef int tvm_object_free_fn(TVMObjectHandle o);
typedef int tvm_func_list_global_names_fn(
    int *out_size, const char ***out_names);

/*
 * What the fake runtime exports; nothing else leaves the .so.  The tvm-ffi
 * flavour (FAKE_TVM_FFI) keeps these for its own use and exports only
 * tvm_ffi_api.h, as a real v0.21+ runtime exports no TVMFunc* at all.
 */
#ifdef FAKE_TVM_FFI
#define TVM_C_API_EXPORT __attribute__((visibility("hidden")))
#else
#define TVM_C_API_EXPORT __attribute__((visibility("default")))
#endif

TVM_C_API_EXPORT tvm_func_get_global_fn TVMFuncGetGlobal;
TVM_C_API_EXPORT tvm_func_call_fn TVMFuncCall;
TVM_C_API_EXPORT tvm_func_free_fn TVMFuncFree;
TVM_C_API_EXPORT tvm_func_create_from_cfunc_fn TVMFuncCreateFromCFunc;
TVM_C_API_EXPORT tvm_func_register_global_fn TVMFuncRegisterGlobal;
TVM_C_API_EXPORT tvm_cfunc_set_return_fn TVMCFuncSetReturn;
TVM_C_API_EXPORT tvm_get_last_error_fn TVMGetLastError;
TVM_C_API_EXPORT tvm_api_set_last_error_fn TVMAPISetLastError;
TVM_C_API_EXPORT tvm_mod_free_fn TVMModFree;
TVM_C_API_EXPORT tvm_object_free_fn TVMObjectFree;
TVM_C_API_EXPORT tvm_func_list_global_names_fn TVMFuncListGlobalNames;
