/* SPDX-License-Identifier: Apache-2.0 */
/* Clock and command-line helpers for the bench/ programs. */
#include "config.h"

#include "bench_util.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t
bench_now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Parse the decimal value @s of option @opt into *ret, which must lie in
 * [@min, @max].  Returns 0, or -EINVAL after logging what was wrong.
 */
int
bench_ulong(const char *opt, const char *s, unsigned long min,
    unsigned long max, unsigned long *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < min ||
	    v > max) {
		log_err("%s: expected an integer in %lu..%lu, got '%s'", opt,
		    min, max, s);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}
