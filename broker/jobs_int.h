/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The jobs' insides, shared by jobs.c (jobs, queueing, ends, waits),
 * jobs_agent.c (tasks on agents: grants, frames, a vanished agent's
 * grace) and jobs_recover.c (the live jobs a restart finds in the
 * ledger).  Nothing else includes this.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <jansson.h>

#include <npufarm/outcome.h>

#include "lease.h"
#include "task_spec.h"

struct agent;
struct jobs;
struct npufarm_err;
struct waiter;
struct ledger_task_result;
struct event;
struct jobs_task_info;
struct tracker_request_info;

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
	struct lease_request
	    lr;          /* while queued; its ops: jobs_agent_task_ops */
	struct job *job; /* borrowed: owner */
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

struct job {
	struct jobs *jobs;
	int64_t id;
	char *key, *user;
	char *tags; /* canonical tags the boards must carry (tags.h); NULL */
	double priority, queue_timeout;
	int64_t submitted_us;
	bool started; /* "running" is in the ledger */
	/* Recorded, its commit not yet seen (jobs_submit_parsed()): its
	 * tasks are not queued, and only waits see it. */
	bool pending;
	char *peer; /* who submitted it, while pending (for the log) */
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
	/* jobs_agent_register(): how tasks run on agents */
	const struct lease_request_ops *task_ops;
	event_callback_fn grace_cb; /* a vanished agent's --task-grace */
};

/* jobs.c */
struct task *jobs_task_find(struct jobs *j, int64_t id);
int jobs_task_enqueue(struct task *t);
int jobs_task_requeue(struct task *t);
void jobs_count_move(struct job *job, int from, int to);
void jobs_job_progress(struct job *job);
void jobs_job_finish(struct job *job);
bool jobs_task_end(struct task *t, enum npufarm_outcome outcome,
    const struct ledger_task_result *res, bool final);
bool jobs_task_end_plain(struct task *t, enum npufarm_outcome outcome,
    const char *detail, bool final);
int jobs_task_init(struct task *t, struct job *job, int idx, int64_t id,
    const char *spec, const char *name, unsigned needs);
unsigned jobs_runner_caps(enum task_runner runner);
struct job *jobs_job_new(struct jobs *j, const char *key, const char *user,
    double priority, double queue_timeout, size_t ntasks);
void jobs_job_arm_expiry(struct job *job);

/* jobs_agent.c */
void jobs_agent_grace_cb(evutil_socket_t fd, short what, void *arg);
