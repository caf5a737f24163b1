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
#include "jobs_int.h"
#include "json_util.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "scheduler.h"
#include "sha256_util.h"
#include "tags.h"
#include "task_spec.h"
#include "tracker.h"

struct waiter {
	struct jobs *jobs;
	int64_t job_id;
	uint64_t after;
	jobs_wait_fn *fn; /* the answer goes there */
	void *arg;        /* ... with this, borrowed */
	struct event *timer;
	TAILQ_ENTRY(waiter) link;
};

static int
task_cmp(const void *a, const void *b)
{
	const struct task *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

struct task *
jobs_task_find(struct jobs *j, int64_t id)
{
	struct task probe = {.id = id};
	void *found = tfind(&probe, &j->by_task, task_cmp);

	return found != NULL ? *(struct task **)found : NULL;
}

/*
 * The job @id in memory, or NULL.  One that waits for its commit
 * (jobs_submit_parsed()) only if @pending: no client knows its id yet
 * (its 201 is not out), so a cancel does not find it; a wait by a guessed
 * id does, and waits as for any queued job.
 */
static struct job *
job_find(struct jobs *j, int64_t id, bool pending)
{
	struct job *job;

	TAILQ_FOREACH(job, &j->live, link)
		if (job->id == id)
			return (!job->pending || pending) ? job : NULL;
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
	struct job *job = job_find(j, id, false);

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
void
jobs_job_progress(struct job *job)
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
	struct job *job = job_find(w->jobs, w->job_id, true);
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
	struct job *job = job_find(j, id, true);
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
int
jobs_task_enqueue(struct task *t)
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

int
jobs_task_requeue(struct task *t)
{
	int r = jobs_task_enqueue(t);

	if (r == 0)
		tracker_schedule(t->job->jobs->trk, t->job->key);
	return r;
}

/* ---- task and job ends -------------------------------------------- */

static void job_free(struct job *job);

void
jobs_count_move(struct job *job, int from, int to)
{
	if (from >= 0)
		job->counts[from]--;
	if (to >= 0)
		job->counts[to]++;
}

/* The job's last task ended: record it, answer waiters, forget it. */
void
jobs_job_finish(struct job *job)
{
	struct jobs *js = job->jobs;
	struct npufarm_err err;

	(void)ledger_job_state(
	    js->ledger, job->id, job_state(job), ledger_now_us(), &err);
	log_notice("job %lld (%s, %zu tasks) %s", (long long)job->id, job->key,
	    job->ntasks, job_state(job));
	jobs_job_progress(job);
	job_free(job);
}

/*
 * Task @t's attempt (0: none ran) ended as @res; @final: it is the task's
 * outcome (else the task is queued again).  Frees the job when it was the
 * last.  Returns true if the job was freed.
 */
bool
jobs_task_end(struct task *t, enum npufarm_outcome outcome,
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
		jobs_count_move(job, from, COUNT_QUEUED);
		(void)ledger_task_requeue(js->ledger, t->id, &err);
		if (jobs_task_requeue(t) < 0)
			log_err("task %lld: out of memory requeueing it",
			    (long long)t->id);
		jobs_job_progress(job);
		return false;
	}
	t->state = TASK_DONE;
	jobs_count_move(job, from, COUNT_OUTCOME + (int)outcome);
	log_info("task %lld (job %lld #%d) %s%s%s", (long long)t->id,
	    (long long)job->id, t->idx, npufarm_outcome_name(outcome),
	    res->detail ? ": " : "", res->detail ? res->detail : "");
	if (--job->nleft == 0) {
		jobs_job_finish(job);
		return true;
	}
	jobs_job_progress(job);
	return false;
}

/* End task @t without a run report: expired, cancelled, lost, rejected. */
bool
jobs_task_end_plain(struct task *t, enum npufarm_outcome outcome,
    const char *detail, bool final)
{
	struct ledger_task_result res = {
	    .outcome = npufarm_outcome_name(outcome),
	    .detail = detail,
	    .signal = 0,
	    .status = -1,
	    .finished_us = ledger_now_us(),
	};

	return jobs_task_end(t, outcome, &res, final);
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
		    jobs_task_end_plain(
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
		    jobs_task_end_plain(
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
	free(job->peer);
	free(job);
}

struct job *
jobs_job_new(struct jobs *j, const char *key, const char *user, double priority,
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

void
jobs_job_arm_expiry(struct job *job)
{
	double left = job->queue_timeout -
		      (double)(ledger_now_us() - job->submitted_us) / 1e6;
	struct timeval tv = clock_tv(left); /* negative: now */

	(void)evtimer_add(job->expire_ev, &tv);
}

int
jobs_task_init(struct task *t, struct job *job, int idx, int64_t id,
    const char *spec, const char *name, unsigned needs)
{
	t->job = job;
	t->idx = idx;
	t->id = id;
	t->lr.s.kind = SCHED_KIND_TASK;
	t->lr.s.needs = needs;
	t->lr.ops = job->jobs->task_ops;
	t->spec = strdup(spec);
	t->name = name != NULL && name[0] ? strdup(name) : NULL;
	t->grace_ev = evtimer_new(job->jobs->base, job->jobs->grace_cb, t);
	if (t->spec == NULL || t->grace_ev == NULL ||
	    tsearch(t, &job->jobs->by_task, task_cmp) == NULL)
		return -ENOMEM;
	return 0;
}

unsigned
jobs_runner_caps(enum task_runner runner)
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
 * Record the job @p (from jobs_parse()) and its tasks in the ledger's
 * batch, and keep it pending: its id in *@ret_id, its tasks' count in
 * *@ret_ntasks.  Nothing runs yet and no one is answered: the caller
 * waits for the batch's commit (ledger_after()) and then calls
 * jobs_submit_committed(), which queues the tasks (or forgets the job),
 * so a task never runs, and no result is written, for a job whose rows
 * might not commit.  Runs on the loop; @p stays the caller's.  Returns 0,
 * or -EINVAL (its tags: @err says what) or -ENOMEM.
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

	job =
	    jobs_job_new(j, p->key, p->user, p->priority, p->queue_timeout, n);
	if (job == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	job->pending = true;
	job->peer = strdup(peer);
	if (job->peer == NULL)
		r = err_set(err, -ENOMEM, "out of memory");
	/* The tags its boards must carry, kept as the ledger's JSON too. */
	if (r == 0 && p->tags != NULL) {
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
		if (r == 0 && jobs_task_init(&job->tasks[i], job, (int)i,
				  job->tasks[i].id, pt->text, pt->name,
				  jobs_runner_caps(pt->runner)) < 0)
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
	*ret_id = job->id;
	*ret_ntasks = (int)n;
	return 0;
}

/* The job jobs_submit_parsed() recorded as @id and keeps pending. */
static struct job *
job_pending(struct jobs *j, int64_t id)
{
	struct job *job = job_find(j, id, true);

	return job != NULL && job->pending ? job : NULL;
}

/*
 * The batch holding pending job @id's rows is done (ledger_after()):
 * @commit_err NULL, it committed: queue its tasks, arm its queue timeout
 * and --unknown-key-grace, and return 0 (the caller answers 201 now).
 * Else, or when @id is not pending (any more), the job is forgotten and
 * -EIO returned, with @err saying why; its rows, if some did commit, are
 * those of a job that was never acknowledged.  Runs on the loop.
 */
int
jobs_submit_committed(struct jobs *j, int64_t id,
    const struct npufarm_err *commit_err, struct npufarm_err *err)
{
	struct job *job = job_pending(j, id);
	size_t i, n;

	if (job == NULL || commit_err != NULL) {
		if (job != NULL)
			job_free(job);
		if (commit_err != NULL)
			*err = *commit_err;
		else
			(void)err_set(err, -EIO, "job %lld is not pending",
			    (long long)id);
		/* Not err_set(err, ..., err->msg): vsnprintf into its own
		 * argument is undefined. */
		err_prefix(err, "the ledger could not commit the job: ");
		err->code = -EIO;
		return -EIO;
	}
	job->pending = false;
	n = job->ntasks;
	job->counts[COUNT_QUEUED] = (int)n;
	for (i = 0; i < n; i++)
		if (jobs_task_enqueue(&job->tasks[i]) < 0)
			log_err("job %lld: out of memory queueing task %zu",
			    (long long)job->id, i);
	jobs_job_arm_expiry(job);
	if (j->tv_grace != NULL && tracker_key_boards(j->trk, job->key) == 0) {
		job->nokey_ev = evtimer_new(j->base, nokey_cb, job);
		if (job->nokey_ev == NULL ||
		    evtimer_add(job->nokey_ev, j->tv_grace) < 0)
			log_err("job %lld: out of memory arming its "
				"unknown_key_grace",
			    (long long)job->id);
	}
	log_notice("job %lld: %zu tasks for '%s' from %s (user %s)",
	    (long long)job->id, n, job->key, job->peer, job->user);
	free(job->peer);
	job->peer = NULL;
	tracker_schedule(j->trk, job->key);
	return 0;
}

/*
 * Pending job @id will never be acknowledged (its caller could not wait
 * for the commit): mark it cancelled in the ledger, as a job recorded
 * half-way is, so a restart does not run it, and forget it.
 */
void
jobs_submit_abandon(struct jobs *j, int64_t id)
{
	struct job *job = job_pending(j, id);

	if (job == NULL)
		return;
	(void)ledger_job_state(
	    j->ledger, job->id, "cancelled", ledger_now_us(), NULL);
	job_free(job);
}

/*
 * POST /v1/jobs on the loop itself, for tests and tools: jobs_parse(),
 * jobs_submit_parsed(), a blocking ledger_sync() and
 * jobs_submit_committed().  Returns 0, or -EINVAL (bad input: @err says
 * what and where), -E2BIG (a limit), -EIO (the ledger) or -ENOMEM.  The
 * API parses off the loop and waits for the commit without blocking
 * instead (jobs_parse.c).
 */
int
jobs_submit(struct jobs *j, json_t *body, const char *peer, int64_t *ret_id,
    int *ret_ntasks, struct npufarm_err *err)
{
	struct jobs_parsed *p;
	struct npufarm_err e;
	int r;

	r = jobs_parse(j->cfg, j->artifacts, body, peer, &p, err);
	if (r < 0)
		return r;
	r = jobs_submit_parsed(j, p, peer, ret_id, ret_ntasks, err);
	jobs_parsed_free(p);
	if (r < 0)
		return r;
	/* Durable before acknowledged. */
	r = ledger_sync(j->ledger, &e);
	return jobs_submit_committed(j, *ret_id, r < 0 ? &e : NULL, err);
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
	struct job *job = job_find(j, id, false);
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
		if (jobs_task_end_plain(t, NPUFARM_OUTCOME_CANCELLED,
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
