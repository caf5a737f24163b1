/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.c on its own: a real evhttp on loopback with a route table of the
 * test's, a real ledger in a temp dir, requests from a client thread
 * while this thread runs the loop.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "auth.h"
#include "broker_config.h"
#include "err.h"
#include "harness.h"
#include "http.h"
#include "ledger.h"

static char dir[64], path[128];
static struct broker_config cfg;
static struct event_base *base;
static struct ledger *ledger;
static struct auth *auth;
static struct http_api *http;
static struct event *flush_ev, *notify_ev;

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	ledger_commit(ledger);
}

static void
dirty_cb(void *arg)
{
	static const struct timeval zero = {0, 0};

	(void)evtimer_add(flush_ev, &zero);
}

static void
notify_cb(evutil_socket_t fd, short what, void *arg)
{
	ledger_notified(ledger);
}

/* GET /t/#: {"id": N, "rest": ""}; GET /r/...: {"id": 0, "rest": ...}. */
static void
echo_route(const struct http_call *c)
{
	json_t *v =
	    json_pack("{sIss}", "id", (json_int_t)c->id, "rest", c->rest);

	http_reply_json(c->req, 200, "OK", v);
	json_decref(v);
}

static int
count_cb(const struct ledger_lease *l, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static void
leases_now(const struct http_call *c)
{
	struct npufarm_err err;
	json_t *v;
	int n = 0;

	ck_assert_int_eq(
	    ledger_foreach_lease(ledger, 100, count_cb, &n, &err), 0);
	v = json_pack("{si}", "leases", n);
	http_reply_json(c->req, 200, "OK", v);
	json_decref(v);
}

/* POST /w: writes a lease, answers with what a read after it sees. */
static void
write_then_read(const struct http_call *c)
{
	struct ledger_lease row = {
	    .key = "k", .user = "u", .peer = "p", .requested_us = 1};
	struct npufarm_err err;
	int64_t id;
	int n = 0;

	ck_assert_int_eq(ledger_lease_insert(ledger, &row, &id, &err), 0);
	/* Not committed yet: a read now does not see it... */
	ck_assert_int_eq(
	    ledger_foreach_lease(ledger, 100, count_cb, &n, &err), 0);
	ck_assert_int_eq(n, (int)id - 1);
	/* ... one after the commit does, and the loop did not wait. */
	http_after_commit(c, leases_now);
}

static const struct http_route routes[] = {
    {EVHTTP_REQ_GET, "/t/#", AUTH_SCOPE_READ, echo_route, 405, "GET only here"},
    {EVHTTP_REQ_GET, "/r/*", AUTH_SCOPE_READ, echo_route, 405, "GET"},
    {EVHTTP_REQ_POST, "/w", AUTH_SCOPE_READ, write_then_read, 405, "POST"},
    {0, "/t/#/@", AUTH_SCOPE_READ, NULL, 404, "no such path (or method)"},
};

static void
setup(void)
{
	struct auth_config auth_view;
	struct npufarm_err err;
	struct http_env env;

	(void)snprintf(dir, sizeof(dir), "/tmp/test-http-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/ledger.db", dir);
	broker_config_defaults(&cfg);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(ledger_open(path, true, &ledger, &err), 0);
	flush_ev = evtimer_new(base, flush_cb, NULL);
	notify_ev = event_new(base, ledger_notify_fd(ledger),
	    EV_READ | EV_PERSIST, notify_cb, NULL);
	ck_assert_int_eq(event_add(notify_ev, NULL), 0);
	ledger_set_dirty_cb(ledger, dirty_cb, NULL);
	broker_config_auth(&cfg, &auth_view);
	ck_assert_int_eq(auth_new(&auth_view, &auth, &err), 0);
	env = (struct http_env){.base = base, .cfg = &cfg, .ledger = ledger};
	ck_assert_int_eq(http_new(&env, auth, "127.0.0.1:0", &http, &err), 0);
	ck_assert_int_eq(
	    http_add_routes(http, routes, sizeof(routes) / sizeof(routes[0])),
	    0);
}

static void
teardown(void)
{
	char cmd[128];

	http = http_free(http);
	ledger = ledger_close(ledger);
	event_free(flush_ev);
	event_free(notify_ev);
	auth = auth_free(auth);
	event_base_free(base);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

struct call {
	const char *method, *path;
	char *body;
	int status;
	atomic_bool done;
};

static void *
client_main(void *arg)
{
	struct call *c = arg;

	c->body =
	    harness_http(http_address(http), c->method, c->path, &c->status);
	atomic_store(&c->done, true);
	return NULL;
}

/* @method @path against the API while this thread runs the loop. */
static char *
call(const char *method, const char *p, int *ret_status)
{
	struct call c = {.method = method, .path = p};
	pthread_t t;
	int i;

	ck_assert_int_eq(pthread_create(&t, NULL, client_main, &c), 0);
	for (i = 0; i < 5000 && !atomic_load(&c.done); i++) {
		(void)event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	ck_assert(atomic_load(&c.done));
	pthread_join(t, NULL);
	*ret_status = c.status;
	return c.body;
}

START_TEST(test_http_routes_match_by_pattern)
{
	char *b;
	int st;

	b = call("GET", "/t/5", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(b, "{\"id\":5,\"rest\":\"\"}\n");
	free(b);
	b = call("GET", "/t/+7", &st); /* as sscanf's %lld took it */
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(b, "{\"id\":7,\"rest\":\"\"}\n");
	free(b);
	b = call("GET", "/r/a/b/c", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(b, "{\"id\":0,\"rest\":\"a/b/c\"}\n");
	free(b);
	b = call("GET", "/r/", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(b, "{\"id\":0,\"rest\":\"\"}\n");
	free(b);
}
END_TEST

START_TEST(test_http_routes_refuse)
{
	char *b;
	int st;

	b = call("GET", "/t/0", &st); /* ids are above 0 */
	ck_assert_int_eq(st, 404);
	ck_assert_str_eq(b, "{\"error\":\"no such API path\"}\n");
	free(b);
	b = call("GET", "/t/5x", &st);
	ck_assert_int_eq(st, 404);
	free(b);
	b = call("POST", "/t/5", &st); /* the route's own answer */
	ck_assert_int_eq(st, 405);
	ck_assert_str_eq(b, "{\"error\":\"GET only here\"}\n");
	free(b);
	b = call("GET", "/t/5/abc", &st); /* a route without methods */
	ck_assert_int_eq(st, 404);
	ck_assert_str_eq(b, "{\"error\":\"no such path (or method)\"}\n");
	free(b);
	b = call("GET", "/t/5/abcdefghijklmnop", &st); /* 16 letters */
	ck_assert_int_eq(st, 404);
	ck_assert_str_eq(b, "{\"error\":\"no such API path\"}\n");
	free(b);
	b = call("GET", "/nowhere", &st);
	ck_assert_int_eq(st, 404);
	free(b);
}
END_TEST

/* A read after a write waits for its commit, not the loop. */
START_TEST(test_http_after_commit_reads_own_write)
{
	char *b;
	int st;

	b = call("POST", "/w", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(b, "{\"leases\":1}\n");
	free(b);
	b = call("POST", "/w", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(b, "{\"leases\":2}\n");
	free(b);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_http_routes_match_by_pattern);
	tcase_add_test(tc, test_http_routes_refuse);
	tcase_add_test(tc, test_http_after_commit_reads_own_write);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
