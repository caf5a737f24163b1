/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every reader here is lenient: a field that is missing, null or of the
 * wrong type reads as absent, so a broker that adds fields or a job that
 * is half-way does not break the views.  Outcome counts are listed in the
 * order of DESIGN.md §4 (ok first), then any class this client does not
 * know, in the broker's order.
 */
#include "config.h"

#include "jobview.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "format.h"
#include "table.h"
#include "xmalloc.h"

/* A detail longer than this is cut in the table (--json has it all). */
#define JOBVIEW_DETAIL_MAX 72

static const char *const jobview_classes[] = {
    "ok",
    "timeout",
    "exception",
    "crash",
    "lost",
    "cancelled",
    "expired",
    "rejected",
    "wrong",
};

#define JOBVIEW_NCLASSES (sizeof(jobview_classes) / sizeof(jobview_classes[0]))

static const struct table_column jobview_columns[] = {
    {"#", TABLE_RIGHT},
    {"NAME", TABLE_LEFT},
    {"OUTCOME", TABLE_LEFT},
    {"BEST", TABLE_RIGHT},
    {"MEDIAN", TABLE_RIGHT},
    {"BOARD", TABLE_LEFT},
    {"DETAIL", TABLE_LEFT},
};

static long long
jobview_int(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_integer(v) && json_integer_value(v) > 0
		   ? (long long)json_integer_value(v)
		   : 0;
}

/* A count key that is not an outcome class. */
static bool
jobview_is_state(const char *key)
{
	return strcmp(key, "total") == 0 || strcmp(key, "queued") == 0 ||
	       strcmp(key, "running") == 0;
}

/*
 * Build counts from @job's "task_list" when it has no "tasks" object,
 * into a new object owned by the caller.
 */
static json_t *
jobview_count_list(const json_t *job)
{
	const json_t *list = json_object_get(job, "task_list"), *t;
	json_t *counts = json_object();
	const char *k;
	size_t i;

	json_array_foreach(list, i, t) {
		k = cli_json_str(t, "outcome");
		if (k == NULL)
			k = cli_json_str(t, "state");
		if (k == NULL || strcmp(k, "total") == 0)
			continue;
		(void)json_object_set_new(
		    counts, k, json_integer(jobview_int(counts, k) + 1));
	}
	(void)json_object_set_new(
	    counts, "total", json_integer((json_int_t)json_array_size(list)));
	return counts;
}

/* @job's counts object, a new reference. */
static json_t *
jobview_count_obj(const json_t *job)
{
	json_t *counts = json_object_get(job, "tasks");

	if (json_is_object(counts))
		return json_incref(counts);
	return jobview_count_list(job);
}

/*
 * Read @job's task counts (GET /v1/jobs "tasks"; from "task_list" when
 * that is all there is).  "total" defaults to the sum of the others.
 */
void
jobview_counts(const json_t *job, struct jobview_counts *ret)
{
	json_t *counts = jobview_count_obj(job), *v;
	long long sum = 0;
	const char *k;

	memset(ret, 0, sizeof(*ret));
	json_object_foreach(counts, k, v) {
		if (strcmp(k, "total") != 0)
			sum += jobview_int(counts, k);
	}
	ret->total = jobview_int(counts, "total");
	if (ret->total == 0)
		ret->total = sum;
	ret->queued = jobview_int(counts, "queued");
	ret->running = jobview_int(counts, "running");
	ret->ok = jobview_int(counts, "ok");
	ret->finished = ret->total - ret->queued - ret->running;
	if (ret->finished < 0)
		ret->finished = 0;
	json_decref(counts);
}

/*
 * @job's outcome counts as "ok 5, timeout 1" ("" when none yet), in a
 * new string owned by the caller.
 */
char *
jobview_outcomes(const json_t *job)
{
	json_t *counts = jobview_count_obj(job), *v;
	char *out = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&out, &len);
	const char *k;
	bool first = true;

	if (f == NULL) {
		(void)fprintf(stderr, "npufarm: out of memory\n");
		exit(CLI_EXIT_FAIL);
	}
	for (i = 0; i < JOBVIEW_NCLASSES; i++) {
		if (jobview_int(counts, jobview_classes[i]) == 0)
			continue;
		(void)fprintf(f, "%s%s %lld", first ? "" : ", ",
		    jobview_classes[i],
		    jobview_int(counts, jobview_classes[i]));
		first = false;
	}
	json_object_foreach(counts, k, v) {
		for (i = 0; i < JOBVIEW_NCLASSES; i++)
			if (strcmp(k, jobview_classes[i]) == 0)
				break;
		if (i < JOBVIEW_NCLASSES || jobview_is_state(k) ||
		    jobview_int(counts, k) == 0)
			continue;
		(void)fprintf(f, "%s%s %lld", first ? "" : ", ", k,
		    jobview_int(counts, k));
		first = false;
	}
	if (fclose(f) != 0) {
		(void)fprintf(stderr, "npufarm: out of memory\n");
		exit(CLI_EXIT_FAIL);
	}
	json_decref(counts);
	return out;
}

/*
 * One plain line of progress, for output that is not a terminal:
 * "job 12 running: 6/40 finished (ok 5, timeout 1), 4 running, 30
 * queued".  A new string owned by the caller; no newline.
 */
char *
jobview_progress_line(const json_t *job)
{
	struct jobview_counts c;
	char *outcomes = jobview_outcomes(job), *line;
	const char *state = cli_json_str(job, "state");

	jobview_counts(job, &c);
	line = xasprintf("job %lld %s: %lld/%lld finished%s%s%s, %lld running, "
			 "%lld queued",
	    jobview_int(job, "id"), state != NULL ? state : "?", c.finished,
	    c.total, *outcomes != '\0' ? " (" : "", outcomes,
	    *outcomes != '\0' ? ")" : "", c.running, c.queued);
	free(outcomes);
	return line;
}

/*
 * The progress bar for a terminal, redrawn in place by the caller:
 * "job 12 [########......] 6/40  ok 5, timeout 1  4 running, 30 queued
 * 12.3s".  A new string owned by the caller, with no control characters.
 */
char *
jobview_progress_bar(const json_t *job, double elapsed_s)
{
	char track[JOBVIEW_BAR_CELLS + 1], dur[32];
	struct jobview_counts c;
	char *outcomes = jobview_outcomes(job), *bar;
	long long filled;

	jobview_counts(job, &c);
	filled = c.total > 0 ? c.finished * JOBVIEW_BAR_CELLS / c.total : 0;
	memset(track, '.', JOBVIEW_BAR_CELLS);
	memset(track, '#', (size_t)filled);
	track[JOBVIEW_BAR_CELLS] = '\0';
	bar = xasprintf("job %lld [%s] %lld/%lld  %s%s%lld running, %lld "
			"queued  %s",
	    jobview_int(job, "id"), track, c.finished, c.total, outcomes,
	    *outcomes != '\0' ? "  " : "", c.running, c.queued,
	    jobview_cost(elapsed_s, dur, sizeof(dur)));
	free(outcomes);
	return bar;
}

/*
 * Write a cost in seconds into @buf with three significant digits in the
 * unit that fits ("850ns", "12.3us", "2.57ms", "1.43s") and return @buf.
 * Rounding comes first, so 0.0009996 is "1.00ms", not "1000us".
 * Negative and non-finite values give "-".
 */
const char *
jobview_cost(double seconds, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		double scale;
	} units[] = {{"ns", 1e-9}, {"us", 1e-6}, {"ms", 1e-3}, {"s", 1}};
	size_t i;
	double v = 0;

	if (!isfinite(seconds) || seconds < 0) {
		(void)snprintf(buf, len, "-");
		return buf;
	}
	if (seconds == 0) {
		(void)snprintf(buf, len, "0s");
		return buf;
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		v = seconds / units[i].scale;
		if (v < 999.5 || i + 1 == sizeof(units) / sizeof(units[0]))
			break;
	}
	if (v >= 99.95)
		(void)snprintf(buf, len, "%.0f%s", v, units[i].unit);
	else if (v >= 9.995)
		(void)snprintf(buf, len, "%.1f%s", v, units[i].unit);
	else
		(void)snprintf(buf, len, "%.2f%s", v, units[i].unit);
	return buf;
}

static int
jobview_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The median of @costs (an array of numbers; non-numbers are skipped):
 * the middle value, or the mean of the two middle ones.  NAN when there
 * are none.
 */
double
jobview_median(const json_t *costs)
{
	size_t i, n = 0;
	const json_t *v;
	double *d, m;

	if (json_array_size(costs) == 0)
		return NAN;
	d = xcalloc(json_array_size(costs), sizeof(*d));
	json_array_foreach(costs, i, v) {
		if (json_is_number(v) && isfinite(json_number_value(v)))
			d[n++] = json_number_value(v);
	}
	if (n == 0) {
		free(d);
		return NAN;
	}
	qsort(d, n, sizeof(*d), jobview_cmp_double);
	m = n % 2 != 0 ? d[n / 2] : (d[n / 2 - 1] + d[n / 2]) / 2;
	free(d);
	return m;
}

/* The lowest of @costs, NAN when there are none. */
double
jobview_best(const json_t *costs)
{
	double best = NAN, c;
	const json_t *v;
	size_t i;

	json_array_foreach(costs, i, v) {
		if (!json_is_number(v))
			continue;
		c = json_number_value(v);
		if (isfinite(c) && (isnan(best) || c < best))
			best = c;
	}
	return best;
}

/*
 * The best candidate of @task_list: the position of the task with the
 * lowest median cost among those whose outcome is "ok" (the first on a
 * tie), or -1 when no task ended ok with costs.
 */
long
jobview_best_task(const json_t *task_list)
{
	return jobview_best_in_group(task_list, NULL);
}

/*
 * The same among the tasks whose "group" is @group (NULL: all): a task's
 * group names the problem it solves (its inputs, or its own "group"), and
 * candidates are only comparable within one.
 */
long
jobview_best_in_group(const json_t *task_list, const char *group)
{
	double best = NAN, m;
	const json_t *t;
	const char *outcome, *g;
	long found = -1;
	size_t i;

	json_array_foreach(task_list, i, t) {
		outcome = cli_json_str(t, "outcome");
		if (outcome == NULL || strcmp(outcome, "ok") != 0)
			continue;
		g = cli_json_str(t, "group");
		if (group != NULL && (g == NULL || strcmp(g, group) != 0))
			continue;
		m = jobview_median(json_object_get(t, "costs"));
		if (!isnan(m) && (found < 0 || m < best)) {
			best = m;
			found = (long)i;
		}
	}
	return found;
}

/* Add @t[@key]'s first line, cut to JOBVIEW_DETAIL_MAX bytes. */
static void
jobview_add_detail(struct table *tb, const json_t *t)
{
	const char *d = cli_json_str(t, "detail");
	size_t n;

	if (d == NULL || *d == '\0') {
		table_add(tb, NULL);
		return;
	}
	n = strcspn(d, "\n");
	if (n > JOBVIEW_DETAIL_MAX)
		n = JOBVIEW_DETAIL_MAX;
	if (d[n] != '\0') {
		/* Do not cut a UTF-8 sequence in two. */
		while (n > 0 && ((unsigned char)d[n] & 0xc0) == 0x80)
			n--;
		table_addf(tb, "%.*s...", (int)n, d);
	} else {
		table_add(tb, d);
	}
}

/* Add @seconds as a cost cell, "-" when NAN. */
static void
jobview_add_cost(struct table *tb, double seconds)
{
	char buf[JOBVIEW_COST_MAX];

	table_add(tb,
	    isnan(seconds) ? NULL : jobview_cost(seconds, buf, sizeof(buf)));
}

static bool jobview_print_groups(const json_t *list, FILE *f);
static bool jobview_one_group(const json_t *list);
static void jobview_print_best(FILE *f, const char *what, const json_t *t);

/*
 * Print @job's tasks (GET /v1/jobs/{id}) to @f: a table with each task's
 * outcome (or state, while it has none), best and median cost, board and
 * detail; a line of counts; and the best candidate, per problem when the
 * tasks solve several.
 */
void
jobview_print_tasks(const json_t *job, FILE *f)
{
	const json_t *list = json_object_get(job, "task_list"), *t;
	struct jobview_counts c;
	char *outcomes, *name;
	const char *outcome;
	struct table *tb;
	long b;
	size_t i;

	if (json_array_size(list) > 0) {
		tb = table_new(jobview_columns,
		    sizeof(jobview_columns) / sizeof(jobview_columns[0]));
		json_array_foreach(list, i, t) {
			cli_add_int(tb, t, "index");
			cli_add_str(tb, t, "name");
			outcome = cli_json_str(t, "outcome");
			table_add(tb, outcome != NULL
					  ? outcome
					  : cli_json_str(t, "state"));
			jobview_add_cost(
			    tb, jobview_best(json_object_get(t, "costs")));
			jobview_add_cost(
			    tb, jobview_median(json_object_get(t, "costs")));
			cli_add_str(tb, t, "board");
			jobview_add_detail(tb, t);
		}
		table_print(tb, f);
		table_free(tb);
		(void)fputc('\n', f);
	}
	jobview_counts(job, &c);
	outcomes = jobview_outcomes(job);
	(void)fprintf(f, "%lld task%s, %lld finished%s%s%s", c.total,
	    c.total == 1 ? "" : "s", c.finished, *outcomes != '\0' ? ": " : "",
	    outcomes, c.running + c.queued > 0 ? "" : "\n");
	if (c.running + c.queued > 0)
		(void)fprintf(
		    f, "; %lld running, %lld queued\n", c.running, c.queued);
	free(outcomes);
	if (jobview_print_groups(list, f))
		return;
	b = jobview_best_task(list);
	if (b < 0) {
		if (json_array_size(list) > 0)
			(void)fprintf(f, "best: none (no task ended ok)\n");
		return;
	}
	t = json_array_get(list, (size_t)b);
	jobview_print_best(f, "best", t);
	if (cli_json_str(t, "group") != NULL) {
		name = format_escape(cli_json_str(t, "group"));
		(void)fprintf(f, "(%s: %s)\n",
		    jobview_one_group(list)
			? "every task solves the same problem"
			: "the only problem with a candidate that ended ok",
		    name);
		free(name);
	}
}

/* Whether every task of @list names the same "group" (and all name one). */
static bool
jobview_one_group(const json_t *list)
{
	const char *first = cli_json_str(json_array_get(list, 0), "group");
	const json_t *t;
	size_t i;

	json_array_foreach(list, i, t) {
		const char *g = cli_json_str(t, "group");

		if (g == NULL || first == NULL || strcmp(g, first) != 0)
			return false;
	}
	return true;
}

/*
 * The best per problem, when @list's tasks solve more than one (their
 * "group"s differ): one line each, in order of first appearance.  Returns
 * false, printing nothing, when there is one problem (or no groups).
 */
static bool
jobview_print_groups(const json_t *list, FILE *f)
{
	const json_t *t, *u;
	const char *g;
	char *label, what[JOBVIEW_DETAIL_MAX + 32];
	size_t i, j, solved = 0;
	long b;

	/* Per problem only when two or more have a candidate that ended ok;
	 * else the one best line says which problem it solves. */
	json_array_foreach(list, i, t) {
		if (cli_json_str(t, "group") == NULL)
			return false;
	}
	json_array_foreach(list, i, t) {
		g = cli_json_str(t, "group");
		for (j = 0; j < i; j++)
			if (strcmp(
				cli_json_str(json_array_get(list, j), "group"),
				g) == 0)
				break;
		if (j == i && jobview_best_in_group(list, g) >= 0)
			solved++;
	}
	if (solved < 2)
		return false;
	(void)fprintf(f, "best per problem (tasks that share their inputs, "
			 "or their \"group\"):\n");
	json_array_foreach(list, i, t) {
		g = cli_json_str(t, "group");
		/* Only at a group's first task. */
		for (j = 0; j < i; j++) {
			u = json_array_get(list, j);
			if (strcmp(cli_json_str(u, "group"), g) == 0)
				break;
		}
		if (j < i)
			continue;
		label = format_escape(g);
		(void)snprintf(
		    what, sizeof(what), "  %.*s", JOBVIEW_DETAIL_MAX, label);
		free(label);
		b = jobview_best_in_group(list, g);
		if (b < 0)
			(void)fprintf(f, "%s: none (no task ended ok)\n", what);
		else
			jobview_print_best(
			    f, what, json_array_get(list, (size_t)b));
	}
	return true;
}

/* "@what: task N (name), median M (best B) on BOARD" for task @t. */
static void
jobview_print_best(FILE *f, const char *what, const json_t *t)
{
	char med[JOBVIEW_COST_MAX], best[JOBVIEW_COST_MAX];
	char *name, *board;

	/* Peer text: escaped, as the table's cells are. */
	name = format_escape(
	    cli_json_str(t, "name") != NULL ? cli_json_str(t, "name") : "");
	board = format_escape(
	    cli_json_str(t, "board") != NULL ? cli_json_str(t, "board") : "");
	(void)fprintf(f, "%s: task %lld%s%s%s, median %s (best %s)%s%s\n", what,
	    jobview_int(t, "index"), *name != '\0' ? " (" : "", name,
	    *name != '\0' ? ")" : "",
	    jobview_cost(
		jobview_median(json_object_get(t, "costs")), med, sizeof(med)),
	    jobview_cost(
		jobview_best(json_object_get(t, "costs")), best, sizeof(best)),
	    *board != '\0' ? " on " : "", board);
	free(name);
	free(board);
}

/*
 * npufarm wait's verdict on a finished @job: CLI_EXIT_OK when every task
 * ended ok (a job of no tasks included), else CLI_EXIT_FAIL.
 */
int
jobview_exit_status(const json_t *job)
{
	struct jobview_counts c;

	jobview_counts(job, &c);
	return c.ok == c.total ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* Whether @job is over: "done": true, or the state done or cancelled. */
bool
jobview_finished(const json_t *job)
{
	const char *state = cli_json_str(job, "state");

	return json_is_true(json_object_get(job, "done")) ||
	       (state != NULL && (strcmp(state, "done") == 0 ||
				     strcmp(state, "cancelled") == 0));
}
