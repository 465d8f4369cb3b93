/*
 * round.c — the consensus round state machine (round.h). Timing and
 * voting follow HotPocket's round (stages 0..3, 50/65/80 % stage
 * requirements, plurality time, elected output hash, lcl-based sync);
 * closing a ledger follows a Tendermint-style prevote/commit with locks:
 * stage-3 proposals are prevotes on a ledger hash, a quorum of them in a
 * round makes a validator send a COMMIT and lock, and a quorum of COMMITs
 * of one round closes the ledger. docs/consensus.md explains why that is
 * safe. Nothing here does I/O, reads a clock, draws randomness or logs.
 */
#include "round.h"

#include <blake3.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define NSTAGES 5	/* 0..3 + COMMIT */

struct member {
	struct hp_proposal *slot[NSTAGES];	/* newest per stage */
};

struct held_input {
	uint8_t oh[HP_PROPOSAL_INPUT_WIDTH];
	uint8_t user[32];
	uint64_t added_seq;
};

struct round {
	struct round_cfg cfg;
	uint8_t *unl;
	struct member *m;
	struct round_member_status *ms;	/* UNL liveness, UNL order */
	int self_idx;			/* -1: not in the UNL */
	uint32_t quorum;

	uint64_t lcl_seq;
	uint8_t lcl_hash[32];
	uint8_t state[32], patch[32], membership[32], output[32];
	uint8_t *users;			/* connected here, sorted unique */
	uint32_t nusers;

	uint32_t roundtime, stage_slice, stage0, stage123;

	int started;
	uint64_t t;			/* current round start */
	int stage;			/* next stage to run; 4: done */
	int abandoned;
	uint8_t node_nonce[32];
	enum round_vote vote;
	uint64_t unreliable_counted;	/* round last counted unreliable */
	uint32_t unreliable_rounds;
	uint64_t ledgers_closed;
	uint64_t committed_round;	/* round of our last COMMIT */
	uint64_t sync_round;		/* round of our last sync action */

	int locked;
	uint64_t lock_round;
	struct hp_proposal lock;	/* content of the locked ledger */

	struct held_input *pool;	/* [0, nsorted) sorted by oh, then added */
	uint32_t npool, cappool, nsorted;
	int hold;			/* round_hold(): no new round */
};

/* Stage requirements: HotPocket's float expression, quirks included. */
uint32_t
round_stage_required(uint32_t threshold, uint32_t unl_n, int stage)
{
	static const float ratio[3] = { 0.5f, 0.65f, 0.8f };
	float r;

	if (stage < 1 || stage > 3)
		return 0;
	r = (float)((ratio[stage - 1] * (float)threshold) /
	    ((double)ratio[2] * 100.0));
	return (uint32_t)ceilf(r * (float)unl_n);
}

/* qsort_r comparator for fixed-width byte strings; w is the width. */
static int
cmp_width(const void *a, const void *b, void *w)
{
	return memcmp(a, b, (size_t)w);
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static void
set_timing(struct round *r, uint32_t roundtime, uint32_t slice)
{
	r->roundtime = roundtime;
	r->stage_slice = slice;
	r->stage123 = roundtime * slice / 100;
	r->stage0 = roundtime - 3 * r->stage123;
}

static uint32_t
time_config(const struct round *r)
{
	return r->roundtime * 100 + r->stage_slice;
}

static int
find_member(const struct round *r, const uint8_t key[32])
{
	uint32_t lo = 0, hi = r->cfg.unl_n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = memcmp(r->unl + (size_t)mid * 32, key, 32);

		if (c == 0)
			return (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

struct round *
round_new(const struct round_cfg *cfg, const struct hp_ledger *lcl)
{
	struct round *r;

	if (cfg->unl_n == 0 || cfg->unl_n > ROUND_MAX_UNL ||
	    cfg->roundtime == 0 || cfg->stage_slice > 33 ||
	    cfg->threshold > 100 || cfg->unl == NULL ||
	    (cfg->validator && cfg->sign == NULL))
		return NULL;
	for (uint32_t i = 1; i < cfg->unl_n; i++)
		if (memcmp(cfg->unl + (size_t)(i - 1) * 32,
		    cfg->unl + (size_t)i * 32, 32) >= 0)
			return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->cfg = *cfg;
	r->unl = malloc((size_t)cfg->unl_n * 32);
	r->m = calloc(cfg->unl_n, sizeof(*r->m));
	r->ms = calloc(cfg->unl_n, sizeof(*r->ms));
	if (r->unl == NULL || r->m == NULL || r->ms == NULL) {
		free(r->unl);
		free(r->m);
		free(r->ms);
		free(r);
		return NULL;
	}
	memcpy(r->unl, cfg->unl, (size_t)cfg->unl_n * 32);
	r->cfg.unl = r->unl;
	for (uint32_t i = 0; i < cfg->unl_n; i++)
		memcpy(r->ms[i].pubkey, r->unl + (size_t)i * 32, 32);
	r->self_idx = find_member(r, cfg->self);
	if (r->self_idx < 0)
		r->cfg.validator = 0;
	r->quorum = hp_close_quorum(cfg->threshold, cfg->unl_n);
	r->lcl_seq = lcl->seq;
	memcpy(r->lcl_hash, lcl->hash, 32);
	set_timing(r, cfg->roundtime, cfg->stage_slice);
	r->stage = 4;
	return r;
}

void
round_free(struct round *r)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < r->cfg.unl_n; i++)
		for (int s = 0; s < NSTAGES; s++) {
			if (r->m[i].slot[s] != NULL) {
				hp_proposal_free(r->m[i].slot[s]);
				free(r->m[i].slot[s]);
			}
		}
	hp_proposal_free(&r->lock);
	free(r->users);
	free(r->pool);
	free(r->m);
	free(r->ms);
	free(r->unl);
	free(r);
}

void
round_set_hashes(struct round *r, const uint8_t state[32],
    const uint8_t patch[32], const uint8_t membership[32])
{
	memcpy(r->state, state, 32);
	memcpy(r->patch, patch, 32);
	memcpy(r->membership, membership, 32);
}

void
round_hold(struct round *r, int hold)
{
	r->hold = hold;
}

void
round_set_output(struct round *r, const uint8_t output[32])
{
	memcpy(r->output, output, 32);
}

int
round_set_users(struct round *r, const uint8_t *users, uint32_t n)
{
	uint8_t *u = NULL;
	uint32_t nu = 0;

	if (n > HP_PROPOSAL_MAX_SET)
		return HP_ETOOBIG;
	if (n > 0) {
		if ((u = malloc((size_t)n * 32)) == NULL)
			return HP_ENOMEM;
		memcpy(u, users, (size_t)n * 32);
		qsort_r(u, n, 32, cmp_width, (void *)(size_t)32);
		for (uint32_t i = 0; i < n; i++)
			if (nu == 0 || memcmp(u + (size_t)(nu - 1) * 32,
			    u + (size_t)i * 32, 32) != 0)
				memmove(u + (size_t)nu++ * 32, u + (size_t)i * 32,
				    32);
	}
	free(r->users);
	r->users = u;
	r->nusers = nu;
	return 0;
}

/* Index of the first held input >= oh in the sorted part. */
static uint32_t
pool_lower(const struct round *r, const uint8_t *oh)
{
	uint32_t lo = 0, hi = r->nsorted;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (memcmp(r->pool[mid].oh, oh, HP_PROPOSAL_INPUT_WIDTH) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
pool_has(const struct round *r, const uint8_t *oh)
{
	uint32_t i = pool_lower(r, oh);

	return i < r->nsorted &&
	    memcmp(r->pool[i].oh, oh, HP_PROPOSAL_INPUT_WIDTH) == 0;
}

int
round_add_input(struct round *r, const uint8_t user[32],
    const uint8_t ordered_hash[40])
{
	uint32_t i = pool_lower(r, ordered_hash);

	/* A duplicate among those added since the last pool_settle() is
	 * caught there; the caller (userio) holds each input once anyway. */
	if (i < r->nsorted && memcmp(r->pool[i].oh, ordered_hash,
	    HP_PROPOSAL_INPUT_WIDTH) == 0)
		return HP_EEXIST;
	if (r->npool >= HP_PROPOSAL_MAX_SET)
		return HP_ETOOBIG;
	if (r->npool == r->cappool) {
		uint32_t cap = r->cappool ? r->cappool * 2 : 16;
		struct held_input *np = realloc(r->pool, cap * sizeof(*np));

		if (np == NULL)
			return HP_ENOMEM;
		r->pool = np;
		r->cappool = cap;
	}
	/* Added at the end, sorted in at the next pool_settle(): inserting
	 * in order moved the pool's tail at each add. */
	i = r->npool++;
	memcpy(r->pool[i].oh, ordered_hash, HP_PROPOSAL_INPUT_WIDTH);
	memcpy(r->pool[i].user, user, 32);
	r->pool[i].added_seq = r->lcl_seq;
	return 0;
}

static int
cmp_held(const void *a, const void *b)
{
	return memcmp(((const struct held_input *)a)->oh,
	    ((const struct held_input *)b)->oh, HP_PROPOSAL_INPUT_WIDTH);
}

/* The whole pool in order, duplicates dropped: the inputs added since the
 * last call sorted and merged into the sorted part (linear). */
static void
pool_settle(struct round *r)
{
	struct held_input *m;
	uint32_t a = 0, b = r->nsorted, n = 0;

	if (r->nsorted == r->npool)
		return;
	qsort(r->pool + r->nsorted, r->npool - r->nsorted, sizeof(*r->pool),
	    cmp_held);
	if ((m = malloc((size_t)r->cappool * sizeof(*m))) == NULL) {
		/* No room to merge: sort the whole of it in place. */
		qsort(r->pool, r->npool, sizeof(*r->pool), cmp_held);
		m = r->pool;
		for (uint32_t i = 0; i < r->npool; i++)
			if (n == 0 || cmp_held(&m[n - 1], &m[i]) != 0)
				m[n++] = m[i];
		r->npool = r->nsorted = n;
		return;
	}
	while (a < r->nsorted || b < r->npool) {
		const struct held_input *x;

		if (b == r->npool || (a < r->nsorted &&
		    cmp_held(&r->pool[a], &r->pool[b]) <= 0))
			x = &r->pool[a++];
		else
			x = &r->pool[b++];
		if (n == 0 || cmp_held(&m[n - 1], x) != 0)
			m[n++] = *x;
	}
	free(r->pool);
	r->pool = m;
	r->npool = r->nsorted = n;
}

/* Drop inputs a closed ledger consumed and those past their TTL. */
static void
pool_expire(struct round *r, const struct hp_set *consumed)
{
	uint32_t j = 0;

	pool_settle(r);
	for (uint32_t i = 0; i < r->npool; i++) {
		if (consumed != NULL && hp_set_contains(consumed,
		    r->pool[i].oh))
			continue;
		if (r->lcl_seq - r->pool[i].added_seq >= ROUND_INPUT_TTL)
			continue;
		r->pool[j++] = r->pool[i];
	}
	r->npool = r->nsorted = j;
}

static void
out_init(struct round_out *out)
{
	memset(out, 0, sizeof(*out));
}

void
round_out_free(struct round_out *out)
{
	for (size_t i = 0; i < out->nprops; i++) {
		if (out->props[i] != NULL) {
			hp_proposal_free(out->props[i]);
			free(out->props[i]);
		}
		out->props[i] = NULL;
	}
	out->nprops = 0;
	hp_set_free(&out->users);
	hp_set_free(&out->inputs);
}

/*
 * The ledger a content (a proposal's time, hashes, sets and group nonce)
 * would close on top of our lcl.
 */
static int
content_ledger(const struct round *r, const struct hp_proposal *c,
    struct hp_ledger *l)
{
	uint8_t *suffix = NULL;

	memset(l, 0, offsetof(struct hp_ledger, sigs));
	l->seq = r->lcl_seq + 1;
	l->time = c->time;
	memcpy(l->prev_hash, r->lcl_hash, 32);
	memcpy(l->state_hash, c->state_hash, 32);
	memcpy(l->patch_hash, c->patch_hash, 32);
	memcpy(l->membership_hash, c->membership_hash, 32);
	memcpy(l->nonce, c->group_nonce, 32);
	memcpy(l->output_hash, c->output_hash, 32);
	hp_list_hash(c->users.items, c->users.n, l->user_hash);
	if (c->inputs.n > 0) {
		if ((suffix = malloc((size_t)c->inputs.n * 32)) == NULL)
			return HP_ENOMEM;
		for (uint32_t i = 0; i < c->inputs.n; i++)
			memcpy(suffix + (size_t)i * 32, c->inputs.items +
			    (size_t)i * HP_PROPOSAL_INPUT_WIDTH + 8, 32);
		qsort_r(suffix, c->inputs.n, 32, cmp_width,
		    (void *)(size_t)32);
	}
	hp_list_hash(suffix, c->inputs.n, l->input_hash);
	free(suffix);
	hp_ledger_compute_hash(l);
	return 0;
}

/* 1 when c carries a ledger hash that its content, on our lcl, yields. */
static int
content_valid(const struct round *r, const struct hp_proposal *c)
{
	struct hp_ledger l;

	if (c->lcl_seq != r->lcl_seq || memcmp(c->lcl_hash, r->lcl_hash,
	    32) != 0)
		return 0;
	if (content_ledger(r, c, &l) != 0)
		return 0;
	return memcmp(l.hash, c->ledger_hash, 32) == 0;
}

/* Copy the ledger content (not the envelope) of src into dst. */
static int
copy_content(struct hp_proposal *dst, const struct hp_proposal *src)
{
	dst->time = src->time;
	memcpy(dst->state_hash, src->state_hash, 32);
	memcpy(dst->patch_hash, src->patch_hash, 32);
	memcpy(dst->membership_hash, src->membership_hash, 32);
	memcpy(dst->output_hash, src->output_hash, 32);
	memcpy(dst->group_nonce, src->group_nonce, 32);
	memcpy(dst->ledger_hash, src->ledger_hash, 32);
	dst->lock_round = src->lock_round;
	if (hp_set_assign(&dst->users, HP_PROPOSAL_USER_WIDTH,
	    src->users.items, src->users.n) != 0 ||
	    hp_set_assign(&dst->inputs, HP_PROPOSAL_INPUT_WIDTH,
	    src->inputs.items, src->inputs.n) != 0 ||
	    hp_set_assign(&dst->nonces, HP_PROPOSAL_NONCE_WIDTH,
	    src->nonces.items, src->nonces.n) != 0)
		return HP_ENOMEM;
	return 0;
}

static void
set_lock(struct round *r, const struct hp_proposal *c, uint64_t round)
{
	struct hp_proposal n;

	memset(&n, 0, sizeof(n));
	if (copy_content(&n, c) != 0) {
		hp_proposal_free(&n);
		return;
	}
	n.lock_round = round;
	n.lcl_seq = r->lcl_seq + 1;
	memcpy(n.lcl_hash, r->lcl_hash, 32);
	hp_proposal_free(&r->lock);
	r->lock = n;
	r->locked = 1;
	r->lock_round = round;
}

static void
clear_lock(struct round *r)
{
	hp_proposal_free(&r->lock);
	memset(&r->lock, 0, sizeof(r->lock));
	r->locked = 0;
	r->lock_round = 0;
}

/* Fill the envelope, sign, keep our own copy as a candidate, and hand
 * the proposal to the caller. Takes ownership of p. */
static void
emit(struct round *r, struct hp_proposal *p, struct round_out *out)
{
	struct hp_proposal *mine, **slot;
	uint8_t h[32];

	memcpy(p->pubkey, r->cfg.self, 32);
	p->round = r->t;
	p->time_config = time_config(r);
	memcpy(p->node_nonce, r->node_nonce, 32);
	p->lcl_seq = r->lcl_seq;
	memcpy(p->lcl_hash, r->lcl_hash, 32);
	hp_proposal_hash(p, h);
	if (out->nprops >= sizeof(out->props) / sizeof(out->props[0]) ||
	    r->cfg.sign(r->cfg.sign_ctx, h, 32, p->sig) != 0 ||
	    (mine = malloc(sizeof(*mine))) == NULL) {
		hp_proposal_free(p);
		free(p);
		return;
	}
	if (hp_proposal_dup(p, mine) != 0) {
		free(mine);
		hp_proposal_free(p);
		free(p);
		return;
	}
	slot = &r->m[r->self_idx].slot[p->stage];
	if (*slot != NULL) {
		hp_proposal_free(*slot);
		free(*slot);
	}
	*slot = mine;
	r->ms[r->self_idx].last_time = p->round;
	r->ms[r->self_idx].last_stage = p->stage;
	r->ms[r->self_idx].time_config = p->time_config;
	out->props[out->nprops++] = p;
}

static struct hp_proposal *
new_proposal(int stage)
{
	struct hp_proposal *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->stage = (uint8_t)stage;
	p->users.width = HP_PROPOSAL_USER_WIDTH;
	p->inputs.width = HP_PROPOSAL_INPUT_WIDTH;
	p->nonces.width = HP_PROPOSAL_NONCE_WIDTH;
	return p;
}

static int
lock_applies(const struct round *r)
{
	return r->locked && r->lcl_seq + 1 == r->lock.lcl_seq &&
	    memcmp(r->lcl_hash, r->lock.lcl_hash, 32) == 0;
}

static void
send_stage0(struct round *r, struct round_out *out)
{
	struct hp_proposal *p;
	uint8_t *users = NULL, *oh = NULL;
	uint32_t nu = 0;

	if ((p = new_proposal(0)) == NULL)
		return;
	if (lock_applies(r)) {
		if (copy_content(p, &r->lock) != 0)
			goto fail;
		emit(r, p, out);
		return;
	}
	p->time = r->t;
	memcpy(p->state_hash, r->state, 32);
	memcpy(p->patch_hash, r->patch, 32);
	memcpy(p->membership_hash, r->membership, 32);
	memcpy(p->output_hash, r->output, 32);
	/* The lowest ordered hashes first (pool order); the rest wait. */
	pool_settle(r);
	uint32_t npool = r->npool > ROUND_MAX_PROPOSED_INPUTS ?
	    ROUND_MAX_PROPOSED_INPUTS : r->npool;
	if (npool + r->nusers > 0) {
		/* Users: every user connected here, and every user we hold
		 * an input of. */
		users = malloc(((size_t)npool + r->nusers) * 32);
		oh = malloc((size_t)(npool ? npool : 1) *
		    HP_PROPOSAL_INPUT_WIDTH);
		if (users == NULL || oh == NULL)
			goto fail;
		for (uint32_t i = 0; i < npool; i++) {
			memcpy(users + (size_t)i * 32, r->pool[i].user, 32);
			memcpy(oh + (size_t)i * HP_PROPOSAL_INPUT_WIDTH,
			    r->pool[i].oh, HP_PROPOSAL_INPUT_WIDTH);
		}
		if (r->nusers > 0)
			memcpy(users + (size_t)npool * 32, r->users,
			    (size_t)r->nusers * 32);
		qsort_r(users, npool + r->nusers, 32, cmp_width,
		    (void *)(size_t)32);
		for (uint32_t i = 0; i < npool + r->nusers; i++)
			if (nu == 0 || memcmp(users + (size_t)(nu - 1) * 32,
			    users + (size_t)i * 32, 32) != 0)
				memmove(users + (size_t)nu++ * 32,
				    users + (size_t)i * 32, 32);
	}
	if (hp_set_assign(&p->users, 32, users, nu) != 0 ||
	    hp_set_assign(&p->inputs, HP_PROPOSAL_INPUT_WIDTH, oh,
	    npool) != 0)
		goto fail;
	free(users);
	free(oh);
	emit(r, p, out);
	return;
fail:
	free(users);
	free(oh);
	hp_proposal_free(p);
	free(p);
}

static uint64_t
boundary(const struct round *r, uint64_t now)
{
	uint64_t off = r->cfg.offset % r->roundtime;

	if (now < off)
		return off;
	return (now - off) / r->roundtime * r->roundtime + off;
}

static uint64_t
stage_due(const struct round *r, int s)
{
	return r->t + r->stage0 + (uint64_t)(s - 1) * r->stage123;
}

/* Proposals of the current round at stage s, in UNL order. */
static size_t
candidates(const struct round *r, int s, struct hp_proposal **c)
{
	size_t n = 0;

	for (uint32_t i = 0; i < r->cfg.unl_n; i++) {
		struct hp_proposal *p = r->m[i].slot[s];

		if (p != NULL && p->round == r->t)
			c[n++] = p;
	}
	return n;
}

static int
same_lcl(const struct round *r, const struct hp_proposal *p)
{
	return p->lcl_seq == r->lcl_seq &&
	    memcmp(p->lcl_hash, r->lcl_hash, 32) == 0;
}

static void
count_unreliable(struct round *r)
{
	uint32_t best = 0, bestn = 0;

	r->vote = ROUND_UNRELIABLE;
	r->abandoned = 1;
	if (r->unreliable_counted == r->t)
		return;
	r->unreliable_counted = r->t;
	if (++r->unreliable_rounds < ROUND_UNRELIABLE_RESET)
		return;
	/* Adopt the time_config most UNL members report (ties: smallest). */
	for (uint32_t i = 0; i < r->cfg.unl_n; i++) {
		uint32_t tc = r->ms[i].time_config, n = 0;

		if (r->ms[i].last_time == 0 || (int)i == r->self_idx)
			continue;
		for (uint32_t j = 0; j < r->cfg.unl_n; j++)
			if (r->ms[j].last_time != 0 &&
			    (int)j != r->self_idx &&
			    r->ms[j].time_config == tc)
				n++;
		if (n > bestn || (n == bestn && tc < best)) {
			best = tc;
			bestn = n;
		}
	}
	r->unreliable_rounds = 0;
	if (bestn == 0 || best == time_config(r) || best / 100 == 0 ||
	    best % 100 > 33)
		return;
	set_timing(r, best / 100, best % 100);
}

static void
emit_sync(struct round *r, uint64_t seq, const uint8_t hash[32],
    struct hp_proposal **c, size_t nc, struct round_out *out)
{
	r->vote = ROUND_DESYNC;
	r->abandoned = 1;
	if (r->sync_round == r->t || out->sync)
		return;
	r->sync_round = r->t;
	out->sync = 1;
	out->sync_seq = seq;
	memcpy(out->sync_hash, hash, 32);
	out->sync_nfrom = 0;
	for (size_t i = 0; i < nc && out->sync_nfrom < 8; i++)
		if (c[i]->lcl_seq == seq && memcmp(c[i]->lcl_hash, hash,
		    32) == 0 && memcmp(c[i]->pubkey, r->cfg.self, 32) != 0)
			memcpy(out->sync_from[out->sync_nfrom++],
			    c[i]->pubkey, 32);
}

/* Votes for the lcl (seq, hash) among c; ties go to the smallest hash. */
static size_t
lcl_votes(struct hp_proposal **c, size_t nc, uint64_t seq,
    const uint8_t *hash)
{
	size_t n = 0;

	for (size_t i = 0; i < nc; i++)
		if (c[i]->lcl_seq == seq && memcmp(c[i]->lcl_hash, hash,
		    32) == 0)
			n++;
	return n;
}

/*
 * HotPocket's vote status: too few proposals → unreliable; peers on a
 * later ledger, or most peers on another ledger at our seq → desync and
 * a sync action. Returns 1 when we are in sync and may propose.
 */
static int
vote_status(struct round *r, struct hp_proposal **c, size_t nc,
    struct round_out *out)
{
	const struct hp_proposal *best = NULL;
	size_t bestn = 0, ours;

	if (nc < r->quorum) {
		count_unreliable(r);
		return 0;
	}
	for (size_t i = 0; i < nc; i++) {
		size_t n;

		if (c[i]->lcl_seq < r->lcl_seq)
			continue;
		if (best != NULL && c[i]->lcl_seq < best->lcl_seq)
			continue;
		n = lcl_votes(c, nc, c[i]->lcl_seq, c[i]->lcl_hash);
		if (best == NULL || c[i]->lcl_seq > best->lcl_seq ||
		    n > bestn || (n == bestn && memcmp(c[i]->lcl_hash,
		    best->lcl_hash, 32) < 0)) {
			best = c[i];
			bestn = n;
		}
	}
	if (best != NULL && best->lcl_seq > r->lcl_seq) {
		emit_sync(r, best->lcl_seq, best->lcl_hash, c, nc, out);
		return 0;
	}
	ours = lcl_votes(c, nc, r->lcl_seq, r->lcl_hash);
	if (best != NULL && bestn > ours) {
		emit_sync(r, best->lcl_seq, best->lcl_hash, c, nc, out);
		return 0;
	}
	if (ours < r->quorum) {
		count_unreliable(r);
		return 0;
	}
	r->vote = ROUND_SYNCED;
	r->unreliable_rounds = 0;
	return 1;
}

enum field { F_USERS, F_INPUTS, F_NONCES, F_NODE_NONCE };

/*
 * Items of field f across c with at least need votes. At stage 1 (any_vote:
 * one vote is enough) an input must also be one we hold, as in HotPocket;
 * from stage 2 on the votes alone decide, so that a node that missed an
 * input does not split the cluster (its contract runs without the input,
 * its state falls behind and it syncs; a node's own users' inputs are
 * refused while its pool is half full, so that it keeps room for those
 * relayed to it).
 */
static int
vote_set(const struct round *r, struct hp_proposal **c, size_t nc,
    enum field f, uint32_t need, int any_vote, struct hp_set *out)
{
	uint32_t w = f == F_INPUTS ? HP_PROPOSAL_INPUT_WIDTH : 32;
	size_t total = 0, k = 0, nout = 0;
	uint8_t *all;
	int rc;

	for (size_t i = 0; i < nc; i++)
		total += f == F_USERS ? c[i]->users.n : f == F_INPUTS ?
		    c[i]->inputs.n : f == F_NONCES ? c[i]->nonces.n : 1;
	if (total == 0)
		return hp_set_assign(out, w, NULL, 0);
	if ((all = malloc(total * w)) == NULL)
		return HP_ENOMEM;
	for (size_t i = 0; i < nc; i++) {
		const struct hp_set *s = f == F_USERS ? &c[i]->users :
		    f == F_INPUTS ? &c[i]->inputs : &c[i]->nonces;

		if (f == F_NODE_NONCE) {
			memcpy(all + k * w, c[i]->node_nonce, w);
			k++;
			continue;
		}
		if (s->n > 0)
			memcpy(all + k * w, s->items, (size_t)s->n * w);
		k += s->n;
	}
	qsort_r(all, total, w, cmp_width, (void *)(size_t)w);
	for (size_t i = 0; i < total;) {
		size_t j = i + 1;

		while (j < total && memcmp(all + i * w, all + j * w, w) == 0)
			j++;
		if (j - i >= need && (f != F_INPUTS || !any_vote ||
		    pool_has(r, all + i * w)))
			memmove(all + nout++ * w, all + i * w, w);
		i = j;
	}
	/* A proposal must fit in one peer frame: the lowest ordered hashes
	 * go first, the rest wait for a later round. */
	if (f == F_INPUTS && nout > ROUND_MAX_PROPOSED_INPUTS)
		nout = ROUND_MAX_PROPOSED_INPUTS;
	rc = hp_set_assign(out, w, all, (uint32_t)nout);
	free(all);
	return rc;
}

/* Plurality of a 32-byte field; ties: smallest value. min_votes > 0
 * makes it an election (zeros when nothing reaches it). */
static void
plural32(struct hp_proposal **c, size_t nc, size_t off, size_t min_votes,
    uint8_t out[32])
{
	const uint8_t *best = NULL;
	size_t bestn = 0;

	for (size_t i = 0; i < nc; i++) {
		const uint8_t *v = (const uint8_t *)c[i] + off;
		size_t n = 0;

		for (size_t j = 0; j < nc; j++)
			if (memcmp((const uint8_t *)c[j] + off, v, 32) == 0)
				n++;
		if (n < min_votes)
			continue;
		if (best == NULL || n > bestn || (n == bestn &&
		    memcmp(v, best, 32) < 0)) {
			best = v;
			bestn = n;
		}
	}
	if (best == NULL)
		memset(out, 0, 32);
	else
		memcpy(out, best, 32);
}

/* Plurality of candidate times no later than the round and at most two
 * rounds old; ties: smallest; fallback: the round start. */
static uint64_t
plural_time(const struct round *r, struct hp_proposal **c, size_t nc)
{
	uint64_t best = r->t;
	size_t bestn = 0;

	for (size_t i = 0; i < nc; i++) {
		uint64_t v = c[i]->time;
		size_t n = 0;

		if (v > r->t || r->t - v > 2 * (uint64_t)r->roundtime)
			continue;
		for (size_t j = 0; j < nc; j++)
			if (c[j]->time == v)
				n++;
		if (n > bestn || (n == bestn && v < best)) {
			best = v;
			bestn = n;
		}
	}
	return best;
}

/* Fresh content for stage s from the previous stage's votes. */
static int
fresh_content(struct round *r, int s, struct hp_proposal **c, size_t nc,
    struct hp_proposal *p)
{
	uint32_t need = round_stage_required(r->cfg.threshold,
	    r->cfg.unl_n, s);
	uint32_t any = s == 1 ? 1 : need;
	int rc;

	pool_settle(r);		/* vote_set() looks inputs up in it */

	if ((rc = vote_set(r, c, nc, F_USERS, any, s == 1, &p->users)) != 0 ||
	    (rc = vote_set(r, c, nc, F_INPUTS, any, s == 1,
	    &p->inputs)) != 0 ||
	    (rc = vote_set(r, c, nc, s == 1 ? F_NODE_NONCE : F_NONCES, any,
	    s == 1, &p->nonces)) != 0)
		return rc;
	p->time = plural_time(r, c, nc);
	plural32(c, nc, offsetof(struct hp_proposal, state_hash), 0,
	    p->state_hash);
	plural32(c, nc, offsetof(struct hp_proposal, patch_hash), 0,
	    p->patch_hash);
	plural32(c, nc, offsetof(struct hp_proposal, membership_hash), 0,
	    p->membership_hash);
	plural32(c, nc, offsetof(struct hp_proposal, output_hash), r->quorum,
	    p->output_hash);
	if (s == 3) {
		struct hp_ledger l;

		hp_list_hash(p->nonces.items, p->nonces.n, p->group_nonce);
		if ((rc = content_ledger(r, p, &l)) != 0)
			return rc;
		memcpy(p->ledger_hash, l.hash, 32);
	}
	return 0;
}

/* The highest lock claimed among c (ties: smallest hash), or NULL. */
static const struct hp_proposal *
best_claim(const struct round *r, struct hp_proposal **c, size_t nc)
{
	const struct hp_proposal *best = NULL;

	for (size_t i = 0; i < nc; i++) {
		if (c[i]->lock_round == 0 || c[i]->lock_round > r->t)
			continue;
		if (best != NULL && (c[i]->lock_round < best->lock_round ||
		    (c[i]->lock_round == best->lock_round &&
		    memcmp(c[i]->ledger_hash, best->ledger_hash, 32) >= 0)))
			continue;
		if (!content_valid(r, c[i]))
			continue;
		best = c[i];
	}
	return best;
}

static void
run_stage(struct round *r, int s, struct round_out *out)
{
	struct hp_proposal *c[ROUND_MAX_UNL], *same[ROUND_MAX_UNL], *p;
	const struct hp_proposal *claim;
	size_t nc, ns = 0;

	nc = candidates(r, s - 1, c);
	if (!vote_status(r, c, nc, out) || !r->cfg.validator)
		return;
	for (size_t i = 0; i < nc; i++)
		if (same_lcl(r, c[i]))
			same[ns++] = c[i];
	if ((p = new_proposal(s)) == NULL)
		return;
	claim = best_claim(r, same, ns);
	if (lock_applies(r)) {
		/* A claim of a later lock proves a later quorum of prevotes. */
		if (claim != NULL && claim->lock_round > r->lock_round)
			set_lock(r, claim, claim->lock_round);
		if (copy_content(p, &r->lock) != 0)
			goto fail;
	} else if (claim != NULL) {
		if (copy_content(p, claim) != 0)
			goto fail;
	} else if (fresh_content(r, s, same, ns, p) != 0)
		goto fail;
	emit(r, p, out);
	return;
fail:
	hp_proposal_free(p);
	free(p);
}

/* A quorum of stage-3 prevotes of this round for one ledger: lock on it
 * and send our COMMIT (once per round). */
static void
check_prevotes(struct round *r, struct round_out *out)
{
	struct hp_proposal *c[ROUND_MAX_UNL], *p;
	size_t nc;

	if (!r->started || !r->cfg.validator || r->committed_round == r->t)
		return;
	nc = candidates(r, 3, c);
	for (size_t i = 0; i < nc; i++) {
		size_t n = 0;
		uint8_t msg[sizeof(HP_LEDGER_SIG_DOMAIN) - 1 + 32];

		if (!same_lcl(r, c[i]))
			continue;
		for (size_t j = 0; j < nc; j++)
			if (same_lcl(r, c[j]) && memcmp(c[j]->ledger_hash,
			    c[i]->ledger_hash, 32) == 0)
				n++;
		if (n < r->quorum || !content_valid(r, c[i]))
			continue;
		set_lock(r, c[i], r->t);
		r->committed_round = r->t;
		if ((p = new_proposal(HP_PROPOSAL_STAGE_COMMIT)) == NULL)
			return;
		if (copy_content(p, &r->lock) != 0)
			goto fail;
		hp_ledger_sig_msg(p->ledger_hash, msg);
		if (r->cfg.sign(r->cfg.sign_ctx, msg, sizeof(msg),
		    p->ledger_sig) != 0)
			goto fail;
		emit(r, p, out);
		return;
	}
	return;
fail:
	hp_proposal_free(p);
	free(p);
}

/* A quorum of COMMITs of one round for one ledger on our lcl: close. */
static void
check_commits(struct round *r, struct round_out *out)
{
	struct hp_proposal *c[ROUND_MAX_UNL];
	size_t nc = 0;

	if (out->store)
		return;
	for (uint32_t i = 0; i < r->cfg.unl_n; i++) {
		struct hp_proposal *p = r->m[i].slot[HP_PROPOSAL_STAGE_COMMIT];

		if (p != NULL && same_lcl(r, p))
			c[nc++] = p;
	}
	for (size_t i = 0; i < nc; i++) {
		struct hp_ledger *l = &out->ledger;
		size_t n = 0;

		for (size_t j = 0; j < nc; j++)
			if (c[j]->round == c[i]->round && memcmp(
			    c[j]->ledger_hash, c[i]->ledger_hash, 32) == 0)
				n++;
		if (n < r->quorum || content_ledger(r, c[i], l) != 0 ||
		    memcmp(l->hash, c[i]->ledger_hash, 32) != 0)
			continue;
		for (size_t j = 0; j < nc && l->nsigs < HP_LEDGER_MAX_SIGS;
		    j++) {
			if (c[j]->round != c[i]->round || memcmp(
			    c[j]->ledger_hash, c[i]->ledger_hash, 32) != 0)
				continue;
			memcpy(l->sigs[l->nsigs].pk, c[j]->pubkey, 32);
			memcpy(l->sigs[l->nsigs].sig, c[j]->ledger_sig, 64);
			l->nsigs++;
		}
		if (hp_set_assign(&out->users, HP_PROPOSAL_USER_WIDTH,
		    c[i]->users.items, c[i]->users.n) != 0 ||
		    hp_set_assign(&out->inputs, HP_PROPOSAL_INPUT_WIDTH,
		    c[i]->inputs.items, c[i]->inputs.n) != 0) {
			round_out_free(out);
			return;
		}
		out->store = 1;
		r->lcl_seq = l->seq;
		memcpy(r->lcl_hash, l->hash, 32);
		r->ledgers_closed++;
		clear_lock(r);
		pool_expire(r, &c[i]->inputs);
		/* A sync action found earlier in this event may be moot now. */
		if (out->sync && out->sync_seq == r->lcl_seq &&
		    memcmp(out->sync_hash, r->lcl_hash, 32) == 0)
			out->sync = 0;
		return;
	}
}

/* node nonce = BLAKE3(nonce_seed || round start BE): fresh every round,
 * yet no randomness inside the state machine. */
static void
make_node_nonce(struct round *r)
{
	blake3_hasher h;
	uint8_t be[8];

	put_be64(be, r->t);
	blake3_hasher_init(&h);
	blake3_hasher_update(&h, r->cfg.nonce_seed, 32);
	blake3_hasher_update(&h, be, 8);
	blake3_hasher_finalize(&h, r->node_nonce, 32);
}

static void
new_round(struct round *r, uint64_t now, struct round_out *out)
{
	uint64_t t = boundary(r, now);

	if (r->started && t <= r->t)
		return;
	r->started = 1;
	r->t = t;
	r->stage = 1;
	r->abandoned = 0;
	r->vote = ROUND_UNKNOWN;
	make_node_nonce(r);
	if (r->locked && !lock_applies(r))
		clear_lock(r);
	if (r->cfg.validator)
		send_stage0(r, out);
}

static int
all_in(const struct round *r, int s)
{
	for (uint32_t i = 0; i < r->cfg.unl_n; i++)
		if (r->m[i].slot[s] == NULL || r->m[i].slot[s]->round != r->t)
			return 0;
	return 1;
}

/* Run everything that is due: a new round, stages whose timer expired
 * or whose previous stage is complete, prevote and commit quorums. */
static void
settle(struct round *r, uint64_t now, struct round_out *out)
{
	if (!r->hold && (!r->started || now >= r->t + r->roundtime))
		new_round(r, now, out);
	while (r->stage <= 3) {
		if (r->abandoned) {
			r->stage = 4;
			break;
		}
		if (now < stage_due(r, r->stage) && !all_in(r, r->stage - 1))
			break;
		run_stage(r, r->stage, out);
		r->stage++;
		check_prevotes(r, out);
	}
	check_prevotes(r, out);
	check_commits(r, out);
}

void
round_tick(struct round *r, uint64_t now, struct round_out *out)
{
	out_init(out);
	settle(r, now, out);
}

static int
proposal_sane(const struct hp_proposal *p)
{
	const struct hp_set *s[3] = { &p->users, &p->inputs, &p->nonces };
	const uint32_t w[3] = { HP_PROPOSAL_USER_WIDTH,
	    HP_PROPOSAL_INPUT_WIDTH, HP_PROPOSAL_NONCE_WIDTH };

	if (p->stage > HP_PROPOSAL_STAGE_COMMIT)
		return 0;
	for (int i = 0; i < 3; i++) {
		if (s[i]->n == 0)
			continue;
		if (s[i]->width != w[i] || s[i]->items == NULL ||
		    s[i]->n > HP_PROPOSAL_MAX_SET || hp_set_check(s[i]) != 0)
			return 0;
	}
	return 1;
}

void
round_proposal(struct round *r, uint64_t now, const struct hp_proposal *p,
    struct round_out *out)
{
	struct hp_proposal *copy, **slot;
	uint64_t ref;
	int idx;

	out_init(out);
	if (p == NULL || !proposal_sane(p))
		goto done;
	idx = find_member(r, p->pubkey);
	if (idx < 0 || idx == r->self_idx)
		goto done;
	ref = r->started ? r->t : now;
	if (p->round + r->roundtime < ref || p->round > ref + r->roundtime)
		goto done;
	slot = &r->m[idx].slot[p->stage];
	if (*slot != NULL && (*slot)->round >= p->round)
		goto done;
	if ((copy = malloc(sizeof(*copy))) == NULL)
		goto done;
	if (hp_proposal_dup(p, copy) != 0) {
		free(copy);
		goto done;
	}
	copy->users.width = HP_PROPOSAL_USER_WIDTH;
	copy->inputs.width = HP_PROPOSAL_INPUT_WIDTH;
	copy->nonces.width = HP_PROPOSAL_NONCE_WIDTH;
	if (*slot != NULL) {
		hp_proposal_free(*slot);
		free(*slot);
	}
	*slot = copy;
	if (p->round >= r->ms[idx].last_time) {
		r->ms[idx].last_time = p->round;
		r->ms[idx].last_stage = p->stage;
		r->ms[idx].time_config = p->time_config;
	}
done:
	settle(r, now, out);
}

void
round_synced(struct round *r, uint64_t now, const struct hp_ledger *new_lcl,
    struct round_out *out)
{
	out_init(out);
	if (new_lcl->seq > r->lcl_seq || (new_lcl->seq == r->lcl_seq &&
	    memcmp(new_lcl->hash, r->lcl_hash, 32) != 0)) {
		r->lcl_seq = new_lcl->seq;
		memcpy(r->lcl_hash, new_lcl->hash, 32);
		if (r->locked && !lock_applies(r))
			clear_lock(r);
		pool_expire(r, NULL);
		r->abandoned = 1;
	}
	settle(r, now, out);
}

uint64_t
round_deadline(const struct round *r)
{
	uint64_t d;

	if (!r->started)
		return 0;
	d = r->t + r->roundtime;
	if (r->stage <= 3 && !r->abandoned && stage_due(r, r->stage) < d)
		d = stage_due(r, r->stage);
	return d;
}

void
round_status(const struct round *r, struct round_status *st)
{
	memset(st, 0, sizeof(*st));
	st->round = r->started ? r->t : 0;
	st->stage = (uint8_t)r->stage;
	st->vote = r->vote;
	st->lcl_seq = r->lcl_seq;
	memcpy(st->lcl_hash, r->lcl_hash, 32);
	st->unl_n = r->cfg.unl_n;
	st->members = r->ms;
	st->unreliable_rounds = r->unreliable_rounds;
	st->ledgers_closed = r->ledgers_closed;
	st->locked = lock_applies(r);
	if (st->locked) {
		st->lock_seq = r->lock.lcl_seq;
		memcpy(st->lock_hash, r->lock.ledger_hash, 32);
		st->lock_round = r->lock_round;
	}
	st->time_config = time_config(r);
}

int
round_lock_export(const struct round *r, struct hp_proposal *out,
    uint64_t *lock_round)
{
	if (!lock_applies(r))
		return 0;
	memset(out, 0, sizeof(*out));
	if (copy_content(out, &r->lock) != 0) {
		hp_proposal_free(out);
		return 0;
	}
	out->lcl_seq = r->lock.lcl_seq;
	memcpy(out->lcl_hash, r->lock.lcl_hash, 32);
	*lock_round = r->lock_round;
	return 1;
}

void
round_lock_import(struct round *r, const struct hp_proposal *p,
    uint64_t lock_round)
{
	if (p->lcl_seq != r->lcl_seq + 1 ||
	    memcmp(p->lcl_hash, r->lcl_hash, 32) != 0)
		return;
	set_lock(r, p, lock_round);
}
