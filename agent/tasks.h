/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Native tasks on the agent (issue 5): the broker sends a task on the
 * link; the agent fetches its artifact over the link unless it is cached,
 * runs it with its runner (runner.h) in a forked child under the task's
 * run timeout, and reports the classified result, resent until the broker
 * acknowledges it after committing.  One task at a time, and never while a
 * TVM session runs (the broker leases the board to one or the other).
 */
#pragma once

#include <stdbool.h>

#include <jansson.h>

#include <npufarm/outcome.h>

struct cache;
struct event_base;
struct link;
struct npufarm_err;
struct tasks;

/*
 * The task is over (reported); @outcome decides the hooks to run; @detail
 * (borrowed for the call) says how it ended.
 */
typedef void tasks_done_fn(
    void *arg, enum npufarm_outcome outcome, const char *detail);

struct tasks_config {
	const char *workdir;  /* parent of the per-task work dirs */
	const char *exec_cmd; /* exec runner command, or NULL */
	struct cache *cache;  /* artifacts; borrowed */
	tasks_done_fn *done;
	void *arg;
};

int tasks_new(struct event_base *base, const struct tasks_config *cfg,
    struct tasks **ret_tasks, struct npufarm_err *err);
struct tasks *tasks_free(struct tasks *t);
void tasks_set_link(struct tasks *t, struct link *l);
bool tasks_busy(const struct tasks *t);
void tasks_frame(struct tasks *t, const char *type, json_t *v);
void tasks_child_exited(struct tasks *t);
void tasks_link_up(struct tasks *t);
