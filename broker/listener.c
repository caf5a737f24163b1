/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Farm-port listeners and the magic dispatch (see listener.h).
 */
#include "config.h"

#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "auth.h"
#include "broker_config.h"
#include "conn.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "netaddr.h"

/* Handshaking connections from one host outside the allow-list. */
#define LISTENER_MAX_HANDSHAKES_PER_HOST 4
/* Protocols one farm port speaks. */
#define LISTENER_MAX_PROTOS              8

struct listener {
	struct conn_set *set;    /* borrowed, outlives the listener */
	const struct auth *auth; /* borrowed; replaced on reload */
	struct listener_proto protos[LISTENER_MAX_PROTOS];
	size_t nprotos;
	struct evconnlistener *evl[BROKER_MAX_LISTEN];
	char addrs[BROKER_MAX_LISTEN][NETADDR_STRLEN];
	size_t n;
	struct event *resume_ev; /* resumes accepting after EMFILE */
};

static void handshake_read(struct conn *c);

/* A connection whose magic has not come yet. */
static const struct conn_ops listener_ops = {
    .read = handshake_read,
    .hello = "no protocol magic",
    .flags = CONN_OPS_UNCLAIMED,
};

/* Read @c's magic and hand it to that protocol, with what came after. */
static void
handshake_read(struct conn *c)
{
	struct listener *l = c->owner;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	const struct listener_proto *p = NULL;
	unsigned char magic[4];
	uint32_t m;
	size_t i;

	if (c->state != CONN_HANDSHAKE)
		return;
	if (evbuffer_copyout(in, magic, sizeof(magic)) < (ev_ssize_t)4)
		return;
	m = frame_get_le32(magic);
	for (i = 0; i < l->nprotos && p == NULL; i++)
		if (l->protos[i].magic == m)
			p = &l->protos[i];
	if (p == NULL) {
		conn_close(c, "unknown protocol magic %02x %02x %02x %02x",
		    magic[0], magic[1], magic[2], magic[3]);
		return;
	}
	/* TVM's protocols carry no credentials: the allow-list. */
	if (p->allowed != NULL && !auth_peer_allowed(l->auth, c->peer_host)) {
		conn_close(c,
		    "%s refused: %s is not in the allow-list (--allow)",
		    p->allowed, c->peer_host);
		return;
	}
	if (p->consume)
		(void)evbuffer_drain(in, 4);
	if (p->start(c, p->arg) < 0) {
		conn_close(c, "%s", p->oom);
		return;
	}
	if (c->ops != &listener_ops && c->state != CONN_CLOSING &&
	    c->ops->read != NULL)
		c->ops->read(c);
}

/* Handshaking connections from @host. */
static size_t
handshakes_from(const struct conn_set *set, const char *host)
{
	const struct conn *c;
	size_t n = 0;

	TAILQ_FOREACH(c, &set->conns, link)
		if (c->state == CONN_HANDSHAKE &&
		    strcmp(c->peer_host, host) == 0)
			n++;
	return n;
}

/*
 * Take ownership of the accepted socket @fd from peer @sa (@salen bytes)
 * and start its handshake.  On failure the socket is closed and the
 * failure logged.  A host outside the allow-list (which may still link
 * agents, with their token) gets at most LISTENER_MAX_HANDSHAKES_PER_HOST
 * handshakes at a time, so slow hellos from one host cannot take
 * max_connections from everyone else.
 */
void
listener_accept(
    struct listener *l, int fd, const struct sockaddr *sa, int salen)
{
	struct conn_set *set = l->set;
	char peer[NETADDR_STRLEN], host[NETADDR_STRLEN];

	(void)salen;
	netaddr_format(sa, peer, sizeof(peer));
	netaddr_host(sa, host, sizeof(host));
	if (set->nconns >= set->max_conns) {
		conn_refusal(set,
		    "refusing %s: %zu connections open, limit "
		    "max_connections=%zu",
		    peer, set->nconns, set->max_conns);
		close(fd);
		return;
	}
	if (!auth_peer_allowed(l->auth, host) &&
	    handshakes_from(set, host) >= LISTENER_MAX_HANDSHAKES_PER_HOST) {
		conn_refusal(set,
		    "refusing %s: %d handshakes from that host already, and "
		    "it is not in the allow-list (--allow)",
		    peer, LISTENER_MAX_HANDSHAKES_PER_HOST);
		close(fd);
		return;
	}
	(void)conn_accept(set, fd, sa, &listener_ops, l);
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	listener_accept(arg, fd, sa, salen);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	size_t i;

	for (i = 0; i < l->n; i++)
		(void)evconnlistener_enable(l->evl[i]);
}

/* EMFILE and friends: pause accepting for a second instead of spinning. */
static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	static const struct timeval one = {1, 0};
	int e = EVUTIL_SOCKET_ERROR();

	log_warn("farm port: accept failed: %s; pausing accepts for 1 s",
	    strerror(e));
	listener_pause(l);
	(void)evtimer_add(l->resume_ev, &one);
}

/*
 * Listeners for @set's connections (borrowed, outlives them), admitting
 * peers by @auth (borrowed; see listener_set_auth()) and speaking the
 * @nprotos protocols of @protos (copied).  0 or -ENOMEM.
 */
int
listener_new(struct conn_set *set, const struct auth *auth,
    const struct listener_proto *protos, size_t nprotos,
    struct listener **ret_listener)
{
	struct listener *l;

	if (nprotos > LISTENER_MAX_PROTOS)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	l->resume_ev = evtimer_new(set->base, resume_cb, l);
	if (l->resume_ev == NULL) {
		free(l);
		return -ENOMEM;
	}
	l->set = set;
	l->auth = auth;
	memcpy(l->protos, protos, nprotos * sizeof(*protos));
	l->nprotos = nprotos;
	*ret_listener = l;
	return 0;
}

/* Close every listening socket of @l.  Accepts NULL; returns NULL. */
struct listener *
listener_free(struct listener *l)
{
	size_t i;

	if (l == NULL)
		return NULL;
	for (i = 0; i < l->n; i++)
		evconnlistener_free(l->evl[i]);
	event_free(l->resume_ev);
	free(l);
	return NULL;
}

/* Admit peers by @auth from now on (SIGHUP); borrowed. */
void
listener_set_auth(struct listener *l, const struct auth *auth)
{
	l->auth = auth;
}

/* Stop accepting (stopping, or EMFILE). */
void
listener_pause(struct listener *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		(void)evconnlistener_disable(l->evl[i]);
}

/* The farm ports bound so far. */
size_t
listener_count(const struct listener *l)
{
	return l->n;
}

/* The @i-th bound farm port as "host:port"; borrowed from @l. */
const char *
listener_address(const struct listener *l, size_t i)
{
	return l->addrs[i];
}

/*
 * Listen on @addr ("host:port"; port 0 picks one).  Logs the address
 * bound; -errno with the reason in @err on failure.
 */
int
listener_bind(struct listener *l, const char *addr, struct npufarm_err *err)
{
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	struct evconnlistener *evl;
	struct netaddr na;
	int r;

	if (l->n >= BROKER_MAX_LISTEN)
		return err_set(err, -E2BIG, "farm port %s: too many", addr);
	r = netaddr_parse(addr, &na, err);
	if (r < 0)
		return r;
	evl = evconnlistener_new_bind(l->set->base, accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
	    -1, (struct sockaddr *)&na.ss, (int)na.len);
	if (evl == NULL)
		return err_set(err, -errno ? -errno : -EADDRINUSE,
		    "farm port %s: %s", addr, strerror(errno));
	evconnlistener_set_error_cb(evl, accept_error_cb);
	if (getsockname(evconnlistener_get_fd(evl), (struct sockaddr *)&bound,
		&blen) < 0) {
		evconnlistener_free(evl);
		return err_set(
		    err, -errno, "farm port %s: %s", addr, strerror(errno));
	}
	netaddr_format(
	    (struct sockaddr *)&bound, l->addrs[l->n], NETADDR_STRLEN);
	l->evl[l->n++] = evl;
	log_notice("farm port listening on %s", l->addrs[l->n - 1]);
	return 0;
}

/*
 * TVM's rpc_tracker --port P --port-end E: listen on @addr's host at the
 * first port from @addr's that is free, below @end.  Results as
 * listener_bind(); -EADDRINUSE when every port in the range is taken.
 */
int
listener_bind_range(
    struct listener *l, const char *addr, long end, struct npufarm_err *err)
{
	char host[NETADDR_STRLEN], a[NETADDR_STRLEN + 8];
	unsigned first, port;
	int r;

	r = netaddr_split(addr, host, sizeof(host), &first, err);
	if (r < 0)
		return r;
	for (port = first;; port++) {
		(void)snprintf(a, sizeof(a),
		    strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host,
		    port);
		r = listener_bind(l, a, err);
		if (r != -EADDRINUSE || (long)port + 1 >= end)
			break;
		log_info("farm port %s is taken, trying the next one", a);
	}
	if (r == -EADDRINUSE)
		return err_set(err, r,
		    "farm port: every port of %s in [%u, %ld) is taken", host,
		    first, end);
	return r;
}
