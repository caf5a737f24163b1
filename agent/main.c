/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-agent: one per board.  It dials out to the broker's farm port
 * (so boards can sit behind NAT), says hello with its name and key, and
 * keeps the link alive with heartbeats, reconnecting whenever it drops.
 * Exit status: 0 after SIGTERM/SIGINT, 1 on a start-up failure, 2 on bad
 * usage.
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "err.h"
#include "link.h"
#include "log.h"

enum {
	OPT_BROKER = 1000,
	OPT_KEY,
	OPT_NAME,
	OPT_TAG,
	OPT_VERSION,
};

static const struct option long_options[] = {
    {"broker", required_argument, NULL, OPT_BROKER},
    {"key", required_argument, NULL, OPT_KEY},
    {"name", required_argument, NULL, OPT_NAME},
    {"tag", required_argument, NULL, OPT_TAG},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "Usage: npufarm-agent --broker HOST:PORT --key KEY [OPTIONS]\n"
	    "Links one board to an npufarm broker.\n\n"
	    "  --broker HOST:PORT  the broker's farm port\n"
	    "  --key KEY           the device key this board serves\n"
	    "  --name NAME         unique board name (default: host name)\n"
	    "  --tag K=V           a tag shown with the board (repeatable)\n"
	    "  -v, --verbose       more logging (repeat for debug)\n"
	    "  --help, --version\n");
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	log_notice("signal %d: stopping", (int)sig);
	(void)event_base_loopexit(arg, NULL);
}

int
main(int argc, char **argv)
{
	struct link_config cfg = {0};
	struct event *sig_term = NULL, *sig_int = NULL;
	struct event_base *base = NULL;
	struct npufarm_err err;
	struct link *link = NULL;
	char host[256], *tags_text = NULL;
	json_t *tags = json_object();
	int opt, verbose = 0, ret = 2;
	char *eq;

	if (tags == NULL)
		return 1;
	while (
	    (opt = getopt_long(argc, argv, "vh", long_options, NULL)) != -1) {
		switch (opt) {
		case OPT_BROKER:
			cfg.broker = optarg;
			break;
		case OPT_KEY:
			cfg.key = optarg;
			break;
		case OPT_NAME:
			cfg.name = optarg;
			break;
		case OPT_TAG:
			eq = strchr(optarg, '=');
			if (eq == NULL || eq == optarg) {
				fprintf(stderr,
				    "npufarm-agent: --tag '%s': expected K=V\n",
				    optarg);
				goto out;
			}
			*eq = '\0';
			if (json_object_set_new(
				tags, optarg, json_string(eq + 1)) < 0) {
				fprintf(stderr,
				    "npufarm-agent: --tag '%s': not "
				    "valid UTF-8\n",
				    optarg);
				goto out;
			}
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			ret = 0;
			goto out;
		case OPT_VERSION:
			printf("npufarm-agent %s\n", NPUFARM_VERSION);
			ret = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (optind < argc || cfg.broker == NULL || cfg.key == NULL) {
		fprintf(stderr, "npufarm-agent: %s\n",
		    optind < argc ? "unexpected argument"
				  : "--broker and --key are required");
		usage(stderr);
		goto out;
	}
	if (cfg.name == NULL) {
		if (gethostname(host, sizeof(host)) < 0)
			(void)snprintf(host, sizeof(host), "board");
		host[sizeof(host) - 1] = '\0';
		cfg.name = host;
	}
	tags_text = json_dumps(tags, JSON_COMPACT);
	cfg.tags = tags_text;
	ret = 1;
	log_set_level(LOG_NOTICE + (verbose > 2 ? 2 : verbose));
	(void)signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (base == NULL || tags_text == NULL)
		goto out;
	sig_term = evsignal_new(base, SIGTERM, stop_cb, base);
	sig_int = evsignal_new(base, SIGINT, stop_cb, base);
	if (sig_term == NULL || sig_int == NULL ||
	    evsignal_add(sig_term, NULL) < 0 || evsignal_add(sig_int, NULL) < 0)
		goto out;
	if (link_new(base, &cfg, &link, &err) < 0) {
		log_err("%s", err.msg);
		goto out;
	}
	log_notice("npufarm-agent %s: board '%s', key '%s', broker %s",
	    NPUFARM_VERSION, cfg.name, cfg.key, cfg.broker);
	if (event_base_dispatch(base) == 0)
		ret = 0;
out:
	link = link_free(link);
	if (sig_term != NULL)
		event_free(sig_term);
	if (sig_int != NULL)
		event_free(sig_int);
	if (base != NULL)
		event_base_free(base);
	free(tags_text);
	json_decref(tags);
	return ret;
}
