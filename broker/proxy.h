/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TVM RPC proxy handshake on the farm port (spec §4.1): a board says
 * "server:KEY" and waits in the queues; a client says "client:MATCHKEY"
 * (or "client:KEY") and is paired with a board, then relayed.
 */
#pragma once

struct conn;

int proxy_conn_start(struct conn *c, void *arg);
