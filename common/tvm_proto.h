/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM tracker protocol codec (spec tvm-rpc-protocol.md §2): request frames
 * are decoded into a plain struct; replies are encoded exactly as TVM's
 * Python tracker writes them.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>

struct evbuffer;
struct npufarm_err;

/* Longest key, matchkey, user or address accepted from a peer, by default. */
#define TVM_PROTO_MAX_KEY 256

/*
 * A decoded tracker request.  String fields are borrowed from the parsed
 * root (tvm_tracker_parse()) or the scratch copy of the frame
 * (tvm_tracker_parse_fast()) and live exactly as long as it does; NULL
 * where absent.
 */
struct tvm_tracker_msg {
	int code;                /* enum npufarm_tvm_tracker_code */
	const char *key;         /* PUT, REQUEST: queue key */
	const char *user;        /* REQUEST: "" from every TVM client */
	double priority;         /* REQUEST: larger is served first */
	long port;               /* PUT: server port; UPDATE_INFO: addr[1] */
	const char *matchkey;    /* PUT */
	const char *custom_addr; /* PUT: host to advertise, or NULL */
	const char *stop_key;    /* STOP */
	json_t *info;            /* UPDATE_INFO: the object, borrowed */
	const char *info_key;    /* UPDATE_INFO: info["key"] if a string */
	const char *info_host;   /* UPDATE_INFO: addr[0], NULL for null */
};

int tvm_tracker_parse(json_t *root, size_t max_key,
    struct tvm_tracker_msg *ret_msg, struct npufarm_err *err);
int tvm_tracker_parse_fast(const char *body, size_t len, size_t max_key,
    int max_depth, char *scratch, size_t scratch_len,
    struct tvm_tracker_msg *ret_msg);
int tvm_tracker_add_code(struct evbuffer *out, int code);
int tvm_tracker_add_grant(
    struct evbuffer *out, const char *host, long port, const char *matchkey);
int tvm_tracker_add_fail(struct evbuffer *out, const char *message);
int tvm_tracker_add_json(struct evbuffer *out, const json_t *v);
