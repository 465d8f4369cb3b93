/*
 * ledger_store.h — the chain of closed ledgers and a little node metadata,
 * kept in an LMDB environment in NODE/ledger (docs/ledger.md).
 *
 * Ownership: the consensus worker alone opens this environment, once per
 * process, and uses it from one thread; other workers ask the consensus
 * worker over IPC. ledger_store_open() allocates the handle and
 * ledger_store_close() frees it; no transaction is held open between calls,
 * so the handle must not be carried across fork(). Ledgers are values
 * (struct hp_ledger) copied in and out.
 *
 * Durability: every write is one LMDB transaction committed with LMDB's
 * default sync-on-commit, so a call that returned 0 survives a crash or
 * power loss, and a call interrupted by one leaves nothing behind.
 *
 * Seq 0 is the genesis ledger (hp_ledger_genesis()): it is never stored,
 * ledger_store_last() returns it while the store is empty, and
 * ledger_store_get(0) always returns it.
 *
 * HPD_LEDGER_MAPSIZE, when set in the environment to a byte count, replaces
 * the initial 1 GiB map size; the tests use it to exercise map growth.
 */
#ifndef HP_LEDGER_STORE_H
#define HP_LEDGER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ledger.h"

#define LEDGER_STORE_MAPSIZE		(1ULL << 30)	/* initial: 1 GiB */
#define LEDGER_STORE_MAPSIZE_MAX	(64ULL << 30)	/* growth stops here */
#define LEDGER_STORE_META_KEY_MAX	511		/* LMDB's key limit */

struct ledger_store;

/*
 * Open (creating dir and data.mdb as needed, mode 0700/0600) the store in
 * dir and clear reader slots left by dead processes. On 0, *out is the
 * caller's until ledger_store_close(); on failure *out is NULL and the
 * result HP_EIO (logged), HP_EINVAL (bad HPD_LEDGER_MAPSIZE, logged) or
 * HP_ENOMEM.
 */
int ledger_store_open(const char *dir, struct ledger_store **out);
/* Close and free; NULL is allowed. */
void ledger_store_close(struct ledger_store *s);

/* The last closed ledger, or genesis (seq 0) when none is stored. */
int ledger_store_last(struct ledger_store *s, struct hp_ledger *out);

/* Ledger seq; HP_ENOENT when it was never stored or has been pruned. */
int ledger_store_get(struct ledger_store *s, uint64_t seq,
    struct hp_ledger *out);

/*
 * Append l as the new last ledger. l->seq must be last + 1, l->prev_hash
 * the last ledger's hash, and l->hash must recompute from l's fields;
 * otherwise HP_EINVAL and nothing is written. Returns only once the commit
 * is on disk. Signatures are not checked here: hp_ledger_verify() first.
 * HP_ETOOBIG when the map cannot grow past LEDGER_STORE_MAPSIZE_MAX.
 */
int ledger_store_append(struct ledger_store *s, const struct hp_ledger *l);

/*
 * A ledger's raw records, stored with it: the inputs it carries and the
 * outputs its output_hash is the root of (opaque bytes; consensus.c packs
 * them). Kept and pruned with the ledger; ledgers stored by sync have
 * none.
 */
enum ledger_raw_kind { LEDGER_RAW_INPUTS = 'i', LEDGER_RAW_OUTPUTS = 'o' };
struct ledger_raw {
	enum ledger_raw_kind kind;
	const void *data;
	size_t len;		/* 0: nothing stored */
};
/* As ledger_store_append, with nraw raw records in the same transaction. */
int ledger_store_append_raw(struct ledger_store *s, const struct hp_ledger *l,
    const struct ledger_raw *raw, size_t nraw);
/* A raw record of ledger seq, malloc'd into *out (caller frees);
 * HP_ENOENT when there is none. */
int ledger_store_raw_get(struct ledger_store *s, uint64_t seq, int kind,
    uint8_t **out, size_t *len);

/* The oldest stored seq, or 0 when no ledger is stored. */
int ledger_store_first_seq(struct ledger_store *s, uint64_t *seq);

/* Delete all but the newest keep ledgers; keep == 0 keeps all. */
int ledger_store_prune(struct ledger_store *s, uint64_t keep);

/*
 * Small metadata (known peers, ...) under a NUL-terminated key of 1 to
 * LEDGER_STORE_META_KEY_MAX bytes; put replaces, durably as append.
 * meta_get copies the value into buf and sets *len to its size; when
 * bufsize is too small it returns HP_ETOOBIG with *len set and buf
 * untouched (buf may then be NULL). HP_ENOENT when the key is absent.
 */
int ledger_store_meta_put(struct ledger_store *s, const char *key,
    const void *val, size_t len);
int ledger_store_meta_get(struct ledger_store *s, const char *key,
    void *buf, size_t bufsize, size_t *len);

#endif
