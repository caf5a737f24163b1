/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/JSON API (docs/api.md) on libevent's evhttp. */
#pragma once

#include <jansson.h>

struct evhttp_request;
struct http_api;
struct npufarm_err;
struct server;

int http_api_new(struct server *srv, const char *addr,
    struct http_api **ret_api, struct npufarm_err *err);
struct http_api *http_api_free(struct http_api *api);
const char *http_api_address(const struct http_api *api);
void http_api_reply_json(
    struct evhttp_request *req, int code, const char *reason, json_t *v);
void http_api_reply_error(
    struct evhttp_request *req, int code, const char *reason, const char *msg);
