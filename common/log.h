/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One line per event on stderr, prefixed "<N>" with the syslog level so that
 * journald classifies it.  The verbosity is the only global state.
 */
#pragma once

#include <stddef.h>
#include <syslog.h>

void log_set_level(int level);
int log_get_level(void);
void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

#define log_err(...)    log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                   \
	do {                                             \
		if (log_get_level() >= LOG_DEBUG)        \
			log_msg(LOG_DEBUG, __VA_ARGS__); \
	} while (0)
