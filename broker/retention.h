/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ledger retention (--retain-days, --retain-mb): old lease, event and
 * attempt rows pruned in small batches by the ledger's writer thread.
 */
#pragma once

struct npufarm_err;
struct retention;
struct broker_config;
struct event_base;
struct ledger;

int retention_new(struct event_base *base, const struct broker_config *cfg,
    struct ledger *ledger, struct retention **ret, struct npufarm_err *err);
struct retention *retention_free(struct retention *r);
