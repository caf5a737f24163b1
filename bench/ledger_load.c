/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-bench-ledger: the ledger's commit throughput, the way the broker
 * writes it (task results grouped per loop iteration, committed by the
 * writer thread, synchronous=FULL, WAL), against the baseline of the same
 * rows written by plain sqlite, one transaction per result (what a naive
 * server that commits before each acknowledgement would do), in the same
 * run and on the same file system.  Prints markdown table rows.
 *
 * Then the CPU the writer thread spends per TVM lease cycle (a grant's
 * row and its release, the two writes of every cycle), against the same
 * rows written the plain way, an INSERT and an UPDATE per cycle with one
 * transaction per batch, on the same thread that measures it.
 *
 * The leases go round @boards boards (64: the tracker bench's servers), so
 * each commit touches as many boards' rows of board_leases (before schema
 * version 8: leaves of the leases_board index) as the broker's do.
 *
 *   npufarm-bench-ledger [--dir DIR] [--results N] [--batch K]
 *       [--leases N] [--lease-batch K] [--boards B]
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
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

/* CPU seconds of this process's threads other than the caller's. */
static double
other_threads_cpu_s(void)
{
	long me = syscall(SYS_gettid), hz = sysconf(_SC_CLK_TCK);
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	double s = 0;

	if (d == NULL)
		die("/proc/self/task", strerror(errno));
	while ((e = readdir(d)) != NULL) {
		char p[300], buf[1024], *q;
		unsigned long ut, st;
		size_t n;
		FILE *f;

		if (e->d_name[0] == '.' || atol(e->d_name) == me)
			continue;
		(void)snprintf(
		    p, sizeof(p), "/proc/self/task/%s/stat", e->d_name);
		f = fopen(p, "re");
		if (f == NULL)
			continue; /* gone meanwhile */
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		q = strrchr(buf, ')');
		if (q != NULL &&
		    sscanf(q + 2,
			"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			&ut, &st) == 2)
			s += (double)(ut + st) / (double)hz;
	}
	closedir(d);
	return s;
}

static double
thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const struct ledger_lease lease_row = {
    .key = "rk3588",
    .user = "127.0.0.1",
    .peer = "127.0.0.1:40000",
    .priority = 1,
    .matchkey = "rk3588:0.1234567",
};

/* @nboards boards of key rk3588, their ids in @board. */
static void
add_boards(struct ledger *l, int64_t *board, unsigned long nboards)
{
	struct npufarm_err err;
	unsigned long i;

	for (i = 0; i < nboards; i++) {
		char addr[32];

		(void)snprintf(addr, sizeof(addr), "127.0.0.1:%lu", 9091 + i);
		if (ledger_board_upsert(l, "tvm", "rk3588", addr,
			ledger_now_us(), &board[i], NULL, &err) < 0)
			die("ledger", err.msg);
	}
}

/*
 * The broker's way: @n lease cycles (each granted lease released in the
 * next cycle, as a board that comes back at once), @batch per group
 * commit, round @nboards boards.  Returns the writer thread's CPU per
 * cycle, seconds.
 */
static double
lease_writer_cpu(const char *path, unsigned long n, unsigned long batch,
    unsigned long nboards)
{
	struct ledger_lease row = lease_row;
	struct npufarm_err err;
	struct ledger *l = NULL;
	int64_t *board, id, prev = 0;
	unsigned long i;
	double c0;

	board = calloc(nboards, sizeof(*board));
	if (board == NULL)
		die("ledger", "out of memory");
	if (ledger_open(path, true, &l, &err) < 0)
		die("ledger", err.msg);
	add_boards(l, board, nboards);
	if (ledger_sync(l, &err) < 0)
		die("ledger", err.msg);
	c0 = other_threads_cpu_s();
	for (i = 0; i < n; i++) {
		row.board_id = board[i % nboards];
		row.requested_us = ledger_now_us();
		row.granted_us = row.requested_us + 5;
		if (ledger_lease_insert(l, &row, &id, &err) < 0 ||
		    (prev != 0 && ledger_lease_release(l, prev, ledger_now_us(),
				      NULL, NULL, &err) < 0))
			die("ledger", err.msg);
		prev = id;
		if ((i + 1) % batch == 0 && ledger_sync(l, &err) < 0)
			die("ledger", err.msg);
	}
	if (ledger_sync(l, &err) < 0)
		die("ledger", err.msg);
	c0 = other_threads_cpu_s() - c0;
	ledger_close(l);
	free(board);
	return c0 / (double)n;
}

/*
 * The baseline: the same rows in the ledger's own schema, written as an
 * INSERT and an UPDATE per cycle with the writer's statements, a
 * transaction per @batch, on this thread.  CPU per cycle, seconds.
 */
static double
lease_plain_cpu(const char *path, unsigned long n, unsigned long batch,
    unsigned long nboards)
{
	struct npufarm_err err;
	struct ledger *l = NULL;
	sqlite3_stmt *ins, *rel;
	unsigned long i;
	int64_t *board;
	sqlite3 *db;
	double c0;

	/* The schema, and the boards, from the ledger itself. */
	board = calloc(nboards, sizeof(*board));
	if (board == NULL)
		die("ledger", "out of memory");
	if (ledger_open(path, true, &l, &err) < 0)
		die("ledger", err.msg);
	add_boards(l, board, nboards);
	ledger_close(l);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db,
		"PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;", NULL,
		NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
		"INSERT INTO leases (id, key, user, peer, priority,"
		" requested_us, granted_us, released_us, board_id, matchkey,"
		" outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL,"
		" ?8, ?9, NULL, NULL)",
		-1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
		"UPDATE leases SET released_us = ?2, outcome = NULL,"
		" detail = NULL WHERE id = ?1",
		-1, &rel, NULL) != SQLITE_OK)
		die("sqlite", sqlite3_errmsg(db));
	c0 = thread_cpu_s();
	(void)sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (i = 0; i < n; i++) {
		int64_t now = ledger_now_us();

		(void)sqlite3_bind_int64(ins, 1, (sqlite3_int64)i + 1);
		(void)sqlite3_bind_text(
		    ins, 2, lease_row.key, -1, SQLITE_STATIC);
		(void)sqlite3_bind_text(
		    ins, 3, lease_row.user, -1, SQLITE_STATIC);
		(void)sqlite3_bind_text(
		    ins, 4, lease_row.peer, -1, SQLITE_STATIC);
		(void)sqlite3_bind_double(ins, 5, lease_row.priority);
		(void)sqlite3_bind_int64(ins, 6, now);
		(void)sqlite3_bind_int64(ins, 7, now + 5);
		(void)sqlite3_bind_int64(ins, 8, board[i % nboards]);
		(void)sqlite3_bind_text(
		    ins, 9, lease_row.matchkey, -1, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			die("sqlite", sqlite3_errmsg(db));
		(void)sqlite3_reset(ins);
		if (i > 0) {
			(void)sqlite3_bind_int64(rel, 1, (sqlite3_int64)i);
			(void)sqlite3_bind_int64(rel, 2, ledger_now_us());
			if (sqlite3_step(rel) != SQLITE_DONE)
				die("sqlite", sqlite3_errmsg(db));
			(void)sqlite3_reset(rel);
		}
		if ((i + 1) % batch == 0 &&
		    (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) !=
			    SQLITE_OK ||
			sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
			    SQLITE_OK))
			die("sqlite", sqlite3_errmsg(db));
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		die("sqlite", sqlite3_errmsg(db));
	c0 = thread_cpu_s() - c0;
	sqlite3_finalize(ins);
	sqlite3_finalize(rel);
	sqlite3_close(db);
	free(board);
	return c0 / (double)n;
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
	    {"leases", required_argument, NULL, 'L'},
	    {"lease-batch", required_argument, NULL, 'B'},
	    {"boards", required_argument, NULL, 'O'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	unsigned long n = 2000, batch = 16, leases = 50000, lbatch = 64;
	unsigned long nboards = 64;
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
		case 'L':
			if (bench_ulong(
				"--leases", optarg, 1, 10000000, &leases) < 0)
				return 2;
			break;
		case 'B':
			if (bench_ulong("--lease-batch", optarg, 1, 100000,
				&lbatch) < 0)
				return 2;
			break;
		case 'O':
			if (bench_ulong(
				"--boards", optarg, 1, 100000, &nboards) < 0)
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
	mine = lease_writer_cpu(lpath, leases, lbatch, nboards);
	base = lease_plain_cpu(spath, leases, lbatch, nboards);
	printf("| ledger: writer CPU per lease cycle (a grant and its release, "
	       "batches of %lu, %lu boards, synchronous=FULL) | %.2f us | "
	       "%.2f us (the same rows as an INSERT and an UPDATE, plain "
	       "sqlite) | %.2f | - |\n",
	    lbatch, nboards, mine * 1e6, base * 1e6, mine / base);
	remove_db(lpath);
	remove_db(spath);
	return 0;
}
