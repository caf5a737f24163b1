/* SPDX-License-Identifier: Apache-2.0 */
/* GET /metrics: the registry and the gauges computed at scrape time. */
#pragma once

struct http_api;

int api_metrics_add(struct http_api *h);
