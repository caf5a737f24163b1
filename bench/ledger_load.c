/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-bench-ledger: the ledger's commit throughput, the way the broker
 * writes it (task results grouped per loop iteration, committed by the
 * writer thread, synchronous=FULL, WAL), against the baseline of the same
 * rows written by plain sqlite, one transaction per result (what a naive
 * server that commits before each acknowledgement would do), in the same
 * run and on the same file system.  Prints markdown table rows.
 *
 *   npufarm-bench-ledger [--dir DIR] [--results N] [--batch K]
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench_util.h"
#include "err.h"
#include "ledger.h"

static _Noreturn void
die(const char *what, const char *why)
{
	fprintf(stderr, "npufarm-bench-ledger: %s: %s\n", what, why);
	exit(1);
}

/* The broker's way: results in batches of @batch, group commit. */
static double
ledger_rate(const char *path, unsigned long n, unsigned long batch)
{
	struct ledger_task_result res = {
	    .outcome = "ok",
	    .costs = "[0.00143,0.00194,0.0026]",
	    .number = 27,
	    .status = 0,
	};
	struct ledger_job job = {
	    .key = "bench",
	    .user = "bench",
	    .peer = "127.0.0.1",
	    .queue_timeout = 60,
	    .ntasks = (int)n,
	};
	struct npufarm_err err;
	struct ledger *l = NULL;
	int64_t t0, id, *task;
	unsigned long i;

	task = calloc(n, sizeof(*task));
	if (task == NULL)
		die("ledger", "out of memory");
	if (ledger_open(path, true, &l, &err) < 0)
		die("ledger", err.msg);
	job.submitted_us = ledger_now_us();
	if (ledger_job_insert(l, &job, &id, &err) < 0)
		die("ledger", err.msg);
	for (i = 0; i < n; i++)
		if (ledger_task_insert(l, id, (int)i, NULL, "kernel", "{}",
			job.submitted_us, &task[i], &err) < 0 ||
		    ledger_task_start(l, task[i], 1, 0, ledger_now_us(), &err) <
			0)
			die("ledger", err.msg);
	if (ledger_sync(l, &err) < 0)
		die("ledger", err.msg);
	t0 = bench_now_ns();
	for (i = 0; i < n; i++) {
		res.finished_us = ledger_now_us();
		if (ledger_task_finish(l, task[i], 1, &res, true, &err) < 0)
			die("ledger", err.msg);
		if ((i + 1) % batch == 0)
			ledger_commit(l);
	}
	if (ledger_sync(l, &err) < 0)
		die("ledger", err.msg);
	t0 = bench_now_ns() - t0;
	ledger_close(l);
	free(task);
	return (double)n / ((double)t0 / 1e9);
}

/* The baseline: the same two updates per result, a transaction each. */
static double
sqlite_rate(const char *path, unsigned long n)
{
	sqlite3_stmt *a, *t;
	unsigned long i;
	sqlite3 *db;
	int64_t t0;

	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db,
		"PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
		"CREATE TABLE tasks (id INTEGER PRIMARY KEY, state TEXT,"
		" outcome TEXT, costs TEXT, number INTEGER, finished_us "
		"INTEGER)"
		" STRICT;"
		"CREATE TABLE attempts (task_id INTEGER, attempt INTEGER,"
		" outcome TEXT, finished_us INTEGER,"
		" PRIMARY KEY (task_id, attempt)) STRICT;",
		NULL, NULL, NULL) != SQLITE_OK)
		die("sqlite", sqlite3_errmsg(db));
	for (i = 0; i < n; i++) {
		char sql[160];

		(void)snprintf(sql, sizeof(sql),
		    "INSERT INTO tasks (id, state) VALUES (%lu, 'running');"
		    "INSERT INTO attempts VALUES (%lu, 1, NULL, NULL);",
		    i + 1, i + 1);
		(void)sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	if (sqlite3_prepare_v2(db,
		"UPDATE tasks SET state = 'done', outcome = 'ok', costs = ?2,"
		" number = 27, finished_us = ?3 WHERE id = ?1",
		-1, &t, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
		"UPDATE attempts SET outcome = 'ok', finished_us = ?2"
		" WHERE task_id = ?1 AND attempt = 1",
		-1, &a, NULL) != SQLITE_OK)
		die("sqlite", sqlite3_errmsg(db));
	t0 = bench_now_ns();
	for (i = 0; i < n; i++) {
		(void)sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		(void)sqlite3_bind_int64(a, 1, (sqlite3_int64)i + 1);
		(void)sqlite3_bind_int64(a, 2, bench_now_ns());
		(void)sqlite3_step(a);
		(void)sqlite3_reset(a);
		(void)sqlite3_bind_int64(t, 1, (sqlite3_int64)i + 1);
		(void)sqlite3_bind_text(
		    t, 2, "[0.00143,0.00194,0.0026]", -1, SQLITE_STATIC);
		(void)sqlite3_bind_int64(t, 3, bench_now_ns());
		(void)sqlite3_step(t);
		(void)sqlite3_reset(t);
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			die("sqlite", sqlite3_errmsg(db));
	}
	t0 = bench_now_ns() - t0;
	sqlite3_finalize(a);
	sqlite3_finalize(t);
	sqlite3_close(db);
	return (double)n / ((double)t0 / 1e9);
}

static void
remove_db(const char *path)
{
	char p[600];

	(void)unlink(path);
	(void)snprintf(p, sizeof(p), "%s-wal", path);
	(void)unlink(p);
	(void)snprintf(p, sizeof(p), "%s-shm", path);
	(void)unlink(p);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"results", required_argument, NULL, 'n'},
	    {"batch", required_argument, NULL, 'b'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	unsigned long n = 2000, batch = 16;
	char lpath[512], spath[512];
	double mine, base;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			if (bench_ulong("--results", optarg, 1, 10000000, &n) <
			    0)
				return 2;
			break;
		case 'b':
			if (bench_ulong("--batch", optarg, 1, 100000, &batch) <
			    0)
				return 2;
			break;
		default:
			return 2;
		}
	}
	(void)snprintf(lpath, sizeof(lpath), "%s/bench-ledger-%ld.db", dir,
	    (long)getpid());
	(void)snprintf(spath, sizeof(spath), "%s/bench-sqlite-%ld.db", dir,
	    (long)getpid());
	mine = ledger_rate(lpath, n, batch);
	base = sqlite_rate(spath, n);
	printf("| ledger: task results committed (batches of %lu, group "
	       "commit, synchronous=FULL) | %.0f results/s | %.0f results/s "
	       "(sqlite, a transaction per result) | %.1f | never the "
	       "bottleneck |\n",
	    batch, mine, base, mine / base);
	remove_db(lpath);
	remove_db(spath);
	return 0;
}
