/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The packet-aware relay between a TVM client and a board that dialled in
 * (spec tvm-rpc-protocol.md §4.2, §5, §6.5): it forwards both directions
 * with backpressure, watches the packet framing, enforces the session
 * deadline, and turns a timeout or a dying board into one clean kException
 * for the client instead of an EOF that TVM reports as kShutdown.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker_config;
struct conn;
struct event_base;
struct ledger_session;
struct metrics;
struct relays;

/*
 * How a relayed session's board side reports back to whoever started it
 * (@arg is theirs).  Runs on the loop, from inside relay callbacks.
 */
struct relay_end {
	/* The board side of lease @lease_id of board @board_id ended as
	 * @sess says; @board is its connection, which the relay closes (or
	 * keeps lingering) afterwards. */
	void (*session_end)(void *arg, struct conn *board, int64_t board_id,
	    int64_t lease_id, const struct ledger_session *sess);
	/* relay_dial() only: the board could not be relayed (@why);
	 * @board_fault: it was the board's doing. */
	void (*dial_failed)(void *arg, int64_t board_id, int64_t lease_id,
	    const char *why, bool board_fault);
};

int relays_new(struct event_base *base, const struct broker_config *cfg,
    struct metrics *metrics, struct relays **ret_relays);
struct relays *relays_free(struct relays *rs);
size_t relays_count(const struct relays *rs);
/* What a client's RPC hello said (the protocol that read it keeps it). */
struct relay_hello {
	const char *key; /* verbatim, sent on to a board that dialled in */
	double timeout;  /* s, its -timeout=T; 0: none */
};

void relay_start(struct relays *rs, struct conn *client,
    const struct relay_hello *hello, struct conn *board, const char *board_key,
    int64_t lease_id, bool agent, int64_t board_id, const struct relay_end *end,
    void *arg);
void relay_dial(struct relays *rs, struct conn *client,
    const struct relay_hello *hello, const char *host, long port,
    const char *board_match, int64_t lease_id, int64_t board_id,
    const struct relay_end *end, void *arg);
void relay_refuse(struct conn *c, const char *why);
