/*
 * sync.h — state sync: the state worker fetches the cluster's state from
 * peers when consensus says its own differs, and serves its committed
 * state to peers that do the same. Protocol and design: docs/state-sync.md.
 *
 * Everything runs on the state worker's libuv loop. While a sync runs it
 * holds the store's read-write session (other sessions get HP_EBUSY) and
 * commits every SYNC_CKPT_BYTES or SYNC_CKPT_MS, and once more when the
 * target is reached; each commit is reported through the committed
 * callback so that the worker can switch its FUSE view and tell
 * consensus the new hashes. A sync waits while someone else holds the
 * session.
 *
 * Ownership: the caller keeps the store and the loop; sync_stop() frees
 * what sync holds (an open sync session is aborted: the store comes back
 * at its last commit). Messages passed in are borrowed for the call.
 */
#ifndef HP_STATE_SYNC_H
#define HP_STATE_SYNC_H

#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

struct sfs;

typedef void (*sync_committed_fn)(const uint8_t state[32],
    const uint8_t patch[32]);

int sync_init(uv_loop_t *loop, struct sfs *store, sync_committed_fn committed);
/* HP_MSG_STATE_SYNC_TARGET from consensus. */
void sync_on_target(const msgpack_object *body);
/* HP_MSG_PEER_RECV from the peer worker (HP_PT_STATE_REQ / _RES). */
void sync_on_peer(const msgpack_object *body);
/* Someone else committed (a contract run, a test session): if the store
 * now holds the target, a waiting sync has nothing left to do. */
void sync_local_commit(void);
/* hpctl show sync. */
void sync_show(msgpack_packer *pk);
/* Test hook: make this node's answers carry corrupted chunk bytes. */
void sync_test_corrupt(int on);
void sync_stop(void);

#endif
