/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tracker codec: frame_next() over the input, then each frame through
 * json_util_load() and tvm_tracker_parse(), and the replies the broker
 * would build from what it parsed.  Differential: what
 * tvm_tracker_parse_fast() takes must decode to the same message through
 * jansson, and each reply written without jansson must equal
 * json_util_dumps_py() of the same value.
 */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "err.h"
#include "frame.h"
#include "json_util.h"
#include "tvm_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The fast path took @body: it must be what jansson makes of it. */
static void
check_fast(const char *body, size_t len, const struct tvm_tracker_msg *f)
{
	struct tvm_tracker_msg m;
	struct npufarm_err err;
	json_t *root;

	if (json_util_load(body, len, 8, &root, &err) != 0 ||
	    tvm_tracker_parse(root, 64, &m, &err) != 0)
		abort();
	if (f->code != m.code || !same(f->key, m.key) ||
	    !same(f->user, m.user) || f->priority != m.priority ||
	    f->port != m.port || !same(f->matchkey, m.matchkey) ||
	    !same(f->custom_addr, m.custom_addr))
		abort();
	json_decref(root);
}

/* The direct grant of @m's strings against json_util_dumps_py(). */
static void
check_grant(const struct tvm_tracker_msg *m)
{
	struct evbuffer *out = evbuffer_new();
	size_t n;
	char *got, *want;
	json_t *v;

	if (out == NULL)
		return;
	v = json_pack("[i[sIs]]", 0, m->key, (json_int_t)m->port, m->key);
	if (tvm_tracker_add_grant(out, m->key, m->port, m->key) < 0) {
		if (v != NULL) /* jansson would have made it */
			abort();
		evbuffer_free(out);
		return;
	}
	want = v ? json_util_dumps_py(v) : NULL;
	n = evbuffer_get_length(out);
	got = malloc(n + 1);
	if (want == NULL || got == NULL || n < 4)
		abort();
	evbuffer_remove(out, got, n);
	got[n] = '\0';
	if (strcmp(got + 4, want) != 0)
		abort();
	free(got);
	free(want);
	json_decref(v);
	evbuffer_free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	struct tvm_tracker_msg m;
	struct npufarm_err err;
	char scratch[1024];
	const char *body;
	json_t *root;
	size_t len;
	int i;

	evbuffer_add(in, data, size);
	for (i = 0; i < 64; i++) {
		if (frame_next(in, 4096, &body, &len) != FRAME_READY)
			break;
		if (tvm_tracker_parse_fast(
			body, len, 64, 8, scratch, sizeof(scratch), &m) == 1)
			check_fast(body, len, &m);
		if (json_util_load(body, len, 8, &root, &err) == 0) {
			if (tvm_tracker_parse(root, 64, &m, &err) == 0 &&
			    m.key != NULL)
				check_grant(&m);
			(void)tvm_tracker_add_json(out, root);
			json_decref(root);
		}
		frame_consume(in, len);
	}
	evbuffer_free(in);
	evbuffer_free(out);
	return 0;
}
