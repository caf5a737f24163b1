/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real npufarm-agent against the real broker: it links up and shows as
 * a board, survives a broker restart by reconnecting, goes offline when it
 * stops, and exits 0 on SIGTERM.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

static struct harness_broker b;

static void
start(void)
{
	static const char *const extra[] = {"--agent-heartbeat", "0.2", NULL};

	harness_broker_start(&b, extra);
}

static void
stop(void)
{
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}

static pid_t
agent_start(const char *name)
{
	const char *bin = getenv("NPUFARM_AGENT_BIN");
	const char *argv[] = {bin, "--broker", b.farm, "--key", "rk3588",
	    "--name", name, "--tag", "rack=2", "-v", NULL};
	char log[320];

	ck_assert_msg(bin != NULL, "NPUFARM_AGENT_BIN is not set");
	(void)snprintf(log, sizeof(log), "%s/agent-%s.log", b.dir, name);
	return harness_spawn(bin, argv, log);
}

/* Wait up to 20 s until the ledger says board @name is @state. */
static void
wait_state(const char *name, const char *state)
{
	char sql[256], want[128], *row = NULL;
	int i;

	(void)snprintf(sql, sizeof(sql),
	    "SELECT state FROM boards WHERE kind = 'agent' AND name = '%s'",
	    name);
	(void)snprintf(want, sizeof(want), "%s\n", state);
	for (i = 0; i < 1000; i++) {
		free(row);
		row = harness_sql(b.db, sql);
		if (strcmp(row, want) == 0)
			break;
		usleep(20000);
	}
	ck_assert_msg(strcmp(row, want) == 0, "board %s is '%s', not %s", name,
	    row, state);
	free(row);
}

START_TEST(test_agent_links_and_survives_broker_restart)
{
	pid_t a = agent_start("b1");
	char *body;
	int status;

	wait_state("b1", "idle");
	body = harness_http_get(b.http, "/v1/boards", &status);
	ck_assert_msg(strstr(body, "\"kind\":\"agent\"") &&
			  strstr(body, "\"key\":\"rk3588\""),
	    "%s", body);
	free(body);
	/* The broker restarts on the same port: the agent comes back. */
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	wait_state("b1", "offline");
	(void)snprintf(b.listen, sizeof(b.listen), "%s", b.farm);
	{
		static const char *const extra[] = {
		    "--agent-heartbeat", "0.2", NULL};

		harness_broker_restart(&b, extra);
	}
	wait_state("b1", "idle");
	/* SIGTERM: the agent exits 0 and its board goes offline. */
	ck_assert_int_eq(harness_reap(a, 5000), 0);
	wait_state("b1", "offline");
}
END_TEST

START_TEST(test_agent_duplicate_keeps_retrying)
{
	pid_t a = agent_start("b2"), dup;

	wait_state("b2", "idle");
	dup = agent_start("b2");
	/* Refused as soon as it says hello (give a loaded machine time). */
	for (int i = 0;
	     i < 200 && !harness_log_contains(&b, "already connected"); i++)
		usleep(50000);
	ck_assert(harness_log_contains(&b, "already connected"));
	/* The first one is unaffected, and the second takes over once the
	 * first is gone (after its backoff: at most 10 s + 20%). */
	wait_state("b2", "idle");
	ck_assert_int_eq(harness_reap(a, 5000), 0);
	/* Offline, then back (the state may pass too fast to poll). */
	harness_wait_sql(b.db,
	    "SELECT count(*) > 0 FROM events e JOIN boards o ON o.id = "
	    "e.board_id WHERE o.name = 'b2' AND e.kind = 'board_offline'",
	    "1\n", 20000);
	wait_state("b2", "idle");
	ck_assert_int_eq(harness_reap(dup, 5000), 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("agent");
	TCase *tc = tcase_create("agent");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, start, stop);
	tcase_add_test(tc, test_agent_links_and_survives_broker_restart);
	tcase_add_test(tc, test_agent_duplicate_keeps_retrying);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
