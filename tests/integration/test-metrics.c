/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /metrics on the real broker after known work: tracker leases and
 * requests that end every way the tracker ends them, relayed sessions of a
 * board that dials in, TVM sessions and a native task on the real agent
 * (fake TVM runtime, a real kernel), jobs that expire or wait.  The whole
 * page goes through a strict parser of the text format (0.0.4) written
 * here; then each value is checked against what the test did.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "err.h"
#include "harness.h"
#include "tvmpeer.h"
#include "tvmrpc.h"
#include "tvmrpc_board.h"
#include "tvmrpc_client.h"

#define T_MS 10000

static struct harness_broker b;
static pid_t agent;

/* ---- a strict parser of the text exposition format ------------------ */

#define MAX_SAMPLES  4096
#define MAX_FAMILIES 256

/* In the parser: refuse the page with a reason in pg->err. */
#define REQ(cond, ...)                             \
	do {                                       \
		if (!(cond)) {                     \
			page_err(pg, __VA_ARGS__); \
			return -1;                 \
		}                                  \
	} while (0)

struct family {
	char name[128];
	char type[16];
	int help, seen_samples, closed;
};

struct sample {
	char name[128];
	char labels[512]; /* as written, without braces */
	char base[512];   /* the same without le, for histograms */
	char le[32];      /* "" when none */
	double value;
	struct family *fam;
};

struct page {
	char err[256]; /* why page_parse() refused the page */
	struct family fams[MAX_FAMILIES];
	size_t nfams;
	struct sample *s;
	size_t n;
};

static void page_err(struct page *pg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
page_err(struct page *pg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(pg->err, sizeof(pg->err), fmt, ap);
	va_end(ap);
}

static int
name_ok(const char *p, size_t n, int labelname)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		char c = p[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    c == '_' || (!labelname && c == ':');

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return 0;
	}
	return 1;
}

static struct family *
fam_find(struct page *pg, const char *name)
{
	size_t i;

	for (i = 0; i < pg->nfams; i++)
		if (strcmp(pg->fams[i].name, name) == 0)
			return &pg->fams[i];
	return NULL;
}

static struct family *
fam_get(struct page *pg, const char *name)
{
	struct family *f = fam_find(pg, name);
	size_t n = strlen(name);

	if (f != NULL || pg->nfams == MAX_FAMILIES || n >= sizeof(f->name))
		return f;
	f = &pg->fams[pg->nfams++];
	memset(f, 0, sizeof(*f));
	memcpy(f->name, name, n + 1);
	return f;
}

/* The family of sample @name: its own TYPE, or a histogram's suffixes. */
static struct family *
sample_family(struct page *pg, const char *name)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	struct family *f = fam_find(pg, name);
	char base[128];
	size_t i, n = strlen(name), k;

	if (f != NULL && f->type[0] != '\0' &&
	    strcmp(f->type, "histogram") != 0)
		return f;
	for (i = 0; i < 3; i++) {
		k = strlen(sfx[i]);
		if (n > k && strcmp(name + n - k, sfx[i]) == 0) {
			(void)snprintf(
			    base, sizeof(base), "%.*s", (int)(n - k), name);
			f = fam_find(pg, base);
			if (f != NULL && strcmp(f->type, "histogram") == 0)
				return f;
		}
	}
	return NULL;
}

/* Parse `{a="x",b="y"}` at *@pp; fills labels, base and le. */
static int
parse_labels(struct page *pg, const char **pp, struct sample *s, int lineno)
{
	const char *p = *pp + 1, *start = p, *nm, *val;
	char names[16][64];
	size_t nnames = 0, i, nlen, blen = 0;

	s->le[0] = '\0';
	s->base[0] = '\0';
	while (*p != '}') {
		nm = p;
		while (*p != '=' && *p != '\0' && *p != '\n')
			p++;
		nlen = (size_t)(p - nm);
		REQ(*p == '=' && name_ok(nm, nlen, 1),
		    "line %d: bad label name", lineno);
		REQ(nlen < 64 && nnames < 16, "line %d", lineno);
		for (i = 0; i < nnames; i++)
			REQ(strncmp(names[i], nm, nlen) != 0 ||
				names[i][nlen] != '\0',
			    "line %d: label %.*s twice", lineno, (int)nlen, nm);
		memcpy(names[nnames], nm, nlen);
		names[nnames++][nlen] = '\0';
		REQ(p[1] == '"', "line %d: unquoted value", lineno);
		p += 2;
		val = p;
		while (*p != '"') {
			REQ(*p != '\0' && *p != '\n',
			    "line %d: unterminated value", lineno);
			if (*p == '\\') {
				REQ(p[1] == '\\' || p[1] == '"' || p[1] == 'n',
				    "line %d: bad escape \\%c", lineno, p[1]);
				p++;
			}
			p++;
		}
		if (nlen == 2 && strncmp(nm, "le", 2) == 0) {
			REQ((size_t)(p - val) < sizeof(s->le), "too long");
			(void)snprintf(
			    s->le, sizeof(s->le), "%.*s", (int)(p - val), val);
		} else {
			blen += (size_t)snprintf(s->base + blen,
			    sizeof(s->base) - blen, "%s%.*s", blen ? "," : "",
			    (int)(p + 1 - nm), nm);
			REQ(blen < sizeof(s->base), "too long");
		}
		p++;
		if (*p == ',') {
			p++;
			REQ(*p != '}', "line %d: trailing comma", lineno);
		} else
			REQ(*p == '}', "line %d: expected , or }", lineno);
	}
	REQ((size_t)(p - start) < sizeof(s->labels), "too long");
	(void)snprintf(
	    s->labels, sizeof(s->labels), "%.*s", (int)(p - start), start);
	*pp = p + 1;
	return 0;
}

static int
parse_value(struct page *pg, const char *v, double *ret, int lineno)
{
	char *end;
	double d;

	*ret = strcmp(v, "+Inf") == 0   ? INFINITY
	       : strcmp(v, "-Inf") == 0 ? -INFINITY
					: NAN;
	if (strcmp(v, "+Inf") == 0 || strcmp(v, "-Inf") == 0 ||
	    strcmp(v, "NaN") == 0)
		return 0;
	errno = 0;
	d = strtod(v, &end);
	REQ(*v != '\0' && *end == '\0' && errno == 0 && isfinite(d),
	    "line %d: bad value '%s'", lineno, v);
	*ret = d;
	return 0;
}

/* The histogram rules, for every label set of every histogram family. */
static int
check_histograms(struct page *pg)
{
	size_t i, j, f;

	for (f = 0; f < pg->nfams; f++) {
		struct family *fam = &pg->fams[f];
		char bucket[160], sum[160], count[160];

		if (strcmp(fam->type, "histogram") != 0)
			continue;
		(void)snprintf(bucket, sizeof(bucket), "%s_bucket", fam->name);
		(void)snprintf(sum, sizeof(sum), "%s_sum", fam->name);
		(void)snprintf(count, sizeof(count), "%s_count", fam->name);
		for (i = 0; i < pg->n; i++) {
			struct sample *s = &pg->s[i];
			double prev_le = -INFINITY, prev = 0, inf = -1;
			int nsum = 0, ncount = 0;
			double cnt = -1;

			if (strcmp(s->name, bucket) != 0)
				continue;
			/* The first bucket of a label set: walk its set. */
			for (j = 0; j < i; j++)
				if (strcmp(pg->s[j].name, bucket) == 0 &&
				    strcmp(pg->s[j].base, s->base) == 0)
					break;
			if (j < i)
				continue;
			for (j = i; j < pg->n; j++) {
				struct sample *t = &pg->s[j];
				double le;

				if (strcmp(t->base, s->base) != 0)
					continue;
				if (strcmp(t->name, bucket) == 0) {
					REQ(inf < 0,
					    "%s{%s}: bucket after +Inf",
					    fam->name, s->base);
					if (parse_value(pg, t->le, &le, 0) < 0)
						return -1;
					REQ(le > prev_le,
					    "%s{%s}: le not increasing",
					    fam->name, s->base);
					REQ(t->value >= prev,
					    "%s{%s}: not cumulative at le=%s",
					    fam->name, s->base, t->le);
					prev_le = le;
					prev = t->value;
					if (isinf(le))
						inf = t->value;
				} else if (strcmp(t->name, sum) == 0) {
					nsum++;
				} else if (strcmp(t->name, count) == 0) {
					ncount++;
					cnt = t->value;
				}
			}
			REQ(inf >= 0, "%s{%s}: no +Inf bucket", fam->name,
			    s->base);
			REQ(nsum == 1 && ncount == 1,
			    "%s{%s}: %d _sum, %d _count", fam->name, s->base,
			    nsum, ncount);
			REQ(cnt == inf, "%s{%s}: _count %g != +Inf %g",
			    fam->name, s->base, cnt, inf);
		}
	}
	return 0;
}

/*
 * Parse the whole page @text strictly: every line is a HELP or TYPE line,
 * another comment, or a sample `name{labels} value` (no timestamps); names
 * valid; every sample's metric has a TYPE before it; a family's samples
 * are together; no sample twice; histograms are well formed.
 */
static int
page_parse(const char *text, struct page *pg)
{
	const char *p = text, *eol;
	char line[2048], name[128], word[16], extra[2];
	int lineno = 0;
	struct family *cur = NULL;
	size_t i;

	memset(pg, 0, sizeof(*pg));
	pg->s = calloc(MAX_SAMPLES, sizeof(*pg->s));
	if (pg->s == NULL)
		abort();
	REQ(*text != '\0', "empty page");
	while (*p != '\0') {
		eol = strchr(p, '\n');
		REQ(eol != NULL, "the page does not end in a newline");
		REQ((size_t)(eol - p) < sizeof(line), "too long");
		memcpy(line, p, (size_t)(eol - p));
		line[eol - p] = '\0';
		p = eol + 1;
		lineno++;
		REQ(line[0] != '\0', "line %d: empty", lineno);
		REQ(strchr(line, '\r') == NULL, "line %d: CR", lineno);
		if (strncmp(line, "# HELP ", 7) == 0 ||
		    strncmp(line, "# TYPE ", 7) == 0) {
			struct family *f;
			const char *rest = line + 7;
			size_t n = strcspn(rest, " ");

			REQ(name_ok(rest, n, 0) && n < sizeof(name),
			    "line %d: bad name", lineno);
			memcpy(name, rest, n);
			name[n] = '\0';
			f = fam_get(pg, name);
			REQ(f != NULL, "too many families");
			REQ(!f->seen_samples, "line %d: %s after its samples",
			    lineno, line);
			if (line[2] == 'H') {
				REQ(!f->help && rest[n] == ' ' &&
					rest[n + 1] != '\0',
				    "line %d: HELP twice or empty", lineno);
				f->help = 1;
				continue;
			}
			REQ(f->type[0] == '\0', "line %d: TYPE twice", lineno);
			REQ(sscanf(rest + n, " %15s%1s", word, extra) == 1,
			    "line %d: bad TYPE", lineno);
			REQ(strcmp(word, "counter") == 0 ||
				strcmp(word, "gauge") == 0 ||
				strcmp(word, "histogram") == 0 ||
				strcmp(word, "summary") == 0 ||
				strcmp(word, "untyped") == 0,
			    "line %d: type %s", lineno, word);
			(void)snprintf(f->type, sizeof(f->type), "%s", word);
			/* Our conventions: counters end in _total; units. */
			if (strcmp(word, "counter") == 0)
				REQ(n > 6 &&
					strcmp(name + n - 6, "_total") == 0,
				    "line %d: counter %s", lineno, name);
			continue;
		}
		if (line[0] == '#')
			continue; /* a plain comment */
		{
			struct sample *s = &pg->s[pg->n];
			const char *q = line;
			size_t n = strcspn(q, "{ ");

			REQ(pg->n < MAX_SAMPLES, "too long");
			REQ(name_ok(q, n, 0) && n < sizeof(s->name),
			    "line %d: bad metric name", lineno);
			memcpy(s->name, q, n);
			s->name[n] = '\0';
			q += n;
			if (*q == '{')
				if (parse_labels(pg, &q, s, lineno) < 0)
					return -1;
			REQ(*q == ' ' && q[1] != ' ' && q[1] != '\0',
			    "line %d: expected one space and a value", lineno);
			REQ(strchr(q + 1, ' ') == NULL,
			    "line %d: a timestamp or junk after the value",
			    lineno);
			if (parse_value(pg, q + 1, &s->value, lineno) < 0)
				return -1;
			s->fam = sample_family(pg, s->name);
			REQ(s->fam != NULL, "line %d: %s has no TYPE", lineno,
			    s->name);
			REQ(!s->fam->closed,
			    "line %d: %s: its family's samples are not "
			    "together",
			    lineno, s->name);
			if (cur != NULL && cur != s->fam)
				cur->closed = 1;
			cur = s->fam;
			s->fam->seen_samples = 1;
			if (strcmp(s->fam->type, "histogram") == 0 &&
			    strlen(s->name) > 7 &&
			    strcmp(s->name + strlen(s->name) - 7, "_bucket") ==
				0)
				REQ(s->le[0] != '\0',
				    "line %d: bucket without le", lineno);
			for (i = 0; i < pg->n; i++)
				REQ(strcmp(pg->s[i].name, s->name) != 0 ||
					strcmp(pg->s[i].labels, s->labels) != 0,
				    "line %d: sample twice", lineno);
			pg->n++;
		}
	}
	for (i = 0; i < pg->nfams; i++)
		REQ(pg->fams[i].type[0] != '\0', "%s: HELP without TYPE",
		    pg->fams[i].name);
	return check_histograms(pg);
}

static void
page_free(struct page *pg)
{
	free(pg->s);
	pg->s = NULL;
}

/* The value of sample @name{@labels}; NAN if absent. */
static double
val(const struct page *pg, const char *name, const char *labels)
{
	size_t i;

	for (i = 0; i < pg->n; i++)
		if (strcmp(pg->s[i].name, name) == 0 &&
		    strcmp(pg->s[i].labels, labels) == 0)
			return pg->s[i].value;
	return NAN;
}

#define CHECK_VAL(pg, name, labels, want)                                 \
	do {                                                              \
		double v_ = val(pg, name, labels);                        \
		ck_assert_msg(v_ == (want), "%s{%s} = %g, want %g", name, \
		    labels, v_, (double)(want));                          \
	} while (0)

/* ---- the broker, raw --------------------------------------------------- */

/* GET /metrics with a raw HTTP/1.0 request; the body (malloc'd), the
 * Content-Type checked. */
static char *
scrape_raw(void)
{
	struct addrinfo hints = {0}, *res;
	char host[64], *port, *buf, *body, *ct;
	size_t len = 0, cap = 1 << 20;
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	ssize_t n;
	int fd;

	(void)snprintf(host, sizeof(host), "%s", b.http);
	port = strrchr(host, ':');
	*port++ = '\0';
	hints.ai_socktype = SOCK_STREAM;
	ck_assert_int_eq(getaddrinfo(host, port, &hints, &res), 0);
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, res->ai_addr, res->ai_addrlen), 0);
	freeaddrinfo(res);
	ck_assert_int_eq(write(fd, req, sizeof(req) - 1), sizeof(req) - 1);
	buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		ck_assert_uint_lt(len + 1, cap);
	}
	close(fd);
	buf[len] = '\0';
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200 ", 13) == 0 ||
			  strncmp(buf, "HTTP/1.0 200 ", 13) == 0,
	    "%.80s", buf);
	body = strstr(buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	*body = '\0';
	ct = strcasestr(buf, "\r\nContent-Type: ");
	ck_assert_ptr_nonnull(ct);
	ck_assert_msg(
	    strncmp(ct + 16, "text/plain; version=0.0.4; charset=utf-8\r\n",
		42) == 0 ||
		strcmp(ct + 16, "text/plain; version=0.0.4; charset=utf-8") ==
		    0,
	    "%s", ct);
	body = strdup(body + 4);
	free(buf);
	return body;
}

/* Scrape and parse into @pg. */
static void
scrape(struct page *pg)
{
	char *text = scrape_raw();

	ck_assert_msg(page_parse(text, pg) == 0, "%s", pg->err);
	free(text);
}

/* Scrape until @name{@labels} is @want (the broker catches up). */
static void
scrape_until(struct page *pg, const char *name, const char *labels, double want)
{
	int i;

	for (i = 0; i < 200; i++) {
		scrape(pg);
		if (val(pg, name, labels) == want)
			return;
		page_free(pg);
		usleep(50 * 1000);
	}
	scrape(pg);
	CHECK_VAL(pg, name, labels, want);
}

static void
wait_sql(const char *sql, const char *want)
{
	harness_wait_sql(b.db, sql, want, 20000);
}

/* ---- the work ------------------------------------------------------- */

static struct tvmpeer *
peer(void)
{
	struct npufarm_err err;
	struct tvmpeer *p;

	ck_assert_msg(
	    tvmpeer_connect(b.farm, T_MS, &p, &err) == 0, "%s", err.msg);
	return p;
}

static void
grant(struct tvmpeer *p, const char *key)
{
	struct tvmpeer_grant g;
	struct npufarm_err err;

	ck_assert_int_eq(tvmpeer_request(p, key, "", 1), 0);
	ck_assert_msg(
	    tvmpeer_recv_grant(p, T_MS, &g, &err) == 0, "%s", err.msg);
}

static void
put(struct tvmpeer *p, const char *matchkey)
{
	struct npufarm_err err;

	ck_assert_int_eq(tvmpeer_put(p, "trk", 9090, matchkey, NULL), 0);
	ck_assert_msg(tvmpeer_recv_ok(p, T_MS, &err) == 0, "%s", err.msg);
}

/* Call @fn(@arg); the reply's packet code. */
static int32_t
call(struct tvmrpc_client *cl, uint64_t fn, int64_t arg)
{
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;

	tvmrpc_msg_call_func(&m, fn, arg);
	ck_assert_int_eq(tvmrpc_send_msg(tvmrpc_client_conn(cl), &m), 0);
	ck_assert_int_eq(
	    tvmrpc_recv_packet(tvmrpc_client_conn(cl), T_MS, &p), 0);
	return p.code;
}

static void
agent_up(void)
{
	const char *bin = getenv("NPUFARM_AGENT_BIN");
	const char *rt = getenv("NPUFARM_FAKE_TVM");
	char workdir[320], log[320];
	const char *argv[] = {bin, "--broker", b.farm, "--key", "rk3588",
	    "--name", "a1", "--tvm-runtime", rt, "--workdir", workdir, "-vv",
	    NULL};

	ck_assert_msg(bin != NULL && rt != NULL,
	    "NPUFARM_AGENT_BIN or NPUFARM_FAKE_TVM is not set");
	(void)snprintf(workdir, sizeof(workdir), "%s/work", b.dir);
	(void)snprintf(log, sizeof(log), "%s/agent.log", b.dir);
	agent = harness_spawn(bin, argv, log);
}

static void
agent_idle(void)
{
	wait_sql("SELECT state FROM boards WHERE kind = 'agent' AND name = "
		 "'a1'",
	    "idle\n");
}

/* The newest lease has its agent's report. */
static void
wait_reported(const char *outcome)
{
	char want[64];

	(void)snprintf(want, sizeof(want), "%s\n", outcome);
	wait_sql("SELECT outcome FROM leases WHERE reported_us IS NOT NULL "
		 "ORDER BY id DESC LIMIT 1",
	    want);
}

/* Upload test kernel lib@name.so; its sha256 into @sha (65 bytes). */
static void
upload(const char *name, char *sha)
{
	char path[512];
	int status;

	(void)snprintf(
	    path, sizeof(path), "%s/lib%s.so", NPUFARM_TEST_KERNELS, name);
	status = harness_put_artifact(b.http, path, sha);
	ck_assert_msg(
	    status == 201 || status == 200, "PUT %s: %d", path, status);
}

static void
submit(const char *json)
{
	int status;
	char *body = harness_http_body(
	    b.http, "POST", "/v1/jobs", json, strlen(json), &status);

	ck_assert_msg(status == 201, "%d %s", status, body);
	free(body);
}

START_TEST(test_metrics_after_known_work)
{
	static const char *const extra[] = {"--agent-heartbeat", "0.2",
	    "--agent-backstop", "1", "--unknown-key-grace", "2",
	    "--max-artifact", "1048576", NULL};
	struct tvmpeer *board, *c1, *c2, *c3, *ghost;
	struct tvmrpc_board_config bcfg = {
	    .key = "rly",
	    .mode = TVMRPC_BOARD_OK,
	    .sessions = 2,
	    .io_timeout_ms = T_MS,
	};
	struct tvmrpc_board_report rep;
	struct tvmrpc_board *rb;
	struct tvmrpc_client *cl;
	struct tvmpeer_grant g;
	struct npufarm_err err;
	struct page pg;
	char sha[65], json[1024];
	time_t now = time(NULL);
	double v;
	int i;

	harness_broker_start(&b, extra);

	/* An empty farm already gives a well-formed page. */
	scrape(&pg);
	CHECK_VAL(&pg, "npufarm_agent_link_connects_total", "", 0);
	ck_assert(val(&pg, "npufarm_ledger_commits_total", "") >= 1);
	page_free(&pg);

	/* Tracker: a TVM board PUTs, is granted, PUTs again (the lease ends
	 * unobserved), is granted again and held; one request waits, one
	 * is cancelled, one for a key without boards is rejected. */
	board = peer();
	c1 = peer();
	c2 = peer();
	c3 = peer();
	ghost = peer();
	put(board, "trk:m1");
	grant(c1, "trk");
	put(board, "trk:m2");
	grant(c1, "trk");
	ck_assert_int_eq(tvmpeer_request(c2, "trk", "", 1), 0);
	ck_assert_int_eq(tvmpeer_request(c3, "trk", "", 1), 0);
	scrape_until(&pg, "npufarm_queue_depth", "key=\"trk\",kind=\"tvm\"", 2);
	page_free(&pg);
	c3 = tvmpeer_free(c3);
	scrape_until(&pg, "npufarm_leases_total",
	    "key=\"trk\",outcome=\"cancelled\"", 1);
	page_free(&pg);
	ck_assert_int_eq(tvmpeer_request(ghost, "gh\"o\\st", "", 1), 0);
	ck_assert_int_eq(
	    tvmpeer_recv_grant(ghost, T_MS, &g, &err), TVMPEER_E_FAIL);

	/* Relay: a board that dials in serves two sessions. */
	bcfg.farm = b.farm;
	ck_assert_msg(tvmrpc_board_start(&bcfg, &rb, &err) == 0, "%s", err.msg);
	for (i = 0; i < 2; i++) {
		cl = harness_tvm_open(b.farm, "rly", "10", T_MS);
		harness_tvm_done(cl);
	}
	ck_assert_int_eq(tvmrpc_board_wait(rb, T_MS), 0);
	ck_assert_int_eq(tvmrpc_board_stop(rb, &rep), 0);
	ck_assert_uint_eq(rep.sessions, 2);
	scrape_until(
	    &pg, "npufarm_leases_total", "key=\"rly\",outcome=\"ok\"", 2);
	page_free(&pg);

	/* The agent: one session ends ok, one times out.  Each counts once,
	 * as its agent reported it, whatever the relay saw. */
	agent_up();
	agent_idle();
	cl = harness_tvm_open(b.farm, "rk3588", "10", T_MS);
	ck_assert_int_eq(
	    call(cl, harness_tvm_func(cl, "rpc.test.addone", T_MS), 41),
	    TVMRPC_RETURN);
	harness_tvm_done(cl);
	wait_reported("ok");
	agent_idle();
	cl = harness_tvm_open(b.farm, "rk3588", "1", T_MS);
	ck_assert_int_eq(
	    call(cl, harness_tvm_func(cl, "npufarm.test.hang", T_MS), 0),
	    TVMRPC_EXCEPTION);
	harness_tvm_done(cl);
	wait_reported("timeout");
	agent_idle();

	/* Native tasks: one runs on the agent (its kernel reports an
	 * error), two expire on a key without boards, one waits. */
	upload("error", sha);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"rk3588\",\"tasks\":[{\"runner\":\"kernel\","
	    "\"artifact\":\"%s\"}]}",
	    sha);
	submit(json);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"nob\",\"queue_timeout\":0.2,\"tasks\":[{\"runner\":"
	    "\"kernel\",\"artifact\":\"%s\"},{\"runner\":\"kernel\","
	    "\"artifact\":\"%s\"}]}",
	    sha, sha);
	submit(json);
	(void)snprintf(json, sizeof(json),
	    "{\"key\":\"tq\",\"tasks\":[{\"runner\":\"kernel\","
	    "\"artifact\":\"%s\"}]}",
	    sha);
	submit(json);
	scrape_until(&pg, "npufarm_tasks_total",
	    "key=\"rk3588\",outcome=\"exception\"", 1);
	page_free(&pg);
	scrape_until(
	    &pg, "npufarm_tasks_total", "key=\"nob\",outcome=\"expired\"", 2);
	page_free(&pg);
	agent_idle();

	/* Now the whole page, against all of the above. */
	scrape(&pg);
	CHECK_VAL(
	    &pg, "npufarm_build_info", "version=\"" NPUFARM_VERSION "\"", 1);
	/* Boards: every state of every key, zeros included. */
	CHECK_VAL(&pg, "npufarm_boards", "key=\"trk\",state=\"leased\"", 1);
	CHECK_VAL(&pg, "npufarm_boards", "key=\"trk\",state=\"idle\"", 0);
	CHECK_VAL(&pg, "npufarm_boards", "key=\"rly\",state=\"offline\"", 1);
	CHECK_VAL(&pg, "npufarm_boards", "key=\"rk3588\",state=\"idle\"", 1);
	CHECK_VAL(
	    &pg, "npufarm_boards", "key=\"rk3588\",state=\"quarantined\"", 0);
	CHECK_VAL(
	    &pg, "npufarm_boards", "key=\"rk3588\",state=\"draining\"", 0);
	CHECK_VAL(&pg, "npufarm_boards", "key=\"rk3588\",state=\"busy\"", 0);
	CHECK_VAL(&pg, "npufarm_boards", "key=\"rk3588\",state=\"offline\"", 0);
	CHECK_VAL(&pg, "npufarm_boards", "key=\"rk3588\",state=\"leased\"", 0);
	/* Queues: c2 waits for trk; a task waits for tq. */
	CHECK_VAL(&pg, "npufarm_queue_depth", "key=\"trk\",kind=\"tvm\"", 1);
	CHECK_VAL(&pg, "npufarm_queue_depth", "key=\"trk\",kind=\"task\"", 0);
	CHECK_VAL(&pg, "npufarm_queue_depth", "key=\"tq\",kind=\"task\"", 1);
	CHECK_VAL(&pg, "npufarm_queue_depth", "key=\"tq\",kind=\"tvm\"", 0);
	/* Leases, each once by its final outcome. */
	CHECK_VAL(
	    &pg, "npufarm_leases_total", "key=\"trk\",outcome=\"unknown\"", 1);
	CHECK_VAL(&pg, "npufarm_leases_total",
	    "key=\"trk\",outcome=\"cancelled\"", 1);
	CHECK_VAL(&pg, "npufarm_leases_total", "key=\"trk\",outcome=\"ok\"", 0);
	CHECK_VAL(&pg, "npufarm_leases_total",
	    "key=\"gh\\\"o\\\\st\",outcome=\"rejected\"", 1);
	CHECK_VAL(&pg, "npufarm_leases_total", "key=\"rly\",outcome=\"ok\"", 2);
	CHECK_VAL(
	    &pg, "npufarm_leases_total", "key=\"rly\",outcome=\"lost\"", 0);
	CHECK_VAL(
	    &pg, "npufarm_leases_total", "key=\"rk3588\",outcome=\"ok\"", 1);
	CHECK_VAL(&pg, "npufarm_leases_total",
	    "key=\"rk3588\",outcome=\"timeout\"", 1);
	CHECK_VAL(&pg, "npufarm_leases_total",
	    "key=\"rk3588\",outcome=\"exception\"", 0);
	CHECK_VAL(
	    &pg, "npufarm_leases_total", "key=\"rk3588\",outcome=\"lost\"", 0);
	/* Tasks. */
	CHECK_VAL(&pg, "npufarm_tasks_total",
	    "key=\"rk3588\",outcome=\"exception\"", 1);
	CHECK_VAL(
	    &pg, "npufarm_tasks_total", "key=\"rk3588\",outcome=\"ok\"", 0);
	CHECK_VAL(
	    &pg, "npufarm_tasks_total", "key=\"nob\",outcome=\"expired\"", 2);
	CHECK_VAL(
	    &pg, "npufarm_tasks_total", "key=\"tq\",outcome=\"expired\"", 0);
	/* Histograms: grants (2 trk, 2 rly, 2 sessions and 1 task on
	 * rk3588), relayed sessions, task attempts. */
	CHECK_VAL(&pg, "npufarm_queue_wait_seconds_count", "key=\"trk\"", 2);
	CHECK_VAL(&pg, "npufarm_queue_wait_seconds_count", "key=\"rly\"", 2);
	CHECK_VAL(&pg, "npufarm_queue_wait_seconds_count", "key=\"rk3588\"", 3);
	CHECK_VAL(&pg, "npufarm_queue_wait_seconds_count", "key=\"nob\"", 0);
	CHECK_VAL(&pg, "npufarm_session_seconds_count", "key=\"rly\"", 2);
	CHECK_VAL(&pg, "npufarm_session_seconds_count", "key=\"rk3588\"", 2);
	CHECK_VAL(&pg, "npufarm_session_seconds_count", "key=\"trk\"", 0);
	/* The timed-out session lasted about its 1 s deadline. */
	v = val(
	    &pg, "npufarm_session_seconds_bucket", "key=\"rk3588\",le=\"0.5\"");
	ck_assert_msg(v == 1, "sessions under 0.5 s: %g", v);
	v = val(&pg, "npufarm_session_seconds_sum", "key=\"rk3588\"");
	ck_assert_msg(v > 0.9 && v < 10, "session seconds %g", v);
	CHECK_VAL(&pg, "npufarm_task_run_seconds_count", "key=\"rk3588\"", 1);
	CHECK_VAL(&pg, "npufarm_task_run_seconds_count", "key=\"nob\"", 0);
	/* Bytes: every session sent kInitServer and more, and got replies. */
	ck_assert(val(&pg, "npufarm_relay_bytes_total",
		      "direction=\"to_board\"") > 4 * 20);
	ck_assert(val(&pg, "npufarm_relay_bytes_total",
		      "direction=\"to_client\"") > 4 * 20);
	CHECK_VAL(&pg, "npufarm_agent_link_connects_total", "", 1);
	/* The ledger. */
	v = val(&pg, "npufarm_ledger_commits_total", "");
	ck_assert_msg(v >= 5, "commits %g", v);
	CHECK_VAL(&pg, "npufarm_ledger_commit_seconds_count", "", v);
	CHECK_VAL(&pg, "npufarm_ledger_commit_failures_total", "", 0);
	ck_assert(val(&pg, "npufarm_ledger_commit_seconds_sum", "") > 0);
	/* The process. */
	ck_assert(val(&pg, "process_open_fds", "") > 5);
	ck_assert(val(&pg, "process_resident_memory_bytes", "") > 1e6);
	v = val(&pg, "process_start_time_seconds", "");
	ck_assert_msg(v > (double)now - 60 && v < (double)time(NULL) + 2,
	    "start time %f, now %lld", v, (long long)now);
	ck_assert(!isnan(val(&pg, "process_cpu_seconds_total", "")));
	/* Every family has its HELP. */
	for (i = 0; i < (int)pg.nfams; i++)
		ck_assert_msg(pg.fams[i].help, "%s: no HELP", pg.fams[i].name);
	page_free(&pg);

	tvmpeer_free(board);
	tvmpeer_free(c1);
	tvmpeer_free(c2);
	tvmpeer_free(ghost);
	ck_assert_int_eq(harness_reap(agent, T_MS), 0);
	agent = 0;
	ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}
END_TEST

/* The parser itself refuses what the format forbids. */
START_TEST(test_parser_rejects_bad_pages)
{
	static const char *const bad[] = {
	    "x_total 1\n",                                  /* no TYPE */
	    "# TYPE x counter\nx 1\n",                      /* not _total */
	    "# TYPE x gauge\nx{a=\"1\"} 1 123\n",           /* timestamp */
	    "# TYPE x gauge\nx{a=\"\\t\"} 1\n",             /* bad escape */
	    "# TYPE x gauge\nx{a=\"1\",} 1\n",              /* trailing , */
	    "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n", /* twice */
	    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
	    "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", /* not cumul. */
	    "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
	    "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
	    "h_count 2\n", /* _count is not +Inf */
	    "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"1\"} 1\n",
	    "# TYPE x gauge\nx 1", /* no final newline */
	    "# TYPE 1x gauge\n",   /* a bad name */
	    "# TYPE x gauge\nx  1\n",
	    "# TYPE x gauge\n\nx 1\n",
	    "# TYPE x gauge\nx{a=1} 1\n",
	    "# TYPE x gauge\nx one\n",
	    "# TYPE x gauge\nx 1\n# TYPE x gauge\n",
	};
	const char *good =
	    "# HELP x a \\\\ help\n# TYPE x gauge\nx{a=\"q\\\"\\n\\\\\"} 1\n"
	    "# a comment\n# TYPE h histogram\nh_bucket{k=\"v\",le=\"0.5\"} 1\n"
	    "h_bucket{k=\"v\",le=\"+Inf\"} 3\nh_sum{k=\"v\"} 2.5\n"
	    "h_count{k=\"v\"} 3\nx_total 4\n";
	struct page pg;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(
		    page_parse(bad[i], &pg) < 0, "accepted: %s", bad[i]);
		page_free(&pg);
	}
	/* The good page, but x_total has no TYPE: */
	ck_assert_int_lt(page_parse(good, &pg), 0);
	ck_assert_msg(strstr(pg.err, "x_total has no TYPE"), "%s", pg.err);
	page_free(&pg);
	ck_assert_int_lt(page_parse("", &pg), 0);
	page_free(&pg);
}
END_TEST

START_TEST(test_parser_accepts_good_page)
{
	const char *good =
	    "# HELP x a \\\\ help\n# TYPE x gauge\nx{a=\"q\\\"\\n\\\\\"} 1\n"
	    "# a comment\n# TYPE h histogram\nh_bucket{k=\"v\",le=\"0.5\"} 1\n"
	    "h_bucket{k=\"v\",le=\"+Inf\"} 3\nh_sum{k=\"v\"} 2.5\n"
	    "h_count{k=\"v\"} 3\n";
	struct page pg;

	ck_assert_msg(page_parse(good, &pg) == 0, "%s", pg.err);
	ck_assert_uint_eq(pg.n, 5);
	CHECK_VAL(&pg, "h_count", "k=\"v\"", 3);
	CHECK_VAL(&pg, "x", "a=\"q\\\"\\n\\\\\"", 1);
	page_free(&pg);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics-integration");
	TCase *tc = tcase_create("scrape");

	tcase_add_test(tc, test_metrics_after_known_work);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	tc = tcase_create("parser");
	tcase_add_test(tc, test_parser_rejects_bad_pages);
	tcase_add_test(tc, test_parser_accepts_good_page);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(metrics_suite());
}
