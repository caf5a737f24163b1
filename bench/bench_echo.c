/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Echo server child.  The parent binds and listens before forking, so the
 * address is known and connectable by the time bench_echo_spawn() returns;
 * the child only runs the loop until SIGTERM.
 */
#include "config.h"

#include "bench_echo.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "frame.h"
#include "netaddr.h"
#include "quickack.h"
#include "tvmpeer.h"

/* Frames echoed per read callback before yielding, as the broker does. */
#define ECHO_MAX_PER_EVENT 64

struct echo_conn {
	struct bufferevent *bev; /* owned, closes the socket */
	bool greeted;            /* the 4-byte magic has been echoed */
};

static void
echo_conn_free(struct echo_conn *c)
{
	bufferevent_free(c->bev);
	free(c);
}

static void
echo_readcb(struct bufferevent *bev, void *arg)
{
	struct echo_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	const char *body;
	size_t len;
	int n, r = FRAME_INCOMPLETE;

	if (!c->greeted) {
		if (evbuffer_get_length(in) < FRAME_HEADER_SIZE)
			return;
		(void)evbuffer_remove_buffer(in, out, FRAME_HEADER_SIZE);
		c->greeted = true;
	}
	for (n = 0; n < ECHO_MAX_PER_EVENT; n++) {
		r = frame_next(in, TVMPEER_MAX_FRAME, &body, &len);
		if (r != FRAME_READY)
			break;
		r = frame_add(out, body, len);
		frame_consume(in, len);
		if (r < 0)
			break;
	}
	if (r < 0) {
		echo_conn_free(c);
		return;
	}
	if (n == ECHO_MAX_PER_EVENT)
		bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
	else if (evbuffer_get_length(in) > 0) /* partial frame, as broker */
		quickack_rearm(bufferevent_getfd(bev));
}

static void
echo_eventcb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		echo_conn_free(arg);
}

static void
echo_acceptcb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct event_base *base = evconnlistener_get_base(l);
	struct echo_conn *c;
	int one = 1;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		(void)close(fd);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		(void)close(fd);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, echo_readcb, NULL, echo_eventcb, c);
	(void)bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
echo_sigcb(evutil_socket_t sig, short what, void *arg)
{
	(void)event_base_loopexit(arg, NULL);
}

/* The child: serve @lfd until SIGTERM, then exit without returning. */
static void
echo_child(int lfd)
{
	struct evconnlistener *l = NULL;
	struct event_base *base;
	struct event *sig = NULL;
	int status = 1;

	base = event_base_new();
	if (base == NULL)
		goto out;
	sig = evsignal_new(base, SIGTERM, echo_sigcb, base);
	l = evconnlistener_new(base, echo_acceptcb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, lfd);
	if (sig == NULL || l == NULL || event_add(sig, NULL) < 0)
		goto out;
	status = event_base_dispatch(base) < 0 ? 1 : 0;
out:
	/* Connections still open at exit die with the process. */
	if (l != NULL)
		evconnlistener_free(l);
	if (sig != NULL)
		event_free(sig);
	if (base != NULL)
		event_base_free(base);
	_exit(status);
}

/*
 * Start the echo server on an ephemeral loopback port in a child process.
 * Writes its pid to *ret_pid and "127.0.0.1:PORT" to @addr.  The caller
 * must call bench_echo_stop().  Returns 0 or -errno; does not log.
 */
int
bench_echo_spawn(pid_t *ret_pid, char *addr, size_t addrlen)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	pid_t pid;
	int fd, r;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
		r = -errno;
		goto out;
	}
	netaddr_format((struct sockaddr *)&sin, addr, addrlen);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0)
		echo_child(fd);
	*ret_pid = pid;
	r = 0;
out:
	(void)close(fd);
	return r;
}

/* SIGTERM the echo server and reap it.  Accepts pid <= 0 (nothing). */
void
bench_echo_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	(void)kill(pid, SIGTERM);
	(void)waitpid(pid, NULL, 0);
}
