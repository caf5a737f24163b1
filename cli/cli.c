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
#include <limits.h>
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
	struct cli_req req = {.cmd = cmd, .path = path};

	return cli_req_json(cli, &req, ret_root) < 0 ? -1 : 0;
}

static const char *
cli_verb(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	default:
		return "GET";
	}
}

/* The length of the broker URL without trailing slashes, to join paths. */
static int
cli_base_len(const struct cli *cli)
{
	size_t baselen = strlen(cli->broker);

	while (baselen > 0 && cli->broker[baselen - 1] == '/')
		baselen--;
	return (int)baselen;
}

/*
 * Send @req (its body, if any, borrowed) and fill @ret_reply with any
 * response, whatever its status; sets @req->status.  Returns 0, or
 * CLI_REQ_UNREACHABLE after printing why no response came (the caller
 * then owns nothing).
 */
int
cli_req_send(
    const struct cli *cli, struct cli_req *req, struct http_reply *ret_reply)
{
	struct npufarm_err err = {0};
	char *safe;
	int r;

	req->status = 0;
	r = http_send(cli->broker, req->cmd, req->path, req->body,
	    req->timeout_ms > 0 ? req->timeout_ms : cli->timeout_ms, ret_reply,
	    &err);
	if (r < 0) {
		safe = format_escape(err.msg);
		/* http_send() returns -EINVAL only for the URL itself. */
		(void)fprintf(stderr,
		    r == -EINVAL
			? "npufarm: bad broker URL %s: %s\n"
			: "npufarm: cannot reach the broker at %s: %s\n",
		    cli->broker, safe);
		free(safe);
		return CLI_REQ_UNREACHABLE;
	}
	req->status = ret_reply->status;
	return 0;
}

/*
 * Send @req and parse the reply, which must be a 2xx JSON object, into a
 * new reference in *@ret_root.  Returns 0; CLI_REQ_UNREACHABLE when no
 * response came; CLI_REQ_FAILED for a non-2xx status (its "error" shown,
 * unless the status is @req->quiet_status) or a reply that is not a JSON
 * object.  Every failure but the quiet status prints one line on stderr.
 */
int
cli_req_json(const struct cli *cli, struct cli_req *req, json_t **ret_root)
{
	const char *verb = cli_verb(req->cmd);
	struct npufarm_err err = {0};
	struct http_reply reply = {0};
	const char *msg = NULL;
	json_t *root = NULL;
	int r, baselen = cli_base_len(cli);
	char *safe;

	if (cli_req_send(cli, req, &reply) < 0)
		return CLI_REQ_UNREACHABLE;
	r = json_util_load(
	    reply.body, reply.len, JSON_UTIL_MAX_DEPTH, &root, &err);
	if (reply.status < 200 || reply.status > 299) {
		if (reply.status == req->quiet_status)
			goto fail;
		if (r == 0)
			msg = cli_json_str(root, "error");
		if (msg == NULL)
			msg = "the reply carries no error message";
		safe = format_escape(msg);
		(void)fprintf(stderr, "npufarm: %s %.*s%s: %s (HTTP %d%s%s)\n",
		    verb, baselen, cli->broker, req->path, safe, reply.status,
		    reply.reason[0] != '\0' ? " " : "", reply.reason);
		free(safe);
		goto fail;
	}
	if (r < 0 || !json_is_object(root)) {
		(void)fprintf(stderr,
		    "npufarm: %s %.*s%s: the reply is not a JSON object%s%s\n",
		    verb, baselen, cli->broker, req->path, r < 0 ? ": " : "",
		    r < 0 ? err.msg : "");
		goto fail;
	}
	http_reply_deinit(&reply);
	*ret_root = root;
	return 0;
fail:
	json_decref(root);
	http_reply_deinit(&reply);
	return CLI_REQ_FAILED;
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
 * For a subcommand that takes one JOB operand after its options: parse it
 * (a positive job id) into *@ret_id.  Returns CLI_EXIT_OK, or
 * CLI_EXIT_USAGE after reporting a missing, extra or malformed operand.
 */
int
cli_job_operand(
    const struct cmd_entry *self, int argc, char **argv, long long *ret_id)
{
	long id;

	if (argc - optind != 1)
		return cli_usage(self, "expected one JOB (a job id)");
	if (cli_parse_int(argv[optind], 1, LONG_MAX, &id) < 0)
		return cli_usage(self,
		    "JOB is a job id (a positive number), "
		    "not '%s'",
		    argv[optind]);
	*ret_id = id;
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
	enum { OPT_REASON = 256 };
	static const struct option opts[] = {
	    CLI_COMMON_OPTIONS,
	    {"reason", required_argument, NULL, OPT_REASON},
	    {NULL, 0, NULL, 0},
	};
	struct http_body body = {.type = "application/json"};
	struct cli_req req = {.cmd = EVHTTP_REQ_POST};
	const char *reason = NULL, *user = getenv("USER");
	char path[96], *text;
	long long id;
	json_t *root, *b;
	int c, r;

	while ((c = cli_getopt(cli, self, argc, argv, CLI_COMMON_OPTSTRING,
		    opts, &r)) != CLI_OPT_END) {
		if (c == CLI_OPT_EXIT)
			return r;
		if (c == OPT_REASON)
			reason = optarg;
	}
	if (argc - optind != 1)
		return cli_usage(self, "expected one BOARD (a name or an id)");
	id = cli_board_id(cli, argv[optind]);
	if (id < 0)
		return CLI_EXIT_FAIL;
	(void)snprintf(path, sizeof(path), "/v1/boards/%lld/%s", id, action);
	/* Who and why, for the ledger's events (docs/api.md). */
	b = json_object();
	if (b == NULL ||
	    (reason != NULL &&
		json_object_set_new(b, "reason", json_string(reason)) < 0) ||
	    (user != NULL && user[0] != '\0' &&
		json_object_set_new(b, "user", json_string(user)) < 0) ||
	    (text = json_dumps(b, JSON_COMPACT)) == NULL) {
		json_decref(b);
		(void)fprintf(stderr, "npufarm: out of memory (or --reason is "
				      "not UTF-8)\n");
		return CLI_EXIT_FAIL;
	}
	json_decref(b);
	body.data = text;
	body.len = strlen(text);
	req.path = path;
	req.body = &body;
	r = cli_req_json(cli, &req, &root);
	free(text);
	if (r < 0)
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
