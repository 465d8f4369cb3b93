/*
 * proposal.h — the signed round proposal that UNL members exchange, its
 * canonical hash, and its msgpack encoding. One struct serves all five
 * kinds of message of a round: the stage 0..3 proposals of HotPocket's
 * round, and the stage-4 COMMIT that carries a ledger signature (see
 * docs/consensus.md). The hash covers every field except sig; sig is the
 * ed25519 signature of the sender over that hash (the caller signs and
 * verifies with keys.h).
 *
 * Ownership: a struct hp_proposal owns the items of its three sets.
 * hp_proposal_free() frees them (not the struct itself); a zeroed struct
 * is a valid empty proposal.
 */
#ifndef HP_PROPOSAL_H
#define HP_PROPOSAL_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define HP_PROPOSAL_MAX_SET 65536	/* items per set */
#define HP_PROPOSAL_STAGE_COMMIT 4
#define HP_PROPOSAL_USER_WIDTH 32	/* user public key */
#define HP_PROPOSAL_INPUT_WIDTH 40	/* nonce (u64 BE) || BLAKE3(sig) */
#define HP_PROPOSAL_NONCE_WIDTH 32	/* node nonce */
#define HP_PROPOSAL_DOMAIN "hpd proposal v1"

/*
 * A set of fixed-width byte strings, sorted ascending bytewise, without
 * duplicates. items holds n * width bytes (NULL when n == 0).
 */
struct hp_set {
	uint32_t n;
	uint32_t width;
	uint8_t *items;
};

struct hp_proposal {
	uint8_t pubkey[32];	/* sender's ed25519 key */
	uint8_t stage;		/* 0..3: HotPocket stages; 4: COMMIT */
	/*
	 * Ledger time: the round start this proposal's content belongs to —
	 * the sender's round start for fresh content, or the time of the
	 * ledger it is locked on (lock_round != 0).
	 */
	uint64_t time;
	uint64_t round;		/* sender's current round start T_k (ms) */
	uint32_t time_config;	/* roundtime * 100 + stage_slice */
	uint8_t node_nonce[32];	/* sender's fresh nonce for this round */
	uint64_t lcl_seq;	/* sender's last closed ledger */
	uint8_t lcl_hash[32];
	/*
	 * Stage 0: the sender's own current hashes. Stages 1..4: the values
	 * elected from the previous stage (or the locked content); at stages
	 * 3 and 4 they are what the ledger records.
	 */
	uint8_t state_hash[32];
	uint8_t patch_hash[32];
	uint8_t membership_hash[32];
	uint8_t output_hash[32];
	struct hp_set users;	/* width 32 */
	struct hp_set inputs;	/* width 40, HotPocket ordered hashes */
	struct hp_set nonces;	/* width 32; empty at stage 0 */
	uint8_t group_nonce[32];/* stages 3, 4 and locked content; else 0 */
	uint8_t ledger_hash[32];/* stages 3, 4 and locked content; else 0 */
	uint64_t lock_round;	/* round of the lock this content carries, 0 */
	uint8_t ledger_sig[64];	/* stage 4: sig over hp_ledger_sig_msg() */
	uint8_t sig[64];	/* ed25519 over hp_proposal_hash() */
};

/* Free the sets' items and zero them; the struct itself is the caller's. */
void hp_proposal_free(struct hp_proposal *p);

/* Deep copy; on error out is left empty. Returns 0 or HP_ENOMEM. */
int hp_proposal_dup(const struct hp_proposal *p, struct hp_proposal *out);

/* BLAKE3 over the canonical serialisation of every field but sig. */
void hp_proposal_hash(const struct hp_proposal *p, uint8_t out[32]);

/*
 * Encode as one msgpack array of 20 elements in field order; each set is
 * one bin of n * width bytes.
 */
void hp_proposal_pack(msgpack_packer *pk, const struct hp_proposal *p);

/*
 * Decode buf[0..len). On success *out owns fresh sets (caller calls
 * hp_proposal_free); on error nothing is allocated and *out is zeroed.
 * Returns 0, HP_EFORMAT (types, lengths, order, stage), HP_ETOOBIG (a
 * set above HP_PROPOSAL_MAX_SET, refused before allocating), HP_ETRUNC,
 * or HP_ENOMEM.
 */
int hp_proposal_unpack(const uint8_t *buf, size_t len,
    struct hp_proposal *out);

/* Set helpers. hp_set_check: 0 when sorted and unique, else HP_EFORMAT. */
int hp_set_check(const struct hp_set *s);
/* 1 when item (width bytes) is in s. */
int hp_set_contains(const struct hp_set *s, const uint8_t *item);
/* Copy n sorted unique items into s (allocates). 0 or HP_ENOMEM. */
int hp_set_assign(struct hp_set *s, uint32_t width, const uint8_t *items,
    uint32_t n);
void hp_set_free(struct hp_set *s);

#endif
