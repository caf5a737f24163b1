/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's link to the broker (docs/protocol.md): dial out, hello,
 * heartbeats, and reconnect with capped exponential backoff and jitter
 * whenever the link drops or the broker refuses it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct link;
struct npufarm_err;

struct link_config {
	const char *broker; /* "HOST:PORT" of the farm port */
	const char *name;   /* unique board name */
	const char *key;    /* device key */
	const char *tags;   /* JSON object text of tags, or NULL */
	bool tvm;           /* offers TVM sessions (--tvm-runtime given) */
};

int link_new(struct event_base *base, const struct link_config *cfg,
    struct link **ret_link, struct npufarm_err *err);
struct link *link_free(struct link *l);
