/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The farm port in-process: each input is played over four connections
 * whose first bytes pick the protocol (tracker, RPC proxy, agent link),
 * against a broker with a live native job, so agent frames, grants,
 * pair-ups and relays all meet each other.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

#include "fuzz_broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_broker_play(fuzz_broker_farm(), NULL, 0, data, size, 4);
	return 0;
}
