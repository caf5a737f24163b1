/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ledger's reads (ledger_read.c): a connection of the loop thread's
 * own, which sees what the writer thread has committed, and every query
 * prepared once on it.  ledger.c opens it and forwards the read functions
 * of ledger.h to it; nothing else uses this header.
 */
#pragma once

#include <stdint.h>

#include "ledger.h"

struct ledger_read;
struct npufarm_err;

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
