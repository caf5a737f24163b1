/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A board's state, one vocabulary: the enum inside the broker, its name
 * only at the edges (the ledger's boards.state, the API's JSON, metrics
 * labels).  "draining" is no state of its own: an idle board an operator
 * drained (board_view_state()).
 */
#pragma once

#include <stdbool.h>

enum board_state {
	BOARD_IDLE,
	BOARD_LEASED,
	BOARD_OFFLINE,
	BOARD_BUSY,        /* agents: cleaning up, not offered */
	BOARD_QUARANTINED, /* agents: out of service, with a reason */
	BOARD_STATE_MAX,
};

const char *board_state_name(enum board_state s);
const char *board_view_state(enum board_state s, bool drained);
