/* SPDX-License-Identifier: Apache-2.0 */
/* npufarm undrain BOARD: POST /v1/boards/{id}/undrain. */
#include "config.h"

#include "cli.h"

static int
cmd_undrain_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	return cli_board_action(cli, self, argc, argv, "undrain");
}

const struct cmd_entry cmd_undrain_entry = {
    .name = "undrain",
    .usage = "[--reason WHY] BOARD",
    .brief = "offer a drained board again",
    .summary = "Undrain BOARD (a name or an id): the broker grants it again, "
	       "and a\nquarantined agent board is put back in service.  "
	       "--reason WHY is\nrecorded with who undrained it and when "
	       "(the ledger's events).",
    .exec = cmd_undrain_exec,
};
