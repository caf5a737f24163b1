/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP API of native jobs and their artifacts (docs/api.md "Native
 * tuning jobs"): PUT/HEAD /v1/artifacts/{sha256}, POST and GET /v1/jobs,
 * GET /v1/jobs/{id}, POST /v1/jobs/{id}/cancel, GET /v1/jobs/{id}/wait.
 * Reads come from the ledger's committed rows once what the loop wrote
 * before them is committed (http_after_commit(): a client reads its own
 * writes, and the loop never waits); a stored artifact is acknowledged
 * once its row is committed; waits are answered from the live jobs
 * (jobs.c).
 */
#include "config.h"

#include "api_jobs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include <npufarm/outcome.h>

#include "artifacts.h"
#include "auth.h"
#include "err.h"
#include "http.h"
#include "jobs.h"
#include "jobs_parse.h"
#include "json_util.h"
#include "ledger.h"
#include "log.h"
#include "sha256_util.h"
#include "task_spec.h"

#define JOBS_API_LIMIT_DEFAULT 50
#define JOBS_API_LIMIT_MAX     1000
#define JOBS_API_WAIT_DEFAULT  30
#define JOBS_API_WAIT_MAX      300

static void
bad(struct evhttp_request *req, const char *msg)
{
	http_reply_error(req, 400, "Bad Request", msg);
}

static void
server_error(struct evhttp_request *req, const char *msg)
{
	http_reply_error(req, 500, "Internal Server Error", msg);
}

/* ---- artifacts ------------------------------------------------------ */

/* The artifact's row is committed: 201, or 500 if the batch failed. */
static void
artifact_committed(const struct http_call *c)
{
	struct evhttp_request *req = c->req;
	const char *sha = c->rest;
	uint64_t size = (uint64_t)c->arg;
	json_t *v;

	if (c->ledger_error != NULL) {
		server_error(req, c->ledger_error);
		return;
	}
	log_info(
	    "artifact %s stored (%llu bytes)", sha, (unsigned long long)size);
	v = json_pack("{ss sI sb}", "sha256", sha, "size", (json_int_t)size,
	    "created", 1);
	http_reply_json(req, 201, "Created", v);
	json_decref(v);
}

static void
artifact_route(const struct http_call *c)
{
	struct evhttp_request *req = c->req;
	struct artifacts *store = c->env->artifacts;
	const char *sha = c->rest;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	struct npufarm_err err;
	char len[32];
	uint64_t size;
	bool created;
	json_t *v;
	int r;

	if (!sha256_util_valid(sha)) {
		http_reply_error(req, 404, "Not Found",
		    "an artifact is named by its sha256: 64 lowercase hex "
		    "digits");
		return;
	}
	if (cmd == EVHTTP_REQ_HEAD) {
		if (artifacts_size(store, sha, &size) < 0) {
			evhttp_send_reply(req, 404, "Not Found", NULL);
			return;
		}
		(void)snprintf(
		    len, sizeof(len), "%llu", (unsigned long long)size);
		(void)evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Length", len);
		evhttp_send_reply(req, 200, "OK", NULL);
		return;
	}
	if (cmd != EVHTTP_REQ_PUT) {
		http_reply_error(
		    req, 405, "Method Not Allowed", "PUT or HEAD an artifact");
		return;
	}
	size = evbuffer_get_length(body);
	r = artifacts_put(store, sha, body, &created, &err);
	if (r == -EBADMSG || r == -EINVAL) {
		bad(req, err.msg);
		return;
	}
	if (r == -EFBIG) {
		http_reply_error(req, 413, "Payload Too Large", err.msg);
		return;
	}
	if (r < 0) {
		log_err("artifact %s: %s", sha, err.msg);
		server_error(req, err.msg);
		return;
	}
	if (created) {
		struct http_call later = *c;

		if (ledger_artifact(c->env->ledger, sha, size, &err) < 0) {
			server_error(req, err.msg);
			return;
		}
		/* Acknowledged once committed (the durability rule). */
		later.arg = (int64_t)size;
		http_after_commit(&later, artifact_committed);
		return;
	}
	v = json_pack("{ss sI sb}", "sha256", sha, "size", (json_int_t)size,
	    "created", created);
	http_reply_json(req, 200, "OK", v);
	json_decref(v);
}

/* ---- jobs -------------------------------------------------------------- */

static void get_jobs_committed(const struct http_call *c);

/* POST /v1/jobs: parsed off the loop, answered once committed. */
static void
post_job(const struct http_call *c)
{
	jobs_parse_submit(c->env->jobs_parse, c->req);
}

static void
count_cb(const char *state, const char *outcome, int count, void *arg)
{
	json_t *tasks = arg;
	const char *k = outcome != NULL ? outcome : state;
	json_int_t have = json_integer_value(json_object_get(tasks, k));

	(void)json_object_set_new(tasks, k, json_integer(have + count));
	(void)json_object_set_new(tasks, "total",
	    json_integer(
		json_integer_value(json_object_get(tasks, "total")) + count));
}

static json_t *
job_row_json(struct ledger *ledger, const struct ledger_job_row *row)
{
	struct npufarm_err err;
	json_t *tags, *tasks = json_pack(
			  "{si si si}", "total", 0, "queued", 0, "running", 0);

	if (tasks == NULL ||
	    ledger_task_counts(ledger, row->id, count_cb, tasks, &err) < 0) {
		json_decref(tasks);
		return NULL;
	}
	tags = row->tags != NULL ? json_loads(row->tags, 0, NULL) : NULL;
	return json_pack("{sI ss ss so so ss so so so so}", "id",
	    (json_int_t)row->id, "key", row->key, "user", row->user, "priority",
	    json_util_number(row->priority), "queue_timeout",
	    json_util_number(row->queue_timeout), "state", row->state,
	    "submitted", json_util_time(row->submitted_us), "finished",
	    json_util_time(row->finished_us), "tasks", tasks, "tags",
	    tags != NULL ? tags : json_object());
}

struct list_ctx {
	struct ledger *ledger;
	json_t *list;
};

static int
list_cb(const struct ledger_job_row *row, void *arg)
{
	struct list_ctx *x = arg;
	json_t *v = job_row_json(x->ledger, row);

	return v == NULL || json_array_append_new(x->list, v) < 0 ? -ENOMEM : 0;
}

/* The query string of @req into @q (to clear); -1 if malformed. */
static int
parse_query(struct evhttp_request *req, struct evkeyvalq *q)
{
	const char *s =
	    evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));

	return evhttp_parse_query_str(s != NULL ? s : "", q);
}

static const char *
query(struct evkeyvalq *q, const char *name)
{
	const char *v = evhttp_find_header(q, name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

static bool
parse_number(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

/*
 * GET /v1/jobs?state=&user=&limit=: @read false checks the query and
 * waits for the ledger; true reads and answers.
 */
static void
jobs_list(const struct http_call *c, bool read)
{
	struct evhttp_request *req = c->req;
	struct list_ctx x = {.ledger = c->env->ledger, .list = json_array()};
	struct evkeyvalq q;
	struct npufarm_err err;
	const char *state, *user, *limit_s;
	long limit = JOBS_API_LIMIT_DEFAULT;
	json_t *v;

	if (parse_query(req, &q) < 0) {
		json_decref(x.list);
		bad(req, "malformed query string");
		return;
	}
	state = query(&q, "state");
	user = query(&q, "user");
	limit_s = query(&q, "limit");
	if (state != NULL && strcmp(state, "queued") != 0 &&
	    strcmp(state, "running") != 0 && strcmp(state, "done") != 0 &&
	    strcmp(state, "cancelled") != 0) {
		bad(req, "state: expected queued, running, done or cancelled");
		goto out;
	}
	if (limit_s != NULL &&
	    !parse_number(limit_s, 1, JOBS_API_LIMIT_MAX, &limit)) {
		bad(req, "limit: expected 1..1000");
		goto out;
	}
	if (!read) {
		http_after_commit(c, get_jobs_committed);
		goto out;
	}
	if (x.list == NULL || ledger_foreach_job(c->env->ledger, state, user,
				  (int)limit, list_cb, &x, &err) != 0) {
		server_error(req, x.list ? err.msg : "out of memory");
		goto out;
	}
	v = json_pack("{sO}", "jobs", x.list);
	http_reply_json(req, 200, "OK", v);
	json_decref(v);
out:
	evhttp_clear_headers(&q);
	json_decref(x.list);
}

static int
task_cb(const struct ledger_task_row *row, void *arg)
{
	json_t *list = arg, *costs = json_null(), *spec, *v;
	struct task_spec *ts = malloc(sizeof(*ts));
	char group[TASK_SPEC_GROUP_MAX] = "";
	json_error_t jerr;

	if (row->costs != NULL) {
		costs = json_loads(row->costs, 0, &jerr);
		if (costs == NULL)
			costs = json_null();
	}
	/* The group it is ranked in: its own "group", else its inputs. */
	spec = row->spec != NULL ? json_loads(row->spec, 0, &jerr) : NULL;
	if (ts != NULL && spec != NULL &&
	    task_spec_parse(spec, "", ts, NULL) == 0)
		task_spec_group(ts, group, sizeof(group));
	json_decref(spec);
	free(ts);
	v = json_pack("{si so ss so si so so so so so so so}", "index",
	    row->idx, "name", json_util_str_or_null(row->name), "state",
	    row->state, "outcome", json_util_str_or_null(row->outcome),
	    "attempts", row->attempts, "board",
	    json_util_str_or_null(row->board), "costs", costs, "number",
	    row->number > 0 ? json_integer(row->number) : json_null(), "detail",
	    json_util_str_or_null(row->detail), "queued_s",
	    json_util_seconds(row->queued_us, row->started_us), "run_s",
	    json_util_seconds(row->started_us, row->finished_us), "group",
	    group[0] != '\0' ? json_string(group) : json_null());
	return v == NULL || json_array_append_new(list, v) < 0 ? -ENOMEM : 0;
}

struct one_ctx {
	struct ledger *ledger;
	json_t *job;
};

static int
one_cb(const struct ledger_job_row *row, void *arg)
{
	struct one_ctx *x = arg;

	x->job = job_row_json(x->ledger, row);
	return x->job == NULL ? -ENOMEM : 0;
}

static void
get_job_committed(const struct http_call *c)
{
	struct evhttp_request *req = c->req;
	struct one_ctx x = {.ledger = c->env->ledger};
	struct npufarm_err err;
	json_t *list = json_array();
	int64_t id = c->id;
	int r;

	r = ledger_job_get(c->env->ledger, id, one_cb, &x, &err);
	if (r == 0 && list != NULL)
		r = ledger_foreach_task(
		    c->env->ledger, id, task_cb, list, &err);
	if (r == -ENOENT)
		http_reply_error(req, 404, "Not Found", err.msg);
	else if (r < 0 || list == NULL ||
		 json_object_set(x.job, "task_list", list) < 0)
		server_error(req, r < 0 ? err.msg : "out of memory");
	else
		http_reply_json(req, 200, "OK", x.job);
	json_decref(list);
	json_decref(x.job);
}

/*
 * Cancelling someone else's job takes the admin token; with the read
 * token, ?user= must name the job's own user (the user it was submitted
 * as: shared tokens carry no identity, so this guards against mistakes,
 * not against a user who lies about who they are).
 */
static bool
may_cancel(struct jobs *jobs, struct evhttp_request *req, int64_t id)
{
	struct evkeyvalq q;
	const char *user;
	json_t *job = jobs_live_summary(jobs, id);
	bool ok;

	if (job == NULL)
		return true; /* not live: cancel answers 409 */
	if (parse_query(req, &q) < 0) {
		json_decref(job);
		return false;
	}
	user = query(&q, "user");
	ok = user != NULL &&
	     strcmp(user, json_string_value(json_object_get(job, "user"))) == 0;
	evhttp_clear_headers(&q);
	json_decref(job);
	return ok;
}

static void
cancel_job(const struct http_call *c)
{
	struct evhttp_request *req = c->req;
	struct jobs *jobs = c->env->jobs;
	int64_t id = c->id;
	json_t *v;
	int n = 0;

	if (!c->admin && !may_cancel(jobs, req, id)) {
		http_reply_error(req, 403, "Forbidden",
		    "cancelling another user's job needs the admin token; to "
		    "cancel your own, say ?user=YOU (npufarm cancel --user)");
		return;
	}

	if (jobs_cancel(jobs, id, &n) < 0) {
		http_reply_error(
		    req, 409, "Conflict", "no such job, or it is over already");
		return;
	}
	v = json_pack("{sI si}", "id", (json_int_t)id, "cancelled", n);
	http_reply_json(req, 200, "OK", v);
	json_decref(v);
}

/* A job's wait is over: answer its request (jobs_wait_fn). */
static void
wait_answer_cb(void *arg, json_t *answer)
{
	struct evhttp_request *req = arg;

	if (answer == NULL)
		http_reply_error(
		    req, 500, "Internal Server Error", "out of memory");
	else
		http_reply_json(req, 200, "OK", answer);
}

static bool
wait_match_cb(void *arg, void *ctx)
{
	return evhttp_request_get_connection(arg) == ctx;
}

/* The client hung up: forget its waits (the requests go with it). */
static void
wait_gone_cb(struct evhttp_connection *evcon, void *arg)
{
	jobs_wait_drop(arg, wait_match_cb, evcon);
}

/* A wait for a job that is not live: the ledger has its final word. */
static void
wait_job_over(const struct http_call *c)
{
	struct one_ctx x = {.ledger = c->env->ledger};
	struct evhttp_request *req = c->req;
	struct npufarm_err err;
	int r;

	r = ledger_job_get(c->env->ledger, c->id, one_cb, &x, &err);
	if (r == -ENOENT) {
		http_reply_error(req, 404, "Not Found", err.msg);
		return;
	}
	if (r < 0) {
		server_error(req, err.msg);
		return;
	}
	(void)json_object_set_new(
	    x.job, "seq", json_integer((json_int_t)c->arg + 1));
	(void)json_object_set_new(x.job, "done", json_true());
	http_reply_json(req, 200, "OK", x.job);
	json_decref(x.job);
}

static void
wait_job(const struct http_call *c)
{
	struct evhttp_request *req = c->req;
	struct http_call over = *c;
	int64_t id = c->id;
	struct evkeyvalq q;
	long after = 0, timeout = JOBS_API_WAIT_DEFAULT;
	const char *s;
	int r;

	if (parse_query(req, &q) < 0) {
		bad(req, "malformed query string");
		return;
	}
	s = query(&q, "after");
	if (s != NULL && !parse_number(s, 0, 1L << 62, &after)) {
		evhttp_clear_headers(&q);
		bad(req,
		    "after: expected a progress counter from a previous wait");
		return;
	}
	s = query(&q, "timeout");
	if (s != NULL && !parse_number(s, 0, JOBS_API_WAIT_MAX, &timeout)) {
		evhttp_clear_headers(&q);
		bad(req, "timeout: expected 0..300 seconds");
		return;
	}
	evhttp_clear_headers(&q);
	r = jobs_wait(c->env->jobs, id, (uint64_t)after, (double)timeout,
	    wait_answer_cb, req);
	if (r == JOBS_WAITING)
		evhttp_connection_set_closecb(
		    evhttp_request_get_connection(req), wait_gone_cb,
		    c->env->jobs);
	if (r == 0 || r == JOBS_WAITING)
		return; /* answered, or answered later */
	if (r < 0) {
		server_error(req, "out of memory");
		return;
	}
	/* Not live: over (or unknown); the ledger has its final word. */
	over.arg = after;
	http_after_commit(&over, wait_job_over);
}

static void
get_jobs(const struct http_call *c)
{
	jobs_list(c, false);
}

static void
get_jobs_committed(const struct http_call *c)
{
	jobs_list(c, true);
}

static void
get_job(const struct http_call *c)
{
	http_after_commit(c, get_job_committed);
}

#define ANY_METHOD                                                             \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD | \
	    EVHTTP_REQ_DELETE)

/* The routes; a path that matches none of them is a 404 of http.c's. */
static const struct http_route routes[] = {
    /* The name is checked before the method (artifact_route()). */
    {ANY_METHOD, "/v1/artifacts/*", AUTH_SCOPE_READ, artifact_route, 405, ""},
    {EVHTTP_REQ_POST, "/v1/jobs", AUTH_SCOPE_READ, post_job, 405,
	"GET or POST /v1/jobs"},
    {EVHTTP_REQ_GET, "/v1/jobs", AUTH_SCOPE_READ, get_jobs, 405,
	"GET or POST /v1/jobs"},
    {EVHTTP_REQ_GET, "/v1/jobs/#", AUTH_SCOPE_READ, get_job, 404,
	"no such API path (or method)"},
    {EVHTTP_REQ_POST, "/v1/jobs/#/cancel", AUTH_SCOPE_READ, cancel_job, 404,
	"no such API path (or method)"},
    {EVHTTP_REQ_GET, "/v1/jobs/#/wait", AUTH_SCOPE_READ, wait_job, 404,
	"no such API path (or method)"},
    {0, "/v1/jobs/#/@", AUTH_SCOPE_READ, NULL, 404,
	"no such API path (or method)"},
};

/* Serve these routes on @h.  0 or -E2BIG. */
int
api_jobs_add(struct http_api *h)
{
	return http_add_routes(h, routes, sizeof(routes) / sizeof(routes[0]));
}
