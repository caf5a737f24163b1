/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One TVM RPC session served by the agent, from the offer to the report.
 *
 * The agent offers its board to the broker on a data connection with the
 * RPC hello "server:KEY agent=NAME session=ID"; the broker queues it with
 * the agent's board and, when a tuner is granted the board, sends the
 * pair-up (SUCCESS and the client's key with its -timeout=T).  The session
 * then forks a session child (supervisor.h) that runs the board's TVM
 * runtime on one end of a socketpair, and relays between the data
 * connection and the child with the shared packet-aware relay
 * (rpc_relay.h), which also enforces the deadline: T, capped by
 * --max-session.
 *
 * When the session is over for the board (the client shut it down, the
 * deadline passed, the child died, the client vanished), the child's whole
 * process group is killed and reaped and its work dir removed, and the
 * owner gets one report (done_fn) with the classified outcome.  The data
 * connection may outlive that by a little (it is half-closed after the
 * session's last word and closed when the broker closes its side); the
 * object frees itself once both are gone (gone_fn).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "supervisor.h"

struct event_base;
struct tvm_session;

/* What the owner gets when a session is over. */
struct tvm_session_report {
	const char *id;               /* the session id of the offer */
	enum npufarm_outcome outcome; /* paired sessions only */
	const char *detail;
	double timeout;   /* the deadline enforced, s; 0: none */
	int signal;       /* what ended the child, or 0 */
	int status;       /* its exit status, or -1 */
	int64_t start_us; /* wall clock, µs */
	int64_t end_us;
	uint64_t requests;
	uint64_t exceptions;
	uint64_t bytes_to_board;
	uint64_t bytes_to_client;
};

/*
 * @paired false: the offer ended without a session (refused, or the
 * connection broke before a pair-up; @why says which) and @rep is NULL.
 */
typedef void tvm_session_done_fn(void *arg, bool paired,
    const struct tvm_session_report *rep, const char *why);
typedef void tvm_session_gone_fn(void *arg, struct tvm_session *s);

struct tvm_session_config {
	const char *broker; /* "HOST:PORT" of the farm port */
	const char *key;    /* device key */
	const char *name;   /* the agent's board name */
	const char *id;     /* unique session id, copied */
	double max_session; /* s; caps the client's -timeout; 0: no cap */
	long max_packet;    /* largest RPC packet from the child */
	const struct supervisor_config *sup; /* borrowed */
	tvm_session_done_fn *done;
	tvm_session_gone_fn *gone;
	void *arg;
};

int tvm_session_offer(struct event_base *base,
    const struct tvm_session_config *cfg, struct tvm_session **ret_session,
    struct npufarm_err *err);
void tvm_session_child_exited(struct tvm_session *s);
bool tvm_session_paired(const struct tvm_session *s);
void tvm_session_withdraw(struct tvm_session *s);
struct tvm_session *tvm_session_free(struct tvm_session *s);
json_t *tvm_session_report_json(const struct tvm_session_report *rep);
