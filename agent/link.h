/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's link to the broker (docs/protocol.md): dial out, hello,
 * heartbeats, and reconnect with capped exponential backoff and jitter
 * whenever the link drops or the broker refuses it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct event_base;
struct link;
struct npufarm_err;

/* Link events for the rest of the agent; frames other than welcome, error
 * and ack go to frame_fn. */
typedef void link_event_fn(void *arg, bool up);
typedef void link_frame_fn(void *arg, const char *type, json_t *v);

struct link_config {
	const char *broker;   /* "HOST:PORT" of the farm port */
	const char *name;     /* unique board name */
	const char *key;      /* device key */
	const char *tags;     /* JSON object text of tags, or NULL */
	bool tvm;             /* offers TVM sessions (--tvm-runtime given) */
	const char *token;    /* the agent token for the hello, or NULL */
	link_event_fn *event; /* up (welcomed) and down; may be NULL */
	link_frame_fn *frame; /* may be NULL */
	void *arg;
};

int link_new(struct event_base *base, const struct link_config *cfg,
    struct link **ret_link, struct npufarm_err *err);
struct link *link_free(struct link *l);
bool link_up(const struct link *l);
int link_send(struct link *l, json_t *v);
int link_report(struct link *l, const char *id, json_t *v);
