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
#include <stdint.h>

struct conn;

void relay_start(struct conn *client, struct conn *board, const char *board_key,
    int64_t lease_id, bool agent, int64_t board_id);
void relay_dial(struct conn *client, const char *host, long port,
    const char *board_match, int64_t lease_id, int64_t board_id);
void relay_refuse(struct conn *c, const char *why);
