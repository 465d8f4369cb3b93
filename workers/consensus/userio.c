/*
 * userio.c — user inputs and contract outputs in the consensus worker
 * (userio.h, docs/user-io.md).
 */
#include "userio.h"

#include "config.h"
#include "cons.h"
#include "err.h"
#include "hash.h"
#include "keys.h"
#include "log.h"
#include "mpack.h"
#include "proto.h"
#include "round.h"
#include "usermsg.h"
#include "worker.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX	HP_PROPOSAL_MAX_SET	/* inputs held */
#define POOL_BYTES_MAX	(256u * 1024 * 1024)	/* their containers + blobs */
#define CONTAINER_MAX	(5u * 1024 * 1024)
#define NONCES_MAX	65536			/* users remembered */
#define EARLY_SIGS	256			/* output sigs before our close */
#define IDX_SLOTS	(2u * POOL_MAX)		/* a power of two, > POOL_MAX */

/* An input we hold, verified. */
struct uin {
	uint8_t hash[32];	/* BLAKE3(sig): the input hash */
	uint8_t user[32];
	uint8_t sig[64];
	uint64_t nonce, max_ledger;
	int proto;
	int local;		/* from our gateway: it wants the status */
	int in_ledger;		/* in the ledger being closed */
	int verdict;		/* enum verdict, at a close */
	uint8_t *container;
	size_t clen;
	uint8_t *blob;
	size_t blen;
};

enum verdict { V_ACCEPTED = 0, V_NONCE, V_EXPIRED };

/* The last nonce of each user that a ledger accepted (HotPocket's nonce
 * rule, §3.2 of the protocol notes). */
struct unonce {
	uint8_t user[32];
	uint64_t nonce, max_ledger;
};

/* A payload of relayed inputs as it came from a peer. */
struct rbatch {
	struct rbatch *next;
	size_t len;
	uint32_t count;		/* inputs in it (its array's length) */
	uint8_t data[];
};

struct early_sig {
	uint64_t seq;
	uint8_t root[32];
	uint8_t pk[32];
	uint8_t sig[64];
};

static struct {
	struct uin **pool;	/* in no order; idx finds one by hash */
	uint32_t npool, cappool;
	struct uin **idx;	/* open addressing on the hash, IDX_SLOTS */
	size_t pool_bytes;
	struct unonce *nonces;	/* sorted by user */
	uint32_t nnonces, capnonces;

	/* outputs of our last run, waiting for the ledger that carries
	 * their root */
	int have_out;
	uint64_t out_seq;
	uint8_t out_root[32];
	msgpack_sbuffer out_leaves, out_users;

	/* the closed ledger whose outputs are being signed */
	int signing;
	uint64_t sig_seq;
	uint8_t sig_root[32], sig_lhash[32];
	msgpack_sbuffer sig_leaves, sig_users;
	uint8_t (*sig_pk)[32];
	uint8_t (*sig_sig)[64];
	uint32_t nsig;
	int sig_sent;

	struct early_sig early[EARLY_SIGS];
	uint32_t nearly, early_next;

	/* inputs from our gateway waiting to be relayed, packed maps */
	msgpack_sbuffer relay;
	uint32_t nrelay;
	uv_timer_t relay_timer;
	int relay_timer_on;

	/* input batches relayed to us, checked a slice at a time */
	struct rbatch *rq_head, *rq_tail;
	size_t rq_bytes;
	uint64_t rq_inputs;	/* in the queued batches, not yet checked */
	struct rbatch *rq_cur;	/* the batch being checked, unpacked */
	msgpack_unpacked rq_res;
	uint32_t rq_i;
	uv_idle_t rq_idle;
	int rq_idle_on;
	uint64_t rq_dropped;

	/* the records stored with the ledger being closed */
	msgpack_sbuffer raw_in, raw_out;

	/* what the gateway was last told */
	uint64_t st_seq;
	int st_vote;
	uint32_t st_unl_n;

	uint64_t accepted, rejected, outputs_sent, relayed_in;
	int full;		/* no room for our own users' inputs */
} u;


static const msgpack_object *
get_bin(const msgpack_object *map, uint64_t key, size_t exact, size_t max)
{
	const msgpack_object *o = hp_mpack_get(map, key);

	if (o == NULL || o->type != MSGPACK_OBJECT_BIN)
		return NULL;
	if (exact != 0 && o->via.bin.size != exact)
		return NULL;
	if (max != 0 && o->via.bin.size > max)
		return NULL;
	return o;
}

static uint64_t
lcl_seq(uint8_t hash[32])
{
	struct hp_ledger l;

	if (ledger_store_last(cons_store(), &l) != 0)
		return 0;
	if (hash != NULL)
		memcpy(hash, l.hash, 32);
	return l.seq;
}

void
userio_init(void)
{
	msgpack_sbuffer_init(&u.out_leaves);
	msgpack_sbuffer_init(&u.out_users);
	msgpack_sbuffer_init(&u.sig_leaves);
	msgpack_sbuffer_init(&u.sig_users);
	msgpack_sbuffer_init(&u.raw_in);
	msgpack_sbuffer_init(&u.raw_out);
	msgpack_sbuffer_init(&u.relay);
	uv_timer_init(cons_loop(), &u.relay_timer);
	u.relay_timer_on = 1;
	uv_idle_init(cons_loop(), &u.rq_idle);
	u.rq_idle_on = 1;
	u.st_vote = -1;
}

static void
uin_free(struct uin *in)
{
	if (in == NULL)
		return;
	free(in->container);
	free(in->blob);
	free(in);
}

void
userio_free(void)
{
	for (uint32_t i = 0; i < u.npool; i++)
		uin_free(u.pool[i]);
	free(u.pool);
	free(u.idx);
	u.idx = NULL;
	free(u.nonces);
	free(u.sig_pk);
	free(u.sig_sig);
	msgpack_sbuffer_destroy(&u.out_leaves);
	msgpack_sbuffer_destroy(&u.out_users);
	msgpack_sbuffer_destroy(&u.sig_leaves);
	msgpack_sbuffer_destroy(&u.sig_users);
	msgpack_sbuffer_destroy(&u.raw_in);
	msgpack_sbuffer_destroy(&u.raw_out);
	msgpack_sbuffer_destroy(&u.relay);
	/* The timer handle stays in the loop until it is closed: close it,
	 * and leave its memory alone. */
	if (u.relay_timer_on) {
		uv_timer_stop(&u.relay_timer);
		uv_close((uv_handle_t *)&u.relay_timer, NULL);
		u.relay_timer_on = 0;
	}
	if (u.rq_idle_on) {
		uv_idle_stop(&u.rq_idle);
		uv_close((uv_handle_t *)&u.rq_idle, NULL);
		u.rq_idle_on = 0;
	}
	if (u.rq_cur != NULL) {
		msgpack_unpacked_destroy(&u.rq_res);
		free(u.rq_cur);
		u.rq_cur = NULL;
	}
	while (u.rq_head != NULL) {
		struct rbatch *b = u.rq_head;
		u.rq_head = b->next;
		free(b);
	}
	u.rq_tail = NULL;
	u.rq_bytes = 0;
	u.rq_inputs = 0;
	u.pool = NULL;
	u.nonces = NULL;
	u.sig_pk = NULL;
	u.sig_sig = NULL;
	u.npool = u.cappool = u.nnonces = u.capnonces = u.nrelay = 0;
	u.signing = u.have_out = 0;
}

void
userio_show(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 8);
	hp_mpack_kv_u64(pk, "pool", u.npool);
	hp_mpack_kv_u64(pk, "pool_bytes", u.pool_bytes);
	hp_mpack_kv_u64(pk, "relayed_queued", u.rq_inputs);
	hp_mpack_kv_u64(pk, "relayed_dropped_batches", u.rq_dropped);
	hp_mpack_kv_bool(pk, "refusing_own_users", u.full != 0);
	hp_mpack_kv_u64(pk, "accepted", u.accepted);
	hp_mpack_kv_u64(pk, "rejected", u.rejected);
	hp_mpack_kv_u64(pk, "output_sets_sent", u.outputs_sent);
}

/* ---- the pool ---- */

static void send_status(void);

/*
 * Whether this node takes its own users' inputs: not while the inputs it
 * holds and those relayed to it, still to be checked, come to LOCAL_MAX
 * (a proposal's worth) or half the pool's bytes; again below 3/4 of that.
 * Beyond it inputs would only wait longer, and each costs three signature
 * checks across the cluster: under a flood the gateway refuses them
 * before checking (it is told in GW_STATUS), and the rounds keep their
 * pace.
 */
#define LOCAL_MAX	ROUND_MAX_PROPOSED_INPUTS

static void
room_update(void)
{
	uint64_t n = (uint64_t)u.npool + u.rq_inputs;
	int full = u.full ? n * 4 >= (uint64_t)LOCAL_MAX * 3 ||
	    u.pool_bytes * 8 >= (uint64_t)POOL_BYTES_MAX * 3 :
	    n >= LOCAL_MAX || u.pool_bytes * 2 >= POOL_BYTES_MAX;

	if (full != u.full) {
		u.full = full;
		send_status();
	}
}

/*
 * The pool is an array in no order (added at the end, removed by moving
 * the last one in), found by hash through idx: linear probing over the
 * hash's first 8 bytes (BLAKE3 output, so uniform), deletion by shifting
 * back, never a tombstone. Adding, finding and removing one input cost
 * the same whatever the pool holds; a sorted array cost a move of the
 * pool's tail at each add and each remove, which under load stalled the
 * worker for seconds.
 */
static size_t
idx_home(const uint8_t hash[32])
{
	uint64_t k;

	memcpy(&k, hash, sizeof(k));
	return (size_t)(k & (IDX_SLOTS - 1));
}

static struct uin *
pool_find(const uint8_t hash[32])
{
	if (u.idx == NULL)
		return NULL;
	for (size_t i = idx_home(hash); u.idx[i] != NULL;
	    i = (i + 1) & (IDX_SLOTS - 1))
		if (memcmp(u.idx[i]->hash, hash, 32) == 0)
			return u.idx[i];
	return NULL;
}

static void
idx_delete(const struct uin *in)
{
	size_t i = idx_home(in->hash), j;

	while (u.idx[i] != in)
		i = (i + 1) & (IDX_SLOTS - 1);
	/* Shift back each later entry of the run whose home is not in
	 * (i, j]: it stays findable from its home. */
	for (j = i;;) {
		size_t k;

		j = (j + 1) & (IDX_SLOTS - 1);
		if (u.idx[j] == NULL)
			break;
		k = idx_home(u.idx[j]->hash);
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		u.idx[i] = u.idx[j];
		i = j;
	}
	u.idx[i] = NULL;
}

static int
pool_add(struct uin *in)
{
	size_t bytes = in->clen + in->blen, i;

	if (pool_find(in->hash) != NULL)
		return HP_EEXIST;
	/* Our own users' inputs stop at LOCAL_MAX (room_update): the rest
	 * of the pool is kept for inputs the other nodes relay, which they
	 * have already accepted and which this node must hold to vote for
	 * them. */
	if ((in->local && u.full) || u.npool >= POOL_MAX ||
	    u.pool_bytes + bytes > POOL_BYTES_MAX)
		return HP_ETOOBIG;
	if (u.idx == NULL && (u.idx = calloc(IDX_SLOTS, sizeof(*u.idx))) ==
	    NULL)
		return HP_ENOMEM;
	if (u.npool == u.cappool) {
		uint32_t cap = u.cappool ? u.cappool * 2 : 64;
		struct uin **np = realloc(u.pool, cap * sizeof(*np));
		if (np == NULL)
			return HP_ENOMEM;
		u.pool = np;
		u.cappool = cap;
	}
	for (i = idx_home(in->hash); u.idx[i] != NULL;
	    i = (i + 1) & (IDX_SLOTS - 1))
		;
	u.idx[i] = in;
	u.pool[u.npool++] = in;
	u.pool_bytes += bytes;
	room_update();
	return 0;
}

/* Remove and free pool[i]; the last one takes its place. */
static void
pool_remove_at(uint32_t i)
{
	struct uin *in = u.pool[i];

	u.pool_bytes -= in->clen + in->blen;
	idx_delete(in);
	u.pool[i] = u.pool[--u.npool];
	uin_free(in);
}

static struct unonce *
nonce_find(const uint8_t user[32], uint32_t *at)
{
	uint32_t lo = 0, hi = u.nnonces;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (memcmp(u.nonces[mid].user, user, 32) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (at != NULL)
		*at = lo;
	return lo < u.nnonces && memcmp(u.nonces[lo].user, user, 32) == 0 ?
	    &u.nonces[lo] : NULL;
}

/* HotPocket's rule: a nonce above the user's last accepted one, or any
 * nonce once that input's max_ledger_seq_no has passed. */
static int
nonce_ok(const uint8_t user[32], uint64_t nonce, uint64_t lcl)
{
	struct unonce *n = nonce_find(user, NULL);

	return n == NULL || nonce > n->nonce || n->max_ledger <= lcl;
}

static void
nonce_record(const uint8_t user[32], uint64_t nonce, uint64_t max_ledger,
    uint64_t lcl)
{
	uint32_t at;
	struct unonce *n = nonce_find(user, &at);

	if (n != NULL) {
		n->nonce = nonce;
		n->max_ledger = max_ledger;
		return;
	}
	if (u.nnonces >= NONCES_MAX) {
		/* Forget users whose last input can no longer matter. */
		uint32_t j = 0;
		for (uint32_t i = 0; i < u.nnonces; i++)
			if (u.nonces[i].max_ledger > lcl)
				u.nonces[j++] = u.nonces[i];
		u.nnonces = j;
		if (u.nnonces >= NONCES_MAX)
			return;
		nonce_find(user, &at);
	}
	if (u.nnonces == u.capnonces) {
		uint32_t cap = u.capnonces ? u.capnonces * 2 : 64;
		struct unonce *np = realloc(u.nonces, cap * sizeof(*np));
		if (np == NULL)
			return;
		u.nonces = np;
		u.capnonces = cap;
	}
	memmove(&u.nonces[at + 1], &u.nonces[at], (u.nnonces - at) *
	    sizeof(*u.nonces));
	memcpy(u.nonces[at].user, user, 32);
	u.nonces[at].nonce = nonce;
	u.nonces[at].max_ledger = max_ledger;
	u.nnonces++;
}

/* ---- telling the gateway ---- */

static void
pack_lmap(msgpack_packer *pk, const struct hp_ledger *l)
{
	msgpack_pack_map(pk, 9);
	msgpack_pack_uint32(pk, 1);
	msgpack_pack_uint64(pk, l->seq);
	msgpack_pack_uint32(pk, 2);
	msgpack_pack_uint64(pk, l->time);
	msgpack_pack_uint32(pk, 3);
	hp_mpack_pack_bin(pk, l->hash, 32);
	msgpack_pack_uint32(pk, 4);
	hp_mpack_pack_bin(pk, l->prev_hash, 32);
	msgpack_pack_uint32(pk, 5);
	hp_mpack_pack_bin(pk, l->state_hash, 32);
	msgpack_pack_uint32(pk, 6);
	hp_mpack_pack_bin(pk, l->patch_hash, 32);
	msgpack_pack_uint32(pk, 7);
	hp_mpack_pack_bin(pk, l->user_hash, 32);
	msgpack_pack_uint32(pk, 8);
	hp_mpack_pack_bin(pk, l->input_hash, 32);
	msgpack_pack_uint32(pk, 9);
	hp_mpack_pack_bin(pk, l->output_hash, 32);
}

static void
send_status(void)
{
	const struct hp_config *cfg = cons_cfg();
	struct hp_ledger l;
	struct hp_frame f;
	uint32_t n;
	const uint8_t *unl = cons_unl(&n);

	if (!hp_worker_sibling_up(HP_W_GATEWAY) ||
	    ledger_store_last(cons_store(), &l) != 0)
		return;
	hp_frame_begin(&f, HP_MSG_GW_STATUS, 0, 0);
	msgpack_pack_map(&f.pk, 10);
	msgpack_pack_uint32(&f.pk, 1);
	pack_lmap(&f.pk, &l);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_uint64(&f.pk, (uint64_t)cons_vote());
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_uint64(&f.pk, cfg->contract.consensus.roundtime);
	msgpack_pack_uint32(&f.pk, 4);
	msgpack_pack_array(&f.pk, n);
	for (uint32_t i = 0; i < n; i++)
		hp_mpack_pack_bin(&f.pk, unl + (size_t)i * 32, 32);
	msgpack_pack_uint32(&f.pk, 5);
	msgpack_pack_array(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 6);
	if (cfg->contract.execute)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	msgpack_pack_uint32(&f.pk, 7);
	if (cfg->contract.execute && cfg->user.concurrent_read_requests > 0)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	msgpack_pack_uint32(&f.pk, 8);
	if (cfg->node.history == HP_HISTORY_FULL)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	msgpack_pack_uint32(&f.pk, 9);
	if (cons_npeers() * 2 < n)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	msgpack_pack_uint32(&f.pk, 10);
	if (u.full)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	if (hp_worker_send(HP_W_GATEWAY, &f, -1) == 0) {
		u.st_seq = l.seq;
		u.st_vote = cons_vote();
		u.st_unl_n = n;
	}
}

void
userio_status_force(void)
{
	send_status();
}

void
userio_status(void)
{
	uint32_t n;

	cons_unl(&n);
	if (u.st_seq != lcl_seq(NULL) || u.st_vote != cons_vote() ||
	    u.st_unl_n != n)
		send_status();
}

/* One input's status to the gateway, outside a ledger close. */
static void
settle_one(const uint8_t user[32], const uint8_t hash[32],
    const char *reason)
{
	struct hp_frame f;

	u.rejected++;
	if (!hp_worker_sibling_up(HP_W_GATEWAY))
		return;
	hp_frame_begin(&f, HP_MSG_GW_SETTLED, 0, 0);
	msgpack_pack_map(&f.pk, 4);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 2);
	hp_mpack_pack_bin(&f.pk, (const uint8_t[32]){ 0 }, 32);
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_array(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 4);
	msgpack_pack_array(&f.pk, 1);
	msgpack_pack_array(&f.pk, 3);
	hp_mpack_pack_bin(&f.pk, user, 32);
	hp_mpack_pack_bin(&f.pk, hash, 32);
	hp_mpack_pack_cstr(&f.pk, reason);
	hp_worker_send(HP_W_GATEWAY, &f, -1);
}

/* ---- inputs in ---- */

/*
 * Verify and hold one input. Returns NULL when held, or the rejection
 * reason (HotPocket's names). local: it came from our gateway.
 */
static const char *
take_input(const uint8_t user[32], const uint8_t sig[64],
    const uint8_t *container, size_t clen, uint64_t proto, int local,
    uint8_t hash[32])
{
	struct hp_uinput ui;
	struct uin *in;
	uint8_t oh[HP_PROPOSAL_INPUT_WIDTH];
	uint64_t lcl = lcl_seq(NULL);
	int r;

	hp_hash(sig, 64, hash);
	if (pool_find(hash) != NULL)
		return "already_submitted";
	if (proto > HP_UPROTO_BSON || clen > CONTAINER_MAX)
		return "bad_msg_format";
	/* Our gateway checked the signature before it handed the input
	 * over; an input from another node is checked here. (A gateway that
	 * lied could get an input into this node's pool only: the other
	 * nodes check what we relay, so it never gets the votes.) */
	if (!local && hp_verify(user, container, clen, sig) != 0)
		return "bad_sig";
	if (hp_udec_input((enum hp_uproto)proto, container, clen, &ui) != 0)
		return "bad_msg_format";
	if (ui.max_ledger_seq_no <= lcl) {
		hp_uinput_free(&ui);
		return "max_ledger_expired";
	}
	if (!nonce_ok(user, ui.nonce, lcl)) {
		hp_uinput_free(&ui);
		return "nonce_expired";
	}
	if ((in = calloc(1, sizeof(*in))) == NULL ||
	    (in->container = malloc(clen ? clen : 1)) == NULL) {
		free(in);
		hp_uinput_free(&ui);
		return "round_inputs_overflow";
	}
	memcpy(in->hash, hash, 32);
	memcpy(in->user, user, 32);
	memcpy(in->sig, sig, 64);
	memcpy(in->container, container, clen);
	in->clen = clen;
	in->blob = ui.input;
	in->blen = ui.input_len;
	in->nonce = ui.nonce;
	in->max_ledger = ui.max_ledger_seq_no;
	in->proto = (int)proto;
	in->local = local;
	if ((r = pool_add(in)) != 0) {
		uin_free(in);
		return r == HP_EEXIST ? "already_submitted" :
		    "round_inputs_overflow";
	}
	for (int i = 0; i < 8; i++)
		oh[i] = (uint8_t)(in->nonce >> (56 - 8 * i));
	memcpy(oh + 8, hash, 32);
	r = round_add_input(cons_round(), user, oh);
	if (r != 0 && r != HP_EEXIST) {
		pool_remove_at(u.npool - 1);	/* pool_add put it last */
		return "round_inputs_overflow";
	}
	return NULL;
}

/*
 * Inputs are relayed in batches: what our gateway handed over during one
 * turn of the loop goes to the peers as one payload (an array of inputs),
 * at most RELAY_BATCH bytes but for a single larger input.
 */
#define RELAY_BATCH (1024u * 1024)

static void
relay_flush(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (u.nrelay == 0)
		return;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, u.nrelay);
	msgpack_sbuffer_write(&sb, u.relay.data, u.relay.size);
	if (sb.data != NULL)
		cons_peer_send(HP_PT_INPUT, (const uint8_t *)sb.data, sb.size,
		    0, NULL);
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_clear(&u.relay);
	u.nrelay = 0;
}

static void
relay_timer_cb(uv_timer_t *t)
{
	(void)t;
	relay_flush();
}

static void
relay_input(const uint8_t user[32], const uint8_t sig[64],
    const uint8_t *container, size_t clen, uint64_t proto)
{
	msgpack_packer pk;

	if (u.nrelay > 0 && u.relay.size + clen + 128 > RELAY_BATCH)
		relay_flush();
	msgpack_packer_init(&pk, &u.relay, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	msgpack_pack_uint32(&pk, 1);
	hp_mpack_pack_bin(&pk, user, 32);
	msgpack_pack_uint32(&pk, 2);
	hp_mpack_pack_bin(&pk, sig, 64);
	msgpack_pack_uint32(&pk, 3);
	hp_mpack_pack_bin(&pk, container, clen);
	msgpack_pack_uint32(&pk, 4);
	msgpack_pack_uint64(&pk, proto);
	u.nrelay++;
	u.relayed_in++;
	if (u.nrelay == 1)
		uv_timer_start(&u.relay_timer, relay_timer_cb, 0, 0);
}

static void
on_input(const msgpack_object *body, int local)
{
	const msgpack_object *pk = get_bin(body, 1, 32, 0);
	const msgpack_object *sig = get_bin(body, 2, 64, 0);
	const msgpack_object *c = get_bin(body, 3, 0, CONTAINER_MAX);
	uint64_t proto = 0;
	uint8_t hash[32];
	const char *why;

	if (pk == NULL || sig == NULL || c == NULL ||
	    hp_mpack_u64(body, 4, &proto) != 0)
		return;
	why = take_input((const uint8_t *)pk->via.bin.ptr,
	    (const uint8_t *)sig->via.bin.ptr, (const uint8_t *)c->via.bin.ptr,
	    c->via.bin.size, proto, local, hash);
	if (why == NULL) {
		if (local)
			relay_input((const uint8_t *)pk->via.bin.ptr,
			    (const uint8_t *)sig->via.bin.ptr,
			    (const uint8_t *)c->via.bin.ptr, c->via.bin.size,
			    proto);
		return;
	}
	/* Nobody hears of a duplicate; a relayed input's sender has its own
	 * node to tell it. */
	if (local && strcmp(why, "already_submitted") != 0)
		settle_one((const uint8_t *)pk->via.bin.ptr, hash, why);
}

/*
 * Relayed inputs are queued as they come and checked (a signature each)
 * RQ_SLICE_NS at a time between the loop's turns: a peer's batch of
 * thousands must not hold up the proposals read after it, or rounds time
 * out under load. A ledger about to close takes whatever is still queued
 * first (userio_closed), so that inputs the cluster voted in are held.
 */
#define RQ_BYTES_MAX	(64u * 1024 * 1024)
#define RQ_SLICE_NS	(2u * 1000 * 1000)

/* The length of the msgpack array p starts with (0 when it is none). */
static uint32_t
array_len(const uint8_t *p, size_t len)
{
	if (len >= 1 && (p[0] & 0xf0) == 0x90)
		return p[0] & 0x0f;
	if (len >= 3 && p[0] == 0xdc)
		return (uint32_t)p[1] << 8 | p[2];
	if (len >= 5 && p[0] == 0xdd)
		return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
		    (uint32_t)p[3] << 8 | p[4];
	return 0;
}

/* Check one queued input; 0 when none is left. */
static int
rq_step(void)
{
	while (u.rq_cur == NULL) {
		struct rbatch *b = u.rq_head;

		if (b == NULL)
			return 0;
		if ((u.rq_head = b->next) == NULL)
			u.rq_tail = NULL;
		u.rq_bytes -= b->len;
		u.rq_inputs -= b->count;
		if (hp_mpack_unpack(b->data, b->len, &u.rq_res) != 0) {
			free(b);
			continue;
		}
		if (u.rq_res.data.type != MSGPACK_OBJECT_ARRAY) {
			msgpack_unpacked_destroy(&u.rq_res);
			free(b);
			continue;
		}
		u.rq_cur = b;
		u.rq_i = 0;
	}
	if (u.rq_i < u.rq_res.data.via.array.size)
		on_input(&u.rq_res.data.via.array.ptr[u.rq_i++], 0);
	if (u.rq_i >= u.rq_res.data.via.array.size) {
		msgpack_unpacked_destroy(&u.rq_res);
		free(u.rq_cur);
		u.rq_cur = NULL;
	}
	return 1;
}

static void
rq_idle_cb(uv_idle_t *h)
{
	uint64_t t0 = uv_hrtime();

	while (rq_step())
		if (uv_hrtime() - t0 >= RQ_SLICE_NS)
			return;
	uv_idle_stop(h);
}

/* Everything queued, checked now. */
static void
rq_drain(void)
{
	while (rq_step())
		;
	if (u.rq_idle_on)
		uv_idle_stop(&u.rq_idle);
}

void
userio_peer_input(const uint8_t from[32], const uint8_t *p, size_t len)
{
	struct rbatch *b;

	(void)from;
	if (len == 0)
		return;
	if (u.rq_bytes + len > RQ_BYTES_MAX ||
	    (b = malloc(sizeof(*b) + len)) == NULL) {
		if (u.rq_dropped++ % 1000 == 0)
			log_warnx("relayed inputs dropped: %zu bytes wait to be"
			    " checked already (%llu batches dropped so far)",
			    u.rq_bytes, (unsigned long long)u.rq_dropped);
		return;
	}
	b->next = NULL;
	b->len = len;
	/* As the payload says, but never more than its bytes could hold
	 * (a user key and a signature each, at least). */
	b->count = array_len(p, len);
	if (b->count > len / 96)
		b->count = (uint32_t)(len / 96);
	memcpy(b->data, p, len);
	if (u.rq_tail != NULL)
		u.rq_tail->next = b;
	else
		u.rq_head = b;
	u.rq_tail = b;
	u.rq_bytes += len;
	u.rq_inputs += b->count;
	if (u.rq_idle_on)
		uv_idle_start(&u.rq_idle, rq_idle_cb);
	room_update();
}

/* ---- a ledger closes ---- */

static int
cmp_ptr_input(const void *a, const void *b)
{
	const struct uin *x = *(struct uin *const *)a;
	const struct uin *y = *(struct uin *const *)b;
	int c = memcmp(x->user, y->user, 32);

	if (c != 0)
		return c;
	if (x->nonce != y->nonce)
		return x->nonce < y->nonce ? -1 : 1;
	return memcmp(x->hash, y->hash, 32);
}

/* The agreed inputs we hold, in ledger order (user, nonce, hash), each
 * passing the nonce rule in that order; *n of them. Caller frees. */
static struct uin **
ledger_inputs(const struct hp_set *inputs, uint32_t *n, uint32_t *missing)
{
	struct uin **v;

	*n = *missing = 0;
	if (inputs->n == 0)
		return NULL;
	if ((v = malloc(inputs->n * sizeof(*v))) == NULL)
		return NULL;
	for (uint32_t i = 0; i < inputs->n; i++) {
		struct uin *in = pool_find(inputs->items +
		    (size_t)i * HP_PROPOSAL_INPUT_WIDTH + 8);
		if (in != NULL)
			v[(*n)++] = in;
		else
			(*missing)++;
	}
	qsort(v, *n, sizeof(*v), cmp_ptr_input);
	return v;
}

size_t
userio_raw(const struct hp_ledger *l, const struct hp_set *users,
    const struct hp_set *inputs, struct ledger_raw *raw)
{
	msgpack_packer pk;
	struct uin **v;
	uint32_t n, missing;
	size_t nraw = 0;

	(void)users;
	msgpack_sbuffer_clear(&u.raw_in);
	msgpack_sbuffer_clear(&u.raw_out);
	v = ledger_inputs(inputs, &n, &missing);
	if (n > 0) {
		msgpack_packer_init(&pk, &u.raw_in, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, n);
		for (uint32_t i = 0; i < n; i++) {
			msgpack_pack_array(&pk, 4);
			hp_mpack_pack_bin(&pk, v[i]->user, 32);
			hp_mpack_pack_bin(&pk, v[i]->hash, 32);
			msgpack_pack_uint64(&pk, v[i]->nonce);
			hp_mpack_pack_bin(&pk, v[i]->blob, v[i]->blen);
		}
		raw[nraw].kind = LEDGER_RAW_INPUTS;
		raw[nraw].data = u.raw_in.data;
		raw[nraw++].len = u.raw_in.size;
	}
	free(v);
	if (u.have_out && u.out_seq + 1 == l->seq &&
	    memcmp(u.out_root, l->output_hash, 32) == 0 && u.out_users.size) {
		msgpack_sbuffer_write(&u.raw_out, u.out_users.data,
		    u.out_users.size);
		raw[nraw].kind = LEDGER_RAW_OUTPUTS;
		raw[nraw].data = u.raw_out.data;
		raw[nraw++].len = u.raw_out.size;
	}
	return nraw;
}

static void send_outputs(void);

static void
add_sig(const uint8_t pk[32], const uint8_t sig[64])
{
	uint32_t n;

	cons_unl(&n);
	if (!u.signing || u.nsig >= n || !cons_in_unl(pk))
		return;
	for (uint32_t i = 0; i < u.nsig; i++)
		if (memcmp(u.sig_pk[i], pk, 32) == 0)
			return;
	memcpy(u.sig_pk[u.nsig], pk, 32);
	memcpy(u.sig_sig[u.nsig], sig, 64);
	u.nsig++;
	/* The client needs 80 % of its trusted keys (the UNL). */
	if (!u.sig_sent && (uint64_t)u.nsig * 5 >= (uint64_t)n * 4)
		send_outputs();
}

/* Start collecting signatures over the root l carries (our run's). */
static void
start_signing(const struct hp_ledger *l)
{
	const struct hp_config *cfg = cons_cfg();
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint8_t sig[64];
	uint32_t n;

	cons_unl(&n);
	if (u.signing && !u.sig_sent)
		log_warnx("outputs of ledger %llu not delivered: %u of %u"
		    " UNL signatures", (unsigned long long)u.sig_seq, u.nsig, n);
	free(u.sig_pk);
	free(u.sig_sig);
	u.sig_pk = calloc(n ? n : 1, 32);
	u.sig_sig = calloc(n ? n : 1, 64);
	u.signing = u.sig_pk != NULL && u.sig_sig != NULL;
	if (!u.signing)
		return;
	u.sig_seq = l->seq;
	memcpy(u.sig_root, l->output_hash, 32);
	memcpy(u.sig_lhash, l->hash, 32);
	u.nsig = 0;
	u.sig_sent = 0;
	msgpack_sbuffer_clear(&u.sig_leaves);
	msgpack_sbuffer_clear(&u.sig_users);
	msgpack_sbuffer_write(&u.sig_leaves, u.out_leaves.data,
	    u.out_leaves.size);
	msgpack_sbuffer_write(&u.sig_users, u.out_users.data,
	    u.out_users.size);
	if (!cons_in_unl(cfg->node.keys.pk))
		goto early;
	/* The root is what the client verifies: the raw 32 bytes. */
	hp_sign(&cfg->node.keys, u.sig_root, 32, sig);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_uint64(&pk, l->seq);
	msgpack_pack_uint32(&pk, 2);
	hp_mpack_pack_bin(&pk, u.sig_root, 32);
	msgpack_pack_uint32(&pk, 3);
	hp_mpack_pack_bin(&pk, sig, 64);
	if (sb.data != NULL)
		cons_peer_send(HP_PT_OUTSIG, (const uint8_t *)sb.data, sb.size,
		    0, NULL);
	msgpack_sbuffer_destroy(&sb);
	add_sig(cfg->node.keys.pk, sig);
early:
	for (uint32_t i = 0; i < u.nearly; i++)
		if (u.early[i].seq == u.sig_seq &&
		    memcmp(u.early[i].root, u.sig_root, 32) == 0)
			add_sig(u.early[i].pk, u.early[i].sig);
}

void
userio_peer_outsig(const uint8_t from[32], const uint8_t *p, size_t len)
{
	msgpack_unpacked res;
	const msgpack_object *root, *sig;
	uint64_t seq = 0;

	if (hp_mpack_unpack(p, len, &res) != 0)
		return;
	root = get_bin(&res.data, 2, 32, 0);
	sig = get_bin(&res.data, 3, 64, 0);
	if (root == NULL || sig == NULL || hp_mpack_u64(&res.data, 1, &seq) ||
	    !cons_in_unl(from) ||
	    hp_verify(from, root->via.bin.ptr, 32, (const uint8_t *)
	    sig->via.bin.ptr) != 0) {
		msgpack_unpacked_destroy(&res);
		return;
	}
	if (u.signing && seq == u.sig_seq &&
	    memcmp(root->via.bin.ptr, u.sig_root, 32) == 0)
		add_sig(from, (const uint8_t *)sig->via.bin.ptr);
	else if (seq > lcl_seq(NULL) && seq <= lcl_seq(NULL) + 2) {
		/* A ring: the oldest goes first. */
		struct early_sig *e = &u.early[u.early_next++ % EARLY_SIGS];
		if (u.nearly < EARLY_SIGS)
			u.nearly++;
		e->seq = seq;
		memcpy(e->root, root->via.bin.ptr, 32);
		memcpy(e->pk, from, 32);
		memcpy(e->sig, sig->via.bin.ptr, 64);
	}
	msgpack_unpacked_destroy(&res);
}

static void
send_outputs(void)
{
	struct hp_frame f;

	u.sig_sent = 1;
	if (!hp_worker_sibling_up(HP_W_GATEWAY))
		return;
	hp_frame_begin(&f, HP_MSG_GW_OUTPUTS, 0, 0);
	msgpack_pack_map(&f.pk, 5);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, u.sig_seq);
	msgpack_pack_uint32(&f.pk, 2);
	hp_mpack_pack_bin(&f.pk, u.sig_lhash, 32);
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_sbuffer_write(&f.sb, u.sig_leaves.data, u.sig_leaves.size);
	msgpack_pack_uint32(&f.pk, 4);
	msgpack_pack_array(&f.pk, u.nsig);
	for (uint32_t i = 0; i < u.nsig; i++) {
		msgpack_pack_array(&f.pk, 2);
		hp_mpack_pack_bin(&f.pk, u.sig_pk[i], 32);
		hp_mpack_pack_bin(&f.pk, u.sig_sig[i], 64);
	}
	msgpack_pack_uint32(&f.pk, 5);
	msgpack_sbuffer_write(&f.sb, u.sig_users.data, u.sig_users.size);
	if (hp_worker_send(HP_W_GATEWAY, &f, -1) == 0)
		u.outputs_sent++;
}

/* RUN for the runner: the ledger, the UNL, the users and their inputs.
 * 1 when it was sent. */
static int
send_run(const struct hp_ledger *l, const struct hp_set *users,
    struct uin **v, uint32_t n)
{
	const struct hp_config *cfg = cons_cfg();
	struct hp_frame f;
	uint32_t nunl, k = 0;
	const uint8_t *unl = cons_unl(&nunl);

	/* The runner runs nothing without an absolute bin_path (it says so
	 * at start): no RUN, and no wait for one. */
	if (!cfg->contract.execute || cfg->contract.bin_path == NULL ||
	    cfg->contract.bin_path[0] != '/' ||
	    !hp_worker_sibling_up(HP_W_RUNNER))
		return 0;
	hp_frame_begin(&f, HP_MSG_RUN, 0, 0);
	msgpack_pack_map(&f.pk, 5);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, l->seq);
	msgpack_pack_uint32(&f.pk, 2);
	hp_mpack_pack_bin(&f.pk, l->hash, 32);
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_uint64(&f.pk, l->time);
	msgpack_pack_uint32(&f.pk, 4);
	msgpack_pack_array(&f.pk, nunl);
	for (uint32_t i = 0; i < nunl; i++) {
		msgpack_pack_array(&f.pk, 2);
		hp_mpack_pack_bin(&f.pk, unl + (size_t)i * 32, 32);
		msgpack_pack_uint64(&f.pk, cons_active_on(unl + (size_t)i * 32));
	}
	msgpack_pack_uint32(&f.pk, 5);
	msgpack_pack_array(&f.pk, users->n);
	for (uint32_t i = 0; i < users->n; i++) {
		const uint8_t *uk = users->items + (size_t)i * 32;
		uint32_t m = 0;

		while (k < n && memcmp(v[k]->user, uk, 32) < 0)
			k++;	/* inputs of a user not in the set: none */
		while (k + m < n && memcmp(v[k + m]->user, uk, 32) == 0)
			m++;
		msgpack_pack_array(&f.pk, 2);
		hp_mpack_pack_bin(&f.pk, uk, 32);
		msgpack_pack_array(&f.pk, m);
		for (uint32_t j = 0; j < m; j++) {
			msgpack_pack_array(&f.pk, 3);
			hp_mpack_pack_bin(&f.pk, v[k + j]->hash, 32);
			msgpack_pack_uint64(&f.pk, v[k + j]->nonce);
			hp_mpack_pack_bin(&f.pk, v[k + j]->blob, v[k + j]->blen);
		}
		k += m;
	}
	return hp_worker_send(HP_W_RUNNER, &f, -1) == 0;
}

int
userio_closed(const struct hp_ledger *l, const struct hp_set *users,
    const struct hp_set *inputs)
{
	struct uin **v;
	uint32_t n, missing, nacc = 0, nrej = 0;
	int ran;
	struct hp_frame f;
	static const uint8_t zero[32];

	/* Our run over the new lcl has not happened yet. */
	round_set_output(cons_round(), zero);
	rq_drain();
	v = ledger_inputs(inputs, &n, &missing);
	if (missing > 0)
		log_warnx("ledger %llu: %u of its inputs never reached this"
		    " node; the contract runs without them",
		    (unsigned long long)l->seq, missing);
	/* The nonce rule, in ledger order: an input of a user whose nonce is
	 * not above the one accepted before it is dropped (nonce_expired). */
	for (uint32_t i = 0; i < n; i++) {
		v[i]->in_ledger = 1;
		v[i]->verdict = nonce_ok(v[i]->user, v[i]->nonce, l->seq - 1) ?
		    V_ACCEPTED : V_NONCE;
		if (v[i]->verdict == V_ACCEPTED)
			nonce_record(v[i]->user, v[i]->nonce,
			    v[i]->max_ledger, l->seq);
	}
	/* Inputs still held that this ledger made too old. */
	for (uint32_t i = 0; i < u.npool; i++)
		if (!u.pool[i]->in_ledger && u.pool[i]->max_ledger <= l->seq)
			u.pool[i]->verdict = V_EXPIRED;
	for (uint32_t i = 0; i < u.npool; i++) {
		const struct uin *in = u.pool[i];
		if (in->local && in->verdict == V_ACCEPTED && in->in_ledger)
			nacc++;
		else if (in->local && in->verdict != V_ACCEPTED)
			nrej++;
	}
	u.accepted += nacc;
	u.rejected += nrej;
	if ((nacc > 0 || nrej > 0) && hp_worker_sibling_up(HP_W_GATEWAY)) {
		hp_frame_begin(&f, HP_MSG_GW_SETTLED, 0, 0);
		msgpack_pack_map(&f.pk, 4);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_uint64(&f.pk, l->seq);
		msgpack_pack_uint32(&f.pk, 2);
		hp_mpack_pack_bin(&f.pk, l->hash, 32);
		msgpack_pack_uint32(&f.pk, 3);
		msgpack_pack_array(&f.pk, nacc);
		for (uint32_t i = 0; i < u.npool; i++) {
			const struct uin *in = u.pool[i];
			if (!in->local || in->verdict != V_ACCEPTED ||
			    !in->in_ledger)
				continue;
			msgpack_pack_array(&f.pk, 2);
			hp_mpack_pack_bin(&f.pk, in->user, 32);
			hp_mpack_pack_bin(&f.pk, in->hash, 32);
		}
		msgpack_pack_uint32(&f.pk, 4);
		msgpack_pack_array(&f.pk, nrej);
		for (uint32_t i = 0; i < u.npool; i++) {
			const struct uin *in = u.pool[i];
			if (!in->local || in->verdict == V_ACCEPTED)
				continue;
			msgpack_pack_array(&f.pk, 3);
			hp_mpack_pack_bin(&f.pk, in->user, 32);
			hp_mpack_pack_bin(&f.pk, in->hash, 32);
			hp_mpack_pack_cstr(&f.pk, in->verdict == V_NONCE ?
			    "nonce_expired" : "max_ledger_expired");
		}
		hp_worker_send(HP_W_GATEWAY, &f, -1);
	}
	/* The run sees only the accepted ones. */
	{
		uint32_t k = 0;
		for (uint32_t i = 0; i < n; i++)
			if (v[i]->verdict == V_ACCEPTED)
				v[k++] = v[i];
		ran = send_run(l, users, v, k);
	}
	free(v);
	/* Drop what this ledger consumed and what it made too old. */
	for (uint32_t i = u.npool; i-- > 0;)
		if (u.pool[i]->in_ledger || u.pool[i]->verdict != V_ACCEPTED)
			pool_remove_at(i);
	room_update();
	if (u.have_out && u.out_seq + 1 == l->seq &&
	    memcmp(u.out_root, l->output_hash, 32) == 0 &&
	    memcmp(zero, l->output_hash, 32) != 0)
		start_signing(l);
	else if (memcmp(zero, l->output_hash, 32) != 0)
		log_warnx("ledger %llu carries outputs this node's run did"
		    " not produce; the other nodes deliver them",
		    (unsigned long long)l->seq);
	else if (u.have_out && u.out_seq + 1 == l->seq &&
	    memcmp(zero, u.out_root, 32) != 0)
		log_warnx("ledger %llu carries no outputs, though this node's"
		    " run over ledger %llu produced some: the UNL did not agree"
		    " on an output root (outputs that differ between nodes?);"
		    " they are not delivered", (unsigned long long)l->seq,
		    (unsigned long long)u.out_seq);
	u.have_out = 0;
	send_status();
	return ran;
}

/* ---- the gateway and the runner ---- */

static void
on_sign_req(struct hp_msg *m)
{
	const struct hp_config *cfg = cons_cfg();
	char ch[33];
	size_t cl, il = strlen(cfg->contract.id),
	    vl = strlen(cfg->contract.version);
	uint8_t sig[64], *msg;
	struct hp_frame f;

	if (hp_mpack_str(m->body, 1, ch, sizeof(ch)) != 0 ||
	    (cl = strlen(ch)) == 0)
		return;
	if ((msg = malloc(cl + il + vl)) == NULL)
		return;
	/* HotPocket's handshake: server_challenge || contract id ||
	 * contract version, nothing between them. */
	memcpy(msg, ch, cl);
	memcpy(msg + cl, cfg->contract.id, il);
	memcpy(msg + cl + il, cfg->contract.version, vl);
	hp_sign(&cfg->node.keys, msg, cl + il + vl, sig);
	free(msg);
	hp_frame_begin(&f, HP_MSG_GW_SIGN_RES, m->id, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	hp_mpack_pack_bin(&f.pk, sig, 64);
	hp_worker_send(HP_W_GATEWAY, &f, -1);
}

static void
on_users(struct hp_msg *m)
{
	const msgpack_object *a = hp_mpack_get(m->body, 1);
	uint8_t *keys;
	uint32_t n = 0;

	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY ||
	    a->via.array.size > HP_PROPOSAL_MAX_SET)
		return;
	if ((keys = malloc((size_t)(a->via.array.size ? a->via.array.size :
	    1) * 32)) == NULL)
		return;
	for (uint32_t i = 0; i < a->via.array.size; i++) {
		const msgpack_object *k = &a->via.array.ptr[i];
		if (k->type == MSGPACK_OBJECT_BIN && k->via.bin.size == 32)
			memcpy(keys + (size_t)n++ * 32, k->via.bin.ptr, 32);
	}
	round_set_users(cons_round(), keys, n);
	free(keys);
}

static void
on_ledger_query(struct hp_msg *m)
{
	struct hp_ledger l;
	struct hp_frame f;
	uint64_t seq = 0;
	bool want_in = false, want_out = false;
	uint8_t *raw_in = NULL, *raw_out = NULL;
	size_t in_len = 0, out_len = 0;
	int found, r;

	if (hp_mpack_u64(m->body, 1, &seq) != 0)
		return;
	(void)hp_mpack_bool(m->body, 2, &want_in);
	(void)hp_mpack_bool(m->body, 3, &want_out);
	r = ledger_store_get(cons_store(), seq, &l);
	found = r == 0;
	if (found && want_in && seq > 0)
		ledger_store_raw_get(cons_store(), seq, LEDGER_RAW_INPUTS,
		    &raw_in, &in_len);
	if (found && want_out && seq > 0)
		ledger_store_raw_get(cons_store(), seq, LEDGER_RAW_OUTPUTS,
		    &raw_out, &out_len);
	hp_frame_begin(&f, HP_MSG_GW_LEDGER_RES, m->id, 0);
	msgpack_pack_map(&f.pk, 1 + (found ? 1 + want_in + want_out : 0) +
	    (r != 0 && r != HP_ENOENT));
	msgpack_pack_uint32(&f.pk, 1);
	if (found)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	if (found) {
		msgpack_pack_uint32(&f.pk, 2);
		pack_lmap(&f.pk, &l);
		if (want_in) {
			msgpack_pack_uint32(&f.pk, 3);
			if (in_len > 0)
				msgpack_sbuffer_write(&f.sb, (char *)raw_in,
				    in_len);
			else
				msgpack_pack_array(&f.pk, 0);
		}
		if (want_out) {
			msgpack_pack_uint32(&f.pk, 4);
			if (out_len > 0)
				msgpack_sbuffer_write(&f.sb, (char *)raw_out,
				    out_len);
			else
				msgpack_pack_array(&f.pk, 0);
		}
	}
	if (r != 0 && r != HP_ENOENT) {
		msgpack_pack_uint32(&f.pk, 5);
		hp_mpack_pack_cstr(&f.pk, hp_strerror(r));
	}
	free(raw_in);
	free(raw_out);
	hp_worker_send(HP_W_GATEWAY, &f, -1);
}

void
userio_gw_msg(struct hp_msg *m)
{
	switch (m->type) {
	case HP_MSG_GW_SIGN_REQ:
		on_sign_req(m);
		break;
	case HP_MSG_GW_INPUT:
		on_input(m->body, 1);
		break;
	case HP_MSG_GW_USERS:
		on_users(m);
		break;
	case HP_MSG_GW_LEDGER_QUERY:
		on_ledger_query(m);
		break;
	default:
		break;
	}
}

static void
on_run_done(struct hp_msg *m)
{
	const msgpack_object *root = get_bin(m->body, 2, 32, 0);
	const msgpack_object *leaves = hp_mpack_get(m->body, 3);
	const msgpack_object *users = hp_mpack_get(m->body, 4);
	msgpack_packer pk;
	uint64_t seq = 0;

	const msgpack_object *st = get_bin(m->body, 5, 32, 0);
	const msgpack_object *pt = get_bin(m->body, 6, 32, 0);

	if (root == NULL || leaves == NULL || users == NULL ||
	    leaves->type != MSGPACK_OBJECT_ARRAY ||
	    users->type != MSGPACK_OBJECT_ARRAY ||
	    hp_mpack_u64(m->body, 1, &seq) != 0) {
		log_warnx("malformed RUN_DONE from the runner; ignored");
		return;
	}
	/* Only the run over our lcl decides the next ledger's outputs. Its
	 * root goes into the round before the hold is released: the first
	 * proposal after the release must carry it, or the stage votes
	 * that follow cannot agree on it and the ledger carries none. */
	if (seq == lcl_seq(NULL)) {
		u.have_out = 1;
		u.out_seq = seq;
		memcpy(u.out_root, root->via.bin.ptr, 32);
		msgpack_sbuffer_clear(&u.out_leaves);
		msgpack_sbuffer_clear(&u.out_users);
		msgpack_packer_init(&pk, &u.out_leaves, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, *leaves);
		msgpack_packer_init(&pk, &u.out_users, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, *users);
		round_set_output(cons_round(), u.out_root);
	}
	cons_run_done(seq, st != NULL && pt != NULL ?
	    (const uint8_t *)st->via.bin.ptr : NULL, st != NULL && pt != NULL ?
	    (const uint8_t *)pt->via.bin.ptr : NULL);
}

/* ---- NPL: contract instances talking, signed by their nodes ---- */

#define NPL_DOMAIN "hpd npl v1\n"
#define NPL_MAX (128u * 1024)

static void
npl_sig_msg(uint64_t seq, const uint8_t *data, size_t len, uint8_t **out,
    size_t *outlen)
{
	size_t dl = sizeof(NPL_DOMAIN) - 1;
	uint8_t *m = malloc(dl + 8 + len + 1);

	*out = m;
	*outlen = dl + 8 + len;
	if (m == NULL)
		return;
	memcpy(m, NPL_DOMAIN, dl);
	for (int i = 0; i < 8; i++)
		m[dl + i] = (uint8_t)(seq >> (56 - 8 * i));
	memcpy(m + dl + 8, data, len);
}

static void
npl_deliver(uint64_t seq, const uint8_t from[32], const uint8_t *data,
    size_t len)
{
	struct hp_frame f;

	if (!hp_worker_sibling_up(HP_W_RUNNER))
		return;
	hp_frame_begin(&f, HP_MSG_NPL_IN, 0, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, seq);
	msgpack_pack_uint32(&f.pk, 2);
	hp_mpack_pack_bin(&f.pk, from, 32);
	msgpack_pack_uint32(&f.pk, 3);
	hp_mpack_pack_bin(&f.pk, data, len);
	hp_worker_send(HP_W_RUNNER, &f, -1);
}

/* Our contract sent an NPL message: sign it, send it to the UNL (or
 * every peer in public NPL mode) and back to our own contract. */
static void
on_npl_out(struct hp_msg *m)
{
	const struct hp_config *cfg = cons_cfg();
	const msgpack_object *d = get_bin(m->body, 2, 0, NPL_MAX);
	uint64_t seq = 0;
	uint8_t sig[64], *msg;
	size_t mlen;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (d == NULL || hp_mpack_u64(m->body, 1, &seq) != 0)
		return;
	/* An observer's contract talks to nobody (HotPocket). */
	if (!cons_in_unl(cfg->node.keys.pk) ||
	    cfg->node.role == HP_ROLE_OBSERVER)
		return;
	npl_sig_msg(seq, (const uint8_t *)d->via.bin.ptr, d->via.bin.size,
	    &msg, &mlen);
	if (msg == NULL)
		return;
	hp_sign(&cfg->node.keys, msg, mlen, sig);
	free(msg);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	msgpack_pack_uint32(&pk, 1);
	hp_mpack_pack_bin(&pk, cfg->node.keys.pk, 32);
	msgpack_pack_uint32(&pk, 2);
	msgpack_pack_uint64(&pk, seq);
	msgpack_pack_uint32(&pk, 3);
	hp_mpack_pack_bin(&pk, d->via.bin.ptr, d->via.bin.size);
	msgpack_pack_uint32(&pk, 4);
	hp_mpack_pack_bin(&pk, sig, 64);
	if (sb.data != NULL)
		cons_peer_send(HP_PT_NPL, (const uint8_t *)sb.data, sb.size,
		    cfg->contract.npl.mode == HP_MODE_PRIVATE, NULL);
	msgpack_sbuffer_destroy(&sb);
	npl_deliver(seq, cfg->node.keys.pk, (const uint8_t *)d->via.bin.ptr,
	    d->via.bin.size);
}

void
userio_peer_npl(const uint8_t from[32], const uint8_t *p, size_t len)
{
	msgpack_unpacked res;
	const msgpack_object *pk, *d, *sig;
	uint64_t seq = 0;
	uint8_t *msg;
	size_t mlen;

	(void)from;
	if (hp_mpack_unpack(p, len, &res) != 0)
		return;
	pk = get_bin(&res.data, 1, 32, 0);
	d = get_bin(&res.data, 3, 0, NPL_MAX);
	sig = get_bin(&res.data, 4, 64, 0);
	if (pk == NULL || d == NULL || sig == NULL ||
	    hp_mpack_u64(&res.data, 2, &seq) != 0 ||
	    !cons_in_unl((const uint8_t *)pk->via.bin.ptr)) {
		msgpack_unpacked_destroy(&res);
		return;
	}
	npl_sig_msg(seq, (const uint8_t *)d->via.bin.ptr, d->via.bin.size,
	    &msg, &mlen);
	if (msg != NULL && hp_verify((const uint8_t *)pk->via.bin.ptr, msg,
	    mlen, (const uint8_t *)sig->via.bin.ptr) == 0)
		npl_deliver(seq, (const uint8_t *)pk->via.bin.ptr,
		    (const uint8_t *)d->via.bin.ptr, d->via.bin.size);
	free(msg);
	msgpack_unpacked_destroy(&res);
}

/* ---- control messages from the contract (§6.5) ---- */

#define CHANGESET_MAX 256	/* addresses per list */

static int
pack_addrs(msgpack_packer *pk, json_t *a)
{
	size_t i, n = 0;
	json_t *v;

	json_array_foreach(a, i, v)
		if (json_is_string(v) && json_string_length(v) <= 300)
			n++;
	msgpack_pack_array(pk, n);
	json_array_foreach(a, i, v)
		if (json_is_string(v) && json_string_length(v) <= 300)
			hp_mpack_pack_cstr(pk, json_string_value(v));
	return 0;
}

/* {"type":"peer_changeset","add":[...],"remove":[...] or "*"}: to the
 * peer worker, which applies it unless peer discovery is on. */
static void
on_control(struct hp_msg *m)
{
	const msgpack_object *d = get_bin(m->body, 2, 0, NPL_MAX);
	json_t *j, *type, *add, *rem;
	struct hp_frame f;
	int all;

	if (d == NULL || (j = json_loadb(d->via.bin.ptr, d->via.bin.size,
	    JSON_REJECT_DUPLICATES, NULL)) == NULL) {
		log_warnx("a control message from the contract is not JSON;"
		    " ignored");
		return;
	}
	type = json_object_get(j, "type");
	add = json_object_get(j, "add");
	rem = json_object_get(j, "remove");
	all = json_is_string(rem) && strcmp(json_string_value(rem), "*") == 0;
	if (!json_is_string(type) ||
	    strcmp(json_string_value(type), "peer_changeset") != 0 ||
	    (add != NULL && !json_is_array(add)) ||
	    (rem != NULL && !json_is_array(rem) && !all) ||
	    (add != NULL && json_array_size(add) > CHANGESET_MAX) ||
	    (json_is_array(rem) && json_array_size(rem) > CHANGESET_MAX)) {
		log_warnx("a control message from the contract is not a valid"
		    " peer_changeset; ignored");
		json_decref(j);
		return;
	}
	hp_frame_begin(&f, HP_MSG_PEER_CHANGESET, 0, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint32(&f.pk, 1);
	if (add != NULL)
		pack_addrs(&f.pk, add);
	else
		msgpack_pack_array(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 2);
	if (json_is_array(rem))
		pack_addrs(&f.pk, rem);
	else
		msgpack_pack_array(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 3);
	if (all)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	hp_worker_send(HP_W_PEER, &f, -1);
	json_decref(j);
}

void
userio_runner_msg(struct hp_msg *m)
{
	if (m->type == HP_MSG_RUN_DONE)
		on_run_done(m);
	else if (m->type == HP_MSG_NPL_OUT)
		on_npl_out(m);
	else if (m->type == HP_MSG_CONTRACT_CONTROL)
		on_control(m);
}
