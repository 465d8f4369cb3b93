/*
 * chunks.c — file content in statefs: the content-addressed chunk store
 * with reference counts, reads, writes and resizes cut at fixed
 * SFS_CHUNK offsets, and the chunk-level calls the sync engine uses.
 *
 * A file of size S has chunks 0 .. ceil(S / SFS_CHUNK) - 1; chunk i holds
 * exactly min(SFS_CHUNK, S - i * SFS_CHUNK) bytes. A chunk whose bytes are
 * all zero is a hole: it has no "fchunks" entry and no stored bytes. So
 * whenever a file's size moves, its old and new last chunks are re-cut
 * (padded or trimmed) and their groups marked for rehashing. A stored
 * chunk's refcount counts the "fchunks" entries naming it; it is deleted
 * when that reaches zero. sfs_chunk_put stores with a refcount of zero
 * and lists the chunk in "pending", swept at commit.
 *
 * Write-back: a write that covers only part of a chunk (an append, a
 * program writing 4 KiB at a time) does not store the chunk; the chunk's
 * bytes wait in the view's buffer (v->wb, one chunk per session) while
 * further writes to that chunk land there. It is hashed and stored once:
 * when a write reaches its end, when another chunk is written in part,
 * and before any other call that could see it (every public call but
 * sfs_write and the namespace calls that touch no content flushes first,
 * and so does sfs_commit). The inode's size and times are always
 * current; only its chunk list and stored bytes lag. An abort or a crash
 * loses the buffer with the rest of the session.
 *
 * Reads hand out the stored bytes in place (sfs_read_iov; sfs_read
 * copies them) and ask the kernel for them from disk first, since the
 * map does no read-around of its own (see "Reading ahead in the map").
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"

/* A read through the mount of at least PREFETCH_MIN bytes also asks for
 * the PREFETCH_AHEAD bytes after it (ask_ahead()). */
#define PREFETCH_MIN	(256 * 1024)
#define PREFETCH_AHEAD	(4 * 1024 * 1024)
#define READ_STEP	(1024 * 1024)	/* sfs_read's pieces at a time */
/* A chunk this large always has overflow pages of its own in LMDB (the
 * largest value a 4 KiB leaf holds is under 2 KiB). */
#define LATER_MIN	4096

static const uint8_t zero_chunk[SFS_CHUNK];

uint64_t
sfs_nchunks(uint64_t size)
{
	return (size + SFS_CHUNK - 1) / SFS_CHUNK;
}

uint64_t
sfs_chunk_len(uint64_t size, uint64_t idx)
{
	uint64_t left = size - idx * SFS_CHUNK;

	return left < SFS_CHUNK ? left : SFS_CHUNK;
}

void
sfs_zero_hash(struct sfs *s, uint64_t len, uint8_t out[32])
{
	if (len == SFS_CHUNK)
		memcpy(out, s->zchunk, 32);
	else
		sfs_hash_count(s, zero_chunk, len, out);
}

static int
all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static void
key16(uint8_t k[16], uint64_t a, uint64_t b)
{
	sfs_put64(k, a);
	sfs_put64(k + 8, b);
}

static int
refs_get(struct sfs_view *v, const uint8_t hash[32], uint64_t *count)
{
	MDB_val key = { 32, (void *)hash }, val;
	int rc;

	if ((rc = mdb_get(v->txn, v->s->refs, &key, &val)) == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0 || val.mv_size != 8)
		return -EIO;
	*count = sfs_get64(val.mv_data);
	return 0;
}

static int
refs_set(struct sfs_view *v, const uint8_t hash[32], uint64_t count)
{
	MDB_val key = { 32, (void *)hash }, val;
	uint8_t d[8];
	int rc;

	sfs_put64(d, count);
	val.mv_size = 8;
	val.mv_data = d;
	if ((rc = mdb_put(v->txn, v->s->refs, &key, &val, 0)) != 0)
		return sfs_lmdb_err(v, "refcount put", rc);
	return 0;
}

static int
chunk_delete(struct sfs_view *v, const uint8_t hash[32])
{
	MDB_val key = { 32, (void *)hash };
	int r, rc;

	/* Its pages may be handed out again in this transaction. */
	if ((r = sfs_copy_drain(v)) != 0)
		return r;
	if ((rc = mdb_del(v->txn, v->s->refs, &key, NULL)) != 0 ||
	    (rc = mdb_del(v->txn, v->s->chunks, &key, NULL)) != 0)
		return sfs_lmdb_err(v, "chunk delete", rc);
	return 0;
}

int
sfs_chunk_ref(struct sfs_view *v, const uint8_t hash[32])
{
	uint64_t n;
	int r;

	if ((r = refs_get(v, hash, &n)) != 0)
		return r;
	return refs_set(v, hash, n + 1);
}

/* Drop one reference; *len gets the chunk's length. */
static int
unref(struct sfs_view *v, const uint8_t hash[32], uint64_t *len)
{
	MDB_val key = { 32, (void *)hash }, val;
	uint64_t n;
	int r;

	if ((r = refs_get(v, hash, &n)) != 0 ||
	    mdb_get(v->txn, v->s->chunks, &key, &val) != 0) {
		log_warnx("statefs: unreference of a missing chunk");
		v->broken = 1;
		return -EIO;
	}
	*len = val.mv_size;
	if (n <= 1)
		return chunk_delete(v, hash);
	return refs_set(v, hash, n - 1);
}

int
sfs_chunk_unref(struct sfs_view *v, const uint8_t hash[32])
{
	uint64_t len;

	return unref(v, hash, &len);
}

/* Store bytes under their hash (or find them stored) with one more ref. */
static int
chunk_store(struct sfs_view *v, const uint8_t hash[32], const void *data,
    size_t len, uint64_t refs, struct sfs_later *later)
{
	MDB_val key = { 32, (void *)hash }, val = { len, (void *)data };
	uint64_t n;
	int r, rc;

	if ((r = refs_get(v, hash, &n)) == 0)
		return refs + n == n ? 0 : refs_set(v, hash, n + refs);
	if (r != -ENOENT)
		return r;
	if ((r = sfs_room(v, len + 2 * v->s->psize)) != 0) {
		v->broken = 1;
		return r;
	}
	if ((rc = mdb_put(v->txn, v->s->chunks, &key, &val, MDB_RESERVE)) != 0)
		return sfs_lmdb_err(v, "chunk put", rc);
	sfs_tail_seen(v, val.mv_data, len);
	/* Only bytes on pages of their own (LMDB's overflow pages) stay
	 * where they are while other values are put; small ones live in
	 * a B-tree leaf and go in now. */
	if (later != NULL && len >= LATER_MIN) {
		later->dst = val.mv_data;
		later->src = data;
		later->len = len;
	} else if ((r = sfs_map_write(v, val.mv_data, data, len)) != 0)
		return r;
	return refs_set(v, hash, refs);
}

/* Chunk idx's stored hash: 0, or 1 for a hole. */
static int
fchunk_get(struct sfs_view *v, uint64_t ino, uint64_t idx, uint8_t hash[32])
{
	uint8_t k[16];
	MDB_val key = { 16, k }, val;
	int rc;

	key16(k, ino, idx);
	if ((rc = mdb_get(v->txn, v->s->fchunks, &key, &val)) == MDB_NOTFOUND)
		return 1;
	if (rc != 0 || val.mv_size != 32)
		return -EIO;
	memcpy(hash, val.mv_data, 32);
	return 0;
}

/* Chunk idx's bytes in the map (valid until the next write): 0 or 1. */
static int
chunk_bytes(struct sfs_view *v, uint64_t ino, uint64_t idx, MDB_val *data)
{
	uint8_t k[16];
	MDB_val key = { 16, k }, val;
	int rc;

	key16(k, ino, idx);
	if ((rc = mdb_get(v->txn, v->s->fchunks, &key, &val)) == MDB_NOTFOUND)
		return 1;
	if (rc != 0 || val.mv_size != 32)
		return -EIO;
	key.mv_size = 32;
	key.mv_data = val.mv_data;
	if (mdb_get(v->txn, v->s->chunks, &key, data) != 0) {
		log_warnx("statefs: inode %llu chunk %llu: bytes missing",
		    (unsigned long long)ino, (unsigned long long)idx);
		return -EIO;
	}
	return 0;
}

/*
 * Reading ahead in the map. The environment is opened with MDB_NORDAHEAD
 * (store.c): a page fault on the map reads that one page, so a B-tree
 * lookup costs one small read instead of a read-around window, and the
 * bytes of chunks are asked for here instead (MADV_WILLNEED on their
 * place in the map; finding that place does not touch them), several
 * at once and without waiting. Neighbouring places go in one call.
 */
struct ra {
	uintptr_t lo, hi;
};

static void
ra_flush(struct ra *ra)
{
	if (ra->hi > ra->lo)
		madvise((void *)ra->lo, ra->hi - ra->lo, MADV_WILLNEED);
	ra->lo = ra->hi = 0;
}

static void
ra_add(struct ra *ra, const void *p, size_t len)
{
	uintptr_t page = 4096, a, b;

	a = (uintptr_t)p & ~(page - 1);
	b = ((uintptr_t)p + len + page - 1) & ~(page - 1);
	if (ra->hi != 0 && a <= ra->hi + page && b >= ra->lo) {
		ra->lo = a < ra->lo ? a : ra->lo;
		ra->hi = b > ra->hi ? b : ra->hi;
		return;
	}
	ra_flush(ra);
	ra->lo = a;
	ra->hi = b;
}

/* Ask for one chunk's bytes before copying them. */
static void
willneed(const MDB_val *data)
{
	struct ra ra = { 0, 0 };

	ra_add(&ra, data->mv_data, data->mv_size);
	ra_flush(&ra);
}

/*
 * Make chunk idx of n hold data[0..len), len being its length at
 * n->size: store it, or make it a hole when all zero; release the old
 * version; mark the group dirty when the hash changes.
 */
static int
set_chunk(struct sfs_view *v, struct sfs_inode *n, uint64_t idx,
    const uint8_t *data, size_t len)
{
	uint8_t k[16], old[32], h[32];
	MDB_val key = { 16, k }, val = { 32, h };
	uint64_t oldlen;
	int had, hole, r, rc;

	if ((had = fchunk_get(v, n->ino, idx, old)) < 0)
		return had;
	had = !had;
	hole = all_zero(data, len);
	if (!hole)
		sfs_hash_count(v->s, data, len, h);
	if (!had && hole)
		return 0;
	if (had && !hole && memcmp(old, h, 32) == 0)
		return 0;
	if (had) {
		if ((r = unref(v, old, &oldlen)) != 0)
			return r;
		n->stored -= oldlen;
	}
	key16(k, n->ino, idx);
	if (hole) {
		if ((rc = mdb_del(v->txn, v->s->fchunks, &key, NULL)) != 0)
			return sfs_lmdb_err(v, "chunk list del", rc);
	} else {
		if ((r = chunk_store(v, h, data, len, 1, NULL)) != 0)
			return r;
		if ((rc = mdb_put(v->txn, v->s->fchunks, &key, &val, 0)) != 0)
			return sfs_lmdb_err(v, "chunk list put", rc);
		n->stored += len;
	}
	return sfs_mark_group(v, n->ino, idx / SFS_GROUP);
}

/* Re-cut a stored chunk to len bytes (zero padded or trimmed). */
static int
recut(struct sfs_view *v, struct sfs_inode *n, uint64_t idx, size_t len)
{
	MDB_val data;
	int r;

	if ((r = chunk_bytes(v, n->ino, idx, &data)) != 0)
		return r < 0 ? r : 0;
	if (data.mv_size == len)
		return 0;
	willneed(&data);
	memset(v->scratch, 0, len);
	memcpy(v->scratch, data.mv_data, data.mv_size < len ? data.mv_size :
	    len);
	return set_chunk(v, n, idx, v->scratch, len);
}

/* Drop chunks from index `from` on. */
static int
drop_from(struct sfs_view *v, struct sfs_inode *n, uint64_t ino,
    uint64_t from)
{
	MDB_cursor *c;
	uint8_t k[16], h[32];
	MDB_val key, val;
	uint64_t len;
	int r, rc;

	for (;;) {
		if ((rc = mdb_cursor_open(v->txn, v->s->fchunks, &c)) != 0)
			return sfs_lmdb_err(v, "cursor", rc);
		key16(k, ino, from);
		key.mv_size = 16;
		key.mv_data = k;
		rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
		if (rc != 0 || key.mv_size != 16 ||
		    sfs_get64(key.mv_data) != ino || val.mv_size != 32) {
			mdb_cursor_close(c);
			break;
		}
		memcpy(h, val.mv_data, 32);
		rc = mdb_cursor_del(c, 0);
		mdb_cursor_close(c);
		if (rc != 0)
			return sfs_lmdb_err(v, "chunk list del", rc);
		if ((r = unref(v, h, &len)) != 0)
			return r;
		if (n != NULL)
			n->stored -= len;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		return sfs_lmdb_err(v, "chunk list", rc);
	return sfs_forget_groups(v, ino, (from + SFS_GROUP - 1) / SFS_GROUP);
}

int
sfs_file_drop(struct sfs_view *v, uint64_t ino)
{
	return drop_from(v, NULL, ino, 0);
}

/* The size moved from old to n->size: rehash both last chunks' groups. */
static int
size_marks(struct sfs_view *v, struct sfs_inode *n, uint64_t old)
{
	int r;

	if (old > 0 && old <= n->size &&
	    (r = sfs_mark_group(v, n->ino, (old - 1) / SFS_CHUNK /
	    SFS_GROUP)) != 0)
		return r;
	if (n->size > 0 && (r = sfs_mark_group(v, n->ino,
	    (n->size - 1) / SFS_CHUNK / SFS_GROUP)) != 0)
		return r;
	return sfs_mark_dirty(v, n->ino);
}

/* Grow to size; the old partial last chunk is re-cut unless it is at or
 * after `written` (the caller rewrites it). */
static int
grow(struct sfs_view *v, struct sfs_inode *n, uint64_t size,
    uint64_t written)
{
	uint64_t old = n->size, last = old / SFS_CHUNK;
	int r;

	n->size = size;
	if (old % SFS_CHUNK != 0 && last < written &&
	    (r = recut(v, n, last, sfs_chunk_len(size, last))) != 0)
		return r;
	return size_marks(v, n, old);
}

int
sfs_file_resize(struct sfs_view *v, struct sfs_inode *n, uint64_t size)
{
	uint64_t old = n->size, nc = sfs_nchunks(size);
	int r;

	if (size == old)
		return 0;
	if (size > old)
		return grow(v, n, size, UINT64_MAX);
	n->size = size;
	if ((r = drop_from(v, n, n->ino, nc)) != 0)
		return r;
	if (size % SFS_CHUNK != 0 &&
	    (r = recut(v, n, nc - 1, sfs_chunk_len(size, nc - 1))) != 0)
		return r;
	return size_marks(v, n, old);
}

static int
file_get(struct sfs_view *v, uint64_t ino, struct sfs_inode *n)
{
	int r;

	if ((r = sfs_inode_get(v, ino, n)) != 0)
		return r;
	if (S_ISDIR(n->mode))
		return -EISDIR;
	return S_ISREG(n->mode) ? 0 : -EINVAL;
}

/* ---- the write-back buffer ---- */

/* Store the buffered chunk of n (the buffer's inode); the caller puts n. */
static int
wb_store(struct sfs_view *v, struct sfs_inode *n)
{
	v->wb_used = 0;
	if (v->wb_idx >= sfs_nchunks(n->size))
		return 0;	/* sizes shrink only after a flush */
	return set_chunk(v, n, v->wb_idx, v->wb,
	    sfs_chunk_len(n->size, v->wb_idx));
}

int
sfs_wb_flush(struct sfs_view *v)
{
	struct sfs_inode *n;
	int r;

	if ((r = sfs_copy_drain(v)) != 0)
		return r;
	if (!v->wb_used)
		return 0;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = file_get(v, v->wb_ino, n)) != 0) {
		log_warnx("statefs: inode %llu vanished with a chunk buffered",
		    (unsigned long long)v->wb_ino);
		v->wb_used = 0;
		v->broken = 1;
		r = -EIO;
	} else if ((r = wb_store(v, n)) == 0)
		r = sfs_inode_put(v, n);
	free(n);
	return r;
}

/*
 * Make the buffer hold chunk idx of n, as stored, zero-padded to
 * SFS_CHUNK. Bytes past the file's end stay zero while buffered: only
 * writes, which never shrink a file, reach the buffer without a flush.
 */
static int
wb_load(struct sfs_view *v, struct sfs_inode *n, uint64_t idx, size_t clen)
{
	MDB_val data;
	int r;

	if (v->wb_used && (r = v->wb_ino == n->ino ? wb_store(v, n) :
	    sfs_wb_flush(v)) != 0)
		return r;
	if ((r = chunk_bytes(v, n->ino, idx, &data)) < 0)
		return r;
	if (r == 1)
		data.mv_size = 0;
	if (data.mv_size > clen)
		data.mv_size = clen;
	if (data.mv_size > 0)
		willneed(&data);
	memcpy(v->wb, data.mv_data, data.mv_size);
	memset(v->wb + data.mv_size, 0, SFS_CHUNK - data.mv_size);
	v->wb_ino = n->ino;
	v->wb_idx = idx;
	v->wb_used = 1;
	return 0;
}

static int
wb_holds(const struct sfs_view *v, uint64_t ino, uint64_t idx)
{
	return v->wb_used && v->wb_ino == ino && v->wb_idx == idx;
}

/*
 * Ask for bytes [off, end) of ino as of txn, whole chunks from
 * chunk `whole` on (the stored bytes of each; holes have none).
 */
static void
ask(struct sfs *s, MDB_txn *txn, uint64_t ino, uint64_t off, uint64_t end,
    uint64_t whole)
{
	uint8_t k[16];
	MDB_cursor *c;
	MDB_val key = { 16, k }, val, ck, cv;
	struct ra ra = { 0, 0 };
	uint64_t to = (end + SFS_CHUNK - 1) / SFS_CHUNK, idx, base, lo, hi;
	int rc;

	if (off >= end || mdb_cursor_open(txn, s->fchunks, &c) != 0)
		return;
	key16(k, ino, off / SFS_CHUNK);
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != 16 || sfs_get64(key.mv_data) != ino ||
		    val.mv_size != 32)
			break;
		if ((idx = sfs_get64((uint8_t *)key.mv_data + 8)) >= to)
			break;
		ck.mv_size = 32;
		ck.mv_data = val.mv_data;
		if (mdb_get(txn, s->chunks, &ck, &cv) != 0)
			continue;
		base = idx * SFS_CHUNK;
		lo = off > base ? off - base : 0;
		hi = idx >= whole || base + SFS_CHUNK <= end ? SFS_CHUNK :
		    end - base;
		if (hi > cv.mv_size)
			hi = cv.mv_size;
		if (lo < hi)
			ra_add(&ra, (uint8_t *)cv.mv_data + lo, hi - lo);
	}
	ra_flush(&ra);
	mdb_cursor_close(c);
}

/*
 * A large read is a kernel read-ahead request, and the next ones follow:
 * ask for the chunks of the PREFETCH_AHEAD bytes after it too, so that
 * the disk reads them while this one is copied. Chunks asked for whole
 * once in this view are not asked for again.
 */
static void
ask_ahead(struct sfs_view *v, uint64_t ino, uint64_t end)
{
	uint64_t from = (end + SFS_CHUNK - 1) / SFS_CHUNK;
	uint64_t to = (end + PREFETCH_AHEAD + SFS_CHUNK - 1) / SFS_CHUNK;

	if (v->ra_ino == ino && from < v->ra_end)
		from = v->ra_end;
	if (from >= to)
		return;
	v->ra_ino = ino;
	v->ra_end = to;
	ask(v->s, v->txn, ino, from * SFS_CHUNK, to * SFS_CHUNK, from);
}

static ssize_t
read_pieces(struct sfs_view *v, uint64_t ino, uint64_t off, size_t size,
    struct iovec *iov, size_t maxiov, size_t *niov, int ahead)
{
	struct sfs_inode *n;
	uint64_t end, pos, idx, in, len, have;
	MDB_val data;
	size_t k = 0;
	ssize_t r;

	*niov = 0;
	if (maxiov < SFS_READ_IOV(size))
		return -EINVAL;
	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = file_get(v, ino, n)) != 0)
		goto out;
	if (off >= n->size || size == 0)
		goto out;
	end = n->size - off < size ? n->size : off + size;
	ask(v->s, v->txn, ino, off, end, UINT64_MAX);
	if (ahead && end - off >= PREFETCH_MIN)
		ask_ahead(v, ino, end);
	for (pos = off; pos < end; pos += len) {
		idx = pos / SFS_CHUNK;
		in = pos % SFS_CHUNK;
		len = SFS_CHUNK - in < end - pos ? SFS_CHUNK - in : end - pos;
		if ((r = chunk_bytes(v, ino, idx, &data)) < 0)
			goto out;
		have = r == 1 || data.mv_size <= in ? 0 :
		    data.mv_size - in < len ? data.mv_size - in : len;
		if (have > 0) {
			iov[k].iov_base = (uint8_t *)data.mv_data + in;
			iov[k++].iov_len = have;
		}
		if (have < len) {
			iov[k].iov_base = (void *)zero_chunk;
			iov[k++].iov_len = len - have;
		}
	}
	*niov = k;
	r = (ssize_t)(end - off);
out:
	free(n);
	return r;
}

ssize_t
sfs_read_iov(struct sfs_view *v, uint64_t ino, uint64_t off, size_t size,
    struct iovec *iov, size_t maxiov, size_t *niov)
{
	return read_pieces(v, ino, off, size, iov, maxiov, niov, 1);
}

ssize_t
sfs_read(struct sfs_view *v, uint64_t ino, uint64_t off, size_t size,
    void *buf)
{
	struct iovec iov[SFS_READ_IOV(READ_STEP)];
	size_t done = 0, step, niov;
	ssize_t r;

	do {
		step = size - done < READ_STEP ? size - done : READ_STEP;
		r = read_pieces(v, ino, off + done, step, iov,
		    sizeof(iov) / sizeof(iov[0]), &niov, 0);
		if (r < 0)
			return r;
		for (size_t i = 0; i < niov; i++) {
			memcpy((uint8_t *)buf + done, iov[i].iov_base,
			    iov[i].iov_len);
			done += iov[i].iov_len;
		}
	} while (done < size && (size_t)r == step);
	return (ssize_t)done;
}

ssize_t
sfs_write(struct sfs_view *v, uint64_t ino, uint64_t off, size_t size,
    const void *buf)
{
	struct sfs_inode *n;
	uint64_t end, first, last, base, lo, hi, clen;
	const uint8_t *src = buf;
	ssize_t r;

	if (!v->rw)
		return -EROFS;
	if (v->broken)
		return -EIO;
	/* Only a write starting in the buffered chunk keeps it buffered:
	 * so growing the file below never re-cuts a buffered chunk. */
	if (!wb_holds(v, ino, off / SFS_CHUNK) && (r = sfs_wb_flush(v)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = file_get(v, ino, n)) != 0 || size == 0)
		goto out;
	if (off >= SFS_MAX_FILE || size > SFS_MAX_FILE - off) {
		r = -EFBIG;
		goto out;
	}
	end = off + size;
	first = off / SFS_CHUNK;
	last = (end - 1) / SFS_CHUNK;
	if (end > n->size && (r = grow(v, n, end, first)) != 0)
		goto out;
	for (uint64_t i = first; i <= last; i++) {
		base = i * SFS_CHUNK;
		clen = sfs_chunk_len(n->size, i);
		lo = off > base ? off - base : 0;
		hi = end - base < clen ? end - base : clen;
		if (lo == 0 && hi == SFS_CHUNK) {
			if (wb_holds(v, ino, i))
				v->wb_used = 0;	/* all overwritten */
			r = set_chunk(v, n, i, src + (base - off), clen);
		} else {
			if (!wb_holds(v, ino, i) &&
			    (r = wb_load(v, n, i, clen)) != 0)
				goto out;
			memcpy(v->wb + lo, src + (base + lo - off), hi - lo);
			if (hi == SFS_CHUNK)
				r = wb_store(v, n);
		}
		if (r != 0)
			goto out;
	}
	n->mtime = n->ctime = sfs_now_ns();
	if ((r = sfs_inode_put(v, n)) == 0)
		r = (ssize_t)size;
out:
	free(n);
	return r;
}

/* ---- sync ---- */

int
sfs_file_chunks(struct sfs_view *v, uint64_t ino, sfs_chunk_fn fn, void *arg)
{
	struct sfs_inode *n;
	uint8_t k[16], h[32];
	MDB_cursor *c = NULL;
	MDB_val key = { 16, k }, val;
	uint64_t nc, idx;
	int r, rc;

	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = file_get(v, ino, n)) != 0)
		goto out;
	nc = sfs_nchunks(n->size);
	if (mdb_cursor_open(v->txn, v->s->fchunks, &c) != 0) {
		r = -EIO;
		goto out;
	}
	key16(k, ino, 0);
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	for (uint64_t i = 0; i < nc; i++) {
		idx = UINT64_MAX;
		if (rc == 0 && key.mv_size == 16 &&
		    sfs_get64(key.mv_data) == ino)
			idx = sfs_get64((uint8_t *)key.mv_data + 8);
		if (idx == i && val.mv_size == 32) {
			memcpy(h, val.mv_data, 32);
			rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
		} else
			sfs_zero_hash(v->s, sfs_chunk_len(n->size, i), h);
		if (fn(arg, i, h) != 0)
			break;
	}
out:
	if (c != NULL)
		mdb_cursor_close(c);
	free(n);
	return r;
}

int
sfs_chunk_get(struct sfs_view *v, const uint8_t hash[32], void *buf,
    size_t size, size_t *len)
{
	MDB_val key = { 32, (void *)hash }, val;
	int r, rc;

	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	if ((rc = mdb_get(v->txn, v->s->chunks, &key, &val)) == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0)
		return -EIO;
	if (val.mv_size > size)
		return -ERANGE;
	willneed(&val);
	memcpy(buf, val.mv_data, val.mv_size);
	*len = val.mv_size;
	return 0;
}

int
sfs_chunk_peek(struct sfs_view *v, const uint8_t hash[32], const void **p,
    size_t *len)
{
	MDB_val key = { 32, (void *)hash }, val;
	int r, rc;

	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	if ((rc = mdb_get(v->txn, v->s->chunks, &key, &val)) == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0)
		return -EIO;
	willneed(&val);
	*p = val.mv_data;
	*len = val.mv_size;
	return 0;
}

/* Store bytes under hash with no reference, listed in "pending". */
static int
chunk_put(struct sfs_view *v, const void *bytes, size_t len,
    const uint8_t hash[32], struct sfs_later *later)
{
	MDB_val key = { 32, (void *)hash }, val = { 0, NULL };
	int r, rc;

	if (later != NULL)
		later->len = 0;
	if (all_zero(bytes, len))
		return 0;
	if ((r = chunk_store(v, hash, bytes, len, 0, later)) != 0)
		return r;
	if ((rc = mdb_put(v->txn, v->s->pending, &key, &val, 0)) != 0)
		return sfs_lmdb_err(v, "pending put", rc);
	return 0;
}

static int
chunk_put_check(struct sfs_view *v, size_t len)
{
	if (!v->rw)
		return -EROFS;
	if (v->broken)
		return -EIO;
	if (len == 0 || len > SFS_CHUNK)
		return -EINVAL;
	return v->wb_used ? sfs_wb_flush(v) : 0;
}

int
sfs_chunk_put(struct sfs_view *v, const void *bytes, size_t len,
    uint8_t hash_out[32])
{
	int r;

	if ((r = chunk_put_check(v, len)) != 0)
		return r;
	sfs_hash_count(v->s, bytes, len, hash_out);
	return chunk_put(v, bytes, len, hash_out, NULL);
}

int
sfs_chunk_put_later(struct sfs_view *v, const void *bytes, size_t len,
    const uint8_t hash[32], struct sfs_later *later)
{
	int r;

	later->len = 0;
	if ((r = chunk_put_check(v, len)) != 0)
		return r;
	return chunk_put(v, bytes, len, hash, later);
}

int
sfs_collect_pending(struct sfs_view *v)
{
	MDB_cursor *c;
	MDB_val key, val;
	uint64_t n;
	int r = 0, rc;

	if ((rc = mdb_cursor_open(v->txn, v->s->pending, &c)) != 0)
		return sfs_lmdb_err(v, "cursor", rc);
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != 32)
			continue;
		if (refs_get(v, key.mv_data, &n) == 0 && n == 0 &&
		    (r = chunk_delete(v, key.mv_data)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (r != 0)
		return r;
	if ((rc = mdb_drop(v->txn, v->s->pending, 0)) != 0)
		return sfs_lmdb_err(v, "pending drop", rc);
	return 0;
}

/* Is hashes[i] a hole, a stored chunk of the right length, or neither? */
static int
check_chunk(struct sfs_view *v, uint64_t size, uint64_t i,
    const uint8_t hash[32], uint8_t zlast[32])
{
	MDB_val key = { 32, (void *)hash }, val;
	uint64_t len = sfs_chunk_len(size, i);

	if (memcmp(hash, len == SFS_CHUNK ? v->s->zchunk : zlast, 32) == 0)
		return 1;
	if (mdb_get(v->txn, v->s->chunks, &key, &val) != 0)
		return -ENOENT;
	return val.mv_size == len ? 0 : -EINVAL;
}

int
sfs_file_set(struct sfs_view *v, uint64_t ino, uint64_t size, mode_t mode,
    const uint8_t (*hashes)[32], uint64_t nchunks)
{
	struct sfs_inode *n;
	uint8_t zlast[32], k[16];
	MDB_val key = { 16, k }, val;
	uint64_t marked = UINT64_MAX;
	int r, rc;

	if (!v->rw)
		return -EROFS;
	if (v->broken)
		return -EIO;
	if (size > SFS_MAX_FILE)
		return -EFBIG;
	if (nchunks != sfs_nchunks(size))
		return -EINVAL;
	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = file_get(v, ino, n)) != 0)
		goto out;
	if (size % SFS_CHUNK != 0)
		sfs_zero_hash(v->s, size % SFS_CHUNK, zlast);
	for (uint64_t i = 0; i < nchunks; i++)
		if ((r = check_chunk(v, size, i, hashes[i], zlast)) < 0)
			goto out;
	/* Reference the new chunks before the old go, as they may share. */
	for (uint64_t i = 0; i < nchunks; i++)
		if (check_chunk(v, size, i, hashes[i], zlast) == 0 &&
		    (r = sfs_chunk_ref(v, hashes[i])) != 0)
			goto out;
	if ((r = drop_from(v, n, ino, 0)) != 0)
		goto out;
	n->size = size;
	n->stored = 0;
	for (uint64_t i = 0; i < nchunks; i++) {
		if (check_chunk(v, size, i, hashes[i], zlast) != 0)
			continue;
		key16(k, ino, i);
		val.mv_size = 32;
		val.mv_data = (void *)hashes[i];
		if ((rc = mdb_put(v->txn, v->s->fchunks, &key, &val, 0)) != 0) {
			r = sfs_lmdb_err(v, "chunk list put", rc);
			goto out;
		}
		n->stored += sfs_chunk_len(size, i);
		if (i / SFS_GROUP != marked) {
			marked = i / SFS_GROUP;
			if ((r = sfs_mark_group(v, ino, marked)) != 0)
				goto out;
		}
	}
	if ((r = size_marks(v, n, 0)) != 0)
		goto out;
	n->mode = (n->mode & S_IFMT) | (mode & 07777);
	n->mtime = n->ctime = sfs_now_ns();
	r = sfs_inode_put(v, n);
out:
	free(n);
	return r;
}

int
sfs_dir_list_hashed(struct sfs_view *v, uint64_t ino, sfs_hashed_fn fn,
    void *arg)
{
	struct sfs_inode *n;
	uint8_t k[8 + SFS_NAME_MAX], h[32];
	char name[SFS_NAME_MAX + 1];
	MDB_cursor *c = NULL;
	MDB_val key = { 8, k }, val;
	int r, rc;

	if ((r = sfs_wb_flush(v)) != 0)
		return r;
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	if ((r = sfs_inode_get(v, ino, n)) != 0)
		goto out;
	if (!S_ISDIR(n->mode)) {
		r = -ENOTDIR;
		goto out;
	}
	if ((r = sfs_tree_update(v, ino)) != 0)
		goto out;
	if (mdb_cursor_open(v->txn, v->s->dirents, &c) != 0) {
		r = -EIO;
		goto out;
	}
	sfs_put64(k, ino);
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size < 9 || sfs_get64(key.mv_data) != ino ||
		    val.mv_size != 8)
			break;
		memcpy(name, (uint8_t *)key.mv_data + 8, key.mv_size - 8);
		name[key.mv_size - 8] = '\0';
		if ((r = sfs_inode_get(v, sfs_get64(val.mv_data), n)) != 0 ||
		    (r = sfs_cached_hash(v, n->ino, h)) != 0)
			break;
		if (fn(arg, name, n->mode, n->size, h) != 0)
			break;
	}
out:
	if (c != NULL)
		mdb_cursor_close(c);
	free(n);
	return r;
}
