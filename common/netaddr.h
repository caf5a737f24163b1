/* SPDX-License-Identifier: Apache-2.0 */
/* "HOST:PORT" parsing and socket address formatting. */
#pragma once

#include <stddef.h>
#include <sys/socket.h>

struct npufarm_err;

/* Enough for "[" + INET6_ADDRSTRLEN + "]:65535". */
#define NETADDR_STRLEN 64

struct netaddr {
	struct sockaddr_storage ss;
	socklen_t len;
};

int netaddr_parse(
    const char *s, struct netaddr *ret_addr, struct npufarm_err *err);
int netaddr_split(const char *s, char *host, size_t hostlen, unsigned *ret_port,
    struct npufarm_err *err);
void netaddr_format(const struct sockaddr *sa, char *buf, size_t len);
void netaddr_host(const struct sockaddr *sa, char *buf, size_t len);
unsigned netaddr_port(const struct sockaddr *sa);
