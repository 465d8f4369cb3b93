/*
 * hpd-consensus — the consensus worker: it holds the node's signing key,
 * runs the round state machine (round.h) on a libuv timer, exchanges
 * proposals with other nodes through the peer worker, keeps the ledger
 * (ledger_store.h) and syncs missing ledgers from peers.
 *
 * Everything that arrives from the network is checked here before the
 * state machine sees it: the payload decodes within its limits, the
 * sender key is in the UNL and the signature verifies. Ledgers received
 * during sync are appended only when their hash chain and a quorum of UNL
 * signatures verify.
 */
#include "channel.h"
#include "cons.h"
#include "err.h"
#include "hash.h"
#include "keys.h"
#include "ledger.h"
#include "ledger_store.h"
#include "log.h"
#include "mpack.h"
#include "proposal.h"
#include "proto.h"
#include "round.h"
#include "userio.h"
#include "worker.h"

#include <limits.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>

#define SYNC_BATCH 128		/* ledgers per sync response */
#define SYNC_TIMEOUT_MS 3000
#define SHARD_LEDGERS 262144ULL	/* HotPocket's primary shard size */

static struct {
	uv_loop_t *loop;
	const struct hp_config *cfg;
	struct ledger_store *store;
	struct round *round;
	uv_timer_t timer;
	uint8_t *unl;		/* sorted 32-byte keys */
	uint32_t unl_n;
	uint8_t connected[HP_LEDGER_MAX_SIGS][HP_PK_BYTES];
	uint32_t nconnected;
	/* ledger sync in progress */
	int syncing;
	uint64_t sync_target;
	uint8_t sync_target_hash[HP_HASH_BYTES];
	uint8_t sync_from[8][HP_PK_BYTES];
	uint32_t sync_nfrom, sync_try;
	uint64_t sync_started;
	uint64_t ledgers_synced;
	/* counters shown by hpctl show consensus */
	uint64_t props_in, props_bad, props_not_unl, props_sent;
	uint64_t props_stale, props_replayed;
	uint64_t saved_lock_round;
	uint8_t saved_lock_hash[HP_HASH_BYTES];
	uint64_t ledgers_closed;
	uint64_t started_ms;
	/* the state worker's last committed hashes, since when (wall ms),
	 * and whether it was last told to sync */
	uint8_t state_hash[32], patch_hash[32];
	uint64_t hashes_at;
	int state_syncing;
	/* UNL liveness as last told to the supervisor, and when it was
	 * last logged as too low */
	uint32_t live_sent, quorum_sent;
	int live_known;
	uint64_t live_warned;
	/* the round is held while the contract runs over the lcl */
	int run_hold;
	uint64_t run_hold_seq, run_hold_since;
	uint64_t run_waits, run_wait_timeouts;
	/* the patch hash known to match hp.cfg (HP_MSG_PATCH_STATUS) */
	uint8_t patch_ok[32];
	int patch_ok_known;
	/* round start → durable, for the last LAT_N ledgers closed here */
	uint32_t lat[1024];
	uint32_t nlat;
} cs;

#define LAT_N 1024

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
in_unl(const uint8_t pk[HP_PK_BYTES])
{
	for (uint32_t i = 0; i < cs.unl_n; i++)
		if (memcmp(cs.unl + (size_t)i * HP_PK_BYTES, pk, HP_PK_BYTES) == 0)
			return 1;
	return 0;
}

static int
sign_cb(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[HP_SIG_BYTES])
{
	return hp_sign(&cs.cfg->node.keys, msg, len, sig);
}

/* ---- cons.h ---- */

const struct hp_config *
cons_cfg(void)
{
	return cs.cfg;
}

uv_loop_t *
cons_loop(void)
{
	return cs.loop;
}

struct round *
cons_round(void)
{
	return cs.round;
}

struct ledger_store *
cons_store(void)
{
	return cs.store;
}

const uint8_t *
cons_unl(uint32_t *n)
{
	*n = cs.unl_n;
	return cs.unl;
}

int
cons_in_unl(const uint8_t pk[32])
{
	return in_unl(pk);
}

int
cons_vote(void)
{
	struct round_status st;

	round_status(cs.round, &st);
	return (int)st.vote;
}

uint64_t
cons_active_on(const uint8_t pk[32])
{
	struct round_status st;

	round_status(cs.round, &st);
	for (uint32_t j = 0; j < st.unl_n; j++)
		if (memcmp(st.members[j].pubkey, pk, HP_PK_BYTES) == 0)
			return st.members[j].last_time;
	return 0;
}

uint32_t
cons_npeers(void)
{
	return cs.nconnected;
}

/* ---- talking to the peer worker ---- */

int
cons_peer_send(uint32_t ptype, const uint8_t *payload, size_t len, int unl_only,
    const uint8_t *to)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_PEER_SEND, 0, 0);
	msgpack_pack_map(&f.pk, to != NULL ? 4 : 3);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, ptype);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, len);
	msgpack_pack_bin_body(&f.pk, payload, len);
	msgpack_pack_uint32(&f.pk, 3);
	if (unl_only)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	if (to != NULL) {
		msgpack_pack_uint32(&f.pk, 4);
		msgpack_pack_bin(&f.pk, HP_PK_BYTES);
		msgpack_pack_bin_body(&f.pk, to, HP_PK_BYTES);
	}
	return hp_worker_send(HP_W_PEER, &f, -1);
}

static void
send_unl(void)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_PEER_UNL, 0, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_array(&f.pk, cs.unl_n);
	for (uint32_t i = 0; i < cs.unl_n; i++) {
		msgpack_pack_bin(&f.pk, HP_PK_BYTES);
		msgpack_pack_bin_body(&f.pk, cs.unl + (size_t)i * HP_PK_BYTES,
		    HP_PK_BYTES);
	}
	msgpack_pack_uint32(&f.pk, 2);
	if (cs.cfg->contract.consensus.mode == HP_MODE_PUBLIC)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	hp_worker_send(HP_W_PEER, &f, -1);
}

static void
send_known_peers(void)
{
	char buf[65536];
	size_t len = 0;
	struct hp_frame f;

	/* Stored by the peer worker as a msgpack array of strings. */
	if (ledger_store_meta_get(cs.store, "known_peers", buf, sizeof(buf),
	    &len) != 0 || len == 0)
		return;
	if (hp_mpack_check((const uint8_t *)buf, len) != 0)
		return;
	hp_frame_begin(&f, HP_MSG_PEER_KNOWN_LOAD, 0, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_sbuffer_write(&f.sb, buf, len);
	hp_worker_send(HP_W_PEER, &f, -1);
}

/* ---- the round ---- */

static void handle_out(struct round_out *out);
static void arm_timer(void);
static void check_hold(void);

static void
log_ledger(const struct hp_ledger *l, const char *how)
{
	char id[48], st[9], pt[9];

	hp_ledger_id(l, id, sizeof(id));
	hp_hash_hex(l->state_hash, 4, st);
	hp_hash_hex(l->patch_hash, 4, pt);
	if (how == NULL)
		log_info("****Ledger created**** (lcl:%s state:%s patch:%s)",
		    id, st, pt);
	else
		log_info("ledger %s %s (state:%s patch:%s)", id, how, st, pt);
}

static void
prune_history(void)
{
	const struct hp_config *c = cs.cfg;

	if (c->node.history == HP_HISTORY_FULL)
		return;
	ledger_store_prune(cs.store, c->node.max_primary_shards * SHARD_LEDGERS);
}

/*
 * After each stored ledger: when it carries a patch hash that our state
 * holds too and that is not known to match hp.cfg, the supervisor checks
 * the file and applies it (supervisor/patch.c). Asked again with each
 * ledger until it answers that the file matches.
 */
static void
check_patch(const struct hp_ledger *l)
{
	struct hp_frame f;

	if (l->seq == 0 || cs.hashes_at == 0 || (cs.patch_ok_known &&
	    memcmp(l->patch_hash, cs.patch_ok, 32) == 0) ||
	    memcmp(l->patch_hash, cs.patch_hash, 32) != 0)
		return;
	hp_frame_begin(&f, HP_MSG_PATCH_CHECK, 0, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, l->patch_hash, 32);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_uint64(&f.pk, l->seq);
	hp_worker_send_sup(&f, -1);
}

static void
sup_msg(struct hp_msg *m)
{
	const msgpack_object *h = hp_mpack_get(m->body, 1);
	uint64_t st = 0;

	if (m->type != HP_MSG_PATCH_STATUS || h == NULL ||
	    h->type != MSGPACK_OBJECT_BIN || h->via.bin.size != 32 ||
	    hp_mpack_u64(m->body, 2, &st) != 0)
		return;
	if (st == PATCH_MATCHES || st == PATCH_APPLIED) {
		memcpy(cs.patch_ok, h->via.bin.ptr, 32);
		cs.patch_ok_known = 1;
	}
}

/*
 * After each stored ledger: if the cluster's state or patch hash differs
 * from the state worker's, tell it to sync (docs/state-sync.md), with the
 * UNL peers connected now; once they agree again, say so once. A ledger
 * whose round began before the worker's last commit says nothing about
 * that commit, so it is not compared.
 */
static void
check_state(const struct hp_ledger *l)
{
	int differs = memcmp(l->state_hash, cs.state_hash, 32) != 0 ||
	    memcmp(l->patch_hash, cs.patch_hash, 32) != 0;
	const uint8_t *s = differs ? l->state_hash : cs.state_hash;
	const uint8_t *p = differs ? l->patch_hash : cs.patch_hash;
	struct hp_frame f;
	uint32_t n = 0;

	if (l->time < cs.hashes_at || (!differs && !cs.state_syncing) ||
	    !hp_worker_sibling_up(HP_W_STATE))
		return;
	for (uint32_t i = 0; i < cs.nconnected; i++)
		n += in_unl(cs.connected[i]);
	hp_frame_begin(&f, HP_MSG_STATE_SYNC_TARGET, 0, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, s, 32);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, p, 32);
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_array(&f.pk, n);
	for (uint32_t i = 0; i < cs.nconnected; i++) {
		if (!in_unl(cs.connected[i]))
			continue;
		msgpack_pack_bin(&f.pk, HP_PK_BYTES);
		msgpack_pack_bin_body(&f.pk, cs.connected[i], HP_PK_BYTES);
	}
	if (hp_worker_send(HP_W_STATE, &f, -1) == 0)
		cs.state_syncing = differs;
}

static void
store_closed(const struct round_out *out)
{
	const struct hp_ledger *l = &out->ledger;
	struct ledger_raw raw[2];
	size_t nraw = userio_raw(l, &out->users, &out->inputs, raw);
	int r = ledger_store_append_raw(cs.store, l, raw, nraw);

	if (r != 0)
		fatalx("cannot store ledger %llu: %s",
		    (unsigned long long)l->seq, hp_strerror(r));
	cs.ledgers_closed++;
	uint64_t now = wall_ms();
	cs.lat[cs.nlat++ % LAT_N] = now > l->time ? (uint32_t)(now - l->time) : 0;
	log_ledger(l, NULL);
	if (l->seq % 1024 == 0)
		prune_history();
	check_state(l);
	check_patch(l);
	if (userio_closed(l, &out->users, &out->inputs)) {
		/* The next proposal waits for the run's state hash and
		 * output root (DESIGN §5: a slow contract slows rounds). */
		cs.run_hold = 1;
		cs.run_hold_seq = l->seq;
		cs.run_hold_since = uv_now(cs.loop);
		cs.run_waits++;
		round_hold(cs.round, 1);
	}
}

static void
request_ledgers(void)
{
	struct hp_ledger last;
	uint8_t req[64];
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (cs.sync_nfrom == 0 || ledger_store_last(cs.store, &last) != 0)
		return;
	const uint8_t *from = cs.sync_from[cs.sync_try++ % cs.sync_nfrom];
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_uint64(&pk, last.seq + 1);
	msgpack_pack_uint32(&pk, 2);
	msgpack_pack_uint64(&pk, cs.sync_target);
	if (sb.size <= sizeof(req))
		cons_peer_send(HP_PT_LEDGER_REQ, (const uint8_t *)sb.data, sb.size, 0,
		    from);
	msgpack_sbuffer_destroy(&sb);
	cs.sync_started = uv_now(cs.loop);
}

static void
start_sync(const struct round_out *out)
{
	if (cs.syncing && cs.sync_target >= out->sync_seq)
		return;
	cs.syncing = 1;
	cs.sync_target = out->sync_seq;
	memcpy(cs.sync_target_hash, out->sync_hash, HP_HASH_BYTES);
	cs.sync_nfrom = out->sync_nfrom > 8 ? 8 : out->sync_nfrom;
	memcpy(cs.sync_from, out->sync_from, (size_t)cs.sync_nfrom * HP_PK_BYTES);
	cs.sync_try = 0;
	log_info("behind the cluster: syncing ledgers up to %llu from peers",
	    (unsigned long long)cs.sync_target);
	request_ledgers();
}

/*
 * Make the round's lock durable before anything of this event is sent
 * (round.h): "lock" = lock_round (u64) followed by the packed content.
 */
static void
persist_lock(void)
{
	struct hp_proposal lk;
	uint64_t lr = 0;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (!round_lock_export(cs.round, &lk, &lr))
		return;
	if (lr == cs.saved_lock_round &&
	    memcmp(lk.ledger_hash, cs.saved_lock_hash, HP_HASH_BYTES) == 0) {
		hp_proposal_free(&lk);
		return;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_sbuffer_write(&sb, (const char *)&lr, sizeof(lr));
	hp_proposal_pack(&pk, &lk);
	if (ledger_store_meta_put(cs.store, "lock", sb.data, sb.size) != 0)
		fatalx("cannot make the consensus lock durable");
	cs.saved_lock_round = lr;
	memcpy(cs.saved_lock_hash, lk.ledger_hash, HP_HASH_BYTES);
	msgpack_sbuffer_destroy(&sb);
	hp_proposal_free(&lk);
}

static void
restore_lock(void)
{
	static uint8_t buf[1 << 20];
	struct hp_proposal lk;
	size_t len = 0;
	uint64_t lr;

	if (ledger_store_meta_get(cs.store, "lock", buf, sizeof(buf), &len) != 0 ||
	    len <= sizeof(lr))
		return;
	memcpy(&lr, buf, sizeof(lr));
	if (hp_proposal_unpack(buf + sizeof(lr), len - sizeof(lr), &lk) != 0)
		return;
	round_lock_import(cs.round, &lk, lr);
	cs.saved_lock_round = lr;
	memcpy(cs.saved_lock_hash, lk.ledger_hash, HP_HASH_BYTES);
	hp_proposal_free(&lk);
}

static void
handle_out(struct round_out *out)
{
	if (out->nprops > 0)
		persist_lock();
	for (size_t i = 0; i < out->nprops; i++) {
		struct hp_proposal *p = out->props[i];
		msgpack_sbuffer sb;
		msgpack_packer pk;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		hp_proposal_pack(&pk, p);
		cons_peer_send(HP_PT_PROPOSAL, (const uint8_t *)sb.data, sb.size,
		    cs.cfg->contract.consensus.mode == HP_MODE_PRIVATE, NULL);
		cs.props_sent++;
		msgpack_sbuffer_destroy(&sb);
	}
	/* The round counts its own proposals; they are not fed back. */
	if (out->store)
		store_closed(out);
	if (out->sync)
		start_sync(out);
}

/*
 * UNL members live now: this node if it is one, and each member whose
 * newest proposal is for a round at most 3 roundtimes old. When fewer are
 * live than a ledger needs, no ledger can close: say so (every 30 s in
 * the log, and in hpctl status through the supervisor).
 */
static void
check_liveness(void)
{
	struct round_status st;
	uint64_t now = wall_ms(), rt = cs.cfg->contract.consensus.roundtime;
	uint32_t live = 0, q = hp_close_quorum(
	    (uint32_t)cs.cfg->contract.consensus.threshold, cs.unl_n);
	struct hp_frame f;

	round_status(cs.round, &st);
	for (uint32_t i = 0; i < cs.unl_n; i++) {
		const uint8_t *k = cs.unl + (size_t)i * HP_PK_BYTES;
		if (memcmp(k, cs.cfg->node.keys.pk, HP_PK_BYTES) == 0) {
			live++;
			continue;
		}
		for (uint32_t j = 0; j < st.unl_n; j++)
			if (memcmp(st.members[j].pubkey, k, HP_PK_BYTES) == 0 &&
			    st.members[j].last_time + 3 * rt + 1000 >= now)
				live++;
	}
	if (live < q && uv_now(cs.loop) - cs.started_ms > 3 * rt + 2000 &&
	    (cs.live_warned == 0 || uv_now(cs.loop) - cs.live_warned >= 30000)) {
		cs.live_warned = uv_now(cs.loop);
		log_warnx("only %u of the %u UNL members are live and a ledger"
		    " needs %u votes: no ledger can close until more of them"
		    " come online (hpctl show consensus lists each member)",
		    live, cs.unl_n, q);
	}
	if (cs.live_known && live == cs.live_sent && q == cs.quorum_sent)
		return;
	hp_frame_begin(&f, HP_MSG_CONS_HEALTH, 0, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, live);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_uint64(&f.pk, cs.unl_n);
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_uint64(&f.pk, q);
	if (hp_worker_send_sup(&f, -1) == 0) {
		cs.live_known = 1;
		cs.live_sent = live;
		cs.quorum_sent = q;
	}
}

static void
timer_cb(uv_timer_t *t)
{
	struct round_out out;

	memset(&out, 0, sizeof(out));
	round_tick(cs.round, wall_ms(), &out);
	handle_out(&out);
	round_out_free(&out);
	userio_status();
	check_liveness();
	check_hold();
	if (cs.syncing && uv_now(cs.loop) - cs.sync_started > SYNC_TIMEOUT_MS)
		request_ledgers();	/* next peer */
	arm_timer();
}

static void
arm_timer(void)
{
	uint64_t now = wall_ms(), at = round_deadline(cs.round);
	uint64_t delay = at > now ? at - now : 0;

	if (delay > 1000)
		delay = 1000;
	/* Held: nothing is due until the run reports (or its budget ends). */
	if (cs.run_hold && delay < 50)
		delay = 50;
	uv_timer_start(&cs.timer, timer_cb, delay, 0);
}

/* ---- messages from peers ---- */

/* Tell the peer worker why a payload from `from` was dropped. */
static void
report_as(const uint8_t from[HP_PK_BYTES], enum hp_peer_report why,
    const uint8_t *signer)
{
	struct hp_frame f;
	int origin = signer != NULL && memcmp(signer, from, HP_PK_BYTES) == 0;

	hp_frame_begin(&f, HP_MSG_PEER_REPORT, 0, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_bin(&f.pk, HP_PK_BYTES);
	msgpack_pack_bin_body(&f.pk, from, HP_PK_BYTES);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, why);
	msgpack_pack_uint32(&f.pk, 3);
	if (origin)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	hp_worker_send(HP_W_PEER, &f, -1);
}

/* Malformed payloads have no known signer: counted, nobody charged. */
static void
report(const uint8_t from[HP_PK_BYTES], enum hp_peer_report why)
{
	report_as(from, why, NULL);
}

/* Proposal hashes already processed: a replay is dropped and reported. */
#define SEEN_N 4096
static uint8_t seen[SEEN_N][16];
static uint32_t seen_next;

static int
seen_before(const uint8_t h[HP_HASH_BYTES])
{
	for (uint32_t i = 0; i < SEEN_N; i++)
		if (memcmp(seen[i], h, 16) == 0)
			return 1;
	memcpy(seen[seen_next++ % SEEN_N], h, 16);
	return 0;
}

static void
on_proposal(const uint8_t from[HP_PK_BYTES], const uint8_t *payload,
    size_t len)
{
	struct hp_proposal p;
	uint8_t h[HP_HASH_BYTES];
	struct round_out out;
	uint64_t now = wall_ms(), rt = cs.cfg->contract.consensus.roundtime;

	cs.props_in++;
	if (hp_proposal_unpack(payload, len, &p) != 0) {
		cs.props_bad++;
		report(from, HP_REPORT_MALFORMED);
		return;
	}
	if (!in_unl(p.pubkey)) {
		cs.props_not_unl++;
		report_as(from, HP_REPORT_NOT_UNL, p.pubkey);
		hp_proposal_free(&p);
		return;
	}
	hp_proposal_hash(&p, h);
	if (hp_verify(p.pubkey, h, sizeof(h), p.sig) != 0) {
		cs.props_bad++;
		report_as(from, HP_REPORT_BAD_SIG, p.pubkey);
		hp_proposal_free(&p);
		return;
	}
	/* HotPocket's age rule: nothing older than 3 rounds. */
	if (p.round + 3 * rt < now || p.round > now + rt) {
		cs.props_stale++;
		report_as(from, HP_REPORT_STALE, p.pubkey);
		hp_proposal_free(&p);
		return;
	}
	if (seen_before(h)) {
		cs.props_replayed++;
		report_as(from, HP_REPORT_REPLAY, p.pubkey);
		hp_proposal_free(&p);
		return;
	}
	if (p.stage == 4) {
		uint8_t msg[sizeof(HP_LEDGER_SIG_DOMAIN) - 1 + HP_HASH_BYTES];
		hp_ledger_sig_msg(p.ledger_hash, msg);
		if (hp_verify(p.pubkey, msg, sizeof(msg), p.ledger_sig) != 0) {
			cs.props_bad++;
			report_as(from, HP_REPORT_BAD_SIG, p.pubkey);
			hp_proposal_free(&p);
			return;
		}
	}
	memset(&out, 0, sizeof(out));
	round_proposal(cs.round, wall_ms(), &p, &out);
	hp_proposal_free(&p);
	handle_out(&out);
	round_out_free(&out);
	arm_timer();
}

static void
on_ledger_req(const uint8_t from[HP_PK_BYTES], const uint8_t *payload,
    size_t len)
{
	msgpack_unpacked res;
	uint64_t first = 0, last = 0;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct hp_ledger l;
	uint32_t n = 0;

	if (hp_mpack_unpack(payload, len, &res) != 0)
		return;
	if (hp_mpack_u64(&res.data, 1, &first) != 0 ||
	    hp_mpack_u64(&res.data, 2, &last) != 0 || first == 0 ||
	    last < first) {
		msgpack_unpacked_destroy(&res);
		return;
	}
	msgpack_unpacked_destroy(&res);
	if (last - first + 1 > SYNC_BATCH)
		last = first + SYNC_BATCH - 1;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (uint64_t s = first; s <= last; s++)
		if (ledger_store_get(cs.store, s, &l) == 0)
			n++;
		else
			break;
	msgpack_pack_array(&pk, n);
	for (uint64_t s = first; s < first + n; s++)
		if (ledger_store_get(cs.store, s, &l) == 0)
			hp_ledger_pack(&pk, &l);
	if (n > 0)
		cons_peer_send(HP_PT_LEDGER_RES, (const uint8_t *)sb.data, sb.size, 0,
		    from);
	msgpack_sbuffer_destroy(&sb);
}

static void
on_ledger_res(const uint8_t from[HP_PK_BYTES], const uint8_t *payload,
    size_t len)
{
	msgpack_unpacked res;
	struct hp_ledger last, *l;
	uint32_t added = 0;

	if (!cs.syncing || hp_mpack_unpack(payload, len, &res) != 0)
		return;
	if (res.data.type != MSGPACK_OBJECT_ARRAY ||
	    (l = malloc(sizeof(*l))) == NULL) {
		msgpack_unpacked_destroy(&res);
		return;
	}
	ledger_store_last(cs.store, &last);
	for (uint32_t i = 0; i < res.data.via.array.size; i++) {
		if (hp_ledger_unpack(&res.data.via.array.ptr[i], l) != 0)
			break;
		if (l->seq <= last.seq)
			continue;
		if (hp_ledger_verify(l, last.seq, last.hash, cs.unl, cs.unl_n,
		    (uint32_t)cs.cfg->contract.consensus.threshold) != 0) {
			char hex[9];
			hp_hash_hex(from, 4, hex);
			log_warnx("ledger %llu from peer %s does not verify;"
			    " dropped", (unsigned long long)l->seq, hex);
			break;
		}
		if (ledger_store_append(cs.store, l) != 0)
			break;
		log_ledger(l, "synced");
		cs.ledgers_synced++;
		last = *l;
		added++;
	}
	if (added > 0) {
		check_state(&last);
		check_patch(&last);
		userio_status();
	}
	msgpack_unpacked_destroy(&res);
	free(l);
	if (added == 0)
		return;
	if (last.seq >= cs.sync_target) {
		struct round_out out;
		cs.syncing = 0;
		log_info("ledger sync complete at %llu",
		    (unsigned long long)last.seq);
		memset(&out, 0, sizeof(out));
		round_synced(cs.round, wall_ms(), &last, &out);
		handle_out(&out);
		round_out_free(&out);
		arm_timer();
	} else
		request_ledgers();
}

static void
peer_msg(struct hp_msg *m)
{
	const msgpack_object *from, *payload;
	uint64_t ptype = 0;

	switch (m->type) {
	case HP_MSG_PEER_SIGN_REQ: {
		const msgpack_object *spki = hp_mpack_get(m->body, 1);
		const char *id = cs.cfg->contract.id;
		size_t dl = sizeof(HP_PEER_TLS_DOMAIN) - 1, il = strlen(id);
		uint8_t sig[HP_SIG_BYTES], *msg;
		struct hp_frame f;

		if (spki == NULL || spki->type != MSGPACK_OBJECT_BIN ||
		    spki->via.bin.size == 0 || spki->via.bin.size > 1024)
			return;
		if ((msg = malloc(dl + il + spki->via.bin.size)) == NULL)
			return;
		memcpy(msg, HP_PEER_TLS_DOMAIN, dl);
		memcpy(msg + dl, id, il);
		memcpy(msg + dl + il, spki->via.bin.ptr, spki->via.bin.size);
		hp_sign(&cs.cfg->node.keys, msg, dl + il + spki->via.bin.size,
		    sig);
		free(msg);
		hp_frame_begin(&f, HP_MSG_PEER_SIGN_RES, 0, 0);
		msgpack_pack_map(&f.pk, 1);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_bin(&f.pk, sizeof(sig));
		msgpack_pack_bin_body(&f.pk, sig, sizeof(sig));
		hp_worker_send(HP_W_PEER, &f, -1);
		log_debug("signed the peer worker's TLS identity");
		return;
	}
	case HP_MSG_PEER_RECV:
		from = hp_mpack_get(m->body, 1);
		payload = hp_mpack_get(m->body, 3);
		if (from == NULL || from->type != MSGPACK_OBJECT_BIN ||
		    from->via.bin.size != HP_PK_BYTES || payload == NULL ||
		    payload->type != MSGPACK_OBJECT_BIN ||
		    hp_mpack_u64(m->body, 2, &ptype) != 0)
			return;
		if (ptype == HP_PT_PROPOSAL)
			on_proposal((const uint8_t *)from->via.bin.ptr,
			    (const uint8_t *)payload->via.bin.ptr,
			    payload->via.bin.size);
		else if (ptype == HP_PT_LEDGER_REQ)
			on_ledger_req((const uint8_t *)from->via.bin.ptr,
			    (const uint8_t *)payload->via.bin.ptr,
			    payload->via.bin.size);
		else if (ptype == HP_PT_LEDGER_RES)
			on_ledger_res((const uint8_t *)from->via.bin.ptr,
			    (const uint8_t *)payload->via.bin.ptr,
			    payload->via.bin.size);
		else if (ptype == HP_PT_INPUT)
			userio_peer_input((const uint8_t *)from->via.bin.ptr,
			    (const uint8_t *)payload->via.bin.ptr,
			    payload->via.bin.size);
		else if (ptype == HP_PT_NPL)
			userio_peer_npl((const uint8_t *)from->via.bin.ptr,
			    (const uint8_t *)payload->via.bin.ptr,
			    payload->via.bin.size);
		else if (ptype == HP_PT_OUTSIG)
			userio_peer_outsig((const uint8_t *)from->via.bin.ptr,
			    (const uint8_t *)payload->via.bin.ptr,
			    payload->via.bin.size);
		return;
	case HP_MSG_PEER_CONNS: {
		const msgpack_object *a = hp_mpack_get(m->body, 1);
		cs.nconnected = 0;
		if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY)
			return;
		for (uint32_t i = 0; i < a->via.array.size &&
		    cs.nconnected < HP_LEDGER_MAX_SIGS; i++) {
			const msgpack_object *k = &a->via.array.ptr[i];
			if (k->type == MSGPACK_OBJECT_BIN &&
			    k->via.bin.size == HP_PK_BYTES)
				memcpy(cs.connected[cs.nconnected++],
				    k->via.bin.ptr, HP_PK_BYTES);
		}
		return;
	}
	case HP_MSG_PEER_KNOWN_SAVE: {
		const msgpack_object *a = hp_mpack_get(m->body, 1);
		msgpack_sbuffer sb;
		msgpack_packer pk;
		if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY)
			return;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, *a);
		if (sb.size <= 65536)
			ledger_store_meta_put(cs.store, "known_peers", sb.data,
			    sb.size);
		msgpack_sbuffer_destroy(&sb);
		return;
	}
	default:
		return;
	}
}

static void
set_hashes(const uint8_t *state, const uint8_t *patch)
{
	static const uint8_t zero[32];

	if (memcmp(cs.state_hash, state, 32) != 0 ||
	    memcmp(cs.patch_hash, patch, 32) != 0)
		cs.hashes_at = wall_ms();
	memcpy(cs.state_hash, state, 32);
	memcpy(cs.patch_hash, patch, 32);
	round_set_hashes(cs.round, cs.state_hash, cs.patch_hash, zero);
}

static void
release_hold(void)
{
	struct round_out out;

	cs.run_hold = 0;
	round_hold(cs.round, 0);
	memset(&out, 0, sizeof(out));
	round_tick(cs.round, wall_ms(), &out);
	handle_out(&out);
	round_out_free(&out);
	arm_timer();
}

void
cons_run_done(uint64_t seq, const uint8_t *state, const uint8_t *patch)
{
	/* The run's own hashes: STATE_HASHES may come a moment later. */
	if (state != NULL && patch != NULL && cs.run_hold &&
	    seq == cs.run_hold_seq)
		set_hashes(state, patch);
	if (cs.run_hold && seq == cs.run_hold_seq)
		release_hold();
}

/* A run that does not report: after its time budget the round goes on
 * without its hashes (it votes what it has). */
static void
check_hold(void)
{
	uint64_t budget = cs.cfg->contract.round_limits.exec_timeout;

	budget = budget > 0 ? budget + 2000 : 30000;
	if (!cs.run_hold || uv_now(cs.loop) - cs.run_hold_since < budget)
		return;
	cs.run_wait_timeouts++;
	log_warnx("the contract run for ledger %llu did not report within"
	    " %llu ms; consensus goes on without its outputs",
	    (unsigned long long)cs.run_hold_seq, (unsigned long long)budget);
	release_hold();
}

/* The state worker's committed hashes, voted from the next proposal on. */
static void
state_msg(struct hp_msg *m)
{
	const msgpack_object *s = hp_mpack_get(m->body, 1);
	const msgpack_object *p = hp_mpack_get(m->body, 2);

	if (m->type != HP_MSG_STATE_HASHES || s == NULL || p == NULL ||
	    s->type != MSGPACK_OBJECT_BIN || s->via.bin.size != 32 ||
	    p->type != MSGPACK_OBJECT_BIN || p->via.bin.size != 32) {
		log_warnx("malformed STATE_HASHES from the state worker; ignored");
		return;
	}
	set_hashes((const uint8_t *)s->via.bin.ptr,
	    (const uint8_t *)p->via.bin.ptr);
}

static void
sibling_msg(int from, struct hp_msg *m)
{
	if (from == HP_W_PEER)
		peer_msg(m);
	else if (from == HP_W_STATE)
		state_msg(m);
	else if (from == HP_W_GATEWAY)
		userio_gw_msg(m);
	else if (from == HP_W_RUNNER)
		userio_runner_msg(m);
}

static void
sibling_down(int id)
{
	if (id == HP_W_RUNNER && cs.run_hold)
		release_hold();
}

static void
sibling_up(int id)
{
	if (id == HP_W_GATEWAY)
		userio_status_force();
	if (id != HP_W_PEER)
		return;
	send_unl();
	send_known_peers();
}

/* ---- hpctl show ---- */

static void
pack_ledger(msgpack_packer *pk, const struct hp_ledger *l)
{
	msgpack_pack_map(pk, 13);
	hp_mpack_kv_u64(pk, "seq", l->seq);
	hp_mpack_kv_hex(pk, "hash", l->hash, 32);
	hp_mpack_kv_hex(pk, "prev_hash", l->prev_hash, 32);
	hp_mpack_kv_u64(pk, "time", l->time);
	hp_mpack_kv_hex(pk, "state_hash", l->state_hash, 32);
	hp_mpack_kv_hex(pk, "patch_hash", l->patch_hash, 32);
	hp_mpack_kv_hex(pk, "membership_hash", l->membership_hash, 32);
	hp_mpack_kv_hex(pk, "nonce", l->nonce, 32);
	hp_mpack_kv_hex(pk, "user_hash", l->user_hash, 32);
	hp_mpack_kv_hex(pk, "input_hash", l->input_hash, 32);
	hp_mpack_kv_hex(pk, "output_hash", l->output_hash, 32);
	hp_mpack_kv_u64(pk, "signatures", l->nsigs);
	hp_mpack_pack_cstr(pk, "signers");
	msgpack_pack_array(pk, l->nsigs);
	for (uint32_t i = 0; i < l->nsigs; i++) {
		char hex[HP_PK_HEX_LEN + 1];
		hp_pubkey_to_hex(l->sigs[i].pk, hex);
		hp_mpack_pack_cstr(pk, hex);
	}
}

static const char *
vote_name(int v)
{
	switch (v) {
	case ROUND_SYNCED: return "synced";
	case ROUND_DESYNC: return "desync";
	case ROUND_UNRELIABLE: return "unreliable";
	default: return "unknown";
	}
}

static int
is_connected(const uint8_t *pk)
{
	for (uint32_t i = 0; i < cs.nconnected; i++)
		if (memcmp(cs.connected[i], pk, HP_PK_BYTES) == 0)
			return 1;
	return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* p-th percentile (0..100) of the recorded close latencies, in ms. */
static uint32_t
latency_pct(int p)
{
	uint32_t n = cs.nlat < LAT_N ? cs.nlat : LAT_N, tmp[LAT_N];

	if (n == 0)
		return 0;
	memcpy(tmp, cs.lat, n * sizeof(tmp[0]));
	qsort(tmp, n, sizeof(tmp[0]), cmp_u32);
	return tmp[(n - 1) * (uint32_t)p / 100];
}

static void
pack_consensus(msgpack_packer *pk)
{
	struct round_status st;
	uint64_t now = wall_ms();
	uint32_t live = 0;

	round_status(cs.round, &st);
	for (uint32_t i = 0; i < cs.unl_n; i++) {
		const uint8_t *k = cs.unl + (size_t)i * HP_PK_BYTES;
		if (memcmp(k, cs.cfg->node.keys.pk, HP_PK_BYTES) == 0 ||
		    is_connected(k))
			live++;
	}
	msgpack_pack_map(pk, 23);
	hp_mpack_kv_str(pk, "lock", st.locked ? "locked" : "none");
	hp_mpack_kv_hex(pk, "state_hash", cs.state_hash, 32);
	hp_mpack_kv_hex(pk, "patch_hash", cs.patch_hash, 32);
	hp_mpack_kv_u64(pk, "unreliable_rounds", st.unreliable_rounds);
	hp_mpack_kv_u64(pk, "close_latency_p50_ms", latency_pct(50));
	hp_mpack_kv_u64(pk, "close_latency_p99_ms", latency_pct(99));
	hp_mpack_kv_str(pk, "role", cs.cfg->node.role == HP_ROLE_OBSERVER ?
	    "observer" : in_unl(cs.cfg->node.keys.pk) ? "validator" :
	    "observer (not in the UNL)");
	hp_mpack_kv_u64(pk, "round_start", st.round);
	hp_mpack_kv_u64(pk, "stage", st.stage);
	hp_mpack_kv_str(pk, "vote_status", vote_name(st.vote));
	hp_mpack_kv_u64(pk, "lcl_seq", st.lcl_seq);
	hp_mpack_kv_hex(pk, "lcl_hash", st.lcl_hash, 32);
	hp_mpack_kv_u64(pk, "roundtime", cs.cfg->contract.consensus.roundtime);
	hp_mpack_kv_u64(pk, "threshold", cs.cfg->contract.consensus.threshold);
	hp_mpack_kv_u64(pk, "quorum", hp_close_quorum(
	    (uint32_t)cs.cfg->contract.consensus.threshold, cs.unl_n));
	hp_mpack_kv_u64(pk, "unl_live", live);
	hp_mpack_kv_u64(pk, "ledgers_closed", cs.ledgers_closed);
	hp_mpack_kv_u64(pk, "ledgers_synced", cs.ledgers_synced);
	hp_mpack_kv_u64(pk, "proposals_in", cs.props_in);
	hp_mpack_kv_u64(pk, "proposals_dropped", cs.props_bad + cs.props_not_unl +
	    cs.props_stale + cs.props_replayed);
	hp_mpack_kv_str(pk, "sync", cs.syncing ? "ledger" : "idle");
	hp_mpack_pack_cstr(pk, "inputs");
	userio_show(pk);
	hp_mpack_pack_cstr(pk, "unl");
	msgpack_pack_array(pk, cs.unl_n);
	for (uint32_t i = 0; i < cs.unl_n; i++) {
		const uint8_t *k = cs.unl + (size_t)i * HP_PK_BYTES;
		char hex[HP_PK_HEX_LEN + 1];
		int self = memcmp(k, cs.cfg->node.keys.pk, HP_PK_BYTES) == 0;
		hp_pubkey_to_hex(k, hex);
		const struct round_member_status *ms = NULL;
		for (uint32_t j = 0; j < st.unl_n; j++)
			if (memcmp(st.members[j].pubkey, k, HP_PK_BYTES) == 0)
				ms = &st.members[j];
		msgpack_pack_map(pk, 4);
		hp_mpack_kv_str(pk, "key", hex);
		hp_mpack_kv_str(pk, "link", self ? "self" : is_connected(k) ?
		    "connected" : "not connected");
		hp_mpack_kv_u64(pk, "last_proposal_round_age_ms", ms && ms->last_time &&
		    now > ms->last_time ? now - ms->last_time : 0);
		hp_mpack_kv_u64(pk, "last_stage", ms ? ms->last_stage : 0);
	}
}

/* hpctl show sync: the config and ledger stages (the supervisor adds the
 * state worker's "state"). */
static void
pack_sync(msgpack_packer *pk)
{
	struct hp_ledger l;
	const char *cfg;
	int have = ledger_store_last(cs.store, &l) == 0 && l.seq > 0;

	if (!have)
		cfg = "waiting for a ledger from the cluster";
	else if (cs.patch_ok_known && memcmp(cs.patch_ok, l.patch_hash, 32) == 0)
		cfg = "synced: hp.cfg matches the cluster's patch.cfg";
	else if (memcmp(cs.patch_hash, l.patch_hash, 32) != 0)
		cfg = "syncing: fetching the cluster's patch.cfg with the state";
	else
		cfg = "applying the cluster's patch.cfg to hp.cfg";
	msgpack_pack_map(pk, 2);
	hp_mpack_pack_cstr(pk, "config");
	msgpack_pack_map(pk, 3);
	hp_mpack_kv_str(pk, "status", cfg);
	hp_mpack_kv_hex(pk, "cluster_patch_hash", have ? l.patch_hash :
	    (const uint8_t[32]){ 0 }, 32);
	hp_mpack_kv_hex(pk, "local_patch_hash", cs.patch_hash, 32);
	hp_mpack_pack_cstr(pk, "ledger");
	msgpack_pack_map(pk, 6);
	hp_mpack_kv_str(pk, "status", cs.syncing ? "syncing" : "synced");
	hp_mpack_kv_u64(pk, "lcl", have ? l.seq : 0);
	hp_mpack_kv_u64(pk, "target", cs.syncing ? cs.sync_target :
	    (have ? l.seq : 0));
	hp_mpack_kv_u64(pk, "ledgers_synced", cs.ledgers_synced);
	hp_mpack_kv_u64(pk, "ledgers_left", cs.syncing && have &&
	    cs.sync_target > l.seq ? cs.sync_target - l.seq : 0);
	hp_mpack_kv_u64(pk, "peers", cs.syncing ? cs.sync_nfrom : 0);
}

static int
show(int argc, char **argv, msgpack_packer *pk, char *msg, size_t msgsize)
{
	struct hp_ledger l;

	if (argc >= 1 && strcmp(argv[0], "consensus") == 0) {
		pack_consensus(pk);
		return 0;
	}
	if (argc >= 1 && strcmp(argv[0], "ledger") == 0) {
		int r;
		if (argc >= 2) {
			char *end;
			unsigned long long seq = strtoull(argv[1], &end, 10);
			if (*end != '\0' || argv[1][0] == '\0') {
				snprintf(msg, msgsize, "ledger sequence number"
				    " expected, got \"%s\"", argv[1]);
				return 100;
			}
			r = ledger_store_get(cs.store, seq, &l);
		} else
			r = ledger_store_last(cs.store, &l);
		if (r != 0) {
			snprintf(msg, msgsize, "no such ledger (%s)",
			    hp_strerror(r));
			return 1;
		}
		pack_ledger(pk, &l);
		return 0;
	}
	if (argc >= 1 && strcmp(argv[0], "sync") == 0) {
		pack_sync(pk);
		return 0;
	}
	snprintf(msg, msgsize, "the consensus worker shows: consensus,"
	    " ledger [SEQ], sync");
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
		snprintf(path, sizeof(path), "%s/ledger", dir);
	else
		return -1;
	if ((r = ledger_store_open(path, &cs.store)) != 0) {
		log_errx("cannot open the ledger store in %s: %s", path,
		    hp_strerror(r));
		return -1;
	}
	return 0;
}

static int
cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, HP_PK_BYTES);
}

static int
init(uv_loop_t *loop, const struct hp_config *cfg)
{
	struct round_cfg rc;
	struct hp_ledger lcl;

	cs.loop = loop;
	cs.cfg = cfg;
	cs.started_ms = uv_now(loop);
	cs.unl_n = (uint32_t)cfg->contract.unl_count;
	if ((cs.unl = calloc(cs.unl_n ? cs.unl_n : 1, HP_PK_BYTES)) == NULL)
		return -1;
	for (uint32_t i = 0; i < cs.unl_n; i++)
		if (hp_pubkey_from_hex(cfg->contract.unl[i],
		    cs.unl + (size_t)i * HP_PK_BYTES) != 0)
			return -1;
	qsort(cs.unl, cs.unl_n, HP_PK_BYTES, cmp_key);

	if (ledger_store_last(cs.store, &lcl) != 0)
		return -1;
	memset(&rc, 0, sizeof(rc));
	memcpy(rc.self, cfg->node.keys.pk, HP_PK_BYTES);
	rc.validator = cfg->node.role == HP_ROLE_VALIDATOR &&
	    in_unl(cfg->node.keys.pk);
	rc.unl = cs.unl;
	rc.unl_n = cs.unl_n;
	rc.threshold = (uint32_t)cfg->contract.consensus.threshold;
	rc.roundtime = (uint32_t)cfg->contract.consensus.roundtime;
	rc.stage_slice = (uint32_t)cfg->contract.consensus.stage_slice;
	rc.offset = hp_stdhash(cfg->contract.id, strlen(cfg->contract.id)) %
	    rc.roundtime;
	randombytes_buf(rc.nonce_seed, sizeof(rc.nonce_seed));
	rc.sign = sign_cb;
	if ((cs.round = round_new(&rc, &lcl)) == NULL)
		return -1;
	restore_lock();
	log_info("consensus %s: lcl %llu, UNL of %u, roundtime %llu ms,"
	    " threshold %llu%%", rc.validator ? "as a validator" :
	    "as an observer", (unsigned long long)lcl.seq, cs.unl_n,
	    (unsigned long long)cfg->contract.consensus.roundtime,
	    (unsigned long long)cfg->contract.consensus.threshold);
	userio_init();
	uv_timer_init(loop, &cs.timer);
	arm_timer();
	return 0;
}

static void
shutdown_cb(void)
{
	uv_timer_stop(&cs.timer);
	userio_free();
	if (cs.store != NULL) {
		ledger_store_close(cs.store);
		cs.store = NULL;
	}
}

/* LMDB: positioned I/O, durability, map growth. */
static const int consensus_syscalls[] = {
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(pwritev),
	SCMP_SYS(fdatasync), SCMP_SYS(fsync), SCMP_SYS(msync),
	SCMP_SYS(ftruncate), SCMP_SYS(flock), SCMP_SYS(mincore),
};

static const struct hp_worker_role role = {
	.name = "consensus",
	.syscalls = consensus_syscalls,
	.nsyscalls = sizeof(consensus_syscalls) / sizeof(consensus_syscalls[0]),
	.pre_sandbox = pre_sandbox,
	.init = init,
	.sibling_msg = sibling_msg,
	.sibling_up = sibling_up,
	.sibling_down = sibling_down,
	.sup_msg = sup_msg,
	.show = show,
	.shutdown = shutdown_cb,
};

int
main(int argc, char **argv)
{
	hp_worker_run(argc, argv, &role);
}
