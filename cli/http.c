/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET over evhttp with errors a person can act on.
 *
 * evhttp reports a failed connect only as a request with status 0 (errno is
 * clobbered by then), so the host is resolved here with getaddrinfo(), each
 * address is tried in turn, and when evhttp cannot reach one, a short
 * blocking connect() to it recovers the reason ("connection refused").  The
 * probe runs only on that failure path.
 */
#include "config.h"

#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "err.h"
#include "secret.h"
#include "xmalloc.h"

/*
 * The API token every request carries (http_set_bearer()).  Process-wide
 * on purpose: one CLI run talks to one broker with one credential, and
 * every subcommand's requests, present and future, must carry it.
 */
static const char *http_bearer;

/* Cap on the diagnostic connect() after evhttp could not connect. */
#define HTTP_PROBE_MAX_MS 2000

/* The pieces of a base URL such as "http://broker:9191/prefix". */
struct http_target {
	char *host;    /* owned; brackets of an IPv6 literal removed */
	char *hosthdr; /* owned; the Host header, "host[:port]" */
	char *path;    /* owned; prefix + request path */
	int port;
};

/* One request on one address: what the callbacks saw. */
struct http_call {
	struct event_base *base; /* borrowed */
	bool done;               /* the request callback ran */
	bool timed_out;          /* our deadline or evhttp's timeout fired */
	bool too_long;           /* body over HTTP_MAX_BODY */
	bool invalid;            /* malformed status line or headers */
	int status;              /* 0 when no response arrived */
	struct http_reply reply; /* filled when status != 0 */
};

static void
http_target_deinit(struct http_target *t)
{
	free(t->host);
	free(t->hosthdr);
	free(t->path);
}

/*
 * Split @base_url (scheme optional, "http" only) and join its path with
 * @path.  Returns 0 or -EINVAL with @err filled.
 */
static int
http_target_parse(const char *base_url, const char *path,
    struct http_target *ret_t, struct npufarm_err *err)
{
	struct evhttp_uri *uri = NULL;
	const char *scheme, *host, *prefix;
	char *url;
	size_t plen, hlen;
	int r = 0;

	if (strstr(base_url, "://") != NULL)
		url = xstrdup(base_url);
	else
		url = xasprintf("http://%s", base_url);
	uri = evhttp_uri_parse(url);
	if (uri == NULL) {
		r = err_set(err, -EINVAL, "not a valid URL");
		goto out;
	}
	scheme = evhttp_uri_get_scheme(uri);
	host = evhttp_uri_get_host(uri);
	if (scheme == NULL || strcasecmp(scheme, "http") != 0) {
		r = err_set(err, -EINVAL, "only http:// URLs are supported");
		goto out;
	}
	if (host == NULL || *host == '\0') {
		r = err_set(err, -EINVAL, "the URL has no host");
		goto out;
	}
	if (evhttp_uri_get_query(uri) != NULL ||
	    evhttp_uri_get_fragment(uri) != NULL ||
	    evhttp_uri_get_userinfo(uri) != NULL) {
		r = err_set(err, -EINVAL,
		    "the URL must be only scheme, host, port and path");
		goto out;
	}
	ret_t->port = evhttp_uri_get_port(uri);
	if (ret_t->port < 0)
		ret_t->port = 80;
	if (ret_t->port == 0 || ret_t->port > 65535) {
		r = err_set(err, -EINVAL, "the port must be 1..65535");
		goto out;
	}
	hlen = strlen(host);
	if (host[0] == '[' && hlen > 2)
		ret_t->host = xasprintf("%.*s", (int)(hlen - 2), host + 1);
	else
		ret_t->host = xstrdup(host);
	if (evhttp_uri_get_port(uri) >= 0)
		ret_t->hosthdr = xasprintf("%s:%d", host, ret_t->port);
	else
		ret_t->hosthdr = xstrdup(host);
	prefix = evhttp_uri_get_path(uri);
	if (prefix == NULL)
		prefix = "";
	plen = strlen(prefix);
	while (plen > 0 && prefix[plen - 1] == '/')
		plen--;
	ret_t->path = xasprintf("%.*s%s", (int)plen, prefix, path);
out:
	if (uri != NULL)
		evhttp_uri_free(uri);
	free(url);
	return r;
}

static void
http_request_cb(struct evhttp_request *req, void *arg)
{
	struct http_call *c = arg;
	struct evbuffer *in;
	size_t len;

	c->done = true;
	event_base_loopbreak(c->base);
	if (req == NULL || evhttp_request_get_response_code(req) == 0)
		return;
	c->status = evhttp_request_get_response_code(req);
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	c->reply.status = c->status;
	(void)snprintf(c->reply.reason, sizeof(c->reply.reason), "%s",
	    evhttp_request_get_response_code_line(req) != NULL
		? evhttp_request_get_response_code_line(req)
		: "");
	c->reply.len = len;
	c->reply.body = xmalloc(len + 1);
	if (len > 0)
		(void)evbuffer_copyout(in, c->reply.body, len);
	c->reply.body[len] = '\0';
}

static void
http_error_cb(enum evhttp_request_error e, void *arg)
{
	struct http_call *c = arg;

	switch (e) {
	case EVREQ_HTTP_TIMEOUT:
		c->timed_out = true;
		break;
	case EVREQ_HTTP_DATA_TOO_LONG:
		c->too_long = true;
		break;
	case EVREQ_HTTP_INVALID_HEADER:
		c->invalid = true;
		break;
	default:
		break;
	}
}

static void
http_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_call *c = arg;

	c->timed_out = true;
	event_base_loopbreak(c->base);
}

/*
 * Connect to @sa with a blocking connect() bounded by @timeout_ms and
 * return 0 when it succeeds or the positive errno that says why not.
 */
static int
http_probe(const struct sockaddr *sa, socklen_t salen, int timeout_ms)
{
	struct pollfd pfd;
	socklen_t elen = sizeof(int);
	int fd, e = 0;

	fd = socket(
	    sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (connect(fd, sa, salen) == 0)
		goto out;
	if (errno != EINPROGRESS) {
		e = errno;
		goto out;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	do {
		e = poll(&pfd, 1, timeout_ms);
	} while (e < 0 && errno == EINTR);
	if (e == 0) {
		e = ETIMEDOUT;
		goto out;
	}
	if (e < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
		e = errno;
out:
	(void)close(fd);
	return e;
}

/*
 * GET @t->path from the numeric address @numhost.  Returns 0 with
 * @ret_reply filled, or -errno with @err filled; -ECONNREFUSED and the
 * other "try the next address" codes only when nothing was sent.
 */
static int
http_get_addr(const struct http_target *t, enum evhttp_cmd_type cmd,
    const struct http_body *body, const char *numhost,
    const struct addrinfo *ai, int timeout_ms, struct http_reply *ret_reply,
    struct npufarm_err *err)
{
	struct evhttp_connection *conn = NULL;
	struct evhttp_request *req;
	struct evkeyvalq *hdrs;
	struct event *deadline = NULL;
	struct timeval tv;
	struct http_call c;
	int r = 0, e;

	memset(&c, 0, sizeof(c));
	c.base = event_base_new();
	if (c.base == NULL) {
		r = err_set(err, -ENOMEM, "cannot create an event base");
		goto out;
	}
	conn = evhttp_connection_base_new(
	    c.base, NULL, numhost, (unsigned short)t->port);
	deadline = evtimer_new(c.base, http_deadline_cb, &c);
	req = evhttp_request_new(http_request_cb, &c);
	if (conn == NULL || deadline == NULL || req == NULL) {
		if (req != NULL)
			evhttp_request_free(req);
		r = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evhttp_connection_set_timeout_tv(conn, &tv);
	evhttp_connection_set_retries(conn, 0);
	evhttp_connection_set_max_body_size(conn, HTTP_MAX_BODY);
	evhttp_request_set_error_cb(req, http_error_cb);
	hdrs = evhttp_request_get_output_headers(req);
	if (evhttp_add_header(hdrs, "Host", t->hosthdr) < 0 ||
	    evhttp_add_header(hdrs, "Accept", "application/json") < 0 ||
	    evhttp_add_header(hdrs, "User-Agent", "npufarm/" NPUFARM_VERSION) <
		0 ||
	    evhttp_add_header(hdrs, "Connection", "close") < 0 ||
	    (body != NULL &&
		(evhttp_add_header(hdrs, "Content-Type", body->type) < 0 ||
		    evbuffer_add_reference(
			evhttp_request_get_output_buffer(req), body->data,
			body->len, NULL, NULL) < 0))) {
		evhttp_request_free(req);
		r = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (http_bearer != NULL &&
	    evhttp_add_header(hdrs, "Authorization", http_bearer) < 0) {
		evhttp_request_free(req);
		r = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* On failure evhttp_make_request() has already freed req. */
	if (evhttp_make_request(conn, req, cmd, t->path) < 0) {
		r = err_set(err, -EIO, "cannot start the request");
		goto out;
	}
	(void)evtimer_add(deadline, &tv);
	(void)event_base_dispatch(c.base);

	if (c.status != 0) {
		*ret_reply = c.reply;
		goto out;
	}
	if (c.too_long) {
		r = err_set(err, -EFBIG, "the response is larger than %d MiB",
		    HTTP_MAX_BODY / (1024 * 1024));
	} else if (c.invalid) {
		r = err_set(err, -EPROTO, "the response is not valid HTTP");
	} else if (c.timed_out) {
		r = err_set(err, -ETIMEDOUT, "no response within %gs",
		    timeout_ms / 1000.0);
	} else {
		e = http_probe(ai->ai_addr, ai->ai_addrlen,
		    timeout_ms < HTTP_PROBE_MAX_MS ? timeout_ms
						   : HTTP_PROBE_MAX_MS);
		if (e == 0)
			r = err_set(err, -ECONNRESET,
			    "the connection closed before a response");
		else
			r = err_set(err, -e, "%s", strerror(e));
	}
out:
	/* Frees a request still queued on the connection, without its cb. */
	if (conn != NULL)
		evhttp_connection_free(conn);
	if (deadline != NULL)
		event_free(deadline);
	if (c.base != NULL)
		event_base_free(c.base);
	if (r < 0)
		http_reply_deinit(&c.reply);
	return r;
}

/*
 * Whether a failure on one address should move on to the next one: only
 * quick refusals, so that a silent broker costs one timeout, not one per
 * address.
 */
static bool
http_try_next(int r)
{
	return r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -ENETUNREACH ||
	       r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT;
}

/*
 * GET @path (absolute, with any query) from the broker at @base_url, which
 * may carry a path prefix, waiting at most @timeout_ms per address.  Any
 * HTTP status counts as success: returns 0 with @ret_reply filled (the
 * caller calls http_reply_deinit()), or -errno with @err saying why no
 * response came: -EINVAL (bad URL, and only then), -ENOENT (unknown host),
 * -ECONNREFUSED, -ETIMEDOUT, -EPROTO, -EFBIG...  Does not log.
 */
int
http_get(const char *base_url, const char *path, int timeout_ms,
    struct http_reply *ret_reply, struct npufarm_err *err)
{
	return http_request(
	    base_url, EVHTTP_REQ_GET, path, timeout_ms, ret_reply, err);
}

/* Like http_get(), with method @cmd and no request body. */
int
http_request(const char *base_url, enum evhttp_cmd_type cmd, const char *path,
    int timeout_ms, struct http_reply *ret_reply, struct npufarm_err *err)
{
	return http_send(base_url, cmd, path, NULL, timeout_ms, ret_reply, err);
}

/*
 * Like http_request(), sending @body (NULL: none) as the request body.
 * @body is borrowed for the call: evhttp sends it from the caller's
 * memory, without a copy, which matters for artifacts of many MiB.
 */
int
http_send(const char *base_url, enum evhttp_cmd_type cmd, const char *path,
    const struct http_body *body, int timeout_ms, struct http_reply *ret_reply,
    struct npufarm_err *err)
{
	struct http_target t = {0};
	struct addrinfo hints, *res = NULL, *ai;
	char numhost[NI_MAXHOST], port[16];
	int r, g;

	r = http_target_parse(base_url, path, &t, err);
	if (r < 0)
		goto out;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
	/* With the port as service, each ai_addr is ready for the probe. */
	(void)snprintf(port, sizeof(port), "%d", t.port);
	g = getaddrinfo(t.host, port, &hints, &res);
	if (g != 0) {
		r = err_set(err, g == EAI_SYSTEM ? -errno : -ENOENT,
		    "cannot resolve '%s': %s", t.host,
		    g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		goto out;
	}
	r = -ENOENT;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, numhost,
			sizeof(numhost), NULL, 0, NI_NUMERICHOST) != 0)
			continue;
		r = http_get_addr(
		    &t, cmd, body, numhost, ai, timeout_ms, ret_reply, err);
		if (!http_try_next(r))
			break;
	}
	if (r == -ENOENT && ai == NULL)
		(void)err_set(err, r, "'%s' has no usable address", t.host);
out:
	if (res != NULL)
		freeaddrinfo(res);
	http_target_deinit(&t);
	return r;
}

/*
 * Send "Authorization: Bearer @token" with every request from now on
 * (NULL: stop).  @token is copied.
 */
void
http_set_bearer(const char *token)
{
	static char header[SECRET_MAX + 8];

	if (token == NULL) {
		explicit_bzero(header, sizeof(header));
		http_bearer = NULL;
		return;
	}
	(void)snprintf(header, sizeof(header), "Bearer %s", token);
	http_bearer = header;
}

/* Release @reply's body; the struct itself is the caller's. */
void
http_reply_deinit(struct http_reply *reply)
{
	free(reply->body);
	reply->body = NULL;
	reply->len = 0;
}
