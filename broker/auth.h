/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Access control (docs/operations.md "Exposing the farm"): the agent
 * token, the API tokens with their scopes, and the allow-list of networks
 * that may speak TVM's tracker and RPC-proxy protocols, which cannot carry
 * a token.  One immutable struct auth, built from the configuration and
 * swapped whole on SIGHUP.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct evhttp_request;
struct npufarm_err;

/* An allow-list entry: a network, host bits clear. */
struct auth_cidr {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network address, 4 or 16 bytes used */
	unsigned prefix;  /* 0..32 or 0..128 */
};

/* What an API token may do; an open broker (no API token) grants ADMIN. */
enum auth_scope {
	AUTH_SCOPE_NONE = 0,
	AUTH_SCOPE_READ,  /* api_token: reads, and a user's own work */
	AUTH_SCOPE_ADMIN, /* admin_token: drain/undrain, others' jobs */
};

struct auth;

/*
 * What the access rules are built from: plain data, borrowed for the
 * length of auth_new() (broker_config_auth() lends the broker's).
 */
struct auth_config {
	const char *const *allow;     /* CIDRs for the TVM protocols */
	size_t nallow;                /* 0: loopback only */
	const char *agent_token_file; /* NULL: agents need no token */
	const char *api_token_file;   /* read scope; NULL: none */
	const char *admin_token_file; /* admin scope; NULL: none */
};

int auth_cidr_parse(
    const char *s, struct auth_cidr *ret_cidr, struct npufarm_err *err);
bool auth_cidr_match(const struct auth_cidr *c, const struct sockaddr *sa);
void auth_cidr_format(const struct auth_cidr *c, char *buf, size_t len);

int auth_new(const struct auth_config *cfg, struct auth **ret_auth,
    struct npufarm_err *err);
struct auth *auth_free(struct auth *a);
void auth_log_changes(const struct auth *old, const struct auth *a);
bool auth_peer_allowed(const struct auth *a, const char *host);
int auth_agent(
    const struct auth *a, const char *token, char *why, size_t whylen);
int auth_http(struct auth *a, struct evhttp_request *req, enum auth_scope need);
int auth_http_check(const struct auth *a, const char *v, enum auth_scope need);

/* The messages of auth_http()'s refusals (JSON-safe). */
#define AUTH_MSG_NO_TOKEN                                                 \
	"this broker requires an API token: send 'Authorization: Bearer " \
	"TOKEN' (npufarm --token-file FILE)"
#define AUTH_MSG_BAD_TOKEN "the API token is not valid for this broker"
#define AUTH_MSG_READ_ONLY \
	"this needs the admin token; the token given may only read"
#define AUTH_MSG_NO_ADMIN                                       \
	"this needs the admin token, and this broker has none " \
	"(admin_token_file)"
enum auth_scope auth_route_scope(int method, const char *path);
int auth_warn_exposure(const struct auth *a, const char *const *farm,
    size_t nfarm, const char *http);
