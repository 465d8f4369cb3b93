/*
 * hash.h — BLAKE3-256, the one hash function of hpd.
 */
#ifndef HP_HASH_H
#define HP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HP_HASH_BYTES 32

void hp_hash(const void *data, size_t len, uint8_t out[HP_HASH_BYTES]);

/* Lower-case hex of the first n bytes (n <= 32), NUL-terminated; out holds 2n+1. */
void hp_hash_hex(const uint8_t *hash, size_t n, char *out);

/*
 * libstdc++'s std::hash<std::string> on 64-bit (_Hash_bytes, seed
 * 0xc70f6907). HotPocket aligns round windows to
 * hp_stdhash(contract_id) % roundtime; hpd does the same so that rounds
 * start at the same instants as a HotPocket cluster's would.
 */
uint64_t hp_stdhash(const void *data, size_t len);

#endif
