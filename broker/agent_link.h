/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The npufarm agent link on the farm port (docs/protocol.md): an agent
 * dials out to the broker, says hello with its name and key, and keeps the
 * link alive with heartbeats; the broker shows it as a board and notices
 * when it goes silent.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct agent;
struct agent_links;
struct board;
struct board_registry;
struct auth;
struct broker_config;
struct conn;
struct event_base;
struct ledger;
struct metrics;
struct npufarm_err;
struct tracker;

typedef void agent_link_fn(int64_t board_id, int64_t heard_us, void *arg);
/*
 * A frame of a type registered with agent_link_on_frame() from welcomed
 * agent @a (@v borrowed for the call).  0, or -errno with @err set: the
 * link is refused with that message.
 */
typedef int agent_frame_fn(
    void *arg, struct agent *a, json_t *v, struct npufarm_err *err);

struct agent_links *agent_links_new(struct event_base *base,
    const struct broker_config *cfg, struct ledger *ledger,
    struct metrics *metrics, struct tracker *trk,
    struct board_registry *boards);
void agent_links_set_auth(struct agent_links *l, const struct auth *auth);
void agent_links_stop(struct agent_links *l);
struct agent_links *agent_links_free(struct agent_links *l);
int agent_link_on_frame(
    struct agent_links *l, const char *type, agent_frame_fn *fn, void *arg);

int agent_link_start(struct conn *c, void *arg);
void agent_link_foreach(struct agent_links *l, agent_link_fn *fn, void *arg);
bool agent_link_from(struct agent_links *l, const char *name, const char *host);
void agent_link_committed(struct agent_links *l);
int agent_link_undrain(struct agent_links *l, int64_t board_id);
struct agent *agent_link_find_board(struct agent_links *l, int64_t board_id);
int agent_link_send(struct agent *a, json_t *v);
int agent_link_ack_later(struct agent *a, const char *id);
int64_t agent_board_id(const struct agent *a);
struct board *agent_link_board(const struct agent *a);
