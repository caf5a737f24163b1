/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM tracker codec.  Requests arrive as JSON arrays [code, args...]; we
 * accept what real peers send (the C++ server's string port, optional or
 * null custom_addr, any JSON number as priority) and reject everything else
 * with a message naming the element.  Replies are serialised like CPython's
 * json.dumps so TVM peers (and the spec's byte vectors) see identical bytes.
 */
#include "config.h"

#include "tvm_proto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <event2/buffer.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "frame.h"
#include "json_util.h"

static int
get_string(json_t *v, const char *what, size_t max, bool nullable,
    const char **ret, struct npufarm_err *err)
{
	size_t len;

	if (v == NULL || json_is_null(v)) {
		if (nullable) {
			*ret = NULL;
			return 0;
		}
		return err_set(err, -EINVAL, "%s: missing", what);
	}
	if (!json_is_string(v))
		return err_set(err, -EINVAL, "%s: expected a string", what);
	len = json_string_length(v);
	if (len > max)
		return err_set(err, -ENAMETOOLONG,
		    "%s: %zu bytes long, limit is %zu", what, len, max);
	if (memchr(json_string_value(v), '\0', len) != NULL)
		return err_set(err, -EINVAL, "%s: contains a NUL byte", what);
	*ret = json_string_value(v);
	return 0;
}

/* A port as a JSON integer or, from the C++ server, a decimal string. */
static int
get_port(json_t *v, const char *what, long *ret, struct npufarm_err *err)
{
	json_int_t n;

	if (json_is_integer(v)) {
		n = json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;

		if (*s < '0' || *s > '9')
			return err_set(
			    err, -EINVAL, "%s: not a port number", what);
		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno != 0 || *end != '\0')
			return err_set(
			    err, -EINVAL, "%s: not a port number", what);
	} else {
		return err_set(
		    err, -EINVAL, "%s: expected a port number", what);
	}
	if (n < 0 || n > 65535)
		return err_set(err, -ERANGE, "%s: port %lld out of range", what,
		    (long long)n);
	*ret = (long)n;
	return 0;
}

static int
parse_put(json_t *root, size_t max_key, struct tvm_tracker_msg *m,
    struct npufarm_err *err)
{
	json_t *slot = json_array_get(root, 2);
	int r;

	r = get_string(
	    json_array_get(root, 1), "PUT key", max_key, false, &m->key, err);
	if (r < 0)
		return r;
	if (!json_is_array(slot) || json_array_size(slot) != 2)
		return err_set(
		    err, -EINVAL, "PUT: element 2 must be [port, matchkey]");
	r = get_port(json_array_get(slot, 0), "PUT port", &m->port, err);
	if (r < 0)
		return r;
	r = get_string(json_array_get(slot, 1), "PUT matchkey", max_key, false,
	    &m->matchkey, err);
	if (r < 0)
		return r;
	return get_string(json_array_get(root, 3), "PUT custom_addr", max_key,
	    true, &m->custom_addr, err);
}

static int
parse_request(json_t *root, size_t max_key, struct tvm_tracker_msg *m,
    struct npufarm_err *err)
{
	json_t *user = json_array_get(root, 2);
	json_t *prio = json_array_get(root, 3);
	int r;

	r = get_string(json_array_get(root, 1), "REQUEST key", max_key, false,
	    &m->key, err);
	if (r < 0)
		return r;
	/* TVM ignores the user; we use it for fair share when it is a string.
	 */
	if (json_is_string(user)) {
		r = get_string(
		    user, "REQUEST user", max_key, false, &m->user, err);
		if (r < 0)
			return r;
	} else {
		m->user = "";
	}
	if (prio == NULL)
		m->priority = 0;
	else if (json_is_number(prio))
		m->priority = json_number_value(prio);
	else
		return err_set(
		    err, -EINVAL, "REQUEST priority: expected a number");
	return 0;
}

static int
parse_update_info(json_t *root, size_t max_key, struct tvm_tracker_msg *m,
    struct npufarm_err *err)
{
	json_t *info = json_array_get(root, 1);
	json_t *addr;
	int r;

	if (!json_is_object(info))
		return err_set(
		    err, -EINVAL, "UPDATE_INFO: element 1 must be an object");
	addr = json_object_get(info, "addr");
	if (!json_is_array(addr) || json_array_size(addr) != 2)
		return err_set(
		    err, -EINVAL, "UPDATE_INFO addr: expected [host, port]");
	r = get_string(json_array_get(addr, 0), "UPDATE_INFO addr[0]", max_key,
	    true, &m->info_host, err);
	if (r < 0)
		return r;
	r = get_port(
	    json_array_get(addr, 1), "UPDATE_INFO addr[1]", &m->port, err);
	if (r < 0)
		return r;
	if (json_object_get(info, "key") != NULL) {
		r = get_string(json_object_get(info, "key"), "UPDATE_INFO key",
		    max_key, false, &m->info_key, err);
		if (r < 0)
			return r;
	}
	m->info = info;
	return 0;
}

/*
 * Decode a tracker request.  @root is borrowed and must outlive @ret_msg.
 * Returns 0, or -EINVAL/-ENAMETOOLONG/-ERANGE with the offending element in
 * @err, or -EPROTO for an unknown code.  Does not log.
 */
int
tvm_tracker_parse(json_t *root, size_t max_key, struct tvm_tracker_msg *ret_msg,
    struct npufarm_err *err)
{
	struct tvm_tracker_msg m = {0};
	json_t *code;
	int r = 0;

	if (!json_is_array(root) || json_array_size(root) == 0)
		return err_set(err, -EINVAL,
		    "tracker message must be a non-empty JSON array");
	code = json_array_get(root, 0);
	if (!json_is_integer(code))
		return err_set(err, -EINVAL,
		    "tracker message element 0 must be an integer code");
	if (json_integer_value(code) < 1 ||
	    json_integer_value(code) > NPUFARM_TVM_GET_PENDING_MATCHKEYS)
		return err_set(err, -EPROTO, "unknown tracker code %lld",
		    (long long)json_integer_value(code));
	m.code = (int)json_integer_value(code);
	switch (m.code) {
	case NPUFARM_TVM_PUT:
		r = parse_put(root, max_key, &m, err);
		break;
	case NPUFARM_TVM_REQUEST:
		r = parse_request(root, max_key, &m, err);
		break;
	case NPUFARM_TVM_UPDATE_INFO:
		r = parse_update_info(root, max_key, &m, err);
		break;
	case NPUFARM_TVM_STOP:
		r = get_string(json_array_get(root, 1), "STOP key", max_key,
		    false, &m.stop_key, err);
		break;
	default:
		break;
	}
	if (r < 0)
		return r;
	*ret_msg = m;
	return 0;
}

/*
 * Append @v as one frame, serialised like CPython's json.dumps.  Returns 0
 * or -ENOMEM.
 */
int
tvm_tracker_add_json(struct evbuffer *out, const json_t *v)
{
	char *s;
	int r;

	s = json_util_dumps_py(v);
	if (s == NULL)
		return -ENOMEM;
	r = frame_add(out, s, strlen(s));
	free(s);
	return r;
}

/*
 * The fast path of tvm_tracker_parse() for the frames of a lease cycle,
 * decoded from the frame's bytes without building a jansson tree.  It
 * takes only a strict subset of JSON whose meaning is plain: REQUEST
 * [4, "key", "user", N] and PUT [3, "key", [PORT, "matchkey"], null or
 * "addr"] with N and PORT non-negative integers of a few digits without
 * leading zeros, and the bare codes [1], [6] and [7]; strings of
 * printable ASCII without escapes, none longer than the limit; JSON
 * whitespace anywhere between tokens.  Anything else, including every
 * error, is left to jansson and tvm_tracker_parse(), which decode what
 * this accepts to the same message (tests/unit/test-tvm-proto.c and
 * tests/fuzz/fuzz-tracker-codec.c compare the two).
 */
struct fast_scan {
	char *p;   /* the next byte, in the caller's copy of the frame */
	char *end; /* one past the last byte */
};

static void
fast_ws(struct fast_scan *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' ||
				    *f->p == '\n' || *f->p == '\r'))
		f->p++;
}

/* @ch, after optional whitespace; whether it was there. */
static bool
fast_char(struct fast_scan *f, char ch)
{
	fast_ws(f);
	if (f->p == f->end || *f->p != ch)
		return false;
	f->p++;
	return true;
}

/*
 * A non-negative integer of at most @digits digits without a leading
 * zero, followed by a byte that cannot continue a JSON number.
 */
static bool
fast_uint(struct fast_scan *f, int digits, long *ret)
{
	long v = 0;
	int n = 0;

	fast_ws(f);
	while (f->p < f->end && *f->p >= '0' && *f->p <= '9') {
		if (++n > digits || (n == 2 && v == 0))
			return false;
		v = v * 10 + (*f->p - '0');
		f->p++;
	}
	if (n == 0 || f->p == f->end || *f->p == '.' || *f->p == 'e' ||
	    *f->p == 'E')
		return false;
	*ret = v;
	return true;
}

/*
 * A string of printable ASCII other than '"' and '\\', at most @max
 * bytes: NUL-terminated in place (over its closing quote), into *@ret.
 */
static bool
fast_string(struct fast_scan *f, size_t max, const char **ret)
{
	char *start;

	if (!fast_char(f, '"'))
		return false;
	start = f->p;
	while (f->p < f->end && *f->p != '"') {
		if (*f->p < 0x20 || *f->p > 0x7E || *f->p == '\\')
			return false;
		f->p++;
	}
	if (f->p == f->end || (size_t)(f->p - start) > max)
		return false;
	*f->p++ = '\0';
	*ret = start;
	return true;
}

/* The literal "null". */
static bool
fast_null(struct fast_scan *f)
{
	fast_ws(f);
	if (f->end - f->p < 4 || memcmp(f->p, "null", 4) != 0)
		return false;
	f->p += 4;
	return true;
}

/*
 * Decode tracker frame @body (@len bytes, copied into @scratch of
 * @scratch_len bytes, which the message's strings then point into) by the
 * fast path above, with keys of at most @max_key bytes and nesting of at
 * most @max_depth.  1: *@ret_msg is what tvm_tracker_parse() would make
 * of the frame; 0: not a frame the fast path takes (parse it with jansson;
 * *@ret_msg untouched).
 */
int
tvm_tracker_parse_fast(const char *body, size_t len, size_t max_key,
    int max_depth, char *scratch, size_t scratch_len,
    struct tvm_tracker_msg *ret_msg)
{
	struct tvm_tracker_msg m = {0};
	struct fast_scan f;
	long code, n;

	if (len >= scratch_len || max_depth < 2)
		return 0;
	memcpy(scratch, body, len);
	f.p = scratch;
	f.end = scratch + len;
	if (!fast_char(&f, '[') || !fast_uint(&f, 1, &code))
		return 0;
	m.code = (int)code;
	switch (code) {
	case NPUFARM_TVM_PING:
	case NPUFARM_TVM_SUMMARY:
	case NPUFARM_TVM_GET_PENDING_MATCHKEYS:
		break;
	case NPUFARM_TVM_REQUEST:
		if (!fast_char(&f, ',') || !fast_string(&f, max_key, &m.key) ||
		    !fast_char(&f, ',') || !fast_string(&f, max_key, &m.user) ||
		    !fast_char(&f, ',') || !fast_uint(&f, 9, &n))
			return 0;
		m.priority = (double)n;
		break;
	case NPUFARM_TVM_PUT:
		if (!fast_char(&f, ',') || !fast_string(&f, max_key, &m.key) ||
		    !fast_char(&f, ',') || !fast_char(&f, '[') ||
		    !fast_uint(&f, 5, &n) || n > 65535 || !fast_char(&f, ',') ||
		    !fast_string(&f, max_key, &m.matchkey) ||
		    !fast_char(&f, ']') || !fast_char(&f, ','))
			return 0;
		m.port = n;
		fast_ws(&f);
		if (f.p < f.end && *f.p == '"') {
			if (!fast_string(&f, max_key, &m.custom_addr))
				return 0;
		} else if (!fast_null(&f)) {
			return 0;
		}
		break;
	default:
		return 0;
	}
	if (!fast_char(&f, ']'))
		return 0;
	fast_ws(&f);
	if (f.p != f.end)
		return 0;
	*ret_msg = m;
	return 1;
}

/*
 * Replies are written straight into the frame, without a jansson tree:
 * the bytes are exactly those json_util_dumps_py() gives for the same
 * value (tests/unit/test-tvm-proto.c compares them).
 */

/*
 * The next code point of NUL-terminated UTF-8 @s into *@ret_cp; returns
 * its length in bytes, or 0 where jansson's utf8_iterate() refuses it
 * (a stray or missing continuation, overlong, a surrogate, > U+10FFFF).
 */
static size_t
utf8_next(const unsigned char *s, uint32_t *ret_cp)
{
	uint32_t cp;
	size_t n, i;

	if (s[0] < 0x80) {
		*ret_cp = s[0];
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		n = 2;
		cp = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		n = 3;
		cp = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
	    (n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && cp < 0x10000))
		return 0;
	*ret_cp = cp;
	return n;
}

/* "\\u" and four lower-case hex digits of @u at @p (6 bytes). */
static void
put_u_escape(char *p, uint32_t u)
{
	static const char hex[] = "0123456789abcdef";

	p[0] = '\\';
	p[1] = 'u';
	p[2] = hex[(u >> 12) & 0xF];
	p[3] = hex[(u >> 8) & 0xF];
	p[4] = hex[(u >> 4) & 0xF];
	p[5] = hex[u & 0xF];
}

/*
 * JSON string @s, quoted, as json_util_dumps_py() writes it (jansson's
 * JSON_ENSURE_ASCII with lower-case hex): at @p, or only measured when @p
 * is NULL.  Returns its length, or -1 if @s is not valid UTF-8 (jansson
 * refuses to make such a string, and so the reply).
 */
static ssize_t
py_string(char *p, const char *s)
{
	const unsigned char *u = (const unsigned char *)s, *run;
	size_t o = 0, n;
	uint32_t cp;
	char esc;

	if (p != NULL)
		p[o] = '"';
	o++;
	for (;;) {
		/* A run of bytes written as they are. */
		for (run = u;
		     *u >= 0x20 && *u < 0x80 && *u != '"' && *u != '\\'; u++)
			;
		if (p != NULL)
			memcpy(p + o, run, (size_t)(u - run));
		o += (size_t)(u - run);
		if (*u == '\0')
			break;
		switch (*u) {
		case '"':
			esc = '"';
			break;
		case '\\':
			esc = '\\';
			break;
		case '\b':
			esc = 'b';
			break;
		case '\f':
			esc = 'f';
			break;
		case '\n':
			esc = 'n';
			break;
		case '\r':
			esc = 'r';
			break;
		case '\t':
			esc = 't';
			break;
		default:
			esc = 0;
			break;
		}
		if (esc != 0) {
			if (p != NULL) {
				p[o] = '\\';
				p[o + 1] = esc;
			}
			o += 2;
			u++;
			continue;
		}
		n = utf8_next(u, &cp);
		if (n == 0)
			return -1;
		u += n;
		if (cp < 0x10000) {
			if (p != NULL)
				put_u_escape(p + o, cp);
			o += 6;
		} else {
			cp -= 0x10000;
			if (p != NULL) {
				put_u_escape(p + o, 0xD800 | (cp >> 10));
				put_u_escape(p + o + 6, 0xDC00 | (cp & 0x3FF));
			}
			o += 12;
		}
	}
	if (p != NULL)
		p[o] = '"';
	return (ssize_t)(o + 1);
}

/* Decimal @v at @p, or only measured when @p is NULL; its length. */
static size_t
put_long(char *p, long v)
{
	char tmp[24];
	unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
	size_t n = 0, o = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0) {
		if (p != NULL)
			p[o] = '-';
		o++;
	}
	while (n > 0) {
		if (p != NULL)
			p[o] = tmp[n - 1];
		o++;
		n--;
	}
	return o;
}

/* @n bytes of the literal @s at @p (if not NULL); @n. */
static size_t
put_lit(char *p, const char *s, size_t n)
{
	if (p != NULL)
		memcpy(p, s, n);
	return n;
}

/*
 * Reply bodies: [code], [code, string] and [code, [string, long,
 * string]] (@s2 NULL: the second form; @s1 NULL: the first), at @p or
 * only measured when @p is NULL.  Length, or -1 for a string that is not
 * UTF-8.
 */
static ssize_t
reply_body(char *p, int code, const char *s1, long n, const char *s2)
{
	size_t o = 0;
	ssize_t k;

	if (s1 == NULL)
		return (ssize_t)put_long(p, code);
	o += put_lit(p, "[", 1);
	o += put_long(p ? p + o : NULL, code);
	o += put_lit(p ? p + o : NULL, s2 != NULL ? ", [" : ", ", s2 ? 3 : 2);
	k = py_string(p ? p + o : NULL, s1);
	if (k < 0)
		return -1;
	o += (size_t)k;
	if (s2 != NULL) {
		o += put_lit(p ? p + o : NULL, ", ", 2);
		o += put_long(p ? p + o : NULL, n);
		o += put_lit(p ? p + o : NULL, ", ", 2);
		k = py_string(p ? p + o : NULL, s2);
		if (k < 0)
			return -1;
		o += (size_t)k;
		o += put_lit(p ? p + o : NULL, "]", 1);
	}
	o += put_lit(p ? p + o : NULL, "]", 1);
	return (ssize_t)o;
}

/*
 * Append the reply reply_body() describes as one frame, written in
 * place.  0, -ENOMEM, or -EINVAL for a string that is not UTF-8 (nothing
 * appended).
 */
static int
add_reply(
    struct evbuffer *out, int code, const char *s1, long n, const char *s2)
{
	struct evbuffer_iovec v;
	ssize_t len = reply_body(NULL, code, s1, n, s2);

	if (len < 0)
		return -EINVAL;
	if (len > INT32_MAX - FRAME_HEADER_SIZE)
		return -EMSGSIZE;
	if (evbuffer_reserve_space(out, FRAME_HEADER_SIZE + len, &v, 1) != 1)
		return -ENOMEM;
	frame_put_le32(v.iov_base, (uint32_t)len);
	(void)reply_body(
	    (char *)v.iov_base + FRAME_HEADER_SIZE, code, s1, n, s2);
	v.iov_len = FRAME_HEADER_SIZE + (size_t)len;
	if (evbuffer_commit_space(out, &v, 1) < 0)
		return -ENOMEM;
	return 0;
}

/* Append a bare status reply such as "0" (TRK-04) or "-1" (TRK-18). */
int
tvm_tracker_add_code(struct evbuffer *out, int code)
{
	return add_reply(out, code, NULL, 0, NULL);
}

/*
 * Append a REQUEST grant: [0, [host, port, matchkey]] (TRK-10).  0,
 * -ENOMEM, or -EINVAL if a string is not UTF-8.
 */
int
tvm_tracker_add_grant(
    struct evbuffer *out, const char *host, long port, const char *matchkey)
{
	return add_reply(out, NPUFARM_TVM_SUCCESS, host, port, matchkey);
}

/*
 * Append a failed REQUEST: [-1, message].  TVM clients raise the message
 * (client.py checks element 0 against SUCCESS).  0, -ENOMEM, or -EINVAL
 * if @message is not UTF-8.
 */
int
tvm_tracker_add_fail(struct evbuffer *out, const char *message)
{
	return add_reply(out, NPUFARM_TVM_FAIL, message, 0, NULL);
}
