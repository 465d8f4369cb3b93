/*
 * hpd-state — the state worker: it owns the statefs store (store.h) in
 * NODE/state and serves it on NODE/mnt over FUSE (fuse.h), with the
 * /dev/fuse descriptor the supervisor mounted and passed as the "fuse"
 * listener.
 *
 * Views: while a read-write session is open every FUSE request uses it;
 * otherwise a read-only view of the last commit serves them and writes
 * fail with EROFS. Sessions belong to the contract runner, which opens,
 * commits and aborts them with HP_MSG_STATE_SESSION around each run; test
 * builds may also open them by hand (hpctl state begin|commit|abort, only
 * with HPD_TEST_HOOKS=1). After each commit, and whenever the
 * channel to consensus comes up, the committed state and patch hashes go
 * to the consensus worker (HP_MSG_STATE_HASHES).
 *
 * A session that is open when the worker stops or dies is never
 * committed: the store comes back at its last commit.
 */
#include "channel.h"
#include "err.h"
#include "fuse.h"
#include "hash.h"
#include "log.h"
#include "mpack.h"
#include "proto.h"
#include "store.h"
#include "sync.h"
#include "worker.h"

#include <limits.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct {
	uv_loop_t *loop;
	struct sfs *store;
	struct sfs_view *rw;	/* the open session, or NULL */
	struct sfs_view *ro;	/* the committed state, when no session */
	uint8_t state[32], patch[32];
	uint64_t commits, aborts;
} st;

static void
hex8(const uint8_t *h, char out[9])
{
	char full[65];

	hp_hash_hex(h, 32, full);
	memcpy(out, full, 8);
	out[8] = '\0';
}

/* Serve the session if one is open, else a fresh read-only view. */
static int
switch_view(void)
{
	int r;

	if (st.ro != NULL) {
		sfs_end(st.ro);
		st.ro = NULL;
	}
	if (st.rw != NULL) {
		sfuse_set_view(st.rw);
		return 0;
	}
	if ((r = sfs_begin_ro(st.store, &st.ro)) != 0) {
		log_warnx("cannot open a read-only view of the state: %s",
		    hp_strerror(r));
		st.ro = NULL;
	}
	sfuse_set_view(st.ro);
	return r;
}

static void
send_hashes(void)
{
	struct hp_frame f;

	if (!hp_worker_sibling_up(HP_W_CONSENSUS))
		return;		/* sent again when the channel comes up */
	hp_frame_begin(&f, HP_MSG_STATE_HASHES, 0, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, st.state, 32);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, st.patch, 32);
	hp_worker_send(HP_W_CONSENSUS, &f, -1);
}

/* ---- sessions (the runner's, and test hooks) ---- */

static int
session_begin(char *msg, size_t msgsize)
{
	int r;

	if (st.rw != NULL) {
		snprintf(msg, msgsize, "a state session is already open");
		return 1;
	}
	if ((r = sfs_begin_rw(st.store, &st.rw)) != 0) {
		st.rw = NULL;
		snprintf(msg, msgsize, "cannot open a state session: %s",
		    hp_strerror(r));
		return 1;
	}
	switch_view();
	log_info("state session opened");
	snprintf(msg, msgsize, "state session open: %s/mnt/state is"
	    " writable", hp_worker_dir() != NULL ? hp_worker_dir() : "NODE");
	return 0;
}

static int
session_commit(char *msg, size_t msgsize)
{
	char s8[9], p8[9];
	int r;

	if (st.rw == NULL) {
		snprintf(msg, msgsize, "no state session is open");
		return 1;
	}
	r = sfs_commit(st.rw, st.state, st.patch);
	st.rw = NULL;
	if (r != 0) {
		sfs_hashes(st.store, st.state, st.patch);
		switch_view();
		sfuse_invalidate();	/* back at the last commit */
		log_warnx("state commit failed: %s; the state stays at the"
		    " last commit", hp_strerror(r));
		snprintf(msg, msgsize, "commit failed: %s; the state stays at"
		    " the last commit", hp_strerror(r));
		return 1;
	}
	st.commits++;
	switch_view();
	hex8(st.state, s8);
	hex8(st.patch, p8);
	log_info("state committed (state:%s patch:%s)", s8, p8);
	send_hashes();
	sync_local_commit();
	snprintf(msg, msgsize, "committed");
	return 0;
}

static int
session_abort(char *msg, size_t msgsize)
{
	if (st.rw == NULL) {
		snprintf(msg, msgsize, "no state session is open");
		return 1;
	}
	sfs_abort(st.rw);
	st.rw = NULL;
	st.aborts++;
	switch_view();
	sfuse_invalidate();	/* back at the last commit */
	log_info("state session aborted: back at the last commit");
	snprintf(msg, msgsize, "aborted: the state is back at the last commit");
	return 0;
}

/* ---- hpctl ---- */

static const char *
mount_state(void)
{
	struct sfuse_stats fs;

	sfuse_stats(&fs);
	if (fs.serving)
		return "mounted";
	if (fs.unmounted)
		return "unmounted by the kernel";
	if (hp_worker_dev())
		return "no mount: development mode";
	return "no mount yet: waiting for /dev/fuse from the supervisor";
}

static void
pack_hashes(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	hp_mpack_kv_hex(pk, "state_hash", st.state, 32);
	hp_mpack_kv_hex(pk, "patch_hash", st.patch, 32);
}

static void
pack_state(msgpack_packer *pk)
{
	struct sfs_view *v = st.rw != NULL ? st.rw : st.ro;
	struct sfs_statfs sf = { 0, 0, 0 };
	struct sfuse_stats fs;

	sfuse_stats(&fs);
	if (v != NULL)
		sfs_statfs(v, &sf);
	msgpack_pack_map(pk, 11);
	hp_mpack_kv_hex(pk, "state_hash", st.state, 32);
	hp_mpack_kv_hex(pk, "patch_hash", st.patch, 32);
	hp_mpack_kv_str(pk, "session", st.rw != NULL ? "open" : "none");
	hp_mpack_kv_str(pk, "mount", mount_state());
	hp_mpack_kv_u64(pk, "bytes", sf.bytes_used);
	hp_mpack_kv_u64(pk, "chunks", sf.chunks);
	hp_mpack_kv_u64(pk, "inodes", sf.inodes);
	hp_mpack_kv_u64(pk, "kernel_inodes", fs.kernel_inodes);
	hp_mpack_kv_u64(pk, "fuse_requests", fs.requests);
	hp_mpack_kv_u64(pk, "commits", st.commits);
	hp_mpack_kv_u64(pk, "aborts", st.aborts);
}

static int
show(int argc, char **argv, msgpack_packer *pk, char *msg, size_t msgsize)
{
	int code;

	if (argc == 1 && strcmp(argv[0], "state") == 0) {
		pack_state(pk);
		return 0;
	}
	if (argc == 1 && strcmp(argv[0], "sync") == 0) {
		sync_show(pk);
		return 0;
	}
	if (argc == 3 && strcmp(argv[0], "state") == 0 &&
	    strcmp(argv[1], "sync-corrupt") == 0) {
		if (!hp_worker_test_hooks()) {
			snprintf(msg, msgsize, "test hooks are off");
			return 1;
		}
		sync_test_corrupt(strcmp(argv[2], "on") == 0);
		msgpack_pack_map(pk, 1);
		hp_mpack_kv_str(pk, "sync_corrupt", strcmp(argv[2], "on") == 0 ?
		    "on" : "off");
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "state") == 0 &&
	    (strcmp(argv[1], "begin") == 0 || strcmp(argv[1], "commit") == 0 ||
	    strcmp(argv[1], "abort") == 0)) {
		if (!hp_worker_test_hooks()) {
			snprintf(msg, msgsize, "state sessions are opened by the"
			    " contract runner; test hooks are off");
			return 1;
		}
		if (strcmp(argv[1], "begin") == 0)
			code = session_begin(msg, msgsize);
		else if (strcmp(argv[1], "commit") == 0)
			code = session_commit(msg, msgsize);
		else
			code = session_abort(msg, msgsize);
		if (code == 0)
			pack_hashes(pk);
		return code;
	}
	snprintf(msg, msgsize, "the state worker answers: show state, show"
	    " sync, state begin|commit|abort");
	return 100;
}

/* ---- life ---- */

static int
pre_sandbox(const char *dir)
{
	char path[PATH_MAX];
	int r;

	if (hp_worker_store() != NULL)
		snprintf(path, sizeof(path), "%s", hp_worker_store());
	else if (dir != NULL)
		snprintf(path, sizeof(path), "%s/state", dir);
	else
		return -1;
	if ((r = sfs_open(path, &st.store)) != 0) {
		log_errx("cannot open the state store in %s: %s", path,
		    hp_strerror(r));
		return -1;
	}
	if ((r = sfs_hashes(st.store, st.state, st.patch)) != 0) {
		log_errx("cannot read the committed state hashes: %s",
		    hp_strerror(r));
		return -1;
	}
	return sfuse_prepare(st.store) == 0 ? 0 : -1;
}

static void sync_committed(const uint8_t state[32], const uint8_t patch[32]);

static int
init(uv_loop_t *loop, const struct hp_config *cfg)
{
	char s8[9], p8[9];

	st.loop = loop;
	if (switch_view() != 0)
		return -1;
	sync_init(loop, st.store, sync_committed);
	hex8(st.state, s8);
	hex8(st.patch, p8);
	log_info("state store open (state:%s patch:%s)%s", s8, p8,
	    hp_worker_dev() ? "; development mode: statefs is not mounted" :
	    "");
	return 0;
}

static void
listener(const char *name, int fd)
{
	if (strcmp(name, "fuse") != 0) {
		log_warnx("unexpected %s listener; closed", name);
		close(fd);
		return;
	}
	sfuse_start(st.loop, fd);
}

/* A sync commit: serve it and vote it, as after a session commit. */
static void
sync_committed(const uint8_t state[32], const uint8_t patch[32])
{
	memcpy(st.state, state, 32);
	memcpy(st.patch, patch, 32);
	st.commits++;
	switch_view();
	sfuse_invalidate();	/* changed behind the kernel's back */
	send_hashes();
}

/* The runner's HP_MSG_STATE_SESSION: do it and answer with the roots. */
static void
runner_session(struct hp_msg *m)
{
	char msg[256] = "";
	struct hp_frame f;
	uint64_t op = 0;
	int code;

	if (hp_mpack_u64(m->body, 1, &op) != 0)
		op = 0;
	if (op == HP_SESSION_BEGIN)
		code = session_begin(msg, sizeof(msg));
	else if (op == HP_SESSION_COMMIT)
		code = session_commit(msg, sizeof(msg));
	else if (op == HP_SESSION_ABORT)
		code = session_abort(msg, sizeof(msg));
	else {
		code = 1;
		snprintf(msg, sizeof(msg), "unknown session operation %llu",
		    (unsigned long long)op);
	}
	hp_frame_begin(&f, HP_MSG_STATE_SESSION_RES, m->id, 0);
	msgpack_pack_map(&f.pk, code == 0 ? 3 : 4);
	msgpack_pack_uint32(&f.pk, 1);
	if (code == 0)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, st.state, 32);
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, st.patch, 32);
	if (code != 0) {
		msgpack_pack_uint32(&f.pk, 4);
		hp_mpack_pack_cstr(&f.pk, msg);
	}
	hp_worker_send(HP_W_RUNNER, &f, -1);
}

/* The runner went away: a session it left open is never committed. */
static void
sibling_down(int id)
{
	char msg[128];

	if (id == HP_W_RUNNER && st.rw != NULL && session_abort(msg,
	    sizeof(msg)) == 0)
		log_info("runner gone with a state session open: aborted");
}

static void
sibling_msg(int from, struct hp_msg *m)
{
	if (from == HP_W_RUNNER && m->type == HP_MSG_STATE_SESSION)
		runner_session(m);
	else if (from == HP_W_CONSENSUS && m->type == HP_MSG_STATE_SYNC_TARGET)
		sync_on_target(m->body);
	else if (from == HP_W_PEER && m->type == HP_MSG_PEER_RECV)
		sync_on_peer(m->body);
}

static void
sibling_up(int id)
{
	if (id == HP_W_CONSENSUS)
		send_hashes();
}

static void
shutdown_cb(void)
{
	sync_stop();
	sfuse_stop();
	if (st.rw != NULL) {
		log_info("state session open at shutdown: discarded");
		sfs_abort(st.rw);
		st.rw = NULL;
	}
	if (st.ro != NULL) {
		sfs_end(st.ro);
		st.ro = NULL;
	}
	if (st.store != NULL) {
		sfs_close(st.store);
		st.store = NULL;
	}
}

/* LMDB: positioned I/O, durability, map growth; blocks given to the
 * data file ahead of the map's writes (store.c, room_to). libfuse: the
 * reserved descriptor is replaced with dup3. */
static const int state_syscalls[] = {
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(pwritev),
	SCMP_SYS(fdatasync), SCMP_SYS(fsync), SCMP_SYS(msync),
	SCMP_SYS(ftruncate), SCMP_SYS(fallocate), SCMP_SYS(flock),
	SCMP_SYS(sync_file_range), SCMP_SYS(fadvise64),
	SCMP_SYS(mincore),
	SCMP_SYS(dup3),
};

static const struct hp_worker_role role = {
	.name = "state",
	.syscalls = state_syscalls,
	.nsyscalls = sizeof(state_syscalls) / sizeof(state_syscalls[0]),
	.pre_sandbox = pre_sandbox,
	.init = init,
	.sibling_msg = sibling_msg,
	.sibling_up = sibling_up,
	.sibling_down = sibling_down,
	.listener = listener,
	.show = show,
	.shutdown = shutdown_cb,
};

int
main(int argc, char **argv)
{
	hp_worker_run(argc, argv, &role);
}
