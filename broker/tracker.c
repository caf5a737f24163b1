/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM tracker sessions.
 *
 * A "board" is what one tracker connection registered for one key at one
 * advertised address: TVM servers PUT a fresh matchkey (a free slot) when
 * they start and again after every session, so the next PUT from the same
 * board ends its oldest open lease.  Registrations, waiting requests and
 * free slots all die with the connection that made them, whether or not it
 * ever sent UPDATE_INFO (TVM leaves stale entries behind in that case).
 *
 * Differences from TVM's tracker, all deliberate: the magic may arrive
 * together with the first frame; a zero-length or oversized frame, invalid
 * JSON or a wrong type closes the connection with a logged reason instead
 * of wedging it or going silent; a request is never granted to a client
 * that already left; queues with nothing in them are dropped (SUMMARY shows
 * keys that have boards or waiting requests); optional request deadlines.
 */
#include "config.h"

#include "tracker.h"

#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include <npufarm/protocol.h>

#include "broker_config.h"
#include "clock.h"
#include "conn.h"
#include "err.h"
#include "frame.h"
#include "json_util.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "scheduler.h"
#include "tracker_int.h"
#include "tvm_proto.h"
#include "tvm_rpc.h"

/* Frames handled per read callback before yielding to other connections. */
#define TRACKER_MAX_FRAMES_PER_EVENT 16
/* Longest list of keys quoted in a "no such key" diagnostic. */
#define TRACKER_KEYS_MSG_MAX         512
/* Longest frame decoded by tvm_tracker_parse_fast(), on the stack. */
#define TRACKER_FAST_FRAME           1024
/* Bytes of one connection's UPDATE_INFO, serialised (issue 12). */
#define TRACKER_MAX_INFO             4096

static void
board_dirty(struct board *b)
{
	struct tracker *trk = b->conn->trk;

	if (!b->dirty) {
		b->dirty = true;
		TAILQ_INSERT_TAIL(&trk->dirty_boards, b, dirty_link);
	}
}

void
tracker_board_set_state(struct board *b, enum board_state state)
{
	if (b->state == state)
		return;
	b->state = state;
	board_dirty(b);
}

/*
 * Write the state of every board that changed since the last call.  Called
 * once per loop iteration just before the ledger commit, so a board leased
 * and released within one iteration costs one row update, not two.
 */
int
tracker_flush_boards(struct tracker *trk)
{
	struct npufarm_err err;
	int64_t now = ledger_now_us();
	struct board *b;
	int r, ret = 0;

	while ((b = TAILQ_FIRST(&trk->dirty_boards)) != NULL) {
		TAILQ_REMOVE(&trk->dirty_boards, b, dirty_link);
		b->dirty = false;
		r = ledger_board_state(trk->ledger, b->id,
		    board_view_state(b->state, b->drained),
		    b->state == BOARD_QUARANTINED ? b->quarantine : NULL, now,
		    &err);
		if (r < 0)
			ret = r;
	}
	return ret;
}

/* snprintf(@dst, @size, "%s", @src) without the formatting machinery. */
static void
copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void
reply_code(struct conn *c, int code)
{
	if (tvm_tracker_add_code(bufferevent_get_output(c->bev), code) < 0)
		conn_close(c, "out of memory queueing a reply");
}

static void
treq_free(struct treq *t)
{
	struct tracker_conn *tc = t->conn->tracker;

	sched_dequeue(&t->lr.s);
	TAILQ_REMOVE(&tc->reqs, t, link);
	tc->nreqs--;
	if (t->timeout_ev != NULL)
		event_free(t->timeout_ev);
	if (t->grace_ev != NULL)
		event_free(t->grace_ev);
	free(t); /* its key and user with it (treq_new()) */
}

/*
 * A zeroed request of @key for fair-share identity @user, both copied
 * into the same allocation (one malloc per request, not three); NULL when
 * out of memory.  Freed with free() (treq_free()).
 */
static struct treq *
treq_new(const char *key, const char *user)
{
	size_t klen = strlen(key) + 1, ulen = strlen(user) + 1;
	struct treq *t = calloc(1, sizeof(*t) + klen + ulen);

	if (t == NULL)
		return NULL;
	t->key = (char *)(t + 1);
	memcpy(t->key, key, klen);
	t->user = t->key + klen;
	memcpy(t->user, user, ulen);
	return t;
}

/* The ledger row of request @t, without the grant and the outcome. */
static struct ledger_lease
treq_row(const struct treq *t)
{
	return (struct ledger_lease){
	    .key = t->key,
	    .user = t->user,
	    .peer = t->conn->peer,
	    .priority = t->priority,
	    .requested_us = t->requested_us,
	};
}

/* Record a request that ended without a board, then free it. */
static void
treq_end(struct treq *t, enum npufarm_outcome o, const char *detail)
{
	const char *outcome = npufarm_outcome_name(o);
	struct tracker *trk = t->conn->trk;
	struct ledger_lease row = treq_row(t);

	row.released_us = ledger_now_us();
	row.detail = detail;
	lease_request_ended(trk->lease_book, &row, o);
	log_info("request for '%s' from %s ended %s: %s", t->key, t->conn->peer,
	    outcome, detail);
	treq_free(t);
}

/*
 * End lease @l of board @b with enum npufarm_outcome @o, or
 * TRACKER_NO_OUTCOME, and @detail: the ledger row, the log line, the
 * metric, then the board's bookkeeping.
 */
void
tracker_lease_release(
    struct board *b, struct lease *l, int o, const char *detail)
{
	const char *outcome =
	    o == TRACKER_NO_OUTCOME
		? NULL
		: npufarm_outcome_name((enum npufarm_outcome)o);
	struct tracker *trk = b->conn->trk;

	lease_released(
	    trk->lease_book, l->id, sched_queue_key(b->queue), o, detail);
	log_info("lease %lld of %s (%s) released%s%s: %s", (long long)l->id,
	    b->address, sched_queue_key(b->queue), outcome ? " as " : "",
	    outcome ? outcome : "", detail);
	TAILQ_REMOVE(&b->leases, l, link);
	free(l->user);
	free(l);
	if (--b->nleases == 0) {
		sched_queue_add_leased(b->queue, -1);
		if (b->is_agent)
			tracker_agent_update(b);
		else
			tracker_board_set_state(b, b->quarantine != NULL
						       ? BOARD_QUARANTINED
						       : BOARD_IDLE);
	}
}

/* Open a lease of @b for @t in memory and in the ledger; NULL on OOM. */
static struct lease *
lease_open(struct treq *t, struct board *b, const char *matchkey)
{
	struct tracker *trk = b->conn->trk;
	struct ledger_lease row = treq_row(t);
	struct npufarm_err err;
	struct lease *l;

	row.granted_us = ledger_now_us();
	row.board_id = b->id;
	row.matchkey = matchkey;
	l = calloc(1, sizeof(*l));
	if (l != NULL)
		l->user = strdup(row.user);
	if (l == NULL || l->user == NULL) {
		free(l);
		log_err("lease of %s to %s: out of memory, not tracked",
		    b->address, t->conn->peer);
		return NULL;
	}
	l->granted_us = row.granted_us;
	copy_str(l->peer, sizeof(l->peer), t->conn->peer);
	(void)ledger_lease_insert(trk->ledger, &row, &l->id, &err);
	if (b->data_session != NULL)
		(void)ledger_lease_agent_session(
		    trk->ledger, l->id, b->data_session, &err);
	TAILQ_INSERT_TAIL(&b->leases, l, link);
	if (b->nleases++ == 0)
		sched_queue_add_leased(b->queue, 1);
	tracker_board_set_state(b, BOARD_LEASED);
	metrics_queue_wait(trk->metrics, t->key,
	    (double)(l->granted_us - t->requested_us) / 1e6);
	log_info("lease %lld: '%s' board %s granted to %s after %.3f ms",
	    (long long)l->id, t->key, b->address, t->conn->peer,
	    (double)(l->granted_us - t->requested_us) / 1000.0);
	return l;
}

static void pending_add(
    struct board *b, struct lease *l, const char *mk, const char *dial_key);

/*
 * Give slot @s to request @t.  A TVM client gets the grant frame: the
 * board's own address, or for a board that dialled in, the broker's (the
 * client connects back with the matchkey and is relayed).  An RPC data
 * connection waiting for a key (client:KEY) is relayed at once.
 */
static void
grant(struct treq *t, struct slot *s)
{
	struct board *b = s->board;
	struct conn *client = t->conn;
	struct tracker *trk = client->trk;
	bool rpc = t->rpc;
	/* A board registered by PUT whose sessions the broker relays: the
	 * client is sent to the broker, which dials the board. */
	bool dial = !b->proxied && !b->is_agent && trk->cfg->relay_all;
	char fresh[4096 + 32]; /* max_key_len is at most 4096 */
	struct lease *l;
	int r = 0;

	if (rpc && !b->proxied && !dial) {
		/* Clients reach such a board directly; nothing to relay. */
		sched_slot_push(b->queue, &s->s);
		treq_end(t, NPUFARM_OUTCOME_REJECTED,
		    "client:KEY names a key whose boards are reached "
		    "directly; ask the tracker for one");
		relay_refuse(client, "no board of that key dials in");
		return;
	}
	if (dial)
		tracker_matchkey_new(
		    sched_queue_key(b->queue), fresh, sizeof(fresh));
	if (!rpc && (b->proxied || dial))
		r = tvm_tracker_add_grant(bufferevent_get_output(client->bev),
		    trk->cfg->public_addr ? trk->cfg->public_addr
					  : client->local_host,
		    (long)client->local_port, dial ? fresh : s->matchkey);
	else if (!rpc)
		r = tvm_tracker_add_grant(bufferevent_get_output(client->bev),
		    b->host, b->port, s->matchkey);
	if (r < 0) {
		sched_slot_push(b->queue, &s->s); /* back into the queue */
		conn_close(client, "out of memory queueing a grant");
		return;
	}
	l = lease_open(t, b, s->matchkey);
	if (l != NULL)
		l->relayed = dial;
	TAILQ_REMOVE(&b->slots, s, link);
	b->conn->tracker->nslots--;
	if (b->proxied && !rpc && l != NULL)
		pending_add(b, l, s->matchkey, NULL);
	else if (dial && !rpc && l != NULL)
		pending_add(b, l, fresh, s->matchkey);
	treq_free(t);
	if (dial && rpc) {
		lease_relayed(trk->lease_book, l ? l->id : 0,
		    sched_queue_key(b->queue), 0, NULL);
		struct relay_hello h;

		tracker_rpc_hello(client, &h);
		relay_dial(trk->relays, client, &h, b->host, b->port,
		    s->matchkey, l ? l->id : 0, b->id, &tracker_dialed_end,
		    trk);
	} else if (b->proxied && rpc)
		tracker_board_relay(b, client, l ? l->id : 0);
	else
		conn_flush(client);
	free(s);
}

/*
 * Native task @r won slot @s of agent board @b: the board is the task's
 * until tracker_agent_task_end(); the jobs module sends it to the agent.
 */
struct agent *
tracker_task_take(struct slot *s, struct sched_request *r, int64_t *ret_board)
{
	struct board *b = s->board;

	TAILQ_REMOVE(&b->slots, s, link);
	b->conn->tracker->nslots--;
	free(s);
	b->task = r;
	b->ready = false;
	if (b->nleases == 0)
		sched_queue_add_leased(b->queue, 1);
	tracker_board_set_state(b, BOARD_LEASED);
	*ret_board = b->id;
	return b->agent;
}

static struct treq *
treq_of(struct lease_request *lr)
{
	return container_of(lr, struct treq, lr);
}

/* A TVM request whose client already left is cancelled, not granted. */
static bool
treq_alive(struct lease_request *lr)
{
	struct treq *t = treq_of(lr);

	if (!conn_peer_gone(t->conn))
		return true;
	/* Its EOF is still queued; the connection goes when that is read. */
	treq_end(t, NPUFARM_OUTCOME_CANCELLED,
	    "client left while its request was waiting");
	return false;
}

static void
treq_granted(struct lease_request *lr, struct slot *s)
{
	grant(treq_of(lr), s);
}

static void
treq_describe(const struct lease_request *lr, struct tracker_request_info *ret)
{
	const struct treq *t = container_of(lr, struct treq, lr);

	ret->kind = "tvm";
	ret->peer = t->conn->peer;
	ret->priority = t->priority;
	ret->requested_us = t->requested_us;
}

/* A TVM REQUEST, or an RPC client:KEY waiting for a board of KEY. */
static const struct lease_request_ops treq_ops = {
    .alive = treq_alive,
    .granted = treq_granted,
    .describe = treq_describe,
};

/* Grant what can be granted among the requests and boards of @key. */
void
tracker_schedule(struct tracker *trk, const char *key)
{
	struct sched_queue *q;

	if (sched_queue_get(trk->sched, key, false, &q) == 0)
		lease_grant_queue(q);
}

int
tracker_queue_get(struct conn *c, const char *key, struct sched_queue **ret)
{
	struct tracker *trk = c->trk;
	int r;

	r = sched_queue_get(trk->sched, key, false, ret);
	if (r != -ENOENT)
		return r;
	if (sched_queue_count(trk->sched) >= (size_t)trk->cfg->max_keys) {
		conn_close(c, "too many distinct keys (limit max_keys=%ld)",
		    trk->cfg->max_keys);
		return -E2BIG;
	}
	return sched_queue_get(trk->sched, key, true, ret);
}

static struct board *
board_find(
    struct tracker_conn *tc, struct sched_queue *q, const char *host, long port)
{
	struct board *b;

	TAILQ_FOREACH(b, &tc->boards, link)
		if (b->queue == q && b->port == port &&
		    strcmp(b->host, host) == 0)
			return b;
	return NULL;
}

struct board *
tracker_board_new(struct conn *c, struct sched_queue *q, const char *kind,
    const char *host, long port)
{
	struct tracker *trk = c->trk;
	struct npufarm_err err;
	struct board *b;
	int r;

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->host = strdup(host);
	/* A board that dials in is known by its host: its port changes with
	 * every connection. */
	if (port == 0)
		r = asprintf(&b->address, "%s", host);
	else
		r = asprintf(&b->address,
		    strchr(host, ':') ? "[%s]:%ld" : "%s:%ld", host, port);
	if (b->host == NULL || r < 0) {
		free(b->host);
		free(b);
		return NULL;
	}
	b->conn = c;
	b->queue = q;
	b->port = port;
	b->state = BOARD_IDLE;
	TAILQ_INIT(&b->slots);
	TAILQ_INIT(&b->leases);
	r = ledger_board_upsert(trk->ledger, kind, sched_queue_key(q),
	    b->address, ledger_now_us(), &b->id, &b->drained, &err);
	if (r >= 0 && strcmp(kind, "agent") != 0) /* its link said so */
		(void)ledger_event(trk->ledger, "board_online", b->id, c->peer,
		    ledger_now_us(), &err);
	TAILQ_INSERT_TAIL(&c->tracker->boards, b, link);
	sched_queue_add_board(q, 1);
	log_notice("board %s registered for key '%s' by %s", b->address,
	    sched_queue_key(q), c->peer);
	return b;
}

/*
 * Take board @b out of service: its free slots leave the queue, its open
 * leases end as "lost", it goes offline in the ledger.  @quiet: a board that
 * dialled in for one session and will dial in again (no event row).
 */
static void
board_free(struct board *b, const char *why, bool quiet)
{
	struct tracker *trk = b->conn->trk;
	struct sched_queue *q = b->queue;
	struct npufarm_err err;
	struct lease *l;
	struct slot *s;
	char detail[160];

	/* Releasing its last lease below would offer it again otherwise. */
	b->dying = true;
	while ((s = TAILQ_FIRST(&b->slots)) != NULL) {
		sched_slot_remove(&s->s);
		TAILQ_REMOVE(&b->slots, s, link);
		b->conn->tracker->nslots--;
		free(s);
	}
	if (b->pending != NULL)
		tracker_pending_free(b->pending);
	(void)snprintf(detail, sizeof(detail),
	    "board's connection closed during the lease (%s)", why);
	while ((l = TAILQ_FIRST(&b->leases)) != NULL)
		tracker_lease_release(b, l, NPUFARM_OUTCOME_LOST, detail);
	if (b->dirty)
		TAILQ_REMOVE(&trk->dirty_boards, b, dirty_link);
	if (b->is_agent) {
		/* The agent link's own code records it offline. */
		if (b->data != NULL) {
			b->data->tracker->data_for = NULL;
			conn_close(b->data, "its agent's link closed");
			b->data = NULL;
		}
		if (b->task != NULL) {
			struct lease_request *task = lease_request_of(b->task);

			b->task = NULL;
			sched_queue_add_leased(q, -1);
			if (task->ops->board_gone != NULL)
				task->ops->board_gone(task, why);
		}
		board_registry_remove(trk->boards, b->entry);
		b->entry = NULL;
	} else
		(void)ledger_board_state(
		    trk->ledger, b->id, "offline", why, ledger_now_us(), &err);
	if (!quiet && !b->is_agent) {
		(void)ledger_event(trk->ledger, "board_offline", b->id, why,
		    ledger_now_us(), &err);
		log_notice("board %s of key '%s' offline: %s", b->address,
		    sched_queue_key(q), why);
	}
	sched_queue_add_board(q, -1);
	TAILQ_REMOVE(&b->conn->tracker->boards, b, link);
	free(b->host);
	free(b->address);
	free(b->hello_key);
	free(b->data_key);
	free(b->data_session);
	free(b->quarantine);
	if (b->unreach_ev != NULL)
		event_free(b->unreach_ev);
	free(b->tags);
	free(b);
	sched_queue_gc(q);
}

static void
handle_put(struct conn *c, const struct tvm_tracker_msg *m)
{
	struct tracker_conn *tc = c->tracker;
	const char *host = m->custom_addr ? m->custom_addr : c->peer_host;
	struct sched_queue *q;
	struct board *b, *bb;
	struct lease *l;
	struct slot *s;
	size_t mklen = strlen(m->matchkey);

	if (tc->nslots >= (size_t)c->trk->cfg->max_pending) {
		conn_close(c,
		    "PUT: %zu free slots already registered on this "
		    "connection (limit max_pending=%ld)",
		    tc->nslots, c->trk->cfg->max_pending);
		return;
	}
	if (tracker_queue_get(c, m->key, &q) < 0) {
		if (c->state != CONN_CLOSING)
			conn_close(c, "out of memory creating a queue");
		return;
	}
	/* The same matchkey twice would make TVM's tracker fail later; the
	 * second copy adds nothing, so it is acknowledged and ignored. */
	TAILQ_FOREACH(bb, &tc->boards, link)
		TAILQ_FOREACH(s, &bb->slots, link)
			if (strcmp(s->matchkey, m->matchkey) == 0) {
				reply_code(c, NPUFARM_TVM_SUCCESS);
				return;
			}
	b = board_find(tc, q, host, m->port);
	if (b == NULL)
		b = tracker_board_new(c, q, "tvm", host, m->port);
	s = b ? calloc(1, sizeof(*s) + mklen + 1) : NULL;
	if (s == NULL) {
		sched_queue_gc(q);
		conn_close(c, "out of memory registering a board");
		return;
	}
	/* A TVM server PUTs after every session (or ~8 s after a grant that
	 * was never used): the oldest open lease of this board is over.  A
	 * grant whose client has not come yet names a matchkey the board
	 * just gave up (--relay-boards all), and a session the broker
	 * relays ends when its relay says so. */
	if (b->pending != NULL) {
		struct lease *pl = b->pending->lease;

		tracker_pending_free(b->pending);
		tracker_lease_release(b, pl, NPUFARM_OUTCOME_LOST,
		    "the board registered a new matchkey before the client "
		    "connected");
	}
	TAILQ_FOREACH(l, &b->leases, link)
		if (!l->relayed)
			break;
	if (l != NULL)
		tracker_lease_release(b, l, TRACKER_NO_OUTCOME,
		    "released: board registered again (session not relayed "
		    "by the broker; its outcome was not observed)");
	s->board = b;
	s->s.caps = SCHED_CAP_TVM;
	memcpy(s->matchkey, m->matchkey, mklen + 1);
	TAILQ_INSERT_TAIL(&b->slots, s, link);
	tc->nslots++;
	if (!b->drained && b->quarantine == NULL)
		sched_slot_push(q, &s->s);
	reply_code(c, NPUFARM_TVM_SUCCESS);
	lease_grant_queue(q);
}

static void
known_keys(struct tracker *trk, char *buf, size_t len)
{
	struct sched_queue *q;
	size_t o = 0, shown = 0, more = 0;
	int n;

	buf[0] = '\0';
	for (q = sched_queue_first(trk->sched); q; q = sched_queue_next(q)) {
		if (sched_queue_boards(q) == 0)
			continue;
		if (o + strlen(sched_queue_key(q)) + 8 >= len) {
			more++;
			continue;
		}
		n = snprintf(buf + o, len - o, "%s'%s'", shown ? ", " : "",
		    sched_queue_key(q));
		o += (size_t)n;
		shown++;
	}
	if (shown == 0)
		(void)snprintf(buf, len, "none: no board is registered");
	else if (more > 0)
		(void)snprintf(buf + o, len - o, " and %zu more", more);
}

/*
 * The keys that have boards, quoted, into @buf (for messages about a key
 * that has none: TVM requests and jobs alike).
 */
void
tracker_known_keys(struct tracker *trk, char *buf, size_t len)
{
	known_keys(trk, buf, len);
}

/* How many boards of @key are registered (any state). */
size_t
tracker_key_boards(struct tracker *trk, const char *key)
{
	struct sched_queue *q;

	if (sched_queue_get(trk->sched, key, false, &q) < 0)
		return 0;
	return sched_queue_boards(q);
}

/* Answer @t with [-1, msg], record it and drop its queue if now empty. */
static void
request_fail(struct treq *t, enum npufarm_outcome outcome, const char *msg)
{
	struct conn *c = t->conn;
	struct sched_queue *q = t->lr.s.queue;
	int r;

	r = tvm_tracker_add_fail(bufferevent_get_output(c->bev), msg);
	treq_end(t, outcome, msg);
	sched_queue_gc(q);
	if (r < 0)
		conn_close(c, "out of memory queueing a reply");
	else
		conn_flush(c);
}

static void
request_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct treq *t = arg;
	struct sched_queue *q = t->lr.s.queue;
	char msg[TRACKER_KEYS_MSG_MAX + 160];

	(void)snprintf(msg, sizeof(msg),
	    "npufarm: no board of key '%s' became free within %g s "
	    "(request_timeout); %zu boards, %zu leased, %zu requests waiting",
	    t->key, t->conn->trk->cfg->request_timeout, sched_queue_boards(q),
	    sched_queue_leased(q), sched_queue_waiting(q) - 1);
	request_fail(t, NPUFARM_OUTCOME_EXPIRED, msg);
}

static void
request_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct treq *t = arg;
	struct sched_queue *q = t->lr.s.queue;
	char keys[TRACKER_KEYS_MSG_MAX], msg[TRACKER_KEYS_MSG_MAX + 160];

	if (sched_queue_boards(q) > 0) {
		/* A board of the key appeared: keep waiting. */
		event_free(t->grace_ev);
		t->grace_ev = NULL;
		return;
	}
	known_keys(t->conn->trk, keys, sizeof(keys));
	(void)snprintf(msg, sizeof(msg),
	    "npufarm: no board with key '%s' registered within %g s "
	    "(unknown_key_grace); keys with boards: %s",
	    t->key, t->conn->trk->cfg->unknown_key_grace, keys);
	request_fail(t, NPUFARM_OUTCOME_REJECTED, msg);
}

static void
handle_request(struct conn *c, const struct tvm_tracker_msg *m)
{
	struct tracker_conn *tc = c->tracker;
	struct tracker *trk = c->trk;
	struct sched_queue *q;
	struct treq *t;

	if (tc->nreqs >= (size_t)trk->cfg->max_pending) {
		conn_close(c,
		    "REQUEST: %zu requests already waiting on this "
		    "connection (limit max_pending=%ld)",
		    tc->nreqs, trk->cfg->max_pending);
		return;
	}
	if (tracker_queue_get(c, m->key, &q) < 0) {
		if (c->state != CONN_CLOSING)
			conn_close(c, "out of memory creating a queue");
		return;
	}
	/* TVM clients send an empty user: share fairly between addresses. */
	t = treq_new(m->key, m->user[0] ? m->user : c->peer_host);
	if (t == NULL)
		goto oom;
	t->conn = c;
	t->priority = m->priority;
	t->requested_us = ledger_now_us();
	if (trk->tv_request != NULL) {
		t->timeout_ev = evtimer_new(trk->base, request_timeout_cb, t);
		if (t->timeout_ev == NULL ||
		    evtimer_add(t->timeout_ev, trk->tv_request) < 0)
			goto oom;
	}
	if (trk->tv_grace != NULL && sched_queue_boards(q) == 0) {
		t->grace_ev = evtimer_new(trk->base, request_grace_cb, t);
		if (t->grace_ev == NULL ||
		    evtimer_add(t->grace_ev, trk->tv_grace) < 0)
			goto oom;
	}
	t->lr.s.needs = SCHED_CAP_TVM;
	t->lr.ops = &treq_ops;
	if (sched_enqueue(q, &t->lr.s, t->user, m->priority) < 0)
		goto oom;
	TAILQ_INSERT_TAIL(&tc->reqs, t, link);
	tc->nreqs++;
	log_debug("conn %llu %s: REQUEST '%s' priority %g",
	    (unsigned long long)c->id, c->peer, m->key, m->priority);
	lease_grant_queue(q);
	return;
oom:
	if (t != NULL) {
		if (t->timeout_ev)
			event_free(t->timeout_ev);
		if (t->grace_ev)
			event_free(t->grace_ev);
		free(t);
	}
	sched_queue_gc(q);
	conn_close(c, "out of memory queueing a request");
}

/*
 * UPDATE_INFO merges into the connection's info (TVM does dict.update) and
 * substitutes the peer's IP for a null host (display only).  The merged
 * info is capped at TRACKER_MAX_INFO bytes (issue 12: merging let a peer
 * grow it, and its re-parsing, without bound; a TVM server sends under
 * 100).  The result is kept serialised, since it is only ever sent back
 * verbatim in SUMMARY: SUMMARY then costs a copy per server instead of a
 * JSON encoding.
 */
static void
handle_update_info(struct conn *c, const struct tvm_tracker_msg *m)
{
	struct tracker_conn *tc = c->tracker;
	json_t *info = NULL, *addr, *key;
	char *text;

	if (tc->info != NULL)
		info = json_loads(tc->info, 0, NULL);
	else
		info = json_object();
	if (info == NULL || json_object_update(info, m->info) < 0)
		goto oom;
	addr = json_pack("[sO]", m->info_host ? m->info_host : c->peer_host,
	    json_array_get(json_object_get(m->info, "addr"), 1));
	if (addr == NULL || json_object_set_new(info, "addr", addr) < 0)
		goto oom;
	text = json_util_dumps_py(info);
	if (text == NULL)
		goto oom;
	if (strlen(text) > TRACKER_MAX_INFO) {
		conn_close(c,
		    "UPDATE_INFO: %zu bytes of info, limit %d (a TVM server "
		    "sends under 100)",
		    strlen(text), TRACKER_MAX_INFO);
		free(text);
		json_decref(info);
		return;
	}
	key = json_object_get(info, "key");
	tc->is_server = json_is_string(key) &&
			strncmp(json_string_value(key), "server", 6) == 0;
	free(tc->info);
	tc->info = text;
	json_decref(info);
	reply_code(c, NPUFARM_TVM_SUCCESS);
	return;
oom:
	json_decref(info);
	conn_close(c, "out of memory storing UPDATE_INFO");
}

static int
add_json_string(struct evbuffer *out, const char *s)
{
	json_t *v = json_string(s);
	char *text = v ? json_util_dumps_py(v) : NULL;
	int r = text ? evbuffer_add(out, text, strlen(text)) : -1;

	free(text);
	json_decref(v);
	return r;
}

/*
 * [0, {"queue_info": {KEY: {"free": F, "pending": P}, ...},
 *      "server_info": [INFO, ...]}] in json.dumps layout.
 */
static int
summary_build(struct tracker *trk, struct evbuffer *body)
{
	struct sched_queue *q;
	struct conn *c;
	const char *sep = "";
	int r;

	r = evbuffer_add_printf(
	    body, "[%d, {\"queue_info\": {", NPUFARM_TVM_SUCCESS);
	for (q = sched_queue_first(trk->sched); r >= 0 && q;
	     q = sched_queue_next(q)) {
		r = evbuffer_add_printf(body, "%s", sep);
		if (r >= 0)
			r = add_json_string(body, sched_queue_key(q));
		if (r >= 0)
			r = evbuffer_add_printf(body,
			    ": {\"free\": %zu, \"pending\": %zu}",
			    sched_queue_free(q), sched_queue_waiting(q));
		sep = ", ";
	}
	if (r >= 0)
		r = evbuffer_add_printf(body, "}, \"server_info\": [");
	sep = "";
	TAILQ_FOREACH(c, &trk->cset->conns, link) {
		if (r < 0)
			break;
		if (c->tracker == NULL || !c->tracker->is_server)
			continue;
		r = evbuffer_add(body, sep, strlen(sep));
		if (r >= 0)
			r = evbuffer_add(
			    body, c->tracker->info, strlen(c->tracker->info));
		sep = ", ";
	}
	if (r >= 0)
		r = evbuffer_add_printf(body, "]}]");
	return r < 0 ? -ENOMEM : 0;
}

static void
handle_summary(struct conn *c)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL || summary_build(c->trk, body) < 0 ||
	    frame_add_buffer(bufferevent_get_output(c->bev), body) < 0)
		conn_close(c, "out of memory building SUMMARY");
	if (body != NULL)
		evbuffer_free(body);
}

static void
handle_get_pending(struct conn *c)
{
	json_t *v = json_array();
	struct board *b;
	struct slot *s;

	if (v == NULL)
		goto oom;
	TAILQ_FOREACH(b, &c->tracker->boards, link)
		TAILQ_FOREACH(s, &b->slots, link)
			if (json_array_append_new(v, json_string(s->matchkey)) <
			    0)
				goto oom;
	if (tvm_tracker_add_json(bufferevent_get_output(c->bev), v) < 0)
		goto oom;
	json_decref(v);
	return;
oom:
	json_decref(v);
	conn_close(c, "out of memory building GET_PENDING_MATCHKEYS");
}

static void
dispatch(struct conn *c, const struct tvm_tracker_msg *m)
{
	switch (m->code) {
	case NPUFARM_TVM_PING:
		reply_code(c, NPUFARM_TVM_SUCCESS);
		break;
	case NPUFARM_TVM_STOP:
		log_conn(c, LOG_NOTICE,
		    "STOP refused: stop this broker with SIGTERM");
		reply_code(c, NPUFARM_TVM_FAIL);
		break;
	case NPUFARM_TVM_PUT:
		handle_put(c, m);
		break;
	case NPUFARM_TVM_REQUEST:
		handle_request(c, m);
		break;
	case NPUFARM_TVM_UPDATE_INFO:
		handle_update_info(c, m);
		break;
	case NPUFARM_TVM_SUMMARY:
		handle_summary(c);
		break;
	case NPUFARM_TVM_GET_PENDING_MATCHKEYS:
		handle_get_pending(c);
		break;
	default:
		conn_close(c, "unhandled tracker code %d", m->code);
		break;
	}
}

/* What RPC connection @c's hello said (proxy.c keeps it in @c's state). */
void
tracker_rpc_hello(const struct conn *c, struct relay_hello *ret)
{
	const struct tracker_conn *tc = c->tracker;

	ret->key = tc != NULL ? tc->rpc_key : NULL;
	ret->timeout = tc != NULL ? tc->rpc_timeout : 0;
}

struct tracker_conn *
tracker_conn_get(struct conn *c)
{
	struct tracker_conn *tc = c->tracker;

	if (tc != NULL)
		return tc;
	tc = calloc(1, sizeof(*tc));
	if (tc == NULL)
		return NULL;
	TAILQ_INIT(&tc->boards);
	TAILQ_INIT(&tc->reqs);
	c->tracker = tc;
	return tc;
}

static void
tracker_read_cb(struct conn *c)
{
	if (c->state == CONN_READY)
		tracker_conn_read(c);
}

/* A tracker session's connection. */
static const struct conn_ops tracker_ops = {
    .read = tracker_read_cb,
    .closing = tracker_conn_closed,
    .closed = tracker_conn_closed,
    .hello = "no protocol magic",
    .flags = CONN_OPS_FRAMED | CONN_OPS_QUICKACK,
};

/*
 * The listener read the tracker magic on @c (listener_start_fn; @arg is
 * the broker): attach tracker state to @c, echo the magic and end the
 * handshake.  0 or -ENOMEM.
 */
int
tracker_conn_start(struct conn *c, void *arg)
{
	unsigned char magic[4];

	c->trk = arg;
	conn_set_ops(c, &tracker_ops, NULL);
	if (tracker_conn_get(c) == NULL)
		return -ENOMEM;
	frame_put_le32(magic, NPUFARM_TVM_TRACKER_MAGIC);
	if (bufferevent_write(c->bev, magic, sizeof(magic)) < 0)
		return -ENOMEM;
	conn_ready(c);
	/* Small frames, one reply each: read without FIONREAD (issue 15). */
	(void)conn_direct_read(c);
	return 0;
}

/*
 * Handle the frames buffered on tracker connection @c, at most
 * TRACKER_MAX_FRAMES_PER_EVENT per call.  Any violation closes @c with a
 * logged reason; @c must not be touched by the caller afterwards except to
 * check its state.
 */
void
tracker_conn_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	const struct broker_config *cfg = c->trk->cfg;
	char scratch[TRACKER_FAST_FRAME];
	struct tvm_tracker_msg m;
	struct npufarm_err err;
	const char *body;
	json_t *root;
	size_t len;
	int n, r;

	for (n = 0; n < TRACKER_MAX_FRAMES_PER_EVENT; n++) {
		r = frame_next(in, (size_t)cfg->max_frame, &body, &len);
		if (r == FRAME_INCOMPLETE)
			return;
		if (r < 0) {
			if (r == -EMSGSIZE)
				conn_close(c,
				    "frame length exceeds max_frame=%ld bytes "
				    "or is negative",
				    cfg->max_frame);
			else
				conn_close(c, "zero-length frame");
			return;
		}
		c->frames_in++;
		/* A lease cycle's frames without a jansson tree (issue 15). */
		if (tvm_tracker_parse_fast(body, len, (size_t)cfg->max_key_len,
			(int)cfg->max_json_depth, scratch, sizeof(scratch),
			&m) == 1) {
			frame_consume(in, len);
			dispatch(c, &m);
			if (c->state == CONN_CLOSING)
				return;
			continue;
		}
		r = json_util_load(
		    body, len, (int)cfg->max_json_depth, &root, &err);
		frame_consume(in, len);
		if (r < 0) {
			conn_close(c, "frame %llu: %s",
			    (unsigned long long)c->frames_in, err.msg);
			return;
		}
		r = tvm_tracker_parse(root, (size_t)cfg->max_key_len, &m, &err);
		if (r < 0) {
			conn_close(c, "frame %llu: %s",
			    (unsigned long long)c->frames_in, err.msg);
			json_decref(root);
			return;
		}
		dispatch(c, &m);
		json_decref(root);
		if (c->state == CONN_CLOSING)
			return;
	}
	if (evbuffer_get_length(in) > 0)
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * Forget everything @c registered or asked for: waiting requests end as
 * "cancelled", its boards go offline and their open leases end as "lost".
 * Idempotent; frees c->tracker.
 */
void
tracker_conn_closed(struct conn *c)
{
	struct tracker_conn *tc = c->tracker;
	struct treq *t;
	struct board *b;
	char detail[160];

	if (tc == NULL)
		return;
	if (tc->data_for != NULL)
		tracker_agent_detach(
		    tc->data_for, "its data connection closed");
	while ((t = TAILQ_FIRST(&tc->reqs)) != NULL) {
		struct sched_queue *q = t->lr.s.queue;

		(void)snprintf(detail, sizeof(detail),
		    "client closed its tracker connection after waiting %.3f s",
		    (double)(ledger_now_us() - t->requested_us) / 1e6);
		treq_end(t, NPUFARM_OUTCOME_CANCELLED, detail);
		sched_queue_gc(q);
	}
	while ((b = TAILQ_FIRST(&tc->boards)) != NULL)
		board_free(b,
		    c->trk->stopping ? "broker stopping" : "connection closed",
		    false);
	free(tc->info);
	free(tc->rpc_key);
	free(tc);
	c->tracker = NULL;
}

/* Call @fn for every live board (API introspection). */
void
tracker_foreach_board(struct tracker *trk, tracker_board_fn *fn, void *arg)
{
	struct conn *c;
	struct board *b;
	struct slot *s;

	TAILQ_FOREACH(c, &trk->cset->conns, link) {
		if (c->tracker == NULL)
			continue;
		TAILQ_FOREACH(b, &c->tracker->boards, link) {
			struct lease *l = TAILQ_FIRST(&b->leases);
			struct tracker_board_info info = {
			    .id = b->id,
			    .key = sched_queue_key(b->queue),
			    .address = b->address,
			    .lease_id = l ? l->id : 0,
			    .lease_user = l ? l->user : NULL,
			    .lease_peer = l ? l->peer : NULL,
			    .lease_granted_us = l ? l->granted_us : 0,
			    .state = board_view_state(b->state, b->drained),
			    .relay = b->is_agent           ? "agent"
				     : b->proxied          ? "proxy"
				     : trk->cfg->relay_all ? "broker"
							   : "none",
			};

			TAILQ_FOREACH(s, &b->slots, link)
				info.free++;
			if (b->task != NULL &&
			    lease_request_of(b->task)->ops->task_info != NULL)
				lease_request_of(b->task)->ops->task_info(
				    lease_request_of(b->task), &info.task);
			fn(&info, arg);
		}
	}
}

struct foreach_req {
	tracker_request_fn *fn;
	void *arg;
};

static void
foreach_req_cb(struct sched_request *r, void *arg)
{
	struct foreach_req *f = arg;
	struct tracker_request_info info = {
	    .user = sched_request_user(r),
	};
	const struct lease_request *lr = lease_request_of(r);

	/* Each kind describes itself (issue 11: a waiting native task read
	 * as a TVM request showed garbage and was undefined behaviour). */
	lr->ops->describe(lr, &info);
	f->fn(&info, f->arg);
}

/* Call @fn for the requests waiting for @key, in service order. */
void
tracker_foreach_request(
    struct tracker *trk, const char *key, tracker_request_fn *fn, void *arg)
{
	struct foreach_req f = {fn, arg};
	struct sched_queue *q;

	if (sched_queue_get(trk->sched, key, false, &q) == 0)
		sched_foreach_waiting(q, foreach_req_cb, &f);
}

/* ---- boards that dial in (TVM RPC proxy) ------------------------------ */

static int
pending_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pending *)a)->matchkey,
	    ((const struct pending *)b)->matchkey);
}

void
tracker_pending_free(struct pending *p)
{
	struct tracker *trk = p->board->conn->trk;

	(void)tdelete(p, &trk->pending, pending_cmp);
	p->board->pending = NULL;
	event_free(p->timer);
	free(p->dial_key);
	free(p);
}

/*
 * A fresh matchkey of @key into @buf (at least strlen(@key) + 32 bytes):
 * KEY:npufarm-<64 random bits>.
 */
void
tracker_matchkey_new(const char *key, char *buf, size_t len)
{
	uint64_t rnd = 0;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint64_t)ledger_now_us() ^ (uint64_t)(uintptr_t)buf;
	(void)snprintf(
	    buf, len, "%s:npufarm-%016llx", key, (unsigned long long)rnd);
}

/* A fresh slot for a board that dialled in, with a fresh matchkey. */
struct slot *
tracker_slot_new(struct board *b)
{
	const char *key = sched_queue_key(b->queue);
	struct slot *s;
	size_t n = strlen(key) + 32;

	s = calloc(1, sizeof(*s) + n);
	if (s == NULL)
		return NULL;
	tracker_matchkey_new(key, s->matchkey, n);
	s->board = b;
	s->s.tags = b->tags;
	return s;
}

/* Offer proxied board @b (one slot: one session per connection). */
static int
board_offer(struct board *b)
{
	struct slot *s;

	if (b->dying)
		return 0;
	s = tracker_slot_new(b);
	if (s == NULL)
		return -ENOMEM;
	s->s.caps = SCHED_CAP_TVM;
	TAILQ_INSERT_TAIL(&b->slots, s, link);
	b->conn->tracker->nslots++;
	if (!b->drained)
		sched_slot_push(b->queue, &s->s);
	lease_grant_queue(b->queue);
	return 0;
}

static void
pending_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;
	struct board *b = p->board;
	struct lease *l = p->lease;
	char detail[160];

	(void)snprintf(detail, sizeof(detail),
	    "the client never connected to the broker with its matchkey "
	    "within %g s",
	    b->conn->trk->cfg->pair_timeout);
	tracker_pending_free(p);
	tracker_lease_release(b, l, NPUFARM_OUTCOME_LOST, detail);
	if (b->proxied && board_offer(b) < 0)
		conn_close(b->conn, "out of memory offering a board");
}

/*
 * Hold lease @l of @b until a client connects to the broker with matchkey
 * @mk; @dial_key (copied) is a PUT board's own matchkey when the broker
 * dials it, else NULL.
 */
static void
pending_add(
    struct board *b, struct lease *l, const char *mk, const char *dial_key)
{
	struct tracker *trk = b->conn->trk;
	size_t n = strlen(mk) + 1;
	struct pending *p;

	p = calloc(1, sizeof(*p) + n);
	if (p == NULL)
		goto oom;
	memcpy(p->matchkey, mk, n);
	p->board = b;
	p->lease = l;
	p->timer = evtimer_new(trk->base, pending_timeout_cb, p);
	if (dial_key != NULL)
		p->dial_key = strdup(dial_key);
	if (p->timer == NULL || evtimer_add(p->timer, trk->tv_pair) < 0 ||
	    (dial_key != NULL && p->dial_key == NULL) ||
	    tsearch(p, &trk->pending, pending_cmp) == NULL) {
		if (p->timer != NULL)
			event_free(p->timer);
		free(p->dial_key);
		free(p);
		goto oom;
	}
	b->pending = p;
	return;
oom:
	/* The grant went out but cannot be honoured: end it now. */
	tracker_lease_release(
	    b, l, NPUFARM_OUTCOME_LOST, "out of memory tracking the grant");
	conn_close(b->conn, "out of memory tracking a grant");
}

int
tracker_proxy_info(struct conn *c, const char *key)
{
	json_t *v;
	char *name;

	if (asprintf(&name, "server:%s", key) < 0)
		return -ENOMEM;
	v = json_pack("{s:s, s:[s, I]}", "key", name, "addr", c->peer_host,
	    (json_int_t)strtol(strrchr(c->peer, ':') + 1, NULL, 10));
	free(name);
	if (v == NULL)
		return -ENOMEM;
	c->tracker->info = json_util_dumps_py(v);
	json_decref(v);
	if (c->tracker->info == NULL)
		return -ENOMEM;
	c->tracker->is_server = true;
	return 0;
}

/*
 * Register RPC data connection @c, which sent the hello "server:@key", as
 * a board of @key waiting for a session (TVM servers started with
 * --through-proxy, npufarm agents).  @hello_key is its full key, sent to
 * the client at pair-up.  Returns 0, or -ENOMEM/-E2BIG after closing @c.
 */
/*
 * The value of the token "@name=VALUE" among the whitespace-separated
 * options of RPC hello key @hello_key (after the first token), copied
 * into @buf (@len bytes); NULL if absent, empty or too long.  The one
 * parser of the options npufarm's agent appends (agent=, session=).
 */
const char *
tracker_hello_option(
    const char *hello_key, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name), vlen;
	const char *p = hello_key + strcspn(hello_key, " \t\n");

	while (*p != '\0') {
		p += strspn(p, " \t\n");
		vlen = strcspn(p, " \t\n");
		if (vlen > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			if (vlen - n - 1 >= len || vlen == n + 1)
				return NULL;
			memcpy(buf, p + n + 1, vlen - n - 1);
			buf[vlen - n - 1] = '\0';
			return buf;
		}
		p += vlen;
	}
	return NULL;
}

int
tracker_proxy_board(struct conn *c, const char *key, const char *hello_key)
{
	struct sched_queue *q;
	char name[256], session[128];
	const char *aname, *sid;
	struct board *b;

	aname = tracker_hello_option(hello_key, "agent", name, sizeof(name));
	sid = tracker_hello_option(
	    hello_key, "session", session, sizeof(session));
	if (aname != NULL)
		return tracker_agent_attach(c, key, aname, sid, hello_key);
	if (tracker_conn_get(c) == NULL) {
		conn_close(c, "out of memory registering a board");
		return -ENOMEM;
	}
	if (tracker_queue_get(c, key, &q) < 0) {
		if (c->state != CONN_CLOSING)
			conn_close(c, "out of memory creating a queue");
		return -ENOMEM;
	}
	b = tracker_board_new(c, q, "proxy", c->peer_host, 0);
	if (b == NULL || (b->hello_key = strdup(hello_key)) == NULL) {
		sched_queue_gc(q);
		conn_close(c, "out of memory registering a board");
		return -ENOMEM;
	}
	b->proxied = true;
	/* Listed in SUMMARY as a TVM server of its key, so query_rpc_tracker
	 * and MetaSchedule count it. */
	if (tracker_proxy_info(c, key) < 0 || board_offer(b) < 0) {
		conn_close(c, "out of memory offering a board");
		return -ENOMEM;
	}
	return 0;
}

/*
 * RPC data connection @c sent "client:@match".  A matchkey the tracker
 * granted pairs it with its board at once (returns 1); the name of a key
 * with boards queues it like a REQUEST, paired when a board is free
 * (TVM's standalone-proxy use; returns 0); anything else is -ENOENT, and
 * the caller answers MISMATCH.
 */
int
tracker_proxy_client(struct conn *c, const char *match)
{
	struct pending *probe, **found;
	struct tracker *trk = c->trk;
	struct sched_queue *q;
	struct tracker_conn *tc;
	size_t n = strlen(match) + 1;
	struct board *b;
	int64_t lease_id;
	struct treq *t;

	probe = malloc(sizeof(*probe) + n);
	if (probe == NULL)
		return -ENOMEM;
	memcpy(probe->matchkey, match, n);
	found = tfind(probe, &trk->pending, pending_cmp);
	free(probe);
	if (found != NULL) {
		struct pending *p = *found;
		char *dial_key = p->dial_key;

		b = p->board;
		lease_id = p->lease->id;
		p->dial_key = NULL;
		tracker_pending_free(p);
		if (dial_key != NULL) {
			struct relay_hello h;

			lease_relayed(trk->lease_book, lease_id,
			    sched_queue_key(b->queue), 0, NULL);
			tracker_rpc_hello(c, &h);
			relay_dial(trk->relays, c, &h, b->host, b->port,
			    dial_key, lease_id, b->id, &tracker_dialed_end,
			    trk);
			free(dial_key);
		} else
			tracker_board_relay(b, c, lease_id);
		return 1;
	}
	if (sched_queue_get(trk->sched, match, false, &q) < 0 ||
	    sched_queue_boards(q) == 0)
		return -ENOENT;
	tc = tracker_conn_get(c);
	t = treq_new(match, c->peer_host);
	if (t != NULL) {
		t->lr.s.needs = SCHED_CAP_TVM;
		t->lr.ops = &treq_ops;
	}
	if (tc == NULL || t == NULL ||
	    sched_enqueue(q, &t->lr.s, t->user, 0) < 0) {
		free(t);
		return -ENOMEM;
	}
	t->conn = c;
	t->rpc = true;
	t->requested_us = ledger_now_us();
	TAILQ_INSERT_TAIL(&tc->reqs, t, link);
	tc->nreqs++;
	lease_grant_queue(q);
	return 0;
}

/*
 * The relay on board connection @c is over: record how the session of its
 * lease ended, and take the board out of the queues quietly (the same
 * board dials in again for its next session).  Detaches and frees
 * c->tracker; @c itself is the caller's to close.
 */
void
tracker_proxy_session_end(struct conn *c, const struct ledger_session *sess)
{
	struct tracker_conn *tc = c->tracker;
	struct tracker *trk = c->trk;
	struct board *b;
	struct lease *l;

	if (tc == NULL)
		return;
	b = TAILQ_FIRST(&tc->boards);
	l = b ? TAILQ_FIRST(&b->leases) : NULL;
	if (l != NULL) {
		lease_session_ended(
		    trk->lease_book, l->id, sched_queue_key(b->queue), sess);
		log_info("lease %lld of %s (%s): session ended %s: %s",
		    (long long)l->id, b->address, sched_queue_key(b->queue),
		    sess->outcome, sess->detail);
		TAILQ_REMOVE(&b->leases, l, link);
		free(l->user);
		free(l);
		if (--b->nleases == 0)
			sched_queue_add_leased(b->queue, -1);
	}
	if (b != NULL)
		board_free(b, "session ended; the board dials in again", true);
	tracker_conn_closed(c);
}

/*
 * The open lease @lease_id of live PUT board @board_id, with its board in
 * *@ret_b; NULL if either is gone.
 */
static struct lease *
lease_find(struct tracker *trk, int64_t board_id, int64_t lease_id,
    struct board **ret_b)
{
	struct board *b;
	struct lease *l;
	struct conn *c;

	TAILQ_FOREACH(c, &trk->cset->conns, link) {
		if (c->tracker == NULL)
			continue;
		TAILQ_FOREACH(b, &c->tracker->boards, link) {
			if (b->id != board_id)
				continue;
			TAILQ_FOREACH(l, &b->leases, link)
				if (l->id == lease_id) {
					*ret_b = b;
					return l;
				}
		}
	}
	return NULL;
}

/*
 * The session the broker relayed with PUT board @board_id (it dialled the
 * board: --relay-boards all) under lease @lease_id is over as @sess says.
 * The board stays registered; it PUTs a new matchkey for its next session.
 */
void
tracker_dialed_session_end(struct tracker *trk, int64_t board_id,
    int64_t lease_id, const struct ledger_session *sess)
{
	struct board *b = NULL;
	struct lease *l;

	l = lease_find(trk, board_id, lease_id, &b);
	lease_session_ended(trk->lease_book, lease_id,
	    l != NULL ? sched_queue_key(b->queue) : NULL, sess);
	log_info("lease %lld (board %lld, relayed): session ended %s: %s",
	    (long long)lease_id, (long long)board_id, sess->outcome,
	    sess->detail);
	if (l == NULL)
		return; /* its tracker connection went, and the lease with it */
	TAILQ_REMOVE(&b->leases, l, link);
	free(l->user);
	free(l);
	b->unreach_n = 0; /* it was reached */
	if (--b->nleases == 0) {
		sched_queue_add_leased(b->queue, -1);
		tracker_board_set_state(
		    b, b->quarantine != NULL ? BOARD_QUARANTINED : BOARD_IDLE);
	}
}

/* The first wait before an unreachable PUT board is tried again, and the
 * longest (it doubles with each failure in a row). */
#define UNREACH_FIRST_S 10
#define UNREACH_MAX_S   300

/* PUT board @b is back in service: offer its matchkeys again. */
static void
unreach_lift(struct board *b, const char *why)
{
	struct slot *s;

	if (b->quarantine == NULL)
		return;
	free(b->quarantine);
	b->quarantine = NULL;
	if (b->unreach_ev != NULL)
		(void)evtimer_del(b->unreach_ev);
	if (b->nleases == 0)
		tracker_board_set_state(b, BOARD_IDLE);
	if (!b->drained)
		TAILQ_FOREACH(s, &b->slots, link)
			if (s->s.queue == NULL)
				sched_slot_push(b->queue, &s->s);
	log_notice("board %s of key '%s' back in service: %s", b->address,
	    sched_queue_key(b->queue), why);
	lease_grant_queue(b->queue);
}

static void
unreach_cb(evutil_socket_t fd, short what, void *arg)
{
	unreach_lift(arg, "trying it again");
}

/*
 * The broker could not reach PUT board @b (@why): out of service (state
 * quarantined, with @why as its detail) for 10 s, doubling with each such
 * failure in a row up to 5 min, so tuners are not sent to it meanwhile.
 * 10 s outlasts the ~8 s after which a TVM server whose matchkey went
 * unused registers a new one, so a tuner's first retry goes elsewhere.
 */
static void
board_unreachable(struct board *b, const char *why)
{
	struct tracker *trk = b->conn->trk;
	unsigned n = b->unreach_n < 6 ? b->unreach_n : 6;
	double wait = UNREACH_FIRST_S * (double)(1u << n);
	struct timeval tv;
	struct slot *s;
	char *reason;

	if (wait > UNREACH_MAX_S)
		wait = UNREACH_MAX_S;
	tv = clock_tv(wait);
	reason = strdup(why);
	if (b->unreach_ev == NULL)
		b->unreach_ev = evtimer_new(trk->base, unreach_cb, b);
	if (reason == NULL || b->unreach_ev == NULL ||
	    evtimer_add(b->unreach_ev, &tv) < 0) {
		free(reason);
		return; /* it stays in service: only the lease is lost */
	}
	free(b->quarantine);
	b->quarantine = reason;
	b->unreach_n++;
	TAILQ_FOREACH(s, &b->slots, link)
		sched_slot_remove(&s->s);
	if (b->nleases == 0)
		tracker_board_set_state(b, BOARD_QUARANTINED);
	log_warn("board %s of key '%s' out of service for %g s: %s", b->address,
	    sched_queue_key(b->queue), wait, why);
}

/*
 * The broker could not start the session of lease @lease_id with PUT
 * board @board_id (@why): the lease is lost.  @board_fault (unreachable,
 * it refused the matchkey, no answer): the board's event log says why too;
 * not when the client left first.
 */
void
tracker_dialed_failed(struct tracker *trk, int64_t board_id, int64_t lease_id,
    const char *why, bool board_fault)
{
	struct npufarm_err err;
	struct board *b = NULL;
	struct lease *l;

	if (board_fault)
		(void)ledger_event(trk->ledger, "board_unreachable", board_id,
		    why, ledger_now_us(), &err);
	l = lease_find(trk, board_id, lease_id, &b);
	if (l != NULL) {
		tracker_lease_release(b, l, NPUFARM_OUTCOME_LOST, why);
		if (board_fault)
			board_unreachable(b, why);
	} else /* ended for the broker already: the ledger only */
		lease_released(
		    trk->lease_book, lease_id, NULL, NPUFARM_OUTCOME_LOST, why);
}

/*
 * Drain (@on) or undrain every live board with ledger id @id: a drained
 * board keeps its registration and finishes its lease, but its free slots
 * leave the queue, so nothing new is granted to it.  Returns the number of
 * live registrations changed (0 if the board is offline).
 */
int
tracker_board_drain(struct tracker *trk, int64_t id, bool on)
{
	struct sched_queue *q;
	struct board *b;
	struct conn *c;
	struct slot *s;
	int n = 0;

	TAILQ_FOREACH(c, &trk->cset->conns, link) {
		if (c->tracker == NULL)
			continue;
		TAILQ_FOREACH(b, &c->tracker->boards, link) {
			if (b->id != id)
				continue;
			n++; /* live, whether or not the mark changes */
			if (!on && !b->is_agent)
				unreach_lift(b, "undrained by an operator");
			if (b->drained == on)
				continue;
			b->drained = on;
			q = b->queue;
			TAILQ_FOREACH(s, &b->slots, link) {
				if (on)
					sched_slot_remove(&s->s);
				else if (s->s.queue == NULL &&
					 b->quarantine == NULL)
					sched_slot_push(q, &s->s);
			}
			board_dirty(b);
			log_notice("board %s of key '%s' %s", b->address,
			    sched_queue_key(q), on ? "drained" : "undrained");
			if (!on)
				lease_grant_queue(q);
		}
	}
	return n;
}

static void
dialed_end_cb(void *arg, struct conn *board, int64_t board_id, int64_t lease_id,
    const struct ledger_session *sess)
{
	tracker_dialed_session_end(arg, board_id, lease_id, sess);
}

static void
dialed_failed_cb(void *arg, int64_t board_id, int64_t lease_id, const char *why,
    bool board_fault)
{
	tracker_dialed_failed(arg, board_id, lease_id, why, board_fault);
}

/* How the relay of a PUT board the broker dials reports (arg: trk). */
const struct relay_end tracker_dialed_end = {
    .session_end = dialed_end_cb,
    .dial_failed = dialed_failed_cb,
};

/*
 * The farm protocols' context on @base under @cfg, writing to @ledger,
 * queueing in @sched, counting in @metrics, over the connections of
 * @cset (all borrowed, outliving it).  0 or -ENOMEM.
 */
int
tracker_new(struct event_base *base, const struct broker_config *cfg,
    struct ledger *ledger, struct sched *sched, struct metrics *metrics,
    struct conn_set *cset, struct tracker **ret_tracker)
{
	struct tracker *trk = calloc(1, sizeof(*trk));

	if (trk == NULL)
		return -ENOMEM;
	trk->boards = board_registry_new();
	if (trk->boards == NULL ||
	    lease_book_new(ledger, metrics, &trk->lease_book) < 0) {
		board_registry_free(trk->boards);
		free(trk);
		return -ENOMEM;
	}
	trk->base = base;
	trk->cfg = cfg;
	trk->ledger = ledger;
	trk->sched = sched;
	trk->metrics = metrics;
	trk->cset = cset;
	TAILQ_INIT(&trk->dirty_boards);
	*ret_tracker = trk;
	return 0;
}

/* Free @trk, whose connections are gone.  Accepts NULL; returns NULL. */
struct tracker *
tracker_free(struct tracker *trk)
{
	if (trk == NULL)
		return NULL;
	board_registry_free(trk->boards);
	lease_book_free(trk->lease_book);
	free(trk);
	return NULL;
}

/* The registry of agent boards (agent_link.c finds its boards there). */
struct board_registry *
tracker_boards(const struct tracker *trk)
{
	return trk->boards;
}

/* The agent links and the relays the tracker hands boards to (borrowed). */
void
tracker_set_peers(
    struct tracker *trk, struct agent_links *links, struct relays *relays)
{
	trk->links = links;
	trk->relays = relays;
}

/* Admit RPC peers by @auth from now on (borrowed; SIGHUP swaps it). */
void
tracker_set_auth(struct tracker *trk, const struct auth *auth)
{
	trk->auth = auth;
}

/*
 * The common timeouts of --request-timeout, --unknown-key-grace and
 * --pair-timeout (NULL: none), for what starts from now on.
 */
void
tracker_set_timeouts(struct tracker *trk, const struct timeval *request,
    const struct timeval *grace, const struct timeval *pair)
{
	trk->tv_request = request;
	trk->tv_grace = grace;
	trk->tv_pair = pair;
}

/* The broker is stopping: what closes from now on says so. */
void
tracker_stop(struct tracker *trk)
{
	trk->stopping = true;
}
