/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP API of native jobs and their artifacts (docs/api.md "Native
 * tuning jobs"): PUT/HEAD /v1/artifacts/{sha256}, POST and GET /v1/jobs,
 * GET /v1/jobs/{id}, POST /v1/jobs/{id}/cancel, GET /v1/jobs/{id}/wait.
 * Reads come from the ledger (after a sync, so a client reads its own
 * writes); waits are answered from the live jobs (jobs.c).
 */
#include "config.h"

#include "jobs_api.h"

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
#include "err.h"
#include "http_api.h"
#include "jobs.h"
#include "jobs_parse.h"
#include "json_util.h"
#include "ledger.h"
#include "log.h"
#include "server.h"
#include "sha256_util.h"
#include "task_spec.h"
#include "tracker.h"

#define JOBS_API_LIMIT_DEFAULT 50
#define JOBS_API_LIMIT_MAX     1000
#define JOBS_API_WAIT_DEFAULT  30
#define JOBS_API_WAIT_MAX      300

static void
bad(struct evhttp_request *req, const char *msg)
{
	http_api_reply_error(req, 400, "Bad Request", msg);
}

static void
server_error(struct evhttp_request *req, const char *msg)
{
	http_api_reply_error(req, 500, "Internal Server Error", msg);
}

/* ---- artifacts ------------------------------------------------------ */

static void
artifact_route(struct server *srv, struct evhttp_request *req, const char *sha)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	struct npufarm_err err;
	char len[32];
	uint64_t size;
	bool created;
	json_t *v;
	int r;

	if (!sha256_util_valid(sha)) {
		http_api_reply_error(req, 404, "Not Found",
		    "an artifact is named by its sha256: 64 lowercase hex "
		    "digits");
		return;
	}
	if (cmd == EVHTTP_REQ_HEAD) {
		if (artifacts_size(srv->artifacts, sha, &size) < 0) {
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
		http_api_reply_error(
		    req, 405, "Method Not Allowed", "PUT or HEAD an artifact");
		return;
	}
	size = evbuffer_get_length(body);
	r = artifacts_put(srv->artifacts, sha, body, &created, &err);
	if (r == -EBADMSG || r == -EINVAL) {
		bad(req, err.msg);
		return;
	}
	if (r == -EFBIG) {
		http_api_reply_error(req, 413, "Payload Too Large", err.msg);
		return;
	}
	if (r < 0) {
		log_err("artifact %s: %s", sha, err.msg);
		server_error(req, err.msg);
		return;
	}
	if (created) {
		if (ledger_artifact(srv->ledger, sha, size, &err) < 0 ||
		    ledger_sync(srv->ledger, &err) < 0) {
			server_error(req, err.msg);
			return;
		}
		log_info("artifact %s stored (%llu bytes)", sha,
		    (unsigned long long)size);
	}
	v = json_pack("{ss sI sb}", "sha256", sha, "size", (json_int_t)size,
	    "created", created);
	http_api_reply_json(
	    req, created ? 201 : 200, created ? "Created" : "OK", v);
	json_decref(v);
}

/* ---- jobs -------------------------------------------------------------- */

/*
 * What a job for @key, which no board has, is in for (accepted: a board
 * may register within --unknown-key-grace), into @buf.  The loop's.
 */
void
jobs_api_nokey_warning(
    struct server *srv, const char *key, char *buf, size_t len)
{
	char keys[512];

	tracker_known_keys(srv->tracker, keys, sizeof(keys));
	if (srv->cfg->unknown_key_grace > 0)
		(void)snprintf(buf, len,
		    "no board has key '%s'; the job fails in %g s "
		    "(unknown_key_grace) unless one registers; keys with "
		    "boards: %s",
		    key, srv->cfg->unknown_key_grace, keys);
	else
		(void)snprintf(buf, len,
		    "no board has key '%s'; the job waits for one; keys with "
		    "boards: %s",
		    key, keys);
}

/* POST /v1/jobs: parsed off the loop, answered once committed. */
static void
post_job(struct server *srv, struct evhttp_request *req)
{
	jobs_parse_submit(srv->jobs_parse, req);
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
job_row_json(struct server *srv, const struct ledger_job_row *row)
{
	struct npufarm_err err;
	json_t *tags, *tasks = json_pack(
			  "{si si si}", "total", 0, "queued", 0, "running", 0);

	if (tasks == NULL || ledger_task_counts(srv->ledger, row->id, count_cb,
				 tasks, &err) < 0) {
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
	struct server *srv;
	json_t *list;
};

static int
list_cb(const struct ledger_job_row *row, void *arg)
{
	struct list_ctx *x = arg;
	json_t *v = job_row_json(x->srv, row);

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

static void
get_jobs(struct server *srv, struct evhttp_request *req)
{
	struct list_ctx x = {.srv = srv, .list = json_array()};
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
	(void)ledger_sync(srv->ledger, NULL);
	if (x.list == NULL || ledger_foreach_job(srv->ledger, state, user,
				  (int)limit, list_cb, &x, &err) != 0) {
		server_error(req, x.list ? err.msg : "out of memory");
		goto out;
	}
	v = json_pack("{sO}", "jobs", x.list);
	http_api_reply_json(req, 200, "OK", v);
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
	struct server *srv;
	json_t *job;
};

static int
one_cb(const struct ledger_job_row *row, void *arg)
{
	struct one_ctx *x = arg;

	x->job = job_row_json(x->srv, row);
	return x->job == NULL ? -ENOMEM : 0;
}

static void
get_job(struct server *srv, struct evhttp_request *req, int64_t id)
{
	struct one_ctx x = {.srv = srv};
	struct npufarm_err err;
	json_t *list = json_array();
	int r;

	(void)ledger_sync(srv->ledger, NULL);
	r = ledger_job_get(srv->ledger, id, one_cb, &x, &err);
	if (r == 0 && list != NULL)
		r = ledger_foreach_task(srv->ledger, id, task_cb, list, &err);
	if (r == -ENOENT)
		http_api_reply_error(req, 404, "Not Found", err.msg);
	else if (r < 0 || list == NULL ||
		 json_object_set(x.job, "task_list", list) < 0)
		server_error(req, r < 0 ? err.msg : "out of memory");
	else
		http_api_reply_json(req, 200, "OK", x.job);
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
may_cancel(struct server *srv, struct evhttp_request *req, int64_t id)
{
	struct evkeyvalq q;
	const char *user;
	json_t *job = jobs_live_summary(srv->jobs, id);
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
cancel_job(
    struct server *srv, struct evhttp_request *req, int64_t id, bool admin)
{
	json_t *v;
	int n = 0;

	if (!admin && !may_cancel(srv, req, id)) {
		http_api_reply_error(req, 403, "Forbidden",
		    "cancelling another user's job needs the admin token; to "
		    "cancel your own, say ?user=YOU (npufarm cancel --user)");
		return;
	}

	if (jobs_cancel(srv->jobs, id, &n) < 0) {
		http_api_reply_error(
		    req, 409, "Conflict", "no such job, or it is over already");
		return;
	}
	v = json_pack("{sI si}", "id", (json_int_t)id, "cancelled", n);
	http_api_reply_json(req, 200, "OK", v);
	json_decref(v);
}

/* A job's wait is over: answer its request (jobs_wait_fn). */
static void
wait_answer_cb(void *arg, json_t *answer)
{
	struct evhttp_request *req = arg;

	if (answer == NULL)
		http_api_reply_error(
		    req, 500, "Internal Server Error", "out of memory");
	else
		http_api_reply_json(req, 200, "OK", answer);
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

static void
wait_job(struct server *srv, struct evhttp_request *req, int64_t id)
{
	struct one_ctx x = {.srv = srv};
	struct evkeyvalq q;
	struct npufarm_err err;
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
	r = jobs_wait(srv->jobs, id, (uint64_t)after, (double)timeout,
	    wait_answer_cb, req);
	if (r == JOBS_WAITING)
		evhttp_connection_set_closecb(
		    evhttp_request_get_connection(req), wait_gone_cb,
		    srv->jobs);
	if (r == 0 || r == JOBS_WAITING)
		return; /* answered, or answered later */
	if (r < 0) {
		server_error(req, "out of memory");
		return;
	}
	/* Not live: over (or unknown); the ledger has its final word. */
	(void)ledger_sync(srv->ledger, NULL);
	r = ledger_job_get(srv->ledger, id, one_cb, &x, &err);
	if (r == -ENOENT) {
		http_api_reply_error(req, 404, "Not Found", err.msg);
		return;
	}
	if (r < 0) {
		server_error(req, err.msg);
		return;
	}
	(void)json_object_set_new(
	    x.job, "seq", json_integer((json_int_t)after + 1));
	(void)json_object_set_new(x.job, "done", json_true());
	http_api_reply_json(req, 200, "OK", x.job);
	json_decref(x.job);
}

/*
 * Route @req if @path is one of ours; @admin: it came with the admin
 * token (or the broker has no API tokens).  Returns 1 if it was (answered
 * or waiting), 0 if not.
 */
int
jobs_api_route(struct server *srv, struct evhttp_request *req, const char *path,
    bool admin)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	static const char art[] = "/v1/artifacts/", jobs[] = "/v1/jobs";
	char action[16] = "";
	long long id;
	int n = 0;

	if (strncmp(path, art, sizeof(art) - 1) == 0) {
		artifact_route(srv, req, path + sizeof(art) - 1);
		return 1;
	}
	if (strcmp(path, jobs) == 0) {
		if (cmd == EVHTTP_REQ_POST)
			post_job(srv, req);
		else if (cmd == EVHTTP_REQ_GET)
			get_jobs(srv, req);
		else
			http_api_reply_error(req, 405, "Method Not Allowed",
			    "GET or POST /v1/jobs");
		return 1;
	}
	if (strncmp(path, jobs, sizeof(jobs) - 1) != 0 ||
	    path[sizeof(jobs) - 1] != '/')
		return 0;
	if (sscanf(path + sizeof(jobs), "%lld%n/%15[a-z]%n", &id, &n, action,
		&n) < 1 ||
	    path[sizeof(jobs) + n] != '\0' || id <= 0) {
		http_api_reply_error(req, 404, "Not Found", "no such API path");
		return 1;
	}
	if (action[0] == '\0' && cmd == EVHTTP_REQ_GET)
		get_job(srv, req, (int64_t)id);
	else if (strcmp(action, "cancel") == 0 && cmd == EVHTTP_REQ_POST)
		cancel_job(srv, req, (int64_t)id, admin);
	else if (strcmp(action, "wait") == 0 && cmd == EVHTTP_REQ_GET)
		wait_job(srv, req, (int64_t)id);
	else
		http_api_reply_error(
		    req, 404, "Not Found", "no such API path (or method)");
	return 1;
}
