/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The RPC relay's state machine (common/rpc_relay.c) with the fuzzer as
 * its owner: the input is a script of steps, each a command byte and a
 * length, that feed bytes to either side, drain either output, end either
 * stream, fail or drop the server, drop the client, or turn the loop (the
 * deadline and the linger are a microsecond, so timers fire too).  The
 * owner keeps the relay's contract: a side it let go of, or that the
 * relay let go of, is never touched again, and the relay is freed once
 * both are gone, never from inside a callback.
 */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "rpc_relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct owner {
	bool client, server; /* alive: we may still touch that side */
	bool client_eof;     /* its stream ended: no more bytes */
	bool server_eof;
	bool paused[2];
};

static void
flush_cb(void *arg, enum rpc_relay_side side)
{
}

static void
pause_cb(void *arg, enum rpc_relay_side side)
{
	((struct owner *)arg)->paused[side] = true;
}

static void
resume_cb(void *arg, enum rpc_relay_side side)
{
	((struct owner *)arg)->paused[side] = false;
}

static void
server_end_cb(void *arg, const struct rpc_relay_end *end)
{
	((struct owner *)arg)->server = false;
}

static void
client_shut_cb(void *arg)
{
}

static void
client_close_cb(void *arg, const char *why)
{
	((struct owner *)arg)->client = false;
}

static const struct rpc_relay_ops ops = {
    .flush = flush_cb,
    .pause = pause_cb,
    .resume = resume_cb,
    .server_end = server_end_cb,
    .client_shut = client_shut_cb,
    .client_close = client_close_cb,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct event_base *base;
	struct evbuffer *b[4];
	struct rpc_relay_config cfg = {
	    .max_packet = 1 << 16,
	    .buffer = 4096,
	    .linger = 1e-6,
	    .who = "board",
	};
	struct owner o = {.client = true, .server = true};
	struct rpc_relay *r = NULL;
	size_t i = 1;
	int k;

	if (base == NULL)
		base = event_base_new();
	if (base == NULL || size < 1)
		return 0;
	if (data[0] & 1) {
		cfg.timeout = 1e-6;
		cfg.deadline = data[0] & 2 ? 1e-6 : 5;
	}
	for (k = 0; k < 4; k++)
		b[k] = evbuffer_new();
	if (rpc_relay_new(base, &cfg, &ops, &o, b[0], b[1], b[2], b[3], &r) < 0)
		goto out;
	while (i + 1 < size && (o.client || o.server)) {
		uint8_t cmd = data[i] % 12;
		size_t n = data[i + 1];

		i += 2;
		if (n > size - i)
			n = size - i;
		switch (cmd) {
		case 0: /* the client sends n bytes */
			if (o.client && !o.client_eof) {
				evbuffer_add(b[0], data + i, n);
				rpc_relay_read(r, RPC_RELAY_CLIENT);
			}
			i += n;
			break;
		case 1: /* the server sends n bytes */
			if (o.server && !o.server_eof) {
				evbuffer_add(b[2], data + i, n);
				rpc_relay_read(r, RPC_RELAY_SERVER);
			}
			i += n;
			break;
		case 2: /* the client's output is written */
			if (o.client) {
				(void)evbuffer_drain(
				    b[1], evbuffer_get_length(b[1]));
				rpc_relay_drained(r, RPC_RELAY_CLIENT);
			}
			break;
		case 3:
			if (o.server) {
				(void)evbuffer_drain(
				    b[3], evbuffer_get_length(b[3]));
				rpc_relay_drained(r, RPC_RELAY_SERVER);
			}
			break;
		case 4:
			if (o.client && !o.client_eof) {
				o.client_eof = true;
				rpc_relay_client_eof(r, "end of stream");
			}
			break;
		case 5:
			if (o.server && !o.server_eof) {
				o.server_eof = true;
				rpc_relay_server_eof(
				    r, "its connection closed (end of stream)");
			}
			break;
		case 6:
			if (o.server)
				rpc_relay_server_failed(r,
				    NPUFARM_OUTCOME_CRASH,
				    "npufarm: the board crashed");
			break;
		case 7:
			if (o.server) {
				o.server = false;
				rpc_relay_server_gone(r, NPUFARM_OUTCOME_LOST,
				    "the board went away");
			}
			break;
		case 8:
			if (o.client) {
				o.client = false;
				rpc_relay_client_gone(r);
			}
			break;
		default: /* let timers (deadline, linger) fire */
			(void)event_base_loop(base, EVLOOP_NONBLOCK);
			break;
		}
		(void)rpc_relay_live(r);
		(void)rpc_relay_owed(r);
		(void)rpc_relay_first_exception(r);
	}
	if (o.client)
		rpc_relay_client_gone(r);
	if (o.server)
		rpc_relay_server_gone(
		    r, NPUFARM_OUTCOME_LOST, "the test ended");
out:
	r = rpc_relay_free(r);
	for (k = 0; k < 4; k++)
		evbuffer_free(b[k]);
	return 0;
}
