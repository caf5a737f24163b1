/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Agent links.  After the 4-byte NPUF magic both directions carry the same
 * int32-length-prefixed JSON frames as the tracker protocol, each an object
 * with a "type".  The first frame must be a hello with the protocol version;
 * the broker answers welcome (with the heartbeat period) or an error and
 * closes.  A link that sends nothing for three heartbeat periods is closed
 * and its board goes offline.  One agent per name: a second is refused.
 */
#include "config.h"

#include "agent_link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include <npufarm/protocol.h>

#include "conn.h"
#include "err.h"
#include "frame.h"
#include "json_util.h"
#include "ledger.h"
#include "log.h"
#include "server.h"

/* Frames handled per read callback before yielding. */
#define AGENT_MAX_FRAMES_PER_EVENT 16
/* Heartbeat periods a link may miss before it is considered gone. */
#define AGENT_MISSED_HEARTBEATS    3

struct agent {
	struct conn *conn; /* borrowed: the link */
	char *name;        /* unique among live agents */
	char *key;
	int64_t board_id;      /* ledger row */
	bool welcomed;         /* hello accepted */
	struct event *silence; /* fires after missed heartbeats */
	TAILQ_ENTRY(agent) link;
};

static int
send_json(struct conn *c, json_t *v)
{
	return json_util_add_frame(bufferevent_get_output(c->bev), v);
}

/* Send {"type":"error",...} and close the link with the same reason. */
static void
refuse(struct conn *c, const char *code, const char *fault, const char *msg)
{
	(void)send_json(c, json_pack("{ssssssss}", "type", "error", "code",
			       code, "fault", fault, "message", msg));
	conn_close(c, "agent link: %s", msg);
}

static void
silence_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	char msg[128];

	(void)snprintf(msg, sizeof(msg),
	    "no heartbeat from agent '%s' for %d periods", a->name,
	    AGENT_MISSED_HEARTBEATS);
	conn_close(a->conn, "%s", msg);
}

static void
rearm(struct agent *a)
{
	const struct broker_config *cfg = a->conn->srv->cfg;
	double s = cfg->agent_heartbeat * AGENT_MISSED_HEARTBEATS;
	struct timeval tv = {
	    (time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};

	(void)evtimer_add(a->silence, &tv);
}

static struct agent *
agent_by_name(struct server *srv, const char *name)
{
	struct agent *a;

	TAILQ_FOREACH(a, &srv->agents, link)
		if (a->welcomed && strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static void
handle_hello(struct agent *a, json_t *root)
{
	struct conn *c = a->conn;
	struct server *srv = c->srv;
	const char *type, *name, *key, *version;
	json_t *tags = NULL, *runners = NULL;
	struct npufarm_err err;
	json_error_t jerr;
	struct agent *other;
	char msg[256];
	int tvm = 0;
	json_int_t protocol;
	int r;

	if (json_unpack_ex(root, &jerr, JSON_STRICT,
		"{s:s, s:I, s:s, s:s, s:s, s?o, s?b, s?o}", "type", &type,
		"protocol", &protocol, "name", &name, "key", &key, "version",
		&version, "tags", &tags, "tvm", &tvm, "runners",
		&runners) < 0) {
		(void)snprintf(msg, sizeof(msg), "hello: %s", jerr.text);
		refuse(c, "bad-hello", "client", msg);
		return;
	}
	if (protocol != NPUFARM_PROTOCOL_VERSION) {
		(void)snprintf(msg, sizeof(msg),
		    "hello: protocol %lld, this broker speaks %d",
		    (long long)protocol, NPUFARM_PROTOCOL_VERSION);
		refuse(c, "protocol-version", "client", msg);
		return;
	}
	if (name[0] == '\0' || key[0] == '\0' ||
	    strlen(name) > (size_t)srv->cfg->max_key_len ||
	    strlen(key) > (size_t)srv->cfg->max_key_len) {
		(void)snprintf(msg, sizeof(msg),
		    "hello: name and key must be 1..%ld bytes",
		    srv->cfg->max_key_len);
		refuse(c, "bad-hello", "client", msg);
		return;
	}
	other = agent_by_name(srv, name);
	if (other != NULL) {
		(void)snprintf(msg, sizeof(msg),
		    "an agent named '%.64s' is already connected from %s", name,
		    other->conn->peer);
		refuse(c, "duplicate-name", "client", msg);
		return;
	}
	a->name = strdup(name);
	a->key = strdup(key);
	if (a->name == NULL || a->key == NULL) {
		refuse(c, "out-of-memory", "server", "out of memory");
		return;
	}
	r = ledger_board_upsert(srv->ledger, "agent", key, name,
	    ledger_now_us(), &a->board_id, NULL, &err);
	if (r >= 0)
		r = ledger_event(srv->ledger, "board_online", a->board_id,
		    c->peer, ledger_now_us(), &err);
	if (r < 0) {
		server_ledger_failed(srv, &err);
		refuse(c, "ledger", "server", "the ledger refused the board");
		return;
	}
	a->welcomed = true;
	log_notice("agent '%s' (key '%s', %s) connected from %s", a->name,
	    a->key, version, c->peer);
	if (send_json(c, json_pack("{sssisIsi}", "type", "welcome", "protocol",
			     NPUFARM_PROTOCOL_VERSION, "board_id",
			     (json_int_t)a->board_id, "heartbeat_ms",
			     (int)(srv->cfg->agent_heartbeat * 1000))) < 0)
		conn_close(c, "out of memory answering hello");
}

static void
dispatch(struct agent *a, json_t *root)
{
	const char *type = json_string_value(json_object_get(root, "type"));
	char msg[160];

	if (type == NULL) {
		refuse(a->conn, "bad-frame", "client",
		    "frame: expected an object with a string \"type\"");
		return;
	}
	if (!a->welcomed) {
		if (strcmp(type, "hello") == 0)
			handle_hello(a, root);
		else {
			(void)snprintf(msg, sizeof(msg),
			    "frame of type '%.32s' before hello", type);
			refuse(a->conn, "no-hello", "client", msg);
		}
		return;
	}
	if (strcmp(type, "heartbeat") == 0)
		return; /* any frame proves life; see agent_link_read() */
	(void)snprintf(msg, sizeof(msg), "unknown frame type '%.32s'", type);
	refuse(a->conn, "unknown-type", "client", msg);
}

/* Attach agent state to @c after its magic.  0 or -ENOMEM. */
int
agent_link_start(struct conn *c)
{
	struct agent *a;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->conn = c;
	a->silence = evtimer_new(c->srv->base, silence_cb, a);
	if (a->silence == NULL) {
		free(a);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&c->srv->agents, a, link);
	c->agent = a;
	rearm(a);
	return 0;
}

/*
 * Frames on agent link @c.  Every frame counts as a sign of life; a
 * violation closes the link with a reason, answered first with an error
 * frame where the peer can still use one.
 */
void
agent_link_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	const struct broker_config *cfg = c->srv->cfg;
	struct agent *a = c->agent;
	struct npufarm_err err;
	const char *body;
	json_t *root;
	size_t len;
	int n, r;

	for (n = 0; n < AGENT_MAX_FRAMES_PER_EVENT; n++) {
		r = frame_next(in, (size_t)cfg->max_frame, &body, &len);
		if (r == FRAME_INCOMPLETE)
			return;
		if (r < 0) {
			conn_close(
			    c, r == -EMSGSIZE
				   ? "agent frame over max_frame or negative"
				   : "zero-length agent frame");
			return;
		}
		r = json_util_load(
		    body, len, (int)cfg->max_json_depth, &root, &err);
		frame_consume(in, len);
		if (r < 0) {
			refuse(c, "bad-json", "client", err.msg);
			return;
		}
		rearm(a);
		if (!json_is_object(root))
			refuse(c, "bad-frame", "client",
			    "frame: expected a JSON object");
		else
			dispatch(a, root);
		json_decref(root);
		if (c->state == CONN_CLOSING)
			return;
	}
	if (evbuffer_get_length(in) > 0)
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

/* The link is gone: its board goes offline.  Idempotent; frees c->agent. */
void
agent_link_closed(struct conn *c)
{
	struct agent *a = c->agent;
	struct server *srv = c->srv;
	struct npufarm_err err;
	const char *why =
	    srv->stopping ? "broker stopping" : "agent link closed";

	if (a == NULL)
		return;
	if (a->welcomed) {
		if (ledger_board_state(srv->ledger, a->board_id, "offline", why,
			ledger_now_us(), &err) < 0 ||
		    ledger_event(srv->ledger, "board_offline", a->board_id, why,
			ledger_now_us(), &err) < 0)
			server_ledger_failed(srv, &err);
		log_notice("agent '%s' offline: %s", a->name, why);
	}
	TAILQ_REMOVE(&srv->agents, a, link);
	event_free(a->silence);
	free(a->name);
	free(a->key);
	free(a);
	c->agent = NULL;
}
