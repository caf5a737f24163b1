/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's artifact cache: files named by their sha256 in one
 * directory, at most a configured total of bytes, least recently used out
 * first.  Content is verified against its name when it goes in (a file
 * under a name is always that content), written to a temporary file,
 * fsync()ed and renamed, so a crash never leaves a wrong file under a
 * name.  An artifact in use (acquired and not released) is never evicted.
 * Recency survives restarts through the files' mtimes.  Not shared between
 * processes: one agent per cache directory.  Nothing here logs.
 *
 *	cache_acquire() == 1      run it (path pinned), then cache_release()
 *	                == 0      fetch it: cache_begin(), cache_write()...,
 *	                          cache_commit() (or cache_insert() at once),
 *	                          then cache_acquire() again
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct npufarm_err;
struct cache;
struct cache_writer;

/* Hex digits of a sha256, and the room for one with its NUL. */
#define CACHE_SHA256_HEX 64

int cache_open(const char *dir, uint64_t max_bytes, struct cache **ret_cache,
    struct npufarm_err *err);
struct cache *cache_free(struct cache *c);
int cache_acquire(
    struct cache *c, const char *sha256, char *ret_path, size_t len);
void cache_release(struct cache *c, const char *sha256);
bool cache_contains(const struct cache *c, const char *sha256);
uint64_t cache_bytes(const struct cache *c);

int cache_begin(struct cache *c, const char *sha256, uint64_t size,
    struct cache_writer **ret_writer, struct npufarm_err *err);
int cache_write(struct cache_writer *w, const void *data, size_t len,
    struct npufarm_err *err);
int cache_commit(struct cache_writer *w, struct npufarm_err *err);
struct cache_writer *cache_abort(struct cache_writer *w);
int cache_insert(struct cache *c, const char *sha256, const void *data,
    size_t len, struct npufarm_err *err);
