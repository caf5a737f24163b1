/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Session and hook children, parent side (see supervisor.h).  Each child
 * leads its own process group.  Reaping first waits with WNOWAIT, then
 * SIGKILLs what is left of the group, then collects the status: while the
 * leader is an unreaped zombie its pid, and so the group id, cannot be
 * reused, which makes that group kill safe, and no process a session or
 * hook spawned outlives it.
 */
#include "config.h"

#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child_setup.h"
#include "err.h"
#include "session_child.h"
#include "workdir.h"

/* Longest sleep between two looks at a child being waited for. */
#define SUPERVISOR_POLL_MAX_MS 8

/*
 * The work dir of session @pid under @cfg->workdir, into @buf (capacity
 * @len).  The name derives from the pid, so the reaper finds it without
 * state of its own, and a leftover from an earlier agent with the same pid
 * is cleared when the session starts.  Returns 0 or -ENAMETOOLONG.
 */
int
supervisor_session_workdir(
    const struct supervisor_config *cfg, pid_t pid, char *buf, size_t len)
{
	int n;

	n = snprintf(buf, len, "%s/session-%ld", cfg->workdir, (long)pid);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Make sure the parent of the session dirs exists, as a directory. */
static int
workdir_parent_check(const char *dir, struct npufarm_err *err)
{
	char probe[PATH_MAX];
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return err_set(
		    err, -errno, "work dir %s: %s", dir, strerror(errno));
	if (stat(dir, &st) < 0)
		return err_set(
		    err, -errno, "work dir %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(
		    err, -ENOTDIR, "work dir %s: not a directory", dir);
	/* Any session's name must fit, whatever its pid. */
	if (snprintf(probe, sizeof(probe), "%s/session-%d", dir, INT_MAX) >=
	    (int)sizeof(probe))
		return err_set(
		    err, -ENAMETOOLONG, "work dir %s: too long", dir);
	return 0;
}

/*
 * Start a session: a socketpair and a forked session child that serves
 * rpc.ServerLoop on its end (session_child.h), in its own process group,
 * with a fresh work dir from supervisor_session_workdir().  The parent's
 * end is returned in @ret_fd, non-blocking and close-on-exec, owned by the
 * caller (closing it ends the session as a client EOF would); the child's
 * pid in @ret_pid, which the caller must reap with
 * supervisor_session_reap().  The runtime is loaded only in the child: a
 * runtime that fails to load shows up as the child's exit status, not
 * here.  Returns 0, or -errno with @err filled (the work dir parent is
 * unusable, or socketpair/fork failed); out-params are untouched then.
 * Does not log.  Call from a process without other threads.
 */
int
supervisor_session_start(const struct supervisor_config *cfg, int *ret_fd,
    pid_t *ret_pid, struct npufarm_err *err)
{
	struct session_child_config child;
	char dir[PATH_MAX];
	int sv[2] = {-1, -1}, flags, r;
	pid_t pid;

	if (cfg->runtime_path == NULL || cfg->workdir == NULL)
		return err_set(
		    err, -EINVAL, "a session needs a runtime and a work dir");
	r = workdir_parent_check(cfg->workdir, err);
	if (r < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return err_set(err, -errno, "socketpair: %s", strerror(errno));
	/* O_NONBLOCK is per open file description: the parent's end only,
	 * since rpc.ServerLoop needs a blocking socket (spec §6). */
	flags = fcntl(sv[0], F_GETFL);
	if (flags < 0 || fcntl(sv[0], F_SETFL, flags | O_NONBLOCK) < 0) {
		r = err_set(err, -errno, "fcntl: %s", strerror(errno));
		goto fail;
	}
	pid = child_setup_fork(true);
	if (pid < 0) {
		r = err_set(err, pid, "fork: %s", strerror(-pid));
		goto fail;
	}
	if (pid == 0) {
		(void)supervisor_session_workdir(
		    cfg, getpid(), dir, sizeof(dir));
		child.runtime_path = cfg->runtime_path;
		child.workdir = dir;
		child.fd = sv[1];
		child.stderr_fd = cfg->stderr_fd;
		child.dialect = cfg->dialect;
		session_child_run(&child);
	}
	(void)close(sv[1]);
	*ret_fd = sv[0];
	*ret_pid = pid;
	return 0;
fail:
	(void)close(sv[0]);
	(void)close(sv[1]);
	return r;
}

/*
 * Send the @how step of a kill to the whole process group of @pid, a
 * session or hook child started here and not yet reaped (after the reap
 * the id may belong to someone else).  A group that is already gone is
 * success.  Returns 0, or -EINVAL for a pid that is no child of ours to
 * signal (<= 1: kill(-1) would reach every process), or -errno.  Does not
 * block or log.
 */
int
supervisor_session_kill(pid_t pid, enum supervisor_kill how)
{
	int sig = how == SUPERVISOR_KILL_FORCE ? SIGKILL : SIGTERM;

	if (pid <= 1)
		return -EINVAL;
	if (kill(-pid, sig) < 0 && errno != ESRCH)
		return -errno;
	return 0;
}

/* Fill @end from a wait status. */
static void
end_classify(int status, struct supervisor_end *end)
{
	const char *abbrev;

	memset(end, 0, sizeof(*end));
	end->status = -1;
	if (WIFEXITED(status)) {
		end->status = WEXITSTATUS(status);
		end->outcome = end->status == 0 ? NPUFARM_OUTCOME_OK
						: NPUFARM_OUTCOME_CRASH;
		if (end->status != 0)
			(void)snprintf(end->msg, sizeof(end->msg),
			    "exited with status %d", end->status);
		return;
	}
	end->outcome = NPUFARM_OUTCOME_CRASH;
	end->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	abbrev = sigabbrev_np(end->signal);
	if (abbrev != NULL)
		(void)snprintf(end->msg, sizeof(end->msg), "SIG%s (signal %d)",
		    abbrev, end->signal);
	else
		(void)snprintf(
		    end->msg, sizeof(end->msg), "signal %d", end->signal);
}

/*
 * Has @pid ended?  Waits up to @timeout_ms (< 0: forever, 0: just look)
 * without reaping it.  Returns 1, 0 (still running), or -errno.
 */
static int
wait_ended(pid_t pid, int timeout_ms)
{
	struct timespec now, end, nap;
	siginfo_t si;
	int opts = WEXITED | WNOWAIT, step_ms = 1;
	int64_t left_ns;

	if (timeout_ms >= 0)
		opts |= WNOHANG;
	(void)clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout_ms / 1000;
	end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, opts) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (si.si_pid != 0)
			return 1;
		(void)clock_gettime(CLOCK_MONOTONIC, &now);
		left_ns = (int64_t)(end.tv_sec - now.tv_sec) * 1000000000 +
			  (end.tv_nsec - now.tv_nsec);
		if (left_ns <= 0)
			return 0;
		/* Never less than what is left: a nap rounded down would
		 * give up before the time is up. */
		nap.tv_sec = 0;
		nap.tv_nsec = (long)(left_ns < (int64_t)step_ms * 1000000
					 ? left_ns
					 : (int64_t)step_ms * 1000000);
		(void)nanosleep(&nap, NULL);
		if (step_ms < SUPERVISOR_POLL_MAX_MS)
			step_ms *= 2;
	}
}

/*
 * Reap @pid if it has ended (with @wait, once it ends): SIGKILL what is
 * left of its process group while its zombie pins the group id, then
 * collect and classify the status.  Returns 1 with @ret_end filled, 0
 * when it still runs, or -errno.
 */
static int
reap_child(pid_t pid, bool wait, struct supervisor_end *ret_end,
    struct npufarm_err *err)
{
	int r, status;

	if (pid <= 1)
		return err_set(
		    err, -EINVAL, "pid %ld is no child to reap", (long)pid);
	r = wait_ended(pid, wait ? -1 : 0);
	if (r < 0)
		return err_set(
		    err, r, "waitid %ld: %s", (long)pid, strerror(-r));
	if (r == 0)
		return 0;
	(void)kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return err_set(err, -errno, "waitpid %ld: %s",
			    (long)pid, strerror(errno));
	end_classify(status, ret_end);
	return 1;
}

/*
 * Reap session @pid and remove its work dir, whatever happened in it.
 * With @wait false it only looks (for a SIGCHLD handler in an event loop);
 * with @wait true it blocks until the child ends.  Returns 1 with
 * @ret_end filled (outcome OK for exit 0, CRASH with "exited with status
 * N" or "SIGSEGV (signal 11)" otherwise; processes the session left in its
 * group are SIGKILLed), 0 when the child still runs (@ret_end untouched),
 * or -errno (@pid is not our child).  When the work dir could not be
 * removed entirely the session is reaped all the same: 1, with
 * @ret_end->cleanup < 0 and the detail in @err.  Does not log.
 */
int
supervisor_session_reap(const struct supervisor_config *cfg, pid_t pid,
    bool wait, struct supervisor_end *ret_end, struct npufarm_err *err)
{
	char dir[PATH_MAX];
	int r;

	r = reap_child(pid, wait, ret_end, err);
	if (r <= 0)
		return r;
	ret_end->cleanup =
	    supervisor_session_workdir(cfg, pid, dir, sizeof(dir));
	if (ret_end->cleanup < 0)
		(void)err_set(err, ret_end->cleanup, "work dir of %ld: %s",
		    (long)pid, strerror(-ret_end->cleanup));
	else
		ret_end->cleanup = workdir_remove(dir, err);
	return 1;
}

/*
 * Start @cmd through /bin/sh -c in its own process group, with stdin from
 * /dev/null, stdout and stderr on @stderr_fd (-1: the agent's stderr), the
 * default signal dispositions and no other fds of the agent.  The caller
 * reaps @ret_pid with supervisor_hook_reap() and may kill it with
 * supervisor_session_kill().  Returns 0 or -errno (fork failed).  A
 * command that cannot run shows up as exit status 127.  Does not log.
 */
int
supervisor_hook_start(
    const char *cmd, int stderr_fd, pid_t *ret_pid, struct npufarm_err *err)
{
	pid_t pid;
	int fd;

	pid = child_setup_fork(false);
	if (pid < 0)
		return err_set(err, pid, "fork: %s", strerror(-pid));
	if (pid == 0) {
		if (child_setup_fds(-1, stderr_fd) < 0)
			_exit(127);
		fd = open("/dev/null", O_RDONLY);
		if (fd > STDIN_FILENO) {
			(void)dup2(fd, STDIN_FILENO);
			(void)close(fd);
		}
		(void)dup2(STDERR_FILENO, STDOUT_FILENO);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	*ret_pid = pid;
	return 0;
}

/*
 * Reap hook @pid as supervisor_session_reap() reaps a session, without the
 * work dir.  Returns 1 with @ret_end filled, 0 while it runs, or -errno.
 */
int
supervisor_hook_reap(pid_t pid, bool wait, struct supervisor_end *ret_end,
    struct npufarm_err *err)
{
	return reap_child(pid, wait, ret_end, err);
}

/*
 * Run the hook @cmd (--reset-cmd, --health-cmd) to its end, blocking: at
 * most @timeout_ms (<= 0: no limit), then SIGTERM to its process group and
 * SIGKILL after SUPERVISOR_KILL_GRACE_MS.  Returns 1 when it passed (exit
 * 0), 0 when it failed, with @ret_end saying how (outcome CRASH with the
 * exit status or signal, or TIMEOUT with "timed out after N ms"), or
 * -errno when it could not be run.  Does not log.
 */
int
supervisor_run_hook(const char *cmd, int timeout_ms, int stderr_fd,
    struct supervisor_end *ret_end, struct npufarm_err *err)
{
	struct supervisor_end end;
	bool timed_out = false;
	pid_t pid;
	int r;

	r = supervisor_hook_start(cmd, stderr_fd, &pid, err);
	if (r < 0)
		return r;
	r = wait_ended(pid, timeout_ms > 0 ? timeout_ms : -1);
	if (r == 0) {
		timed_out = true;
		(void)supervisor_session_kill(pid, SUPERVISOR_KILL_TERM);
		if (wait_ended(pid, SUPERVISOR_KILL_GRACE_MS) == 0)
			(void)supervisor_session_kill(
			    pid, SUPERVISOR_KILL_FORCE);
	}
	r = reap_child(pid, true, &end, err);
	if (r < 0)
		return r;
	if (timed_out) {
		end.outcome = NPUFARM_OUTCOME_TIMEOUT;
		(void)snprintf(end.msg, sizeof(end.msg),
		    "timed out after %d ms", timeout_ms);
	}
	*ret_end = end;
	return end.outcome == NPUFARM_OUTCOME_OK ? 1 : 0;
}

/*
 * Probe the runtime at @runtime_path once, at start-up, in a child of its
 * own (session_child_probe()): the agent never loads board code in its
 * own process.  The child loads it as every session child will, so a file
 * that is not a TVM runtime, lacks part of its C API or cannot be
 * dlopen()ed at all is refused here, with the reason.  On success
 * *ret_dialect is the wire dialect its ABI implies (tvm_runtime.h).  Waits
 * at most SUPERVISOR_PROBE_TIMEOUT_MS.  Returns 0, or -errno with @err
 * saying why (without the path: the caller names it).  Does not log; the
 * child's stderr (the runtime's own output) goes to @stderr_fd (-1: the
 * agent's).  Call from a process without other threads.
 */
int
supervisor_runtime_probe(const char *runtime_path, int stderr_fd,
    enum tvm_rpc_dialect *ret_dialect, struct npufarm_err *err)
{
	struct supervisor_end end;
	struct pollfd pfd;
	char buf[NPUFARM_ERR_MSG_MAX + 1];
	bool timed_out = false;
	size_t got = 0;
	int p[2], r;
	ssize_t k;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(err, -errno, "pipe: %s", strerror(errno));
	pid = child_setup_fork(false);
	if (pid < 0) {
		(void)close(p[0]);
		(void)close(p[1]);
		return err_set(err, pid, "fork: %s", strerror(-pid));
	}
	if (pid == 0)
		session_child_probe(runtime_path, p[1], stderr_fd);
	(void)close(p[1]);
	pfd = (struct pollfd){.fd = p[0], .events = POLLIN};
	for (;;) {
		r = poll(&pfd, 1, SUPERVISOR_PROBE_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			timed_out = r == 0;
			break;
		}
		k = read(p[0], buf + got, sizeof(buf) - 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
		if (got == sizeof(buf) - 1)
			break;
	}
	(void)close(p[0]);
	if (timed_out)
		(void)supervisor_session_kill(pid, SUPERVISOR_KILL_FORCE);
	r = reap_child(pid, true, &end, err);
	if (r < 0)
		return r;
	buf[got] = '\0';
	if (got >= 1 && buf[0] == TVM_RPC_DIALECT_UNKNOWN)
		return err_set(err, -ENOENT, "%s", buf + 1);
	if (got >= 1 && end.outcome == NPUFARM_OUTCOME_OK &&
	    (buf[0] == TVM_RPC_DIALECT_V014 || buf[0] == TVM_RPC_DIALECT_FFI)) {
		*ret_dialect = (enum tvm_rpc_dialect)buf[0];
		return 0;
	}
	if (timed_out)
		return err_set(err, -ETIMEDOUT, "loading it took over %d ms",
		    SUPERVISOR_PROBE_TIMEOUT_MS);
	return err_set(err, -EPROTO, "loading it ended the probe: %s%s",
	    end.msg[0] ? end.msg : "no answer",
	    end.status == 127 ? " (a symbol lookup error?)" : "");
}
