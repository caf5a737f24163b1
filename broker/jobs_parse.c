/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The job parser thread (jobs_parse.h).  It owns nothing of the broker's:
 * the loop hands it a copy of a request's body, it hands back either a
 * struct jobs_parsed or an error, through a queue under its mutex and an
 * eventfd the loop watches (STYLE §7, Threads).  It reads only the
 * configuration and the artifact store (fstatat), which do not change
 * under it.  The request itself stays with the loop: evhttp keeps a
 * request until it is answered, even when its client has gone.  At most
 * JOBS_PARSE_MAX jobs wait to be parsed at once (each holds its body and
 * then its specs), beyond that the API answers 503.
 *
 * A parsed job is recorded on the loop (jobs_submit_parsed(): rows in the
 * ledger's batch, the job pending) and answered from ledger_after()'s
 * callback once the transaction holding its rows has committed: 201, and
 * only then are its tasks queued (jobs_submit_committed()); a failed
 * batch answers 500 and the job is forgotten.  A job waiting for its
 * commit holds only its request, id and key, and does not count against
 * JOBS_PARSE_MAX.
 */
#include "config.h"

#include "jobs_parse.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "broker_config.h"
#include "err.h"
#include "http.h"
#include "jobs.h"
#include "json_util.h"
#include "ledger.h"
#include "log.h"
#include "tracker.h"

#define JOBS_PARSE_MAX 4

struct item {
	struct evhttp_request *req; /* loop only; answered exactly once */
	char *body;                 /* the thread's, until parsed */
	size_t len;
	char *peer;
	struct jobs_parsed *parsed; /* the result, or NULL with err */
	int r;
	struct npufarm_err err;
	STAILQ_ENTRY(item) link;
	/* Recorded, waiting for its commit (loop only): */
	struct jobs_parse *owner;
	struct ledger_wait *wait;
	int64_t id;
	int ntasks;
	char *key;
	TAILQ_ENTRY(item) committing_link;
};

STAILQ_HEAD(item_list, item);

struct jobs_parse {
	struct http_env env; /* its pointers borrowed, outlive us */
	struct event *ev;    /* the eventfd: results are back */
	int efd;
	size_t pending; /* loop only: items not yet parsed and recorded */
	TAILQ_HEAD(, item) committing; /* loop only: waiting for a commit */
	pthread_t thread;
	bool started;
	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t work;
	struct item_list todo, done;
	bool stop;
};

static void
item_free(struct item *it)
{
	free(it->body);
	free(it->peer);
	free(it->key);
	jobs_parsed_free(it->parsed);
	free(it);
}

static void
parse_one(struct jobs_parse *p, struct item *it)
{
	const struct http_env *env = &p->env;

	it->r = jobs_parse_text(env->cfg, env->artifacts, it->body, it->len,
	    it->peer, &it->parsed, &it->err);
	free(it->body);
	it->body = NULL;
	/* What parsing a big job took is many small blocks: give them back. */
	(void)malloc_trim(0);
}

static void *
thread_main(void *arg)
{
	struct jobs_parse *p = arg;
	uint64_t one = 1;
	struct item *it;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && STAILQ_EMPTY(&p->todo))
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stop)
			break;
		it = STAILQ_FIRST(&p->todo);
		STAILQ_REMOVE_HEAD(&p->todo, link);
		pthread_mutex_unlock(&p->mu);
		parse_one(p, it);
		pthread_mutex_lock(&p->mu);
		STAILQ_INSERT_TAIL(&p->done, it, link);
		(void)!write(p->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/*
 * What a job for @key, which no board has, is in for (accepted: a board
 * may register within --unknown-key-grace), into @buf.  The loop's.
 */
static void
nokey_warning(
    const struct http_env *env, const char *key, char *buf, size_t len)
{
	char keys[512];

	tracker_known_keys(env->tracker, keys, sizeof(keys));
	if (env->cfg->unknown_key_grace > 0)
		(void)snprintf(buf, len,
		    "no board has key '%s'; the job fails in %g s "
		    "(unknown_key_grace) unless one registers; keys with "
		    "boards: %s",
		    key, env->cfg->unknown_key_grace, keys);
	else
		(void)snprintf(buf, len,
		    "no board has key '%s'; the job waits for one; keys with "
		    "boards: %s",
		    key, keys);
}

/*
 * Answer @it's request: @r 0 is a 201 for job it->id (its key it->key),
 * else the error in @err (400 for bad input, 500 for the rest).
 */
static void
reply(
    struct jobs_parse *p, struct item *it, int r, const struct npufarm_err *err)
{
	char warning[1024] = "";
	json_t *v;

	if (r == -EINVAL || r == -E2BIG) {
		http_reply_error(it->req, 400, "Bad Request", err->msg);
		return;
	}
	if (r < 0) {
		http_reply_error(
		    it->req, 500, "Internal Server Error", err->msg);
		return;
	}
	if (tracker_key_boards(p->env.tracker, it->key) == 0)
		nokey_warning(&p->env, it->key, warning, sizeof(warning));
	v = json_pack("{sI si ss}", "id", (json_int_t)it->id, "tasks",
	    it->ntasks, "state", "queued");
	if (v != NULL && warning[0] != '\0')
		(void)json_object_set_new(v, "warning", json_string(warning));
	http_reply_json(it->req, 201, "Created", v);
	json_decref(v);
}

/*
 * ledger_after(): the batch holding @arg's job is done.  Committed: queue
 * its tasks and answer 201; failed: the job is forgotten, 500.
 */
static void
committed_cb(const struct npufarm_err *cerr, void *arg)
{
	struct item *it = arg;
	struct jobs_parse *p = it->owner;
	struct npufarm_err err;
	int r;

	TAILQ_REMOVE(&p->committing, it, committing_link);
	it->wait = NULL;
	r = jobs_submit_committed(p->env.jobs, it->id, cerr, &err);
	reply(p, it, r, &err);
	item_free(it);
}

/*
 * On the loop: record each parsed job, and answer its request once the
 * ledger committed it (committed_cb()); bad input is answered now.
 */
static void
answer(struct jobs_parse *p, struct item *it)
{
	struct npufarm_err err;
	int r = it->r;

	p->pending--;
	if (r == 0) {
		r = jobs_submit_parsed(p->env.jobs, it->parsed, it->peer,
		    &it->id, &it->ntasks, &err);
		if (r < 0)
			it->err = err;
	}
	if (r < 0) {
		reply(p, it, r, &it->err);
		item_free(it);
		return;
	}
	/* Its specs are the job's now: keep only what the answer needs. */
	it->key = strdup(jobs_parsed_key(it->parsed));
	jobs_parsed_free(it->parsed);
	it->parsed = NULL;
	it->owner = p;
	TAILQ_INSERT_TAIL(&p->committing, it, committing_link);
	if (it->key == NULL ||
	    ledger_after(p->env.ledger, committed_cb, it, &it->wait) < 0) {
		TAILQ_REMOVE(&p->committing, it, committing_link);
		jobs_submit_abandon(p->env.jobs, it->id);
		http_reply_error(
		    it->req, 500, "Internal Server Error", "out of memory");
		item_free(it);
	}
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jobs_parse *p = arg;
	struct item_list list;
	struct item *it;
	uint64_t n;

	(void)!read(p->efd, &n, sizeof(n));
	pthread_mutex_lock(&p->mu);
	STAILQ_INIT(&list);
	STAILQ_CONCAT(&list, &p->done);
	pthread_mutex_unlock(&p->mu);
	while ((it = STAILQ_FIRST(&list)) != NULL) {
		STAILQ_REMOVE_HEAD(&list, link);
		answer(p, it);
	}
}

/*
 * POST /v1/jobs @req: copy its body to the parser thread; the answer
 * (201, 400, 500) comes from the loop once it is parsed and committed.
 * Over JOBS_PARSE_MAX waiting jobs, 503 at once.  Runs on the loop.
 */
void
jobs_parse_submit(struct jobs_parse *p, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct item *it;
	char *peer = NULL;
	ev_uint16_t port;

	if (p->pending >= JOBS_PARSE_MAX) {
		http_reply_error(req, 503, "Service Unavailable",
		    "other jobs are being submitted; try again in a moment");
		return;
	}
	it = calloc(1, sizeof(*it));
	if (it != NULL) {
		evhttp_connection_get_peer(evcon, &peer, &port);
		it->req = req;
		it->len = evbuffer_get_length(in);
		it->body = malloc(it->len ? it->len : 1);
		it->peer = strdup(peer ? peer : "unknown");
	}
	if (it == NULL || it->body == NULL || it->peer == NULL) {
		if (it != NULL)
			item_free(it);
		http_reply_error(
		    req, 500, "Internal Server Error", "out of memory");
		return;
	}
	(void)evbuffer_remove(in, it->body, it->len);
	p->pending++;
	pthread_mutex_lock(&p->mu);
	STAILQ_INSERT_TAIL(&p->todo, it, link);
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
}

/*
 * Start the parser thread for the broker @env describes (copied; its
 * pointers borrowed).  0, or -errno with @err.
 */
int
jobs_parse_new(const struct http_env *env, struct jobs_parse **ret,
    struct npufarm_err *err)
{
	struct jobs_parse *p = calloc(1, sizeof(*p));
	int r;

	if (p == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	p->env = *env;
	p->efd = -1;
	STAILQ_INIT(&p->todo);
	STAILQ_INIT(&p->done);
	TAILQ_INIT(&p->committing);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->efd < 0) {
		r = err_set(err, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	p->ev = event_new(env->base, p->efd, EV_READ | EV_PERSIST, done_cb, p);
	if (p->ev == NULL || event_add(p->ev, NULL) < 0) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r = -pthread_create(&p->thread, NULL, thread_main, p);
	if (r < 0) {
		(void)err_set(err, r, "job parser thread: %s", strerror(-r));
		goto fail;
	}
	p->started = true;
	*ret = p;
	return 0;
fail:
	jobs_parse_free(p);
	return r;
}

/*
 * Stop the thread and answer what still waits: a job not yet recorded
 * 503 (the broker is stopping); one waiting for its commit once it is
 * done, as committed_cb() would, but its tasks stay queued for the next
 * start (jobs_recover()).  That wait blocks: the loop has stopped, and
 * ledger_close() would wait for the same commit a moment later.  Call it
 * while the HTTP API, the jobs and the ledger still exist.  Accepts NULL;
 * returns NULL.
 */
struct jobs_parse *
jobs_parse_free(struct jobs_parse *p)
{
	struct item *it;

	if (p == NULL)
		return NULL;
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->stop = true;
		pthread_cond_signal(&p->work);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
	}
	STAILQ_CONCAT(&p->todo, &p->done);
	while ((it = STAILQ_FIRST(&p->todo)) != NULL) {
		STAILQ_REMOVE_HEAD(&p->todo, link);
		http_reply_error(it->req, 503, "Service Unavailable",
		    "the broker is stopping; the job was not recorded");
		item_free(it);
	}
	if (!TAILQ_EMPTY(&p->committing)) {
		struct npufarm_err e, err;
		int r = ledger_sync(p->env.ledger, &e);

		while ((it = TAILQ_FIRST(&p->committing)) != NULL) {
			TAILQ_REMOVE(&p->committing, it, committing_link);
			ledger_after_cancel(p->env.ledger, it->wait);
			it->wait = NULL;
			/* Committed: left pending, freed by jobs_free(). */
			if (r < 0)
				(void)jobs_submit_committed(
				    p->env.jobs, it->id, &e, &err);
			reply(p, it, r < 0 ? -EIO : 0, &err);
			item_free(it);
		}
	}
	if (p->ev != NULL)
		event_free(p->ev);
	if (p->efd >= 0)
		(void)close(p->efd);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	free(p);
	return NULL;
}
