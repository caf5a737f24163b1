/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sqlite ledger.  Schema changes are append-only entries of migrations[];
 * user_version records how many have run.  Statements are prepared once and
 * reset (and unbound) after every use, on every path, so no statement keeps
 * a read transaction open.
 */
#include "config.h"

#include "ledger.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "err.h"

static const char *const migrations[] = {
    /* 1: boards, leases, events and the documented views. */
    "CREATE TABLE boards ("
    "  id INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  address TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('idle', 'leased', 'busy',"
    "    'draining', 'quarantined', 'offline')),"
    "  first_seen_us INTEGER NOT NULL,"
    "  last_seen_us INTEGER NOT NULL,"
    "  detail TEXT,"
    "  UNIQUE (kind, key, address)"
    ") STRICT;"
    "CREATE TABLE leases ("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  peer TEXT NOT NULL,"
    "  priority REAL NOT NULL,"
    "  requested_us INTEGER NOT NULL,"
    "  granted_us INTEGER,"
    "  released_us INTEGER,"
    "  board_id INTEGER REFERENCES boards(id),"
    "  matchkey TEXT,"
    "  outcome TEXT CHECK (outcome IN ('ok', 'timeout', 'exception',"
    "    'crash', 'lost', 'cancelled', 'expired', 'rejected')),"
    "  detail TEXT"
    ") STRICT;"
    "CREATE INDEX leases_board ON leases (board_id, granted_us);"
    "CREATE INDEX leases_key ON leases (key, requested_us);"
    "CREATE INDEX leases_open ON leases (released_us) WHERE released_us IS "
    "NULL;"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  at_us INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  board_id INTEGER REFERENCES boards(id),"
    "  detail TEXT"
    ") STRICT;"
    "CREATE VIEW lease_times AS SELECT l.id, l.key, l.user, l.peer,"
    "  l.priority, b.name AS board,"
    "  strftime('%Y-%m-%dT%H:%M:%fZ', l.requested_us / 1e6, 'unixepoch')"
    "    AS requested,"
    "  (l.granted_us - l.requested_us) / 1e6 AS wait_s,"
    "  (l.released_us - l.granted_us) / 1e6 AS held_s,"
    "  l.outcome, l.detail"
    "  FROM leases l LEFT JOIN boards b ON b.id = l.board_id;"
    "CREATE VIEW free_boards AS SELECT key,"
    "  count(*) FILTER (WHERE state != 'offline') AS live,"
    "  count(*) FILTER (WHERE state = 'idle') AS free,"
    "  count(*) FILTER (WHERE state = 'leased') AS leased"
    "  FROM boards GROUP BY key;"
    "CREATE VIEW board_history AS SELECT b.id, b.key, b.name, b.state,"
    "  count(l.id) AS leases,"
    "  count(l.id) FILTER (WHERE l.outcome IS NOT NULL AND"
    "    l.outcome != 'ok') AS failures,"
    "  max(l.granted_us) AS last_granted_us"
    "  FROM boards b LEFT JOIN leases l ON l.board_id = b.id"
    "  GROUP BY b.id;",
};

#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

enum ledger_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_BOARD_UPSERT,
	ST_BOARD_STATE,
	ST_BOARDS_RESET,
	ST_LEASES_RESET,
	ST_LEASE_INSERT,
	ST_LEASE_RELEASE,
	ST_EVENT,
	ST_BOARDS_ALL,
	ST_LEASES_RECENT,
	ST_MAX,
};

static const char *const stmt_sql[ST_MAX] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_BOARD_UPSERT] =
	"INSERT INTO boards (kind, key, address, name, state,"
	" first_seen_us, last_seen_us) VALUES (?1, ?2, ?3, ?3, 'idle', ?4, ?4)"
	" ON CONFLICT (kind, key, address) DO UPDATE SET state = 'idle',"
	" last_seen_us = ?4, detail = NULL RETURNING id",
    [ST_BOARD_STATE] = "UPDATE boards SET state = ?2, detail = ?3,"
		       " last_seen_us = ?4 WHERE id = ?1",
    [ST_BOARDS_RESET] = "UPDATE boards SET state = 'offline',"
			" detail = 'broker restarted', last_seen_us = ?1"
			" WHERE state != 'offline'",
    [ST_LEASES_RESET] =
	"UPDATE leases SET released_us = ?1, detail = 'broker restarted"
	" while the lease was open; how the session ended was not observed'"
	" WHERE released_us IS NULL",
    [ST_LEASE_INSERT] =
	"INSERT INTO leases (key, user, peer, priority, requested_us,"
	" granted_us, released_us, board_id, matchkey, outcome, detail)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_LEASE_RELEASE] = "UPDATE leases SET released_us = ?2, outcome = ?3,"
			 " detail = ?4 WHERE id = ?1",
    [ST_EVENT] = "INSERT INTO events (at_us, kind, board_id, detail)"
		 " VALUES (?1, ?2, ?3, ?4)",
    [ST_BOARDS_ALL] = "SELECT id, kind, key, address, name, state,"
		      " first_seen_us, last_seen_us, detail FROM boards"
		      " ORDER BY key, name",
    [ST_LEASES_RECENT] =
	"SELECT l.id, l.key, l.user, l.peer, l.priority, l.requested_us,"
	" l.granted_us, l.released_us, l.board_id, b.name, l.matchkey,"
	" l.outcome, l.detail FROM leases l LEFT JOIN boards b"
	" ON b.id = l.board_id ORDER BY l.id DESC LIMIT ?1",
};

struct ledger {
	sqlite3 *db;
	sqlite3_stmt *st[ST_MAX];
	bool in_txn;            /* a BEGIN IMMEDIATE is open */
	ledger_dirty_fn *dirty; /* called when a transaction opens */
	void *dirty_arg;
};

static int
ledger_fail(struct ledger *l, struct npufarm_err *err, const char *what)
{
	int rc = sqlite3_extended_errcode(l->db);
	int code = -EIO;

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		code = -EBUSY;
	else if ((rc & 0xff) == SQLITE_NOMEM)
		code = -ENOMEM;
	return err_set(err, code, "ledger %s: %s (sqlite error %d)", what,
	    sqlite3_errmsg(l->db), rc);
}

static void
stmt_done(sqlite3_stmt *st)
{
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

/* Wall-clock microseconds since the epoch, as stored in the ledger. */
int64_t
ledger_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
exec_sql(struct ledger *l, const char *sql, struct npufarm_err *err)
{
	char *msg = NULL;
	int r;

	if (sqlite3_exec(l->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	r = err_set(err, -EIO, "ledger: %s", msg ? msg : "exec failed");
	sqlite3_free(msg);
	return r;
}

static int
migrate(struct ledger *l, struct npufarm_err *err)
{
	sqlite3_stmt *st = NULL;
	char sql[64];
	int version, r;
	size_t i;

	r = exec_sql(l, "BEGIN IMMEDIATE", err);
	if (r < 0)
		return r;
	if (sqlite3_prepare_v2(l->db, "PRAGMA user_version", -1, &st, NULL) !=
		SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		r = ledger_fail(l, err, "reading user_version");
		goto fail;
	}
	version = sqlite3_column_int(st, 0);
	if (version > (int)N_MIGRATIONS) {
		r = err_set(err, -EPROTONOSUPPORT,
		    "ledger schema version %d is newer than this broker "
		    "understands (%zu): refusing to open it",
		    version, N_MIGRATIONS);
		goto fail;
	}
	for (i = (size_t)version; i < N_MIGRATIONS; i++) {
		r = exec_sql(l, migrations[i], err);
		if (r < 0)
			goto fail;
	}
	(void)snprintf(
	    sql, sizeof(sql), "PRAGMA user_version = %zu", N_MIGRATIONS);
	r = exec_sql(l, sql, err);
	if (r < 0)
		goto fail;
	sqlite3_finalize(st);
	return exec_sql(l, "COMMIT", err);
fail:
	sqlite3_finalize(st);
	(void)sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/*
 * Open (creating if needed) the ledger at @path, apply pending migrations
 * and prepare every statement.  @sync_full selects synchronous=FULL (the
 * default: no committed row is lost on power failure) over NORMAL.  Returns
 * 0, -EIO/-EBUSY with sqlite's message, or -EPROTONOSUPPORT for a database
 * written by a newer broker.
 */
int
ledger_open(const char *path, bool sync_full, struct ledger **ret_ledger,
    struct npufarm_err *err)
{
	struct ledger *l;
	int r, i;

	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	if (sqlite3_open_v2(path, &l->db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX,
		NULL) != SQLITE_OK) {
		r = err_set(err, -EIO, "ledger '%s': %s", path,
		    l->db ? sqlite3_errmsg(l->db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(l->db, 1);
	sqlite3_busy_timeout(l->db, 5000);
	r = exec_sql(l, "PRAGMA journal_mode = WAL", err);
	if (r >= 0)
		r = exec_sql(l,
		    sync_full ? "PRAGMA synchronous = FULL"
			      : "PRAGMA synchronous = NORMAL",
		    err);
	if (r >= 0)
		r = exec_sql(l, "PRAGMA foreign_keys = ON", err);
	if (r >= 0)
		r = migrate(l, err);
	if (r < 0) {
		err_prefix(err, "ledger '%s': ", path);
		goto fail;
	}
	for (i = 0; i < ST_MAX; i++) {
		if (sqlite3_prepare_v3(l->db, stmt_sql[i], -1,
			SQLITE_PREPARE_PERSISTENT, &l->st[i],
			NULL) != SQLITE_OK) {
			r = ledger_fail(l, err, "prepare");
			goto fail;
		}
	}
	*ret_ledger = l;
	return 0;
fail:
	ledger_close(l);
	return r;
}

/*
 * Commit anything pending, finalize every statement and close.  Accepts
 * NULL; returns NULL.
 */
struct ledger *
ledger_close(struct ledger *l)
{
	int i, rc;

	if (l == NULL)
		return NULL;
	if (l->in_txn)
		(void)ledger_commit(l, NULL);
	for (i = 0; i < ST_MAX; i++)
		sqlite3_finalize(l->st[i]);
	if (l->db != NULL) {
		rc = sqlite3_close(l->db);
		assert(rc == SQLITE_OK);
		(void)rc;
	}
	free(l);
	return NULL;
}

/* Call @fn(@arg) whenever a write opens a new transaction. */
void
ledger_set_dirty_cb(struct ledger *l, ledger_dirty_fn *fn, void *arg)
{
	l->dirty = fn;
	l->dirty_arg = arg;
}

/* True while writes are waiting for ledger_commit(). */
bool
ledger_pending(const struct ledger *l)
{
	return l->in_txn;
}

static int
begin(struct ledger *l, struct npufarm_err *err)
{
	int rc;

	if (l->in_txn)
		return 0;
	rc = sqlite3_step(l->st[ST_BEGIN]);
	stmt_done(l->st[ST_BEGIN]);
	if (rc != SQLITE_DONE)
		return ledger_fail(l, err, "begin");
	l->in_txn = true;
	if (l->dirty != NULL)
		l->dirty(l->dirty_arg);
	return 0;
}

/*
 * Commit the open transaction, if any.  On failure the transaction is
 * rolled back (its writes are lost) and -EIO/-EBUSY is returned; the caller
 * logs it.
 */
int
ledger_commit(struct ledger *l, struct npufarm_err *err)
{
	int rc, r = 0;

	if (!l->in_txn)
		return 0;
	rc = sqlite3_step(l->st[ST_COMMIT]);
	stmt_done(l->st[ST_COMMIT]);
	if (rc != SQLITE_DONE) {
		r = ledger_fail(l, err, "commit");
		if (!sqlite3_get_autocommit(l->db)) {
			(void)sqlite3_step(l->st[ST_ROLLBACK]);
			stmt_done(l->st[ST_ROLLBACK]);
		}
	}
	l->in_txn = false;
	return r;
}

static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static int
bind_time(sqlite3_stmt *st, int i, int64_t us)
{
	if (us == 0)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_int64(st, i, us);
}

/*
 * Record that a board of @kind/@key at @address is online (idle), creating
 * its row the first time.  Returns its id in *ret_id.
 */
int
ledger_board_upsert(struct ledger *l, const char *kind, const char *key,
    const char *address, int64_t now_us, int64_t *ret_id,
    struct npufarm_err *err)
{
	sqlite3_stmt *st = l->st[ST_BOARD_UPSERT];
	int r;

	r = begin(l, err);
	if (r < 0)
		return r;
	if (bind_text(st, 1, kind) != SQLITE_OK ||
	    bind_text(st, 2, key) != SQLITE_OK ||
	    bind_text(st, 3, address) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, now_us) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		r = ledger_fail(l, err, "board upsert");
		goto out;
	}
	*ret_id = sqlite3_column_int64(st, 0);
out:
	stmt_done(st);
	return r;
}

/* Record a board state transition (state names: see the schema). */
int
ledger_board_state(struct ledger *l, int64_t id, const char *state,
    const char *detail, int64_t now_us, struct npufarm_err *err)
{
	sqlite3_stmt *st = l->st[ST_BOARD_STATE];
	int r;

	r = begin(l, err);
	if (r < 0)
		return r;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    bind_text(st, 2, state) != SQLITE_OK ||
	    bind_text(st, 3, detail) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, now_us) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE)
		r = ledger_fail(l, err, "board state");
	stmt_done(st);
	return r;
}

static int
step_done(struct ledger *l, enum ledger_stmt which, int64_t now_us,
    struct npufarm_err *err)
{
	sqlite3_stmt *st = l->st[which];
	int r = 0;

	if (sqlite3_bind_int64(st, 1, now_us) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE)
		r = ledger_fail(l, err, "reset");
	stmt_done(st);
	return r;
}

/*
 * At start-up: no registration survives a broker restart, so every board
 * still marked live becomes offline and every open lease is closed with a
 * detail saying its end was not observed.
 */
int
ledger_boards_reset(struct ledger *l, int64_t now_us, struct npufarm_err *err)
{
	int r;

	r = begin(l, err);
	if (r >= 0)
		r = step_done(l, ST_BOARDS_RESET, now_us, err);
	if (r >= 0)
		r = step_done(l, ST_LEASES_RESET, now_us, err);
	return r;
}

/* Insert a lease row (granted, or ended without a grant).  Returns its id. */
int
ledger_lease_insert(struct ledger *l, const struct ledger_lease *lease,
    int64_t *ret_id, struct npufarm_err *err)
{
	sqlite3_stmt *st = l->st[ST_LEASE_INSERT];
	int r;

	r = begin(l, err);
	if (r < 0)
		return r;
	if (bind_text(st, 1, lease->key) != SQLITE_OK ||
	    bind_text(st, 2, lease->user) != SQLITE_OK ||
	    bind_text(st, 3, lease->peer) != SQLITE_OK ||
	    sqlite3_bind_double(st, 4, lease->priority) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, lease->requested_us) != SQLITE_OK ||
	    bind_time(st, 6, lease->granted_us) != SQLITE_OK ||
	    bind_time(st, 7, lease->released_us) != SQLITE_OK ||
	    (lease->board_id != 0 &&
		sqlite3_bind_int64(st, 8, lease->board_id) != SQLITE_OK) ||
	    bind_text(st, 9, lease->matchkey) != SQLITE_OK ||
	    bind_text(st, 10, lease->outcome) != SQLITE_OK ||
	    bind_text(st, 11, lease->detail) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		r = ledger_fail(l, err, "lease insert");
		goto out;
	}
	*ret_id = sqlite3_last_insert_rowid(l->db);
out:
	stmt_done(st);
	return r;
}

/* Close lease @id at @released_us; @outcome NULL when not observed. */
int
ledger_lease_release(struct ledger *l, int64_t id, int64_t released_us,
    const char *outcome, const char *detail, struct npufarm_err *err)
{
	sqlite3_stmt *st = l->st[ST_LEASE_RELEASE];
	int r;

	r = begin(l, err);
	if (r < 0)
		return r;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, released_us) != SQLITE_OK ||
	    bind_text(st, 3, outcome) != SQLITE_OK ||
	    bind_text(st, 4, detail) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE)
		r = ledger_fail(l, err, "lease release");
	stmt_done(st);
	return r;
}

/* Append to the event log; @board_id 0 for none. */
int
ledger_event(struct ledger *l, const char *kind, int64_t board_id,
    const char *detail, int64_t now_us, struct npufarm_err *err)
{
	sqlite3_stmt *st = l->st[ST_EVENT];
	int r;

	r = begin(l, err);
	if (r < 0)
		return r;
	if (sqlite3_bind_int64(st, 1, now_us) != SQLITE_OK ||
	    bind_text(st, 2, kind) != SQLITE_OK ||
	    (board_id != 0 &&
		sqlite3_bind_int64(st, 3, board_id) != SQLITE_OK) ||
	    bind_text(st, 4, detail) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE)
		r = ledger_fail(l, err, "event");
	stmt_done(st);
	return r;
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/*
 * Call @fn for every board, ordered by key then name.  Stops early and
 * returns @fn's value when it returns non-zero.
 */
int
ledger_foreach_board(
    struct ledger *l, ledger_board_fn *fn, void *arg, struct npufarm_err *err)
{
	sqlite3_stmt *st = l->st[ST_BOARDS_ALL];
	int rc, r = 0;

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
		};

		r = fn(&b, arg);
		if (r != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = ledger_fail(l, err, "board query");
	stmt_done(st);
	return r;
}

/* Call @fn for the @limit most recent leases, newest first. */
int
ledger_foreach_lease(struct ledger *l, int limit, ledger_lease_fn *fn,
    void *arg, struct npufarm_err *err)
{
	sqlite3_stmt *st = l->st[ST_LEASES_RECENT];
	int rc, r = 0;

	if (sqlite3_bind_int(st, 1, limit) != SQLITE_OK) {
		r = ledger_fail(l, err, "lease query");
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
		};

		r = fn(&x, arg);
		if (r != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = ledger_fail(l, err, "lease query");
out:
	stmt_done(st);
	return r;
}
