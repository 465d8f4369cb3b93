/*
 * sync.c — state sync (sync.h, docs/state-sync.md).
 *
 * Serving: a peer's HP_PT_STATE_REQ is answered from a read-only view of
 * the committed state: a directory's entries with their node hashes, a
 * file's mode, size, group hashes and chunk hashes, or chunks' bytes by
 * hash. A path that no longer has the hash asked for is answered
 * "mismatch".
 *
 * Fetching: from the target roots (/patch.cfg, then /state) the walk
 * opens only nodes whose local hash differs, asks for directory listings
 * and chunk lists, then for the chunks no local file holds, with up to
 * SYNC_INFLIGHT requests out, spread over the peers consensus offered.
 * Every piece is checked against the hash it must have before it is used
 * or stored: a listing must hash to its directory's node hash, a file's
 * mode, size and group hashes to its node hash, each page of chunk hashes
 * to its group hashes, and chunk bytes to their chunk hash. A peer that
 * sends a bad piece is counted and the piece is asked of another peer.
 * The hash definitions are docs/state-hash.md's, computed here from the
 * pieces (tree.c computes the same from the store).
 */
#include "sync.h"

#include "channel.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "mpack.h"
#include "proto.h"
#include "store.h"
#include "worker.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

/* Answers to everything out at once (16 chunk batches of 2 MiB, 16 pages
 * of at most 1 MiB) stay under the peer channel's queue (64 MiB) while a
 * checkpoint commit keeps this worker from reading. */
#define SYNC_INFLIGHT	32		/* requests out at once */
#define SYNC_CHUNK_REQS	16		/* of which CHUNKS requests */
#define SYNC_BATCH	32		/* chunks per CHUNKS request (2 MiB) */
#define SYNC_PAGE_GROUPS 64		/* groups per FILE page (1 GiB) */
#define SYNC_DIR_PAGE	(1024 * 1024)	/* listing bytes per DIR page */
#define SYNC_MAX_ENTRIES 1000000	/* entries of one directory */
#define SYNC_PATH_MAX	4096
#define SYNC_TIMEOUT_MS	10000
#define SYNC_CKPT_BYTES	(64ULL * 1024 * 1024)
#define SYNC_CKPT_MS	2000
#define SYNC_TICK_MS	200
#define SYNC_MAX_PEERS	32
#define SYNC_RESTARTS	3		/* walks per target before waiting */
#define GROUP		256		/* chunk hashes per group hash */
#define BUCKETS		(1u << 16)

#define TAG_FILE	"hpd file v1"
#define TAG_DIR		"hpd dir v1"
#define TAG_LINK	"hpd symlink v1"

enum { K_DIR = 1, K_FILE = 2, K_CHUNKS = 3 };
enum { ST_OK = 0, ST_MISMATCH = 1, ST_UNAVAILABLE = 2 };
enum { Q_NONE, Q_READY, Q_OPEN };

/* A directory entry as a peer listed it. */
struct rent {
	char *name;
	uint32_t mode;		/* type and permission bits */
	uint64_t size;
	uint8_t hash[32];
	char *target;		/* symlinks */
};

/* A directory or file to make equal to the target. */
struct item {
	TAILQ_ENTRY(item) q;	/* ready queue, or open files */
	int kind;		/* K_DIR or K_FILE */
	uint64_t ino;
	char *path;
	uint8_t hash[32];
	uint32_t badmask;	/* peers that could not answer */
	int lastpeer;		/* pages of one item go to one peer */
	/* K_DIR */
	uint32_t mode;
	struct rent *ents;
	size_t nents, cap;
	/* K_FILE */
	uint64_t size, nchunks, ngroups, next_group;
	uint8_t (*groups)[32];
	uint8_t (*chunks)[32];
	uint64_t missing, fresh;
	int replans;
	int where;		/* Q_NONE, Q_READY, Q_OPEN */
};
TAILQ_HEAD(itemq, item);

struct waiter {
	struct item *it;
	struct waiter *next;
};

/* A chunk no local file holds, wanted by the files in waiters. */
struct want {
	uint8_t hash[32];
	uint32_t len;
	uint32_t badmask;
	int queued;
	struct want *hnext;
	TAILQ_ENTRY(want) q;
	struct waiter *waiters;
};
TAILQ_HEAD(wantq, want);

struct req {
	uint64_t id;		/* 0: free slot */
	int kind, peer;
	uint64_t sent;
	struct item *it;
	struct want *w[SYNC_BATCH];
	int nw;
};

struct speer {
	uint8_t pk[32];
	int online;
	int inflight;
	uint64_t requests, bytes, pieces, bad, mismatches, timeouts;
};

static struct {
	uv_loop_t *loop;
	struct sfs *store;
	sync_committed_fn committed;
	uv_timer_t timer;
	int corrupt;		/* test hook */
	/* the target */
	int have_target, active, waiting, patch_pending;
	uint8_t tstate[32], tpatch[32];
	struct sfs_view *rw;
	/* the walk */
	struct itemq ready, open;
	struct wantq wantq;
	struct want *buckets[BUCKETS];
	uint64_t nwants;
	struct req reqs[SYNC_INFLIGHT];
	int inflight, chunk_reqs;
	uint64_t queued;	/* wants in wantq */
	uint64_t next_id;
	uint64_t stall_until;
	int restarts;
	/* checkpoints */
	uint64_t ckpt_at, ckpt_bytes, commits;
	int dirty;
	/* peers */
	struct speer peers[SYNC_MAX_PEERS];
	int npeers;
	/* counters */
	uint64_t started, bytes, chunks, verified, rejected, wanted_bytes;
	uint64_t verified_pieces;
	uint64_t dirs, files, served, served_bytes, targets, done, failures;
	uint64_t last_ms, last_bytes;
	double rate;
	uint64_t last_duration_ms, last_bytes_at_start;
	uint8_t zchunk[32];
} sy;

static void pump(void);
static void finish_file(struct item *it);
static void stop_walk(void);

/* ---- the hash definitions (docs/state-hash.md) ---- */

static void
be32(uint8_t *p, uint32_t x)
{
	p[0] = x >> 24;
	p[1] = x >> 16;
	p[2] = x >> 8;
	p[3] = x;
}

static void
be64(uint8_t *p, uint64_t x)
{
	be32(p, (uint32_t)(x >> 32));
	be32(p + 4, (uint32_t)x);
}

static uint64_t
nchunks_of(uint64_t size)
{
	return (size + SFS_CHUNK - 1) / SFS_CHUNK;
}

static uint64_t
chunk_len(uint64_t size, uint64_t i)
{
	uint64_t end = (i + 1) * SFS_CHUNK;

	return end <= size ? SFS_CHUNK : size - i * SFS_CHUNK;
}

/* The hash of len zero bytes: a hole. */
static void
zero_hash(uint64_t len, uint8_t out[32])
{
	static uint8_t zeros[SFS_CHUNK];

	if (len == SFS_CHUNK)
		memcpy(out, sy.zchunk, 32);
	else
		hp_hash(zeros, (size_t)len, out);
}

/* A file node from its mode, size and group hashes. */
static int
file_node(uint32_t mode, uint64_t size, const uint8_t (*groups)[32],
    uint64_t ngroups, uint8_t out[32])
{
	size_t tl = sizeof(TAG_FILE) - 1, n = tl + 12 + (size_t)ngroups * 32;
	uint8_t *buf;

	if ((buf = malloc(n)) == NULL)
		return HP_ENOMEM;
	memcpy(buf, TAG_FILE, tl);
	be32(buf + tl, mode & 07777);
	be64(buf + tl + 4, size);
	if (ngroups > 0)
		memcpy(buf + tl + 12, groups, (size_t)ngroups * 32);
	hp_hash(buf, n, out);
	free(buf);
	return 0;
}

static void
link_node(const char *target, uint8_t out[32])
{
	size_t tl = sizeof(TAG_LINK) - 1, n = strlen(target);
	uint8_t buf[sizeof(TAG_LINK) + 4096];

	memcpy(buf, TAG_LINK, tl);
	memcpy(buf + tl, target, n);
	hp_hash(buf, tl + n, out);
}

/* A directory node from its mode and entries (in name order). */
static int
dir_node(uint32_t mode, const struct rent *e, size_t n, uint8_t out[32])
{
	size_t tl = sizeof(TAG_DIR) - 1, len = tl + 4, at;
	uint8_t *buf;

	for (size_t i = 0; i < n; i++)
		len += 2 + strlen(e[i].name) + 32;
	if ((buf = malloc(len)) == NULL)
		return HP_ENOMEM;
	memcpy(buf, TAG_DIR, tl);
	be32(buf + tl, mode & 07777);
	at = tl + 4;
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(e[i].name);

		buf[at] = (uint8_t)(nl >> 8);
		buf[at + 1] = (uint8_t)nl;
		memcpy(buf + at + 2, e[i].name, nl);
		memcpy(buf + at + 2 + nl, e[i].hash, 32);
		at += 2 + nl + 32;
	}
	hp_hash(buf, len, out);
	free(buf);
	return 0;
}

/* Store order of names: bytes, a prefix first. */
static int
name_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int c = memcmp(a, b, la < lb ? la : lb);

	return c != 0 ? c : (la > lb) - (la < lb);
}

static int
name_ok(const char *p, size_t n)
{
	if (n == 0 || n > SFS_NAME_MAX || (n == 1 && p[0] == '.') ||
	    (n == 2 && p[0] == '.' && p[1] == '.'))
		return 0;
	return memchr(p, '/', n) == NULL && memchr(p, '\0', n) == NULL;
}

static void
hex8(const uint8_t *h, char out[9])
{
	hp_hash_hex(h, 4, out);
}

/* ---- talking to the peer worker ---- */

static void
peer_send(uint32_t ptype, const uint8_t to[32], const char *data, size_t len)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_PEER_SEND, 0, 0);
	msgpack_pack_map(&f.pk, 4);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, ptype);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, len);
	msgpack_pack_bin_body(&f.pk, data, len);
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_false(&f.pk);
	msgpack_pack_uint32(&f.pk, 4);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, to, 32);
	hp_worker_send(HP_W_PEER, &f, -1);
}

/* ---- serving ---- */

/* "/state/a/b" or "/patch.cfg" to an inode of view v. */
static int
resolve(struct sfs_view *v, const char *path, size_t len, uint64_t *ino)
{
	struct sfs_attr a;
	char name[SFS_NAME_MAX + 1];
	size_t at = 1, end;
	uint64_t cur = SFS_ROOT_INO;

	if (len < 2 || path[0] != '/' || len > SYNC_PATH_MAX)
		return -EINVAL;
	if (!(len == 10 && memcmp(path, "/patch.cfg", 10) == 0) &&
	    !(len >= 6 && memcmp(path, "/state", 6) == 0 &&
	    (len == 6 || path[6] == '/')))
		return -EINVAL;
	while (at < len) {
		for (end = at; end < len && path[end] != '/'; end++)
			;
		if (!name_ok(path + at, end - at))
			return -EINVAL;
		memcpy(name, path + at, end - at);
		name[end - at] = '\0';
		if (sfs_lookup(v, cur, name, &a) != 0)
			return -ENOENT;
		cur = a.ino;
		at = end + 1;
		if (end == len - 1)
			return -EINVAL;	/* trailing slash */
	}
	*ino = cur;
	return 0;
}

struct lent {
	char name[SFS_NAME_MAX + 1];
	uint32_t mode;
	uint64_t size;
	uint8_t hash[32];
};

struct listing {
	const char *after;
	struct lent *e;
	size_t n, cap, bytes;
	int more, err;
};

static int
list_cb(void *arg, const char *name, mode_t mode, uint64_t size,
    const uint8_t hash[32])
{
	struct listing *l = arg;
	size_t cost = strlen(name) + 64 + (S_ISLNK(mode) ? 4100 : 0);

	if (l->after != NULL && name_cmp(name, l->after) <= 0)
		return 0;
	if (l->n > 0 && l->bytes + cost > SYNC_DIR_PAGE) {
		l->more = 1;
		return 1;
	}
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		struct lent *ne = realloc(l->e, nc * sizeof(*ne));

		if (ne == NULL) {
			l->err = 1;
			return 1;
		}
		l->e = ne;
		l->cap = nc;
	}
	snprintf(l->e[l->n].name, sizeof(l->e[l->n].name), "%s", name);
	l->e[l->n].mode = mode;
	l->e[l->n].size = size;
	memcpy(l->e[l->n].hash, hash, 32);
	l->n++;
	l->bytes += cost;
	return 0;
}

static int
serve_dir(struct sfs_view *v, uint64_t ino, const msgpack_object *req,
    msgpack_packer *pk, int *pairs)
{
	char after[SFS_NAME_MAX + 1], target[4096];
	struct listing l;
	struct sfs_attr a;
	int r;

	memset(&l, 0, sizeof(l));
	if ((r = hp_mpack_str(req, 5, after, sizeof(after))) == 0)
		l.after = after;
	else if (r != HP_ENOENT)
		return -EINVAL;
	if (sfs_getattr(v, ino, &a) != 0 || !S_ISDIR(a.mode))
		return -ENOTDIR;
	if ((r = sfs_dir_list_hashed(v, ino, list_cb, &l)) != 0 || l.err) {
		free(l.e);
		return r != 0 ? r : -ENOMEM;
	}
	msgpack_pack_uint32(pk, 3);
	msgpack_pack_uint32(pk, a.mode & 07777);
	msgpack_pack_uint32(pk, 4);
	msgpack_pack_array(pk, l.n);
	for (size_t i = 0; i < l.n; i++) {
		struct sfs_attr c;
		int link = S_ISLNK(l.e[i].mode);

		target[0] = '\0';
		if (link && (sfs_lookup(v, ino, l.e[i].name, &c) != 0 ||
		    sfs_readlink(v, c.ino, target, sizeof(target)) < 0))
			target[0] = '\0';
		msgpack_pack_array(pk, link ? 5 : 4);
		hp_mpack_pack_cstr(pk, l.e[i].name);
		msgpack_pack_uint32(pk, l.e[i].mode);
		msgpack_pack_uint64(pk, l.e[i].size);
		msgpack_pack_bin(pk, 32);
		msgpack_pack_bin_body(pk, l.e[i].hash, 32);
		if (link)
			hp_mpack_pack_cstr(pk, target);
	}
	msgpack_pack_uint32(pk, 5);
	if (l.more)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	free(l.e);
	*pairs = 3;
	return 0;
}

struct clist {
	uint64_t first, last;	/* page: chunk indexes [first, last) */
	uint64_t n;		/* chunks in the file */
	int want_groups;
	uint8_t (*page)[32];
	uint8_t (*groups)[32];
	uint8_t gbuf[GROUP][32];
};

static int
chunk_cb(void *arg, uint64_t i, const uint8_t hash[32])
{
	struct clist *c = arg;

	if (i >= c->first && i < c->last)
		memcpy(c->page[i - c->first], hash, 32);
	if (c->want_groups) {
		memcpy(c->gbuf[i % GROUP], hash, 32);
		if (i % GROUP == GROUP - 1 || i == c->n - 1)
			hp_hash(c->gbuf, (size_t)(i % GROUP + 1) * 32,
			    c->groups[i / GROUP]);
		return 0;
	}
	return i + 1 >= c->last;
}

static int
serve_file(struct sfs_view *v, uint64_t ino, const msgpack_object *req,
    msgpack_packer *pk, int *pairs)
{
	struct sfs_attr a;
	struct clist *c;
	uint64_t g0 = 0, ng;
	int r;

	if ((r = hp_mpack_u64(req, 7, &g0)) != 0 && r != HP_ENOENT)
		return -EINVAL;
	if (sfs_getattr(v, ino, &a) != 0 || !S_ISREG(a.mode))
		return -EISDIR;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->n = nchunks_of(a.size);
	ng = (c->n + GROUP - 1) / GROUP;
	if (g0 > ng || (g0 == ng && g0 != 0)) {
		free(c);
		return -EINVAL;
	}
	c->first = g0 * GROUP;
	c->last = (g0 + SYNC_PAGE_GROUPS) * GROUP;
	if (c->last > c->n)
		c->last = c->n;
	c->want_groups = g0 == 0;
	c->page = malloc((size_t)(c->last - c->first) * 32 + 1);
	c->groups = malloc((size_t)ng * 32 + 1);
	if (c->page == NULL || c->groups == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = sfs_file_chunks(v, ino, chunk_cb, c)) != 0)
		goto out;
	msgpack_pack_uint32(pk, 3);
	msgpack_pack_uint32(pk, a.mode & 07777);
	msgpack_pack_uint32(pk, 6);
	msgpack_pack_uint64(pk, a.size);
	msgpack_pack_uint32(pk, 7);
	msgpack_pack_uint64(pk, g0);
	if (c->want_groups) {
		msgpack_pack_uint32(pk, 8);
		msgpack_pack_bin(pk, (size_t)ng * 32);
		msgpack_pack_bin_body(pk, c->groups, (size_t)ng * 32);
	}
	msgpack_pack_uint32(pk, 9);
	msgpack_pack_bin(pk, (size_t)(c->last - c->first) * 32);
	msgpack_pack_bin_body(pk, c->page, (size_t)(c->last - c->first) * 32);
	*pairs = c->want_groups ? 5 : 4;
out:
	free(c->page);
	free(c->groups);
	free(c);
	return r;
}

static size_t
bin_size(size_t len)
{
	return len + (len < 256 ? 2 : len < 65536 ? 3 : 5);
}

/*
 * A CHUNKS answer is most of what a sync moves, so it is built straight
 * into the frame for the peer worker: the answer's size is known from
 * the lookups first, the frame is allocated once at that size, and each
 * chunk is copied once, from the store's map. It has the shape of every
 * answer: {1: id, 2: ST_OK, 10: [bin or nil for each hash asked]}.
 */
static int
serve_chunks(struct sfs_view *v, const uint8_t from[32], uint64_t id,
    const msgpack_object *req)
{
	const msgpack_object *h = hp_mpack_get(req, 6);
	const void *p[SYNC_BATCH];
	size_t len[SYNC_BATCH], n, size;
	msgpack_sbuffer head;
	msgpack_packer hp;
	struct hp_frame f;
	char *grown;

	if (h == NULL || h->type != MSGPACK_OBJECT_BIN ||
	    h->via.bin.size == 0 || h->via.bin.size % 32 != 0 ||
	    h->via.bin.size / 32 > SYNC_BATCH)
		return -EINVAL;
	n = h->via.bin.size / 32;
	msgpack_sbuffer_init(&head);
	msgpack_packer_init(&hp, &head, msgpack_sbuffer_write);
	msgpack_pack_map(&hp, 3);
	msgpack_pack_uint32(&hp, 1);
	msgpack_pack_uint64(&hp, id);
	msgpack_pack_uint32(&hp, 2);
	msgpack_pack_uint32(&hp, ST_OK);
	msgpack_pack_uint32(&hp, 10);
	msgpack_pack_array(&hp, n);
	size = head.size;
	for (size_t i = 0; i < n; i++) {
		if (sfs_chunk_peek(v, (const uint8_t *)h->via.bin.ptr + 32 * i,
		    &p[i], &len[i]) != 0)
			p[i] = NULL;
		size += p[i] == NULL ? 1 : bin_size(len[i]);
	}
	hp_frame_begin(&f, HP_MSG_PEER_SEND, 0, 0);
	/* the frame header, this answer, and the envelope's 60-odd bytes */
	if ((grown = realloc(f.sb.data, f.sb.size + bin_size(size) + 64)) ==
	    NULL) {
		hp_frame_free(&f);
		msgpack_sbuffer_destroy(&head);
		return -ENOMEM;
	}
	f.sb.data = grown;
	f.sb.alloc = f.sb.size + bin_size(size) + 64;
	msgpack_pack_map(&f.pk, 4);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, HP_PT_STATE_RES);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, size);
	msgpack_pack_bin_body(&f.pk, head.data, head.size);
	msgpack_sbuffer_destroy(&head);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == NULL) {
			msgpack_pack_nil(&f.pk);
			continue;
		}
		msgpack_pack_bin(&f.pk, len[i]);
		msgpack_pack_bin_body(&f.pk, p[i], len[i]);
		if (sy.corrupt)
			f.sb.data[f.sb.size - len[i] + len[i] / 2] ^= 0x5a;
		sy.served_bytes += len[i];
	}
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_false(&f.pk);
	msgpack_pack_uint32(&f.pk, 4);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, from, 32);
	hp_worker_send(HP_W_PEER, &f, -1);
	sy.served++;
	return 0;
}

static void
serve(const uint8_t from[32], const uint8_t *payload, size_t len)
{
	const msgpack_object *path, *hash;
	msgpack_unpacked res;
	msgpack_sbuffer body, sb;
	msgpack_packer bp, pk;
	struct sfs_view *v = NULL;
	uint64_t id = 0, kind = 0, ino = 0;
	uint8_t have[32];
	int r = 0, status = ST_OK, pairs = 0;

	if (hp_mpack_unpack(payload, len, &res) != 0)
		return;
	if (hp_mpack_u64(&res.data, 1, &id) != 0 ||
	    hp_mpack_u64(&res.data, 2, &kind) != 0 ||
	    kind < K_DIR || kind > K_CHUNKS ||
	    sfs_begin_ro(sy.store, &v) != 0) {
		msgpack_unpacked_destroy(&res);
		return;
	}
	if (kind == K_CHUNKS && serve_chunks(v, from, id, &res.data) == 0) {
		sfs_end(v);
		msgpack_unpacked_destroy(&res);
		return;
	}
	if (kind == K_CHUNKS) {
		status = ST_UNAVAILABLE;
	} else {
		path = hp_mpack_get(&res.data, 3);
		hash = hp_mpack_get(&res.data, 4);
		if (path == NULL || path->type != MSGPACK_OBJECT_STR ||
		    hash == NULL || hash->type != MSGPACK_OBJECT_BIN ||
		    hash->via.bin.size != 32 ||
		    resolve(v, path->via.str.ptr, path->via.str.size,
		    &ino) != 0 || sfs_node_hash(v, ino, have) != 0)
			status = ST_UNAVAILABLE;
		else if (memcmp(have, hash->via.bin.ptr, 32) != 0)
			status = ST_MISMATCH;
	}
	msgpack_sbuffer_init(&body);
	msgpack_packer_init(&bp, &body, msgpack_sbuffer_write);
	if (status == ST_OK) {
		if (kind == K_DIR)
			r = serve_dir(v, ino, &res.data, &bp, &pairs);
		else
			r = serve_file(v, ino, &res.data, &bp, &pairs);
		if (r != 0)
			status = ST_UNAVAILABLE;
	}
	sfs_end(v);
	msgpack_unpacked_destroy(&res);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2 + (status == ST_OK ? pairs : 0));
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_uint64(&pk, id);
	msgpack_pack_uint32(&pk, 2);
	msgpack_pack_uint32(&pk, status);
	if (status == ST_OK)
		msgpack_sbuffer_write(&sb, body.data, body.size);
	msgpack_sbuffer_destroy(&body);
	peer_send(HP_PT_STATE_RES, from, sb.data, sb.size);
	sy.served++;
	msgpack_sbuffer_destroy(&sb);
}

/* ---- fetching: peers, items, wants, requests ---- */

static int
peer_index(const uint8_t pk[32], int add)
{
	for (int i = 0; i < sy.npeers; i++)
		if (memcmp(sy.peers[i].pk, pk, 32) == 0)
			return i;
	if (!add)
		return -1;
	if (sy.npeers == SYNC_MAX_PEERS) {
		/* Reuse the slot of a peer gone offline. */
		for (int i = 0; i < sy.npeers; i++)
			if (!sy.peers[i].online && sy.peers[i].inflight == 0) {
				memset(&sy.peers[i], 0, sizeof(sy.peers[i]));
				memcpy(sy.peers[i].pk, pk, 32);
				return i;
			}
		return -1;
	}
	memset(&sy.peers[sy.npeers], 0, sizeof(sy.peers[0]));
	memcpy(sy.peers[sy.npeers].pk, pk, 32);
	return sy.npeers++;
}

/* The online peer not in mask with the fewest requests out; prefer
 * `prefer` when it qualifies. -1 when none does. */
static int
pick_peer(uint32_t mask, int prefer)
{
	int best = -1;

	if (prefer >= 0 && prefer < sy.npeers && sy.peers[prefer].online &&
	    !(mask & (1u << prefer)))
		return prefer;
	for (int i = 0; i < sy.npeers; i++) {
		if (!sy.peers[i].online || (mask & (1u << i)))
			continue;
		if (best < 0 || sy.peers[i].inflight < sy.peers[best].inflight)
			best = i;
	}
	return best;
}

static int
peers_online(void)
{
	int n = 0;

	for (int i = 0; i < sy.npeers; i++)
		n += sy.peers[i].online;
	return n;
}

static struct item *
item_new(int kind, uint64_t ino, const char *path, const uint8_t hash[32])
{
	struct item *it = calloc(1, sizeof(*it));

	if (it == NULL || (it->path = strdup(path)) == NULL) {
		free(it);
		return NULL;
	}
	it->kind = kind;
	it->ino = ino;
	it->lastpeer = -1;
	memcpy(it->hash, hash, 32);
	return it;
}

static void
item_reset(struct item *it)
{
	for (size_t i = 0; i < it->nents; i++) {
		free(it->ents[i].name);
		free(it->ents[i].target);
	}
	free(it->ents);
	it->ents = NULL;
	it->nents = it->cap = 0;
	free(it->groups);
	free(it->chunks);
	it->groups = NULL;
	it->chunks = NULL;
	it->next_group = it->ngroups = it->nchunks = 0;
}

static void
item_free(struct item *it)
{
	item_reset(it);
	free(it->path);
	free(it);
}

static struct want **
bucket(const uint8_t h[32])
{
	uint32_t b;

	memcpy(&b, h, 4);
	return &sy.buckets[b & (BUCKETS - 1)];
}

static struct want *
want_find(const uint8_t h[32])
{
	for (struct want *w = *bucket(h); w != NULL; w = w->hnext)
		if (memcmp(w->hash, h, 32) == 0)
			return w;
	return NULL;
}

/* 1: `it` now waits for h; 0: it already did; HP_ENOMEM. */
static int
want_add(const uint8_t h[32], uint32_t len, struct item *it)
{
	struct want *w = want_find(h);
	struct waiter *wt;

	if (w != NULL)
		for (wt = w->waiters; wt != NULL; wt = wt->next)
			if (wt->it == it)
				return 0;
	if ((wt = calloc(1, sizeof(*wt))) == NULL)
		return HP_ENOMEM;
	if (w == NULL) {
		if ((w = calloc(1, sizeof(*w))) == NULL) {
			free(wt);
			return HP_ENOMEM;
		}
		memcpy(w->hash, h, 32);
		w->len = len;
		w->hnext = *bucket(h);
		*bucket(h) = w;
		TAILQ_INSERT_TAIL(&sy.wantq, w, q);
		w->queued = 1;
		sy.queued++;
		sy.nwants++;
		sy.wanted_bytes += len;
	}
	wt->it = it;
	wt->next = w->waiters;
	w->waiters = wt;
	return 1;
}

static void
want_free(struct want *w, int fetched)
{
	struct want **pp = bucket(w->hash);

	while (*pp != w)
		pp = &(*pp)->hnext;
	*pp = w->hnext;
	if (w->queued) {
		TAILQ_REMOVE(&sy.wantq, w, q);
		sy.queued--;
	}
	while (w->waiters != NULL) {
		struct waiter *n = w->waiters->next;
		free(w->waiters);
		w->waiters = n;
	}
	if (!fetched && sy.wanted_bytes >= w->len)
		sy.wanted_bytes -= w->len;
	sy.nwants--;
	free(w);
}

static void
want_requeue(struct want *w, int peer)
{
	if (peer >= 0)
		w->badmask |= 1u << peer;
	TAILQ_INSERT_TAIL(&sy.wantq, w, q);
	w->queued = 1;
	sy.queued++;
}

static void
ready_push(struct item *it, int head)
{
	it->where = Q_READY;
	if (head)
		TAILQ_INSERT_HEAD(&sy.ready, it, q);
	else
		TAILQ_INSERT_TAIL(&sy.ready, it, q);
}

static struct req *
req_new(int kind, int peer)
{
	for (int i = 0; i < SYNC_INFLIGHT; i++) {
		struct req *r = &sy.reqs[i];

		if (r->id != 0)
			continue;
		memset(r, 0, sizeof(*r));
		r->id = ++sy.next_id;
		r->kind = kind;
		r->peer = peer;
		r->sent = uv_now(sy.loop);
		sy.inflight++;
		sy.chunk_reqs += kind == K_CHUNKS;
		sy.peers[peer].inflight++;
		sy.peers[peer].requests++;
		return r;
	}
	return NULL;
}

static void
req_free(struct req *r)
{
	if (r->id == 0)
		return;
	r->id = 0;
	sy.inflight--;
	sy.chunk_reqs -= r->kind == K_CHUNKS;
	if (sy.peers[r->peer].inflight > 0)
		sy.peers[r->peer].inflight--;
}

/* Drop the walk: items, wants, requests (late answers are ignored). */
static void
stop_walk(void)
{
	struct item *it;

	for (int i = 0; i < SYNC_INFLIGHT; i++) {
		struct req *r = &sy.reqs[i];

		if (r->id == 0)
			continue;
		if (r->it != NULL)
			item_free(r->it);	/* in no queue while asked */
		req_free(r);		/* its wants are in the buckets */
	}
	while ((it = TAILQ_FIRST(&sy.ready)) != NULL) {
		TAILQ_REMOVE(&sy.ready, it, q);
		item_free(it);
	}
	while ((it = TAILQ_FIRST(&sy.open)) != NULL) {
		TAILQ_REMOVE(&sy.open, it, q);
		item_free(it);
	}
	for (uint32_t b = 0; b < BUCKETS; b++)
		while (sy.buckets[b] != NULL)
			want_free(sy.buckets[b], 0);
	for (int i = 0; i < sy.npeers; i++)
		sy.peers[i].inflight = 0;
	sy.inflight = 0;
	sy.chunk_reqs = 0;
	sy.patch_pending = 0;
}

static void
send_item(struct item *it, int peer)
{
	struct req *r = req_new(it->kind, peer);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int extra;

	if (r == NULL)
		return;
	r->it = it;
	it->where = Q_NONE;
	it->lastpeer = peer;
	extra = (it->kind == K_DIR && it->nents > 0) ||
	    (it->kind == K_FILE && it->next_group > 0);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4 + extra);
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_uint64(&pk, r->id);
	msgpack_pack_uint32(&pk, 2);
	msgpack_pack_uint32(&pk, it->kind);
	msgpack_pack_uint32(&pk, 3);
	hp_mpack_pack_cstr(&pk, it->path);
	msgpack_pack_uint32(&pk, 4);
	msgpack_pack_bin(&pk, 32);
	msgpack_pack_bin_body(&pk, it->hash, 32);
	if (extra && it->kind == K_DIR) {
		msgpack_pack_uint32(&pk, 5);
		hp_mpack_pack_cstr(&pk, it->ents[it->nents - 1].name);
	} else if (extra) {
		msgpack_pack_uint32(&pk, 7);
		msgpack_pack_uint64(&pk, it->next_group);
	}
	peer_send(HP_PT_STATE_REQ, sy.peers[peer].pk, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* Up to SYNC_BATCH queued chunks that peer has not failed, in one
 * request. 0 when there was none. */
static int
send_chunks(int peer)
{
	uint8_t hashes[SYNC_BATCH * 32];
	struct want *w, *next;
	struct req *r;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int n = 0, scanned = 0;

	if ((r = req_new(K_CHUNKS, peer)) == NULL)
		return 0;
	for (w = TAILQ_FIRST(&sy.wantq); w != NULL && n < SYNC_BATCH &&
	    scanned < 4096; w = next, scanned++) {
		next = TAILQ_NEXT(w, q);
		if (w->badmask & (1u << peer))
			continue;
		TAILQ_REMOVE(&sy.wantq, w, q);
		w->queued = 0;
		sy.queued--;
		memcpy(hashes + 32 * n, w->hash, 32);
		r->w[n++] = w;
	}
	r->nw = n;
	if (n == 0) {
		req_free(r);
		sy.peers[peer].requests--;
		return 0;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_uint64(&pk, r->id);
	msgpack_pack_uint32(&pk, 2);
	msgpack_pack_uint32(&pk, K_CHUNKS);
	msgpack_pack_uint32(&pk, 6);
	msgpack_pack_bin(&pk, (size_t)n * 32);
	msgpack_pack_bin_body(&pk, hashes, (size_t)n * 32);
	peer_send(HP_PT_STATE_REQ, sy.peers[peer].pk, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return 1;
}

static int
commit_now(int final)
{
	struct item *it;
	uint8_t s[32], p[32];
	int r;

	/* Files still missing chunks are set with holes in their place, so
	 * that the chunks fetched so far are referenced and kept. */
	TAILQ_FOREACH(it, &sy.open, q) {
		uint8_t (*part)[32];
		size_t l;

		if (it->fresh == 0)
			continue;
		if ((part = malloc((size_t)it->nchunks * 32 + 1)) == NULL)
			return HP_ENOMEM;
		for (uint64_t i = 0; i < it->nchunks; i++) {
			memcpy(part[i], it->chunks[i], 32);
			if (sfs_chunk_get(sy.rw, part[i], NULL, 0, &l) == -ENOENT)
				zero_hash(chunk_len(it->size, i), part[i]);
		}
		r = sfs_file_set(sy.rw, it->ino, it->size, it->mode, part,
		    it->nchunks);
		free(part);
		if (r != 0 && r != -ENOENT)
			log_warnx("state sync: cannot keep the chunks of %s so"
			    " far: %s", it->path, strerror(-r));
		it->fresh = 0;
	}
	r = sfs_commit(sy.rw, s, p);
	sy.rw = NULL;
	if (r != 0) {
		log_warnx("state sync: commit failed: %s; the state stays at"
		    " the last commit", hp_strerror(r));
		return r;
	}
	sy.commits++;
	sy.ckpt_at = uv_now(sy.loop);
	sy.ckpt_bytes = sy.bytes;
	sy.dirty = 0;
	sy.committed(s, p);
	if (final)
		return 0;
	if ((r = sfs_begin_rw(sy.store, &sy.rw)) != 0) {
		sy.rw = NULL;
		return r;
	}
	return 0;
}

/* Give up the walk; the next target (every ledger) starts it again. */
static void
fail(const char *why)
{
	log_warnx("state sync stopped: %s; it starts again with the next"
	    " ledger", why);
	stop_walk();
	if (sy.rw != NULL) {
		sfs_abort(sy.rw);
		sy.rw = NULL;
	}
	sy.active = 0;
	sy.failures++;
}

static void start_walk(void);

static void
finish_target(void)
{
	uint8_t s[32], p[32];
	char s8[9], p8[9];
	uint64_t ms;

	if (sfs_node_hash(sy.rw, SFS_STATE_INO, s) != 0 ||
	    sfs_node_hash(sy.rw, SFS_PATCH_INO, p) != 0) {
		fail("cannot hash the synced state");
		return;
	}
	if (memcmp(s, sy.tstate, 32) != 0 || memcmp(p, sy.tpatch, 32) != 0) {
		if (++sy.restarts > SYNC_RESTARTS) {
			if (commit_now(1) != 0)
				sy.rw = NULL;
			fail("the walk ended away from the target");
			return;
		}
		log_info("state sync: the walk ended away from the target;"
		    " walking again");
		start_walk();
		return;
	}
	if (commit_now(1) != 0) {
		fail("the final commit failed");
		return;
	}
	ms = uv_now(sy.loop) - sy.started;
	sy.last_duration_ms = ms;
	sy.active = 0;
	sy.done++;
	hex8(sy.tstate, s8);
	hex8(sy.tpatch, p8);
	log_info("state sync: achieved target state:%s patch:%s in %llu ms"
	    " (%llu bytes fetched)", s8, p8, (unsigned long long)ms,
	    (unsigned long long)(sy.bytes - sy.last_bytes_at_start));
}

static void
check_done(void)
{
	if (sy.active && sy.rw != NULL && sy.inflight == 0 &&
	    TAILQ_EMPTY(&sy.ready) && TAILQ_EMPTY(&sy.open) && sy.nwants == 0)
		finish_target();
}

static void
pump(void)
{
	uint64_t now = uv_now(sy.loop);
	struct item *it;
	struct want *w;
	int p;

	while (sy.active && sy.rw != NULL && sy.inflight < SYNC_INFLIGHT) {
		int items = (it = TAILQ_FIRST(&sy.ready)) != NULL &&
		    now >= sy.stall_until;

		/* Chunks go first, but a batch is sent short only when no
		 * listing or chunk list is waiting to be asked for: their
		 * answers bring more chunks (one per small file). */
		if ((w = TAILQ_FIRST(&sy.wantq)) != NULL &&
		    sy.chunk_reqs < SYNC_CHUNK_REQS &&
		    (sy.queued >= SYNC_BATCH || !items)) {
			if ((p = pick_peer(w->badmask, -1)) < 0) {
				if (peers_online() == 0)
					break;
				w->badmask = 0;	/* every peer failed it: again */
				continue;
			}
			if (send_chunks(p))
				continue;
		}
		if (items) {
			int pages = it->nents > 0 || it->next_group > 0;

			if ((p = pick_peer(it->badmask, pages ? it->lastpeer :
			    -1)) < 0) {
				/* No peer has it right now: wait a little
				 * (short chunk batches go meanwhile). */
				it->badmask = 0;
				sy.stall_until = now + 1000;
				continue;
			}
			TAILQ_REMOVE(&sy.ready, it, q);
			send_item(it, p);
			continue;
		}
		break;
	}
	check_done();
}

/* Wrong or unavailable: ask another peer. Pages so far are dropped. */
static void
item_retry(struct item *it, int peer, int bad)
{
	if (bad) {
		char hex[17];

		hp_hash_hex(sy.peers[peer].pk, 8, hex);
		sy.peers[peer].bad++;
		sy.rejected++;
		log_warnx("state sync: peer %s sent a %s for %s that does not"
		    " match its hash; asking another peer", hex,
		    it->kind == K_DIR ? "listing" : "chunk list", it->path);
	} else
		sy.peers[peer].mismatches++;
	it->badmask |= 1u << peer;
	item_reset(it);
	ready_push(it, 0);
}

static char *
child_path(const char *parent, const char *name)
{
	size_t n = strlen(parent) + 1 + strlen(name) + 1;
	char *p;

	if (n > SYNC_PATH_MAX || (p = malloc(n)) == NULL)
		return NULL;
	snprintf(p, n, "%s/%s", parent, name);
	return p;
}

static int
spawn(int kind, uint64_t ino, const char *parent, const char *name,
    const uint8_t hash[32])
{
	char *path = child_path(parent, name);
	struct item *it;

	if (path == NULL)
		return HP_ETOOBIG;
	it = item_new(kind, ino, path, hash);
	free(path);
	if (it == NULL)
		return HP_ENOMEM;
	ready_push(it, 0);
	return 0;
}

struct names {
	char **name;
	mode_t *mode;
	size_t n, cap;
	int err;
};

static int
names_cb(void *arg, const char *name, const struct sfs_attr *attr,
    uint64_t cookie)
{
	struct names *l = arg;

	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 32;
		char **nn = realloc(l->name, nc * sizeof(*nn));
		mode_t *nm = nn ? realloc(l->mode, nc * sizeof(*nm)) : NULL;

		if (nn != NULL)
			l->name = nn;
		if (nm == NULL) {
			l->err = 1;
			return 1;
		}
		l->mode = nm;
		l->cap = nc;
	}
	if ((l->name[l->n] = strdup(name)) == NULL) {
		l->err = 1;
		return 1;
	}
	l->mode[l->n++] = attr->mode;
	return 0;
}

/* Remove parent/name, a whole tree when it is a directory. */
static int
remove_node(uint64_t parent, const char *name, mode_t mode)
{
	struct sfs_attr a;
	struct names l;
	int r = 0;

	if (!S_ISDIR(mode))
		return sfs_unlink(sy.rw, parent, name);
	if ((r = sfs_lookup(sy.rw, parent, name, &a)) != 0)
		return r;
	memset(&l, 0, sizeof(l));
	r = sfs_readdir(sy.rw, a.ino, 0, names_cb, &l);
	if (r == 0 && l.err)
		r = -ENOMEM;
	for (size_t i = 0; i < l.n; i++) {
		if (r == 0)
			r = remove_node(a.ino, l.name[i], l.mode[i]);
		free(l.name[i]);
	}
	free(l.name);
	free(l.mode);
	return r != 0 ? r : sfs_rmdir(sy.rw, parent, name);
}

/* Make parent/e as the peer listed it (nothing there now). */
static int
create_entry(struct item *parent, const struct rent *e)
{
	struct sfs_attr a;
	struct rent none;
	uint8_t h[32];
	int r;

	if (S_ISLNK(e->mode))
		return sfs_symlink(sy.rw, parent->ino, e->name, e->target, &a);
	if (S_ISDIR(e->mode)) {
		if ((r = sfs_mkdir(sy.rw, parent->ino, e->name, e->mode, &a)) != 0)
			return r;
		memset(&none, 0, sizeof(none));
		if ((r = dir_node(e->mode, &none, 0, h)) != 0)
			return r;
		if (memcmp(h, e->hash, 32) == 0)
			return 0;	/* an empty directory */
		sy.dirs++;
		return spawn(K_DIR, a.ino, parent->path, e->name, e->hash);
	}
	if ((r = sfs_create(sy.rw, parent->ino, e->name, e->mode, &a)) != 0)
		return r;
	if ((r = file_node(e->mode, 0, NULL, 0, h)) != 0)
		return r;
	if (memcmp(h, e->hash, 32) == 0) {
		sy.files++;
		return 0;	/* an empty file */
	}
	return spawn(K_FILE, a.ino, parent->path, e->name, e->hash);
}

struct local {
	struct lent *e;
	size_t n, cap;
	int err;
};

static int
local_cb(void *arg, const char *name, mode_t mode, uint64_t size,
    const uint8_t hash[32])
{
	struct local *l = arg;

	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		struct lent *ne = realloc(l->e, nc * sizeof(*ne));

		if (ne == NULL) {
			l->err = 1;
			return 1;
		}
		l->e = ne;
		l->cap = nc;
	}
	snprintf(l->e[l->n].name, sizeof(l->e[l->n].name), "%s", name);
	l->e[l->n].mode = mode;
	l->e[l->n].size = size;
	memcpy(l->e[l->n].hash, hash, 32);
	l->n++;
	return 0;
}

/* A verified listing: make the local directory hold the same entries;
 * entries whose hash already matches are left alone. */
static int
apply_dir(struct item *it)
{
	struct sfs_attr a, c;
	struct local l;
	size_t i = 0, j = 0;
	int r = 0, cmp;

	if ((r = sfs_getattr(sy.rw, it->ino, &a)) != 0)
		return r;
	if ((a.mode & 07777) != it->mode) {
		a.mode = S_IFDIR | it->mode;
		if ((r = sfs_setattr(sy.rw, it->ino, SFS_SET_MODE, &a, &c)) != 0)
			return r;
	}
	memset(&l, 0, sizeof(l));
	if ((r = sfs_dir_list_hashed(sy.rw, it->ino, local_cb, &l)) != 0 ||
	    l.err) {
		free(l.e);
		return r != 0 ? r : HP_ENOMEM;
	}
	while (r == 0 && (i < l.n || j < it->nents)) {
		const struct lent *le = i < l.n ? &l.e[i] : NULL;
		const struct rent *re = j < it->nents ? &it->ents[j] : NULL;

		cmp = le == NULL ? 1 : re == NULL ? -1 :
		    name_cmp(le->name, re->name);
		if (cmp < 0) {
			r = remove_node(it->ino, le->name, le->mode);
			i++;
			continue;
		}
		if (cmp > 0) {
			r = create_entry(it, re);
			j++;
			continue;
		}
		i++;
		j++;
		if (memcmp(le->hash, re->hash, 32) == 0)
			continue;
		if ((le->mode & S_IFMT) != (re->mode & S_IFMT) ||
		    S_ISLNK(re->mode)) {
			if ((r = remove_node(it->ino, le->name, le->mode)) == 0)
				r = create_entry(it, re);
			continue;
		}
		if ((r = sfs_lookup(sy.rw, it->ino, re->name, &c)) != 0)
			continue;
		if (S_ISDIR(re->mode)) {
			sy.dirs++;
			r = spawn(K_DIR, c.ino, it->path, re->name, re->hash);
		} else
			r = spawn(K_FILE, c.ino, it->path, re->name, re->hash);
	}
	free(l.e);
	sy.dirty = 1;
	return r;
}

static int
take_entry(struct item *it, const msgpack_object *o)
{
	const msgpack_object *a;
	struct rent e;
	uint32_t type;
	int link;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 4 ||
	    o->via.array.size > 5 || it->nents >= SYNC_MAX_ENTRIES)
		return HP_EFORMAT;
	a = o->via.array.ptr;
	if (a[0].type != MSGPACK_OBJECT_STR ||
	    !name_ok(a[0].via.str.ptr, a[0].via.str.size) ||
	    a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[1].via.u64 > 0xffffffffULL ||
	    a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[3].type != MSGPACK_OBJECT_BIN || a[3].via.bin.size != 32)
		return HP_EFORMAT;
	type = (uint32_t)a[1].via.u64 & S_IFMT;
	link = type == S_IFLNK;
	if ((type != S_IFREG && type != S_IFDIR && !link) ||
	    (a[1].via.u64 & ~(uint64_t)(S_IFMT | 07777)) != 0 ||
	    (o->via.array.size == 5) != link)
		return HP_EFORMAT;
	if (link && (a[4].type != MSGPACK_OBJECT_STR ||
	    a[4].via.str.size == 0 || a[4].via.str.size > 4095 ||
	    memchr(a[4].via.str.ptr, '\0', a[4].via.str.size) != NULL))
		return HP_EFORMAT;
	memset(&e, 0, sizeof(e));
	if ((e.name = strndup(a[0].via.str.ptr, a[0].via.str.size)) == NULL)
		return HP_ENOMEM;
	if (it->nents > 0 && name_cmp(it->ents[it->nents - 1].name, e.name)
	    >= 0) {
		free(e.name);
		return HP_EFORMAT;	/* out of order or repeated */
	}
	if (link && (e.target = strndup(a[4].via.str.ptr,
	    a[4].via.str.size)) == NULL) {
		free(e.name);
		return HP_ENOMEM;
	}
	e.mode = (uint32_t)a[1].via.u64;
	e.size = a[2].via.u64;
	memcpy(e.hash, a[3].via.bin.ptr, 32);
	if (it->nents == it->cap) {
		size_t nc = it->cap ? it->cap * 2 : 64;
		struct rent *ne = realloc(it->ents, nc * sizeof(*ne));

		if (ne == NULL) {
			free(e.name);
			free(e.target);
			return HP_ENOMEM;
		}
		it->ents = ne;
		it->cap = nc;
	}
	it->ents[it->nents++] = e;
	return 0;
}

static void
on_dir(struct item *it, int peer, const msgpack_object *res)
{
	const msgpack_object *ents = hp_mpack_get(res, 4);
	uint64_t mode = 0;
	uint8_t h[32];
	bool more = false;
	int r;

	if (hp_mpack_u64(res, 3, &mode) != 0 || mode > 07777 ||
	    ents == NULL || ents->type != MSGPACK_OBJECT_ARRAY ||
	    hp_mpack_bool(res, 5, &more) != 0 ||
	    (more && ents->via.array.size == 0)) {
		item_retry(it, peer, 1);
		return;
	}
	it->mode = (uint32_t)mode;
	for (uint32_t i = 0; i < ents->via.array.size; i++)
		if (take_entry(it, &ents->via.array.ptr[i]) != 0) {
			item_retry(it, peer, 1);
			return;
		}
	if (more) {
		ready_push(it, 1);	/* the next page, from the same peer */
		return;
	}
	if (dir_node(it->mode, it->ents, it->nents, h) != 0 ||
	    memcmp(h, it->hash, 32) != 0) {
		item_retry(it, peer, 1);
		return;
	}
	for (size_t i = 0; i < it->nents; i++) {
		if (it->ents[i].target == NULL)
			continue;
		link_node(it->ents[i].target, h);
		if (memcmp(h, it->ents[i].hash, 32) != 0) {
			item_retry(it, peer, 1);
			return;
		}
	}
	sy.peers[peer].pieces++;
	sy.verified_pieces++;
	if ((r = apply_dir(it)) != 0) {
		char msg[SYNC_PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "cannot apply directory %s: %s",
		    it->path, r < 0 && r > -4096 && r != HP_ENOMEM &&
		    r != HP_ETOOBIG ? strerror(-r) : hp_strerror(r));
		item_free(it);
		fail(msg);
		return;
	}
	item_free(it);
}

static int
is_hole(const struct item *it, uint64_t i, const uint8_t zlast[32])
{
	uint64_t len = chunk_len(it->size, i);

	return memcmp(it->chunks[i], len == SFS_CHUNK ? sy.zchunk : zlast,
	    32) == 0;
}

/* The chunk list is complete and verified: want what no file holds. */
static void
plan_file(struct item *it)
{
	uint8_t zlast[32];
	size_t l;
	int r;

	zero_hash(chunk_len(it->size, it->nchunks ? it->nchunks - 1 : 0),
	    zlast);
	it->missing = 0;
	for (uint64_t i = 0; i < it->nchunks; i++) {
		if (is_hole(it, i, zlast) ||
		    sfs_chunk_get(sy.rw, it->chunks[i], NULL, 0, &l) != -ENOENT)
			continue;
		if ((r = want_add(it->chunks[i], (uint32_t)chunk_len(it->size,
		    i), it)) < 0) {
			fail("out of memory");
			return;
		}
		it->missing += (uint64_t)r;
	}
	if (it->missing == 0) {
		finish_file(it);
		return;
	}
	it->where = Q_OPEN;
	TAILQ_INSERT_TAIL(&sy.open, it, q);
}

static void
finish_file(struct item *it)
{
	int r;

	if (it->where == Q_OPEN)
		TAILQ_REMOVE(&sy.open, it, q);
	it->where = Q_NONE;
	r = sfs_file_set(sy.rw, it->ino, it->size, it->mode,
	    (const uint8_t (*)[32])it->chunks, it->nchunks);
	if (r == -ENOENT && it->replans++ < 3) {
		/* A chunk counted as held went away with a removed file. */
		plan_file(it);
		return;
	}
	if (r != 0) {
		char msg[SYNC_PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "cannot set file %s: %s", it->path,
		    strerror(-r));
		item_free(it);
		fail(msg);
		return;
	}
	if (it->ino == SFS_PATCH_INO)
		sy.patch_pending = 0;
	sy.files++;
	sy.dirty = 1;
	item_free(it);
}

static void
on_file(struct item *it, int peer, const msgpack_object *res)
{
	const msgpack_object *groups = hp_mpack_get(res, 8);
	const msgpack_object *page = hp_mpack_get(res, 9);
	uint64_t mode = 0, size = 0, g0 = 0, first, last, k;
	uint8_t h[32];

	if (hp_mpack_u64(res, 3, &mode) != 0 || mode > 07777 ||
	    hp_mpack_u64(res, 6, &size) != 0 || size > SFS_MAX_FILE ||
	    hp_mpack_u64(res, 7, &g0) != 0 || g0 != it->next_group ||
	    page == NULL || page->type != MSGPACK_OBJECT_BIN) {
		item_retry(it, peer, 1);
		return;
	}
	if (g0 == 0) {
		uint64_t n = nchunks_of(size), ng = (n + GROUP - 1) / GROUP;

		if (groups == NULL || groups->type != MSGPACK_OBJECT_BIN ||
		    groups->via.bin.size != ng * 32 ||
		    file_node((uint32_t)mode, size, (const uint8_t (*)[32])
		    groups->via.bin.ptr, ng, h) != 0 ||
		    memcmp(h, it->hash, 32) != 0) {
			item_retry(it, peer, 1);
			return;
		}
		item_reset(it);
		it->mode = (uint32_t)mode;
		it->size = size;
		it->nchunks = n;
		it->ngroups = ng;
		it->groups = malloc((size_t)ng * 32 + 1);
		it->chunks = malloc((size_t)n * 32 + 1);
		if (it->groups == NULL || it->chunks == NULL) {
			item_free(it);
			fail("out of memory for a chunk list");
			return;
		}
		if (ng > 0)
			memcpy(it->groups, groups->via.bin.ptr, ng * 32);
	} else if (mode != it->mode || size != it->size) {
		item_retry(it, peer, 1);
		return;
	}
	first = g0 * GROUP;
	last = (g0 + SYNC_PAGE_GROUPS) * GROUP;
	if (last > it->nchunks)
		last = it->nchunks;
	if (page->via.bin.size != (last - first) * 32) {
		item_retry(it, peer, 1);
		return;
	}
	k = (last - first + GROUP - 1) / GROUP;
	for (uint64_t g = 0; g < k; g++) {
		uint64_t a = g * GROUP, b = a + GROUP < last - first ?
		    a + GROUP : last - first;

		hp_hash((const uint8_t *)page->via.bin.ptr + a * 32,
		    (size_t)(b - a) * 32, h);
		if (memcmp(h, it->groups[g0 + g], 32) != 0) {
			item_retry(it, peer, 1);
			return;
		}
	}
	if (last > first)
		memcpy(it->chunks[first], page->via.bin.ptr,
		    (size_t)(last - first) * 32);
	it->next_group = g0 + k;
	sy.peers[peer].pieces++;
	sy.verified_pieces++;
	if (it->next_group < it->ngroups) {
		ready_push(it, 1);
		return;
	}
	plan_file(it);
}

static void
on_chunks(struct req *r, int peer, int status, const msgpack_object *res)
{
	const msgpack_object *arr = hp_mpack_get(res, 10);
	struct item *done[SYNC_BATCH * 4];
	struct sfs_later later[SYNC_BATCH];
	struct want *got[SYNC_BATCH];
	uint8_t h[32];
	int ndone = 0, ngot = 0;

	if (status != ST_OK || arr == NULL ||
	    arr->type != MSGPACK_OBJECT_ARRAY ||
	    arr->via.array.size != (uint32_t)r->nw) {
		if (status == ST_OK) {
			sy.peers[peer].bad++;
			sy.rejected++;
		} else
			sy.peers[peer].mismatches++;
		for (int i = 0; i < r->nw; i++)
			want_requeue(r->w[i], peer);
		return;
	}
	for (int i = 0; i < r->nw; i++) {
		const msgpack_object *o = &arr->via.array.ptr[i];
		struct want *w = r->w[i];
		int rc;

		if (o->type != MSGPACK_OBJECT_BIN) {
			sy.peers[peer].mismatches++;
			want_requeue(w, peer);
			continue;
		}
		if (o->via.bin.size > 0 && o->via.bin.size <= SFS_CHUNK)
			hp_hash(o->via.bin.ptr, o->via.bin.size, h);
		if (o->via.bin.size == 0 || o->via.bin.size > SFS_CHUNK ||
		    memcmp(h, w->hash, 32) != 0) {
			char hex[17];

			hp_hash_hex(sy.peers[peer].pk, 8, hex);
			if (sy.peers[peer].bad++ == 0)
				log_warnx("state sync: peer %s sent chunk bytes"
				    " that do not match their hash; asking"
				    " another peer", hex);
			sy.rejected++;
			want_requeue(w, peer);
			continue;
		}
		/* The bytes are copied into the store below, all at once. */
		if ((rc = sfs_chunk_put_later(sy.rw, o->via.bin.ptr,
		    o->via.bin.size, h, &later[ngot])) != 0) {
			fail("cannot store a chunk");
			return;
		}
		got[ngot++] = w;
		sy.bytes += o->via.bin.size;
		sy.chunks++;
		sy.verified++;
		sy.peers[peer].bytes += o->via.bin.size;
		sy.peers[peer].pieces++;
	}
	if (sfs_chunk_copy(sy.rw, later, (size_t)ngot) != 0) {
		fail("cannot store a chunk");
		return;
	}
	for (int i = 0; i < ngot; i++) {
		for (struct waiter *wt = got[i]->waiters; wt != NULL;
		    wt = wt->next) {
			wt->it->fresh++;
			if (--wt->it->missing == 0 &&
			    ndone < (int)(sizeof(done) / sizeof(done[0])))
				done[ndone++] = wt->it;
		}
		want_free(got[i], 1);
	}
	for (int i = 0; i < ndone && sy.active; i++)
		finish_file(done[i]);
	if (ndone == (int)(sizeof(done) / sizeof(done[0]))) {
		struct item *it, *next;

		/* More files finished than fit: sweep for the rest. */
		for (it = TAILQ_FIRST(&sy.open); it != NULL && sy.active;
		    it = next) {
			next = TAILQ_NEXT(it, q);
			if (it->missing == 0) {
				finish_file(it);
				next = TAILQ_FIRST(&sy.open);
			}
		}
	}
}

static void
on_res(const uint8_t from[32], const uint8_t *payload, size_t len)
{
	msgpack_unpacked res;
	struct req r, *slot = NULL;
	uint64_t id = 0, status = 0;
	int peer;

	if (!sy.active || sy.rw == NULL ||
	    hp_mpack_unpack(payload, len, &res) != 0)
		return;
	if (hp_mpack_u64(&res.data, 1, &id) == 0 &&
	    hp_mpack_u64(&res.data, 2, &status) == 0)
		for (int i = 0; i < SYNC_INFLIGHT; i++)
			if (sy.reqs[i].id == id && id != 0)
				slot = &sy.reqs[i];
	peer = slot != NULL ? slot->peer : -1;
	if (slot == NULL || memcmp(sy.peers[peer].pk, from, 32) != 0) {
		msgpack_unpacked_destroy(&res);
		return;		/* late, or not asked of this peer */
	}
	r = *slot;
	req_free(slot);
	if (r.kind == K_CHUNKS)
		on_chunks(&r, peer, (int)status, &res.data);
	else if (status != ST_OK)
		item_retry(r.it, peer, 0);
	else if (r.kind == K_DIR)
		on_dir(r.it, peer, &res.data);
	else
		on_file(r.it, peer, &res.data);
	msgpack_unpacked_destroy(&res);
	if (sy.active && sy.rw != NULL && (sy.bytes - sy.ckpt_bytes >=
	    SYNC_CKPT_BYTES || (sy.dirty && uv_now(sy.loop) - sy.ckpt_at >=
	    SYNC_CKPT_MS)) && commit_now(0) != 0)
		fail("a checkpoint commit failed");
	pump();
}

/* ---- targets ---- */

static void
start_walk(void)
{
	uint8_t h[32];
	struct item *it;

	stop_walk();
	if (sfs_node_hash(sy.rw, SFS_PATCH_INO, h) == 0 &&
	    memcmp(h, sy.tpatch, 32) != 0) {
		if ((it = item_new(K_FILE, SFS_PATCH_INO, "/patch.cfg",
		    sy.tpatch)) == NULL) {
			fail("out of memory");
			return;
		}
		sy.patch_pending = 1;
		ready_push(it, 0);
	}
	if (sfs_node_hash(sy.rw, SFS_STATE_INO, h) == 0 &&
	    memcmp(h, sy.tstate, 32) != 0) {
		if ((it = item_new(K_DIR, SFS_STATE_INO, "/state",
		    sy.tstate)) == NULL) {
			fail("out of memory");
			return;
		}
		ready_push(it, 0);
	}
	pump();
}

/* Take the store's session, or wait for whoever holds it. */
static void
begin_sync(void)
{
	int r;

	if ((r = sfs_begin_rw(sy.store, &sy.rw)) != 0) {
		sy.rw = NULL;
		if (r != HP_EBUSY)
			log_warnx("state sync: cannot open a session: %s",
			    hp_strerror(r));
		sy.waiting = 1;
		return;
	}
	sy.waiting = 0;
	sy.active = 1;
	sy.restarts = 0;
	sy.ckpt_at = uv_now(sy.loop);
	sy.ckpt_bytes = sy.bytes;
	start_walk();
}

static int
local_is_target(void)
{
	uint8_t s[32], p[32];

	return sfs_hashes(sy.store, s, p) == 0 &&
	    memcmp(s, sy.tstate, 32) == 0 && memcmp(p, sy.tpatch, 32) == 0;
}

static void
set_target(const uint8_t state[32], const uint8_t patch[32])
{
	int same = sy.have_target && memcmp(state, sy.tstate, 32) == 0 &&
	    memcmp(patch, sy.tpatch, 32) == 0;
	char s8[9], p8[9];

	memcpy(sy.tstate, state, 32);
	memcpy(sy.tpatch, patch, 32);
	sy.have_target = 1;
	if (local_is_target()) {
		/* The store holds the cluster's state: nothing to do, and
		 * what a sync changed since its last commit is not wanted. */
		if (sy.active) {
			log_info("state sync: the store already holds the"
			    " target; stopping");
			stop_walk();
			sfs_abort(sy.rw);
			sy.rw = NULL;
			sy.active = 0;
		}
		sy.waiting = 0;
		return;
	}
	if (same && (sy.active || sy.waiting)) {
		pump();
		return;
	}
	hex8(state, s8);
	hex8(patch, p8);
	sy.targets++;
	if (sy.active) {
		log_info("state sync: the target moved to state:%s patch:%s;"
		    " walking from the new root", s8, p8);
		sy.restarts = 0;
		start_walk();
		return;
	}
	log_info("state sync: this node's state differs from the cluster's;"
	    " syncing to state:%s patch:%s", s8, p8);
	sy.started = uv_now(sy.loop);
	sy.last_bytes_at_start = sy.bytes;
	begin_sync();
}

void
sync_on_target(const msgpack_object *body)
{
	const msgpack_object *s = hp_mpack_get(body, 1);
	const msgpack_object *p = hp_mpack_get(body, 2);
	const msgpack_object *a = hp_mpack_get(body, 3);

	if (s == NULL || s->type != MSGPACK_OBJECT_BIN ||
	    s->via.bin.size != 32 || p == NULL ||
	    p->type != MSGPACK_OBJECT_BIN || p->via.bin.size != 32 ||
	    a == NULL || a->type != MSGPACK_OBJECT_ARRAY) {
		log_warnx("malformed STATE_SYNC_TARGET from consensus;"
		    " ignored");
		return;
	}
	for (int i = 0; i < sy.npeers; i++)
		sy.peers[i].online = 0;
	for (uint32_t i = 0; i < a->via.array.size; i++) {
		const msgpack_object *k = &a->via.array.ptr[i];
		int idx;

		if (k->type != MSGPACK_OBJECT_BIN || k->via.bin.size != 32)
			continue;
		if ((idx = peer_index((const uint8_t *)k->via.bin.ptr, 1)) >= 0)
			sy.peers[idx].online = 1;
	}
	set_target((const uint8_t *)s->via.bin.ptr,
	    (const uint8_t *)p->via.bin.ptr);
}

void
sync_local_commit(void)
{
	if (sy.waiting && local_is_target())
		sy.waiting = 0;
}

void
sync_on_peer(const msgpack_object *body)
{
	const msgpack_object *from = hp_mpack_get(body, 1);
	const msgpack_object *payload = hp_mpack_get(body, 3);
	uint64_t ptype = 0;

	if (from == NULL || from->type != MSGPACK_OBJECT_BIN ||
	    from->via.bin.size != 32 || payload == NULL ||
	    payload->type != MSGPACK_OBJECT_BIN ||
	    hp_mpack_u64(body, 2, &ptype) != 0)
		return;
	if (ptype == HP_PT_STATE_REQ)
		serve((const uint8_t *)from->via.bin.ptr,
		    (const uint8_t *)payload->via.bin.ptr,
		    payload->via.bin.size);
	else if (ptype == HP_PT_STATE_RES)
		on_res((const uint8_t *)from->via.bin.ptr,
		    (const uint8_t *)payload->via.bin.ptr,
		    payload->via.bin.size);
}

static void
tick(uv_timer_t *t)
{
	uint64_t now = uv_now(sy.loop);

	if (now - sy.last_ms >= 1000) {
		sy.rate = (double)(sy.bytes - sy.last_bytes) * 1000.0 /
		    (double)(now - sy.last_ms);
		sy.last_ms = now;
		sy.last_bytes = sy.bytes;
	}
	if (sy.waiting) {
		begin_sync();
		return;
	}
	if (!sy.active || sy.rw == NULL)
		return;
	for (int i = 0; i < SYNC_INFLIGHT; i++) {
		struct req *r = &sy.reqs[i];
		struct req c;

		if (r->id == 0 || now - r->sent < SYNC_TIMEOUT_MS)
			continue;
		c = *r;
		sy.peers[c.peer].timeouts++;
		req_free(r);
		if (c.it != NULL) {
			c.it->badmask |= 1u << c.peer;
			ready_push(c.it, 1);
		}
		for (int j = 0; j < c.nw; j++)
			want_requeue(c.w[j], c.peer);
	}
	if (sy.dirty && now - sy.ckpt_at >= SYNC_CKPT_MS &&
	    commit_now(0) != 0) {
		fail("a checkpoint commit failed");
		return;
	}
	pump();
}

/* ---- hpctl ---- */

void
sync_show(msgpack_packer *pk)
{
	uint64_t now = uv_now(sy.loop), left = 0;
	const char *stage = !sy.active ? "idle" : sy.patch_pending ? "patch" :
	    "state";
	int used = 0;

	if (sy.wanted_bytes > sy.bytes - sy.last_bytes_at_start)
		left = sy.wanted_bytes - (sy.bytes - sy.last_bytes_at_start);
	for (int i = 0; i < sy.npeers; i++)
		used += sy.peers[i].requests > 0;
	msgpack_pack_map(pk, 23);
	hp_mpack_pack_cstr(pk, "stage");
	hp_mpack_pack_cstr(pk, stage);
	hp_mpack_pack_cstr(pk, "waiting_for_session");
	if (sy.waiting)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	hp_mpack_kv_hex(pk, "target_state", sy.tstate, sy.have_target ? 32 : 0);
	hp_mpack_kv_hex(pk, "target_patch", sy.tpatch, sy.have_target ? 32 : 0);
	hp_mpack_kv_u64(pk, "bytes_fetched", sy.bytes);
	hp_mpack_kv_u64(pk, "chunks_fetched", sy.chunks);
	hp_mpack_kv_u64(pk, "chunks_verified", sy.verified);
	hp_mpack_kv_u64(pk, "pieces_verified", sy.verified_pieces + sy.verified);
	hp_mpack_kv_u64(pk, "pieces_rejected", sy.rejected);
	hp_mpack_kv_u64(pk, "requests_in_flight", (uint64_t)sy.inflight);
	hp_mpack_kv_u64(pk, "rate_bps", sy.active ? (uint64_t)sy.rate : 0);
	hp_mpack_pack_cstr(pk, "eta_s");
	if (sy.active && sy.rate > 0)
		msgpack_pack_uint64(pk, (uint64_t)((double)left / sy.rate));
	else
		msgpack_pack_nil(pk);
	hp_mpack_kv_u64(pk, "bytes_left_known", sy.active ? left : 0);
	hp_mpack_kv_u64(pk, "elapsed_ms", sy.active ? now - sy.started : 0);
	hp_mpack_kv_u64(pk, "dirs", sy.dirs);
	hp_mpack_kv_u64(pk, "files", sy.files);
	hp_mpack_kv_u64(pk, "commits", sy.commits);
	hp_mpack_kv_u64(pk, "targets", sy.targets);
	hp_mpack_kv_u64(pk, "syncs_done", sy.done);
	hp_mpack_kv_u64(pk, "last_sync_ms", sy.last_duration_ms);
	hp_mpack_kv_u64(pk, "served_requests", sy.served);
	hp_mpack_kv_u64(pk, "served_bytes", sy.served_bytes);
	hp_mpack_pack_cstr(pk, "peers");
	msgpack_pack_array(pk, used);
	for (int i = 0; i < sy.npeers; i++) {
		const struct speer *p = &sy.peers[i];

		if (p->requests == 0)
			continue;
		msgpack_pack_map(pk, 8);
		hp_mpack_kv_hex(pk, "key", p->pk, 8);
		hp_mpack_pack_cstr(pk, "online");
		if (p->online)
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		hp_mpack_kv_u64(pk, "requests", p->requests);
		hp_mpack_kv_u64(pk, "bytes", p->bytes);
		hp_mpack_kv_u64(pk, "pieces", p->pieces);
		hp_mpack_kv_u64(pk, "bad_pieces", p->bad);
		hp_mpack_kv_u64(pk, "unavailable", p->mismatches);
		hp_mpack_kv_u64(pk, "timeouts", p->timeouts);
	}
}

void
sync_test_corrupt(int on)
{
	sy.corrupt = on;
	log_warnx("test hook: this node's sync answers %s corrupt chunk"
	    " bytes", on ? "now carry" : "no longer carry");
}

/* ---- life ---- */

int
sync_init(uv_loop_t *loop, struct sfs *store, sync_committed_fn committed)
{
	static const uint8_t zeros[SFS_CHUNK];

	sy.loop = loop;
	sy.store = store;
	sy.committed = committed;
	TAILQ_INIT(&sy.ready);
	TAILQ_INIT(&sy.open);
	TAILQ_INIT(&sy.wantq);
	hp_hash(zeros, SFS_CHUNK, sy.zchunk);
	sy.last_ms = uv_now(loop);
	uv_timer_init(loop, &sy.timer);
	uv_timer_start(&sy.timer, tick, SYNC_TICK_MS, SYNC_TICK_MS);
	uv_unref((uv_handle_t *)&sy.timer);
	return 0;
}

void
sync_stop(void)
{
	if (sy.loop == NULL)
		return;
	uv_timer_stop(&sy.timer);
	uv_close((uv_handle_t *)&sy.timer, NULL);
	stop_walk();
	if (sy.rw != NULL) {
		sfs_abort(sy.rw);
		sy.rw = NULL;
	}
	sy.active = sy.waiting = 0;
}
