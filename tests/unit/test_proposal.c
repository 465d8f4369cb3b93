/*
 * test_proposal.c — the round proposal codec and hash
 * (workers/consensus/proposal.c): round trip, the hash test vector also
 * printed in docs/consensus.md, that the hash covers every field but
 * sig, and every way the decoder refuses an encoding (truncation, wrong
 * types and lengths, unsorted or duplicate sets, oversized sets refused
 * before allocation, a bad stage, wrong shape, trailing bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "err.h"
#include "hash.h"
#include "proposal.h"

#define VECTOR_HASH \
	"f23d1cf88114eef9bf6c3ba693bdbc4aad2f897ce3febad0aba7f29dd58c980a"

static void
fixed(struct hp_proposal *p)
{
	uint8_t users[64], inputs[80], nonces[64];

	memset(p, 0, sizeof(*p));
	memset(p->pubkey, 0x01, 32);
	p->stage = 3;
	p->time = 1700000000000ULL;
	p->round = 1700000001000ULL;
	p->time_config = 100025;
	memset(p->node_nonce, 0x02, 32);
	p->lcl_seq = 41;
	memset(p->lcl_hash, 0x03, 32);
	memset(p->state_hash, 0x04, 32);
	memset(p->patch_hash, 0x05, 32);
	memset(p->membership_hash, 0x06, 32);
	memset(users, 0x10, 32);
	memset(users + 32, 0x11, 32);
	memset(inputs, 0, 80);
	inputs[7] = 1;
	memset(inputs + 8, 0x20, 32);
	inputs[47] = 2;
	memset(inputs + 48, 0x21, 32);
	memset(nonces, 0x30, 32);
	memset(nonces + 32, 0x31, 32);
	assert_int_equal(hp_set_assign(&p->users, 32, users, 2), 0);
	assert_int_equal(hp_set_assign(&p->inputs, 40, inputs, 2), 0);
	assert_int_equal(hp_set_assign(&p->nonces, 32, nonces, 2), 0);
	memset(p->group_nonce, 0x07, 32);
	memset(p->ledger_hash, 0x08, 32);
	p->lock_round = 1699999999000ULL;
	memset(p->ledger_sig, 0x0a, 64);
	memset(p->sig, 0x09, 64);
}

static void
encode(const struct hp_proposal *p, msgpack_sbuffer *sb)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	hp_proposal_pack(&pk, p);
}

static void
test_round_trip(void **state)
{
	struct hp_proposal p, q;
	msgpack_sbuffer sb;
	uint8_t h1[32], h2[32];

	fixed(&p);
	encode(&p, &sb);
	assert_int_equal(hp_proposal_unpack((uint8_t *)sb.data, sb.size, &q),
	    0);
	hp_proposal_hash(&p, h1);
	hp_proposal_hash(&q, h2);
	assert_memory_equal(h1, h2, 32);
	assert_memory_equal(p.sig, q.sig, 64);
	assert_int_equal(q.users.n, 2);
	assert_int_equal(q.inputs.n, 2);
	assert_int_equal(q.inputs.width, 40);
	assert_int_equal(q.nonces.n, 2);
	assert_memory_equal(p.inputs.items, q.inputs.items, 80);
	assert_true(q.round == p.round && q.time == p.time &&
	    q.lock_round == p.lock_round && q.lcl_seq == 41 &&
	    q.time_config == 100025 && q.stage == 3);
	hp_proposal_free(&q);

	/* Empty sets encode and decode too. */
	hp_proposal_free(&p);
	msgpack_sbuffer_destroy(&sb);
	encode(&p, &sb);
	assert_int_equal(hp_proposal_unpack((uint8_t *)sb.data, sb.size, &q),
	    0);
	assert_int_equal(q.users.n + q.inputs.n + q.nonces.n, 0);
	hp_proposal_free(&q);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_hash_vector(void **state)
{
	struct hp_proposal p;
	uint8_t h[32];
	char hex[65];

	fixed(&p);
	hp_proposal_hash(&p, h);
	hp_hash_hex(h, 32, hex);
	print_message("proposal hash %s\n", hex);
	assert_string_equal(hex, VECTOR_HASH);
	hp_proposal_free(&p);
}

/* Flipping any byte of any field but sig changes the hash. */
static void
test_hash_covers_fields(void **state)
{
	struct hp_proposal p;
	uint8_t h0[32], h[32];
	uint8_t *fields[] = { p.pubkey, p.node_nonce, p.lcl_hash,
	    p.state_hash, p.patch_hash, p.membership_hash, p.output_hash,
	    p.group_nonce, p.ledger_hash, p.ledger_sig };

	fixed(&p);
	hp_proposal_hash(&p, h0);
	p.sig[0] ^= 1;
	hp_proposal_hash(&p, h);
	assert_memory_equal(h, h0, 32);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		fields[i][31] ^= 1;
		hp_proposal_hash(&p, h);
		assert_memory_not_equal(h, h0, 32);
		fields[i][31] ^= 1;
	}
#define FLIP(x) do { (x) ^= 1; hp_proposal_hash(&p, h); \
	assert_memory_not_equal(h, h0, 32); (x) ^= 1; } while (0)
	FLIP(p.stage);
	FLIP(p.time);
	FLIP(p.round);
	FLIP(p.time_config);
	FLIP(p.lcl_seq);
	FLIP(p.lock_round);
	FLIP(p.users.items[5]);
	FLIP(p.inputs.items[39]);
	FLIP(p.nonces.items[63]);
#undef FLIP
	/* Moving an item from one set to another changes the hash. */
	p.users.n = 1;
	hp_proposal_hash(&p, h);
	assert_memory_not_equal(h, h0, 32);
	p.users.n = 2;
	hp_proposal_free(&p);
}

static void
test_truncated(void **state)
{
	struct hp_proposal p, q;
	msgpack_sbuffer sb;

	fixed(&p);
	encode(&p, &sb);
	for (size_t n = 0; n < sb.size; n++)
		assert_int_not_equal(hp_proposal_unpack((uint8_t *)sb.data, n,
		    &q), 0);
	/* Trailing bytes. */
	sb.data = realloc(sb.data, sb.size + 1);
	sb.data[sb.size] = 0;
	assert_int_not_equal(hp_proposal_unpack((uint8_t *)sb.data,
	    sb.size + 1, &q), 0);
	hp_proposal_free(&p);
	msgpack_sbuffer_destroy(&sb);
}

enum bad { B_NONE, B_STR, B_INT, B_NEG, B_SHORT, B_NIL, B_BIG };

/* Pack p as hp_proposal_pack does, with field `at` replaced by `how`. */
static void
pack_bad(msgpack_sbuffer *sb, const struct hp_proposal *p, int at,
    enum bad how, uint32_t nfields)
{
	msgpack_sbuffer good;
	msgpack_unpacked res;
	msgpack_packer pk;

	encode(p, &good);
	msgpack_unpacked_init(&res);
	assert_int_equal(msgpack_unpack_next(&res, good.data, good.size,
	    NULL), MSGPACK_UNPACK_SUCCESS);
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, nfields);
	for (uint32_t i = 0; i < nfields; i++) {
		const msgpack_object *o = &res.data.via.array.ptr[i % 20];

		if ((int)i != at) {
			msgpack_pack_object(&pk, *o);
			continue;
		}
		switch (how) {
		case B_STR:
			msgpack_pack_str_with_body(&pk, "abc", 3);
			break;
		case B_INT:
			msgpack_pack_uint8(&pk, 1);
			break;
		case B_NEG:
			msgpack_pack_int8(&pk, -1);
			break;
		case B_SHORT:
			msgpack_pack_bin_with_body(&pk, "abc", 3);
			break;
		case B_NIL:
			msgpack_pack_nil(&pk);
			break;
		case B_BIG:
			msgpack_pack_uint64(&pk, (uint64_t)UINT32_MAX + 1);
			break;
		case B_NONE:
			msgpack_pack_object(&pk, *o);
			break;
		}
	}
	msgpack_unpacked_destroy(&res);
	msgpack_sbuffer_destroy(&good);
}

static int
decode_bad(const struct hp_proposal *p, int at, enum bad how,
    uint32_t nfields)
{
	struct hp_proposal q;
	msgpack_sbuffer sb;
	int rc;

	pack_bad(&sb, p, at, how, nfields);
	rc = hp_proposal_unpack((uint8_t *)sb.data, sb.size, &q);
	if (rc == 0)
		hp_proposal_free(&q);
	else
		assert_int_equal(q.users.n + q.inputs.n + q.nonces.n, 0);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static void
test_wrong_types(void **state)
{
	static const int ints[] = { 1, 2, 3, 4, 6, 17 };
	struct hp_proposal p;

	fixed(&p);
	assert_int_equal(decode_bad(&p, -1, B_NONE, 20), 0);
	for (int i = 0; i < 20; i++) {
		int is_int = 0;

		for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++)
			is_int |= ints[k] == i;
		assert_int_equal(decode_bad(&p, i, B_STR, 20), HP_EFORMAT);
		assert_int_equal(decode_bad(&p, i, B_NIL, 20), HP_EFORMAT);
		assert_int_equal(decode_bad(&p, i, B_SHORT, 20), HP_EFORMAT);
		if (is_int)
			assert_int_equal(decode_bad(&p, i, B_NEG, 20),
			    HP_EFORMAT);
		else
			assert_int_equal(decode_bad(&p, i, B_INT, 20),
			    HP_EFORMAT);
	}
	/* time_config is a u32. */
	assert_int_equal(decode_bad(&p, 4, B_BIG, 20), HP_EFORMAT);
	/* Wrong shape: 19 or 21 fields. */
	assert_int_equal(decode_bad(&p, -1, B_NONE, 19), HP_EFORMAT);
	assert_int_equal(decode_bad(&p, -1, B_NONE, 21), HP_EFORMAT);
	hp_proposal_free(&p);
}

static void
test_bad_stage(void **state)
{
	struct hp_proposal p, q;
	msgpack_sbuffer sb;

	fixed(&p);
	p.stage = 4;
	encode(&p, &sb);
	assert_int_equal(hp_proposal_unpack((uint8_t *)sb.data, sb.size, &q),
	    0);
	hp_proposal_free(&q);
	msgpack_sbuffer_destroy(&sb);
	p.stage = 5;
	encode(&p, &sb);
	assert_int_equal(hp_proposal_unpack((uint8_t *)sb.data, sb.size, &q),
	    HP_EFORMAT);
	msgpack_sbuffer_destroy(&sb);
	hp_proposal_free(&p);
}

static void
test_unsorted_sets(void **state)
{
	struct hp_proposal p, q;
	msgpack_sbuffer sb;
	struct hp_set *sets[3] = { &p.users, &p.inputs, &p.nonces };

	for (int k = 0; k < 3; k++) {
		uint32_t w;

		fixed(&p);
		w = sets[k]->width;
		/* Swap the two items: descending order. */
		uint8_t tmp[40];

		memcpy(tmp, sets[k]->items, w);
		memcpy(sets[k]->items, sets[k]->items + w, w);
		memcpy(sets[k]->items + w, tmp, w);
		encode(&p, &sb);
		assert_int_equal(hp_proposal_unpack((uint8_t *)sb.data,
		    sb.size, &q), HP_EFORMAT);
		msgpack_sbuffer_destroy(&sb);
		/* Duplicate. */
		memcpy(sets[k]->items, sets[k]->items + w, w);
		encode(&p, &sb);
		assert_int_equal(hp_proposal_unpack((uint8_t *)sb.data,
		    sb.size, &q), HP_EFORMAT);
		msgpack_sbuffer_destroy(&sb);
		/* A length that is no multiple of the width. */
		sets[k]->n = 1;
		sets[k]->width = w - 1;
		encode(&p, &sb);
		sets[k]->width = w;
		assert_int_equal(hp_proposal_unpack((uint8_t *)sb.data,
		    sb.size, &q), HP_EFORMAT);
		msgpack_sbuffer_destroy(&sb);
		hp_proposal_free(&p);
	}
}

/*
 * A set one item above the limit is refused with HP_ETOOBIG. Its items
 * are all zero (unsorted): the size check comes first, before the order
 * check and before any allocation.
 */
static void
test_oversized_set(void **state)
{
	struct hp_proposal p, q;
	msgpack_sbuffer sb;
	uint32_t n = HP_PROPOSAL_MAX_SET + 1;
	uint8_t *items = calloc(n, 40);

	assert_non_null(items);
	for (int k = 0; k < 3; k++) {
		uint32_t w = k == 1 ? 40 : 32;
		struct hp_set big = { n, w, items };

		fixed(&p);
		hp_set_free(k == 0 ? &p.users : k == 1 ? &p.inputs :
		    &p.nonces);
		if (k == 0)
			p.users = big;
		else if (k == 1)
			p.inputs = big;
		else
			p.nonces = big;
		encode(&p, &sb);
		assert_int_equal(hp_proposal_unpack((uint8_t *)sb.data,
		    sb.size, &q), HP_ETOOBIG);
		msgpack_sbuffer_destroy(&sb);
		if (k == 0)
			p.users.items = NULL, p.users.n = 0;
		else if (k == 1)
			p.inputs.items = NULL, p.inputs.n = 0;
		else
			p.nonces.items = NULL, p.nonces.n = 0;
		hp_proposal_free(&p);
	}
	free(items);
}

static void
test_set_helpers(void **state)
{
	struct hp_proposal p, d;

	fixed(&p);
	assert_true(hp_set_contains(&p.users, p.users.items + 32));
	assert_false(hp_set_contains(&p.users, p.nonces.items));
	assert_int_equal(hp_set_check(&p.inputs), 0);
	assert_int_equal(hp_proposal_dup(&p, &d), 0);
	assert_ptr_not_equal(d.users.items, p.users.items);
	assert_memory_equal(d.inputs.items, p.inputs.items, 80);
	hp_proposal_free(&d);
	hp_proposal_free(&p);
}

/* Not a proposal at all. */
static void
test_garbage(void **state)
{
	static const uint8_t bufs[][4] = { { 0xc1 }, { 0x90 }, { 0xdc, 0xff },
	    { 0x80 } };
	struct hp_proposal q;

	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		assert_int_not_equal(hp_proposal_unpack(bufs[i], 1, &q), 0);
	assert_int_not_equal(hp_proposal_unpack(NULL, 0, &q), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_hash_vector),
		cmocka_unit_test(test_hash_covers_fields),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_bad_stage),
		cmocka_unit_test(test_unsorted_sets),
		cmocka_unit_test(test_oversized_set),
		cmocka_unit_test(test_set_helpers),
		cmocka_unit_test(test_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
