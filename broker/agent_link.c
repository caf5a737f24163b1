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

#include <npufarm/outcome.h>
#include <npufarm/protocol.h>

#include "auth.h"
#include "board.h"
#include "broker_config.h"
#include "clock.h"
#include "conn.h"
#include "err.h"
#include "frame.h"
#include "json_util.h"
#include "lease.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "scheduler.h"
#include "tags.h"
#include "tracker.h"

/* Frames handled per read callback before yielding. */
#define AGENT_MAX_FRAMES_PER_EVENT 16
/* Heartbeat periods a link may miss before it is considered gone. */
#define AGENT_MISSED_HEARTBEATS    3

/* A report to acknowledge once the ledger batch holding it is committed. */
struct ack {
	uint64_t seq;    /* ledger_batch_seq() of the write */
	uint64_t failed; /* ledger failures before it */
	STAILQ_ENTRY(ack) link;
	char id[];
};

/* Per-address wrong agent tokens: the back-off. */
#define AGENT_GUESS_SLOTS 64
struct agent_guess {
	char host[NETADDR_STRLEN]; /* "" = free */
	unsigned fails;            /* wrong tokens in a row */
	int64_t last_us;           /* the last one */
	int64_t until_us;          /* hellos refused unchecked until then */
};

/* Frame types others handle (agent_link_on_frame()). */
#define AGENT_MAX_HANDLERS 8
struct agent_handler {
	const char *type; /* borrowed, static */
	agent_frame_fn *fn;
	void *arg;
};

/* Every agent link of the broker (agent_links_new()). */
struct agent_links {
	struct event_base *base;         /* borrowed */
	const struct broker_config *cfg; /* borrowed */
	struct ledger *ledger;           /* borrowed */
	struct metrics *metrics;         /* borrowed */
	struct tracker *trk;             /* borrowed: the agents' boards */
	struct board_registry *boards;   /* borrowed: ... found by name, id */
	const struct auth *auth;         /* borrowed; agent_links_set_auth() */
	bool stopping;                   /* the broker is going down */
	TAILQ_HEAD(, agent) agents;
	struct agent_guess guesses[AGENT_GUESS_SLOTS];
	struct agent_handler handlers[AGENT_MAX_HANDLERS];
	size_t nhandlers;
};

struct agent {
	struct conn *conn;         /* borrowed: the link */
	struct agent_links *links; /* borrowed: all of them */
	char *name;                /* unique among live agents */
	char *key;
	int64_t board_id;      /* ledger row */
	bool welcomed;         /* hello accepted */
	struct event *silence; /* fires after missed heartbeats */
	int64_t heard_us;      /* its last frame, wall clock */
	STAILQ_HEAD(, ack) acks;
	TAILQ_ENTRY(agent) link;
};

/* The agent links of agent link @c (claimed by agent_link_start()). */
static struct agent_links *
links_of(const struct conn *c)
{
	return ((const struct agent *)c->owner)->links;
}

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

	if (a->name == NULL) /* the handshake deadline is conn.c's */
		return;
	conn_close(a->conn, "no heartbeat from agent '%s' for %d periods",
	    a->name, AGENT_MISSED_HEARTBEATS);
}

/* Wrong tokens from one address before hellos from it wait. */
#define AGENT_GUESSES_FREE    3
/* The longest wait, and how long a run of wrong tokens is remembered. */
#define AGENT_GUESS_MAX_US    (30 * 1000000LL)
#define AGENT_GUESS_FORGET_US (600 * 1000000LL)

static struct agent_guess *
guess_find(struct agent_links *al, const char *host, bool add)
{
	struct agent_guess *g, *old = &al->guesses[0];
	size_t i;

	for (i = 0; i < AGENT_GUESS_SLOTS; i++) {
		g = &al->guesses[i];
		if (strcmp(g->host, host) == 0)
			return g;
		if (g->last_us < old->last_us)
			old = g;
	}
	if (!add)
		return NULL;
	memset(old, 0, sizeof(*old));
	(void)snprintf(old->host, sizeof(old->host), "%s", host);
	return old;
}

/*
 * A wrong agent token from @c's host: after AGENT_GUESSES_FREE in a row,
 * hellos from there are refused unchecked for a doubling time (100 ms up
 * to 30 s).  Logged at most once a second.
 */
static void
guess_wrong(struct conn *c)
{
	struct agent_guess *g = guess_find(links_of(c), c->peer_host, true);
	int64_t now = ledger_now_us(), wait = 100000;

	if (now - g->last_us > AGENT_GUESS_FORGET_US)
		g->fails = 0;
	g->fails++;
	g->last_us = now;
	if (g->fails >= AGENT_GUESSES_FREE) {
		unsigned k = g->fails - AGENT_GUESSES_FREE;

		wait = k >= 9 ? AGENT_GUESS_MAX_US : wait << k;
		if (wait > AGENT_GUESS_MAX_US)
			wait = AGENT_GUESS_MAX_US;
		g->until_us = now + wait;
	}
	/* The first few are logged as every refusal; then once a second. */
	if (g->fails <= AGENT_GUESSES_FREE)
		return;
	c->quiet_close = true;
	conn_refusal(c->set,
	    "agent hello from %s with a wrong or missing token (%u in a "
	    "row); its hellos wait",
	    c->peer, g->fails);
}

/* Whether hellos from @c's host wait after wrong tokens. */
static bool
guess_waiting(struct conn *c, char *msg, size_t len)
{
	struct agent_guess *g = guess_find(links_of(c), c->peer_host, false);
	int64_t now = ledger_now_us();

	if (g == NULL || now >= g->until_us)
		return false;
	(void)snprintf(msg, len,
	    "%u wrong agent tokens from %s: hellos from there are refused "
	    "for %.1f s more",
	    g->fails, c->peer_host, (double)(g->until_us - now) / 1e6);
	c->quiet_close = true;
	conn_refusal(c->set, "%s", msg);
	return true;
}

/* Whether @s has a control character (a byte below 0x20, or DEL). */
static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static void
rearm(struct agent *a)
{
	const struct broker_config *cfg = a->links->cfg;
	double s = cfg->agent_heartbeat * AGENT_MISSED_HEARTBEATS;
	struct timeval tv = clock_tv(s);

	(void)evtimer_add(a->silence, &tv);
}

/* The welcomed agent named @name (it has a board), or NULL. */
static struct agent *
agent_by_name(struct agent_links *al, const char *name)
{
	return board_agent_by_name(al->boards, name);
}

/* Welcomed agent @a's board, or NULL (the link is failing). */
struct board *
agent_link_board(const struct agent *a)
{
	return a->name != NULL ? board_by_agent(a->links->boards, a->name)
			       : NULL;
}

/* The SCHED_CAP_* of a hello's "runners": ["kernel", "exec"].  -1: bad. */
static int
runners_caps(const json_t *runners, char *msg, size_t len)
{
	const json_t *v;
	unsigned caps = 0;
	size_t i;

	if (runners == NULL)
		return 0;
	if (!json_is_array(runners)) {
		(void)snprintf(msg, len, "hello: runners: expected an array");
		return -1;
	}
	json_array_foreach(runners, i, v) {
		const char *r = json_string_value(v);

		if (r != NULL && strcmp(r, "kernel") == 0)
			caps |= SCHED_CAP_KERNEL;
		else if (r != NULL && strcmp(r, "exec") == 0)
			caps |= SCHED_CAP_EXEC;
		else {
			(void)snprintf(
			    msg, len, "hello: runners[%zu]: unknown runner", i);
			return -1;
		}
	}
	return (int)caps;
}

static void
handle_hello(struct agent *a, json_t *root)
{
	struct conn *c = a->conn;
	struct agent_links *al = links_of(c);
	const char *type, *name, *key, *version, *token = NULL;
	json_t *tags = NULL, *runners = NULL;
	char *canon = NULL; /* the tags, canonical */
	struct npufarm_err err;
	json_error_t jerr;
	struct agent *other;
	struct board *b;
	char msg[256];
	int tvm = 0;
	json_int_t protocol;
	unsigned runner_caps;
	int r;

	if (json_unpack_ex(root, &jerr, JSON_STRICT,
		"{s:s, s:I, s:s, s:s, s:s, s?o, s?b, s?o, s?s}", "type", &type,
		"protocol", &protocol, "name", &name, "key", &key, "version",
		&version, "tags", &tags, "tvm", &tvm, "runners", &runners,
		"token", &token) < 0) {
		(void)snprintf(msg, sizeof(msg), "hello: %s", jerr.text);
		refuse(c, "bad-hello", "client", msg);
		return;
	}
	if (guess_waiting(c, msg, sizeof(msg))) {
		refuse(c, "unauthorized", "client", msg);
		return;
	}
	if (auth_agent(al->auth, token, msg, sizeof(msg)) < 0) {
		guess_wrong(c);
		refuse(c, "unauthorized", "client", msg);
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
	    strlen(name) > (size_t)al->cfg->max_key_len ||
	    strlen(key) > (size_t)al->cfg->max_key_len || has_control(name) ||
	    has_control(key)) {
		(void)snprintf(msg, sizeof(msg),
		    "hello: name and key must be 1..%ld bytes without control "
		    "characters",
		    al->cfg->max_key_len);
		refuse(c, "bad-hello", "client", msg);
		return;
	}
	r = runners_caps(runners, msg, sizeof(msg));
	if (r < 0) {
		refuse(c, "bad-hello", "client", msg);
		return;
	}
	runner_caps = (unsigned)r;
	other = agent_by_name(al, name);
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
	if (tags_canon(tags, "hello: tags", &canon, &err) < 0) {
		refuse(c, "bad-hello", "client", err.msg);
		return;
	}
	r = ledger_board_upsert(al->ledger, "agent", key, name, ledger_now_us(),
	    &a->board_id, NULL, &err);
	if (r >= 0)
		r = ledger_board_tags(al->ledger, a->board_id, canon, &err);
	if (r >= 0)
		r = ledger_event(al->ledger, "board_online", a->board_id,
		    c->peer, ledger_now_us(), &err);
	if (r < 0) {
		refuse(c, "ledger", "server", "the ledger refused the board");
		free(canon);
		return;
	}
	a->welcomed = true;
	conn_ready(c);
	metrics_agent_connect(al->metrics);
	/* The version is the peer's free text: escaped, and cut. */
	(void)log_escape(msg, 64, version, strlen(version));
	log_notice("agent '%s' (key '%s', %s) connected from %s", a->name,
	    a->key, msg, c->peer);
	if (send_json(c, json_pack("{sssisIsi}", "type", "welcome", "protocol",
			     NPUFARM_PROTOCOL_VERSION, "board_id",
			     (json_int_t)a->board_id, "heartbeat_ms",
			     (int)(al->cfg->agent_heartbeat * 1000))) < 0) {
		conn_close(c, "out of memory answering hello");
		free(canon);
		return;
	}
	/* Its board, offered once the agent says it is ready. */
	b = tracker_agent_board_new(c, a, key, name, runner_caps);
	if (b != NULL) {
		tracker_agent_set_tags(b, canon);
		canon = NULL;
	}
	free(canon);
}

/*
 * {"type": "session", "id": ..., "outcome": ..., ...}: how a session the
 * agent supervised ended.  The lease book (lease.c) takes it: it
 * classifies the lease's session (over the relay's view).  It is
 * acknowledged once committed; the agent resends it until then, and a
 * resend rewrites the same values.
 */
static void
handle_session(struct agent *a, json_t *root)
{
	struct agent_links *al = a->links;
	struct ledger_report rep = {0};
	const char *type, *id, *outcome, *detail;
	json_int_t start, end, requests, exceptions, to_board, to_client;
	struct npufarm_err err;
	json_error_t jerr;
	char msg[256];
	int sig, status;

	if (json_unpack_ex(root, &jerr, JSON_STRICT,
		"{s:s, s:s, s:s, s:s, s:F, s:i, s:i, s:I, s:I, s:I, s:I, s:I, "
		"s:I}",
		"type", &type, "id", &id, "outcome", &outcome, "detail",
		&detail, "timeout", &rep.timeout, "signal", &sig, "status",
		&status, "start_us", &start, "end_us", &end, "requests",
		&requests, "exceptions", &exceptions, "bytes_to_board",
		&to_board, "bytes_to_client", &to_client) < 0) {
		(void)snprintf(
		    msg, sizeof(msg), "session report: %s", jerr.text);
		refuse(a->conn, "bad-report", "client", msg);
		return;
	}
	if (npufarm_outcome_from_name(outcome) < 0 || id[0] == '\0' ||
	    strlen(id) > (size_t)al->cfg->max_key_len) {
		(void)snprintf(msg, sizeof(msg),
		    "session report: bad outcome '%.32s' or id", outcome);
		refuse(a->conn, "bad-report", "client", msg);
		return;
	}
	rep.sess = (struct ledger_session){
	    .start_us = start,
	    .end_us = end,
	    .requests = (uint64_t)requests,
	    .exceptions = (uint64_t)exceptions,
	    .bytes_to_board = (uint64_t)to_board,
	    .bytes_to_client = (uint64_t)to_client,
	    .outcome = outcome,
	    .detail = detail,
	};
	rep.signal = sig;
	rep.status = status;
	if (lease_reported(
		tracker_lease_book(al->trk), a->board_id, id, &rep, &err) < 0 ||
	    agent_link_ack_later(a, id) < 0) {
		refuse(a->conn, "out-of-memory", "server",
		    "out of memory recording a report");
		return;
	}
	log_info("agent '%s': session %s ended %s: %s", a->name, id, outcome,
	    detail);
}

/*
 * {"type": "state", "state": "ready"|"busy"|"quarantined", "reason": ...}:
 * whether the agent's board can take work.  Said after every welcome and
 * whenever it changes.
 */
static void
handle_state(struct agent *a, json_t *root)
{
	struct agent_links *al = a->links;
	const char *type, *state, *reason = NULL;
	struct npufarm_err err;
	const char *was;
	json_error_t jerr;
	char msg[256];

	if (json_unpack_ex(root, &jerr, JSON_STRICT, "{s:s, s:s, s?s}", "type",
		&type, "state", &state, "reason", &reason) < 0 ||
	    (strcmp(state, "quarantined") != 0 && strcmp(state, "ready") != 0 &&
		strcmp(state, "busy") != 0)) {
		(void)snprintf(msg, sizeof(msg), "state: %s",
		    jerr.text[0] ? jerr.text
				 : "expected ready, busy or quarantined");
		refuse(a->conn, "bad-state", "client", msg);
		return;
	}
	if (agent_link_board(a) == NULL)
		return; /* no board: it could not be registered */
	was = tracker_agent_quarantine(agent_link_board(a));
	if (strcmp(state, "quarantined") == 0) {
		if (reason == NULL || reason[0] == '\0')
			reason = "quarantined by its agent";
		/* Said again after a reconnect: one event, not two. */
		if (was == NULL || strcmp(was, reason) != 0) {
			log_warn("agent '%s' quarantined: %s", a->name, reason);
			(void)ledger_event(al->ledger, "board_quarantined",
			    a->board_id, reason, ledger_now_us(), &err);
		}
	} else if (was != NULL) {
		log_notice("agent '%s' back in service", a->name);
		(void)ledger_event(al->ledger, "board_ready", a->board_id, NULL,
		    ledger_now_us(), &err);
	}
	tracker_agent_state(agent_link_board(a), state, reason);
}

static void
dispatch(struct agent *a, json_t *root)
{
	const char *type = json_string_value(json_object_get(root, "type"));
	const struct agent_links *links = a->links;
	struct npufarm_err err;
	char msg[160];
	size_t i;

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
	if (strcmp(type, "heartbeat") == 0) {
		/* Any frame proves life (agent_link_read()); this one says
		 * nothing else, and is as strict as the others. */
		if (json_object_size(root) != 1)
			refuse(a->conn, "bad-frame", "client",
			    "heartbeat: unexpected fields");
		return;
	}
	if (strcmp(type, "session") == 0) {
		handle_session(a, root);
		return;
	}
	if (strcmp(type, "state") == 0) {
		handle_state(a, root);
		return;
	}
	for (i = 0; i < links->nhandlers; i++) {
		const struct agent_handler *h = &links->handlers[i];

		if (strcmp(type, h->type) != 0)
			continue;
		if (h->fn(h->arg, a, root, &err) < 0)
			refuse(a->conn, "bad-frame", "client", err.msg);
		return;
	}
	(void)snprintf(msg, sizeof(msg), "unknown frame type '%.32s'", type);
	refuse(a->conn, "unknown-type", "client", msg);
}

static void agent_link_read(struct conn *c);
static void agent_link_closed(struct conn *c);

static void
agent_read_cb(struct conn *c)
{
	if (c->state != CONN_CLOSING && c->owner != NULL)
		agent_link_read(c);
}

/* The link goes: the boards it registered, then the agent. */
static void
agent_gone_cb(struct conn *c)
{
	tracker_conn_closed(c);
	agent_link_closed(c);
}

/* An agent link; c->owner is its struct agent. */
static const struct conn_ops agent_ops = {
    .read = agent_read_cb,
    .closing = agent_gone_cb,
    .closed = agent_gone_cb,
    .hello = "no agent hello welcomed",
    .flags = CONN_OPS_FRAMED,
};

/*
 * The listener read the agent magic on @c (listener_start_fn; @arg is the
 * broker): attach agent state to @c; its handshake lasts until its hello
 * is welcomed.  0 or -ENOMEM.
 */
int
agent_link_start(struct conn *c, void *arg)
{
	struct agent_links *al = arg;
	struct agent *a;

	c->trk = al->trk;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->conn = c;
	a->links = al;
	STAILQ_INIT(&a->acks);
	a->silence = evtimer_new(al->base, silence_cb, a);
	if (a->silence == NULL) {
		free(a);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&al->agents, a, link);
	conn_set_ops(c, &agent_ops, a);
	rearm(a);
	return 0;
}

/*
 * Frames on agent link @c.  Every frame counts as a sign of life; a
 * violation closes the link with a reason, answered first with an error
 * frame where the peer can still use one.
 */
static void
agent_link_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct agent *a = c->owner;
	const struct broker_config *cfg = a->links->cfg;
	struct npufarm_err err;
	json_t *root;
	int n, r;

	/* Before its hello is welcomed, a peer's frames are small. */
	size_t max = a->welcomed || cfg->max_unauth_conn - FRAME_HEADER_SIZE >
					cfg->max_frame
			 ? (size_t)cfg->max_frame
			 : (size_t)cfg->max_unauth_conn - FRAME_HEADER_SIZE;

	for (n = 0; n < AGENT_MAX_FRAMES_PER_EVENT; n++) {
		r = frame_pull_json(
		    in, max, (int)cfg->max_json_depth, &root, &err);
		if (r == FRAME_INCOMPLETE)
			return;
		if (r < 0) {
			conn_close(c,
			    r == -EMSGSIZE
				? "agent frame over max_frame (max_unauth_conn "
				  "before its hello) or negative"
				: "zero-length agent frame");
			return;
		}
		if (r == FRAME_BAD_JSON) {
			refuse(c, "bad-json", "client", err.msg);
			return;
		}
		rearm(a);
		a->heard_us = ledger_now_us();
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
static void
agent_link_closed(struct conn *c)
{
	struct agent *a = c->owner;
	struct agent_links *al;
	struct npufarm_err err;
	const char *why;
	struct ack *ack;

	if (a == NULL)
		return;
	al = a->links;
	why = al->stopping ? "broker stopping" : "agent link closed";
	if (a->welcomed) {
		/* The event row only once the state row is in. */
		if (ledger_board_state(al->ledger, a->board_id, "offline", why,
			ledger_now_us(), &err) >= 0)
			(void)ledger_event(al->ledger, "board_offline",
			    a->board_id, why, ledger_now_us(), &err);
		log_notice("agent '%s' offline: %s", a->name, why);
	}
	TAILQ_REMOVE(&al->agents, a, link);
	while ((ack = STAILQ_FIRST(&a->acks)) != NULL) {
		STAILQ_REMOVE_HEAD(&a->acks, link);
		free(ack);
	}
	event_free(a->silence);
	free(a->name);
	free(a->key);
	free(a);
	c->owner = NULL;
}

/*
 * Whether a welcomed agent named @name is linked from the numeric address
 * @host: its data connections come from there (proxy.c lets them past the
 * allow-list, since the link itself presented the agent token).
 */
bool
agent_link_from(struct agent_links *al, const char *name, const char *host)
{
	struct agent *a = agent_by_name(al, name);

	return a != NULL && strcmp(a->conn->peer_host, host) == 0;
}

int64_t
agent_board_id(const struct agent *a)
{
	return a->board_id;
}

/*
 * The ledger writer finished batches: acknowledge the reports they held.
 * If any batch failed since a report was recorded, the report may not be
 * in the ledger: close that link instead, and the agent resends.
 */
void
agent_link_committed(struct agent_links *al)
{
	uint64_t upto, failed;
	struct agent *a, *next;
	struct ack *ack;

	upto = ledger_committed(al->ledger, &failed);
	for (a = TAILQ_FIRST(&al->agents); a != NULL; a = next) {
		next = TAILQ_NEXT(a, link);
		while ((ack = STAILQ_FIRST(&a->acks)) != NULL &&
		       ack->seq <= upto) {
			STAILQ_REMOVE_HEAD(&a->acks, link);
			if (failed != ack->failed) {
				free(ack);
				conn_close(a->conn,
				    "the ledger failed to commit a report; "
				    "the agent will resend it");
				break;
			}
			(void)send_json(a->conn,
			    json_pack("{ssss}", "type", "ack", "id", ack->id));
			free(ack);
		}
		if (a->conn->state != CONN_CLOSING)
			conn_flush(a->conn);
	}
}

/*
 * An operator undrained board @board_id: an agent that quarantined it is
 * told to put it back in service (it says ready once it is).  Returns 1 if
 * one was, else 0.
 */
int
agent_link_undrain(struct agent_links *al, int64_t board_id)
{
	struct npufarm_err err;
	struct agent *a = agent_link_find_board(al, board_id);
	struct board *b = board_by_id(al->boards, board_id);

	if (a == NULL || b == NULL || tracker_agent_quarantine(b) == NULL)
		return 0;
	log_notice("agent '%s': quarantine lifted by an operator", a->name);
	tracker_agent_state(b, "busy", NULL);
	(void)ledger_event(al->ledger, "board_undrained", a->board_id,
	    "quarantine lifted", ledger_now_us(), &err);
	(void)send_json(a->conn, json_pack("{ss}", "type", "undrain"));
	conn_flush(a->conn);
	return 1;
}

/* Call @fn for every welcomed agent: its board id and its last frame. */
void
agent_link_foreach(struct agent_links *al, agent_link_fn *fn, void *arg)
{
	struct agent *a;

	TAILQ_FOREACH(a, &al->agents, link)
		if (a->welcomed)
			fn(a->board_id, a->heard_us, arg);
}

/* The welcomed agent whose board is @board_id, or NULL. */
struct agent *
agent_link_find_board(struct agent_links *al, int64_t board_id)
{
	return board_agent_by_id(al->boards, board_id);
}

/* Send frame @v (reference stolen) to agent @a.  0 or -ENOMEM. */
int
agent_link_send(struct agent *a, json_t *v)
{
	int r = send_json(a->conn, v);

	if (r == 0)
		conn_flush(a->conn);
	return r;
}

/*
 * Acknowledge report @id to agent @a once the ledger batch being written
 * now is committed (see agent_link_committed()).  0 or -ENOMEM.
 */
int
agent_link_ack_later(struct agent *a, const char *id)
{
	struct agent_links *al = a->links;
	struct ack *ack = malloc(sizeof(*ack) + strlen(id) + 1);

	if (ack == NULL)
		return -ENOMEM;
	strcpy(ack->id, id);
	ack->seq = ledger_batch_seq(al->ledger);
	(void)ledger_committed(al->ledger, &ack->failed);
	STAILQ_INSERT_TAIL(&a->acks, ack, link);
	return 0;
}

/*
 * No agent links yet, on @base under @cfg, writing to @ledger, counting in
 * @metrics, with boards in @trk (all borrowed).  NULL when out of memory.
 */
struct agent_links *
agent_links_new(struct event_base *base, const struct broker_config *cfg,
    struct ledger *ledger, struct metrics *metrics, struct tracker *trk,
    struct board_registry *boards)
{
	struct agent_links *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->base = base;
	l->cfg = cfg;
	l->ledger = ledger;
	l->metrics = metrics;
	l->trk = trk;
	l->boards = boards;
	TAILQ_INIT(&l->agents);
	return l;
}

/* Check agent tokens with @auth from now on (borrowed; SIGHUP). */
void
agent_links_set_auth(struct agent_links *l, const struct auth *auth)
{
	l->auth = auth;
}

/* The broker is stopping: links that close from now on say so. */
void
agent_links_stop(struct agent_links *l)
{
	l->stopping = true;
}

/* Free @l, whose links are all gone.  Accepts NULL; returns NULL. */
struct agent_links *
agent_links_free(struct agent_links *l)
{
	free(l);
	return NULL;
}

/*
 * Hand welcomed agents' frames of @type (a static string) to @fn(@arg):
 * the services above the link (native jobs) register theirs.  0, or
 * -ENOSPC past AGENT_MAX_HANDLERS.
 */
int
agent_link_on_frame(
    struct agent_links *l, const char *type, agent_frame_fn *fn, void *arg)
{
	if (l->nhandlers >= AGENT_MAX_HANDLERS)
		return -ENOSPC;
	l->handlers[l->nhandlers++] = (struct agent_handler){type, fn, arg};
	return 0;
}
