/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Artifacts are named by their sha256 as 64 lowercase hex digits
 * (docs/api.md): one check of such a name and one encoder of a digest,
 * for the broker, the agent, the CLI and the task validator.  Hashing
 * itself is OpenSSL's (EVP); nothing here links it.
 */
#pragma once

#include <stdbool.h>

#define SHA256_UTIL_BYTES 32
#define SHA256_UTIL_HEX   64 /* digits, without the NUL */

bool sha256_util_valid(const char *s);
void sha256_util_hex(
    const unsigned char md[SHA256_UTIL_BYTES], char hex[SHA256_UTIL_HEX + 1]);
