/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP replies under their names before the split into http.c and
 * the api_*.c routes.  TODO(#13): only jobs.c's waiters still use these;
 * they go when jobs_wait() answers through a callback.
 */
#pragma once

#include <jansson.h>

#include "http.h"

static inline void
http_api_reply_json(
    struct evhttp_request *req, int code, const char *reason, json_t *v)
{
	http_reply_json(req, code, reason, v);
}

static inline void
http_api_reply_error(
    struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	http_reply_error(req, code, reason, msg);
}
