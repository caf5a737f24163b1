/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc.ServerLoop of the fake runtime: the server side of a TVM RPC session
 * on a connected, blocking socket, as spec tvm-rpc-protocol.md §5 and
 * tvm-c-runtime-api.md §6 describe it.  Packets are read whole
 * (u64 N | i32 code | N-4 bytes) with blocking recv() and answered with one
 * blocking send() each, without MSG_NOSIGNAL, as the real loop does:
 *
 *   kInitServer "0.8.0", no arguments   kReturn void (EP-02); any other
 *                                       version, a second init or a session
 *                                       constructor: kException
 *   kGetGlobalFunc(str)                 kReturn one opaque handle, 0 when
 *                                       missing (EP-04)
 *   kCallFunc(handle, args)             kReturn [int T, value] (EP-06,
 *                                       EP-07), or kException with the
 *                                       function's error (EP-10)
 *   kFreeHandle(handle, int)            kReturn void
 *   kCopy*, device syscalls 11..20      kException: not supported here
 *   any of those before kInitServer     kException
 *   N = 0                               ignored (EP-12)
 *   kShutdown, or EOF where a packet    clean end: tvm.rpc.server.shutdown
 *   would start                         hook, close, return 0
 *   EOF inside a packet, a socket       error end: kShutdown sent if
 *   error, a malformed packet, a code   possible, close, return -1 with the
 *   no server handles (0, 4, 5, 8, 21+) reason in TVMGetLastError()
 *
 * Built with FAKE_TVM_FFI the loop speaks the tvm-ffi dialect instead
 * (tvm-ffi-era.md §2): every PackedSeq value has its i32 type index in
 * front of it, void replies are `i32 1 | i32 0` (FFI-04), handles travel
 * as OpaquePtr (4, FFI-06), returns are [Int type index, value] (FFI-14,
 * FFI-15), kFreeHandle has one argument (FFI-18), and a kException is
 * `i32 1 | i32 8 | str` with the error's message alone (FFI-19).
 *
 * Handles sent to the client are the object pointers; the loop keeps one
 * reference per handle it sent until kFreeHandle or the end of the loop,
 * and refuses (kException) a handle it never sent, where the real runtime
 * would dereference it.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_runtime.h"

#define RPC_VERSION       "0.8.0"
/* Largest packet N accepted; the real runtime has no limit. */
#define RPC_MAX_PACKET    (256u << 20)
/* Longest client version string quoted in the mismatch message. */
#define RPC_VERSION_QUOTE 64

/* RPCCode (spec §5.2). */
enum rpc_code {
	RPC_SHUTDOWN = 1,
	RPC_INIT_SERVER = 2,
	RPC_CALL_FUNC = 3,
	RPC_RETURN = 4,
	RPC_EXCEPTION = 5,
	RPC_COPY_FROM_REMOTE = 6,
	RPC_COPY_TO_REMOTE = 7,
	RPC_COPY_ACK = 8,
	RPC_GET_GLOBAL_FUNC = 9,
	RPC_FREE_HANDLE = 10,
	RPC_SYSCALL_LAST = 20,
};

/* What None and an opaque handle are on the wire, in either dialect. */
#ifdef FAKE_TVM_FFI
#define WIRE_NONE   kTVMFFINone
#define WIRE_OPAQUE kTVMFFIOpaquePtr
#else
#define WIRE_NONE   kTVMNullptr
#define WIRE_OPAQUE kTVMOpaqueHandle
#endif

/* The state of one rpc.ServerLoop call. */
struct rpc_server {
	int fd;             /* the caller's socket; closed at the end */
	bool inited;        /* kInitServer succeeded */
	unsigned char *pkt; /* the packet being handled: code + body */
	size_t pkt_cap;
	unsigned char *out; /* the reply being built */
	size_t out_len;
	size_t out_cap;
	bool out_oom;              /* a write to out failed; checked at send */
	struct fake_obj **handles; /* one reference per handle sent */
	size_t nhandles;
	size_t cap_handles;
};

/* A reader over the bytes of one packet; bad is sticky. */
struct rpc_rd {
	const unsigned char *p;
	size_t left;
	bool bad;
};

/* A decoded PackedSeq (spec §5.3), ready to pass to a function. */
struct rpc_seq {
	int n;
	TVMValue *v;
	int *codes;
	TVMByteArray *bytes; /* kTVMBytes payloads, pointing into the packet */
	char *strs;          /* NUL-terminated copies of the kTVMStr values */
	int bad_handle;      /* 1 + index of an unknown object handle, or 0 */
	bool tensor;         /* a DLTensor argument was present */
};

static void
rpc_put32(unsigned char *b, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static void
rpc_put64(unsigned char *b, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
rpc_get(const unsigned char *b, int n)
{
	uint64_t v = 0;
	int i;

	for (i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* The next @n bytes of @r, or NULL (and r->bad) when fewer are left. */
static const unsigned char *
rd_take(struct rpc_rd *r, uint64_t n)
{
	const unsigned char *p = r->p;

	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= (size_t)n;
	return p;
}

static uint32_t
rd_u32(struct rpc_rd *r)
{
	const unsigned char *p = rd_take(r, 4);

	return p != NULL ? (uint32_t)rpc_get(p, 4) : 0;
}

static uint64_t
rd_u64(struct rpc_rd *r)
{
	const unsigned char *p = rd_take(r, 8);

	return p != NULL ? rpc_get(p, 8) : 0;
}

/*
 * Receive up to @n bytes, stopping early only at end of stream.  Returns
 * the count received (< @n at EOF), or -1 with the socket error recorded.
 * Retries after EINTR; an O_NONBLOCK socket fails at once with EAGAIN, as
 * the real loop does (spec §6).
 */
static ssize_t
rpc_recv_all(int fd, unsigned char *buf, size_t n)
{
	size_t got = 0;
	ssize_t k;

	while (got < n) {
		k = recv(fd, buf + got, n - got, 0);
		if (k > 0) {
			got += (size_t)k;
			continue;
		}
		if (k == 0)
			break;
		if (errno == EINTR)
			continue;
		return fake_error(
		    "Socket SockChannel::Recv Error:%s", strerror(errno));
	}
	return (ssize_t)got;
}

/*
 * Send all @n bytes with flags 0: a vanished peer raises SIGPIPE unless
 * the process ignores it (spec §6).  Returns 0 or -1 (error recorded).
 */
static int
rpc_send_all(int fd, const unsigned char *buf, size_t n)
{
	ssize_t k;

	while (n > 0) {
		k = send(fd, buf, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return fake_error("Socket SockChannel::Send Error:%s",
			    strerror(errno));
		buf += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- handles sent to the client ------------------------------------ */

/* Keep @o (takes over the caller's reference).  Returns 0 or -1. */
static int
srv_hold(struct rpc_server *s, struct fake_obj *o)
{
	if (fake_grow(&s->handles, s->nhandles, &s->cap_handles,
		sizeof(*s->handles)) < 0) {
		fake_obj_unref(o);
		return -1;
	}
	s->handles[s->nhandles++] = o;
	return 0;
}

/* The object behind handle @h if it was sent and not freed, else NULL. */
static struct fake_obj *
srv_lookup(const struct rpc_server *s, uint64_t h)
{
	size_t i;

	for (i = 0; i < s->nhandles; i++)
		if ((uintptr_t)s->handles[i] == h)
			return s->handles[i];
	return NULL;
}

/* Drop one reference held for handle @h; false when there is none. */
static bool
srv_release(struct rpc_server *s, uint64_t h)
{
	size_t i;

	for (i = 0; i < s->nhandles; i++) {
		if ((uintptr_t)s->handles[i] != h)
			continue;
		fake_obj_unref(s->handles[i]);
		s->handles[i] = s->handles[--s->nhandles];
		return true;
	}
	return false;
}

/* ---- building a reply ---------------------------------------------- */

static void
out_mem(struct rpc_server *s, const void *p, size_t n)
{
	unsigned char *nb;
	size_t ncap;

	if (s->out_oom)
		return;
	if (s->out_cap - s->out_len < n) {
		ncap = s->out_cap ? s->out_cap : 256;
		while (ncap - s->out_len < n && ncap <= SIZE_MAX / 2)
			ncap *= 2;
		nb = ncap - s->out_len >= n ? realloc(s->out, ncap) : NULL;
		if (nb == NULL) {
			s->out_oom = true;
			return;
		}
		s->out = nb;
		s->out_cap = ncap;
	}
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

static void
out_u32(struct rpc_server *s, uint32_t v)
{
	unsigned char b[4];

	rpc_put32(b, v);
	out_mem(s, b, sizeof(b));
}

static void
out_u64(struct rpc_server *s, uint64_t v)
{
	unsigned char b[8];

	rpc_put64(b, v);
	out_mem(s, b, sizeof(b));
}

/* Start a packet of @code; N is written by out_send(). */
static void
out_begin(struct rpc_server *s, int32_t code)
{
	s->out_len = 0;
	s->out_oom = false;
	out_u64(s, 0);
	out_u32(s, (uint32_t)code);
}

/* Finish the packet (write N) and send it.  Returns 0 or -1. */
static int
out_send(struct rpc_server *s)
{
	if (s->out_oom)
		return fake_error("out of memory");
	rpc_put64(s->out, s->out_len - 8);
	return rpc_send_all(s->fd, s->out, s->out_len);
}

/* kException carrying @msg (spec §5.5; may be the error slot). */
static int
srv_exception(struct rpc_server *s, const char *msg)
{
	size_t len = strlen(msg);

	out_begin(s, RPC_EXCEPTION);
	out_u32(s, 1);
#ifdef FAKE_TVM_FFI
	/* tvm-ffi's what(): the message without its kind (§2.5). */
	msg = fake_error_message(msg, &len);
	len = strlen(msg);
	out_u32(s, kTVMFFIRawStr);
#else
	out_u32(s, kTVMStr);
#endif
	out_u64(s, len);
	out_mem(s, msg, len);
	return out_send(s);
}

/* kException with the calling thread's error text. */
static int
srv_exception_last(struct rpc_server *s)
{
	return srv_exception(s, fake_error_text());
}

/* kReturn of one null: the reply to kInitServer and void syscalls. */
static int
srv_return_void(struct rpc_server *s)
{
	out_begin(s, RPC_RETURN);
	out_u32(s, 1);
	out_u32(s, WIRE_NONE);
	return out_send(s);
}

/*
 * Begin a kReturn of two values: the int @first, then a value of wire
 * type @wire whose payload the caller writes next.  v0.14 lays out a
 * PackedSeq as every type code, then the values (spec §5.3); tvm-ffi puts
 * a type index before each value (§2.1).
 */
static void
out_return_pair(struct rpc_server *s, uint64_t first, uint32_t wire)
{
	out_begin(s, RPC_RETURN);
	out_u32(s, 2);
#ifdef FAKE_TVM_FFI
	out_u32(s, kTVMFFIInt);
	out_u64(s, first);
	out_u32(s, wire);
#else
	out_u32(s, kDLInt);
	out_u32(s, wire);
	out_u64(s, first);
#endif
}

/*
 * kReturn of a call's result: [int T, value].  In v0.14's LocalSession
 * encoding (spec §5.3) T is the value's type code.  In the tvm-ffi
 * dialect (§2.3) T is the result's type index: a str is stored as a
 * small string (11) up to 7 bytes and a String (65) beyond, and travels
 * as a RawStr (8); bytes likewise (12, 66; ByteArrayPtr 9).  A module or
 * function is sent as an opaque handle that the loop now holds (it takes
 * @ret's reference).  Returns 0 or -1.
 */
static int
srv_return_value(struct rpc_server *s, struct fake_ret *ret)
{
	int t = ret->code;
	uint64_t bits;
	size_t len;

	memcpy(&bits, &ret->v, sizeof(bits));
	switch (t) {
	case kTVMModuleHandle:
	case kTVMPackedFuncHandle:
#ifdef FAKE_TVM_FFI
		out_return_pair(s,
		    t == kTVMModuleHandle ? kTVMFFIModule : kTVMFFIFunction,
		    WIRE_OPAQUE);
#else
		out_return_pair(s, (uint64_t)t, WIRE_OPAQUE);
#endif
		out_u64(s, (uintptr_t)ret->v.v_handle);
		ret->code = kTVMNullptr; /* the reference moves to s */
		if (srv_hold(s, ret->v.v_handle) < 0)
			return -1;
		break;
	case kTVMStr:
	case kTVMBytes:
		len = t == kTVMStr ? strlen(ret->buf) : ret->bytes.size;
#ifdef FAKE_TVM_FFI
		if (t == kTVMStr)
			out_return_pair(s,
			    len < 8 ? kTVMFFISmallStr : kTVMFFIStr,
			    kTVMFFIRawStr);
		else
			out_return_pair(s,
			    len < 8 ? kTVMFFISmallBytes : kTVMFFIBytes,
			    kTVMFFIByteArrayPtr);
#else
		out_return_pair(s, (uint64_t)t, (uint32_t)t);
#endif
		out_u64(s, len);
		out_mem(s, ret->buf, len);
		break;
	case kTVMNullptr:
#ifdef FAKE_TVM_FFI
		out_return_pair(s, kTVMFFINone, WIRE_NONE);
#else
		out_return_pair(s, (uint64_t)t, WIRE_NONE);
#endif
		break;
#ifdef FAKE_TVM_FFI
	case kDLFloat:
		out_return_pair(s, kTVMFFIFloat, kTVMFFIFloat);
		out_u64(s, bits);
		break;
	case kDLInt:
	case kDLUInt:
		out_return_pair(s, kTVMFFIInt, kTVMFFIInt);
		out_u64(s, (uint64_t)ret->v.v_int64);
		break;
	default:
		return fake_error("returning type code %d is not supported by "
				  "the npufarm fake runtime's tvm-ffi flavour",
		    t);
#else
	case kTVMDataType:
		out_return_pair(s, (uint64_t)t, kTVMDataType);
		out_u32(s, ret->v.v_type.code |
			       (uint32_t)ret->v.v_type.bits << 8 |
			       (uint32_t)ret->v.v_type.lanes << 16);
		out_u32(s, 0);
		break;
	case kDLDevice:
		out_return_pair(s, (uint64_t)t, kDLDevice);
		out_u32(s, (uint32_t)ret->v.v_device.device_type);
		out_u32(s, (uint32_t)ret->v.v_device.device_id);
		break;
	default: /* int, uint, float, opaque handle: 8 bytes */
		out_return_pair(s, (uint64_t)t, (uint32_t)t);
		out_u64(s, bits);
		break;
#endif
	}
	return out_send(s);
}

/* ---- decoding arguments -------------------------------------------- */

static void
seq_free(struct rpc_seq *q)
{
	free(q->v);
	free(q->codes);
	free(q->bytes);
	free(q->strs);
}

/* Skip a DLTensor value (spec §5.3); it is not passed on. */
static void
seq_skip_tensor(struct rpc_rd *rd)
{
	uint32_t ndim;

	(void)rd_take(rd, 8 + 8); /* data, device */
	ndim = rd_u32(rd);
	(void)rd_take(rd, 4);                      /* dtype */
	(void)rd_take(rd, 8 * (uint64_t)ndim + 8); /* shape, byte_offset */
}

/*
 * Start decoding a PackedSeq: its count n from @rd, and @q's arrays for
 * n values, zeroed (q->strs too, with @strs: room for every string left
 * in @rd with its NUL).  Returns 0, or -1 for a count @rd cannot hold.
 */
static int
seq_alloc(struct rpc_rd *rd, struct rpc_seq *q, bool strs)
{
	int32_t n;

	memset(q, 0, sizeof(*q));
	n = (int32_t)rd_u32(rd);
	if (rd->bad || n < 0 || (size_t)n > rd->left / 4)
		return fake_error("malformed packet: %d arguments", (int)n);
	q->n = n;
	q->v = calloc((size_t)n + 1, sizeof(*q->v));
	q->codes = calloc((size_t)n + 1, sizeof(*q->codes));
	q->bytes = calloc((size_t)n + 1, sizeof(*q->bytes));
	if (strs)
		q->strs = malloc(rd->left + (size_t)n + 1);
	if (q->v == NULL || q->codes == NULL || q->bytes == NULL ||
	    (strs && q->strs == NULL))
		return fake_error("out of memory");
	return 0;
}

/* Argument @i, a value of internal type @code in the 8 bytes at @p. */
static void
seq_set8(struct rpc_seq *q, int i, int32_t code, const unsigned char *p)
{
	uint64_t h;

	q->codes[i] = code;
	switch (code) {
	case kTVMOpaqueHandle:
		q->v[i].v_handle = (void *)(uintptr_t)rpc_get(p, 8);
		break;
	case kTVMDataType:
		q->v[i].v_type.code = p[0];
		q->v[i].v_type.bits = p[1];
		q->v[i].v_type.lanes = (uint16_t)rpc_get(p + 2, 2);
		break;
	case kDLDevice:
		q->v[i].v_device.device_type = (int32_t)rpc_get(p, 4);
		q->v[i].v_device.device_id = (int32_t)rpc_get(p + 4, 4);
		break;
	default: /* int, uint, float: the 8 bytes as they are */
		h = rpc_get(p, 8);
		memcpy(&q->v[i], &h, sizeof(h));
		break;
	}
}

/* Read a str or bytes value (u64 len, bytes) of argument @i into @q. */
static void
seq_take_str(
    struct rpc_rd *rd, struct rpc_seq *q, int i, bool bytes, size_t *used)
{
	const unsigned char *p;
	uint64_t len;

	len = rd_u64(rd);
	p = rd_take(rd, len);
	if (p == NULL)
		return;
	if (bytes) {
		q->codes[i] = kTVMBytes;
		q->bytes[i].data = (const char *)p;
		q->bytes[i].size = (size_t)len;
		q->v[i].v_handle = &q->bytes[i];
		return;
	}
	q->codes[i] = kTVMStr;
	memcpy(q->strs + *used, p, (size_t)len);
	q->strs[*used + len] = '\0';
	q->v[i].v_str = q->strs + *used;
	*used += (size_t)len + 1;
}

/*
 * Decode a PackedSeq from @rd into @q (released with seq_free() whatever
 * the result).  Module and function handles are resolved against the
 * handles sent; an unknown one is noted in q->bad_handle, not fatal.
 * Returns 0, or -1 for bytes that are not a PackedSeq or a type code the
 * endpoint cannot decode (8, 13, 14, unknown): fatal, as in the real one.
 */
#ifdef FAKE_TVM_FFI

/*
 * Decode a tvm-ffi PackedSeq (§2.1-§2.2: i32 n, then an i32 type index
 * before each value) from @rd into @q, as internal type codes, released
 * with seq_free() whatever the result.  Module (73) and Function (68)
 * handles are resolved against the handles sent (an unknown one is noted
 * in q->bad_handle); object forms (11, 12, >= 64) carry a second index,
 * of which only Str (65) and Bytes (66) are taken.  Returns 0, or -1 for
 * bytes that are not a PackedSeq or an index the endpoint cannot decode.
 */
static int
seq_decode(const struct rpc_server *s, struct rpc_rd *rd, struct rpc_seq *q)
{
	const unsigned char *p;
	uint32_t inner;
	size_t used = 0;
	uint64_t h;
	int32_t t;
	int i;

	if (seq_alloc(rd, q, true) < 0)
		return -1;
	for (i = 0; i < q->n && !rd->bad; i++) {
		t = (int32_t)rd_u32(rd);
		switch (t) {
		case kTVMFFINone:
			q->codes[i] = kTVMNullptr;
			break;
		case kTVMFFIInt:
		case kTVMFFIBool:
		case kTVMFFIFloat:
		case kTVMFFIOpaquePtr:
		case kTVMFFIDataType:
		case kTVMFFIDevice:
			p = rd_take(rd, 8);
			if (p == NULL)
				break;
			seq_set8(q, i,
			    t == kTVMFFIFloat       ? kDLFloat
			    : t == kTVMFFIOpaquePtr ? kTVMOpaqueHandle
			    : t == kTVMFFIDataType  ? kTVMDataType
			    : t == kTVMFFIDevice    ? kDLDevice
						    : kDLInt,
			    p);
			break;
		case kTVMFFIDLTensorPtr:
			seq_skip_tensor(rd);
			q->codes[i] = kTVMDLTensorHandle;
			q->tensor = true;
			break;
		case kTVMFFIRawStr:
		case kTVMFFIByteArrayPtr:
			seq_take_str(rd, q, i, t == kTVMFFIByteArrayPtr, &used);
			break;
		case kTVMFFIModule:
		case kTVMFFIFunction:
			h = rd_u64(rd);
			q->codes[i] = t == kTVMFFIModule ? kTVMModuleHandle
							 : kTVMPackedFuncHandle;
			q->v[i].v_handle = srv_lookup(s, h);
			if (q->v[i].v_handle == NULL && q->bad_handle == 0)
				q->bad_handle = i + 1;
			break;
		case kTVMFFISmallStr:
		case kTVMFFISmallBytes:
		case kTVMFFIStr:
		case kTVMFFIBytes:
			inner = rd_u32(rd);
			if (inner != kTVMFFIStr && inner != kTVMFFIBytes)
				return fake_error(
				    "RPCError: argument %d: object "
				    "type index %u is not "
				    "supported by the npufarm "
				    "fake runtime",
				    i, (unsigned)inner);
			seq_take_str(rd, q, i, inner == kTVMFFIBytes, &used);
			break;
		default:
			return fake_error("RPCError: unknown type index %d in "
					  "argument %d",
			    (int)t, i);
		}
	}
	if (rd->bad)
		return fake_error("malformed packet: arguments overrun it");
	return 0;
}
#else
static int
seq_decode(const struct rpc_server *s, struct rpc_rd *rd, struct rpc_seq *q)
{
	const unsigned char *p;
	size_t used = 0;
	uint64_t h;
	int32_t n;
	int i;

	if (seq_alloc(rd, q, false) < 0)
		return -1;
	n = q->n;
	for (i = 0; i < n; i++) {
		q->codes[i] = (int32_t)rd_u32(rd);
		if (q->codes[i] == kTVMStr && q->strs == NULL) {
			/* Room for every string left in rd, with its NUL. */
			q->strs = malloc(rd->left + (size_t)n);
			if (q->strs == NULL)
				return fake_error("out of memory");
		}
	}
	for (i = 0; i < n && !rd->bad; i++) {
		switch (q->codes[i]) {
		case kDLInt:
		case kDLUInt:
		case kDLFloat:
		case kTVMOpaqueHandle:
		case kTVMDataType:
		case kDLDevice:
			p = rd_take(rd, 8);
			if (p == NULL)
				break;
			seq_set8(q, i, q->codes[i], p);
			break;
		case kTVMNullptr:
			q->v[i].v_handle = NULL;
			break;
		case kTVMDLTensorHandle:
			seq_skip_tensor(rd);
			q->tensor = true;
			break;
		case kTVMModuleHandle:
		case kTVMPackedFuncHandle:
			h = rd_u64(rd);
			q->v[i].v_handle = srv_lookup(s, h);
			if (q->v[i].v_handle == NULL && q->bad_handle == 0)
				q->bad_handle = i + 1;
			break;
		case kTVMStr:
		case kTVMBytes:
			seq_take_str(rd, q, i, q->codes[i] == kTVMBytes, &used);
			break;
		default:
			return fake_error("RPCError: unknown type code %d in "
					  "argument %d",
			    q->codes[i], i);
		}
	}
	if (rd->bad)
		return fake_error("malformed packet: arguments overrun it");
	return 0;
}
#endif

/* Whether handling consumed the packet exactly (spec §5.1). */
static int
rd_check_end(const struct rpc_rd *rd)
{
	if (rd->bad || rd->left != 0)
		return fake_error(
		    "malformed packet: %zu bytes left over", rd->left);
	return 0;
}

/* ---- packet handlers: 0 to go on, 1 to end cleanly, -1 fatal ------- */

static int
srv_init_server(struct rpc_server *s, struct rpc_rd *rd)
{
	const unsigned char *ver;
	struct rpc_seq q;
	uint64_t vlen;
	int r = -1;

	vlen = rd_u64(rd);
	ver = rd_take(rd, vlen);
	if (seq_decode(s, rd, &q) < 0 || rd_check_end(rd) < 0)
		goto out;
	if (s->inited) {
		fake_error("Server has already been initialized");
	} else if (vlen != strlen(RPC_VERSION) ||
		   memcmp(ver, RPC_VERSION, strlen(RPC_VERSION)) != 0) {
		fake_error("Client protocol version mismatch with the server "
			   "server protocol=" RPC_VERSION
			   ", client protocol=%.*s",
		    (int)(vlen < RPC_VERSION_QUOTE ? vlen : RPC_VERSION_QUOTE),
		    (const char *)ver);
	} else if (q.n > 0) {
		fake_error("session constructor %s is not supported by the "
			   "npufarm fake runtime",
		    q.codes[0] == kTVMStr ? q.v[0].v_str : "(not a string)");
	} else {
		s->inited = true;
		r = srv_return_void(s);
		goto out;
	}
	r = srv_exception_last(s);
out:
	seq_free(&q);
	return r;
}

static int
srv_call_func(struct rpc_server *s, struct rpc_rd *rd)
{
	struct fake_obj *fn;
	struct fake_ret ret;
	struct rpc_seq q;
	uint64_t h;
	int r = -1;

	h = rd_u64(rd);
	if (seq_decode(s, rd, &q) < 0 || rd_check_end(rd) < 0)
		goto out;
	fn = fake_obj_check(srv_lookup(s, h), FAKE_FUNC);
	if (fn == NULL) {
		fake_error(
		    "invalid function handle 0x%llx", (unsigned long long)h);
		r = srv_exception_last(s);
	} else if (q.bad_handle > 0) {
		fake_error("argument %d: invalid handle", q.bad_handle - 1);
		r = srv_exception_last(s);
	} else if (q.tensor) {
		fake_error("DLTensor arguments are not supported by the "
			   "npufarm fake runtime");
		r = srv_exception_last(s);
	} else if (fake_call(fn, q.v, q.codes, q.n, &ret) < 0) {
		r = srv_exception_last(s);
	} else {
		r = srv_return_value(s, &ret);
		fake_ret_clear(&ret);
	}
out:
	seq_free(&q);
	return r;
}

static int
srv_get_global_func(struct rpc_server *s, struct rpc_rd *rd)
{
	struct fake_obj *o = NULL;
	struct rpc_seq q;
	int r = -1;

	if (seq_decode(s, rd, &q) < 0 || rd_check_end(rd) < 0)
		goto out;
	if (q.n != 1 || q.codes[0] != kTVMStr) {
		fake_error("TypeError: kGetGlobalFunc expects one string");
		r = srv_exception_last(s);
		goto out;
	}
	o = fake_global(q.v[0].v_str);
	if (o != NULL && srv_hold(s, o) < 0)
		goto out;
	out_begin(s, RPC_RETURN);
	out_u32(s, 1);
	out_u32(s, WIRE_OPAQUE);
	out_u64(s, (uintptr_t)o);
	r = out_send(s);
out:
	seq_free(&q);
	return r;
}

static int
srv_free_handle(struct rpc_server *s, struct rpc_rd *rd)
{
	struct rpc_seq q;
	uint64_t h = 0;
	int r = -1;

	if (seq_decode(s, rd, &q) < 0 || rd_check_end(rd) < 0)
		goto out;
#ifdef FAKE_TVM_FFI
	/* One OpaquePtr (FFI-18); v0.14 sent [handle, type code]. */
	if (q.n != 1 || q.codes[0] != kTVMOpaqueHandle) {
		fake_error("TypeError: kFreeHandle expects (OpaquePtr)");
#else
	if (q.n != 2 || q.codes[1] != kDLInt ||
	    (q.codes[0] != kTVMOpaqueHandle && q.codes[0] != kTVMModuleHandle &&
		q.codes[0] != kTVMPackedFuncHandle) ||
	    q.bad_handle > 0) {
		fake_error("TypeError: kFreeHandle expects (handle, int)");
#endif
		r = srv_exception_last(s);
		goto out;
	}
	h = (uintptr_t)q.v[0].v_handle;
	if (h != 0 && !srv_release(s, h)) {
		fake_error("kFreeHandle: invalid handle 0x%llx",
		    (unsigned long long)h);
		r = srv_exception_last(s);
		goto out;
	}
	r = srv_return_void(s);
out:
	seq_free(&q);
	return r;
}

/* Handle one packet of @code with @len body bytes. */
static int
srv_packet(
    struct rpc_server *s, int32_t code, const unsigned char *body, size_t len)
{
	struct rpc_rd rd = {.p = body, .left = len, .bad = false};

	switch (code) {
	case RPC_SHUTDOWN:
		return rd_check_end(&rd) < 0 ? -1 : 1;
	case RPC_INIT_SERVER:
		return srv_init_server(s, &rd);
	case RPC_RETURN:
	case RPC_EXCEPTION:
	case RPC_COPY_ACK:
		return fake_error("rpc.ServerLoop: a reply (code %d) came "
				  "from the client",
		    (int)code);
	default:
		break;
	}
	if (code != RPC_CALL_FUNC && code != RPC_COPY_FROM_REMOTE &&
	    code != RPC_COPY_TO_REMOTE &&
	    (code < RPC_GET_GLOBAL_FUNC || code > RPC_SYSCALL_LAST))
		return fake_error("Unknown event %d", (int)code);
	if (!s->inited) {
		fake_error("Need to call InitRemoteSession first before any "
			   "further actions");
		return srv_exception_last(s);
	}
	if (code == RPC_CALL_FUNC)
		return srv_call_func(s, &rd);
	if (code == RPC_GET_GLOBAL_FUNC)
		return srv_get_global_func(s, &rd);
	if (code == RPC_FREE_HANDLE)
		return srv_free_handle(s, &rd);
	fake_error("RPC code %d is not supported by the npufarm fake runtime",
	    (int)code);
	return srv_exception_last(s);
}

/*
 * Serve packets until the session ends.  Returns 1 for a clean end
 * (kShutdown, or EOF with no byte of a packet past its 8-byte length
 * field, which TVM's endpoint treats alike), or -1 (error recorded).
 */
static int
srv_serve(struct rpc_server *s)
{
	unsigned char h[8], *np;
	uint64_t n;
	ssize_t got;
	int r;

	for (;;) {
		got = rpc_recv_all(s->fd, h, sizeof(h));
		if (got < 0)
			return -1;
		if ((size_t)got < sizeof(h))
			return 1;
		n = rpc_get(h, 8);
		if (n == 0)
			continue;
		if (n < 4)
			return fake_error(
			    "malformed packet: length %u", (unsigned)n);
		if (n > RPC_MAX_PACKET)
			return fake_error("packet of %llu bytes is over the "
					  "npufarm fake runtime's limit",
			    (unsigned long long)n);
		if (n > s->pkt_cap) {
			np = realloc(s->pkt, (size_t)n);
			if (np == NULL)
				return fake_error("out of memory");
			s->pkt = np;
			s->pkt_cap = (size_t)n;
		}
		got = rpc_recv_all(s->fd, s->pkt, (size_t)n);
		if (got < 0)
			return -1;
		if ((uint64_t)got < n)
			return fake_error(
			    "Channel closes before we get needed bytes");
		r = srv_packet(
		    s, (int32_t)rpc_get(s->pkt, 4), s->pkt + 4, (size_t)n - 4);
		if (r != 0)
			return r;
	}
}

/*
 * Call the global function @name with no arguments if it is registered
 * (the start and shutdown hooks).  Returns 0 or -1 with its error.
 */
static int
srv_hook(const char *name)
{
	struct fake_obj *f = fake_global(name);
	struct fake_ret ret;
	int r;

	if (f == NULL)
		return 0;
	r = fake_call(f, NULL, NULL, 0, &ret);
	fake_ret_clear(&ret);
	fake_obj_unref(f);
	return r;
}

/*
 * rpc.ServerLoop(int fd): serve one RPC session on the connected, blocking
 * socket @fd, which it closes before returning in every case.  Calls
 * tvm.rpc.server.start first and tvm.rpc.server.shutdown after a clean
 * end, when they are registered.  Returns 0 (result None) after kShutdown
 * or EOF at a packet boundary; -1 with the reason otherwise, after trying
 * to send the peer a kShutdown packet.  Never exits the process.
 */
int
fake_rpc_server_loop(
    TVMValue *args, int *codes, int n, TVMRetValueHandle ret, void *resource)
{
	static const unsigned char shutdown_pkt[12] = {
	    4, 0, 0, 0, 0, 0, 0, 0, RPC_SHUTDOWN, 0, 0, 0};
	struct rpc_server s;
	size_t i;
	int r;

	if (n < 1 || (codes[0] != kDLInt && n < 2))
		return fake_error("not enough argument passed");
	if (codes[0] != kDLInt)
		return fake_error("the callback variant of rpc.ServerLoop is "
				  "not supported by the npufarm fake runtime");
	if (args[0].v_int64 < 0 || args[0].v_int64 > INT_MAX)
		return fake_error("rpc.ServerLoop: %lld is not a descriptor",
		    (long long)args[0].v_int64);
	memset(&s, 0, sizeof(s));
	s.fd = (int)args[0].v_int64;
	r = srv_hook("tvm.rpc.server.start");
	if (r == 0)
		r = srv_serve(&s);
	if (r > 0)
		r = srv_hook("tvm.rpc.server.shutdown");
	if (r < 0) /* best effort, and the error text stays as it is */
		(void)send(s.fd, shutdown_pkt, sizeof(shutdown_pkt), 0);
	(void)close(s.fd);
	for (i = 0; i < s.nhandles; i++)
		fake_obj_unref(s.handles[i]);
	free(s.handles);
	free(s.pkt);
	free(s.out);
	return r < 0 ? -1 : 0;
}
