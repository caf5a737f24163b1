/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The task runners (agent/runner*.c) on real candidates from
 * tests/kernels: every outcome class from a real child process (ok,
 * exception, crash; a timeout is the caller's kill, done here as the agent
 * will), the kernel ABI checks, the tensors the kernel runner builds, TVM's
 * min_repeat_ms growth, the exec runner's environment, report parsing and
 * stderr tail, and that work dirs and leftover processes are gone after
 * each run.  The test process is a child subreaper, so processes orphaned
 * by a kill come back to it and their fate is checked.  Timing is only
 * ever asserted as a generous lower bound.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "dlpack_util.h"
#include "err.h"
#include "harness.h"
#include "runner.h"
#include "supervisor.h"
#include "task_spec.h"
#include "workdir.h"

#define SHA         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define KDIR        NPUFARM_TEST_KERNELS
#define EXEC_SCRIPT NPUFARM_TEST_KERNELS_SRC "/exec_kernel.sh"

static char tmp[PATH_MAX];
static char work[PATH_MAX + 8];
static struct runner_config cfg;
static struct runner_result res;

static void
setup(void)
{
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	strcpy(tmp, "/tmp/npufarm-runners-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	(void)snprintf(work, sizeof(work), "%s/work", tmp);
	memset(&cfg, 0, sizeof(cfg));
	cfg.workdir = work;
	cfg.stderr_fd = -1;
	memset(&res, 0, sizeof(res));
}

static void
teardown(void)
{
	(void)workdir_remove(tmp, NULL);
}

static double
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	(void)nanosleep(&ts, NULL);
}

/* How many entries the work dir parent holds (the task dirs). */
static int
work_entries(void)
{
	struct dirent *de;
	DIR *d = opendir(work);
	int n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	(void)closedir(d);
	return n;
}

static void
spec_from(const char *json, struct task_spec *spec)
{
	struct npufarm_err e = {0};
	json_error_t je;
	json_t *v = json_loads(json, 0, &je);

	ck_assert_msg(v != NULL, "bad test JSON: %s", je.text);
	ck_assert_msg(task_spec_parse(v, "task", spec, &e) == 0, "%s", e.msg);
	json_decref(v);
}

/*
 * Run @json on @artifact as the agent's loop would: watch the fd, and at
 * @deadline_ms (0: none) kill the group, SIGTERM then SIGKILL.  Fills
 * res; returns true when it had to kill.
 */
static bool
run_task(const char *json, const char *artifact, int deadline_ms)
{
	struct task_spec spec;
	struct npufarm_err e = {0};
	struct runner *run = NULL;
	struct pollfd p;
	double start = now_ms(), killed_at = 0;
	bool eof = false, killed = false;
	int r;

	spec_from(json, &spec);
	ck_assert_msg(
	    runner_start(&cfg, &spec, artifact, &run, &e) == 0, "%s", e.msg);
	ck_assert_int_gt(runner_pid(run), 1);
	for (;;) {
		p.fd = runner_fd(run);
		p.events = POLLIN;
		p.revents = 0;
		if (!eof && poll(&p, 1, 10) > 0) {
			r = runner_read(run, &e);
			ck_assert_msg(r >= 0, "%s", e.msg);
			eof = r == 1;
		} else if (eof) {
			sleep_ms(5);
		}
		r = runner_collect(run, false, &res, &e);
		ck_assert_msg(r >= 0, "%s", e.msg);
		if (r == 1)
			break;
		if (deadline_ms > 0 && !killed &&
		    now_ms() - start > deadline_ms) {
			ck_assert_int_eq(
			    supervisor_session_kill(
				runner_pid(run), SUPERVISOR_KILL_TERM),
			    0);
			killed = true;
			killed_at = now_ms();
		}
		if (killed && now_ms() - killed_at > SUPERVISOR_KILL_GRACE_MS)
			(void)supervisor_session_kill(
			    runner_pid(run), SUPERVISOR_KILL_FORCE);
		/* Generous: nothing here should take a minute. */
		ck_assert_msg(now_ms() - start < 60000, "run never ended");
	}
	ck_assert_int_eq(runner_collect(run, false, &res, &e), -EINVAL);
	runner_free(run);
	ck_assert_int_eq(res.cleanup, 0);
	ck_assert_int_eq(work_entries(), 0); /* the task dir is gone */
	return killed;
}

#define MATMUL_ARGS                                                           \
	"\"args\": [{\"dtype\": \"float32\", \"shape\": [64, 48], \"fill\": " \
	"{\"random\": 1}}, {\"dtype\": \"float32\", \"shape\": [48, 32], "    \
	"\"fill\": {\"random\": 2}}, {\"dtype\": \"float32\", \"shape\": "    \
	"[64, 32]}]"

/* ---- kernel runner: checks against a reference ------------------------ */

#define COPY_TASK(entry, seed)                                                 \
	"{\"runner\": \"kernel\", \"artifact\": \"" SHA                        \
	"\", \"entry\": \"" entry                                              \
	"\", \"args\": [{\"dtype\": \"float32\", \"shape\": [16], \"fill\": "  \
	"{\"random\": " seed "}}, {\"dtype\": \"float32\", \"shape\": [16]}]," \
	" \"check\": {\"ref\": \"" SHA "\", \"entry\": \"count_copy\", "       \
	"\"outputs\": [1]}}"

/* Bytes in the reference's run counter (runs of count_copy). */
static long
ref_runs(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/*
 * A check runs the reference once per board and input: its outputs are
 * cached by reference and inputs, and a cached answer still catches a
 * wrong candidate.
 */
START_TEST(test_kernel_check_reference_once_per_input)
{
	char refs[PATH_MAX + 16], count[PATH_MAX + 16];

	(void)snprintf(refs, sizeof(refs), "%s/refs", tmp);
	(void)snprintf(count, sizeof(count), "%s/ref-runs", tmp);
	ck_assert_int_eq(setenv("NPUFARM_TEST_REF_COUNT", count, 1), 0);
	cfg.ref_path = KDIR "/libprobe.so";
	cfg.ref_cache = refs;
	run_task(COPY_TASK("copy", "1"), KDIR "/libprobe.so", 0);
	ck_assert_msg(res.outcome == NPUFARM_OUTCOME_OK, "%s", res.msg);
	ck_assert_int_eq(ref_runs(count), 1);
	run_task(COPY_TASK("copy", "1"), KDIR "/libprobe.so", 0);
	ck_assert_msg(res.outcome == NPUFARM_OUTCOME_OK, "%s", res.msg);
	ck_assert_int_eq(ref_runs(count), 1); /* cached */
	run_task(COPY_TASK("noop", "1"), KDIR "/libprobe.so", 0);
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_WRONG);
	ck_assert_msg(strstr(res.msg, "args[1][0] = 0 but the reference has") &&
			  strstr(res.msg, "of 16 values differ"),
	    "%s", res.msg);
	ck_assert_int_eq(res.ncosts, 0);
	ck_assert_int_eq(ref_runs(count), 1);
	run_task(COPY_TASK("copy", "2"), KDIR "/libprobe.so", 0);
	ck_assert_msg(res.outcome == NPUFARM_OUTCOME_OK, "%s", res.msg);
	ck_assert_int_eq(ref_runs(count), 2); /* other inputs */
	/* Without a cache it runs every time. */
	cfg.ref_cache = NULL;
	run_task(COPY_TASK("copy", "1"), KDIR "/libprobe.so", 0);
	ck_assert_int_eq(ref_runs(count), 3);
	(void)unsetenv("NPUFARM_TEST_REF_COUNT");
}
END_TEST

/* A reference that fails is an exception that says so, not wrong. */
START_TEST(test_kernel_check_reference_fails)
{
	cfg.ref_path = KDIR "/libcrash.so";
	run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA "\","
		 " \"entry\": \"copy\", \"args\": [{\"dtype\": \"float32\","
		 " \"shape\": [4]}, {\"dtype\": \"float32\", \"shape\": [4]}],"
		 " \"check\": {\"ref\": \"" SHA "\", \"entry\": \"nosuch\"}}",
	    KDIR "/libprobe.so", 0);
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_msg(strstr(res.msg, "the reference: no entry point "
				      "\"nosuch\"") != NULL,
	    "%s", res.msg);
}
END_TEST

/* The built-in probe passes on a sound machine. */
START_TEST(test_builtin_probe_passes)
{
	struct task_spec spec;
	struct runner *run = NULL;
	struct npufarm_err e = {0};
	int r;

	runner_probe_spec(&spec);
	ck_assert_msg(
	    runner_start(&cfg, &spec, NULL, &run, &e) == 0, "%s", e.msg);
	r = runner_collect(run, true, &res, &e);
	ck_assert_msg(r == 1, "%s", e.msg);
	ck_assert_msg(res.outcome == NPUFARM_OUTCOME_OK, "%s", res.msg);
	runner_free(run);
}
END_TEST

/* ---- kernel runner: ok ----------------------------------------------- */

START_TEST(test_kernel_matmul_variants_ok)
{
	static const char *const libs[] = {KDIR "/libmatmul_t8.so",
	    KDIR "/libmatmul_t16.so", KDIR "/libmatmul_t32.so"};
	uint32_t i;

	ck_assert(
	    !run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA
		      "\", \"entry\": \"matmul\", " MATMUL_ARGS
		      ", \"measurement\": {\"number\": 2, \"repeat\": 3}}",
		libs[_i], 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_OK);
	ck_assert_str_eq(res.msg, "");
	ck_assert_uint_eq(res.ncosts, 3);
	ck_assert_uint_eq(res.number, 2);
	ck_assert_int_eq(res.status, 0);
	ck_assert_int_eq(res.signal, 0);
	for (i = 0; i < res.ncosts; i++)
		ck_assert(res.costs[i] > 0 && res.costs[i] < 10);
}
END_TEST

START_TEST(test_kernel_min_repeat_ms_grows_number)
{
	ck_assert(
	    !run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA
		      "\", \"entry\": \"noop\", \"measurement\": "
		      "{\"number\": 1, \"repeat\": 2, \"min_repeat_ms\": 50}}",
		KDIR "/libprobe.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_OK);
	ck_assert_uint_eq(res.ncosts, 2);
	/* A call that does nothing cannot fill 50 ms alone. */
	ck_assert_uint_gt(res.number, 1);
	/* The last repeat ran at the final number and lasted >= 50 ms. */
	ck_assert_msg(res.costs[1] * res.number * 1e3 >= 50 * 0.999,
	    "%g s x %u", res.costs[1], res.number);
	/* Without min_repeat_ms, number stays as given. */
	ck_assert(!run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA
			    "\", \"entry\": \"noop\", \"measurement\": "
			    "{\"number\": 7, \"repeat\": 2}}",
	    KDIR "/libprobe.so", 0));
	ck_assert_uint_eq(res.number, 7);
}
END_TEST

START_TEST(test_kernel_cooldown_between_repeats)
{
	double t0 = now_ms();

	ck_assert(
	    !run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA
		      "\", \"entry\": \"spin_us\", \"args\": [{\"dtype\": "
		      "\"int32\", \"value\": 200}], \"measurement\": "
		      "{\"repeat\": 4, \"cooldown_ms\": 100}}",
		KDIR "/libprobe.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_OK);
	ck_assert_uint_eq(res.ncosts, 4);
	/* Three pauses between four repeats: a lower bound only. */
	ck_assert_double_ge(now_ms() - t0, 300);
	/* Each call spins 200 us at least. */
	ck_assert_double_ge(res.costs[3], 200e-6);
}
END_TEST

START_TEST(test_kernel_builds_the_described_tensors)
{
	char want[512];
	int64_t shape[1] = {4};
	DLTensor t;
	DLDataType dt;

	/* The random int8 value the runner must have put first. */
	ck_assert_int_eq(dlpack_util_dtype_parse("int8", &dt), 0);
	ck_assert_int_eq(dlpack_util_tensor_alloc(&t, dt, shape, 1, NULL), 0);
	dlpack_util_fill(&t, DLPACK_UTIL_FILL_RANDOM, 1);
	(void)snprintf(want, sizeof(want),
	    "2.32.1/2/2x3x/1/aligned;0.8.1/1/4x/%d/aligned;"
	    "2.16.1/1/1x/0x3c00/aligned;4.16.1/1/1x/0x3f80/aligned;"
	    "0.32.1/0//-5/aligned;2.64.1/0//2.5/aligned;1.8.4/1/2x/0/aligned;",
	    ((int8_t *)t.data)[0]);
	dlpack_util_tensor_free(&t);
	ck_assert(!run_task(
	    "{\"runner\": \"kernel\", \"artifact\": \"" SHA
	    "\", \"entry\": \"describe\", \"args\": ["
	    "{\"dtype\": \"float32\", \"shape\": [2, 3], \"fill\": \"ones\"},"
	    "{\"dtype\": \"int8\", \"shape\": [4], \"fill\": {\"random\": 1}},"
	    "{\"dtype\": \"float16\", \"shape\": [1], \"fill\": \"ones\"},"
	    "{\"dtype\": \"bfloat16\", \"shape\": [1], \"fill\": \"ones\"},"
	    "{\"dtype\": \"int32\", \"value\": -5},"
	    "{\"dtype\": \"float64\", \"value\": 2.5},"
	    "{\"dtype\": \"uint8x4\", \"shape\": [2]}]}",
	    KDIR "/libprobe.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(res.msg, want);
}
END_TEST

/* ---- kernel runner: exception ---------------------------------------- */

START_TEST(test_kernel_error_channel_is_verbatim)
{
	ck_assert(
	    !run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA "\"}",
		KDIR "/liberror.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(res.msg,
	    "NPU_ERR_UNSUPPORTED: tile 48 does not fit the 32 KiB scratchpad");
	ck_assert_uint_eq(res.ncosts, 0);
	ck_assert_int_eq(res.signal, 0);
}
END_TEST

START_TEST(test_kernel_error_in_timed_calls)
{
	ck_assert(!run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA
			    "\", \"entry\": \"fail_third\", \"measurement\": "
			    "{\"number\": 1, \"repeat\": 5}}",
	    KDIR "/libprobe.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(res.msg, "failed on call 3");
	ck_assert_uint_eq(res.ncosts, 0);
	ck_assert(!run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA
			    "\", \"entry\": \"silent_fail\"}",
	    KDIR "/libprobe.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(res.msg, "silent_fail returned 3 without a message");
	/* The matmul's own argument checks come back the same way. */
	ck_assert(!run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA
			    "\", \"entry\": \"matmul\", \"args\": [{\"dtype\": "
			    "\"float32\", \"shape\": [4, 4]}, {\"dtype\": "
			    "\"float32\", \"shape\": [5, 4]}, {\"dtype\": "
			    "\"float32\", \"shape\": [4, 4]}]}",
	    KDIR "/libmatmul_t8.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(
	    res.msg, "matmul: shapes do not chain: A 4x4, B 5x4, C 4x4");
}
END_TEST

START_TEST(test_kernel_abi_checks)
{
	char path[PATH_MAX + 16];
	FILE *f;

	ck_assert(
	    !run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA "\"}",
		KDIR "/libnoabi.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(res.msg, "no npufarm_kernel_abi_version: not a kernel "
				  "built against <npufarm/kernel.h>");
	ck_assert(!run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA
			    "\", \"entry\": \"nope\"}",
	    KDIR "/libprobe.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(res.msg, "no entry point \"nope\" in the artifact");
	/* Not a shared object at all. */
	(void)snprintf(path, sizeof(path), "%s/junk.so", tmp);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	(void)fputs("not an ELF file\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert(!run_task(
	    "{\"runner\": \"kernel\", \"artifact\": \"" SHA "\"}", path, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_msg(strncmp(res.msg, "dlopen: ", 8) == 0, "%s", res.msg);
}
END_TEST

/* ---- kernel runner: crash and timeout -------------------------------- */

START_TEST(test_kernel_crash_is_named)
{
	ck_assert(
	    !run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA "\"}",
		KDIR "/libcrash.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_int_eq(res.signal, SIGSEGV);
	ck_assert_int_eq(res.status, -1);
	ck_assert_str_eq(res.msg, "SIGSEGV (signal 11)");
	ck_assert_uint_eq(res.ncosts, 0);
	/* exit(0) from inside a kernel leaves no result: a crash too. */
	ck_assert(!run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA
			    "\", \"entry\": \"exit_zero\"}",
	    KDIR "/libprobe.so", 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_str_eq(res.msg, "exited with status 0 without a result");
}
END_TEST

START_TEST(test_kernel_hang_is_killed_at_the_deadline)
{
	double t0 = now_ms();

	/* The runner never decides a timeout: it only runs until killed. */
	ck_assert(
	    run_task("{\"runner\": \"kernel\", \"artifact\": \"" SHA "\"}",
		KDIR "/libhang.so", 300));
	ck_assert_double_ge(now_ms() - t0, 300);
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_int_eq(res.signal, SIGTERM);
	ck_assert_str_eq(res.msg, "SIGTERM (signal 15)");
}
END_TEST

START_TEST(test_runner_free_kills_a_running_task)
{
	struct task_spec spec;
	struct runner *run;
	pid_t pid;
	int status;

	spec_from("{\"runner\": \"kernel\", \"artifact\": \"" SHA "\"}", &spec);
	ck_assert_int_eq(
	    runner_start(&cfg, &spec, KDIR "/libhang.so", &run, NULL), 0);
	pid = runner_pid(run);
	ck_assert_int_eq(runner_collect(run, false, &res, NULL), 0);
	ck_assert_ptr_null(runner_free(run));
	/* Reaped already: no such child any more. */
	ck_assert_int_eq(waitpid(pid, &status, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	ck_assert_int_eq(work_entries(), 0);
}
END_TEST

START_TEST(test_runner_start_errors)
{
	struct npufarm_err e = {0};
	struct task_spec spec;
	struct runner *run = NULL;
	struct runner_config none = {0};

	spec_from("{\"runner\": \"kernel\", \"artifact\": \"" SHA "\"}", &spec);
	ck_assert_int_eq(
	    runner_start(&cfg, &spec, "/nonexistent/lib.so", &run, &e),
	    -ENOENT);
	ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent/lib.so"));
	ck_assert_ptr_null(run);
	ck_assert_int_eq(
	    runner_start(&none, &spec, KDIR "/libprobe.so", &run, &e), -EINVAL);
	ck_assert_ptr_null(run);
	ck_assert_ptr_null(runner_free(NULL));
}
END_TEST

/* ---- exec runner ------------------------------------------------------ */

#define EXEC_TASK(entry, measure)                     \
	"{\"runner\": \"exec\", \"artifact\": \"" SHA \
	"\", \"entry\": \"" entry "\", \"measurement\": " measure "}"

START_TEST(test_exec_ok)
{
	char want[PATH_MAX + 32];

	ck_assert(!run_task(
	    EXEC_TASK("ok", "{\"number\": 4, \"repeat\": 3}"), EXEC_SCRIPT, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_OK);
	ck_assert_uint_eq(res.ncosts, 3);
	ck_assert(res.costs[0] == 0.001 && res.costs[1] == 0.002 &&
		  res.costs[2] == 0.003);
	ck_assert_uint_eq(res.number, 4);
	ck_assert_int_eq(res.status, 0);
	(void)snprintf(want, sizeof(want), "measuring %s\n", EXEC_SCRIPT);
	ck_assert_str_eq(res.tail, want);
}
END_TEST

START_TEST(test_exec_environment)
{
	ck_assert(
	    !run_task("{\"runner\": \"exec\", \"artifact\": \"" SHA
		      "\", \"entry\": \"env\", \"name\": \"t16\", "
		      "\"args\": [{\"dtype\": \"int8\", \"shape\": [2, 3]},"
		      " {\"dtype\": \"float32\", \"value\": 1.5}], "
		      "\"measurement\": {\"number\": 4, \"repeat\": 3, "
		      "\"min_repeat_ms\": 20, \"cooldown_ms\": 5}, "
		      "\"timeout\": 2.5}",
		EXEC_SCRIPT, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(res.msg,
	    "4 3 20 5 2500 env t16 inworkdir "
	    "[{\"dtype\":\"int8\",\"shape\":[2,3],\"fill\":\"zeros\"},"
	    "{\"dtype\":\"float32\",\"value\":1.5}]");
}
END_TEST

START_TEST(test_exec_reported_error)
{
	ck_assert(!run_task(EXEC_TASK("error", "{}"), EXEC_SCRIPT, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(res.msg, "vendor compiler: unsupported tile 48");
	ck_assert_int_eq(res.status, 1);
	ck_assert_str_eq(res.tail, "compiling candidate\n");
}
END_TEST

START_TEST(test_exec_crash_by_signal)
{
	ck_assert(!run_task(EXEC_TASK("segv", "{}"), EXEC_SCRIPT, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_int_eq(res.signal, SIGSEGV);
	ck_assert_str_eq(res.msg, "SIGSEGV (signal 11)");
	ck_assert_str_eq(res.tail, "about to crash\n");
}
END_TEST

START_TEST(test_exec_crash_by_status)
{
	static const char last[] = "noise line 1999\nthe last line\n";

	ck_assert(!run_task(EXEC_TASK("exit3", "{}"), EXEC_SCRIPT, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_int_eq(res.status, 3);
	ck_assert_int_eq(res.signal, 0);
	ck_assert_str_eq(res.msg, "exited with status 3");
	ck_assert_str_eq(res.tail, "first line\nsomething went wrong\n");
	/* Only the tail of a long stderr is kept. */
	ck_assert(!run_task(EXEC_TASK("stderr-flood", "{}"), EXEC_SCRIPT, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_uint_eq(strlen(res.tail), RUNNER_TAIL_MAX - 1);
	ck_assert_str_eq(res.tail + strlen(res.tail) - strlen(last), last);
	ck_assert_ptr_null(strstr(res.tail, "noise line 1\n"));
}
END_TEST

START_TEST(test_exec_unusable_reports)
{
	ck_assert(!run_task(EXEC_TASK("garbage", "{}"), EXEC_SCRIPT, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_msg(
	    strncmp(res.msg, "no costs on stdout: ", 20) == 0, "%s", res.msg);
	ck_assert(!run_task(EXEC_TASK("bad-costs", "{}"), EXEC_SCRIPT, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(res.msg,
	    "no costs on stdout: costs[1] must be a number of seconds");
	/* The stdout limit. */
	ck_assert(!run_task(EXEC_TASK("flood", "{}"), EXEC_SCRIPT, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_EXCEPTION);
	ck_assert_str_eq(
	    res.msg, "no costs on stdout: more than 65536 bytes on stdout");
}
END_TEST

START_TEST(test_exec_hang_is_killed_with_its_children)
{
	double t0 = now_ms();
	int status;

	ck_assert(run_task(EXEC_TASK("hang", "{}"), EXEC_SCRIPT, 300));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_int_eq(res.signal, SIGTERM);
	/* The script's sleep died with the group.  As subreaper we get
	 * whatever was orphaned; a kill is not instant, so wait (boundedly)
	 * until there is no child left at all. */
	for (;;) {
		pid_t p = waitpid(-1, &status, WNOHANG);

		if (p < 0)
			break;
		if (p > 0)
			ck_assert(WIFSIGNALED(status));
		ck_assert_msg(now_ms() - t0 < 10000, "a process survived");
		sleep_ms(5);
	}
	ck_assert_int_eq(errno, ECHILD);
}
END_TEST

START_TEST(test_exec_background_child_does_not_hold_the_result)
{
	char pidfile[PATH_MAX + 16], buf[32] = "";
	double t0 = now_ms();
	pid_t left;
	int status, fd;
	ssize_t n;

	(void)snprintf(pidfile, sizeof(pidfile), "%s/bg.pid", tmp);
	ck_assert_int_eq(setenv("NPUFARM_PIDFILE", pidfile, 1), 0);
	ck_assert(!run_task(
	    EXEC_TASK("background", "{\"repeat\": 2}"), EXEC_SCRIPT, 20000));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_OK);
	ck_assert_uint_eq(res.ncosts, 2);
	ck_assert_double_lt(now_ms() - t0, 15000); /* not the sleep's 1000 s */
	fd = open(pidfile, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	ck_assert_int_gt(n, 0);
	(void)close(fd);
	left = (pid_t)atol(buf);
	/* Orphaned to us, killed by the reap of the group. */
	ck_assert_int_eq(waitpid(left, &status, 0), left);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}
END_TEST

START_TEST(test_exec_configured_command)
{
	char copy[PATH_MAX + 16], cmd[64];
	FILE *in, *out;
	int ch;

	/* A copy the program cannot exec itself: only sh can run it. */
	(void)snprintf(copy, sizeof(copy), "%s/script", tmp);
	in = fopen(EXEC_SCRIPT, "r");
	out = fopen(copy, "w");
	ck_assert(in != NULL && out != NULL);
	while ((ch = fgetc(in)) != EOF)
		(void)fputc(ch, out);
	(void)fclose(in);
	ck_assert_int_eq(fclose(out), 0);
	ck_assert_int_eq(chmod(copy, 0600), 0);

	ck_assert(!run_task(EXEC_TASK("ok", "{\"repeat\": 2}"), copy, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_str_eq(res.msg, "exited with status 127");
	ck_assert_ptr_nonnull(strstr(res.tail, "Permission denied"));

	(void)snprintf(cmd, sizeof(cmd), "exec sh \"$NPUFARM_ARTIFACT\" ok");
	cfg.exec_cmd = cmd;
	ck_assert(!run_task(EXEC_TASK("ignored", "{\"repeat\": 2}"), copy, 0));
	ck_assert_int_eq(res.outcome, NPUFARM_OUTCOME_OK);
	ck_assert_uint_eq(res.ncosts, 2);
}
END_TEST

int
main(void)
{
	struct rlimit nocore = {0, 0};
	Suite *s = suite_create("runners");
	TCase *tc;

	/* Crashes are expected here; keep them from dumping core. */
	(void)setrlimit(RLIMIT_CORE, &nocore);

	tc = tcase_create("kernel");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_kernel_matmul_variants_ok, 0, 3);
	tcase_add_test(tc, test_kernel_min_repeat_ms_grows_number);
	tcase_add_test(tc, test_kernel_cooldown_between_repeats);
	tcase_add_test(tc, test_kernel_builds_the_described_tensors);
	tcase_add_test(tc, test_kernel_error_channel_is_verbatim);
	tcase_add_test(tc, test_kernel_error_in_timed_calls);
	tcase_add_test(tc, test_kernel_abi_checks);
	tcase_add_test(tc, test_kernel_crash_is_named);
	tcase_add_test(tc, test_kernel_hang_is_killed_at_the_deadline);
	tcase_add_test(tc, test_runner_free_kills_a_running_task);
	tcase_add_test(tc, test_runner_start_errors);
	tcase_add_test(tc, test_kernel_check_reference_once_per_input);
	tcase_add_test(tc, test_kernel_check_reference_fails);
	tcase_add_test(tc, test_builtin_probe_passes);
	suite_add_tcase(s, tc);

	tc = tcase_create("exec");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_exec_ok);
	tcase_add_test(tc, test_exec_environment);
	tcase_add_test(tc, test_exec_reported_error);
	tcase_add_test(tc, test_exec_crash_by_signal);
	tcase_add_test(tc, test_exec_crash_by_status);
	tcase_add_test(tc, test_exec_unusable_reports);
	tcase_add_test(tc, test_exec_hang_is_killed_with_its_children);
	tcase_add_test(tc, test_exec_background_child_does_not_hold_the_result);
	tcase_add_test(tc, test_exec_configured_command);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
