/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The artifact cache (see cache.h).  The entries sit in a TAILQ in LRU
 * order, least recently used first; each use moves one to the tail and
 * touches its file, and opening the cache rebuilds the order from the
 * mtimes.  Lookups scan the list: a board's cache holds hundreds of
 * artifacts, not millions.  Temporary files start with ".tmp-" and are
 * removed when the cache is opened.
 */
#include "config.h"

#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "sha256_util.h"
#include "workdir.h"

#define CACHE_TMP_PREFIX ".tmp-"

struct cache_entry {
	TAILQ_ENTRY(cache_entry) link;
	char sha[CACHE_SHA256_HEX + 1];
	uint64_t size;         /* bytes on disk */
	unsigned pins;         /* acquires not yet released */
	bool verified;         /* its content hashed to its name */
	struct timespec mtime; /* only while opening: the order to rebuild */
};

TAILQ_HEAD(cache_list, cache_entry);

struct cache {
	char dir[PATH_MAX];
	uint64_t max_bytes;
	uint64_t bytes;        /* sum of the entries' sizes */
	struct cache_list lru; /* least recently used first; owned */
};

struct cache_writer {
	struct cache *cache; /* borrowed, outlives the writer */
	char sha[CACHE_SHA256_HEX + 1];
	uint64_t size, written;
	int fd;
	char tmp[PATH_MAX]; /* the temporary file, removed unless
			     * committed */
	EVP_MD_CTX *md;
};

static struct cache_entry *
entry_find(const struct cache *c, const char *sha)
{
	struct cache_entry *e;

	TAILQ_FOREACH(e, &c->lru, link)
		if (strcmp(e->sha, sha) == 0)
			return e;
	return NULL;
}

/* "@dir/@name" into @buf; -ENAMETOOLONG when it does not fit. */
static int
path_of(const struct cache *c, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", c->dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Drop @e from the cache and its file from the disk. */
static void
entry_remove(struct cache *c, struct cache_entry *e)
{
	char path[PATH_MAX];

	if (path_of(c, e->sha, path, sizeof(path)) == 0)
		(void)unlink(path);
	c->bytes -= e->size;
	TAILQ_REMOVE(&c->lru, e, link);
	free(e);
}

/*
 * Evict unpinned entries, least recently used first, until @need more
 * bytes fit.  Returns 0 or -ENOSPC when the pinned ones alone leave no
 * room.
 */
static int
make_room(struct cache *c, uint64_t need)
{
	struct cache_entry *e, *next;

	for (e = TAILQ_FIRST(&c->lru);
	     e != NULL && c->bytes + need > c->max_bytes; e = next) {
		next = TAILQ_NEXT(e, link);
		if (e->pins == 0)
			entry_remove(c, e);
	}
	return c->bytes + need > c->max_bytes ? -ENOSPC : 0;
}

static int
mtime_cmp(const void *a, const void *b)
{
	const struct cache_entry *x = *(struct cache_entry *const *)a;
	const struct cache_entry *y = *(struct cache_entry *const *)b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->sha, y->sha);
}

/* Read what the directory holds, oldest use first. */
static int
cache_scan(struct cache *c, struct npufarm_err *err)
{
	struct cache_entry **v = NULL, **nv, *e;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int r = 0;

	d = opendir(c->dir);
	if (d == NULL)
		return err_set(
		    err, -errno, "cache %s: %s", c->dir, strerror(errno));
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, CACHE_TMP_PREFIX,
			strlen(CACHE_TMP_PREFIX)) == 0) {
			(void)unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (!sha256_util_valid(de->d_name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) <
			0 ||
		    !S_ISREG(st.st_mode))
			continue; /* not ours: leave it alone */
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL)
				goto oom;
			v = nv;
		}
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			goto oom;
		memcpy(e->sha, de->d_name, sizeof(e->sha));
		e->size = (uint64_t)st.st_size;
		e->mtime = st.st_mtim;
		v[n++] = e;
	}
	if (errno != 0)
		r = err_set(
		    err, -errno, "cache %s: %s", c->dir, strerror(errno));
	if (n > 0) /* v is NULL for an empty cache */
		qsort(v, n, sizeof(*v), mtime_cmp);
	for (i = 0; i < n; i++) {
		TAILQ_INSERT_TAIL(&c->lru, v[i], link);
		c->bytes += v[i]->size;
	}
	free(v);
	(void)closedir(d);
	return r;
oom:
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	(void)closedir(d);
	return err_set(err, -ENOMEM, "out of memory");
}

/*
 * Open the cache in @dir (created 0700 if missing), holding at most
 * @max_bytes.  What an earlier agent left is kept, in its order of use,
 * and evicted down to @max_bytes if that is smaller now; half-written
 * files are removed.  Returns 0 with @ret_cache (free with cache_free()),
 * or -errno.  Does not log.
 */
int
cache_open(const char *dir, uint64_t max_bytes, struct cache **ret_cache,
    struct npufarm_err *err)
{
	struct cache *c;
	int r;

	if (strlen(dir) + 1 + CACHE_SHA256_HEX + 16 >= PATH_MAX)
		return err_set(err, -ENAMETOOLONG, "cache %s: too long", dir);
	r = workdir_prepare(dir, err);
	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	memcpy(c->dir, dir, strlen(dir) + 1);
	c->max_bytes = max_bytes;
	TAILQ_INIT(&c->lru);
	r = cache_scan(c, err);
	if (r < 0) {
		cache_free(c);
		return r;
	}
	(void)make_room(c, 0);
	*ret_cache = c;
	return 0;
}

/* Free the in-memory cache (NULL is fine); the files stay.  Returns NULL. */
struct cache *
cache_free(struct cache *c)
{
	struct cache_entry *e;

	if (c == NULL)
		return NULL;
	while ((e = TAILQ_FIRST(&c->lru)) != NULL) {
		TAILQ_REMOVE(&c->lru, e, link);
		free(e);
	}
	free(c);
	return NULL;
}

/*
 * Whether the file at @path is a regular file of ours, not writable by
 * others, whose content hashes to @sha (issue 12: a file planted in the
 * cache under an artifact's name was run as that artifact).
 */
static bool
file_verified(const char *path, const char *sha)
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	char hex[CACHE_SHA256_HEX + 1];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	struct stat st;
	bool ok = false;
	ssize_t got;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || ctx == NULL || fstat(fd, &st) < 0 ||
	    !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	while ((got = read(fd, buf, sizeof(buf))) > 0)
		if (EVP_DigestUpdate(ctx, buf, (size_t)got) != 1)
			goto out;
	if (got == 0 && EVP_DigestFinal_ex(ctx, md, &n) == 1 &&
	    n == SHA256_UTIL_BYTES) {
		sha256_util_hex(md, hex);
		ok = strcmp(hex, sha) == 0;
	}
out:
	if (fd >= 0)
		(void)close(fd);
	EVP_MD_CTX_free(ctx);
	return ok;
}

/*
 * Pin the artifact @sha256 for a run and make it the most recently used:
 * its path goes into @ret_path (capacity @len), and it stays on disk until
 * a matching cache_release().  An artifact found on disk when the cache
 * was opened is hashed first; one that does not match its name (or is not
 * a file of ours) is removed, as if it had never been cached.  Returns 1,
 * 0 when it is not cached (fetch it), or -EINVAL (not a sha256) /
 * -ENAMETOOLONG.
 */
int
cache_acquire(struct cache *c, const char *sha256, char *ret_path, size_t len)
{
	struct cache_entry *e;
	int r;

	if (!sha256_util_valid(sha256))
		return -EINVAL;
	e = entry_find(c, sha256);
	if (e == NULL)
		return 0;
	r = path_of(c, e->sha, ret_path, len);
	if (r < 0)
		return r;
	if (!e->verified) {
		if (e->pins == 0 && !file_verified(ret_path, e->sha)) {
			entry_remove(c, e);
			return 0;
		}
		e->verified = true;
	}
	e->pins++;
	TAILQ_REMOVE(&c->lru, e, link);
	TAILQ_INSERT_TAIL(&c->lru, e, link);
	/* The order for the next agent; a failure only costs that. */
	(void)utimensat(AT_FDCWD, ret_path, NULL, 0);
	return 1;
}

/* Unpin what cache_acquire() pinned; an unknown or unpinned one is ignored. */
void
cache_release(struct cache *c, const char *sha256)
{
	struct cache_entry *e = entry_find(c, sha256);

	if (e != NULL && e->pins > 0)
		e->pins--;
}

/* Is @sha256 cached?  Does not count as a use. */
bool
cache_contains(const struct cache *c, const char *sha256)
{
	return entry_find(c, sha256) != NULL;
}

/* Bytes the cached artifacts take. */
uint64_t
cache_bytes(const struct cache *c)
{
	return c->bytes;
}

/*
 * Start writing the artifact @sha256 of @size bytes into a temporary
 * file.  Returns 0 with @ret_writer (finish with cache_commit() or
 * cache_abort()), -EINVAL for a bad sha256, -EFBIG when @size alone is
 * over the cache's bound, or -errno.  Does not log.
 */
int
cache_begin(struct cache *c, const char *sha256, uint64_t size,
    struct cache_writer **ret_writer, struct npufarm_err *err)
{
	char name[sizeof(CACHE_TMP_PREFIX) + CACHE_SHA256_HEX + 8];
	struct cache_writer *w;
	int r;

	if (!sha256_util_valid(sha256))
		return err_set(err, -EINVAL, "\"%.64s\" is no sha256", sha256);
	if (size > c->max_bytes)
		return err_set(err, -EFBIG,
		    "artifact of %llu bytes is over the cache's %llu",
		    (unsigned long long)size, (unsigned long long)c->max_bytes);
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return err_set(err, -ENOMEM, "out of memory");
	w->cache = c;
	w->size = size;
	w->fd = -1;
	memcpy(w->sha, sha256, sizeof(w->sha));
	w->md = EVP_MD_CTX_new();
	if (w->md == NULL ||
	    EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
		r = err_set(err, -ENOMEM, "sha256: cannot initialise");
		goto fail;
	}
	memcpy(name, CACHE_TMP_PREFIX, strlen(CACHE_TMP_PREFIX));
	memcpy(name + strlen(CACHE_TMP_PREFIX), sha256, CACHE_SHA256_HEX);
	memcpy(name + strlen(CACHE_TMP_PREFIX) + CACHE_SHA256_HEX, "-XXXXXX",
	    sizeof("-XXXXXX"));
	r = path_of(c, name, w->tmp, sizeof(w->tmp));
	w->fd = r < 0 ? r : mkostemp(w->tmp, O_CLOEXEC);
	if (w->fd < 0) {
		r = w->fd == -1 ? -errno : w->fd;
		(void)err_set(err, r, "%s: %s", w->tmp, strerror(-r));
		w->tmp[0] = '\0';
		goto fail;
	}
	*ret_writer = w;
	return 0;
fail:
	cache_abort(w);
	return r;
}

/*
 * Append @len bytes to the artifact being written.  Returns 0, -EFBIG
 * past the size given to cache_begin(), or -errno.  On failure the writer
 * is still to be aborted.
 */
int
cache_write(struct cache_writer *w, const void *data, size_t len,
    struct npufarm_err *err)
{
	const char *p = data;
	ssize_t n;

	if (len > w->size - w->written)
		return err_set(err, -EFBIG,
		    "artifact %.12s: more than the %llu "
		    "bytes announced",
		    w->sha, (unsigned long long)w->size);
	if (EVP_DigestUpdate(w->md, data, len) != 1)
		return err_set(err, -EIO, "sha256: update failed");
	while (len > 0) {
		n = write(w->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(
			    err, -errno, "%s: %s", w->tmp, strerror(errno));
		p += n;
		len -= (size_t)n;
		w->written += (uint64_t)n;
	}
	return 0;
}

/* The hex digest of what @w hashed, into @hex. */
static int
digest_hex(struct cache_writer *w, char hex[CACHE_SHA256_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(w->md, md, &n) != 1 || n != SHA256_UTIL_BYTES)
		return -EIO;
	sha256_util_hex(md, hex);
	return 0;
}

/*
 * Finish @w, which is freed whatever happens: check that the content has
 * the announced size and hashes to its name, make room (evicting unpinned
 * artifacts, least recently used first), and move it into place, read and
 * execute only.  Committing what is already cached is success.  Returns
 * 0, -EBADMSG when the size or the sha256 does not match (nothing is
 * kept), -ENOSPC when artifacts in use leave no room, or -errno.
 */
int
cache_commit(struct cache_writer *w, struct npufarm_err *err)
{
	struct cache *c = w->cache;
	struct cache_entry *e = NULL;
	char hex[CACHE_SHA256_HEX + 1], path[PATH_MAX];
	int r;

	if (w->written != w->size) {
		r = err_set(err, -EBADMSG,
		    "artifact %.12s: %llu bytes of the %llu announced", w->sha,
		    (unsigned long long)w->written,
		    (unsigned long long)w->size);
		goto out;
	}
	r = digest_hex(w, hex);
	if (r < 0) {
		(void)err_set(err, r, "sha256: final failed");
		goto out;
	}
	if (strcmp(hex, w->sha) != 0) {
		r = err_set(err, -EBADMSG,
		    "sha256 mismatch: expected %.16s..., got %s", w->sha, hex);
		goto out;
	}
	if (entry_find(c, w->sha) != NULL)
		goto out; /* someone was quicker; same content */
	r = make_room(c, w->size);
	if (r < 0) {
		(void)err_set(err, r,
		    "cache full: %llu of %llu bytes are in use, no room for "
		    "%llu",
		    (unsigned long long)c->bytes,
		    (unsigned long long)c->max_bytes,
		    (unsigned long long)w->size);
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = path_of(c, w->sha, path, sizeof(path));
	if (r == 0 && (fchmod(w->fd, 0500) < 0 || fsync(w->fd) < 0 ||
			  rename(w->tmp, path) < 0))
		r = -errno;
	if (r < 0) {
		(void)err_set(err, r, "%s: %s", path, strerror(-r));
		free(e);
		goto out;
	}
	w->tmp[0] = '\0'; /* it is the artifact now */
	memcpy(e->sha, w->sha, sizeof(e->sha));
	e->size = w->size;
	e->verified = true; /* hashed as it was written */
	TAILQ_INSERT_TAIL(&c->lru, e, link);
	c->bytes += e->size;
out:
	cache_abort(w);
	return r;
}

/* Drop @w and its temporary file (NULL is fine).  Returns NULL. */
struct cache_writer *
cache_abort(struct cache_writer *w)
{
	if (w == NULL)
		return NULL;
	if (w->fd >= 0)
		(void)close(w->fd);
	if (w->tmp[0] != '\0')
		(void)unlink(w->tmp);
	EVP_MD_CTX_free(w->md);
	free(w);
	return NULL;
}

/*
 * cache_begin(), cache_write() and cache_commit() of @len bytes at once.
 * Returns as cache_commit() does.
 */
int
cache_insert(struct cache *c, const char *sha256, const void *data, size_t len,
    struct npufarm_err *err)
{
	struct cache_writer *w;
	int r;

	r = cache_begin(c, sha256, len, &w, err);
	if (r < 0)
		return r;
	r = cache_write(w, data, len, err);
	if (r < 0) {
		cache_abort(w);
		return r;
	}
	return cache_commit(w, err);
}
