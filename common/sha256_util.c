/* SPDX-License-Identifier: Apache-2.0 */
/* Names of artifacts: sha256 as lowercase hex (see sha256_util.h). */
#include "config.h"

#include "sha256_util.h"

#include <stddef.h>

/* True if @s is exactly 64 lowercase hex digits. */
bool
sha256_util_valid(const char *s)
{
	size_t i;

	for (i = 0; i < SHA256_UTIL_HEX; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
			(s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[i] == '\0';
}

/* Digest @md as 64 lowercase hex digits and a NUL into @hex. */
void
sha256_util_hex(
    const unsigned char md[SHA256_UTIL_BYTES], char hex[SHA256_UTIL_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < SHA256_UTIL_BYTES; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[SHA256_UTIL_HEX] = '\0';
}
