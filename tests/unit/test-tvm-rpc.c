/* SPDX-License-Identifier: Apache-2.0 */
/*
 * common/tvm_rpc.c against the spec's HS-* and EP-* vectors: what it writes
 * must equal the bytes TVM writes, and what it reads is fed whole, a byte
 * at a time and in random (fixed-seed) splits, alone and back to back.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "harness.h"
#include "tvm_rpc.h"

#define MAX_PACKET (1u << 20)

/* HS-01: client hello, tracker-allocated server, session_timeout=10. */
static const char hs01[] =
    "71f20f002c000000636c69656e743a726b333538383a302e3834343432313835313532"
    "3530343831202d74696d656f75743d3130";
static const char hs01_key[] = "client:rk3588:0.8444218515250481 -timeout=10";
/* HS-02: server accepts with its own key. */
static const char hs02[] = "71f20f000d0000007365727665723a726b33353838";
/* HS-05: server registering at a proxy; HS-07 carries the same bytes. */
static const char hs05[] = "71f20f00090000007365727665723a7831";
/* HS-06: pair-up message to the server side: the client's full key. */
static const char hs06[] =
    "71f20f0027000000636c69656e743a78313a302e36303933393932343932343437373138"
    "202d74696d656f75743d35";
static const char hs06_key[] = "client:x1:0.6093992492447718 -timeout=5";

struct vec {
	const char *name;
	const char *hex;
	int32_t code;
	uint64_t total;
};

/* EP-01..EP-17 with the code and 8 + N the spec gives for each. */
static const struct vec eps[] = {
    {"EP-01", "1500000000000000020000000500000000000000302e382e3000000000", 2,
	29},
    {"EP-02", "0c00000000000000040000000100000004000000", 4, 20},
    {"EP-03",
	"230000000000000009000000010000000b0000000f000000000000007270632e746573"
	"742e6164646f6e65",
	9, 43},
    {"EP-04", "14000000000000000400000001000000030000000000aaaa55550000", 4,
	28},
    {"EP-05",
	"1c00000000000000030000000000aaaa5555000001000000000000000a000000000000"
	"00",
	3, 36},
    {"EP-06",
	"2000000000000000040000000200000000000000000000000000000000000000"
	"0b00000000000000",
	4, 40},
    {"EP-07",
	"1800000000000000040000000200000000000000040000000400000000000000", 4,
	32},
    {"EP-08",
	"750000000000000005000000010000000b000000610000000000000052504353657373"
	"696f6e54696d656f75744572726f723a20596f75722031732073657373696f6e206861"
	"7320657870697265642c2074727920746f20696e637265617365207468652022736573"
	"73"
	"696f6e5f74696d656f7574222076616c75652e",
	5, 125},
    {"EP-09",
	"770000000000000005000000010000000b000000630000000000000052504353657373"
	"696f6e54696d656f75744572726f723a20596f757220312e30732073657373696f6e20"
	"6861732065787069726564"
	"2c2074727920746f20696e63726561736520746865202273657373696f6e5f74696d65"
	"6f7574222076616c75652e",
	5, 127},
    {"EP-10",
	"290000000000000005000000010000000b000000150000000000000056616c75654572"
	"726f723a2062616420696e707574",
	5, 49},
    {"EP-11", "040000000000000001000000", 1, 12},
    {"EP-12", "0000000000000000", TVM_RPC_NONE, 8},
    {"EP-13",
	"44000000000000000700000000100000007f0000010000000000000001000000022001"
	"000400000000000000000000000000000010000000000000000000803f000000400000"
	"404000008040",
	7, 76},
    {"EP-14",
	"34000000000000000600000000100000007f0000010000000000000001000000022001"
	"00040000000000000000000000000000001000000000000000",
	6, 60},
    {"EP-15", "1400000000000000080000000000803f000000400000404000008040", 8,
	28},
    {"EP-16",
	"780000000000000005000000010000000b000000640000000000000052504353657373"
	"696f6e54696d656f75744572726f723a20596f75722031302e30732073657373696f6e"
	"2068617320657870697265642c2074727920746f20696e637265617365207468652022"
	"73657373696f6e5f74696d656f7574222076616c75652e",
	5, 128},
    {"EP-17",
	"290000000000000009000000010000000b000000150000000000000074766d2e727063"
	"2e7365727665722e72656d6f7665",
	9, 49},
};
#define N_EPS (sizeof(eps) / sizeof(eps[0]))

/* EP-@k by its number in the spec. */
static const struct vec *
ep(int k)
{
	ck_assert(k >= 1 && (size_t)k <= N_EPS);
	return &eps[k - 1];
}

/* EP-N1: the first 60 of EP-08's 125 bytes. */
static const char epn1[] =
    "750000000000000005000000010000000b000000610000000000000052504353657373"
    "696f6e54696d656f75744572726f723a20596f757220317320";

static size_t
unhex(const char *hex, unsigned char *out, size_t cap)
{
	size_t n = harness_unhex(hex, out, cap);

	ck_assert_uint_eq(n * 2, strlen(hex));
	return n;
}

/* A new evbuffer holding the bytes of @hex; the caller frees it. */
static struct evbuffer *
buffer_of(const char *hex)
{
	struct evbuffer *b = evbuffer_new();
	unsigned char v[256];
	size_t n = unhex(hex, v, sizeof(v));

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(evbuffer_add(b, v, n), 0);
	return b;
}

/* Fixed-seed xorshift: the same "random" splits on every run. */
static uint32_t rng_state = 2463534242u;

static uint32_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* How many chains hold the bytes of @b. */
static int
count_chains(struct evbuffer *b)
{
	return evbuffer_peek(
	    b, (ev_ssize_t)evbuffer_get_length(b), NULL, NULL, 0);
}

/* @out holds exactly the bytes of @hex, in one contiguous region. */
static void
assert_buffer_is(struct evbuffer *out, const char *hex)
{
	unsigned char want[256];
	struct evbuffer_iovec v[1];
	size_t n = unhex(hex, want, sizeof(want));

	ck_assert_uint_eq(evbuffer_get_length(out), n);
	ck_assert_int_eq(count_chains(out), 1);
	evbuffer_peek(out, -1, NULL, v, 1);
	ck_assert(memcmp(v[0].iov_base, want, n) == 0);
}

/*
 * Append @n bytes to @b as @pieces separate chains.  Reference chains are
 * never merged; @p must outlive @b.
 */
static void
add_in_chains(
    struct evbuffer *b, const unsigned char *p, size_t n, size_t pieces)
{
	size_t off = 0, k, i;

	for (i = 0; i < pieces && off < n; i++) {
		k = i + 1 == pieces ? n - off : (n - off) / (pieces - i);
		if (k == 0)
			k = 1;
		evbuffer_add_reference(b, p + off, k, NULL, NULL);
		off += k;
	}
}

/* ---- Python float repr and the timeout message ---------------------- */

START_TEST(test_py_float_matches_python_repr)
{
	static const struct {
		double v;
		const char *repr;
	} t[] = {
	    {1.0, "1.0"},
	    {10.0, "10.0"},
	    {2.5, "2.5"},
	    {0.5, "0.5"},
	    {0.1, "0.1"},
	    {0.3, "0.3"},
	    {1e-05, "1e-05"},
	    {0.0001, "0.0001"},
	    {1e16, "1e+16"},
	    {1e15, "1000000000000000.0"},
	    {9999999999999998.0, "9999999999999998.0"},
	    {123456789.0, "123456789.0"},
	    {600.0, "600.0"},
	    {1.0 / 3, "0.3333333333333333"},
	    {-1.5, "-1.5"},
	    {0.0, "0.0"},
	    {-0.0, "-0.0"},
	    {1e22, "1e+22"},
	    {1e100, "1e+100"},
	    {1.5e-300, "1.5e-300"},
	    {5e-324, "5e-324"},
	    {1.7976931348623157e308, "1.7976931348623157e+308"},
	    {123.456, "123.456"},
	    {0.000123, "0.000123"},
	    {0.0000123, "1.23e-05"},
	    {INFINITY, "inf"},
	    {-INFINITY, "-inf"},
	    {NAN, "nan"},
	};
	char buf[64];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int n = tvm_rpc_py_float(t[i].v, buf, sizeof(buf));

		ck_assert_str_eq(buf, t[i].repr);
		ck_assert_int_eq(n, (int)strlen(t[i].repr));
	}
	/*
	 * 2^-1017: the correctly rounded 16 digits do not read back, their
	 * upper neighbour does (the lower gap of a power of two is half the
	 * upper); Python prints the neighbour.
	 */
	tvm_rpc_py_float(ldexp(1, -1017), buf, sizeof(buf));
	ck_assert_str_eq(buf, "7.120236347223045e-307");
	/* snprintf semantics when the buffer is short. */
	ck_assert_int_eq(tvm_rpc_py_float(123456789.0, buf, 4), 11);
	ck_assert_str_eq(buf, "123");
}
END_TEST

static void
expect_timeout_message(double t, const char *repr)
{
	char want[256], got[256];
	int n;

	snprintf(want, sizeof(want),
	    "RPCSessionTimeoutError: Your %ss session has expired, try to "
	    "increase the \"session_timeout\" value.",
	    repr);
	n = tvm_rpc_timeout_message(t, got, sizeof(got));
	ck_assert_str_eq(got, want);
	ck_assert_int_eq(n, (int)strlen(want));
}

START_TEST(test_timeout_message_formats_like_python)
{
	char buf[16];

	expect_timeout_message(1, "1.0");
	expect_timeout_message(10, "10.0");
	expect_timeout_message(2.5, "2.5");
	expect_timeout_message(0.5, "0.5");
	expect_timeout_message(1e-05, "1e-05");
	expect_timeout_message(1e16, "1e+16");
	expect_timeout_message(123456789.0, "123456789.0");
	expect_timeout_message(0.1, "0.1");
	/* Truncated, NUL-terminated, full length returned. */
	ck_assert_int_eq(tvm_rpc_timeout_message(10, buf, sizeof(buf)), 100);
	ck_assert_str_eq(buf, "RPCSessionTimeo");
}
END_TEST

/* The message bytes of a kException vector (after its 28-byte header). */
static void
vector_message(const struct vec *v, char *msg, size_t cap)
{
	unsigned char b[256];
	size_t n = unhex(v->hex, b, sizeof(b));

	ck_assert_uint_lt(n - 28, cap);
	memcpy(msg, b + 28, n - 28);
	msg[n - 28] = '\0';
}

START_TEST(test_add_exception_matches_vectors)
{
	struct evbuffer *out = evbuffer_new();
	char msg[256];

	/* EP-08: the integer-formatted "1s" text, byte for byte. */
	vector_message(ep(8), msg, sizeof(msg));
	ck_assert_int_eq(
	    tvm_rpc_add_exception(out, msg, TVM_RPC_DIALECT_V014), 0);
	assert_buffer_is(out, ep(8)->hex);
	evbuffer_drain(out, evbuffer_get_length(out));

	/* EP-09 and EP-16: our timeout message is the Python server's. */
	tvm_rpc_timeout_message(1, msg, sizeof(msg));
	ck_assert_int_eq(
	    tvm_rpc_add_exception(out, msg, TVM_RPC_DIALECT_V014), 0);
	assert_buffer_is(out, ep(9)->hex);
	evbuffer_drain(out, evbuffer_get_length(out));

	tvm_rpc_timeout_message(10, msg, sizeof(msg));
	ck_assert_int_eq(
	    tvm_rpc_add_exception(out, msg, TVM_RPC_DIALECT_V014), 0);
	assert_buffer_is(out, ep(16)->hex);
	evbuffer_drain(out, evbuffer_get_length(out));

	/* EP-10: an ordinary remote error. */
	ck_assert_int_eq(tvm_rpc_add_exception(out, "ValueError: bad input",
			     TVM_RPC_DIALECT_V014),
	    0);
	assert_buffer_is(out, ep(10)->hex);
	evbuffer_drain(out, evbuffer_get_length(out));

	/* An empty message is still a well-formed packet: N = 20. */
	ck_assert_int_eq(
	    tvm_rpc_add_exception(out, "", TVM_RPC_DIALECT_V014), 0);
	assert_buffer_is(out, "140000000000000005000000010000000b000000"
			      "0000000000000000");
	evbuffer_free(out);
}
END_TEST

START_TEST(test_exception_peek_decodes_vectors)
{
	struct evbuffer *in = evbuffer_new();
	unsigned char b[256];
	char msg[256], want[256], small[11];
	size_t n;

	n = unhex(ep(8)->hex, b, sizeof(b));
	add_in_chains(in, b, n, 5); /* the message spans chains */
	ck_assert_int_eq(tvm_rpc_exception_peek(in, msg, sizeof(msg)), 0);
	vector_message(ep(8), want, sizeof(want));
	ck_assert_str_eq(msg, want);
	ck_assert(strncmp(msg, TVM_RPC_TIMEOUT_PREFIX,
		      strlen(TVM_RPC_TIMEOUT_PREFIX)) == 0);
	ck_assert_uint_eq(evbuffer_get_length(in), n); /* not removed */
	evbuffer_drain(in, n);

	n = unhex(ep(10)->hex, b, sizeof(b));
	evbuffer_add(in, b, n);
	ck_assert_int_eq(tvm_rpc_exception_peek(in, msg, sizeof(msg)), 0);
	ck_assert_str_eq(msg, "ValueError: bad input");
	/* Truncated to buflen - 1 bytes. */
	ck_assert_int_eq(tvm_rpc_exception_peek(in, small, sizeof(small)), 0);
	ck_assert_str_eq(small, "ValueError");
	/* A following packet does not matter. */
	evbuffer_add(in, b, n);
	ck_assert_int_eq(tvm_rpc_exception_peek(in, msg, sizeof(msg)), 0);
	ck_assert_str_eq(msg, "ValueError: bad input");
	evbuffer_free(in);
}
END_TEST

static int
peek_hex(const char *hex)
{
	struct evbuffer *in = buffer_of(hex);
	char msg[256];
	int r;

	r = tvm_rpc_exception_peek(in, msg, sizeof(msg));
	evbuffer_free(in);
	return r;
}

START_TEST(test_exception_peek_rejects_others)
{
	ck_assert_int_eq(peek_hex(epn1), -EBADMSG);        /* truncated */
	ck_assert_int_eq(peek_hex(ep(2)->hex), -EBADMSG);  /* kReturn */
	ck_assert_int_eq(peek_hex(ep(11)->hex), -EBADMSG); /* kShutdown */
	ck_assert_int_eq(peek_hex(ep(12)->hex), -EBADMSG); /* N = 0 */
	ck_assert_int_eq(peek_hex(ep(17)->hex), -EBADMSG); /* syscall */
	ck_assert_int_eq(peek_hex(""), -EBADMSG);
	/* EP-10 with L one short of N - 20, and with two arguments. */
	ck_assert_int_eq(peek_hex("290000000000000005000000010000000b000000"
				  "140000000000000056616c75654572726f723a2062"
				  "616420696e707574"),
	    -EBADMSG);
	ck_assert_int_eq(peek_hex("290000000000000005000000020000000b000000"
				  "150000000000000056616c75654572726f723a2062"
				  "616420696e707574"),
	    -EBADMSG);
	/* kException whose one argument is an int, not a string. */
	ck_assert_int_eq(peek_hex("1c0000000000000005000000010000000000000000"
				  "00000000000000"),
	    -EBADMSG);
}
END_TEST

/* ---- the tvm-ffi dialect (tvm-ffi-era.md §2.6) ---------------------- */

/* FFI-nn vectors captured from v0.26 peers (fields joined). */
static const struct vec ffis[] = {
    {"FFI-03", "1500000000000000020000000500000000000000302e382e3000000000", 2,
	29},
    {"FFI-04", "0c00000000000000040000000100000000000000", 4, 20},
    {"FFI-05",
	"29000000000000000900000001000000080000001500000000000000"
	"74766d2e7270632e7365727665722e75706c6f6164",
	9, 49},
    {"FFI-06", "1400000000000000040000000100000004000000009c23d6c6550000", 4,
	28},
    {"FFI-18", "14000000000000000a0000000100000004000000b07a00344e7f0000", 10,
	28},
    {"FFI-19",
	"4100000000000000050000000100000008000000"
	"2d000000000000006e7075206f70657261746f72206c6962726172793a20696e7661"
	"6c69642064657363726970746f722030783261",
	5, 73},
    {"FFI-20",
	"77000000000000000500000001000000080000006300000000000000"
	"52504353657373696f6e54696d656f75744572726f723a20596f757220322e307320"
	"73657373696f6e2068617320657870697265642c2074727920746f20696e63726561"
	"736520746865202273657373696f6e5f74696d656f7574222076616c75652e",
	5, 127},
    {"FFI-21",
	"3e00000000000000050000000100000008000000"
	"2a00000000000000626f6172642073657373696f6e20637261736865643a20534947"
	"5345475620287369676e616c20313129",
	5, 70},
};

static const struct vec *
ffi(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(ffis) / sizeof(ffis[0]); i++)
		if (strcmp(ffis[i].name, name) == 0)
			return &ffis[i];
	ck_abort_msg("no vector %s", name);
	return NULL;
}

/* What we write to a v0.26 client is what a v0.26 server writes. */
START_TEST(test_ffi_exception_matches_vectors)
{
	struct evbuffer *out = evbuffer_new();
	char msg[256];

	tvm_rpc_timeout_message(2, msg, sizeof(msg));
	ck_assert_int_eq(
	    tvm_rpc_add_exception(out, msg, TVM_RPC_DIALECT_FFI), 0);
	assert_buffer_is(out, ffi("FFI-20")->hex);
	evbuffer_drain(out, evbuffer_get_length(out));
	/* Not known yet: the tvm-ffi form, which a v0.14 client survives
	 * and the v0.14 form (FFI-N1) would kill a v0.26 one. */
	ck_assert_int_eq(
	    tvm_rpc_add_exception(out, msg, TVM_RPC_DIALECT_UNKNOWN), 0);
	assert_buffer_is(out, ffi("FFI-20")->hex);
	evbuffer_drain(out, evbuffer_get_length(out));
	ck_assert_int_eq(tvm_rpc_add_exception(out,
			     "board session crashed: SIGSEGV (signal 11)",
			     TVM_RPC_DIALECT_FFI),
	    0);
	assert_buffer_is(out, ffi("FFI-21")->hex);
	evbuffer_free(out);
}
END_TEST

START_TEST(test_ffi_exception_peek)
{
	struct evbuffer *in = buffer_of(ffi("FFI-19")->hex);
	char msg[256];

	ck_assert_int_eq(tvm_rpc_exception_peek(in, msg, sizeof(msg)), 0);
	ck_assert_str_eq(msg, "npu operator library: invalid descriptor 0x2a");
	evbuffer_free(in);
	in = buffer_of(ffi("FFI-20")->hex);
	ck_assert_int_eq(tvm_rpc_exception_peek(in, msg, sizeof(msg)), 0);
	ck_assert(strncmp(msg, TVM_RPC_TIMEOUT_PREFIX,
		      strlen(TVM_RPC_TIMEOUT_PREFIX)) == 0);
	evbuffer_free(in);
}
END_TEST

static enum tvm_rpc_dialect
reply_dialect(const struct vec *v)
{
	struct evbuffer *in = buffer_of(v->hex);
	enum tvm_rpc_dialect d;

	d = tvm_rpc_dialect_of_reply(in, v->total, v->code);
	ck_assert_uint_eq(evbuffer_get_length(in), v->total); /* not taken */
	evbuffer_free(in);
	return d;
}

static enum tvm_rpc_dialect
request_dialect(const struct vec *v)
{
	unsigned char b[256];
	size_t n = unhex(v->hex, b, sizeof(b));
	size_t len = n - 12 < 8 ? n - 12 : 8;

	return tvm_rpc_dialect_of_request(v->code, v->total, b + 12, len);
}

/* D1 and D2 of §3.2 on both versions' captures. */
START_TEST(test_dialect_rules)
{
	/* D1: the reply to kInitServer, or an exception in its place. */
	ck_assert_int_eq(reply_dialect(ep(2)), TVM_RPC_DIALECT_V014);
	ck_assert_int_eq(reply_dialect(ffi("FFI-04")), TVM_RPC_DIALECT_FFI);
	ck_assert_int_eq(reply_dialect(ep(10)), TVM_RPC_DIALECT_V014);
	ck_assert_int_eq(reply_dialect(ffi("FFI-19")), TVM_RPC_DIALECT_FFI);
	/* Anything else leaves it open. */
	ck_assert_int_eq(reply_dialect(ep(4)), TVM_RPC_DIALECT_UNKNOWN);
	ck_assert_int_eq(reply_dialect(ffi("FFI-06")), TVM_RPC_DIALECT_UNKNOWN);
	ck_assert_int_eq(reply_dialect(ep(11)), TVM_RPC_DIALECT_UNKNOWN);
	ck_assert_int_eq(reply_dialect(ep(15)), TVM_RPC_DIALECT_UNKNOWN);
	/* D2: kGetGlobalFunc's string type, kFreeHandle's size. */
	ck_assert_int_eq(request_dialect(ep(3)), TVM_RPC_DIALECT_V014);
	ck_assert_int_eq(request_dialect(ep(17)), TVM_RPC_DIALECT_V014);
	ck_assert_int_eq(request_dialect(ffi("FFI-05")), TVM_RPC_DIALECT_FFI);
	ck_assert_int_eq(request_dialect(ffi("FFI-18")), TVM_RPC_DIALECT_FFI);
	ck_assert_int_eq(
	    tvm_rpc_dialect_of_request(10, 40, NULL, 0), TVM_RPC_DIALECT_V014);
	/* kInitServer without arguments is the same in both (EP-01). */
	ck_assert_int_eq(request_dialect(ep(1)), TVM_RPC_DIALECT_UNKNOWN);
	ck_assert_int_eq(
	    request_dialect(ffi("FFI-03")), TVM_RPC_DIALECT_UNKNOWN);
	ck_assert_int_eq(request_dialect(ep(5)), TVM_RPC_DIALECT_UNKNOWN);
	ck_assert_str_eq(tvm_rpc_dialect_name(TVM_RPC_DIALECT_FFI), "tvm-ffi");
	ck_assert_str_eq(tvm_rpc_dialect_name(TVM_RPC_DIALECT_V014), "v0.14");
}
END_TEST

/* The scanner keeps the first body bytes of each packet, even when the
 * packet arrives a byte at a time. */
static unsigned char scan_seen[8];
static size_t scan_seen_len;
static struct tvm_rpc_scan *scan_cur;

static void
scan_keep_body(int32_t code, uint64_t total, void *arg)
{
	scan_seen_len = scan_cur->body_len;
	memcpy(scan_seen, scan_cur->body, scan_cur->body_len);
}

START_TEST(test_scan_keeps_body_prefix)
{
	struct tvm_rpc_scan s;
	struct npufarm_err err;
	unsigned char b[256];
	size_t n = unhex(ffi("FFI-05")->hex, b, sizeof(b)), i;

	tvm_rpc_scan_init(&s, MAX_PACKET);
	scan_cur = &s;
	for (i = 0; i < n; i++)
		ck_assert_int_eq(
		    tvm_rpc_scan_feed(&s, b + i, 1, scan_keep_body, NULL, &err),
		    0);
	ck_assert_uint_eq(scan_seen_len, 8);
	ck_assert(memcmp(scan_seen, b + 12, 8) == 0);
	ck_assert_int_eq(tvm_rpc_dialect_of_request(9, n, scan_seen, 8),
	    TVM_RPC_DIALECT_FFI);
}
END_TEST

/* ---- handshake ---------------------------------------------------- */

START_TEST(test_hello_pull_hs01_in_the_cpp_clients_three_writes)
{
	static const size_t cuts[][3] = {
	    {4, 4, 44}, /* magic, keylen, key: rpc_socket_impl.cc */
	    {52, 0, 0}, /* one segment */
	    {3, 6, 43},
	};
	unsigned char b[64];
	char key[256];
	size_t n = unhex(hs01, b, sizeof(b)), i, j, off;
	struct npufarm_err err = {0};

	for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct evbuffer *in = evbuffer_new();

		off = 0;
		for (j = 0; j < 3 && cuts[i][j] > 0; j++) {
			ck_assert_int_eq(
			    tvm_rpc_hello_pull(in, key, sizeof(key), &err), 0);
			evbuffer_add(in, b + off, cuts[i][j]);
			off += cuts[i][j];
		}
		ck_assert_uint_eq(off, n);
		/* Endpoint bytes that follow stay where they are. */
		evbuffer_add(in, "\x15", 1);
		ck_assert_int_eq(
		    tvm_rpc_hello_pull(in, key, sizeof(key), &err), 1);
		ck_assert_str_eq(key, hs01_key);
		ck_assert_uint_eq(evbuffer_get_length(in), 1);
		evbuffer_free(in);
	}
}
END_TEST

START_TEST(test_hello_pull_byte_at_a_time_and_server_key)
{
	struct evbuffer *in = evbuffer_new();
	unsigned char b[64];
	char key[16];
	size_t n = unhex(hs05, b, sizeof(b)), i;

	for (i = 0; i < n; i++) {
		ck_assert_int_eq(
		    tvm_rpc_hello_pull(in, key, sizeof(key), NULL), 0);
		evbuffer_add(in, b + i, 1);
	}
	ck_assert_int_eq(tvm_rpc_hello_pull(in, key, sizeof(key), NULL), 1);
	ck_assert_str_eq(key, "server:x1");
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	/* keylen = keycap - 1 fits exactly; keycap does not. */
	evbuffer_add(in, b, n);
	ck_assert_int_eq(tvm_rpc_hello_pull(in, key, 10, NULL), 1);
	evbuffer_add(in, b, n);
	ck_assert_int_eq(tvm_rpc_hello_pull(in, key, 9, NULL), -ENAMETOOLONG);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_hello_pull_refusals)
{
	static const struct {
		const char *hex;
		int want;
		const char *msg; /* in err.msg */
	} t[] = {
	    /* keylen 0 (the C++ client then sends no key bytes at all). */
	    {"71f20f0000000000", -EINVAL, "empty key"},
	    /* Huge and negative keylen: refused from the header alone. */
	    {"71f20f00ffffff7f", -ENAMETOOLONG, "2147483647, limit is 255"},
	    {"71f20f00ffffffff", -ENAMETOOLONG, "length -1"},
	    {"71f20f0000010000", -ENAMETOOLONG, "length 256"},
	    /* Wrong magic (TRK-01's, then HTTP) as soon as 4 bytes are in. */
	    {"71f202", 0, NULL},
	    {"71f20200", -EPROTO, "0x0002f271"},
	    {"474554202f20485454", -EPROTO, "RPC_MAGIC"},
	    /* A NUL inside the key; an incomplete key just waits. */
	    {"71f20f0003000000610062", -EINVAL, "NUL"},
	    {"71f20f00030000006100", 0, NULL},
	};
	char key[256];
	size_t i, n;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct evbuffer *in = buffer_of(t[i].hex);
		struct npufarm_err err = {0};

		n = evbuffer_get_length(in);
		ck_assert_int_eq(
		    tvm_rpc_hello_pull(in, key, sizeof(key), &err), t[i].want);
		ck_assert_uint_eq(evbuffer_get_length(in), n); /* not drained */
		if (t[i].msg != NULL) {
			ck_assert_int_eq(err.code, t[i].want);
			ck_assert_msg(
			    strstr(err.msg, t[i].msg) != NULL, "%s", err.msg);
		}
		evbuffer_free(in);
	}
}
END_TEST

static void
parse_ok(const char *text, struct tvm_rpc_hello *h, char *key, size_t cap)
{
	struct npufarm_err err = {0};

	ck_assert_uint_lt(strlen(text), cap);
	strcpy(key, text);
	ck_assert_msg(
	    tvm_rpc_hello_parse(key, h, &err) == 0, "%s: %s", text, err.msg);
}

START_TEST(test_hello_parse_keys)
{
	struct tvm_rpc_hello h;
	char key[128];

	/* HS-01's key. */
	parse_ok(hs01_key, &h, key, sizeof(key));
	ck_assert(!h.is_server);
	ck_assert_str_eq(h.match, "rk3588:0.8444218515250481");
	ck_assert(h.has_timeout);
	ck_assert(h.timeout == 10);

	parse_ok("client:mk -timeout=10", &h, key, sizeof(key));
	ck_assert_str_eq(h.match, "mk");
	ck_assert(h.has_timeout && h.timeout == 10);
	parse_ok("client:mk -timeout=10.0", &h, key, sizeof(key));
	ck_assert(h.has_timeout && h.timeout == 10);
	parse_ok("client:mk -timeout=2.5", &h, key, sizeof(key));
	ck_assert(h.has_timeout && h.timeout == 2.5);
	parse_ok("client:mk -timeout=1e-05", &h, key, sizeof(key));
	ck_assert(h.timeout == 1e-05);
	/* Issue 12: near 9.2e18 the deadline overflowed and the session
	 * expired at once; values over 1e9 s (~31 years) are clamped. */
	parse_ok("client:mk -timeout=9.2e18", &h, key, sizeof(key));
	ck_assert(h.has_timeout && h.timeout == 1e9);
	parse_ok("client:mk -timeout=1e300", &h, key, sizeof(key));
	ck_assert(h.timeout == 1e9);
	/* The last -timeout wins. */
	parse_ok("client:mk -timeout=5 -timeout=7", &h, key, sizeof(key));
	ck_assert(h.timeout == 7);
	/* Tokens after the key (the npufarm agent adds some) are ignored. */
	parse_ok("client:mk -timeout=10 lease=42 -x", &h, key, sizeof(key));
	ck_assert_str_eq(h.match, "mk");
	ck_assert(h.timeout == 10);
	parse_ok("client:mk\t-timeout=3", &h, key, sizeof(key));
	ck_assert_str_eq(h.match, "mk");
	ck_assert(h.timeout == 3);

	/* HS-06's key as the proxied server sees it. */
	parse_ok(hs06_key, &h, key, sizeof(key));
	ck_assert_str_eq(h.match, "x1:0.6093992492447718");
	ck_assert(h.timeout == 5);

	parse_ok("server:rk3588 agent=board7", &h, key, sizeof(key));
	ck_assert(h.is_server);
	ck_assert_str_eq(h.match, "rk3588");
	ck_assert(!h.has_timeout);
	ck_assert(h.timeout == 0);

	/* No timeout; empty match; not a role prefix at all. */
	parse_ok("client:mk", &h, key, sizeof(key));
	ck_assert(!h.has_timeout && h.timeout == 0);
	ck_assert_str_eq(h.match, "mk");
	parse_ok("client:", &h, key, sizeof(key));
	ck_assert(!h.is_server);
	ck_assert_str_eq(h.match, "");
	parse_ok("abc", &h, key, sizeof(key));
	ck_assert(!h.is_server);
	ck_assert_str_eq(h.match, "");
	/* Any other prefix: a client, and 7 bytes dropped all the same. */
	parse_ok("tracker:rk3588", &h, key, sizeof(key));
	ck_assert(!h.is_server);
	ck_assert_str_eq(h.match, ":rk3588");
	/* As the proxy does, blanks after the prefix are skipped. */
	parse_ok("client:  mk", &h, key, sizeof(key));
	ck_assert_str_eq(h.match, "mk");
}
END_TEST

START_TEST(test_hello_parse_bad_timeout)
{
	static const char *const bad[] = {
	    "client:mk -timeout=abc",
	    "client:mk -timeout=",
	    "client:mk -timeout=-1",
	    "client:mk -timeout=nan",
	    "client:mk -timeout=inf",
	    "client:mk -timeout=0x10",
	    "client:mk -timeout=10s",
	    "client:mk -timeout=1e999",
	    "client:mk -timeout=5 -timeout=x",
	};
	struct tvm_rpc_hello h = {.match = "untouched"};
	struct npufarm_err err = {0};
	char key[64];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(key, bad[i]);
		ck_assert_int_eq(tvm_rpc_hello_parse(key, &h, &err), -EINVAL);
		ck_assert_int_eq(err.code, -EINVAL);
		ck_assert(strstr(err.msg, "-timeout=") != NULL);
		ck_assert_str_eq(h.match, "untouched");
	}
	strcpy(key, "client:mk -timeout=abc");
	ck_assert_int_eq(tvm_rpc_hello_parse(key, &h, NULL), -EINVAL);
}
END_TEST

START_TEST(test_handshake_replies_match_vectors)
{
	struct evbuffer *out = evbuffer_new();

	/* HS-03 MISMATCH, HS-04 DUPLICATE. */
	ck_assert_int_eq(
	    tvm_rpc_add_code(out, NPUFARM_TVM_RPC_CODE_MISMATCH), 0);
	assert_buffer_is(out, "73f20f00");
	evbuffer_drain(out, 4);
	ck_assert_int_eq(
	    tvm_rpc_add_code(out, NPUFARM_TVM_RPC_CODE_DUPLICATE), 0);
	assert_buffer_is(out, "72f20f00");
	evbuffer_drain(out, 4);

	/* HS-06: the server gets the client's full key, -timeout and all. */
	ck_assert_int_eq(
	    tvm_rpc_add_success(out, hs06_key, strlen(hs06_key)), 0);
	assert_buffer_is(out, hs06);
	evbuffer_drain(out, evbuffer_get_length(out));
	/* HS-07: the client gets the server's key. */
	ck_assert_int_eq(tvm_rpc_add_success(out, "server:x1", 9), 0);
	assert_buffer_is(out, hs05);
	evbuffer_drain(out, evbuffer_get_length(out));
	/* HS-02: a server's own acceptance; @len bounds the key. */
	ck_assert_int_eq(tvm_rpc_add_success(out, "server:rk3588 x", 13), 0);
	assert_buffer_is(out, hs02);
	evbuffer_drain(out, evbuffer_get_length(out));

	/* Hellos: HS-01 (client) and HS-05 (server at a proxy). */
	ck_assert_int_eq(tvm_rpc_add_hello(out, hs01_key), 0);
	assert_buffer_is(out, hs01);
	evbuffer_drain(out, evbuffer_get_length(out));
	ck_assert_int_eq(tvm_rpc_add_hello(out, "server:x1"), 0);
	assert_buffer_is(out, hs05);
	evbuffer_free(out);
}
END_TEST

/* ---- packet framing ----------------------------------------------- */

START_TEST(test_packet_peek_vector)
{
	const struct vec *v = ep(_i + 1);
	struct evbuffer *in = evbuffer_new();
	unsigned char b[256], other[64];
	uint64_t total = 0;
	int32_t code = -1;
	size_t n = unhex(v->hex, b, sizeof(b)), k, m;

	ck_assert_uint_eq(n, v->total);
	/* Every proper prefix is incomplete (EP-N1 is one of EP-08's). */
	for (k = 0; k < n; k++) {
		evbuffer_add(in, b + k, 1);
		if (k + 1 < n)
			ck_assert_int_eq(
			    tvm_rpc_packet_peek(in, MAX_PACKET, &total, &code),
			    0);
	}
	ck_assert_int_eq(tvm_rpc_packet_peek(in, MAX_PACKET, &total, &code), 1);
	ck_assert_uint_eq(total, v->total);
	ck_assert_int_eq(code, v->code);
	ck_assert_uint_eq(evbuffer_get_length(in), n); /* nothing removed */

	/* A packet behind it changes nothing. */
	m = unhex(ep(11)->hex, other, sizeof(other));
	evbuffer_add(in, other, m);
	ck_assert_int_eq(tvm_rpc_packet_peek(in, MAX_PACKET, &total, &code), 1);
	ck_assert_uint_eq(total, v->total);
	ck_assert_int_eq(code, v->code);

	/* The limit is on 8 + N, judged from the length alone. */
	ck_assert_int_eq(tvm_rpc_packet_peek(in, v->total, &total, &code), 1);
	evbuffer_drain(in, evbuffer_get_length(in));
	evbuffer_add(in, b, 8);
	ck_assert_int_eq(
	    tvm_rpc_packet_peek(in, v->total - 1, &total, &code), -EMSGSIZE);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_packet_peek_edges)
{
	static const struct {
		const char *hex;
		uint64_t max;
		int want;
	} t[] = {
	    /* EP-N1 and shorter: incomplete. */
	    {epn1, MAX_PACKET, 0},
	    {"", MAX_PACKET, 0},
	    {"75000000000000", MAX_PACKET, 0},
	    /* N = 4 with its code still missing: incomplete. */
	    {"040000000000000001", MAX_PACKET, 0},
	    /* N = 1..3 has no room for a code. */
	    {"0100000000000000", MAX_PACKET, -EBADMSG},
	    {"0200000000000000", MAX_PACKET, -EBADMSG},
	    {"0300000000000000", MAX_PACKET, -EBADMSG},
	    /* Over the limit, including lengths where 8 + N would wrap. */
	    {"0000100000000000", MAX_PACKET, -EMSGSIZE},
	    {"f8ffffffffffffff", MAX_PACKET, -EMSGSIZE},
	    {"ffffffffffffffff", UINT64_MAX, -EMSGSIZE},
	};
	struct evbuffer *in;
	uint64_t total = 0;
	int32_t code = -1;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		in = buffer_of(t[i].hex);
		ck_assert_msg(tvm_rpc_packet_peek(
				  in, t[i].max, &total, &code) == t[i].want,
		    "%s", t[i].hex);
		evbuffer_free(in);
	}
	/* EP-12: N = 0 is a whole 8-byte packet of no code. */
	in = buffer_of(ep(12)->hex);
	ck_assert_int_eq(tvm_rpc_packet_peek(in, MAX_PACKET, &total, &code), 1);
	ck_assert_uint_eq(total, 8);
	ck_assert_int_eq(code, TVM_RPC_NONE);
	evbuffer_free(in);
}
END_TEST

START_TEST(test_code_classes)
{
	int32_t c;

	for (c = -2; c <= 30; c++) {
		bool req =
		    c == 2 || c == 3 || c == 6 || c == 7 || (c >= 9 && c <= 20);
		bool rep = c == 4 || c == 5 || c == 8;

		ck_assert_msg(tvm_rpc_code_is_request(c) == req, "code %d", c);
		ck_assert_msg(tvm_rpc_code_is_reply(c) == rep, "code %d", c);
	}
}
END_TEST

/* ---- scanner ------------------------------------------------------ */

#define MAX_EVENTS 64

struct events {
	size_t n;
	int32_t code[MAX_EVENTS];
	uint64_t total[MAX_EVENTS];
};

static void
record(int32_t code, uint64_t total, void *arg)
{
	struct events *e = arg;

	ck_assert_uint_lt(e->n, MAX_EVENTS);
	e->code[e->n] = code;
	e->total[e->n] = total;
	e->n++;
}

/* A stream of vectors back to back, and where its packets end. */
struct stream {
	unsigned char b[4096];
	size_t len;
	bool boundary[4096 + 1]; /* true at 0 and after each packet */
	struct events want;      /* callbacks due (N = 0 excluded) */
};

static void
stream_build(struct stream *s, const int *idx, size_t count)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	s->boundary[0] = true;
	for (i = 0; i < count; i++) {
		const struct vec *v = ep(idx[i]);

		s->len += unhex(v->hex, s->b + s->len, sizeof(s->b) - s->len);
		s->boundary[s->len] = true;
		if (v->code != TVM_RPC_NONE || v->total != 8)
			record(v->code, v->total, &s->want);
	}
}

static void
assert_events(const struct events *got, const struct events *want)
{
	size_t i;

	ck_assert_uint_eq(got->n, want->n);
	for (i = 0; i < want->n; i++) {
		ck_assert_int_eq(got->code[i], want->code[i]);
		ck_assert_uint_eq(got->total[i], want->total[i]);
	}
}

/*
 * Feed @s in pieces: @step bytes at a time, or random sizes up to 40 when
 * @step is 0; at_boundary must hold exactly where a packet ends.
 */
static void
scan_stream(const struct stream *s, size_t step)
{
	struct tvm_rpc_scan sc;
	struct events got = {0};
	struct npufarm_err err = {0};
	size_t off = 0, k;

	tvm_rpc_scan_init(&sc, MAX_PACKET);
	ck_assert(tvm_rpc_scan_at_boundary(&sc));
	while (off < s->len) {
		k = step != 0 ? step : 1 + rng() % 40;
		if (k > s->len - off)
			k = s->len - off;
		ck_assert_msg(tvm_rpc_scan_feed(
				  &sc, s->b + off, k, record, &got, &err) == 0,
		    "%s", err.msg);
		off += k;
		ck_assert_msg(tvm_rpc_scan_at_boundary(&sc) == s->boundary[off],
		    "boundary at %zu", off);
		ck_assert_uint_eq(sc.bytes, off);
	}
	/* An empty feed changes nothing. */
	ck_assert_int_eq(tvm_rpc_scan_feed(&sc, "", 0, record, &got, &err), 0);
	assert_events(&got, &s->want);
	ck_assert_uint_eq(sc.packets, s->want.n);
	ck_assert(tvm_rpc_scan_at_boundary(&sc));
}

/* The same through an evbuffer of @chains chains, in random lengths. */
static void
scan_stream_buffer(const struct stream *s, size_t chains)
{
	struct evbuffer *buf = evbuffer_new();
	struct tvm_rpc_scan sc;
	struct events got = {0};
	struct npufarm_err err = {0};
	size_t off = 0, k;
	int nchains;

	add_in_chains(buf, s->b, s->len, chains);
	nchains = count_chains(buf);
	ck_assert_int_eq(nchains, (int)chains);
	tvm_rpc_scan_init(&sc, MAX_PACKET);
	while (off < s->len) {
		k = 1 + rng() % 200;
		if (k > s->len - off)
			k = s->len - off;
		ck_assert_msg(tvm_rpc_scan_feed_buffer(
				  &sc, buf, k, record, &got, &err) == 0,
		    "%s", err.msg);
		/* Read in place: not linearised, not changed. */
		ck_assert_int_eq(count_chains(buf), nchains);
		ck_assert_uint_eq(evbuffer_get_length(buf), s->len - off);
		ck_assert(
		    tvm_rpc_scan_at_boundary(&sc) == s->boundary[off + k]);
		evbuffer_drain(buf, k);
		off += k;
		nchains = count_chains(buf);
	}
	assert_events(&got, &s->want);
	ck_assert_uint_eq(sc.bytes, s->len);
	evbuffer_free(buf);
}

static void
scan_all_ways(const int *idx, size_t count)
{
	static struct stream s;
	int round;

	stream_build(&s, idx, count);
	scan_stream(&s, s.len);
	scan_stream(&s, 1);
	for (round = 0; round < 20; round++)
		scan_stream(&s, 0);
	scan_stream_buffer(&s, 1);
	scan_stream_buffer(&s, 3);
	scan_stream_buffer(&s, s.len); /* one byte a chain: > 8 iovecs */
}

START_TEST(test_scan_vector)
{
	int k = _i + 1;

	scan_all_ways(&k, 1);
}
END_TEST

START_TEST(test_scan_concatenations)
{
	static const int init_call[] = {1, 3, 5, 11};
	static const int replies[] = {2, 12, 4, 12, 12, 6, 8, 15, 12};
	static const int session[] = {
	    12, 1, 2, 3, 4, 5, 6, 13, 2, 14, 15, 5, 16, 17, 16, 11};
	int all[N_EPS];
	size_t i;

	scan_all_ways(init_call, 4);
	scan_all_ways(replies, sizeof(replies) / sizeof(replies[0]));
	scan_all_ways(session, sizeof(session) / sizeof(session[0]));
	for (i = 0; i < N_EPS; i++)
		all[i] = (int)i + 1;
	scan_all_ways(all, N_EPS);
}
END_TEST

static int
scan_hex(const char *hex, uint64_t max, struct tvm_rpc_scan *sc,
    struct events *got, struct npufarm_err *err)
{
	unsigned char b[256];
	size_t n = unhex(hex, b, sizeof(b)), i;
	int r = 0;

	tvm_rpc_scan_init(sc, max);
	for (i = 0; i < n && r == 0; i++)
		r = tvm_rpc_scan_feed(sc, b + i, 1, record, got, err);
	return r;
}

START_TEST(test_scan_refusals)
{
	struct tvm_rpc_scan sc;
	struct events got = {0};
	struct npufarm_err err = {0};
	struct evbuffer *buf;
	char hex[512];

	/* EP-N1 is no error, just not at a boundary. */
	ck_assert_int_eq(scan_hex(epn1, MAX_PACKET, &sc, &got, &err), 0);
	ck_assert(!tvm_rpc_scan_at_boundary(&sc));
	ck_assert_uint_eq(got.n, 0);

	/* EP-08 at a limit of exactly its size passes, one less fails. */
	ck_assert_int_eq(scan_hex(ep(8)->hex, 125, &sc, &got, &err), 0);
	ck_assert_uint_eq(got.n, 1);
	got.n = 0;
	ck_assert_int_eq(scan_hex(ep(8)->hex, 124, &sc, &got, &err), -EMSGSIZE);
	ck_assert_int_eq(err.code, -EMSGSIZE);
	ck_assert(strstr(err.msg, "117") != NULL);
	ck_assert_uint_eq(sc.bytes, 8); /* judged at the length's last byte */
	/* Unusable afterwards. */
	ck_assert_int_eq(
	    tvm_rpc_scan_feed(&sc, "\0", 1, record, &got, &err), -EBADMSG);
	ck_assert(!tvm_rpc_scan_at_boundary(&sc));
	ck_assert_uint_eq(got.n, 0);

	/* N = 1..3, after a good packet. */
	snprintf(hex, sizeof(hex), "%s%s", ep(11)->hex, "0300000000000000");
	ck_assert_int_eq(scan_hex(hex, MAX_PACKET, &sc, &got, &err), -EBADMSG);
	ck_assert_uint_eq(got.n, 1);
	ck_assert(strstr(err.msg, "at byte 12") != NULL);
	ck_assert_int_eq(
	    scan_hex("0100000000000000", MAX_PACKET, &sc, &got, &err),
	    -EBADMSG);

	/* A length that would wrap 8 + N. */
	ck_assert_int_eq(
	    scan_hex("f9ffffffffffffff", UINT64_MAX, &sc, &got, &err),
	    -EMSGSIZE);

	/* The buffer variant: more than is buffered, and the same errors. */
	buf = evbuffer_new();
	evbuffer_add(buf, "\x03\0\0\0\0\0\0\0", 8);
	tvm_rpc_scan_init(&sc, MAX_PACKET);
	ck_assert_int_eq(
	    tvm_rpc_scan_feed_buffer(&sc, buf, 9, record, &got, &err), -EINVAL);
	ck_assert_int_eq(
	    tvm_rpc_scan_feed_buffer(&sc, buf, 8, record, &got, &err),
	    -EBADMSG);
	ck_assert_uint_eq(evbuffer_get_length(buf), 8);
	evbuffer_free(buf);
}
END_TEST

START_TEST(test_scan_without_callback)
{
	unsigned char b[256];
	struct tvm_rpc_scan sc;
	size_t n = unhex(ep(13)->hex, b, sizeof(b));

	tvm_rpc_scan_init(&sc, MAX_PACKET);
	ck_assert_int_eq(tvm_rpc_scan_feed(&sc, b, n, NULL, NULL, NULL), 0);
	ck_assert_int_eq(tvm_rpc_scan_feed(&sc, b, n, NULL, NULL, NULL), 0);
	ck_assert_uint_eq(sc.packets, 2);
	ck_assert_uint_eq(sc.bytes, 2 * n);
	ck_assert(tvm_rpc_scan_at_boundary(&sc));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tvm_rpc");
	TCase *tc;

	tc = tcase_create("handshake");
	tcase_add_test(
	    tc, test_hello_pull_hs01_in_the_cpp_clients_three_writes);
	tcase_add_test(tc, test_hello_pull_byte_at_a_time_and_server_key);
	tcase_add_test(tc, test_hello_pull_refusals);
	tcase_add_test(tc, test_hello_parse_keys);
	tcase_add_test(tc, test_hello_parse_bad_timeout);
	tcase_add_test(tc, test_handshake_replies_match_vectors);
	suite_add_tcase(s, tc);

	tc = tcase_create("exception");
	tcase_add_test(tc, test_py_float_matches_python_repr);
	tcase_add_test(tc, test_timeout_message_formats_like_python);
	tcase_add_test(tc, test_add_exception_matches_vectors);
	tcase_add_test(tc, test_exception_peek_decodes_vectors);
	tcase_add_test(tc, test_exception_peek_rejects_others);
	suite_add_tcase(s, tc);

	tc = tcase_create("dialects");
	tcase_add_test(tc, test_ffi_exception_matches_vectors);
	tcase_add_test(tc, test_ffi_exception_peek);
	tcase_add_test(tc, test_dialect_rules);
	tcase_add_test(tc, test_scan_keeps_body_prefix);
	suite_add_tcase(s, tc);

	tc = tcase_create("packets");
	tcase_add_loop_test(tc, test_packet_peek_vector, 0, (int)N_EPS);
	tcase_add_test(tc, test_packet_peek_edges);
	tcase_add_test(tc, test_code_classes);
	tcase_add_loop_test(tc, test_scan_vector, 0, (int)N_EPS);
	tcase_add_test(tc, test_scan_concatenations);
	tcase_add_test(tc, test_scan_refusals);
	tcase_add_test(tc, test_scan_without_callback);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
