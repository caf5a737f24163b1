/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The option table: each entry is a JSON key in the config file and, with
 * '_' spelled '-', a --flag.  Values are range-checked here, before anything
 * opens a socket or the ledger.
 */
#include "config.h"

#include "broker_config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <jansson.h>

#include <npufarm/protocol.h>

#include "auth.h" /* struct auth_config: a type, no calls */
#include "err.h"
#include "log.h"
#include "netaddr.h"

enum opt_type {
	OPT_STR,
	OPT_LONG,
	OPT_SECONDS,
	OPT_WORDS, /* a bool spelled as one of two words */
};

struct opt {
	const char *name;
	enum opt_type type;
	size_t offset;
	double min, max;
	const char *help;
};

/* The two words of each OPT_WORDS option: false, true. */
static const struct {
	const char *name;
	const char *words[2];
} opt_words_table[] = {
    {"ledger_sync", {"normal", "full"}},
    {"relay_boards", {"proxy", "all"}},
};

#define OFF(f) offsetof(struct broker_config, f)

static const struct opt opts[] = {
    {"http", OPT_STR, OFF(http), 0, 0, "HTTP API address"},
    {"db", OPT_STR, OFF(db), 0, 0, "ledger path"},
    {"data_dir", OPT_STR, OFF(data_dir), 0, 0,
	"where artifacts of native tasks are stored"},
    {"public_addr", OPT_STR, OFF(public_addr), 0, 0,
	"host name clients are told to connect back to"},
    {"ready_file", OPT_STR, OFF(ready_file), 0, 0,
	"write bound addresses here as JSON once accepting"},
    {"request_timeout", OPT_SECONDS, OFF(request_timeout), 0, 1e7,
	"fail a REQUEST that waited this long (0: wait forever)"},
    {"unknown_key_grace", OPT_SECONDS, OFF(unknown_key_grace), 0, 1e7,
	"fail a REQUEST for a key without boards after this long (0: off)"},
    {"handshake_timeout", OPT_SECONDS, OFF(handshake_timeout), 0.01, 3600,
	"close a connection that sends no magic within this long"},
    {"max_connections", OPT_LONG, OFF(max_connections), 0, 10000000,
	"connections on the farm port (0: the open-files limit less 64)"},
    {"max_frame", OPT_LONG, OFF(max_frame), 64, NPUFARM_MAX_FRAME,
	"bytes in one frame body"},
    {"max_json_depth", OPT_LONG, OFF(max_json_depth), 2, 1000,
	"nesting of JSON arrays and objects"},
    {"max_key_len", OPT_LONG, OFF(max_key_len), 8, 4096,
	"bytes in a key, matchkey, user or address"},
    {"max_pending", OPT_LONG, OFF(max_pending), 1, 100000,
	"waiting REQUESTs per connection"},
    {"max_keys", OPT_LONG, OFF(max_keys), 1, 10000000,
	"distinct keys with boards or requests"},
    {"agent_heartbeat", OPT_SECONDS, OFF(agent_heartbeat), 0.05, 600,
	"agent heartbeat period; three missed: the board is offline"},
    {"pair_timeout", OPT_SECONDS, OFF(pair_timeout), 0.1, 3600,
	"return a board granted to a client that never connects"},
    {"task_grace", OPT_SECONDS, OFF(task_grace), 0.1, 86400,
	"a native task whose agent vanished is lost (and retried) after this"},
    {"max_artifact", OPT_LONG, OFF(max_artifact), 1024, 1L << 34,
	"bytes in one artifact (PUT /v1/artifacts)"},
    {"agent_backstop", OPT_SECONDS, OFF(agent_backstop), 0.1, 3600,
	"an agent ends its own sessions at their deadline; the broker "
	"only this much later"},
    {"max_relays", OPT_LONG, OFF(max_relays), 1, 1000000,
	"relayed TVM RPC sessions at once"},
    {"relay_buffer", OPT_LONG, OFF(relay_buffer), 4096, 1L << 30,
	"bytes queued toward one side of a relay before reading pauses"},
    {"relay_max_packet", OPT_LONG, OFF(relay_max_packet), 64, 1L << 40,
	"largest RPC packet a relay accepts, bytes"},
    {"ledger_sync", OPT_WORDS, OFF(ledger_sync_full), 0, 0,
	"'full' (default) or 'normal' (may lose the last commits on "
	"power loss)"},
    {"relay_boards", OPT_WORDS, OFF(relay_all), 0, 0,
	"'proxy' (default): relay boards that dial in; 'all': also relay "
	"boards registered by PUT (the broker dials them)"},
    {"board_grace", OPT_SECONDS, OFF(board_grace), 0, 3600,
	"after a session deadline, read and discard a TVM board's late "
	"bytes this long before closing it"},
    {"agent_token_file", OPT_STR, OFF(agent_token_file), 0, 0,
	"agents must say hello with the token in this file"},
    {"api_token_file", OPT_STR, OFF(api_token_file), 0, 0,
	"API requests need this bearer token (read scope)"},
    {"admin_token_file", OPT_STR, OFF(admin_token_file), 0, 0,
	"bearer token for drain/undrain (admin scope)"},
    {"max_http_connections", OPT_LONG, OFF(max_http_connections), 1, 1000000,
	"open connections on the HTTP API"},
    {"max_job_body", OPT_LONG, OFF(max_job_body), 1024, 1L << 32,
	"bytes in a POST /v1/jobs body"},
    {"max_unauth_bytes", OPT_LONG, OFF(max_unauth_bytes), 4096, 1L << 34,
	"bytes buffered from peers that have not finished a handshake, "
	"in total"},
    {"max_unauth_conn", OPT_LONG, OFF(max_unauth_conn), 512, 1L << 24,
	"bytes buffered from one peer before its handshake is done"},
    {"retain_days", OPT_LONG, OFF(retain_days), 0, 100000,
	"prune lease, attempt and event rows older than this (0: keep)"},
    {"retain_mb", OPT_LONG, OFF(retain_mb), 0, 1L << 24,
	"prune the oldest rows while the ledger is larger (0: no cap)"},
};

/*
 * What SIGHUP may change in a running broker (docs/operations.md): limits
 * read afresh for each new request, connection or session, and access
 * control (allow, the token files and the tokens in them; "verbose" too).
 * Everything else is bound at start: listen, http, db, ready_file,
 * ledger_sync; max_frame and max_connections size live connections;
 * agent_heartbeat was promised to every linked agent in its welcome.
 * A separate list, not a column of opts[], so that options others add to
 * the table stay restart-only unless someone decides otherwise.
 */
static const char *const reloadable[] = {
    "public_addr",
    "request_timeout",
    "unknown_key_grace",
    "handshake_timeout",
    "max_json_depth",
    "max_key_len",
    "max_pending",
    "max_keys",
    "pair_timeout",
    "agent_backstop",
    "board_grace",
    "max_relays",
    "relay_buffer",
    "relay_max_packet",
    "agent_token_file",
    "api_token_file",
    "admin_token_file",
    "retain_days",
    "retain_mb",
};

/* Fill @c with the compiled defaults: loopback only, ./npufarm.db. */
void
broker_config_defaults(struct broker_config *c)
{
	memset(c, 0, sizeof(*c));
	c->verbosity = LOG_NOTICE;
	c->request_timeout = 0;
	c->unknown_key_grace = 60;
	c->handshake_timeout = 10;
	c->max_connections = 0; /* from the open-files limit */
	c->max_frame = NPUFARM_MAX_FRAME;
	c->max_json_depth = 32;
	c->max_key_len = 256;
	c->max_pending = 64;
	c->max_keys = 100000;
	c->ledger_sync_full = true;
	c->pair_timeout = 15;
	c->agent_backstop = 2;
	c->board_grace = 5;
	c->task_grace = 10;
	c->max_artifact = 256L * 1024 * 1024;
	c->agent_heartbeat = 2;
	c->max_relays = 4096;
	c->relay_buffer = 4 * 1024 * 1024;
	c->relay_max_packet = 256L * 1024 * 1024;
	c->max_http_connections = 256;
	c->max_job_body = 64L * 1024 * 1024;
	c->max_unauth_bytes = 16L * 1024 * 1024;
	c->max_unauth_conn = 64 * 1024;
}

/* Free the strings @c owns; @c may be reused after broker_config_defaults. */
void
broker_config_deinit(struct broker_config *c)
{
	size_t i;

	for (i = 0; i < c->nlisten; i++)
		free(c->listen[i]);
	free(c->http);
	free(c->db);
	free(c->data_dir);
	free(c->public_addr);
	free(c->ready_file);
	free(c->agent_token_file);
	free(c->api_token_file);
	free(c->admin_token_file);
	for (i = 0; i < c->nallow; i++)
		free(c->allow[i]);
	memset(c, 0, sizeof(*c));
}

/* Append a farm-port address.  Returns 0, -E2BIG or -ENOMEM. */
int
broker_config_add_listen(
    struct broker_config *c, const char *addr, struct npufarm_err *err)
{
	if (c->nlisten == BROKER_MAX_LISTEN)
		return err_set(err, -E2BIG, "listen: at most %d addresses",
		    BROKER_MAX_LISTEN);
	c->listen[c->nlisten] = strdup(addr);
	if (c->listen[c->nlisten] == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	c->nlisten++;
	return 0;
}

/*
 * Append an allow-list entry (checked by broker_config_check()).  Returns
 * 0, -E2BIG or -ENOMEM.
 */
int
broker_config_add_allow(
    struct broker_config *c, const char *cidr, struct npufarm_err *err)
{
	if (c->nallow == BROKER_MAX_ALLOW)
		return err_set(err, -E2BIG, "allow: at most %d networks",
		    BROKER_MAX_ALLOW);
	c->allow[c->nallow] = strdup(cidr);
	if (c->allow[c->nallow] == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	c->nallow++;
	return 0;
}

static const struct opt *
opt_find(const char *name)
{
	size_t i, j;

	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const char *o = opts[i].name;

		for (j = 0; o[j] != '\0' && name[j] != '\0'; j++)
			if (!(o[j] == name[j] ||
				(o[j] == '_' && name[j] == '-')))
				break;
		if (o[j] == '\0' && name[j] == '\0')
			return &opts[i];
	}
	return NULL;
}

static const char *const *
opt_words(const struct opt *o)
{
	size_t i;

	for (i = 0; i < sizeof(opt_words_table) / sizeof(opt_words_table[0]);
	     i++)
		if (strcmp(opt_words_table[i].name, o->name) == 0)
			return opt_words_table[i].words;
	abort(); /* every OPT_WORDS option is in the table */
}

static int
opt_apply(struct broker_config *c, const struct opt *o, const char *value,
    struct npufarm_err *err)
{
	char *p = (char *)c + o->offset, *end;
	double d;

	switch (o->type) {
	case OPT_STR: {
		char *s = strdup(value);

		if (s == NULL)
			return err_set(err, -ENOMEM, "out of memory");
		free(*(char **)(void *)p);
		*(char **)(void *)p = s;
		return 0;
	}
	case OPT_WORDS:
		if (strcmp(value, opt_words(o)[1]) == 0)
			*(bool *)p = true;
		else if (strcmp(value, opt_words(o)[0]) == 0)
			*(bool *)p = false;
		else
			return err_set(err, -EINVAL,
			    "%s: expected '%s' or '%s', got '%s'", o->name,
			    opt_words(o)[1], opt_words(o)[0], value);
		return 0;
	case OPT_LONG:
	case OPT_SECONDS:
		errno = 0;
		d = strtod(value, &end);
		if (errno != 0 || end == value || *end != '\0' || !isfinite(d))
			return err_set(err, -EINVAL, "%s: '%s' is not a number",
			    o->name, value);
		if (d < o->min || d > o->max)
			return err_set(err, -ERANGE,
			    "%s: %s is out of range %g..%g", o->name, value,
			    o->min, o->max);
		if (o->type == OPT_SECONDS) {
			*(double *)(void *)p = d;
		} else {
			if (d != (double)(long)d)
				return err_set(err, -EINVAL,
				    "%s: '%s' is not an integer", o->name,
				    value);
			*(long *)(void *)p = (long)d;
		}
		return 0;
	}
	return err_set(err, -EINVAL, "%s: unhandled type", o->name);
}

/*
 * Set option @name ("max_frame" or "max-frame") from its text @value.
 * Returns 0, -ENOENT for an unknown name, -EINVAL/-ERANGE for a bad value.
 */
int
broker_config_set(struct broker_config *c, const char *name, const char *value,
    struct npufarm_err *err)
{
	const struct opt *o = opt_find(name);

	if (o == NULL)
		return err_set(err, -ENOENT, "unknown option '%s'", name);
	return opt_apply(c, o, value, err);
}

/*
 * Apply a JSON config file: an object whose keys are option names, plus
 * "listen" (a string or a list) and "verbose" (0-3).  Unknown keys and wrong
 * types are errors naming the key and the file.
 */
int
broker_config_load_file(
    struct broker_config *c, const char *path, struct npufarm_err *err)
{
	json_error_t jerr;
	const char *name;
	json_t *root, *v;
	char buf[64];
	int r = 0;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return err_set(err, -EINVAL,
		    "config '%s' line %d column %d: %s", path, jerr.line,
		    jerr.column, jerr.text);
	if (!json_is_object(root)) {
		r = err_set(
		    err, -EINVAL, "config '%s': expected a JSON object", path);
		goto out;
	}
	json_object_foreach(root, name, v) {
		const struct opt *o;
		const char *text;

		if (strcmp(name, "listen") == 0) {
			size_t i;
			json_t *a;

			if (json_is_string(v)) {
				r = broker_config_add_listen(
				    c, json_string_value(v), err);
			} else if (json_is_array(v)) {
				json_array_foreach(v, i, a) {
					if (!json_is_string(a)) {
						r = err_set(err, -EINVAL,
						    "listen[%zu]: expected a "
						    "string",
						    i);
						break;
					}
					r = broker_config_add_listen(
					    c, json_string_value(a), err);
					if (r < 0)
						break;
				}
			} else {
				r = err_set(err, -EINVAL,
				    "listen: expected a string or a list");
			}
		} else if (strcmp(name, "allow") == 0) {
			size_t i;
			json_t *a;

			if (!json_is_array(v)) {
				r = err_set(err, -EINVAL,
				    "allow: expected a list of CIDRs");
			} else {
				json_array_foreach(v, i, a) {
					if (!json_is_string(a)) {
						r = err_set(err, -EINVAL,
						    "allow[%zu]: expected a "
						    "string",
						    i);
						break;
					}
					r = broker_config_add_allow(
					    c, json_string_value(a), err);
					if (r < 0)
						break;
				}
			}
		} else if (strcmp(name, "verbose") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 3)
				r = err_set(err, -EINVAL,
				    "verbose: expected an integer 0..3");
			else
				c->verbosity =
				    LOG_NOTICE + (int)json_integer_value(v);
		} else if ((o = opt_find(name)) == NULL ||
			   strcmp(o->name, name) != 0) {
			r = err_set(err, -EINVAL, "unknown key '%s'", name);
		} else {
			if (json_is_string(v) &&
			    (o->type == OPT_STR || o->type == OPT_WORDS)) {
				text = json_string_value(v);
			} else if (json_is_number(v) && o->type != OPT_STR &&
				   o->type != OPT_WORDS) {
				(void)snprintf(buf, sizeof(buf), "%.17g",
				    json_number_value(v));
				text = buf;
			} else {
				r = err_set(err, -EINVAL,
				    "%s: wrong type (expected %s)", name,
				    o->type == OPT_STR || o->type == OPT_WORDS
					? "a string"
					: "a number");
				goto check;
			}
			r = opt_apply(c, o, text, err);
		}
	check:
		if (r < 0) {
			err_prefix(err, "config '%s': ", path);
			goto out;
		}
	}
out:
	json_decref(root);
	return r;
}

/*
 * Validate the whole configuration (addresses parse, values are coherent).
 * Never touches the network beyond name resolution.  The access rules
 * (the allow-list, the token files) are checked by building them:
 * auth_new() on broker_config_auth(), which the caller does.
 */
int
broker_config_check(const struct broker_config *c, struct npufarm_err *err)
{
	char host[NETADDR_STRLEN];
	unsigned port;
	size_t i;
	int r;

	for (i = 0; i < c->nlisten; i++) {
		r = netaddr_split(c->listen[i], host, sizeof(host), &port, err);
		if (r < 0)
			return r;
	}
	if (c->http != NULL) {
		r = netaddr_split(c->http, host, sizeof(host), &port, err);
		if (r < 0)
			return r;
	}
	if (c->db == NULL || c->db[0] == '\0')
		return err_set(err, -EINVAL, "db: empty path");
	return 0;
}

/*
 * The part of @c that the access rules are built from, as auth_new()
 * takes it.  *@ret_view borrows @c's strings: valid while @c is unchanged.
 */
void
broker_config_auth(const struct broker_config *c, struct auth_config *ret_view)
{
	*ret_view = (struct auth_config){
	    .allow = (const char *const *)c->allow,
	    .nallow = c->nallow,
	    .agent_token_file = c->agent_token_file,
	    .api_token_file = c->api_token_file,
	    .admin_token_file = c->admin_token_file,
	};
}

static void
opt_text(
    const struct broker_config *c, const struct opt *o, char *buf, size_t len)
{
	const char *p = (const char *)c + o->offset;

	switch (o->type) {
	case OPT_STR:
		(void)snprintf(buf, len, "%s",
		    *(char *const *)(const void *)p
			? *(char *const *)(const void *)p
			: "(unset)");
		break;
	case OPT_WORDS:
		(void)snprintf(
		    buf, len, "%s", opt_words(o)[*(const bool *)p ? 1 : 0]);
		break;
	case OPT_LONG:
		(void)snprintf(buf, len, "%ld", *(const long *)(const void *)p);
		break;
	case OPT_SECONDS:
		(void)snprintf(
		    buf, len, "%g", *(const double *)(const void *)p);
		break;
	}
}

static bool
reloadable_opt(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(reloadable) / sizeof(reloadable[0]); i++)
		if (strcmp(reloadable[i], name) == 0)
			return true;
	return false;
}

static bool
lists_differ(char *const *a, size_t na, char *const *b, size_t nb)
{
	size_t i;

	if (na != nb)
		return true;
	for (i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return true;
	return false;
}

/*
 * SIGHUP: take from @next (a configuration built afresh and checked) what
 * may change in a running broker into @c, logging each change, and log
 * every other difference as needing a restart.  @next is left as it was.
 * The caller re-derives what it computed from @c (timeouts, access
 * rules).  Runs on the broker loop.
 */
void
broker_config_reload(struct broker_config *c, const struct broker_config *next)
{
	char before[256], after[256];
	size_t i;

	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct opt *o = &opts[i];

		opt_text(c, o, before, sizeof(before));
		opt_text(next, o, after, sizeof(after));
		if (strcmp(before, after) == 0)
			continue;
		if (!reloadable_opt(o->name)) {
			log_warn("SIGHUP: %s changed (%s -> %s): requires a "
				 "restart, ignoring",
			    o->name, before, after);
			continue;
		}
		if (o->type == OPT_STR) {
			char **dst = (char **)(void *)((char *)c + o->offset);
			const char *src =
			    *(char *const *)(const void *)((const char *)next +
							   o->offset);
			char *dup = src ? strdup(src) : NULL;

			if (src != NULL && dup == NULL) {
				log_err("SIGHUP: %s: out of memory", o->name);
				continue;
			}
			free(*dst);
			*dst = dup;
		} else {
			memcpy((char *)c + o->offset,
			    (const char *)next + o->offset,
			    o->type == OPT_LONG      ? sizeof(long)
			    : o->type == OPT_SECONDS ? sizeof(double)
						     : sizeof(bool));
		}
		log_notice("SIGHUP: %s: %s -> %s", o->name, before, after);
	}
	if (lists_differ(c->listen, c->nlisten, next->listen, next->nlisten))
		log_warn("SIGHUP: listen changed: requires a restart, "
			 "ignoring");
	if (lists_differ(c->allow, c->nallow, next->allow, next->nallow)) {
		char **dup =
		    calloc(next->nallow ? next->nallow : 1, sizeof(*dup));
		size_t n = 0;

		for (i = 0; dup != NULL && i < next->nallow; i++, n++)
			if ((dup[i] = strdup(next->allow[i])) == NULL)
				break;
		if (dup == NULL || n < next->nallow) {
			for (i = 0; dup != NULL && i < n; i++)
				free(dup[i]);
			free(dup);
			log_err("SIGHUP: allow: out of memory");
		} else {
			for (i = 0; i < c->nallow; i++)
				free(c->allow[i]);
			memcpy(c->allow, dup, n * sizeof(*dup));
			c->nallow = n;
			free(dup);
		}
	}
	if (c->verbosity != next->verbosity) {
		log_notice("SIGHUP: log level %d -> %d", c->verbosity,
		    next->verbosity);
		c->verbosity = next->verbosity;
	}
}

/* Print the table-driven options for --help. */
void
broker_config_usage_options(void)
{
	char flag[64];
	size_t i, j;

	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		for (j = 0; opts[i].name[j] != '\0' && j < sizeof(flag) - 1;
		     j++)
			flag[j] =
			    opts[i].name[j] == '_' ? '-' : opts[i].name[j];
		flag[j] = '\0';
		printf("  --%-20s %s\n", flag, opts[i].help);
	}
}
