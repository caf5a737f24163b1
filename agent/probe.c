/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The known-good probe (see probe.h): one runner child at a time, its
 * report pipe watched, its deadline armed; killed at the deadline.
 */
#include "config.h"

#include "probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <npufarm/outcome.h>

#include "err.h"
#include "runner.h"
#include "supervisor.h"
#include "task_spec.h"

struct probe {
	struct event_base *base;
	struct probe_config cfg;
	struct task_spec spec;
	struct runner *run; /* NULL: none running */
	struct event *read_ev;
	struct event *deadline_ev;
	struct event *kill_ev;
	bool timed_out;
};

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;

	if (p->run != NULL && runner_read(p->run, NULL) != 0)
		(void)event_del(p->read_ev);
}

static void
kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;

	if (p->run != NULL)
		(void)supervisor_session_kill(
		    runner_pid(p->run), SUPERVISOR_KILL_FORCE);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;
	struct timeval tv = {0, SUPERVISOR_KILL_GRACE_MS * 1000};

	if (p->run == NULL)
		return;
	p->timed_out = true;
	(void)supervisor_session_kill(runner_pid(p->run), SUPERVISOR_KILL_TERM);
	(void)evtimer_add(p->kill_ev, &tv);
}

/*
 * Start the probe.  Returns 0, -EBUSY while one runs, or -errno with @err
 * saying why it could not start (which board.c counts as a failure).
 */
int
probe_start(struct probe *p, struct npufarm_err *err)
{
	struct runner_config rc = {
	    .workdir = p->cfg.workdir,
	    .stderr_fd = p->cfg.stderr_fd,
	};
	struct timeval tv;
	int r;

	if (p->run != NULL)
		return err_set(err, -EBUSY, "a probe is running");
	r = runner_start(&rc, &p->spec, p->cfg.kernel, &p->run, err);
	if (r < 0)
		return r;
	p->timed_out = false;
	tv.tv_sec = (time_t)(p->spec.timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(p->spec.timeout_ms % 1000) * 1000;
	if (event_assign(p->read_ev, p->base, runner_fd(p->run),
		EV_READ | EV_PERSIST, read_cb, p) < 0 ||
	    event_add(p->read_ev, NULL) < 0 ||
	    evtimer_add(p->deadline_ev, &tv) < 0) {
		p->run = runner_free(p->run);
		return err_set(
		    err, -ENOMEM, "out of memory watching the probe");
	}
	return 0;
}

/* Whether a probe runs now. */
bool
probe_running(const struct probe *p)
{
	return p->run != NULL;
}

/* SIGCHLD: if the probe's child ended, its verdict goes to cfg.done. */
void
probe_child_exited(struct probe *p)
{
	struct runner_result *res;
	struct npufarm_err err;
	char detail[RUNNER_MSG_MAX + 64];
	bool passed;
	int r;

	if (p->run == NULL)
		return;
	res = calloc(1, sizeof(*res));
	if (res == NULL)
		return; /* the next SIGCHLD or the kill retries */
	r = runner_collect(p->run, false, res, &err);
	if (r == 0) {
		free(res);
		return;
	}
	(void)event_del(p->read_ev);
	(void)evtimer_del(p->deadline_ev);
	(void)evtimer_del(p->kill_ev);
	p->run = runner_free(p->run);
	passed = r > 0 && !p->timed_out && res->outcome == NPUFARM_OUTCOME_OK;
	if (r < 0)
		(void)snprintf(detail, sizeof(detail), "crash: %s", err.msg);
	else if (p->timed_out)
		(void)snprintf(detail, sizeof(detail),
		    "timeout: no answer in %g s",
		    (double)p->spec.timeout_ms / 1000.0);
	else if (!passed)
		(void)snprintf(detail, sizeof(detail), "%s: %s",
		    npufarm_outcome_name(res->outcome), res->msg);
	else
		detail[0] = '\0';
	free(res);
	p->cfg.done(p->cfg.arg, passed, detail);
}

/*
 * A probe for @cfg (copied; its strings borrowed).  Returns 0 or -ENOMEM.
 */
int
probe_new(struct event_base *base, const struct probe_config *cfg,
    struct probe **ret_probe, struct npufarm_err *err)
{
	struct probe *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	p->base = base;
	p->cfg = *cfg;
	runner_probe_spec(&p->spec);
	p->read_ev = event_new(base, -1, 0, read_cb, p);
	p->deadline_ev = evtimer_new(base, deadline_cb, p);
	p->kill_ev = evtimer_new(base, kill_cb, p);
	if (p->read_ev == NULL || p->deadline_ev == NULL ||
	    p->kill_ev == NULL) {
		probe_free(p);
		return err_set(err, -ENOMEM, "out of memory");
	}
	*ret_probe = p;
	return 0;
}

/* Free @p; a running probe is killed and reaped.  NULL in, NULL out. */
struct probe *
probe_free(struct probe *p)
{
	if (p == NULL)
		return NULL;
	if (p->read_ev != NULL) {
		(void)event_del(p->read_ev);
		event_free(p->read_ev);
	}
	p->run = runner_free(p->run);
	if (p->deadline_ev != NULL)
		event_free(p->deadline_ev);
	if (p->kill_ev != NULL)
		event_free(p->kill_ev);
	free(p);
	return NULL;
}
