/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sqlite ledger: boards, leases and events, durable across restarts.
 *
 * Writes never block the event loop on the disk.  The loop thread records
 * each write in the current batch (ids are assigned right there, so callers
 * get them at once); ledger_commit() hands the batch to a writer thread that
 * owns a second connection and commits every batch it finds waiting in one
 * transaction (group commit: one fsync however many batches queued up while
 * the previous fsync ran).  Reads run on a connection of their own
 * (ledger_read.c) and see committed data.  For the loop to see its own
 * writes, or to acknowledge them, ledger_after() calls back once they are
 * committed, without waiting; ledger_sync() blocks for that, and is only
 * for start-up and tools.  Failed writes are reported through the failed
 * callback.  Every function here is for the loop thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger_read.h"

struct ledger;
struct ledger_wait;
struct hist;
struct npufarm_err;

#define LEDGER_SCHEMA_VERSION 8

typedef void ledger_dirty_fn(void *arg);
typedef void ledger_failed_fn(const struct npufarm_err *err, void *arg);
/* @err: NULL when committed, else what the writer failed with. */
typedef void ledger_done_fn(const struct npufarm_err *err, void *arg);

/* An agent's report of a session it supervised. */
struct ledger_report {
	struct ledger_session sess;
	double timeout; /* the deadline the agent enforced, s; 0: none */
	int signal;     /* that ended the session child, or 0 */
	int status;     /* its exit status, or -1 */
};

struct ledger_job {
	const char *key;
	const char *user;
	const char *peer;
	double priority;
	double queue_timeout; /* s */
	int ntasks;
	int64_t submitted_us;
	const char *tags; /* JSON object text, NULL for none (v6) */
};

/* How an attempt of a task ended. */
struct ledger_task_result {
	const char *outcome;
	const char *detail; /* NULL when none */
	const char *costs;  /* JSON array text, NULL unless ok */
	int64_t number;     /* calls per repeat behind the costs */
	int signal;
	int status;
	int64_t finished_us;
};

int ledger_open(const char *path, bool sync_full, struct ledger **ret_ledger,
    struct npufarm_err *err);
struct ledger *ledger_close(struct ledger *l);
void ledger_set_dirty_cb(struct ledger *l, ledger_dirty_fn *fn, void *arg);
void ledger_set_failed_cb(struct ledger *l, ledger_failed_fn *fn, void *arg);
int64_t ledger_now_us(void);
bool ledger_pending(const struct ledger *l);
void ledger_commit(struct ledger *l);
int ledger_sync(struct ledger *l, struct npufarm_err *err);
int ledger_after(struct ledger *l, ledger_done_fn *fn, void *arg,
    struct ledger_wait **ret_wait);
void ledger_after_cancel(struct ledger *l, struct ledger_wait *w);
int ledger_prune(
    struct ledger *l, int64_t before_us, int batch, struct npufarm_err *err);
uint64_t ledger_pruned(struct ledger *l);
int64_t ledger_live_bytes(struct ledger *l);
uint64_t ledger_commits(const struct ledger *l);
void ledger_commit_stats(
    struct ledger *l, struct hist *ret_hist, uint64_t *ret_failed);

int ledger_board_upsert(struct ledger *l, const char *kind, const char *key,
    const char *address, int64_t now_us, int64_t *ret_id, bool *ret_drained,
    struct npufarm_err *err);
int ledger_board_drain(struct ledger *l, int64_t id, bool drained,
    int64_t now_us, struct npufarm_err *err);
int ledger_board_drained(struct ledger *l, int64_t id);
int ledger_board_tags(
    struct ledger *l, int64_t id, const char *tags, struct npufarm_err *err);
int ledger_board_state(struct ledger *l, int64_t id, const char *state,
    const char *detail, int64_t now_us, struct npufarm_err *err);
int ledger_boards_reset(
    struct ledger *l, int64_t now_us, struct npufarm_err *err);
int ledger_lease_insert(struct ledger *l, const struct ledger_lease *lease,
    int64_t *ret_id, struct npufarm_err *err);
int ledger_lease_release(struct ledger *l, int64_t id, int64_t released_us,
    const char *outcome, const char *detail, struct npufarm_err *err);
int ledger_lease_session(struct ledger *l, int64_t id,
    const struct ledger_session *sess, struct npufarm_err *err);
int ledger_lease_agent_session(
    struct ledger *l, int64_t id, const char *session, struct npufarm_err *err);
int ledger_lease_report(struct ledger *l, int64_t board_id, const char *session,
    const struct ledger_report *rep, struct npufarm_err *err);
uint64_t ledger_batch_seq(const struct ledger *l);
uint64_t ledger_committed(struct ledger *l, uint64_t *ret_failed);
int ledger_notify_fd(const struct ledger *l);
void ledger_notified(struct ledger *l);
int ledger_artifact(struct ledger *l, const char *sha256, uint64_t size,
    struct npufarm_err *err);
int ledger_job_insert(struct ledger *l, const struct ledger_job *job,
    int64_t *ret_id, struct npufarm_err *err);
int ledger_job_state(struct ledger *l, int64_t id, const char *state,
    int64_t finished_us, struct npufarm_err *err);
int ledger_task_insert(struct ledger *l, int64_t job_id, int idx,
    const char *name, const char *runner, const char *spec, int64_t queued_us,
    int64_t *ret_id, struct npufarm_err *err);
int ledger_task_start(struct ledger *l, int64_t id, int attempt,
    int64_t board_id, int64_t now_us, struct npufarm_err *err);
int ledger_task_requeue(struct ledger *l, int64_t id, struct npufarm_err *err);
int ledger_task_finish(struct ledger *l, int64_t id, int attempt,
    const struct ledger_task_result *res, bool final, struct npufarm_err *err);

int ledger_foreach_job(struct ledger *l, const char *state, const char *user,
    int limit, ledger_job_fn *fn, void *arg, struct npufarm_err *err);
int ledger_job_get(struct ledger *l, int64_t id, ledger_job_fn *fn, void *arg,
    struct npufarm_err *err);
int ledger_foreach_live_job(
    struct ledger *l, ledger_job_fn *fn, void *arg, struct npufarm_err *err);
int ledger_foreach_task(struct ledger *l, int64_t job_id, ledger_task_fn *fn,
    void *arg, struct npufarm_err *err);
int ledger_task_counts(struct ledger *l, int64_t job_id, ledger_count_fn *fn,
    void *arg, struct npufarm_err *err);
int ledger_event(struct ledger *l, const char *kind, int64_t board_id,
    const char *detail, int64_t now_us, struct npufarm_err *err);
int ledger_event_by(struct ledger *l, const char *kind, int64_t board_id,
    const char *detail, const char *actor, int64_t now_us,
    struct npufarm_err *err);

int ledger_foreach_board(
    struct ledger *l, ledger_board_fn *fn, void *arg, struct npufarm_err *err);
int ledger_foreach_lease(struct ledger *l, int limit, ledger_lease_fn *fn,
    void *arg, struct npufarm_err *err);
