/*
 * tree.c — the statefs hash tree: the node hash definition
 * (docs/state-hash.md), dirty marking, the incremental recomputation run
 * at commit and by sfs_node_hash, and sfs_verify, which recomputes
 * everything from the stored bytes and compares.
 *
 * Invariant: a node in "dirty" (key parent || ino) has all its ancestors
 * in "dirty" too, so marking stops at the first ancestor already marked
 * and the recomputation walks down from a node only into dirty children.
 * A file's group hashes are cached in "groups", except those equal to
 * the hash of a group of 256 zero chunks (a hole of 16 MiB), which are
 * absent; "gdirty" lists the groups to recompute. After a commit both
 * dirty sets are empty.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <blake3.h>

#include "err.h"
#include "log.h"

#define TAG_FILE	"hpd file v1"
#define TAG_DIR		"hpd dir v1"
#define TAG_LINK	"hpd symlink v1"

static void
count(struct sfs *s, size_t len)
{
	__atomic_add_fetch(&s->hashed, len, __ATOMIC_RELAXED);
}

static void
feed(struct sfs *s, blake3_hasher *h, const void *p, size_t len)
{
	blake3_hasher_update(h, p, len);
	count(s, len);
}

void
sfs_hash_count(struct sfs *s, const void *p, size_t len, uint8_t out[32])
{
	blake3_hasher h;

	blake3_hasher_init(&h);
	feed(s, &h, p, len);
	blake3_hasher_finalize(&h, out, 32);
}

static void
key16(uint8_t k[16], uint64_t a, uint64_t b)
{
	sfs_put64(k, a);
	sfs_put64(k + 8, b);
}

static int
del_key(struct sfs_view *v, MDB_dbi dbi, uint8_t *k, size_t klen)
{
	MDB_val key = { klen, k };
	int rc;

	rc = mdb_del(v->txn, dbi, &key, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return sfs_lmdb_err(v, "delete", rc);
	return 0;
}

static int
inode_parent(struct sfs_view *v, uint64_t ino, uint64_t *parent)
{
	uint8_t k[8];
	MDB_val key = { 8, k }, val;
	int rc;

	sfs_put64(k, ino);
	if ((rc = mdb_get(v->txn, v->s->inodes, &key, &val)) == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0 || val.mv_size < SFS_REC_FIXED) {
		log_warnx("statefs: parent of inode %llu: %s",
		    (unsigned long long)ino, rc ? mdb_strerror(rc) : "short");
		return -EIO;
	}
	*parent = sfs_get64((uint8_t *)val.mv_data + 16);
	return 0;
}

static int
is_dirty(struct sfs_view *v, uint64_t parent, uint64_t ino)
{
	uint8_t k[16];
	MDB_val key = { 16, k }, val;

	key16(k, parent, ino);
	return mdb_get(v->txn, v->s->dirty, &key, &val) == 0;
}

int
sfs_mark_dirty(struct sfs_view *v, uint64_t ino)
{
	uint8_t k[16];
	MDB_val key = { 16, k }, val = { 0, NULL };
	uint64_t parent;
	int r, rc;

	for (;;) {
		if ((r = inode_parent(v, ino, &parent)) != 0)
			return r;
		key16(k, parent, ino);
		rc = mdb_put(v->txn, v->s->dirty, &key, &val, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST)
			return 0;
		if (rc != 0)
			return sfs_lmdb_err(v, "mark dirty", rc);
		if (parent == 0)
			return 0;
		ino = parent;
	}
}

int
sfs_mark_group(struct sfs_view *v, uint64_t ino, uint64_t group)
{
	uint8_t k[16];
	MDB_val key = { 16, k }, val = { 0, NULL };
	int rc;

	key16(k, ino, group);
	rc = mdb_put(v->txn, v->s->gdirty, &key, &val, 0);
	if (rc != 0)
		return sfs_lmdb_err(v, "mark group", rc);
	return sfs_mark_dirty(v, ino);
}

int
sfs_move_dirty(struct sfs_view *v, uint64_t ino, uint64_t oldparent)
{
	uint8_t k[16];

	key16(k, oldparent, ino);
	return del_key(v, v->s->dirty, k, 16);
}

/* Delete the keys ino || x (x >= from) of a 16-byte-keyed database. */
static int
del_range(struct sfs_view *v, MDB_dbi dbi, uint64_t ino, uint64_t from)
{
	MDB_cursor *c;
	uint8_t k[16];
	MDB_val key, val;
	int rc;

	if ((rc = mdb_cursor_open(v->txn, dbi, &c)) != 0)
		return sfs_lmdb_err(v, "cursor", rc);
	for (;;) {
		key16(k, ino, from);
		key.mv_size = 16;
		key.mv_data = k;
		rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
		if (rc != 0 || key.mv_size != 16 ||
		    sfs_get64(key.mv_data) != ino)
			break;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return sfs_lmdb_err(v, "delete range", rc);
	return 0;
}

int
sfs_forget_groups(struct sfs_view *v, uint64_t ino, uint64_t from)
{
	int r;

	if ((r = del_range(v, v->s->groups, ino, from)) != 0)
		return r;
	return del_range(v, v->s->gdirty, ino, from);
}

int
sfs_forget_node(struct sfs_view *v, uint64_t parent, uint64_t ino)
{
	uint8_t k[16];
	int r;

	key16(k, parent, ino);
	if ((r = del_key(v, v->s->dirty, k, 16)) != 0 ||
	    (r = del_key(v, v->s->hashes, k + 8, 8)) != 0)
		return r;
	return sfs_forget_groups(v, ino, 0);
}

int
sfs_cached_hash(struct sfs_view *v, uint64_t ino, uint8_t out[32])
{
	uint8_t k[8];
	MDB_val key = { 8, k }, val;
	int rc;

	sfs_put64(k, ino);
	if ((rc = mdb_get(v->txn, v->s->hashes, &key, &val)) != 0 ||
	    val.mv_size != 32) {
		log_warnx("statefs: no cached hash for inode %llu",
		    (unsigned long long)ino);
		return -EIO;
	}
	memcpy(out, val.mv_data, 32);
	return 0;
}

/*
 * Group g of a file of the given size, from its chunk list: the hash of
 * the chunk hashes of chunks 256g .. min(256g + 256, n) - 1, a hole
 * counting as the hash of its zero bytes.
 */
static int
group_hash(struct sfs_view *v, uint64_t ino, uint64_t size, uint64_t g,
    uint8_t out[32])
{
	uint8_t buf[SFS_GROUP * 32], k[16];
	uint64_t n = sfs_nchunks(size), first = g * SFS_GROUP, last, idx;
	MDB_cursor *c;
	MDB_val key = { 16, k }, val;
	int rc;

	last = first + SFS_GROUP < n ? first + SFS_GROUP : n;
	if (first >= last)
		return -EIO;
	if ((rc = mdb_cursor_open(v->txn, v->s->fchunks, &c)) != 0)
		return sfs_lmdb_err(v, "cursor", rc);
	key16(k, ino, first);
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	for (uint64_t i = first; i < last; i++) {
		idx = UINT64_MAX;
		if (rc == 0 && key.mv_size == 16 &&
		    sfs_get64(key.mv_data) == ino)
			idx = sfs_get64((uint8_t *)key.mv_data + 8);
		if (idx == i && val.mv_size == 32) {
			memcpy(buf + 32 * (i - first), val.mv_data, 32);
			rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
		} else
			sfs_zero_hash(v->s, sfs_chunk_len(size, i),
			    buf + 32 * (i - first));
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return sfs_lmdb_err(v, "chunk list", rc);
	sfs_hash_count(v->s, buf, (size_t)(last - first) * 32, out);
	return 0;
}

static void
hash_head(struct sfs *s, blake3_hasher *h, const char *tag, uint32_t mode)
{
	uint8_t m[4] = { 0, 0, (mode & 07777) >> 8, mode & 0xff };

	blake3_hasher_init(h);
	feed(s, h, tag, strlen(tag));
	feed(s, h, m, 4);
}

/*
 * A file's node hash from its group hashes: cached ones (absent = the
 * all-hole group) or, when scratch, recomputed from the chunk list.
 */
static int
file_hash(struct sfs_view *v, const struct sfs_inode *n, int scratch,
    uint8_t out[32])
{
	uint64_t ng = (sfs_nchunks(n->size) + SFS_GROUP - 1) / SFS_GROUP;
	uint8_t sz[8], k[16], gh[32];
	blake3_hasher h;
	MDB_cursor *c;
	MDB_val key = { 16, k }, val;
	int r, rc;

	hash_head(v->s, &h, TAG_FILE, n->mode);
	sfs_put64(sz, n->size);
	feed(v->s, &h, sz, 8);
	if (scratch) {
		for (uint64_t g = 0; g < ng; g++) {
			if ((r = group_hash(v, n->ino, n->size, g, gh)) != 0)
				return r;
			feed(v->s, &h, gh, 32);
		}
		blake3_hasher_finalize(&h, out, 32);
		return 0;
	}
	if ((rc = mdb_cursor_open(v->txn, v->s->groups, &c)) != 0)
		return sfs_lmdb_err(v, "cursor", rc);
	key16(k, n->ino, 0);
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	for (uint64_t g = 0; g < ng; g++) {
		if (rc == 0 && key.mv_size == 16 && val.mv_size == 32 &&
		    sfs_get64(key.mv_data) == n->ino &&
		    sfs_get64((uint8_t *)key.mv_data + 8) == g) {
			feed(v->s, &h, val.mv_data, 32);
			rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
		} else
			feed(v->s, &h, v->s->zgroup, 32);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return sfs_lmdb_err(v, "group list", rc);
	blake3_hasher_finalize(&h, out, 32);
	return 0;
}

static void
link_hash(struct sfs *s, const struct sfs_inode *n, uint8_t out[32])
{
	blake3_hasher h;

	blake3_hasher_init(&h);
	feed(s, &h, TAG_LINK, strlen(TAG_LINK));
	feed(s, &h, n->target, n->targetlen);
	blake3_hasher_finalize(&h, out, 32);
}

/* How dir_hash gets a child's hash: from the cache, or by recursion. */
typedef int (*child_fn)(struct sfs_view *v, void *ctx, uint64_t dir,
    const char *name, size_t len, uint64_t child, uint8_t out[32]);

static int
child_cached(struct sfs_view *v, void *ctx, uint64_t dir, const char *name,
    size_t len, uint64_t child, uint8_t out[32])
{
	return sfs_cached_hash(v, child, out);
}

static int
dir_hash(struct sfs_view *v, const struct sfs_inode *n, child_fn fn,
    void *ctx, uint8_t out[32])
{
	uint8_t k[8 + SFS_NAME_MAX], len[2], ch[32];
	blake3_hasher h;
	MDB_cursor *c;
	MDB_val key, val;
	size_t nlen;
	int r = 0, rc;

	hash_head(v->s, &h, TAG_DIR, n->mode);
	if ((rc = mdb_cursor_open(v->txn, v->s->dirents, &c)) != 0)
		return sfs_lmdb_err(v, "cursor", rc);
	sfs_put64(k, n->ino);
	key.mv_size = 8;
	key.mv_data = k;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size < 9 || sfs_get64(key.mv_data) != n->ino)
			break;
		nlen = key.mv_size - 8;
		if (val.mv_size != 8 || nlen > SFS_NAME_MAX) {
			r = -EIO;
			break;
		}
		memcpy(k, key.mv_data, key.mv_size);
		if ((r = fn(v, ctx, n->ino, (char *)k + 8, nlen,
		    sfs_get64(val.mv_data), ch)) != 0)
			break;
		len[0] = (uint8_t)(nlen >> 8);
		len[1] = (uint8_t)nlen;
		feed(v->s, &h, len, 2);
		feed(v->s, &h, k + 8, nlen);
		feed(v->s, &h, ch, 32);
	}
	mdb_cursor_close(c);
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = sfs_lmdb_err(v, "dir list", rc);
	if (r == 0)
		blake3_hasher_finalize(&h, out, 32);
	return r;
}

/* Recompute the dirty groups of a file and drop the marks. */
static int
update_groups(struct sfs_view *v, const struct sfs_inode *n)
{
	uint64_t ng = (sfs_nchunks(n->size) + SFS_GROUP - 1) / SFS_GROUP, g;
	uint8_t k[16], gh[32];
	MDB_cursor *c;
	MDB_val key, val;
	int r, rc;

	for (;;) {
		if ((rc = mdb_cursor_open(v->txn, v->s->gdirty, &c)) != 0)
			return sfs_lmdb_err(v, "cursor", rc);
		key16(k, n->ino, 0);
		key.mv_size = 16;
		key.mv_data = k;
		rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
		g = UINT64_MAX;
		if (rc == 0 && key.mv_size == 16 &&
		    sfs_get64(key.mv_data) == n->ino)
			g = sfs_get64((uint8_t *)key.mv_data + 8);
		mdb_cursor_close(c);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return sfs_lmdb_err(v, "dirty groups", rc);
		if (g == UINT64_MAX)
			return 0;
		key16(k, n->ino, g);
		if ((r = del_key(v, v->s->gdirty, k, 16)) != 0)
			return r;
		if (g >= ng)
			continue;
		if ((r = group_hash(v, n->ino, n->size, g, gh)) != 0)
			return r;
		if (memcmp(gh, v->s->zgroup, 32) == 0) {
			if ((r = del_key(v, v->s->groups, k, 16)) != 0)
				return r;
		} else {
			key.mv_size = 16;
			key.mv_data = k;
			val.mv_size = 32;
			val.mv_data = gh;
			if ((rc = mdb_put(v->txn, v->s->groups, &key, &val,
			    0)) != 0)
				return sfs_lmdb_err(v, "group put", rc);
		}
	}
}

/* Hash one node whose dirty children (if any) are done; cache it. */
static int
update_node(struct sfs_view *v, struct sfs_inode *n)
{
	uint8_t k[16], h[32];
	MDB_val key = { 8, k + 8 }, val = { 32, h };
	int r, rc;

	if (S_ISDIR(n->mode))
		r = dir_hash(v, n, child_cached, NULL, h);
	else if (S_ISREG(n->mode)) {
		if ((r = update_groups(v, n)) == 0)
			r = file_hash(v, n, 0, h);
	} else {
		link_hash(v->s, n, h);
		r = 0;
	}
	if (r != 0)
		return r;
	key16(k, n->parent, n->ino);
	if ((rc = mdb_put(v->txn, v->s->hashes, &key, &val, 0)) != 0)
		return sfs_lmdb_err(v, "hash put", rc);
	return del_key(v, v->s->dirty, k, 16);
}

/* Push the dirty children of dir; returns how many, or an error. */
static int
push_dirty(struct sfs_view *v, uint64_t dir, uint64_t **stack, size_t *len,
    size_t *cap)
{
	uint8_t k[16];
	MDB_cursor *c;
	MDB_val key = { 8, k }, val;
	uint64_t *ns;
	int rc, pushed = 0;

	if ((rc = mdb_cursor_open(v->txn, v->s->dirty, &c)) != 0)
		return sfs_lmdb_err(v, "cursor", rc);
	sfs_put64(k, dir);
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != 16 || sfs_get64(key.mv_data) != dir)
			break;
		if (*len == *cap) {
			*cap = *cap ? 2 * *cap : 64;
			if ((ns = reallocarray(*stack, *cap,
			    sizeof(**stack))) == NULL) {
				mdb_cursor_close(c);
				return -ENOMEM;
			}
			*stack = ns;
		}
		(*stack)[(*len)++] = sfs_get64((uint8_t *)key.mv_data + 8);
		pushed++;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return sfs_lmdb_err(v, "dirty list", rc);
	return pushed;
}

int
sfs_tree_update(struct sfs_view *v, uint64_t ino)
{
	struct sfs_inode *n;
	uint64_t *stack = NULL, parent;
	size_t len = 0, cap = 0;
	int r;

	if (!v->rw)
		return 0;
	if (v->broken)
		return -EIO;
	if ((r = inode_parent(v, ino, &parent)) != 0)
		return r;
	if (!is_dirty(v, parent, ino))
		return 0;
	cap = 64;
	n = malloc(sizeof(*n));
	stack = malloc(cap * sizeof(*stack));
	if (n == NULL || stack == NULL) {
		r = -ENOMEM;
		goto out;
	}
	stack[len++] = ino;
	while (len > 0) {
		if ((r = sfs_inode_get(v, stack[len - 1], n)) != 0)
			break;
		if (S_ISDIR(n->mode)) {
			if ((r = push_dirty(v, n->ino, &stack, &len, &cap)) < 0)
				break;
			if (r > 0)
				continue;
		}
		if ((r = update_node(v, n)) != 0)
			break;
		len--;
	}
out:
	free(stack);
	free(n);
	return r;
}

int
sfs_node_hash(struct sfs_view *v, uint64_t ino, uint8_t out[32])
{
	uint64_t parent;
	int r;

	if ((r = sfs_wb_flush(v)) != 0 ||
	    (r = inode_parent(v, ino, &parent)) != 0 ||
	    (r = sfs_tree_update(v, ino)) != 0)
		return r;
	return sfs_cached_hash(v, ino, out);
}

/* ---- sfs_verify ---- */

struct refmap {
	struct refent {
		uint8_t hash[32];
		uint64_t n;
	} *e;
	size_t cap, used;
};

static struct refent *
refmap_find(struct refmap *m, const uint8_t hash[32], int add)
{
	struct refent *old;
	size_t i, oldcap;

	if (add && 2 * (m->used + 1) > m->cap) {
		old = m->e;
		oldcap = m->cap;
		m->cap = m->cap ? 2 * m->cap : 1024;
		if ((m->e = calloc(m->cap, sizeof(*m->e))) == NULL)
			fatal("statefs: out of memory");
		m->used = 0;
		for (i = 0; i < oldcap; i++)
			if (old[i].n != 0)
				*refmap_find(m, old[i].hash, 1) = old[i];
		free(old);
	}
	if (m->cap == 0)
		return NULL;
	for (i = sfs_get64(hash) & (m->cap - 1); m->e[i].n != 0;
	    i = (i + 1) & (m->cap - 1))
		if (memcmp(m->e[i].hash, hash, 32) == 0)
			return &m->e[i];
	if (!add)
		return NULL;
	memcpy(m->e[i].hash, hash, 32);
	m->used++;
	return &m->e[i];
}

struct verify {
	struct refmap refs;
	uint64_t inodes;
	int bad;
};

struct dirctx {
	struct verify *vf;
	uint64_t subdirs;
};

static void
complain(struct verify *vf, uint64_t ino, const char *what)
{
	if (ino == 0)
		log_warnx("statefs verify: %s", what);
	else
		log_warnx("statefs verify: inode %llu: %s",
		    (unsigned long long)ino, what);
	vf->bad = 1;
}

static int
zeros(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/* A file's chunks against their bytes, its references and group cache. */
static int
verify_file(struct sfs_view *v, struct verify *vf, const struct sfs_inode *n)
{
	uint64_t nc = sfs_nchunks(n->size), idx, stored = 0, g;
	uint8_t k[16], h[32], gh[32];
	MDB_cursor *c;
	MDB_val key, val, ck, cv;
	struct refent *e;
	int rc;

	if ((rc = mdb_cursor_open(v->txn, v->s->fchunks, &c)) != 0)
		return -EIO;
	key16(k, n->ino, 0);
	key.mv_size = 16;
	key.mv_data = k;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != 16 || sfs_get64(key.mv_data) != n->ino)
			break;
		idx = sfs_get64((uint8_t *)key.mv_data + 8);
		ck.mv_size = 32;
		ck.mv_data = val.mv_data;
		if (idx >= nc) {
			complain(vf, n->ino, "chunk past EOF");
			continue;
		}
		if (val.mv_size != 32 ||
		    mdb_get(v->txn, v->s->chunks, &ck, &cv) != 0) {
			complain(vf, n->ino, "chunk missing");
			continue;
		}
		if (cv.mv_size != sfs_chunk_len(n->size, idx))
			complain(vf, n->ino, "chunk length");
		sfs_hash_count(v->s, cv.mv_data, cv.mv_size, h);
		if (memcmp(h, val.mv_data, 32) != 0)
			complain(vf, n->ino, "chunk bytes do not hash to key");
		if (zeros(cv.mv_data, cv.mv_size))
			complain(vf, n->ino, "all-zero chunk stored");
		stored += cv.mv_size;
		e = refmap_find(&vf->refs, val.mv_data, 1);
		e->n++;
	}
	mdb_cursor_close(c);
	if (stored != n->stored)
		complain(vf, n->ino, "stored byte count");
	for (g = 0; g * SFS_GROUP < nc; g++) {
		if (group_hash(v, n->ino, n->size, g, gh) != 0)
			return -EIO;
		key16(k, n->ino, g);
		key.mv_size = 16;
		key.mv_data = k;
		rc = mdb_get(v->txn, v->s->groups, &key, &val);
		if (memcmp(gh, v->s->zgroup, 32) == 0 ? rc == 0 :
		    rc != 0 || memcmp(val.mv_data, gh, 32) != 0)
			complain(vf, n->ino, "group cache");
	}
	if ((rc = mdb_cursor_open(v->txn, v->s->groups, &c)) != 0)
		return -EIO;
	key16(k, n->ino, g);
	key.mv_size = 16;
	key.mv_data = k;
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	if (rc == 0 && sfs_get64(key.mv_data) == n->ino)
		complain(vf, n->ino, "group cached past EOF");
	mdb_cursor_close(c);
	return 0;
}

static int child_scratch(struct sfs_view *, void *, uint64_t, const char *,
    size_t, uint64_t, uint8_t[32]);

/* Recompute ino's hash from scratch and check everything on the way. */
static int
verify_node(struct sfs_view *v, struct verify *vf, uint64_t ino,
    uint64_t parent, const char *name, size_t nlen, uint8_t out[32])
{
	struct sfs_inode *n;
	uint8_t cached[32];
	int r;

	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = sfs_inode_get(v, ino, n)) != 0) {
		complain(vf, ino, "entry without inode");
		goto out;
	}
	vf->inodes++;
	if (n->parent != parent || n->namelen != nlen ||
	    memcmp(n->name, name, nlen) != 0)
		complain(vf, ino, "parent or name differs from its entry");
	if (S_ISDIR(n->mode)) {
		struct dirctx ctx = { vf, 0 };

		r = dir_hash(v, n, child_scratch, &ctx, out);
		if (r == 0 && n->nlink != 2 + ctx.subdirs)
			complain(vf, ino, "nlink");
	} else if (S_ISREG(n->mode)) {
		if ((r = verify_file(v, vf, n)) == 0)
			r = file_hash(v, n, 1, out);
	} else if (S_ISLNK(n->mode))
		link_hash(v->s, n, out);
	else
		complain(vf, ino, "unknown type");
	if (r != 0)
		goto out;
	if (sfs_cached_hash(v, ino, cached) != 0 ||
	    memcmp(cached, out, 32) != 0)
		complain(vf, ino, "cached node hash differs from recomputed");
out:
	free(n);
	return r;
}

static int
child_scratch(struct sfs_view *v, void *ctx, uint64_t dir, const char *name,
    size_t len, uint64_t child, uint8_t out[32])
{
	struct dirctx *c = ctx;
	struct sfs_attr a;
	char nm[SFS_NAME_MAX + 1];

	memcpy(nm, name, len);
	if (sfs_getattr(v, child, &a) == 0 && S_ISDIR(a.mode))
		c->subdirs++;
	return verify_node(v, c->vf, child, dir, nm, len, out);
}

static uint64_t
entries(struct sfs_view *v, MDB_dbi dbi)
{
	MDB_stat st;

	return mdb_stat(v->txn, dbi, &st) == 0 ? st.ms_entries : UINT64_MAX;
}

static void
verify_refs(struct sfs_view *v, struct verify *vf)
{
	MDB_cursor *c;
	MDB_val key, val;
	struct refent *e;
	uint64_t nrefs = 0;
	int rc;

	if (mdb_cursor_open(v->txn, v->s->refs, &c) != 0) {
		vf->bad = 1;
		return;
	}
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		nrefs++;
		e = key.mv_size == 32 ? refmap_find(&vf->refs, key.mv_data, 0) :
		    NULL;
		if (e == NULL || val.mv_size != 8 ||
		    sfs_get64(val.mv_data) != e->n)
			complain(vf, 0, "refcount differs from references");
	}
	mdb_cursor_close(c);
	if (nrefs != vf->refs.used || entries(v, v->s->chunks) != nrefs)
		complain(vf, 0, "chunks, refcounts and references disagree");
}

int
sfs_verify(struct sfs *s)
{
	struct sfs_view *v;
	struct verify vf;
	uint8_t root[32], st[32], pt[32];
	MDB_val key = { 5, "state" }, val;
	int r;

	if ((r = sfs_begin_ro(s, &v)) != 0)
		return r;
	memset(&vf, 0, sizeof(vf));
	r = verify_node(v, &vf, SFS_ROOT_INO, 0, "", 0, root);
	if (r == 0) {
		verify_refs(v, &vf);
		if (vf.inodes != entries(v, s->inodes))
			complain(&vf, 0, "unreachable inodes");
		if (entries(v, s->dirty) != 0 || entries(v, s->gdirty) != 0 ||
		    entries(v, s->pending) != 0)
			complain(&vf, 0, "dirty marks left after commit");
		if (sfs_cached_hash(v, SFS_STATE_INO, st) != 0 ||
		    sfs_cached_hash(v, SFS_PATCH_INO, pt) != 0)
			vf.bad = 1;
		if (mdb_get(v->txn, s->meta, &key, &val) != 0 ||
		    val.mv_size != 32 || memcmp(val.mv_data, st, 32) != 0)
			complain(&vf, 0, "committed state hash");
		key.mv_size = 5;
		key.mv_data = "patch";
		if (mdb_get(v->txn, s->meta, &key, &val) != 0 ||
		    val.mv_size != 32 || memcmp(val.mv_data, pt, 32) != 0)
			complain(&vf, 0, "committed patch hash");
	}
	free(vf.refs.e);
	sfs_end(v);
	if (r != 0)
		return HP_EIO;
	return vf.bad ? HP_EIO : 0;
}
