/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Farm-port connections: the transport (see conn.h).  The listener
 * (listener.c) accepts them and reads the magic; the protocol it picks
 * claims them through struct conn_ops.
 *
 * A connection that must go is closed in two steps.  conn_close() logs the
 * reason, detaches it from every protocol structure at once (so nothing is
 * ever granted to it again), stops reading and lets queued output drain;
 * the write callback then frees it.  Nothing frees a connection while a
 * callback further up the stack may still use it.
 */
#include "config.h"

#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker_config.h"
#include "clock.h"
#include "fast_read.h"
#include "frame.h"
#include "log.h"
#include "quickack.h"

/*
 * conn_direct_read(): bytes per read, as libevent 2.1's evbuffer_read()
 * takes at most (EVBUFFER_MAX_READ), so a connection buffers no more per
 * read than through its bufferevent.
 */
#define CONN_READ_SIZE 4096

/* Why a direct reader's event is not armed (c->rstop). */
enum {
	CONN_RSTOP_PAUSED = 1 << 0, /* conn_pause_read(), or closing */
	CONN_RSTOP_FULL = 1 << 1,   /* input at the read high watermark */
	CONN_RSTOP_ENDED = 1 << 2,  /* EOF or an error was reported */
};

/* A connection nobody claimed (yet, or any more). */
static const struct conn_ops conn_noops = {
    .hello = "no protocol magic",
};

static void conn_readcb(struct bufferevent *bev, void *arg);
static void conn_writecb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);

static void
conn_set_state(struct conn *c, enum conn_state state)
{
	static const char *const names[] = {"handshake", "ready", "closing"};

	/* Only forward: HANDSHAKE -> READY -> CLOSING, or straight to CLOSING.
	 */
	if (state <= c->state)
		abort();
	log_debug("conn %llu %s: %s -> %s", (unsigned long long)c->id, c->peer,
	    names[c->state], names[state]);
	c->state = state;
}

/*
 * Log a refusal of a peer, at most one line a second (with a count of
 * those left out).  Runs on the broker loop.
 */
void
conn_refusal(struct conn_set *set, const char *fmt, ...)
{
	unsigned long quiet = 0;
	char msg[300];
	va_list ap;

	if (!log_limit_pass(&set->refusals, &quiet))
		return;
	if (quiet > 0)
		log_warn(
		    "farm port: %lu more refusals in the last second", quiet);
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("farm port: %s", msg);
}

/* Stop counting @c's input as unauthenticated. */
static void
conn_uncharge(struct conn *c)
{
	c->set->unauth_bytes -= c->charged;
	c->charged = 0;
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	long ms = (long)(c->set->cfg->handshake_timeout * 1000);

	if (c->state == CONN_HANDSHAKE)
		conn_close(c,
		    "%s within %ld ms (handshake_timeout, from accept)",
		    c->ops->hello, ms);
	else
		conn_close(c,
		    "a frame begun %ld ms ago is still incomplete "
		    "(handshake_timeout)",
		    ms);
}

/* Arm @c's absolute deadline of handshake_timeout from now. */
static void
deadline_arm(struct conn *c)
{
	struct timeval tv = clock_tv(c->set->cfg->handshake_timeout);

	(void)evtimer_add(c->deadline, &tv);
}

/*
 * Between frames of a ready tracker or agent connection: a partial frame
 * buffered must be complete within handshake_timeout of its first bytes
 * (else a peer could hold up to max_frame for ever); none, no deadline.
 */
static void
conn_frame_deadline(struct conn *c)
{
	bool partial = evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;

	if (c->state != CONN_READY)
		return;
	if (!partial)
		(void)evtimer_del(c->deadline);
	else if (!evtimer_pending(c->deadline, NULL))
		deadline_arm(c);
}

/*
 * A connection's transport state on fd @fd, from @set: its id, its
 * bufferevent (on @fd, -1 to dial) and its deadline timer, owned by @ops
 * and @owner.  NULL when out of memory (@fd is not closed).
 */
static struct conn *
conn_new(struct conn_set *set, int fd, const struct conn_ops *ops, void *owner)
{
	struct conn *c;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->set = set;
	c->ops = ops != NULL ? ops : &conn_noops;
	c->owner = owner;
	c->bev = bufferevent_socket_new(set->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->deadline = evtimer_new(set->base, deadline_cb, c);
	if (c->bev == NULL || c->deadline == NULL) {
		if (c->bev != NULL) {
			/* The caller still owns @fd. */
			(void)bufferevent_setfd(c->bev, -1);
			bufferevent_free(c->bev);
		}
		if (c->deadline != NULL)
			event_free(c->deadline);
		free(c);
		return NULL;
	}
	c->id = ++set->next_conn_id;
	return c;
}

/*
 * Take ownership of the accepted socket @fd from peer @sa and start its
 * handshake, the connection claimed by @ops and @owner (the listener's).
 * Returns the connection, or NULL after closing the socket and logging
 * (out of memory).  Admission (max_connections, the allow-list) is the
 * listener's.
 */
struct conn *
conn_accept(struct conn_set *set, int fd, const struct sockaddr *sa,
    const struct conn_ops *ops, void *owner)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct conn *c;
	int one = 1;

	c = conn_new(set, fd, ops, owner);
	if (c == NULL) {
		log_err("farm port: out of memory accepting a connection");
		close(fd);
		return NULL;
	}
	netaddr_format(sa, c->peer, sizeof(c->peer));
	netaddr_host(sa, c->peer_host, sizeof(c->peer_host));
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
		netaddr_host((struct sockaddr *)&local, c->local_host,
		    sizeof(c->local_host));
		c->local_port = netaddr_port((struct sockaddr *)&local);
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	TAILQ_INSERT_TAIL(&set->conns, c, link);
	set->nconns++;
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	/* Until its handshake is done a peer may have us buffer only
	 * max_unauth_conn (conn_readcb() closes it there); then a frame's
	 * worth (frame_next() rejects oversized frames on their header). */
	bufferevent_setwatermark(
	    c->bev, EV_READ, 0, (size_t)set->cfg->max_unauth_conn + 1);
	/* An absolute deadline, not an idle timer: a byte now and then
	 * must not keep a handshake open. */
	deadline_arm(c);
	/* EV_WRITE stays off: conn_flush() writes replies directly and only
	 * asks the loop for writability when the socket is full.  (A new
	 * bufferevent starts with EV_WRITE enabled.) */
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_enable(c->bev, EV_READ);
	log_debug("conn %llu %s: accepted", (unsigned long long)c->id, c->peer);
	return c;
}

/*
 * Open a connection of the broker's own to @sa (@salen bytes), owned from
 * the start by @ops and @owner: a TVM server registered by PUT that the
 * broker relays (--relay-boards all).  The owner hears of the connect, or
 * of its failure, through @ops->event.  Returns the connection, or NULL
 * with errno set (nothing to free).
 */
struct conn *
conn_dial(struct conn_set *set, const struct sockaddr *sa, int salen,
    const struct conn_ops *ops, void *owner)
{
	struct conn *c;
	int one = 1;

	/* Its deadline timer is unused (the relay keeps the dial's
	 * deadline), but every connection has one. */
	c = conn_new(set, -1, ops, owner);
	if (c == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	netaddr_format(sa, c->peer, sizeof(c->peer));
	netaddr_host(sa, c->peer_host, sizeof(c->peer_host));
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)sa, salen) <
	    0) {
		bufferevent_free(c->bev);
		event_free(c->deadline);
		free(c);
		errno = ECONNREFUSED;
		return NULL;
	}
	(void)setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY,
	    &one, sizeof(one));
	TAILQ_INSERT_TAIL(&set->conns, c, link);
	set->nconns++;
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    (size_t)set->cfg->max_frame + FRAME_HEADER_SIZE);
	conn_ready(c);
	bufferevent_enable(c->bev, EV_READ);
	log_debug("conn %llu %s: dialling", (unsigned long long)c->id, c->peer);
	return c;
}

/*
 * Free @c now.  Only for the write/event callbacks of @c itself and for
 * server teardown; everyone else calls conn_close().
 */
void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->ops->closed != NULL)
		c->ops->closed(c);
	c->fr = fast_read_free(c->fr);
	if (c->rev != NULL)
		event_free(c->rev);
	conn_uncharge(c);
	event_free(c->deadline);
	TAILQ_REMOVE(&c->set->conns, c, link);
	c->set->nconns--;
	bufferevent_free(c->bev);
	free(c);
}

/*
 * Log why @c goes, detach it from all protocol state, stop reading and free
 * it once its queued output (e.g. a final reply) has been written.  Safe to
 * call from any callback; @c stays valid until the current callback returns.
 */
void
conn_close(struct conn *c, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	if (c->state == CONN_CLOSING)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	log_conn(
	    c, c->quiet_close ? LOG_DEBUG : LOG_NOTICE, "closing: %s", reason);
	conn_set_state(c, CONN_CLOSING);
	conn_uncharge(c);
	(void)evtimer_del(c->deadline);
	if (c->ops->closing != NULL)
		c->ops->closing(c);
	conn_pause_read(c);
	bufferevent_set_timeouts(c->bev, NULL, c->set->tv_handshake);
	conn_flush(c);
	/* Runs conn_writecb from the loop, which frees once output drained
	 * (at once if conn_flush() wrote everything). */
	bufferevent_trigger(c->bev, EV_WRITE,
	    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * Write @c's queued output now, without a trip through the event loop:
 * replies leave in the callback that produced them, and a connection whose
 * socket keeps up never has its write interest registered with epoll.  If
 * the socket is full, EV_WRITE is enabled and conn_writecb() finishes the
 * job.  Errors are left for the bufferevent to report through
 * conn_eventcb().
 */
void
conn_flush(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer_iovec v;
	ssize_t n;

	if (evbuffer_get_length(out) == 0 ||
	    (bufferevent_get_enabled(c->bev) & EV_WRITE))
		return;
	/* A bufferevent keeps the front of its output frozen so only it
	 * drains it; thaw it for the duration of our own write. */
	(void)evbuffer_unfreeze(out, 1);
	if (evbuffer_peek(out, -1, NULL, &v, 1) == 1) {
		/* One contiguous reply (the usual case): one send(), without
		 * writev()'s iovec and the file layer.  The broker ignores
		 * SIGPIPE, and so does MSG_NOSIGNAL. */
		n = send(bufferevent_getfd(c->bev), v.iov_base, v.iov_len,
		    MSG_NOSIGNAL);
		if (n > 0)
			(void)evbuffer_drain(out, (size_t)n);
	} else {
		(void)evbuffer_write(out, bufferevent_getfd(c->bev));
	}
	(void)evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(c->bev, EV_WRITE);
}

static void
fast_read_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what == 0)
		conn_readcb(bev, arg);
	else
		conn_eventcb(bev, what, arg);
}

/*
 * Read @c from now on with large reads (common/fast_read.h) instead of the
 * bufferevent's 4 KiB ones: for relayed sessions, where throughput
 * matters.  Returns 0 or -ENOMEM.
 */
int
conn_fast_read(struct conn *c)
{
	if (c->fr != NULL)
		return 0;
	if (c->rev != NULL) {
		/* fast_read takes over from the direct reader. */
		event_free(c->rev);
		c->rev = NULL;
	}
	return fast_read_new(c->set->base, c->bev, fast_read_cb, c, &c->fr);
}

/* The read high watermark of ready connections: one whole frame. */
static size_t
conn_read_high(const struct conn *c)
{
	return (size_t)c->set->cfg->max_frame + FRAME_HEADER_SIZE;
}

/* Arm or disarm @c's direct read event as c->rstop and its input say. */
static void
direct_read_update(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (evbuffer_get_length(in) >= conn_read_high(c))
		c->rstop |= CONN_RSTOP_FULL;
	else
		c->rstop &= ~(unsigned)CONN_RSTOP_FULL;
	if ((c->rstop == 0) == c->rev_armed)
		return;
	if (c->rstop == 0)
		c->rev_armed = event_add(c->rev, NULL) == 0;
	else {
		(void)event_del(c->rev);
		c->rev_armed = false;
	}
}

/*
 * @c's socket is readable: one recv() of at most CONN_READ_SIZE bytes,
 * and no more than the read high watermark leaves room for, into its
 * input, then the read callback as the bufferevent would call it.  Unlike
 * the bufferevent's evbuffer_read() this asks nothing else of the kernel
 * (no FIONREAD per read).
 */
static void
direct_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t len = evbuffer_get_length(in), high = conn_read_high(c);
	size_t want = CONN_READ_SIZE;
	char buf[CONN_READ_SIZE];
	ssize_t n;
	int r;

	if (len >= high) {
		direct_read_update(c);
		return;
	}
	if (high - len < want)
		want = high - len;
	n = recv(fd, buf, want, 0);
	if (n > 0) {
		/* A bufferevent keeps the end of its input frozen so only it
		 * adds to it; thaw it for our own read. */
		(void)evbuffer_unfreeze(in, 0);
		r = evbuffer_add(in, buf, (size_t)n);
		(void)evbuffer_freeze(in, 0);
		if (r < 0) {
			EVUTIL_SET_SOCKET_ERROR(ENOMEM);
			n = -1;
		} else {
			const struct conn *prev = c->set->reading_open;

			/* EV_CLOSED: epoll saw the peer's FIN (EPOLLRDHUP)
			 * when it woke us.  Without it the peer is known to
			 * be there as of this wake-up: conn_peer_gone() needs
			 * no system call to say so.  @c may be freed within;
			 * the set outlives it. */
			c->set->reading_open =
			    (what & EV_CLOSED) ||
				    !(event_base_get_features(c->set->base) &
					EV_FEATURE_EARLY_CLOSE)
				? NULL
				: c;
			conn_readcb(c->bev, c);
			c->set->reading_open = prev;
			return;
		}
	} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
				errno == EINTR)) {
		return;
	} else {
		EVUTIL_SET_SOCKET_ERROR(n < 0 ? errno : 0);
	}
	/* As the bufferevent does: reading stops, then the event. */
	c->rstop |= CONN_RSTOP_ENDED;
	direct_read_update(c);
	conn_eventcb(c->bev,
	    BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
}

/*
 * Read ready connection @c from now on with an event of our own and one
 * plain recv() per wake-up instead of the bufferevent's reads (which cost
 * an ioctl(FIONREAD) each): for the tracker's request/reply traffic.  The
 * read high watermark (a frame's worth), conn_pause_read() and
 * conn_resume_read() hold as before; the bufferevent keeps writing.
 * Returns 0 or -ENOMEM (then the bufferevent goes on reading).
 */
int
conn_direct_read(struct conn *c)
{
	if (c->rev != NULL || c->fr != NULL)
		return 0;
	c->rev = event_new(c->set->base, bufferevent_getfd(c->bev),
	    EV_READ | EV_PERSIST | EV_CLOSED, direct_read_cb, c);
	if (c->rev == NULL)
		return -ENOMEM;
	c->rstop = c->state == CONN_CLOSING ||
			   !(bufferevent_get_enabled(c->bev) & EV_READ)
		       ? CONN_RSTOP_PAUSED
		       : 0;
	bufferevent_disable(c->bev, EV_READ);
	/* The bufferevent no longer reads: its watermark's input callback,
	 * run on every add and drain, would only cost; direct_read_cb()
	 * keeps the same bound. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	direct_read_update(c);
	return 0;
}

/* Stop reading @c (backpressure, or closing). */
void
conn_pause_read(struct conn *c)
{
	if (c->fr != NULL) {
		fast_read_pause(c->fr);
	} else if (c->rev != NULL) {
		c->rstop |= CONN_RSTOP_PAUSED;
		direct_read_update(c);
	} else {
		bufferevent_disable(c->bev, EV_READ);
	}
}

/* Read @c again, unless it is closing. */
void
conn_resume_read(struct conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	if (c->fr != NULL) {
		fast_read_resume(c->fr);
	} else if (c->rev != NULL) {
		c->rstop &= ~(unsigned)CONN_RSTOP_PAUSED;
		direct_read_update(c);
	} else {
		bufferevent_enable(c->bev, EV_READ);
	}
}

/*
 * @c finished its handshake: no handshake deadline from now on (a tracker
 * peer or a waiting board may idle for hours).
 */
void
conn_ready(struct conn *c)
{
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	(void)evtimer_del(c->deadline);
	conn_uncharge(c);
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    (size_t)c->set->cfg->max_frame + FRAME_HEADER_SIZE);
	conn_set_state(c, CONN_READY);
}

/*
 * Hand @c to @ops and @owner (NULL, NULL: nobody; the transport then only
 * frees it when it closes).  From a callback of @c's current owner, which
 * returns at once, or calls @c->ops->read itself to pass on what it read.
 */
void
conn_set_ops(struct conn *c, const struct conn_ops *ops, void *owner)
{
	c->ops = ops != NULL ? ops : &conn_noops;
	c->owner = owner;
}

/*
 * Whether the peer has already closed or reset the connection, without
 * consuming anything: 1 gone, 0 alive (or unknown).  Used before granting a
 * board, so a board is never handed to a client that already left.  From
 * @c's own read callback, woken without the peer's FIN, the wake-up says
 * so (a lease cycle's common case: the REQUEST just read is granted at
 * once); otherwise a MSG_PEEK asks the kernel.
 */
int
conn_peer_gone(const struct conn *c)
{
	char b;
	ssize_t n;

	if (c->state == CONN_CLOSING)
		return 1;
	if (c->set->reading_open == c)
		return 0;
	n = recv(bufferevent_getfd(c->bev), &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return 1;
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return 1;
	return 0;
}

/*
 * A read left part of a tracker frame or of an RPC hello in @c's input:
 * TVM's peers write a frame's length (the hello's magic, its key length)
 * on its own with Nagle on, and wait for our ACK before the rest leaves.
 * ACK now instead of after the kernel's delayed-ACK timer (about 40 ms per
 * frame otherwise).  Agent links and relayed sessions are left alone: the
 * agent writes whole frames, and a relay forwards what it reads at once.
 */
static void
conn_quickack_partial(struct conn *c)
{
	if (!(c->ops->flags & CONN_OPS_QUICKACK) ||
	    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
		return;
	quickack_rearm(bufferevent_getfd(c->bev));
}

/*
 * Count what handshaking @c has buffered against max_unauth_conn and the
 * broker-wide max_unauth_bytes; over either, it goes.  0 or -1 (closed).
 */
static int
conn_charge(struct conn *c)
{
	const struct broker_config *cfg = c->set->cfg;
	size_t len = evbuffer_get_length(bufferevent_get_input(c->bev));

	if (c->state != CONN_HANDSHAKE)
		return 0;
	c->set->unauth_bytes += len - c->charged;
	c->charged = len;
	if (len > (size_t)cfg->max_unauth_conn) {
		conn_close(c,
		    "%zu bytes buffered before its handshake was done (limit "
		    "max_unauth_conn=%ld)",
		    len, cfg->max_unauth_conn);
		return -1;
	}
	if (c->set->unauth_bytes > (size_t)cfg->max_unauth_bytes) {
		conn_close(c,
		    "peers that have not finished a handshake hold %zu bytes "
		    "(limit max_unauth_bytes=%ld)",
		    c->set->unauth_bytes, cfg->max_unauth_bytes);
		return -1;
	}
	return 0;
}

static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->ops->read != NULL)
		c->ops->read(c);
	if (c->state == CONN_CLOSING || (c->ops->flags & CONN_OPS_UNCLAIMED))
		return;
	if (conn_charge(c) < 0)
		return;
	if (c->ops->flags & CONN_OPS_FRAMED)
		conn_frame_deadline(c);
	conn_flush(c);
	conn_quickack_partial(c);
	if (c->rev != NULL)
		direct_read_update(c); /* the owner may have made room */
}

static void
conn_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (c->state == CONN_CLOSING) {
		conn_free(c);
		return;
	}
	bufferevent_disable(bev, EV_WRITE); /* drained: back to direct */
	if (c->ops->drained != NULL)
		c->ops->drained(c);
}

static void
conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (c->ops->event != NULL && c->state != CONN_CLOSING) {
		c->ops->event(c, what); /* frees c, or keeps it */
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->state == CONN_HANDSHAKE)
			log_conn(c, LOG_NOTICE, "closing: %s within %ld ms",
			    c->ops->hello,
			    (long)(c->set->cfg->handshake_timeout * 1000));
		else if (c->state == CONN_CLOSING)
			log_conn(c, LOG_NOTICE,
			    "closing: peer did not read its final reply");
	} else if (what & BEV_EVENT_ERROR) {
		log_conn(c, LOG_INFO, "connection error: %s",
		    strerror(EVUTIL_SOCKET_ERROR()));
	} else if (what & BEV_EVENT_EOF) {
		log_conn(c, LOG_DEBUG, "peer closed");
	}
	conn_free(c);
}

/*
 * The transport's context for a broker on @base under @cfg (both
 * borrowed), admitting at most @max_conns connections.  0 or -ENOMEM.
 */
int
conn_set_new(struct event_base *base, const struct broker_config *cfg,
    size_t max_conns, struct conn_set **ret_set)
{
	struct conn_set *set;

	set = calloc(1, sizeof(*set));
	if (set == NULL)
		return -ENOMEM;
	set->base = base;
	set->cfg = cfg;
	set->max_conns = max_conns;
	TAILQ_INIT(&set->conns);
	*ret_set = set;
	return 0;
}

/* Free every connection of @set, then @set.  Accepts NULL; returns NULL. */
struct conn_set *
conn_set_free(struct conn_set *set)
{
	struct conn *c;

	if (set == NULL)
		return NULL;
	while ((c = TAILQ_FIRST(&set->conns)) != NULL)
		conn_free(c);
	free(set);
	return NULL;
}
