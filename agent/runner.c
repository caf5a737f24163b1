/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task runners, agent side and the child's common start (see runner.h).
 * The child reports on a pipe with one JSON object, written whole before
 * it exits:
 *
 *   {"outcome": "ok" | "exception" | "crash", "number": N, "costs": [...],
 *    "status": N, "signal": N, "msg": "...", "tail": "..."}
 *
 * The agent trusts it only as far as its shape goes: a child that died
 * abnormally is a crash whatever it wrote, and one that exited 0 without a
 * well-formed report (a kernel that called exit(0)) is a crash too.
 */
#include "config.h"

#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <jansson.h>

#include <npufarm/kernel.h>

#include "child_setup.h"
#include "err.h"
#include "json_util.h"
#include "supervisor.h"
#include "task_spec.h"
#include "workdir.h"

_Static_assert(RUNNER_MAX_COSTS == TASK_SPEC_MAX_REPEAT,
    "a kernel reports one cost per repeat");
_Static_assert(RUNNER_MSG_MAX == NPUFARM_KERNEL_ERR_MAX,
    "a kernel's message is kept whole");

/* First size of the report buffer; it doubles up to RUNNER_REPORT_MAX. */
#define RUNNER_REPORT_INITIAL 4096

struct runner {
	pid_t pid;              /* the runner child, until collected */
	int fd;                 /* read end of the report pipe, non-blocking */
	char workdir[PATH_MAX]; /* parent of the task work dirs (copy) */
	char *buf;              /* the report so far; owned */
	size_t len, cap;        /* bytes in buf, its size */
	bool overflow;          /* more than RUNNER_REPORT_MAX was sent */
	bool eof;               /* every writer of the pipe is gone */
	bool collected;         /* reaped: pid may belong to another */
};

/* Replace what is not printable ASCII (but \n and \t) by '?'. */
static json_t *
json_text(const char *s)
{
	json_t *v = json_string(s);
	char *copy;
	size_t i;

	if (v != NULL)
		return v;
	/* Not UTF-8: keep what can be read of it. */
	copy = strdup(s);
	if (copy == NULL)
		return NULL;
	for (i = 0; copy[i] != '\0'; i++)
		if (((unsigned char)copy[i] < 0x20 && copy[i] != '\n' &&
			copy[i] != '\t') ||
		    (unsigned char)copy[i] > 0x7e)
			copy[i] = '?';
	v = json_string(copy);
	free(copy);
	return v;
}

/*
 * Write the report @res on @fd and exit 0; exit EX_SOFTWARE when it cannot
 * be written.  Runner child only.
 */
_Noreturn void
runner_child_report(int fd, const struct runner_result *res)
{
	json_t *costs, *root;
	char *text;
	size_t len, off = 0;
	ssize_t n;
	uint32_t i;

	costs = json_array();
	for (i = 0; costs != NULL && i < res->ncosts; i++)
		if (json_array_append_new(costs, json_real(res->costs[i])) < 0)
			_exit(EX_SOFTWARE);
	root = json_pack("{s:s, s:I, s:o, s:i, s:i, s:o, s:o}", "outcome",
	    npufarm_outcome_name(res->outcome), "number",
	    (json_int_t)res->number, "costs", costs, "status", res->status,
	    "signal", res->signal, "msg", json_text(res->msg), "tail",
	    json_text(res->tail));
	text = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (text == NULL)
		_exit(EX_SOFTWARE);
	len = strlen(text);
	while (off < len) {
		n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	/* Freed though _exit() follows: leak checkers follow children. */
	free(text);
	if (off < len)
		_exit(EX_IOERR);
	_exit(0);
}

/*
 * Report that the task could not run and exit: @outcome with a formatted
 * message.  Runner child only.
 */
__attribute__((format(printf, 3, 4))) _Noreturn void
runner_child_fail(int fd, enum npufarm_outcome outcome, const char *fmt, ...)
{
	static struct runner_result res;
	va_list ap;

	res.outcome = outcome;
	va_start(ap, fmt);
	(void)vsnprintf(res.msg, sizeof(res.msg), fmt, ap);
	va_end(ap);
	runner_child_report(fd, &res);
}

/* The child: fds, a work dir to work in, then the runner itself. */
_Noreturn static void
runner_child(const struct runner_config *cfg, const struct task_spec *spec,
    const char *artifact, const char *ref, int wfd)
{
	struct supervisor_config sup = {.workdir = cfg->workdir};
	struct npufarm_err e = {0};
	char dir[PATH_MAX], abs[PATH_MAX];
	int fd, null;

	fd = child_setup_fds(wfd, cfg->stderr_fd);
	if (fd < 0)
		_exit(EX_OSERR);
	/* The report fd must not reach an exec'ed program. */
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	null = open("/dev/null", O_RDONLY);
	if (null > STDIN_FILENO) {
		(void)dup2(null, STDIN_FILENO);
		(void)close(null);
	}
	/* A kernel's printf() goes to the agent log, never to the report. */
	(void)dup2(STDERR_FILENO, STDOUT_FILENO);
	if (supervisor_session_workdir(&sup, getpid(), dir, sizeof(dir)) < 0 ||
	    workdir_create(dir, abs, sizeof(abs), &e) < 0)
		runner_child_fail(fd, NPUFARM_OUTCOME_CRASH,
		    "runner: work dir: %s", e.msg[0] != '\0' ? e.msg : dir);
	if (chdir(abs) < 0)
		runner_child_fail(fd, NPUFARM_OUTCOME_CRASH,
		    "runner: chdir %s: %s", abs, strerror(errno));
	if (spec->runner == TASK_RUNNER_KERNEL)
		runner_kernel_child(spec, artifact, ref, cfg->ref_cache, fd);
	runner_exec_child(cfg, spec, artifact, abs, fd);
}

/*
 * Start @spec (validated by task_spec_parse()) on the artifact at
 * @artifact_path (kept, e.g. pinned in the cache, until the run is
 * collected; NULL: the built-in probe kernel) in a forked child, see
 * runner.h.  The child's pid and the
 * report pipe are in @ret_run, owned by the caller until runner_free().
 * @cfg is copied where needed.  Returns 0, or -errno with @err filled (no
 * artifact at the path, unusable work dir, pipe or fork failed); nothing
 * runs then.  Problems inside the child (a library that does not load,
 * no entry point) come back as its result.  Does not log.  Call from a
 * process without other threads.
 */
int
runner_start(const struct runner_config *cfg, const struct task_spec *spec,
    const char *artifact_path, struct runner **ret_run, struct npufarm_err *err)
{
	char artifact[PATH_MAX], ref[PATH_MAX];
	struct runner *run;
	int pfd[2] = {-1, -1}, r;
	pid_t pid;

	if (cfg->workdir == NULL || (unsigned)spec->runner >= TASK_RUNNER_MAX)
		return err_set(err, -EINVAL,
		    "a runner needs a work dir and "
		    "a task");
	if (strlen(cfg->workdir) >= sizeof(run->workdir))
		return err_set(
		    err, -ENAMETOOLONG, "work dir %s: too long", cfg->workdir);
	/* Absolute: the child works in its own directory. */
	if (artifact_path == NULL)
		artifact[0] = '\0';
	else if (realpath(artifact_path, artifact) == NULL)
		return err_set(err, -errno, "artifact %s: %s", artifact_path,
		    strerror(errno));
	if (spec->check.on && cfg->ref_path == NULL)
		return err_set(err, -EINVAL, "the task's reference is missing");
	if (spec->check.on && realpath(cfg->ref_path, ref) == NULL)
		return err_set(err, -errno, "reference %s: %s", cfg->ref_path,
		    strerror(errno));
	if (mkdir(cfg->workdir, 0700) < 0 && errno != EEXIST)
		return err_set(err, -errno, "work dir %s: %s", cfg->workdir,
		    strerror(errno));
	if (cfg->ref_cache != NULL && mkdir(cfg->ref_cache, 0700) < 0 &&
	    errno != EEXIST)
		return err_set(err, -errno, "reference cache %s: %s",
		    cfg->ref_cache, strerror(errno));
	run = calloc(1, sizeof(*run));
	if (run == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	run->fd = -1;
	memcpy(run->workdir, cfg->workdir, strlen(cfg->workdir) + 1);
	if (pipe2(pfd, O_CLOEXEC) < 0 ||
	    fcntl(pfd[0], F_SETFL, O_NONBLOCK) < 0) {
		r = err_set(err, -errno, "pipe: %s", strerror(errno));
		goto fail;
	}
	pid = child_setup_fork(false);
	if (pid < 0) {
		r = err_set(err, pid, "fork: %s", strerror(-pid));
		goto fail;
	}
	if (pid == 0) {
		free(run); /* the parent's; a leak checker would see it lost */
		runner_child(cfg, spec, artifact_path != NULL ? artifact : NULL,
		    spec->check.on ? ref : NULL, pfd[1]);
	}
	(void)close(pfd[1]);
	run->pid = pid;
	run->fd = pfd[0];
	*ret_run = run;
	return 0;
fail:
	if (pfd[0] >= 0)
		(void)close(pfd[0]);
	if (pfd[1] >= 0)
		(void)close(pfd[1]);
	free(run);
	return r;
}

/* The runner child's pid: for supervisor_session_kill() until collected. */
pid_t
runner_pid(const struct runner *run)
{
	return run->pid;
}

/* The report pipe to watch for reading; owned by @run. */
int
runner_fd(const struct runner *run)
{
	return run->fd;
}

/* Keep @n more bytes of report, up to RUNNER_REPORT_MAX. */
static int
report_append(struct runner *run, const char *data, size_t n)
{
	size_t cap = run->cap;
	char *p;

	if (run->overflow || run->len + n > RUNNER_REPORT_MAX) {
		run->overflow =
		    true; /* keep reading: the child must not block */
		return 0;
	}
	while (cap < run->len + n)
		cap = cap == 0 ? RUNNER_REPORT_INITIAL : cap * 2;
	if (cap != run->cap) {
		p = realloc(run->buf, cap);
		if (p == NULL)
			return -ENOMEM;
		run->buf = p;
		run->cap = cap;
	}
	memcpy(run->buf + run->len, data, n);
	run->len += n;
	return 0;
}

/*
 * Read what the child has written so far, without blocking; call when the
 * fd is readable.  Returns 0 when more may come, 1 at the end (every
 * writer is gone: stop watching the fd; it stays open until
 * runner_free()), or -errno.  Does not log.
 */
int
runner_read(struct runner *run, struct npufarm_err *err)
{
	char tmp[16384];
	ssize_t n;
	int r;

	while (!run->eof) {
		n = read(run->fd, tmp, sizeof(tmp));
		if (n > 0) {
			r = report_append(run, tmp, (size_t)n);
			if (r < 0)
				return err_set(err, r, "out of memory");
		} else if (n == 0) {
			run->eof = true;
		} else if (errno == EAGAIN) {
			return 0;
		} else if (errno != EINTR) {
			return err_set(
			    err, -errno, "read: %s", strerror(errno));
		}
	}
	return 1;
}

/* Copy the string @key of @root into @buf, cut to fit; "" when absent. */
static void
copy_string(const json_t *root, const char *key, char *buf, size_t len)
{
	const char *s = json_string_value(json_object_get(root, key));

	(void)snprintf(buf, len, "%s", s != NULL ? s : "");
}

/* Fill @res from the child's report; -EBADMSG when it is malformed. */
static int
report_parse(const struct runner *run, struct runner_result *res)
{
	json_t *root = NULL, *costs, *c;
	const char *name;
	json_int_t number;
	size_t i;
	int o, r = -EBADMSG;

	if (run->overflow || run->len == 0 ||
	    json_util_load(run->buf, run->len, 4, &root, NULL) < 0)
		return -EBADMSG;
	name = json_string_value(json_object_get(root, "outcome"));
	o = name != NULL ? npufarm_outcome_from_name(name) : -1;
	costs = json_object_get(root, "costs");
	number = json_integer_value(json_object_get(root, "number"));
	if ((o != NPUFARM_OUTCOME_OK && o != NPUFARM_OUTCOME_EXCEPTION &&
		o != NPUFARM_OUTCOME_CRASH && o != NPUFARM_OUTCOME_WRONG) ||
	    !json_is_array(costs) ||
	    json_array_size(costs) > RUNNER_MAX_COSTS || number < 0 ||
	    number > UINT32_MAX)
		goto out;
	res->outcome = (enum npufarm_outcome)o;
	res->number = (uint32_t)number;
	json_array_foreach(costs, i, c) {
		if (!json_is_number(c))
			goto out;
		res->costs[i] = json_number_value(c);
	}
	res->ncosts = (uint32_t)json_array_size(costs);
	res->status = (int)json_integer_value(json_object_get(root, "status"));
	res->signal = (int)json_integer_value(json_object_get(root, "signal"));
	copy_string(root, "msg", res->msg, sizeof(res->msg));
	copy_string(root, "tail", res->tail, sizeof(res->tail));
	r = 0;
out:
	json_decref(root);
	return r;
}

/*
 * Collect a run whose child has ended (with @wait, once it ends): reap it
 * and its process group (supervisor_session_reap()), remove its work dir,
 * read the rest of its report and classify the result into @ret_result
 * (see struct runner_result).  A child the caller killed comes back as
 * CRASH by SIGTERM or SIGKILL.  Returns 1 with @ret_result filled, 0 while
 * the child still runs (@ret_result untouched), or -errno (already
 * collected, or not our child).  A work dir that could not be removed
 * still yields 1, with @ret_result->cleanup < 0 and the detail in @err.
 * Does not log.
 */
int
runner_collect(struct runner *run, bool wait, struct runner_result *ret_result,
    struct npufarm_err *err)
{
	struct supervisor_config sup = {.workdir = run->workdir};
	struct supervisor_end end;
	int r;

	if (run->collected)
		return err_set(
		    err, -EINVAL, "run %ld already collected", (long)run->pid);
	r = supervisor_session_reap(&sup, run->pid, wait, &end, err);
	if (r <= 0)
		return r;
	run->collected = true;
	/* The child wrote its report whole before it exited: what is not
	 * read yet is in the pipe now. */
	(void)runner_read(run, NULL);

	memset(ret_result, 0, sizeof(*ret_result));
	ret_result->cleanup = end.cleanup;
	if (end.outcome != NPUFARM_OUTCOME_OK) {
		ret_result->outcome = NPUFARM_OUTCOME_CRASH;
		ret_result->status = end.status;
		ret_result->signal = end.signal;
		(void)snprintf(
		    ret_result->msg, sizeof(ret_result->msg), "%s", end.msg);
	} else if (report_parse(run, ret_result) < 0) {
		memset(ret_result, 0, sizeof(*ret_result));
		ret_result->cleanup = end.cleanup;
		ret_result->outcome = NPUFARM_OUTCOME_CRASH;
		(void)snprintf(ret_result->msg, sizeof(ret_result->msg),
		    "exited with status 0 without a result");
	}
	if (ret_result->outcome != NPUFARM_OUTCOME_OK)
		ret_result->ncosts = 0;
	return 1;
}

/*
 * Free @run (NULL is fine).  A child not yet collected is SIGKILLed with
 * its process group and reaped, blocking briefly, and its work dir
 * removed.  Closes the report fd: take it out of the event loop first.
 * Returns NULL.
 */
struct runner *
runner_free(struct runner *run)
{
	struct supervisor_config sup = {0};
	struct supervisor_end end;

	if (run == NULL)
		return NULL;
	if (!run->collected && run->pid > 1) {
		sup.workdir = run->workdir;
		(void)supervisor_session_kill(run->pid, SUPERVISOR_KILL_FORCE);
		(void)supervisor_session_reap(&sup, run->pid, true, &end, NULL);
	}
	if (run->fd >= 0)
		(void)close(run->fd);
	free(run->buf);
	free(run);
	return NULL;
}
