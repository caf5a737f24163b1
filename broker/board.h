/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A board's state, one vocabulary: the enum inside the broker, its name
 * only at the edges (the ledger's boards.state, the API's JSON, metrics
 * labels).  "draining" is no state of its own: an idle board an operator
 * drained (board_view_state()).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct agent;
struct board;
struct board_entry;
struct board_registry;

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

/*
 * The registry of agent boards: each npufarm agent's board, found by its
 * ledger id or by its agent's name in O(log n).  Boards registered by
 * PUT or that dial in are their tracker connections'.
 */
struct board_registry *board_registry_new(void);
struct board_registry *board_registry_free(struct board_registry *reg);
int board_registry_add(struct board_registry *reg, struct board *b,
    struct agent *a, const char *name, int64_t id,
    struct board_entry **ret_entry);
void board_registry_remove(struct board_registry *reg, struct board_entry *e);
struct board *board_by_agent(
    const struct board_registry *reg, const char *name);
struct board *board_by_id(const struct board_registry *reg, int64_t id);
struct agent *board_agent_by_id(const struct board_registry *reg, int64_t id);
struct agent *board_agent_by_name(
    const struct board_registry *reg, const char *name);
