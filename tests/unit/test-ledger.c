/* SPDX-License-Identifier: Apache-2.0 */
/* broker/ledger.c: schema, migrations, rows, durability across reopen. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <sqlite3.h>

#include "err.h"
#include "harness.h"
#include "ledger.h"

static char dir[64], path[128];

static void
setup(void)
{
	(void)snprintf(dir, sizeof(dir), "/tmp/npufarm-ledger-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/l.db", dir);
}

static void
teardown(void)
{
	char cmd[128];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

static int
count_lease(const struct ledger_lease *l, void *arg)
{
	int *n = arg;

	if (*n == 0) {
		ck_assert_str_eq(l->key, "rk3588");
		ck_assert_str_eq(l->board, "10.0.0.5:9090");
		ck_assert_str_eq(l->outcome, "lost");
	}
	(*n)++;
	return 0;
}

START_TEST(test_ledger_rows_survive_reopen)
{
	struct npufarm_err err;
	struct ledger *l;
	int64_t board, lease, board2;
	struct ledger_lease row = {
	    .key = "rk3588",
	    .user = "10.0.0.9",
	    .peer = "10.0.0.9:5000",
	    .priority = 1,
	    .requested_us = 1000,
	    .granted_us = 2000,
	    .matchkey = "rk3588:0.5",
	};
	char *out;
	int n = 0;

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(ledger_board_upsert(l, "tvm", "rk3588",
			     "10.0.0.5:9090", 100, &board, NULL, &err),
	    0);
	row.board_id = board;
	ck_assert_int_eq(ledger_lease_insert(l, &row, &lease, &err), 0);
	ck_assert_int_eq(ledger_lease_release(
			     l, lease, 3000, "lost", "board vanished", &err),
	    0);
	ck_assert(ledger_pending(l));
	ledger_commit(l);
	ck_assert(!ledger_pending(l));
	l = ledger_close(l);

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	/* Same board again: same row. */
	ck_assert_int_eq(ledger_board_upsert(l, "tvm", "rk3588",
			     "10.0.0.5:9090", 200, &board2, NULL, &err),
	    0);
	ck_assert_int_eq(board2, board);
	ck_assert_int_eq(ledger_foreach_lease(l, 10, count_lease, &n, &err), 0);
	ck_assert_int_eq(n, 1);
	ledger_commit(l);
	l = ledger_close(l);
	out = harness_sql(path, "SELECT wait_s, held_s, outcome FROM "
				"lease_times; PRAGMA user_version; "
				"PRAGMA journal_mode");
	ck_assert_str_eq(out, "0.001|0.001|lost\n8\nwal\n");
	free(out);
}
END_TEST

START_TEST(test_ledger_rejects_bad_outcome)
{
	struct npufarm_err err;
	struct ledger *l;
	int64_t id;
	struct ledger_lease row = {
	    .key = "k",
	    .user = "u",
	    .peer = "p",
	    .requested_us = 1,
	    .outcome = "kShutdown",
	};

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	/* Accepted into the batch; the writer's transaction fails and
	 * ledger_sync() reports it, once. */
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(ledger_sync(l, &err), -EIO);
	ck_assert(strstr(err.msg, "CHECK") != NULL);
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	ledger_close(l);
}
END_TEST

struct failures {
	int n;
	char msg[NPUFARM_ERR_MSG_MAX];
};

static void
failed_cb(const struct npufarm_err *err, void *arg)
{
	struct failures *f = arg;

	f->n++;
	(void)snprintf(f->msg, sizeof(f->msg), "%s", err->msg);
}

/* The ledger reports a batch its writer rolled back itself, once, on the
 * loop thread (ledger_notified()); a good batch after it reports nothing. */
START_TEST(test_ledger_reports_failed_commit)
{
	struct failures f = {0};
	struct npufarm_err err;
	struct ledger *l;
	int64_t id;
	struct ledger_lease row = {
	    .key = "k",
	    .user = "u",
	    .peer = "p",
	    .requested_us = 1,
	    .outcome = "kShutdown",
	};

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ledger_set_failed_cb(l, failed_cb, &f);
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(ledger_sync(l, &err), -EIO);
	ck_assert_int_eq(f.n, 0); /* reported from the loop, not the writer */
	ledger_notified(l);
	ck_assert_int_eq(f.n, 1);
	ck_assert(strstr(f.msg, "CHECK") != NULL);
	row.outcome = "lost";
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	ledger_notified(l);
	ck_assert_int_eq(f.n, 1);
	ledger_close(l);
}
END_TEST

static void
done_cb(const struct npufarm_err *err, void *arg)
{
	struct failures *f = arg;

	f->n++;
	(void)snprintf(f->msg, sizeof(f->msg), "%s", err ? err->msg : "ok");
}

/* ledger_after(): at once with nothing in flight; else once the writes
 * before it are committed, with the writer's error when they failed. */
START_TEST(test_ledger_after_commit)
{
	struct failures f = {0};
	struct npufarm_err err;
	struct ledger_wait *w;
	struct ledger *l;
	int64_t id;
	struct ledger_lease row = {
	    .key = "k",
	    .user = "u",
	    .peer = "p",
	    .requested_us = 1,
	};

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(ledger_after(l, done_cb, &f, &w), 0);
	ck_assert_int_eq(f.n, 1);
	ck_assert_ptr_null(w);
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(ledger_after(l, done_cb, &f, &w), 0);
	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(f.n, 1); /* not before its write is committed */
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	ck_assert_int_eq(f.n, 1); /* the loop is told (ledger_notified()) */
	ledger_notified(l);
	ck_assert_int_eq(f.n, 2);
	ck_assert_str_eq(f.msg, "ok");
	row.outcome = "kShutdown";
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(ledger_after(l, done_cb, &f, NULL), 0);
	ck_assert_int_eq(ledger_sync(l, &err), -EIO);
	ledger_notified(l);
	ck_assert_int_eq(f.n, 3);
	ck_assert(strstr(f.msg, "CHECK") != NULL);
	/* Cancelled: never called; at close: called. */
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(ledger_after(l, done_cb, &f, &w), 0);
	ledger_after_cancel(l, w);
	ck_assert_int_eq(ledger_after(l, done_cb, &f, &w), 0);
	ledger_close(l);
	ck_assert_int_eq(f.n, 4);
}
END_TEST

/* A lease granted and released within one group commit is written as
 * one row, the same row as an INSERT and an UPDATE would leave; one the
 * merged row cannot be is written as before (its grant kept). */
START_TEST(test_ledger_short_lease_one_row)
{
	struct npufarm_err err;
	struct ledger *l;
	int64_t board, a, b, c;
	struct ledger_lease row = {
	    .key = "rk3588",
	    .user = "u",
	    .peer = "p",
	    .priority = 1,
	    .requested_us = 1000,
	    .granted_us = 2000,
	    .matchkey = "rk3588:0.5",
	};
	char *out;

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(ledger_board_upsert(l, "tvm", "rk3588",
			     "10.0.0.5:9090", 100, &board, NULL, &err),
	    0);
	row.board_id = board;
	ck_assert_int_eq(ledger_lease_insert(l, &row, &a, &err), 0);
	ck_assert_int_eq(
	    ledger_lease_release(l, a, 3000, "lost", "board vanished", &err),
	    0);
	ck_assert_int_eq(ledger_lease_insert(l, &row, &b, &err), 0);
	ck_assert_int_eq(ledger_lease_agent_session(l, b, "s-1", &err), 0);
	ck_assert_int_eq(ledger_lease_release(l, b, 4000, NULL, NULL, &err), 0);
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	ck_assert_int_eq(ledger_lease_insert(l, &row, &c, &err), 0);
	ck_assert_int_eq(
	    ledger_lease_release(l, c, 5000, "kShutdown", "bad", &err), 0);
	ck_assert_int_eq(ledger_sync(l, &err), -EIO);
	ck_assert(strstr(err.msg, "CHECK") != NULL);
	l = ledger_close(l);
	out = harness_sql(path, "SELECT id, board_id, granted_us,"
				" released_us, outcome, detail, agent_session"
				" FROM leases ORDER BY id");
	ck_assert_str_eq(out, "1|1|2000|3000|lost|board vanished|NULL\n"
			      "2|1|2000|4000|NULL|NULL|s-1\n"
			      "3|1|2000|NULL|NULL|NULL|NULL\n");
	free(out);
}
END_TEST

START_TEST(test_ledger_refuses_newer_schema)
{
	struct npufarm_err err;
	struct ledger *l;
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(
	    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(ledger_open(path, true, &l, &err), -EPROTONOSUPPORT);
	ck_assert(strstr(err.msg, "newer") != NULL);
}
END_TEST

START_TEST(test_ledger_reset_closes_open_leases)
{
	struct npufarm_err err;
	struct ledger *l;
	int64_t board, lease;
	struct ledger_lease row = {
	    .key = "k",
	    .user = "u",
	    .peer = "p",
	    .requested_us = 1,
	    .granted_us = 2,
	};
	char *out;

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(
	    ledger_board_upsert(l, "tvm", "k", "h:1", 1, &board, NULL, &err),
	    0);
	row.board_id = board;
	ck_assert_int_eq(ledger_lease_insert(l, &row, &lease, &err), 0);
	ck_assert_int_eq(ledger_boards_reset(l, 50, &err), 0);
	ledger_commit(l);
	ledger_close(l);
	out = harness_sql(path, "SELECT state FROM boards; SELECT released_us, "
				"outcome IS NULL FROM leases");
	ck_assert_str_eq(out, "offline\n50|1\n");
	free(out);
}
END_TEST

START_TEST(test_ledger_ids_are_immediate_and_stable)
{
	struct npufarm_err err;
	struct ledger *l;
	int64_t b1, b2, b3, l1, l2;
	struct ledger_lease row = {
	    .key = "k",
	    .user = "u",
	    .peer = "p",
	    .requested_us = 1,
	};
	int i;

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(
	    ledger_board_upsert(l, "tvm", "k", "h:1", 1, &b1, NULL, &err), 0);
	ck_assert_int_eq(
	    ledger_board_upsert(l, "tvm", "k", "h:2", 1, &b2, NULL, &err), 0);
	ck_assert_int_eq(
	    ledger_board_upsert(l, "tvm", "k", "h:1", 2, &b3, NULL, &err), 0);
	ck_assert_int_ne(b1, b2);
	ck_assert_int_eq(b1, b3); /* known before anything was committed */
	ck_assert_int_eq(ledger_lease_insert(l, &row, &l1, &err), 0);
	ck_assert_int_eq(ledger_lease_insert(l, &row, &l2, &err), 0);
	ck_assert_int_eq(l2, l1 + 1);
	for (i = 0; i < 50; i++) {
		ck_assert_int_eq(
		    ledger_event(l, "x", b1, NULL, i + 1, &err), 0);
		ledger_commit(l);
	}
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	/* 50 submissions, grouped into at most 50 transactions. */
	ck_assert_uint_le(ledger_commits(l), 50);
	ck_assert_uint_ge(ledger_commits(l), 1);
	ledger_close(l);
	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(
	    ledger_board_upsert(l, "tvm", "k", "h:2", 3, &b3, NULL, &err), 0);
	ck_assert_int_eq(b3, b2);
	ck_assert_int_eq(ledger_lease_insert(l, &row, &l1, &err), 0);
	ck_assert_int_eq(l1, l2 + 1);
	ledger_close(l);
}
END_TEST

START_TEST(test_ledger_migrates_v1)
{
	struct npufarm_err err;
	struct ledger_session sess = {
	    .start_us = 1795559675799000,
	    .end_us = 1795559675803175,
	    .requests = 3,
	    .exceptions = 1,
	    .bytes_to_board = 100,
	    .bytes_to_client = 200,
	    .outcome = "exception",
	    .detail = "ValueError: bad input",
	};
	struct ledger *l;
	sqlite3 *db;
	char *sql, *out;
	FILE *f;
	long n;

	/* A ledger as version 0.1.0 wrote it. */
	f = fopen(NPUFARM_TEST_DATA "/ledger-v1.sql", "r");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	sql = calloc(1, (size_t)n + 1);
	ck_assert_uint_eq(fread(sql, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(sql);

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(ledger_lease_session(l, 1, &sess, &err), 0);
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	ledger_close(l);
	out = harness_sql(path,
	    "PRAGMA user_version; SELECT key, board,"
	    " session_s, requests, exceptions, bytes_to_board,"
	    " bytes_to_client, outcome, detail FROM "
	    "lease_times");
	ck_assert_str_eq(out, "8\nrk3588|192.168.1.20:9090|0.004175|3|"
			      "1|100|200|exception|ValueError: bad input\n");
	free(out);
}
END_TEST

START_TEST(test_ledger_drain_survives_reopen)
{
	struct npufarm_err err;
	struct ledger *l;
	int64_t id, id2;
	bool drained = true;
	char *out;

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(
	    ledger_board_upsert(l, "tvm", "k", "h:1", 1, &id, &drained, &err),
	    0);
	ck_assert(!drained);
	ck_assert_int_eq(ledger_board_drain(l, id, true, 2, &err), 0);
	ck_assert_int_eq(ledger_board_drained(l, id), 1);
	ck_assert_int_eq(
	    ledger_board_drain(l, id + 100, true, 2, &err), -ENOENT);
	ck_assert_int_eq(ledger_board_drained(l, id + 100), -ENOENT);
	ledger_close(l);
	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(ledger_board_drained(l, id), 1);
	/* Registering again keeps the mark and shows it. */
	ck_assert_int_eq(
	    ledger_board_upsert(l, "tvm", "k", "h:1", 3, &id2, &drained, &err),
	    0);
	ck_assert_int_eq(id2, id);
	ck_assert(drained);
	ledger_close(l);
	out = harness_sql(path, "SELECT drained, state FROM boards");
	ck_assert_str_eq(out, "1|draining\n");
	free(out);
}
END_TEST

/* One broker per ledger: a second open fails, naming the holder. */
START_TEST(test_ledger_one_opener)
{
	struct npufarm_err err;
	struct ledger *l, *l2 = NULL;
	char want[64];

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(ledger_open(path, true, &l2, &err), -EBUSY);
	ck_assert_ptr_null(l2);
	(void)snprintf(want, sizeof(want), "pid %ld holds it", (long)getpid());
	ck_assert_msg(strstr(err.msg, want) != NULL, "%s", err.msg);
	l = ledger_close(l);
	/* Released with the ledger. */
	ck_assert_int_eq(ledger_open(path, true, &l2, &err), 0);
	ledger_close(l2);
}
END_TEST

/*
 * Migration 6 on a v5 ledger with a job: the task keeps its row, its
 * attempts still reference it, and it may now end `wrong`.
 */
START_TEST(test_ledger_v5_gains_wrong)
{
	static const char *const undo[] = {"DROP TRIGGER leases_deleted",
	    "DROP INDEX leases_failed", "DROP VIEW board_history",
	    "CREATE VIEW board_history AS SELECT 1 AS id",
	    "DROP TABLE board_leases", "DROP VIEW candidates",
	    "DROP VIEW events_readable", "DROP VIEW failure_rates",
	    "DROP VIEW runs", "DROP INDEX attempts_board",
	    "ALTER TABLE boards DROP COLUMN tags",
	    "ALTER TABLE jobs DROP COLUMN tags",
	    "ALTER TABLE events DROP COLUMN actor", NULL};
	struct npufarm_err err;
	struct ledger *l;
	sqlite3 *db;
	char *out;
	int i;

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ledger_close(l);
	/* Back to a v5 ledger (near enough) with a job, task and attempt. */
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	for (i = 0; undo[i] != NULL; i++)
		ck_assert_msg(
		    sqlite3_exec(db, undo[i], NULL, NULL, NULL) == SQLITE_OK,
		    "%s: %s", undo[i], sqlite3_errmsg(db));
	ck_assert_int_eq(
	    sqlite3_exec(db,
		"INSERT INTO jobs (id, key, user, priority, queue_timeout,"
		" state, ntasks, submitted_us) VALUES (1, 'cpu', 'u', 0, 60,"
		" 'running', 1, 1);"
		" INSERT INTO tasks (id, job_id, idx, runner, spec, state,"
		" queued_us) VALUES (7, 1, 0, 'kernel', '{}', 'running', 1);"
		" INSERT INTO attempts (task_id, attempt, started_us) VALUES"
		" (7, 1, 2);"
		" PRAGMA user_version = 5;",
		NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ledger_close(l);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db,
			  "UPDATE tasks SET outcome = 'wrong', state = 'done'"
			  " WHERE id = 7",
			  NULL, NULL, NULL) == SQLITE_OK,
	    "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
	out = harness_sql(path,
	    "PRAGMA user_version; SELECT t.outcome, a.attempt FROM tasks t"
	    " JOIN attempts a ON a.task_id = t.id; PRAGMA foreign_key_check;");
	ck_assert_str_eq(out, "8\nwrong|1\n");
	free(out);
}
END_TEST

/* @n bytes of text that say which lease @id they belong to. */
static void
lease_text(char *buf, size_t n, const char *tag, int64_t id)
{
	size_t i, k;
	char head[32];

	k = (size_t)snprintf(head, sizeof(head), "%s%lld.", tag, (long long)id);
	for (i = 0; i + 1 < n; i++)
		buf[i] = head[i % k];
	buf[n - 1] = '\0';
}

/*
 * The ops of a batch live in blocks the writer hands back for the next
 * batches: rows written through many batches, some with a write that
 * fails (a CHECK) and some with a string bigger than a block, queued
 * several at a time and then one at a time, keep every byte of their own
 * strings.
 */
START_TEST(test_ledger_op_blocks_recycled)
{
	enum { BATCHES = 120, PER = 23, BIG = 9000 };
	struct npufarm_err err;
	struct ledger *l;
	int64_t board, id;
	char user[400], detail[BIG];
	char *out, *want, *p;
	size_t wlen = 0, wcap = 1 << 20;
	int b, i, r;

	want = malloc(wcap);
	ck_assert_ptr_nonnull(want);
	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(ledger_board_upsert(l, "tvm", "rk3588",
			     "10.0.0.5:9090", 100, &board, NULL, &err),
	    0);
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	for (b = 0; b < BATCHES; b++) {
		for (i = 0; i < PER; i++) {
			bool bad = b % 5 == 2 && i == 7;
			bool big = b % 7 == 3 && i == 11;
			struct ledger_lease row = {
			    .key = "rk3588",
			    .user = user,
			    .peer = "p",
			    .priority = 1,
			    .requested_us = 1000,
			    .granted_us = 2000,
			    .board_id = board,
			    .matchkey = "rk3588:0.5",
			};
			int64_t next = (int64_t)b * PER + i + 1;

			lease_text(
			    user, 1 + (size_t)(next * 37 % 390), "u", next);
			lease_text(detail, big ? BIG : 1 + (size_t)(next % 60),
			    "d", next);
			ck_assert_int_eq(
			    ledger_lease_insert(l, &row, &id, &err), 0);
			ck_assert_int_eq(id, next);
			ck_assert_int_eq(
			    ledger_lease_release(l, id, 3000,
				bad ? "kShutdown" : "ok", detail, &err),
			    0);
			if (bad)
				continue; /* release fails, grant stays */
			r = snprintf(want + wlen, wcap - wlen, "%lld|%s|%s\n",
			    (long long)id, user, detail);
			ck_assert(r > 0 && (size_t)r < wcap - wlen);
			wlen += (size_t)r;
		}
		if (b < BATCHES / 2)
			ledger_commit(l); /* several queued at once */
		else
			(void)ledger_sync(l, &err); /* one at a time */
	}
	(void)ledger_sync(l, &err);
	l = ledger_close(l);
	out = harness_sql(path, "SELECT id, user, detail FROM leases"
				" WHERE outcome = 'ok' ORDER BY id");
	ck_assert_uint_eq(strlen(out), wlen);
	ck_assert(memcmp(out, want, wlen) == 0);
	free(out);
	/* The failed releases left their grants open, strings intact. */
	out = harness_sql(path, "SELECT count(*) FROM leases WHERE"
				" released_us IS NULL AND outcome IS NULL"
				" AND user LIKE 'u' || id || '.%'");
	p = out;
	ck_assert_int_eq(atoi(p), BATCHES / 5);
	free(out);
	free(want);
}
END_TEST

/* Load the ledger fixture @name (tests/data) into @path with plain sqlite. */
static void
load_fixture(const char *name)
{
	char file[256], *sql;
	sqlite3 *db;
	FILE *f;
	long n;

	(void)snprintf(file, sizeof(file), "%s/%s", NPUFARM_TEST_DATA, name);
	f = fopen(file, "r");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	sql = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(sql);
	ck_assert_uint_eq(fread(sql, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(sql);
}

/*
 * Version 7 rebuilds leases with its outcome CHECK as comparisons, version
 * 8 keeps leases per board in board_leases instead of the index
 * leases_board: every row and every view over leases come through the
 * same, and an outcome outside the list is still refused.
 */
START_TEST(test_ledger_v6_same_leases)
{
	static const char q[] =
	    "SELECT * FROM leases ORDER BY id;"
	    "SELECT * FROM lease_times ORDER BY id;"
	    "SELECT * FROM board_history ORDER BY id;"
	    "SELECT * FROM runs ORDER BY kind, id;"
	    "SELECT * FROM failure_rates ORDER BY board;"
	    "SELECT id FROM leases WHERE released_us IS NULL;"
	    "SELECT id FROM leases WHERE board_id = 2 AND agent_session = "
	    "'s-7';";
	struct npufarm_err err;
	struct ledger *l;
	struct ledger_lease row = {
	    .key = "rk3588",
	    .user = "u",
	    .peer = "p",
	    .requested_us = 1,
	    .outcome = "kShutdown",
	};
	char *before, *after;
	int64_t id;

	load_fixture("ledger-v6.sql");
	before = harness_sql(path, q);
	ck_assert(strstr(before, "crash|SIGSEGV") != NULL);
	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	l = ledger_close(l);
	/* Opening and closing writes no row (marking boards offline and
	 * closing open leases at a restart is the server's): what the
	 * migration left is what version 6 had. */
	after = harness_sql(path, q);
	ck_assert_str_eq(after, before);
	free(after);
	after = harness_sql(path,
	    "PRAGMA user_version; PRAGMA integrity_check;"
	    " PRAGMA foreign_key_check;"
	    " SELECT count(*) FROM sqlite_schema WHERE sql LIKE"
	    " '%outcome IN (%' AND name = 'leases';"
	    " SELECT group_concat(name, ' ') FROM (SELECT name FROM"
	    " sqlite_schema WHERE type = 'index' AND tbl_name = 'leases'"
	    " AND sql IS NOT NULL ORDER BY name);"
	    " SELECT * FROM board_leases ORDER BY board_id;");
	ck_assert_str_eq(after, "8\nok\n0\n"
				"leases_agent_session leases_failed leases_key"
				" leases_open\n"
				"1|1|1795559675000100\n2|2|1795559678000010\n");
	free(after);
	free(before);
	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(id, 5);
	ck_assert_int_eq(ledger_sync(l, &err), -EIO);
	ck_assert(strstr(err.msg, "CHECK constraint failed") != NULL);
	row.outcome = "rejected";
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	ledger_close(l);
	after =
	    harness_sql(path, "SELECT id, outcome FROM leases WHERE id > 4");
	ck_assert_str_eq(after, "6|rejected\n");
	free(after);
}
END_TEST

/* What board_leases says of each board, beside what leases has. */
#define BOARD_LEASES_VS_ROWS                                                 \
	"SELECT b.id, coalesce(s.leases, 0), (SELECT count(*) FROM leases l" \
	" WHERE l.board_id = b.id), s.last_granted_us, (SELECT"              \
	" max(granted_us) FROM leases l WHERE l.board_id = b.id) FROM"       \
	" boards b LEFT JOIN board_leases s ON s.board_id = b.id ORDER BY"   \
	" b.id"

/*
 * board_leases counts the lease rows of each board and its latest grant,
 * as a count over leases would: merged and open leases, a lease whose
 * release failed (its row stays), not a lease refused, not a request that
 * ended without a board; retention's deletes come off it.  board_history
 * and GET /boards read it, and failures through leases_failed, never by
 * scanning every lease.
 */
START_TEST(test_ledger_board_leases)
{
	struct npufarm_err err;
	struct ledger *l;
	struct ledger_lease row = {
	    .key = "rk3588",
	    .user = "u",
	    .peer = "p",
	    .requested_us = 1000,
	};
	int64_t b[3], id;
	char *out;
	int i;

	ck_assert_int_eq(ledger_open(path, true, &l, &err), 0);
	for (i = 0; i < 3; i++) {
		char addr[32];

		(void)snprintf(addr, sizeof(addr), "10.0.0.%d:9090", i);
		ck_assert_int_eq(ledger_board_upsert(l, "tvm", "rk3588", addr,
				     100, &b[i], NULL, &err),
		    0);
	}
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	/* One batch: board 0 twice (one merged, one open), board 1 once
	 * with a failure, and a request that ended without a board. */
	row.board_id = b[0];
	row.granted_us = 2000;
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(
	    ledger_lease_release(l, id, 2500, "ok", NULL, &err), 0);
	row.granted_us = 2600;
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	row.board_id = b[1];
	row.granted_us = 2100;
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(
	    ledger_lease_release(l, id, 2700, "crash", "SIGSEGV", &err), 0);
	row.board_id = 0;
	row.granted_us = 0;
	row.released_us = 3000;
	row.outcome = "expired";
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	row.released_us = 0;
	row.outcome = NULL;
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	out = harness_sql(path, BOARD_LEASES_VS_ROWS);
	ck_assert_str_eq(
	    out, "1|2|2|2600|2600\n2|1|1|2100|2100\n3|0|0|NULL|NULL\n");
	free(out);
	/* A refused row is not counted; a row whose release is refused
	 * stays, and is. */
	row.board_id = b[2];
	row.granted_us = 4000;
	row.outcome = "kShutdown";
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	row.outcome = NULL;
	ck_assert_int_eq(ledger_lease_insert(l, &row, &id, &err), 0);
	ck_assert_int_eq(
	    ledger_lease_release(l, id, 4500, "kShutdown", "bad", &err), 0);
	ck_assert_int_eq(ledger_sync(l, &err), -EIO);
	out = harness_sql(path, BOARD_LEASES_VS_ROWS);
	ck_assert_str_eq(out, "1|2|2|2600|2600\n2|1|1|2100|2100\n"
			      "3|1|1|4000|4000\n");
	free(out);
	/* Retention deletes ended leases; the open ones stay. */
	ck_assert_int_eq(ledger_prune(l, 1000000, 100, &err), 0);
	ck_assert_int_eq(ledger_sync(l, &err), 0);
	out = harness_sql(path, BOARD_LEASES_VS_ROWS);
	ck_assert_str_eq(out, "1|1|1|2600|2600\n2|0|0|2100|NULL\n"
			      "3|1|1|4000|4000\n");
	free(out);
	l = ledger_close(l);
	out = harness_sql(path,
	    "SELECT id, leases, runs, failures, last_granted_us FROM"
	    " board_history ORDER BY id;"
	    " EXPLAIN QUERY PLAN SELECT * FROM board_history;");
	ck_assert(
	    strncmp(out, "1|1|1|0|2600\n2|0|0|0|2100\n3|1|1|0|4000\n",
		strlen("1|1|1|0|2600\n2|0|0|0|2100\n3|1|1|0|4000\n")) == 0);
	ck_assert_msg(strstr(out, "INDEX leases_failed") != NULL &&
			  strstr(out, "SCAN l") == NULL,
	    "board_history reads every lease:\n%s", out);
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ledger");
	TCase *tc = tcase_create("ledger");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ledger_rows_survive_reopen);
	tcase_add_test(tc, test_ledger_rejects_bad_outcome);
	tcase_add_test(tc, test_ledger_refuses_newer_schema);
	tcase_add_test(tc, test_ledger_reports_failed_commit);
	tcase_add_test(tc, test_ledger_after_commit);
	tcase_add_test(tc, test_ledger_short_lease_one_row);
	tcase_add_test(tc, test_ledger_reset_closes_open_leases);
	tcase_add_test(tc, test_ledger_ids_are_immediate_and_stable);
	tcase_add_test(tc, test_ledger_migrates_v1);
	tcase_add_test(tc, test_ledger_drain_survives_reopen);
	tcase_add_test(tc, test_ledger_one_opener);
	tcase_add_test(tc, test_ledger_v5_gains_wrong);
	tcase_add_test(tc, test_ledger_op_blocks_recycled);
	tcase_add_test(tc, test_ledger_v6_same_leases);
	tcase_add_test(tc, test_ledger_board_leases);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
