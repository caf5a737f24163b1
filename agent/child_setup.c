/* SPDX-License-Identifier: Apache-2.0 */
/* Fork hygiene for the agent's children (see child_setup.h). */
#include "config.h"

#include "child_setup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Highest fd the fallback close loop tries when close_range() fails. */
#define CHILD_MAX_FD 65536

/*
 * glibc refuses sigaction() on the signals it reserves (32 and 33), but a
 * parent can leave them ignored (GNU make does, for every recipe: an agent
 * started from a makefile, e.g. in a package build's tests, would pass
 * that on).  The kernel takes them: an ignored one goes back to SIG_DFL,
 * a fresh process's state (an all-zero kernel sigaction).  One glibc has
 * a handler on (SIGSETXID, for setuid() in threaded processes) keeps it.
 */
static void
reset_reserved(int sig)
{
	unsigned long ksa[4] = {0}, old[4] = {0}; /* handler first */
	const size_t setsize = (NSIG - 1) / 8;    /* the kernel's sigset_t */

	if (syscall(SYS_rt_sigaction, sig, NULL, old, setsize) == 0 &&
	    old[0] == (unsigned long)(uintptr_t)SIG_IGN)
		(void)syscall(SYS_rt_sigaction, sig, ksa, NULL, setsize);
}

/*
 * Put every disposition back to SIG_DFL, caught and ignored ones alike (a
 * handler would be the agent's code running in the child, and an inherited
 * ignore of SIGTERM would defeat the supervisor's kill), optionally ignore
 * SIGPIPE, then unblock every signal.  SIGKILL and SIGSTOP cannot be
 * changed; libc's reserved ones go through reset_reserved().
 */
static void
reset_signals(bool ignore_sigpipe)
{
	struct sigaction sa = {0};
	sigset_t none;
	int sig;

	sa.sa_handler = SIG_DFL;
	(void)sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP &&
		    sigaction(sig, &sa, NULL) < 0)
			reset_reserved(sig);
	if (ignore_sigpipe) {
		sa.sa_handler = SIG_IGN;
		(void)sigaction(SIGPIPE, &sa, NULL);
	}
	(void)sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * fork() a child that leads its own process group and starts with default
 * signal dispositions and nothing blocked; with @ignore_sigpipe it ignores
 * SIGPIPE instead, so that a vanished client makes rpc.ServerLoop return an
 * error rather than kill the session (it sends without MSG_NOSIGNAL).
 * Every signal stays blocked from before the fork until the child's
 * handlers are reset: a SIGTERM sent at once (the pid is known as soon as
 * this returns) waits, pending, and then meets SIG_DFL instead of running
 * the agent's handler inside the child.  Both sides set the process group,
 * so it exists before either goes on.  Returns the pid in the parent, 0 in
 * the child, or -errno.  Call from a process without other threads.
 */
pid_t
child_setup_fork(bool ignore_sigpipe)
{
	sigset_t all, old;
	pid_t pid, parent;
	int e;

	(void)sigfillset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, &old);
	parent = getpid();
	pid = fork();
	if (pid == 0) {
		(void)setpgid(0, 0);
		reset_signals(ignore_sigpipe);
		/* An agent killed with SIGKILL takes its children with it
		 * (their grandchildren are in the group, killed at reap
		 * time or by the next agent's clean-up of its work dir). */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127); /* the agent died before the prctl */
		return 0;
	}
	e = errno;
	if (pid > 0)
		(void)setpgid(pid, pid);
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	return pid < 0 ? -e : pid;
}

/*
 * Leave the child with fds 0 and 1 as they are, @stderr_fd (when >= 0) on
 * fd 2, @keep_fd (when >= 0) on fd 3, and nothing else open: no listener,
 * client connection or log the agent holds leaks into a session.  Returns
 * the fd @keep_fd now has (3), 0 when there is none, or -errno.
 */
int
child_setup_fds(int keep_fd, int stderr_fd)
{
	int fd = -1, low = 3, i;

	/* First a copy above the standard fds, so the stderr dup2 below
	 * cannot overwrite the kept fd whatever numbers the two had. */
	if (keep_fd >= 0) {
		fd = fcntl(keep_fd, F_DUPFD, 3);
		if (fd < 0)
			return -errno;
	}
	if (stderr_fd >= 0 && stderr_fd != STDERR_FILENO &&
	    dup2(stderr_fd, STDERR_FILENO) < 0)
		return -errno;
	if (fd >= 0) {
		if (fd != 3 && dup2(fd, 3) < 0)
			return -errno;
		fd = 3;
		low = 4;
	}
	if (close_range((unsigned)low, ~0U, 0) < 0)
		for (i = low; i < CHILD_MAX_FD; i++)
			(void)close(i);
	return fd < 0 ? 0 : fd;
}
