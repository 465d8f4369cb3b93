/*
 * test_ledger.c — the ledger hash, the close rule and the ledger encoding
 * (workers/consensus/ledger.c and ledger_hash.c).
 *
 * Fixed ledgers give fixed hashes; the same vectors are in docs/ledger.md,
 * so a change to the hash definition must change both. Signing keys come
 * from fixed seeds so that failures reproduce. hp_ledger_verify() is run
 * against a four-key UNL at threshold 67 (three votes) with signatures
 * short, foreign, repeated or forged, and against chain and field
 * tampering. The encoding tests build maps field by field with a packer
 * that can replace any one value by a wrong one, check that the untouched
 * build is byte-identical to hp_ledger_pack(), and check every prefix of a
 * packed ledger is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <sodium.h>

#include "err.h"
#include "hash.h"
#include "keys.h"
#include "ledger.h"
#include "mpack.h"

#define NKEYS	6	/* keys 0..3 form the UNL, 4..5 are outsiders */
#define NUNL	4
#define THRESH	67	/* ceil(67 * 4 / 100) = 3 votes */

static struct hp_keypair keys[NKEYS];
static uint8_t unl[NUNL * HP_PK_BYTES];

static void
hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void
assert_hex(const uint8_t *p, size_t n, const char *want)
{
	char got[2 * 64 + 1];

	hex(p, n, got);
	assert_string_equal(got, want);
}

/* The fixed ledger of the test vectors (docs/ledger.md). */
static void
vector_ledger(struct hp_ledger *l)
{
	memset(l, 0, sizeof(*l));
	l->seq = 1;
	l->time = 1700000000000ULL;
	memset(l->state_hash, 0x11, HP_HASH_BYTES);
	memset(l->patch_hash, 0x22, HP_HASH_BYTES);
	memset(l->membership_hash, 0x33, HP_HASH_BYTES);
	memset(l->nonce, 0x44, HP_HASH_BYTES);
	memset(l->user_hash, 0x55, HP_HASH_BYTES);
	memset(l->input_hash, 0x66, HP_HASH_BYTES);
	memset(l->output_hash, 0x77, HP_HASH_BYTES);
	hp_ledger_compute_hash(l);
}

static void
sign_by(struct hp_ledger *l, int k)
{
	uint8_t msg[sizeof(HP_LEDGER_SIG_DOMAIN) - 1 + HP_HASH_BYTES];

	assert_true(l->nsigs < HP_LEDGER_MAX_SIGS);
	hp_ledger_sig_msg(l->hash, msg);
	memcpy(l->sigs[l->nsigs].pk, keys[k].pk, HP_PK_BYTES);
	assert_int_equal(hp_sign(&keys[k], msg, sizeof(msg),
	    l->sigs[l->nsigs].sig), 0);
	l->nsigs++;
}

static int
cmp_pk(const void *a, const void *b)
{
	return memcmp(a, b, HP_PK_BYTES);
}

static int
group_setup(void **state)
{
	uint8_t seed[crypto_sign_SEEDBYTES];

	if (hp_crypto_init() != 0)
		return -1;
	for (int i = 0; i < NKEYS; i++) {
		memset(seed, 0xa0 + i, sizeof(seed));
		crypto_sign_seed_keypair(keys[i].pk, keys[i].sk, seed);
	}
	for (int i = 0; i < NUNL; i++)
		memcpy(unl + i * HP_PK_BYTES, keys[i].pk, HP_PK_BYTES);
	qsort(unl, NUNL, HP_PK_BYTES, cmp_pk);
	return 0;
}

static int
verify1(const struct hp_ledger *l)
{
	uint8_t zero[HP_HASH_BYTES] = { 0 };

	return hp_ledger_verify(l, 0, zero, unl, NUNL, THRESH);
}

/* ---- hash ---- */

static void
test_hash_vector(void **state)
{
	struct hp_ledger l, l2;

	vector_ledger(&l);
	assert_hex(l.hash, HP_HASH_BYTES,
	    "14ab65bbffa421d052dda79facdab00b8fad9c586c730434ac2ce04cd02bcd7c");

	/* Ledger 2 chains onto it; only seq, time and prev_hash change. */
	l2 = l;
	l2.seq = 2;
	l2.time = l.time + 1000;
	memcpy(l2.prev_hash, l.hash, HP_HASH_BYTES);
	hp_ledger_compute_hash(&l2);
	assert_hex(l2.hash, HP_HASH_BYTES,
	    "54338bba8e46fe6e161be8f1d91ddb874f3e1f813d4c2f2aa8dcf4a0bd94370f");
}

static void
test_hash_covers_every_field(void **state)
{
	struct hp_ledger a, b;
	uint8_t *fields[] = { b.prev_hash, b.state_hash, b.patch_hash,
	    b.membership_hash, b.nonce, b.user_hash, b.input_hash,
	    b.output_hash };

	vector_ledger(&a);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		b = a;
		fields[i][HP_HASH_BYTES - 1] ^= 1;
		hp_ledger_compute_hash(&b);
		assert_memory_not_equal(a.hash, b.hash, HP_HASH_BYTES);
	}
	b = a;
	b.seq ^= 1ULL << 63;
	hp_ledger_compute_hash(&b);
	assert_memory_not_equal(a.hash, b.hash, HP_HASH_BYTES);
	b = a;
	b.time++;
	hp_ledger_compute_hash(&b);
	assert_memory_not_equal(a.hash, b.hash, HP_HASH_BYTES);

	/* Signatures are not part of the hash. */
	b = a;
	sign_by(&b, 0);
	hp_ledger_compute_hash(&b);
	assert_memory_equal(a.hash, b.hash, HP_HASH_BYTES);
}

static void
test_list_hash(void **state)
{
	uint8_t items[2 * HP_HASH_BYTES], out[HP_HASH_BYTES];
	uint8_t want[HP_HASH_BYTES], zero[HP_HASH_BYTES] = { 0 };

	memset(out, 0xff, sizeof(out));
	hp_list_hash(NULL, 0, out);
	assert_memory_equal(out, zero, HP_HASH_BYTES);

	memset(items, 0x01, HP_HASH_BYTES);
	memset(items + HP_HASH_BYTES, 0x02, HP_HASH_BYTES);
	hp_list_hash(items, 2, out);
	hp_hash(items, sizeof(items), want);
	assert_memory_equal(out, want, HP_HASH_BYTES);
	assert_hex(out, HP_HASH_BYTES,
	    "8d67bc7836d128b108be2c965538f37bbcee3e7503e35e58fbb0446432e05206");
}

static void
test_genesis_and_id(void **state)
{
	struct hp_ledger g, l;
	uint8_t zero[HP_HASH_BYTES] = { 0 };
	char id[32];

	hp_ledger_genesis(&g);
	assert_int_equal(g.seq, 0);
	assert_int_equal(g.nsigs, 0);
	assert_memory_equal(g.hash, zero, HP_HASH_BYTES);
	vector_ledger(&l);
	hp_ledger_id(&l, id, sizeof(id));
	assert_string_equal(id, "1-14ab65bb");
}

static void
test_sig_msg_and_quorum(void **state)
{
	uint8_t msg[sizeof(HP_LEDGER_SIG_DOMAIN) - 1 + HP_HASH_BYTES];
	uint8_t h[HP_HASH_BYTES];

	memset(h, 0xab, sizeof(h));
	hp_ledger_sig_msg(h, msg);
	assert_memory_equal(msg, "hpd ledger v1\n", 14);
	assert_memory_equal(msg + 14, h, HP_HASH_BYTES);

	assert_int_equal(hp_close_quorum(67, 4), 3);
	assert_int_equal(hp_close_quorum(80, 5), 4);
	assert_int_equal(hp_close_quorum(80, 4), 4);
	assert_int_equal(hp_close_quorum(100, 1), 1);
	assert_int_equal(hp_close_quorum(51, 1), 1);
	assert_int_equal(hp_close_quorum(0, 10), 0);
}

static void
test_sig_vector(void **state)
{
	struct hp_ledger l;

	vector_ledger(&l);
	sign_by(&l, 0);
	assert_hex(l.sigs[0].pk, HP_PK_BYTES,
	    "b533d8ad9fcfbdde0b481c1b334ddc3c53412fd614564e7e5afd020368d382c3");
	assert_hex(l.sigs[0].sig, HP_SIG_BYTES,
	    "857320822b3959294a0b973e584692bee731922fa0f010ee2e0382d5baab2d02"
	    "6fdc7b4067fd7955d2916a7e3c535fe647b8c29b937c5868ccc2fa74ef0e0500");
}

/* ---- verify ---- */

static void
test_verify_quorum(void **state)
{
	struct hp_ledger l;

	vector_ledger(&l);
	sign_by(&l, 0);
	sign_by(&l, 1);
	sign_by(&l, 2);
	assert_int_equal(verify1(&l), 0);
	sign_by(&l, 3);
	assert_int_equal(verify1(&l), 0);
}

static void
test_verify_one_short(void **state)
{
	struct hp_ledger l;

	vector_ledger(&l);
	assert_int_equal(verify1(&l), HP_ECRYPTO);
	sign_by(&l, 2);
	sign_by(&l, 3);
	assert_int_equal(verify1(&l), HP_ECRYPTO);
}

static void
test_verify_non_unl(void **state)
{
	struct hp_ledger l;

	vector_ledger(&l);
	sign_by(&l, 4);
	sign_by(&l, 0);
	sign_by(&l, 5);
	sign_by(&l, 1);
	assert_int_equal(verify1(&l), HP_ECRYPTO);
	sign_by(&l, 3);
	assert_int_equal(verify1(&l), 0);
}

static void
test_verify_duplicate(void **state)
{
	struct hp_ledger l;

	vector_ledger(&l);
	sign_by(&l, 0);
	sign_by(&l, 1);
	sign_by(&l, 0);
	sign_by(&l, 1);
	sign_by(&l, 0);
	assert_int_equal(verify1(&l), HP_ECRYPTO);
	sign_by(&l, 2);
	assert_int_equal(verify1(&l), 0);
}

static void
test_verify_bad_signature(void **state)
{
	struct hp_ledger l;

	vector_ledger(&l);
	sign_by(&l, 0);
	sign_by(&l, 1);
	sign_by(&l, 2);
	l.sigs[1].sig[10] ^= 0x40;
	assert_int_equal(verify1(&l), HP_ECRYPTO);
	/* A good copy after the forged one still counts. */
	sign_by(&l, 1);
	assert_int_equal(verify1(&l), 0);

	/* A signature over another ledger's hash does not count. */
	vector_ledger(&l);
	l.time++;
	hp_ledger_compute_hash(&l);
	sign_by(&l, 0);
	sign_by(&l, 1);
	sign_by(&l, 2);
	l.time--;
	hp_ledger_compute_hash(&l);
	assert_int_equal(verify1(&l), HP_ECRYPTO);
}

static void
test_verify_chain(void **state)
{
	struct hp_ledger l, l2;
	uint8_t zero[HP_HASH_BYTES] = { 0 }, other[HP_HASH_BYTES];

	vector_ledger(&l);
	for (int i = 0; i < NUNL; i++)
		sign_by(&l, i);
	assert_int_equal(verify1(&l), 0);

	memset(other, 0x01, sizeof(other));
	assert_int_equal(hp_ledger_verify(&l, 0, other, unl, NUNL, THRESH),
	    HP_EINVAL);
	assert_int_equal(hp_ledger_verify(&l, 1, zero, unl, NUNL, THRESH),
	    HP_EINVAL);
	assert_int_equal(hp_ledger_verify(&l, UINT64_MAX, zero, unl, NUNL,
	    THRESH), HP_EINVAL);

	/* The next ledger chains onto l's hash, not onto zeros. */
	vector_ledger(&l2);
	l2.seq = 2;
	memcpy(l2.prev_hash, l.hash, HP_HASH_BYTES);
	hp_ledger_compute_hash(&l2);
	for (int i = 0; i < NUNL; i++)
		sign_by(&l2, i);
	assert_int_equal(hp_ledger_verify(&l2, 1, l.hash, unl, NUNL, THRESH),
	    0);
	assert_int_equal(hp_ledger_verify(&l2, 1, zero, unl, NUNL, THRESH),
	    HP_EINVAL);
	assert_int_equal(hp_ledger_verify(&l2, 2, l.hash, unl, NUNL, THRESH),
	    HP_EINVAL);
}

static void
test_verify_tampered(void **state)
{
	struct hp_ledger good, l;

	vector_ledger(&good);
	for (int i = 0; i < NUNL; i++)
		sign_by(&good, i);

	l = good;
	l.output_hash[0] ^= 1;
	assert_int_equal(verify1(&l), HP_EINVAL);
	l = good;
	l.time++;
	assert_int_equal(verify1(&l), HP_EINVAL);
	l = good;
	l.nonce[31] ^= 0x80;
	assert_int_equal(verify1(&l), HP_EINVAL);
	l = good;
	l.hash[5] ^= 1;
	assert_int_equal(verify1(&l), HP_EINVAL);

	/* Re-hashing the tampered ledger leaves its signatures behind. */
	l = good;
	l.state_hash[0] ^= 1;
	hp_ledger_compute_hash(&l);
	assert_int_equal(verify1(&l), HP_ECRYPTO);

	l = good;
	l.nsigs = HP_LEDGER_MAX_SIGS + 1;
	assert_int_equal(verify1(&l), HP_EINVAL);
}

static void
test_verify_needs_a_signature(void **state)
{
	struct hp_ledger l;
	uint8_t zero[HP_HASH_BYTES] = { 0 };

	vector_ledger(&l);
	assert_int_equal(hp_ledger_verify(&l, 0, zero, unl, NUNL, 0),
	    HP_ECRYPTO);
	assert_int_equal(hp_ledger_verify(&l, 0, zero, NULL, 0, THRESH),
	    HP_ECRYPTO);
	sign_by(&l, 0);
	assert_int_equal(hp_ledger_verify(&l, 0, zero, unl, NUNL, 0), 0);
	assert_int_equal(hp_ledger_verify(&l, 0, zero, keys[0].pk, 1, 100),
	    0);
	assert_int_equal(hp_ledger_verify(&l, 0, zero, keys[1].pk, 1, 100),
	    HP_ECRYPTO);
}

/* ---- encoding ---- */

enum bad {
	B_NONE,		/* the correct value */
	B_SKIP,		/* leave the entry out */
	B_NIL,
	B_STR,		/* a str of the right length */
	B_SHORT,	/* bin one byte short (for integers: a negative int) */
	B_LONG,		/* bin one byte long (for integers: a float) */
	B_DUP,		/* the entry under a neighbour's key: one key twice */
	B_EXTRA,	/* an extra entry with key 13 */
};

static const uint8_t *
field_hash(const struct hp_ledger *l, uint64_t key)
{
	const uint8_t *f[] = { NULL, NULL, NULL, l->prev_hash, l->hash,
	    l->state_hash, l->patch_hash, l->membership_hash, l->nonce,
	    l->user_hash, l->input_hash, l->output_hash };

	return key < sizeof(f) / sizeof(f[0]) ? f[key] : NULL;
}

static void
pack_value(msgpack_packer *pk, const struct hp_ledger *l, uint64_t key,
    enum bad bad)
{
	const uint8_t *h = field_hash(l, key);
	uint8_t buf[HP_HASH_BYTES + 1] = { 0 };

	switch (bad) {
	case B_NIL:
		msgpack_pack_nil(pk);
		return;
	case B_STR:
		msgpack_pack_str(pk, HP_HASH_BYTES);
		msgpack_pack_str_body(pk, buf, HP_HASH_BYTES);
		return;
	case B_SHORT:
	case B_LONG:
		if (key <= 2 || key == 12) {
			if (bad == B_SHORT)
				msgpack_pack_int64(pk, -1);
			else
				msgpack_pack_double(pk, 1.0);
			return;
		}
		msgpack_pack_bin(pk, HP_HASH_BYTES + (bad == B_LONG ? 1 : -1));
		msgpack_pack_bin_body(pk, buf,
		    HP_HASH_BYTES + (bad == B_LONG ? 1 : -1));
		return;
	default:
		break;
	}
	if (key == 1)
		msgpack_pack_uint64(pk, l->seq);
	else if (key == 2)
		msgpack_pack_uint64(pk, l->time);
	else if (key == 12) {
		msgpack_pack_array(pk, l->nsigs);
		for (uint32_t i = 0; i < l->nsigs; i++) {
			msgpack_pack_array(pk, 2);
			msgpack_pack_bin(pk, HP_PK_BYTES);
			msgpack_pack_bin_body(pk, l->sigs[i].pk, HP_PK_BYTES);
			msgpack_pack_bin(pk, HP_SIG_BYTES);
			msgpack_pack_bin_body(pk, l->sigs[i].sig, HP_SIG_BYTES);
		}
	} else {
		msgpack_pack_bin(pk, HP_HASH_BYTES);
		msgpack_pack_bin_body(pk, h, HP_HASH_BYTES);
	}
}

/* l's map with the entry for key replaced as bad says. */
static void
pack_with(msgpack_sbuffer *sb, const struct hp_ledger *l, uint64_t key,
    enum bad bad)
{
	msgpack_packer pk;
	uint32_t n = 12;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (bad == B_SKIP)
		n--;
	else if (bad == B_EXTRA)
		n++;
	msgpack_pack_map(&pk, n);
	for (uint64_t k = 1; k <= 12; k++) {
		if (k == key && bad == B_SKIP)
			continue;
		if (k == key && bad == B_DUP)
			msgpack_pack_uint64(&pk, k == 1 ? 2 : k - 1);
		else
			msgpack_pack_uint64(&pk, k);
		pack_value(&pk, l, k, k == key ? bad : B_NONE);
		if (k == key && bad == B_EXTRA) {
			msgpack_pack_uint64(&pk, 13);
			pack_value(&pk, l, k, B_NONE);
		}
	}
}

static int
unpack_bytes(const void *p, size_t n, struct hp_ledger *l)
{
	msgpack_unpacked res;
	int r;

	if ((r = hp_mpack_unpack(p, n, &res)) != 0)
		return r;
	r = hp_ledger_unpack(&res.data, l);
	msgpack_unpacked_destroy(&res);
	return r;
}

static void
packed(const struct hp_ledger *l, msgpack_sbuffer *sb)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	hp_ledger_pack(&pk, l);
}

static void
signed_ledger(struct hp_ledger *l, uint32_t nsigs)
{
	vector_ledger(l);
	for (uint32_t i = 0; i < nsigs; i++)
		sign_by(l, (int)(i % NKEYS));
}

static void
test_pack_round_trip(void **state)
{
	static struct hp_ledger l, back;
	uint32_t counts[] = { 0, 1, 4, HP_LEDGER_MAX_SIGS };
	msgpack_sbuffer sb;

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		signed_ledger(&l, counts[i]);
		l.seq = UINT64_MAX - i;
		l.time = UINT64_MAX;
		packed(&l, &sb);
		memset(&back, 0xee, sizeof(back));
		assert_int_equal(unpack_bytes(sb.data, sb.size, &back), 0);
		assert_memory_equal(&l, &back, sizeof(l));
		msgpack_sbuffer_destroy(&sb);
	}
	/* Unpack copies the hash as sent; verify is what recomputes it. */
	signed_ledger(&l, 3);
	l.hash[0] ^= 1;
	packed(&l, &sb);
	assert_int_equal(unpack_bytes(sb.data, sb.size, &back), 0);
	assert_memory_equal(back.hash, l.hash, HP_HASH_BYTES);
	assert_int_equal(verify1(&back), HP_EINVAL);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_pack_vector(void **state)
{
	static struct hp_ledger l;
	static const char want[] =
	    "8c010102cf0000018bcfe5680003c42000000000000000000000000000000000"
	    "0000000000000000000000000000000004c42014ab65bbffa421d052dda79fac"
	    "dab00b8fad9c586c730434ac2ce04cd02bcd7c05c42011111111111111111111"
	    "1111111111111111111111111111111111111111111106c42022222222222222"
	    "2222222222222222222222222222222222222222222222222207c42033333333"
	    "3333333333333333333333333333333333333333333333333333333308c42044"
	    "4444444444444444444444444444444444444444444444444444444444444409"
	    "c420555555555555555555555555555555555555555555555555555555555555"
	    "55550ac420666666666666666666666666666666666666666666666666666666"
	    "66666666660bc420777777777777777777777777777777777777777777777777"
	    "77777777777777770c90";
	char got[2 * sizeof(want)];
	msgpack_sbuffer sb;

	vector_ledger(&l);
	packed(&l, &sb);
	assert_int_equal(2 * sb.size, sizeof(want) - 1);
	hex((const uint8_t *)sb.data, sb.size, got);
	assert_string_equal(got, want);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_pack_builder_matches(void **state)
{
	static struct hp_ledger l;
	msgpack_sbuffer a, b;

	signed_ledger(&l, 5);
	packed(&l, &a);
	pack_with(&b, &l, 0, B_NONE);
	assert_int_equal(a.size, b.size);
	assert_memory_equal(a.data, b.data, a.size);
	msgpack_sbuffer_destroy(&a);
	msgpack_sbuffer_destroy(&b);
}

static void
test_unpack_truncated(void **state)
{
	static struct hp_ledger l, back;
	uint32_t counts[] = { 0, 2 };
	msgpack_sbuffer sb;

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		signed_ledger(&l, counts[i]);
		packed(&l, &sb);
		for (size_t n = 0; n < sb.size; n++)
			assert_int_not_equal(unpack_bytes(sb.data, n, &back),
			    0);
		assert_int_equal(unpack_bytes(sb.data, sb.size, &back), 0);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void
test_unpack_wrong_fields(void **state)
{
	static struct hp_ledger l, back;
	enum bad bads[] = { B_SKIP, B_NIL, B_STR, B_SHORT, B_LONG, B_DUP,
	    B_EXTRA };
	msgpack_sbuffer sb;

	signed_ledger(&l, 2);
	for (uint64_t key = 1; key <= 12; key++) {
		for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
			pack_with(&sb, &l, key, bads[i]);
			if (unpack_bytes(sb.data, sb.size, &back) !=
			    HP_EFORMAT)
				fail_msg("key %llu bad %d accepted",
				    (unsigned long long)key, (int)bads[i]);
			msgpack_sbuffer_destroy(&sb);
		}
	}
}

/* l's map with the signature array (key 12) written by sigs. */
static void
pack_sigs_raw(msgpack_sbuffer *sb, const struct hp_ledger *l,
    void (*sigs)(msgpack_packer *))
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 12);
	for (uint64_t k = 1; k <= 11; k++) {
		msgpack_pack_uint64(&pk, k);
		pack_value(&pk, l, k, B_NONE);
	}
	msgpack_pack_uint64(&pk, 12);
	sigs(&pk);
}

static void
pair(msgpack_packer *pk, size_t pklen, size_t siglen)
{
	uint8_t b[HP_SIG_BYTES + 1] = { 0 };

	msgpack_pack_array(pk, 2);
	msgpack_pack_bin(pk, pklen);
	msgpack_pack_bin_body(pk, b, pklen);
	msgpack_pack_bin(pk, siglen);
	msgpack_pack_bin_body(pk, b, siglen);
}

static void
sigs_129(msgpack_packer *pk)
{
	msgpack_pack_array(pk, HP_LEDGER_MAX_SIGS + 1);
	for (int i = 0; i < HP_LEDGER_MAX_SIGS + 1; i++)
		pair(pk, HP_PK_BYTES, HP_SIG_BYTES);
}

static void
sigs_128(msgpack_packer *pk)
{
	msgpack_pack_array(pk, HP_LEDGER_MAX_SIGS);
	for (int i = 0; i < HP_LEDGER_MAX_SIGS; i++)
		pair(pk, HP_PK_BYTES, HP_SIG_BYTES);
}

static void
sigs_pk31(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	pair(pk, HP_PK_BYTES, HP_SIG_BYTES);
	pair(pk, HP_PK_BYTES - 1, HP_SIG_BYTES);
}

static void
sigs_pk33(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	pair(pk, HP_PK_BYTES + 1, HP_SIG_BYTES);
}

static void
sigs_sig63(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	pair(pk, HP_PK_BYTES, HP_SIG_BYTES - 1);
}

static void
sigs_sig65(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	pair(pk, HP_PK_BYTES, HP_SIG_BYTES + 1);
}

static void
sigs_triple(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 3);
	msgpack_pack_bin(pk, 0);
	msgpack_pack_bin(pk, 0);
	msgpack_pack_bin(pk, 0);
}

static void
sigs_flat(msgpack_packer *pk)
{
	uint8_t b[HP_SIG_BYTES] = { 0 };

	msgpack_pack_array(pk, 1);
	msgpack_pack_bin(pk, HP_SIG_BYTES);
	msgpack_pack_bin_body(pk, b, HP_SIG_BYTES);
}

static void
sigs_map(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 0);
}

static void
sigs_str_pair(msgpack_packer *pk)
{
	uint8_t b[HP_SIG_BYTES] = { 0 };

	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 2);
	msgpack_pack_str(pk, HP_PK_BYTES);
	msgpack_pack_str_body(pk, b, HP_PK_BYTES);
	msgpack_pack_bin(pk, HP_SIG_BYTES);
	msgpack_pack_bin_body(pk, b, HP_SIG_BYTES);
}

static void
test_unpack_sigs(void **state)
{
	static struct hp_ledger l, back;
	struct {
		void (*fn)(msgpack_packer *);
		int want;
	} cases[] = {
		{ sigs_128, 0 },
		{ sigs_129, HP_ETOOBIG },
		{ sigs_pk31, HP_EFORMAT },
		{ sigs_pk33, HP_EFORMAT },
		{ sigs_sig63, HP_EFORMAT },
		{ sigs_sig65, HP_EFORMAT },
		{ sigs_triple, HP_EFORMAT },
		{ sigs_flat, HP_EFORMAT },
		{ sigs_map, HP_EFORMAT },
		{ sigs_str_pair, HP_EFORMAT },
	};
	msgpack_sbuffer sb;

	vector_ledger(&l);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pack_sigs_raw(&sb, &l, cases[i].fn);
		if (unpack_bytes(sb.data, sb.size, &back) != cases[i].want)
			fail_msg("signature case %zu", i);
		msgpack_sbuffer_destroy(&sb);
	}
	pack_sigs_raw(&sb, &l, sigs_128);
	assert_int_equal(unpack_bytes(sb.data, sb.size, &back), 0);
	assert_int_equal(back.nsigs, HP_LEDGER_MAX_SIGS);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_unpack_not_a_ledger(void **state)
{
	static struct hp_ledger back;
	const uint8_t nil[] = { 0xc0 };
	const uint8_t arr[] = { 0x90 };
	const uint8_t map0[] = { 0x80 };
	const uint8_t strkey[] = { 0x81, 0xa1, 'a', 0x01 };
	const uint8_t negkey[] = { 0x81, 0xff, 0x01 };
	uint8_t big[1 + 12 * 2];

	assert_int_equal(unpack_bytes(nil, sizeof(nil), &back), HP_EFORMAT);
	assert_int_equal(unpack_bytes(arr, sizeof(arr), &back), HP_EFORMAT);
	assert_int_equal(unpack_bytes(map0, sizeof(map0), &back), HP_EFORMAT);
	assert_int_equal(unpack_bytes(strkey, sizeof(strkey), &back),
	    HP_EFORMAT);
	assert_int_equal(unpack_bytes(negkey, sizeof(negkey), &back),
	    HP_EFORMAT);

	/* Twelve entries, but keys 0..11 (0 is not a field). */
	big[0] = 0x8c;
	for (int i = 0; i < 12; i++) {
		big[1 + 2 * i] = (uint8_t)i;
		big[2 + 2 * i] = 0x00;
	}
	assert_int_equal(unpack_bytes(big, sizeof(big), &back), HP_EFORMAT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_vector),
		cmocka_unit_test(test_hash_covers_every_field),
		cmocka_unit_test(test_list_hash),
		cmocka_unit_test(test_genesis_and_id),
		cmocka_unit_test(test_sig_msg_and_quorum),
		cmocka_unit_test(test_sig_vector),
		cmocka_unit_test(test_verify_quorum),
		cmocka_unit_test(test_verify_one_short),
		cmocka_unit_test(test_verify_non_unl),
		cmocka_unit_test(test_verify_duplicate),
		cmocka_unit_test(test_verify_bad_signature),
		cmocka_unit_test(test_verify_chain),
		cmocka_unit_test(test_verify_tampered),
		cmocka_unit_test(test_verify_needs_a_signature),
		cmocka_unit_test(test_pack_round_trip),
		cmocka_unit_test(test_pack_vector),
		cmocka_unit_test(test_pack_builder_matches),
		cmocka_unit_test(test_unpack_truncated),
		cmocka_unit_test(test_unpack_wrong_fields),
		cmocka_unit_test(test_unpack_sigs),
		cmocka_unit_test(test_unpack_not_a_ledger),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
