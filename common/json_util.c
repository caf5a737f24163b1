/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsing with a nesting limit checked before jansson builds anything, and
 * serialisation that matches CPython's json.dumps() defaults byte for byte
 * (", " and ": " separators, non-ASCII escaped), which is what TVM's Python
 * peers send and what the spec's vectors contain.
 */
#include "config.h"

#include "json_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "frame.h"

/*
 * Scan @buf for the deepest nesting of arrays/objects outside strings.
 * Returns 0 if it stays within @max_depth, -E2BIG as soon as it exceeds it.
 * Malformed text is left for the parser to report.
 */
int
json_util_depth(const char *buf, size_t len, int max_depth)
{
	bool in_str = false, esc = false;
	int depth = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char ch = buf[i];

		if (in_str) {
			if (esc)
				esc = false;
			else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				in_str = false;
			continue;
		}
		switch (ch) {
		case '"':
			in_str = true;
			break;
		case '[':
		case '{':
			if (++depth > max_depth)
				return -E2BIG;
			break;
		case ']':
		case '}':
			depth--;
			break;
		default:
			break;
		}
	}
	return 0;
}

/*
 * Parse @len bytes (not NUL-terminated) into a new reference stored in
 * *ret_root.  Rejects nesting deeper than @max_depth (-E2BIG), duplicate
 * object keys and invalid JSON (-EBADMSG), with the position in @err.
 */
int
json_util_load(const char *buf, size_t len, int max_depth, json_t **ret_root,
    struct npufarm_err *err)
{
	json_error_t jerr;
	json_t *root;

	if (json_util_depth(buf, len, max_depth) < 0)
		return err_set(err, -E2BIG, "JSON nested deeper than %d levels",
		    max_depth);
	root = json_loadb(
	    buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL)
		return err_set(err, -EBADMSG,
		    "invalid JSON at line %d column %d: %s", jerr.line,
		    jerr.column, jerr.text);
	*ret_root = root;
	return 0;
}

/*
 * Serialise @v the way CPython's json.dumps(v) does by default.  Returns a
 * malloc'd NUL-terminated string owned by the caller, or NULL on OOM.
 * Object keys keep insertion order (jansson >= 2.8).
 */
char *
json_util_dumps_py(const json_t *v)
{
	char *s, *p;

	s = json_dumps(v, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
	if (s == NULL)
		return NULL;
	/* jansson writes \u00E9, CPython \u00e9: lowercase the hex digits of
	 * every \u escape (an escaped backslash is skipped as a pair). */
	for (p = s; *p != '\0'; p++) {
		int i;

		if (*p != '\\')
			continue;
		if (p[1] == 'u')
			for (i = 2; i < 6 && p[i] != '\0'; i++)
				if (p[i] >= 'A' && p[i] <= 'F')
					p[i] = (char)(p[i] - 'A' + 'a');
		p++; /* skip the escaped character */
	}
	return s;
}

/*
 * Append @v as one compact JSON frame (the agent link's encoding) to @out.
 * Takes ownership of @v, which may be NULL (a failed json_pack): then
 * -ENOMEM.  Returns 0, -ENOMEM or -EMSGSIZE.
 */
int
json_util_add_frame(struct evbuffer *out, json_t *v)
{
	char *s;
	int r;

	if (v == NULL)
		return -ENOMEM;
	s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (s == NULL)
		return -ENOMEM;
	r = frame_add(out, s, strlen(s));
	free(s);
	return r;
}

/* RFC 3339 UTC with microseconds of wall-clock @us, or JSON null for 0. */
json_t *
json_util_time(int64_t us)
{
	char buf[64];
	struct tm tm;
	time_t s;

	if (us == 0)
		return json_null();
	s = (time_t)(us / 1000000);
	gmtime_r(&s, &tm);
	(void)snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (int)(us % 1000000));
	return json_string(buf);
}

/* Seconds from @from_us to @to_us, or null if either is 0. */
json_t *
json_util_seconds(int64_t from_us, int64_t to_us)
{
	if (from_us == 0 || to_us == 0)
		return json_null();
	return json_real((double)(to_us - from_us) / 1e6);
}

/* A string, or null for NULL. */
json_t *
json_util_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/*
 * @v as a JSON integer when it is one (what a user wrote as 5 comes back
 * as 5, not 5.0), else as a real.  A new reference, NULL when out of
 * memory.
 */
json_t *
json_util_number(double v)
{
	if (v == v && v >= -9007199254740992.0 && v <= 9007199254740992.0 &&
	    v == (double)(json_int_t)v)
		return json_integer((json_int_t)v);
	return json_real(v);
}
