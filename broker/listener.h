/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The farm port's listeners: bind, accept (with an EMFILE back-off), admit
 * (max_connections, handshakes per host outside the allow-list) and read
 * each connection's 4-byte magic, which picks the protocol from a table the
 * owner passes in.  The protocols' start functions claim the connection
 * (conn_set_ops()); the listener names none of them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth;
struct conn;
struct conn_set;
struct listener;
struct npufarm_err;
struct sockaddr;

/*
 * Claim @c, whose magic was read, for a protocol (conn_set_ops()); @arg is
 * the table entry's.  0, or -ENOMEM (the listener closes @c).
 */
typedef int listener_start_fn(struct conn *c, void *arg);

struct listener_proto {
	uint32_t magic;
	bool consume;        /* drain the magic (else the protocol reads it) */
	const char *allowed; /* only allow-listed peers: the protocol's
			      * name for the refusal, e.g. "TVM tracker";
			      * NULL: anyone may speak it */
	const char *oom;     /* the close reason when @start fails */
	listener_start_fn *start;
	void *arg; /* borrowed, for @start */
};

int listener_new(struct conn_set *set, const struct auth *auth,
    const struct listener_proto *protos, size_t nprotos,
    struct listener **ret_listener);
struct listener *listener_free(struct listener *l);
int listener_bind(
    struct listener *l, const char *addr, struct npufarm_err *err);
int listener_bind_range(
    struct listener *l, const char *addr, long end, struct npufarm_err *err);
void listener_set_auth(struct listener *l, const struct auth *auth);
void listener_pause(struct listener *l);
size_t listener_count(const struct listener *l);
const char *listener_address(const struct listener *l, size_t i);
void listener_accept(
    struct listener *l, int fd, const struct sockaddr *sa, int salen);
