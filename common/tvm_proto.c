/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM tracker codec.  Requests arrive as JSON arrays [code, args...]; we
 * accept what real peers send (the C++ server's string port, optional or
 * null custom_addr, any JSON number as priority) and reject everything else
 * with a message naming the element.  Replies are serialised like CPython's
 * json.dumps so TVM peers (and the spec's byte vectors) see identical bytes.
 */
#include "config.h"

#include "tvm_proto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "frame.h"
#include "json_util.h"

static int
get_string(json_t *v, const char *what, size_t max, bool nullable,
    const char **ret, struct npufarm_err *err)
{
	size_t len;

	if (v == NULL || json_is_null(v)) {
		if (nullable) {
			*ret = NULL;
			return 0;
		}
		return err_set(err, -EINVAL, "%s: missing", what);
	}
	if (!json_is_string(v))
		return err_set(err, -EINVAL, "%s: expected a string", what);
	len = json_string_length(v);
	if (len > max)
		return err_set(err, -ENAMETOOLONG,
		    "%s: %zu bytes long, limit is %zu", what, len, max);
	if (memchr(json_string_value(v), '\0', len) != NULL)
		return err_set(err, -EINVAL, "%s: contains a NUL byte", what);
	*ret = json_string_value(v);
	return 0;
}

/* A port as a JSON integer or, from the C++ server, a decimal string. */
static int
get_port(json_t *v, const char *what, long *ret, struct npufarm_err *err)
{
	json_int_t n;

	if (json_is_integer(v)) {
		n = json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;

		if (*s < '0' || *s > '9')
			return err_set(
			    err, -EINVAL, "%s: not a port number", what);
		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno != 0 || *end != '\0')
			return err_set(
			    err, -EINVAL, "%s: not a port number", what);
	} else {
		return err_set(
		    err, -EINVAL, "%s: expected a port number", what);
	}
	if (n < 0 || n > 65535)
		return err_set(err, -ERANGE, "%s: port %lld out of range", what,
		    (long long)n);
	*ret = (long)n;
	return 0;
}

static int
parse_put(json_t *root, size_t max_key, struct tvm_tracker_msg *m,
    struct npufarm_err *err)
{
	json_t *slot = json_array_get(root, 2);
	int r;

	r = get_string(
	    json_array_get(root, 1), "PUT key", max_key, false, &m->key, err);
	if (r < 0)
		return r;
	if (!json_is_array(slot) || json_array_size(slot) != 2)
		return err_set(
		    err, -EINVAL, "PUT: element 2 must be [port, matchkey]");
	r = get_port(json_array_get(slot, 0), "PUT port", &m->port, err);
	if (r < 0)
		return r;
	r = get_string(json_array_get(slot, 1), "PUT matchkey", max_key, false,
	    &m->matchkey, err);
	if (r < 0)
		return r;
	return get_string(json_array_get(root, 3), "PUT custom_addr", max_key,
	    true, &m->custom_addr, err);
}

static int
parse_request(json_t *root, size_t max_key, struct tvm_tracker_msg *m,
    struct npufarm_err *err)
{
	json_t *user = json_array_get(root, 2);
	json_t *prio = json_array_get(root, 3);
	int r;

	r = get_string(json_array_get(root, 1), "REQUEST key", max_key, false,
	    &m->key, err);
	if (r < 0)
		return r;
	/* TVM ignores the user; we use it for fair share when it is a string.
	 */
	if (json_is_string(user)) {
		r = get_string(
		    user, "REQUEST user", max_key, false, &m->user, err);
		if (r < 0)
			return r;
	} else {
		m->user = "";
	}
	if (prio == NULL)
		m->priority = 0;
	else if (json_is_number(prio))
		m->priority = json_number_value(prio);
	else
		return err_set(
		    err, -EINVAL, "REQUEST priority: expected a number");
	return 0;
}

static int
parse_update_info(json_t *root, size_t max_key, struct tvm_tracker_msg *m,
    struct npufarm_err *err)
{
	json_t *info = json_array_get(root, 1);
	json_t *addr;
	int r;

	if (!json_is_object(info))
		return err_set(
		    err, -EINVAL, "UPDATE_INFO: element 1 must be an object");
	addr = json_object_get(info, "addr");
	if (!json_is_array(addr) || json_array_size(addr) != 2)
		return err_set(
		    err, -EINVAL, "UPDATE_INFO addr: expected [host, port]");
	r = get_string(json_array_get(addr, 0), "UPDATE_INFO addr[0]", max_key,
	    true, &m->info_host, err);
	if (r < 0)
		return r;
	r = get_port(
	    json_array_get(addr, 1), "UPDATE_INFO addr[1]", &m->port, err);
	if (r < 0)
		return r;
	if (json_object_get(info, "key") != NULL) {
		r = get_string(json_object_get(info, "key"), "UPDATE_INFO key",
		    max_key, false, &m->info_key, err);
		if (r < 0)
			return r;
	}
	m->info = info;
	return 0;
}

/*
 * Decode a tracker request.  @root is borrowed and must outlive @ret_msg.
 * Returns 0, or -EINVAL/-ENAMETOOLONG/-ERANGE with the offending element in
 * @err, or -EPROTO for an unknown code.  Does not log.
 */
int
tvm_tracker_parse(json_t *root, size_t max_key, struct tvm_tracker_msg *ret_msg,
    struct npufarm_err *err)
{
	struct tvm_tracker_msg m = {0};
	json_t *code;
	int r = 0;

	if (!json_is_array(root) || json_array_size(root) == 0)
		return err_set(err, -EINVAL,
		    "tracker message must be a non-empty JSON array");
	code = json_array_get(root, 0);
	if (!json_is_integer(code))
		return err_set(err, -EINVAL,
		    "tracker message element 0 must be an integer code");
	if (json_integer_value(code) < 1 ||
	    json_integer_value(code) > NPUFARM_TVM_GET_PENDING_MATCHKEYS)
		return err_set(err, -EPROTO, "unknown tracker code %lld",
		    (long long)json_integer_value(code));
	m.code = (int)json_integer_value(code);
	switch (m.code) {
	case NPUFARM_TVM_PUT:
		r = parse_put(root, max_key, &m, err);
		break;
	case NPUFARM_TVM_REQUEST:
		r = parse_request(root, max_key, &m, err);
		break;
	case NPUFARM_TVM_UPDATE_INFO:
		r = parse_update_info(root, max_key, &m, err);
		break;
	case NPUFARM_TVM_STOP:
		r = get_string(json_array_get(root, 1), "STOP key", max_key,
		    false, &m.stop_key, err);
		break;
	default:
		break;
	}
	if (r < 0)
		return r;
	*ret_msg = m;
	return 0;
}

/*
 * Append @v as one frame, serialised like CPython's json.dumps.  Returns 0
 * or -ENOMEM.
 */
int
tvm_tracker_add_json(struct evbuffer *out, const json_t *v)
{
	char *s;
	int r;

	s = json_util_dumps_py(v);
	if (s == NULL)
		return -ENOMEM;
	r = frame_add(out, s, strlen(s));
	free(s);
	return r;
}

/* Append a bare status reply such as "0" (TRK-04) or "-1" (TRK-18). */
int
tvm_tracker_add_code(struct evbuffer *out, int code)
{
	char buf[16];
	int n;

	n = snprintf(buf, sizeof(buf), "%d", code);
	return frame_add(out, buf, (size_t)n);
}

/* Append a REQUEST grant: [0, [host, port, matchkey]] (TRK-10). */
int
tvm_tracker_add_grant(
    struct evbuffer *out, const char *host, long port, const char *matchkey)
{
	json_t *v;
	int r;

	v = json_pack(
	    "[i[sIs]]", NPUFARM_TVM_SUCCESS, host, (json_int_t)port, matchkey);
	if (v == NULL)
		return -ENOMEM;
	r = tvm_tracker_add_json(out, v);
	json_decref(v);
	return r;
}

/*
 * Append a failed REQUEST: [-1, message].  TVM clients raise the message
 * (client.py checks element 0 against SUCCESS).
 */
int
tvm_tracker_add_fail(struct evbuffer *out, const char *message)
{
	json_t *v;
	int r;

	v = json_pack("[is]", NPUFARM_TVM_FAIL, message);
	if (v == NULL)
		return -ENOMEM;
	r = tvm_tracker_add_json(out, v);
	json_decref(v);
	return r;
}
