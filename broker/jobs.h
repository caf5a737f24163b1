/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Native tuning jobs (DESIGN.md §3, docs/api.md): a job's tasks wait in the
 * key's queue beside TVM requests (scheduler.h, one policy), run one per
 * agent board, and end with exactly one terminal outcome each, recorded in
 * the ledger before anything is acknowledged.
 *
 * A task's life: queued -> running (granted to an agent board; attempt n)
 * -> done (outcome).  A task whose agent vanished is given --task-grace to
 * come back and report; then it is lost, and retried once.  Queue time and
 * run time are separate clocks: the job's queue timeout expires tasks that
 * never started; the run timeout is the agent's, from when it starts.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "lease.h" /* struct jobs_task_info */

struct agent;
struct agent_links;
struct event_base;
struct ledger;
struct metrics;
struct sched;
struct timeval;
struct tracker;
struct artifacts;
struct broker_config;
struct jobs;
struct npufarm_err;
struct sched_request;
struct server;

/* What jobs work with (all borrowed). */
struct jobs_deps {
	struct event_base *base;
	const struct broker_config *cfg;
	struct ledger *ledger;
	struct metrics *metrics;
	struct artifacts *artifacts;
	struct sched *sched;
	struct tracker *trk;
	struct agent_links *links;
	const struct timeval *tv_grace; /* --unknown-key-grace, or NULL */
};

int jobs_new(const struct jobs_deps *deps, struct jobs **ret_jobs,
    struct npufarm_err *err);
void jobs_set_grace(struct jobs *j, const struct timeval *tv_grace);
int jobs_agent_register(struct jobs *j);
struct jobs *jobs_free(struct jobs *j);
int jobs_recover(struct jobs *j, struct npufarm_err *err);

int jobs_submit(struct jobs *j, json_t *body, const char *peer, int64_t *ret_id,
    int *ret_ntasks, struct npufarm_err *err);
struct jobs_parsed;
int jobs_parse(const struct broker_config *cfg, const struct artifacts *arts,
    json_t *body, const char *peer, struct jobs_parsed **ret,
    struct npufarm_err *err);
int jobs_parse_text(const struct broker_config *cfg,
    const struct artifacts *arts, const char *buf, size_t len, const char *peer,
    struct jobs_parsed **ret, struct npufarm_err *err);
void jobs_parsed_free(struct jobs_parsed *p);
size_t jobs_parsed_count(const struct jobs_parsed *p);
const char *jobs_parsed_task(const struct jobs_parsed *p, size_t i);
const char *jobs_parsed_key(const struct jobs_parsed *p);
/*
 * A submit in two steps, so the loop never waits for the disk: record
 * (the job is pending: no task queued, no cancel finds it), then, once
 * ledger_after() says the batch committed, queue its tasks (or forget it)
 * and acknowledge.
 */
int jobs_submit_parsed(struct jobs *j, const struct jobs_parsed *p,
    const char *peer, int64_t *ret_id, int *ret_ntasks,
    struct npufarm_err *err);
int jobs_submit_committed(struct jobs *j, int64_t id,
    const struct npufarm_err *commit_err, struct npufarm_err *err);
void jobs_submit_abandon(struct jobs *j, int64_t id);
int jobs_cancel(struct jobs *j, int64_t id, int *ret_n);
/*
 * A wait's answer: the job's summary with "seq" and "done" (borrowed for
 * the call), or NULL when out of memory.
 */
typedef void jobs_wait_fn(void *arg, json_t *answer);
/* Whether the wait with argument @arg is one jobs_wait_drop() drops. */
typedef bool jobs_wait_match_fn(void *arg, void *ctx);
enum { JOBS_WAITING = 2 }; /* jobs_wait(): answered later */
int jobs_wait(struct jobs *j, int64_t id, uint64_t after, double timeout,
    jobs_wait_fn *fn, void *arg);
void jobs_wait_drop(struct jobs *j, jobs_wait_match_fn *match, void *ctx);
json_t *jobs_live_summary(struct jobs *j, int64_t id);
