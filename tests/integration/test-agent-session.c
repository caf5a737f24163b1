/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM sessions through the real broker and the real npufarm-agent, which
 * serves them with the fake libtvm_runtime.so in supervised children.  A
 * client asks the tracker for the key like a tuner, connects back to the
 * broker with its matchkey, and talks TVM RPC (bench/tvmrpc_client.h, the
 * client side written from the spec).  Every outcome class, the agent's
 * report in the ledger, hooks, quarantine, drain, and the agent dying.
 * The key cases again with the fake's tvm-ffi flavour (a TVM v0.21+
 * runtime), the client speaking that dialect (tvm-ffi-era.md FFI-*).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "err.h"
#include "frame.h"
#include "harness.h"
#include "tvmrpc.h"
#include "tvmrpc_client.h"

#define T_MS 10000

static struct harness_broker b;
static pid_t agent;
static char workdir[320], agent_log[320];

static void
broker_up(void)
{
	static const char *const extra[] = {
	    "--agent-heartbeat", "0.2", "--agent-backstop", "1", NULL};

	harness_broker_start(&b, extra);
}

static void
broker_down(void)
{
	int status;

	if (agent > 0) {
		status = harness_reap(agent, T_MS); /* SIGTERM, then waits */
		agent = 0;
		if (status != 0 && getenv("NPUFARM_TEST_DEBUG") != NULL) {
			char cmd[400];

			(void)snprintf(
			    cmd, sizeof(cmd), "cat %s >&2", agent_log);
			(void)system(cmd);
		}
		ck_assert_int_eq(status, 0);
	}
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}

/* Start the agent "a1" with the runtime @rt, plus @extra flags. */
static void
agent_up_with(const char *rt, const char *const *extra)
{
	const char *bin = getenv("NPUFARM_AGENT_BIN");
	const char *argv[32] = {bin, "--broker", b.farm, "--key", "rk3588",
	    "--name", "a1", "--tvm-runtime", rt, "--workdir", workdir, "-vv"};
	size_t n = 12;

	ck_assert_msg(bin != NULL && rt != NULL,
	    "NPUFARM_AGENT_BIN or the runtime (NPUFARM_FAKE_TVM, "
	    "NPUFARM_FAKE_TVM_FFI) is not set");
	(void)snprintf(workdir, sizeof(workdir), "%s/work", b.dir);
	(void)snprintf(agent_log, sizeof(agent_log), "%s/agent.log", b.dir);
	argv[10] = workdir;
	while (extra != NULL && *extra != NULL && n < 30)
		argv[n++] = *extra++;
	argv[n] = NULL;
	agent = harness_spawn(bin, argv, agent_log);
}

/* Start the agent "a1" with the fake runtime, plus @extra flags. */
static void
agent_up(const char *const *extra)
{
	agent_up_with(getenv("NPUFARM_FAKE_TVM"), extra);
}

static void
wait_sql(const char *sql, const char *want)
{
	harness_wait_sql(b.db, sql, want, 20000);
}

static void
wait_state(const char *state)
{
	char want[64];

	(void)snprintf(want, sizeof(want), "%s\n", state);
	wait_sql("SELECT state FROM boards WHERE kind = 'agent' AND name = "
		 "'a1'",
	    want);
}

/*
 * The newest lease once the agent's report is in: "outcome|signal|detail"
 * (a lost session may have no signal: the child may be reaped or not yet).
 */
static char *
reported_lease(void)
{
	/* Both writers: the agent's report, and the broker's own end of the
	 * relayed session (either may come first). */
	wait_sql("SELECT reported_us IS NOT NULL AND outcome IS NOT NULL FROM "
		 "leases ORDER BY id DESC LIMIT 1",
	    "1\n");
	return harness_sql(b.db,
	    "SELECT outcome || '|' || coalesce(exit_signal, '') || '|' || "
	    "coalesce(detail, '') FROM leases ORDER BY id DESC LIMIT 1");
}

/* A client granted the board of key rk3588, session -timeout=@timeout. */
static struct tvmrpc_client *
client_open(const char *timeout)
{
	return harness_tvm_open(b.farm, "rk3588", timeout, T_MS);
}

/* Call @fn(@arg); returns the reply packet's code, its text in @text. */
static int32_t
call(struct tvmrpc_client *cl, uint64_t fn, int64_t arg, char *text, size_t len,
    int timeout_ms)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	const char *s;
	size_t n;

	tvmrpc_msg_call_func(&m, fn, arg);
	ck_assert_int_eq(tvmrpc_send_msg(tvmrpc_client_conn(cl), &m), 0);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(tvmrpc_client_conn(cl), timeout_ms, &p), 0);
	text[0] = '\0';
	if (p.code == TVMRPC_EXCEPTION && tvmrpc_packet_string(&p, &s, &n) == 0)
		(void)snprintf(text, len, "%.*s", (int)n, s);
	return p.code;
}

START_TEST(test_session_ok)
{
	struct tvmrpc_client *cl;
	char text[256], *row;
	int status;

	agent_up(NULL);
	wait_state("idle");
	row = harness_http_get(b.http, "/v1/boards", &status);
	ck_assert_msg(strstr(row, "\"heartbeat\":\"20"), "%s", row);
	free(row);
	cl = client_open("10");
	ck_assert_msg(strstr(tvmrpc_client_remote_key(cl), "agent=a1"), "%s",
	    tvmrpc_client_remote_key(cl));
	ck_assert_int_eq(call(cl, harness_tvm_func(cl, "rpc.test.addone", T_MS),
			     41, text, sizeof(text), T_MS),
	    TVMRPC_RETURN);
	harness_tvm_done(cl);
	row = reported_lease();
	ck_assert_msg(strncmp(row, "ok|0|", 5) == 0, "%s", row);
	free(row);
	wait_state("idle");
}
END_TEST

START_TEST(test_session_exception)
{
	struct tvmrpc_client *cl;
	char text[256], *row;

	agent_up(NULL);
	wait_state("idle");
	cl = client_open("10");
	ck_assert_int_eq(
	    call(cl, harness_tvm_func(cl, "npufarm.test.raise", T_MS), 0, text,
		sizeof(text), T_MS),
	    TVMRPC_EXCEPTION);
	ck_assert_msg(strstr(text, "ValueError: bad input"), "%s", text);
	/* The session goes on after the runtime's own exception. */
	ck_assert_int_eq(call(cl, harness_tvm_func(cl, "rpc.test.addone", T_MS),
			     1, text, sizeof(text), T_MS),
	    TVMRPC_RETURN);
	harness_tvm_done(cl);
	row = reported_lease();
	ck_assert_msg(strncmp(row, "exception|0|", 12) == 0 &&
			  strstr(row, "ValueError: bad input"),
	    "%s", row);
	free(row);
}
END_TEST

/* The pid of the newest session child, from the agent's log. */
static long
last_child(void)
{
	char line[1024];
	const char *p;
	long pid = 0;
	FILE *f = fopen(agent_log, "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if ((p = strstr(line, "), child ")) != NULL)
			pid = strtol(p + 9, NULL, 10);
	fclose(f);
	return pid;
}

/* Whether the agent's log has a line containing @needle. */
static bool
agent_log_contains(const char *needle)
{
	char line[2048];
	bool found = false;
	FILE *f = fopen(agent_log, "r");

	ck_assert_ptr_nonnull(f);
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* Wait (20 s at most) for a line of the agent's log with @needle. */
static void
wait_log(const char *needle)
{
	int i;

	for (i = 0; i < 2000 && !agent_log_contains(needle); i++)
		usleep(10000);
	ck_assert_msg(
	    agent_log_contains(needle), "no '%s' in %s", needle, agent_log);
}

static int
sessions_left(void)
{
	struct dirent *d;
	DIR *dir = opendir(workdir);
	int n = 0;

	if (dir == NULL)
		return 0;
	while ((d = readdir(dir)) != NULL)
		if (strncmp(d->d_name, "session-", 8) == 0)
			n++;
	closedir(dir);
	return n;
}

START_TEST(test_session_timeout)
{
	struct tvmrpc_client *cl;
	struct tvmrpc_packet p;
	struct tvmrpc_msg want, m;
	char msg[256], *row;
	uint64_t hang;
	long pid;

	agent_up(NULL);
	wait_state("idle");
	cl = client_open("1");
	hang = harness_tvm_func(cl, "npufarm.test.hang", T_MS);
	pid = last_child();
	ck_assert_int_gt(pid, 1);
	ck_assert_int_gt(sessions_left(), 0);
	/* Exactly TVM's exception, answering the hung call. */
	ck_assert_int_ge(tvmrpc_timeout_message(1.0, msg, sizeof(msg)), 0);
	ck_assert_str_eq(msg,
	    "RPCSessionTimeoutError: Your 1.0s session has expired, try to "
	    "increase the \"session_timeout\" value.");
	ck_assert_int_eq(tvmrpc_msg_exception(&want, msg), 0);
	tvmrpc_msg_call_func(&m, hang, 0);
	ck_assert_int_eq(tvmrpc_send_msg(tvmrpc_client_conn(cl), &m), 0);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(tvmrpc_client_conn(cl), 5000, &p), 0);
	ck_assert_int_eq(p.code, TVMRPC_EXCEPTION);
	ck_assert_uint_eq(8 + p.len, want.len);
	ck_assert_mem_eq(p.body, want.b + 12, want.len - 12);
	/* Cleanup calls get the same exception, not a kShutdown. */
	ck_assert_int_eq(tvmrpc_msg_get_global_func(&m, "x"), 0);
	ck_assert_int_eq(tvmrpc_send_msg(tvmrpc_client_conn(cl), &m), 0);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(tvmrpc_client_conn(cl), 5000, &p), 0);
	ck_assert_int_eq(p.code, TVMRPC_EXCEPTION);
	ck_assert_mem_eq(p.body, want.b + 12, want.len - 12);
	row = reported_lease();
	ck_assert_msg(strncmp(row, "timeout|", 8) == 0, "%s", row);
	free(row);
	/* The child and its process group are gone, its work dir too, and
	 * the board is leasable again. */
	ck_assert_int_eq(kill((pid_t)-pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	ck_assert_int_eq(sessions_left(), 0);
	harness_tvm_done(cl);
	wait_state("idle");
	cl = client_open("10");
	harness_tvm_done(cl);
}
END_TEST

START_TEST(test_session_crash)
{
	struct tvmrpc_client *cl;
	char text[256], *row;

	agent_up(NULL);
	wait_state("idle");
	cl = client_open("10");
	ck_assert_int_eq(
	    call(cl, harness_tvm_func(cl, "npufarm.test.crash", T_MS), 0, text,
		sizeof(text), T_MS),
	    TVMRPC_EXCEPTION);
	ck_assert_msg(strstr(text, "board session crashed: SIGSEGV (signal "
				   "11) while a reply was owed"),
	    "%s", text);
	row = reported_lease();
	ck_assert_msg(strncmp(row, "crash|11|", 9) == 0, "%s", row);
	free(row);
	harness_tvm_done(cl);
	wait_state("idle");
}
END_TEST

START_TEST(test_agent_killed_mid_session)
{
	struct tvmrpc_client *cl;
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	const char *s;
	size_t n;

	agent_up(NULL);
	wait_state("idle");
	cl = client_open("30");
	tvmrpc_msg_call_func(
	    &m, harness_tvm_func(cl, "npufarm.test.hang", T_MS), 0);
	ck_assert_int_eq(tvmrpc_send_msg(tvmrpc_client_conn(cl), &m), 0);
	usleep(200000);
	ck_assert_int_eq(kill(agent, SIGKILL), 0);
	(void)harness_reap(agent, T_MS);
	agent = 0;
	/* The broker answers the owed call itself. */
	ck_assert_int_eq(
	    tvmrpc_recv_packet(tvmrpc_client_conn(cl), 5000, &p), 0);
	ck_assert_int_eq(p.code, TVMRPC_EXCEPTION);
	ck_assert_int_eq(tvmrpc_packet_string(&p, &s, &n), 0);
	ck_assert_msg(memmem(s, n, "agent vanished", 14), "%.*s", (int)n, s);
	wait_sql(
	    "SELECT outcome FROM leases ORDER BY id DESC LIMIT 1", "lost\n");
	wait_state("offline");
	harness_tvm_done(cl);
}
END_TEST

static int
exists(const char *name)
{
	char path[400];
	struct stat st;

	(void)snprintf(path, sizeof(path), "%s/%s", b.dir, name);
	return stat(path, &st) == 0;
}

static void
touch(const char *name)
{
	char path[400];
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/%s", b.dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
}

static void
crash_once(void)
{
	struct tvmrpc_client *cl = client_open("10");
	char text[256];

	ck_assert_int_eq(
	    call(cl, harness_tvm_func(cl, "npufarm.test.crash", T_MS), 0, text,
		sizeof(text), T_MS),
	    TVMRPC_EXCEPTION);
	harness_tvm_done(cl);
}

START_TEST(test_hooks_and_quarantine)
{
	char reset[512], health[512], *row, path[512];
	const char *extra[] = {"--reset-cmd", reset, "--health-cmd", health,
	    "--health-interval", "0.3", NULL};
	int status;

	(void)snprintf(reset, sizeof(reset), "touch %s/reset-ran", b.dir);
	(void)snprintf(health, sizeof(health), "test -e %s/healthy", b.dir);
	agent_up(extra);
	wait_state("idle");
	/* A crash: reset, then the health check fails: quarantined, with
	 * the reason, and no new lease. */
	crash_once();
	wait_state("quarantined");
	ck_assert(exists("reset-ran"));
	row = harness_sql(b.db,
	    "SELECT detail FROM boards WHERE kind = 'agent' AND name = 'a1'");
	ck_assert_msg(strstr(row, "health check failed: exited with status 1"),
	    "%s", row);
	free(row);
	row = harness_http_get(b.http, "/v1/boards", &status);
	ck_assert_msg(strstr(row, "\"state\":\"quarantined\""), "%s", row);
	free(row);
	/* An operator undrains it: back in service at once. */
	row = harness_sql(b.db, "SELECT id FROM boards WHERE name = 'a1'");
	row[strcspn(row, "\n")] = '\0';
	(void)snprintf(path, sizeof(path), "/v1/boards/%s/undrain", row);
	free(row);
	free(harness_http(b.http, "POST", path, &status));
	ck_assert_int_eq(status, 200);
	wait_state("idle");
	/* Quarantined again; a health check that passes ends it. */
	crash_once();
	wait_state("quarantined");
	touch("healthy");
	wait_state("idle");
	wait_sql("SELECT count(*) FROM events WHERE kind = 'board_quarantined'",
	    "2\n");
}
END_TEST

/*
 * Candidates that crash are no evidence against the board: after
 * --quarantine-after of them in a row the built-in probe runs, passes, and
 * the board goes on serving (issue 11).
 */
START_TEST(test_crashes_probe_the_board)
{
	const char *extra[] = {"--quarantine-after", "2", NULL};
	struct tvmrpc_client *cl;
	char text[256], *row;

	agent_up(extra);
	wait_state("idle");
	crash_once();
	wait_state("idle");
	crash_once();
	wait_state("idle");
	cl = client_open("10");
	ck_assert_int_eq(call(cl, harness_tvm_func(cl, "rpc.test.addone", T_MS),
			     1, text, sizeof(text), T_MS),
	    TVMRPC_RETURN);
	harness_tvm_done(cl);
	row = harness_sql(b.db, "SELECT count(*) FROM events WHERE kind ="
				" 'board_quarantined'");
	ck_assert_str_eq(row, "0\n");
	free(row);
	wait_log("the built-in probe passed");
}
END_TEST

/*
 * A reset hook that fails is evidence about the board: it is probed
 * before it is offered again (and offered when the probe passes).
 */
START_TEST(test_failed_reset_probes_the_board)
{
	const char *extra[] = {"--reset-cmd", "false", NULL};

	agent_up(extra);
	wait_state("idle");
	crash_once();
	wait_log("the built-in probe passed");
	wait_state("idle");
	ck_assert(agent_log_contains("reset hook failed"));
	ck_assert(agent_log_contains("probing the board (the reset hook "
				     "failed"));
}
END_TEST

/*
 * Tuners that leave without closing their sessions (lost, the client's
 * doing) do not quarantine the board either: three in a row, the default
 * --quarantine-after, and it is still idle.
 */
START_TEST(test_lost_sessions_are_not_board_evidence)
{
	struct tvmrpc_client *cl;
	char text[256], *row;
	int i;

	agent_up(NULL);
	wait_state("idle");
	for (i = 0; i < 3; i++) {
		cl = client_open("10");
		ck_assert_int_eq(
		    call(cl, harness_tvm_func(cl, "rpc.test.addone", T_MS), 1,
			text, sizeof(text), T_MS),
		    TVMRPC_RETURN);
		tvmrpc_client_free(cl); /* no shutdown: it just leaves */
		row = reported_lease();
		ck_assert_msg(strncmp(row, "lost|", 5) == 0, "%s", row);
		free(row);
		wait_sql("SELECT count(*) FROM leases WHERE reported_us IS NOT"
			 " NULL AND outcome = 'lost'",
		    i == 0   ? "1\n"
		    : i == 1 ? "2\n"
			     : "3\n");
		wait_state("idle");
	}
	row = harness_sql(b.db, "SELECT count(*) FROM events WHERE kind ="
				" 'board_quarantined'");
	ck_assert_str_eq(row, "0\n");
	free(row);
}
END_TEST

START_TEST(test_drain_lets_the_session_finish)
{
	struct tvmrpc_client_config cfg = {
	    .tracker = b.farm,
	    .key = "rk3588",
	    .timeout = "10",
	    .io_timeout_ms = T_MS,
	    .grant_timeout_ms = 500,
	};
	struct tvmrpc_client *cl, *other = NULL;
	struct npufarm_err err;
	char text[64], path[128], *id;
	int status;

	agent_up(NULL);
	wait_state("idle");
	cl = client_open("10");
	id = harness_sql(b.db, "SELECT id FROM boards WHERE name = 'a1'");
	id[strcspn(id, "\n")] = '\0';
	(void)snprintf(path, sizeof(path), "/v1/boards/%s/drain", id);
	free(harness_http(b.http, "POST", path, &status));
	ck_assert_int_eq(status, 200);
	/* The running session finishes. */
	ck_assert_int_eq(call(cl, harness_tvm_func(cl, "rpc.test.addone", T_MS),
			     1, text, sizeof(text), T_MS),
	    TVMRPC_RETURN);
	harness_tvm_done(cl);
	wait_state("draining");
	/* Nothing new is granted ... */
	ck_assert_int_ne(tvmrpc_client_open(&cfg, &other, &err), 0);
	tvmrpc_client_free(other);
	/* ... until it is undrained. */
	(void)snprintf(path, sizeof(path), "/v1/boards/%s/undrain", id);
	free(harness_http(b.http, "POST", path, &status));
	ck_assert_int_eq(status, 200);
	free(id);
	cl = client_open("10");
	harness_tvm_done(cl);
}
END_TEST

START_TEST(test_upload_traversal_refused)
{
	struct tvmrpc_client *cl;
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	struct npufarm_err err;
	unsigned char *q = m.b + 12;
	uint64_t up;

	agent_up(NULL);
	wait_state("idle");
	cl = client_open("10");
	up = harness_tvm_func(cl, "tvm.rpc.server.upload", T_MS);
	/* upload("../evil", bytes "x") */
	frame_put_le64(q, up);
	frame_put_le32(q + 8, 2);
	frame_put_le32(q + 12, 11); /* kTVMStr */
	frame_put_le32(q + 16, 12); /* kTVMBytes */
	frame_put_le64(q + 20, 7);
	memcpy(q + 28, "../evil", 7);
	frame_put_le64(q + 35, 1);
	q[43] = 'x';
	m.len = 12 + 44;
	tvmrpc_put_header(m.b, m.len - 8, TVMRPC_CALL_FUNC);
	ck_assert_int_eq(
	    tvmrpc_client_call(cl, &m, T_MS, &p, &err), TVMRPC_CLIENT_E_REMOTE);
	ck_assert_msg(!exists("evil") && !exists("work/evil"), "escaped");
	harness_tvm_done(cl);
}
END_TEST

/* Send kCallFunc(@fn, @nargs args already encoded in @args, @alen bytes). */
static struct tvmrpc_packet
call_raw(struct tvmrpc_client *cl, uint64_t fn, int nargs, const int *codes,
    const unsigned char *args, size_t alen)
{
	size_t len = 8 + 4 + 8 + 4 + 4 * (size_t)nargs + alen;
	unsigned char *pkt = malloc(len), *q;
	struct tvmrpc_packet p;
	int i;

	ck_assert_ptr_nonnull(pkt);
	tvmrpc_put_header(pkt, len - 8, TVMRPC_CALL_FUNC);
	q = pkt + 12;
	frame_put_le64(q, fn);
	frame_put_le32(q + 8, (uint32_t)nargs);
	q += 12;
	for (i = 0; i < nargs; i++, q += 4)
		frame_put_le32(q, (uint32_t)codes[i]);
	memcpy(q, args, alen);
	ck_assert_int_eq(tvmrpc_send(tvmrpc_client_conn(cl), pkt, len), 0);
	free(pkt);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(tvmrpc_client_conn(cl), T_MS, &p), 0);
	return p;
}

/* Append a str or bytes value (u64 length, bytes) at @q. */
static size_t
put_str(unsigned char *q, const void *s, size_t len)
{
	frame_put_le64(q, len);
	memcpy(q + 8, s, len);
	return 8 + len;
}

/* The value of a return [int type code, value] (spec §5.3, EP-06). */
static uint64_t
returned_handle(const struct tvmrpc_packet *p)
{
	ck_assert_int_eq(p->code, TVMRPC_RETURN);
	ck_assert_int_eq(p->body_len, 28);
	return frame_get_le64(p->body + 20);
}

START_TEST(test_module_needs_global_runtime)
{
	const char *path = getenv("NPUFARM_FAKE_MODULE");
	static const int up_codes[] = {11, 12}, load_codes[] = {11},
			 get_codes[] = {9, 11}, call_codes[] = {0};
	unsigned char *args;
	struct tvmrpc_client *cl;
	struct tvmrpc_packet p;
	struct stat st;
	uint64_t mod, fn;
	size_t n;
	FILE *f;

	ck_assert_msg(path != NULL, "NPUFARM_FAKE_MODULE is not set");
	ck_assert_int_eq(stat(path, &st), 0);
	args = malloc((size_t)st.st_size + 64);
	ck_assert_ptr_nonnull(args);
	agent_up(NULL);
	wait_state("idle");
	cl = client_open("10");
	/* upload("op.so", the module) */
	n = put_str(args, "op.so", 5);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	frame_put_le64(args + n, (uint64_t)st.st_size);
	ck_assert_uint_eq(
	    fread(args + n + 8, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	n += 8 + (size_t)st.st_size;
	p = call_raw(cl, harness_tvm_func(cl, "tvm.rpc.server.upload", T_MS), 2,
	    up_codes, args, n);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	/* load_module("op.so"): dlopen()s it inside the runtime; with -z now
	 * that fails unless the runtime's symbols are global. */
	n = put_str(args, "op.so", 5);
	p = call_raw(cl,
	    harness_tvm_func(cl, "tvm.rpc.server.load_module", T_MS), 1,
	    load_codes, args, n);
	if (p.code == TVMRPC_EXCEPTION) {
		const char *s;
		size_t len;

		ck_assert_int_eq(tvmrpc_packet_string(&p, &s, &len), 0);
		ck_abort_msg("load_module: %.*s", (int)len, s);
	}
	mod = returned_handle(&p);
	frame_put_le64(args, mod);
	n = 8 + put_str(args + 8, "npufarm_addone", 14);
	p = call_raw(cl,
	    harness_tvm_func(cl, "tvm.rpc.server.ModuleGetFunction", T_MS), 2,
	    get_codes, args, n);
	fn = returned_handle(&p);
	frame_put_le64(args, 41);
	p = call_raw(cl, fn, 1, call_codes, args, 8);
	/* [kDLInt, kDLInt | 0, 42] (spec §5.3: a return is 2 values) */
	ck_assert_int_eq((int64_t)returned_handle(&p), 42);
	free(args);
	harness_tvm_done(cl);
}
END_TEST

/*
 * The broker goes away mid-session: the agent ends the session (lost: its
 * client is gone), keeps the report, and delivers it to the restarted
 * broker, which writes it on the lease it recorded before the restart.
 */
START_TEST(test_report_survives_broker_restart)
{
	static const char *const extra[] = {
	    "--agent-heartbeat", "0.2", "--agent-backstop", "1", NULL};
	struct tvmrpc_client *cl;
	struct tvmrpc_msg m;
	char *row;

	agent_up(NULL);
	wait_state("idle");
	cl = client_open("30");
	tvmrpc_msg_call_func(
	    &m, harness_tvm_func(cl, "npufarm.test.hang", T_MS), 0);
	ck_assert_int_eq(tvmrpc_send_msg(tvmrpc_client_conn(cl), &m), 0);
	usleep(100000);
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	tvmrpc_client_free(cl);
	(void)snprintf(b.listen, sizeof(b.listen), "%s", b.farm);
	harness_broker_restart(&b, extra);
	row = reported_lease();
	ck_assert_msg(strncmp(row, "lost|", 5) == 0 &&
			  strstr(row, "client vanished mid-session"),
	    "%s", row);
	free(row);
	wait_state("idle");
}
END_TEST

/*
 * A TVM session and a native task of the same key share the agent's one
 * board: the task waits while the session runs, and runs after it.
 */
START_TEST(test_session_and_task_share_the_board)
{
	char path[512], job[512], sha[65], *body;
	struct tvmrpc_client *cl;
	int status;

	agent_up(NULL);
	wait_state("idle");
	(void)snprintf(
	    path, sizeof(path), "%s/libprobe.so", NPUFARM_TEST_KERNELS);
	status = harness_put_artifact(b.http, path, sha);
	ck_assert_int_eq(status, 201);
	cl = client_open("10"); /* the board is leased to the session */
	(void)snprintf(job, sizeof(job),
	    "{\"key\":\"rk3588\",\"tasks\":[{\"runner\":\"kernel\","
	    "\"artifact\":\"%s\",\"entry\":\"noop\"}]}",
	    sha);
	body = harness_http_body(
	    b.http, "POST", "/v1/jobs", job, strlen(job), &status);
	ck_assert_msg(status == 201, "%d %s", status, body);
	free(body);
	usleep(300000);
	wait_sql("SELECT state FROM tasks", "queued\n");
	harness_tvm_done(cl);
	wait_sql("SELECT state || '|' || outcome FROM tasks", "done|ok\n");
	wait_state("idle");
}
END_TEST

/* ---- the tvm-ffi dialect: the fake's tvm-ffi flavour (TVM v0.21+) --- */

/* Whether the agent's log has @needle. */
static bool
log_contains(const char *path, const char *needle)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(path, "r");

	ck_assert_ptr_nonnull(f);
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static void
agent_up_ffi(void)
{
	agent_up_with(getenv("NPUFARM_FAKE_TVM_FFI"), NULL);
}

/* kInitServer (FFI-03) answered void in the tvm-ffi form (FFI-04). */
static struct tvmrpc_client *
ffi_client_open(const char *timeout)
{
	struct tvmrpc_client_config cfg = {
	    .tracker = b.farm,
	    .key = "rk3588",
	    .timeout = timeout,
	    .io_timeout_ms = T_MS,
	    .grant_timeout_ms = T_MS,
	};
	static const unsigned char void_body[8] = {1, 0, 0, 0, 0, 0, 0, 0};
	struct tvmrpc_client *cl = NULL;
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	struct npufarm_err err;

	ck_assert_msg(tvmrpc_client_open(&cfg, &cl, &err) == 0, "%s", err.msg);
	tvmrpc_msg_init_server(&m);
	ck_assert_msg(
	    tvmrpc_client_call(cl, &m, T_MS, &p, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	ck_assert_uint_eq(p.body_len, sizeof(void_body));
	ck_assert_mem_eq(p.body, void_body, sizeof(void_body));
	return cl;
}

/* kGetGlobalFunc(RawStr @name) (FFI-05); the OpaquePtr handle (FFI-06). */
static uint64_t
ffi_func(struct tvmrpc_client *cl, const char *name)
{
	size_t len = strlen(name);
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	struct npufarm_err err;

	ck_assert_uint_lt(len + 28, sizeof(m.b));
	frame_put_le32(m.b + 12, 1);
	frame_put_le32(m.b + 16, 8); /* RawStr */
	frame_put_le64(m.b + 20, len);
	memcpy(m.b + 28, name, len);
	m.len = 28 + len;
	tvmrpc_put_header(m.b, m.len - 8, TVMRPC_GET_GLOBAL_FUNC);
	ck_assert_msg(
	    tvmrpc_client_call(cl, &m, T_MS, &p, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	ck_assert_int_eq(p.body_len, 16);
	ck_assert_int_eq(frame_get_le32(p.body + 4), 4); /* OpaquePtr */
	return frame_get_le64(p.body + 8);
}

/*
 * kCallFunc(@fn, Int @arg) (FFI-13).  Returns the reply's code; an Int
 * result in *ret_v, a kException's text (tvm-ffi form: type 8) in @text.
 */
static int32_t
ffi_call(struct tvmrpc_client *cl, uint64_t fn, int64_t arg, int64_t *ret_v,
    char *text, size_t len)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	uint64_t n;

	frame_put_le64(m.b + 12, fn);
	frame_put_le32(m.b + 20, 1);
	frame_put_le32(m.b + 24, 1); /* Int */
	frame_put_le64(m.b + 28, (uint64_t)arg);
	m.len = 36;
	tvmrpc_put_header(m.b, m.len - 8, TVMRPC_CALL_FUNC);
	ck_assert_int_eq(tvmrpc_send_msg(tvmrpc_client_conn(cl), &m), 0);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(tvmrpc_client_conn(cl), T_MS, &p), 0);
	text[0] = '\0';
	if (p.code == TVMRPC_EXCEPTION) {
		ck_assert_int_ge(p.body_len, 16);
		ck_assert_int_eq(frame_get_le32(p.body), 1);
		ck_assert_int_eq(frame_get_le32(p.body + 4), 8);
		n = frame_get_le64(p.body + 8);
		ck_assert_uint_eq(n, p.body_len - 16);
		(void)snprintf(text, len, "%.*s", (int)n, p.body + 16);
	} else if (p.code == TVMRPC_RETURN && p.body_len == 28) {
		/* [Int: type index 1, Int v] (FFI-14) */
		ck_assert_int_eq(frame_get_le64(p.body + 8), 1);
		*ret_v = (int64_t)frame_get_le64(p.body + 20);
	}
	return p.code;
}

/* ffi_call() of the global function @name; the text goes to @text. */
static int32_t
ffi_call_global(struct tvmrpc_client *cl, const char *name, int64_t arg,
    int64_t *ret_v, char text[static 256])
{
	return ffi_call(cl, ffi_func(cl, name), arg, ret_v, text, 256);
}

/* The agent on the tvm-ffi runtime, idle, and a session with it. */
static struct tvmrpc_client *
ffi_board_session(const char *timeout)
{
	agent_up_ffi();
	wait_state("idle");
	return ffi_client_open(timeout);
}

START_TEST(test_ffi_session_ok)
{
	struct tvmrpc_client *cl;
	char text[256], *row;
	int64_t v = 0;

	cl = ffi_board_session("10");
	ck_assert(log_contains(agent_log, "tvm-ffi C API"));
	ck_assert_int_eq(ffi_call_global(cl, "rpc.test.addone", 41, &v, text),
	    TVMRPC_RETURN);
	ck_assert_int_eq(v, 42);
	harness_tvm_done(cl);
	row = reported_lease();
	ck_assert_msg(strncmp(row, "ok|0|", 5) == 0, "%s", row);
	free(row);
	wait_state("idle");
}
END_TEST

START_TEST(test_ffi_session_exception)
{
	struct tvmrpc_client *cl;
	char text[256], *row;
	int64_t v = 0;

	cl = ffi_board_session("10");
	/* A v0.26 server sends the error's message without its kind. */
	ck_assert_int_eq(ffi_call_global(cl, "npufarm.test.raise", 0, &v, text),
	    TVMRPC_EXCEPTION);
	ck_assert_str_eq(text, "bad input");
	ck_assert_int_eq(
	    ffi_call_global(cl, "rpc.test.addone", 1, &v, text), TVMRPC_RETURN);
	ck_assert_int_eq(v, 2);
	harness_tvm_done(cl);
	row = reported_lease();
	ck_assert_msg(
	    strncmp(row, "exception|0|", 12) == 0 && strstr(row, "bad input"),
	    "%s", row);
	free(row);
}
END_TEST

START_TEST(test_ffi_session_timeout)
{
	struct tvmrpc_client *cl;
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	unsigned char want[256];
	char msg[256], text[256], *row;
	uint64_t hang;
	int64_t v = 0;
	size_t n, wlen;
	long pid;

	cl = ffi_board_session("1");
	hang = ffi_func(cl, "npufarm.test.hang");
	pid = last_child();
	ck_assert_int_gt(pid, 1);
	/* FFI-20 for -timeout=1: u64 20+L | 5 | 1 | type 8 | u64 L | msg,
	 * byte for byte what a v0.26 server sends at its deadline. */
	ck_assert_int_ge(tvmrpc_timeout_message(1.0, msg, sizeof(msg)), 0);
	n = strlen(msg);
	wlen = 28 + n;
	ck_assert_uint_le(wlen, sizeof(want));
	frame_put_le64(want, 20 + n);
	frame_put_le32(want + 8, TVMRPC_EXCEPTION);
	frame_put_le32(want + 12, 1);
	frame_put_le32(want + 16, 8);
	frame_put_le64(want + 20, n);
	memcpy(want + 28, msg, n);
	frame_put_le64(m.b + 12, hang);
	frame_put_le32(m.b + 20, 0);
	m.len = 24;
	tvmrpc_put_header(m.b, m.len - 8, TVMRPC_CALL_FUNC);
	ck_assert_int_eq(tvmrpc_send_msg(tvmrpc_client_conn(cl), &m), 0);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(tvmrpc_client_conn(cl), 5000, &p), 0);
	ck_assert_int_eq(p.code, TVMRPC_EXCEPTION);
	ck_assert_uint_eq(8 + p.len, wlen);
	ck_assert_mem_eq(p.body, want + 12, wlen - 12);
	/* Cleanup calls get the same packet, never the v0.14 form (which
	 * would end a v0.26 client's process, FFI-N1). */
	ck_assert_int_eq(
	    ffi_call(cl, hang, 0, &v, text, sizeof(text)), TVMRPC_EXCEPTION);
	ck_assert_str_eq(text, msg);
	row = reported_lease();
	ck_assert_msg(strncmp(row, "timeout|", 8) == 0, "%s", row);
	free(row);
	ck_assert_int_eq(kill((pid_t)-pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	ck_assert_int_eq(sessions_left(), 0);
	harness_tvm_done(cl);
	/* The board is leasable again, and serves. */
	wait_state("idle");
	cl = ffi_client_open("10");
	ck_assert_int_eq(
	    ffi_call_global(cl, "rpc.test.addone", 1, &v, text), TVMRPC_RETURN);
	ck_assert_int_eq(v, 2);
	harness_tvm_done(cl);
}
END_TEST

START_TEST(test_ffi_session_crash)
{
	struct tvmrpc_client *cl;
	char text[256], *row;
	int64_t v = 0;

	cl = ffi_board_session("10");
	ck_assert_int_eq(ffi_call_global(cl, "npufarm.test.crash", 0, &v, text),
	    TVMRPC_EXCEPTION);
	ck_assert_str_eq(text, "npufarm: board session crashed: SIGSEGV "
			       "(signal 11) while a reply was owed");
	row = reported_lease();
	ck_assert_msg(strncmp(row, "crash|11|", 9) == 0, "%s", row);
	free(row);
	harness_tvm_done(cl);
	wait_state("idle");
}
END_TEST

/* A --tvm-runtime that is no TVM runtime: refused at start-up (exit 1). */
START_TEST(test_agent_refuses_a_non_runtime)
{
	int status = -1, i;
	pid_t r = 0;

	agent_up_with("libm.so.6", NULL);
	for (i = 0; i < T_MS / 10 && r == 0; i++) {
		r = waitpid(agent, &status, WNOHANG);
		if (r == 0)
			usleep(10000);
	}
	ck_assert_int_eq(r, agent);
	agent = 0;
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 1);
	ck_assert(log_contains(agent_log,
	    "--tvm-runtime libm.so.6: not a TVM runtime: it exports neither "
	    "TVMFFIFunctionGetGlobal"));
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("agent-session");
	TCase *tc = tcase_create("agent-session");

	tcase_add_checked_fixture(tc, broker_up, broker_down);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_session_ok);
	tcase_add_test(tc, test_session_exception);
	tcase_add_test(tc, test_session_timeout);
	tcase_add_test(tc, test_session_crash);
	tcase_add_test(tc, test_agent_killed_mid_session);
	tcase_add_test(tc, test_hooks_and_quarantine);
	tcase_add_test(tc, test_crashes_probe_the_board);
	tcase_add_test(tc, test_lost_sessions_are_not_board_evidence);
	tcase_add_test(tc, test_failed_reset_probes_the_board);
	tcase_add_test(tc, test_drain_lets_the_session_finish);
	tcase_add_test(tc, test_upload_traversal_refused);
	tcase_add_test(tc, test_module_needs_global_runtime);
	tcase_add_test(tc, test_report_survives_broker_restart);
	tcase_add_test(tc, test_session_and_task_share_the_board);
	tcase_add_test(tc, test_ffi_session_ok);
	tcase_add_test(tc, test_ffi_session_exception);
	tcase_add_test(tc, test_ffi_session_timeout);
	tcase_add_test(tc, test_ffi_session_crash);
	tcase_add_test(tc, test_agent_refuses_a_non_runtime);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(suite());
}
