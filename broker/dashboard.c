/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dashboard: one self-contained HTML page, compiled into the broker
 * from broker/dashboard.html by dashboard_embed.py, served at GET /.  The
 * page itself reads the JSON API; this file only hands it out, with a
 * strong ETag (so browsers revalidate cheaply and pick up a new broker's
 * page at once) and a Content-Security-Policy that allows nothing but the
 * page's own inline style and script and fetches from this origin.
 */
#include "config.h"

#include "dashboard.h"

#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "dashboard-asset.h"

/*
 * Whether the If-None-Match list @inm names our ETag or is "*".  Weak
 * comparison (RFC 9110 13.1.2): W/"x" matches too, and since our tag is
 * quoted hex, finding it quoted anywhere in the list is exact.
 */
static int
etag_matches(const char *inm)
{
	return strcmp(inm, "*") == 0 || strstr(inm, dashboard_etag) != NULL;
}

static void
add_headers(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "ETag", dashboard_etag);
	/* Revalidate every time: the ETag makes that a 304. */
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_add_header(h, "Content-Security-Policy", dashboard_csp);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
}

/*
 * Serve the dashboard if @path is "/": 200 with the page, 304 when the
 * client's If-None-Match already holds it, 405 (with Allow) for methods
 * other than GET.  Returns 1 when it answered @req, 0 when @path is not
 * the dashboard's.  Runs on the broker loop; never logs.
 */
int
dashboard_route(struct evhttp_request *req, const char *path)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *inm;

	if (strcmp(path, "/") != 0)
		return 0;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(h, "Allow", "GET");
		evhttp_add_header(h, "Content-Type", "application/json");
		evbuffer_add_printf(evhttp_request_get_output_buffer(req),
		    "{\"error\":\"the dashboard takes GET\"}\n");
		evhttp_send_reply(req, 405, "Method Not Allowed", NULL);
		return 1;
	}
	add_headers(req);
	inm = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "If-None-Match");
	if (inm != NULL && etag_matches(inm)) {
		evhttp_send_reply(req, 304, "Not Modified", NULL);
		return 1;
	}
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	evbuffer_add_reference(evhttp_request_get_output_buffer(req),
	    dashboard_html, sizeof(dashboard_html), NULL, NULL);
	evhttp_send_reply(req, 200, "OK", NULL);
	return 1;
}
