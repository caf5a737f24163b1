/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Access control with the real broker, agent and CLI on loopback: the
 * agent token (a wrong or missing one is refused, and both logs say why),
 * the API tokens and their scopes (401 / 403 / 200, the CLI's
 * --token-file and $NPUFARM_TOKEN_FILE), the allow-list (a loopback
 * tracker or proxy peer refused while agents still link and offer their
 * boards), SIGHUP reloading tokens, limits and the allow-list without a
 * restart, and the warning for an exposed, unlocked broker.
 */
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include <npufarm/protocol.h>

#include "harness.h"

#define WAIT_MS 20000

static struct harness_broker b;
static char tokdir[64];

static void
setup(void)
{
	(void)snprintf(tokdir, sizeof(tokdir), "/tmp/npufarm-tok-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tokdir));
}

static void
teardown(void)
{
	char cmd[128];

	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tokdir);
	(void)!system(cmd);
}

/* Write @text to TOKDIR/@name (0600); returns the path (static, 4 slots). */
static const char *
tokfile(const char *name, const char *text)
{
	static char paths[4][128];
	static int next;
	char *p = paths[next++ % 4], tmp[140];
	FILE *f;

	(void)snprintf(p, 128, "%s/%s", tokdir, name);
	(void)snprintf(tmp, sizeof(tmp), "%s.new", p);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(tmp, 0600), 0);
	ck_assert_int_eq(rename(tmp, p), 0);
	return p;
}

static void
sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

static int
file_contains(const char *path, const char *needle)
{
	char *buf;
	size_t n;
	FILE *f = fopen(path, "r");
	int found;

	if (f == NULL)
		return 0;
	buf = malloc(1 << 20);
	ck_assert_ptr_nonnull(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[n] = '\0';
	found = strstr(buf, needle) != NULL;
	free(buf);
	return found;
}

static void
wait_file(const char *path, const char *needle)
{
	int i;

	for (i = 0; i < WAIT_MS / 20 && !file_contains(path, needle); i++)
		sleep_ms(20);
	ck_assert_msg(file_contains(path, needle), "'%s' never appeared in %s",
	    needle, path);
}

static pid_t
agent_start(const char *name, const char *token_file, bool tvm, char *log,
    size_t loglen)
{
	const char *bin = getenv("NPUFARM_AGENT_BIN");
	const char *argv[16] = {
	    bin, "--broker", b.farm, "--key", "rk3588", "--name", name, "-v"};
	size_t n = 8;

	ck_assert_msg(bin != NULL, "NPUFARM_AGENT_BIN is not set");
	if (token_file != NULL) {
		argv[n++] = "--token-file";
		argv[n++] = token_file;
	}
	if (tvm) {
		argv[n++] = "--tvm-runtime";
		argv[n++] = getenv("NPUFARM_FAKE_TVM");
		ck_assert_ptr_nonnull(argv[n - 1]);
	}
	argv[n] = NULL;
	(void)snprintf(log, loglen, "%s/agent-%s.log", b.dir, name);
	return harness_spawn(bin, argv, log);
}

/* Wait until the ledger has agent board @name in @state. */
static void
wait_state(const char *name, const char *state)
{
	char sql[256], want[64], *row = NULL;
	int i;

	(void)snprintf(sql, sizeof(sql),
	    "SELECT state FROM boards WHERE kind = 'agent' AND name = '%s'",
	    name);
	(void)snprintf(want, sizeof(want), "%s\n", state);
	for (i = 0; i < WAIT_MS / 20; i++) {
		free(row);
		row = harness_sql(b.db, sql);
		if (strcmp(row, want) == 0)
			break;
		sleep_ms(20);
	}
	ck_assert_msg(strcmp(row, want) == 0, "board %s is '%s', not %s", name,
	    row, state);
	free(row);
}

static int
dial(const char *hostport)
{
	struct addrinfo hints = {0}, *res;
	char host[64], *port;
	int fd;

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
	return fd;
}

/*
 * One HTTP/1.0 request with an optional Authorization header value.
 * Returns the whole response (headers and body), malloc'd; *@ret_status.
 */
static char *
http_body(const char *method, const char *path, const char *auth,
    const char *body, int *ret_status)
{
	char req[4096], *buf;
	size_t len = 0, cap = 1 << 20;
	ssize_t n;
	int fd = dial(b.http);

	n = snprintf(req, sizeof(req),
	    "%s %s HTTP/1.0\r\nHost: %s\r\n%s%s%sContent-Length: %zu\r\n"
	    "\r\n%s",
	    method, path, b.http, auth ? "Authorization: " : "",
	    auth ? auth : "", auth ? "\r\n" : "", body ? strlen(body) : 0,
	    body ? body : "");
	ck_assert_int_lt(n, (ssize_t)sizeof(req));
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	while ((n = read(fd, buf + len, cap - len - 1)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", ret_status), 1);
	return buf;
}

static char *
http(const char *method, const char *path, const char *auth, int *ret_status)
{
	return http_body(method, path, auth, NULL, ret_status);
}

static int
status_of(const char *method, const char *path, const char *auth)
{
	int status;

	free(http(method, path, auth, &status));
	return status;
}

/* Run the CLI with @args (NULL-terminated) and $NPUFARM_TOKEN_FILE =
 * @env_token (NULL: unset); its stderr into @err.  Returns its status. */
static int
cli(const char *const *args, const char *env_token, char *err, size_t errlen)
{
	const char *bin = getenv("NPUFARM_CLI_BIN");
	const char *argv[16];
	char url[96], path[320];
	size_t n = 0, got;
	int status, fd;
	pid_t pid;
	FILE *f;

	ck_assert_msg(bin != NULL, "NPUFARM_CLI_BIN is not set");
	(void)snprintf(url, sizeof(url), "http://%s", b.http);
	(void)snprintf(path, sizeof(path), "%s/cli.err", b.dir);
	argv[n++] = bin;
	argv[n++] = "--broker";
	argv[n++] = url;
	while (*args != NULL && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(126);
		fd = open("/dev/null", O_WRONLY);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(126);
		if (env_token != NULL)
			setenv("NPUFARM_TOKEN_FILE", env_token, 1);
		else
			unsetenv("NPUFARM_TOKEN_FILE");
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	got = fread(err, 1, errlen - 1, f);
	err[got] = '\0';
	fclose(f);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* Bytes the broker answers to @len bytes of @msg before it closes or
 * goes quiet for 2 s (at most @cap into @out). */
static ssize_t
exchange(const unsigned char *msg, size_t len, unsigned char *out, size_t cap)
{
	int fd = dial(b.farm);
	struct pollfd pfd = {fd, POLLIN, 0};
	size_t got = 0;
	ssize_t n;

	ck_assert_int_eq(write(fd, msg, len), (ssize_t)len);
	while (got < cap && poll(&pfd, 1, 2000) > 0) {
		n = read(fd, out + got, cap - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return (ssize_t)got;
}

/* Whether the tracker answers our magic with its own. */
static bool
tracker_answers(void)
{
	unsigned char magic[4], out[16];

	put_le32(magic, NPUFARM_TVM_TRACKER_MAGIC);
	return exchange(magic, 4, out, 4) == 4 && memcmp(out, magic, 4) == 0;
}

/* The broker's answer (bytes) to an RPC-proxy hello with @key. */
static ssize_t
rpc_hello(const char *key)
{
	unsigned char msg[300], out[64];
	size_t klen = strlen(key);

	put_le32(msg, NPUFARM_TVM_RPC_MAGIC);
	put_le32(msg + 4, (uint32_t)klen);
	memcpy(msg + 8, key, klen);
	return exchange(msg, 8 + klen, out, sizeof(out));
}

/* Wrong, missing and right agent tokens; both sides log why. */
START_TEST(test_agent_token)
{
	const char *good = tokfile("agent.token", "s3cret-agent\n");
	const char *bad = tokfile("bad.token", "not-it\n");
	const char *const extra[] = {
	    "--agent-token-file", good, "--agent-heartbeat", "0.2", NULL};
	char log_bad[320], log_none[320], log_good[320], *rows;
	pid_t a_bad, a_none, a_good;

	harness_broker_start(&b, extra);
	a_bad = agent_start("wrong", bad, false, log_bad, sizeof(log_bad));
	a_none = agent_start("none", NULL, false, log_none, sizeof(log_none));
	a_good = agent_start("right", good, false, log_good, sizeof(log_good));
	wait_file(log_bad, "broker refused: hello: wrong agent token");
	wait_file(log_bad, "(unauthorized)");
	wait_file(log_none, "this broker requires an agent token");
	wait_state("right", "idle");
	/* The broker's log names the peer and the reason. */
	ck_assert(harness_log_contains(&b, "127.0.0.1:"));
	ck_assert(harness_log_contains(
	    &b, "closing: agent link: hello: wrong agent token"));
	ck_assert(harness_log_contains(
	    &b, "closing: agent link: hello: this broker requires an agent"));
	ck_assert(!file_contains(b.log, "s3cret-agent"));
	ck_assert(!file_contains(b.log, "not-it"));
	rows = harness_sql(b.db, "SELECT name FROM boards ORDER BY name");
	ck_assert_str_eq(rows, "right\n");
	free(rows);
	ck_assert_int_eq(harness_reap(a_bad, 5000), 0);
	ck_assert_int_eq(harness_reap(a_none, 5000), 0);
	ck_assert_int_eq(harness_reap(a_good, 5000), 0);
}
END_TEST

/* 401 without or with a wrong token, 403 for admin routes with the read
 * token, 200 otherwise; the CLI sends the token from a file. */
START_TEST(test_api_tokens)
{
	const char *api = tokfile("api.token", "reader-123\n");
	const char *admin = tokfile("admin.token", "boss-456\n");
	const char *wrong = tokfile("wrong.token", "guess\n");
	const char *const extra[] = {
	    "--api-token-file", api, "--admin-token-file", admin, NULL};
	char log[320], err[4096], path[64], *resp, *id;
	int status;
	pid_t a;

	harness_broker_start(&b, extra);
	/* The dashboard page stays public; its API calls do not. */
	ck_assert_int_eq(status_of("GET", "/", NULL), 200);
	resp = http("GET", "/v1/boards", NULL, &status);
	ck_assert_int_eq(status, 401);
	ck_assert_ptr_nonnull(strstr(resp, "WWW-Authenticate: Bearer"));
	ck_assert_ptr_nonnull(strstr(resp, "application/json"));
	ck_assert_ptr_nonnull(strstr(resp, "{\"error\":\"this broker "
					   "requires an API token"));
	free(resp);
	resp = http("GET", "/v1/boards", "Bearer guess", &status);
	ck_assert_int_eq(status, 401);
	ck_assert_ptr_nonnull(strstr(resp, "error=\"invalid_token\""));
	ck_assert_ptr_nonnull(strstr(resp, "not valid"));
	free(resp);
	ck_assert_int_eq(status_of("GET", "/v1/queue", "Basic cmVhZGVy"), 401);
	ck_assert_int_eq(
	    status_of("GET", "/v1/boards", "Bearer reader-12"), 401);
	ck_assert_int_eq(
	    status_of("GET", "/v1/boards", "Bearer reader-123"), 200);
	ck_assert_int_eq(
	    status_of("GET", "/v1/leases", "bearer reader-123"), 200);
	ck_assert_int_eq(status_of("GET", "/v1/queue", "Bearer boss-456"), 200);
	ck_assert_int_eq(status_of("GET", "/nope", "Bearer guess"), 401);
	ck_assert(harness_log_contains(&b, "HTTP 127.0.0.1:"));
	ck_assert(!file_contains(b.log, "reader-123"));

	/* A board to drain. */
	a = agent_start("b1", NULL, false, log, sizeof(log));
	wait_state("b1", "idle");
	id = harness_sql(b.db, "SELECT id FROM boards WHERE name = 'b1'");
	id[strcspn(id, "\n")] = '\0';
	(void)snprintf(path, sizeof(path), "/v1/boards/%s/drain", id);
	resp = http("POST", path, "Bearer reader-123", &status);
	ck_assert_int_eq(status, 403);
	ck_assert_ptr_nonnull(strstr(resp, "needs the admin token"));
	free(resp);
	ck_assert_int_eq(status_of("POST", path, NULL), 401);
	ck_assert_int_eq(status_of("POST", path, "Bearer boss-456"), 200);

	/* The CLI: no token, --token-file, $NPUFARM_TOKEN_FILE, scopes. */
	ck_assert_int_eq(
	    cli((const char *const[]){"status", NULL}, NULL, err, sizeof(err)),
	    1);
	ck_assert_msg(
	    strstr(err, "requires an API token") && strstr(err, "HTTP 401"),
	    "%s", err);
	ck_assert_int_eq(
	    cli((const char *const[]){"--token-file", wrong, "status", NULL},
		NULL, err, sizeof(err)),
	    1);
	ck_assert_msg(strstr(err, "not valid"), "%s", err);
	ck_assert_int_eq(
	    cli((const char *const[]){"--token-file", api, "status", NULL},
		NULL, err, sizeof(err)),
	    0);
	ck_assert_int_eq(
	    cli((const char *const[]){"leases", NULL}, api, err, sizeof(err)),
	    0);
	ck_assert_int_eq(cli((const char *const[]){"undrain", id, NULL}, api,
			     err, sizeof(err)),
	    1);
	ck_assert_msg(
	    strstr(err, "needs the admin token") && strstr(err, "HTTP 403"),
	    "%s", err);
	ck_assert_int_eq(
	    cli((const char *const[]){"-T", admin, "undrain", id, NULL}, NULL,
		err, sizeof(err)),
	    0);
	ck_assert_int_eq(cli((const char *const[]){"--token-file",
				 "/nonexistent/t", "status", NULL},
			     NULL, err, sizeof(err)),
	    2);
	ck_assert_msg(strstr(err, "token file '/nonexistent/t'"), "%s", err);
	free(id);
	ck_assert_int_eq(harness_reap(a, 5000), 0);
}
END_TEST

/* --allow 10.0.0.0/8: loopback may not speak TVM's protocols, but agents
 * (token) still link, and their own data connections still come in. */
/*
 * Cancelling a job: the read token cancels only a job whose user the
 * request names; the admin token cancels anyone's.
 */
START_TEST(test_cancel_scope)
{
	const char *api = tokfile("api.token", "reader-123\n");
	const char *admin = tokfile("admin.token", "boss-456\n");
	const char *const extra[] = {
	    "--api-token-file", api, "--admin-token-file", admin, NULL};
	static const char blob[] = "not really a kernel";
	const char *rd = "Bearer reader-123", *ad = "Bearer boss-456";
	char sha[65], path[128], job[512], *resp;
	int status, i;

	harness_broker_start(&b, extra);
	harness_sha256_hex(blob, strlen(blob), sha);
	(void)snprintf(path, sizeof(path), "/v1/artifacts/%s", sha);
	free(http_body("PUT", path, rd, blob, &status));
	ck_assert_int_eq(status, 201);
	/* Two jobs of alice's, on a key without boards: they stay queued. */
	(void)snprintf(job, sizeof(job),
	    "{\"key\":\"nobody\",\"user\":\"alice\",\"tasks\":["
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\"}]}",
	    sha);
	for (i = 0; i < 2; i++) {
		free(http_body("POST", "/v1/jobs", rd, job, &status));
		ck_assert_int_eq(status, 201);
	}
	resp = http("POST", "/v1/jobs/1/cancel", rd, &status);
	ck_assert_int_eq(status, 403);
	ck_assert_ptr_nonnull(strstr(resp, "needs the admin token"));
	free(resp);
	ck_assert_int_eq(
	    status_of("POST", "/v1/jobs/1/cancel?user=bob", rd), 403);
	ck_assert_int_eq(
	    status_of("POST", "/v1/jobs/1/cancel?user=alice", rd), 200);
	ck_assert_int_eq(status_of("POST", "/v1/jobs/2/cancel", ad), 200);
	ck_assert_int_eq(status_of("POST", "/v1/jobs/2/cancel", NULL), 401);
}
END_TEST

START_TEST(test_allow_list)
{
	const char *good = tokfile("agent.token", "s3cret-agent\n");
	const char *const extra[] = {"--allow", "10.0.0.0/8",
	    "--agent-token-file", good, "--agent-heartbeat", "0.2", NULL};
	char log[320], *resp;
	int status, i;
	pid_t a;

	harness_broker_start(&b, extra);
	ck_assert(!tracker_answers());
	ck_assert(harness_log_contains(
	    &b, "TVM tracker refused: 127.0.0.1 is not in the allow-list"));
	ck_assert_int_eq(rpc_hello("client:rk3588"), 0);
	ck_assert(harness_log_contains(
	    &b, "TVM RPC proxy refused: 127.0.0.1 is not in the allow-list"));
	/* A board posing as an agent's data connection: no such agent. */
	ck_assert_int_eq(rpc_hello("server:rk3588 agent=ghost session=1"), 0);

	a = agent_start("b1", good, true, log, sizeof(log));
	wait_state("b1", "idle");
	/* Its offer (a data connection from its host) is in the queue. */
	for (i = 0; i < WAIT_MS / 20; i++) {
		resp = http("GET", "/v1/queue", NULL, &status);
		if (strstr(resp, "\"key\":\"rk3588\",\"boards\":1,\"free\":1"))
			break;
		free(resp);
		resp = NULL;
		sleep_ms(20);
	}
	ck_assert_msg(resp != NULL, "the agent's offer never arrived");
	free(resp);
	ck_assert_int_eq(harness_reap(a, 5000), 0);
}
END_TEST

static void
write_config(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

static void
hup_and_wait(const char *needle)
{
	ck_assert_int_eq(kill(b.pid, SIGHUP), 0);
	wait_file(b.log, needle);
}

/* SIGHUP: new tokens, limits and allow-list take effect, restart-only
 * keys are reported, and a broken token file changes nothing. */
START_TEST(test_sighup_reload)
{
	const char *api = tokfile("api.token", "first-token\n");
	char cfg[128], text[512], extra_cfg[140];
	const char *extra[] = {"--config", cfg, NULL};

	(void)snprintf(cfg, sizeof(cfg), "%s/broker.json", tokdir);
	(void)snprintf(text, sizeof(text),
	    "{\"api_token_file\": \"%s\", \"request_timeout\": 0}", api);
	write_config(cfg, text);
	(void)extra_cfg;
	harness_broker_start(&b, extra);
	ck_assert_int_eq(
	    status_of("GET", "/v1/boards", "Bearer first-token"), 200);
	ck_assert(tracker_answers()); /* default: loopback allowed */

	/* A new token, a new limit, a restart-only key, an allow-list. */
	tokfile("api.token", "second-token\n");
	(void)snprintf(text, sizeof(text),
	    "{\"api_token_file\": \"%s\", \"request_timeout\": 5, "
	    "\"max_frame\": 4096, \"allow\": [\"10.0.0.0/8\"]}",
	    api);
	write_config(cfg, text);
	hup_and_wait("SIGHUP: done");
	ck_assert(harness_log_contains(&b, "SIGHUP: API token changed"));
	ck_assert(harness_log_contains(&b, "SIGHUP: request_timeout: 0 -> 5"));
	ck_assert(harness_log_contains(&b, "SIGHUP: max_frame changed "
					   "(1048576 -> 4096): requires a "
					   "restart, ignoring"));
	ck_assert(harness_log_contains(
	    &b, "SIGHUP: allow: 127.0.0.0/8 ::1/128 -> 10.0.0.0/8"));
	ck_assert(!file_contains(b.log, "second-token"));
	ck_assert_int_eq(
	    status_of("GET", "/v1/boards", "Bearer first-token"), 401);
	ck_assert_int_eq(
	    status_of("GET", "/v1/boards", "Bearer second-token"), 200);
	ck_assert(!tracker_answers());

	/* A token file gone bad: refused, the old rules stay. */
	tokfile("api.token", "\n");
	ck_assert_int_eq(kill(b.pid, SIGHUP), 0);
	wait_file(b.log, "nothing changed");
	ck_assert(harness_log_contains(&b, "api_token_file: token file"));
	ck_assert_int_eq(
	    status_of("GET", "/v1/boards", "Bearer second-token"), 200);

	/* Tokens off again: the API is open. */
	write_config(cfg, "{\"request_timeout\": 5}");
	hup_and_wait("SIGHUP: API token no longer required");
	ck_assert_int_eq(status_of("GET", "/v1/boards", NULL), 200);
	ck_assert(tracker_answers());
}
END_TEST

/* Exposed without locks: the loud warning; locked, none. */
START_TEST(test_exposure_warning)
{
	const char *const open_extra[] = {
	    "--listen", "0.0.0.0:0", "--http", "0.0.0.0:0", NULL};
	const char *agent = tokfile("agent.token", "a-token\n");
	const char *admin = tokfile("admin.token", "b-token\n");
	const char *const locked[] = {"--listen", "0.0.0.0:0", "--http",
	    "0.0.0.0:0", "--agent-token-file", agent, "--admin-token-file",
	    admin, NULL};

	harness_broker_start(&b, open_extra);
	ck_assert(harness_log_contains(&b, "WARNING: the farm port 0.0.0.0:"));
	ck_assert(harness_log_contains(&b, "no agent token is set"));
	ck_assert(harness_log_contains(&b, "WARNING: the HTTP API 0.0.0.0:"));
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);

	harness_broker_start(&b, locked);
	ck_assert(!harness_log_contains(&b, "WARNING"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("access");
	TCase *tc = tcase_create("access");

	tcase_set_timeout(tc, 90);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_agent_token);
	tcase_add_test(tc, test_api_tokens);
	tcase_add_test(tc, test_cancel_scope);
	tcase_add_test(tc, test_allow_list);
	tcase_add_test(tc, test_sighup_reload);
	tcase_add_test(tc, test_exposure_warning);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
