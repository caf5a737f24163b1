/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Harness implementation.  Integration helpers abort the test (ck_assert)
 * on any failure, so callers stay linear.  The broker binary comes from
 * $NPUFARM_BROKER_BIN, set by meson.
 */
#include "config.h"

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <sqlite3.h>

#include "err.h"
#include "frame.h"
#include "tvmpeer.h"
#include "tvmrpc.h"
#include "tvmrpc_client.h"

/* Run @s with TAP on stdout; returns the process exit status. */
int
harness_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Decode lowercase/uppercase hex into @out; returns the byte count. */
size_t
harness_unhex(const char *hex, unsigned char *out, size_t outlen)
{
	size_t n = 0;

	while (hex[0] != '\0' && hex[1] != '\0' && n < outlen) {
		unsigned v;

		ck_assert_int_eq(sscanf(hex, "%2x", &v), 1);
		out[n++] = (unsigned char)v;
		hex += 2;
	}
	return n;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static void
spawn(struct harness_broker *b, const char *const *extra)
{
	const char *bin = getenv("NPUFARM_BROKER_BIN");
	const char *argv[64];
	char ready[300], data[300];
	size_t n = 0;
	int i;

	ck_assert_msg(bin != NULL, "NPUFARM_BROKER_BIN is not set");
	(void)snprintf(ready, sizeof(ready), "%s/ready.json", b->dir);
	(void)snprintf(data, sizeof(data), "%s/data", b->dir);
	(void)unlink(ready);
	argv[n++] = bin;
	argv[n++] = "--listen";
	argv[n++] = b->listen[0] != '\0' ? b->listen : "127.0.0.1:0";
	argv[n++] = "--http";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--db";
	argv[n++] = b->db;
	argv[n++] = "--ready-file";
	argv[n++] = ready;
	argv[n++] = "--data-dir"; /* artifacts: the test's own */
	argv[n++] = data;
	argv[n++] = "-v";
	for (i = 0; extra != NULL && extra[i] != NULL && n < 62; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	b->pid = harness_spawn(bin, argv, b->log);
	/* Wait for the ready file: never guess ports, never sleep blindly. */
	for (i = 0; i < 1000; i++) {
		json_t *v = json_load_file(ready, 0, NULL);
		int status;

		if (v != NULL) {
			const char *farm = json_string_value(
			    json_array_get(json_object_get(v, "farm"), 0));
			const char *http =
			    json_string_value(json_object_get(v, "http"));

			ck_assert(farm != NULL && http != NULL);
			(void)snprintf(b->farm, sizeof(b->farm), "%s", farm);
			(void)snprintf(b->http, sizeof(b->http), "%s", http);
			json_decref(v);
			return;
		}
		ck_assert_msg(waitpid(b->pid, &status, WNOHANG) == 0,
		    "broker exited during start-up; see %s", b->log);
		sleep_ms(10);
	}
	ck_abort_msg("broker did not become ready; see %s", b->log);
}

/*
 * Start a broker in a fresh temporary directory with @extra flags
 * (NULL-terminated, may be NULL).
 */
void
harness_broker_start(struct harness_broker *b, const char *const *extra)
{
	memset(b, 0, sizeof(*b));
	(void)snprintf(b->dir, sizeof(b->dir), "/tmp/npufarm-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(b->dir));
	(void)snprintf(b->db, sizeof(b->db), "%s/npufarm.db", b->dir);
	(void)snprintf(b->log, sizeof(b->log), "%s/broker.log", b->dir);
	spawn(b, extra);
}

/* Start the broker again on the same directory and ledger. */
void
harness_broker_restart(struct harness_broker *b, const char *const *extra)
{
	spawn(b, extra);
}

/*
 * SIGTERM the broker and reap it.  Returns its exit status, or 128+signal
 * if it died of a signal (ASan aborts count as failures that way).
 */
int
harness_broker_stop(struct harness_broker *b)
{
	int status, i;

	if (b->pid <= 0)
		return 0;
	kill(b->pid, SIGTERM);
	for (i = 0; i < 1000; i++) {
		if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
			b->pid = 0;
			if (WIFEXITED(status))
				return WEXITSTATUS(status);
			return 128 + WTERMSIG(status);
		}
		sleep_ms(10);
	}
	kill(b->pid, SIGKILL);
	waitpid(b->pid, &status, 0);
	b->pid = 0;
	return 255;
}

/* Stop (if running) and remove the temporary directory. */
void
harness_broker_cleanup(struct harness_broker *b)
{
	if (b->pid > 0) {
		kill(b->pid, SIGKILL);
		waitpid(b->pid, NULL, 0);
		b->pid = 0;
	}
	if (getenv("NPUFARM_KEEP_TEST_DIRS") == NULL &&
	    strncmp(b->dir, "/tmp/npufarm-test-", 18) == 0)
		(void)harness_rmtree(b->dir);
}

static int
rmtree_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

/* Remove @dir and everything under it: 0, or -1 at the first failure. */
int
harness_rmtree(const char *dir)
{
	return nftw(dir, rmtree_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* 1 if the broker's log contains @needle. */
int
harness_log_contains(const struct harness_broker *b, const char *needle)
{
	char buf[65536];
	size_t n;
	FILE *f;

	f = fopen(b->log, "r");
	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/*
 * Wait until the peer closes @fd (read returns 0 or an error), discarding
 * data.  Returns 1 if closed, 0 on timeout.
 */
int
harness_wait_closed(int fd, int timeout_ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	char buf[4096];

	for (;;) {
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return 0;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return 1;
	}
}

/*
 * Blocking HTTP/1.0 GET against the broker API.  Returns the malloc'd body
 * and the status code.
 */
char *
harness_http_get(const char *hostport, const char *path, int *ret_status)
{
	return harness_http(hostport, "GET", path, ret_status);
}

/* Blocking HTTP/1.0 @method (no body); like harness_http_get(). */
char *
harness_http(
    const char *hostport, const char *method, const char *path, int *ret_status)
{
	return harness_http_body(hostport, method, path, NULL, 0, ret_status);
}

/* Blocking HTTP/1.0 @method with a body of @blen bytes (may be NULL). */
char *
harness_http_body(const char *hostport, const char *method, const char *path,
    const void *bbody, size_t blen, int *ret_status)
{
	struct addrinfo hints = {0}, *res;
	char host[64], *port, req[512], *buf, *body;
	size_t len = 0, cap = 65536;
	int fd, status = 0;
	ssize_t n;

	(void)snprintf(host, sizeof(host), "%s", hostport);
	port = strrchr(host, ':');
	ck_assert_ptr_nonnull(port);
	*port++ = '\0';
	hints.ai_socktype = SOCK_STREAM;
	ck_assert_int_eq(getaddrinfo(host, port, &hints, &res), 0);
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, res->ai_addr, res->ai_addrlen), 0);
	freeaddrinfo(res);
	n = snprintf(req, sizeof(req),
	    "%s %s HTTP/1.0\r\nHost: %s\r\nContent-Length: %zu\r\n\r\n", method,
	    path, hostport, blen);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	while (blen > 0) {
		/* A server may refuse a body half-way (413) and close. */
		n = send(fd, bbody, blen, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		bbody = (const char *)bbody + n;
		blen -= (size_t)n;
	}
	buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (len + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
	}
	close(fd);
	buf[len] = '\0';
	ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", &status), 1);
	body = strstr(buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	body = strdup(body + 4);
	free(buf);
	*ret_status = status;
	return body;
}

static int
sql_row_cb(void *arg, int ncol, char **vals, char **names)
{
	char **out = arg;
	size_t old = *out ? strlen(*out) : 0, add = 2;
	int i;

	for (i = 0; i < ncol; i++)
		add += (vals[i] ? strlen(vals[i]) : 4) + 1;
	*out = realloc(*out, old + add);
	(*out)[old] = '\0';
	for (i = 0; i < ncol; i++) {
		strcat(*out, vals[i] ? vals[i] : "NULL");
		strcat(*out, i + 1 < ncol ? "|" : "\n");
	}
	return 0;
}

/*
 * Run @sql read-only against the ledger file and return rows as
 * "a|b|c\n" lines (malloc'd; "" for none).
 */
char *
harness_sql(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	char *out = NULL, *msg = NULL;

	ck_assert_int_eq(
	    sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(h, 5000);
	ck_assert_msg(sqlite3_exec(h, sql, sql_row_cb, &out, &msg) == SQLITE_OK,
	    "%s: %s", sql, msg ? msg : "?");
	sqlite3_close(h);
	return out ? out : strdup("");
}

/*
 * Start @bin with @argv (NULL-terminated, argv[0] included) and its stderr
 * appended to @log.  Returns the pid.  The child is tied to the calling
 * process (PR_SET_PDEATHSIG, SIGKILL): a failed check ends the test's
 * process without its teardown, and must leave nothing running.  Call it
 * from the test's main thread: the signal follows the thread that forked.
 */
pid_t
harness_spawn(const char *bin, const char *const *argv, const char *log)
{
	pid_t parent = getpid(), pid = fork();
	int fd;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* The parent may have died before prctl(): then the signal
		 * never comes, and the child is already an orphan. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(127);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/*
 * SIGTERM @pid and wait up to @timeout_ms for it.  Returns its exit
 * status, 128+signal, or 255 if it had to be killed.
 */
int
harness_reap(pid_t pid, int timeout_ms)
{
	int status, i;

	kill(pid, SIGTERM);
	for (i = 0; i < timeout_ms / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status)
						 : 128 + WTERMSIG(status);
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return 255;
}

/*
 * Poll @sql on ledger @db until it yields @want (at most @timeout_ms),
 * then assert that it did, showing what it yielded instead.
 */
void
harness_wait_sql(
    const char *db, const char *sql, const char *want, int timeout_ms)
{
	char *row = NULL;
	int i;

	for (i = 0; i <= timeout_ms / 20; i++) {
		free(row);
		row = harness_sql(db, sql);
		if (strcmp(row, want) == 0)
			break;
		sleep_ms(20);
	}
	ck_assert_msg(
	    strcmp(row, want) == 0, "%s: got '%s', want '%s'", sql, row, want);
	free(row);
}

/* The sha256 of @len bytes at @data, as 64 lowercase hex digits. */
void
harness_sha256_hex(const void *data, size_t len, char *hex)
{
	unsigned char md[32];
	int i;

	ck_assert_int_eq(
	    EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL), 1);
	for (i = 0; i < 32; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/*
 * PUT file @path to the broker API at @hostport as an artifact; its sha256
 * into @sha (65 bytes).  Returns the HTTP status.
 */
int
harness_put_artifact(const char *hostport, const char *path, char *sha)
{
	char url[128];
	unsigned char *data;
	struct stat st;
	int status;
	FILE *f;

	ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	data = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(data);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(
	    fread(data, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	harness_sha256_hex(data, (size_t)st.st_size, sha);
	(void)snprintf(url, sizeof(url), "/v1/artifacts/%s", sha);
	free(harness_http_body(
	    hostport, "PUT", url, data, (size_t)st.st_size, &status));
	free(data);
	return status;
}

/*
 * PUT test kernel @dir/lib@name.so to the broker at @hostport; its sha256
 * into @sha (65 bytes).  Asserts it was stored (201) or there (200).
 */
void
harness_put_kernel(
    const char *hostport, const char *dir, const char *name, char *sha)
{
	char path[512];
	int status;

	(void)snprintf(path, sizeof(path), "%s/lib%s.so", dir, name);
	status = harness_put_artifact(hostport, path, sha);
	ck_assert_msg(
	    status == 201 || status == 200, "PUT %s: %d", path, status);
}

/* POST the job @json to @hostport; asserts 201 and returns its id. */
long
harness_job_submit(const char *hostport, const char *json)
{
	int status;
	char *body = harness_http_body(
	    hostport, "POST", "/v1/jobs", json, strlen(json), &status);
	json_t *v = json_loads(body, 0, NULL);
	long id;

	ck_assert_msg(status == 201, "%d %s", status, body);
	id = (long)json_integer_value(json_object_get(v, "id"));
	ck_assert_int_gt(id, 0);
	json_decref(v);
	free(body);
	return id;
}

/*
 * Follow job @id with the long-poll until it is over (two minutes at
 * most), then GET it: the reply, a new reference.
 */
json_t *
harness_job_wait(const char *hostport, long id)
{
	char path[128], *body;
	time_t deadline = time(NULL) + 120;
	long long seq = 0;
	int status;
	json_t *v;

	while (time(NULL) < deadline) {
		(void)snprintf(path, sizeof(path),
		    "/v1/jobs/%ld/wait?after=%lld&timeout=5", id, seq);
		body = harness_http_get(hostport, path, &status);
		ck_assert_msg(status == 200, "%d %s", status, body);
		v = json_loads(body, 0, NULL);
		free(body);
		ck_assert_ptr_nonnull(v);
		seq = json_integer_value(json_object_get(v, "seq"));
		if (json_is_true(json_object_get(v, "done"))) {
			json_decref(v);
			break;
		}
		json_decref(v);
	}
	(void)snprintf(path, sizeof(path), "/v1/jobs/%ld", id);
	body = harness_http_get(hostport, path, &status);
	ck_assert_msg(status == 200, "%d %s", status, body);
	v = json_loads(body, 0, NULL);
	free(body);
	ck_assert_ptr_nonnull(v);
	return v;
}

/* Task @idx of @job (a GET /v1/jobs/ID reply), borrowed from it. */
json_t *
harness_job_task(json_t *job, int idx)
{
	return json_array_get(json_object_get(job, "task_list"), (size_t)idx);
}

/*
 * Start a native agent ($NPUFARM_AGENT_BIN) on @b's farm port: key cpu,
 * named @prefix@i, working in DIR/work-@i and logging to DIR/agent-@i.log
 * (DIR: @b's), with @extra flags (NULL-terminated, may be NULL).  Returns
 * its pid (harness_spawn()).
 */
pid_t
harness_agent_start(const struct harness_broker *b, const char *prefix, int i,
    const char *const *extra)
{
	const char *bin = getenv("NPUFARM_AGENT_BIN");
	char name[32], work[320], log[320];
	const char *argv[32] = {bin, "--broker", b->farm, "--key", "cpu",
	    "--name", name, "--workdir", work, "-vv"};
	int n = 10;

	ck_assert_ptr_nonnull(bin);
	while (extra != NULL && *extra != NULL && n < 30)
		argv[n++] = *extra++;
	argv[n] = NULL;
	(void)snprintf(name, sizeof(name), "%s%d", prefix, i);
	(void)snprintf(work, sizeof(work), "%s/work-%d", b->dir, i);
	(void)snprintf(log, sizeof(log), "%s/agent-%d.log", b->dir, i);
	return harness_spawn(bin, argv, log);
}

/*
 * The teardown of a broker @b and its @n agents: SIGTERM each agent that
 * runs (pid > 0) and reap it (harness_reap(), @timeout_ms), then stop the
 * broker: each must exit 0.  Zeroes the pids; removes @b's directory.
 */
void
harness_farm_stop(
    struct harness_broker *b, pid_t *agents, size_t n, int timeout_ms)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (agents[i] > 0) {
			ck_assert_int_eq(
			    harness_reap(agents[i], timeout_ms), 0);
			agents[i] = 0;
		}
	ck_assert_int_eq(harness_broker_stop(b), 0);
	harness_broker_cleanup(b);
}

/* Wait (30 s at most) until @b's ledger has @n idle agent boards. */
void
harness_wait_idle(const struct harness_broker *b, int n)
{
	char want[32];

	(void)snprintf(want, sizeof(want), "%d\n", n);
	harness_wait_sql(b->db,
	    "SELECT count(*) FROM boards WHERE kind = 'agent' AND"
	    " state = 'idle'",
	    want, 30000);
}

/* An agent link to @farm: the NPUF magic sent, nothing echoed yet. */
struct tvmpeer *
harness_link_open(const char *farm, int timeout_ms)
{
	struct npufarm_err err;
	struct tvmpeer *p;

	ck_assert_msg(
	    tvmpeer_open(farm, timeout_ms, &p, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(tvmpeer_send_raw(p, "NPUF", 4), 0);
	return p;
}

/* Send the text @json as one frame on @p (a tracker or agent link). */
void
harness_send_text(struct tvmpeer *p, const char *json)
{
	ck_assert_int_eq(tvmpeer_send_frame(p, json, strlen(json)), 0);
}

/* The next frame on @p (@timeout_ms at most): a JSON object, to decref. */
json_t *
harness_recv_obj(struct tvmpeer *p, int timeout_ms)
{
	struct npufarm_err err;
	json_t *v;

	ck_assert_msg(
	    tvmpeer_recv_json(p, timeout_ms, &v, &err) == 0, "%s", err.msg);
	ck_assert(json_is_object(v));
	return v;
}

/*
 * Send the agent's @hello on link @p and expect the broker's welcome:
 * returned, to decref.
 */
json_t *
harness_link_hello(struct tvmpeer *p, const char *hello, int timeout_ms)
{
	json_t *v;

	harness_send_text(p, hello);
	v = harness_recv_obj(p, timeout_ms);
	ck_assert_str_eq(
	    json_string_value(json_object_get(v, "type")), "welcome");
	return v;
}

/*
 * A TVM client granted a board of @key by the tracker at @tracker
 * (session -timeout=@timeout, NULL: none), connected back with its
 * matchkey and past kInitServer; every wait @timeout_ms at most.
 */
struct tvmrpc_client *
harness_tvm_open(
    const char *tracker, const char *key, const char *timeout, int timeout_ms)
{
	struct tvmrpc_client_config cfg = {
	    .tracker = tracker,
	    .key = key,
	    .timeout = timeout,
	    .io_timeout_ms = timeout_ms,
	    .grant_timeout_ms = timeout_ms,
	};
	struct tvmrpc_client *cl = NULL;
	struct npufarm_err err;

	ck_assert_msg(tvmrpc_client_open(&cfg, &cl, &err) == 0, "%s", err.msg);
	ck_assert_msg(
	    tvmrpc_client_init(cl, timeout_ms, &err) == 0, "%s", err.msg);
	return cl;
}

/* End @cl's session cleanly (kShutdown) and free it. */
void
harness_tvm_done(struct tvmrpc_client *cl)
{
	(void)tvmrpc_client_shutdown(cl);
	tvmrpc_client_free(cl);
}

/* The remote handle of global function @name, asked over @cl. */
uint64_t
harness_tvm_func(struct tvmrpc_client *cl, const char *name, int timeout_ms)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	struct npufarm_err err;

	ck_assert_int_eq(tvmrpc_msg_get_global_func(&m, name), 0);
	ck_assert_msg(tvmrpc_client_call(cl, &m, timeout_ms, &p, &err) == 0,
	    "%s", err.msg);
	ck_assert_int_eq(p.code, TVMRPC_RETURN);
	ck_assert_int_eq(p.body_len, 16);
	return frame_get_le64(p.body + 8);
}

/*
 * Run @base's loop without blocking until @done(@arg) (NULL: never) or
 * @ms pass; whether it came true.  For unit tests that drive a module's
 * own event base on loopback.
 */
bool
harness_spin(struct event_base *base, bool (*done)(void *), void *arg, int ms)
{
	struct timespec t0, t;

	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		(void)event_base_loop(base, EVLOOP_NONBLOCK);
		if (done != NULL && done(arg))
			return true;
		(void)clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 +
			(t.tv_nsec - t0.tv_nsec) / 1000000 >=
		    ms)
			return false;
		(void)poll(NULL, 0, 2);
	}
}

/* A TCP connection to 127.0.0.1:@port, connected (a check fails if not). */
int
harness_loopback(int port)
{
	struct sockaddr_in sin = {0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}
