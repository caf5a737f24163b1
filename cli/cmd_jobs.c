/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm jobs [--state S] [--user U] [--limit N]: recent tuning jobs,
 * newest first, from GET /v1/jobs, with their progress and outcomes.
 */
#include "config.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>
#include <jansson.h>

#include "cli.h"
#include "format.h"
#include "jobview.h"
#include "table.h"
#include "xmalloc.h"

/* The job states GET /v1/jobs?state= takes. */
static const char *const cmd_jobs_states[] = {
    "queued",
    "running",
    "done",
    "cancelled",
};

enum {
	OPT_STATE = 256,
	OPT_USER,
	OPT_LIMIT,
};

static const struct option cmd_jobs_options[] = {
    CLI_COMMON_OPTIONS,
    {"state", required_argument, NULL, OPT_STATE},
    {"user", required_argument, NULL, OPT_USER},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {NULL, 0, NULL, 0},
};

static const struct table_column cmd_jobs_columns[] = {
    {"ID", TABLE_RIGHT},
    {"KEY", TABLE_LEFT},
    {"USER", TABLE_LEFT},
    {"PRIO", TABLE_RIGHT},
    {"STATE", TABLE_LEFT},
    {"DONE", TABLE_RIGHT},
    {"OUTCOMES", TABLE_LEFT},
    {"SUBMITTED", TABLE_LEFT},
};

/* Add @job's submission time as an age; "-" when it has none. */
static void
cmd_jobs_add_age(struct table *t, const json_t *job, int64_t now_us)
{
	const char *s = cli_json_str(job, "submitted");
	char buf[FORMAT_DURATION_MAX + 16];
	int64_t then_us;

	if (s == NULL)
		s = cli_json_str(job, "submitted_at");
	if (s == NULL)
		table_add(t, NULL);
	else if (format_parse_time(s, &then_us, NULL) < 0)
		table_add(t, s);
	else
		table_add(t, format_age(then_us, now_us, buf, sizeof(buf)));
}

static int
cmd_jobs_print(const json_t *root)
{
	const json_t *jobs = json_object_get(root, "jobs"), *j;
	struct jobview_counts c;
	struct timespec now;
	struct table *t;
	char *outcomes;
	size_t i;

	if (!json_is_array(jobs)) {
		(void)fprintf(stderr,
		    "npufarm: the broker's reply has no \"jobs\" array\n");
		return CLI_EXIT_FAIL;
	}
	if (json_array_size(jobs) == 0) {
		(void)printf("no jobs\n");
		return CLI_EXIT_OK;
	}
	(void)clock_gettime(CLOCK_REALTIME, &now);
	t = table_new(cmd_jobs_columns,
	    sizeof(cmd_jobs_columns) / sizeof(cmd_jobs_columns[0]));
	json_array_foreach(jobs, i, j) {
		cli_add_int(t, j, "id");
		cli_add_str(t, j, "key");
		cli_add_str(t, j, "user");
		cli_add_int(t, j, "priority");
		cli_add_str(t, j, "state");
		jobview_counts(j, &c);
		table_addf(t, "%lld/%lld", c.finished, c.total);
		outcomes = jobview_outcomes(j);
		table_add(t, *outcomes != '\0' ? outcomes : NULL);
		free(outcomes);
		cmd_jobs_add_age(
		    t, j, (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000);
	}
	table_print(t, stdout);
	table_free(t);
	return CLI_EXIT_OK;
}

static int
cmd_jobs_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	const char *state = NULL, *user = NULL;
	char *path, *enc = NULL;
	json_t *root;
	long limit = 0;
	size_t i;
	int c, r;

	while ((c = cli_getopt(cli, self, argc, argv, CLI_COMMON_OPTSTRING,
		    cmd_jobs_options, &r)) != CLI_OPT_END) {
		if (c == CLI_OPT_EXIT)
			return r;
		if (c == OPT_STATE) {
			state = optarg;
			for (i = 0; i < sizeof(cmd_jobs_states) /
					    sizeof(cmd_jobs_states[0]);
			     i++)
				if (strcmp(optarg, cmd_jobs_states[i]) == 0)
					break;
			if (i == sizeof(cmd_jobs_states) /
				     sizeof(cmd_jobs_states[0]))
				return cli_usage(self,
				    "--state is queued, running, done or "
				    "cancelled, not '%s'",
				    optarg);
		} else if (c == OPT_USER) {
			user = optarg;
		} else if (cli_parse_int(optarg, 1, 1000, &limit) < 0) {
			return cli_usage(self,
			    "--limit takes a number in 1..1000, not '%s'",
			    optarg);
		}
	}
	if ((r = cli_no_operands(self, argc, argv)) != CLI_EXIT_OK)
		return r;
	if (user != NULL && (enc = evhttp_encode_uri(user)) == NULL) {
		(void)fprintf(stderr, "npufarm: out of memory\n");
		return CLI_EXIT_FAIL;
	}
	path = xasprintf("/v1/jobs?limit=%ld%s%s%s%s", limit > 0 ? limit : 50,
	    state != NULL ? "&state=" : "", state != NULL ? state : "",
	    enc != NULL ? "&user=" : "", enc != NULL ? enc : "");
	free(enc);
	r = cli_get_json(cli, path, &root);
	free(path);
	if (r < 0)
		return CLI_EXIT_FAIL;
	r = cli->json ? cli_print_json(root) : cmd_jobs_print(root);
	json_decref(root);
	return r;
}

const struct cmd_entry cmd_jobs_entry = {
    .name = "jobs",
    .usage = "[--state S] [--user U] [--limit N]",
    .brief = "recent tuning jobs, their progress and outcomes",
    .summary = "List recent tuning jobs, newest first: key, user, "
	       "priority, state, tasks\nfinished out of all, and the "
	       "count per outcome.  --state keeps one of\nqueued, running, "
	       "done, cancelled; --user one user's; --limit N asks\nfor N "
	       "jobs (default 50, at most 1000).",
    .exec = cmd_jobs_exec,
};
