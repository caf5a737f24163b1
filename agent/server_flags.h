/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM rpc_server's flags on npufarm-agent, so that a board's start-up
 * script `python -m tvm.exec.rpc_server --tracker H:P --key K ...` needs
 * only the program name changed (docs/tvm.md).  --tracker is --broker;
 * --key is the agent's own.  The rest either mean nothing for an agent
 * (it dials out and listens nowhere) and are accepted with a log line, or
 * would change what a session runs and are refused with a clear error.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct npufarm_err;
struct option;

/* rpc_server flags besides --tracker and --key (those are settings). */
enum server_flag {
	SERVER_FLAG_HOST,
	SERVER_FLAG_PORT,
	SERVER_FLAG_PORT_END,
	SERVER_FLAG_THROUGH_PROXY,
	SERVER_FLAG_CUSTOM_ADDR,
	SERVER_FLAG_NO_FORK,
	SERVER_FLAG_SILENT,
	SERVER_FLAG_LOAD_LIBRARY,
	SERVER_FLAG_MAX,
};

/* What the command line said; values borrowed from argv. */
struct server_flags {
	const char *value[SERVER_FLAG_MAX]; /* NULL: not given */
};

size_t server_flags_options(struct option *longs, int first_val);
int server_flags_set(struct server_flags *f, int idx, const char *value,
    struct npufarm_err *err);
int server_flags_broker(
    const struct server_flags *f, char **broker, struct npufarm_err *err);
int server_flags_log_level(const struct server_flags *f, int level);
void server_flags_log(const struct server_flags *f, const char *broker);
