/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's side of its link in-process: the fuzzer plays the broker.
 * Each input opens a fresh link (link_new() dials the fuzzer's listening
 * socket), and the input is sent to it as the broker's bytes: welcome,
 * errors, acks, undrain, task, cancel and chunk frames, which the link and
 * the agent's task engine (tasks_frame()) handle.  Tasks never run: their
 * artifacts never arrive whole with the right digest.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "cache.h"
#include "err.h"
#include "link.h"
#include "log.h"
#include "tasks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static struct cache *cache;
static struct tasks *tasks;
static int lfd = -1;
static char addr[64];

static void
frame_cb(void *arg, const char *type, json_t *v)
{
	tasks_frame(tasks, type, v);
}

static void
teardown(void)
{
	tasks = tasks_free(tasks);
	cache = cache_free(cache);
	if (lfd >= 0)
		close(lfd);
	event_base_free(base);
}

static void
setup(void)
{
	static char dir[256];
	char cdir[300];
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	struct npufarm_err err;
	struct tasks_config tc = {0};

	log_set_level(getenv("FUZZ_VERBOSE") ? LOG_DEBUG : -1);
	base = event_base_new();
	(void)snprintf(dir, sizeof(dir), "%s/npufarm-fuzz-agent-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (base == NULL || mkdtemp(dir) == NULL)
		abort();
	(void)snprintf(cdir, sizeof(cdir), "%s/cache", dir);
	if (cache_open(cdir, 1 << 20, &cache, &err) < 0)
		abort();
	tc.workdir = dir;
	tc.cache = cache;
	if (tasks_new(base, &tc, &tasks, &err) < 0)
		abort();
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) < 0)
		abort();
	(void)snprintf(
	    addr, sizeof(addr), "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
	atexit(teardown);
}

static void
drain(int fd)
{
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct link_config lc = {
	    .broker = addr, .name = "fz", .key = "k", .frame = frame_cb};
	struct npufarm_err err;
	struct link *link;
	size_t off = 0;
	int fd = -1, i;

	if (base == NULL)
		setup();
	if (link_new(base, &lc, &link, &err) < 0)
		return 0;
	tasks_set_link(tasks, link);
	(void)fcntl(lfd, F_SETFL, O_NONBLOCK);
	for (i = 0; i < 200 && fd < 0; i++) {
		(void)event_base_loop(base, EVLOOP_NONBLOCK);
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	}
	if (fd < 0)
		abort(); /* the link never dialled */
	for (i = 0; i < 256 && off < size; i++) {
		ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);

		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN)
			break;
		(void)event_base_loop(base, EVLOOP_NONBLOCK);
		drain(fd);
	}
	for (i = 0; i < 8; i++) {
		(void)event_base_loop(base, EVLOOP_NONBLOCK);
		drain(fd);
	}
	close(fd);
	for (i = 0; i < 4; i++)
		(void)event_base_loop(base, EVLOOP_NONBLOCK);
	tasks_set_link(tasks, NULL);
	link_free(link);
	return 0;
}
