/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-bench-agent: the agent's footprint and how fast it turns a
 * session timeout around, against a running broker and one npufarm-agent
 * serving the key (bench/run.sh starts both, the agent on the fake TVM
 * runtime).  Prints markdown table rows:
 *
 *   - the agent's resident memory once linked and offering its board,
 *     and again after all the sessions below, against a minimal C
 *     process (sleep(1)) measured in the same run;
 *   - timeout -> client error: how long after the session deadline the
 *     client holding a hung call gets its RPCSessionTimeoutError;
 *   - timeout -> leasable: how long after the deadline a REQUEST that was
 *     waiting for the board is granted it (the child killed and reaped,
 *     the work dir removed, the board offered again);
 *   both against the round trip of one call through the same broker and
 *   agent (the baseline), medians over --sessions runs;
 *   - upload and download throughput of a session through broker and
 *     agent (tvm.rpc.server.upload/download of --transfer-mib), against
 *     the same runtime in a session child the bench starts itself and talks
 *     to directly over its socketpair (no relay at all).
 *
 * The deadline is taken from the moment the client's handshake completed,
 * a little after the agent started it, so the latencies are slight
 * overestimates by at most one loopback round trip.
 *
 *   npufarm-bench-agent --farm HOST:PORT --agent-pid PID --baseline-pid PID
 *	--runtime PATH/libtvm_runtime.so [--key KEY] [--sessions N]
 *	[--timeout-ms MS] [--transfer-mib N]
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "err.h"
#include "frame.h"
#include "supervisor.h"
#include "tvmrpc.h"
#include "tvmrpc_client.h"

#define IO_MS 10000

static const char *farm, *key = "rk3588";
/* --split-writes: the client writes like TVM's (Nagle on, split frames). */
static bool split_writes;

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct tvmrpc_client_config
client_config(const char *timeout)
{
	return (struct tvmrpc_client_config){
	    .tracker = farm,
	    .key = key,
	    .timeout = timeout,
	    .io_timeout_ms = IO_MS,
	    .grant_timeout_ms = IO_MS,
	    .split_writes = split_writes,
	};
}

static _Noreturn void
die(const char *what, const struct npufarm_err *err)
{
	fprintf(stderr, "npufarm-bench-agent: %s: %s\n", what, err->msg);
	exit(1);
}

static uint64_t
global_func(struct tvmrpc_client *cl, const char *name)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	struct npufarm_err err;

	if (tvmrpc_msg_get_global_func(&m, name) < 0 ||
	    tvmrpc_client_call(cl, &m, IO_MS, &p, &err) != 0)
		die(name, &err);
	return frame_get_le64(p.body + 8);
}

/* A REQUEST waiting for the board while it is leased. */
struct waiter {
	pthread_t thread;
	int64_t granted_ns;
	int r;
	struct npufarm_err err;
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct tvmrpc_client_config cfg = client_config("10");
	struct tvmrpc_client *cl = NULL;
	struct tvmpeer_grant g;

	w->r = tvmrpc_client_request(&cfg, &g, &w->err);
	w->granted_ns = bench_now_ns();
	if (w->r != 0)
		return NULL;
	/* Take the grant and end the session at once: the board is free
	 * for the next run. */
	w->r = tvmrpc_client_connect(&cfg, &g, &cl, &w->err);
	if (w->r == 0) {
		(void)tvmrpc_client_shutdown(cl);
		tvmrpc_client_free(cl);
	}
	return NULL;
}

/* The handle of global function @name on raw connection @c. */
static uint64_t
raw_func(struct tvmrpc *c, const char *name)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;

	if (tvmrpc_msg_get_global_func(&m, name) < 0 ||
	    tvmrpc_send_msg(c, &m) < 0 || tvmrpc_recv_packet(c, IO_MS, &p) ||
	    p.code != TVMRPC_RETURN || p.body_len < 16) {
		fprintf(stderr, "npufarm-bench-agent: no function %s\n", name);
		exit(1);
	}
	return frame_get_le64(p.body + 8);
}

/*
 * upload("bench.bin", @n bytes), then download("bench.bin"), on @c; the
 * MiB/s of each into @ret_up and @ret_down.
 */
static void
transfer(struct tvmrpc *c, const unsigned char *data, size_t n, double *ret_up,
    double *ret_down)
{
	uint64_t up = raw_func(c, "tvm.rpc.server.upload");
	uint64_t down = raw_func(c, "tvm.rpc.server.download");
	unsigned char h[64], *q;
	struct tvmrpc_packet p;
	size_t hl;
	int64_t t0;

	tvmrpc_set_max_packet(c, (uint64_t)n + 4096);
	/* kCallFunc(up, str "bench.bin", bytes data) */
	q = h + 12;
	frame_put_le64(q, up);
	frame_put_le32(q + 8, 2);
	frame_put_le32(q + 12, 11); /* kTVMStr */
	frame_put_le32(q + 16, 12); /* kTVMBytes */
	frame_put_le64(q + 20, 9);
	memcpy(q + 28, "bench.bin", 9);
	frame_put_le64(q + 37, n);
	hl = 12 + 45;
	tvmrpc_put_header(h, hl - 8 + n, TVMRPC_CALL_FUNC);
	t0 = bench_now_ns();
	if (tvmrpc_send(c, h, hl) < 0 || tvmrpc_send(c, data, n) < 0 ||
	    tvmrpc_recv_packet(c, IO_MS * 6, &p) != 0 ||
	    p.code != TVMRPC_RETURN) {
		fprintf(stderr, "npufarm-bench-agent: upload failed\n");
		exit(1);
	}
	*ret_up = (double)n / 1048576.0 / ((double)(bench_now_ns() - t0) / 1e9);
	/* kCallFunc(down, str "bench.bin") */
	frame_put_le64(q, down);
	frame_put_le32(q + 8, 1);
	frame_put_le32(q + 12, 11);
	frame_put_le64(q + 16, 9);
	memcpy(q + 24, "bench.bin", 9);
	hl = 12 + 33;
	tvmrpc_put_header(h, hl - 8, TVMRPC_CALL_FUNC);
	t0 = bench_now_ns();
	if (tvmrpc_send(c, h, hl) < 0 ||
	    tvmrpc_recv_packet(c, IO_MS * 6, &p) != 0 ||
	    p.code != TVMRPC_RETURN || p.body_len < n) {
		fprintf(stderr, "npufarm-bench-agent: download failed\n");
		exit(1);
	}
	*ret_down =
	    (double)n / 1048576.0 / ((double)(bench_now_ns() - t0) / 1e9);
}

/* The baseline: the runtime in a session child of our own, direct. */
static void
transfer_direct(const char *runtime, const unsigned char *data, size_t n,
    double *ret_up, double *ret_down)
{
	char dir[] = "/tmp/npufarm-bench-agent.XXXXXX";
	struct supervisor_config sc = {.stderr_fd = -1};
	struct supervisor_end end;
	struct npufarm_err err;
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	struct tvmrpc *c;
	pid_t pid;
	int fd;

	if (mkdtemp(dir) == NULL)
		exit(1);
	sc.runtime_path = runtime;
	sc.workdir = dir;
	if (supervisor_session_start(&sc, &fd, &pid, &err) < 0)
		die("direct session", &err);
	if (tvmrpc_new_fd(fd, IO_MS, &c) < 0)
		exit(1);
	tvmrpc_msg_init_server(&m);
	if (tvmrpc_send_msg(c, &m) < 0 || tvmrpc_recv_packet(c, IO_MS, &p) ||
	    p.code != TVMRPC_RETURN)
		exit(1);
	transfer(c, data, n, ret_up, ret_down);
	tvmrpc_free(c); /* closes fd: the child's ServerLoop ends */
	(void)supervisor_session_reap(&sc, pid, true, &end, &err);
	(void)rmdir(dir);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"farm", required_argument, NULL, 'f'},
	    {"agent-pid", required_argument, NULL, 'a'},
	    {"baseline-pid", required_argument, NULL, 'b'},
	    {"key", required_argument, NULL, 'k'},
	    {"sessions", required_argument, NULL, 'n'},
	    {"timeout-ms", required_argument, NULL, 't'},
	    {"runtime", required_argument, NULL, 'r'},
	    {"transfer-mib", required_argument, NULL, 'x'},
	    {"split-writes", no_argument, NULL, 'W'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long agent_pid = 0, base_pid = 0, n = 10, tmo_ms = 300;
	unsigned long xfer_mib = 32;
	const char *runtime = NULL;
	double up_farm, down_farm, up_direct, down_direct;
	unsigned char *blob;
	double *err_ms, *lease_ms, *rtt_ms, T;
	struct tvmrpc_client_config cfg;
	struct tvmrpc_client *cl;
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	struct npufarm_err err;
	long rss0, rss1, base;
	char tstr[32];
	int64_t t0, t1;
	uint64_t fn;
	size_t i;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			farm = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'a':
			if (bench_ulong("--agent-pid", optarg, 1, 1UL << 31,
				&agent_pid) < 0)
				return 2;
			break;
		case 'b':
			if (bench_ulong("--baseline-pid", optarg, 1, 1UL << 31,
				&base_pid) < 0)
				return 2;
			break;
		case 'n':
			if (bench_ulong("--sessions", optarg, 1, 10000, &n) < 0)
				return 2;
			break;
		case 't':
			if (bench_ulong(
				"--timeout-ms", optarg, 10, 60000, &tmo_ms) < 0)
				return 2;
			break;
		case 'r':
			runtime = optarg;
			break;
		case 'W':
			split_writes = true;
			break;
		case 'x':
			if (bench_ulong(
				"--transfer-mib", optarg, 1, 60, &xfer_mib) < 0)
				return 2;
			break;
		default:
			return 2;
		}
	}
	if (farm == NULL || agent_pid == 0 || base_pid == 0 ||
	    runtime == NULL) {
		fprintf(stderr,
		    "usage: npufarm-bench-agent --farm HOST:PORT "
		    "--agent-pid PID --baseline-pid PID --runtime PATH "
		    "[--key KEY] [--sessions N] [--timeout-ms MS] "
		    "[--transfer-mib N] [--split-writes]\n");
		return 2;
	}
	err_ms = calloc(n, sizeof(double));
	lease_ms = calloc(n, sizeof(double));
	rtt_ms = calloc(n * 20, sizeof(double));
	if (err_ms == NULL || lease_ms == NULL || rtt_ms == NULL)
		return 1;
	rss0 = bench_rss_kib((long)agent_pid);
	base = bench_rss_kib((long)base_pid);
	T = (double)tmo_ms / 1000.0;
	(void)snprintf(tstr, sizeof(tstr), "%g", T);

	/* Baseline: one call's round trip through broker and agent. */
	cfg = client_config("60");
	if (tvmrpc_client_open(&cfg, &cl, &err) != 0 ||
	    tvmrpc_client_init(cl, IO_MS, &err) != 0)
		die("baseline session", &err);
	fn = global_func(cl, "rpc.test.addone");
	for (i = 0; i < n * 20; i++) {
		tvmrpc_msg_call_func(&m, fn, (int64_t)i);
		t0 = bench_now_ns();
		if (tvmrpc_client_call(cl, &m, IO_MS, &p, &err) != 0)
			die("baseline call", &err);
		rtt_ms[i] = (double)(bench_now_ns() - t0) / 1e6;
	}
	(void)tvmrpc_client_shutdown(cl);
	tvmrpc_client_free(cl);

	for (i = 0; i < n; i++) {
		struct waiter w = {0};

		cfg = client_config(tstr);
		if (tvmrpc_client_open(&cfg, &cl, &err) != 0)
			die("timeout session", &err);
		t0 = bench_now_ns(); /* ~ the agent's deadline start */
		if (tvmrpc_client_init(cl, IO_MS, &err) != 0)
			die("timeout session init", &err);
		fn = global_func(cl, "npufarm.test.hang");
		if (pthread_create(&w.thread, NULL, waiter_main, &w) != 0)
			return 1;
		tvmrpc_msg_call_func(&m, fn, 0);
		if (tvmrpc_client_call(cl, &m, IO_MS, &p, &err) !=
		    TVMRPC_CLIENT_E_REMOTE) {
			fprintf(stderr, "npufarm-bench-agent: a hung call was "
					"not answered by a kException\n");
			return 1;
		}
		t1 = bench_now_ns();
		(void)tvmrpc_client_shutdown(cl);
		tvmrpc_client_free(cl);
		(void)pthread_join(w.thread, NULL);
		if (w.r != 0)
			die("waiting request", &w.err);
		err_ms[i] = (double)(t1 - t0) / 1e6 - T * 1e3;
		lease_ms[i] = (double)(w.granted_ns - t0) / 1e6 - T * 1e3;
	}
	usleep(200000);
	rss1 = bench_rss_kib((long)agent_pid);

	/* Bulk transfers: through broker and agent, then direct. */
	blob = malloc(xfer_mib << 20);
	if (blob == NULL)
		return 1;
	for (i = 0; i < (xfer_mib << 20); i++)
		blob[i] = (unsigned char)(i * 2654435761u >> 24);
	cfg = client_config("120");
	if (tvmrpc_client_open(&cfg, &cl, &err) != 0 ||
	    tvmrpc_client_init(cl, IO_MS, &err) != 0)
		die("transfer session", &err);
	transfer(
	    tvmrpc_client_conn(cl), blob, xfer_mib << 20, &up_farm, &down_farm);
	(void)tvmrpc_client_shutdown(cl);
	tvmrpc_client_free(cl);
	transfer_direct(
	    runtime, blob, xfer_mib << 20, &up_direct, &down_direct);
	free(blob);

	{
		double rtt = median(rtt_ms, n * 20);
		double e = median(err_ms, n), l = median(lease_ms, n);

		printf("| agent resident memory, idle and offering | %.1f MB | "
		       "%.1f MB (sleep(1)) | %.2f | <= 4 MB |\n",
		    (double)rss0 / 1024, (double)base / 1024,
		    (double)rss0 / (double)base);
		printf("| agent resident memory after %lu timed-out sessions | "
		       "%.1f MB | %.1f MB (sleep(1)) | %.2f | no growth |\n",
		    n + 1, (double)rss1 / 1024, (double)base / 1024,
		    (double)rss1 / (double)base);
		printf("| timeout -> client error, ms after the %g s deadline "
		       "(median of %lu) | %.2f ms | %.3f ms (one call's round "
		       "trip) | %.1f | - |\n",
		    T, n, e, rtt, e / rtt);
		printf("| timeout -> board leasable again, ms after the "
		       "deadline (median of %lu) | %.2f ms | %.3f ms (one "
		       "call's round trip) | %.1f | <= 50 ms |\n",
		    n, l, rtt, l / rtt);
		printf("| upload %lu MiB through broker and agent "
		       "(tvm.rpc.server.upload) | %.0f MiB/s | %.0f MiB/s (the "
		       "runtime direct, no relay) | %.2f | - |\n",
		    xfer_mib, up_farm, up_direct, up_farm / up_direct);
		printf("| download %lu MiB through broker and agent "
		       "(tvm.rpc.server.download) | %.0f MiB/s | %.0f MiB/s "
		       "(the runtime direct, no relay) | %.2f | - |\n",
		    xfer_mib, down_farm, down_direct, down_farm / down_direct);
	}
	free(err_ms);
	free(lease_ms);
	free(rtt_ms);
	return 0;
}
