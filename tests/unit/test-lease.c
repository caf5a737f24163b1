/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lease book (lease.c) without a broker: a real ledger in a temp dir
 * and a real metrics registry.  Each test tells it the facts of a lease
 * in one order (pair-up, the broker's end, the agent's report) and checks
 * the one decision in both places it lands: the ledger row and
 * npufarm_leases_total.  The agent's report classifies a relayed session
 * on an agent's board whichever comes first; without one within the
 * grace the broker's view counts, and a later report reaches the ledger
 * only; everything else counts by the broker's reason, once.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>

#include <npufarm/outcome.h>

#include "err.h"
#include "harness.h"
#include "lease.h"
#include "ledger.h"
#include "metrics.h"

static char dir[64];
static char db[96];
static struct ledger *ledger;
static struct metrics *metrics;
static struct lease_book *book;
static int64_t board; /* an agent's board in the ledger */

static void
setup(void)
{
	struct npufarm_err err;

	(void)snprintf(dir, sizeof(dir), "/tmp/npufarm-test-lease-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(db, sizeof(db), "%s/ledger.db", dir);
	ck_assert_msg(
	    ledger_open(db, false, &ledger, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(ledger_board_upsert(ledger, "agent", "k", "agent-1",
			     ledger_now_us(), &board, NULL, &err),
	    0);
	ck_assert_int_eq(metrics_new(16, &metrics), 0);
	ck_assert_int_eq(lease_book_new(ledger, metrics, &book), 0);
}

static void
teardown(void)
{
	book = lease_book_free(book); /* frees what it still holds */
	ledger_commit(ledger);
	ledger = ledger_close(ledger);
	metrics = metrics_free(metrics);
	(void)harness_rmtree(dir);
}

/* A lease of key "k" granted on @b, tagged with @session (NULL: none), as
 * tracker.c's grant writes it.  Its id. */
static int64_t
granted(int64_t b, const char *session)
{
	struct ledger_lease row = {
	    .key = "k",
	    .user = "alice",
	    .peer = "127.0.0.1:5000",
	    .requested_us = ledger_now_us(),
	    .granted_us = ledger_now_us(),
	    .board_id = b,
	    .matchkey = "k:0.5",
	};
	struct npufarm_err err;
	int64_t id;

	ck_assert_int_eq(ledger_lease_insert(ledger, &row, &id, &err), 0);
	if (session != NULL)
		ck_assert_int_eq(
		    ledger_lease_agent_session(ledger, id, session, &err), 0);
	return id;
}

/* The relay's view of a session that ended as @outcome. */
static struct ledger_session
view(const char *outcome, const char *detail)
{
	int64_t now = ledger_now_us();

	return (struct ledger_session){
	    .start_us = now - 2000,
	    .end_us = now,
	    .requests = 3,
	    .bytes_to_board = 10,
	    .bytes_to_client = 20,
	    .outcome = outcome,
	    .detail = detail,
	};
}

static void
session_ended(int64_t lease, const char *key, const char *outcome)
{
	struct ledger_session s = view(outcome, "the relay's view");

	lease_session_ended(book, lease, key, &s);
}

/* Agent board @b reports its session @session as @outcome. */
static void
reported(int64_t b, const char *session, const char *outcome)
{
	struct ledger_report rep = {
	    .sess = view(outcome, "the agent's report"),
	    .timeout = 10,
	    .signal = strcmp(outcome, "crash") == 0 ? 11 : 0,
	    .status = -1,
	};
	struct npufarm_err err;

	ck_assert_int_eq(lease_reported(book, b, session, &rep, &err), 0);
}

/* The registry as a scrape sees it (api_metrics.c settles first). */
static char *
scrape(void)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	ck_assert_ptr_nonnull(b);
	lease_book_settle(book);
	ck_assert_int_eq(metrics_write_registry(metrics, b), 0);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(evbuffer_copyout(b, s, n), (ev_ssize_t)n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

/* The value of the sample line starting with @series on a scrape. */
static long long
sample(const char *series)
{
	char *page = scrape(), *p = page;
	size_t n = strlen(series);
	long long v = -1;

	while ((p = strstr(p, series)) != NULL) {
		if ((p == page || p[-1] == '\n') && p[n] == ' ') {
			v = strtoll(p + n + 1, NULL, 10);
			break;
		}
		p++;
	}
	free(page);
	ck_assert_msg(v >= 0, "no sample %s", series);
	return v;
}

/* npufarm_leases_total of key "k" and @outcome. */
static long long
leases(const char *outcome)
{
	char series[96];

	(void)snprintf(series, sizeof(series),
	    "npufarm_leases_total{key=\"k\",outcome=\"%s\"}", outcome);
	return sample(series);
}

/* Every lease counted so far, whatever its outcome. */
static long long
leases_all(void)
{
	long long n = leases("unknown");
	int o;

	for (o = 0; o < NPUFARM_OUTCOME_MAX; o++)
		n += leases(npufarm_outcome_name((enum npufarm_outcome)o));
	return n;
}

/* Lease @id's committed row: "outcome|detail|reported|released". */
static char *
row(int64_t id)
{
	struct npufarm_err err;
	char sql[256];

	ck_assert_int_eq(ledger_sync(ledger, &err), 0);
	(void)snprintf(sql, sizeof(sql),
	    "SELECT outcome, detail, reported_us IS NOT NULL,"
	    " released_us IS NOT NULL FROM leases WHERE id = %" PRId64,
	    id);
	return harness_sql(db, sql);
}

static void
assert_row(int64_t id, const char *want)
{
	char *got = row(id);

	ck_assert_str_eq(got, want);
	free(got);
}

/* The report comes first, then the relay's end: the report classifies
 * the lease, counted once at the end; a resend changes nothing. */
START_TEST(test_report_before_end)
{
	int64_t id = granted(board, "s1");

	lease_relayed(book, id, "k", board, "s1");
	reported(board, "s1", "crash");
	reported(board, "s1", "crash"); /* a resend */
	/* Still relayed: nothing counted yet. */
	ck_assert_int_eq(leases_all(), 0);
	session_ended(id, "k", "exception");
	ck_assert_int_eq(leases("crash"), 1);
	ck_assert_int_eq(leases("exception"), 0);
	ck_assert_int_eq(leases_all(), 1);
	ck_assert_int_eq(sample("npufarm_session_seconds_count{key=\"k\"}"), 1);
	assert_row(id, "crash|the agent's report|1|1\n");
}
END_TEST

/* The relay ends first: the lease waits for its report, then counts as
 * the report says. */
START_TEST(test_report_after_end)
{
	int64_t id = granted(board, "s1");

	lease_relayed(book, id, "k", board, "s1");
	session_ended(id, "k", "exception");
	ck_assert_int_eq(leases_all(), 0);
	ck_assert_int_eq(sample("npufarm_session_seconds_count{key=\"k\"}"), 1);
	assert_row(id, "exception|the relay's view|0|1\n");
	reported(board, "s1", "timeout");
	ck_assert_int_eq(leases("timeout"), 1);
	ck_assert_int_eq(leases_all(), 1);
	assert_row(id, "timeout|the agent's report|1|1\n");
	/* A resend after it counted: still once. */
	reported(board, "s1", "timeout");
	ck_assert_int_eq(leases_all(), 1);
}
END_TEST

/* The counters take an agent's first report of a session: a second one
 * that says otherwise (agents resend the same) does not recount it. */
START_TEST(test_first_report_counts)
{
	int64_t id = granted(board, "s1");

	lease_relayed(book, id, "k", board, "s1");
	reported(board, "s1", "crash");
	reported(board, "s1", "ok");
	session_ended(id, "k", "exception");
	ck_assert_int_eq(leases("crash"), 1);
	ck_assert_int_eq(leases_all(), 1);
}
END_TEST

/* No report within the grace: the broker's view counts at the next
 * scrape; a lease still relayed never expires. */
START_TEST(test_no_report_within_grace)
{
	int64_t a = granted(board, "s1"), b = granted(board, "s2");

	lease_book_set_report_grace(book, 0.05);
	lease_relayed(book, a, "k", board, "s1");
	lease_relayed(book, b, "k", board, "s2");
	session_ended(a, "k", "lost");
	ck_assert_int_eq(leases_all(), 0);
	usleep(100 * 1000);
	ck_assert_int_eq(leases("lost"), 1);
	ck_assert_int_eq(leases_all(), 1);
	assert_row(a, "lost|the relay's view|0|1\n");
	/* @b is still relayed: its report, then its end, classify it. */
	reported(board, "s2", "ok");
	session_ended(b, "k", "exception");
	ck_assert_int_eq(leases("ok"), 1);
	ck_assert_int_eq(leases_all(), 2);
}
END_TEST

/* A report after the grace reaches the ledger, never the counters: the
 * lease counted once already, by the broker's view. */
START_TEST(test_late_report)
{
	int64_t id = granted(board, "s1");

	lease_book_set_report_grace(book, 0.05);
	lease_relayed(book, id, "k", board, "s1");
	session_ended(id, "k", "lost");
	usleep(100 * 1000);
	ck_assert_int_eq(leases("lost"), 1);
	reported(board, "s1", "ok");
	ck_assert_int_eq(leases("ok"), 0);
	ck_assert_int_eq(leases("lost"), 1);
	ck_assert_int_eq(leases_all(), 1);
	assert_row(id, "ok|the agent's report|1|1\n");
	/* Nor does a report of a session this process never relayed (say,
	 * from before a restart): the ledger takes it, nothing counts. */
	reported(board, "s-before-restart", "crash");
	ck_assert_int_eq(leases_all(), 1);
}
END_TEST

/* Leases that end without an agent's session, and a request that ends
 * without a board: the broker's reason, counted at once. */
START_TEST(test_end_without_session)
{
	struct ledger_lease req = {
	    .key = "k",
	    .user = "bob",
	    .peer = "127.0.0.1:6000",
	    .requested_us = ledger_now_us(),
	    .released_us = ledger_now_us(),
	    .detail = "the client left while waiting",
	};
	int64_t put = granted(board, NULL), unseen = granted(board, NULL);
	int64_t proxied = granted(board, NULL);
	char *out;

	lease_request_ended(book, &req, NPUFARM_OUTCOME_CANCELLED);
	ck_assert_int_eq(leases("cancelled"), 1);
	lease_released(book, put, "k", NPUFARM_OUTCOME_LOST, "board vanished");
	ck_assert_int_eq(leases("lost"), 1);
	lease_released(
	    book, unseen, "k", LEASE_NO_OUTCOME, "the board registered again");
	ck_assert_int_eq(leases("unknown"), 1);
	/* A relayed session on a board without an agent: the relay's view
	 * at once, with its session time. */
	lease_relayed(book, proxied, "k", 0, NULL);
	session_ended(proxied, "k", "exception");
	ck_assert_int_eq(leases("exception"), 1);
	ck_assert_int_eq(sample("npufarm_session_seconds_count{key=\"k\"}"), 1);
	ck_assert_int_eq(leases_all(), 4);
	assert_row(put, "lost|board vanished|0|1\n");
	assert_row(unseen, "NULL|the board registered again|0|1\n");
	assert_row(proxied, "exception|the relay's view|0|1\n");
	out = harness_sql(db, "SELECT outcome, detail, granted_us IS NULL"
			      " FROM leases WHERE user = 'bob'");
	ck_assert_str_eq(out, "cancelled|the client left while waiting|1\n");
	free(out);
}
END_TEST

/* The board goes during the session: the broker ends the lease (lost);
 * the relay's end that follows only reaches the ledger; the agent's
 * report, when its link is back, still classifies the lease.  Without a
 * report the broker's "lost" stands after the grace. */
START_TEST(test_board_gone)
{
	int64_t a = granted(board, "s1"), b = granted(board, "s2");

	lease_book_set_report_grace(book, 0.2);
	lease_relayed(book, a, "k", board, "s1");
	lease_released(book, a, "k", NPUFARM_OUTCOME_LOST,
	    "board's connection closed during the lease (gone)");
	session_ended(a, NULL, "crash");
	ck_assert_int_eq(leases_all(), 0);
	ck_assert_int_eq(sample("npufarm_session_seconds_count{key=\"k\"}"), 1);
	assert_row(a, "crash|the relay's view|0|1\n");
	reported(board, "s1", "timeout");
	ck_assert_int_eq(leases("timeout"), 1);
	ck_assert_int_eq(leases_all(), 1);
	assert_row(a, "timeout|the agent's report|1|1\n");

	lease_relayed(book, b, "k", board, "s2");
	lease_released(book, b, "k", NPUFARM_OUTCOME_LOST,
	    "board's connection closed during the lease (gone)");
	session_ended(b, NULL, "crash");
	ck_assert_int_eq(leases("lost"), 0);
	usleep(300 * 1000);
	ck_assert_int_eq(leases("lost"), 1);
	ck_assert_int_eq(leases("crash"), 0);
	ck_assert_int_eq(leases_all(), 2);
}
END_TEST

static Suite *
lease_suite(void)
{
	Suite *s = suite_create("lease");
	TCase *tc = tcase_create("lease");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_report_before_end);
	tcase_add_test(tc, test_report_after_end);
	tcase_add_test(tc, test_first_report_counts);
	tcase_add_test(tc, test_no_report_within_grace);
	tcase_add_test(tc, test_late_report);
	tcase_add_test(tc, test_end_without_session);
	tcase_add_test(tc, test_board_gone);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(lease_suite());
}
