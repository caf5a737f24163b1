/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DLPack dtypes, sizes and host tensors (see dlpack_util.h).  Supported
 * element types are those a tuning task can describe without ambiguity:
 * int and uint of 8, 16, 32 and 64 bits, float of 16, 32 and 64 bits and
 * bfloat16, each optionally with lanes.  Values are stored with typed
 * stores, so a seed yields the same values whatever the byte order.
 */
#include "config.h"

#include "dlpack_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Base names by DLDataTypeCode, and the bit widths each accepts. */
static const struct {
	const char *name;
	uint8_t code;
	uint8_t bits[4]; /* 0-terminated */
} dtype_bases[] = {
    /* "bfloat" before "float": matched as prefixes, longest first. */
    {"bfloat", kDLBfloat, {16, 0}},
    {"float", kDLFloat, {16, 32, 64, 0}},
    {"uint", kDLUInt, {8, 16, 32, 64}},
    {"int", kDLInt, {8, 16, 32, 64}},
};

#define DTYPE_BASES (sizeof(dtype_bases) / sizeof(dtype_bases[0]))

/* Parse a decimal without sign or leading zero; -1 when it is none. */
static long
parse_small_uint(const char *s, const char **ret_end)
{
	long v = 0;

	if (*s < '1' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (*s++ - '0');
		if (v > 100000)
			return -1;
	}
	*ret_end = s;
	return v;
}

/*
 * Parse a dtype string as TVM writes it: a base ("int", "uint", "float",
 * "bfloat"), the bits, and an optional "xLANES" ("float32x4").  Returns 0
 * with @ret_dtype filled, or -EINVAL for anything else (unknown base,
 * unsupported width, lanes outside 1..DLPACK_UTIL_MAX_LANES, trailing
 * characters).
 */
int
dlpack_util_dtype_parse(const char *s, DLDataType *ret_dtype)
{
	const char *p;
	long bits, lanes = 1;
	size_t i, j, n;

	for (i = 0; i < DTYPE_BASES; i++) {
		n = strlen(dtype_bases[i].name);
		if (strncmp(s, dtype_bases[i].name, n) == 0)
			break;
	}
	if (i == DTYPE_BASES)
		return -EINVAL;
	bits = parse_small_uint(s + n, &p);
	if (bits < 0)
		return -EINVAL;
	for (j = 0; j < 4 && dtype_bases[i].bits[j] != 0; j++)
		if (dtype_bases[i].bits[j] == bits)
			break;
	if (j == 4 || dtype_bases[i].bits[j] == 0)
		return -EINVAL;
	if (*p == 'x') {
		lanes = parse_small_uint(p + 1, &p);
		if (lanes < 1 || lanes > DLPACK_UTIL_MAX_LANES)
			return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	ret_dtype->code = dtype_bases[i].code;
	ret_dtype->bits = (uint8_t)bits;
	ret_dtype->lanes = (uint16_t)lanes;
	return 0;
}

/*
 * Write the string for @dtype into @buf (capacity @len; at least
 * DLPACK_UTIL_DTYPE_MAX always suffices): "float32", "int8x4".  Returns 0,
 * -EINVAL for a dtype dlpack_util_dtype_parse() would not accept, or
 * -ENOSPC when @buf is too small.
 */
int
dlpack_util_dtype_format(DLDataType dtype, char *buf, size_t len)
{
	char tmp[DLPACK_UTIL_DTYPE_MAX];
	DLDataType back;
	size_t i;
	int n;

	for (i = 0; i < DTYPE_BASES; i++)
		if (dtype_bases[i].code == dtype.code)
			break;
	if (i == DTYPE_BASES)
		return -EINVAL;
	if (dtype.lanes == 1)
		n = snprintf(tmp, sizeof(tmp), "%s%u", dtype_bases[i].name,
		    (unsigned)dtype.bits);
	else
		n = snprintf(tmp, sizeof(tmp), "%s%ux%u", dtype_bases[i].name,
		    (unsigned)dtype.bits, (unsigned)dtype.lanes);
	if (n < 0 || (size_t)n >= sizeof(tmp) ||
	    dlpack_util_dtype_parse(tmp, &back) < 0)
		return -EINVAL;
	if ((size_t)n >= len)
		return -ENOSPC;
	memcpy(buf, tmp, (size_t)n + 1);
	return 0;
}

/* True for float and bfloat dtypes. */
bool
dlpack_util_dtype_is_float(DLDataType dtype)
{
	return dtype.code == kDLFloat || dtype.code == kDLBfloat;
}

/*
 * The byte size of a compact tensor of @dtype and @shape (@ndim
 * dimensions; 0 is a scalar): the product of the dimensions times
 * (bits * lanes + 7) / 8, as DLPack defines it.  Returns 0 with
 * @ret_nbytes set, -EINVAL for a negative dimension or @ndim, or
 * -EOVERFLOW when the size does not fit in 64 bits.
 */
int
dlpack_util_nbytes(
    DLDataType dtype, const int64_t *shape, int ndim, uint64_t *ret_nbytes)
{
	uint64_t n = ((uint64_t)dtype.bits * dtype.lanes + 7) / 8;
	int i;

	if (ndim < 0)
		return -EINVAL;
	for (i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return -EINVAL;
		if (__builtin_mul_overflow(n, (uint64_t)shape[i], &n))
			return -EOVERFLOW;
	}
	*ret_nbytes = n;
	return 0;
}

/*
 * Allocate zeroed host memory for a compact tensor into @t: data aligned
 * to DLPACK_UTIL_ALIGN, device kDLCPU, no strides, @shape borrowed (it
 * must outlive @t).  Release with dlpack_util_tensor_free().  Returns 0,
 * -EINVAL/-EOVERFLOW as dlpack_util_nbytes(), or -ENOMEM; @err says which
 * and how many bytes.  @t is untouched on failure.
 */
int
dlpack_util_tensor_alloc(DLTensor *t, DLDataType dtype, int64_t *shape,
    int ndim, struct npufarm_err *err)
{
	uint64_t nbytes, rounded;
	void *data;
	int r;

	r = dlpack_util_nbytes(dtype, shape, ndim, &nbytes);
	if (r < 0)
		return err_set(err, r, "tensor size: %s", strerror(-r));
	/* aligned_alloc() wants a multiple of the alignment, and a kernel
	 * may probe a zero-size tensor's data: never hand out NULL. */
	rounded = (nbytes + DLPACK_UTIL_ALIGN - 1) &
		  ~(uint64_t)(DLPACK_UTIL_ALIGN - 1);
	if (rounded < nbytes || rounded > SIZE_MAX)
		return err_set(err, -EOVERFLOW, "tensor of %llu bytes",
		    (unsigned long long)nbytes);
	if (rounded == 0)
		rounded = DLPACK_UTIL_ALIGN;
	data = aligned_alloc(DLPACK_UTIL_ALIGN, (size_t)rounded);
	if (data == NULL)
		return err_set(err, -ENOMEM,
		    "out of memory allocating %llu bytes",
		    (unsigned long long)nbytes);
	memset(data, 0, (size_t)rounded);
	memset(t, 0, sizeof(*t));
	t->data = data;
	t->device.device_type = kDLCPU;
	t->device.device_id = 0;
	t->ndim = ndim;
	t->dtype = dtype;
	t->shape = shape;
	t->strides = NULL;
	t->byte_offset = 0;
	return 0;
}

/* Free @t's data (NULL is fine) and clear the pointer; shape is borrowed. */
void
dlpack_util_tensor_free(DLTensor *t)
{
	free(t->data);
	t->data = NULL;
}

static uint64_t tensor_values(const DLTensor *t);

/* How many scalar values (elements times lanes) @t holds. */
uint64_t
dlpack_util_values(const DLTensor *t)
{
	return tensor_values(t);
}

/* The low @bits of value @i of an array of that width. */
static uint64_t
load_bits(const void *data, uint64_t i, int bits)
{
	switch (bits) {
	case 8:
		return ((const uint8_t *)data)[i];
	case 16:
		return ((const uint16_t *)data)[i];
	case 32:
		return ((const uint32_t *)data)[i];
	default:
		return ((const uint64_t *)data)[i];
	}
}

/* The float that IEEE binary16 bits @h stand for. */
static double
half_value(uint16_t h)
{
	int exp = (h >> 10) & 0x1f;
	double mant = h & 0x3ff, v;

	if (exp == 0x1f)
		v = mant != 0 ? NAN : INFINITY;
	else if (exp == 0)
		v = ldexp(mant, -24);
	else
		v = ldexp(mant + 1024, exp - 25);
	return (h & 0x8000) != 0 ? -v : v;
}

/*
 * Value @i (below dlpack_util_values()) of the host tensor @t as a double:
 * exact for every float dtype and for integers up to 2^53.
 */
double
dlpack_util_value(const DLTensor *t, uint64_t i)
{
	uint64_t b = load_bits(t->data, i, t->dtype.bits);
	int bits = t->dtype.bits;
	uint32_t u32;
	float f;
	double d;

	if (t->dtype.code == kDLBfloat) {
		u32 = (uint32_t)b << 16;
		memcpy(&f, &u32, sizeof(f));
		return f;
	}
	if (t->dtype.code == kDLFloat) {
		if (bits == 16)
			return half_value((uint16_t)b);
		if (bits == 32) {
			u32 = (uint32_t)b;
			memcpy(&f, &u32, sizeof(f));
			return f;
		}
		memcpy(&d, &b, sizeof(d));
		return d;
	}
	if (t->dtype.code == kDLUInt || bits >= 64)
		return t->dtype.code == kDLUInt ? (double)b
						: (double)(int64_t)b;
	/* Sign-extend a narrower int. */
	return (double)((int64_t)(b << (64 - bits)) >> (64 - bits));
}

/* How many scalar values (elements times lanes) @t holds. */
static uint64_t
tensor_values(const DLTensor *t)
{
	uint64_t n = t->dtype.lanes;
	int i;

	for (i = 0; i < t->ndim; i++)
		n *= (uint64_t)t->shape[i];
	return n;
}

/* Store the low @bits of @v as value @i of an array of that width. */
static void
store_bits(void *data, uint64_t i, int bits, uint64_t v)
{
	switch (bits) {
	case 8:
		((uint8_t *)data)[i] = (uint8_t)v;
		break;
	case 16:
		((uint16_t *)data)[i] = (uint16_t)v;
		break;
	case 32:
		((uint32_t *)data)[i] = (uint32_t)v;
		break;
	default:
		((uint64_t *)data)[i] = v;
		break;
	}
}

/* IEEE binary16 bits of @f, rounded to nearest even. */
static uint16_t
half_bits(float f)
{
	uint32_t x, mant, sign, round;
	int exp;

	memcpy(&x, &f, sizeof(x));
	sign = (x >> 16) & 0x8000;
	exp = (int)((x >> 23) & 0xff) - 127 + 15;
	mant = x & 0x7fffff;
	if (((x >> 23) & 0xff) == 0xff) /* inf, nan */
		return (uint16_t)(sign | 0x7c00 | (mant != 0 ? 0x200 : 0));
	if (exp >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (exp <= 0) {
		if (exp < -10)
			return (uint16_t)sign;
		mant |= 0x800000;
		round = 14 - exp; /* bits to drop */
		x = mant >> round;
		if ((mant >> (round - 1) & 1) != 0 &&
		    ((mant & ((1u << (round - 1)) - 1)) != 0 || (x & 1) != 0))
			x++;
		return (uint16_t)(sign | x);
	}
	x = ((uint32_t)exp << 10) | (mant >> 13);
	if ((mant & 0x1000) != 0 && ((mant & 0xfff) != 0 || (x & 1) != 0))
		x++; /* may carry into the exponent, which is still right */
	return (uint16_t)(sign | x);
}

/* bfloat16 bits of @f, rounded to nearest even. */
static uint16_t
bfloat_bits(float f)
{
	uint32_t x;

	memcpy(&x, &f, sizeof(x));
	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

/* The bit pattern of @v in float dtype @dtype. */
static uint64_t
float_bits(DLDataType dtype, double v)
{
	float f = (float)v;
	uint32_t u32;
	uint64_t u64;

	if (dtype.code == kDLBfloat)
		return bfloat_bits(f);
	switch (dtype.bits) {
	case 16:
		return half_bits(f);
	case 32:
		memcpy(&u32, &f, sizeof(u32));
		return u32;
	default:
		memcpy(&u64, &v, sizeof(u64));
		return u64;
	}
}

/* splitmix64: small, fast, and the same sequence everywhere. */
static uint64_t
splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Fill every value of the host tensor @t (from dlpack_util_tensor_alloc(),
 * dtype accepted by dlpack_util_dtype_parse()) with zeros, ones, or values
 * drawn from splitmix64 seeded with @seed: integers take the top bits of
 * each draw (uniform over the type), floats are uniform in [-1, 1).
 */
void
dlpack_util_fill(const DLTensor *t, enum dlpack_util_fill fill, uint64_t seed)
{
	uint64_t i, n = tensor_values(t), one, r;
	bool is_float = dlpack_util_dtype_is_float(t->dtype);
	int bits = t->dtype.bits;
	double v;

	switch (fill) {
	case DLPACK_UTIL_FILL_ONES:
		one = is_float ? float_bits(t->dtype, 1.0) : 1;
		for (i = 0; i < n; i++)
			store_bits(t->data, i, bits, one);
		break;
	case DLPACK_UTIL_FILL_RANDOM:
		for (i = 0; i < n; i++) {
			r = splitmix64(&seed);
			if (is_float) {
				/* 53 random bits: exact in a double. */
				v = (double)(r >> 11) * 0x1p-52 - 1.0;
				store_bits(
				    t->data, i, bits, float_bits(t->dtype, v));
			} else {
				store_bits(t->data, i, bits, r >> (64 - bits));
			}
		}
		break;
	default:
		memset(t->data, 0, (size_t)(n * (uint64_t)(bits / 8)));
		break;
	}
}

/*
 * Set every value of the integer tensor @t to @v, truncated to the width
 * (callers check the range first, as task_spec.c does).
 */
void
dlpack_util_fill_int(const DLTensor *t, int64_t v)
{
	uint64_t i, n = tensor_values(t);

	for (i = 0; i < n; i++)
		store_bits(t->data, i, t->dtype.bits, (uint64_t)v);
}

/* Set every value of the float tensor @t to @v, rounded to the type. */
void
dlpack_util_fill_float(const DLTensor *t, double v)
{
	uint64_t i, n = tensor_values(t), b = float_bits(t->dtype, v);

	for (i = 0; i < n; i++)
		store_bits(t->data, i, t->dtype.bits, b);
}
