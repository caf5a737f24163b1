/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tvmrpc: the TVM RPC data plane as a TVM peer speaks it, for tests and the
 * relay benchmark (spec tvm-rpc-protocol.md §3-§6, written from the spec and
 * its vectors, not from the broker's codec).  A struct tvmrpc is one
 * connection: the handshake (RPC_MAGIC | i32 len | key, and the i32 reply
 * code with the key after SUCCESS), then whole RPC packets
 * (u64 N | i32 code | N-4 bytes), plus builders for the spec's packets.
 *
 * Every wait is bounded by a timeout and can be cut short by a cancel fd
 * (any fd that turns readable), so a thread blocked in here stops cleanly.
 * End of stream is reported precisely: TVMRPC_E_EOF when the peer closed at
 * a boundary (no byte of the next item had arrived), TVMRPC_E_TRUNCATED
 * when it closed in the middle, -ECONNRESET for a reset, -ETIMEDOUT when
 * the deadline passed (bytes received so far stay buffered, so a later call
 * resumes where this one stopped).  Nothing here logs.  Not thread-safe:
 * one thread per connection.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct npufarm_err;
struct tvmrpc;

/* Positive results besides 0 (see the file comment). */
#define TVMRPC_E_EOF       1 /* closed at a boundary */
#define TVMRPC_E_TRUNCATED 2 /* closed in the middle of an item */

/* u64 N + i32 code */
#define TVMRPC_HEADER_SIZE    12
/* Default largest N accepted by tvmrpc_recv_packet() (256 MiB). */
#define TVMRPC_MAX_PACKET     (256ull << 20)
/* Largest handshake key accepted, including the NUL. */
#define TVMRPC_MAX_KEY        4096
/* Room in a struct tvmrpc_msg: the spec's packets, or short messages. */
#define TVMRPC_MSG_MAX        4096
/* The prefix that makes a TVM client raise RPCSessionTimeoutError. */
#define TVMRPC_TIMEOUT_PREFIX "RPCSessionTimeoutError: "

/* RPCCode (spec §5.2); 9..20 are syscalls. */
enum tvmrpc_code {
	TVMRPC_NONE = 0,
	TVMRPC_SHUTDOWN = 1,
	TVMRPC_INIT_SERVER = 2,
	TVMRPC_CALL_FUNC = 3,
	TVMRPC_RETURN = 4,
	TVMRPC_EXCEPTION = 5,
	TVMRPC_COPY_FROM_REMOTE = 6,
	TVMRPC_COPY_TO_REMOTE = 7,
	TVMRPC_COPY_ACK = 8,
	TVMRPC_GET_GLOBAL_FUNC = 9,
	TVMRPC_SYSCALL_LAST = 20,
};

/* PackedSeq type codes used here (spec §5.3). */
enum tvmrpc_tcode {
	TVMRPC_TINT = 0,
	TVMRPC_THANDLE = 3,
	TVMRPC_TNULL = 4,
	TVMRPC_TSTR = 11,
};

/* One received packet; body points into the connection's buffer. */
struct tvmrpc_packet {
	uint64_t len;              /* N: bytes after the u64, code included */
	int32_t code;              /* enum tvmrpc_code, or anything sent */
	const unsigned char *body; /* N-4 bytes; borrowed, valid until the
				    * next receive on the same connection */
	size_t body_len;           /* N-4 */
};

/* A built packet (or any short byte string) ready for tvmrpc_send(). */
struct tvmrpc_msg {
	size_t len;                      /* bytes used in b */
	unsigned char b[TVMRPC_MSG_MAX]; /* the wire bytes */
};

/* ---- connections --------------------------------------------------- */

int64_t tvmrpc_now_ms(void);
const char *tvmrpc_strresult(int r);

int tvmrpc_connect(const char *addr, int timeout_ms, int rcvbuf,
    struct tvmrpc **ret_conn, struct npufarm_err *err);
int tvmrpc_new_fd(int fd, int timeout_ms, struct tvmrpc **ret_conn);
struct tvmrpc *tvmrpc_free(struct tvmrpc *c);
int tvmrpc_fd(const struct tvmrpc *c);
void tvmrpc_set_cancel_fd(struct tvmrpc *c, int fd);
void tvmrpc_set_max_packet(struct tvmrpc *c, uint64_t max);
void tvmrpc_set_nodelay(struct tvmrpc *c, bool nodelay);
size_t tvmrpc_buffered(const struct tvmrpc *c);
uint64_t tvmrpc_zero_packets(const struct tvmrpc *c);

int tvmrpc_send(struct tvmrpc *c, const void *buf, size_t len);
int tvmrpc_send_msg(struct tvmrpc *c, const struct tvmrpc_msg *m);
int tvmrpc_send_packet(
    struct tvmrpc *c, int32_t code, const void *body, size_t len);
int tvmrpc_send_copy_ack(
    struct tvmrpc *c, const void *chunk, size_t chunk_len, uint64_t nbytes);

int tvmrpc_recv_bytes(struct tvmrpc *c, void *dst, size_t len, int timeout_ms);
int tvmrpc_peek_header(
    struct tvmrpc *c, int timeout_ms, uint64_t *ret_len, int32_t *ret_code);
int tvmrpc_recv_packet(
    struct tvmrpc *c, int timeout_ms, struct tvmrpc_packet *ret_pkt);
int tvmrpc_wait_eof(struct tvmrpc *c, int timeout_ms, size_t *ret_discarded);

/* ---- handshake ------------------------------------------------------ */

int tvmrpc_send_hello(struct tvmrpc *c, const char *key, bool split);
int tvmrpc_recv_hello(
    struct tvmrpc *c, int timeout_ms, char *key, size_t keycap);
int tvmrpc_send_reply(struct tvmrpc *c, int32_t code, const char *key);
int tvmrpc_recv_reply(struct tvmrpc *c, int timeout_ms, int32_t *ret_code,
    char *key, size_t keycap);
int tvmrpc_key_timeout(const char *key, double *ret_seconds);
int tvmrpc_key_match(const char *key, char *buf, size_t len);
int tvmrpc_format_float(double v, char *buf, size_t len);
int tvmrpc_timeout_message(double seconds, char *buf, size_t len);

/* ---- packets -------------------------------------------------------- */

void tvmrpc_put_header(unsigned char *h, uint64_t len, int32_t code);
bool tvmrpc_code_is_reply(int32_t code);
bool tvmrpc_code_is_request(int32_t code);

void tvmrpc_msg_init_server(struct tvmrpc_msg *m);
void tvmrpc_msg_return_void(struct tvmrpc_msg *m);
void tvmrpc_msg_return_handle(struct tvmrpc_msg *m, uint64_t handle);
void tvmrpc_msg_return_int(struct tvmrpc_msg *m, int64_t v);
void tvmrpc_msg_return_none(struct tvmrpc_msg *m);
int tvmrpc_msg_get_global_func(struct tvmrpc_msg *m, const char *name);
void tvmrpc_msg_call_func(struct tvmrpc_msg *m, uint64_t handle, int64_t arg);
int tvmrpc_msg_copy_from_remote(
    struct tvmrpc_msg *m, uint64_t data, uint64_t nbytes);
int tvmrpc_msg_copy_to_remote(
    struct tvmrpc_msg *m, uint64_t data, uint64_t nbytes);
int tvmrpc_msg_exception(struct tvmrpc_msg *m, const char *text);
void tvmrpc_msg_shutdown(struct tvmrpc_msg *m);

int tvmrpc_packet_string(
    const struct tvmrpc_packet *p, const char **ret_s, size_t *ret_len);
int tvmrpc_packet_call_int(
    const struct tvmrpc_packet *p, uint64_t *ret_handle, int64_t *ret_arg);
int tvmrpc_packet_return_int(const struct tvmrpc_packet *p, int64_t *ret_v);
int tvmrpc_packet_copy_nbytes(
    const struct tvmrpc_packet *p, uint64_t *ret_nbytes);
