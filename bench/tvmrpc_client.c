/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fake TVM client.  One struct tvmrpc_client is one RPC session: the
 * connection after a SUCCESS handshake, the hello it sent and the key the
 * other side answered with.  The tracker connection used for REQUEST is
 * closed as soon as the grant has arrived.
 */
#include "config.h"

#include "tvmrpc_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <npufarm/protocol.h>

#include "err.h"
#include "tvmpeer.h"

#define CLIENT_DEFAULT_TIMEOUT_MS 5000

struct tvmrpc_client {
	struct tvmrpc *conn;             /* owned */
	char *hello;                     /* owned: the key we sent */
	char remote_key[TVMRPC_MAX_KEY]; /* the key after SUCCESS */
};

static int
client_timeout(const struct tvmrpc_client_config *cfg)
{
	return cfg->io_timeout_ms > 0 ? cfg->io_timeout_ms
				      : CLIENT_DEFAULT_TIMEOUT_MS;
}

/*
 * REQUEST @cfg->key at @cfg->priority from @cfg->tracker, as
 * TrackerSession.request() does ([4, key, "", priority], TRK-09), and wait
 * up to @cfg->grant_timeout_ms for the grant, copied into *ret_grant.
 * Returns 0, TVMPEER_E_FAIL when the tracker answered [-1, message], or
 * -errno; the reason is in @err.
 */
int
tvmrpc_client_request(const struct tvmrpc_client_config *cfg,
    struct tvmpeer_grant *ret_grant, struct npufarm_err *err)
{
	struct tvmpeer *peer = NULL;
	int r;

	r = tvmpeer_connect(cfg->tracker, client_timeout(cfg), &peer, err);
	if (r < 0)
		return r;
	tvmpeer_set_split_writes(peer, cfg->split_writes);
	r = tvmpeer_request(peer, cfg->key, "", cfg->priority);
	if (r < 0) {
		err_set(err, r, "sending REQUEST: %s", strerror(-r));
		goto out;
	}
	r = tvmpeer_recv_grant(peer, cfg->grant_timeout_ms, ret_grant, err);
out:
	tvmpeer_free(peer);
	return r;
}

/*
 * Connect for one session: to @grant's host and port with the hello
 * "client:<matchkey>[ -timeout=T]", or, when @grant is NULL, to
 * @cfg->direct with "client:<key>[ -timeout=T]"; then require SUCCESS and
 * read the remote key.  On success the caller owns *ret_client.  Returns
 * 0; -ECONNREFUSED when another code came back (MISMATCH, DUPLICATE: the
 * code is in @err); -ECONNABORTED when the other end closed instead of
 * answering; or -errno.  The reason is in @err.
 */
int
tvmrpc_client_connect(const struct tvmrpc_client_config *cfg,
    const struct tvmpeer_grant *grant, struct tvmrpc_client **ret_client,
    struct npufarm_err *err)
{
	struct tvmrpc_client *cl;
	char addr[TVMPEER_MAX_STR + 16];
	const char *match = grant != NULL ? grant->matchkey : cfg->key;
	bool t = cfg->timeout != NULL && cfg->timeout[0] != '\0';
	int32_t code = 0;
	int r;

	if (grant != NULL)
		(void)snprintf(addr, sizeof(addr),
		    strchr(grant->host, ':') != NULL ? "[%s]:%ld" : "%s:%ld",
		    grant->host, grant->port);
	else if (cfg->direct != NULL)
		(void)snprintf(addr, sizeof(addr), "%s", cfg->direct);
	else
		return err_set(err, -EINVAL, "no grant and no direct address");
	cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	if (asprintf(&cl->hello, "client:%s%s%s", match, t ? " -timeout=" : "",
		t ? cfg->timeout : "") < 0) {
		cl->hello = NULL;
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r = tvmrpc_connect(
	    addr, client_timeout(cfg), cfg->rcvbuf, &cl->conn, err);
	if (r < 0)
		goto fail;
	if (cfg->split_writes)
		tvmrpc_set_nodelay(cl->conn, false);
	r = tvmrpc_send_hello(
	    cl->conn, cl->hello, cfg->split_hello || cfg->split_writes);
	if (r < 0) {
		err_set(err, r, "sending the hello: %s", strerror(-r));
		goto fail;
	}
	r = tvmrpc_recv_reply(cl->conn, client_timeout(cfg), &code,
	    cl->remote_key, sizeof(cl->remote_key));
	if (r != 0) {
		r = err_set(err, r > 0 ? -ECONNABORTED : r,
		    "waiting for the handshake reply from %s: %s", addr,
		    tvmrpc_strresult(r));
		goto fail;
	}
	if (code != NPUFARM_TVM_RPC_CODE_SUCCESS) {
		r = err_set(err, -ECONNREFUSED,
		    "%s answered 0x%08x instead of SUCCESS", addr,
		    (unsigned)code);
		goto fail;
	}
	*ret_client = cl;
	return 0;
fail:
	tvmrpc_client_free(cl);
	return r;
}

/*
 * tvmrpc_client_request() then tvmrpc_client_connect() with the grant (or
 * only the connect when @cfg->tracker is NULL).  Results as those.
 */
int
tvmrpc_client_open(const struct tvmrpc_client_config *cfg,
    struct tvmrpc_client **ret_client, struct npufarm_err *err)
{
	struct tvmpeer_grant grant;
	int r;

	if (cfg->tracker == NULL)
		return tvmrpc_client_connect(cfg, NULL, ret_client, err);
	r = tvmrpc_client_request(cfg, &grant, err);
	if (r != 0)
		return r > 0 ? -ECONNREFUSED : r;
	return tvmrpc_client_connect(cfg, &grant, ret_client, err);
}

/* Close the session without a kShutdown.  Accepts NULL; returns NULL. */
struct tvmrpc_client *
tvmrpc_client_free(struct tvmrpc_client *cl)
{
	if (cl == NULL)
		return NULL;
	tvmrpc_free(cl->conn);
	free(cl->hello);
	free(cl);
	return NULL;
}

/* The session's connection, borrowed until tvmrpc_client_free(). */
struct tvmrpc *
tvmrpc_client_conn(const struct tvmrpc_client *cl)
{
	return cl->conn;
}

/* The key this client sent in its hello, borrowed like the connection. */
const char *
tvmrpc_client_hello(const struct tvmrpc_client *cl)
{
	return cl->hello;
}

/* The key that followed SUCCESS ("server:<key>"), borrowed likewise. */
const char *
tvmrpc_client_remote_key(const struct tvmrpc_client *cl)
{
	return cl->remote_key;
}

/* Send @req without waiting for anything.  Results as tvmrpc_send(). */
int
tvmrpc_client_send(struct tvmrpc_client *cl, const struct tvmrpc_msg *req)
{
	return tvmrpc_send_msg(cl->conn, req);
}

/*
 * Send @req, then wait up to @timeout_ms (<0: forever) for one reply
 * packet into *ret_reply (borrowed until the next receive).  Returns 0 for
 * a kReturn or kCopyAck; TVMRPC_CLIENT_E_REMOTE for a kException, with
 * *ret_reply filled too and its text in @err; a receive result
 * (TVMRPC_E_EOF, TVMRPC_E_TRUNCATED, -ETIMEDOUT, -EMSGSIZE, ...); -EPROTO
 * for a packet that is not a reply; or a send error.  The reason is in
 * @err.
 */
int
tvmrpc_client_call(struct tvmrpc_client *cl, const struct tvmrpc_msg *req,
    int timeout_ms, struct tvmrpc_packet *ret_reply, struct npufarm_err *err)
{
	struct tvmrpc_packet p;
	const char *s;
	size_t len;
	int r;

	r = tvmrpc_send_msg(cl->conn, req);
	if (r < 0)
		return err_set(err, r, "sending a request: %s", strerror(-r));
	r = tvmrpc_recv_packet(cl->conn, timeout_ms, &p);
	if (r != 0)
		return err_set(
		    err, r, "waiting for the reply: %s", tvmrpc_strresult(r));
	if (!tvmrpc_code_is_reply(p.code))
		return err_set(err, -EPROTO, "got packet code %d, N=%llu",
		    p.code, (unsigned long long)p.len);
	*ret_reply = p;
	if (p.code != TVMRPC_EXCEPTION)
		return 0;
	if (tvmrpc_packet_string(&p, &s, &len) < 0)
		return err_set(err, TVMRPC_CLIENT_E_REMOTE,
		    "a malformed kException, N=%llu",
		    (unsigned long long)p.len);
	return err_set(err, TVMRPC_CLIENT_E_REMOTE, "kException: %.*s",
	    len > 120 ? 120 : (int)len, s);
}

/*
 * Start the session: kInitServer (EP-01), expecting exactly kReturn void
 * (EP-02).  Returns 0, -EBADMSG for another kReturn, or a result of
 * tvmrpc_client_call(); the reason is in @err.
 */
int
tvmrpc_client_init(
    struct tvmrpc_client *cl, int timeout_ms, struct npufarm_err *err)
{
	static const unsigned char void_body[8] = {1, 0, 0, 0, 4, 0, 0, 0};
	struct tvmrpc_packet p;
	struct tvmrpc_msg m;
	int r;

	tvmrpc_msg_init_server(&m);
	r = tvmrpc_client_call(cl, &m, timeout_ms, &p, err);
	if (r != 0)
		return r;
	if (p.code != TVMRPC_RETURN || p.body_len != sizeof(void_body) ||
	    memcmp(p.body, void_body, sizeof(void_body)) != 0)
		return err_set(err, -EBADMSG,
		    "kInitServer answered by code %d, N=%llu", p.code,
		    (unsigned long long)p.len);
	return 0;
}

/*
 * End the session as TVM's client does when the session object goes:
 * send kShutdown (EP-11); the caller then frees the client.  Results as
 * tvmrpc_send().
 */
int
tvmrpc_client_shutdown(struct tvmrpc_client *cl)
{
	struct tvmrpc_msg m;

	tvmrpc_msg_shutdown(&m);
	return tvmrpc_send_msg(cl->conn, &m);
}
