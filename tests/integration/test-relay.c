/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The farm port as a TVM RPC proxy: a board dials in with "server:KEY", a
 * client asks the tracker for KEY, connects back with the matchkey, and the
 * broker relays.  Raw bytes from the spec's vectors on both sides; each
 * outcome is checked on the wire and in the ledger.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "err.h"
#include "frame.h"
#include "harness.h"
#include "tvmpeer.h"

#define T_MS 5000

#define HS05     "71f20f00090000007365727665723a7831" /* server:x1 */
#define HS07     "71f20f00090000007365727665723a7831" /* to client */
#define MISMATCH "73f20f00"
#define EP01     "1500000000000000020000000500000000000000302e382e3000000000"
#define EP02     "0c00000000000000040000000100000004000000"
#define EP05                                                               \
	"1c00000000000000030000000000aaaa5555000001000000000000000a000000" \
	"00000000"
#define EP09                                                               \
	"770000000000000005000000010000000b000000630000000000000052504353" \
	"657373696f6e54696d656f75744572726f723a20596f757220312e3073207365" \
	"7373696f6e2068617320657870697265642c2074727920746f20696e63726561" \
	"736520746865202273657373696f6e5f74696d656f7574222076616c75652e"
#define EP10                                                               \
	"290000000000000005000000010000000b000000150000000000000056616c75" \
	"654572726f723a2062616420696e707574"
#define EP11 "040000000000000001000000"
/* EP-09 as a tvm-ffi server says it (type index 8, tvm-ffi-era.md
 * §2.5): what a session whose dialect is not known yet gets (§3.2). */
#define FFI_T1                                                               \
	"770000000000000005000000010000000800000063000000000000005250435365" \
	"7373696f6e54696d656f75744572726f723a20596f757220312e30732073657373" \
	"696f6e2068617320657870697265642c2074727920746f20696e63726561736520" \
	"746865202273657373696f6e5f74696d656f7574222076616c75652e"
/* FFI-03/04/05: a v0.26 session's first packets; FFI-20 its timeout. */
#define FFI03 "1500000000000000020000000500000000000000302e382e3000000000"
#define FFI04 "0c00000000000000040000000100000000000000"
#define FFI05                                                              \
	"2900000000000000090000000100000008000000150000000000000074766d2e" \
	"7270632e7365727665722e75706c6f6164"
#define FFI20                                                                  \
	"77000000000000000500000001000000080000006300000000000000525043536573" \
	"73696f6e54696d656f75744572726f723a20596f757220322e30732073657373696f" \
	"6e2068617320657870697265642c2074727920746f20696e63726561736520746865" \
	"202273657373696f6e5f74696d656f7574222076616c75652e"
#define EP17                                                               \
	"290000000000000009000000010000000b000000150000000000000074766d2e" \
	"7270632e7365727665722e72656d6f7665"

static struct harness_broker b;

static void
start(void)
{
	static const char *const extra[] = {
	    "--pair-timeout", "1", "--board-grace", "1", NULL};

	harness_broker_start(&b, extra);
}

static void
stop(void)
{
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}

static struct tvmpeer *
raw(void)
{
	struct npufarm_err err;
	struct tvmpeer *p;

	ck_assert_msg(tvmpeer_open(b.farm, T_MS, &p, &err) == 0, "%s", err.msg);
	return p;
}

static void
send_hex(struct tvmpeer *p, const char *hex)
{
	unsigned char v[512];
	size_t n = harness_unhex(hex, v, sizeof(v));

	ck_assert_int_eq(tvmpeer_send_raw(p, v, n), 0);
}

static void
send_bytes(struct tvmpeer *p, const void *v, size_t n)
{
	ck_assert_int_eq(tvmpeer_send_raw(p, v, n), 0);
}

/* Read exactly @n bytes or fail the test. */
static void
read_exact(struct tvmpeer *p, unsigned char *buf, size_t n)
{
	struct pollfd pfd = {tvmpeer_fd(p), POLLIN, 0};
	size_t got = 0;

	while (got < n) {
		ssize_t k;

		int pr = poll(&pfd, 1, T_MS);

		ck_assert_msg(pr == 1,
		    "timed out after %zu of %zu bytes (%d %s)", got, n, pr,
		    pr < 0 ? strerror(errno) : "");
		k = read(tvmpeer_fd(p), buf + got, n - got);
		ck_assert_msg(k > 0, "closed after %zu of %zu bytes", got, n);
		got += (size_t)k;
	}
}

static void
expect_hex(struct tvmpeer *p, const char *hex)
{
	unsigned char want[512], got[512];
	size_t n = harness_unhex(hex, want, sizeof(want));

	char seen[2 * sizeof(got) + 1];
	size_t i;

	read_exact(p, got, n);
	for (i = 0; i < n; i++)
		(void)snprintf(seen + 2 * i, 3, "%02x", got[i]);
	ck_assert_msg(
	    memcmp(got, want, n) == 0, "bytes %s differ from %s", seen, hex);
}

/* An RPC hello: magic, length, key, in one write. */
static void
hello(struct tvmpeer *p, const char *key)
{
	unsigned char buf[512];
	size_t n = strlen(key);

	frame_put_le32(buf, 0xFF271);
	frame_put_le32(buf + 4, (uint32_t)n);
	memcpy(buf + 8, key, n);
	send_bytes(p, buf, 8 + n);
}

/* SUCCESS and the key that follows it; returns the key (malloc'd). */
static char *
expect_success(struct tvmpeer *p)
{
	unsigned char hdr[8];
	char *key;
	uint32_t n;

	read_exact(p, hdr, 8);
	ck_assert_uint_eq(frame_get_le32(hdr), 0xFF271);
	n = frame_get_le32(hdr + 4);
	ck_assert_uint_lt(n, 1024);
	key = calloc(1, n + 1);
	read_exact(p, (unsigned char *)key, n);
	return key;
}

/*
 * A kException (code 5) packet with string type @type (11: v0.14, 8:
 * tvm-ffi); returns its message (malloc'd).
 */
static char *
expect_exception_typed(struct tvmpeer *p, uint32_t type)
{
	unsigned char hdr[28];
	uint64_t len;
	char *msg;

	read_exact(p, hdr, 28);
	ck_assert_uint_eq(frame_get_le32(hdr + 8), 5);
	ck_assert_uint_eq(frame_get_le32(hdr + 16), type);
	len = frame_get_le32(hdr + 20);
	ck_assert_uint_eq(frame_get_le32(hdr), 20 + len);
	msg = calloc(1, len + 1);
	read_exact(p, (unsigned char *)msg, len);
	return msg;
}

/* A kException of a session whose dialect is not known: tvm-ffi's. */
static char *
expect_exception(struct tvmpeer *p)
{
	return expect_exception_typed(p, 8);
}

static struct tvmpeer *
board(void)
{
	struct tvmpeer *p = raw();

	hello(p, "server:x1");
	return p;
}

/* A tuner: REQUEST through the tracker, then connect back and pair. */
static struct tvmpeer *
client(const char *timeout_opt, struct tvmpeer *brd)
{
	struct tvmpeer *trk, *p;
	struct tvmpeer_grant g;
	struct npufarm_err err;
	char key[300], *k;

	ck_assert_int_eq(tvmpeer_connect(b.farm, T_MS, &trk, &err), 0);
	ck_assert_int_eq(tvmpeer_request(trk, "x1", "", 1), 0);
	ck_assert_msg(
	    tvmpeer_recv_grant(trk, T_MS, &g, &err) == 0, "%s", err.msg);
	tvmpeer_free(trk);
	/* The grant names the broker itself. */
	ck_assert_str_eq(g.host, "127.0.0.1");
	ck_assert_int_eq(g.port, atoi(strrchr(b.farm, ':') + 1));
	ck_assert(strncmp(g.matchkey, "x1:", 3) == 0);
	p = raw();
	(void)snprintf(
	    key, sizeof(key), "client:%s%s", g.matchkey, timeout_opt);
	hello(p, key);
	/* Each side learns the other's full key (spec §4.2). */
	expect_hex(p, HS07);
	k = expect_success(brd);
	ck_assert_str_eq(k, key);
	free(k);
	return p;
}

/* The newest lease's row by @sql starts with @prefix, within 4 s. */
static void
expect_sql_row(const char *sql, const char *prefix)
{
	char *row = NULL;
	int i;

	/* The ledger row is written when the board side ends. */
	for (i = 0; i < 200; i++) {
		free(row);
		row = harness_sql(b.db, sql);
		if (strncmp(row, prefix, strlen(prefix)) == 0)
			break;
		usleep(20000);
	}
	ck_assert_msg(strncmp(row, prefix, strlen(prefix)) == 0,
	    "row '%s' does not start '%s'", row, prefix);
	free(row);
}

static void
expect_row(const char *prefix)
{
	expect_sql_row(
	    "SELECT outcome, requests, exceptions, bytes_to_board > 0,"
	    " bytes_to_client > 0, session_start_us IS NOT NULL, detail"
	    " FROM leases WHERE granted_us IS NOT NULL ORDER BY id DESC"
	    " LIMIT 1",
	    prefix);
}

/* The shortest session, kInitServer then kShutdown, ended ok. */
static void
short_session(struct tvmpeer *cli, struct tvmpeer *brd)
{
	send_hex(cli, EP01);
	expect_hex(brd, EP01);
	send_hex(brd, EP02);
	expect_hex(cli, EP02);
	send_hex(cli, EP11);
	expect_hex(brd, EP11);
	tvmpeer_free(cli);
	tvmpeer_free(brd);
	expect_row("ok|1|0|1|1|1|");
}

START_TEST(test_relay_ok_session)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=5", brd);

	send_hex(cli, EP01);
	expect_hex(brd, EP01);
	send_hex(brd, EP02);
	expect_hex(cli, EP02);
	send_hex(cli, EP05);
	expect_hex(brd, EP05);
	send_hex(brd, EP02);
	expect_hex(cli, EP02);
	send_hex(cli, EP11);
	expect_hex(brd, EP11);
	/* kShutdown ends the session on both sides at once. */
	ck_assert(harness_wait_closed(tvmpeer_fd(cli), 2000));
	ck_assert(harness_wait_closed(tvmpeer_fd(brd), 2000));
	tvmpeer_free(cli);
	tvmpeer_free(brd);
	expect_row("ok|2|0|1|1|1|client shut down after 2 requests");
	/* The API shows what the broker saw of the session. */
	{
		int status;
		char *body =
		    harness_http_get(b.http, "/v1/leases?limit=1", &status);
		json_t *v = json_loads(body, 0, NULL), *sess;

		ck_assert_int_eq(status, 200);
		sess = json_object_get(
		    json_array_get(json_object_get(v, "leases"), 0), "session");
		ck_assert(json_is_object(sess));
		ck_assert_int_eq(
		    json_integer_value(json_object_get(sess, "requests")), 2);
		ck_assert_int_eq(json_integer_value(
				     json_object_get(sess, "bytes_to_client")),
		    40);
		json_decref(v);
		free(body);
	}
}
END_TEST

START_TEST(test_relay_timeout_silent_board)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=1", brd);

	send_hex(cli, EP01);
	expect_hex(brd, EP01);
	/* The board never answers, so the dialect is unknown: at 1 s the
	 * client gets TVM's timeout exception in the form both kinds of
	 * client survive (tvm-ffi-era.md §3.2), and the board is closed. */
	expect_hex(cli, FFI_T1);
	ck_assert(harness_wait_closed(tvmpeer_fd(brd), T_MS));
	tvmpeer_free(brd);
	/* Tuner cleanup on the dead session fails with the same error,
	 * every call of it; its kGetGlobalFunc names a function as v0.14's
	 * string type 11, so from now on the error is v0.14's (D2). */
	send_hex(cli, EP17);
	expect_hex(cli, EP09);
	send_hex(cli, EP17);
	expect_hex(cli, EP09);
	send_hex(cli, EP17);
	expect_hex(cli, EP09);
	send_hex(cli, EP11);
	ck_assert(harness_wait_closed(tvmpeer_fd(cli), T_MS));
	tvmpeer_free(cli);
	expect_row("timeout|1|1|1|1|1|session deadline of 1 s passed while a "
		   "reply was owed");
}
END_TEST

/* A v0.14 board answered kInitServer: its timeout is v0.14's, EP-09. */
START_TEST(test_relay_timeout_v014_board)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=1", brd);

	send_hex(cli, EP01);
	expect_hex(brd, EP01);
	send_hex(brd, EP02);
	expect_hex(cli, EP02);
	send_hex(cli, EP17);
	expect_hex(brd, EP17);
	expect_hex(cli, EP09);
	send_hex(cli, EP17);
	expect_hex(cli, EP09);
	tvmpeer_free(brd);
	tvmpeer_free(cli);
	expect_row("timeout|2|1|1|1|1|session deadline of 1 s passed while a "
		   "reply was owed");
}
END_TEST

/* A v0.26 board: FFI-20 exactly, never the v0.14 form that kills a v0.26
 * client (FFI-N1); the same for a crash. */
START_TEST(test_relay_timeout_ffi_board)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=2", brd);
	char *msg;

	send_hex(cli, FFI03);
	expect_hex(brd, FFI03);
	send_hex(brd, FFI04);
	expect_hex(cli, FFI04);
	send_hex(cli, FFI05);
	expect_hex(brd, FFI05);
	expect_hex(cli, FFI20);
	send_hex(cli, FFI05);
	expect_hex(cli, FFI20);
	tvmpeer_free(brd);
	tvmpeer_free(cli);
	expect_row("timeout|2|1|1|1|1|session deadline of 2 s passed while a "
		   "reply was owed");

	brd = board();
	cli = client(" -timeout=5", brd);
	send_hex(cli, FFI03);
	expect_hex(brd, FFI03);
	send_hex(brd, FFI04);
	expect_hex(cli, FFI04);
	send_hex(cli, FFI05);
	expect_hex(brd, FFI05);
	tvmpeer_free(brd);
	msg = expect_exception_typed(cli, 8);
	ck_assert_msg(
	    strstr(msg, "board ended the session abnormally"), "%s", msg);
	free(msg);
	tvmpeer_free(cli);
}
END_TEST

START_TEST(test_relay_board_own_timeout_one_exception)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=3", brd);
	unsigned char extra;

	send_hex(cli, EP01);
	expect_hex(brd, EP01);
	/* The board enforces its own deadline first and hangs up. */
	send_hex(brd, EP09);
	tvmpeer_free(brd);
	expect_hex(cli, EP09);
	/* Not a second one at the broker's deadline. */
	{
		struct pollfd pfd = {tvmpeer_fd(cli), POLLIN, 0};

		ck_assert_int_eq(poll(&pfd, 1, 3500), 0);
		(void)extra;
	}
	send_hex(cli, EP17);
	expect_hex(cli, EP09);
	tvmpeer_free(cli);
	expect_row("timeout|1|1|1|1|1|RPCSessionTimeoutError: ");
}
END_TEST

START_TEST(test_relay_board_exception_passes_through)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=5", brd);

	send_hex(cli, EP05);
	expect_hex(brd, EP05);
	send_hex(brd, EP10);
	expect_hex(cli, EP10);
	send_hex(cli, EP11);
	expect_hex(brd, EP11);
	tvmpeer_free(cli);
	tvmpeer_free(brd);
	expect_row("exception|1|1|1|1|1|ValueError: bad input");
}
END_TEST

START_TEST(test_relay_board_crash_mid_call)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=5", brd);
	char *msg;

	send_hex(cli, EP05);
	expect_hex(brd, EP05);
	/* Half a reply, then the board dies. */
	send_hex(brd, "0c000000000000000400");
	tvmpeer_free(brd);
	msg = expect_exception(cli);
	ck_assert_msg(strstr(msg, "board ended the session abnormally") &&
			  strstr(msg, "in the middle of a packet") &&
			  strstr(msg, "while a reply was owed"),
	    "%s", msg);
	free(msg);
	tvmpeer_free(cli);
	expect_row("crash|1|1|1|1|1|the board ended the session abnormally");
}
END_TEST

START_TEST(test_relay_board_garbage_length)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=5", brd);
	char *msg;

	send_hex(cli, EP05);
	expect_hex(brd, EP05);
	send_hex(brd, "0000000000000010ffffffff"); /* N = 2^60 */
	msg = expect_exception(cli);
	ck_assert_msg(strstr(msg, "malformed packet"), "%s", msg);
	free(msg);
	ck_assert(harness_wait_closed(tvmpeer_fd(brd), T_MS));
	tvmpeer_free(brd);
	tvmpeer_free(cli);
	expect_row("crash|1|1|1|1|1|the board ended the session abnormally: it "
		   "sent a malformed packet");
}
END_TEST

START_TEST(test_relay_client_vanishes)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=5", brd);

	send_hex(cli, EP05);
	expect_hex(brd, EP05);
	tvmpeer_free(cli);
	ck_assert(harness_wait_closed(tvmpeer_fd(brd), T_MS));
	tvmpeer_free(brd);
	expect_row("lost|1|0|1|0|1|client vanished mid-session");
}
END_TEST

START_TEST(test_relay_unknown_matchkey_mismatch)
{
	struct tvmpeer *p = raw();

	hello(p, "client:x1:npufarm-0000000000000000 -timeout=5");
	expect_hex(p, MISMATCH);
	ck_assert(harness_wait_closed(tvmpeer_fd(p), T_MS));
	tvmpeer_free(p);
}
END_TEST

START_TEST(test_relay_standalone_client_key)
{
	/* rpc.connect(broker, port, key="x1"): no tracker round trip. */
	struct tvmpeer *brd = board(), *cli = raw();
	char *k;

	hello(cli, "client:x1");
	expect_hex(cli, HS07);
	k = expect_success(brd);
	ck_assert_str_eq(k, "client:x1");
	free(k);
	short_session(cli, brd);
}
END_TEST

START_TEST(test_relay_unused_grant_returns_board)
{
	struct tvmpeer *brd = board(), *trk, *trk2;
	struct tvmpeer_grant g, g2;
	struct npufarm_err err;

	ck_assert_int_eq(tvmpeer_connect(b.farm, T_MS, &trk, &err), 0);
	ck_assert_int_eq(tvmpeer_request(trk, "x1", "", 1), 0);
	ck_assert_int_eq(tvmpeer_recv_grant(trk, T_MS, &g, &err), 0);
	/* Never connects: after --pair-timeout 1 the board is free again,
	 * under a fresh matchkey. */
	ck_assert_int_eq(tvmpeer_connect(b.farm, T_MS, &trk2, &err), 0);
	ck_assert_int_eq(tvmpeer_request(trk2, "x1", "", 1), 0);
	ck_assert_int_eq(tvmpeer_recv_grant(trk2, T_MS, &g2, &err), 0);
	ck_assert_str_ne(g.matchkey, g2.matchkey);
	tvmpeer_free(trk2);
	tvmpeer_free(trk);
	tvmpeer_free(brd);
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	{
		char *rows = harness_sql(b.db,
		    "SELECT outcome, detail LIKE '%never connected%' FROM "
		    "leases ORDER BY id LIMIT 1");

		ck_assert_str_eq(rows, "lost|1\n");
		free(rows);
	}
}
END_TEST

START_TEST(test_relay_bytes_before_pairing_close)
{
	struct tvmpeer *brd = board();

	usleep(50000);
	send_hex(brd, EP11);
	ck_assert(harness_wait_closed(tvmpeer_fd(brd), T_MS));
	tvmpeer_free(brd);
	ck_assert(harness_log_contains(&b, "bytes before being paired"));
}
END_TEST

START_TEST(test_relay_board_in_summary)
{
	struct tvmpeer *brd = board(), *q;
	struct npufarm_err err;
	const char *body;
	size_t len;
	char *s;

	usleep(50000);
	ck_assert_int_eq(tvmpeer_connect(b.farm, T_MS, &q, &err), 0);
	ck_assert_int_eq(tvmpeer_summary(q), 0);
	ck_assert_int_eq(tvmpeer_recv_frame(q, T_MS, &body, &len), 0);
	s = strndup(body, len);
	ck_assert_msg(
	    strstr(s, "\"x1\": {\"free\": 1, \"pending\": 0}") &&
		strstr(
		    s, "{\"key\": \"server:x1\", \"addr\": [\"127.0.0.1\", "),
	    "%s", s);
	free(s);
	tvmpeer_free(q);
	tvmpeer_free(brd);
}
END_TEST

static const char *const tight[] = {
    "--relay-buffer", "65536", "--max-relays", "1", NULL};

static void
start_tight(void)
{
	harness_broker_start(&b, tight);
}

static long
broker_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	(void)snprintf(path, sizeof(path), "/proc/%d/status", (int)b.pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

START_TEST(test_relay_slow_client_backpressure)
{
	enum { NPKT = 32, PKT = 1024 * 1024 };
	struct tvmpeer *brd = board(), *cli = client(" -timeout=30", brd);
	unsigned char hdr[12], *buf = malloc(PKT);
	long before, during;
	pid_t writer;
	int i, status;

	send_hex(cli, EP05);
	expect_hex(brd, EP05);
	before = broker_rss_kb();
	/* The board streams 32 MiB of replies to a client that does not
	 * read: the broker must stop reading the board, not buffer it. */
	writer = fork();
	ck_assert_int_ge(writer, 0);
	if (writer == 0) {
		memset(buf, 0x5a, PKT);
		frame_put_le32(hdr, PKT + 4);
		memset(hdr + 4, 0, 4);
		frame_put_le32(hdr + 8, 8); /* kCopyAck */
		for (i = 0; i < NPKT; i++)
			if (tvmpeer_send_raw(brd, hdr, 12) < 0 ||
			    tvmpeer_send_raw(brd, buf, PKT) < 0)
				_exit(1);
		_exit(0);
	}
	usleep(1500000);
	during = broker_rss_kb();
	/* Buffering the 32 MiB would grow it by 30 MB or more; allow 16 MB
	 * for what the sanitizer build's allocator keeps in quarantine. */
	ck_assert_msg(during - before < 16 * 1024,
	    "broker RSS grew by %ld kB with 32 MiB pending", during - before);
	/* Now read everything: every byte arrives, in whole packets. */
	for (i = 0; i < NPKT; i++) {
		read_exact(cli, hdr, 12);
		ck_assert_uint_eq(frame_get_le32(hdr), PKT + 4);
		ck_assert_uint_eq(frame_get_le32(hdr + 8), 8);
		read_exact(cli, buf, PKT);
		ck_assert(buf[0] == 0x5a && buf[PKT - 1] == 0x5a);
	}
	ck_assert_int_eq(waitpid(writer, &status, 0), writer);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(buf);
	tvmpeer_free(cli);
	tvmpeer_free(brd);
}
END_TEST

START_TEST(test_relay_limit_max_relays)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=30", brd);
	struct tvmpeer *other = raw();

	/* One relay is the limit: a second client is refused at once. */
	hello(other, "client:x1");
	expect_hex(other, MISMATCH);
	ck_assert(harness_wait_closed(tvmpeer_fd(other), T_MS));
	tvmpeer_free(other);
	ck_assert(harness_log_contains(&b, "limit max_relays"));
	/* The running session is unharmed. */
	send_hex(cli, EP01);
	expect_hex(brd, EP01);
	tvmpeer_free(cli);
	tvmpeer_free(brd);
}
END_TEST

START_TEST(test_relay_timeout_during_upload)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=1", brd);
	unsigned char v[64];
	size_t n = harness_unhex(EP05, v, sizeof(v));
	struct pollfd pfd;

	send_hex(cli, EP01);
	expect_hex(brd, EP01);
	send_hex(brd, EP02);
	expect_hex(cli, EP02);
	/* Half a request when the deadline passes: the exception is sent at
	 * once, at a packet boundary, and answers that request... */
	send_bytes(cli, v, n / 2);
	expect_hex(cli, EP09);
	send_bytes(cli, v + n / 2, n - n / 2);
	pfd.fd = tvmpeer_fd(cli);
	pfd.events = POLLIN;
	ck_assert_int_eq(poll(&pfd, 1, 500), 0); /* ...so no second one */
	/* The next request gets its own. */
	send_hex(cli, EP17);
	expect_hex(cli, EP09);
	tvmpeer_free(cli);
	tvmpeer_free(brd);
	expect_row("timeout|1|1|1|1|1|session deadline of 1 s passed while the "
		   "client was sending a request");
}
END_TEST

/* Whether the peer of @fd has closed it, without waiting or reading. */
static bool
peer_closed(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Nothing arrives on @p within @ms. */
static void
expect_silence(struct tvmpeer *p, int ms)
{
	struct pollfd pfd = {tvmpeer_fd(p), POLLIN, 0};

	ck_assert_int_eq(poll(&pfd, 1, ms), 0);
}

/*
 * A TVM Python server behind the proxy enforces -timeout=T itself (its
 * _serving): at T it writes its own kException with a blocking write and,
 * if that write fails, its proxy loop dies for good.  The broker's
 * exception reaches the client at T, and the board's connection stays
 * open for its late write, which the client never sees; the board's next
 * dial-in is a free board.
 */
START_TEST(test_relay_board_survives_its_own_timeout)
{
	struct tvmpeer *brd = board(), *cli = client(" -timeout=1", brd);
	unsigned char exc[256];
	size_t n = harness_unhex(EP09, exc, sizeof(exc));

	send_hex(cli, EP01);
	expect_hex(brd, EP01);
	send_hex(brd, EP02);
	expect_hex(cli, EP02);
	send_hex(cli, EP17);
	expect_hex(brd, EP17);
	expect_hex(cli, EP09);
	usleep(200 * 1000); /* the board's own timer fires a little later */
	ck_assert_msg(!peer_closed(tvmpeer_fd(brd)),
	    "the broker closed the board's connection at the deadline");
	ck_assert_int_eq(
	    send(tvmpeer_fd(brd), exc, n, MSG_NOSIGNAL), (ssize_t)n);
	tvmpeer_free(brd);
	expect_silence(cli, 300); /* the late exception is not relayed */
	tvmpeer_free(cli);
	expect_row("timeout|2|1|1|1|1|session deadline of 1 s passed");
	ck_assert(harness_log_contains(&b, "closed its timed-out session"));

	/* The same server dials in again and serves the next session. */
	brd = board();
	cli = client(" -timeout=5", brd);
	short_session(cli, brd);
}
END_TEST

/* ---- boards registered by PUT, relayed: --relay-boards all ----------- */

/* A fake TVM server registered by PUT: a listening socket and a tracker
 * connection that registered it under key x2. */
struct putboard {
	int lfd;
	long port;
	struct tvmpeer *trk;
	char matchkey[64];
};

static void
start_relay_all(void)
{
	static const char *const extra[] = {"--relay-boards", "all",
	    "--board-grace", "1", "--pair-timeout", "2", "--handshake-timeout",
	    "1", NULL};

	harness_broker_start(&b, extra);
}

/* Listen on a free loopback port (or, @dead, one nobody listens on) and
 * PUT it for key x2 under matchkey x2:@n. */
static void
putboard_open(struct putboard *pb, int n, bool dead)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	struct npufarm_err err;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pb->lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(pb->lfd, 0);
	ck_assert_int_eq(bind(pb->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(pb->lfd, 4), 0);
	ck_assert_int_eq(getsockname(pb->lfd, (struct sockaddr *)&sa, &len), 0);
	pb->port = ntohs(sa.sin_port);
	if (dead) {
		close(pb->lfd);
		pb->lfd = -1;
	}
	(void)snprintf(pb->matchkey, sizeof(pb->matchkey), "x2:0.%d", n);
	ck_assert_int_eq(tvmpeer_connect(b.farm, T_MS, &pb->trk, &err), 0);
	ck_assert_int_eq(tvmpeer_update_info(pb->trk, "x2", pb->port), 0);
	ck_assert_int_eq(tvmpeer_recv_ok(pb->trk, T_MS, &err), 0);
	ck_assert_int_eq(
	    tvmpeer_put(pb->trk, "x2", pb->port, pb->matchkey, NULL), 0);
	ck_assert_int_eq(tvmpeer_recv_ok(pb->trk, T_MS, &err), 0);
}

/* The board's next matchkey, as a TVM server PUTs after a session. */
static void
putboard_reput(struct putboard *pb, const char *matchkey)
{
	struct npufarm_err err;

	(void)snprintf(pb->matchkey, sizeof(pb->matchkey), "%s", matchkey);
	ck_assert_int_eq(
	    tvmpeer_put(pb->trk, "x2", pb->port, pb->matchkey, NULL), 0);
	ck_assert_int_eq(tvmpeer_recv_ok(pb->trk, T_MS, &err), 0);
}

static void
putboard_close(struct putboard *pb)
{
	if (pb->lfd >= 0)
		close(pb->lfd);
	tvmpeer_free(pb->trk);
}

/* A tuner's REQUEST for x2: the grant names the broker and a matchkey of
 * its own; the tuner connects back with it. */
static struct tvmpeer *
client_x2(const char *timeout_opt, const struct putboard *pb)
{
	struct tvmpeer *trk, *p;
	struct tvmpeer_grant g;
	struct npufarm_err err;
	char key[300];

	ck_assert_int_eq(tvmpeer_connect(b.farm, T_MS, &trk, &err), 0);
	ck_assert_int_eq(tvmpeer_request(trk, "x2", "", 1), 0);
	/* A board the broker could not reach waits out its 10 s first. */
	ck_assert_msg(
	    tvmpeer_recv_grant(trk, 3 * T_MS, &g, &err) == 0, "%s", err.msg);
	tvmpeer_free(trk);
	ck_assert_str_eq(g.host, "127.0.0.1");
	ck_assert_int_eq(g.port, atoi(strrchr(b.farm, ':') + 1));
	ck_assert_str_ne(g.matchkey, pb->matchkey);
	p = raw();
	(void)snprintf(
	    key, sizeof(key), "client:%s%s", g.matchkey, timeout_opt);
	hello(p, key);
	return p;
}

/* The broker dials the board: accept it and check its hello. */
static int
putboard_accept(const struct putboard *pb, const char *want_key)
{
	struct pollfd pfd = {pb->lfd, POLLIN, 0};
	unsigned char hdr[8];
	char key[300];
	uint32_t n;
	int fd;

	ck_assert_int_eq(poll(&pfd, 1, T_MS), 1);
	fd = accept(pb->lfd, NULL, NULL);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, hdr, 8), 8);
	ck_assert_uint_eq(frame_get_le32(hdr), 0xFF271);
	n = frame_get_le32(hdr + 4);
	ck_assert_uint_lt(n, sizeof(key));
	ck_assert_int_eq(read(fd, key, n), (ssize_t)n);
	key[n] = '\0';
	ck_assert_str_eq(key, want_key);
	return fd;
}

static void
fd_send_hex(int fd, const char *hex)
{
	unsigned char v[512];
	size_t n = harness_unhex(hex, v, sizeof(v));

	ck_assert_int_eq(send(fd, v, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void
fd_expect_hex(int fd, const char *hex)
{
	unsigned char want[512], got[512];
	size_t n = harness_unhex(hex, want, sizeof(want)), k = 0;
	struct pollfd pfd = {fd, POLLIN, 0};
	ssize_t r;

	while (k < n) {
		ck_assert_int_eq(poll(&pfd, 1, T_MS), 1);
		r = read(fd, got + k, n - k);
		ck_assert_int_gt(r, 0);
		k += (size_t)r;
	}
	ck_assert(memcmp(got, want, n) == 0);
}

#define HS02_X2 "71f20f00090000007365727665723a7832" /* server:x2 */

static void
expect_row_x2(const char *prefix)
{
	expect_sql_row("SELECT outcome, ifnull(requests, 0), detail FROM "
		       "leases WHERE key = 'x2' ORDER BY id DESC LIMIT 1",
	    prefix);
}

/*
 * TVM's C++ tvm_rpc and old Python servers register by PUT and never send
 * a timeout exception.  With --relay-boards all the broker dials them with
 * their own matchkey and a -timeout they enforce a second after ours, so
 * the tuner gets RPCSessionTimeoutError, and the board lingers for its own
 * ending.  A session the board ends cleanly is ok; the board is leasable
 * again once it PUTs its next matchkey.
 */
START_TEST(test_relay_put_board_timeout_and_next_session)
{
	struct putboard pb;
	struct tvmpeer *cli;
	char want[128], *body;
	int fd, status;
	json_t *v;

	putboard_open(&pb, 1, false);
	body = harness_http_get(b.http, "/v1/boards", &status);
	v = json_loads(body, 0, NULL);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(v, "boards"), 0), "relay")),
	    "broker");
	json_decref(v);
	free(body);

	cli = client_x2(" -timeout=1", &pb);
	(void)snprintf(want, sizeof(want), "client:%s -timeout=2", pb.matchkey);
	fd = putboard_accept(&pb, want);
	fd_send_hex(fd, HS02_X2);
	expect_hex(cli, HS02_X2);
	send_hex(cli, EP01);
	fd_expect_hex(fd, EP01);
	fd_send_hex(fd, EP02);
	expect_hex(cli, EP02);
	send_hex(cli, EP17);
	fd_expect_hex(fd, EP17);
	/* The board hangs: at 1 s the client gets TVM's exception. */
	expect_hex(cli, EP09);
	send_hex(cli, EP17);
	expect_hex(cli, EP09);
	usleep(200 * 1000);
	ck_assert(!peer_closed(fd)); /* lingering for its own end */
	close(fd);
	tvmpeer_free(cli);
	expect_row_x2("timeout|2|session deadline of 1 s passed");

	/* Its next matchkey: a second session, ended by the client. */
	putboard_reput(&pb, "x2:0.2");
	cli = client_x2("", &pb);
	(void)snprintf(want, sizeof(want), "client:%s", pb.matchkey);
	fd = putboard_accept(&pb, want);
	fd_send_hex(fd, HS02_X2);
	expect_hex(cli, HS02_X2);
	send_hex(cli, EP01);
	fd_expect_hex(fd, EP01);
	fd_send_hex(fd, EP02);
	expect_hex(cli, EP02);
	send_hex(cli, EP11);
	fd_expect_hex(fd, EP11);
	close(fd);
	tvmpeer_free(cli);
	expect_row_x2("ok|1|client shut down");
	putboard_close(&pb);
}
END_TEST

/* The board dies mid-call: the tuner gets a clean RPCError, not kShutdown. */
START_TEST(test_relay_put_board_crash)
{
	struct putboard pb;
	struct tvmpeer *cli;
	char want[128], *msg;
	int fd;

	putboard_open(&pb, 3, false);
	cli = client_x2(" -timeout=10", &pb);
	(void)snprintf(
	    want, sizeof(want), "client:%s -timeout=11", pb.matchkey);
	fd = putboard_accept(&pb, want);
	fd_send_hex(fd, HS02_X2);
	expect_hex(cli, HS02_X2);
	send_hex(cli, EP01);
	fd_expect_hex(fd, EP01);
	fd_send_hex(fd, EP02);
	expect_hex(cli, EP02);
	send_hex(cli, EP05);
	fd_expect_hex(fd, EP05);
	close(fd);
	msg = expect_exception_typed(cli, 11);
	ck_assert_msg(
	    strstr(msg, "board ended the session abnormally"), "%s", msg);
	free(msg);
	tvmpeer_free(cli);
	expect_row_x2("crash|2|the board ended the session abnormally");
	putboard_close(&pb);
}
END_TEST

/* A board that refuses the matchkey, or cannot be reached: the lease is
 * lost, the tuner gets MISMATCH (TVM's client asks the tracker again), the
 * board's events say why. */
START_TEST(test_relay_put_board_refuses_or_unreachable)
{
	struct putboard pb, dead;
	struct tvmpeer *cli;
	char want[128];
	int fd;

	putboard_open(&pb, 4, false);
	cli = client_x2(" -timeout=5", &pb);
	(void)snprintf(want, sizeof(want), "client:%s -timeout=6", pb.matchkey);
	fd = putboard_accept(&pb, want);
	fd_send_hex(fd, MISMATCH);
	close(fd);
	expect_hex(cli, MISMATCH);
	ck_assert(harness_wait_closed(tvmpeer_fd(cli), T_MS));
	tvmpeer_free(cli);
	expect_row_x2("lost|0|the broker could not relay a session with board "
		      "127.0.0.1:");
	putboard_close(&pb);

	putboard_open(&dead, 5, true);
	cli = client_x2(" -timeout=5", &dead);
	expect_hex(cli, MISMATCH);
	tvmpeer_free(cli);
	expect_row_x2("lost|0|the broker could not relay a session with board");
	/* Marked: out of service with the reason, then back in 10 s. */
	{
		char sql[256];

		(void)snprintf(sql, sizeof(sql),
		    "SELECT state, detail LIKE '%%Connection refused%%' FROM "
		    "boards WHERE address = '127.0.0.1:%ld'",
		    dead.port);
		harness_wait_sql(b.db, sql, "quarantined|1\n", T_MS);
		(void)snprintf(sql, sizeof(sql),
		    "SELECT state FROM boards WHERE address = '127.0.0.1:%ld'",
		    dead.port);
		harness_wait_sql(b.db, sql, "idle\n", 3 * T_MS);
	}
	putboard_close(&dead);
	harness_wait_sql(b.db,
	    "SELECT count(*), sum(detail LIKE '%MISMATCH%'), "
	    "sum(detail LIKE '%refused%') FROM events "
	    "WHERE kind = 'board_unreachable'",
	    "2|1|1\n", T_MS);
}
END_TEST

/* A board that takes the connection but never answers: the dial's
 * deadline (--handshake-timeout) ends it; a client that leaves while the
 * broker dials ends it too.  Either way the lease is lost, nothing leaks. */
START_TEST(test_relay_put_board_silent)
{
	struct putboard pb;
	struct tvmpeer *cli;
	char want[128];
	int fd;

	putboard_open(&pb, 6, false);
	cli = client_x2(" -timeout=5", &pb);
	(void)snprintf(want, sizeof(want), "client:%s -timeout=6", pb.matchkey);
	fd = putboard_accept(&pb, want);
	expect_hex(cli, MISMATCH); /* after --handshake-timeout 1 */
	ck_assert(harness_wait_closed(fd, T_MS));
	close(fd);
	tvmpeer_free(cli);
	expect_row_x2("lost|0|the broker could not relay a session with board "
		      "127.0.0.1:");
	ck_assert(harness_log_contains(&b, "no answer to the RPC handshake"));

	putboard_reput(&pb, "x2:0.7");
	cli = client_x2(" -timeout=5", &pb);
	(void)snprintf(want, sizeof(want), "client:%s -timeout=6", pb.matchkey);
	fd = putboard_accept(&pb, want);
	tvmpeer_free(cli); /* gone before the board answers */
	ck_assert(harness_wait_closed(fd, T_MS));
	close(fd);
	expect_row_x2("lost|0|the broker could not relay a session with board "
		      "127.0.0.1:");
	ck_assert(harness_log_contains(&b, "the client left during the"));
	/* Only the silence is held against the board. */
	harness_wait_sql(b.db,
	    "SELECT count(*), sum(detail LIKE '%no answer%') FROM events "
	    "WHERE kind = 'board_unreachable'",
	    "1|1\n", T_MS);
	putboard_close(&pb);
}
END_TEST

/* A board's answer is bounded like any hello: a key over 1 KiB ends the
 * dial, as a refusal would. */
START_TEST(test_relay_put_board_oversized_answer)
{
	struct putboard pb;
	struct tvmpeer *cli;
	unsigned char hdr[8];
	char want[128];
	int fd;

	putboard_open(&pb, 8, false);
	cli = client_x2(" -timeout=5", &pb);
	(void)snprintf(want, sizeof(want), "client:%s -timeout=6", pb.matchkey);
	fd = putboard_accept(&pb, want);
	frame_put_le32(hdr, 0xFF271);
	frame_put_le32(hdr + 4, 5000);
	ck_assert_int_eq(send(fd, hdr, 8, MSG_NOSIGNAL), 8);
	expect_hex(cli, MISMATCH);
	ck_assert(harness_wait_closed(fd, T_MS));
	close(fd);
	tvmpeer_free(cli);
	expect_row_x2("lost|0|the broker could not relay a session with board "
		      "127.0.0.1:");
	ck_assert(harness_log_contains(&b, "key length 5000"));
	putboard_close(&pb);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("relay");
	TCase *tc = tcase_create("relay");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, start, stop);
	tcase_add_test(tc, test_relay_ok_session);
	tcase_add_test(tc, test_relay_timeout_silent_board);
	tcase_add_test(tc, test_relay_timeout_v014_board);
	tcase_add_test(tc, test_relay_timeout_ffi_board);
	tcase_add_test(tc, test_relay_timeout_during_upload);
	tcase_add_test(tc, test_relay_board_own_timeout_one_exception);
	tcase_add_test(tc, test_relay_board_exception_passes_through);
	tcase_add_test(tc, test_relay_board_crash_mid_call);
	tcase_add_test(tc, test_relay_board_garbage_length);
	tcase_add_test(tc, test_relay_client_vanishes);
	tcase_add_test(tc, test_relay_unknown_matchkey_mismatch);
	tcase_add_test(tc, test_relay_standalone_client_key);
	tcase_add_test(tc, test_relay_unused_grant_returns_board);
	tcase_add_test(tc, test_relay_bytes_before_pairing_close);
	tcase_add_test(tc, test_relay_board_in_summary);
	tcase_add_test(tc, test_relay_board_survives_its_own_timeout);
	suite_add_tcase(s, tc);
	tc = tcase_create("relay-boards");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, start_relay_all, stop);
	tcase_add_test(tc, test_relay_put_board_timeout_and_next_session);
	tcase_add_test(tc, test_relay_put_board_crash);
	tcase_add_test(tc, test_relay_put_board_refuses_or_unreachable);
	tcase_add_test(tc, test_relay_put_board_silent);
	tcase_add_test(tc, test_relay_put_board_oversized_answer);
	suite_add_tcase(s, tc);
	tc = tcase_create("limits");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, start_tight, stop);
	tcase_add_test(tc, test_relay_slow_client_backpressure);
	tcase_add_test(tc, test_relay_limit_max_relays);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
