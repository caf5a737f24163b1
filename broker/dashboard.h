/* SPDX-License-Identifier: Apache-2.0 */
/* The dashboard page at GET / (broker/dashboard.html, embedded at build). */
#pragma once

struct evhttp_request;

int dashboard_route(struct evhttp_request *req, const char *path);
