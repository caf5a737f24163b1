/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP routes of native jobs and artifacts (docs/api.md). */
#pragma once

struct http_api;

int api_jobs_add(struct http_api *h);
