/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tracker and its grant engine without the server: a listener, a
 * connection set, a real ledger in a temp dir and real loopback sockets
 * speaking TVM's tracker protocol.  Checks a PUT board granted to a
 * REQUEST (the reply, the ledger row), and that the engine serves any
 * struct lease_request through its ops (lease.h): a request of the
 * test's own kind is granted through ->granted, shown through ->describe
 * and ->task_info, with no jobs and no switch on the kind.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>
#include <jansson.h>

#include <npufarm/protocol.h>

#include "agent_link.h"
#include "auth.h"
#include "broker_config.h"
#include "conn.h"
#include "err.h"
#include "frame.h"
#include "harness.h"
#include "lease.h"
#include "ledger.h"
#include "listener.h"
#include "metrics.h"
#include "proxy.h"
#include "relay.h"
#include "scheduler.h"
#include "tracker.h"

static struct event_base *base;
static struct broker_config cfg;
static struct auth *auth;
static struct conn_set *set;
static struct listener *lis;
static struct ledger *ledger;
static struct sched *sched;
static struct metrics *metrics;
static struct tracker *trk;
static struct agent_links *links;
static struct relays *relays;
static char dir[] = "/tmp/npufarm-test-tracker-XXXXXX";
static char db[300];
static int port;

static void
setup(void)
{
	const struct listener_proto protos[] = {
	    {NPUFARM_TVM_TRACKER_MAGIC, true, "TVM tracker", "oom",
		tracker_conn_start, NULL},
	    {NPUFARM_TVM_RPC_MAGIC, false, NULL, "oom", proxy_conn_start, NULL},
	};
	struct listener_proto p[2];
	struct npufarm_err err;
	struct auth_config auth_view;
	const char *colon;

	/* A fresh template each time (CK_FORK=no runs them in one process). */
	(void)snprintf(
	    dir, sizeof(dir), "%s", "/tmp/npufarm-test-tracker-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(db, sizeof(db), "%s/ledger.db", dir);
	broker_config_defaults(&cfg);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	broker_config_auth(&cfg, &auth_view);
	ck_assert_int_eq(auth_new(&auth_view, &auth, NULL), 0);
	ck_assert_msg(
	    ledger_open(db, false, &ledger, &err) == 0, "%s", err.msg);
	sched = sched_new();
	ck_assert_ptr_nonnull(sched);
	ck_assert_int_eq(metrics_new(16, &metrics), 0);
	ck_assert_int_eq(conn_set_new(base, &cfg, 64, &set), 0);
	ck_assert_int_eq(
	    tracker_new(base, &cfg, ledger, sched, metrics, set, &trk), 0);
	links = agent_links_new(
	    base, &cfg, ledger, metrics, trk, tracker_boards(trk));
	ck_assert_ptr_nonnull(links);
	ck_assert_int_eq(relays_new(base, &cfg, metrics, &relays), 0);
	tracker_set_peers(trk, links, relays);
	tracker_set_auth(trk, auth);
	memcpy(p, protos, sizeof(p));
	p[0].arg = p[1].arg = trk;
	ck_assert_int_eq(listener_new(set, auth, p, 2, &lis), 0);
	ck_assert_int_eq(listener_bind(lis, "127.0.0.1:0", NULL), 0);
	colon = strrchr(listener_address(lis, 0), ':');
	port = atoi(colon + 1);
}

static void
teardown(void)
{
	struct conn *c;

	tracker_stop(trk);
	lis = listener_free(lis);
	while ((c = TAILQ_FIRST(&set->conns)) != NULL)
		conn_free(c);
	ledger_commit(ledger);
	ledger = ledger_close(ledger);
	links = agent_links_free(links);
	relays = relays_free(relays);
	trk = tracker_free(trk);
	set = conn_set_free(set);
	metrics = metrics_free(metrics);
	sched = sched_free(sched);
	auth = auth_free(auth);
	event_base_free(base);
	broker_config_deinit(&cfg);
	(void)harness_rmtree(dir);
}

/* Run the loop until @done(@arg) or @ms pass; whether it came true. */
static bool
spin(bool (*done)(void *), void *arg, int ms)
{
	return harness_spin(base, done, arg, ms);
}

static int
peer(void)
{
	unsigned char m[4];
	int fd = harness_loopback(port);

	frame_put_le32(m, NPUFARM_TVM_TRACKER_MAGIC);
	ck_assert_int_eq(write(fd, m, 4), 4);
	return fd;
}

static void
send_frame(int fd, const char *json)
{
	unsigned char b[512];
	size_t n = strlen(json);

	frame_put_le32(b, (uint32_t)n);
	memcpy(b + 4, json, n);
	ck_assert_int_eq(write(fd, b, 4 + n), (ssize_t)(4 + n));
}

struct rx {
	int fd;
	unsigned char buf[1024];
	size_t n;
};

/* A whole frame (after the 4-byte magic echo, once) is buffered. */
static bool
rx_frame(void *arg)
{
	struct rx *r = arg;
	ssize_t k =
	    recv(r->fd, r->buf + r->n, sizeof(r->buf) - r->n - 1, MSG_DONTWAIT);
	size_t skip = 4; /* the magic the tracker echoes */

	if (k > 0)
		r->n += (size_t)k;
	return r->n >= skip + 4 &&
	       r->n >= skip + 4 + frame_get_le32(r->buf + skip);
}

/* The next frame of @fd (which echoed the magic first), NUL-terminated. */
static char *
expect_frame(int fd)
{
	struct rx r = {.fd = fd};
	uint32_t len;

	ck_assert(spin(rx_frame, &r, 3000));
	len = frame_get_le32(r.buf + 4);
	return strndup((char *)r.buf + 8, len);
}

START_TEST(test_tracker_put_then_request_is_granted)
{
	int board = peer(), client = peer();
	char *reply, *rows;

	send_frame(board, "[3, \"rk\", [9090, \"rk:0.5\"], \"10.0.0.7\"]");
	reply = expect_frame(board);
	ck_assert_str_eq(reply, "0");
	free(reply);
	send_frame(client, "[4, \"rk\", \"alice\", 1]");
	reply = expect_frame(client);
	ck_assert_str_eq(reply, "[0, [\"10.0.0.7\", 9090, \"rk:0.5\"]]");
	free(reply);
	ck_assert_int_eq(ledger_sync(ledger, NULL), 0);
	rows = harness_sql(db, "SELECT key, user, priority FROM leases");
	ck_assert_str_eq(rows, "rk|alice|1.0\n");
	free(rows);
	close(board);
	close(client);
}
END_TEST

/* A request kind of the test's own. */
struct my_req {
	struct lease_request lr;
	int granted, gone, described;
	struct agent *agent;
	int64_t board;
	char why[128];
};

static void
my_granted(struct lease_request *lr, struct slot *s)
{
	struct my_req *m = (struct my_req *)(void *)lr;

	m->granted++;
	m->agent = tracker_task_take(s, &lr->s, &m->board);
}

static void
my_board_gone(struct lease_request *lr, const char *why)
{
	struct my_req *m = (struct my_req *)(void *)lr;

	m->gone++;
	(void)snprintf(m->why, sizeof(m->why), "%s", why);
}

static void
my_describe(const struct lease_request *lr, struct tracker_request_info *ret)
{
	ret->kind = "mine";
	ret->priority = 7;
}

static void
my_task_info(const struct lease_request *lr, struct jobs_task_info *ret)
{
	*ret = (struct jobs_task_info){.job = 42, .idx = 3, .user = "bob"};
}

static const struct lease_request_ops my_ops = {
    .granted = my_granted,
    .board_gone = my_board_gone,
    .describe = my_describe,
    .task_info = my_task_info,
};

struct seen {
	int n;
	const char *kind;
	double priority;
	int64_t job;
	int idx;
	char state[16];
};

static void
req_cb(const struct tracker_request_info *r, void *arg)
{
	struct seen *x = arg;

	x->n++;
	x->kind = r->kind;
	x->priority = r->priority;
}

static void
board_cb(const struct tracker_board_info *b, void *arg)
{
	struct seen *x = arg;

	x->n++;
	x->job = b->task.job;
	x->idx = b->task.idx;
	(void)snprintf(x->state, sizeof(x->state), "%s", b->state);
}

static void
count_cb(const struct tracker_board_info *b, void *arg)
{
	(*(int *)arg)++;
}

static bool
no_boards(void *arg)
{
	int n = 0;

	tracker_foreach_board(trk, count_cb, &n);
	return n == 0;
}

START_TEST(test_tracker_engine_serves_any_request_through_its_ops)
{
	struct my_req m = {.lr.ops = &my_ops};
	struct seen waiting = {0}, running = {0};
	struct sched_queue *q;
	int board;
	char *reply;

	/* It waits: the view asks the request itself what it is. */
	ck_assert_int_eq(sched_queue_get(sched, "rk", true, &q), 0);
	ck_assert_int_eq(sched_enqueue(q, &m.lr.s, "bob", 7), 0);
	tracker_foreach_request(trk, "rk", req_cb, &waiting);
	ck_assert_int_eq(waiting.n, 1);
	ck_assert_str_eq(waiting.kind, "mine");
	ck_assert(waiting.priority == 7);
	ck_assert_int_eq(m.granted, 0);
	/* A board comes: the engine grants it through ->granted. */
	board = peer();
	send_frame(board, "[3, \"rk\", [9090, \"rk:0.5\"], \"10.0.0.7\"]");
	reply = expect_frame(board);
	free(reply);
	ck_assert_int_eq(m.granted, 1);
	ck_assert_ptr_null(m.agent); /* not an agent's board */
	ck_assert_int_gt(m.board, 0);
	ck_assert_ptr_null(m.lr.s.queue);
	/* It runs on the board: the board view asks ->task_info. */
	tracker_foreach_board(trk, board_cb, &running);
	ck_assert_int_eq(running.n, 1);
	ck_assert_int_eq(running.job, 42);
	ck_assert_int_eq(running.idx, 3);
	ck_assert_str_eq(running.state, "leased");
	/* Its board goes (->board_gone is for agent boards, whose link
	 * the test does not speak). */
	close(board);
	ck_assert(spin(no_boards, NULL, 3000));
}
END_TEST

static int
raw_conn(void)
{
	struct sockaddr_in sin = {0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void
rpc_hello(int fd, const char *key)
{
	unsigned char b[300];
	size_t n = strlen(key);

	frame_put_le32(b, NPUFARM_TVM_RPC_MAGIC);
	frame_put_le32(b + 4, (uint32_t)n);
	memcpy(b + 8, key, n);
	ck_assert_int_eq(write(fd, b, 8 + n), (ssize_t)(8 + n));
}

struct rxn {
	int fd;
	unsigned char buf[512];
	size_t n, want;
};

static bool
rx_n(void *arg)
{
	struct rxn *r = arg;
	ssize_t k = recv(r->fd, r->buf + r->n, r->want - r->n, MSG_DONTWAIT);

	if (k > 0)
		r->n += (size_t)k;
	return r->n == r->want;
}

/* The pair-up message on @fd: SUCCESS, then the other side's key. */
static void
expect_success(int fd, const char *key)
{
	struct rxn r = {.fd = fd, .want = 8 + strlen(key)};

	ck_assert(spin(rx_n, &r, 3000));
	ck_assert_uint_eq(frame_get_le32(r.buf), NPUFARM_TVM_RPC_CODE_SUCCESS);
	ck_assert_uint_eq(frame_get_le32(r.buf + 4), strlen(key));
	ck_assert_mem_eq(r.buf + 8, key, strlen(key));
}

static bool
one_board(void *arg)
{
	int n = 0;

	tracker_foreach_board(trk, count_cb, &n);
	return n == 1;
}

static bool
no_relays(void *arg)
{
	return relays_count(relays) == 0;
}

/* proxy.c: a board dials in, a tracker client is granted it and comes
 * back with the matchkey; both sides get SUCCESS and the other's key,
 * and the session is the relay's until both go. */
START_TEST(test_proxy_board_and_client_pair)
{
	int brd = raw_conn(), q, cli;
	char *reply, key[300];
	json_t *v;
	const char *host, *match;
	int code = -1, gport;

	rpc_hello(brd, "server:x1");
	ck_assert(spin(one_board, NULL, 3000));
	q = peer();
	send_frame(q, "[4, \"x1\", \"\", 1]");
	reply = expect_frame(q);
	v = json_loads(reply, 0, NULL);
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(
	    json_unpack(v, "[i[sis]]", &code, &host, &gport, &match), 0);
	ck_assert_int_eq(code, 0);
	/* The grant names the broker itself, and a matchkey of the key. */
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_int_eq(gport, port);
	ck_assert(strncmp(match, "x1:", 3) == 0);
	(void)snprintf(key, sizeof(key), "client:%s", match);
	json_decref(v);
	free(reply);
	close(q);
	cli = raw_conn();
	rpc_hello(cli, key);
	expect_success(cli, "server:x1");
	expect_success(brd, key);
	ck_assert_uint_eq(relays_count(relays), 1);
	close(cli);
	close(brd);
	ck_assert(spin(no_relays, NULL, 3000));
}
END_TEST

static bool
my_req_granted(void *arg)
{
	return ((struct my_req *)arg)->granted > 0;
}

static bool
my_req_gone(void *arg)
{
	return ((struct my_req *)arg)->gone > 0;
}

/* The board_gone op (lease.h): a request granted an agent's board that
 * then disappears (its link closes) hears ->board_gone with the reason,
 * once. */
START_TEST(test_tracker_board_gone_tells_the_request)
{
	const struct listener_proto agent_proto = {
	    NPUFARM_AGENT_MAGIC, true, NULL, "oom", agent_link_start, links};
	struct my_req m = {.lr.ops = &my_ops};
	struct listener *alis;
	struct sched_queue *q;
	unsigned char magic[4];
	char hello[256];
	int fd, aport;

	agent_links_set_auth(links, auth);
	ck_assert_int_eq(listener_new(set, auth, &agent_proto, 1, &alis), 0);
	ck_assert_int_eq(listener_bind(alis, "127.0.0.1:0", NULL), 0);
	aport = atoi(strrchr(listener_address(alis, 0), ':') + 1);
	ck_assert_int_eq(sched_queue_get(sched, "rk", true, &q), 0);
	m.lr.s.needs = SCHED_CAP_KERNEL;
	ck_assert_int_eq(sched_enqueue(q, &m.lr.s, "bob", 1), 0);
	/* An agent of key rk with a kernel runner says hello, then ready. */
	fd = harness_loopback(aport);
	frame_put_le32(magic, NPUFARM_AGENT_MAGIC);
	ck_assert_int_eq(write(fd, magic, 4), 4);
	(void)snprintf(hello, sizeof(hello),
	    "{\"type\": \"hello\", \"protocol\": %d, \"name\": \"a1\", "
	    "\"key\": \"rk\", \"version\": \"test\", \"runners\": "
	    "[\"kernel\"]}",
	    NPUFARM_PROTOCOL_VERSION);
	send_frame(fd, hello);
	ck_assert(spin(one_board, NULL, 3000));
	ck_assert_int_eq(m.granted, 0);
	send_frame(fd, "{\"type\": \"state\", \"state\": \"ready\"}");
	ck_assert(spin(my_req_granted, &m, 3000));
	ck_assert_int_eq(m.granted, 1);
	ck_assert_ptr_nonnull(m.agent); /* an agent's board this time */
	ck_assert_int_gt(m.board, 0);
	ck_assert_int_eq(m.gone, 0);
	/* The agent's link goes, and its board with it. */
	close(fd);
	ck_assert(spin(my_req_gone, &m, 3000));
	ck_assert_int_eq(m.gone, 1);
	ck_assert_str_eq(m.why, "connection closed");
	ck_assert(spin(no_boards, NULL, 3000));
	ck_assert_int_eq(m.gone, 1);
	ck_assert_int_eq(m.granted, 1);
	alis = listener_free(alis);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tracker-engine");
	TCase *tc = tcase_create("tracker-engine");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_tracker_put_then_request_is_granted);
	tcase_add_test(
	    tc, test_tracker_engine_serves_any_request_through_its_ops);
	tcase_add_test(tc, test_proxy_board_and_client_pair);
	tcase_add_test(tc, test_tracker_board_gone_tells_the_request);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
