/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation helpers that print one line and exit(1) when memory runs out.
 * Only the command-line client may use them: a short-lived tool has nothing
 * better to do on OOM, unlike the daemons, which fail one operation.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));
