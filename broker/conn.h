/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A connection on the farm port.  The first four bytes (the magic) choose
 * the protocol; the connection then belongs to that protocol's handlers.
 * States only move forward: HANDSHAKE -> READY -> CLOSING.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "netaddr.h"

struct agent;
struct bufferevent;
struct event;
struct fast_read;
struct relay;
struct server;
struct tracker_conn;

enum conn_state {
	CONN_HANDSHAKE,
	CONN_READY,
	CONN_CLOSING,
};

enum conn_proto {
	CONN_PROTO_NONE,
	CONN_PROTO_TRACKER,
	CONN_PROTO_RPC,   /* TVM RPC: handshake, waiting, then relayed */
	CONN_PROTO_AGENT, /* npufarm agent link */
};

struct conn {
	struct server *srv;      /* borrowed, outlives conn */
	struct bufferevent *bev; /* owned; closes the fd */
	enum conn_state state;
	enum conn_proto proto;
	uint64_t id;
	char peer[NETADDR_STRLEN];       /* "host:port" of the peer */
	char peer_host[NETADDR_STRLEN];  /* numeric host of the peer */
	char local_host[NETADDR_STRLEN]; /* our address on this connection */
	unsigned local_port;             /* our port on this connection */
	struct agent *agent;             /* owned, agent link state */
	struct tracker_conn *tracker;    /* owned, tracker protocol state */
	char *rpc_key;        /* owned: the RPC hello key, verbatim */
	double rpc_timeout;   /* s, from -timeout=T; 0: none */
	struct relay *relay;  /* shared with the peer; see relay.c */
	struct fast_read *fr; /* conn_fast_read(): large reads */
	uint64_t frames_in;
	struct event *deadline; /* handshake, or a partial frame: absolute */
	size_t charged;         /* input counted in srv->unauth_bytes */
	bool quiet_close;       /* conn_close() logs at debug (rate-limited) */
	TAILQ_ENTRY(conn) link;
};

void conn_accept(
    struct server *srv, int fd, const struct sockaddr *sa, int salen);
struct conn *conn_dial(struct server *srv, const struct sockaddr *sa, int salen,
    struct relay *relay);
void conn_close(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void conn_free(struct conn *c);
void conn_ready(struct conn *c);
int conn_fast_read(struct conn *c);
void conn_pause_read(struct conn *c);
void conn_resume_read(struct conn *c);
void conn_flush(struct conn *c);
int conn_peer_gone(const struct conn *c);
void conn_frame_deadline(struct conn *c);
void conn_refusal(struct server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_conn(c, level, fmt, ...)                                      \
	log_msg(level, "conn %llu %s: " fmt, (unsigned long long)(c)->id, \
	    (c)->peer, ##__VA_ARGS__)
