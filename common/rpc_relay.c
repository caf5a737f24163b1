/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One TVM RPC session between a client and a server, packet-aware (see
 * rpc_relay.h).  The server side ends in one of these ways, each an outcome
 * class: the client shuts it down (ok, or exception if the server reported
 * one), the deadline passes (timeout: one RPCSessionTimeoutError kException
 * byte-identical to TVM's), the server vanishes (crash or lost: the client
 * gets a kException saying so, never a bare EOF), or the client vanishes
 * (lost).
 */
#include "config.h"

#include "rpc_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clock.h"
#include "err.h"
#include "frame.h"

/* What the pipe of a splice may hold (F_SETPIPE_SZ; the default is
 * 64 KiB when that is refused). */
#define RPC_RELAY_PIPE (1024 * 1024)

enum rpc_relay_state {
	RPC_RELAY_LIVE,  /* both sides up, bytes flow */
	RPC_RELAY_ENDED, /* server side over; the client is answered by us */
};

/* One direction's splice(2): source socket -> pipe -> destination. */
struct rpc_splice {
	bool on;          /* a body goes through the pipe now */
	int pipe[2];      /* -1 until the first */
	size_t cap;       /* what the pipe holds */
	size_t len;       /* bytes in it, not yet the destination's */
	uint64_t in_left; /* bytes still to take from the source */
	struct event *rd; /* the source socket, while it has room */
	struct event *wr; /* the destination's, while that is full */
};

struct rpc_relay {
	struct rpc_relay_config cfg;
	const struct rpc_relay_ops *ops;
	void *owner;
	struct evbuffer *c_in, *c_out; /* NULL once the client is gone */
	struct evbuffer *s_in, *s_out; /* NULL once the server ended */
	enum rpc_relay_state state;
	struct tvm_rpc_scan c2s; /* client-to-server packet boundaries */
	uint64_t s2c_left;       /* bytes of a server packet larger than
				  * the buffer still to forward (0: the
				  * client's stream is at a boundary) */
	int32_t s2c_code;        /* that packet's code */
	bool deadline_due;       /* the deadline passed inside it */
	/* The bodies of packets larger than the buffer, socket to socket
	 * through a pipe, when the owner tells the sockets (ops->fd);
	 * indexed by the side they come from. */
	struct event_base *base;
	struct rpc_splice sp[2];
	bool no_splice;               /* no sockets, or splice(2) refused */
	bool owed;                    /* the client waits for a reply */
	bool client_shutdown;         /* the client sent kShutdown */
	bool server_timeout;          /* the server sent its own timeout exc. */
	unsigned presents;            /* exceptions the client got unasked */
	enum tvm_rpc_dialect dialect; /* the session's, once known */
	bool server_spoke;            /* the server's bytes decided it */
	struct event *deadline_ev;
	struct event *linger_ev; /* half-closes, then closes, the client */
	bool lingered;           /* half-closed, waiting for EOF */
	char *exc;               /* ENDED: the answer to later requests */
	uint64_t requests, exceptions, bytes_c2s, bytes_s2c;
	int64_t start_us;
	char first_exc[RPC_RELAY_MSG_MAX]; /* the server's first exception */
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Stop splicing from @src (the caller decides whether the owner reads
 * it again). */
static void
splice_stop(struct rpc_relay *r, enum rpc_relay_side src)
{
	struct rpc_splice *sp = &r->sp[src];

	if (!sp->on)
		return;
	sp->on = false;
	(void)event_del(sp->rd);
	(void)event_del(sp->wr);
}

static void
splice_stop_all(struct rpc_relay *r)
{
	splice_stop(r, RPC_RELAY_CLIENT);
	splice_stop(r, RPC_RELAY_SERVER);
}

static bool splice_start(
    struct rpc_relay *r, enum rpc_relay_side src, uint64_t n);

static void
client_close(struct rpc_relay *r, const char *why)
{
	if (r->c_in == NULL)
		return;
	splice_stop_all(r);
	r->c_in = r->c_out = NULL;
	if (r->linger_ev != NULL)
		(void)event_del(r->linger_ev);
	r->ops->client_close(r->owner, why);
}

/*
 * Send the client a kException.  @answer: it answers a request of an ended
 * session (spec §6.5 item 8); otherwise it is the session's own reply,
 * answering the owed request or, if none is owed, the client's next one.
 */
static void
send_exception(struct rpc_relay *r, const char *msg, bool answer)
{
	size_t before;

	/* Inside a packet the client cannot be answered: end_server()
	 * closes it instead. */
	if (r->c_out == NULL || r->s2c_left > 0)
		return;
	before = evbuffer_get_length(r->c_out);
	if (tvm_rpc_add_exception(r->c_out, msg, r->dialect) < 0) {
		client_close(r, "out of memory queueing an exception");
		return;
	}
	r->exceptions++;
	r->bytes_s2c += evbuffer_get_length(r->c_out) - before;
	if (!answer) {
		if (r->owed)
			r->owed = false;
		else
			r->presents++;
	}
	r->ops->flush(r->owner, RPC_RELAY_CLIENT);
}

/*
 * The server side is over with @outcome: the owner records it and lets go
 * of the server, and from now on the client is answered with @exc (NULL:
 * the client is done).
 */
static void
end_server(struct rpc_relay *r, enum npufarm_outcome outcome,
    const char *detail, const char *exc)
{
	struct rpc_relay_end end = {
	    .outcome = outcome,
	    .detail = detail,
	    .start_us = r->start_us,
	    .end_us = now_us(),
	    .requests = r->requests,
	    .exceptions = r->exceptions,
	    .bytes_to_server = r->bytes_c2s,
	    .bytes_to_client = r->bytes_s2c,
	    .dialect = r->dialect,
	};
	struct timeval tv = clock_tv(r->cfg.linger);
	char why[128];

	if (r->state != RPC_RELAY_LIVE)
		return;
	r->state = RPC_RELAY_ENDED;
	if (r->deadline_ev != NULL)
		(void)event_del(r->deadline_ev);
	if (exc != NULL && r->exc == NULL)
		r->exc = strdup(exc);
	splice_stop_all(r);
	if (r->s_in != NULL) {
		r->s_in = r->s_out = NULL;
		r->ops->server_end(r->owner, &end);
	}
	if (r->s2c_left > 0) {
		/* The client got part of a packet larger than the buffer: no
		 * clean word can follow it. */
		(void)snprintf(why, sizeof(why),
		    "the %s's side ended in the middle of a packet to the "
		    "client",
		    r->cfg.who);
		client_close(r, why);
		return;
	}
	if (r->c_in != NULL) {
		r->ops->resume(r->owner, RPC_RELAY_CLIENT);
		(void)event_add(r->linger_ev, &tv);
	}
}

/* The outcome of a session the client ended cleanly. */
static void
end_clean(struct rpc_relay *r, const char *how)
{
	char detail[RPC_RELAY_MSG_MAX + 64];

	if (r->server_timeout)
		end_server(r, NPUFARM_OUTCOME_TIMEOUT, r->first_exc, NULL);
	else if (r->first_exc[0] != '\0')
		end_server(r, NPUFARM_OUTCOME_EXCEPTION, r->first_exc, NULL);
	else {
		(void)snprintf(detail, sizeof(detail), "%s after %llu requests",
		    how, (unsigned long long)r->requests);
		end_server(r, NPUFARM_OUTCOME_OK, detail, NULL);
	}
}

static void
client_packet(int32_t code, uint64_t total, void *arg)
{
	struct rpc_relay *r = arg;

	if (code == TVM_RPC_SHUTDOWN) {
		r->client_shutdown = true;
		return;
	}
	if (r->dialect == TVM_RPC_DIALECT_UNKNOWN)
		r->dialect = tvm_rpc_dialect_of_request(
		    code, total, r->c2s.body, r->c2s.body_len);
	if (!tvm_rpc_code_is_request(code))
		return;
	if (r->state == RPC_RELAY_LIVE) {
		/* A reply that came unasked is what the client will read as
		 * the answer to this request (TVM clients read one packet per
		 * request); otherwise the server owes one. */
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
	else if (r->exc != NULL)
		send_exception(r, r->exc, true);
}

static void
client_in(struct rpc_relay *r)
{
	struct evbuffer *in = r->c_in;
	size_t n = in != NULL ? evbuffer_get_length(in) : 0;
	struct npufarm_err err;
	char detail[NPUFARM_ERR_MSG_MAX + 64];

	if (n == 0)
		return;
	if (tvm_rpc_scan_feed_buffer(&r->c2s, in, n, client_packet, r, &err) <
	    0) {
		(void)snprintf(detail, sizeof(detail),
		    "client sent a malformed packet: %s", err.msg);
		end_server(r, NPUFARM_OUTCOME_REJECTED, detail, NULL);
		client_close(r, detail);
		return;
	}
	if (r->c_in == NULL)
		return;
	if (r->state != RPC_RELAY_LIVE) {
		(void)evbuffer_drain(in, n); /* keep draining (§6.5 item 7) */
		if (r->client_shutdown)
			client_close(r, "client shut the session down");
		return;
	}
	r->bytes_c2s += n;
	(void)evbuffer_remove_buffer(in, r->s_out, n);
	r->ops->flush(r->owner, RPC_RELAY_SERVER);
	if (r->client_shutdown) {
		/* The server gets the kShutdown (the owner writes it before
		 * letting go), the client is done: close both (§6.5 item 9). */
		end_clean(r, "client shut down");
		client_close(r, "client shut the session down");
		return;
	}
	/* The rest of a request larger than the buffer (an upload) goes
	 * through a pipe, but for its last byte: the scanner sees the
	 * request end in the buffer. */
	if (r->c2s.hdr_len == TVM_RPC_HEADER_SIZE && r->c2s.left > 1 &&
	    r->c2s.body_len == TVM_RPC_SCAN_BODY &&
	    8 + frame_get_le64(r->c2s.hdr) > r->cfg.buffer &&
	    splice_start(r, RPC_RELAY_CLIENT, r->c2s.left - 1))
		return;
	/* Backpressure: stop reading a client the server does not keep up
	 * with; rpc_relay_drained() resumes it. */
	if (r->s_out != NULL && evbuffer_get_length(r->s_out) > r->cfg.buffer)
		r->ops->pause(r->owner, RPC_RELAY_CLIENT);
}

/* The server broke off (@how): a crash, answered with a kException. */
static void
server_broke(struct rpc_relay *r, const char *how)
{
	char msg[512];

	(void)snprintf(msg, sizeof(msg),
	    "npufarm: the %s ended the session abnormally: %s%s", r->cfg.who,
	    how, r->owed ? " while a reply was owed" : " between calls");
	rpc_relay_server_failed(r, NPUFARM_OUTCOME_CRASH, msg);
}

/* A server packet ended in the client's stream: was it the reply owed? */
static void
server_packet_done(struct rpc_relay *r, int32_t code)
{
	if (tvm_rpc_code_is_reply(code)) {
		if (!r->owed)
			r->presents++;
		r->owed = false;
	}
}

/*
 * Does a packet larger than the buffer start at the front of the server's
 * input?  Then it is forwarded as it arrives (its header is all the relay
 * needs of it) instead of being stored whole: true, with r->s2c_left set.
 * kExceptions are always stored whole: their message is read.
 */
static bool
server_cut_through(struct rpc_relay *r)
{
	unsigned char hdr[TVM_RPC_HEADER_SIZE];
	uint64_t total;
	int32_t code;

	if (evbuffer_copyout(r->s_in, hdr, sizeof(hdr)) <
	    (ev_ssize_t)sizeof(hdr))
		return false;
	total = 8 + frame_get_le64(hdr); /* tvm_rpc_packet_peek() checked it */
	code = (int32_t)frame_get_le32(hdr + 8);
	if (total <= r->cfg.buffer || code == TVM_RPC_EXCEPTION)
		return false;
	r->s2c_left = total;
	r->s2c_code = code;
	return true;
}

static void deadline_pass(struct rpc_relay *r);
static void server_in(struct rpc_relay *r);

/* The other side. */
static enum rpc_relay_side
other(enum rpc_relay_side side)
{
	return side == RPC_RELAY_CLIENT ? RPC_RELAY_SERVER : RPC_RELAY_CLIENT;
}

/* Where @src's bytes are queued for the other side (NULL: gone). */
static struct evbuffer *
out_to(struct rpc_relay *r, enum rpc_relay_side src)
{
	return src == RPC_RELAY_SERVER ? r->c_out : r->s_out;
}

/*
 * @n bytes from @src were taken from its socket into the pipe.  For the
 * client's, the scanner skips them: splice_start() leaves it the body's
 * first TVM_RPC_SCAN_BODY bytes and its last one, so no packet ends in
 * them and nothing in them is kept.
 */
static void
splice_taken(struct rpc_relay *r, enum rpc_relay_side src, size_t n)
{
	r->sp[src].len += n;
	r->sp[src].in_left -= n;
	if (src == RPC_RELAY_CLIENT) {
		r->c2s.left -= n;
		r->c2s.bytes += n;
	}
}

/* @n bytes from @src left the pipe for the other side. */
static void
splice_given(struct rpc_relay *r, enum rpc_relay_side src, size_t n)
{
	r->sp[src].len -= n;
	if (src == RPC_RELAY_SERVER) {
		r->bytes_s2c += n;
		r->s2c_left -= n;
	} else
		r->bytes_c2s += n;
}

/*
 * The other side's socket can take the pipe's bytes once its output
 * buffer is empty (they follow what is queued there).  True when it is;
 * otherwise rpc_relay_drained() calls again.
 */
static bool
splice_dest_ready(struct rpc_relay *r, enum rpc_relay_side src)
{
	struct evbuffer *out = out_to(r, src);

	if (out != NULL && evbuffer_get_length(out) > 0)
		r->ops->flush(r->owner, other(src));
	out = out_to(r, src);
	return out != NULL && evbuffer_get_length(out) == 0;
}

/*
 * Splicing from @src broke off (@refused: splice(2) does not work on these
 * sockets; else a socket ended or failed): what is in the pipe goes to
 * the other side's buffer, and the owner reads @src again, so its own
 * read reports an end or an error as it always does, and whatever else
 * comes goes through the buffers.
 */
static void
splice_fall_back(struct rpc_relay *r, enum rpc_relay_side src, bool refused)
{
	struct rpc_splice *sp = &r->sp[src];
	struct evbuffer *out = out_to(r, src);
	int n;

	splice_stop(r, src);
	while (out != NULL && sp->len > 0) {
		n = evbuffer_read(out, sp->pipe[0], (int)sp->len);
		if (n <= 0)
			break;
		splice_given(r, src, (size_t)n);
	}
	if (refused)
		r->no_splice = true;
	r->ops->resume(r->owner, src);
	r->ops->flush(r->owner, other(src));
}

static void server_in(struct rpc_relay *r);
static void client_in(struct rpc_relay *r);

/*
 * Move a body from @src: its socket -> the pipe -> the other side's
 * socket, as far as both let it, without blocking.  When it is all
 * through, the owner reads @src again and the relay takes up its bytes.
 */
static void
splice_pump(struct rpc_relay *r, enum rpc_relay_side src)
{
	struct rpc_splice *sp = &r->sp[src];
	int sfd = r->ops->fd(r->owner, src);
	int dfd = r->ops->fd(r->owner, other(src));
	ssize_t n;
	size_t want;

	bool moved;

	while (sp->on) {
		moved = false;
		if (sp->len > 0 && splice_dest_ready(r, src)) {
			n = splice(sp->pipe[0], NULL, dfd, NULL, sp->len,
			    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				splice_given(r, src, (size_t)n);
				moved = true;
			} else if (n < 0 && errno == EAGAIN)
				(void)event_add(sp->wr, NULL);
			else {
				/* The destination failed: the owner's own
				 * write to it reports how. */
				splice_fall_back(
				    r, src, n < 0 && errno == EINVAL);
				return;
			}
		}
		if (!sp->on)
			return; /* the flush ended the session */
		if (sp->in_left == 0 && sp->len == 0) {
			splice_stop(r, src);
			if (src == RPC_RELAY_SERVER)
				server_packet_done(r, r->s2c_code);
			r->ops->resume(r->owner, src);
			if (src == RPC_RELAY_SERVER)
				server_in(r);
			else
				client_in(r);
			return;
		}
		want = sp->in_left < sp->cap - sp->len ? (size_t)sp->in_left
						       : sp->cap - sp->len;
		if (want == 0) {
			/* Full, or all taken: the pipe empties first, now or
			 * when sp->wr or rpc_relay_drained() calls again. */
			(void)event_del(sp->rd);
			if (!moved)
				return;
			continue;
		}
		(void)event_add(sp->rd, NULL);
		n = splice(sfd, NULL, sp->pipe[1], NULL, want,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			splice_taken(r, src, (size_t)n);
			moved = true;
		} else if (n == 0 || errno != EAGAIN) {
			splice_fall_back(r, src, n < 0 && errno == EINVAL);
			return;
		}
		if (!moved)
			return;
	}
}

static void
splice_server_cb(evutil_socket_t fd, short what, void *arg)
{
	splice_pump(arg, RPC_RELAY_SERVER);
}

static void
splice_client_cb(evutil_socket_t fd, short what, void *arg)
{
	splice_pump(arg, RPC_RELAY_CLIENT);
}

/*
 * The next @n bytes from @src, all still in its socket (its input buffer
 * is empty), belong to the body of a packet larger than the buffer: they
 * go to the other side through a pipe if the owner tells the sockets.
 * True when they do.
 */
static bool
splice_start(struct rpc_relay *r, enum rpc_relay_side src, uint64_t n)
{
	struct rpc_splice *sp = &r->sp[src];
	event_callback_fn cb =
	    src == RPC_RELAY_SERVER ? splice_server_cb : splice_client_cb;
	int sfd, dfd, cap;

	if (r->no_splice || r->ops->fd == NULL || n == 0)
		return false;
	sfd = r->ops->fd(r->owner, src);
	dfd = r->ops->fd(r->owner, other(src));
	if (sfd < 0 || dfd < 0) {
		r->no_splice = true;
		return false;
	}
	if (sp->rd == NULL) {
		if (pipe2(sp->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
			sp->pipe[0] = sp->pipe[1] = -1;
			r->no_splice = true;
			return false;
		}
		cap = fcntl(sp->pipe[1], F_SETPIPE_SZ, RPC_RELAY_PIPE);
		sp->cap = cap > 0 ? (size_t)cap : 65536;
		sp->wr = event_new(r->base, dfd, EV_WRITE, cb, r);
		sp->rd = event_new(r->base, sfd, EV_READ | EV_PERSIST, cb, r);
		if (sp->rd == NULL || sp->wr == NULL) {
			r->no_splice = true;
			return false;
		}
	}
	sp->on = true;
	sp->in_left = n;
	r->ops->pause(r->owner, src);
	splice_pump(r, src);
	return true;
}

/*
 * Forward every whole packet the server has sent, and of a packet larger
 * than the buffer, what has come of it.
 */
static void
server_in(struct rpc_relay *r)
{
	char what[128];
	uint64_t total;
	int32_t code;
	size_t n;
	int res;

	if (r->s_in == NULL || r->c_out == NULL)
		return;
	if (r->sp[RPC_RELAY_SERVER].on) {
		splice_pump(r, RPC_RELAY_SERVER);
		return;
	}
	for (;;) {
		if (r->deadline_due && r->s2c_left == 0)
			break; /* nothing after its packet goes out */
		if (r->s2c_left > 0) {
			n = evbuffer_get_length(r->s_in);
			if (n == 0) {
				if (splice_start(
					r, RPC_RELAY_SERVER, r->s2c_left))
					return;
				break;
			}
			if (n > r->s2c_left)
				n = (size_t)r->s2c_left;
			r->bytes_s2c += n;
			r->s2c_left -= n;
			(void)evbuffer_remove_buffer(r->s_in, r->c_out, n);
			if (r->s2c_left == 0) {
				server_packet_done(r, r->s2c_code);
				if (r->deadline_due)
					break; /* nothing after it goes out */
			}
			goto written;
		}
		res = tvm_rpc_packet_peek(
		    r->s_in, r->cfg.max_packet, &total, &code);
		if (res == 0) {
			if (server_cut_through(r))
				continue;
			break;
		}
		if (res < 0) {
			(void)snprintf(what, sizeof(what),
			    "it sent a malformed packet (%s)",
			    res == -EMSGSIZE ? "length over the packet limit"
					     : "length shorter than a header");
			server_broke(r, what);
			return;
		}
		if (!r->server_spoke) {
			/* D1: the reply to kInitServer decides, over any
			 * hint (a session has one dialect at both ends). */
			enum tvm_rpc_dialect d =
			    tvm_rpc_dialect_of_reply(r->s_in, total, code);

			if (d != TVM_RPC_DIALECT_UNKNOWN) {
				r->dialect = d;
				r->server_spoke = true;
			}
		}
		if (code == TVM_RPC_EXCEPTION) {
			r->exceptions++;
			if (r->first_exc[0] == '\0' &&
			    tvm_rpc_exception_peek(r->s_in, r->first_exc,
				sizeof(r->first_exc)) < 0)
				(void)snprintf(r->first_exc,
				    sizeof(r->first_exc), "(unreadable)");
			if (strncmp(r->first_exc, TVM_RPC_TIMEOUT_PREFIX,
				strlen(TVM_RPC_TIMEOUT_PREFIX)) == 0)
				r->server_timeout = true;
		}
		server_packet_done(r, code);
		r->bytes_s2c += total;
		(void)evbuffer_remove_buffer(r->s_in, r->c_out, (size_t)total);
	written:
		if (evbuffer_get_length(r->c_out) > r->cfg.buffer) {
			/* Write now; carry on only if the client took it (no
			 * read event may come for packets already here). */
			r->ops->flush(r->owner, RPC_RELAY_CLIENT);
			if (r->c_out == NULL ||
			    evbuffer_get_length(r->c_out) > r->cfg.buffer)
				break;
		}
	}
	if (r->c_out == NULL)
		return;
	r->ops->flush(r->owner, RPC_RELAY_CLIENT);
	if (r->deadline_due && r->s2c_left == 0 && r->state == RPC_RELAY_LIVE) {
		/* The packet the deadline fell in is out: now it passes. */
		r->deadline_due = false;
		(void)event_del(r->deadline_ev);
		deadline_pass(r);
		return;
	}
	/* Backpressure: past the limit, stop reading the server until
	 * rpc_relay_drained(). */
	if (r->c_out != NULL && r->s_in != NULL &&
	    evbuffer_get_length(r->c_out) > r->cfg.buffer)
		r->ops->pause(r->owner, RPC_RELAY_SERVER);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rpc_relay *r = arg;
	struct timeval tv = clock_tv(r->cfg.linger);
	char detail[512];

	if (r->state != RPC_RELAY_LIVE)
		return;
	/* Whole packets that arrived before the deadline still go out; a
	 * partial one is dropped with the server. */
	server_in(r);
	if (r->state != RPC_RELAY_LIVE)
		return;
	if (r->s2c_left == 0) {
		deadline_pass(r);
		return;
	}
	if (!r->deadline_due) {
		/* The client is inside a packet larger than the buffer: the
		 * deadline passes when it ends (server_in()), if it ends
		 * within the linger period. */
		r->deadline_due = true;
		(void)event_add(r->deadline_ev, &tv);
		return;
	}
	(void)snprintf(detail, sizeof(detail),
	    "session deadline of %g s passed while the %s was sending a "
	    "packet larger than the relay buffer, which did not end within "
	    "%g s; the session was ended and the %s reclaimed",
	    r->cfg.timeout, r->cfg.who, r->cfg.linger, r->cfg.who);
	end_server(r, NPUFARM_OUTCOME_TIMEOUT, detail, NULL);
}

/* The session deadline passes, the client's stream at a boundary. */
static void
deadline_pass(struct rpc_relay *r)
{
	char msg[256], detail[512];
	bool owed, mid;

	if (r->server_timeout) {
		/* It said so already; a request since is owed the same. */
		if (r->owed)
			send_exception(r, r->first_exc, false);
		end_server(
		    r, NPUFARM_OUTCOME_TIMEOUT, r->first_exc, r->first_exc);
		return;
	}
	owed = r->owed;
	/* Mid-request: the client was still sending one (a big upload). */
	mid = !owed && !tvm_rpc_scan_at_boundary(&r->c2s);
	(void)tvm_rpc_timeout_message(r->cfg.timeout, msg, sizeof(msg));
	send_exception(r, msg, false);
	(void)snprintf(detail, sizeof(detail),
	    "session deadline of %g s passed %s; the session was ended and "
	    "the %s reclaimed",
	    r->cfg.timeout,
	    owed  ? "while a reply was owed"
	    : mid ? "while the client was sending a request"
		  : "between calls",
	    r->cfg.who);
	end_server(r, NPUFARM_OUTCOME_TIMEOUT, detail, msg);
}

static void
linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rpc_relay *r = arg;
	struct timeval tv = clock_tv(r->cfg.linger);

	if (r->c_in == NULL)
		return;
	if (!r->lingered) {
		/* Tell a lingering client we are done, and wait for its EOF. */
		r->lingered = true;
		r->ops->client_shut(r->owner);
		(void)event_add(r->linger_ev, &tv);
		return;
	}
	client_close(r, "client did not close its ended session");
}

/*
 * Start relaying a session whose handshake is done: the deadline (if any)
 * runs from now.  The four buffers belong to the owner and must stay valid
 * until the relay lets go of their side.  Returns 0 or -ENOMEM.
 */
int
rpc_relay_new(struct event_base *base, const struct rpc_relay_config *cfg,
    const struct rpc_relay_ops *ops, void *owner, struct evbuffer *client_in,
    struct evbuffer *client_out, struct evbuffer *server_in,
    struct evbuffer *server_out, struct rpc_relay **ret_relay)
{
	struct rpc_relay *r;
	struct timeval tv;
	int k;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->cfg = *cfg;
	r->ops = ops;
	r->owner = owner;
	r->c_in = client_in;
	r->c_out = client_out;
	r->s_in = server_in;
	r->s_out = server_out;
	r->start_us = now_us();
	r->dialect = cfg->dialect;
	r->base = base;
	for (k = 0; k < 2; k++)
		r->sp[k].pipe[0] = r->sp[k].pipe[1] = -1;
	tvm_rpc_scan_init(&r->c2s, cfg->max_packet);
	r->linger_ev = evtimer_new(base, linger_cb, r);
	if (r->linger_ev == NULL)
		goto oom;
	if (cfg->deadline > 0) {
		tv = clock_tv(cfg->deadline);
		r->deadline_ev = evtimer_new(base, deadline_cb, r);
		if (r->deadline_ev == NULL ||
		    evtimer_add(r->deadline_ev, &tv) < 0)
			goto oom;
	}
	*ret_relay = r;
	return 0;
oom:
	rpc_relay_free(r);
	return -ENOMEM;
}

/* Free @r without calling back its owner.  Accepts NULL; returns NULL. */
struct rpc_relay *
rpc_relay_free(struct rpc_relay *r)
{
	int k;

	if (r == NULL)
		return NULL;
	if (r->deadline_ev != NULL)
		event_free(r->deadline_ev);
	if (r->linger_ev != NULL)
		event_free(r->linger_ev);
	for (k = 0; k < 2; k++) {
		if (r->sp[k].rd != NULL)
			event_free(r->sp[k].rd);
		if (r->sp[k].wr != NULL)
			event_free(r->sp[k].wr);
		if (r->sp[k].pipe[0] >= 0) {
			(void)close(r->sp[k].pipe[0]);
			(void)close(r->sp[k].pipe[1]);
		}
	}
	free(r->exc);
	free(r);
	return NULL;
}

/* Bytes arrived in @side's input buffer. */
void
rpc_relay_read(struct rpc_relay *r, enum rpc_relay_side side)
{
	if (side == RPC_RELAY_CLIENT)
		client_in(r);
	else
		server_in(r);
}

/* @side's output drained: resume reading its peer if it was paused. */
void
rpc_relay_drained(struct rpc_relay *r, enum rpc_relay_side side)
{
	if (r->sp[other(side)].on)
		splice_pump(r, other(side)); /* the pipe's turn to write */
	else if (side == RPC_RELAY_CLIENT && r->s_in != NULL) {
		r->ops->resume(r->owner, RPC_RELAY_SERVER);
		server_in(r);
	} else if (side == RPC_RELAY_SERVER && r->c_in != NULL) {
		r->ops->resume(r->owner, RPC_RELAY_CLIENT);
		client_in(r);
	}
}

/*
 * The client's stream ended (@how: "end of stream" or an error).  What it
 * had sent is taken first; a session it did not shut down ends as lost.
 * The client is closed (ops->client_close).
 */
void
rpc_relay_client_eof(struct rpc_relay *r, const char *how)
{
	char detail[256];

	client_in(r);
	if (r->state == RPC_RELAY_LIVE) {
		if (r->client_shutdown)
			end_clean(r, "client shut down");
		else {
			(void)snprintf(detail, sizeof(detail),
			    "client vanished mid-session (%s) %s", how,
			    r->owed ? "while a reply was owed"
				    : "between calls");
			end_server(r, NPUFARM_OUTCOME_LOST, detail, NULL);
		}
	}
	client_close(r, "client closed its session");
}

/*
 * The server's stream ended or broke (@how says how, e.g. "its connection
 * closed (end of stream)").  Whole packets are forwarded first; then a
 * session the client shut down ends cleanly, one whose server sent its own
 * timeout exception ends as timeout, and anything else is a crash: the
 * client gets a kException naming it if a reply was owed, and later
 * requests get the same.
 */
void
rpc_relay_server_eof(struct rpc_relay *r, const char *how)
{
	server_in(r);
	if (r->state != RPC_RELAY_LIVE)
		return;
	if (r->client_shutdown) {
		end_clean(r, "client shut down");
		return;
	}
	if (r->server_timeout) {
		/* The server timed the session out itself and went: a request
		 * sent since gets the same exception (§6.5 item 8). */
		if (r->owed)
			send_exception(r, r->first_exc, false);
		end_server(
		    r, NPUFARM_OUTCOME_TIMEOUT, r->first_exc, r->first_exc);
		return;
	}
	server_broke(r, how);
}

/*
 * End the server side as @outcome with kException message @msg: it answers
 * the owed request, if one is, and every later one.
 */
void
rpc_relay_server_failed(
    struct rpc_relay *r, enum npufarm_outcome outcome, const char *msg)
{
	const char *detail = msg;

	if (r->state != RPC_RELAY_LIVE)
		return;
	if (r->owed)
		send_exception(r, msg, false);
	if (strncmp(detail, "npufarm: ", 9) == 0)
		detail += 9;
	end_server(r, outcome, detail, msg);
}

/* The owner closed the client for its own reasons (e.g. a shutdown). */
void
rpc_relay_client_gone(struct rpc_relay *r)
{
	splice_stop_all(r);
	r->c_in = r->c_out = NULL;
	if (r->linger_ev != NULL)
		(void)event_del(r->linger_ev);
	if (r->state == RPC_RELAY_LIVE)
		end_server(r, NPUFARM_OUTCOME_LOST,
		    "the client's connection was closed mid-session", NULL);
}

/*
 * The owner let go of the server for its own reasons: the session ends as
 * @outcome without a word to the client beyond a kException if a reply is
 * owed.  ops->server_end is not called (the owner knows).
 */
void
rpc_relay_server_gone(
    struct rpc_relay *r, enum npufarm_outcome outcome, const char *detail)
{
	if (r->state != RPC_RELAY_LIVE)
		return;
	r->s_in = r->s_out = NULL;
	rpc_relay_server_failed(r, outcome, detail);
}

bool
rpc_relay_live(const struct rpc_relay *r)
{
	return r->state == RPC_RELAY_LIVE;
}

bool
rpc_relay_owed(const struct rpc_relay *r)
{
	return r->owed;
}

bool
rpc_relay_client_shut_down(const struct rpc_relay *r)
{
	return r->client_shutdown;
}

bool
rpc_relay_server_timed_out(const struct rpc_relay *r)
{
	return r->server_timeout;
}

/* The server's first kException message, or "" if it sent none. */
const char *
rpc_relay_first_exception(const struct rpc_relay *r)
{
	return r->first_exc;
}

/* Bytes forwarded so far: client to server, and server to client
 * (including any kException the relay wrote itself). */
void
rpc_relay_bytes(
    const struct rpc_relay *r, uint64_t *ret_to_server, uint64_t *ret_to_client)
{
	*ret_to_server = r->bytes_c2s;
	*ret_to_client = r->bytes_s2c;
}
