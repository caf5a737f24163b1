/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A restart's view of the jobs: every live job in the ledger comes back
 * with its tasks, queued again or waiting --task-grace for the agent that
 * was running them to report.
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
	if (jobs_task_init(t, job, row->idx, row->id, row->spec, row->name,
		jobs_runner_caps(runner < 0 ? TASK_RUNNER_KERNEL
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

	job = jobs_job_new(x->jobs, row->key, row->user, row->priority,
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
			jobs_job_finish(job);
			continue;
		}
		for (i = 0; i < job->ntasks; i++) {
			struct task *t = &job->tasks[i];

			if (t->state == TASK_QUEUED) {
				if (jobs_task_enqueue(t) < 0)
					return err_set(
					    err, -ENOMEM, "out of memory");
				nq++;
			} else if (t->state == TASK_RUNNING)
				nr++;
		}
		jobs_job_arm_expiry(job);
	}
	if (nq + nr > 0)
		log_notice("recovered %zu queued and %zu running tasks from "
			   "the ledger",
		    nq, nr);
	return 0;
}
