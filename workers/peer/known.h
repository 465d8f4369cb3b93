/*
 * known.h — the known peer list: where we may dial, and how dialling went.
 *
 * Entries come from mesh.known_peers, from the list consensus persisted
 * (PEER_KNOWN_LOAD) and from discovery. Host names are resolved only
 * before the sandbox (known_pre_sandbox reads mesh.known_peers from the
 * node's hp.cfg when this uid can read it); later entries must be numeric
 * addresses. Each entry keeps its dial state: backoff from 1 s doubling to
 * 30 s after a failed dial, and 10 failures in a row make it dead for
 * 5 minutes. Changes are reported to consensus (PEER_KNOWN_SAVE) at most
 * every KNOWN_SAVE_MS.
 *
 * Ownership: known.c owns every entry; a session points to the entry it
 * dialled (k->s points back) and the two links are cut together.
 */
#ifndef HP_PEER_KNOWN_H
#define HP_PEER_KNOWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <sys/socket.h>

#include "keys.h"
#include "wire.h"

#define KNOWN_MAX		256	/* growth by discovery stops here */
#define KNOWN_ADDRS		4	/* resolved addresses per entry */
#define KNOWN_BACKOFF_MIN	1000
#define KNOWN_BACKOFF_MAX	30000
#define KNOWN_DEAD_FAILS	10
#define KNOWN_DEAD_MS		(5 * 60 * 1000)
#define KNOWN_SAVE_MS		5000

struct session;

struct known {
	struct wire_addr a;
	struct sockaddr_storage sa[KNOWN_ADDRS];
	socklen_t salen[KNOWN_ADDRS];
	int nsa, next_sa;
	bool from_cfg;
	bool is_self;
	bool have_pk;
	uint8_t pk[HP_PK_BYTES];	/* who answered here last */
	unsigned fails;
	uint64_t backoff_ms, next_dial_ms, dead_until;
	struct session *s;
};

int known_pre_sandbox(const char *dir);
/* Add the configured peers. */
int known_init(void);
void known_free(void);

/* Entries from consensus ("host:port" strings) or discovery (numeric). */
void known_load(const char *const *strs, const size_t *lens, size_t n);
void known_merge(const struct wire_addr *a, size_t n);
/* The contract's peer_changeset: remove (every entry when all), then add
 * ("host:port" numeric strings). */
void known_changeset(const char *const *add, const size_t *addlen,
    size_t nadd, const char *const *rem, const size_t *remlen, size_t nrem,
    bool all);

/* Dial what is due; report changes to consensus when it is time. */
void known_tick(uint64_t now);
/* The dialled session k->s ended; verified says whether it got that far. */
void known_session_ended(struct known *k, bool verified);
void known_mark_self(struct known *k);

/* The list to answer a PEERLIST_REQ from s with. */
size_t known_list_for(const struct session *s, struct wire_addr *out,
    size_t max);

void known_show(msgpack_packer *pk);

#endif
