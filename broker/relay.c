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
 *
 * A TVM server registered by PUT is relayed too with --relay-boards all:
 * the client that the tracker sent to the broker is held while the broker
 * dials the board and does the handshake a TVM client would (the board's
 * own matchkey; a -timeout the board enforces a second after ours), then
 * the session is relayed as any other.
 *
 * A board that is not an agent may enforce the same deadline itself: a
 * TVM server writes its own kException at T with a blocking write and, if
 * that write fails, gives up serving for good.  So at our deadline the
 * client gets its exception at once, but the board's connection lingers,
 * read and discarded, until the board closes it or --board-grace passes.
 */
#include "config.h"

#include "relay.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include <npufarm/protocol.h>

#include "broker_config.h"
#include "clock.h"
#include "conn.h"
#include "err.h"
#include "frame.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "rpc_relay.h"
#include "tvm_rpc.h"

/* Bytes one deferred write may take (see relay_start()). */
#define RELAY_WRITE_MAX (1024 * 1024)
/* How long an ended session's client may linger (twice: §6.5 item 9). */
#define RELAY_LINGER_S  10.0

/* Longest RPC hello key a dialled board may answer with. */
#define RELAY_KEY_MAX 1024

enum relay_board {
	RELAY_PROXY,  /* a TVM server that dialled in (server:KEY) */
	RELAY_AGENT,  /* an npufarm agent's data connection */
	RELAY_DIALED, /* a TVM server registered by PUT; we dialled it */
};

/* The broker's relays (relays_new()). */
struct relays {
	struct event_base *base;         /* borrowed */
	const struct broker_config *cfg; /* borrowed */
	struct metrics *metrics;         /* borrowed */
	size_t n;                        /* relayed sessions */
};

/* Who had a connection before the relay took it over. */
struct relay_prev {
	const struct conn_ops *ops; /* NULL: nobody (a board we dialled) */
	void *owner;
};

struct relay {
	struct relays *rs;   /* borrowed */
	struct conn *client; /* borrowed; NULL once freed */
	struct conn *board;  /* borrowed; NULL once handed back */
	struct relay_prev client_prev, board_prev;
	struct rpc_relay *rr; /* the session; NULL while dialling */
	enum relay_board kind;
	bool lingering;        /* session over; board bytes are discarded */
	bool failed;           /* dialling failed, and was recorded */
	struct event *timer;   /* the dial's deadline, then the board's grace */
	char *hello;           /* RELAY_DIALED: the key we present, owned */
	char *client_key;      /* the client's hello key, owned; NULL: none */
	double client_timeout; /* s, the client's -timeout=T; 0: none */
	const struct relay_end *end; /* how the board side reports */
	void *end_arg;               /* ... and its argument, borrowed */
	int64_t lease_id;
	int64_t board_id;
};

static void relay_read(struct conn *c);
static void relay_drained(struct conn *c);
static void relay_event(struct conn *c, short what);
static void relay_conn_gone(struct conn *c);

/*
 * What the connection had before: its protocol state (a board's tracker
 * registration, say) is still torn down by its own ops.
 */
static void
relay_closing(struct conn *c)
{
	struct relay *r = c->owner;
	const struct relay_prev *p =
	    c == r->board ? &r->board_prev : &r->client_prev;

	if (p->ops != NULL && p->ops->closing != NULL)
		p->ops->closing(c);
}

static void
relay_closed(struct conn *c)
{
	struct relay *r = c->owner;
	/* The board is told by r->board, which stays set until it is
	 * given back; the client's may be cleared before it is freed. */
	struct relay_prev p = c == r->board ? r->board_prev : r->client_prev;

	relay_conn_gone(c); /* may free r */
	conn_set_ops(c, p.ops, p.owner);
	if (c->ops->closed != NULL)
		c->ops->closed(c);
}

/* A connection relayed (or being dialled) by the struct relay c->owner. */
static const struct conn_ops relay_conn_ops = {
    .read = relay_read,
    .drained = relay_drained,
    .event = relay_event,
    .closing = relay_closing,
    .closed = relay_closed,
    .hello = "no complete RPC hello",
};

/* Relay @r takes @c over, remembering its previous owner in @prev. */
static void
relay_take(struct relay *r, struct conn *c, struct relay_prev *prev)
{
	prev->ops = c->ops;
	prev->owner = c->owner;
	conn_set_ops(c, &relay_conn_ops, r);
}

/* Hand @c back to the owner it had before relay @r took it. */
static void
relay_give_back(struct relay *r, struct conn *c)
{
	const struct relay_prev *p =
	    c == r->board ? &r->board_prev : &r->client_prev;

	conn_set_ops(c, p->ops, p->owner);
}

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

/*
 * The session with TVM board @r->board is over at our deadline: keep its
 * connection open, reading and discarding, until the board closes it or
 * --board-grace passes (a server that times the session out itself writes
 * its own exception then; it must not fail).  False: close it now.
 */
static bool
board_linger(struct relay *r)
{
	struct conn *board = r->board;
	struct timeval tv = clock_tv(r->rs->cfg->board_grace);

	if (r->kind == RELAY_AGENT || r->rs->cfg->board_grace <= 0 ||
	    board->state == CONN_CLOSING || r->timer == NULL)
		return false;
	(void)evbuffer_drain(bufferevent_get_input(board->bev),
	    evbuffer_get_length(bufferevent_get_input(board->bev)));
	if (evtimer_add(r->timer, &tv) < 0)
		return false;
	r->lingering = true;
	conn_resume_read(board);
	log_info("relay: board %s timed out; it may close within %g s "
		 "(board_grace)",
	    board->peer, r->rs->cfg->board_grace);
	return true;
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
	log_info("relay: session with %s ended %s (RPC dialect %s)",
	    board->peer, sess.outcome, tvm_rpc_dialect_name(end->dialect));
	r->end->session_end(r->end_arg, board, r->board_id, r->lease_id, &sess);
	if (end->outcome == NPUFARM_OUTCOME_TIMEOUT && board_linger(r))
		return;
	relay_give_back(r, board);
	r->board = NULL;
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

static int
op_fd(void *owner, enum rpc_relay_side side)
{
	struct conn *c = side_conn(owner, side);

	return c != NULL ? bufferevent_getfd(c->bev) : -1;
}

static const struct rpc_relay_ops relay_ops = {
    .flush = op_flush,
    .pause = op_pause,
    .resume = op_resume,
    .server_end = op_server_end,
    .client_shut = op_client_shut,
    .client_close = op_client_close,
    .fd = op_fd,
};

static void
relay_free(struct relay *r)
{
	uint64_t to_board, to_client;

	if (r->rr != NULL) {
		rpc_relay_bytes(r->rr, &to_board, &to_client);
		metrics_relay_bytes(r->rs->metrics, to_board, to_client);
		rpc_relay_free(r->rr);
	}
	if (r->timer != NULL)
		event_free(r->timer);
	free(r->hello);
	free(r->client_key);
	r->rs->n--;
	free(r);
}

static void relay_timer_cb(evutil_socket_t fd, short what, void *arg);

/*
 * A relay between @client, whose hello was @hello, and @board (NULL:
 * dialled later); NULL on OOM.
 */
static struct relay *
relay_new(struct relays *rs, struct conn *client,
    const struct relay_hello *hello, struct conn *board, enum relay_board kind,
    int64_t lease_id, int64_t board_id, const struct relay_end *end, void *arg)
{
	struct relay *r;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->timer = evtimer_new(rs->base, relay_timer_cb, r);
	if (r->timer == NULL ||
	    (hello->key != NULL &&
		(r->client_key = strdup(hello->key)) == NULL)) {
		if (r->timer != NULL)
			event_free(r->timer);
		free(r);
		return NULL;
	}
	r->client_timeout = hello->timeout;
	r->rs = rs;
	r->client = client;
	r->board = board;
	r->kind = kind;
	r->lease_id = lease_id;
	r->board_id = board_id;
	r->end = end;
	r->end_arg = arg;
	rs->n++;
	return r;
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
 * Start the session of relay @r, whose two sides are connected and
 * handshaken but for the pair-up messages: each side gets SUCCESS and the
 * other's full key (spec §4.2; the board learns -timeout=T from the
 * client's key; a board we dialled already had its handshake, @board_key
 * is what it answered), and the deadline starts now.  Returns 0, or
 * -ENOMEM after ending the session as lost.
 */
static int
relay_pair(struct relay *r, const char *board_key)
{
	struct relays *rs = r->rs;
	struct conn *client = r->client, *board = r->board;
	struct rpc_relay_config rc = {
	    .max_packet = (uint64_t)rs->cfg->relay_max_packet,
	    .buffer = (size_t)rs->cfg->relay_buffer,
	    .timeout = r->client_timeout,
	    .deadline = r->client_timeout,
	    .linger = RELAY_LINGER_S,
	    .who = "board",
	};

	if (r->kind == RELAY_AGENT && rc.deadline > 0)
		rc.deadline += rs->cfg->agent_backstop;
	if (rpc_relay_new(rs->base, &rc, &relay_ops, r,
		bufferevent_get_input(client->bev),
		bufferevent_get_output(client->bev),
		bufferevent_get_input(board->bev),
		bufferevent_get_output(board->bev), &r->rr) < 0)
		return -ENOMEM;
	if ((r->kind != RELAY_DIALED &&
		tvm_rpc_add_success(bufferevent_get_output(board->bev),
		    r->client_key != NULL ? r->client_key : "",
		    r->client_key != NULL ? strlen(r->client_key) : 0) < 0) ||
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
	    client->peer,
	    r->kind == RELAY_AGENT    ? "agent"
	    : r->kind == RELAY_DIALED ? "registered board"
				      : "board",
	    board->peer, (long long)r->lease_id, rc.timeout);
	conn_flush(board);
	conn_flush(client);
	return 0;
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
	return -ENOMEM;
}

/*
 * Pair @client (whose hello was @hello: its key goes on to the board, its
 * -timeout is the session's deadline) with @board and start relaying (see
 * relay_pair()).  The board's lease is @lease_id; @agent: the board is
 * npufarm agent @board_id's, which enforces the deadline itself (the
 * broker's fires --agent-backstop seconds later).  Both connections belong
 * to the relay from here on.
 */
void
relay_start(struct relays *rs, struct conn *client,
    const struct relay_hello *hello, struct conn *board, const char *board_key,
    int64_t lease_id, bool agent, int64_t board_id, const struct relay_end *end,
    void *arg)
{
	struct relay *r;

	r = relay_new(rs, client, hello, board,
	    agent ? RELAY_AGENT : RELAY_PROXY, lease_id, board_id, end, arg);
	if (r == NULL) {
		relay_refuse(client, "out of memory pairing");
		conn_close(board, "out of memory pairing");
		return;
	}
	relay_take(r, client, &r->client_prev);
	relay_take(r, board, &r->board_prev);
	(void)relay_pair(r, board_key);
}

/* ---- boards the broker dials (--relay-boards all) -------------------- */

/*
 * Dialling @r's board failed (@why): the lease is lost, the board's event
 * log says why if it was the board's doing (@board_fault; not when the
 * client left or the broker ran out of memory), and the client gets MISMATCH,
 * on which a TVM tuner asks the tracker again (TrackerSession.request retries).
 * The board connection is the caller's to close.
 */
static void
dial_failed(struct relay *r, const char *why, bool board_fault)
{
	char detail[512];

	if (r->failed)
		return;
	r->failed = true;
	(void)evtimer_del(r->timer);
	(void)snprintf(detail, sizeof(detail),
	    "the broker could not relay a session with board %s: %s",
	    r->board != NULL ? r->board->peer : "?", why);
	r->end->dial_failed(
	    r->end_arg, r->board_id, r->lease_id, detail, board_fault);
	if (r->client != NULL && r->client->state != CONN_CLOSING)
		relay_refuse(r->client, detail);
}

/* The board answered our hello: SUCCESS and its key, or a refusal. */
static void
dial_reply(struct relay *r)
{
	struct evbuffer *in = bufferevent_get_input(r->board->bev);
	struct npufarm_err err;
	unsigned char code[4];
	char key[RELAY_KEY_MAX];
	int res;

	if (evbuffer_copyout(in, code, sizeof(code)) < (ev_ssize_t)4)
		return;
	switch ((int32_t)frame_get_le32(code)) {
	case NPUFARM_TVM_RPC_CODE_MISMATCH:
		dial_failed(r,
		    "it answered MISMATCH (it no longer holds the matchkey it "
		    "registered)",
		    true);
		conn_close(r->board, "board refused the session");
		return;
	case NPUFARM_TVM_RPC_CODE_DUPLICATE:
		dial_failed(r, "it answered DUPLICATE", true);
		conn_close(r->board, "board refused the session");
		return;
	case NPUFARM_TVM_RPC_MAGIC:
		break;
	default:
		dial_failed(
		    r, "it is not a TVM RPC server (bad handshake)", true);
		conn_close(r->board, "not a TVM RPC server");
		return;
	}
	res = tvm_rpc_hello_pull(in, key, sizeof(key), &err);
	if (res == 0)
		return;
	if (res < 0) {
		dial_failed(r, err.msg, true);
		conn_close(r->board, "bad handshake reply: %s", err.msg);
		return;
	}
	(void)evtimer_del(r->timer);
	(void)relay_pair(r, key);
}

/* Connected to the board: say hello as a TVM client does. */
static void
dial_connected(struct relay *r)
{
	if (tvm_rpc_add_hello(bufferevent_get_output(r->board->bev), r->hello) <
	    0) {
		dial_failed(r, "out of memory", false);
		conn_close(r->board, "out of memory");
		return;
	}
	conn_flush(r->board);
}

static void
relay_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	char why[128];

	if (r->board == NULL)
		return;
	if (r->lingering) {
		conn_close(r->board,
		    "board did not close its timed-out session within %g s "
		    "(board_grace)",
		    r->rs->cfg->board_grace);
		return;
	}
	(void)snprintf(why, sizeof(why),
	    "no answer to the RPC handshake within %g s (handshake_timeout)",
	    r->rs->cfg->handshake_timeout);
	dial_failed(r, why, true);
	conn_close(r->board, "%s", why);
}

/*
 * Relay @client, which connected back with the matchkey of lease
 * @lease_id (its hello @hello), with TVM server @host:@port registered by
 * PUT as board @board_id under matchkey @board_match: the broker dials it
 * and presents that matchkey (and, if the client asked for a -timeout, one
 * the board enforces a second after ours, in whole seconds, which TVM's
 * C++ server insists on).  @client belongs to the relay from here on.
 */
void
relay_dial(struct relays *rs, struct conn *client,
    const struct relay_hello *hello, const char *host, long port,
    const char *board_match, int64_t lease_id, int64_t board_id,
    const struct relay_end *end, void *arg)
{
	struct evutil_addrinfo hints = {0}, *ai = NULL;
	struct timeval tv = clock_tv(rs->cfg->handshake_timeout);
	char sport[16], why[256];
	struct relay *r;
	int res;

	r = relay_new(rs, client, hello, NULL, RELAY_DIALED, lease_id, board_id,
	    end, arg);
	if (r == NULL) {
		end->dial_failed(arg, board_id, lease_id,
		    "out of memory dialling the board", false);
		relay_refuse(client, "out of memory dialling the board");
		return;
	}
	relay_take(r, client, &r->client_prev);
	if (r->client_timeout > 0)
		res = asprintf(&r->hello, "client:%s -timeout=%.0f",
		    board_match, ceil(r->client_timeout) + 1);
	else
		res = asprintf(&r->hello, "client:%s", board_match);
	if (res < 0) {
		r->hello = NULL;
		dial_failed(r, "out of memory", false);
		return;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV;
	(void)snprintf(sport, sizeof(sport), "%ld", port);
	res = evutil_getaddrinfo(host, sport, &hints, &ai);
	if (res != 0) {
		(void)snprintf(why, sizeof(why),
		    "its address '%s' is not numeric (%s); give the board a "
		    "numeric --custom-addr, or use --relay-boards proxy",
		    host, evutil_gai_strerror(res));
		dial_failed(r, why, true);
		return;
	}
	r->board = conn_dial(
	    client->set, ai->ai_addr, (int)ai->ai_addrlen, &relay_conn_ops, r);
	evutil_freeaddrinfo(ai);
	if (r->board == NULL) {
		(void)snprintf(why, sizeof(why), "cannot connect to %s:%ld: %s",
		    host, port, strerror(errno));
		dial_failed(r, why, true);
		return;
	}
	(void)evtimer_add(r->timer, &tv);
	log_info("relay: %s dialling registered board %s for lease %lld",
	    client->peer, r->board->peer, (long long)lease_id);
}

/* Bytes arrived on relayed connection @c. */
static void
relay_read(struct conn *c)
{
	struct relay *r = c->owner;
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (c == r->board && r->lingering) {
		(void)evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (r->rr == NULL) {
		/* Dialling: the board's answer; a client waits for ours. */
		if (c == r->board && !r->failed)
			dial_reply(r);
		return;
	}
	rpc_relay_read(
	    r->rr, c == r->client ? RPC_RELAY_CLIENT : RPC_RELAY_SERVER);
}

/*
 * @c's output drained: resume reading its peer if backpressure had
 * stopped it.
 */
static void
relay_drained(struct conn *c)
{
	struct relay *r = c->owner;

	if (r->rr == NULL || (c == r->board && r->lingering))
		return;
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
 * for the session, then free @c (the caller returns at once).  A board the
 * broker dials reports its connect here too: @c stays.
 */
static void
relay_event(struct conn *c, short what)
{
	struct relay *r = c->owner;
	char how[160];

	if (c == r->board && r->rr == NULL) {
		if (what & BEV_EVENT_CONNECTED) {
			dial_connected(r);
			return;
		}
		(void)snprintf(how, sizeof(how), "%s",
		    (what & BEV_EVENT_ERROR) ? strerror(EVUTIL_SOCKET_ERROR())
					     : "it closed the connection");
		dial_failed(r, how, true);
		conn_free(c);
		return;
	}
	if (c == r->board && r->lingering) {
		log_info(
		    "relay: board %s closed its timed-out session", c->peer);
		conn_free(c);
		return;
	}
	if (c == r->client && r->rr == NULL) {
		/* The client left while we dialled its board (nobody to
		 * answer); freeing it frees the relay if the board is gone. */
		r->client = NULL;
		dial_failed(r, "the client left during the handshake", false);
		if (r->board != NULL)
			conn_close(r->board, "its client left");
		conn_free(c);
		return;
	}
	if (c == r->board) {
		(void)snprintf(how, sizeof(how), "its connection closed (%s)%s",
		    (what & BEV_EVENT_ERROR) ? strerror(EVUTIL_SOCKET_ERROR())
					     : "end of stream",
		    evbuffer_get_length(bufferevent_get_input(c->bev))
			? ", in the middle of a packet"
			: "");
		if (r->kind == RELAY_AGENT)
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
static void
relay_conn_gone(struct conn *c)
{
	struct relay *r = c->owner;

	if (r == NULL)
		return;
	c->owner = NULL;
	if (c == r->client) {
		r->client = NULL;
		if (r->rr != NULL)
			rpc_relay_client_gone(r->rr);
		else
			dial_failed(
			    r, "the client's connection was closed", false);
	}
	if (c == r->board) {
		r->board = NULL;
		if (r->lingering)
			(void)evtimer_del(r->timer);
		if (r->rr != NULL)
			rpc_relay_server_gone(r->rr, NPUFARM_OUTCOME_LOST,
			    "npufarm: the board's connection was closed by the "
			    "broker");
		else
			dial_failed(
			    r, "the broker closed its connection", false);
	}
	if (r->client == NULL && r->board == NULL)
		relay_free(r);
}

/*
 * The broker's relays, on @base under @cfg, counting bytes in @metrics
 * (all borrowed).  0 or -ENOMEM.
 */
int
relays_new(struct event_base *base, const struct broker_config *cfg,
    struct metrics *metrics, struct relays **ret_relays)
{
	struct relays *rs = calloc(1, sizeof(*rs));

	if (rs == NULL)
		return -ENOMEM;
	rs->base = base;
	rs->cfg = cfg;
	rs->metrics = metrics;
	*ret_relays = rs;
	return 0;
}

/* Free @rs, whose relays are gone.  Accepts NULL; returns NULL. */
struct relays *
relays_free(struct relays *rs)
{
	free(rs);
	return NULL;
}

/* Relayed sessions now (max_relays counts them). */
size_t
relays_count(const struct relays *rs)
{
	return rs->n;
}
