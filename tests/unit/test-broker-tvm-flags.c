/* SPDX-License-Identifier: Apache-2.0 */
/* broker/tvm_flags.c: TVM rpc_tracker's --host/--port/--port-end/--silent. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <syslog.h>

#include <check.h>

#include "broker_config.h"
#include "err.h"
#include "harness.h"
#include "tvm_flags.h"

static struct broker_config cfg;

static void
setup(void)
{
	broker_config_defaults(&cfg);
}

static void
teardown(void)
{
	broker_config_deinit(&cfg);
}

/* Apply @n name/value pairs (NULL-terminated) and return the result. */
static int
apply(const char *const *pairs, size_t nlisten_flags, struct npufarm_err *err)
{
	struct tvm_flags f;
	size_t i;

	tvm_flags_init(&f);
	for (i = 0; pairs[i] != NULL; i += 2)
		ck_assert_int_eq(
		    tvm_flags_set(&f, pairs[i], pairs[i + 1], err), 0);
	return tvm_flags_apply(&f, nlisten_flags, &cfg, err);
}

START_TEST(test_tvm_flags_none_change_nothing)
{
	static const char *const none[] = {NULL};
	struct npufarm_err err;

	ck_assert_int_eq(apply(none, 0, &err), 0);
	ck_assert_uint_eq(cfg.nlisten, 0);
	ck_assert_int_eq(cfg.listen_port_end, 0);
}
END_TEST

START_TEST(test_tvm_flags_range_is_listen_and_end)
{
	static const char *const f[] = {
	    "host", "10.0.0.5", "port", "9190", "port-end", "9195", NULL};
	struct npufarm_err err;

	ck_assert_int_eq(apply(f, 0, &err), 0);
	ck_assert_uint_eq(cfg.nlisten, 1);
	ck_assert_str_eq(cfg.listen[0], "10.0.0.5:9190");
	ck_assert_int_eq(cfg.listen_port_end, 9195);
}
END_TEST

START_TEST(test_tvm_flags_defaults_are_tvms)
{
	static const char *const port[] = {"port", "9192", NULL};
	static const char *const high[] = {"port", "9300", NULL};
	static const char *const any[] = {"port", "0", NULL};
	static const char *const v6[] = {"host", "::1", NULL};
	struct npufarm_err err;

	ck_assert_int_eq(apply(port, 0, &err), 0);
	ck_assert_str_eq(cfg.listen[0], "0.0.0.0:9192");
	ck_assert_int_eq(cfg.listen_port_end, TVM_FLAGS_PORT_END);
	/* TVM would bind nothing in [9300, 9199): the one port. */
	ck_assert_int_eq(apply(high, 0, &err), 0);
	ck_assert_str_eq(cfg.listen[0], "0.0.0.0:9300");
	ck_assert_int_eq(cfg.listen_port_end, 9301);
	ck_assert_int_eq(apply(any, 0, &err), 0);
	ck_assert_str_eq(cfg.listen[0], "0.0.0.0:0");
	ck_assert_int_eq(cfg.listen_port_end, 0);
	ck_assert_int_eq(apply(v6, 0, &err), 0);
	ck_assert_uint_eq(cfg.nlisten, 1);
	ck_assert_str_eq(cfg.listen[0], "[::1]:9190");
}
END_TEST

START_TEST(test_tvm_flags_replace_config_listen)
{
	static const char *const f[] = {"port", "9190", NULL};
	struct npufarm_err err;

	ck_assert_int_eq(broker_config_add_listen(&cfg, "1.2.3.4:1", &err), 0);
	ck_assert_int_eq(broker_config_add_listen(&cfg, "1.2.3.4:2", &err), 0);
	ck_assert_int_eq(apply(f, 0, &err), 0);
	ck_assert_uint_eq(cfg.nlisten, 1);
	ck_assert_str_eq(cfg.listen[0], "0.0.0.0:9190");
}
END_TEST

START_TEST(test_tvm_flags_errors)
{
	static const char *const f[] = {"port", "9190", NULL};
	static const char *const empty[] = {
	    "port", "9190", "port-end", "9190", NULL};
	struct tvm_flags tf;
	struct npufarm_err err;

	ck_assert_int_eq(apply(f, 1, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "give one of them"));
	ck_assert_int_eq(apply(empty, 0, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "must be above --port"));
	tvm_flags_init(&tf);
	ck_assert_int_eq(tvm_flags_set(&tf, "port", "9x", &err), -EINVAL);
	ck_assert_int_eq(tvm_flags_set(&tf, "port", "70000", &err), -EINVAL);
	ck_assert_int_eq(tvm_flags_set(&tf, "host", "", &err), -EINVAL);
	ck_assert(!tf.any);
}
END_TEST

START_TEST(test_tvm_flags_silent_alone)
{
	static const char *const f[] = {"silent", "", NULL};
	struct npufarm_err err;

	ck_assert_int_eq(apply(f, 1, &err), 0); /* no clash with --listen */
	ck_assert_int_eq(cfg.verbosity, LOG_WARNING);
	ck_assert_uint_eq(cfg.nlisten, 0);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("broker-tvm-flags");
	TCase *tc = tcase_create("apply");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_tvm_flags_none_change_nothing);
	tcase_add_test(tc, test_tvm_flags_range_is_listen_and_end);
	tcase_add_test(tc, test_tvm_flags_defaults_are_tvms);
	tcase_add_test(tc, test_tvm_flags_replace_config_listen);
	tcase_add_test(tc, test_tvm_flags_errors);
	tcase_add_test(tc, test_tvm_flags_silent_alone);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(suite());
}
