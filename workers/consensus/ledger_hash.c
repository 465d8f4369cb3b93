/*
 * ledger_hash.c — the ledger hash definition (ledger.h). Kept apart from
 * the encoding and the store so that the round state machine and the
 * simulator can use it alone.
 */
#include "ledger.h"

#include <blake3.h>
#include <stdio.h>
#include <string.h>

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

void
hp_list_hash(const uint8_t *items, size_t n, uint8_t out[HP_HASH_BYTES])
{
	if (n == 0) {
		memset(out, 0, HP_HASH_BYTES);
		return;
	}
	hp_hash(items, n * HP_HASH_BYTES, out);
}

void
hp_ledger_compute_hash(struct hp_ledger *l)
{
	static const char domain[] = "hpd ledger v1";
	uint8_t be[8], data_hash[HP_HASH_BYTES];
	blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, domain, sizeof(domain) - 1);
	put_be64(be, l->seq);
	blake3_hasher_update(&h, be, 8);
	put_be64(be, l->time);
	blake3_hasher_update(&h, be, 8);
	blake3_hasher_update(&h, l->state_hash, HP_HASH_BYTES);
	blake3_hasher_update(&h, l->patch_hash, HP_HASH_BYTES);
	blake3_hasher_update(&h, l->membership_hash, HP_HASH_BYTES);
	blake3_hasher_update(&h, l->nonce, HP_HASH_BYTES);
	blake3_hasher_update(&h, l->user_hash, HP_HASH_BYTES);
	blake3_hasher_update(&h, l->input_hash, HP_HASH_BYTES);
	blake3_hasher_update(&h, l->output_hash, HP_HASH_BYTES);
	blake3_hasher_finalize(&h, data_hash, HP_HASH_BYTES);

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, l->prev_hash, HP_HASH_BYTES);
	blake3_hasher_update(&h, data_hash, HP_HASH_BYTES);
	blake3_hasher_finalize(&h, l->hash, HP_HASH_BYTES);
}

void
hp_ledger_genesis(struct hp_ledger *l)
{
	memset(l, 0, sizeof(*l));
}

void
hp_ledger_sig_msg(const uint8_t hash[HP_HASH_BYTES],
    uint8_t out[sizeof(HP_LEDGER_SIG_DOMAIN) - 1 + HP_HASH_BYTES])
{
	memcpy(out, HP_LEDGER_SIG_DOMAIN, sizeof(HP_LEDGER_SIG_DOMAIN) - 1);
	memcpy(out + sizeof(HP_LEDGER_SIG_DOMAIN) - 1, hash, HP_HASH_BYTES);
}

uint32_t
hp_close_quorum(uint32_t threshold, uint32_t unl_count)
{
	uint64_t p = (uint64_t)threshold * unl_count;

	return (uint32_t)((p + 99) / 100);
}

void
hp_ledger_id(const struct hp_ledger *l, char *out, size_t size)
{
	char hex[9];

	hp_hash_hex(l->hash, 4, hex);
	snprintf(out, size, "%llu-%s", (unsigned long long)l->seq, hex);
}
