/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frame codec over libevent evbuffers.  A declared length above the limit is
 * rejected as soon as the header is in, before any of the body is buffered.
 * A zero length is rejected too: TVM's tracker never consumes such a frame
 * and wedges the connection (spec TRK-N2); we close it with a reason instead.
 */
#include "config.h"

#include "frame.h"

#include <errno.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "json_util.h"

/* Store @v little-endian into p[0..3]. */
void
frame_put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* Read a little-endian uint32 from p[0..3]. */
uint32_t
frame_get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Store @v little-endian into p[0..7] (TVM RPC packet lengths). */
void
frame_put_le64(unsigned char *p, uint64_t v)
{
	frame_put_le32(p, (uint32_t)v);
	frame_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Read a little-endian uint64 from p[0..7]. */
uint64_t
frame_get_le64(const unsigned char *p)
{
	return (uint64_t)frame_get_le32(p + 4) << 32 | frame_get_le32(p);
}

/*
 * Look at the next frame in @in without removing it.  Returns FRAME_READY
 * with *ret_body pointing at @ret_len contiguous body bytes (borrowed: valid
 * until the buffer is changed, normally by frame_consume()), FRAME_INCOMPLETE
 * when more bytes are needed, -EMSGSIZE when the declared length is negative
 * or above @max, -EBADMSG when it is zero.  Does not log.
 */
int
frame_next(
    struct evbuffer *in, size_t max, const char **ret_body, size_t *ret_len)
{
	unsigned char hdr[FRAME_HEADER_SIZE];
	unsigned char *p;
	int32_t n;

	if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
		return FRAME_INCOMPLETE;
	n = (int32_t)frame_get_le32(hdr);
	if (n < 0 || (size_t)n > max)
		return -EMSGSIZE;
	if (n == 0)
		return -EBADMSG;
	if (evbuffer_get_length(in) < FRAME_HEADER_SIZE + (size_t)n)
		return FRAME_INCOMPLETE;
	p = evbuffer_pullup(in, FRAME_HEADER_SIZE + (ev_ssize_t)n);
	if (p == NULL)
		return -ENOMEM;
	*ret_body = (const char *)p + FRAME_HEADER_SIZE;
	*ret_len = (size_t)n;
	return FRAME_READY;
}

/* Remove the frame of body length @len that frame_next() returned. */
void
frame_consume(struct evbuffer *in, size_t len)
{
	(void)evbuffer_drain(in, FRAME_HEADER_SIZE + len);
}

/*
 * The framed-JSON read step every JSON-over-frames peer shares (the
 * tracker protocol, the agent link on both ends): take the next frame of
 * @in (body at most @max bytes) and parse it, nested at most @max_depth.
 * FRAME_READY with *@ret_root (a new reference) and the frame consumed;
 * FRAME_INCOMPLETE; FRAME_BAD_JSON with the frame consumed and @err saying
 * why (json_util_load()); or frame_next()'s -errno, nothing consumed.
 * Does not log.
 */
int
frame_pull_json(struct evbuffer *in, size_t max, int max_depth,
    json_t **ret_root, struct npufarm_err *err)
{
	const char *body;
	size_t len;
	int r;

	r = frame_next(in, max, &body, &len);
	if (r != FRAME_READY)
		return r;
	r = json_util_load(body, len, max_depth, ret_root, err);
	frame_consume(in, len);
	return r < 0 ? FRAME_BAD_JSON : FRAME_READY;
}

/*
 * Append one frame (header and body in one contiguous region, so it leaves
 * in one write) to @out.  Returns 0 or -ENOMEM; -EMSGSIZE if @len does not
 * fit an int32.
 */
int
frame_add(struct evbuffer *out, const void *body, size_t len)
{
	struct evbuffer_iovec v;

	if (len > INT32_MAX)
		return -EMSGSIZE;
	if (evbuffer_reserve_space(
		out, (ev_ssize_t)(FRAME_HEADER_SIZE + len), &v, 1) != 1)
		return -ENOMEM;
	frame_put_le32(v.iov_base, (uint32_t)len);
	memcpy((unsigned char *)v.iov_base + FRAME_HEADER_SIZE, body, len);
	v.iov_len = FRAME_HEADER_SIZE + len;
	if (evbuffer_commit_space(out, &v, 1) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * Append one frame whose body is all of @body, moving its chains instead of
 * copying them (@body is left empty).  The header and the body's first
 * bytes share a chain, so small frames still leave in one write.  Returns 0
 * or -ENOMEM; -EMSGSIZE if the body does not fit an int32.
 */
int
frame_add_buffer(struct evbuffer *out, struct evbuffer *body)
{
	unsigned char hdr[FRAME_HEADER_SIZE];
	size_t len = evbuffer_get_length(body);

	if (len > INT32_MAX)
		return -EMSGSIZE;
	frame_put_le32(hdr, (uint32_t)len);
	if (evbuffer_prepend(body, hdr, sizeof(hdr)) < 0 ||
	    evbuffer_add_buffer(out, body) < 0)
		return -ENOMEM;
	return 0;
}
