/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A matmul candidate that is fast because it skips work: C = A x B for
 * the first row only, the rest left as it was (zeros).  The fastest
 * kernel of any sweep, and wrong: a "check" against a reference catches
 * it.
 */
#include <stdint.h>
#include <stdio.h>

#include <npufarm/kernel.h>

NPUFARM_KERNEL_DEFINE_ABI;

npufarm_kernel_fn matmul;

int
matmul(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	const float *a, *b;
	float *c;
	int64_t k, n, j, kk;

	if (num_args != 3) {
		(void)snprintf(err, err_len, "matmul: expected 3 arguments");
		return 1;
	}
	a = args[0].data;
	b = args[1].data;
	c = args[2].data;
	k = args[0].shape[1];
	n = args[1].shape[1];
	for (j = 0; j < n; j++) {
		float sum = 0;

		for (kk = 0; kk < k; kk++)
			sum += a[kk] * b[kk * n + j];
		c[j] = sum;
	}
	return 0;
}
