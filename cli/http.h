/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A blocking HTTP/1.1 request on top of libevent's evhttp client, for a CLI
 * that makes one request at a time.  Each call runs its own event_base.
 */
#pragma once

#include <stddef.h>

#include <event2/http.h>

struct npufarm_err;

/* Largest response body accepted; a /v1/leases?limit=1000 reply is ~0.5 MiB. */
#define HTTP_MAX_BODY (64 * 1024 * 1024)

struct http_reply {
	int status;      /* HTTP status code, e.g. 200 */
	char reason[64]; /* its reason phrase, e.g. "Not Found", maybe cut */
	char *body;      /* owned, NUL-terminated (the body may hold NULs) */
	size_t len;      /* bytes in body, without the terminator */
};

/* A request body, borrowed for the duration of the call. */
struct http_body {
	const void *data;
	size_t len;
	const char *type; /* Content-Type, e.g. "application/json" */
};

int http_get(const char *base_url, const char *path, int timeout_ms,
    struct http_reply *ret_reply, struct npufarm_err *err);
int http_request(const char *base_url, enum evhttp_cmd_type cmd,
    const char *path, int timeout_ms, struct http_reply *ret_reply,
    struct npufarm_err *err);
int http_send(const char *base_url, enum evhttp_cmd_type cmd, const char *path,
    const struct http_body *body, int timeout_ms, struct http_reply *ret_reply,
    struct npufarm_err *err);
void http_reply_deinit(struct http_reply *reply);
void http_set_bearer(const char *token);
