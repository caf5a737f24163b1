/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-bench-loopback: the physical limits of this host's loopback, the
 * floor under every other figure of bench/run.sh, measured in the same run:
 *
 *  - stream: one TCP connection, a child writing --stream-mib MiB in 1 MiB
 *    writes, the parent reading; MiB/s from the first byte to the last;
 *  - round trip: one byte each way on a TCP_NODELAY connection, the other
 *    end a child that echoes it; p50 and p99 over --round-trips samples.
 *
 * Output is markdown rows (metric | value | - | - | -) on stdout.  Every
 * wait is bounded (SO_RCVTIMEO/SO_SNDTIMEO); loopback only.  Timings are
 * for reading, never for pass/fail.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "log.h"

#define LOOP_CHUNK      (1u << 20)
#define LOOP_TIMEOUT_S  10
#define LOOP_MAX_ROUNDS 1000000

/* A connected loopback pair: *ret_a (connect side), *ret_b (accepted). */
static int
loop_pair(int *ret_a, int *ret_b)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = LOOP_TIMEOUT_S};
	socklen_t sl = sizeof(sin);
	int l, a = -1, b = -1, one = 1, i, *fds[2] = {&a, &b};

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sin, &sl) < 0)
		goto fail;
	a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a < 0 || connect(a, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		goto fail;
	b = accept(l, NULL, NULL);
	if (b < 0)
		goto fail;
	for (i = 0; i < 2; i++) {
		(void)setsockopt(
		    *fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		(void)setsockopt(
		    *fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void)setsockopt(
		    *fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	(void)close(l);
	*ret_a = a;
	*ret_b = b;
	return 0;
fail:
	i = -errno;
	(void)close(l);
	if (a >= 0)
		(void)close(a);
	return i;
}

/*
 * A connected loopback pair shared with a forked child.  Returns 0 in both
 * processes: in the child *ret_pid is 0 and *ret_fd its end, in the parent
 * *ret_pid is the child and *ret_fd the other end.  Or -errno.
 */
static int
loop_fork(int *ret_fd, pid_t *ret_pid)
{
	int a = -1, b = -1, r;
	pid_t pid;

	r = loop_pair(&a, &b);
	if (r < 0)
		return r;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		(void)close(a);
		(void)close(b);
		return r;
	}
	(void)close(pid == 0 ? b : a);
	*ret_fd = pid == 0 ? a : b;
	*ret_pid = pid;
	return 0;
}

/* Reap @pid; 0 if it exited 0. */
static int
loop_reap(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPROTO;
}

/* Stream @mib MiB over loopback; MiB/s in *ret_mibs. */
static int
loop_stream(unsigned long mib, double *ret_mibs)
{
	char *buf = malloc(LOOP_CHUNK);
	uint64_t total = (uint64_t)mib << 20, got = 0;
	int64_t t0 = 0;
	int fd, r;
	ssize_t n;
	pid_t pid;

	if (buf == NULL)
		return -ENOMEM;
	memset(buf, 0x5a, LOOP_CHUNK);
	r = loop_fork(&fd, &pid);
	if (r < 0)
		goto out;
	if (pid == 0) {
		uint64_t left = total;

		while (left > 0) {
			n = write(
			    fd, buf, left < LOOP_CHUNK ? left : LOOP_CHUNK);
			if (n <= 0)
				_exit(1);
			left -= (uint64_t)n;
		}
		_exit(0);
	}
	while (got < total) {
		n = read(fd, buf, LOOP_CHUNK);
		if (n <= 0)
			break;
		if (got == 0)
			t0 = bench_now_ns();
		got += (uint64_t)n;
	}
	*ret_mibs = (double)(got >> 20) / ((double)(bench_now_ns() - t0) / 1e9);
	(void)close(fd);
	r = loop_reap(pid);
	if (r == 0 && got < total)
		r = -EPIPE;
out:
	free(buf);
	return r;
}

static int
cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return a < b ? -1 : a > b;
}

/* @rounds one-byte round trips; p50 and p99 in microseconds. */
static int
loop_round_trips(unsigned long rounds, double *ret_p50, double *ret_p99)
{
	int64_t *lat = calloc(rounds, sizeof(*lat)), t;
	unsigned long i;
	char c = 'x';
	int fd, r;
	pid_t pid;

	if (lat == NULL)
		return -ENOMEM;
	r = loop_fork(&fd, &pid);
	if (r < 0)
		goto out;
	if (pid == 0) {
		while (read(fd, &c, 1) == 1)
			if (write(fd, &c, 1) != 1)
				_exit(1);
		_exit(0);
	}
	for (i = 0; i < rounds; i++) {
		t = bench_now_ns();
		if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1) {
			r = -EPIPE;
			break;
		}
		lat[i] = bench_now_ns() - t;
	}
	(void)close(fd);
	if (loop_reap(pid) < 0 && r == 0)
		r = -EPROTO;
	if (r == 0) {
		qsort(lat, rounds, sizeof(*lat), cmp_i64);
		*ret_p50 = (double)lat[rounds / 2] / 1000;
		*ret_p99 =
		    (double)lat[(size_t)((double)(rounds - 1) * 0.99)] / 1000;
	}
out:
	free(lat);
	return r;
}

/* Exit status: 0 after printing every row, 1 on failure, 2 on bad usage. */
int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"stream-mib", required_argument, NULL, 's'},
	    {"round-trips", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long mib = 1024, rounds = 20000;
	double mibs = 0, p50 = 0, p99 = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			r = bench_ulong("--stream-mib", optarg, 1, 65536, &mib);
		else if (c == 'n')
			r = bench_ulong("--round-trips", optarg, 10,
			    LOOP_MAX_ROUNDS, &rounds);
		else
			r = -EINVAL;
		if (r < 0) {
			fprintf(stderr, "usage: npufarm-bench-loopback "
					"[--stream-mib N] [--round-trips N]\n");
			return 2;
		}
	}
	(void)signal(SIGPIPE, SIG_IGN);
	r = loop_stream(mib, &mibs);
	if (r == 0)
		r = loop_round_trips(rounds, &p50, &p99);
	if (r < 0) {
		log_err("loopback: %s", strerror(-r));
		return 1;
	}
	printf("| loopback stream, one TCP connection (%lu MiB) | %.0f MiB/s "
	       "| - | - | - |\n",
	    mib, mibs);
	printf("| loopback round trip, 1 byte each way, p50 (%lu) | %.1f us | "
	       "- | - | - |\n",
	    rounds, p50);
	printf("| loopback round trip p99 | %.1f us | - | - | - |\n", p99);
	return 0;
}
