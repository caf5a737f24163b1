/* SPDX-License-Identifier: Apache-2.0 */
/*
 * struct npufarm_err helpers.  Nothing here logs: the code that handles an
 * error decides whether and how to report it.
 */
#include "config.h"

#include "err.h"

#include <stdio.h>
#include <string.h>

/*
 * Fill @err (which may be NULL) with @code and a formatted message and
 * return @code, so a failure path can read "return err_set(err, -EINVAL,
 * ...)".
 */
int
err_setv(struct npufarm_err *err, int code, const char *fmt, va_list ap)
{
	if (err == NULL)
		return code;
	err->code = code;
	(void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

/* Variadic form of err_setv(). */
int
err_set(struct npufarm_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	code = err_setv(err, code, fmt, ap);
	va_end(ap);
	return code;
}

/*
 * Prepend context to an already filled message: "tasks[3]: " + msg.  The
 * code is kept.  Does nothing when @err is NULL.
 */
void
err_prefix(struct npufarm_err *err, const char *fmt, ...)
{
	char old[NPUFARM_ERR_MSG_MAX];
	va_list ap;
	int n;

	if (err == NULL)
		return;
	memcpy(old, err->msg, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(err->msg) - 1)
		return;
	memcpy(err->msg + n, old, sizeof(err->msg) - (size_t)n - 1);
	err->msg[sizeof(err->msg) - 1] = '\0';
}
