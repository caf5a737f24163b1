/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm agents' boards in the tracker: one board per agent link, in its
 * key's queue whenever the agent says it is ready, with the capabilities
 * of its runners, plus TVM sessions while one of its data connections
 * waits ("server:KEY agent=NAME session=ID").  TVM sessions and native
 * tasks lease the same board, one at a time.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_config.h"
#include "conn.h"
#include "err.h"
#include "lease.h"
#include "ledger.h"
#include "log.h"
#include "relay.h"
#include "scheduler.h"
#include "tracker.h"
#include "tracker_int.h"

/*
 * Bring agent board @b's state and its slot in line with what it can do
 * now: one slot while the agent is ready, in service and not leased, with
 * the capabilities of its runners, plus TVM sessions while a data
 * connection waits.
 */
void
tracker_agent_update(struct board *b)
{
	unsigned caps = (b->data != NULL ? SCHED_CAP_TVM : 0) | b->runners;
	bool busy = b->nleases > 0 || b->task != NULL;
	bool offer = !b->dying && b->ready && b->quarantine == NULL && !busy &&
		     b->pending == NULL && caps != 0;
	struct slot *s = TAILQ_FIRST(&b->slots);

	if (busy)
		tracker_board_set_state(b, BOARD_LEASED);
	else if (b->quarantine != NULL)
		tracker_board_set_state(b, BOARD_QUARANTINED);
	else if (!offer)
		tracker_board_set_state(b, BOARD_BUSY);
	else
		tracker_board_set_state(b, BOARD_IDLE);
	if (!offer) {
		while ((s = TAILQ_FIRST(&b->slots)) != NULL) {
			sched_slot_remove(&s->s);
			TAILQ_REMOVE(&b->slots, s, link);
			b->conn->tracker->nslots--;
			free(s);
		}
		return;
	}
	if (s != NULL) {
		s->s.caps = caps; /* keeps its place in the queue */
		lease_grant_queue(b->queue);
		return;
	}
	s = tracker_slot_new(b);
	if (s == NULL) {
		log_err(
		    "agent board %s: out of memory offering it", b->address);
		return;
	}
	s->s.caps = caps;
	TAILQ_INSERT_TAIL(&b->slots, s, link);
	b->conn->tracker->nslots++;
	if (!b->drained)
		sched_slot_push(b->queue, &s->s);
	lease_grant_queue(b->queue);
}

/* Forget agent board @b's waiting data connection (closed: @why). */
void
tracker_agent_detach(struct board *b, const char *why)
{
	struct conn *c = b->data;

	if (c == NULL)
		return;
	c->tracker->data_for = NULL;
	b->data = NULL;
	free(b->data_key);
	free(b->data_session);
	b->data_key = b->data_session = NULL;
	log_debug("agent board %s: data connection gone: %s", b->address, why);
	if (b->pending != NULL) {
		/* Granted, but the connection to pair with is gone. */
		struct lease *l = b->pending->lease;

		tracker_pending_free(b->pending);
		tracker_lease_release(b, l, NPUFARM_OUTCOME_LOST,
		    "the agent's data connection closed before its client "
		    "connected");
	}
	tracker_agent_update(b);
}

static void
proxy_end_cb(void *arg, struct conn *board, int64_t board_id, int64_t lease_id,
    const struct ledger_session *sess)
{
	tracker_proxy_session_end(board, sess);
}

static void
agent_end_cb(void *arg, struct conn *board, int64_t board_id, int64_t lease_id,
    const struct ledger_session *sess)
{
	tracker_agent_session_end(arg, board_id, lease_id, sess);
}

/* How relays report: of a board that dialled in; of an agent's board. */
static const struct relay_end proxy_end = {.session_end = proxy_end_cb};
static const struct relay_end agent_end = {.session_end = agent_end_cb};

/*
 * Relay client @client with board @b's session: a board that dialled in,
 * or an agent's waiting data connection.
 */
void
tracker_board_relay(struct board *b, struct conn *client, int64_t lease_id)
{
	struct conn *data = b->data;
	struct relay_hello h;
	char *key;

	tracker_rpc_hello(client, &h);
	if (!b->is_agent) {
		lease_relayed(b->conn->trk->lease_book, lease_id,
		    sched_queue_key(b->queue), 0, NULL);
		relay_start(b->conn->trk->relays, client, &h, b->conn,
		    b->hello_key, lease_id, false, b->id, &proxy_end, NULL);
		return;
	}
	if (data == NULL) {
		relay_refuse(client, "the board's agent withdrew its offer");
		return;
	}
	lease_relayed(b->conn->trk->lease_book, lease_id,
	    sched_queue_key(b->queue), b->id, b->data_session);
	key = b->data_key;
	b->data_key = NULL;
	data->tracker->data_for = NULL;
	b->data = NULL;
	free(b->data_session);
	b->data_session = NULL;
	b->ready = false; /* until the session is cleaned up */
	relay_start(b->conn->trk->relays, client, &h, data, key, lease_id, true,
	    b->id, &agent_end, b->conn->trk);
	free(key);
	tracker_agent_update(b);
}

/*
 * The board of agent @a, linked on @link for @key as @name, offering
 * native @runners (SCHED_CAP_KERNEL/EXEC).  It is offered once the agent
 * says it is ready.  NULL after closing @link on failure.
 */
struct board *
tracker_agent_board_new(struct conn *link, struct agent *a, const char *key,
    const char *name, unsigned runners)
{
	struct sched_queue *q;
	struct board *b;

	if (tracker_conn_get(link) == NULL) {
		conn_close(link, "out of memory registering a board");
		return NULL;
	}
	if (tracker_queue_get(link, key, &q) < 0) {
		if (link->state != CONN_CLOSING)
			conn_close(link, "out of memory creating a queue");
		return NULL;
	}
	b = tracker_board_new(link, q, "agent", name, 0);
	if (b == NULL || tracker_proxy_info(link, key) < 0) {
		sched_queue_gc(q);
		conn_close(link, "out of memory registering a board");
		return NULL;
	}
	b->proxied = true;
	b->is_agent = true;
	b->agent = a;
	if (board_registry_add(
		link->trk->boards, b, a, name, b->id, &b->entry) < 0) {
		conn_close(link, "out of memory registering a board");
		return NULL;
	}
	b->runners = runners;
	tracker_agent_update(b);
	return b;
}

/*
 * Agent board @b carries @tags (canonical, tags.h; NULL: none): takes
 * ownership.  Jobs that name tags run only on boards that carry them.
 */
void
tracker_agent_set_tags(struct board *b, char *tags)
{
	struct slot *s;

	free(b->tags);
	b->tags = tags;
	TAILQ_FOREACH(s, &b->slots, link)
		s->s.tags = tags;
}

/*
 * Agent board @b says @state: "ready" (it can take work), "busy" (it is
 * cleaning up), or "quarantined" with @reason.
 */
void
tracker_agent_state(struct board *b, const char *state, const char *reason)
{
	free(b->quarantine);
	b->quarantine = NULL;
	b->ready = strcmp(state, "ready") == 0;
	if (strcmp(state, "quarantined") == 0)
		b->quarantine = strdup(reason ? reason : "quarantined");
	tracker_agent_update(b);
}

/* Agent board @b's quarantine reason, or NULL while it is in service. */
const char *
tracker_agent_quarantine(const struct board *b)
{
	return b->quarantine;
}

/*
 * The relayed session of lease @lease_id on agent board @board_id is over
 * for the broker: the lease book takes the relay's view (the agent's
 * report stands over it) and the board's lease is freed.  The board itself
 * waits for its agent.
 */
void
tracker_agent_session_end(struct tracker *trk, int64_t board_id,
    int64_t lease_id, const struct ledger_session *sess)
{
	struct board *b = board_by_id(trk->boards, board_id);
	struct lease *l = NULL;

	if (b != NULL)
		TAILQ_FOREACH(l, &b->leases, link)
			if (l->id == lease_id)
				break;
	/* l NULL: the agent's link went, and the lease with it. */
	lease_session_ended(trk->lease_book, lease_id,
	    l != NULL ? sched_queue_key(b->queue) : NULL, sess);
	log_info("lease %lld (agent board %lld): session ended %s: %s",
	    (long long)lease_id, (long long)board_id, sess->outcome,
	    sess->detail);
	if (l == NULL)
		return;
	TAILQ_REMOVE(&b->leases, l, link);
	free(l->user);
	free(l);
	if (--b->nleases == 0)
		sched_queue_add_leased(b->queue, -1);
	tracker_agent_update(b);
}

/*
 * Agent board @b came back (its link was re-established) still running
 * native task @r: it is the task's again.
 */
void
tracker_agent_task_resume(struct board *b, struct sched_request *r)
{
	if (b == NULL || b->task != NULL)
		return;
	b->task = r;
	b->ready = false;
	if (b->nleases == 0)
		sched_queue_add_leased(b->queue, 1);
	tracker_agent_update(b);
}

/* The native task agent board @b ran is over: the board waits for its
 * agent to say it is ready again. */
void
tracker_agent_task_end(struct board *b)
{
	if (b->task == NULL)
		return;
	b->task = NULL;
	if (b->nleases == 0)
		sched_queue_add_leased(b->queue, -1);
	tracker_agent_update(b);
}

/*
 * An agent's data connection @c ("server:KEY agent=NAME session=ID"): the
 * agent must be linked, serve KEY, and have no other offer waiting (its
 * board is one board, never offered or leased twice).  Returns 0, or
 * -ENOENT after refusing @c.
 */
int
tracker_agent_attach(struct conn *c, const char *key, const char *name,
    const char *session, const char *hello_key)
{
	struct board *b = board_by_agent(c->trk->boards, name);
	struct tracker_conn *tc;
	char why[256];

	if (b == NULL)
		(void)snprintf(
		    why, sizeof(why), "no agent named '%.64s' is linked", name);
	else if (session == NULL)
		(void)snprintf(why, sizeof(why),
		    "agent '%.64s' offered a board without session=ID", name);
	else if (strcmp(sched_queue_key(b->queue), key) != 0)
		(void)snprintf(why, sizeof(why),
		    "agent '%.64s' serves key '%.64s', not '%.64s'", name,
		    sched_queue_key(b->queue), key);
	else if (b->quarantine != NULL)
		(void)snprintf(why, sizeof(why),
		    "agent '%.64s' is quarantined: %.128s", name,
		    b->quarantine);
	else if (b->data != NULL)
		(void)snprintf(why, sizeof(why),
		    "agent '%.64s' already has a board offered", name);
	else if (b->nleases > 0 || b->task != NULL)
		(void)snprintf(why, sizeof(why),
		    "agent '%.64s' offered its board while the broker still "
		    "holds it leased",
		    name);
	else
		goto ok;
	relay_refuse(c, why);
	return -ENOENT;
ok:
	tc = tracker_conn_get(c);
	b->data_key = strdup(hello_key);
	b->data_session = strdup(session);
	if (tc == NULL || b->data_key == NULL || b->data_session == NULL) {
		free(b->data_key);
		free(b->data_session);
		b->data_key = b->data_session = NULL;
		conn_close(c, "out of memory registering an offer");
		return -ENOMEM;
	}
	tc->data_for = b;
	b->data = c;
	b->ready = true; /* an offer means it is ready */
	tracker_agent_update(b);
	return 0;
}

/* Where the tracker's leases end (lease.c): agent links report there. */
struct lease_book *
tracker_lease_book(const struct tracker *trk)
{
	return trk->lease_book;
}
