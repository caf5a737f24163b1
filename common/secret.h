/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared secrets (tokens) read from files, so they stay out of process
 * lists and shell histories, and compared in constant time.  Used by the
 * broker (agent and API tokens), the agent and the CLI alike.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct npufarm_err;

/* Largest token file accepted, bytes. */
#define SECRET_MAX 4096

int secret_read_file(
    const char *path, char **ret_secret, struct npufarm_err *err);
bool secret_equal(const char *known, const char *given);
void secret_free(char *secret);
