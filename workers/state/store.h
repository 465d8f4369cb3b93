/*
 * store.h — statefs: the contract's state as a filesystem kept in LMDB,
 * with a Merkle hash over its content.
 *
 * Layout in the environment (NODE/state/data.mdb), one owner: the state
 * worker.
 *   inodes    ino (u64 BE) → attributes (type, mode, size, times, nlink)
 *   dirents   parent ino (u64 BE) || name → child ino
 *   fchunks   ino (u64 BE) || chunk index (u64 BE) → chunk hash (32 B)
 *   chunks    chunk hash → refcount (u64) || bytes (≤ SFS_CHUNK bytes)
 *   hashes    ino → cached node hash, kept up to date at commit
 *   meta      next inode number, committed root hashes, format version
 * Files are cut into fixed SFS_CHUNK-byte chunks at fixed offsets; a
 * chunk is stored once per content (content addressed, reference
 * counted). A hole reads as zeros and has no chunk.
 *
 * The namespace the contract sees has two top-level entries, as in
 * HotPocket: the directory "state" (SFS_STATE_INO) and the file
 * "patch.cfg" (SFS_PATCH_INO), hashed separately (state hash and patch
 * hash). The hash definition, with test vectors, is in docs/state-hash.md.
 * It depends only on content (names, types, the mode bits 0777 and
 * S_ISUID/S_ISGID/S_ISVTX, sizes, bytes), never on history, inode numbers
 * or times, and a commit recomputes only the nodes on the paths from
 * changed nodes to the root.
 *
 * Views: at most one read-write session at a time (one LMDB write
 * transaction: a contract run), committed or aborted as a whole; any
 * number of read-only views, each a read transaction at a committed root.
 * Every function taking a view works on either kind; writes on a
 * read-only view fail with -EROFS.
 *
 * Errors: file-system calls return 0 or a NEGATIVE ERRNO (-ENOENT,
 * -ENOTDIR, -EISDIR, -ENOTEMPTY, -EEXIST, -ENAMETOOLONG, -EROFS, -EINVAL,
 * -ENOSPC, -EIO, ...), ready for fuse_reply_err(req, -r). Store-level
 * calls (open, begin, commit) return 0 or a negative HP_E* code.
 *
 * Ownership: the caller owns struct sfs (sfs_open/sfs_close) and each
 * view (sfs_begin_* / sfs_commit / sfs_abort / sfs_end). Names are
 * NUL-terminated, at most SFS_NAME_MAX bytes, never "." or "..", never
 * containing '/'.
 */
#ifndef HP_STORE_H
#define HP_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define SFS_CHUNK (64 * 1024)
#define SFS_NAME_MAX 255
#define SFS_ROOT_INO 1		/* "/" */
#define SFS_STATE_INO 2		/* "/state" */
#define SFS_PATCH_INO 3		/* "/patch.cfg" */
#define SFS_MAX_FILE (1ULL << 40)	/* 1 TiB */

struct sfs;
struct sfs_view;

struct sfs_attr {
	uint64_t ino;
	mode_t mode;		/* S_IFREG | S_IFDIR | S_IFLNK, plus bits */
	uint64_t size;
	uint32_t nlink;
	uint64_t mtime_ns, ctime_ns, atime_ns;
	uint64_t blocks;	/* 512-byte blocks actually stored */
};

/* Open (creating when empty: "/", "/state", empty "/patch.cfg"). */
int sfs_open(const char *dir, struct sfs **out);
void sfs_close(struct sfs *s);

/* Committed root hashes (what consensus votes). */
int sfs_hashes(struct sfs *s, uint8_t state[32], uint8_t patch[32]);

int sfs_begin_rw(struct sfs *s, struct sfs_view **out);	/* HP_EBUSY if one is open */
int sfs_begin_ro(struct sfs *s, struct sfs_view **out);
/* Recompute the changed hashes, commit durably, return the new roots. */
int sfs_commit(struct sfs_view *v, uint8_t state[32], uint8_t patch[32]);
void sfs_abort(struct sfs_view *v);	/* rw: discard everything */
void sfs_end(struct sfs_view *v);	/* ro */
int sfs_view_is_rw(const struct sfs_view *v);

/* The filesystem. ino values are stable for the life of the store. */
int sfs_lookup(struct sfs_view *v, uint64_t parent, const char *name,
    struct sfs_attr *out);
int sfs_getattr(struct sfs_view *v, uint64_t ino, struct sfs_attr *out);
/* Each SFS_SET_* bit in `set` applies the matching field of attr. */
#define SFS_SET_MODE 0x1
#define SFS_SET_SIZE 0x2	/* truncate or extend (sparse) */
#define SFS_SET_MTIME 0x4
#define SFS_SET_ATIME 0x8
int sfs_setattr(struct sfs_view *v, uint64_t ino, int set,
    const struct sfs_attr *attr, struct sfs_attr *out);
int sfs_create(struct sfs_view *v, uint64_t parent, const char *name,
    mode_t mode, struct sfs_attr *out);		/* regular file */
int sfs_mkdir(struct sfs_view *v, uint64_t parent, const char *name,
    mode_t mode, struct sfs_attr *out);
int sfs_symlink(struct sfs_view *v, uint64_t parent, const char *name,
    const char *target, struct sfs_attr *out);
int sfs_readlink(struct sfs_view *v, uint64_t ino, char *buf, size_t size);
int sfs_unlink(struct sfs_view *v, uint64_t parent, const char *name);
int sfs_rmdir(struct sfs_view *v, uint64_t parent, const char *name);
/* flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE (linux/fs.h values). */
int sfs_rename(struct sfs_view *v, uint64_t parent, const char *name,
    uint64_t newparent, const char *newname, unsigned flags);
/* Returns bytes read (short at EOF) or a negative errno. */
ssize_t sfs_read(struct sfs_view *v, uint64_t ino, uint64_t off, size_t size,
    void *buf);
ssize_t sfs_write(struct sfs_view *v, uint64_t ino, uint64_t off,
    size_t size, const void *buf);
/*
 * sfs_read without the copy: the bytes come as pieces, iov[0..*niov),
 * pointing into the view (stored bytes, read-only) or at zeros (holes),
 * valid until the next call that writes in this view or its end. iov
 * must have room for SFS_READ_IOV(size) pieces (else -EINVAL).
 */
#define SFS_READ_IOV(size) (2 * ((size) / SFS_CHUNK + 2))
struct iovec;
ssize_t sfs_read_iov(struct sfs_view *v, uint64_t ino, uint64_t off,
    size_t size, struct iovec *iov, size_t maxiov, size_t *niov);
/*
 * Directory entries in name order, starting after `cookie` (0 = from the
 * start); fn returns non-zero to stop (buffer full). Each entry passes
 * the cookie to resume after it.
 */
typedef int (*sfs_dirent_fn)(void *arg, const char *name,
    const struct sfs_attr *attr, uint64_t cookie);
int sfs_readdir(struct sfs_view *v, uint64_t ino, uint64_t cookie,
    sfs_dirent_fn fn, void *arg);
struct sfs_statfs {
	uint64_t bytes_used, chunks, inodes;
};
int sfs_statfs(struct sfs_view *v, struct sfs_statfs *out);

/* The node hash of ino in this view (recomputing dirty nodes in a rw
 * view without committing). */
int sfs_node_hash(struct sfs_view *v, uint64_t ino, uint8_t out[32]);

/*
 * Additions (statefs core). Threads: a view is used by one thread at a
 * time, and a rw view is begun, committed or aborted on the same thread
 * (LMDB's writer lock is a mutex held by that thread); ro views may move
 * between threads (MDB_NOTLS). sfs_commit and sfs_abort free the view,
 * whatever the outcome; after a write fails with -ENOSPC or -EIO the
 * session is poisoned and sfs_commit returns HP_EIO (nothing committed).
 * The map is HPD_STATE_MAPSIZE bytes (default 64 GiB of address space);
 * filling it gives -ENOSPC. sfs_readlink writes the target NUL-terminated
 * and returns its length (-ERANGE when size is too small). A readdir fn
 * must not call into the store. A readdir cookie is the entry's ino; one
 * that left the directory in an earlier session resumes as end of
 * directory.
 */

/* Sync: a file's chunk hashes, index 0..ceil(size/SFS_CHUNK)-1; a hole
 * is reported as the hash of its zero bytes. fn returns non-zero to stop. */
typedef int (*sfs_chunk_fn)(void *arg, uint64_t index, const uint8_t hash[32]);
int sfs_file_chunks(struct sfs_view *v, uint64_t ino, sfs_chunk_fn fn,
    void *arg);
/* A stored chunk's bytes: -ENOENT when not stored (holes never are),
 * -ERANGE when size < its length. */
int sfs_chunk_get(struct sfs_view *v, const uint8_t hash[32], void *buf,
    size_t size, size_t *len);
/* The same without a copy: *p points at the stored bytes in the store's
 * map, valid in a read-only view until it ends (asked for from disk,
 * not yet read: see chunks.c). */
int sfs_chunk_peek(struct sfs_view *v, const uint8_t hash[32],
    const void **p, size_t *len);
/* Store bytes (1..SFS_CHUNK) by hash (rw view); hash_out gets the hash for
 * the caller to check. All-zero bytes are a hole and are not stored. A
 * chunk no file references by commit time is dropped then. */
int sfs_chunk_put(struct sfs_view *v, const void *bytes, size_t len,
    uint8_t hash_out[32]);
/* The same for bytes whose hash the caller has just computed from them
 * (sync checks every chunk against the hash it asked for; hashing them
 * again would only repeat that work; a hash that is not the bytes' own
 * corrupts the store), leaving the copy of a large chunk's bytes to the
 * caller: *later says what is still to copy (len 0: nothing), and
 * sfs_chunk_copy must copy it before any other call on the view. State
 * sync stores a response's chunks this way and hands them to the store's
 * second thread all at once (store.c, "Copying behind"). */
struct sfs_later {
	void *dst;
	const void *src;
	size_t len;
};
int sfs_chunk_put_later(struct sfs_view *v, const void *bytes, size_t len,
    const uint8_t hash[32], struct sfs_later *later);
int sfs_chunk_copy(struct sfs_view *v, const struct sfs_later *l, size_t n);
/* Tests: the second thread waits ms before each batch it writes. */
int sfs_test_slow_copies(struct sfs *s, unsigned ms);
/* Replace a regular file's content and mode bits (mode & 07777) with
 * chunks already stored; nchunks must be ceil(size/SFS_CHUNK), a zero
 * hash of the chunk's length is a hole. -ENOENT when a chunk is missing,
 * -EINVAL when one's length does not fit its place. */
int sfs_file_set(struct sfs_view *v, uint64_t ino, uint64_t size, mode_t mode,
    const uint8_t (*hashes)[32], uint64_t nchunks);
/* A directory's entries in name order, each with its node hash. */
typedef int (*sfs_hashed_fn)(void *arg, const char *name, mode_t mode,
    uint64_t size, const uint8_t hash[32]);
int sfs_dir_list_hashed(struct sfs_view *v, uint64_t ino, sfs_hashed_fn fn,
    void *arg);

/* Debug: recompute every hash and reference count of the committed state
 * from scratch and compare with the caches (0, or HP_EIO with a log line
 * saying what differs). Bytes fed to BLAKE3 since sfs_open. */
int sfs_verify(struct sfs *s);
uint64_t sfs_debug_hashed(struct sfs *s);

#endif
