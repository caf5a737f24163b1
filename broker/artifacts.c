/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Content-addressed artifact store (see artifacts.h).  An artifact's file
 * is DIR/artifacts/<sha256>; a file of that name exists only once its
 * content was verified and made durable, so its presence is its state.
 */
#include "config.h"

#include "artifacts.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "err.h"
#include "log.h"
#include "sha256_util.h"

struct artifacts {
	char *dir; /* DATA_DIR/artifacts */
	int dirfd;
	uint64_t max_size;
};

static int
mkdir_p(const char *path, struct npufarm_err *err)
{
	char buf[4096], *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return err_set(err, -ENAMETOOLONG, "%s: path too long", path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return err_set(err, -errno, "data dir %s: %s", buf,
			    strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0750) < 0 && errno != EEXIST)
		return err_set(
		    err, -errno, "data dir %s: %s", buf, strerror(errno));
	return 0;
}

/*
 * Open (creating) the store under @data_dir; artifacts over @max_size
 * bytes are refused.  Leftover temporary files of an interrupted upload
 * are removed.
 */
int
artifacts_open(const char *data_dir, uint64_t max_size,
    struct artifacts **ret_store, struct npufarm_err *err)
{
	struct artifacts *a;
	int r;

	a = calloc(1, sizeof(*a));
	if (a == NULL || asprintf(&a->dir, "%s/artifacts", data_dir) < 0) {
		free(a);
		return err_set(err, -ENOMEM, "out of memory");
	}
	a->dirfd = -1;
	a->max_size = max_size;
	r = mkdir_p(a->dir, err);
	if (r < 0)
		goto fail;
	a->dirfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (a->dirfd < 0) {
		r = err_set(
		    err, -errno, "data dir %s: %s", a->dir, strerror(errno));
		goto fail;
	}
	*ret_store = a;
	return 0;
fail:
	artifacts_close(a);
	return r;
}

struct artifacts *
artifacts_close(struct artifacts *a)
{
	if (a == NULL)
		return NULL;
	if (a->dirfd >= 0)
		close(a->dirfd);
	free(a->dir);
	free(a);
	return NULL;
}

/* 0 with the size of artifact @sha256, or -ENOENT. */
int
artifacts_size(
    const struct artifacts *a, const char *sha256, uint64_t *ret_size)
{
	struct stat st;

	if (!sha256_util_valid(sha256))
		return -EINVAL;
	if (fstatat(a->dirfd, sha256, &st, 0) < 0)
		return -errno;
	*ret_size = (uint64_t)st.st_size;
	return 0;
}

/*
 * Store @body as artifact @sha256 after checking its hash.  Idempotent:
 * an artifact already stored is not written again (*ret_created false).
 * Returns 0, -EBADMSG (hash mismatch), -EFBIG (over the limit) or -errno,
 * with the reason in @err.  The body is drained.  It blocks for the
 * write and fsync of the file: uploads are rare and the store is local.
 */
int
artifacts_put(struct artifacts *a, const char *sha256, struct evbuffer *body,
    bool *ret_created, struct npufarm_err *err)
{
	size_t len = evbuffer_get_length(body);
	unsigned char md[EVP_MAX_MD_SIZE];
	char got[65], tmp[96];
	struct evbuffer_iovec v[16];
	EVP_MD_CTX *ctx = NULL;
	unsigned int mdlen;
	uint64_t have;
	int fd = -1, n, i, r;

	*ret_created = false;
	if (!sha256_util_valid(sha256))
		return err_set(err, -EINVAL,
		    "artifact name: expected 64 lowercase hex digits");
	if (len > a->max_size)
		return err_set(err, -EFBIG,
		    "artifact of %zu bytes: over the limit of %llu "
		    "(max_artifact)",
		    len, (unsigned long long)a->max_size);
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = err_set(err, -ENOMEM, "out of memory hashing");
		goto out;
	}
	(void)evbuffer_pullup(body, -1);
	n = evbuffer_peek(body, -1, NULL, v, 16);
	for (i = 0; i < n && i < 16; i++)
		(void)EVP_DigestUpdate(ctx, v[i].iov_base, v[i].iov_len);
	(void)EVP_DigestFinal_ex(ctx, md, &mdlen);
	sha256_util_hex(md, got);
	if (strcmp(got, sha256) != 0) {
		r = err_set(
		    err, -EBADMSG, "body's sha256 is %s, not %s", got, sha256);
		goto out;
	}
	if (artifacts_size(a, sha256, &have) == 0) {
		r = 0; /* already stored */
		goto out;
	}
	(void)snprintf(tmp, sizeof(tmp), ".tmp-%s-%ld", sha256, (long)getpid());
	fd = openat(
	    a->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		r = err_set(
		    err, -errno, "storing artifact: %s", strerror(errno));
		goto out;
	}
	while (evbuffer_get_length(body) > 0)
		if (evbuffer_write(body, fd) < 0) {
			r = err_set(err, -errno, "storing artifact: %s",
			    strerror(errno));
			goto unlink;
		}
	if (fsync(fd) < 0 || renameat(a->dirfd, tmp, a->dirfd, sha256) < 0 ||
	    fsync(a->dirfd) < 0) {
		r = err_set(
		    err, -errno, "storing artifact: %s", strerror(errno));
		goto unlink;
	}
	*ret_created = true;
	r = 0;
	goto out;
unlink:
	(void)unlinkat(a->dirfd, tmp, 0);
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(ctx);
	(void)evbuffer_drain(body, evbuffer_get_length(body));
	return r;
}

/* Up to @len bytes of artifact @sha256 from @offset into @buf, or -errno. */
ssize_t
artifacts_read(const struct artifacts *a, const char *sha256, uint64_t offset,
    void *buf, size_t len)
{
	ssize_t n;
	int fd;

	if (!sha256_util_valid(sha256))
		return -EINVAL;
	fd = openat(a->dirfd, sha256, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, (off_t)offset);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}
