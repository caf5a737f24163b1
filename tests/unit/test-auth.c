/* SPDX-License-Identifier: Apache-2.0 */
/*
 * broker/auth.c and common/secret.c: CIDR parsing and matching, token
 * files, constant-time comparison, the agent check, route scopes, the
 * exposure warnings, and what SIGHUP may change (broker_config_reload).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <event2/http.h>

#include "auth.h"
#include "broker_config.h"
#include "err.h"
#include "harness.h"
#include "secret.h"

static char dir[64];

static void
setup(void)
{
	(void)snprintf(dir, sizeof(dir), "/tmp/npufarm-auth-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	char cmd[128];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

/* Write @text to DIR/@name with @mode; returns the path (static). */
static const char *
file(const char *name, const char *text, mode_t mode)
{
	static char path[4][128];
	static int next;
	char *p = path[next++ % 4];
	FILE *f;

	(void)snprintf(p, 128, "%s/%s", dir, name);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(p, mode), 0);
	return p;
}

static struct sockaddr_storage
sa(const char *host)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (void *)&ss;
	struct sockaddr_in6 *in6 = (void *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		ck_abort_msg("bad test address %s", host);
	return ss;
}

static bool
match(const char *cidr, const char *host)
{
	struct auth_cidr c;
	struct sockaddr_storage ss = sa(host);
	struct npufarm_err err = {0};

	ck_assert_msg(
	    auth_cidr_parse(cidr, &c, &err) == 0, "%s: %s", cidr, err.msg);
	return auth_cidr_match(&c, (struct sockaddr *)&ss);
}

START_TEST(test_cidr_parse_forms)
{
	struct auth_cidr c;
	char buf[64];

	ck_assert_int_eq(auth_cidr_parse("10.0.0.0/8", &c, NULL), 0);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 8);
	ck_assert_int_eq(auth_cidr_parse("192.168.1.7", &c, NULL), 0);
	ck_assert_uint_eq(c.prefix, 32);
	ck_assert_int_eq(auth_cidr_parse("::1", &c, NULL), 0);
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.prefix, 128);
	ck_assert_int_eq(auth_cidr_parse("fd00::/8", &c, NULL), 0);
	auth_cidr_format(&c, buf, sizeof(buf));
	ck_assert_str_eq(buf, "fd00::/8");
	ck_assert_int_eq(auth_cidr_parse("0.0.0.0/0", &c, NULL), 0);
	ck_assert_uint_eq(c.prefix, 0);
	ck_assert_int_eq(auth_cidr_parse("::/0", &c, NULL), 0);
}
END_TEST

/* Each bad input: the error names the input and the part at fault. */
START_TEST(test_cidr_parse_errors_say_what_and_where)
{
	static const struct {
		const char *in, *msg;
	} cases[] = {
	    {"", "expected ADDRESS[/PREFIX]"},
	    {"/8", "expected ADDRESS[/PREFIX]"},
	    {"10.0.0.300/8", "'10.0.0.300' is not an IPv4 or IPv6 address"},
	    {"farm.lan/24", "'farm.lan' is not an IPv4 or IPv6 address"},
	    {"10.0.0.0/33", "prefix '33' is not a number 0..32"},
	    {"::/129", "prefix '129' is not a number 0..128"},
	    {"10.0.0.0/", "prefix '' is not a number"},
	    {"10.0.0.0/8x", "prefix '8x' is not a number"},
	    {"10.0.0.0/-1", "prefix '-1' is not a number"},
	    {"10.1.2.3/8", "host bits are set after /8; the network is "
			   "10.0.0.0/8"},
	    {"fe80::1/10", "the network is fe80::/10"},
	};
	struct npufarm_err err;
	struct auth_cidr c;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(
		    auth_cidr_parse(cases[i].in, &c, &err), -EINVAL);
		ck_assert_msg(strstr(err.msg, cases[i].msg) != NULL,
		    "'%s': got '%s'", cases[i].in, err.msg);
		ck_assert_msg(cases[i].in[0] == '\0' ||
				  strstr(err.msg, cases[i].in) != NULL,
		    "'%s' not named in '%s'", cases[i].in, err.msg);
	}
}
END_TEST

START_TEST(test_cidr_match_ipv4)
{
	ck_assert(match("10.0.0.0/8", "10.255.1.2"));
	ck_assert(!match("10.0.0.0/8", "11.0.0.1"));
	ck_assert(match("192.168.4.0/22", "192.168.7.255"));
	ck_assert(!match("192.168.4.0/22", "192.168.8.0"));
	/* /32: that host only. */
	ck_assert(match("203.0.113.9/32", "203.0.113.9"));
	ck_assert(!match("203.0.113.9/32", "203.0.113.8"));
	/* /0: every IPv4 address, no IPv6 one. */
	ck_assert(match("0.0.0.0/0", "1.2.3.4"));
	ck_assert(match("0.0.0.0/0", "255.255.255.255"));
	ck_assert(!match("0.0.0.0/0", "2001:db8::1"));
}
END_TEST

START_TEST(test_cidr_match_ipv6)
{
	ck_assert(match("::1/128", "::1"));
	ck_assert(!match("::1/128", "::2"));
	ck_assert(match("fe80::/10", "febf::1"));
	ck_assert(!match("fe80::/10", "fec0::1"));
	ck_assert(match("2001:db8::/32", "2001:db8:ffff::7"));
	ck_assert(!match("2001:db8::/32", "10.0.0.1"));
	ck_assert(match("::/0", "2001:db8::1"));
	ck_assert(!match("::/0", "10.0.0.1"));
}
END_TEST

/* What a dual-stack socket reports for an IPv4 peer matches as IPv4. */
START_TEST(test_cidr_match_v4_mapped)
{
	ck_assert(match("10.0.0.0/8", "::ffff:10.1.2.3"));
	ck_assert(!match("10.0.0.0/8", "::ffff:11.1.2.3"));
	ck_assert(match("127.0.0.0/8", "::ffff:127.0.0.1"));
	ck_assert(match("0.0.0.0/0", "::ffff:8.8.8.8"));
	ck_assert(match("::ffff:0:0/96", "::ffff:8.8.8.8"));
	ck_assert(match("::/0", "::ffff:8.8.8.8"));
	/* Not mapped: ::a01:203 is not 10.1.2.3. */
	ck_assert(!match("10.0.0.0/8", "::a01:203"));
}
END_TEST

START_TEST(test_secret_file_rules)
{
	struct npufarm_err err = {0};
	char *s = NULL, big[SECRET_MAX + 2];

	ck_assert_int_eq(
	    secret_read_file(file("t", "s3cr3t-Token_1\n", 0600), &s, &err), 0);
	ck_assert_str_eq(s, "s3cr3t-Token_1");
	secret_free(s);
	ck_assert_int_eq(
	    secret_read_file(file("t2", "abc \r\n\t\n", 0600), &s, &err), 0);
	ck_assert_str_eq(s, "abc");
	secret_free(s);

	ck_assert_int_eq(
	    secret_read_file(file("e", "\n\n", 0600), &s, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "empty"));
	ck_assert_ptr_nonnull(strstr(err.msg, "/e'"));
	ck_assert_int_eq(
	    secret_read_file(file("sp", "two words\n", 0600), &s, &err),
	    -EINVAL);
	ck_assert_msg(strstr(err.msg, "byte 3 (0x20)") != NULL, "%s", err.msg);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(
	    secret_read_file(file("big", big, 0600), &s, &err), -EFBIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "larger than 4096 bytes"));
	ck_assert_int_eq(
	    secret_read_file("/nonexistent/token", &s, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "'/nonexistent/token'"));
}
END_TEST

START_TEST(test_secret_equal)
{
	ck_assert(secret_equal("abc", "abc"));
	ck_assert(!secret_equal("abc", "abd"));
	ck_assert(!secret_equal("abc", "ab"));
	ck_assert(!secret_equal("abc", "abcd"));
	ck_assert(!secret_equal("abc", ""));
	ck_assert(!secret_equal("abc", NULL));
}
END_TEST

static struct auth *
build(struct broker_config *c, int expect, const char *msg)
{
	struct npufarm_err err = {0};
	struct auth_config view;
	struct auth *a = NULL;

	broker_config_auth(c, &view);
	ck_assert_int_eq(auth_new(&view, &a, &err), expect);
	if (msg != NULL)
		ck_assert_msg(
		    strstr(err.msg, msg) != NULL, "got '%s'", err.msg);
	return a;
}

/* No --allow: loopback only, in every spelling a socket reports. */
START_TEST(test_auth_default_allows_loopback_only)
{
	struct broker_config c;
	struct auth *a;

	broker_config_defaults(&c);
	a = build(&c, 0, NULL);
	ck_assert(auth_peer_allowed(a, "127.0.0.1"));
	ck_assert(auth_peer_allowed(a, "127.9.8.7"));
	ck_assert(auth_peer_allowed(a, "::1"));
	ck_assert(auth_peer_allowed(a, "::ffff:127.0.0.1"));
	ck_assert(!auth_peer_allowed(a, "10.0.0.1"));
	ck_assert(!auth_peer_allowed(a, "2001:db8::1"));
	ck_assert(!auth_peer_allowed(a, "not-an-address"));
	auth_free(a);

	/* --allow replaces the default: loopback is in only if listed. */
	ck_assert_int_eq(broker_config_add_allow(&c, "10.0.0.0/8", NULL), 0);
	a = build(&c, 0, NULL);
	ck_assert(auth_peer_allowed(a, "10.2.3.4"));
	ck_assert(!auth_peer_allowed(a, "127.0.0.1"));
	auth_free(a);
	broker_config_deinit(&c);
}
END_TEST

/* The rules need no broker configuration: plain data builds them. */
START_TEST(test_auth_from_plain_data)
{
	static const char *const allow[] = {"192.168.0.0/16", "::1"};
	struct auth_config ac = {.allow = allow, .nallow = 2};
	struct npufarm_err err = {0};
	struct auth *a = NULL;
	char why[128];

	ck_assert_int_eq(auth_new(&ac, &a, &err), 0);
	ck_assert(auth_peer_allowed(a, "192.168.7.8"));
	ck_assert(auth_peer_allowed(a, "::1"));
	ck_assert(!auth_peer_allowed(a, "127.0.0.1"));
	/* No agent token file: agents need none. */
	ck_assert_int_eq(auth_agent(a, NULL, why, sizeof(why)), 0);
	auth_free(a);

	ac.nallow = 0; /* none given: loopback only */
	ac.agent_token_file = "/nonexistent/agent.token";
	ck_assert_int_eq(auth_new(&ac, &a, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "agent_token_file: "));
}
END_TEST

START_TEST(test_auth_config_errors)
{
	struct broker_config c;
	struct npufarm_err err = {0};

	broker_config_defaults(&c);
	ck_assert_int_eq(broker_config_add_allow(&c, "10.0.0.0/8", NULL), 0);
	ck_assert_int_eq(broker_config_add_allow(&c, "10.0.0.0/99", NULL), 0);
	build(&c, -EINVAL, "allow[1]: '10.0.0.0/99': prefix");
	broker_config_deinit(&c);

	broker_config_defaults(&c);
	ck_assert_int_eq(broker_config_set(&c, "agent-token-file",
			     "/nonexistent/agent.token", &err),
	    0);
	build(&c, -ENOENT,
	    "agent_token_file: token file "
	    "'/nonexistent/agent.token'");
	broker_config_deinit(&c);

	/* Two scopes, one token: refused rather than silently admin. */
	broker_config_defaults(&c);
	ck_assert_int_eq(broker_config_set(&c, "api_token_file",
			     file("api", "same\n", 0600), &err),
	    0);
	ck_assert_int_eq(broker_config_set(&c, "admin_token_file",
			     file("admin", "same", 0600), &err),
	    0);
	build(&c, -EINVAL, "hold the same token");
	broker_config_deinit(&c);

	/* Too many networks. */
	broker_config_defaults(&c);
	for (int i = 0; i < BROKER_MAX_ALLOW; i++)
		ck_assert_int_eq(broker_config_add_allow(&c, "::1", NULL), 0);
	ck_assert_int_eq(broker_config_add_allow(&c, "::1", &err), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "at most 64"));
	broker_config_deinit(&c);
}
END_TEST

START_TEST(test_auth_agent_token)
{
	struct broker_config c;
	struct auth *a;
	char why[256];

	broker_config_defaults(&c);
	a = build(&c, 0, NULL);
	ck_assert_int_eq(auth_agent(a, NULL, why, sizeof(why)), 0);
	ck_assert_int_eq(auth_agent(a, "anything", why, sizeof(why)), 0);
	auth_free(a);

	ck_assert_int_eq(broker_config_set(&c, "agent_token_file",
			     file("agent", "letmein\n", 0600), NULL),
	    0);
	a = build(&c, 0, NULL);
	ck_assert_int_eq(auth_agent(a, NULL, why, sizeof(why)), -EACCES);
	ck_assert_ptr_nonnull(strstr(why, "requires an agent token"));
	ck_assert_int_eq(auth_agent(a, "letmeout", why, sizeof(why)), -EACCES);
	ck_assert_ptr_nonnull(strstr(why, "wrong agent token"));
	ck_assert_ptr_null(strstr(why, "letme"));
	ck_assert_int_eq(auth_agent(a, "letmein", why, sizeof(why)), 0);
	auth_free(a);
	broker_config_deinit(&c);
}
END_TEST

START_TEST(test_auth_route_scope)
{
	ck_assert_int_eq(
	    auth_route_scope(EVHTTP_REQ_POST, "/v1/boards/3/drain"),
	    AUTH_SCOPE_ADMIN);
	ck_assert_int_eq(
	    auth_route_scope(EVHTTP_REQ_POST, "/v1/boards/3/undrain"),
	    AUTH_SCOPE_ADMIN);
	ck_assert_int_eq(auth_route_scope(EVHTTP_REQ_GET, "/v1/boards/3/drain"),
	    AUTH_SCOPE_READ);
	ck_assert_int_eq(
	    auth_route_scope(EVHTTP_REQ_GET, "/v1/boards"), AUTH_SCOPE_READ);
	ck_assert_int_eq(
	    auth_route_scope(EVHTTP_REQ_POST, "/v1/jobs"), AUTH_SCOPE_READ);
	ck_assert_int_eq(
	    auth_route_scope(EVHTTP_REQ_GET, NULL), AUTH_SCOPE_READ);
	ck_assert_int_eq(
	    auth_route_scope(EVHTTP_REQ_GET, "/metrics"), AUTH_SCOPE_READ);
}
END_TEST

/* The loud warning: only for what is reachable and unlocked. */
START_TEST(test_auth_warn_exposure)
{
	const char *lo[] = {"127.0.0.1:9190", "[::1]:9190"};
	const char *any[] = {"127.0.0.1:9190", "0.0.0.0:9190"};
	struct broker_config c;
	struct auth *a;

	broker_config_defaults(&c);
	a = build(&c, 0, NULL);
	ck_assert_int_eq(auth_warn_exposure(a, lo, 2, "127.0.0.1:9191"), 0);
	ck_assert_int_eq(auth_warn_exposure(a, any, 2, "127.0.0.1:9191"), 1);
	ck_assert_int_eq(auth_warn_exposure(a, lo, 2, "[::]:9191"), 1);
	ck_assert_int_eq(auth_warn_exposure(a, any, 2, "10.1.1.1:9191"), 2);
	auth_free(a);

	ck_assert_int_eq(broker_config_set(&c, "agent_token_file",
			     file("agent", "a\n", 0600), NULL),
	    0);
	ck_assert_int_eq(broker_config_set(&c, "admin_token_file",
			     file("admin", "b\n", 0600), NULL),
	    0);
	a = build(&c, 0, NULL);
	ck_assert_int_eq(auth_warn_exposure(a, any, 2, "0.0.0.0:9191"), 0);
	auth_free(a);
	/* An allow-list of everyone opens TVM's protocols to the world. */
	ck_assert_int_eq(broker_config_add_allow(&c, "0.0.0.0/0", NULL), 0);
	a = build(&c, 0, NULL);
	ck_assert_int_eq(auth_warn_exposure(a, any, 2, "0.0.0.0:9191"), 1);
	ck_assert_int_eq(auth_warn_exposure(a, lo, 2, "0.0.0.0:9191"), 0);
	auth_free(a);
	broker_config_deinit(&c);
}
END_TEST

/* SIGHUP takes the live-safe keys and leaves the rest alone. */
START_TEST(test_config_reload_takes_only_reloadable)
{
	struct broker_config c, next;

	broker_config_defaults(&c);
	ck_assert_int_eq(
	    broker_config_add_listen(&c, "127.0.0.1:9190", NULL), 0);
	broker_config_defaults(&next);
	ck_assert_int_eq(
	    broker_config_add_listen(&next, "127.0.0.1:9999", NULL), 0);
	ck_assert_int_eq(
	    broker_config_set(&next, "request_timeout", "30", NULL), 0);
	ck_assert_int_eq(broker_config_set(&next, "max_pending", "7", NULL), 0);
	ck_assert_int_eq(
	    broker_config_set(&next, "relay_buffer", "8192", NULL), 0);
	ck_assert_int_eq(
	    broker_config_set(&next, "api_token_file", "/x/api", NULL), 0);
	ck_assert_int_eq(
	    broker_config_set(&next, "max_frame", "4096", NULL), 0);
	ck_assert_int_eq(
	    broker_config_set(&next, "db", "/x/other.db", NULL), 0);
	ck_assert_int_eq(
	    broker_config_set(&next, "agent_heartbeat", "9", NULL), 0);
	ck_assert_int_eq(broker_config_add_allow(&next, "10.0.0.0/8", NULL), 0);

	broker_config_reload(&c, &next);
	ck_assert(c.request_timeout == 30);
	ck_assert_int_eq(c.max_pending, 7);
	ck_assert_int_eq(c.relay_buffer, 8192);
	ck_assert_str_eq(c.api_token_file, "/x/api");
	ck_assert_uint_eq(c.nallow, 1);
	ck_assert_str_eq(c.allow[0], "10.0.0.0/8");
	/* Restart-only: unchanged. */
	ck_assert_int_eq(c.max_frame, 1024 * 1024);
	ck_assert_ptr_null(c.db);
	ck_assert(c.agent_heartbeat == 2);
	ck_assert_str_eq(c.listen[0], "127.0.0.1:9190");
	/* And back: a token file can be dropped again. */
	broker_config_deinit(&next);
	broker_config_defaults(&next);
	broker_config_reload(&c, &next);
	ck_assert_ptr_null(c.api_token_file);
	ck_assert_uint_eq(c.nallow, 0);
	broker_config_deinit(&next);
	broker_config_deinit(&c);
}
END_TEST

/* The config file spells the allow-list as a JSON array. */
START_TEST(test_config_file_allow)
{
	struct broker_config c;
	struct npufarm_err err = {0};

	broker_config_defaults(&c);
	ck_assert_int_eq(broker_config_load_file(&c,
			     file("ok.json",
				 "{\"allow\": [\"10.0.0.0/8\", \"::1\"], "
				 "\"agent_token_file\": \"/x/a\"}",
				 0600),
			     &err),
	    0);
	ck_assert_uint_eq(c.nallow, 2);
	ck_assert_str_eq(c.agent_token_file, "/x/a");
	broker_config_deinit(&c);

	broker_config_defaults(&c);
	ck_assert_int_eq(
	    broker_config_load_file(&c,
		file("bad.json", "{\"allow\": \"10.0.0.0/8\"}", 0600), &err),
	    -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "allow: expected a list"));
	broker_config_deinit(&c);
	broker_config_defaults(&c);
	ck_assert_int_eq(
	    broker_config_load_file(
		&c, file("bad2.json", "{\"allow\": [\"x\", 8]}", 0600), &err),
	    -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "allow[1]: expected a string"));
	broker_config_deinit(&c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("auth");
	TCase *tc;

	tc = tcase_create("cidr");
	tcase_add_test(tc, test_cidr_parse_forms);
	tcase_add_test(tc, test_cidr_parse_errors_say_what_and_where);
	tcase_add_test(tc, test_cidr_match_ipv4);
	tcase_add_test(tc, test_cidr_match_ipv6);
	tcase_add_test(tc, test_cidr_match_v4_mapped);
	suite_add_tcase(s, tc);

	tc = tcase_create("secret");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_secret_file_rules);
	tcase_add_test(tc, test_secret_equal);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_auth_default_allows_loopback_only);
	tcase_add_test(tc, test_auth_from_plain_data);
	tcase_add_test(tc, test_auth_config_errors);
	tcase_add_test(tc, test_auth_agent_token);
	tcase_add_test(tc, test_auth_route_scope);
	tcase_add_test(tc, test_auth_warn_exposure);
	suite_add_tcase(s, tc);

	tc = tcase_create("reload");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_config_reload_takes_only_reloadable);
	tcase_add_test(tc, test_config_file_allow);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
