/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error detail threaded through fallible calls: a negative errno-style code
 * plus a human message that says what and where.  Callers own the struct;
 * every function accepting one also accepts NULL.
 */
#pragma once

#include <stdarg.h>

#define NPUFARM_ERR_MSG_MAX 160

struct npufarm_err {
	int code;                      /* -errno or a module's positive code */
	char msg[NPUFARM_ERR_MSG_MAX]; /* NUL-terminated, may be truncated */
};

int err_set(struct npufarm_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int err_setv(struct npufarm_err *err, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void err_prefix(struct npufarm_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
