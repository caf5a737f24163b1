/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's side of a relayed TVM RPC session: it pairs a client's data
 * connection with a board's and runs the shared packet-aware relay
 * (common/rpc_relay.h) over the two connections.  The board side's end is
 * recorded on the board's lease; the client side lives on as the relay
 * says.  A board that is an npufarm agent enforces the session deadline
 * itself and reports how the session ended; for it the broker's deadline is
 * only a backstop, and a data connection that breaks off mid-call means the
 * agent is gone (lost), not that the program crashed.
 */
#include "config.h"

#include "relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <npufarm/protocol.h>

#include "conn.h"
#include "err.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "rpc_relay.h"
#include "server.h"
#include "tracker.h"
#include "tvm_rpc.h"

/* Bytes one deferred write may take (see relay_start()). */
#define RELAY_WRITE_MAX (1024 * 1024)
/* How long an ended session's client may linger (twice: §6.5 item 9). */
#define RELAY_LINGER_S  10.0

struct relay {
	struct server *srv;   /* borrowed */
	struct conn *client;  /* borrowed; NULL once freed */
	struct conn *board;   /* borrowed; NULL once handed back */
	struct rpc_relay *rr; /* the session */
	bool agent;           /* the board is an npufarm agent */
	int64_t lease_id;
	int64_t board_id;
};

static struct conn *
side_conn(struct relay *r, enum rpc_relay_side side)
{
	return side == RPC_RELAY_CLIENT ? r->client : r->board;
}

static void
op_flush(void *owner, enum rpc_relay_side side)
{
	struct conn *c = side_conn(owner, side);

	if (c != NULL)
		conn_flush(c);
}

static void
op_pause(void *owner, enum rpc_relay_side side)
{
	struct conn *c = side_conn(owner, side);

	if (c != NULL)
		conn_pause_read(c);
}

static void
op_resume(void *owner, enum rpc_relay_side side)
{
	struct conn *c = side_conn(owner, side);

	if (c != NULL && c->state != CONN_CLOSING)
		conn_resume_read(c);
}

static void
op_server_end(void *owner, const struct rpc_relay_end *end)
{
	struct relay *r = owner;
	struct conn *board = r->board;
	struct ledger_session sess = {
	    .start_us = end->start_us,
	    .end_us = end->end_us,
	    .requests = end->requests,
	    .exceptions = end->exceptions,
	    .bytes_to_board = end->bytes_to_server,
	    .bytes_to_client = end->bytes_to_client,
	    .outcome = npufarm_outcome_name(end->outcome),
	    .detail = end->detail,
	};

	if (board == NULL)
		return;
	r->board = NULL;
	board->relay = NULL;
	if (r->agent)
		tracker_agent_session_end(
		    r->srv, r->board_id, r->lease_id, &sess);
	else
		tracker_proxy_session_end(board, &sess);
	conn_close(board, "session ended: %s", sess.outcome);
}

static void
op_client_shut(void *owner)
{
	struct relay *r = owner;

	if (r->client != NULL)
		(void)shutdown(bufferevent_getfd(r->client->bev), SHUT_WR);
}

static void
op_client_close(void *owner, const char *why)
{
	struct relay *r = owner;

	if (r->client != NULL)
		conn_close(r->client, "%s", why);
}

static const struct rpc_relay_ops relay_ops = {
    .flush = op_flush,
    .pause = op_pause,
    .resume = op_resume,
    .server_end = op_server_end,
    .client_shut = op_client_shut,
    .client_close = op_client_close,
};

static void
relay_free(struct relay *r)
{
	uint64_t to_board, to_client;

	rpc_relay_bytes(r->rr, &to_board, &to_client);
	metrics_relay_bytes(r->srv->metrics, to_board, to_client);
	rpc_relay_free(r->rr);
	r->srv->nrelays--;
	free(r);
}

/*
 * Answer RPC data connection @c with MISMATCH and close it: no board
 * matches what it asked for (@why goes to the log).
 */
void
relay_refuse(struct conn *c, const char *why)
{
	if (tvm_rpc_add_code(bufferevent_get_output(c->bev),
		NPUFARM_TVM_RPC_CODE_MISMATCH) < 0)
		log_conn(c, LOG_ERR, "out of memory queueing MISMATCH");
	conn_close(c, "RPC handshake refused: %s", why);
}

/*
 * Pair @client with @board and start relaying: each side gets SUCCESS and
 * the other's full key (spec §4.2; the board learns -timeout=T from the
 * client's key), and the deadline starts now.  The board's lease is
 * @lease_id; @agent: the board is npufarm agent @board_id's, which
 * enforces the deadline itself (the broker's fires --agent-backstop
 * seconds later).  Both
 * connections belong to the relay from here on.
 */
void
relay_start(struct conn *client, struct conn *board, const char *board_key,
    int64_t lease_id, bool agent, int64_t board_id)
{
	struct server *srv = client->srv;
	struct rpc_relay_config rc = {
	    .max_packet = (uint64_t)srv->cfg->relay_max_packet,
	    .buffer = (size_t)srv->cfg->relay_buffer,
	    .timeout = client->rpc_timeout,
	    .deadline = client->rpc_timeout,
	    .linger = RELAY_LINGER_S,
	    .who = "board",
	};
	struct relay *r;

	if (agent && rc.deadline > 0)
		rc.deadline += srv->cfg->agent_backstop;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		goto oom;
	r->srv = srv;
	r->client = client;
	r->board = board;
	r->agent = agent;
	r->lease_id = lease_id;
	r->board_id = board_id;
	if (rpc_relay_new(srv->base, &rc, &relay_ops, r,
		bufferevent_get_input(client->bev),
		bufferevent_get_output(client->bev),
		bufferevent_get_input(board->bev),
		bufferevent_get_output(board->bev), &r->rr) < 0) {
		free(r);
		goto oom;
	}
	srv->nrelays++;
	client->relay = r;
	board->relay = r;
	if (tvm_rpc_add_success(bufferevent_get_output(board->bev),
		client->rpc_key, strlen(client->rpc_key)) < 0 ||
	    tvm_rpc_add_success(bufferevent_get_output(client->bev), board_key,
		strlen(board_key)) < 0)
		goto oom_paired;
	/* No read watermark: the relay does its own backpressure, and a
	 * watermark's input callback would fight conn_fast_read(). */
	bufferevent_setwatermark(client->bev, EV_READ, 0, 0);
	bufferevent_setwatermark(board->bev, EV_READ, 0, 0);
	if (conn_fast_read(board) < 0 || conn_fast_read(client) < 0)
		goto oom_paired;
	/* When a socket fills up, the bufferevent finishes the write: let it
	 * write more than libevent 2.1's default of 16 KiB per call. */
	(void)bufferevent_set_max_single_write(board->bev, RELAY_WRITE_MAX);
	(void)bufferevent_set_max_single_write(client->bev, RELAY_WRITE_MAX);
	log_info("relay: %s paired with %s %s (lease %lld, timeout %g s)",
	    client->peer, agent ? "agent" : "board", board->peer,
	    (long long)lease_id, rc.timeout);
	conn_flush(board);
	conn_flush(client);
	return;
oom_paired:
	rpc_relay_server_gone(
	    r->rr, NPUFARM_OUTCOME_LOST, "npufarm: out of memory at pair-up");
	op_server_end(r, &(struct rpc_relay_end){
			     .outcome = NPUFARM_OUTCOME_LOST,
			     .detail = "out of memory at pair-up",
			     .start_us = ledger_now_us(),
			     .end_us = ledger_now_us(),
			 });
	conn_close(client, "out of memory at pair-up");
	return;
oom:
	relay_refuse(client, "out of memory pairing");
	conn_close(board, "out of memory pairing");
}

/* Bytes arrived on relayed connection @c. */
void
relay_read(struct conn *c)
{
	struct relay *r = c->relay;

	rpc_relay_read(
	    r->rr, c == r->client ? RPC_RELAY_CLIENT : RPC_RELAY_SERVER);
}

/*
 * @c's output drained: resume reading its peer if backpressure had
 * stopped it.
 */
void
relay_drained(struct conn *c)
{
	struct relay *r = c->relay;

	rpc_relay_drained(
	    r->rr, c == r->client ? RPC_RELAY_CLIENT : RPC_RELAY_SERVER);
}

/*
 * An agent's data connection ended mid-session.  The agent closes it after
 * the session's last word (its own timeout or crash exception, sent as a
 * reply), so a connection that ends while a reply is owed means the agent
 * itself is gone: lost, answered by the broker.  The agent's report, if one
 * comes, is authoritative anyway.
 */
static void
agent_eof(struct relay *r, const char *how)
{
	struct rpc_relay *rr = r->rr;
	char msg[RPC_RELAY_MSG_MAX + 256];

	rpc_relay_read(rr, RPC_RELAY_SERVER); /* whole packets first */
	if (!rpc_relay_live(rr))
		return;
	if (rpc_relay_client_shut_down(rr) || rpc_relay_server_timed_out(rr)) {
		rpc_relay_server_eof(rr, how);
		return;
	}
	if (!rpc_relay_owed(rr) && rpc_relay_first_exception(rr)[0] != '\0') {
		/* The agent's last word stands for every later request. */
		rpc_relay_server_failed(rr, NPUFARM_OUTCOME_EXCEPTION,
		    rpc_relay_first_exception(rr));
		return;
	}
	(void)snprintf(msg, sizeof(msg),
	    "npufarm: the board's agent vanished mid-session (its data "
	    "connection closed: %s) %s",
	    how,
	    rpc_relay_owed(rr) ? "while a reply was owed" : "between calls");
	rpc_relay_server_failed(rr, NPUFARM_OUTCOME_LOST, msg);
}

/*
 * EOF, error or timeout on relayed connection @c: classify what it means
 * for the session, then free @c (the caller returns at once).
 */
void
relay_event(struct conn *c, short what)
{
	struct relay *r = c->relay;
	char how[160];

	if (c == r->board) {
		(void)snprintf(how, sizeof(how), "its connection closed (%s)%s",
		    (what & BEV_EVENT_ERROR) ? strerror(EVUTIL_SOCKET_ERROR())
					     : "end of stream",
		    evbuffer_get_length(bufferevent_get_input(c->bev))
			? ", in the middle of a packet"
			: "");
		if (r->agent)
			agent_eof(r, how);
		else
			rpc_relay_server_eof(r->rr, how);
	} else {
		rpc_relay_client_eof(r->rr,
		    (what & BEV_EVENT_ERROR) ? strerror(EVUTIL_SOCKET_ERROR())
					     : "end of stream");
	}
	conn_free(c);
}

/* @c is being freed: forget it, and free the relay with its last side. */
void
relay_conn_gone(struct conn *c)
{
	struct relay *r = c->relay;

	if (r == NULL)
		return;
	c->relay = NULL;
	if (c == r->client) {
		r->client = NULL;
		rpc_relay_client_gone(r->rr);
	}
	if (c == r->board) {
		r->board = NULL;
		rpc_relay_server_gone(r->rr, NPUFARM_OUTCOME_LOST,
		    "npufarm: the board's connection was closed by the broker");
	}
	if (r->client == NULL && r->board == NULL)
		relay_free(r);
}
