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

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <npufarm/kernel.h>

#include "err.h"
#include "runner.h"
#include "sha256_util.h"
#include "task_spec.h"

/* TVM's growth factor for number when a repeat is too short. */
#define KERNEL_GOLDEN_RATIO 1.618

/* The built-in probe: C = A x B on PROBE_N x PROBE_N ones. */
#define PROBE_N 32

/* The task, its tensors and the kernel, for the life of the child. */
struct kernel_run {
	struct task_spec spec; /* a copy: the tensors point into its shapes */
	DLTensor args[TASK_SPEC_MAX_ARGS];
	npufarm_kernel_fn *fn;
	DLTensor ref[TASK_SPEC_MAX_ARGS]; /* the reference's outputs */
	const char *ref_entry;            /* the reference's entry point */
	int fd;                           /* the report pipe */
	char errbuf[NPUFARM_KERNEL_ERR_MAX];
};

static npufarm_kernel_fn *load(struct kernel_run *k, const char *artifact,
    const char *entry, const char *what);
static void build_args(struct kernel_run *k, DLTensor *args);

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

/*
 * One call of @fn on @args; an error ends the child with an exception
 * whose message starts with @what.
 */
static void
call_fn(struct kernel_run *k, npufarm_kernel_fn *fn, DLTensor *args,
    const char *entry, const char *what)
{
	int rc;

	k->errbuf[0] = '\0';
	rc = fn(args, k->spec.nargs, k->errbuf, sizeof(k->errbuf));
	if (rc == 0)
		return;
	k->errbuf[sizeof(k->errbuf) - 1] = '\0';
	if (k->errbuf[0] != '\0')
		runner_child_fail(
		    k->fd, NPUFARM_OUTCOME_EXCEPTION, "%s%s", what, k->errbuf);
	runner_child_fail(k->fd, NPUFARM_OUTCOME_EXCEPTION,
	    "%s%s returned %d without a message", what, entry, rc);
}

/* One call of the candidate. */
static void
call(struct kernel_run *k)
{
	call_fn(k, k->fn, k->args, k->spec.entry, "");
}

/* "[i,j,..]" of flat value @flat of args[@a] into @buf. */
static void
index_format(const struct task_arg *a, uint64_t flat, char *buf, size_t len)
{
	uint64_t idx[TASK_SPEC_MAX_RANK];
	size_t off = 0;
	int d, n;

	flat /= a->dtype.lanes;
	for (d = a->ndim - 1; d >= 0; d--) {
		idx[d] = flat % (uint64_t)a->shape[d];
		flat /= (uint64_t)a->shape[d];
	}
	buf[0] = '\0';
	for (d = 0; d < a->ndim && off < len; d++) {
		n = snprintf(buf + off, len - off, "%s%llu", d ? "," : "[",
		    (unsigned long long)idx[d]);
		off += n > 0 ? (size_t)n : 0;
	}
	if (off < len)
		(void)snprintf(buf + off, len - off, a->ndim ? "]" : "");
}

/*
 * The name of the reference's outputs in the cache: the sha256 of the
 * reference, its entry, the inputs as the agent fills them (dtype, shape,
 * fill and seed of each tensor, value of each scalar) and which outputs
 * are compared, into @hex.
 */
static void
ref_key(const struct kernel_run *k, char hex[SHA256_UTIL_HEX + 1])
{
	const struct task_check *c = &k->spec.check;
	unsigned char md[SHA256_UTIL_BYTES];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;
	int i;

	(void)EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	(void)EVP_DigestUpdate(ctx, "npufarm-ref-1", 13);
	(void)EVP_DigestUpdate(ctx, c->ref, strlen(c->ref));
	(void)EVP_DigestUpdate(ctx, k->ref_entry, strlen(k->ref_entry) + 1);
	for (i = 0; i < k->spec.nargs; i++) {
		const struct task_arg *a = &k->spec.args[i];
		int64_t v[6 + TASK_SPEC_MAX_RANK] = {a->dtype.code,
		    a->dtype.bits, a->dtype.lanes, a->ndim, a->is_scalar,
		    task_spec_check_output(&k->spec, i)};

		memcpy(&v[6], a->shape, sizeof(a->shape));
		(void)EVP_DigestUpdate(ctx, v, sizeof(v));
		if (a->is_scalar) {
			(void)EVP_DigestUpdate(
			    ctx, &a->ivalue, sizeof(a->ivalue));
			(void)EVP_DigestUpdate(
			    ctx, &a->fvalue, sizeof(a->fvalue));
		} else {
			(void)EVP_DigestUpdate(ctx, &a->fill, sizeof(a->fill));
			(void)EVP_DigestUpdate(ctx, &a->seed, sizeof(a->seed));
		}
	}
	(void)EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
	sha256_util_hex(md, hex);
}

/* Bytes of the compared outputs, as the cache holds them. */
static uint64_t
ref_bytes(const struct kernel_run *k)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < k->spec.nargs; i++)
		if (task_spec_check_output(&k->spec, i))
			n += k->spec.args[i].nbytes;
	return n;
}

/* Read or write every compared output of k->ref whole on @fd. */
static bool
ref_io(struct kernel_run *k, int fd, bool writing)
{
	int i;

	for (i = 0; i < k->spec.nargs; i++) {
		char *p = k->ref[i].data;
		uint64_t left = k->spec.args[i].nbytes;
		ssize_t n;

		if (!task_spec_check_output(&k->spec, i))
			continue;
		while (left > 0) {
			n = writing ? write(fd, p, left) : read(fd, p, left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return false;
			p += n;
			left -= (uint64_t)n;
		}
	}
	return true;
}

/* Make room in @dir: remove the oldest files beyond the bound. */
static void
ref_prune(const char *dir)
{
	struct dirent **names = NULL;
	char path[PATH_MAX], oldest[PATH_MAX];
	struct stat st;
	time_t when;
	int n, i, files;

	for (;;) {
		n = scandir(dir, &names, NULL, NULL);
		if (n < 0)
			return;
		files = 0;
		when = 0;
		oldest[0] = '\0';
		for (i = 0; i < n; i++) {
			(void)snprintf(
			    path, sizeof(path), "%s/%s", dir, names[i]->d_name);
			if (names[i]->d_name[0] != '.' &&
			    stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				files++;
				if (oldest[0] == '\0' || st.st_mtime < when) {
					when = st.st_mtime;
					(void)snprintf(
					    oldest, sizeof(oldest), "%s", path);
				}
			}
			free(names[i]);
		}
		free(names);
		if (files < RUNNER_REF_CACHE_MAX_FILES || oldest[0] == '\0' ||
		    unlink(oldest) < 0)
			return;
	}
}

/* The cached outputs of this reference on these inputs, if there are. */
static bool
ref_load(struct kernel_run *k, const char *dir, const char *key)
{
	char path[PATH_MAX];
	struct stat st;
	bool ok;
	int fd;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, key);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size == ref_bytes(k) &&
	     ref_io(k, fd, false);
	(void)close(fd);
	return ok;
}

/* Keep the outputs for the next task: written aside, then renamed. */
static void
ref_store(struct kernel_run *k, const char *dir, const char *key)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	int fd;

	if (ref_bytes(k) > RUNNER_REF_CACHE_MAX_BYTES)
		return;
	ref_prune(dir);
	(void)snprintf(
	    tmp, sizeof(tmp), "%s/.%s.%ld", dir, key, (long)getpid());
	(void)snprintf(path, sizeof(path), "%s/%s", dir, key);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (!ref_io(k, fd, true) || fsync(fd) < 0 || close(fd) < 0 ||
	    rename(tmp, path) < 0)
		(void)unlink(tmp);
}

/*
 * The reference's outputs for this task's inputs in k->ref: from
 * @cache (NULL: none) when this board has run it on them before, else by
 * running it once on freshly filled inputs (and keeping them in @cache).
 * A reference that fails is an exception.
 */
static void
run_reference(struct kernel_run *k, const char *ref, const char *cache)
{
	char key[SHA256_UTIL_HEX + 1];
	npufarm_kernel_fn *fn;

	k->ref_entry =
	    k->spec.check.entry[0] ? k->spec.check.entry : k->spec.entry;
	build_args(k, k->ref);
	if (cache != NULL) {
		ref_key(k, key);
		if (ref_load(k, cache, key))
			return;
	}
	fn = load(k, ref, k->ref_entry, "the reference: ");
	call_fn(k, fn, k->ref, k->ref_entry, "the reference: ");
	if (cache != NULL)
		ref_store(k, cache, key);
}

/*
 * Compare the candidate's outputs after its first call with the
 * reference's; the first value out of tolerance ends the child as WRONG.
 */
static void
compare(struct kernel_run *k)
{
	const struct task_check *c = &k->spec.check;
	char at[TASK_SPEC_MAX_RANK * 21 + 4];
	uint64_t i, n, bad, first = 0;
	double got = 0, want = 0, g, w;
	int a, bad_arg = -1;

	for (a = 0; a < k->spec.nargs; a++) {
		if (!task_spec_check_output(&k->spec, a))
			continue;
		n = dlpack_util_values(&k->args[a]);
		bad = 0;
		for (i = 0; i < n; i++) {
			g = dlpack_util_value(&k->args[a], i);
			w = dlpack_util_value(&k->ref[a], i);
			if (isnan(g) && isnan(w))
				continue;
			if (fabs(g - w) <= c->atol + c->rtol * fabs(w))
				continue;
			if (bad++ == 0 && bad_arg < 0) {
				first = i;
				got = g;
				want = w;
			}
		}
		if (bad > 0 && bad_arg < 0) {
			bad_arg = a;
			index_format(&k->spec.args[a], first, at, sizeof(at));
			runner_child_fail(k->fd, NPUFARM_OUTCOME_WRONG,
			    "args[%d]%s = %.9g but the reference has %.9g "
			    "(%llu of %llu values differ; rtol %g, atol %g)",
			    a, at, got, want, (unsigned long long)bad,
			    (unsigned long long)n, c->rtol, c->atol);
		}
	}
}

/*
 * Load the library and find @entry; @what ("", "the reference: ") starts
 * every message.
 */
static npufarm_kernel_fn *
load(struct kernel_run *k, const char *artifact, const char *entry,
    const char *what)
{
	npufarm_kernel_fn *fn;
	const int *abi;
	void *lib;

	lib = dlopen(artifact, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL)
		runner_child_fail(k->fd, NPUFARM_OUTCOME_EXCEPTION,
		    "%sdlopen: %s", what, dlerror());
	abi = dlsym(lib, "npufarm_kernel_abi_version");
	if (abi == NULL)
		runner_child_fail(k->fd, NPUFARM_OUTCOME_EXCEPTION,
		    "%sno npufarm_kernel_abi_version: not a kernel built "
		    "against <npufarm/kernel.h>",
		    what);
	if (*abi != NPUFARM_KERNEL_ABI_VERSION)
		runner_child_fail(k->fd, NPUFARM_OUTCOME_EXCEPTION,
		    "%skernel ABI version %d; this agent runs version %d", what,
		    *abi, NPUFARM_KERNEL_ABI_VERSION);
	/* POSIX: a function pointer may travel through a void *. */
	*(void **)&fn = dlsym(lib, entry);
	if (fn == NULL)
		runner_child_fail(k->fd, NPUFARM_OUTCOME_EXCEPTION,
		    "%sno entry point \"%s\" in the artifact", what, entry);
	return fn;
}

/*
 * The built-in probe kernel: C = A x B for PROBE_N x PROBE_N float32
 * ones, then every value of C must be PROBE_N.  Trivial on purpose: it
 * fails only when the board cannot run a correct kernel at all.
 */
static int
probe_kernel(const DLTensor *args, int num_args, char *err, size_t err_len)
{
	const float *a, *b;
	float *c;
	int i, j, l;

	if (num_args != 3) {
		(void)snprintf(
		    err, err_len, "probe: 3 arguments, not %d", num_args);
		return 1;
	}
	a = args[0].data;
	b = args[1].data;
	c = args[2].data;
	for (i = 0; i < PROBE_N; i++)
		for (j = 0; j < PROBE_N; j++) {
			float sum = 0;

			for (l = 0; l < PROBE_N; l++)
				sum += a[i * PROBE_N + l] * b[l * PROBE_N + j];
			c[i * PROBE_N + j] = sum;
		}
	for (i = 0; i < PROBE_N * PROBE_N; i++)
		if (c[i] != (float)PROBE_N) {
			(void)snprintf(err, err_len,
			    "probe: C[%d] = %g, not %d", i, (double)c[i],
			    PROBE_N);
			return 1;
		}
	return 0;
}

/*
 * The task the built-in probe runs (and a --probe-kernel, at its default
 * entry point, NPUFARM_KERNEL_DEFAULT_ENTRY): three
 * float32 PROBE_N x PROBE_N tensors, A and B ones, C zeros; number 1,
 * repeat 1; a 10 s run timeout.
 */
void
runner_probe_spec(struct task_spec *ret_spec)
{
	int i;

	memset(ret_spec, 0, sizeof(*ret_spec));
	ret_spec->runner = TASK_RUNNER_KERNEL;
	(void)snprintf(ret_spec->name, sizeof(ret_spec->name), "probe");
	ret_spec->nargs = 3;
	for (i = 0; i < 3; i++) {
		struct task_arg *a = &ret_spec->args[i];

		a->dtype = (DLDataType){kDLFloat, 32, 1};
		a->ndim = 2;
		a->shape[0] = a->shape[1] = PROBE_N;
		a->nbytes = (uint64_t)PROBE_N * PROBE_N * 4;
		a->fill =
		    i < 2 ? DLPACK_UTIL_FILL_ONES : DLPACK_UTIL_FILL_ZEROS;
	}
	ret_spec->measure.number = 1;
	ret_spec->measure.repeat = 1;
	ret_spec->timeout_ms = 10000;
}

/* Allocate and fill every argument into @args. */
static void
build_args(struct kernel_run *k, DLTensor *args)
{
	struct npufarm_err e = {0};
	int i;

	for (i = 0; i < k->spec.nargs; i++) {
		struct task_arg *a = &k->spec.args[i];
		DLTensor *t = &args[i];

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
 * Run the kernel task @spec on the shared object @artifact (absolute;
 * NULL: the built-in probe kernel) and report on @fd; never returns.  With
 * @ref (absolute) the task's "check" runs first, its outputs kept in the
 * dir @ref_cache (NULL: none).  Runner child only, in its work dir.
 */
_Noreturn void
runner_kernel_child(const struct task_spec *spec, const char *artifact,
    const char *ref, const char *ref_cache, int fd)
{
	static struct kernel_run k;
	static struct runner_result res;

	k.spec = *spec;
	k.fd = fd;
	if (k.spec.entry[0] == '\0')
		(void)snprintf(k.spec.entry, sizeof(k.spec.entry), "%s",
		    NPUFARM_KERNEL_DEFAULT_ENTRY);
	if (ref != NULL && k.spec.check.on)
		run_reference(&k, ref, ref_cache);
	if (artifact == NULL)
		k.fn = probe_kernel;
	else
		k.fn = load(&k, artifact, k.spec.entry, "");
	build_args(&k, k.args);
	call(&k); /* warm-up, untimed; with a check, the compared call */
	if (ref != NULL && k.spec.check.on)
		compare(&k);
	measure(&k, &res);
	res.outcome = NPUFARM_OUTCOME_OK;
	runner_child_report(fd, &res);
}
