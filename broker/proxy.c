/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RPC handshake on the farm port.  After the 4-byte RPC magic comes i32
 * keylen and the key (the C++ client sends the three parts separately).
 * "server:KEY ..." registers the connection as a board of KEY; anything
 * else is a client: "client:MATCHKEY -timeout=T" from a tracker grant, or
 * "client:KEY" naming a key directly.  Like TVM's proxy, a peer that sends
 * anything after its key before it is paired is closed.
 */
#include "config.h"

#include "proxy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "agent_link.h"
#include "auth.h"
#include "broker_config.h"
#include "conn.h"
#include "err.h"
#include "log.h"
#include "relay.h"
#include "tracker.h"
#include "tracker_int.h"
#include "tvm_rpc.h"

/*
 * Whether @c may speak the RPC proxy protocol: a peer in the allow-list,
 * or an agent's data connection ("server:KEY agent=NAME ...") from the
 * host of the agent NAME, whose link presented the agent token.
 */
static bool
rpc_allowed(struct conn *c, const char *key, bool is_server)
{
	char name[256];

	if (auth_peer_allowed(c->trk->auth, c->peer_host))
		return true;
	if (!is_server ||
	    tracker_hello_option(key, "agent", name, sizeof(name)) == NULL)
		return false;
	return agent_link_from(c->trk->links, name, c->peer_host);
}

static void
hello(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t cap = (size_t)c->trk->cfg->max_key_len + 1;
	struct tvm_rpc_hello h;
	struct tracker_conn *tc;
	struct npufarm_err err;
	char *key, *parse;
	int r;

	key = malloc(cap);
	if (key == NULL) {
		conn_close(c, "out of memory reading an RPC hello");
		return;
	}
	r = tvm_rpc_hello_pull(in, key, cap, &err);
	if (r <= 0) {
		if (r < 0)
			conn_close(c, "RPC hello: %s", err.msg);
		free(key);
		return;
	}
	parse = strdup(key);
	if (parse == NULL) {
		free(key);
		conn_close(c, "out of memory reading an RPC hello");
		return;
	}
	r = tvm_rpc_hello_parse(parse, &h, &err);
	if (r < 0) {
		relay_refuse(c, err.msg);
		goto out;
	}
	tc = tracker_conn_get(c);
	if (tc == NULL) {
		conn_close(c, "out of memory reading an RPC hello");
		goto out;
	}
	tc->rpc_key = key;
	key = NULL;
	if (!rpc_allowed(c, tc->rpc_key, h.is_server)) {
		conn_close(c,
		    "TVM RPC proxy refused: %s is not in the allow-list "
		    "(--allow)",
		    c->peer_host);
		goto out;
	}
	tc->rpc_timeout = h.has_timeout ? h.timeout : 0;
	conn_ready(c);
	if (h.is_server) {
		log_debug("conn %llu %s: board dials in for '%s'",
		    (unsigned long long)c->id, c->peer, h.match);
		(void)tracker_proxy_board(c, h.match, tc->rpc_key);
		goto out;
	}
	if (relays_count(c->trk->relays) >= (size_t)c->trk->cfg->max_relays) {
		relay_refuse(c, "too many relayed sessions (limit max_relays)");
		goto out;
	}
	r = tracker_proxy_client(c, h.match);
	if (r == -ENOENT)
		relay_refuse(c, "no board granted under that matchkey, and no "
				"key of that name has boards");
	else if (r < 0)
		conn_close(c, "out of memory pairing");
out:
	free(parse);
	free(key);
}

static void proxy_conn_read(struct conn *c);

/*
 * An RPC connection until it is paired: a board waiting in the queues (it
 * may carry tracker state: the board it registered, or whose agent data
 * connection it is), or a client on its way to a board.
 */
static const struct conn_ops proxy_ops = {
    .read = proxy_conn_read,
    .closing = tracker_conn_closed,
    .closed = tracker_conn_closed,
    .hello = "no complete RPC hello",
    .flags = CONN_OPS_QUICKACK,
};

/*
 * Bytes on an RPC connection that is not relayed yet: the hello, or a
 * protocol violation by a peer that should be waiting for its pair-up.
 */
static void
proxy_conn_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_HANDSHAKE) {
		hello(c);
		if (c->ops != &proxy_ops) {
			/* Paired at once: the relay's, with the bytes that
			 * came with the hello. */
			c->ops->read(c);
			return;
		}
		if (c->state != CONN_READY)
			return;
	}
	if (evbuffer_get_length(in) > 0)
		conn_close(c, "sent %zu bytes before being paired",
		    evbuffer_get_length(in));
}

/*
 * The listener read the RPC magic on @c (listener_start_fn; @arg is the
 * broker): the hello continues with its key, under the handshake
 * deadline.  Always 0.
 */
int
proxy_conn_start(struct conn *c, void *arg)
{
	c->trk = arg;
	conn_set_ops(c, &proxy_ops, NULL);
	return 0;
}
