/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sqlite ledger with a writer thread.
 *
 * Loop thread: the id counters, a map of known boards, the batch being
 * filled, and the reads (ledger_read.c: a connection of their own that
 * sees committed transactions; migrations run on a set-up connection at
 * open).  Writer thread: its own connection and the prepared write
 * statements; it takes every submitted batch, runs them in one BEGIN
 * IMMEDIATE ... COMMIT, and records how far it got.  The two share only
 * the queue of submitted batches and the progress counters, under one
 * mutex.
 *
 * Schema changes are append-only entries of migrations[]; user_version
 * records how many have run.  Statements are reset after every use, on
 * every path, so no statement keeps a read transaction open.  The writes
 * are not unbound: bind_op() binds every parameter before each step.
 */
#include "config.h"

#include "ledger.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <search.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "err.h"
#include "hist.h"
#include "ledger_read.h"
#include "log.h"
#include "tags.h"

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
    /* 2: sessions relayed by the broker (TVM RPC proxy). */
    "ALTER TABLE leases ADD COLUMN session_start_us INTEGER;"
    "ALTER TABLE leases ADD COLUMN requests INTEGER;"
    "ALTER TABLE leases ADD COLUMN exceptions INTEGER;"
    "ALTER TABLE leases ADD COLUMN bytes_to_board INTEGER;"
    "ALTER TABLE leases ADD COLUMN bytes_to_client INTEGER;"
    "DROP VIEW lease_times;"
    "CREATE VIEW lease_times AS SELECT l.id, l.key, l.user, l.peer,"
    "  l.priority, b.name AS board,"
    "  strftime('%Y-%m-%dT%H:%M:%fZ', l.requested_us / 1e6, 'unixepoch')"
    "    AS requested,"
    "  (l.granted_us - l.requested_us) / 1e6 AS wait_s,"
    "  (l.released_us - l.granted_us) / 1e6 AS held_s,"
    "  (l.released_us - l.session_start_us) / 1e6 AS session_s,"
    "  l.requests, l.exceptions, l.bytes_to_board, l.bytes_to_client,"
    "  l.outcome, l.detail"
    "  FROM leases l LEFT JOIN boards b ON b.id = l.board_id;",
    /* 3: operators drain boards; the mark survives restarts. */
    "ALTER TABLE boards ADD COLUMN drained INTEGER NOT NULL DEFAULT 0"
    "  CHECK (drained IN (0, 1));",
    /* 4: sessions an npufarm agent supervised and reported. */
    "ALTER TABLE leases ADD COLUMN agent_session TEXT;"
    "ALTER TABLE leases ADD COLUMN reported_us INTEGER;"
    "ALTER TABLE leases ADD COLUMN exit_signal INTEGER;"
    "ALTER TABLE leases ADD COLUMN exit_status INTEGER;"
    "ALTER TABLE leases ADD COLUMN session_timeout REAL;"
    "CREATE INDEX leases_agent_session ON leases (board_id, agent_session)"
    "  WHERE agent_session IS NOT NULL;",
    /* 5: native tuning jobs, their tasks and attempts, and artifacts. */
    "CREATE TABLE artifacts ("
    "  sha256 TEXT PRIMARY KEY,"
    "  size INTEGER NOT NULL,"
    "  stored_us INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  peer TEXT,"
    "  priority REAL NOT NULL,"
    "  queue_timeout REAL NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done',"
    "    'cancelled')),"
    "  ntasks INTEGER NOT NULL,"
    "  submitted_us INTEGER NOT NULL,"
    "  finished_us INTEGER"
    ") STRICT;"
    "CREATE INDEX jobs_state ON jobs (state);"
    "CREATE TABLE tasks ("
    "  id INTEGER PRIMARY KEY,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  idx INTEGER NOT NULL,"
    "  name TEXT,"
    "  runner TEXT NOT NULL,"
    "  spec TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done')),"
    "  outcome TEXT CHECK (outcome IN ('ok', 'timeout', 'exception',"
    "    'crash', 'lost', 'cancelled', 'expired', 'rejected')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  board_id INTEGER REFERENCES boards(id),"
    "  costs TEXT,"
    "  number INTEGER,"
    "  detail TEXT,"
    "  queued_us INTEGER NOT NULL,"
    "  started_us INTEGER,"
    "  finished_us INTEGER,"
    "  UNIQUE (job_id, idx)"
    ") STRICT;"
    "CREATE INDEX tasks_open ON tasks (job_id) WHERE state != 'done';"
    "CREATE TABLE attempts ("
    "  task_id INTEGER NOT NULL REFERENCES tasks(id),"
    "  attempt INTEGER NOT NULL,"
    "  board_id INTEGER REFERENCES boards(id),"
    "  started_us INTEGER NOT NULL,"
    "  finished_us INTEGER,"
    "  outcome TEXT,"
    "  detail TEXT,"
    "  exit_signal INTEGER,"
    "  exit_status INTEGER,"
    "  PRIMARY KEY (task_id, attempt)"
    ") STRICT;"
    "CREATE VIEW task_results AS SELECT t.job_id, t.idx, t.name, t.outcome,"
    "  t.attempts, b.name AS board, t.number, t.costs,"
    "  (t.started_us - t.queued_us) / 1e6 AS queued_s,"
    "  (t.finished_us - t.started_us) / 1e6 AS run_s, t.detail"
    "  FROM tasks t LEFT JOIN boards b ON b.id = t.board_id;",
    /* 6 (issue 11): the outcome `wrong`; tags of boards and jobs; who
     * drained a board; views that count tasks and sessions together;
     * events with ISO times; candidates with their best and median. */
    "CREATE TABLE tasks_v6 ("
    "  id INTEGER PRIMARY KEY,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  idx INTEGER NOT NULL,"
    "  name TEXT,"
    "  runner TEXT NOT NULL,"
    "  spec TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done')),"
    "  outcome TEXT CHECK (outcome IN ('ok', 'timeout', 'exception',"
    "    'crash', 'lost', 'cancelled', 'expired', 'rejected', 'wrong')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  board_id INTEGER REFERENCES boards(id),"
    "  costs TEXT,"
    "  number INTEGER,"
    "  detail TEXT,"
    "  queued_us INTEGER NOT NULL,"
    "  started_us INTEGER,"
    "  finished_us INTEGER,"
    "  UNIQUE (job_id, idx)"
    ") STRICT;"
    "INSERT INTO tasks_v6 SELECT * FROM tasks;"
    "DROP VIEW task_results;"
    "DROP TABLE tasks;"
    "ALTER TABLE tasks_v6 RENAME TO tasks;"
    "CREATE INDEX tasks_open ON tasks (job_id) WHERE state != 'done';"
    "CREATE VIEW task_results AS SELECT t.job_id, t.idx, t.name, t.outcome,"
    "  t.attempts, b.name AS board, t.number, t.costs,"
    "  (t.started_us - t.queued_us) / 1e6 AS queued_s,"
    "  (t.finished_us - t.started_us) / 1e6 AS run_s, t.detail"
    "  FROM tasks t LEFT JOIN boards b ON b.id = t.board_id;"
    "ALTER TABLE boards ADD COLUMN tags TEXT;"
    "ALTER TABLE jobs ADD COLUMN tags TEXT;"
    "ALTER TABLE events ADD COLUMN actor TEXT;"
    "DROP VIEW board_history;"
    "CREATE VIEW board_history AS SELECT b.id, b.key, b.name, b.state,"
    "  (SELECT count(*) FROM leases l WHERE l.board_id = b.id) AS leases,"
    "  (SELECT count(*) FROM attempts a WHERE a.board_id = b.id) AS tasks,"
    "  (SELECT count(*) FROM leases l WHERE l.board_id = b.id) +"
    "  (SELECT count(*) FROM attempts a WHERE a.board_id = b.id) AS runs,"
    "  (SELECT count(*) FROM leases l WHERE l.board_id = b.id AND"
    "    l.outcome IN ('timeout', 'exception', 'crash', 'lost', 'wrong')) +"
    "  (SELECT count(*) FROM attempts a WHERE a.board_id = b.id AND"
    "    a.outcome IN ('timeout', 'exception', 'crash', 'lost', 'wrong'))"
    "    AS failures,"
    "  (SELECT max(l.granted_us) FROM leases l WHERE l.board_id = b.id)"
    "    AS last_granted_us,"
    "  max(coalesce((SELECT max(l.granted_us) FROM leases l"
    "    WHERE l.board_id = b.id), 0), coalesce((SELECT max(a.started_us)"
    "    FROM attempts a WHERE a.board_id = b.id), 0)) AS last_used_us"
    "  FROM boards b;"
    "CREATE VIEW runs AS"
    "  SELECT 'session' AS kind, l.id AS id, l.board_id, l.key, l.user,"
    "    l.granted_us AS started_us, l.released_us AS finished_us,"
    "    l.outcome, l.detail FROM leases l WHERE l.board_id IS NOT NULL"
    "  UNION ALL"
    "  SELECT 'task', a.task_id, a.board_id, j.key, j.user, a.started_us,"
    "    a.finished_us, a.outcome, a.detail FROM attempts a"
    "    JOIN tasks t ON t.id = a.task_id JOIN jobs j ON j.id = t.job_id;"
    "CREATE VIEW failure_rates AS SELECT b.name AS board, b.key,"
    "  count(r.kind) AS runs,"
    "  count(*) FILTER (WHERE r.kind = 'task') AS tasks,"
    "  count(*) FILTER (WHERE r.kind = 'session') AS sessions,"
    "  count(*) FILTER (WHERE r.outcome IN ('timeout', 'exception',"
    "    'crash', 'lost', 'wrong')) AS failures,"
    "  round(1.0 * count(*) FILTER (WHERE r.outcome IN ('timeout',"
    "    'exception', 'crash', 'lost', 'wrong')) / max(count(r.kind), 1),"
    "    4) AS failure_rate,"
    "  count(*) FILTER (WHERE r.outcome = 'crash') AS crash,"
    "  count(*) FILTER (WHERE r.outcome = 'timeout') AS timeout,"
    "  count(*) FILTER (WHERE r.outcome = 'exception') AS exception,"
    "  count(*) FILTER (WHERE r.outcome = 'lost') AS lost,"
    "  count(*) FILTER (WHERE r.outcome = 'wrong') AS wrong"
    "  FROM boards b LEFT JOIN runs r ON r.board_id = b.id"
    "  GROUP BY b.id;"
    "CREATE VIEW events_readable AS SELECT e.id,"
    "  strftime('%Y-%m-%dT%H:%M:%fZ', e.at_us / 1e6, 'unixepoch') AS at,"
    "  e.kind, b.name AS board, e.actor, e.detail"
    "  FROM events e LEFT JOIN boards b ON b.id = e.board_id;"
    "CREATE VIEW candidates AS WITH c AS (SELECT t.id AS task_id,"
    "  j.value AS v, row_number() OVER (PARTITION BY t.id ORDER BY j.value)"
    "  AS rn, count(*) OVER (PARTITION BY t.id) AS n"
    "  FROM tasks t, json_each(t.costs) j WHERE t.costs IS NOT NULL)"
    "  SELECT t.job_id, t.idx, t.name, t.outcome, b.name AS board,"
    "  json_extract(t.spec, '$.group') AS grp,"
    "  (SELECT min(c.v) FROM c WHERE c.task_id = t.id) AS best_s,"
    "  (SELECT avg(c.v) FROM c WHERE c.task_id = t.id AND"
    "    c.rn IN ((c.n + 1) / 2, (c.n + 2) / 2)) AS median_s,"
    "  t.detail FROM tasks t LEFT JOIN boards b ON b.id = t.board_id;"
    "CREATE INDEX attempts_board ON attempts (board_id, outcome);",
    /* 7 (issue 15): the leases table again, the same columns and rows,
     * with its outcome CHECK written as comparisons: sqlite evaluates
     * "outcome IN (eight strings)" by building a temporary b-tree of the
     * list on every INSERT and every UPDATE of outcome, which was over
     * half the writer's instructions per lease.  legacy_alter_table: the
     * RENAME leaves the views that name leases alone. */
    "CREATE TABLE leases_v7 ("
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
    "  outcome TEXT CHECK (outcome = 'ok' OR outcome = 'timeout' OR"
    "    outcome = 'exception' OR outcome = 'crash' OR outcome = 'lost' OR"
    "    outcome = 'cancelled' OR outcome = 'expired' OR"
    "    outcome = 'rejected'),"
    "  detail TEXT,"
    "  session_start_us INTEGER,"
    "  requests INTEGER,"
    "  exceptions INTEGER,"
    "  bytes_to_board INTEGER,"
    "  bytes_to_client INTEGER,"
    "  agent_session TEXT,"
    "  reported_us INTEGER,"
    "  exit_signal INTEGER,"
    "  exit_status INTEGER,"
    "  session_timeout REAL"
    ") STRICT;"
    "INSERT INTO leases_v7 SELECT * FROM leases;"
    "DROP TABLE leases;"
    "PRAGMA legacy_alter_table = ON;"
    "ALTER TABLE leases_v7 RENAME TO leases;"
    "PRAGMA legacy_alter_table = OFF;"
    "CREATE INDEX leases_board ON leases (board_id, granted_us);"
    "CREATE INDEX leases_key ON leases (key, requested_us);"
    "CREATE INDEX leases_open ON leases (released_us) WHERE released_us IS "
    "NULL;"
    "CREATE INDEX leases_agent_session ON leases (board_id, agent_session)"
    "  WHERE agent_session IS NOT NULL;",
    /* 8 (issue 15): no index of every lease by board.  Its entries go to
     * a leaf of their board's, so a group commit wrote one index page
     * per board it touched, about one WAL frame per lease: half of the
     * writer's CPU per lease.  What was read through it is kept per
     * board instead (board_leases, updated once per board per commit;
     * the trigger covers deletes, which retention makes off the hot
     * path), and failed leases, which are few, keep an index by board. */
    "DROP INDEX leases_board;"
    "CREATE TABLE board_leases ("
    "  board_id INTEGER PRIMARY KEY REFERENCES boards(id),"
    "  leases INTEGER NOT NULL,"
    "  last_granted_us INTEGER"
    ") STRICT;"
    "INSERT INTO board_leases SELECT board_id, count(*), max(granted_us)"
    "  FROM leases WHERE board_id IS NOT NULL GROUP BY board_id;"
    "CREATE TRIGGER leases_deleted AFTER DELETE ON leases"
    "  WHEN old.board_id IS NOT NULL BEGIN"
    "  UPDATE board_leases SET leases = leases - 1"
    "    WHERE board_id = old.board_id;"
    "  END;"
    "CREATE INDEX leases_failed ON leases (board_id) WHERE " LEASE_FAILED ";"
    "DROP VIEW board_history;"
    "CREATE VIEW board_history AS SELECT b.id, b.key, b.name, b.state,"
    "  coalesce(s.leases, 0) AS leases,"
    "  (SELECT count(*) FROM attempts a WHERE a.board_id = b.id) AS tasks,"
    "  coalesce(s.leases, 0) +"
    "  (SELECT count(*) FROM attempts a WHERE a.board_id = b.id) AS runs,"
    "  (SELECT count(*) FROM leases l WHERE l.board_id = b.id AND"
    "    (" LEASE_FAILED ")) +"
    "  (SELECT count(*) FROM attempts a WHERE a.board_id = b.id AND"
    "    a.outcome IN ('timeout', 'exception', 'crash', 'lost', 'wrong'))"
    "    AS failures,"
    "  s.last_granted_us AS last_granted_us,"
    "  max(coalesce(s.last_granted_us, 0), coalesce((SELECT max(a.started_us)"
    "    FROM attempts a WHERE a.board_id = b.id), 0)) AS last_used_us"
    "  FROM boards b LEFT JOIN board_leases s ON s.board_id = b.id;",
};

#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(N_MIGRATIONS == LEDGER_SCHEMA_VERSION,
    "a migration for every schema version");

/*
 * Writes, executed by the writer thread.  Each kind has its own struct of
 * named fields and its SQL names its parameters the same way (":id"); the
 * table op_binds[] says which field each parameter takes and how, and
 * ledger_open() checks that every parameter of every statement is in it.
 */
enum op_kind {
	OP_BOARD_INSERT,
	OP_BOARD_TOUCH,
	OP_BOARD_STATE,
	OP_BOARDS_RESET,
	OP_LEASES_RESET,
	OP_LEASE_INSERT,
	OP_LEASE_RELEASE,
	OP_EVENT,
	OP_LEASE_SESSION,
	OP_BOARD_DRAIN,
	OP_LEASE_AGENT_SESSION,
	OP_LEASE_REPORT,
	OP_ARTIFACT,
	OP_JOB_INSERT,
	OP_JOB_STATE,
	OP_TASK_INSERT,
	OP_TASK_START,
	OP_ATTEMPT_START,
	OP_TASK_REQUEUE,
	OP_TASK_FINISH,
	OP_ATTEMPT_FINISH,
	OP_BOARD_TAGS,
	OP_BOARD_LEASES, /* the writer's own: see board_leases_note() */
	OP_PRUNE_LEASES, /* retention: the first ops whose rows are counted */
	OP_PRUNE_EVENTS,
	OP_PRUNE_ATTEMPTS,
	OP_MAX,
};

static const char *const op_sql[OP_MAX] = {
    [OP_BOARD_INSERT] =
	"INSERT INTO boards (id, kind, key, address, name, state,"
	" first_seen_us, last_seen_us) VALUES (:id, :kind, :key, :address,"
	" :address, 'idle', :now_us, :now_us)",
    [OP_BOARD_TOUCH] =
	"UPDATE boards SET state = CASE drained WHEN 1 THEN 'draining'"
	" ELSE 'idle' END, last_seen_us = :now_us, detail = NULL"
	" WHERE id = :id",
    [OP_BOARD_DRAIN] = "UPDATE boards SET drained = :drained,"
		       " last_seen_us = :now_us WHERE id = :id",
    [OP_BOARD_STATE] = "UPDATE boards SET state = :state, detail = :detail,"
		       " last_seen_us = :now_us WHERE id = :id",
    [OP_BOARDS_RESET] =
	"UPDATE boards SET state = 'offline', detail = 'broker restarted',"
	" last_seen_us = :now_us WHERE state != 'offline'",
    [OP_LEASES_RESET] =
	"UPDATE leases SET released_us = :now_us, detail = 'broker restarted"
	" while the lease was open; how the session ended was not observed'"
	" WHERE released_us IS NULL",
    [OP_LEASE_INSERT] =
	"INSERT INTO leases (id, key, user, peer, priority, requested_us,"
	" granted_us, released_us, board_id, matchkey, outcome, detail)"
	" VALUES (:id, :key, :user, :peer, :priority, :requested_us,"
	" :granted_us, :released_us, :board_id, :matchkey, :outcome,"
	" :detail)",
    [OP_LEASE_RELEASE] = "UPDATE leases SET released_us = :released_us,"
			 " outcome = :outcome, detail = :detail"
			 " WHERE id = :id",
    /* The broker's view of a relayed session; an agent's report, before
     * or after, stands over it (reported_us set). */
    [OP_LEASE_SESSION] =
	"UPDATE leases SET released_us = :end_us,"
	" session_start_us = coalesce(session_start_us, :start_us),"
	" outcome = iif(reported_us IS NULL, :outcome, outcome),"
	" detail = iif(reported_us IS NULL, :detail, detail),"
	" requests = iif(reported_us IS NULL, :requests, requests),"
	" exceptions = iif(reported_us IS NULL, :exceptions, exceptions),"
	" bytes_to_board = iif(reported_us IS NULL, :bytes_to_board,"
	" bytes_to_board),"
	" bytes_to_client = iif(reported_us IS NULL, :bytes_to_client,"
	" bytes_to_client) WHERE id = :id",
    [OP_ARTIFACT] = "INSERT OR IGNORE INTO artifacts (sha256, size,"
		    " stored_us) VALUES (:sha256, :size, :stored_us)",
    [OP_JOB_INSERT] =
	"INSERT INTO jobs (id, key, user, peer, priority, queue_timeout,"
	" state, ntasks, submitted_us, tags) VALUES (:id, :key, :user, :peer,"
	" :priority, :queue_timeout_ms / 1000.0, 'queued', :ntasks,"
	" :submitted_us, :tags)",
    [OP_JOB_STATE] = "UPDATE jobs SET state = :state,"
		     " finished_us = :finished_us WHERE id = :id",
    [OP_TASK_INSERT] =
	"INSERT INTO tasks (id, job_id, idx, name, runner, spec, state,"
	" queued_us) VALUES (:id, :job_id, :idx, :name, :runner, :spec,"
	" 'queued', :queued_us)",
    /* An attempt starts: the task's row and the attempt's. */
    [OP_TASK_START] =
	"UPDATE tasks SET state = 'running', attempts = :attempt,"
	" board_id = :board_id, started_us = :now_us WHERE id = :id"
	" AND state != 'done'",
    [OP_ATTEMPT_START] =
	"INSERT OR IGNORE INTO attempts (task_id, attempt, board_id,"
	" started_us) VALUES (:id, :attempt, :board_id, :now_us)",
    [OP_TASK_REQUEUE] = "UPDATE tasks SET state = 'queued' WHERE id = :id"
			" AND state != 'done'",
    /* Exactly one terminal outcome per task: a second finish is a no-op. */
    [OP_TASK_FINISH] =
	"UPDATE tasks SET state = 'done', outcome = :outcome,"
	" detail = :detail, costs = :costs, number = nullif(:number, 0),"
	" finished_us = :finished_us WHERE id = :id AND state != 'done'",
    [OP_ATTEMPT_FINISH] =
	"UPDATE attempts SET finished_us = :finished_us, outcome = :outcome,"
	" detail = :detail, exit_signal = :signal, exit_status = :status"
	" WHERE task_id = :task_id AND attempt = :attempt"
	" AND outcome IS NULL",
    [OP_LEASE_AGENT_SESSION] =
	"UPDATE leases SET agent_session = :session WHERE id = :id",
    [OP_LEASE_REPORT] =
	"UPDATE leases SET reported_us = :reported_us,"
	" session_start_us = :start_us,"
	" released_us = coalesce(released_us, :end_us), outcome = :outcome,"
	" detail = :detail, requests = :requests, exceptions = :exceptions,"
	" bytes_to_board = :bytes_to_board,"
	" bytes_to_client = :bytes_to_client, exit_signal = :signal,"
	" exit_status = :status, session_timeout = :timeout"
	" WHERE board_id = :board_id AND agent_session = :session",
    [OP_BOARD_TAGS] = "UPDATE boards SET tags = :tags WHERE id = :id",
    [OP_BOARD_LEASES] =
	"INSERT INTO board_leases (board_id, leases, last_granted_us)"
	" VALUES (:board_id, :leases, :last_granted_us)"
	" ON CONFLICT (board_id) DO UPDATE SET"
	" leases = leases + excluded.leases, last_granted_us = nullif(max("
	"coalesce(last_granted_us, 0), coalesce(excluded.last_granted_us, 0)),"
	" 0)",
    [OP_EVENT] = "INSERT INTO events (at_us, kind, board_id, detail, actor)"
		 " VALUES (:at_us, :kind, :board_id, :detail, :actor)",
    /* Retention (ledger_prune()): at most :limit of the oldest rows that
     * ended before :before_us; open leases and running attempts stay.
     * Rows are visited in rowid order, which is roughly the order of
     * their ends, so each statement stops after a short scan. */
    [OP_PRUNE_LEASES] =
	"DELETE FROM leases WHERE id IN (SELECT id FROM leases"
	" WHERE released_us IS NOT NULL AND released_us < :before_us"
	" ORDER BY id LIMIT :limit)",
    [OP_PRUNE_EVENTS] = "DELETE FROM events WHERE id IN (SELECT id FROM events"
			" WHERE at_us < :before_us ORDER BY id LIMIT :limit)",
    [OP_PRUNE_ATTEMPTS] =
	"DELETE FROM attempts WHERE rowid IN (SELECT rowid FROM attempts"
	" WHERE finished_us IS NOT NULL AND finished_us < :before_us"
	" ORDER BY rowid LIMIT :limit)",
};

/* The fields of each kind of write.  Strings are copied into the op. */
struct w_board_insert {
	int64_t id;
	const char *kind, *key, *address;
	int64_t now_us;
};
struct w_board_touch {
	int64_t id, now_us;
};
struct w_board_drain {
	int64_t id, drained, now_us;
};
struct w_board_state {
	int64_t id;
	const char *state, *detail;
	int64_t now_us;
};
struct w_board_tags {
	int64_t id;
	const char *tags; /* JSON object text, NULL: none */
};
struct w_reset {
	int64_t now_us;
};
struct w_lease_insert {
	int64_t id;
	const char *key, *user, *peer;
	double priority;
	int64_t requested_us, granted_us, released_us, board_id;
	const char *matchkey, *outcome, *detail;
};
struct w_lease_release {
	int64_t id, released_us;
	const char *outcome, *detail;
};
struct w_lease_session {
	int64_t id, start_us, end_us;
	const char *outcome, *detail;
	int64_t requests, exceptions, bytes_to_board, bytes_to_client;
};
struct w_lease_agent_session {
	int64_t id;
	const char *session;
};
struct w_lease_report {
	int64_t board_id;
	const char *session;
	int64_t start_us, end_us, reported_us;
	const char *outcome, *detail;
	int64_t requests, exceptions, bytes_to_board, bytes_to_client;
	int64_t signal, status;
	double timeout; /* s */
};
struct w_event {
	int64_t at_us, board_id;
	const char *kind, *detail, *actor;
};
struct w_artifact {
	const char *sha256;
	int64_t size, stored_us;
};
struct w_job_insert {
	int64_t id;
	const char *key, *user, *peer, *tags;
	double priority;
	int64_t queue_timeout_ms, ntasks, submitted_us;
};
struct w_job_state {
	int64_t id;
	const char *state;
	int64_t finished_us;
};
struct w_task_insert {
	int64_t id, job_id, idx;
	const char *name, *runner, *spec;
	int64_t queued_us;
};
struct w_task_start { /* OP_TASK_START and OP_ATTEMPT_START */
	int64_t id, attempt, board_id, now_us;
};
struct w_task_requeue {
	int64_t id;
};
struct w_task_finish {
	int64_t id;
	const char *outcome, *detail, *costs;
	int64_t number, finished_us;
};
struct w_attempt_finish {
	int64_t task_id, attempt, finished_us;
	const char *outcome, *detail;
	int64_t signal, status;
};
struct w_prune {
	int64_t before_us, limit;
};
struct w_board_leases {
	int64_t board_id, leases, last_granted_us;
};

/* How a field binds: as it is, or 0 (NULL) as SQL NULL. */
enum bind_type {
	BIND_INT,  /* int64_t, always a number */
	BIND_ID,   /* int64_t id or time; 0 binds NULL */
	BIND_REAL, /* double */
	BIND_TEXT, /* const char *; NULL binds NULL */
};

struct op_bind {
	const char *name; /* the SQL parameter, ":id" */
	enum bind_type type;
	size_t off; /* of the field in its w_ struct */
};

#define OP_MAX_BINDS 16
#define BIND(s, f, t)                            \
	{                                        \
		":" #f, t, offsetof(struct s, f) \
	}

static const struct op_bind op_binds[OP_MAX][OP_MAX_BINDS] = {
    [OP_BOARD_INSERT] = {BIND(w_board_insert, id, BIND_INT),
	BIND(w_board_insert, kind, BIND_TEXT),
	BIND(w_board_insert, key, BIND_TEXT),
	BIND(w_board_insert, address, BIND_TEXT),
	BIND(w_board_insert, now_us, BIND_ID)},
    [OP_BOARD_TOUCH] = {BIND(w_board_touch, id, BIND_INT),
	BIND(w_board_touch, now_us, BIND_ID)},
    [OP_BOARD_DRAIN] = {BIND(w_board_drain, id, BIND_INT),
	BIND(w_board_drain, drained, BIND_INT),
	BIND(w_board_drain, now_us, BIND_ID)},
    [OP_BOARD_STATE] = {BIND(w_board_state, id, BIND_INT),
	BIND(w_board_state, state, BIND_TEXT),
	BIND(w_board_state, detail, BIND_TEXT),
	BIND(w_board_state, now_us, BIND_ID)},
    [OP_BOARDS_RESET] = {BIND(w_reset, now_us, BIND_ID)},
    [OP_LEASES_RESET] = {BIND(w_reset, now_us, BIND_ID)},
    [OP_LEASE_INSERT] = {BIND(w_lease_insert, id, BIND_INT),
	BIND(w_lease_insert, key, BIND_TEXT),
	BIND(w_lease_insert, user, BIND_TEXT),
	BIND(w_lease_insert, peer, BIND_TEXT),
	BIND(w_lease_insert, priority, BIND_REAL),
	BIND(w_lease_insert, requested_us, BIND_ID),
	BIND(w_lease_insert, granted_us, BIND_ID),
	BIND(w_lease_insert, released_us, BIND_ID),
	BIND(w_lease_insert, board_id, BIND_ID),
	BIND(w_lease_insert, matchkey, BIND_TEXT),
	BIND(w_lease_insert, outcome, BIND_TEXT),
	BIND(w_lease_insert, detail, BIND_TEXT)},
    [OP_LEASE_RELEASE] = {BIND(w_lease_release, id, BIND_INT),
	BIND(w_lease_release, released_us, BIND_ID),
	BIND(w_lease_release, outcome, BIND_TEXT),
	BIND(w_lease_release, detail, BIND_TEXT)},
    [OP_LEASE_SESSION] = {BIND(w_lease_session, id, BIND_INT),
	BIND(w_lease_session, start_us, BIND_ID),
	BIND(w_lease_session, end_us, BIND_ID),
	BIND(w_lease_session, outcome, BIND_TEXT),
	BIND(w_lease_session, detail, BIND_TEXT),
	BIND(w_lease_session, requests, BIND_INT),
	BIND(w_lease_session, exceptions, BIND_INT),
	BIND(w_lease_session, bytes_to_board, BIND_INT),
	BIND(w_lease_session, bytes_to_client, BIND_INT)},
    [OP_LEASE_AGENT_SESSION] = {BIND(w_lease_agent_session, id, BIND_INT),
	BIND(w_lease_agent_session, session, BIND_TEXT)},
    [OP_LEASE_REPORT] = {BIND(w_lease_report, board_id, BIND_ID),
	BIND(w_lease_report, session, BIND_TEXT),
	BIND(w_lease_report, start_us, BIND_ID),
	BIND(w_lease_report, end_us, BIND_ID),
	BIND(w_lease_report, reported_us, BIND_ID),
	BIND(w_lease_report, outcome, BIND_TEXT),
	BIND(w_lease_report, detail, BIND_TEXT),
	BIND(w_lease_report, requests, BIND_INT),
	BIND(w_lease_report, exceptions, BIND_INT),
	BIND(w_lease_report, bytes_to_board, BIND_INT),
	BIND(w_lease_report, bytes_to_client, BIND_INT),
	BIND(w_lease_report, signal, BIND_INT),
	BIND(w_lease_report, status, BIND_INT),
	BIND(w_lease_report, timeout, BIND_REAL)},
    [OP_EVENT] = {BIND(w_event, at_us, BIND_ID), BIND(w_event, kind, BIND_TEXT),
	BIND(w_event, board_id, BIND_ID), BIND(w_event, detail, BIND_TEXT),
	BIND(w_event, actor, BIND_TEXT)},
    [OP_ARTIFACT] = {BIND(w_artifact, sha256, BIND_TEXT),
	BIND(w_artifact, size, BIND_INT), BIND(w_artifact, stored_us, BIND_ID)},
    [OP_JOB_INSERT] = {BIND(w_job_insert, id, BIND_INT),
	BIND(w_job_insert, key, BIND_TEXT), BIND(w_job_insert, user, BIND_TEXT),
	BIND(w_job_insert, peer, BIND_TEXT),
	BIND(w_job_insert, priority, BIND_REAL),
	BIND(w_job_insert, queue_timeout_ms, BIND_INT),
	BIND(w_job_insert, ntasks, BIND_INT),
	BIND(w_job_insert, submitted_us, BIND_ID),
	BIND(w_job_insert, tags, BIND_TEXT)},
    [OP_JOB_STATE] = {BIND(w_job_state, id, BIND_INT),
	BIND(w_job_state, state, BIND_TEXT),
	BIND(w_job_state, finished_us, BIND_ID)},
    [OP_TASK_INSERT] = {BIND(w_task_insert, id, BIND_INT),
	BIND(w_task_insert, job_id, BIND_ID),
	BIND(w_task_insert, idx, BIND_INT),
	BIND(w_task_insert, name, BIND_TEXT),
	BIND(w_task_insert, runner, BIND_TEXT),
	BIND(w_task_insert, spec, BIND_TEXT),
	BIND(w_task_insert, queued_us, BIND_ID)},
    [OP_TASK_START] = {BIND(w_task_start, id, BIND_INT),
	BIND(w_task_start, attempt, BIND_INT),
	BIND(w_task_start, board_id, BIND_ID),
	BIND(w_task_start, now_us, BIND_ID)},
    [OP_ATTEMPT_START] = {BIND(w_task_start, id, BIND_INT),
	BIND(w_task_start, attempt, BIND_INT),
	BIND(w_task_start, board_id, BIND_ID),
	BIND(w_task_start, now_us, BIND_ID)},
    [OP_TASK_REQUEUE] = {BIND(w_task_requeue, id, BIND_INT)},
    [OP_TASK_FINISH] = {BIND(w_task_finish, id, BIND_INT),
	BIND(w_task_finish, outcome, BIND_TEXT),
	BIND(w_task_finish, detail, BIND_TEXT),
	BIND(w_task_finish, costs, BIND_TEXT),
	BIND(w_task_finish, number, BIND_INT),
	BIND(w_task_finish, finished_us, BIND_ID)},
    [OP_ATTEMPT_FINISH] = {BIND(w_attempt_finish, task_id, BIND_INT),
	BIND(w_attempt_finish, attempt, BIND_INT),
	BIND(w_attempt_finish, finished_us, BIND_ID),
	BIND(w_attempt_finish, outcome, BIND_TEXT),
	BIND(w_attempt_finish, detail, BIND_TEXT),
	BIND(w_attempt_finish, signal, BIND_INT),
	BIND(w_attempt_finish, status, BIND_INT)},
    [OP_BOARD_TAGS] = {BIND(w_board_tags, id, BIND_INT),
	BIND(w_board_tags, tags, BIND_TEXT)},
    [OP_BOARD_LEASES] = {BIND(w_board_leases, board_id, BIND_INT),
	BIND(w_board_leases, leases, BIND_INT),
	BIND(w_board_leases, last_granted_us, BIND_ID)},
    [OP_PRUNE_LEASES] = {BIND(w_prune, before_us, BIND_ID),
	BIND(w_prune, limit, BIND_INT)},
    [OP_PRUNE_EVENTS] = {BIND(w_prune, before_us, BIND_ID),
	BIND(w_prune, limit, BIND_INT)},
    [OP_PRUNE_ATTEMPTS] = {BIND(w_prune, before_us, BIND_ID),
	BIND(w_prune, limit, BIND_INT)},
};

/* One write: its kind, its fields, and the bytes its strings point into. */
struct op {
	enum op_kind kind;
	STAILQ_ENTRY(op) link;
	/* Writer thread: a lease insert's release, written with it in one
	 * INSERT (coalesce()); that release is then merged and not run. */
	struct op *release;
	bool merged;
	union {
		struct w_board_insert board_insert;
		struct w_board_touch board_touch;
		struct w_board_drain board_drain;
		struct w_board_state board_state;
		struct w_board_tags board_tags;
		struct w_reset reset;
		struct w_lease_insert lease_insert;
		struct w_lease_release lease_release;
		struct w_lease_session lease_session;
		struct w_lease_agent_session lease_agent_session;
		struct w_lease_report lease_report;
		struct w_event event;
		struct w_artifact artifact;
		struct w_job_insert job_insert;
		struct w_job_state job_state;
		struct w_task_insert task_insert;
		struct w_task_start task_start;
		struct w_task_requeue task_requeue;
		struct w_task_finish task_finish;
		struct w_attempt_finish attempt_finish;
		struct w_prune prune;
		struct w_board_leases board_leases;
	} u;
	char strings[];
};

STAILQ_HEAD(op_list, op);

/*
 * Ops live in blocks that a batch owns whole: the loop thread carves its
 * ops out of them, the writer hands the blocks back once the batch is
 * written (ledger->recycled), and the loop takes them again.  Ops are so
 * neither malloc'd on one thread and freed on the other (glibc then takes
 * the loop's arena lock from the writer, one free per op) nor malloc'd
 * at all once the blocks circulate.  An op bigger than a block (a task's
 * spec) gets a block of its own, freed after use.
 */
#define OP_BLOCK_SIZE     4096 /* bytes, with the header */
#define OP_BLOCKS_RECYCLE 256  /* at most kept for reuse: 1 MiB */

struct op_block {
	struct op_block *next;
	size_t size; /* of data[] */
	size_t used;
	_Alignas(max_align_t) char data[];
};

#define OP_BLOCK_DATA (OP_BLOCK_SIZE - offsetof(struct op_block, data))

/* A batch's blocks, oldest first; the last one is being filled. */
struct op_blocks {
	struct op_block *head, *tail;
};

/* Someone waiting for the batches submitted before it (ledger_after()). */
struct ledger_wait {
	uint64_t seq;    /* done once committed reaches it */
	uint64_t errors; /* l->errors when it began */
	ledger_done_fn *fn;
	void *arg;
	TAILQ_ENTRY(ledger_wait) link;
};

struct board_id {
	int64_t id;
	bool drained; /* an operator drained it */
	char name[];  /* kind NUL key NUL address */
};

/* A lease row the writer inserted for a board (board_leases_note()). */
struct board_grant {
	int64_t board_id, granted_us;
};

struct ledger {
	/* Loop thread only. */
	struct ledger_read *rd;        /* reads, on a connection of their own */
	struct op_list batch;          /* writes not yet submitted */
	struct op_blocks batch_blocks; /* what batch's ops live in */
	struct op_block *spare;        /* empty blocks, to carve ops from */
	size_t nbatch;
	ledger_dirty_fn *dirty; /* called when a batch starts */
	void *dirty_arg;
	ledger_failed_fn *failed_fn; /* every failure; set under mu */
	void *failed_arg;
	void *boards;       /* tsearch of struct board_id by name */
	void *boards_by_id; /* the same entries, by id */
	int64_t next_board_id, next_lease_id, next_job_id, next_task_id;
	uint64_t submitted;              /* batches handed to the writer */
	TAILQ_HEAD(, ledger_wait) waits; /* by seq */

	/* Writer thread only. */
	sqlite3 *wdb;
	sqlite3_stmt *wr[OP_MAX];
	int wr_param[OP_MAX][OP_MAX_BINDS]; /* op_binds[k][i]'s ?N */
	sqlite3_stmt *w_begin, *w_commit, *w_rollback;
	struct board_grant *grants; /* this batch's, for board_leases */
	size_t ngrants, grants_cap;

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t work;           /* writer: queue non-empty or stop */
	pthread_cond_t done;           /* loop: progress was made */
	struct op_list queue;          /* submitted, not yet taken */
	struct op_blocks queue_blocks; /* what queue's ops live in */
	struct op_block *recycled;     /* written, handed back to the loop */
	size_t nrecycled;
	uint64_t queued;    /* batches in queue, cumulative */
	uint64_t committed; /* batches finished (ok or failed) */
	uint64_t commits;   /* transactions committed */
	uint64_t failed;    /* batches rolled back, cumulative */
	uint64_t errors;    /* transactions with a failed write, cumulative */
	struct hist commit_hist; /* seconds per committed batch */
	int notify_fd;           /* eventfd: the writer finished a batch */
	char last_error[NPUFARM_ERR_MSG_MAX]; /* "" when none */
	struct npufarm_err fail; /* the last failed batch's error */
	bool fail_new;
	bool stop;
	bool thread_started;
	pthread_t thread;
	atomic_uint_fast64_t pruned; /* rows retention deleted, cumulative */

	int lock_fd; /* holds the ledger's lock (PATH.lock); -1: none */
};

/* @err from sqlite's last error on @db while doing @what; the -errno. */
static int
ledger_db_fail(sqlite3 *db, struct npufarm_err *err, const char *what)
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
exec_sql(sqlite3 *db, const char *sql, struct npufarm_err *err)
{
	char *msg = NULL;
	int r;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	r = err_set(err, -EIO, "ledger: %s", msg ? msg : "exec failed");
	sqlite3_free(msg);
	return r;
}

static int
migrate(sqlite3 *db, struct npufarm_err *err)
{
	sqlite3_stmt *st = NULL;
	char sql[64];
	int version, r;
	size_t i;

	/* A migration may rebuild a table others reference (6: tasks);
	 * foreign keys cannot be switched inside a transaction. */
	r = exec_sql(db, "PRAGMA foreign_keys = OFF", err);
	if (r < 0)
		return r;
	r = exec_sql(db, "BEGIN IMMEDIATE", err);
	if (r < 0)
		return r;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) !=
		SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		r = ledger_db_fail(db, err, "reading user_version");
		goto fail;
	}
	version = sqlite3_column_int(st, 0);
	/* A statement left stepped would lock the tables DROP touches. */
	sqlite3_finalize(st);
	st = NULL;
	if (version > (int)N_MIGRATIONS) {
		r = err_set(err, -EPROTONOSUPPORT,
		    "ledger schema version %d is newer than this broker "
		    "understands (%zu): refusing to open it",
		    version, N_MIGRATIONS);
		goto fail;
	}
	for (i = (size_t)version; i < N_MIGRATIONS; i++) {
		r = exec_sql(db, migrations[i], err);
		if (r < 0)
			goto fail;
	}
	(void)snprintf(
	    sql, sizeof(sql), "PRAGMA user_version = %zu", N_MIGRATIONS);
	r = exec_sql(db, sql, err);
	if (r < 0)
		goto fail;
	r = exec_sql(db, "COMMIT", err);
	if (r == 0)
		r = exec_sql(db, "PRAGMA foreign_keys = ON", err);
	return r;
fail:
	sqlite3_finalize(st);
	(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	(void)sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	return r;
}

/*
 * One broker per ledger: an exclusive open-file-description lock on
 * "@path.lock", holding the holder's pid as text.  Taken before anything
 * touches the database, so a second broker started by mistake exits at
 * once instead of marking the running farm's boards offline.  Returns 0
 * with the fd in @ret_fd (-1 for an in-memory or URI ledger), or -EBUSY
 * naming the holder's pid, or -errno.
 */
static int
ledger_lock(const char *path, int *ret_fd, struct npufarm_err *err)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char *lp = NULL, pid[32] = "";
	ssize_t n;
	int fd, r;

	*ret_fd = -1;
	if (strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0)
		return 0;
	if (asprintf(&lp, "%s.lock", path) < 0)
		return err_set(err, -ENOMEM, "out of memory");
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = err_set(
		    err, -errno, "lock file %s: %s", lp, strerror(errno));
		free(lp);
		return r;
	}
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		r = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (r == -EBUSY)
			err_set(err, r,
			    "one broker per ledger: npufarm-broker pid %s "
			    "holds it (lock %s)",
			    pid[0] ? pid : "unknown", lp);
		else
			err_set(err, r, "lock %s: %s", lp, strerror(-r));
		(void)close(fd);
		free(lp);
		return r;
	}
	(void)snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	/* The lock holds whether or not the pid (for people) is written. */
	if (ftruncate(fd, 0) == 0)
		(void)!pwrite(fd, pid, strlen(pid), 0);
	free(lp);
	*ret_fd = fd;
	return 0;
}

static int
db_open(
    const char *path, bool sync_full, sqlite3 **ret, struct npufarm_err *err)
{
	sqlite3 *db = NULL;
	int r;

	if (sqlite3_open_v2(path, &db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX,
		NULL) != SQLITE_OK) {
		r = err_set(
		    err, -EIO, "%s", db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return r;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, 5000);
	r = exec_sql(db, "PRAGMA journal_mode = WAL", err);
	if (r >= 0)
		r = exec_sql(db,
		    sync_full ? "PRAGMA synchronous = FULL"
			      : "PRAGMA synchronous = NORMAL",
		    err);
	if (r >= 0)
		r = exec_sql(db, "PRAGMA foreign_keys = ON", err);
	if (r < 0) {
		sqlite3_close(db);
		return r;
	}
	*ret = db;
	return 0;
}

static int
board_id_cmp(const void *a, const void *b)
{
	const struct board_id *x = a, *y = b;
	const char *p = x->name, *q = y->name;
	int i, c;

	/* Three NUL-separated fields. */
	for (i = 0; i < 3; i++) {
		c = strcmp(p, q);
		if (c != 0)
			return c;
		p += strlen(p) + 1;
		q += strlen(q) + 1;
	}
	return 0;
}

static struct board_id *
board_id_new(const char *kind, const char *key, const char *address, int64_t id)
{
	size_t a = strlen(kind) + 1, b = strlen(key) + 1,
	       c = strlen(address) + 1;
	struct board_id *bi = malloc(sizeof(*bi) + a + b + c);

	if (bi == NULL)
		return NULL;
	bi->id = id;
	bi->drained = false;
	memcpy(bi->name, kind, a);
	memcpy(bi->name + a, key, b);
	memcpy(bi->name + a + b, address, c);
	return bi;
}

static int
board_id_by_id_cmp(const void *a, const void *b)
{
	int64_t x = ((const struct board_id *)a)->id;
	int64_t y = ((const struct board_id *)b)->id;

	return x < y ? -1 : x > y;
}

/* File @bi (owned by the name tree) in both trees; frees it on failure. */
static int
board_id_add(struct ledger *l, struct board_id *bi)
{
	if (bi == NULL)
		return -ENOMEM;
	if (tsearch(bi, &l->boards, board_id_cmp) == NULL) {
		free(bi);
		return -ENOMEM;
	}
	if (tsearch(bi, &l->boards_by_id, board_id_by_id_cmp) == NULL) {
		(void)tdelete(bi, &l->boards, board_id_cmp);
		free(bi);
		return -ENOMEM;
	}
	return 0;
}

static int
load_state(struct ledger *l, sqlite3 *db, struct npufarm_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	if (sqlite3_prepare_v2(db,
		"SELECT (SELECT ifnull(max(id), 0) FROM boards),"
		" (SELECT ifnull(max(id), 0) FROM leases),"
		" (SELECT ifnull(max(id), 0) FROM jobs),"
		" (SELECT ifnull(max(id), 0) FROM tasks)",
		-1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		r = ledger_db_fail(db, err, "reading ids");
		goto out;
	}
	l->next_board_id = sqlite3_column_int64(st, 0) + 1;
	l->next_lease_id = sqlite3_column_int64(st, 1) + 1;
	l->next_job_id = sqlite3_column_int64(st, 2) + 1;
	l->next_task_id = sqlite3_column_int64(st, 3) + 1;
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db,
		"SELECT id, kind, key, address, drained FROM boards", -1, &st,
		NULL) != SQLITE_OK) {
		r = ledger_db_fail(db, err, "reading boards");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct board_id *bi =
		    board_id_new((const char *)sqlite3_column_text(st, 1),
			(const char *)sqlite3_column_text(st, 2),
			(const char *)sqlite3_column_text(st, 3),
			sqlite3_column_int64(st, 0));

		if (bi != NULL)
			bi->drained = sqlite3_column_int(st, 4) != 0;
		if (board_id_add(l, bi) < 0) {
			r = err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = ledger_db_fail(db, err, "reading boards");
out:
	sqlite3_finalize(st);
	return r;
}

static void
op_block_free_chain(struct op_block *b)
{
	struct op_block *next;

	for (; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
}

/* Move every block of @from to the end of @to. */
static void
op_blocks_concat(struct op_blocks *to, struct op_blocks *from)
{
	if (from->head == NULL)
		return;
	if (to->head == NULL)
		to->head = from->head;
	else
		to->tail->next = from->head;
	to->tail = from->tail;
	from->head = from->tail = NULL;
}

/*
 * Writer thread: @blocks, whose ops are written, go back to the loop (up
 * to OP_BLOCKS_RECYCLE of the standard size); the rest are freed.
 */
static void
op_blocks_recycle(struct ledger *l, struct op_blocks *blocks)
{
	struct op_block *b, *next, *keep = NULL, *drop = NULL;

	pthread_mutex_lock(&l->mu);
	for (b = blocks->head; b != NULL; b = next) {
		next = b->next;
		if (b->size == OP_BLOCK_DATA &&
		    l->nrecycled < OP_BLOCKS_RECYCLE) {
			b->next = keep;
			keep = b;
			l->nrecycled++;
		} else {
			b->next = drop;
			drop = b;
		}
	}
	/* keep's last block is the first one seen; link the old list. */
	for (b = keep; b != NULL && b->next != NULL; b = b->next)
		;
	if (b != NULL) {
		b->next = l->recycled;
		l->recycled = keep;
	}
	pthread_mutex_unlock(&l->mu);
	op_block_free_chain(drop);
	blocks->head = blocks->tail = NULL;
}

/*
 * Loop thread: @size bytes for an op in the batch's last block, or in a
 * new one (a spare, else malloc'd).  NULL when out of memory.
 */
static void *
op_alloc(struct ledger *l, size_t size)
{
	struct op_blocks *bs = &l->batch_blocks;
	struct op_block *b = bs->tail;
	size_t need =
	    (size + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
	void *p;

	if (b == NULL || b->size - b->used < need) {
		if (need <= OP_BLOCK_DATA && l->spare != NULL) {
			b = l->spare;
			l->spare = b->next;
		} else {
			size_t n = need <= OP_BLOCK_DATA ? OP_BLOCK_DATA : need;

			b = malloc(offsetof(struct op_block, data) + n);
			if (b == NULL)
				return NULL;
			b->size = n;
		}
		b->next = NULL;
		b->used = 0;
		if (bs->head == NULL)
			bs->head = b;
		else
			bs->tail->next = b;
		bs->tail = b;
	}
	p = b->data + b->used;
	b->used += need;
	return p;
}

/* Bind every field of @o by its parameter number, looked up at open. */
static int
bind_op(struct ledger *l, sqlite3_stmt *st, const struct op *o)
{
	const struct op_bind *b = op_binds[o->kind];
	const char *f = (const char *)&o->u;
	int i, n, rc = SQLITE_OK;
	int64_t v;
	const char *t;

	for (i = 0; rc == SQLITE_OK && i < OP_MAX_BINDS && b[i].name; i++) {
		n = l->wr_param[o->kind][i];
		switch (b[i].type) {
		case BIND_INT:
		case BIND_ID:
			memcpy(&v, f + b[i].off, sizeof(v));
			rc = v == 0 && b[i].type == BIND_ID
				 ? sqlite3_bind_null(st, n)
				 : sqlite3_bind_int64(st, n, v);
			break;
		case BIND_REAL:
			rc = sqlite3_bind_double(
			    st, n, *(const double *)(f + b[i].off));
			break;
		case BIND_TEXT:
			memcpy(&t, f + b[i].off, sizeof(t));
			rc = t == NULL ? sqlite3_bind_null(st, n)
				       : sqlite3_bind_text(
					     st, n, t, -1, SQLITE_STATIC);
			break;
		}
	}
	return rc;
}

/*
 * Look up the parameter number of every field op_binds[] names for the
 * statement of @kind, and check that the statement has no other.
 */
static int
op_params(struct ledger *l, enum op_kind kind, struct npufarm_err *err)
{
	sqlite3_stmt *st = l->wr[kind];
	int i, n;

	for (i = 0; i < OP_MAX_BINDS && op_binds[kind][i].name; i++) {
		n = sqlite3_bind_parameter_index(st, op_binds[kind][i].name);
		if (n <= 0)
			return err_set(err, -EINVAL,
			    "ledger: write %d has no parameter %s", kind,
			    op_binds[kind][i].name);
		l->wr_param[kind][i] = n;
	}
	if (sqlite3_bind_parameter_count(st) != i)
		return err_set(err, -EINVAL,
		    "ledger: write %d has parameters without a field", kind);
	return 0;
}

static int board_leases_note(
    struct ledger *l, const struct op *o, struct npufarm_err *err);

static int
run_op(struct ledger *l, const struct op *o, struct npufarm_err *err)
{
	sqlite3_stmt *st = l->wr[o->kind];
	int r = 0;

	if (bind_op(l, st, o) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
		r = ledger_db_fail(l->wdb, err, "write");
	else if (o->kind >= OP_PRUNE_LEASES)
		atomic_fetch_add(&l->pruned, (uint64_t)sqlite3_changes(l->wdb));
	/* Not unbound: the next use binds every parameter again, so the
	 * op's strings (SQLITE_STATIC) are never read after this. */
	(void)sqlite3_reset(st);
	if (r == 0 && o->kind == OP_LEASE_INSERT)
		r = board_leases_note(l, o, err);
	return r;
}

/*
 * board_leases (version 8) keeps each board's count of leases and its
 * latest grant, which an index of every lease by board served before at a
 * WAL frame per lease.  Each lease row written with a board is noted;
 * before the commit the notes are added up, one upsert per board the
 * batch touched, in the same transaction as the rows.  A note without
 * memory for it is written on its own at once.  Deletes (retention) are
 * the leases_deleted trigger's.
 */
static int
board_leases_write(struct ledger *l, int64_t board_id, int64_t n,
    int64_t last_granted_us, struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_BOARD_LEASES,
	    .u.board_leases = {board_id, n, last_granted_us},
	};

	return run_op(l, &o, err);
}

static int
board_leases_note(struct ledger *l, const struct op *o, struct npufarm_err *err)
{
	const struct w_lease_insert *li = &o->u.lease_insert;
	struct board_grant *g;
	size_t cap;

	if (li->board_id == 0)
		return 0;
	if (l->ngrants == l->grants_cap) {
		cap = l->grants_cap != 0 ? 2 * l->grants_cap : 256;
		g = realloc(l->grants, cap * sizeof(*g));
		if (g == NULL)
			return board_leases_write(
			    l, li->board_id, 1, li->granted_us, err);
		l->grants = g;
		l->grants_cap = cap;
	}
	l->grants[l->ngrants++] = (struct board_grant){
	    .board_id = li->board_id,
	    .granted_us = li->granted_us,
	};
	return 0;
}

static int
board_grant_cmp(const void *a, const void *b)
{
	const struct board_grant *x = a, *y = b;

	return (x->board_id > y->board_id) - (x->board_id < y->board_id);
}

/* Write the batch's notes; 0 or the first error, with it in @err. */
static int
board_leases_flush(struct ledger *l, struct npufarm_err *err)
{
	struct npufarm_err e;
	int64_t last;
	size_t i, j;
	int r = 0;

	if (l->ngrants == 0)
		return 0;
	qsort(l->grants, l->ngrants, sizeof(*l->grants), board_grant_cmp);
	for (i = 0; i < l->ngrants; i = j) {
		last = 0;
		for (j = i; j < l->ngrants &&
			    l->grants[j].board_id == l->grants[i].board_id;
		     j++)
			if (l->grants[j].granted_us > last)
				last = l->grants[j].granted_us;
		if (board_leases_write(l, l->grants[i].board_id,
			(int64_t)(j - i), last, &e) >= 0)
			continue;
		if (r == 0) {
			r = e.code;
			*err = e;
		}
		if (sqlite3_get_autocommit(l->wdb))
			break; /* sqlite rolled the transaction back */
	}
	l->ngrants = 0;
	return r;
}

/*
 * A lease granted and released within one group commit (a short lease
 * cycle, the common case under load) becomes one INSERT of the ended row
 * instead of an INSERT and an UPDATE: half the statements and no entry in
 * leases_open to add and remove.  The row written is the same.  A release
 * is only merged when no write between the two could touch that lease
 * otherwise: one naming the lease, an agent's report (found by board and
 * session), a reset or a prune stop the merging for what came before.
 * Insert ids are assigned in order, so a window of ids indexes them.
 */
static void
coalesce(struct op_list *list)
{
	struct op *o, **open = NULL;
	int64_t lo = 0, hi = -1, id;
	size_t n = 0;

	STAILQ_FOREACH(o, list, link)
	{
		if (o->kind != OP_LEASE_INSERT)
			continue;
		id = o->u.lease_insert.id;
		if (n++ == 0 || id < lo)
			lo = id;
		if (id > hi)
			hi = id;
	}
	if (n < 2 || (uint64_t)(hi - lo) > 4 * (uint64_t)n + 64)
		return;
	open = calloc((size_t)(hi - lo + 1), sizeof(*open));
	if (open == NULL)
		return; /* then each runs on its own */
	STAILQ_FOREACH(o, list, link)
	{
		struct op **slot = NULL;

		switch (o->kind) {
		case OP_LEASE_INSERT:
			id = o->u.lease_insert.id;
			/* The release sets its three columns whatever they
			 * were: any insert takes one. */
			if (id >= lo && id <= hi)
				open[id - lo] = o;
			break;
		case OP_LEASE_RELEASE:
			id = o->u.lease_release.id;
			slot = id >= lo && id <= hi ? &open[id - lo] : NULL;
			if (slot != NULL && *slot != NULL) {
				(*slot)->release = o;
				o->merged = true;
			}
			break;
		case OP_LEASE_SESSION:
		case OP_LEASE_AGENT_SESSION:
			id = o->kind == OP_LEASE_SESSION
				 ? o->u.lease_session.id
				 : o->u.lease_agent_session.id;
			slot = id >= lo && id <= hi ? &open[id - lo] : NULL;
			break;
		case OP_LEASE_REPORT:
		case OP_LEASES_RESET:
		case OP_PRUNE_LEASES:
			memset(open, 0, (size_t)(hi - lo + 1) * sizeof(*open));
			break;
		default:
			break;
		}
		if (slot != NULL)
			*slot =
			    NULL; /* released, or touched: no more merging */
	}
	free(open);
}

/*
 * Run lease insert @o with the release merged into it.  If that fails on
 * its own, the two run apart, as they came.
 */
static int
run_merged(struct ledger *l, const struct op *o, struct npufarm_err *err)
{
	const struct w_lease_release *rel = &o->release->u.lease_release;
	struct op m = *o;
	int r;

	m.u.lease_insert.released_us = rel->released_us;
	m.u.lease_insert.outcome = rel->outcome;
	m.u.lease_insert.detail = rel->detail;
	r = run_op(l, &m, err);
	if (r >= 0 || sqlite3_get_autocommit(l->wdb))
		return r; /* written, or the transaction is gone */
	/* A constraint of the merged row: write them apart, as they came. */
	r = run_op(l, o, err);
	if (r >= 0)
		r = run_op(l, o->release, err);
	return r;
}

/*
 * Run one transaction over @list.  A write that fails on its own (a
 * constraint) is skipped and reported, the rest still commit; a failure
 * that ends the transaction (I/O, disk full) loses the whole batch.
 * Returns 0 or the first error, with its message in @err.
 */
static int
write_batch(struct ledger *l, struct op_list *list, bool *ret_committed,
    struct npufarm_err *err)
{
	struct npufarm_err e;
	struct op *o;
	int r = 0, rc;

	*ret_committed = false;
	rc = sqlite3_step(l->w_begin);
	stmt_done(l->w_begin);
	if (rc != SQLITE_DONE)
		return ledger_db_fail(l->wdb, err, "begin");
	l->ngrants = 0;
	coalesce(list);
	STAILQ_FOREACH(o, list, link)
	{
		if (o->merged)
			continue; /* written with its insert */
		if ((o->release != NULL ? run_merged(l, o, &e)
					: run_op(l, o, &e)) >= 0)
			continue;
		if (r == 0) {
			r = e.code;
			if (err != NULL)
				*err = e;
		}
		if (sqlite3_get_autocommit(l->wdb))
			return r; /* sqlite rolled the transaction back */
	}
	if (board_leases_flush(l, &e) < 0) {
		if (r == 0) {
			r = e.code;
			if (err != NULL)
				*err = e;
		}
		if (sqlite3_get_autocommit(l->wdb))
			return r;
	}
	rc = sqlite3_step(l->w_commit);
	stmt_done(l->w_commit);
	if (rc == SQLITE_DONE) {
		*ret_committed = true;
		return r;
	}
	r = ledger_db_fail(l->wdb, err, "commit");
	if (!sqlite3_get_autocommit(l->wdb)) {
		(void)sqlite3_step(l->w_rollback);
		stmt_done(l->w_rollback);
	}
	return r;
}

static void *
writer_main(void *arg)
{
	struct ledger *l = arg;
	struct npufarm_err err;
	struct op_list list;
	struct op_blocks blocks;
	struct timespec t0, t1;
	uint64_t upto;
	time_t last_log = 0;
	bool committed;
	int r;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (STAILQ_EMPTY(&l->queue) && !l->stop)
			pthread_cond_wait(&l->work, &l->mu);
		if (STAILQ_EMPTY(&l->queue) && l->stop)
			break;
		STAILQ_INIT(&list);
		STAILQ_CONCAT(&list, &l->queue);
		blocks = l->queue_blocks;
		l->queue_blocks.head = l->queue_blocks.tail = NULL;
		upto = l->queued;
		pthread_mutex_unlock(&l->mu);

		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = write_batch(l, &list, &committed, &err);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		op_blocks_recycle(l, &blocks); /* frees list's ops */

		pthread_mutex_lock(&l->mu);
		l->committed = upto;
		if (r < 0) {
			time_t now = time(NULL);

			memcpy(l->last_error, err.msg, sizeof(l->last_error));
			l->errors++;
			l->fail = err;
			if (l->failed_fn != NULL) /* reported by the loop */
				l->fail_new = true;
			else if (now != last_log) /* at most once a second */
				log_err("%s", err.msg);
			last_log = now;
		}
		if (committed) {
			l->commits++;
			hist_observe(&l->commit_hist,
			    (double)(t1.tv_sec - t0.tv_sec) +
				(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		} else
			l->failed++;
		pthread_cond_broadcast(&l->done);
		if (l->notify_fd >= 0) {
			uint64_t one = 1;

			if (write(l->notify_fd, &one, sizeof(one)) < 0)
				(void)0; /* the counter is full: already due */
		}
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/*
 * Before sqlite's first use in the process: no allocation statistics.
 * They take a global mutex around every malloc sqlite makes, which the
 * writer thread paid on every row (issue 15); nothing reads them.  Too
 * late (sqlite already in use) is harmless.
 */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void
sqlite_setup(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/*
 * Open (creating if needed) the ledger at @path (a file: the writer thread
 * opens it a second time), apply pending migrations and start the writer.
 * @sync_full selects synchronous=FULL (the default: no committed row is
 * lost on power failure) over NORMAL.  Returns 0, -EIO/-EBUSY with sqlite's
 * message, or -EPROTONOSUPPORT for a ledger written by a newer broker.
 */
int
ledger_open(const char *path, bool sync_full, struct ledger **ret_ledger,
    struct npufarm_err *err)
{
	struct ledger *l;
	sqlite3 *db = NULL;
	int r, i;

	(void)pthread_once(&sqlite_once, sqlite_setup);
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	STAILQ_INIT(&l->batch);
	STAILQ_INIT(&l->queue);
	TAILQ_INIT(&l->waits);
	l->lock_fd = -1;
	l->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->notify_fd < 0) {
		r = -errno;
		free(l);
		return err_set(err, r, "ledger: eventfd: %s", strerror(-r));
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->work, NULL);
	pthread_cond_init(&l->done, NULL);
	hist_init(&l->commit_hist, HIST_SCALE_COMMIT);
	r = ledger_lock(path, &l->lock_fd, err);
	if (r >= 0)
		r = db_open(path, sync_full, &db, err);
	if (r >= 0)
		r = migrate(db, err);
	if (r >= 0)
		r = load_state(l, db, err);
	(void)sqlite3_close(db); /* set-up only: reads have their own */
	if (r >= 0)
		r = ledger_read_open(path, &l->rd, err);
	if (r >= 0)
		r = db_open(path, sync_full, &l->wdb, err);
	if (r < 0) {
		err_prefix(err, "ledger '%s': ", path);
		goto fail;
	}
	for (i = 0; i < OP_MAX; i++) {
		if (sqlite3_prepare_v3(l->wdb, op_sql[i], -1,
			SQLITE_PREPARE_PERSISTENT, &l->wr[i],
			NULL) != SQLITE_OK) {
			r = ledger_db_fail(l->wdb, err, "prepare");
			goto fail;
		}
		r = op_params(l, (enum op_kind)i, err);
		if (r < 0)
			goto fail;
	}
	if (sqlite3_prepare_v3(l->wdb, "BEGIN IMMEDIATE", -1,
		SQLITE_PREPARE_PERSISTENT, &l->w_begin, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(l->wdb, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT,
		&l->w_commit, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(l->wdb, "ROLLBACK", -1,
		SQLITE_PREPARE_PERSISTENT, &l->w_rollback, NULL) != SQLITE_OK) {
		r = ledger_db_fail(l->wdb, err, "prepare");
		goto fail;
	}
	r = -pthread_create(&l->thread, NULL, writer_main, l);
	if (r < 0) {
		err_set(err, r, "ledger: cannot start the writer thread");
		goto fail;
	}
	l->thread_started = true;
	*ret_ledger = l;
	return 0;
fail:
	ledger_close(l);
	return r;
}

static void
board_id_free(void *p)
{
	free(p);
}

static void
board_id_keep(void *p)
{
	(void)p; /* owned by the name tree */
}

static void run_waits(struct ledger *l);

/*
 * Submit what is pending, wait for the writer to finish everything, stop
 * it, finalize every statement and close.  Accepts NULL; returns NULL.
 */
struct ledger *
ledger_close(struct ledger *l)
{
	int i, rc;

	if (l == NULL)
		return NULL;
	if (l->thread_started) {
		ledger_commit(l);
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_cond_signal(&l->work);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
		if (l->fail_new && l->failed_fn != NULL) /* the last batch */
			l->failed_fn(&l->fail, l->failed_arg);
		run_waits(l); /* everything is done now */
	}
	op_block_free_chain(l->batch_blocks.head);
	op_block_free_chain(l->queue_blocks.head);
	op_block_free_chain(l->spare);
	op_block_free_chain(l->recycled);
	free(l->grants);
	for (i = 0; i < OP_MAX; i++)
		sqlite3_finalize(l->wr[i]);
	sqlite3_finalize(l->w_begin);
	sqlite3_finalize(l->w_commit);
	sqlite3_finalize(l->w_rollback);
	rc = sqlite3_close(l->wdb);
	assert(rc == SQLITE_OK);
	l->rd = ledger_read_close(l->rd);
	(void)rc;
	tdestroy(l->boards_by_id, board_id_keep);
	tdestroy(l->boards, board_id_free);
	pthread_cond_destroy(&l->work);
	pthread_cond_destroy(&l->done);
	pthread_mutex_destroy(&l->mu);
	if (l->notify_fd >= 0)
		close(l->notify_fd);
	if (l->lock_fd >= 0)
		(void)close(l->lock_fd); /* last: the database is closed */
	free(l);
	return NULL;
}

/* Call @fn(@arg) whenever a write starts a new batch. */
void
ledger_set_dirty_cb(struct ledger *l, ledger_dirty_fn *fn, void *arg)
{
	l->dirty = fn;
	l->dirty_arg = arg;
}

/*
 * Call @fn(@err, @arg) on the loop thread for every write the ledger
 * failed: one it could not queue (out of memory: the caller gets the error
 * too) and every batch the writer rolled back (reported from
 * ledger_notified()).  Without one, the writer logs its failures itself,
 * at most once a second.
 */
void
ledger_set_failed_cb(struct ledger *l, ledger_failed_fn *fn, void *arg)
{
	pthread_mutex_lock(&l->mu);
	l->failed_fn = fn;
	l->failed_arg = arg;
	pthread_mutex_unlock(&l->mu);
}

/* A write failed on the loop thread: tell failed_fn, as the writer does. */
static int
ledger_failed(
    struct ledger *l, struct npufarm_err *err, int code, const char *what)
{
	struct npufarm_err e;

	(void)err_set(&e, code, "ledger: %s", what);
	if (l->failed_fn != NULL)
		l->failed_fn(&e, l->failed_arg);
	else
		log_err("%s", e.msg);
	if (err != NULL)
		*err = e;
	return code;
}

/* True while writes wait in the batch for ledger_commit(). */
bool
ledger_pending(const struct ledger *l)
{
	return l->nbatch > 0;
}

/*
 * Hand the current batch to the writer thread and return at once: it
 * cannot fail here.  The writes become durable when the writer's
 * transaction commits (ledger_committed(), ledger_sync()); a batch that
 * fails there is reported to the failed callback.
 */
void
ledger_commit(struct ledger *l)
{
	if (l->nbatch == 0)
		return;
	pthread_mutex_lock(&l->mu);
	STAILQ_CONCAT(&l->queue, &l->batch);
	op_blocks_concat(&l->queue_blocks, &l->batch_blocks);
	l->queued++;
	l->submitted = l->queued;
	pthread_cond_signal(&l->work);
	if (l->spare == NULL) { /* take what the writer handed back */
		l->spare = l->recycled;
		l->recycled = NULL;
		l->nrecycled = 0;
	}
	pthread_mutex_unlock(&l->mu);
	l->nbatch = 0;
}

/*
 * Submit the batch and wait until the writer has finished every batch
 * submitted so far, so reads see them.  Blocks the caller for at most the
 * writer's current transaction plus this one.  Returns 0, or -EIO with the
 * writer's most recent failure (once) in @err.
 */
int
ledger_sync(struct ledger *l, struct npufarm_err *err)
{
	int r = 0;

	ledger_commit(l);
	pthread_mutex_lock(&l->mu);
	while (l->committed < l->submitted)
		pthread_cond_wait(&l->done, &l->mu);
	if (l->last_error[0] != '\0') {
		r = err_set(err, -EIO, "%s", l->last_error);
		l->last_error[0] = '\0';
	}
	pthread_mutex_unlock(&l->mu);
	return r;
}

/* Transactions the writer has committed so far (for metrics and tests). */
uint64_t
ledger_commits(const struct ledger *l)
{
	struct ledger *m = (struct ledger *)l;
	uint64_t n;

	pthread_mutex_lock(&m->mu);
	n = m->commits;
	pthread_mutex_unlock(&m->mu);
	return n;
}

/*
 * A copy of the writer's commit-time histogram in @ret_hist, and the
 * batches that failed so far in @ret_failed (for metrics).  Loop thread.
 */
void
ledger_commit_stats(
    struct ledger *l, struct hist *ret_hist, uint64_t *ret_failed)
{
	pthread_mutex_lock(&l->mu);
	*ret_hist = l->commit_hist;
	*ret_failed = l->failed;
	pthread_mutex_unlock(&l->mu);
}

/*
 * Append a write to the batch; it and its strings are copied into the
 * batch's blocks.  -ENOMEM or 0.
 */
static int
op_add(struct ledger *l, const struct op *tmpl, struct npufarm_err *err)
{
	const struct op_bind *b = op_binds[tmpl->kind];
	size_t len[OP_MAX_BINDS], total = 0;
	const char *t;
	struct op *o;
	char *p;
	int i;

	for (i = 0; i < OP_MAX_BINDS && b[i].name; i++) {
		len[i] = 0;
		if (b[i].type != BIND_TEXT)
			continue;
		memcpy(&t, (const char *)&tmpl->u + b[i].off, sizeof(t));
		len[i] = t != NULL ? strlen(t) + 1 : 0;
		total += len[i];
	}
	o = op_alloc(l, sizeof(*o) + total);
	if (o == NULL)
		return ledger_failed(l, err, -ENOMEM, "out of memory");
	memcpy(o, tmpl, sizeof(*o));
	p = o->strings;
	for (i = 0; i < OP_MAX_BINDS && b[i].name; i++) {
		if (len[i] == 0)
			continue;
		memcpy(&t, (const char *)&tmpl->u + b[i].off, sizeof(t));
		memcpy(p, t, len[i]);
		memcpy((char *)&o->u + b[i].off, &p, sizeof(p));
		p += len[i];
	}
	STAILQ_INSERT_TAIL(&l->batch, o, link);
	if (l->nbatch++ == 0 && l->dirty != NULL)
		l->dirty(l->dirty_arg);
	return 0;
}

/*
 * Retention: queue the deletion of at most @batch of the oldest lease,
 * event and attempt rows each that ended before @before_us, in the next
 * batch (so the writer thread does it, in small transactions, off the
 * loop).  Boards, artifacts, jobs and their tasks are kept.  Returns 0 or
 * -ENOMEM.  See ledger_pruned() for what it did.
 */
int
ledger_prune(
    struct ledger *l, int64_t before_us, int batch, struct npufarm_err *err)
{
	enum op_kind k;
	int r = 0;

	for (k = OP_PRUNE_LEASES; k <= OP_PRUNE_ATTEMPTS && r >= 0; k++) {
		struct op o = {
		    .kind = k,
		    .u.prune = {.before_us = before_us, .limit = batch},
		};

		r = op_add(l, &o, err);
	}
	return r;
}

/* Rows retention has deleted so far (committed or about to be). */
uint64_t
ledger_pruned(struct ledger *l)
{
	return atomic_load(&l->pruned);
}

/*
 * Bytes the ledger's rows take (its pages less the free ones; the file
 * itself does not shrink, freed pages are reused), or -EIO.
 */
int64_t
ledger_live_bytes(struct ledger *l)
{
	return ledger_read_live_bytes(l->rd);
}

/*
 * Record that a board of @kind/@key at @address is online (idle), creating
 * its row the first time.  Its id (stable across restarts) is returned in
 * *ret_id at once.
 */
int
ledger_board_upsert(struct ledger *l, const char *kind, const char *key,
    const char *address, int64_t now_us, int64_t *ret_id, bool *ret_drained,
    struct npufarm_err *err)
{
	struct board_id *probe, **found;
	struct op o = {0};
	bool drained = false;
	int r;

	probe = board_id_new(kind, key, address, 0);
	if (probe == NULL)
		return err_set(err, -ENOMEM, "ledger: out of memory");
	found = tfind(probe, &l->boards, board_id_cmp);
	if (found != NULL) {
		free(probe);
		o.kind = OP_BOARD_TOUCH;
		o.u.board_touch = (struct w_board_touch){
		    .id = (*found)->id,
		    .now_us = now_us,
		};
		drained = (*found)->drained;
	} else {
		probe->id = l->next_board_id;
		if (board_id_add(l, probe) < 0)
			return err_set(err, -ENOMEM, "ledger: out of memory");
		l->next_board_id++;
		o.kind = OP_BOARD_INSERT;
		o.u.board_insert = (struct w_board_insert){
		    .id = probe->id,
		    .kind = kind,
		    .key = key,
		    .address = address,
		    .now_us = now_us,
		};
	}
	r = op_add(l, &o, err);
	if (r < 0)
		return r;
	*ret_id = o.kind == OP_BOARD_INSERT ? o.u.board_insert.id
					    : o.u.board_touch.id;
	if (ret_drained != NULL)
		*ret_drained = drained;
	return 0;
}

/*
 * Mark board @id drained (no new leases) or not; the mark survives
 * restarts.  Returns 0, or -ENOENT for an unknown id.
 */
int
ledger_board_drain(struct ledger *l, int64_t id, bool drained, int64_t now_us,
    struct npufarm_err *err)
{
	struct board_id probe = {.id = id}, **found;
	struct op o = {
	    .kind = OP_BOARD_DRAIN,
	    .u.board_drain = {.id = id, .drained = drained, .now_us = now_us},
	};

	found = tfind(&probe, &l->boards_by_id, board_id_by_id_cmp);
	if (found == NULL)
		return err_set(
		    err, -ENOENT, "no board with id %lld", (long long)id);
	(*found)->drained = drained;
	return op_add(l, &o, err);
}

/*
 * Record board @id's tags: @tags canonical (tags.h), stored as a JSON
 * object; NULL clears them.  Returns 0, or -ENOMEM.
 */
int
ledger_board_tags(
    struct ledger *l, int64_t id, const char *tags, struct npufarm_err *err)
{
	json_t *obj = tags != NULL ? tags_json(tags) : NULL;
	char *text =
	    obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	struct op o = {
	    .kind = OP_BOARD_TAGS,
	    .u.board_tags = {.id = id, .tags = text},
	};
	int r;

	json_decref(obj);
	if (tags != NULL && text == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	r = op_add(l, &o, err);
	free(text);
	return r;
}

/* Whether board @id is drained: 1 yes, 0 no, -ENOENT unknown. */
int
ledger_board_drained(struct ledger *l, int64_t id)
{
	struct board_id probe = {.id = id}, **found;

	found = tfind(&probe, &l->boards_by_id, board_id_by_id_cmp);
	if (found == NULL)
		return -ENOENT;
	return (*found)->drained;
}

/* Record a board state transition (state names: see the schema). */
int
ledger_board_state(struct ledger *l, int64_t id, const char *state,
    const char *detail, int64_t now_us, struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_BOARD_STATE,
	    .u.board_state = {.id = id,
		.state = state,
		.detail = detail,
		.now_us = now_us},
	};

	return op_add(l, &o, err);
}

/*
 * At start-up: no registration survives a broker restart, so every board
 * still marked live becomes offline and every open lease is closed with a
 * detail saying its end was not observed.
 */
int
ledger_boards_reset(struct ledger *l, int64_t now_us, struct npufarm_err *err)
{
	struct op o = {.kind = OP_BOARDS_RESET, .u.reset = {.now_us = now_us}};
	int r;

	r = op_add(l, &o, err);
	if (r < 0)
		return r;
	o.kind = OP_LEASES_RESET;
	return op_add(l, &o, err);
}

/* Insert a lease row (granted, or ended without a grant).  Returns its id. */
int
ledger_lease_insert(struct ledger *l, const struct ledger_lease *lease,
    int64_t *ret_id, struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_LEASE_INSERT,
	    .u.lease_insert =
		{
		    .id = l->next_lease_id,
		    .key = lease->key,
		    .user = lease->user,
		    .peer = lease->peer,
		    .priority = lease->priority,
		    .requested_us = lease->requested_us,
		    .granted_us = lease->granted_us,
		    .released_us = lease->released_us,
		    .board_id = lease->board_id,
		    .matchkey = lease->matchkey,
		    .outcome = lease->outcome,
		    .detail = lease->detail,
		},
	};
	int r;

	r = op_add(l, &o, err);
	if (r < 0)
		return r;
	*ret_id = l->next_lease_id++;
	return 0;
}

/* Close lease @id at @released_us; @outcome NULL when not observed. */
int
ledger_lease_release(struct ledger *l, int64_t id, int64_t released_us,
    const char *outcome, const char *detail, struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_LEASE_RELEASE,
	    .u.lease_release =
		{
		    .id = id,
		    .released_us = released_us,
		    .outcome = outcome,
		    .detail = detail,
		},
	};

	return op_add(l, &o, err);
}

/* Append to the event log; @board_id 0 for none. */
int
ledger_event(struct ledger *l, const char *kind, int64_t board_id,
    const char *detail, int64_t now_us, struct npufarm_err *err)
{
	return ledger_event_by(l, kind, board_id, detail, NULL, now_us, err);
}

/*
 * The same, recording who did it: @actor ("alice@127.0.0.1", NULL: the
 * broker itself) goes in the event's actor column (v6).
 */
int
ledger_event_by(struct ledger *l, const char *kind, int64_t board_id,
    const char *detail, const char *actor, int64_t now_us,
    struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_EVENT,
	    .u.event =
		{
		    .at_us = now_us,
		    .board_id = board_id,
		    .kind = kind,
		    .detail = detail,
		    .actor = actor,
		},
	};

	return op_add(l, &o, err);
}

/*
 * Call @fn for every committed board, ordered by key then name.  Stops
 * early and returns @fn's value when it returns non-zero.
 */
int
ledger_foreach_board(
    struct ledger *l, ledger_board_fn *fn, void *arg, struct npufarm_err *err)
{
	return ledger_read_boards(l->rd, fn, arg, err);
}

/* Call @fn for the @limit most recent committed leases, newest first. */
int
ledger_foreach_lease(struct ledger *l, int limit, ledger_lease_fn *fn,
    void *arg, struct npufarm_err *err)
{
	return ledger_read_leases(l->rd, limit, fn, arg, err);
}

/*
 * Close lease @id as a session the broker relayed and watched: when it
 * started (the pair-up) and ended, its outcome class and what happened, and
 * its counters.
 */
int
ledger_lease_session(struct ledger *l, int64_t id,
    const struct ledger_session *sess, struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_LEASE_SESSION,
	    .u.lease_session =
		{
		    .id = id,
		    .start_us = sess->start_us,
		    .end_us = sess->end_us,
		    .outcome = sess->outcome,
		    .detail = sess->detail,
		    .requests = (int64_t)sess->requests,
		    .exceptions = (int64_t)sess->exceptions,
		    .bytes_to_board = (int64_t)sess->bytes_to_board,
		    .bytes_to_client = (int64_t)sess->bytes_to_client,
		},
	};

	return op_add(l, &o, err);
}

/* Tag open lease @id with the session id its agent will report under. */
int
ledger_lease_agent_session(
    struct ledger *l, int64_t id, const char *session, struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_LEASE_AGENT_SESSION,
	    .u.lease_agent_session = {.id = id, .session = session},
	};

	return op_add(l, &o, err);
}

/*
 * An agent's report of session @session on board @board_id: it classifies
 * the lease's session, over whatever the broker's relay saw, and is
 * idempotent (a resent report writes the same values).
 */
int
ledger_lease_report(struct ledger *l, int64_t board_id, const char *session,
    const struct ledger_report *rep, struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_LEASE_REPORT,
	    .u.lease_report =
		{
		    .board_id = board_id,
		    .session = session,
		    .start_us = rep->sess.start_us,
		    .end_us = rep->sess.end_us,
		    .reported_us = ledger_now_us(),
		    .outcome = rep->sess.outcome,
		    .detail = rep->sess.detail,
		    .requests = (int64_t)rep->sess.requests,
		    .exceptions = (int64_t)rep->sess.exceptions,
		    .bytes_to_board = (int64_t)rep->sess.bytes_to_board,
		    .bytes_to_client = (int64_t)rep->sess.bytes_to_client,
		    .signal = rep->signal,
		    .status = rep->status,
		    .timeout = rep->timeout,
		},
	};

	return op_add(l, &o, err);
}

/*
 * The number the batch being written now will have once committed, for
 * comparing with ledger_committed().
 */
uint64_t
ledger_batch_seq(const struct ledger *l)
{
	return l->submitted + 1;
}

/*
 * Batches the writer has finished (@ret_failed: how many of all batches so
 * far failed and were rolled back).  Loop thread.
 */
uint64_t
ledger_committed(struct ledger *l, uint64_t *ret_failed)
{
	uint64_t n;

	pthread_mutex_lock(&l->mu);
	n = l->committed;
	*ret_failed = l->failed;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/*
 * A descriptor that becomes readable when the writer finished a batch;
 * the loop reads it with ledger_notified().
 */
int
ledger_notify_fd(const struct ledger *l)
{
	return l->notify_fd;
}

/* Call back the waits whose batches the writer has finished. */
static void
run_waits(struct ledger *l)
{
	struct ledger_wait *w;
	struct npufarm_err e;
	uint64_t committed, errors;

	while ((w = TAILQ_FIRST(&l->waits)) != NULL) {
		pthread_mutex_lock(&l->mu);
		committed = l->committed;
		errors = l->errors;
		e = l->fail;
		pthread_mutex_unlock(&l->mu);
		if (w->seq > committed)
			break;
		TAILQ_REMOVE(&l->waits, w, link);
		w->fn(errors != w->errors ? &e : NULL, w->arg);
		free(w);
	}
}

/*
 * Call @fn(@err, @arg) on the loop thread once every write made so far is
 * committed: with @err NULL then, or with the writer's error when a batch
 * failed meanwhile (the writes may be lost).  With nothing waiting for
 * the writer, @fn runs before this returns; else from ledger_notified(),
 * or ledger_close() at the latest, in the order of the calls.  *@ret_wait
 * (may be NULL) takes a handle for ledger_after_cancel(), or NULL when @fn
 * already ran.  Returns 0, or -ENOMEM (@fn is not called).  Never blocks:
 * this is how the loop reads its own writes.
 */
int
ledger_after(struct ledger *l, ledger_done_fn *fn, void *arg,
    struct ledger_wait **ret_wait)
{
	uint64_t seq = l->submitted + (l->nbatch > 0), committed, errors;
	struct ledger_wait *w;

	pthread_mutex_lock(&l->mu);
	committed = l->committed;
	errors = l->errors;
	pthread_mutex_unlock(&l->mu);
	if (ret_wait != NULL)
		*ret_wait = NULL;
	if (seq <= committed && TAILQ_EMPTY(&l->waits)) {
		fn(NULL, arg);
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	*w = (struct ledger_wait){
	    .seq = seq, .errors = errors, .fn = fn, .arg = arg};
	TAILQ_INSERT_TAIL(&l->waits, w, link);
	if (ret_wait != NULL)
		*ret_wait = w;
	return 0;
}

/* Forget wait @w of ledger_after() without calling it.  Accepts NULL. */
void
ledger_after_cancel(struct ledger *l, struct ledger_wait *w)
{
	if (w == NULL)
		return;
	TAILQ_REMOVE(&l->waits, w, link);
	free(w);
}

/*
 * Consume the notification, and report a batch the writer rolled back
 * since the last call to the failed callback.  Loop thread.
 */
void
ledger_notified(struct ledger *l)
{
	struct npufarm_err e;
	bool failed;
	uint64_t v;

	if (read(l->notify_fd, &v, sizeof(v)) < 0)
		(void)0; /* EAGAIN: nothing new */
	pthread_mutex_lock(&l->mu);
	failed = l->fail_new;
	e = l->fail;
	l->fail_new = false;
	pthread_mutex_unlock(&l->mu);
	if (failed && l->failed_fn != NULL)
		l->failed_fn(&e, l->failed_arg);
	run_waits(l);
}

/* ---- jobs ----------------------------------------------------------- */

/* Artifact @sha256 of @size bytes is stored (idempotent). */
int
ledger_artifact(struct ledger *l, const char *sha256, uint64_t size,
    struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_ARTIFACT,
	    .u.artifact =
		{
		    .sha256 = sha256,
		    .size = (int64_t)size,
		    .stored_us = ledger_now_us(),
		},
	};

	return op_add(l, &o, err);
}

/* Record a new job; its id (assigned now) in *ret_id. */
int
ledger_job_insert(struct ledger *l, const struct ledger_job *job,
    int64_t *ret_id, struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_JOB_INSERT,
	    .u.job_insert =
		{
		    .id = l->next_job_id,
		    .key = job->key,
		    .user = job->user,
		    .peer = job->peer,
		    .tags = job->tags,
		    .priority = job->priority,
		    .queue_timeout_ms = (int64_t)(job->queue_timeout * 1000),
		    .ntasks = job->ntasks,
		    .submitted_us = job->submitted_us,
		},
	};
	int r = op_add(l, &o, err);

	if (r == 0)
		*ret_id = l->next_job_id++;
	return r;
}

int
ledger_job_state(struct ledger *l, int64_t id, const char *state,
    int64_t finished_us, struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_JOB_STATE,
	    .u.job_state = {.id = id,
		.state = state,
		.finished_us = finished_us},
	};

	return op_add(l, &o, err);
}

/* Record task @idx of job @job_id (its spec as JSON text). */
int
ledger_task_insert(struct ledger *l, int64_t job_id, int idx, const char *name,
    const char *runner, const char *spec, int64_t queued_us, int64_t *ret_id,
    struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_TASK_INSERT,
	    .u.task_insert =
		{
		    .id = l->next_task_id,
		    .job_id = job_id,
		    .idx = idx,
		    .name = name,
		    .runner = runner,
		    .spec = spec,
		    .queued_us = queued_us,
		},
	};
	int r = op_add(l, &o, err);

	if (r == 0)
		*ret_id = l->next_task_id++;
	return r;
}

/* Attempt @attempt of task @id starts on board @board_id. */
int
ledger_task_start(struct ledger *l, int64_t id, int attempt, int64_t board_id,
    int64_t now_us, struct npufarm_err *err)
{
	struct op o = {
	    .kind = OP_TASK_START,
	    .u.task_start =
		{
		    .id = id,
		    .attempt = attempt,
		    .board_id = board_id,
		    .now_us = now_us,
		},
	};
	int r = op_add(l, &o, err);

	o.kind = OP_ATTEMPT_START;
	return r < 0 ? r : op_add(l, &o, err);
}

/* Task @id waits again (its attempt was lost and it is retried). */
int
ledger_task_requeue(struct ledger *l, int64_t id, struct npufarm_err *err)
{
	struct op o = {.kind = OP_TASK_REQUEUE, .u.task_requeue = {.id = id}};

	return op_add(l, &o, err);
}

/*
 * Attempt @attempt of task @id ended as @res says; @final: that is the
 * task's terminal outcome too (else it is retried).
 */
int
ledger_task_finish(struct ledger *l, int64_t id, int attempt,
    const struct ledger_task_result *res, bool final, struct npufarm_err *err)
{
	struct op a = {
	    .kind = OP_ATTEMPT_FINISH,
	    .u.attempt_finish =
		{
		    .task_id = id,
		    .attempt = attempt,
		    .finished_us = res->finished_us,
		    .outcome = res->outcome,
		    .detail = res->detail,
		    .signal = res->signal,
		    .status = res->status,
		},
	};
	struct op t = {
	    .kind = OP_TASK_FINISH,
	    .u.task_finish =
		{
		    .id = id,
		    .outcome = res->outcome,
		    .detail = res->detail,
		    .costs = res->costs,
		    .number = res->number,
		    .finished_us = res->finished_us,
		},
	};
	int r = 0;

	if (attempt > 0)
		r = op_add(l, &a, err);
	if (r == 0 && final)
		r = op_add(l, &t, err);
	return r;
}

/* ---- job reads (ledger_read.c), on committed rows ---------------------- */

/*
 * Jobs newest first, at most @limit, optionally only in @state and of
 * @user (NULL: any).  @fn returning non-zero stops and is returned.
 */
int
ledger_foreach_job(struct ledger *l, const char *state, const char *user,
    int limit, ledger_job_fn *fn, void *arg, struct npufarm_err *err)
{
	return ledger_read_jobs(l->rd, state, user, limit, fn, arg, err);
}

/* Job @id (one call of @fn), or -ENOENT. */
int
ledger_job_get(struct ledger *l, int64_t id, ledger_job_fn *fn, void *arg,
    struct npufarm_err *err)
{
	return ledger_read_job(l->rd, id, fn, arg, err);
}

/* Jobs that are queued or running: what a restarted broker takes up. */
int
ledger_foreach_live_job(
    struct ledger *l, ledger_job_fn *fn, void *arg, struct npufarm_err *err)
{
	return ledger_read_live_jobs(l->rd, fn, arg, err);
}

/* Every task of job @job_id, by index, with its board's name. */
int
ledger_foreach_task(struct ledger *l, int64_t job_id, ledger_task_fn *fn,
    void *arg, struct npufarm_err *err)
{
	return ledger_read_tasks(l->rd, job_id, fn, arg, err);
}

/*
 * Task counts of job @job_id: @fn(state, outcome or NULL, count, @arg)
 * per group.
 */
int
ledger_task_counts(struct ledger *l, int64_t job_id, ledger_count_fn *fn,
    void *arg, struct npufarm_err *err)
{
	return ledger_read_task_counts(l->rd, job_id, fn, arg, err);
}
