/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-broker: command line, configuration precedence (defaults, then
 * --config FILE, then flags), and the process lifecycle.  Exit status: 0
 * after a clean stop, 1 on a start-up or runtime failure, 2 on bad usage.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "broker_config.h"
#include "err.h"
#include "log.h"
#include "server.h"

enum {
	OPT_HELP = 'h',
	OPT_VERBOSE = 'v',
	OPT_LISTEN = 1000,
	OPT_CONFIG,
	OPT_CHECK_CONFIG,
	OPT_VERSION,
	OPT_TABLE, /* forwarded to broker_config_set() by name */
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"http", required_argument, NULL, OPT_TABLE},
    {"db", required_argument, NULL, OPT_TABLE},
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
    {"agent-heartbeat", required_argument, NULL, OPT_TABLE},
    {"max-relays", required_argument, NULL, OPT_TABLE},
    {"relay-buffer", required_argument, NULL, OPT_TABLE},
    {"relay-max-packet", required_argument, NULL, OPT_TABLE},
    {NULL, 0, NULL, 0},
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "Usage: npufarm-broker [OPTIONS]\n"
	    "Arbitrates a farm of NPU boards; a drop-in TVM RPC tracker.\n\n"
	    "  --listen HOST:PORT     farm port, repeatable "
	    "(default 127.0.0.1:9190)\n"
	    "  --config FILE          JSON configuration; flags override it\n"
	    "  --check-config         validate the configuration and exit\n"
	    "  -v, --verbose          more logging (repeat for debug)\n"
	    "  --help, --version\n\n"
	    "Options also accepted as config-file keys (with '_' for '-'):\n"
	    "  --%-20s HTTP API address (default 127.0.0.1:9191)\n"
	    "  --%-20s ledger path (default ./npufarm.db)\n",
	    "http", "db");
	broker_config_usage_options();
}

/* The --config argument, found before the real parse so flags win. */
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
	return NULL;
}

int
main(int argc, char **argv)
{
	struct broker_config cfg;
	struct npufarm_err err = {0};
	struct server *srv = NULL;
	const char *path;
	bool check_only = false;
	int opt, idx, r, verbose = 0, ret = 1;

	broker_config_defaults(&cfg);
	path = find_config(argc, argv);
	if (path != NULL && broker_config_load_file(&cfg, path, &err) < 0) {
		fprintf(stderr, "npufarm-broker: %s\n", err.msg);
		goto out;
	}
	while (
	    (opt = getopt_long(argc, argv, "hv", long_options, &idx)) != -1) {
		switch (opt) {
		case OPT_LISTEN:
			r = broker_config_add_listen(&cfg, optarg, &err);
			break;
		case OPT_CONFIG:
			r = 0;
			break;
		case OPT_CHECK_CONFIG:
			check_only = true;
			r = 0;
			break;
		case OPT_HELP:
			usage(stdout);
			ret = 0;
			goto out;
		case OPT_VERSION:
			printf("npufarm-broker %s\n", NPUFARM_VERSION);
			ret = 0;
			goto out;
		case OPT_VERBOSE:
			verbose++;
			r = 0;
			break;
		case OPT_TABLE:
			r = broker_config_set(
			    &cfg, long_options[idx].name, optarg, &err);
			break;
		default:
			usage(stderr);
			ret = 2;
			goto out;
		}
		if (r < 0) {
			fprintf(stderr, "npufarm-broker: --%s: %s\n",
			    long_options[idx].name, err.msg);
			ret = 2;
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "npufarm-broker: unexpected argument '%s'\n",
		    argv[optind]);
		ret = 2;
		goto out;
	}
	if (cfg.nlisten == 0 &&
	    broker_config_add_listen(&cfg, "127.0.0.1:9190", &err) < 0)
		goto fail;
	if (cfg.http == NULL &&
	    broker_config_set(&cfg, "http", "127.0.0.1:9191", &err) < 0)
		goto fail;
	if (cfg.db == NULL &&
	    broker_config_set(&cfg, "db", "./npufarm.db", &err) < 0)
		goto fail;
	if (broker_config_check(&cfg, &err) < 0)
		goto fail;
	if (check_only) {
		printf("configuration OK\n");
		ret = 0;
		goto out;
	}
	cfg.verbosity += verbose;
	if (cfg.verbosity > LOG_DEBUG)
		cfg.verbosity = LOG_DEBUG;
	log_set_level(cfg.verbosity);
	if (server_new(&cfg, &srv, &err) < 0)
		goto fail;
	log_notice(
	    "npufarm-broker %s ready, ledger %s", NPUFARM_VERSION, cfg.db);
	if (server_run(srv) < 0) {
		log_err("event loop failed");
		goto out;
	}
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
