/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM RPC data-plane codec.  The handshake helpers speak spec §3-§4 byte for
 * byte; the packet helpers only frame (u64 LE N | i32 LE code | N - 4 bytes)
 * and never look inside a payload except to build or read a kException
 * (§5.5).  Every check on a peer-declared length happens as soon as the
 * length is in, before the bytes it announces are waited for.  Nothing here
 * logs; each reply is reserved and written as one contiguous region so it
 * leaves in one write (STYLE §7).
 */
#include "config.h"

#include "tvm_rpc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "frame.h"

#define HELLO_HEADER_SIZE 8  /* i32 magic + i32 keylen */
#define EXC_HEADER_SIZE   28 /* u64 N, i32 code, i32 nargs, i32 tcode, u64 L */
#define TVM_TYPE_STR      11 /* v0.14 kTVMStr */
#define FFI_TYPE_RAWSTR   8  /* tvm-ffi kTVMFFIRawStr */
#define TVM_TYPE_NULLPTR  4  /* v0.14 kTVMNullptr: a void return */
#define FFI_TYPE_NONE     0  /* tvm-ffi kTVMFFINone */
#define RPC_GET_GLOBAL    9  /* kGetGlobalFunc */
#define RPC_FREE_HANDLE   10 /* kFreeHandle */
#define ROLE_PREFIX_LEN   7  /* "client:" and "server:" */
#define TIMEOUT_OPT       "-timeout="
/* Longer -timeout values are clamped (~31 years): their deadlines in
 * microseconds or time_t would overflow and expire at once (issue 12). */
#define TIMEOUT_MAX       1e9

/* Scanner state after an error: feeding it again fails. */
#define SCAN_BROKEN (TVM_RPC_HEADER_SIZE + 1)

/*
 * Append @hlen header bytes then @len bytes of @body as one contiguous
 * region of @out.  Returns 0 or -ENOMEM.
 */
static int
add_contiguous(struct evbuffer *out, const unsigned char *hdr, size_t hlen,
    const void *body, size_t len)
{
	struct evbuffer_iovec v;

	if (evbuffer_reserve_space(out, (ev_ssize_t)(hlen + len), &v, 1) != 1)
		return -ENOMEM;
	memcpy(v.iov_base, hdr, hlen);
	if (len > 0)
		memcpy((unsigned char *)v.iov_base + hlen, body, len);
	v.iov_len = hlen + len;
	if (evbuffer_commit_space(out, &v, 1) < 0)
		return -ENOMEM;
	return 0;
}

/* Append i32 @code | i32 @len | @key in one region. */
static int
add_code_and_key(
    struct evbuffer *out, int32_t code, const char *key, size_t len)
{
	unsigned char hdr[HELLO_HEADER_SIZE];

	if (len > INT32_MAX)
		return -EMSGSIZE;
	frame_put_le32(hdr, (uint32_t)code);
	frame_put_le32(hdr + 4, (uint32_t)len);
	return add_contiguous(out, hdr, sizeof(hdr), key, len);
}

/* Names of enum tvm_rpc_dialect. */
const char *
tvm_rpc_dialect_name(enum tvm_rpc_dialect d)
{
	switch (d) {
	case TVM_RPC_DIALECT_V014:
		return "v0.14";
	case TVM_RPC_DIALECT_FFI:
		return "tvm-ffi";
	default:
		return "unknown";
	}
}

/* ---- handshake ---------------------------------------------------- */

/*
 * Pull one RPC hello (spec §3.1) from the front of @in into @key.  The C++
 * client writes magic, keylen and key separately, so any prefix of a hello
 * may be buffered: returns 0 until all of it is.  The magic is judged as
 * soon as its 4 bytes are in and keylen as soon as its 4 are, so a peer
 * cannot make us wait for (or buffer) a body we would refuse.  On success
 * returns 1, drains the hello and leaves @key NUL-terminated; on failure
 * returns -EPROTO (magic), -ENAMETOOLONG (keylen negative or >= @keycap),
 * -EINVAL (keylen 0 or a NUL in the key) with @err filled, leaves @in as
 * it was and @key holding no key ("" after a NUL).  Does not log.
 */
int
tvm_rpc_hello_pull(
    struct evbuffer *in, char *key, size_t keycap, struct npufarm_err *err)
{
	unsigned char hdr[HELLO_HEADER_SIZE];
	struct evbuffer_ptr pos;
	ev_ssize_t got;
	int32_t magic, keylen;

	got = evbuffer_copyout(in, hdr, sizeof(hdr));
	if (got < 4)
		return 0;
	magic = (int32_t)frame_get_le32(hdr);
	if (magic != NPUFARM_TVM_RPC_MAGIC)
		return err_set(err, -EPROTO,
		    "rpc hello: magic 0x%08x is not RPC_MAGIC 0x%x",
		    (unsigned)magic, NPUFARM_TVM_RPC_MAGIC);
	if (got < (ev_ssize_t)sizeof(hdr))
		return 0;
	keylen = (int32_t)frame_get_le32(hdr + 4);
	if (keylen == 0)
		return err_set(err, -EINVAL, "rpc hello: empty key");
	if (keylen < 0 || (size_t)keylen >= keycap)
		return err_set(err, -ENAMETOOLONG,
		    "rpc hello: key length %d, limit is %zu", keylen,
		    keycap > 0 ? keycap - 1 : 0);
	if (evbuffer_get_length(in) < sizeof(hdr) + (size_t)keylen)
		return 0;
	if (evbuffer_ptr_set(in, &pos, sizeof(hdr), EVBUFFER_PTR_SET) < 0 ||
	    evbuffer_copyout_from(in, &pos, key, (size_t)keylen) != keylen)
		return err_set(err, -EIO, "rpc hello: cannot copy the key");
	if (memchr(key, '\0', (size_t)keylen) != NULL) {
		key[0] = '\0';
		return err_set(err, -EINVAL, "rpc hello: key contains a NUL");
	}
	key[keylen] = '\0';
	(void)evbuffer_drain(in, sizeof(hdr) + (size_t)keylen);
	return 1;
}

/* ASCII whitespace as Python's str.split() sees it. */
static bool
is_py_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* Cut the next whitespace-separated token out of *@p in place. */
static char *
next_token(char **p)
{
	char *s = *p, *tok;

	while (*s != '\0' && is_py_space(*s))
		s++;
	if (*s == '\0') {
		*p = s;
		return NULL;
	}
	tok = s;
	while (*s != '\0' && !is_py_space(*s))
		s++;
	if (*s != '\0')
		*s++ = '\0';
	*p = s;
	return tok;
}

/*
 * A -timeout value as Python's float() reads what TVM clients send:
 * decimal digits with an optional fraction and exponent.  Hex, inf, nan,
 * signs and an empty value are refused, as is anything below zero.
 */
static int
parse_timeout(const char *s, double *ret)
{
	const char *c;
	char *end;
	double v;

	if (*s == '\0')
		return -EINVAL;
	for (c = s; *c != '\0'; c++)
		if (strchr("0123456789.eE+-", *c) == NULL)
			return -EINVAL;
	if (*s == '+' || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0' || end == s || errno != 0 || !isfinite(v) || v < 0)
		return -EINVAL;
	*ret = v > TIMEOUT_MAX ? TIMEOUT_MAX : v;
	return 0;
}

/*
 * Parse an RPC hello key, splitting @key in place; @ret's strings point
 * into it.  The role comes from the "server:" prefix (anything else is a
 * client, as in TVM's proxy).  As in the proxy, match is the first token
 * of the key after its first 7 bytes ("" for a shorter key), so stray
 * spaces after "client:" are skipped; the remaining tokens are options, of
 * which only -timeout= is read (the last one wins) and the others, such as
 * tokens npufarm's agent appends, are ignored.  Returns 0, or -EINVAL with
 * @err filled for a -timeout value that is not a non-negative decimal
 * number; @ret is then untouched.  Does not log.
 */
int
tvm_rpc_hello_parse(
    char *key, struct tvm_rpc_hello *ret, struct npufarm_err *err)
{
	struct tvm_rpc_hello h = {0};
	size_t len = strlen(key);
	char *p, *tok;
	int r;

	h.is_server = strncmp(key, "server:", ROLE_PREFIX_LEN) == 0;
	p = key + (len >= ROLE_PREFIX_LEN ? ROLE_PREFIX_LEN : len);
	tok = next_token(&p);
	h.match = tok != NULL ? tok : p;
	while ((tok = next_token(&p)) != NULL) {
		if (strncmp(tok, TIMEOUT_OPT, strlen(TIMEOUT_OPT)) != 0)
			continue;
		r = parse_timeout(tok + strlen(TIMEOUT_OPT), &h.timeout);
		if (r < 0)
			return err_set(
			    err, r, "rpc hello: bad option '%.40s'", tok);
		h.has_timeout = true;
	}
	*ret = h;
	return 0;
}

/*
 * Append a bare i32 handshake reply code (NPUFARM_TVM_RPC_CODE_*) to @out.
 * Returns 0 or -ENOMEM.
 */
int
tvm_rpc_add_code(struct evbuffer *out, int32_t code)
{
	unsigned char b[4];

	frame_put_le32(b, (uint32_t)code);
	return evbuffer_add(out, b, sizeof(b)) < 0 ? -ENOMEM : 0;
}

/*
 * Append SUCCESS | i32 @len | @len bytes of @key, in one region: what TVM's
 * server sends after a good hello and what the proxy sends each side at
 * pair-up, there with the other side's full key (spec §4.2).  Returns 0,
 * -EMSGSIZE if @len does not fit an i32, or -ENOMEM.
 */
int
tvm_rpc_add_success(struct evbuffer *out, const char *key, size_t len)
{
	return add_code_and_key(out, NPUFARM_TVM_RPC_CODE_SUCCESS, key, len);
}

/*
 * Append a client or server hello, RPC_MAGIC | i32 len | @key (a C
 * string), in one region.  Returns 0, -EMSGSIZE or -ENOMEM.
 */
int
tvm_rpc_add_hello(struct evbuffer *out, const char *key)
{
	return add_code_and_key(out, NPUFARM_TVM_RPC_MAGIC, key, strlen(key));
}

/* ---- packets ------------------------------------------------------ */

/*
 * Judge a packet length @n against @max: 0 if acceptable (N == 0 is),
 * -EBADMSG for 0 < N < 4 (no room for the code), -EMSGSIZE if 8 + N > @max.
 */
static int
check_length(uint64_t n, uint64_t max)
{
	if (n > 0 && n < 4)
		return -EBADMSG;
	if (max < 8 || n > max - 8)
		return -EMSGSIZE;
	return 0;
}

/*
 * Is a whole packet at the front of @in?  See tvm_rpc.h.  The length is
 * judged as soon as its 8 bytes are in.  Copies at most 12 bytes; does not
 * change @in, does not log.
 */
int
tvm_rpc_packet_peek(
    struct evbuffer *in, uint64_t max, uint64_t *ret_total, int32_t *ret_code)
{
	unsigned char hdr[TVM_RPC_HEADER_SIZE];
	ev_ssize_t got;
	uint64_t n;
	int r;

	got = evbuffer_copyout(in, hdr, sizeof(hdr));
	if (got < 8)
		return 0;
	n = frame_get_le64(hdr);
	r = check_length(n, max);
	if (r < 0)
		return r;
	if (n == 0) {
		*ret_total = 8;
		*ret_code = TVM_RPC_NONE;
		return 1;
	}
	if (evbuffer_get_length(in) < 8 + n)
		return 0;
	*ret_total = 8 + n;
	*ret_code = (int32_t)frame_get_le32(hdr + 8);
	return 1;
}

/*
 * Start a scanner for a stream whose packets may be at most @max bytes
 * (8 + N).  The struct is embedded; there is nothing to free.
 */
void
tvm_rpc_scan_init(struct tvm_rpc_scan *s, uint64_t max)
{
	memset(s, 0, sizeof(*s));
	s->max = max;
}

/*
 * Account @len bytes of the stream (see tvm_rpc.h).  State between calls:
 * hdr_len < 8 while the length is coming, 8..11 while the code is, 12 with
 * left > 0 in the body.  A packet ends (and @fn, which may be NULL, runs)
 * when its last body byte is seen, so hdr still holds its header then.
 * Bodies are skipped in one step, never copied.
 */
int
tvm_rpc_scan_feed(struct tvm_rpc_scan *s, const void *data, size_t len,
    tvm_rpc_packet_fn *fn, void *arg, struct npufarm_err *err)
{
	const unsigned char *p = data;
	uint64_t n;
	size_t k;
	int r;

	if (s->hdr_len > TVM_RPC_HEADER_SIZE)
		return err_set(err, -EBADMSG, "rpc stream: already broken");
	while (len > 0) {
		if (s->hdr_len < TVM_RPC_HEADER_SIZE) {
			s->hdr[s->hdr_len++] = *p++;
			len--;
			s->bytes++;
			if (s->hdr_len == 8) {
				n = frame_get_le64(s->hdr);
				r = check_length(n, s->max);
				if (r < 0)
					goto fail;
				if (n == 0) {
					s->hdr_len = 0;
					continue;
				}
				s->left = n - 4;
			}
			if (s->hdr_len < TVM_RPC_HEADER_SIZE)
				continue;
			s->code = (int32_t)frame_get_le32(s->hdr + 8);
			s->body_len = 0;
		} else {
			k = len < s->left ? len : (size_t)s->left;
			if (s->body_len < TVM_RPC_SCAN_BODY) {
				size_t b = TVM_RPC_SCAN_BODY - s->body_len;

				if (b > k)
					b = k;
				memcpy(s->body + s->body_len, p, b);
				s->body_len += b;
			}
			p += k;
			len -= k;
			s->bytes += k;
			s->left -= k;
		}
		if (s->left == 0) {
			s->hdr_len = 0;
			s->packets++;
			if (fn != NULL)
				fn(s->code, 8 + frame_get_le64(s->hdr), arg);
		}
	}
	return 0;
fail:
	s->hdr_len = SCAN_BROKEN;
	return err_set(err, r,
	    "rpc stream: packet length %llu at byte %llu, limit is %llu",
	    (unsigned long long)n, (unsigned long long)(s->bytes - 8),
	    (unsigned long long)s->max);
}

/*
 * tvm_rpc_scan_feed() over the first @len bytes of @buf, read in place
 * with evbuffer_peek (the buffer is not changed or linearised).  Returns
 * as tvm_rpc_scan_feed(), or -EINVAL if @buf holds fewer than @len bytes.
 */
int
tvm_rpc_scan_feed_buffer(struct tvm_rpc_scan *s, struct evbuffer *buf,
    size_t len, tvm_rpc_packet_fn *fn, void *arg, struct npufarm_err *err)
{
	struct evbuffer_iovec v[8];
	struct evbuffer_ptr pos;
	size_t done = 0, k;
	int i, nv, r;

	if (evbuffer_get_length(buf) < len)
		return err_set(err, -EINVAL,
		    "rpc stream: %zu bytes to scan, %zu buffered", len,
		    evbuffer_get_length(buf));
	if (len == 0)
		return 0;
	if (evbuffer_ptr_set(buf, &pos, 0, EVBUFFER_PTR_SET) < 0)
		return err_set(err, -EINVAL, "rpc stream: bad buffer");
	for (;;) {
		nv = evbuffer_peek(buf, (ev_ssize_t)(len - done), &pos, v, 8);
		if (nv > 8)
			nv = 8;
		for (i = 0; i < nv && done < len; i++) {
			k = v[i].iov_len < len - done ? v[i].iov_len
						      : len - done;
			r = tvm_rpc_scan_feed(
			    s, v[i].iov_base, k, fn, arg, err);
			if (r < 0)
				return r;
			done += k;
			if (done == len)
				return 0;
			if (evbuffer_ptr_set(buf, &pos, k, EVBUFFER_PTR_ADD) <
			    0)
				return err_set(err, -EINVAL,
				    "rpc stream: buffer shorter than it said");
		}
		if (nv <= 0)
			return err_set(err, -EINVAL,
			    "rpc stream: buffer shorter than it said");
	}
}

/*
 * True when the bytes fed so far are a whole number of packets (counting
 * N == 0 ones), i.e. the next byte starts a length.  False once broken.
 */
bool
tvm_rpc_scan_at_boundary(const struct tvm_rpc_scan *s)
{
	return s->hdr_len == 0 && s->left == 0;
}

/*
 * True for the packet codes a TVM server answers with exactly one reply:
 * kInitServer, kCallFunc, kCopyFromRemote, kCopyToRemote and the syscalls
 * 9..20.  kShutdown, the replies, kNone and codes TVM does not know (its
 * receiver dies on them) are not requests.
 */
bool
tvm_rpc_code_is_request(int32_t code)
{
	switch (code) {
	case TVM_RPC_INIT_SERVER:
	case TVM_RPC_CALL_FUNC:
	case TVM_RPC_COPY_FROM_REMOTE:
	case TVM_RPC_COPY_TO_REMOTE:
		return true;
	default:
		return code > TVM_RPC_COPY_ACK && code <= TVM_RPC_SYSCALL_MAX;
	}
}

/* True for kReturn, kException and kCopyAck, which end a request. */
bool
tvm_rpc_code_is_reply(int32_t code)
{
	return code == TVM_RPC_RETURN || code == TVM_RPC_EXCEPTION ||
	       code == TVM_RPC_COPY_ACK;
}

/*
 * Append one kException packet carrying @msg up to its NUL, in one region
 * (spec §5.5: N = 20 + L, 28 + L bytes in all).  Returns 0 or -ENOMEM.
 */
int
tvm_rpc_add_exception(
    struct evbuffer *out, const char *msg, enum tvm_rpc_dialect dialect)
{
	unsigned char hdr[EXC_HEADER_SIZE];
	size_t len = strlen(msg);

	frame_put_le64(hdr, 20 + (uint64_t)len);
	frame_put_le32(hdr + 8, TVM_RPC_EXCEPTION);
	frame_put_le32(hdr + 12, 1);
	frame_put_le32(hdr + 16,
	    dialect == TVM_RPC_DIALECT_V014 ? TVM_TYPE_STR : FFI_TYPE_RAWSTR);
	frame_put_le64(hdr + 20, len);
	return add_contiguous(out, hdr, sizeof(hdr), msg, len);
}

/*
 * Copy the message of the kException packet at the front of @in into @buf
 * (see tvm_rpc.h).  Well-formed means: all 8 + N bytes buffered, code 5,
 * one argument of string type (kTVMStr 11 or kTVMFFIRawStr 8) whose length
 * L is exactly N - 20 (TVM's receiver insists a handler consumes exactly N
 * bytes).  @in is not changed; an empty @buf gets nothing.  Does not log.
 */
int
tvm_rpc_exception_peek(struct evbuffer *in, char *buf, size_t buflen)
{
	unsigned char hdr[EXC_HEADER_SIZE];
	struct evbuffer_ptr pos;
	uint64_t n, len;
	size_t k;

	if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
		return -EBADMSG;
	n = frame_get_le64(hdr);
	len = frame_get_le64(hdr + 20);
	if (n < 20 || len != n - 20 ||
	    frame_get_le32(hdr + 8) != TVM_RPC_EXCEPTION ||
	    frame_get_le32(hdr + 12) != 1 ||
	    (frame_get_le32(hdr + 16) != TVM_TYPE_STR &&
		frame_get_le32(hdr + 16) != FFI_TYPE_RAWSTR) ||
	    evbuffer_get_length(in) - 8 < n)
		return -EBADMSG;
	if (buflen == 0)
		return 0;
	k = len < buflen - 1 ? (size_t)len : buflen - 1;
	if (k > 0 &&
	    (evbuffer_ptr_set(in, &pos, sizeof(hdr), EVBUFFER_PTR_SET) < 0 ||
		evbuffer_copyout_from(in, &pos, buf, k) != (ev_ssize_t)k))
		return -EBADMSG;
	buf[k] = '\0';
	return 0;
}

/*
 * Tell the dialect from a server's reply to kInitServer (see tvm_rpc.h).
 * Reads the 20 first bytes of @in; does not change it.
 */
enum tvm_rpc_dialect
tvm_rpc_dialect_of_reply(struct evbuffer *in, uint64_t total, int32_t code)
{
	unsigned char p[20];
	uint32_t type;

	if (evbuffer_copyout(in, p, sizeof(p)) < (ev_ssize_t)sizeof(p))
		return TVM_RPC_DIALECT_UNKNOWN;
	if (frame_get_le32(p + 12) != 1) /* one value */
		return TVM_RPC_DIALECT_UNKNOWN;
	type = frame_get_le32(p + 16);
	if (code == TVM_RPC_RETURN && total == 20) {
		if (type == TVM_TYPE_NULLPTR)
			return TVM_RPC_DIALECT_V014;
		if (type == FFI_TYPE_NONE)
			return TVM_RPC_DIALECT_FFI;
	} else if (code == TVM_RPC_EXCEPTION && total >= EXC_HEADER_SIZE) {
		if (type == TVM_TYPE_STR)
			return TVM_RPC_DIALECT_V014;
		if (type == FFI_TYPE_RAWSTR)
			return TVM_RPC_DIALECT_FFI;
	}
	return TVM_RPC_DIALECT_UNKNOWN;
}

/* Tell the dialect from a client request (see tvm_rpc.h). */
enum tvm_rpc_dialect
tvm_rpc_dialect_of_request(
    int32_t code, uint64_t total, const unsigned char *body, size_t len)
{
	uint32_t type;

	if (code == RPC_FREE_HANDLE)
		return total == 40   ? TVM_RPC_DIALECT_V014
		       : total == 28 ? TVM_RPC_DIALECT_FFI
				     : TVM_RPC_DIALECT_UNKNOWN;
	if (code != RPC_GET_GLOBAL || len < 8 || frame_get_le32(body) != 1)
		return TVM_RPC_DIALECT_UNKNOWN;
	type = frame_get_le32(body + 4);
	return type == TVM_TYPE_STR      ? TVM_RPC_DIALECT_V014
	       : type == FFI_TYPE_RAWSTR ? TVM_RPC_DIALECT_FFI
					 : TVM_RPC_DIALECT_UNKNOWN;
}

/*
 * Write TVM's session timeout message for @seconds into @buf (see
 * tvm_rpc.h).  Returns what snprintf returns.
 */
int
tvm_rpc_timeout_message(double seconds, char *buf, size_t len)
{
	char t[32];

	(void)tvm_rpc_py_float(seconds, t, sizeof(t));
	return snprintf(buf, len,
	    TVM_RPC_TIMEOUT_PREFIX "Your %ss session has expired, try to "
				   "increase the \"session_timeout\" value.",
	    t);
}

/* Split "%e" output @s into its digits (returned count) and exponent. */
static int
split_e(const char *s, char *digits, int *ret_exp)
{
	int n = 0;

	for (; *s != 'e'; s++)
		if (*s != '.')
			digits[n++] = *s;
	digits[n] = '\0';
	*ret_exp = atoi(s + 1);
	return n;
}

/*
 * Step the @n-digit decimal @digits x 10^*exp to its neighbour with @n
 * digits, up or down (9.9 -> 1.0e+1, 1.0 -> 9.9e-1).
 */
static void
step_digits(char *digits, int n, int *exp, bool up)
{
	char lim = up ? '9' : '0';
	int i;

	for (i = n - 1; i >= 0 && digits[i] == lim; i--)
		digits[i] = up ? '0' : '9';
	if (i >= 0)
		digits[i] = (char)(digits[i] + (up ? 1 : -1));
	if (up && i < 0) {
		digits[0] = '1';
		++*exp;
	} else if (!up && digits[0] == '0') {
		memset(digits, '9', (size_t)n);
		--*exp;
	}
}

/* Does @digits x 10^@exp (one digit before the point) read back as @v? */
static bool
reads_back(const char *digits, int n, int exp, double v)
{
	char s[48];

	(void)snprintf(
	    s, sizeof(s), "%c.%.*se%d", digits[0], n - 1, digits + 1, exp);
	return strtod(s, NULL) == v;
}

/*
 * The shortest decimal digits of finite @v > 0 that read back as @v: the
 * digits (no point) go to @digits, the decimal exponent of the first one
 * to *ret_exp, and the count is returned.  Where the correctly rounded
 * p-digit candidate misses but its neighbour on the other side of @v reads
 * back (possible at a power of two, whose lower gap is half the upper),
 * the neighbour is taken, as David Gay's dtoa does for Python.
 */
static int
shortest_digits(double v, char *digits, int *ret_exp)
{
	char s[40];
	int p, n = 0, e = 0;

	for (p = 1; p <= 17; p++) {
		(void)snprintf(s, sizeof(s), "%.*e", p - 1, v);
		n = split_e(s, digits, &e);
		if (strtod(s, NULL) == v)
			break;
		step_digits(digits, n, &e, strtod(s, NULL) < v);
		if (reads_back(digits, n, e, v))
			break;
	}
	while (n > 1 && digits[n - 1] == '0')
		n--;
	digits[n] = '\0';
	*ret_exp = e;
	return n;
}

/*
 * Format @v as Python's repr(float) does: the shortest digits that read
 * back as @v, fixed notation when the decimal exponent is in [-4, 16)
 * (with ".0" after an integer), else d[.ddd]e±XX with at least two
 * exponent digits; "nan", "inf", "-inf", "-0.0" as Python spells them.
 * Returns what snprintf returns (the length of the full text).
 */
int
tvm_rpc_py_float(double v, char *buf, size_t len)
{
	char digits[24], out[48];
	const char *sign;
	int n, e, i, o;

	if (isnan(v))
		return snprintf(buf, len, "nan");
	sign = signbit(v) ? "-" : "";
	if (isinf(v))
		return snprintf(buf, len, "%sinf", sign);
	if (v == 0)
		return snprintf(buf, len, "%s0.0", sign);
	n = shortest_digits(fabs(v), digits, &e);
	if (e < -4 || e >= 16)
		return snprintf(buf, len, "%s%c%s%.*se%c%02d", sign, digits[0],
		    n > 1 ? "." : "", n - 1, digits + 1, e < 0 ? '-' : '+',
		    abs(e));
	o = 0;
	if (e < 0) {
		out[o++] = '0';
		out[o++] = '.';
		for (i = -1; i > e; i--)
			out[o++] = '0';
		memcpy(out + o, digits, (size_t)n);
		o += n;
	} else {
		for (i = 0; i <= e; i++)
			out[o++] = i < n ? digits[i] : '0';
		out[o++] = '.';
		if (n > e + 1) {
			memcpy(out + o, digits + e + 1, (size_t)(n - e - 1));
			o += n - e - 1;
		} else {
			out[o++] = '0';
		}
	}
	out[o] = '\0';
	return snprintf(buf, len, "%s%s", sign, out);
}
