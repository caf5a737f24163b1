/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The packet-aware TVM RPC session relay shared by the broker (client <->
 * a board that dialled in) and the agent (client data connection <-> the
 * session child): spec tvm-rpc-protocol.md §6.5.
 *
 * The relay owns no sockets.  Its owner hands it the four evbuffers of the
 * two sides and tells it when bytes arrived, when an output drained and
 * when a side hit EOF; the relay moves bytes between the buffers, counts
 * packets, keeps the session deadline, and asks the owner through struct
 * rpc_relay_ops to write, to stop or resume reading, and to let go of a
 * side.  So the same state machine runs over the broker's connections and
 * over the agent's bufferevents.
 *
 * Client to server, bytes are forwarded as they arrive and a scanner keeps
 * track of packet boundaries, so the relay knows when a request is
 * complete and a reply is owed.  Server to client, packets up to the
 * buffer size are forwarded whole (store and forward, moving evbuffer
 * chains), so the client's stream is at a packet boundary whenever the
 * relay may have to answer it with one clean kException.  A larger one
 * (a download: TVM sends the whole tensor or file as one packet) is
 * forwarded as it arrives, its header read as any other's; a deadline
 * that falls inside it passes when it ends (within the linger period),
 * and a server that ends inside it leaves the client nothing clean to
 * read: the client is closed.  kExceptions are always stored whole.
 *
 * The bodies of packets larger than the buffer, either way, go from one
 * socket to the other through a pipe (splice(2)) when the owner tells
 * the relay its sockets (ops->fd): the headers and the bytes around them
 * still pass through the buffers and the relay's own eyes; the bodies do
 * not pass through user space.
 *
 * The server side ends once, with an outcome class (ops->server_end).  The
 * client side then lives on: every further request gets the same exception
 * (spec §6.5 items 7-9) until the client shuts down, or until the linger
 * period passes and the relay half-closes it (ops->client_shut) and, after
 * a second period, closes it (ops->client_close).
 *
 * Everything the relay writes into the session (kExceptions) is in the
 * session's dialect (tvm_rpc.h), learned from its bytes before anything
 * can need writing: the server's reply to kInitServer, the first packet
 * of any session, tells it (tvm-ffi-era.md §3.2 D1; a client's
 * kGetGlobalFunc or kFreeHandle confirms, D2).  Until then the tvm-ffi
 * form is written, which clients of both dialects survive.
 *
 * An owner never frees the relay from inside one of its ops callbacks; it
 * frees it once both sides are gone and the call into the relay returned.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <npufarm/outcome.h>

#include "tvm_rpc.h"

struct event_base;
struct evbuffer;
struct rpc_relay;

/* Longest server exception message kept (spec: 4 KiB). */
#define RPC_RELAY_MSG_MAX 4096

enum rpc_relay_side {
	RPC_RELAY_CLIENT,
	RPC_RELAY_SERVER,
};

/* How the server side of a session ended (ops->server_end). */
struct rpc_relay_end {
	enum npufarm_outcome outcome;
	const char *detail; /* what happened, for people */
	int64_t start_us;   /* wall clock, µs */
	int64_t end_us;
	uint64_t requests;   /* client requests forwarded */
	uint64_t exceptions; /* kException packets the client got */
	uint64_t bytes_to_server;
	uint64_t bytes_to_client;
	enum tvm_rpc_dialect dialect; /* what the session spoke, if known */
};

struct rpc_relay_ops {
	/* Write what is queued on @side's output now (or soon). */
	void (*flush)(void *owner, enum rpc_relay_side side);
	/* Stop, or resume, reading @side (backpressure). */
	void (*pause)(void *owner, enum rpc_relay_side side);
	void (*resume)(void *owner, enum rpc_relay_side side);
	/*
	 * The server side is over: record @end and let go of the server
	 * (close or kill it).  The relay does not touch the server's
	 * buffers again, and does not call anything else from inside.
	 */
	void (*server_end)(void *owner, const struct rpc_relay_end *end);
	/* Half-close the client after its output is written (linger). */
	void (*client_shut)(void *owner);
	/*
	 * Close the client (@why for the log).  The relay does not touch
	 * the client's buffers again.
	 */
	void (*client_close)(void *owner, const char *why);
	/*
	 * Optional: @side's socket, or -1.  With both, the body of a server
	 * packet larger than the buffer goes from one socket to the other
	 * through a pipe (splice(2)), not through user space or the
	 * buffers; meanwhile the relay reads the server itself (the owner's
	 * reading is paused) and writes the client only once its output
	 * buffer is empty.  The sockets must stay open until server_end or
	 * client_close (or rpc_relay_*_gone), and SIGPIPE be ignored
	 * (splice(2) has no MSG_NOSIGNAL).
	 */
	int (*fd)(void *owner, enum rpc_relay_side side);
};

struct rpc_relay_config {
	uint64_t max_packet; /* largest server packet (8 + N) forwarded */
	size_t buffer;       /* output bytes queued before the other side
			      * stops being read */
	double timeout;      /* the client's -timeout=T, s; 0: none */
	double deadline;     /* when the relay enforces it, s from the start
			      * (>= timeout: a backstop); 0: never */
	double linger;       /* s an ended session's client may stay before
			      * the half-close (and again before the close) */
	const char *who;     /* names the server side in messages: "board" */
	enum tvm_rpc_dialect dialect; /* known in advance (an agent knows its
				       * runtime), or UNKNOWN; the session's
				       * own bytes decide either way */
};

int rpc_relay_new(struct event_base *base, const struct rpc_relay_config *cfg,
    const struct rpc_relay_ops *ops, void *owner, struct evbuffer *client_in,
    struct evbuffer *client_out, struct evbuffer *server_in,
    struct evbuffer *server_out, struct rpc_relay **ret_relay);
struct rpc_relay *rpc_relay_free(struct rpc_relay *r);

void rpc_relay_read(struct rpc_relay *r, enum rpc_relay_side side);
void rpc_relay_drained(struct rpc_relay *r, enum rpc_relay_side side);
void rpc_relay_client_eof(struct rpc_relay *r, const char *how);
void rpc_relay_server_eof(struct rpc_relay *r, const char *how);
void rpc_relay_server_failed(
    struct rpc_relay *r, enum npufarm_outcome outcome, const char *msg);
void rpc_relay_client_gone(struct rpc_relay *r);
void rpc_relay_server_gone(
    struct rpc_relay *r, enum npufarm_outcome outcome, const char *detail);

bool rpc_relay_live(const struct rpc_relay *r);
bool rpc_relay_owed(const struct rpc_relay *r);
bool rpc_relay_client_shut_down(const struct rpc_relay *r);
bool rpc_relay_server_timed_out(const struct rpc_relay *r);
const char *rpc_relay_first_exception(const struct rpc_relay *r);
void rpc_relay_bytes(const struct rpc_relay *r, uint64_t *ret_to_server,
    uint64_t *ret_to_client);
