/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Broker set-up, the event loop and teardown.
 *
 * The base has three priorities: 0 is unused, 1 (the default) carries all
 * socket work, 2 the ledger commit.  The commit is a zero-timeout timer
 * armed by the first write of an iteration, so it runs after the iteration's
 * socket callbacks: replies leave first, then one transaction commits
 * everything the iteration wrote.
 */
#include "config.h"

#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "agent_link.h"
#include "api_boards.h"
#include "api_jobs.h"
#include "api_metrics.h"
#include "artifacts.h"
#include "auth.h"
#include "conn.h"
#include "err.h"
#include "http.h"
#include "jobs.h"
#include "jobs_parse.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "retention.h"
#include "scheduler.h"
#include "tracker.h"

#define SERVER_PRIORITIES     3
#define SERVER_PRIO_LEDGER    2
#define SERVER_BOARD_FLUSH_MS 200

static void
ledger_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	ledger_commit(srv->ledger);
}

/* The ledger reports each write it failed (ledger_set_failed_cb()). */
static void
ledger_failed_cb(const struct npufarm_err *err, void *arg)
{
	server_ledger_failed(arg, err);
}

/*
 * Board states (idle <-> leased) flip on every lease; writing each flip
 * would double the ledger's work per lease cycle for a column that the
 * leases table already implies.  They are written at most every
 * SERVER_BOARD_FLUSH_MS, only the latest state per board, and on demand
 * before the API reads them and at shutdown.
 */
static void
board_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)tracker_flush_boards(arg);
}

/* The ledger's writer finished batches: acknowledge what they held. */
static void
ledger_committed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	ledger_notified(srv->ledger);
	agent_link_committed(srv);
}

static void
ledger_dirty_cb(void *arg)
{
	struct server *srv = arg;
	static const struct timeval zero = {0, 0};

	if (!evtimer_pending(srv->flush_ev, NULL))
		(void)evtimer_add(srv->flush_ev, &zero);
}

/*
 * Report a ledger failure.  Rate-limited to one line per second: a full disk
 * must not also flood the log.  The farm keeps serving.
 */
void
server_ledger_failed(struct server *srv, const struct npufarm_err *err)
{
	static time_t last;
	time_t now = time(NULL);

	(void)srv;
	if (now == last)
		return;
	last = now;
	log_err("%s", err->msg);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	conn_accept(arg, fd, sa, salen);
}

static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	size_t i;

	for (i = 0; i < srv->nlisteners; i++)
		(void)evconnlistener_enable(srv->listeners[i]);
}

/* EMFILE and friends: pause accepting for a second instead of spinning. */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct server *srv = arg;
	static const struct timeval one = {1, 0};
	int e = EVUTIL_SOCKET_ERROR();
	size_t i;

	log_warn("farm port: accept failed: %s; pausing accepts for 1 s",
	    strerror(e));
	for (i = 0; i < srv->nlisteners; i++)
		(void)evconnlistener_disable(srv->listeners[i]);
	(void)evtimer_add(srv->accept_ev, &one);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	size_t i;

	log_notice("signal %d: stopping", (int)sig);
	srv->stopping = true;
	for (i = 0; i < srv->nlisteners; i++)
		(void)evconnlistener_disable(srv->listeners[i]);
	(void)event_base_loopexit(srv->base, NULL);
}

static void
hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	if (srv->reload == NULL) {
		log_notice("SIGHUP: nothing to reload, ignoring");
		return;
	}
	srv->reload(srv, srv->reload_arg);
}

/* Call @fn(@srv, @arg) on SIGHUP, on the loop (main.c re-reads the
 * configuration there). */
void
server_set_reload(
    struct server *srv, void (*fn)(struct server *srv, void *arg), void *arg)
{
	srv->reload = fn;
	srv->reload_arg = arg;
}

static void
libevent_log_cb(int severity, const char *msg)
{
	switch (severity) {
	case EVENT_LOG_ERR:
		log_err("libevent: %s", msg);
		break;
	case EVENT_LOG_WARN:
		log_warn("libevent: %s", msg);
		break;
	default:
		log_debug("libevent: %s", msg);
		break;
	}
}

/* Descriptors kept for listeners, the ledger, the API and libevent. */
#define SERVER_RESERVED_FDS 64

/*
 * Raise the open-files soft limit to the hard limit, then resolve
 * max_connections: 0 means "as many as the limit allows"; a configured
 * value the limit cannot honour is lowered, loudly.
 */
static void
raise_nofile(struct server *srv)
{
	struct rlimit rl;
	size_t avail = 1024 - SERVER_RESERVED_FDS;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
				log_warn("cannot raise the open-files limit: "
					 "%s",
				    strerror(errno));
				(void)getrlimit(RLIMIT_NOFILE, &rl);
			}
		}
		if (rl.rlim_cur > 2 * SERVER_RESERVED_FDS)
			avail = rl.rlim_cur == RLIM_INFINITY
				    ? 1000000
				    : (size_t)rl.rlim_cur - SERVER_RESERVED_FDS;
		else
			avail = SERVER_RESERVED_FDS;
	}
	srv->max_conns = srv->cfg->max_connections > 0
			     ? (size_t)srv->cfg->max_connections
			     : avail;
	if (srv->max_conns > avail) {
		log_warn("max_connections=%zu exceeds what the open-files "
			 "limit allows; using %zu",
		    srv->max_conns, avail);
		srv->max_conns = avail;
	}
}

static int
listen_farm(struct server *srv, const char *addr, struct npufarm_err *err)
{
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	struct evconnlistener *l;
	struct netaddr na;
	int r;

	r = netaddr_parse(addr, &na, err);
	if (r < 0)
		return r;
	l = evconnlistener_new_bind(srv->base, accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
	    -1, (struct sockaddr *)&na.ss, (int)na.len);
	if (l == NULL)
		return err_set(err, -errno ? -errno : -EADDRINUSE,
		    "farm port %s: %s", addr, strerror(errno));
	evconnlistener_set_error_cb(l, accept_error_cb);
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound,
		&blen) < 0) {
		evconnlistener_free(l);
		return err_set(
		    err, -errno, "farm port %s: %s", addr, strerror(errno));
	}
	netaddr_format((struct sockaddr *)&bound,
	    srv->farm_addrs[srv->nlisteners], NETADDR_STRLEN);
	srv->listeners[srv->nlisteners++] = l;
	log_notice(
	    "farm port listening on %s", srv->farm_addrs[srv->nlisteners - 1]);
	return 0;
}

/*
 * TVM's rpc_tracker --port P --port-end E: listen on @addr's host at the
 * first port from @addr's that is free, below @end.  Results as
 * listen_farm(); -EADDRINUSE when every port in the range is taken.
 */
static int
listen_farm_range(
    struct server *srv, const char *addr, long end, struct npufarm_err *err)
{
	char host[NETADDR_STRLEN], a[NETADDR_STRLEN + 8];
	unsigned first, port;
	int r;

	r = netaddr_split(addr, host, sizeof(host), &first, err);
	if (r < 0)
		return r;
	for (port = first;; port++) {
		(void)snprintf(a, sizeof(a),
		    strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host,
		    port);
		r = listen_farm(srv, a, err);
		if (r != -EADDRINUSE || (long)port + 1 >= end)
			break;
		log_info("farm port %s is taken, trying the next one", a);
	}
	if (r == -EADDRINUSE)
		return err_set(err, r,
		    "farm port: every port of %s in [%u, %ld) is taken", host,
		    first, end);
	return r;
}

static int
write_ready_file(struct server *srv, struct npufarm_err *err)
{
	char tmp[4096];
	json_t *v, *farm;
	size_t i;
	int r = 0;

	if (srv->cfg->ready_file == NULL)
		return 0;
	farm = json_array();
	for (i = 0; farm != NULL && i < srv->nlisteners; i++)
		(void)json_array_append_new(
		    farm, json_string(srv->farm_addrs[i]));
	v = json_pack("{soss}", "farm", farm, "http", http_address(srv->http));
	if (v == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	(void)snprintf(tmp, sizeof(tmp), "%s.tmp", srv->cfg->ready_file);
	if (json_dump_file(v, tmp, JSON_COMPACT) < 0 ||
	    rename(tmp, srv->cfg->ready_file) < 0)
		r = err_set(err, -EIO, "ready file '%s': %s",
		    srv->cfg->ready_file, strerror(errno));
	json_decref(v);
	return r;
}

static const struct timeval *common_timeout(struct server *srv, double seconds);

/* Warn about whatever the bound ports expose without a lock. */
static void
warn_exposure(struct server *srv)
{
	const char *farm[BROKER_MAX_LISTEN];
	size_t i;

	for (i = 0; i < srv->nlisteners; i++)
		farm[i] = srv->farm_addrs[i];
	(void)auth_warn_exposure(srv->auth, farm, srv->nlisteners,
	    srv->http ? http_address(srv->http) : NULL);
}

/*
 * SIGHUP, after the configuration @srv borrows was updated in place: swap
 * in @auth (owned from now on), re-derive the timeouts and the log level.
 * New values apply to what starts from now on; running sessions and
 * waiting requests keep theirs.
 */
void
server_reconfigure(struct server *srv, struct auth *auth)
{
	const struct broker_config *cfg = srv->cfg;

	auth_log_changes(srv->auth, auth);
	auth_free(srv->auth);
	srv->auth = auth;
	if (srv->http != NULL)
		http_set_auth(srv->http, auth);
	srv->tv_handshake = common_timeout(srv, cfg->handshake_timeout);
	srv->tv_request = common_timeout(srv, cfg->request_timeout);
	srv->tv_grace = common_timeout(srv, cfg->unknown_key_grace);
	srv->tv_pair = common_timeout(srv, cfg->pair_timeout);
	log_set_level(cfg->verbosity);
	warn_exposure(srv);
}

static const struct timeval *
common_timeout(struct server *srv, double seconds)
{
	struct timeval tv;

	if (seconds <= 0)
		return NULL;
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	return event_base_init_common_timeout(srv->base, &tv);
}

/*
 * Build the broker described by @cfg (borrowed; must outlive the server):
 * open the ledger, bind every port and write the ready file.  Logs what it
 * binds; on failure returns -errno with the reason in @err.
 */
int
server_new(const struct broker_config *cfg, struct server **ret_server,
    struct npufarm_err *err)
{
	static const struct timeval board_tv = {
	    0, SERVER_BOARD_FLUSH_MS * 1000};
	struct http_env env;
	struct server *srv;
	size_t i;
	int r;

	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	srv->cfg = cfg;
	if (metrics_new((size_t)cfg->max_keys, &srv->metrics) < 0) {
		free(srv);
		return err_set(err, -ENOMEM, "out of memory");
	}
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->agents);
	TAILQ_INIT(&srv->dirty_boards);
	event_set_log_callback(libevent_log_cb);
	(void)signal(SIGPIPE, SIG_IGN);
	raise_nofile(srv);
	srv->base = event_base_new();
	if (srv->base == NULL ||
	    event_base_priority_init(srv->base, SERVER_PRIORITIES) < 0) {
		r = err_set(err, -ENOMEM, "cannot create the event loop");
		goto fail;
	}
	srv->sched = sched_new();
	srv->flush_ev = evtimer_new(srv->base, ledger_flush_cb, srv);
	srv->accept_ev = evtimer_new(srv->base, accept_resume_cb, srv);
	srv->board_ev =
	    event_new(srv->base, -1, EV_PERSIST, board_flush_cb, srv);
	srv->sig_term = evsignal_new(srv->base, SIGTERM, stop_cb, srv);
	srv->sig_int = evsignal_new(srv->base, SIGINT, stop_cb, srv);
	srv->sig_hup = evsignal_new(srv->base, SIGHUP, hup_cb, srv);
	if (srv->sched == NULL || srv->flush_ev == NULL ||
	    srv->accept_ev == NULL || srv->board_ev == NULL ||
	    srv->sig_term == NULL || srv->sig_int == NULL ||
	    srv->sig_hup == NULL ||
	    event_priority_set(srv->flush_ev, SERVER_PRIO_LEDGER) < 0 ||
	    evsignal_add(srv->sig_term, NULL) < 0 ||
	    evsignal_add(srv->sig_int, NULL) < 0 ||
	    evsignal_add(srv->sig_hup, NULL) < 0 ||
	    event_add(srv->board_ev, &board_tv) < 0) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	srv->tv_handshake = common_timeout(srv, cfg->handshake_timeout);
	srv->tv_request = common_timeout(srv, cfg->request_timeout);
	srv->tv_grace = common_timeout(srv, cfg->unknown_key_grace);
	srv->tv_pair = common_timeout(srv, cfg->pair_timeout);
	r = auth_new(cfg, &srv->auth, err);
	if (r < 0)
		goto fail;
	r = ledger_open(cfg->db, cfg->ledger_sync_full, &srv->ledger, err);
	if (r < 0)
		goto fail;
	ledger_set_dirty_cb(srv->ledger, ledger_dirty_cb, srv);
	ledger_set_failed_cb(srv->ledger, ledger_failed_cb, srv);
	srv->committed_ev = event_new(srv->base, ledger_notify_fd(srv->ledger),
	    EV_READ | EV_PERSIST, ledger_committed_cb, srv);
	if (srv->committed_ev == NULL ||
	    event_add(srv->committed_ev, NULL) < 0) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r = ledger_boards_reset(srv->ledger, ledger_now_us(), err);
	if (r >= 0)
		r = ledger_event(srv->ledger, "broker_start", 0,
		    NPUFARM_VERSION, ledger_now_us(), err);
	if (r >= 0) /* durable before we accept anyone */
		r = ledger_sync(srv->ledger, err);
	if (r >= 0)
		r = artifacts_open(cfg->data_dir, (uint64_t)cfg->max_artifact,
		    &srv->artifacts, err);
	if (r >= 0)
		r = jobs_new(srv, &srv->jobs, err);
	if (r >= 0)
		r = jobs_recover(srv->jobs, err);
	if (r >= 0)
		r = retention_new(
		    srv->base, cfg, srv->ledger, &srv->retention, err);
	env = (struct http_env){
	    .base = srv->base,
	    .cfg = cfg,
	    .ledger = srv->ledger,
	    .sched = srv->sched,
	    .metrics = srv->metrics,
	    .jobs = srv->jobs,
	    .artifacts = srv->artifacts,
	    .srv = srv,
	};
	if (r >= 0)
		r = jobs_parse_new(&env, &srv->jobs_parse, err);
	if (r < 0)
		goto fail;
	for (i = 0; i < cfg->nlisten; i++) {
		if (i == 0 && cfg->listen_port_end > 0)
			r = listen_farm_range(
			    srv, cfg->listen[i], cfg->listen_port_end, err);
		else
			r = listen_farm(srv, cfg->listen[i], err);
		if (r < 0)
			goto fail;
	}
	env.jobs_parse = srv->jobs_parse;
	r = http_new(&env, srv->auth, cfg->http, &srv->http, err);
	if (r >= 0)
		r = api_boards_add(srv->http);
	if (r >= 0)
		r = api_jobs_add(srv->http);
	if (r >= 0)
		r = api_metrics_add(srv->http);
	if (r < 0)
		goto fail;
	warn_exposure(srv);
	r = write_ready_file(srv, err);
	if (r < 0)
		goto fail;
	*ret_server = srv;
	return 0;
fail:
	server_free(srv);
	return r;
}

/* Run the loop until a stop signal.  Returns 0 or -EIO. */
int
server_run(struct server *srv)
{
	if (event_base_dispatch(srv->base) < 0)
		return -EIO;
	return 0;
}

/*
 * Tear down in reverse order of set-up: connections first (their boards go
 * offline and their requests are cancelled in the ledger), then the final
 * commit.  Accepts NULL; returns NULL.
 */
struct server *
server_free(struct server *srv)
{
	struct npufarm_err err;
	struct conn *c;
	size_t i;

	if (srv == NULL)
		return NULL;
	srv->stopping = true;
	for (i = 0; i < srv->nlisteners; i++)
		evconnlistener_free(srv->listeners[i]);
	/* Its waiting requests are answered while the API still exists. */
	srv->jobs_parse = jobs_parse_free(srv->jobs_parse);
	srv->http = http_free(srv->http);
	srv->retention = retention_free(srv->retention);
	while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
		conn_free(c);
	if (srv->ledger != NULL) {
		(void)tracker_flush_boards(srv);
		/* A failure is reported by the ledger (ledger_failed_cb). */
		(void)ledger_event(
		    srv->ledger, "broker_stop", 0, NULL, ledger_now_us(), &err);
		ledger_commit(srv->ledger);
		srv->ledger = ledger_close(srv->ledger);
	}
	srv->jobs = jobs_free(srv->jobs);
	srv->metrics = metrics_free(srv->metrics); /* after the last lease */
	srv->artifacts = artifacts_close(srv->artifacts);
	srv->sched = sched_free(srv->sched);
	if (srv->committed_ev)
		event_free(srv->committed_ev);
	if (srv->flush_ev)
		event_free(srv->flush_ev);
	if (srv->accept_ev)
		event_free(srv->accept_ev);
	if (srv->board_ev)
		event_free(srv->board_ev);
	if (srv->sig_term)
		event_free(srv->sig_term);
	if (srv->sig_int)
		event_free(srv->sig_int);
	if (srv->sig_hup)
		event_free(srv->sig_hup);
	if (srv->base)
		event_base_free(srv->base);
	srv->auth = auth_free(srv->auth);
	free(srv);
	return NULL;
}
