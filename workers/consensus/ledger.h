/*
 * ledger.h — a closed ledger: its fields, its hash, its signatures, and
 * its encoding for storage and for ledger sync between nodes.
 *
 * Hash definition (docs/ledger.md has test vectors):
 *   data_hash   = BLAKE3( "hpd ledger v1" || seq (u64 BE) || time (u64 BE)
 *                 || state_hash || patch_hash || membership_hash
 *                 || nonce || user_hash || input_hash || output_hash )
 *   ledger_hash = BLAKE3( prev_hash || data_hash )
 * user_hash / input_hash are BLAKE3 over the concatenated sorted 32-byte
 * user keys / input hashes, or 32 zero bytes when the list is empty.
 * Genesis is seq 0 with every hash zero; ledger 1's prev_hash is zero.
 *
 * A closed ledger carries the signatures of at least
 * ceil(threshold * |UNL| / 100) UNL members over ledger_hash (each is the
 * ed25519 signature over HP_LEDGER_SIG_DOMAIN || ledger_hash). A node
 * accepts a ledger from a peer only when the chain and those signatures
 * verify against its UNL.
 *
 * Ownership: struct hp_ledger is a plain value (fixed arrays, at most
 * HP_LEDGER_MAX_SIGS signatures); nothing to free.
 */
#ifndef HP_LEDGER_H
#define HP_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "hash.h"
#include "keys.h"

#define HP_LEDGER_MAX_SIGS 128
#define HP_LEDGER_SIG_DOMAIN "hpd ledger v1\n"

struct hp_ledger_sig {
	uint8_t pk[HP_PK_BYTES];
	uint8_t sig[HP_SIG_BYTES];
};

struct hp_ledger {
	uint64_t seq;
	uint64_t time;			/* round start, ms since the epoch */
	uint8_t prev_hash[HP_HASH_BYTES];
	uint8_t hash[HP_HASH_BYTES];	/* ledger_hash */
	uint8_t state_hash[HP_HASH_BYTES];
	uint8_t patch_hash[HP_HASH_BYTES];
	uint8_t membership_hash[HP_HASH_BYTES];
	uint8_t nonce[HP_HASH_BYTES];	/* group nonce */
	uint8_t user_hash[HP_HASH_BYTES];
	uint8_t input_hash[HP_HASH_BYTES];
	uint8_t output_hash[HP_HASH_BYTES];
	uint32_t nsigs;
	struct hp_ledger_sig sigs[HP_LEDGER_MAX_SIGS];
};

/* Fill l->hash from the other fields. */
void hp_ledger_compute_hash(struct hp_ledger *l);

/* BLAKE3 over n sorted 32-byte items, or zeros when n == 0. */
void hp_list_hash(const uint8_t *items, size_t n, uint8_t out[HP_HASH_BYTES]);

/* The genesis ledger (seq 0, all zero). */
void hp_ledger_genesis(struct hp_ledger *l);

/* The bytes a UNL member signs for a ledger. */
void hp_ledger_sig_msg(const uint8_t hash[HP_HASH_BYTES],
    uint8_t out[sizeof(HP_LEDGER_SIG_DOMAIN) - 1 + HP_HASH_BYTES]);

/* ceil(threshold * unl_count / 100): votes needed to close a ledger. */
uint32_t hp_close_quorum(uint32_t threshold, uint32_t unl_count);

/*
 * Check l: the hash recomputes, l->prev_hash equals prev_hash and l->seq
 * is prev_seq + 1, and at least hp_close_quorum() distinct keys of the
 * UNL (unl: n sorted 32-byte keys) signed it. Returns 0, HP_EINVAL (chain
 * or hash) or HP_ECRYPTO (signatures).
 */
int hp_ledger_verify(const struct hp_ledger *l, uint64_t prev_seq,
    const uint8_t prev_hash[HP_HASH_BYTES], const uint8_t *unl, size_t n,
    uint32_t threshold);

/* msgpack encoding (a map with small integer keys). */
void hp_ledger_pack(msgpack_packer *pk, const struct hp_ledger *l);
/* Decode from an object produced by hp_mpack_unpack(); HP_EFORMAT on any
 * missing or mistyped field, HP_ETOOBIG for too many signatures. */
int hp_ledger_unpack(const msgpack_object *o, struct hp_ledger *l);

/* "SEQ-HASH8" as in HotPocket's log line; out holds 32 bytes. */
void hp_ledger_id(const struct hp_ledger *l, char *out, size_t size);

#endif
