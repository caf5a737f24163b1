/* SPDX-License-Identifier: Apache-2.0 */
/* JSON helpers on top of jansson: bounded parsing and Python-style output. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct evbuffer;
struct npufarm_err;

/* Default nesting limit for peer-supplied JSON (arrays and objects). */
#define JSON_UTIL_MAX_DEPTH 32

int json_util_depth(const char *buf, size_t len, int max_depth);
int json_util_load(const char *buf, size_t len, int max_depth,
    json_t **ret_root, struct npufarm_err *err);
char *json_util_dumps_py(const json_t *v);
int json_util_add_frame(struct evbuffer *out, json_t *v);
json_t *json_util_time(int64_t us);
json_t *json_util_seconds(int64_t from_us, int64_t to_us);
json_t *json_util_str_or_null(const char *s);
json_t *json_util_number(double v);
