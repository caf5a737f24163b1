/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics registry without a broker: label escaping, histogram
 * bucketing, counting a relayed agent lease once by its agent's report
 * whichever comes first (decided by the lease book, lease.c, over a real
 * ledger in a temp dir), and the bound on distinct keys.
 */
#include "config.h"

#include <math.h>
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

/* The buffer's text, NUL-terminated (malloc'd). */
static char *
text(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(evbuffer_copyout(b, s, n), (ev_ssize_t)n);
	s[n] = '\0';
	return s;
}

/* The registry's exposition (malloc'd). */
static char *
registry(struct metrics *m)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	ck_assert_int_eq(metrics_write_registry(m, b), 0);
	s = text(b);
	evbuffer_free(b);
	return s;
}

/* A lease book over a fresh ledger in a temp dir, counting in @m. */
struct book {
	char dir[64];
	char db[96];
	struct ledger *ledger;
	struct lease_book *lb;
};

static void
book_open(struct book *bk, struct metrics *m)
{
	struct npufarm_err err;

	(void)snprintf(bk->dir, sizeof(bk->dir), "/tmp/npufarm-metrics-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(bk->dir));
	(void)snprintf(bk->db, sizeof(bk->db), "%s/ledger.db", bk->dir);
	ck_assert_msg(
	    ledger_open(bk->db, false, &bk->ledger, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(lease_book_new(bk->ledger, m, &bk->lb), 0);
}

static void
book_close(struct book *bk)
{
	bk->lb = lease_book_free(bk->lb); /* frees what is still parked */
	ledger_commit(bk->ledger);
	bk->ledger = ledger_close(bk->ledger);
	ck_assert_int_eq(harness_rmtree(bk->dir), 0);
}

/* The relay's view of a session that ended as @outcome. */
static struct ledger_session
sess(const char *outcome)
{
	return (struct ledger_session){.start_us = 1000,
	    .end_us = 2000,
	    .outcome = outcome,
	    .detail = "x"};
}

/* An agent's report of a session that ended as @outcome. */
static struct ledger_report
report(const char *outcome)
{
	return (struct ledger_report){.sess = sess(outcome), .status = -1};
}

static void
reported(
    struct book *bk, int64_t board, const char *session, const char *outcome)
{
	struct ledger_report rep = report(outcome);
	struct npufarm_err err;

	ck_assert_int_eq(lease_reported(bk->lb, board, session, &rep, &err), 0);
}

static void
session_ended(struct book *bk, int64_t lease, const char *outcome)
{
	struct ledger_session s = sess(outcome);

	lease_session_ended(bk->lb, lease, "k", &s);
}

/* The page a scrape sees (api_metrics.c settles the book first). */
static char *
scrape(struct book *bk, struct metrics *m)
{
	lease_book_settle(bk->lb);
	return registry(m);
}

/* Whether @page has the line @line exactly. */
static int
has_line(const char *page, const char *line)
{
	size_t n = strlen(line);
	const char *p = page;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == page || p[-1] == '\n') && p[n] == '\n')
			return 1;
		p++;
	}
	return 0;
}

START_TEST(test_label_value_escaping)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	ck_assert_int_eq(metrics_add_label_value(b, "plain"), 0);
	ck_assert_int_eq(metrics_add_label_value(b, "|a\"b\\c\nd\"\"|"), 0);
	ck_assert_int_eq(metrics_add_label_value(b, ""), 0);
	ck_assert_int_eq(metrics_add_label_value(b, "\\\n"), 0);
	ck_assert_int_eq(metrics_add_label_value(b, "utf-8 \xc3\xa9 {x=1}"), 0);
	s = text(b);
	ck_assert_str_eq(s, "plain|a\\\"b\\\\c\\nd\\\"\\\"|\\\\\\nutf-8 "
			    "\xc3\xa9 {x=1}");
	free(s);
	evbuffer_free(b);
}
END_TEST

/* A key with every awkward character comes out escaped in the series. */
START_TEST(test_label_escaping_in_series)
{
	struct metrics *m;
	char *s;

	ck_assert_int_eq(metrics_new(10, &m), 0);
	metrics_lease_count(m, "we\"ird\\key\n", NPUFARM_OUTCOME_OK);
	s = registry(m);
	ck_assert_msg(has_line(s, "npufarm_leases_total{key=\"we\\\"ird\\\\key"
				  "\\n\",outcome=\"ok\"} 1"),
	    "%s", s);
	ck_assert_msg(has_line(s, "npufarm_queue_wait_seconds_count{key=\"we"
				  "\\\"ird\\\\key\\n\"} 0"),
	    "%s", s);
	free(s);
	metrics_free(m);
}
END_TEST

START_TEST(test_hist_buckets)
{
	struct hist h;
	struct evbuffer *b = evbuffer_new();
	char *s;

	hist_init(&h, HIST_SCALE_SESSION);
	ck_assert_uint_eq(h.nbounds, 20);
	ck_assert(h.bounds[0] == 0.001 && h.bounds[h.nbounds - 1] == 3600);
	hist_observe(&h, 0.001);  /* le is inclusive */
	hist_observe(&h, 0.0011); /* the next bucket */
	hist_observe(&h, -2);     /* clock stepped back: 0 */
	hist_observe(&h, 3600);
	hist_observe(&h, 3600.5); /* +Inf only */
	hist_observe(&h, NAN);    /* ignored */
	ck_assert_uint_eq(h.count, 5);
	ck_assert_uint_eq(h.buckets[0], 2);
	ck_assert_uint_eq(h.buckets[1], 1);
	ck_assert_uint_eq(h.buckets[19], 1);
	ck_assert_uint_eq(h.buckets[20], 1);
	ck_assert_int_eq(metrics_add_hist(b, "x_seconds", "k=\"v\"", &h), 0);
	s = text(b);
	ck_assert(has_line(s, "x_seconds_bucket{k=\"v\",le=\"0.001\"} 2"));
	ck_assert(has_line(s, "x_seconds_bucket{k=\"v\",le=\"0.0025\"} 3"));
	ck_assert(has_line(s, "x_seconds_bucket{k=\"v\",le=\"1800\"} 3"));
	ck_assert(has_line(s, "x_seconds_bucket{k=\"v\",le=\"3600\"} 4"));
	ck_assert(has_line(s, "x_seconds_bucket{k=\"v\",le=\"+Inf\"} 5"));
	ck_assert(has_line(s, "x_seconds_count{k=\"v\"} 5"));
	ck_assert_msg(has_line(s, "x_seconds_sum{k=\"v\"} 7200.5021"), "%s", s);
	free(s);
	/* No labels: no braces on _sum and _count. */
	(void)evbuffer_drain(b, evbuffer_get_length(b));
	hist_init(&h, HIST_SCALE_COMMIT);
	hist_observe(&h, 0.0001);
	ck_assert_int_eq(metrics_add_hist(b, "c_seconds", "", &h), 0);
	s = text(b);
	ck_assert(has_line(s, "c_seconds_bucket{le=\"0.0001\"} 1"));
	ck_assert(has_line(s, "c_seconds_bucket{le=\"10\"} 1"));
	ck_assert(has_line(s, "c_seconds_bucket{le=\"+Inf\"} 1"));
	ck_assert(has_line(s, "c_seconds_sum 0.0001"));
	ck_assert(has_line(s, "c_seconds_count 1"));
	free(s);
	evbuffer_free(b);
}
END_TEST

/* The agent's report, before or after the broker's end, classifies the
 * lease; each lease counts once. */
START_TEST(test_agent_report_stands)
{
	struct ledger_lease row = {
	    .key = "k", .user = "u", .peer = "p", .requested_us = 1000};
	struct metrics *m;
	struct book bk;
	char *s;

	ck_assert_int_eq(metrics_new(10, &m), 0);
	book_open(&bk, m);
	/* Relay first, then the report. */
	lease_relayed(bk.lb, 1, "k", 7, "s1");
	session_ended(&bk, 1, "exception");
	s = scrape(&bk, m);
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"exception\"} 0"));
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"timeout\"} 0"));
	free(s);
	reported(&bk, 7, "s1", "timeout");
	reported(&bk, 7, "s1", "timeout"); /* a resend */
	/* The report first, then the broker's end. */
	lease_relayed(bk.lb, 2, "k", 7, "s2");
	reported(&bk, 7, "s2", "crash");
	lease_released(bk.lb, 2, "k", NPUFARM_OUTCOME_LOST, "board gone");
	/* Not an agent's board: the broker's view at once. */
	lease_relayed(bk.lb, 3, "k", 0, NULL);
	session_ended(&bk, 3, "ok");
	/* Never relayed; and a request without a board. */
	lease_released(bk.lb, 4, "k", LEASE_NO_OUTCOME, "not observed");
	lease_request_ended(bk.lb, &row, NPUFARM_OUTCOME_EXPIRED);
	/* A report nobody waits for. */
	reported(&bk, 7, "s-unknown", "ok");
	s = scrape(&bk, m);
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"timeout\"} 1"));
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"crash\"} 1"));
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"ok\"} 1"));
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"unknown\"} 1"));
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"expired\"} 1"));
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"exception\"} 0"));
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"lost\"} 0"));
	ck_assert(has_line(s, "npufarm_session_seconds_count{key=\"k\"} 3"));
	free(s);
	book_close(&bk);
	metrics_free(m);
}
END_TEST

/* No report within the grace: the broker's view counts, and a late
 * report changes nothing. */
START_TEST(test_agent_report_overdue)
{
	struct metrics *m;
	struct book bk;
	char *s;

	ck_assert_int_eq(metrics_new(10, &m), 0);
	book_open(&bk, m);
	lease_book_set_report_grace(bk.lb, 0.05);
	lease_relayed(bk.lb, 1, "k", 7, "s1");
	session_ended(&bk, 1, "lost");
	/* A lease still relayed is never expired. */
	lease_relayed(bk.lb, 2, "k", 7, "s2");
	usleep(100 * 1000);
	s = scrape(&bk, m);
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"lost\"} 1"));
	free(s);
	reported(&bk, 7, "s1", "ok");
	reported(&bk, 7, "s2", "timeout");
	session_ended(&bk, 2, "exception");
	s = scrape(&bk, m);
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"ok\"} 0"));
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"lost\"} 1"));
	ck_assert(has_line(s, "npufarm_leases_total{key=\"k\",outcome="
			      "\"timeout\"} 1"));
	free(s);
	book_close(&bk); /* frees what is still parked */
	metrics_free(m);
}
END_TEST

START_TEST(test_keys_bounded)
{
	struct metrics *m;
	char *s;

	ck_assert_int_eq(metrics_new(2, &m), 0);
	metrics_task_end(m, "b", "ok");
	metrics_task_end(m, "a", "ok");
	metrics_task_end(m, "c", "crash");
	metrics_task_end(m, "d", "crash");
	metrics_task_run(m, "a", 0.5);
	metrics_queue_wait(m, "e", 0.5);
	metrics_relay_bytes(m, 10, 20);
	metrics_agent_connect(m);
	s = registry(m);
	ck_assert(
	    has_line(s, "npufarm_tasks_total{key=\"a\",outcome=\"ok\"} 1"));
	ck_assert(
	    has_line(s, "npufarm_tasks_total{key=\"b\",outcome=\"ok\"} 1"));
	ck_assert(has_line(s, "npufarm_tasks_total{key=\"_other\",outcome="
			      "\"crash\"} 2"));
	ck_assert(strstr(s, "key=\"c\"") == NULL);
	ck_assert(has_line(s, "npufarm_task_run_seconds_count{key=\"a\"} 1"));
	ck_assert(has_line(s, "npufarm_queue_wait_seconds_count{key="
			      "\"_other\"} 1"));
	/* Sorted, "_other" last. */
	ck_assert(strstr(s, "{key=\"a\"") < strstr(s, "{key=\"b\""));
	ck_assert(strstr(s, "{key=\"b\"") < strstr(s, "{key=\"_other\""));
	ck_assert(has_line(s, "npufarm_relay_bytes_total{direction="
			      "\"to_board\"} 10"));
	ck_assert(has_line(s, "npufarm_relay_bytes_total{direction="
			      "\"to_client\"} 20"));
	ck_assert(has_line(s, "npufarm_agent_link_connects_total 1"));
	free(s);
	metrics_free(m);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, test_label_value_escaping);
	tcase_add_test(tc, test_label_escaping_in_series);
	tcase_add_test(tc, test_hist_buckets);
	tcase_add_test(tc, test_agent_report_stands);
	tcase_add_test(tc, test_agent_report_overdue);
	tcase_add_test(tc, test_keys_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(metrics_suite());
}
