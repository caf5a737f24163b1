/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm submit SPEC.json | --kernel FILE...: submit a tuning job.
 *
 * The job comes from a spec file (docs/api.md's POST /v1/jobs body, where
 * a task may give "artifact_file" instead of "artifact") or from sweep
 * flags (jobspec_sweep()).  It is checked here with the broker's own
 * validator, then every distinct artifact is looked up with HEAD
 * /v1/artifacts/{sha256} and PUT only when the broker answers 404, and
 * the job is POSTed.  stdout gets the job id alone (or the reply with
 * --json), so that JOB=$(npufarm submit ...) works; uploads are reported
 * on stderr.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "err.h"
#include "format.h"
#include "http.h"
#include "jobspec.h"
#include "xmalloc.h"

/* Most of the time a PUT may take beyond --timeout: 1 s per MiB. */
#define CMD_SUBMIT_MS_PER_MIB 1000

/* Long-only options; values past any character. */
enum {
	OPT_KEY = 256,
	OPT_USER,
	OPT_PRIORITY,
	OPT_QUEUE_TIMEOUT,
	OPT_KERNEL,
	OPT_RUNNER,
	OPT_ENTRY,
	OPT_ARG,
	OPT_SWEEP,
	OPT_NUMBER,
	OPT_REPEAT,
	OPT_MIN_REPEAT_MS,
	OPT_COOLDOWN_MS,
	OPT_TIMEOUT,
	OPT_DRY_RUN,
	OPT_WAIT,
	OPT_CHECK_REF,
	OPT_CHECK_ENTRY,
	OPT_RTOL,
	OPT_ATOL,
	OPT_TAG,
};

static const struct option cmd_submit_options[] = {
    CLI_COMMON_OPTIONS,
    {"key", required_argument, NULL, OPT_KEY},
    {"user", required_argument, NULL, OPT_USER},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"queue-timeout", required_argument, NULL, OPT_QUEUE_TIMEOUT},
    {"kernel", required_argument, NULL, OPT_KERNEL},
    {"runner", required_argument, NULL, OPT_RUNNER},
    {"entry", required_argument, NULL, OPT_ENTRY},
    {"arg", required_argument, NULL, OPT_ARG},
    {"sweep", required_argument, NULL, OPT_SWEEP},
    {"sweep-param", required_argument, NULL, OPT_SWEEP},
    {"number", required_argument, NULL, OPT_NUMBER},
    {"repeat", required_argument, NULL, OPT_REPEAT},
    {"min-repeat-ms", required_argument, NULL, OPT_MIN_REPEAT_MS},
    {"cooldown-ms", required_argument, NULL, OPT_COOLDOWN_MS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"wait", no_argument, NULL, OPT_WAIT},
    {"check-ref", required_argument, NULL, OPT_CHECK_REF},
    {"check-entry", required_argument, NULL, OPT_CHECK_ENTRY},
    {"rtol", required_argument, NULL, OPT_RTOL},
    {"atol", required_argument, NULL, OPT_ATOL},
    {"tag", required_argument, NULL, OPT_TAG},
    {NULL, 0, NULL, 0},
};

/* The parsed command line; strings borrowed from argv. */
struct cmd_submit_args {
	struct jobspec_job job;
	struct jobspec_sweep sweep;
	const char **kernels, **args, **params, **tags; /* owned arrays */
	size_t nkernels, nargs, nparams, ntags;
	bool sweep_flags; /* a flag that only a sweep takes was given */
	bool dry_run, wait;
	bool help;             /* --help was shown: exit 0 at once */
	const char *spec_path; /* the SPEC operand, or NULL */
};

static void
cmd_submit_args_deinit(struct cmd_submit_args *a)
{
	free(a->kernels);
	free(a->args);
	free(a->params);
	free(a->tags);
}

static void
cmd_submit_push(const char ***v, size_t *n, const char *s)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = s;
}

/* --@opt @arg: a number from 0 to @max (@what, for the message). */
static int
cmd_submit_number(const struct cmd_entry *self, const char *opt,
    const char *arg, double max, const char *what, double *ret)
{
	char *end;
	double v = strtod(arg, &end);

	if (end == arg || *end != '\0' || !(v >= 0) || v > max)
		return cli_usage(
		    self, "--%s takes %s, not '%s'", opt, what, arg);
	*ret = v;
	return CLI_EXIT_OK;
}

/* Parse --OPT's numeric @arg in [@min, @max] into *@ret. */
static int
cmd_submit_long(const struct cmd_entry *self, const char *opt, const char *arg,
    long min, long max, long *ret)
{
	if (cli_parse_int(arg, min, max, ret) < 0)
		return cli_usage(self,
		    "--%s takes a number in %ld..%ld, not '%s'", opt, min, max,
		    arg);
	return CLI_EXIT_OK;
}

static int
cmd_submit_seconds(
    const struct cmd_entry *self, const char *opt, const char *arg, double *ret)
{
	return cmd_submit_number(self, opt, arg, 86400 * 365, "seconds", ret);
}

/* A tolerance of --check-ref: a finite number >= 0. */
static int
cmd_submit_tolerance(
    const struct cmd_entry *self, const char *opt, const char *arg, double *ret)
{
	return cmd_submit_number(self, opt, arg, 1e300, "a number >= 0", ret);
}

/*
 * Parse one option @c of ours into @a.  Returns CLI_EXIT_OK or
 * CLI_EXIT_USAGE after reporting.
 */
static int
cmd_submit_option(
    const struct cmd_entry *self, int c, struct cmd_submit_args *a)
{
	struct jobspec_sweep *sw = &a->sweep;

	if (c >= OPT_KERNEL && c <= OPT_TIMEOUT)
		a->sweep_flags = true;
	switch (c) {
	case OPT_KEY:
		a->job.key = optarg;
		return CLI_EXIT_OK;
	case OPT_USER:
		a->job.user = optarg;
		return CLI_EXIT_OK;
	case OPT_PRIORITY:
		a->job.has_priority = true;
		return cmd_submit_long(self, "priority", optarg, -1000000,
		    1000000, &a->job.priority);
	case OPT_QUEUE_TIMEOUT:
		return cmd_submit_seconds(
		    self, "queue-timeout", optarg, &a->job.queue_timeout);
	case OPT_KERNEL:
		cmd_submit_push(&a->kernels, &a->nkernels, optarg);
		return CLI_EXIT_OK;
	case OPT_RUNNER:
		if (strcmp(optarg, "kernel") != 0 &&
		    strcmp(optarg, "exec") != 0)
			return cli_usage(self,
			    "--runner is kernel or exec, not '%s'", optarg);
		sw->runner = optarg;
		return CLI_EXIT_OK;
	case OPT_ENTRY:
		sw->entry = optarg;
		return CLI_EXIT_OK;
	case OPT_ARG:
		cmd_submit_push(&a->args, &a->nargs, optarg);
		return CLI_EXIT_OK;
	case OPT_SWEEP:
		cmd_submit_push(&a->params, &a->nparams, optarg);
		return CLI_EXIT_OK;
	case OPT_NUMBER:
		return cmd_submit_long(
		    self, "number", optarg, 1, 1000000000, &sw->number);
	case OPT_REPEAT:
		return cmd_submit_long(
		    self, "repeat", optarg, 1, 1000, &sw->repeat);
	case OPT_MIN_REPEAT_MS:
		return cmd_submit_long(self, "min-repeat-ms", optarg, 0, 600000,
		    &sw->min_repeat_ms);
	case OPT_COOLDOWN_MS:
		return cmd_submit_long(
		    self, "cooldown-ms", optarg, 0, 60000, &sw->cooldown_ms);
	case OPT_TIMEOUT:
		return cmd_submit_seconds(
		    self, "timeout", optarg, &sw->timeout);
	case OPT_DRY_RUN:
		a->dry_run = true;
		return CLI_EXIT_OK;
	case OPT_WAIT:
		a->wait = true;
		return CLI_EXIT_OK;
	case OPT_CHECK_REF:
		a->job.check_ref = optarg;
		return CLI_EXIT_OK;
	case OPT_CHECK_ENTRY:
		a->job.check_entry = optarg;
		return CLI_EXIT_OK;
	case OPT_RTOL:
		return cmd_submit_tolerance(self, "rtol", optarg, &a->job.rtol);
	case OPT_ATOL:
		return cmd_submit_tolerance(self, "atol", optarg, &a->job.atol);
	case OPT_TAG:
		cmd_submit_push(&a->tags, &a->ntags, optarg);
		return CLI_EXIT_OK;
	default:
		return cli_usage(self, "unexpected option");
	}
}

/*
 * Parse the command line into @a.  Returns CLI_EXIT_OK (with @a->help
 * set after --help: exit at once), or the status of a usage error.
 */
static int
cmd_submit_parse(struct cli *cli, const struct cmd_entry *self, int argc,
    char **argv, struct cmd_submit_args *a)
{
	int c, r;

	memset(a, 0, sizeof(*a));
	a->job.queue_timeout = -1;
	a->job.rtol = a->job.atol = -1;
	a->sweep.number = a->sweep.repeat = -1;
	a->sweep.min_repeat_ms = a->sweep.cooldown_ms = -1;
	a->sweep.timeout = -1;
	while ((c = cli_getopt(cli, self, argc, argv, CLI_COMMON_OPTSTRING,
		    cmd_submit_options, &r)) != CLI_OPT_END) {
		if (c == CLI_OPT_EXIT) {
			a->help = r == CLI_EXIT_OK;
			return r;
		}
		if ((r = cmd_submit_option(self, c, a)) != CLI_EXIT_OK)
			return r;
	}
	a->job.tags = a->tags;
	a->job.ntags = a->ntags;
	if (argc - optind > 1)
		return cli_usage(
		    self, "unexpected argument '%s'", argv[optind + 1]);
	if (argc - optind == 1)
		a->spec_path = argv[optind];
	if (a->spec_path != NULL && a->sweep_flags)
		return cli_usage(self,
		    "give a SPEC file or --kernel and its sweep flags, "
		    "not both");
	if (a->spec_path == NULL && a->nkernels == 0)
		return cli_usage(self, "expected a SPEC file or --kernel FILE");
	if (a->spec_path == NULL && a->job.key == NULL)
		return cli_usage(self, "a sweep needs --key KEY");
	a->sweep.kernels = a->kernels;
	a->sweep.nkernels = a->nkernels;
	a->sweep.args = a->args;
	a->sweep.nargs = a->nargs;
	a->sweep.params = a->params;
	a->sweep.nparams = a->nparams;
	return CLI_EXIT_OK;
}

/*
 * Load the spec file @path ("-": stdin) into a new reference in
 * *@ret_spec and, for a file, its directory (owned) into *@ret_dir.
 */
static int
cmd_submit_load(const char *path, json_t **ret_spec, char **ret_dir)
{
	json_error_t jerr;
	char *copy, *safe;
	json_t *spec;

	if (strcmp(path, "-") == 0)
		spec = json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);
	else
		spec = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (spec == NULL) {
		safe = format_escape(jerr.text);
		if (jerr.line > 0)
			(void)fprintf(stderr, "npufarm: %s:%d:%d: %s\n", path,
			    jerr.line, jerr.column, safe);
		else
			(void)fprintf(stderr, "npufarm: %s: %s\n", path, safe);
		free(safe);
		return -1;
	}
	*ret_dir = NULL;
	if (strcmp(path, "-") != 0) {
		copy = xstrdup(path);
		*ret_dir = xstrdup(dirname(copy));
		free(copy);
	}
	*ret_spec = spec;
	return 0;
}

/* Read all of @path into a new buffer (*@ret_len bytes). */
static char *
cmd_submit_read(const char *path, size_t *ret_len)
{
	struct stat st;
	size_t off = 0;
	ssize_t n;
	char *buf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail;
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			goto fail;
		}
		off += (size_t)n;
	}
	(void)close(fd);
	*ret_len = off;
	return buf;
fail:
	(void)fprintf(stderr, "npufarm: cannot read '%s': %s\n", path,
	    strerror(errno != 0 ? errno : EIO));
	if (fd >= 0)
		(void)close(fd);
	return NULL;
}

/*
 * Make sure the broker has @a: HEAD it, and PUT the file when the broker
 * answers 404.  Returns 0, or a CLI_REQ_* code after reporting.
 */
static int
cmd_submit_upload(const struct cli *cli, const struct jobspec_artifact *a)
{
	struct http_reply reply = {0};
	struct http_body body = {.type = "application/octet-stream"};
	struct cli_req req = {.cmd = EVHTTP_REQ_HEAD};
	char path[96], size[FORMAT_DURATION_MAX];
	json_t *root = NULL;
	char *data;
	int r;

	(void)snprintf(path, sizeof(path), "/v1/artifacts/%s", a->sha256);
	req.path = path;
	r = cli_req_send(cli, &req, &reply);
	http_reply_deinit(&reply);
	if (r < 0)
		return r;
	if (req.status >= 200 && req.status <= 299)
		return 0;
	if (req.status != 404) {
		(void)fprintf(
		    stderr, "npufarm: HEAD %s: HTTP %d\n", path, req.status);
		return CLI_REQ_FAILED;
	}
	data = cmd_submit_read(a->path, &body.len);
	if (data == NULL)
		return CLI_REQ_FAILED;
	body.data = data;
	(void)snprintf(size, sizeof(size), "%.1f KiB", body.len / 1024.0);
	(void)fprintf(stderr, "npufarm: uploading %s (%s, sha256 %.12s)\n",
	    a->path, size, a->sha256);
	req = (struct cli_req){
	    .cmd = EVHTTP_REQ_PUT,
	    .path = path,
	    .body = &body,
	    .timeout_ms =
		cli->timeout_ms + (int)(body.len >> 20) * CMD_SUBMIT_MS_PER_MIB,
	};
	r = cli_req_json(cli, &req, &root);
	json_decref(root);
	free(data);
	return r;
}

/* Upload what the broker lacks, each distinct sha256 once. */
static int
cmd_submit_uploads(const struct cli *cli, const struct jobspec_artifacts *arts)
{
	size_t i, j;
	int r;

	for (i = 0; i < arts->n; i++) {
		for (j = 0; j < i; j++)
			if (strcmp(arts->v[j].sha256, arts->v[i].sha256) == 0)
				break;
		if (j < i)
			continue;
		if ((r = cmd_submit_upload(cli, &arts->v[i])) < 0)
			return r;
	}
	return 0;
}

/* POST @spec; prints the id (or the reply) and returns it, or -1. */
static long long
cmd_submit_post(const struct cli *cli, const json_t *spec)
{
	struct http_body body = {.type = "application/json"};
	struct cli_req req = {.cmd = EVHTTP_REQ_POST, .path = "/v1/jobs"};
	json_t *root = NULL, *id;
	long long r = -1;
	char *text;

	text = json_dumps(spec, JSON_COMPACT);
	if (text == NULL) {
		(void)fprintf(stderr, "npufarm: out of memory\n");
		return -1;
	}
	body.data = text;
	body.len = strlen(text);
	req.body = &body;
	if (cli_req_json(cli, &req, &root) < 0)
		goto out;
	id = json_object_get(root, "id");
	if (!json_is_integer(id) || json_integer_value(id) <= 0) {
		(void)fprintf(stderr,
		    "npufarm: POST /v1/jobs: the reply has no job id\n");
		goto out;
	}
	r = json_integer_value(id);
	if (json_is_string(json_object_get(root, "warning")))
		(void)fprintf(stderr, "npufarm: warning: %s\n",
		    json_string_value(json_object_get(root, "warning")));
	if (cli->json) {
		if (cli_print_json(root) != CLI_EXIT_OK)
			r = -1;
	} else {
		(void)printf("%lld\n", r);
		(void)fflush(stdout);
	}
out:
	json_decref(root);
	free(text);
	return r;
}

static int
cmd_submit_exec(
    struct cli *cli, const struct cmd_entry *self, int argc, char **argv)
{
	struct jobspec_artifacts arts = {0};
	struct npufarm_err err = {0};
	struct cmd_submit_args a;
	json_t *spec = NULL;
	char *dir = NULL, *safe;
	long long id;
	int r;

	r = cmd_submit_parse(cli, self, argc, argv, &a);
	if (r != CLI_EXIT_OK || a.help)
		goto out;
	r = CLI_EXIT_FAIL;
	if (a.spec_path != NULL) {
		if (cmd_submit_load(a.spec_path, &spec, &dir) < 0)
			goto out;
		if (!json_is_object(spec)) {
			(void)fprintf(stderr,
			    "npufarm: %s: the job must be a JSON object\n",
			    a.spec_path);
			goto out;
		}
	} else if (jobspec_sweep(&a.sweep, &spec, &err) < 0) {
		r = cli_usage(self, "%s", err.msg);
		goto out;
	}
	if (jobspec_apply_job(spec, &a.job, &err) < 0 ||
	    jobspec_resolve(spec, dir, &arts, &err) < 0 ||
	    jobspec_check(spec, &err) < 0) {
		safe = format_escape(err.msg);
		(void)fprintf(stderr, "npufarm: %s%s%s\n",
		    a.spec_path != NULL ? a.spec_path : "",
		    a.spec_path != NULL ? ": " : "", safe);
		free(safe);
		goto out;
	}
	if (a.dry_run) {
		r = cli_print_json(spec);
		goto out;
	}
	if (cmd_submit_uploads(cli, &arts) < 0)
		goto out;
	id = cmd_submit_post(cli, spec);
	if (id < 0)
		goto out;
	r = a.wait ? cmd_wait_follow(cli, id, false) : CLI_EXIT_OK;
out:
	jobspec_artifacts_deinit(&arts);
	json_decref(spec);
	free(dir);
	cmd_submit_args_deinit(&a);
	return r;
}

const struct cmd_entry cmd_submit_entry = {
    .name = "submit",
    .usage = "[options] SPEC.json | --key KEY --kernel FILE... [sweep options]",
    .brief = "submit a tuning job; prints its id",
    .summary =
	"Submit a tuning job and print its id.  SPEC.json (\"-\": stdin) is "
	"the\nbody of POST /v1/jobs (docs/api.md), where a task may give "
	"\"artifact_file\":\n\"path/to/kernel.so\" (relative to the spec's "
	"directory) instead of\n\"artifact\": the file is hashed, uploaded "
	"when the broker lacks it, and\nreplaced by its sha256.  The job is "
	"checked before anything is sent.\n"
	"\n"
	"Without a spec, flags describe a sweep of kernels: one task per "
	"--kernel\nfile and per point of the --sweep parameters.\n"
	"\n"
	"job options (override the spec's):\n"
	"  --key KEY             the board key (required)\n"
	"  --user USER           whose job (default: the client's address)\n"
	"  --priority N          higher goes first (default 0)\n"
	"  --queue-timeout SECS  how long a task may wait for a board\n"
	"  --tag K=V             run only on boards tagged K=V (repeatable)\n"
	"  --check-ref FILE      check every kernel task's outputs against "
	"this\n"
	"                        reference kernel: a mismatch is the outcome\n"
	"                        'wrong' (--check-entry SYMBOL, --rtol R,\n"
	"                        --atol A; default 1e-5 and 1e-8)\n"
	"sweep options:\n"
	"  --kernel FILE         a candidate's artifact; repeat for more\n"
	"  --runner R            kernel (default) or exec\n"
	"  --entry SYMBOL        the entry point (default npufarm_kernel)\n"
	"  --arg ARG             an argument, in order: DTYPE:SHAPE[:FILL] for "
	"a\n"
	"                        tensor (float32:128x128:random=1; FILL zeros,"
	"\n"
	"                        ones, random or random=SEED), DTYPE=VALUE for "
	"a\n"
	"                        scalar (int32=16)\n"
	"  --sweep NAME=V1,V2..  a parameter: {NAME} in --arg and --entry "
	"takes\n"
	"                        each value in turn (also --sweep-param)\n"
	"  --number N, --repeat N, --min-repeat-ms MS, --cooldown-ms MS\n"
	"                        the measurement (docs/kernel-abi.md)\n"
	"  --timeout SECS        each task's run timeout (the global --timeout"
	"\n"
	"                        bounds HTTP requests)\n"
	"other options:\n"
	"  --dry-run             print the job JSON, send nothing\n"
	"  --wait                then follow it as npufarm wait does\n"
	"\n"
	"Example: npufarm submit --key rk3588 --kernel matmul_t8.so "
	"--kernel\n  matmul_t32.so --entry matmul --arg "
	"float32:128x128:random=1 --arg\n  float32:128x128:random=2 --arg "
	"float32:128x128 --repeat 3 --min-repeat-ms 20",
    .exec = cmd_submit_exec,
};
