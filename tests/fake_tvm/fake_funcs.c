/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The global functions the fake runtime registers itself: what the real
 * runtime provides for a session (spec tvm-c-runtime-api.md §5: upload,
 * download and remove, which resolve every path through the agent's
 * tvm.rpc.server.workpath; runtime.module.loadfile_so and
 * ModuleGetFunction), rpc.ServerLoop (fake_rpc.c), and test functions
 * that return, raise, sleep, hang, crash and exit.  The tvm-ffi flavour
 * (FAKE_TVM_FFI) has ffi.ModuleLoadFromFile instead of loadfile_so (spec
 * tvm-ffi-era.md §4.4), resolves a module's function f as the symbol
 * __tvm_ffi_f with the safe-call signature (§4.6), and calls workpath with
 * a String, as the real runtime's upload and download do.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fake_runtime.h"

/* Largest file tvm.rpc.server.download returns (it must fit a packet). */
#define FUNCS_MAX_DOWNLOAD (64u << 20)
/* The runtime's module loader (tvm-c-runtime-api.md §5; §4.4). */
#ifdef FAKE_TVM_FFI
#define FUNCS_LOADER "ffi.ModuleLoadFromFile"
#else
#define FUNCS_LOADER "runtime.module.loadfile_so"
#endif

/* The message of npufarm.test.raise without an argument (EP-10). */
#define FUNCS_RAISE_TEXT "ValueError: bad input"

/*
 * Check that argument @i of @fn exists and has type @code.  Returns 0 or
 * -1 with a TypeError.
 */
static int
funcs_arg(const char *fn, const int *codes, int n, int i, int code)
{
	if (i >= n)
		return fake_error(
		    "TypeError: %s expects %d argument(s), got %d", fn, i + 1,
		    n);
	if (codes[i] != code)
		return fake_error("TypeError: %s: argument %d has type code "
				  "%d, expected %d",
		    fn, i, codes[i], code);
	return 0;
}

/* Set the result of a callback to the int @v. */
static int
funcs_return_int(TVMRetValueHandle ret, int64_t v)
{
	TVMValue tv = {.v_int64 = v};
	int code = kDLInt;

	return TVMCFuncSetReturn(ret, &tv, &code, 1);
}

/* rpc.test.addone(int x) -> x + 1 (wrapping, never undefined). */
static int
funcs_addone(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	if (funcs_arg("rpc.test.addone", codes, n, 0, kDLInt) < 0)
		return -1;
	return funcs_return_int(ret, (int64_t)((uint64_t)args[0].v_int64 + 1));
}

/*
 * npufarm.test.raise([str message]): fails with @message, or with
 * "ValueError: bad input" (EP-10) when called without one.
 */
static int
funcs_raise(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	if (n >= 1 && codes[0] == kTVMStr)
		TVMAPISetLastError(args[0].v_str);
	else
		TVMAPISetLastError(FUNCS_RAISE_TEXT);
	return -1;
}

/* npufarm.test.sleep(int ms): sleeps, then returns nothing (EP-07). */
static int
funcs_sleep(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	struct timespec ts;
	int64_t ms;

	if (funcs_arg("npufarm.test.sleep", codes, n, 0, kDLInt) < 0)
		return -1;
	ms = args[0].v_int64;
	if (ms < 0)
		return fake_error("ValueError: npufarm.test.sleep: negative "
				  "time %lld ms",
		    (long long)ms);
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return 0;
}

/* npufarm.test.hang(): never returns, like a kernel that hung the NPU. */
static int
funcs_hang(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	for (;;)
		(void)pause();
	return 0; /* not reached */
}

/*
 * npufarm.test.crash(): dies of SIGSEGV.  The default action is restored
 * and the signal unblocked first, so the parent sees signal 11 as it would
 * from the real runtime even when a sanitizer or the test's parent
 * installed a handler.
 */
static int
funcs_crash(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGSEGV, &sa, NULL);
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGSEGV);
	(void)sigprocmask(SIG_UNBLOCK, &set, NULL);
	(void)raise(SIGSEGV);
	return fake_error("npufarm.test.crash: raise(SIGSEGV) returned");
}

/* npufarm.test.exit(int status): exit(status), atexit handlers and all. */
static int
funcs_exit(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	if (funcs_arg("npufarm.test.exit", codes, n, 0, kDLInt) < 0)
		return -1;
	exit((int)args[0].v_int64);
}

/*
 * The path of @name as the agent's tvm.rpc.server.workpath says, looked up
 * on every call as the real runtime does (spec §5).  On success *ret_path
 * is the caller's to free.  Returns 0, or -1 with the workpath function's
 * own error (so a refused "../x" reaches the client with its message).
 */
static int
funcs_workpath(const char *name, char **ret_path)
{
	struct fake_obj *wp = fake_global("tvm.rpc.server.workpath");
	TVMValue arg = {.v_str = name};
#ifdef FAKE_TVM_FFI
	int code = FAKE_STR_OBJ, r;
#else
	int code = kTVMStr, r;
#endif
	struct fake_ret res;

	if (wp == NULL)
		return fake_error("require tvm.rpc.server.workpath");
	r = fake_call(wp, &arg, &code, 1, &res);
	fake_obj_unref(wp);
	if (r < 0)
		return -1;
	if (res.code != kTVMStr) {
		code = res.code;
		fake_ret_clear(&res);
		return fake_error("tvm.rpc.server.workpath returned type code "
				  "%d, not a string",
		    code);
	}
	*ret_path = res.buf; /* the string is res's owned copy */
	return 0;
}

/* Write all @len bytes of @data to @fd.  Returns 0 or -errno. */
static int
funcs_write_all(int fd, const char *data, size_t len)
{
	ssize_t k;

	while (len > 0) {
		k = write(fd, data, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		data += k;
		len -= (size_t)k;
	}
	return 0;
}

/*
 * tvm.rpc.server.upload(str name, bytes data): write @data to
 * workpath(@name), replacing it.  A str is accepted for @data as well.
 */
static int
funcs_upload(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	const TVMByteArray *ba;
	const char *data;
	char *path = NULL;
	size_t len;
	int fd = -1, r = -1, e;

	if (funcs_arg("tvm.rpc.server.upload", codes, n, 0, kTVMStr) < 0)
		return -1;
	if (n < 2 || (codes[1] != kTVMBytes && codes[1] != kTVMStr))
		return fake_error("TypeError: tvm.rpc.server.upload expects "
				  "(str, bytes)");
	if (codes[1] == kTVMBytes) {
		ba = args[1].v_handle;
		data = ba->data;
		len = ba->size;
	} else {
		data = args[1].v_str;
		len = strlen(data);
	}
	if (funcs_workpath(args[0].v_str, &path) < 0)
		goto out;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fake_error("Cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	e = funcs_write_all(fd, data, len);
	if (e < 0) {
		fake_error("Cannot write %s: %s", path, strerror(-e));
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		(void)close(fd);
	free(path);
	return r;
}

/* Read all of @fd, at most @max bytes, into *ret_buf.  0 or -errno. */
static int
funcs_read_all(int fd, size_t max, char **ret_buf, size_t *ret_len)
{
	struct stat st;
	char *buf;
	size_t len = 0;
	ssize_t k;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EISDIR;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		return -ENOMEM;
	while (len < (size_t)st.st_size) {
		k = read(fd, buf + len, (size_t)st.st_size - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			free(buf);
			return -errno;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/*
 * tvm.rpc.server.download(str name) -> bytes: the content of
 * workpath(@name).  Logs one line to stderr as the real runtime does.
 */
static int
funcs_download(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	char *path = NULL, *data = NULL, stamp[16];
	TVMByteArray ba;
	TVMValue v;
	time_t now = time(NULL);
	struct tm tm;
	size_t len = 0;
	int fd = -1, r = -1, e, code = kTVMBytes;

	if (funcs_arg("tvm.rpc.server.download", codes, n, 0, kTVMStr) < 0)
		return -1;
	if (funcs_workpath(args[0].v_str, &path) < 0)
		goto out;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fake_error("Cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	e = funcs_read_all(fd, FUNCS_MAX_DOWNLOAD, &data, &len);
	if (e < 0) {
		fake_error("Cannot read %s: %s", path, strerror(-e));
		goto out;
	}
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm) == 0)
		stamp[0] = '\0';
	fprintf(stderr,
	    "[%s] fake_tvm/rpc_server_env.cc:51: Download %s... nbytes=%zu\n",
	    stamp, path, len);
	ba.data = data;
	ba.size = len;
	v.v_handle = &ba;
	r = TVMCFuncSetReturn(ret, &v, &code, 1);
out:
	if (fd >= 0)
		(void)close(fd);
	free(data);
	free(path);
	return r;
}

/*
 * tvm.rpc.server.remove(str name): remove(3) workpath(@name).  Like the
 * real runtime (std::remove, result unchecked) a failure is not reported,
 * so the tuners' cleanup of a missing file or a non-empty "" succeeds.
 */
static int
funcs_remove(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	char *path;

	if (funcs_arg("tvm.rpc.server.remove", codes, n, 0, kTVMStr) < 0)
		return -1;
	if (funcs_workpath(args[0].v_str, &path) < 0)
		return -1;
	(void)remove(path);
	free(path);
	return 0;
}

/*
 * runtime.module.loadfile_so(str path[, str format]) -> Module: dlopen()s
 * @path with RTLD_LAZY | RTLD_LOCAL as the real runtime does (spec §1.2),
 * so a module that calls runtime symbols needs the runtime in the global
 * scope.  The module dlclose()s it when its last reference goes.
 */
static int
funcs_loadfile_so(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	struct fake_obj *m;
	TVMValue v;
	void *dl;
	int code = kTVMModuleHandle, r;

	if (funcs_arg(FUNCS_LOADER, codes, n, 0, kTVMStr) < 0)
		return -1;
	dl = dlopen(args[0].v_str, RTLD_LAZY | RTLD_LOCAL);
	if (dl == NULL)
		return fake_error("Failed to load dynamic shared library %s %s",
		    args[0].v_str, dlerror());
	if (fake_module_new(dl, &m) < 0) {
		(void)dlclose(dl);
		return -1;
	}
	v.v_handle = m;
	r = TVMCFuncSetReturn(ret, &v, &code, 1);
	fake_obj_unref(m);
	return r;
}

#ifndef FAKE_TVM_FFI
/* The calling convention of functions inside a module (spec §4). */
typedef int funcs_dso_fn(TVMValue *args, int *codes, int n, TVMValue *ret,
    int *ret_code, void *unused);

/* The resource of a function found in a module. */
struct funcs_dso {
	struct fake_obj *mod; /* one reference: the code stays mapped */
	funcs_dso_fn *fn;     /* borrowed from mod's dlopen() handle */
};

static void
funcs_dso_free(void *resource)
{
	struct funcs_dso *d = resource;

	fake_obj_unref(d->mod);
	free(d);
}

/* Call a module function; errors read as the real runtime's (spec §4). */
static int
funcs_dso_call(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	struct funcs_dso *d = resource;
	TVMValue rv = {.v_int64 = 0};
	int code = kTVMNullptr, rc;

	rc = d->fn(args, codes, n, &rv, &code, NULL);
	if (rc != 0)
		return fake_error(
		    "InternalError: Check failed: ret == 0 (%d vs. "
		    "0) : %s",
		    rc, fake_error_text());
	if (code == kTVMNullptr)
		return 0;
	return TVMCFuncSetReturn(ret, &rv, &code, 1);
}

#else
/* The prefix of a module function's symbol in tvm-ffi (§4.6). */
#define FUNCS_FFI_PREFIX "__tvm_ffi_"

/* A module function keeps its module (and so its code) alive. */
static void
funcs_dso_free(void *self)
{
	fake_obj_unref(self);
}
#endif

/*
 * tvm.rpc.server.ModuleGetFunction(Module m, str name[, int
 * query_imports]) -> function, or None when @m has no symbol @name
 * (tvm-ffi: __tvm_ffi_@name).
 */
static int
funcs_module_get_function(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	const char *what = "tvm.rpc.server.ModuleGetFunction";
	struct fake_obj *m, *f;
	TVMValue v;
	void *sym;
	int code = kTVMPackedFuncHandle, r;

	if (funcs_arg(what, codes, n, 0, kTVMModuleHandle) < 0 ||
	    funcs_arg(what, codes, n, 1, kTVMStr) < 0)
		return -1;
	m = fake_obj_check(args[0].v_handle, FAKE_MODULE);
	if (m == NULL)
		return fake_error("TypeError: %s: not a module", what);
#ifdef FAKE_TVM_FFI
	{
		char name[256];
		TVMFFISafeCallType safe;

		(void)snprintf(
		    name, sizeof(name), FUNCS_FFI_PREFIX "%s", args[1].v_str);
		sym = dlsym(fake_module_dl(m), name);
		if (sym == NULL)
			return 0;
		memcpy(&safe, &sym, sizeof(sym)); /* POSIX: dlsym code */
		if (fake_func_new_safe(
			safe, fake_obj_ref(m), funcs_dso_free, &f) < 0) {
			fake_obj_unref(m);
			return -1;
		}
	}
#else
	struct funcs_dso *d;

	sym = dlsym(fake_module_dl(m), args[1].v_str);
	if (sym == NULL)
		return 0;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return fake_error("out of memory");
	memcpy(&d->fn, &sym, sizeof(sym)); /* POSIX: dlsym returns code */
	d->mod = fake_obj_ref(m);
	if (fake_func_new(funcs_dso_call, d, funcs_dso_free, &f) < 0) {
		funcs_dso_free(d);
		return -1;
	}
#endif
	v.v_handle = f;
	r = TVMCFuncSetReturn(ret, &v, &code, 1);
	fake_obj_unref(f);
	return r;
}

static const struct {
	const char *name;
	TVMPackedCFunc fn;
} funcs_table[] = {
    {"rpc.ServerLoop", fake_rpc_server_loop},
    {"tvm.rpc.server.upload", funcs_upload},
    {"tvm.rpc.server.download", funcs_download},
    {"tvm.rpc.server.remove", funcs_remove},
    {"tvm.rpc.server.ModuleGetFunction", funcs_module_get_function},
    {FUNCS_LOADER, funcs_loadfile_so},
    {"rpc.test.addone", funcs_addone},
    {"npufarm.test.raise", funcs_raise},
    {"npufarm.test.sleep", funcs_sleep},
    {"npufarm.test.hang", funcs_hang},
    {"npufarm.test.crash", funcs_crash},
    {"npufarm.test.exit", funcs_exit},
};

/*
 * Register the runtime's own functions; called once when the library is
 * loaded.  Without them the library is useless, so a failure (out of
 * memory) aborts with a message rather than leave a half-made runtime.
 */
void
fake_funcs_register(void)
{
	size_t i;

	for (i = 0; i < sizeof(funcs_table) / sizeof(funcs_table[0]); i++) {
		if (fake_register(funcs_table[i].name, funcs_table[i].fn) < 0) {
			fprintf(stderr, "fake libtvm_runtime: %s: %s\n",
			    funcs_table[i].name, fake_error_text());
			abort();
		}
	}
}
