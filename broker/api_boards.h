/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP routes of boards, queues and leases (docs/api.md), and the one
 * view of the boards that both GET /v1/boards and the metrics scrape read:
 * every board the ledger knows with what is live of it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "tracker.h"

struct http_api;
struct http_env;
struct ledger_board;
struct npufarm_err;

/* One board of the view; everything borrowed for the call. */
struct api_board {
	const struct ledger_board *row; /* NULL: live, not in the ledger yet */
	const struct tracker_board_info *live; /* NULL: not registered now */
	bool heard;       /* an agent link of it is welcomed ... */
	int64_t heard_us; /* ... and this is its last frame */
};

typedef int api_board_fn(const struct api_board *b, void *arg);

int api_boards_add(struct http_api *h);
int api_board_view(const struct http_env *env, api_board_fn *fn, void *arg,
    struct npufarm_err *err);
