/*
 * fuse.h — statefs served to the kernel over FUSE (libfuse3 low-level
 * API), single-threaded on the state worker's libuv loop.
 *
 * The supervisor opens /dev/fuse and mounts NODE/mnt; the worker never
 * mounts anything. Because the worker's seccomp filter forbids open(2),
 * the libfuse session is created before the sandbox and bound to a
 * reserved descriptor (a /dev/null placeholder); the supervisor's
 * /dev/fuse descriptor, when it arrives, is dup3'ed onto that number.
 *
 * Every request is served from one view (store.h), chosen by the caller
 * with sfuse_set_view(): the read-write session while one is open, else a
 * read-only view of the committed state. The kernel keeps names (1 s,
 * from FUSE 7.44 on; never before), attributes (1 s) and page caches
 * (across opens). Writes
 * through the mount keep them right; whenever the content changes by any
 * other way (an aborted session, a failed commit, a sync commit) the
 * caller calls sfuse_invalidate() after sfuse_set_view(): attributes and
 * cached names (present or absent) are dropped at once, and each file's
 * page cache at its next open (as before, a descriptor already open may
 * keep reading what it cached).
 *
 * Ownership: the caller keeps struct sfs and the views; sfuse_set_view()
 * only borrows the view until the next call.
 */
#ifndef HP_STATE_FUSE_H
#define HP_STATE_FUSE_H

#include <stdint.h>

#include <uv.h>

struct sfs;
struct sfs_view;

/* Before the sandbox. 0 or HP_EIO. */
int sfuse_prepare(struct sfs *s);
/* The mounted /dev/fuse descriptor from the supervisor; takes ownership
 * of fd. 0, HP_EEXIST (already serving) or HP_EIO. */
int sfuse_start(uv_loop_t *loop, int fd);
void sfuse_set_view(struct sfs_view *v);
/* The content changed behind the kernel's back: drop what it cached. */
void sfuse_invalidate(void);
/* Stop serving (shutdown); the supervisor unmounts. */
void sfuse_stop(void);

struct sfuse_stats {
	int serving;		/* a mount is being served */
	int unmounted;		/* the kernel ended the connection */
	uint64_t requests;	/* FUSE requests processed */
	uint64_t kernel_inodes;	/* inodes with a lookup count > 0 */
};
void sfuse_stats(struct sfuse_stats *out);

#endif
