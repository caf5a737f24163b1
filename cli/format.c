/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Duration and time formatting for the CLI's human output.  Pure functions
 * with no allocation, so they are unit-tested directly.
 *
 * Durations are rounded once, to the unit that will be shown, before the
 * unit is chosen: 0.0099996 s is "10ms", never "10.0ms" or "1000us".
 */
#include "config.h"

#include "format.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "xmalloc.h"

/* Beyond this (about 31,000 years) microseconds would overflow int64_t. */
#define FORMAT_MAX_SECONDS 1e12

/*
 * Write @seconds into @buf (of @len bytes, FORMAT_DURATION_MAX is enough)
 * in the shortest unit that keeps two or three significant digits, and
 * return @buf.  Negative, NaN and infinite values give "-".
 */
const char *
format_duration(double seconds, char *buf, size_t len)
{
	long long us, t, s, m, h;

	if (!isfinite(seconds) || seconds < 0 ||
	    seconds >= FORMAT_MAX_SECONDS) {
		(void)snprintf(buf, len, "-");
		return buf;
	}
	us = llround(seconds * 1e6);
	if (us < 1000) {
		(void)snprintf(buf, len, "%lldus", us);
		return buf;
	}
	t = (us + 50) / 100; /* tenths of a millisecond */
	if (t < 100) {
		(void)snprintf(buf, len, "%lld.%lldms", t / 10, t % 10);
		return buf;
	}
	t = (us + 500) / 1000; /* milliseconds */
	if (t < 1000) {
		(void)snprintf(buf, len, "%lldms", t);
		return buf;
	}
	t = (us + 50000) / 100000; /* tenths of a second */
	if (t < 600) {
		(void)snprintf(buf, len, "%lld.%llds", t / 10, t % 10);
		return buf;
	}
	s = (us + 500000) / 1000000;
	if (s < 3600) {
		(void)snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
		return buf;
	}
	m = (s + 30) / 60;
	if (m < 24 * 60) {
		(void)snprintf(buf, len, "%lldh%02lldm", m / 60, m % 60);
		return buf;
	}
	h = (m + 30) / 60;
	(void)snprintf(buf, len, "%lldd%02lldh", h / 24, h % 24);
	return buf;
}

/* Parse exactly @n decimal digits at *@p, advancing it. */
static int
format_digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (; n > 0; n--, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -EINVAL;
		v = v * 10 + (**p - '0');
	}
	*ret = v;
	return 0;
}

/*
 * Parse an RFC 3339 time as the API writes it ("2026-11-24T22:01:02.123456Z";
 * any fraction length, "Z" or a "+hh:mm"/"-hh:mm" offset) into microseconds
 * since the epoch.  Returns 0, or -EINVAL with @err filled.
 */
int
format_parse_time(const char *s, int64_t *ret_us, struct npufarm_err *err)
{
	const char *p = s;
	int year, mon, mday, hour, min, sec, oh, om, sign;
	int64_t frac = 0, scale = 1000000;
	struct tm tm;
	time_t t;

	if (format_digits(&p, 4, &year) < 0 || *p++ != '-' ||
	    format_digits(&p, 2, &mon) < 0 || *p++ != '-' ||
	    format_digits(&p, 2, &mday) < 0 || (*p != 'T' && *p != 't'))
		goto fail;
	p++;
	if (format_digits(&p, 2, &hour) < 0 || *p++ != ':' ||
	    format_digits(&p, 2, &min) < 0 || *p++ != ':' ||
	    format_digits(&p, 2, &sec) < 0)
		goto fail;
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			goto fail;
		for (; isdigit((unsigned char)*p); p++) {
			if (scale > 1) {
				scale /= 10;
				frac += (*p - '0') * scale;
			}
		}
	}
	if (mon < 1 || mon > 12 || mday < 1 || mday > 31 || hour > 23 ||
	    min > 59 || sec > 60)
		goto fail;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = mday;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (format_digits(&p, 2, &oh) < 0 || *p++ != ':' ||
		    format_digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
			goto fail;
		t -= sign * (oh * 3600 + om * 60);
	} else {
		goto fail;
	}
	if (*p != '\0')
		goto fail;
	*ret_us = (int64_t)t * 1000000 + frac;
	return 0;
fail:
	return err_set(err, -EINVAL, "not an RFC 3339 time: '%.40s'", s);
}

/*
 * Write how long before @now_us the time @then_us was, as "3.2s ago", into
 * @buf and return it.  A time in the future (clock skew between this host
 * and the broker) reads "just now" rather than a negative age.
 */
const char *
format_age(int64_t then_us, int64_t now_us, char *buf, size_t len)
{
	char d[FORMAT_DURATION_MAX];

	if (then_us >= now_us) {
		(void)snprintf(buf, len, "just now");
		return buf;
	}
	(void)snprintf(buf, len, "%s ago",
	    format_duration((double)(now_us - then_us) / 1e6, d, sizeof(d)));
	return buf;
}

/*
 * A copy of @s, owned by the caller, with control characters (C0 and DEL)
 * written as "\xNN" so that peer text cannot move the terminal's cursor.
 * Other bytes, UTF-8 included, pass through.  Never returns NULL.
 */
char *
format_escape(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0, i, o = 0;
	char *d;

	for (i = 0; s[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)s[i];

		n += (ch < 0x20 || ch == 0x7f) ? 4 : 1;
	}
	d = xmalloc(n + 1);
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f) {
			d[o++] = '\\';
			d[o++] = 'x';
			d[o++] = hex[ch >> 4];
			d[o++] = hex[ch & 15];
		} else {
			d[o++] = (char)ch;
		}
	}
	d[o] = '\0';
	return d;
}
