/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The npufarm CLI against the real npufarm-broker: each test starts a
 * broker on loopback ports in a temporary directory, puts boards and
 * requests on its farm port the way TVM's Python peers do (tvmpeer), runs
 * the npufarm binary and checks its exit status and output.  Binaries come
 * from $NPUFARM_BROKER_BIN and $NPUFARM_CLI_BIN, set by meson.
 *
 * Tables are checked by whitespace-separated fields of the line that
 * starts with a given word, so the tests pin the contents and not the
 * column widths, which depend on values such as ports.
 */
#include "config.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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
#include <jansson.h>

#include "err.h"
#include "harness.h"
#include "tvmpeer.h"

#define IO_TIMEOUT_MS  5000
#define CLI_TIMEOUT_MS 20000
#define MAX_FIELDS     16

/* The board every test that needs one registers: key and RPC port. */
#define BOARD_KEY  "rk3588"
#define BOARD_PORT 9090

static struct harness_broker broker;
static char broker_url[128];

/* What one run of the CLI did. */
struct run {
	int status; /* exit status, or 128 + signal */
	char *out;  /* stdout, malloc'd */
	char *err;  /* stderr, malloc'd */
};

static void
setup(void)
{
	harness_broker_start(&broker, NULL);
	(void)snprintf(
	    broker_url, sizeof(broker_url), "http://%s", broker.http);
}

/* The broker must exit 0 on SIGTERM after serving the CLI. */
static void
teardown(void)
{
	ck_assert_int_eq(harness_broker_stop(&broker), 0);
	harness_broker_cleanup(&broker);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static char *
slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r"), *m = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(m);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ck_assert_uint_eq(fwrite(chunk, 1, n, m), n);
	fclose(f);
	ck_assert_int_eq(fclose(m), 0);
	return buf;
}

/*
 * Run $NPUFARM_CLI_BIN with the NULL-terminated @argv (without argv[0]),
 * stdout and stderr captured in the test dir.  NPUFARM_BROKER is set to
 * @env_broker, or removed when it is NULL.
 */
static void
run_argv(struct run *r, const char *env_broker, const char *const *argv)
{
	const char *bin = getenv("NPUFARM_CLI_BIN");
	const char *args[32];
	char outp[320], errp[320];
	int status = 0, i, n = 0;
	pid_t pid;

	ck_assert_msg(bin != NULL, "NPUFARM_CLI_BIN is not set");
	args[n++] = bin;
	for (i = 0; argv[i] != NULL && n < 31; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	(void)snprintf(outp, sizeof(outp), "%s/cli.out", broker.dir);
	(void)snprintf(errp, sizeof(errp), "%s/cli.err", broker.dir);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (o < 0 || e < 0 || dup2(o, STDOUT_FILENO) < 0 ||
		    dup2(e, STDERR_FILENO) < 0)
			_exit(126);
		if (env_broker != NULL)
			setenv("NPUFARM_BROKER", env_broker, 1);
		else
			unsetenv("NPUFARM_BROKER");
		execv(bin, (char *const *)args);
		_exit(127);
	}
	for (i = 0; i < CLI_TIMEOUT_MS / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		sleep_ms(10);
	}
	if (i == CLI_TIMEOUT_MS / 10) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		ck_abort_msg(
		    "npufarm did not exit within %d ms", CLI_TIMEOUT_MS);
	}
	r->status =
	    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r->out = slurp(outp);
	r->err = slurp(errp);
}

/* run_argv() with the arguments inline, NULL-terminated. */
static void
run(struct run *r, const char *env_broker, ...)
{
	const char *argv[32];
	va_list ap;
	int n = 0;

	va_start(ap, env_broker);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	run_argv(r, env_broker, argv);
}

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/*
 * Split the @nth (from 0) line of @text whose first field is @first into
 * at most MAX_FIELDS blank-separated fields, copied into @buf.  Returns
 * the number of fields, 0 when there is no such line.
 */
static int
fields_nth(const char *text, const char *first, int nth, char *buf,
    size_t buflen, char **ret_fields)
{
	const char *line = text, *eol;
	size_t len;
	char *save = NULL, *tok;
	int n = 0;

	for (; *line != '\0'; line = *eol != '\0' ? eol + 1 : eol) {
		eol = strchrnul(line, '\n');
		while (*line == ' ')
			line++;
		len = (size_t)(eol - line);
		if (strncmp(line, first, strlen(first)) != 0 ||
		    (line[strlen(first)] != ' ' &&
			line[strlen(first)] != '\n' &&
			line[strlen(first)] != '\0'))
			continue;
		if (nth-- > 0)
			continue;
		ck_assert_uint_lt(len, buflen);
		memcpy(buf, line, len);
		buf[len] = '\0';
		for (tok = strtok_r(buf, " ", &save);
		     tok != NULL && n < MAX_FIELDS;
		     tok = strtok_r(NULL, " ", &save))
			ret_fields[n++] = tok;
		return n;
	}
	return 0;
}

/* The first line of @text starting with @first, as fields_nth(). */
static int
fields(const char *text, const char *first, char *buf, size_t buflen,
    char **ret_fields)
{
	return fields_nth(text, first, 0, buf, buflen, ret_fields);
}

/* Whether a line of @text starting with @first has a field @value. */
static bool
line_has(const char *text, const char *first, const char *value)
{
	char buf[1024], *f[MAX_FIELDS];
	int i, n, nth;

	for (nth = 0;
	     (n = fields_nth(text, first, nth, buf, sizeof(buf), f)) > 0; nth++)
		for (i = 0; i < n; i++)
			if (strcmp(f[i], value) == 0)
				return true;
	return false;
}

/* Check the per-key summary line: KEY BOARDS FREE LEASED OFFLINE WAITING. */
static void
assert_key_line(const char *out, const char *key, const char *boards,
    const char *free_, const char *leased, const char *offline,
    const char *waiting)
{
	char buf[1024], *f[MAX_FIELDS];
	int n = fields(out, key, buf, sizeof(buf), f);

	ck_assert_msg(n == 6, "no summary line for %s in:\n%s", key, out);
	ck_assert_str_eq(f[1], boards);
	ck_assert_str_eq(f[2], free_);
	ck_assert_str_eq(f[3], leased);
	ck_assert_str_eq(f[4], offline);
	ck_assert_str_eq(f[5], waiting);
}

/* Register one board the way TVM's RPC server does: UPDATE_INFO, PUT. */
static struct tvmpeer *
board_up(const char *key, long port)
{
	struct npufarm_err err = {0};
	char matchkey[TVMPEER_MAX_STR];
	struct tvmpeer *p = NULL;

	ck_assert_msg(
	    tvmpeer_connect(broker.farm, IO_TIMEOUT_MS, &p, &err) == 0,
	    "connect: %s", err.msg);
	ck_assert_int_eq(tvmpeer_update_info(p, key, port), 0);
	ck_assert_msg(tvmpeer_recv_ok(p, IO_TIMEOUT_MS, &err) == 0,
	    "UPDATE_INFO: %s", err.msg);
	ck_assert_int_eq(tvmpeer_matchkey(key, matchkey, sizeof(matchkey)), 0);
	ck_assert_int_eq(tvmpeer_put(p, key, port, matchkey, NULL), 0);
	ck_assert_msg(
	    tvmpeer_recv_ok(p, IO_TIMEOUT_MS, &err) == 0, "PUT: %s", err.msg);
	return p;
}

/* Send REQUEST as a TVM client; the caller waits for the grant or not. */
static struct tvmpeer *
client_request(const char *key, const char *user, double priority)
{
	struct npufarm_err err = {0};
	struct tvmpeer *p = NULL;

	ck_assert_msg(
	    tvmpeer_connect(broker.farm, IO_TIMEOUT_MS, &p, &err) == 0,
	    "connect: %s", err.msg);
	ck_assert_int_eq(tvmpeer_request(p, key, user, priority), 0);
	return p;
}

/* The tracker connections of farm_busy(); closing them ends the scene. */
struct farm {
	struct tvmpeer *board;  /* the board's RPC server */
	struct tvmpeer *holder; /* the client granted the board */
	struct tvmpeer *waiter; /* a client whose request waits */
};

static void
farm_free(struct farm *f)
{
	tvmpeer_free(f->waiter);
	tvmpeer_free(f->holder);
	tvmpeer_free(f->board);
}

/* A board, a granted lease on it, and one more request left waiting. */
static void
farm_busy(struct farm *f)
{
	struct npufarm_err err = {0};
	struct tvmpeer_grant g;
	struct run r;
	int i;

	f->board = board_up(BOARD_KEY, BOARD_PORT);
	f->holder = client_request(BOARD_KEY, "alice", 1);
	ck_assert_msg(
	    tvmpeer_recv_grant(f->holder, IO_TIMEOUT_MS, &g, &err) == 0,
	    "grant: %s", err.msg);
	ck_assert_int_eq(g.port, BOARD_PORT);
	f->waiter = client_request(BOARD_KEY, "bob", 2);
	/* The REQUEST crossed another socket: wait until the API sees it. */
	for (i = 0; i < 500; i++) {
		run(&r, NULL, "--broker", broker_url, "status", NULL);
		ck_assert_int_eq(r.status, 0);
		if (line_has(r.out, "waiting", "requests,")) {
			run_free(&r);
			return;
		}
		run_free(&r);
		sleep_ms(10);
	}
	ck_abort_msg("the waiting request never showed in status");
}

START_TEST(test_status_empty_farm)
{
	struct run r;

	run(&r, NULL, "--broker", broker_url, "status", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "no boards and no waiting requests\n");
	ck_assert_str_eq(r.err, "");
	run_free(&r);
}
END_TEST

START_TEST(test_status_idle_board)
{
	struct tvmpeer *board = board_up(BOARD_KEY, BOARD_PORT);
	struct run r;

	run(&r, NULL, "--broker", broker_url, "status", NULL);
	ck_assert_msg(r.status == 0, "stderr: %s", r.err);
	ck_assert_ptr_nonnull(strstr(r.out, "KEY"));
	assert_key_line(r.out, BOARD_KEY, "1", "1", "0", "0", "0");
	ck_assert_msg(line_has(r.out, "127.0.0.1:9090", "idle"),
	    "no idle board line in:\n%s", r.out);
	/* Registered by PUT and reached directly: nobody relays it. */
	ck_assert_ptr_nonnull(strstr(r.out, "RELAY"));
	ck_assert_msg(line_has(r.out, "127.0.0.1:9090", "none"),
	    "no relay in:\n%s", r.out);
	ck_assert_ptr_null(strstr(r.out, "waiting requests"));
	run_free(&r);
	tvmpeer_free(board);
}
END_TEST

START_TEST(test_status_leased_board_and_waiter)
{
	struct farm farm;
	struct run r;

	farm_busy(&farm);
	run(&r, NULL, "--broker", broker_url, "status", NULL);
	ck_assert_msg(r.status == 0, "stderr: %s", r.err);
	assert_key_line(r.out, BOARD_KEY, "1", "0", "1", "0", "1");
	ck_assert(line_has(r.out, "127.0.0.1:9090", "leased"));
	ck_assert(line_has(r.out, "127.0.0.1:9090", BOARD_KEY));
	/* The waiting request: KEY USER PEER PRIORITY WAITED. */
	ck_assert_msg(line_has(r.out, BOARD_KEY, "bob") &&
			  line_has(r.out, BOARD_KEY, "2"),
	    "no waiting request line in:\n%s", r.out);
	run_free(&r);
	farm_free(&farm);
}
END_TEST

START_TEST(test_leases_table)
{
	struct farm farm;
	char buf[1024], *f[MAX_FIELDS];
	struct run r;
	int n;

	farm_busy(&farm);
	run(&r, NULL, "--broker", broker_url, "leases", NULL);
	ck_assert_msg(r.status == 0, "stderr: %s", r.err);
	n = fields(r.out, "ID", buf, sizeof(buf), f);
	ck_assert_int_eq(n, 9);
	ck_assert_str_eq(f[6], "REQS");
	ck_assert_str_eq(f[8], "DETAIL");
	/* The one lease, still open: ID KEY USER BOARD WAIT HELD REQS
	 * OUTCOME (REQS "-": a tracker grant, not a relayed session). */
	n = fields(r.out, "1", buf, sizeof(buf), f);
	ck_assert_msg(n >= 8, "no lease line in:\n%s", r.out);
	ck_assert_str_eq(f[1], BOARD_KEY);
	ck_assert_str_eq(f[3], "127.0.0.1:9090");
	ck_assert_msg(strstr(f[4], "s") != NULL, "wait '%s'", f[4]);
	ck_assert_str_eq(f[5], "-");
	ck_assert_str_eq(f[6], "-");
	ck_assert_str_eq(f[7], "open");
	run_free(&r);

	run(&r, NULL, "--broker", broker_url, "leases", "--limit", "1", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert(line_has(r.out, "1", "open"));
	run_free(&r);
	farm_free(&farm);
}
END_TEST

START_TEST(test_leases_empty)
{
	struct run r;

	run(&r, NULL, "--broker", broker_url, "leases", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "no leases\n");
	run_free(&r);
}
END_TEST

/* Remove each board's lease.held_seconds, which grows as time passes. */
static void
drop_held(json_t *boards)
{
	json_t *b;
	size_t i;

	json_array_foreach(boards, i, b) {
		if (json_is_object(json_object_get(b, "lease")))
			(void)json_object_del(
			    json_object_get(b, "lease"), "held_seconds");
	}
}

/* --json prints the broker's members unchanged: compare with the API. */
START_TEST(test_json_status_matches_api)
{
	struct farm farm;
	json_t *got, *boards, *queue;
	json_error_t jerr;
	char *body;
	struct run r;
	int status;

	farm_busy(&farm);
	run(&r, NULL, "--broker", broker_url, "--json", "status", NULL);
	ck_assert_msg(r.status == 0, "stderr: %s", r.err);
	got = json_loads(r.out, 0, &jerr);
	ck_assert_msg(got != NULL, "not JSON: %s\n%s", jerr.text, r.out);
	ck_assert_uint_eq(json_object_size(got), 2);
	ck_assert(json_is_array(json_object_get(got, "queues")));
	ck_assert(json_is_array(json_object_get(got, "boards")));
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(got, "boards"), 0), "state")),
	    "leased");

	/* Only the lease's held time moves between the two reads. */
	body = harness_http_get(broker.http, "/v1/boards", &status);
	ck_assert_int_eq(status, 200);
	boards = json_loads(body, 0, NULL);
	free(body);
	drop_held(json_object_get(boards, "boards"));
	drop_held(json_object_get(got, "boards"));
	ck_assert(json_equal(
	    json_object_get(boards, "boards"), json_object_get(got, "boards")));
	body = harness_http_get(broker.http, "/v1/queue", &status);
	ck_assert_int_eq(status, 200);
	queue = json_loads(body, 0, NULL);
	free(body);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(queue, "queues"), 0), "key")),
	    BOARD_KEY);
	json_decref(queue);
	json_decref(boards);
	json_decref(got);
	run_free(&r);
	farm_free(&farm);
}
END_TEST

START_TEST(test_json_leases_after_command)
{
	struct farm farm;
	json_t *got, *leases;
	struct run r;

	farm_busy(&farm);
	/* --json is accepted after the command too. */
	run(&r, NULL, "--broker", broker_url, "leases", "--json", "--limit",
	    "1", NULL);
	ck_assert_msg(r.status == 0, "stderr: %s", r.err);
	got = json_loads(r.out, 0, NULL);
	ck_assert_ptr_nonnull(got);
	leases = json_object_get(got, "leases");
	ck_assert_uint_eq(json_array_size(leases), 1);
	ck_assert_str_eq(json_string_value(
			     json_object_get(json_array_get(leases, 0), "key")),
	    BOARD_KEY);
	ck_assert(json_is_null(
	    json_object_get(json_array_get(leases, 0), "outcome")));
	json_decref(got);
	run_free(&r);
	farm_free(&farm);
}
END_TEST

/* The broker URL may come from $NPUFARM_BROKER; --broker wins over it. */
START_TEST(test_broker_from_environment)
{
	struct run r;

	run(&r, broker_url, "status", NULL);
	ck_assert_msg(r.status == 0, "stderr: %s", r.err);
	ck_assert_str_eq(r.out, "no boards and no waiting requests\n");
	run_free(&r);
	run(&r, "http://127.0.0.1:1", "--broker", broker_url, "leases", NULL);
	ck_assert_int_eq(r.status, 0);
	run_free(&r);
}
END_TEST

/* A non-2xx reply: the broker's "error" text, the status, exit 1. */
START_TEST(test_http_error_reports_server_message)
{
	char url[160];
	struct run r;

	run(&r, NULL, "--broker", broker_url, "leases", "--limit", "5000",
	    NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_msg(strstr(r.err, "limit") && strstr(r.err, "HTTP 400"),
	    "stderr: %s", r.err);
	ck_assert_ptr_null(strstr(r.err, "no error message"));
	ck_assert_ptr_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1);
	run_free(&r);

	(void)snprintf(url, sizeof(url), "%s/no/such/prefix", broker_url);
	run(&r, NULL, "--broker", url, "status", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "HTTP 404"), "stderr: %s", r.err);
	ck_assert_ptr_null(strstr(r.err, "no error message"));
	run_free(&r);
}
END_TEST

/* A port that was just free: bind to port 0, read it, close. */
static int
free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* No broker: one line naming the URL and the reason, exit 1. */
START_TEST(test_unreachable_broker)
{
	const char *cmds[] = {"status", "leases"};
	char url[64], expect[160];
	struct run r;
	size_t i;

	(void)snprintf(url, sizeof(url), "http://127.0.0.1:%d", free_port());
	(void)snprintf(expect, sizeof(expect),
	    "npufarm: cannot reach the broker at %s: Connection refused\n",
	    url);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		run(&r, NULL, "--broker", url, cmds[i], NULL);
		ck_assert_int_eq(r.status, 1);
		ck_assert_str_eq(r.out, "");
		ck_assert_str_eq(r.err, expect);
		run_free(&r);
	}
	run(&r, NULL, "--broker", "http://nosuch.invalid:9191", "status", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "http://nosuch.invalid:9191") &&
			  strstr(r.err, "cannot resolve"),
	    "stderr: %s", r.err);
	run_free(&r);
}
END_TEST

/* A broker that accepts but never answers: the timeout, exit 1. */
START_TEST(test_silent_broker_times_out)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char url[64];
	struct run r;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	(void)snprintf(
	    url, sizeof(url), "http://127.0.0.1:%d", ntohs(sin.sin_port));
	run(&r, NULL, "--broker", url, "--timeout", "0.3", "status", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, url) && strstr(r.err, "no response"),
	    "stderr: %s", r.err);
	run_free(&r);
	close(fd);
}
END_TEST

START_TEST(test_usage_errors_exit_2)
{
	struct run r;

	run(&r, NULL, NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "usage: npufarm"));
	run_free(&r);
	run(&r, NULL, "frobnicate", NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "unknown command 'frobnicate'"));
	run_free(&r);
	run(&r, NULL, "leases", "--limit", "zero", NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "--limit"));
	run_free(&r);
	run(&r, NULL, "status", "extra", NULL);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
}
END_TEST

START_TEST(test_help_and_version)
{
	struct run r;

	run(&r, NULL, "--version", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "npufarm " NPUFARM_VERSION "\n");
	run_free(&r);
	run(&r, NULL, "--help", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert(line_has(r.out, "status", "status"));
	ck_assert(line_has(r.out, "leases", "leases"));
	run_free(&r);
	run(&r, NULL, "leases", "--help", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "[--limit N]"));
	run_free(&r);
}
END_TEST

/* The tests that need no broker still get a directory for the output. */
static void
setup_dir(void)
{
	memset(&broker, 0, sizeof(broker));
	(void)snprintf(
	    broker.dir, sizeof(broker.dir), "/tmp/npufarm-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(broker.dir));
}

static void
teardown_dir(void)
{
	harness_broker_cleanup(&broker);
}

START_TEST(test_drain_and_undrain)
{
	struct tvmpeer *board = board_up(BOARD_KEY, BOARD_PORT);
	struct run r;

	run(&r, NULL, "--broker", broker_url, "drain", "127.0.0.1:9090", NULL);
	ck_assert_msg(r.status == 0, "stderr: %s", r.err);
	ck_assert_str_eq(r.out, "board 1 drained\n");
	run_free(&r);
	run(&r, NULL, "--broker", broker_url, "status", NULL);
	ck_assert_msg(line_has(r.out, "127.0.0.1:9090", "draining"),
	    "no draining board in:\n%s", r.out);
	run_free(&r);
	run(&r, NULL, "--broker", broker_url, "undrain", "1", NULL);
	ck_assert_msg(r.status == 0, "stderr: %s", r.err);
	ck_assert_str_eq(r.out, "board 1 undrained\n");
	run_free(&r);
	run(&r, NULL, "--broker", broker_url, "drain", "no-such-board", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.err, "npufarm: no board named 'no-such-board'\n");
	run_free(&r);
	run(&r, NULL, "--broker", broker_url, "drain", "77", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(
	    strstr(r.err, "no board with id 77") && strstr(r.err, "HTTP 404"),
	    "%s", r.err);
	run_free(&r);
	run(&r, NULL, "--broker", broker_url, "drain", NULL);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
	tvmpeer_free(board);
}
END_TEST

static Suite *
cli_integration_suite(void)
{
	Suite *s = suite_create("cli-integration");
	TCase *tc;

	tc = tcase_create("with_broker");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_status_empty_farm);
	tcase_add_test(tc, test_status_idle_board);
	tcase_add_test(tc, test_drain_and_undrain);
	tcase_add_test(tc, test_status_leased_board_and_waiter);
	tcase_add_test(tc, test_leases_table);
	tcase_add_test(tc, test_leases_empty);
	tcase_add_test(tc, test_json_status_matches_api);
	tcase_add_test(tc, test_json_leases_after_command);
	tcase_add_test(tc, test_broker_from_environment);
	tcase_add_test(tc, test_http_error_reports_server_message);
	suite_add_tcase(s, tc);

	tc = tcase_create("without_broker");
	tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_unreachable_broker);
	tcase_add_test(tc, test_silent_broker_times_out);
	tcase_add_test(tc, test_usage_errors_exit_2);
	tcase_add_test(tc, test_help_and_version);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return harness_run(cli_integration_suite());
}
