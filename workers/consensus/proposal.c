/*
 * proposal.c — the round proposal: canonical hash, msgpack codec, deep
 * copy and the sorted-set helpers (proposal.h). The decoder trusts
 * nothing: hp_mpack_unpack() bounds every count against the bytes that
 * are there, then every element's type and length is checked, set sizes
 * are checked before anything is allocated, and sets must be sorted and
 * unique so that one content has one encoding and one hash.
 */
#include "proposal.h"

#include <blake3.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mpack.h"

#define NFIELDS 20

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

void
hp_set_free(struct hp_set *s)
{
	free(s->items);
	s->items = NULL;
	s->n = 0;
}

int
hp_set_assign(struct hp_set *s, uint32_t width, const uint8_t *items,
    uint32_t n)
{
	uint8_t *copy = NULL;

	if (n > 0) {
		if ((copy = malloc((size_t)n * width)) == NULL)
			return HP_ENOMEM;
		memcpy(copy, items, (size_t)n * width);
	}
	free(s->items);
	s->items = copy;
	s->n = n;
	s->width = width;
	return 0;
}

int
hp_set_check(const struct hp_set *s)
{
	for (uint32_t i = 1; i < s->n; i++)
		if (memcmp(s->items + (size_t)(i - 1) * s->width,
		    s->items + (size_t)i * s->width, s->width) >= 0)
			return HP_EFORMAT;
	return 0;
}

int
hp_set_contains(const struct hp_set *s, const uint8_t *item)
{
	uint32_t lo = 0, hi = s->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = memcmp(s->items + (size_t)mid * s->width, item,
		    s->width);

		if (c == 0)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

void
hp_proposal_free(struct hp_proposal *p)
{
	hp_set_free(&p->users);
	hp_set_free(&p->inputs);
	hp_set_free(&p->nonces);
}

int
hp_proposal_dup(const struct hp_proposal *p, struct hp_proposal *out)
{
	*out = *p;
	out->users.items = out->inputs.items = out->nonces.items = NULL;
	out->users.n = out->inputs.n = out->nonces.n = 0;
	if (hp_set_assign(&out->users, p->users.width, p->users.items,
	    p->users.n) != 0 ||
	    hp_set_assign(&out->inputs, p->inputs.width, p->inputs.items,
	    p->inputs.n) != 0 ||
	    hp_set_assign(&out->nonces, p->nonces.width, p->nonces.items,
	    p->nonces.n) != 0) {
		hp_proposal_free(out);
		return HP_ENOMEM;
	}
	return 0;
}

static void
hash_set(blake3_hasher *h, const struct hp_set *s)
{
	uint8_t be[4];

	put_be32(be, s->n);
	blake3_hasher_update(h, be, 4);
	if (s->n > 0)
		blake3_hasher_update(h, s->items, (size_t)s->n * s->width);
}

void
hp_proposal_hash(const struct hp_proposal *p, uint8_t out[32])
{
	blake3_hasher h;
	uint8_t be[8];

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, HP_PROPOSAL_DOMAIN,
	    sizeof(HP_PROPOSAL_DOMAIN) - 1);
	blake3_hasher_update(&h, p->pubkey, 32);
	blake3_hasher_update(&h, &p->stage, 1);
	put_be64(be, p->time);
	blake3_hasher_update(&h, be, 8);
	put_be64(be, p->round);
	blake3_hasher_update(&h, be, 8);
	put_be32(be, p->time_config);
	blake3_hasher_update(&h, be, 4);
	blake3_hasher_update(&h, p->node_nonce, 32);
	put_be64(be, p->lcl_seq);
	blake3_hasher_update(&h, be, 8);
	blake3_hasher_update(&h, p->lcl_hash, 32);
	blake3_hasher_update(&h, p->state_hash, 32);
	blake3_hasher_update(&h, p->patch_hash, 32);
	blake3_hasher_update(&h, p->membership_hash, 32);
	blake3_hasher_update(&h, p->output_hash, 32);
	hash_set(&h, &p->users);
	hash_set(&h, &p->inputs);
	hash_set(&h, &p->nonces);
	blake3_hasher_update(&h, p->group_nonce, 32);
	blake3_hasher_update(&h, p->ledger_hash, 32);
	put_be64(be, p->lock_round);
	blake3_hasher_update(&h, be, 8);
	blake3_hasher_update(&h, p->ledger_sig, 64);
	blake3_hasher_finalize(&h, out, 32);
}


static void
pack_set(msgpack_packer *pk, const struct hp_set *s)
{
	hp_mpack_pack_bin(pk, s->items, (size_t)s->n * s->width);
}

void
hp_proposal_pack(msgpack_packer *pk, const struct hp_proposal *p)
{
	msgpack_pack_array(pk, NFIELDS);
	hp_mpack_pack_bin(pk, p->pubkey, 32);
	msgpack_pack_uint8(pk, p->stage);
	msgpack_pack_uint64(pk, p->time);
	msgpack_pack_uint64(pk, p->round);
	msgpack_pack_uint32(pk, p->time_config);
	hp_mpack_pack_bin(pk, p->node_nonce, 32);
	msgpack_pack_uint64(pk, p->lcl_seq);
	hp_mpack_pack_bin(pk, p->lcl_hash, 32);
	hp_mpack_pack_bin(pk, p->state_hash, 32);
	hp_mpack_pack_bin(pk, p->patch_hash, 32);
	hp_mpack_pack_bin(pk, p->membership_hash, 32);
	hp_mpack_pack_bin(pk, p->output_hash, 32);
	pack_set(pk, &p->users);
	pack_set(pk, &p->inputs);
	pack_set(pk, &p->nonces);
	hp_mpack_pack_bin(pk, p->group_nonce, 32);
	hp_mpack_pack_bin(pk, p->ledger_hash, 32);
	msgpack_pack_uint64(pk, p->lock_round);
	hp_mpack_pack_bin(pk, p->ledger_sig, 64);
	hp_mpack_pack_bin(pk, p->sig, 64);
}

static int
get_u64(const msgpack_object *o, uint64_t max, uint64_t *out)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return HP_EFORMAT;
	if (o->via.u64 > max)
		return HP_EFORMAT;
	*out = o->via.u64;
	return 0;
}

static int
get_fixed(const msgpack_object *o, uint8_t *out, uint32_t n)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n)
		return HP_EFORMAT;
	memcpy(out, o->via.bin.ptr, n);
	return 0;
}

/* Sizes first (no allocation), so that a decoder never allocates for a
 * set it is going to refuse. */
static int
check_set_size(const msgpack_object *o, uint32_t width)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size % width != 0)
		return HP_EFORMAT;
	if (o->via.bin.size / width > HP_PROPOSAL_MAX_SET)
		return HP_ETOOBIG;
	return 0;
}

static int
get_set(const msgpack_object *o, uint32_t width, struct hp_set *s)
{
	struct hp_set view;
	int r;

	view.n = o->via.bin.size / width;
	view.width = width;
	view.items = (uint8_t *)o->via.bin.ptr;
	if ((r = hp_set_check(&view)) != 0)
		return r;
	return hp_set_assign(s, width, view.items, view.n);
}

static int
decode(const msgpack_object *root, struct hp_proposal *p)
{
	const msgpack_object *f;
	uint64_t v;
	int r;

	if (root->type != MSGPACK_OBJECT_ARRAY ||
	    root->via.array.size != NFIELDS)
		return HP_EFORMAT;
	f = root->via.array.ptr;
	if ((r = check_set_size(&f[12], HP_PROPOSAL_USER_WIDTH)) != 0 ||
	    (r = check_set_size(&f[13], HP_PROPOSAL_INPUT_WIDTH)) != 0 ||
	    (r = check_set_size(&f[14], HP_PROPOSAL_NONCE_WIDTH)) != 0)
		return r;
	if ((r = get_fixed(&f[0], p->pubkey, 32)) != 0 ||
	    (r = get_u64(&f[1], HP_PROPOSAL_STAGE_COMMIT, &v)) != 0)
		return r;
	p->stage = (uint8_t)v;
	if ((r = get_u64(&f[2], UINT64_MAX, &p->time)) != 0 ||
	    (r = get_u64(&f[3], UINT64_MAX, &p->round)) != 0 ||
	    (r = get_u64(&f[4], UINT32_MAX, &v)) != 0)
		return r;
	p->time_config = (uint32_t)v;
	if ((r = get_fixed(&f[5], p->node_nonce, 32)) != 0 ||
	    (r = get_u64(&f[6], UINT64_MAX, &p->lcl_seq)) != 0 ||
	    (r = get_fixed(&f[7], p->lcl_hash, 32)) != 0 ||
	    (r = get_fixed(&f[8], p->state_hash, 32)) != 0 ||
	    (r = get_fixed(&f[9], p->patch_hash, 32)) != 0 ||
	    (r = get_fixed(&f[10], p->membership_hash, 32)) != 0 ||
	    (r = get_fixed(&f[11], p->output_hash, 32)) != 0 ||
	    (r = get_fixed(&f[15], p->group_nonce, 32)) != 0 ||
	    (r = get_fixed(&f[16], p->ledger_hash, 32)) != 0 ||
	    (r = get_u64(&f[17], UINT64_MAX, &p->lock_round)) != 0 ||
	    (r = get_fixed(&f[18], p->ledger_sig, 64)) != 0 ||
	    (r = get_fixed(&f[19], p->sig, 64)) != 0)
		return r;
	if ((r = get_set(&f[12], HP_PROPOSAL_USER_WIDTH, &p->users)) != 0 ||
	    (r = get_set(&f[13], HP_PROPOSAL_INPUT_WIDTH, &p->inputs)) != 0 ||
	    (r = get_set(&f[14], HP_PROPOSAL_NONCE_WIDTH, &p->nonces)) != 0)
		return r;
	return 0;
}

int
hp_proposal_unpack(const uint8_t *buf, size_t len, struct hp_proposal *out)
{
	msgpack_unpacked res;
	int r;

	memset(out, 0, sizeof(*out));
	out->users.width = HP_PROPOSAL_USER_WIDTH;
	out->inputs.width = HP_PROPOSAL_INPUT_WIDTH;
	out->nonces.width = HP_PROPOSAL_NONCE_WIDTH;
	msgpack_unpacked_init(&res);
	if ((r = hp_mpack_unpack(buf, len, &res)) == 0)
		r = decode(&res.data, out);
	msgpack_unpacked_destroy(&res);
	if (r != 0) {
		hp_proposal_free(out);
		memset(out, 0, sizeof(*out));
	}
	return r;
}
