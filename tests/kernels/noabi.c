/* SPDX-License-Identifier: Apache-2.0 */
/* A library with an entry point but no ABI version: the agent refuses it. */
#include <stddef.h>

int npufarm_kernel(void *args, int num_args, char *err, size_t err_len);

int
npufarm_kernel(void *args, int num_args, char *err, size_t err_len)
{
	return 0;
}
