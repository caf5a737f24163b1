/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The part of TVM's runtime C API (v0.14.0 ABI, LP64: TVM v0.14 .. v0.20)
 * that a session child uses, and its adapter behind tvm_runtime.h, written
 * from spec tvm-c-runtime-api.md §2 rather than TVM's headers:
 * the agent never links TVM.  The entry points are function pointers filled
 * by dlsym() from a runtime the session child dlopen()ed, so a real
 * libtvm_runtime.so and the tests' fake one work alike.  Every int-returning
 * entry point returns 0 on success and non-zero on failure, with the text
 * in TVMGetLastError() (spec §3).  The ABI's own names and typedefs are
 * kept, against the house rule on typedefs, so that code here reads like
 * the spec and TVM's documentation.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct npufarm_err;
struct tvm_runtime;

/* One argument or return value; 8 bytes (spec §2). */
typedef union {
	int64_t v_int64;   /* kDLInt, kDLUInt */
	double v_float64;  /* kDLFloat */
	void *v_handle;    /* handles; kTVMBytes: a TVMByteArray * */
	const char *v_str; /* kTVMStr: NUL-terminated UTF-8 */
	struct {
		uint8_t code, bits;
		uint16_t lanes;
	} v_type; /* kTVMDataType */
	struct {
		int32_t device_type, device_id;
	} v_device; /* kDLDevice */
} TVMValue;
_Static_assert(sizeof(TVMValue) == 8, "TVMValue is 8 bytes in the ABI");

/* kTVMBytes payload; not NUL-terminated. */
typedef struct {
	const char *data;
	size_t size;
} TVMByteArray;

/* Type codes (spec §2). */
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
typedef int (*TVMPackedCFunc)(TVMValue *args, int *type_codes, int num_args,
    TVMRetValueHandle ret, void *resource_handle);
typedef void (*TVMPackedCFuncFinalizer)(void *resource_handle);

/* The runtime's entry points, resolved by tvm_capi_load(). */
struct tvm_capi {
	int (*TVMFuncGetGlobal)(const char *name, TVMFunctionHandle *out);
	int (*TVMFuncCall)(TVMFunctionHandle f, TVMValue *args, int *type_codes,
	    int num_args, TVMValue *ret_val, int *ret_type_code);
	int (*TVMFuncFree)(TVMFunctionHandle f);
	int (*TVMFuncCreateFromCFunc)(TVMPackedCFunc f, void *resource_handle,
	    TVMPackedCFuncFinalizer fin, TVMFunctionHandle *out);
	int (*TVMFuncRegisterGlobal)(
	    const char *name, TVMFunctionHandle f, int override);
	int (*TVMCFuncSetReturn)(TVMRetValueHandle ret, TVMValue *value,
	    int *type_code, int num_ret);
	const char *(*TVMGetLastError)(void);
	void (*TVMAPISetLastError)(const char *msg);
	int (*TVMModFree)(TVMModuleHandle m);
};

int tvm_capi_load(void *lib, struct tvm_capi *ret_api, struct npufarm_err *err);
void tvm_capi_bind(struct tvm_runtime *rt, const struct tvm_capi *api);
