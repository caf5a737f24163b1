/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entry points that let test-runners see what the kernel runner does:
 * the arguments it builds, how often it calls, what it makes of an exit()
 * or of an error that comes only in the timed calls.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <npufarm/kernel.h>

NPUFARM_KERNEL_DEFINE_ABI;

npufarm_kernel_fn noop;
npufarm_kernel_fn spin_us;
npufarm_kernel_fn exit_zero;
npufarm_kernel_fn fail_third;
npufarm_kernel_fn silent_fail;
npufarm_kernel_fn describe;
npufarm_kernel_fn copy;
npufarm_kernel_fn count_copy;

/* Does nothing: the fastest kernel there is. */
int
noop(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	return 0;
}

/* Busy for args[0] (an int32 scalar) microseconds. */
int
spin_us(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	struct timespec t0, t;
	long us = *(const int32_t *)args[0].data;

	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		(void)clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000L +
		   (t.tv_nsec - t0.tv_nsec) / 1000 <
	       us);
	return 0;
}

/* Leaves the process as if all were well. */
int
exit_zero(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	exit(0);
}

/* Fine twice (the untimed call and the first timed one), then fails. */
int
fail_third(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	static int calls;

	if (++calls < 3)
		return 0;
	(void)snprintf(err, err_len, "failed on call %d", calls);
	return 7;
}

/* Fails without a word. */
int
silent_fail(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	return 3;
}

/*
 * Fails on purpose with a description of its arguments, which the test
 * reads back from the exception: per argument "dtype/ndim/shape/first
 * values;" with the first two values as integers or floats.
 */
int
describe(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	size_t off = 0;
	int i, d;

	for (i = 0; i < num_args && off < err_len; i++) {
		const DLTensor *t = &args[i];
		int n;

		n = snprintf(err + off, err_len - off, "%u.%u.%u/%d/",
		    t->dtype.code, t->dtype.bits, t->dtype.lanes, t->ndim);
		off += n > 0 ? (size_t)n : 0;
		for (d = 0; d < t->ndim && off < err_len; d++) {
			n = snprintf(err + off, err_len - off, "%lldx",
			    (long long)t->shape[d]);
			off += n > 0 ? (size_t)n : 0;
		}
		if (off >= err_len)
			break;
		if (t->dtype.code == kDLFloat && t->dtype.bits == 32)
			n = snprintf(err + off, err_len - off, "/%g",
			    (double)((const float *)t->data)[0]);
		else if (t->dtype.code == kDLFloat && t->dtype.bits == 64)
			n = snprintf(err + off, err_len - off, "/%g",
			    ((const double *)t->data)[0]);
		else if (t->dtype.bits == 8)
			n = snprintf(err + off, err_len - off, "/%d",
			    t->dtype.code == kDLInt
				? ((const int8_t *)t->data)[0]
				: ((const uint8_t *)t->data)[0]);
		else if (t->dtype.bits == 16)
			n = snprintf(err + off, err_len - off, "/0x%04x",
			    ((const uint16_t *)t->data)[0]);
		else if (t->dtype.bits == 32)
			n = snprintf(err + off, err_len - off, "/%d",
			    ((const int32_t *)t->data)[0]);
		else
			n = snprintf(err + off, err_len - off, "/%lld",
			    (long long)((const int64_t *)t->data)[0]);
		off += n > 0 ? (size_t)n : 0;
		if (off < err_len) {
			n = snprintf(err + off, err_len - off, "/%s;",
			    ((uintptr_t)t->data % 256) == 0 ? "aligned"
							    : "unaligned");
			off += n > 0 ? (size_t)n : 0;
		}
	}
	return 1;
}

/* args[1] = args[0], for float32 vectors of the same length. */
int
copy(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	memcpy(args[1].data, args[0].data, (size_t)args[0].shape[0] * 4);
	return 0;
}

/*
 * copy, as a reference that counts its runs: one byte appended to the file
 * $NPUFARM_TEST_REF_COUNT per call.
 */
int
count_copy(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	const char *path = getenv("NPUFARM_TEST_REF_COUNT");
	FILE *f = path != NULL ? fopen(path, "a") : NULL;

	if (f != NULL) {
		(void)fputc('x', f);
		(void)fclose(f);
	}
	return copy(args, num_args, err, err_len);
}
