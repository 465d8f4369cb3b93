/*
 * keys.h — ed25519 node keys in HotPocket's hex format.
 *
 * A public key is "ed" + 64 lower-case hex digits (0xED prefix byte + 32-byte
 * ed25519 key); a private key is "ed" + 128 hex digits (0xED + libsodium's
 * 64-byte secret key). Secrets are wiped with sodium_memzero by
 * hp_keypair_wipe(); the caller owns the struct.
 */
#ifndef HP_KEYS_H
#define HP_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define HP_PK_BYTES 32
#define HP_SK_BYTES 64
#define HP_SIG_BYTES 64
#define HP_PK_HEX_LEN (2 + 2 * HP_PK_BYTES)	/* 66 */
#define HP_SK_HEX_LEN (2 + 2 * HP_SK_BYTES)	/* 130 */

struct hp_keypair {
	uint8_t pk[HP_PK_BYTES];
	uint8_t sk[HP_SK_BYTES];
};

/* sodium_init(); returns 0 or HP_ECRYPTO. Safe to call more than once. */
int hp_crypto_init(void);

/* Fresh random keypair. */
int hp_keypair_generate(struct hp_keypair *kp);

/* Parse "ed"+hex. Accepts upper- or lower-case hex; rejects anything else. */
int hp_pubkey_from_hex(const char *hex, uint8_t pk[HP_PK_BYTES]);
int hp_seckey_from_hex(const char *hex, uint8_t sk[HP_SK_BYTES]);

/* Write "ed"+lower-case hex, NUL-terminated; out must hold HP_*_HEX_LEN + 1. */
void hp_pubkey_to_hex(const uint8_t pk[HP_PK_BYTES], char *out);
void hp_seckey_to_hex(const uint8_t sk[HP_SK_BYTES], char *out);

/*
 * Load a keypair from its hex strings and check that they belong together by
 * signing and verifying "hotpocket", as HotPocket does. Returns HP_EINVAL
 * for malformed hex and HP_ECRYPTO for a mismatched pair.
 */
int hp_keypair_from_hex(const char *pk_hex, const char *sk_hex,
    struct hp_keypair *kp);

int hp_sign(const struct hp_keypair *kp, const void *msg, size_t len,
    uint8_t sig[HP_SIG_BYTES]);
int hp_verify(const uint8_t pk[HP_PK_BYTES], const void *msg, size_t len,
    const uint8_t sig[HP_SIG_BYTES]);

void hp_keypair_wipe(struct hp_keypair *kp);

#endif
