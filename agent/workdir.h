/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A session's work directory: created fresh for each session, the only
 * place the client's file names may reach, and removed afterwards whatever
 * happened.  Confinement is checked on names as the client sends them
 * (relative, no ".." component) and on the symlinks those names cross
 * (each must resolve inside the directory), so an uploaded or generated
 * symlink cannot lead the runtime's upload/download/remove elsewhere.
 * Removal never follows a symlink.  Nothing here logs.
 */
#pragma once

#include <stddef.h>

struct npufarm_err;

int workdir_create(
    const char *path, char *ret_abs, size_t len, struct npufarm_err *err);
int workdir_path(const char *dir, const char *name, char *buf, size_t len,
    struct npufarm_err *err);
int workdir_remove(const char *path, struct npufarm_err *err);
int workdir_prepare(const char *path, struct npufarm_err *err);
char *workdir_default(const char *name);
