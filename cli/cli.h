/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the npufarm subcommands share: the parsed global options, the
 * command table entry type, and helpers to fetch and read the broker's JSON.
 * Each subcommand lives in its own cmd_<verb>.c and exports one entry.
 */
#pragma once

#include <stdbool.h>

#include <event2/http.h>
#include <jansson.h>

struct http_body;
struct http_reply;
struct table;

/* Process exit statuses. */
#define CLI_EXIT_OK          0
#define CLI_EXIT_FAIL        1 /* the broker failed or could not be reached */
#define CLI_EXIT_USAGE       2 /* bad command line */
#define CLI_EXIT_UNREACHABLE 3 /* npufarm wait: the broker is unreachable */

/* Defaults for the global options. */
#define CLI_DEFAULT_BROKER  "http://127.0.0.1:9191"
#define CLI_DEFAULT_TIMEOUT 10000 /* ms */

struct cli {
	const char *broker; /* base URL; borrowed from argv or environ */
	bool json;          /* print the broker's JSON, not tables */
	int timeout_ms;     /* per HTTP request */
};

struct cmd_entry;

/*
 * Run a subcommand.  argv[0] is the command name; getopt_long() state is
 * reset before the call.  Returns a CLI_EXIT_* status and reports its own
 * errors on stderr.
 */
typedef int cmd_exec_fn(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv);

struct cmd_entry {
	const char *name;    /* "status" */
	const char *usage;   /* arguments after the name, "[--limit N]" */
	const char *brief;   /* one line for "npufarm --help" */
	const char *summary; /* paragraph for "npufarm CMD --help" */
	cmd_exec_fn *exec;
};

extern const struct cmd_entry cmd_cancel_entry;
extern const struct cmd_entry cmd_drain_entry;
extern const struct cmd_entry cmd_history_entry;
extern const struct cmd_entry cmd_jobs_entry;
extern const struct cmd_entry cmd_leases_entry;
extern const struct cmd_entry cmd_show_entry;
extern const struct cmd_entry cmd_status_entry;
extern const struct cmd_entry cmd_submit_entry;
extern const struct cmd_entry cmd_undrain_entry;
extern const struct cmd_entry cmd_wait_entry;

/* One request to the broker, for cli_req_send() and cli_req_json(). */
struct cli_req {
	enum evhttp_cmd_type cmd;
	const char *path;             /* with any query; borrowed */
	const struct http_body *body; /* NULL: none; borrowed */
	int timeout_ms;               /* 0: the global --timeout */
	int quiet_status; /* a reply with this status fails unreported */
	int status;       /* out: the reply's HTTP status, 0 if none */
};

/* cli_req_send() and cli_req_json() failures, both reported. */
#define CLI_REQ_FAILED      (-1) /* an error reply or a bad body */
#define CLI_REQ_UNREACHABLE (-2) /* no response: refused, timeout... */

int cli_req_send(
    const struct cli *cli, struct cli_req *req, struct http_reply *ret_reply);
int cli_req_json(const struct cli *cli, struct cli_req *req, json_t **ret_root);

int cli_get_json(const struct cli *cli, const char *path, json_t **ret_root);
int cli_request_json(const struct cli *cli, enum evhttp_cmd_type cmd,
    const char *path, json_t **ret_root);
int cli_board_action(struct cli *cli, const struct cmd_entry *self, int argc,
    char **argv, const char *action);
int cli_print_json(const json_t *v);
int cli_usage(const struct cmd_entry *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Long options every subcommand accepts; pair with CLI_COMMON_OPTSTRING. */
#define CLI_COMMON_OPTIONS                     \
	{"json", no_argument, NULL, 'j'},      \
	{                                      \
		"help", no_argument, NULL, 'h' \
	}
#define CLI_COMMON_OPTSTRING ":jh"

/* cli_getopt() results besides an option character. */
#define CLI_OPT_END  (-1) /* no more options; optind is the first operand */
#define CLI_OPT_EXIT (-2) /* --help or a bad option: exit with *ret_status */

struct option;

int cli_getopt(struct cli *cli, const struct cmd_entry *self, int argc,
    char **argv, const char *optstring, const struct option *longopts,
    int *ret_status);
int cli_no_operands(const struct cmd_entry *self, int argc, char **argv);
void cli_help(const struct cmd_entry *e);
int cli_job_operand(
    const struct cmd_entry *self, int argc, char **argv, long long *ret_id);
int cmd_wait_follow(const struct cli *cli, long long id, bool quiet);
int cli_parse_int(const char *s, long min, long max, long *ret);

const char *cli_json_str(const json_t *obj, const char *key);
bool cli_json_num(const json_t *obj, const char *key, double *ret);
void cli_add_str(struct table *t, const json_t *obj, const char *key);
void cli_add_int(struct table *t, const json_t *obj, const char *key);
void cli_add_duration(struct table *t, const json_t *obj, const char *key);
