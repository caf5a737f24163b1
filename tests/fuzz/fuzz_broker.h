/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An in-process npufarm-broker for the libFuzzer harnesses: one real
 * server (farm port, HTTP API, ledger, artifacts) on loopback, started once
 * per fuzzer process, and a driver that plays one input over several TCP
 * connections to it, turning the broker's loop between writes.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct server;

/* The broker; started on first use (aborts if it cannot start). */
struct server *fuzz_broker(void);
/* "127.0.0.1:PORT" of its farm port and of its HTTP API. */
const char *fuzz_broker_farm(void);
const char *fuzz_broker_http(void);
/*
 * Play @data over up to @nconns connections to @addr: the input is cut at
 * each "\n@@\n"; segment i goes to connection i % @nconns, preceded by
 * @prefix (e.g. a protocol magic) when the connection opens.  Then every
 * connection is half-closed and the loop turns until the broker has closed
 * them all or a bounded number of iterations passed.
 */
void fuzz_broker_play(const char *addr, const void *prefix, size_t plen,
    const uint8_t *data, size_t size, int nconns);
