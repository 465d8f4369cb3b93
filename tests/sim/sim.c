/*
 * sim.c — deterministic simulator for the consensus round state machine
 * (workers/consensus/round.c). Each seed runs several validators and one
 * observer over a simulated millisecond clock (every node with its own
 * skew) and a simulated network that delays, loses, duplicates, reorders
 * and replays messages and splits the nodes into partitions that heal.
 * Signatures are fake (keyed BLAKE3) so that thousands of seeds run fast;
 * the simulator checks them as hpd-consensus would check ed25519.
 *
 * Invariants, checked at every step that changes a ledger:
 *   (a) no two nodes ever store different ledgers at one sequence number;
 *   (b) each node's ledgers form a hash chain, each ledger's hash
 *       recomputes and it carries a quorum of valid commit signatures;
 *   (c) once the last partition heals and the network turns reliable,
 *       every node closes at least LIVE_K ledgers within the remaining
 *       rounds;
 *   (d) in a run without faults every round closes a ledger on every node.
 * Usage: sim [--seeds N] [--first S] [--nodes N] [--rounds R]
 *            [--seed S --trace]
 */
#include <blake3.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "proposal.h"
#include "round.h"

#define MAX_NODES 32
#define ROUNDTIME 100
#define SLICE 25
#define LIVE_K 3
#define START 1000000
#define NREPLAY 64

struct rng {
	uint64_t s;
};

static uint64_t
rnd(struct rng *g)
{
	uint64_t z = (g->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
rndn(struct rng *g, uint64_t n)
{
	return n == 0 ? 0 : rnd(g) % n;
}

/* Probability in parts per thousand. */
static int
chance(struct rng *g, uint32_t permille)
{
	return rndn(g, 1000) < permille;
}

struct msg {
	int refs;
	int is_input;
	struct hp_proposal p;
	uint8_t user[32];
	uint8_t oh[40];
};

struct event {
	uint64_t t;
	uint64_t seq;
	int to;
	struct msg *m;
};

struct node {
	struct round *r;
	uint8_t secret[32];
	uint8_t pk[32];
	int validator;
	uint64_t skew;
	struct hp_ledger *led;	/* led[i] is seq i + 1 */
	uint64_t nled, capled;
	int sync_pending;
	uint64_t sync_at;
	uint64_t sync_seq;
	uint8_t sync_hash[32];
	int group;
};

struct sim {
	struct rng g;
	int trace;
	int nval, nnodes;
	struct node n[MAX_NODES];
	uint8_t unl[MAX_NODES * 32];
	uint32_t quorum;
	uint64_t now;
	struct event *heap;
	size_t nheap, capheap;
	uint64_t evseq;
	uint8_t (*gmap)[32];	/* seq-1 -> hash */
	uint8_t *gset;
	uint64_t gcap;
	struct msg *replay[NREPLAY];
	/* network */
	int faults;
	uint32_t threshold;
	uint32_t loss, dup, longdelay, replayp, maxdelay, commitloss;
	uint16_t linkloss[MAX_NODES][MAX_NODES];	/* per mille */
	int partitioned;
	uint64_t part_until, next_part;
	uint64_t heal_t;
	char fail[256];
};

static void
trace(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->trace)
		return;
	printf("%8" PRIu64 " ", s->now - START);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void
failf(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (s->fail[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(s->fail, sizeof(s->fail), fmt, ap);
	va_end(ap);
	trace(s, "FAIL %s", s->fail);
}

static void
fake_sig(const uint8_t secret[32], const uint8_t *msg, size_t len,
    uint8_t sig[64])
{
	blake3_hasher h;

	blake3_hasher_init_keyed(&h, secret);
	blake3_hasher_update(&h, msg, len);
	blake3_hasher_finalize(&h, sig, 64);
}

static int
sign_cb(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
	struct node *n = ctx;

	fake_sig(n->secret, msg, len, sig);
	return 0;
}

static int
key_index(struct sim *s, const uint8_t pk[32])
{
	for (int i = 0; i < s->nnodes; i++)
		if (memcmp(s->n[i].pk, pk, 32) == 0)
			return i;
	return -1;
}

static int
in_unl(struct sim *s, const uint8_t pk[32])
{
	for (int i = 0; i < s->nval; i++)
		if (memcmp(s->unl + i * 32, pk, 32) == 0)
			return 1;
	return 0;
}

static int
verify_sig(struct sim *s, const uint8_t pk[32], const uint8_t *msg,
    size_t len, const uint8_t sig[64])
{
	uint8_t want[64];
	int i = key_index(s, pk);

	if (i < 0)
		return 0;
	fake_sig(s->n[i].secret, msg, len, want);
	return memcmp(want, sig, 64) == 0;
}

/* What hpd-consensus checks before round_proposal(). */
static int
verify_proposal(struct sim *s, const struct hp_proposal *p)
{
	uint8_t h[32], msg[sizeof(HP_LEDGER_SIG_DOMAIN) - 1 + 32];

	if (!in_unl(s, p->pubkey))
		return 0;
	hp_proposal_hash(p, h);
	if (!verify_sig(s, p->pubkey, h, 32, p->sig))
		return 0;
	if (p->stage == HP_PROPOSAL_STAGE_COMMIT) {
		hp_ledger_sig_msg(p->ledger_hash, msg);
		if (!verify_sig(s, p->pubkey, msg, sizeof(msg), p->ledger_sig))
			return 0;
	}
	return 1;
}

static void
msg_unref(struct msg *m)
{
	if (m != NULL && --m->refs == 0) {
		hp_proposal_free(&m->p);
		free(m);
	}
}

static int
ev_less(const struct event *a, const struct event *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void
heap_push(struct sim *s, uint64_t t, int to, struct msg *m)
{
	size_t i;

	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? s->capheap * 2 : 1024;
		s->heap = realloc(s->heap, s->capheap * sizeof(*s->heap));
		if (s->heap == NULL)
			abort();
	}
	i = s->nheap++;
	s->heap[i] = (struct event){ t, s->evseq++, to, m };
	m->refs++;
	while (i > 0 && ev_less(&s->heap[i], &s->heap[(i - 1) / 2])) {
		struct event tmp = s->heap[i];

		s->heap[i] = s->heap[(i - 1) / 2];
		s->heap[(i - 1) / 2] = tmp;
		i = (i - 1) / 2;
	}
}

static struct event
heap_pop(struct sim *s)
{
	struct event top = s->heap[0];
	size_t i = 0;

	s->heap[0] = s->heap[--s->nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < s->nheap && ev_less(&s->heap[l], &s->heap[m]))
			m = l;
		if (r < s->nheap && ev_less(&s->heap[r], &s->heap[m]))
			m = r;
		if (m == i)
			break;
		struct event tmp = s->heap[i];

		s->heap[i] = s->heap[m];
		s->heap[m] = tmp;
		i = m;
	}
	return top;
}

static uint64_t
delay(struct sim *s)
{
	if (s->faults && chance(&s->g, s->longdelay))
		return 1 + rndn(&s->g, 3 * ROUNDTIME);
	return 1 + rndn(&s->g, s->faults ? s->maxdelay : 5);
}

/* Send m from node `from` to every other node through the network. */
static void
broadcast(struct sim *s, int from, struct msg *m)
{
	for (int to = 0; to < s->nnodes; to++) {
		if (to == from)
			continue;
		if (s->partitioned && s->n[to].group != s->n[from].group)
			continue;
		if (s->faults && (chance(&s->g, s->linkloss[from][to]) ||
		    (!m->is_input && m->p.stage == HP_PROPOSAL_STAGE_COMMIT &&
		    chance(&s->g, s->commitloss))))
			continue;
		heap_push(s, s->now + delay(s), to, m);
		if (s->faults && chance(&s->g, s->dup))
			heap_push(s, s->now + delay(s), to, m);
	}
}

static void
gmap_check(struct sim *s, int node, const struct hp_ledger *l)
{
	if (l->seq > s->gcap) {
		uint64_t cap = l->seq * 2;

		s->gmap = realloc(s->gmap, cap * 32);
		s->gset = realloc(s->gset, cap);
		if (s->gmap == NULL || s->gset == NULL)
			abort();
		memset(s->gset + s->gcap, 0, cap - s->gcap);
		s->gcap = cap;
	}
	if (!s->gset[l->seq - 1]) {
		s->gset[l->seq - 1] = 1;
		memcpy(s->gmap[l->seq - 1], l->hash, 32);
	} else if (memcmp(s->gmap[l->seq - 1], l->hash, 32) != 0)
		failf(s, "(a) node %d stored a different ledger at seq %" PRIu64,
		    node, l->seq);
}

/* Chain, hash and quorum of valid signatures; 0 when good. */
static int
ledger_ok(struct sim *s, const struct hp_ledger *l, uint64_t prev_seq,
    const uint8_t prev_hash[32])
{
	struct hp_ledger c = *l;
	uint8_t msg[sizeof(HP_LEDGER_SIG_DOMAIN) - 1 + 32];
	uint32_t good = 0;

	hp_ledger_compute_hash(&c);
	if (memcmp(c.hash, l->hash, 32) != 0 || l->seq != prev_seq + 1 ||
	    memcmp(l->prev_hash, prev_hash, 32) != 0)
		return -1;
	hp_ledger_sig_msg(l->hash, msg);
	for (uint32_t i = 0; i < l->nsigs; i++) {
		int dup = 0;

		for (uint32_t j = 0; j < i; j++)
			if (memcmp(l->sigs[j].pk, l->sigs[i].pk, 32) == 0)
				dup = 1;
		if (!dup && in_unl(s, l->sigs[i].pk) && verify_sig(s,
		    l->sigs[i].pk, msg, sizeof(msg), l->sigs[i].sig))
			good++;
	}
	return good >= s->quorum ? 0 : -2;
}

static void
lcl_of(const struct node *n, uint64_t *seq, uint8_t hash[32])
{
	if (n->nled == 0) {
		*seq = 0;
		memset(hash, 0, 32);
	} else {
		*seq = n->led[n->nled - 1].seq;
		memcpy(hash, n->led[n->nled - 1].hash, 32);
	}
}

static void
append_ledger(struct sim *s, int i, const struct hp_ledger *l)
{
	struct node *n = &s->n[i];
	uint8_t prev[32], st[32], zero[32] = { 0 };
	uint64_t pseq;
	int rc;

	lcl_of(n, &pseq, prev);
	if ((rc = ledger_ok(s, l, pseq, prev)) != 0) {
		failf(s, "(b) node %d ledger %" PRIu64 " %s", i, l->seq,
		    rc == -1 ? "breaks the chain" : "lacks a quorum of sigs");
		return;
	}
	if (n->nled == n->capled) {
		n->capled = n->capled ? n->capled * 2 : 64;
		n->led = realloc(n->led, n->capled * sizeof(*n->led));
		if (n->led == NULL)
			abort();
	}
	n->led[n->nled++] = *l;
	gmap_check(s, i, l);
	/* The contract's state after this ledger: the same on every node. */
	hp_hash(l->hash, 32, st);
	round_set_hashes(n->r, st, zero, zero);
}

static void handle_out(struct sim *s, int i, struct round_out *o);

static uint64_t
local(const struct sim *s, int i)
{
	return s->now + s->n[i].skew;
}

static void
start_sync(struct sim *s, int i, const struct round_out *o)
{
	struct node *n = &s->n[i];
	uint64_t seq;
	uint8_t h[32];

	lcl_of(n, &seq, h);
	trace(s, "n%d sync to %" PRIu64 " (lcl %" PRIu64 ")", i, o->sync_seq,
	    seq);
	if (o->sync_seq <= seq) {
		if (o->sync_seq == 0 || memcmp(n->led[o->sync_seq - 1].hash,
		    o->sync_hash, 32) != 0)
			failf(s, "(a) node %d asked to replace its ledger %"
			    PRIu64, i, o->sync_seq);
		return;
	}
	if (n->sync_pending)
		return;
	n->sync_pending = 1;
	n->sync_at = s->now + 2 + rndn(&s->g, 20);
	n->sync_seq = o->sync_seq;
	memcpy(n->sync_hash, o->sync_hash, 32);
}

static void
finish_sync(struct sim *s, int i)
{
	struct node *n = &s->n[i], *src = NULL;
	struct round_out o;
	uint64_t seq;
	uint8_t h[32];
	int cand[MAX_NODES], nc = 0;

	n->sync_pending = 0;
	lcl_of(n, &seq, h);
	if (n->sync_seq <= seq)
		return;
	for (int j = 0; j < s->nnodes; j++)
		if (j != i && s->n[j].nled >= n->sync_seq &&
		    memcmp(s->n[j].led[n->sync_seq - 1].hash, n->sync_hash,
		    32) == 0)
			cand[nc++] = j;
	if (nc == 0)
		return;
	src = &s->n[cand[rndn(&s->g, nc)]];
	for (uint64_t q = seq + 1; q <= n->sync_seq && !s->fail[0]; q++)
		append_ledger(s, i, &src->led[q - 1]);
	if (s->fail[0])
		return;
	trace(s, "n%d synced to %" PRIu64, i, n->sync_seq);
	round_synced(n->r, local(s, i), &n->led[n->nled - 1], &o);
	handle_out(s, i, &o);
}

static void
handle_out(struct sim *s, int i, struct round_out *o)
{
	for (size_t k = 0; k < o->nprops; k++) {
		struct msg *m = calloc(1, sizeof(*m));

		if (m == NULL)
			abort();
		m->p = *o->props[k];
		free(o->props[k]);
		o->props[k] = NULL;
		m->refs = 1;
		trace(s, "n%d send stage %d round %" PRIu64 " lcl %" PRIu64
		    " lock %" PRIu64 " lh %02x%02x", i, m->p.stage,
		    m->p.round - START, m->p.lcl_seq, m->p.lock_round ?
		    m->p.lock_round - START : 0, m->p.ledger_hash[0],
		    m->p.ledger_hash[1]);
		if (!s->n[i].validator)
			failf(s, "observer %d sent a proposal", i);
		if (!verify_proposal(s, &m->p))
			failf(s, "node %d sent a badly signed proposal", i);
		broadcast(s, i, m);
		if (s->faults && chance(&s->g, s->replayp)) {
			int slot = (int)rndn(&s->g, NREPLAY);

			msg_unref(s->replay[slot]);
			s->replay[slot] = m;
			m->refs++;
		}
		msg_unref(m);
	}
	o->nprops = 0;
	if (o->store) {
		trace(s, "n%d close %" PRIu64 " %02x%02x (%u sigs)", i,
		    o->ledger.seq, o->ledger.hash[0], o->ledger.hash[1],
		    o->ledger.nsigs);
		append_ledger(s, i, &o->ledger);
	}
	if (o->sync)
		start_sync(s, i, o);
	round_out_free(o);
}

static void
deliver(struct sim *s, struct event *e)
{
	struct node *n = &s->n[e->to];
	struct round_out o;

	if (e->m->is_input) {
		round_add_input(n->r, e->m->user, e->m->oh);
		return;
	}
	round_proposal(n->r, local(s, e->to), &e->m->p, &o);
	handle_out(s, e->to, &o);
}

static void
inject_input(struct sim *s)
{
	struct msg *m = calloc(1, sizeof(*m));
	int at = (int)rndn(&s->g, s->nnodes);
	uint64_t nonce = rnd(&s->g);

	if (m == NULL)
		abort();
	m->refs = 1;
	m->is_input = 1;
	memset(m->user, 0, 32);
	m->user[0] = (uint8_t)rndn(&s->g, 5);
	for (int k = 0; k < 8; k++)
		m->oh[k] = (uint8_t)(nonce >> (56 - 8 * k));
	for (int k = 8; k < 40; k++)
		m->oh[k] = (uint8_t)rnd(&s->g);
	round_add_input(s->n[at].r, m->user, m->oh);
	broadcast(s, at, m);
	msg_unref(m);
}

static void
network_step(struct sim *s)
{
	if (!s->faults)
		return;
	if (s->now >= s->heal_t) {
		s->faults = 0;
		s->partitioned = 0;
		trace(s, "network healed for good");
		return;
	}
	if (s->partitioned && s->now >= s->part_until) {
		s->partitioned = 0;
		trace(s, "partition healed");
	}
	if (!s->partitioned && s->now >= s->next_part) {
		int groups = 2 + (int)rndn(&s->g, 2);

		s->partitioned = 1;
		s->part_until = s->now + 1 + rndn(&s->g, 6 * ROUNDTIME);
		s->next_part = s->part_until + rndn(&s->g, 8 * ROUNDTIME);
		for (int i = 0; i < s->nnodes; i++)
			s->n[i].group = (int)rndn(&s->g, groups);
		if (chance(&s->g, 300)) {
			/* Cut one node off from everyone else. */
			int alone = (int)rndn(&s->g, s->nnodes);

			for (int i = 0; i < s->nnodes; i++)
				s->n[i].group = i == alone;
		}
		trace(s, "partition into %d groups until %" PRIu64, groups,
		    s->part_until - START);
	}
}

/* Run one seed; returns 0 or fills s->fail. */
static void
run(struct sim *s, uint64_t seed, int nval, int rounds)
{
	struct hp_ledger genesis;
	uint64_t end, seq_at_heal = 0, t0;
	int nofault;

	int tr = s->trace;

	memset(s, 0, sizeof(*s));
	s->trace = tr;
	s->g.s = seed * 0x2545f4914f6cdd1dULL + 1;
	s->nval = nval;
	s->nnodes = nval + 1;	/* the last one is an observer */
	nofault = seed % 8 == 0;
	s->faults = !nofault;
	s->loss = (uint32_t)rndn(&s->g, 250);
	s->dup = (uint32_t)rndn(&s->g, 150);
	s->longdelay = (uint32_t)rndn(&s->g, 30);
	s->replayp = (uint32_t)rndn(&s->g, 50);
	s->maxdelay = 1 + (uint32_t)rndn(&s->g, 40);
	s->commitloss = chance(&s->g, 500) ? (uint32_t)rndn(&s->g, 500) : 0;
	{
		static const uint32_t th[] = { 51, 60, 67, 80 };

		s->threshold = th[rndn(&s->g, 4)];
	}
	for (int a = 0; a < MAX_NODES; a++)
		for (int b = 0; b < MAX_NODES; b++)
			s->linkloss[a][b] = (uint16_t)(chance(&s->g, 150) ?
			    rndn(&s->g, 700) : s->loss);
	t0 = START;
	s->now = t0 - 1 - rndn(&s->g, ROUNDTIME);
	s->heal_t = t0 + (uint64_t)(rounds * 2 / 3) * ROUNDTIME +
	    rndn(&s->g, ROUNDTIME);
	s->next_part = t0 + rndn(&s->g, 4 * ROUNDTIME);
	end = t0 + (uint64_t)rounds * ROUNDTIME;

	for (int i = 0; i < s->nnodes; i++) {
		for (int k = 0; k < 32; k++)
			s->n[i].secret[k] = (uint8_t)rnd(&s->g);
		hp_hash(s->n[i].secret, 32, s->n[i].pk);
		s->n[i].validator = i < nval;
		s->n[i].skew = rndn(&s->g, 4);
	}
	/* Sorted UNL. */
	for (int i = 0; i < nval; i++)
		memcpy(s->unl + i * 32, s->n[i].pk, 32);
	for (int i = 1; i < nval; i++)
		for (int j = i; j > 0 && memcmp(s->unl + (j - 1) * 32,
		    s->unl + j * 32, 32) > 0; j--) {
			uint8_t tmp[32];

			memcpy(tmp, s->unl + j * 32, 32);
			memcpy(s->unl + j * 32, s->unl + (j - 1) * 32, 32);
			memcpy(s->unl + (j - 1) * 32, tmp, 32);
		}
	s->quorum = hp_close_quorum(s->threshold, nval);
	hp_ledger_genesis(&genesis);
	for (int i = 0; i < s->nnodes; i++) {
		struct round_cfg cfg;

		memset(&cfg, 0, sizeof(cfg));
		memcpy(cfg.self, s->n[i].pk, 32);
		cfg.validator = s->n[i].validator;
		cfg.unl = s->unl;
		cfg.unl_n = (uint32_t)nval;
		cfg.threshold = s->threshold;
		cfg.roundtime = ROUNDTIME;
		cfg.stage_slice = SLICE;
		cfg.offset = START % ROUNDTIME;
		hp_hash(s->n[i].pk, 32, cfg.nonce_seed);
		cfg.sign = sign_cb;
		cfg.sign_ctx = &s->n[i];
		if ((s->n[i].r = round_new(&cfg, &genesis)) == NULL)
			abort();
	}

	for (; s->now < end && !s->fail[0]; s->now++) {
		network_step(s);
		if (s->now == s->heal_t) {
			for (int i = 0; i < s->nnodes; i++) {
				uint64_t q;
				uint8_t h[32];

				lcl_of(&s->n[i], &q, h);
				if (q > seq_at_heal)
					seq_at_heal = q;
			}
		}
		while (s->nheap > 0 && s->heap[0].t <= s->now &&
		    !s->fail[0]) {
			struct event e = heap_pop(s);

			deliver(s, &e);
			msg_unref(e.m);
		}
		if (s->faults && chance(&s->g, s->replayp / 10 + 1)) {
			struct msg *m = s->replay[rndn(&s->g, NREPLAY)];

			if (m != NULL)
				heap_push(s, s->now + 1,
				    (int)rndn(&s->g, s->nnodes), m);
		}
		if (chance(&s->g, 20))
			inject_input(s);
		for (int i = 0; i < s->nnodes && !s->fail[0]; i++) {
			struct round_out o;

			if (s->n[i].sync_pending && s->now >= s->n[i].sync_at)
				finish_sync(s, i);
			if (round_deadline(s->n[i].r) > local(s, i))
				continue;
			round_tick(s->n[i].r, local(s, i), &o);
			handle_out(s, i, &o);
		}
	}
	if (!s->fail[0]) {
		for (int i = 0; i < s->nnodes; i++) {
			uint64_t q;
			uint8_t h[32];

			lcl_of(&s->n[i], &q, h);
			if (nofault && q + 2 < (uint64_t)rounds) {
				failf(s, "(d) node %d closed %" PRIu64
				    " ledgers in %d fault-free rounds", i, q,
				    rounds);
				break;
			}
			if (!nofault && q < seq_at_heal + LIVE_K) {
				failf(s, "(c) node %d at %" PRIu64 " after "
				    "healing at %" PRIu64, i, q, seq_at_heal);
				break;
			}
		}
	}
	for (int i = 0; i < s->nnodes; i++) {
		round_free(s->n[i].r);
		free(s->n[i].led);
	}
	while (s->nheap > 0) {
		struct event e = heap_pop(s);

		msg_unref(e.m);
	}
	for (int k = 0; k < NREPLAY; k++)
		msg_unref(s->replay[k]);
	free(s->heap);
	free(s->gmap);
	free(s->gset);
}

static void
usage(void)
{
	fprintf(stderr, "usage: sim [--seeds N] [--first S] [--nodes N] "
	    "[--rounds R] [--seed S --trace]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static struct sim s;
	uint64_t first = 1, nseeds = 200, failed = 0;
	int nodes = 7, rounds = 40, trace_on = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--trace") == 0) {
			trace_on = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		uint64_t v = strtoull(argv[++i], NULL, 10);

		if (strcmp(a, "--seeds") == 0)
			nseeds = v;
		else if (strcmp(a, "--first") == 0)
			first = v;
		else if (strcmp(a, "--seed") == 0) {
			first = v;
			nseeds = 1;
		} else if (strcmp(a, "--nodes") == 0)
			nodes = (int)v;
		else if (strcmp(a, "--rounds") == 0)
			rounds = (int)v;
		else
			usage();
	}
	if (nodes < 1 || nodes >= MAX_NODES || rounds < 12)
		usage();
	for (uint64_t seed = first; seed < first + nseeds; seed++) {
		s.trace = trace_on;
		run(&s, seed, nodes, rounds);
		if (s.fail[0] != '\0') {
			printf("seed %" PRIu64 ": %s\n", seed, s.fail);
			failed++;
		}
	}
	printf("%" PRIu64 " seeds, %" PRIu64 " failed\n", nseeds, failed);
	return failed ? 1 : 0;
}
