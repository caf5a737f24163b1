/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM RPC data-plane peer helpers.  Received bytes collect in one growable
 * buffer [start, end); a packet handed out by tvmrpc_recv_packet() points
 * into it and stays valid until the next receive, which may move or grow the
 * buffer.  The socket is non-blocking; every wait is a poll() on the socket
 * and the optional cancel fd, bounded by a deadline.  Little-endian on the
 * wire is written byte by byte, so the code does not depend on the host.
 */
#include "config.h"

#include "tvmrpc.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "frame.h"
#include "netaddr.h"

/* Smallest free space offered to each recv(). */
#define RPC_READ_MIN    (64 * 1024)
/* Hellos up to this size are assembled on the stack for one write. */
#define RPC_STACK_HELLO 512
/* The protocol version kInitServer carries (spec §3.3). */
#define RPC_VERSION     "0.8.0"

struct tvmrpc {
	int fd;                /* owned, non-blocking, -1 once closed */
	int cancel_fd;         /* borrowed; readable = stop waiting; -1 */
	int timeout_ms;        /* bounds connect and each send; <=0: none */
	uint64_t max_packet;   /* largest N tvmrpc_recv_packet() accepts */
	uint64_t zero_packets; /* N = 0 packets skipped so far */
	bool eof;              /* recv() returned 0: nothing more comes */
	unsigned char *buf;    /* received bytes live in [start, end) */
	size_t start;
	size_t end;
	size_t cap;
};

/* CLOCK_MONOTONIC in milliseconds: the clock of every deadline here. */
int64_t
tvmrpc_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A short English name for a result of the receive functions, for
 * messages: "end of stream at a boundary", "end of stream inside a
 * packet", or strerror().  Static storage; never NULL.
 */
const char *
tvmrpc_strresult(int r)
{
	if (r == TVMRPC_E_EOF)
		return "end of stream at a boundary";
	if (r == TVMRPC_E_TRUNCATED)
		return "end of stream inside a packet";
	return strerror(r < 0 ? -r : r);
}

/* The absolute deadline for a wait of @timeout_ms (<0: none, -1). */
static int64_t
rpc_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : tvmrpc_now_ms() + timeout_ms;
}

/*
 * Wait until the socket is ready for @events, the cancel fd is readable,
 * or @deadline (<0: none) passes.  Returns 0 when ready, -ETIMEDOUT,
 * -ECANCELED, or -errno.  Retries after signals.
 */
static int
rpc_wait(const struct tvmrpc *c, short events, int64_t deadline)
{
	struct pollfd pfd[2] = {
	    {.fd = c->fd, .events = events},
	    {.fd = c->cancel_fd, .events = POLLIN},
	};
	int64_t left;
	int n;

	for (;;) {
		left = deadline < 0 ? -1 : deadline - tvmrpc_now_ms();
		if (deadline >= 0 && left < 0)
			left = 0;
		n = poll(pfd, c->cancel_fd >= 0 ? 2 : 1,
		    left > 60000 ? 60000 : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (c->cancel_fd >= 0 && pfd[1].revents != 0)
			return -ECANCELED;
		if (pfd[0].revents != 0)
			return 0;
		if (deadline >= 0 && tvmrpc_now_ms() >= deadline)
			return -ETIMEDOUT;
	}
}

/* Room for at least @want more bytes after end.  0 or -ENOMEM. */
static int
rpc_reserve(struct tvmrpc *c, size_t want)
{
	unsigned char *nbuf;
	size_t ncap;

	if (c->start == c->end)
		c->start = c->end = 0;
	if (c->cap - c->end >= want)
		return 0;
	if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
		if (c->cap - c->end >= want)
			return 0;
	}
	ncap = c->cap * 2;
	if (ncap < c->end + want)
		ncap = c->end + want;
	nbuf = realloc(c->buf, ncap);
	if (nbuf == NULL)
		return -ENOMEM;
	c->buf = nbuf;
	c->cap = ncap;
	return 0;
}

/*
 * Make sure @n bytes are buffered from start, reading with @deadline.
 * Returns 0, TVMRPC_E_EOF if the peer closed with nothing buffered,
 * TVMRPC_E_TRUNCATED if it closed with part of the @n bytes, -ETIMEDOUT,
 * -ECANCELED, -ECONNRESET, -ENOMEM or -errno.
 */
static int
rpc_need(struct tvmrpc *c, size_t n, int64_t deadline)
{
	size_t have, want;
	ssize_t got;
	int r;

	while ((have = c->end - c->start) < n) {
		if (c->eof)
			return have == 0 ? TVMRPC_E_EOF : TVMRPC_E_TRUNCATED;
		want = n - have;
		r = rpc_reserve(c, want > RPC_READ_MIN ? want : RPC_READ_MIN);
		if (r < 0)
			return r;
		got =
		    recv(c->fd, c->buf + c->end, c->cap - c->end, MSG_DONTWAIT);
		if (got > 0) {
			c->end += (size_t)got;
			continue;
		}
		if (got == 0) {
			c->eof = true;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = rpc_wait(c, POLLIN, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Non-blocking, close-on-exec, and TCP_NODELAY where it applies. */
static int
rpc_setup_fd(int fd)
{
	int fl, one = 1;

	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	fl = fcntl(fd, F_GETFD);
	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	/* Fails harmlessly on a socketpair. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/*
 * Wrap the connected socket @fd; takes ownership of it, even on failure.
 * @timeout_ms bounds each later send (<=0: unbounded); receives take their
 * own timeout.  On success the caller owns *ret_conn (tvmrpc_free()).
 * Returns 0, -ENOMEM, or -errno from fcntl().
 */
int
tvmrpc_new_fd(int fd, int timeout_ms, struct tvmrpc **ret_conn)
{
	struct tvmrpc *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		(void)close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->cancel_fd = -1;
	c->timeout_ms = timeout_ms;
	c->max_packet = TVMRPC_MAX_PACKET;
	r = rpc_setup_fd(fd);
	if (r < 0)
		goto fail;
	*ret_conn = c;
	return 0;
fail:
	tvmrpc_free(c);
	return r;
}

/*
 * Turn Nagle's algorithm back on (@nodelay false) or off for @c.  Every
 * connection starts with TCP_NODELAY; TVM's own peers never set it, so a
 * bench that imitates them turns it off.  Harmless on a socketpair.
 */
void
tvmrpc_set_nodelay(struct tvmrpc *c, bool nodelay)
{
	int v = nodelay;

	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v));
}

/*
 * Open a TCP connection to @addr ("HOST:PORT"), bounded by @timeout_ms,
 * which also bounds each later send (<=0: unbounded).  @rcvbuf > 0 sets
 * SO_RCVBUF before connecting (a small one makes a slow reader).  Nothing
 * is sent.  On success the caller owns *ret_conn.  Returns 0 or -errno
 * with the reason in @err (-ETIMEDOUT, -ECONNREFUSED, ...).
 */
int
tvmrpc_connect(const char *addr, int timeout_ms, int rcvbuf,
    struct tvmrpc **ret_conn, struct npufarm_err *err)
{
	struct tvmrpc *c = NULL;
	struct netaddr na;
	socklen_t sl;
	int fd, r, soerr = 0;

	r = netaddr_parse(addr, &na, err);
	if (r < 0)
		return r;
	fd = socket(na.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(err, -errno, "socket: %s", strerror(errno));
	r = tvmrpc_new_fd(fd, timeout_ms, &c);
	if (r < 0)
		return err_set(err, r, "socket setup: %s", strerror(-r));
	if (rcvbuf > 0 && setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			      sizeof(rcvbuf)) < 0) {
		r = err_set(err, -errno, "SO_RCVBUF: %s", strerror(errno));
		goto fail;
	}
	if (connect(c->fd, (const struct sockaddr *)&na.ss, na.len) < 0) {
		if (errno != EINPROGRESS) {
			r = err_set(err, -errno, "connect %s: %s", addr,
			    strerror(errno));
			goto fail;
		}
		r = rpc_wait(c, POLLOUT, rpc_deadline(timeout_ms));
		if (r < 0) {
			err_set(err, r, "connect %s: %s", addr, strerror(-r));
			goto fail;
		}
		sl = sizeof(soerr);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr != 0) {
			r = err_set(err, -soerr, "connect %s: %s", addr,
			    strerror(soerr));
			goto fail;
		}
	}
	*ret_conn = c;
	return 0;
fail:
	tvmrpc_free(c);
	return r;
}

/* Close the socket and release @c.  Accepts NULL; returns NULL. */
struct tvmrpc *
tvmrpc_free(struct tvmrpc *c)
{
	if (c == NULL)
		return NULL;
	if (c->fd >= 0)
		(void)close(c->fd);
	free(c->buf);
	free(c);
	return NULL;
}

/* The socket, borrowed: for poll(), shutdown() or socket options only. */
int
tvmrpc_fd(const struct tvmrpc *c)
{
	return c->fd;
}

/*
 * From now on every wait on @c also watches @fd (borrowed, -1: none) and
 * gives up with -ECANCELED as soon as it is readable.
 */
void
tvmrpc_set_cancel_fd(struct tvmrpc *c, int fd)
{
	c->cancel_fd = fd;
}

/* Largest packet length N that tvmrpc_recv_packet() accepts on @c. */
void
tvmrpc_set_max_packet(struct tvmrpc *c, uint64_t max)
{
	c->max_packet = max;
}

/* Bytes received but not yet consumed by any tvmrpc_recv_*(). */
size_t
tvmrpc_buffered(const struct tvmrpc *c)
{
	return c->end - c->start;
}

/* How many N = 0 packets tvmrpc_recv_packet() skipped on @c (EP-12). */
uint64_t
tvmrpc_zero_packets(const struct tvmrpc *c)
{
	return c->zero_packets;
}

/*
 * Write @iov in full, in as few sendmsg() calls as the socket allows, all
 * within the connection timeout.  Returns 0, -ETIMEDOUT, -ECANCELED, -EPIPE
 * or -ECONNRESET once the peer is gone (never raises SIGPIPE), or -errno.
 * Modifies @iov.
 */
static int
rpc_sendv(struct tvmrpc *c, struct iovec *iov, int iovcnt)
{
	int64_t deadline = rpc_deadline(c->timeout_ms > 0 ? c->timeout_ms : -1);
	struct msghdr mh;
	ssize_t n;
	size_t k;
	int r;

	while (iovcnt > 0) {
		if (iov->iov_len == 0) {
			iov++;
			iovcnt--;
			continue;
		}
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)iovcnt;
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			r = rpc_wait(c, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return -errno;
		for (k = (size_t)n; k > 0 && iovcnt > 0;) {
			if (k < iov->iov_len) {
				iov->iov_base = (char *)iov->iov_base + k;
				iov->iov_len -= k;
				break;
			}
			k -= iov->iov_len;
			iov++;
			iovcnt--;
		}
	}
	return 0;
}

/*
 * Write all @len bytes of @buf (any bytes: a packet, a partial packet, a
 * hello).  Returns 0 or an error as for a packet send: -ETIMEDOUT after the
 * connection timeout, -ECANCELED, -EPIPE/-ECONNRESET, -errno.
 */
int
tvmrpc_send(struct tvmrpc *c, const void *buf, size_t len)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return rpc_sendv(c, &iov, 1);
}

/* tvmrpc_send() of the bytes of @m. */
int
tvmrpc_send_msg(struct tvmrpc *c, const struct tvmrpc_msg *m)
{
	return tvmrpc_send(c, m->b, m->len);
}

/*
 * Send one packet: u64 N = 4 + @len, i32 @code, then @body, gathered into
 * one sendmsg() where the socket takes it.  Results as tvmrpc_send().
 */
int
tvmrpc_send_packet(struct tvmrpc *c, int32_t code, const void *body, size_t len)
{
	unsigned char h[TVMRPC_HEADER_SIZE];
	struct iovec iov[2] = {
	    {.iov_base = h, .iov_len = sizeof(h)},
	    {.iov_base = (void *)body, .iov_len = len},
	};

	tvmrpc_put_header(h, 4 + (uint64_t)len, code);
	return rpc_sendv(c, iov, 2);
}

/*
 * Send a kCopyAck carrying @nbytes bytes made by repeating @chunk
 * (@chunk_len > 0 bytes, borrowed), without building it in memory; the
 * header leaves with the first chunk.  Results as tvmrpc_send().
 */
int
tvmrpc_send_copy_ack(
    struct tvmrpc *c, const void *chunk, size_t chunk_len, uint64_t nbytes)
{
	unsigned char h[TVMRPC_HEADER_SIZE];
	struct iovec iov[2];
	size_t n;
	int r, k;

	tvmrpc_put_header(h, 4 + nbytes, TVMRPC_COPY_ACK);
	iov[0].iov_base = h;
	iov[0].iov_len = sizeof(h);
	k = 1;
	do {
		n = nbytes < chunk_len ? (size_t)nbytes : chunk_len;
		iov[k].iov_base = (void *)chunk;
		iov[k].iov_len = n;
		r = rpc_sendv(c, iov, k + 1);
		if (r < 0)
			return r;
		nbytes -= n;
		k = 0;
	} while (nbytes > 0);
	return 0;
}

/*
 * Receive exactly @len bytes into @dst within @timeout_ms (<0: forever).
 * Returns 0, TVMRPC_E_EOF (closed before the first byte), TVMRPC_E_TRUNCATED
 * (closed after some; they stay buffered), -ETIMEDOUT (what arrived stays
 * buffered), -ECANCELED, -ECONNRESET, -ENOMEM or -errno.
 */
int
tvmrpc_recv_bytes(struct tvmrpc *c, void *dst, size_t len, int timeout_ms)
{
	int r;

	r = rpc_need(c, len, rpc_deadline(timeout_ms));
	if (r != 0)
		return r;
	memcpy(dst, c->buf + c->start, len);
	c->start += len;
	return 0;
}

/*
 * Wait for the next 12 bytes and decode them as a packet header without
 * consuming anything (so a caller can see an absurd N that
 * tvmrpc_recv_packet() would refuse).  Results as tvmrpc_recv_bytes().
 */
int
tvmrpc_peek_header(
    struct tvmrpc *c, int timeout_ms, uint64_t *ret_len, int32_t *ret_code)
{
	int r;

	r = rpc_need(c, TVMRPC_HEADER_SIZE, rpc_deadline(timeout_ms));
	if (r != 0)
		return r;
	*ret_len = frame_get_le64(c->buf + c->start);
	*ret_code = (int32_t)frame_get_le32(c->buf + c->start + 8);
	return 0;
}

/*
 * Receive one whole packet within @timeout_ms (<0: forever), skipping
 * N = 0 packets as TVM's endpoint does (EP-12; counted by
 * tvmrpc_zero_packets()).  On success *ret_pkt borrows from @c until its
 * next receive.  Returns 0, TVMRPC_E_EOF (closed at a packet boundary),
 * TVMRPC_E_TRUNCATED (closed inside a packet, e.g. EP-N1), -ETIMEDOUT (a
 * partial packet stays buffered), -EMSGSIZE (N above the limit, nothing
 * consumed), -EBADMSG (N of 1..3 cannot hold a code), -ECANCELED,
 * -ECONNRESET, -ENOMEM or -errno.
 */
int
tvmrpc_recv_packet(
    struct tvmrpc *c, int timeout_ms, struct tvmrpc_packet *ret_pkt)
{
	int64_t deadline = rpc_deadline(timeout_ms);
	uint64_t n;
	int r;

	for (;;) {
		r = rpc_need(c, 8, deadline);
		if (r != 0)
			return r;
		n = frame_get_le64(c->buf + c->start);
		if (n != 0)
			break;
		c->start += 8;
		c->zero_packets++;
	}
	if (n > c->max_packet || n > SIZE_MAX - 8)
		return -EMSGSIZE;
	if (n < 4)
		return -EBADMSG;
	r = rpc_need(c, 8 + (size_t)n, deadline);
	if (r != 0)
		return r;
	ret_pkt->len = n;
	ret_pkt->code = (int32_t)frame_get_le32(c->buf + c->start + 8);
	ret_pkt->body = c->buf + c->start + TVMRPC_HEADER_SIZE;
	ret_pkt->body_len = (size_t)n - 4;
	c->start += 8 + (size_t)n;
	return 0;
}

/*
 * Read and discard everything until the peer closes, within @timeout_ms
 * (<0: forever).  Returns 0 at end of stream with the number of bytes
 * thrown away (buffered ones included) in *ret_discarded (may be NULL),
 * -ETIMEDOUT, -ECANCELED, -ECONNRESET or -errno.
 */
int
tvmrpc_wait_eof(struct tvmrpc *c, int timeout_ms, size_t *ret_discarded)
{
	int64_t deadline = rpc_deadline(timeout_ms);
	size_t gone = 0;
	int r;

	for (;;) {
		gone += c->end - c->start;
		c->start = c->end;
		r = rpc_need(c, 1, deadline);
		if (r == TVMRPC_E_EOF)
			break;
		if (r < 0)
			return r;
	}
	if (ret_discarded != NULL)
		*ret_discarded = gone;
	return 0;
}

/*
 * Send @word, i32 strlen(@key), then the key bytes: in three writes when
 * @split (no third one for an empty key), else in one.
 */
static int
rpc_send_keyed(struct tvmrpc *c, uint32_t word, const char *key, bool split)
{
	unsigned char small[RPC_STACK_HELLO], *b = small;
	size_t len = strlen(key);
	int r;

	if (len > INT32_MAX)
		return -EMSGSIZE;
	frame_put_le32(small, word);
	frame_put_le32(small + 4, (uint32_t)len);
	if (split) {
		r = tvmrpc_send(c, small, 4);
		if (r == 0)
			r = tvmrpc_send(c, small + 4, 4);
		if (r == 0 && len > 0)
			r = tvmrpc_send(c, key, len);
		return r;
	}
	if (len > sizeof(small) - 8) {
		b = malloc(8 + len);
		if (b == NULL)
			return -ENOMEM;
		memcpy(b, small, 8);
	}
	memcpy(b + 8, key, len);
	r = tvmrpc_send(c, b, 8 + len);
	if (b != small)
		free(b);
	return r;
}

/*
 * Send the RPC hello: i32 RPC_MAGIC, i32 strlen(@key), the key bytes (spec
 * §3.1, HS-01, HS-05).  @split sends the three parts as three writes like
 * TVM's C++ client (no third write for an empty key); otherwise one write.
 * Returns 0, -EMSGSIZE for a key over INT32_MAX, -ENOMEM, or a send error.
 */
int
tvmrpc_send_hello(struct tvmrpc *c, const char *key, bool split)
{
	return rpc_send_keyed(c, NPUFARM_TVM_RPC_MAGIC, key, split);
}

/*
 * Read "i32 len | len bytes" at offset @off of the buffer into @key
 * (NUL-terminated) and consume everything up to its end.  Results as
 * rpc_need(), plus -EBADMSG for a negative length, -ENAMETOOLONG when it
 * does not fit @keycap, -EINVAL when it holds a NUL.
 */
static int
rpc_recv_key(
    struct tvmrpc *c, size_t off, int64_t deadline, char *key, size_t keycap)
{
	int32_t len;
	int r;

	r = rpc_need(c, off + 4, deadline);
	if (r != 0)
		return r;
	len = (int32_t)frame_get_le32(c->buf + c->start + off);
	if (len < 0)
		return -EBADMSG;
	if ((size_t)len >= keycap)
		return -ENAMETOOLONG;
	r = rpc_need(c, off + 4 + (size_t)len, deadline);
	if (r != 0)
		return r;
	if (memchr(c->buf + c->start + off + 4, '\0', (size_t)len) != NULL)
		return -EINVAL;
	memcpy(key, c->buf + c->start + off + 4, (size_t)len);
	key[len] = '\0';
	c->start += off + 4 + (size_t)len;
	return 0;
}

/*
 * The server side of a direct connection: read a hello within @timeout_ms
 * and copy its key, NUL-terminated, into @key.  Returns 0; -EPROTO when the
 * first 4 bytes are not RPC_MAGIC (nothing consumed); -EBADMSG,
 * -ENAMETOOLONG or -EINVAL for a bad key; or a result of
 * tvmrpc_recv_bytes() (TVMRPC_E_TRUNCATED for a hello cut short).
 */
int
tvmrpc_recv_hello(struct tvmrpc *c, int timeout_ms, char *key, size_t keycap)
{
	int64_t deadline = rpc_deadline(timeout_ms);
	int r;

	r = rpc_need(c, 4, deadline);
	if (r != 0)
		return r;
	if (frame_get_le32(c->buf + c->start) != NPUFARM_TVM_RPC_MAGIC)
		return -EPROTO;
	return rpc_recv_key(c, 4, deadline, key, keycap);
}

/*
 * Send a handshake reply: i32 @code alone when @key is NULL (MISMATCH,
 * DUPLICATE), else @code | i32 len | key in one write (SUCCESS, HS-02).
 * Results as tvmrpc_send_hello().
 */
int
tvmrpc_send_reply(struct tvmrpc *c, int32_t code, const char *key)
{
	unsigned char h[4];

	if (key != NULL)
		return rpc_send_keyed(c, (uint32_t)code, key, false);
	frame_put_le32(h, (uint32_t)code);
	return tvmrpc_send(c, h, sizeof(h));
}

/*
 * The peer side after sending a hello: read the i32 reply code within
 * @timeout_ms into *ret_code and, after SUCCESS, the key that follows into
 * @key (NUL-terminated; "" for any other code, which comes alone).
 * Returns 0 whatever the code; TVMRPC_E_EOF when the other end closed
 * without a reply; TVMRPC_E_TRUNCATED when it closed inside it; -EBADMSG,
 * -ENAMETOOLONG, -EINVAL for a bad key; or a result of tvmrpc_recv_bytes().
 */
int
tvmrpc_recv_reply(struct tvmrpc *c, int timeout_ms, int32_t *ret_code,
    char *key, size_t keycap)
{
	int64_t deadline = rpc_deadline(timeout_ms);
	int32_t code;
	int r;

	r = rpc_need(c, 4, deadline);
	if (r != 0)
		return r;
	code = (int32_t)frame_get_le32(c->buf + c->start);
	if (code != NPUFARM_TVM_RPC_CODE_SUCCESS) {
		c->start += 4;
		if (keycap > 0)
			key[0] = '\0';
		*ret_code = code;
		return 0;
	}
	r = rpc_recv_key(c, 4, deadline, key, keycap);
	if (r != 0)
		return r;
	*ret_code = code;
	return 0;
}

/*
 * The session timeout a client key asks for, read the way TVM's Python
 * server does: whitespace-separated tokens after the first, a token
 * "-timeout=T" parsed as a float, the last one winning (spec §3.2).
 * Returns 1 with *ret_seconds, 0 when there is none, -EINVAL when a value
 * is not a finite number >= 0.
 */
int
tvmrpc_key_timeout(const char *key, double *ret_seconds)
{
	static const char opt[] = "-timeout=";
	const char *p = key, *tok;
	char num[64], *end;
	double v = 0;
	size_t n;
	int found = 0;
	bool first = true;

	for (;;) {
		p += strspn(p, " \t\n\r\f\v");
		if (*p == '\0')
			break;
		tok = p;
		n = strcspn(p, " \t\n\r\f\v");
		p += n;
		if (first || n < sizeof(opt) - 1 ||
		    strncmp(tok, opt, sizeof(opt) - 1) != 0) {
			first = false;
			continue;
		}
		n -= sizeof(opt) - 1;
		tok += sizeof(opt) - 1;
		if (n == 0 || n >= sizeof(num))
			return -EINVAL;
		memcpy(num, tok, n);
		num[n] = '\0';
		errno = 0;
		v = strtod(num, &end);
		if (*end != '\0' || errno != 0 || !isfinite(v) || v < 0)
			return -EINVAL;
		found = 1;
	}
	if (found)
		*ret_seconds = v;
	return found;
}

/*
 * Copy the match key of a hello key into @buf: the first token with its
 * 7-byte role prefix ("client:", "server:") cut off, as TVM's proxy does;
 * "" when the first token is shorter.  Returns 0 or -ENAMETOOLONG.
 */
int
tvmrpc_key_match(const char *key, char *buf, size_t len)
{
	size_t n = strcspn(key, " \t\n\r\f\v");

	n = n > 7 ? n - 7 : 0;
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, n > 0 ? key + 7 : "", n);
	buf[n] = '\0';
	return 0;
}

/*
 * Format @v as Python's repr(float) does: the fewest digits that read back
 * exactly, fixed notation for exponents -4..15 with at least one decimal
 * ("10.0", "2.5", "0.0001"), else "1e+16", "1e-05".  Returns 0, or
 * -ENAMETOOLONG if it does not fit @len.
 */
int
tvmrpc_format_float(double v, char *buf, size_t len)
{
	char tmp[64], *e;
	int prec, exp10, n;

	if (!isfinite(v)) {
		n = snprintf(buf, len, "%s",
		    isnan(v) ? "nan" : (v < 0 ? "-inf" : "inf"));
		return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
	}
	for (prec = 1; prec < 17; prec++) {
		(void)snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	(void)snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
	e = strchr(tmp, 'e');
	exp10 = e != NULL ? atoi(e + 1) : 0;
	if (exp10 >= -4 && exp10 < 16) {
		n = snprintf(buf, len, "%.*f",
		    prec - 1 - exp10 > 0 ? prec - 1 - exp10 : 0, v);
		if (n >= 0 && (size_t)n < len && strchr(buf, '.') == NULL)
			n = snprintf(buf + n, len - (size_t)n, ".0") + n;
	} else {
		n = snprintf(buf, len, "%s", tmp);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/*
 * The text TVM's v0.14.0 Python server sends when a session of @seconds
 * expires (spec §6.3, EP-09, EP-16): "RPCSessionTimeoutError: Your 10.0s
 * session has expired, try to increase the "session_timeout" value."
 * Returns 0 or -ENAMETOOLONG.
 */
int
tvmrpc_timeout_message(double seconds, char *buf, size_t len)
{
	char num[64];
	int n;

	if (tvmrpc_format_float(seconds, num, sizeof(num)) < 0)
		return -ENAMETOOLONG;
	n = snprintf(buf, len,
	    TVMRPC_TIMEOUT_PREFIX "Your %ss session has expired, try to "
				  "increase the \"session_timeout\" value.",
	    num);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Write a packet header: u64 @len (N), i32 @code, into @h (12 bytes). */
void
tvmrpc_put_header(unsigned char *h, uint64_t len, int32_t code)
{
	frame_put_le64(h, len);
	frame_put_le32(h + 8, (uint32_t)code);
}

/* Whether @code is a reply (kReturn, kException, kCopyAck): spec §5.2. */
bool
tvmrpc_code_is_reply(int32_t code)
{
	return code == TVMRPC_RETURN || code == TVMRPC_EXCEPTION ||
	       code == TVMRPC_COPY_ACK;
}

/* Whether @code is a request that is owed exactly one reply. */
bool
tvmrpc_code_is_request(int32_t code)
{
	return code == TVMRPC_INIT_SERVER || code == TVMRPC_CALL_FUNC ||
	       code == TVMRPC_COPY_FROM_REMOTE ||
	       code == TVMRPC_COPY_TO_REMOTE ||
	       (code >= TVMRPC_GET_GLOBAL_FUNC && code <= TVMRPC_SYSCALL_LAST);
}

/* ---- packet builders: begin, append, end (which writes N) ---------- */

static void
msg_begin(struct tvmrpc_msg *m, int32_t code)
{
	tvmrpc_put_header(m->b, 0, code);
	m->len = TVMRPC_HEADER_SIZE;
}

static void
msg_u32(struct tvmrpc_msg *m, uint32_t v)
{
	frame_put_le32(m->b + m->len, v);
	m->len += 4;
}

static void
msg_u64(struct tvmrpc_msg *m, uint64_t v)
{
	frame_put_le64(m->b + m->len, v);
	m->len += 8;
}

static void
msg_end(struct tvmrpc_msg *m)
{
	frame_put_le64(m->b, m->len - 8);
}

/* A PackedSeq of one string value: i32 1 | i32 11 | u64 L | bytes. */
static int
msg_str_arg(struct tvmrpc_msg *m, const char *s)
{
	size_t len = strlen(s);

	if (len > sizeof(m->b) - m->len - 16)
		return -EMSGSIZE;
	msg_u32(m, 1);
	msg_u32(m, TVMRPC_TSTR);
	msg_u64(m, len);
	memcpy(m->b + m->len, s, len);
	m->len += len;
	msg_end(m);
	return 0;
}

/* kInitServer, version "0.8.0", no constructor arguments (EP-01). */
void
tvmrpc_msg_init_server(struct tvmrpc_msg *m)
{
	msg_begin(m, TVMRPC_INIT_SERVER);
	msg_u64(m, strlen(RPC_VERSION));
	memcpy(m->b + m->len, RPC_VERSION, strlen(RPC_VERSION));
	m->len += strlen(RPC_VERSION);
	msg_u32(m, 0);
	msg_end(m);
}

/* kReturn of one null: the reply to kInitServer and void syscalls (EP-02). */
void
tvmrpc_msg_return_void(struct tvmrpc_msg *m)
{
	msg_begin(m, TVMRPC_RETURN);
	msg_u32(m, 1);
	msg_u32(m, TVMRPC_TNULL);
	msg_end(m);
}

/* kReturn of one opaque handle: a kGetGlobalFunc reply (EP-04). */
void
tvmrpc_msg_return_handle(struct tvmrpc_msg *m, uint64_t handle)
{
	msg_begin(m, TVMRPC_RETURN);
	msg_u32(m, 1);
	msg_u32(m, TVMRPC_THANDLE);
	msg_u64(m, handle);
	msg_end(m);
}

/* kReturn of a call that returned int @v: [int 0, int v] (EP-06). */
void
tvmrpc_msg_return_int(struct tvmrpc_msg *m, int64_t v)
{
	msg_begin(m, TVMRPC_RETURN);
	msg_u32(m, 2);
	msg_u32(m, TVMRPC_TINT);
	msg_u32(m, TVMRPC_TINT);
	msg_u64(m, TVMRPC_TINT);
	msg_u64(m, (uint64_t)v);
	msg_end(m);
}

/* kReturn of a call that returned nothing: [int 4, null] (EP-07). */
void
tvmrpc_msg_return_none(struct tvmrpc_msg *m)
{
	msg_begin(m, TVMRPC_RETURN);
	msg_u32(m, 2);
	msg_u32(m, TVMRPC_TINT);
	msg_u32(m, TVMRPC_TNULL);
	msg_u64(m, TVMRPC_TNULL);
	msg_end(m);
}

/*
 * Syscall kGetGlobalFunc(@name) (EP-03, EP-17).  Returns 0, or -EMSGSIZE
 * when @name does not fit a struct tvmrpc_msg.
 */
int
tvmrpc_msg_get_global_func(struct tvmrpc_msg *m, const char *name)
{
	msg_begin(m, TVMRPC_GET_GLOBAL_FUNC);
	return msg_str_arg(m, name);
}

/* kCallFunc(@handle, int @arg) (EP-05). */
void
tvmrpc_msg_call_func(struct tvmrpc_msg *m, uint64_t handle, int64_t arg)
{
	msg_begin(m, TVMRPC_CALL_FUNC);
	msg_u64(m, handle);
	msg_u32(m, 1);
	msg_u32(m, TVMRPC_TINT);
	msg_u64(m, (uint64_t)arg);
	msg_end(m);
}

/* The DLTensor part of a copy: a 1-d float32 CPU tensor, then nbytes. */
static void
msg_tensor(struct tvmrpc_msg *m, uint64_t data, uint64_t nbytes)
{
	msg_u64(m, data);
	msg_u32(m, 1);                        /* kDLCPU */
	msg_u32(m, 0);                        /* device id */
	msg_u32(m, 1);                        /* ndim */
	msg_u32(m, 2u | 32u << 8 | 1u << 16); /* float, 32 bits, 1 lane */
	msg_u64(m, nbytes / 4);
	msg_u64(m, 0); /* byte_offset */
	msg_u64(m, nbytes);
}

/*
 * kCopyFromRemote of @nbytes from the CPU tensor at @data, described as a
 * 1-d float32 tensor of @nbytes / 4 elements (EP-14 for data
 * 0x00007f0000001000 and 16 bytes).  Returns 0, or -EINVAL when @nbytes is
 * not a multiple of 4.
 */
int
tvmrpc_msg_copy_from_remote(
    struct tvmrpc_msg *m, uint64_t data, uint64_t nbytes)
{
	if (nbytes % 4 != 0)
		return -EINVAL;
	msg_begin(m, TVMRPC_COPY_FROM_REMOTE);
	msg_tensor(m, data, nbytes);
	msg_end(m);
	return 0;
}

/*
 * The first part of a kCopyToRemote of @nbytes into the tensor described
 * as for tvmrpc_msg_copy_from_remote(): everything up to the raw bytes,
 * with N counting them, so the caller sends @nbytes bytes right after it
 * (EP-13 for data 0x00007f0000001000 and 16 bytes).  Returns 0, or -EINVAL
 * when @nbytes is not a multiple of 4 or too large.
 */
int
tvmrpc_msg_copy_to_remote(struct tvmrpc_msg *m, uint64_t data, uint64_t nbytes)
{
	if (nbytes % 4 != 0 || nbytes > UINT64_MAX / 2)
		return -EINVAL;
	msg_begin(m, TVMRPC_COPY_TO_REMOTE);
	msg_tensor(m, data, nbytes);
	msg_end(m);
	frame_put_le64(m->b, m->len - 8 + nbytes);
	return 0;
}

/*
 * kException carrying @text (EP-08, EP-09, EP-10, EP-16).  Returns 0, or
 * -EMSGSIZE when @text does not fit a struct tvmrpc_msg.
 */
int
tvmrpc_msg_exception(struct tvmrpc_msg *m, const char *text)
{
	msg_begin(m, TVMRPC_EXCEPTION);
	return msg_str_arg(m, text);
}

/* kShutdown (EP-11). */
void
tvmrpc_msg_shutdown(struct tvmrpc_msg *m)
{
	msg_begin(m, TVMRPC_SHUTDOWN);
	msg_end(m);
}

/*
 * The string of a packet whose body is a PackedSeq of exactly one string
 * (a kException, a kGetGlobalFunc).  *ret_s borrows from the packet and is
 * not NUL-terminated.  Returns 0 or -EBADMSG for any other layout.
 */
int
tvmrpc_packet_string(
    const struct tvmrpc_packet *p, const char **ret_s, size_t *ret_len)
{
	uint64_t len;

	if (p->body_len < 16 || frame_get_le32(p->body) != 1 ||
	    frame_get_le32(p->body + 4) != TVMRPC_TSTR)
		return -EBADMSG;
	len = frame_get_le64(p->body + 8);
	if (len != p->body_len - 16)
		return -EBADMSG;
	*ret_s = (const char *)p->body + 16;
	*ret_len = (size_t)len;
	return 0;
}

/*
 * The handle and the argument of a kCallFunc with one int argument
 * (EP-05).  Returns 0 or -EBADMSG for any other layout.
 */
int
tvmrpc_packet_call_int(
    const struct tvmrpc_packet *p, uint64_t *ret_handle, int64_t *ret_arg)
{
	if (p->code != TVMRPC_CALL_FUNC || p->body_len != 24 ||
	    frame_get_le32(p->body + 8) != 1 ||
	    frame_get_le32(p->body + 12) != TVMRPC_TINT)
		return -EBADMSG;
	*ret_handle = frame_get_le64(p->body);
	*ret_arg = (int64_t)frame_get_le64(p->body + 16);
	return 0;
}

/*
 * The value of a kReturn of a call that returned an int (EP-06).  Returns
 * 0 or -EBADMSG for any other layout.
 */
int
tvmrpc_packet_return_int(const struct tvmrpc_packet *p, int64_t *ret_v)
{
	if (p->code != TVMRPC_RETURN || p->body_len != 28 ||
	    frame_get_le32(p->body) != 2 ||
	    frame_get_le32(p->body + 4) != TVMRPC_TINT ||
	    frame_get_le32(p->body + 8) != TVMRPC_TINT ||
	    frame_get_le64(p->body + 12) != TVMRPC_TINT)
		return -EBADMSG;
	*ret_v = (int64_t)frame_get_le64(p->body + 20);
	return 0;
}

/*
 * The byte count a kCopyFromRemote asks for: the u64 after its DLTensor
 * header, whatever ndim is (EP-14).  Returns 0 or -EBADMSG.
 */
int
tvmrpc_packet_copy_nbytes(const struct tvmrpc_packet *p, uint64_t *ret_nbytes)
{
	uint32_t ndim;

	if (p->code != TVMRPC_COPY_FROM_REMOTE || p->body_len < 24)
		return -EBADMSG;
	ndim = frame_get_le32(p->body + 16);
	if (ndim > 64 || p->body_len != 24 + 8 * (size_t)ndim + 16)
		return -EBADMSG;
	*ret_nbytes = frame_get_le64(p->body + p->body_len - 8);
	return 0;
}
