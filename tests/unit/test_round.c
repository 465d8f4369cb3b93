/*
 * test_round.c — the round state machine (workers/consensus/round.c) in
 * small, exact scenarios: stage timing arithmetic, HotPocket's stage
 * requirement table and its float quirks, early stage completion, a
 * three-node exchange that closes a ledger within one round, an observer
 * that closes without proposing, unreliable rounds and time_config
 * adoption, the sync action, locks (a locked node re-proposes its ledger
 * and the others adopt it), and stale, future, duplicate and malformed
 * proposals being ignored. Signatures are fake: the state machine only
 * asks for them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ledger.h"
#include "proposal.h"
#include "round.h"

#define T0 1000000ULL	/* a round boundary at offset 0 */
#define MAXN 8

struct tnode {
	struct round *r;
	uint8_t pk[32];
	int validator;
	int nstored;
	struct hp_ledger stored;
	int nsent;
	int nsync;
	struct round_out last_sync;
};

struct net {
	struct tnode n[MAXN];
	int nn;
	uint8_t unl[MAXN * 32];
	int nunl;
	/* drop[from][to] drops proposals of stage >= drop_stage on that
	 * link; stage_mask limits which stages go anywhere. */
	int drop[MAXN][MAXN];
	int drop_stage;
	unsigned stage_mask;
	struct { int from; struct hp_proposal *p; } q[4096];
	int qh, qt;
};

static int
fake_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
	memset(sig, 0x5a, 64);
	return 0;
}

static void
key(uint8_t pk[32], int i)
{
	memset(pk, 0, 32);
	pk[0] = (uint8_t)(0x10 + i);
}

/* nunl validators (keys 0..nunl-1) and nobs observers after them. */
static void
net_init(struct net *net, int nunl, int nobs, uint32_t threshold,
    uint32_t roundtime)
{
	struct hp_ledger g;

	memset(net, 0, sizeof(*net));
	net->nn = nunl + nobs;
	net->nunl = nunl;
	net->stage_mask = 0x1f;
	for (int i = 0; i < nunl; i++)
		key(net->unl + i * 32, i);
	hp_ledger_genesis(&g);
	for (int i = 0; i < net->nn; i++) {
		struct round_cfg c;

		memset(&c, 0, sizeof(c));
		key(net->n[i].pk, i);
		memcpy(c.self, net->n[i].pk, 32);
		c.validator = i < nunl;
		c.unl = net->unl;
		c.unl_n = (uint32_t)nunl;
		c.threshold = threshold;
		c.roundtime = roundtime;
		c.stage_slice = 25;
		c.nonce_seed[0] = (uint8_t)i;
		c.sign = fake_sign;
		net->n[i].validator = c.validator;
		net->n[i].r = round_new(&c, &g);
		assert_non_null(net->n[i].r);
	}
}

static void
net_free(struct net *net)
{
	while (net->qh < net->qt) {
		hp_proposal_free(net->q[net->qh].p);
		free(net->q[net->qh++].p);
	}
	for (int i = 0; i < net->nn; i++)
		round_free(net->n[i].r);
}

static void
take(struct net *net, int i, struct round_out *o)
{
	for (size_t k = 0; k < o->nprops; k++) {
		assert_true(net->n[i].validator);
		assert_true(net->qt < 4096);
		net->q[net->qt].from = i;
		net->q[net->qt++].p = o->props[k];
		o->props[k] = NULL;
		net->n[i].nsent++;
	}
	o->nprops = 0;
	if (o->store) {
		net->n[i].nstored++;
		net->n[i].stored = o->ledger;
	}
	if (o->sync) {
		net->n[i].nsync++;
		net->n[i].last_sync = *o;
	}
	round_out_free(o);
}

/* Deliver everything queued (and what it causes) at time now. */
static void
net_run(struct net *net, uint64_t now)
{
	while (net->qh < net->qt) {
		int from = net->q[net->qh].from;
		struct hp_proposal *p = net->q[net->qh++].p;

		for (int to = 0; to < net->nn; to++) {
			struct round_out o;

			if (to == from || (net->drop[from][to] &&
			    p->stage >= net->drop_stage) ||
			    !(net->stage_mask & (1u << p->stage)))
				continue;
			round_proposal(net->n[to].r, now, p, &o);
			take(net, to, &o);
		}
		hp_proposal_free(p);
		free(p);
	}
}

static void
net_tick(struct net *net, uint64_t now)
{
	for (int i = 0; i < net->nn; i++) {
		struct round_out o;

		if (round_deadline(net->n[i].r) > now)
			continue;
		round_tick(net->n[i].r, now, &o);
		take(net, i, &o);
	}
	net_run(net, now);
}

static void
test_timing(void **state)
{
	struct net net;
	struct round_out o;

	/* Default 1000/25: every stage 250 ms. UNL of 3, only node 0 runs. */
	net_init(&net, 3, 0, 80, 1000);
	assert_int_equal(round_deadline(net.n[0].r), 0);
	round_tick(net.n[0].r, T0 + 5, &o);
	assert_int_equal(o.nprops, 1);
	assert_int_equal(o.props[0]->stage, 0);
	assert_int_equal(o.props[0]->round, T0);
	assert_int_equal(o.props[0]->time, T0);
	assert_int_equal(o.props[0]->time_config, 100025);
	round_out_free(&o);
	assert_int_equal(round_deadline(net.n[0].r), T0 + 250);
	round_tick(net.n[0].r, T0 + 250, &o);
	/* Alone: unreliable, the round is abandoned until the boundary. */
	assert_int_equal(o.nprops, 0);
	assert_int_equal(round_deadline(net.n[0].r), T0 + 1000);
	net_free(&net);

	/* 1000/33: stages 1..3 get 330 ms, stage 0 the remaining 10. */
	{
		struct hp_ledger g;
		uint8_t unl[32] = { 1 };
		struct round_cfg c = { .unl = unl, .unl_n = 1, .threshold = 80,
		    .roundtime = 1000, .stage_slice = 33, .offset = 2401,
		    .sign = fake_sign };
		struct round *r;

		hp_ledger_genesis(&g);
		r = round_new(&c, &g);	/* self not in UNL: observer */
		assert_non_null(r);
		round_tick(r, T0 + 405, &o);
		assert_int_equal(o.nprops, 0);
		/* offset 2401 % 1000 = 401: the round began at T0 + 401. */
		assert_int_equal(round_deadline(r), T0 + 401 + 10);
		round_free(r);
		c.stage_slice = 34;
		assert_null(round_new(&c, &g));
		c.stage_slice = 25;
		c.roundtime = 0;
		assert_null(round_new(&c, &g));
	}
}

static void
test_stage_requirements(void **state)
{
	static const uint32_t want[10] = { 1, 2, 3, 4, 4, 5, 6, 7, 8, 8 };
	static const uint32_t rn[3] = { 50, 65, 80 };

	for (uint32_t n = 1; n <= 10; n++)
		assert_int_equal(round_stage_required(80, n, 3), want[n - 1]);
	assert_int_equal(round_stage_required(80, 10, 1), 5);
	assert_int_equal(round_stage_required(80, 10, 2), 7);
	assert_int_equal(round_stage_required(80, 10, 0), 0);
	/* The float expression departs from the exact rational ceiling
	 * ceil(rn * threshold * n / 8000) only at thresholds 26, 52, 54 and
	 * 94 (UNL 1..64), as in HotPocket. */
	for (uint32_t th = 1; th <= 100; th++) {
		int differs = 0;

		for (uint32_t n = 1; n <= 64; n++)
			for (int s = 1; s <= 3; s++) {
				uint64_t num = (uint64_t)rn[s - 1] * th * n;
				uint32_t exact = (uint32_t)((num + 7999) /
				    8000);

				if (round_stage_required(th, n, s) != exact)
					differs = 1;
			}
		assert_int_equal(differs, th == 26 || th == 52 || th == 54 ||
		    th == 94);
	}
}

/* Three validators and an observer, lossless and instantaneous: every
 * stage completes early, the ledger closes at the round boundary itself
 * without any stage timer. */
static void
test_exchange_closes(void **state)
{
	struct net net;
	struct round_status st;
	uint8_t user[32] = { 7 }, oh[40] = { 0 };

	net_init(&net, 3, 1, 80, 1000);
	oh[7] = 1;
	oh[8] = 0xaa;
	for (int i = 0; i < 3; i++)
		assert_int_equal(round_add_input(net.n[i].r, user, oh), 0);
	/* Held once: a second add is caught now or when the pool settles. */
	{
		int r = round_add_input(net.n[0].r, user, oh);
		assert_true(r == 0 || r == HP_EEXIST);
	}
	net_tick(&net, T0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(net.n[i].nstored, 1);
		assert_int_equal(net.n[i].stored.seq, 1);
		assert_memory_equal(net.n[i].stored.hash, net.n[0].stored.hash,
		    32);
		assert_int_equal(net.n[i].stored.time, T0);
		assert_int_equal(net.n[i].stored.nsigs, 3);
		round_status(net.n[i].r, &st);
		assert_int_equal(st.lcl_seq, 1);
		assert_int_equal(st.vote, ROUND_SYNCED);
		assert_int_equal(st.ledgers_closed, 1);
		assert_false(st.locked);
	}
	/* The ledger recomputes and records the input. */
	{
		struct hp_ledger l = net.n[0].stored;
		uint8_t ih[32];

		hp_ledger_compute_hash(&l);
		assert_memory_equal(l.hash, net.n[0].stored.hash, 32);
		hp_list_hash(oh + 8, 1, ih);
		assert_memory_equal(l.input_hash, ih, 32);
		hp_list_hash(user, 1, ih);
		assert_memory_equal(l.user_hash, ih, 32);
		for (uint32_t k = 1; k < l.nsigs; k++)
			assert_true(memcmp(l.sigs[k - 1].pk, l.sigs[k].pk,
			    32) < 0);
	}
	/* 5 proposals each (stages 0..3 + COMMIT), the observer none. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(net.n[i].nsent, 5);
	assert_int_equal(net.n[3].nsent, 0);
	/* Nothing more until the next boundary; then ledger 2. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(round_deadline(net.n[i].r), T0 + 1000);
	net_tick(&net, T0 + 1000);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(net.n[i].stored.seq, 2);
		assert_memory_equal(net.n[i].stored.prev_hash,
		    net.n[0].stored.prev_hash, 32);
	}
	net_free(&net);
}

/* Without the last member's stage-0 proposal the next stage waits for
 * its timer; with it, it starts at once. */
static void
test_early_completion(void **state)
{
	struct net net;
	struct round_out o;

	net_init(&net, 3, 0, 80, 1000);
	net.drop[2][0] = 1;	/* node 0 never hears node 2 */
	net_tick(&net, T0);
	assert_int_equal(net.n[0].nsent, 1);	/* stage 0 only */
	assert_int_equal(round_deadline(net.n[0].r), T0 + 250);
	net_free(&net);

	net_init(&net, 3, 0, 80, 1000);
	net.drop[0][2] = net.drop[1][2] = 1;	/* node 2 is not up yet */
	round_tick(net.n[0].r, T0, &o);
	take(&net, 0, &o);
	round_tick(net.n[1].r, T0, &o);
	take(&net, 1, &o);
	net_run(&net, T0 + 3);
	/* Node 0 has 2 of 3 stage-0 proposals: still waiting. */
	assert_int_equal(net.n[0].nsent, 1);
	assert_int_equal(round_deadline(net.n[0].r), T0 + 250);
	round_tick(net.n[2].r, T0 + 4, &o);
	take(&net, 2, &o);
	net_run(&net, T0 + 5);
	/* The third arrived: stage 1 ran at T0 + 5, not at T0 + 250. */
	assert_int_equal(net.n[0].nsent, 2);
	assert_int_equal(net.n[1].nsent, 2);
	assert_int_equal(round_deadline(net.n[0].r), T0 + 500);
	net_free(&net);
}

static void
test_unreliable_and_time_config(void **state)
{
	struct net net;
	struct round_status st;
	struct round_out o;

	/* UNL 5 (quorum 4): node 0 hears only node 1. */
	net_init(&net, 5, 0, 80, 1000);
	for (int k = 0; k < 5; k++) {
		uint64_t t = T0 + (uint64_t)k * 1000;

		round_tick(net.n[0].r, t, &o);
		take(&net, 0, &o);
		/* node 1 runs another time_config (2000/25) */
		{
			struct hp_proposal p;

			memset(&p, 0, sizeof(p));
			key(p.pubkey, 1);
			p.round = t;
			p.time = t;
			p.time_config = 200025;
			round_proposal(net.n[0].r, t + 1, &p, &o);
			take(&net, 0, &o);
		}
		round_tick(net.n[0].r, t + 250, &o);
		assert_int_equal(o.nprops, 0);
		take(&net, 0, &o);
		round_status(net.n[0].r, &st);
		assert_int_equal(st.vote, ROUND_UNRELIABLE);
		if (k < 4) {
			assert_int_equal(st.unreliable_rounds, k + 1);
			assert_int_equal(st.time_config, 100025);
		}
	}
	/* The fifth unreliable round adopts the UNL's time_config. */
	round_status(net.n[0].r, &st);
	assert_int_equal(st.time_config, 200025);
	assert_int_equal(st.unreliable_rounds, 0);
	assert_int_equal(st.members[1].time_config, 200025);
	assert_int_equal(st.members[1].last_time, T0 + 4000);
	assert_int_equal(st.members[2].last_time, 0);
	net_free(&net);
}

static void
feed_stage0(struct round *r, uint64_t now, int who, uint64_t round,
    uint64_t lcl_seq, uint8_t lcl_byte, struct round_out *o)
{
	struct hp_proposal p;

	memset(&p, 0, sizeof(p));
	key(p.pubkey, who);
	p.round = p.time = round;
	p.time_config = 100025;
	p.lcl_seq = lcl_seq;
	memset(p.lcl_hash, lcl_byte, 32);
	round_proposal(r, now, &p, o);
}

#define NOW (T0 + 1)
static void
test_sync_action(void **state)
{
	struct net net;
	struct round_out o;
	struct round_status st;
	struct hp_ledger l;

	net_init(&net, 3, 0, 80, 1000);
	round_tick(net.n[0].r, T0, &o);
	round_out_free(&o);
	feed_stage0(net.n[0].r, NOW, 1, T0, 5, 0xee, &o);
	round_out_free(&o);
	feed_stage0(net.n[0].r, NOW, 2, T0, 5, 0xee, &o);
	/* All three stage-0 proposals in: stage 1 runs and wants ledgers. */
	assert_int_equal(o.sync, 1);
	assert_int_equal(o.sync_seq, 5);
	assert_int_equal(o.sync_hash[0], 0xee);
	assert_int_equal(o.sync_nfrom, 2);
	assert_int_equal(o.sync_from[0][0], 0x11);
	assert_int_equal(o.sync_from[1][0], 0x12);
	assert_int_equal(o.nprops, 0);
	round_out_free(&o);
	round_status(net.n[0].r, &st);
	assert_int_equal(st.vote, ROUND_DESYNC);
	memset(&l, 0, sizeof(l));
	l.seq = 5;
	memset(l.hash, 0xee, 32);
	round_synced(net.n[0].r, T0 + 300, &l, &o);
	round_out_free(&o);
	round_status(net.n[0].r, &st);
	assert_int_equal(st.lcl_seq, 5);
	assert_int_equal(st.lcl_hash[0], 0xee);
	/* An older ledger is no sync. */
	l.seq = 3;
	round_synced(net.n[0].r, T0 + 301, &l, &o);
	round_out_free(&o);
	round_status(net.n[0].r, &st);
	assert_int_equal(st.lcl_seq, 5);
	net_free(&net);
}

/*
 * Round 1: only node 0 sees the stage-3 prevotes, so only it commits and
 * locks; nobody closes. Round 2: node 0 re-proposes the locked ledger
 * (its time is round 1's), nodes 1 and 2 adopt it, and all close it.
 */
static void
test_lock(void **state)
{
	struct net net;
	struct round_status st;
	uint8_t h[32];

	net_init(&net, 3, 0, 80, 1000);
	/* From stage 3 on, only nodes 1 and 2 reach node 0. */
	net.drop_stage = 3;
	net.drop[0][1] = net.drop[0][2] = 1;
	net.drop[1][2] = net.drop[2][1] = 1;
	net_tick(&net, T0);
	round_status(net.n[0].r, &st);
	assert_true(st.locked);
	assert_int_equal(st.lock_seq, 1);
	assert_int_equal(st.lock_round, T0);
	memcpy(h, st.lock_hash, 32);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(net.n[i].nstored, 0);
		round_status(net.n[i].r, &st);
		assert_int_equal(st.locked, i == 0);
	}
	memset(net.drop, 0, sizeof(net.drop));
	net_tick(&net, T0 + 1000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(net.n[i].nstored, 1);
		assert_memory_equal(net.n[i].stored.hash, h, 32);
		assert_int_equal(net.n[i].stored.time, T0);
		round_status(net.n[i].r, &st);
		assert_false(st.locked);
	}
	net_free(&net);
}

/* A lock exported before a restart and imported after it is the same
 * lock; one for another ledger is ignored. */
static void
test_lock_survives_restart(void **state)
{
	struct net net;
	struct round_status st, st2;
	struct hp_proposal lk;
	struct round_cfg c;
	struct hp_ledger g;
	struct round *fresh;
	uint64_t lr = 0;

	net_init(&net, 3, 0, 80, 1000);
	net.drop_stage = 3;
	net.drop[0][1] = net.drop[0][2] = 1;
	net.drop[1][2] = net.drop[2][1] = 1;
	net_tick(&net, T0);
	round_status(net.n[0].r, &st);
	assert_true(st.locked);
	assert_int_equal(round_lock_export(net.n[0].r, &lk, &lr), 1);
	assert_int_equal(lr, T0);

	memset(&c, 0, sizeof(c));
	memcpy(c.self, net.n[0].pk, 32);
	c.validator = 1;
	c.unl = net.unl;
	c.unl_n = 3;
	c.threshold = 80;
	c.roundtime = 1000;
	c.stage_slice = 25;
	c.sign = fake_sign;
	hp_ledger_genesis(&g);
	fresh = round_new(&c, &g);
	round_status(fresh, &st2);
	assert_false(st2.locked);
	round_lock_import(fresh, &lk, lr);
	round_status(fresh, &st2);
	assert_true(st2.locked);
	assert_int_equal(st2.lock_seq, st.lock_seq);
	assert_int_equal(st2.lock_round, st.lock_round);
	assert_memory_equal(st2.lock_hash, st.lock_hash, 32);
	round_free(fresh);

	/* A lock for a ledger after another lcl does not apply. */
	g.seq = 5;
	fresh = round_new(&c, &g);
	round_lock_import(fresh, &lk, lr);
	round_status(fresh, &st2);
	assert_false(st2.locked);
	round_free(fresh);
	hp_proposal_free(&lk);
	net_free(&net);
}

/* A locked node re-proposes its ledger at stage 0 of the next round. */
static void
test_locked_stage0(void **state)
{
	struct net net;
	struct round_out o;
	struct round_status st;

	net_init(&net, 3, 0, 80, 1000);
	net.stage_mask = 0x0f;	/* no COMMIT gets through */
	net_tick(&net, T0);
	for (int i = 0; i < 3; i++) {
		round_status(net.n[i].r, &st);
		assert_true(st.locked);
		assert_int_equal(net.n[i].nstored, 0);
	}
	round_status(net.n[0].r, &st);
	round_tick(net.n[0].r, T0 + 1000, &o);
	assert_int_equal(o.nprops, 1);
	assert_int_equal(o.props[0]->stage, 0);
	assert_int_equal(o.props[0]->round, T0 + 1000);
	assert_int_equal(o.props[0]->time, T0);
	assert_int_equal(o.props[0]->lock_round, T0);
	assert_memory_equal(o.props[0]->ledger_hash, st.lock_hash, 32);
	take(&net, 0, &o);
	net.stage_mask = 0x1f;
	net_tick(&net, T0 + 1000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(net.n[i].nstored, 1);
		assert_memory_equal(net.n[i].stored.hash, st.lock_hash, 32);
	}
	net_free(&net);
}

#undef NOW
#define NOW (T0 + 2001)
static void
test_ignored_proposals(void **state)
{
	struct net net;
	struct round_out o;
	struct round_status st;
	struct hp_proposal p;
	uint8_t bad[64];

	net_init(&net, 3, 0, 80, 1000);
	round_tick(net.n[0].r, T0 + 2000, &o);
	round_out_free(&o);
	/* Too old, too far ahead, not in the UNL, our own key, bad stage. */
	feed_stage0(net.n[0].r, NOW, 1, T0, 9, 1, &o);
	round_out_free(&o);
	feed_stage0(net.n[0].r, NOW, 1, T0 + 3001, 9, 1, &o);
	round_out_free(&o);
	feed_stage0(net.n[0].r, NOW, 5, T0 + 2000, 9, 1, &o);
	round_out_free(&o);
	feed_stage0(net.n[0].r, NOW, 0, T0 + 2000, 9, 1, &o);
	round_out_free(&o);
	memset(&p, 0, sizeof(p));
	key(p.pubkey, 2);
	p.round = T0 + 2000;
	p.stage = 9;
	round_proposal(net.n[0].r, T0 + 2001, &p, &o);
	round_out_free(&o);
	/* Unsorted set, wrong width: ignored, no crash. */
	memset(bad, 0, sizeof(bad));
	bad[0] = 1;
	p.stage = 0;
	p.users = (struct hp_set){ 2, 32, bad };
	round_proposal(net.n[0].r, T0 + 2001, &p, &o);
	round_out_free(&o);
	p.users = (struct hp_set){ 1, 31, bad };
	round_proposal(net.n[0].r, T0 + 2001, &p, &o);
	round_out_free(&o);
	p.users = (struct hp_set){ 1, 32, NULL };
	round_proposal(net.n[0].r, T0 + 2001, &p, &o);
	round_out_free(&o);
	round_proposal(net.n[0].r, T0 + 2001, NULL, &o);
	round_out_free(&o);
	round_status(net.n[0].r, &st);
	assert_int_equal(st.members[1].last_time, 0);
	assert_int_equal(st.members[2].last_time, 0);

	/* A replay with other content of a (key, round, stage) we hold is
	 * ignored: the first one counts. */
	feed_stage0(net.n[0].r, NOW, 1, T0 + 2000, 0, 0, &o);
	round_out_free(&o);
	feed_stage0(net.n[0].r, NOW, 1, T0 + 2000, 7, 7, &o);
	round_out_free(&o);
	feed_stage0(net.n[0].r, NOW, 2, T0 + 2000, 0, 0, &o);
	/* Stage 1 ran (all three in) in sync: no sync action. */
	assert_int_equal(o.sync, 0);
	assert_int_equal(o.nprops, 1);
	assert_int_equal(o.props[0]->stage, 1);
	round_out_free(&o);
	round_status(net.n[0].r, &st);
	assert_int_equal(st.vote, ROUND_SYNCED);
	assert_int_equal(st.members[1].last_time, T0 + 2000);
	net_free(&net);
}

/* Observers never propose, even when they run every stage. */
static void
test_observer_silent(void **state)
{
	struct net net;

	net_init(&net, 3, 2, 80, 1000);
	for (int k = 0; k < 3; k++)
		net_tick(&net, T0 + (uint64_t)k * 1000);
	for (int i = 3; i < 5; i++) {
		assert_int_equal(net.n[i].nsent, 0);
		assert_int_equal(net.n[i].nstored, 3);
		assert_memory_equal(net.n[i].stored.hash, net.n[0].stored.hash,
		    32);
	}
	net_free(&net);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timing),
		cmocka_unit_test(test_stage_requirements),
		cmocka_unit_test(test_exchange_closes),
		cmocka_unit_test(test_early_completion),
		cmocka_unit_test(test_unreliable_and_time_config),
		cmocka_unit_test(test_sync_action),
		cmocka_unit_test(test_lock),
		cmocka_unit_test(test_locked_stage0),
		cmocka_unit_test(test_lock_survives_restart),
		cmocka_unit_test(test_ignored_proposals),
		cmocka_unit_test(test_observer_silent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
