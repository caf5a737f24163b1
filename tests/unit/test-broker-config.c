/* SPDX-License-Identifier: Apache-2.0 */
/* broker/broker_config.c: defaults, file loading, flags, validation. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "auth.h"
#include "broker_config.h"
#include "err.h"
#include "harness.h"

static char path[64];

static void
write_config(const char *text)
{
	FILE *f;
	int fd;

	(void)snprintf(path, sizeof(path), "/tmp/npufarm-cfg-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
}

START_TEST(test_config_defaults_are_safe)
{
	struct broker_config c;

	broker_config_defaults(&c);
	ck_assert_int_eq(c.max_frame, 1024 * 1024);
	ck_assert_int_eq(c.max_connections, 0); /* from RLIMIT_NOFILE */
	ck_assert(c.request_timeout == 0);      /* wait forever, like TVM */
	ck_assert(c.unknown_key_grace == 60);
	ck_assert(c.ledger_sync_full);
	broker_config_deinit(&c);
}
END_TEST

START_TEST(test_config_file_then_flags)
{
	struct broker_config c;
	struct npufarm_err err;

	write_config("{\"listen\": [\"127.0.0.1:1\", \"127.0.0.1:2\"],"
		     " \"db\": \"/tmp/x.db\", \"request_timeout\": 2.5,"
		     " \"max_pending\": 7, \"ledger_sync\": \"normal\"}");
	broker_config_defaults(&c);
	ck_assert_int_eq(broker_config_load_file(&c, path, &err), 0);
	ck_assert_uint_eq(c.nlisten, 2);
	ck_assert_str_eq(c.db, "/tmp/x.db");
	ck_assert(c.request_timeout == 2.5);
	ck_assert_int_eq(c.max_pending, 7);
	ck_assert(!c.ledger_sync_full);
	/* A flag given later wins. */
	ck_assert_int_eq(broker_config_set(&c, "max-pending", "9", &err), 0);
	ck_assert_int_eq(c.max_pending, 9);
	ck_assert_int_eq(broker_config_check(&c, &err), 0);
	broker_config_deinit(&c);
	unlink(path);
}
END_TEST

START_TEST(test_config_errors_say_what_and_where)
{
	struct broker_config c;
	struct npufarm_err err;

	broker_config_defaults(&c);
	write_config("{\"max_frame\": 10}");
	ck_assert_int_eq(broker_config_load_file(&c, path, &err), -ERANGE);
	ck_assert(strstr(err.msg, path) && strstr(err.msg, "max_frame"));
	unlink(path);
	write_config("{\"max_frames\": 100}");
	ck_assert_int_eq(broker_config_load_file(&c, path, &err), -EINVAL);
	ck_assert(strstr(err.msg, "unknown key 'max_frames'") != NULL);
	unlink(path);
	write_config("{\"db\": 5}");
	ck_assert_int_eq(broker_config_load_file(&c, path, &err), -EINVAL);
	ck_assert(strstr(err.msg, "db: wrong type") != NULL);
	unlink(path);
	write_config("{\"db\": \"a\",\n \"db\": \"b\"}");
	ck_assert_int_eq(broker_config_load_file(&c, path, &err), -EINVAL);
	ck_assert(strstr(err.msg, "line 2") != NULL);
	unlink(path);
	ck_assert_int_eq(
	    broker_config_set(&c, "max-pending", "1.5", &err), -EINVAL);
	ck_assert_int_eq(
	    broker_config_set(&c, "max-pending", "x", &err), -EINVAL);
	ck_assert_int_eq(
	    broker_config_set(&c, "ledger-sync", "off", &err), -EINVAL);
	ck_assert_int_eq(broker_config_set(&c, "nope", "1", &err), -ENOENT);
	ck_assert_int_eq(broker_config_add_listen(&c, "nohostport", &err), 0);
	ck_assert_int_eq(broker_config_set(&c, "db", "x.db", &err), 0);
	ck_assert_int_eq(broker_config_check(&c, &err), -EINVAL);
	ck_assert(strstr(err.msg, "nohostport") != NULL);
	broker_config_deinit(&c);
}
END_TEST

/*
 * The access rules are built from a view of the configuration: plain
 * data, borrowed.  Checking the rest of the configuration reads no token
 * file: whoever builds the rules (auth_new()) does.
 */
START_TEST(test_config_auth_view)
{
	struct broker_config c;
	struct auth_config v;
	struct npufarm_err err;

	broker_config_defaults(&c);
	broker_config_auth(&c, &v);
	ck_assert_uint_eq(v.nallow, 0);
	ck_assert_ptr_null(v.agent_token_file);
	ck_assert_ptr_null(v.api_token_file);
	ck_assert_ptr_null(v.admin_token_file);
	ck_assert_int_eq(broker_config_add_allow(&c, "10.0.0.0/8", &err), 0);
	ck_assert_int_eq(broker_config_add_allow(&c, "::1", &err), 0);
	ck_assert_int_eq(broker_config_set(&c, "agent_token_file",
			     "/nonexistent/agent.token", &err),
	    0);
	ck_assert_int_eq(
	    broker_config_set(&c, "admin_token_file", "/a.token", &err), 0);
	ck_assert_int_eq(broker_config_set(&c, "db", "x.db", &err), 0);
	broker_config_auth(&c, &v);
	ck_assert_uint_eq(v.nallow, 2);
	ck_assert_str_eq(v.allow[0], "10.0.0.0/8");
	ck_assert_str_eq(v.allow[1], "::1");
	ck_assert_ptr_eq(v.agent_token_file, c.agent_token_file);
	ck_assert_str_eq(v.agent_token_file, "/nonexistent/agent.token");
	ck_assert_ptr_null(v.api_token_file);
	ck_assert_str_eq(v.admin_token_file, "/a.token");
	ck_assert_int_eq(broker_config_check(&c, &err), 0);
	broker_config_deinit(&c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("broker_config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, test_config_defaults_are_safe);
	tcase_add_test(tc, test_config_file_then_flags);
	tcase_add_test(tc, test_config_errors_say_what_and_where);
	tcase_add_test(tc, test_config_auth_view);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
