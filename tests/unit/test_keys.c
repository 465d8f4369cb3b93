/*
 * test_keys.c — ed25519 keys in HotPocket's hex format, and BLAKE3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "err.h"
#include "hash.h"
#include "keys.h"

static void
test_roundtrip(void **state)
{
	struct hp_keypair kp, back;
	char pk[HP_PK_HEX_LEN + 1], sk[HP_SK_HEX_LEN + 1];

	assert_int_equal(hp_keypair_generate(&kp), 0);
	hp_pubkey_to_hex(kp.pk, pk);
	hp_seckey_to_hex(kp.sk, sk);
	assert_int_equal(strlen(pk), 66);
	assert_int_equal(strlen(sk), 130);
	assert_memory_equal(pk, "ed", 2);
	assert_memory_equal(sk, "ed", 2);
	for (size_t i = 2; i < strlen(pk); i++)
		assert_true(strchr("0123456789abcdef", pk[i]) != NULL);
	assert_int_equal(hp_keypair_from_hex(pk, sk, &back), 0);
	assert_memory_equal(back.pk, kp.pk, HP_PK_BYTES);
	assert_memory_equal(back.sk, kp.sk, HP_SK_BYTES);
}

static void
test_uppercase_accepted(void **state)
{
	struct hp_keypair kp;
	uint8_t pk[HP_PK_BYTES];
	char hex[HP_PK_HEX_LEN + 1];

	hp_keypair_generate(&kp);
	hp_pubkey_to_hex(kp.pk, hex);
	for (char *p = hex; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(hp_pubkey_from_hex(hex, pk), 0);
	assert_memory_equal(pk, kp.pk, HP_PK_BYTES);
}

static void
test_malformed(void **state)
{
	uint8_t pk[HP_PK_BYTES];
	struct hp_keypair kp;
	char hex[HP_PK_HEX_LEN + 1];

	hp_keypair_generate(&kp);
	hp_pubkey_to_hex(kp.pk, hex);
	assert_int_equal(hp_pubkey_from_hex(NULL, pk), HP_EINVAL);
	assert_int_equal(hp_pubkey_from_hex("", pk), HP_EINVAL);
	assert_int_equal(hp_pubkey_from_hex(hex + 2, pk), HP_EINVAL);	/* no prefix */
	hex[0] = 'x';
	assert_int_equal(hp_pubkey_from_hex(hex, pk), HP_EINVAL);
	hex[0] = 'e';
	hex[10] = 'g';
	assert_int_equal(hp_pubkey_from_hex(hex, pk), HP_EINVAL);	/* not hex */
	hp_pubkey_to_hex(kp.pk, hex);
	hex[65] = '\0';
	assert_int_equal(hp_pubkey_from_hex(hex, pk), HP_EINVAL);	/* short */
}

static void
test_mismatched_pair(void **state)
{
	struct hp_keypair a, b, out;
	char pk[HP_PK_HEX_LEN + 1], sk[HP_SK_HEX_LEN + 1];

	hp_keypair_generate(&a);
	hp_keypair_generate(&b);
	hp_pubkey_to_hex(a.pk, pk);
	hp_seckey_to_hex(b.sk, sk);
	assert_int_equal(hp_keypair_from_hex(pk, sk, &out), HP_ECRYPTO);
	/* A failed load leaves nothing secret behind. */
	static const uint8_t zero[HP_SK_BYTES];
	assert_memory_equal(out.sk, zero, HP_SK_BYTES);
}

static void
test_sign_verify(void **state)
{
	struct hp_keypair kp;
	uint8_t sig[HP_SIG_BYTES];

	hp_keypair_generate(&kp);
	assert_int_equal(hp_sign(&kp, "abc", 3, sig), 0);
	assert_int_equal(hp_verify(kp.pk, "abc", 3, sig), 0);
	assert_int_equal(hp_verify(kp.pk, "abd", 3, sig), HP_ECRYPTO);
	sig[0] ^= 1;
	assert_int_equal(hp_verify(kp.pk, "abc", 3, sig), HP_ECRYPTO);
}

static void
test_blake3_vectors(void **state)
{
	uint8_t h[HP_HASH_BYTES];
	char hex[65];

	/* BLAKE3 of the empty input (the official test vector). */
	hp_hash("", 0, h);
	hp_hash_hex(h, 32, hex);
	assert_string_equal(hex,
	    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
	hp_hash("abc", 3, h);
	hp_hash_hex(h, 32, hex);
	assert_string_equal(hex,
	    "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
	hp_hash_hex(h, 4, hex);
	assert_string_equal(hex, "6437b3ac");
}

static void
test_stdhash_vectors(void **state)
{
	/* libstdc++ std::hash<std::string> values (g++ on x86_64). */
	const char *a = "3c349abe-4d70-4f50-9fa6-018f1f2530ab";
	const char *b = "81bcd225-c169-487e-84cd-a0cf2f43fda3";

	assert_true(hp_stdhash(a, strlen(a)) == 8317652129716230401ULL);
	assert_true(hp_stdhash(a, strlen(a)) % 1000 == 401);
	assert_true(hp_stdhash(b, strlen(b)) == 15610978446771639703ULL);
	assert_true(hp_stdhash("", 0) == 6142509188972423790ULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_uppercase_accepted),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_mismatched_pair),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_blake3_vectors),
		cmocka_unit_test(test_stdhash_vectors),
	};

	hp_crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
