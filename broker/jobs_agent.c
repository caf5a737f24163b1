/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Native tasks on agents' boards: a task is a struct lease_request whose
 * ops (jobs_agent_task_ops) take the board the grant engine gives it and
 * send the agent the task; the agent's running, result and fetch frames
 * come back through the handlers jobs_agent_register() gives the agent
 * links; a task whose agent vanished waits --task-grace for it.
 */
#include "config.h"

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
#include "jobs.h"
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
static const struct lease_request_ops jobs_agent_task_ops = {
    .granted = task_granted,
    .board_gone = task_board_gone,
    .describe = task_describe,
    .task_info = task_info,
};

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

	jobs_count_move(job, COUNT_QUEUED, COUNT_RUNNING);
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
	jobs_job_progress(job);
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

void
jobs_agent_grace_cb(evutil_socket_t fd, short what, void *arg)
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
	(void)jobs_task_end_plain(t, NPUFARM_OUTCOME_LOST, detail, !retry);
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
	t = jobs_task_find(js, id);
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
	t = jobs_task_find(js, task);
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
		(void)jobs_task_end(t, (enum npufarm_outcome)o, &res, true);
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

/*
 * Run @j's tasks on agents: their ops and grace timer, and the agent
 * links' task frames handed to us.  Before any job is submitted or
 * recovered.  0 or -ENOSPC.
 */
int
jobs_agent_register(struct jobs *j)
{
	j->task_ops = &jobs_agent_task_ops;
	j->grace_cb = jobs_agent_grace_cb;
	if (agent_link_on_frame(j->links, "result", result_cb, j) < 0 ||
	    agent_link_on_frame(j->links, "running", running_cb, j) < 0 ||
	    agent_link_on_frame(j->links, "fetch", fetch_cb, j) < 0)
		return -ENOSPC;
	return 0;
}
