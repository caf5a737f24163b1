/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fake board's thread.  It owns its connection and its copy of the
 * configuration; the caller's side of struct tvmrpc_board is only touched
 * after pthread_join().  Stopping writes one byte to a pipe that every wait
 * of the thread watches (the cancel fd of struct tvmrpc, and the accept
 * poll), so no wait outlives a stop by more than a poll() wake-up.
 */
#include "config.h"

#include "tvmrpc_board.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "netaddr.h"

#define BOARD_DEFAULT_TIMEOUT_MS 5000
/* Largest kCopyFromRemote the board answers (beyond: a kException). */
#define BOARD_MAX_COPY           (1ull << 34)
/* What GARBAGE declares: 2^60 bytes, which no relay can buffer. */
#define BOARD_GARBAGE_LEN        (1ull << 60)

struct tvmrpc_board {
	enum tvmrpc_board_mode mode;
	unsigned sessions; /* to serve before the thread ends */
	int timeout_ms;    /* each send and handshake read */
	bool split_hello;
	char *farm;       /* owned copy; NULL: direct */
	char *hello;      /* owned: "server:<key>" */
	char *client_key; /* owned: "client:<key>", what direct needs */
	int listen_fd;    /* direct: owned listening socket, else -1 */
	char addr[NETADDR_STRLEN]; /* direct: "127.0.0.1:PORT" */
	int stop_pipe[2];          /* [0] readable once stop is asked */
	int done_pipe[2];          /* [0] readable once the thread ended */
	pthread_t thread;
	bool running;                   /* thread created and not yet joined */
	struct tvmrpc_board_report rep; /* the thread's until joined */
};

static pthread_once_t board_pattern_once = PTHREAD_ONCE_INIT;
static unsigned char board_pattern_buf[TVMRPC_BOARD_PATTERN_LEN];

static void
board_pattern_init(void)
{
	size_t i;

	for (i = 0; i < sizeof(board_pattern_buf); i++)
		board_pattern_buf[i] = (unsigned char)(i * 131 + (i >> 12));
}

/*
 * The TVMRPC_BOARD_PATTERN_LEN bytes a kCopyAck repeats: byte i of a reply
 * is pattern[i % TVMRPC_BOARD_PATTERN_LEN].  Static, never freed;
 * thread-safe.
 */
const unsigned char *
tvmrpc_board_pattern(void)
{
	(void)pthread_once(&board_pattern_once, board_pattern_init);
	return board_pattern_buf;
}

/* Record why the thread ends; returns @code. */
static int __attribute__((format(printf, 3, 4)))
board_fail(struct tvmrpc_board *b, int code, const char *fmt, ...)
{
	va_list ap;

	b->rep.status = code;
	va_start(ap, fmt);
	(void)vsnprintf(b->rep.detail, sizeof(b->rep.detail), fmt, ap);
	va_end(ap);
	return code;
}

/*
 * Proxy: dial the farm port, say "server:<key>" and wait (only a stop
 * ends the wait) for the pair-up.  Returns 0 with the connection and the
 * client's key in the report, or a negative code recorded in the report.
 */
static int
board_pair_proxy(struct tvmrpc_board *b, struct tvmrpc **ret_conn)
{
	struct npufarm_err err = {0};
	struct tvmrpc *c = NULL;
	int32_t code = 0;
	int r;

	r = tvmrpc_connect(b->farm, b->timeout_ms, 0, &c, &err);
	if (r < 0)
		return board_fail(b, r, "dialling the proxy: %s", err.msg);
	tvmrpc_set_cancel_fd(c, b->stop_pipe[0]);
	r = tvmrpc_send_hello(c, b->hello, b->split_hello);
	if (r < 0) {
		board_fail(
		    b, r, "sending the hello %s: %s", b->hello, strerror(-r));
		goto fail;
	}
	r = tvmrpc_recv_reply(
	    c, -1, &code, b->rep.peer_key, sizeof(b->rep.peer_key));
	if (r == -ECANCELED)
		goto fail;
	if (r != 0) {
		r = board_fail(b, r > 0 ? -ECONNABORTED : r,
		    "waiting for the pair-up: %s", tvmrpc_strresult(r));
		goto fail;
	}
	b->rep.reply_code = code;
	if (code != NPUFARM_TVM_RPC_CODE_SUCCESS) {
		r = board_fail(b, -ECONNREFUSED,
		    "the proxy answered code 0x%08x instead of SUCCESS",
		    (unsigned)code);
		goto fail;
	}
	*ret_conn = c;
	return 0;
fail:
	tvmrpc_free(c);
	return r;
}

/*
 * Direct: accept connections until one says "client:<key>" (others get
 * MISMATCH and are closed, as TVM's server does), answer SUCCESS with
 * "server:<key>".  Returns 0 with the connection, -ECANCELED on stop, or
 * a negative code recorded in the report.
 */
static int
board_pair_direct(struct tvmrpc_board *b, struct tvmrpc **ret_conn)
{
	struct pollfd pfd[2] = {
	    {.fd = b->listen_fd, .events = POLLIN},
	    {.fd = b->stop_pipe[0], .events = POLLIN},
	};
	struct tvmrpc *c = NULL;
	size_t tok;
	int fd, r;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return board_fail(
			    b, -errno, "poll: %s", strerror(errno));
		}
		if (pfd[1].revents != 0)
			return -ECANCELED;
		fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0)
			return board_fail(
			    b, -errno, "accept: %s", strerror(errno));
		r = tvmrpc_new_fd(fd, b->timeout_ms, &c);
		if (r < 0)
			return board_fail(
			    b, r, "wrapping a socket: %s", strerror(-r));
		tvmrpc_set_cancel_fd(c, b->stop_pipe[0]);
		r = tvmrpc_recv_hello(
		    c, b->timeout_ms, b->rep.peer_key, sizeof(b->rep.peer_key));
		if (r == -ECANCELED) {
			tvmrpc_free(c);
			return r;
		}
		tok = strcspn(b->rep.peer_key, " \t\n\r\f\v");
		if (r == 0 && tok == strlen(b->client_key) &&
		    strncmp(b->rep.peer_key, b->client_key, tok) == 0)
			break;
		if (r == 0)
			(void)tvmrpc_send_reply(
			    c, NPUFARM_TVM_RPC_CODE_MISMATCH, NULL);
		c = tvmrpc_free(c);
	}
	r = tvmrpc_send_reply(c, NPUFARM_TVM_RPC_CODE_SUCCESS, b->hello);
	if (r < 0) {
		tvmrpc_free(c);
		return board_fail(
		    b, r, "sending SUCCESS for %s: %s", b->hello, strerror(-r));
	}
	*ret_conn = c;
	return 0;
}

/*
 * Answer a kCallFunc the way the mode says.  Returns 0 to go on, 1 when
 * the board has closed the session, or a send error.
 */
static int
board_call(
    struct tvmrpc_board *b, struct tvmrpc *c, const struct tvmrpc_packet *p)
{
	struct tvmrpc_msg m;
	unsigned char h[TVMRPC_HEADER_SIZE];
	uint64_t handle;
	int64_t arg = 0;
	bool is_int;

	b->rep.calls++;
	is_int = tvmrpc_packet_call_int(p, &handle, &arg) == 0;
	switch (b->mode) {
	case TVMRPC_BOARD_OK:
		if (is_int)
			tvmrpc_msg_return_int(&m, arg + 1);
		else
			tvmrpc_msg_return_none(&m);
		return tvmrpc_send_msg(c, &m);
	case TVMRPC_BOARD_EXCEPTION:
		(void)tvmrpc_msg_exception(&m, "ValueError: bad input");
		return tvmrpc_send_msg(c, &m);
	case TVMRPC_BOARD_SILENT:
	case TVMRPC_BOARD_OWN_TIMEOUT:
		return 0;
	case TVMRPC_BOARD_CRASH:
		return 1;
	case TVMRPC_BOARD_CRASH_HALF:
		tvmrpc_msg_return_int(&m, arg + 1);
		(void)tvmrpc_send(c, m.b, m.len / 2);
		return 1;
	case TVMRPC_BOARD_STALL_HALF:
		tvmrpc_msg_return_int(&m, arg + 1);
		return tvmrpc_send(c, m.b, 10);
	case TVMRPC_BOARD_GARBAGE:
		tvmrpc_put_header(h, BOARD_GARBAGE_LEN, TVMRPC_RETURN);
		return tvmrpc_send(c, h, sizeof(h));
	}
	return 0;
}

/*
 * Answer one packet.  Returns 0 to go on, 1 when the session is over
 * (kShutdown, or the mode closed it), -EPROTO for a packet no server
 * expects (recorded), or a send error.
 */
static int
board_answer(
    struct tvmrpc_board *b, struct tvmrpc *c, const struct tvmrpc_packet *p)
{
	struct tvmrpc_msg m;
	uint64_t nbytes;

	switch (p->code) {
	case TVMRPC_SHUTDOWN:
		b->rep.shutdown = true;
		return 1;
	case TVMRPC_CALL_FUNC:
		return board_call(b, c, p);
	case TVMRPC_INIT_SERVER:
	case TVMRPC_COPY_TO_REMOTE:
		tvmrpc_msg_return_void(&m);
		return tvmrpc_send_msg(c, &m);
	case TVMRPC_GET_GLOBAL_FUNC:
		tvmrpc_msg_return_handle(&m, TVMRPC_BOARD_HANDLE);
		return tvmrpc_send_msg(c, &m);
	case TVMRPC_COPY_FROM_REMOTE:
		if (tvmrpc_packet_copy_nbytes(p, &nbytes) < 0 ||
		    nbytes > BOARD_MAX_COPY) {
			(void)tvmrpc_msg_exception(
			    &m, "ValueError: kCopyFromRemote not understood");
			return tvmrpc_send_msg(c, &m);
		}
		return tvmrpc_send_copy_ack(c, tvmrpc_board_pattern(),
		    TVMRPC_BOARD_PATTERN_LEN, nbytes);
	default:
		if (p->code > TVMRPC_GET_GLOBAL_FUNC &&
		    p->code <= TVMRPC_SYSCALL_LAST) {
			tvmrpc_msg_return_void(&m);
			return tvmrpc_send_msg(c, &m);
		}
		return board_fail(b, -EPROTO,
		    "unexpected packet from the client: code %d, N=%llu",
		    p->code, (unsigned long long)p->len);
	}
}

/* Serve one paired session on @c until it ends; the report says how. */
static int
board_serve(struct tvmrpc_board *b, struct tvmrpc *c)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	int64_t t0 = tvmrpc_now_ms(), deadline = -1, left;
	char text[256];
	int r;

	b->rep.has_timeout =
	    tvmrpc_key_timeout(b->rep.peer_key, &b->rep.timeout_s) == 1;
	if (b->mode == TVMRPC_BOARD_OWN_TIMEOUT && b->rep.has_timeout)
		deadline = t0 + (int64_t)(b->rep.timeout_s * 1000);
	for (;;) {
		left = deadline < 0 ? -1 : deadline - tvmrpc_now_ms();
		if (deadline >= 0 && left < 0)
			left = 0;
		r = tvmrpc_recv_packet(c, (int)left, &p);
		if (r == -ETIMEDOUT && deadline >= 0) {
			(void)tvmrpc_timeout_message(
			    b->rep.timeout_s, text, sizeof(text));
			(void)tvmrpc_msg_exception(&m, text);
			r = tvmrpc_send_msg(c, &m);
			b->rep.own_timeout_sent = r == 0;
			b->rep.end = r;
			break;
		}
		if (r != 0) {
			b->rep.end = r;
			if (r < 0 && r != -ECANCELED && r != -ECONNRESET)
				board_fail(b, r, "receiving: %s", strerror(-r));
			break;
		}
		b->rep.packets++;
		r = board_answer(b, c, &p);
		if (r != 0) {
			b->rep.end = r > 0 ? 0 : r;
			break;
		}
	}
	b->rep.session_ms = tvmrpc_now_ms() - t0;
	return b->rep.status;
}

static void *
board_main(void *arg)
{
	struct tvmrpc_board *b = arg;
	struct tvmrpc *c = NULL;
	unsigned i;
	char one = 1;
	int r;

	for (i = 0; i < b->sessions; i++) {
		b->rep.reply_code = 0;
		b->rep.peer_key[0] = '\0';
		if (b->farm != NULL)
			r = board_pair_proxy(b, &c);
		else
			r = board_pair_direct(b, &c);
		if (r < 0)
			break;
		b->rep.sessions++;
		b->rep.packets = b->rep.calls = 0;
		b->rep.shutdown = b->rep.own_timeout_sent = false;
		r = board_serve(b, c);
		c = tvmrpc_free(c);
		if (r < 0 || b->rep.end == -ECANCELED)
			break;
	}
	(void)write(b->done_pipe[1], &one, 1);
	return NULL;
}

/* Listen on 127.0.0.1:0 and note the address in b->addr. */
static int
board_listen(struct tvmrpc_board *b, struct npufarm_err *err)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	b->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->listen_fd < 0)
		return err_set(err, -errno, "socket: %s", strerror(errno));
	if (bind(b->listen_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(b->listen_fd, 8) < 0 ||
	    getsockname(b->listen_fd, (struct sockaddr *)&sin, &sl) < 0)
		return err_set(
		    err, -errno, "listening on 127.0.0.1: %s", strerror(errno));
	netaddr_format((struct sockaddr *)&sin, b->addr, sizeof(b->addr));
	return 0;
}

static struct tvmrpc_board *
board_free(struct tvmrpc_board *b)
{
	int i;

	if (b == NULL)
		return NULL;
	for (i = 0; i < 2; i++) {
		if (b->stop_pipe[i] >= 0)
			(void)close(b->stop_pipe[i]);
		if (b->done_pipe[i] >= 0)
			(void)close(b->done_pipe[i]);
	}
	if (b->listen_fd >= 0)
		(void)close(b->listen_fd);
	free(b->farm);
	free(b->hello);
	free(b->client_key);
	free(b);
	return NULL;
}

/*
 * Start a fake board as @cfg says (copied; the caller's strings may go
 * away).  Directly, the listening socket exists when this returns (see
 * tvmrpc_board_addr()); through a proxy, the thread dials in on its own.
 * On success the caller owns *ret_board and must end it with
 * tvmrpc_board_stop().  Returns 0, -EINVAL for a config without a key,
 * -ENOMEM, or -errno with the reason in @err.
 */
int
tvmrpc_board_start(const struct tvmrpc_board_config *cfg,
    struct tvmrpc_board **ret_board, struct npufarm_err *err)
{
	struct tvmrpc_board *b;
	int r;

	if (cfg->key == NULL)
		return err_set(err, -EINVAL, "a board needs a key");
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	b->listen_fd = -1;
	b->stop_pipe[0] = b->stop_pipe[1] = -1;
	b->done_pipe[0] = b->done_pipe[1] = -1;
	b->mode = cfg->mode;
	b->sessions = cfg->sessions > 0 ? cfg->sessions : 1;
	b->timeout_ms = cfg->io_timeout_ms > 0 ? cfg->io_timeout_ms
					       : BOARD_DEFAULT_TIMEOUT_MS;
	b->split_hello = cfg->split_hello;
	if ((cfg->farm != NULL && (b->farm = strdup(cfg->farm)) == NULL) ||
	    asprintf(&b->hello, "server:%s", cfg->key) < 0 ||
	    asprintf(&b->client_key, "client:%s", cfg->key) < 0) {
		b->hello = b->client_key = NULL;
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (pipe2(b->stop_pipe, O_CLOEXEC) < 0 ||
	    pipe2(b->done_pipe, O_CLOEXEC) < 0) {
		r = err_set(err, -errno, "pipe: %s", strerror(errno));
		goto fail;
	}
	if (b->farm == NULL) {
		r = board_listen(b, err);
		if (r < 0)
			goto fail;
	}
	(void)tvmrpc_board_pattern();
	r = -pthread_create(&b->thread, NULL, board_main, b);
	if (r < 0) {
		err_set(err, r, "pthread_create: %s", strerror(-r));
		goto fail;
	}
	b->running = true;
	*ret_board = b;
	return 0;
fail:
	board_free(b);
	return r;
}

/*
 * Direct mode: the "127.0.0.1:PORT" clients connect to (borrowed, valid
 * until tvmrpc_board_stop()); "" through a proxy.
 */
const char *
tvmrpc_board_addr(const struct tvmrpc_board *b)
{
	return b->addr;
}

/*
 * Wait up to @timeout_ms (<0: forever) for the board's thread to end on
 * its own (its sessions served, or an error).  Returns 0 once it has,
 * -ETIMEDOUT, or -errno from poll().
 */
int
tvmrpc_board_wait(struct tvmrpc_board *b, int timeout_ms)
{
	struct pollfd pfd = {.fd = b->done_pipe[0], .events = POLLIN};
	int n;

	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

/*
 * Stop the board: interrupt whatever it waits for (a session cut short
 * this way reports end -ECANCELED), join its thread, copy its report into
 * *ret_report (may be NULL) and free it.  @b is gone afterwards.  Returns
 * the report's status.
 */
int
tvmrpc_board_stop(
    struct tvmrpc_board *b, struct tvmrpc_board_report *ret_report)
{
	char one = 1;
	int status;

	if (b->running) {
		(void)write(b->stop_pipe[1], &one, 1);
		(void)pthread_join(b->thread, NULL);
		b->running = false;
	}
	status = b->rep.status;
	if (ret_report != NULL)
		*ret_report = b->rep;
	board_free(b);
	return status;
}
