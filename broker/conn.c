/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Farm-port connections: accept, magic dispatch, closing.
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

#include <npufarm/protocol.h>

#include "agent_link.h"
#include "auth.h"
#include "fast_read.h"
#include "frame.h"
#include "log.h"
#include "proxy.h"
#include "quickack.h"
#include "relay.h"
#include "server.h"
#include "tracker.h"

/* Handshaking connections from one host outside the allow-list. */
#define CONN_MAX_HANDSHAKES_PER_HOST 4

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
conn_refusal(struct server *srv, const char *fmt, ...)
{
	time_t now = time(NULL);
	char msg[300];
	va_list ap;

	if (now == srv->refuse_log) {
		srv->refuse_quiet++;
		return;
	}
	srv->refuse_log = now;
	if (srv->refuse_quiet > 0)
		log_warn("farm port: %lu more refusals in the last second",
		    srv->refuse_quiet);
	srv->refuse_quiet = 0;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("farm port: %s", msg);
}

/* Stop counting @c's input as unauthenticated. */
static void
conn_uncharge(struct conn *c)
{
	c->srv->unauth_bytes -= c->charged;
	c->charged = 0;
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	long ms = (long)(c->srv->cfg->handshake_timeout * 1000);

	if (c->state == CONN_HANDSHAKE)
		conn_close(c,
		    "%s within %ld ms (handshake_timeout, from accept)",
		    c->proto == CONN_PROTO_RPC     ? "no complete RPC hello"
		    : c->proto == CONN_PROTO_AGENT ? "no agent hello welcomed"
						   : "no protocol magic",
		    ms);
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
	double s = c->srv->cfg->handshake_timeout;
	struct timeval tv = {
	    (time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};

	(void)evtimer_add(c->deadline, &tv);
}

/*
 * Between frames of a ready tracker or agent connection: a partial frame
 * buffered must be complete within handshake_timeout of its first bytes
 * (else a peer could hold up to max_frame for ever); none, no deadline.
 */
void
conn_frame_deadline(struct conn *c)
{
	bool partial = evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;

	if (c->state != CONN_READY || c->relay != NULL)
		return;
	if (!partial)
		(void)evtimer_del(c->deadline);
	else if (!evtimer_pending(c->deadline, NULL))
		deadline_arm(c);
}

/* Handshaking connections from @host. */
static size_t
handshakes_from(const struct server *srv, const char *host)
{
	const struct conn *c;
	size_t n = 0;

	TAILQ_FOREACH(c, &srv->conns, link)
		if (c->state == CONN_HANDSHAKE &&
		    strcmp(c->peer_host, host) == 0)
			n++;
	return n;
}

/*
 * Take ownership of the accepted socket @fd and start the handshake.  On
 * failure the socket is closed and the failure logged.  A host outside
 * the allow-list (which may still link agents, with their token) gets at
 * most CONN_MAX_HANDSHAKES_PER_HOST handshakes at a time, so slow hellos
 * from one host cannot take max_connections from everyone else.
 */
void
conn_accept(struct server *srv, int fd, const struct sockaddr *sa, int salen)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	char peer[NETADDR_STRLEN], host[NETADDR_STRLEN];
	struct conn *c;
	int one = 1;

	(void)salen;
	netaddr_format(sa, peer, sizeof(peer));
	netaddr_host(sa, host, sizeof(host));
	if (srv->nconns >= srv->max_conns) {
		conn_refusal(srv,
		    "refusing %s: %zu connections open, limit "
		    "max_connections=%zu",
		    peer, srv->nconns, srv->max_conns);
		close(fd);
		return;
	}
	if (!auth_peer_allowed(srv->auth, host) &&
	    handshakes_from(srv, host) >= CONN_MAX_HANDSHAKES_PER_HOST) {
		conn_refusal(srv,
		    "refusing %s: %d handshakes from that host already, and "
		    "it is not in the allow-list (--allow)",
		    peer, CONN_MAX_HANDSHAKES_PER_HOST);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_err("farm port: out of memory accepting a connection");
		close(fd);
		return;
	}
	c->srv = srv;
	c->id = ++srv->next_conn_id;
	memcpy(c->peer, peer, sizeof(c->peer));
	memcpy(c->peer_host, host, sizeof(c->peer_host));
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
		netaddr_host((struct sockaddr *)&local, c->local_host,
		    sizeof(c->local_host));
		c->local_port = netaddr_port((struct sockaddr *)&local);
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->deadline = evtimer_new(srv->base, deadline_cb, c);
	if (c->bev == NULL || c->deadline == NULL) {
		log_err("farm port: out of memory accepting %s", c->peer);
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		else
			close(fd);
		if (c->deadline != NULL)
			event_free(c->deadline);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&srv->conns, c, link);
	srv->nconns++;
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	/* Until its handshake is done a peer may have us buffer only
	 * max_unauth_conn (conn_readcb() closes it there); then a frame's
	 * worth (frame_next() rejects oversized frames on their header). */
	bufferevent_setwatermark(
	    c->bev, EV_READ, 0, (size_t)srv->cfg->max_unauth_conn + 1);
	/* An absolute deadline, not an idle timer: a byte now and then
	 * must not keep a handshake open. */
	deadline_arm(c);
	/* EV_WRITE stays off: conn_flush() writes replies directly and only
	 * asks the loop for writability when the socket is full.  (A new
	 * bufferevent starts with EV_WRITE enabled.) */
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_enable(c->bev, EV_READ);
	log_debug("conn %llu %s: accepted", (unsigned long long)c->id, c->peer);
}

/*
 * Open a connection of the broker's own to @sa (@salen bytes), owned from
 * the start by relay @relay: a TVM server registered by PUT that the
 * broker relays (--relay-boards all).  The relay hears of the connect, or
 * of its failure, through relay_event().  Returns the connection, or NULL
 * with errno set (nothing to free).
 */
struct conn *
conn_dial(struct server *srv, const struct sockaddr *sa, int salen,
    struct relay *relay)
{
	struct conn *c;
	int one = 1;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->srv = srv;
	c->id = ++srv->next_conn_id;
	c->proto = CONN_PROTO_RPC;
	c->relay = relay;
	netaddr_format(sa, c->peer, sizeof(c->peer));
	netaddr_host(sa, c->peer_host, sizeof(c->peer_host));
	c->bev = bufferevent_socket_new(srv->base, -1, BEV_OPT_CLOSE_ON_FREE);
	/* Unused (the relay keeps the dial's deadline), but every
	 * connection has one. */
	c->deadline = evtimer_new(srv->base, deadline_cb, c);
	if (c->bev == NULL || c->deadline == NULL) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		if (c->deadline != NULL)
			event_free(c->deadline);
		free(c);
		errno = ENOMEM;
		return NULL;
	}
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
	TAILQ_INSERT_TAIL(&srv->conns, c, link);
	srv->nconns++;
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    (size_t)srv->cfg->max_frame + FRAME_HEADER_SIZE);
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
	if (c->relay != NULL)
		relay_conn_gone(c);
	if (c->tracker != NULL)
		tracker_conn_closed(c);
	if (c->agent != NULL)
		agent_link_closed(c);
	c->fr = fast_read_free(c->fr);
	conn_uncharge(c);
	event_free(c->deadline);
	TAILQ_REMOVE(&c->srv->conns, c, link);
	c->srv->nconns--;
	bufferevent_free(c->bev);
	free(c->rpc_key);
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
	if (c->tracker != NULL)
		tracker_conn_closed(c);
	if (c->agent != NULL)
		agent_link_closed(c);
	conn_pause_read(c);
	bufferevent_set_timeouts(c->bev, NULL, c->srv->tv_handshake);
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

	if (evbuffer_get_length(out) == 0 ||
	    (bufferevent_get_enabled(c->bev) & EV_WRITE))
		return;
	/* A bufferevent keeps the front of its output frozen so only it
	 * drains it; thaw it for the duration of our own write. */
	(void)evbuffer_unfreeze(out, 1);
	(void)evbuffer_write(out, bufferevent_getfd(c->bev));
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
	return fast_read_new(c->srv->base, c->bev, fast_read_cb, c, &c->fr);
}

/* Stop reading @c (backpressure, or closing). */
void
conn_pause_read(struct conn *c)
{
	if (c->fr != NULL)
		fast_read_pause(c->fr);
	else
		bufferevent_disable(c->bev, EV_READ);
}

/* Read @c again, unless it is closing. */
void
conn_resume_read(struct conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	if (c->fr != NULL)
		fast_read_resume(c->fr);
	else
		bufferevent_enable(c->bev, EV_READ);
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
	    (size_t)c->srv->cfg->max_frame + FRAME_HEADER_SIZE);
	conn_set_state(c, CONN_READY);
}

/*
 * Whether the peer has already closed or reset the connection, without
 * consuming anything: 1 gone, 0 alive (or unknown).  Used before granting a
 * board, so a board is never handed to a client that already left.
 */
int
conn_peer_gone(const struct conn *c)
{
	char b;
	ssize_t n;

	if (c->state == CONN_CLOSING)
		return 1;
	n = recv(bufferevent_getfd(c->bev), &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return 1;
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return 1;
	return 0;
}

static void
handshake(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	unsigned char magic[4];
	uint32_t m;

	if (evbuffer_copyout(in, magic, sizeof(magic)) < (ev_ssize_t)4)
		return;
	m = frame_get_le32(magic);
	switch (m) {
	case NPUFARM_TVM_TRACKER_MAGIC:
		/* TVM's protocols carry no credentials: the allow-list. */
		if (!auth_peer_allowed(c->srv->auth, c->peer_host)) {
			conn_close(c,
			    "TVM tracker refused: %s is not in the allow-list "
			    "(--allow)",
			    c->peer_host);
			return;
		}
		(void)evbuffer_drain(in, 4);
		if (tracker_conn_start(c) < 0) {
			conn_close(
			    c, "out of memory starting a tracker session");
			return;
		}
		conn_ready(c);
		c->proto = CONN_PROTO_TRACKER;
		break;
	case NPUFARM_TVM_RPC_MAGIC:
		/* The hello continues with its key; the handshake deadline
		 * covers it.  proxy_conn_read() takes it from here. */
		c->proto = CONN_PROTO_RPC;
		break;
	case NPUFARM_AGENT_MAGIC:
		(void)evbuffer_drain(in, 4);
		if (agent_link_start(c) < 0) {
			conn_close(c, "out of memory starting an agent link");
			return;
		}
		/* Handshaking until its hello is welcomed (agent_link.c). */
		c->proto = CONN_PROTO_AGENT;
		break;
	default:
		conn_close(c, "unknown protocol magic %02x %02x %02x %02x",
		    magic[0], magic[1], magic[2], magic[3]);
		return;
	}
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
	if (c->relay != NULL || c->proto == CONN_PROTO_AGENT ||
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
	const struct broker_config *cfg = c->srv->cfg;
	size_t len = evbuffer_get_length(bufferevent_get_input(c->bev));

	if (c->state != CONN_HANDSHAKE)
		return 0;
	c->srv->unauth_bytes += len - c->charged;
	c->charged = len;
	if (len > (size_t)cfg->max_unauth_conn) {
		conn_close(c,
		    "%zu bytes buffered before its handshake was done (limit "
		    "max_unauth_conn=%ld)",
		    len, cfg->max_unauth_conn);
		return -1;
	}
	if (c->srv->unauth_bytes > (size_t)cfg->max_unauth_bytes) {
		conn_close(c,
		    "peers that have not finished a handshake hold %zu bytes "
		    "(limit max_unauth_bytes=%ld)",
		    c->srv->unauth_bytes, cfg->max_unauth_bytes);
		return -1;
	}
	return 0;
}

static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->state == CONN_HANDSHAKE && c->proto == CONN_PROTO_NONE) {
		handshake(c);
		if (c->state == CONN_CLOSING || c->proto == CONN_PROTO_NONE)
			return;
	}
	if (c->relay != NULL)
		relay_read(c);
	else if (c->proto == CONN_PROTO_RPC && c->state != CONN_CLOSING)
		proxy_conn_read(c);
	else if (c->state == CONN_READY && c->proto == CONN_PROTO_TRACKER)
		tracker_conn_read(c);
	else if (c->state != CONN_CLOSING && c->proto == CONN_PROTO_AGENT)
		agent_link_read(c);
	if (c->state == CONN_CLOSING || conn_charge(c) < 0)
		return;
	if (c->proto == CONN_PROTO_TRACKER || c->proto == CONN_PROTO_AGENT)
		conn_frame_deadline(c);
	conn_flush(c);
	conn_quickack_partial(c);
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
	if (c->relay != NULL)
		relay_drained(c);
}

static void
conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (c->relay != NULL && c->state != CONN_CLOSING) {
		relay_event(c, what); /* frees c, unless it just connected */
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->state == CONN_HANDSHAKE)
			log_conn(c, LOG_NOTICE, "closing: %s within %ld ms",
			    c->proto == CONN_PROTO_RPC ? "no complete RPC hello"
						       : "no protocol magic",
			    (long)(c->srv->cfg->handshake_timeout * 1000));
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
