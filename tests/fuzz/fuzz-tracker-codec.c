/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tracker codec: frame_next() over the input, then each frame through
 * json_util_load() and tvm_tracker_parse(), and the replies the broker
 * would build from what it parsed.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "err.h"
#include "frame.h"
#include "json_util.h"
#include "tvm_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	struct tvm_tracker_msg m;
	struct npufarm_err err;
	const char *body;
	json_t *root;
	size_t len;
	int i;

	evbuffer_add(in, data, size);
	for (i = 0; i < 64; i++) {
		if (frame_next(in, 4096, &body, &len) != FRAME_READY)
			break;
		if (json_util_load(body, len, 8, &root, &err) == 0) {
			if (tvm_tracker_parse(root, 64, &m, &err) == 0 &&
			    m.key != NULL)
				(void)tvm_tracker_add_grant(
				    out, m.key, m.port, m.key);
			(void)tvm_tracker_add_json(out, root);
			json_decref(root);
		}
		frame_consume(in, len);
	}
	evbuffer_free(in);
	evbuffer_free(out);
	return 0;
}
