/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reads of the ledger's jobs and tasks (schema v5), on the loop thread's
 * read connection: for the API, and for recovering live jobs at start.
 * Like every read, they see committed rows; callers ledger_sync() first
 * when they must see their own writes.
 */
#include "config.h"

#include <errno.h>

#include <sqlite3.h>

#include "err.h"
#include "ledger.h"

static const char *
col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

#define JOB_COLUMNS                                                     \
	"SELECT id, key, user, priority, queue_timeout, state, ntasks," \
	" submitted_us, finished_us, tags FROM jobs"

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

/* Run prepared @st, calling @fn for each job row; finalizes @st. */
static int
each_job(sqlite3 *db, sqlite3_stmt *st, ledger_job_fn *fn, void *arg,
    struct npufarm_err *err)
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
		r = ledger_db_fail(db, err, "reading jobs");
	sqlite3_finalize(st);
	return r;
}

/*
 * Jobs newest first, at most @limit, optionally only in @state and of
 * @user (NULL: any).  @fn returning non-zero stops and is returned.
 */
int
ledger_foreach_job(struct ledger *l, const char *state, const char *user,
    int limit, ledger_job_fn *fn, void *arg, struct npufarm_err *err)
{
	sqlite3 *db = ledger_read_db(l);
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db,
		JOB_COLUMNS " WHERE (?1 IS NULL OR state = ?1) AND"
			    " (?2 IS NULL OR user = ?2) ORDER BY id DESC"
			    " LIMIT ?3",
		-1, &st, NULL) != SQLITE_OK)
		return ledger_db_fail(db, err, "reading jobs");
	(void)sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int(st, 3, limit);
	return each_job(db, st, fn, arg, err);
}

/* Job @id (one call of @fn), or -ENOENT. */
int
ledger_job_get(struct ledger *l, int64_t id, ledger_job_fn *fn, void *arg,
    struct npufarm_err *err)
{
	sqlite3 *db = ledger_read_db(l);
	struct ledger_job_row row;
	sqlite3_stmt *st;
	int rc, r;

	if (sqlite3_prepare_v2(
		db, JOB_COLUMNS " WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
		return ledger_db_fail(db, err, "reading a job");
	(void)sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		job_row(st, &row);
		r = fn(&row, arg);
	} else if (rc == SQLITE_DONE)
		r = err_set(err, -ENOENT, "no job %lld", (long long)id);
	else
		r = ledger_db_fail(db, err, "reading a job");
	sqlite3_finalize(st);
	return r;
}

/* Jobs that are queued or running: what a restarted broker takes up. */
int
ledger_foreach_live_job(
    struct ledger *l, ledger_job_fn *fn, void *arg, struct npufarm_err *err)
{
	sqlite3 *db = ledger_read_db(l);
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db,
		JOB_COLUMNS " WHERE state IN ('queued', 'running') ORDER BY id",
		-1, &st, NULL) != SQLITE_OK)
		return ledger_db_fail(db, err, "reading jobs");
	return each_job(db, st, fn, arg, err);
}

/* Every task of job @job_id, by index, with its board's name. */
int
ledger_foreach_task(struct ledger *l, int64_t job_id, ledger_task_fn *fn,
    void *arg, struct npufarm_err *err)
{
	sqlite3 *db = ledger_read_db(l);
	struct ledger_task_row row;
	sqlite3_stmt *st;
	int rc, r = 0;

	if (sqlite3_prepare_v2(db,
		"SELECT t.id, t.job_id, t.idx, t.name, t.runner, t.spec,"
		" t.state, t.outcome, t.attempts, t.board_id, b.name,"
		" t.costs, t.number, t.detail, t.queued_us, t.started_us,"
		" t.finished_us FROM tasks t LEFT JOIN boards b"
		" ON b.id = t.board_id WHERE t.job_id = ?1 ORDER BY t.idx",
		-1, &st, NULL) != SQLITE_OK)
		return ledger_db_fail(db, err, "reading tasks");
	(void)sqlite3_bind_int64(st, 1, job_id);
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
		r = ledger_db_fail(db, err, "reading tasks");
	sqlite3_finalize(st);
	return r;
}

/*
 * Task counts of job @job_id: @fn(state, outcome or NULL, count, @arg)
 * per group.
 */
int
ledger_task_counts(struct ledger *l, int64_t job_id, ledger_count_fn *fn,
    void *arg, struct npufarm_err *err)
{
	sqlite3 *db = ledger_read_db(l);
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db,
		"SELECT state, outcome, count(*) FROM tasks WHERE job_id = ?1"
		" GROUP BY 1, 2",
		-1, &st, NULL) != SQLITE_OK)
		return ledger_db_fail(db, err, "counting tasks");
	(void)sqlite3_bind_int64(st, 1, job_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fn(col_text(st, 0), col_text(st, 1), sqlite3_column_int(st, 2),
		    arg);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0
				 : ledger_db_fail(db, err, "counting tasks");
}
