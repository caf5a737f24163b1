/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A candidate with 600 KiB of constant data, as kernels with weights or
 * lookup tables have: its artifact takes several chunks to reach an agent.
 */
#include <npufarm/kernel.h>

NPUFARM_KERNEL_DEFINE_ABI;

npufarm_kernel_fn npufarm_kernel;

/* Not all zero, so that it lands in the file, not in .bss. */
#define BIG_TABLE (600 * 1024)
static const unsigned char table[BIG_TABLE] = {1, 2, 3};

int
npufarm_kernel(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	const volatile unsigned char *t = table;

	return t[0] == 1 && t[BIG_TABLE - 1] == 0 ? 0 : 1;
}
