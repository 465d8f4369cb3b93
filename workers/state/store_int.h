/*
 * store_int.h — what store.c (namespace, views), chunks.c (file content,
 * chunk store) and tree.c (the hash tree) share inside statefs; nothing
 * outside workers/state includes it.
 *
 * Every helper works inside the view's transaction and returns 0 or a
 * negative errno. A failed LMDB write poisons the write transaction:
 * such helpers set v->broken, and the session can then only be aborted.
 * Values read from LMDB point into the map and die at the next write in
 * the same transaction, so helpers copy what they keep.
 */
#ifndef HP_STORE_INT_H
#define HP_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>

#include "store.h"

#define SFS_FORMAT	1
#define SFS_GROUP	256		/* chunk hashes per group hash */
#define SFS_TARGET_MAX	4095		/* longest symlink target */
#define SFS_REC_FIXED	58		/* inode record before the name */

struct sfs {
	MDB_env *env;
	MDB_dbi inodes, dirents, fchunks, chunks, refs, groups, hashes;
	MDB_dbi dirty, gdirty, pending, meta;
	int rw_open;			/* one rw session at a time */
	uint64_t hashed;		/* debug: bytes fed to BLAKE3 */
	uint8_t zchunk[32];		/* hash of SFS_CHUNK zero bytes */
	uint8_t zgroup[32];		/* hash of SFS_GROUP zchunks */
	/* The map is written in place (MDB_WRITEMAP): the data file's
	 * blocks and pages are made ready ahead of the transaction's tail
	 * (store.c, sfs_room), so that a full disk fails a write with
	 * -ENOSPC instead of a fault on the map. */
	uint8_t *map;
	int fd;
	size_t psize, mapsize;
	uint64_t ready;			/* file bytes [0, ready) have blocks */
	uint64_t tail0, tail;		/* the rw view's tail at its start, and
					 * as last seen */
	uint64_t wb_lo, wb_hi;		/* written since writeback was started */
	struct sfs_copier *copier;	/* sfs_chunk_copy's second thread */
	int no_copier;			/* it could not be started */
};

/* A readdir position that left its directory during this session. */
struct sfs_tomb {
	uint64_t ino, parent;
	uint16_t len;
	char name[SFS_NAME_MAX];
};

struct sfs_view {
	struct sfs *s;
	MDB_txn *txn;
	int rw;
	int broken;			/* a write failed: abort only */
	uint8_t *scratch;		/* SFS_CHUNK bytes, rw views */
	uint8_t *wb;			/* SFS_CHUNK bytes, rw views: one chunk
					 * written in part, not yet stored */
	uint64_t wb_ino, wb_idx;
	int wb_used;
	uint64_t ra_ino, ra_end;	/* chunks [.., ra_end) of ra_ino were
					 * asked for ahead (chunks.c) */
	struct sfs_tomb *tombs;
	size_t ntombs, captombs;
};

/* An inode record, decoded (big-endian fixed part, then name, then target). */
struct sfs_inode {
	uint64_t ino;
	uint32_t mode, nlink;
	uint64_t size, parent;
	uint64_t mtime, ctime, atime;
	uint64_t stored;		/* bytes of stored (non-hole) chunks */
	uint16_t namelen;
	char name[SFS_NAME_MAX + 1];
	uint16_t targetlen;
	char target[SFS_TARGET_MAX + 1];
};

/* store.c */
void sfs_put64(uint8_t *p, uint64_t x);
uint64_t sfs_get64(const uint8_t *p);
int sfs_lmdb_err(struct sfs_view *v, const char *what, int rc);
int sfs_inode_get(struct sfs_view *v, uint64_t ino, struct sfs_inode *out);
int sfs_inode_put(struct sfs_view *v, const struct sfs_inode *n);
uint64_t sfs_now_ns(void);
int sfs_room(struct sfs_view *v, size_t len);
void sfs_tail_seen(struct sfs_view *v, const void *p, size_t len);
int sfs_map_write(struct sfs_view *v, void *dst, const void *src, size_t len);
int sfs_copy_drain(struct sfs_view *v);

/* chunks.c */
uint64_t sfs_nchunks(uint64_t size);
uint64_t sfs_chunk_len(uint64_t size, uint64_t idx);
void sfs_zero_hash(struct sfs *s, uint64_t len, uint8_t out[32]);
int sfs_chunk_ref(struct sfs_view *v, const uint8_t hash[32]);
int sfs_chunk_unref(struct sfs_view *v, const uint8_t hash[32]);
int sfs_file_resize(struct sfs_view *v, struct sfs_inode *n, uint64_t size);
int sfs_file_drop(struct sfs_view *v, uint64_t ino);
int sfs_collect_pending(struct sfs_view *v);
int sfs_wb_flush(struct sfs_view *v);

/* tree.c */
void sfs_hash_count(struct sfs *s, const void *p, size_t len, uint8_t out[32]);
int sfs_mark_dirty(struct sfs_view *v, uint64_t ino);
int sfs_mark_group(struct sfs_view *v, uint64_t ino, uint64_t group);
int sfs_forget_node(struct sfs_view *v, uint64_t parent, uint64_t ino);
int sfs_move_dirty(struct sfs_view *v, uint64_t ino, uint64_t oldparent);
int sfs_forget_groups(struct sfs_view *v, uint64_t ino, uint64_t from);
int sfs_tree_update(struct sfs_view *v, uint64_t ino);
int sfs_cached_hash(struct sfs_view *v, uint64_t ino, uint8_t out[32]);

#endif
