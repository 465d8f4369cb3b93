/*
 * dedup.c — rolling set of recent proposal hashes (dedup.h). A linear scan
 * over the 8-byte prefixes of 1024 hashes costs less than hashing the
 * proposal itself, so there is no index to keep in step.
 */
#include "dedup.h"

#include <string.h>

void
dedup_init(struct dedup *d)
{
	memset(d, 0, sizeof(*d));
}

bool
dedup_seen(struct dedup *d, const void *payload, size_t len)
{
	uint8_t h[HP_HASH_BYTES];
	uint64_t k;

	hp_hash(payload, len, h);
	memcpy(&k, h, sizeof(k));
	for (size_t i = 0; i < d->count; i++)
		if (d->key[i] == k && memcmp(d->hash[i], h, sizeof(h)) == 0)
			return true;
	d->key[d->next] = k;
	memcpy(d->hash[d->next], h, sizeof(h));
	d->next = (d->next + 1) % DEDUP_SIZE;
	if (d->count < DEDUP_SIZE)
		d->count++;
	return false;
}
