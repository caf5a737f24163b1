/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CLI's job spec: the input's NUL-separated strings are --arg and
 * --sweep values for jobspec_sweep() (and each --arg alone through
 * jobspec_parse_arg()); an input that is JSON goes through jobspec_check()
 * and jobspec_apply_job() as a job file would.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "jobspec.h"
#include "json_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STRS 16

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const kernels[] = {"k.so"};
	const char *args[MAX_STRS], *params[MAX_STRS];
	struct jobspec_sweep sw = {.kernels = kernels,
	    .nkernels = 1,
	    .number = -1,
	    .repeat = -1,
	    .min_repeat_ms = -1,
	    .cooldown_ms = -1,
	    .timeout = -1};
	struct jobspec_job job = {.key = "k", .queue_timeout = -1};
	struct npufarm_err err;
	json_t *spec, *arg;
	char *copy, *p, *end;
	size_t nargs = 0, nparams = 0;

	if (json_util_load((const char *)data, size, 16, &spec, &err) == 0) {
		if (jobspec_check(spec, &err) == 0)
			(void)jobspec_apply_job(spec, &job, &err);
		json_decref(spec);
		return 0;
	}
	copy = malloc(size + 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	end = copy + size;
	/* Strings starting with '=' sweep (NAME=V1,V2), the others are args. */
	for (p = copy; p < end && nargs + nparams < MAX_STRS;
	     p += strlen(p) + 1) {
		if (p[0] == '=')
			params[nparams++] = p + 1;
		else
			args[nargs++] = p;
	}
	for (size_t i = 0; i < nargs; i++)
		if (jobspec_parse_arg(args[i], i + 1, &arg, &err) == 0)
			json_decref(arg);
	sw.args = args;
	sw.nargs = nargs;
	sw.params = params;
	sw.nparams = nparams;
	if (jobspec_sweep(&sw, &spec, &err) == 0)
		json_decref(spec);
	free(copy);
	return 0;
}
