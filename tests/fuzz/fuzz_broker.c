/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fuzzers' in-process broker (fuzz_broker.h).  A fuzzer process is
 * single-threaded and runs one input at a time, so the broker lives in
 * static storage for the process's life: the one place in the tree where
 * that is the right shape.
 */
#include "config.h"

#include "fuzz_broker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "artifacts.h"
#include "broker_config.h"
#include "conn.h"
#include "err.h"
#include "jobs.h"
#include "listener.h"
#include "log.h"
#include "netaddr.h"
#include "server.h"
#include "sha256_util.h"

#define FUZZ_MAX_CONNS 8
#define FUZZ_MAX_TURNS 64

static struct broker_config cfg;
static struct server *srv;
static char farm[NETADDR_STRLEN], http[NETADDR_STRLEN];
static char artifact[65];
static int64_t job_id;

static void
die(const char *what, const struct npufarm_err *err)
{
	fprintf(stderr, "fuzz_broker: %s: %s\n", what, err ? err->msg : "");
	abort();
}

static void
set(const char *name, const char *value)
{
	struct npufarm_err err;

	if (broker_config_set(&cfg, name, value, &err) < 0)
		die(name, &err);
}

/* One kernel task for key "k", so agent frames meet a live job. */
static void
submit_job(void)
{
	struct npufarm_err err;
	json_t *body;
	int n;

	if (job_id != 0) {
		json_t *live = jobs_live_summary(srv->jobs, job_id);

		if (live != NULL) {
			json_decref(live);
			return;
		}
	}
	body = json_pack("{ss s[{ss ss ss s[{ss s[i]}]}]}", "key", "k", "tasks",
	    "runner", "kernel", "artifact", artifact, "entry", "run", "args",
	    "dtype", "float32", "shape", 4);
	if (body == NULL ||
	    jobs_submit(srv->jobs, body, "fuzz", &job_id, &n, &err) < 0)
		die("submitting a job", body ? &err : NULL);
	json_decref(body);
}

static void
put_artifact(void)
{
	static const char blob[] = "\177ELF not really a kernel";
	unsigned char md[32];
	struct evbuffer *b = evbuffer_new();
	struct npufarm_err err;
	bool created;

	if (b == NULL ||
	    EVP_Digest(blob, sizeof(blob), md, NULL, EVP_sha256(), NULL) != 1)
		die("hashing", NULL);
	sha256_util_hex(md, artifact);
	evbuffer_add(b, blob, sizeof(blob));
	if (artifacts_put(srv->artifacts, artifact, b, &created, &err) < 0)
		die("storing the artifact", &err);
	evbuffer_free(b);
}

static void
teardown(void)
{
	srv = server_free(srv);
	broker_config_deinit(&cfg);
}

struct server *
fuzz_broker(void)
{
	struct npufarm_err err;
	char dir[256], path[300];
	json_t *ready;

	if (srv != NULL)
		return srv;
	(void)snprintf(dir, sizeof(dir), "%s/npufarm-fuzz-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", NULL);
	log_set_level(getenv("FUZZ_VERBOSE") ? LOG_DEBUG : -1);
	broker_config_defaults(&cfg);
	if (broker_config_add_listen(&cfg, "127.0.0.1:0", &err) < 0)
		die("listen", &err);
	set("http", "127.0.0.1:0");
	(void)snprintf(path, sizeof(path), "%s/npufarm.db", dir);
	set("db", path);
	(void)snprintf(path, sizeof(path), "%s/data", dir);
	set("data_dir", path);
	(void)snprintf(path, sizeof(path), "%s/ready.json", dir);
	set("ready_file", path);
	set("ledger_sync", "normal");
	if (broker_config_check(&cfg, &err) < 0 ||
	    server_new(&cfg, &srv, &err) < 0)
		die("starting the broker", &err);
	ready = json_load_file(path, 0, NULL);
	(void)snprintf(farm, sizeof(farm), "%s",
	    json_string_value(
		json_array_get(json_object_get(ready, "farm"), 0)));
	(void)snprintf(http, sizeof(http), "%s",
	    json_string_value(json_object_get(ready, "http")));
	json_decref(ready);
	put_artifact();
	atexit(teardown);
	return srv;
}

const char *
fuzz_broker_farm(void)
{
	(void)fuzz_broker();
	return farm;
}

const char *
fuzz_broker_http(void)
{
	(void)fuzz_broker();
	return http;
}

/*
 * connect(), finished when a signal (libFuzzer's timers) interrupts it:
 * the connection goes on in the background, so wait for it.
 */
static int
connect_retry(int fd, const struct sockaddr_in *sin)
{
	struct pollfd p = {fd, POLLOUT, 0};
	socklen_t len = sizeof(int);
	int e = 0;

	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) == 0)
		return 0;
	if (errno != EINTR)
		return -1;
	while (poll(&p, 1, 10000) < 0)
		if (errno != EINTR)
			return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
		return -1;
	errno = e;
	return e == 0 ? 0 : -1;
}

/*
 * A connection to @addr: the farm port's are socket pairs handed to
 * listener_accept() as if from 127.0.0.1 (no TCP ports to run out of); the
 * API's are loopback TCP, closed with a reset so that no TIME_WAIT piles
 * up.
 */
static int
dial(const char *addr)
{
	static uint32_t nsrc;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in src = {.sin_family = AF_INET};
	const char *colon = strrchr(addr, ':');
	struct linger lg = {1, 0};
	int fd, sv[2];

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	if (addr == farm) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			die("socketpair", NULL);
		(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
		(void)fcntl(sv[1], F_SETFL, O_NONBLOCK);
		listener_accept(
		    srv->listener, sv[0], (struct sockaddr *)&sin, sizeof(sin));
		return sv[1];
	}
	/* A new source address of 127/8 for each connection: a long run
	 * makes hundreds of thousands, more than one address's ephemeral
	 * ports (the broker closes some first, and those wait in TIME_WAIT). */
	src.sin_addr.s_addr = htonl(0x7f010000u | (++nsrc & 0xffffu));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    connect_retry(fd, &sin) < 0) {
		struct npufarm_err e;

		(void)err_set(&e, -errno, "%s", strerror(errno));
		die("connect", &e);
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	(void)fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Turn the loop once and drain what the broker sent; -1 when all closed. */
static int
turn(int *fds, int n)
{
	char buf[65536];
	int i, open = 0;

	(void)event_base_loop(srv->base, EVLOOP_NONBLOCK);
	for (i = 0; i < n; i++) {
		ssize_t r;

		if (fds[i] < 0)
			continue;
		while ((r = read(fds[i], buf, sizeof(buf))) > 0)
			;
		if (r == 0 || (r < 0 && errno != EAGAIN)) {
			close(fds[i]);
			fds[i] = -1;
		} else
			open++;
	}
	return open > 0 ? 0 : -1;
}

static void
send_all(int fd, const void *p, size_t len, int *fds, int n)
{
	const char *c = p;
	int spins = 0;

	while (len > 0 && spins < FUZZ_MAX_TURNS) {
		ssize_t w = send(fd, c, len, MSG_NOSIGNAL);

		if (w > 0) {
			c += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN)
			return; /* the broker closed it */
		(void)turn(fds, n);
		spins++;
	}
}

void
fuzz_broker_play(const char *addr, const void *prefix, size_t plen,
    const uint8_t *data, size_t size, int nconns)
{
	static const char sep[] = "\n@@\n";
	int fds[FUZZ_MAX_CONNS], i, seg = 0;
	bool opened[FUZZ_MAX_CONNS] = {false};
	const uint8_t *p = data, *end = data + size;

	submit_job();
	if (nconns > FUZZ_MAX_CONNS)
		nconns = FUZZ_MAX_CONNS;
	for (i = 0; i < nconns; i++)
		fds[i] = -1;
	while (p <= end) {
		const uint8_t *q = memmem(p, (size_t)(end - p), sep, 4);
		size_t len = q ? (size_t)(q - p) : (size_t)(end - p);
		int c = seg++ % nconns;

		if (!opened[c]) {
			opened[c] = true;
			fds[c] = dial(addr);
			if (plen > 0)
				send_all(fds[c], prefix, plen, fds, nconns);
		}
		if (fds[c] >= 0 && len > 0)
			send_all(fds[c], p, len, fds, nconns);
		(void)turn(fds, nconns);
		if (q == NULL)
			break;
		p = q + 4;
	}
	for (i = 0; i < nconns; i++)
		if (fds[i] >= 0)
			(void)shutdown(fds[i], SHUT_WR);
	for (i = 0; i < FUZZ_MAX_TURNS; i++)
		if (turn(fds, nconns) < 0)
			break;
	for (i = 0; i < nconns; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* Let the broker see those closes before the next input. */
	for (i = 0; i < 4; i++)
		(void)event_base_loop(srv->base, EVLOOP_NONBLOCK);
}
