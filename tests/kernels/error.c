/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A candidate that reports an error through the channel, as a vendor
 * operator library refuses a configuration.
 */
#include <stdio.h>

#include <npufarm/kernel.h>

NPUFARM_KERNEL_DEFINE_ABI;

npufarm_kernel_fn npufarm_kernel;

int
npufarm_kernel(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	(void)snprintf(err, err_len,
	    "NPU_ERR_UNSUPPORTED: tile 48 does not fit the 32 KiB scratchpad");
	return -1;
}
