/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Board tags (issue 11): what an agent says about its board (--tag
 * rack=A) and what a job may require of the boards it runs on (submit
 * --tag).  Kept in one canonical text form, ";k1=v1;k2=v2;" with the keys
 * sorted, so that matching is a substring search and the form can be
 * compared and stored as it is.  Nothing here logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct npufarm_err;

#define TAGS_MAX       16  /* tags per board or job */
#define TAGS_KEY_MAX   64  /* bytes of a key */
#define TAGS_VALUE_MAX 128 /* bytes of a value */

int tags_canon(const json_t *obj, const char *path, char **ret_tags,
    struct npufarm_err *err);
bool tags_match(const char *have, const char *need);
json_t *tags_json(const char *tags);
