/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A probe kernel (npufarm-agent --probe-kernel) that fails while the file
 * named by $NPUFARM_TEST_PROBE_FAIL exists, and passes otherwise: a board
 * that is broken until a test repairs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <npufarm/kernel.h>

NPUFARM_KERNEL_DEFINE_ABI;

npufarm_kernel_fn npufarm_kernel;

int
npufarm_kernel(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	const char *flag = getenv("NPUFARM_TEST_PROBE_FAIL");

	if (flag != NULL && access(flag, F_OK) == 0) {
		(void)snprintf(
		    err, err_len, "the accelerator is broken (%s)", flag);
		return 1;
	}
	return 0;
}
