/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exec runner's child (see runner.h): a monitor that runs the program
 * in its own process group (so the agent's kill reaches both), with the
 * measurement in its environment, drains its stdout (bounded) and stderr
 * (the tail kept) until it ends, and classifies:
 *
 *   signal                                 crash "SIGSEGV (signal 11)"
 *   stdout {"error": "..."}                exception, message verbatim
 *   exit 0, stdout {"costs": [...]}        ok
 *   exit 0, anything else on stdout        exception (no usable costs)
 *   exit N != 0                            crash "exited with status N"
 *
 * The tail of stderr goes with every result.  The program's stdout is
 * read until it ends or the program exits, whichever comes first, so a
 * background process left holding the pipe does not hold up the result
 * (the agent's reap kills it with the group).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <jansson.h>

#include "child_setup.h"
#include "err.h"
#include "json_util.h"
#include "runner.h"
#include "supervisor.h"
#include "task_spec.h"

/* How often the monitor looks whether the program has ended. */
#define EXEC_POLL_MS 20

/* What the monitor gathers from the program's pipes. */
struct exec_out {
	char out[RUNNER_EXEC_STDOUT_MAX]; /* stdout, from the start */
	size_t out_len;
	bool out_over;              /* it wrote more than out holds */
	char tail[RUNNER_TAIL_MAX]; /* ring of the last stderr bytes */
	size_t tail_pos;            /* next byte to write in tail */
	bool tail_wrapped;
};

/* setenv() of a number. */
static void
setenv_u(const char *name, unsigned long long v)
{
	char buf[32];

	(void)snprintf(buf, sizeof(buf), "%llu", v);
	(void)setenv(name, buf, 1);
}

/* The program's environment: the agent's, plus the task (kernel-abi.md). */
static void
set_env(const struct task_spec *spec, const char *artifact, const char *workdir)
{
	json_t *args = task_spec_args_json(spec);
	char *text = args != NULL ? json_dumps(args, JSON_COMPACT) : NULL;

	(void)setenv("NPUFARM_ARTIFACT", artifact, 1);
	(void)setenv("NPUFARM_WORKDIR", workdir, 1);
	(void)setenv("TMPDIR", workdir, 1);
	(void)setenv("NPUFARM_ENTRY", spec->entry, 1);
	(void)setenv("NPUFARM_TASK_NAME", spec->name, 1);
	(void)setenv("NPUFARM_ARGS", text != NULL ? text : "[]", 1);
	setenv_u("NPUFARM_NUMBER", spec->measure.number);
	setenv_u("NPUFARM_REPEAT", spec->measure.repeat);
	setenv_u("NPUFARM_MIN_REPEAT_MS", spec->measure.min_repeat_ms);
	setenv_u("NPUFARM_COOLDOWN_MS", spec->measure.cooldown_ms);
	setenv_u("NPUFARM_TIMEOUT_MS", spec->timeout_ms);
	free(text);
	json_decref(args);
}

/* The program: stdout and stderr on the pipes, nothing else open. */
_Noreturn static void
exec_program(const struct runner_config *cfg, const struct task_spec *spec,
    const char *artifact, int out, int errfd)
{
	char *argv[3];
	int null;

	if (dup2(out, STDOUT_FILENO) < 0 || dup2(errfd, STDERR_FILENO) < 0 ||
	    child_setup_fds(-1, -1) < 0)
		_exit(127);
	null = open("/dev/null", O_RDONLY);
	if (null > STDIN_FILENO) {
		(void)dup2(null, STDIN_FILENO);
		(void)close(null);
	}
	if (cfg->exec_cmd != NULL) {
		execl("/bin/sh", "sh", "-c", cfg->exec_cmd, (char *)NULL);
		dprintf(STDERR_FILENO, "npufarm: exec /bin/sh: %s\n",
		    strerror(errno));
		_exit(127);
	}
	argv[0] = (char *)artifact;
	argv[1] = spec->entry[0] != '\0' ? (char *)spec->entry : NULL;
	argv[2] = NULL;
	execv(artifact, argv);
	dprintf(
	    STDERR_FILENO, "npufarm: exec %s: %s\n", artifact, strerror(errno));
	_exit(127);
}

/* Keep @n bytes of stdout, up to RUNNER_EXEC_STDOUT_MAX. */
static void
keep_out(struct exec_out *o, const char *data, size_t n)
{
	size_t room = sizeof(o->out) - o->out_len;

	if (n > room) {
		o->out_over = true;
		n = room;
	}
	memcpy(o->out + o->out_len, data, n);
	o->out_len += n;
}

/* Keep the last RUNNER_TAIL_MAX - 1 bytes of stderr. */
static void
keep_tail(struct exec_out *o, const char *data, size_t n)
{
	size_t cap = sizeof(o->tail) - 1, i;

	for (i = 0; i < n; i++) {
		o->tail[o->tail_pos++] = data[i];
		if (o->tail_pos == cap) {
			o->tail_pos = 0;
			o->tail_wrapped = true;
		}
	}
}

/* The tail, in order and NUL-terminated, into @buf (RUNNER_TAIL_MAX). */
static void
tail_text(const struct exec_out *o, char *buf)
{
	size_t cap = sizeof(o->tail) - 1, n = 0;

	if (o->tail_wrapped) {
		memcpy(buf, o->tail + o->tail_pos, cap - o->tail_pos);
		n = cap - o->tail_pos;
	}
	memcpy(buf + n, o->tail, o->tail_pos);
	n += o->tail_pos;
	buf[n] = '\0';
	/* A NUL in the stream would hide what follows it. */
	while (n-- > 0)
		if (buf[n] == '\0')
			buf[n] = '?';
}

/* Read what is there on @fd; false once it is at its end. */
static bool
drain(int fd, struct exec_out *o, bool is_out)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			if (is_out)
				keep_out(o, buf, (size_t)n);
			else
				keep_tail(o, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && errno == EAGAIN;
	}
}

/* Has @pid ended (not reaped)? */
static bool
ended(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno != EINTR;
	return si.si_pid != 0;
}

/* Gather the program's output until both pipes end or it exits. */
static void
gather(pid_t pid, int out, int errfd, struct exec_out *o)
{
	struct pollfd p[2] = {{out, POLLIN, 0}, {errfd, POLLIN, 0}};
	bool open_[2] = {true, true}, done = false;
	int i;

	while (open_[0] || open_[1]) {
		for (i = 0; i < 2; i++)
			p[i].fd = open_[i] ? (i == 0 ? out : errfd) : -1;
		if (poll(p, 2, EXEC_POLL_MS) < 0 && errno != EINTR)
			break;
		for (i = 0; i < 2; i++)
			if (open_[i] && p[i].revents != 0)
				open_[i] = drain(p[i].fd, o, i == 0);
		if (done)
			break; /* the last look after the exit */
		done = ended(pid);
	}
}

/*
 * Check the program's stdout, a JSON object: {"error": "..."} (the
 * message in @ret_error, borrowed from @ret_root), or {"costs": [1 to
 * RUNNER_MAX_COSTS finite numbers >= 0], "number": N (optional)}.  Returns
 * 0 with @ret_root to release, or -errno with @e saying what is wrong.
 */
static int
report_check(const struct exec_out *o, json_t **ret_root,
    const char **ret_error, struct npufarm_err *e)
{
	json_t *root = NULL, *costs, *c, *num;
	size_t i;
	int r;

	if (o->out_over)
		return err_set(e, -EMSGSIZE, "more than %d bytes on stdout",
		    RUNNER_EXEC_STDOUT_MAX);
	r = json_util_load(o->out, o->out_len, JSON_UTIL_MAX_DEPTH, &root, e);
	if (r < 0)
		return r;
	*ret_root = root;
	*ret_error = json_string_value(json_object_get(root, "error"));
	if (!json_is_object(root))
		return err_set(e, -EINVAL, "not a JSON object");
	if (*ret_error != NULL)
		return 0; /* reported: the exit status says nothing more */
	costs = json_object_get(root, "costs");
	num = json_object_get(root, "number");
	if (!json_is_array(costs) || json_array_size(costs) == 0 ||
	    json_array_size(costs) > RUNNER_MAX_COSTS)
		return err_set(e, -EINVAL,
		    "\"costs\" must be an array of 1 to %d numbers",
		    RUNNER_MAX_COSTS);
	json_array_foreach(costs, i, c)
		if (!json_is_number(c) || !isfinite(json_number_value(c)) ||
		    json_number_value(c) < 0)
			return err_set(e, -EINVAL,
			    "costs[%zu] must be a number of seconds", i);
	if (num != NULL &&
	    (!json_is_integer(num) || json_integer_value(num) < 1 ||
		json_integer_value(num) > UINT32_MAX))
		return err_set(
		    e, -EINVAL, "\"number\" must be a positive integer");
	return 0;
}

/* Classify from the program's end @end and its stdout into @res. */
static void
classify(const struct task_spec *spec, const struct supervisor_end *end,
    const struct exec_out *o, struct runner_result *res)
{
	struct npufarm_err e = {0};
	json_t *root = NULL, *costs, *num, *c;
	const char *error = NULL;
	size_t i;
	int r;

	res->status = end->status;
	res->signal = end->signal;
	res->number = spec->measure.number;
	r = end->signal != 0 ? 0 : report_check(o, &root, &error, &e);
	if (end->signal == 0 && error != NULL) {
		res->outcome = NPUFARM_OUTCOME_EXCEPTION;
		(void)snprintf(res->msg, sizeof(res->msg), "%s", error);
	} else if (end->signal != 0 || end->status != 0) {
		res->outcome = NPUFARM_OUTCOME_CRASH;
		(void)snprintf(res->msg, sizeof(res->msg), "%s", end->msg);
	} else if (r < 0) {
		res->outcome = NPUFARM_OUTCOME_EXCEPTION;
		(void)snprintf(res->msg, sizeof(res->msg),
		    "no costs on stdout: %s", e.msg);
	} else {
		res->outcome = NPUFARM_OUTCOME_OK;
		costs = json_object_get(root, "costs");
		json_array_foreach(costs, i, c)
			res->costs[i] = json_number_value(c);
		res->ncosts = (uint32_t)json_array_size(costs);
		num = json_object_get(root, "number");
		if (num != NULL)
			res->number = (uint32_t)json_integer_value(num);
	}
	json_decref(root);
}

/*
 * Run the exec task @spec: the artifact @artifact (absolute), or
 * @cfg->exec_cmd, in @workdir, and report on @fd; never returns.  Runner
 * child only, in its work dir.
 */
_Noreturn void
runner_exec_child(const struct runner_config *cfg, const struct task_spec *spec,
    const char *artifact, const char *workdir, int fd)
{
	static struct exec_out o;
	static struct runner_result res;
	struct supervisor_end end;
	struct npufarm_err e = {0};
	int out[2], errp[2];
	pid_t pid;

	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
		runner_child_fail(fd, NPUFARM_OUTCOME_CRASH, "runner: pipe: %s",
		    strerror(errno));
	set_env(spec, artifact, workdir);
	/* Plain fork(): the program stays in this process group. */
	pid = fork();
	if (pid < 0)
		runner_child_fail(fd, NPUFARM_OUTCOME_CRASH, "runner: fork: %s",
		    strerror(errno));
	if (pid == 0)
		exec_program(cfg, spec, artifact, out[1], errp[1]);
	(void)close(out[1]);
	(void)close(errp[1]);
	(void)fcntl(out[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(errp[0], F_SETFL, O_NONBLOCK);
	gather(pid, out[0], errp[0], &o);
	/* The hook reaper classifies any child; the program leads no group
	 * of its own, so its group kill finds nothing. */
	if (supervisor_hook_reap(pid, true, &end, &e) < 0)
		runner_child_fail(
		    fd, NPUFARM_OUTCOME_CRASH, "runner: %s", e.msg);
	classify(spec, &end, &o, &res);
	tail_text(&o, res.tail);
	runner_child_report(fd, &res);
}
