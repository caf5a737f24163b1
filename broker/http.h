/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP API's server (docs/api.md) on libevent's evhttp: connections
 * (a cap, head deadlines, bodies refused on their headers), a table of
 * routes {methods, path, scope, fn} that the api_*.c files add theirs to,
 * the JSON replies, and reads deferred until the ledger has committed
 * what the loop wrote before them (http_after_commit()).  Loop thread.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct agent_links;
struct artifacts;
struct auth;
struct broker_config;
struct event_base;
struct evhttp_request;
struct http_api;
struct jobs;
struct jobs_parse;
struct ledger;
struct metrics;
struct npufarm_err;
struct sched;
struct tracker;

/* What the routes read and act on; all borrowed (server.c fills it). */
struct http_env {
	struct event_base *base;
	const struct broker_config *cfg;
	struct ledger *ledger;
	struct sched *sched;
	struct metrics *metrics;
	struct jobs *jobs;
	struct artifacts *artifacts;
	struct jobs_parse *jobs_parse;
	struct tracker *tracker;   /* boards, leases and waiting requests */
	struct agent_links *links; /* agents' heartbeats, undrain */
};

/* One request being answered by its route. */
struct http_call {
	struct http_api *http;
	const struct http_env *env;
	struct evhttp_request *req;
	const char *path; /* without the query */
	int64_t id;       /* the path's "#" segment, or 0 */
	const char *rest; /* what the path's trailing "*" matched, or "" */
	bool admin;       /* it came with the admin scope */
	int64_t arg;      /* the route's own, for its http_after_commit() fn */
	/* In an http_after_commit() fn: NULL, or why what the loop wrote
	 * before may not be committed (a failed batch, a stopping broker). */
	const char *ledger_error;
};

typedef void http_route_fn(const struct http_call *c);

/*
 * A route.  @path is literal but for "#" (a segment holding a positive
 * integer: http_call.id), "@" (a segment of 1 to 15 lowercase letters)
 * and a final "*" (the rest of the path, maybe empty: http_call.rest).
 * A request whose path matches a route but none of its @methods gets the
 * first matching route's @no_method reply.
 */
struct http_route {
	int methods; /* EVHTTP_REQ_* bits; 0: none (a no_method answer) */
	const char *path;
	int scope; /* enum auth_scope the route needs */
	http_route_fn *fn;
	int no_method_code; /* 405 or 404 */
	const char *no_method_msg;
};

int http_new(const struct http_env *env, struct auth *auth, const char *addr,
    struct http_api **ret, struct npufarm_err *err);
void http_drain(struct http_api *h, int ms);
struct http_api *http_free(struct http_api *h);
int http_add_routes(
    struct http_api *h, const struct http_route *routes, size_t n);
void http_set_auth(struct http_api *h, struct auth *auth);
const char *http_address(const struct http_api *h);
void http_after_commit(const struct http_call *c, http_route_fn *fn);

void http_reply_json(
    struct evhttp_request *req, int code, const char *reason, json_t *v);
void http_reply_list(struct evhttp_request *req, const char *name, json_t *v);
void http_reply_error(
    struct evhttp_request *req, int code, const char *reason, const char *msg);
