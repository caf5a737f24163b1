/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dashboard in a real browser.  Each test starts the real
 * npufarm-broker on loopback, builds a farm on it the way TVM's Python
 * peers do (tvmpeer): boards, finished leases (one whose outcome the broker
 * could not observe, one lost with its board), an open lease and a waiting
 * request; then runs Debian's headless Chromium against GET /, lets the
 * page's script run (--virtual-time-budget) and checks the rows of the
 * dumped DOM against what the test did.  A second test serves the same page
 * next to canned API answers, for what the broker cannot produce yet
 * (jobs, quarantined boards) and for hostile text.  Screenshots land in
 * $NPUFARM_ARTIFACT_DIR (the meson build dir) as test artifacts.
 *
 * Chromium comes from $NPUFARM_CHROMIUM or the PATH.  Without it the suite
 * is skipped, unless $NPUFARM_REQUIRE_CHROMIUM is set (tests/run.sh sets
 * it, after installing chromium): then it fails.
 */
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "err.h"
#include "harness.h"
#include "tvmpeer.h"

#define IO_TIMEOUT_MS     5000
#define BROWSER_TIMEOUT_S 90
/* Virtual time the page gets per run: its first refresh and one more. */
#define BROWSER_BUDGET_MS "3000"
#define BROWSER_TRIES     5

static struct harness_broker broker;
static char chromium[512];

static void
setup(void)
{
	harness_broker_start(&broker, NULL);
}

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

	ck_assert_msg(f != NULL, "cannot read %s", path);
	ck_assert_ptr_nonnull(m);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ck_assert_uint_eq(fwrite(chunk, 1, n, m), n);
	fclose(f);
	ck_assert_int_eq(fclose(m), 0);
	return buf;
}

/* The first executable of $NPUFARM_CHROMIUM, chromium, chromium-browser. */
static bool
find_chromium(void)
{
	static const char *const names[] = {"chromium", "chromium-browser"};
	const char *env = getenv("NPUFARM_CHROMIUM"), *path = getenv("PATH");
	char dirs[4096], *dir, *save = NULL;
	size_t i;

	if (env != NULL && *env != '\0') {
		(void)snprintf(chromium, sizeof(chromium), "%s", env);
		return access(chromium, X_OK) == 0;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		(void)snprintf(
		    dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
		for (dir = strtok_r(dirs, ":", &save); dir != NULL;
		     dir = strtok_r(NULL, ":", &save)) {
			(void)snprintf(
			    chromium, sizeof(chromium), "%s/%s", dir, names[i]);
			if (access(chromium, X_OK) == 0)
				return true;
		}
	}
	return false;
}

/*
 * Run headless Chromium on @url with @mode ("--dump-dom" or
 * "--screenshot=PATH"), stdout to @out (may be NULL), in its own process
 * group, with a fresh profile and $HOME under the test dir.  Fails the
 * test if it does not exit 0 within BROWSER_TIMEOUT_S; whatever it left
 * in its process group is killed.
 */
static void
browse(const char *url, const char *mode, const char *out)
{
	char profile[400], home[400], log[400];
	const char *argv[] = {chromium, "--headless", "--no-sandbox",
	    "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
	    "--no-default-browser-check", "--disable-extensions",
	    "--hide-scrollbars", "--window-size=1280,1000", profile,
	    "--virtual-time-budget=" BROWSER_BUDGET_MS, mode, url, NULL};
	int status = 0, i, fd;
	pid_t pid;

	(void)snprintf(home, sizeof(home), "%s/home", broker.dir);
	(void)mkdir(home, 0700);
	(void)snprintf(profile, sizeof(profile),
	    "--user-data-dir=%s/chromium-profile", broker.dir);
	(void)snprintf(log, sizeof(log), "%s/chromium.log", broker.dir);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		(void)setpgid(0, 0);
		fd = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC,
		    0644);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(126);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(126);
		setenv("HOME", home, 1);
		setenv("XDG_CONFIG_HOME", home, 1);
		setenv("XDG_CACHE_HOME", home, 1);
		execv(chromium, (char *const *)argv);
		_exit(127);
	}
	(void)setpgid(pid, pid);
	for (i = 0; i < BROWSER_TIMEOUT_S * 100; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		sleep_ms(10);
	}
	if (i == BROWSER_TIMEOUT_S * 100) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
		ck_abort_msg("chromium did not exit within %d s; see %s",
		    BROWSER_TIMEOUT_S, log);
	}
	kill(-pid, SIGKILL); /* helpers it may have left behind */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "chromium failed (status 0x%x); see %s", status, log);
}

/*
 * The DOM of @url after the page's script refreshed at least once
 * (it sets <html data-refreshes=N>); retried, since virtual time does not
 * promise that the API answers arrived within one budget.
 */
static char *
dump_dom(const char *url)
{
	char out[400];
	char *dom;
	int i;

	(void)snprintf(out, sizeof(out), "%s/dom.html", broker.dir);
	for (i = 0; i < BROWSER_TRIES; i++) {
		browse(url, "--dump-dom", out);
		dom = slurp(out);
		if (strstr(dom, "data-refreshes=\"") != NULL)
			return dom;
		free(dom);
	}
	ck_abort_msg(
	    "the page never rendered the API within %d runs", BROWSER_TRIES);
	return NULL;
}

/* Save a screenshot of @url as $NPUFARM_ARTIFACT_DIR/@name; check it. */
static void
screenshot(const char *url, const char *name)
{
	const char *dir = getenv("NPUFARM_ARTIFACT_DIR");
	static const unsigned char png[] = {0x89, 'P', 'N', 'G'};
	unsigned char magic[4];
	char path[600], mode[620];
	struct stat st;
	FILE *f;

	(void)snprintf(
	    path, sizeof(path), "%s/%s", dir ? dir : broker.dir, name);
	(void)unlink(path);
	(void)snprintf(mode, sizeof(mode), "--screenshot=%s", path);
	browse(url, mode, NULL);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "no screenshot at %s", path);
	ck_assert_uint_eq(fread(magic, 1, sizeof(magic), f), sizeof(magic));
	fclose(f);
	ck_assert(memcmp(magic, png, sizeof(png)) == 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_gt(st.st_size, 10000);
	printf("# screenshot: %s\n", path);
}

/*
 * The <tr> of @dom that has attribute @attr="@value" (the first one), up
 * to its </tr>, malloc'd; NULL when there is none.
 */
static char *
row(const char *dom, const char *attr, const char *value)
{
	char needle[256];
	const char *s, *e;

	(void)snprintf(needle, sizeof(needle), " %s=\"%s\"", attr, value);
	for (s = strstr(dom, needle); s != NULL; s = strstr(s + 1, needle)) {
		const char *open = s;

		while (open > dom && *open != '<')
			open--;
		if (strncmp(open, "<tr ", 4) != 0)
			continue;
		e = strstr(s, "</tr>");
		ck_assert_ptr_nonnull(e);
		return strndup(open, (size_t)(e - open));
	}
	return NULL;
}

/* Assert that the row of @attr=@value exists and holds every text. */
#define assert_row(dom, attr, value, ...) \
	assert_row_texts(                 \
	    dom, attr, value, (const char *const[]){__VA_ARGS__, NULL})

static void
assert_row_texts(const char *dom, const char *attr, const char *value,
    const char *const *texts)
{
	char *r = row(dom, attr, value);
	size_t i;

	ck_assert_msg(r != NULL, "no row %s=%s in the page", attr, value);
	for (i = 0; texts[i] != NULL; i++)
		ck_assert_msg(strstr(r, texts[i]) != NULL,
		    "row %s=%s lacks '%s':\n%s", attr, value, texts[i], r);
	free(r);
}

/* Count the rows of the <tbody id=@id>. */
static int
tbody_rows(const char *dom, const char *id)
{
	char needle[128];
	const char *s, *e;
	int n = 0;

	(void)snprintf(needle, sizeof(needle), "<tbody id=\"%s\">", id);
	s = strstr(dom, needle);
	ck_assert_msg(s != NULL, "no table %s", id);
	e = strstr(s, "</tbody>");
	ck_assert_ptr_nonnull(e);
	while ((s = strstr(s + 1, "<tr")) != NULL && s < e)
		n++;
	return n;
}

/* The number shown on the summary card @name. */
static long
card(const char *dom, const char *name)
{
	char needle[128];
	const char *s;

	(void)snprintf(
	    needle, sizeof(needle), "data-card=\"%s\"><div class=\"n\">", name);
	s = strstr(dom, needle);
	ck_assert_msg(s != NULL, "no card %s", name);
	return strtol(s + strlen(needle), NULL, 10);
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

/* A TVM client's REQUEST, granted before this returns. */
static struct tvmpeer *
client_granted(const char *key, const char *user, long port)
{
	struct npufarm_err err = {0};
	struct tvmpeer_grant g;
	struct tvmpeer *p = NULL;

	ck_assert_msg(
	    tvmpeer_connect(broker.farm, IO_TIMEOUT_MS, &p, &err) == 0,
	    "connect: %s", err.msg);
	ck_assert_int_eq(tvmpeer_request(p, key, user, 1), 0);
	ck_assert_msg(tvmpeer_recv_grant(p, IO_TIMEOUT_MS, &g, &err) == 0,
	    "grant: %s", err.msg);
	ck_assert_int_eq(g.port, port);
	return p;
}

/* GET @path of the API until its body contains @needle. */
static json_t *
api_wait(const char *path, const char *needle)
{
	char *body;
	json_t *v;
	int status, i;

	for (i = 0; i < 500; i++) {
		body = harness_http_get(broker.http, path, &status);
		ck_assert_int_eq(status, 200);
		if (strstr(body, needle) != NULL) {
			v = json_loads(body, 0, NULL);
			free(body);
			ck_assert_ptr_nonnull(v);
			return v;
		}
		free(body);
		sleep_ms(10);
	}
	ck_abort_msg("%s never showed '%s'", path, needle);
	return NULL;
}

/* The id of the board called @name in a /v1/boards answer, as text. */
static void
board_id(json_t *boards, const char *name, char *buf, size_t len)
{
	json_t *b;
	size_t i;

	json_array_foreach(json_object_get(boards, "boards"), i, b) {
		if (strcmp(json_string_value(json_object_get(b, "name")),
			name) == 0) {
			(void)snprintf(buf, len, "%lld",
			    (long long)json_integer_value(
				json_object_get(b, "id")));
			return;
		}
	}
	ck_abort_msg("no board %s", name);
}

/* Raw HTTP/1.0 exchange; returns the whole answer, headers included. */
static char *
http_raw(const char *hostport, const char *request)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char host[64], *port, *buf;
	size_t len = 0, cap = 1 << 20;
	ssize_t n;
	int fd;

	(void)snprintf(host, sizeof(host), "%s", hostport);
	port = strrchr(host, ':');
	ck_assert_ptr_nonnull(port);
	*port++ = '\0';
	ck_assert_int_eq(inet_pton(AF_INET, host, &sin.sin_addr), 1);
	sin.sin_port = htons((uint16_t)atoi(port));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(
	    write(fd, request, strlen(request)), (ssize_t)strlen(request));
	buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	while ((n = read(fd, buf + len, cap - len - 1)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* The value of header @name in the raw answer @resp, malloc'd, or NULL. */
static char *
header(const char *resp, const char *name)
{
	const char *end = strstr(resp, "\r\n\r\n"), *s = resp, *e;
	size_t n = strlen(name);

	while ((s = strstr(s, "\r\n")) != NULL && s < end) {
		s += 2;
		if (strncasecmp(s, name, n) == 0 && s[n] == ':') {
			s += n + 1;
			while (*s == ' ')
				s++;
			e = strstr(s, "\r\n");
			return strndup(s, (size_t)(e - s));
		}
	}
	return NULL;
}

/* The status code of the raw answer @resp. */
static int
status_of(const char *resp)
{
	int code = 0;

	ck_assert_int_eq(sscanf(resp, "HTTP/1.%*d %d", &code), 1);
	return code;
}

/* GET /: the page, its headers, revalidation and the wrong method. */
START_TEST(test_page_served)
{
	char req[512], *resp, *h, *etag, *body;

	(void)snprintf(req, sizeof(req), "GET / HTTP/1.0\r\nHost: %s\r\n\r\n",
	    broker.http);
	resp = http_raw(broker.http, req);
	ck_assert_int_eq(status_of(resp), 200);
	h = header(resp, "Content-Type");
	ck_assert_str_eq(h, "text/html; charset=utf-8");
	free(h);
	h = header(resp, "Cache-Control");
	ck_assert_str_eq(h, "no-cache");
	free(h);
	h = header(resp, "X-Content-Type-Options");
	ck_assert_str_eq(h, "nosniff");
	free(h);
	h = header(resp, "Content-Security-Policy");
	ck_assert_ptr_nonnull(h);
	ck_assert_ptr_nonnull(strstr(h, "default-src 'none'"));
	ck_assert_ptr_nonnull(strstr(h, "script-src 'sha256-"));
	ck_assert_ptr_nonnull(strstr(h, "connect-src 'self'"));
	free(h);
	etag = header(resp, "ETag");
	ck_assert_ptr_nonnull(etag);
	ck_assert_int_eq(etag[0], '"');
	body = strstr(resp, "\r\n\r\n") + 4;
	ck_assert(strncmp(body, "<!DOCTYPE html>", 15) == 0);
	ck_assert_ptr_nonnull(strstr(body, "</html>"));
	/* Self-contained: nothing is fetched from anywhere but the API.
	 * The Chart.js embedded at build time (libjs-chart.js) names its
	 * homepage in its licence header, so the page's own code is checked
	 * without it; the CSP above allows no other origin anyway. */
	{
		char *lib = strstr(body, "<script>/*!\n * Chart.js v"), *end;

		ck_assert_msg(lib != NULL, "Chart.js is not embedded");
		end = strstr(lib + 8, "</script>");
		ck_assert_ptr_nonnull(end);
		memset(lib, ' ', (size_t)(end - lib));
	}
	ck_assert_ptr_null(strstr(body, "http://"));
	ck_assert_ptr_null(strstr(body, "https://"));
	ck_assert_ptr_null(strstr(body, "<script src"));
	ck_assert_ptr_null(strstr(body, "<link rel=\"stylesheet\""));
	ck_assert_ptr_null(strstr(body, "@import"));
	ck_assert_ptr_null(strstr(body, "innerHTML"));
	free(resp);

	/* Revalidation with the ETag (here in a list, weak): 304, no body. */
	(void)snprintf(req, sizeof(req),
	    "GET / HTTP/1.0\r\nHost: %s\r\nIf-None-Match: \"x\", W/%s\r\n\r\n",
	    broker.http, etag);
	resp = http_raw(broker.http, req);
	ck_assert_int_eq(status_of(resp), 304);
	ck_assert_str_eq(strstr(resp, "\r\n\r\n"), "\r\n\r\n");
	free(resp);
	free(etag);

	(void)snprintf(req, sizeof(req),
	    "POST / HTTP/1.0\r\nHost: %s\r\nContent-Length: 0\r\n\r\n",
	    broker.http);
	resp = http_raw(broker.http, req);
	ck_assert_int_eq(status_of(resp), 405);
	h = header(resp, "Allow");
	ck_assert_str_eq(h, "GET");
	free(h);
	free(resp);

	/* Other paths are still the API's. */
	body = harness_http_get(broker.http, "/index.html", &(int){0});
	ck_assert_ptr_nonnull(strstr(body, "no such API path"));
	free(body);
}
END_TEST

/*
 * A farm with history, shown by the page: A (rk3588) had a lease that
 * ended unobserved and is leased to carol now, with dave waiting; B
 * (hikey) lost its connection during bob's lease; C (imx8) is drained.
 */
START_TEST(test_browser_shows_farm)
{
	struct npufarm_err err = {0};
	char matchkey[TVMPEER_MAX_STR], url[128], id_a[32], id_b[32], id_c[32],
	    *dom;
	struct tvmpeer *a, *b, *c, *alice, *bob, *carol, *dave;
	json_t *boards, *v;
	char *body;
	int status;

	a = board_up("rk3588", 9090);
	alice = client_granted("rk3588", "alice", 9090);
	/* The TVM server PUTs again after a session: lease 1 is over. */
	ck_assert_int_eq(tvmpeer_matchkey("rk3588", matchkey, 256), 0);
	ck_assert_int_eq(tvmpeer_put(a, "rk3588", 9090, matchkey, NULL), 0);
	ck_assert_msg(
	    tvmpeer_recv_ok(a, IO_TIMEOUT_MS, &err) == 0, "PUT: %s", err.msg);
	b = board_up("hikey", 9092);
	bob = client_granted("hikey", "bob", 9092);
	tvmpeer_free(b); /* lease 2: lost with its board */
	carol = client_granted("rk3588", "carol", 9090);
	ck_assert_msg(
	    tvmpeer_connect(broker.farm, IO_TIMEOUT_MS, &dave, &err) == 0,
	    "connect: %s", err.msg);
	ck_assert_int_eq(tvmpeer_request(dave, "rk3588", "dave", 2), 0);
	c = board_up("imx8", 9093);

	json_decref(api_wait("/v1/leases", "\"outcome\":\"lost\""));
	json_decref(api_wait("/v1/queue", "\"waiting\":1"));
	boards = api_wait("/v1/boards", "127.0.0.1:9093");
	board_id(boards, "127.0.0.1:9090", id_a, sizeof(id_a));
	board_id(boards, "127.0.0.1:9092", id_b, sizeof(id_b));
	board_id(boards, "127.0.0.1:9093", id_c, sizeof(id_c));
	json_decref(boards);
	(void)snprintf(url, sizeof(url), "/v1/boards/%s/drain", id_c);
	body = harness_http(broker.http, "POST", url, &status);
	ck_assert_int_eq(status, 200);
	free(body);
	v = api_wait("/v1/boards", "\"state\":\"draining\"");
	json_decref(v);

	(void)snprintf(url, sizeof(url), "http://%s/", broker.http);
	dom = dump_dom(url);

	/* Boards: state, key, holder, last outcome. */
	ck_assert_int_eq(tbody_rows(dom, "boards"), 3);
	assert_row(dom, "data-board-id", id_a, ">127.0.0.1:9090<", ">rk3588<",
	    "s-leased\">leased<",
	    "c-holder\">carol (127.0.0.1:", ">not observed<");
	assert_row(dom, "data-board-id", id_b, ">127.0.0.1:9092<", ">hikey<",
	    "s-offline\">offline<", "c-holder\">–<", "o-lost\">lost<");
	assert_row(dom, "data-board-id", id_c, ">imx8<",
	    "s-draining\">draining<", "c-holder\">–<", "c-outcome\">–<");
	ck_assert_int_eq(card(dom, "boards"), 3);
	ck_assert_int_eq(card(dom, "leased"), 1);
	ck_assert_int_eq(card(dom, "offline"), 1);
	ck_assert_int_eq(card(dom, "draining"), 1);
	ck_assert_int_eq(card(dom, "waiting"), 1);

	/* The queue: rk3588 with dave waiting; hikey has nothing left. */
	assert_row(dom, "data-key", "rk3588", "<td class=\"num\">1</td>",
	    "c-waiting\">1<");
	assert_row(dom, "data-key", "imx8", ">imx8<");
	ck_assert_ptr_null(row(dom, "data-key", "hikey"));
	ck_assert_int_eq(tbody_rows(dom, "requests"), 1);
	assert_row(dom, "data-user", "dave", ">rk3588<", ">dave<",
	    "<td class=\"num\">2</td>");

	/* Leases, newest first: open, lost, unobserved. */
	ck_assert_int_eq(tbody_rows(dom, "leases"), 3);
	assert_row(dom, "data-lease-id", "1", ">alice<", ">127.0.0.1:9090<",
	    ">not observed<", "registered again");
	assert_row(dom, "data-lease-id", "2", ">bob<", ">hikey<",
	    "o-lost\">lost<", "connection closed");
	assert_row(dom, "data-lease-id", "3", ">carol<", ">open<");
	ck_assert(strstr(dom, "data-lease-id=\"3\"") <
		  strstr(dom, "data-lease-id=\"1\""));

	/* The jobs API answers (no jobs yet): the section is shown, and no
	 * error. */
	ck_assert_ptr_nonnull(strstr(dom, "data-jobs=\"present\""));
	ck_assert_ptr_nonnull(strstr(dom, "<div id=\"error\" role=\"alert\">"
					  "</div>"));
	ck_assert_int_eq(tbody_rows(dom, "quarantine"), 1);
	ck_assert_ptr_nonnull(strstr(dom, "no board is quarantined"));
	free(dom);

	screenshot(url, "dashboard.png");
	tvmpeer_free(c);
	tvmpeer_free(dave);
	tvmpeer_free(carol);
	tvmpeer_free(bob);
	tvmpeer_free(alice);
	tvmpeer_free(a);
}
END_TEST

/* Canned API answers for what the broker does not serve yet. */
static const struct {
	const char *path;
	const char *body;
} canned[] = {
    {"/v1/boards",
	"{\"boards\":["
	"{\"id\":1,\"name\":\"npu-a\",\"kind\":\"agent\",\"key\":\"rk3588\","
	"\"state\":\"quarantined\",\"free\":0,\"lease\":null,"
	"\"reason\":\"health check failed: exit status 3\","
	"\"last_seen\":\"2026-01-02T03:04:05.000000Z\",\"detail\":null},"
	"{\"id\":2,\"name\":\"npu-b\",\"kind\":\"agent\",\"key\":\"rk3588\","
	"\"state\":\"quarantined\",\"free\":0,\"lease\":null,"
	"\"quarantine\":{\"reason\":\"3 crashed sessions in a row\"}},"
	"{\"id\":3,\"name\":\"npu-c\",\"kind\":\"agent\",\"key\":\"rk3588\","
	"\"state\":\"idle\",\"free\":1,\"lease\":null,\"detail\":null,"
	"\"last_outcome\":\"timeout\"},"
	"{\"id\":4,\"name\":\"<img src=x onerror=alert(1)>\",\"kind\":\"tvm\","
	"\"key\":\"k&<b>\",\"state\":\"<i>odd</i>\",\"lease\":null}"
	"]}"},
    {"/v1/queue", "{\"queues\":[]}"},
    {"/v1/leases", "{\"leases\":[]}"},
    {"/v1/jobs",
	"{\"jobs\":["
	"{\"id\":7,\"key\":\"rk3588\",\"user\":\"alice\",\"state\":\"running\","
	"\"tasks\":{\"total\":10,\"ok\":4,\"timeout\":1,\"exception\":1,"
	"\"queued\":4}},"
	"{\"id\":8,\"key\":\"rk3588\",\"user\":\"bob\",\"state\":\"done\","
	"\"counts\":{\"ok\":3,\"crash\":1}},"
	"{\"id\":9,\"key\":\"rk3588\",\"user\":\"<script>x</script>\"}"
	"]}"},
    /* The job page: candidates of every kind, on two boards. */
    {"/v1/jobs/7",
	"{\"id\":7,\"key\":\"rk3588\",\"user\":\"alice\",\"state\":\"running\","
	"\"tasks\":{\"total\":6,\"ok\":3,\"crash\":1,\"wrong\":1,"
	"\"running\":1,\"queued\":0},\"task_list\":["
	"{\"index\":0,\"name\":\"tile=8\",\"state\":\"done\",\"outcome\":"
	"\"ok\",\"board\":\"npu-a\",\"costs\":[0.003,0.004,0.005],"
	"\"group\":\"float32[64,64]\",\"detail\":null},"
	"{\"index\":1,\"name\":\"tile=16\",\"state\":\"done\",\"outcome\":"
	"\"ok\",\"board\":\"npu-b\",\"costs\":[0.001,0.002,0.002],"
	"\"group\":\"float32[64,64]\",\"detail\":null},"
	"{\"index\":2,\"name\":\"crash\",\"state\":\"done\",\"outcome\":"
	"\"crash\",\"board\":\"npu-a\",\"costs\":null,"
	"\"detail\":\"SIGSEGV (signal 11)\"},"
	"{\"index\":3,\"name\":\"fast\",\"state\":\"done\",\"outcome\":"
	"\"wrong\",\"board\":\"npu-a\",\"costs\":null,"
	"\"detail\":\"args[2][1,0] = 0 but the reference has 4.8\"},"
	"{\"index\":4,\"name\":\"tile=32\",\"state\":\"done\",\"outcome\":"
	"\"ok\",\"board\":\"npu-b\",\"costs\":[0.0025],\"detail\":null},"
	"{\"index\":5,\"name\":\"<b>x</b>\",\"state\":\"running\","
	"\"outcome\":null,\"board\":\"npu-b\",\"costs\":null}]}"},
};

/* Answer one HTTP request on @fd from canned[] or the page @html. */
static void
serve_one(int fd, const char *html)
{
	char req[8192], path[256], head[256];
	const char *body = NULL, *type = "application/json";
	size_t len = 0, i;
	ssize_t n;
	int code = 200;

	while (len < sizeof(req) - 1 &&
	       (n = read(fd, req + len, sizeof(req) - 1 - len)) > 0) {
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	req[len] = '\0';
	if (sscanf(req, "GET %255[^? ]", path) != 1)
		path[0] = '\0';
	if (strcmp(path, "/") == 0) {
		body = html;
		type = "text/html; charset=utf-8";
	}
	for (i = 0; body == NULL && i < sizeof(canned) / sizeof(canned[0]); i++)
		if (strcmp(path, canned[i].path) == 0)
			body = canned[i].body;
	if (body == NULL) {
		code = 404;
		body = "{\"error\":\"no such API path\"}";
	}
	n = snprintf(head, sizeof(head),
	    "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n",
	    code, type, strlen(body));
	if (write(fd, head, (size_t)n) == n)
		(void)!write(fd, body, strlen(body));
	close(fd);
}

/*
 * Serve the broker's page next to canned[] from a child (it dies with the
 * test); the page's URL, with @suffix ("#job=7"), into @url.  Returns the
 * child's pid, to kill.
 */
static pid_t
canned_start(const char *suffix, char *url, size_t len)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t slen = sizeof(sin);
	char *html;
	int lfd, status;
	pid_t pid;

	html = harness_http_get(broker.http, "/", &status);
	ck_assert_int_eq(status, 200);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, 64), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd;

		/* Dies with the test, whatever way the test ends. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(4 * BROWSER_TIMEOUT_S);
		for (;;)
			if ((fd = accept(lfd, NULL, NULL)) >= 0)
				serve_one(fd, html);
	}
	close(lfd);
	free(html);
	(void)snprintf(
	    url, len, "http://127.0.0.1:%d/%s", ntohs(sin.sin_port), suffix);
	return pid;
}

/* The page from the broker, next to canned API answers: jobs, quarantine. */
START_TEST(test_browser_jobs_quarantine_and_escaping)
{
	char url[128], *dom;
	pid_t pid;

	pid = canned_start("", url, sizeof(url));
	dom = dump_dom(url);
	screenshot(url, "dashboard-jobs.png");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	/* Jobs: progress from the counts, one badge per outcome present. */
	ck_assert_ptr_nonnull(strstr(dom, "data-jobs=\"present\""));
	ck_assert_ptr_nonnull(strstr(dom, "<section id=\"jobs-section\" "
					  "class=\"\">"));
	ck_assert_int_eq(tbody_rows(dom, "jobs"), 3);
	assert_row(dom, "data-job-id", "7", ">alice<", "s-running\">running<",
	    "</span> 6/10</td>", ">ok 4<", ">timeout 1<", ">exception 1<");
	assert_row(dom, "data-job-id", "8", ">bob<", "s-done\">done<",
	    "</span> 4/4</td>", ">ok 3<", ">crash 1<");
	assert_row(dom, "data-job-id", "9", "&lt;script&gt;x&lt;/script&gt;",
	    "</span> 0/0</td>");

	/* Quarantined boards with their reason, whatever field holds it. */
	ck_assert_int_eq(tbody_rows(dom, "quarantine"), 2);
	ck_assert_int_eq(card(dom, "quarantined"), 2);
	assert_row(dom, "data-board-id", "1", ">npu-a<",
	    ">health check failed: exit status 3<");
	assert_row(dom, "data-board-id", "2", ">npu-b<",
	    ">3 crashed sessions in a row<");
	assert_row(dom, "data-board-id", "3", "o-timeout\">timeout<");

	/* Hostile text stays text; an unknown state gets a neutral badge. */
	assert_row(dom, "data-board-id", "4",
	    ">&lt;img src=x onerror=alert(1)&gt;<", ">k&amp;&lt;b&gt;<",
	    "s-other\">&lt;i&gt;odd&lt;/i&gt;<");
	ck_assert_ptr_null(strstr(dom, "<img"));
	ck_assert_ptr_null(strstr(dom, "<i>"));
	free(dom);
}
END_TEST

/*
 * The job page (#job=7): candidates best first with outcome, best and
 * median cost, board and detail; failure rates per board; the progress
 * bar in outcome colours; and the chart drawn by the embedded Chart.js,
 * one bar per candidate, failures marked.
 */
START_TEST(test_browser_job_page)
{
	char url[128], *dom, *a, *b2;
	pid_t pid;

	pid = canned_start("#job=7", url, sizeof(url));
	dom = dump_dom(url);
	screenshot(url, "dashboard-job.png");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	ck_assert_ptr_nonnull(strstr(dom, "data-view=\"job\""));
	ck_assert_ptr_nonnull(strstr(dom, "<section id=\"job-section\" "
					  "class=\"\">"));
	ck_assert_ptr_nonnull(strstr(dom, "<section id=\"boards-section\" "
					  "class=\"hidden\">"));
	ck_assert_ptr_nonnull(strstr(dom, ">Job 7<"));
	ck_assert_int_eq(tbody_rows(dom, "job-tasks"), 6);
	/* Best first: tile=16 (median 2 ms), tile=32, tile=8; then the rest. */
	a = strstr(dom, "data-task-idx=\"1\"");
	b2 = strstr(dom, "data-task-idx=\"4\"");
	ck_assert(a != NULL && b2 != NULL && a < b2);
	ck_assert(b2 < strstr(dom, "data-task-idx=\"0\""));
	ck_assert(strstr(dom, "data-task-idx=\"0\"") <
		  strstr(dom, "data-task-idx=\"2\""));
	assert_row(dom, "data-task-idx", "1", ">tile=16<", "o-ok\">ok<",
	    ">1.00 ms<", ">2.00 ms<", ">npu-b<", ">float32[64,64]<");
	assert_row(dom, "data-task-idx", "3", "o-wrong\">wrong<",
	    ">args[2][1,0] = 0 but the reference has 4.8<");
	assert_row(dom, "data-task-idx", "2", "o-crash\">crash<",
	    ">SIGSEGV (signal 11)<");
	assert_row(dom, "data-task-idx", "5", "&lt;b&gt;x&lt;/b&gt;",
	    "s-running\">running<");
	/* Failure rates per board: npu-a ran 3, 2 failed. */
	assert_row(
	    dom, "data-job-board", "npu-a", ">3<", ">1<", ">2<", ">67 %<");
	assert_row(dom, "data-job-board", "npu-b", ">2<", ">0 %<");
	/* The progress bar, one segment per outcome, and the chart. */
	ck_assert_ptr_nonnull(strstr(dom, "data-seg=\"ok\""));
	ck_assert_ptr_nonnull(strstr(dom, "data-seg=\"wrong\""));
	ck_assert_ptr_nonnull(strstr(dom, "data-seg=\"crash\""));
	ck_assert_msg(strstr(dom, "data-chart=\"drawn\"") != NULL &&
			  strstr(dom, "data-points=\"6\"") != NULL &&
			  strstr(dom, "data-failed=\"2\"") != NULL,
	    "the chart was not drawn");
	ck_assert_ptr_null(strstr(dom, "<b>x"));
	free(dom);
}
END_TEST

/*
 * The job page of a job the test ran on a real agent: every number and
 * outcome it shows is the one the API (and so the ledger) has.
 */
START_TEST(test_browser_real_job)
{
	const char *bin = getenv("NPUFARM_AGENT_BIN");
	char work[320], log[320], url[160], json[2048], idx[16];
	char ref[65], good[65], bad[65], crash[65], *dom;
	const char *argv[] = {bin, "--broker", broker.farm, "--key", "cpu",
	    "--name", "n0", "--workdir", work, NULL};
	json_t *job, *t;
	pid_t agent;
	size_t i;
	long id;

	ck_assert_ptr_nonnull(bin);
	(void)snprintf(work, sizeof(work), "%s/work", broker.dir);
	(void)snprintf(log, sizeof(log), "%s/agent.log", broker.dir);
	agent = harness_spawn(bin, argv, log);
	harness_wait_sql(broker.db,
	    "SELECT count(*) FROM boards WHERE state = 'idle'", "1\n", 30000);
	harness_put_kernel(broker.http, NPUFARM_TEST_KERNELS, "matmul_t8", ref);
	harness_put_kernel(
	    broker.http, NPUFARM_TEST_KERNELS, "matmul_t16", good);
	harness_put_kernel(broker.http, NPUFARM_TEST_KERNELS, "wrong", bad);
	harness_put_kernel(broker.http, NPUFARM_TEST_KERNELS, "crash", crash);
#define ARGS                                                                 \
	"\"args\":[{\"dtype\":\"float32\",\"shape\":[32,32],"                \
	"\"fill\":{\"random\":1}},{\"dtype\":\"float32\",\"shape\":[32,32]," \
	"\"fill\":{\"random\":2}},{\"dtype\":\"float32\",\"shape\":[32,32]}],"
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"cpu\",\"user\":\"erin\",\"tasks\":["
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"matmul\","
	    "\"name\":\"t16\"," ARGS "\"measurement\":{\"repeat\":3},"
	    "\"check\":{\"ref\":\"%s\"}},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"matmul\","
	    "\"name\":\"t8\"," ARGS "\"measurement\":{\"repeat\":3}},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"matmul\","
	    "\"name\":\"fast\"," ARGS "\"check\":{\"ref\":\"%s\"}},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"name\":\"crash\"}]}",
	    good, ref, ref, bad, ref, crash);
#undef ARGS
	id = harness_job_submit(broker.http, json);
	job = harness_job_wait(broker.http, id);
	(void)snprintf(url, sizeof(url), "http://%s/#job=%ld", broker.http, id);
	dom = dump_dom(url);
	screenshot(url, "dashboard-real-job.png");
	ck_assert_int_eq(tbody_rows(dom, "job-tasks"), 4);
	json_array_foreach(json_object_get(job, "task_list"), i, t) {
		char cell[64];

		(void)snprintf(idx, sizeof(idx), "%lld",
		    (long long)json_integer_value(json_object_get(t, "index")));
		(void)snprintf(cell, sizeof(cell), "\">%s<",
		    json_string_value(json_object_get(t, "outcome")));
		assert_row(dom, "data-task-idx", idx, cell, ">n0<");
	}
	assert_row(dom, "data-task-idx", "2", "o-wrong\">wrong<",
	    ">args[2][1,0] = 0 but the reference has");
	assert_row(dom, "data-task-idx", "3", "o-crash\">crash<", ">SIGSEGV");
	assert_row(dom, "data-job-board", "n0", ">4<", ">2<", ">50 %<");

	ck_assert_msg(strstr(dom, "data-chart=\"drawn\"") != NULL &&
			  strstr(dom, "data-points=\"4\"") != NULL &&
			  strstr(dom, "data-failed=\"2\"") != NULL,
	    "the chart does not show the job");
	ck_assert_ptr_nonnull(strstr(dom, "user erin"));
	/* The farm page: the board's failure rate over all it ran. */
	free(dom);
	(void)snprintf(url, sizeof(url), "http://%s/", broker.http);
	dom = dump_dom(url);
	assert_row(dom, "data-board-id", "1", ">n0<",
	    "title=\"2 of 4 runs failed (sessions and tasks)\">50 %<");
	free(dom);
	json_decref(job);
	ck_assert_int_eq(harness_reap(agent, 20000), 0);
}
END_TEST

/*
 * With an API token the page's API calls get 401 until the browser has
 * the token: it says so, takes the token once from /#token=T, keeps it in
 * localStorage (the profile persists between runs) and then refreshes.
 */
START_TEST(test_browser_token)
{
	char tok[400], url[128], out[400], *dom = NULL;
	const char *extra[] = {"--api-token-file", tok, NULL};
	FILE *f;
	int i;

	(void)snprintf(tok, sizeof(tok), "%s/api.token", broker.dir);
	f = fopen(tok, "w");
	ck_assert_ptr_nonnull(f);
	fputs("page-token-1\n", f);
	fclose(f);
	ck_assert_int_eq(harness_broker_stop(&broker), 0);
	harness_broker_restart(&broker, extra);

	(void)snprintf(url, sizeof(url), "http://%s/", broker.http);
	(void)snprintf(out, sizeof(out), "%s/dom.html", broker.dir);
	for (i = 0; i < BROWSER_TRIES; i++) {
		browse(url, "--dump-dom", out);
		dom = slurp(out);
		if (strstr(dom, "data-auth=\"needed\"") != NULL)
			break;
		free(dom);
		dom = NULL;
	}
	ck_assert_msg(dom != NULL, "the page never met the 401");
	ck_assert_ptr_nonnull(strstr(dom, "HTTP 401"));
	ck_assert_ptr_nonnull(strstr(dom, "enter the API token above"));
	ck_assert_ptr_null(strstr(dom, "data-refreshes="));
	free(dom);

	(void)snprintf(
	    url, sizeof(url), "http://%s/#token=page-token-1", broker.http);
	dom = dump_dom(url);
	ck_assert_ptr_nonnull(strstr(dom, "data-auth=\"ok\""));
	free(dom);
	/* Remembered: the plain URL works from now on. */
	(void)snprintf(url, sizeof(url), "http://%s/", broker.http);
	dom = dump_dom(url);
	ck_assert_ptr_nonnull(strstr(dom, "data-auth=\"ok\""));
	free(dom);
}
END_TEST

static Suite *
dashboard_suite(void)
{
	Suite *s = suite_create("dashboard");
	TCase *tc = tcase_create("browser");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 4 * BROWSER_TIMEOUT_S);
	tcase_add_test(tc, test_page_served);
	tcase_add_test(tc, test_browser_shows_farm);
	tcase_add_test(tc, test_browser_jobs_quarantine_and_escaping);
	tcase_add_test(tc, test_browser_job_page);
	tcase_add_test(tc, test_browser_real_job);
	tcase_add_test(tc, test_browser_token);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	if (!find_chromium()) {
		if (getenv("NPUFARM_REQUIRE_CHROMIUM") != NULL) {
			printf("Bail out! chromium not found (set "
			       "NPUFARM_CHROMIUM or apt-get install "
			       "chromium)\n");
			return EXIT_FAILURE;
		}
		printf("1..0 # SKIP chromium not found (apt-get install "
		       "chromium)\n");
		return EXIT_SUCCESS;
	}
	return harness_run(dashboard_suite());
}
