/*
 * dedup.h — the rolling set of recently seen proposal hashes.
 *
 * Holds the BLAKE3 hashes of the last DEDUP_SIZE payloads inserted; the
 * oldest falls out when a new one comes in. The caller owns the struct; it
 * holds no pointers and needs no cleanup.
 */
#ifndef HP_PEER_DEDUP_H
#define HP_PEER_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

#define DEDUP_SIZE 1024

struct dedup {
	uint64_t key[DEDUP_SIZE];	/* first 8 bytes, for a quick scan */
	uint8_t hash[DEDUP_SIZE][HP_HASH_BYTES];
	size_t next, count;
};

void dedup_init(struct dedup *d);
/* Hash payload; true when it was seen already, else remember it. */
bool dedup_seen(struct dedup *d, const void *payload, size_t len);

#endif
