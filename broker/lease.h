/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What waits in a key's queue for a board (scheduler.h), as the grant
 * engine (tracker.c) sees it: a request that carries its own ops.  A TVM
 * REQUEST or RPC client (tracker.c) and a native task (jobs.c) each
 * implement them, so the engine grants, withdraws and shows either
 * without knowing which it holds, and never calls the services above it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "scheduler.h"

struct lease_request;
struct slot;
struct tracker_request_info;

/* What the views show of a task, waiting or running (borrowed strings). */
struct jobs_task_info {
	int64_t job; /* the job's id */
	int idx;     /* the task's index in it */
	int64_t id;  /* the task's id */
	int attempt; /* attempts started so far */
	const char *user;
	const char *name; /* NULL when none */
	double priority;
	int64_t queued_us;  /* this attempt was queued */
	int64_t started_us; /* this attempt started; 0 while queued */
};

struct lease_request_ops {
	/* Whether @r, first in its queue, still wants a board; false: it
	 * ended itself (its client left) and left the queue.  NULL: yes. */
	bool (*alive)(struct lease_request *r);
	/* @r won free slot @s of its board and left the queue: it takes
	 * the slot (and frees it) and the board from here. */
	void (*granted)(struct lease_request *r, struct slot *s);
	/* The board @r runs on is gone (@why).  NULL: nothing runs. */
	void (*board_gone)(struct lease_request *r, const char *why);
	/* What the queue views show of waiting @r. */
	void (*describe)(
	    const struct lease_request *r, struct tracker_request_info *ret);
	/* What the board views show of @r running on a board.  NULL: @r
	 * never runs on one by itself. */
	void (*task_info)(
	    const struct lease_request *r, struct jobs_task_info *ret);
};

struct lease_request {
	struct sched_request s;              /* while queued */
	const struct lease_request_ops *ops; /* never NULL */
};

/* The request @r is the queue entry of. */
static inline struct lease_request *
lease_request_of(struct sched_request *r)
{
	return container_of(r, struct lease_request, s);
}

static inline const struct lease_request *
lease_request_of_const(const struct sched_request *r)
{
	return container_of(r, struct lease_request, s);
}
