/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tvmrpc_board: a fake TVM board on its own thread.  Through a proxy (the
 * broker's farm port) it dials in with the hello "server:KEY", waits for
 * the pair-up, reads the client's key and its -timeout (spec §4.2, §4.5),
 * then serves one scripted session; directly it listens on 127.0.0.1:0 and
 * answers a client's hello itself like a TVM RPC server (spec §3.2), which
 * gives a same-run baseline without any relay.
 *
 * Every behaviour answers kInitServer with kReturn void (EP-02),
 * kGetGlobalFunc with a handle (EP-04), void syscalls and kCopyToRemote
 * with EP-02, kCopyFromRemote with a kCopyAck of the requested size (a
 * repeating pattern, see tvmrpc_board_pattern()), and ends the session on
 * kShutdown or end of stream.  The mode decides what a kCallFunc gets.
 *
 * tvmrpc_board_stop() interrupts every wait through a pipe, joins the
 * thread and reports what happened; the thread never touches the caller's
 * memory.  Nothing here logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tvmrpc.h"

struct npufarm_err;
struct tvmrpc_board;

/* What a kCallFunc gets. */
enum tvmrpc_board_mode {
	TVMRPC_BOARD_OK, /* int arg: [int, arg + 1] (EP-06), else EP-07 */
	TVMRPC_BOARD_EXCEPTION,   /* EP-10 "ValueError: bad input" */
	TVMRPC_BOARD_SILENT,      /* no answer: lets a supervisor time out */
	TVMRPC_BOARD_OWN_TIMEOUT, /* no answer; at T after the pair-up send
				   * the v0.14 Python server's timeout
				   * kException (EP-09 form), then close */
	TVMRPC_BOARD_CRASH,       /* close the socket at once */
	TVMRPC_BOARD_CRASH_HALF,  /* write the first half of EP-06, close */
	TVMRPC_BOARD_STALL_HALF,  /* write the first 10 bytes of EP-06, then
				   * answer nothing more (SC-3 step 4) */
	TVMRPC_BOARD_GARBAGE,     /* a header declaring 2^60 bytes, then
				   * keep reading */
};

/* Bytes of the kCopyAck pattern (a kCopyFromRemote reply repeats it). */
#define TVMRPC_BOARD_PATTERN_LEN (1024 * 1024)
/* The handle every kGetGlobalFunc gets (EP-04's). */
#define TVMRPC_BOARD_HANDLE      0x00005555aaaa0000ull
/* Longest key kept in a report, including the NUL. */
#define TVMRPC_BOARD_KEY_MAX     256

struct tvmrpc_board_config {
	const char *farm; /* proxy HOST:PORT; NULL: listen directly */
	const char *key;  /* board key: hello "server:<key>"; directly, the
			   * key clients must send as "client:<key>" */
	enum tvmrpc_board_mode mode;
	unsigned sessions; /* sessions to serve, dialling in again after
			    * each (0 means 1); then the thread ends */
	int io_timeout_ms; /* each send and handshake read; <= 0: 5000 */
	bool split_hello;  /* hello in three writes, as TVM's C++ peers */
};

/* What the board saw; filled by tvmrpc_board_stop(). */
struct tvmrpc_board_report {
	int status;         /* 0, or the error that ended the thread early */
	char detail[160];   /* what status means, "" when 0 */
	unsigned sessions;  /* sessions paired (handshake completed) */
	int32_t reply_code; /* proxy: the last handshake reply code */
	/* The last session: */
	char peer_key[TVMRPC_BOARD_KEY_MAX]; /* the client's key as received */
	bool has_timeout;                    /* peer_key carried -timeout= */
	double timeout_s;                    /* its value */
	unsigned packets;      /* packets received, N = 0 ones excluded */
	unsigned calls;        /* kCallFunc among them */
	bool shutdown;         /* kShutdown received */
	bool own_timeout_sent; /* OWN_TIMEOUT: the exception went out */
	int end;               /* how it ended: 0 the board closed it,
				* TVMRPC_E_EOF / TVMRPC_E_TRUNCATED the
				* other end closed, or -errno */
	int64_t session_ms;    /* from the pair-up to the end */
};

int tvmrpc_board_start(const struct tvmrpc_board_config *cfg,
    struct tvmrpc_board **ret_board, struct npufarm_err *err);
const char *tvmrpc_board_addr(const struct tvmrpc_board *b);
int tvmrpc_board_wait(struct tvmrpc_board *b, int timeout_ms);
int tvmrpc_board_stop(
    struct tvmrpc_board *b, struct tvmrpc_board_report *ret_report);
const unsigned char *tvmrpc_board_pattern(void);
