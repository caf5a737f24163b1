/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fake libtvm_runtime.so (tests/fake_tvm), used the way the agent's
 * session child uses a real one (spec tvm-c-runtime-api.md §9): dlopen()
 * with RTLD_NOW | RTLD_GLOBAL, the C API through dlsym(), the server
 * environment functions registered with TVMFuncCreateFromCFunc +
 * TVMFuncRegisterGlobal, then rpc.ServerLoop on one end of a socketpair in
 * a forked child.  The test plays the TVM client on the other end with the
 * spec's vectors (tvm-rpc-vectors.md EP-*) and checks what the child's
 * parent would see: replies byte for byte, wait statuses, and the loop's
 * error text.  The runtime path comes from $NPUFARM_FAKE_TVM.  The
 * tvm-ffi flavour ($NPUFARM_FAKE_TVM_FFI) is checked for its C API here;
 * its wire, through the agent's own session child, in test-supervisor.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "frame.h"
#include "harness.h"
#include "tvm_c_api.h"
#include "tvm_ffi_api.h"
#include "tvmrpc.h"

#define T_MS 5000

/* Vectors (spec tvm-rpc-vectors.md). */
#define EP01 "1500000000000000020000000500000000000000302e382e3000000000"
#define EP02 "0c00000000000000040000000100000004000000"
#define EP03                                                                   \
	"230000000000000009000000010000000b0000000f000000000000007270632e7465" \
	"73742e6164646f6e65"
#define EP05                                                                   \
	"1c00000000000000030000000000aaaa5555000001000000000000000a0000000000" \
	"0000"
#define EP06                                                                 \
	"20000000000000000400000002000000000000000000000000000000000000000b" \
	"00000000000000"
#define EP07 "1800000000000000040000000200000000000000040000000400000000000000"
#define EP10                                                                 \
	"290000000000000005000000010000000b000000150000000000000056616c7565" \
	"4572726f723a2062616420696e707574"
#define EP11 "040000000000000001000000"
#define EP12 "0000000000000000"

/* Session child options. */
#define SESS_SIGPIPE_DEFAULT 1u /* leave SIGPIPE at SIG_DFL */
#define SESS_NONBLOCK        2u /* hand the loop an O_NONBLOCK socket */

/* Exit statuses of a session child that failed before or after the loop. */
#define CHILD_E_SETUP    70 /* dlopen, dlsym or registration failed */
#define CHILD_E_NOT_NULL 71 /* the loop returned 0 but not None */
#define CHILD_E_FD_OPEN  72 /* the loop returned with the fd still open */

/* The runtime's C API, resolved with dlsym(). */
struct api {
	void *lib;
	tvm_func_get_global_fn *get_global;
	tvm_func_call_fn *call;
	tvm_func_free_fn *func_free;
	tvm_func_create_from_cfunc_fn *create;
	tvm_func_register_global_fn *reg;
	tvm_cfunc_set_return_fn *set_return;
	tvm_get_last_error_fn *last_error;
	tvm_api_set_last_error_fn *set_last_error;
	tvm_mod_free_fn *mod_free;
	tvm_object_free_fn *obj_free;
	tvm_func_list_global_names_fn *list_names;
};

static struct api tapi;

/* The session child's environment (set in the child only). */
static char env_dir[256];
static int env_hook_fd = -1;

/* ---- loading the runtime --------------------------------------------- */

static int
api_sym(void *lib, const char *name, void *ret_fn)
{
	void *p;

	(void)dlerror();
	p = dlsym(lib, name);
	if (p == NULL)
		return -1;
	memcpy(ret_fn, &p, sizeof(p)); /* POSIX: dlsym returns code too */
	return 0;
}

/* dlopen() the fake runtime and resolve the spec's entry points. */
static int
api_load(void)
{
	const char *path = getenv("NPUFARM_FAKE_TVM");
	void *lib;

	if (path == NULL)
		return -1;
	lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (lib == NULL)
		return -1;
	tapi.lib = lib;
	if (api_sym(lib, "TVMFuncGetGlobal", &tapi.get_global) < 0 ||
	    api_sym(lib, "TVMFuncCall", &tapi.call) < 0 ||
	    api_sym(lib, "TVMFuncFree", &tapi.func_free) < 0 ||
	    api_sym(lib, "TVMFuncCreateFromCFunc", &tapi.create) < 0 ||
	    api_sym(lib, "TVMFuncRegisterGlobal", &tapi.reg) < 0 ||
	    api_sym(lib, "TVMCFuncSetReturn", &tapi.set_return) < 0 ||
	    api_sym(lib, "TVMGetLastError", &tapi.last_error) < 0 ||
	    api_sym(lib, "TVMAPISetLastError", &tapi.set_last_error) < 0 ||
	    api_sym(lib, "TVMModFree", &tapi.mod_free) < 0 ||
	    api_sym(lib, "TVMObjectFree", &tapi.obj_free) < 0 ||
	    api_sym(lib, "TVMFuncListGlobalNames", &tapi.list_names) < 0)
		return -1;
	return 0;
}

static void
api_setup(void)
{
	ck_assert_msg(
	    getenv("NPUFARM_FAKE_TVM") != NULL, "NPUFARM_FAKE_TVM is not set");
	ck_assert_msg(api_load() == 0, "loading %s: %s",
	    getenv("NPUFARM_FAKE_TVM"), dlerror());
}

/* Register @fn as @name with @resource, as the agent does. */
static int
api_register(const char *name, TVMPackedCFunc fn, void *resource)
{
	TVMFunctionHandle h;
	int r;

	if (tapi.create(fn, resource, NULL, &h) != 0)
		return -1;
	r = tapi.reg(name, h, 1);
	(void)tapi.func_free(h);
	return r;
}

/* The global function @name, asserted to exist; the caller frees it. */
static TVMFunctionHandle
api_global(const char *name)
{
	TVMFunctionHandle h = NULL;

	ck_assert_int_eq(tapi.get_global(name, &h), 0);
	ck_assert_msg(h != NULL, "%s is not registered", name);
	return h;
}

/* ---- callbacks ---------------------------------------------------------- */

/* Return the first argument unchanged (spec §4: round-trips any value). */
static int
cb_echo(TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *res)
{
	return n > 0 ? tapi.set_return(ret, &args[0], &codes[0], 1) : 0;
}

/* Fail without setting a message. */
static int
cb_fail_silently(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *res)
{
	return -1;
}

/* Return the function handle @res (a new reference for the caller). */
static int
cb_return_func(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *res)
{
	TVMValue v = {.v_handle = res};
	int code = kTVMPackedFuncHandle;

	return tapi.set_return(ret, &v, &code, 1);
}

/* Count finalizer runs in the int @res points to. */
static void
cb_count(void *res)
{
	(*(int *)res)++;
}

/*
 * tvm.rpc.server.workpath as an agent would write it: <dir>/<name>, and a
 * ValueError for absolute names and anything with "..".
 */
static int
env_workpath(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *res)
{
	char path[512], msg[600];
	TVMValue v;
	int code = kTVMStr;

	if (n != 1 || codes[0] != kTVMStr) {
		tapi.set_last_error("TypeError: workpath expects a string");
		return -1;
	}
	if (args[0].v_str[0] == '/' || strstr(args[0].v_str, "..") != NULL) {
		(void)snprintf(msg, sizeof(msg),
		    "ValueError: path '%s' is outside the session directory",
		    args[0].v_str);
		tapi.set_last_error(msg);
		return -1;
	}
	(void)snprintf(path, sizeof(path), "%s/%s", env_dir, args[0].v_str);
	v.v_str = path;
	return tapi.set_return(ret, &v, &code, 1);
}

/* tvm.rpc.server.load_module as in spec §9: loadfile_so(workpath(name)). */
static int
env_load_module(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *res)
{
	TVMFunctionHandle wp = NULL, so = NULL;
	char copy[1024];
	TVMValue v, path;
	int code, r = -1;

	if (tapi.get_global("tvm.rpc.server.workpath", &wp) != 0 ||
	    tapi.get_global("runtime.module.loadfile_so", &so) != 0 ||
	    wp == NULL || so == NULL)
		goto out;
	if (tapi.call(wp, args, codes, n, &path, &code) != 0)
		goto out;
	if (tapi.call(so, &path, &code, 1, &v, &code) != 0) {
		(void)snprintf(copy, sizeof(copy), "%s", tapi.last_error());
		tapi.set_last_error(copy);
		goto out;
	}
	r = tapi.set_return(ret, &v, &code, 1);
	(void)tapi.mod_free(v.v_handle);
out:
	(void)tapi.func_free(wp);
	(void)tapi.func_free(so);
	return r;
}

/* tvm.rpc.server.listdir, trivially: an empty directory. */
static int
env_listdir(TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *res)
{
	TVMValue v = {.v_str = ""};
	int code = kTVMStr;

	return tapi.set_return(ret, &v, &code, 1);
}

/* The start and shutdown hooks: write their mark (@res) to the log. */
static int
env_hook(TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *res)
{
	return write(env_hook_fd, res, 1) == 1 ? 0 : -1;
}

/* ---- the session child ------------------------------------------------- */

/*
 * The agent's session child, minus the agent: load the runtime, register
 * the environment, serve @fd, report the loop's error text on @err_fd.
 */
static void __attribute__((noreturn))
child_main(int fd, unsigned flags, int err_fd)
{
	TVMFunctionHandle loop = NULL;
	TVMValue a, r;
	const char *e;
	int c = kDLInt, rc, rcode = -1;

	(void)signal(SIGPIPE, flags & SESS_SIGPIPE_DEFAULT ? SIG_DFL : SIG_IGN);
	if (api_load() < 0 ||
	    api_register("tvm.rpc.server.workpath", env_workpath, NULL) < 0 ||
	    api_register("tvm.rpc.server.load_module", env_load_module, NULL) <
		0 ||
	    api_register("tvm.rpc.server.listdir", env_listdir, NULL) < 0 ||
	    api_register("tvm.rpc.server.start", env_hook, "S") < 0 ||
	    api_register("tvm.rpc.server.shutdown", env_hook, "D") < 0 ||
	    tapi.get_global("rpc.ServerLoop", &loop) != 0 || loop == NULL)
		_exit(CHILD_E_SETUP);
	if ((flags & SESS_NONBLOCK) &&
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		_exit(CHILD_E_SETUP);
	a.v_int64 = fd;
	rc = tapi.call(loop, &a, &c, 1, &r, &rcode);
	e = tapi.last_error();
	if (rc != 0 && e != NULL)
		(void)write(err_fd, e, strlen(e));
	(void)tapi.func_free(loop);
	if (fcntl(fd, F_GETFD) >= 0)
		_exit(CHILD_E_FD_OPEN);
	if (rc == 0 && rcode != kTVMNullptr)
		_exit(CHILD_E_NOT_NULL);
	_exit(rc == 0 ? 0 : 1);
}

/* The parent's view of one session. */
struct sess {
	pid_t pid;
	struct tvmrpc *c; /* the client end */
	int err_fd;       /* the loop's error text, at the child's exit */
	int hook_fd;      /* "S" start, "D" shutdown */
	char dir[256];    /* the session directory */
};

static void
sess_start(struct sess *s, unsigned flags)
{
	int sv[2], ep[2], hp[2];

	memset(s, 0, sizeof(*s));
	(void)snprintf(s->dir, sizeof(s->dir), "/tmp/npufarm-fake-tvm-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(s->dir));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(pipe(ep), 0);
	ck_assert_int_eq(pipe(hp), 0);
	s->pid = fork();
	ck_assert_int_ge(s->pid, 0);
	if (s->pid == 0) {
		(void)close(sv[0]);
		(void)close(ep[0]);
		(void)close(hp[0]);
		(void)snprintf(env_dir, sizeof(env_dir), "%s", s->dir);
		env_hook_fd = hp[1];
		child_main(sv[1], flags, ep[1]);
	}
	(void)close(sv[1]);
	(void)close(ep[1]);
	(void)close(hp[1]);
	s->err_fd = ep[0];
	s->hook_fd = hp[0];
	ck_assert_int_eq(tvmrpc_new_fd(sv[0], T_MS, &s->c), 0);
}

/* Wait for the child to end (bounded); returns its wait status. */
static int
sess_wait(struct sess *s)
{
	int64_t deadline = tvmrpc_now_ms() + T_MS;
	struct timespec ts = {0, 5 * 1000000L};
	int status;
	pid_t r;

	while ((r = waitpid(s->pid, &status, WNOHANG)) == 0 &&
	       tvmrpc_now_ms() < deadline)
		(void)nanosleep(&ts, NULL);
	if (r == 0) {
		(void)kill(s->pid, SIGKILL);
		(void)waitpid(s->pid, &status, 0);
		ck_abort_msg("the session child did not end");
	}
	ck_assert_int_eq(r, s->pid);
	s->pid = 0;
	return status;
}

/* Everything written to @fd until EOF, NUL-terminated, into @buf. */
static void
read_pipe(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t k;

	while (got + 1 < len && (k = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)k;
	buf[got] = '\0';
}

/*
 * After the child ended: its loop error text into @err and the hooks that
 * ran into @hooks (either may be NULL).
 */
static void
sess_report(struct sess *s, char *err, size_t errlen, char *hooks)
{
	char tmp[8];

	read_pipe(s->err_fd, err != NULL ? err : tmp,
	    err != NULL ? errlen : sizeof(tmp));
	read_pipe(s->hook_fd, hooks != NULL ? hooks : tmp, sizeof(tmp));
}

static void
sess_end(struct sess *s)
{
	if (s->pid > 0) {
		(void)kill(s->pid, SIGKILL);
		(void)waitpid(s->pid, NULL, 0);
	}
	tvmrpc_free(s->c);
	(void)close(s->err_fd);
	(void)close(s->hook_fd);
	(void)harness_rmtree(s->dir);
}

/* A wait status is death by signal @sig, or (@sig 0) exit status @code. */
static void
assert_status(int status, int sig, int code)
{
	if (sig != 0) {
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == sig,
		    "status 0x%x, expected signal %d", status, sig);
		return;
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == code,
	    "status 0x%x, expected exit %d", status, code);
}

/* ---- the client side --------------------------------------------------- */

struct vec {
	unsigned char b[4096];
	size_t len;
};

static struct vec
unhex(const char *hex)
{
	struct vec v;

	v.len = harness_unhex(hex, v.b, sizeof(v.b));
	ck_assert_uint_eq(v.len * 2, strlen(hex));
	return v;
}

static void
send_hex(struct sess *s, const char *hex)
{
	struct vec v = unhex(hex);

	ck_assert_int_eq(tvmrpc_send(s->c, v.b, v.len), 0);
}

/* Receive one packet and return its wire bytes. */
static struct vec
recv_raw(struct sess *s)
{
	struct tvmrpc_packet p;
	struct vec v;
	int r;

	r = tvmrpc_recv_packet(s->c, T_MS, &p);
	ck_assert_msg(r == 0, "receive: %s", tvmrpc_strresult(r));
	ck_assert_uint_le(TVMRPC_HEADER_SIZE + p.body_len, sizeof(v.b));
	tvmrpc_put_header(v.b, p.len, p.code);
	memcpy(v.b + TVMRPC_HEADER_SIZE, p.body, p.body_len);
	v.len = TVMRPC_HEADER_SIZE + p.body_len;
	return v;
}

static void
assert_vec_eq(const struct vec *got, const struct vec *want)
{
	ck_assert_uint_eq(got->len, want->len);
	ck_assert_mem_eq(got->b, want->b, want->len);
}

/* The next packet is exactly the vector @hex. */
static void
expect_hex(struct sess *s, const char *hex)
{
	struct vec got = recv_raw(s), want = unhex(hex);

	assert_vec_eq(&got, &want);
}

/* The next packet is a kException; its text goes to @text. */
static void
expect_exception(struct sess *s, char *text, size_t len)
{
	struct tvmrpc_packet p;
	const char *str;
	size_t n;
	int r;

	r = tvmrpc_recv_packet(s->c, T_MS, &p);
	ck_assert_msg(r == 0, "receive: %s", tvmrpc_strresult(r));
	ck_assert_int_eq(p.code, TVMRPC_EXCEPTION);
	ck_assert_int_eq(tvmrpc_packet_string(&p, &str, &n), 0);
	ck_assert_uint_lt(n, len);
	memcpy(text, str, n);
	text[n] = '\0';
}

/* The child closed its end at a packet boundary. */
static void
expect_eof(struct sess *s)
{
	struct tvmrpc_packet p;

	ck_assert_int_eq(tvmrpc_recv_packet(s->c, T_MS, &p), TVMRPC_E_EOF);
}

/* kInitServer (EP-01) answered by kReturn void (EP-02). */
static void
init_session(struct sess *s)
{
	send_hex(s, EP01);
	expect_hex(s, EP02);
}

/* The handle of a kGetGlobalFunc reply, shaped as EP-04 (0: none). */
static uint64_t
recv_handle(struct sess *s)
{
	struct tvmrpc_msg m;
	struct vec got, want;
	uint64_t h;

	got = recv_raw(s);
	ck_assert_uint_eq(got.len, 28);
	h = frame_get_le64(got.b + 20);
	tvmrpc_msg_return_handle(&m, h);
	want.len = m.len;
	memcpy(want.b, m.b, m.len);
	assert_vec_eq(&got, &want);
	return h;
}

/* kGetGlobalFunc(@name) (EP-03 for "rpc.test.addone"): its handle. */
static uint64_t
get_global(struct sess *s, const char *name)
{
	struct tvmrpc_msg m;

	ck_assert_int_eq(tvmrpc_msg_get_global_func(&m, name), 0);
	ck_assert_int_eq(tvmrpc_send_msg(s->c, &m), 0);
	return recv_handle(s);
}

/* A new session, initialised, with a call of @name(int @arg) sent. */
static void
sess_start_call(struct sess *s, const char *name, int64_t arg)
{
	struct tvmrpc_msg m;

	sess_start(s, 0);
	init_session(s);
	tvmrpc_msg_call_func(&m, get_global(s, name), arg);
	ck_assert_int_eq(tvmrpc_send_msg(s->c, &m), 0);
}

/* A packet being built: header, then values appended. */
struct pk {
	unsigned char b[4096];
	size_t len;
	int32_t code;
};

static void
pk_begin(struct pk *p, int32_t code)
{
	p->code = code;
	p->len = TVMRPC_HEADER_SIZE;
}

static void
pk_mem(struct pk *p, const void *m, size_t n)
{
	ck_assert_uint_le(p->len + n, sizeof(p->b));
	memcpy(p->b + p->len, m, n);
	p->len += n;
}

static void
pk_u32(struct pk *p, uint32_t v)
{
	unsigned char b[4];

	frame_put_le32(b, v);
	pk_mem(p, b, sizeof(b));
}

static void
pk_u64(struct pk *p, uint64_t v)
{
	unsigned char b[8];

	frame_put_le64(b, v);
	pk_mem(p, b, sizeof(b));
}

static void
pk_send(struct sess *s, struct pk *p)
{
	tvmrpc_put_header(p->b, p->len - 8, p->code);
	ck_assert_int_eq(tvmrpc_send(s->c, p->b, p->len), 0);
}

/*
 * Send a packet of @code whose body starts with @head (u64, for kCallFunc
 * the function handle; skipped when @code is not kCallFunc) and goes on
 * with a PackedSeq described by @fmt: 'i' int64, 's' string, 'b' bytes
 * (pointer, size_t), 'o' opaque handle, 'm' module handle (uint64_t).
 */
static void
send_call(struct sess *s, int32_t code, uint64_t head, const char *fmt, ...)
{
	static const struct {
		char c;
		int code;
	} kinds[] = {{'i', kDLInt}, {'s', kTVMStr}, {'b', kTVMBytes},
	    {'o', kTVMOpaqueHandle}, {'m', kTVMModuleHandle}};
	struct pk p;
	const char *str;
	size_t i, k, n = strlen(fmt);
	va_list ap;

	pk_begin(&p, code);
	if (code == TVMRPC_CALL_FUNC)
		pk_u64(&p, head);
	pk_u32(&p, (uint32_t)n);
	for (i = 0; i < n; i++)
		for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
			if (kinds[k].c == fmt[i])
				pk_u32(&p, (uint32_t)kinds[k].code);
	va_start(ap, fmt);
	for (i = 0; i < n; i++) {
		switch (fmt[i]) {
		case 'i':
			pk_u64(&p, (uint64_t)va_arg(ap, int64_t));
			break;
		case 's':
			str = va_arg(ap, const char *);
			pk_u64(&p, strlen(str));
			pk_mem(&p, str, strlen(str));
			break;
		case 'b':
			str = va_arg(ap, const char *);
			k = va_arg(ap, size_t);
			pk_u64(&p, k);
			pk_mem(&p, str, k);
			break;
		default: /* 'o', 'm' */
			pk_u64(&p, va_arg(ap, uint64_t));
			break;
		}
	}
	va_end(ap);
	pk_send(s, &p);
}

/*
 * The next packet is a kCallFunc reply [int T, value] (spec §5.3): T into
 * *ret_t, the value's own type code into *ret_code, and its 8 bytes (or,
 * for str and bytes, its length) into *ret_v; @data gets str/bytes payloads.
 */
static void
expect_return(struct sess *s, int *ret_t, int *ret_code, uint64_t *ret_v,
    struct vec *data)
{
	struct vec got = recv_raw(s);
	size_t off = 24;

	ck_assert_uint_ge(got.len, 32);
	ck_assert_int_eq(frame_get_le32(got.b + 8), TVMRPC_RETURN);
	ck_assert_int_eq(frame_get_le32(got.b + 12), 2);
	ck_assert_int_eq(frame_get_le32(got.b + 16), kDLInt);
	*ret_code = (int)frame_get_le32(got.b + 20);
	*ret_t = (int)frame_get_le64(got.b + off);
	off += 8;
	*ret_v = 0;
	if (*ret_code != kTVMNullptr) {
		ck_assert_uint_ge(got.len, off + 8);
		*ret_v = frame_get_le64(got.b + off);
		off += 8;
	}
	if (*ret_code == kTVMStr || *ret_code == kTVMBytes) {
		ck_assert_uint_eq(got.len, off + *ret_v);
		if (data != NULL) {
			data->len = (size_t)*ret_v;
			memcpy(data->b, got.b + off, data->len);
		}
		off += (size_t)*ret_v;
	}
	ck_assert_uint_eq(got.len, off);
}

/* ---- the C API ---------------------------------------------------------- */

START_TEST(test_api_exports)
{
	/* api_setup() resolved every entry point of spec §2; nothing else. */
	ck_assert_ptr_null(dlsym(tapi.lib, "fake_call"));
	ck_assert_ptr_null(dlsym(tapi.lib, "fake_rpc_server_loop"));
	ck_assert_ptr_null(dlsym(tapi.lib, "fake_funcs_register"));
}
END_TEST

START_TEST(test_api_registry)
{
	const char **names;
	TVMFunctionHandle f, g, h;
	int fin = 0, fin2 = 0, fin3 = 0, n, i, seen = 0;

	/* Per thread, NULL until the first error (check forks each test). */
	if (getenv("CK_FORK") == NULL || strcmp(getenv("CK_FORK"), "no") != 0)
		ck_assert_ptr_null(tapi.last_error());
	ck_assert_int_eq(tapi.get_global("no.such.function", &f), 0);
	ck_assert_ptr_null(f);

	/* The registry takes its own reference: freeing ours runs nothing. */
	ck_assert_int_eq(tapi.create(cb_echo, &fin, cb_count, &f), 0);
	ck_assert_int_eq(tapi.reg("npufarm.test.echo", f, 0), 0);
	ck_assert_int_ne(tapi.reg("npufarm.test.echo", f, 0), 0);
	ck_assert_str_eq(tapi.last_error(),
	    "Global PackedFunc npufarm.test.echo is already registered");
	ck_assert_int_eq(tapi.func_free(f), 0);
	g = api_global("npufarm.test.echo");
	ck_assert_ptr_eq(g, f);
	ck_assert_int_eq(tapi.func_free(g), 0);
	ck_assert_int_eq(fin, 0);

	/* override=1 replaces, and the old function is never released. */
	ck_assert_int_eq(tapi.create(cb_echo, &fin2, cb_count, &h), 0);
	ck_assert_int_eq(tapi.reg("npufarm.test.echo", h, 1), 0);
	ck_assert_int_eq(tapi.func_free(h), 0);
	g = api_global("npufarm.test.echo");
	ck_assert_ptr_eq(g, h);
	ck_assert_int_eq(tapi.func_free(g), 0);
	ck_assert_int_eq(fin + fin2, 0);

	/* Unregistered: the last reference runs the finalizer, once. */
	ck_assert_int_eq(tapi.create(cb_echo, &fin3, cb_count, &f), 0);
	ck_assert_int_eq(tapi.func_free(f), 0);
	ck_assert_int_eq(fin3, 1);
	ck_assert_int_eq(tapi.func_free(NULL), 0);

	ck_assert_int_eq(tapi.list_names(&n, &names), 0);
	for (i = 0; i < n; i++)
		seen += strcmp(names[i], "rpc.ServerLoop") == 0 ||
			strcmp(names[i], "tvm.rpc.server.upload") == 0 ||
			strcmp(names[i], "runtime.module.loadfile_so") == 0 ||
			strcmp(names[i], "npufarm.test.echo") == 0;
	ck_assert_int_eq(seen, 4);
}
END_TEST

START_TEST(test_api_call)
{
	TVMFunctionHandle addone, raise_fn, echo, silent, inner, outer;
	TVMByteArray ba = {"a\0b", 3};
	const TVMByteArray *rb;
	char copy[256];
	TVMValue a, r;
	int c, rc, fin = 0;

	addone = api_global("rpc.test.addone");
	a.v_int64 = 10;
	c = kDLInt;
	ck_assert_int_eq(tapi.call(addone, &a, &c, 1, &r, &rc), 0);
	ck_assert_int_eq(rc, kDLInt);
	ck_assert_int_eq(r.v_int64, 11);
	c = kTVMStr;
	a.v_str = "ten";
	ck_assert_int_ne(tapi.call(addone, &a, &c, 1, &r, &rc), 0);
	ck_assert_ptr_nonnull(strstr(tapi.last_error(), "TypeError: "));

	/* Strings and bytes come back as copies (spec §3). */
	ck_assert_int_eq(tapi.create(cb_echo, NULL, NULL, &echo), 0);
	a.v_str = "hello";
	c = kTVMStr;
	ck_assert_int_eq(tapi.call(echo, &a, &c, 1, &r, &rc), 0);
	ck_assert_int_eq(rc, kTVMStr);
	ck_assert_str_eq(r.v_str, "hello");
	ck_assert_ptr_ne(r.v_str, a.v_str);
	a.v_handle = &ba;
	c = kTVMBytes;
	ck_assert_int_eq(tapi.call(echo, &a, &c, 1, &r, &rc), 0);
	ck_assert_int_eq(rc, kTVMBytes);
	rb = r.v_handle;
	ck_assert_uint_eq(rb->size, 3);
	ck_assert_mem_eq(rb->data, "a\0b", 3);
	ck_assert_ptr_ne(rb->data, ba.data);
	ck_assert_int_eq(tapi.call(echo, NULL, NULL, 0, &r, &rc), 0);
	ck_assert_int_eq(rc, kTVMNullptr);

	/* Errors get a type unless they have one (spec §4). */
	raise_fn = api_global("npufarm.test.raise");
	ck_assert_int_eq(tapi.call(raise_fn, NULL, NULL, 0, &r, &rc), -1);
	ck_assert_str_eq(tapi.last_error(), "ValueError: bad input");
	a.v_str = "plain words";
	c = kTVMStr;
	ck_assert_int_eq(tapi.call(raise_fn, &a, &c, 1, &r, &rc), -1);
	ck_assert_str_eq(tapi.last_error(), "TVMError: plain words");
	a.v_str = "KeyError: k";
	ck_assert_int_eq(tapi.call(raise_fn, &a, &c, 1, &r, &rc), -1);
	ck_assert_str_eq(tapi.last_error(), "KeyError: k");
	/* No message set: the last one on the thread stands. */
	ck_assert_int_eq(tapi.create(cb_fail_silently, NULL, NULL, &silent), 0);
	ck_assert_int_ne(tapi.call(silent, NULL, NULL, 0, &r, &rc), 0);
	ck_assert_str_eq(tapi.last_error(), "KeyError: k");
	tapi.set_last_error(tapi.last_error());
	ck_assert_str_eq(tapi.last_error(), "KeyError: k");
	/* A return slot is only valid inside its callback. */
	memset(copy, 0, sizeof(copy));
	ck_assert_int_ne(tapi.set_return(copy, &a, &c, 1), 0);

	/* A returned handle is a new reference; the callee keeps its own. */
	ck_assert_int_eq(tapi.create(cb_echo, &fin, cb_count, &inner), 0);
	ck_assert_int_eq(tapi.create(cb_return_func, inner, NULL, &outer), 0);
	ck_assert_int_eq(tapi.call(outer, NULL, NULL, 0, &r, &rc), 0);
	ck_assert_int_eq(rc, kTVMPackedFuncHandle);
	ck_assert_ptr_eq(r.v_handle, inner);
	ck_assert_int_eq(tapi.func_free(inner), 0);
	ck_assert_int_eq(fin, 0);
	ck_assert_int_eq(tapi.func_free(r.v_handle), 0);
	ck_assert_int_eq(fin, 1);

	ck_assert_int_eq(tapi.func_free(outer), 0);
	ck_assert_int_eq(tapi.func_free(silent), 0);
	ck_assert_int_eq(tapi.func_free(echo), 0);
	ck_assert_int_eq(tapi.func_free(raise_fn), 0);
	ck_assert_int_eq(tapi.func_free(addone), 0);
}
END_TEST

START_TEST(test_api_loadfile_so)
{
	TVMFunctionHandle so, mgf;
	TVMValue a[3], r, m;
	int c[3], rc;

	so = api_global("runtime.module.loadfile_so");
	mgf = api_global("tvm.rpc.server.ModuleGetFunction");
	a[0].v_str = "/nonexistent/npufarm.so";
	c[0] = kTVMStr;
	ck_assert_int_ne(tapi.call(so, a, c, 1, &r, &rc), 0);
	ck_assert_ptr_nonnull(strstr(tapi.last_error(),
	    "Failed to load dynamic shared library /nonexistent/npufarm.so"));

	/* The runtime itself is a loadable .so: a module, code 9. */
	a[0].v_str = getenv("NPUFARM_FAKE_TVM");
	ck_assert_int_eq(tapi.call(so, a, c, 1, &m, &rc), 0);
	ck_assert_int_eq(rc, kTVMModuleHandle);
	a[0] = m;
	c[0] = kTVMModuleHandle;
	a[1].v_str = "no_such_symbol";
	c[1] = kTVMStr;
	a[2].v_int64 = 0;
	c[2] = kDLInt;
	ck_assert_int_eq(tapi.call(mgf, a, c, 3, &r, &rc), 0);
	ck_assert_int_eq(rc, kTVMNullptr);
	a[1].v_str = "TVMFuncCall";
	ck_assert_int_eq(tapi.call(mgf, a, c, 3, &r, &rc), 0);
	ck_assert_int_eq(rc, kTVMPackedFuncHandle);
	ck_assert_int_eq(tapi.func_free(r.v_handle), 0);
	ck_assert_int_eq(tapi.mod_free(m.v_handle), 0);
	ck_assert_int_eq(tapi.func_free(mgf), 0);
	ck_assert_int_eq(tapi.func_free(so), 0);
}
END_TEST

/* ---- rpc.ServerLoop ------------------------------------------------------ */

START_TEST(test_session_vectors)
{
	struct tvmrpc_msg m;
	struct vec ep05;
	struct sess s;
	char err[256], hooks[8];
	uint64_t h, hs;
	int64_t t0;
	struct pk p;

	sess_start(&s, 0);
	init_session(&s);
	send_hex(&s, EP12); /* ignored, no reply */
	send_hex(&s, EP03);
	h = recv_handle(&s);
	ck_assert_uint_ne(h, 0);
	/* EP-05 with our handle in place of 0x00005555aaaa0000 -> EP-06. */
	tvmrpc_msg_call_func(&m, h, 10);
	ep05 = unhex(EP05);
	frame_put_le64(ep05.b + 12, h);
	ck_assert_uint_eq(m.len, ep05.len);
	ck_assert_mem_eq(m.b, ep05.b, m.len);
	ck_assert_int_eq(tvmrpc_send_msg(s.c, &m), 0);
	expect_hex(&s, EP06);
	ck_assert_uint_eq(get_global(&s, "no.such.function"), 0);

	hs = get_global(&s, "npufarm.test.sleep");
	t0 = tvmrpc_now_ms();
	tvmrpc_msg_call_func(&m, hs, 50);
	ck_assert_int_eq(tvmrpc_send_msg(s.c, &m), 0);
	expect_hex(&s, EP07);
	ck_assert_int_ge(tvmrpc_now_ms() - t0, 50);

	/* kFreeHandle(handle, kTVMPackedFuncHandle) -> kReturn void. */
	pk_begin(&p, 10);
	pk_u32(&p, 2);
	pk_u32(&p, kTVMOpaqueHandle);
	pk_u32(&p, kDLInt);
	pk_u64(&p, h);
	pk_u64(&p, kTVMPackedFuncHandle);
	pk_send(&s, &p);
	expect_hex(&s, EP02);

	send_hex(&s, EP11);
	expect_eof(&s);
	ck_assert_int_eq(sess_wait(&s), 0);
	sess_report(&s, err, sizeof(err), hooks);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(hooks, "SD");
	sess_end(&s);
}
END_TEST

START_TEST(test_session_exceptions)
{
	struct vec v;
	struct sess s;
	char text[512];
	uint64_t hr, ha;
	int t, code;
	uint64_t val;

	sess_start(&s, 0);
	/* Before kInitServer, and with a wrong version: kException. */
	send_hex(&s, EP03);
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "InitRemoteSession"));
	v = unhex(EP01);
	v.b[22] = '7'; /* "0.7.0" */
	ck_assert_int_eq(tvmrpc_send(s.c, v.b, v.len), 0);
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "protocol version mismatch"));
	ck_assert_ptr_nonnull(strstr(text, "client protocol=0.7.0"));
	init_session(&s);
	send_hex(&s, EP01);
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "already been initialized"));

	/* A function's error is EP-10, and the session goes on. */
	hr = get_global(&s, "npufarm.test.raise");
	ha = get_global(&s, "rpc.test.addone");
	send_call(&s, TVMRPC_CALL_FUNC, hr, "i", (int64_t)1);
	expect_hex(&s, EP10);
	send_call(&s, TVMRPC_CALL_FUNC, ha, "i", (int64_t)41);
	expect_return(&s, &t, &code, &val, NULL);
	ck_assert_int_eq(t, kDLInt);
	ck_assert_int_eq(code, kDLInt);
	ck_assert_uint_eq(val, 42);
	send_call(
	    &s, TVMRPC_CALL_FUNC, hr, "s", "RuntimeError: the NPU said no");
	expect_exception(&s, text, sizeof(text));
	ck_assert_str_eq(text, "RuntimeError: the NPU said no");
	send_call(&s, TVMRPC_CALL_FUNC, hr, "s", "no type");
	expect_exception(&s, text, sizeof(text));
	ck_assert_str_eq(text, "TVMError: no type");

	/* Handles the loop never sent are refused, not dereferenced. */
	send_call(&s, TVMRPC_CALL_FUNC, 0x1234, "i", (int64_t)1);
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "invalid function handle 0x1234"));
	send_call(&s, 10, 0, "oi", (uint64_t)0x1234, (int64_t)10);
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "invalid handle"));
	/* Copies are not supported by the fake, but answered. */
	send_call(&s, TVMRPC_COPY_FROM_REMOTE, 0, "");
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "not supported"));
	send_call(&s, TVMRPC_CALL_FUNC, ha, "i", (int64_t)-1);
	expect_return(&s, &t, &code, &val, NULL);
	ck_assert_uint_eq(val, 0);

	tvmrpc_free(s.c); /* EOF at a boundary: a clean end */
	s.c = NULL;
	ck_assert_int_eq(sess_wait(&s), 0);
	sess_end(&s);
}
END_TEST

START_TEST(test_session_crash)
{
	struct sess s;
	char hooks[8];

	sess_start_call(&s, "npufarm.test.crash", 0);
	expect_eof(&s);
	assert_status(sess_wait(&s), SIGSEGV, 0);
	sess_report(&s, NULL, 0, hooks);
	ck_assert_str_eq(hooks, "S");
	sess_end(&s);
}
END_TEST

START_TEST(test_session_exit)
{
	struct sess s;

	sess_start_call(&s, "npufarm.test.exit", 3);
	expect_eof(&s);
	assert_status(sess_wait(&s), 0, 3);
	sess_end(&s);
}
END_TEST

START_TEST(test_session_hang)
{
	struct tvmrpc_packet p;
	struct sess s;
	int status;

	sess_start_call(&s, "npufarm.test.hang", 0);
	ck_assert_int_eq(tvmrpc_recv_packet(s.c, 300, &p), -ETIMEDOUT);
	ck_assert_int_eq(waitpid(s.pid, &status, WNOHANG), 0);
	ck_assert_int_eq(kill(s.pid, SIGKILL), 0);
	assert_status(sess_wait(&s), SIGKILL, 0);
	expect_eof(&s);
	sess_end(&s);
}
END_TEST

/*
 * EOF where a packet would start, even after part of its 8-byte length, is
 * a clean end (0, shutdown hook).  EOF inside a packet is an error (-1, no
 * hook) that the loop reports to the peer with a kShutdown.
 */
START_TEST(test_session_end_of_stream)
{
	static const struct {
		const char *hex; /* a vector, of which the first... */
		size_t len;      /* ...len bytes are sent before EOF */
		int status;      /* the child's exit status */
		const char *err; /* in the loop's error text */
		const char *hooks;
	} cases[] = {
	    {EP01, 0, 0, "", "SD"},
	    {EP01, 3, 0, "", "SD"},
	    {EP03, 8, 1, "Channel closes before we get needed bytes", "S"},
	    {EP03, 20, 1, "Channel closes before we get needed bytes", "S"},
	};
	char err[256], hooks[8];
	struct sess s;
	struct vec v;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = unhex(cases[i].hex);
		sess_start(&s, 0);
		init_session(&s);
		ck_assert_int_eq(tvmrpc_send(s.c, v.b, cases[i].len), 0);
		ck_assert_int_eq(shutdown(tvmrpc_fd(s.c), SHUT_WR), 0);
		if (cases[i].status != 0)
			expect_hex(&s, EP11);
		expect_eof(&s);
		assert_status(sess_wait(&s), 0, cases[i].status);
		sess_report(&s, err, sizeof(err), hooks);
		ck_assert_ptr_nonnull(strstr(err, cases[i].err));
		if (cases[i].status == 0)
			ck_assert_str_eq(err, "");
		ck_assert_str_eq(hooks, cases[i].hooks);
		sess_end(&s);
	}
}
END_TEST

/* Codes a server does not handle are fatal, as in the real runtime. */
START_TEST(test_session_bad_code)
{
	static const int32_t codes[] = {0, TVMRPC_RETURN, 21, 1000};
	struct sess s;
	char err[256];
	struct pk p;
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		sess_start(&s, 0);
		init_session(&s);
		pk_begin(&p, codes[i]);
		pk_send(&s, &p);
		expect_hex(&s, EP11);
		expect_eof(&s);
		assert_status(sess_wait(&s), 0, 1);
		sess_report(&s, err, sizeof(err), NULL);
		if (codes[i] != TVMRPC_RETURN)
			ck_assert_ptr_nonnull(strstr(err, "Unknown event"));
		sess_end(&s);
	}
}
END_TEST

/*
 * upload, download and remove go through the agent's workpath, so its
 * refusals reach the client; load_module returns a module over RPC.
 */
START_TEST(test_session_files)
{
	static const char data[] = "\x7f"
				   "ELF\0bytes";
	char path[600], text[512], escape[128], target[PATH_MAX];
	uint64_t up, down, rm, lm, mgf, mh, val;
	struct vec got;
	struct sess s;
	struct stat st;
	int t, code;
	FILE *f;

	sess_start(&s, 0);
	init_session(&s);
	up = get_global(&s, "tvm.rpc.server.upload");
	down = get_global(&s, "tvm.rpc.server.download");
	rm = get_global(&s, "tvm.rpc.server.remove");
	lm = get_global(&s, "tvm.rpc.server.load_module");
	mgf = get_global(&s, "tvm.rpc.server.ModuleGetFunction");

	send_call(
	    &s, TVMRPC_CALL_FUNC, up, "sb", "a.bin", data, sizeof(data) - 1);
	expect_hex(&s, EP07);
	(void)snprintf(path, sizeof(path), "%s/a.bin", s.dir);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	got.len = fread(got.b, 1, sizeof(got.b), f);
	(void)fclose(f);
	ck_assert_uint_eq(got.len, sizeof(data) - 1);
	ck_assert_mem_eq(got.b, data, got.len);

	send_call(&s, TVMRPC_CALL_FUNC, down, "s", "a.bin");
	expect_return(&s, &t, &code, &val, &got);
	ck_assert_int_eq(t, kTVMBytes);
	ck_assert_int_eq(code, kTVMBytes);
	ck_assert_uint_eq(got.len, sizeof(data) - 1);
	ck_assert_mem_eq(got.b, data, got.len);

	(void)snprintf(escape, sizeof(escape), "../npufarm-fake-tvm-escape-%d",
	    (int)getpid());
	send_call(&s, TVMRPC_CALL_FUNC, up, "sb", escape, data, (size_t)3);
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "ValueError: path '../"));
	(void)snprintf(path, sizeof(path), "%s/%s", s.dir, escape);
	ck_assert_int_ne(stat(path, &st), 0);
	send_call(&s, TVMRPC_CALL_FUNC, down, "s", "/etc/passwd");
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "outside the session directory"));

	send_call(&s, TVMRPC_CALL_FUNC, rm, "s", "a.bin");
	expect_hex(&s, EP07);
	(void)snprintf(path, sizeof(path), "%s/a.bin", s.dir);
	ck_assert_int_ne(stat(path, &st), 0);
	send_call(&s, TVMRPC_CALL_FUNC, down, "s", "a.bin");
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "Cannot open"));

	/* load_module: a failure keeps the loader's text; a module comes
	 * back as [9, handle], usable as an argument, freed by kFreeHandle.
	 */
	send_call(&s, TVMRPC_CALL_FUNC, lm, "s", "missing.so");
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(
	    strstr(text, "Failed to load dynamic shared library"));
	(void)snprintf(path, sizeof(path), "%s/m.so", s.dir);
	ck_assert_ptr_nonnull(realpath(getenv("NPUFARM_FAKE_TVM"), target));
	ck_assert_int_eq(symlink(target, path), 0);
	send_call(&s, TVMRPC_CALL_FUNC, lm, "s", "m.so");
	expect_return(&s, &t, &code, &mh, NULL);
	ck_assert_int_eq(t, kTVMModuleHandle);
	ck_assert_int_eq(code, kTVMOpaqueHandle);
	ck_assert_uint_ne(mh, 0);
	send_call(
	    &s, TVMRPC_CALL_FUNC, mgf, "msi", mh, "no_such_symbol", (int64_t)0);
	expect_hex(&s, EP07);
	send_call(&s, 10, 0, "oi", mh, (int64_t)kTVMModuleHandle);
	expect_hex(&s, EP02);
	send_call(
	    &s, TVMRPC_CALL_FUNC, mgf, "msi", mh, "no_such_symbol", (int64_t)0);
	expect_exception(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "invalid handle"));

	send_hex(&s, EP11);
	expect_eof(&s);
	ck_assert_int_eq(sess_wait(&s), 0);
	sess_end(&s);
}
END_TEST

/* An O_NONBLOCK socket fails the loop at once (spec §6). */
START_TEST(test_session_nonblocking)
{
	struct sess s;
	char err[256];

	sess_start(&s, SESS_NONBLOCK);
	assert_status(sess_wait(&s), 0, 1);
	sess_report(&s, err, sizeof(err), NULL);
	ck_assert_ptr_nonnull(strstr(err, "SockChannel::Recv Error:"));
	ck_assert_ptr_nonnull(strstr(err, strerror(EAGAIN)));
	sess_end(&s);
}
END_TEST

/*
 * Replies are sent without MSG_NOSIGNAL: to a peer that stopped reading,
 * the child dies of SIGPIPE unless it ignores it; then the loop fails.
 */
START_TEST(test_session_sigpipe)
{
	struct sess s;
	char err[256];

	sess_start(&s, SESS_SIGPIPE_DEFAULT);
	ck_assert_int_eq(shutdown(tvmrpc_fd(s.c), SHUT_RD), 0);
	send_hex(&s, EP01);
	assert_status(sess_wait(&s), SIGPIPE, 0);
	sess_end(&s);

	sess_start(&s, 0);
	ck_assert_int_eq(shutdown(tvmrpc_fd(s.c), SHUT_RD), 0);
	send_hex(&s, EP01);
	assert_status(sess_wait(&s), 0, 1);
	sess_report(&s, err, sizeof(err), NULL);
	ck_assert_ptr_nonnull(strstr(err, "SockChannel::Send Error:"));
	ck_assert_ptr_nonnull(strstr(err, strerror(EPIPE)));
	sess_end(&s);
}
END_TEST

/* ---- the tvm-ffi flavour's C API ---------------------------------------- */

/* Its entry points (tvm_ffi_api.h), resolved with dlsym(). */
struct ffi_api {
	void *lib;
	tvm_ffi_function_get_global_fn *get_global;
	tvm_ffi_function_call_fn *call;
	tvm_ffi_string_from_byte_array_fn *str;
	tvm_ffi_error_move_from_raised_fn *move_error;
	tvm_ffi_object_ref_fn *decref;
};

static struct ffi_api fapi;

static void
ffi_api_setup(void)
{
	const char *path = getenv("NPUFARM_FAKE_TVM_FFI");

	ck_assert_msg(path != NULL, "NPUFARM_FAKE_TVM_FFI is not set");
	fapi.lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	ck_assert_msg(fapi.lib != NULL, "%s", dlerror());
	ck_assert_int_eq(
	    api_sym(fapi.lib, "TVMFFIFunctionGetGlobal", &fapi.get_global), 0);
	ck_assert_int_eq(
	    api_sym(fapi.lib, "TVMFFIFunctionCall", &fapi.call), 0);
	ck_assert_int_eq(
	    api_sym(fapi.lib, "TVMFFIStringFromByteArray", &fapi.str), 0);
	ck_assert_int_eq(
	    api_sym(fapi.lib, "TVMFFIErrorMoveFromRaised", &fapi.move_error),
	    0);
	ck_assert_int_eq(
	    api_sym(fapi.lib, "TVMFFIObjectDecRef", &fapi.decref), 0);
}

/* The global function @name, asserted to exist (a new reference). */
static void *
ffi_global(const char *name)
{
	TVMFFIByteArray n = {name, strlen(name)};
	void *h = NULL;

	ck_assert_int_eq(fapi.get_global(&n, &h), 0);
	return h;
}

/* The cell of object @o (after the 24-byte header, spec §4.2). */
static const void *
ffi_cell(const void *o)
{
	return (const char *)o + sizeof(TVMFFIObject);
}

START_TEST(test_ffi_api_exports)
{
	static const char *const ffi[] = {"TVMFFIFunctionGetGlobal",
	    "TVMFFIFunctionCall", "TVMFFIFunctionCreate",
	    "TVMFFIFunctionSetGlobal", "TVMFFIErrorMoveFromRaised",
	    "TVMFFIErrorSetRaisedFromCStr", "TVMFFIStringFromByteArray",
	    "TVMFFIObjectIncRef", "TVMFFIObjectDecRef"};
	static const char *const v014[] = {"TVMFuncGetGlobal", "TVMFuncCall",
	    "TVMFuncCreateFromCFunc", "TVMFuncRegisterGlobal",
	    "TVMCFuncSetReturn", "TVMGetLastError", "TVMAPISetLastError",
	    "TVMFuncFree", "TVMModFree", "TVMObjectFree"};
	size_t i;

	/* One family only, as each real runtime (spec §4.1, §4.6). */
	for (i = 0; i < sizeof(ffi) / sizeof(ffi[0]); i++)
		ck_assert_msg(dlsym(fapi.lib, ffi[i]) != NULL, "%s", ffi[i]);
	for (i = 0; i < sizeof(v014) / sizeof(v014[0]); i++)
		ck_assert_msg(dlsym(fapi.lib, v014[i]) == NULL, "%s", v014[i]);
	ck_assert_ptr_null(dlsym(fapi.lib, "fake_ffi_call"));
	/* And the v0.14 flavour has none of tvm-ffi's. */
	ck_assert_ptr_null(dlsym(tapi.lib, "TVMFFIFunctionGetGlobal"));

	/* The loader of the era (spec §4.4). */
	ck_assert_ptr_nonnull(ffi_global("rpc.ServerLoop"));
	ck_assert_ptr_nonnull(ffi_global("ffi.ModuleLoadFromFile"));
	ck_assert_ptr_null(ffi_global("runtime.module.loadfile_so"));
}
END_TEST

START_TEST(test_ffi_api_semantics)
{
	TVMFFIByteArray in = {"abc", 3}, longer = {"/tmp/kernels.so", 15};
	const TVMFFIErrorCell *cell;
	const TVMFFIByteArray *b;
	TVMFFIAny a, r;
	void *addone, *raise_fn, *e;

	/* Strings are owned: inline up to 7 bytes, else a String object. */
	ck_assert_int_eq(fapi.str(&in, &a), 0);
	ck_assert_int_eq(a.type_index, kTVMFFISmallStr);
	ck_assert_uint_eq(a.small_str_len, 3);
	ck_assert_mem_eq(a.v_bytes, "abc", 3);
	ck_assert_int_eq(fapi.str(&longer, &a), 0);
	ck_assert_int_eq(a.type_index, kTVMFFIStr);
	b = ffi_cell(a.v_ptr);
	ck_assert_uint_eq(b->size, 15);
	ck_assert_mem_eq(b->data, "/tmp/kernels.so", 15);
	ck_assert_int_eq(fapi.decref(a.v_ptr), 0);

	/* A call: the result must be None on entry (spec §4.3). */
	addone = ffi_global("rpc.test.addone");
	a = (TVMFFIAny){.type_index = kTVMFFIInt, .v_int64 = 41};
	r = (TVMFFIAny){.type_index = kTVMFFIInt};
	ck_assert_int_ne(fapi.call(addone, &a, 1, &r), 0);
	fapi.move_error(&e);
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(fapi.decref(e), 0);
	r = (TVMFFIAny){.type_index = kTVMFFINone};
	ck_assert_int_eq(fapi.call(addone, &a, 1, &r), 0);
	ck_assert_int_eq(r.type_index, kTVMFFIInt);
	ck_assert_int_eq(r.v_int64, 42);
	ck_assert_int_eq(fapi.decref(addone), 0);

	/* A raised error moves out once, kind and message apart. */
	raise_fn = ffi_global("npufarm.test.raise");
	a = (TVMFFIAny){
	    .type_index = kTVMFFIRawStr, .v_c_str = "ValueError: boom"};
	r = (TVMFFIAny){.type_index = kTVMFFINone};
	ck_assert_int_ne(fapi.call(raise_fn, &a, 1, &r), 0);
	fapi.move_error(&e);
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(((const TVMFFIObject *)e)->type_index, kTVMFFIError);
	cell = ffi_cell(e);
	ck_assert_uint_eq(cell->kind.size, 10);
	ck_assert_mem_eq(cell->kind.data, "ValueError", 10);
	ck_assert_uint_eq(cell->message.size, 4);
	ck_assert_mem_eq(cell->message.data, "boom", 4);
	ck_assert_int_eq(fapi.decref(e), 0);
	fapi.move_error(&e);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(fapi.decref(raise_fn), 0);
}
END_TEST

static Suite *
fake_tvm_suite(void)
{
	Suite *s = suite_create("fake-tvm");
	TCase *tc = tcase_create("api");

	tcase_add_checked_fixture(tc, api_setup, NULL);
	tcase_add_test(tc, test_api_exports);
	tcase_add_test(tc, test_api_registry);
	tcase_add_test(tc, test_api_call);
	tcase_add_test(tc, test_api_loadfile_so);
	suite_add_tcase(s, tc);

	tc = tcase_create("ffi-api");
	tcase_add_checked_fixture(tc, api_setup, NULL);
	tcase_add_checked_fixture(tc, ffi_api_setup, NULL);
	tcase_add_test(tc, test_ffi_api_exports);
	tcase_add_test(tc, test_ffi_api_semantics);
	suite_add_tcase(s, tc);

	tc = tcase_create("server-loop");
	tcase_add_test(tc, test_session_vectors);
	tcase_add_test(tc, test_session_exceptions);
	tcase_add_test(tc, test_session_crash);
	tcase_add_test(tc, test_session_exit);
	tcase_add_test(tc, test_session_hang);
	tcase_add_test(tc, test_session_end_of_stream);
	tcase_add_test(tc, test_session_bad_code);
	tcase_add_test(tc, test_session_files);
	tcase_add_test(tc, test_session_nonblocking);
	tcase_add_test(tc, test_session_sigpipe);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_run(fake_tvm_suite());
}
