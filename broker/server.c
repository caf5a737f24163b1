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
#include <jansson.h>

#include <npufarm/protocol.h>

#include "agent_link.h"
#include "api_boards.h"
#include "api_jobs.h"
#include "api_metrics.h"
#include "artifacts.h"
#include "auth.h"
#include "clock.h"
#include "conn.h"
#include "err.h"
#include "http.h"
#include "jobs.h"
#include "jobs_parse.h"
#include "ledger.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "relay.h"
#include "retention.h"
#include "scheduler.h"
#include "tracker.h"

#define SERVER_PRIORITIES     3
#define SERVER_PRIO_LEDGER    2
#define SERVER_BOARD_FLUSH_MS 200
/* At stop, how long answers already given may take to leave. */
#define SERVER_HTTP_DRAIN_MS  1000

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
	struct server *srv = arg;

	(void)tracker_flush_boards(srv->tracker);
}

/* The ledger's writer finished batches: acknowledge what they held. */
static void
ledger_committed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	ledger_notified(srv->ledger);
	agent_link_committed(srv->links);
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
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	log_notice("signal %d: stopping", (int)sig);
	srv->stopping = true;
	tracker_stop(srv->tracker);
	agent_links_stop(srv->links);
	listener_pause(srv->listener);
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
static size_t
raise_nofile(const struct broker_config *cfg)
{
	size_t max_conns;
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
	max_conns =
	    cfg->max_connections > 0 ? (size_t)cfg->max_connections : avail;
	if (max_conns > avail) {
		log_warn("max_connections=%zu exceeds what the open-files "
			 "limit allows; using %zu",
		    max_conns, avail);
		max_conns = avail;
	}
	return max_conns;
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
	for (i = 0; farm != NULL && i < listener_count(srv->listener); i++)
		(void)json_array_append_new(
		    farm, json_string(listener_address(srv->listener, i)));
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

	for (i = 0; i < listener_count(srv->listener); i++)
		farm[i] = listener_address(srv->listener, i);
	(void)auth_warn_exposure(
	    srv->auth, farm, i, srv->http ? http_address(srv->http) : NULL);
}

/*
 * Derive the common timeouts from the configuration and hand them to
 * the transport, the tracker and the jobs.
 */
static void
server_timeouts(struct server *srv)
{
	const struct broker_config *cfg = srv->cfg;
	const struct timeval *grace =
	    common_timeout(srv, cfg->unknown_key_grace);

	srv->tv_handshake = common_timeout(srv, cfg->handshake_timeout);
	srv->cset->tv_handshake = srv->tv_handshake;
	tracker_set_timeouts(srv->tracker,
	    common_timeout(srv, cfg->request_timeout), grace,
	    common_timeout(srv, cfg->pair_timeout));
	if (srv->jobs != NULL)
		jobs_set_grace(srv->jobs, grace);
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
	listener_set_auth(srv->listener, auth);
	tracker_set_auth(srv->tracker, auth);
	agent_links_set_auth(srv->links, auth);
	if (srv->http != NULL)
		http_set_auth(srv->http, auth);
	server_timeouts(srv);
	log_set_level(cfg->verbosity);
	warn_exposure(srv);
}

static const struct timeval *
common_timeout(struct server *srv, double seconds)
{
	struct timeval tv = clock_tv(seconds);

	if (seconds <= 0)
		return NULL;
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
	struct auth_config auth_view;
	struct http_env env;
	struct server *srv;
	size_t i, max_conns;
	int r;

	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	srv->cfg = cfg;
	if (metrics_new((size_t)cfg->max_keys, &srv->metrics) < 0) {
		free(srv);
		return err_set(err, -ENOMEM, "out of memory");
	}
	event_set_log_callback(libevent_log_cb);
	(void)signal(SIGPIPE, SIG_IGN);
	max_conns = raise_nofile(cfg);
	srv->base = event_base_new();
	if (srv->base == NULL ||
	    event_base_priority_init(srv->base, SERVER_PRIORITIES) < 0) {
		r = err_set(err, -ENOMEM, "cannot create the event loop");
		goto fail;
	}
	srv->sched = sched_new();
	srv->flush_ev = evtimer_new(srv->base, ledger_flush_cb, srv);
	srv->board_ev =
	    event_new(srv->base, -1, EV_PERSIST, board_flush_cb, srv);
	srv->sig_term = evsignal_new(srv->base, SIGTERM, stop_cb, srv);
	srv->sig_int = evsignal_new(srv->base, SIGINT, stop_cb, srv);
	srv->sig_hup = evsignal_new(srv->base, SIGHUP, hup_cb, srv);
	if (srv->sched == NULL || srv->flush_ev == NULL ||
	    conn_set_new(srv->base, cfg, max_conns, &srv->cset) < 0 ||
	    srv->board_ev == NULL || srv->sig_term == NULL ||
	    srv->sig_int == NULL || srv->sig_hup == NULL ||
	    event_priority_set(srv->flush_ev, SERVER_PRIO_LEDGER) < 0 ||
	    evsignal_add(srv->sig_term, NULL) < 0 ||
	    evsignal_add(srv->sig_int, NULL) < 0 ||
	    evsignal_add(srv->sig_hup, NULL) < 0 ||
	    event_add(srv->board_ev, &board_tv) < 0) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	broker_config_auth(cfg, &auth_view);
	r = auth_new(&auth_view, &srv->auth, err);
	if (r < 0)
		goto fail;
	r = ledger_open(cfg->db, cfg->ledger_sync_full, &srv->ledger, err);
	if (r < 0)
		goto fail;
	/* The farm protocols, each with its own context. */
	if (tracker_new(srv->base, cfg, srv->ledger, srv->sched, srv->metrics,
		srv->cset, &srv->tracker) < 0 ||
	    (srv->links = agent_links_new(srv->base, cfg, srv->ledger,
		 srv->metrics, srv->tracker, tracker_boards(srv->tracker))) ==
		NULL ||
	    relays_new(srv->base, cfg, srv->metrics, &srv->relays) < 0) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	tracker_set_peers(srv->tracker, srv->links, srv->relays);
	tracker_set_auth(srv->tracker, srv->auth);
	agent_links_set_auth(srv->links, srv->auth);
	{
		/* The farm port's protocols, by their first four bytes. */
		const struct listener_proto protos[] = {
		    {NPUFARM_TVM_TRACKER_MAGIC, true, "TVM tracker",
			"out of memory starting a tracker session",
			tracker_conn_start, srv->tracker},
		    /* The hello continues with its key: proxy.c reads it. */
		    {NPUFARM_TVM_RPC_MAGIC, false, NULL, "out of memory",
			proxy_conn_start, srv->tracker},
		    {NPUFARM_AGENT_MAGIC, true, NULL,
			"out of memory starting an agent link",
			agent_link_start, srv->links},
		};

		if (listener_new(srv->cset, srv->auth, protos,
			sizeof(protos) / sizeof(protos[0]),
			&srv->listener) < 0) {
			r = err_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	server_timeouts(srv);
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
	if (r >= 0) {
		const struct jobs_deps deps = {
		    .base = srv->base,
		    .cfg = cfg,
		    .ledger = srv->ledger,
		    .metrics = srv->metrics,
		    .artifacts = srv->artifacts,
		    .sched = srv->sched,
		    .trk = srv->tracker,
		    .links = srv->links,
		    .tv_grace = common_timeout(srv, cfg->unknown_key_grace),
		};

		r = jobs_new(&deps, &srv->jobs, err);
		if (r >= 0 && jobs_agent_register(srv->jobs) < 0)
			r = err_set(
			    err, -ENOSPC, "too many agent frame handlers");
	}
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
	    .tracker = srv->tracker,
	    .links = srv->links,
	};
	if (r >= 0)
		r = jobs_parse_new(&env, &srv->jobs_parse, err);
	if (r < 0)
		goto fail;
	for (i = 0; i < cfg->nlisten; i++) {
		if (i == 0 && cfg->listen_port_end > 0)
			r = listener_bind_range(srv->listener, cfg->listen[i],
			    cfg->listen_port_end, err);
		else
			r = listener_bind(srv->listener, cfg->listen[i], err);
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

	if (srv == NULL)
		return NULL;
	srv->stopping = true;
	if (srv->tracker != NULL)
		tracker_stop(srv->tracker);
	if (srv->links != NULL)
		agent_links_stop(srv->links);
	srv->listener = listener_free(srv->listener);
	/* Its waiting requests are answered while the API still exists, and
	 * the answers leave before the API goes. */
	srv->jobs_parse = jobs_parse_free(srv->jobs_parse);
	http_drain(srv->http, SERVER_HTTP_DRAIN_MS);
	srv->http = http_free(srv->http);
	srv->retention = retention_free(srv->retention);
	while (
	    srv->cset != NULL && (c = TAILQ_FIRST(&srv->cset->conns)) != NULL)
		conn_free(c);
	if (srv->ledger != NULL) {
		if (srv->tracker != NULL)
			(void)tracker_flush_boards(srv->tracker);
		/* A failure is reported by the ledger (ledger_failed_cb). */
		(void)ledger_event(
		    srv->ledger, "broker_stop", 0, NULL, ledger_now_us(), &err);
		ledger_commit(srv->ledger);
		srv->ledger = ledger_close(srv->ledger);
	}
	srv->jobs = jobs_free(srv->jobs);
	srv->links = agent_links_free(srv->links);
	srv->relays = relays_free(srv->relays);
	srv->tracker = tracker_free(srv->tracker);
	srv->metrics = metrics_free(srv->metrics); /* after the last lease */
	srv->artifacts = artifacts_close(srv->artifacts);
	srv->sched = sched_free(srv->sched);
	if (srv->committed_ev)
		event_free(srv->committed_ev);
	if (srv->flush_ev)
		event_free(srv->flush_ev);
	if (srv->board_ev)
		event_free(srv->board_ev);
	if (srv->sig_term)
		event_free(srv->sig_term);
	if (srv->sig_int)
		event_free(srv->sig_int);
	if (srv->sig_hup)
		event_free(srv->sig_hup);
	srv->cset = conn_set_free(srv->cset);
	if (srv->base)
		event_base_free(srv->base);
	srv->auth = auth_free(srv->auth);
	free(srv);
	return NULL;
}
