/* SPDX-License-Identifier: Apache-2.0 */
/* npufarm cancel JOB: POST /v1/jobs/{id}/cancel. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/http.h>
#include <jansson.h>

#include "cli.h"
#include "xmalloc.h"

enum {
	OPT_USER = 256,
};

static const struct option cmd_cancel_options[] = {
    CLI_COMMON_OPTIONS,
    {"user", required_argument, NULL, OPT_USER},
    {NULL, 0, NULL, 0},
};

static int
cmd_cancel_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	const char *user = NULL;
	char *path, *enc = NULL;
	json_t *root;
	json_int_t n;
	long long id;
	int c, r;

	while ((c = cli_getopt(cli, self, argc, argv, CLI_COMMON_OPTSTRING,
		    cmd_cancel_options, &r)) != CLI_OPT_END) {
		if (c == CLI_OPT_EXIT)
			return r;
		if (c == OPT_USER)
			user = optarg;
	}
	if ((r = cli_job_operand(self, argc, argv, &id)) != CLI_EXIT_OK)
		return r;
	if (user != NULL && (enc = evhttp_encode_uri(user)) == NULL) {
		(void)fprintf(stderr, "npufarm: out of memory\n");
		return CLI_EXIT_FAIL;
	}
	path = xasprintf("/v1/jobs/%lld/cancel%s%s", id,
	    enc != NULL ? "?user=" : "", enc != NULL ? enc : "");
	free(enc);
	r = cli_request_json(cli, EVHTTP_REQ_POST, path, &root);
	free(path);
	if (r < 0)
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
    .usage = "[--user U] JOB",
    .brief = "cancel a job's queued and running tasks",
    .summary = "Cancel JOB: its queued tasks end cancelled at once, and "
	       "running ones are\nkilled on their boards and end cancelled. "
	       " Tasks that already ended keep\ntheir outcome.  With a "
	       "read-scope API token, --user names the\njob's own user; "
	       "others' jobs need the admin token.",
    .exec = cmd_cancel_exec,
};
