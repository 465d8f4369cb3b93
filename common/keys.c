/*
 * keys.c — ed25519 keys, hex encoding and signatures with libsodium.
 */
#include "keys.h"
#include "err.h"

#include <sodium.h>
#include <string.h>

int
hp_crypto_init(void)
{
	return sodium_init() < 0 ? HP_ECRYPTO : 0;
}

int
hp_keypair_generate(struct hp_keypair *kp)
{
	return crypto_sign_keypair(kp->pk, kp->sk) == 0 ? 0 : HP_ECRYPTO;
}

static int
from_hex(const char *hex, uint8_t *out, size_t outlen)
{
	size_t binlen = 0;

	if (hex == NULL || (hex[0] != 'e' && hex[0] != 'E') ||
	    (hex[1] != 'd' && hex[1] != 'D'))
		return HP_EINVAL;
	hex += 2;
	if (strlen(hex) != 2 * outlen)
		return HP_EINVAL;
	if (sodium_hex2bin(out, outlen, hex, 2 * outlen, NULL, &binlen,
	    NULL) != 0 || binlen != outlen)
		return HP_EINVAL;
	return 0;
}

int
hp_pubkey_from_hex(const char *hex, uint8_t pk[HP_PK_BYTES])
{
	return from_hex(hex, pk, HP_PK_BYTES);
}

int
hp_seckey_from_hex(const char *hex, uint8_t sk[HP_SK_BYTES])
{
	return from_hex(hex, sk, HP_SK_BYTES);
}

void
hp_pubkey_to_hex(const uint8_t pk[HP_PK_BYTES], char *out)
{
	out[0] = 'e';
	out[1] = 'd';
	sodium_bin2hex(out + 2, 2 * HP_PK_BYTES + 1, pk, HP_PK_BYTES);
}

void
hp_seckey_to_hex(const uint8_t sk[HP_SK_BYTES], char *out)
{
	out[0] = 'e';
	out[1] = 'd';
	sodium_bin2hex(out + 2, 2 * HP_SK_BYTES + 1, sk, HP_SK_BYTES);
}

int
hp_keypair_from_hex(const char *pk_hex, const char *sk_hex,
    struct hp_keypair *kp)
{
	static const char probe[] = "hotpocket";
	uint8_t sig[HP_SIG_BYTES];

	if (hp_pubkey_from_hex(pk_hex, kp->pk) != 0 ||
	    hp_seckey_from_hex(sk_hex, kp->sk) != 0) {
		hp_keypair_wipe(kp);
		return HP_EINVAL;
	}
	if (hp_sign(kp, probe, sizeof(probe) - 1, sig) != 0 ||
	    hp_verify(kp->pk, probe, sizeof(probe) - 1, sig) != 0) {
		hp_keypair_wipe(kp);
		return HP_ECRYPTO;
	}
	return 0;
}

int
hp_sign(const struct hp_keypair *kp, const void *msg, size_t len,
    uint8_t sig[HP_SIG_BYTES])
{
	return crypto_sign_detached(sig, NULL, msg, len, kp->sk) == 0 ?
	    0 : HP_ECRYPTO;
}

int
hp_verify(const uint8_t pk[HP_PK_BYTES], const void *msg, size_t len,
    const uint8_t sig[HP_SIG_BYTES])
{
	return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ?
	    0 : HP_ECRYPTO;
}

void
hp_keypair_wipe(struct hp_keypair *kp)
{
	sodium_memzero(kp, sizeof(*kp));
}
