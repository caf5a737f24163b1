/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Native tuning jobs (see jobs.h).  Jobs that still have tasks without an
 * outcome live in memory; everything is in the ledger, which is what the
 * API reads and what a restarted broker recovers from.
 *
 * The agent link carries, broker to agent:
 *   {"type": "task", "task": ID, "attempt": N, "spec": {...}}
 *   {"type": "cancel", "task": ID, "attempt": N}
 *   {"type": "chunk", "sha256": S, "offset": O, "size": TOTAL,
 *    "data": BASE64}                   (an answer to "fetch")
 * and agent to broker:
 *   {"type": "result", "id": "task-ID-N", "task": ID, "attempt": N,
 *    "outcome": ..., "detail": ..., "costs": [...], "number": K,
 *    "signal": S, "status": X}         (acknowledged after commit)
 *   {"type": "running", "task": ID, "attempt": N}  (after a reconnect)
 *   {"type": "fetch", "sha256": S, "offset": O}
 */
#include "config.h"

#include "jobs.h"

#include <errno.h>
#include <openssl/evp.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include <npufarm/outcome.h>

#include "agent_link.h"
#include "artifacts.h"
#include "broker_config.h"
#include "clock.h"
#include "err.h"
#include "json_util.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "scheduler.h"
#include "sha256_util.h"
#include "tags.h"
#include "task_spec.h"
#include "tracker.h"

/* Attempts of a task: the first, and one retry after it was lost. */
#define JOBS_MAX_ATTEMPTS 2
/* Bytes of an artifact per chunk frame (base64 keeps it under 1 MiB). */
#define JOBS_CHUNK        (256 * 1024)

/* Per-job counts: queued, running, then one per outcome class. */
enum {
	COUNT_QUEUED,
	COUNT_RUNNING,
	COUNT_OUTCOME,
	COUNT_MAX = COUNT_OUTCOME + NPUFARM_OUTCOME_MAX,
};

enum task_state {
	TASK_QUEUED,
	TASK_RUNNING,
	TASK_DONE,
};

struct job;

struct task {
	struct lease_request lr; /* while queued; its ops: task_ops */
	struct job *job;         /* borrowed: owner */
	int64_t id;
	int idx;
	char *spec; /* the task's JSON, compact, as the agent gets it */
	char *name; /* NULL when none */
	enum task_state state;
	int attempts;
	struct agent *agent; /* running on; NULL while its agent is away */
	int64_t board_id;    /* running on (or last ran on) */
	struct event *grace_ev;
	int64_t queued_us, started_us; /* this attempt's, for metrics */
};

struct waiter {
	struct jobs *jobs;
	int64_t job_id;
	uint64_t after;
	jobs_wait_fn *fn; /* the answer goes there */
	void *arg;        /* ... with this, borrowed */
	struct event *timer;
	TAILQ_ENTRY(waiter) link;
};

struct job {
	struct jobs *jobs;
	int64_t id;
	char *key, *user;
	char *tags; /* canonical tags the boards must carry (tags.h); NULL */
	double priority, queue_timeout;
	int64_t submitted_us;
	bool started; /* "running" is in the ledger */
	bool cancelled;
	size_t ntasks, nleft;
	struct task *tasks; /* ntasks */
	int counts[COUNT_MAX];
	uint64_t seq;            /* progress, for waiters */
	struct event *expire_ev; /* the queue timeout */
	struct event *nokey_ev;  /* --unknown-key-grace; NULL: not armed */
	TAILQ_ENTRY(job) link;
};

struct jobs {
	struct event_base *base;         /* borrowed */
	const struct broker_config *cfg; /* borrowed */
	struct ledger *ledger;           /* borrowed */
	struct metrics *metrics;         /* borrowed */
	struct artifacts *artifacts;     /* borrowed: tasks' kernels */
	struct sched *sched;             /* borrowed: the key queues */
	struct tracker *trk;             /* borrowed: boards, grants */
	struct agent_links *links;       /* borrowed: where tasks go */
	const struct timeval *tv_grace;  /* --unknown-key-grace, or NULL */
	TAILQ_HEAD(, job) live;
	void *by_task; /* tsearch of struct task * by id */
	TAILQ_HEAD(, waiter) waiters;
};

static int
task_cmp(const void *a, const void *b)
{
	const struct task *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static struct task *
task_find(struct jobs *j, int64_t id)
{
	struct task probe = {.id = id};
	void *found = tfind(&probe, &j->by_task, task_cmp);

	return found != NULL ? *(struct task **)found : NULL;
}

static struct job *
job_find(struct jobs *j, int64_t id)
{
	struct job *job;

	TAILQ_FOREACH(job, &j->live, link)
		if (job->id == id)
			return job;
	return NULL;
}

/* ---- progress and waiters ----------------------------------------- */

static json_t *
counts_json(const struct job *job)
{
	json_t *v = json_object();
	int i;

	if (v == NULL)
		return NULL;
	(void)json_object_set_new(
	    v, "total", json_integer((json_int_t)job->ntasks));
	(void)json_object_set_new(
	    v, "queued", json_integer(job->counts[COUNT_QUEUED]));
	(void)json_object_set_new(
	    v, "running", json_integer(job->counts[COUNT_RUNNING]));
	for (i = 0; i < NPUFARM_OUTCOME_MAX; i++)
		if (job->counts[COUNT_OUTCOME + i] > 0)
			(void)json_object_set_new(v,
			    npufarm_outcome_name((enum npufarm_outcome)i),
			    json_integer(job->counts[COUNT_OUTCOME + i]));
	return v;
}

static const char *
job_state(const struct job *job)
{
	if (job->cancelled && job->nleft == 0)
		return "cancelled";
	if (job->nleft == 0)
		return "done";
	return job->started ? "running" : "queued";
}

static json_t *
job_json(const struct job *job)
{
	return json_pack("{sI ss ss sf ss so so so}", "id", (json_int_t)job->id,
	    "key", job->key, "user", job->user, "priority", job->priority,
	    "state", job_state(job), "submitted",
	    json_util_time(job->submitted_us), "finished", json_null(), "tasks",
	    counts_json(job));
}

/* The live job @id's summary (as GET /v1/jobs lists it), or NULL. */
json_t *
jobs_live_summary(struct jobs *j, int64_t id)
{
	struct job *job = job_find(j, id);

	return job != NULL ? job_json(job) : NULL;
}

static void
waiter_free(struct waiter *w)
{
	TAILQ_REMOVE(&w->jobs->waiters, w, link);
	if (w->timer != NULL)
		event_free(w->timer);
	free(w);
}

/* Answer waiter @w with @summary (NULL: the job is over, from the API). */
static void
waiter_answer(struct waiter *w, json_t *summary, uint64_t seq, bool done)
{
	json_t *v = summary != NULL
			? json_deep_copy(summary)
			: json_pack("{sI}", "id", (json_int_t)w->job_id);

	if (v != NULL) {
		(void)json_object_set_new(
		    v, "seq", json_integer((json_int_t)seq));
		(void)json_object_set_new(v, "done", json_boolean(done));
	}
	w->fn(w->arg, v);
	json_decref(v);
	waiter_free(w);
}

/* @job made progress: answer every waiter that wants to hear it. */
static void
job_progress(struct job *job)
{
	struct jobs *j = job->jobs;
	struct waiter *w, *next;
	json_t *summary = NULL;

	job->seq++;
	for (w = TAILQ_FIRST(&j->waiters); w != NULL; w = next) {
		next = TAILQ_NEXT(w, link);
		if (w->job_id != job->id || w->after >= job->seq)
			continue;
		if (summary == NULL)
			summary = job_json(job);
		waiter_answer(w, summary, job->seq, job->nleft == 0);
	}
	json_decref(summary);
}

static void
waiter_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;
	struct job *job = job_find(w->jobs, w->job_id);
	json_t *summary = job != NULL ? job_json(job) : NULL;

	waiter_answer(
	    w, summary, job != NULL ? job->seq : w->after, job == NULL);
	json_decref(summary);
}

/*
 * Forget the waits whose argument @match(arg, @ctx) picks, unanswered
 * (the client hung up: its requests go with it).
 */
void
jobs_wait_drop(struct jobs *j, jobs_wait_match_fn *match, void *ctx)
{
	struct waiter *w, *next;

	for (w = TAILQ_FIRST(&j->waiters); w != NULL; w = next) {
		next = TAILQ_NEXT(w, link);
		if (match(w->arg, ctx))
			waiter_free(w);
	}
}

/*
 * GET /v1/jobs/{id}/wait: call @fn(@arg, summary) once, when live job
 * @id's progress passes @after, or after @timeout seconds.  1: not live
 * (nothing called: the caller answers from the ledger), 0: answered now,
 * JOBS_WAITING: it will be, unless jobs_wait_drop() forgets it; -ENOMEM.
 */
int
jobs_wait(struct jobs *j, int64_t id, uint64_t after, double timeout,
    jobs_wait_fn *fn, void *arg)
{
	struct job *job = job_find(j, id);
	struct timeval tv;
	struct waiter *w;
	json_t *summary;

	if (job == NULL)
		return 1;
	if (job->seq > after) {
		summary = job_json(job);
		w = calloc(1, sizeof(*w));
		if (w == NULL || summary == NULL) {
			free(w);
			json_decref(summary);
			return -ENOMEM;
		}
		w->jobs = j;
		w->job_id = id;
		w->fn = fn;
		w->arg = arg;
		TAILQ_INSERT_TAIL(&j->waiters, w, link);
		waiter_answer(w, summary, job->seq, job->nleft == 0);
		json_decref(summary);
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	w->jobs = j;
	w->job_id = id;
	w->after = after;
	w->fn = fn;
	w->arg = arg;
	w->timer = evtimer_new(j->base, waiter_timeout_cb, w);
	tv = clock_tv(timeout);
	if (w->timer == NULL || evtimer_add(w->timer, &tv) < 0) {
		if (w->timer != NULL)
			event_free(w->timer);
		free(w);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&j->waiters, w, link);
	return JOBS_WAITING;
}

/* ---- queueing ------------------------------------------------------ */

/* Put task @t in its key's queue.  0 or -ENOMEM (or -E2BIG: max_keys). */
static int
task_enqueue(struct task *t)
{
	struct job *job = t->job;
	struct jobs *js = job->jobs;
	struct sched_queue *q;
	int r;

	r = sched_queue_get(js->sched, job->key, true, &q);
	if (r < 0)
		return r;
	t->lr.s.kind = SCHED_KIND_TASK;
	t->lr.s.tags = job->tags;
	t->queued_us = ledger_now_us();
	return sched_enqueue(q, &t->lr.s, job->user, job->priority);
}

static int
task_requeue(struct task *t)
{
	int r = task_enqueue(t);

	if (r == 0)
		tracker_schedule(t->job->jobs->trk, t->job->key);
	return r;
}

/* ---- task and job ends -------------------------------------------- */

static void job_free(struct job *job);

static void
count_move(struct job *job, int from, int to)
{
	if (from >= 0)
		job->counts[from]--;
	if (to >= 0)
		job->counts[to]++;
}

/* The job's last task ended: record it, answer waiters, forget it. */
static void
job_finish(struct job *job)
{
	struct jobs *js = job->jobs;
	struct npufarm_err err;

	(void)ledger_job_state(
	    js->ledger, job->id, job_state(job), ledger_now_us(), &err);
	log_notice("job %lld (%s, %zu tasks) %s", (long long)job->id, job->key,
	    job->ntasks, job_state(job));
	job_progress(job);
	job_free(job);
}

/*
 * Task @t's attempt (0: none ran) ended as @res; @final: it is the task's
 * outcome (else the task is queued again).  Frees the job when it was the
 * last.  Returns true if the job was freed.
 */
static bool
task_end(struct task *t, enum npufarm_outcome outcome,
    const struct ledger_task_result *res, bool final)
{
	struct job *job = t->job;
	struct jobs *js = job->jobs;
	struct npufarm_err err;
	int from = t->state == TASK_QUEUED    ? COUNT_QUEUED
		   : t->state == TASK_RUNNING ? COUNT_RUNNING
					      : -1;

	if (t->grace_ev != NULL)
		(void)evtimer_del(t->grace_ev);
	if (t->state == TASK_RUNNING && t->started_us != 0)
		metrics_task_run(js->metrics, job->key,
		    (double)(ledger_now_us() - t->started_us) / 1e6);
	if (final)
		metrics_task_end(
		    js->metrics, job->key, npufarm_outcome_name(outcome));
	(void)ledger_task_finish(js->ledger, t->id,
	    t->state == TASK_RUNNING ? t->attempts : 0, res, final, &err);
	sched_dequeue(&t->lr.s);
	t->agent = NULL;
	if (!final) {
		t->state = TASK_QUEUED;
		count_move(job, from, COUNT_QUEUED);
		(void)ledger_task_requeue(js->ledger, t->id, &err);
		if (task_requeue(t) < 0)
			log_err("task %lld: out of memory requeueing it",
			    (long long)t->id);
		job_progress(job);
		return false;
	}
	t->state = TASK_DONE;
	count_move(job, from, COUNT_OUTCOME + (int)outcome);
	log_info("task %lld (job %lld #%d) %s%s%s", (long long)t->id,
	    (long long)job->id, t->idx, npufarm_outcome_name(outcome),
	    res->detail ? ": " : "", res->detail ? res->detail : "");
	if (--job->nleft == 0) {
		job_finish(job);
		return true;
	}
	job_progress(job);
	return false;
}

/* End task @t without a run report: expired, cancelled, lost, rejected. */
static bool
task_end_plain(struct task *t, enum npufarm_outcome outcome, const char *detail,
    bool final)
{
	struct ledger_task_result res = {
	    .outcome = npufarm_outcome_name(outcome),
	    .detail = detail,
	    .signal = 0,
	    .status = -1,
	    .finished_us = ledger_now_us(),
	};

	return task_end(t, outcome, &res, final);
}

static void
expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *job = arg;
	char detail[128];
	size_t i, n = job->ntasks;

	(void)snprintf(detail, sizeof(detail),
	    "still queued after the job's queue timeout of %g s",
	    job->queue_timeout);
	for (i = 0; i < n; i++)
		if (job->tasks[i].state == TASK_QUEUED &&
		    task_end_plain(
			&job->tasks[i], NPUFARM_OUTCOME_EXPIRED, detail, true))
			return; /* the job is gone */
}

/*
 * --unknown-key-grace passed and still no board has the job's key: its
 * queued tasks end rejected, naming the keys that exist (as a TVM request
 * for such a key fails).  A board of the key that came meanwhile keeps the
 * job waiting.
 */
static void
nokey_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *job = arg;
	struct jobs *js = job->jobs;
	char keys[512], detail[768];
	size_t i, n = job->ntasks;

	if (tracker_key_boards(js->trk, job->key) > 0)
		return;
	tracker_known_keys(js->trk, keys, sizeof(keys));
	(void)snprintf(detail, sizeof(detail),
	    "no board with key '%s' registered within %g s "
	    "(unknown_key_grace); keys with boards: %s",
	    job->key, js->cfg->unknown_key_grace, keys);
	log_notice("job %lld: %s", (long long)job->id, detail);
	for (i = 0; i < n; i++)
		if (job->tasks[i].state == TASK_QUEUED &&
		    task_end_plain(
			&job->tasks[i], NPUFARM_OUTCOME_REJECTED, detail, true))
			return; /* the job is gone */
}

/* ---- jobs ---------------------------------------------------------- */

static void
job_free(struct job *job)
{
	struct jobs *j = job->jobs;
	size_t i;

	TAILQ_REMOVE(&j->live, job, link);
	for (i = 0; i < job->ntasks; i++) {
		struct task *t = &job->tasks[i];

		sched_dequeue(&t->lr.s);
		(void)tdelete(t, &j->by_task, task_cmp);
		if (t->grace_ev != NULL)
			event_free(t->grace_ev);
		free(t->spec);
		free(t->name);
	}
	if (job->expire_ev != NULL)
		event_free(job->expire_ev);
	if (job->nokey_ev != NULL)
		event_free(job->nokey_ev);
	free(job->tasks);
	free(job->key);
	free(job->user);
	free(job->tags);
	free(job);
}

static struct job *
job_new(struct jobs *j, const char *key, const char *user, double priority,
    double queue_timeout, size_t ntasks)
{
	struct job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return NULL;
	job->jobs = j;
	job->key = strdup(key);
	job->user = strdup(user);
	job->priority = priority;
	job->queue_timeout = queue_timeout;
	job->ntasks = ntasks;
	job->nleft = ntasks;
	job->tasks = calloc(ntasks ? ntasks : 1, sizeof(*job->tasks));
	job->expire_ev = evtimer_new(j->base, expire_cb, job);
	if (job->key == NULL || job->user == NULL || job->tasks == NULL ||
	    job->expire_ev == NULL) {
		if (job->expire_ev != NULL)
			event_free(job->expire_ev);
		free(job->key);
		free(job->user);
		free(job->tasks);
		free(job);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&j->live, job, link);
	return job;
}

static void
job_arm_expiry(struct job *job)
{
	double left = job->queue_timeout -
		      (double)(ledger_now_us() - job->submitted_us) / 1e6;
	struct timeval tv = clock_tv(left); /* negative: now */

	(void)evtimer_add(job->expire_ev, &tv);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg);
static void task_info(
    const struct lease_request *lr, struct jobs_task_info *ret_info);
static void task_granted(struct lease_request *lr, struct slot *s);
static void task_board_gone(struct lease_request *lr, const char *why);

/* What the queue views show of waiting task @lr. */
static void
task_describe(const struct lease_request *lr, struct tracker_request_info *ret)
{
	struct jobs_task_info ti;

	task_info(lr, &ti);
	ret->kind = "task";
	ret->priority = ti.priority;
	ret->requested_us = ti.queued_us;
	ret->job = ti.job;
	ret->task_idx = ti.idx;
}

/* A native task in its key's queue, then on an agent's board. */
static const struct lease_request_ops task_ops = {
    .granted = task_granted,
    .board_gone = task_board_gone,
    .describe = task_describe,
    .task_info = task_info,
};

static int
task_init(struct task *t, struct job *job, int idx, int64_t id,
    const char *spec, const char *name, unsigned needs)
{
	t->job = job;
	t->idx = idx;
	t->id = id;
	t->lr.s.kind = SCHED_KIND_TASK;
	t->lr.s.needs = needs;
	t->lr.ops = &task_ops;
	t->spec = strdup(spec);
	t->name = name != NULL && name[0] ? strdup(name) : NULL;
	t->grace_ev = evtimer_new(job->jobs->base, grace_cb, t);
	if (t->spec == NULL || t->grace_ev == NULL ||
	    tsearch(t, &job->jobs->by_task, task_cmp) == NULL)
		return -ENOMEM;
	return 0;
}

static unsigned
runner_caps(enum task_runner runner)
{
	return runner == TASK_RUNNER_EXEC ? SCHED_CAP_EXEC : SCHED_CAP_KERNEL;
}

/* A job checked against docs/api.md, ready to record (jobs_parse()). */
struct jobs_parsed_task {
	char *text; /* the task's spec, compact JSON */
	char *name; /* NULL when none */
	enum task_runner runner;
};

struct jobs_parsed {
	char *key, *user;
	char *tags; /* the job's "tags" as JSON text, or NULL */
	double priority, queue_timeout;
	size_t n;
	struct jobs_parsed_task *tasks; /* n of them */
};

/* The number of tasks of @p, and task @i's spec text (borrowed from @p). */
size_t
jobs_parsed_count(const struct jobs_parsed *p)
{
	return p->n;
}

const char *
jobs_parsed_task(const struct jobs_parsed *p, size_t i)
{
	return p->tasks[i].text;
}

/* The job's key (borrowed from @p). */
const char *
jobs_parsed_key(const struct jobs_parsed *p)
{
	return p->key;
}

/* Accepts NULL. */
void
jobs_parsed_free(struct jobs_parsed *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; p->tasks != NULL && i < p->n; i++) {
		free(p->tasks[i].text);
		free(p->tasks[i].name);
	}
	free(p->tasks);
	free(p->key);
	free(p->user);
	free(p->tags);
	free(p);
}

/*
 * The job-level fields of the POST /v1/jobs @body, checked, into a new
 * *@ret without tasks yet; its "tasks" (borrowed) in *@ret_tasks.
 */
static int
parse_head(const struct broker_config *cfg, json_t *body, const char *peer,
    struct jobs_parsed **ret, json_t **ret_tasks, struct npufarm_err *err)
{
	const char *key = NULL, *user = NULL;
	double priority = 0, queue_timeout = 3600;
	struct jobs_parsed *p;
	json_t *tasks = NULL, *tags = NULL;
	json_error_t jerr;

	if (json_unpack_ex(body, &jerr, JSON_STRICT,
		"{s:s, s?s, s?F, s?F, s:o, s?o}", "key", &key, "user", &user,
		"priority", &priority, "queue_timeout", &queue_timeout, "tasks",
		&tasks, "tags", &tags) < 0)
		return err_set(err, -EINVAL, "job: %s", jerr.text);
	if (key[0] == '\0' || strlen(key) > (size_t)cfg->max_key_len)
		return err_set(err, -EINVAL, "key: must be 1..%ld bytes",
		    cfg->max_key_len);
	if (user == NULL || user[0] == '\0')
		user = peer;
	if (strlen(user) > (size_t)cfg->max_key_len)
		return err_set(
		    err, -EINVAL, "user: at most %ld bytes", cfg->max_key_len);
	if (queue_timeout <= 0 || queue_timeout > 30 * 86400)
		return err_set(err, -EINVAL,
		    "queue_timeout: %g is not in (0, 2592000] seconds",
		    queue_timeout);
	if (priority != priority || priority < -1e9 || priority > 1e9)
		return err_set(err, -EINVAL, "priority: out of range");
	if (!json_is_array(tasks))
		return err_set(
		    err, -EINVAL, "tasks: must be a non-empty array");
	p = calloc(1, sizeof(*p));
	if (p != NULL) {
		p->key = strdup(key);
		p->user = strdup(user);
	}
	if (p == NULL || p->key == NULL || p->user == NULL) {
		jobs_parsed_free(p);
		return err_set(err, -ENOMEM, "out of memory");
	}
	p->priority = priority;
	p->queue_timeout = queue_timeout;
	/* Checked on the loop (tags_canon()), before anything is written. */
	if (tags != NULL && (p->tags = json_dumps(tags,
				 JSON_COMPACT | JSON_ENCODE_ANY)) == NULL) {
		jobs_parsed_free(p);
		return err_set(err, -ENOMEM, "out of memory");
	}
	*ret = p;
	*ret_tasks = tasks;
	return 0;
}

/* Room for @n tasks in @p; -EINVAL/-E2BIG for a count out of bounds. */
static int
parse_count(struct jobs_parsed *p, size_t n, struct npufarm_err *err)
{
	if (n == 0)
		return err_set(
		    err, -EINVAL, "tasks: must be a non-empty array");
	if (n > TASK_SPEC_MAX_TASKS)
		return err_set(err, -E2BIG,
		    "tasks: %zu tasks is over the limit of %d", n,
		    TASK_SPEC_MAX_TASKS);
	p->tasks = calloc(n, sizeof(*p->tasks));
	if (p->tasks == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	p->n = n;
	return 0;
}

/* Task @i of @p from its JSON @tv: checked, its artifact here, as text. */
static int
parse_task(const struct artifacts *arts, struct jobs_parsed *p, size_t i,
    const json_t *tv, struct task_spec *spec, struct npufarm_err *err)
{
	char path[64];
	uint64_t size;
	int r;

	(void)snprintf(path, sizeof(path), "tasks[%zu]", i);
	r = task_spec_parse(tv, path, spec, err);
	if (r == 0 && artifacts_size(arts, spec->artifact, &size) < 0)
		r = err_set(err, -EINVAL,
		    "tasks[%zu].artifact: no artifact %s; PUT "
		    "/v1/artifacts/%s first",
		    i, spec->artifact, spec->artifact);
	if (r == 0 && spec->check.on &&
	    artifacts_size(arts, spec->check.ref, &size) < 0)
		r = err_set(err, -EINVAL,
		    "tasks[%zu].check.ref: no artifact %s; PUT "
		    "/v1/artifacts/%s first",
		    i, spec->check.ref, spec->check.ref);
	if (r < 0)
		return r;
	p->tasks[i].runner = spec->runner;
	p->tasks[i].text = json_dumps(tv, JSON_COMPACT);
	p->tasks[i].name = spec->name[0] ? strdup(spec->name) : NULL;
	if (p->tasks[i].text == NULL ||
	    (spec->name[0] && p->tasks[i].name == NULL))
		return err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/*
 * Check the POST /v1/jobs @body (docs/api.md) and everything its tasks
 * name, and keep only what recording the job needs: each task's spec as
 * compact text (the tree can go right after).  Touches no broker state
 * but @cfg (read) and @arts (fstatat), so it may run on any thread.
 * Returns 0 with *@ret (free with jobs_parsed_free()), or -EINVAL (bad
 * input: @err says what and where), -E2BIG or -ENOMEM.
 */
int
jobs_parse(const struct broker_config *cfg, const struct artifacts *arts,
    json_t *body, const char *peer, struct jobs_parsed **ret,
    struct npufarm_err *err)
{
	struct task_spec *spec = NULL;
	struct jobs_parsed *p = NULL;
	json_t *tasks;
	size_t i;
	int r;

	r = parse_head(cfg, body, peer, &p, &tasks, err);
	if (r < 0)
		return r;
	r = parse_count(p, json_array_size(tasks), err);
	spec = r == 0 ? malloc(sizeof(*spec)) : NULL;
	if (r == 0 && spec == NULL)
		r = err_set(err, -ENOMEM, "out of memory");
	for (i = 0; r == 0 && i < p->n; i++)
		r = parse_task(arts, p, i, json_array_get(tasks, i), spec, err);
	free(spec);
	if (r < 0) {
		jobs_parsed_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

/* ---- a job body one task at a time ------------------------------------ */

static const char *
skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* The end of the JSON string at @p (its opening quote), or NULL. */
static const char *
string_end(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/*
 * The end of the JSON value at @p, found by its brackets and strings only
 * (jansson checks the rest when it parses the value), or NULL.
 */
static const char *
value_end(const char *p, const char *e)
{
	int depth = 0;

	if (p >= e)
		return NULL;
	if (*p == '"')
		return string_end(p, e);
	if (*p != '{' && *p != '[') {
		while (p < e && *p != ',' && *p != ']' && *p != '}' &&
		       *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
		return p;
	}
	for (; p < e; p++) {
		if (*p == '"') {
			p = string_end(p, e);
			if (p == NULL)
				return NULL;
			p--;
		} else if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
	}
	return NULL;
}

struct span {
	const char *p;
	size_t len;
};

/*
 * Split the object in @buf into its members with "tasks" replaced by []
 * (into @head, of capacity @len + 16) and the elements of its "tasks"
 * array (into *@ret_tasks, *@ret_n of them).  0, 1 when @buf is not the
 * plain shape this expects (an escaped or repeated "tasks", a non-array
 * one, trailing bytes: the caller then parses it whole), -E2BIG over
 * TASK_SPEC_MAX_TASKS, -ENOMEM.
 */
static int
split_body(const char *buf, size_t len, char *head, struct span **ret_tasks,
    size_t *ret_n)
{
	const char *p = buf, *e = buf + len, *ks, *ke, *vs, *ve;
	const char *ts = NULL, *te = NULL;
	struct span *v = NULL, *nv;
	size_t h = 0, n = 0, cap = 0;

	p = skip_ws(p, e);
	if (p == e || *p != '{')
		return 1;
	head[h++] = '{';
	for (p = skip_ws(p + 1, e); p < e && *p != '}';) {
		if (*p != '"' || (ke = string_end(ks = p, e)) == NULL)
			return 1;
		p = skip_ws(ke, e);
		if (p == e || *p != ':')
			return 1;
		vs = skip_ws(p + 1, e);
		ve = value_end(vs, e);
		if (ve == NULL)
			return 1;
		memcpy(head + h, ks, (size_t)(ke - ks));
		h += (size_t)(ke - ks);
		head[h++] = ':';
		if (ke - ks == 7 && memcmp(ks, "\"tasks\"", 7) == 0) {
			if (ts != NULL || *vs != '[')
				return 1;
			ts = vs;
			te = ve;
			memcpy(head + h, "[]", 2);
			h += 2;
		} else {
			memcpy(head + h, vs, (size_t)(ve - vs));
			h += (size_t)(ve - vs);
		}
		p = skip_ws(ve, e);
		if (p < e && *p == ',') {
			head[h++] = ',';
			p = skip_ws(p + 1, e);
			if (p < e && *p == '}')
				return 1; /* a trailing comma: jansson says */
		} else if (p == e || *p != '}')
			return 1;
	}
	if (p == e || ts == NULL || skip_ws(p + 1, e) != e)
		return 1;
	head[h++] = '}';
	head[h] = '\0';
	for (p = skip_ws(ts + 1, te); p < te && *p != ']';) {
		ve = value_end(p, te);
		if (ve == NULL) {
			free(v);
			return 1;
		}
		if (n == TASK_SPEC_MAX_TASKS + 1) {
			free(v);
			return -E2BIG;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n].p = p;
		v[n++].len = (size_t)(ve - p);
		p = skip_ws(ve, te);
		if (p < te && *p == ',') {
			p = skip_ws(p + 1, te);
			if (p == te || *p == ']') {
				free(v);
				return 1; /* a trailing comma: jansson says */
			}
		} else if (p == te || *p != ']') {
			free(v);
			return 1;
		}
	}
	*ret_tasks = v;
	*ret_n = n;
	return 0;
}

/*
 * jobs_parse() of the body text @buf (@len bytes), parsing one task at a
 * time so that only one task's tree exists at once: memory stays near
 * the size of the text, not the ten-odd times more of a whole jansson
 * tree.  A body of another shape is parsed whole.  Same returns, any
 * thread.
 */
int
jobs_parse_text(const struct broker_config *cfg, const struct artifacts *arts,
    const char *buf, size_t len, const char *peer, struct jobs_parsed **ret,
    struct npufarm_err *err)
{
	struct jobs_parsed *p = NULL;
	struct task_spec *spec = NULL;
	struct span *tasks = NULL;
	json_t *body = NULL, *tv, *empty;
	json_error_t jerr;
	char *head = NULL;
	size_t i, n = 0;
	int r;

	if (json_util_depth(buf, len, (int)cfg->max_json_depth) < 0)
		return err_set(err, -EINVAL,
		    "JSON nested deeper than %ld levels", cfg->max_json_depth);
	head = malloc(len + 16);
	if (head == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	r = split_body(buf, len, head, &tasks, &n);
	if (r == -E2BIG)
		r = err_set(err, -E2BIG, "tasks: over the limit of %d",
		    TASK_SPEC_MAX_TASKS);
	else if (r == -ENOMEM)
		r = err_set(err, -ENOMEM, "out of memory");
	if (r < 0)
		goto out;
	if (r == 1) { /* another shape: whole */
		r = json_util_load(
		    buf, len, (int)cfg->max_json_depth, &body, err);
		if (r < 0)
			r = -EINVAL;
		else if (!json_is_object(body))
			r = err_set(
			    err, -EINVAL, "job: expected a JSON object");
		else
			r = jobs_parse(cfg, arts, body, peer, ret, err);
		goto out;
	}
	body = json_loads(head, JSON_REJECT_DUPLICATES, &jerr);
	if (body == NULL) {
		r = err_set(err, -EINVAL, "invalid JSON: %s", jerr.text);
		goto out;
	}
	r = parse_head(cfg, body, peer, &p, &empty, err);
	if (r == 0)
		r = parse_count(p, n, err);
	spec = r == 0 ? malloc(sizeof(*spec)) : NULL;
	if (r == 0 && spec == NULL)
		r = err_set(err, -ENOMEM, "out of memory");
	for (i = 0; r == 0 && i < n; i++) {
		tv = json_loadb(
		    tasks[i].p, tasks[i].len, JSON_REJECT_DUPLICATES, &jerr);
		if (tv == NULL) {
			r = err_set(err, -EINVAL,
			    "tasks[%zu]: invalid JSON: %s", i, jerr.text);
			break;
		}
		r = parse_task(arts, p, i, tv, spec, err);
		json_decref(tv);
	}
	if (r == 0) {
		*ret = p;
		p = NULL;
	}
out:
	jobs_parsed_free(p);
	json_decref(body);
	free(spec);
	free(tasks);
	free(head);
	return r;
}

/*
 * Record the job @p (from jobs_parse()), commit (the caller answers 201
 * only then), and queue its tasks.  Runs on the loop; @p stays the
 * caller's.  Returns 0, or -EINVAL (its tags: @err says what), -EIO (the
 * ledger) or -ENOMEM.
 */
int
jobs_submit_parsed(struct jobs *j, const struct jobs_parsed *p,
    const char *peer, int64_t *ret_id, int *ret_ntasks, struct npufarm_err *err)
{
	struct jobs *js = j;
	json_t *tags = NULL, *tags_obj;
	char *tags_text = NULL;
	struct ledger_job lj;
	struct job *job;
	size_t i, n = p->n;
	int r = 0;

	job = job_new(j, p->key, p->user, p->priority, p->queue_timeout, n);
	if (job == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	/* The tags its boards must carry, kept as the ledger's JSON too. */
	if (p->tags != NULL) {
		tags = json_loads(p->tags, JSON_DECODE_ANY, NULL);
		if (tags == NULL)
			r = err_set(err, -ENOMEM, "out of memory");
	}
	if (r == 0)
		r = tags_canon(tags, "tags", &job->tags, err);
	json_decref(tags);
	tags_obj = r == 0 && job->tags != NULL ? tags_json(job->tags) : NULL;
	tags_text = tags_obj != NULL
			? json_dumps(tags_obj, JSON_COMPACT | JSON_SORT_KEYS)
			: NULL;
	json_decref(tags_obj);
	if (r == 0 && job->tags != NULL && tags_text == NULL)
		r = err_set(err, -ENOMEM, "out of memory");
	if (r < 0) {
		job_free(job);
		return r;
	}
	job->submitted_us = ledger_now_us();
	lj = (struct ledger_job){
	    .key = p->key,
	    .user = p->user,
	    .peer = peer,
	    .priority = p->priority,
	    .queue_timeout = p->queue_timeout,
	    .ntasks = (int)n,
	    .submitted_us = job->submitted_us,
	    .tags = tags_text,
	};
	r = ledger_job_insert(js->ledger, &lj, &job->id, err);
	free(tags_text);
	for (i = 0; r == 0 && i < n; i++) {
		const struct jobs_parsed_task *pt = &p->tasks[i];

		r = ledger_task_insert(js->ledger, job->id, (int)i, pt->name,
		    task_spec_runner_name(pt->runner), pt->text,
		    job->submitted_us, &job->tasks[i].id, err);
		if (r == 0 &&
		    task_init(&job->tasks[i], job, (int)i, job->tasks[i].id,
			pt->text, pt->name, runner_caps(pt->runner)) < 0)
			r = err_set(err, -ENOMEM, "out of memory");
	}
	if (r < 0) {
		/* Out of memory half-way: the rows written so far describe a
		 * job nobody will see (it never was acknowledged).  Mark it,
		 * and forget it. */
		(void)ledger_job_state(
		    js->ledger, job->id, "cancelled", ledger_now_us(), NULL);
		job->ntasks = i < n ? i + 1 : n;
		job_free(job);
		return r;
	}
	/* Durable before acknowledged. */
	r = ledger_sync(js->ledger, err);
	if (r < 0) {
		job_free(job);
		/* Not err_set(err, ..., err->msg): vsnprintf into its own
		 * argument is undefined. */
		err_prefix(err, "the ledger could not commit the job: ");
		err->code = -EIO;
		return -EIO;
	}
	job->counts[COUNT_QUEUED] = (int)n;
	for (i = 0; i < n; i++)
		if (task_enqueue(&job->tasks[i]) < 0)
			log_err("job %lld: out of memory queueing task %zu",
			    (long long)job->id, i);
	job_arm_expiry(job);
	if (js->tv_grace != NULL && tracker_key_boards(js->trk, p->key) == 0) {
		job->nokey_ev = evtimer_new(js->base, nokey_cb, job);
		if (job->nokey_ev == NULL ||
		    evtimer_add(job->nokey_ev, js->tv_grace) < 0)
			log_err("job %lld: out of memory arming its "
				"unknown_key_grace",
			    (long long)job->id);
	}
	log_notice("job %lld: %zu tasks for '%s' from %s (user %s)",
	    (long long)job->id, n, p->key, peer, p->user);
	*ret_id = job->id;
	*ret_ntasks = (int)n;
	tracker_schedule(js->trk, p->key);
	return 0;
}

/*
 * POST /v1/jobs on the loop itself: jobs_parse() then
 * jobs_submit_parsed().  Returns 0, or -EINVAL (bad input: @err says what
 * and where), -E2BIG (a limit), -EIO (the ledger) or -ENOMEM.  The API
 * parses off the loop instead (jobs_parse.c).
 */
int
jobs_submit(struct jobs *j, json_t *body, const char *peer, int64_t *ret_id,
    int *ret_ntasks, struct npufarm_err *err)
{
	struct jobs_parsed *p;
	int r;

	r = jobs_parse(j->cfg, j->artifacts, body, peer, &p, err);
	if (r < 0)
		return r;
	r = jobs_submit_parsed(j, p, peer, ret_id, ret_ntasks, err);
	jobs_parsed_free(p);
	return r;
}

/*
 * POST /v1/jobs/{id}/cancel: queued tasks end cancelled now; running ones
 * are killed by their agents (which report them cancelled).  Returns 0
 * with the tasks affected in *ret_n, or -ENOENT for a job that is not
 * live (over, or unknown).
 */
int
jobs_cancel(struct jobs *j, int64_t id, int *ret_n)
{
	struct job *job = job_find(j, id);
	size_t i, n;
	int count = 0;

	if (job == NULL)
		return -ENOENT;
	job->cancelled = true;
	(void)evtimer_del(job->expire_ev);
	n = job->ntasks;
	for (i = 0; i < n; i++) {
		struct task *t = &job->tasks[i];

		if (t->state == TASK_RUNNING && t->agent != NULL) {
			(void)agent_link_send(t->agent,
			    json_pack("{ss sI si}", "type", "cancel", "task",
				(json_int_t)t->id, "attempt", t->attempts));
			count++;
			continue;
		}
		if (t->state == TASK_DONE)
			continue;
		count++;
		if (task_end_plain(t, NPUFARM_OUTCOME_CANCELLED,
			t->state == TASK_RUNNING
			    ? "cancelled while its agent was away"
			    : "cancelled before it ran",
			true)) {
			*ret_n = count;
			return 0; /* the job is gone */
		}
	}
	log_notice(
	    "job %lld: cancel asked; %d tasks affected", (long long)id, count);
	*ret_n = count;
	return 0;
}

/*
 * What the views show of task @lr (queued or running), into @ret_info;
 * its strings live as long as the task.
 */
static void
task_info(const struct lease_request *lr, struct jobs_task_info *ret_info)
{
	const struct task *t = container_of(lr, struct task, lr);

	*ret_info = (struct jobs_task_info){
	    .job = t->job->id,
	    .idx = t->idx,
	    .id = t->id,
	    .attempt = t->attempts,
	    .user = t->job->user,
	    .name = t->name,
	    .priority = t->job->priority,
	    .queued_us = t->queued_us,
	    .started_us = t->state == TASK_RUNNING ? t->started_us : 0,
	};
}

/* ---- running tasks -------------------------------------------------- */

/* The tracker granted free slot @s of an agent's board to task @lr: take
 * the board and send the agent the task. */
static void
task_granted(struct lease_request *lr, struct slot *s)
{
	struct task *t = container_of(lr, struct task, lr);
	struct job *job = t->job;
	struct jobs *js = job->jobs;
	int64_t board_id;
	struct agent *a = tracker_task_take(s, &lr->s, &board_id);
	struct npufarm_err err;
	json_error_t jerr;
	json_t *spec;

	count_move(job, COUNT_QUEUED, COUNT_RUNNING);
	t->state = TASK_RUNNING;
	t->attempts++;
	t->agent = a;
	t->board_id = board_id;
	t->started_us = ledger_now_us();
	metrics_queue_wait(js->metrics, job->key,
	    (double)(t->started_us - t->queued_us) / 1e6);
	(void)ledger_task_start(
	    js->ledger, t->id, t->attempts, board_id, t->started_us, &err);
	if (!job->started) {
		job->started = true;
		(void)ledger_job_state(js->ledger, job->id, "running", 0, &err);
	}
	job_progress(job);
	spec = json_loads(t->spec, 0, &jerr);
	if (agent_link_send(a, json_pack("{ss sI si so}", "type", "task",
				   "task", (json_int_t)t->id, "attempt",
				   t->attempts, "spec", spec)) < 0)
		log_err("task %lld: out of memory sending it; it will be "
			"lost and retried",
		    (long long)t->id);
	log_info("task %lld (job %lld #%d) attempt %d on board %lld",
	    (long long)t->id, (long long)job->id, t->idx, t->attempts,
	    (long long)board_id);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task *t = arg;
	char detail[160];
	bool retry = t->attempts < JOBS_MAX_ATTEMPTS && !t->job->cancelled;

	if (t->state != TASK_RUNNING || t->agent != NULL)
		return;
	(void)snprintf(detail, sizeof(detail),
	    "its agent (board %lld) vanished mid-task and did not come back "
	    "within %g s%s",
	    (long long)t->board_id, t->job->jobs->cfg->task_grace,
	    retry ? "; retried" : "");
	(void)task_end_plain(t, NPUFARM_OUTCOME_LOST, detail, !retry);
}

/*
 * The board running task @lr is gone (its agent's link closed): the agent
 * may come back within --task-grace and report or resume it; else lost.
 */
static void
task_board_gone(struct lease_request *lr, const char *why)
{
	struct task *t = container_of(lr, struct task, lr);
	struct jobs *js = t->job->jobs;
	struct timeval tv;

	if (t->state != TASK_RUNNING)
		return;
	t->agent = NULL;
	tv = clock_tv(js->cfg->task_grace);
	(void)evtimer_add(t->grace_ev, &tv);
	log_warn("task %lld: its board's agent is gone (%s); waiting %g s for "
		 "it",
	    (long long)t->id, why, js->cfg->task_grace);
}

/* {"type": "running", "task": ID, "attempt": N}: back after a reconnect. */
static int
handle_running(
    struct jobs *js, struct agent *a, json_t *v, struct npufarm_err *err)
{
	json_int_t id = 0, attempt = 0;
	const char *type;
	json_error_t jerr;
	struct task *t;

	if (json_unpack_ex(v, &jerr, JSON_STRICT, "{s:s, s:I, s:I}", "type",
		&type, "task", &id, "attempt", &attempt) < 0)
		return err_set(err, -EINVAL, "running: %s", jerr.text);
	t = task_find(js, id);
	if (t == NULL || t->state != TASK_RUNNING || t->attempts != attempt ||
	    t->agent != NULL || t->board_id != agent_board_id(a)) {
		/* Not ours any more (lost and retried, or cancelled): stop. */
		(void)agent_link_send(
		    a, json_pack("{ss sI sI}", "type", "cancel", "task", id,
			   "attempt", attempt));
		return 0;
	}
	(void)evtimer_del(t->grace_ev);
	t->agent = a;
	tracker_agent_task_resume(agent_link_board(a), &t->lr.s);
	log_notice("task %lld: its agent is back and still running it",
	    (long long)t->id);
	return 0;
}

/* {"type": "result", ...}: an attempt's end, acknowledged after commit. */
static int
handle_result(
    struct jobs *js, struct agent *a, json_t *v, struct npufarm_err *err)
{
	const char *type, *id, *outcome, *detail;
	json_int_t task, attempt, number = 0;
	struct ledger_task_result res = {0};
	json_t *costs = NULL, *jdetail = NULL;
	int sig = 0, status = -1, o;
	json_error_t jerr;
	char *costs_text = NULL;
	struct task *t;
	bool mine;

	if (json_unpack_ex(v, &jerr, JSON_STRICT,
		"{s:s, s:s, s:I, s:I, s:s, s?o, s?o, s?I, s?i, s?i}", "type",
		&type, "id", &id, "task", &task, "attempt", &attempt, "outcome",
		&outcome, "detail", &jdetail, "costs", &costs, "number",
		&number, "signal", &sig, "status", &status) < 0)
		return err_set(err, -EINVAL, "result: %s", jerr.text);
	if ((o = npufarm_outcome_from_name(outcome)) < 0)
		return err_set(err, -EINVAL, "result: unknown outcome");
	if (id[0] == '\0' || strlen(id) > (size_t)js->cfg->max_key_len)
		return err_set(err, -EINVAL,
		    "result: id: empty or longer than max_key_len=%ld",
		    js->cfg->max_key_len);
	if (jdetail != NULL && !json_is_string(jdetail) &&
	    !json_is_null(jdetail))
		return err_set(
		    err, -EINVAL, "result: detail: expected a string or null");
	if (costs != NULL && !json_is_array(costs))
		return err_set(
		    err, -EINVAL, "result: costs: expected an array");
	if (number < 0)
		return err_set(err, -EINVAL, "result: number: negative");
	detail = json_string_value(jdetail); /* null or absent: none */
	t = task_find(js, task);
	mine = t != NULL && t->state == TASK_RUNNING &&
	       t->attempts == attempt && t->board_id == agent_board_id(a);
	if (mine) {
		if (costs != NULL)
			costs_text = json_dumps(costs, JSON_COMPACT);
		res = (struct ledger_task_result){
		    .outcome = outcome,
		    .detail = detail,
		    .costs = o == NPUFARM_OUTCOME_OK ? costs_text : NULL,
		    .number = number,
		    .signal = sig,
		    .status = status,
		    .finished_us = ledger_now_us(),
		};
		if (t->agent == a)
			tracker_agent_task_end(agent_link_board(a));
		(void)task_end(t, (enum npufarm_outcome)o, &res, true);
		free(costs_text);
	} else
		log_info("task %lld attempt %lld: result %s again or too late; "
			 "already recorded",
		    (long long)task, (long long)attempt, outcome);
	/* Recorded (now, or before): acknowledge once committed. */
	if (agent_link_ack_later(a, id) < 0)
		log_err("out of memory acknowledging %s", id);
	return 0;
}

/* {"type": "fetch", "sha256": S, "offset": O}: the next chunk. */
static int
handle_fetch(
    struct jobs *js, struct agent *a, json_t *v, struct npufarm_err *err)
{
	unsigned char *raw = NULL;
	const char *type, *sha;
	char *b64 = NULL;
	json_int_t offset;
	json_error_t jerr;
	uint64_t size = 0;
	ssize_t n = 0;

	if (json_unpack_ex(v, &jerr, JSON_STRICT, "{s:s, s:s, s:I}", "type",
		&type, "sha256", &sha, "offset", &offset) < 0)
		return err_set(err, -EINVAL, "fetch: %s", jerr.text);
	if (offset < 0)
		return err_set(err, -EINVAL, "fetch: offset: negative");
	if (!sha256_util_valid(sha))
		return err_set(
		    err, -EINVAL, "fetch: sha256: expected 64 hex digits");
	if (artifacts_size(js->artifacts, sha, &size) < 0) {
		(void)agent_link_send(
		    a, json_pack("{ss ss ss}", "type", "chunk", "sha256", sha,
			   "error", "no such artifact"));
		return 0;
	}
	raw = malloc(JOBS_CHUNK);
	b64 = malloc(4 * (JOBS_CHUNK / 3 + 1) + 1);
	if (raw != NULL && b64 != NULL)
		n = artifacts_read(
		    js->artifacts, sha, (uint64_t)offset, raw, JOBS_CHUNK);
	if (raw == NULL || b64 == NULL || n < 0) {
		(void)agent_link_send(
		    a, json_pack("{ss ss ss}", "type", "chunk", "sha256", sha,
			   "error", "cannot read the artifact"));
		goto out;
	}
	(void)EVP_EncodeBlock((unsigned char *)b64, raw, (int)n);
	(void)agent_link_send(
	    a, json_pack("{ss ss sI sI ss}", "type", "chunk", "sha256", sha,
		   "offset", offset, "size", (json_int_t)size, "data", b64));
out:
	free(raw);
	free(b64);
	return 0;
}

/*
 * A frame about tasks on agent @a's link.  0, or -EINVAL for a malformed
 * frame (a missing, extra or mistyped field; @err says which): the caller
 * closes the link, as for every other malformed agent frame.
 */
static int
result_cb(void *arg, struct agent *a, json_t *v, struct npufarm_err *err)
{
	struct jobs *j = arg;

	return handle_result(j, a, v, err);
}

static int
running_cb(void *arg, struct agent *a, json_t *v, struct npufarm_err *err)
{
	struct jobs *j = arg;

	return handle_running(j, a, v, err);
}

static int
fetch_cb(void *arg, struct agent *a, json_t *v, struct npufarm_err *err)
{
	struct jobs *j = arg;

	return handle_fetch(j, a, v, err);
}

/* ---- life ------------------------------------------------------------ */

/*
 * Native jobs over what @deps names (every pointer borrowed, outliving
 * the jobs); registers its frame handlers with the agent links.  0, or
 * -ENOMEM / -ENOSPC with @err set.
 */
int
jobs_new(const struct jobs_deps *deps, struct jobs **ret_jobs,
    struct npufarm_err *err)
{
	struct jobs *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	j->base = deps->base;
	j->cfg = deps->cfg;
	j->ledger = deps->ledger;
	j->metrics = deps->metrics;
	j->artifacts = deps->artifacts;
	j->sched = deps->sched;
	j->trk = deps->trk;
	j->links = deps->links;
	j->tv_grace = deps->tv_grace;
	TAILQ_INIT(&j->live);
	TAILQ_INIT(&j->waiters);
	/* An agent's task frames come to us (agent_link.c). */
	if (agent_link_on_frame(j->links, "result", result_cb, j) < 0 ||
	    agent_link_on_frame(j->links, "running", running_cb, j) < 0 ||
	    agent_link_on_frame(j->links, "fetch", fetch_cb, j) < 0) {
		free(j);
		return err_set(err, -ENOSPC, "too many agent frame handlers");
	}
	*ret_jobs = j;
	return 0;
}

/* Keep --unknown-key-grace's common timeout (NULL: none) from now on. */
void
jobs_set_grace(struct jobs *j, const struct timeval *tv_grace)
{
	j->tv_grace = tv_grace;
}

struct jobs *
jobs_free(struct jobs *j)
{
	struct job *job;

	if (j == NULL)
		return NULL;
	while (!TAILQ_EMPTY(&j->waiters))
		waiter_free(TAILQ_FIRST(&j->waiters));
	while ((job = TAILQ_FIRST(&j->live)) != NULL)
		job_free(job);
	free(j);
	return NULL;
}

struct recover_ctx {
	struct jobs *jobs;
	struct job *job;
	int r;
};

static int
recover_task_cb(const struct ledger_task_row *row, void *arg)
{
	struct recover_ctx *x = arg;
	struct job *job = x->job;
	struct task *t;
	json_error_t jerr;
	json_t *v;
	int runner;

	if (row->idx < 0 || (size_t)row->idx >= job->ntasks)
		return 0;
	t = &job->tasks[row->idx];
	v = json_loads(row->spec, 0, &jerr);
	runner = task_spec_runner_from_name(row->runner);
	json_decref(v);
	if (task_init(t, job, row->idx, row->id, row->spec, row->name,
		runner_caps(runner < 0 ? TASK_RUNNER_KERNEL
				       : (enum task_runner)runner)) < 0)
		return -ENOMEM;
	t->attempts = row->attempts;
	t->board_id = row->board_id;
	if (row->outcome != NULL) {
		int o = npufarm_outcome_from_name(row->outcome);

		t->state = TASK_DONE;
		job->nleft--;
		if (o >= 0)
			job->counts[COUNT_OUTCOME + o]++;
	} else if (strcmp(row->state, "running") == 0) {
		struct timeval tv;
		double g = x->jobs->cfg->task_grace;

		/* Its agent may still be running it, and will say so. */
		t->state = TASK_RUNNING;
		t->started_us = row->started_us;
		job->counts[COUNT_RUNNING]++;
		tv = clock_tv(g);
		(void)evtimer_add(t->grace_ev, &tv);
	} else {
		t->state = TASK_QUEUED;
		job->counts[COUNT_QUEUED]++;
	}
	return 0;
}

static int
recover_job_cb(const struct ledger_job_row *row, void *arg)
{
	struct recover_ctx *x = arg;
	struct npufarm_err err;
	struct job *job;
	size_t i;
	int r;

	job = job_new(x->jobs, row->key, row->user, row->priority,
	    row->queue_timeout, (size_t)row->ntasks);
	if (job == NULL)
		return -ENOMEM;
	job->id = row->id;
	job->submitted_us = row->submitted_us;
	job->started = strcmp(row->state, "running") == 0;
	if (row->tags != NULL) {
		json_t *tags = json_loads(row->tags, 0, NULL);

		if (tags_canon(tags, "tags", &job->tags, &err) < 0)
			log_err("job %lld: its tags in the ledger: %s",
			    (long long)job->id, err.msg);
		json_decref(tags);
	}
	x->job = job;
	r = ledger_foreach_task(
	    x->jobs->ledger, job->id, recover_task_cb, x, &err);
	if (r < 0)
		return r;
	for (i = 0; i < job->ntasks; i++)
		if (job->tasks[i].spec == NULL) {
			log_err("job %lld: task #%zu missing from the ledger",
			    (long long)job->id, i);
			job->nleft--;
			job->tasks[i].state = TASK_DONE;
		}
	return 0;
}

/*
 * After a restart: jobs with tasks not yet ended come back.  Queued tasks
 * are queued again (their queue timeout still counts from submission);
 * running ones wait --task-grace for their agent to report or resume
 * them, then are lost and retried.
 */
int
jobs_recover(struct jobs *j, struct npufarm_err *err)
{
	struct recover_ctx x = {.jobs = j};
	struct job *job, *next;
	size_t i, nq = 0, nr = 0;
	int r;

	r = ledger_foreach_live_job(j->ledger, recover_job_cb, &x, err);
	if (r < 0)
		return r;
	for (job = TAILQ_FIRST(&j->live); job != NULL; job = next) {
		next = TAILQ_NEXT(job, link);
		if (job->nleft == 0) {
			job_finish(job);
			continue;
		}
		for (i = 0; i < job->ntasks; i++) {
			struct task *t = &job->tasks[i];

			if (t->state == TASK_QUEUED) {
				if (task_enqueue(t) < 0)
					return err_set(
					    err, -ENOMEM, "out of memory");
				nq++;
			} else if (t->state == TASK_RUNNING)
				nr++;
		}
		job_arm_expiry(job);
	}
	if (nq + nr > 0)
		log_notice("recovered %zu queued and %zu running tasks from "
			   "the ledger",
		    nq, nr);
	return 0;
}
