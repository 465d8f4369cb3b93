/*
 * store.c — statefs: the LMDB environment, sessions (views) and the
 * namespace (store.h; layout and hash in docs/state-hash.md).
 *
 * A rw view is one LMDB write transaction and a ro view one read
 * transaction, so the committed state is exactly the last successful
 * sfs_commit. Each inode record keeps its parent and its name (there are
 * no hard links), which lets tree.c mark a changed node's ancestors dirty
 * and lets readdir resume after an entry by its ino. Every namespace call
 * checks all its arguments before it writes anything, so a refused call
 * leaves the session as it was; file content lives in chunks.c.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define MAPSIZE_DEFAULT	(64ULL << 30)

void
sfs_put64(uint8_t *p, uint64_t x)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)x;
		x >>= 8;
	}
}

uint64_t
sfs_get64(const uint8_t *p)
{
	uint64_t x = 0;

	for (int i = 0; i < 8; i++)
		x = (x << 8) | p[i];
	return x;
}

static void
put32(uint8_t *p, uint32_t x)
{
	p[0] = x >> 24;
	p[1] = x >> 16;
	p[2] = x >> 8;
	p[3] = x;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

uint64_t
sfs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int
sfs_lmdb_err(struct sfs_view *v, const char *what, int rc)
{
	if (v->rw)
		v->broken = 1;
	if (rc == MDB_MAP_FULL) {
		log_warnx("statefs: %s: map full (raise HPD_STATE_MAPSIZE)",
		    what);
		return -ENOSPC;
	}
	log_warnx("statefs: %s: %s", what, mdb_strerror(rc));
	return -EIO;
}

int
sfs_inode_get(struct sfs_view *v, uint64_t ino, struct sfs_inode *n)
{
	uint8_t k[8];
	MDB_val key = { 8, k }, val;
	const uint8_t *p;
	int rc;

	sfs_put64(k, ino);
	if ((rc = mdb_get(v->txn, v->s->inodes, &key, &val)) == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0) {
		log_warnx("statefs: inode %llu: %s", (unsigned long long)ino,
		    mdb_strerror(rc));
		return -EIO;
	}
	p = val.mv_data;
	if (val.mv_size < SFS_REC_FIXED)
		goto bad;
	n->ino = ino;
	n->mode = get32(p);
	n->nlink = get32(p + 4);
	n->size = sfs_get64(p + 8);
	n->parent = sfs_get64(p + 16);
	n->mtime = sfs_get64(p + 24);
	n->ctime = sfs_get64(p + 32);
	n->atime = sfs_get64(p + 40);
	n->stored = sfs_get64(p + 48);
	n->namelen = (uint16_t)(p[56] << 8 | p[57]);
	if (n->namelen > SFS_NAME_MAX ||
	    val.mv_size < SFS_REC_FIXED + (size_t)n->namelen)
		goto bad;
	memcpy(n->name, p + SFS_REC_FIXED, n->namelen);
	n->name[n->namelen] = '\0';
	n->targetlen = (uint16_t)(val.mv_size - SFS_REC_FIXED - n->namelen);
	if (n->targetlen > SFS_TARGET_MAX)
		goto bad;
	memcpy(n->target, p + SFS_REC_FIXED + n->namelen, n->targetlen);
	n->target[n->targetlen] = '\0';
	return 0;
bad:
	log_warnx("statefs: inode %llu: malformed record",
	    (unsigned long long)ino);
	return -EIO;
}

int
sfs_inode_put(struct sfs_view *v, const struct sfs_inode *n)
{
	uint8_t k[8], rec[SFS_REC_FIXED + SFS_NAME_MAX + SFS_TARGET_MAX];
	MDB_val key = { 8, k }, val = { 0, rec };
	int rc;

	sfs_put64(k, n->ino);
	put32(rec, n->mode);
	put32(rec + 4, n->nlink);
	sfs_put64(rec + 8, n->size);
	sfs_put64(rec + 16, n->parent);
	sfs_put64(rec + 24, n->mtime);
	sfs_put64(rec + 32, n->ctime);
	sfs_put64(rec + 40, n->atime);
	sfs_put64(rec + 48, n->stored);
	rec[56] = n->namelen >> 8;
	rec[57] = (uint8_t)n->namelen;
	memcpy(rec + SFS_REC_FIXED, n->name, n->namelen);
	memcpy(rec + SFS_REC_FIXED + n->namelen, n->target, n->targetlen);
	val.mv_size = SFS_REC_FIXED + n->namelen + n->targetlen;
	if ((rc = mdb_put(v->txn, v->s->inodes, &key, &val, 0)) != 0)
		return sfs_lmdb_err(v, "inode put", rc);
	return 0;
}

static void
to_attr(const struct sfs_inode *n, struct sfs_attr *a)
{
	if (a == NULL)
		return;
	memset(a, 0, sizeof(*a));
	a->ino = n->ino;
	a->mode = n->mode;
	a->size = n->size;
	a->nlink = n->nlink;
	a->mtime_ns = n->mtime;
	a->ctime_ns = n->ctime;
	a->atime_ns = n->atime;
	a->blocks = (n->stored + 511) / 512;
}

static int
name_check(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return -EINVAL;
	if (len > SFS_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static void
dirent_key(uint8_t *k, uint64_t parent, const char *name, MDB_val *key)
{
	size_t len = strlen(name);

	sfs_put64(k, parent);
	memcpy(k + 8, name, len);
	key->mv_size = 8 + len;
	key->mv_data = k;
}

/* The child ino of parent/name: 0, -ENOENT or -EIO. */
static int
dirent_get(struct sfs_view *v, uint64_t parent, const char *name,
    uint64_t *ino)
{
	uint8_t k[8 + SFS_NAME_MAX];
	MDB_val key, val;
	int rc;

	dirent_key(k, parent, name, &key);
	if ((rc = mdb_get(v->txn, v->s->dirents, &key, &val)) == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0 || val.mv_size != 8)
		return -EIO;
	*ino = sfs_get64(val.mv_data);
	return 0;
}

static int
dirent_put(struct sfs_view *v, uint64_t parent, const char *name,
    uint64_t ino)
{
	uint8_t k[8 + SFS_NAME_MAX], d[8];
	MDB_val key, val = { 8, d };
	int rc;

	dirent_key(k, parent, name, &key);
	sfs_put64(d, ino);
	if ((rc = mdb_put(v->txn, v->s->dirents, &key, &val, 0)) != 0)
		return sfs_lmdb_err(v, "dirent put", rc);
	return 0;
}

static int
dirent_del(struct sfs_view *v, uint64_t parent, const char *name)
{
	uint8_t k[8 + SFS_NAME_MAX];
	MDB_val key;
	int rc;

	dirent_key(k, parent, name, &key);
	if ((rc = mdb_del(v->txn, v->s->dirents, &key, NULL)) != 0)
		return sfs_lmdb_err(v, "dirent del", rc);
	return 0;
}

/* Load a directory's inode: -ENOTDIR when it is something else. */
static int
dir_get(struct sfs_view *v, uint64_t ino, struct sfs_inode *n)
{
	int r;

	if ((r = sfs_inode_get(v, ino, n)) != 0)
		return r;
	return S_ISDIR(n->mode) ? 0 : -ENOTDIR;
}

static int
dir_empty(struct sfs_view *v, uint64_t ino)
{
	MDB_cursor *c;
	uint8_t k[8];
	MDB_val key = { 8, k }, val;
	int rc, empty;

	sfs_put64(k, ino);
	if (mdb_cursor_open(v->txn, v->s->dirents, &c) != 0)
		return -EIO;
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	empty = rc != 0 || key.mv_size < 8 || sfs_get64(key.mv_data) != ino;
	mdb_cursor_close(c);
	return empty;
}

/* Directory bookkeeping after a change of entries: times, nlink, dirty. */
static int
dir_touch(struct sfs_view *v, uint64_t ino, int nlink_delta)
{
	struct sfs_inode *n;
	int r;

	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = sfs_inode_get(v, ino, n)) == 0) {
		n->nlink = (uint32_t)((int)n->nlink + nlink_delta);
		n->mtime = n->ctime = sfs_now_ns();
		if ((r = sfs_inode_put(v, n)) == 0)
			r = sfs_mark_dirty(v, ino);
	}
	free(n);
	return r;
}

static int
tomb_add(struct sfs_view *v, uint64_t ino, uint64_t parent, const char *name)
{
	struct sfs_tomb *t;

	if (v->ntombs == v->captombs) {
		size_t cap = v->captombs ? 2 * v->captombs : 16;

		if ((t = reallocarray(v->tombs, cap, sizeof(*t))) == NULL)
			return -ENOMEM;
		v->tombs = t;
		v->captombs = cap;
	}
	t = &v->tombs[v->ntombs++];
	t->ino = ino;
	t->parent = parent;
	t->len = (uint16_t)strlen(name);
	memcpy(t->name, name, t->len);
	return 0;
}

static uint64_t
next_ino(struct sfs_view *v, int *err)
{
	MDB_val key = { 8, "next_ino" }, val;
	uint8_t d[8];
	uint64_t ino;
	int rc;

	if ((rc = mdb_get(v->txn, v->s->meta, &key, &val)) != 0 ||
	    val.mv_size != 8) {
		*err = -EIO;
		return 0;
	}
	ino = sfs_get64(val.mv_data);
	sfs_put64(d, ino + 1);
	val.mv_size = 8;
	val.mv_data = d;
	if ((rc = mdb_put(v->txn, v->s->meta, &key, &val, 0)) != 0) {
		*err = sfs_lmdb_err(v, "next ino", rc);
		return 0;
	}
	*err = 0;
	return ino;
}

/* Common part of create, mkdir and symlink. */
static int
make_node(struct sfs_view *v, uint64_t parent, const char *name, mode_t mode,
    const char *target, struct sfs_attr *out)
{
	struct sfs_inode *n;
	uint64_t ino;
	int r;

	if (!v->rw)
		return -EROFS;
	if (v->broken)
		return -EIO;
	if ((r = name_check(name)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = dir_get(v, parent, n)) != 0)
		goto out;
	if ((r = dirent_get(v, parent, name, &ino)) != -ENOENT) {
		if (r == 0)
			r = -EEXIST;
		goto out;
	}
	if ((ino = next_ino(v, &r)) == 0)
		goto out;
	memset(n, 0, sizeof(*n));
	n->ino = ino;
	n->mode = mode;
	n->nlink = S_ISDIR(mode) ? 2 : 1;
	n->parent = parent;
	n->mtime = n->ctime = n->atime = sfs_now_ns();
	n->namelen = (uint16_t)strlen(name);
	memcpy(n->name, name, n->namelen);
	if (target != NULL) {
		n->targetlen = (uint16_t)strlen(target);
		memcpy(n->target, target, n->targetlen);
		n->size = n->targetlen;
	}
	if ((r = sfs_inode_put(v, n)) != 0 ||
	    (r = dirent_put(v, parent, name, ino)) != 0 ||
	    (r = sfs_mark_dirty(v, ino)) != 0 ||
	    (r = dir_touch(v, parent, S_ISDIR(mode) ? 1 : 0)) != 0)
		goto out;
	to_attr(n, out);
out:
	free(n);
	return r;
}

/* Remove the entry parent/name whose inode is n (checked by the caller). */
static int
remove_node(struct sfs_view *v, uint64_t parent, const char *name,
    const struct sfs_inode *n)
{
	uint8_t k[8];
	MDB_val key = { 8, k };
	int r, rc;

	if ((r = tomb_add(v, n->ino, parent, name)) != 0 ||
	    (r = dirent_del(v, parent, name)) != 0)
		return r;
	if (S_ISREG(n->mode) && (r = sfs_file_drop(v, n->ino)) != 0)
		return r;
	if ((r = sfs_forget_node(v, parent, n->ino)) != 0)
		return r;
	sfs_put64(k, n->ino);
	if ((rc = mdb_del(v->txn, v->s->inodes, &key, NULL)) != 0)
		return sfs_lmdb_err(v, "inode del", rc);
	return dir_touch(v, parent, S_ISDIR(n->mode) ? -1 : 0);
}

static int
is_fixed(uint64_t ino)
{
	return ino == SFS_ROOT_INO || ino == SFS_STATE_INO ||
	    ino == SFS_PATCH_INO;
}

static int
remove_checked(struct sfs_view *v, uint64_t parent, const char *name, int dir)
{
	struct sfs_inode *n = NULL;
	uint64_t ino;
	int r;

	if (!v->rw)
		return -EROFS;
	if (v->broken)
		return -EIO;
	if ((r = name_check(name)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = dir_get(v, parent, n)) != 0 ||
	    (r = dirent_get(v, parent, name, &ino)) != 0 ||
	    (r = sfs_inode_get(v, ino, n)) != 0)
		goto out;
	if (is_fixed(ino))
		r = -EPERM;
	else if (dir && !S_ISDIR(n->mode))
		r = -ENOTDIR;
	else if (!dir && S_ISDIR(n->mode))
		r = -EISDIR;
	else if (dir && (r = dir_empty(v, ino)) <= 0)
		r = r < 0 ? r : -ENOTEMPTY;
	else
		r = remove_node(v, parent, name, n);
out:
	free(n);
	return r;
}

/* 1 when ino is anc or lies below it. */
static int
is_below(struct sfs_view *v, uint64_t ino, uint64_t anc, struct sfs_inode *tmp)
{
	int r;

	while (ino != 0) {
		if (ino == anc)
			return 1;
		if ((r = sfs_inode_get(v, ino, tmp)) != 0)
			return r;
		ino = tmp->parent;
	}
	return 0;
}

/* Point n (now at oldparent) at newparent/newname. */
static int
relink(struct sfs_view *v, struct sfs_inode *n, uint64_t oldparent,
    uint64_t newparent, const char *newname)
{
	int r;

	n->parent = newparent;
	n->namelen = (uint16_t)strlen(newname);
	memcpy(n->name, newname, n->namelen);
	n->ctime = sfs_now_ns();
	if ((r = sfs_inode_put(v, n)) != 0 ||
	    (r = dirent_put(v, newparent, newname, n->ino)) != 0 ||
	    (r = sfs_move_dirty(v, n->ino, oldparent)) != 0)
		return r;
	return sfs_mark_dirty(v, n->ino);
}

struct rename_ctx {
	struct sfs_inode src, dst, tmp;
};

static int
rename_do(struct sfs_view *v, struct rename_ctx *c, uint64_t parent,
    const char *name, uint64_t newparent, const char *newname, unsigned flags)
{
	uint64_t sino, dino = 0;
	int r, sdir, ddir;

	if ((r = dir_get(v, parent, &c->tmp)) != 0 ||
	    (r = dir_get(v, newparent, &c->tmp)) != 0 ||
	    (r = dirent_get(v, parent, name, &sino)) != 0 ||
	    (r = sfs_inode_get(v, sino, &c->src)) != 0)
		return r;
	r = dirent_get(v, newparent, newname, &dino);
	if (r == -ENOENT)
		dino = 0;
	else if (r != 0)
		return r;
	if (is_fixed(sino) || (dino != 0 && is_fixed(dino)))
		return -EPERM;
	if (dino == sino)
		return 0;
	sdir = S_ISDIR(c->src.mode);
	if (sdir && (r = is_below(v, newparent, sino, &c->tmp)) != 0)
		return r < 0 ? r : -EINVAL;
	if (dino != 0 && (r = sfs_inode_get(v, dino, &c->dst)) != 0)
		return r;
	ddir = dino != 0 && S_ISDIR(c->dst.mode);
	if (flags & RENAME_EXCHANGE) {
		if (dino == 0)
			return -ENOENT;
		if (ddir && (r = is_below(v, parent, dino, &c->tmp)) != 0)
			return r < 0 ? r : -EINVAL;
		if ((r = tomb_add(v, sino, parent, name)) != 0 ||
		    (r = tomb_add(v, dino, newparent, newname)) != 0 ||
		    (r = relink(v, &c->src, parent, newparent, newname)) != 0 ||
		    (r = relink(v, &c->dst, newparent, parent, name)) != 0)
			return r;
		if (parent == newparent)
			return dir_touch(v, parent, 0);
		if ((r = dir_touch(v, parent, ddir - sdir)) != 0)
			return r;
		return dir_touch(v, newparent, sdir - ddir);
	}
	if (dino != 0) {
		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		if (sdir && !ddir)
			return -ENOTDIR;
		if (!sdir && ddir)
			return -EISDIR;
		if (ddir && (r = dir_empty(v, dino)) <= 0)
			return r < 0 ? r : -ENOTEMPTY;
		if ((r = remove_node(v, newparent, newname, &c->dst)) != 0)
			return r;
	}
	if ((r = tomb_add(v, sino, parent, name)) != 0 ||
	    (r = dirent_del(v, parent, name)) != 0 ||
	    (r = relink(v, &c->src, parent, newparent, newname)) != 0)
		return r;
	if (parent == newparent)
		return dir_touch(v, parent, 0);
	if ((r = dir_touch(v, parent, -sdir)) != 0)
		return r;
	return dir_touch(v, newparent, sdir);
}

int
sfs_rename(struct sfs_view *v, uint64_t parent, const char *name,
    uint64_t newparent, const char *newname, unsigned flags)
{
	struct rename_ctx *c;
	int r;

	if (!v->rw)
		return -EROFS;
	if (v->broken)
		return -EIO;
	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	if ((flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0 ||
	    flags == (RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((r = name_check(name)) != 0 || (r = name_check(newname)) != 0)
		return r;
	if ((c = malloc(sizeof(*c))) == NULL)
		return -ENOMEM;
	r = rename_do(v, c, parent, name, newparent, newname, flags);
	free(c);
	return r;
}

int
sfs_lookup(struct sfs_view *v, uint64_t parent, const char *name,
    struct sfs_attr *out)
{
	struct sfs_inode *n;
	uint64_t ino;
	int r;

	if ((r = name_check(name)) != 0 || (r = sfs_wb_flush(v)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = dir_get(v, parent, n)) == 0 &&
	    (r = dirent_get(v, parent, name, &ino)) == 0 &&
	    (r = sfs_inode_get(v, ino, n)) == 0)
		to_attr(n, out);
	free(n);
	return r;
}

int
sfs_getattr(struct sfs_view *v, uint64_t ino, struct sfs_attr *out)
{
	struct sfs_inode *n;
	int r;

	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = sfs_inode_get(v, ino, n)) == 0)
		to_attr(n, out);
	free(n);
	return r;
}

int
sfs_setattr(struct sfs_view *v, uint64_t ino, int set,
    const struct sfs_attr *attr, struct sfs_attr *out)
{
	struct sfs_inode *n;
	uint32_t mode;
	int r;

	if (!v->rw)
		return -EROFS;
	if (v->broken)
		return -EIO;
	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = sfs_inode_get(v, ino, n)) != 0)
		goto out;
	if (set & SFS_SET_SIZE) {
		if (S_ISDIR(n->mode))
			r = -EISDIR;
		else if (!S_ISREG(n->mode))
			r = -EINVAL;
		else if (attr->size > SFS_MAX_FILE)
			r = -EFBIG;
		if (r != 0)
			goto out;
		if (attr->size != n->size &&
		    (r = sfs_file_resize(v, n, attr->size)) != 0)
			goto out;
		n->mtime = sfs_now_ns();
	}
	if (set & SFS_SET_MODE) {
		mode = (n->mode & S_IFMT) | (attr->mode & 07777);
		if (mode != n->mode && (r = sfs_mark_dirty(v, ino)) != 0)
			goto out;
		n->mode = mode;
	}
	if (set & SFS_SET_MTIME)
		n->mtime = attr->mtime_ns;
	if (set & SFS_SET_ATIME)
		n->atime = attr->atime_ns;
	n->ctime = sfs_now_ns();
	if ((r = sfs_inode_put(v, n)) == 0)
		to_attr(n, out);
out:
	free(n);
	return r;
}

int
sfs_create(struct sfs_view *v, uint64_t parent, const char *name,
    mode_t mode, struct sfs_attr *out)
{
	return make_node(v, parent, name, S_IFREG | (mode & 07777), NULL, out);
}

int
sfs_mkdir(struct sfs_view *v, uint64_t parent, const char *name,
    mode_t mode, struct sfs_attr *out)
{
	return make_node(v, parent, name, S_IFDIR | (mode & 07777), NULL, out);
}

int
sfs_symlink(struct sfs_view *v, uint64_t parent, const char *name,
    const char *target, struct sfs_attr *out)
{
	size_t len = strlen(target);

	if (len == 0)
		return -ENOENT;
	if (len > SFS_TARGET_MAX)
		return -ENAMETOOLONG;
	return make_node(v, parent, name, S_IFLNK | 0777, target, out);
}

int
sfs_readlink(struct sfs_view *v, uint64_t ino, char *buf, size_t size)
{
	struct sfs_inode *n;
	int r;

	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = sfs_inode_get(v, ino, n)) != 0)
		goto out;
	if (!S_ISLNK(n->mode))
		r = -EINVAL;
	else if (size < (size_t)n->targetlen + 1)
		r = -ERANGE;
	else {
		memcpy(buf, n->target, n->targetlen + 1);
		r = n->targetlen;
	}
out:
	free(n);
	return r;
}

int
sfs_unlink(struct sfs_view *v, uint64_t parent, const char *name)
{
	int r;

	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	return remove_checked(v, parent, name, 0);
}

int
sfs_rmdir(struct sfs_view *v, uint64_t parent, const char *name)
{
	int r;

	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	return remove_checked(v, parent, name, 1);
}

/* The name to resume after: from this session's tombs, else the inode. */
static int
cookie_name(struct sfs_view *v, uint64_t dir, uint64_t cookie,
    struct sfs_inode *n)
{
	/*
	 * The entry's live name first: an entry renamed within the session
	 * also has a tomb under its old name, and resuming there would list
	 * it again (and again: a loop).
	 */
	if (sfs_inode_get(v, cookie, n) == 0 && n->parent == dir)
		return 0;
	for (size_t i = 0; i < v->ntombs; i++) {
		if (v->tombs[i].ino == cookie && v->tombs[i].parent == dir) {
			n->namelen = v->tombs[i].len;
			memcpy(n->name, v->tombs[i].name, n->namelen);
			return 0;
		}
	}
	return -ENOENT;
}

int
sfs_readdir(struct sfs_view *v, uint64_t ino, uint64_t cookie,
    sfs_dirent_fn fn, void *arg)
{
	struct sfs_inode *n;
	struct sfs_attr a;
	MDB_cursor *c = NULL;
	uint8_t k[8 + SFS_NAME_MAX];
	char name[SFS_NAME_MAX + 1];
	MDB_val key, val;
	uint64_t child;
	int r, rc;

	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = dir_get(v, ino, n)) != 0)
		goto out;
	sfs_put64(k, ino);
	key.mv_data = k;
	key.mv_size = 8;
	if (cookie != 0) {
		if (cookie_name(v, ino, cookie, n) != 0)
			goto out;	/* position lost: end of directory */
		memcpy(k + 8, n->name, n->namelen);
		key.mv_size = 8 + n->namelen;
	}
	if (mdb_cursor_open(v->txn, v->s->dirents, &c) != 0) {
		r = -EIO;
		goto out;
	}
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	if (rc == 0 && cookie != 0 && key.mv_size == 8 + (size_t)n->namelen &&
	    memcmp(key.mv_data, k, key.mv_size) == 0)
		rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
	for (; rc == 0; rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size < 8 || sfs_get64(key.mv_data) != ino)
			break;
		if (val.mv_size != 8) {
			r = -EIO;
			goto out;
		}
		child = sfs_get64(val.mv_data);
		memcpy(name, (uint8_t *)key.mv_data + 8, key.mv_size - 8);
		name[key.mv_size - 8] = '\0';
		if ((r = sfs_inode_get(v, child, n)) != 0)
			goto out;
		to_attr(n, &a);
		if (fn(arg, name, &a, child) != 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		r = -EIO;
out:
	if (c != NULL)
		mdb_cursor_close(c);
	free(n);
	return r;
}

int
sfs_statfs(struct sfs_view *v, struct sfs_statfs *out)
{
	MDB_dbi all[] = { v->s->inodes, v->s->dirents, v->s->fchunks,
	    v->s->chunks, v->s->refs, v->s->groups, v->s->hashes, v->s->dirty,
	    v->s->gdirty, v->s->pending, v->s->meta };
	MDB_stat st;
	int r;

	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (mdb_stat(v->txn, all[i], &st) != 0)
			return -EIO;
		out->bytes_used += (uint64_t)st.ms_psize * (st.ms_branch_pages +
		    st.ms_leaf_pages + st.ms_overflow_pages);
		if (all[i] == v->s->chunks)
			out->chunks = st.ms_entries;
		if (all[i] == v->s->inodes)
			out->inodes = st.ms_entries;
	}
	return 0;
}

/* ---- environment and sessions ---- */

static int
meta_put(struct sfs_view *v, const char *name, const void *d, size_t len)
{
	MDB_val key = { strlen(name), (void *)name }, val = { len, (void *)d };
	int rc;

	if ((rc = mdb_put(v->txn, v->s->meta, &key, &val, 0)) != 0)
		return sfs_lmdb_err(v, "meta put", rc);
	return 0;
}

static int
meta_get(MDB_txn *txn, struct sfs *s, const char *name, void *d, size_t len)
{
	MDB_val key = { strlen(name), (void *)name }, val;
	int rc;

	if ((rc = mdb_get(txn, s->meta, &key, &val)) == MDB_NOTFOUND)
		return HP_ENOENT;
	if (rc != 0 || val.mv_size != len)
		return HP_EIO;
	memcpy(d, val.mv_data, len);
	return 0;
}

/* The first session: "/", "/state" and an empty "/patch.cfg". */
static int
store_init(struct sfs_view *v)
{
	static const struct {
		uint64_t ino, parent;
		uint32_t mode, nlink;
		const char *name;
	} fixed[] = {
		{ SFS_ROOT_INO, 0, S_IFDIR | 0755, 3, "" },
		{ SFS_STATE_INO, SFS_ROOT_INO, S_IFDIR | 0755, 2, "state" },
		{ SFS_PATCH_INO, SFS_ROOT_INO, S_IFREG | 0644, 1, "patch.cfg" },
	};
	struct sfs_inode *n;
	uint8_t d[8];
	uint32_t fmt = SFS_FORMAT;
	int r = 0;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < 3 && r == 0; i++) {
		memset(n, 0, sizeof(*n));
		n->ino = fixed[i].ino;
		n->parent = fixed[i].parent;
		n->mode = fixed[i].mode;
		n->nlink = fixed[i].nlink;
		n->mtime = n->ctime = n->atime = sfs_now_ns();
		n->namelen = (uint16_t)strlen(fixed[i].name);
		memcpy(n->name, fixed[i].name, n->namelen);
		if ((r = sfs_inode_put(v, n)) != 0)
			break;
		if (n->parent != 0)
			r = dirent_put(v, n->parent, n->name, n->ino);
		if (r == 0)
			r = sfs_mark_dirty(v, n->ino);
	}
	free(n);
	sfs_put64(d, SFS_PATCH_INO + 1);
	if (r == 0)
		r = meta_put(v, "next_ino", d, 8);
	put32(d, fmt);
	if (r == 0)
		r = meta_put(v, "format", d, 4);
	return r;
}

/* Recompute dirty hashes and record the roots in meta. */
static int
store_roots(struct sfs_view *v, uint8_t state[32], uint8_t patch[32])
{
	int r;

	if ((r = sfs_tree_update(v, SFS_ROOT_INO)) != 0 ||
	    (r = sfs_collect_pending(v)) != 0 ||
	    (r = sfs_cached_hash(v, SFS_STATE_INO, state)) != 0 ||
	    (r = sfs_cached_hash(v, SFS_PATCH_INO, patch)) != 0 ||
	    (r = meta_put(v, "state", state, 32)) != 0)
		return r;
	return meta_put(v, "patch", patch, 32);
}

static int
open_dbis(struct sfs *s, MDB_txn *txn)
{
	static const char *names[] = { "inodes", "dirents", "fchunks",
	    "chunks", "refs", "groups", "hashes", "dirty", "gdirty",
	    "pending", "meta" };
	MDB_dbi *dbis[] = { &s->inodes, &s->dirents, &s->fchunks, &s->chunks,
	    &s->refs, &s->groups, &s->hashes, &s->dirty, &s->gdirty,
	    &s->pending, &s->meta };
	int rc;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((rc = mdb_dbi_open(txn, names[i], MDB_CREATE,
		    dbis[i])) != 0) {
			log_warnx("statefs: open database %s: %s", names[i],
			    mdb_strerror(rc));
			return HP_EIO;
		}
	}
	return 0;
}

static void
zero_hashes(struct sfs *s)
{
	static const uint8_t zero[SFS_CHUNK];
	uint8_t *group;

	sfs_hash_count(s, zero, SFS_CHUNK, s->zchunk);
	group = malloc(SFS_GROUP * 32);
	if (group == NULL)
		fatal("statefs: out of memory");
	for (int i = 0; i < SFS_GROUP; i++)
		memcpy(group + 32 * i, s->zchunk, 32);
	sfs_hash_count(s, group, SFS_GROUP * 32, s->zgroup);
	free(group);
}

#define ROOM_MARGIN	(256u << 10)	/* B-tree pages between two chunks */
#define ROOM_STEP_MIN	(1u << 20)
#define ROOM_STEP_MAX	(16u << 20)

/*
 * Give the data file blocks up to `want` and a step beyond, the step
 * growing with what the session has written (a contract run that writes
 * little reserves little). LMDB writes its pages through the map, where
 * a write to a hole on a full disk would be SIGBUS; past the blocks
 * reserved here, a full disk shows as -ENOSPC on the write that needs
 * the room. The map's last bytes are LMDB's to refuse (MDB_MAP_FULL).
 */
static int
room_to(struct sfs *s, uint64_t want)
{
	uint64_t step, to;

	if (want <= s->ready || s->map == NULL)
		return 0;
	step = s->tail - s->tail0;
	step = step < ROOM_STEP_MIN ? ROOM_STEP_MIN :
	    step > ROOM_STEP_MAX ? ROOM_STEP_MAX : step;
	to = (want + step + s->psize - 1) / s->psize * s->psize;
	if (to > s->mapsize)
		to = s->mapsize;
	if (to <= s->ready)
		return 0;
	if (fallocate(s->fd, 0, (off_t)s->ready, (off_t)(to - s->ready)) != 0) {
		if (errno == ENOSPC || errno == EDQUOT)
			return -ENOSPC;
		if (errno != EOPNOTSUPP) {
			log_warn("statefs: reserving blocks for the store");
			return -EIO;
		}
	}
	s->ready = to;
	return 0;
}

/*
 * Where LMDB mapped the data file. LMDB does not say, but every page of
 * its file format starts with the page's number: the page holding the
 * "format" value, less that many pages, is the map's start, where page 0
 * carries the meta magic. Without it (never seen) writes go on without
 * blocks given ahead: a full disk may then fault on the map.
 */
#define META_MAGIC	0xBEEFC0DEu

static void
map_find(struct sfs *s)
{
	MDB_envinfo ei;
	MDB_stat st;
	MDB_txn *txn;
	MDB_val key = { 6, (void *)"format" }, val;
	uintptr_t page;
	uint64_t pgno, last;
	uint32_t magic;

	s->map = NULL;
	mdb_env_info(s->env, &ei);
	mdb_env_stat(s->env, &st);
	s->mapsize = ei.me_mapsize;
	s->psize = st.ms_psize;
	last = (uint64_t)ei.me_last_pgno;
	if (mdb_env_get_fd(s->env, &s->fd) != 0 ||
	    mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
		return;
	if (mdb_get(txn, s->meta, &key, &val) == 0) {
		page = (uintptr_t)val.mv_data & ~(uintptr_t)(s->psize - 1);
		memcpy(&pgno, (void *)page, 8);
		if (pgno <= last) {
			s->map = (uint8_t *)(page - pgno * s->psize);
			memcpy(&magic, s->map + 16, 4);
			if (magic != META_MAGIC)
				s->map = NULL;
		}
	}
	mdb_txn_abort(txn);
	if (s->map == NULL)
		log_warnx("statefs: cannot place the store's map; blocks are "
		    "not reserved ahead of writes");
	s->ready = s->tail = s->tail0 = (last + 1) * s->psize;
}

int
sfs_room(struct sfs_view *v, size_t len)
{
	return room_to(v->s, v->s->tail + len + ROOM_MARGIN);
}

void
sfs_tail_seen(struct sfs_view *v, const void *p, size_t len)
{
	struct sfs *s = v->s;
	uint64_t end;

	if (s->map == NULL)
		return;
	end = (uint64_t)((const uint8_t *)p - s->map) + len;
	if (end > s->tail)
		s->tail = end;
}

/*
 * Start writing back what chunk writes put in the page cache once
 * WRITEBACK_STEP bytes have piled up, without waiting: the commit's
 * flush then finds most of a large session on disk already, instead of
 * stopping the worker while all of it is written.
 */
#define WRITEBACK_STEP	(8u << 20)
#define WRITEBACK_GAP	(1u << 20)

/*
 * Add [off, off + len) to the range [*lo, *hi) and hand the range to
 * writeback once it spans WRITEBACK_STEP bytes; with split, also when
 * this write lies more than WRITEBACK_GAP away from it (the write then
 * starts the next range), so that a range never spans what others
 * wrote. 1 when [*from, *to) was just handed over.
 */
static int
writeback_range(struct sfs *s, uint64_t *lo, uint64_t *hi, uint64_t off,
    size_t len, int split, uint64_t *from, uint64_t *to)
{
	int out = 0;

	if (split && *hi > *lo && (off > *hi + WRITEBACK_GAP ||
	    off + len + WRITEBACK_GAP < *lo)) {
		(void)sync_file_range(s->fd, (off_t)*lo, (off_t)(*hi - *lo),
		    SYNC_FILE_RANGE_WRITE);
		*from = *lo;
		*to = *hi;
		*lo = *hi = off;
		out = 1;
	}
	if (*hi == *lo)
		*lo = *hi = off;
	if (off < *lo)
		*lo = off;
	if (off + len > *hi)
		*hi = off + len;
	if (out || *hi - *lo < WRITEBACK_STEP)
		return out;
	(void)sync_file_range(s->fd, (off_t)*lo, (off_t)(*hi - *lo),
	    SYNC_FILE_RANGE_WRITE);
	*from = *lo;
	*to = *hi;
	*lo = *hi;
	return 1;
}

static void
writeback(struct sfs *s, uint64_t off, size_t len)
{
	uint64_t from, to;

	(void)writeback_range(s, &s->wb_lo, &s->wb_hi, off, len, 0, &from,
	    &to);
}

/*
 * Copy a chunk's bytes into the place LMDB reserved for them in the map
 * (MDB_RESERVE). They go in with pwrite(2) on the data file, whose page
 * cache the map shares: the kernel fills fresh pages without a fault per
 * 4 KiB, and a full disk is -ENOSPC here. The commit's flush covers them
 * with LMDB's own pages.
 */
static int
map_pwrite(struct sfs *s, void *dst, const void *src, size_t len)
{
	const uint8_t *p = src;
	off_t off;
	ssize_t n;

	if (s->map == NULL) {
		memcpy(dst, src, len);
		return 0;
	}
	off = (off_t)((uint8_t *)dst - s->map);
	while (len > 0) {
		if ((n = pwrite(s->fd, p, len, off)) < 0) {
			if (errno == EINTR)
				continue;
			return errno == ENOSPC || errno == EDQUOT ? -ENOSPC :
			    -errno;
		}
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
map_written(struct sfs_view *v, void *dst, size_t len, int r)
{
	if (r != 0) {
		v->broken = 1;
		if (r == -ENOSPC)
			return r;
		errno = -r;
		log_warn("statefs: write to the store");
		return -EIO;
	}
	if (v->s->map != NULL)
		writeback(v->s, (uint64_t)((uint8_t *)dst - v->s->map), len);
	return 0;
}

int
sfs_map_write(struct sfs_view *v, void *dst, const void *src, size_t len)
{
	return map_written(v, dst, len, map_pwrite(v->s, dst, src, len));
}

/*
 * Copying behind. Filling fresh page cache is most of what storing a
 * synced chunk costs (the bytes were just hashed; the pages they go to
 * are new to the machine), and on the worker's thread it would hold up
 * the next response. sfs_chunk_copy copies a batch into one of a few
 * staging buffers, which stay allocated and so cost no fresh memory, and
 * a second thread writes them into the data file while the worker goes
 * on. Only that thread writes staged bytes, so the writes never wait on
 * each other for the file's lock; it calls nothing but pwrite(2),
 * sync_file_range(2) and posix_fadvise(2) ("Dropping behind"), and LMDB
 * stays on the worker's thread.
 *
 * A staged write must land before anything could see or reuse its
 * place: sfs_copy_drain waits for all of them, and runs before every
 * call that reads chunk bytes (through sfs_wb_flush), before a chunk is
 * deleted (its pages could be handed out again in the same
 * transaction), at commit and at abort. A failed write is kept and
 * returned by the next sfs_chunk_copy or drain; the view is then broken.
 */
#define STAGE_BUFS	3
#define STAGE_BYTES	(2u << 20)	/* one sync response's chunks */
#define STAGE_PIECES	64
#define DROP_BEHIND	(24u << 20)	/* drop what is this far behind */
#define DROP_RANGES	64

struct stage {
	uint8_t *buf;
	struct sfs_later l[STAGE_PIECES];
	size_t n;
};

struct sfs_copier {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sfs *s;
	struct stage st[STAGE_BUFS];
	unsigned head, tail;		/* stages queued: [tail, head) */
	int busy;			/* the thread is writing st[tail] */
	int stop, r;
	unsigned slow_ms;		/* tests: wait this long per stage */
	uint64_t wb_lo, wb_hi;		/* the thread's own writeback() */
	struct gone {			/* ranges handed to writeback */
		uint64_t lo, hi, at;
	} gone[DROP_RANGES];
	unsigned ghead, gtail;
	uint64_t handed;		/* bytes handed to writeback */
};

/*
 * Dropping behind. New page cache is expensive where the machine's
 * memory is handed back to its host while free (first use of each page
 * faults in the host: on the development VM, writing 2 GiB into fresh
 * pages costs four times the CPU of writing them into pages just
 * freed). Synced bytes are not read again soon, so once a range handed
 * to writeback is DROP_BEHIND bytes behind, the thread drops its pages
 * (POSIX_FADV_DONTNEED: clean pages only; dirty, mapped or still
 * written ones stay), and the pages freed are the ones the next writes
 * get. A synced state is thus read back from disk, not kept in memory.
 */
static void
drop_behind(struct sfs_copier *c, uint64_t lo, uint64_t hi)
{
	struct gone *g;

	c->handed += hi - lo;
	g = &c->gone[c->ghead++ % DROP_RANGES];
	g->lo = lo;
	g->hi = hi;
	g->at = c->handed;
	while (c->ghead - c->gtail == DROP_RANGES ||
	    (c->ghead != c->gtail &&
	    c->handed - c->gone[c->gtail % DROP_RANGES].at >= DROP_BEHIND)) {
		g = &c->gone[c->gtail++ % DROP_RANGES];
		(void)posix_fadvise(c->s->fd, (off_t)g->lo,
		    (off_t)(g->hi - g->lo), POSIX_FADV_DONTNEED);
	}
}

static void *
copier_main(void *arg)
{
	struct sfs_copier *c = arg;
	struct stage *st;
	uint64_t from, to;
	unsigned slow;
	int r;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (c->tail == c->head && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->tail == c->head)
			break;
		st = &c->st[c->tail % STAGE_BUFS];
		c->busy = 1;
		slow = c->slow_ms;
		pthread_mutex_unlock(&c->mu);
		if (slow > 0) {
			struct timespec ts = { 0, (long)slow * 1000000 };

			nanosleep(&ts, NULL);
		}
		r = 0;
		for (size_t i = 0; i < st->n && r == 0; i++) {
			r = map_pwrite(c->s, st->l[i].dst, st->l[i].src,
			    st->l[i].len);
			if (r == 0 && writeback_range(c->s, &c->wb_lo,
			    &c->wb_hi, (uint64_t)((uint8_t *)st->l[i].dst -
			    c->s->map), st->l[i].len, 1, &from, &to))
				drop_behind(c, from, to);
		}
		pthread_mutex_lock(&c->mu);
		if (r != 0 && c->r == 0)
			c->r = r;
		c->busy = 0;
		c->tail++;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static struct sfs_copier *
copier(struct sfs *s)
{
	struct sfs_copier *c;
	sigset_t all, old;
	int i, rc;

	if (s->copier != NULL || s->map == NULL || s->no_copier)
		return s->copier;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->s = s;
	for (i = 0; i < STAGE_BUFS; i++)
		if ((c->st[i].buf = malloc(STAGE_BYTES)) == NULL)
			break;
	if (i < STAGE_BUFS || pthread_mutex_init(&c->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&c->cv, NULL) != 0) {
		pthread_mutex_destroy(&c->mu);
		goto fail;
	}
	/* Signals stay with the worker's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->th, NULL, copier_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		goto fail;
	}
	s->copier = c;
	return c;
fail:
	log_warnx("statefs: no thread for writing synced chunks behind;"
	    " writing them on the worker's");
	for (i = 0; i < STAGE_BUFS; i++)
		free(c->st[i].buf);
	free(c);
	s->no_copier = 1;
	return NULL;
}

static void
copier_stop(struct sfs *s)
{
	struct sfs_copier *c = s->copier;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->th, NULL);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	for (int i = 0; i < STAGE_BUFS; i++)
		free(c->st[i].buf);
	free(c);
	s->copier = NULL;
}

/* Wait until at most `left` stages are queued or being written; the
 * first failed write since the last call, if any. */
static int
copier_wait(struct sfs_copier *c, unsigned left)
{
	int r;

	pthread_mutex_lock(&c->mu);
	while (c->head - c->tail > left)
		pthread_cond_wait(&c->cv, &c->mu);
	r = c->r;
	c->r = 0;
	pthread_mutex_unlock(&c->mu);
	return r;
}

int
sfs_test_slow_copies(struct sfs *s, unsigned ms)
{
	struct sfs_copier *c = copier(s);

	if (c == NULL)
		return -1;
	pthread_mutex_lock(&c->mu);
	c->slow_ms = ms;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int
sfs_copy_drain(struct sfs_view *v)
{
	int r;

	if (v->s->copier == NULL || !v->rw)
		return 0;
	if ((r = copier_wait(v->s->copier, 0)) != 0)
		return map_written(v, NULL, 0, r);
	return 0;
}

int
sfs_chunk_copy(struct sfs_view *v, const struct sfs_later *l, size_t n)
{
	struct sfs_copier *c;
	struct stage *st;
	size_t total = 0, at = 0;
	int r;

	for (size_t i = 0; i < n; i++)
		total += l[i].len;
	if (total == 0)
		return 0;
	if (v->broken)
		return -EIO;
	if (n > STAGE_PIECES || total > STAGE_BYTES ||
	    (c = copier(v->s)) == NULL) {
		for (size_t i = 0; i < n; i++)
			if (l[i].len > 0 && (r = sfs_map_write(v, l[i].dst,
			    l[i].src, l[i].len)) != 0)
				return r;
		return 0;
	}
	/* A free stage: the thread holds at most STAGE_BUFS - 1 others. */
	if ((r = copier_wait(c, STAGE_BUFS - 1)) != 0)
		return map_written(v, NULL, 0, r);
	st = &c->st[c->head % STAGE_BUFS];
	st->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (l[i].len == 0)
			continue;
		memcpy(st->buf + at, l[i].src, l[i].len);
		st->l[st->n].dst = l[i].dst;
		st->l[st->n].src = st->buf + at;
		st->l[st->n++].len = l[i].len;
		at += l[i].len;
	}
	pthread_mutex_lock(&c->mu);
	c->head++;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static size_t
map_size(void)
{
	const char *e = getenv("HPD_STATE_MAPSIZE");
	unsigned long long sz;
	char *end;

	if (e == NULL || *e == '\0')
		return MAPSIZE_DEFAULT;
	errno = 0;
	sz = strtoull(e, &end, 0);
	if (errno != 0 || *end != '\0' || sz < 65536) {
		log_warnx("statefs: HPD_STATE_MAPSIZE=%s is not a size in "
		    "bytes (>= 65536); using the default", e);
		return MAPSIZE_DEFAULT;
	}
	return (size_t)sz;
}

int
sfs_open(const char *dir, struct sfs **out)
{
	struct sfs *s;
	struct sfs_view v;
	uint8_t d[4], state[32], patch[32];
	int rc, dead, r;

	*out = NULL;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_warn("statefs: mkdir %s", dir);
		return HP_EIO;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return HP_ENOMEM;
	zero_hashes(s);
	/* No read-around on the map: a B-tree page fault reads one page, and
	 * chunks.c asks for chunk bytes itself. */
	if ((rc = mdb_env_create(&s->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, map_size())) != 0 ||
	    (rc = mdb_env_set_maxdbs(s->env, 16)) != 0 ||
	    (rc = mdb_env_open(s->env, dir, MDB_NOTLS | MDB_NORDAHEAD |
	    MDB_WRITEMAP, 0600)) != 0) {
		log_warnx("statefs: open %s: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_reader_check(s->env, &dead)) != 0)
		log_warnx("statefs: reader check: %s", mdb_strerror(rc));
	else if (dead > 0)
		log_info("statefs: cleared %d stale reader slot(s)", dead);
	memset(&v, 0, sizeof(v));
	v.s = s;
	v.rw = 1;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &v.txn)) != 0) {
		log_warnx("statefs: begin: %s", mdb_strerror(rc));
		goto fail;
	}
	if (open_dbis(s, v.txn) != 0)
		goto fail_txn;
	r = meta_get(v.txn, s, "format", d, 4);
	if (r == HP_ENOENT) {
		if (store_init(&v) != 0 || store_roots(&v, state, patch) != 0)
			goto fail_txn;
	} else if (r != 0 || get32(d) != SFS_FORMAT) {
		log_warnx("statefs: %s: unknown format (want %d); move the "
		    "directory away to start an empty state", dir, SFS_FORMAT);
		mdb_txn_abort(v.txn);
		mdb_env_close(s->env);
		free(s);
		return HP_EFORMAT;
	}
	if ((rc = mdb_txn_commit(v.txn)) != 0) {
		log_warnx("statefs: commit: %s", mdb_strerror(rc));
		goto fail;
	}
	map_find(s);
	*out = s;
	return 0;
fail_txn:
	mdb_txn_abort(v.txn);
fail:
	if (s->env != NULL)
		mdb_env_close(s->env);
	free(s);
	return HP_EIO;
}

void
sfs_close(struct sfs *s)
{
	if (s == NULL)
		return;
	copier_stop(s);
	mdb_env_close(s->env);
	free(s);
}

int
sfs_hashes(struct sfs *s, uint8_t state[32], uint8_t patch[32])
{
	MDB_txn *txn;
	int r;

	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
		return HP_EIO;
	if ((r = meta_get(txn, s, "state", state, 32)) == 0)
		r = meta_get(txn, s, "patch", patch, 32);
	mdb_txn_abort(txn);
	return r;
}

static int
begin(struct sfs *s, int rw, struct sfs_view **out)
{
	struct sfs_view *v;
	int rc;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return HP_ENOMEM;
	v->s = s;
	v->rw = rw;
	if (rw && ((v->scratch = malloc(SFS_CHUNK)) == NULL ||
	    (v->wb = malloc(SFS_CHUNK)) == NULL)) {
		free(v->scratch);
		free(v);
		return HP_ENOMEM;
	}
	rc = mdb_txn_begin(s->env, NULL, rw ? 0 : MDB_RDONLY, &v->txn);
	if (rc == MDB_READERS_FULL) {
		mdb_reader_check(s->env, NULL);
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &v->txn);
	}
	if (rc != 0) {
		log_warnx("statefs: begin: %s", mdb_strerror(rc));
		free(v->wb);
		free(v->scratch);
		free(v);
		return rc == MDB_READERS_FULL ? HP_EBUSY : HP_EIO;
	}
	*out = v;
	return 0;
}

static void
view_free(struct sfs_view *v)
{
	free(v->tombs);
	free(v->wb);
	free(v->scratch);
	free(v);
}

int
sfs_begin_rw(struct sfs *s, struct sfs_view **out)
{
	MDB_envinfo ei;
	int expect = 0, r;

	*out = NULL;
	if (!__atomic_compare_exchange_n(&s->rw_open, &expect, 1, 0,
	    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return HP_EBUSY;
	if ((r = begin(s, 1, out)) != 0) {
		__atomic_store_n(&s->rw_open, 0, __ATOMIC_RELEASE);
		return r;
	}
	mdb_env_info(s->env, &ei);
	s->tail = s->tail0 = (uint64_t)(ei.me_last_pgno + 1) * s->psize;
	if (s->ready < s->tail)
		s->ready = s->tail;
	return 0;
}

int
sfs_begin_ro(struct sfs *s, struct sfs_view **out)
{
	*out = NULL;
	return begin(s, 0, out);
}

int
sfs_view_is_rw(const struct sfs_view *v)
{
	return v->rw;
}

int
sfs_commit(struct sfs_view *v, uint8_t state[32], uint8_t patch[32])
{
	struct sfs *s = v->s;
	uint8_t st[32], pt[32];
	int r = 0, rc;

	if (!v->rw) {
		sfs_end(v);
		return HP_EINVAL;
	}
	if (v->broken || sfs_wb_flush(v) != 0 ||
	    store_roots(v, st, pt) != 0) {
		log_warnx("statefs: session failed earlier; not committed");
		mdb_txn_abort(v->txn);
		r = HP_EIO;
	} else if ((rc = mdb_txn_commit(v->txn)) != 0) {
		log_warnx("statefs: commit: %s", mdb_strerror(rc));
		r = HP_EIO;
	} else {
		if (state != NULL)
			memcpy(state, st, 32);
		if (patch != NULL)
			memcpy(patch, pt, 32);
	}
	view_free(v);
	__atomic_store_n(&s->rw_open, 0, __ATOMIC_RELEASE);
	return r;
}

void
sfs_abort(struct sfs_view *v)
{
	struct sfs *s;

	if (v == NULL)
		return;
	if (!v->rw) {
		sfs_end(v);
		return;
	}
	s = v->s;
	(void)sfs_copy_drain(v);	/* no write may land after the abort */
	mdb_txn_abort(v->txn);
	view_free(v);
	__atomic_store_n(&s->rw_open, 0, __ATOMIC_RELEASE);
}

void
sfs_end(struct sfs_view *v)
{
	if (v == NULL)
		return;
	if (v->rw) {
		sfs_abort(v);
		return;
	}
	mdb_txn_abort(v->txn);
	view_free(v);
}

uint64_t
sfs_debug_hashed(struct sfs *s)
{
	return __atomic_load_n(&s->hashed, __ATOMIC_RELAXED);
}
