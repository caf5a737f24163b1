/* SPDX-License-Identifier: Apache-2.0 */
/* npufarm cancel JOB: POST /v1/jobs/{id}/cancel. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "cli.h"

static const struct option cmd_cancel_options[] = {
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0},
};

static int
cmd_cancel_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	char path[64];
	json_t *root;
	json_int_t n;
	long long id;
	int c, r;

	c = cli_getopt(cli, self, argc, argv, CLI_COMMON_OPTSTRING,
	    cmd_cancel_options, &r);
	if (c == CLI_OPT_EXIT)
		return r;
	if ((r = cli_job_operand(self, argc, argv, &id)) != CLI_EXIT_OK)
		return r;
	(void)snprintf(path, sizeof(path), "/v1/jobs/%lld/cancel", id);
	if (cli_request_json(cli, EVHTTP_REQ_POST, path, &root) < 0)
		return CLI_EXIT_FAIL;
	if (cli->json) {
		r = cli_print_json(root);
	} else {
		n = json_integer_value(json_object_get(root, "cancelled"));
		(void)printf("job %lld: %" JSON_INTEGER_FORMAT
			     " task%s cancelled\n",
		    id, n, n == 1 ? "" : "s");
		r = CLI_EXIT_OK;
	}
	json_decref(root);
	return r;
}

const struct cmd_entry cmd_cancel_entry = {
    .name = "cancel",
    .usage = "JOB",
    .brief = "cancel a job's queued and running tasks",
    .summary = "Cancel JOB: its queued tasks end cancelled at once, and "
	       "running ones are\nkilled on their boards and end cancelled. "
	       " Tasks that already ended keep\ntheir outcome.",
    .exec = cmd_cancel_exec,
};
