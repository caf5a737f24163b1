/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's Prometheus metrics (docs/api.md "Metrics"): a registry of
 * counters and histograms keyed by board key, fed by one-line calls where
 * leases (from lease.c, which decides their outcome), tasks, relayed
 * sessions and agent links end or begin, and the text exposition of GET
 * /metrics, which adds gauges computed at scrape time (boards, queues,
 * process figures).
 *
 * Everything here runs on the loop thread.  The histograms are struct hist
 * (common/hist.h), which the ledger's writer fills too.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

struct evbuffer;
struct metrics;

int metrics_new(size_t max_keys, struct metrics **ret_metrics);
struct metrics *metrics_free(struct metrics *m);

void metrics_lease_count(struct metrics *m, const char *key, int outcome);
void metrics_session_time(struct metrics *m, const char *key, double seconds);
void metrics_queue_wait(struct metrics *m, const char *key, double seconds);
void metrics_task_end(struct metrics *m, const char *key, const char *outcome);
void metrics_task_run(struct metrics *m, const char *key, double seconds);
void metrics_relay_bytes(
    struct metrics *m, uint64_t to_board, uint64_t to_client);
void metrics_agent_connect(struct metrics *m);

void metrics_touch_key(struct metrics *m, const char *key);
int metrics_write_registry(struct metrics *m, struct evbuffer *out);
int metrics_add_header(
    struct evbuffer *out, const char *name, const char *type, const char *help);
int metrics_add_key_label(struct evbuffer *out, const char *key);
int metrics_add_label_value(struct evbuffer *out, const char *v);
int metrics_add_hist(struct evbuffer *out, const char *name, const char *labels,
    const struct hist *h);
