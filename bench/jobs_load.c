/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npufarm-bench-jobs: native tuning jobs end to end, against a running
 * broker with agents of one key (bench/run.sh starts a broker and four
 * agents).  Prints markdown table rows:
 *
 *   - tasks/s: one job of --tasks trivial kernels (probe.so's "noop": one
 *     untimed call and one timed one), from POST /v1/jobs to the last
 *     result committed, against the baseline of the same work done
 *     locally without the farm: fork a child that dlopen()s the kernel
 *     and calls it twice, and reap it, one after the other.
 *
 *   npufarm-bench-jobs --http HOST:PORT --kernel PATH/libprobe.so
 *	[--key KEY] [--tasks N]
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>

#include "bench_util.h"
#include "err.h"
#include "http.h"

/*
 * One blocking request to the broker API at @hostport (the CLI's client,
 * cli/http.h); the reply's body (caller frees) or NULL.
 */
static char *
http(const char *hostport, enum evhttp_cmd_type cmd, const char *path,
    const void *body, size_t len, int *ret_status)
{
	struct http_body b = {body, len, "application/octet-stream"};
	struct http_reply r;
	struct npufarm_err err;
	char url[128];

	(void)snprintf(url, sizeof(url), "http://%s", hostport);
	if (http_send(url, cmd, path, body != NULL ? &b : NULL, 120000, &r,
		&err) < 0) {
		fprintf(stderr, "npufarm-bench-jobs: %s\n", err.msg);
		*ret_status = -1;
		return NULL;
	}
	*ret_status = r.status;
	return r.body; /* ownership moves to the caller */
}

static _Noreturn void
die(const char *what)
{
	fprintf(stderr, "npufarm-bench-jobs: %s\n", what);
	exit(1);
}

/* The baseline: @n local fork + dlopen + two calls + reap, in a row. */
static double
local_rate(const char *kernel, unsigned long n)
{
	int64_t t0 = bench_now_ns();
	unsigned long i;
	int status;
	pid_t pid;

	for (i = 0; i < n; i++) {
		pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			void *dl = dlopen(kernel, RTLD_NOW | RTLD_LOCAL);
			int (*fn)(void *, int, char *, size_t);
			char err[64];

			if (dl == NULL)
				_exit(1);
			*(void **)&fn = dlsym(dl, "noop");
			if (fn == NULL || fn(NULL, 0, err, sizeof(err)) != 0 ||
			    fn(NULL, 0, err, sizeof(err)) != 0)
				_exit(1);
			_exit(0);
		}
		if (waitpid(pid, &status, 0) != pid || status != 0)
			die("the local baseline run failed");
	}
	return (double)n / ((double)(bench_now_ns() - t0) / 1e9);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"http", required_argument, NULL, 'h'},
	    {"kernel", required_argument, NULL, 'k'},
	    {"key", required_argument, NULL, 'K'},
	    {"tasks", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	const char *hp = NULL, *kernel = NULL, *key = "bench";
	unsigned long n = 400, i;
	unsigned char md[32], *data;
	char sha[65], path[160], *body, *spec, *p;
	double farm, local, secs;
	long size = 0;
	int status, opt;
	int64_t t0, seq = 0;
	long long job_id;
	json_t *v;
	FILE *f;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			hp = optarg;
			break;
		case 'k':
			kernel = optarg;
			break;
		case 'K':
			key = optarg;
			break;
		case 'n':
			if (bench_ulong("--tasks", optarg, 1, 10000, &n) < 0)
				return 2;
			break;
		default:
			return 2;
		}
	}
	if (hp == NULL || kernel == NULL) {
		fprintf(stderr,
		    "usage: npufarm-bench-jobs --http HOST:PORT "
		    "--kernel libprobe.so [--key KEY] [--tasks N]\n");
		return 2;
	}
	f = fopen(kernel, "rb");
	if (f == NULL || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) <= 0)
		die("cannot read the kernel");
	rewind(f);
	data = malloc((size_t)size);
	if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size)
		die("cannot read the kernel");
	fclose(f);
	(void)EVP_Digest(data, (size_t)size, md, NULL, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		(void)snprintf(sha + 2 * i, 3, "%02x", md[i]);
	(void)snprintf(path, sizeof(path), "/v1/artifacts/%s", sha);
	free(http(hp, EVHTTP_REQ_PUT, path, data, (size_t)size, &status));
	free(data);
	if (status != 200 && status != 201)
		die("uploading the kernel failed");

	spec = malloc(n * 120 + 64);
	if (spec == NULL)
		die("out of memory");
	p = spec + sprintf(spec, "{\"key\":\"%s\",\"tasks\":[", key);
	for (i = 0; i < n; i++)
		p += sprintf(p,
		    "%s{\"runner\":\"kernel\",\"artifact\":\"%s\","
		    "\"entry\":\"noop\"}",
		    i ? "," : "", sha);
	(void)sprintf(p, "]}");
	t0 = bench_now_ns();
	body =
	    http(hp, EVHTTP_REQ_POST, "/v1/jobs", spec, strlen(spec), &status);
	free(spec);
	v = body ? json_loads(body, 0, NULL) : NULL;
	free(body);
	if (status != 201 || v == NULL)
		die("submitting the job failed");
	job_id = (long long)json_integer_value(json_object_get(v, "id"));
	json_decref(v);
	for (;;) {
		char url[192];

		(void)snprintf(url, sizeof(url),
		    "/v1/jobs/%lld/wait?after=%lld", job_id, (long long)seq);
		body = http(hp, EVHTTP_REQ_GET, url, NULL, 0, &status);
		v = body ? json_loads(body, 0, NULL) : NULL;
		free(body);
		if (status != 200 || v == NULL)
			die("waiting for the job failed");
		seq = json_integer_value(json_object_get(v, "seq"));
		if (json_is_true(json_object_get(v, "done"))) {
			if (json_integer_value(json_object_get(
				json_object_get(v, "tasks"), "ok")) !=
			    (json_int_t)n)
				die("not every task ended ok");
			json_decref(v);
			break;
		}
		json_decref(v);
	}
	secs = (double)(bench_now_ns() - t0) / 1e9;
	farm = (double)n / secs;
	local = local_rate(kernel, n);
	printf("| native tasks end to end, %lu trivial kernels, 4 agents | "
	       "%.0f tasks/s | %.0f runs/s (local fork + dlopen + call, one "
	       "at a time) | %.2f | - |\n",
	    n, farm, local, farm / local);
	return 0;
}
