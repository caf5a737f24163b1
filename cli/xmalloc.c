/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exit-on-OOM allocation for the CLI (house style §4: cli/ only).  Every
 * function returns memory the caller owns and frees with free().
 */
#include "config.h"

#include "xmalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void __attribute__((noreturn)) xmalloc_die(size_t nmemb, size_t size)
{
	(void)fprintf(
	    stderr, "npufarm: out of memory (%zu x %zu bytes)\n", nmemb, size);
	exit(1);
}

/* malloc() that never returns NULL; a zero size still yields a pointer. */
void *
xmalloc(size_t size)
{
	void *p = malloc(size != 0 ? size : 1);

	if (p == NULL)
		xmalloc_die(1, size);
	return p;
}

/* calloc() that never returns NULL. */
void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb != 0 ? nmemb : 1, size != 0 ? size : 1);

	if (p == NULL)
		xmalloc_die(nmemb, size);
	return p;
}

/*
 * Resize @ptr to @nmemb elements of @size bytes, checking the product for
 * overflow.  Takes ownership of @ptr; never returns NULL.
 */
void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		xmalloc_die(nmemb, size);
	p = realloc(ptr, nmemb * size != 0 ? nmemb * size : 1);
	if (p == NULL)
		xmalloc_die(nmemb, size);
	return p;
}

/* strdup() that never returns NULL. */
char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		xmalloc_die(1, strlen(s) + 1);
	return p;
}

/* A newly allocated formatted string; never returns NULL. */
char *
xvasprintf(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		xmalloc_die(1, 0);
	return s;
}

/* xvasprintf() with the arguments inline. */
char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}
