/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-agent: one per board.  It dials out to the broker's farm port
 * (so boards can sit behind NAT), says hello with its name and key, keeps
 * the link alive with heartbeats, reconnecting whenever it drops, and
 * serves TVM sessions in supervised children (board.h, tvm_session.h).
 * Every flag is also a key of the --config JSON file (dashes become
 * underscores; flags win).  Exit status: 0 after SIGTERM/SIGINT, 1 on a
 * start-up failure, 2 on bad usage.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "board.h"
#include "cache.h"
#include "err.h"
#include "link.h"
#include "log.h"
#include "secret.h"
#include "server_flags.h"
#include "service.h"
#include "supervisor.h"
#include "tvm_runtime.h"
#include "workdir.h"

/* Settings of a flag and of its --config key alike. */
struct agent_opts {
	char *broker, *key, *name;
	char *tvm_runtime, *workdir, *reset_cmd, *health_cmd, *probe_kernel;
	char *token_file; /* the broker's agent token; NULL: none */
	char *exec_cmd;   /* the exec runner's command; NULL: the artifact */
	double max_session, hook_timeout, health_interval;
	long quarantine_after;
	long cache_mb; /* artifact cache bound */
	json_t *tags;  /* object of strings */
	int verbose;
};

enum opt_type {
	OT_STRING,
	OT_SECONDS,
	OT_COUNT,
};

#define OFF(f) offsetof(struct agent_opts, f)

static const struct setting {
	const char *name; /* flag; the config key has '_' for '-' */
	enum opt_type type;
	size_t off;
	double max;
} settings[] = {
    {"broker", OT_STRING, OFF(broker), 0},
    {"key", OT_STRING, OFF(key), 0},
    {"name", OT_STRING, OFF(name), 0},
    {"tvm-runtime", OT_STRING, OFF(tvm_runtime), 0},
    {"workdir", OT_STRING, OFF(workdir), 0},
    {"max-session", OT_SECONDS, OFF(max_session), 7 * 86400},
    {"reset-cmd", OT_STRING, OFF(reset_cmd), 0},
    {"health-cmd", OT_STRING, OFF(health_cmd), 0},
    {"hook-timeout", OT_SECONDS, OFF(hook_timeout), 86400},
    {"health-interval", OT_SECONDS, OFF(health_interval), 86400},
    {"quarantine-after", OT_COUNT, OFF(quarantine_after), 1000000},
    {"exec-cmd", OT_STRING, OFF(exec_cmd), 0},
    {"cache-size", OT_COUNT, OFF(cache_mb), 1 << 20},
    {"token-file", OT_STRING, OFF(token_file), 0},
    /* TVM rpc_server's name for --broker (server_flags.h) */
    {"tracker", OT_STRING, OFF(broker), 0},
    {"probe-kernel", OT_STRING, OFF(probe_kernel), 0},
};

enum {
	OPT_VERSION = 1000,
	OPT_TAG,
	OPT_CONFIG,
	OPT_SETTING, /* OPT_SETTING + i: settings[i] */
	/* + enum server_flag: TVM rpc_server's flags */
	OPT_SERVER_FLAG = 2000,
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "Usage: npufarm-agent --broker HOST:PORT --key KEY [OPTIONS]\n"
	    "Links one board to an npufarm broker and serves TVM sessions on "
	    "it.\n\n"
	    "  --broker HOST:PORT     the broker's farm port\n"
	    "  --key KEY              the device key this board serves\n"
	    "  --name NAME            unique board name (default: host name)\n"
	    "  --tag K=V              a tag shown with the board (repeatable)\n"
	    "  --tvm-runtime PATH     the board's libtvm_runtime.so; without "
	    "it no TVM\n"
	    "                         sessions are offered.  TVM v0.14 .. "
	    "v0.20 (it\n"
	    "                         exports TVMFuncGetGlobal) and v0.21+ "
	    "(tvm-ffi:\n"
	    "                         TVMFFIFunctionGetGlobal, from "
	    "libtvm_ffi.so\n"
	    "                         beside it); probed at start-up in a "
	    "child\n"
	    "  --workdir DIR          parent of the per-session work dirs\n"
	    "                         (default $STATE_DIRECTORY, else\n"
	    "                         $XDG_RUNTIME_DIR, else /tmp: "
	    "npufarm-agent-NAME)\n"
	    "  --max-session S        cap on a session's -timeout (and the "
	    "deadline of\n"
	    "                         sessions that have none); 0: no cap\n"
	    "  --reset-cmd CMD        run (sh -c) after a timeout or crash\n"
	    "  --health-cmd CMD       run after the reset, and when the board "
	    "is\n"
	    "                         suspected; failing it quarantines\n"
	    "  --hook-timeout S       how long each hook may run (60)\n"
	    "  --health-interval S    re-check a quarantined board this often "
	    "(30)\n"
	    "  --quarantine-after N   check the board (health command, else "
	    "the\n"
	    "                         probe) after N non-ok outcomes in a "
	    "row (3;\n"
	    "                         0: never); only a failed check "
	    "quarantines\n"
	    "  --probe-kernel PATH    the known-good probe: a kernel .so "
	    "(default\n"
	    "                         entry) instead of the built-in one\n"
	    "  --token-file FILE      the broker's agent token, sent in the "
	    "hello\n"
	    "  --exec-cmd CMD         run native exec tasks with this (sh -c;\n"
	    "                         the artifact in $NPUFARM_ARTIFACT)\n"
	    "  --cache-size MB        artifact cache bound (1024)\n"
	    "  --config FILE          JSON object of the settings above "
	    "(flags win)\n"
	    "  -v, --verbose          more logging (repeat for debug)\n"
	    "  --help, --version\n\n"
	    "TVM rpc_server's flags, so its start-up scripts work unchanged "
	    "(docs/tvm.md):\n"
	    "  --tracker HOST:PORT    the same as --broker\n"
	    "  --through-proxy        --host:--port is the broker (TVM's "
	    "proxy)\n"
	    "  --host, --port, --port-end, --custom-addr, --no-fork\n"
	    "                         accepted and ignored with a log line: "
	    "the agent\n"
	    "                         listens nowhere and forks every "
	    "session\n"
	    "  --silent               log warnings and errors only\n"
	    "  --load-library is refused: sessions load --tvm-runtime "
	    "only\n");
}

static int
set_option(struct agent_opts *o, const struct setting *s, const char *value,
    struct npufarm_err *err)
{
	char *end, **str;
	double d;

	switch (s->type) {
	case OT_STRING:
		if (value[0] == '\0')
			return err_set(err, -EINVAL, "%s: empty", s->name);
		str = (char **)(void *)((char *)o + s->off);
		free(*str);
		*str = strdup(value);
		return *str == NULL ? err_set(err, -ENOMEM, "out of memory")
				    : 0;
	case OT_SECONDS:
	case OT_COUNT:
		errno = 0;
		d = strtod(value, &end);
		if (errno != 0 || end == value || *end != '\0' ||
		    !isfinite(d) || d < 0 || d > s->max ||
		    (s->type == OT_COUNT && d != (double)(long)d))
			return err_set(err, -EINVAL,
			    "%s: '%s' is not a %s from 0 to %g", s->name, value,
			    s->type == OT_COUNT ? "whole number" : "number",
			    s->max);
		if (s->type == OT_COUNT)
			*(long *)(void *)((char *)o + s->off) = (long)d;
		else
			*(double *)(void *)((char *)o + s->off) = d;
		return 0;
	}
	return -EINVAL;
}

static int
add_tag(
    struct agent_opts *o, const char *k, const char *v, struct npufarm_err *err)
{
	if (k[0] == '\0')
		return err_set(err, -EINVAL, "tag '=%s': empty name", v);
	if (json_object_set_new(o->tags, k, json_string(v)) < 0)
		return err_set(err, -EINVAL, "tag '%s': not valid UTF-8", k);
	return 0;
}

/* Load the --config file @path into @o: every key a setting, or "tags". */
static int
load_config(struct agent_opts *o, const char *path, struct npufarm_err *err)
{
	json_error_t jerr;
	const char *k, *tk;
	json_t *root, *v, *tv;
	char name[64], num[64];
	size_t i, j;
	int r = 0;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return err_set(
		    err, -EINVAL, "%s:%d: %s", path, jerr.line, jerr.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return err_set(
		    err, -EINVAL, "%s: expected a JSON object", path);
	}
	json_object_foreach(root, k, v) {
		if (strcmp(k, "tags") == 0 && json_is_object(v)) {
			json_object_foreach(v, tk, tv) {
				if (!json_is_string(tv)) {
					r = err_set(err, -EINVAL,
					    "%s: tags.%s: expected a string",
					    path, tk);
					goto out;
				}
				r = add_tag(o, tk, json_string_value(tv), err);
				if (r < 0)
					goto out;
			}
			continue;
		}
		for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
			(void)snprintf(
			    name, sizeof(name), "%s", settings[i].name);
			for (j = 0; name[j] != '\0'; j++)
				if (name[j] == '-')
					name[j] = '_';
			if (strcmp(name, k) == 0)
				break;
		}
		if (i == sizeof(settings) / sizeof(settings[0])) {
			r = err_set(
			    err, -EINVAL, "%s: unknown key \"%s\"", path, k);
			goto out;
		}
		if (json_is_string(v))
			r = set_option(
			    o, &settings[i], json_string_value(v), err);
		else if (json_is_number(v) && settings[i].type != OT_STRING) {
			(void)snprintf(
			    num, sizeof(num), "%.17g", json_number_value(v));
			r = set_option(o, &settings[i], num, err);
		} else
			r = err_set(
			    err, -EINVAL, "%s: \"%s\": wrong type", path, k);
		if (r < 0) {
			char msg[NPUFARM_ERR_MSG_MAX];

			(void)snprintf(msg, sizeof(msg), "%s", err->msg);
			r = err_set(err, r, "%s: %s", path, msg);
			goto out;
		}
	}
out:
	json_decref(root);
	return r;
}

static void
opts_free(struct agent_opts *o)
{
	free(o->broker);
	free(o->key);
	free(o->name);
	free(o->tvm_runtime);
	free(o->workdir);
	free(o->reset_cmd);
	free(o->health_cmd);
	free(o->exec_cmd);
	free(o->probe_kernel);
	free(o->token_file);
	json_decref(o->tags);
}

/* Flags over the --config file.  0, or 2 with the message printed. */
static int
parse_args(struct agent_opts *o, struct server_flags *sf, int argc, char **argv,
    bool *ret_exit)
{
	struct option
	    longs[sizeof(settings) / sizeof(settings[0]) + 8 + SERVER_FLAG_MAX];
	struct npufarm_err err;
	size_t i, n = 0;
	int opt, idx;
	char *eq;

	for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		longs[n++] = (struct option){settings[i].name,
		    required_argument, NULL, OPT_SETTING + (int)i};
	longs[n++] = (struct option){"tag", required_argument, NULL, OPT_TAG};
	longs[n++] =
	    (struct option){"config", required_argument, NULL, OPT_CONFIG};
	longs[n++] = (struct option){"verbose", no_argument, NULL, 'v'};
	longs[n++] = (struct option){"help", no_argument, NULL, 'h'};
	longs[n++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
	n += server_flags_options(longs + n, OPT_SERVER_FLAG);
	longs[n] = (struct option){NULL, 0, NULL, 0};

	/* The config file first, so that flags override it. */
	for (i = 1; i < (size_t)argc; i++) {
		const char *path = NULL;

		if (strcmp(argv[i], "--config") == 0 && i + 1 < (size_t)argc)
			path = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		if (path != NULL && load_config(o, path, &err) < 0) {
			fprintf(
			    stderr, "npufarm-agent: --config %s\n", err.msg);
			return 2;
		}
	}
	while ((opt = getopt_long(argc, argv, "vh", longs, &idx)) != -1) {
		if (opt >= OPT_SERVER_FLAG) {
			if (server_flags_set(
				sf, opt - OPT_SERVER_FLAG, optarg, &err) < 0) {
				fprintf(
				    stderr, "npufarm-agent: --%s\n", err.msg);
				return 2;
			}
			continue;
		}
		if (opt >= OPT_SETTING) {
			if (set_option(o, &settings[opt - OPT_SETTING], optarg,
				&err) < 0) {
				fprintf(
				    stderr, "npufarm-agent: --%s\n", err.msg);
				return 2;
			}
			continue;
		}
		switch (opt) {
		case OPT_TAG:
			eq = strchr(optarg, '=');
			if (eq == NULL) {
				fprintf(stderr,
				    "npufarm-agent: --tag '%s': expected K=V\n",
				    optarg);
				return 2;
			}
			*eq = '\0';
			if (add_tag(o, optarg, eq + 1, &err) < 0) {
				fprintf(
				    stderr, "npufarm-agent: --%s\n", err.msg);
				return 2;
			}
			break;
		case OPT_CONFIG:
			break; /* loaded above */
		case 'v':
			o->verbose++;
			break;
		case 'h':
			usage(stdout);
			*ret_exit = true;
			return 0;
		case OPT_VERSION:
			printf("npufarm-agent %s\n", NPUFARM_VERSION);
			*ret_exit = true;
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (server_flags_broker(sf, &o->broker, &err) < 0) {
		fprintf(stderr, "npufarm-agent: %s\n", err.msg);
		return 2;
	}
	if (optind < argc || o->broker == NULL || o->key == NULL) {
		fprintf(stderr, "npufarm-agent: %s\n",
		    optind < argc ? "unexpected argument"
				  : "--broker (or --tracker) and --key are "
				    "required");
		usage(stderr);
		return 2;
	}
	return 0;
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	log_notice("signal %d: stopping", (int)sig);
	(void)event_base_loopexit(arg, NULL);
}

int
main(int argc, char **argv)
{
	struct agent_opts o = {
	    .hook_timeout = 60,
	    .health_interval = 30,
	    .quarantine_after = 3,
	    .cache_mb = 1024,
	};
	struct server_flags sf = {0};
	struct link_config lc = {0};
	struct board_config bc = {0};
	struct event *sig_term = NULL, *sig_int = NULL;
	struct event_base *base = NULL;
	struct npufarm_err err;
	struct board *board = NULL;
	struct cache *cache = NULL;
	struct link *link = NULL;
	char *cachedir = NULL;
	char host[256], *tags_text = NULL, *workdir = NULL, *token = NULL;
	enum tvm_rpc_dialect dialect = TVM_RPC_DIALECT_UNKNOWN;
	char credpath[4096];
	sigset_t stop_sigs;
	bool done = false;
	int ret;

	o.tags = json_object();
	if (o.tags == NULL)
		return 1;
	ret = parse_args(&o, &sf, argc, argv, &done);
	if (ret != 0 || done)
		goto out;
	ret = 1;
	if (o.name == NULL) {
		if (gethostname(host, sizeof(host)) < 0)
			(void)snprintf(host, sizeof(host), "board");
		host[sizeof(host) - 1] = '\0';
		o.name = strdup(host);
	}
	if (o.workdir == NULL)
		workdir = workdir_default(o.name);
	tags_text = json_dumps(o.tags, JSON_COMPACT);
	if (o.name == NULL || tags_text == NULL ||
	    (o.workdir == NULL && workdir == NULL))
		goto out;
	log_set_level(server_flags_log_level(
	    &sf, LOG_NOTICE + (o.verbose > 2 ? 2 : o.verbose)));
	server_flags_log(&sf, o.broker);
	/* Without --token-file, the unit's credential if it passed one. */
	if (o.token_file == NULL &&
	    service_credential("agent-token", credpath, sizeof(credpath)) &&
	    (o.token_file = strdup(credpath)) == NULL)
		goto out;
	/* Read once: a changed token needs an agent restart. */
	if (o.token_file != NULL &&
	    secret_read_file(o.token_file, &token, &err) < 0) {
		log_err("%s", err.msg);
		goto out;
	}
	/* Which C ABI the runtime has, told by its symbols in a child (the
	 * agent never loads it itself): the dialect of every session. */
	if (o.tvm_runtime != NULL) {
		if (supervisor_runtime_probe(
			o.tvm_runtime, -1, &dialect, &err) < 0) {
			log_err("--tvm-runtime %s: %s", o.tvm_runtime, err.msg);
			goto out;
		}
		log_notice("TVM runtime %s: %s; sessions speak %s",
		    o.tvm_runtime, tvm_runtime_abi_of_dialect(dialect),
		    dialect == TVM_RPC_DIALECT_FFI ? "type indexes"
						   : "type codes");
	}
	/* Writes to a vanished peer fail with EPIPE instead of killing us;
	 * SIGCHLD stays at SIG_DFL so that children can be reaped. */
	(void)signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (base == NULL)
		goto out;
	sig_term = evsignal_new(base, SIGTERM, stop_cb, base);
	sig_int = evsignal_new(base, SIGINT, stop_cb, base);
	if (sig_term == NULL || sig_int == NULL ||
	    evsignal_add(sig_term, NULL) < 0 || evsignal_add(sig_int, NULL) < 0)
		goto out;
	bc = (struct board_config){
	    .broker = o.broker,
	    .key = o.key,
	    .name = o.name,
	    .sup =
		{
		    .runtime_path = o.tvm_runtime,
		    .workdir = o.workdir != NULL ? o.workdir : workdir,
		    .stderr_fd = -1,
		    .dialect = dialect,
		},
	    .max_session = o.max_session,
	    .reset_cmd = o.reset_cmd,
	    .health_cmd = o.health_cmd,
	    .hook_timeout = o.hook_timeout > 0 ? o.hook_timeout : 60,
	    .quarantine_after = (int)o.quarantine_after,
	    .health_interval = o.health_interval > 0 ? o.health_interval : 30,
	    .max_packet = 1L << 30,
	    .exec_cmd = o.exec_cmd,
	    .probe_kernel = o.probe_kernel,
	};
	if (asprintf(&cachedir, "%s/cache", bc.sup.workdir) < 0) {
		cachedir = NULL;
		goto out;
	}
	if (workdir_prepare(bc.sup.workdir, &err) < 0) {
		log_err("work dir %s", err.msg);
		goto out;
	}
	if (cache_open(cachedir, (uint64_t)o.cache_mb << 20, &cache, &err) <
	    0) {
		log_err("%s", err.msg);
		goto out;
	}
	bc.cache = cache;
	if (board_new(base, &bc, &board, &err) < 0) {
		log_err("%s", err.msg);
		goto out;
	}
	lc = (struct link_config){
	    .broker = o.broker,
	    .name = o.name,
	    .key = o.key,
	    .tags = tags_text,
	    .tvm = o.tvm_runtime != NULL,
	    .token = token,
	    .event = board_link_event,
	    .frame = board_link_frame,
	    .arg = board,
	};
	if (link_new(base, &lc, &link, &err) < 0) {
		log_err("%s", err.msg);
		goto out;
	}
	board_set_link(board, link);
	log_notice("npufarm-agent %s: board '%s', key '%s', broker %s%s%s",
	    NPUFARM_VERSION, o.name, o.key, o.broker,
	    o.tvm_runtime ? ", TVM runtime " : " (no TVM runtime)",
	    o.tvm_runtime ? o.tvm_runtime : "");
	service_notify("READY=1");
	if (event_base_dispatch(base) == 0)
		ret = 0;
	service_notify("STOPPING=1");
	/* Stopping: a second SIGTERM must not cut the clean-up short once
	 * the handlers are gone (children are still to be reaped). */
	(void)sigemptyset(&stop_sigs);
	(void)sigaddset(&stop_sigs, SIGTERM);
	(void)sigaddset(&stop_sigs, SIGINT);
	(void)sigprocmask(SIG_BLOCK, &stop_sigs, NULL);
out:
	board = board_free(board);
	cache = cache_free(cache);
	free(cachedir);
	link = link_free(link);
	if (sig_term != NULL)
		event_free(sig_term);
	if (sig_int != NULL)
		event_free(sig_int);
	if (base != NULL)
		event_base_free(base);
	free(tags_text);
	free(workdir);
	secret_free(token);
	opts_free(&o);
	return ret;
}
