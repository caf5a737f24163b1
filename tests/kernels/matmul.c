/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A blocked matmul candidate, C = A x B in float32, with the tile size
 * fixed at build time (-DMATMUL_TILE=16): meson builds several, as a tuner
 * would, and the kernel runner times them.  Arguments: A [M, K], B [K, N],
 * C [M, N]; anything else is reported through the error channel.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <npufarm/kernel.h>

#ifndef MATMUL_TILE
#error "build with -DMATMUL_TILE=N"
#endif

NPUFARM_KERNEL_DEFINE_ABI;

npufarm_kernel_fn matmul;

/* Is @t a 2-d float32 tensor? */
static int
is_matrix(const DLTensor *t)
{
	return t->ndim == 2 && t->dtype.code == kDLFloat &&
	       t->dtype.bits == 32 && t->dtype.lanes == 1 && t->strides == NULL;
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

int
matmul(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	const float *a, *b;
	float *c;
	int64_t m, n, k, i0, j0, k0, i, j, kk;

	if (num_args != 3) {
		(void)snprintf(err, err_len,
		    "matmul: expected 3 arguments (A, B, C), got %d", num_args);
		return 1;
	}
	if (!is_matrix(&args[0]) || !is_matrix(&args[1]) ||
	    !is_matrix(&args[2])) {
		(void)snprintf(
		    err, err_len, "matmul: A, B and C must be 2-d float32");
		return 1;
	}
	m = args[0].shape[0];
	k = args[0].shape[1];
	n = args[1].shape[1];
	if (args[1].shape[0] != k || args[2].shape[0] != m ||
	    args[2].shape[1] != n) {
		(void)snprintf(err, err_len,
		    "matmul: shapes do not chain: A %lldx%lld, B %lldx%lld, "
		    "C %lldx%lld",
		    (long long)m, (long long)k, (long long)args[1].shape[0],
		    (long long)n, (long long)args[2].shape[0],
		    (long long)args[2].shape[1]);
		return 1;
	}
	a = args[0].data;
	b = args[1].data;
	c = args[2].data;
	memset(c, 0, (size_t)(m * n) * sizeof(float));
	for (i0 = 0; i0 < m; i0 += MATMUL_TILE)
		for (k0 = 0; k0 < k; k0 += MATMUL_TILE)
			for (j0 = 0; j0 < n; j0 += MATMUL_TILE)
				for (i = i0; i < min64(i0 + MATMUL_TILE, m);
				     i++)
					for (kk = k0;
					     kk < min64(k0 + MATMUL_TILE, k);
					     kk++) {
						float av = a[i * k + kk];

						for (j = j0;
						     j <
						     min64(j0 + MATMUL_TILE, n);
						     j++)
							c[i * n + j] +=
							    av * b[kk * n + j];
					}
	return 0;
}
