/*
 * test_store.c — the statefs store (workers/state/store.c, chunks.c,
 * tree.c): namespace calls and their errors, file content (unaligned,
 * spanning, sparse, large), sessions (commit, abort, reopen, ro views
 * beside a rw session, a full map), chunk reference counts, the sync
 * calls, crash consistency under SIGKILL, the cost of a small write
 * into a large file, and the write-back buffer of a partly written chunk
 * (read back, committed, aborted, truncated, unlinked, lost in a crash).
 *
 * Each test opens a fresh store in its own directory under a mkdtemp
 * directory in /dev/shm (/tmp when that is missing) and checks the
 * committed store with sfs_verify, which recomputes every hash and
 * refcount from the stored bytes. The crash test prints its seed;
 * STORE_CRASH_SEED replays it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "err.h"
#include "hash.h"
#include "store.h"

#define OK(x)	assert_int_equal((x), 0)
#define KILLS	6
#define GiB	(1ULL << 30)

static char base[64];
static char dir[128];
static int ntest;

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
group_setup(void **state)
{
	const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(base, sizeof(base), "%s/test_store.XXXXXX", root);
	return mkdtemp(base) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	return nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
setup(void **state)
{
	struct sfs *s;

	snprintf(dir, sizeof(dir), "%s/%d", base, ++ntest);
	if (sfs_open(dir, &s) != 0)
		return -1;
	*state = s;
	return 0;
}

static int
teardown(void **state)
{
	struct sfs *s = *state;

	if (s != NULL) {
		assert_int_equal(sfs_verify(s), 0);
		sfs_close(s);
	}
	return 0;
}

static uint64_t
mkfile(struct sfs_view *v, uint64_t parent, const char *name,
    const void *data, size_t len)
{
	struct sfs_attr a;

	OK(sfs_create(v, parent, name, 0644, &a));
	if (len > 0)
		assert_int_equal(sfs_write(v, a.ino, 0, len, data),
		    (ssize_t)len);
	return a.ino;
}

static uint64_t
ino_of(struct sfs_view *v, uint64_t parent, const char *name)
{
	struct sfs_attr a;

	OK(sfs_lookup(v, parent, name, &a));
	return a.ino;
}

/* A chunk stored by its known hash, its bytes copied at once (as state
 * sync does for each response). */
static int
put_hashed(struct sfs_view *v, const void *bytes, size_t len,
    const uint8_t hash[32])
{
	struct sfs_later l;
	int r;

	if ((r = sfs_chunk_put_later(v, bytes, len, hash, &l)) != 0)
		return r;
	return sfs_chunk_copy(v, &l, 1);
}

static void
commit(struct sfs_view *v)
{
	uint8_t st[32], pt[32];

	OK(sfs_commit(v, st, pt));
}

static void
test_basics(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v, *v2;
	struct sfs_attr a, d;
	uint8_t h[32];
	char buf[64];
	uint64_t f;

	OK(sfs_begin_rw(s, &v));
	assert_int_equal(sfs_begin_rw(s, &v2), HP_EBUSY);
	assert_true(sfs_view_is_rw(v));
	OK(sfs_getattr(v, SFS_STATE_INO, &a));
	assert_true(S_ISDIR(a.mode));
	OK(sfs_lookup(v, SFS_ROOT_INO, "patch.cfg", &a));
	assert_int_equal(a.ino, SFS_PATCH_INO);
	assert_true(S_ISREG(a.mode));

	f = mkfile(v, SFS_STATE_INO, "a.txt", "hello world", 11);
	assert_int_equal(sfs_create(v, SFS_STATE_INO, "a.txt", 0644, &a),
	    -EEXIST);
	assert_int_equal(sfs_create(v, f, "x", 0644, &a), -ENOTDIR);
	assert_int_equal(sfs_create(v, SFS_STATE_INO, "a/b", 0644, &a),
	    -EINVAL);
	assert_int_equal(sfs_create(v, SFS_STATE_INO, "..", 0644, &a),
	    -EINVAL);
	memset(buf, 'n', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	{
		char longname[300];

		memset(longname, 'x', 256);
		longname[256] = '\0';
		assert_int_equal(sfs_create(v, SFS_STATE_INO, longname, 0644,
		    &a), -ENAMETOOLONG);
	}
	assert_int_equal(sfs_read(v, f, 0, sizeof(buf), buf), 11);
	assert_memory_equal(buf, "hello world", 11);
	assert_int_equal(sfs_read(v, f, 6, 3, buf), 3);
	assert_memory_equal(buf, "wor", 3);
	assert_int_equal(sfs_read(v, f, 11, 10, buf), 0);
	assert_int_equal(sfs_read(v, f, 100, 10, buf), 0);
	assert_int_equal(sfs_write(v, f, 6, 5, "WORLD"), 5);
	assert_int_equal(sfs_read(v, f, 0, sizeof(buf), buf), 11);
	assert_memory_equal(buf, "hello WORLD", 11);

	OK(sfs_mkdir(v, SFS_STATE_INO, "sub", 0700, &d));
	assert_true(S_ISDIR(d.mode));
	assert_int_equal(d.mode & 07777, 0700);
	assert_int_equal(d.nlink, 2);
	OK(sfs_getattr(v, SFS_STATE_INO, &a));
	assert_int_equal(a.nlink, 3);
	mkfile(v, d.ino, "inner", "x", 1);
	assert_int_equal(sfs_rmdir(v, SFS_STATE_INO, "sub"), -ENOTEMPTY);
	assert_int_equal(sfs_rmdir(v, SFS_STATE_INO, "a.txt"), -ENOTDIR);
	assert_int_equal(sfs_unlink(v, SFS_STATE_INO, "sub"), -EISDIR);
	assert_int_equal(sfs_unlink(v, SFS_STATE_INO, "nope"), -ENOENT);
	assert_int_equal(sfs_read(v, d.ino, 0, 1, buf), -EISDIR);
	assert_int_equal(sfs_write(v, d.ino, 0, 1, "x"), -EISDIR);
	OK(sfs_unlink(v, d.ino, "inner"));
	OK(sfs_rmdir(v, SFS_STATE_INO, "sub"));
	assert_int_equal(sfs_lookup(v, SFS_STATE_INO, "sub", &a), -ENOENT);
	assert_int_equal(sfs_getattr(v, d.ino, &a), -ENOENT);
	OK(sfs_getattr(v, SFS_STATE_INO, &a));
	assert_int_equal(a.nlink, 2);
	assert_int_equal(sfs_node_hash(v, d.ino, h), -ENOENT);
	assert_int_equal(sfs_rmdir(v, SFS_ROOT_INO, "state"), -EPERM);
	assert_int_equal(sfs_unlink(v, SFS_ROOT_INO, "patch.cfg"), -EPERM);
	OK(sfs_unlink(v, SFS_STATE_INO, "a.txt"));
	assert_int_equal(sfs_getattr(v, f, &a), -ENOENT);
	commit(v);

	OK(sfs_begin_ro(s, &v));
	assert_false(sfs_view_is_rw(v));
	assert_int_equal(sfs_create(v, SFS_STATE_INO, "b", 0644, &a), -EROFS);
	assert_int_equal(sfs_write(v, SFS_PATCH_INO, 0, 1, "x"), -EROFS);
	assert_int_equal(sfs_mkdir(v, SFS_STATE_INO, "b", 0755, &a), -EROFS);
	sfs_end(v);
}

static void
test_rename(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	struct sfs_attr a, d1, d2;
	char buf[16];
	uint64_t f1, f2;

	OK(sfs_begin_rw(s, &v));
	f1 = mkfile(v, SFS_STATE_INO, "one", "1111", 4);
	f2 = mkfile(v, SFS_STATE_INO, "two", "22", 2);
	OK(sfs_mkdir(v, SFS_STATE_INO, "d1", 0755, &d1));
	OK(sfs_mkdir(v, d1.ino, "d2", 0755, &d2));

	assert_int_equal(sfs_rename(v, SFS_STATE_INO, "one", SFS_STATE_INO,
	    "two", RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(sfs_rename(v, SFS_STATE_INO, "one", SFS_STATE_INO,
	    "two", RENAME_NOREPLACE | RENAME_EXCHANGE), -EINVAL);
	assert_int_equal(sfs_rename(v, SFS_STATE_INO, "d1", d2.ino, "x", 0),
	    -EINVAL);
	assert_int_equal(sfs_rename(v, SFS_STATE_INO, "d1", d1.ino, "x", 0),
	    -EINVAL);
	assert_int_equal(sfs_rename(v, SFS_STATE_INO, "one", SFS_STATE_INO,
	    "d1", 0), -EISDIR);
	assert_int_equal(sfs_rename(v, SFS_STATE_INO, "d1", SFS_STATE_INO,
	    "one", 0), -ENOTDIR);
	assert_int_equal(sfs_rename(v, SFS_STATE_INO, "nope", SFS_STATE_INO,
	    "x", 0), -ENOENT);
	assert_int_equal(sfs_rename(v, SFS_ROOT_INO, "state", SFS_STATE_INO,
	    "x", 0), -EPERM);
	OK(sfs_rename(v, SFS_STATE_INO, "one", SFS_STATE_INO, "one", 0));

	/* Over an existing file: the target's content goes. */
	OK(sfs_rename(v, SFS_STATE_INO, "one", SFS_STATE_INO, "two", 0));
	assert_int_equal(sfs_lookup(v, SFS_STATE_INO, "one", &a), -ENOENT);
	assert_int_equal(ino_of(v, SFS_STATE_INO, "two"), f1);
	assert_int_equal(sfs_getattr(v, f2, &a), -ENOENT);
	assert_int_equal(sfs_read(v, f1, 0, sizeof(buf), buf), 4);

	/* Exchange a file and a directory across parents. */
	OK(sfs_rename(v, SFS_STATE_INO, "two", d1.ino, "d2",
	    RENAME_EXCHANGE));
	assert_int_equal(ino_of(v, SFS_STATE_INO, "two"), d2.ino);
	assert_int_equal(ino_of(v, d1.ino, "d2"), f1);
	OK(sfs_getattr(v, d1.ino, &a));
	assert_int_equal(a.nlink, 2);
	OK(sfs_getattr(v, SFS_STATE_INO, &a));
	assert_int_equal(a.nlink, 4);
	assert_int_equal(sfs_rename(v, SFS_STATE_INO, "two", SFS_STATE_INO,
	    "missing", RENAME_EXCHANGE), -ENOENT);

	/* A directory over an empty one; over a non-empty one fails. */
	assert_int_equal(sfs_rename(v, SFS_STATE_INO, "two", SFS_STATE_INO,
	    "d1", 0), -ENOTEMPTY);
	commit(v);
	assert_int_equal(sfs_verify(s), 0);

	OK(sfs_begin_rw(s, &v));
	OK(sfs_mkdir(v, SFS_STATE_INO, "empty", 0755, &a));
	OK(sfs_rename(v, SFS_STATE_INO, "two", SFS_STATE_INO, "empty", 0));
	assert_int_equal(ino_of(v, SFS_STATE_INO, "empty"), d2.ino);
	OK(sfs_getattr(v, SFS_STATE_INO, &a));
	assert_int_equal(a.nlink, 4);
	OK(sfs_rename(v, SFS_STATE_INO, "empty", d1.ino, "moved", 0));
	OK(sfs_getattr(v, SFS_STATE_INO, &a));
	assert_int_equal(a.nlink, 3);
	OK(sfs_getattr(v, d1.ino, &a));
	assert_int_equal(a.nlink, 3);
	commit(v);
}

struct listing {
	char names[64][16];
	uint64_t cookies[64];
	int n, stop_at;
};

static int
collect(void *arg, const char *name, const struct sfs_attr *a,
    uint64_t cookie)
{
	struct listing *l = arg;

	if (l->n == l->stop_at)
		return 1;
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	l->cookies[l->n++] = cookie;
	return 0;
}

static void
test_readdir(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	struct listing l;
	const char *names[] = { "b", "a", "c", "ab", "B", "z" };
	const char *sorted[] = { "B", "a", "ab", "b", "c", "z" };
	struct sfs_attr a;

	OK(sfs_begin_rw(s, &v));
	for (size_t i = 0; i < 6; i++)
		mkfile(v, SFS_STATE_INO, names[i], NULL, 0);
	memset(&l, 0, sizeof(l));
	l.stop_at = 64;
	OK(sfs_readdir(v, SFS_STATE_INO, 0, collect, &l));
	assert_int_equal(l.n, 6);
	for (int i = 0; i < 6; i++)
		assert_string_equal(l.names[i], sorted[i]);

	/* Resume in pieces of two. */
	memset(&l, 0, sizeof(l));
	l.stop_at = 2;
	OK(sfs_readdir(v, SFS_STATE_INO, 0, collect, &l));
	assert_int_equal(l.n, 2);
	l.stop_at = 4;
	OK(sfs_readdir(v, SFS_STATE_INO, l.cookies[1], collect, &l));
	assert_string_equal(l.names[2], "ab");
	assert_string_equal(l.names[3], "b");
	/* The entry the cookie names goes (and another is renamed): resume
	 * still starts after its old place. */
	OK(sfs_unlink(v, SFS_STATE_INO, "b"));
	OK(sfs_rename(v, SFS_STATE_INO, "ab", SFS_STATE_INO, "zz", 0));
	l.stop_at = 64;
	OK(sfs_readdir(v, SFS_STATE_INO, l.cookies[3], collect, &l));
	assert_int_equal(l.n, 7);
	assert_string_equal(l.names[4], "c");
	assert_string_equal(l.names[5], "z");
	assert_string_equal(l.names[6], "zz");
	commit(v);

	/* An entry renamed after it was listed resumes after its new name,
	 * never at its old one (which would list it again, forever). */
	OK(sfs_begin_rw(s, &v));
	memset(&l, 0, sizeof(l));
	l.stop_at = 1;
	OK(sfs_readdir(v, SFS_STATE_INO, 0, collect, &l));
	assert_string_equal(l.names[0], "B");
	OK(sfs_rename(v, SFS_STATE_INO, "B", SFS_STATE_INO, "y", 0));
	l.stop_at = 64;
	OK(sfs_readdir(v, SFS_STATE_INO, l.cookies[0], collect, &l));
	assert_int_equal(l.n, 3);
	assert_string_equal(l.names[1], "z");
	assert_string_equal(l.names[2], "zz");
	commit(v);

	OK(sfs_begin_ro(s, &v));
	memset(&l, 0, sizeof(l));
	l.stop_at = 64;
	OK(sfs_readdir(v, SFS_ROOT_INO, 0, collect, &l));
	assert_int_equal(l.n, 2);
	assert_string_equal(l.names[0], "patch.cfg");
	assert_string_equal(l.names[1], "state");
	assert_int_equal(sfs_readdir(v, SFS_PATCH_INO, 0, collect, &l),
	    -ENOTDIR);
	(void)a;
	sfs_end(v);
}

static void
test_symlink(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	struct sfs_attr a;
	char buf[64];

	OK(sfs_begin_rw(s, &v));
	OK(sfs_symlink(v, SFS_STATE_INO, "l", "../some/target", &a));
	assert_true(S_ISLNK(a.mode));
	assert_int_equal(a.size, 14);
	assert_int_equal(sfs_readlink(v, a.ino, buf, sizeof(buf)), 14);
	assert_string_equal(buf, "../some/target");
	assert_int_equal(sfs_readlink(v, a.ino, buf, 14), -ERANGE);
	assert_int_equal(sfs_readlink(v, SFS_STATE_INO, buf, sizeof(buf)),
	    -EINVAL);
	assert_int_equal(sfs_symlink(v, SFS_STATE_INO, "e", "", &a), -ENOENT);
	assert_int_equal(sfs_symlink(v, SFS_STATE_INO, "l", "x", &a), -EEXIST);
	OK(sfs_unlink(v, SFS_STATE_INO, "l"));
	commit(v);
}

static void
test_setattr_statfs(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	struct sfs_attr a, in;
	struct sfs_statfs sf;
	uint8_t buf[200000];
	uint64_t f;

	OK(sfs_begin_rw(s, &v));
	memset(buf, 7, sizeof(buf));
	f = mkfile(v, SFS_STATE_INO, "f", buf, sizeof(buf));
	OK(sfs_getattr(v, f, &a));
	assert_int_equal(a.size, sizeof(buf));
	assert_int_equal(a.blocks, (sizeof(buf) + 511) / 512);
	memset(&in, 0, sizeof(in));
	in.mode = 04755;
	OK(sfs_setattr(v, f, SFS_SET_MODE, &in, &a));
	assert_int_equal(a.mode, S_IFREG | 04755);
	in.size = 70000;
	OK(sfs_setattr(v, f, SFS_SET_SIZE, &in, &a));
	assert_int_equal(a.size, 70000);
	assert_int_equal(a.blocks, (70000 + 511) / 512);
	in.size = 300000;
	OK(sfs_setattr(v, f, SFS_SET_SIZE, &in, &a));
	assert_int_equal(sfs_read(v, f, 0, sizeof(buf), buf), sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != (i < 70000 ? 7 : 0))
			fail_msg("byte %zu is %d", i, buf[i]);
	in.mtime_ns = 1234567890123ULL;
	in.atime_ns = 42;
	OK(sfs_setattr(v, f, SFS_SET_MTIME | SFS_SET_ATIME, &in, &a));
	assert_int_equal(a.mtime_ns, 1234567890123ULL);
	assert_int_equal(a.atime_ns, 42);
	assert_int_equal(a.size, 300000);
	in.size = SFS_MAX_FILE + 1;
	assert_int_equal(sfs_setattr(v, f, SFS_SET_SIZE, &in, &a), -EFBIG);
	assert_int_equal(sfs_setattr(v, SFS_STATE_INO, SFS_SET_SIZE, &in, &a),
	    -EISDIR);
	in.mode = 0700;
	OK(sfs_setattr(v, SFS_STATE_INO, SFS_SET_MODE, &in, &a));
	assert_int_equal(a.mode, S_IFDIR | 0700);
	OK(sfs_statfs(v, &sf));
	assert_int_equal(sf.chunks, 2);		/* full 7s, 70000-65536 7s */
	assert_int_equal(sf.inodes, 4);
	assert_true(sf.bytes_used >= 70000);
	commit(v);
}

static void
test_large_sparse(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	struct sfs_attr a;
	uint8_t *buf = malloc(3 * SFS_CHUNK);
	uint64_t f, off = 3 * GiB + 12345;
	struct sfs_statfs sf;

	assert_non_null(buf);
	OK(sfs_begin_rw(s, &v));
	f = mkfile(v, SFS_STATE_INO, "big", NULL, 0);
	for (int i = 0; i < 2 * SFS_CHUNK; i++)
		buf[i] = (uint8_t)(i % 251 + 1);
	/* Unaligned, spanning three chunks, far out. */
	assert_int_equal(sfs_write(v, f, off, 2 * SFS_CHUNK, buf),
	    2 * SFS_CHUNK);
	OK(sfs_getattr(v, f, &a));
	assert_int_equal(a.size, off + 2 * SFS_CHUNK);
	assert_int_equal(a.blocks, (2 * SFS_CHUNK + 12345 + 511) / 512);
	memset(buf, 0xee, 3 * SFS_CHUNK);
	assert_int_equal(sfs_read(v, f, GiB, 3 * SFS_CHUNK, buf),
	    3 * SFS_CHUNK);
	for (int i = 0; i < 3 * SFS_CHUNK; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(sfs_read(v, f, off - 10, 3 * SFS_CHUNK, buf),
	    2 * SFS_CHUNK + 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(buf[i], 0);
	for (int i = 0; i < 2 * SFS_CHUNK; i++)
		if (buf[10 + i] != (uint8_t)(i % 251 + 1))
			fail_msg("byte %d", i);
	assert_int_equal(sfs_write(v, f, SFS_MAX_FILE - 1, 2, buf), -EFBIG);
	assert_int_equal(sfs_write(v, f, SFS_MAX_FILE - 1, 1, "\x01"), 1);
	OK(sfs_getattr(v, f, &a));
	assert_int_equal(a.size, SFS_MAX_FILE);
	OK(sfs_statfs(v, &sf));
	assert_int_equal(sf.chunks, 4);
	commit(v);
	assert_int_equal(sfs_verify(s), 0);
	OK(sfs_begin_rw(s, &v));
	OK(sfs_unlink(v, SFS_STATE_INO, "big"));
	OK(sfs_statfs(v, &sf));
	assert_int_equal(sf.chunks, 0);
	commit(v);
	free(buf);
}

/*
 * sfs_read_iov gives the bytes sfs_read copies, in place: stored bytes,
 * zeros for holes and short chunks, short at EOF; in a session and in a
 * read-only view; sfs_read in steps larger than one batch of pieces.
 */
static void
check_iov(struct sfs_view *v, uint64_t f, uint64_t off, size_t size,
    const uint8_t *want, size_t wantlen)
{
	struct iovec iov[SFS_READ_IOV(3 * SFS_CHUNK)];
	uint8_t *got = malloc(size + 1);
	size_t niov, at = 0;

	assert_non_null(got);
	assert_int_equal(sfs_read_iov(v, f, off, size, iov, 1, &niov),
	    -EINVAL);
	assert_int_equal(sfs_read_iov(v, f, off, size, iov,
	    sizeof(iov) / sizeof(iov[0]), &niov), (ssize_t)wantlen);
	for (size_t i = 0; i < niov; i++) {
		assert_true(at + iov[i].iov_len <= wantlen);
		memcpy(got + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	assert_int_equal(at, wantlen);
	assert_memory_equal(got, want, wantlen);
	assert_int_equal(sfs_read(v, f, off, size, got), (ssize_t)wantlen);
	assert_memory_equal(got, want, wantlen);
	free(got);
}

static void
test_read_iov(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	size_t len = 5 * SFS_CHUNK / 2, big = 40 * SFS_CHUNK + 7;
	uint8_t *img = calloc(1, big), *buf = malloc(big);
	uint64_t f, g;

	assert_non_null(img);
	assert_non_null(buf);
	for (size_t i = 0; i < SFS_CHUNK / 2; i++)	/* chunk 1: half */
		img[SFS_CHUNK + i] = (uint8_t)(i % 253 + 1);
	for (size_t i = 2 * SFS_CHUNK; i < len; i++)	/* chunk 2 */
		img[i] = (uint8_t)(i % 249 + 1);
	OK(sfs_begin_rw(s, &v));
	f = mkfile(v, SFS_STATE_INO, "f", NULL, 0);
	assert_int_equal(sfs_write(v, f, SFS_CHUNK, SFS_CHUNK / 2,
	    img + SFS_CHUNK), SFS_CHUNK / 2);
	assert_int_equal(sfs_write(v, f, 2 * SFS_CHUNK, len - 2 * SFS_CHUNK,
	    img + 2 * SFS_CHUNK), (ssize_t)(len - 2 * SFS_CHUNK));
	for (int pass = 0; pass < 2; pass++) {
		check_iov(v, f, 0, 3 * SFS_CHUNK, img, len);
		check_iov(v, f, 100, SFS_CHUNK, img + 100, SFS_CHUNK);
		check_iov(v, f, SFS_CHUNK + 5, 2 * SFS_CHUNK,
		    img + SFS_CHUNK + 5, len - SFS_CHUNK - 5);
		check_iov(v, f, len - 1, 10, img + len - 1, 1);
		check_iov(v, f, len, 10, img, 0);
		if (pass == 0) {
			commit(v);
			OK(sfs_begin_ro(s, &v));
		}
	}
	sfs_end(v);
	for (size_t i = 0; i < big; i++)
		img[i] = (uint8_t)(i % 241 + 1);
	OK(sfs_begin_rw(s, &v));
	g = mkfile(v, SFS_STATE_INO, "g", img, big);
	commit(v);
	OK(sfs_begin_ro(s, &v));
	assert_int_equal(sfs_read(v, g, 3, big, buf), (ssize_t)(big - 3));
	assert_memory_equal(buf, img + 3, big - 3);
	sfs_end(v);
	free(buf);
	free(img);
}

static void
test_durability(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v, *ro;
	uint8_t st[32], pt[32], st2[32], pt2[32], h[32];
	struct sfs_attr a;
	char buf[16];

	OK(sfs_hashes(s, st, pt));
	OK(sfs_begin_rw(s, &v));
	mkfile(v, SFS_STATE_INO, "kept", "data", 4);
	OK(sfs_write(v, SFS_PATCH_INO, 0, 7, "{\"x\":1}") == 7 ? 0 : -1);
	/* A ro view beside the session sees the committed state only. */
	OK(sfs_begin_ro(s, &ro));
	assert_int_equal(sfs_lookup(ro, SFS_STATE_INO, "kept", &a), -ENOENT);
	OK(sfs_getattr(ro, SFS_PATCH_INO, &a));
	assert_int_equal(a.size, 0);
	OK(sfs_node_hash(ro, SFS_STATE_INO, h));
	assert_memory_equal(h, st, 32);
	OK(sfs_node_hash(v, SFS_STATE_INO, h));
	assert_memory_not_equal(h, st, 32);
	OK(sfs_commit(v, st2, pt2));
	assert_memory_equal(h, st2, 32);
	assert_memory_not_equal(pt, pt2, 32);
	/* The old ro view still reads the old root. */
	assert_int_equal(sfs_lookup(ro, SFS_STATE_INO, "kept", &a), -ENOENT);
	sfs_end(ro);

	/* Abort discards. */
	OK(sfs_begin_rw(s, &v));
	mkfile(v, SFS_STATE_INO, "dropped", "x", 1);
	OK(sfs_unlink(v, SFS_STATE_INO, "kept"));
	sfs_abort(v);

	sfs_close(s);
	*state = NULL;
	OK(sfs_open(dir, &s));
	*state = s;
	OK(sfs_hashes(s, st, pt));
	assert_memory_equal(st, st2, 32);
	assert_memory_equal(pt, pt2, 32);
	OK(sfs_begin_ro(s, &v));
	assert_int_equal(sfs_lookup(v, SFS_STATE_INO, "dropped", &a), -ENOENT);
	assert_int_equal(sfs_read(v, ino_of(v, SFS_STATE_INO, "kept"), 0,
	    sizeof(buf), buf), 4);
	assert_memory_equal(buf, "data", 4);
	sfs_end(v);
}

static void
test_map_full(void **state)
{
	struct sfs *s;
	struct sfs_view *v;
	uint8_t st[32], pt[32], st2[32], pt2[32], *buf;
	char sub[160];
	ssize_t r = 0;
	uint64_t f;

	snprintf(sub, sizeof(sub), "%s/full", dir);
	setenv("HPD_STATE_MAPSIZE", "1048576", 1);
	OK(sfs_open(sub, &s));
	unsetenv("HPD_STATE_MAPSIZE");
	OK(sfs_hashes(s, st, pt));
	buf = malloc(SFS_CHUNK);
	OK(sfs_begin_rw(s, &v));
	f = mkfile(v, SFS_STATE_INO, "f", NULL, 0);
	for (int i = 0; i < 64 && r >= 0; i++) {
		memset(buf, i + 1, SFS_CHUNK);
		r = sfs_write(v, f, (uint64_t)i * SFS_CHUNK, SFS_CHUNK, buf);
	}
	assert_int_equal(r, -ENOSPC);
	assert_int_equal(sfs_write(v, f, 0, 1, buf), -EIO);
	assert_int_equal(sfs_commit(v, st2, pt2), HP_EIO);
	OK(sfs_hashes(s, st2, pt2));
	assert_memory_equal(st, st2, 32);
	OK(sfs_begin_rw(s, &v));		/* the store still works */
	mkfile(v, SFS_STATE_INO, "small", "x", 1);
	commit(v);
	assert_int_equal(sfs_verify(s), 0);
	sfs_close(s);
	free(buf);
}

static void
test_refcounts(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	struct sfs_statfs sf;
	uint8_t buf[SFS_CHUNK + 100], out[SFS_CHUNK], h[32];
	size_t len;

	memset(buf, 'q', sizeof(buf));
	OK(sfs_begin_rw(s, &v));
	mkfile(v, SFS_STATE_INO, "a", buf, sizeof(buf));
	mkfile(v, SFS_STATE_INO, "b", buf, SFS_CHUNK);
	OK(sfs_statfs(v, &sf));
	assert_int_equal(sf.chunks, 2);		/* shared full chunk + tail */
	commit(v);
	assert_int_equal(sfs_verify(s), 0);
	OK(sfs_begin_rw(s, &v));
	OK(sfs_chunk_put(v, buf, SFS_CHUNK, h));
	OK(sfs_unlink(v, SFS_STATE_INO, "a"));
	OK(sfs_statfs(v, &sf));
	assert_int_equal(sf.chunks, 1);
	OK(sfs_chunk_get(v, h, out, sizeof(out), &len));
	assert_int_equal(len, SFS_CHUNK);
	assert_memory_equal(out, buf, SFS_CHUNK);
	commit(v);
	assert_int_equal(sfs_verify(s), 0);
	OK(sfs_begin_rw(s, &v));
	OK(sfs_unlink(v, SFS_STATE_INO, "b"));
	assert_int_equal(sfs_chunk_get(v, h, out, sizeof(out), &len), -ENOENT);
	OK(sfs_statfs(v, &sf));
	assert_int_equal(sf.chunks, 0);
	commit(v);

	/* Rewriting a chunk many times leaves one version. */
	OK(sfs_begin_rw(s, &v));
	mkfile(v, SFS_STATE_INO, "c", buf, SFS_CHUNK);
	for (int i = 0; i < 100; i++)
		assert_int_equal(sfs_write(v, ino_of(v, SFS_STATE_INO, "c"),
		    (uint64_t)i * 37, 1, "z"), 1);
	OK(sfs_statfs(v, &sf));
	assert_int_equal(sf.chunks, 1);
	commit(v);
}

struct chunklist {
	uint8_t h[64][32];
	uint64_t n;
};

static int
chunk_cb(void *arg, uint64_t index, const uint8_t hash[32])
{
	struct chunklist *c = arg;

	assert_int_equal(index, c->n);
	memcpy(c->h[c->n++], hash, 32);
	return 0;
}

struct hashedlist {
	char names[8][16];
	uint8_t h[8][32];
	int n;
};

static int
hashed_cb(void *arg, const char *name, mode_t mode, uint64_t size,
    const uint8_t hash[32])
{
	struct hashedlist *l = arg;

	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	memcpy(l->h[l->n++], hash, 32);
	return 0;
}

/*
 * Chunks stored with their copy left for later (state sync): batches
 * staged and written on the store's second thread, the caller's buffer
 * reused at once, a batch too large to stage written in place, small
 * and all-zero chunks, a duplicate; files set from them read back the
 * bytes; an aborted session leaves none of them; a deleted chunk waits
 * for its write. sfs_verify (teardown) rehashes every stored byte.
 */
#define LATER_N	100

static void
test_chunk_copy_later(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	struct sfs_later later[70];
	struct sfs_attr a;
	uint8_t *orig = malloc((size_t)LATER_N * SFS_CHUNK);
	uint8_t *net = malloc(70 * SFS_CHUNK), *back = malloc(SFS_CHUNK);
	uint8_t (*h)[32] = calloc(LATER_N, 32), zh[32];
	size_t got, at;
	uint64_t f;
	int batch[] = { 32, 32, 1, 35 };

	assert_non_null(orig);
	assert_non_null(net);
	assert_non_null(back);
	assert_non_null(h);
	srand(7);
	for (size_t i = 0; i < (size_t)LATER_N * SFS_CHUNK; i++)
		orig[i] = (uint8_t)rand();
	for (int i = 0; i < LATER_N; i++)
		hp_hash(orig + (size_t)i * SFS_CHUNK, SFS_CHUNK, h[i]);

	/* Late writes are slow: whatever reads them must wait for them. */
	OK(sfs_test_slow_copies(s, 30));
	OK(sfs_begin_rw(s, &v));
	at = 0;
	for (size_t b = 0; b < sizeof(batch) / sizeof(batch[0]); b++) {
		/* The bytes arrive in a buffer the caller reuses. */
		memcpy(net, orig + at * SFS_CHUNK, (size_t)batch[b] * SFS_CHUNK);
		for (int i = 0; i < batch[b]; i++)
			OK(sfs_chunk_put_later(v, net + (size_t)i * SFS_CHUNK,
			    SFS_CHUNK, h[at + i], &later[i]));
		OK(sfs_chunk_copy(v, later, (size_t)batch[b]));
		memset(net, 0xee, (size_t)batch[b] * SFS_CHUNK);
		at += (size_t)batch[b];
	}
	assert_int_equal(at, LATER_N);
	/* One call with more pieces than a stage holds, a duplicate among
	 * them; a small chunk (copied at once) and a hole. */
	for (int i = 0; i < 70; i++) {
		memcpy(net + (size_t)i * SFS_CHUNK,
		    orig + (size_t)(i % 40) * SFS_CHUNK, SFS_CHUNK);
		OK(sfs_chunk_put_later(v, net + (size_t)i * SFS_CHUNK,
		    SFS_CHUNK, h[i % 40], &later[i]));
		assert_int_equal(later[i].len, 0);	/* stored already */
	}
	OK(sfs_chunk_copy(v, later, 70));
	memset(back, 0, SFS_CHUNK);
	hp_hash(back, 100, zh);
	OK(sfs_chunk_put_later(v, back, 100, zh, &later[0]));
	assert_int_equal(later[0].len, 0);		/* a hole */
	memset(back, 3, 100);
	hp_hash(back, 100, zh);
	OK(sfs_chunk_put_later(v, back, 100, zh, &later[0]));
	assert_int_equal(later[0].len, 0);		/* in a leaf: now */
	OK(sfs_chunk_copy(v, later, 1));
	OK(sfs_chunk_get(v, zh, back, SFS_CHUNK, &got));
	assert_int_equal(got, 100);
	assert_int_equal(back[99], 3);

	OK(sfs_create(v, SFS_STATE_INO, "f", 0644, &a));
	f = a.ino;
	OK(sfs_file_set(v, f, (uint64_t)LATER_N * SFS_CHUNK, 0644,
	    (const uint8_t (*)[32])h, LATER_N));
	for (int i = 0; i < LATER_N; i++) {
		assert_int_equal(sfs_read(v, f, (uint64_t)i * SFS_CHUNK,
		    SFS_CHUNK, back), SFS_CHUNK);
		assert_memory_equal(back, orig + (size_t)i * SFS_CHUNK,
		    SFS_CHUNK);
	}
	/* Unreferencing a file's chunks deletes them right after their
	 * late writes (the session is still the same). */
	memcpy(net, orig, 32 * SFS_CHUNK);
	OK(sfs_unlink(v, SFS_STATE_INO, "f"));
	for (int i = 0; i < 32; i++)
		OK(sfs_chunk_put_later(v, net + (size_t)i * SFS_CHUNK,
		    SFS_CHUNK, h[i], &later[i]));
	OK(sfs_chunk_copy(v, later, 32));
	OK(sfs_create(v, SFS_STATE_INO, "g", 0644, &a));
	OK(sfs_file_set(v, a.ino, 32 * SFS_CHUNK, 0644,
	    (const uint8_t (*)[32])h, 32));
	commit(v);

	/* Staged, then aborted: nothing of it is left. */
	OK(sfs_begin_rw(s, &v));
	memcpy(net, orig + 40 * SFS_CHUNK, 32 * SFS_CHUNK);
	for (int i = 0; i < 32; i++)
		OK(sfs_chunk_put_later(v, net + (size_t)i * SFS_CHUNK,
		    SFS_CHUNK, h[40 + i], &later[i]));
	OK(sfs_chunk_copy(v, later, 32));
	sfs_abort(v);
	OK(sfs_begin_ro(s, &v));
	assert_int_equal(sfs_chunk_get(v, h[40], back, SFS_CHUNK, &got),
	    -ENOENT);
	OK(sfs_chunk_get(v, h[31], back, SFS_CHUNK, &got));
	assert_memory_equal(back, orig + 31 * SFS_CHUNK, SFS_CHUNK);
	sfs_end(v);
	/* The next session gets the aborted one's places: a write that
	 * landed after the abort would spoil what is stored there now
	 * (sfs_verify in teardown). */
	OK(sfs_begin_rw(s, &v));
	for (int i = 72; i < LATER_N; i++)
		OK(put_hashed(v, orig + (size_t)i * SFS_CHUNK,
		    SFS_CHUNK, h[i]));
	OK(sfs_create(v, SFS_STATE_INO, "k", 0644, &a));
	OK(sfs_file_set(v, a.ino, (uint64_t)(LATER_N - 72) * SFS_CHUNK, 0644,
	    (const uint8_t (*)[32])h + 72, LATER_N - 72));
	commit(v);
	{
		struct timespec ts = { 0, 300 * 1000000L };

		nanosleep(&ts, NULL);
	}
	free(orig);
	free(net);
	free(back);
	free(h);
}

static void
test_sync_calls(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	struct chunklist cl;
	struct hashedlist hl;
	struct sfs_statfs sf;
	struct sfs_attr a;
	uint8_t *buf = calloc(1, 3 * SFS_CHUNK), h[32], h2[32], fh[32];
	uint8_t orphan[32], known[32];
	uint64_t f, g;
	size_t got;

	assert_non_null(buf);
	memset(buf, 1, SFS_CHUNK);
	memset(buf + 2 * SFS_CHUNK, 2, 1000);
	OK(sfs_begin_rw(s, &v));
	f = mkfile(v, SFS_STATE_INO, "src", buf, 2 * SFS_CHUNK + 1000);
	memset(&cl, 0, sizeof(cl));
	OK(sfs_file_chunks(v, f, chunk_cb, &cl));
	assert_int_equal(cl.n, 3);
	OK(sfs_chunk_put(v, buf + SFS_CHUNK, SFS_CHUNK, h));	/* zeros */
	assert_memory_equal(h, cl.h[1], 32);
	OK(sfs_node_hash(v, f, fh));

	/* Rebuild the same file elsewhere from the hashes. */
	g = mkfile(v, SFS_STATE_INO, "dst", "junk", 4);
	OK(sfs_file_set(v, g, 2 * SFS_CHUNK + 1000, 0644,
	    (const uint8_t (*)[32])cl.h, 3));
	OK(sfs_node_hash(v, g, h2));
	assert_memory_equal(fh, h2, 32);
	memset(buf, 0, 3 * SFS_CHUNK);
	assert_int_equal(sfs_read(v, g, 0, 3 * SFS_CHUNK, buf),
	    2 * SFS_CHUNK + 1000);
	assert_int_equal(buf[0], 1);
	assert_int_equal(buf[SFS_CHUNK], 0);
	assert_int_equal(buf[2 * SFS_CHUNK + 999], 2);
	assert_int_equal(sfs_file_set(v, g, 10, 0644,
	    (const uint8_t (*)[32])cl.h, 3), -EINVAL);
	/* The tail chunk is too short to be a middle one. */
	assert_int_equal(sfs_file_set(v, g, 3 * SFS_CHUNK, 0644,
	    (const uint8_t (*)[32])cl.h, 3), -EINVAL);
	memset(h, 0x5a, 32);
	memcpy(cl.h[0], h, 32);
	assert_int_equal(sfs_file_set(v, g, 2 * SFS_CHUNK + 1000, 0644,
	    (const uint8_t (*)[32])cl.h, 3), -ENOENT);

	/* A put nobody references is gone after commit; so is one whose
	 * hash the caller brought (sync), stored under that hash. */
	memset(buf, 9, 100);
	OK(sfs_chunk_put(v, buf, 100, orphan));
	memset(buf, 7, 500);
	hp_hash(buf, 500, known);
	OK(put_hashed(v, buf, 500, known));
	OK(sfs_chunk_get(v, known, buf + SFS_CHUNK, SFS_CHUNK, &got));
	assert_int_equal(got, 500);
	assert_memory_equal(buf + SFS_CHUNK, buf, 500);
	memset(buf, 0, 500);
	hp_hash(buf, 500, h);
	OK(put_hashed(v, buf, 500, h));	/* a hole: not stored */
	assert_int_equal(sfs_chunk_get(v, h, buf, SFS_CHUNK, &got), -ENOENT);
	assert_int_equal(put_hashed(v, buf, 0, h), -EINVAL);
	assert_int_equal(put_hashed(v, buf, SFS_CHUNK + 1, h),
	    -EINVAL);
	OK(sfs_statfs(v, &sf));
	assert_int_equal(sf.chunks, 4);

	memset(&hl, 0, sizeof(hl));
	OK(sfs_dir_list_hashed(v, SFS_STATE_INO, hashed_cb, &hl));
	assert_int_equal(hl.n, 2);
	assert_string_equal(hl.names[0], "dst");
	assert_memory_equal(hl.h[0], fh, 32);
	assert_memory_equal(hl.h[1], fh, 32);
	commit(v);

	OK(sfs_begin_ro(s, &v));
	OK(sfs_statfs(v, &sf));
	assert_int_equal(sf.chunks, 2);
	assert_int_equal(sfs_chunk_get(v, orphan, buf, SFS_CHUNK, &got),
	    -ENOENT);
	assert_int_equal(sfs_chunk_get(v, known, buf, SFS_CHUNK, &got),
	    -ENOENT);
	OK(sfs_lookup(v, SFS_STATE_INO, "dst", &a));
	assert_int_equal(a.blocks, (SFS_CHUNK + 1000 + 511) / 512);
	sfs_end(v);
	free(buf);
}

/* Flip one byte of one record of a closed store. */
static void
corrupt(const char *db, const void *key, size_t klen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key }, val;
	uint8_t copy[64];

	OK(mdb_env_create(&env));
	OK(mdb_env_set_maxdbs(env, 16));
	OK(mdb_env_set_mapsize(env, 64ULL << 30));
	OK(mdb_env_open(env, dir, 0, 0600));
	OK(mdb_txn_begin(env, NULL, 0, &txn));
	OK(mdb_dbi_open(txn, db, 0, &dbi));
	OK(mdb_get(txn, dbi, &k, &val));
	assert_true(val.mv_size <= sizeof(copy));
	memcpy(copy, val.mv_data, val.mv_size);
	copy[val.mv_size - 1] ^= 1;
	val.mv_data = copy;
	OK(mdb_put(txn, dbi, &k, &val, 0));
	OK(mdb_txn_commit(txn));
	mdb_env_close(env);
}

/* sfs_verify notices a wrong cached hash and a wrong refcount. */
static void
test_verify_detects(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	uint8_t buf[100], key[8], h[32];
	uint64_t f;

	memset(buf, 3, sizeof(buf));
	OK(sfs_begin_rw(s, &v));
	f = mkfile(v, SFS_STATE_INO, "f", buf, sizeof(buf));
	OK(sfs_chunk_put(v, buf, sizeof(buf), h));
	commit(v);
	OK(sfs_verify(s));
	sfs_close(s);
	*state = NULL;

	for (int i = 7; i >= 0; i--)
		key[7 - i] = (uint8_t)(f >> (8 * i));
	corrupt("hashes", key, 8);
	OK(sfs_open(dir, &s));
	assert_int_equal(sfs_verify(s), HP_EIO);
	sfs_close(s);
	corrupt("hashes", key, 8);	/* flip it back */
	OK(sfs_open(dir, &s));
	OK(sfs_verify(s));
	sfs_close(s);

	corrupt("refs", h, 32);
	OK(sfs_open(dir, &s));
	assert_int_equal(sfs_verify(s), HP_EIO);
	sfs_close(s);
}

/*
 * A child runs sessions without end (random files written, truncated,
 * renamed, removed; commit) until SIGKILLed at a random moment; after
 * each kill the store must reopen and verify from scratch.
 */
static void
crash_child(const char *path, unsigned seed)
{
	struct sfs *s;
	struct sfs_view *v;
	struct sfs_attr a, in;
	uint8_t *buf = malloc(3 * SFS_CHUNK);
	char name[16], name2[16];
	uint64_t d;

	srandom(seed);
	if (buf == NULL || sfs_open(path, &s) != 0)
		_exit(2);
	for (;;) {
		if (sfs_begin_rw(s, &v) != 0)
			_exit(3);
		if (sfs_lookup(v, SFS_STATE_INO, "d", &a) != 0 &&
		    sfs_mkdir(v, SFS_STATE_INO, "d", 0755, &a) != 0)
			_exit(4);
		d = a.ino;
		for (int op = 0; op < 20; op++) {
			int k = random() % 6;
			uint64_t par = random() % 2 ? d : SFS_STATE_INO;
			size_t len = random() % (3 * SFS_CHUNK);

			snprintf(name, sizeof(name), "f%ld", random() % 12);
			snprintf(name2, sizeof(name2), "f%ld", random() % 12);
			memset(buf, (int)(random() % 4), len);
			if (sfs_lookup(v, par, name, &a) != 0 &&
			    sfs_create(v, par, name, 0644, &a) != 0)
				continue;
			if (!S_ISREG(a.mode))
				continue;
			if (k == 0)
				sfs_unlink(v, par, name);
			else if (k == 1) {
				in.size = random() % (4 * SFS_CHUNK);
				sfs_setattr(v, a.ino, SFS_SET_SIZE, &in, NULL);
			} else if (k == 2)
				sfs_rename(v, par, name, par == d ?
				    SFS_STATE_INO : d, name2, 0);
			else
				sfs_write(v, a.ino, random() % (5 *
				    SFS_CHUNK), len, buf);
		}
		if (sfs_commit(v, NULL, NULL) != 0)
			_exit(5);
	}
}

static void
test_crash(void **state)
{
	struct sfs *s = *state;
	const char *env = getenv("STORE_CRASH_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) :
	    (unsigned)time(NULL) ^ (unsigned)getpid();
	uint8_t st0[32], st[32], pt[32];
	int status;
	pid_t pid;

	print_message("crash seed %u (STORE_CRASH_SEED replays)\n", seed);
	srandom(seed);
	OK(sfs_hashes(s, st0, pt));
	sfs_close(s);
	*state = NULL;
	for (int i = 0; i < KILLS; i++) {
		unsigned cseed = (unsigned)random();
		long us = 50000 + random() % 300000;

		if ((pid = fork()) == 0)
			crash_child(dir, cseed);
		assert_true(pid > 0);
		usleep((useconds_t)us);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			fail_msg("child exited with %d", WEXITSTATUS(status));
		OK(sfs_open(dir, &s));
		assert_int_equal(sfs_verify(s), 0);
		sfs_close(s);
	}
	OK(sfs_open(dir, &s));
	*state = s;
	OK(sfs_hashes(s, st, pt));
	assert_memory_not_equal(st, st0, 32);	/* the children committed */
}

/*
 * Partial-chunk writes wait in the session's write-back buffer: 4 KiB
 * appends must end as the same content as one big write, reads and
 * attributes must see them at once, and abort, truncate, unlink and a
 * crash must drop them cleanly.
 */
static void
test_write_back(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	struct sfs_attr a, in;
	uint8_t *data = malloc(3 * SFS_CHUNK), *got = malloc(3 * SFS_CHUNK);
	uint8_t st0[32], pt0[32], st[32], pt[32], hf[32], hg[32];
	size_t len = 2 * SFS_CHUNK + 12345;
	uint64_t f, g;
	int status;
	pid_t pid;

	for (size_t i = 0; i < 3 * SFS_CHUNK; i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	OK(sfs_begin_rw(s, &v));
	f = mkfile(v, SFS_STATE_INO, "appended", NULL, 0);
	for (size_t off = 0; off < len; off += 4096) {
		size_t n = len - off < 4096 ? len - off : 4096;

		assert_int_equal(sfs_write(v, f, off, n, data + off),
		    (ssize_t)n);
		if (off == 20 * 4096) {
			/* A read in the middle sees every byte so far. */
			assert_int_equal(sfs_read(v, f, 0, off + n, got),
			    (ssize_t)(off + n));
			assert_memory_equal(got, data, off + n);
		}
	}
	OK(sfs_getattr(v, f, &a));
	assert_int_equal(a.size, len);
	g = mkfile(v, SFS_STATE_INO, "whole", data, len);
	OK(sfs_node_hash(v, f, hf));
	OK(sfs_node_hash(v, g, hg));
	assert_memory_equal(hf, hg, 32);
	commit(v);
	OK(sfs_hashes(s, st0, pt0));

	/* Abort: the buffered bytes go with the session. */
	OK(sfs_begin_rw(s, &v));
	assert_int_equal(sfs_write(v, f, 5000, 100, data + 9), 100);
	sfs_abort(v);
	OK(sfs_hashes(s, st, pt));
	assert_memory_equal(st, st0, 32);
	OK(sfs_begin_ro(s, &v));
	assert_int_equal(sfs_read(v, f, 0, len, got), (ssize_t)len);
	assert_memory_equal(got, data, len);
	sfs_end(v);

	/* Truncate below a buffered write, then extend: zeros come back. */
	OK(sfs_begin_rw(s, &v));
	assert_int_equal(sfs_write(v, f, SFS_CHUNK + 100, 200, data), 200);
	memset(&in, 0, sizeof(in));
	in.size = SFS_CHUNK + 50;
	OK(sfs_setattr(v, f, SFS_SET_SIZE, &in, &a));
	in.size = SFS_CHUNK + 4096;
	OK(sfs_setattr(v, f, SFS_SET_SIZE, &in, &a));
	assert_int_equal(sfs_read(v, f, SFS_CHUNK, 4096, got), 4096);
	assert_memory_equal(got, data + SFS_CHUNK, 50);
	for (size_t i = 50; i < 4096; i++)
		assert_int_equal(got[i], 0);
	/* Unlink with a chunk buffered: nothing of it may stay referenced
	 * (teardown's sfs_verify recounts every reference). */
	assert_int_equal(sfs_write(v, g, 10, 10, data), 10);
	OK(sfs_unlink(v, SFS_STATE_INO, "whole"));
	commit(v);

	/* A crash with a chunk buffered leaves the last commit. */
	OK(sfs_hashes(s, st0, pt0));
	sfs_close(s);
	*state = NULL;
	if ((pid = fork()) == 0) {
		if (sfs_open(dir, &s) != 0 || sfs_begin_rw(s, &v) != 0 ||
		    sfs_write(v, f, 3, 1000, data) != 1000)
			_exit(2);
		raise(SIGKILL);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	OK(sfs_open(dir, &s));
	*state = s;
	OK(sfs_hashes(s, st, pt));
	assert_memory_equal(st, st0, 32);
	free(data);
	free(got);
}

/* A 64 KiB write into a 1 GiB file hashes O(changed), not the file. */
static void
test_small_write_cost(void **state)
{
	struct sfs *s = *state;
	struct sfs_view *v;
	uint8_t *buf = malloc(SFS_CHUNK);
	uint64_t f, before, cost;
	struct timespec t0, t1;

	memset(buf, 'w', SFS_CHUNK);
	OK(sfs_begin_rw(s, &v));
	f = mkfile(v, SFS_STATE_INO, "gig", NULL, 0);
	for (uint64_t off = 0; off < GiB; off += SFS_CHUNK)
		assert_int_equal(sfs_write(v, f, off, SFS_CHUNK, buf),
		    SFS_CHUNK);
	commit(v);

	buf[0] = 'x';
	before = sfs_debug_hashed(s);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	OK(sfs_begin_rw(s, &v));
	assert_int_equal(sfs_write(v, f, GiB / 2 + 4096, SFS_CHUNK, buf),
	    SFS_CHUNK);
	commit(v);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cost = sfs_debug_hashed(s) - before;
	print_message("64 KiB write into 1 GiB + commit: %llu bytes hashed, "
	    "%.2f ms\n", (unsigned long long)cost,
	    (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	/* Two chunks, two groups, the file node, two dirs. */
	assert_true(cost < 2 * SFS_CHUNK + 2 * 256 * 32 + 16384);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_basics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readdir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setattr_statfs, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_large_sparse, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_read_iov, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_durability, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refcounts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_chunk_copy_later, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sync_calls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_detects, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_write_cost, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_back, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
