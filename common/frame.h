/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Length-prefixed frames: int32 little-endian body length, then the body.
 * One codec for the TVM tracker protocol and the npufarm agent link.
 * Peers split writes arbitrarily; nothing here assumes one read = one frame.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct npufarm_err;
struct json_t;

#define FRAME_HEADER_SIZE 4

/* frame_next() results besides -errno. */
enum {
	FRAME_INCOMPLETE = 0, /* need more bytes */
	FRAME_READY = 1,      /* a whole frame is buffered */
	FRAME_BAD_JSON = 2,   /* frame_pull_json(): consumed, not JSON */
};

int frame_next(
    struct evbuffer *in, size_t max, const char **ret_body, size_t *ret_len);
void frame_consume(struct evbuffer *in, size_t len);
int frame_pull_json(struct evbuffer *in, size_t max, int max_depth,
    struct json_t **ret_root, struct npufarm_err *err);
int frame_add(struct evbuffer *out, const void *body, size_t len);
int frame_add_buffer(struct evbuffer *out, struct evbuffer *body);
void frame_put_le32(unsigned char *p, uint32_t v);
uint32_t frame_get_le32(const unsigned char *p);
void frame_put_le64(unsigned char *p, uint64_t v);
uint64_t frame_get_le64(const unsigned char *p);
