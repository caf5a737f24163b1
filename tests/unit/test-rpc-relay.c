/* SPDX-License-Identifier: Apache-2.0 */
/*
 * common/rpc_relay.c over real loopback TCP connections and bufferevents,
 * owned here the way broker/relay.c and agent/tvm_session.c own theirs:
 * packets larger than the relay buffer, both ways, with the sockets told
 * (ops->fd: splice through a pipe) and without (through the buffers).
 * Every byte is checked; the packet accounting, the deadline inside a
 * large packet and a server that ends inside one are checked against
 * what the relay reports.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "err.h"
#include "frame.h"
#include "harness.h"
#include "rpc_relay.h"
#include "tvm_rpc.h"

#define BUF      (64 * 1024)        /* the relay buffer */
#define BIG      (8u * 1024 * 1024) /* a body larger than it */
#define WAIT_MS  10000
#define TIMEOUTS "RPCSessionTimeoutError: "

/* The owner: two bufferevents, as the broker's connections. */
struct fix {
	struct event_base *base;
	struct bufferevent *bev[2]; /* indexed by enum rpc_relay_side */
	int peer[2];                /* the test's ends of the two sockets */
	struct rpc_relay *rr;
	bool with_fd;      /* ops->fd tells the sockets */
	unsigned reads[2]; /* read callbacks of the owner, per side */
	bool server_ended, client_closed;
	struct rpc_relay_end end;
	char detail[RPC_RELAY_MSG_MAX + 512];
	char close_why[NPUFARM_ERR_MSG_MAX + 128]; /* ops->client_close's */
};

static int
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* A connected loopback TCP pair, both ends non-blocking. */
static void
tcp_pair(int *a, int *b)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int l;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(l, 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &sl), 0);
	*a = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(*a, 0);
	ck_assert_int_eq(connect(*a, (struct sockaddr *)&sin, sizeof(sin)), 0);
	*b = accept(l, NULL, NULL);
	ck_assert_int_ge(*b, 0);
	close(l);
	ck_assert_int_eq(fcntl(*a, F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(fcntl(*b, F_SETFL, O_NONBLOCK), 0);
}

static enum rpc_relay_side
side_of(struct fix *f, struct bufferevent *bev)
{
	return bev == f->bev[RPC_RELAY_CLIENT] ? RPC_RELAY_CLIENT
					       : RPC_RELAY_SERVER;
}

static void
op_flush(void *owner, enum rpc_relay_side side)
{
	(void)owner;
	(void)side; /* a bufferevent writes by itself */
}

static void
op_pause(void *owner, enum rpc_relay_side side)
{
	struct fix *f = owner;

	if (f->bev[side] != NULL)
		bufferevent_disable(f->bev[side], EV_READ);
}

static void
op_resume(void *owner, enum rpc_relay_side side)
{
	struct fix *f = owner;

	if (f->bev[side] != NULL)
		bufferevent_enable(f->bev[side], EV_READ);
}

static void
op_server_end(void *owner, const struct rpc_relay_end *end)
{
	struct fix *f = owner;
	struct evbuffer *out;

	ck_assert(!f->server_ended);
	f->server_ended = true;
	f->end = *end;
	(void)snprintf(f->detail, sizeof(f->detail), "%s", end->detail);
	f->end.detail = f->detail;
	/* What the relay queued last (a kShutdown) goes before the close,
	 * as conn_close() sees to in the broker. */
	out = bufferevent_get_output(f->bev[RPC_RELAY_SERVER]);
	(void)evbuffer_unfreeze(out, 1);
	(void)evbuffer_write(out, bufferevent_getfd(f->bev[RPC_RELAY_SERVER]));
	bufferevent_free(f->bev[RPC_RELAY_SERVER]);
	f->bev[RPC_RELAY_SERVER] = NULL;
}

static void
op_client_shut(void *owner)
{
	struct fix *f = owner;

	(void)shutdown(bufferevent_getfd(f->bev[RPC_RELAY_CLIENT]), SHUT_WR);
}

static void
op_client_close(void *owner, const char *why)
{
	struct fix *f = owner;

	(void)snprintf(f->close_why, sizeof(f->close_why), "%s", why);
	f->client_closed = true;
	bufferevent_free(f->bev[RPC_RELAY_CLIENT]);
	f->bev[RPC_RELAY_CLIENT] = NULL;
}

static int
op_fd(void *owner, enum rpc_relay_side side)
{
	struct fix *f = owner;

	return f->bev[side] != NULL ? bufferevent_getfd(f->bev[side]) : -1;
}

static const struct rpc_relay_ops ops_fd = {
    .flush = op_flush,
    .pause = op_pause,
    .resume = op_resume,
    .server_end = op_server_end,
    .client_shut = op_client_shut,
    .client_close = op_client_close,
    .fd = op_fd,
};

static const struct rpc_relay_ops ops_buffers = {
    .flush = op_flush,
    .pause = op_pause,
    .resume = op_resume,
    .server_end = op_server_end,
    .client_shut = op_client_shut,
    .client_close = op_client_close,
};

static void
readcb(struct bufferevent *bev, void *arg)
{
	struct fix *f = arg;
	enum rpc_relay_side side = side_of(f, bev);

	f->reads[side]++;
	rpc_relay_read(f->rr, side);
}

static void
writecb(struct bufferevent *bev, void *arg)
{
	struct fix *f = arg;

	rpc_relay_drained(f->rr, side_of(f, bev));
}

static void
eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct fix *f = arg;

	if (side_of(f, bev) == RPC_RELAY_CLIENT) {
		rpc_relay_client_eof(f->rr, "end of stream");
		return;
	}
	rpc_relay_server_eof(f->rr, "its connection closed (end of stream)");
	if (f->bev[RPC_RELAY_SERVER] != NULL) {
		bufferevent_free(f->bev[RPC_RELAY_SERVER]);
		f->bev[RPC_RELAY_SERVER] = NULL;
	}
}

static void
fix_start_linger(struct fix *f, bool with_fd, double timeout, double linger)
{
	struct rpc_relay_config cfg = {
	    .max_packet = 1ull << 30,
	    .buffer = BUF,
	    .timeout = timeout,
	    .deadline = timeout,
	    .linger = linger,
	    .who = "board",
	};
	int own[2], k;

	memset(f, 0, sizeof(*f));
	f->with_fd = with_fd;
	f->base = event_base_new();
	ck_assert_ptr_nonnull(f->base);
	for (k = 0; k < 2; k++) {
		tcp_pair(&f->peer[k], &own[k]);
		f->bev[k] = bufferevent_socket_new(
		    f->base, own[k], BEV_OPT_CLOSE_ON_FREE);
		ck_assert_ptr_nonnull(f->bev[k]);
		bufferevent_setcb(f->bev[k], readcb, writecb, eventcb, f);
		bufferevent_enable(f->bev[k], EV_READ | EV_WRITE);
	}
	ck_assert_int_eq(
	    rpc_relay_new(f->base, &cfg, with_fd ? &ops_fd : &ops_buffers, f,
		bufferevent_get_input(f->bev[RPC_RELAY_CLIENT]),
		bufferevent_get_output(f->bev[RPC_RELAY_CLIENT]),
		bufferevent_get_input(f->bev[RPC_RELAY_SERVER]),
		bufferevent_get_output(f->bev[RPC_RELAY_SERVER]), &f->rr),
	    0);
}

static void
fix_start(struct fix *f, bool with_fd, double timeout)
{
	fix_start_linger(f, with_fd, timeout, 5);
}

static void
fix_stop(struct fix *f)
{
	int k;

	for (k = 0; k < 2; k++) {
		if (f->bev[k] != NULL)
			bufferevent_free(f->bev[k]);
		if (f->peer[k] >= 0)
			close(f->peer[k]);
	}
	rpc_relay_free(f->rr);
	event_base_free(f->base);
}

static void
turn(struct fix *f)
{
	(void)event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static unsigned char
pat(uint64_t i)
{
	return (unsigned char)(i * 7 + (i >> 9));
}

/* A packet of @code whose body (after the code) is @len pattern bytes. */
static unsigned char *
packet(int32_t code, size_t len, size_t *ret_total)
{
	unsigned char *p = malloc(12 + len);
	size_t i;

	ck_assert_ptr_nonnull(p);
	frame_put_le64(p, 4 + (uint64_t)len);
	frame_put_le32(p + 8, (uint32_t)code);
	for (i = 0; i < len; i++)
		p[12 + i] = pat(i);
	*ret_total = 12 + len;
	return p;
}

/*
 * Write @wlen bytes of @w to peer @to and read what comes out at peer
 * @from into @r (up to @rcap; at most @step per turn: a slow reader), as
 * far as @wlen and @rwant go, turning the loop meanwhile.  Returns what
 * was read (*rgot); stops early at EOF on @from (*eof).
 */
static void
move(struct fix *f, int to, const unsigned char *w, size_t wlen, int from,
    unsigned char *r, size_t rwant, size_t step, size_t *rgot, bool *eof)
{
	size_t woff = 0;
	int t0 = now_ms();
	ssize_t n;

	*rgot = 0;
	if (eof != NULL)
		*eof = false;
	while (woff < wlen || *rgot < rwant) {
		ck_assert_msg(now_ms() - t0 < WAIT_MS,
		    "stuck: wrote %zu of %zu, read %zu of %zu", woff, wlen,
		    *rgot, rwant);
		if (woff < wlen) {
			n = write(f->peer[to], w + woff, wlen - woff);
			if (n > 0)
				woff += (size_t)n;
			else
				ck_assert_int_eq(errno, EAGAIN);
		}
		turn(f);
		if (*rgot < rwant) {
			size_t k = rwant - *rgot < step ? rwant - *rgot : step;

			n = read(f->peer[from], r + *rgot, k);
			if (n > 0)
				*rgot += (size_t)n;
			else if (n == 0) {
				ck_assert_msg(eof != NULL,
				    "end of stream from %s; the server %s "
				    "(%s), the client %s",
				    from == RPC_RELAY_CLIENT ? "the client"
							     : "the server",
				    f->server_ended ? "ended" : "did not end",
				    f->detail,
				    f->client_closed ? "closed" : "open");
				*eof = true;
				return;
			} else
				ck_assert_int_eq(errno, EAGAIN);
		}
	}
}

/* Turn the loop for @ms. */
static void
idle(struct fix *f, int ms)
{
	int t0 = now_ms();

	while (now_ms() - t0 < ms) {
		turn(f);
		usleep(1000);
	}
}

/* The client shuts the session down; the relay ends it cleanly. */
static void
shut_down(struct fix *f)
{
	static const unsigned char shutdown_pkt[12] = {
	    4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
	unsigned char got[12];
	size_t n;

	move(f, RPC_RELAY_CLIENT, shutdown_pkt, sizeof(shutdown_pkt),
	    RPC_RELAY_SERVER, got, sizeof(got), sizeof(got), &n, NULL);
	ck_assert_mem_eq(got, shutdown_pkt, sizeof(got));
	ck_assert(f->server_ended);
	ck_assert_int_eq(f->end.outcome, NPUFARM_OUTCOME_OK);
}

/*
 * A download larger than the buffer is forwarded as it arrives (the
 * client has most of it while the server is still sending), byte for
 * byte, to a client that reads slowly; with the sockets told, its body
 * bypasses the owner's reads.
 */
START_TEST(test_big_reply)
{
	bool with_fd = _i;
	struct fix f;
	size_t rtotal, ctotal, got, half;
	unsigned char *req = packet(TVM_RPC_CALL_FUNC, 8, &ctotal);
	unsigned char *reply = packet(TVM_RPC_RETURN, BIG, &rtotal);
	unsigned char *seen = malloc(rtotal);
	uint64_t to_s, to_c;
	unsigned reads;

	ck_assert_ptr_nonnull(seen);
	fix_start(&f, with_fd, 0);
	move(&f, RPC_RELAY_CLIENT, req, ctotal, RPC_RELAY_SERVER, seen, ctotal,
	    ctotal, &got, NULL);
	ck_assert_mem_eq(seen, req, ctotal);
	ck_assert(rpc_relay_owed(f.rr));
	reads = f.reads[RPC_RELAY_SERVER];
	/* Half of it: store-and-forward would hold all of that back. */
	half = rtotal / 2;
	move(&f, RPC_RELAY_SERVER, reply, half, RPC_RELAY_CLIENT, seen,
	    half - 2 * BUF, 16384, &got, NULL);
	ck_assert(rpc_relay_owed(f.rr)); /* until its last byte is out */
	move(&f, RPC_RELAY_SERVER, reply + half, rtotal - half,
	    RPC_RELAY_CLIENT, seen + got, rtotal - got, 65536, &got, NULL);
	ck_assert_mem_eq(seen, reply, rtotal);
	ck_assert(!rpc_relay_owed(f.rr));
	rpc_relay_bytes(f.rr, &to_s, &to_c);
	ck_assert_uint_eq(to_s, ctotal);
	ck_assert_uint_eq(to_c, rtotal);
	/* Through the buffers the owner reads the body 4 KiB at a time;
	 * spliced, it hardly reads at all. */
	if (with_fd)
		ck_assert_uint_lt(f.reads[RPC_RELAY_SERVER] - reads, 64);
	else
		ck_assert_uint_gt(f.reads[RPC_RELAY_SERVER] - reads, 1000);
	/* A small reply after it goes as before. */
	move(&f, RPC_RELAY_CLIENT, req, ctotal, RPC_RELAY_SERVER, seen, ctotal,
	    ctotal, &got, NULL);
	ck_assert(rpc_relay_owed(f.rr));
	frame_put_le64(reply, 12); /* its first 20 bytes: a small kReturn */
	move(&f, RPC_RELAY_SERVER, reply, 20, RPC_RELAY_CLIENT, seen, 20, 20,
	    &got, NULL);
	ck_assert_mem_eq(seen, reply, 20);
	ck_assert(!rpc_relay_owed(f.rr));
	shut_down(&f);
	ck_assert_uint_eq(f.end.requests, 2);
	fix_stop(&f);
	free(req);
	free(reply);
	free(seen);
}
END_TEST

/*
 * An upload larger than the buffer reaches the server byte for byte; the
 * relay sees the request end (one request, a reply owed) whichever way
 * its body went.
 */
START_TEST(test_big_request)
{
	bool with_fd = _i;
	struct fix f;
	size_t ctotal, rtotal, got;
	unsigned char *req = packet(TVM_RPC_CALL_FUNC, BIG, &ctotal);
	unsigned char *reply = packet(TVM_RPC_RETURN, 8, &rtotal);
	unsigned char *seen = malloc(ctotal);
	uint64_t to_s, to_c;
	unsigned reads;

	ck_assert_ptr_nonnull(seen);
	fix_start(&f, with_fd, 0);
	reads = f.reads[RPC_RELAY_CLIENT];
	move(&f, RPC_RELAY_CLIENT, req, ctotal, RPC_RELAY_SERVER, seen, ctotal,
	    32768, &got, NULL);
	ck_assert_mem_eq(seen, req, ctotal);
	idle(&f, 20);
	ck_assert(rpc_relay_owed(f.rr));
	if (with_fd)
		ck_assert_uint_lt(f.reads[RPC_RELAY_CLIENT] - reads, 64);
	else
		ck_assert_uint_gt(f.reads[RPC_RELAY_CLIENT] - reads, 1000);
	move(&f, RPC_RELAY_SERVER, reply, rtotal, RPC_RELAY_CLIENT, seen,
	    rtotal, rtotal, &got, NULL);
	ck_assert_mem_eq(seen, reply, rtotal);
	ck_assert(!rpc_relay_owed(f.rr));
	rpc_relay_bytes(f.rr, &to_s, &to_c);
	ck_assert_uint_eq(to_s, ctotal);
	ck_assert_uint_eq(to_c, rtotal);
	shut_down(&f);
	ck_assert_uint_eq(f.end.requests, 1);
	ck_assert_uint_eq(f.end.bytes_to_server, ctotal + 12);
	fix_stop(&f);
	free(req);
	free(reply);
	free(seen);
}
END_TEST

/*
 * The deadline passes while the client is inside a large reply: the
 * reply goes out whole, and the timeout kException follows it, at the
 * packet boundary.
 */
START_TEST(test_deadline_inside_big_reply)
{
	bool with_fd = _i;
	struct fix f;
	size_t rtotal, ctotal, got, half;
	unsigned char *req = packet(TVM_RPC_CALL_FUNC, 8, &ctotal);
	unsigned char *reply = packet(TVM_RPC_RETURN, BIG / 4, &rtotal);
	unsigned char *seen = malloc(rtotal + 4096);
	struct evbuffer *tail = evbuffer_new();
	char msg[256];
	ssize_t n;

	ck_assert_ptr_nonnull(seen);
	fix_start(&f, with_fd, 0.3);
	move(&f, RPC_RELAY_CLIENT, req, ctotal, RPC_RELAY_SERVER, seen, ctotal,
	    ctotal, &got, NULL);
	half = rtotal / 2;
	move(&f, RPC_RELAY_SERVER, reply, half, RPC_RELAY_CLIENT, seen,
	    half - 2 * BUF, 65536, &got, NULL);
	idle(&f, 500); /* past the deadline */
	ck_assert(!f.server_ended);
	n = read(f.peer[RPC_RELAY_CLIENT], seen + got, rtotal - got);
	if (n > 0)
		got += (size_t)n;
	ck_assert_uint_le(got, half); /* nothing but the reply's bytes */
	move(&f, RPC_RELAY_SERVER, reply + half, rtotal - half,
	    RPC_RELAY_CLIENT, seen + got, rtotal - got, 65536, &got, NULL);
	ck_assert_mem_eq(seen, reply, rtotal);
	/* Then, at the boundary, the exception TVM's server would send (the
	 * tvm-ffi form: the session never said its dialect). */
	(void)tvm_rpc_timeout_message(0.3, msg, sizeof(msg));
	ck_assert_str_eq(msg, TIMEOUTS "Your 0.3s session has expired, try "
				       "to increase the \"session_timeout\" "
				       "value.");
	ck_assert_int_eq(
	    tvm_rpc_add_exception(tail, msg, TVM_RPC_DIALECT_UNKNOWN), 0);
	move(&f, RPC_RELAY_SERVER, NULL, 0, RPC_RELAY_CLIENT, seen,
	    evbuffer_get_length(tail), 4096, &got, NULL);
	ck_assert_mem_eq(seen, evbuffer_pullup(tail, -1), got);
	ck_assert(f.server_ended);
	ck_assert_int_eq(f.end.outcome, NPUFARM_OUTCOME_TIMEOUT);
	/* By then the reply was out. */
	ck_assert_msg(strstr(f.detail, "passed between calls"), "%s", f.detail);
	evbuffer_free(tail);
	fix_stop(&f);
	free(req);
	free(reply);
	free(seen);
}
END_TEST

/*
 * The server ends inside a large reply: nothing clean can follow the
 * part the client has, so the client is closed (EOF), the session a
 * crash.
 */
START_TEST(test_server_ends_inside_big_reply)
{
	bool with_fd = _i;
	struct fix f;
	size_t rtotal, ctotal, got, half;
	unsigned char *req = packet(TVM_RPC_CALL_FUNC, 8, &ctotal);
	unsigned char *reply = packet(TVM_RPC_RETURN, BIG / 4, &rtotal);
	unsigned char *seen = malloc(rtotal);
	bool eof;

	ck_assert_ptr_nonnull(seen);
	fix_start(&f, with_fd, 0);
	move(&f, RPC_RELAY_CLIENT, req, ctotal, RPC_RELAY_SERVER, seen, ctotal,
	    ctotal, &got, NULL);
	half = rtotal / 2;
	move(&f, RPC_RELAY_SERVER, reply, half, RPC_RELAY_CLIENT, seen,
	    half - 2 * BUF, 65536, &got, NULL);
	close(f.peer[RPC_RELAY_SERVER]);
	f.peer[RPC_RELAY_SERVER] = -1;
	move(&f, RPC_RELAY_SERVER, NULL, 0, RPC_RELAY_CLIENT, seen + got,
	    rtotal - got, 65536, &half, &eof);
	ck_assert(eof);
	ck_assert_uint_lt(got + half, rtotal);
	ck_assert_mem_eq(seen, reply, got + half); /* its bytes, no others */
	ck_assert(f.server_ended);
	ck_assert(f.client_closed);
	ck_assert_int_eq(f.end.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_msg(
	    strstr(f.detail, "while a reply was owed"), "%s", f.detail);
	fix_stop(&f);
	free(req);
	free(reply);
	free(seen);
}
END_TEST

/*
 * The deadline passes inside a large reply that does not end within the
 * linger period: the session ends as timeout, the client, inside the
 * packet, is closed.
 */
START_TEST(test_deadline_inside_stalled_reply)
{
	bool with_fd = _i;
	struct fix f;
	size_t rtotal, ctotal, got, more;
	unsigned char *req = packet(TVM_RPC_CALL_FUNC, 8, &ctotal);
	unsigned char *reply = packet(TVM_RPC_RETURN, BIG / 4, &rtotal);
	unsigned char *seen = malloc(rtotal);
	bool eof;

	ck_assert_ptr_nonnull(seen);
	fix_start_linger(&f, with_fd, 0.2, 0.3);
	move(&f, RPC_RELAY_CLIENT, req, ctotal, RPC_RELAY_SERVER, seen, ctotal,
	    ctotal, &got, NULL);
	move(&f, RPC_RELAY_SERVER, reply, rtotal / 2, RPC_RELAY_CLIENT, seen,
	    rtotal / 2 - 2 * BUF, 65536, &got, NULL);
	idle(&f, 300); /* the deadline, not yet the end of the linger */
	ck_assert(!f.server_ended);
	move(&f, RPC_RELAY_SERVER, NULL, 0, RPC_RELAY_CLIENT, seen + got,
	    rtotal - got, 65536, &more, &eof);
	ck_assert(eof);
	ck_assert_uint_le(got + more, rtotal / 2);
	ck_assert_mem_eq(seen, reply, got + more);
	ck_assert(f.server_ended);
	ck_assert(f.client_closed);
	ck_assert_int_eq(f.end.outcome, NPUFARM_OUTCOME_TIMEOUT);
	ck_assert_msg(
	    strstr(f.detail, "which did not end within 0.3 s"), "%s", f.detail);
	fix_stop(&f);
	free(req);
	free(reply);
	free(seen);
}
END_TEST

/*
 * The deadline passes while the client is still sending a large request:
 * it gets the timeout kException at once, and the rest of its request is
 * read and dropped, its packets still counted right (its kShutdown after
 * it closes the session).
 */
START_TEST(test_deadline_inside_big_request)
{
	static const unsigned char shutdown_pkt[12] = {
	    4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
	bool with_fd = _i;
	struct fix f;
	size_t ctotal, got, half;
	unsigned char *req = packet(TVM_RPC_CALL_FUNC, BIG / 4, &ctotal);
	unsigned char *seen = malloc(ctotal);
	struct evbuffer *exc = evbuffer_new();
	char msg[256];
	bool eof;

	ck_assert_ptr_nonnull(seen);
	fix_start(&f, with_fd, 0.3);
	half = ctotal / 2;
	move(&f, RPC_RELAY_CLIENT, req, half, RPC_RELAY_SERVER, seen,
	    half - 2 * BUF, 65536, &got, NULL);
	(void)tvm_rpc_timeout_message(0.3, msg, sizeof(msg));
	ck_assert_int_eq(
	    tvm_rpc_add_exception(exc, msg, TVM_RPC_DIALECT_UNKNOWN), 0);
	move(&f, RPC_RELAY_CLIENT, NULL, 0, RPC_RELAY_CLIENT, seen,
	    evbuffer_get_length(exc), 4096, &got, NULL);
	ck_assert_mem_eq(seen, evbuffer_pullup(exc, -1), got);
	ck_assert(f.server_ended);
	ck_assert_int_eq(f.end.outcome, NPUFARM_OUTCOME_TIMEOUT);
	ck_assert_msg(strstr(f.detail, "while the client was sending a "
				       "request"),
	    "%s", f.detail);
	/* The rest of it, then kShutdown: read, and the session closed. */
	move(&f, RPC_RELAY_CLIENT, req + half, ctotal - half, RPC_RELAY_CLIENT,
	    seen, 0, 1, &got, NULL);
	move(&f, RPC_RELAY_CLIENT, shutdown_pkt, sizeof(shutdown_pkt),
	    RPC_RELAY_CLIENT, seen, 1, 1, &got, &eof);
	ck_assert(eof);
	/* Closed for its kShutdown: the scanner kept its place through the
	 * spliced part (else it reads the body as headers: malformed). */
	ck_assert_str_eq(f.close_why, "client shut the session down");
	evbuffer_free(exc);
	fix_stop(&f);
	free(req);
	free(seen);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("rpc_relay");
	TCase *tc = tcase_create("large packets");

	/* _i: 1 with the sockets told (splice), 0 through the buffers. */
	tcase_add_loop_test(tc, test_big_reply, 0, 2);
	tcase_add_loop_test(tc, test_big_request, 0, 2);
	tcase_add_loop_test(tc, test_deadline_inside_big_reply, 0, 2);
	tcase_add_loop_test(tc, test_server_ends_inside_big_reply, 0, 2);
	tcase_add_loop_test(tc, test_deadline_inside_stalled_reply, 0, 2);
	tcase_add_loop_test(tc, test_deadline_inside_big_request, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(suite());
}
