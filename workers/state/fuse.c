/*
 * fuse.c — the FUSE server of the state worker (fuse.h): the libfuse3
 * low-level operations mapped onto the statefs store (store.h), driven by
 * a uv_poll_t on the /dev/fuse descriptor.
 *
 * One thread, never blocking: each readable event reads requests until
 * the device would block, and each request is answered before the next
 * is read (a handler never waits for another FUSE request, so it cannot
 * deadlock on its own mount). Splice is switched off in init, so libfuse
 * only read(2)s and writev(2)s the device.
 *
 * What the filesystem is: regular files, directories and symbolic links.
 * Ownership is not stored: every node appears owned by the process that
 * looks at it, so the mode bits act as owner bits and the kernel checks
 * them (default_permissions). Everything else fails with a clear errno:
 * hard links and device or FIFO nodes EPERM, fallocate modes other than 0
 * EOPNOTSUPP, chown to another owner EPERM; xattrs are not implemented
 * (the kernel answers EOPNOTSUPP). POSIX and BSD locks are left to the
 * kernel, which keeps them locally: one node, one mount. docs/statefs.md
 * has the whole list.
 */
#define FUSE_USE_VERSION 34

#include "fuse.h"
#include "err.h"
#include "log.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64		/* requests per readable event */
#define SPIN_NS 50000		/* see spin_more() */

/* Inodes the kernel holds, with their lookup counts (open addressing,
 * linear probing, backward-shift deletion; ino 0 marks a free slot). */
struct lkslot {
	uint64_t ino;
	uint64_t n;
	uint64_t gen;		/* f.gen when the kernel's page cache of this
				 * inode was last known to match the view */
};

/* Seconds the kernel may keep attributes; sfuse_invalidate() drops them
 * at once when the content changes behind the kernel's back. */
#define ATTR_TIMEOUT 1.0

/*
 * Seconds the kernel may keep names, and the absence of names. Only with
 * FUSE 7.44 (Linux 6.16) or later, whose epoch notification makes the
 * kernel look every name up again and takes no lock (invalidating names
 * one by one takes directory locks, which could deadlock a
 * single-threaded server); before that, entries are not cached.
 */
#define ENTRY_TIMEOUT 1.0
#define NOTIFY_INC_EPOCH 8	/* enum fuse_notify_code, FUSE 7.44 */

#define READ_AHEAD (4u << 20)

static struct {
	struct fuse_session *se;
	int fd;			/* reserved number fuse_session_fd() returns */
	uv_poll_t poll;
	int serving;
	int unmounted;
	struct fuse_buf buf;
	struct sfs_view *v;
	uint64_t requests;
	struct lkslot *lk;
	unsigned lkbits;
	size_t lkused;
	uint64_t gen;		/* bumped by sfuse_invalidate() */
	struct iovec *iov;	/* reads: one request at a time */
	size_t niov;
	double entry_timeout;	/* ENTRY_TIMEOUT, or 0 before FUSE 7.44 */
	int direct_writes;	/* see direct_write() */
} f = { .fd = -1 };

/* ---- lookup counts ---- */

static size_t
lk_home(uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ULL) >> (64 - f.lkbits));
}

static int
lk_grow(void)
{
	struct lkslot *old = f.lk;
	size_t oldcap = old != NULL ? (size_t)1 << f.lkbits : 0;
	unsigned bits = old != NULL ? f.lkbits + 1 : 10;
	struct lkslot *t = calloc((size_t)1 << bits, sizeof(*t));

	if (t == NULL)
		return HP_ENOMEM;
	f.lk = t;
	f.lkbits = bits;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].ino == 0)
			continue;
		size_t j = lk_home(old[i].ino);
		while (t[j].ino != 0)
			j = (j + 1) & (((size_t)1 << bits) - 1);
		t[j] = old[i];
	}
	free(old);
	return 0;
}

static void
lk_add(uint64_t ino)
{
	size_t mask, i;

	if ((f.lk == NULL || (f.lkused + 1) * 4 > ((size_t)3 << f.lkbits)) &&
	    lk_grow() != 0)
		return;		/* only statistics are lost */
	mask = ((size_t)1 << f.lkbits) - 1;
	for (i = lk_home(ino); f.lk[i].ino != 0; i = (i + 1) & mask)
		if (f.lk[i].ino == ino) {
			f.lk[i].n++;
			return;
		}
	/* A new kernel inode starts with an empty page cache. */
	f.lk[i].ino = ino;
	f.lk[i].n = 1;
	f.lk[i].gen = f.gen;
	f.lkused++;
}

static void
lk_forget(uint64_t ino, uint64_t n)
{
	size_t mask, i, j;

	if (f.lk == NULL)
		return;
	mask = ((size_t)1 << f.lkbits) - 1;
	for (i = lk_home(ino); f.lk[i].ino != ino; i = (i + 1) & mask)
		if (f.lk[i].ino == 0)
			return;
	if (f.lk[i].n > n) {
		f.lk[i].n -= n;
		return;
	}
	/* Count reached 0: remove, shifting back the probe chain. */
	f.lk[i].ino = 0;
	f.lkused--;
	for (j = (i + 1) & mask; f.lk[j].ino != 0; j = (j + 1) & mask) {
		size_t h = lk_home(f.lk[j].ino);
		if (((j - h) & mask) >= ((j - i) & mask)) {
			f.lk[i] = f.lk[j];
			f.lk[j].ino = 0;
			i = j;
		}
	}
}

/*
 * Whether the kernel may keep the page cache of ino at this open: yes
 * unless the content changed behind its back (sfuse_invalidate()) since
 * the cache was last dropped. Dropping it here, at open, needs no page
 * locks from this thread, so a read in flight cannot deadlock us.
 */
static int
lk_keep_cache(uint64_t ino)
{
	size_t mask, i;

	if (f.lk == NULL)
		return 0;
	mask = ((size_t)1 << f.lkbits) - 1;
	for (i = lk_home(ino); f.lk[i].ino != ino; i = (i + 1) & mask)
		if (f.lk[i].ino == 0)
			return 0;
	if (f.lk[i].gen == f.gen)
		return 1;
	f.lk[i].gen = f.gen;
	return 0;
}

/* ---- helpers ---- */

/* A store result as a positive errno for fuse_reply_err. */
static int
errno_of(int r)
{
	return r < 0 && r > -4096 ? -r : EIO;
}

static void
ns_to_ts(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000ULL);
	ts->tv_nsec = (long)(ns % 1000000000ULL);
}

static void
to_stat(fuse_req_t req, const struct sfs_attr *a, struct stat *st)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);

	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = c->uid;
	st->st_gid = c->gid;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = 4096;
	ns_to_ts(a->atime_ns, &st->st_atim);
	ns_to_ts(a->mtime_ns, &st->st_mtim);
	ns_to_ts(a->ctime_ns, &st->st_ctim);
}

/* The clock's time in ns: CLOCK_REALTIME for file times, CLOCK_MONOTONIC
 * for the wait in spin_more(). */
static uint64_t
clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t
now_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

static uint64_t
ts_to_ns(const struct timespec *ts)
{
	if (ts->tv_sec < 0)
		return 0;
	return (uint64_t)ts->tv_sec * 1000000000ULL + (uint64_t)ts->tv_nsec;
}

/*
 * Whether an open for writing only bypasses the kernel's page cache
 * (direct_io): such a descriptor cannot be read or mapped, so the pages
 * the kernel would fill from its writes serve nobody, and going without
 * them saves a copy and a first touch of fresh memory per 4 KiB written
 * (sequential writes about 1.5x faster). Only with FUSE 7.44 or later,
 * whose direct writes drop the pages other descriptors of the file have
 * cached (test_statefs.py checks it); before, such an open goes through
 * the cache like any other.
 */
static int
direct_write(const struct fuse_file_info *fi)
{
	return f.direct_writes && (fi->flags & O_ACCMODE) == O_WRONLY;
}

static struct sfs_view *
view(fuse_req_t req)
{
	if (f.v == NULL)
		fuse_reply_err(req, EIO);
	return f.v;
}

/* Reply with a new entry; the kernel's lookup count goes up by one. */
static void
reply_entry(fuse_req_t req, const struct sfs_attr *a)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = a->ino;
	e.attr_timeout = ATTR_TIMEOUT;
	e.entry_timeout = f.entry_timeout;
	to_stat(req, a, &e.attr);
	if (fuse_reply_entry(req, &e) == 0)
		lk_add(a->ino);
}

/* ---- operations ---- */

static void
op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* No splice (no pipes, fewer syscalls); the kernel clears set-id
	 * bits itself through setattr. */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
	    FUSE_CAP_SPLICE_MOVE | FUSE_CAP_HANDLE_KILLPRIV);
	/*
	 * Without this the kernel asks for the attributes again before every
	 * read, doubling the requests per read. A page cache is kept across
	 * opens unless sfuse_invalidate() came since: then it is dropped at
	 * the next open, which is where a new view becomes visible.
	 */
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
	/*
	 * Sequential reads come as read-ahead of up to this many bytes, in
	 * requests of up to 1 MiB (libfuse's max_pages); the kernel keeps
	 * the smaller of this and the mount's read_ahead_kb, which the
	 * supervisor raises to the same (supervisor/mount.c).
	 */
	conn->max_readahead = READ_AHEAD;
	if (conn->proto_major > 7 ||
	    (conn->proto_major == 7 && conn->proto_minor >= 44)) {
		f.entry_timeout = ENTRY_TIMEOUT;
		f.direct_writes = 1;
	}
	log_info("statefs mounted: FUSE protocol %u.%u; names cached %s",
	    conn->proto_major, conn->proto_minor,
	    f.entry_timeout > 0 ? "1 s" : "never (kernel before 7.44)");
}

static void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_view *v = view(req);
	struct sfs_attr a;
	int r;

	if (v == NULL)
		return;
	if ((r = sfs_lookup(v, parent, name, &a)) == -ENOENT &&
	    f.entry_timeout > 0) {
		struct fuse_entry_param e;

		memset(&e, 0, sizeof(e));	/* ino 0: a cached absence */
		e.entry_timeout = f.entry_timeout;
		fuse_reply_entry(req, &e);
	} else if (r != 0)
		fuse_reply_err(req, errno_of(r));
	else
		reply_entry(req, &a);
}

static void
op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	lk_forget(ino, nlookup);
	fuse_reply_none(req);
}

static void
op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *fd)
{
	for (size_t i = 0; i < count; i++)
		lk_forget(fd[i].ino, fd[i].nlookup);
	fuse_reply_none(req);
}

static void
op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_view *v = view(req);
	struct sfs_attr a;
	struct stat st;
	int r;

	if (v == NULL)
		return;
	if ((r = sfs_getattr(v, ino, &a)) != 0) {
		fuse_reply_err(req, errno_of(r));
		return;
	}
	to_stat(req, &a, &st);
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void
op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
    struct fuse_file_info *fi)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct sfs_view *v = view(req);
	struct sfs_attr cur, want, out;
	struct stat st;
	int set = 0, r;

	if (v == NULL)
		return;
	if ((r = sfs_getattr(v, ino, &cur)) != 0) {
		fuse_reply_err(req, errno_of(r));
		return;
	}
	/* Ownership is not stored: only "chown to whoever looks" passes. */
	if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != c->uid) ||
	    ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != c->gid)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	memset(&want, 0, sizeof(want));
	if (to_set & FUSE_SET_ATTR_MODE) {
		set |= SFS_SET_MODE;
		want.mode = (cur.mode & S_IFMT) | (attr->st_mode & 07777);
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		set |= SFS_SET_SIZE;
		want.size = (uint64_t)attr->st_size;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		set |= SFS_SET_MTIME;
		want.mtime_ns = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now_ns() :
		    ts_to_ns(&attr->st_mtim);
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		set |= SFS_SET_ATIME;
		want.atime_ns = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? now_ns() :
		    ts_to_ns(&attr->st_atim);
	}
	if (set == 0) {
		out = cur;
		if (!sfs_view_is_rw(v) && (to_set & (FUSE_SET_ATTR_UID |
		    FUSE_SET_ATTR_GID))) {
			fuse_reply_err(req, EROFS);
			return;
		}
	} else if ((r = sfs_setattr(v, ino, set, &want, &out)) != 0) {
		fuse_reply_err(req, errno_of(r));
		return;
	}
	to_stat(req, &out, &st);
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void
op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
    dev_t rdev)
{
	struct sfs_view *v;
	struct sfs_attr a;
	int r;

	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);	/* no devices, FIFOs, sockets */
		return;
	}
	if ((v = view(req)) == NULL)
		return;
	if ((r = sfs_create(v, parent, name, mode & 07777, &a)) != 0)
		fuse_reply_err(req, errno_of(r));
	else
		reply_entry(req, &a);
}

static void
op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct sfs_view *v = view(req);
	struct sfs_attr a;
	int r;

	if (v == NULL)
		return;
	if ((r = sfs_mkdir(v, parent, name, mode & 07777, &a)) != 0)
		fuse_reply_err(req, errno_of(r));
	else
		reply_entry(req, &a);
}

static void
op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_view *v = view(req);
	int r;

	if (v == NULL)
		return;
	r = sfs_unlink(v, parent, name);
	fuse_reply_err(req, r == 0 ? 0 : errno_of(r));
}

static void
op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_view *v = view(req);
	int r;

	if (v == NULL)
		return;
	r = sfs_rmdir(v, parent, name);
	fuse_reply_err(req, r == 0 ? 0 : errno_of(r));
}

static void
op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
    const char *name)
{
	struct sfs_view *v = view(req);
	struct sfs_attr a;
	int r;

	if (v == NULL)
		return;
	if ((r = sfs_symlink(v, parent, name, link, &a)) != 0)
		fuse_reply_err(req, errno_of(r));
	else
		reply_entry(req, &a);
}

static void
op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_view *v = view(req);
	char buf[PATH_MAX + 1];
	int r;

	if (v == NULL)
		return;
	memset(buf, 0, sizeof(buf));
	if ((r = sfs_readlink(v, ino, buf, sizeof(buf) - 1)) < 0) {
		fuse_reply_err(req, errno_of(r));
		return;
	}
	fuse_reply_readlink(req, buf);
}

static void
op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
    fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct sfs_view *v;
	int r;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);	/* RENAME_WHITEOUT */
		return;
	}
	if ((v = view(req)) == NULL)
		return;
	r = sfs_rename(v, parent, name, newparent, newname, flags);
	fuse_reply_err(req, r == 0 ? 0 : errno_of(r));
}

static void
op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
    const char *newname)
{
	fuse_reply_err(req, EPERM);	/* no hard links */
}

static void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_view *v = view(req);
	struct sfs_attr a, out;
	int r;

	if (v == NULL)
		return;
	if ((r = sfs_getattr(v, ino, &a)) != 0) {
		fuse_reply_err(req, errno_of(r));
		return;
	}
	if (S_ISDIR(a.mode)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		if (!sfs_view_is_rw(v)) {
			fuse_reply_err(req, EROFS);
			return;
		}
		/* FUSE_CAP_ATOMIC_O_TRUNC: truncation comes with open. */
		if ((fi->flags & O_TRUNC) && a.size != 0) {
			memset(&out, 0, sizeof(out));
			if ((r = sfs_setattr(v, ino, SFS_SET_SIZE, &out,
			    &out)) != 0) {
				fuse_reply_err(req, errno_of(r));
				return;
			}
		}
	}
	fi->fh = 0;
	fi->keep_cache = lk_keep_cache(ino);
	fi->direct_io = direct_write(fi);
	fuse_reply_open(req, fi);
}

static void
op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
    struct fuse_file_info *fi)
{
	struct sfs_view *v = view(req);
	struct fuse_entry_param e;
	struct sfs_attr a;
	int r;

	if (v == NULL)
		return;
	if ((r = sfs_create(v, parent, name, mode & 07777, &a)) != 0) {
		fuse_reply_err(req, errno_of(r));
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = a.ino;
	e.attr_timeout = ATTR_TIMEOUT;
	e.entry_timeout = f.entry_timeout;
	to_stat(req, &a, &e.attr);
	fi->fh = 0;
	fi->keep_cache = 0;	/* a new inode: nothing cached yet */
	fi->direct_io = direct_write(fi);
	if (fuse_reply_create(req, &e, fi) == 0)
		lk_add(a.ino);
}

static void
op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct sfs_view *v = view(req);
	struct iovec *iov;
	size_t need = SFS_READ_IOV(size), niov;
	ssize_t n;

	if (v == NULL)
		return;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* The reply is written from the store's map itself (the view's
	 * pages stay put until it ends): no copy here. The piece list is
	 * kept between reads. */
	if (need > f.niov) {
		if ((iov = reallocarray(f.iov, need, sizeof(*iov))) == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		f.iov = iov;
		f.niov = need;
	}
	n = sfs_read_iov(v, ino, (uint64_t)off, size, f.iov, f.niov, &niov);
	if (n < 0)
		fuse_reply_err(req, errno_of((int)n));
	else
		fuse_reply_iov(req, f.iov, (int)niov);
}

static void
op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
    off_t off, struct fuse_file_info *fi)
{
	struct sfs_view *v = view(req);
	ssize_t n;

	if (v == NULL)
		return;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = sfs_write(v, ino, (uint64_t)off, size, buf);
	if (n < 0)
		fuse_reply_err(req, errno_of((int)n));
	else
		fuse_reply_write(req, (size_t)n);
}

/* Durability is the commit's business: the session's writes become
 * durable all together, or not at all. */
static void
op_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void
op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
    struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void
op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
    off_t length, struct fuse_file_info *fi)
{
	struct sfs_view *v;
	struct sfs_attr a, want;
	int r;

	if (mode != 0) {
		fuse_reply_err(req, EOPNOTSUPP);	/* no holes punched */
		return;
	}
	if (offset < 0 || length <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((v = view(req)) == NULL)
		return;
	if ((r = sfs_getattr(v, ino, &a)) != 0) {
		fuse_reply_err(req, errno_of(r));
		return;
	}
	/* Mode 0 only extends: files are sparse, a hole reads as zeros. */
	if ((uint64_t)offset + (uint64_t)length > a.size) {
		memset(&want, 0, sizeof(want));
		want.size = (uint64_t)offset + (uint64_t)length;
		if ((r = sfs_setattr(v, ino, SFS_SET_SIZE, &want, &a)) != 0) {
			fuse_reply_err(req, errno_of(r));
			return;
		}
	} else if (!sfs_view_is_rw(v)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fuse_reply_err(req, 0);
}

/*
 * A directory is listed from a snapshot taken when the listing starts
 * (offset 0: opendir, rewinddir): offsets are positions in it, so a
 * listing never repeats or loops whatever changes meanwhile (POSIX lets
 * entries added or removed after opendir show or not).
 */
struct dent {
	char *name;
	uint64_t ino;
	mode_t mode;
};

struct dirsnap {
	struct dent *e;
	size_t n, cap;
	int nomem;
};

static void
snap_clear(struct dirsnap *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	free(d->e);
	d->e = NULL;
	d->n = d->cap = 0;
	d->nomem = 0;
}

static int
snap_add(void *arg, const char *name, const struct sfs_attr *a,
    uint64_t cookie)
{
	struct dirsnap *d = arg;

	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 32;
		struct dent *e = reallocarray(d->e, cap, sizeof(*e));
		if (e == NULL) {
			d->nomem = 1;
			return 1;
		}
		d->e = e;
		d->cap = cap;
	}
	if ((d->e[d->n].name = strdup(name)) == NULL) {
		d->nomem = 1;
		return 1;
	}
	d->e[d->n].ino = a->ino;
	d->e[d->n].mode = a->mode;
	d->n++;
	return 0;
}

static void
op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_view *v = view(req);
	struct dirsnap *d;
	struct sfs_attr a;
	int r;

	if (v == NULL)
		return;
	if ((r = sfs_getattr(v, ino, &a)) != 0) {
		fuse_reply_err(req, errno_of(r));
		return;
	}
	if (!S_ISDIR(a.mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		free(d);	/* the opener was interrupted */
}

static void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)fi->fh;
	struct sfs_view *v = view(req);
	size_t used = 0;
	char *buf;
	int r;

	if (v == NULL)
		return;
	if (off == 0) {
		snap_clear(d);
		r = sfs_readdir(v, ino, 0, snap_add, d);
		if (r == 0 && d->nomem)
			r = -ENOMEM;
		if (r < 0) {
			snap_clear(d);
			fuse_reply_err(req, errno_of(r));
			return;
		}
	}
	if ((buf = malloc(size ? size : 1)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = off > 0 ? (size_t)off : 0; i < d->n; i++) {
		struct stat st;
		size_t n;

		memset(&st, 0, sizeof(st));
		st.st_ino = d->e[i].ino;
		st.st_mode = d->e[i].mode;
		n = fuse_add_direntry(req, buf + used, size - used,
		    d->e[i].name, &st, (off_t)(i + 1));
		if (n > size - used)
			break;	/* full: the kernel asks again from i */
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void
op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)fi->fh;

	if (d != NULL) {
		snap_clear(d);
		free(d);
	}
	fuse_reply_err(req, 0);
}

static void
op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_view *v = view(req);
	struct sfs_statfs s;
	struct statvfs st;
	int r;

	if (v == NULL)
		return;
	if ((r = sfs_statfs(v, &s)) != 0) {
		fuse_reply_err(req, errno_of(r));
		return;
	}
	/* Capacity is not fixed by the store: report what is used, and as
	 * much again free per 4 KiB block, never less than 1 GiB. */
	memset(&st, 0, sizeof(st));
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_bfree = st.f_bavail = s.bytes_used / 4096 > 262144 ?
	    s.bytes_used / 4096 : 262144;
	st.f_blocks = s.bytes_used / 4096 + st.f_bfree;
	st.f_files = s.inodes + 1000000;
	st.f_ffree = st.f_favail = 1000000;
	st.f_namemax = SFS_NAME_MAX;
	fuse_reply_statfs(req, &st);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.readlink = op_readlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.release = op_ok,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsync,
	.statfs = op_statfs,
};

/* ---- the session on the loop ---- */

static uint64_t
mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/*
 * After a request, a program working through the mount usually sends
 * the next one within microseconds (a create, its write, its release,
 * the next lookup). Waiting for it here, up to SPIN_NS after the last
 * request served, instead of in epoll, saves a sleep and a wakeup per
 * round trip, which cost more than serving most requests (on a 2-core
 * VM: 3,600 small files created per second without, 12,500 with).
 * sched_yield lets the program run first when it shares this CPU. Other
 * events on the loop wait at most SPIN_NS longer.
 */
static int
spin_more(uint64_t *idle_since)
{
	uint64_t now = mono_ns();

	if (*idle_since == 0)
		*idle_since = now;
	if (now - *idle_since >= SPIN_NS)
		return 0;
	sched_yield();
	return 1;
}

static void
on_readable(uv_poll_t *h, int status, int events)
{
	uint64_t idle_since = 0;

	if (status < 0) {
		log_warnx("statefs: polling /dev/fuse failed: %s",
		    uv_strerror(status));
		uv_poll_stop(&f.poll);
		return;
	}
	for (int i = 0; i < BATCH;) {
		int r = fuse_session_receive_buf(f.se, &f.buf);
		if (r == -EAGAIN || r == -EINTR) {
			if (i > 0 && spin_more(&idle_since))
				continue;
			return;
		}
		idle_since = 0;
		i++;
		if (r <= 0 || fuse_session_exited(f.se)) {
			if (r < 0)
				log_warnx("statefs: reading /dev/fuse: %s",
				    strerror(-r));
			log_info("statefs: the kernel ended the FUSE connection"
			    " (unmounted)");
			f.unmounted = 1;
			uv_poll_stop(&f.poll);
			return;
		}
		fuse_session_process_buf(f.se, &f.buf);
		f.requests++;
	}
}

int
sfuse_prepare(struct sfs *s)
{
	char *argv[] = { "hpd-state", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	char path[32];

	if ((f.fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
		log_warn("statefs: open /dev/null");
		return HP_EIO;
	}
	if ((f.se = fuse_session_new(&args, &ops, sizeof(ops), s)) == NULL) {
		log_warnx("statefs: cannot create the FUSE session");
		return HP_EIO;
	}
	snprintf(path, sizeof(path), "/dev/fd/%d", f.fd);
	if (fuse_session_mount(f.se, path) != 0 ||
	    fuse_session_fd(f.se) != f.fd) {
		log_warnx("statefs: cannot bind the FUSE session to fd %d",
		    f.fd);
		return HP_EIO;
	}
	return 0;
}

int
sfuse_start(uv_loop_t *loop, int fd)
{
	if (f.serving || f.se == NULL) {
		close(fd);
		return f.serving ? HP_EEXIST : HP_EIO;
	}
	if (dup3(fd, f.fd, O_CLOEXEC) != f.fd) {
		log_warn("statefs: dup3 of the /dev/fuse descriptor");
		close(fd);
		return HP_EIO;
	}
	close(fd);
	fcntl(f.fd, F_SETFL, fcntl(f.fd, F_GETFL) | O_NONBLOCK);
	if (uv_poll_init(loop, &f.poll, f.fd) != 0 ||
	    uv_poll_start(&f.poll, UV_READABLE, on_readable) != 0) {
		log_warnx("statefs: cannot poll /dev/fuse");
		return HP_EIO;
	}
	f.serving = 1;
	log_info("statefs: serving the mount from the supervisor's /dev/fuse");
	return 0;
}

void
sfuse_set_view(struct sfs_view *v)
{
	f.v = v;
}

/* Every name the kernel looked up before this is looked up again. */
static int
notify_epoch(void)
{
	struct fuse_out_header oh;

	memset(&oh, 0, sizeof(oh));
	oh.len = sizeof(oh);
	oh.error = NOTIFY_INC_EPOCH;	/* unique 0: a notification */
	return write(f.fd, &oh, sizeof(oh)) == (ssize_t)sizeof(oh) ? 0 : -1;
}

void
sfuse_invalidate(void)
{
	size_t cap;

	f.gen++;	/* page caches are dropped at each inode's next open */
	if (!f.serving || f.unmounted)
		return;
	if (f.entry_timeout > 0 && notify_epoch() != 0) {
		log_warn("statefs: the kernel refused to drop its cached"
		    " names; names are no longer cached");
		f.entry_timeout = 0;
	}
	if (f.lk == NULL)
		return;
	/* Attributes only (offset < 0): no page locks are taken, so this
	 * cannot wait on a request this thread has yet to serve. */
	fuse_lowlevel_notify_inval_inode(f.se, FUSE_ROOT_ID, -1, 0);
	cap = (size_t)1 << f.lkbits;
	for (size_t i = 0; i < cap; i++)
		if (f.lk[i].ino != 0)
			fuse_lowlevel_notify_inval_inode(f.se, f.lk[i].ino,
			    -1, 0);
}

void
sfuse_stop(void)
{
	if (f.serving && !uv_is_closing((uv_handle_t *)&f.poll))
		uv_close((uv_handle_t *)&f.poll, NULL);
	f.v = NULL;
}

void
sfuse_stats(struct sfuse_stats *out)
{
	out->serving = f.serving && !f.unmounted;
	out->unmounted = f.unmounted;
	out->requests = f.requests;
	out->kernel_inodes = f.lkused;
}
