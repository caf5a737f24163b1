/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm wait JOB: follow a job until every task has an outcome, then
 * print its tasks and the best candidate.
 *
 * Progress comes from the long-poll GET /v1/jobs/{id}/wait?after=SEQ,
 * which answers as soon as the job moved past SEQ.  On a terminal the
 * progress is one bar redrawn in place (polled every second, so its clock
 * ticks); otherwise a plain line each time the line changes, which keeps
 * logs short.  With --json the progress goes to stderr, and only when
 * that is a terminal, so stdout holds just the final job's JSON.
 *
 * Exit status: 0 when every task ended ok, 1 otherwise (or when the
 * broker answered an error), 2 for a bad command line, 3 when the broker
 * could not be reached: at the first request, or for longer than
 * --reconnect seconds after it went away mid-job (a restarting broker
 * keeps its jobs, so waiting on is worth it).
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "jobview.h"
#include "xmalloc.h"

/* Long-poll timeouts asked of the broker, seconds. */
#define CMD_WAIT_POLL_TTY  1  /* the bar's clock ticks */
#define CMD_WAIT_POLL_LINE 30 /* the API's default */

/* Default for --reconnect, seconds. */
#define CMD_WAIT_RECONNECT 30

enum {
	OPT_QUIET = 256,
	OPT_RECONNECT,
};

static const struct option cmd_wait_options[] = {
    CLI_COMMON_OPTIONS,
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"reconnect", required_argument, NULL, OPT_RECONNECT},
    {NULL, 0, NULL, 0},
};

/* How npufarm wait shows progress, decided once. */
struct cmd_wait {
	const struct cli *cli; /* borrowed */
	long long id;
	FILE *out;        /* where progress goes, NULL for none */
	bool tty;         /* redraw a bar in place on out */
	bool drawn;       /* a bar is on screen, without its newline */
	char *last;       /* the last plain line printed, owned */
	double start;     /* monotonic seconds */
	long reconnect_s; /* --reconnect */
};

static double
cmd_wait_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
cmd_wait_sleep(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};

	(void)nanosleep(&ts, NULL);
}

/* Show @job's progress: redraw the bar, or print a line if it changed. */
static void
cmd_wait_show(struct cmd_wait *w, const json_t *job)
{
	char *s;

	if (w->out == NULL)
		return;
	if (w->tty) {
		s = jobview_progress_bar(job, cmd_wait_now() - w->start);
		/* Back to the line's start, then erase what is left of it. */
		(void)fprintf(w->out, "\r%s\033[K", s);
		w->drawn = true;
		free(s);
	} else {
		s = jobview_progress_line(job);
		if (w->last != NULL && strcmp(w->last, s) == 0) {
			free(s);
			return;
		}
		(void)fprintf(w->out, "%s\n", s);
		free(w->last);
		w->last = s;
	}
	(void)fflush(w->out);
}

/* End the bar's line, so that what follows starts on a fresh one. */
static void
cmd_wait_end_bar(struct cmd_wait *w)
{
	if (w->drawn) {
		(void)fputc('\n', w->out);
		(void)fflush(w->out);
		w->drawn = false;
	}
}

/*
 * Long-poll until the job is finished.  Returns CLI_EXIT_OK once it is,
 * or the exit status to end with.
 */
static int
cmd_wait_poll(struct cmd_wait *w)
{
	int poll_s = w->tty ? CMD_WAIT_POLL_TTY : CMD_WAIT_POLL_LINE;
	long long after = 0, seq;
	double lost_at = -1;
	bool reached = false;
	struct cli_req req;
	char path[128];
	json_t *root;
	int r;

	for (;;) {
		(void)snprintf(path, sizeof(path),
		    "/v1/jobs/%lld/wait?after=%lld&timeout=%d", w->id, after,
		    poll_s);
		req = (struct cli_req){
		    .cmd = EVHTTP_REQ_GET,
		    .path = path,
		    .timeout_ms = poll_s * 1000 + w->cli->timeout_ms,
		};
		r = cli_req_json(w->cli, &req, &root);
		if (r == CLI_REQ_UNREACHABLE) {
			if (!reached)
				return CLI_EXIT_UNREACHABLE;
			if (lost_at < 0) {
				cmd_wait_end_bar(w);
				lost_at = cmd_wait_now();
				(void)fprintf(stderr,
				    "npufarm: retrying for up to %lds\n",
				    w->reconnect_s);
			}
			if (cmd_wait_now() - lost_at >= w->reconnect_s)
				return CLI_EXIT_UNREACHABLE;
			cmd_wait_sleep(1);
			continue;
		}
		if (r < 0)
			return CLI_EXIT_FAIL;
		reached = true;
		lost_at = -1;
		cmd_wait_show(w, root);
		if (jobview_finished(root)) {
			json_decref(root);
			return CLI_EXIT_OK;
		}
		/* A reply that does not move seq on must not spin. */
		seq = json_integer_value(json_object_get(root, "seq"));
		if (seq <= after)
			cmd_wait_sleep(1);
		else
			after = seq;
		json_decref(root);
	}
}

/*
 * Follow @w->id to its end, then print the job.  @w's cli, id and
 * reconnect_s are set; the rest is filled here.
 */
static int
cmd_wait_run(struct cmd_wait *w, bool quiet)
{
	const struct cli *cli = w->cli;
	char path[64];
	json_t *job = NULL;
	struct cli_req req;
	int r;

	w->start = cmd_wait_now();
	if (!quiet && !cli->json)
		w->out = stdout;
	else if (!quiet && isatty(STDERR_FILENO))
		w->out = stderr;
	w->tty = w->out != NULL && isatty(fileno(w->out));
	r = cmd_wait_poll(w);
	cmd_wait_end_bar(w);
	free(w->last);
	w->last = NULL;
	if (r != CLI_EXIT_OK)
		return r;
	(void)snprintf(path, sizeof(path), "/v1/jobs/%lld", w->id);
	req = (struct cli_req){.cmd = EVHTTP_REQ_GET, .path = path};
	r = cli_req_json(cli, &req, &job);
	if (r < 0)
		return r == CLI_REQ_UNREACHABLE ? CLI_EXIT_UNREACHABLE
						: CLI_EXIT_FAIL;
	if (cli->json) {
		r = cli_print_json(job);
	} else {
		if (w->out == stdout)
			(void)fputc('\n', stdout);
		jobview_print_tasks(job, stdout);
		r = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	if (r == CLI_EXIT_OK)
		r = jobview_exit_status(job);
	json_decref(job);
	return r;
}

/*
 * Follow job @id to its end (with progress unless @quiet), then print
 * its tasks and best candidate, or with --json GET /v1/jobs/{id}'s reply.
 * Returns the exit status described at the top of this file.  Used by
 * npufarm wait and by npufarm submit --wait.
 */
int
cmd_wait_follow(const struct cli *cli, long long id, bool quiet)
{
	struct cmd_wait w = {
	    .cli = cli,
	    .id = id,
	    .reconnect_s = CMD_WAIT_RECONNECT,
	};

	return cmd_wait_run(&w, quiet);
}

static int
cmd_wait_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	struct cmd_wait w = {.cli = cli, .reconnect_s = CMD_WAIT_RECONNECT};
	bool quiet = false;
	int c, r;

	while ((c = cli_getopt(cli, self, argc, argv, CLI_COMMON_OPTSTRING "q",
		    cmd_wait_options, &r)) != CLI_OPT_END) {
		if (c == CLI_OPT_EXIT)
			return r;
		if (c == 'q' || c == OPT_QUIET) {
			quiet = true;
		} else if (cli_parse_int(optarg, 0, 86400, &w.reconnect_s) <
			   0) {
			return cli_usage(self,
			    "--reconnect takes seconds (0..86400), not '%s'",
			    optarg);
		}
	}
	if ((r = cli_job_operand(self, argc, argv, &w.id)) != CLI_EXIT_OK)
		return r;
	return cmd_wait_run(&w, quiet);
}

const struct cmd_entry cmd_wait_entry = {
    .name = "wait",
    .usage = "[-q|--quiet] [--reconnect SECS] JOB",
    .brief = "follow a job to its end; exit 0 if every task ended ok",
    .summary =
	"Follow JOB until every task has an outcome: a progress bar on a "
	"terminal,\nplain lines when the output is not one (-q: none).  Then "
	"print each\ntask's outcome, best and median cost (seconds per call), "
	"board and\ndetail, and the best candidate: the lowest median among "
	"the tasks that\nended ok.  --json prints GET /v1/jobs/JOB's reply "
	"instead.\n"
	"\n"
	"Exit status: 0 every task ended ok; 1 some did not, or the broker "
	"answered\nan error; 2 bad command line; 3 the broker could not be "
	"reached (at\nfirst, or for more than --reconnect SECS, default 30, "
	"while waiting).",
    .exec = cmd_wait_exec,
};
