/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Board states and their names (see board.h).
 */
#include "config.h"

#include "board.h"

static const char *const board_state_names[BOARD_STATE_MAX] = {
    [BOARD_IDLE] = "idle",
    [BOARD_LEASED] = "leased",
    [BOARD_OFFLINE] = "offline",
    [BOARD_BUSY] = "busy",
    [BOARD_QUARANTINED] = "quarantined",
};

/* Ledger and API name of board state @s; static. */
const char *
board_state_name(enum board_state s)
{
	return board_state_names[s];
}

/*
 * What the views (API, metrics) show of a board in state @s, @drained by
 * an operator: "draining" while it is idle, else its state's name; static.
 */
const char *
board_view_state(enum board_state s, bool drained)
{
	return drained && s == BOARD_IDLE ? "draining" : board_state_name(s);
}
