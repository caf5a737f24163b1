/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging to stderr with syslog level prefixes.  A message is formatted into
 * one buffer and written with one write(2), so lines from concurrent
 * processes sharing stderr do not interleave.
 */
#include "config.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static int log_level = LOG_NOTICE;

/* Messages above @level are dropped.  Called once at start-up. */
void
log_set_level(int level)
{
	log_level = level;
}

/* The current verbosity (a syslog level). */
int
log_get_level(void)
{
	return log_level;
}

/* Format and write one log line if @level is enabled. */
void
log_msg(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n, m;

	if (level > log_level)
		return;
	n = snprintf(line, sizeof(line), "<%d>", level);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

/*
 * Copy peer-controlled text for a log line, escaping control characters,
 * backslashes and quotes as \xNN.  Always NUL-terminates @dst (when
 * @dstlen > 0) and truncates safely.  Returns the length written.
 */
size_t
log_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	if (dstlen == 0)
		return 0;
	for (i = 0; i < srclen; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'') {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = (char)ch;
		} else {
			if (o + 4 >= dstlen)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[ch >> 4];
			dst[o++] = hex[ch & 15];
		}
	}
	dst[o] = '\0';
	return o;
}

/* See log.h. */
bool
log_limit_pass(struct log_limit *l, unsigned long *quiet)
{
	time_t now = time(NULL);

	if (now == l->sec) {
		l->quiet++;
		return false;
	}
	l->sec = now;
	if (quiet != NULL)
		*quiet = l->quiet;
	l->quiet = 0;
	return true;
}
