/*
 * round.h — HotPocket's consensus round as a pure state machine: events
 * in (a tick, a verified proposal, a ledger sync done), actions out
 * (proposals to broadcast, a ledger to store, ledgers to fetch). No I/O,
 * no clock reads, no randomness, no logging inside: the caller passes
 * the time, signs through a callback, and performs every action. The
 * same code runs in hpd-consensus and in the simulator (tests/sim).
 *
 * Stages 0..3 follow HotPocket; stage-3 proposals are prevotes on a
 * ledger hash, and a quorum of them makes a node send a stage-4 COMMIT
 * and lock; a quorum of COMMITs of one round closes the ledger.
 * docs/consensus.md has the protocol and its safety argument.
 *
 * Ownership: round_new() copies cfg (and the UNL) and lcl; round_free()
 * frees everything the round owns. Proposals placed in a round_out
 * belong to the caller: round_out_free() frees them all (or free each
 * with hp_proposal_free() + free() and clear the slot).
 */
#ifndef HP_ROUND_H
#define HP_ROUND_H

#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "proposal.h"

#define ROUND_UNRELIABLE_RESET 5	/* unreliable rounds before adopting
					   the UNL's time_config */
#define ROUND_MAX_UNL 1024
#define ROUND_INPUT_TTL 16		/* ledgers an unconsensed input lives */
/* Inputs one proposal carries at most: 40 bytes each, and up to 32 more
 * for its user, must fit in a 1 MiB peer frame; more wait for later
 * rounds, lowest ordered hash (nonce, then hash) first. */
#define ROUND_MAX_PROPOSED_INPUTS 12000

struct round_cfg {
	uint8_t self[32];
	int validator;		/* proposes: role validator AND self in UNL */
	const uint8_t *unl;	/* unl_n sorted unique 32-byte keys, copied */
	uint32_t unl_n;
	uint32_t threshold;	/* percent, > 50 for safety */
	uint32_t roundtime;	/* ms */
	uint32_t stage_slice;	/* percent of roundtime per stage 1..3 */
	/* Round alignment: rounds start at k*roundtime + offset % roundtime,
	 * so the full hp_stdhash(contract_id) keeps HotPocket's alignment
	 * when roundtime changes. */
	uint64_t offset;
	uint8_t nonce_seed[32];	/* node nonce = BLAKE3(seed || round BE) */
	/* Sign msg (len bytes) with the node key; 0 or negative HP_E*. */
	int (*sign)(void *ctx, const uint8_t *msg, size_t len,
	    uint8_t sig[64]);
	void *sign_ctx;
};

struct round_out {
	/* Signed proposals to broadcast to every peer; the caller owns them
	 * (hp_proposal_free + free). They are already counted by the round
	 * itself: do not feed them back. */
	size_t nprops;
	struct hp_proposal *props[8];
	/* store == 1: a ledger closed. Make it durable BEFORE feeding any
	 * further event, then log it. */
	int store;
	struct hp_ledger ledger;
	/* With store: the ledger's users and inputs (40-byte ordered
	 * hashes: nonce BE || BLAKE3(sig)), sorted; round_out_free frees. */
	struct hp_set users, inputs;
	/* sync == 1: fetch ledgers (lcl_seq+1 .. sync_seq] from one of
	 * sync_from, verify the chain ends at sync_hash, store them, then call
	 * round_synced(). sync_seq <= lcl_seq means a fork at sync_seq: the
	 * cluster's ledger there differs from ours (never among honest nodes). */
	int sync;
	uint64_t sync_seq;
	uint8_t sync_hash[32];
	uint8_t sync_from[8][32];
	uint32_t sync_nfrom;
};

enum round_vote {
	ROUND_UNKNOWN = 0,
	ROUND_UNRELIABLE = 1,
	ROUND_DESYNC = 2,
	ROUND_SYNCED = 3,
};

struct round_member_status {
	uint8_t pubkey[32];
	uint64_t last_time;	/* round of its newest proposal, 0: never */
	uint8_t last_stage;	/* stage of that proposal */
	uint32_t time_config;	/* time_config it reported */
};

/* A snapshot; members points into the round and is valid until the
 * next call on it. */
struct round_status {
	uint64_t round;		/* current round start (0: not started) */
	uint8_t stage;		/* next stage to run, 0..3; 4: round done */
	enum round_vote vote;
	uint64_t lcl_seq;
	uint8_t lcl_hash[32];
	uint32_t unl_n;
	const struct round_member_status *members;
	uint32_t unreliable_rounds;	/* consecutive */
	uint64_t ledgers_closed;
	int locked;
	uint64_t lock_seq;
	uint8_t lock_hash[32];
	uint64_t lock_round;
	uint32_t time_config;
};

/* NULL on bad cfg (no UNL, unsorted UNL, roundtime 0, slice > 33,
 * threshold > 100, no sign callback for a validator) or no memory. */
struct round *round_new(const struct round_cfg *cfg,
    const struct hp_ledger *lcl);
void round_free(struct round *r);

/* Our current state/patch/membership hashes, used from the next
 * proposal on. */
void round_set_hashes(struct round *r, const uint8_t state[32],
    const uint8_t patch[32], const uint8_t membership[32]);

/* While held, no new round starts (no stage-0 proposal): the caller holds
 * the round while the contract runs over the lcl, so that the next
 * proposal carries the run's state hash and output root. Release with
 * hold 0; the round then starts at the current boundary. */
void round_hold(struct round *r, int hold);

/* The output root of our contract run over the lcl (zero: none), voted
 * from the next stage-0 proposal on. */
void round_set_output(struct round *r, const uint8_t output[32]);

/* The users connected to this node now (n 32-byte keys, any order):
 * proposed at stage 0 with or without inputs. 0, HP_ETOOBIG, HP_ENOMEM. */
int round_set_users(struct round *r, const uint8_t *users, uint32_t n);

/* A candidate user input we hold. 0, HP_EEXIST (already held),
 * HP_ETOOBIG (pool full) or HP_ENOMEM. */
int round_add_input(struct round *r, const uint8_t user[32],
    const uint8_t ordered_hash[40]);

/*
 * Events. out is filled from scratch (round_out_free() it after use).
 * round_proposal: p was signature-verified and comes from a UNL key; for
 * a COMMIT the caller also verified ledger_sig against p->pubkey. The
 * round copies what it keeps; p stays the caller's.
 */
void round_tick(struct round *r, uint64_t now, struct round_out *out);
void round_proposal(struct round *r, uint64_t now,
    const struct hp_proposal *p, struct round_out *out);
void round_synced(struct round *r, uint64_t now,
    const struct hp_ledger *new_lcl, struct round_out *out);

/* Absolute time (ms) at which round_tick() is next needed; 0: now. */
uint64_t round_deadline(const struct round *r);

void round_out_free(struct round_out *out);

void round_status(const struct round *r, struct round_status *st);

/*
 * Locks survive restarts: after every event the caller exports the lock
 * (1 when locked: *out is the locked ledger's content, caller frees it
 * with hp_proposal_free) and makes it durable BEFORE broadcasting that
 * event's proposals; after round_new() it imports the saved one (ignored
 * unless it is for the ledger after lcl). Forgetting a lock would let a
 * restarted node commit a second ledger at the same sequence number.
 */
int round_lock_export(const struct round *r, struct hp_proposal *out,
    uint64_t *lock_round);
void round_lock_import(struct round *r, const struct hp_proposal *p,
    uint64_t lock_round);

/* Exposed for tests: votes needed at stage 1..3 (HotPocket's float
 * formula, quirks included). */
uint32_t round_stage_required(uint32_t threshold, uint32_t unl_n, int stage);

#endif
