/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A connection on the farm port: the transport only.  It owns the socket's
 * bufferevent, the handshake deadline, the unauthenticated-bytes charge and
 * the two-step close; what the bytes mean belongs to whoever claimed the
 * connection with conn_set_ops() (the listener until the magic is read,
 * then a protocol, then perhaps the relay).  The transport calls its owner
 * only through struct conn_ops and never names a protocol.
 * States only move forward: HANDSHAKE -> READY -> CLOSING.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "log.h"
#include "netaddr.h"

struct agent;
struct broker_config;
struct bufferevent;
struct conn;
struct event;
struct event_base;
struct fast_read;
struct timeval;
struct tracker;
struct tracker_conn;

enum conn_state {
	CONN_HANDSHAKE,
	CONN_READY,
	CONN_CLOSING,
};

/* struct conn_ops flags. */
enum {
	/* No protocol yet (the listener reading the magic): nothing is
	 * charged, flushed or acknowledged after its read. */
	CONN_OPS_UNCLAIMED = 1 << 0,
	/* Length-prefixed frames: a partial frame buffered between frames
	 * must complete within handshake_timeout. */
	CONN_OPS_FRAMED = 1 << 1,
	/* The peer splits its frames (TVM's Python and C++ peers): ACK a
	 * partial read at once instead of after the delayed-ACK timer. */
	CONN_OPS_QUICKACK = 1 << 2,
};

/*
 * What a connection's owner hears from the transport.  Every member may be
 * NULL.  The owner's state is reached through conn->owner.
 */
struct conn_ops {
	/* Bytes arrived (also while closing: check c->state). */
	void (*read)(struct conn *c);
	/* Output queued earlier has been written out (not while closing). */
	void (*drained)(struct conn *c);
	/* EOF, error, timeout or a dial's connect, while not closing.  The
	 * callee frees @c (conn_free()) or keeps it, and returns at once.
	 * NULL: the transport logs it and frees @c. */
	void (*event)(struct conn *c, short what);
	/* conn_close(): detach @c from everything at once (nothing is
	 * granted to it again); it is freed later. */
	void (*closing)(struct conn *c);
	/* conn_free(): the owner's last word; @c is freed after it. */
	void (*closed)(struct conn *c);
	/* What a peer still in the handshake at its deadline failed to
	 * send, for the log ("no complete RPC hello"). */
	const char *hello;
	unsigned flags; /* CONN_OPS_* */
};

/*
 * The farm port's connections: the transport layer's context, one per
 * broker.  Its fields are read by the listener (and, for the list, by the
 * protocols that walk every connection); conn.c alone writes them.
 */
struct conn_set {
	struct event_base *base;         /* borrowed */
	const struct broker_config *cfg; /* borrowed, outlives the set */
	TAILQ_HEAD(, conn) conns;
	size_t nconns;
	size_t max_conns;          /* max_connections, resolved by the owner */
	size_t unauth_bytes;       /* buffered from handshaking peers */
	struct log_limit refusals; /* conn_refusal(): 1 line/s */
	uint64_t next_conn_id;
	const struct timeval *tv_handshake; /* a closing peer's time to read
					     * its final reply; NULL: none */
	const struct conn *reading_open;    /* in its own read callback, woken
					     * without the peer's FIN */
};

struct conn {
	struct conn_set *set;       /* borrowed, outlives conn */
	struct tracker *trk;        /* borrowed: the farm protocols'
				     * context (tracker.h), set when one
				     * claims the connection; unused by
				     * the transport */
	const struct conn_ops *ops; /* never NULL */
	void *owner;                /* the ops' state, or NULL */
	struct bufferevent *bev;    /* owned; closes the fd */
	enum conn_state state;
	uint64_t id;
	char peer[NETADDR_STRLEN];       /* "host:port" of the peer */
	char peer_host[NETADDR_STRLEN];  /* numeric host of the peer */
	char local_host[NETADDR_STRLEN]; /* our address on this connection */
	unsigned local_port;             /* our port on this connection */
	struct tracker_conn *tracker;    /* tracker.c's state: boards it
					  * registered, requests it made,
					  * an RPC hello; unused by the
					  * transport */
	struct fast_read *fr;            /* conn_fast_read(): large reads */
	struct event *rev; /* conn_direct_read(): our own read event */
	unsigned rstop;    /* why rev must not be armed: CONN_RSTOP_* */
	bool rev_armed;    /* rev is added to the loop */
	uint64_t frames_in;
	struct event *deadline; /* handshake, or a partial frame: absolute */
	size_t charged;         /* input counted in set->unauth_bytes */
	bool quiet_close;       /* conn_close() logs at debug (rate-limited) */
	TAILQ_ENTRY(conn) link;
};

int conn_set_new(struct event_base *base, const struct broker_config *cfg,
    size_t max_conns, struct conn_set **ret_set);
struct conn_set *conn_set_free(struct conn_set *set);
struct conn *conn_accept(struct conn_set *set, int fd,
    const struct sockaddr *sa, const struct conn_ops *ops, void *owner);
struct conn *conn_dial(struct conn_set *set, const struct sockaddr *sa,
    int salen, const struct conn_ops *ops, void *owner);
void conn_set_ops(struct conn *c, const struct conn_ops *ops, void *owner);
void conn_close(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void conn_free(struct conn *c);
void conn_ready(struct conn *c);
int conn_fast_read(struct conn *c);
int conn_direct_read(struct conn *c);
void conn_pause_read(struct conn *c);
void conn_resume_read(struct conn *c);
void conn_flush(struct conn *c);
int conn_peer_gone(const struct conn *c);
void conn_refusal(struct conn_set *set, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_conn(c, level, fmt, ...)                                      \
	log_msg(level, "conn %llu %s: " fmt, (unsigned long long)(c)->id, \
	    (c)->peer, ##__VA_ARGS__)
