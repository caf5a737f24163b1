/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM rpc_tracker's --host, --port, --port-end and --silent (tvm_flags.h).
 * They are one more way to say --listen: with any of them the farm port is
 * HOST:PORT, and when PORT is taken the next one, up to (not including)
 * PORT-END, as TVM's tracker binds.  Mixing them with --listen is an error,
 * since both would name the farm port; they replace the config file's
 * "listen", as any flag overrides the file.
 */
#include "config.h"

#include "tvm_flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "broker_config.h"
#include "err.h"

/* Reset @f to "no TVM flag given". */
void
tvm_flags_init(struct tvm_flags *f)
{
	*f = (struct tvm_flags){.port = -1, .port_end = -1};
}

static int
parse_port(const char *name, const char *value, long *ret_port,
    struct npufarm_err *err)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < 0 || v > 65536)
		return err_set(err, -EINVAL, "%s '%s': expected a port number",
		    name, value);
	*ret_port = v;
	return 0;
}

/*
 * Record TVM flag @name ("host", "port", "port-end" or "silent"; @value is
 * ignored for "silent").  Returns 0, or -EINVAL with the reason in @err.
 */
int
tvm_flags_set(struct tvm_flags *f, const char *name, const char *value,
    struct npufarm_err *err)
{
	int r = 0;

	if (strcmp(name, "host") == 0) {
		if (value[0] == '\0')
			return err_set(err, -EINVAL, "empty host");
		f->host = value;
	} else if (strcmp(name, "port") == 0) {
		r = parse_port("port", value, &f->port, err);
	} else if (strcmp(name, "port-end") == 0) {
		r = parse_port("port-end", value, &f->port_end, err);
	} else if (strcmp(name, "silent") == 0) {
		f->silent = true;
	} else {
		return err_set(
		    err, -EINVAL, "not a TVM tracker flag: %s", name);
	}
	if (r == 0)
		f->any = true;
	return r;
}

/*
 * Turn the TVM flags in @f into @cfg's farm port: listen[0] is HOST:PORT
 * and listen_port_end the end of the range (server.c binds the first free
 * port in [PORT, PORT-END)).  @nlisten_flags counts the --listen flags on
 * the same command line.  Defaults are TVM's: host 0.0.0.0, port 9190,
 * port-end 9199; a PORT at or above the default end binds that port alone
 * (TVM would bind nothing); port 0 takes any free port.  --silent lowers the
 * log level to warnings
 * (-v still raises it).  Returns 0, or -EINVAL (both --listen and TVM
 * flags; an empty range) or -ENOMEM, with the reason in @err.
 */
int
tvm_flags_apply(const struct tvm_flags *f, size_t nlisten_flags,
    struct broker_config *cfg, struct npufarm_err *err)
{
	const char *host = f->host != NULL ? f->host : TVM_FLAGS_HOST;
	long port = f->port >= 0 ? f->port : TVM_FLAGS_PORT;
	long end = f->port_end;
	char addr[300];
	size_t i;

	if (!f->any)
		return 0;
	if (f->silent)
		cfg->verbosity = LOG_WARNING;
	if (f->host == NULL && f->port < 0 && f->port_end < 0)
		return 0; /* --silent alone */
	if (nlisten_flags > 0)
		return err_set(err, -EINVAL,
		    "--listen and TVM's --host/--port/--port-end both name the "
		    "farm port: give one of them");
	if (port > 65535)
		return err_set(err, -EINVAL, "--port %ld: above 65535", port);
	if (port == 0) {
		end = 0; /* any free port, the kernel's choice */
	} else {
		if (end < 0)
			end = port < TVM_FLAGS_PORT_END ? TVM_FLAGS_PORT_END
							: port + 1;
		if (end <= port)
			return err_set(err, -EINVAL,
			    "--port-end %ld: must be above --port %ld (the "
			    "farm port binds the first free port in [port, "
			    "port-end))",
			    end, port);
	}
	(void)snprintf(addr, sizeof(addr),
	    strchr(host, ':') != NULL && host[0] != '[' ? "[%s]:%ld" : "%s:%ld",
	    host, port);
	for (i = 0; i < cfg->nlisten; i++)
		free(cfg->listen[i]);
	cfg->nlisten = 0;
	cfg->listen_port_end = end > 65536 ? 65536 : end;
	return broker_config_add_listen(cfg, addr, err);
}
