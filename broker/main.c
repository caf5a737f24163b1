/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-broker: command line, configuration precedence (defaults, then
 * --config FILE, then flags), and the process lifecycle.  Exit status: 0
 * after a clean stop, 1 on a start-up or runtime failure, 2 on bad usage.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "auth.h"
#include "broker_config.h"
#include "err.h"
#include "log.h"
#include "server.h"
#include "service.h"
#include "tvm_flags.h"

enum {
	OPT_HELP = 'h',
	OPT_VERBOSE = 'v',
	OPT_LISTEN = 1000,
	OPT_ALLOW,
	OPT_CONFIG,
	OPT_CHECK_CONFIG,
	OPT_VERSION,
	OPT_TABLE, /* forwarded to broker_config_set() by name */
	OPT_TVM,   /* TVM rpc_tracker's flags, to tvm_flags_set() by name */
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"http", required_argument, NULL, OPT_TABLE},
    {"db", required_argument, NULL, OPT_TABLE},
    {"data-dir", required_argument, NULL, OPT_TABLE},
    {"task-grace", required_argument, NULL, OPT_TABLE},
    {"max-artifact", required_argument, NULL, OPT_TABLE},
    {"public-addr", required_argument, NULL, OPT_TABLE},
    {"ready-file", required_argument, NULL, OPT_TABLE},
    {"request-timeout", required_argument, NULL, OPT_TABLE},
    {"unknown-key-grace", required_argument, NULL, OPT_TABLE},
    {"handshake-timeout", required_argument, NULL, OPT_TABLE},
    {"max-connections", required_argument, NULL, OPT_TABLE},
    {"max-frame", required_argument, NULL, OPT_TABLE},
    {"max-json-depth", required_argument, NULL, OPT_TABLE},
    {"max-key-len", required_argument, NULL, OPT_TABLE},
    {"max-pending", required_argument, NULL, OPT_TABLE},
    {"max-keys", required_argument, NULL, OPT_TABLE},
    {"ledger-sync", required_argument, NULL, OPT_TABLE},
    {"pair-timeout", required_argument, NULL, OPT_TABLE},
    {"agent-backstop", required_argument, NULL, OPT_TABLE},
    {"board-grace", required_argument, NULL, OPT_TABLE},
    {"relay-boards", required_argument, NULL, OPT_TABLE},
    {"agent-heartbeat", required_argument, NULL, OPT_TABLE},
    {"max-relays", required_argument, NULL, OPT_TABLE},
    {"relay-buffer", required_argument, NULL, OPT_TABLE},
    {"relay-max-packet", required_argument, NULL, OPT_TABLE},
    {"agent-token-file", required_argument, NULL, OPT_TABLE},
    {"api-token-file", required_argument, NULL, OPT_TABLE},
    {"admin-token-file", required_argument, NULL, OPT_TABLE},
    {"max-http-connections", required_argument, NULL, OPT_TABLE},
    {"max-job-body", required_argument, NULL, OPT_TABLE},
    {"max-unauth-bytes", required_argument, NULL, OPT_TABLE},
    {"max-unauth-conn", required_argument, NULL, OPT_TABLE},
    {"retain-days", required_argument, NULL, OPT_TABLE},
    {"retain-mb", required_argument, NULL, OPT_TABLE},
    {"host", required_argument, NULL, OPT_TVM},
    {"port", required_argument, NULL, OPT_TVM},
    {"port-end", required_argument, NULL, OPT_TVM},
    {"silent", no_argument, NULL, OPT_TVM},
    {NULL, 0, NULL, 0},
};

/* Read when there is no --config and it exists (so a unit needs none). */
#define DEFAULT_CONFIG NPUFARM_SYSCONFDIR "/npufarm/broker.json"

static void
usage(FILE *f)
{
	fprintf(f,
	    "Usage: npufarm-broker [OPTIONS]\n"
	    "Arbitrates a farm of NPU boards; a drop-in TVM RPC tracker.\n\n"
	    "  --listen HOST:PORT     farm port, repeatable "
	    "(default 127.0.0.1:9190)\n"
	    "  --allow CIDR           who may speak the TVM tracker and proxy "
	    "protocols,\n"
	    "                         repeatable (default: loopback only)\n"
	    "  --config FILE          JSON configuration; flags override it\n"
	    "                         (default: " DEFAULT_CONFIG
	    " if it exists)\n"
	    "  --check-config         validate the configuration and exit\n"
	    "  -v, --verbose          more logging (repeat for debug)\n"
	    "  --help, --version\n\n"
	    "TVM rpc_tracker's flags, so its start-up scripts work unchanged "
	    "(docs/tvm.md):\n"
	    "  --host HOST            farm port host (default 0.0.0.0, as "
	    "TVM's)\n"
	    "  --port P --port-end E  bind the first free port in [P, E) "
	    "(default\n"
	    "                         9190, 9199); not together with "
	    "--listen\n"
	    "  --silent               log warnings and errors only\n\n"
	    "Options also accepted as config-file keys (with '_' for '-'):\n"
	    "  --%-20s HTTP API address (default 127.0.0.1:9191)\n"
	    "  --%-20s ledger path (default ./npufarm.db)\n",
	    "http", "db");
	broker_config_usage_options();
}

/*
 * The --config argument, found before the real parse so flags win;
 * without one, DEFAULT_CONFIG if it exists, else NULL (compiled defaults).
 */
static const char *
find_config(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--config=", 9) == 0)
			return argv[i] + 9;
	}
	return access(DEFAULT_CONFIG, F_OK) == 0 ? DEFAULT_CONFIG : NULL;
}

/*
 * Token files that neither the file nor a flag names come from the unit's
 * credentials when it passed them (LoadCredential=agent-token:..., the
 * stock unit's, which skips a missing source file): a broker without
 * tokens starts, one whose operator added token files picks them up.
 * Returns 0, or broker_config_set()'s -errno with @err set.
 */
static int
credential_tokens(struct broker_config *cfg, struct npufarm_err *err)
{
	static const struct {
		const char *key, *id;
	} creds[] = {
	    {"agent_token_file", "agent-token"},
	    {"api_token_file", "api-token"},
	    {"admin_token_file", "admin-token"},
	};
	char *const set[] = {
	    cfg->agent_token_file, cfg->api_token_file, cfg->admin_token_file};
	char path[4096];
	size_t i;
	int r;

	for (i = 0; i < sizeof(creds) / sizeof(creds[0]); i++)
		if (set[i] == NULL &&
		    service_credential(creds[i].id, path, sizeof(path)) &&
		    (r = broker_config_set(cfg, creds[i].key, path, err)) < 0)
			return r;
	return 0;
}

/* What the command line says besides the configuration. */
struct main_args {
	bool check_only; /* --check-config */
	int verbose;     /* -v count */
	int exit;        /* -1: go on; else exit with it (--help, usage) */
};

/*
 * Build the access rules @cfg describes (its allow-list parses, its token
 * files read).  Returns 0 with *@ret_auth set (NULL: only check them), or
 * -errno with @err saying why.
 */
static int
main_auth(const struct broker_config *cfg, struct auth **ret_auth,
    struct npufarm_err *err)
{
	struct auth_config view;
	struct auth *a = NULL;
	int r;

	broker_config_auth(cfg, &view);
	r = auth_new(&view, &a, err);
	if (r < 0)
		return r;
	if (ret_auth != NULL)
		*ret_auth = a;
	else
		auth_free(a);
	return 0;
}

/*
 * Build @cfg from the compiled defaults, the --config file and the flags
 * in @argv, in that order; at start and again for SIGHUP.  Returns 0, or
 * 1 with the reason in @err (the caller reports it); bad usage and --help
 * set ret_args->exit instead, after printing.
 */
/* Artifacts live beside the ledger by default: DIR_OF_DB/npufarm-data. */
static int
default_data_dir(struct broker_config *cfg, struct npufarm_err *err)
{
	const char *slash = strrchr(cfg->db, '/');
	char dir[4096];
	int n;

	if (slash == NULL)
		n = snprintf(dir, sizeof(dir), "npufarm-data");
	else
		n = snprintf(dir, sizeof(dir), "%.*s/npufarm-data",
		    (int)(slash - cfg->db), cfg->db);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return err_set(err, -ENAMETOOLONG, "db: path too long");
	return broker_config_set(cfg, "data_dir", dir, err);
}

static int
load_config(int argc, char **argv, struct broker_config *cfg,
    struct main_args *ret_args, struct npufarm_err *err)
{
	struct tvm_flags tvm;
	size_t nlisten_flags = 0;
	const char *path;
	int opt, idx, r;

	tvm_flags_init(&tvm);
	broker_config_defaults(cfg);
	ret_args->exit = -1;
	path = find_config(argc, argv);
	if (path != NULL && broker_config_load_file(cfg, path, err) < 0)
		return 1;
	optind = 0; /* glibc: a full restart, also for SIGHUP */
	while (
	    (opt = getopt_long(argc, argv, "hv", long_options, &idx)) != -1) {
		switch (opt) {
		case OPT_LISTEN:
			nlisten_flags++;
			r = broker_config_add_listen(cfg, optarg, err);
			break;
		case OPT_ALLOW:
			r = broker_config_add_allow(cfg, optarg, err);
			break;
		case OPT_CONFIG:
			r = 0;
			break;
		case OPT_CHECK_CONFIG:
			ret_args->check_only = true;
			r = 0;
			break;
		case OPT_HELP:
			usage(stdout);
			ret_args->exit = 0;
			return 0;
		case OPT_VERSION:
			printf("npufarm-broker %s\n", NPUFARM_VERSION);
			ret_args->exit = 0;
			return 0;
		case OPT_VERBOSE:
			ret_args->verbose++;
			r = 0;
			break;
		case OPT_TABLE:
			r = broker_config_set(
			    cfg, long_options[idx].name, optarg, err);
			break;
		case OPT_TVM:
			r = tvm_flags_set(&tvm, long_options[idx].name,
			    optarg != NULL ? optarg : "", err);
			break;
		default:
			usage(stderr);
			ret_args->exit = 2;
			return 0;
		}
		if (r < 0) {
			fprintf(stderr, "npufarm-broker: --%s: %s\n",
			    long_options[idx].name, err->msg);
			ret_args->exit = 2;
			return 0;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "npufarm-broker: unexpected argument '%s'\n",
		    argv[optind]);
		ret_args->exit = 2;
		return 0;
	}
	if (tvm_flags_apply(&tvm, nlisten_flags, cfg, err) < 0) {
		fprintf(stderr, "npufarm-broker: %s\n", err->msg);
		ret_args->exit = 2;
		return 0;
	}
	if ((cfg->nlisten == 0 &&
		broker_config_add_listen(cfg, "127.0.0.1:9190", err) < 0) ||
	    (cfg->http == NULL &&
		broker_config_set(cfg, "http", "127.0.0.1:9191", err) < 0) ||
	    (cfg->db == NULL &&
		broker_config_set(cfg, "db", "./npufarm.db", err) < 0) ||
	    (cfg->data_dir == NULL && default_data_dir(cfg, err) < 0) ||
	    credential_tokens(cfg, err) < 0 ||
	    broker_config_check(cfg, err) < 0 || main_auth(cfg, NULL, err) < 0)
		return 1;
	cfg->verbosity += ret_args->verbose;
	if (cfg->verbosity > LOG_DEBUG)
		cfg->verbosity = LOG_DEBUG;
	return 0;
}

/* The running configuration and the command line it came from. */
struct main_ctx {
	int argc;
	char **argv;
	struct broker_config *cfg; /* the one the server borrows */
};

/*
 * SIGHUP: read the --config file, the flags and the token files again and
 * apply what may change live (broker_config_reload()).  Any error leaves
 * the running configuration entirely in force.
 */
static void
main_reload(struct server *srv, void *arg)
{
	struct main_ctx *m = arg;
	struct broker_config next;
	struct main_args ma = {0};
	struct npufarm_err err = {0};
	struct auth *auth = NULL;
	const char *path = find_config(m->argc, m->argv);

	service_notify("RELOADING=1");
	log_notice("SIGHUP: reloading %s and the token files",
	    path ? path : "(no --config file)");
	if (load_config(m->argc, m->argv, &next, &ma, &err) != 0 ||
	    ma.exit >= 0 || main_auth(&next, &auth, &err) < 0) {
		log_err("SIGHUP: %s; nothing changed",
		    ma.exit >= 0 ? "bad command line" : err.msg);
		goto out;
	}
	broker_config_reload(m->cfg, &next);
	server_reconfigure(srv, auth);
	log_notice("SIGHUP: done");
out:
	service_notify("READY=1");
	broker_config_deinit(&next);
}

int
main(int argc, char **argv)
{
	struct broker_config cfg;
	struct main_args ma = {0};
	struct npufarm_err err = {0};
	struct main_ctx ctx = {argc, argv, &cfg};
	struct server *srv = NULL;
	int ret = 1;

	if (load_config(argc, argv, &cfg, &ma, &err) != 0) {
		fprintf(stderr, "npufarm-broker: %s\n", err.msg);
		goto out;
	}
	if (ma.exit >= 0) {
		ret = ma.exit;
		goto out;
	}
	if (ma.check_only) {
		printf("configuration OK\n");
		ret = 0;
		goto out;
	}
	log_set_level(cfg.verbosity);
	if (server_new(&cfg, &srv, &err) < 0)
		goto fail;
	server_set_reload(srv, main_reload, &ctx);
	log_notice(
	    "npufarm-broker %s ready, ledger %s", NPUFARM_VERSION, cfg.db);
	service_notify("READY=1");
	if (server_run(srv) < 0) {
		log_err("event loop failed");
		goto out;
	}
	service_notify("STOPPING=1");
	ret = 0;
	goto out;
fail:
	log_err("%s", err.msg);
	fprintf(stderr, "npufarm-broker: %s\n", err.msg);
out:
	srv = server_free(srv);
	broker_config_deinit(&cfg);
	return ret;
}
