/*
 * fuzz_ledger.c — libFuzzer target for the ledger decoder
 * (workers/consensus/ledger.c) behind the msgpack pre-pass.
 *
 * Input is one msgpack object, as a peer's ledger sync reply or a stored
 * ledger would carry. hp_ledger_unpack() may only succeed or say
 * HP_EFORMAT / HP_ETOOBIG; what it accepts must have at most
 * HP_LEDGER_MAX_SIGS signatures and must survive pack → unpack unchanged.
 * The decoded ledger is then checked with hp_ledger_verify() twice: as
 * sent (its hash is almost never right) and with the hash recomputed,
 * against a UNL made of the ledger's own signers, so that the signature
 * counting runs on hostile input too. Seeds are in
 * tests/fuzz/corpus/ledger/: packed ledgers with 0, 1, 3 and 128
 * signatures.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "err.h"
#include "ledger.h"
#include "mpack.h"

#define UNL_MAX 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hp_ledger l, again;

static void
round_trip(void)
{
	msgpack_unpacked res;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	hp_ledger_pack(&pk, &l);
	if (hp_mpack_unpack((const uint8_t *)sb.data, sb.size, &res) != 0)
		abort();
	if (hp_ledger_unpack(&res.data, &again) != 0)
		abort();
	if (memcmp(&l, &again, sizeof(l)) != 0)
		abort();
	msgpack_unpacked_destroy(&res);
	msgpack_sbuffer_destroy(&sb);
}

static void
check_verify(void)
{
	uint8_t unl[UNL_MAX * HP_PK_BYTES];
	size_t n = l.nsigs < UNL_MAX ? l.nsigs : UNL_MAX;
	int r;

	for (size_t i = 0; i < n; i++)
		memcpy(unl + i * HP_PK_BYTES, l.sigs[i].pk, HP_PK_BYTES);
	r = hp_ledger_verify(&l, l.seq - 1, l.prev_hash, unl, n, 67);
	if (r != 0 && r != HP_EINVAL && r != HP_ECRYPTO)
		abort();
	if (l.seq == 0)
		return;
	hp_ledger_compute_hash(&l);
	r = hp_ledger_verify(&l, l.seq - 1, l.prev_hash, unl, n, 67);
	if (r != 0 && r != HP_ECRYPTO)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_unpacked res;
	int r;

	if (hp_mpack_unpack(data, size, &res) != 0)
		return 0;
	r = hp_ledger_unpack(&res.data, &l);
	msgpack_unpacked_destroy(&res);
	if (r != 0) {
		if (r != HP_EFORMAT && r != HP_ETOOBIG)
			abort();
		return 0;
	}
	if (l.nsigs > HP_LEDGER_MAX_SIGS)
		abort();
	round_trip();
	check_verify();
	return 0;
}
