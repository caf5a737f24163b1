/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm show JOB: one job and every task, from GET /v1/jobs/{id}: the
 * job's fields, then the task table and best candidate that npufarm wait
 * prints at the end, whatever state the job is in.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cli.h"
#include "format.h"
#include "jobview.h"

static const struct option cmd_show_options[] = {
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* Print "label value" for @job[@key], a string that may be null. */
static void
cmd_show_field(const json_t *job, const char *label, const char *key)
{
	const char *s = cli_json_str(job, key);
	char *safe = format_escape(s != NULL ? s : "-");

	(void)printf("%-10s %s\n", label, safe);
	free(safe);
}

static void
cmd_show_print(const json_t *job)
{
	json_t *prio = json_object_get(job, "priority");

	(void)printf("%-10s %" JSON_INTEGER_FORMAT "\n", "job",
	    json_integer_value(json_object_get(job, "id")));
	cmd_show_field(job, "key", "key");
	cmd_show_field(job, "user", "user");
	if (json_is_number(prio))
		(void)printf("%-10s %g\n", "priority", json_number_value(prio));
	cmd_show_field(job, "state", "state");
	cmd_show_field(job, "submitted", "submitted");
	cmd_show_field(job, "finished", "finished");
	(void)putchar('\n');
	jobview_print_tasks(job, stdout);
}

static int
cmd_show_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	char path[64];
	json_t *root;
	long long id;
	int c, r;

	c = cli_getopt(
	    cli, self, argc, argv, CLI_COMMON_OPTSTRING, cmd_show_options, &r);
	if (c == CLI_OPT_EXIT)
		return r;
	if ((r = cli_job_operand(self, argc, argv, &id)) != CLI_EXIT_OK)
		return r;
	(void)snprintf(path, sizeof(path), "/v1/jobs/%lld", id);
	if (cli_get_json(cli, path, &root) < 0)
		return CLI_EXIT_FAIL;
	if (cli->json) {
		r = cli_print_json(root);
	} else {
		cmd_show_print(root);
		r = CLI_EXIT_OK;
	}
	json_decref(root);
	return r;
}

const struct cmd_entry cmd_show_entry = {
    .name = "show",
    .usage = "JOB",
    .brief = "one job: every task's outcome and costs, the best one",
    .summary = "Show JOB: its key, user, priority, state and times, then "
	       "every task with\nits outcome (or state), best and median "
	       "cost, board and detail, and the\nbest candidate so far.",
    .exec = cmd_show_exec,
};
