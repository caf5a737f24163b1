/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tracker's insides, shared by tracker.c (TVM tracker protocol,
 * boards that dial in), tracker_agent.c (npufarm agents' boards) and
 * proxy.c (the RPC hello that registers and pairs them).  Nothing else
 * includes this.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <npufarm/outcome.h>

#include "board.h"
#include "lease.h"
#include "macro.h"
#include "netaddr.h"
#include "scheduler.h"

struct agent;
struct agent_links;
struct auth;
struct broker_config;
struct conn;
struct conn_set;
struct event_base;
struct ledger;
struct metrics;
struct relays;
struct sched;
struct timeval;
struct event;
struct ledger_lease;
struct relay_end;
struct npufarm_err;
struct tracker;

/*
 * The farm port protocols' context: what the tracker, its agent boards
 * and the proxy share (tracker_new()).
 */
struct tracker {
	struct event_base *base;          /* borrowed */
	const struct broker_config *cfg;  /* borrowed, outlives the tracker */
	struct ledger *ledger;            /* borrowed */
	struct sched *sched;              /* borrowed: the key queues */
	struct metrics *metrics;          /* borrowed */
	struct lease_book *lease_book;    /* how leases end (lease.c), owned */
	struct conn_set *cset;            /* borrowed: the farm connections */
	struct agent_links *links;        /* borrowed: tracker_set_peers() */
	struct relays *relays;            /* borrowed: tracker_set_peers() */
	const struct auth *auth;          /* borrowed; tracker_set_auth() */
	struct board_registry *boards;    /* the agent boards, owned */
	TAILQ_HEAD(, board) dirty_boards; /* state changes not yet written */
	const struct timeval *tv_request; /* common timeouts, or NULL */
	const struct timeval *tv_grace;
	const struct timeval *tv_pair; /* a granted client's time to come */
	void *pending;                 /* tsearch: grants of proxied boards */
	bool stopping;                 /* the broker is going down */
};

struct lease {
	int64_t id; /* ledger row */
	int64_t granted_us;
	bool relayed; /* a PUT board's session the broker relays (dials) */
	char *user;
	char peer[NETADDR_STRLEN];
	TAILQ_ENTRY(lease) link;
};

struct board {
	struct conn *conn;         /* borrowed: the registering connection */
	struct sched_queue *queue; /* borrowed */
	char *host;                /* advertised to clients */
	long port;
	char *address; /* host:port, the ledger name */
	int64_t id;    /* ledger row */
	enum board_state state;
	bool dirty;                 /* state not yet written to the ledger */
	TAILQ_HEAD(, slot) slots;   /* free matchkeys, oldest first */
	TAILQ_HEAD(, lease) leases; /* open leases, oldest first */
	size_t nleases;
	bool drained;    /* no new leases: its slots stay out of the queue */
	bool dying;      /* being torn down: never offered again */
	bool proxied;    /* a data connection waiting to be relayed */
	char *hello_key; /* proxied: its full RPC hello key */
	struct pending *pending; /* proxied: a grant waiting for its client */
	/* Agent boards (is_agent): the board of an npufarm agent's link. */
	bool is_agent;
	struct agent *agent;      /* borrowed: the link's agent */
	struct conn *data;        /* its waiting TVM data connection, or NULL */
	char *data_key;           /* ... that connection's hello key */
	char *data_session;       /* ... and the session id it reports under */
	unsigned runners;         /* SCHED_CAP_KERNEL/EXEC it offers */
	bool ready;               /* the agent said it can take work */
	char *quarantine;         /* the agent's reason, or NULL; PUT boards the
				   * broker dials: why it cannot reach them */
	struct event *unreach_ev; /* PUT boards: ends their quarantine */
	unsigned unreach_n;       /* ... failed dials in a row */
	char *tags;               /* canonical tags (tags.h), or NULL; owned */
	struct sched_request *task; /* the native task it runs, or NULL */
	struct board_entry *entry;  /* agent boards: in trk->boards */
	TAILQ_ENTRY(board) link;
	TAILQ_ENTRY(board) dirty_link;
};

/* A proxied board granted through the tracker, until its client connects. */
struct pending {
	struct board *board; /* borrowed: it points back at us */
	struct lease *lease; /* borrowed: in board->leases */
	struct event *timer; /* the client's time to connect */
	char *dial_key;      /* owned: a PUT board's own matchkey, which the
			      * broker presents when it dials the board */
	char matchkey[];
};

struct treq {
	struct lease_request lr; /* its place in the queue, and its ops */
	struct conn *conn;       /* borrowed: the requesting client */
	bool rpc; /* an RPC data connection (client:KEY), not REQUEST */
	char *key;
	char *user; /* fair-share identity: the user, else the client's IP */
	double priority;
	int64_t requested_us;
	struct event *timeout_ev; /* --request-timeout, or NULL */
	struct event *grace_ev;   /* --unknown-key-grace, or NULL */
	TAILQ_ENTRY(treq) link;
};

struct tracker_conn {
	struct board *data_for; /* an agent data connection: whose */
	char *info;     /* merged UPDATE_INFO, serialised as TVM would; NULL */
	bool is_server; /* info "key" starts with "server": SUMMARY lists it */
	TAILQ_HEAD(, board) boards;
	TAILQ_HEAD(, treq) reqs;
	size_t nreqs;
	size_t nslots;
	char *rpc_key;      /* owned: an RPC connection's hello key, verbatim */
	double rpc_timeout; /* s, from its -timeout=T; 0: none */
};

/* tracker_lease_release(): released with no outcome of its own (the
 * session's report, already written, stands). */
#define TRACKER_NO_OUTCOME LEASE_NO_OUTCOME

/* tracker.c */
void tracker_board_set_state(struct board *b, enum board_state state);
void tracker_lease_release(
    struct board *b, struct lease *l, int outcome, const char *detail);
int tracker_queue_get(
    struct conn *c, const char *key, struct sched_queue **ret);
struct board *tracker_board_new(struct conn *c, struct sched_queue *q,
    const char *kind, const char *host, long port);
void tracker_pending_free(struct pending *p);
struct slot *tracker_slot_new(struct board *b);
void tracker_matchkey_new(const char *key, char *buf, size_t len);
int tracker_proxy_info(struct conn *c, const char *key);
struct tracker_conn *tracker_conn_get(struct conn *c);
struct relay_hello;
void tracker_rpc_hello(const struct conn *c, struct relay_hello *ret);

extern const struct relay_end tracker_dialed_end;

/* tracker_agent.c */
void tracker_agent_update(struct board *b);
void tracker_agent_detach(struct board *b, const char *why);
void tracker_board_relay(
    struct board *b, struct conn *client, int64_t lease_id);
int tracker_agent_attach(struct conn *c, const char *key, const char *name,
    const char *session, const char *hello_key);
