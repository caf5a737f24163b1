/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TVM RPC peer helpers of bench/ (tvmrpc, tvmrpc_board, tvmrpc_client)
 * on their own: packets and hellos must be byte-identical to the spec's
 * vectors (tvm-rpc-vectors.md HS-*, EP-*), receives must reassemble any
 * split and tell end of stream, truncation, reset and timeout apart, and
 * the fake board and client must hold every scripted behaviour against
 * each other (directly, and through a proxy played by the test), no broker
 * involved.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "harness.h"
#include "tvmrpc.h"
#include "tvmrpc_board.h"
#include "tvmrpc_client.h"

#define T_MS 5000

/* Vectors (spec tvm-rpc-vectors.md). */
#define HS01                                                                 \
	"71f20f002c000000636c69656e743a726b333538383a302e383434343231383531" \
	"35323530343831202d74696d656f75743d3130"
#define HS01_KEY "client:rk3588:0.8444218515250481 -timeout=10"
#define HS02     "71f20f000d0000007365727665723a726b33353838"
#define HS03     "73f20f00"
#define HS04     "72f20f00"
#define HS05     "71f20f00090000007365727665723a7831"
#define HS06                                                                   \
	"71f20f0027000000636c69656e743a78313a302e3630393339393234393234343737" \
	"3"                                                                    \
	"138202d74696d656f75743d35"
#define EP01 "1500000000000000020000000500000000000000302e382e3000000000"
#define EP02 "0c00000000000000040000000100000004000000"
#define EP03                                                                   \
	"230000000000000009000000010000000b0000000f000000000000007270632e7465" \
	"73742e6164646f6e65"
#define EP04 "14000000000000000400000001000000030000000000aaaa55550000"
#define EP05                                                                   \
	"1c00000000000000030000000000aaaa5555000001000000000000000a0000000000" \
	"0000"
#define EP06                                                                 \
	"20000000000000000400000002000000000000000000000000000000000000000b" \
	"00000000000000"
#define EP07 "1800000000000000040000000200000000000000040000000400000000000000"
#define EP08                                                                 \
	"750000000000000005000000010000000b00000061000000000000005250435365" \
	"7373696f6e54696d656f75744572726f723a20596f75722031732073657373696f" \
	"6e2068617320657870697265642c2074727920746f20696e637265617365207468" \
	"65202273657373696f6e5f74696d656f7574222076616c75652e"
#define EP09                                                                 \
	"770000000000000005000000010000000b00000063000000000000005250435365" \
	"7373696f6e54696d656f75744572726f723a20596f757220312e30732073657373" \
	"696f6e2068617320657870697265642c2074727920746f20696e63726561736520" \
	"746865202273657373696f6e5f74696d656f7574222076616c75652e"
#define EP10                                                                 \
	"290000000000000005000000010000000b000000150000000000000056616c7565" \
	"4572726f723a2062616420696e707574"
#define EP11 "040000000000000001000000"
#define EP12 "0000000000000000"
#define EP13                                                                 \
	"44000000000000000700000000100000007f000001000000000000000100000002" \
	"2001000400000000000000000000000000000010000000000000000000803f0000" \
	"00400000404000008040"
#define EP14                                                                   \
	"34000000000000000600000000100000007f00000100000000000000010000000220" \
	"0100040000000000000000000000000000001000000000000000"
#define EP15 "1400000000000000080000000000803f000000400000404000008040"
#define EP16                                                                 \
	"780000000000000005000000010000000b00000064000000000000005250435365" \
	"7373696f6e54696d656f75744572726f723a20596f75722031302e307320736573" \
	"73696f6e2068617320657870697265642c2074727920746f20696e637265617365" \
	"20746865202273657373696f6e5f74696d656f7574222076616c75652e"
#define EP17                                                                 \
	"290000000000000009000000010000000b000000150000000000000074766d2e72" \
	"70632e7365727665722e72656d6f7665"
#define EPN1                                                                 \
	"750000000000000005000000010000000b00000061000000000000005250435365" \
	"7373696f6e54696d656f75744572726f723a20596f757220317320"

#define EP08_TEXT                                                      \
	"RPCSessionTimeoutError: Your 1s session has expired, try to " \
	"increase "                                                    \
	"the \"session_timeout\" value."

struct vec {
	unsigned char b[512];
	size_t len;
};

static struct vec
unhex(const char *hex)
{
	struct vec v;

	v.len = harness_unhex(hex, v.b, sizeof(v.b));
	ck_assert_uint_eq(v.len * 2, strlen(hex));
	return v;
}

static void
assert_msg_eq(const struct tvmrpc_msg *m, const char *hex)
{
	struct vec v = unhex(hex);

	ck_assert_uint_eq(m->len, v.len);
	ck_assert_mem_eq(m->b, v.b, v.len);
}

/* A received packet must be exactly the vector @hex. */
static void
assert_packet_eq(const struct tvmrpc_packet *p, const char *hex)
{
	struct vec v = unhex(hex);
	unsigned char h[TVMRPC_HEADER_SIZE];

	tvmrpc_put_header(h, p->len, p->code);
	ck_assert_uint_eq(TVMRPC_HEADER_SIZE + p->body_len, v.len);
	ck_assert_mem_eq(h, v.b, sizeof(h));
	ck_assert_mem_eq(p->body, v.b + TVMRPC_HEADER_SIZE, p->body_len);
}

/* A struct tvmrpc_packet borrowing the bytes of a vector. */
static struct tvmrpc_packet
packet_of(const struct vec *v)
{
	struct tvmrpc_packet p;

	p.len = v->len - 8;
	p.code = (int32_t)(v->b[8] | v->b[9] << 8);
	p.body = v->b + TVMRPC_HEADER_SIZE;
	p.body_len = v->len - TVMRPC_HEADER_SIZE;
	return p;
}

/* ---- packets -------------------------------------------------------- */

START_TEST(test_msg_builders_match_vectors)
{
	struct tvmrpc_msg m;
	char text[256];
	struct vec v;

	tvmrpc_msg_init_server(&m);
	assert_msg_eq(&m, EP01);
	tvmrpc_msg_return_void(&m);
	assert_msg_eq(&m, EP02);
	ck_assert_int_eq(tvmrpc_msg_get_global_func(&m, "rpc.test.addone"), 0);
	assert_msg_eq(&m, EP03);
	tvmrpc_msg_return_handle(&m, 0x00005555aaaa0000ull);
	assert_msg_eq(&m, EP04);
	tvmrpc_msg_call_func(&m, 0x00005555aaaa0000ull, 10);
	assert_msg_eq(&m, EP05);
	tvmrpc_msg_return_int(&m, 11);
	assert_msg_eq(&m, EP06);
	tvmrpc_msg_return_none(&m);
	assert_msg_eq(&m, EP07);
	ck_assert_int_eq(tvmrpc_msg_exception(&m, EP08_TEXT), 0);
	assert_msg_eq(&m, EP08);
	ck_assert_int_eq(tvmrpc_timeout_message(1, text, sizeof(text)), 0);
	ck_assert_int_eq(tvmrpc_msg_exception(&m, text), 0);
	assert_msg_eq(&m, EP09);
	ck_assert_int_eq(tvmrpc_msg_exception(&m, "ValueError: bad input"), 0);
	assert_msg_eq(&m, EP10);
	tvmrpc_msg_shutdown(&m);
	assert_msg_eq(&m, EP11);
	ck_assert_int_eq(
	    tvmrpc_msg_copy_from_remote(&m, 0x00007f0000001000ull, 16), 0);
	assert_msg_eq(&m, EP14);
	ck_assert_int_eq(tvmrpc_msg_copy_from_remote(&m, 0, 3), -EINVAL);
	/* EP-13 is this prefix followed by its 16 raw bytes. */
	ck_assert_int_eq(
	    tvmrpc_msg_copy_to_remote(&m, 0x00007f0000001000ull, 16), 0);
	v = unhex(EP13);
	ck_assert_uint_eq(m.len + 16, v.len);
	ck_assert_mem_eq(m.b, v.b, m.len);
	ck_assert_int_eq(tvmrpc_msg_copy_to_remote(&m, 0, 6), -EINVAL);
	ck_assert_int_eq(tvmrpc_timeout_message(10, text, sizeof(text)), 0);
	ck_assert_int_eq(tvmrpc_msg_exception(&m, text), 0);
	assert_msg_eq(&m, EP16);
	ck_assert_int_eq(
	    tvmrpc_msg_get_global_func(&m, "tvm.rpc.server.remove"), 0);
	assert_msg_eq(&m, EP17);
}
END_TEST

START_TEST(test_msg_too_long_is_refused)
{
	struct tvmrpc_msg m;
	char *big = malloc(TVMRPC_MSG_MAX);

	ck_assert_ptr_nonnull(big);
	memset(big, 'x', TVMRPC_MSG_MAX - 1);
	big[TVMRPC_MSG_MAX - 1] = '\0';
	ck_assert_int_eq(tvmrpc_msg_exception(&m, big), -EMSGSIZE);
	big[TVMRPC_MSG_MAX - 28] = '\0';
	ck_assert_int_eq(tvmrpc_msg_exception(&m, big), 0);
	ck_assert_uint_eq(m.len, TVMRPC_MSG_MAX - 28 + 28);
	free(big);
}
END_TEST

START_TEST(test_format_float_is_python_repr)
{
	static const struct {
		double v;
		const char *s;
	} cases[] = {
	    {10, "10.0"},
	    {1, "1.0"},
	    {2.5, "2.5"},
	    {0.1, "0.1"},
	    {0.0001, "0.0001"},
	    {1e-5, "1e-05"},
	    {123.456, "123.456"},
	    {1e15, "1000000000000000.0"},
	    {1e16, "1e+16"},
	    {0, "0.0"},
	};
	char buf[64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(
		    tvmrpc_format_float(cases[i].v, buf, sizeof(buf)), 0);
		ck_assert_str_eq(buf, cases[i].s);
	}
	ck_assert_int_eq(tvmrpc_format_float(10, buf, 4), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_key_timeout_and_match)
{
	double t = -1;
	char m[64];

	ck_assert_int_eq(tvmrpc_key_timeout(HS01_KEY, &t), 1);
	ck_assert(t == 10);
	ck_assert_int_eq(tvmrpc_key_timeout("client:x -timeout=2.5", &t), 1);
	ck_assert(t == 2.5);
	ck_assert_int_eq(
	    tvmrpc_key_timeout("client:x  -timeout=1\t-timeout=3", &t), 1);
	ck_assert(t == 3);
	t = -1;
	ck_assert_int_eq(tvmrpc_key_timeout("client:x", &t), 0);
	ck_assert_int_eq(tvmrpc_key_timeout("-timeout=4", &t), 0);
	ck_assert_int_eq(tvmrpc_key_timeout("client:x -other=4", &t), 0);
	ck_assert(t == -1);
	ck_assert_int_eq(tvmrpc_key_timeout("client:x -timeout=", &t), -EINVAL);
	ck_assert_int_eq(
	    tvmrpc_key_timeout("client:x -timeout=ten", &t), -EINVAL);
	ck_assert_int_eq(
	    tvmrpc_key_timeout("client:x -timeout=-1", &t), -EINVAL);

	ck_assert_int_eq(tvmrpc_key_match(HS01_KEY, m, sizeof(m)), 0);
	ck_assert_str_eq(m, "rk3588:0.8444218515250481");
	ck_assert_int_eq(tvmrpc_key_match("server:x1", m, sizeof(m)), 0);
	ck_assert_str_eq(m, "x1");
	ck_assert_int_eq(tvmrpc_key_match("client:", m, sizeof(m)), 0);
	ck_assert_str_eq(m, "");
	ck_assert_int_eq(tvmrpc_key_match(HS01_KEY, m, 8), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_packet_parsers)
{
	struct vec v;
	struct tvmrpc_packet p;
	const char *s;
	size_t len;
	uint64_t h, n;
	int64_t a;

	v = unhex(EP05);
	p = packet_of(&v);
	ck_assert_int_eq(tvmrpc_packet_call_int(&p, &h, &a), 0);
	ck_assert_uint_eq(h, 0x00005555aaaa0000ull);
	ck_assert_int_eq(a, 10);
	v = unhex(EP06);
	p = packet_of(&v);
	ck_assert_int_eq(tvmrpc_packet_return_int(&p, &a), 0);
	ck_assert_int_eq(a, 11);
	ck_assert_int_eq(tvmrpc_packet_call_int(&p, &h, &a), -EBADMSG);
	v = unhex(EP07);
	p = packet_of(&v);
	ck_assert_int_eq(tvmrpc_packet_return_int(&p, &a), -EBADMSG);
	v = unhex(EP10);
	p = packet_of(&v);
	ck_assert_int_eq(tvmrpc_packet_string(&p, &s, &len), 0);
	ck_assert_uint_eq(len, strlen("ValueError: bad input"));
	ck_assert_mem_eq(s, "ValueError: bad input", len);
	p.body_len--;
	ck_assert_int_eq(tvmrpc_packet_string(&p, &s, &len), -EBADMSG);
	v = unhex(EP14);
	p = packet_of(&v);
	ck_assert_int_eq(tvmrpc_packet_copy_nbytes(&p, &n), 0);
	ck_assert_uint_eq(n, 16);

	ck_assert(tvmrpc_code_is_reply(TVMRPC_RETURN));
	ck_assert(tvmrpc_code_is_reply(TVMRPC_EXCEPTION));
	ck_assert(tvmrpc_code_is_reply(TVMRPC_COPY_ACK));
	ck_assert(!tvmrpc_code_is_reply(TVMRPC_SHUTDOWN));
	ck_assert(tvmrpc_code_is_request(TVMRPC_INIT_SERVER));
	ck_assert(tvmrpc_code_is_request(20));
	ck_assert(!tvmrpc_code_is_request(21));
	ck_assert(!tvmrpc_code_is_request(TVMRPC_SHUTDOWN));
}
END_TEST

/* ---- one connection over a socketpair ------------------------------- */

static struct tvmrpc *conn; /* sv[0], wrapped */
static int peer_fd = -1;    /* sv[1], raw */

static void
pair_setup(void)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(tvmrpc_new_fd(sv[0], T_MS, &conn), 0);
	peer_fd = sv[1];
}

static void
pair_teardown(void)
{
	conn = tvmrpc_free(conn);
	if (peer_fd >= 0)
		(void)close(peer_fd);
	peer_fd = -1;
}

static void
peer_write_hex(const char *hex)
{
	struct vec v = unhex(hex);

	ck_assert_int_eq(write(peer_fd, v.b, v.len), (ssize_t)v.len);
}

/* Read exactly what @hex holds from the raw end and compare. */
static void
peer_expect_hex(const char *hex)
{
	struct vec v = unhex(hex);
	unsigned char got[512];
	size_t have = 0;
	ssize_t n;

	while (have < v.len) {
		struct pollfd pfd = {.fd = peer_fd, .events = POLLIN};

		ck_assert_int_eq(poll(&pfd, 1, T_MS), 1);
		n = read(peer_fd, got + have, v.len - have);
		ck_assert_int_gt(n, 0);
		have += (size_t)n;
	}
	ck_assert_mem_eq(got, v.b, v.len);
}

START_TEST(test_hello_bytes_match_vectors)
{
	ck_assert_int_eq(tvmrpc_send_hello(conn, HS01_KEY, false), 0);
	peer_expect_hex(HS01);
	ck_assert_int_eq(tvmrpc_send_hello(conn, HS01_KEY, true), 0);
	peer_expect_hex(HS01);
	ck_assert_int_eq(tvmrpc_send_hello(conn, "server:x1", true), 0);
	peer_expect_hex(HS05);
	ck_assert_int_eq(tvmrpc_send_reply(conn, NPUFARM_TVM_RPC_CODE_SUCCESS,
			     "server:rk3588"),
	    0);
	peer_expect_hex(HS02);
	ck_assert_int_eq(
	    tvmrpc_send_reply(conn, NPUFARM_TVM_RPC_CODE_MISMATCH, NULL), 0);
	peer_expect_hex(HS03);
}
END_TEST

START_TEST(test_recv_reply_and_hello_vectors)
{
	char key[256];
	int32_t code = 0;
	double t = 0;

	peer_write_hex(HS02);
	ck_assert_int_eq(
	    tvmrpc_recv_reply(conn, T_MS, &code, key, sizeof(key)), 0);
	ck_assert_int_eq(code, NPUFARM_TVM_RPC_CODE_SUCCESS);
	ck_assert_str_eq(key, "server:rk3588");
	/* The pair-up a proxied board gets carries the client's timeout. */
	peer_write_hex(HS06);
	ck_assert_int_eq(
	    tvmrpc_recv_reply(conn, T_MS, &code, key, sizeof(key)), 0);
	ck_assert_str_eq(key, "client:x1:0.6093992492447718 -timeout=5");
	ck_assert_int_eq(tvmrpc_key_timeout(key, &t), 1);
	ck_assert(t == 5);
	peer_write_hex(HS03);
	ck_assert_int_eq(
	    tvmrpc_recv_reply(conn, T_MS, &code, key, sizeof(key)), 0);
	ck_assert_int_eq(code, NPUFARM_TVM_RPC_CODE_MISMATCH);
	ck_assert_str_eq(key, "");
	peer_write_hex(HS04);
	ck_assert_int_eq(
	    tvmrpc_recv_reply(conn, T_MS, &code, key, sizeof(key)), 0);
	ck_assert_int_eq(code, NPUFARM_TVM_RPC_CODE_DUPLICATE);
	/* A key longer than the caller's buffer. */
	peer_write_hex(HS02);
	ck_assert_int_eq(
	    tvmrpc_recv_reply(conn, T_MS, &code, key, 13), -ENAMETOOLONG);
	pair_teardown();
	pair_setup();

	peer_write_hex(HS01);
	ck_assert_int_eq(tvmrpc_recv_hello(conn, T_MS, key, sizeof(key)), 0);
	ck_assert_str_eq(key, HS01_KEY);
	peer_write_hex("71f20200");
	ck_assert_int_eq(
	    tvmrpc_recv_hello(conn, T_MS, key, sizeof(key)), -EPROTO);
}
END_TEST

START_TEST(test_recv_reply_eof_and_truncation)
{
	char key[64];
	int32_t code = 0;

	ck_assert_int_eq(
	    tvmrpc_recv_reply(conn, 50, &code, key, sizeof(key)), -ETIMEDOUT);
	peer_write_hex("71f20f000d000000736572");
	ck_assert_int_eq(
	    tvmrpc_recv_reply(conn, 50, &code, key, sizeof(key)), -ETIMEDOUT);
	(void)close(peer_fd);
	peer_fd = -1;
	ck_assert_int_eq(tvmrpc_recv_reply(conn, T_MS, &code, key, sizeof(key)),
	    TVMRPC_E_TRUNCATED);
	ck_assert_int_eq(code, 0);
}
END_TEST

static const char *const all_packets[] = {EP01, EP02, EP03, EP04, EP05, EP06,
    EP13, EP07, EP08, EP09, EP10, EP11, EP14, EP15, EP16, EP17};

START_TEST(test_recv_packet_one_byte_at_a_time)
{
	struct tvmrpc_packet p;
	struct vec v;
	size_t i, k;

	for (i = 0; i < sizeof(all_packets) / sizeof(all_packets[0]); i++) {
		v = unhex(all_packets[i]);
		for (k = 0; k + 1 < v.len; k++) {
			ck_assert_int_eq(write(peer_fd, v.b + k, 1), 1);
			ck_assert_int_eq(
			    tvmrpc_recv_packet(conn, 0, &p), -ETIMEDOUT);
		}
		ck_assert_int_eq(write(peer_fd, v.b + k, 1), 1);
		ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), 0);
		assert_packet_eq(&p, all_packets[i]);
		ck_assert_uint_eq(tvmrpc_buffered(conn), 0);
	}
}
END_TEST

START_TEST(test_recv_packet_back_to_back)
{
	struct tvmrpc_packet p;
	size_t i, n = sizeof(all_packets) / sizeof(all_packets[0]);

	for (i = 0; i < n; i++)
		peer_write_hex(all_packets[i]);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), 0);
		assert_packet_eq(&p, all_packets[i]);
	}
	ck_assert_int_eq(tvmrpc_recv_packet(conn, 0, &p), -ETIMEDOUT);
}
END_TEST

START_TEST(test_recv_packet_tells_eof_from_truncation)
{
	struct tvmrpc_packet p;

	/* A whole packet, then a close at the boundary. */
	peer_write_hex(EP11);
	(void)shutdown(peer_fd, SHUT_WR);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), 0);
	ck_assert_int_eq(p.code, TVMRPC_SHUTDOWN);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), TVMRPC_E_EOF);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), TVMRPC_E_EOF);
	pair_teardown();

	/* EP-N1: the first 60 bytes of EP-08, then end of stream. */
	pair_setup();
	peer_write_hex(EPN1);
	(void)shutdown(peer_fd, SHUT_WR);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(conn, T_MS, &p), TVMRPC_E_TRUNCATED);
	ck_assert_uint_eq(tvmrpc_buffered(conn), 60);
	pair_teardown();

	/* Even 3 bytes of a length are a truncation. */
	pair_setup();
	peer_write_hex("750000");
	(void)shutdown(peer_fd, SHUT_WR);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(conn, T_MS, &p), TVMRPC_E_TRUNCATED);
}
END_TEST

START_TEST(test_recv_packet_timeout_is_bounded_and_resumes)
{
	struct tvmrpc_packet p;
	struct vec v = unhex(EP06);
	int64_t t0;

	t0 = tvmrpc_now_ms();
	ck_assert_int_eq(tvmrpc_recv_packet(conn, 100, &p), -ETIMEDOUT);
	ck_assert_int_ge(tvmrpc_now_ms() - t0, 100);
	ck_assert_int_lt(tvmrpc_now_ms() - t0, 1000);
	/* SC-3 step 4: 10 bytes of EP-06 and nothing more. */
	ck_assert_int_eq(write(peer_fd, v.b, 10), 10);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, 100, &p), -ETIMEDOUT);
	ck_assert_uint_eq(tvmrpc_buffered(conn), 10);
	ck_assert_int_eq(write(peer_fd, v.b + 10, v.len - 10), v.len - 10);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), 0);
	assert_packet_eq(&p, EP06);
}
END_TEST

START_TEST(test_recv_packet_limits)
{
	struct tvmrpc_packet p;
	uint64_t n = 0;
	int32_t code = 0;

	/* EP-12 is skipped and counted, as TVM's endpoint does. */
	peer_write_hex(EP12);
	peer_write_hex(EP12);
	peer_write_hex(EP11);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), 0);
	assert_packet_eq(&p, EP11);
	ck_assert_uint_eq(tvmrpc_zero_packets(conn), 2);
	/* 2^60 declared: refused before buffering, header still visible. */
	peer_write_hex("00000000000000100400000001000000");
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), -EMSGSIZE);
	ck_assert_int_eq(tvmrpc_peek_header(conn, T_MS, &n, &code), 0);
	ck_assert_uint_eq(n, 1ull << 60);
	ck_assert_int_eq(code, TVMRPC_RETURN);
	pair_teardown();

	pair_setup();
	tvmrpc_set_max_packet(conn, 16);
	peer_write_hex(EP05);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), -EMSGSIZE);
	tvmrpc_set_max_packet(conn, 28);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), 0);
	assert_packet_eq(&p, EP05);
	/* N = 2 cannot even hold the code. */
	peer_write_hex("02000000000000000400");
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), -EBADMSG);
}
END_TEST

START_TEST(test_cancel_fd_interrupts_waits)
{
	struct tvmrpc_packet p;
	int pfd[2];
	char one = 1;

	ck_assert_int_eq(pipe(pfd), 0);
	tvmrpc_set_cancel_fd(conn, pfd[0]);
	ck_assert_int_eq(write(pfd[1], &one, 1), 1);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, -1, &p), -ECANCELED);
	ck_assert_int_eq(tvmrpc_wait_eof(conn, -1, NULL), -ECANCELED);
	(void)close(pfd[0]);
	(void)close(pfd[1]);
}
END_TEST

START_TEST(test_wait_eof_counts_discarded)
{
	size_t gone = 0;

	peer_write_hex(EP11);
	ck_assert_int_eq(tvmrpc_wait_eof(conn, 50, &gone), -ETIMEDOUT);
	peer_write_hex(EP02);
	(void)close(peer_fd);
	peer_fd = -1;
	ck_assert_int_eq(tvmrpc_wait_eof(conn, T_MS, &gone), 0);
	ck_assert_uint_eq(gone, 20);
}
END_TEST

START_TEST(test_send_packet_and_copy_ack)
{
	static const unsigned char void_body[8] = {1, 0, 0, 0, 4, 0, 0, 0};
	struct tvmrpc_packet p;
	struct tvmrpc *other;

	ck_assert_int_eq(
	    tvmrpc_send_packet(conn, TVMRPC_RETURN, void_body, 8), 0);
	peer_expect_hex(EP02);
	ck_assert_int_eq(
	    tvmrpc_send_copy_ack(conn, "\x00\x00\x80\x3f", 4, 4), 0);
	peer_expect_hex("08000000000000000800000000"
			"00803f");
	ck_assert_int_eq(tvmrpc_send_copy_ack(conn, "abc", 3, 10), 0);
	ck_assert_int_eq(tvmrpc_send_copy_ack(conn, "abc", 3, 0), 0);
	ck_assert_int_eq(tvmrpc_new_fd(peer_fd, T_MS, &other), 0);
	peer_fd = -1;
	ck_assert_int_eq(tvmrpc_recv_packet(other, T_MS, &p), 0);
	ck_assert_int_eq(p.code, TVMRPC_COPY_ACK);
	ck_assert_uint_eq(p.len, 14);
	ck_assert_mem_eq(p.body, "abcabcabca", 10);
	ck_assert_int_eq(tvmrpc_recv_packet(other, T_MS, &p), 0);
	ck_assert_uint_eq(p.len, 4);
	tvmrpc_free(other);
}
END_TEST

/* A TCP pair on loopback, for what a socketpair cannot do (a reset). */
static void
tcp_pair(int *ret_a, int *ret_b)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int l, a, b;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(l, 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &sl), 0);
	a = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(a, 0);
	ck_assert_int_eq(connect(a, (struct sockaddr *)&sin, sizeof(sin)), 0);
	b = accept(l, NULL, NULL);
	ck_assert_int_ge(b, 0);
	(void)close(l);
	*ret_a = a;
	*ret_b = b;
}

START_TEST(test_reset_is_not_eof)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct tvmrpc_packet p;
	struct tvmrpc *c;
	int a, b;

	tcp_pair(&a, &b);
	ck_assert_int_eq(tvmrpc_new_fd(a, T_MS, &c), 0);
	ck_assert_int_eq(
	    setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	(void)close(b);
	ck_assert_int_eq(tvmrpc_recv_packet(c, T_MS, &p), -ECONNRESET);
	tvmrpc_free(c);
}
END_TEST

/* ---- board and client against each other ---------------------------- */

static struct tvmrpc_board *
board_direct(enum tvmrpc_board_mode mode)
{
	struct tvmrpc_board_config cfg = {
	    .key = "rk3588",
	    .mode = mode,
	    .io_timeout_ms = T_MS,
	};
	struct tvmrpc_board *b = NULL;
	struct npufarm_err err = {0};

	ck_assert_msg(tvmrpc_board_start(&cfg, &b, &err) == 0, "%s", err.msg);
	ck_assert_str_ne(tvmrpc_board_addr(b), "");
	return b;
}

static struct tvmrpc_client *
client_direct(struct tvmrpc_board *b, const char *timeout)
{
	struct tvmrpc_client_config cfg = {
	    .direct = tvmrpc_board_addr(b),
	    .key = "rk3588",
	    .timeout = timeout,
	    .io_timeout_ms = T_MS,
	};
	struct tvmrpc_client *cl = NULL;
	struct npufarm_err err = {0};

	ck_assert_msg(tvmrpc_client_open(&cfg, &cl, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(tvmrpc_client_remote_key(cl), "server:rk3588");
	ck_assert_msg(tvmrpc_client_init(cl, T_MS, &err) == 0, "%s", err.msg);
	return cl;
}

/* Send EP-05 (call the board's handle with 10) and wait for a reply. */
static int
call10(struct tvmrpc_client *cl, int timeout_ms, struct tvmrpc_packet *p,
    struct npufarm_err *err)
{
	struct tvmrpc_msg m;

	tvmrpc_msg_call_func(&m, TVMRPC_BOARD_HANDLE, 10);
	return tvmrpc_client_call(cl, &m, timeout_ms, p, err);
}

/* Close @cl, let the board see it, stop the board; its report. */
static struct tvmrpc_board_report
finish(struct tvmrpc_board *b, struct tvmrpc_client *cl)
{
	struct tvmrpc_board_report rep;

	tvmrpc_client_free(cl);
	ck_assert_int_eq(tvmrpc_board_wait(b, T_MS), 0);
	ck_assert_int_eq(tvmrpc_board_stop(b, &rep), 0);
	return rep;
}

START_TEST(test_board_ok_session)
{
	struct tvmrpc_board *b = board_direct(TVMRPC_BOARD_OK);
	struct tvmrpc_client *cl = client_direct(b, "10");
	struct tvmrpc *c = tvmrpc_client_conn(cl);
	struct tvmrpc_board_report rep;
	struct npufarm_err err = {0};
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;

	ck_assert_str_eq(tvmrpc_client_hello(cl), "client:rk3588 -timeout=10");
	ck_assert_int_eq(tvmrpc_msg_get_global_func(&m, "rpc.test.addone"), 0);
	ck_assert_int_eq(tvmrpc_client_call(cl, &m, T_MS, &p, &err), 0);
	assert_packet_eq(&p, EP04);
	ck_assert_int_eq(call10(cl, T_MS, &p, &err), 0);
	assert_packet_eq(&p, EP06);
	ck_assert_int_eq(tvmrpc_msg_copy_from_remote(&m, 0x1000, 4096), 0);
	ck_assert_int_eq(tvmrpc_client_call(cl, &m, T_MS, &p, &err), 0);
	ck_assert_int_eq(p.code, TVMRPC_COPY_ACK);
	ck_assert_uint_eq(p.body_len, 4096);
	ck_assert_mem_eq(p.body, tvmrpc_board_pattern(), 4096);
	ck_assert_int_eq(tvmrpc_msg_copy_to_remote(&m, 0x1000, 8), 0);
	ck_assert_int_eq(tvmrpc_client_send(cl, &m), 0);
	ck_assert_int_eq(tvmrpc_send(c, "\1\2\3\4\5\6\7\10", 8), 0);
	ck_assert_int_eq(tvmrpc_recv_packet(c, T_MS, &p), 0);
	assert_packet_eq(&p, EP02);
	ck_assert_int_eq(tvmrpc_client_shutdown(cl), 0);
	rep = finish(b, cl);
	ck_assert_uint_eq(rep.sessions, 1);
	ck_assert_str_eq(rep.peer_key, "client:rk3588 -timeout=10");
	ck_assert(rep.has_timeout);
	ck_assert(rep.timeout_s == 10);
	ck_assert_uint_eq(rep.packets, 6);
	ck_assert_uint_eq(rep.calls, 1);
	ck_assert(rep.shutdown);
	ck_assert_int_eq(rep.end, 0);
}
END_TEST

START_TEST(test_board_exception)
{
	struct tvmrpc_board *b = board_direct(TVMRPC_BOARD_EXCEPTION);
	struct tvmrpc_client *cl = client_direct(b, NULL);
	struct tvmrpc_board_report rep;
	struct npufarm_err err = {0};
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;

	ck_assert_int_eq(call10(cl, T_MS, &p, &err), TVMRPC_CLIENT_E_REMOTE);
	assert_packet_eq(&p, EP10);
	ck_assert_str_eq(err.msg, "kException: ValueError: bad input");
	/* An exception does not end the session. */
	ck_assert_int_eq(tvmrpc_msg_get_global_func(&m, "x"), 0);
	ck_assert_int_eq(tvmrpc_client_call(cl, &m, T_MS, &p, &err), 0);
	rep = finish(b, cl);
	ck_assert(!rep.has_timeout);
	ck_assert_int_eq(rep.end, TVMRPC_E_EOF);
	ck_assert(!rep.shutdown);
}
END_TEST

START_TEST(test_board_silent_and_stalled)
{
	struct tvmrpc_board_report rep;
	struct npufarm_err err = {0};
	struct tvmrpc_client *cl;
	struct tvmrpc_board *b;
	struct tvmrpc_packet p;

	b = board_direct(TVMRPC_BOARD_SILENT);
	cl = client_direct(b, "1");
	ck_assert_int_eq(call10(cl, 200, &p, &err), -ETIMEDOUT);
	ck_assert_int_eq(tvmrpc_board_wait(b, 0), -ETIMEDOUT);
	rep = finish(b, cl);
	ck_assert_uint_eq(rep.calls, 1);
	ck_assert_int_eq(rep.end, TVMRPC_E_EOF);
	ck_assert(!rep.own_timeout_sent);

	/* SC-3 step 4: 10 bytes of EP-06, then nothing. */
	b = board_direct(TVMRPC_BOARD_STALL_HALF);
	cl = client_direct(b, NULL);
	ck_assert_int_eq(call10(cl, 200, &p, &err), -ETIMEDOUT);
	ck_assert_uint_eq(tvmrpc_buffered(tvmrpc_client_conn(cl)), 10);
	rep = finish(b, cl);
	ck_assert_int_eq(rep.end, TVMRPC_E_EOF);
}
END_TEST

START_TEST(test_board_own_timeout_like_python_server)
{
	struct tvmrpc_board *b = board_direct(TVMRPC_BOARD_OWN_TIMEOUT);
	struct tvmrpc_client *cl = client_direct(b, "1");
	struct tvmrpc_board_report rep;
	struct npufarm_err err = {0};
	struct tvmrpc_packet p;

	ck_assert_int_eq(call10(cl, 3000, &p, &err), TVMRPC_CLIENT_E_REMOTE);
	assert_packet_eq(&p, EP09);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(tvmrpc_client_conn(cl), T_MS, &p), TVMRPC_E_EOF);
	rep = finish(b, cl);
	ck_assert(rep.own_timeout_sent);
	ck_assert_int_eq(rep.end, 0);
	ck_assert_int_ge(rep.session_ms, 1000);
	ck_assert_int_lt(rep.session_ms, 3000);
}
END_TEST

START_TEST(test_board_crashes)
{
	static const struct {
		enum tvmrpc_board_mode mode;
		int result;
	} cases[] = {
	    {TVMRPC_BOARD_CRASH, TVMRPC_E_EOF},
	    {TVMRPC_BOARD_CRASH_HALF, TVMRPC_E_TRUNCATED},
	    {TVMRPC_BOARD_GARBAGE, -EMSGSIZE},
	};
	struct tvmrpc_board_report rep;
	struct npufarm_err err = {0};
	struct tvmrpc_client *cl;
	struct tvmrpc_board *b;
	struct tvmrpc_packet p;
	uint64_t n = 0;
	int32_t code = 0;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		b = board_direct(cases[i].mode);
		cl = client_direct(b, NULL);
		ck_assert_int_eq(call10(cl, T_MS, &p, &err), cases[i].result);
		if (cases[i].mode == TVMRPC_BOARD_GARBAGE) {
			ck_assert_int_eq(
			    tvmrpc_peek_header(
				tvmrpc_client_conn(cl), T_MS, &n, &code),
			    0);
			ck_assert_uint_eq(n, 1ull << 60);
		}
		rep = finish(b, cl);
		ck_assert_int_eq(rep.end,
		    cases[i].mode == TVMRPC_BOARD_GARBAGE ? TVMRPC_E_EOF : 0);
	}
}
END_TEST

START_TEST(test_board_refuses_other_keys)
{
	struct tvmrpc_board *b = board_direct(TVMRPC_BOARD_OK);
	struct tvmrpc_client_config cfg = {
	    .direct = tvmrpc_board_addr(b),
	    .key = "rk3588:0.5",
	    .io_timeout_ms = T_MS,
	    .split_hello = true,
	};
	struct tvmrpc_board_report rep;
	struct npufarm_err err = {0};
	struct tvmrpc_client *cl = NULL;

	ck_assert_int_eq(tvmrpc_client_open(&cfg, &cl, &err), -ECONNREFUSED);
	ck_assert_ptr_nonnull(strstr(err.msg, "0x000ff273"));
	/* The board keeps waiting; a right key, split, still gets in. */
	cfg.key = "rk3588";
	ck_assert_msg(tvmrpc_client_open(&cfg, &cl, &err) == 0, "%s", err.msg);
	rep = finish(b, cl);
	ck_assert_uint_eq(rep.sessions, 1);
}
END_TEST

START_TEST(test_board_stop_while_waiting)
{
	struct tvmrpc_board *b = board_direct(TVMRPC_BOARD_OK);
	struct tvmrpc_board_report rep;
	int64_t t0 = tvmrpc_now_ms();

	ck_assert_int_eq(tvmrpc_board_wait(b, 50), -ETIMEDOUT);
	ck_assert_int_eq(tvmrpc_board_stop(b, &rep), 0);
	ck_assert_uint_eq(rep.sessions, 0);
	ck_assert_int_lt(tvmrpc_now_ms() - t0, 1000);
}
END_TEST

START_TEST(test_board_slow_client_bounds_its_send)
{
	struct tvmrpc_board_config bcfg = {
	    .key = "rk3588",
	    .io_timeout_ms = 300,
	};
	struct tvmrpc_client_config ccfg = {
	    .key = "rk3588",
	    .io_timeout_ms = T_MS,
	    .rcvbuf = 4096,
	};
	struct tvmrpc_board_report rep;
	struct npufarm_err err = {0};
	struct tvmrpc_client *cl = NULL;
	struct tvmrpc_board *b = NULL;
	struct tvmrpc_msg m;

	ck_assert_int_eq(tvmrpc_board_start(&bcfg, &b, &err), 0);
	ccfg.direct = tvmrpc_board_addr(b);
	ck_assert_msg(tvmrpc_client_open(&ccfg, &cl, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(tvmrpc_msg_copy_from_remote(&m, 0, 64 << 20), 0);
	ck_assert_int_eq(tvmrpc_client_send(cl, &m), 0);
	/* Never read: the board's send must give up on its own. */
	ck_assert_int_eq(tvmrpc_board_wait(b, T_MS), 0);
	rep = finish(b, cl);
	ck_assert_int_eq(rep.end, -ETIMEDOUT);
}
END_TEST

/* A listening socket that plays the proxy for a board. */
static int
fake_proxy(char *addr, size_t len)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int l;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(l, 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &sl), 0);
	(void)snprintf(addr, len, "127.0.0.1:%u", ntohs(sin.sin_port));
	return l;
}

START_TEST(test_board_through_a_proxy)
{
	struct tvmrpc_board_config cfg = {
	    .key = "x1",
	    .mode = TVMRPC_BOARD_OK,
	    .io_timeout_ms = T_MS,
	    .split_hello = true,
	    .sessions = 2,
	};
	struct tvmrpc_board_report rep;
	struct npufarm_err err = {0};
	struct tvmrpc_board *b = NULL;
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	char addr[64];
	int l;

	l = fake_proxy(addr, sizeof(addr));
	cfg.farm = addr;
	ck_assert_int_eq(tvmrpc_board_start(&cfg, &b, &err), 0);
	peer_fd = accept(l, NULL, NULL);
	ck_assert_int_ge(peer_fd, 0);
	peer_expect_hex(HS05);
	/* Pair it with HS-06, then be the client on the same socket. */
	peer_write_hex(HS06);
	ck_assert_int_eq(tvmrpc_new_fd(peer_fd, T_MS, &conn), 0);
	peer_fd = -1;
	tvmrpc_msg_init_server(&m);
	ck_assert_int_eq(tvmrpc_send_msg(conn, &m), 0);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), 0);
	assert_packet_eq(&p, EP02);
	tvmrpc_msg_shutdown(&m);
	ck_assert_int_eq(tvmrpc_send_msg(conn, &m), 0);
	ck_assert_int_eq(tvmrpc_recv_packet(conn, T_MS, &p), TVMRPC_E_EOF);
	conn = tvmrpc_free(conn);
	/* It dials in again for its second session; no pair-up comes. */
	peer_fd = accept(l, NULL, NULL);
	ck_assert_int_ge(peer_fd, 0);
	peer_expect_hex(HS05);
	ck_assert_int_eq(tvmrpc_board_wait(b, 100), -ETIMEDOUT);
	ck_assert_int_eq(tvmrpc_board_stop(b, &rep), 0);
	ck_assert_uint_eq(rep.sessions, 1);
	ck_assert_str_eq(rep.peer_key, "");
	(void)close(l);
}
END_TEST

START_TEST(test_board_proxy_refusal_is_reported)
{
	struct tvmrpc_board_config cfg = {
	    .key = "x1",
	    .io_timeout_ms = T_MS,
	};
	struct tvmrpc_board_report rep;
	struct npufarm_err err = {0};
	struct tvmrpc_board *b = NULL;
	char addr[64];
	int l;

	l = fake_proxy(addr, sizeof(addr));
	cfg.farm = addr;
	ck_assert_int_eq(tvmrpc_board_start(&cfg, &b, &err), 0);
	peer_fd = accept(l, NULL, NULL);
	peer_expect_hex(HS05);
	peer_write_hex(HS04);
	ck_assert_int_eq(tvmrpc_board_wait(b, T_MS), 0);
	ck_assert_int_eq(tvmrpc_board_stop(b, &rep), -ECONNREFUSED);
	ck_assert_int_eq(rep.reply_code, NPUFARM_TVM_RPC_CODE_DUPLICATE);
	(void)close(peer_fd);

	/* A proxy that closes without a reply (an older broker). */
	ck_assert_int_eq(tvmrpc_board_start(&cfg, &b, &err), 0);
	peer_fd = accept(l, NULL, NULL);
	peer_expect_hex(HS05);
	(void)close(peer_fd);
	peer_fd = -1;
	ck_assert_int_eq(tvmrpc_board_wait(b, T_MS), 0);
	ck_assert_int_eq(tvmrpc_board_stop(b, &rep), -ECONNABORTED);
	ck_assert_ptr_nonnull(strstr(rep.detail, "end of stream"));
	(void)close(l);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tvmrpc_peer");
	TCase *tc;

	tc = tcase_create("packets");
	tcase_add_test(tc, test_msg_builders_match_vectors);
	tcase_add_test(tc, test_msg_too_long_is_refused);
	tcase_add_test(tc, test_format_float_is_python_repr);
	tcase_add_test(tc, test_key_timeout_and_match);
	tcase_add_test(tc, test_packet_parsers);
	suite_add_tcase(s, tc);

	tc = tcase_create("stream");
	tcase_add_checked_fixture(tc, pair_setup, pair_teardown);
	tcase_add_test(tc, test_hello_bytes_match_vectors);
	tcase_add_test(tc, test_recv_reply_and_hello_vectors);
	tcase_add_test(tc, test_recv_reply_eof_and_truncation);
	tcase_add_test(tc, test_recv_packet_one_byte_at_a_time);
	tcase_add_test(tc, test_recv_packet_back_to_back);
	tcase_add_test(tc, test_recv_packet_tells_eof_from_truncation);
	tcase_add_test(tc, test_recv_packet_timeout_is_bounded_and_resumes);
	tcase_add_test(tc, test_recv_packet_limits);
	tcase_add_test(tc, test_cancel_fd_interrupts_waits);
	tcase_add_test(tc, test_wait_eof_counts_discarded);
	tcase_add_test(tc, test_send_packet_and_copy_ack);
	tcase_add_test(tc, test_reset_is_not_eof);
	suite_add_tcase(s, tc);

	tc = tcase_create("peers");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, NULL, pair_teardown);
	tcase_add_test(tc, test_board_ok_session);
	tcase_add_test(tc, test_board_exception);
	tcase_add_test(tc, test_board_silent_and_stalled);
	tcase_add_test(tc, test_board_own_timeout_like_python_server);
	tcase_add_test(tc, test_board_crashes);
	tcase_add_test(tc, test_board_refuses_other_keys);
	tcase_add_test(tc, test_board_stop_while_waiting);
	tcase_add_test(tc, test_board_slow_client_bounds_its_send);
	tcase_add_test(tc, test_board_through_a_proxy);
	tcase_add_test(tc, test_board_proxy_refusal_is_reported);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
