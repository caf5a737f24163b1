/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP API's server (http.h): evhttp, what it watches of each
 * connection ahead of evhttp, the route table, and the replies.  The
 * routes themselves are in api_boards.c, api_jobs.c and api_metrics.c;
 * this file knows none of them.
 */
#include "config.h"

#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>

#include "auth.h"
#include "broker_config.h"
#include "dashboard.h"
#include "err.h"
#include "ledger.h"
#include "log.h"
#include "netaddr.h"

#define HTTP_MAX_BODY      (64 * 1024)
#define HTTP_MAX_HEAD      (16 * 1024)
#define HTTP_IDLE_TIMEOUT  30
#define HTTP_SWEEP_US      250000 /* forgetting finished ones */
#define HTTP_MAX_ROUTES    32
#define HTTP_DRAIN_TICK_MS 10 /* http_drain() looks again this often */

/*
 * What the API watches of each connection, ahead of evhttp (libevent 2.1
 * has no hook between a request's headers and its body): the bytes as
 * they arrive, through a callback on the input buffer of the bufferevent
 * we make for evhttp.  From them it knows each request's head in time to
 * refuse a body it would not accept (no token, too large) before reading
 * it, and it gives every head an absolute deadline.  It holds a reference
 * on the bufferevent; evhttp freeing it (callbacks cleared) ends the
 * connection's slot under max_http_connections.
 */
enum http_conn_state {
	HTTP_CONN_HEAD, /* reading a request head */
	HTTP_CONN_BODY, /* skipping a body of known length */
	HTTP_CONN_DONE, /* refused (or past what we parse): ignore bytes */
};

struct http_conn {
	struct http_api *api;    /* borrowed */
	struct bufferevent *bev; /* our reference; evhttp owns the rest */
	struct event *deadline;  /* the head must be complete by then */
	struct event *refuse_ev; /* sends the refusal, outside callbacks */
	enum http_conn_state state;
	uint64_t body_left; /* HTTP_CONN_BODY: bytes still to skip */
	int code;           /* the refusal: status, reason, JSON message */
	const char *reason;
	char msg[200];
	size_t nhead;
	char head[HTTP_MAX_HEAD];
	TAILQ_ENTRY(http_conn) link;
};

/* A route's call waiting for the ledger to commit (http_after_commit()). */
struct http_later {
	struct http_api *api;
	struct http_call call; /* .path points into path[] */
	http_route_fn *fn;
	struct ledger_wait *wait; /* NULL once called */
	struct npufarm_err err;   /* call.ledger_error's text */
	TAILQ_ENTRY(http_later) link;
	char path[]; /* the copy of the request's path */
};

struct http_api {
	struct http_env env; /* borrowed pointers */
	struct auth *auth;   /* borrowed; replaced on SIGHUP */
	struct evhttp *http;
	struct evconnlistener *listener; /* borrowed: evhttp's */
	struct event *sweep_ev;          /* forgets connections evhttp freed */
	TAILQ_HEAD(, http_conn) conns;
	size_t nconns;
	TAILQ_HEAD(, http_later) later; /* calls waiting for the ledger */
	struct log_limit complaints;    /* per-peer ones: one line a second */
	const struct http_route *routes[HTTP_MAX_ROUTES];
	size_t nroutes;
	bool stopping; /* http_drain(): new requests get 503 */
	char address[NETADDR_STRLEN];
};

/*
 * Answer @req with status @code and @v as compact JSON (a line); 500 if
 * it cannot be encoded.  @v is borrowed.
 */
void
http_reply_json(
    struct evhttp_request *req, int code, const char *reason, json_t *v)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	char *s =
	    v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;

	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	if (s == NULL) {
		evbuffer_add_printf(out, "{\"error\":\"out of memory\"}\n");
		evhttp_send_reply(req, 500, "Internal Server Error", NULL);
		return;
	}
	evbuffer_add(out, s, strlen(s));
	evbuffer_add(out, "\n", 1);
	free(s);
	evhttp_send_reply(req, code, reason, NULL);
}

/* 200 with {@name: @list}; @list is borrowed. */
void
http_reply_list(struct evhttp_request *req, const char *name, json_t *list)
{
	json_t *v = json_pack("{sO}", name, list);

	http_reply_json(req, 200, "OK", v);
	json_decref(v);
}

/* Answer @req with status @code and {"error": @msg}. */
void
http_reply_error(
    struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	json_t *v = json_pack("{ss}", "error", msg);

	http_reply_json(req, code, reason, v);
	json_decref(v);
}

/* ---- routes --------------------------------------------------------- */

/*
 * Add @n routes (borrowed, static) to those @h dispatches, after the ones
 * it has: the first whose path and method match answers.  0, or -E2BIG.
 */
int
http_add_routes(struct http_api *h, const struct http_route *routes, size_t n)
{
	size_t i;

	if (h->nroutes + n > HTTP_MAX_ROUTES)
		return -E2BIG;
	for (i = 0; i < n; i++)
		h->routes[h->nroutes++] = &routes[i];
	return 0;
}

/*
 * Whether @path matches @pat (http_route), filling @c's id and rest.  A
 * "#" takes what sscanf's %lld took before the table: an optional sign,
 * digits, a value above 0.
 */
static bool
route_match(const char *pat, const char *path, struct http_call *c)
{
	const char *p = pat, *s = path;
	char *end;
	long long v;
	size_t n;

	while (*p != '\0') {
		if (*p == '*' && p[1] == '\0') {
			c->rest = s;
			return true;
		}
		if (*p == '#') {
			if (!(*s == '+' || (*s >= '0' && *s <= '9')))
				return false;
			v = strtoll(s, &end, 10);
			if (end == s || v <= 0)
				return false;
			c->id = (int64_t)v;
			s = end;
			p++;
			continue;
		}
		if (*p == '@') {
			n = strspn(s, "abcdefghijklmnopqrstuvwxyz");
			if (n == 0 || n > 15)
				return false;
			s += n;
			p++;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return *s == '\0';
}

static void
dispatch_cb(struct evhttp_request *req, void *arg)
{
	struct http_api *h = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct http_route *found = NULL, *path_only = NULL, *r;
	struct http_call c, m;
	const char *path;
	size_t i;
	int scope, need;

	if (h->stopping) {
		/* What the routes use may be gone already (http_drain()). */
		http_reply_error(
		    req, 503, "Service Unavailable", "the broker is stopping");
		return;
	}
	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path != NULL && dashboard_route(req, path))
		return;
	for (i = 0; path != NULL && found == NULL && i < h->nroutes; i++) {
		r = h->routes[i];
		m = (struct http_call){.rest = ""};
		if (!route_match(r->path, path, &m))
			continue;
		if ((r->methods & (int)cmd) != 0) {
			found = r;
			c = m;
		} else if (path_only == NULL)
			path_only = r;
	}
	/* The page is public; everything else may need a token (auth.c). */
	need = auth_route_scope(cmd, path);
	if (found != NULL && found->scope > need)
		need = found->scope;
	scope = auth_http(h->auth, req, (enum auth_scope)need);
	if (scope < 0)
		return;
	if (found == NULL && path_only != NULL) {
		http_reply_error(req, path_only->no_method_code,
		    path_only->no_method_code == 405 ? "Method Not Allowed"
						     : "Not Found",
		    path_only->no_method_msg);
		return;
	}
	if (found == NULL) {
		http_reply_error(req, 404, "Not Found", "no such API path");
		return;
	}
	c.http = h;
	c.env = &h->env;
	c.req = req;
	c.path = path;
	c.admin = scope == AUTH_SCOPE_ADMIN;
	found->fn(&c);
}

static void
later_cb(const struct npufarm_err *err, void *arg)
{
	struct http_later *w = arg;

	if (err != NULL) { /* already reported by the ledger */
		w->err = *err;
		w->call.ledger_error = w->err.msg;
	}
	TAILQ_REMOVE(&w->api->later, w, link);
	w->wait = NULL;
	w->fn(&w->call);
	free(w);
}

/*
 * Run @fn(@c) once the ledger has committed every write made before now,
 * so a read sees them (a client reads its own writes), without blocking
 * the loop: at once when nothing is in flight, else when the writer says
 * it is done.  The request stays with evhttp until it is answered, even
 * if its client goes.  Out of memory: 500.
 */
void
http_after_commit(const struct http_call *c, http_route_fn *fn)
{
	struct http_api *h = c->http;
	size_t n = strlen(c->path) + 1;
	struct http_later *w = malloc(sizeof(*w) + n);
	size_t off = (size_t)(c->rest - c->path);

	if (w == NULL) {
		http_reply_error(
		    c->req, 500, "Internal Server Error", "out of memory");
		return;
	}
	memcpy(w->path, c->path, n);
	w->api = h;
	w->call = *c;
	w->call.path = w->path;
	w->call.rest = off < n ? w->path + off : "";
	w->call.ledger_error = NULL;
	w->fn = fn;
	TAILQ_INSERT_TAIL(&h->later, w, link);
	if (ledger_after(h->env.ledger, later_cb, w, &w->wait) < 0) {
		TAILQ_REMOVE(&h->later, w, link);
		free(w);
		http_reply_error(
		    c->req, 500, "Internal Server Error", "out of memory");
	}
}

/* ---- connections: cap, deadlines, refusing bodies on their headers ---- */

/* Log a complaint about a peer at most once a second (with a count). */
static void complain(struct http_api *api, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void refuse(struct http_conn *hc, int code, const char *reason,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
complain(struct http_api *api, const char *fmt, ...)
{
	unsigned long quiet;
	char msg[400];
	va_list ap;

	if (!log_limit_pass(&api->complaints, &quiet))
		return;
	if (quiet > 0)
		log_warn("HTTP API: %lu similar messages suppressed", quiet);
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s", msg);
}

static void
http_conn_free(struct http_conn *hc)
{
	TAILQ_REMOVE(&hc->api->conns, hc, link);
	hc->api->nconns--;
	if (hc->deadline != NULL)
		event_free(hc->deadline);
	if (hc->refuse_ev != NULL)
		event_free(hc->refuse_ev);
	bufferevent_free(hc->bev); /* drops our reference */
	free(hc);
}

/* Whether evhttp has freed @hc's connection (it clears the callbacks). */
static bool
http_conn_gone(const struct http_conn *hc)
{
	bufferevent_data_cb rd, wr;
	bufferevent_event_cb ev;

	bufferevent_getcb(hc->bev, &rd, &wr, &ev, NULL);
	return rd == NULL && wr == NULL && ev == NULL;
}

static void
sweep(struct http_api *api)
{
	struct http_conn *hc, *next;

	for (hc = TAILQ_FIRST(&api->conns); hc != NULL; hc = next) {
		next = TAILQ_NEXT(hc, link);
		if (http_conn_gone(hc))
			http_conn_free(hc);
	}
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_api *api = arg;

	sweep(api);
	if (TAILQ_EMPTY(&api->conns))
		(void)event_del(api->sweep_ev);
}

/*
 * Answer @hc's peer with the refusal in @hc and end the connection: the
 * reply is written straight to the socket (a few hundred bytes) and evhttp
 * is told the peer is gone, so it frees its side without reading on.
 */
static void
refuse_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *hc = arg;
	char body[300], reply[600];
	json_t *v;
	char *text;
	int n;

	if (http_conn_gone(hc))
		return;
	v = json_pack("{ss}", "error", hc->msg);
	text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
	json_decref(v);
	(void)snprintf(body, sizeof(body), "%s\n",
	    text != NULL ? text : "{\"error\":\"refused\"}");
	free(text);
	n = snprintf(reply, sizeof(reply),
	    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
	    hc->code, hc->reason, strlen(body),
	    hc->code == 401 ? "WWW-Authenticate: Bearer realm=\"npufarm\"\r\n"
			    : "",
	    body);
	if (n > 0 && (size_t)n < sizeof(reply))
		(void)send(bufferevent_getfd(hc->bev), reply, (size_t)n,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)shutdown(bufferevent_getfd(hc->bev), SHUT_WR);
	bufferevent_trigger_event(hc->bev, BEV_EVENT_EOF, 0);
}

static void
refuse(struct http_conn *hc, int code, const char *reason, const char *fmt, ...)
{
	va_list ap;
	struct evbuffer *in = bufferevent_get_input(hc->bev);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char peer[NETADDR_STRLEN] = "a peer";

	hc->state = HTTP_CONN_DONE;
	hc->code = code;
	hc->reason = reason;
	va_start(ap, fmt);
	(void)vsnprintf(hc->msg, sizeof(hc->msg), fmt, ap);
	va_end(ap);
	/* Nothing more is read, and evhttp parses nothing of what was. */
	bufferevent_disable(hc->bev, EV_READ);
	(void)evbuffer_drain(in, evbuffer_get_length(in));
	if (getpeername(
		bufferevent_getfd(hc->bev), (struct sockaddr *)&ss, &sl) == 0)
		netaddr_format((struct sockaddr *)&ss, peer, sizeof(peer));
	complain(
	    hc->api, "HTTP API: refusing a request (%s): %s", peer, hc->msg);
	event_active(hc->refuse_ev, EV_TIMEOUT, 0);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *hc = arg;
	char secs[32];

	if (http_conn_gone(hc) || hc->state != HTTP_CONN_HEAD)
		return;
	(void)snprintf(
	    secs, sizeof(secs), "%g", hc->api->env.cfg->handshake_timeout);
	refuse(hc, 408, "Request Timeout",
	    "the request head did not arrive within %s s%s", secs,
	    " (handshake_timeout)");
}

/*
 * The value of header @name among the @n NUL-terminated lines at @h (the
 * request line first), trailing blanks cut; NULL when absent.
 */
static const char *
head_value(const char *h, const char *end, const char *name)
{
	size_t n = strlen(name);

	for (h += strlen(h) + 1; h < end; h += strlen(h) + 1)
		if (strncasecmp(h, name, n) == 0 && h[n] == ':')
			return h + n + 1 + strspn(h + n + 1, " \t");
	return NULL;
}

/* The body limit of @method @path: artifacts, jobs, everything else. */
static uint64_t
route_limit(
    const struct broker_config *cfg, const char *method, const char *path)
{
	if (strcmp(method, "PUT") == 0 &&
	    strncmp(path, "/v1/artifacts/", 14) == 0)
		return (uint64_t)cfg->max_artifact;
	if (strcmp(method, "POST") == 0 && strcmp(path, "/v1/jobs") == 0)
		return (uint64_t)cfg->max_job_body;
	return HTTP_MAX_BODY;
}

/*
 * A whole request head is in @hc->head: decide on its body before a byte
 * of it is read.  Requests without a body go on to evhttp, whose handlers
 * check the token as before.
 */
static void
head_done(struct http_conn *hc)
{
	struct http_api *api = hc->api;
	char *h = hc->head, *end = hc->head + hc->nhead, *p;
	char method[16] = "", path[256] = "", lim[32], len[32], what[320];
	const char *cl, *te, *q;
	unsigned long long n = 0;
	uint64_t limit;
	int r;

	/* Lines end in \n (evhttp accepts a bare \n too): cut them, and
	 * the blanks before each end. */
	for (p = h; p < end; p++)
		if (*p == '\n') {
			char *t = p;

			*p = '\0';
			while (t > h &&
			       (t[-1] == '\r' || t[-1] == ' ' || t[-1] == '\t'))
				*--t = '\0';
		}
	if (sscanf(h, "%15s %255s", method, path) != 2)
		return; /* evhttp answers 400 */
	q = strchr(path, '?');
	if (q != NULL)
		path[q - path] = '\0';
	cl = head_value(h, end, "Content-Length");
	te = head_value(h, end, "Transfer-Encoding");
	if (cl != NULL)
		n = strtoull(cl, NULL, 10);
	if (te != NULL && strncasecmp(te, "identity", 8) != 0) {
		refuse(hc, 411, "Length Required",
		    "%s %s: send the body with a Content-Length, not chunked",
		    method, path);
		return;
	}
	if (n == 0) {
		hc->state = HTTP_CONN_HEAD;
		return;
	}
	r = auth_http_check(api->auth, head_value(h, end, "Authorization"),
	    auth_route_scope(strcmp(method, "POST") == 0  ? EVHTTP_REQ_POST
			     : strcmp(method, "PUT") == 0 ? EVHTTP_REQ_PUT
							  : EVHTTP_REQ_GET,
		path));
	if (r == -ENOKEY || r == -EKEYREJECTED) {
		refuse(hc, 401, "Unauthorized", "%s%s",
		    r == -ENOKEY ? AUTH_MSG_NO_TOKEN : AUTH_MSG_BAD_TOKEN,
		    " (before its body was read)");
		return;
	}
	limit = route_limit(api->env.cfg, method, path);
	if (n > limit) {
		(void)snprintf(len, sizeof(len), "%llu", n);
		(void)snprintf(
		    lim, sizeof(lim), "%llu", (unsigned long long)limit);
		(void)snprintf(what, sizeof(what), "%s %s: a body of %s bytes",
		    method, path, len);
		refuse(hc, 413, "Payload Too Large",
		    "%s is over this route's limit of %s bytes", what, lim);
		return;
	}
	hc->body_left = n;
	hc->state = HTTP_CONN_BODY;
}

/* The head now coming must be whole within handshake_timeout. */
static void
deadline_arm(struct http_conn *hc)
{
	double d = hc->api->env.cfg->handshake_timeout;
	struct timeval tv = {
	    (time_t)d, (suseconds_t)((d - (double)(time_t)d) * 1e6)};

	(void)evtimer_add(hc->deadline, &tv);
}

/* Account @len bytes of the stream at @p. */
static void
watch_bytes(struct http_conn *hc, const char *p, size_t len)
{
	while (len > 0 && hc->state != HTTP_CONN_DONE) {
		if (hc->state == HTTP_CONN_BODY) {
			size_t k =
			    hc->body_left < len ? (size_t)hc->body_left : len;

			hc->body_left -= k;
			p += k;
			len -= k;
			if (hc->body_left == 0)
				hc->state = HTTP_CONN_HEAD;
			continue;
		}
		if (!evtimer_pending(hc->deadline, NULL))
			deadline_arm(hc);
		if (hc->nhead == sizeof(hc->head)) {
			hc->state = HTTP_CONN_DONE; /* evhttp answers 400 */
			break;
		}
		hc->head[hc->nhead++] = *p++;
		len--;
		if (hc->nhead >= 2 && hc->head[hc->nhead - 1] == '\n' &&
		    (hc->head[hc->nhead - 2] == '\n' ||
			(hc->nhead >= 3 && hc->head[hc->nhead - 2] == '\r' &&
			    hc->head[hc->nhead - 3] == '\n'))) {
			/* Blank lines before a request are not its end. */
			if (strspn(hc->head, "\r\n") == hc->nhead) {
				hc->nhead = 0;
				continue;
			}
			(void)evtimer_del(hc->deadline);
			hc->state = HTTP_CONN_HEAD;
			head_done(hc);
			hc->nhead = 0;
		}
	}
}

static void
input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct http_conn *hc = arg;
	struct evbuffer_ptr pos;
	size_t len = evbuffer_get_length(buf), off;
	char chunk[4096];

	if (info->n_added == 0)
		return;
	if (http_conn_gone(hc)) {
		/* evhttp is done with it; until sweep(), read nothing. */
		bufferevent_disable(hc->bev, EV_READ | EV_WRITE);
		(void)evbuffer_drain(buf, len);
		return;
	}
	if (hc->state == HTTP_CONN_DONE || len < info->n_added)
		return;
	off = len - info->n_added;
	while (off < len && hc->state != HTTP_CONN_DONE) {
		size_t k =
		    len - off < sizeof(chunk) ? len - off : sizeof(chunk);

		if (hc->state == HTTP_CONN_BODY && hc->body_left >= len - off) {
			/* Body bytes: count them without copying. */
			hc->body_left -= len - off;
			if (hc->body_left == 0)
				hc->state = HTTP_CONN_HEAD;
			break;
		}
		if (evbuffer_ptr_set(buf, &pos, off, EVBUFFER_PTR_SET) < 0 ||
		    evbuffer_copyout_from(buf, &pos, chunk, k) != (ev_ssize_t)k)
			break;
		watch_bytes(hc, chunk, k);
		off += k;
	}
}

/*
 * evhttp's hook for a new connection's bufferevent: we make it, watch its
 * input, and refuse the connection beyond max_http_connections.
 */
static struct bufferevent *
bev_cb(struct event_base *base, void *arg)
{
	struct http_api *api = arg;
	struct http_conn *hc;
	struct bufferevent *bev;
	char n[32];

	sweep(api);
	/* BEV_OPT_CLOSE_ON_FREE: evhttp only shuts the socket down when it
	 * is done (the peer sees its EOF at once), and the socket stays ours
	 * until sweep() drops our reference, so its number cannot be reused
	 * while the bufferevent's events still refer to it.  input_cb() stops
	 * a finished connection's reads at the first one. */
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	hc = bev != NULL ? calloc(1, sizeof(*hc)) : NULL;
	if (hc == NULL)
		return bev; /* evhttp copes, unwatched; OOM is logged there */
	hc->api = api;
	hc->bev = bev;
	hc->deadline = evtimer_new(base, deadline_cb, hc);
	hc->refuse_ev = evtimer_new(base, refuse_cb, hc);
	if (hc->deadline == NULL || hc->refuse_ev == NULL) {
		if (hc->deadline != NULL)
			event_free(hc->deadline);
		if (hc->refuse_ev != NULL)
			event_free(hc->refuse_ev);
		free(hc);
		return bev;
	}
	bufferevent_incref(bev);
	TAILQ_INSERT_TAIL(&api->conns, hc, link);
	api->nconns++;
	if (!event_pending(api->sweep_ev, EV_TIMEOUT, NULL)) {
		struct timeval tv = {0, HTTP_SWEEP_US};

		(void)event_add(api->sweep_ev, &tv);
	}
	if (api->nconns > (size_t)api->env.cfg->max_http_connections) {
		(void)snprintf(
		    n, sizeof(n), "%ld", api->env.cfg->max_http_connections);
		refuse(hc, 503, "Service Unavailable",
		    "too many connections to the API (limit "
		    "max_http_connections=%s); try again later",
		    n);
	}
	(void)evbuffer_add_cb(bufferevent_get_input(bev), input_cb, hc);
	/* The first head is due from accept: a connection that sends
	 * nothing holds a descriptor only that long (later ones, from their
	 * first byte; between requests evhttp's idle timeout applies). */
	deadline_arm(hc);
	return bev;
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)evconnlistener_enable(arg);
}

/*
 * accept() failed (EMFILE and friends): pause accepting for a second
 * instead of spinning on the ready socket (which also bounds the log to a
 * line a second).  libevent hands us evhttp's pointer, not ours: the
 * listener itself is all this needs.
 */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct timeval one = {1, 0};
	int e = EVUTIL_SOCKET_ERROR();

	(void)evconnlistener_disable(l);
	if (event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT,
		resume_cb, l, &one) < 0)
		(void)evconnlistener_enable(l);
	log_warn("HTTP API: accept failed: %s; pausing accepts for 1 s",
	    strerror(e));
}

/*
 * Serve the API on @addr ("HOST:PORT"; port 0 picks one) for the routes
 * http_add_routes() adds, with access rules @auth (borrowed; see
 * http_set_auth()) and what @env points to (copied; its pointers are
 * borrowed and outlive the server).  Returns 0, or -EADDRINUSE and
 * friends with the address in @err.
 */
int
http_new(const struct http_env *env, struct auth *auth, const char *addr,
    struct http_api **ret, struct npufarm_err *err)
{
	const struct broker_config *cfg = env->cfg;
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NETADDR_STRLEN];
	struct http_api *api;
	unsigned port;
	int r;

	r = netaddr_split(addr, host, sizeof(host), &port, err);
	if (r < 0)
		return r;
	api = calloc(1, sizeof(*api));
	if (api == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	api->env = *env;
	api->auth = auth;
	TAILQ_INIT(&api->conns);
	TAILQ_INIT(&api->later);
	api->http = evhttp_new(env->base);
	api->sweep_ev = event_new(env->base, -1, EV_PERSIST, sweep_cb, api);
	if (api->http == NULL || api->sweep_ev == NULL) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	/* Artifacts are the largest bodies (a job's tasks come next). */
	evhttp_set_max_body_size(api->http, cfg->max_artifact > HTTP_MAX_BODY
						? (ev_ssize_t)cfg->max_artifact
						: HTTP_MAX_BODY);
	evhttp_set_max_headers_size(api->http, HTTP_MAX_HEAD);
	evhttp_set_timeout(api->http, HTTP_IDLE_TIMEOUT);
	evhttp_set_bevcb(api->http, bev_cb, api);
	evhttp_set_allowed_methods(
	    api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
			   EVHTTP_REQ_HEAD | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(api->http, dispatch_cb, api);
	bs = evhttp_bind_socket_with_handle(api->http, host, (uint16_t)port);
	if (bs == NULL || getsockname(evhttp_bound_socket_get_fd(bs),
			      (struct sockaddr *)&ss, &len) < 0) {
		r = err_set(err, -EADDRINUSE, "http %s: cannot bind: %s", addr,
		    strerror(errno));
		goto fail;
	}
	api->listener = evhttp_bound_socket_get_listener(bs);
	evconnlistener_set_error_cb(api->listener, accept_error_cb);
	netaddr_format(
	    (struct sockaddr *)&ss, api->address, sizeof(api->address));
	log_notice("HTTP API listening on %s", api->address);
	*ret = api;
	return 0;
fail:
	http_free(api);
	return r;
}

/* Whether a live connection of @api still has an answer to send. */
static bool
output_pending(const struct http_api *api)
{
	const struct http_conn *hc;

	TAILQ_FOREACH(hc, &api->conns, link)
		if (!http_conn_gone(hc) &&
		    evbuffer_get_length(bufferevent_get_output(hc->bev)) > 0)
			return true;
	return false;
}

static void
drain_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/*
 * The broker is stopping, its loop has ended: accept no more connections,
 * answer every request that comes from now on 503 without touching the
 * routes, and run the loop until the answers already given (a job's 201
 * once its commit came in, say) have left, for at most @ms milliseconds;
 * calls waiting for the ledger go on meanwhile and are answered too.
 * Without it evhttp_free() would close those connections with the answers
 * still queued.  Everything else the loop serves must still exist.
 * Accepts NULL.
 */
void
http_drain(struct http_api *api, int ms)
{
	const struct timeval tick_tv = {0, HTTP_DRAIN_TICK_MS * 1000};
	struct timespec end, now;
	struct event *tick;

	if (api == NULL)
		return;
	api->stopping = true;
	if (api->listener != NULL)
		(void)evconnlistener_disable(api->listener);
	tick = event_new(api->env.base, -1, EV_PERSIST, drain_tick_cb, NULL);
	if (tick == NULL || event_add(tick, &tick_tv) < 0) {
		if (tick != NULL)
			event_free(tick);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (;;) {
		if (!output_pending(api) && TAILQ_EMPTY(&api->later))
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec ||
		    (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
			break;
		if (event_base_loop(api->env.base, EVLOOP_ONCE) < 0)
			break;
	}
	event_free(tick);
}

/*
 * Stop serving and free.  Calls still waiting for the ledger run first
 * (reading what is committed), while everything they use exists.
 * Accepts NULL; returns NULL.
 */
struct http_api *
http_free(struct http_api *api)
{
	struct http_later *w;

	if (api == NULL)
		return NULL;
	while ((w = TAILQ_FIRST(&api->later)) != NULL) {
		struct npufarm_err e;

		ledger_after_cancel(api->env.ledger, w->wait);
		w->wait = NULL;
		(void)err_set(&e, -ESHUTDOWN,
		    "the broker is stopping: not known to be committed");
		later_cb(&e, w);
	}
	if (api->http != NULL)
		evhttp_free(api->http); /* frees every connection */
	while (!TAILQ_EMPTY(&api->conns))
		http_conn_free(TAILQ_FIRST(&api->conns));
	if (api->sweep_ev != NULL)
		event_free(api->sweep_ev);
	free(api);
	return NULL;
}

/* New access rules (SIGHUP): @auth is borrowed, like the first. */
void
http_set_auth(struct http_api *h, struct auth *auth)
{
	h->auth = auth;
}

/* The bound "HOST:PORT" (borrowed, lives as long as @api). */
const char *
http_address(const struct http_api *api)
{
	return api->address;
}
