/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leases, from the queue to their end.
 *
 * What waits in a key's queue for a board (scheduler.h), as the grant
 * engine (lease_grant_queue(), lease.c) sees it: a request that carries
 * its own ops.  A TVM
 * REQUEST or RPC client (tracker.c) and a native task (jobs.c) each
 * implement them, so the engine grants, withdraws and shows either
 * without knowing which it holds, and never calls the services above it.
 *
 * How a TVM lease ended (lease.c): the one place that decides a lease's
 * final outcome, and writes it to the ledger and counts it in the
 * metrics.  The protocols tell a struct lease_book the facts as they
 * happen (a lease relayed at pair-up, the broker's end with its view, an
 * agent's report of its session) and it applies one rule: the agent's
 * report classifies a relayed session on an agent's board, whichever of
 * the report and the broker's end comes first; without a report within
 * the grace (LEASE_REPORT_GRACE_S) of the broker's end the broker's view
 * stands, and a report that comes later still only goes to the ledger; a
 * lease that ends without such a session, and a request that ends
 * without a board, is classified by the broker's reason.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <npufarm/outcome.h>

#include "macro.h"
#include "scheduler.h"

struct lease_book;
struct lease_request;
struct ledger;
struct ledger_lease;
struct ledger_report;
struct ledger_session;
struct metrics;
struct npufarm_err;
struct board;
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

/* A free matchkey of a board: what a request is granted. */
struct slot {
	struct sched_slot s;
	struct board *board; /* borrowed: owner */
	TAILQ_ENTRY(slot) link;
	char matchkey[];
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

/*
 * The grant engine: hand @q's free slots to its waiting requests, in the
 * scheduler's order, while both exist.  Each request is asked whether it
 * is still alive and the winner is handed its slot through its granted
 * op; the engine never knows what kind of request it served.
 */
void lease_grant_queue(struct sched_queue *q);

/* ---- how a lease ended (lease.c) ------------------------------------- */

/* How long a relayed agent lease waits for its agent's report, s. */
#define LEASE_REPORT_GRACE_S 30
/* An outcome argument: the broker did not observe how the lease ended
 * (a board registered again after a session it did not relay). */
#define LEASE_NO_OUTCOME     (-1)

int lease_book_new(struct ledger *ledger, struct metrics *metrics,
    struct lease_book **ret_book);
struct lease_book *lease_book_free(struct lease_book *lb);
void lease_book_set_report_grace(struct lease_book *lb, double seconds);
void lease_book_settle(struct lease_book *lb);

void lease_relayed(struct lease_book *lb, int64_t lease_id, const char *key,
    int64_t board_id, const char *session);
void lease_request_ended(struct lease_book *lb, const struct ledger_lease *row,
    enum npufarm_outcome o);
void lease_released(struct lease_book *lb, int64_t lease_id, const char *key,
    int o, const char *detail);
void lease_session_ended(struct lease_book *lb, int64_t lease_id,
    const char *key, const struct ledger_session *sess);
int lease_reported(struct lease_book *lb, int64_t board_id, const char *session,
    const struct ledger_report *rep, struct npufarm_err *err);
