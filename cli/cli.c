/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the subcommands: one GET that reports every failure
 * the same way, JSON output for --json, usage errors, and readers that
 * turn the API's JSON fields (which may be null or missing) into table
 * cells.  Errors go to stderr as one line starting "npufarm: ".
 */
#include "config.h"

#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "format.h"
#include "http.h"
#include "json_util.h"
#include "table.h"

/*
 * GET @path from the broker and parse the reply, which must be a JSON
 * object, into a new reference in *@ret_root.  On failure prints one line
 * on stderr (unreachable broker, the server's "error" for a non-2xx
 * status, or invalid JSON) and returns -1.
 */
int
cli_get_json(const struct cli *cli, const char *path, json_t **ret_root)
{
	return cli_request_json(cli, EVHTTP_REQ_GET, path, ret_root);
}

/* cli_get_json() with method @cmd: GET, or POST for actions. */
int
cli_request_json(const struct cli *cli, enum evhttp_cmd_type cmd,
    const char *path, json_t **ret_root)
{
	const char *verb = cmd == EVHTTP_REQ_POST ? "POST" : "GET";
	struct npufarm_err err = {0};
	struct http_reply reply = {0};
	const char *msg = NULL;
	json_t *root = NULL;
	size_t baselen;
	char *safe;
	int r;

	r = http_request(cli->broker, cmd, path, cli->timeout_ms, &reply, &err);
	if (r < 0) {
		safe = format_escape(err.msg);
		/* http_get() returns -EINVAL only for the URL itself. */
		(void)fprintf(stderr,
		    r == -EINVAL
			? "npufarm: bad broker URL %s: %s\n"
			: "npufarm: cannot reach the broker at %s: %s\n",
		    cli->broker, safe);
		free(safe);
		return -1;
	}
	/* Name the failed URL as base + path, without a doubled slash. */
	baselen = strlen(cli->broker);
	while (baselen > 0 && cli->broker[baselen - 1] == '/')
		baselen--;
	r = json_util_load(
	    reply.body, reply.len, JSON_UTIL_MAX_DEPTH, &root, &err);
	if (reply.status < 200 || reply.status > 299) {
		if (r == 0)
			msg = cli_json_str(root, "error");
		if (msg == NULL)
			msg = "the reply carries no error message";
		safe = format_escape(msg);
		(void)fprintf(stderr, "npufarm: %s %.*s%s: %s (HTTP %d%s%s)\n",
		    verb, (int)baselen, cli->broker, path, safe, reply.status,
		    reply.reason[0] != '\0' ? " " : "", reply.reason);
		free(safe);
		goto fail;
	}
	if (r < 0 || !json_is_object(root)) {
		(void)fprintf(stderr,
		    "npufarm: %s %.*s%s: the reply is not a JSON object%s%s\n",
		    verb, (int)baselen, cli->broker, path, r < 0 ? ": " : "",
		    r < 0 ? err.msg : "");
		goto fail;
	}
	http_reply_deinit(&reply);
	*ret_root = root;
	return 0;
fail:
	json_decref(root);
	http_reply_deinit(&reply);
	return -1;
}

/*
 * Print @v to stdout, indented by two spaces, keys in the broker's order.
 * Reals use 15 significant digits, so the broker's decimals read back
 * unchanged (0.000120 prints as 0.00012, not 0.00011999999999999999).
 * Returns CLI_EXIT_OK, or CLI_EXIT_FAIL when stdout fails.
 */
int
cli_print_json(const json_t *v)
{
	if (json_dumpf(v, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) <
		0 ||
	    fputc('\n', stdout) == EOF || fflush(stdout) == EOF) {
		(void)fprintf(stderr, "npufarm: cannot write the output\n");
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/* Print @e's usage line and summary to stdout, for "CMD --help". */
void
cli_help(const struct cmd_entry *e)
{
	(void)printf("usage: npufarm [global options] %s%s%s\n\n%s\n", e->name,
	    e->usage[0] != '\0' ? " " : "", e->usage, e->summary);
}

/*
 * Report a bad command line for @e: "npufarm: <message>" and the usage
 * line on stderr.  Returns CLI_EXIT_USAGE, so callers "return cli_usage()".
 */
int
cli_usage(const struct cmd_entry *e, const char *fmt, ...)
{
	va_list ap;

	(void)fputs("npufarm: ", stderr);
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fprintf(stderr, "\nusage: npufarm [global options] %s%s%s\n",
	    e->name, e->usage[0] != '\0' ? " " : "", e->usage);
	return CLI_EXIT_USAGE;
}

/*
 * getopt_long() for subcommand @self, which handles the options common to
 * all subcommands itself.  @optstring and @longopts must start with
 * CLI_COMMON_OPTSTRING and contain CLI_COMMON_OPTIONS.  Returns the next
 * option of the command's own, CLI_OPT_END, or CLI_OPT_EXIT with
 * *@ret_status set after printing help or a usage error.
 */
int
cli_getopt(struct cli *cli, const struct cmd_entry *self, int argc, char **argv,
    const char *optstring, const struct option *longopts, int *ret_status)
{
	int c;

	for (;;) {
		c = getopt_long(argc, argv, optstring, longopts, NULL);
		switch (c) {
		case 'j':
			cli->json = true;
			break;
		case 'h':
			cli_help(self);
			*ret_status = CLI_EXIT_OK;
			return CLI_OPT_EXIT;
		case ':':
			*ret_status = cli_usage(self,
			    "option '%s' needs an argument", argv[optind - 1]);
			return CLI_OPT_EXIT;
		case '?':
			if (optopt != 0)
				*ret_status = cli_usage(
				    self, "unknown option '-%c'", optopt);
			else
				*ret_status = cli_usage(self,
				    "unknown option '%s'", argv[optind - 1]);
			return CLI_OPT_EXIT;
		default:
			return c;
		}
	}
}

/*
 * For a subcommand that takes no operands, after its options: returns
 * CLI_EXIT_OK when none is left, else reports the first and returns
 * CLI_EXIT_USAGE.
 */
int
cli_no_operands(const struct cmd_entry *self, int argc, char **argv)
{
	if (optind < argc)
		return cli_usage(
		    self, "unexpected argument '%s'", argv[optind]);
	return CLI_EXIT_OK;
}

/*
 * Parse the whole of @s as a decimal integer in [@min, @max].  Returns 0,
 * or -EINVAL (not a number) / -ERANGE (out of range).
 */
int
cli_parse_int(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

/*
 * The string at @obj[@key], borrowed from @obj; NULL when @obj is not an
 * object or the member is missing, null or not a string.
 */
const char *
cli_json_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/*
 * Read the number (integer or real) at @obj[@key] into *@ret.  Returns
 * false, leaving *@ret alone, when it is missing, null or not a number.
 */
bool
cli_json_num(const json_t *obj, const char *key, double *ret)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_number(v))
		return false;
	*ret = json_number_value(v);
	return true;
}

/*
 * Add @obj[@key] as a cell: the string, or "-" when null or missing.  An
 * empty string (every TVM client sends user "") is "-" too, since a blank
 * cell would read as a shifted column.
 */
void
cli_add_str(struct table *t, const json_t *obj, const char *key)
{
	const char *s = cli_json_str(obj, key);

	table_add(t, s != NULL && *s != '\0' ? s : NULL);
}

/* Add the integer @obj[@key] as a cell, "-" when null or missing. */
void
cli_add_int(struct table *t, const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		table_addf(t, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else
		table_add(t, NULL);
}

/* Add @obj[@key], in seconds, as a human duration; "-" when null. */
void
cli_add_duration(struct table *t, const json_t *obj, const char *key)
{
	char buf[FORMAT_DURATION_MAX];
	double s;

	if (cli_json_num(obj, key, &s))
		table_add(t, format_duration(s, buf, sizeof(buf)));
	else
		table_add(t, NULL);
}

/*
 * The board an operator names: a numeric id, or a name (unique among the
 * broker's boards).  Returns the id, or -1 after printing why not.
 */
static long long
cli_board_id(const struct cli *cli, const char *board)
{
	long long id = -1, n;
	const json_t *b;
	json_t *root;
	size_t i, matches = 0;
	char *end;

	n = strtoll(board, &end, 10);
	if (*board != '\0' && *end == '\0' && n > 0)
		return n;
	if (cli_get_json(cli, "/v1/boards", &root) < 0)
		return -1;
	json_array_foreach(json_object_get(root, "boards"), i, b) {
		const char *name = cli_json_str(b, "name");

		if (name != NULL && strcmp(name, board) == 0) {
			id = json_integer_value(json_object_get(b, "id"));
			matches++;
		}
	}
	json_decref(root);
	if (matches != 1) {
		char *safe = format_escape(board);

		(void)fprintf(stderr,
		    matches == 0 ? "npufarm: no board named '%s'\n"
				 : "npufarm: '%s' names several boards; give "
				   "its id (npufarm status --json)\n",
		    safe);
		free(safe);
		return -1;
	}
	return id;
}

/*
 * npufarm drain|undrain BOARD: POST /v1/boards/{id}/@action.  Shared by
 * the two commands, which differ only in @action.
 */
int
cli_board_action(struct cli *cli, const struct cmd_entry *self, int argc,
    char **argv, const char *action)
{
	static const struct option opts[] = {
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	char path[96];
	long long id;
	json_t *root;
	int c, r;

	while ((c = cli_getopt(cli, self, argc, argv, CLI_COMMON_OPTSTRING,
		    opts, &r)) != CLI_OPT_END)
		if (c == CLI_OPT_EXIT)
			return r;
	if (argc - optind != 1)
		return cli_usage(self, "expected one BOARD (a name or an id)");
	id = cli_board_id(cli, argv[optind]);
	if (id < 0)
		return CLI_EXIT_FAIL;
	(void)snprintf(path, sizeof(path), "/v1/boards/%lld/%s", id, action);
	if (cli_request_json(cli, EVHTTP_REQ_POST, path, &root) < 0)
		return CLI_EXIT_FAIL;
	if (cli->json)
		r = cli_print_json(root);
	else {
		(void)printf("board %lld %s%s\n", id,
		    strcmp(action, "drain") == 0 ? "drained" : "undrained",
		    json_is_true(json_object_get(root, "live"))
			? ""
			: " (offline now; the mark applies when it returns)");
		r = CLI_EXIT_OK;
	}
	json_decref(root);
	return r;
}
