/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token files: the whole file is the token, less trailing whitespace (so
 * `openssl rand -hex 32 > f` and editors' final newlines just work).  A
 * token is 1..SECRET_MAX bytes of printable ASCII without spaces, so it
 * fits an HTTP header and a JSON string as it is.  Comparison takes time
 * that depends only on the known token's length, never on where the given
 * one first differs.
 */
#include "config.h"

#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

/*
 * Read the token in @path into *@ret_secret (malloc'd, NUL-terminated;
 * release with secret_free()).  Returns 0, or -errno with @err naming the
 * file and what is wrong with it: unreadable, empty, larger than
 * SECRET_MAX, or a byte that is not printable ASCII (with its offset).
 * Does not log.
 */
int
secret_read_file(const char *path, char **ret_secret, struct npufarm_err *err)
{
	char *buf;
	size_t len = 0, i;
	ssize_t n;
	int fd, r = 0;

	buf = malloc(SECRET_MAX + 2);
	if (buf == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = err_set(
		    err, -errno, "token file '%s': %s", path, strerror(errno));
		goto fail;
	}
	while (len <= SECRET_MAX &&
	       (n = read(fd, buf + len, SECRET_MAX + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = err_set(err, -errno, "token file '%s': %s", path,
			    strerror(errno));
			(void)close(fd);
			goto fail;
		}
		len += (size_t)n;
	}
	(void)close(fd);
	if (len > SECRET_MAX) {
		r = err_set(err, -EFBIG,
		    "token file '%s': larger than %d bytes", path, SECRET_MAX);
		goto fail;
	}
	while (len > 0 && strchr(" \t\r\n", buf[len - 1]) != NULL)
		len--;
	buf[len] = '\0';
	if (len == 0) {
		r = err_set(err, -EINVAL, "token file '%s': empty", path);
		goto fail;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x21 ||
		    (unsigned char)buf[i] > 0x7e) {
			r = err_set(err, -EINVAL,
			    "token file '%s': byte %zu (0x%02x) is not "
			    "printable ASCII; a token has no spaces or "
			    "control characters",
			    path, i, (unsigned char)buf[i]);
			goto fail;
		}
	*ret_secret = buf;
	return 0;
fail:
	explicit_bzero(buf, SECRET_MAX + 2);
	free(buf);
	return r;
}

/*
 * Whether @given equals @known.  Runs in time that depends only on
 * strlen(@known), which is not a secret worth hiding (an attacker knows
 * how long the tokens of a given tool are).  NULL @given never matches.
 */
bool
secret_equal(const char *known, const char *given)
{
	size_t klen = strlen(known), glen, i;
	volatile unsigned char diff = 0;

	if (given == NULL)
		return false;
	glen = strnlen(given, SECRET_MAX + 1);
	diff |= (unsigned char)(glen != klen);
	for (i = 0; i < klen; i++)
		diff |= (unsigned char)known[i] ^
			(unsigned char)(i < glen ? given[i] : 0);
	return diff == 0;
}

/* Wipe and free a secret from secret_read_file().  Accepts NULL. */
void
secret_free(char *secret)
{
	if (secret == NULL)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}
