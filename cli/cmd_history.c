/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm history [--limit N] [--db FILE]: what the farm did lately, jobs
 * and leases in one timeline, newest first.
 *
 * From the broker: GET /v1/jobs and GET /v1/leases.  Offline, with --db:
 * the ledger itself (docs/ledger.md), opened read-only so that it can be
 * read while a broker writes it (WAL) or from a copy, with no broker at
 * all.  A broker or ledger from before the jobs API (no /v1/jobs, or no
 * jobs and tasks tables: schema < 5) gives the leases alone, with a note.
 *
 * Both sources become the same rows, so the two modes print alike; with
 * --json both print {"jobs": [...], "leases": [...]} in the API's shape
 * (from --db: the ledger's columns under the API's names).
 */
#include "config.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "cli.h"
#include "format.h"
#include "jobview.h"
#include "table.h"
#include "xmalloc.h"

#define CMD_HISTORY_LIMIT 20 /* default for --limit */

enum {
	OPT_DB = 256,
	OPT_LIMIT,
};

static const struct option cmd_history_options[] = {
    CLI_COMMON_OPTIONS,
    {"db", required_argument, NULL, OPT_DB},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {NULL, 0, NULL, 0},
};

static const struct table_column cmd_history_columns[] = {
    {"WHEN (UTC)", TABLE_LEFT},
    {"WHAT", TABLE_LEFT},
    {"ID", TABLE_RIGHT},
    {"KEY", TABLE_LEFT},
    {"USER", TABLE_LEFT},
    {"OUTCOME", TABLE_LEFT},
    {"DETAIL", TABLE_LEFT},
};

/* One line of the timeline. */
struct cmd_history_row {
	int64_t when_us; /* job submitted, lease requested; 0: unknown */
	const char *what;
	long long id;
	char *key, *user, *outcome, *detail; /* owned; NULL shows "-" */
};

struct cmd_history {
	struct cmd_history_row *rows; /* owned */
	size_t n;
	json_t *jobs;   /* the API's "jobs" array; NULL: none */
	json_t *leases; /* the API's "leases" array */
};

static void
cmd_history_deinit(struct cmd_history *h)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		free(h->rows[i].key);
		free(h->rows[i].user);
		free(h->rows[i].outcome);
		free(h->rows[i].detail);
	}
	free(h->rows);
	json_decref(h->jobs);
	json_decref(h->leases);
}

static char *
cmd_history_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* Microseconds since the epoch as the API writes times. */
static json_t *
cmd_history_time(int64_t us, bool null)
{
	char buf[48];
	time_t t;
	struct tm tm;

	if (null)
		return json_null();
	t = (time_t)(us / 1000000);
	if (gmtime_r(&t, &tm) == NULL)
		return json_null();
	(void)snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (int)(us % 1000000));
	return json_string(buf);
}

/* A new row of @h for @v: when (from @v[@time_key]), id, key and user. */
static struct cmd_history_row *
cmd_history_row_add(struct cmd_history *h, const json_t *v, const char *what,
    const char *time_key)
{
	struct cmd_history_row *row = &h->rows[h->n++];
	const char *s = cli_json_str(v, time_key);

	row->what = what;
	if (s == NULL || format_parse_time(s, &row->when_us, NULL) < 0)
		row->when_us = 0;
	row->id = json_integer_value(json_object_get(v, "id"));
	row->key = cmd_history_dup(cli_json_str(v, "key"));
	row->user = cmd_history_dup(cli_json_str(v, "user"));
	return row;
}

/* The rows of the API's (or the ledger's, as JSON) jobs and leases. */
static void
cmd_history_rows(struct cmd_history *h)
{
	struct cmd_history_row *row;
	struct jobview_counts c;
	const char *s, *detail;
	char held[FORMAT_DURATION_MAX + 8] = "";
	char *outcomes;
	const json_t *v;
	double secs;
	size_t i;

	h->rows =
	    xcalloc(json_array_size(h->jobs) + json_array_size(h->leases) + 1,
		sizeof(*h->rows));
	json_array_foreach(h->jobs, i, v) {
		row = cmd_history_row_add(h, v, "job", "submitted");
		row->outcome = cmd_history_dup(cli_json_str(v, "state"));
		jobview_counts(v, &c);
		outcomes = jobview_outcomes(v);
		row->detail = xasprintf("%lld tasks%s%s", c.total,
		    *outcomes != '\0' ? ": " : "", outcomes);
		free(outcomes);
	}
	json_array_foreach(h->leases, i, v) {
		row = cmd_history_row_add(h, v, "lease", "requested_at");
		s = cli_json_str(v, "outcome");
		if (s == NULL &&
		    json_is_null(json_object_get(v, "released_at")))
			s = "open";
		row->outcome = cmd_history_dup(s);
		s = cli_json_str(v, "board");
		detail = cli_json_str(v, "detail");
		held[0] = '\0';
		if (cli_json_num(v, "held_seconds", &secs)) {
			(void)snprintf(held, sizeof(held), ", held ");
			(void)format_duration(secs, held + 7, sizeof(held) - 7);
		}
		row->detail = xasprintf("%s%s%s%s", s != NULL ? s : "no board",
		    held, detail != NULL ? ": " : "",
		    detail != NULL ? detail : "");
	}
}

/* Newest first; a job before a lease of the same microsecond. */
static int
cmd_history_cmp(const void *a, const void *b)
{
	const struct cmd_history_row *x = a, *y = b;

	if (x->when_us != y->when_us)
		return x->when_us > y->when_us ? -1 : 1;
	if (strcmp(x->what, y->what) != 0)
		return strcmp(x->what, y->what);
	return x->id > y->id ? -1 : x->id < y->id ? 1 : 0;
}

static int
cmd_history_print(struct cmd_history *h, long limit)
{
	char when[32];
	struct table *t;
	struct tm tm;
	time_t secs;
	size_t i;

	if (h->n == 0) {
		(void)printf("no jobs and no leases\n");
		return CLI_EXIT_OK;
	}
	qsort(h->rows, h->n, sizeof(*h->rows), cmd_history_cmp);
	t = table_new(cmd_history_columns,
	    sizeof(cmd_history_columns) / sizeof(cmd_history_columns[0]));
	for (i = 0; i < h->n && i < (size_t)limit; i++) {
		secs = (time_t)(h->rows[i].when_us / 1000000);
		if (h->rows[i].when_us > 0 && gmtime_r(&secs, &tm) != NULL &&
		    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) > 0)
			table_add(t, when);
		else
			table_add(t, NULL);
		table_add(t, h->rows[i].what);
		table_addf(t, "%lld", h->rows[i].id);
		table_add(t, h->rows[i].key);
		table_add(t, h->rows[i].user);
		table_add(t, h->rows[i].outcome);
		table_add(t, h->rows[i].detail);
	}
	table_print(t, stdout);
	table_free(t);
	return CLI_EXIT_OK;
}

/* Fetch from the broker into @h->jobs (NULL on 404) and @h->leases. */
static int
cmd_history_api(const struct cli *cli, long limit, struct cmd_history *h)
{
	struct cli_req req = {.cmd = EVHTTP_REQ_GET, .quiet_status = 404};
	char path[64];
	json_t *root;

	(void)snprintf(path, sizeof(path), "/v1/leases?limit=%ld", limit);
	if (cli_get_json(cli, path, &root) < 0)
		return -1;
	h->leases = json_incref(json_object_get(root, "leases"));
	json_decref(root);
	(void)snprintf(path, sizeof(path), "/v1/jobs?limit=%ld", limit);
	req.path = path;
	if (cli_req_json(cli, &req, &root) < 0) {
		if (req.status != 404)
			return -1;
		(void)fprintf(stderr, "npufarm: the broker has no jobs API "
				      "(GET /v1/jobs: 404): leases only\n");
		return 0;
	}
	h->jobs = json_incref(json_object_get(root, "jobs"));
	json_decref(root);
	return 0;
}

/* Column @i of @st as a JSON string, or null. */
static json_t *
cmd_history_col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s != NULL ? json_string((const char *)s) : json_null();
}

/* Column @i as a time (API format), null when NULL. */
static json_t *
cmd_history_col_time(sqlite3_stmt *st, int i)
{
	return cmd_history_time(sqlite3_column_int64(st, i),
	    sqlite3_column_type(st, i) == SQLITE_NULL);
}

static int
cmd_history_db_fail(sqlite3 *db, const char *path, const char *what)
{
	char *safe = format_escape(sqlite3_errmsg(db));

	(void)fprintf(
	    stderr, "npufarm: %s: cannot read %s: %s\n", path, what, safe);
	free(safe);
	return -1;
}

static const char cmd_history_leases_sql[] =
    "SELECT l.id, l.key, l.user, l.peer, l.priority, l.board_id, b.name,"
    " l.requested_us, l.granted_us, l.released_us, l.outcome, l.detail"
    " FROM leases l LEFT JOIN boards b ON b.id = l.board_id"
    " ORDER BY l.requested_us DESC, l.id DESC LIMIT ?1";

static const char cmd_history_jobs_sql[] =
    "SELECT id, key, user, priority, state, submitted_us, finished_us"
    " FROM jobs ORDER BY submitted_us DESC, id DESC LIMIT ?1";

/* Counts by state and outcome, as GET /v1/jobs gives them. */
static const char cmd_history_counts_sql[] =
    "SELECT CASE WHEN outcome IS NOT NULL THEN outcome"
    "  WHEN state = 'running' THEN 'running' ELSE 'queued' END, count(*)"
    " FROM tasks WHERE job_id = ?1 GROUP BY 1";

/* The leases of @db as the API's "leases". */
static int
cmd_history_db_leases(sqlite3 *db, const char *path, long limit, json_t *out)
{
	sqlite3_stmt *st = NULL;
	json_t *l;
	int rc;

	if (sqlite3_prepare_v2(db, cmd_history_leases_sql, -1, &st, NULL) !=
	    SQLITE_OK)
		return cmd_history_db_fail(db, path, "leases");
	(void)sqlite3_bind_int64(st, 1, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		l = json_pack("{s:I, s:o, s:o, s:o, s:f, s:o, s:o, s:o, s:o, "
			      "s:o, s:o, s:o}",
		    "id", (json_int_t)sqlite3_column_int64(st, 0), "key",
		    cmd_history_col_str(st, 1), "user",
		    cmd_history_col_str(st, 2), "peer",
		    cmd_history_col_str(st, 3), "priority",
		    sqlite3_column_double(st, 4), "board_id",
		    sqlite3_column_type(st, 5) == SQLITE_NULL
			? json_null()
			: json_integer(sqlite3_column_int64(st, 5)),
		    "board", cmd_history_col_str(st, 6), "requested_at",
		    cmd_history_col_time(st, 7), "granted_at",
		    cmd_history_col_time(st, 8), "released_at",
		    cmd_history_col_time(st, 9), "outcome",
		    cmd_history_col_str(st, 10), "detail",
		    cmd_history_col_str(st, 11));
		if (sqlite3_column_type(st, 8) != SQLITE_NULL &&
		    sqlite3_column_type(st, 9) != SQLITE_NULL)
			(void)json_object_set_new(l, "held_seconds",
			    json_real((sqlite3_column_int64(st, 9) -
					  sqlite3_column_int64(st, 8)) /
				      1e6));
		(void)json_array_append_new(out, l);
	}
	(void)sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : cmd_history_db_fail(db, path, "leases");
}

/* The jobs of @db, with their counts, as the API's "jobs". */
static int
cmd_history_db_jobs(sqlite3 *db, const char *path, long limit, json_t *out)
{
	sqlite3_stmt *st = NULL, *cst = NULL;
	json_t *j, *counts;
	json_int_t total;
	int rc = SQLITE_ERROR;

	if (sqlite3_prepare_v2(db, cmd_history_jobs_sql, -1, &st, NULL) !=
		SQLITE_OK ||
	    sqlite3_prepare_v2(db, cmd_history_counts_sql, -1, &cst, NULL) !=
		SQLITE_OK)
		goto out;
	(void)sqlite3_bind_int64(st, 1, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		counts = json_object();
		total = 0;
		(void)sqlite3_bind_int64(cst, 1, sqlite3_column_int64(st, 0));
		while ((rc = sqlite3_step(cst)) == SQLITE_ROW) {
			(void)json_object_set_new(counts,
			    (const char *)sqlite3_column_text(cst, 0),
			    json_integer(sqlite3_column_int64(cst, 1)));
			total += sqlite3_column_int64(cst, 1);
		}
		(void)sqlite3_reset(cst);
		if (rc != SQLITE_DONE) {
			json_decref(counts);
			goto out;
		}
		(void)json_object_set_new(counts, "total", json_integer(total));
		j = json_pack("{s:I, s:o, s:o, s:I, s:o, s:o, s:o, s:o}", "id",
		    (json_int_t)sqlite3_column_int64(st, 0), "key",
		    cmd_history_col_str(st, 1), "user",
		    cmd_history_col_str(st, 2), "priority",
		    (json_int_t)sqlite3_column_int64(st, 3), "state",
		    cmd_history_col_str(st, 4), "submitted",
		    cmd_history_col_time(st, 5), "finished",
		    cmd_history_col_time(st, 6), "tasks", counts);
		(void)json_array_append_new(out, j);
	}
out:
	(void)sqlite3_finalize(cst);
	(void)sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : cmd_history_db_fail(db, path, "jobs");
}

/* Read the ledger at @path into @h, as the API would have answered. */
static int
cmd_history_db(const char *path, long limit, struct cmd_history *h)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	int r = -1, tables = 0;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		(void)cmd_history_db_fail(db, path, "the ledger");
		goto out;
	}
	(void)sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table'"
		" AND name IN ('jobs', 'tasks')",
		-1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		(void)cmd_history_db_fail(db, path, "the ledger");
		goto out;
	}
	tables = sqlite3_column_int(st, 0);
	h->leases = json_array();
	if (cmd_history_db_leases(db, path, limit, h->leases) < 0)
		goto out;
	if (tables == 2) {
		h->jobs = json_array();
		if (cmd_history_db_jobs(db, path, limit, h->jobs) < 0)
			goto out;
	} else {
		(void)fprintf(stderr,
		    "npufarm: %s has no jobs tables (a ledger from before "
		    "schema 5): leases only\n",
		    path);
	}
	r = 0;
out:
	(void)sqlite3_finalize(st);
	(void)sqlite3_close(db);
	return r;
}

static int
cmd_history_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	struct cmd_history h = {0};
	long limit = CMD_HISTORY_LIMIT;
	const char *db = NULL;
	json_t *both;
	int c, r;

	while ((c = cli_getopt(cli, self, argc, argv, CLI_COMMON_OPTSTRING,
		    cmd_history_options, &r)) != CLI_OPT_END) {
		if (c == CLI_OPT_EXIT)
			return r;
		if (c == OPT_DB)
			db = optarg;
		else if (cli_parse_int(optarg, 1, 1000, &limit) < 0)
			return cli_usage(self,
			    "--limit takes a number in 1..1000, not '%s'",
			    optarg);
	}
	if ((r = cli_no_operands(self, argc, argv)) != CLI_EXIT_OK)
		return r;
	r = CLI_EXIT_FAIL;
	if ((db != NULL ? cmd_history_db(db, limit, &h)
			: cmd_history_api(cli, limit, &h)) < 0)
		goto out;
	if (cli->json) {
		both = json_pack(
		    "{s:O*, s:O*}", "jobs", h.jobs, "leases", h.leases);
		if (both == NULL) {
			(void)fprintf(stderr, "npufarm: out of memory\n");
			goto out;
		}
		r = cli_print_json(both);
		json_decref(both);
		goto out;
	}
	cmd_history_rows(&h);
	r = cmd_history_print(&h, limit);
out:
	cmd_history_deinit(&h);
	return r;
}

const struct cmd_entry cmd_history_entry = {
    .name = "history",
    .usage = "[--limit N] [--db FILE]",
    .brief = "recent jobs and leases in one timeline (--db: offline)",
    .summary = "Show what the farm did lately: jobs and leases in one "
	       "timeline, newest\nfirst (--limit N lines, default 20).  "
	       "With --db FILE, read the ledger\nitself (read-only; the "
	       "broker may be running or not) instead of asking\nthe "
	       "broker.  A ledger or broker without jobs shows the leases "
	       "only.",
    .exec = cmd_history_exec,
};
