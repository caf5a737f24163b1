/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Human views of the jobs API's JSON (docs/api.md "Native tuning jobs"):
 * task counts, the progress line and bar of npufarm wait, costs, the
 * table of tasks with the best candidate, and the exit status that says
 * whether every task ended ok.  Shared by wait, show, submit --wait and
 * jobs; pure functions of the JSON, so they are unit-tested.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* Room for any jobview_cost() result, e.g. "123.4ms". */
#define JOBVIEW_COST_MAX 32

/* Width of the progress bar's track, in cells. */
#define JOBVIEW_BAR_CELLS 30

/* A job's "tasks" counts, read leniently (a missing count is 0). */
struct jobview_counts {
	long long total;    /* "total", or the sum of the others */
	long long queued;   /* waiting for a board */
	long long running;  /* on a board */
	long long finished; /* with an outcome: total - queued - running */
	long long ok;       /* finished with outcome ok */
};

void jobview_counts(const json_t *job, struct jobview_counts *ret);
char *jobview_outcomes(const json_t *job);
char *jobview_progress_line(const json_t *job);
char *jobview_progress_bar(const json_t *job, double elapsed_s);
const char *jobview_cost(double seconds, char *buf, size_t len);
double jobview_median(const json_t *costs);
double jobview_best(const json_t *costs);
long jobview_best_task(const json_t *task_list);
long jobview_best_in_group(const json_t *task_list, const char *group);
void jobview_print_tasks(const json_t *job, FILE *f);
int jobview_exit_status(const json_t *job);
bool jobview_finished(const json_t *job);
