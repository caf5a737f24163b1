/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Agent link state machine: DOWN --connect--> HELLO --welcome--> UP.
 * Any failure goes back to DOWN and schedules a reconnect after a delay
 * that doubles from LINK_BACKOFF_MIN_MS up to LINK_BACKOFF_MAX_MS, with
 * +-20% jitter so a rack of agents does not reconnect in lockstep after a
 * broker restart; a welcome resets it.  The broker's address is resolved
 * again at every attempt (it may have moved).
 */
#include "config.h"

#include "link.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "frame.h"
#include "json_util.h"
#include "log.h"
#include "netaddr.h"

#define LINK_BACKOFF_MIN_MS 100
#define LINK_BACKOFF_MAX_MS 10000
#define LINK_MAX_FRAME      NPUFARM_MAX_FRAME /* artifact chunks are large */

enum link_state {
	LINK_DOWN,
	LINK_HELLO,
	LINK_UP,
};

/* A report the broker has not acknowledged yet (resent on every link). */
struct report {
	char *id;
	json_t *frame;
	TAILQ_ENTRY(report) link;
};

struct link {
	struct event_base *base; /* borrowed */
	struct link_config cfg;  /* strings borrowed, outlive the link */
	enum link_state state;
	struct bufferevent *bev;      /* NULL while down */
	struct event *retry_ev;       /* reconnect timer */
	struct event *beat_ev;        /* heartbeat timer, while up */
	unsigned backoff_ms;          /* next reconnect delay */
	int heartbeat_ms;             /* from the welcome */
	int64_t board_id;             /* from the welcome */
	uint64_t attempts;            /* connection attempts so far */
	TAILQ_HEAD(, report) reports; /* unacknowledged, oldest first */
	size_t nreports;
};

static void link_readcb(struct bufferevent *bev, void *arg);
static void link_eventcb(struct bufferevent *bev, short what, void *arg);

static unsigned
jitter(unsigned ms)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)ms * 2654435761u;
	/* ms * [0.8, 1.2) */
	return ms * 8 / 10 + (unsigned)((uint64_t)r * (ms * 4 / 10 + 1) >> 32);
}

static void
link_down(struct link *l, const char *why)
{
	bool was_up = l->state == LINK_UP;
	struct timeval tv;
	unsigned ms;

	if (l->bev != NULL) {
		bufferevent_free(l->bev);
		l->bev = NULL;
	}

	if (was_up)
		log_warn("link to %s lost: %s", l->cfg.broker, why);
	else
		log_notice("link to %s: %s", l->cfg.broker, why);
	l->state = LINK_DOWN;
	if (was_up && l->cfg.event != NULL)
		l->cfg.event(l->cfg.arg, false);
	(void)event_del(l->beat_ev);
	ms = jitter(l->backoff_ms);
	l->backoff_ms = l->backoff_ms * 2 > LINK_BACKOFF_MAX_MS
			    ? LINK_BACKOFF_MAX_MS
			    : l->backoff_ms * 2;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	log_debug("reconnecting in %u ms", ms);
	(void)evtimer_add(l->retry_ev, &tv);
}

static int
send_json(struct link *l, json_t *v)
{
	return json_util_add_frame(bufferevent_get_output(l->bev), v);
}

static int
send_hello(struct link *l)
{
	json_t *tags = NULL, *v;

	if (l->cfg.tags != NULL) {
		tags = json_loads(l->cfg.tags, 0, NULL);
		if (tags == NULL)
			return -EINVAL;
	}
	v = json_pack("{sssisssssssosbs[ss]}", "type", "hello", "protocol",
	    NPUFARM_PROTOCOL_VERSION, "name", l->cfg.name, "key", l->cfg.key,
	    "version", NPUFARM_VERSION, "tags", tags ? tags : json_object(),
	    "tvm", l->cfg.tvm, "runners", "kernel", "exec");
	/* Only when configured: older brokers refuse unknown hello fields. */
	if (v != NULL && l->cfg.token != NULL &&
	    json_object_set_new(v, "token", json_string(l->cfg.token)) < 0) {
		json_decref(v);
		return -ENOMEM;
	}
	return send_json(l, v);
}

static void
connect_now(struct link *l)
{
	struct npufarm_err err;
	struct netaddr na;
	int one = 1, r;

	l->attempts++;
	r = netaddr_parse(l->cfg.broker, &na, &err);
	if (r < 0) {
		link_down(l, err.msg);
		return;
	}
	l->bev = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (l->bev == NULL) {
		link_down(l, "out of memory");
		return;
	}
	bufferevent_setcb(l->bev, link_readcb, NULL, link_eventcb, l);
	bufferevent_setwatermark(
	    l->bev, EV_READ, 0, LINK_MAX_FRAME + FRAME_HEADER_SIZE);
	if (bufferevent_socket_connect(
		l->bev, (struct sockaddr *)&na.ss, (int)na.len) < 0) {
		link_down(l, strerror(errno));
		return;
	}
	(void)setsockopt(bufferevent_getfd(l->bev), IPPROTO_TCP, TCP_NODELAY,
	    &one, sizeof(one));
	l->state = LINK_HELLO;
	if (bufferevent_write(l->bev, "NPUF", 4) < 0 || send_hello(l) < 0) {
		link_down(l, "cannot queue the hello");
		return;
	}
	bufferevent_enable(l->bev, EV_READ | EV_WRITE);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	connect_now(arg);
}

static void
beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;

	if (l->state == LINK_UP &&
	    send_json(l, json_pack("{ss}", "type", "heartbeat")) < 0)
		link_down(l, "cannot queue a heartbeat");
}

static void
resend_reports(struct link *l)
{
	struct report *r;

	TAILQ_FOREACH(r, &l->reports, link) {
		json_incref(r->frame);
		if (send_json(l, r->frame) < 0) {
			link_down(l, "cannot queue a report");
			return;
		}
	}
	if (l->nreports > 0)
		log_info("resent %zu unacknowledged reports", l->nreports);
}

/* {"type": "ack", "id": ID}: the broker committed report ID. */
static void
handle_ack(struct link *l, json_t *v)
{
	const char *id = json_string_value(json_object_get(v, "id"));
	struct report *r;

	if (id == NULL)
		return;
	TAILQ_FOREACH(r, &l->reports, link)
		if (strcmp(r->id, id) == 0)
			break;
	if (r == NULL)
		return; /* a resend's second ack */
	TAILQ_REMOVE(&l->reports, r, link);
	l->nreports--;
	log_debug("report %s acknowledged", r->id);
	free(r->id);
	json_decref(r->frame);
	free(r);
}

static void
handle_frame(struct link *l, json_t *v)
{
	const char *type = json_string_value(json_object_get(v, "type"));
	struct timeval tv;
	char msg[256];

	if (type == NULL) {
		link_down(l, "broker sent a frame without a type");
		return;
	}
	if (strcmp(type, "error") == 0) {
		const char *m =
		    json_string_value(json_object_get(v, "message"));
		const char *code =
		    json_string_value(json_object_get(v, "code"));

		(void)snprintf(msg, sizeof(msg), "broker refused: %s (%s)",
		    m != NULL ? m : "no message", code != NULL ? code : "?");
		log_err("%s", msg);
		link_down(l, msg);
		return;
	}
	if (strcmp(type, "welcome") == 0 && l->state == LINK_HELLO) {
		l->heartbeat_ms =
		    (int)json_integer_value(json_object_get(v, "heartbeat_ms"));
		l->board_id =
		    json_integer_value(json_object_get(v, "board_id"));
		if (l->heartbeat_ms <= 0)
			l->heartbeat_ms = 2000;
		l->state = LINK_UP;
		l->backoff_ms = LINK_BACKOFF_MIN_MS;
		tv.tv_sec = l->heartbeat_ms / 1000;
		tv.tv_usec = (suseconds_t)(l->heartbeat_ms % 1000) * 1000;
		(void)event_add(l->beat_ev, &tv);
		log_notice("linked to %s as '%s' (board %lld, key '%s')",
		    l->cfg.broker, l->cfg.name, (long long)l->board_id,
		    l->cfg.key);
		resend_reports(l);
		if (l->state == LINK_UP && l->cfg.event != NULL)
			l->cfg.event(l->cfg.arg, true);
		return;
	}
	if (l->state == LINK_UP && strcmp(type, "ack") == 0) {
		handle_ack(l, v);
		return;
	}
	if (l->state == LINK_UP && l->cfg.frame != NULL) {
		l->cfg.frame(l->cfg.arg, type, v);
		return;
	}
	(void)snprintf(msg, sizeof(msg), "unexpected frame '%.32s'", type);
	link_down(l, msg);
}

static void
link_readcb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct npufarm_err err;
	json_t *v;
	int r;

	while (l->bev != NULL) {
		r = frame_pull_json(
		    in, LINK_MAX_FRAME, JSON_UTIL_MAX_DEPTH, &v, &err);
		if (r == FRAME_INCOMPLETE)
			return;
		if (r < 0) {
			link_down(l, "broker sent a malformed frame");
			return;
		}
		if (r == FRAME_BAD_JSON) {
			link_down(l, err.msg);
			return;
		}
		handle_frame(l, v); /* may free l->bev */
		json_decref(v);
	}
}

static void
link_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct link *l = arg;
	char msg[160];

	if (what & BEV_EVENT_CONNECTED)
		return;
	(void)snprintf(msg, sizeof(msg), "%s",
	    (what & BEV_EVENT_ERROR) ? strerror(EVUTIL_SOCKET_ERROR())
				     : "broker closed the link");
	link_down(l, msg);
}

/*
 * Start linking to the broker described by @cfg (its strings must outlive
 * the link) on @base: the first attempt is made at once, failures are
 * retried forever.  Returns 0 or -ENOMEM.
 */
int
link_new(struct event_base *base, const struct link_config *cfg,
    struct link **ret_link, struct npufarm_err *err)
{
	struct link *l;

	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	l->base = base;
	l->cfg = *cfg;
	l->backoff_ms = LINK_BACKOFF_MIN_MS;
	TAILQ_INIT(&l->reports);
	l->retry_ev = evtimer_new(base, retry_cb, l);
	l->beat_ev = event_new(base, -1, EV_PERSIST, beat_cb, l);
	if (l->retry_ev == NULL || l->beat_ev == NULL) {
		link_free(l);
		return err_set(err, -ENOMEM, "out of memory");
	}
	connect_now(l);
	*ret_link = l;
	return 0;
}

/* Close the link and free it.  Accepts NULL; returns NULL. */
struct link *
link_free(struct link *l)
{
	struct report *r;

	if (l == NULL)
		return NULL;
	if (l->nreports > 0)
		log_warn("%zu reports were never acknowledged by the broker",
		    l->nreports);
	while ((r = TAILQ_FIRST(&l->reports)) != NULL) {
		TAILQ_REMOVE(&l->reports, r, link);
		free(r->id);
		json_decref(r->frame);
		free(r);
	}
	if (l->bev != NULL)
		bufferevent_free(l->bev);
	if (l->retry_ev != NULL)
		event_free(l->retry_ev);
	if (l->beat_ev != NULL)
		event_free(l->beat_ev);
	free(l);
	return NULL;
}

/* True while the broker has welcomed us. */
bool
link_up(const struct link *l)
{
	return l->state == LINK_UP;
}

/*
 * Send frame @v (reference stolen) if the link is up; dropped otherwise.
 * Returns 0, -ENOTCONN or -ENOMEM (the link is then restarted).
 */
int
link_send(struct link *l, json_t *v)
{
	if (l->state != LINK_UP) {
		json_decref(v);
		return -ENOTCONN;
	}
	if (send_json(l, v) < 0) {
		link_down(l, "cannot queue a frame");
		return -ENOMEM;
	}
	return 0;
}

/*
 * Send report @v (reference stolen) under @id, and keep it until the broker
 * acknowledges @id after committing it: it is resent on every new link
 * until then.  Returns 0 or -ENOMEM.
 */
int
link_report(struct link *l, const char *id, json_t *v)
{
	struct report *r;

	if (v == NULL)
		return -ENOMEM;
	r = calloc(1, sizeof(*r));
	if (r == NULL || (r->id = strdup(id)) == NULL) {
		free(r);
		json_decref(v);
		return -ENOMEM;
	}
	r->frame = v;
	TAILQ_INSERT_TAIL(&l->reports, r, link);
	l->nreports++;
	if (l->state == LINK_UP) {
		json_incref(v);
		if (send_json(l, v) < 0)
			link_down(l, "cannot queue a report");
	}
	return 0;
}
