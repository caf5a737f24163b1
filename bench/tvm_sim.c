/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tvm-sim: simulated TVM boards and tuner clients for demos and by-hand
 * testing of any TVM tracker (npufarm-broker or TVM's own).
 *
 *   tvm-sim boards --tracker HOST:PORT --key KEY --count N [--session-ms MS]
 *   tvm-sim tune   --tracker HOST:PORT --key KEY --requests N [--priority P]
 *
 * "boards" keeps N tracker connections that behave like the idle loop of
 * TVM's Python RPC server (spec §2.6): UPDATE_INFO, PUT, then
 * GET_PENDING_MATCHKEYS every poll period.  Once its matchkey has been
 * handed out the board counts as leased: it stays away for the session time
 * and then PUTs a fresh matchkey, as the real server does after a session.
 * The boards accept no RPC connections; a client only gets the grant.
 *
 * "tune" acts like AutoTVM's measurement workers: each request opens a new
 * tracker connection, sends REQUEST, prints the grant and closes.
 *
 * Single-threaded and blocking: every tracker exchange is one short round
 * trip on loopback, so the boards take turns from one timer list.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "err.h"
#include "log.h"
#include "tvmpeer.h"

/* Bound on every exchange with the tracker, in ms. */
#define SIM_IO_TIMEOUT_MS 5000
/* How long a board waits before it reconnects, as TVM's server does. */
#define SIM_RETRY_MS      5000
#define SIM_MAX_BOARDS    10000

enum board_state {
	BOARD_DOWN,    /* no tracker connection; connect when due */
	BOARD_FREE,    /* matchkey registered; poll GET_PENDING when due */
	BOARD_SESSION, /* matchkey handed out; PUT a fresh one when due */
};

struct board {
	struct tvmpeer *peer; /* owned; NULL while BOARD_DOWN */
	enum board_state state;
	unsigned idx;
	long port;      /* advertised RPC port (nothing listens there) */
	int64_t due_ms; /* monotonic time of the next action */
	unsigned leases;
	char matchkey[TVMPEER_MAX_STR];
};

struct sim {
	const char *tracker;
	const char *key;
	const char *user;
	unsigned long count;      /* boards, or requests for "tune" */
	unsigned long session_ms; /* how long a leased board stays away */
	unsigned long poll_ms;    /* GET_PENDING_MATCHKEYS period */
	unsigned long port_base;
	unsigned long timeout_ms; /* how long "tune" waits for a grant */
	double priority;
};

static volatile sig_atomic_t sim_stop;

static void
sim_on_signal(int sig)
{
	sim_stop = sig;
}

static int64_t
sim_now_ms(void)
{
	return bench_now_ns() / 1000000;
}

/* Drop the tracker connection and come back after SIM_RETRY_MS. */
static void
board_down(struct board *b, const char *what, const struct npufarm_err *err)
{
	log_warn("board %u: %s: %s; reconnecting in %d ms", b->idx, what,
	    err->msg, SIM_RETRY_MS);
	b->peer = tvmpeer_free(b->peer);
	b->state = BOARD_DOWN;
	b->due_ms = sim_now_ms() + SIM_RETRY_MS;
}

/* Check the result @r of a send, then expect the bare reply 0. */
static int
board_expect_ok(struct board *b, int r, struct npufarm_err *err)
{
	if (r < 0)
		return err_set(err, r, "send: %s", strerror(-r));
	return tvmpeer_recv_ok(b->peer, SIM_IO_TIMEOUT_MS, err);
}

static int
board_put(struct sim *s, struct board *b, struct npufarm_err *err)
{
	int r;

	r = tvmpeer_matchkey(s->key, b->matchkey, sizeof(b->matchkey));
	if (r < 0)
		return err_set(err, r, "matchkey: %s", strerror(-r));
	r = tvmpeer_put(b->peer, s->key, b->port, b->matchkey, NULL);
	return board_expect_ok(b, r, err);
}

static int
board_connect(struct sim *s, struct board *b, struct npufarm_err *err)
{
	int r;

	r = tvmpeer_connect(s->tracker, SIM_IO_TIMEOUT_MS, &b->peer, err);
	if (r < 0)
		return r;
	r = tvmpeer_update_info(b->peer, s->key, b->port);
	r = board_expect_ok(b, r, err);
	if (r < 0)
		return r;
	return board_put(s, b, err);
}

/* Is our matchkey still in the GET_PENDING_MATCHKEYS reply? */
static int
board_poll(struct board *b, bool *ret_pending, struct npufarm_err *err)
{
	json_t *root, *v;
	size_t i;
	int r;

	r = tvmpeer_get_pending(b->peer);
	if (r < 0)
		return err_set(err, r, "send: %s", strerror(-r));
	r = tvmpeer_recv_json(b->peer, SIM_IO_TIMEOUT_MS, &root, err);
	if (r < 0)
		return r;
	if (!json_is_array(root)) {
		json_decref(root);
		return err_set(err, -EBADMSG, "GET_PENDING reply not a list");
	}
	*ret_pending = false;
	json_array_foreach(root, i, v) {
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), b->matchkey) == 0)
			*ret_pending = true;
	}
	json_decref(root);
	return 0;
}

/* Run the board's due action; on any failure it goes down and retries. */
static void
board_step(struct sim *s, struct board *b)
{
	struct npufarm_err err = {0};
	bool pending = true;
	int r = 0;

	switch (b->state) {
	case BOARD_DOWN:
		r = board_connect(s, b, &err);
		if (r < 0) {
			board_down(b, "register", &err);
			return;
		}
		log_info("board %u: registered %s", b->idx, b->matchkey);
		b->state = BOARD_FREE;
		b->due_ms = sim_now_ms() + (int64_t)s->poll_ms;
		return;
	case BOARD_FREE:
		r = board_poll(b, &pending, &err);
		if (r < 0) {
			board_down(b, "GET_PENDING_MATCHKEYS", &err);
			return;
		}
		if (pending) {
			b->due_ms = sim_now_ms() + (int64_t)s->poll_ms;
			return;
		}
		b->leases++;
		printf("board %u: leased %s (lease %u), back in %lu ms\n",
		    b->idx, b->matchkey, b->leases, s->session_ms);
		(void)fflush(stdout);
		b->state = BOARD_SESSION;
		b->due_ms = sim_now_ms() + (int64_t)s->session_ms;
		return;
	case BOARD_SESSION:
		r = board_put(s, b, &err);
		if (r < 0) {
			board_down(b, "PUT", &err);
			return;
		}
		log_info(
		    "board %u: back in the pool as %s", b->idx, b->matchkey);
		b->state = BOARD_FREE;
		b->due_ms = sim_now_ms() + (int64_t)s->poll_ms;
		return;
	}
}

static int
sim_boards(struct sim *s)
{
	struct board *boards, *next;
	int64_t now;
	unsigned long i;
	int wait;

	boards = calloc(s->count, sizeof(*boards));
	if (boards == NULL) {
		log_err("out of memory");
		return 1;
	}
	now = sim_now_ms();
	for (i = 0; i < s->count; i++) {
		boards[i].idx = (unsigned)i;
		boards[i].port = (long)(s->port_base + i);
		boards[i].due_ms = now;
	}
	printf("%lu boards of key '%s' registering with %s\n", s->count, s->key,
	    s->tracker);
	(void)fflush(stdout);
	while (!sim_stop) {
		next = &boards[0];
		for (i = 1; i < s->count; i++)
			if (boards[i].due_ms < next->due_ms)
				next = &boards[i];
		wait = (int)(next->due_ms - sim_now_ms());
		if (wait > 0) {
			/* Sleeps until due or until SIGTERM/SIGINT. */
			(void)poll(NULL, 0, wait);
			continue;
		}
		board_step(s, next);
	}
	for (i = 0; i < s->count; i++)
		tvmpeer_free(boards[i].peer);
	free(boards);
	printf("boards stopped\n");
	return 0;
}

static int
sim_tune_one(
    struct sim *s, struct tvmpeer_grant *ret_grant, struct npufarm_err *err)
{
	struct tvmpeer *p = NULL;
	int r;

	r = tvmpeer_connect(s->tracker, SIM_IO_TIMEOUT_MS, &p, err);
	if (r < 0)
		return r;
	r = tvmpeer_request(p, s->key, s->user, s->priority);
	if (r < 0) {
		r = err_set(err, r, "send REQUEST: %s", strerror(-r));
		goto out;
	}
	r = tvmpeer_recv_grant(p, (int)s->timeout_ms, ret_grant, err);
out:
	tvmpeer_free(p);
	return r;
}

static int
sim_tune(struct sim *s)
{
	struct tvmpeer_grant g;
	struct npufarm_err err;
	unsigned long i, ok = 0;
	int64_t t0;
	int r;

	for (i = 0; i < s->count && !sim_stop; i++) {
		memset(&err, 0, sizeof(err));
		t0 = sim_now_ms();
		r = sim_tune_one(s, &g, &err);
		if (r == 0) {
			ok++;
			printf("request %lu/%lu: granted %s:%ld %s after "
			       "%" PRId64 " ms\n",
			    i + 1, s->count, g.host, g.port, g.matchkey,
			    sim_now_ms() - t0);
		} else if (r == TVMPEER_E_FAIL) {
			printf("request %lu/%lu: refused by the tracker: %s\n",
			    i + 1, s->count, err.msg);
		} else {
			printf("request %lu/%lu: failed: %s\n", i + 1, s->count,
			    err.msg);
		}
		(void)fflush(stdout);
	}
	printf("%lu of %lu requests granted\n", ok, s->count);
	return ok == s->count ? 0 : 1;
}

static void
sim_usage(FILE *f)
{
	fprintf(f,
	    "usage: tvm-sim boards --tracker HOST:PORT --key KEY --count N\n"
	    "                      [--session-ms MS] [--poll-ms MS] "
	    "[--port-base PORT] [-v]\n"
	    "       tvm-sim tune --tracker HOST:PORT --key KEY --requests N\n"
	    "                    [--priority P] [--user NAME] "
	    "[--timeout-ms MS] [-v]\n");
}

static int
sim_parse(struct sim *s, bool tune, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"tracker", required_argument, NULL, 't'},
	    {"key", required_argument, NULL, 'k'},
	    {"count", required_argument, NULL, 'n'},
	    {"requests", required_argument, NULL, 'n'},
	    {"session-ms", required_argument, NULL, 's'},
	    {"poll-ms", required_argument, NULL, 'P'},
	    {"port-base", required_argument, NULL, 'b'},
	    {"priority", required_argument, NULL, 'p'},
	    {"user", required_argument, NULL, 'u'},
	    {"timeout-ms", required_argument, NULL, 'T'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	int c, r = 0, level = LOG_NOTICE;

	while (r == 0 && (c = getopt_long(
			      argc, argv, "t:k:n:p:u:vh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			s->tracker = optarg;
			break;
		case 'k':
			s->key = optarg;
			break;
		case 'n':
			r = bench_ulong("--count", optarg, 1,
			    tune ? 1000000 : SIM_MAX_BOARDS, &s->count);
			break;
		case 's':
			r = bench_ulong("--session-ms", optarg, 0, 86400000,
			    &s->session_ms);
			break;
		case 'P':
			r = bench_ulong(
			    "--poll-ms", optarg, 10, 60000, &s->poll_ms);
			break;
		case 'b':
			r = bench_ulong(
			    "--port-base", optarg, 1, 65535, &s->port_base);
			break;
		case 'T':
			r = bench_ulong("--timeout-ms", optarg, 1, 86400000,
			    &s->timeout_ms);
			break;
		case 'p':
			s->priority = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0') {
				log_err(
				    "--priority: not a number: '%s'", optarg);
				r = -EINVAL;
			}
			break;
		case 'u':
			s->user = optarg;
			break;
		case 'v':
			level = level < LOG_DEBUG ? level + 1 : level;
			break;
		case 'h':
			sim_usage(stdout);
			exit(0);
		default:
			r = -EINVAL;
			break;
		}
	}
	log_set_level(level);
	if (r == 0 && (s->tracker == NULL || s->key == NULL || s->count == 0 ||
			  optind != argc)) {
		log_err("--tracker, --key and --%s are required",
		    tune ? "requests" : "count");
		r = -EINVAL;
	}
	if (r < 0)
		sim_usage(stderr);
	return r;
}

/*
 * Exit status: 0 when every request was granted (tune) or the boards were
 * stopped by SIGTERM/SIGINT (boards), 1 otherwise, 2 for a usage error.
 */
int
main(int argc, char **argv)
{
	struct sim s = {
	    .user = "",
	    .session_ms = 1000,
	    .poll_ms = 2000,
	    .port_base = 9090,
	    .timeout_ms = 60000,
	    .priority = 1,
	};
	struct sigaction sa = {.sa_handler = sim_on_signal};
	bool tune;

	if (argc < 2 ||
	    (strcmp(argv[1], "boards") != 0 && strcmp(argv[1], "tune") != 0)) {
		sim_usage(stderr);
		return 2;
	}
	tune = strcmp(argv[1], "tune") == 0;
	if (sim_parse(&s, tune, argc - 1, argv + 1) < 0)
		return 2;
	if (!tune && s.port_base + s.count - 1 > 65535) {
		log_err("--port-base + --count exceeds 65535");
		return 2;
	}
	/* No SA_RESTART: the signal must cut a sleep or a wait short. */
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	return tune ? sim_tune(&s) : sim_boards(&s);
}
