/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Broker configuration: compiled defaults, then a JSON file (--config), then
 * command-line flags.  One table describes every tunable once.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct auth_config;
struct npufarm_err;

#define BROKER_MAX_LISTEN 8
#define BROKER_MAX_ALLOW  64

struct broker_config {
	char *listen[BROKER_MAX_LISTEN]; /* farm port addresses, owned */
	size_t nlisten;
	/* >0: listen[0] takes the first free port below this (--port-end) */
	long listen_port_end;
	char *http;               /* API address, owned */
	char *db;                 /* ledger path, owned */
	char *public_addr;        /* host advertised to clients, NULL: local */
	char *ready_file;         /* NULL: none */
	int verbosity;            /* syslog level */
	double request_timeout;   /* s a REQUEST may wait; 0 = forever */
	double unknown_key_grace; /* s before failing a key with no boards */
	double handshake_timeout; /* s to send the 4-byte magic */
	long max_connections;
	long max_frame; /* bytes of one frame body */
	long max_json_depth;
	long max_key_len;       /* bytes of a key, matchkey, user, address */
	long max_pending;       /* waiting REQUESTs per connection */
	long max_keys;          /* distinct queue keys */
	bool ledger_sync_full;  /* synchronous=FULL (else NORMAL) */
	double agent_heartbeat; /* s between agent heartbeats */
	double pair_timeout;    /* s a granted client has to connect */
	double agent_backstop;  /* s after an agent's session deadline */
	double board_grace;     /* s a timed-out TVM board may linger */
	bool relay_all;         /* --relay-boards all: relay PUT boards too */
	double task_grace;      /* s a task's vanished agent may come back */
	char *data_dir;         /* artifacts live here */
	long max_artifact;      /* bytes of one artifact */
	long max_relays;        /* relayed sessions at once */
	long relay_buffer;      /* bytes queued toward one side: backpressure */
	long relay_max_packet;  /* largest RPC packet relayed, bytes */
	char *agent_token_file; /* NULL: agents need no token */
	char *api_token_file;   /* read scope; NULL: none */
	char *admin_token_file; /* admin scope; NULL: none */
	char *allow[BROKER_MAX_ALLOW]; /* CIDRs for TVM protocols, owned */
	size_t nallow;                 /* 0: loopback only */
	/* Issue 12: what an unauthenticated or hostile peer may cost. */
	long max_http_connections; /* open API connections */
	long max_job_body;         /* bytes of a POST /v1/jobs body */
	long max_unauth_bytes;     /* buffered from peers before auth, total */
	long max_unauth_conn;      /* ... and per connection */
	long retain_days;          /* prune leases/attempts/events; 0: keep */
	long retain_mb;            /* prune when the ledger is larger; 0: off */
};

void broker_config_defaults(struct broker_config *c);
void broker_config_deinit(struct broker_config *c);
int broker_config_load_file(
    struct broker_config *c, const char *path, struct npufarm_err *err);
int broker_config_set(struct broker_config *c, const char *name,
    const char *value, struct npufarm_err *err);
int broker_config_add_listen(
    struct broker_config *c, const char *addr, struct npufarm_err *err);
int broker_config_add_allow(
    struct broker_config *c, const char *cidr, struct npufarm_err *err);
void broker_config_reload(
    struct broker_config *c, const struct broker_config *next);
int broker_config_check(const struct broker_config *c, struct npufarm_err *err);
void broker_config_auth(
    const struct broker_config *c, struct auth_config *ret_view);
void broker_config_usage_options(void);
