/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-bench-tracker: load generator for a TVM tracker port (normally a
 * running npufarm-broker; any TVM tracker works).  It measures
 *
 *  - lease cycles per second: N fake servers and M clients on one epoll
 *    loop.  Each client keeps its connection and has one REQUEST out at a
 *    time; when the grant arrives the granted server PUTs a fresh matchkey
 *    at once (TVM's way of returning a board) and the client asks again;
 *  - grant latency, REQUEST sent to grant received, over the same run;
 *  - the tracker's CPU per cycle (utime+stime from /proc/PID/stat);
 *  - with many idle registered boards: the tracker's VmRSS and SUMMARY
 *    latency.
 *
 * The loop uses epoll so that its own cost does not grow with the number
 * of idle connections.
 *
 * Every figure has a baseline measured in the same run: a framed echo
 * server (bench_echo.c) driven by the identical loop and traffic shape, so
 * results are printed as ratios as well as absolute numbers.  Output is a
 * set of markdown table rows on stdout; progress goes to stderr.  Every
 * wait has a timeout and every loop a bound; loopback only.  Timings are
 * for reading, never for pass/fail.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_echo.h"
#include "bench_util.h"
#include "err.h"
#include "log.h"
#include "netaddr.h"
#include "tvmpeer.h"

/* Bound on connecting, registering and each blocking exchange. */
#define BENCH_IO_TIMEOUT_MS 5000
/* A run fails when no frame at all arrives for this long. */
#define BENCH_STALL_MS      5000
/* After the window, outstanding replies must arrive within this. */
#define BENCH_DRAIN_MS      5000
/* Latency samples kept per run (later ones are counted, not kept). */
#define BENCH_MAX_SAMPLES   (4u << 20)
#define BENCH_MAX_SERVERS   100000
#define BENCH_MAX_IDLE      100000
#define BENCH_KEY           "bench"
/* Matchkeys are BENCH_KEY ":0." + 6 digits of server index + 9 of count. */
/* Events handled per epoll_wait(). */
#define BENCH_EVENTS        64
#define BENCH_IDX_DIGITS    6
#define BENCH_GEN_DIGITS    9

struct bench_opts {
	const char *tracker;     /* HOST:PORT of the tracker under test */
	pid_t pid;               /* its pid for /proc, 0 when unknown */
	unsigned long servers;   /* fake servers in the cycle run */
	unsigned long clients;   /* clients in the cycle run */
	unsigned long seconds;   /* measured window of the cycle run */
	unsigned long warmup_ms; /* before the window opens */
	unsigned long idle;      /* boards registered in the idle run */
	unsigned long idle_keys; /* keys they are spread over */
	unsigned long summaries; /* SUMMARY requests timed */
	bool split_writes;       /* as TVM's clients: Nagle on, 2 writes */
	bool no_delayed_ack;     /* ACK partial frames at once */
	bool run_cycles;
	bool run_idle;
};

/* One tracker connection of the load loop. */
struct lconn {
	struct tvmpeer *peer; /* owned */
	unsigned long gen;    /* server: matchkeys PUT so far */
	unsigned awaiting;    /* replies still due on this connection */
	int64_t sent_ns;      /* client: when its REQUEST left */
};

struct load {
	const struct bench_opts *o; /* borrowed, outlives the run */
	bool echo;                  /* the far end is the echo server */
	unsigned long nclients;     /* conns[0, nclients) are clients */
	unsigned long nservers;     /* conns[nclients, +nservers) are servers */
	struct lconn *conns;
	int epfd;         /* every conn, with data.u64 = its index */
	unsigned long rr; /* echo: the next server to "return" */
	bool measuring;   /* inside the window: count and sample */
	bool draining;    /* after the window: no new REQUESTs */
	uint64_t cycles;  /* grants received inside the window */
	uint32_t *lat_ns; /* samples, BENCH_MAX_SAMPLES long */
	size_t nlat;
	int64_t last_frame_ns;
};

struct load_result {
	double seconds;    /* length of the window */
	uint64_t cycles;   /* grants (echo: client echoes) in the window */
	double cpu_s;      /* far end's CPU in the window, <0 unknown */
	double self_cpu_s; /* the load generator's own CPU in the window */
	double p50_us;
	double p99_us;
};

/* utime + stime of @pid in seconds, or -1 when it cannot be read. */
static double
proc_cpu_s(pid_t pid)
{
	unsigned long long ut, st;
	char path[64], buf[1024], *p;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	(void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	(void)fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15, counted after the ")" that ends field 2. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2,
			     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			     "%llu %llu",
			     &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double
self_cpu_s(void)
{
	struct rusage ru;

	(void)getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sort @v and return its @q-quantile (0..1) in microseconds. */
static double
quantile_us(uint32_t *v, size_t n, double q, bool sorted)
{
	size_t i;

	if (n == 0)
		return 0;
	if (!sorted)
		qsort(v, n, sizeof(*v), cmp_u32);
	i = (size_t)(q * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

/*
 * Connect with the tracker handshake and disable Nagle, as the broker; or,
 * with --split-writes, keep Nagle and write each frame's header and body
 * separately, as TVM's Python peers do.  --no-delayed-ack: ACK partial
 * frames at once (a tracker that splits its replies, as TVM's does, then
 * does not wait for our delayed ACK).
 */
static int
bench_connect(const struct bench_opts *o, const char *addr,
    struct tvmpeer **ret_peer, struct npufarm_err *err)
{
	int one = 1, r;

	r = tvmpeer_connect(addr, BENCH_IO_TIMEOUT_MS, ret_peer, err);
	if (r < 0)
		return r;
	tvmpeer_set_split_writes(*ret_peer, o->split_writes);
	tvmpeer_set_quickack(*ret_peer, o->no_delayed_ack);
	if (!o->split_writes)
		(void)setsockopt(tvmpeer_fd(*ret_peer), IPPROTO_TCP,
		    TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/*
 * Expect the reply to a registration message: 0 from a tracker, the frame
 * itself from the echo server.
 */
static int
load_expect_ok(const struct load *l, struct tvmpeer *p, struct npufarm_err *err)
{
	const char *body;
	size_t len;
	int r;

	if (!l->echo)
		return tvmpeer_recv_ok(p, BENCH_IO_TIMEOUT_MS, err);
	r = tvmpeer_recv_frame(p, BENCH_IO_TIMEOUT_MS, &body, &len);
	return r < 0 ? err_set(err, r, "echo: %s", strerror(-r)) : 0;
}

static int
load_put(struct load *l, unsigned long idx)
{
	struct lconn *s = &l->conns[l->nclients + idx];
	char mk[64];
	int r;

	(void)snprintf(mk, sizeof(mk), "%s:0.%0*lu%0*lu", BENCH_KEY,
	    BENCH_IDX_DIGITS, idx, BENCH_GEN_DIGITS, s->gen++ % 1000000000UL);
	r = tvmpeer_put(
	    s->peer, BENCH_KEY, (long)(20000 + idx % 20000), mk, NULL);
	if (r == 0)
		s->awaiting++;
	return r;
}

static int
load_request(struct load *l, struct lconn *c)
{
	int r;

	c->sent_ns = bench_now_ns();
	r = tvmpeer_request(c->peer, BENCH_KEY, "", 1);
	if (r == 0)
		c->awaiting++;
	return r;
}

/* Report a frame we did not expect, with its (escaped) start. */
static int
load_bad_frame(
    struct npufarm_err *err, const char *what, const char *body, size_t len)
{
	char text[96];

	(void)log_escape(text, sizeof(text), body, len);
	return err_set(err, -EPROTO, "%s: '%s'", what, text);
}

/*
 * The server index encoded in the matchkey of a grant
 * [0, ["HOST", PORT, "bench:0.IIIIIIGGGGGGGGG"]], found without a JSON
 * parser so that the load generator stays cheap.  -EBADMSG if it is not
 * one of ours.
 */
static int
load_grant_server(
    const struct load *l, const char *body, size_t len, unsigned long *ret_idx)
{
	static const char head[] = "[0, [", mkhead[] = BENCH_KEY ":0.";
	const size_t mklen =
	    sizeof(mkhead) - 1 + BENCH_IDX_DIGITS + BENCH_GEN_DIGITS;
	const char *q, *mk;
	unsigned long idx = 0;
	int i;

	if (len < sizeof(head) + mklen + 4 ||
	    memcmp(body, head, sizeof(head) - 1) != 0 ||
	    memcmp(body + len - 3, "\"]]", 3) != 0)
		return -EBADMSG;
	q = body + len - 3;
	mk = q - mklen;
	if (mk[-1] != '"' || memcmp(mk, mkhead, sizeof(mkhead) - 1) != 0)
		return -EBADMSG;
	for (i = 0; i < BENCH_IDX_DIGITS; i++) {
		char ch = mk[sizeof(mkhead) - 1 + (size_t)i];

		if (ch < '0' || ch > '9')
			return -EBADMSG;
		idx = idx * 10 + (unsigned long)(ch - '0');
	}
	if (idx >= l->nservers)
		return -EBADMSG;
	*ret_idx = idx;
	return 0;
}

/* A grant (echo: the echoed REQUEST) arrived on client @c. */
static int
load_on_grant(struct load *l, struct lconn *c, const char *body, size_t len,
    struct npufarm_err *err)
{
	unsigned long idx;
	int64_t lat;
	int r;

	if (c->awaiting == 0)
		return load_bad_frame(
		    err, "unsolicited frame to a client", body, len);
	if (l->echo)
		idx = l->rr++ % l->nservers;
	else if (load_grant_server(l, body, len, &idx) < 0)
		return load_bad_frame(err, "not a grant of ours", body, len);
	c->awaiting--;
	if (l->measuring) {
		lat = bench_now_ns() - c->sent_ns;
		l->cycles++;
		if (l->nlat < BENCH_MAX_SAMPLES)
			l->lat_ns[l->nlat++] =
			    lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
	}
	r = load_put(l, idx);
	if (r == 0 && !l->draining)
		r = load_request(l, c);
	if (r < 0)
		return err_set(err, r, "send: %s", strerror(-r));
	return 0;
}

/* The reply to a PUT (echo: the echoed PUT) arrived on server @s. */
static int
load_on_put_reply(struct load *l, struct lconn *s, const char *body, size_t len,
    struct npufarm_err *err)
{
	if (s->awaiting == 0)
		return load_bad_frame(
		    err, "unsolicited frame to a server", body, len);
	if (!l->echo && (len != 1 || body[0] != '0'))
		return load_bad_frame(err, "PUT answered", body, len);
	s->awaiting--;
	return 0;
}

/* Read what connection @i has and handle every whole frame. */
static int
load_drain_conn(struct load *l, unsigned long i, struct npufarm_err *err)
{
	struct lconn *c = &l->conns[i];
	const char *body;
	size_t len;
	int r;

	r = tvmpeer_read(c->peer);
	if (r == -EAGAIN)
		return 0;
	if (r < 0)
		return err_set(err, r, "%s connection %lu: %s",
		    i < l->nclients ? "client" : "server", i,
		    r == -ECONNRESET ? "closed by the far end" : strerror(-r));
	while ((r = tvmpeer_pop_frame(c->peer, &body, &len)) == 1) {
		l->last_frame_ns = bench_now_ns();
		if (i < l->nclients)
			r = load_on_grant(l, c, body, len, err);
		else
			r = load_on_put_reply(l, c, body, len, err);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return err_set(err, r, "bad frame header: %s", strerror(-r));
	return 0;
}

/* One epoll_wait() round of at most @timeout_ms. */
static int
load_pump(struct load *l, int timeout_ms, struct npufarm_err *err)
{
	struct epoll_event ev[BENCH_EVENTS];
	int i, n, r;

	n = epoll_wait(l->epfd, ev, BENCH_EVENTS, timeout_ms);
	if (n < 0 && errno != EINTR)
		return err_set(err, -errno, "epoll_wait: %s", strerror(errno));
	for (i = 0; i < n; i++) {
		r = load_drain_conn(l, (unsigned long)ev[i].data.u64, err);
		if (r < 0)
			return r;
	}
	if (bench_now_ns() - l->last_frame_ns > BENCH_STALL_MS * 1000000LL)
		return err_set(err, -ETIMEDOUT,
		    "no reply for %d ms (%" PRIu64 " cycles done)",
		    BENCH_STALL_MS, l->cycles);
	return 0;
}

static bool
load_quiet(const struct load *l)
{
	unsigned long i;

	for (i = 0; i < l->nclients + l->nservers; i++)
		if (l->conns[i].awaiting > 0)
			return false;
	return true;
}

static void
load_free(struct load *l)
{
	unsigned long i;

	if (l->conns != NULL)
		for (i = 0; i < l->nclients + l->nservers; i++)
			tvmpeer_free(l->conns[i].peer);
	free(l->conns);
	if (l->epfd >= 0)
		(void)close(l->epfd);
	free(l->lat_ns);
}

/* UPDATE_INFO and the first PUT of server @idx, each awaiting its reply. */
static int
load_register(struct load *l, unsigned long idx, struct npufarm_err *err)
{
	struct lconn *s = &l->conns[l->nclients + idx];
	int r;

	r = tvmpeer_update_info(
	    s->peer, BENCH_KEY, (long)(20000 + idx % 20000));
	if (r < 0)
		return err_set(err, r, "UPDATE_INFO: %s", strerror(-r));
	r = load_expect_ok(l, s->peer, err);
	if (r < 0)
		return r;
	r = load_put(l, idx);
	if (r < 0)
		return err_set(err, r, "PUT: %s", strerror(-r));
	s->awaiting--;
	return load_expect_ok(l, s->peer, err);
}

/* Connect and register the servers, then connect the clients. */
static int
load_setup(struct load *l, const char *addr, struct npufarm_err *err)
{
	struct epoll_event ev = {.events = EPOLLIN};
	unsigned long i, n = l->nclients + l->nservers;
	int r;

	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return err_set(err, -errno, "epoll: %s", strerror(errno));
	l->conns = calloc(n, sizeof(*l->conns));
	l->lat_ns = malloc(BENCH_MAX_SAMPLES * sizeof(*l->lat_ns));
	if (l->conns == NULL || l->lat_ns == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	for (i = n; i-- > 0;) {
		r = bench_connect(l->o, addr, &l->conns[i].peer, err);
		if (r < 0)
			return r;
		ev.data.u64 = i;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD,
			tvmpeer_fd(l->conns[i].peer), &ev) < 0)
			return err_set(
			    err, -errno, "epoll_ctl: %s", strerror(errno));
		if (i >= l->nclients) {
			r = load_register(l, i - l->nclients, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/*
 * One closed-loop run against @addr (the tracker, or the echo server when
 * @echo) whose far end has pid @pid.  Fills @res.  Returns 0 or -errno with
 * the reason in @err.
 */
static int
load_run(const struct bench_opts *o, const char *addr, bool echo, pid_t pid,
    struct load_result *res, struct npufarm_err *err)
{
	struct load l = {
	    .o = o,
	    .echo = echo,
	    .nclients = o->clients,
	    .nservers = o->servers,
	    .epfd = -1,
	};
	int64_t t_open, t_close, t0 = 0, deadline;
	double cpu0 = -1, self0 = 0;
	unsigned long i;
	int r;

	r = load_setup(&l, addr, err);
	if (r < 0)
		goto out;
	l.last_frame_ns = bench_now_ns();
	for (i = 0; i < l.nclients && r == 0; i++)
		r = load_request(&l, &l.conns[i]);
	if (r < 0) {
		r = err_set(err, r, "send: %s", strerror(-r));
		goto out;
	}
	t_open = bench_now_ns() + (int64_t)o->warmup_ms * 1000000;
	t_close = t_open + (int64_t)o->seconds * 1000000000;
	while (r == 0 && bench_now_ns() < t_close) {
		r = load_pump(&l, 100, err);
		if (!l.measuring && bench_now_ns() >= t_open) {
			l.measuring = true;
			cpu0 = proc_cpu_s(pid);
			self0 = self_cpu_s();
			t0 = bench_now_ns();
		}
	}
	if (r < 0)
		goto out;
	l.measuring = false;
	l.draining = true;
	res->seconds = (double)(bench_now_ns() - t0) / 1e9;
	res->cpu_s = cpu0 < 0 ? -1 : proc_cpu_s(pid) - cpu0;
	res->self_cpu_s = self_cpu_s() - self0;
	res->cycles = l.cycles;
	res->p50_us = quantile_us(l.lat_ns, l.nlat, 0.50, false);
	res->p99_us = quantile_us(l.lat_ns, l.nlat, 0.99, true);
	deadline = bench_now_ns() + BENCH_DRAIN_MS * 1000000LL;
	while (r == 0 && !load_quiet(&l) && bench_now_ns() < deadline)
		r = load_pump(&l, 100, err);
	if (r == 0 && !load_quiet(&l))
		r = err_set(err, -ETIMEDOUT,
		    "replies still missing after %d ms", BENCH_DRAIN_MS);
out:
	load_free(&l);
	return r;
}

static void
row(const char *metric, const char *value, const char *baseline,
    const char *ratio, const char *target)
{
	printf("| %s | %s | %s | %s | %s |\n", metric, value, baseline, ratio,
	    target);
}

/* The same closed-loop run against the echo server, then the tracker. */
static int
load_pair(const struct bench_opts *o, const char *echo_addr, pid_t echo_pid,
    struct load_result *ret_tracker, struct load_result *ret_echo,
    struct npufarm_err *err)
{
	int r;

	fprintf(stderr, "cycles: %lu servers, %lu clients, %lu s: echo\n",
	    o->servers, o->clients, o->seconds);
	r = load_run(o, echo_addr, true, echo_pid, ret_echo, err);
	if (r < 0) {
		err_prefix(err, "echo run: ");
		return r;
	}
	fprintf(stderr, "cycles: %lu servers, %lu clients, %lu s: %s\n",
	    o->servers, o->clients, o->seconds, o->tracker);
	r = load_run(o, o->tracker, false, o->pid, ret_tracker, err);
	if (r < 0)
		err_prefix(err, "tracker run: ");
	return r;
}

/* Rows for the p50 and p99 grant latency of @b against echo @e. */
static void
latency_rows(const struct load_result *b, const struct load_result *e,
    const char *what, const char *target)
{
	char m[96], v[64], bl[64], ra[64];

	(void)snprintf(m, sizeof(m), "grant latency p50 (%s)", what);
	(void)snprintf(v, sizeof(v), "%.1f us", b->p50_us);
	(void)snprintf(bl, sizeof(bl), "%.1f us echo p50", e->p50_us);
	(void)snprintf(ra, sizeof(ra), "%.2fx", b->p50_us / e->p50_us);
	row(m, v, bl, ra, target);
	(void)snprintf(m, sizeof(m), "grant latency p99 (%s)", what);
	(void)snprintf(v, sizeof(v), "%.1f us", b->p99_us);
	(void)snprintf(bl, sizeof(bl), "%.1f us echo p99", e->p99_us);
	(void)snprintf(ra, sizeof(ra), "%.2fx", b->p99_us / e->p99_us);
	row(m, v, bl, ra, "-");
}

/*
 * Throughput, latency and CPU at the configured load, then latency with a
 * single client and server (no queueing: the per-request cost alone).
 */
static int
bench_cycles(const struct bench_opts *o, const char *echo_addr, pid_t echo_pid,
    struct npufarm_err *err)
{
	struct bench_opts one = *o;
	struct load_result b = {0}, e = {0};
	char m[96], v[64], bl[64], ra[64];
	double rate_b, rate_e, cpu_b, cpu_e;
	int r;

	r = load_pair(o, echo_addr, echo_pid, &b, &e, err);
	if (r < 0)
		return r;
	rate_b = (double)b.cycles / b.seconds;
	rate_e = (double)e.cycles / e.seconds;
	(void)snprintf(m, sizeof(m),
	    "lease cycles/s (%lu servers, %lu clients)", o->servers,
	    o->clients);
	(void)snprintf(v, sizeof(v), "%.0f", rate_b);
	(void)snprintf(bl, sizeof(bl), "%.0f echo cycles/s", rate_e);
	/* An echo cycle is two framed round trips (client's and server's). */
	(void)snprintf(ra, sizeof(ra), "cycle = %.1f RT", 2 * rate_e / rate_b);
	row(m, v, bl, ra, ">= 50000");
	(void)snprintf(m, sizeof(m), "%lu clients", o->clients);
	latency_rows(&b, &e, m, "<= 200 us");
	if (b.cpu_s >= 0 && e.cpu_s >= 0 && b.cycles > 0 && e.cycles > 0) {
		cpu_b = b.cpu_s / (double)b.cycles * 1e6;
		cpu_e = e.cpu_s / (double)e.cycles * 1e6 / 2;
		(void)snprintf(v, sizeof(v), "%.2f us", cpu_b);
		(void)snprintf(
		    bl, sizeof(bl), "%.2f us echo CPU per RT", cpu_e);
		(void)snprintf(
		    ra, sizeof(ra), "cycle = %.1f RT", cpu_b / cpu_e);
		row("tracker CPU per lease cycle", v, bl, ra, "-");
		/* Near 100%: the far end, not the generator, set the pace. */
		(void)snprintf(
		    v, sizeof(v), "%.0f%%", 100 * b.cpu_s / b.seconds);
		(void)snprintf(bl, sizeof(bl), "%.0f%% echo server",
		    100 * e.cpu_s / e.seconds);
		row("tracker CPU in the window (100% = 1 core)", v, bl, "-",
		    "-");
	}
	(void)snprintf(
	    v, sizeof(v), "%.2f us", b.self_cpu_s / (double)b.cycles * 1e6);
	(void)snprintf(bl, sizeof(bl), "%.2f us in the echo run",
	    e.self_cpu_s / (double)e.cycles * 1e6);
	row("load generator CPU per cycle", v, bl, "-", "-");

	one.clients = 1;
	one.servers = 2; /* one is always free: no wait for a PUT */
	one.seconds = 1;
	r = load_pair(&one, echo_addr, echo_pid, &b, &e, err);
	if (r < 0)
		return r;
	latency_rows(&b, &e, "1 client, unloaded", "-");
	return 0;
}

/* Count the entries of SUMMARY's server_info, or -1 if malformed. */
static long
summary_servers(const char *body, size_t len)
{
	json_t *root, *si;
	long n = -1;

	root = json_loadb(body, len, 0, NULL);
	si = json_object_get(json_array_get(root, 1), "server_info");
	if (json_integer_value(json_array_get(root, 0)) == 0 &&
	    json_is_array(si))
		n = (long)json_array_size(si);
	json_decref(root);
	return n;
}

/* Time @n exchanges of @body (SUMMARY when NULL) on @p into @lat. */
static int
time_exchanges(struct tvmpeer *p, const char *body, size_t blen, uint32_t *lat,
    unsigned long n, char **ret_copy, size_t *ret_len)
{
	const char *reply;
	unsigned long i;
	size_t len;
	int64_t t;
	int r;

	for (i = 0; i < n; i++) {
		t = bench_now_ns();
		r = body ? tvmpeer_send_frame(p, body, blen)
			 : tvmpeer_summary(p);
		if (r == 0)
			r = tvmpeer_recv_frame(
			    p, 10 * BENCH_IO_TIMEOUT_MS, &reply, &len);
		if (r < 0)
			return r;
		lat[i] = (uint32_t)(bench_now_ns() - t);
		if (i == 0 && ret_copy != NULL) {
			*ret_copy = malloc(len);
			if (*ret_copy == NULL)
				return -ENOMEM;
			memcpy(*ret_copy, reply, len);
			*ret_len = len;
		}
	}
	return 0;
}

/* Register idle board @i like a Python server: UPDATE_INFO, then PUT. */
static int
idle_register(const struct bench_opts *o, unsigned long i,
    struct tvmpeer **ret_peer, struct npufarm_err *err)
{
	char key[32], mk[TVMPEER_MAX_STR];
	long port = (long)(30000 + i % 30000);
	int r;

	(void)snprintf(key, sizeof(key), "idle%03lu", i % o->idle_keys);
	r = bench_connect(o, o->tracker, ret_peer, err);
	if (r < 0)
		return r;
	r = tvmpeer_update_info(*ret_peer, key, port);
	if (r < 0)
		return err_set(err, r, "UPDATE_INFO: %s", strerror(-r));
	r = tvmpeer_recv_ok(*ret_peer, BENCH_IO_TIMEOUT_MS, err);
	if (r < 0)
		return r;
	r = tvmpeer_matchkey(key, mk, sizeof(mk));
	if (r == 0)
		r = tvmpeer_put(*ret_peer, key, port, mk, NULL);
	if (r < 0)
		return err_set(err, r, "PUT: %s", strerror(-r));
	return tvmpeer_recv_ok(*ret_peer, BENCH_IO_TIMEOUT_MS, err);
}

static int
bench_idle(
    const struct bench_opts *o, const char *echo_addr, struct npufarm_err *err)
{
	struct tvmpeer **boards, *q = NULL;
	uint32_t *lat_b = NULL, *lat_e = NULL;
	char *body = NULL, m[96], v[64], bl[64], ra[64];
	unsigned long i, done = 0;
	long rss0, rss1, seen;
	size_t blen = 0;
	double t, p50_b, p50_e;
	int r;

	boards = calloc(o->idle, sizeof(*boards));
	lat_b = calloc(o->summaries, sizeof(*lat_b));
	lat_e = calloc(o->summaries, sizeof(*lat_e));
	if (boards == NULL || lat_b == NULL || lat_e == NULL) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rss0 = bench_rss_kib((long)o->pid);
	fprintf(stderr, "idle: registering %lu boards over %lu keys\n", o->idle,
	    o->idle_keys);
	t = (double)bench_now_ns();
	for (done = 0; done < o->idle; done++) {
		r = idle_register(o, done, &boards[done], err);
		if (r < 0) {
			err_prefix(err, "board %lu: ", done);
			goto out;
		}
	}
	t = ((double)bench_now_ns() - t) / 1e9;
	rss1 = bench_rss_kib((long)o->pid);
	r = bench_connect(o, o->tracker, &q, err);
	if (r < 0)
		goto out;
	r = time_exchanges(q, NULL, 0, lat_b, o->summaries, &body, &blen);
	q = tvmpeer_free(q);
	if (r == 0)
		r = bench_connect(o, echo_addr, &q, err);
	if (r == 0)
		r = time_exchanges(
		    q, body, blen, lat_e, o->summaries, NULL, NULL);
	if (r < 0) {
		r = err_set(err, r, "SUMMARY timing: %s", strerror(-r));
		goto out;
	}
	seen = summary_servers(body, blen);
	if (seen != (long)o->idle)
		fprintf(stderr,
		    "idle: warning: SUMMARY lists %ld servers, %lu are "
		    "registered\n",
		    seen, o->idle);
	(void)snprintf(m, sizeof(m), "registration rate (%lu boards)", o->idle);
	(void)snprintf(v, sizeof(v), "%.0f boards/s", (double)o->idle / t);
	row(m, v, "-", "-", "-");
	if (rss0 >= 0 && rss1 >= 0) {
		(void)snprintf(
		    m, sizeof(m), "tracker RSS, %lu idle boards", o->idle);
		(void)snprintf(v, sizeof(v), "%.1f MB", (double)rss1 / 1024);
		(void)snprintf(
		    bl, sizeof(bl), "%.1f MB with none", (double)rss0 / 1024);
		(void)snprintf(ra, sizeof(ra), "%.2f KB per board",
		    (double)(rss1 - rss0) / (double)o->idle);
		row(m, v, bl, ra, "<= 30 MB");
	}
	p50_b = quantile_us(lat_b, o->summaries, 0.5, false) / 1000;
	p50_e = quantile_us(lat_e, o->summaries, 0.5, false) / 1000;
	(void)snprintf(m, sizeof(m), "SUMMARY p50, %lu idle boards (%zu bytes)",
	    o->idle, blen);
	(void)snprintf(v, sizeof(v), "%.2f ms", p50_b);
	(void)snprintf(bl, sizeof(bl), "%.2f ms echo of the same bytes", p50_e);
	(void)snprintf(ra, sizeof(ra), "%.1fx", p50_b / p50_e);
	row(m, v, bl, ra, "<= 10 ms (TVM: 19 ms)");
	r = 0;
out:
	tvmpeer_free(q);
	for (i = 0; boards != NULL && i < done; i++)
		tvmpeer_free(boards[i]);
	free(boards);
	free(lat_b);
	free(lat_e);
	free(body);
	return r;
}

static void
bench_usage(FILE *f)
{
	fprintf(f,
	    "usage: npufarm-bench-tracker --tracker HOST:PORT [--pid PID]\n"
	    "         [--phase cycles|idle|all] [--servers N] [--clients M]\n"
	    "         [--seconds S] [--warmup-ms MS] [--idle-boards N]\n"
	    "         [--idle-keys K] [--summaries N] [--split-writes]\n"
	    "         [--no-delayed-ack]\n"
	    "  --split-writes    write like TVM's Python peers: each frame's "
	    "header and\n"
	    "                    body in two writes, Nagle on\n"
	    "  --no-delayed-ack  ACK a partially read frame at once (for "
	    "trackers that\n"
	    "                    split their replies, as TVM's does)\n"
	    "Prints markdown table rows: metric | tracker | echo baseline | "
	    "ratio | target\n");
}

static int
bench_parse(struct bench_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"tracker", required_argument, NULL, 't'},
	    {"pid", required_argument, NULL, 'p'},
	    {"phase", required_argument, NULL, 'P'},
	    {"servers", required_argument, NULL, 'n'},
	    {"clients", required_argument, NULL, 'm'},
	    {"seconds", required_argument, NULL, 's'},
	    {"warmup-ms", required_argument, NULL, 'w'},
	    {"idle-boards", required_argument, NULL, 'i'},
	    {"idle-keys", required_argument, NULL, 'k'},
	    {"summaries", required_argument, NULL, 'S'},
	    {"split-writes", no_argument, NULL, 'W'},
	    {"no-delayed-ack", no_argument, NULL, 'A'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long pid = 0;
	int c, r = 0;

	while (r == 0 &&
	       (c = getopt_long(argc, argv, "t:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->tracker = optarg;
			break;
		case 'p':
			r = bench_ulong("--pid", optarg, 1, INT32_MAX, &pid);
			o->pid = (pid_t)pid;
			break;
		case 'P':
			o->run_cycles = strcmp(optarg, "idle") != 0;
			o->run_idle = strcmp(optarg, "cycles") != 0;
			if (!o->run_cycles && !o->run_idle) {
				log_err("--phase: cycles, idle or all");
				r = -EINVAL;
			}
			break;
		case 'n':
			r = bench_ulong("--servers", optarg, 1,
			    BENCH_MAX_SERVERS, &o->servers);
			break;
		case 'm':
			r = bench_ulong(
			    "--clients", optarg, 1, 10000, &o->clients);
			break;
		case 's':
			r = bench_ulong(
			    "--seconds", optarg, 1, 600, &o->seconds);
			break;
		case 'w':
			r = bench_ulong(
			    "--warmup-ms", optarg, 0, 60000, &o->warmup_ms);
			break;
		case 'i':
			r = bench_ulong("--idle-boards", optarg, 1,
			    BENCH_MAX_IDLE, &o->idle);
			break;
		case 'k':
			r = bench_ulong(
			    "--idle-keys", optarg, 1, 1000, &o->idle_keys);
			break;
		case 'S':
			r = bench_ulong(
			    "--summaries", optarg, 1, 10000, &o->summaries);
			break;
		case 'W':
			o->split_writes = true;
			break;
		case 'A':
			o->no_delayed_ack = true;
			break;
		case 'h':
			bench_usage(stdout);
			exit(0);
		default:
			r = -EINVAL;
			break;
		}
	}
	if (r == 0 && (o->tracker == NULL || optind != argc)) {
		log_err("--tracker is required");
		r = -EINVAL;
	}
	if (r < 0)
		bench_usage(stderr);
	return r;
}

/* Make room for one socket per idle board on both ends of the test. */
static void
bench_raise_nofile(unsigned long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

/* Exit status: 0 after printing every row, 1 on failure, 2 on bad usage. */
int
main(int argc, char **argv)
{
	struct bench_opts o = {
	    .servers = 64,
	    .clients = 16,
	    .seconds = 3,
	    .warmup_ms = 500,
	    .idle = 10000,
	    .idle_keys = 10,
	    .summaries = 20,
	    .run_cycles = true,
	    .run_idle = true,
	};
	struct npufarm_err err = {0};
	char echo_addr[NETADDR_STRLEN];
	pid_t echo_pid = 0;
	int r;

	if (bench_parse(&o, argc, argv) < 0)
		return 2;
	bench_raise_nofile(o.idle + o.servers + o.clients + 64);
	r = bench_echo_spawn(&echo_pid, echo_addr, sizeof(echo_addr));
	if (r < 0) {
		log_err("echo server: %s", strerror(-r));
		return 1;
	}
	if (o.run_cycles)
		r = bench_cycles(&o, echo_addr, echo_pid, &err);
	if (r == 0 && o.run_idle)
		r = bench_idle(&o, echo_addr, &err);
	bench_echo_stop(echo_pid);
	if (r < 0) {
		log_err("%s", err.msg);
		return 1;
	}
	return 0;
}
