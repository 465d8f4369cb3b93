/*
 * ban.c — per-host violation counts and bans (ban.h).
 */
#include "ban.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "mpack.h"

struct host {
	char ip[INET6_ADDRSTRLEN];
	uint64_t v[BAN_VIOLATIONS];	/* ring of violation times */
	unsigned nv, next;
	uint64_t banned_until, last_seen;
};

static struct host hosts[BAN_HOSTS];

static struct host *
find(const char *ip, bool create, uint64_t now)
{
	struct host *oldest = NULL;

	for (int i = 0; i < BAN_HOSTS; i++) {
		struct host *h = &hosts[i];

		if (h->ip[0] != '\0' && strcmp(h->ip, ip) == 0)
			return h;
		if (oldest == NULL || h->ip[0] == '\0' ||
		    (oldest->ip[0] != '\0' && h->last_seen < oldest->last_seen))
			oldest = h;
	}
	if (!create)
		return NULL;
	/* An empty slot, or else the host seen longest ago. */
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->ip, sizeof(oldest->ip), "%s", ip);
	oldest->last_seen = now;
	return oldest;
}

bool
ban_violation(const char *ip, uint64_t now)
{
	struct host *h = find(ip, true, now);
	unsigned recent = 0;

	h->last_seen = now;
	h->v[h->next] = now;
	h->next = (h->next + 1) % BAN_VIOLATIONS;
	if (h->nv < BAN_VIOLATIONS)
		h->nv++;
	for (unsigned i = 0; i < h->nv; i++)
		if (now - h->v[i] < BAN_WINDOW_MS)
			recent++;
	if (recent < BAN_VIOLATIONS || h->banned_until > now)
		return false;
	h->banned_until = now + BAN_MS;
	h->nv = 0;
	return true;
}

bool
ban_active(const char *ip, uint64_t now)
{
	struct host *h = find(ip, false, now);

	return h != NULL && h->banned_until > now;
}

void
ban_show(msgpack_packer *pk, uint64_t now)
{
	unsigned n = 0;

	for (int i = 0; i < BAN_HOSTS; i++)
		if (hosts[i].ip[0] != '\0' && hosts[i].banned_until > now)
			n++;
	msgpack_pack_array(pk, n);
	for (int i = 0; i < BAN_HOSTS; i++) {
		const struct host *h = &hosts[i];

		if (h->ip[0] == '\0' || h->banned_until <= now)
			continue;
		msgpack_pack_map(pk, 2);
		hp_mpack_pack_cstr(pk, "host");
		hp_mpack_pack_cstr(pk, h->ip);
		hp_mpack_pack_cstr(pk, "remaining_ms");
		msgpack_pack_uint64(pk, h->banned_until - now);
	}
}
