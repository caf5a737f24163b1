/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The artifact cache (agent/cache.c): content verified against its sha256
 * on the way in, nothing left behind by a bad insert, least recently used
 * evicted first, pinned artifacts never evicted, and the order of use kept
 * across a reopen.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "cache.h"
#include "err.h"
#include "harness.h"
#include "workdir.h"

static char tmp[PATH_MAX];
static char dir[PATH_MAX + 8];

static void
setup(void)
{
	strcpy(tmp, "/tmp/npufarm-cache-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	(void)snprintf(dir, sizeof(dir), "%s/cache", tmp);
}

static void
teardown(void)
{
	(void)workdir_remove(tmp, NULL);
}

/* The sha256 of @len bytes at @data, in hex. */
static void
sha256_hex(const void *data, size_t len, char hex[CACHE_SHA256_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	ck_assert_int_eq(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
	ck_assert_uint_eq(n, 32);
	for (i = 0; i < n; i++)
		(void)sprintf(hex + 2 * i, "%02x", md[i]);
}

/* An artifact of @len bytes of @fill, and its name. */
struct blob {
	char data[4096];
	size_t len;
	char sha[CACHE_SHA256_HEX + 1];
};

static void
blob(struct blob *b, int fill, size_t len)
{
	ck_assert_uint_le(len, sizeof(b->data));
	memset(b->data, fill, len);
	b->len = len;
	sha256_hex(b->data, len, b->sha);
}

/* Entries in the cache directory, temporary files included. */
static int
dir_entries(void)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	(void)closedir(d);
	return n;
}

/* Set the mtime of @sha's file to @sec seconds after the epoch. */
static void
set_mtime(const char *sha, time_t sec)
{
	struct timespec ts[2] = {{sec, 0}, {sec, 0}};
	char path[2 * PATH_MAX];

	(void)snprintf(path, sizeof(path), "%s/%s", dir, sha);
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

START_TEST(test_insert_and_acquire)
{
	struct cache *c;
	struct blob a;
	char path[PATH_MAX], buf[64];
	struct stat st;
	int fd;

	blob(&a, 'a', 1000);
	ck_assert_int_eq(cache_open(dir, 10000, &c, NULL), 0);
	ck_assert_int_eq(cache_acquire(c, a.sha, path, sizeof(path)), 0);
	ck_assert_int_eq(cache_insert(c, a.sha, a.data, a.len, NULL), 0);
	ck_assert(cache_contains(c, a.sha));
	ck_assert_uint_eq(cache_bytes(c), 1000);
	ck_assert_int_eq(cache_acquire(c, a.sha, path, sizeof(path)), 1);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 1000);
	ck_assert_int_eq(st.st_mode & 0777, 0500);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), sizeof(buf));
	ck_assert_mem_eq(buf, a.data, sizeof(buf));
	(void)close(fd);
	cache_release(c, a.sha);
	cache_release(c, a.sha); /* one too many: ignored */
	/* Inserting it again changes nothing. */
	ck_assert_int_eq(cache_insert(c, a.sha, a.data, a.len, NULL), 0);
	ck_assert_uint_eq(cache_bytes(c), 1000);
	ck_assert_int_eq(dir_entries(), 1);
	/* Not names of artifacts. */
	ck_assert_int_eq(
	    cache_acquire(c, "../etc/passwd", path, sizeof(path)), -EINVAL);
	ck_assert_int_eq(
	    cache_acquire(c, "ABCDEF", path, sizeof(path)), -EINVAL);
	ck_assert_ptr_null(cache_free(c));
	ck_assert_ptr_null(cache_free(NULL));
}
END_TEST

START_TEST(test_hash_mismatch_keeps_nothing)
{
	struct npufarm_err e = {0};
	struct cache *c;
	struct blob a, b;
	char want[256];

	blob(&a, 'a', 1000);
	blob(&b, 'b', 1000);
	ck_assert_int_eq(cache_open(dir, 10000, &c, NULL), 0);
	/* b's content under a's name. */
	ck_assert_int_eq(cache_insert(c, a.sha, b.data, b.len, &e), -EBADMSG);
	(void)snprintf(want, sizeof(want),
	    "sha256 mismatch: expected %.16s..., got %s", a.sha, b.sha);
	ck_assert_str_eq(e.msg, want);
	ck_assert(!cache_contains(c, a.sha));
	ck_assert_uint_eq(cache_bytes(c), 0);
	ck_assert_int_eq(dir_entries(), 0); /* no temporary file either */
	/* One byte changed. */
	b = a;
	b.data[500] ^= 1;
	ck_assert_int_eq(cache_insert(c, a.sha, b.data, b.len, &e), -EBADMSG);
	ck_assert_int_eq(dir_entries(), 0);
	cache_free(c);
}
END_TEST

START_TEST(test_streaming_and_sizes)
{
	struct npufarm_err e = {0};
	struct cache_writer *w;
	struct cache *c;
	struct blob a;
	size_t off;

	blob(&a, 'a', 3000);
	ck_assert_int_eq(cache_open(dir, 4000, &c, NULL), 0);
	ck_assert_int_eq(cache_begin(c, a.sha, a.len, &w, &e), 0);
	for (off = 0; off < a.len; off += 700)
		ck_assert_int_eq(cache_write(w, a.data + off,
				     a.len - off < 700 ? a.len - off : 700, &e),
		    0);
	ck_assert_int_eq(cache_commit(w, &e), 0);
	ck_assert(cache_contains(c, a.sha));
	cache_free(c);
	ck_assert_int_eq(cache_open(dir, 10000, &c, NULL), 0);

	/* Short of the announced size. */
	blob(&a, 'x', 100);
	ck_assert_int_eq(cache_begin(c, a.sha, 200, &w, &e), 0);
	ck_assert_int_eq(cache_write(w, a.data, a.len, &e), 0);
	ck_assert_int_eq(cache_commit(w, &e), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(e.msg, "100 bytes of the 200 announced"));
	/* Past it. */
	ck_assert_int_eq(cache_begin(c, a.sha, 50, &w, &e), 0);
	ck_assert_int_eq(cache_write(w, a.data, a.len, &e), -EFBIG);
	ck_assert_ptr_null(cache_abort(w));
	/* Bigger than the whole cache. */
	ck_assert_int_eq(cache_begin(c, a.sha, 10001, &w, &e), -EFBIG);
	ck_assert_str_eq(
	    e.msg, "artifact of 10001 bytes is over the cache's 10000");
	ck_assert_int_eq(cache_begin(c, "xyz", 1, &w, &e), -EINVAL);
	ck_assert_int_eq(dir_entries(), 1); /* the first artifact only */
	cache_free(c);
}
END_TEST

START_TEST(test_lru_eviction)
{
	struct cache *c;
	struct blob a, b, cc, d;
	char path[PATH_MAX];

	blob(&a, 'a', 1000);
	blob(&b, 'b', 1000);
	blob(&cc, 'c', 1000);
	blob(&d, 'd', 1000);
	ck_assert_int_eq(cache_open(dir, 3000, &c, NULL), 0);
	ck_assert_int_eq(cache_insert(c, a.sha, a.data, a.len, NULL), 0);
	ck_assert_int_eq(cache_insert(c, b.sha, b.data, b.len, NULL), 0);
	ck_assert_int_eq(cache_insert(c, cc.sha, cc.data, cc.len, NULL), 0);
	/* a is used again: b is now the least recently used. */
	ck_assert_int_eq(cache_acquire(c, a.sha, path, sizeof(path)), 1);
	cache_release(c, a.sha);
	ck_assert_int_eq(cache_insert(c, d.sha, d.data, d.len, NULL), 0);
	ck_assert(cache_contains(c, a.sha));
	ck_assert(!cache_contains(c, b.sha));
	ck_assert(cache_contains(c, cc.sha));
	ck_assert(cache_contains(c, d.sha));
	ck_assert_uint_eq(cache_bytes(c), 3000);
	ck_assert_int_eq(dir_entries(), 3);
	/* A big one pushes out as many as it needs, oldest first. */
	blob(&b, 'b', 2000);
	ck_assert_int_eq(cache_insert(c, b.sha, b.data, b.len, NULL), 0);
	ck_assert(!cache_contains(c, cc.sha));
	ck_assert(!cache_contains(c, a.sha));
	ck_assert(cache_contains(c, d.sha));
	ck_assert_uint_eq(cache_bytes(c), 3000);
	cache_free(c);
}
END_TEST

START_TEST(test_pinned_never_evicted)
{
	struct npufarm_err e = {0};
	struct cache *c;
	struct blob a, b, cc, d;
	char pa[PATH_MAX], pc[PATH_MAX];
	struct stat st;

	blob(&a, 'a', 1000);
	blob(&b, 'b', 1000);
	blob(&cc, 'c', 1000);
	blob(&d, 'd', 1000);
	ck_assert_int_eq(cache_open(dir, 2000, &c, NULL), 0);
	ck_assert_int_eq(cache_insert(c, a.sha, a.data, a.len, NULL), 0);
	ck_assert_int_eq(cache_acquire(c, a.sha, pa, sizeof(pa)), 1);
	ck_assert_int_eq(cache_insert(c, b.sha, b.data, b.len, NULL), 0);
	/* b is more recent than a, but a is in use. */
	ck_assert_int_eq(cache_insert(c, cc.sha, cc.data, cc.len, NULL), 0);
	ck_assert(cache_contains(c, a.sha));
	ck_assert(!cache_contains(c, b.sha));
	ck_assert_int_eq(stat(pa, &st), 0);
	/* Everything pinned: no room, and nothing lost. */
	ck_assert_int_eq(cache_acquire(c, cc.sha, pc, sizeof(pc)), 1);
	ck_assert_int_eq(cache_insert(c, d.sha, d.data, d.len, &e), -ENOSPC);
	ck_assert_str_eq(e.msg,
	    "cache full: 2000 of 2000 bytes are in use, no room for 1000");
	ck_assert(cache_contains(c, a.sha) && cache_contains(c, cc.sha));
	ck_assert(!cache_contains(c, d.sha));
	ck_assert_int_eq(dir_entries(), 2);
	/* Pinned twice, released once: still pinned. */
	ck_assert_int_eq(cache_acquire(c, a.sha, pa, sizeof(pa)), 1);
	cache_release(c, a.sha);
	cache_release(c, cc.sha);
	ck_assert_int_eq(cache_insert(c, d.sha, d.data, d.len, &e), 0);
	ck_assert(cache_contains(c, a.sha));
	ck_assert(!cache_contains(c, cc.sha));
	cache_free(c);
}
END_TEST

START_TEST(test_reopen_keeps_order_and_bound)
{
	struct cache *c;
	struct blob a, b, cc;
	char junk[2 * PATH_MAX];
	FILE *f;

	blob(&a, 'a', 1000);
	blob(&b, 'b', 1000);
	blob(&cc, 'c', 1000);
	ck_assert_int_eq(cache_open(dir, 3000, &c, NULL), 0);
	ck_assert_int_eq(cache_insert(c, a.sha, a.data, a.len, NULL), 0);
	ck_assert_int_eq(cache_insert(c, b.sha, b.data, b.len, NULL), 0);
	ck_assert_int_eq(cache_insert(c, cc.sha, cc.data, cc.len, NULL), 0);
	cache_free(c);
	/* Used last: c, then a, then b (the oldest). */
	set_mtime(b.sha, 1000);
	set_mtime(a.sha, 2000);
	set_mtime(cc.sha, 3000);
	/* A half-written leftover, and a file that is none of ours. */
	(void)snprintf(junk, sizeof(junk), "%s/.tmp-%s-abcdef", dir, a.sha);
	f = fopen(junk, "w");
	ck_assert_ptr_nonnull(f);
	(void)fclose(f);
	(void)snprintf(junk, sizeof(junk), "%s/README", dir);
	f = fopen(junk, "w");
	ck_assert_ptr_nonnull(f);
	(void)fclose(f);

	/* Reopened smaller: the oldest goes. */
	ck_assert_int_eq(cache_open(dir, 2000, &c, NULL), 0);
	ck_assert(!cache_contains(c, b.sha));
	ck_assert(cache_contains(c, a.sha));
	ck_assert(cache_contains(c, cc.sha));
	ck_assert_uint_eq(cache_bytes(c), 2000);
	ck_assert_int_eq(dir_entries(), 3); /* a, c, README */
	ck_assert_int_eq(access(junk, F_OK), 0);
	/* Then a: c is more recent. */
	ck_assert_int_eq(cache_insert(c, b.sha, b.data, b.len, NULL), 0);
	ck_assert(!cache_contains(c, a.sha));
	ck_assert(cache_contains(c, cc.sha));
	cache_free(c);
}
END_TEST

/* Write @len bytes of @data as "@dir/@name". */
static void
plant(const char *name, const char *data, size_t len)
{
	char path[PATH_MAX + 80];
	int fd;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0500);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

/*
 * Issue 12: a file planted as cache/<sha> was run as that artifact.  What
 * the cache finds on disk at open is hashed before its first use: a
 * mismatch is removed and reads as not cached (so it is fetched).
 */
START_TEST(test_planted_file_not_trusted)
{
	static const char good[] = "the real kernel", evil[] = "a planted one";
	char sha[CACHE_SHA256_HEX + 1], other[CACHE_SHA256_HEX + 1];
	char path[PATH_MAX];
	struct npufarm_err err;
	struct cache *c;

	sha256_hex(good, sizeof(good), sha);
	sha256_hex(evil, sizeof(evil), other);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	plant(sha, evil, sizeof(evil));   /* under the real one's name */
	plant(other, evil, sizeof(evil)); /* honest */
	ck_assert_int_eq(cache_open(dir, 1 << 20, &c, &err), 0);
	ck_assert(cache_contains(c, sha)); /* listed, not yet trusted */
	ck_assert_int_eq(cache_acquire(c, sha, path, sizeof(path)), 0);
	ck_assert(!cache_contains(c, sha));
	ck_assert_int_eq(access(path, F_OK), -1); /* and gone from disk */
	ck_assert_int_eq(cache_acquire(c, other, path, sizeof(path)), 1);
	cache_release(c, other);
	/* Fetched afresh, it is trusted as written. */
	ck_assert_int_eq(cache_insert(c, sha, good, sizeof(good), &err), 0);
	ck_assert_int_eq(cache_acquire(c, sha, path, sizeof(path)), 1);
	cache_release(c, sha);
	cache_free(c);
}
END_TEST

/* A cache or work dir others can write to, or not ours, is refused. */
START_TEST(test_unsafe_dir_refused)
{
	char link[PATH_MAX + 16];
	struct npufarm_err err;
	struct cache *c = NULL;

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(cache_open(dir, 1 << 20, &c, &err), -EPERM);
	ck_assert_msg(strstr(err.msg, "writable by others"), "%s", err.msg);
	ck_assert_int_eq(chmod(dir, 0700), 0);
	(void)snprintf(link, sizeof(link), "%s/link", tmp);
	ck_assert_int_eq(symlink(dir, link), 0);
	ck_assert_int_eq(workdir_prepare(link, &err), -EPERM);
	ck_assert_msg(strstr(err.msg, "not a directory"), "%s", err.msg);
	ck_assert_int_eq(workdir_prepare(dir, &err), 0);
	if (geteuid() == 0) {
		/* Made first by someone else (uid 1), then "ours". */
		ck_assert_int_eq(chown(dir, 1, 1), 0);
		ck_assert_int_eq(workdir_prepare(dir, &err), -EPERM);
		ck_assert_msg(strstr(err.msg, "owned by uid 1"), "%s", err.msg);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cache");
	TCase *tc;

	tc = tcase_create("cache");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_insert_and_acquire);
	tcase_add_test(tc, test_hash_mismatch_keeps_nothing);
	tcase_add_test(tc, test_streaming_and_sizes);
	tcase_add_test(tc, test_lru_eviction);
	tcase_add_test(tc, test_pinned_never_evicted);
	tcase_add_test(tc, test_reopen_keeps_order_and_bound);
	tcase_add_test(tc, test_planted_file_not_trusted);
	tcase_add_test(tc, test_unsafe_dir_refused);
	suite_add_tcase(s, tc);
	return harness_run(s);
}
