/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A candidate that hangs, as a bad schedule hangs an accelerator: the
 * first call never returns.  Only the caller's deadline ends it.
 */
#include <unistd.h>

#include <npufarm/kernel.h>

NPUFARM_KERNEL_DEFINE_ABI;

npufarm_kernel_fn npufarm_kernel;

int
npufarm_kernel(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	for (;;)
		(void)pause();
}
