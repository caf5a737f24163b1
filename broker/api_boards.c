/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /v1/boards, /v1/queue, /v1/leases and POST /v1/boards/{id}/drain and
 * /undrain (docs/api.md), and the board view (api_boards.h).  Live state
 * comes from the tracker and the scheduler, history from the ledger's
 * committed rows: the reads wait (without blocking the loop) until what
 * the loop wrote before them is committed, so a client reads its own
 * writes.
 */
#include "config.h"

#include "api_boards.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "agent_link.h"
#include "auth.h"
#include "err.h"
#include "http.h"
#include "json_util.h"
#include "ledger.h"
#include "log.h"
#include "scheduler.h"
#include "tracker.h"

#define HTTP_LEASES_DEFAULT 50
#define HTTP_LEASES_MAX     1000

/* ---- the board view ------------------------------------------------- */

/* A live board, copied out of tracker_foreach_board(). */
struct view_live {
	struct tracker_board_info info; /* its strings point into strs */
	bool seen;                      /* the ledger has its row */
	char *strs[6];
};

struct view_heard {
	int64_t board_id, heard_us;
};

struct view {
	struct view_live *live;
	size_t nlive, caplive;
	struct view_heard *heard;
	size_t nheard, capheard;
	api_board_fn *fn;
	void *arg;
	int err;
};

static void *
grow(void *p, size_t *cap, size_t n, size_t size)
{
	size_t c = *cap ? 2 * *cap : 16;
	void *q;

	if (n < *cap)
		return p;
	q = realloc(p, c * size);
	if (q != NULL)
		*cap = c;
	return q;
}

static const char *
keep(char **slot, const char *s)
{
	if (s == NULL)
		return NULL;
	*slot = strdup(s);
	return *slot;
}

static void
view_live_cb(const struct tracker_board_info *b, void *arg)
{
	struct view *v = arg;
	struct view_live *l, *grown;
	bool oom;

	if (v->err < 0)
		return;
	grown = grow(v->live, &v->caplive, v->nlive, sizeof(*v->live));
	if (grown == NULL) {
		v->err = -ENOMEM;
		return;
	}
	v->live = grown;
	l = &v->live[v->nlive++];
	*l = (struct view_live){.info = *b};
	/* state and relay are static strings; the rest are copied. */
	l->info.key = keep(&l->strs[0], b->key);
	l->info.address = keep(&l->strs[1], b->address);
	l->info.lease_user = keep(&l->strs[2], b->lease_user);
	l->info.lease_peer = keep(&l->strs[3], b->lease_peer);
	l->info.task.user = keep(&l->strs[4], b->task.user);
	l->info.task.name = keep(&l->strs[5], b->task.name);
	oom = (b->key != NULL && l->info.key == NULL) ||
	      (b->address != NULL && l->info.address == NULL) ||
	      (b->lease_user != NULL && l->info.lease_user == NULL) ||
	      (b->lease_peer != NULL && l->info.lease_peer == NULL) ||
	      (b->task.user != NULL && l->info.task.user == NULL) ||
	      (b->task.name != NULL && l->info.task.name == NULL);
	if (oom)
		v->err = -ENOMEM;
}

static void
view_heard_cb(int64_t board_id, int64_t heard_us, void *arg)
{
	struct view *v = arg;
	struct view_heard *grown;

	if (v->err < 0)
		return;
	grown = grow(v->heard, &v->capheard, v->nheard, sizeof(*v->heard));
	if (grown == NULL) {
		v->err = -ENOMEM;
		return;
	}
	v->heard = grown;
	v->heard[v->nheard++] = (struct view_heard){board_id, heard_us};
}

static int
live_cmp(const void *a, const void *b)
{
	const struct view_live *x = a, *y = b;

	return (x->info.id > y->info.id) - (x->info.id < y->info.id);
}

static int
heard_cmp(const void *a, const void *b)
{
	const struct view_heard *x = a, *y = b;

	return (x->board_id > y->board_id) - (x->board_id < y->board_id);
}

static int
view_row_cb(const struct ledger_board *row, void *arg)
{
	struct view *v = arg;
	struct view_live lp = {.info = {.id = row->id}}, *l;
	struct view_heard hp = {.board_id = row->id}, *h;
	struct api_board b = {.row = row};

	l = v->nlive > 0
		? bsearch(&lp, v->live, v->nlive, sizeof(*v->live), live_cmp)
		: NULL;
	h = v->nheard > 0 ? bsearch(&hp, v->heard, v->nheard, sizeof(*v->heard),
				heard_cmp)
			  : NULL;
	if (l != NULL) {
		l->seen = true;
		b.live = &l->info;
	}
	if (h != NULL) {
		b.heard = true;
		b.heard_us = h->heard_us;
	}
	return v->fn(&b, v->arg);
}

/*
 * The boards, once: every board of the ledger's committed rows (by key,
 * then name) with its live registration and its agent's last frame, then
 * the live boards the ledger's read did not show yet (row NULL).  Call it
 * when the ledger has committed the board states (tracker_flush_boards(),
 * then http_after_commit()).  @fn returning non-zero stops the walk and
 * is returned; else 0, -ENOMEM, or the ledger's error with @err.
 */
int
api_board_view(const struct http_env *env, api_board_fn *fn, void *arg,
    struct npufarm_err *err)
{
	struct view v = {.fn = fn, .arg = arg};
	size_t i, k;
	int r;

	tracker_foreach_board(env->tracker, view_live_cb, &v);
	agent_link_foreach(env->links, view_heard_cb, &v);
	r = v.err;
	if (r < 0)
		(void)err_set(err, r, "out of memory");
	if (r >= 0) {
		if (v.nlive > 0)
			qsort(v.live, v.nlive, sizeof(*v.live), live_cmp);
		if (v.nheard > 0)
			qsort(v.heard, v.nheard, sizeof(*v.heard), heard_cmp);
		r = ledger_foreach_board(env->ledger, view_row_cb, &v, err);
	}
	for (i = 0; r == 0 && i < v.nlive; i++)
		if (!v.live[i].seen) {
			struct api_board b = {.live = &v.live[i].info};

			r = fn(&b, arg);
		}
	for (i = 0; i < v.nlive; i++)
		for (k = 0; k < 6; k++)
			free(v.live[i].strs[k]);
	free(v.live);
	free(v.heard);
	return r;
}

/* ---- GET /v1/boards ------------------------------------------------- */

struct boards_ctx {
	json_t *list;
	int64_t now;
};

static json_t *
live_lease(const struct tracker_board_info *b, int64_t now)
{
	if (b == NULL || b->lease_id == 0)
		return json_null();
	return json_pack("{sIssssso so}", "id", (json_int_t)b->lease_id, "user",
	    b->lease_user, "peer", b->lease_peer, "granted_at",
	    json_util_time(b->lease_granted_us), "held_seconds",
	    json_util_seconds(b->lease_granted_us, now));
}

static json_t *
live_task(const struct tracker_board_info *b, int64_t now)
{
	if (b == NULL || b->task.job <= 0)
		return json_null();
	return json_pack("{sI si sI si ss so so so}", "job",
	    (json_int_t)b->task.job, "task", b->task.idx, "id",
	    (json_int_t)b->task.id, "attempt", b->task.attempt, "user",
	    b->task.user, "name", json_util_str_or_null(b->task.name),
	    "started_at", json_util_time(b->task.started_us), "running_seconds",
	    json_util_seconds(b->task.started_us, now));
}

/* A board of the ledger as GET /v1/boards shows it (live ones only once
 * the ledger has them). */
static int
board_json_cb(const struct api_board *x, void *arg)
{
	struct boards_ctx *ctx = arg;
	const struct ledger_board *b = x->row;
	const struct tracker_board_info *live = x->live;
	json_t *tags, *v;

	if (b == NULL)
		return 0;
	v = json_pack("{sIsssssssssssIsososososo}", "id", (json_int_t)b->id,
	    "name", b->name, "kind", b->kind, "key", b->key, "address",
	    b->address, "state", b->state, "free",
	    (json_int_t)(live ? live->free : 0), "first_seen",
	    json_util_time(b->first_seen_us), "last_seen",
	    json_util_time(b->last_seen_us), "lease",
	    live_lease(live, ctx->now), "detail",
	    json_util_str_or_null(b->detail), "task",
	    live_task(live, ctx->now));
	if (v != NULL && strcmp(b->kind, "agent") == 0 &&
	    json_object_set_new(v, "heartbeat",
		x->heard ? json_util_time(x->heard_us) : json_null()) < 0) {
		json_decref(v);
		return -ENOMEM;
	}
	if (v == NULL)
		return -ENOMEM;
	tags = b->tags != NULL ? json_loads(b->tags, 0, NULL) : NULL;
	if (json_object_set_new(v, "drained", json_boolean(b->drained)) < 0 ||
	    json_object_set_new(
		v, "tags", tags != NULL ? tags : json_object()) < 0 ||
	    json_object_set_new(v, "relay",
		live ? json_string(live->relay) : json_null()) < 0 ||
	    json_object_set_new(v, "runs", json_integer(b->runs)) < 0 ||
	    json_object_set_new(v, "failures", json_integer(b->failures)) < 0) {
		json_decref(v);
		return -ENOMEM;
	}
	return json_array_append_new(ctx->list, v) < 0 ? -ENOMEM : 0;
}

static void
get_boards_committed(const struct http_call *c)
{
	struct boards_ctx x = {.list = json_array(), .now = ledger_now_us()};
	struct npufarm_err err;

	if (x.list == NULL)
		http_reply_error(
		    c->req, 500, "Internal Server Error", "out of memory");
	else if (api_board_view(c->env, board_json_cb, &x, &err) != 0)
		http_reply_error(c->req, 500, "Internal Server Error", err.msg);
	else
		http_reply_list(c->req, "boards", x.list);
	json_decref(x.list);
}

/* GET /v1/boards: every board, with what is live of it. */
static void
get_boards(const struct http_call *c)
{
	(void)tracker_flush_boards(c->env->tracker);
	http_after_commit(c, get_boards_committed);
}

/* ---- GET /v1/queue -------------------------------------------------- */

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
get_queue(const struct http_call *c)
{
	struct evhttp_request *req = c->req;
	struct sched *s = c->env->sched;
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
		    c->env->tracker, sched_queue_key(qs[i]), request_cb, &x);
		v = json_pack("{sssIsIsIsIso}", "key", sched_queue_key(qs[i]),
		    "boards", (json_int_t)sched_queue_boards(qs[i]), "free",
		    (json_int_t)sched_queue_free(qs[i]), "leased",
		    (json_int_t)sched_queue_leased(qs[i]), "waiting",
		    (json_int_t)sched_queue_waiting(qs[i]), "requests",
		    x.requests);
		if (v == NULL || json_array_append_new(list, v) < 0)
			goto oom;
	}
	http_reply_list(req, "queues", list);
	goto out;
oom:
	http_reply_error(req, 500, "Internal Server Error", "out of memory");
out:
	free(qs);
	json_decref(list);
}

/* ---- GET /v1/leases ------------------------------------------------- */

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
get_leases_committed(const struct http_call *c)
{
	struct evhttp_request *req = c->req;
	struct evkeyvalq q;
	struct npufarm_err err;
	const char *s;
	json_t *list;
	long limit = HTTP_LEASES_DEFAULT;
	char *end;

	TAILQ_INIT(&q);
	s = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (evhttp_parse_query_str(s ? s : "", &q) < 0) {
		http_reply_error(
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
			http_reply_error(req, 400, "Bad Request", msg);
			return;
		}
	}
	evhttp_clear_headers(&q);
	list = json_array();
	if (list == NULL || ledger_foreach_lease(c->env->ledger, (int)limit,
				lease_cb, list, &err) != 0) {
		json_decref(list);
		http_reply_error(req, 500, "Internal Server Error",
		    list ? err.msg : "out of memory");
		return;
	}
	http_reply_list(req, "leases", list);
	json_decref(list);
}

/* GET /v1/leases?limit=N: the most recent leases, committed. */
static void
get_leases(const struct http_call *c)
{
	http_after_commit(c, get_leases_committed);
}

/* ---- POST /v1/boards/{id}/drain, /undrain -------------------------- */

/*
 * POST /v1/boards/{id}/drain and /undrain: no new leases for a drained
 * board; a running lease finishes.  The mark is kept in the ledger.
 */
static void
post_drain_or_undrain(const struct http_call *c, bool on)
{
	struct evhttp_request *req = c->req;
	int64_t id = c->id;
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
		http_reply_error(req, 400, "Bad Request",
		    body == NULL ? err.msg : jerr.text);
		json_decref(body);
		return;
	}
	evhttp_connection_get_peer(evcon, &peer, &port);
	(void)snprintf(actor, sizeof(actor), "%.64s@%.64s",
	    user != NULL && user[0] != '\0' ? user : "api",
	    peer != NULL ? peer : "unknown");
	if (ledger_board_drain(c->env->ledger, id, on, ledger_now_us(), &err) <
		0 ||
	    ledger_event_by(c->env->ledger,
		on ? "board_drain" : "board_undrain", id, reason, actor,
		ledger_now_us(), &err) < 0) {
		http_reply_error(req, 404, "Not Found", err.msg);
		json_decref(body);
		return;
	}
	live = tracker_board_drain(c->env->tracker, id, on);
	if (!on)
		(void)agent_link_undrain(c->env->links, id);
	(void)tracker_flush_boards(c->env->tracker);
	log_notice("board %lld %s through the API by %s%s%s (%d live "
		   "registrations)",
	    (long long)id, on ? "drained" : "undrained", actor,
	    reason ? ": " : "", reason ? reason : "", live);
	v = json_pack("{sIsbsbsoss}", "id", (json_int_t)id, "drained", on,
	    "live", live > 0, "reason", json_util_str_or_null(reason), "by",
	    actor);
	http_reply_json(req, 200, "OK", v);
	json_decref(v);
	json_decref(body);
}

static void
post_drain(const struct http_call *c)
{
	post_drain_or_undrain(c, true);
}

static void
post_undrain(const struct http_call *c)
{
	post_drain_or_undrain(c, false);
}

static const struct http_route routes[] = {
    {EVHTTP_REQ_GET, "/v1/boards", AUTH_SCOPE_READ, get_boards, 405,
	"only GET is allowed here"},
    {EVHTTP_REQ_GET, "/v1/queue", AUTH_SCOPE_READ, get_queue, 405,
	"only GET is allowed here"},
    {EVHTTP_REQ_GET, "/v1/leases", AUTH_SCOPE_READ, get_leases, 405,
	"only GET is allowed here"},
    {EVHTTP_REQ_POST, "/v1/boards/#/drain", AUTH_SCOPE_ADMIN, post_drain, 405,
	"drain and undrain take POST"},
    {EVHTTP_REQ_POST, "/v1/boards/#/undrain", AUTH_SCOPE_ADMIN, post_undrain,
	405, "drain and undrain take POST"},
};

/* Serve these routes on @h.  0 or -E2BIG. */
int
api_boards_add(struct http_api *h)
{
	return http_add_routes(h, routes, sizeof(routes) / sizeof(routes[0]));
}
