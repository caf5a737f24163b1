/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel runner's child (see runner.h, <npufarm/kernel.h>): load the
 * artifact, build the arguments, call once untimed, then time number x
 * repeat calls as TVM's time_evaluator does, and report.  Anything the
 * artifact gets wrong that it can be asked about (a library that does not
 * load, no ABI symbol, no entry point, an error returned) is an
 * `exception` with the reason; anything it does to the process is the
 * agent's to see (crash, hang).
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <npufarm/kernel.h>

#include "err.h"
#include "runner.h"
#include "task_spec.h"

/* TVM's growth factor for number when a repeat is too short. */
#define KERNEL_GOLDEN_RATIO 1.618

/* The task, its tensors and the kernel, for the life of the child. */
struct kernel_run {
	struct task_spec spec; /* a copy: the tensors point into its shapes */
	DLTensor args[TASK_SPEC_MAX_ARGS];
	npufarm_kernel_fn *fn;
	int fd; /* the report pipe */
	char errbuf[NPUFARM_KERNEL_ERR_MAX];
};

static double
now_s(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
sleep_ms(uint32_t ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One call of the kernel; an error ends the child with an exception. */
static void
call(struct kernel_run *k)
{
	int rc;

	k->errbuf[0] = '\0';
	rc = k->fn(k->args, k->spec.nargs, k->errbuf, sizeof(k->errbuf));
	if (rc == 0)
		return;
	k->errbuf[sizeof(k->errbuf) - 1] = '\0';
	if (k->errbuf[0] != '\0')
		runner_child_fail(
		    k->fd, NPUFARM_OUTCOME_EXCEPTION, "%s", k->errbuf);
	runner_child_fail(k->fd, NPUFARM_OUTCOME_EXCEPTION,
	    "%s returned %d without a message", k->spec.entry, rc);
}

/* Load the library and find the entry point. */
static void
load(struct kernel_run *k, const char *artifact)
{
	const int *abi;
	void *lib;

	lib = dlopen(artifact, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL)
		runner_child_fail(
		    k->fd, NPUFARM_OUTCOME_EXCEPTION, "dlopen: %s", dlerror());
	abi = dlsym(lib, "npufarm_kernel_abi_version");
	if (abi == NULL)
		runner_child_fail(k->fd, NPUFARM_OUTCOME_EXCEPTION,
		    "no npufarm_kernel_abi_version: not a kernel built "
		    "against <npufarm/kernel.h>");
	if (*abi != NPUFARM_KERNEL_ABI_VERSION)
		runner_child_fail(k->fd, NPUFARM_OUTCOME_EXCEPTION,
		    "kernel ABI version %d; this agent runs version %d", *abi,
		    NPUFARM_KERNEL_ABI_VERSION);
	/* POSIX: a function pointer may travel through a void *. */
	*(void **)&k->fn = dlsym(lib, k->spec.entry);
	if (k->fn == NULL)
		runner_child_fail(k->fd, NPUFARM_OUTCOME_EXCEPTION,
		    "no entry point \"%s\" in the artifact", k->spec.entry);
}

/* Allocate and fill every argument. */
static void
build_args(struct kernel_run *k)
{
	struct npufarm_err e = {0};
	int i;

	for (i = 0; i < k->spec.nargs; i++) {
		struct task_arg *a = &k->spec.args[i];
		DLTensor *t = &k->args[i];

		if (dlpack_util_tensor_alloc(
			t, a->dtype, a->shape, a->ndim, &e) < 0)
			runner_child_fail(k->fd, NPUFARM_OUTCOME_EXCEPTION,
			    "args[%d]: %s", i, e.msg);
		if (!a->is_scalar)
			dlpack_util_fill(t, a->fill, a->seed);
		else if (dlpack_util_dtype_is_float(a->dtype))
			dlpack_util_fill_float(t, a->fvalue);
		else
			dlpack_util_fill_int(t, a->ivalue);
	}
}

/*
 * The number for the next try of a repeat that took @ms for @number calls,
 * as TVM's time_evaluator grows it: enough to reach min_repeat_ms at the
 * measured speed, and at least the golden ratio more; capped.
 */
static uint32_t
grow(uint32_t number, double ms, uint32_t min_ms)
{
	double next = number * KERNEL_GOLDEN_RATIO;

	if (ms > 0 && min_ms / (ms / number) + 1 > next)
		next = min_ms / (ms / number) + 1;
	if (next < number + 1.0)
		next = number + 1.0;
	return next > TASK_SPEC_MAX_NUMBER ? TASK_SPEC_MAX_NUMBER
					   : (uint32_t)next;
}

/* Time the repeats into @res. */
static void
measure(struct kernel_run *k, struct runner_result *res)
{
	const struct task_measure *m = &k->spec.measure;
	uint32_t number = m->number, i, j;
	double t0, ms;

	for (i = 0; i < m->repeat; i++) {
		if (i > 0 && m->cooldown_ms > 0)
			sleep_ms(m->cooldown_ms);
		for (;;) {
			t0 = now_s();
			for (j = 0; j < number; j++)
				call(k);
			ms = (now_s() - t0) * 1e3;
			if (ms >= m->min_repeat_ms ||
			    number >= TASK_SPEC_MAX_NUMBER)
				break;
			number = grow(number, ms, m->min_repeat_ms);
		}
		res->costs[i] = ms / 1e3 / number;
	}
	res->ncosts = m->repeat;
	res->number = number;
}

/*
 * Run the kernel task @spec on the shared object @artifact (absolute) and
 * report on @fd; never returns.  Runner child only, in its work dir.
 */
_Noreturn void
runner_kernel_child(const struct task_spec *spec, const char *artifact, int fd)
{
	static struct kernel_run k;
	static struct runner_result res;

	k.spec = *spec;
	k.fd = fd;
	if (k.spec.entry[0] == '\0')
		(void)snprintf(k.spec.entry, sizeof(k.spec.entry), "%s",
		    NPUFARM_KERNEL_DEFAULT_ENTRY);
	load(&k, artifact);
	build_args(&k);
	call(&k); /* warm-up, untimed */
	measure(&k, &res);
	res.outcome = NPUFARM_OUTCOME_OK;
	runner_child_report(fd, &res);
}
