/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm: the command-line client of the broker's HTTP API.
 *
 *   npufarm [--broker URL] [--json] [--timeout SECS] <command> [args]
 *
 * Global options are parsed here, up to the command name; the command
 * parses the rest.  A new subcommand is a new cmd_<verb>.c exporting a
 * struct cmd_entry, listed in main_cmds below.
 */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cli.h"
#include "err.h"
#include "http.h"
#include "secret.h"

/* Sorted by name, as --help lists them. */
static const struct cmd_entry *const main_cmds[] = {
    &cmd_cancel_entry,
    &cmd_drain_entry,
    &cmd_history_entry,
    &cmd_jobs_entry,
    &cmd_leases_entry,
    &cmd_show_entry,
    &cmd_status_entry,
    &cmd_submit_entry,
    &cmd_undrain_entry,
    &cmd_wait_entry,
};

#define MAIN_NCMDS (sizeof(main_cmds) / sizeof(main_cmds[0]))

static const struct option main_options[] = {
    {"broker", required_argument, NULL, 'b'},
    {"json", no_argument, NULL, 'j'},
    {"timeout", required_argument, NULL, 't'},
    {"token-file", required_argument, NULL, 'T'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static bool main_verbose;

static void
main_usage(FILE *f)
{
	size_t i;

	(void)fprintf(f,
	    "usage: npufarm [--broker URL] [--json] [--timeout SECS] "
	    "<command> [args]\n"
	    "       npufarm --help | --version\n"
	    "\n"
	    "commands (npufarm <command> --help for their options):\n");
	for (i = 0; i < MAIN_NCMDS; i++)
		(void)fprintf(
		    f, "  %-20s%s\n", main_cmds[i]->name, main_cmds[i]->brief);
	(void)fprintf(f,
	    "\n"
	    "options:\n"
	    "  -b, --broker URL    the broker's HTTP API (default: "
	    "$NPUFARM_BROKER,\n"
	    "                      else " CLI_DEFAULT_BROKER ")\n"
	    "  -j, --json          print the broker's JSON instead of "
	    "tables\n"
	    "  -t, --timeout SECS  give up on a request after SECS "
	    "(default %d)\n"
	    "  -T, --token-file F  send the API token in F (default: "
	    "$NPUFARM_TOKEN_FILE)\n"
	    "  -v, --verbose       show libevent's diagnostics\n"
	    "  -h, --help          show this help\n"
	    "  -V, --version       show the version\n",
	    CLI_DEFAULT_TIMEOUT / 1000);
}

/* libevent's own warnings would duplicate our one-line errors. */
static void
main_event_log(int severity, const char *msg)
{
	if (main_verbose)
		(void)fprintf(stderr, "npufarm: libevent: %s\n", msg);
}

static int __attribute__((format(printf, 1, 2)))
main_global_error(const char *fmt, ...)
{
	va_list ap;

	(void)fputs("npufarm: ", stderr);
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fputs("\nTry 'npufarm --help'.\n", stderr);
	return CLI_EXIT_USAGE;
}

int
main(int argc, char **argv)
{
	struct cli cli = {
	    .broker = getenv("NPUFARM_BROKER"),
	    .timeout_ms = CLI_DEFAULT_TIMEOUT,
	};
	const struct cmd_entry *cmd = NULL;
	const char *token_file = getenv("NPUFARM_TOKEN_FILE");
	struct npufarm_err err;
	char *token = NULL;
	int ret;
	double secs;
	char *end;
	size_t i;
	int c;

	if (cli.broker == NULL || cli.broker[0] == '\0')
		cli.broker = CLI_DEFAULT_BROKER;
	opterr = 0;
	while ((c = getopt_long(
		    argc, argv, "+:b:jt:T:vhV", main_options, NULL)) != -1) {
		switch (c) {
		case 'b':
			cli.broker = optarg;
			break;
		case 'j':
			cli.json = true;
			break;
		case 't':
			secs = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || !isfinite(secs) ||
			    secs <= 0 || secs > 86400)
				return main_global_error(
				    "--timeout takes seconds, not '%s'",
				    optarg);
			cli.timeout_ms =
			    secs * 1000 < 1 ? 1 : (int)(secs * 1000);
			break;
		case 'T':
			token_file = optarg;
			break;
		case 'v':
			main_verbose = true;
			break;
		case 'h':
			main_usage(stdout);
			return CLI_EXIT_OK;
		case 'V':
			(void)printf("npufarm %s\n", NPUFARM_VERSION);
			return CLI_EXIT_OK;
		case ':':
			return main_global_error(
			    "option '%s' needs an argument", argv[optind - 1]);
		default:
			return main_global_error(
			    "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc) {
		main_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	for (i = 0; i < MAIN_NCMDS; i++)
		if (strcmp(main_cmds[i]->name, argv[optind]) == 0)
			cmd = main_cmds[i];
	if (cmd == NULL)
		return main_global_error("unknown command '%s'", argv[optind]);
	if (token_file != NULL && token_file[0] != '\0') {
		if (secret_read_file(token_file, &token, &err) < 0) {
			(void)fprintf(stderr, "npufarm: %s\n", err.msg);
			return CLI_EXIT_USAGE;
		}
		http_set_bearer(token);
	}
	event_set_log_callback(main_event_log);
	argc -= optind;
	argv += optind;
	optind = 0; /* glibc: restart getopt for the command's own options */
	ret = cmd->exec(&cli, cmd, argc, argv);
	http_set_bearer(NULL);
	secret_free(token);
	return ret;
}
