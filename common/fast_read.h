/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Large reads for a socket bufferevent.  libevent 2.1's evbuffer_read()
 * takes at most 4 KiB per call whatever bufferevent_set_max_single_read()
 * says, which holds a relay to a fraction of loopback speed.  A fast_read
 * reads the bufferevent's fd with an event of its own, into the
 * bufferevent's input buffer, 16 KiB at first, doubling while reads fill
 * it (bulk transfers) up to 1 MiB and halving when they do not
 * (request/reply traffic), then calls back as the bufferevent would.
 * The bufferevent keeps writing; its own reading is switched off.
 */
#pragma once

#include <stdbool.h>

struct bufferevent;
struct event_base;
struct fast_read;

/*
 * Data arrived in the bufferevent's input (@what 0), or the stream ended
 * (@what: BEV_EVENT_READING | BEV_EVENT_EOF, or | BEV_EVENT_ERROR with the
 * socket error set).  The callback may free the fast_read and the
 * bufferevent.
 */
typedef void fast_read_fn(struct bufferevent *bev, short what, void *arg);

int fast_read_new(struct event_base *base, struct bufferevent *bev,
    fast_read_fn *fn, void *arg, struct fast_read **ret_fr);
struct fast_read *fast_read_free(struct fast_read *fr);
void fast_read_pause(struct fast_read *fr);
void fast_read_resume(struct fast_read *fr);
