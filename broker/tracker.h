/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM tracker protocol on the farm port (spec tvm-rpc-protocol.md §2):
 * boards register free slots with PUT, clients REQUEST them, and every
 * grant, release and cancellation is written to the ledger.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "board.h"
#include "lease.h"

struct agent;
struct agent_links;
struct auth;
struct board;
struct broker_config;
struct conn_set;
struct event_base;
struct ledger;
struct metrics;
struct relays;
struct sched;
struct timeval;
struct conn;
struct ledger_session;
struct sched_request;
struct tracker;
struct slot;

/* Read-only view of a live board for the HTTP API. */
struct tracker_board_info {
	int64_t id;
	const char *key;
	const char *address;
	size_t free;
	int64_t lease_id;       /* 0 when not leased */
	const char *lease_user; /* NULL when not leased */
	const char *lease_peer;
	int64_t lease_granted_us;
	const char *state; /* board_view_state(): "draining" or the ledger's */
	const char *relay; /* who carries its sessions: "agent", "proxy"
			    * (it dials in), "broker" (a PUT board the broker
			    * dials, --relay-boards all) or "none" */
	struct jobs_task_info task; /* the native task it runs; job 0: none */
};

/* Read-only view of a waiting request for the HTTP API. */
struct tracker_request_info {
	const char *kind; /* "tvm" (a REQUEST) or "task" (a native task) */
	const char *user;
	const char *peer; /* NULL for a task */
	double priority;
	int64_t requested_us;
	int64_t job;  /* tasks: the job's id; else 0 */
	int task_idx; /* tasks: its index in the job */
};

typedef void tracker_board_fn(const struct tracker_board_info *b, void *arg);
typedef void tracker_request_fn(
    const struct tracker_request_info *r, void *arg);

int tracker_new(struct event_base *base, const struct broker_config *cfg,
    struct ledger *ledger, struct sched *sched, struct metrics *metrics,
    struct conn_set *cset, struct tracker **ret_tracker);
struct tracker *tracker_free(struct tracker *trk);
struct board_registry *tracker_boards(const struct tracker *trk);
struct lease_book *tracker_lease_book(const struct tracker *trk);
void tracker_set_peers(
    struct tracker *trk, struct agent_links *links, struct relays *relays);
void tracker_set_auth(struct tracker *trk, const struct auth *auth);
void tracker_set_timeouts(struct tracker *trk, const struct timeval *request,
    const struct timeval *grace, const struct timeval *pair);
void tracker_stop(struct tracker *trk);
int tracker_conn_start(struct conn *c, void *arg);
void tracker_conn_read(struct conn *c);
void tracker_conn_closed(struct conn *c);
int tracker_flush_boards(struct tracker *trk);
int tracker_board_drain(struct tracker *trk, int64_t id, bool on);
struct board *tracker_agent_board_new(struct conn *link, struct agent *a,
    const char *key, const char *name, unsigned runners);
const char *tracker_agent_quarantine(const struct board *b);
void tracker_agent_set_tags(struct board *b, char *tags);
void tracker_agent_state(
    struct board *b, const char *state, const char *reason);
void tracker_agent_session_end(struct tracker *trk, int64_t board_id,
    int64_t lease_id, const struct ledger_session *sess);
struct agent *tracker_task_take(
    struct slot *s, struct sched_request *r, int64_t *ret_board);
void tracker_agent_task_end(struct board *b);
void tracker_agent_task_resume(struct board *b, struct sched_request *r);
void tracker_schedule(struct tracker *trk, const char *key);
void tracker_known_keys(struct tracker *trk, char *buf, size_t len);
size_t tracker_key_boards(struct tracker *trk, const char *key);
const char *tracker_hello_option(
    const char *hello_key, const char *name, char *buf, size_t len);
int tracker_proxy_board(struct conn *c, const char *key, const char *hello_key);
int tracker_proxy_client(struct conn *c, const char *match);
void tracker_proxy_session_end(
    struct conn *c, const struct ledger_session *sess);
void tracker_dialed_session_end(struct tracker *trk, int64_t board_id,
    int64_t lease_id, const struct ledger_session *sess);
void tracker_dialed_failed(struct tracker *trk, int64_t board_id,
    int64_t lease_id, const char *why, bool board_fault);
void tracker_foreach_board(
    struct tracker *trk, tracker_board_fn *fn, void *arg);
void tracker_foreach_request(
    struct tracker *trk, const char *key, tracker_request_fn *fn, void *arg);
