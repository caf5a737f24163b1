/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP API handlers.  Reads only: live state comes from the tracker and the
 * scheduler, history from the ledger (which, on the same connection, also
 * sees writes of the current iteration that are not yet committed).
 */
#include "config.h"

#include "http_api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "agent_link.h"
#include "auth.h"
#include "dashboard.h"
#include "err.h"
#include "jobs_api.h"
#include "json_util.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "scheduler.h"
#include "server.h"
#include "tracker.h"

#define HTTP_LEASES_DEFAULT 50
#define HTTP_LEASES_MAX     1000
#define HTTP_MAX_BODY       (64 * 1024)
#define HTTP_MAX_HEAD       (16 * 1024)
#define HTTP_IDLE_TIMEOUT   30
#define HTTP_SWEEP_US       250000 /* forgetting finished ones */

/*
 * What the API watches of each connection, ahead of evhttp (libevent 2.1
 * has no hook between a request's headers and its body): the bytes as
 * they arrive, through a callback on the input buffer of the bufferevent
 * we make for evhttp.  From them it knows each request's head in time to
 * refuse a body it would not accept (no token, too large) before reading
 * it, and it gives every head an absolute deadline.  It holds a reference
 * on the bufferevent; evhttp freeing it (callbacks cleared) ends the
 * connection's slot under max_http_connections.
 */
enum http_conn_state {
	HTTP_CONN_HEAD, /* reading a request head */
	HTTP_CONN_BODY, /* skipping a body of known length */
	HTTP_CONN_DONE, /* refused (or past what we parse): ignore bytes */
};

struct http_conn {
	struct http_api *api;    /* borrowed */
	struct bufferevent *bev; /* our reference; evhttp owns the rest */
	struct event *deadline;  /* the head must be complete by then */
	struct event *refuse_ev; /* sends the refusal, outside callbacks */
	enum http_conn_state state;
	uint64_t body_left; /* HTTP_CONN_BODY: bytes still to skip */
	int code;           /* the refusal: status, reason, JSON message */
	const char *reason;
	char msg[200];
	size_t nhead;
	char head[HTTP_MAX_HEAD];
	TAILQ_ENTRY(http_conn) link;
};

struct http_api {
	struct server *srv; /* borrowed, outlives the api */
	struct evhttp *http;
	struct evconnlistener *listener; /* borrowed: evhttp's */
	struct event *sweep_ev;          /* forgets connections evhttp freed */
	TAILQ_HEAD(, http_conn) conns;
	size_t nconns;
	time_t last_log; /* per-peer complaints: one line a second */
	unsigned long quiet;
	char address[NETADDR_STRLEN];
};

void
http_api_reply_json(
    struct evhttp_request *req, int code, const char *reason, json_t *v)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	char *s =
	    v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;

	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	if (s == NULL) {
		evbuffer_add_printf(out, "{\"error\":\"out of memory\"}\n");
		evhttp_send_reply(req, 500, "Internal Server Error", NULL);
		return;
	}
	evbuffer_add(out, s, strlen(s));
	evbuffer_add(out, "\n", 1);
	free(s);
	evhttp_send_reply(req, code, reason, NULL);
}

/* 200 with {@name: @list}; @list is borrowed. */
static void
reply_list(struct evhttp_request *req, const char *name, json_t *list)
{
	json_t *v = json_pack("{sO}", name, list);

	http_api_reply_json(req, 200, "OK", v);
	json_decref(v);
}

void
http_api_reply_error(
    struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	json_t *v = json_pack("{ss}", "error", msg);

	http_api_reply_json(req, code, reason, v);
	json_decref(v);
}

struct boards_ctx {
	json_t *list;
	json_t *live; /* board id (as text) -> live fields */
	int64_t now;
};

static void
live_board_cb(const struct tracker_board_info *b, void *arg)
{
	struct boards_ctx *x = arg;
	char id[32];
	json_t *lease = json_null(), *task = json_null();

	if (b->lease_id != 0)
		lease = json_pack("{sIssssso so}", "id",
		    (json_int_t)b->lease_id, "user", b->lease_user, "peer",
		    b->lease_peer, "granted_at",
		    json_util_time(b->lease_granted_us), "held_seconds",
		    json_util_seconds(b->lease_granted_us, x->now));
	if (b->task.job > 0)
		task = json_pack("{sI si sI si ss so so so}", "job",
		    (json_int_t)b->task.job, "task", b->task.idx, "id",
		    (json_int_t)b->task.id, "attempt", b->task.attempt, "user",
		    b->task.user, "name", json_util_str_or_null(b->task.name),
		    "started_at", json_util_time(b->task.started_us),
		    "running_seconds",
		    json_util_seconds(b->task.started_us, x->now));
	(void)snprintf(id, sizeof(id), "%lld", (long long)b->id);
	(void)json_object_set_new(x->live, id,
	    json_pack("{sIsososs}", "free", (json_int_t)b->free, "lease", lease,
		"task", task, "relay", b->relay));
}

static void
agent_cb(int64_t board_id, int64_t heard_us, void *arg)
{
	struct boards_ctx *x = arg;
	json_t *live;
	char id[32];

	(void)snprintf(id, sizeof(id), "%lld", (long long)board_id);
	live = json_object_get(x->live, id);
	if (live == NULL) {
		live = json_object();
		if (live == NULL || json_object_set_new(x->live, id, live) < 0)
			return;
	}
	(void)json_object_set_new(live, "heartbeat", json_util_time(heard_us));
}

static int
ledger_board_cb(const struct ledger_board *b, void *arg)
{
	struct boards_ctx *x = arg;
	json_t *live, *lease, *task, *tags, *v;
	char id[32];

	(void)snprintf(id, sizeof(id), "%lld", (long long)b->id);
	live = json_object_get(x->live, id);
	lease = json_object_get(live, "lease");
	task = json_object_get(live, "task");
	v = json_pack("{sIsssssssssssIsososOsosO}", "id", (json_int_t)b->id,
	    "name", b->name, "kind", b->kind, "key", b->key, "address",
	    b->address, "state", b->state, "free",
	    json_integer_value(json_object_get(live, "free")), "first_seen",
	    json_util_time(b->first_seen_us), "last_seen",
	    json_util_time(b->last_seen_us), "lease",
	    lease ? lease : json_null(), "detail",
	    json_util_str_or_null(b->detail), "task",
	    task ? task : json_null());
	if (v != NULL && strcmp(b->kind, "agent") == 0 &&
	    json_object_set(v, "heartbeat",
		json_object_get(live, "heartbeat")
		    ? json_object_get(live, "heartbeat")
		    : json_null()) < 0) {
		json_decref(v);
		return -ENOMEM;
	}
	if (v == NULL)
		return -ENOMEM;
	tags = b->tags != NULL ? json_loads(b->tags, 0, NULL) : NULL;
	if (json_object_set_new(v, "drained", json_boolean(b->drained)) < 0 ||
	    json_object_set_new(
		v, "tags", tags != NULL ? tags : json_object()) < 0 ||
	    json_object_set(v, "relay",
		json_object_get(live, "relay") ? json_object_get(live, "relay")
					       : json_null()) < 0 ||
	    json_object_set_new(v, "runs", json_integer(b->runs)) < 0 ||
	    json_object_set_new(v, "failures", json_integer(b->failures)) < 0) {
		json_decref(v);
		return -ENOMEM;
	}
	return json_array_append_new(x->list, v) < 0 ? -ENOMEM : 0;
}

static void
get_boards(struct http_api *api, struct evhttp_request *req)
{
	struct boards_ctx x = {
	    .list = json_array(),
	    .live = json_object(),
	    .now = ledger_now_us(),
	};
	struct npufarm_err err;

	if (x.list == NULL || x.live == NULL)
		goto oom;
	(void)tracker_flush_boards(api->srv->tracker);
	/* Read our own writes; a failed batch was already logged. */
	(void)ledger_sync(api->srv->ledger, NULL);
	tracker_foreach_board(api->srv->tracker, live_board_cb, &x);
	agent_link_foreach(api->srv->links, agent_cb, &x);
	if (ledger_foreach_board(api->srv->ledger, ledger_board_cb, &x, &err) !=
	    0) {
		http_api_reply_error(
		    req, 500, "Internal Server Error", err.msg);
		goto out;
	}
	reply_list(req, "boards", x.list);
	goto out;
oom:
	http_api_reply_error(
	    req, 500, "Internal Server Error", "out of memory");
out:
	json_decref(x.list);
	json_decref(x.live);
}

struct queue_ctx {
	json_t *requests;
	int64_t now;
};

static void
request_cb(const struct tracker_request_info *r, void *arg)
{
	struct queue_ctx *x = arg;

	json_t *v = json_pack("{ss ss so so so so}", "kind", r->kind, "user",
	    r->user, "peer", json_util_str_or_null(r->peer), "priority",
	    json_util_number(r->priority), "requested_at",
	    json_util_time(r->requested_us), "waited_seconds",
	    json_util_seconds(r->requested_us, x->now));

	if (v != NULL && r->job > 0) {
		(void)json_object_set_new(v, "job", json_integer(r->job));
		(void)json_object_set_new(v, "task", json_integer(r->task_idx));
	}
	(void)json_array_append_new(x->requests, v);
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(sched_queue_key(*(struct sched_queue *const *)a),
	    sched_queue_key(*(struct sched_queue *const *)b));
}

static void
get_queue(struct http_api *api, struct evhttp_request *req)
{
	struct sched *s = api->srv->sched;
	size_t n = sched_queue_count(s), i = 0;
	struct sched_queue **qs, *q;
	json_t *list = json_array(), *v;

	qs = calloc(n ? n : 1, sizeof(*qs));
	if (qs == NULL || list == NULL)
		goto oom;
	for (q = sched_queue_first(s); q; q = sched_queue_next(q))
		qs[i++] = q;
	qsort(qs, n, sizeof(*qs), key_cmp);
	for (i = 0; i < n; i++) {
		struct queue_ctx x = {json_array(), ledger_now_us()};

		if (x.requests == NULL)
			goto oom;
		tracker_foreach_request(
		    api->srv->tracker, sched_queue_key(qs[i]), request_cb, &x);
		v = json_pack("{sssIsIsIsIso}", "key", sched_queue_key(qs[i]),
		    "boards", (json_int_t)sched_queue_boards(qs[i]), "free",
		    (json_int_t)sched_queue_free(qs[i]), "leased",
		    (json_int_t)sched_queue_leased(qs[i]), "waiting",
		    (json_int_t)sched_queue_waiting(qs[i]), "requests",
		    x.requests);
		if (v == NULL || json_array_append_new(list, v) < 0)
			goto oom;
	}
	reply_list(req, "queues", list);
	goto out;
oom:
	http_api_reply_error(
	    req, 500, "Internal Server Error", "out of memory");
out:
	free(qs);
	json_decref(list);
}

static int
lease_cb(const struct ledger_lease *l, void *arg)
{
	json_t *list = arg, *v;

	v = json_pack("{sI ss ss ss so so so so so so so so so so so}", "id",
	    (json_int_t)l->id, "key", l->key, "user", l->user, "peer", l->peer,
	    "priority", json_util_number(l->priority), "board_id",
	    l->board_id ? json_integer(l->board_id) : json_null(), "board",
	    json_util_str_or_null(l->board), "matchkey",
	    json_util_str_or_null(l->matchkey), "requested_at",
	    json_util_time(l->requested_us), "granted_at",
	    json_util_time(l->granted_us), "released_at",
	    json_util_time(l->released_us), "wait_seconds",
	    json_util_seconds(l->requested_us, l->granted_us), "held_seconds",
	    json_util_seconds(l->granted_us, l->released_us), "outcome",
	    json_util_str_or_null(l->outcome), "detail",
	    json_util_str_or_null(l->detail));
	if (v == NULL)
		return -ENOMEM;
	/* Relayed sessions: what the broker saw of them. */
	if (json_object_set_new(v, "session",
		l->session.start_us == 0
		    ? json_null()
		    : json_pack("{sosososIsIsIsI}", "started_at",
			  json_util_time(l->session.start_us), "ended_at",
			  json_util_time(l->released_us), "seconds",
			  json_util_seconds(
			      l->session.start_us, l->released_us),
			  "requests", (json_int_t)l->session.requests,
			  "exceptions", (json_int_t)l->session.exceptions,
			  "bytes_to_board",
			  (json_int_t)l->session.bytes_to_board,
			  "bytes_to_client",
			  (json_int_t)l->session.bytes_to_client)) < 0) {
		json_decref(v);
		return -ENOMEM;
	}
	return json_array_append_new(list, v) < 0 ? -ENOMEM : 0;
}

static void
get_leases(struct http_api *api, struct evhttp_request *req)
{
	struct evkeyvalq q;
	struct npufarm_err err;
	const char *s;
	json_t *list;
	long limit = HTTP_LEASES_DEFAULT;
	char *end;

	TAILQ_INIT(&q);
	s = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (evhttp_parse_query_str(s ? s : "", &q) < 0) {
		http_api_reply_error(
		    req, 400, "Bad Request", "malformed query string");
		return;
	}
	s = evhttp_find_header(&q, "limit");
	if (s != NULL) {
		errno = 0;
		limit = strtol(s, &end, 10);
		if (*s == '\0' || *end != '\0' || errno != 0 || limit < 1 ||
		    limit > HTTP_LEASES_MAX) {
			char msg[128];

			(void)snprintf(msg, sizeof(msg),
			    "limit: expected an integer 1..%d",
			    HTTP_LEASES_MAX);
			evhttp_clear_headers(&q);
			http_api_reply_error(req, 400, "Bad Request", msg);
			return;
		}
	}
	evhttp_clear_headers(&q);
	(void)ledger_sync(api->srv->ledger, NULL);
	list = json_array();
	if (list == NULL || ledger_foreach_lease(api->srv->ledger, (int)limit,
				lease_cb, list, &err) != 0) {
		json_decref(list);
		http_api_reply_error(req, 500, "Internal Server Error",
		    list ? err.msg : "out of memory");
		return;
	}
	reply_list(req, "leases", list);
	json_decref(list);
}

/* GET /metrics: the Prometheus text exposition (metrics.c). */
static void
get_metrics(struct http_api *api, struct evhttp_request *req)
{
	if (metrics_write(api->srv->metrics, api->srv,
		evhttp_request_get_output_buffer(req)) < 0) {
		(void)evbuffer_drain(
		    evhttp_request_get_output_buffer(req), (size_t)-1);
		http_api_reply_error(
		    req, 500, "Internal Server Error", "out of memory");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", NULL);
}

/*
 * POST /v1/boards/{id}/drain and /undrain: no new leases for a drained
 * board; a running lease finishes.  The mark is kept in the ledger.
 */
static void
post_drain(
    struct http_api *api, struct evhttp_request *req, int64_t id, bool on)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const char *reason = NULL, *user = NULL;
	struct npufarm_err err;
	json_t *body = NULL, *v;
	json_error_t jerr;
	char *peer = NULL, actor[160];
	ev_uint16_t port;
	int live;

	/* Optional: {"reason": WHY, "user": WHO} (docs/api.md). */
	if (evbuffer_get_length(in) > 0 &&
	    (json_util_load((const char *)evbuffer_pullup(in, -1),
		 evbuffer_get_length(in), 4, &body, &err) < 0 ||
		json_unpack_ex(body, &jerr, JSON_STRICT, "{s?s, s?s}", "reason",
		    &reason, "user", &user) < 0)) {
		http_api_reply_error(req, 400, "Bad Request",
		    body == NULL ? err.msg : jerr.text);
		json_decref(body);
		return;
	}
	evhttp_connection_get_peer(evcon, &peer, &port);
	(void)snprintf(actor, sizeof(actor), "%.64s@%.64s",
	    user != NULL && user[0] != '\0' ? user : "api",
	    peer != NULL ? peer : "unknown");
	if (ledger_board_drain(
		api->srv->ledger, id, on, ledger_now_us(), &err) < 0 ||
	    ledger_event_by(api->srv->ledger,
		on ? "board_drain" : "board_undrain", id, reason, actor,
		ledger_now_us(), &err) < 0) {
		http_api_reply_error(req, 404, "Not Found", err.msg);
		json_decref(body);
		return;
	}
	live = tracker_board_drain(api->srv->tracker, id, on);
	if (!on)
		(void)agent_link_undrain(api->srv->links, id);
	(void)tracker_flush_boards(api->srv->tracker);
	log_notice("board %lld %s through the API by %s%s%s (%d live "
		   "registrations)",
	    (long long)id, on ? "drained" : "undrained", actor,
	    reason ? ": " : "", reason ? reason : "", live);
	v = json_pack("{sIsbsbsoss}", "id", (json_int_t)id, "drained", on,
	    "live", live > 0, "reason", json_util_str_or_null(reason), "by",
	    actor);
	http_api_reply_json(req, 200, "OK", v);
	json_decref(v);
	json_decref(body);
}

/* /v1/boards/{id}/{drain|undrain}: 1 handled, 0 not this route. */
static int
route_board_action(
    struct http_api *api, struct evhttp_request *req, const char *path)
{
	static const char prefix[] = "/v1/boards/";
	long long id;
	char action[16];
	int n = 0;

	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	if (sscanf(path + sizeof(prefix) - 1, "%lld/%15[a-z]%n", &id, action,
		&n) != 2 ||
	    path[sizeof(prefix) - 1 + (size_t)n] != '\0' || id <= 0 ||
	    (strcmp(action, "drain") != 0 && strcmp(action, "undrain") != 0))
		return 0;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		http_api_reply_error(req, 405, "Method Not Allowed",
		    "drain and undrain take POST");
		return 1;
	}
	post_drain(api, req, (int64_t)id, strcmp(action, "drain") == 0);
	return 1;
}

static void
dispatch_cb(struct evhttp_request *req, void *arg)
{
	static const struct {
		const char *path;
		void (*fn)(struct http_api *, struct evhttp_request *);
	} routes[] = {
	    {"/v1/boards", get_boards},
	    {"/v1/queue", get_queue},
	    {"/v1/leases", get_leases},
	    {"/metrics", get_metrics},
	};
	struct http_api *api = arg;
	const char *path;
	size_t i;
	int scope;

	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path != NULL && dashboard_route(req, path))
		return;
	/* The page is public; everything else may need a token (auth.c). */
	scope = auth_http(api->srv->auth, req,
	    auth_route_scope(evhttp_request_get_command(req), path));
	if (scope < 0)
		return;
	for (i = 0; path != NULL && i < sizeof(routes) / sizeof(routes[0]);
	     i++) {
		if (strcmp(path, routes[i].path) != 0)
			continue;
		if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
			http_api_reply_error(req, 405, "Method Not Allowed",
			    "only GET is allowed here");
			return;
		}
		routes[i].fn(api, req);
		return;
	}
	if (path != NULL && route_board_action(api, req, path))
		return;
	if (path != NULL &&
	    jobs_api_route(api->srv, req, path, scope == AUTH_SCOPE_ADMIN))
		return;
	http_api_reply_error(req, 404, "Not Found", "no such API path");
}

/* ---- connections: cap, deadlines, refusing bodies on their headers ---- */

/* Log a complaint about a peer at most once a second (with a count). */
static void complain(struct http_api *api, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void refuse(struct http_conn *hc, int code, const char *reason,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
complain(struct http_api *api, const char *fmt, ...)
{
	time_t now = time(NULL);
	char msg[400];
	va_list ap;

	if (now == api->last_log) {
		api->quiet++;
		return;
	}
	api->last_log = now;
	if (api->quiet > 0)
		log_warn(
		    "HTTP API: %lu similar messages suppressed", api->quiet);
	api->quiet = 0;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s", msg);
}

static void
http_conn_free(struct http_conn *hc)
{
	TAILQ_REMOVE(&hc->api->conns, hc, link);
	hc->api->nconns--;
	if (hc->deadline != NULL)
		event_free(hc->deadline);
	if (hc->refuse_ev != NULL)
		event_free(hc->refuse_ev);
	bufferevent_free(hc->bev); /* drops our reference */
	free(hc);
}

/* Whether evhttp has freed @hc's connection (it clears the callbacks). */
static bool
http_conn_gone(const struct http_conn *hc)
{
	bufferevent_data_cb rd, wr;
	bufferevent_event_cb ev;

	bufferevent_getcb(hc->bev, &rd, &wr, &ev, NULL);
	return rd == NULL && wr == NULL && ev == NULL;
}

static void
sweep(struct http_api *api)
{
	struct http_conn *hc, *next;

	for (hc = TAILQ_FIRST(&api->conns); hc != NULL; hc = next) {
		next = TAILQ_NEXT(hc, link);
		if (http_conn_gone(hc))
			http_conn_free(hc);
	}
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_api *api = arg;

	sweep(api);
	if (TAILQ_EMPTY(&api->conns))
		(void)event_del(api->sweep_ev);
}

/*
 * Answer @hc's peer with the refusal in @hc and end the connection: the
 * reply is written straight to the socket (a few hundred bytes) and evhttp
 * is told the peer is gone, so it frees its side without reading on.
 */
static void
refuse_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *hc = arg;
	char body[300], reply[600];
	json_t *v;
	char *text;
	int n;

	if (http_conn_gone(hc))
		return;
	v = json_pack("{ss}", "error", hc->msg);
	text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
	json_decref(v);
	(void)snprintf(body, sizeof(body), "%s\n",
	    text != NULL ? text : "{\"error\":\"refused\"}");
	free(text);
	n = snprintf(reply, sizeof(reply),
	    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
	    hc->code, hc->reason, strlen(body),
	    hc->code == 401 ? "WWW-Authenticate: Bearer realm=\"npufarm\"\r\n"
			    : "",
	    body);
	if (n > 0 && (size_t)n < sizeof(reply))
		(void)send(bufferevent_getfd(hc->bev), reply, (size_t)n,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)shutdown(bufferevent_getfd(hc->bev), SHUT_WR);
	bufferevent_trigger_event(hc->bev, BEV_EVENT_EOF, 0);
}

static void
refuse(struct http_conn *hc, int code, const char *reason, const char *fmt, ...)
{
	va_list ap;
	struct evbuffer *in = bufferevent_get_input(hc->bev);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char peer[NETADDR_STRLEN] = "a peer";

	hc->state = HTTP_CONN_DONE;
	hc->code = code;
	hc->reason = reason;
	va_start(ap, fmt);
	(void)vsnprintf(hc->msg, sizeof(hc->msg), fmt, ap);
	va_end(ap);
	/* Nothing more is read, and evhttp parses nothing of what was. */
	bufferevent_disable(hc->bev, EV_READ);
	(void)evbuffer_drain(in, evbuffer_get_length(in));
	if (getpeername(
		bufferevent_getfd(hc->bev), (struct sockaddr *)&ss, &sl) == 0)
		netaddr_format((struct sockaddr *)&ss, peer, sizeof(peer));
	complain(
	    hc->api, "HTTP API: refusing a request (%s): %s", peer, hc->msg);
	event_active(hc->refuse_ev, EV_TIMEOUT, 0);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *hc = arg;
	char secs[32];

	if (http_conn_gone(hc) || hc->state != HTTP_CONN_HEAD)
		return;
	(void)snprintf(
	    secs, sizeof(secs), "%g", hc->api->srv->cfg->handshake_timeout);
	refuse(hc, 408, "Request Timeout",
	    "the request head did not arrive within %s s%s", secs,
	    " (handshake_timeout)");
}

/*
 * The value of header @name among the @n NUL-terminated lines at @h (the
 * request line first), trailing blanks cut; NULL when absent.
 */
static const char *
head_value(const char *h, const char *end, const char *name)
{
	size_t n = strlen(name);

	for (h += strlen(h) + 1; h < end; h += strlen(h) + 1)
		if (strncasecmp(h, name, n) == 0 && h[n] == ':')
			return h + n + 1 + strspn(h + n + 1, " \t");
	return NULL;
}

/* The body limit of @method @path: artifacts, jobs, everything else. */
static uint64_t
route_limit(
    const struct broker_config *cfg, const char *method, const char *path)
{
	if (strcmp(method, "PUT") == 0 &&
	    strncmp(path, "/v1/artifacts/", 14) == 0)
		return (uint64_t)cfg->max_artifact;
	if (strcmp(method, "POST") == 0 && strcmp(path, "/v1/jobs") == 0)
		return (uint64_t)cfg->max_job_body;
	return HTTP_MAX_BODY;
}

/*
 * A whole request head is in @hc->head: decide on its body before a byte
 * of it is read.  Requests without a body go on to evhttp, whose handlers
 * check the token as before.
 */
static void
head_done(struct http_conn *hc)
{
	struct server *srv = hc->api->srv;
	char *h = hc->head, *end = hc->head + hc->nhead, *p;
	char method[16] = "", path[256] = "", lim[32], len[32], what[320];
	const char *cl, *te, *q;
	unsigned long long n = 0;
	uint64_t limit;
	int r;

	/* Lines end in \n (evhttp accepts a bare \n too): cut them, and
	 * the blanks before each end. */
	for (p = h; p < end; p++)
		if (*p == '\n') {
			char *t = p;

			*p = '\0';
			while (t > h &&
			       (t[-1] == '\r' || t[-1] == ' ' || t[-1] == '\t'))
				*--t = '\0';
		}
	if (sscanf(h, "%15s %255s", method, path) != 2)
		return; /* evhttp answers 400 */
	q = strchr(path, '?');
	if (q != NULL)
		path[q - path] = '\0';
	cl = head_value(h, end, "Content-Length");
	te = head_value(h, end, "Transfer-Encoding");
	if (cl != NULL)
		n = strtoull(cl, NULL, 10);
	if (te != NULL && strncasecmp(te, "identity", 8) != 0) {
		refuse(hc, 411, "Length Required",
		    "%s %s: send the body with a Content-Length, not chunked",
		    method, path);
		return;
	}
	if (n == 0) {
		hc->state = HTTP_CONN_HEAD;
		return;
	}
	r = auth_http_check(srv->auth, head_value(h, end, "Authorization"),
	    auth_route_scope(strcmp(method, "POST") == 0  ? EVHTTP_REQ_POST
			     : strcmp(method, "PUT") == 0 ? EVHTTP_REQ_PUT
							  : EVHTTP_REQ_GET,
		path));
	if (r == -ENOKEY || r == -EKEYREJECTED) {
		refuse(hc, 401, "Unauthorized", "%s%s",
		    r == -ENOKEY ? AUTH_MSG_NO_TOKEN : AUTH_MSG_BAD_TOKEN,
		    " (before its body was read)");
		return;
	}
	limit = route_limit(srv->cfg, method, path);
	if (n > limit) {
		(void)snprintf(len, sizeof(len), "%llu", n);
		(void)snprintf(
		    lim, sizeof(lim), "%llu", (unsigned long long)limit);
		(void)snprintf(what, sizeof(what), "%s %s: a body of %s bytes",
		    method, path, len);
		refuse(hc, 413, "Payload Too Large",
		    "%s is over this route's limit of %s bytes", what, lim);
		return;
	}
	hc->body_left = n;
	hc->state = HTTP_CONN_BODY;
}

/* The head now coming must be whole within handshake_timeout. */
static void
deadline_arm(struct http_conn *hc)
{
	double d = hc->api->srv->cfg->handshake_timeout;
	struct timeval tv = {
	    (time_t)d, (suseconds_t)((d - (double)(time_t)d) * 1e6)};

	(void)evtimer_add(hc->deadline, &tv);
}

/* Account @len bytes of the stream at @p. */
static void
watch_bytes(struct http_conn *hc, const char *p, size_t len)
{
	while (len > 0 && hc->state != HTTP_CONN_DONE) {
		if (hc->state == HTTP_CONN_BODY) {
			size_t k =
			    hc->body_left < len ? (size_t)hc->body_left : len;

			hc->body_left -= k;
			p += k;
			len -= k;
			if (hc->body_left == 0)
				hc->state = HTTP_CONN_HEAD;
			continue;
		}
		if (!evtimer_pending(hc->deadline, NULL))
			deadline_arm(hc);
		if (hc->nhead == sizeof(hc->head)) {
			hc->state = HTTP_CONN_DONE; /* evhttp answers 400 */
			break;
		}
		hc->head[hc->nhead++] = *p++;
		len--;
		if (hc->nhead >= 2 && hc->head[hc->nhead - 1] == '\n' &&
		    (hc->head[hc->nhead - 2] == '\n' ||
			(hc->nhead >= 3 && hc->head[hc->nhead - 2] == '\r' &&
			    hc->head[hc->nhead - 3] == '\n'))) {
			/* Blank lines before a request are not its end. */
			if (strspn(hc->head, "\r\n") == hc->nhead) {
				hc->nhead = 0;
				continue;
			}
			(void)evtimer_del(hc->deadline);
			hc->state = HTTP_CONN_HEAD;
			head_done(hc);
			hc->nhead = 0;
		}
	}
}

static void
input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct http_conn *hc = arg;
	struct evbuffer_ptr pos;
	size_t len = evbuffer_get_length(buf), off;
	char chunk[4096];

	if (info->n_added == 0)
		return;
	if (http_conn_gone(hc)) {
		/* evhttp is done with it; until sweep(), read nothing. */
		bufferevent_disable(hc->bev, EV_READ | EV_WRITE);
		(void)evbuffer_drain(buf, len);
		return;
	}
	if (hc->state == HTTP_CONN_DONE || len < info->n_added)
		return;
	off = len - info->n_added;
	while (off < len && hc->state != HTTP_CONN_DONE) {
		size_t k =
		    len - off < sizeof(chunk) ? len - off : sizeof(chunk);

		if (hc->state == HTTP_CONN_BODY && hc->body_left >= len - off) {
			/* Body bytes: count them without copying. */
			hc->body_left -= len - off;
			if (hc->body_left == 0)
				hc->state = HTTP_CONN_HEAD;
			break;
		}
		if (evbuffer_ptr_set(buf, &pos, off, EVBUFFER_PTR_SET) < 0 ||
		    evbuffer_copyout_from(buf, &pos, chunk, k) != (ev_ssize_t)k)
			break;
		watch_bytes(hc, chunk, k);
		off += k;
	}
}

/*
 * evhttp's hook for a new connection's bufferevent: we make it, watch its
 * input, and refuse the connection beyond max_http_connections.
 */
static struct bufferevent *
bev_cb(struct event_base *base, void *arg)
{
	struct http_api *api = arg;
	struct http_conn *hc;
	struct bufferevent *bev;
	char n[32];

	sweep(api);
	/* BEV_OPT_CLOSE_ON_FREE: evhttp only shuts the socket down when it
	 * is done (the peer sees its EOF at once), and the socket stays ours
	 * until sweep() drops our reference, so its number cannot be reused
	 * while the bufferevent's events still refer to it.  input_cb() stops
	 * a finished connection's reads at the first one. */
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	hc = bev != NULL ? calloc(1, sizeof(*hc)) : NULL;
	if (hc == NULL)
		return bev; /* evhttp copes, unwatched; OOM is logged there */
	hc->api = api;
	hc->bev = bev;
	hc->deadline = evtimer_new(base, deadline_cb, hc);
	hc->refuse_ev = evtimer_new(base, refuse_cb, hc);
	if (hc->deadline == NULL || hc->refuse_ev == NULL) {
		if (hc->deadline != NULL)
			event_free(hc->deadline);
		if (hc->refuse_ev != NULL)
			event_free(hc->refuse_ev);
		free(hc);
		return bev;
	}
	bufferevent_incref(bev);
	TAILQ_INSERT_TAIL(&api->conns, hc, link);
	api->nconns++;
	if (!event_pending(api->sweep_ev, EV_TIMEOUT, NULL)) {
		struct timeval tv = {0, HTTP_SWEEP_US};

		(void)event_add(api->sweep_ev, &tv);
	}
	if (api->nconns > (size_t)api->srv->cfg->max_http_connections) {
		(void)snprintf(
		    n, sizeof(n), "%ld", api->srv->cfg->max_http_connections);
		refuse(hc, 503, "Service Unavailable",
		    "too many connections to the API (limit "
		    "max_http_connections=%s); try again later",
		    n);
	}
	(void)evbuffer_add_cb(bufferevent_get_input(bev), input_cb, hc);
	/* The first head is due from accept: a connection that sends
	 * nothing holds a descriptor only that long (later ones, from their
	 * first byte; between requests evhttp's idle timeout applies). */
	deadline_arm(hc);
	return bev;
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)evconnlistener_enable(arg);
}

/*
 * accept() failed (EMFILE and friends): pause accepting for a second
 * instead of spinning on the ready socket (which also bounds the log to a
 * line a second).  libevent hands us evhttp's pointer, not ours: the
 * listener itself is all this needs.
 */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct timeval one = {1, 0};
	int e = EVUTIL_SOCKET_ERROR();

	(void)evconnlistener_disable(l);
	if (event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT,
		resume_cb, l, &one) < 0)
		(void)evconnlistener_enable(l);
	log_warn("HTTP API: accept failed: %s; pausing accepts for 1 s",
	    strerror(e));
}

/*
 * Serve the API on @addr ("HOST:PORT"; port 0 picks one).  Returns 0, or
 * -EADDRINUSE and friends with the address in @err.
 */
int
http_api_new(struct server *srv, const char *addr, struct http_api **ret_api,
    struct npufarm_err *err)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NETADDR_STRLEN];
	struct http_api *api;
	unsigned port;
	int r;

	r = netaddr_split(addr, host, sizeof(host), &port, err);
	if (r < 0)
		return r;
	api = calloc(1, sizeof(*api));
	if (api == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	api->srv = srv;
	TAILQ_INIT(&api->conns);
	api->http = evhttp_new(srv->base);
	api->sweep_ev = event_new(srv->base, -1, EV_PERSIST, sweep_cb, api);
	if (api->http == NULL || api->sweep_ev == NULL) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	/* Artifacts are the largest bodies (a job's tasks come next). */
	evhttp_set_max_body_size(
	    api->http, srv->cfg->max_artifact > HTTP_MAX_BODY
			   ? (ev_ssize_t)srv->cfg->max_artifact
			   : HTTP_MAX_BODY);
	evhttp_set_max_headers_size(api->http, HTTP_MAX_HEAD);
	evhttp_set_timeout(api->http, HTTP_IDLE_TIMEOUT);
	evhttp_set_bevcb(api->http, bev_cb, api);
	evhttp_set_allowed_methods(
	    api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
			   EVHTTP_REQ_HEAD | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(api->http, dispatch_cb, api);
	bs = evhttp_bind_socket_with_handle(api->http, host, (uint16_t)port);
	if (bs == NULL || getsockname(evhttp_bound_socket_get_fd(bs),
			      (struct sockaddr *)&ss, &len) < 0) {
		r = err_set(err, -EADDRINUSE, "http %s: cannot bind: %s", addr,
		    strerror(errno));
		goto fail;
	}
	api->listener = evhttp_bound_socket_get_listener(bs);
	evconnlistener_set_error_cb(api->listener, accept_error_cb);
	netaddr_format(
	    (struct sockaddr *)&ss, api->address, sizeof(api->address));
	log_notice("HTTP API listening on %s", api->address);
	*ret_api = api;
	return 0;
fail:
	http_api_free(api);
	return r;
}

/* Stop serving and free.  Accepts NULL; returns NULL. */
struct http_api *
http_api_free(struct http_api *api)
{
	if (api == NULL)
		return NULL;
	if (api->http != NULL)
		evhttp_free(api->http); /* frees every connection */
	while (!TAILQ_EMPTY(&api->conns))
		http_conn_free(TAILQ_FIRST(&api->conns));
	if (api->sweep_ev != NULL)
		event_free(api->sweep_ev);
	free(api);
	return NULL;
}

/* The bound "HOST:PORT" (borrowed, lives as long as @api). */
const char *
http_api_address(const struct http_api *api)
{
	return api->address;
}
