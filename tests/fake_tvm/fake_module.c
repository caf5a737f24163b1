/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny operator module, as a tuner uploads and loads in a session: one
 * function in the module calling convention (spec tvm-c-runtime-api.md
 * §4) that uses the runtime's error API.  It is linked with -z now and
 * without the runtime, so dlopen() of it fails unless the runtime's
 * symbols are global: the agent must load libtvm_runtime.so with
 * RTLD_GLOBAL (spec §8), as TVM's own server does.
 */
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
