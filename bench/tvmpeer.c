/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Blocking TVM tracker peer.  Received bytes collect in one growable buffer
 * [start, end); a frame handed out by tvmpeer_pop_frame() points into it and
 * stays valid until the next read on the same peer, which may move or
 * reallocate the buffer.  The socket itself stays blocking (sends are bounded
 * by SO_SNDTIMEO) and reads use MSG_DONTWAIT after poll().
 */
#include "config.h"

#include "tvmpeer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "frame.h"
#include "json_util.h"
#include "netaddr.h"
#include "quickack.h"

/* Smallest free space offered to each recv(); buffers grow per frame. */
#define PEER_READ_MIN    4096
/* Frames up to this size are assembled on the stack before the write. */
#define PEER_STACK_FRAME 512

struct tvmpeer {
	int fd;         /* blocking socket, -1 once closed */
	int timeout_ms; /* bounds connect, handshake and each send; <0: none */
	bool split;     /* header and body as two writes, as Python does */
	bool quickack;  /* ACK a partial frame at once (no delayed ACK) */
	char *buf;      /* received bytes live in [start, end) */
	size_t start;
	size_t end;
	size_t cap;
};

static int64_t
peer_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until @deadline (<0: none) as a poll() timeout. */
static int
peer_left_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - peer_now_ms();
	return left < 0 ? 0 : (int)left;
}

/* poll() one fd once: 1 ready, 0 timed out, -errno (including -EINTR). */
static int
peer_wait(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int n;

	n = poll(&pfd, 1, timeout_ms);
	if (n < 0)
		return -errno;
	return n;
}

/*
 * Fewest significant digits that print @d so that it reads back exactly,
 * which is how Python's repr() chooses its digits.
 */
static int
peer_precision(double d)
{
	char num[40];
	int n;

	for (n = 1; n < 17; n++) {
		(void)snprintf(num, sizeof(num), "%.*g", n, d);
		if (strtod(num, NULL) == d)
			return n;
	}
	return 17;
}

static int
peer_dial(struct tvmpeer *p, const struct netaddr *na, const char *addr,
    struct npufarm_err *err)
{
	struct timeval tv;
	socklen_t sl;
	int fl, r, soerr = 0;

	p->fd = socket(
	    na->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (p->fd < 0)
		return err_set(err, -errno, "socket: %s", strerror(errno));
	if (connect(p->fd, (const struct sockaddr *)&na->ss, na->len) < 0) {
		if (errno != EINPROGRESS)
			return err_set(err, -errno, "connect %s: %s", addr,
			    strerror(errno));
		r = peer_wait(p->fd, POLLOUT, p->timeout_ms);
		if (r == 0)
			return err_set(
			    err, -ETIMEDOUT, "connect %s: timed out", addr);
		if (r < 0)
			return err_set(
			    err, r, "connect %s: %s", addr, strerror(-r));
		sl = sizeof(soerr);
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr != 0)
			return err_set(err, -soerr, "connect %s: %s", addr,
			    strerror(soerr));
	}
	fl = fcntl(p->fd, F_GETFL);
	if (fl < 0 || fcntl(p->fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return err_set(err, -errno, "fcntl: %s", strerror(errno));
	if (p->timeout_ms > 0) {
		tv.tv_sec = p->timeout_ms / 1000;
		tv.tv_usec = (p->timeout_ms % 1000) * 1000;
		if (setsockopt(
			p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
			return err_set(
			    err, -errno, "SO_SNDTIMEO: %s", strerror(errno));
	}
	return 0;
}

/*
 * Open a TCP connection to @addr ("HOST:PORT") without any handshake, for
 * callers that want to send raw bytes first.  @timeout_ms bounds the connect
 * and, later, every send and the handshake (<= 0: unbounded).  On success
 * the caller owns *ret_peer (release with tvmpeer_free()).  Returns 0 or
 * -errno with the reason in @err.
 */
int
tvmpeer_open(const char *addr, int timeout_ms, struct tvmpeer **ret_peer,
    struct npufarm_err *err)
{
	struct tvmpeer *p;
	struct netaddr na;
	int r;

	r = netaddr_parse(addr, &na, err);
	if (r < 0)
		return r;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	p->fd = -1;
	p->timeout_ms = timeout_ms;
	r = peer_dial(p, &na, addr, err);
	if (r < 0)
		goto fail;
	*ret_peer = p;
	return 0;
fail:
	tvmpeer_free(p);
	return r;
}

/*
 * Read once, waiting at most until @deadline (<0: forever).  Returns the
 * number of bytes read, -ETIMEDOUT, -ECONNRESET at end of stream, or -errno.
 */
static int
peer_read_before(struct tvmpeer *p, int64_t deadline)
{
	int r;

	r = peer_wait(p->fd, POLLIN, peer_left_ms(deadline));
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return r;
	return tvmpeer_read(p);
}

/*
 * Send the tracker magic 71f20200 alone and wait for the same four bytes
 * back, as TVM's Python peers do (spec TRK-01, TRK-02).  Returns 0, -EPROTO
 * if the echo differs ("not a tracker"), or -errno; the reason is in @err.
 */
int
tvmpeer_handshake(struct tvmpeer *p, struct npufarm_err *err)
{
	unsigned char magic[FRAME_HEADER_SIZE];
	const unsigned char *echo;
	int64_t deadline = -1;
	int r;

	frame_put_le32(magic, NPUFARM_TVM_TRACKER_MAGIC);
	r = tvmpeer_send_raw(p, magic, sizeof(magic));
	if (r < 0)
		return err_set(err, r, "sending the magic: %s", strerror(-r));
	if (p->timeout_ms > 0)
		deadline = peer_now_ms() + p->timeout_ms;
	while (p->end - p->start < sizeof(magic)) {
		r = peer_read_before(p, deadline);
		if (r < 0 && r != -EAGAIN)
			return err_set(err, r, "waiting for the magic echo: %s",
			    strerror(-r));
	}
	echo = (const unsigned char *)p->buf + p->start;
	if (memcmp(echo, magic, sizeof(magic)) != 0)
		return err_set(err, -EPROTO,
		    "not a TVM tracker: echo %02x%02x%02x%02x", echo[0],
		    echo[1], echo[2], echo[3]);
	p->start += sizeof(magic);
	return 0;
}

/*
 * tvmpeer_open() followed by tvmpeer_handshake(): a tracker connection
 * ready for frames.  Same ownership and results as tvmpeer_open().
 */
int
tvmpeer_connect(const char *addr, int timeout_ms, struct tvmpeer **ret_peer,
    struct npufarm_err *err)
{
	struct tvmpeer *p = NULL;
	int r;

	r = tvmpeer_open(addr, timeout_ms, &p, err);
	if (r < 0)
		return r;
	r = tvmpeer_handshake(p, err);
	if (r < 0)
		goto fail;
	*ret_peer = p;
	return 0;
fail:
	tvmpeer_free(p);
	return r;
}

/* Close the connection and release @p.  Accepts NULL; returns NULL. */
struct tvmpeer *
tvmpeer_free(struct tvmpeer *p)
{
	if (p == NULL)
		return NULL;
	if (p->fd >= 0)
		(void)close(p->fd);
	free(p->buf);
	free(p);
	return NULL;
}

/* The socket, borrowed: for poll() only, never close it. */
int
tvmpeer_fd(const struct tvmpeer *p)
{
	return p->fd;
}

/*
 * Send each later frame as two writes, the header and then the body, the
 * way TVM's Python peers do (two sendall() calls).  Off by default.
 */
void
tvmpeer_set_split_writes(struct tvmpeer *p, bool split)
{
	p->split = split;
}

/*
 * Have the kernel ACK at once whenever a read leaves a partial frame
 * buffered, instead of delaying the ACK: the far end may write a frame's
 * header and body separately with Nagle on (TVM's tracker does), and then
 * every frame would wait for our delayed ACK.  Off by default (the kernel's
 * delayed ACK, as TVM's Python clients have it).
 */
void
tvmpeer_set_quickack(struct tvmpeer *p, bool on)
{
	p->quickack = on;
}

/* Whether [start, end) ends inside a frame (a header or body partly read). */
static bool
peer_partial(const struct tvmpeer *p)
{
	size_t at = p->start, n;

	while (p->end - at >= FRAME_HEADER_SIZE) {
		n = frame_get_le32((const unsigned char *)p->buf + at);
		if (n > TVMPEER_MAX_FRAME ||
		    p->end - at < FRAME_HEADER_SIZE + n)
			return n <= TVMPEER_MAX_FRAME;
		at += FRAME_HEADER_SIZE + n;
	}
	return at != p->end;
}

/*
 * Write all @len bytes of @buf, blocking at most the connection timeout per
 * write.  Returns 0, -ETIMEDOUT, or -errno (-EPIPE once the peer is gone;
 * never raises SIGPIPE).
 */
int
tvmpeer_send_raw(struct tvmpeer *p, const void *buf, size_t len)
{
	const char *s = buf;
	ssize_t n;

	while (len > 0) {
		n = send(p->fd, s, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -ETIMEDOUT;
			return -errno;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Send one frame: int32 little-endian length, then @body, in one write
 * (two with tvmpeer_set_split_writes()).  Returns 0, -EMSGSIZE if @len does
 * not fit an int32, or an error of tvmpeer_send_raw().
 */
int
tvmpeer_send_frame(struct tvmpeer *p, const void *body, size_t len)
{
	unsigned char small[PEER_STACK_FRAME], *frame = small;
	int r;

	if (len > INT32_MAX)
		return -EMSGSIZE;
	if (p->split) {
		frame_put_le32(small, (uint32_t)len);
		r = tvmpeer_send_raw(p, small, FRAME_HEADER_SIZE);
		return r < 0 ? r : tvmpeer_send_raw(p, body, len);
	}
	if (len > sizeof(small) - FRAME_HEADER_SIZE) {
		frame = malloc(FRAME_HEADER_SIZE + len);
		if (frame == NULL)
			return -ENOMEM;
	}
	frame_put_le32(frame, (uint32_t)len);
	memcpy(frame + FRAME_HEADER_SIZE, body, len);
	r = tvmpeer_send_raw(p, frame, FRAME_HEADER_SIZE + len);
	if (frame != small)
		free(frame);
	return r;
}

/*
 * Send @v (borrowed, not stolen) as one frame in CPython json.dumps()
 * format.  Returns 0, -ENOMEM, or an error of tvmpeer_send_frame().
 */
int
tvmpeer_send_json(struct tvmpeer *p, const json_t *v)
{
	char *s;
	int r;

	s = json_util_dumps_py(v);
	if (s == NULL)
		return -ENOMEM;
	r = tvmpeer_send_frame(p, s, strlen(s));
	free(s);
	return r;
}

/*
 * json_pack() @fmt and send it; @flags adds json_dumps() flags (a real's
 * precision).  -EINVAL when packing fails (a string that is not UTF-8).
 */
static int
peer_send_pack(struct tvmpeer *p, size_t flags, const char *fmt, ...)
{
	json_error_t jerr;
	va_list ap;
	json_t *v;
	char *s;
	int r;

	va_start(ap, fmt);
	v = json_vpack_ex(&jerr, 0, fmt, ap);
	va_end(ap);
	if (v == NULL)
		return -EINVAL;
	s = json_dumps(v, JSON_ENCODE_ANY | JSON_ENSURE_ASCII | flags);
	json_decref(v);
	if (s == NULL)
		return -ENOMEM;
	r = tvmpeer_send_frame(p, s, strlen(s));
	free(s);
	return r;
}

/* Send PING: [1] (spec TRK-16).  Results as tvmpeer_send_frame(). */
int
tvmpeer_ping(struct tvmpeer *p)
{
	return peer_send_pack(p, 0, "[i]", NPUFARM_TVM_PING);
}

/*
 * Send UPDATE_INFO as the Python RPC server does:
 * [5, {"key": "server:<key>", "addr": [null, port]}] (spec TRK-03).
 */
int
tvmpeer_update_info(struct tvmpeer *p, const char *key, long port)
{
	return peer_send_pack(p, 0, "[i{s:s+,s:[nI]}]", NPUFARM_TVM_UPDATE_INFO,
	    "key", "server:", key, "addr", (json_int_t)port);
}

/*
 * Send PUT: [3, key, [port, matchkey], custom_addr] with null when
 * @custom_addr is NULL (spec TRK-06, TRK-07).
 */
int
tvmpeer_put(struct tvmpeer *p, const char *key, long port, const char *matchkey,
    const char *custom_addr)
{
	return peer_send_pack(p, 0, "[is[Is]s?]", NPUFARM_TVM_PUT, key,
	    (json_int_t)port, matchkey, custom_addr);
}

/*
 * Send REQUEST: [4, key, user, priority] (spec TRK-09).  An integral
 * @priority is written as a JSON integer, any other as Python's repr().
 */
int
tvmpeer_request(
    struct tvmpeer *p, const char *key, const char *user, double priority)
{
	if (priority == (double)(json_int_t)priority && priority > -9.0e18 &&
	    priority < 9.0e18)
		return peer_send_pack(p, 0, "[issI]", NPUFARM_TVM_REQUEST, key,
		    user, (json_int_t)priority);
	return peer_send_pack(p, JSON_REAL_PRECISION(peer_precision(priority)),
	    "[issf]", NPUFARM_TVM_REQUEST, key, user, priority);
}

/* Send SUMMARY: [6] (spec TRK-14). */
int
tvmpeer_summary(struct tvmpeer *p)
{
	return peer_send_pack(p, 0, "[i]", NPUFARM_TVM_SUMMARY);
}

/* Send GET_PENDING_MATCHKEYS: [7] (spec TRK-11). */
int
tvmpeer_get_pending(struct tvmpeer *p)
{
	return peer_send_pack(p, 0, "[i]", NPUFARM_TVM_GET_PENDING_MATCHKEYS);
}

/* Make room for at least @want more bytes after end. */
static int
peer_reserve(struct tvmpeer *p, size_t want)
{
	size_t ncap;
	char *nbuf;

	if (p->start == p->end)
		p->start = p->end = 0;
	if (p->cap - p->end >= want)
		return 0;
	if (p->start > 0) {
		memmove(p->buf, p->buf + p->start, p->end - p->start);
		p->end -= p->start;
		p->start = 0;
		if (p->cap - p->end >= want)
			return 0;
	}
	ncap = p->cap * 2;
	if (ncap < p->end + want)
		ncap = p->end + want;
	nbuf = realloc(p->buf, ncap);
	if (nbuf == NULL)
		return -ENOMEM;
	p->buf = nbuf;
	p->cap = ncap;
	return 0;
}

/* Room to ask recv() for: the rest of a large frame, else PEER_READ_MIN. */
static size_t
peer_want(const struct tvmpeer *p)
{
	size_t have = p->end - p->start, need;

	if (have < FRAME_HEADER_SIZE)
		return PEER_READ_MIN;
	need = frame_get_le32((const unsigned char *)p->buf + p->start);
	if (need > TVMPEER_MAX_FRAME || FRAME_HEADER_SIZE + need <= have)
		return PEER_READ_MIN;
	need = FRAME_HEADER_SIZE + need - have;
	return need > PEER_READ_MIN ? need : PEER_READ_MIN;
}

/*
 * Read whatever has arrived, without blocking.  Returns the number of bytes
 * read, -EAGAIN when none were waiting, -ECONNRESET at end of stream, or
 * -errno.  Invalidates frames returned earlier by tvmpeer_pop_frame().
 */
int
tvmpeer_read(struct tvmpeer *p)
{
	ssize_t n;
	int r;

	r = peer_reserve(p, peer_want(p));
	if (r < 0)
		return r;
	n = recv(p->fd, p->buf + p->end, p->cap - p->end, MSG_DONTWAIT);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (n == 0)
		return -ECONNRESET;
	p->end += (size_t)n;
	if (p->quickack && peer_partial(p))
		quickack_rearm(p->fd);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

/*
 * Take the next whole frame out of what tvmpeer_read() buffered.  Returns 1
 * with *ret_body (borrowed, valid until the next read on @p) and *ret_len,
 * 0 when the frame is not complete yet, -EMSGSIZE for a declared length
 * above TVMPEER_MAX_FRAME, -EBADMSG for a zero length.
 */
int
tvmpeer_pop_frame(struct tvmpeer *p, const char **ret_body, size_t *ret_len)
{
	size_t have = p->end - p->start;
	uint32_t n;

	if (have < FRAME_HEADER_SIZE)
		return 0;
	n = frame_get_le32((const unsigned char *)p->buf + p->start);
	if (n > TVMPEER_MAX_FRAME)
		return -EMSGSIZE;
	if (n == 0)
		return -EBADMSG;
	if (have < FRAME_HEADER_SIZE + (size_t)n)
		return 0;
	*ret_body = p->buf + p->start + FRAME_HEADER_SIZE;
	*ret_len = n;
	p->start += FRAME_HEADER_SIZE + (size_t)n;
	return 1;
}

/*
 * Wait up to @timeout_ms (<0: forever) for the next frame.  Returns 0 with
 * the body as tvmpeer_pop_frame() gives it, -ETIMEDOUT, -ECONNRESET when the
 * tracker closed the connection, -EINTR when a signal arrived, or an error
 * of tvmpeer_pop_frame().
 */
int
tvmpeer_recv_frame(
    struct tvmpeer *p, int timeout_ms, const char **ret_body, size_t *ret_len)
{
	int64_t deadline = -1;
	int r;

	if (timeout_ms >= 0)
		deadline = peer_now_ms() + timeout_ms;
	for (;;) {
		r = tvmpeer_pop_frame(p, ret_body, ret_len);
		if (r != 0)
			return r < 0 ? r : 0;
		r = peer_read_before(p, deadline);
		if (r < 0 && r != -EAGAIN)
			return r;
	}
}

/*
 * Receive one frame and parse it as JSON.  On success the caller owns the
 * new reference in *ret_root.  Returns 0, an error of tvmpeer_recv_frame(),
 * -EBADMSG (not JSON) or -E2BIG (too deeply nested), with the reason in
 * @err.
 */
int
tvmpeer_recv_json(struct tvmpeer *p, int timeout_ms, json_t **ret_root,
    struct npufarm_err *err)
{
	const char *body;
	size_t len;
	int r;

	r = tvmpeer_recv_frame(p, timeout_ms, &body, &len);
	if (r == -ETIMEDOUT)
		return err_set(err, r, "no reply within %d ms", timeout_ms);
	if (r == -ECONNRESET)
		return err_set(err, r, "the tracker closed the connection");
	if (r < 0)
		return err_set(err, r, "receiving a frame: %s", strerror(-r));
	return json_util_load(body, len, JSON_UTIL_MAX_DEPTH, ret_root, err);
}

/* Fill @err with "what: got <reply>", the reply cut to fit. */
static int
peer_unexpected(struct npufarm_err *err, const char *what, const json_t *v)
{
	char *s;
	int r;

	s = json_util_dumps_py(v);
	r = err_set(err, -EBADMSG, "%s, got '%s'", what, s ? s : "?");
	free(s);
	return r;
}

/*
 * Receive a bare integer reply (0 for PING, PUT, UPDATE_INFO; -1 for a
 * refused STOP) into *ret_code.  Returns 0, -EBADMSG for any other reply, or
 * an error of tvmpeer_recv_json(); the reason is in @err.
 */
int
tvmpeer_recv_code(
    struct tvmpeer *p, int timeout_ms, int *ret_code, struct npufarm_err *err)
{
	json_t *root;
	int r;

	r = tvmpeer_recv_json(p, timeout_ms, &root, err);
	if (r < 0)
		return r;
	if (!json_is_integer(root)) {
		r = peer_unexpected(err, "expected an integer reply", root);
		goto out;
	}
	*ret_code = (int)json_integer_value(root);
out:
	json_decref(root);
	return r;
}

/*
 * Receive the bare reply 0 that PING, PUT and UPDATE_INFO get.  Returns 0,
 * -EPROTO for any other integer, or an error of tvmpeer_recv_code(); the
 * reason is in @err.
 */
int
tvmpeer_recv_ok(struct tvmpeer *p, int timeout_ms, struct npufarm_err *err)
{
	int code = -1, r;

	r = tvmpeer_recv_code(p, timeout_ms, &code, err);
	if (r < 0)
		return r;
	if (code != NPUFARM_TVM_SUCCESS)
		return err_set(err, -EPROTO, "the tracker answered %d", code);
	return 0;
}

/*
 * Receive the answer to a REQUEST.  Returns 0 with the grant copied into
 * *ret_grant; TVMPEER_E_FAIL when the tracker answered [-1, message] (the
 * message in @err); -EBADMSG for any other reply, -EMSGSIZE for a host or
 * matchkey longer than TVMPEER_MAX_STR; or an error of tvmpeer_recv_json().
 */
int
tvmpeer_recv_grant(struct tvmpeer *p, int timeout_ms,
    struct tvmpeer_grant *ret_grant, struct npufarm_err *err)
{
	const char *host, *mk, *msg;
	json_error_t jerr;
	json_int_t code, port;
	json_t *root;
	int r;

	r = tvmpeer_recv_json(p, timeout_ms, &root, err);
	if (r < 0)
		return r;
	if (json_unpack(root, "[Is]", &code, &msg) == 0 &&
	    code == NPUFARM_TVM_FAIL) {
		r = err_set(err, TVMPEER_E_FAIL, "%s", msg);
		goto out;
	}
	if (json_unpack_ex(root, &jerr, JSON_STRICT, "[I[sIs]]", &code, &host,
		&port, &mk) < 0 ||
	    code != NPUFARM_TVM_SUCCESS) {
		r = peer_unexpected(
		    err, "expected [0, [host, port, matchkey]]", root);
		goto out;
	}
	if (strlen(host) >= sizeof(ret_grant->host) ||
	    strlen(mk) >= sizeof(ret_grant->matchkey)) {
		r = err_set(err, -EMSGSIZE, "grant host or matchkey too long");
		goto out;
	}
	strcpy(ret_grant->host, host);
	ret_grant->port = (long)port;
	strcpy(ret_grant->matchkey, mk);
out:
	json_decref(root);
	return r;
}

/*
 * Write a fresh matchkey for @key into @buf the way TVM's Python server
 * makes one: "<key>:" + repr(random.random()), e.g. "rk3588:0.84442185".
 * Returns 0, -ENAMETOOLONG if it does not fit @len, or -errno from
 * getrandom().
 */
int
tvmpeer_matchkey(const char *key, char *buf, size_t len)
{
	char num[40];
	uint64_t u;
	double d;
	int n;

	if (getrandom(&u, sizeof(u), 0) != (ssize_t)sizeof(u))
		return -errno;
	d = (double)(u >> 11) * 0x1.0p-53;
	(void)snprintf(num, sizeof(num), "%.*g", peer_precision(d), d);
	if (strpbrk(num, ".e") == NULL)
		(void)strcat(num, ".0");
	n = snprintf(buf, len, "%s:%s", key, num);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}
