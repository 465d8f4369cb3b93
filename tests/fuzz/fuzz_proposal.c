/*
 * fuzz_proposal.c — libFuzzer target for the round proposal decoder
 * (workers/consensus/proposal.c). Every input is decoded; a proposal that
 * decodes must have sorted, unique sets and a computable hash, and its
 * re-encoding must decode and re-encode to the same bytes. Seeds are in tests/fuzz/corpus/proposal/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "err.h"
#include "proposal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hp_proposal p;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint8_t h[32];
	int rc;

	rc = hp_proposal_unpack(data, size, &p);
	if (rc != 0) {
		if (rc != HP_EFORMAT && rc != HP_ETOOBIG && rc != HP_ETRUNC &&
		    rc != HP_ENOMEM)
			abort();
		if (p.users.items != NULL || p.inputs.items != NULL ||
		    p.nonces.items != NULL)
			abort();
		return 0;
	}
	if (p.stage > HP_PROPOSAL_STAGE_COMMIT ||
	    hp_set_check(&p.users) != 0 || hp_set_check(&p.inputs) != 0 ||
	    hp_set_check(&p.nonces) != 0 ||
	    p.users.n > HP_PROPOSAL_MAX_SET)
		abort();
	hp_proposal_hash(&p, h);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	hp_proposal_pack(&pk, &p);
	/* msgpack-c packs integers minimally; the input may not have. Only a
	 * second round trip must be byte-exact. */
	{
		struct hp_proposal q;
		msgpack_sbuffer sb2;
		msgpack_packer pk2;

		if (hp_proposal_unpack((const uint8_t *)sb.data, sb.size,
		    &q) != 0)
			abort();
		msgpack_sbuffer_init(&sb2);
		msgpack_packer_init(&pk2, &sb2, msgpack_sbuffer_write);
		hp_proposal_pack(&pk2, &q);
		if (sb2.size != sb.size || memcmp(sb2.data, sb.data,
		    sb.size) != 0)
			abort();
		msgpack_sbuffer_destroy(&sb2);
		hp_proposal_free(&q);
	}
	msgpack_sbuffer_destroy(&sb);
	hp_proposal_free(&p);
	return 0;
}
