/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TVM RPC codec: the proxy hello (pull, parse, the -timeout value and
 * the message built from it), then the rest of the input as a packet
 * stream through both tvm_rpc_packet_peek() and the incremental scanner,
 * fed in the uneven pieces the first bytes choose, and every kException
 * decoded.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "err.h"
#include "tvm_rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
count(int32_t code, uint64_t total, void *arg)
{
	(*(uint64_t *)arg) += total + (uint64_t)(code & 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	struct tvm_rpc_hello h;
	struct tvm_rpc_scan scan;
	struct npufarm_err err;
	char key[256], msg[512];
	uint64_t total, n = 0;
	size_t off = 0, step;
	int32_t code;
	int i;

	if (size < 2)
		goto out;
	step = 1 + data[0] % 64;
	evbuffer_add(in, data + 1, size - 1);
	if (tvm_rpc_hello_pull(in, key, sizeof(key), &err) == 1 &&
	    tvm_rpc_hello_parse(key, &h, &err) == 0 && h.has_timeout) {
		(void)tvm_rpc_timeout_message(h.timeout, msg, sizeof(msg));
		/* Every dialect, the undecided one included. */
		(void)tvm_rpc_add_exception(
		    out, msg, (enum tvm_rpc_dialect)(data[0] / 64 % 3));
		(void)tvm_rpc_exception_peek(out, msg, sizeof(msg));
	}
	tvm_rpc_scan_init(&scan, 1 << 20);
	{
		size_t len = evbuffer_get_length(in);
		unsigned char *p = evbuffer_pullup(in, -1);

		while (off < len) {
			size_t k = len - off < step ? len - off : step;

			if (tvm_rpc_scan_feed(
				&scan, p + off, k, count, &n, &err) < 0)
				break;
			off += k;
		}
		(void)tvm_rpc_scan_at_boundary(&scan);
	}
	for (i = 0; i < 64; i++) {
		if (tvm_rpc_packet_peek(in, 1 << 20, &total, &code) != 1)
			break;
		(void)tvm_rpc_code_is_request(code);
		(void)tvm_rpc_code_is_reply(code);
		(void)tvm_rpc_exception_peek(in, msg, sizeof(msg));
		(void)evbuffer_drain(in, (size_t)total);
	}
out:
	evbuffer_free(in);
	evbuffer_free(out);
	return 0;
}
