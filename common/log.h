/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One line per event on stderr, prefixed "<N>" with the syslog level so that
 * journald classifies it.  The verbosity is the only global state.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>
#include <time.h>

void log_set_level(int level);
int log_get_level(void);
void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

/*
 * One source of lines a peer can provoke (refusals, complaints), written at
 * most once a second; the lines in between are only counted.  Zeroed is
 * ready.  Each source words its own "N more" line, so log lines stay as
 * they were.
 */
struct log_limit {
	time_t sec;          /* the second of the last line written */
	unsigned long quiet; /* lines left out since */
};

/*
 * May a line be written now?  If so, *@quiet (when not NULL) gets the
 * number left out since the last one, and the count restarts.
 */
bool log_limit_pass(struct log_limit *l, unsigned long *quiet);

#define log_err(...)    log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                   \
	do {                                             \
		if (log_get_level() >= LOG_DEBUG)        \
			log_msg(LOG_DEBUG, __VA_ARGS__); \
	} while (0)
