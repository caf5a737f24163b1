/* SPDX-License-Identifier: Apache-2.0 */
/* Board tags in canonical form (see tags.h). */
#include "config.h"

#include "tags.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static bool
tag_text_ok(const char *s, size_t max, bool is_key)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e ||
		    *s == ';' || (is_key && *s == '='))
			return false;
	return true;
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The object of strings @obj ({"rack": "A"}; NULL or {} for none) as
 * canonical tags in @ret_tags (to free; NULL for none).  Keys are 1..64
 * printable ASCII bytes without '=' or ';', values 1..128 without ';', at
 * most TAGS_MAX of them.  Returns 0, or -EINVAL/-E2BIG with @err starting
 * with @path, or -ENOMEM.
 */
int
tags_canon(const json_t *obj, const char *path, char **ret_tags,
    struct npufarm_err *err)
{
	const char *keys[TAGS_MAX], *key;
	size_t n = 0, len = 2, i, off;
	json_t *v;
	char *out;

	*ret_tags = NULL;
	if (obj == NULL || json_is_null(obj))
		return 0;
	if (!json_is_object(obj))
		return err_set(
		    err, -EINVAL, "%s: must be an object of strings", path);
	if (json_object_size(obj) > TAGS_MAX)
		return err_set(err, -E2BIG,
		    "%s: %zu tags is over the limit of %d", path,
		    json_object_size(obj), TAGS_MAX);
	json_object_foreach((json_t *)obj, key, v) {
		if (!tag_text_ok(key, TAGS_KEY_MAX, true))
			return err_set(err, -EINVAL,
			    "%s: a key must be 1..%d printable bytes without "
			    "'=' or ';'",
			    path, TAGS_KEY_MAX);
		if (!json_is_string(v) ||
		    !tag_text_ok(json_string_value(v), TAGS_VALUE_MAX, false))
			return err_set(err, -EINVAL,
			    "%s.%.64s: must be 1..%d printable bytes without "
			    "';'",
			    path, key, TAGS_VALUE_MAX);
		keys[n++] = key;
		len += strlen(key) + json_string_length(v) + 2;
	}
	if (n == 0)
		return 0;
	qsort(keys, n, sizeof(*keys), key_cmp);
	out = malloc(len + 1);
	if (out == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	out[0] = ';';
	off = 1;
	for (i = 0; i < n; i++) {
		const char *val =
		    json_string_value(json_object_get(obj, keys[i]));

		off += (size_t)sprintf(out + off, "%s=%s;", keys[i], val);
	}
	*ret_tags = out;
	return 0;
}

/*
 * Whether tags @have (canonical; NULL: none) carry every tag of @need
 * (canonical; NULL: no requirement).
 */
bool
tags_match(const char *have, const char *need)
{
	const char *p, *end;
	char entry[TAGS_KEY_MAX + TAGS_VALUE_MAX + 4];
	size_t n;

	if (need == NULL)
		return true;
	if (have == NULL)
		return false;
	for (p = need; *p == ';' && p[1] != '\0'; p = end) {
		end = strchr(p + 1, ';');
		if (end == NULL)
			return false;
		n = (size_t)(end - p) + 1; /* ";k=v;" */
		if (n >= sizeof(entry))
			return false;
		memcpy(entry, p, n);
		entry[n] = '\0';
		if (strstr(have, entry) == NULL)
			return false;
	}
	return true;
}

/* Canonical @tags as a JSON object (a new reference; {} for NULL). */
json_t *
tags_json(const char *tags)
{
	json_t *obj = json_object();
	const char *p, *eq, *end;

	for (p = tags; obj != NULL && p != NULL && *p == ';' && p[1] != '\0';
	     p = end) {
		eq = strchr(p + 1, '=');
		end = eq != NULL ? strchr(eq, ';') : NULL;
		if (end == NULL)
			break;
		(void)json_object_setn_new(obj, p + 1, (size_t)(eq - p - 1),
		    json_stringn(eq + 1, (size_t)(end - eq - 1)));
	}
	return obj;
}
