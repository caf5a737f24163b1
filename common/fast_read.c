/* SPDX-License-Identifier: Apache-2.0 */
/* Large reads for a socket bufferevent (see fast_read.h). */
#include "config.h"

#include "fast_read.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define FAST_READ_MIN (16 * 1024)
#define FAST_READ_MAX (1024 * 1024)

struct fast_read {
	struct bufferevent *bev; /* borrowed */
	struct event *ev;
	size_t size; /* bytes the next read reserves */
	fast_read_fn *fn;
	void *arg;
};

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fast_read *fr = arg;
	struct evbuffer *in = bufferevent_get_input(fr->bev);
	struct evbuffer_iovec v;
	ssize_t n;

	/* A bufferevent keeps the end of its input frozen so only it adds
	 * to it; thaw it for our read.  One contiguous region: committing a
	 * second, unused one has been seen to leave the buffer inconsistent
	 * in libevent 2.1. */
	(void)evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, (ev_ssize_t)fr->size, &v, 1) != 1) {
		(void)evbuffer_freeze(in, 0);
		EVUTIL_SET_SOCKET_ERROR(ENOMEM);
		fr->fn(fr->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, fr->arg);
		return;
	}
	n = read(fd, v.iov_base, v.iov_len);
	if (n > 0) {
		if ((size_t)n >= fr->size && fr->size < FAST_READ_MAX)
			fr->size *= 2;
		else if ((size_t)n < fr->size / 4 && fr->size > FAST_READ_MIN)
			fr->size /= 2;
		v.iov_len = (size_t)n;
		(void)evbuffer_commit_space(in, &v, 1);
	}
	(void)evbuffer_freeze(in, 0);
	if (n > 0) {
		fr->fn(fr->bev, 0, fr->arg);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	EVUTIL_SET_SOCKET_ERROR(n < 0 ? errno : 0);
	fr->fn(fr->bev,
	    BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR),
	    fr->arg);
}

/*
 * Read @bev's fd from now on with our own event on @base, calling @fn.
 * Returns 0 or -ENOMEM.
 */
int
fast_read_new(struct event_base *base, struct bufferevent *bev,
    fast_read_fn *fn, void *arg, struct fast_read **ret_fr)
{
	struct fast_read *fr = calloc(1, sizeof(*fr));

	if (fr == NULL)
		return -ENOMEM;
	fr->bev = bev;
	fr->fn = fn;
	fr->arg = arg;
	fr->size = FAST_READ_MIN;
	fr->ev = event_new(
	    base, bufferevent_getfd(bev), EV_READ | EV_PERSIST, read_cb, fr);
	if (fr->ev == NULL || event_add(fr->ev, NULL) < 0) {
		fast_read_free(fr);
		return -ENOMEM;
	}
	bufferevent_disable(bev, EV_READ);
	*ret_fr = fr;
	return 0;
}

/* Stop reading; the bufferevent stays as it is.  NULL in, NULL out. */
struct fast_read *
fast_read_free(struct fast_read *fr)
{
	if (fr == NULL)
		return NULL;
	if (fr->ev != NULL)
		event_free(fr->ev);
	free(fr);
	return NULL;
}

/* Stop reading for now (backpressure). */
void
fast_read_pause(struct fast_read *fr)
{
	(void)event_del(fr->ev);
}

void
fast_read_resume(struct fast_read *fr)
{
	(void)event_add(fr->ev, NULL);
}
