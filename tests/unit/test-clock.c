/* SPDX-License-Identifier: Apache-2.0 */
/* common/clock.c: seconds as timevals, bounded. */
#include "config.h"

#include <math.h>

#include <check.h>

#include "clock.h"
#include "harness.h"

START_TEST(test_clock_tv_splits_seconds)
{
	struct timeval tv = clock_tv(1.5);

	ck_assert_int_eq(tv.tv_sec, 1);
	ck_assert_int_eq(tv.tv_usec, 500000);
	tv = clock_tv(0.000001);
	ck_assert_int_eq(tv.tv_sec, 0);
	ck_assert_int_eq(tv.tv_usec, 1);
}
END_TEST

START_TEST(test_clock_tv_bounds_what_peers_send)
{
	struct timeval tv = clock_tv(9.2e18); /* a -timeout near INT64_MAX */

	ck_assert_int_eq(tv.tv_sec, 365 * 24 * 3600);
	ck_assert_int_eq(tv.tv_usec, 0);
	tv = clock_tv(-3);
	ck_assert_int_eq(tv.tv_sec, 0);
	ck_assert_int_eq(tv.tv_usec, 0);
	tv = clock_tv(NAN);
	ck_assert_int_eq(tv.tv_sec, 0);
	tv = clock_tv(INFINITY);
	ck_assert_int_eq(tv.tv_sec, 365 * 24 * 3600);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("clock");
	TCase *tc = tcase_create("clock_tv");

	tcase_add_test(tc, test_clock_tv_splits_seconds);
	tcase_add_test(tc, test_clock_tv_bounds_what_peers_send);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
