/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ledger retention.  A timer on the loop decides what is old: rows that
 * ended more than retain_days ago, or, while the ledger's rows take more
 * than retain_mb, the oldest ended rows whatever their age.  It only
 * queues bounded deletes (ledger_prune()); the writer thread runs them in
 * the same small transactions as every other write, so neither the loop
 * nor a lease waits on a big DELETE.  While a round deletes something the
 * timer comes back quickly, else once a minute.  Boards, artifacts, jobs
 * and their tasks (the results) are never pruned here.
 */
#include "config.h"

#include "retention.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>

#include "broker_config.h"
#include "err.h"
#include "ledger.h"
#include "log.h"

/* Rows per table per round, and the pauses between rounds. */
#define RETENTION_BATCH   2000
#define RETENTION_BUSY_US 200000 /* while rounds delete something */
#define RETENTION_IDLE_S  60

struct retention {
	const struct broker_config *cfg; /* borrowed, outlive us */
	struct ledger *ledger;
	struct event *ev;
	uint64_t seen; /* ledger_pruned() at the last round */
	uint64_t run;  /* rows deleted since the pruning started */
	bool pruning;  /* the last round deleted something */
};

static void
arm(struct retention *r, bool busy)
{
	struct timeval tv = {
	    busy ? 0 : RETENTION_IDLE_S, busy ? RETENTION_BUSY_US : 0};

	(void)evtimer_add(r->ev, &tv);
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct retention *r = arg;
	const struct broker_config *cfg = r->cfg;
	struct ledger *ledger = r->ledger;
	int64_t now = ledger_now_us(), before = 0, live;
	uint64_t pruned = ledger_pruned(ledger);
	struct npufarm_err err;
	bool over = false, progress = pruned != r->seen;

	r->run += pruned - r->seen;
	r->seen = pruned;
	if (cfg->retain_days > 0)
		before = now - (int64_t)cfg->retain_days * 86400 * 1000000;
	if (cfg->retain_mb > 0) {
		live = ledger_live_bytes(ledger);
		if (live > cfg->retain_mb * 1024 * 1024) {
			before = now; /* the oldest ended rows, any age */
			over = true;
		}
	}
	if (r->pruning && !progress) {
		log_notice("retention: %llu old lease, event and attempt rows "
			   "pruned",
		    (unsigned long long)r->run);
		r->run = 0;
	}
	r->pruning = progress;
	if (before > 0 &&
	    ledger_prune(ledger, before, RETENTION_BATCH, &err) < 0)
		log_err("retention: %s", err.msg);
	arm(r, progress || over || r->seen == 0);
}

/*
 * Start retention of @ledger on @base, as @cfg says (a no-op timer when neither
 * retain_days nor retain_mb is set: both are read afresh each round, so SIGHUP
 * may set them).  Returns 0 or -ENOMEM.
 */
int
retention_new(struct event_base *base, const struct broker_config *cfg,
    struct ledger *ledger, struct retention **ret, struct npufarm_err *err)
{
	struct retention *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	r->cfg = cfg;
	r->ledger = ledger;
	r->ev = evtimer_new(base, tick, r);
	if (r->ev == NULL) {
		free(r);
		return err_set(err, -ENOMEM, "out of memory");
	}
	arm(r, true);
	*ret = r;
	return 0;
}

/* Stop retention.  Accepts NULL; returns NULL. */
struct retention *
retention_free(struct retention *r)
{
	if (r == NULL)
		return NULL;
	event_free(r->ev);
	free(r);
	return NULL;
}
