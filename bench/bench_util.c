/* SPDX-License-Identifier: Apache-2.0 */
/* Clock and command-line helpers for the bench/ programs. */
#include "config.h"

#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
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

/* VmRSS of process @pid in KiB, or -1 if it cannot be read. */
long
bench_rss_kib(long pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	(void)snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	(void)fclose(f);
	return kb;
}
