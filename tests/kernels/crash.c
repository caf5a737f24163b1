/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A candidate that crashes: a store through a wild pointer, a real
 * SIGSEGV (not raise()).  Not instrumented, so that a sanitizer build
 * still dies of the signal rather than reporting first.
 */
#include <stdint.h>

#include <npufarm/kernel.h>

NPUFARM_KERNEL_DEFINE_ABI;

npufarm_kernel_fn npufarm_kernel;

__attribute__((no_sanitize("address", "undefined"))) int
npufarm_kernel(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	/* Volatile, so the compiler cannot see the address coming. */
	volatile uintptr_t wild = 16;

	*(volatile int *)wild = 1;
	return 0;
}
