/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP API in-process: each input is played over two connections to
 * the broker's API port (requests, bodies, pipelining, early closes).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

#include "fuzz_broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_broker_play(fuzz_broker_http(), NULL, 0, data, size, 2);
	return 0;
}
