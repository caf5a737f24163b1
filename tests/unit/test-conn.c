/* SPDX-License-Identifier: Apache-2.0 */
/*
 * broker/conn.c and broker/listener.c on their own: real loopback sockets
 * and a libevent loop, a protocol table of the test's own (no tracker, no
 * agent link, no server), and the transport's promises: the magic picks
 * the protocol and is consumed, bytes after it reach the owner's read,
 * conn_close() calls ops->closing then (once the reply is out) ops->closed,
 * a connection handed over with conn_set_ops() reaches its new owner, and
 * the limits (max_connections, the handshake deadline, max_unauth_conn,
 * the allow-list) close what they must.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth.h"
#include "broker_config.h"
#include "conn.h"
#include "frame.h"
#include "harness.h"
#include "listener.h"

#define MAGIC_A 0x41414141u /* "AAAA": claimed by ops_a */
#define MAGIC_R 0x52525252u /* "RRRR": must be allow-listed */
#define MAGIC_D 0x44444444u /* "DDDD": ready, read by conn_direct_read() */

struct rec {
	int starts;
	void *start_arg;
	int reads;
	char got[256];
	size_t ngot;
	int closing, closed, events;
	short last_event;
	int order; /* 1: closing came before closed */
	bool close_on_read;
	bool hand_over; /* the first read hands the conn to ops_b */
	struct conn *c;
	size_t take;    /* ops_d: bytes each read consumes */
	size_t drained; /* ops_d: bytes consumed so far */
};

static struct event_base *base;
static struct broker_config cfg;
static struct auth *auth;
static struct conn_set *set;
static struct listener *lis;
static struct rec rec_a, rec_b;
static int port;

static void
rec_read(struct conn *c, struct rec *r)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n = evbuffer_get_length(in);

	r->reads++;
	r->c = c;
	if (n > sizeof(r->got) - r->ngot)
		n = sizeof(r->got) - r->ngot;
	(void)evbuffer_remove(in, r->got + r->ngot, n);
	r->ngot += n;
}

static void ops_b_read(struct conn *c);
static void ops_closing(struct conn *c);
static void ops_closed(struct conn *c);
static void ops_b_event(struct conn *c, short what);

static const struct conn_ops ops_b = {
    .read = ops_b_read,
    .event = ops_b_event,
    .closing = ops_closing,
    .closed = ops_closed,
    .hello = "no b hello",
};

static void
ops_a_read(struct conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	rec_read(c, &rec_a);
	if (rec_a.hand_over) {
		rec_a.hand_over = false;
		conn_set_ops(c, &ops_b, &rec_b);
		return;
	}
	if (rec_a.close_on_read && rec_a.ngot >= 3) {
		(void)bufferevent_write(c->bev, "bye", 3);
		conn_close(c, "test: done");
	}
}

static void
ops_b_read(struct conn *c)
{
	struct rec *r = c->owner;

	ck_assert_ptr_eq(r, &rec_b);
	if (c->state != CONN_CLOSING)
		rec_read(c, r);
}

static struct rec *
rec_of(struct conn *c)
{
	return c->owner != NULL ? c->owner : &rec_a;
}

static void
ops_closing(struct conn *c)
{
	struct rec *r = rec_of(c);

	r->closing++;
	if (r->closed == 0)
		r->order = 1;
}

static void
ops_closed(struct conn *c)
{
	rec_of(c)->closed++;
}

static void
ops_b_event(struct conn *c, short what)
{
	struct rec *r = c->owner;

	r->events++;
	r->last_event = what;
	if (!(what & BEV_EVENT_CONNECTED))
		conn_free(c);
}

static const struct conn_ops ops_a = {
    .read = ops_a_read,
    .closing = ops_closing,
    .closed = ops_closed,
    .hello = "no a hello",
    .flags = CONN_OPS_QUICKACK,
};

static int
start_a(struct conn *c, void *arg)
{
	rec_a.starts++;
	rec_a.start_arg = arg;
	conn_set_ops(c, &ops_a, NULL);
	return 0;
}

/* Consumes at most rec_a.take bytes per call, and leaves the rest. */
static void
ops_d_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n = evbuffer_get_length(in);

	rec_a.reads++;
	rec_a.c = c;
	if (n > rec_a.take)
		n = rec_a.take;
	(void)evbuffer_drain(in, n);
	rec_a.drained += n;
}

static const struct conn_ops ops_d = {
    .read = ops_d_read,
    .closing = ops_closing,
    .closed = ops_closed,
    .hello = "no d hello",
    .flags = CONN_OPS_FRAMED,
};

static int
start_d(struct conn *c, void *arg)
{
	conn_set_ops(c, &ops_d, NULL);
	conn_ready(c);
	return conn_direct_read(c);
}

static int
start_r(struct conn *c, void *arg)
{
	conn_set_ops(c, &ops_a, NULL);
	conn_ready(c);
	return 0;
}

static void
start_listener(void)
{
	const struct listener_proto protos[] = {
	    {MAGIC_A, true, NULL, "oom a", start_a, &rec_a},
	    {MAGIC_R, true, "Test R", "oom r", start_r, NULL},
	    {MAGIC_D, true, NULL, "oom d", start_d, NULL},
	};
	struct auth_config auth_view;
	const char *colon;

	broker_config_auth(&cfg, &auth_view);
	ck_assert_int_eq(auth_new(&auth_view, &auth, NULL), 0);
	ck_assert_int_eq(conn_set_new(base, &cfg, 64, &set), 0);
	ck_assert_int_eq(listener_new(set, auth, protos, 3, &lis), 0);
	ck_assert_int_eq(listener_bind(lis, "127.0.0.1:0", NULL), 0);
	ck_assert_uint_eq(listener_count(lis), 1);
	colon = strrchr(listener_address(lis, 0), ':');
	ck_assert_ptr_nonnull(colon);
	port = atoi(colon + 1);
	ck_assert_int_gt(port, 0);
}

static void
setup(void)
{
	memset(&rec_a, 0, sizeof(rec_a));
	memset(&rec_b, 0, sizeof(rec_b));
	broker_config_defaults(&cfg);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
}

static void
teardown(void)
{
	lis = listener_free(lis);
	set = conn_set_free(set);
	auth = auth_free(auth);
	event_base_free(base);
	broker_config_deinit(&cfg);
}

/* Run the loop until @done(arg) or @ms pass; whether it came true. */
static bool
spin(bool (*done)(void *), void *arg, int ms)
{
	return harness_spin(base, done, arg, ms);
}

static int
client(void)
{
	return harness_loopback(port);
}

static void
send_all(int fd, const void *p, size_t n)
{
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

static void
send_magic(int fd, uint32_t magic, const char *rest)
{
	unsigned char b[64];
	size_t n = strlen(rest);

	frame_put_le32(b, magic);
	memcpy(b + 4, rest, n);
	send_all(fd, b, 4 + n);
}

/* Whether peer @fd has closed (EOF, or a reset) without blocking. */
static bool
peer_closed(void *arg)
{
	int fd = *(int *)arg;
	char b[64];
	ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static bool
got3(void *arg)
{
	return ((struct rec *)arg)->ngot >= 3;
}

static bool
no_conns(void *arg)
{
	return set->nconns == 0;
}

static bool
was_closed(void *arg)
{
	return ((struct rec *)arg)->closed > 0;
}

START_TEST(test_conn_magic_picks_protocol)
{
	int fd;

	start_listener();
	fd = client();
	send_magic(fd, MAGIC_A, "xyz");
	ck_assert(spin(got3, &rec_a, 2000));
	ck_assert_int_eq(rec_a.starts, 1);
	ck_assert_ptr_eq(rec_a.start_arg, &rec_a);
	/* The magic was consumed: only what followed it. */
	ck_assert_uint_eq(rec_a.ngot, 3);
	ck_assert_mem_eq(rec_a.got, "xyz", 3);
	ck_assert_uint_eq(set->nconns, 1);
	ck_assert_int_eq(rec_a.c->state, CONN_HANDSHAKE);
	/* The peer leaves: the transport frees, through ops->closed only. */
	close(fd);
	ck_assert(spin(no_conns, NULL, 2000));
	ck_assert_int_eq(rec_a.closed, 1);
	ck_assert_int_eq(rec_a.closing, 0);
}
END_TEST

START_TEST(test_conn_magic_split_across_reads)
{
	unsigned char b[4];
	int fd;

	start_listener();
	fd = client();
	frame_put_le32(b, MAGIC_A);
	send_all(fd, b, 2);
	(void)spin(NULL, NULL, 50);
	ck_assert_int_eq(rec_a.starts, 0);
	send_all(fd, b + 2, 2);
	send_all(fd, "abc", 3);
	ck_assert(spin(got3, &rec_a, 2000));
	ck_assert_int_eq(rec_a.starts, 1);
	ck_assert_mem_eq(rec_a.got, "abc", 3);
	close(fd);
	ck_assert(spin(no_conns, NULL, 2000));
}
END_TEST

START_TEST(test_conn_unknown_magic_closes)
{
	int fd;

	start_listener();
	fd = client();
	send_magic(fd, 0x01020304u, "");
	ck_assert(spin(peer_closed, &fd, 2000));
	ck_assert(spin(no_conns, NULL, 2000));
	ck_assert_int_eq(rec_a.starts, 0);
	close(fd);
}
END_TEST

START_TEST(test_conn_close_reply_then_closing_closed)
{
	char b[8];
	int fd;

	start_listener();
	rec_a.close_on_read = true;
	fd = client();
	send_magic(fd, MAGIC_A, "bye");
	ck_assert(spin(was_closed, &rec_a, 2000));
	/* Detached at conn_close(), freed once its reply was out. */
	ck_assert_int_eq(rec_a.closing, 1);
	ck_assert_int_eq(rec_a.closed, 1);
	ck_assert_int_eq(rec_a.order, 1);
	ck_assert_uint_eq(set->nconns, 0);
	ck_assert_int_eq(recv(fd, b, sizeof(b), 0), 3);
	ck_assert_mem_eq(b, "bye", 3);
	ck_assert_int_eq(recv(fd, b, sizeof(b), 0), 0);
	close(fd);
}
END_TEST

START_TEST(test_conn_set_ops_hands_over)
{
	int fd;

	start_listener();
	rec_a.hand_over = true;
	fd = client();
	send_magic(fd, MAGIC_A, "1");
	(void)spin(NULL, NULL, 100);
	ck_assert_int_eq(rec_a.reads, 1);
	send_all(fd, "234", 3);
	ck_assert(spin(got3, &rec_b, 2000));
	ck_assert_mem_eq(rec_b.got, "234", 3);
	ck_assert_int_eq(rec_a.reads, 1);
	/* Its new owner hears the EOF (ops->event) and frees it; the free
	 * goes through the new owner's closed. */
	close(fd);
	ck_assert(spin(no_conns, NULL, 2000));
	ck_assert_int_eq(rec_b.events, 1);
	ck_assert(rec_b.last_event & BEV_EVENT_EOF);
	ck_assert_int_eq(rec_b.closed, 1);
	ck_assert_int_eq(rec_a.closed, 0);
}
END_TEST

START_TEST(test_conn_max_connections)
{
	int fd1, fd2;

	start_listener();
	set->max_conns = 1;
	fd1 = client();
	(void)spin(NULL, NULL, 50);
	ck_assert_uint_eq(set->nconns, 1);
	fd2 = client();
	ck_assert(spin(peer_closed, &fd2, 2000));
	ck_assert_uint_eq(set->nconns, 1);
	ck_assert(!peer_closed(&fd1));
	close(fd1);
	close(fd2);
	ck_assert(spin(no_conns, NULL, 2000));
}
END_TEST

START_TEST(test_conn_handshake_deadline)
{
	int fd;

	cfg.handshake_timeout = 0.2;
	start_listener();
	fd = client();
	ck_assert(!spin(peer_closed, &fd, 100));
	ck_assert(spin(peer_closed, &fd, 3000));
	ck_assert(spin(no_conns, NULL, 2000));
	close(fd);
}
END_TEST

START_TEST(test_conn_unauth_limit)
{
	char big[2048];
	int fd;

	cfg.max_unauth_conn = 512;
	start_listener();
	fd = client();
	/* Claimed but still handshaking: its buffer counts against the
	 * limit; ops_a only reads 256 bytes' worth. */
	memset(big, 'x', sizeof(big));
	send_magic(fd, MAGIC_A, "");
	send_all(fd, big, sizeof(big));
	ck_assert(spin(peer_closed, &fd, 3000));
	ck_assert(spin(no_conns, NULL, 2000));
	ck_assert_uint_eq(set->unauth_bytes, 0);
	close(fd);
}
END_TEST

START_TEST(test_conn_allow_list)
{
	int fd;

	ck_assert_int_eq(broker_config_add_allow(&cfg, "10.0.0.0/8", NULL), 0);
	start_listener();
	/* A protocol that needs the allow-list refuses 127.0.0.1 now... */
	fd = client();
	send_magic(fd, MAGIC_R, "");
	ck_assert(spin(peer_closed, &fd, 2000));
	close(fd);
	ck_assert(spin(no_conns, NULL, 2000));
	/* ... one that does not still takes it. */
	fd = client();
	send_magic(fd, MAGIC_A, "abc");
	ck_assert(spin(got3, &rec_a, 2000));
	close(fd);
	ck_assert(spin(no_conns, NULL, 2000));
}
END_TEST

static bool
connected(void *arg)
{
	return rec_b.events > 0;
}

START_TEST(test_conn_dial)
{
	struct sockaddr_in sin = {0};
	socklen_t len = sizeof(sin);
	struct conn *c;
	int l, fd;

	ck_assert_int_eq(conn_set_new(base, &cfg, 8, &set), 0);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &len), 0);
	c = conn_dial(
	    set, (struct sockaddr *)&sin, sizeof(sin), &ops_b, &rec_b);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->state, CONN_READY);
	ck_assert(spin(connected, NULL, 2000));
	ck_assert(rec_b.last_event & BEV_EVENT_CONNECTED);
	fd = accept(l, NULL, NULL);
	ck_assert_int_ge(fd, 0);
	send_all(fd, "hey", 3);
	ck_assert(spin(got3, &rec_b, 2000));
	ck_assert_mem_eq(rec_b.got, "hey", 3);
	close(fd);
	ck_assert(spin(no_conns, NULL, 2000));
	ck_assert_int_eq(rec_b.closed, 1);
	close(l);
}
END_TEST

static bool
drained_all(void *arg)
{
	return rec_a.drained >= *(size_t *)arg;
}

static size_t
input_len(void)
{
	return evbuffer_get_length(bufferevent_get_input(rec_a.c->bev));
}

static bool
arrived_all(void *arg)
{
	return rec_a.drained + input_len() >= *(size_t *)arg;
}

/*
 * A connection read by conn_direct_read() keeps the bufferevent's bounds:
 * it buffers no more than the read high watermark (max_frame + header)
 * for an owner that does not consume, reads again once the owner made
 * room, honours conn_pause_read()/conn_resume_read(), and ends on EOF.
 */
START_TEST(test_conn_direct_read_bounds)
{
	static char junk[20000];
	size_t all = sizeof(junk) + 5, high;
	int fd, reads;

	cfg.max_frame = 1000;
	high = (size_t)cfg.max_frame + FRAME_HEADER_SIZE;
	start_listener();
	fd = client();
	memset(junk, 'x', sizeof(junk));
	send_magic(fd, MAGIC_D, "hello");
	/* The hello arrives through the listener's bufferevent read; what
	 * follows through the direct reader. */
	ck_assert(!spin(drained_all, &all, 200));
	ck_assert_uint_eq(input_len(), 5);
	send_all(fd, junk, sizeof(junk));
	/* The owner takes nothing: the input stops at the watermark. */
	(void)spin(drained_all, &all, 300);
	ck_assert_ptr_nonnull(rec_a.c);
	ck_assert_ptr_nonnull(rec_a.c->rev);
	ck_assert_int_eq(rec_a.c->state, CONN_READY);
	ck_assert_uint_eq(input_len(), high);
	reads = rec_a.reads;
	(void)spin(drained_all, &all, 200);
	ck_assert_int_eq(rec_a.reads, reads); /* not woken while full */
	/* It takes 300 a read: reading resumes, at most a watermark's worth
	 * buffered, until everything has arrived; then it takes the rest. */
	rec_a.take = 300;
	bufferevent_trigger(rec_a.c->bev, EV_READ, 0);
	ck_assert(spin(arrived_all, &all, 5000));
	ck_assert_uint_le(input_len(), high);
	rec_a.take = sizeof(junk);
	bufferevent_trigger(rec_a.c->bev, EV_READ, 0);
	ck_assert_uint_eq(rec_a.drained, all);
	ck_assert_uint_eq(input_len(), 0);
	/* Paused: nothing is read; resumed: it is. */
	conn_pause_read(rec_a.c);
	send_all(fd, "abc", 3);
	all += 3;
	ck_assert(!spin(drained_all, &all, 200));
	conn_resume_read(rec_a.c);
	ck_assert(spin(drained_all, &all, 2000));
	/* EOF reaches the transport, which frees the connection. */
	close(fd);
	ck_assert(spin(no_conns, NULL, 2000));
	ck_assert_int_eq(rec_a.closed, 1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("conn");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_conn_magic_picks_protocol);
	tcase_add_test(tc, test_conn_magic_split_across_reads);
	tcase_add_test(tc, test_conn_unknown_magic_closes);
	tcase_add_test(tc, test_conn_close_reply_then_closing_closed);
	tcase_add_test(tc, test_conn_set_ops_hands_over);
	tcase_add_test(tc, test_conn_max_connections);
	tcase_add_test(tc, test_conn_handshake_deadline);
	tcase_add_test(tc, test_conn_unauth_limit);
	tcase_add_test(tc, test_conn_allow_list);
	tcase_add_test(tc, test_conn_dial);
	tcase_add_test(tc, test_conn_direct_read_bounds);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
