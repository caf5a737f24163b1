/* SPDX-License-Identifier: Apache-2.0 */
/* broker/scheduler.c: priority, FIFO, fair share, withdrawal, GC. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"
#include "scheduler.h"

struct req {
	struct sched_request s;
	int tag;
};

static struct sched *s;
static struct sched_queue *q;

static void
setup(void)
{
	s = sched_new();
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(sched_queue_get(s, "rk3588", true, &q), 0);
}

static void
teardown(void)
{
	s = sched_free(s);
}

/* Serve every waiting request with fresh slots; return tags in order. */
static void
drain(int *tags, size_t n)
{
	struct sched_slot slots[64];
	struct sched_request *r;
	struct sched_slot *ss;
	size_t i;

	memset(slots, 0, sizeof(slots));
	for (i = 0; i < n; i++) {
		sched_slot_push(q, &slots[i]);
		ck_assert(sched_match(q, &ss, &r));
		ck_assert_ptr_eq(ss, &slots[i]);
		tags[i] = ((struct req *)(void *)r)->tag;
	}
	ck_assert_uint_eq(sched_queue_waiting(q), 0);
}

START_TEST(test_sched_priority_then_fifo)
{
	/* SC-1 / spec §2.4: arrival 1, 5, 1, 5, -3, 2.5 (one user) is served
	 * 5 (1st), 5 (2nd), 2.5, 1 (1st), 1 (2nd), -3. */
	static const double prio[] = {1, 5, 1, 5, -3, 2.5};
	static const int want[] = {1, 3, 5, 0, 2, 4};
	struct req reqs[6];
	int got[6];
	size_t i;

	memset(reqs, 0, sizeof(reqs));
	for (i = 0; i < 6; i++) {
		reqs[i].tag = (int)i;
		ck_assert_int_eq(
		    sched_enqueue(q, &reqs[i].s, "10.0.0.1", prio[i]), 0);
	}
	drain(got, 6);
	for (i = 0; i < 6; i++)
		ck_assert_int_eq(got[i], want[i]);
}
END_TEST

START_TEST(test_sched_fair_share_round_robin)
{
	/* alice queues 4, then bob 2, then carol 1, all priority 1. */
	static const char *users[] = {
	    "alice", "alice", "alice", "alice", "bob", "bob", "carol"};
	static const int want[] = {0, 4, 6, 1, 5, 2, 3};
	struct req reqs[7];
	int got[7];
	size_t i;

	memset(reqs, 0, sizeof(reqs));
	for (i = 0; i < 7; i++) {
		reqs[i].tag = (int)i;
		ck_assert_int_eq(sched_enqueue(q, &reqs[i].s, users[i], 1), 0);
	}
	drain(got, 7);
	for (i = 0; i < 7; i++)
		ck_assert_int_eq(got[i], want[i]);
}
END_TEST

static void
collect(struct sched_request *r, void *arg)
{
	int **p = arg;

	*(*p)++ = ((struct req *)(void *)r)->tag;
}

START_TEST(test_sched_foreach_matches_service_order)
{
	static const char *users[] = {"a", "a", "b", "c", "a"};
	static const double prio[] = {1, 1, 1, 2, 1};
	struct req reqs[5];
	int listed[5], served[5], *p = listed;
	size_t i;

	memset(reqs, 0, sizeof(reqs));
	for (i = 0; i < 5; i++) {
		reqs[i].tag = (int)i;
		ck_assert_int_eq(
		    sched_enqueue(q, &reqs[i].s, users[i], prio[i]), 0);
	}
	sched_foreach_waiting(q, collect, &p);
	drain(served, 5);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(listed[i], served[i]);
	ck_assert_int_eq(served[0], 3);
}
END_TEST

START_TEST(test_sched_withdrawn_request_is_never_matched)
{
	struct req a = {.tag = 1}, b = {.tag = 2};
	struct sched_slot slot = {0};
	struct sched_request *r;
	struct sched_slot *ss;

	ck_assert_int_eq(sched_enqueue(q, &a.s, "x", 9), 0);
	ck_assert_int_eq(sched_enqueue(q, &b.s, "y", 1), 0);
	sched_dequeue(&a.s);                 /* the client died */
	sched_dequeue(&a.s);                 /* idempotent */
	ck_assert(!sched_match(q, &ss, &r)); /* no slot yet */
	sched_slot_push(q, &slot);
	ck_assert(sched_match(q, &ss, &r));
	ck_assert_ptr_eq(r, &b.s);
	ck_assert(!sched_match(q, &ss, &r));
}
END_TEST

START_TEST(test_sched_dead_board_slot_removed)
{
	struct sched_slot s1 = {0}, s2 = {0};
	struct req a = {.tag = 1};
	struct sched_request *r;
	struct sched_slot *ss;

	sched_slot_push(q, &s1);
	sched_slot_push(q, &s2);
	sched_slot_remove(&s1); /* its board disconnected */
	ck_assert_uint_eq(sched_queue_free(q), 1);
	ck_assert_int_eq(sched_enqueue(q, &a.s, "x", 0), 0);
	ck_assert(sched_match(q, &ss, &r));
	ck_assert_ptr_eq(ss, &s2); /* oldest live slot first */
}
END_TEST

START_TEST(test_sched_queue_gc_only_when_empty)
{
	struct sched_queue *q2;
	struct sched_slot slot = {0};

	ck_assert_int_eq(sched_queue_get(s, "other", false, &q2), -ENOENT);
	ck_assert_int_eq(sched_queue_get(s, "other", true, &q2), 0);
	ck_assert_uint_eq(sched_queue_count(s), 2);
	sched_queue_add_board(q2, 1);
	sched_slot_push(q2, &slot);
	sched_queue_gc(q2);
	ck_assert_uint_eq(sched_queue_count(s), 2);
	sched_slot_remove(&slot);
	sched_queue_add_board(q2, -1);
	sched_queue_gc(q2);
	ck_assert_uint_eq(sched_queue_count(s), 1);
	ck_assert_str_eq(sched_queue_key(sched_queue_first(s)), "rk3588");
}
END_TEST

START_TEST(test_sched_many_levels_and_users)
{
	enum { N = 1000 };
	struct req *reqs = calloc(N, sizeof(*reqs));
	struct sched_request *r;
	struct sched_slot slot;
	struct sched_slot *ss;
	double last = 1e9;
	char user[16];
	size_t i;

	for (i = 0; i < N; i++) {
		(void)snprintf(user, sizeof(user), "u%zu", i % 37);
		reqs[i].tag = (int)i;
		ck_assert_int_eq(sched_enqueue(q, &reqs[i].s, user,
				     (double)(i * 7919 % 101)),
		    0);
	}
	for (i = 0; i < N; i++) {
		memset(&slot, 0, sizeof(slot));
		sched_slot_push(q, &slot);
		ck_assert(sched_match(q, &ss, &r));
		ck_assert(r->priority <= last); /* never a lower one first */
		last = r->priority;
	}
	ck_assert_uint_eq(sched_queue_waiting(q), 0);
	free(reqs);
}
END_TEST

/*
 * Emptied levels and users are reused (issue 15): requests served at once,
 * over and over, under names short and long (one longer than a user keeps
 * in place), each still shows its own user and fair share holds.
 */
START_TEST(test_sched_reuse_keeps_names_and_turns)
{
	struct req a, b, c;
	struct sched_request *r;
	struct sched_slot slot;
	struct sched_slot *ss;
	char lng[200], name[220];
	int i;

	memset(lng, 'x', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	for (i = 0; i < 200; i++) {
		(void)snprintf(
		    name, sizeof(name), "%s%d", i % 3 == 0 ? lng : "u", i);
		memset(&a, 0, sizeof(a));
		ck_assert_int_eq(
		    sched_enqueue(q, &a.s, name, (double)(i % 5)), 0);
		ck_assert_str_eq(sched_request_user(&a.s), name);
		memset(&slot, 0, sizeof(slot));
		sched_slot_push(q, &slot);
		ck_assert(sched_match(q, &ss, &r));
		ck_assert_ptr_eq(r, &a.s);
		ck_assert_uint_eq(sched_queue_waiting(q), 0);
	}
	/* After all that reuse, two users still take turns. */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	a.tag = 1;
	b.tag = 2;
	c.tag = 3;
	ck_assert_int_eq(sched_enqueue(q, &a.s, lng, 0), 0);
	ck_assert_int_eq(sched_enqueue(q, &b.s, lng, 0), 0);
	ck_assert_int_eq(sched_enqueue(q, &c.s, "short", 0), 0);
	ck_assert_str_eq(sched_request_user(&b.s), lng);
	ck_assert_str_eq(sched_request_user(&c.s), "short");
	{
		int tags[3];

		drain(tags, 3);
		ck_assert_int_eq(tags[0], 1);
		ck_assert_int_eq(tags[1], 3);
		ck_assert_int_eq(tags[2], 2);
	}
}
END_TEST

/*
 * TVM requests and native tasks share one queue and one policy: users
 * take turns whatever kind their requests are.
 */
START_TEST(test_sched_fair_share_across_kinds)
{
	static const int want[] = {0, 3, 1, 4, 2};
	struct sched_slot slots[5];
	struct sched_request *got;
	struct sched_slot *ss;
	struct req r[5];
	int tags[5], i;

	memset(r, 0, sizeof(r));
	memset(slots, 0, sizeof(slots));
	for (i = 0; i < 5; i++) {
		r[i].tag = i;
		r[i].s.kind = i < 3 ? SCHED_KIND_TASK : SCHED_KIND_TVM;
		r[i].s.needs = i < 3 ? SCHED_CAP_KERNEL : SCHED_CAP_TVM;
		ck_assert_int_eq(
		    sched_enqueue(q, &r[i].s, i < 3 ? "alice" : "bob", 0), 0);
	}
	/* Boards that can do both. */
	for (i = 0; i < 5; i++) {
		slots[i].caps = SCHED_CAP_TVM | SCHED_CAP_KERNEL;
		sched_slot_push(q, &slots[i]);
		ck_assert(sched_match(q, &ss, &got));
		tags[i] = ((struct req *)(void *)got)->tag;
	}
	ck_assert_mem_eq(tags, want, sizeof(want));
}
END_TEST

/*
 * A request goes only to a board that can serve it: a task never to a
 * plain TVM server, a TVM request never to an agent without a TVM
 * runtime; the best request that fits a free slot is served, the others
 * keep their places.
 */
START_TEST(test_sched_capabilities)
{
	struct sched_slot tvm_only, kernel_only;
	struct sched_request *got;
	struct sched_slot *ss;
	struct req task, tvm;

	memset(&task, 0, sizeof(task));
	memset(&tvm, 0, sizeof(tvm));
	memset(&tvm_only, 0, sizeof(tvm_only));
	memset(&kernel_only, 0, sizeof(kernel_only));
	task.tag = 1;
	task.s.kind = SCHED_KIND_TASK;
	task.s.needs = SCHED_CAP_KERNEL;
	tvm.tag = 2;
	tvm.s.kind = SCHED_KIND_TVM;
	tvm.s.needs = SCHED_CAP_TVM;
	tvm_only.caps = SCHED_CAP_TVM;
	kernel_only.caps = SCHED_CAP_KERNEL | SCHED_CAP_EXEC;
	/* The task is first in line, but only a TVM board is free. */
	ck_assert_int_eq(sched_enqueue(q, &task.s, "alice", 5), 0);
	sched_slot_push(q, &tvm_only);
	ck_assert(!sched_match(q, &ss, &got));
	/* A TVM request behind it takes that board; the task waits on. */
	ck_assert_int_eq(sched_enqueue(q, &tvm.s, "bob", 0), 0);
	ck_assert(sched_match(q, &ss, &got));
	ck_assert_ptr_eq(ss, &tvm_only);
	ck_assert_int_eq(((struct req *)(void *)got)->tag, 2);
	ck_assert_uint_eq(sched_queue_waiting(q), 1);
	/* A kernel board comes: the task gets it. */
	sched_slot_push(q, &kernel_only);
	ck_assert(sched_match(q, &ss, &got));
	ck_assert_ptr_eq(ss, &kernel_only);
	ck_assert_int_eq(((struct req *)(void *)got)->tag, 1);
	ck_assert_uint_eq(sched_queue_waiting(q), 0);
	/* A TVM request never goes to a board without TVM. */
	ck_assert_int_eq(sched_enqueue(q, &tvm.s, "bob", 0), 0);
	sched_slot_push(q, &kernel_only);
	ck_assert(!sched_match(q, &ss, &got));
	sched_dequeue(&tvm.s);
	sched_slot_remove(&kernel_only);
}
END_TEST

int
main(void)
{
	Suite *su = suite_create("scheduler");
	TCase *tc = tcase_create("scheduler");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_sched_priority_then_fifo);
	tcase_add_test(tc, test_sched_fair_share_round_robin);
	tcase_add_test(tc, test_sched_foreach_matches_service_order);
	tcase_add_test(tc, test_sched_withdrawn_request_is_never_matched);
	tcase_add_test(tc, test_sched_dead_board_slot_removed);
	tcase_add_test(tc, test_sched_queue_gc_only_when_empty);
	tcase_add_test(tc, test_sched_many_levels_and_users);
	tcase_add_test(tc, test_sched_fair_share_across_kinds);
	tcase_add_test(tc, test_sched_capabilities);
	tcase_add_test(tc, test_sched_reuse_keeps_names_and_turns);
	suite_add_tcase(su, tc);
	return harness_run(su);
}
