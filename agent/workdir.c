/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-session work directories (see workdir.h).  Removal walks the tree
 * with openat()/unlinkat() relative to directory fds opened O_NOFOLLOW, so a
 * symlink anywhere below the root, or swapped in during the walk, is
 * unlinked as a name and never entered.
 */
#include "config.h"

#include "workdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

/* Deeper trees than this are left in place with -ELOOP (one fd a level). */
#define WORKDIR_MAX_DEPTH 64

static int remove_tree(int dfd, int depth, struct npufarm_err *err);

/*
 * Create the directory @path (mode 0700; its parent must exist) for a new
 * session.  A leftover of the same name, from an earlier agent that died
 * before cleaning up, is removed first, so the session always starts
 * empty.  On success the canonical absolute path is copied into @ret_abs
 * (capacity @len).  Returns 0 or -errno.  Does not log.
 */
int
workdir_create(
    const char *path, char *ret_abs, size_t len, struct npufarm_err *err)
{
	char abs[PATH_MAX];
	int r;

	if (mkdir(path, 0700) < 0) {
		if (errno != EEXIST)
			return err_set(
			    err, -errno, "mkdir %s: %s", path, strerror(errno));
		r = workdir_remove(path, err);
		if (r < 0)
			return r;
		if (mkdir(path, 0700) < 0)
			return err_set(
			    err, -errno, "mkdir %s: %s", path, strerror(errno));
	}
	if (realpath(path, abs) == NULL)
		return err_set(
		    err, -errno, "realpath %s: %s", path, strerror(errno));
	if (strlen(abs) >= len)
		return err_set(err, -ENAMETOOLONG, "%s: path too long", abs);
	memcpy(ret_abs, abs, strlen(abs) + 1);
	return 0;
}

/*
 * Make sure the agent's own directory @path (its work dir, its cache) is
 * safe to use: created 0700 if missing; if it exists, it must be a real
 * directory (not a symlink), owned by us, and writable by nobody else,
 * or it is refused: someone else could plant files in it, such as a
 * cached artifact that would then run (issue 12).  Returns 0 or -errno
 * (-EPERM for a directory that fails the checks) with @err saying why.
 * Does not log.
 */
int
workdir_prepare(const char *path, struct npufarm_err *err)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return err_set(
		    err, -errno, "mkdir %s: %s", path, strerror(errno));
	if (lstat(path, &st) < 0)
		return err_set(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(err, -EPERM,
		    "%s: not a directory (a symlink?); refusing it", path);
	if (st.st_uid != geteuid())
		return err_set(err, -EPERM,
		    "%s: owned by uid %u, not by us (uid %u); refusing it",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return err_set(err, -EPERM,
		    "%s: writable by others (mode %03o); refusing it", path,
		    (unsigned)(st.st_mode & 0777));
	return 0;
}

/*
 * The default work dir of the agent named @name: under the systemd state
 * dir ($STATE_DIRECTORY), else $XDG_RUNTIME_DIR, else /tmp (where
 * workdir_prepare() refuses one that another user made first).  Returns
 * a malloc'd path, or NULL on OOM.
 */
char *
workdir_default(const char *name)
{
	const char *base = getenv("STATE_DIRECTORY");
	char *path;

	if (base != NULL && strchr(base, ':') != NULL)
		base = NULL; /* several: which one is ours is unclear */
	if (base == NULL || base[0] != '/')
		base = getenv("XDG_RUNTIME_DIR");
	if (base == NULL || base[0] != '/')
		base = "/tmp";
	if (asprintf(&path, "%s/npufarm-agent-%s", base, name) < 0)
		return NULL;
	return path;
}

/* True when @path is @dir or lies below it (both canonical). */
static bool
path_within(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

/*
 * Reject a name whose existing prefix crosses a symlink that resolves
 * outside @dir, or nowhere (a dangling link would let an upload create its
 * target).  @buf holds "@dir/@name"; @off is where the name starts.
 */
static int
check_symlinks(const char *dir, char *buf, size_t off, const char *shown,
    struct npufarm_err *err)
{
	char target[PATH_MAX];
	struct stat st;
	size_t i = off;
	bool more = true;

	while (more) {
		while (buf[i] == '/')
			i++;
		if (buf[i] == '\0')
			break;
		while (buf[i] != '\0' && buf[i] != '/')
			i++;
		more = buf[i] == '/';
		buf[i] = '\0'; /* cut at this component; restored below */
		if (lstat(buf, &st) < 0) {
			/* Nothing deeper exists: the runtime's own call will
			 * create or fail on it inside @dir. */
			buf[i] = more ? '/' : '\0';
			break;
		}
		if (S_ISLNK(st.st_mode) && (realpath(buf, target) == NULL ||
					       !path_within(dir, target))) {
			buf[i] = more ? '/' : '\0';
			return err_set(err, -EPERM,
			    "'%s' crosses a symlink that leads out of the "
			    "session work dir",
			    shown);
		}
		buf[i] = more ? '/' : '\0';
	}
	return 0;
}

/*
 * The path a client's file name @name stands for inside the session work
 * dir @dir (canonical, absolute, as workdir_create() returns it):
 * "@dir/@name" in @buf (capacity @len), as TVM's workpath joins them.
 * Refuses with -EPERM an absolute name, a ".." component, or a symlink on
 * the way that resolves outside @dir; -ENAMETOOLONG when it does not fit.
 * The message quotes @name with control characters escaped.  Does not log.
 */
int
workdir_path(const char *dir, const char *name, char *buf, size_t len,
    struct npufarm_err *err)
{
	char shown[64];
	const char *p;
	size_t dlen = strlen(dir), nlen = strlen(name);

	(void)log_escape(shown, sizeof(shown), name, nlen);
	if (name[0] == '/')
		return err_set(err, -EPERM,
		    "'%s' is an absolute path; names are relative to the "
		    "session work dir",
		    shown);
	for (p = name; *p != '\0';) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return err_set(err, -EPERM,
			    "'%s' has a '..' component; names stay inside "
			    "the session work dir",
			    shown);
		p += n;
		p += strspn(p, "/");
	}
	if (dlen + 1 + nlen >= len || dlen + 1 + nlen >= PATH_MAX)
		return err_set(
		    err, -ENAMETOOLONG, "'%s': path too long", shown);
	memcpy(buf, dir, dlen);
	buf[dlen] = '/';
	memcpy(buf + dlen + 1, name, nlen + 1);
	return check_symlinks(dir, buf, dlen + 1, shown, err);
}

/* Open @name below @dfd as a directory, never through a symlink. */
static int
open_subdir(int dfd, const char *name)
{
	int fd;

	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES) {
		/* A session may chmod its own dirs to 0; take them back. */
		if (fchmodat(dfd, name, S_IRWXU, AT_SYMLINK_NOFOLLOW) == 0)
			fd = openat(dfd, name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		else
			errno = EACCES;
	}
	return fd < 0 ? -errno : fd;
}

/* Remove one entry @name of @dfd; directories recursively. */
static int
remove_entry(int dfd, const char *name, int depth, struct npufarm_err *err)
{
	struct stat st;
	int fd, r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0
				       : err_set(err, -errno, "stat %s: %s",
					     name, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
			return err_set(err, -errno, "unlink %s: %s", name,
			    strerror(errno));
		return 0;
	}
	if (depth >= WORKDIR_MAX_DEPTH)
		return err_set(err, -ELOOP, "%s: nested deeper than %d", name,
		    WORKDIR_MAX_DEPTH);
	fd = open_subdir(dfd, name);
	if (fd < 0)
		return err_set(err, fd, "open %s: %s", name, strerror(-fd));
	r = remove_tree(fd, depth + 1, err); /* closes fd */
	if (r < 0)
		return r;
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return err_set(
		    err, -errno, "rmdir %s: %s", name, strerror(errno));
	return 0;
}

/* Empty the directory open as @dfd; takes ownership of @dfd. */
static int
remove_tree(int dfd, int depth, struct npufarm_err *err)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = fdopendir(dfd);
	if (d == NULL) {
		r = err_set(err, -errno, "fdopendir: %s", strerror(errno));
		(void)close(dfd);
		return r;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		r = remove_entry(dirfd(d), de->d_name, depth, err);
		if (r < 0)
			goto out;
	}
	if (errno != 0)
		r = err_set(err, -errno, "readdir: %s", strerror(errno));
out:
	(void)closedir(d);
	return r;
}

/*
 * Remove @path and everything below it without following any symlink: a
 * link is unlinked, never entered, and @path itself being a symlink only
 * removes the link.  A missing @path is success.  Directories the session
 * made unreadable are chmod'ed back first.  Returns 0 or -errno (the first
 * failure, with the entry named in @err; what could be removed is gone).
 * Does not log.
 */
int
workdir_remove(const char *path, struct npufarm_err *err)
{
	int r;

	r = remove_entry(AT_FDCWD, path, 0, err);
	if (r < 0)
		err_prefix(err, "removing %s: ", path);
	return r;
}
