/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM's own flags on the real binaries (docs/tvm.md): npufarm-broker with
 * rpc_tracker's --host/--port/--port-end/--silent binds the first free port
 * of the range and serves the tracker protocol there; npufarm-agent with
 * rpc_server's --tracker/--key (and the listen flags it ignores, and
 * --through-proxy) links up as a board; the flags that cannot work are
 * refused with exit status 2 and a message.  The broker's farm port also
 * serves a client that writes like TVM's (Nagle on, split frames).
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "harness.h"
#include "tvmpeer.h"

/* A loopback port that is bound (held) by @ret_fd, with the next one free. */
static unsigned
hold_port(int *ret_fd)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int fd, probe, tries;

	for (tries = 0; tries < 50; tries++) {
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = 0;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(
		    bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		ck_assert_int_eq(listen(fd, 1), 0);
		ck_assert_int_eq(
		    getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
		if (ntohs(sin.sin_port) < 65000) {
			probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			sin.sin_port = htons(ntohs(sin.sin_port) + 1);
			if (bind(probe, (struct sockaddr *)&sin, sizeof(sin)) ==
			    0) {
				(void)close(probe);
				*ret_fd = fd;
				return ntohs(sin.sin_port) - 1u;
			}
			(void)close(probe);
		}
		(void)close(fd);
	}
	ck_abort_msg("no loopback port with a free neighbour");
	return 0;
}

/* The broker's bound farm address from its ready file, waiting for it. */
static void
wait_ready(
    pid_t pid, const char *ready, const char *log, char *farm, size_t len)
{
	int i, status;

	for (i = 0; i < 1000; i++) {
		json_t *v = json_load_file(ready, 0, NULL);

		if (v != NULL) {
			const char *f = json_string_value(
			    json_array_get(json_object_get(v, "farm"), 0));

			ck_assert(f != NULL);
			(void)snprintf(farm, len, "%s", f);
			json_decref(v);
			return;
		}
		ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0,
		    "broker exited during start-up; see %s", log);
		usleep(10000);
	}
	ck_abort_msg("broker did not become ready; see %s", log);
}

/* Run @argv to completion; its exit status, its stderr in @out. */
static int
run_capture(const char *const *argv, char *out, size_t len)
{
	char log[] = "/tmp/npufarm-test-flags-XXXXXX";
	int fd, status;
	ssize_t n;
	pid_t pid;

	fd = mkstemp(log);
	ck_assert_int_ge(fd, 0);
	pid = harness_spawn(argv[0], argv, log);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	n = read(fd, out, len - 1);
	out[n > 0 ? n : 0] = '\0';
	(void)close(fd);
	(void)unlink(log);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* A tracker round trip (PING) on @farm, written like TVM's client. */
static void
ping_split(const char *farm)
{
	struct npufarm_err err;
	struct tvmpeer *p = NULL;
	int code;

	ck_assert_msg(
	    tvmpeer_connect(farm, 5000, &p, &err) == 0, "%s", err.msg);
	tvmpeer_set_split_writes(p, true); /* and Nagle stays on */
	ck_assert_int_eq(tvmpeer_ping(p), 0);
	ck_assert_msg(
	    tvmpeer_recv_code(p, 5000, &code, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(code, NPUFARM_TVM_SUCCESS);
	tvmpeer_free(p);
}

START_TEST(test_broker_port_range_takes_first_free)
{
	const char *bin = getenv("NPUFARM_BROKER_BIN");
	char dir[] = "/tmp/npufarm-test-XXXXXX", db[64], ready[64], log[64];
	char port[16], end[16], farm[64], want[64], cmd[96];
	unsigned p;
	pid_t pid;
	int held;

	ck_assert_ptr_nonnull(bin);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(db, sizeof(db), "%s/l.db", dir);
	(void)snprintf(ready, sizeof(ready), "%s/ready.json", dir);
	(void)snprintf(log, sizeof(log), "%s/broker.log", dir);
	p = hold_port(&held);
	(void)snprintf(port, sizeof(port), "%u", p);
	(void)snprintf(end, sizeof(end), "%u", p + 2);
	{
		const char *argv[] = {bin, "--host", "127.0.0.1", "--port",
		    port, "--port-end", end, "--http", "127.0.0.1:0", "--db",
		    db, "--ready-file", ready, "-v", NULL};

		pid = harness_spawn(bin, argv, log);
	}
	wait_ready(pid, ready, log, farm, sizeof(farm));
	(void)snprintf(want, sizeof(want), "127.0.0.1:%u", p + 1);
	ck_assert_str_eq(farm, want);
	ping_split(farm);
	ck_assert_int_eq(harness_reap(pid, 10000), 0);
	(void)close(held);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}
END_TEST

START_TEST(test_broker_port_range_full_fails)
{
	const char *bin = getenv("NPUFARM_BROKER_BIN");
	char dir[] = "/tmp/npufarm-test-XXXXXX", db[64], port[16], end[16];
	char out[4096], cmd[96];
	unsigned p;
	int held;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(db, sizeof(db), "%s/l.db", dir);
	p = hold_port(&held);
	(void)snprintf(port, sizeof(port), "%u", p);
	(void)snprintf(end, sizeof(end), "%u", p + 1);
	{
		const char *argv[] = {bin, "--host", "127.0.0.1", "--port",
		    port, "--port-end", end, "--http", "127.0.0.1:0", "--db",
		    db, NULL};

		ck_assert_int_eq(run_capture(argv, out, sizeof(out)), 1);
	}
	ck_assert_msg(strstr(out, "is taken") != NULL, "%s", out);
	(void)close(held);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}
END_TEST

START_TEST(test_broker_flag_conflicts_are_usage_errors)
{
	const char *bin = getenv("NPUFARM_BROKER_BIN");
	const char *both[] = {
	    bin, "--listen", "127.0.0.1:0", "--port", "9190", NULL};
	const char *empty[] = {
	    bin, "--port", "9300", "--port-end", "9200", NULL};
	const char *bad[] = {bin, "--port", "ninety", NULL};
	char out[4096];

	ck_assert_int_eq(run_capture(both, out, sizeof(out)), 2);
	ck_assert_msg(strstr(out, "give one of them") != NULL, "%s", out);
	ck_assert_int_eq(run_capture(empty, out, sizeof(out)), 2);
	ck_assert_msg(strstr(out, "must be above --port") != NULL, "%s", out);
	ck_assert_int_eq(run_capture(bad, out, sizeof(out)), 2);
	ck_assert_msg(strstr(out, "expected a port number") != NULL, "%s", out);
}
END_TEST

START_TEST(test_broker_help_lists_tvm_flags)
{
	const char *bin = getenv("NPUFARM_BROKER_BIN");
	char log[] = "/tmp/npufarm-test-help-XXXXXX", cmd[512], buf[8192];
	FILE *f;
	size_t n;
	int fd;

	fd = mkstemp(log);
	ck_assert_int_ge(fd, 0);
	(void)close(fd);
	(void)snprintf(cmd, sizeof(cmd), "'%s' --help > '%s'", bin, log);
	ck_assert_int_eq(system(cmd), 0);
	f = fopen(log, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	(void)fclose(f);
	(void)unlink(log);
	ck_assert_msg(strstr(buf, "--port P --port-end E") != NULL &&
			  strstr(buf, "--silent") != NULL,
	    "%s", buf);
}
END_TEST

static struct harness_broker b;

static void
start(void)
{
	harness_broker_start(&b, NULL);
}

static void
stop(void)
{
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}

/* Wait until the ledger lists agent board @name as idle. */
static void
wait_idle(const char *name)
{
	char sql[160];

	(void)snprintf(sql, sizeof(sql),
	    "SELECT state FROM boards WHERE kind = 'agent' AND name = '%s'",
	    name);
	harness_wait_sql(b.db, sql, "idle\n", 20000);
}

/* Whether file @path contains @needle. */
static int
file_contains(const char *path, const char *needle)
{
	char buf[65536];
	size_t n;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	(void)fclose(f);
	return strstr(buf, needle) != NULL;
}

START_TEST(test_agent_takes_rpc_server_flags)
{
	const char *bin = getenv("NPUFARM_AGENT_BIN");
	char log[320], work[320];
	pid_t a;

	ck_assert_ptr_nonnull(bin);
	(void)snprintf(log, sizeof(log), "%s/agent-tvm.log", b.dir);
	(void)snprintf(work, sizeof(work), "%s/work-tvm", b.dir);
	{
		/* What a board's rpc_server script passes, name changed. */
		const char *argv[] = {bin, "--tracker", b.farm, "--key",
		    "rk3588", "--host", "0.0.0.0", "--port", "9090",
		    "--port-end", "9199", "--custom-addr", "10.1.2.3",
		    "--no-fork", "--name", "tvm-flags", "--workdir", work,
		    NULL};

		a = harness_spawn(bin, argv, log);
	}
	wait_idle("tvm-flags");
	ck_assert_int_eq(harness_reap(a, 10000), 0);
	ck_assert_msg(file_contains(log, "--port 9090: ignoring"),
	    "no log line for the ignored --port; see %s", log);
	ck_assert_msg(file_contains(log, "--no-fork: ignoring"),
	    "no log line for the ignored --no-fork; see %s", log);
}
END_TEST

START_TEST(test_agent_through_proxy_dials_host_port)
{
	const char *bin = getenv("NPUFARM_AGENT_BIN");
	const char *colon = strrchr(b.farm, ':');
	char log[320], work[320], port[16];
	pid_t a;

	ck_assert_ptr_nonnull(colon);
	(void)snprintf(port, sizeof(port), "%s", colon + 1);
	(void)snprintf(log, sizeof(log), "%s/agent-proxy.log", b.dir);
	(void)snprintf(work, sizeof(work), "%s/work-proxy", b.dir);
	{
		const char *argv[] = {bin, "--through-proxy", "--host",
		    "127.0.0.1", "--port", port, "--key", "rk3588", "--silent",
		    "--name", "tvm-proxy", "--workdir", work, NULL};

		a = harness_spawn(bin, argv, log);
	}
	wait_idle("tvm-proxy");
	ck_assert_int_eq(harness_reap(a, 10000), 0);
	/* --silent: nothing below a warning, not even the start line. */
	ck_assert_msg(
	    !file_contains(log, "<5>"), "notices logged; see %s", log);
}
END_TEST

START_TEST(test_agent_refuses_load_library)
{
	const char *bin = getenv("NPUFARM_AGENT_BIN");
	const char *argv[] = {bin, "--tracker", b.farm, "--key", "rk3588",
	    "--load-library", "/opt/vendor/libops.so", NULL};
	const char *none[] = {bin, "--key", "rk3588", "--port", "9090", NULL};
	char out[4096];

	ck_assert_int_eq(run_capture(argv, out, sizeof(out)), 2);
	ck_assert_msg(strstr(out, "load-library") != NULL &&
			  strstr(out, "not supported") != NULL,
	    "%s", out);
	/* Without --through-proxy, --host/--port do not name the broker. */
	ck_assert_int_eq(run_capture(none, out, sizeof(out)), 2);
	ck_assert_msg(strstr(out, "--tracker") != NULL, "%s", out);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("tvm-flags");
	TCase *tc = tcase_create("broker");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_broker_port_range_takes_first_free);
	tcase_add_test(tc, test_broker_port_range_full_fails);
	tcase_add_test(tc, test_broker_flag_conflicts_are_usage_errors);
	tcase_add_test(tc, test_broker_help_lists_tvm_flags);
	suite_add_tcase(s, tc);
	tc = tcase_create("agent");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, start, stop);
	tcase_add_test(tc, test_agent_takes_rpc_server_flags);
	tcase_add_test(tc, test_agent_through_proxy_dials_host_port);
	tcase_add_test(tc, test_agent_refuses_load_library);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(suite());
}
