/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tvmpeer: one TVM tracker connection that behaves on the wire like TVM's
 * Python RPC server and client (spec tvm-rpc-protocol.md §2).  The magic is
 * sent alone and its echo awaited before any frame; JSON is written the way
 * CPython's json.dumps() writes it; each frame leaves in one write (or, on
 * request, as two writes, header then body, exactly like Python's sendall
 * pair).  For tests, tvm-sim and the benchmark; the daemons never use it.
 *
 * Sends block, bounded by the connection's timeout.  Receives take their own
 * timeout and are built on a non-blocking tvmpeer_read() plus
 * tvmpeer_pop_frame() pair that poll() loops may use directly.  Nothing here
 * logs.  Not thread-safe: one thread per connection.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct npufarm_err;
struct tvmpeer;

/* Largest frame body accepted from the tracker (a 10k-board SUMMARY fits). */
#define TVMPEER_MAX_FRAME (64 * 1024 * 1024)
/* Longest host or matchkey kept from a grant, including the NUL. */
#define TVMPEER_MAX_STR   256

/* Positive result of tvmpeer_recv_grant(): the tracker answered [-1, msg]. */
#define TVMPEER_E_FAIL 1

/* A decoded REQUEST reply [0, [host, port, matchkey]]. */
struct tvmpeer_grant {
	char host[TVMPEER_MAX_STR];
	long port;
	char matchkey[TVMPEER_MAX_STR];
};

int tvmpeer_open(const char *addr, int timeout_ms, struct tvmpeer **ret_peer,
    struct npufarm_err *err);
int tvmpeer_handshake(struct tvmpeer *p, struct npufarm_err *err);
int tvmpeer_connect(const char *addr, int timeout_ms, struct tvmpeer **ret_peer,
    struct npufarm_err *err);
struct tvmpeer *tvmpeer_free(struct tvmpeer *p);
int tvmpeer_fd(const struct tvmpeer *p);
void tvmpeer_set_split_writes(struct tvmpeer *p, bool split);
void tvmpeer_set_quickack(struct tvmpeer *p, bool on);

int tvmpeer_send_raw(struct tvmpeer *p, const void *buf, size_t len);
int tvmpeer_send_frame(struct tvmpeer *p, const void *body, size_t len);
int tvmpeer_send_json(struct tvmpeer *p, const json_t *v);

int tvmpeer_ping(struct tvmpeer *p);
int tvmpeer_update_info(struct tvmpeer *p, const char *key, long port);
int tvmpeer_put(struct tvmpeer *p, const char *key, long port,
    const char *matchkey, const char *custom_addr);
int tvmpeer_request(
    struct tvmpeer *p, const char *key, const char *user, double priority);
int tvmpeer_summary(struct tvmpeer *p);
int tvmpeer_get_pending(struct tvmpeer *p);

int tvmpeer_read(struct tvmpeer *p);
int tvmpeer_pop_frame(
    struct tvmpeer *p, const char **ret_body, size_t *ret_len);
int tvmpeer_recv_frame(
    struct tvmpeer *p, int timeout_ms, const char **ret_body, size_t *ret_len);
int tvmpeer_recv_json(struct tvmpeer *p, int timeout_ms, json_t **ret_root,
    struct npufarm_err *err);
int tvmpeer_recv_code(
    struct tvmpeer *p, int timeout_ms, int *ret_code, struct npufarm_err *err);
int tvmpeer_recv_ok(struct tvmpeer *p, int timeout_ms, struct npufarm_err *err);
int tvmpeer_recv_grant(struct tvmpeer *p, int timeout_ms,
    struct tvmpeer_grant *ret_grant, struct npufarm_err *err);

int tvmpeer_matchkey(const char *key, char *buf, size_t len);
