/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Human renderings of the API's numbers: durations in seconds become
 * "120us", "3.2ms", "1.5s", "2m03s"; RFC 3339 times become ages; text from
 * peers is made safe for a terminal.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct npufarm_err;

/* Room for any format_duration() result, e.g. "106751991d04h". */
#define FORMAT_DURATION_MAX 32

const char *format_duration(double seconds, char *buf, size_t len);
int format_parse_time(const char *s, int64_t *ret_us, struct npufarm_err *err);
const char *format_age(int64_t then_us, int64_t now_us, char *buf, size_t len);
char *format_escape(const char *s);
