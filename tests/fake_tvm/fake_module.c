/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny operator module, as a tuner uploads and loads in a session: one
 * function in the module calling convention (spec tvm-c-runtime-api.md
 * §4) that uses the runtime's error API.  It is linked with -z now and
 * without the runtime, so dlopen() of it fails unless the runtime's
 * symbols are global: the agent must load libtvm_runtime.so with
 * RTLD_GLOBAL (spec §8), as TVM's own server does.  Built with
 * FAKE_TVM_FFI it is the same function for a tvm-ffi runtime: the symbol
 * __tvm_ffi_npufarm_addone with the safe-call signature, raising its error
 * with TVMFFIErrorSetRaisedFromCStr (tvm-ffi-era.md §4.1, §4.6).
 */
#ifdef FAKE_TVM_FFI
#include "tvm_ffi_api.h"

int __tvm_ffi_npufarm_addone(
    void *self, const TVMFFIAny *args, int32_t n, TVMFFIAny *ret);

/* npufarm_addone(int x) -> x + 1; an error for anything else. */
int
__tvm_ffi_npufarm_addone(
    void *self, const TVMFFIAny *args, int32_t n, TVMFFIAny *ret)
{
	(void)self;
	if (n != 1 || args[0].type_index != kTVMFFIInt) {
		TVMFFIErrorSetRaisedFromCStr(
		    "TypeError", "npufarm_addone: expected one int");
		return -1;
	}
	ret->type_index = kTVMFFIInt;
	ret->small_str_len = 0;
	ret->v_int64 = args[0].v_int64 + 1;
	return 0;
}
#else
#include "tvm_c_api.h"

int npufarm_addone(TVMValue *args, int *codes, int n, TVMValue *ret,
    int *ret_code, void *unused);

/* npufarm_addone(int x) -> x + 1; an error for anything else. */
int
npufarm_addone(TVMValue *args, int *codes, int n, TVMValue *ret, int *ret_code,
    void *unused)
{
	(void)unused;
	if (n != 1 || codes[0] != kDLInt) {
		TVMAPISetLastError("npufarm_addone: expected one int");
		return -1;
	}
	ret->v_int64 = args[0].v_int64 + 1;
	*ret_code = kDLInt;
	return 0;
}
#endif
