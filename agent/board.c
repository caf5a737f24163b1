/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's board (see board.h).  One offer or session at a time; the
 * sessions that ended but whose data connection still lingers are kept in
 * a list only so that the agent's exit can free them.
 */
#include "config.h"

#include "board.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "err.h"
#include "link.h"
#include "log.h"
#include "probe.h"
#include "tasks.h"
#include "tvm_session.h"

#define BOARD_RETRY_MIN_MS        100
#define BOARD_RETRY_MAX_MS        5000
/* The longest wait between two probes of a quarantined board. */
#define BOARD_PROBE_BACKOFF_MAX_S 600.0

enum hook_stage {
	HOOK_NONE,
	HOOK_RESET,
	HOOK_HEALTH,
	HOOK_PROBE, /* the known-good probe (no health command) */
};

struct session_entry {
	struct tvm_session *s;
	TAILQ_ENTRY(session_entry) link;
};

struct board {
	struct event_base *base;
	struct board_config cfg;
	struct link *link; /* borrowed */
	char instance[17]; /* random per agent run: session ids are unique */
	unsigned long long nsessions;
	struct tvm_session *cur; /* offered or running; NULL: none */
	TAILQ_HEAD(, session_entry) sessions;
	struct event *sigchld;
	struct event *retry_ev; /* next offer */
	unsigned retry_ms;
	/* Hooks after a timeout or crash, and health checks in quarantine. */
	enum hook_stage stage;
	pid_t hook_pid;
	bool hook_killed;
	bool hook_in_quarantine; /* a re-check: moot once it is lifted */
	struct event *hook_ev;   /* the hook's deadline */
	struct event *health_ev; /* the next check while quarantined */
	int nonok;               /* consecutive non-ok sessions and tasks */
	bool suspect;            /* board evidence: check before offering */
	char suspicion[256];     /* why it is checked, for the reason */
	double probe_wait;       /* s until the next probe in quarantine */
	char *quarantine;        /* the reason; NULL: healthy */
	struct tasks *tasks;     /* native tasks */
	struct probe *probe;
};

static void board_offer(struct board *b);
static void after_work(
    struct board *b, enum npufarm_outcome outcome, const char *detail);
static void hook_next(struct board *b);

/* Whether the board is at work: a session, a task, or their hooks. */
static bool
board_busy(const struct board *b)
{
	return (b->cur != NULL && tvm_session_paired(b->cur)) ||
	       tasks_busy(b->tasks) || b->stage != HOOK_NONE;
}

/* Tell the broker whether the board can take work. */
static void
send_state(struct board *b)
{
	if (b->link == NULL || !link_up(b->link))
		return;
	(void)link_send(
	    b->link, b->quarantine != NULL
			 ? json_pack("{ss ss ss}", "type", "state", "state",
			       "quarantined", "reason", b->quarantine)
			 : json_pack("{ss ss}", "type", "state", "state",
			       board_busy(b) ? "busy" : "ready"));
}

static void quarantine(struct board *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Arm the next check of a quarantined board. */
static void
recheck_later(struct board *b)
{
	struct timeval tv;

	if (b->cfg.health_cmd != NULL) {
		tv = clock_tv(b->cfg.health_interval);
	} else {
		tv = clock_tv(b->probe_wait);
		b->probe_wait *= 2;
		if (b->probe_wait > BOARD_PROBE_BACKOFF_MAX_S)
			b->probe_wait = BOARD_PROBE_BACKOFF_MAX_S;
		if (b->probe_wait < b->cfg.health_interval)
			b->probe_wait = b->cfg.health_interval;
	}
	(void)evtimer_add(b->health_ev, &tv);
}

static void
quarantine(struct board *b, const char *fmt, ...)
{
	char *reason = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&reason, fmt, ap) < 0)
		reason = NULL;
	va_end(ap);
	free(b->quarantine);
	b->quarantine = reason != NULL ? reason : strdup("quarantined");
	log_warn("board quarantined: %s", b->quarantine);
	if (b->cur != NULL && !tvm_session_paired(b->cur)) {
		tvm_session_withdraw(b->cur);
		b->cur = NULL;
	}
	send_state(b);
	b->probe_wait = b->cfg.health_interval;
	recheck_later(b);
}

static void
unquarantine(struct board *b, const char *why)
{
	if (b->quarantine == NULL)
		return;
	log_notice("board back in service: %s", why);
	free(b->quarantine);
	b->quarantine = NULL;
	b->nonok = 0;
	b->suspect = false;
	(void)evtimer_del(b->health_ev);
	send_state(b);
	board_offer(b);
}

/* ---- hooks ---------------------------------------------------------- */

static void
hook_start(struct board *b, enum hook_stage stage, const char *cmd)
{
	struct timeval tv;
	struct npufarm_err err;
	double t = b->cfg.hook_timeout;

	b->stage = stage;
	b->hook_killed = false;
	b->hook_in_quarantine = b->quarantine != NULL;
	if (supervisor_hook_start(cmd, -1, &b->hook_pid, &err) < 0) {
		log_err("%s hook: %s", stage == HOOK_RESET ? "reset" : "health",
		    err.msg);
		b->hook_pid = 0;
		if (stage == HOOK_HEALTH) {
			b->stage = HOOK_NONE;
			quarantine(
			    b, "health check could not start: %s", err.msg);
			return;
		}
		hook_next(b);
		return;
	}
	log_info("%s hook started: %s (pid %ld)",
	    stage == HOOK_RESET ? "reset" : "health", cmd, (long)b->hook_pid);
	tv.tv_sec = (time_t)t;
	tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
	(void)evtimer_add(b->hook_ev, &tv);
}

/* Run the known-good probe; its verdict comes to probe_done(). */
static void
probe_begin(struct board *b)
{
	struct npufarm_err err;
	char why[sizeof(err.msg) + 32];

	b->stage = HOOK_PROBE;
	b->hook_in_quarantine = b->quarantine != NULL;
	if (probe_start(b->probe, &err) < 0) {
		b->stage = HOOK_NONE;
		(void)snprintf(
		    why, sizeof(why), "could not start: %s", err.msg);
		if (b->quarantine == NULL)
			quarantine(b, "the %s failed (%s): %s",
			    b->cfg.probe_kernel ? "probe kernel"
						: "built-in probe",
			    b->suspicion, why);
		else
			recheck_later(b);
		return;
	}
	log_info("probing the board (%s)", b->suspicion);
}

/*
 * After the reset hook (or none): the health check, or the probe when the
 * board is suspected and there is no health command; then offer again.
 */
static void
hook_next(struct board *b)
{
	if (b->stage == HOOK_NONE && b->cfg.reset_cmd != NULL) {
		hook_start(b, HOOK_RESET, b->cfg.reset_cmd);
		return;
	}
	if (b->stage != HOOK_HEALTH && b->cfg.health_cmd != NULL) {
		hook_start(b, HOOK_HEALTH, b->cfg.health_cmd);
		return;
	}
	if (b->suspect && b->cfg.health_cmd == NULL) {
		probe_begin(b);
		return;
	}
	b->stage = HOOK_NONE;
	board_offer(b);
}

static void
hook_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct board *b = arg;

	if (b->hook_pid <= 0)
		return;
	log_warn("%s hook timed out after %g s: killing it",
	    b->stage == HOOK_RESET ? "reset" : "health", b->cfg.hook_timeout);
	b->hook_killed = true;
	(void)supervisor_session_kill(b->hook_pid, SUPERVISOR_KILL_FORCE);
}

static void
hook_ended(struct board *b, const struct supervisor_end *end)
{
	enum hook_stage stage = b->stage;
	char what[SUPERVISOR_END_MSG_MAX + 64];

	b->hook_pid = 0;
	(void)evtimer_del(b->hook_ev);
	if (b->hook_killed)
		(void)snprintf(what, sizeof(what), "timed out after %g s",
		    b->cfg.hook_timeout);
	else
		(void)snprintf(what, sizeof(what), "%s",
		    end->msg[0] ? end->msg : "passed");
	if (stage == HOOK_RESET) {
		if (b->hook_killed || end->outcome != NPUFARM_OUTCOME_OK) {
			/* Board evidence: check it before offering it. */
			log_warn("reset hook failed: %s", what);
			b->suspect = true;
			(void)snprintf(b->suspicion, sizeof(b->suspicion),
			    "the reset hook failed: %s", what);
		} else
			log_info("reset hook done");
		hook_next(b);
		return;
	}
	b->stage = HOOK_NONE;
	if (b->hook_in_quarantine && b->quarantine == NULL) {
		/* An operator lifted the quarantine meanwhile. */
		board_offer(b);
		return;
	}
	if (b->hook_killed || end->outcome != NPUFARM_OUTCOME_OK) {
		if (b->quarantine == NULL)
			quarantine(b, "health check failed: %s", what);
		else {
			struct timeval tv = {(time_t)b->cfg.health_interval, 0};

			log_info("health check still failing: %s", what);
			(void)evtimer_add(b->health_ev, &tv);
		}
		return;
	}
	log_info("health check passed");
	b->nonok = 0;
	b->suspect = false;
	if (b->quarantine != NULL)
		unquarantine(b, "a health check passed");
	else
		board_offer(b);
}

/* probe_config.done: the probe's verdict on the board. */
static void
probe_done(void *arg, bool passed, const char *detail)
{
	struct board *b = arg;
	const char *what =
	    b->cfg.probe_kernel ? "probe kernel" : "built-in probe";

	b->stage = HOOK_NONE;
	if (b->hook_in_quarantine && b->quarantine == NULL) {
		/* An operator lifted the quarantine meanwhile. */
		board_offer(b);
		return;
	}
	if (passed) {
		log_info("the %s passed: the board is sound", what);
		b->nonok = 0;
		b->suspect = false;
		if (b->quarantine != NULL)
			unquarantine(b, "the probe passed");
		else
			board_offer(b);
		return;
	}
	if (b->quarantine == NULL) {
		quarantine(
		    b, "the %s failed (%s): %s", what, b->suspicion, detail);
		return;
	}
	log_info("the %s still fails: %s; again in %g s", what, detail,
	    b->probe_wait);
	recheck_later(b);
}

static void
health_cb(evutil_socket_t fd, short what, void *arg)
{
	struct board *b = arg;

	if (b->quarantine == NULL || b->stage != HOOK_NONE)
		return;
	if (b->cfg.health_cmd != NULL)
		hook_start(b, HOOK_HEALTH, b->cfg.health_cmd);
	else if (!board_busy(b))
		probe_begin(b);
	else
		recheck_later(b);
}

/* ---- sessions ------------------------------------------------------- */

static void
session_gone(void *arg, struct tvm_session *s)
{
	struct board *b = arg;
	struct session_entry *e;

	TAILQ_FOREACH(e, &b->sessions, link)
		if (e->s == s)
			break;
	if (e == NULL)
		return;
	TAILQ_REMOVE(&b->sessions, e, link);
	if (b->cur == s)
		b->cur = NULL;
	tvm_session_free(s);
	free(e);
}

static void
session_done(void *arg, bool paired, const struct tvm_session_report *rep,
    const char *why)
{
	struct board *b = arg;
	struct timeval tv;

	b->cur = NULL;
	if (!paired) {
		/* Refused or broken before a client came: try again soon. */
		log_info(
		    "offer withdrawn: %s; again in %u ms", why, b->retry_ms);
		tv.tv_sec = b->retry_ms / 1000;
		tv.tv_usec = (suseconds_t)(b->retry_ms % 1000) * 1000;
		(void)evtimer_add(b->retry_ev, &tv);
		b->retry_ms = b->retry_ms * 2 > BOARD_RETRY_MAX_MS
				  ? BOARD_RETRY_MAX_MS
				  : b->retry_ms * 2;
		return;
	}
	b->retry_ms = BOARD_RETRY_MIN_MS;
	if (b->link != NULL &&
	    link_report(b->link, rep->id, tvm_session_report_json(rep)) < 0)
		log_err(
		    "session %s: out of memory queueing its report", rep->id);
	after_work(b, rep->outcome, rep->detail);
}

/*
 * A session or task ended as @outcome.  A candidate's failure is no
 * evidence against the board: it only counts, and after
 * --quarantine-after in a row the board is checked (hook_next()), which
 * alone may quarantine it.  The hooks run after a timeout or crash; then
 * the board is offered again.
 */
static void
after_work(struct board *b, enum npufarm_outcome outcome, const char *detail)
{
	switch (outcome) {
	case NPUFARM_OUTCOME_OK:
		b->nonok = 0;
		break;
	case NPUFARM_OUTCOME_CANCELLED:
	case NPUFARM_OUTCOME_EXPIRED:
	case NPUFARM_OUTCOME_REJECTED:
		break; /* nothing ran to completion or failure */
	default:
		b->nonok++;
		break;
	}
	if (b->cfg.quarantine_after > 0 &&
	    b->nonok >= b->cfg.quarantine_after && b->quarantine == NULL) {
		b->suspect = true;
		(void)snprintf(b->suspicion, sizeof(b->suspicion),
		    "after %d non-ok outcomes in a row, the last %s: %.160s",
		    b->nonok, npufarm_outcome_name(outcome),
		    detail ? detail : "");
	}
	b->stage = HOOK_NONE;
	if (outcome == NPUFARM_OUTCOME_TIMEOUT ||
	    outcome == NPUFARM_OUTCOME_CRASH || b->suspect) {
		hook_next(b);
		return;
	}
	board_offer(b);
}

/* Offer the board for the next session, if it may be offered now. */
static void
board_offer(struct board *b)
{
	struct tvm_session_config sc = {
	    .broker = b->cfg.broker,
	    .key = b->cfg.key,
	    .name = b->cfg.name,
	    .max_session = b->cfg.max_session,
	    .max_packet = b->cfg.max_packet,
	    .sup = &b->cfg.sup,
	    .done = session_done,
	    .gone = session_gone,
	    .arg = b,
	};
	struct session_entry *e;
	struct npufarm_err err;
	char id[64];

	if (b->link == NULL || !link_up(b->link) || b->quarantine != NULL ||
	    board_busy(b))
		return;
	send_state(b); /* ready: for native tasks */
	if (b->cfg.sup.runtime_path == NULL || b->cur != NULL)
		return;
	(void)evtimer_del(b->retry_ev);
	(void)snprintf(id, sizeof(id), "%s-%llu", b->instance, ++b->nsessions);
	sc.id = id;
	e = calloc(1, sizeof(*e));
	if (e == NULL || tvm_session_offer(b->base, &sc, &e->s, &err) < 0) {
		log_err("cannot offer the board: %s",
		    e == NULL ? "out of memory" : err.msg);
		free(e);
		session_done(b, false, NULL, "the offer failed");
		return;
	}
	TAILQ_INSERT_TAIL(&b->sessions, e, link);
	b->cur = e->s;
	log_debug("offered as session %s", id);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	board_offer(arg);
}

static void
sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
	struct board *b = arg;
	struct session_entry *e, *next;
	struct supervisor_end end;
	struct npufarm_err err;
	int r;

	/* Sessions and tasks first: their reports may start hooks. */
	for (e = TAILQ_FIRST(&b->sessions); e != NULL; e = next) {
		next = TAILQ_NEXT(e, link);
		tvm_session_child_exited(e->s);
	}
	tasks_child_exited(b->tasks);
	probe_child_exited(b->probe);
	if (b->hook_pid > 0) {
		r = supervisor_hook_reap(b->hook_pid, false, &end, &err);
		if (r < 0) {
			log_err("hook: %s", err.msg);
			end.outcome = NPUFARM_OUTCOME_CRASH;
			(void)snprintf(end.msg, sizeof(end.msg), "lost");
		}
		if (r != 0)
			hook_ended(b, &end);
	}
}

/* ---- the link ------------------------------------------------------- */

/* link_config.event: the link came up (welcomed) or went down. */
void
board_link_event(void *arg, bool up)
{
	struct board *b = arg;

	if (!up) {
		/* A running session goes on; an idle offer is withdrawn
		 * (the broker drops it with the link anyway). */
		if (b->cur != NULL && !tvm_session_paired(b->cur)) {
			tvm_session_withdraw(b->cur);
			b->cur = NULL;
		}
		return;
	}
	b->retry_ms = BOARD_RETRY_MIN_MS;
	tasks_link_up(b->tasks);
	send_state(b);
	board_offer(b);
}

/* link_config.frame: {"type": "undrain"} clears a quarantine. */
void
board_link_frame(void *arg, const char *type, json_t *v)
{
	struct board *b = arg;

	if (strcmp(type, "undrain") == 0) {
		unquarantine(b, "an operator undrained it");
		return;
	}
	if (strcmp(type, "task") == 0 || strcmp(type, "cancel") == 0 ||
	    strcmp(type, "chunk") == 0) {
		tasks_frame(b->tasks, type, v);
		return;
	}
	log_warn("broker sent a frame of unknown type '%.32s'; ignored", type);
}

void
board_set_link(struct board *b, struct link *l)
{
	b->link = l;
	tasks_set_link(b->tasks, l);
}

/* tasks_config.done: a native task is over and reported. */
static void
task_done(void *arg, enum npufarm_outcome outcome, const char *detail)
{
	after_work(arg, outcome, detail);
}

int
board_new(struct event_base *base, const struct board_config *cfg,
    struct board **ret_board, struct npufarm_err *err)
{
	struct tasks_config tc;
	struct probe_config pc;
	uint64_t rnd = 0;
	struct board *b;

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	b->base = base;
	b->cfg = *cfg;
	b->retry_ms = BOARD_RETRY_MIN_MS;
	TAILQ_INIT(&b->sessions);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	(void)snprintf(b->instance, sizeof(b->instance), "%016llx",
	    (unsigned long long)rnd);
	b->sigchld = evsignal_new(base, SIGCHLD, sigchld_cb, b);
	b->retry_ev = evtimer_new(base, retry_cb, b);
	b->hook_ev = evtimer_new(base, hook_timeout_cb, b);
	b->health_ev = evtimer_new(base, health_cb, b);
	tc = (struct tasks_config){
	    .workdir = cfg->sup.workdir,
	    .exec_cmd = cfg->exec_cmd,
	    .cache = cfg->cache,
	    .done = task_done,
	    .arg = b,
	};
	pc = (struct probe_config){
	    .workdir = cfg->sup.workdir,
	    .kernel = cfg->probe_kernel,
	    .stderr_fd = -1,
	    .done = probe_done,
	    .arg = b,
	};
	if (b->sigchld == NULL || b->retry_ev == NULL || b->hook_ev == NULL ||
	    b->health_ev == NULL || evsignal_add(b->sigchld, NULL) < 0 ||
	    tasks_new(base, &tc, &b->tasks, err) < 0 ||
	    probe_new(base, &pc, &b->probe, err) < 0) {
		board_free(b);
		return err_set(err, -ENOMEM, "out of memory");
	}
	*ret_board = b;
	return 0;
}

/*
 * Free @b: running sessions are killed and reaped, a running hook too.
 * Accepts NULL; returns NULL.
 */
struct board *
board_free(struct board *b)
{
	struct session_entry *e;
	struct supervisor_end end;
	struct npufarm_err err;

	if (b == NULL)
		return NULL;
	while ((e = TAILQ_FIRST(&b->sessions)) != NULL) {
		TAILQ_REMOVE(&b->sessions, e, link);
		tvm_session_free(e->s);
		free(e);
	}
	if (b->hook_pid > 0) {
		(void)supervisor_session_kill(
		    b->hook_pid, SUPERVISOR_KILL_FORCE);
		(void)supervisor_hook_reap(b->hook_pid, true, &end, &err);
	}
	b->tasks = tasks_free(b->tasks);
	b->probe = probe_free(b->probe);
	if (b->sigchld != NULL)
		event_free(b->sigchld);
	if (b->retry_ev != NULL)
		event_free(b->retry_ev);
	if (b->hook_ev != NULL)
		event_free(b->hook_ev);
	if (b->health_ev != NULL)
		event_free(b->health_ev);
	free(b->quarantine);
	free(b);
	return NULL;
}
