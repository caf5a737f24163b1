/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM RPC data plane (spec tvm-rpc-protocol.md §3-§6): the handshake that
 * precedes a session, and the packet framing of the session itself
 * (u64 LE N | i32 LE code | N-4 bytes).  Used by the broker's relay and by
 * the agent's session supervisor.  Nothing here logs or allocates beyond
 * what its return value says.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct npufarm_err;

/* RPC packet codes (RPCCode in TVM's rpc_reference.h). */
enum tvm_rpc_code {
	TVM_RPC_NONE = 0,
	TVM_RPC_SHUTDOWN = 1,
	TVM_RPC_INIT_SERVER = 2,
	TVM_RPC_CALL_FUNC = 3,
	TVM_RPC_RETURN = 4,
	TVM_RPC_EXCEPTION = 5,
	TVM_RPC_COPY_FROM_REMOTE = 6,
	TVM_RPC_COPY_TO_REMOTE = 7,
	TVM_RPC_COPY_ACK = 8,
	/* 9..20: syscalls, all answered like requests */
	TVM_RPC_SYSCALL_MAX = 20,
};

#define TVM_RPC_HEADER_SIZE    12 /* u64 N + i32 code */
/* Body bytes the scanner keeps of each packet: code's successor fields. */
#define TVM_RPC_SCAN_BODY      8
#define TVM_RPC_TIMEOUT_PREFIX "RPCSessionTimeoutError: "

/*
 * How a session encodes arguments and return values (spec tvm-ffi-era.md
 * §2-§3).  Both dialects share the handshake, the framing and the codes;
 * a packet in the wrong one kills a v0.2x client, so everything we write
 * into a session is in its own dialect.
 */
enum tvm_rpc_dialect {
	TVM_RPC_DIALECT_UNKNOWN = 0, /* not decided yet */
	TVM_RPC_DIALECT_V014,        /* type codes: TVM v0.14 .. v0.20 */
	TVM_RPC_DIALECT_FFI,         /* type indexes: TVM v0.21+ (tvm-ffi) */
};

/* "unknown", "v0.14" or "tvm-ffi": for logs, the API and the ledger. */
const char *tvm_rpc_dialect_name(enum tvm_rpc_dialect d);

/* ---- handshake ---------------------------------------------------- */

/*
 * A parsed RPC hello key: "client:MATCH [-timeout=T] [other options]" or
 * "server:KEY [tokens...]".  Strings point into a caller buffer.
 */
struct tvm_rpc_hello {
	bool is_server;    /* key starts with "server:" */
	const char *match; /* the first token with its 7-char role prefix cut
			    * off, NUL-terminated in the caller's buffer */
	double timeout;    /* -timeout=T seconds; 0 when absent */
	bool has_timeout;
};

/*
 * Look for a complete hello in @in: i32 magic, i32 keylen, key bytes.
 * Returns 1 with the key copied, NUL-terminated, into @key (capacity
 * @keycap; the hello is drained from @in), 0 if more bytes are needed,
 * -EPROTO if the magic is not RPC_MAGIC, -ENAMETOOLONG if keylen >=
 * @keycap or is negative, -EINVAL if keylen is 0 or the key has a NUL.
 */
int tvm_rpc_hello_pull(
    struct evbuffer *in, char *key, size_t keycap, struct npufarm_err *err);

/*
 * Split @key in place (whitespace-separated tokens) into @ret.  Accepts
 * -timeout=10, -timeout=10.0, -timeout=2.5 (the last one found wins);
 * rejects a malformed timeout value with -EINVAL.  As TVM's proxy does,
 * the match is the key with its first 7 bytes (the role, "client:" or
 * "server:") dropped, up to the first whitespace; anything that does not
 * start with "server:" is a client.
 */
int tvm_rpc_hello_parse(
    char *key, struct tvm_rpc_hello *ret, struct npufarm_err *err);

/* Append i32 code (SUCCESS/MISMATCH/DUPLICATE) alone. */
int tvm_rpc_add_code(struct evbuffer *out, int32_t code);

/* Append SUCCESS | i32 len | key: the pair-up message of spec §4.2. */
int tvm_rpc_add_success(struct evbuffer *out, const char *key, size_t len);

/* Append a full hello: RPC_MAGIC | i32 len | key (used by the agent). */
int tvm_rpc_add_hello(struct evbuffer *out, const char *key);

/* ---- packets ------------------------------------------------------ */

/*
 * Is a whole packet at the front of @in?  Returns 1 and sets *ret_total
 * (8 + N, the bytes to move) and *ret_code (TVM_RPC_NONE for N == 0;
 * N < 4 other than 0 is -EBADMSG), 0 if incomplete, -EMSGSIZE if 8 + N
 * exceeds @max.  Nothing is removed; the caller moves the packet with
 * evbuffer_remove_buffer(in, out, total), which moves chains, not bytes.
 */
int tvm_rpc_packet_peek(
    struct evbuffer *in, uint64_t max, uint64_t *ret_total, int32_t *ret_code);

/*
 * Incremental scanner for a byte stream forwarded as it arrives (client to
 * board): it tracks packet boundaries without buffering payloads.
 */
struct tvm_rpc_scan {
	unsigned char hdr[TVM_RPC_HEADER_SIZE]; /* header bytes so far */
	size_t hdr_len;
	uint64_t left;    /* body bytes of the current packet still to come */
	int32_t code;     /* code of the current packet */
	uint64_t max;     /* largest 8 + N accepted */
	uint64_t packets; /* complete packets seen (N == 0 ones excluded) */
	unsigned char body[TVM_RPC_SCAN_BODY]; /* first body bytes of the
						* current packet (after the
						* code), valid in @fn */
	size_t body_len;                       /* how many of them */
	uint64_t bytes;                        /* bytes seen */
};

typedef void tvm_rpc_packet_fn(int32_t code, uint64_t total, void *arg);

void tvm_rpc_scan_init(struct tvm_rpc_scan *s, uint64_t max);
/*
 * Account @len bytes of the stream; calls @fn once per packet that
 * completes inside them (N == 0 packets are skipped silently).  Returns 0,
 * or -EMSGSIZE / -EBADMSG (N over max, or 0 < N < 4) with @err filled; the
 * scanner is then unusable.
 */
int tvm_rpc_scan_feed(struct tvm_rpc_scan *s, const void *data, size_t len,
    tvm_rpc_packet_fn *fn, void *arg, struct npufarm_err *err);
/* Same, over the first @len bytes of @buf, without copying them. */
int tvm_rpc_scan_feed_buffer(struct tvm_rpc_scan *s, struct evbuffer *buf,
    size_t len, tvm_rpc_packet_fn *fn, void *arg, struct npufarm_err *err);
/* True when the stream is between packets (a whole number of packets). */
bool tvm_rpc_scan_at_boundary(const struct tvm_rpc_scan *s);

/*
 * Codes a TVM server answers with exactly one reply: kInitServer,
 * kCallFunc, the copies and the syscalls (2, 3, 6, 7, 9..20).  kShutdown,
 * replies and unknown codes are not requests.
 */
bool tvm_rpc_code_is_request(int32_t code);
/* RETURN, EXCEPTION, COPY_ACK. */
bool tvm_rpc_code_is_reply(int32_t code);

/*
 * Append one kException packet carrying @msg (no NUL bytes; it is cut at
 * the first one), byte for byte what RPCReference::ReturnException writes
 * in @dialect: string type code 11 for v0.14 (spec §5.5, EP-08), type
 * index 8 for tvm-ffi (tvm-ffi-era.md §2.5, FFI-20).  UNKNOWN writes the
 * tvm-ffi form, the one both kinds of client survive (§3.2).
 */
int tvm_rpc_add_exception(
    struct evbuffer *out, const char *msg, enum tvm_rpc_dialect dialect);

/*
 * Decode the message of a complete kException packet at the front of @in
 * (not removed) into @buf (truncated to @buflen - 1 bytes, NUL-terminated),
 * in either dialect.  Returns 0 or -EBADMSG if the packet is not a
 * well-formed kException.
 */
int tvm_rpc_exception_peek(struct evbuffer *in, char *buf, size_t buflen);

/*
 * D1 of tvm-ffi-era.md §3.2: the dialect a server speaks, told by its
 * first packet after the handshake (the reply to kInitServer), complete
 * at the front of @in (not removed) with @total and @code as
 * tvm_rpc_packet_peek() gave them.  A void kReturn ending in type 4 is
 * v0.14, in 0 tvm-ffi; a kException's string type 11 is v0.14, 8 tvm-ffi.
 * Anything else: UNKNOWN (keep looking).
 */
enum tvm_rpc_dialect tvm_rpc_dialect_of_reply(
    struct evbuffer *in, uint64_t total, int32_t code);

/*
 * D2 of §3.2: the dialect of a client request with @code, 8 + N = @total
 * bytes, whose first body bytes after the code are @body (@len of them, as
 * struct tvm_rpc_scan keeps them).  kGetGlobalFunc (9) names its function
 * as string type 11 (v0.14) or 8 (tvm-ffi); kFreeHandle (10) is 40 bytes
 * in v0.14 and 28 in tvm-ffi.  Anything else: UNKNOWN.
 */
enum tvm_rpc_dialect tvm_rpc_dialect_of_request(
    int32_t code, uint64_t total, const unsigned char *body, size_t len);

/*
 * The message TVM's Python server sends at a session timeout:
 * RPCSessionTimeoutError: Your <T as Python repr(float(T))>s session has
 * expired, try to increase the "session_timeout" value.
 * e.g. T = 10 -> "10.0", 2.5 -> "2.5", 1e-05 -> "1e-05" (EP-09, EP-16).
 * Returns the length written (snprintf semantics).
 */
int tvm_rpc_timeout_message(double seconds, char *buf, size_t len);

/* Python repr() of a float: shortest round-trip, ".0" for integers. */
int tvm_rpc_py_float(double v, char *buf, size_t len);
