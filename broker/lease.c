/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leases, from the queue to their end (lease.h): the grant engine, and how
 * a TVM lease ended: the one place that decides it, writes it to the
 * ledger and counts it.
 *
 * The protocols report facts, in whatever order they happen:
 *   lease_relayed()       a granted lease's client was paired with its
 *                         board and the session is relayed from now on;
 *   lease_request_ended() a request ended without a board (cancelled,
 *                         expired, rejected);
 *   lease_released()      the broker ended a lease, with its reason;
 *   lease_session_ended() the relay of a lease's session is over, with
 *                         the relay's view of how it went;
 *   lease_reported()      an agent reported how a session it supervised
 *                         ended (a resend repeats the first report).
 *
 * The rule, once for every lease: a relayed session on an agent's board
 * is classified by its agent's report, which may come before or after the
 * broker's end; such a lease is held from its pair-up until both are in,
 * then counted with the report's outcome.  If no report comes within the
 * grace of the broker's end (the agent died with the session), the
 * broker's view is counted, and a report that comes later still goes to
 * the ledger only.  Every other lease, and every request that ended
 * without a board, is counted at its end by the broker's view.  Each
 * counts once, in npufarm_leases_total.
 *
 * The ledger gets every fact as it comes, in the order it comes: the end
 * (ledger_lease_release(), ledger_lease_session(), or for a request
 * without a board, its one row), and the report, which the ledger's
 * statement keeps over the relay's view whichever came first (the same
 * rule, made durable: a report may come after a restart of the broker,
 * when this process holds nothing about its lease).
 *
 * Overdue leases are counted lazily, when any lease ends and before each
 * scrape (lease_book_settle()), so no timer runs for them.  Loop thread.
 */
#include "config.h"

#include "lease.h"

#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "err.h"
#include "ledger.h"
#include "metrics.h"

/* A relayed lease, from its pair-up until it is counted. */
struct relayed {
	int64_t lease_id;
	int64_t board_id; /* an agent's board, or 0 */
	char *session;    /* the agent's session id, or NULL */
	int64_t start_us; /* pair-up, monotonic */
	bool ended;       /* the broker's end is in: in lb->awaiting */
	int outcome;      /* ... and its view (LEASE_NO_OUTCOME: none) */
	int64_t ended_us; /* monotonic */
	bool reported;    /* the agent's report is in */
	int report;       /* ... and its outcome */
	TAILQ_ENTRY(relayed) link;
	char key[]; /* the lease's board key */
};

struct lease_book {
	struct ledger *ledger;   /* borrowed */
	struct metrics *metrics; /* borrowed */
	void *by_lease;          /* tsearch of struct relayed by lease id */
	void *by_session;        /* ... of agent ones by board and session */
	/* Ended, waiting for a report, oldest first. */
	TAILQ_HEAD(, relayed) awaiting;
	int64_t grace_us; /* LEASE_REPORT_GRACE_S, or a test's */
};

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * No lease yet, writing to @ledger and counting in @metrics (both
 * borrowed; the ledger must stay open while leases end).  0 or -ENOMEM.
 */
int
lease_book_new(struct ledger *ledger, struct metrics *metrics,
    struct lease_book **ret_book)
{
	struct lease_book *lb = calloc(1, sizeof(*lb));

	if (lb == NULL)
		return -ENOMEM;
	lb->ledger = ledger;
	lb->metrics = metrics;
	TAILQ_INIT(&lb->awaiting);
	lb->grace_us = LEASE_REPORT_GRACE_S * 1000000LL;
	*ret_book = lb;
	return 0;
}

/* How long relayed agent leases wait for their report (tests). */
void
lease_book_set_report_grace(struct lease_book *lb, double seconds)
{
	lb->grace_us = (int64_t)(seconds * 1e6);
}

static void
relayed_free(void *p)
{
	struct relayed *r = p;

	free(r->session);
	free(r);
}

static void
noop_free(void *p)
{
	(void)p;
}

/*
 * Free @lb and the leases it still holds, uncounted (the broker is
 * going).  Accepts NULL; returns NULL.
 */
struct lease_book *
lease_book_free(struct lease_book *lb)
{
	if (lb == NULL)
		return NULL;
	tdestroy(lb->by_session, noop_free);
	tdestroy(lb->by_lease, relayed_free);
	free(lb);
	return NULL;
}

static int
lease_cmp(const void *a, const void *b)
{
	const struct relayed *x = a, *y = b;

	return (x->lease_id > y->lease_id) - (x->lease_id < y->lease_id);
}

static int
session_cmp(const void *a, const void *b)
{
	const struct relayed *x = a, *y = b;

	if (x->board_id != y->board_id)
		return (x->board_id > y->board_id) -
		       (x->board_id < y->board_id);
	return strcmp(x->session, y->session);
}

/* Every lease ends here, once: counted under @key as @outcome. */
static void
count(struct lease_book *lb, const char *key, int outcome)
{
	metrics_lease_count(lb->metrics, key, outcome);
}

static void
relayed_drop(struct lease_book *lb, struct relayed *r)
{
	if (r->ended)
		TAILQ_REMOVE(&lb->awaiting, r, link);
	if (r->session != NULL) {
		struct relayed **found = tfind(r, &lb->by_session, session_cmp);

		if (found != NULL && *found == r)
			(void)tdelete(r, &lb->by_session, session_cmp);
	}
	(void)tdelete(r, &lb->by_lease, lease_cmp);
	relayed_free(r);
}

/* Count the relayed leases whose report did not come in time: the
 * broker's view stands. */
static void
expire(struct lease_book *lb, int64_t now)
{
	struct relayed *r;

	while ((r = TAILQ_FIRST(&lb->awaiting)) != NULL &&
	       now - r->ended_us >= lb->grace_us) {
		count(lb, r->key, r->outcome);
		relayed_drop(lb, r);
	}
}

/* Count what is overdue now; before a scrape reads the counters. */
void
lease_book_settle(struct lease_book *lb)
{
	expire(lb, mono_us());
}

/*
 * Lease @lease_id of @key was paired with a client and its session is
 * relayed from now on; on an agent's board @board_id (else 0) under the
 * agent's session id @session (copied; NULL for other boards).  Its
 * session time runs from here to the broker's end.
 */
void
lease_relayed(struct lease_book *lb, int64_t lease_id, const char *key,
    int64_t board_id, const char *session)
{
	struct relayed *r, **found;
	size_t n;

	if (lease_id == 0)
		return; /* not tracked (out of memory at the grant) */
	if (key == NULL)
		key = "";
	n = strlen(key) + 1;
	r = calloc(1, sizeof(*r) + n);
	if (r == NULL)
		return;
	r->lease_id = lease_id;
	r->board_id = board_id;
	memcpy(r->key, key, n);
	/* Its series show from the pair-up, zeros included. */
	metrics_touch_key(lb->metrics, key);
	r->start_us = mono_us();
	if (session != NULL && board_id != 0) {
		r->session = strdup(session);
		if (r->session == NULL) {
			relayed_free(r);
			return;
		}
	}
	found = tsearch(r, &lb->by_lease, lease_cmp);
	if (found == NULL || *found != r) {
		relayed_free(r); /* out of memory, or relayed twice */
		return;
	}
	if (r->session != NULL) {
		found = tsearch(r, &lb->by_session, session_cmp);
		if (found == NULL || *found != r) {
			/* Not findable by its report: the broker's view. */
			free(r->session);
			r->session = NULL;
		}
	}
}

/*
 * Lease @lease_id of @key (0: a request that ended without a board) is
 * over for the broker, as @outcome (LEASE_NO_OUTCOME: not observed).
 * Counted now, or for a relayed session on an agent's board, when its
 * agent's report is in (see the file comment).
 */
static void
broker_end(
    struct lease_book *lb, int64_t lease_id, const char *key, int outcome)
{
	struct relayed probe = {.lease_id = lease_id}, **found = NULL, *r;
	int64_t now = mono_us();

	if (lease_id != 0)
		found = tfind(&probe, &lb->by_lease, lease_cmp);
	if (found == NULL) {
		count(lb, key, outcome);
		expire(lb, now);
		return;
	}
	r = *found;
	metrics_session_time(
	    lb->metrics, r->key, (double)(now - r->start_us) / 1e6);
	if (r->session == NULL || r->reported) {
		count(lb, r->key, r->session == NULL ? outcome : r->report);
		relayed_drop(lb, r);
	} else {
		r->ended = true;
		r->outcome = outcome;
		r->ended_us = now;
		TAILQ_INSERT_TAIL(&lb->awaiting, r, link);
	}
	expire(lb, now);
}

/* @name as an outcome, LEASE_NO_OUTCOME for NULL or none. */
static int
outcome_of(const char *name)
{
	return name != NULL ? npufarm_outcome_from_name(name)
			    : LEASE_NO_OUTCOME;
}

/*
 * A request ended without a board, as @o: its ledger row is @row
 * (outcome aside) and it counts under @row->key.
 */
void
lease_request_ended(struct lease_book *lb, const struct ledger_lease *row,
    enum npufarm_outcome o)
{
	struct ledger_lease r = *row;
	struct npufarm_err err;
	int64_t id;

	r.outcome = npufarm_outcome_name(o);
	(void)ledger_lease_insert(lb->ledger, &r, &id, &err);
	broker_end(lb, 0, r.key, (int)o);
}

/*
 * The broker ended lease @lease_id of @key as @o (enum npufarm_outcome,
 * or LEASE_NO_OUTCOME: not observed) with @detail, now.  @key NULL: the
 * lease had ended for the broker before (its board went), so this only
 * goes to the ledger.
 */
void
lease_released(struct lease_book *lb, int64_t lease_id, const char *key, int o,
    const char *detail)
{
	const char *outcome =
	    o == LEASE_NO_OUTCOME
		? NULL
		: npufarm_outcome_name((enum npufarm_outcome)o);
	struct npufarm_err err;

	(void)ledger_lease_release(
	    lb->ledger, lease_id, ledger_now_us(), outcome, detail, &err);
	if (key != NULL)
		broker_end(lb, lease_id, key, o);
}

/*
 * The relay of lease @lease_id's session is over as @sess says.  @key is
 * the lease's key while the lease was still open; NULL when it had ended
 * for the broker before (its board went): then the relay's view only goes
 * to the ledger.
 */
void
lease_session_ended(struct lease_book *lb, int64_t lease_id, const char *key,
    const struct ledger_session *sess)
{
	struct npufarm_err err;

	(void)ledger_lease_session(lb->ledger, lease_id, sess, &err);
	if (key != NULL)
		broker_end(lb, lease_id, key, outcome_of(sess->outcome));
}

/*
 * Agent board @board_id reported how its session @session ended (@rep,
 * whose outcome is a valid name).  The ledger takes it over the relay's
 * view; it classifies the session's lease unless this process did not
 * relay it, counted it already, or holds a report for it (a resend: the
 * first report stands).  0, or -errno with @err set when the ledger
 * could not take it (nothing is counted then).
 */
int
lease_reported(struct lease_book *lb, int64_t board_id, const char *session,
    const struct ledger_report *rep, struct npufarm_err *err)
{
	struct relayed probe = {.board_id = board_id}, **found, *r;
	int ret;

	ret = ledger_lease_report(lb->ledger, board_id, session, rep, err);
	if (ret < 0)
		return ret;
	probe.session = (char *)session;
	found = tfind(&probe, &lb->by_session, session_cmp);
	if (found == NULL)
		return 0;
	r = *found;
	if (r->reported)
		return 0;
	r->reported = true;
	r->report = outcome_of(rep->sess.outcome);
	if (r->ended) {
		count(lb, r->key, r->report);
		relayed_drop(lb, r);
	}
	return 0;
}

/* ---- the grant engine ------------------------------------------------ */

void
lease_grant_queue(struct sched_queue *q)
{
	struct sched_request *r;
	struct sched_slot *ss;

	while (sched_queue_free(q) > 0 && (r = sched_peek(q)) != NULL) {
		struct lease_request *lr = lease_request_of(r);

		/* q keeps its free slot, so survives a request that ends. */
		if (lr->ops->alive != NULL && !lr->ops->alive(lr))
			continue;
		if (!sched_match(q, &ss, &r))
			break;
		lr = lease_request_of(r);
		lr->ops->granted(lr, container_of(ss, struct slot, s));
	}
}
