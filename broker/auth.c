/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Access control.  Three independent locks, each off until configured:
 *
 *  - the agent token: a hello must carry it ("token"), else the link is
 *    refused with code "unauthorized";
 *  - the API tokens: with api_token_file and/or admin_token_file set,
 *    every API request but the dashboard page needs "Authorization: Bearer
 *    TOKEN"; the API token reads (and acts on the user's own work), the
 *    admin token also drains and undrains.  Without an admin token no one
 *    has the admin scope: it fails closed;
 *  - the allow-list: who may speak TVM's tracker and RPC-proxy protocols,
 *    which have no place for a token.  Default: loopback only.
 *
 * Refusals are logged with the peer's address.  A struct auth never
 * changes once built; SIGHUP builds a new one and swaps it in whole, so a
 * token file that fails to load leaves the old configuration in force.
 */
#include "config.h"

#include "auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "err.h"
#include "log.h"
#include "netaddr.h"
#include "secret.h"

struct auth {
	char *agent_token; /* owned secrets; NULL: not required */
	char *api_token;
	char *admin_token;
	struct auth_cidr *allow; /* owned */
	size_t nallow;
	bool allow_default;       /* no allow given: loopback only */
	struct log_limit refused; /* one refused-request line a second */
};

/* The loopback networks: the allow-list when none is configured. */
static const char *const auth_loopback[] = {"127.0.0.0/8", "::1/128"};

/*
 * Parse @s, "ADDR/PREFIX" or a bare "ADDR" (a single host), IPv4 or IPv6,
 * into *@ret_cidr.  Host bits must be clear: "10.1.2.3/8" is an error that
 * suggests "10.0.0.0/8", since it is more often a typo than an intent.
 * Returns 0, or -EINVAL with @err saying which part of @s is wrong.
 */
int
auth_cidr_parse(
    const char *s, struct auth_cidr *ret_cidr, struct npufarm_err *err)
{
	struct auth_cidr c = {0};
	char host[INET6_ADDRSTRLEN + 1], fixed[64];
	const char *slash = strchr(s, '/');
	unsigned long prefix;
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s), i, bytes;
	unsigned max;
	char *end;
	bool bits = false;

	if (hlen == 0)
		return err_set(
		    err, -EINVAL, "'%s': expected ADDRESS[/PREFIX]", s);
	if (hlen >= sizeof(host))
		return err_set(err, -EINVAL, "'%.64s': address too long", s);
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, c.addr) == 1)
		c.family = AF_INET;
	else if (inet_pton(AF_INET6, host, c.addr) == 1)
		c.family = AF_INET6;
	else
		return err_set(err, -EINVAL,
		    "'%s': '%s' is not an IPv4 or IPv6 address", s, host);
	max = c.family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		prefix = max;
	} else {
		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' ||
		    errno != 0 || prefix > max)
			return err_set(err, -EINVAL,
			    "'%s': prefix '%s' is not a number 0..%u", s,
			    slash + 1, max);
	}
	c.prefix = (unsigned)prefix;
	bytes = max / 8;
	for (i = 0; i < bytes; i++) {
		unsigned keep = c.prefix >= (i + 1) * 8 ? 8
				: c.prefix > i * 8      ? c.prefix - i * 8
							: 0;
		uint8_t mask = (uint8_t)(0xff00u >> keep);

		if (c.addr[i] & (uint8_t)~mask)
			bits = true;
		c.addr[i] &= mask;
	}
	if (bits) {
		auth_cidr_format(&c, fixed, sizeof(fixed));
		return err_set(err, -EINVAL,
		    "'%s': host bits are set after /%u; the network is %s", s,
		    c.prefix, fixed);
	}
	*ret_cidr = c;
	return 0;
}

/* Write @c as "ADDR/PREFIX" into @buf. */
void
auth_cidr_format(const struct auth_cidr *c, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, host, sizeof(host)) == NULL)
		(void)snprintf(host, sizeof(host), "?");
	(void)snprintf(buf, len, "%s/%u", host, c->prefix);
}

static bool
prefix_match(const uint8_t *net, const uint8_t *addr, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(net, addr, full) != 0)
		return false;
	return rest == 0 ||
	       ((net[full] ^ addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

/*
 * Whether the AF_INET/AF_INET6 address @sa lies in @c.  An IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports for IPv4
 * peers) matches IPv4 networks as its IPv4 address, and IPv6 networks as
 * itself.  Other families never match.
 */
bool
auth_cidr_match(const struct auth_cidr *c, const struct sockaddr *sa)
{
	const struct sockaddr_in6 *in6 = (const void *)sa;
	const struct sockaddr_in *in = (const void *)sa;

	if (sa->sa_family == AF_INET)
		return c->family == AF_INET &&
		       prefix_match(c->addr,
			   (const uint8_t *)&in->sin_addr.s_addr, c->prefix);
	if (sa->sa_family != AF_INET6)
		return false;
	if (c->family == AF_INET6)
		return prefix_match(c->addr, in6->sin6_addr.s6_addr, c->prefix);
	return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
	       prefix_match(c->addr, in6->sin6_addr.s6_addr + 12, c->prefix);
}

static int
load_token(
    const char *path, const char *what, char **ret, struct npufarm_err *err)
{
	struct stat st;
	int r;

	if (path == NULL)
		return 0;
	r = secret_read_file(path, ret, err);
	if (r < 0) {
		err_prefix(err, "%s: ", what);
		return r;
	}
	if (stat(path, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH)))
		log_warn("%s: token file '%s' is readable by every user on "
			 "this host; chmod 0600 it",
		    what, path);
	return 0;
}

/*
 * Build the access rules @cfg describes: read its token files and parse
 * its allow-list.  Returns 0 with *@ret_auth set, or -errno with @err
 * naming the option and the file or entry at fault.  Logs only warnings
 * (a world-readable token file).
 */
int
auth_new(const struct auth_config *cfg, struct auth **ret_auth,
    struct npufarm_err *err)
{
	const char *const *list = cfg->allow;
	struct auth *a;
	size_t i, n = cfg->nallow;
	int r;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	if (n == 0) {
		list = auth_loopback;
		n = sizeof(auth_loopback) / sizeof(auth_loopback[0]);
		a->allow_default = true;
	}
	a->allow = calloc(n, sizeof(*a->allow));
	if (a->allow == NULL) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		r = auth_cidr_parse(list[i], &a->allow[i], err);
		if (r < 0) {
			err_prefix(err, "allow[%zu]: ", i);
			goto fail;
		}
	}
	a->nallow = n;
	r = load_token(
	    cfg->agent_token_file, "agent_token_file", &a->agent_token, err);
	if (r >= 0)
		r = load_token(
		    cfg->api_token_file, "api_token_file", &a->api_token, err);
	if (r >= 0)
		r = load_token(cfg->admin_token_file, "admin_token_file",
		    &a->admin_token, err);
	if (r < 0)
		goto fail;
	if (a->api_token != NULL && a->admin_token != NULL &&
	    secret_equal(a->api_token, a->admin_token)) {
		r = err_set(err, -EINVAL,
		    "api_token_file and admin_token_file hold the same token: "
		    "the API token would have the admin scope");
		goto fail;
	}
	*ret_auth = a;
	return 0;
fail:
	auth_free(a);
	return r;
}

/* Free @a, wiping its tokens.  Accepts NULL; returns NULL. */
struct auth *
auth_free(struct auth *a)
{
	if (a == NULL)
		return NULL;
	secret_free(a->agent_token);
	secret_free(a->api_token);
	secret_free(a->admin_token);
	free(a->allow);
	free(a);
	return NULL;
}

static const char *
token_change(const char *old, const char *now)
{
	if (old == NULL && now == NULL)
		return NULL;
	if (old == NULL)
		return "now required";
	if (now == NULL)
		return "no longer required";
	return secret_equal(old, now) ? NULL : "changed";
}

static void
allow_text(const struct auth *a, char *buf, size_t len)
{
	size_t i, used = 0;
	char one[64];

	buf[0] = '\0';
	for (i = 0; i < a->nallow && used < len; i++) {
		auth_cidr_format(&a->allow[i], one, sizeof(one));
		used += (size_t)snprintf(
		    buf + used, len - used, "%s%s", i ? " " : "", one);
	}
}

/*
 * Log what differs between the rules in force, @old, and @a, which
 * replaces them (SIGHUP).  Never logs a token, only that it changed.
 */
void
auth_log_changes(const struct auth *old, const struct auth *a)
{
	static const char *const names[] = {
	    "agent token", "API token", "admin token"};
	const char *olds[] = {
	    old->agent_token, old->api_token, old->admin_token};
	const char *nows[] = {a->agent_token, a->api_token, a->admin_token};
	char before[512], after[512];
	const char *what;
	size_t i;

	for (i = 0; i < 3; i++)
		if ((what = token_change(olds[i], nows[i])) != NULL)
			log_notice("SIGHUP: %s %s", names[i], what);
	allow_text(old, before, sizeof(before));
	allow_text(a, after, sizeof(after));
	if (strcmp(before, after) != 0)
		log_notice("SIGHUP: allow: %s -> %s", before, after);
}

/*
 * Whether the peer with numeric address @host (as conn.c keeps it, IPv4
 * unwrapped from v4-mapped) may speak the TVM tracker and proxy protocols.
 */
bool
auth_peer_allowed(const struct auth *a, const char *host)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *in = (void *)&ss;
	struct sockaddr_in6 *in6 = (void *)&ss;
	size_t i;

	if (inet_pton(AF_INET, host, &in->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return false;
	for (i = 0; i < a->nallow; i++)
		if (auth_cidr_match(&a->allow[i], (struct sockaddr *)&ss))
			return true;
	return false;
}

/*
 * Check an agent hello's @token (NULL: the hello had none).  Returns 0 if
 * the link may proceed, or -EACCES with the reason in @why (which never
 * holds a token).
 */
int
auth_agent(const struct auth *a, const char *token, char *why, size_t whylen)
{
	if (a->agent_token == NULL)
		return 0;
	if (token == NULL) {
		(void)snprintf(why, whylen,
		    "hello: this broker requires an agent token; give the "
		    "agent --token-file FILE with the broker's "
		    "agent_token_file");
		return -EACCES;
	}
	if (!secret_equal(a->agent_token, token)) {
		(void)snprintf(why, whylen,
		    "hello: wrong agent token (it must match the broker's "
		    "agent_token_file)");
		return -EACCES;
	}
	return 0;
}

/*
 * The scope a request needs: drain and undrain are ADMIN, the rest READ.
 * (Job routes decide "someone else's job" themselves from the scope
 * auth_http() granted.)
 */
enum auth_scope
auth_route_scope(int method, const char *path)
{
	static const char prefix[] = "/v1/boards/";
	const char *slash;

	if (method != EVHTTP_REQ_POST || path == NULL ||
	    strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return AUTH_SCOPE_READ;
	slash = strrchr(path, '/');
	if (strcmp(slash, "/drain") == 0 || strcmp(slash, "/undrain") == 0)
		return AUTH_SCOPE_ADMIN;
	return AUTH_SCOPE_READ;
}

static void
refuse_http(struct auth *a, struct evhttp_request *req, int code,
    const char *reason, const char *why, const char *msg)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	const char *uri = evhttp_request_get_uri(req);
	char *peer = NULL, hdr[128], safe[128];
	ev_uint16_t port = 0;
	unsigned long quiet;

	if (code == 401) {
		(void)snprintf(hdr, sizeof(hdr), "Bearer realm=\"npufarm\"%s",
		    why != NULL ? ", error=\"invalid_token\"" : "");
		evhttp_add_header(h, "WWW-Authenticate", hdr);
	}
	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add_printf(
	    evhttp_request_get_output_buffer(req), "{\"error\":\"%s\"}\n", msg);
	evhttp_send_reply(req, code, reason, NULL);
	/* One line a second: a client guessing tokens must not also flood
	 * the log. */
	if (!log_limit_pass(&a->refused, &quiet))
		return;
	if (conn != NULL)
		evhttp_connection_get_peer(conn, &peer, &port);
	(void)log_escape(
	    safe, sizeof(safe), uri ? uri : "?", uri ? strlen(uri) : 1);
	log_notice("HTTP %s:%u: %s: %d %s (%s)%s", peer ? peer : "?",
	    (unsigned)port, safe, code, reason, why != NULL ? why : "no token",
	    quiet ? "; more refusals not logged" : "");
}

/*
 * Check @req's "Authorization: Bearer TOKEN" for scope @need.  Returns
 * the scope granted (>= @need), or -EACCES after answering @req itself:
 * 401 (with WWW-Authenticate: Bearer) for a missing or unknown token, 403
 * for a token without @need.  A broker with no API token grants ADMIN to
 * everyone.  Logs refusals with the peer's address, at most one line a
 * second.  Runs on the broker loop.
 */
int
auth_http(struct auth *a, struct evhttp_request *req, enum auth_scope need)
{
	const char *v = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "Authorization");
	int r = auth_http_check(a, v, need);

	if (r == -ENOKEY)
		refuse_http(
		    a, req, 401, "Unauthorized", NULL, AUTH_MSG_NO_TOKEN);
	else if (r == -EKEYREJECTED)
		refuse_http(a, req, 401, "Unauthorized", "wrong token",
		    AUTH_MSG_BAD_TOKEN);
	else if (r == -EPERM)
		refuse_http(a, req, 403, "Forbidden", "read-scope token",
		    a->admin_token != NULL ? AUTH_MSG_READ_ONLY
					   : AUTH_MSG_NO_ADMIN);
	return r < 0 ? -EACCES : r;
}

/*
 * The decision of auth_http() from the Authorization header value @v alone
 * (NULL: none), without answering or logging: the scope granted, or
 * -ENOKEY (no bearer token), -EKEYREJECTED (a wrong one), -EPERM (a read
 * token where @need is ADMIN).  The HTTP API calls it on a request's
 * headers, before it reads any body.
 */
int
auth_http_check(const struct auth *a, const char *v, enum auth_scope need)
{
	const char *token;
	bool admin, api;

	if (a->api_token == NULL && a->admin_token == NULL)
		return AUTH_SCOPE_ADMIN;
	if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
		return -ENOKEY;
	token = v + 7;
	token += strspn(token, " ");
	/* Both comparisons always run: no timing hint of which it was. */
	admin = a->admin_token != NULL && secret_equal(a->admin_token, token);
	api = a->api_token != NULL && secret_equal(a->api_token, token);
	if (!admin && !api)
		return -EKEYREJECTED;
	if (need == AUTH_SCOPE_ADMIN && !admin)
		return -EPERM;
	return admin ? AUTH_SCOPE_ADMIN : AUTH_SCOPE_READ;
}

/* Whether the "HOST:PORT" @addr is bound to a loopback address. */
static bool
is_loopback(const char *addr)
{
	char host[NETADDR_STRLEN];
	unsigned port;
	struct auth_cidr lo;
	struct in_addr v4;
	struct in6_addr v6;

	if (netaddr_split(addr, host, sizeof(host), &port, NULL) < 0)
		return false;
	if (inet_pton(AF_INET, host, &v4) == 1) {
		(void)auth_cidr_parse("127.0.0.0/8", &lo, NULL);
		return prefix_match(lo.addr, (const uint8_t *)&v4.s_addr, 8);
	}
	if (inet_pton(AF_INET6, host, &v6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&v6);
	return false;
}

static bool
allows_anyone(const struct auth *a)
{
	size_t i;

	for (i = 0; i < a->nallow; i++)
		if (a->allow[i].prefix == 0)
			return true;
	return false;
}

/*
 * Warn, loudly, about every way the bound addresses (@farm: the farm
 * ports, @http: the API, as "HOST:PORT" after binding) expose the farm
 * beyond this host without a lock: agents without a token, the API
 * without one, TVM's protocols to any address.  Returns the number of
 * warnings given (0: nothing exposed, or everything locked).
 */
int
auth_warn_exposure(const struct auth *a, const char *const *farm, size_t nfarm,
    const char *http)
{
	const char *open_farm = NULL;
	int n = 0;
	size_t i;

	for (i = 0; i < nfarm; i++)
		if (!is_loopback(farm[i]))
			open_farm = farm[i];
	if (open_farm != NULL && a->agent_token == NULL) {
		log_warn("WARNING: the farm port %s is reachable from other "
			 "hosts and no agent token is set.",
		    open_farm);
		log_warn("WARNING: anyone who can connect can register a "
			 "board, and be handed tuning sessions, their "
			 "models and data.");
		log_warn("WARNING: set agent_token_file "
			 "(--agent-token-file) and give agents --token-file; "
			 "see docs/operations.md.");
		n++;
	}
	if (open_farm != NULL && allows_anyone(a)) {
		log_warn("WARNING: the allow-list lets any address speak "
			 "TVM's tracker and RPC proxy on %s.",
		    open_farm);
		log_warn("WARNING: those protocols carry no credentials: "
			 "anyone can lease boards, run code on them, or "
			 "pose as a board.");
		log_warn("WARNING: list only your tuners' networks with "
			 "--allow CIDR; see docs/operations.md.");
		n++;
	}
	if (http != NULL && !is_loopback(http) && a->api_token == NULL &&
	    a->admin_token == NULL) {
		log_warn("WARNING: the HTTP API %s is reachable from other "
			 "hosts and no API token is set.",
		    http);
		log_warn("WARNING: anyone who can connect can read the farm's "
			 "history and drain or undrain its boards.");
		log_warn("WARNING: set api_token_file and admin_token_file, "
			 "or bind --http to 127.0.0.1; see "
			 "docs/operations.md.");
		n++;
	}
	return n;
}
