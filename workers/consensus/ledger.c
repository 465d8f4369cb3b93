/*
 * ledger.c — checking a closed ledger against the chain and the UNL, and
 * its msgpack encoding (ledger.h). The hash itself is in ledger_hash.c.
 *
 * The encoding is a map of exactly twelve entries with keys 1..12, one per
 * field, with the signatures as an array of [pk bin32, sig bin64] pairs.
 * hp_ledger_unpack() checks every key, type and length and refuses
 * unknown or repeated keys, but copies the hash as the sender gave it:
 * only hp_ledger_verify() recomputes it, so a ledger read from a peer
 * must go through hp_ledger_verify() before anything relies on l->hash.
 * hp_ledger_pack() writes at most HP_LEDGER_MAX_SIGS signatures, so what
 * it writes always unpacks.
 */
#include "ledger.h"

#include <stdbool.h>
#include <string.h>

#include "err.h"
#include "mpack.h"

enum {
	LK_SEQ = 1,
	LK_TIME,
	LK_PREV_HASH,
	LK_HASH,
	LK_STATE_HASH,
	LK_PATCH_HASH,
	LK_MEMBERSHIP_HASH,
	LK_NONCE,
	LK_USER_HASH,
	LK_INPUT_HASH,
	LK_OUTPUT_HASH,
	LK_SIGS,
	LK_COUNT = LK_SIGS	/* keys are 1..LK_COUNT */
};

static bool
in_unl(const uint8_t pk[HP_PK_BYTES], const uint8_t *unl, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(unl + i * HP_PK_BYTES, pk, HP_PK_BYTES) == 0)
			return true;
	return false;
}

/*
 * Count distinct UNL members with a valid signature, stopping once quorum
 * is reached. A key is counted at most once however often it appears; a
 * repeat is still checked when its earlier copies carried a bad signature.
 */
static uint32_t
count_signers(const struct hp_ledger *l, const uint8_t *unl, size_t n,
    uint32_t quorum)
{
	uint8_t msg[sizeof(HP_LEDGER_SIG_DOMAIN) - 1 + HP_HASH_BYTES];
	bool counted[HP_LEDGER_MAX_SIGS] = { false };
	uint32_t votes = 0;

	hp_ledger_sig_msg(l->hash, msg);
	for (uint32_t i = 0; i < l->nsigs && votes < quorum; i++) {
		const struct hp_ledger_sig *s = &l->sigs[i];
		bool seen = false;

		for (uint32_t j = 0; j < i && !seen; j++)
			seen = counted[j] &&
			    memcmp(l->sigs[j].pk, s->pk, HP_PK_BYTES) == 0;
		if (seen || !in_unl(s->pk, unl, n))
			continue;
		if (hp_verify(s->pk, msg, sizeof(msg), s->sig) != 0)
			continue;
		counted[i] = true;
		votes++;
	}
	return votes;
}

int
hp_ledger_verify(const struct hp_ledger *l, uint64_t prev_seq,
    const uint8_t prev_hash[HP_HASH_BYTES], const uint8_t *unl, size_t n,
    uint32_t threshold)
{
	struct hp_ledger copy;
	uint32_t quorum;

	if (prev_seq == UINT64_MAX || l->seq != prev_seq + 1)
		return HP_EINVAL;
	if (memcmp(l->prev_hash, prev_hash, HP_HASH_BYTES) != 0)
		return HP_EINVAL;
	if (l->nsigs > HP_LEDGER_MAX_SIGS || n > UINT32_MAX)
		return HP_EINVAL;

	copy = *l;
	hp_ledger_compute_hash(&copy);
	if (memcmp(copy.hash, l->hash, HP_HASH_BYTES) != 0)
		return HP_EINVAL;

	/* A ledger nobody signed is never closed, whatever the threshold. */
	quorum = hp_close_quorum(threshold, (uint32_t)n);
	if (quorum == 0)
		quorum = 1;
	if (count_signers(l, unl, n, quorum) < quorum)
		return HP_ECRYPTO;
	return 0;
}


static void
pack_hash(msgpack_packer *pk, uint64_t key, const uint8_t h[HP_HASH_BYTES])
{
	msgpack_pack_uint64(pk, key);
	hp_mpack_pack_bin(pk, h, HP_HASH_BYTES);
}

void
hp_ledger_pack(msgpack_packer *pk, const struct hp_ledger *l)
{
	uint32_t nsigs = l->nsigs;

	if (nsigs > HP_LEDGER_MAX_SIGS)
		nsigs = HP_LEDGER_MAX_SIGS;
	msgpack_pack_map(pk, LK_COUNT);
	msgpack_pack_uint64(pk, LK_SEQ);
	msgpack_pack_uint64(pk, l->seq);
	msgpack_pack_uint64(pk, LK_TIME);
	msgpack_pack_uint64(pk, l->time);
	pack_hash(pk, LK_PREV_HASH, l->prev_hash);
	pack_hash(pk, LK_HASH, l->hash);
	pack_hash(pk, LK_STATE_HASH, l->state_hash);
	pack_hash(pk, LK_PATCH_HASH, l->patch_hash);
	pack_hash(pk, LK_MEMBERSHIP_HASH, l->membership_hash);
	pack_hash(pk, LK_NONCE, l->nonce);
	pack_hash(pk, LK_USER_HASH, l->user_hash);
	pack_hash(pk, LK_INPUT_HASH, l->input_hash);
	pack_hash(pk, LK_OUTPUT_HASH, l->output_hash);
	msgpack_pack_uint64(pk, LK_SIGS);
	msgpack_pack_array(pk, nsigs);
	for (uint32_t i = 0; i < nsigs; i++) {
		msgpack_pack_array(pk, 2);
		hp_mpack_pack_bin(pk, l->sigs[i].pk, HP_PK_BYTES);
		hp_mpack_pack_bin(pk, l->sigs[i].sig, HP_SIG_BYTES);
	}
}

static int
get_bin(const msgpack_object *o, uint8_t *out, size_t len)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != len)
		return HP_EFORMAT;
	memcpy(out, o->via.bin.ptr, len);
	return 0;
}

static int
get_u64(const msgpack_object *o, uint64_t *out)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return HP_EFORMAT;
	*out = o->via.u64;
	return 0;
}

static int
get_sigs(const msgpack_object *o, struct hp_ledger *l)
{
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return HP_EFORMAT;
	if (o->via.array.size > HP_LEDGER_MAX_SIGS)
		return HP_ETOOBIG;
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *pair = &o->via.array.ptr[i];

		if (pair->type != MSGPACK_OBJECT_ARRAY ||
		    pair->via.array.size != 2)
			return HP_EFORMAT;
		if (get_bin(&pair->via.array.ptr[0], l->sigs[i].pk,
		    HP_PK_BYTES) != 0 ||
		    get_bin(&pair->via.array.ptr[1], l->sigs[i].sig,
		    HP_SIG_BYTES) != 0)
			return HP_EFORMAT;
	}
	l->nsigs = o->via.array.size;
	return 0;
}

static int
get_field(uint64_t key, const msgpack_object *v, struct hp_ledger *l)
{
	switch (key) {
	case LK_SEQ:
		return get_u64(v, &l->seq);
	case LK_TIME:
		return get_u64(v, &l->time);
	case LK_PREV_HASH:
		return get_bin(v, l->prev_hash, HP_HASH_BYTES);
	case LK_HASH:
		return get_bin(v, l->hash, HP_HASH_BYTES);
	case LK_STATE_HASH:
		return get_bin(v, l->state_hash, HP_HASH_BYTES);
	case LK_PATCH_HASH:
		return get_bin(v, l->patch_hash, HP_HASH_BYTES);
	case LK_MEMBERSHIP_HASH:
		return get_bin(v, l->membership_hash, HP_HASH_BYTES);
	case LK_NONCE:
		return get_bin(v, l->nonce, HP_HASH_BYTES);
	case LK_USER_HASH:
		return get_bin(v, l->user_hash, HP_HASH_BYTES);
	case LK_INPUT_HASH:
		return get_bin(v, l->input_hash, HP_HASH_BYTES);
	case LK_OUTPUT_HASH:
		return get_bin(v, l->output_hash, HP_HASH_BYTES);
	case LK_SIGS:
		return get_sigs(v, l);
	default:
		return HP_EFORMAT;
	}
}

int
hp_ledger_unpack(const msgpack_object *o, struct hp_ledger *l)
{
	uint32_t seen = 0;
	int r;

	memset(l, 0, sizeof(*l));
	if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != LK_COUNT)
		return HP_EFORMAT;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		uint64_t key;

		if (kv->key.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return HP_EFORMAT;
		key = kv->key.via.u64;
		if (key < 1 || key > LK_COUNT || (seen & (1u << key)) != 0)
			return HP_EFORMAT;
		seen |= 1u << key;
		if ((r = get_field(key, &kv->val, l)) != 0)
			return r;
	}
	return 0;
}
