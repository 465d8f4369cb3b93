/*
 * hash.c — BLAKE3 through the official C implementation (built from
 * Debian's librust-blake3-dev sources by meson).
 */
#include "hash.h"

#include <blake3.h>

void
hp_hash(const void *data, size_t len, uint8_t out[HP_HASH_BYTES])
{
	blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, data, len);
	blake3_hasher_finalize(&h, out, HP_HASH_BYTES);
}

void
hp_hash_hex(const uint8_t *hash, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[hash[i] >> 4];
		out[2 * i + 1] = digits[hash[i] & 15];
	}
	out[2 * n] = '\0';
}
