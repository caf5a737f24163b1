/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DLPack helpers shared by the broker (validation) and the agent (the
 * kernel runner): dtype strings as TVM spells them ("float32", "int8",
 * "bfloat16", "float32x4") to and from DLDataType, tensor byte sizes with
 * overflow checks, and host tensors allocated and filled the same way on
 * every agent (the random fill is a fixed generator of the seed, so a
 * candidate sees the same data on every board).  Nothing here logs.
 */
#pragma once

#include <dlpack/dlpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct npufarm_err;

/* Longest dtype string dlpack_util_dtype_format() writes, with its NUL. */
#define DLPACK_UTIL_DTYPE_MAX 24

/* Most lanes a vector dtype may have ("float32x256"). */
#define DLPACK_UTIL_MAX_LANES 256

/* Alignment of tensor data, as DLPack promises its consumers. */
#define DLPACK_UTIL_ALIGN 256

/* How a tensor's elements are initialised. */
enum dlpack_util_fill {
	DLPACK_UTIL_FILL_ZEROS,
	DLPACK_UTIL_FILL_ONES,
	DLPACK_UTIL_FILL_RANDOM, /* ints: uniform over the type's range;
				  * floats: uniform in [-1, 1) */
	DLPACK_UTIL_FILL_MAX,
};

int dlpack_util_dtype_parse(const char *s, DLDataType *ret_dtype);
int dlpack_util_dtype_format(DLDataType dtype, char *buf, size_t len);
bool dlpack_util_dtype_is_float(DLDataType dtype);
int dlpack_util_nbytes(
    DLDataType dtype, const int64_t *shape, int ndim, uint64_t *ret_nbytes);
int dlpack_util_tensor_alloc(DLTensor *t, DLDataType dtype, int64_t *shape,
    int ndim, struct npufarm_err *err);
void dlpack_util_tensor_free(DLTensor *t);
void dlpack_util_fill(
    const DLTensor *t, enum dlpack_util_fill fill, uint64_t seed);
void dlpack_util_fill_int(const DLTensor *t, int64_t v);
void dlpack_util_fill_float(const DLTensor *t, double v);
uint64_t dlpack_util_values(const DLTensor *t);
double dlpack_util_value(const DLTensor *t, uint64_t i);
