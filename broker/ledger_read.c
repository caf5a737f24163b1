/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ledger's reads, on the loop thread's own connection (WAL: it sees
 * every transaction the writer committed before the read began, never a
 * half-written batch).  Every query is prepared once at open, reset and
 * unbound after every use on every path, so none keeps a read transaction
 * open.  A query run again from inside its own row callback gets a
 * statement of its own for that call.
 */
#include "config.h"

#include "ledger_read.h"

#include <errno.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "err.h"

enum rd_stmt {
	RD_BOARDS_ALL,
	RD_LEASES_RECENT,
	RD_JOBS,
	RD_JOB_ONE,
	RD_JOBS_LIVE,
	RD_TASKS,
	RD_TASK_COUNTS,
	RD_LIVE_BYTES,
	RD_MAX,
};

#define JOB_COLUMNS                                                     \
	"SELECT id, key, user, priority, queue_timeout, state, ntasks," \
	" submitted_us, finished_us, tags FROM jobs"

static const char *const rd_sql[RD_MAX] = {
    [RD_BOARDS_ALL] =
	"SELECT id, kind, key, address, name, state,"
	" first_seen_us, last_seen_us, detail, drained, tags,"
	" coalesce((SELECT s.leases FROM board_leases s"
	"  WHERE s.board_id = boards.id), 0) +"
	" (SELECT count(*) FROM attempts a WHERE a.board_id = boards.id),"
	" (SELECT count(*) FROM leases l WHERE l.board_id = boards.id AND"
	"  (" LEASE_FAILED ")) +"
	" (SELECT count(*) FROM attempts a WHERE a.board_id = boards.id AND"
	"  a.outcome IN ('timeout', 'exception', 'crash', 'lost', 'wrong'))"
	" FROM boards ORDER BY key, name",
    [RD_LEASES_RECENT] =
	"SELECT l.id, l.key, l.user, l.peer, l.priority, l.requested_us,"
	" l.granted_us, l.released_us, l.board_id, b.name, l.matchkey,"
	" l.outcome, l.detail, l.session_start_us, l.requests, l.exceptions,"
	" l.bytes_to_board, l.bytes_to_client FROM leases l LEFT JOIN boards b"
	" ON b.id = l.board_id ORDER BY l.id DESC LIMIT :limit",
    [RD_JOBS] = JOB_COLUMNS " WHERE (:state IS NULL OR state = :state) AND"
			    " (:user IS NULL OR user = :user) ORDER BY id DESC"
			    " LIMIT :limit",
    [RD_JOB_ONE] = JOB_COLUMNS " WHERE id = :id",
    [RD_JOBS_LIVE] =
	JOB_COLUMNS " WHERE state IN ('queued', 'running') ORDER BY id",
    [RD_TASKS] =
	"SELECT t.id, t.job_id, t.idx, t.name, t.runner, t.spec,"
	" t.state, t.outcome, t.attempts, t.board_id, b.name,"
	" t.costs, t.number, t.detail, t.queued_us, t.started_us,"
	" t.finished_us FROM tasks t LEFT JOIN boards b"
	" ON b.id = t.board_id WHERE t.job_id = :job_id ORDER BY t.idx",
    [RD_TASK_COUNTS] = "SELECT state, outcome, count(*) FROM tasks"
		       " WHERE job_id = :job_id GROUP BY 1, 2",
    [RD_LIVE_BYTES] = "SELECT (SELECT page_count FROM pragma_page_count()) -"
		      " (SELECT freelist_count FROM pragma_freelist_count()),"
		      " (SELECT page_size FROM pragma_page_size())",
};

struct ledger_read {
	sqlite3 *db;
	sqlite3_stmt *st[RD_MAX];
};

static int
db_fail(sqlite3 *db, struct npufarm_err *err, const char *what)
{
	int rc = sqlite3_extended_errcode(db);
	int code = -EIO;

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		code = -EBUSY;
	else if ((rc & 0xff) == SQLITE_NOMEM)
		code = -ENOMEM;
	return err_set(err, code, "ledger %s: %s (sqlite error %d)", what,
	    sqlite3_errmsg(db), rc);
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/*
 * The statement of query @q for one call: the prepared one, or, while that
 * one is running further up the stack, a fresh one in *@tmp that the
 * caller finalizes in stmt_put().  NULL with @err on failure.
 */
static sqlite3_stmt *
stmt_get(struct ledger_read *rd, enum rd_stmt q, sqlite3_stmt **tmp,
    struct npufarm_err *err)
{
	*tmp = NULL;
	if (!sqlite3_stmt_busy(rd->st[q]))
		return rd->st[q];
	if (sqlite3_prepare_v2(rd->db, rd_sql[q], -1, tmp, NULL) != SQLITE_OK) {
		(void)db_fail(rd->db, err, "prepare");
		return NULL;
	}
	return *tmp;
}

static void
stmt_put(sqlite3_stmt *st, sqlite3_stmt *tmp)
{
	if (tmp != NULL) {
		sqlite3_finalize(tmp);
		return;
	}
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

static int
bind_text(sqlite3_stmt *st, const char *name, const char *v)
{
	int i = sqlite3_bind_parameter_index(st, name);

	return v == NULL ? sqlite3_bind_null(st, i)
			 : sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static int
bind_int(sqlite3_stmt *st, const char *name, int64_t v)
{
	return sqlite3_bind_int64(
	    st, sqlite3_bind_parameter_index(st, name), v);
}

/*
 * Open the read connection to the ledger at @path (already migrated by
 * ledger_open()) and prepare every query.  0 or -EIO/-ENOMEM with @err.
 */
int
ledger_read_open(
    const char *path, struct ledger_read **ret, struct npufarm_err *err)
{
	struct ledger_read *rd = calloc(1, sizeof(*rd));
	int i, r;

	if (rd == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	if (sqlite3_open_v2(path, &rd->db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
		NULL) != SQLITE_OK) {
		r = err_set(err, -EIO, "%s",
		    rd->db ? sqlite3_errmsg(rd->db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(rd->db, 1);
	sqlite3_busy_timeout(rd->db, 5000);
	for (i = 0; i < RD_MAX; i++)
		if (sqlite3_prepare_v3(rd->db, rd_sql[i], -1,
			SQLITE_PREPARE_PERSISTENT, &rd->st[i],
			NULL) != SQLITE_OK) {
			r = db_fail(rd->db, err, "prepare");
			goto fail;
		}
	*ret = rd;
	return 0;
fail:
	ledger_read_close(rd);
	return r;
}

/* Finalize every query and close.  Accepts NULL; returns NULL. */
struct ledger_read *
ledger_read_close(struct ledger_read *rd)
{
	int i;

	if (rd == NULL)
		return NULL;
	for (i = 0; i < RD_MAX; i++)
		sqlite3_finalize(rd->st[i]);
	(void)sqlite3_close(rd->db);
	free(rd);
	return NULL;
}

/* ledger_foreach_board() */
int
ledger_read_boards(struct ledger_read *rd, ledger_board_fn *fn, void *arg,
    struct npufarm_err *err)
{
	sqlite3_stmt *tmp, *st = stmt_get(rd, RD_BOARDS_ALL, &tmp, err);
	int rc, r = 0;

	if (st == NULL)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct ledger_board b = {
		    .id = sqlite3_column_int64(st, 0),
		    .kind = col_text(st, 1),
		    .key = col_text(st, 2),
		    .address = col_text(st, 3),
		    .name = col_text(st, 4),
		    .state = col_text(st, 5),
		    .first_seen_us = sqlite3_column_int64(st, 6),
		    .last_seen_us = sqlite3_column_int64(st, 7),
		    .detail = col_text(st, 8),
		    .drained = sqlite3_column_int(st, 9) != 0,
		    .tags = col_text(st, 10),
		    .runs = sqlite3_column_int64(st, 11),
		    .failures = sqlite3_column_int64(st, 12),
		};

		r = fn(&b, arg);
		if (r != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_fail(rd->db, err, "board query");
	stmt_put(st, tmp);
	return r;
}

/* ledger_foreach_lease() */
int
ledger_read_leases(struct ledger_read *rd, int limit, ledger_lease_fn *fn,
    void *arg, struct npufarm_err *err)
{
	sqlite3_stmt *tmp, *st = stmt_get(rd, RD_LEASES_RECENT, &tmp, err);
	int rc = SQLITE_DONE, r = 0;

	if (st == NULL)
		return -EIO;
	if (bind_int(st, ":limit", limit) != SQLITE_OK) {
		r = db_fail(rd->db, err, "lease query");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct ledger_lease x = {
		    .id = sqlite3_column_int64(st, 0),
		    .key = col_text(st, 1),
		    .user = col_text(st, 2),
		    .peer = col_text(st, 3),
		    .priority = sqlite3_column_double(st, 4),
		    .requested_us = sqlite3_column_int64(st, 5),
		    .granted_us = sqlite3_column_int64(st, 6),
		    .released_us = sqlite3_column_int64(st, 7),
		    .board_id = sqlite3_column_int64(st, 8),
		    .board = col_text(st, 9),
		    .matchkey = col_text(st, 10),
		    .outcome = col_text(st, 11),
		    .detail = col_text(st, 12),
		    .session =
			{
			    .start_us = sqlite3_column_int64(st, 13),
			    .end_us = sqlite3_column_int64(st, 7),
			    .requests = (uint64_t)sqlite3_column_int64(st, 14),
			    .exceptions =
				(uint64_t)sqlite3_column_int64(st, 15),
			    .bytes_to_board =
				(uint64_t)sqlite3_column_int64(st, 16),
			    .bytes_to_client =
				(uint64_t)sqlite3_column_int64(st, 17),
			},
		};

		r = fn(&x, arg);
		if (r != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_fail(rd->db, err, "lease query");
out:
	stmt_put(st, tmp);
	return r;
}

static void
job_row(sqlite3_stmt *st, struct ledger_job_row *row)
{
	*row = (struct ledger_job_row){
	    .id = sqlite3_column_int64(st, 0),
	    .key = col_text(st, 1),
	    .user = col_text(st, 2),
	    .priority = sqlite3_column_double(st, 3),
	    .queue_timeout = sqlite3_column_double(st, 4),
	    .state = col_text(st, 5),
	    .ntasks = sqlite3_column_int(st, 6),
	    .submitted_us = sqlite3_column_int64(st, 7),
	    .finished_us = sqlite3_column_int64(st, 8),
	    .tags = col_text(st, 9),
	};
}

/* Run bound @st, calling @fn for each job row; then puts @st back. */
static int
each_job(struct ledger_read *rd, sqlite3_stmt *st, sqlite3_stmt *tmp,
    ledger_job_fn *fn, void *arg, struct npufarm_err *err)
{
	struct ledger_job_row row;
	int rc, r = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		job_row(st, &row);
		r = fn(&row, arg);
		if (r != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_fail(rd->db, err, "reading jobs");
	stmt_put(st, tmp);
	return r;
}

/* ledger_foreach_job() */
int
ledger_read_jobs(struct ledger_read *rd, const char *state, const char *user,
    int limit, ledger_job_fn *fn, void *arg, struct npufarm_err *err)
{
	sqlite3_stmt *tmp, *st = stmt_get(rd, RD_JOBS, &tmp, err);

	if (st == NULL)
		return -EIO;
	if (bind_text(st, ":state", state) != SQLITE_OK ||
	    bind_text(st, ":user", user) != SQLITE_OK ||
	    bind_int(st, ":limit", limit) != SQLITE_OK) {
		stmt_put(st, tmp);
		return db_fail(rd->db, err, "reading jobs");
	}
	return each_job(rd, st, tmp, fn, arg, err);
}

/* ledger_job_get() */
int
ledger_read_job(struct ledger_read *rd, int64_t id, ledger_job_fn *fn,
    void *arg, struct npufarm_err *err)
{
	sqlite3_stmt *tmp, *st = stmt_get(rd, RD_JOB_ONE, &tmp, err);
	struct ledger_job_row row;
	int rc, r;

	if (st == NULL)
		return -EIO;
	rc = bind_int(st, ":id", id) == SQLITE_OK ? sqlite3_step(st)
						  : SQLITE_ERROR;
	if (rc == SQLITE_ROW) {
		job_row(st, &row);
		r = fn(&row, arg);
	} else if (rc == SQLITE_DONE)
		r = err_set(err, -ENOENT, "no job %lld", (long long)id);
	else
		r = db_fail(rd->db, err, "reading a job");
	stmt_put(st, tmp);
	return r;
}

/* ledger_foreach_live_job() */
int
ledger_read_live_jobs(struct ledger_read *rd, ledger_job_fn *fn, void *arg,
    struct npufarm_err *err)
{
	sqlite3_stmt *tmp, *st = stmt_get(rd, RD_JOBS_LIVE, &tmp, err);

	if (st == NULL)
		return -EIO;
	return each_job(rd, st, tmp, fn, arg, err);
}

/* ledger_foreach_task() */
int
ledger_read_tasks(struct ledger_read *rd, int64_t job_id, ledger_task_fn *fn,
    void *arg, struct npufarm_err *err)
{
	sqlite3_stmt *tmp, *st = stmt_get(rd, RD_TASKS, &tmp, err);
	struct ledger_task_row row;
	int rc = SQLITE_DONE, r = 0;

	if (st == NULL)
		return -EIO;
	if (bind_int(st, ":job_id", job_id) != SQLITE_OK) {
		r = db_fail(rd->db, err, "reading tasks");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row = (struct ledger_task_row){
		    .id = sqlite3_column_int64(st, 0),
		    .job_id = sqlite3_column_int64(st, 1),
		    .idx = sqlite3_column_int(st, 2),
		    .name = col_text(st, 3),
		    .runner = col_text(st, 4),
		    .spec = col_text(st, 5),
		    .state = col_text(st, 6),
		    .outcome = col_text(st, 7),
		    .attempts = sqlite3_column_int(st, 8),
		    .board_id = sqlite3_column_int64(st, 9),
		    .board = col_text(st, 10),
		    .costs = col_text(st, 11),
		    .number = sqlite3_column_int64(st, 12),
		    .detail = col_text(st, 13),
		    .queued_us = sqlite3_column_int64(st, 14),
		    .started_us = sqlite3_column_int64(st, 15),
		    .finished_us = sqlite3_column_int64(st, 16),
		};
		r = fn(&row, arg);
		if (r != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_fail(rd->db, err, "reading tasks");
out:
	stmt_put(st, tmp);
	return r;
}

/* ledger_task_counts() */
int
ledger_read_task_counts(struct ledger_read *rd, int64_t job_id,
    ledger_count_fn *fn, void *arg, struct npufarm_err *err)
{
	sqlite3_stmt *tmp, *st = stmt_get(rd, RD_TASK_COUNTS, &tmp, err);
	int rc = SQLITE_ERROR;

	if (st == NULL)
		return -EIO;
	if (bind_int(st, ":job_id", job_id) == SQLITE_OK)
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			fn(col_text(st, 0), col_text(st, 1),
			    sqlite3_column_int(st, 2), arg);
	rc = rc == SQLITE_DONE ? 0 : db_fail(rd->db, err, "counting tasks");
	stmt_put(st, tmp);
	return rc;
}

/* ledger_live_bytes() */
int64_t
ledger_read_live_bytes(struct ledger_read *rd)
{
	sqlite3_stmt *tmp, *st = stmt_get(rd, RD_LIVE_BYTES, &tmp, NULL);
	int64_t n = -EIO;

	if (st == NULL)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0) * sqlite3_column_int64(st, 1);
	stmt_put(st, tmp);
	return n;
}
