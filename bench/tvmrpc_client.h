/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tvmrpc_client: a fake TVM client (tuner side), blocking, on the calling
 * thread.  Through a tracker it does what TrackerSession.request() does:
 * REQUEST the key (via tvmpeer), connect to the granted host and port and
 * say "client:<matchkey> -timeout=T" (spec §2.3, §3.1); directly it says
 * "client:<key>" to a board's own address.  It then requires SUCCESS and
 * keeps the remote key, and offers kInitServer and request/reply helpers.
 *
 * A slow client is the same client with a small receive buffer
 * (config.rcvbuf) that sends requests with tvmrpc_client_send() and does
 * not read.  Nothing here logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "tvmpeer.h"
#include "tvmrpc.h"

struct npufarm_err;
struct tvmrpc_client;

/* Positive result: the server answered with a kException (text in err). */
#define TVMRPC_CLIENT_E_REMOTE 3

struct tvmrpc_client_config {
	const char *tracker;  /* HOST:PORT to REQUEST from, or NULL */
	const char *direct;   /* without a tracker: a board's HOST:PORT */
	const char *key;      /* the device key (direct: the board's key) */
	double priority;      /* REQUEST priority */
	const char *timeout;  /* -timeout= text ("10", "2.5"); NULL: none */
	int io_timeout_ms;    /* connect, handshake, each send; <=0: 5000 */
	int grant_timeout_ms; /* the REQUEST's reply; <0: forever */
	bool split_hello;     /* hello in three writes, as TVM's C++ */
	bool split_writes;    /* as TVM's own client: Nagle on, tracker
			       * frames in two writes, hello in three */
	int rcvbuf;           /* >0: SO_RCVBUF before connect (slow client) */
};

int tvmrpc_client_request(const struct tvmrpc_client_config *cfg,
    struct tvmpeer_grant *ret_grant, struct npufarm_err *err);
int tvmrpc_client_connect(const struct tvmrpc_client_config *cfg,
    const struct tvmpeer_grant *grant, struct tvmrpc_client **ret_client,
    struct npufarm_err *err);
int tvmrpc_client_open(const struct tvmrpc_client_config *cfg,
    struct tvmrpc_client **ret_client, struct npufarm_err *err);
struct tvmrpc_client *tvmrpc_client_free(struct tvmrpc_client *cl);

struct tvmrpc *tvmrpc_client_conn(const struct tvmrpc_client *cl);
const char *tvmrpc_client_hello(const struct tvmrpc_client *cl);
const char *tvmrpc_client_remote_key(const struct tvmrpc_client *cl);

int tvmrpc_client_send(struct tvmrpc_client *cl, const struct tvmrpc_msg *req);
int tvmrpc_client_call(struct tvmrpc_client *cl, const struct tvmrpc_msg *req,
    int timeout_ms, struct tvmrpc_packet *ret_reply, struct npufarm_err *err);
int tvmrpc_client_init(
    struct tvmrpc_client *cl, int timeout_ms, struct npufarm_err *err);
int tvmrpc_client_shutdown(struct tvmrpc_client *cl);
