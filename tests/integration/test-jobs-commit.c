/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A job submit is acknowledged from the ledger writer's commit (issue 13),
 * on the real broker: the test holds the ledger's write lock through a
 * sqlite connection of its own, so the broker's writer cannot commit, and
 * watches the API.  While the lock is held no 201 comes and the loop goes
 * on serving; the moment it comes, the job's rows are readable from
 * another connection.  A commit that fails (the writer's busy timeout
 * passes) answers 500 and the job is forgotten; a broker stopped while a
 * submit waits for its commit exits cleanly, and the job it committed is
 * there after a restart.  A client that leaves before its answer costs
 * nothing but the answer.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>
#include <sqlite3.h>

#include "harness.h"

#define T_MS 20000

static struct harness_broker b;
static char kernel[65];
static char job_json[1024];

static void
nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
setup(void)
{
	harness_broker_start(&b, NULL);
	harness_put_kernel(b.http, NPUFARM_TEST_KERNELS, "matmul_t8", kernel);
	(void)snprintf(job_json, sizeof(job_json),
	    "{\"key\":\"cpu\",\"user\":\"alice\",\"tasks\":["
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"noop\"},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"noop\"},"
	    "{\"runner\":\"kernel\",\"artifact\":\"%s\",\"entry\":\"noop\"}]}",
	    kernel, kernel, kernel);
}

static void
teardown(void)
{
	if (b.pid > 0)
		ck_assert_int_eq(harness_broker_stop(&b), 0);
	harness_broker_cleanup(&b);
}

/* The ledger's write lock, held by a connection of the test's own. */
static sqlite3 *
lock_ledger(void)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	ck_assert_int_eq(
	    sqlite3_open_v2(b.db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	ck_assert_msg(
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) == SQLITE_OK,
	    "%s", msg ? msg : "?");
	return db;
}

static void
unlock_ledger(sqlite3 *db)
{
	ck_assert_int_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), 0);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/* Send @method @path with @body (may be NULL) on a connection of its own. */
static int
send_request(const char *method, const char *path, const char *body)
{
	const char *colon = strrchr(b.http, ':');
	size_t len = body != NULL ? strlen(body) : 0;
	char head[256];
	int fd, n;

	ck_assert_ptr_nonnull(colon);
	fd = harness_loopback(atoi(colon + 1));
	n = snprintf(head, sizeof(head),
	    "%s %s HTTP/1.0\r\nHost: %s\r\nContent-Length: %zu\r\n\r\n", method,
	    path, b.http, len);
	ck_assert_int_eq(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
	if (len > 0)
		ck_assert_int_eq(
		    send(fd, body, len, MSG_NOSIGNAL), (ssize_t)len);
	return fd;
}

/* POST the test's job on a connection of its own; the socket. */
static int
post_job(void)
{
	return send_request("POST", "/v1/jobs", job_json);
}

/* Whether @fd has something to read (an answer, or its end) within @ms. */
static bool
readable(int fd, int ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};

	return poll(&pfd, 1, ms) > 0;
}

/*
 * Read @fd to its end (the broker closes an HTTP/1.0 connection after
 * its answer), at most @ms.  The whole answer, malloc'd ("" if the
 * connection ended without one); its status in *@ret_status (0: none).
 */
static char *
read_answer(int fd, int ms, int *ret_status)
{
	size_t len = 0, cap = 8192;
	char *buf = malloc(cap);
	double end = now_s() + ms / 1e3;
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	for (;;) {
		int left = (int)((end - now_s()) * 1e3);

		ck_assert_msg(left > 0 && readable(fd, left),
		    "no end of the answer within %d ms", ms);
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n <= 0)
			break; /* the end (or a reset: no answer) */
		len += (size_t)n;
		ck_assert_uint_lt(len, cap - 1);
	}
	close(fd);
	buf[len] = '\0';
	*ret_status = 0;
	if (len > 0)
		ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", ret_status), 1);
	return buf;
}

static long
answer_id(const char *answer)
{
	const char *body = strstr(answer, "\r\n\r\n");
	json_t *v;
	long id;

	ck_assert_ptr_nonnull(body);
	v = json_loads(body + 4, 0, NULL);
	ck_assert_ptr_nonnull(v);
	id = (long)json_integer_value(json_object_get(v, "id"));
	ck_assert_int_eq(json_integer_value(json_object_get(v, "tasks")), 3);
	json_decref(v);
	ck_assert_int_gt(id, 0);
	return id;
}

/*
 * Job 1 is recorded and waits for its commit: a wait by its id, with no
 * time to wait, is answered from the job in memory (queued, not done),
 * not from the ledger, which would wait for the commit.  Until the parser
 * and the loop got to it, the wait does go to the ledger: give up on it
 * and ask again.
 */
static void
assert_pending(void)
{
	char *answer, *body;
	int fd, i, status;
	json_t *v;

	for (i = 0; i < 100; i++) {
		fd = send_request("GET", "/v1/jobs/1/wait?timeout=0", NULL);
		if (readable(fd, 100))
			break;
		close(fd);
	}
	ck_assert_msg(i < 100, "job 1 was never recorded");
	answer = read_answer(fd, T_MS, &status);
	ck_assert_msg(status == 200, "%d: %s", status, answer);
	body = strstr(answer, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	v = json_loads(body + 4, 0, NULL);
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(
	    json_string_value(json_object_get(v, "state")), "queued");
	ck_assert(json_is_false(json_object_get(v, "done")));
	json_decref(v);
	free(answer);
}

static char *
job_rows(long id)
{
	char sql[256];

	(void)snprintf(sql, sizeof(sql),
	    "SELECT j.state, j.ntasks, count(t.id), sum(t.state = 'queued') "
	    "FROM jobs j LEFT JOIN tasks t ON t.job_id = j.id WHERE j.id = %ld "
	    "GROUP BY j.id",
	    id);
	return harness_sql(b.db, sql);
}

/*
 * No 201 while the commit cannot happen, and the loop serves meanwhile (a
 * blocking sync would hold up GET /); a cancel of the job's id, guessed
 * before its 201, finds nothing, a wait by it waits as for a queued job.  The
 * 201 comes once the lock is gone, and by then the job and its tasks are
 * committed, all queued.
 */
START_TEST(test_submit_answered_from_the_commit)
{
	char *answer, *rows, *body;
	double t0;
	int fd, status;
	long id;
	sqlite3 *lock;

	lock = lock_ledger();
	fd = post_job();
	ck_assert_msg(!readable(fd, 500), "answered before its commit");
	assert_pending();
	t0 = now_s();
	body = harness_http_get(b.http, "/", &status);
	ck_assert_int_eq(status, 200);
	free(body);
	ck_assert_msg(
	    now_s() - t0 < 3, "the loop waited %.1f s for GET /", now_s() - t0);
	/* The first job's id is 1: not a job until it is acknowledged. */
	body = harness_http(b.http, "POST", "/v1/jobs/1/cancel", &status);
	ck_assert_msg(status == 409, "%d %s", status, body);
	free(body);
	ck_assert_msg(!readable(fd, 200), "answered before its commit");
	unlock_ledger(lock);
	answer = read_answer(fd, T_MS, &status);
	ck_assert_msg(status == 201, "%d: %s", status, answer);
	id = answer_id(answer);
	free(answer);
	/* Read right away, through another connection: it is there. */
	rows = job_rows(id);
	ck_assert_str_eq(rows, "queued|3|3|3\n");
	free(rows);
	/* And live now: a cancel finds it. */
	body = harness_http(b.http, "POST", "/v1/jobs/1/cancel", &status);
	ck_assert_msg(status == 200, "%d %s", status, body);
	free(body);
	harness_wait_sql(b.db,
	    "SELECT state, (SELECT count(*) FROM tasks WHERE outcome = "
	    "'cancelled') FROM jobs WHERE id = 1",
	    "cancelled|3\n", T_MS);
}
END_TEST

/*
 * The writer cannot commit within its busy timeout (5 s): the submit is
 * answered 500 with the ledger's error, as a failed ledger_sync() was, and
 * the job is forgotten; the next one is recorded as usual.
 */
START_TEST(test_submit_commit_failed)
{
	char *answer, *rows, *body, path[64];
	int fd, status;
	long id;
	sqlite3 *lock;

	lock = lock_ledger();
	fd = post_job();
	ck_assert(!readable(fd, 1000));
	answer = read_answer(fd, T_MS, &status);
	unlock_ledger(lock);
	ck_assert_msg(status == 500, "%d: %s", status, answer);
	ck_assert_msg(strstr(answer, "the ledger could not commit the job: "),
	    "%s", answer);
	free(answer);
	rows = harness_sql(b.db, "SELECT count(*) FROM jobs");
	ck_assert_str_eq(rows, "0\n");
	free(rows);
	/* Not live either: nothing to cancel. */
	body = harness_http(b.http, "POST", "/v1/jobs/1/cancel", &status);
	ck_assert_msg(status == 409, "%d %s", status, body);
	free(body);
	id = harness_job_submit(b.http, job_json);
	rows = job_rows(id);
	ck_assert_str_eq(rows, "queued|3|3|3\n");
	free(rows);
	(void)snprintf(path, sizeof(path), "/v1/jobs/%ld", 1L);
	body = harness_http_get(b.http, path, &status);
	ck_assert_msg(status == (id == 1 ? 200 : 404), "%d %s", status, body);
	free(body);
}
END_TEST

/*
 * SIGTERM while a submit waits for its commit: the broker waits for the
 * commit and exits 0 (under ASan: nothing leaked); the client gets its
 * 201 before the broker goes (http_drain()), not a closed connection.  The
 * job was committed: a restart finds it queued, with every task.
 */
START_TEST(test_submit_then_stop)
{
	char *answer, *rows, *body, path[64];
	int fd, status, st;
	sqlite3 *lock;
	pid_t pid;
	json_t *v;

	lock = lock_ledger();
	fd = post_job();
	ck_assert(!readable(fd, 500));
	assert_pending(); /* parsed, recorded, waiting */
	pid = b.pid;
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	nap_ms(300);
	ck_assert_int_eq(waitpid(pid, &st, WNOHANG), 0); /* the commit */
	unlock_ledger(lock);
	answer = read_answer(fd, T_MS, &status);
	ck_assert_msg(status == 201, "%d: %s", status, answer);
	ck_assert_int_eq(answer_id(answer), 1);
	free(answer);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	b.pid = 0;
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "the broker ended with %d", st);
	rows = job_rows(1);
	ck_assert_str_eq(rows, "queued|3|3|3\n");
	free(rows);
	harness_broker_restart(&b, NULL);
	(void)snprintf(path, sizeof(path), "/v1/jobs/%d", 1);
	body = harness_http_get(b.http, path, &status);
	ck_assert_msg(status == 200, "%d %s", status, body);
	v = json_loads(body, 0, NULL);
	free(body);
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(
	    json_string_value(json_object_get(v, "state")), "queued");
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(v, "tasks"), "queued")),
	    3);
	json_decref(v);
}
END_TEST

/*
 * The client goes away while its submit waits for the commit: the job is
 * still recorded and queued (it was committed; nobody was told, as with
 * any answer lost on the way), and the broker, answering a request whose
 * connection is gone, neither crashes nor leaks (exit 0 under ASan).
 */
START_TEST(test_submit_client_gone)
{
	char *body;
	int fd, status;
	sqlite3 *lock;

	lock = lock_ledger();
	fd = post_job();
	ck_assert(!readable(fd, 500));
	assert_pending();
	close(fd);
	nap_ms(200);
	unlock_ledger(lock);
	harness_wait_sql(b.db, "SELECT state, ntasks FROM jobs WHERE id = 1",
	    "queued|3\n", T_MS);
	/* Live: a cancel finds it (after the commit's callback ran). */
	body = harness_http(b.http, "POST", "/v1/jobs/1/cancel", &status);
	ck_assert_msg(status == 200, "%d %s", status, body);
	free(body);
	harness_wait_sql(b.db,
	    "SELECT state, (SELECT count(*) FROM tasks WHERE outcome = "
	    "'cancelled') FROM jobs WHERE id = 1",
	    "cancelled|3\n", T_MS);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("jobs-commit");
	TCase *tc = tcase_create("jobs-commit");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_submit_answered_from_the_commit);
	tcase_add_test(tc, test_submit_commit_failed);
	tcase_add_test(tc, test_submit_then_stop);
	tcase_add_test(tc, test_submit_client_gone);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(suite());
}
