/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real npufarm-broker on loopback, spoken to with the exact bytes TVM
 * peers send (spec tvm-rpc-vectors.md), checking the exact bytes TVM's
 * tracker would answer, the ledger rows, and that every limit closes only
 * the offending connection.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "err.h"
#include "frame.h"
#include "harness.h"
#include "tvmpeer.h"

#define T_MS 5000

/* Vectors (spec tvm-rpc-vectors.md). */
#define TRK03                                                                  \
	"330000005b352c207b226b6579223a20227365727665723a726b33353838222c2022" \
	"61646472223a205b6e756c6c2c20393039305d7d5d"
#define TRK05                                                                  \
	"350000005b352c207b226b6579223a20227365727665723a726b33353838222c2022" \
	"61646472223a205b6e756c6c2c202239303930225d7d5d"
#define TRK06                                                                  \
	"380000005b332c2022726b33353838222c205b393039302c2022726b333538383a30" \
	"2e38343434323138353135323530343831225d2c206e756c6c5d"
#define TRK07                                                                  \
	"420000005b332c2022726b33353838222c205b393039302c2022726b333538383a30" \
	"2e38343434323138353135323530343831225d2c20223139322e3136382e312e3230" \
	"225d"
#define TRK08                                                                  \
	"2e0000005b332c2022726b33353838222c205b393039302c2022726b333538383a30" \
	"2e353438383134225d2c206e756c6c5d"
#define TRK09 "140000005b342c2022726b33353838222c2022222c20315d"
#define TRK10                                                                  \
	"380000005b302c205b223139322e3136382e312e3230222c20393039302c2022726b" \
	"333538383a302e38343434323138353135323530343831225d5d"
#define TRK11 "030000005b375d"
#define TRK12 \
	"1d0000005b22726b333538383a302e38343434323138353135323530343831225d"
#define TRK13 "020000005b5d"
#define TRK14 "030000005b365d"
#define TRK15B                                                                 \
	"820000005b302c207b2271756575655f696e666f223a207b22726b33353838223a20" \
	"7b2266726565223a20312c202270656e64696e67223a20307d7d2c20227365727665" \
	"725f696e666f223a205b7b226b6579223a20227365727665723a726b33353838222c" \
	"202261646472223a205b223132372e302e302e31222c20393039305d7d5d7d5d"
#define TRK16 "030000005b315d"
#define TRK17                                                                  \
	"200000005b322c2022747261636b65723a302e393631383734343834323536393338" \
	"225d"
#define TRK04 "0100000030"
#define TRK18 "020000002d31"

static struct harness_broker b;

static void
start(void)
{
	harness_broker_start(&b, NULL);
}

static void
stop(void)
{
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}

static struct tvmpeer *
peer(void)
{
	struct npufarm_err err;
	struct tvmpeer *p;

	ck_assert_msg(
	    tvmpeer_connect(b.farm, T_MS, &p, &err) == 0, "%s", err.msg);
	return p;
}

static void
send_hex(struct tvmpeer *p, const char *hex)
{
	unsigned char v[1024];
	size_t n = harness_unhex(hex, v, sizeof(v));

	ck_assert_int_eq(tvmpeer_send_raw(p, v, n), 0);
}

/* The next reply must be exactly the frame @hex. */
static void
expect_hex(struct tvmpeer *p, const char *hex)
{
	unsigned char want[1024], got[1024];
	size_t n = harness_unhex(hex, want, sizeof(want)), len;
	const char *body;

	ck_assert_int_eq(tvmpeer_recv_frame(p, T_MS, &body, &len), 0);
	frame_put_le32(got, (uint32_t)len);
	ck_assert_uint_lt(len + 4, sizeof(got));
	memcpy(got + 4, body, len);
	ck_assert_msg(len + 4 == n && memcmp(got, want, n) == 0, "got %.*s",
	    (int)len, body);
}

static char *
recv_text(struct tvmpeer *p)
{
	const char *body;
	size_t len;

	ck_assert_int_eq(tvmpeer_recv_frame(p, T_MS, &body, &len), 0);
	return strndup(body, len);
}

START_TEST(test_python_server_and_client_byte_exact)
{
	struct tvmpeer *srv = peer(), *q = peer(), *cli = peer();
	char *rows;

	/* Unmodified v0.14 Python server registering (TRK-03, TRK-06). */
	send_hex(srv, TRK03);
	expect_hex(srv, TRK04);
	send_hex(srv, TRK06);
	expect_hex(srv, TRK04);
	/* query_rpc_tracker: the reply the real tracker gave (TRK-15b). */
	send_hex(q, TRK14);
	expect_hex(q, TRK15B);
	/* The server's idle poll sees its matchkey pending (TRK-12). */
	send_hex(srv, TRK11);
	expect_hex(srv, TRK12);
	/* connect_tracker().request('rk3588', priority=1) */
	send_hex(cli, TRK09);
	{
		char *grant = recv_text(cli);

		ck_assert_str_eq(grant, "[0, [\"127.0.0.1\", 9090, "
					"\"rk3588:0.8444218515250481\"]]");
		free(grant);
	}
	send_hex(srv, TRK11);
	expect_hex(srv, TRK13); /* allocated */
	send_hex(q, TRK16);
	expect_hex(q, TRK04);
	send_hex(q, TRK17); /* STOP: refused, the broker keeps running */
	expect_hex(q, TRK18);
	tvmpeer_free(cli);
	tvmpeer_free(q);
	/* The server comes back after its session: the lease is released. */
	ck_assert_int_eq(
	    tvmpeer_put(srv, "rk3588", 9090, "rk3588:0.25", NULL), 0);
	expect_hex(srv, TRK04);
	tvmpeer_free(srv);
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	rows = harness_sql(b.db,
	    "SELECT key, user, priority, board_id IS NOT NULL, matchkey,"
	    " granted_us >= requested_us, released_us >= granted_us,"
	    " outcome IS NULL FROM leases;"
	    "SELECT kind, key, address, state FROM boards ORDER BY id;"
	    "SELECT kind FROM events ORDER BY id");
	ck_assert_str_eq(rows,
	    "rk3588|127.0.0.1|1.0|1|rk3588:0.8444218515250481|1|1|1\n"
	    "tvm|rk3588|127.0.0.1:9090|offline\n"
	    "broker_start\nboard_online\nboard_offline\nbroker_stop\n");
	free(rows);
}
END_TEST

START_TEST(test_custom_addr_grant_is_trk10)
{
	struct tvmpeer *srv = peer(), *cli = peer();

	send_hex(srv, TRK03);
	expect_hex(srv, TRK04);
	send_hex(srv, TRK07);
	expect_hex(srv, TRK04);
	send_hex(cli, TRK09);
	expect_hex(cli, TRK10);
	tvmpeer_free(cli);
	tvmpeer_free(srv);
}
END_TEST

START_TEST(test_cpp_server_string_port)
{
	struct tvmpeer *srv = peer(), *q = peer(), *cli = peer();
	char *s;

	send_hex(srv, TRK05);
	expect_hex(srv, TRK04);
	send_hex(srv, TRK08);
	expect_hex(srv, TRK04);
	send_hex(q, TRK14);
	s = recv_text(q);
	ck_assert_str_eq(s, "[0, {\"queue_info\": {\"rk3588\": {\"free\": 1, "
			    "\"pending\": 0}}, \"server_info\": [{\"key\": "
			    "\"server:rk3588\", \"addr\": [\"127.0.0.1\", "
			    "\"9090\"]}]}]");
	free(s);
	send_hex(cli, TRK09);
	s = recv_text(cli);
	ck_assert_str_eq(s, "[0, [\"127.0.0.1\", 9090, \"rk3588:0.548814\"]]");
	free(s);
	tvmpeer_free(cli);
	tvmpeer_free(q);
	tvmpeer_free(srv);
}
END_TEST

START_TEST(test_magic_and_frame_in_one_segment)
{
	struct npufarm_err err;
	struct tvmpeer *p;
	unsigned char v[4];

	/* TRK-N1: TVM's tracker drops this; we accept it. */
	ck_assert_int_eq(tvmpeer_open(b.farm, T_MS, &p, &err), 0);
	send_hex(p, "71f20200030000005b315d");
	ck_assert_int_eq(read(tvmpeer_fd(p), v, 4), 4);
	ck_assert(memcmp(v, "\x71\xf2\x02\x00", 4) == 0);
	expect_hex(p, TRK04);
	tvmpeer_free(p);
}
END_TEST

START_TEST(test_registration_dies_with_connection)
{
	struct tvmpeer *srv = peer(), *q = peer();
	char *s;

	/* No UPDATE_INFO: TVM would keep this entry forever. */
	send_hex(srv, TRK06);
	expect_hex(srv, TRK04);
	send_hex(q, TRK14);
	s = recv_text(q);
	ck_assert(strstr(s, "\"free\": 1") != NULL);
	free(s);
	tvmpeer_free(srv);
	/* Give the broker a moment to see the EOF, then ask again. */
	for (int i = 0; i < 100; i++) {
		send_hex(q, TRK14);
		s = recv_text(q);
		if (strcmp(s,
			"[0, {\"queue_info\": {}, \"server_info\": []}]") == 0)
			break;
		free(s);
		s = NULL;
		usleep(20000);
	}
	ck_assert_ptr_nonnull(s);
	free(s);
	tvmpeer_free(q);
}
END_TEST

/*
 * Board @srv's one board is still free, and the ledger's only row is a
 * request the client cancelled by leaving: nothing went to it.  Frees
 * @srv and stops the broker.
 */
static void
expect_left_client_cancelled(struct tvmpeer *srv)
{
	struct tvmpeer *q = peer();
	char *s, *rows;

	send_hex(q, TRK14);
	s = recv_text(q);
	ck_assert_msg(strstr(s, "{\"free\": 1, \"pending\": 0}") != NULL,
	    "the board went to a client that had left: %s", s);
	free(s);
	tvmpeer_free(q);
	tvmpeer_free(srv);
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	rows = harness_sql(b.db, "SELECT outcome, granted_us IS NULL,"
				 " detail LIKE 'client %' FROM leases");
	ck_assert_str_eq(rows, "cancelled|1|1\n");
	free(rows);
}

START_TEST(test_dead_client_never_granted)
{
	struct tvmpeer *srv, *cli = peer();

	send_hex(cli, TRK09);
	tvmpeer_free(cli); /* gives up before any board exists */
	usleep(100000);
	srv = peer();
	send_hex(srv, TRK03);
	expect_hex(srv, TRK04);
	send_hex(srv, TRK06);
	expect_hex(srv, TRK04);
	send_hex(srv, TRK11);
	expect_hex(srv, TRK12);
	expect_left_client_cancelled(srv);
}
END_TEST

/*
 * A REQUEST and the client's FIN that the broker finds together, with a
 * board free: the wake-up carries the FIN (EPOLLRDHUP), so the board is
 * not granted to the client that already left, even in the REQUEST's own
 * read callback, where a live client is granted without asking the
 * kernel.  The broker is stopped while the two arrive so that it sees
 * them in one wake-up.
 */
START_TEST(test_request_with_fin_never_granted)
{
	struct tvmpeer *srv = peer(), *cli = peer();

	send_hex(srv, TRK03);
	expect_hex(srv, TRK04);
	send_hex(srv, TRK06);
	expect_hex(srv, TRK04);
	ck_assert_int_eq(kill(b.pid, SIGSTOP), 0);
	send_hex(cli, TRK09);
	tvmpeer_free(cli);
	usleep(50000);
	ck_assert_int_eq(kill(b.pid, SIGCONT), 0);
	expect_left_client_cancelled(srv);
}
END_TEST

START_TEST(test_priority_order_end_to_end)
{
	static const char *prio[] = {"1", "5", "1", "5", "-3", "2.5"};
	static const int want[] = {1, 3, 5, 0, 2, 4};
	struct tvmpeer *cli[6], *srv = peer();
	char frame[64], mk[32];
	int i, k;

	for (i = 0; i < 6; i++) {
		int n = snprintf(frame + 4, sizeof(frame) - 4,
		    "[4, \"k\", \"\", %s]", prio[i]);

		cli[i] = peer();
		ck_assert_int_eq(
		    tvmpeer_send_frame(cli[i], frame + 4, (size_t)n), 0);
		/* Make arrival order certain. */
		ck_assert_int_eq(tvmpeer_ping(cli[i]), 0);
		expect_hex(cli[i], TRK04);
	}
	for (k = 0; k < 6; k++) {
		struct tvmpeer_grant g;
		struct npufarm_err err;

		(void)snprintf(mk, sizeof(mk), "k:%d", k);
		ck_assert_int_eq(tvmpeer_put(srv, "k", 9000, mk, NULL), 0);
		expect_hex(srv, TRK04);
		ck_assert_int_eq(
		    tvmpeer_recv_grant(cli[want[k]], T_MS, &g, &err), 0);
		ck_assert_str_eq(g.matchkey, mk);
	}
	for (i = 0; i < 6; i++)
		tvmpeer_free(cli[i]);
	tvmpeer_free(srv);
}
END_TEST

START_TEST(test_http_api_shows_boards_queue_leases)
{
	struct tvmpeer *srv = peer(), *cli = peer(), *waiter = peer();
	json_t *v;
	char *body;
	int status;

	send_hex(srv, TRK03);
	expect_hex(srv, TRK04);
	send_hex(srv, TRK06);
	expect_hex(srv, TRK04);
	send_hex(cli, TRK09);
	free(recv_text(cli));
	send_hex(waiter, TRK09);
	ck_assert_int_eq(tvmpeer_ping(waiter), 0);
	expect_hex(waiter, TRK04);

	body = harness_http_get(b.http, "/v1/boards", &status);
	ck_assert_int_eq(status, 200);
	v = json_loads(body, 0, NULL);
	ck_assert_ptr_nonnull(v);
	json_t *bd = json_array_get(json_object_get(v, "boards"), 0);
	ck_assert_str_eq(
	    json_string_value(json_object_get(bd, "state")), "leased");
	ck_assert_str_eq(
	    json_string_value(json_object_get(bd, "key")), "rk3588");
	ck_assert(json_is_object(json_object_get(bd, "lease")));
	{
		static const char *const fields[] = {"id", "name", "kind",
		    "key", "address", "state", "free", "first_seen",
		    "last_seen", "lease", "detail", "drained", "task", "tags",
		    "relay", "runs", "failures"};
		size_t i;

		/* Registered by PUT, reached directly (no --relay-boards
		 * all). */
		ck_assert_str_eq(
		    json_string_value(json_object_get(bd, "relay")), "none");

		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			ck_assert_msg(json_object_get(bd, fields[i]) != NULL,
			    "board lacks '%s'", fields[i]);
		ck_assert_uint_eq(json_object_size(bd), i);
		ck_assert_uint_eq(
		    json_object_size(json_object_get(bd, "lease")), 5);
	}
	json_decref(v);
	free(body);

	body = harness_http_get(b.http, "/v1/queue", &status);
	ck_assert_int_eq(status, 200);
	v = json_loads(body, 0, NULL);
	json_t *qu = json_array_get(json_object_get(v, "queues"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(qu, "boards")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(qu, "leased")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(qu, "waiting")), 1);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(qu, "requests"), 0), "user")),
	    "127.0.0.1");
	json_decref(v);
	free(body);

	body = harness_http_get(b.http, "/v1/leases?limit=1", &status);
	ck_assert_int_eq(status, 200);
	v = json_loads(body, 0, NULL);
	ck_assert_int_eq(json_array_size(json_object_get(v, "leases")), 1);
	/* Every documented field is present, null or not. */
	{
		static const char *const fields[] = {"id", "key", "user",
		    "peer", "priority", "board_id", "board", "matchkey",
		    "requested_at", "granted_at", "released_at", "wait_seconds",
		    "held_seconds", "outcome", "detail", "session"};
		json_t *l0 = json_array_get(json_object_get(v, "leases"), 0);
		size_t i;

		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			ck_assert_msg(json_object_get(l0, fields[i]) != NULL,
			    "lease lacks '%s'", fields[i]);
		ck_assert_uint_eq(json_object_size(l0), i);
	}
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(v, "leases"), 0), "matchkey")),
	    "rk3588:0.8444218515250481");
	json_decref(v);
	free(body);

	body = harness_http_get(b.http, "/v1/leases?limit=0", &status);
	ck_assert_int_eq(status, 400);
	ck_assert(strstr(body, "limit") != NULL);
	free(body);
	body = harness_http_get(b.http, "/v1/nope", &status);
	ck_assert_int_eq(status, 404);
	free(body);
	tvmpeer_free(waiter);
	tvmpeer_free(cli);
	tvmpeer_free(srv);
}
END_TEST

START_TEST(test_ledger_survives_restart)
{
	struct tvmpeer *srv = peer(), *cli = peer();
	char *rows;
	int status;

	send_hex(srv, TRK03);
	expect_hex(srv, TRK04);
	send_hex(srv, TRK06);
	expect_hex(srv, TRK04);
	send_hex(cli, TRK09);
	free(recv_text(cli));
	/* Kill -9: what was committed must be there after the restart. */
	usleep(100000);
	kill(b.pid, SIGKILL);
	waitpid(b.pid, &status, 0);
	b.pid = 0;
	tvmpeer_free(cli);
	tvmpeer_free(srv);
	harness_broker_restart(&b, NULL);
	rows = harness_sql(b.db, "SELECT key, matchkey, released_us IS NOT "
				 "NULL, detail LIKE 'broker restarted%' FROM "
				 "leases; SELECT state FROM boards");
	ck_assert_str_eq(rows, "rk3588|rk3588:0.8444218515250481|1|1\n"
			       "offline\n");
	free(rows);
}
END_TEST

START_TEST(test_signal_exit_clean)
{
	/* SIGTERM with live connections of every kind still exits 0. */
	struct tvmpeer *srv = peer(), *cli = peer();

	send_hex(srv, TRK06);
	expect_hex(srv, TRK04);
	ck_assert_int_eq(tvmpeer_request(cli, "other", "", 1), 0);
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	tvmpeer_free(cli);
	tvmpeer_free(srv);
}
END_TEST

static const char *const deadlines[] = {
    "--unknown-key-grace", "0.3", "--request-timeout", "0.8", NULL};

static void
start_deadlines(void)
{
	harness_broker_start(&b, deadlines);
}

START_TEST(test_unknown_key_fails_after_grace)
{
	struct tvmpeer *srv = peer(), *cli = peer();
	char *s, *rows;

	ck_assert_int_eq(
	    tvmpeer_put(srv, "rk3399", 9090, "rk3399:0.1", NULL), 0);
	expect_hex(srv, TRK04);
	ck_assert_int_eq(tvmpeer_request(cli, "rk3588x", "", 1), 0);
	s = recv_text(cli);
	ck_assert_str_eq(s, "[-1, \"npufarm: no board with key 'rk3588x' "
			    "registered within 0.3 s (unknown_key_grace); keys "
			    "with boards: 'rk3399'\"]");
	free(s);
	/* The connection stays usable, as TVM clients expect. */
	ck_assert_int_eq(tvmpeer_ping(cli), 0);
	expect_hex(cli, TRK04);
	tvmpeer_free(cli);
	tvmpeer_free(srv);
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	rows = harness_sql(b.db, "SELECT key, outcome, granted_us IS NULL "
				 "FROM leases");
	ck_assert_str_eq(rows, "rk3588x|rejected|1\n");
	free(rows);
}
END_TEST

START_TEST(test_request_timeout_expires)
{
	struct tvmpeer *srv = peer(), *a = peer(), *c = peer();
	struct tvmpeer_grant g;
	struct npufarm_err err;
	char *s, *rows;

	ck_assert_int_eq(tvmpeer_put(srv, "k", 9090, "k:0.1", NULL), 0);
	expect_hex(srv, TRK04);
	ck_assert_int_eq(tvmpeer_request(a, "k", "", 1), 0);
	ck_assert_int_eq(tvmpeer_recv_grant(a, T_MS, &g, &err), 0);
	/* The only board is leased: c waits past the grace (the key has a
	 * board, so no "unknown key") until the request timeout. */
	ck_assert_int_eq(tvmpeer_request(c, "k", "", 1), 0);
	s = recv_text(c);
	ck_assert_str_eq(s, "[-1, \"npufarm: no board of key 'k' became free "
			    "within 0.8 s (request_timeout); 1 boards, 1 "
			    "leased, 0 requests waiting\"]");
	free(s);
	tvmpeer_free(c);
	tvmpeer_free(a);
	tvmpeer_free(srv);
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	rows = harness_sql(b.db, "SELECT outcome FROM leases ORDER BY id");
	ck_assert_str_eq(rows, "lost\nexpired\n");
	free(rows);
}
END_TEST

START_TEST(test_board_arriving_within_grace_is_granted)
{
	struct tvmpeer *srv, *cli = peer();
	struct tvmpeer_grant g;
	struct npufarm_err err;

	ck_assert_int_eq(tvmpeer_request(cli, "late", "", 1), 0);
	usleep(100000);
	srv = peer();
	ck_assert_int_eq(tvmpeer_put(srv, "late", 9090, "late:0.1", NULL), 0);
	expect_hex(srv, TRK04);
	ck_assert_int_eq(tvmpeer_recv_grant(cli, T_MS, &g, &err), 0);
	ck_assert_str_eq(g.matchkey, "late:0.1");
	tvmpeer_free(cli);
	tvmpeer_free(srv);
}
END_TEST

START_TEST(test_update_info_merges_and_passes_through)
{
	struct tvmpeer *a = peer(), *bb = peer(), *q = peer();
	static const char i1[] =
	    "[5, {\"key\": \"server:rk3588\", \"addr\": [null, 9090]}]";
	static const char i2[] = "[5, {\"addr\": [\"10.0.0.5\", 9091], "
				 "\"extra\": {\"a\": [1, \"\\u00e9\"]}}]";
	static const char i3[] = "[5, {\"key\": \"client\", \"addr\": "
				 "[null, 1]}]";
	char *s;

	ck_assert_int_eq(tvmpeer_send_frame(a, i1, strlen(i1)), 0);
	expect_hex(a, TRK04);
	ck_assert_int_eq(tvmpeer_send_frame(a, i2, strlen(i2)), 0);
	expect_hex(a, TRK04);
	ck_assert_int_eq(tvmpeer_send_frame(bb, i3, strlen(i3)), 0);
	expect_hex(bb, TRK04);
	send_hex(q, TRK14);
	s = recv_text(q);
	/* Merged like dict.update, extra fields and escapes kept; a
	 * connection whose key is not "server..." is not listed. */
	ck_assert_str_eq(s, "[0, {\"queue_info\": {}, \"server_info\": "
			    "[{\"key\": \"server:rk3588\", \"addr\": "
			    "[\"10.0.0.5\", 9091], \"extra\": {\"a\": [1, "
			    "\"\\u00e9\"]}}]}]");
	free(s);
	tvmpeer_free(q);
	tvmpeer_free(bb);
	tvmpeer_free(a);
}
END_TEST

START_TEST(test_drain_stops_grants)
{
	struct tvmpeer *srv = peer(), *cli = peer();
	struct pollfd pfd;
	char *body;
	int status;

	send_hex(srv, TRK03);
	expect_hex(srv, TRK04);
	send_hex(srv, TRK06);
	expect_hex(srv, TRK04);
	body = harness_http(b.http, "POST", "/v1/boards/1/drain", &status);
	ck_assert_int_eq(status, 200);
	ck_assert_msg(
	    strstr(body, "\"drained\":true") && strstr(body, "\"live\":true"),
	    "%s", body);
	free(body);
	/* No grant while drained; the server still sees its key pending. */
	send_hex(cli, TRK09);
	pfd.fd = tvmpeer_fd(cli);
	pfd.events = POLLIN;
	ck_assert_int_eq(poll(&pfd, 1, 300), 0);
	send_hex(srv, TRK11);
	expect_hex(srv, TRK12);
	body = harness_http_get(b.http, "/v1/boards", &status);
	ck_assert_msg(strstr(body, "\"state\":\"draining\"") &&
			  strstr(body, "\"drained\":true"),
	    "%s", body);
	free(body);
	/* Undrain: the waiting client gets the board at once. */
	body = harness_http(b.http, "POST", "/v1/boards/1/undrain", &status);
	ck_assert_int_eq(status, 200);
	free(body);
	{
		char *g = recv_text(cli);

		ck_assert_str_eq(g, "[0, [\"127.0.0.1\", 9090, "
				    "\"rk3588:0.8444218515250481\"]]");
		free(g);
	}
	body = harness_http(b.http, "POST", "/v1/boards/99/drain", &status);
	ck_assert_int_eq(status, 404);
	free(body);
	body = harness_http_get(b.http, "/v1/boards/1/drain", &status);
	ck_assert_int_eq(status, 405);
	free(body);
	tvmpeer_free(cli);
	tvmpeer_free(srv);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tracker");
	TCase *tc = tcase_create("tracker");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, start, stop);
	tcase_add_test(tc, test_python_server_and_client_byte_exact);
	tcase_add_test(tc, test_custom_addr_grant_is_trk10);
	tcase_add_test(tc, test_cpp_server_string_port);
	tcase_add_test(tc, test_magic_and_frame_in_one_segment);
	tcase_add_test(tc, test_registration_dies_with_connection);
	tcase_add_test(tc, test_dead_client_never_granted);
	tcase_add_test(tc, test_request_with_fin_never_granted);
	tcase_add_test(tc, test_priority_order_end_to_end);
	tcase_add_test(tc, test_http_api_shows_boards_queue_leases);
	tcase_add_test(tc, test_ledger_survives_restart);
	tcase_add_test(tc, test_signal_exit_clean);
	tcase_add_test(tc, test_update_info_merges_and_passes_through);
	tcase_add_test(tc, test_drain_stops_grants);
	suite_add_tcase(s, tc);
	tc = tcase_create("deadlines");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, start_deadlines, stop);
	tcase_add_test(tc, test_unknown_key_fails_after_grace);
	tcase_add_test(tc, test_request_timeout_expires);
	tcase_add_test(tc, test_board_arriving_within_grace_is_granted);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
