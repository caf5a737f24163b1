/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-bench-relay: what the broker's TVM RPC relay costs.  A fake
 * board dials the farm port with "server:KEY", a fake client REQUESTs KEY
 * and connects back with "client:MATCHKEY -timeout=T", and through that
 * relayed session the client measures
 *
 *  - session setup: REQUEST sent to SUCCESS received;
 *  - small round trips: kCallFunc(int) -> kReturn (EP-05, EP-06), one at a
 *    time as a TVM client does, p50 and p99;
 *  - download throughput: kCopyFromRemote of CHUNK bytes answered by a
 *    kCopyAck of CHUNK bytes, until TOTAL bytes have come (every byte is
 *    checked);
 *  - upload throughput: kCopyToRemote of CHUNK bytes answered by kReturn
 *    void, until TOTAL bytes have gone.
 *
 * The baseline is the same board and client code on a direct loopback
 * connection (the board listening like a TVM RPC server), measured in the
 * same run, alternating with the relayed runs, so every figure comes with a
 * ratio.  Output is markdown table rows on stdout (--header adds the table
 * header); progress goes to stderr.  Loopback only; every wait has a
 * timeout.  Timings are for reading, never for pass/fail.
 *
 * bench/run.sh runs it against a fresh broker as its relay phase; by hand:
 *   npufarm-broker --listen 127.0.0.1:0 --http 127.0.0.1:0 --db DB
 *       --ready-file READY &
 *   npufarm-bench-relay --farm 127.0.0.1:PORT --header
 * with PORT from READY's "farm" list.  Exit status: 0 after printing every
 * row, 1 when a run failed (the reason on stderr), 2 on bad usage.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "err.h"
#include "log.h"
#include "tvmrpc.h"
#include "tvmrpc_board.h"
#include "tvmrpc_client.h"

#define RELAY_MAX_REPEAT 20
/* Round trips before the timed ones, per run. */
#define RELAY_WARMUP     100
/* The session timeout the client asks for: longer than any run. */
#define RELAY_SESSION_T  "600"
/* Where the fake tensors live (any value: the board ignores it). */
#define RELAY_DATA       0x00007f0000001000ull

struct relay_opts {
	const char *farm;      /* broker farm HOST:PORT */
	unsigned long total;   /* bytes each way per run */
	unsigned long chunk;   /* bytes per copy packet */
	unsigned long rounds;  /* timed round trips per run */
	unsigned long repeat;  /* runs per path, alternating */
	unsigned long timeout; /* ms bound on every wait */
	bool header;           /* print the table header first */
	long pid;              /* the broker's pid: its CPU is measured */
	bool split_writes;     /* peers write like TVM's (Nagle, split) */
};

/* Figures of one path (relayed or direct) over all its runs. */
struct relay_path {
	const char *name;
	bool broker;
	double setup_ms[RELAY_MAX_REPEAT];
	double down_mibs[RELAY_MAX_REPEAT];
	double up_mibs[RELAY_MAX_REPEAT];
	double down_cpu_ms[RELAY_MAX_REPEAT]; /* the broker's, per transfer */
	double up_cpu_ms[RELAY_MAX_REPEAT];
	uint32_t *rt_ns; /* repeat * rounds samples */
	size_t nrt;
};

static int
relay_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
relay_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double
relay_median(const double *v, size_t n)
{
	double tmp[RELAY_MAX_REPEAT];

	memcpy(tmp, v, n * sizeof(*v));
	qsort(tmp, n, sizeof(*tmp), relay_cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* The @q-th percentile (0..100) of sorted samples, in microseconds. */
static double
relay_pct_us(const uint32_t *sorted, size_t n, unsigned q)
{
	size_t i = n * q / 100;

	if (i >= n)
		i = n - 1;
	return sorted[i] / 1000.0;
}

/*
 * CPU time @pid has used so far, all its threads, in ms (the scheduler's
 * nanosecond account, /proc/PID/task/TID/schedstat: the 10 ms ticks of
 * /proc/PID/stat are too coarse for a 64 MiB transfer); -1 without one.
 */
static double
relay_cpu_ms(long pid)
{
	char path[64], tpath[352];
	unsigned long long ns, total = 0;
	struct dirent *d;
	DIR *dir;
	FILE *f;

	if (pid <= 0)
		return -1;
	(void)snprintf(path, sizeof(path), "/proc/%ld/task", pid);
	dir = opendir(path);
	if (dir == NULL)
		return -1;
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		(void)snprintf(
		    tpath, sizeof(tpath), "%s/%s/schedstat", path, d->d_name);
		f = fopen(tpath, "r");
		if (f == NULL)
			continue; /* the thread just ended */
		if (fscanf(f, "%llu", &ns) == 1)
			total += ns;
		fclose(f);
	}
	closedir(dir);
	return total / 1e6;
}

/* Small round trips: @warm untimed, then o->rounds timed into @p. */
static int
relay_round_trips(const struct relay_opts *o, struct tvmrpc_client *cl,
    struct relay_path *p, struct npufarm_err *err)
{
	struct tvmrpc_packet pkt;
	struct tvmrpc_msg m;
	unsigned long i;
	int64_t t0, v = 0;
	int r;

	for (i = 0; i < RELAY_WARMUP + o->rounds; i++) {
		tvmrpc_msg_call_func(&m, TVMRPC_BOARD_HANDLE, (int64_t)i);
		t0 = bench_now_ns();
		r = tvmrpc_client_call(cl, &m, (int)o->timeout, &pkt, err);
		if (r != 0)
			return r > 0 ? -EPROTO : r;
		if (i >= RELAY_WARMUP)
			p->rt_ns[p->nrt++] = (uint32_t)(bench_now_ns() - t0);
		if (tvmrpc_packet_return_int(&pkt, &v) < 0 ||
		    v != (int64_t)i + 1)
			return err_set(err, -EBADMSG,
			    "round trip %lu: wrong reply (code %d, N=%llu)", i,
			    pkt.code, (unsigned long long)pkt.len);
	}
	return 0;
}

/* kCopyFromRemote until o->total bytes came back; MiB/s in *ret_mibs. */
static int
relay_download(const struct relay_opts *o, struct tvmrpc_client *cl,
    double *ret_mibs, struct npufarm_err *err)
{
	const unsigned char *pat = tvmrpc_board_pattern();
	struct tvmrpc_packet pkt;
	struct tvmrpc_msg m;
	unsigned long got = 0;
	size_t off, n;
	int64_t t0;
	int r;

	r = tvmrpc_msg_copy_from_remote(&m, RELAY_DATA, o->chunk);
	if (r < 0)
		return err_set(err, r, "bad chunk size %lu", o->chunk);
	t0 = bench_now_ns();
	while (got < o->total) {
		r = tvmrpc_client_call(cl, &m, (int)o->timeout, &pkt, err);
		if (r != 0)
			return r > 0 ? -EPROTO : r;
		if (pkt.code != TVMRPC_COPY_ACK || pkt.body_len != o->chunk)
			return err_set(err, -EBADMSG,
			    "download: code %d with %zu bytes for %lu",
			    pkt.code, pkt.body_len, o->chunk);
		for (off = 0; off < pkt.body_len; off += n) {
			n = pkt.body_len - off;
			if (n > TVMRPC_BOARD_PATTERN_LEN)
				n = TVMRPC_BOARD_PATTERN_LEN;
			if (memcmp(pkt.body + off, pat, n) != 0)
				return err_set(err, -EBADMSG,
				    "download: bytes changed in transit "
				    "(after %lu bytes)",
				    got + (unsigned long)off);
		}
		got += o->chunk;
	}
	*ret_mibs = (double)got / (1 << 20) / ((bench_now_ns() - t0) / 1e9);
	return 0;
}

/*
 * kCopyToRemote until o->total bytes went out; MiB/s in *ret_mibs.  @body
 * has room for the DLTensor part and o->chunk bytes (the pattern).
 */
static int
relay_upload(const struct relay_opts *o, struct tvmrpc_client *cl,
    unsigned char *body, double *ret_mibs, struct npufarm_err *err)
{
	static const unsigned char void_body[8] = {1, 0, 0, 0, 4, 0, 0, 0};
	struct tvmrpc *c = tvmrpc_client_conn(cl);
	struct tvmrpc_packet pkt;
	struct tvmrpc_msg m;
	unsigned long sent = 0;
	size_t hlen, off, n;
	int64_t t0;
	int r;

	r = tvmrpc_msg_copy_to_remote(&m, RELAY_DATA, o->chunk);
	if (r < 0)
		return err_set(err, r, "bad chunk size %lu", o->chunk);
	hlen = m.len - TVMRPC_HEADER_SIZE;
	memcpy(body, m.b + TVMRPC_HEADER_SIZE, hlen);
	for (off = 0; off < o->chunk; off += n) {
		n = o->chunk - off;
		if (n > TVMRPC_BOARD_PATTERN_LEN)
			n = TVMRPC_BOARD_PATTERN_LEN;
		memcpy(body + hlen + off, tvmrpc_board_pattern(), n);
	}
	t0 = bench_now_ns();
	while (sent < o->total) {
		r = tvmrpc_send_packet(
		    c, TVMRPC_COPY_TO_REMOTE, body, hlen + o->chunk);
		if (r < 0)
			return err_set(err, r, "upload: %s", strerror(-r));
		r = tvmrpc_recv_packet(c, (int)o->timeout, &pkt);
		if (r != 0)
			return err_set(err, r > 0 ? -ECONNABORTED : r,
			    "upload: waiting for kReturn: %s",
			    r > 0 ? "end of stream" : strerror(-r));
		if (pkt.code != TVMRPC_RETURN || pkt.body_len != 8 ||
		    memcmp(pkt.body, void_body, 8) != 0)
			return err_set(err, -EBADMSG,
			    "upload: code %d, N=%llu instead of kReturn void",
			    pkt.code, (unsigned long long)pkt.len);
		sent += o->chunk;
	}
	*ret_mibs = (double)sent / (1 << 20) / ((bench_now_ns() - t0) / 1e9);
	return 0;
}

/*
 * One run on one path: a board, a client session, every measurement,
 * kShutdown, and the board's own account of the session.
 */
static int
relay_run(const struct relay_opts *o, struct relay_path *p, unsigned run,
    const char *key, unsigned char *body, struct npufarm_err *err)
{
	struct tvmrpc_board_config bcfg = {
	    .farm = p->broker ? o->farm : NULL,
	    .key = key,
	    .mode = TVMRPC_BOARD_OK,
	    .io_timeout_ms = (int)o->timeout,
	    .split_hello = o->split_writes,
	};
	struct tvmrpc_client_config ccfg = {
	    .tracker = p->broker ? o->farm : NULL,
	    .key = key,
	    .priority = 1,
	    .timeout = RELAY_SESSION_T,
	    .io_timeout_ms = (int)o->timeout,
	    .grant_timeout_ms = (int)o->timeout,
	    .split_writes = o->split_writes,
	};
	struct tvmrpc_board_report rep;
	struct tvmrpc_client *cl = NULL;
	struct tvmrpc_board *b = NULL;
	double cpu, cpu2, cpu3;
	int64_t t0;
	int r;

	r = tvmrpc_board_start(&bcfg, &b, err);
	if (r < 0)
		return r;
	ccfg.direct = tvmrpc_board_addr(b);
	t0 = bench_now_ns();
	r = tvmrpc_client_open(&ccfg, &cl, err);
	if (r < 0)
		goto out;
	p->setup_ms[run] = (bench_now_ns() - t0) / 1e6;
	r = tvmrpc_client_init(cl, (int)o->timeout, err);
	if (r == 0)
		r = relay_round_trips(o, cl, p, err);
	cpu = relay_cpu_ms(p->broker ? o->pid : 0);
	if (r == 0)
		r = relay_download(o, cl, &p->down_mibs[run], err);
	cpu2 = relay_cpu_ms(p->broker ? o->pid : 0);
	if (r == 0)
		r = relay_upload(o, cl, body, &p->up_mibs[run], err);
	cpu3 = relay_cpu_ms(p->broker ? o->pid : 0);
	/* Per 64 MiB, whatever --total-mib was. */
	p->down_cpu_ms[run] = (cpu2 - cpu) * (64.0 * (1 << 20)) / o->total;
	p->up_cpu_ms[run] = (cpu3 - cpu2) * (64.0 * (1 << 20)) / o->total;
	if (r == 0)
		r = tvmrpc_client_shutdown(cl);
	if (r == 0 && tvmrpc_board_wait(b, (int)o->timeout) < 0)
		r = err_set(err, -ETIMEDOUT,
		    "the board never saw the session end after kShutdown");
out:
	cl = tvmrpc_client_free(cl);
	(void)tvmrpc_board_stop(b, &rep);
	if (r == 0 && (rep.status != 0 || !rep.shutdown))
		r = err_set(err, -EPROTO, "board: %s (shutdown %s, end %d)",
		    rep.status != 0 ? rep.detail : "no error",
		    rep.shutdown ? "seen" : "not seen", rep.end);
	if (r < 0)
		err_prefix(err, "%s run %u", p->name, run + 1);
	return r;
}

static void
relay_row(const char *metric, const char *broker, const char *direct,
    const char *ratio, const char *target)
{
	printf("| %s | %s | %s | %s | %s |\n", metric, broker, direct, ratio,
	    target);
}

/* A throughput row: medians of @rel and @dir over o->repeat runs. */
static void
relay_rate_row(const struct relay_opts *o, const char *what, const char *packet,
    const double *rel, const double *dir)
{
	char m[160], b[64], d[64], ra[64];
	double x = relay_median(rel, o->repeat),
	       y = relay_median(dir, o->repeat);

	(void)snprintf(m, sizeof(m),
	    "relay %s, %lu MiB as %lu KiB %s (median of %lu)", what,
	    o->total >> 20, o->chunk >> 10, packet, o->repeat);
	(void)snprintf(b, sizeof(b), "%.0f MiB/s", x);
	(void)snprintf(d, sizeof(d), "%.0f MiB/s", y);
	(void)snprintf(ra, sizeof(ra), "%.2f", x / y);
	relay_row(m, b, d, ra, ">= 0.5");
}

/* The broker's CPU per 64 MiB: the median of @ms over o->repeat runs. */
static void
relay_cpu_row(const struct relay_opts *o, const char *what, const char *packet,
    const double *ms)
{
	char m[160], b[64];

	(void)snprintf(m, sizeof(m),
	    "relay CPU per 64 MiB %s, as %lu KiB %s (broker, all threads; "
	    "median of %lu)",
	    what, o->chunk >> 10, packet, o->repeat);
	(void)snprintf(b, sizeof(b), "%.1f ms", relay_median(ms, o->repeat));
	relay_row(m, b, "-", "-", "-");
}

static void
relay_report(
    const struct relay_opts *o, struct relay_path *rel, struct relay_path *dir)
{
	char m[160], b[64], d[64], ra[64];
	double x, y;
	size_t n = o->repeat;

	relay_rate_row(
	    o, "download", "kCopyAck", rel->down_mibs, dir->down_mibs);
	relay_rate_row(
	    o, "upload", "kCopyToRemote", rel->up_mibs, dir->up_mibs);
	if (o->pid > 0) {
		relay_cpu_row(o, "download", "kCopyAck", rel->down_cpu_ms);
		relay_cpu_row(o, "upload", "kCopyToRemote", rel->up_cpu_ms);
	}
	qsort(rel->rt_ns, rel->nrt, sizeof(*rel->rt_ns), relay_cmp_u32);
	qsort(dir->rt_ns, dir->nrt, sizeof(*dir->rt_ns), relay_cmp_u32);
	x = relay_pct_us(rel->rt_ns, rel->nrt, 50);
	y = relay_pct_us(dir->rt_ns, dir->nrt, 50);
	(void)snprintf(
	    m, sizeof(m), "call round trip p50 (%zu calls)", rel->nrt);
	(void)snprintf(b, sizeof(b), "%.1f us", x);
	(void)snprintf(d, sizeof(d), "%.1f us", y);
	(void)snprintf(ra, sizeof(ra), "%.2fx", x / y);
	relay_row(m, b, d, ra, "-");
	(void)snprintf(m, sizeof(m), "added latency per round trip (p50)");
	(void)snprintf(b, sizeof(b), "+%.1f us", x - y);
	relay_row(m, b, "-", "-", "microseconds, never ~40 ms");
	x = relay_pct_us(rel->rt_ns, rel->nrt, 99);
	y = relay_pct_us(dir->rt_ns, dir->nrt, 99);
	(void)snprintf(m, sizeof(m), "call round trip p99");
	(void)snprintf(b, sizeof(b), "%.1f us", x);
	(void)snprintf(d, sizeof(d), "%.1f us", y);
	(void)snprintf(ra, sizeof(ra), "%.2fx", x / y);
	relay_row(m, b, d, ra, "-");

	x = relay_median(rel->setup_ms, n);
	y = relay_median(dir->setup_ms, n);
	(void)snprintf(m, sizeof(m),
	    "session setup (REQUEST to SUCCESS; direct: connect to SUCCESS)");
	(void)snprintf(b, sizeof(b), "%.2f ms", x);
	(void)snprintf(d, sizeof(d), "%.2f ms", y);
	(void)snprintf(ra, sizeof(ra), "%.1fx", x / y);
	relay_row(m, b, d, ra, "-");
}

static void
relay_usage(FILE *f)
{
	fprintf(f,
	    "usage: npufarm-bench-relay --farm HOST:PORT [--total-mib N]\n"
	    "         [--chunk-kib K] [--rounds N] [--repeat R]\n"
	    "         [--timeout-ms MS] [--header] [--split-writes]\n"
	    "         [--pid BROKER_PID]\n"
	    "  --pid           also print the broker's CPU per 64 MiB each "
	    "way\n"
	    "  --split-writes  the client writes like TVM's (Nagle on, each "
	    "tracker\n"
	    "                  frame in two writes, the hello in three); the "
	    "board's\n"
	    "                  hello is split too\n"
	    "Prints markdown table rows: metric | through broker | "
	    "direct (same run) | ratio | target\n");
}

static int
relay_parse(struct relay_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"farm", required_argument, NULL, 'f'},
	    {"total-mib", required_argument, NULL, 't'},
	    {"chunk-kib", required_argument, NULL, 'c'},
	    {"rounds", required_argument, NULL, 'n'},
	    {"repeat", required_argument, NULL, 'r'},
	    {"timeout-ms", required_argument, NULL, 'T'},
	    {"header", no_argument, NULL, 'H'},
	    {"split-writes", no_argument, NULL, 'W'},
	    {"pid", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long v;
	int c, r = 0;

	while (
	    r == 0 && (c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->farm = optarg;
			break;
		case 't':
			r = bench_ulong("--total-mib", optarg, 1, 4096, &v);
			o->total = v << 20;
			break;
		case 'c':
			r = bench_ulong("--chunk-kib", optarg, 1, 65536, &v);
			o->chunk = v << 10;
			break;
		case 'n':
			r = bench_ulong(
			    "--rounds", optarg, 1, 1000000, &o->rounds);
			break;
		case 'r':
			r = bench_ulong("--repeat", optarg, 1, RELAY_MAX_REPEAT,
			    &o->repeat);
			break;
		case 'T':
			r = bench_ulong(
			    "--timeout-ms", optarg, 100, 600000, &o->timeout);
			break;
		case 'H':
			o->header = true;
			break;
		case 'W':
			o->split_writes = true;
			break;
		case 'p':
			r = bench_ulong("--pid", optarg, 1, 1ul << 22, &v);
			o->pid = (long)v;
			break;
		case 'h':
			relay_usage(stdout);
			exit(0);
		default:
			r = -EINVAL;
			break;
		}
	}
	if (r == 0 && (o->farm == NULL || optind != argc)) {
		log_err("--farm is required");
		r = -EINVAL;
	}
	if (r == 0 && o->chunk > o->total) {
		log_err("--chunk-kib must not exceed --total-mib");
		r = -EINVAL;
	}
	if (r < 0)
		relay_usage(stderr);
	return r;
}

/* Exit status: 0 after printing every row, 1 on failure, 2 on bad usage. */
int
main(int argc, char **argv)
{
	struct relay_opts o = {
	    .total = 64ul << 20,
	    .chunk = 1ul << 20,
	    .rounds = 2000,
	    .repeat = 3,
	    .timeout = 10000,
	};
	struct relay_path paths[2] = {
	    {.name = "direct", .broker = false},
	    {.name = "broker", .broker = true},
	};
	struct npufarm_err err = {0};
	unsigned char *body = NULL;
	char key[64];
	unsigned run, k;
	int r = 0;

	if (relay_parse(&o, argc, argv) < 0)
		return 2;
	o.total -= o.total % o.chunk;
	/* A key of our own, so a shared broker's other boards stay out. */
	(void)snprintf(key, sizeof(key), "relaybench%ld", (long)getpid());
	body = malloc(TVMRPC_MSG_MAX + o.chunk);
	for (k = 0; k < 2; k++)
		paths[k].rt_ns = calloc(o.repeat * o.rounds, sizeof(uint32_t));
	if (body == NULL || paths[0].rt_ns == NULL || paths[1].rt_ns == NULL) {
		log_err("out of memory");
		r = -ENOMEM;
		goto out;
	}
	for (run = 0; r == 0 && run < o.repeat; run++) {
		for (k = 0; r == 0 && k < 2; k++) {
			fprintf(stderr, "relay: %s run %u of %lu\n",
			    paths[k].name, run + 1, o.repeat);
			r = relay_run(&o, &paths[k], run, key, body, &err);
		}
	}
	if (r < 0) {
		log_err("%s", err.msg);
		goto out;
	}
	if (o.header)
		printf(
		    "| metric | through broker | direct (same run) | ratio | "
		    "target |\n|---|---|---|---|---|\n");
	relay_report(&o, &paths[1], &paths[0]);
out:
	free(body);
	free(paths[0].rt_ns);
	free(paths[1].rt_ns);
	return r < 0 ? 1 : 0;
}
