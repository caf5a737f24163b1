/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker process: one event base, the farm-port listeners, the HTTP API,
 * the ledger and the scheduler.  Everything runs on the one loop thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "broker_config.h"
#include "netaddr.h"

struct agent_links;
struct auth;
struct board;
struct conn;
struct conn_set;
struct event;
struct event_base;
struct http_api;
struct ledger;
struct listener;
struct metrics;
struct jobs_parse;
struct npufarm_err;
struct relays;
struct retention;
struct sched;
struct timeval;
struct tracker;

struct server {
	struct event_base *base;
	const struct broker_config *cfg; /* borrowed, outlives the server */
	struct conn_set *cset;     /* the farm port's connections, owned */
	struct listener *listener; /* the farm port, owned */
	struct http_api *http;
	struct ledger *ledger;
	struct sched *sched;
	struct jobs *jobs;             /* native tuning jobs */
	struct artifacts *artifacts;   /* their kernels and programs */
	struct metrics *metrics;       /* GET /metrics counters, owned */
	struct retention *retention;   /* ledger pruning, owned */
	struct jobs_parse *jobs_parse; /* POST /v1/jobs off the loop, owned */
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *flush_ev;     /* commits the ledger once per iteration */
	struct event *board_ev;     /* writes changed board states */
	struct event *committed_ev; /* the ledger committed: send acks */
	struct tracker *tracker;    /* the farm protocols' context, owned */
	struct agent_links *links;  /* the agent links, owned */
	struct relays *relays;      /* relayed sessions, owned */
	const struct timeval *tv_handshake; /* common timeouts */
	bool stopping;
	struct auth *auth; /* access rules, owned; replaced on SIGHUP */
	void (*reload)(struct server *srv, void *arg); /* SIGHUP, or NULL */
	void *reload_arg;
};

int server_new(const struct broker_config *cfg, struct server **ret_server,
    struct npufarm_err *err);
struct server *server_free(struct server *srv);
int server_run(struct server *srv);
void server_set_reload(
    struct server *srv, void (*fn)(struct server *srv, void *arg), void *arg);
void server_reconfigure(struct server *srv, struct auth *auth);
void server_ledger_failed(struct server *srv, const struct npufarm_err *err);
