/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Relay of one TVM RPC session between a client and a board.
 *
 * Client to board, bytes are forwarded as they arrive and a scanner keeps
 * track of packet boundaries, so the relay knows when a request is complete
 * and a reply is owed.  Board to client, only whole packets are forwarded
 * (store and forward, moving evbuffer chains), so the client's stream is
 * always at a packet boundary and the relay can answer it at any moment.
 *
 * A session ends for the board in one of four ways, each an outcome class:
 * the client shuts it down (ok, or exception if the board reported one),
 * the deadline passes (timeout: the board is closed and the client gets one
 * RPCSessionTimeoutError kException, byte-identical to TVM's), the board
 * vanishes (crash: the client gets a kException saying so, never a bare
 * EOF), or the client vanishes (lost).  After that the client side lives
 * on until it shuts down: every further request is answered with the same
 * exception (spec §6.5 items 7-9), so a tuner's cleanup calls fail with the
 * real reason too.
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
#include "server.h"
#include "tracker.h"
#include "tvm_rpc.h"

/* Longest board exception message kept for the ledger (spec: 4 KiB). */
#define RELAY_MSG_MAX 4096

enum relay_state {
	RELAY_LIVE,  /* both sides up, bytes flow */
	RELAY_ENDED, /* board side over; the client is answered by us */
};

struct relay {
	struct server *srv;  /* borrowed */
	struct conn *client; /* borrowed; NULL once freed */
	struct conn *board;  /* borrowed; NULL once handed back */
	enum relay_state state;
	struct tvm_rpc_scan c2b;   /* client-to-board packet boundaries */
	bool owed;                 /* the client waits for a reply */
	bool client_shutdown;      /* the client sent kShutdown */
	bool board_timeout;        /* the board sent its own timeout exc. */
	unsigned presents;         /* exceptions the client got unasked */
	double timeout;            /* s; 0: no deadline */
	struct event *deadline_ev; /* at timeout */
	struct event *grace_ev;    /* closes a client that lingers */
	bool grace_shut;           /* SHUT_WR sent, waiting for EOF */
	char *exc;                 /* ENDED: the answer to later requests */
	uint64_t requests, exceptions, bytes_c2b, bytes_b2c;
	int64_t start_us;
	int64_t lease_id;
	char first_exc[RELAY_MSG_MAX]; /* the board's first exception */
};

static void board_in(struct relay *r);

static void
relay_free(struct relay *r)
{
	if (r->deadline_ev != NULL)
		event_free(r->deadline_ev);
	if (r->grace_ev != NULL)
		event_free(r->grace_ev);
	free(r->exc);
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

static struct evbuffer *
out_of(struct conn *c)
{
	return bufferevent_get_output(c->bev);
}

/*
 * Send the client a kException.  @answer: it answers a request of an ended
 * session (spec §6.5 item 8); otherwise it is the session's own reply,
 * answering the owed request or, if none is owed, the client's next one.
 */
static void
send_exception(struct relay *r, const char *msg, bool answer)
{
	size_t before = evbuffer_get_length(out_of(r->client));

	if (tvm_rpc_add_exception(out_of(r->client), msg) < 0) {
		conn_close(r->client, "out of memory queueing an exception");
		return;
	}
	r->exceptions++;
	r->bytes_b2c += evbuffer_get_length(out_of(r->client)) - before;
	if (!answer) {
		if (r->owed)
			r->owed = false;
		else
			r->presents++;
	}
	conn_flush(r->client);
}

/*
 * The board side is over with @outcome: record the session, hand the board
 * back (its connection is closed; a TVM server or agent dials in again),
 * and from now on answer the client with @exc (NULL: the client is done).
 */
static void
end_board(
    struct relay *r, const char *outcome, const char *detail, const char *exc)
{
	struct ledger_session sess = {
	    .start_us = r->start_us,
	    .end_us = ledger_now_us(),
	    .requests = r->requests,
	    .exceptions = r->exceptions,
	    .bytes_to_board = r->bytes_c2b,
	    .bytes_to_client = r->bytes_b2c,
	    .outcome = outcome,
	    .detail = detail,
	};
	struct conn *board = r->board;
	static const struct timeval grace_tv = {10, 0};

	r->state = RELAY_ENDED;
	if (r->deadline_ev != NULL)
		event_del(r->deadline_ev);
	if (exc != NULL && r->exc == NULL)
		r->exc = strdup(exc);
	if (board != NULL) {
		r->board = NULL;
		board->relay = NULL;
		tracker_proxy_session_end(board, &sess);
		conn_close(board, "session ended: %s", outcome);
	}
	if (r->client != NULL) {
		conn_resume_read(r->client);
		if (r->grace_ev != NULL)
			(void)event_add(r->grace_ev, &grace_tv);
	}
}

/* The outcome of a session the client ended cleanly. */
static void
end_clean(struct relay *r, const char *how)
{
	char detail[RELAY_MSG_MAX + 64];

	if (r->board_timeout)
		end_board(r, "timeout", r->first_exc, NULL);
	else if (r->first_exc[0] != '\0')
		end_board(r, "exception", r->first_exc, NULL);
	else {
		(void)snprintf(detail, sizeof(detail), "%s after %llu requests",
		    how, (unsigned long long)r->requests);
		end_board(r, "ok", detail, NULL);
	}
}

static void
client_packet(int32_t code, uint64_t total, void *arg)
{
	struct relay *r = arg;

	if (code == TVM_RPC_SHUTDOWN) {
		r->client_shutdown = true;
		if (r->state == RELAY_ENDED && r->client != NULL)
			conn_close(r->client, "client shut the session down");
		return;
	}
	if (!tvm_rpc_code_is_request(code))
		return;
	if (r->state == RELAY_LIVE) {
		/* A reply that came unasked is what the client will read as
		 * the answer to this request (TVM clients read one packet per
		 * request); otherwise the board owes one. */
		if (r->presents > 0)
			r->presents--;
		else
			r->owed = true;
		r->requests++;
		return;
	}
	/* After the end: one exception per request (spec §6.5 item 8). */
	if (r->presents > 0)
		r->presents--;
	else if (r->exc != NULL && r->client != NULL)
		send_exception(r, r->exc, true);
}

static void
client_in(struct relay *r)
{
	struct evbuffer *in = bufferevent_get_input(r->client->bev);
	size_t n = evbuffer_get_length(in);
	struct npufarm_err err;
	char detail[NPUFARM_ERR_MSG_MAX + 64];

	if (n == 0)
		return;
	if (tvm_rpc_scan_feed_buffer(&r->c2b, in, n, client_packet, r, &err) <
	    0) {
		(void)snprintf(detail, sizeof(detail),
		    "client sent a malformed packet: %s", err.msg);
		if (r->state == RELAY_LIVE)
			end_board(r, "rejected", detail, NULL);
		if (r->client != NULL)
			conn_close(r->client, "%s", detail);
		return;
	}
	if (r->state != RELAY_LIVE || r->client == NULL ||
	    r->client->state == CONN_CLOSING) {
		(void)evbuffer_drain(in, n); /* keep draining (§6.5 item 7) */
		return;
	}
	r->bytes_c2b += n;
	(void)evbuffer_remove_buffer(in, out_of(r->board), n);
	conn_flush(r->board);
	if (r->client_shutdown) {
		/* The board gets the kShutdown (conn_close() flushes it), the
		 * client is done: close both (spec §6.5 item 9). */
		end_clean(r, "client shut down");
		conn_close(r->client, "client shut the session down");
		return;
	}
	/* Backpressure: stop reading a client the board does not keep up
	 * with; relay_drained() resumes it. */
	if (evbuffer_get_length(out_of(r->board)) >
	    (size_t)r->srv->cfg->relay_buffer)
		conn_pause_read(r->client);
}

static void
board_failed(struct relay *r, const char *what)
{
	char msg[RELAY_MSG_MAX + 256];
	bool owed = r->owed;

	(void)snprintf(msg, sizeof(msg),
	    "npufarm: the board ended the session abnormally: %s%s", what,
	    owed ? " while a reply was owed" : " between calls");
	if (owed)
		send_exception(r, msg, false);
	end_board(r, "crash", msg + strlen("npufarm: "), msg);
}

/* Forward every whole packet the board has sent. */
static void
board_in(struct relay *r)
{
	struct evbuffer *in;
	char what[RELAY_MSG_MAX];
	uint64_t total;
	int32_t code;
	int res;

	if (r->board == NULL || r->client == NULL)
		return;
	in = bufferevent_get_input(r->board->bev);
	for (;;) {
		res = tvm_rpc_packet_peek(
		    in, (uint64_t)r->srv->cfg->relay_max_packet, &total, &code);
		if (res == 0)
			break;
		if (res < 0) {
			(void)snprintf(what, sizeof(what),
			    "it sent a malformed packet (%s)",
			    res == -EMSGSIZE ? "length over relay_max_packet"
					     : "length shorter than a header");
			board_failed(r, what);
			return;
		}
		if (code == TVM_RPC_EXCEPTION) {
			r->exceptions++;
			if (r->first_exc[0] == '\0' &&
			    tvm_rpc_exception_peek(
				in, r->first_exc, sizeof(r->first_exc)) < 0)
				(void)snprintf(r->first_exc,
				    sizeof(r->first_exc), "(unreadable)");
			if (strncmp(r->first_exc, TVM_RPC_TIMEOUT_PREFIX,
				strlen(TVM_RPC_TIMEOUT_PREFIX)) == 0)
				r->board_timeout = true;
		}
		if (tvm_rpc_code_is_reply(code)) {
			if (!r->owed)
				r->presents++;
			r->owed = false;
		}
		r->bytes_b2c += total;
		(void)evbuffer_remove_buffer(
		    in, out_of(r->client), (size_t)total);
		if (evbuffer_get_length(out_of(r->client)) >
		    (size_t)r->srv->cfg->relay_buffer) {
			/* Write now; carry on only if the socket took it (no
			 * read event may come for packets already here). */
			conn_flush(r->client);
			if (evbuffer_get_length(out_of(r->client)) >
			    (size_t)r->srv->cfg->relay_buffer)
				break;
		}
	}
	conn_flush(r->client);
	/* Backpressure: what the client's socket did not take stays queued
	 * (and conn_flush() left EV_WRITE on); past the limit, stop reading
	 * the board until relay_drained(). */
	if (evbuffer_get_length(out_of(r->client)) >
	    (size_t)r->srv->cfg->relay_buffer)
		conn_pause_read(r->board);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	char msg[256], detail[512];
	bool owed;

	if (r->state != RELAY_LIVE)
		return;
	/* Whole packets that arrived before the deadline still go out; a
	 * partial one is dropped with the board. */
	board_in(r);
	if (r->state != RELAY_LIVE)
		return;
	owed = r->owed;
	(void)tvm_rpc_timeout_message(r->timeout, msg, sizeof(msg));
	if (r->board_timeout) {
		end_board(r, "timeout", r->first_exc, r->first_exc);
		return;
	}
	send_exception(r, msg, false);
	(void)snprintf(detail, sizeof(detail),
	    "session deadline of %g s passed %s; the broker ended it and "
	    "reclaimed the board",
	    r->timeout, owed ? "while a reply was owed" : "between calls");
	end_board(r, "timeout", detail, msg);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	static const struct timeval grace_tv = {10, 0};

	if (r->client == NULL)
		return;
	if (!r->grace_shut) {
		/* Tell a lingering client we are done, and wait for its EOF. */
		r->grace_shut = true;
		(void)shutdown(bufferevent_getfd(r->client->bev), SHUT_WR);
		(void)event_add(r->grace_ev, &grace_tv);
		return;
	}
	conn_close(r->client, "client did not close its ended session");
}

/*
 * Pair @client with @board and start relaying: each side gets SUCCESS and
 * the other's full key (spec §4.2; the board learns -timeout=T from the
 * client's key), and the deadline starts now.  The board's lease is
 * @lease_id.  Both connections belong to the relay from here on.
 */
void
relay_start(struct conn *client, struct conn *board, const char *board_key,
    int64_t lease_id)
{
	struct server *srv = client->srv;
	struct relay *r;
	struct timeval tv;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		goto oom;
	r->srv = srv;
	r->client = client;
	r->board = board;
	r->lease_id = lease_id;
	r->start_us = ledger_now_us();
	r->timeout = client->rpc_timeout;
	srv->nrelays++;
	tvm_rpc_scan_init(&r->c2b, (uint64_t)srv->cfg->relay_max_packet);
	r->grace_ev = evtimer_new(srv->base, grace_cb, r);
	if (r->grace_ev == NULL)
		goto oom_r;
	if (r->timeout > 0) {
		r->deadline_ev = evtimer_new(srv->base, deadline_cb, r);
		tv.tv_sec = (time_t)r->timeout;
		tv.tv_usec =
		    (suseconds_t)((r->timeout - (double)tv.tv_sec) * 1e6);
		if (r->deadline_ev == NULL ||
		    evtimer_add(r->deadline_ev, &tv) < 0)
			goto oom_r;
	}
	client->relay = r;
	board->relay = r;
	if (tvm_rpc_add_success(
		out_of(board), client->rpc_key, strlen(client->rpc_key)) < 0 ||
	    tvm_rpc_add_success(out_of(client), board_key, strlen(board_key)) <
		0) {
		end_board(r, "lost", "out of memory at pair-up", NULL);
		conn_close(client, "out of memory at pair-up");
		return;
	}
	/* No read watermark: the relay does its own backpressure, and a
	 * watermark's input callback would fight conn_fast_read(). */
	bufferevent_setwatermark(client->bev, EV_READ, 0, 0);
	bufferevent_setwatermark(board->bev, EV_READ, 0, 0);
	if (conn_fast_read(board) < 0 || conn_fast_read(client) < 0) {
		end_board(r, "lost", "out of memory at pair-up", NULL);
		conn_close(client, "out of memory at pair-up");
		return;
	}
	log_info("relay: %s paired with board %s (lease %lld, timeout %g s)",
	    client->peer, board->peer, (long long)lease_id, r->timeout);
	conn_flush(board);
	conn_flush(client);
	return;
oom_r:
	relay_free(r);
oom:
	relay_refuse(client, "out of memory pairing");
	conn_close(board, "out of memory pairing");
}

/* Bytes arrived on relayed connection @c. */
void
relay_read(struct conn *c)
{
	struct relay *r = c->relay;

	if (c == r->client)
		client_in(r);
	else
		board_in(r);
}

/*
 * @c's output drained: resume reading its peer if backpressure had
 * stopped it.
 */
void
relay_drained(struct conn *c)
{
	struct relay *r = c->relay;

	if (c == r->client && r->board != NULL) {
		conn_resume_read(r->board);
		board_in(r);
	} else if (c == r->board && r->client != NULL) {
		conn_resume_read(r->client);
		client_in(r);
	}
}

/*
 * EOF, error or timeout on relayed connection @c: classify what it means
 * for the session, then free @c (the caller returns at once).
 */
void
relay_event(struct conn *c, short what)
{
	struct relay *r = c->relay;
	char detail[256];
	const char *how = (what & BEV_EVENT_ERROR)
			      ? strerror(EVUTIL_SOCKET_ERROR())
			      : "end of stream";

	if (c == r->board && r->state == RELAY_LIVE) {
		board_in(r); /* whole packets first */
		if (r->state == RELAY_LIVE) {
			if (r->client_shutdown)
				end_clean(r, "client shut down");
			else if (r->board_timeout)
				end_board(
				    r, "timeout", r->first_exc, r->first_exc);
			else {
				(void)snprintf(detail, sizeof(detail),
				    "its connection closed (%s)%s", how,
				    evbuffer_get_length(
					bufferevent_get_input(c->bev))
					? ", in the middle of a packet"
					: "");
				board_failed(r, detail);
			}
		}
	} else if (c == r->client && r->state == RELAY_LIVE) {
		client_in(r);
		if (r->state == RELAY_LIVE) {
			if (r->client_shutdown)
				end_clean(r, "client shut down");
			else {
				(void)snprintf(detail, sizeof(detail),
				    "client vanished mid-session (%s) %s", how,
				    r->owed ? "while a reply was owed"
					    : "between calls");
				end_board(r, "lost", detail, NULL);
			}
		}
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
	if (c == r->client)
		r->client = NULL;
	if (c == r->board)
		r->board = NULL;
	if (r->client == NULL && r->board == NULL)
		relay_free(r);
}
