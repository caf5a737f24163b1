/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The arm64 agent (issue 14): npufarm-agent cross-built for arm64 by
 * tests/cross/arm64.sh, run under qemu-aarch64 against the native broker
 * on loopback.  It serves TVM sessions on an arm64 build of the fake TVM
 * runtime (an ok call, a crash, a timeout, each classified as on a real
 * board) and a native task with an arm64 kernel; the binaries are checked
 * to be arm64, so a native agent cannot pass for one.
 */
#include "config.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"
#include "tvmrpc.h"
#include "tvmrpc_client.h"

#define T_MS 20000

static struct harness_broker b;
static pid_t agent;
static char workdir[320], agent_log[320];

/* NPUFARM_ARM64_BUILD/@rel, into a static buffer (4 slots). */
static const char *
arm64_path(const char *rel)
{
	static char paths[4][512];
	static int next;
	const char *dir = getenv("NPUFARM_ARM64_BUILD");
	char *p = paths[next++ % 4];

	ck_assert_msg(dir != NULL, "NPUFARM_ARM64_BUILD is not set");
	(void)snprintf(p, 512, "%s/%s", dir, rel);
	return p;
}

static void
broker_up(void)
{
	static const char *const extra[] = {
	    "--agent-heartbeat", "0.5", "--agent-backstop", "2", NULL};

	harness_broker_start(&b, extra);
}

static void
broker_down(void)
{
	if (agent > 0) {
		ck_assert_int_eq(harness_reap(agent, T_MS), 0);
		agent = 0;
	}
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}

/*
 * The arm64 agent "arm1" under qemu, with the arm64 fake runtime.  The
 * arm64 libraries are multiarch (libc6:arm64 ...), where qemu finds them
 * by itself: with -L /usr/aarch64-linux-gnu, qemu 7.2's fork() children
 * hang before their first system call.
 */
static void
agent_up(void)
{
	const char *qemu = getenv("NPUFARM_QEMU");
	const char *const argv[] = {qemu, arm64_path("agent/npufarm-agent"),
	    "--broker", b.farm, "--key", "arm64", "--name", "arm1",
	    "--tvm-runtime", arm64_path("tests/fake_tvm/libtvm_runtime.so"),
	    "--workdir", workdir, "-vv", NULL};

	ck_assert_msg(qemu != NULL, "NPUFARM_QEMU is not set");
	(void)snprintf(workdir, sizeof(workdir), "%s/work", b.dir);
	(void)snprintf(agent_log, sizeof(agent_log), "%s/agent.log", b.dir);
	agent = harness_spawn(qemu, argv, agent_log);
}

static void
wait_sql(const char *sql, const char *want)
{
	harness_wait_sql(b.db, sql, want, T_MS);
}

static void
wait_idle(void)
{
	wait_sql("SELECT state FROM boards WHERE kind = 'agent' AND name = "
		 "'arm1'",
	    "idle\n");
}

/*
 * Lease @id (the sessions' leases are 1, 2, ... in order) once the
 * agent's report is in: "outcome|signal|detail".  By id, not the newest
 * row: the next session's lease may not be committed yet.
 */
static char *
reported_lease(int id)
{
	char sql[160];

	(void)snprintf(sql, sizeof(sql),
	    "SELECT reported_us IS NOT NULL FROM leases WHERE id = %d", id);
	wait_sql(sql, "1\n");
	(void)snprintf(sql, sizeof(sql),
	    "SELECT outcome || '|' || exit_signal || '|' || detail FROM leases "
	    "WHERE id = %d",
	    id);
	return harness_sql(b.db, sql);
}

/* A client granted the board of key arm64, session -timeout=@timeout. */
static struct tvmrpc_client *
client_open(const char *timeout)
{
	return harness_tvm_open(b.farm, "arm64", timeout, T_MS);
}

/* Call global function @name(@arg): the reply's code, @ret its packet. */
static int32_t
call(struct tvmrpc_client *cl, const char *name, int64_t arg,
    struct tvmrpc_packet *ret)
{
	struct tvmrpc_msg m;

	tvmrpc_msg_call_func(&m, harness_tvm_func(cl, name, T_MS), arg);
	ck_assert_int_eq(tvmrpc_send_msg(tvmrpc_client_conn(cl), &m), 0);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(tvmrpc_client_conn(cl), T_MS, ret), 0);
	return ret->code;
}

/* e_machine of the ELF file @path. */
static int
elf_machine(const char *path)
{
	Elf64_Ehdr eh;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	ck_assert_msg(fd >= 0, "%s: cannot open", path);
	n = read(fd, &eh, sizeof(eh));
	close(fd);
	ck_assert_int_eq(n, (ssize_t)sizeof(eh));
	ck_assert_msg(memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0, "%s", path);
	return eh.e_machine;
}

START_TEST(test_binaries_are_arm64)
{
	ck_assert_int_eq(
	    elf_machine(arm64_path("agent/npufarm-agent")), EM_AARCH64);
	ck_assert_int_eq(
	    elf_machine(arm64_path("tests/fake_tvm/libtvm_runtime.so")),
	    EM_AARCH64);
	ck_assert_int_eq(
	    elf_machine(arm64_path("tests/kernels/libmatmul_t16.so")),
	    EM_AARCH64);
}
END_TEST

START_TEST(test_sessions)
{
	struct tvmrpc_client *cl;
	struct tvmrpc_packet p;
	char *row;

	agent_up();
	wait_idle();
	/* An ok call, served by the arm64 runtime in an arm64 child. */
	cl = client_open("20");
	ck_assert_msg(strstr(tvmrpc_client_remote_key(cl), "agent=arm1"), "%s",
	    tvmrpc_client_remote_key(cl));
	ck_assert_int_eq(call(cl, "rpc.test.addone", 41, &p), TVMRPC_RETURN);
	harness_tvm_done(cl);
	row = reported_lease(1);
	ck_assert_msg(strncmp(row, "ok|0|", 5) == 0, "%s", row);
	free(row);
	wait_idle();

	/* A crash of the arm64 child: a clean exception, recorded. */
	cl = client_open("20");
	ck_assert_int_eq(
	    call(cl, "npufarm.test.crash", 0, &p), TVMRPC_EXCEPTION);
	harness_tvm_done(cl);
	row = reported_lease(2);
	ck_assert_msg(strncmp(row, "crash|11|", 9) == 0, "%s", row);
	free(row);
	wait_idle();

	/* A hang past the session's deadline. */
	cl = client_open("2");
	ck_assert_int_eq(
	    call(cl, "npufarm.test.hang", 0, &p), TVMRPC_EXCEPTION);
	harness_tvm_done(cl);
	row = reported_lease(3);
	ck_assert_msg(strncmp(row, "timeout|", 8) == 0, "%s", row);
	free(row);
	wait_idle();
}
END_TEST

START_TEST(test_native_task)
{
	char job[1024], sha[65], *body, *row;
	int status;

	agent_up();
	wait_idle();
	status = harness_put_artifact(
	    b.http, arm64_path("tests/kernels/libmatmul_t16.so"), sha);
	ck_assert_int_eq(status, 201);
	(void)snprintf(job, sizeof(job),
	    "{\"key\":\"arm64\",\"tasks\":[{\"runner\":\"kernel\","
	    "\"artifact\":\"%s\",\"entry\":\"matmul\",\"timeout\":60,"
	    "\"args\":[{\"dtype\":\"float32\",\"shape\":[32,32],"
	    "\"fill\":{\"random\":1}},{\"dtype\":\"float32\","
	    "\"shape\":[32,32],\"fill\":{\"random\":2}},"
	    "{\"dtype\":\"float32\",\"shape\":[32,32]}],"
	    "\"measurement\":{\"number\":2,\"repeat\":2}}]}",
	    sha);
	body = harness_http_body(
	    b.http, "POST", "/v1/jobs", job, strlen(job), &status);
	ck_assert_msg(status == 201, "%d %s", status, body);
	free(body);
	wait_sql("SELECT state || '|' || outcome FROM tasks", "done|ok\n");
	row = harness_sql(b.db, "SELECT board FROM task_results");
	ck_assert_msg(strstr(row, "arm1") != NULL, "%s", row);
	free(row);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("arm64-agent");
	TCase *tc = tcase_create("arm64-agent");

	tcase_add_checked_fixture(tc, broker_up, broker_down);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_binaries_are_arm64);
	tcase_add_test(tc, test_sessions);
	tcase_add_test(tc, test_native_task);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
