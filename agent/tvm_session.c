/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One TVM RPC session served by the agent (see tvm_session.h).
 *
 * States: OFFERED (hello sent, waiting for the pair-up), RUNNING (child
 * forked, relaying), ENDING (the relay ended the server side: the child is
 * being killed and reaped), DONE (reported).  The data connection and the
 * child are released independently; the object goes when both are.
 */
#include "config.h"

#include "tvm_session.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "fast_read.h"
#include "frame.h"
#include "log.h"
#include "netaddr.h"
#include "rpc_relay.h"
#include "tvm_rpc.h"

/* Bytes of the client key the broker may send at pair-up. */
#define SESSION_KEY_MAX   4096
/* Bytes one write may take from either side's output. */
#define SESSION_WRITE_MAX (1024 * 1024)
/* Output queued toward one side before the other stops being read. */
#define SESSION_BUFFER    (4 * 1024 * 1024)
/* An ended session's data connection may linger this long (twice). */
#define SESSION_LINGER_S  5.0
/* After the child's socket closed, how long it has to exit. */
#define SESSION_EXIT_WAIT 1

enum session_state {
	SESSION_OFFERED,
	SESSION_RUNNING,
	SESSION_ENDING,
	SESSION_DONE,
};

struct tvm_session {
	struct event_base *base;
	struct tvm_session_config cfg;
	char *id;
	enum session_state state;
	struct bufferevent *data;   /* to the broker; NULL once closed */
	struct fast_read *data_fr;  /* its large reads, once paired */
	bool shut_pending;          /* half-close once output drained */
	struct bufferevent *child;  /* our end of the socketpair; NULL: gone */
	struct fast_read *child_fr; /* its large reads */
	pid_t pid;                  /* 0: none, or reaped */
	bool child_eof;             /* its socket closed */
	struct supervisor_end end;  /* how the child ended, once reaped */
	bool reaped;
	struct event *kill_ev;     /* SIGKILL after the SIGTERM grace */
	struct event *exit_ev;     /* the child closed its socket: exit now */
	struct event *gone_ev;     /* tells the owner nothing is left */
	struct rpc_relay *rr;      /* RUNNING and later */
	struct rpc_relay_end rend; /* how the relay ended the server side */
	char rdetail[RPC_RELAY_MSG_MAX];
	bool relay_ended;
	double timeout;
};

static void session_maybe_done(struct tvm_session *s);

static bool
session_is_gone(const struct tvm_session *s)
{
	return s->state == SESSION_DONE && s->data == NULL && s->pid == 0;
}

static void
gone_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tvm_session *s = arg;

	if (session_is_gone(s) && s->cfg.gone != NULL)
		s->cfg.gone(s->cfg.arg, s); /* frees s */
}

/*
 * Tell the owner, from the loop, once nothing is left: never from inside
 * a relay or bufferevent callback, whose caller still holds @s.
 */
static void
session_maybe_gone(struct tvm_session *s)
{
	static const struct timeval now = {0, 0};

	if (session_is_gone(s))
		(void)evtimer_add(s->gone_ev, &now);
}

static void
data_close(struct tvm_session *s)
{
	if (s->data == NULL)
		return;
	s->data_fr = fast_read_free(s->data_fr);
	bufferevent_free(s->data);
	s->data = NULL;
}

static void
child_close(struct tvm_session *s)
{
	if (s->child == NULL)
		return;
	s->child_fr = fast_read_free(s->child_fr);
	bufferevent_free(s->child);
	s->child = NULL;
}

static struct fast_read *
side_fr(struct tvm_session *s, enum rpc_relay_side side)
{
	return side == RPC_RELAY_CLIENT ? s->data_fr : s->child_fr;
}

/* ---- relay ops ------------------------------------------------------ */

static struct bufferevent *
side_bev(struct tvm_session *s, enum rpc_relay_side side)
{
	return side == RPC_RELAY_CLIENT ? s->data : s->child;
}

static void
op_flush(void *owner, enum rpc_relay_side side)
{
	/* Bufferevents write on their own once EV_WRITE is enabled. */
}

static void
op_pause(void *owner, enum rpc_relay_side side)
{
	struct bufferevent *bev = side_bev(owner, side);
	struct fast_read *fr = side_fr(owner, side);

	if (fr != NULL)
		fast_read_pause(fr);
	else if (bev != NULL)
		bufferevent_disable(bev, EV_READ);
}

static void
op_resume(void *owner, enum rpc_relay_side side)
{
	struct bufferevent *bev = side_bev(owner, side);
	struct fast_read *fr = side_fr(owner, side);

	if (fr != NULL)
		fast_read_resume(fr);
	else if (bev != NULL)
		bufferevent_enable(bev, EV_READ);
}

/* Half-close the data connection once its output is written. */
static void
data_shut(struct tvm_session *s)
{
	if (s->data == NULL)
		return;
	if (evbuffer_get_length(bufferevent_get_output(s->data)) > 0) {
		s->shut_pending = true;
		return;
	}
	s->shut_pending = false;
	(void)shutdown(bufferevent_getfd(s->data), SHUT_WR);
}

static void
kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tvm_session *s = arg;

	if (s->pid > 0 && !s->reaped)
		(void)supervisor_session_kill(s->pid, SUPERVISOR_KILL_FORCE);
}

/* Start killing the child's process group (SIGTERM, SIGKILL later). */
static void
child_kill(struct tvm_session *s)
{
	struct timeval tv = {0, SUPERVISOR_KILL_GRACE_MS * 1000};

	if (s->pid <= 0 || s->reaped)
		return;
	(void)supervisor_session_kill(s->pid, SUPERVISOR_KILL_TERM);
	(void)evtimer_add(s->kill_ev, &tv);
}

static void
op_server_end(void *owner, const struct rpc_relay_end *end)
{
	struct tvm_session *s = owner;

	s->rend = *end;
	(void)snprintf(s->rdetail, sizeof(s->rdetail), "%s",
	    end->detail ? end->detail : "");
	s->rend.detail = s->rdetail;
	s->relay_ended = true;
	s->state = SESSION_ENDING;
	child_close(s);
	if (end->outcome == NPUFARM_OUTCOME_OK ||
	    end->outcome == NPUFARM_OUTCOME_EXCEPTION) {
		/* The client shut the session down and the runtime got the
		 * kShutdown: let it exit on its own, then make sure. */
		struct timeval tv = {SESSION_EXIT_WAIT, 0};

		(void)evtimer_add(s->exit_ev, &tv);
	} else
		child_kill(s);
	/* The session's last word is queued: the broker takes the client
	 * side over from here (it answers later requests itself). */
	data_shut(s);
	session_maybe_done(s);
}

static void
op_client_shut(void *owner)
{
	data_shut(owner);
}

static void
op_client_close(void *owner, const char *why)
{
	struct tvm_session *s = owner;

	log_debug("session %s: data connection closed: %s", s->id, why);
	data_close(s);
	session_maybe_gone(s);
}

static const struct rpc_relay_ops session_ops = {
    .flush = op_flush,
    .pause = op_pause,
    .resume = op_resume,
    .server_end = op_server_end,
    .client_shut = op_client_shut,
    .client_close = op_client_close,
};

/* ---- the end -------------------------------------------------------- */

/* Report once both the relay and the child are done with. */
static void
session_maybe_done(struct tvm_session *s)
{
	struct tvm_session_report rep;

	if (s->state == SESSION_DONE || !s->relay_ended || !s->reaped)
		return;
	s->state = SESSION_DONE;
	s->pid = 0;
	if (s->end.cleanup < 0)
		log_warn(
		    "session %s: its work dir was not removed entirely", s->id);
	rep = (struct tvm_session_report){
	    .id = s->id,
	    .outcome = s->rend.outcome,
	    .detail = s->rend.detail,
	    .timeout = s->timeout,
	    .signal = s->end.signal,
	    .status = s->end.status,
	    .start_us = s->rend.start_us,
	    .end_us = s->rend.end_us,
	    .requests = s->rend.requests,
	    .exceptions = s->rend.exceptions,
	    .bytes_to_board = s->rend.bytes_to_server,
	    .bytes_to_client = s->rend.bytes_to_client,
	};
	log_info("session %s ended %s: %s", s->id,
	    npufarm_outcome_name(rep.outcome), rep.detail);
	s->cfg.done(s->cfg.arg, true, &rep, NULL);
	session_maybe_gone(s);
}

/*
 * The child is gone and its socket closed, while the relay still runs:
 * classify how it ended.  A signal or a failing exit status is a crash
 * named after it; a clean exit is whatever the relay makes of an EOF (ok
 * after the client's kShutdown, else a crash).
 */
static void
child_finished(struct tvm_session *s)
{
	char msg[256];

	if (s->rr == NULL || !rpc_relay_live(s->rr))
		return;
	(void)evtimer_del(s->exit_ev);
	rpc_relay_read(s->rr, RPC_RELAY_SERVER); /* whole packets first */
	if (!rpc_relay_live(s->rr))
		return;
	if (!rpc_relay_client_shut_down(s->rr) &&
	    (s->end.signal != 0 || s->end.status != 0)) {
		(void)snprintf(msg, sizeof(msg),
		    "npufarm: board session crashed: %s%s", s->end.msg,
		    rpc_relay_owed(s->rr) ? " while a reply was owed"
					  : " between calls");
		rpc_relay_server_failed(s->rr, NPUFARM_OUTCOME_CRASH, msg);
		return;
	}
	rpc_relay_server_eof(s->rr, s->reaped ? "the session child exited"
					      : "the session child closed "
						"its connection");
}

/*
 * SIGCHLD: if our child has ended, reap it (this also kills what is left
 * of its process group and removes its work dir).
 */
void
tvm_session_child_exited(struct tvm_session *s)
{
	struct npufarm_err err;
	int r;

	if (s->pid <= 0 || s->reaped)
		return;
	r = supervisor_session_reap(s->cfg.sup, s->pid, false, &s->end, &err);
	if (r == 0)
		return;
	if (r < 0) {
		log_warn("session %s: %s", s->id, err.msg);
		if (s->end.msg[0] == '\0')
			(void)snprintf(s->end.msg, sizeof(s->end.msg),
			    "could not be reaped");
		s->end.status = -1;
	}
	s->reaped = true;
	(void)evtimer_del(s->kill_ev);
	log_debug("session %s: child %ld ended: %s", s->id, (long)s->pid,
	    s->end.msg[0] ? s->end.msg : "exit 0");
	if (s->child_eof || s->child == NULL)
		child_finished(s);
	else {
		/* Its last bytes are on their way: wait for the EOF. */
		struct timeval tv = {SESSION_EXIT_WAIT, 0};

		(void)evtimer_add(s->exit_ev, &tv);
	}
	session_maybe_done(s);
}

static void
exit_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tvm_session *s = arg;

	if (s->reaped) {
		child_finished(s);
		session_maybe_done(s);
		return;
	}
	/* The socket closed but the process lives on: end it. */
	if (s->rr != NULL && rpc_relay_live(s->rr))
		rpc_relay_server_failed(s->rr, NPUFARM_OUTCOME_CRASH,
		    "npufarm: board session crashed: it closed its connection "
		    "and did not exit");
	child_kill(s);
}

/* ---- the child's side ----------------------------------------------- */

static void
child_readcb(struct bufferevent *bev, void *arg)
{
	struct tvm_session *s = arg;

	if (s->rr != NULL)
		rpc_relay_read(s->rr, RPC_RELAY_SERVER);
}

static void
child_writecb(struct bufferevent *bev, void *arg)
{
	struct tvm_session *s = arg;

	if (s->rr != NULL)
		rpc_relay_drained(s->rr, RPC_RELAY_SERVER);
}

static void
child_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct tvm_session *s = arg;
	struct timeval tv = {SESSION_EXIT_WAIT, 0};

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	s->child_eof = true;
	s->child_fr = fast_read_free(s->child_fr);
	bufferevent_disable(bev, EV_READ);
	if (s->rr != NULL)
		rpc_relay_read(s->rr, RPC_RELAY_SERVER);
	if (s->reaped) {
		child_finished(s);
		session_maybe_done(s);
	} else
		(void)evtimer_add(s->exit_ev, &tv);
}

/* ---- the data connection -------------------------------------------- */

static void data_readcb(struct bufferevent *bev, void *arg);

static void data_eventcb(struct bufferevent *bev, short what, void *arg);

/* fast_read callbacks: the bufferevents' own, for large reads. */
static void
child_fast_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what == 0)
		child_readcb(bev, arg);
	else
		child_eventcb(bev, what, arg);
}

static void
data_fast_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what == 0)
		data_readcb(bev, arg);
	else
		data_eventcb(bev, what, arg);
}

/*
 * Paired: fork the session child and start relaying.  @client_key is the
 * client's hello key, with its -timeout=T.
 */
static void
session_start(struct tvm_session *s, char *client_key)
{
	struct rpc_relay_config rc = {
	    .max_packet = (uint64_t)s->cfg.max_packet,
	    .buffer = SESSION_BUFFER,
	    .linger = SESSION_LINGER_S,
	    .who = "board",
	    /* The runtime's ABI tells (D3); the session's bytes decide. */
	    .dialect = s->cfg.sup->dialect,
	};
	struct tvm_rpc_hello h;
	struct npufarm_err err;
	int fd = -1;

	if (tvm_rpc_hello_parse(client_key, &h, &err) < 0)
		log_warn("session %s: client key: %s; no deadline from it",
		    s->id, err.msg);
	else if (h.has_timeout)
		rc.timeout = h.timeout;
	if (s->cfg.max_session > 0 &&
	    (rc.timeout <= 0 || rc.timeout > s->cfg.max_session))
		rc.timeout = s->cfg.max_session;
	rc.deadline = rc.timeout;
	s->timeout = rc.timeout;
	if (supervisor_session_start(s->cfg.sup, &fd, &s->pid, &err) < 0) {
		log_err("session %s: %s", s->id, err.msg);
		goto fail;
	}
	s->child = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->child == NULL) {
		close(fd);
		goto fail_child;
	}
	bufferevent_setcb(
	    s->child, child_readcb, child_writecb, child_eventcb, s);
	if (rpc_relay_new(s->base, &rc, &session_ops, s,
		bufferevent_get_input(s->data), bufferevent_get_output(s->data),
		bufferevent_get_input(s->child),
		bufferevent_get_output(s->child), &s->rr) < 0)
		goto fail_child;
	s->state = SESSION_RUNNING;
	bufferevent_enable(s->child, EV_WRITE);
	/* Large reads and writes both ways: uploads and downloads are
	 * megabytes (libevent 2.1 writes 16 KiB per call by default). */
	(void)bufferevent_set_max_single_write(s->child, SESSION_WRITE_MAX);
	(void)bufferevent_set_max_single_write(s->data, SESSION_WRITE_MAX);
	if (fast_read_new(s->base, s->child, child_fast_cb, s, &s->child_fr) <
		0 ||
	    fast_read_new(s->base, s->data, data_fast_cb, s, &s->data_fr) < 0)
		log_warn("session %s: out of memory for large reads; reading "
			 "4 KiB at a time",
		    s->id);
	log_info("session %s: paired (timeout %g s), child %ld", s->id,
	    rc.timeout, (long)s->pid);
	/* Bytes that came with the pair-up. */
	rpc_relay_read(s->rr, RPC_RELAY_CLIENT);
	return;
fail_child:
	child_close(s);
	child_kill(s);
fail:
	/* Nothing to serve with: end at once, the client gets told why, in
	 * the dialect of the board's runtime (UNKNOWN writes the form that
	 * clients of both survive). */
	if (s->rr == NULL &&
	    tvm_rpc_add_exception(bufferevent_get_output(s->data),
		"npufarm: the board could not start a session",
		s->cfg.sup->dialect) == 0)
		data_shut(s);
	s->rend = (struct rpc_relay_end){
	    .outcome = NPUFARM_OUTCOME_CRASH,
	    .detail = "the agent could not start a session child",
	};
	s->relay_ended = true;
	s->state = SESSION_ENDING;
	if (s->pid <= 0)
		s->reaped = true;
	session_maybe_done(s);
}

/* The pair-up: i32 SUCCESS, i32 len, the client's key. */
static void
data_handshake(struct tvm_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->data);
	char why[128], *key;
	unsigned char hdr[8];
	int32_t code, len;

	if (evbuffer_copyout(in, hdr, 4) < 4)
		return;
	code = (int32_t)frame_get_le32(hdr);
	if (code != NPUFARM_TVM_RPC_CODE_SUCCESS) {
		(void)snprintf(why, sizeof(why), "broker answered %s",
		    code == NPUFARM_TVM_RPC_CODE_MISMATCH    ? "MISMATCH"
		    : code == NPUFARM_TVM_RPC_CODE_DUPLICATE ? "DUPLICATE"
							     : "garbage");
		goto refused;
	}
	if (evbuffer_copyout(in, hdr, 8) < 8)
		return;
	len = (int32_t)frame_get_le32(hdr + 4);
	if (len <= 0 || len > SESSION_KEY_MAX) {
		(void)snprintf(why, sizeof(why),
		    "broker sent a client key of %d bytes", (int)len);
		goto refused;
	}
	if (evbuffer_get_length(in) < 8 + (size_t)len)
		return;
	key = malloc((size_t)len + 1);
	if (key == NULL) {
		(void)snprintf(why, sizeof(why), "out of memory");
		goto refused;
	}
	(void)evbuffer_drain(in, 8);
	(void)evbuffer_remove(in, key, (size_t)len);
	key[len] = '\0';
	session_start(s, key);
	free(key);
	return;
refused:
	data_close(s);
	s->state = SESSION_DONE;
	s->cfg.done(s->cfg.arg, false, NULL, why);
	session_maybe_gone(s);
}

static void
data_readcb(struct bufferevent *bev, void *arg)
{
	struct tvm_session *s = arg;

	if (s->state == SESSION_OFFERED)
		data_handshake(s);
	else if (s->rr != NULL)
		rpc_relay_read(s->rr, RPC_RELAY_CLIENT);
	else
		(void)evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
}

static void
data_writecb(struct bufferevent *bev, void *arg)
{
	struct tvm_session *s = arg;

	if (s->shut_pending)
		data_shut(s);
	if (s->rr != NULL && s->data != NULL)
		rpc_relay_drained(s->rr, RPC_RELAY_CLIENT);
}

static void
data_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct tvm_session *s = arg;
	char why[160];

	if (what & BEV_EVENT_CONNECTED)
		return;
	(void)snprintf(why, sizeof(why), "data connection %s",
	    (what & BEV_EVENT_ERROR) ? strerror(EVUTIL_SOCKET_ERROR())
				     : "closed by the broker");
	if (s->state == SESSION_OFFERED) {
		data_close(s);
		s->state = SESSION_DONE;
		s->cfg.done(s->cfg.arg, false, NULL, why);
		session_maybe_gone(s);
		return;
	}
	if (s->rr != NULL) {
		/* client_close closes s->data */
		rpc_relay_client_eof(s->rr, why + strlen("data connection "));
		session_maybe_gone(s);
		return;
	}
	data_close(s);
	session_maybe_gone(s);
}

/*
 * Offer the board for one session: dial the broker's farm port and say
 * "server:KEY agent=NAME session=ID".  Everything after that is reported
 * through cfg->done (once) and cfg->gone.  Returns 0, or -errno with
 * @err set if not even the connection could be started.
 */
int
tvm_session_offer(struct event_base *base, const struct tvm_session_config *cfg,
    struct tvm_session **ret_session, struct npufarm_err *err)
{
	struct tvm_session *s;
	struct netaddr na;
	char *hello = NULL;
	int one = 1, r;

	r = netaddr_parse(cfg->broker, &na, err);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	s->base = base;
	s->cfg = *cfg;
	s->id = strdup(cfg->id);
	s->kill_ev = evtimer_new(base, kill_cb, s);
	s->exit_ev = evtimer_new(base, exit_wait_cb, s);
	s->gone_ev = evtimer_new(base, gone_cb, s);
	s->data = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (s->id == NULL || s->kill_ev == NULL || s->exit_ev == NULL ||
	    s->gone_ev == NULL || s->data == NULL ||
	    asprintf(&hello, "server:%s agent=%s session=%s", cfg->key,
		cfg->name, cfg->id) < 0) {
		hello = NULL;
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	bufferevent_setcb(s->data, data_readcb, data_writecb, data_eventcb, s);
	if (bufferevent_socket_connect(
		s->data, (struct sockaddr *)&na.ss, (int)na.len) < 0) {
		r = err_set(err, -errno, "data connection to %s: %s",
		    cfg->broker, strerror(errno));
		goto fail;
	}
	(void)setsockopt(bufferevent_getfd(s->data), IPPROTO_TCP, TCP_NODELAY,
	    &one, sizeof(one));
	if (tvm_rpc_add_hello(bufferevent_get_output(s->data), hello) < 0) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	free(hello);
	bufferevent_enable(s->data, EV_READ | EV_WRITE);
	s->state = SESSION_OFFERED;
	*ret_session = s;
	return 0;
fail:
	free(hello);
	s->state = SESSION_DONE;
	tvm_session_free(s);
	return r;
}

/* True once a client was paired with the offer. */
bool
tvm_session_paired(const struct tvm_session *s)
{
	return s->state != SESSION_OFFERED && s->rr != NULL;
}

/*
 * Take back an offer nobody was paired with (the link went down, the board
 * is quarantined or the agent stops): its connection is closed, and done
 * is not called.  A paired session is not affected.
 */
void
tvm_session_withdraw(struct tvm_session *s)
{
	if (s->state != SESSION_OFFERED)
		return;
	data_close(s);
	s->state = SESSION_DONE;
	session_maybe_gone(s);
}

/*
 * Free @s now, whatever its state: a running child is killed and reaped
 * (blocking for at most the kill grace).  For the agent's exit.  Accepts
 * NULL; returns NULL.
 */
struct tvm_session *
tvm_session_free(struct tvm_session *s)
{
	struct npufarm_err err;

	if (s == NULL)
		return NULL;
	if (s->pid > 0 && !s->reaped) {
		(void)supervisor_session_kill(s->pid, SUPERVISOR_KILL_FORCE);
		(void)supervisor_session_reap(
		    s->cfg.sup, s->pid, true, &s->end, &err);
	}
	child_close(s);
	data_close(s);
	rpc_relay_free(s->rr);
	if (s->kill_ev != NULL)
		event_free(s->kill_ev);
	if (s->exit_ev != NULL)
		event_free(s->exit_ev);
	if (s->gone_ev != NULL)
		event_free(s->gone_ev);
	free(s->id);
	free(s);
	return NULL;
}

/* The report as the agent link's "session" frame. */
json_t *
tvm_session_report_json(const struct tvm_session_report *rep)
{
	return json_pack("{ss ss ss ss sf si si sI sI sI sI sI sI}", "type",
	    "session", "id", rep->id, "outcome",
	    npufarm_outcome_name(rep->outcome), "detail",
	    rep->detail ? rep->detail : "", "timeout", rep->timeout, "signal",
	    rep->signal, "status", rep->status, "start_us",
	    (json_int_t)rep->start_us, "end_us", (json_int_t)rep->end_us,
	    "requests", (json_int_t)rep->requests, "exceptions",
	    (json_int_t)rep->exceptions, "bytes_to_board",
	    (json_int_t)rep->bytes_to_board, "bytes_to_client",
	    (json_int_t)rep->bytes_to_client);
}
