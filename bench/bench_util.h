/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by the bench/ programs (tvm-sim and the load tool). */
#pragma once

#include <stdint.h>

int64_t bench_now_ns(void);
int bench_ulong(const char *opt, const char *s, unsigned long min,
    unsigned long max, unsigned long *ret);
long bench_rss_kib(long pid);
