/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm status: one line per key (boards, free slots, leased, offline,
 * waiting requests), then every board with its state and lease, then the
 * waiting requests, from GET /v1/queue and GET /v1/boards.  With --json it
 * prints {"queues": [...], "boards": [...]}, the two replies' members.
 */
#include "config.h"

#include <assert.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "format.h"
#include "table.h"
#include "xmalloc.h"

/* One line of the per-key summary; strings borrowed from the replies. */
struct cmd_status_key {
	const char *key;
	json_int_t boards, free, leased, waiting; /* from /v1/queue */
	json_int_t offline;                       /* counted in /v1/boards */
};

static const struct table_column cmd_status_key_columns[] = {
    {"KEY", TABLE_LEFT},
    {"BOARDS", TABLE_RIGHT},
    {"FREE", TABLE_RIGHT},
    {"LEASED", TABLE_RIGHT},
    {"OFFLINE", TABLE_RIGHT},
    {"WAITING", TABLE_RIGHT},
};

static const struct table_column cmd_status_board_columns[] = {
    {"BOARD", TABLE_LEFT},
    {"KIND", TABLE_LEFT},
    {"RELAY", TABLE_LEFT},
    {"KEY", TABLE_LEFT},
    {"STATE", TABLE_LEFT},
    {"LEASE", TABLE_RIGHT},
    {"USER", TABLE_LEFT},
    {"HELD", TABLE_RIGHT},
    {"LAST SEEN", TABLE_LEFT},
    {"DETAIL", TABLE_LEFT},
};

static const struct table_column cmd_status_request_columns[] = {
    {"KEY", TABLE_LEFT},
    {"USER", TABLE_LEFT},
    {"PEER", TABLE_LEFT},
    {"PRIORITY", TABLE_RIGHT},
    {"WAITED", TABLE_RIGHT},
};

enum { CMD_STATUS_OPT_TAG = 256 };

static const struct option cmd_status_options[] = {
    CLI_COMMON_OPTIONS,
    {"tag", required_argument, NULL, CMD_STATUS_OPT_TAG},
    {NULL, 0, NULL, 0},
};

/* Keep in @boards only those whose "tags" have every pair of @want. */
static void
cmd_status_filter_tags(json_t *boards, const json_t *want)
{
	const char *k, *have;
	json_t *v;
	size_t i = 0;

	while (i < json_array_size(boards)) {
		const json_t *tags =
		    json_object_get(json_array_get(boards, i), "tags");
		bool keep = true;

		json_object_foreach((json_t *)want, k, v) {
			have = json_string_value(json_object_get(tags, k));
			if (have == NULL ||
			    strcmp(have, json_string_value(v)) != 0)
				keep = false;
		}
		if (keep)
			i++;
		else
			(void)json_array_remove(boards, i);
	}
}

#define CMD_STATUS_NCOLS(cols) (sizeof(cols) / sizeof((cols)[0]))

static json_int_t
cmd_status_int(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

static int
cmd_status_key_cmp(const void *a, const void *b)
{
	const struct cmd_status_key *ka = a, *kb = b;

	return strcmp(ka->key, kb->key);
}

/* The row for @key in @keys, appended (zeroed) when there is none. */
static struct cmd_status_key *
cmd_status_key_get(struct cmd_status_key **keys, size_t *nkeys, const char *key)
{
	size_t i;

	for (i = 0; i < *nkeys; i++)
		if (strcmp((*keys)[i].key, key) == 0)
			return &(*keys)[i];
	*keys = xreallocarray(*keys, *nkeys + 1, sizeof(**keys));
	memset(&(*keys)[*nkeys], 0, sizeof(**keys));
	(*keys)[*nkeys].key = key;
	return &(*keys)[(*nkeys)++];
}

static void
cmd_status_print_keys(const json_t *queues, const json_t *boards)
{
	struct cmd_status_key *keys = NULL, *k;
	size_t nkeys = 0, i;
	struct table *t;
	const json_t *v;
	const char *key, *state;

	json_array_foreach(queues, i, v) {
		if ((key = cli_json_str(v, "key")) == NULL)
			continue;
		k = cmd_status_key_get(&keys, &nkeys, key);
		k->boards = cmd_status_int(v, "boards");
		k->free = cmd_status_int(v, "free");
		k->leased = cmd_status_int(v, "leased");
		k->waiting = cmd_status_int(v, "waiting");
	}
	/* /v1/queue leaves out keys whose boards are all offline. */
	json_array_foreach(boards, i, v) {
		key = cli_json_str(v, "key");
		state = cli_json_str(v, "state");
		if (key == NULL || state == NULL || strcmp(state, "offline"))
			continue;
		cmd_status_key_get(&keys, &nkeys, key)->offline++;
	}
	if (nkeys > 0)
		qsort(keys, nkeys, sizeof(*keys), cmd_status_key_cmp);
	t = table_new(
	    cmd_status_key_columns, CMD_STATUS_NCOLS(cmd_status_key_columns));
	for (i = 0; i < nkeys; i++) {
		table_add(t, keys[i].key);
		table_addf(t, "%" JSON_INTEGER_FORMAT, keys[i].boards);
		table_addf(t, "%" JSON_INTEGER_FORMAT, keys[i].free);
		table_addf(t, "%" JSON_INTEGER_FORMAT, keys[i].leased);
		table_addf(t, "%" JSON_INTEGER_FORMAT, keys[i].offline);
		table_addf(t, "%" JSON_INTEGER_FORMAT, keys[i].waiting);
	}
	table_print(t, stdout);
	table_free(t);
	free(keys);
}

/* Add @obj[@key], an RFC 3339 time, as its age relative to @now_us. */
static void
cmd_status_add_age(
    struct table *t, const json_t *obj, const char *key, int64_t now_us)
{
	const char *s = cli_json_str(obj, key);
	char buf[FORMAT_DURATION_MAX + 16];
	int64_t then_us;

	if (s == NULL)
		table_add(t, NULL);
	else if (format_parse_time(s, &then_us, NULL) < 0)
		table_add(t, s);
	else
		table_add(t, format_age(then_us, now_us, buf, sizeof(buf)));
}

static void
cmd_status_print_boards(const json_t *boards, int64_t now_us)
{
	const json_t *b, *lease, *task;
	struct table *t;
	size_t i;

	t = table_new(cmd_status_board_columns,
	    CMD_STATUS_NCOLS(cmd_status_board_columns));
	json_array_foreach(boards, i, b) {
		lease = json_object_get(b, "lease");
		task = json_object_get(b, "task");
		cli_add_str(t, b, "name");
		cli_add_str(t, b, "kind");
		cli_add_str(t, b, "relay"); /* who carries its sessions */
		cli_add_str(t, b, "key");
		cli_add_str(t, b, "state");
		if (json_is_object(task)) {
			/* A native task: "job 12 #3" where a lease would be. */
			table_addf(t,
			    "job %" JSON_INTEGER_FORMAT
			    " #%" JSON_INTEGER_FORMAT,
			    cmd_status_int(task, "job"),
			    cmd_status_int(task, "task"));
			cli_add_str(t, task, "user");
			cli_add_duration(t, task, "running_seconds");
		} else {
			cli_add_int(t, lease, "id");
			cli_add_str(t, lease, "user");
			cli_add_duration(t, lease, "held_seconds");
		}
		cmd_status_add_age(t, b, "last_seen", now_us);
		cli_add_str(t, b, "detail");
	}
	table_print(t, stdout);
	table_free(t);
}

static void
cmd_status_print_requests(const json_t *queues)
{
	const json_t *q, *reqs, *r;
	struct table *t;
	size_t i, j;
	double prio;

	t = table_new(cmd_status_request_columns,
	    CMD_STATUS_NCOLS(cmd_status_request_columns));
	json_array_foreach(queues, i, q) {
		reqs = json_object_get(q, "requests");
		json_array_foreach(reqs, j, r) {
			cli_add_str(t, q, "key");
			cli_add_str(t, r, "user");
			if (json_object_get(r, "job") != NULL)
				table_addf(t,
				    "job %" JSON_INTEGER_FORMAT
				    " #%" JSON_INTEGER_FORMAT,
				    cmd_status_int(r, "job"),
				    cmd_status_int(r, "task"));
			else
				cli_add_str(t, r, "peer");
			if (cli_json_num(r, "priority", &prio))
				table_addf(t, "%g", prio);
			else
				table_add(t, NULL);
			cli_add_duration(t, r, "waited_seconds");
		}
	}
	if (table_rows(t) > 0) {
		(void)printf("\nwaiting requests, in the order they will be "
			     "served:\n");
		table_print(t, stdout);
	}
	table_free(t);
}

static int
cmd_status_print(const json_t *queue_root, const json_t *boards_root)
{
	const json_t *queues = json_object_get(queue_root, "queues");
	const json_t *boards = json_object_get(boards_root, "boards");
	struct timespec now;

	if (!json_is_array(queues) || !json_is_array(boards)) {
		(void)fprintf(stderr,
		    "npufarm: the broker's reply has no "
		    "\"%s\" array\n",
		    json_is_array(queues) ? "boards" : "queues");
		return CLI_EXIT_FAIL;
	}
	if (json_array_size(queues) == 0 && json_array_size(boards) == 0) {
		(void)printf("no boards and no waiting requests\n");
		return CLI_EXIT_OK;
	}
	(void)clock_gettime(CLOCK_REALTIME, &now);
	cmd_status_print_keys(queues, boards);
	if (json_array_size(boards) > 0) {
		(void)printf("\n");
		cmd_status_print_boards(
		    boards, (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000);
	}
	cmd_status_print_requests(queues);
	return CLI_EXIT_OK;
}

static int
cmd_status_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	json_t *queue_root = NULL, *boards_root = NULL, *both, *want;
	int c, r = CLI_EXIT_FAIL;
	const char *eq;

	want = json_object();
	if (want == NULL)
		return CLI_EXIT_FAIL;
	while ((c = cli_getopt(cli, self, argc, argv, CLI_COMMON_OPTSTRING,
		    cmd_status_options, &r)) != CLI_OPT_END) {
		if (c == CLI_OPT_EXIT) {
			json_decref(want);
			return r;
		}
		assert(c == CMD_STATUS_OPT_TAG);
		eq = strchr(optarg, '=');
		if (eq == NULL || eq == optarg ||
		    json_object_setn_new(want, optarg, (size_t)(eq - optarg),
			json_string(eq + 1)) < 0) {
			json_decref(want);
			return cli_usage(
			    self, "--tag takes KEY=VALUE, not '%s'", optarg);
		}
	}
	if ((r = cli_no_operands(self, argc, argv)) != CLI_EXIT_OK) {
		json_decref(want);
		return r;
	}
	r = CLI_EXIT_FAIL;
	if (cli_get_json(cli, "/v1/queue", &queue_root) < 0 ||
	    cli_get_json(cli, "/v1/boards", &boards_root) < 0)
		goto out;
	if (json_object_size(want) > 0)
		cmd_status_filter_tags(
		    json_object_get(boards_root, "boards"), want);
	if (!cli->json) {
		r = cmd_status_print(queue_root, boards_root);
		goto out;
	}
	both = json_object();
	if (both == NULL || json_object_update(both, queue_root) < 0 ||
	    json_object_update(both, boards_root) < 0) {
		json_decref(both);
		(void)fprintf(stderr, "npufarm: out of memory\n");
		goto out;
	}
	r = cli_print_json(both);
	json_decref(both);
out:
	json_decref(boards_root);
	json_decref(queue_root);
	json_decref(want);
	return r;
}

const struct cmd_entry cmd_status_entry = {
    .name = "status",
    .usage = "[--tag K=V]...",
    .brief = "boards and waiting requests, per key and per board",
    .summary = "Show the farm at a glance: per key, how many boards are "
	       "live, free,\nleased and offline and how many requests "
	       "wait; then every board\nwith its state and current lease; "
	       "then the waiting requests in the\norder they will be "
	       "served.  A board running a native task shows it as\n"
	       "'job N #I'.  --tag K=V (repeatable) lists only the boards "
	       "carrying\nevery such tag.",
    .exec = cmd_status_exec,
};
