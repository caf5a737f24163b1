/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ledger's reads (ledger_read.c): a connection of the loop thread's
 * own, which sees what the writer thread has committed, and every query
 * prepared once on it; and the rows as the ledger reads and writes them.
 * ledger.c opens it and forwards the read functions of ledger.h to it;
 * others take only the rows from here (through ledger.h).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct ledger_read;
struct npufarm_err;

/*
 * A lease that failed (the leases among board_history's failures; 'wrong'
 * is a task's outcome only), as the partial index leases_failed has it and
 * as a query must spell it for sqlite to use that index (unqualified: in a
 * subquery over leases it is the lease's outcome): comparisons, not IN (see
 * version 7).  Migration 8 creates the index with it: never change it;
 * a new spelling needs a new index in a new migration.
 */
#define LEASE_FAILED                                                        \
	"outcome = 'timeout' OR outcome = 'exception' OR outcome = 'crash'" \
	" OR outcome = 'lost'"

struct ledger_board {
	int64_t id;
	const char *kind;
	const char *key;
	const char *address;
	const char *name;
	const char *state;
	int64_t first_seen_us;
	int64_t last_seen_us;
	const char *detail; /* NULL when none */
	bool drained;       /* an operator drained it */
	const char *tags;   /* JSON object text, NULL when none (v6) */
	int64_t runs;       /* TVM sessions and task attempts it ran */
	int64_t failures;   /* of them timeout, exception, crash, lost, wrong */
};

/* How a relayed session ended (ledger_lease_session()). */
struct ledger_session {
	int64_t start_us;
	int64_t end_us;
	uint64_t requests;   /* client requests forwarded */
	uint64_t exceptions; /* kException packets to the client */
	uint64_t bytes_to_board;
	uint64_t bytes_to_client;
	const char *outcome; /* an outcome class name */
	const char *detail;
};

struct ledger_lease {
	int64_t id;
	const char *key;
	const char *user;
	const char *peer;
	double priority;
	int64_t requested_us;
	int64_t granted_us;  /* 0 when never granted */
	int64_t released_us; /* 0 while open */
	int64_t board_id;    /* 0 when none */
	const char *board;   /* board name (queries only), NULL when none */
	const char *matchkey;
	const char *outcome; /* NULL while open or when not observed */
	const char *detail;
	struct ledger_session session; /* queries: start_us 0 if not relayed */
};

/* Row callbacks: strings are borrowed for the duration of the call. */
typedef int ledger_board_fn(const struct ledger_board *b, void *arg);
typedef int ledger_lease_fn(const struct ledger_lease *l, void *arg);

/* Rows of the job reads (ledger_read.c); strings borrowed for the call. */
struct ledger_job_row {
	int64_t id;
	const char *key, *user, *state;
	double priority, queue_timeout;
	int ntasks;
	int64_t submitted_us, finished_us; /* 0: not yet */
	const char *tags; /* JSON object text the boards must carry, or NULL */
};

struct ledger_task_row {
	int64_t id, job_id;
	int idx;
	const char *name, *runner, *spec, *state;
	const char *outcome; /* NULL until done */
	int attempts;
	int64_t board_id;  /* 0: never ran */
	const char *board; /* its name, or NULL */
	const char *costs; /* JSON text, or NULL */
	int64_t number;
	const char *detail;
	int64_t queued_us, started_us, finished_us;
};

typedef int ledger_job_fn(const struct ledger_job_row *row, void *arg);
typedef int ledger_task_fn(const struct ledger_task_row *row, void *arg);
typedef void ledger_count_fn(
    const char *state, const char *outcome, int count, void *arg);

int ledger_read_open(
    const char *path, struct ledger_read **ret, struct npufarm_err *err);
struct ledger_read *ledger_read_close(struct ledger_read *rd);

int ledger_read_boards(struct ledger_read *rd, ledger_board_fn *fn, void *arg,
    struct npufarm_err *err);
int ledger_read_leases(struct ledger_read *rd, int limit, ledger_lease_fn *fn,
    void *arg, struct npufarm_err *err);
int ledger_read_jobs(struct ledger_read *rd, const char *state,
    const char *user, int limit, ledger_job_fn *fn, void *arg,
    struct npufarm_err *err);
int ledger_read_job(struct ledger_read *rd, int64_t id, ledger_job_fn *fn,
    void *arg, struct npufarm_err *err);
int ledger_read_live_jobs(struct ledger_read *rd, ledger_job_fn *fn, void *arg,
    struct npufarm_err *err);
int ledger_read_tasks(struct ledger_read *rd, int64_t job_id,
    ledger_task_fn *fn, void *arg, struct npufarm_err *err);
int ledger_read_task_counts(struct ledger_read *rd, int64_t job_id,
    ledger_count_fn *fn, void *arg, struct npufarm_err *err);
int64_t ledger_read_live_bytes(struct ledger_read *rd);
