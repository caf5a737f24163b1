/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's session supervisor (agent/): work dir confinement and
 * removal, the server environment callbacks against a stub of the TVM C
 * API (ownership included), the reaper's classification of real forked
 * children, process-group kills, hooks, and sessions started for real on
 * the fake runtime of tests/fake_tvm, driven as a TVM client would.
 * Every test that forks reaps what it forked; the test process is a child
 * subreaper, so grandchildren orphaned by a kill come back to it and
 * their fate can be checked instead of guessed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "child_setup.h"
#include "err.h"
#include "frame.h"
#include "harness.h"
#include "session_env.h"
#include "supervisor.h"
#include "tvm_runtime.h"
#include "tvmrpc.h"
#include "workdir.h"

/* Per-test temp dir: the session dirs' parent, or a work dir itself. */
static char tmp[PATH_MAX];
/* Canonical "<tmp>/w", created by the fixture: a session work dir. */
static char wdir[PATH_MAX];
/* "<tmp>/outside": what confinement must protect. */
static char outside[PATH_MAX];

static void
tmp_setup(void)
{
	char w[2 * PATH_MAX];

	/* Not inherited through check's fork: set in each test process.
	 * Orphaned grandchildren come back to the test, to be checked. */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	strcpy(tmp, "/tmp/npufarm-supervisor-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	(void)snprintf(w, sizeof(w), "%s/w", tmp);
	ck_assert_int_eq(workdir_create(w, wdir, sizeof(wdir), NULL), 0);
	(void)snprintf(outside, sizeof(outside), "%s/outside", tmp);
	ck_assert_int_eq(mkdir(outside, 0700), 0);
}

static void
tmp_teardown(void)
{
	(void)workdir_remove(tmp, NULL);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	(void)nanosleep(&ts, NULL);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	(void)fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static char *
read_file(const char *path)
{
	static char buf[4096];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	(void)close(fd);
	return buf;
}

static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- work dir confinement ------------------------------------------- */

START_TEST(test_workdir_path_joins_relative_names)
{
	char buf[PATH_MAX], want[2 * PATH_MAX];

	ck_assert_int_eq(workdir_path(wdir, "a.so", buf, sizeof(buf), NULL), 0);
	(void)snprintf(want, sizeof(want), "%s/a.so", wdir);
	ck_assert_str_eq(buf, want);
	ck_assert_int_eq(
	    workdir_path(wdir, "sub/x.tar", buf, sizeof(buf), NULL), 0);
	(void)snprintf(want, sizeof(want), "%s/sub/x.tar", wdir);
	ck_assert_str_eq(buf, want);
	/* As TVM joins them: "." stays, "" names the dir itself. */
	ck_assert_int_eq(workdir_path(wdir, ".", buf, sizeof(buf), NULL), 0);
	(void)snprintf(want, sizeof(want), "%s/.", wdir);
	ck_assert_str_eq(buf, want);
	ck_assert_int_eq(workdir_path(wdir, "", buf, sizeof(buf), NULL), 0);
	(void)snprintf(want, sizeof(want), "%s/", wdir);
	ck_assert_str_eq(buf, want);
	/* Dots that are not "..": ordinary names. */
	ck_assert_int_eq(workdir_path(wdir, "...", buf, sizeof(buf), NULL), 0);
	ck_assert_int_eq(
	    workdir_path(wdir, "..a/b..", buf, sizeof(buf), NULL), 0);
}
END_TEST

START_TEST(test_workdir_path_rejects_dotdot)
{
	static const char *const bad[] = {
	    "..", "../x", "a/../../x", "a/..", "a//../b", "./..", "x/../y"};
	struct npufarm_err e = {0};
	char buf[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		ck_assert_msg(
		    workdir_path(wdir, bad[i], buf, sizeof(buf), &e) == -EPERM,
		    "%s was accepted", bad[i]);
		ck_assert_ptr_nonnull(strstr(e.msg, "'..'"));
	}
}
END_TEST

START_TEST(test_workdir_path_rejects_absolute)
{
	struct npufarm_err e = {0};
	char buf[PATH_MAX], name[2 * PATH_MAX];

	ck_assert_int_eq(
	    workdir_path(wdir, "/etc/passwd", buf, sizeof(buf), &e), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, "absolute"));
	/* Even one that happens to lie inside the work dir. */
	(void)snprintf(name, sizeof(name), "%s/a", wdir);
	ck_assert_int_eq(
	    workdir_path(wdir, name, buf, sizeof(buf), &e), -EPERM);
}
END_TEST

START_TEST(test_workdir_path_rejects_symlink_escapes)
{
	struct npufarm_err e = {0};
	char buf[PATH_MAX], link[2 * PATH_MAX];

	/* A link to a dir outside, used as a dir and as the name itself. */
	(void)snprintf(link, sizeof(link), "%s/out", wdir);
	ck_assert_int_eq(symlink(outside, link), 0);
	ck_assert_int_eq(
	    workdir_path(wdir, "out/x.so", buf, sizeof(buf), &e), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, "symlink"));
	ck_assert_int_eq(
	    workdir_path(wdir, "out", buf, sizeof(buf), &e), -EPERM);
	/* Relative, through a subdir. */
	(void)snprintf(link, sizeof(link), "%s/sub", wdir);
	ck_assert_int_eq(mkdir(link, 0700), 0);
	(void)snprintf(link, sizeof(link), "%s/sub/up", wdir);
	ck_assert_int_eq(symlink("../../outside", link), 0);
	ck_assert_int_eq(
	    workdir_path(wdir, "sub/up/f", buf, sizeof(buf), &e), -EPERM);
	/* Dangling: an upload through it would create its target. */
	(void)snprintf(link, sizeof(link), "%s/dangling", wdir);
	ck_assert_int_eq(symlink("/nonexistent-npufarm/x", link), 0);
	ck_assert_int_eq(
	    workdir_path(wdir, "dangling", buf, sizeof(buf), &e), -EPERM);
	/* A link that stays inside is fine, and so are missing names. */
	(void)snprintf(link, sizeof(link), "%s/in", wdir);
	ck_assert_int_eq(symlink("sub", link), 0);
	ck_assert_int_eq(workdir_path(wdir, "in/f", buf, sizeof(buf), &e), 0);
	(void)snprintf(link, sizeof(link), "%s/self", wdir);
	ck_assert_int_eq(symlink(".", link), 0);
	ck_assert_int_eq(workdir_path(wdir, "self/a", buf, sizeof(buf), &e), 0);
	ck_assert_int_eq(
	    workdir_path(wdir, "new/deeper/f", buf, sizeof(buf), &e), 0);
}
END_TEST

START_TEST(test_workdir_path_too_long)
{
	char name[2 * PATH_MAX], buf[PATH_MAX];

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_int_eq(
	    workdir_path(wdir, name, buf, sizeof(buf), NULL), -ENAMETOOLONG);
	ck_assert_int_eq(workdir_path(wdir, "a", buf, strlen(wdir) + 2, NULL),
	    -ENAMETOOLONG);
}
END_TEST

/* Fill the work dir with what a session might leave behind. */
static void
litter(const char *dir)
{
	char p[2 * PATH_MAX], q[2 * PATH_MAX];

	(void)snprintf(p, sizeof(p), "%s/kept", outside);
	write_file(p, "outside");
	(void)snprintf(p, sizeof(p), "%s/a.so", dir);
	write_file(p, "x");
	(void)snprintf(p, sizeof(p), "%s/d", dir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	(void)snprintf(p, sizeof(p), "%s/d/e", dir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	(void)snprintf(p, sizeof(p), "%s/d/e/f", dir);
	write_file(p, "y");
	(void)snprintf(p, sizeof(p), "%s/d/to-outside", dir);
	ck_assert_int_eq(symlink(outside, p), 0);
	(void)snprintf(p, sizeof(p), "%s/kept-link", dir);
	(void)snprintf(q, sizeof(q), "%s/kept", outside);
	ck_assert_int_eq(symlink(q, p), 0);
	(void)snprintf(p, sizeof(p), "%s/locked", dir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	(void)snprintf(p, sizeof(p), "%s/locked/x", dir);
	write_file(p, "z");
	(void)snprintf(p, sizeof(p), "%s/locked", dir);
	ck_assert_int_eq(chmod(p, 0), 0);
}

static void
assert_outside_intact(void)
{
	char p[2 * PATH_MAX];

	(void)snprintf(p, sizeof(p), "%s/kept", outside);
	ck_assert_str_eq(read_file(p), "outside");
}

START_TEST(test_workdir_remove_never_follows_symlinks)
{
	litter(wdir);
	ck_assert_int_eq(workdir_remove(wdir, NULL), 0);
	ck_assert(!exists(wdir));
	assert_outside_intact();
	/* Gone already: still success. */
	ck_assert_int_eq(workdir_remove(wdir, NULL), 0);
}
END_TEST

START_TEST(test_workdir_remove_of_a_symlink_removes_the_link)
{
	char link[2 * PATH_MAX];

	litter(wdir);
	(void)snprintf(link, sizeof(link), "%s/session-link", tmp);
	ck_assert_int_eq(symlink(outside, link), 0);
	ck_assert_int_eq(workdir_remove(link, NULL), 0);
	ck_assert(!exists(link));
	assert_outside_intact();
}
END_TEST

START_TEST(test_workdir_create_starts_empty)
{
	char abs[PATH_MAX], rel[2 * PATH_MAX], p[2 * PATH_MAX];

	litter(wdir);
	ck_assert_int_eq(chdir(tmp), 0);
	/* A leftover of the same name is cleared; the path comes back
	 * canonical and absolute even when given relative. */
	(void)snprintf(rel, sizeof(rel), "./w");
	ck_assert_int_eq(workdir_create(rel, abs, sizeof(abs), NULL), 0);
	ck_assert_str_eq(abs, wdir);
	(void)snprintf(p, sizeof(p), "%s/a.so", wdir);
	ck_assert(!exists(p));
	assert_outside_intact();
	ck_assert_int_eq(
	    workdir_create("missing/parent", abs, sizeof(abs), NULL), -ENOENT);
}
END_TEST

/* ---- server environment, against a stub C API ------------------------ */

/* A stub runtime: handles are slots, errors and returns are recorded. */
struct stub_fn {
	TVMPackedCFunc fn;
	void *res;
	int frees;
	char name[64]; /* registered as, "" if not */
	int override;
};
struct stub_ret {
	int calls;
	int code;
	char str[4096];
	void *handle;
};

static struct stub_fn stub_fns[8];
static int stub_nfns;
static struct stub_fn stub_loadso; /* runtime.module.loadfile_so */
static struct stub_fn stub_loop;   /* rpc.ServerLoop, never called */
static char stub_error[512];
static bool stub_has_error;
static char stub_loadso_path[PATH_MAX];
static bool stub_loadso_fails;
static int stub_module;       /* the handle loadfile_so returns */
static int stub_module_frees; /* TVMModFree on it */

static int
stub_create(TVMPackedCFunc f, void *res, TVMPackedCFuncFinalizer fin,
    TVMFunctionHandle *out)
{
	ck_assert_ptr_null(fin); /* registered for life: never finalized */
	ck_assert_int_lt(stub_nfns, 8);
	stub_fns[stub_nfns].fn = f;
	stub_fns[stub_nfns].res = res;
	*out = &stub_fns[stub_nfns++];
	return 0;
}

static int
stub_register(const char *name, TVMFunctionHandle h, int override)
{
	struct stub_fn *f = h;

	ck_assert_int_eq(f->frees, 0); /* not freed before registering */
	(void)snprintf(f->name, sizeof(f->name), "%s", name);
	f->override = override;
	return 0;
}

static int
stub_free(TVMFunctionHandle h)
{
	((struct stub_fn *)h)->frees++;
	return 0;
}

static int
stub_get_global(const char *name, TVMFunctionHandle *out)
{
	*out = strcmp(name, "runtime.module.loadfile_so") == 0 ? &stub_loadso
	       : strcmp(name, "rpc.ServerLoop") == 0           ? &stub_loop
							       : NULL;
	return 0;
}

static void
stub_set_error(const char *msg)
{
	(void)snprintf(stub_error, sizeof(stub_error), "%s", msg);
	stub_has_error = true;
}

static const char *
stub_get_error(void)
{
	return stub_has_error ? stub_error : NULL;
}

static int
stub_call(TVMFunctionHandle f, TVMValue *args, int *codes, int n, TVMValue *ret,
    int *ret_code)
{
	ck_assert_ptr_eq(f, &stub_loadso);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(codes[0], kTVMStr);
	(void)snprintf(
	    stub_loadso_path, sizeof(stub_loadso_path), "%s", args[0].v_str);
	if (stub_loadso_fails) {
		stub_set_error("Error: Failed to load dynamic shared library "
			       "x.so: cannot open shared object file");
		return -1;
	}
	ret->v_handle = &stub_module;
	*ret_code = kTVMModuleHandle;
	return 0;
}

static int
stub_set_return(TVMRetValueHandle ret, TVMValue *v, int *code, int n)
{
	struct stub_ret *r = ret;

	ck_assert_int_eq(n, 1);
	r->calls++;
	r->code = *code;
	if (*code == kTVMStr)
		(void)snprintf(r->str, sizeof(r->str), "%s", v->v_str);
	else
		r->handle = v->v_handle;
	return 0;
}

static int
stub_mod_free(TVMModuleHandle m)
{
	ck_assert_ptr_eq(m, &stub_module);
	stub_module_frees++;
	return 0;
}

static const struct tvm_capi stub_api = {
    .TVMFuncGetGlobal = stub_get_global,
    .TVMFuncCall = stub_call,
    .TVMFuncFree = stub_free,
    .TVMFuncCreateFromCFunc = stub_create,
    .TVMFuncRegisterGlobal = stub_register,
    .TVMCFuncSetReturn = stub_set_return,
    .TVMGetLastError = stub_get_error,
    .TVMAPISetLastError = stub_set_error,
    .TVMModFree = stub_mod_free,
};

static struct session_env stub_env;
static struct tvm_runtime stub_rt;

static void
env_setup(void)
{
	tmp_setup();
	tvm_capi_bind(&stub_rt, &stub_api);
	ck_assert_int_eq(tvm_runtime_find(&stub_rt, NULL), 0);
	ck_assert_int_eq(tvm_runtime_dialect(&stub_rt), TVM_RPC_DIALECT_V014);
	(void)snprintf(stub_env.dir, sizeof(stub_env.dir), "%s", wdir);
	ck_assert_int_eq(session_env_register(&stub_env, &stub_rt, NULL), 0);
}

/* Call the registered function @name with one argument. */
static int
env_call(const char *name, TVMValue arg, int code, struct stub_ret *ret)
{
	int i;

	memset(ret, 0, sizeof(*ret));
	stub_has_error = false;
	for (i = 0; i < stub_nfns; i++)
		if (strcmp(stub_fns[i].name, name) == 0)
			return stub_fns[i].fn(
			    &arg, &code, 1, ret, stub_fns[i].res);
	ck_abort_msg("%s is not registered", name);
	return -1;
}

static int
env_call_str(const char *name, const char *s, struct stub_ret *ret)
{
	TVMValue v;

	v.v_str = s;
	return env_call(name, v, kTVMStr, ret);
}

START_TEST(test_env_register_ownership)
{
	static const char *const names[] = {"tvm.rpc.server.workpath",
	    "tvm.rpc.server.load_module", "tvm.rpc.server.listdir"};
	size_t i;
	int j;

	ck_assert_int_eq(stub_nfns, 3);
	for (i = 0; i < 3; i++) {
		for (j = 0; j < stub_nfns; j++)
			if (strcmp(stub_fns[j].name, names[i]) == 0)
				break;
		ck_assert_msg(j < stub_nfns, "%s not registered", names[i]);
		/* The registry holds its own reference: ours is dropped,
		 * exactly once; the env is every callback's resource. */
		ck_assert_int_eq(stub_fns[j].frees, 1);
		ck_assert_int_eq(stub_fns[j].override, 1);
		ck_assert_ptr_eq(
		    ((struct tvm_runtime_fn *)stub_fns[j].res)->arg, &stub_env);
	}
	ck_assert_ptr_eq(stub_rt.loader, &stub_loadso);
	ck_assert_ptr_eq(stub_rt.loop, &stub_loop);
}
END_TEST

START_TEST(test_env_workpath_confines_names)
{
	char want[2 * PATH_MAX];
	struct stub_ret ret;
	TVMValue v;

	ck_assert_int_eq(
	    env_call_str("tvm.rpc.server.workpath", "m.so", &ret), 0);
	ck_assert_int_eq(ret.calls, 1);
	ck_assert_int_eq(ret.code, kTVMStr);
	(void)snprintf(want, sizeof(want), "%s/m.so", wdir);
	ck_assert_str_eq(ret.str, want);

	/* Refused through the C API's error mechanism, with a type the
	 * client shows ("PermissionError: ...") and no return value. */
	ck_assert_int_ne(
	    env_call_str("tvm.rpc.server.workpath", "../../etc/passwd", &ret),
	    0);
	ck_assert_int_eq(ret.calls, 0);
	ck_assert_msg(
	    strncmp(stub_error,
		"PermissionError: tvm.rpc.server.workpath: ", 41) == 0,
	    "%s", stub_error);
	ck_assert_ptr_nonnull(strstr(stub_error, "'..'"));
	ck_assert_int_ne(
	    env_call_str("tvm.rpc.server.workpath", "/etc/passwd", &ret), 0);
	ck_assert_ptr_nonnull(strstr(stub_error, "absolute"));

	v.v_int64 = 3;
	ck_assert_int_ne(
	    env_call("tvm.rpc.server.workpath", v, kDLInt, &ret), 0);
	ck_assert_msg(
	    strncmp(stub_error, "TypeError: ", 11) == 0, "%s", stub_error);
}
END_TEST

START_TEST(test_env_load_module_passes_one_reference)
{
	char want[2 * PATH_MAX];
	struct stub_ret ret;

	ck_assert_int_eq(
	    env_call_str("tvm.rpc.server.load_module", "k.so", &ret), 0);
	(void)snprintf(want, sizeof(want), "%s/k.so", wdir);
	ck_assert_str_eq(stub_loadso_path, want);
	ck_assert_int_eq(ret.calls, 1);
	ck_assert_int_eq(ret.code, kTVMModuleHandle);
	ck_assert_ptr_eq(ret.handle, &stub_module);
	/* SetReturn added the client's reference; ours is dropped. */
	ck_assert_int_eq(stub_module_frees, 1);

	/* The runtime's error reaches the client intact. */
	stub_loadso_fails = true;
	ck_assert_int_ne(
	    env_call_str("tvm.rpc.server.load_module", "k.so", &ret), 0);
	ck_assert_int_eq(ret.calls, 0);
	ck_assert_str_eq(stub_error,
	    "Error: Failed to load dynamic shared library x.so: cannot open "
	    "shared object file");
	ck_assert_int_eq(stub_module_frees, 1);

	/* A traversal never reaches loadfile_so. */
	stub_loadso_path[0] = '\0';
	ck_assert_int_ne(
	    env_call_str("tvm.rpc.server.load_module", "../k.so", &ret), 0);
	ck_assert_str_eq(stub_loadso_path, "");
	ck_assert_ptr_nonnull(strstr(stub_error, "PermissionError"));
}
END_TEST

START_TEST(test_env_listdir_format)
{
	char p[2 * PATH_MAX], want_a[2 * PATH_MAX], want_b[2 * PATH_MAX];
	struct stub_ret ret;
	int a, b;

	ck_assert_int_eq(env_call_str("tvm.rpc.server.listdir", ".", &ret), 0);
	ck_assert_int_eq(ret.code, kTVMStr);
	ck_assert_str_eq(ret.str, ""); /* empty dir */

	(void)snprintf(p, sizeof(p), "%s/a.so", wdir);
	write_file(p, "");
	(void)snprintf(p, sizeof(p), "%s/b", wdir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	ck_assert_int_eq(env_call_str("tvm.rpc.server.listdir", ".", &ret), 0);
	/* Full paths, each followed by ',', in readdir order (spec §5). */
	a = snprintf(want_a, sizeof(want_a), "%s/./a.so,", wdir);
	b = snprintf(want_b, sizeof(want_b), "%s/./b,", wdir);
	ck_assert_int_eq(strlen(ret.str), a + b);
	ck_assert_ptr_nonnull(strstr(ret.str, want_a));
	ck_assert_ptr_nonnull(strstr(ret.str, want_b));

	ck_assert_int_eq(env_call_str("tvm.rpc.server.listdir", "b", &ret), 0);
	ck_assert_str_eq(ret.str, "");
	ck_assert_int_ne(env_call_str("tvm.rpc.server.listdir", "..", &ret), 0);
	ck_assert_int_ne(
	    env_call_str("tvm.rpc.server.listdir", "missing", &ret), 0);
	ck_assert_msg(
	    strncmp(stub_error, "ValueError: ", 12) == 0, "%s", stub_error);
}
END_TEST

/* ---- reaping --------------------------------------------------------- */

static struct supervisor_config cfg;

static void
reap_setup(void)
{
	tmp_setup();
	cfg.runtime_path = "/nonexistent-npufarm/libtvm_runtime.so";
	cfg.workdir = tmp;
	cfg.stderr_fd = -1;
}

/* Fork a child that leads its own group and ends as @how says. */
enum child_end { END_EXIT0, END_EXIT3, END_SEGV, END_PAUSE };

static pid_t
fork_child(enum child_end how)
{
	/* Forked as the supervisor forks: check's SIGTERM handler, run in
	 * the child, would signal the test's own group. */
	pid_t pid = child_setup_fork(false);

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		switch (how) {
		case END_EXIT0:
			_exit(0);
		case END_EXIT3:
			_exit(3);
		case END_SEGV:
			/* At SIG_DFL: no sanitizer turns it into an exit. */
			(void)raise(SIGSEGV);
			_exit(99);
		case END_PAUSE:
			for (;;)
				(void)pause();
		}
		_exit(98);
	}
	return pid;
}

static void
reap_expect(pid_t pid, enum npufarm_outcome outcome, int status, int sig,
    const char *msg)
{
	struct supervisor_end end;
	struct npufarm_err e = {0};

	ck_assert_int_eq(supervisor_session_reap(&cfg, pid, true, &end, &e), 1);
	ck_assert_int_eq(end.outcome, outcome);
	ck_assert_int_eq(end.status, status);
	ck_assert_int_eq(end.signal, sig);
	ck_assert_int_eq(end.cleanup, 0);
	ck_assert_str_eq(end.msg, msg);
}

START_TEST(test_reap_classifies)
{
	pid_t pid;

	reap_expect(fork_child(END_EXIT0), NPUFARM_OUTCOME_OK, 0, 0, "");
	reap_expect(fork_child(END_EXIT3), NPUFARM_OUTCOME_CRASH, 3, 0,
	    "exited with status 3");
	reap_expect(fork_child(END_SEGV), NPUFARM_OUTCOME_CRASH, -1, SIGSEGV,
	    "SIGSEGV (signal 11)");
	pid = fork_child(END_PAUSE);
	ck_assert_int_eq(
	    supervisor_session_kill(pid, SUPERVISOR_KILL_FORCE), 0);
	reap_expect(
	    pid, NPUFARM_OUTCOME_CRASH, -1, SIGKILL, "SIGKILL (signal 9)");
}
END_TEST

START_TEST(test_reap_without_wait_does_not_block)
{
	struct supervisor_end end = {.status = 1234};
	pid_t pid = fork_child(END_PAUSE);

	ck_assert_int_eq(
	    supervisor_session_reap(&cfg, pid, false, &end, NULL), 0);
	ck_assert_int_eq(end.status, 1234); /* untouched */
	ck_assert_int_eq(supervisor_session_kill(pid, SUPERVISOR_KILL_TERM), 0);
	while (supervisor_session_reap(&cfg, pid, false, &end, NULL) == 0)
		sleep_ms(1);
	ck_assert_str_eq(end.msg, "SIGTERM (signal 15)");
	/* Reaped: no longer ours. */
	ck_assert_int_eq(
	    supervisor_session_reap(&cfg, pid, false, &end, NULL), -ECHILD);
	ck_assert_int_eq(
	    supervisor_session_reap(&cfg, 1, false, &end, NULL), -EINVAL);
}
END_TEST

START_TEST(test_reap_removes_the_work_dir)
{
	char dir[PATH_MAX];
	pid_t pid = fork_child(END_SEGV);

	ck_assert_int_eq(
	    supervisor_session_workdir(&cfg, pid, dir, sizeof(dir)), 0);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	litter(dir);
	reap_expect(
	    pid, NPUFARM_OUTCOME_CRASH, -1, SIGSEGV, "SIGSEGV (signal 11)");
	ck_assert(!exists(dir));
	assert_outside_intact();
}
END_TEST

/*
 * A child that forks a grandchild ignoring SIGTERM, in its group; the
 * grandchild's pid comes back once its ignore is in place.  With
 * @child_exits the child then exits 0 at once, else it waits to be killed.
 */
static pid_t
fork_family(bool child_exits, pid_t *ret_grandchild)
{
	int p[2];
	pid_t pid, g;

	ck_assert_int_eq(pipe(p), 0);
	pid = child_setup_fork(false);
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		g = fork();
		if (g == 0) {
			(void)signal(SIGTERM, SIG_IGN);
			g = getpid();
			(void)!write(p[1], &g, sizeof(g));
			for (;;)
				(void)pause();
		}
		if (child_exits)
			_exit(0);
		for (;;)
			(void)pause();
	}
	(void)close(p[1]);
	ck_assert_int_eq(read(p[0], &g, sizeof(g)), (ssize_t)sizeof(g));
	(void)close(p[0]);
	*ret_grandchild = g;
	return pid;
}

/* The orphaned grandchild came back to us (subreaper): how did it end? */
static int
grandchild_signal(pid_t g)
{
	int status;

	ck_assert_int_eq(waitpid(g, &status, 0), g);
	ck_assert(WIFSIGNALED(status));
	return WTERMSIG(status);
}

START_TEST(test_kill_reaches_the_whole_group)
{
	struct supervisor_end end;
	siginfo_t si;
	pid_t pid, g;
	int64_t t0;

	pid = fork_family(false, &g);
	/* Step 1: SIGTERM ends the child, not the grandchild. */
	ck_assert_int_eq(supervisor_session_kill(pid, SUPERVISOR_KILL_TERM), 0);
	t0 = tvmrpc_now_ms();
	for (;;) {
		memset(&si, 0, sizeof(si));
		ck_assert_int_eq(
		    waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT),
		    0);
		if (si.si_pid != 0)
			break;
		ck_assert_int_lt(tvmrpc_now_ms() - t0, 5000);
		sleep_ms(1);
	}
	sleep_ms(SUPERVISOR_KILL_GRACE_MS / 4);
	ck_assert_int_eq(waitpid(g, NULL, WNOHANG), 0); /* still running */
	/* Step 2, at the end of the grace: SIGKILL the group. */
	ck_assert_int_eq(
	    supervisor_session_kill(pid, SUPERVISOR_KILL_FORCE), 0);
	ck_assert_int_eq(grandchild_signal(g), SIGKILL);
	ck_assert_int_eq(
	    supervisor_session_reap(&cfg, pid, true, &end, NULL), 1);
	ck_assert_str_eq(end.msg, "SIGTERM (signal 15)");
	ck_assert_int_eq(kill(g, 0), -1);
}
END_TEST

START_TEST(test_reap_kills_what_the_session_left)
{
	pid_t pid, g;

	/* The child ends cleanly but leaves a process in its group. */
	pid = fork_family(true, &g);
	reap_expect(pid, NPUFARM_OUTCOME_OK, 0, 0, "");
	ck_assert_int_eq(grandchild_signal(g), SIGKILL);
}
END_TEST

START_TEST(test_kill_refuses_pids_that_are_not_children)
{
	ck_assert_int_eq(
	    supervisor_session_kill(0, SUPERVISOR_KILL_FORCE), -EINVAL);
	ck_assert_int_eq(
	    supervisor_session_kill(1, SUPERVISOR_KILL_FORCE), -EINVAL);
	ck_assert_int_eq(
	    supervisor_session_kill(-7, SUPERVISOR_KILL_TERM), -EINVAL);
}
END_TEST

/* ---- sessions without a runtime -------------------------------------- */

START_TEST(test_session_runtime_that_does_not_load)
{
	struct supervisor_end end;
	char log[2 * PATH_MAX], dir[PATH_MAX];
	pid_t pid;
	int fd, logfd;
	char c;

	(void)snprintf(log, sizeof(log), "%s/child.log", tmp);
	logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(logfd, 0);
	cfg.stderr_fd = logfd;
	ck_assert_int_eq(supervisor_session_start(&cfg, &fd, &pid, NULL), 0);
	(void)close(logfd);
	ck_assert_int_ne(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_eq(getpgid(pid), pid);
	ck_assert_int_eq(
	    supervisor_session_reap(&cfg, pid, true, &end, NULL), 1);
	ck_assert_int_eq(end.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_str_eq(end.msg, "exited with status 70");
	ck_assert_ptr_nonnull(strstr(read_file(log), "dlopen"));
	ck_assert_int_eq(
	    supervisor_session_workdir(&cfg, pid, dir, sizeof(dir)), 0);
	ck_assert(!exists(dir));
	/* The child's end is closed: EOF. */
	ck_assert_int_eq(read(fd, &c, 1), 0);
	(void)close(fd);
}
END_TEST

START_TEST(test_session_start_refuses_a_bad_workdir)
{
	struct npufarm_err e = {0};
	char file[2 * PATH_MAX];
	pid_t pid = 0;
	int fd = -1;

	(void)snprintf(file, sizeof(file), "%s/file", tmp);
	write_file(file, "");
	cfg.workdir = file;
	ck_assert_int_eq(
	    supervisor_session_start(&cfg, &fd, &pid, &e), -ENOTDIR);
	ck_assert_ptr_nonnull(strstr(e.msg, "not a directory"));
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(pid, 0);
	cfg.workdir = NULL;
	ck_assert_int_eq(
	    supervisor_session_start(&cfg, &fd, &pid, NULL), -EINVAL);
}
END_TEST

/* ---- hooks ------------------------------------------------------------ */

START_TEST(test_hook_pass_and_fail)
{
	struct supervisor_end end;

	ck_assert_int_eq(
	    supervisor_run_hook("exit 0", 5000, -1, &end, NULL), 1);
	ck_assert_int_eq(end.outcome, NPUFARM_OUTCOME_OK);
	ck_assert_int_eq(end.status, 0);
	ck_assert_int_eq(
	    supervisor_run_hook("exit 4", 5000, -1, &end, NULL), 0);
	ck_assert_int_eq(end.outcome, NPUFARM_OUTCOME_CRASH);
	ck_assert_int_eq(end.status, 4);
	ck_assert_str_eq(end.msg, "exited with status 4");
	ck_assert_int_eq(
	    supervisor_run_hook("kill -SEGV $$", 5000, -1, &end, NULL), 0);
	ck_assert_str_eq(end.msg, "SIGSEGV (signal 11)");
	ck_assert_int_eq(supervisor_run_hook(
			     "/nonexistent-npufarm-hook", 5000, -1, &end, NULL),
	    0);
	ck_assert_int_eq(end.status, 127);
}
END_TEST

START_TEST(test_hook_timeout)
{
	struct supervisor_end end;
	int64_t t0 = tvmrpc_now_ms(), dt;

	ck_assert_int_eq(
	    supervisor_run_hook("sleep 10", 200, -1, &end, NULL), 0);
	dt = tvmrpc_now_ms() - t0;
	ck_assert_int_eq(end.outcome, NPUFARM_OUTCOME_TIMEOUT);
	ck_assert_str_eq(end.msg, "timed out after 200 ms");
	ck_assert_int_eq(end.signal, SIGTERM);
	/* The hook's deadline is a monotonic one, counted from after t0 and
	 * in ns: whole ms read here on both sides cannot make it short. */
	ck_assert_int_ge(dt, 200);
	ck_assert_int_lt(dt, 200 + SUPERVISOR_KILL_GRACE_MS);

	/* Deaf to SIGTERM: SIGKILL once the grace is over. */
	t0 = tvmrpc_now_ms();
	ck_assert_int_eq(supervisor_run_hook("trap '' TERM; sleep 10; true",
			     200, -1, &end, NULL),
	    0);
	dt = tvmrpc_now_ms() - t0;
	ck_assert_int_eq(end.outcome, NPUFARM_OUTCOME_TIMEOUT);
	ck_assert_int_eq(end.signal, SIGKILL);
	ck_assert_int_ge(dt, 200 + SUPERVISOR_KILL_GRACE_MS);
	ck_assert_int_lt(dt, 3000);
}
END_TEST

START_TEST(test_hook_leaves_nothing_behind)
{
	struct supervisor_end end;
	char cmd[3 * PATH_MAX], pidfile[2 * PATH_MAX];
	pid_t bg;

	(void)snprintf(pidfile, sizeof(pidfile), "%s/bg.pid", tmp);
	(void)snprintf(
	    cmd, sizeof(cmd), "sleep 100 & echo $! > %s; exit 0", pidfile);
	ck_assert_int_eq(supervisor_run_hook(cmd, 5000, -1, &end, NULL), 1);
	bg = (pid_t)atol(read_file(pidfile));
	ck_assert_int_gt(bg, 1);
	ck_assert_int_eq(grandchild_signal(bg), SIGKILL);
}
END_TEST

START_TEST(test_hook_fork_hygiene)
{
	struct sigaction ign = {.sa_handler = SIG_IGN};
	char log[2 * PATH_MAX], *out;
	struct supervisor_end end;
	sigset_t set;
	int logfd;

	/* What an agent might hold: blocked and ignored signals, a fd. */
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGUSR1);
	ck_assert_int_eq(sigprocmask(SIG_BLOCK, &set, NULL), 0);
	ck_assert_int_eq(sigaction(SIGTERM, &ign, NULL), 0);
	ck_assert_int_eq(sigaction(SIGPIPE, &ign, NULL), 0);
	ck_assert_int_eq(dup2(STDIN_FILENO, 42), 42);
	(void)snprintf(log, sizeof(log), "%s/hook.log", tmp);
	logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(logfd, 0);
	ck_assert_int_eq(
	    supervisor_run_hook("grep -E '^Sig(Blk|Ign)' /proc/self/status; "
				"test -e /proc/self/fd/42 && echo LEAK; "
				"echo to-stdout",
		5000, logfd, &end, NULL),
	    1);
	(void)close(logfd);
	out = read_file(log);
	ck_assert_ptr_nonnull(strstr(out, "SigBlk:\t0000000000000000\n"));
	ck_assert_ptr_nonnull(strstr(out, "SigIgn:\t0000000000000000\n"));
	ck_assert_ptr_null(strstr(out, "LEAK"));
	ck_assert_ptr_nonnull(strstr(out, "to-stdout")); /* stdout: the log */
}
END_TEST

/* ---- sessions on the fake runtime (tests/fake_tvm) ------------------- */

#define T_MS 5000

static struct tvmrpc *sess;
static pid_t sess_pid;
static char sess_dir[2 * PATH_MAX]; /* canonical session work dir */

/* The fake libtvm_runtime.so: $NPUFARM_FAKE_TVM, or beside this test. */
static const char *
fake_runtime(void)
{
	static char path[2 * PATH_MAX];
	const char *env = getenv("NPUFARM_FAKE_TVM");
	char exe[PATH_MAX];
	ssize_t n;

	if (env != NULL && env[0] != '\0')
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	(void)snprintf(
	    path, sizeof(path), "%s/fake_tvm/libtvm_runtime.so", exe);
	ck_assert_msg(access(path, R_OK) == 0,
	    "no fake runtime at %s; build fake_tvm_runtime or set "
	    "NPUFARM_FAKE_TVM",
	    path);
	return path;
}

static void
session_setup(void)
{
	char canon[PATH_MAX];
	int fd;

	reap_setup();
	cfg.runtime_path = fake_runtime();
	ck_assert_int_eq(
	    supervisor_session_start(&cfg, &fd, &sess_pid, NULL), 0);
	ck_assert_int_eq(tvmrpc_new_fd(fd, T_MS, &sess), 0);
	ck_assert_ptr_nonnull(realpath(tmp, canon));
	(void)snprintf(sess_dir, sizeof(sess_dir), "%s/session-%ld", canon,
	    (long)sess_pid);
}

static void
session_teardown(void)
{
	struct supervisor_end end;

	sess = tvmrpc_free(sess);
	if (supervisor_session_reap(&cfg, sess_pid, false, &end, NULL) == 0) {
		(void)supervisor_session_kill(sess_pid, SUPERVISOR_KILL_FORCE);
		(void)supervisor_session_reap(&cfg, sess_pid, true, &end, NULL);
	}
	tmp_teardown();
}

/* Send @m and receive the reply. */
static struct tvmrpc_packet
sess_call(const struct tvmrpc_msg *m)
{
	struct tvmrpc_packet p;

	ck_assert_int_eq(tvmrpc_send_msg(sess, m), 0);
	ck_assert_int_eq(tvmrpc_recv_packet(sess, T_MS, &p), 0);
	return p;
}

static void
sess_init(void)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;

	/* EP-01 is answered with EP-02, byte for byte. */
	tvmrpc_msg_init_server(&m);
	p = sess_call(&m);
	ck_assert_int_eq(p.len, 12);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	ck_assert_mem_eq(p.body, "\1\0\0\0\4\0\0\0", 8);
}

/* The remote handle of global function @name. */
static uint64_t
sess_func(const char *name)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;

	ck_assert_int_eq(tvmrpc_msg_get_global_func(&m, name), 0);
	p = sess_call(&m);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	ck_assert_int_eq(p.body_len, 16);
	ck_assert_int_eq(frame_get_le32(p.body), 1);
	ck_assert_int_eq(frame_get_le32(p.body + 4), TVMRPC_THANDLE);
	return frame_get_le64(p.body + 8);
}

/* kCallFunc(@fn, str @s [, bytes @bytes]). */
static void
msg_call_str(
    struct tvmrpc_msg *m, uint64_t fn, const char *s, const char *bytes)
{
	unsigned char *p = m->b + TVMRPC_HEADER_SIZE;
	size_t slen = strlen(s), blen = bytes != NULL ? strlen(bytes) : 0;

	ck_assert_int_lt(slen + blen + 64, sizeof(m->b));
	frame_put_le64(p, fn);
	frame_put_le32(p + 8, bytes != NULL ? 2 : 1);
	frame_put_le32(p + 12, TVMRPC_TSTR);
	p += 16;
	if (bytes != NULL) {
		frame_put_le32(p, 12); /* kTVMBytes */
		p += 4;
	}
	frame_put_le64(p, slen);
	memcpy(p + 8, s, slen);
	p += 8 + slen;
	if (bytes != NULL) {
		frame_put_le64(p, blen);
		memcpy(p + 8, bytes, blen);
		p += 8 + blen;
	}
	m->len = (size_t)(p - m->b);
	tvmrpc_put_header(m->b, m->len - 8, TVMRPC_CALL_FUNC);
}

/*
 * The string a kException carries, or a kReturn of a str: as for every
 * return, [int type code, value] (EP-06), so [int 11, str].
 */
static const char *
packet_text(const struct tvmrpc_packet *p)
{
	static char text[4096];
	const char *s;
	size_t len;

	if (p->code == TVMRPC_RETURN) {
		ck_assert_int_ge(p->body_len, 28);
		ck_assert_int_eq(frame_get_le32(p->body), 2);
		ck_assert_int_eq(frame_get_le32(p->body + 4), TVMRPC_TINT);
		ck_assert_int_eq(frame_get_le32(p->body + 8), TVMRPC_TSTR);
		ck_assert_int_eq(frame_get_le64(p->body + 12), TVMRPC_TSTR);
		len = (size_t)frame_get_le64(p->body + 20);
		ck_assert_int_eq(len, p->body_len - 28);
		s = (const char *)p->body + 28;
	} else {
		ck_assert_int_eq(tvmrpc_packet_string(p, &s, &len), 0);
	}
	ck_assert_int_lt(len, sizeof(text));
	memcpy(text, s, len);
	text[len] = '\0';
	return text;
}

static void
sess_expect_end(const char *msg)
{
	struct supervisor_end end;

	ck_assert_int_eq(
	    supervisor_session_reap(&cfg, sess_pid, true, &end, NULL), 1);
	ck_assert_str_eq(end.msg, msg);
	ck_assert_int_eq(end.outcome,
	    msg[0] == '\0' ? NPUFARM_OUTCOME_OK : NPUFARM_OUTCOME_CRASH);
	ck_assert_int_eq(end.cleanup, 0);
	ck_assert(!exists(sess_dir));
}

START_TEST(test_session_serves_and_shuts_down)
{
	char want[3 * PATH_MAX], evil[2 * PATH_MAX];
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	int64_t v;

	sess_init();
	tvmrpc_msg_call_func(&m, sess_func("rpc.test.addone"), 41);
	p = sess_call(&m);
	ck_assert_int_eq(tvmrpc_packet_return_int(&p, &v), 0);
	ck_assert_int_eq(v, 42);
	ck_assert(exists(sess_dir));

	/* The upload goes through our workpath: inside only. */
	msg_call_str(&m, sess_func("tvm.rpc.server.upload"), "k.so", "ELF");
	p = sess_call(&m);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	(void)snprintf(want, sizeof(want), "%s/k.so", sess_dir);
	ck_assert_str_eq(read_file(want), "ELF");
	msg_call_str(&m, sess_func("tvm.rpc.server.upload"), "../evil", "x");
	p = sess_call(&m);
	ck_assert_int_eq(p.code, TVMRPC_EXCEPTION);
	ck_assert_ptr_nonnull(strstr(packet_text(&p),
	    "PermissionError: tvm.rpc.server.workpath: '../evil' has a '..'"));
	(void)snprintf(evil, sizeof(evil), "%s/evil", tmp);
	ck_assert(!exists(evil));

	msg_call_str(&m, sess_func("tvm.rpc.server.workpath"), "k.so", NULL);
	p = sess_call(&m);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	ck_assert_str_eq(packet_text(&p), want);
	msg_call_str(&m, sess_func("tvm.rpc.server.listdir"), "", NULL);
	p = sess_call(&m);
	(void)snprintf(want, sizeof(want), "%s/k.so,", sess_dir);
	ck_assert_str_eq(packet_text(&p), want);

	/* kShutdown: the loop returns 0, the child exits 0. */
	tvmrpc_msg_shutdown(&m);
	ck_assert_int_eq(tvmrpc_send_msg(sess, &m), 0);
	ck_assert_int_eq(tvmrpc_wait_eof(sess, T_MS, NULL), 0);
	sess_expect_end("");
}
END_TEST

START_TEST(test_session_crash_is_named)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;

	sess_init();
	tvmrpc_msg_call_func(&m, sess_func("npufarm.test.crash"), 0);
	ck_assert_int_eq(tvmrpc_send_msg(sess, &m), 0);
	/* No reply: the child's end closes as it dies. */
	ck_assert_int_eq(tvmrpc_recv_packet(sess, T_MS, &p), TVMRPC_E_EOF);
	sess_expect_end("SIGSEGV (signal 11)");
}
END_TEST

START_TEST(test_session_exception_keeps_serving)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	int64_t v;

	sess_init();
	msg_call_str(
	    &m, sess_func("npufarm.test.raise"), "ValueError: no", NULL);
	p = sess_call(&m);
	ck_assert_int_eq(p.code, TVMRPC_EXCEPTION);
	ck_assert_ptr_nonnull(strstr(packet_text(&p), "ValueError: no"));
	tvmrpc_msg_call_func(&m, sess_func("rpc.test.addone"), 1);
	p = sess_call(&m);
	ck_assert_int_eq(tvmrpc_packet_return_int(&p, &v), 0);
	ck_assert_int_eq(v, 2);
	/* A client that just closes at a packet boundary: a clean end. */
	sess = tvmrpc_free(sess);
	sess_expect_end("");
}
END_TEST

START_TEST(test_session_hang_is_killed)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;

	sess_init();
	tvmrpc_msg_call_func(&m, sess_func("npufarm.test.hang"), 0);
	ck_assert_int_eq(tvmrpc_send_msg(sess, &m), 0);
	ck_assert_int_eq(tvmrpc_recv_packet(sess, 100, &p), -ETIMEDOUT);
	ck_assert_int_eq(
	    supervisor_session_kill(sess_pid, SUPERVISOR_KILL_TERM), 0);
	sess_expect_end("SIGTERM (signal 15)");
}
END_TEST

START_TEST(test_session_exit_status)
{
	struct tvmrpc_msg m;

	sess_init();
	tvmrpc_msg_call_func(&m, sess_func("npufarm.test.exit"), 3);
	ck_assert_int_eq(tvmrpc_send_msg(sess, &m), 0);
	sess_expect_end("exited with status 3");
}
END_TEST

/* ---- the same, with the tvm-ffi flavour of the fake (TVM v0.21+) ----- */

/* A test file from the environment meson sets up. */
static const char *
test_file(const char *var)
{
	const char *path = getenv(var);

	ck_assert_msg(path != NULL && path[0] != '\0', "%s is not set", var);
	return path;
}

static void
ffi_session_setup(void)
{
	char canon[PATH_MAX];
	int fd;

	reap_setup();
	cfg.runtime_path = test_file("NPUFARM_FAKE_TVM_FFI");
	cfg.dialect = TVM_RPC_DIALECT_FFI;
	ck_assert_int_eq(
	    supervisor_session_start(&cfg, &fd, &sess_pid, NULL), 0);
	ck_assert_int_eq(tvmrpc_new_fd(fd, T_MS, &sess), 0);
	ck_assert_ptr_nonnull(realpath(tmp, canon));
	(void)snprintf(sess_dir, sizeof(sess_dir), "%s/session-%ld", canon,
	    (long)sess_pid);
}

static void
ffi_session_teardown(void)
{
	session_teardown();
	cfg.dialect = TVM_RPC_DIALECT_UNKNOWN;
}

/* RPCCode kFreeHandle (spec §5.2). */
#define FFI_FREE_HANDLE 10

/* A packet being built, of any size. */
struct ffi_pkt {
	unsigned char *b;
	size_t len;
	size_t cap;
};

static void
pkt_mem(struct ffi_pkt *k, const void *p, size_t n)
{
	if (k->len + n > k->cap) {
		k->cap = 2 * (k->len + n) + 64;
		k->b = realloc(k->b, k->cap);
		ck_assert_ptr_nonnull(k->b);
	}
	memcpy(k->b + k->len, p, n);
	k->len += n;
}

static void
pkt_u32(struct ffi_pkt *k, uint32_t v)
{
	unsigned char b[4];

	frame_put_le32(b, v);
	pkt_mem(k, b, 4);
}

static void
pkt_u64(struct ffi_pkt *k, uint64_t v)
{
	unsigned char b[8];

	frame_put_le64(b, v);
	pkt_mem(k, b, 8);
}

/* Start a packet of @code (N is filled in by pkt_call()). */
static void
pkt_begin(struct ffi_pkt *k, int32_t code)
{
	k->len = 0;
	pkt_u64(k, 0);
	pkt_u32(k, (uint32_t)code);
}

/* A str as the v0.26 client sends it: RawStr (8), u64 len, bytes. */
static void
pkt_str(struct ffi_pkt *k, const char *s)
{
	pkt_u32(k, 8);
	pkt_u64(k, strlen(s));
	pkt_mem(k, s, strlen(s));
}

/* Send @k, receive the reply; frees the packet's buffer. */
static struct tvmrpc_packet
pkt_call(struct ffi_pkt *k)
{
	struct tvmrpc_packet p;

	frame_put_le64(k->b, k->len - 8);
	ck_assert_int_eq(tvmrpc_send(sess, k->b, k->len), 0);
	free(k->b);
	memset(k, 0, sizeof(*k));
	ck_assert_int_eq(tvmrpc_recv_packet(sess, T_MS, &p), 0);
	return p;
}

/* Check @p's bytes after the u64 N against @hex. */
static void
expect_body(const struct tvmrpc_packet *p, const char *hex)
{
	unsigned char want[256];
	size_t n = strlen(hex) / 2, i;

	ck_assert_int_lt(n, sizeof(want));
	for (i = 0; i < n; i++)
		ck_assert_int_eq(sscanf(hex + 2 * i, "%2hhx", &want[i]), 1);
	ck_assert_int_eq(4 + p->body_len, n);
	ck_assert_int_eq(p->code, (int32_t)frame_get_le32(want));
	ck_assert_mem_eq(p->body, want + 4, n - 4);
}

/* FFI-03 (= EP-01) is answered with FFI-04: void is i32 1 | i32 0. */
static void
ffi_init(void)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;

	tvmrpc_msg_init_server(&m);
	p = sess_call(&m);
	ck_assert_int_eq(p.len, 12);
	expect_body(&p, "040000000100000000000000");
}

/* FFI-05 -> FFI-06: the handle comes as an OpaquePtr (4). */
static uint64_t
ffi_func(const char *name)
{
	struct ffi_pkt k = {0};
	struct tvmrpc_packet p;

	pkt_begin(&k, TVMRPC_GET_GLOBAL_FUNC);
	pkt_u32(&k, 1);
	pkt_str(&k, name);
	p = pkt_call(&k);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	ck_assert_int_eq(p.body_len, 16);
	ck_assert_int_eq(frame_get_le32(p.body), 1);
	ck_assert_int_eq(frame_get_le32(p.body + 4), 4);
	ck_assert_uint_ne(frame_get_le64(p.body + 8), 0);
	return frame_get_le64(p.body + 8);
}

/* kCallFunc(@fn, str @s [, @blen bytes @bytes as 12/66 + inner 66]). */
static struct tvmrpc_packet
ffi_call_str(uint64_t fn, const char *s, const void *bytes, size_t blen)
{
	struct ffi_pkt k = {0};

	pkt_begin(&k, TVMRPC_CALL_FUNC);
	pkt_u64(&k, fn);
	pkt_u32(&k, bytes != NULL ? 2 : 1);
	pkt_str(&k, s);
	if (bytes != NULL) {
		pkt_u32(&k, blen < 8 ? 12 : 66); /* FFI-07 */
		pkt_u32(&k, 66);
		pkt_u64(&k, blen);
		pkt_mem(&k, bytes, blen);
	}
	return pkt_call(&k);
}

/* @len bytes at @p as a string, in a buffer the next call reuses. */
static const char *
ffi_text(const unsigned char *p, size_t len)
{
	static char text[4096];

	ck_assert_int_lt(len, sizeof(text));
	memcpy(text, p, len);
	text[len] = '\0';
	return text;
}

/* The str of a kReturn [Int 11 or 65, RawStr] (FFI-15, FFI-16). */
static const char *
ffi_return_str(const struct tvmrpc_packet *p)
{
	size_t len;

	ck_assert_int_eq(p->code, TVMRPC_RETURN);
	ck_assert_int_ge(p->body_len, 28);
	ck_assert_int_eq(frame_get_le32(p->body), 2);
	ck_assert_int_eq(frame_get_le32(p->body + 4), 1);
	len = (size_t)frame_get_le64(p->body + 20);
	ck_assert_int_eq(frame_get_le64(p->body + 8), len < 8 ? 11 : 65);
	ck_assert_int_eq(frame_get_le32(p->body + 16), 8);
	ck_assert_int_eq(len, p->body_len - 28);
	return ffi_text(p->body + 28, len);
}

/* The text of a kException in the tvm-ffi form: 1 | 8 | str (FFI-19). */
static const char *
ffi_exception_text(const struct tvmrpc_packet *p)
{
	size_t len;

	ck_assert_int_eq(p->code, TVMRPC_EXCEPTION);
	ck_assert_int_ge(p->body_len, 16);
	ck_assert_int_eq(frame_get_le32(p->body), 1);
	ck_assert_int_eq(frame_get_le32(p->body + 4), 8);
	len = (size_t)frame_get_le64(p->body + 8);
	ck_assert_int_eq(len, p->body_len - 16);
	return ffi_text(p->body + 16, len);
}

/* kCallFunc(@fn, Int @v) (FFI-13); returns the reply. */
static struct tvmrpc_packet
ffi_call_int(uint64_t fn, int64_t v)
{
	struct ffi_pkt k = {0};

	pkt_begin(&k, TVMRPC_CALL_FUNC);
	pkt_u64(&k, fn);
	pkt_u32(&k, 1);
	pkt_u32(&k, 1);
	pkt_u64(&k, (uint64_t)v);
	return pkt_call(&k);
}

/* The Int of a kReturn [Int 1, Int v] (FFI-14). */
static int64_t
ffi_return_int(const struct tvmrpc_packet *p)
{
	ck_assert_int_eq(p->code, TVMRPC_RETURN);
	ck_assert_int_eq(p->body_len, 28);
	ck_assert_int_eq(frame_get_le32(p->body), 2);
	ck_assert_int_eq(frame_get_le32(p->body + 4), 1);
	ck_assert_int_eq(frame_get_le64(p->body + 8), 1);
	ck_assert_int_eq(frame_get_le32(p->body + 16), 1);
	return (int64_t)frame_get_le64(p->body + 20);
}

/* The handle of a kReturn [Int 73 or 68, OpaquePtr] (FFI-10, FFI-12). */
static uint64_t
ffi_return_handle(const struct tvmrpc_packet *p, uint64_t type_index)
{
	if (p->code == TVMRPC_EXCEPTION)
		ck_abort_msg("exception: %s", ffi_exception_text(p));
	ck_assert_int_eq(p->code, TVMRPC_RETURN);
	ck_assert_int_eq(p->body_len, 28);
	ck_assert_int_eq(frame_get_le64(p->body + 8), type_index);
	ck_assert_int_eq(frame_get_le32(p->body + 16), 4);
	return frame_get_le64(p->body + 20);
}

/* All of @path, malloc()ed, its size in *ret_len. */
static char *
slurp(const char *path, size_t *ret_len)
{
	struct stat st;
	char *buf;
	int fd;

	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	(void)close(fd);
	*ret_len = (size_t)st.st_size;
	return buf;
}

START_TEST(test_ffi_session_serves_and_shuts_down)
{
	char want[3 * PATH_MAX], evil[2 * PATH_MAX], *so;
	const char *text;
	struct ffi_pkt k = {0};
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	uint64_t h, mod, fn;
	size_t len;

	ffi_init();
	/* FFI-13 -> FFI-14, byte for byte. */
	p = ffi_call_int(ffi_func("rpc.test.addone"), 41);
	expect_body(&p, "0400000002000000010000000100000000000000"
			"010000002a00000000000000");
	ck_assert_int_eq(ffi_return_int(&p), 42);

	/* upload calls our workpath with a String: a small one (11) for
	 * "k.so", an object (65) for "kernels.so"; both confined.  Its
	 * None is FFI-08. */
	h = ffi_func("tvm.rpc.server.upload");
	p = ffi_call_str(h, "k.so", "ELF", 3);
	expect_body(&p, "0400000002000000010000000000000000000000"
			"00000000");
	(void)snprintf(want, sizeof(want), "%s/k.so", sess_dir);
	ck_assert_str_eq(read_file(want), "ELF");
	p = ffi_call_str(h, "kernels.so", "ELF2", 4);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	(void)snprintf(want, sizeof(want), "%s/kernels.so", sess_dir);
	ck_assert_str_eq(read_file(want), "ELF2");
	/* Refused, in the tvm-ffi form: the message without its kind. */
	p = ffi_call_str(h, "../evil", "x", 1);
	text = ffi_exception_text(&p);
	ck_assert_msg(
	    strncmp(
		text, "tvm.rpc.server.workpath: '../evil' has a '..'", 45) == 0,
	    "%s", text);
	(void)snprintf(evil, sizeof(evil), "%s/evil", tmp);
	ck_assert(!exists(evil));

	/* workpath over RPC gets a RawStr (8); its result is an owned
	 * String (65) on the wire. */
	p = ffi_call_str(
	    ffi_func("tvm.rpc.server.workpath"), "kernels.so", NULL, 0);
	ck_assert_str_eq(ffi_return_str(&p), want);
	p = ffi_call_str(ffi_func("tvm.rpc.server.listdir"), "", NULL, 0);
	ck_assert_ptr_nonnull(strstr(ffi_return_str(&p), want));

	/* load_module is ffi.ModuleLoadFromFile(workpath(name)); the module
	 * calls TVMFFIErrorSetRaisedFromCStr, so it loads only with the
	 * runtime RTLD_GLOBAL.  Module 73 (FFI-10), then FFI-11/12. */
	so = slurp(test_file("NPUFARM_FAKE_MODULE_FFI"), &len);
	p = ffi_call_str(h, "op.so", so, len);
	free(so);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	p = ffi_call_str(
	    ffi_func("tvm.rpc.server.load_module"), "op.so", NULL, 0);
	mod = ffi_return_handle(&p, 73);
	pkt_begin(&k, TVMRPC_CALL_FUNC);
	pkt_u64(&k, ffi_func("tvm.rpc.server.ModuleGetFunction"));
	pkt_u32(&k, 3);
	pkt_u32(&k, 73);
	pkt_u64(&k, mod);
	pkt_str(&k, "npufarm_addone");
	pkt_u32(&k, 2); /* Bool: query imports */
	pkt_u64(&k, 1);
	p = pkt_call(&k);
	fn = ffi_return_handle(&p, 68);
	p = ffi_call_int(fn, 41);
	ck_assert_int_eq(ffi_return_int(&p), 42);
	/* The loader's own error reaches the client. */
	p = ffi_call_str(
	    ffi_func("tvm.rpc.server.load_module"), "missing.so", NULL, 0);
	ck_assert_ptr_nonnull(strstr(
	    ffi_exception_text(&p), "Failed to load dynamic shared library"));

	/* kFreeHandle with one OpaquePtr (FFI-18), answered void. */
	pkt_begin(&k, FFI_FREE_HANDLE);
	pkt_u32(&k, 1);
	pkt_u32(&k, 4);
	pkt_u64(&k, fn);
	p = pkt_call(&k);
	expect_body(&p, "040000000100000000000000");

	/* kShutdown: the loop returns 0, the child exits 0. */
	tvmrpc_msg_shutdown(&m);
	ck_assert_int_eq(tvmrpc_send_msg(sess, &m), 0);
	ck_assert_int_eq(tvmrpc_wait_eof(sess, T_MS, NULL), 0);
	sess_expect_end("");
}
END_TEST

START_TEST(test_ffi_session_exception_keeps_serving)
{
	struct tvmrpc_packet p;

	ffi_init();
	/* The v0.26 server's what(): the message alone (FFI-19). */
	p = ffi_call_str(
	    ffi_func("npufarm.test.raise"), "ValueError: no", NULL, 0);
	expect_body(&p, "0500000001000000080000000200000000000000"
			"6e6f");
	p = ffi_call_int(ffi_func("rpc.test.addone"), 1);
	ck_assert_int_eq(ffi_return_int(&p), 2);
	sess = tvmrpc_free(sess);
	sess_expect_end("");
}
END_TEST

START_TEST(test_ffi_session_crash_is_named)
{
	struct tvmrpc_packet p;
	struct ffi_pkt k = {0};

	ffi_init();
	pkt_begin(&k, TVMRPC_CALL_FUNC);
	pkt_u64(&k, ffi_func("npufarm.test.crash"));
	pkt_u32(&k, 0);
	frame_put_le64(k.b, k.len - 8);
	ck_assert_int_eq(tvmrpc_send(sess, k.b, k.len), 0);
	free(k.b);
	ck_assert_int_eq(tvmrpc_recv_packet(sess, T_MS, &p), TVMRPC_E_EOF);
	sess_expect_end("SIGSEGV (signal 11)");
}
END_TEST

/*
 * The start-up probe tells the two ABIs apart by their symbols, in a
 * child, and refuses what is neither, saying what was missing.
 */
START_TEST(test_runtime_probe)
{
	enum tvm_rpc_dialect d = TVM_RPC_DIALECT_UNKNOWN;
	struct npufarm_err e = {0};

	ck_assert_int_eq(
	    supervisor_runtime_probe(fake_runtime(), -1, &d, &e), 0);
	ck_assert_int_eq(d, TVM_RPC_DIALECT_V014);
	ck_assert_int_eq(supervisor_runtime_probe(
			     test_file("NPUFARM_FAKE_TVM_FFI"), -1, &d, &e),
	    0);
	ck_assert_int_eq(d, TVM_RPC_DIALECT_FFI);

	/* A library that loads but is no runtime (libm). */
	d = TVM_RPC_DIALECT_UNKNOWN;
	ck_assert_int_eq(
	    supervisor_runtime_probe("libm.so.6", -1, &d, &e), -ENOENT);
	ck_assert_int_eq(d, TVM_RPC_DIALECT_UNKNOWN); /* untouched */
	ck_assert_msg(strstr(e.msg, "not a TVM runtime: it exports neither "
				    "TVMFFIFunctionGetGlobal") != NULL &&
			  strstr(e.msg, "nor TVMFuncGetGlobal") != NULL,
	    "%s", e.msg);
	ck_assert_int_eq(
	    supervisor_runtime_probe(
		"/nonexistent-npufarm/libtvm_runtime.so", -1, &d, &e),
	    -ENOENT);
	ck_assert_msg(strncmp(e.msg, "dlopen: ", 8) == 0 &&
			  strstr(e.msg, "/nonexistent-npufarm/") != NULL,
	    "%s", e.msg);
}
END_TEST

int
main(void)
{
	struct rlimit nocore = {0, 0};
	Suite *s = suite_create("supervisor");
	TCase *tc;

	/* Crashes are expected here; keep them from dumping core. */
	(void)setrlimit(RLIMIT_CORE, &nocore);

	tc = tcase_create("workdir");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, test_workdir_path_joins_relative_names);
	tcase_add_test(tc, test_workdir_path_rejects_dotdot);
	tcase_add_test(tc, test_workdir_path_rejects_absolute);
	tcase_add_test(tc, test_workdir_path_rejects_symlink_escapes);
	tcase_add_test(tc, test_workdir_path_too_long);
	tcase_add_test(tc, test_workdir_remove_never_follows_symlinks);
	tcase_add_test(tc, test_workdir_remove_of_a_symlink_removes_the_link);
	tcase_add_test(tc, test_workdir_create_starts_empty);
	suite_add_tcase(s, tc);

	tc = tcase_create("session_env");
	tcase_add_checked_fixture(tc, env_setup, tmp_teardown);
	tcase_add_test(tc, test_env_register_ownership);
	tcase_add_test(tc, test_env_workpath_confines_names);
	tcase_add_test(tc, test_env_load_module_passes_one_reference);
	tcase_add_test(tc, test_env_listdir_format);
	suite_add_tcase(s, tc);

	tc = tcase_create("reap_and_kill");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, reap_setup, tmp_teardown);
	tcase_add_test(tc, test_reap_classifies);
	tcase_add_test(tc, test_reap_without_wait_does_not_block);
	tcase_add_test(tc, test_reap_removes_the_work_dir);
	tcase_add_test(tc, test_kill_reaches_the_whole_group);
	tcase_add_test(tc, test_reap_kills_what_the_session_left);
	tcase_add_test(tc, test_kill_refuses_pids_that_are_not_children);
	tcase_add_test(tc, test_session_runtime_that_does_not_load);
	tcase_add_test(tc, test_session_start_refuses_a_bad_workdir);
	suite_add_tcase(s, tc);

	tc = tcase_create("hooks");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, reap_setup, tmp_teardown);
	tcase_add_test(tc, test_hook_pass_and_fail);
	tcase_add_test(tc, test_hook_timeout);
	tcase_add_test(tc, test_hook_leaves_nothing_behind);
	tcase_add_test(tc, test_hook_fork_hygiene);
	suite_add_tcase(s, tc);

	tc = tcase_create("session");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, session_setup, session_teardown);
	tcase_add_test(tc, test_session_serves_and_shuts_down);
	tcase_add_test(tc, test_session_crash_is_named);
	tcase_add_test(tc, test_session_exception_keeps_serving);
	tcase_add_test(tc, test_session_hang_is_killed);
	tcase_add_test(tc, test_session_exit_status);
	suite_add_tcase(s, tc);

	tc = tcase_create("ffi-session");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, ffi_session_setup, ffi_session_teardown);
	tcase_add_test(tc, test_ffi_session_serves_and_shuts_down);
	tcase_add_test(tc, test_ffi_session_exception_keeps_serving);
	tcase_add_test(tc, test_ffi_session_crash_is_named);
	suite_add_tcase(s, tc);

	tc = tcase_create("probe");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, reap_setup, tmp_teardown);
	tcase_add_test(tc, test_runtime_probe);
	suite_add_tcase(s, tc);

	return harness_run(s);
}
