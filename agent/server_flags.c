/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM rpc_server's flags (server_flags.h).  How each is treated:
 *
 *  --host H --port P --port-end E  rpc_server's listen address.  The agent
 *      listens nowhere (clients reach the board through the broker), so
 *      they are ignored, with a log line; except with --through-proxy,
 *      where TVM reads them as the proxy's address: that is the broker.
 *  --through-proxy   the board dials the proxy at --host:--port; for the
 *      agent that is the broker (--broker/--tracker win if given).
 *  --custom-addr A   the address a server reports for clients to connect
 *      to; clients never connect to an agent's board directly: ignored.
 *  --no-fork         TVM's way around fork problems in OpenCL/Metal/ROCm:
 *      the agent never loads the runtime in its own process, and each
 *      session child loads it afresh after the fork: ignored.
 *  --silent          warnings and errors only (-v still raises the level).
 *  --load-library L  a library the server loads besides the runtime; the
 *      agent's session child loads the board's runtime only, so a session
 *      would silently lack what the script asked for: an error.
 */
#include "config.h"

#include "server_flags.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "err.h"
#include "log.h"

static const struct {
	const char *name;
	bool has_arg;
} flags[SERVER_FLAG_MAX] = {
    [SERVER_FLAG_HOST] = {"host", true},
    [SERVER_FLAG_PORT] = {"port", true},
    [SERVER_FLAG_PORT_END] = {"port-end", true},
    [SERVER_FLAG_THROUGH_PROXY] = {"through-proxy", false},
    [SERVER_FLAG_CUSTOM_ADDR] = {"custom-addr", true},
    [SERVER_FLAG_NO_FORK] = {"no-fork", false},
    [SERVER_FLAG_SILENT] = {"silent", false},
    [SERVER_FLAG_LOAD_LIBRARY] = {"load-library", true},
};

/*
 * Fill @longs with one getopt_long entry per flag, whose val is
 * @first_val + its enum server_flag.  @longs must have room for
 * SERVER_FLAG_MAX entries.  Returns how many were written.
 */
size_t
server_flags_options(struct option *longs, int first_val)
{
	size_t i;

	for (i = 0; i < SERVER_FLAG_MAX; i++)
		longs[i] = (struct option){flags[i].name,
		    flags[i].has_arg ? required_argument : no_argument, NULL,
		    first_val + (int)i};
	return SERVER_FLAG_MAX;
}

/*
 * Record flag @idx (an enum server_flag) with @value (borrowed; NULL for
 * flags without a value).  Returns 0, or -EINVAL with the reason in @err:
 * for --load-library, and for a --port or --port-end that is not a port.
 */
int
server_flags_set(
    struct server_flags *f, int idx, const char *value, struct npufarm_err *err)
{
	char *end;
	long v;

	if (idx < 0 || idx >= SERVER_FLAG_MAX)
		return err_set(err, -EINVAL, "not an rpc_server flag");
	if (idx == SERVER_FLAG_LOAD_LIBRARY)
		return err_set(err, -EINVAL,
		    "load-library '%s': not supported: a session child loads "
		    "the board's runtime (--tvm-runtime) and nothing else; "
		    "link what it needs into that runtime",
		    value);
	if (idx == SERVER_FLAG_PORT || idx == SERVER_FLAG_PORT_END) {
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' || v < 0 ||
		    v > 65536)
			return err_set(err, -EINVAL,
			    "%s '%s': expected a port number", flags[idx].name,
			    value);
	}
	f->value[idx] = value != NULL ? value : "";
	return 0;
}

/*
 * With --through-proxy and no --broker/--tracker, set *@broker (owned,
 * freed first) to --host:--port, TVM's proxy address, which is now the
 * broker (TVM's defaults: 0.0.0.0, 9090).  Returns 0, or -ENOMEM.
 */
int
server_flags_broker(
    const struct server_flags *f, char **broker, struct npufarm_err *err)
{
	const char *host = f->value[SERVER_FLAG_HOST];
	const char *port = f->value[SERVER_FLAG_PORT];
	char *s;

	if (f->value[SERVER_FLAG_THROUGH_PROXY] == NULL || *broker != NULL)
		return 0;
	if (host == NULL)
		host = "0.0.0.0";
	if (port == NULL)
		port = "9090";
	if (asprintf(&s,
		strchr(host, ':') != NULL && host[0] != '[' ? "[%s]:%s"
							    : "%s:%s",
		host, port) < 0)
		return err_set(err, -ENOMEM, "out of memory");
	free(*broker);
	*broker = s;
	return 0;
}

/* @level, or LOG_WARNING with --silent (then raised by -v). */
int
server_flags_log_level(const struct server_flags *f, int level)
{
	if (f->value[SERVER_FLAG_SILENT] != NULL)
		return level - (LOG_NOTICE - LOG_WARNING);
	return level;
}

/*
 * Log, once at start-up, which rpc_server flags were accepted and why they
 * change nothing; @broker is the address the agent dials.
 */
void
server_flags_log(const struct server_flags *f, const char *broker)
{
	const bool proxy = f->value[SERVER_FLAG_THROUGH_PROXY] != NULL;
	int i;

	if (proxy)
		log_notice("rpc_server flag --through-proxy: dialling the "
			   "broker at %s",
		    broker);
	for (i = SERVER_FLAG_HOST; i <= SERVER_FLAG_PORT_END; i++)
		if (f->value[i] != NULL && !proxy)
			log_notice("rpc_server flag --%s %s: ignoring; the "
				   "agent listens nowhere, clients reach "
				   "the board through the broker",
			    flags[i].name, f->value[i]);
	if (f->value[SERVER_FLAG_CUSTOM_ADDR] != NULL)
		log_notice("rpc_server flag --custom-addr %s: ignoring; "
			   "clients never connect to the board directly",
		    f->value[SERVER_FLAG_CUSTOM_ADDR]);
	if (f->value[SERVER_FLAG_NO_FORK] != NULL)
		log_notice("rpc_server flag --no-fork: ignoring; the runtime "
			   "is only ever loaded in a fresh session child");
}
