/* SPDX-License-Identifier: Apache-2.0 */
/* npufarm drain BOARD: POST /v1/boards/{id}/drain. */
#include "config.h"

#include "cli.h"

static int
cmd_drain_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	return cli_board_action(cli, self, argc, argv, "drain");
}

const struct cmd_entry cmd_drain_entry = {
    .name = "drain",
    .usage = "[--reason WHY] BOARD",
    .brief = "stop new leases on a board; its running work finishes",
    .summary = "Drain BOARD (a name from npufarm status, or an id): the broker "
	       "grants it\nto nobody new, and a lease it holds runs to its "
	       "end.  The mark is kept in\nthe ledger, so it survives restarts "
	       "and applies when the board comes back.\n--reason WHY is "
	       "recorded with who drained it and when (the ledger's events).",
    .exec = cmd_drain_exec,
};
