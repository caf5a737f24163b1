/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's artifact store: kernels and programs of native tasks,
 * content-addressed by sha256 under DATA_DIR/artifacts/, written once
 * (to a temporary file, fsynced, renamed into place), never changed.
 * Uploaded over HTTP (PUT /v1/artifacts/{sha256}), read by agents in
 * chunks over their link.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct artifacts;
struct evbuffer;
struct npufarm_err;

#define ARTIFACTS_SHA256_HEX 64

int artifacts_open(const char *data_dir, uint64_t max_size,
    struct artifacts **ret_store, struct npufarm_err *err);
struct artifacts *artifacts_close(struct artifacts *a);
int artifacts_size(
    const struct artifacts *a, const char *sha256, uint64_t *ret_size);
int artifacts_put(struct artifacts *a, const char *sha256,
    struct evbuffer *body, bool *ret_created, struct npufarm_err *err);
ssize_t artifacts_read(const struct artifacts *a, const char *sha256,
    uint64_t offset, void *buf, size_t len);
