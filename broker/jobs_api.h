/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP routes of native jobs and artifacts (docs/api.md). */
#pragma once

struct evhttp_request;
struct server;

#include <stdbool.h>
#include <stddef.h>

int jobs_api_route(struct server *srv, struct evhttp_request *req,
    const char *path, bool admin);
void jobs_api_nokey_warning(
    struct server *srv, const char *key, char *buf, size_t len);
