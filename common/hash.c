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

static uint64_t
shift_mix(uint64_t v)
{
	return v ^ (v >> 47);
}

uint64_t
hp_stdhash(const void *data, size_t len)
{
	const uint64_t mul = 0xc6a4a7935bd1e995ULL;
	const uint8_t *p = data;
	uint64_t h = 0xc70f6907ULL ^ (len * mul);
	size_t full = len & ~(size_t)7;

	for (size_t i = 0; i < full; i += 8) {
		uint64_t w = 0;
		for (int b = 7; b >= 0; b--)	/* little-endian load */
			w = (w << 8) | p[i + (size_t)b];
		w = shift_mix(w * mul) * mul;
		h ^= w;
		h *= mul;
	}
	if (len & 7) {
		uint64_t d = 0;
		for (size_t i = len; i > full; i--)
			d = (d << 8) + p[i - 1];
		h ^= d;
		h *= mul;
	}
	h = shift_mix(h) * mul;
	return shift_mix(h);
}
