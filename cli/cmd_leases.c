/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm leases [--limit N]: the most recent leases, newest first, from
 * GET /v1/leases.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "cli.h"
#include "table.h"

static const struct table_column cmd_leases_columns[] = {
    {"ID", TABLE_RIGHT},
    {"KEY", TABLE_LEFT},
    {"USER", TABLE_LEFT},
    {"BOARD", TABLE_LEFT},
    {"WAIT", TABLE_RIGHT},
    {"HELD", TABLE_RIGHT},
    {"REQS", TABLE_RIGHT},
    {"OUTCOME", TABLE_LEFT},
    {"DETAIL", TABLE_LEFT},
};

static const struct option cmd_leases_options[] = {
    CLI_COMMON_OPTIONS,
    {"limit", required_argument, NULL, 'n'},
    {NULL, 0, NULL, 0},
};

/*
 * A lease without an outcome is either still open (no released_at) or
 * ended in a way the broker could not see, which its detail explains.
 */
static const char *
cmd_leases_outcome(const json_t *lease)
{
	const char *outcome = cli_json_str(lease, "outcome");

	if (outcome == NULL &&
	    json_is_null(json_object_get(lease, "released_at")))
		return "open";
	return outcome;
}

static int
cmd_leases_print(const json_t *root)
{
	const json_t *leases = json_object_get(root, "leases");
	struct table *t;
	const json_t *l;
	size_t i;

	if (!json_is_array(leases)) {
		(void)fprintf(stderr,
		    "npufarm: the broker's reply has no \"leases\" array\n");
		return CLI_EXIT_FAIL;
	}
	if (json_array_size(leases) == 0) {
		(void)printf("no leases\n");
		return CLI_EXIT_OK;
	}
	t = table_new(cmd_leases_columns,
	    sizeof(cmd_leases_columns) / sizeof(cmd_leases_columns[0]));
	json_array_foreach(leases, i, l) {
		cli_add_int(t, l, "id");
		cli_add_str(t, l, "key");
		cli_add_str(t, l, "user");
		cli_add_str(t, l, "board");
		cli_add_duration(t, l, "wait_seconds");
		cli_add_duration(t, l, "held_seconds");
		/* Requests the broker relayed; "-" for a session it only
		 * granted (the client reached the board directly). */
		cli_add_int(t, json_object_get(l, "session"), "requests");
		table_add(t, cmd_leases_outcome(l));
		cli_add_str(t, l, "detail");
	}
	table_print(t, stdout);
	table_free(t);
	return CLI_EXIT_OK;
}

static int
cmd_leases_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	char path[64] = "/v1/leases";
	json_t *root;
	long limit = 0;
	int c, r;

	while ((c = cli_getopt(cli, self, argc, argv, CLI_COMMON_OPTSTRING "n:",
		    cmd_leases_options, &r)) != CLI_OPT_END) {
		if (c == CLI_OPT_EXIT)
			return r;
		/* c == 'n': the only option of our own */
		if (cli_parse_int(optarg, 1, 1000000, &limit) < 0)
			return cli_usage(self,
			    "--limit takes a positive number, not '%s'",
			    optarg);
	}
	if ((r = cli_no_operands(self, argc, argv)) != CLI_EXIT_OK)
		return r;
	if (limit > 0)
		(void)snprintf(
		    path, sizeof(path), "/v1/leases?limit=%ld", limit);
	if (cli_get_json(cli, path, &root) < 0)
		return CLI_EXIT_FAIL;
	r = cli->json ? cli_print_json(root) : cmd_leases_print(root);
	json_decref(root);
	return r;
}

const struct cmd_entry cmd_leases_entry = {
    .name = "leases",
    .usage = "[--limit N]",
    .brief = "recent leases: who held which board, for how long",
    .summary = "List the most recent leases, newest first: who held which "
	       "board,\nhow long they waited and held it, and how it "
	       "ended.  --limit N\nasks for N leases (the broker's default "
	       "is 50, its maximum 1000).",
    .exec = cmd_leases_exec,
};
