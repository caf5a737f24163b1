/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Living under systemd (issue 14), with the real broker and agent on
 * loopback: sd_notify() readiness as a Type=notify unit sees it (READY=1
 * once the broker's ports are bound and the agent is set up, RELOADING=1
 * then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM), read from a
 * $NOTIFY_SOCKET the test owns; and the unit's credentials
 * ($CREDENTIALS_DIRECTORY): the broker requires the tokens it finds
 * there, the agent sends the agent-token it finds there, and both start
 * without any.  Skipped when built without libsystemd.
 */
#include "config.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

#define WAIT_MS 20000

static struct harness_broker b;
static char dir[64];

static void
setup(void)
{
	(void)snprintf(dir, sizeof(dir), "/tmp/npufarm-svc-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	char cmd[128];

	unsetenv("NOTIFY_SOCKET");
	unsetenv("CREDENTIALS_DIRECTORY");
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

/* A datagram socket at DIR/@name, named in $NOTIFY_SOCKET for children. */
static int
notify_socket(const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	(void)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", sa.sun_path, 1), 0);
	return fd;
}

/* Wait for a datagram on @fd that has the line @want (others skipped). */
static void
expect_notify(int fd, const char *want)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char msg[4096], *line, *save;
	ssize_t n;

	for (;;) {
		ck_assert_msg(poll(&p, 1, WAIT_MS) == 1,
		    "no '%s' on the notify socket", want);
		n = recv(fd, msg, sizeof(msg) - 1, 0);
		ck_assert_int_gt(n, 0);
		msg[n] = '\0';
		for (line = strtok_r(msg, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save))
			if (strcmp(line, want) == 0)
				return;
	}
}

/* Write @text to DIR/@sub/@name (0600; DIR/@sub made); returns the path. */
static const char *
put_file(const char *sub, const char *name, const char *text)
{
	static char paths[4][160];
	static int next;
	char *p = paths[next++ % 4];
	FILE *f;

	(void)snprintf(p, 160, "%s/%s", dir, sub);
	(void)mkdir(p, 0700);
	(void)snprintf(p, 160, "%s/%s/%s", dir, sub, name);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(p, 0600), 0);
	return p;
}

static pid_t
start_agent(const char *name, char *log, size_t loglen)
{
	const char *bin = getenv("NPUFARM_AGENT_BIN");
	char workdir[128];

	ck_assert_ptr_nonnull(bin);
	(void)snprintf(workdir, sizeof(workdir), "%s/%s", dir, name);
	(void)snprintf(log, loglen, "%s/%s.log", dir, name);
	return harness_spawn(bin,
	    (const char *const[]){bin, "--broker", b.farm, "--key", "svc",
		"--name", name, "--workdir", workdir, "-v", NULL},
	    log);
}

static void
wait_idle(const char *name)
{
	char sql[160];

	(void)snprintf(sql, sizeof(sql),
	    "SELECT state FROM boards WHERE kind = 'agent' AND name = '%s'",
	    name);
	harness_wait_sql(b.db, sql, "idle\n", WAIT_MS);
}

START_TEST(test_broker_notify)
{
	int fd = notify_socket("broker.sock");

	harness_broker_start(&b, NULL);
	expect_notify(fd, "READY=1");
	ck_assert_int_eq(kill(b.pid, SIGHUP), 0);
	expect_notify(fd, "RELOADING=1");
	expect_notify(fd, "READY=1");
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	expect_notify(fd, "STOPPING=1");
	close(fd);
}
END_TEST

START_TEST(test_agent_notify)
{
	char log[160];
	pid_t agent;
	int fd;

	harness_broker_start(&b, NULL);
	fd = notify_socket("agent.sock");
	agent = start_agent("svc-1", log, sizeof(log));
	expect_notify(fd, "READY=1");
	wait_idle("svc-1");
	ck_assert_int_eq(harness_reap(agent, WAIT_MS), 0);
	expect_notify(fd, "STOPPING=1");
	close(fd);
}
END_TEST

/* The broker's token files from its credentials; the agent's token too. */
START_TEST(test_credentials)
{
	char log[160], creds[128];
	pid_t agent;
	int status;

	(void)snprintf(creds, sizeof(creds), "%s/broker-creds", dir);
	put_file("broker-creds", "agent-token", "agent-secret-1\n");
	put_file("broker-creds", "api-token", "api-secret-1\n");
	ck_assert_int_eq(setenv("CREDENTIALS_DIRECTORY", creds, 1), 0);
	harness_broker_start(&b, NULL);
	/* The API now needs the credential's token. */
	free(harness_http_get(b.http, "/v1/boards", &status));
	ck_assert_int_eq(status, 401);

	/* An agent without a token is refused... */
	(void)snprintf(creds, sizeof(creds), "%s/none", dir);
	ck_assert_int_eq(setenv("CREDENTIALS_DIRECTORY", creds, 1), 0);
	agent = start_agent("svc-none", log, sizeof(log));
	for (int i = 0; i < WAIT_MS / 50 &&
			!harness_log_contains(&b, "requires an agent token");
	     i++)
		usleep(50 * 1000);
	ck_assert(harness_log_contains(&b, "requires an agent token"));
	(void)harness_reap(agent, WAIT_MS);

	/* ...one with the credential's token links. */
	(void)snprintf(creds, sizeof(creds), "%s/agent-creds", dir);
	put_file("agent-creds", "agent-token", "agent-secret-1");
	ck_assert_int_eq(setenv("CREDENTIALS_DIRECTORY", creds, 1), 0);
	agent = start_agent("svc-2", log, sizeof(log));
	wait_idle("svc-2");
	ck_assert_int_eq(harness_reap(agent, WAIT_MS), 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("service");
	TCase *tc = tcase_create("service");

#if !HAVE_LIBSYSTEMD
	/* TAP skips as a whole with an empty plan (and status 0). */
	printf("1..0 # SKIP built without libsystemd (-Dsystemd)\n");
	return 0;
#endif
	tcase_set_timeout(tc, 90);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_broker_notify);
	tcase_add_test(tc, test_agent_notify);
	tcase_add_test(tc, test_credentials);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
