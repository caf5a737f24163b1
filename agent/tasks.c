/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Native tasks on the agent (see tasks.h).  States: idle -> fetching (the
 * artifact is not cached: chunks over the link) -> running (a runner
 * child; its report pipe watched, its deadline armed) -> idle, the result
 * handed to the link, which resends it until acknowledged.
 */
#include "config.h"

#include "tasks.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cache.h"
#include "err.h"
#include "link.h"
#include "log.h"
#include "runner.h"
#include "supervisor.h"
#include "task_spec.h"

enum tasks_state {
	TASKS_IDLE,
	TASKS_FETCHING,
	TASKS_RUNNING,
};

struct tasks {
	struct event_base *base;
	struct tasks_config cfg;
	struct link *link; /* borrowed */
	enum tasks_state state;
	int64_t id;
	int attempt;
	struct task_spec *spec;
	struct cache_writer *writer; /* FETCHING */
	uint64_t fetched, size;
	bool pinned;          /* the artifact is acquired from the cache */
	bool ref_pinned;      /* the check's reference too */
	const char *fetching; /* FETCHING: spec->artifact or check.ref */
	struct runner *run;
	struct event *read_ev; /* the runner's report pipe */
	struct event *deadline_ev;
	struct event *kill_ev;
	enum npufarm_outcome killed_as; /* OK: not killed by us */
	char killed_why[128];
	int64_t start_us;
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Hand the result to the link (kept until acknowledged) and go idle. */
static void
report(struct tasks *t, enum npufarm_outcome outcome, const char *detail,
    const struct runner_result *res)
{
	char id[64];
	json_t *v, *costs = json_array();
	uint32_t i;

	(void)snprintf(
	    id, sizeof(id), "task-%lld-%d", (long long)t->id, t->attempt);
	for (i = 0; res != NULL && costs != NULL && i < res->ncosts; i++)
		(void)json_array_append_new(costs, json_real(res->costs[i]));
	v = json_pack("{ss ss sI si ss so sI si si}", "type", "result", "id",
	    id, "task", (json_int_t)t->id, "attempt", t->attempt, "outcome",
	    npufarm_outcome_name(outcome), "detail",
	    detail != NULL && detail[0] ? json_string(detail) : json_null(),
	    "number", (json_int_t)(res != NULL ? res->number : 0), "signal",
	    res != NULL ? res->signal : 0, "status",
	    res != NULL ? res->status : -1);
	if (v != NULL && costs != NULL)
		(void)json_object_set(v, "costs", costs);
	json_decref(costs);
	log_info("task %lld attempt %d ended %s%s%s", (long long)t->id,
	    t->attempt, npufarm_outcome_name(outcome),
	    detail != NULL && detail[0] ? ": " : "", detail ? detail : "");
	if (t->link == NULL || link_report(t->link, id, v) < 0)
		log_err("task %lld: out of memory queueing its result",
		    (long long)t->id);
	if (t->pinned)
		cache_release(t->cfg.cache, t->spec->artifact);
	if (t->ref_pinned)
		cache_release(t->cfg.cache, t->spec->check.ref);
	t->pinned = t->ref_pinned = false;
	t->writer = cache_abort(t->writer);
	t->state = TASKS_IDLE;
	t->id = 0;
	t->cfg.done(t->cfg.arg, outcome, detail);
}

/* ---- running ----------------------------------------------------------- */

static void
kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tasks *t = arg;

	if (t->run != NULL)
		(void)supervisor_session_kill(
		    runner_pid(t->run), SUPERVISOR_KILL_FORCE);
}

/* Kill the running task's process group; it is recorded as @as. */
static void
task_kill(struct tasks *t, enum npufarm_outcome as, const char *why)
{
	struct timeval tv = {0, SUPERVISOR_KILL_GRACE_MS * 1000};

	if (t->run == NULL || t->killed_as != NPUFARM_OUTCOME_OK)
		return;
	t->killed_as = as;
	(void)snprintf(t->killed_why, sizeof(t->killed_why), "%s", why);
	(void)supervisor_session_kill(runner_pid(t->run), SUPERVISOR_KILL_TERM);
	(void)evtimer_add(t->kill_ev, &tv);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tasks *t = arg;
	char why[96];

	(void)snprintf(why, sizeof(why), "timed out after %g s",
	    (double)t->spec->timeout_ms / 1000.0);
	task_kill(t, NPUFARM_OUTCOME_TIMEOUT, why);
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tasks *t = arg;
	struct npufarm_err err;
	int r;

	if (t->run == NULL)
		return;
	r = runner_read(t->run, &err);
	if (r != 0) {
		if (r < 0)
			log_warn("task %lld: %s", (long long)t->id, err.msg);
		(void)event_del(t->read_ev);
	}
}

/* SIGCHLD: collect the runner child if it ended. */
void
tasks_child_exited(struct tasks *t)
{
	struct runner_result *res;
	struct npufarm_err err;
	char detail[RUNNER_MSG_MAX + RUNNER_TAIL_MAX + 64];
	enum npufarm_outcome outcome;
	int r;

	if (t->state != TASKS_RUNNING || t->run == NULL)
		return;
	res = calloc(1, sizeof(*res));
	if (res == NULL)
		return; /* the next SIGCHLD or the kill retries */
	r = runner_collect(t->run, false, res, &err);
	if (r == 0) {
		free(res);
		return;
	}
	(void)event_del(t->read_ev);
	(void)evtimer_del(t->deadline_ev);
	(void)evtimer_del(t->kill_ev);
	event_free(t->read_ev);
	t->read_ev = NULL;
	t->run = runner_free(t->run);
	outcome = res->outcome;
	if (r < 0) {
		outcome = NPUFARM_OUTCOME_CRASH;
		(void)snprintf(res->msg, sizeof(res->msg), "%s", err.msg);
	}
	if (t->killed_as != NPUFARM_OUTCOME_OK) {
		outcome = t->killed_as;
		(void)snprintf(detail, sizeof(detail), "%s", t->killed_why);
	} else if (res->tail[0] != '\0')
		(void)snprintf(detail, sizeof(detail), "%s; stderr: %s",
		    res->msg, res->tail);
	else
		(void)snprintf(detail, sizeof(detail), "%s", res->msg);
	if (outcome != NPUFARM_OUTCOME_OK)
		res->ncosts = 0;
	report(t, outcome, detail, res);
	free(res);
}

static void
task_run(struct tasks *t)
{
	struct runner_config rc = {
	    .workdir = t->cfg.workdir,
	    .exec_cmd = t->cfg.exec_cmd,
	    .stderr_fd = -1,
	};
	char path[PATH_MAX], ref[PATH_MAX], refs[PATH_MAX];
	struct npufarm_err err;
	struct timeval tv;

	if (cache_acquire(
		t->cfg.cache, t->spec->artifact, path, sizeof(path)) != 1) {
		report(t, NPUFARM_OUTCOME_LOST,
		    "the artifact vanished from the agent's cache", NULL);
		return;
	}
	t->pinned = true;
	if (t->spec->check.on) {
		if (cache_acquire(t->cfg.cache, t->spec->check.ref, ref,
			sizeof(ref)) != 1) {
			report(t, NPUFARM_OUTCOME_LOST,
			    "the reference vanished from the agent's cache",
			    NULL);
			return;
		}
		t->ref_pinned = true;
		rc.ref_path = ref;
		/* Its outputs, once per board and input (runner.h). */
		(void)snprintf(refs, sizeof(refs), "%s/refs", t->cfg.workdir);
		rc.ref_cache = refs;
	}
	if (runner_start(&rc, t->spec, path, &t->run, &err) < 0) {
		report(t, NPUFARM_OUTCOME_CRASH, err.msg, NULL);
		return;
	}
	t->state = TASKS_RUNNING;
	t->killed_as = NPUFARM_OUTCOME_OK;
	t->start_us = now_us();
	t->read_ev = event_new(
	    t->base, runner_fd(t->run), EV_READ | EV_PERSIST, read_cb, t);
	tv.tv_sec = (time_t)(t->spec->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(t->spec->timeout_ms % 1000) * 1000;
	if (t->read_ev == NULL || event_add(t->read_ev, NULL) < 0 ||
	    evtimer_add(t->deadline_ev, &tv) < 0) {
		log_err(
		    "task %lld: out of memory watching it", (long long)t->id);
		task_kill(t, NPUFARM_OUTCOME_CRASH,
		    "the agent ran out of memory watching it");
	}
	log_info("task %lld attempt %d started (%s, timeout %g s)",
	    (long long)t->id, t->attempt,
	    task_spec_runner_name(t->spec->runner),
	    (double)t->spec->timeout_ms / 1000.0);
}

/* ---- fetching ----------------------------------------------------------- */

static void
fetch_next(struct tasks *t)
{
	if (t->link == NULL ||
	    link_send(t->link,
		json_pack("{ss ss sI}", "type", "fetch", "sha256", t->fetching,
		    "offset", (json_int_t)t->fetched)) < 0)
		log_info(
		    "task %lld: fetch waits for the link", (long long)t->id);
}

/*
 * Fetch what the task needs and the cache lacks (the artifact, then the
 * reference of its check), else run it.
 */
static void
task_prepare(struct tasks *t)
{
	const char *need = NULL;

	if (!cache_contains(t->cfg.cache, t->spec->artifact))
		need = t->spec->artifact;
	else if (t->spec->check.on &&
		 !cache_contains(t->cfg.cache, t->spec->check.ref))
		need = t->spec->check.ref;
	if (need == NULL) {
		task_run(t);
		return;
	}
	t->state = TASKS_FETCHING;
	t->fetching = need;
	t->fetched = 0;
	t->size = 0;
	fetch_next(t);
}

/* {"type": "chunk", "sha256", "offset", "size", "data" | "error"}. */
static void
handle_chunk(struct tasks *t, json_t *v)
{
	const char *sha = NULL, *data = NULL, *error = NULL;
	json_int_t offset = -1, size = -1;
	struct npufarm_err err;
	unsigned char *raw;
	size_t len, pad = 0;
	int n, r = 0;

	if (t->state != TASKS_FETCHING ||
	    json_unpack(v, "{s:s, s?I, s?I, s?s, s?s}", "sha256", &sha,
		"offset", &offset, "size", &size, "data", &data, "error",
		&error) < 0 ||
	    strcmp(sha, t->fetching) != 0)
		return;
	if (error != NULL) {
		report(t, NPUFARM_OUTCOME_REJECTED, error, NULL);
		return;
	}
	if (data == NULL || size < 0 || (uint64_t)offset != t->fetched)
		return;
	if (t->writer == NULL && cache_begin(t->cfg.cache, sha, (uint64_t)size,
				     &t->writer, &err) < 0) {
		report(t, NPUFARM_OUTCOME_CRASH, err.msg, NULL);
		return;
	}
	t->size = (uint64_t)size;
	len = strlen(data);
	raw = malloc(len / 4 * 3 + 3);
	if (raw == NULL) {
		report(
		    t, NPUFARM_OUTCOME_CRASH, "out of memory fetching", NULL);
		return;
	}
	n = EVP_DecodeBlock(raw, (const unsigned char *)data, (int)len);
	while (len > 0 && data[len - 1] == '=') {
		pad++;
		len--;
	}
	if (n < 0 || (size_t)n < pad ||
	    (r = cache_write(t->writer, raw, (size_t)n - pad, &err)) < 0) {
		free(raw);
		/* A transfer that went wrong is lost (and retried elsewhere),
		 * not the candidate's crash; a local write error is ours. */
		report(t,
		    n < 0 || (size_t)n < pad || r == -EFBIG
			? NPUFARM_OUTCOME_LOST
			: NPUFARM_OUTCOME_CRASH,
		    n < 0 || (size_t)n < pad ? "a malformed artifact chunk"
					     : err.msg,
		    NULL);
		return;
	}
	free(raw);
	t->fetched += (size_t)n - pad;
	if (t->fetched < t->size) {
		fetch_next(t);
		return;
	}
	r = cache_commit(t->writer, &err);
	if (r < 0) {
		t->writer = NULL;
		/* A digest or size that does not match: a transfer failure. */
		report(t,
		    r == -EBADMSG ? NPUFARM_OUTCOME_LOST
				  : NPUFARM_OUTCOME_CRASH,
		    err.msg, NULL);
		return;
	}
	t->writer = NULL;
	log_info("artifact %.12s fetched (%llu bytes)", sha,
	    (unsigned long long)t->size);
	task_prepare(t);
}

/* ---- frames ------------------------------------------------------------- */

/* {"type": "task", "task": ID, "attempt": N, "spec": {...}}. */
static void
handle_task(struct tasks *t, json_t *v)
{
	json_int_t id, attempt;
	struct npufarm_err err;
	json_t *spec;

	if (json_unpack(v, "{s:I, s:I, s:o}", "task", &id, "attempt", &attempt,
		"spec", &spec) < 0) {
		log_warn("broker sent a malformed task");
		return;
	}
	if (t->state != TASKS_IDLE) {
		if (t->id == id && t->attempt == attempt)
			return; /* a resend */
		log_warn("broker sent task %lld while %lld runs", (long long)id,
		    (long long)t->id);
		return;
	}
	t->id = id;
	t->attempt = (int)attempt;
	if (task_spec_parse(spec, "task", t->spec, &err) < 0) {
		report(t, NPUFARM_OUTCOME_REJECTED, err.msg, NULL);
		return;
	}
	task_prepare(t);
}

/* {"type": "cancel", "task": ID, "attempt": N}. */
static void
handle_cancel(struct tasks *t, json_t *v)
{
	json_int_t id, attempt;

	if (json_unpack(v, "{s:I, s:I}", "task", &id, "attempt", &attempt) <
		0 ||
	    t->id != id || t->attempt != attempt)
		return;
	if (t->state == TASKS_FETCHING)
		report(t, NPUFARM_OUTCOME_CANCELLED, "cancelled before it ran",
		    NULL);
	else if (t->state == TASKS_RUNNING)
		task_kill(
		    t, NPUFARM_OUTCOME_CANCELLED, "cancelled while running");
}

void
tasks_frame(struct tasks *t, const char *type, json_t *v)
{
	if (strcmp(type, "task") == 0)
		handle_task(t, v);
	else if (strcmp(type, "cancel") == 0)
		handle_cancel(t, v);
	else if (strcmp(type, "chunk") == 0)
		handle_chunk(t, v);
}

/* The link is back: say what runs, and go on fetching. */
void
tasks_link_up(struct tasks *t)
{
	if (t->state == TASKS_IDLE || t->link == NULL)
		return;
	(void)link_send(
	    t->link, json_pack("{ss sI si}", "type", "running", "task",
			 (json_int_t)t->id, "attempt", t->attempt));
	if (t->state == TASKS_FETCHING) {
		/* The chunk in flight was lost with the old link. */
		t->writer = cache_abort(t->writer);
		t->fetched = 0;
		fetch_next(t);
	}
}

bool
tasks_busy(const struct tasks *t)
{
	return t->state != TASKS_IDLE;
}

void
tasks_set_link(struct tasks *t, struct link *l)
{
	t->link = l;
}

int
tasks_new(struct event_base *base, const struct tasks_config *cfg,
    struct tasks **ret_tasks, struct npufarm_err *err)
{
	struct tasks *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	t->base = base;
	t->cfg = *cfg;
	t->spec = calloc(1, sizeof(*t->spec));
	t->deadline_ev = evtimer_new(base, deadline_cb, t);
	t->kill_ev = evtimer_new(base, kill_cb, t);
	if (t->spec == NULL || t->deadline_ev == NULL || t->kill_ev == NULL) {
		tasks_free(t);
		return err_set(err, -ENOMEM, "out of memory");
	}
	*ret_tasks = t;
	return 0;
}

/* Free @t; a running task is killed and reaped.  NULL in, NULL out. */
struct tasks *
tasks_free(struct tasks *t)
{
	if (t == NULL)
		return NULL;
	t->run = runner_free(t->run);
	if (t->read_ev != NULL)
		event_free(t->read_ev);
	if (t->deadline_ev != NULL)
		event_free(t->deadline_ev);
	if (t->kill_ev != NULL)
		event_free(t->kill_ev);
	t->writer = cache_abort(t->writer);
	if (t->pinned)
		cache_release(t->cfg.cache, t->spec->artifact);
	if (t->ref_pinned)
		cache_release(t->cfg.cache, t->spec->check.ref);
	free(t->spec);
	free(t);
	return NULL;
}
