/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Addresses as people write them: "127.0.0.1:9190", "[::1]:9190",
 * "localhost:0".  Resolution uses getaddrinfo() and may block, so it is for
 * start-up and command-line tools, never the broker's event loop.
 */
#include "config.h"

#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/*
 * Split "HOST:PORT" or "[V6]:PORT" into @host and *ret_port.  Returns 0 or
 * -EINVAL with what is wrong in @err.
 */
int
netaddr_split(const char *s, char *host, size_t hostlen, unsigned *ret_port,
    struct npufarm_err *err)
{
	const char *colon, *hstart = s, *hend;
	unsigned long port;
	char *end;

	if (*s == '[') {
		hstart = s + 1;
		hend = strchr(s, ']');
		if (hend == NULL || hend[1] != ':')
			return err_set(err, -EINVAL,
			    "address '%s': expected [IPV6]:PORT", s);
		colon = hend + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return err_set(err, -EINVAL,
			    "address '%s': expected HOST:PORT", s);
		hend = colon;
	}
	if (hend == hstart)
		return err_set(err, -EINVAL, "address '%s': empty host", s);
	if ((size_t)(hend - hstart) >= hostlen)
		return err_set(err, -EINVAL, "address '%s': host too long", s);
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port > 65535)
		return err_set(
		    err, -EINVAL, "address '%s': port must be 0..65535", s);
	memcpy(host, hstart, (size_t)(hend - hstart));
	host[hend - hstart] = '\0';
	*ret_port = (unsigned)port;
	return 0;
}

/*
 * Resolve "HOST:PORT" into a socket address (the first result).  Returns 0,
 * -EINVAL for a malformed string, -ENOENT when the host does not resolve.
 */
int
netaddr_parse(const char *s, struct netaddr *ret_addr, struct npufarm_err *err)
{
	struct addrinfo hints = {0}, *res;
	char host[NETADDR_STRLEN], port[8];
	unsigned p;
	int r;

	r = netaddr_split(s, host, sizeof(host), &p, err);
	if (r < 0)
		return r;
	(void)snprintf(port, sizeof(port), "%u", p);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0)
		return err_set(
		    err, -ENOENT, "address '%s': %s", s, gai_strerror(r));
	memcpy(&ret_addr->ss, res->ai_addr, res->ai_addrlen);
	ret_addr->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Format the numeric host of @sa ("127.0.0.1", "::1"; v4-mapped unwrapped). */
void
netaddr_host(const struct sockaddr *sa, char *buf, size_t len)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		(void)inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)len);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			(void)inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12],
			    buf, (socklen_t)len);
		else
			(void)inet_ntop(
			    AF_INET6, &in6->sin6_addr, buf, (socklen_t)len);
	} else {
		(void)snprintf(buf, len, "unknown");
	}
}

/* The port of an AF_INET/AF_INET6 address, 0 for anything else. */
unsigned
netaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(
		    ((const struct sockaddr_in *)(const void *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(
		    ((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return 0;
}

/* Format "HOST:PORT", bracketing IPv6 hosts. */
void
netaddr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[NETADDR_STRLEN];

	netaddr_host(sa, host, sizeof(host));
	if (strchr(host, ':') != NULL)
		(void)snprintf(buf, len, "[%s]:%u", host, netaddr_port(sa));
	else
		(void)snprintf(buf, len, "%s:%u", host, netaddr_port(sa));
}
