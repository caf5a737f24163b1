/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The npufarm CLI's job commands (submit, wait, jobs, show, cancel,
 * history) against a fake broker: an evhttp server in a thread of the
 * test that answers the routes of docs/api.md "Native tuning jobs" with
 * canned replies and records every request it gets (method, URI,
 * Content-Type, body), so the tests check what the real CLI sent as well
 * as what it printed and its exit status.  history --db reads a sqlite
 * ledger made here with the schema 5 tables.
 */
#include "config.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <sqlite3.h>

#include "harness.h"

#define CLI_TIMEOUT_MS 20000
#define MAX_REQS       64

/* One request the fake broker received. */
struct fake_req {
	char method[8];
	char *uri;   /* malloc'd */
	char *ctype; /* malloc'd, "" when none */
	char *body;  /* malloc'd, NUL-terminated */
	size_t len;
};

/* The fake broker: its loop runs in its own thread. */
static struct {
	struct event_base *base;
	struct evhttp *http;
	struct event *stop_ev;
	int stop_pipe[2];
	pthread_t thread;
	int port;
	pthread_mutex_t lock; /* guards reqs, nreqs and present */
	struct fake_req reqs[MAX_REQS];
	size_t nreqs;
	char present[8][65]; /* artifacts the broker has */
	size_t npresent;
} fake;

static char dir[256];
static char url[64];

/* What one run of the CLI did. */
struct run {
	int status;
	char *out, *err;
};

static const char job12_running[] =
    "{\"id\": 12, \"key\": \"rk3588\", \"user\": \"alice\", "
    "\"priority\": 0, \"state\": \"running\", "
    "\"submitted\": \"2026-11-25T10:00:00.000000Z\", \"finished\": null, "
    "\"tasks\": {\"total\": 3, \"queued\": 1, \"running\": 1, \"ok\": 1}";

static const char job12_done[] =
    "{\"id\": 12, \"key\": \"rk3588\", \"user\": \"alice\", "
    "\"priority\": 0, \"state\": \"done\", "
    "\"submitted\": \"2026-11-25T10:00:00.000000Z\", "
    "\"finished\": \"2026-11-25T10:01:00.000000Z\", "
    "\"tasks\": {\"total\": 3, \"ok\": 3}";

/* tile=16 has the lowest median; tile=32 the lowest single cost. */
static const char job12_tasks[] =
    ", \"task_list\": ["
    "{\"index\": 0, \"name\": \"tile=8\", \"state\": \"done\", "
    "\"outcome\": \"ok\", \"attempts\": 1, \"board\": \"rk3588-01\", "
    "\"costs\": [0.003, 0.0031, 0.0029], \"number\": 10, \"detail\": null},"
    "{\"index\": 1, \"name\": \"tile=16\", \"state\": \"done\", "
    "\"outcome\": \"ok\", \"attempts\": 1, \"board\": \"rk3588-02\", "
    "\"costs\": [0.0021, 0.0019, 0.002], \"number\": 10, \"detail\": null},"
    "{\"index\": 2, \"name\": \"tile=32\", \"state\": \"done\", "
    "\"outcome\": \"ok\", \"attempts\": 1, \"board\": \"rk3588-01\", "
    "\"costs\": [0.0025, 0.0018, 0.0026], \"number\": 10, "
    "\"detail\": null}]}";

static const char job13_done[] =
    "{\"id\": 13, \"key\": \"rk3588\", \"user\": \"bob\", \"priority\": 1, "
    "\"state\": \"done\", \"submitted\": \"2026-11-25T11:00:00.000000Z\", "
    "\"finished\": \"2026-11-25T11:00:05.000000Z\", "
    "\"tasks\": {\"total\": 2, \"ok\": 1, \"crash\": 1}";

static const char job13_tasks[] =
    ", \"task_list\": ["
    "{\"index\": 0, \"name\": \"good\", \"state\": \"done\", "
    "\"outcome\": \"ok\", \"attempts\": 1, \"board\": \"rk3588-01\", "
    "\"costs\": [0.5], \"number\": 1, \"detail\": null},"
    "{\"index\": 1, \"name\": \"bad\", \"state\": \"done\", "
    "\"outcome\": \"crash\", \"attempts\": 1, \"board\": \"rk3588-02\", "
    "\"costs\": null, \"number\": null, "
    "\"detail\": \"SIGSEGV (signal 11)\"}]}";

static const char leases_reply[] =
    "{\"leases\": [{\"id\": 7, \"key\": \"rk3588\", \"user\": \"carol\", "
    "\"peer\": \"127.0.0.1:5000\", \"priority\": 1, \"board_id\": 1, "
    "\"board\": \"rk3588-01\", \"requested_at\": "
    "\"2026-11-25T10:30:00.000000Z\", \"granted_at\": "
    "\"2026-11-25T10:30:00.100000Z\", \"released_at\": "
    "\"2026-11-25T10:30:02.100000Z\", \"wait_seconds\": 0.1, "
    "\"held_seconds\": 2.0, \"outcome\": \"ok\", \"detail\": null}]}";

static void
sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	ck_assert_int_eq(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
	for (i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * n] = '\0';
}

static void reply(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply(struct evhttp_request *req, int code, const char *fmt, ...)
{
	struct evbuffer *b = evbuffer_new();
	va_list ap;

	va_start(ap, fmt);
	(void)evbuffer_add_vprintf(b, fmt, ap);
	va_end(ap);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, code, code < 300 ? "OK" : "Error", b);
	evbuffer_free(b);
}

static bool
fake_has(const char *sha)
{
	size_t i;

	for (i = 0; i < fake.npresent; i++)
		if (strcmp(fake.present[i], sha) == 0)
			return true;
	return false;
}

/* Record @req and answer it as docs/api.md says. */
static void
fake_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *uri = evhttp_request_get_uri(req), *ct;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	size_t len = evbuffer_get_length(in);
	struct fake_req *r;
	char sha[65];
	bool has;

	pthread_mutex_lock(&fake.lock);
	ck_assert_uint_lt(fake.nreqs, MAX_REQS);
	r = &fake.reqs[fake.nreqs++];
	(void)snprintf(r->method, sizeof(r->method), "%s",
	    cmd == EVHTTP_REQ_GET    ? "GET"
	    : cmd == EVHTTP_REQ_HEAD ? "HEAD"
	    : cmd == EVHTTP_REQ_PUT  ? "PUT"
	    : cmd == EVHTTP_REQ_POST ? "POST"
				     : "OTHER");
	r->uri = strdup(uri);
	ct = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "Content-Type");
	r->ctype = strdup(ct != NULL ? ct : "");
	r->body = malloc(len + 1);
	(void)evbuffer_copyout(in, r->body, len);
	r->body[len] = '\0';
	r->len = len;
	pthread_mutex_unlock(&fake.lock);

	if (strncmp(uri, "/v1/artifacts/", 14) == 0) {
		pthread_mutex_lock(&fake.lock);
		has = fake_has(uri + 14);
		if (cmd == EVHTTP_REQ_PUT) {
			sha256_hex(r->body, len, sha);
			if (strcmp(sha, uri + 14) != 0) {
				pthread_mutex_unlock(&fake.lock);
				reply(req, 400,
				    "{\"error\": \"sha256 mismatch\"}");
				return;
			}
			if (!has)
				(void)snprintf(fake.present[fake.npresent++],
				    65, "%s", sha);
		}
		pthread_mutex_unlock(&fake.lock);
		if (cmd == EVHTTP_REQ_HEAD)
			evhttp_send_reply(req, has ? 200 : 404,
			    has ? "OK" : "Not Found", NULL);
		else if (cmd == EVHTTP_REQ_PUT)
			reply(
			    req, has ? 200 : 201, "{\"sha256\": \"%s\"}", sha);
		else
			reply(req, 405, "{\"error\": \"method\"}");
	} else if (cmd == EVHTTP_REQ_POST && strcmp(uri, "/v1/jobs") == 0) {
		reply(req, 201,
		    "{\"id\": 12, \"tasks\": 3, \"state\": \"queued\"}");
	} else if (strncmp(uri, "/v1/jobs/12/wait?", 17) == 0) {
		if (strstr(uri, "after=0&") != NULL)
			reply(req, 200, "%s, \"seq\": 1, \"done\": false}",
			    job12_running);
		else
			reply(req, 200, "%s, \"seq\": 2, \"done\": true}",
			    job12_done);
	} else if (strncmp(uri, "/v1/jobs/13/wait?", 17) == 0) {
		reply(req, 200, "%s, \"seq\": 5, \"done\": true}", job13_done);
	} else if (strcmp(uri, "/v1/jobs/12") == 0) {
		reply(req, 200, "%s%s", job12_done, job12_tasks);
	} else if (strcmp(uri, "/v1/jobs/13") == 0) {
		reply(req, 200, "%s%s", job13_done, job13_tasks);
	} else if (cmd == EVHTTP_REQ_POST &&
		   strcmp(uri, "/v1/jobs/12/cancel") == 0) {
		reply(req, 200, "{\"id\": 12, \"cancelled\": 2}");
	} else if (strncmp(uri, "/v1/jobs?", 9) == 0) {
		reply(req, 200, "{\"jobs\": [%s}, %s}]}", job13_done,
		    job12_running);
	} else if (strncmp(uri, "/v1/leases?", 11) == 0) {
		reply(req, 200, "%s", leases_reply);
	} else {
		reply(req, 404, "{\"error\": \"no such job\"}");
	}
}

static void
fake_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(fake.base);
}

static void *
fake_main(void *arg)
{
	(void)event_base_dispatch(fake.base);
	return NULL;
}

static void
fake_start(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	memset(&fake, 0, sizeof(fake));
	pthread_mutex_init(&fake.lock, NULL);
	fake.base = event_base_new();
	fake.http = evhttp_new(fake.base);
	ck_assert_ptr_nonnull(fake.http);
	evhttp_set_allowed_methods(fake.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
						  EVHTTP_REQ_PUT |
						  EVHTTP_REQ_HEAD);
	evhttp_set_gencb(fake.http, fake_cb, NULL);
	bs = evhttp_bind_socket_with_handle(fake.http, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(bs);
	ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(bs),
			     (struct sockaddr *)&sin, &slen),
	    0);
	fake.port = ntohs(sin.sin_port);
	ck_assert_int_eq(pipe(fake.stop_pipe), 0);
	fake.stop_ev = event_new(
	    fake.base, fake.stop_pipe[0], EV_READ, fake_stop_cb, NULL);
	(void)event_add(fake.stop_ev, NULL);
	ck_assert_int_eq(
	    pthread_create(&fake.thread, NULL, fake_main, NULL), 0);
	(void)snprintf(url, sizeof(url), "http://127.0.0.1:%d", fake.port);
}

static void
fake_stop(void)
{
	size_t i;

	ck_assert_int_eq(write(fake.stop_pipe[1], "x", 1), 1);
	ck_assert_int_eq(pthread_join(fake.thread, NULL), 0);
	event_free(fake.stop_ev);
	evhttp_free(fake.http);
	event_base_free(fake.base);
	close(fake.stop_pipe[0]);
	close(fake.stop_pipe[1]);
	for (i = 0; i < fake.nreqs; i++) {
		free(fake.reqs[i].uri);
		free(fake.reqs[i].ctype);
		free(fake.reqs[i].body);
	}
}

static void
setup(void)
{
	(void)snprintf(dir, sizeof(dir), "/tmp/npufarm-cli-jobs-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	fake_start();
}

static void
teardown(void)
{
	char cmd[300];

	fake_stop();
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Write @text to @name in the test dir; the path into @path. */
static void
put_file(const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	(void)snprintf(path, len, "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

static char *
read_all(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r"), *m = open_memstream(&buf, &len);
	int c;

	ck_assert_ptr_nonnull(f);
	while ((c = fgetc(f)) != EOF)
		(void)fputc(c, m);
	fclose(f);
	fclose(m);
	return buf;
}

/* Run the CLI with the NULL-terminated arguments after argv[0]. */
static void
run(struct run *r, ...)
{
	const char *bin = getenv("NPUFARM_CLI_BIN"), *argv[40];
	char outp[300], errp[300];
	int n = 0, status = 0, i;
	va_list ap;
	pid_t pid;

	ck_assert_msg(bin != NULL, "NPUFARM_CLI_BIN is not set");
	argv[n++] = bin;
	va_start(ap, r);
	while (n < 39 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	(void)snprintf(outp, sizeof(outp), "%s/out", dir);
	(void)snprintf(errp, sizeof(errp), "%s/err", dir);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(126);
		unsetenv("NPUFARM_BROKER");
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < CLI_TIMEOUT_MS / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		usleep(10000);
	}
	if (i == CLI_TIMEOUT_MS / 10) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		ck_abort_msg("npufarm did not exit");
	}
	r->status =
	    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r->out = read_all(outp);
	r->err = read_all(errp);
}

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* A copy of the @i-th recorded request (the CLI has exited by then). */
static struct fake_req *
req_at(size_t i)
{
	struct fake_req *r;

	pthread_mutex_lock(&fake.lock);
	r = i < fake.nreqs ? &fake.reqs[i] : NULL;
	pthread_mutex_unlock(&fake.lock);
	ck_assert_msg(r != NULL, "no request %zu (got %zu)", i, fake.nreqs);
	return r;
}

static size_t
nreqs(void)
{
	size_t n;

	pthread_mutex_lock(&fake.lock);
	n = fake.nreqs;
	pthread_mutex_unlock(&fake.lock);
	return n;
}

static void
assert_req(size_t i, const char *method, const char *uri)
{
	struct fake_req *r = req_at(i);

	ck_assert_str_eq(r->method, method);
	ck_assert_str_eq(r->uri, uri);
}

/*
 * A spec naming two files by path, one of them twice, plus a task with
 * an artifact by hash: the broker already has b.so, so only a.so is
 * uploaded, once, and the POSTed job carries hashes only.
 */
START_TEST(test_submit_uploads_only_missing)
{
	char a[300], b[300], spec[300], sha_a[65], sha_b[65], text[2048],
	    uri[128];
	json_t *job, *tasks;
	struct fake_req *r;
	struct run res;

	put_file("a.so", "kernel A bytes", a, sizeof(a));
	put_file("b.so", "kernel B bytes", b, sizeof(b));
	sha256_hex("kernel A bytes", 14, sha_a);
	sha256_hex("kernel B bytes", 14, sha_b);
	(void)snprintf(fake.present[fake.npresent++], 65, "%s", sha_b);
	(void)snprintf(text, sizeof(text),
	    "{\"key\": \"rk3588\", \"user\": \"alice\", \"tasks\": ["
	    "{\"runner\": \"kernel\", \"artifact_file\": \"a.so\", "
	    "\"entry\": \"matmul\", \"name\": \"a1\"},"
	    "{\"runner\": \"kernel\", \"artifact_file\": \"b.so\", "
	    "\"name\": \"b\"},"
	    "{\"runner\": \"kernel\", \"artifact_file\": \"%s\", "
	    "\"name\": \"a2\"},"
	    "{\"runner\": \"kernel\", \"artifact\": \"%s\", \"name\": \"h\"}]}",
	    a, sha_b);
	put_file("spec.json", text, spec, sizeof(spec));

	run(&res, "--broker", url, "submit", spec, NULL);
	ck_assert_msg(res.status == 0, "stderr: %s", res.err);
	ck_assert_str_eq(res.out, "12\n");
	ck_assert_ptr_nonnull(strstr(res.err, "uploading"));

	ck_assert_uint_eq(nreqs(), 4);
	(void)snprintf(uri, sizeof(uri), "/v1/artifacts/%s", sha_a);
	assert_req(0, "HEAD", uri);
	assert_req(1, "PUT", uri);
	r = req_at(1);
	ck_assert_uint_eq(r->len, 14);
	ck_assert_str_eq(r->body, "kernel A bytes");
	ck_assert_str_eq(r->ctype, "application/octet-stream");
	(void)snprintf(uri, sizeof(uri), "/v1/artifacts/%s", sha_b);
	assert_req(2, "HEAD", uri);
	assert_req(3, "POST", "/v1/jobs");
	r = req_at(3);
	ck_assert_str_eq(r->ctype, "application/json");
	job = json_loads(r->body, 0, NULL);
	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(
	    json_string_value(json_object_get(job, "key")), "rk3588");
	tasks = json_object_get(job, "tasks");
	ck_assert_uint_eq(json_array_size(tasks), 4);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_array_get(tasks, 0), "artifact")),
	    sha_a);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_array_get(tasks, 1), "artifact")),
	    sha_b);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_array_get(tasks, 2), "artifact")),
	    sha_a);
	ck_assert_ptr_null(
	    json_object_get(json_array_get(tasks, 0), "artifact_file"));
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_array_get(tasks, 0), "entry")),
	    "matmul");
	json_decref(job);
	run_free(&res);

	/* Again: everything is there now, so no PUT; --json prints the
	 * broker's reply. */
	run(&res, "--broker", url, "--json", "submit", spec, NULL);
	ck_assert_msg(res.status == 0, "stderr: %s", res.err);
	ck_assert_ptr_nonnull(strstr(res.out, "\"id\": 12"));
	ck_assert_uint_eq(nreqs(), 7);
	ck_assert_str_eq(req_at(4)->method, "HEAD");
	ck_assert_str_eq(req_at(5)->method, "HEAD");
	ck_assert_str_eq(req_at(6)->method, "POST");
	run_free(&res);
}
END_TEST

/* The sweep flags: 2 kernels x 2 tiles, each point a named task. */
START_TEST(test_submit_sweep_flags)
{
	char k1[300], k2[300];
	json_t *job, *t, *arg;
	struct run res;

	put_file("mm_t8.so", "eight", k1, sizeof(k1));
	put_file("mm_t16.so", "sixteen", k2, sizeof(k2));
	run(&res, "--broker", url, "submit", "--key", "rk3588", "--user", "u1",
	    "--priority", "3", "--queue-timeout", "60", "--kernel", k1,
	    "--kernel", k2, "--entry", "matmul", "--arg",
	    "float32:64x32:random=7", "--arg", "float32:32x64:ones", "--arg",
	    "int32={unroll}", "--sweep", "unroll=1,4", "--number", "5",
	    "--repeat", "3", "--min-repeat-ms", "20", "--cooldown-ms", "1",
	    "--timeout", "2.5", NULL);
	ck_assert_msg(res.status == 0, "stderr: %s", res.err);
	ck_assert_str_eq(res.out, "12\n");
	/* Two HEADs and two PUTs, then the job. */
	ck_assert_uint_eq(nreqs(), 5);
	assert_req(4, "POST", "/v1/jobs");
	job = json_loads(req_at(4)->body, 0, NULL);
	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(json_string_value(json_object_get(job, "user")), "u1");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(job, "priority")), 3);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(job, "queue_timeout")), 60);
	ck_assert_uint_eq(json_array_size(json_object_get(job, "tasks")), 4);
	t = json_array_get(json_object_get(job, "tasks"), 3);
	ck_assert_str_eq(
	    json_string_value(json_object_get(t, "name")), "mm_t16 unroll=4");
	ck_assert(json_real_value(json_object_get(t, "timeout")) == 2.5);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(
		json_object_get(t, "measurement"), "min_repeat_ms")),
	    20);
	arg = json_array_get(json_object_get(t, "args"), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(arg, "value")), 4);
	arg = json_array_get(json_object_get(t, "args"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(arg, "fill"), "random")),
	    7);
	json_decref(job);
	run_free(&res);
}
END_TEST

/* A bad spec is refused before anything is sent. */
START_TEST(test_submit_bad_spec_sends_nothing)
{
	char a[300], spec[300];
	struct run res;

	put_file("a.so", "A", a, sizeof(a));
	put_file("spec.json",
	    "{\"key\": \"rk3588\", \"tasks\": [{\"runner\": \"kernel\", "
	    "\"artifact_file\": \"a.so\", \"args\": [{\"dtype\": \"flaot32\", "
	    "\"shape\": [4]}]}]}",
	    spec, sizeof(spec));
	run(&res, "--broker", url, "submit", spec, NULL);
	ck_assert_int_eq(res.status, 1);
	ck_assert_msg(strstr(res.err, "tasks[0].args[0].dtype") != NULL,
	    "stderr: %s", res.err);
	run_free(&res);
	put_file("spec.json",
	    "{\"key\": \"rk3588\", \"tasks\": [{\"runner\": \"kernel\", "
	    "\"artifact_file\": \"missing.so\"}]}",
	    spec, sizeof(spec));
	run(&res, "--broker", url, "submit", spec, NULL);
	ck_assert_int_eq(res.status, 1);
	ck_assert_msg(strstr(res.err, "tasks[0].artifact_file") != NULL,
	    "stderr: %s", res.err);
	run_free(&res);
	run(&res, "--broker", url, "submit", spec, "--kernel", a, NULL);
	ck_assert_int_eq(res.status, 2);
	run_free(&res);
	run(&res, "--broker", url, "submit", "--help", NULL);
	ck_assert_int_eq(res.status, 0);
	ck_assert_str_eq(res.err, "");
	ck_assert_ptr_nonnull(strstr(res.out, "--sweep NAME=V1,V2"));
	run_free(&res);
	ck_assert_uint_eq(nreqs(), 0);
}
END_TEST

/* Every task ok: progress lines, the table, the best median, exit 0. */
START_TEST(test_wait_all_ok)
{
	struct run res;

	run(&res, "--broker", url, "wait", "12", NULL);
	ck_assert_msg(res.status == 0, "stderr: %s", res.err);
	ck_assert_msg(strstr(res.out, "job 12 running: 1/3 finished (ok 1), "
				      "1 running, 1 queued\n") != NULL,
	    "%s", res.out);
	ck_assert_ptr_nonnull(strstr(res.out,
	    "job 12 done: 3/3 finished (ok 3), 0 running, 0 queued\n"));
	ck_assert_ptr_nonnull(strstr(res.out, "NAME"));
	ck_assert_ptr_nonnull(strstr(res.out, "tile=32"));
	ck_assert_msg(strstr(res.out, "best: task 1 (tile=16), median 2.00ms "
				      "(best 1.90ms) on rk3588-02\n") != NULL,
	    "%s", res.out);
	/* No terminal: no escape sequences. */
	ck_assert_ptr_null(strchr(res.out, '\033'));
	ck_assert_ptr_null(strchr(res.out, '\r'));
	ck_assert_uint_eq(nreqs(), 3);
	assert_req(0, "GET", "/v1/jobs/12/wait?after=0&timeout=30");
	assert_req(1, "GET", "/v1/jobs/12/wait?after=1&timeout=30");
	assert_req(2, "GET", "/v1/jobs/12");
	run_free(&res);
}
END_TEST

/* A crash among the tasks: exit 1, the detail shown; --json the job. */
START_TEST(test_wait_failed_task_exits_1)
{
	json_t *job;
	struct run res;

	run(&res, "--broker", url, "wait", "13", NULL);
	ck_assert_int_eq(res.status, 1);
	ck_assert_ptr_nonnull(strstr(res.out, "SIGSEGV (signal 11)"));
	ck_assert_ptr_nonnull(strstr(res.out, "best: task 0 (good)"));
	run_free(&res);
	run(&res, "--broker", url, "--json", "wait", "13", NULL);
	ck_assert_int_eq(res.status, 1);
	job = json_loads(res.out, 0, NULL);
	ck_assert_msg(job != NULL, "not JSON: %s", res.out);
	ck_assert_uint_eq(
	    json_array_size(json_object_get(job, "task_list")), 2);
	json_decref(job);
	run_free(&res);
}
END_TEST

/* No broker: 3.  Bad command lines: 2.  An unknown job: 1. */
START_TEST(test_wait_exit_codes)
{
	char dead[64];
	struct run res;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	(void)snprintf(
	    dead, sizeof(dead), "http://127.0.0.1:%d", ntohs(sin.sin_port));
	close(fd);
	run(&res, "--broker", dead, "wait", "12", NULL);
	ck_assert_int_eq(res.status, 3);
	ck_assert_ptr_nonnull(strstr(res.err, "cannot reach the broker"));
	run_free(&res);
	run(&res, "--broker", url, "wait", NULL);
	ck_assert_int_eq(res.status, 2);
	run_free(&res);
	run(&res, "--broker", url, "wait", "twelve", NULL);
	ck_assert_int_eq(res.status, 2);
	run_free(&res);
	run(&res, "--broker", url, "wait", "--reconnect", "x", "12", NULL);
	ck_assert_int_eq(res.status, 2);
	run_free(&res);
	run(&res, "--broker", url, "wait", "99", NULL);
	ck_assert_int_eq(res.status, 1);
	ck_assert_ptr_nonnull(strstr(res.err, "no such job"));
	run_free(&res);
}
END_TEST

START_TEST(test_jobs_show_cancel)
{
	json_t *v;
	struct run res;

	run(&res, "--broker", url, "jobs", "--state", "running", "--user",
	    "al ice", "--limit", "5", NULL);
	ck_assert_msg(res.status == 0, "stderr: %s", res.err);
	assert_req(0, "GET", "/v1/jobs?limit=5&state=running&user=al%20ice");
	ck_assert_ptr_nonnull(strstr(res.out, "OUTCOMES"));
	ck_assert_msg(
	    strstr(res.out, "2/2  ok 1, crash 1") != NULL, "%s", res.out);
	ck_assert_ptr_nonnull(strstr(res.out, "1/3  ok 1"));
	run_free(&res);
	run(&res, "--broker", url, "jobs", "--state", "sleeping", NULL);
	ck_assert_int_eq(res.status, 2);
	run_free(&res);

	run(&res, "--broker", url, "show", "12", NULL);
	ck_assert_msg(res.status == 0, "stderr: %s", res.err);
	ck_assert_ptr_nonnull(strstr(res.out, "state      done\n"));
	ck_assert_ptr_nonnull(strstr(res.out, "best: task 1 (tile=16)"));
	ck_assert_ptr_nonnull(strstr(res.out, "3 tasks, 3 finished: ok 3\n"));
	run_free(&res);
	run(&res, "--broker", url, "show", "--json", "12", NULL);
	ck_assert_int_eq(res.status, 0);
	v = json_loads(res.out, 0, NULL);
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(json_integer_value(json_object_get(v, "id")), 12);
	json_decref(v);
	run_free(&res);

	run(&res, "--broker", url, "cancel", "12", NULL);
	ck_assert_msg(res.status == 0, "stderr: %s", res.err);
	ck_assert_str_eq(res.out, "job 12: 2 tasks cancelled\n");
	assert_req(nreqs() - 1, "POST", "/v1/jobs/12/cancel");
	run_free(&res);
	run(&res, "--broker", url, "cancel", "99", NULL);
	ck_assert_int_eq(res.status, 1);
	run_free(&res);
}
END_TEST

/* history from the API: jobs and leases in one timeline, newest first. */
START_TEST(test_history_api)
{
	char buf[4096];
	const char *j13, *l7, *j12;
	struct run res;

	run(&res, "--broker", url, "history", NULL);
	ck_assert_msg(res.status == 0, "stderr: %s", res.err);
	(void)snprintf(buf, sizeof(buf), "%s", res.out);
	j13 = strstr(buf, "2026-11-25 11:00:00  job");
	l7 = strstr(buf, "2026-11-25 10:30:00  lease");
	j12 = strstr(buf, "2026-11-25 10:00:00  job");
	ck_assert_msg(j13 && l7 && j12 && j13 < l7 && l7 < j12, "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "rk3588-01, held 2.0s"));
	ck_assert_ptr_nonnull(strstr(buf, "2 tasks: ok 1, crash 1"));
	run_free(&res);
}
END_TEST

static void
sql(sqlite3 *db, const char *s)
{
	char *msg = NULL;

	ck_assert_msg(sqlite3_exec(db, s, NULL, NULL, &msg) == SQLITE_OK,
	    "%s: %s", s, msg != NULL ? msg : "");
}

/* A ledger with leases (and the v5 jobs tables when @jobs). */
static void
make_ledger(const char *path, bool jobs)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	sql(db, "CREATE TABLE boards (id INTEGER PRIMARY KEY, kind TEXT, "
		"key TEXT, address TEXT, name TEXT, state TEXT, "
		"first_seen_us INTEGER, last_seen_us INTEGER, detail TEXT);"
		"CREATE TABLE leases (id INTEGER PRIMARY KEY, key TEXT, "
		"user TEXT, peer TEXT, priority REAL, requested_us INTEGER, "
		"granted_us INTEGER, released_us INTEGER, board_id INTEGER, "
		"matchkey TEXT, outcome TEXT, detail TEXT);"
		"INSERT INTO boards VALUES (1, 'agent', 'rk3588', 'b1', "
		"'rk3588-01', 'idle', 0, 0, NULL);"
		"INSERT INTO leases VALUES (7, 'rk3588', 'carol', "
		"'127.0.0.1:5000', 1, 1795600000000000, 1795600000100000, "
		"1795600002100000, 1, 'm', 'ok', NULL);");
	if (jobs)
		sql(db,
		    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, key TEXT, "
		    "user TEXT, priority INTEGER, queue_timeout REAL, "
		    "state TEXT, submitted_us INTEGER, finished_us INTEGER);"
		    "CREATE TABLE tasks (id INTEGER PRIMARY KEY, job_id "
		    "INTEGER, idx INTEGER, name TEXT, spec TEXT, state TEXT, "
		    "outcome TEXT, attempts INTEGER, board_id INTEGER, "
		    "costs TEXT, detail TEXT, queued_us INTEGER, "
		    "started_us INTEGER, finished_us INTEGER);"
		    "INSERT INTO jobs VALUES (3, 'rk3588', 'dave', 0, 600, "
		    "'running', 1795600100000000, NULL);"
		    "INSERT INTO tasks VALUES (1, 3, 0, 't0', '{}', 'done', "
		    "'ok', 1, 1, '[0.1]', NULL, 0, 0, 0),"
		    "(2, 3, 1, 't1', '{}', 'done', 'timeout', 1, 1, NULL, "
		    "'timed out', 0, 0, 0),"
		    "(3, 3, 2, 't2', '{}', 'queued', NULL, 0, NULL, NULL, "
		    "NULL, 0, NULL, NULL);");
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/* history --db reads the ledger read-only, with or without jobs. */
START_TEST(test_history_db)
{
	char db[300], db4[300];
	json_t *v, *job;
	struct run res;

	(void)snprintf(db, sizeof(db), "%s/v5.db", dir);
	(void)snprintf(db4, sizeof(db4), "%s/v4.db", dir);
	make_ledger(db, true);
	make_ledger(db4, false);

	run(&res, "history", "--db", db, NULL);
	ck_assert_msg(res.status == 0, "stderr: %s", res.err);
	ck_assert_msg(strstr(res.out, "job     3  rk3588  dave   running  "
				      "3 tasks: ok 1, timeout 1") != NULL,
	    "%s", res.out);
	ck_assert_ptr_nonnull(strstr(res.out, "lease   7  rk3588  carol  ok"));
	ck_assert_str_eq(res.err, "");
	run_free(&res);

	run(&res, "--json", "history", "--db", db, NULL);
	ck_assert_int_eq(res.status, 0);
	v = json_loads(res.out, 0, NULL);
	ck_assert_ptr_nonnull(v);
	job = json_array_get(json_object_get(v, "jobs"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(job, "tasks"), "queued")),
	    1);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_array_get(json_object_get(v, "leases"), 0),
			     "requested_at")),
	    "2026-11-25T09:46:40.000000Z");
	json_decref(v);
	run_free(&res);

	run(&res, "history", "--db", db4, NULL);
	ck_assert_int_eq(res.status, 0);
	ck_assert_ptr_nonnull(strstr(res.err, "leases only"));
	ck_assert_ptr_nonnull(strstr(res.out, "lease"));
	ck_assert_ptr_null(strstr(res.out, "job "));
	run_free(&res);

	run(&res, "history", "--db", "/nonexistent/x.db", NULL);
	ck_assert_int_eq(res.status, 1);
	run_free(&res);
	/* Read-only: nothing was created. */
	ck_assert_int_ne(access("/nonexistent/x.db", F_OK), 0);
}
END_TEST

static Suite *
cli_jobs_suite(void)
{
	Suite *s = suite_create("cli-jobs");
	TCase *tc = tcase_create("fake_broker");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_submit_uploads_only_missing);
	tcase_add_test(tc, test_submit_sweep_flags);
	tcase_add_test(tc, test_submit_bad_spec_sends_nothing);
	tcase_add_test(tc, test_wait_all_ok);
	tcase_add_test(tc, test_wait_failed_task_exits_1);
	tcase_add_test(tc, test_wait_exit_codes);
	tcase_add_test(tc, test_jobs_show_cancel);
	tcase_add_test(tc, test_history_api);
	tcase_add_test(tc, test_history_db);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(cli_jobs_suite());
}
