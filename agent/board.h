/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's board: what it offers the broker and when.  While the link
 * is up and the board is healthy it keeps one TVM session offered
 * (tvm_session.h); after a session that timed out or crashed it runs the
 * reset hook and then the health check before offering again.
 *
 * Board health comes from board evidence only (DESIGN.md §5): a crash,
 * timeout, exception or wrong answer of a candidate, or a tuner that left
 * without closing its session, is the candidate's outcome.  After
 * --quarantine-after consecutive non-ok sessions and tasks (or a reset
 * hook that failed) the board is suspected and checked: by the health
 * command if there is one, else by the known-good probe (probe.h).  Only a
 * failed check quarantines it; a quarantined board is checked again (the
 * health command every --health-interval, the probe on a backoff from
 * --health-interval doubling up to BOARD_PROBE_BACKOFF_MAX_S) and returns
 * by itself when a check passes, or when an operator undrains it.
 *
 * Every session's report goes to the broker on the link and is resent
 * until acknowledged.
 */
#pragma once

#include <stdbool.h>

#include <jansson.h>

#include "supervisor.h"

struct board;
struct cache;
struct event_base;
struct link;
struct npufarm_err;

struct board_config {
	const char *broker;
	const char *key;
	const char *name;
	struct supervisor_config sup; /* runtime_path NULL: no TVM sessions */
	double max_session;           /* s; 0: no cap */
	const char *reset_cmd;        /* NULL: none */
	const char *health_cmd;       /* NULL: none */
	double hook_timeout;          /* s each hook may run */
	int quarantine_after;         /* consecutive non-ok outcomes before
				       * the board is checked; 0: never */
	double health_interval;       /* s between checks while quarantined */
	const char *probe_kernel;     /* NULL: the built-in probe */
	long max_packet;              /* largest RPC packet from a child */
	struct cache *cache;          /* native tasks' artifacts; borrowed */
	const char *exec_cmd;         /* exec runner command, or NULL */
};

int board_new(struct event_base *base, const struct board_config *cfg,
    struct board **ret_board, struct npufarm_err *err);
void board_set_link(struct board *b, struct link *l);
void board_link_event(void *arg, bool up);
void board_link_frame(void *arg, const char *type, json_t *v);
struct board *board_free(struct board *b);
