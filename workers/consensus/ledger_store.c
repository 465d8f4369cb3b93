/*
 * ledger_store.c — closed ledgers and node metadata in LMDB
 * (ledger_store.h, docs/ledger.md).
 *
 * Two named databases live in NODE/ledger/data.mdb: "ledgers" maps an
 * 8-byte big-endian seq (so that LMDB's byte order is numeric order) to
 * the hp_ledger_pack() bytes of that ledger, and "meta" maps short string
 * keys to opaque values. Every write runs through write_txn(), which on
 * MDB_MAP_FULL aborts, doubles the map size (no transaction is open then,
 * as LMDB requires) and runs the whole transaction again, up to
 * LEDGER_STORE_MAPSIZE_MAX. Stored ledgers are decoded with the same
 * bounds-checked path as ledgers from peers; one that does not decode, or
 * whose seq differs from its key, is reported as corrupt.
 */
#include "ledger_store.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>
#include <msgpack.h>

#include "err.h"
#include "log.h"
#include "mpack.h"

#define META_VAL_MAX	(1U << 20)	/* "small" metadata */
#define PRUNE_BATCH	4096		/* deletions per transaction */
#define BEGIN_TRIES	4

struct ledger_store {
	MDB_env *env;
	MDB_dbi ledgers;
	MDB_dbi meta;
	MDB_dbi raw;	/* seq (8 BE) || kind (1) → a ledger's raw inputs
			   or outputs, opaque bytes */
};

/*
 * A write operation run inside write_txn(). It returns 0 to commit, a
 * negative HP_E* code to abort, or MDB_MAP_FULL (LMDB's code, far below
 * the HP_E* range) to abort, grow the map and run again.
 */
typedef int (*write_op)(struct ledger_store *s, MDB_txn *txn, void *arg);

static int
lmdb_fail(const char *what, int rc)
{
	if (rc == MDB_MAP_FULL)
		return rc;
	log_warnx("ledger store: %s: %s", what, mdb_strerror(rc));
	return HP_EIO;
}

static void
seq_key(uint64_t seq, uint8_t k[8])
{
	for (int i = 7; i >= 0; i--) {
		k[i] = (uint8_t)seq;
		seq >>= 8;
	}
}

static uint64_t
key_seq(const MDB_val *k)
{
	const uint8_t *p = k->mv_data;
	uint64_t seq = 0;

	for (int i = 0; i < 8; i++)
		seq = (seq << 8) | p[i];
	return seq;
}

static int
begin(struct ledger_store *s, unsigned int flags, MDB_txn **txn)
{
	int rc = 0;

	for (int i = 0; i < BEGIN_TRIES; i++) {
		rc = mdb_txn_begin(s->env, NULL, flags, txn);
		if (rc == MDB_MAP_RESIZED)
			rc = mdb_env_set_mapsize(s->env, 0);
		else if (rc == MDB_READERS_FULL)
			rc = mdb_reader_check(s->env, NULL);
		else
			break;
		if (rc != 0)
			break;
		rc = EAGAIN;
	}
	return rc == 0 ? 0 : lmdb_fail("begin transaction", rc);
}

/* Double the map size; only called with no transaction open. */
static int
grow(struct ledger_store *s)
{
	MDB_envinfo info;
	size_t size;
	int rc;

	if ((rc = mdb_env_info(s->env, &info)) != 0)
		return lmdb_fail("env info", rc);
	if (info.me_mapsize >= LEDGER_STORE_MAPSIZE_MAX) {
		log_warnx("ledger store: map full at %zu bytes, the limit; "
		    "prune history (ledger_history) or free disk space",
		    info.me_mapsize);
		return HP_ETOOBIG;
	}
	size = info.me_mapsize * 2;
	if (size > LEDGER_STORE_MAPSIZE_MAX)
		size = LEDGER_STORE_MAPSIZE_MAX;
	if ((rc = mdb_env_set_mapsize(s->env, size)) != 0)
		return lmdb_fail("grow map", rc);
	log_info("ledger store: map grown to %zu bytes", size);
	return 0;
}

static int
write_txn(struct ledger_store *s, write_op op, void *arg)
{
	MDB_txn *txn;
	int r, rc;

	for (;;) {
		if ((r = begin(s, 0, &txn)) != 0)
			return r;
		if ((r = op(s, txn, arg)) == 0) {
			if ((rc = mdb_txn_commit(txn)) != 0)
				r = lmdb_fail("commit", rc);
		} else
			mdb_txn_abort(txn);
		if (r != MDB_MAP_FULL)
			return r;
		if ((r = grow(s)) != 0)
			return r;
	}
}

static int
decode(const MDB_val *k, const MDB_val *v, struct hp_ledger *out)
{
	msgpack_unpacked res;
	uint64_t seq = key_seq(k);
	int r;

	if ((r = hp_mpack_unpack(v->mv_data, v->mv_size, &res)) == 0) {
		r = hp_ledger_unpack(&res.data, out);
		msgpack_unpacked_destroy(&res);
	}
	if (r == 0 && out->seq != seq)
		r = HP_EFORMAT;
	if (r != 0) {
		log_warnx("ledger store: stored ledger %llu is corrupt (%s); "
		    "restore NODE/ledger from a backup or resync",
		    (unsigned long long)seq, hp_strerror(r));
		return HP_EFORMAT;
	}
	return 0;
}

/* Position c on the ledger at op (MDB_FIRST, MDB_LAST); HP_ENOENT if empty. */
static int
edge(MDB_cursor *c, MDB_cursor_op op, MDB_val *k, MDB_val *v)
{
	int rc = mdb_cursor_get(c, k, v, op);

	if (rc == MDB_NOTFOUND)
		return HP_ENOENT;
	if (rc != 0)
		return lmdb_fail("cursor", rc);
	if (k->mv_size != 8) {
		log_warnx("ledger store: key of %zu bytes in \"ledgers\"; "
		    "restore NODE/ledger from a backup", k->mv_size);
		return HP_EFORMAT;
	}
	return 0;
}

/* The last ledger as seen by txn; genesis when none is stored. */
static int
last_in(struct ledger_store *s, MDB_txn *txn, struct hp_ledger *out)
{
	MDB_cursor *c;
	MDB_val k, v;
	int r, rc;

	if ((rc = mdb_cursor_open(txn, s->ledgers, &c)) != 0)
		return lmdb_fail("cursor", rc);
	r = edge(c, MDB_LAST, &k, &v);
	if (r == 0)
		r = decode(&k, &v, out);
	else if (r == HP_ENOENT) {
		hp_ledger_genesis(out);
		r = 0;
	}
	mdb_cursor_close(c);
	return r;
}

static int
open_dbs(struct ledger_store *s, MDB_txn *txn, void *arg)
{
	int rc;

	if ((rc = mdb_dbi_open(txn, "ledgers", MDB_CREATE, &s->ledgers)) != 0)
		return lmdb_fail("open database \"ledgers\"", rc);
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0)
		return lmdb_fail("open database \"meta\"", rc);
	if ((rc = mdb_dbi_open(txn, "raw", MDB_CREATE, &s->raw)) != 0)
		return lmdb_fail("open database \"raw\"", rc);
	return 0;
}

static int
initial_mapsize(size_t *size)
{
	const char *e = getenv("HPD_LEDGER_MAPSIZE");
	unsigned long long v;
	long page = sysconf(_SC_PAGESIZE);
	char *end;

	*size = LEDGER_STORE_MAPSIZE;
	if (e == NULL)
		return 0;
	errno = 0;
	v = strtoull(e, &end, 10);
	if (errno != 0 || end == e || *end != '\0' || v == 0 ||
	    v > LEDGER_STORE_MAPSIZE_MAX) {
		log_warnx("ledger store: HPD_LEDGER_MAPSIZE=\"%s\" is not a "
		    "byte count from 1 to %llu", e,
		    (unsigned long long)LEDGER_STORE_MAPSIZE_MAX);
		return HP_EINVAL;
	}
	if (page <= 0)
		page = 4096;
	*size = (size_t)((v + (unsigned long long)page - 1) /
	    (unsigned long long)page * (unsigned long long)page);
	return 0;
}

int
ledger_store_open(const char *dir, struct ledger_store **out)
{
	struct ledger_store *s;
	size_t mapsize;
	int dead = 0, r, rc;

	*out = NULL;
	if ((r = initial_mapsize(&mapsize)) != 0)
		return r;
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		log_warn("ledger store: mkdir %s", dir);
		return HP_EIO;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return HP_ENOMEM;
	if ((rc = mdb_env_create(&s->env)) != 0) {
		free(s);
		return lmdb_fail("create env", rc);
	}
	if ((rc = mdb_env_set_mapsize(s->env, mapsize)) != 0 ||
	    (rc = mdb_env_set_maxdbs(s->env, 8)) != 0) {
		r = lmdb_fail("configure env", rc);
		goto fail;
	}
	if ((rc = mdb_env_open(s->env, dir, 0, 0600)) != 0) {
		log_warnx("ledger store: open %s: %s", dir, mdb_strerror(rc));
		r = HP_EIO;
		goto fail;
	}
	if ((rc = mdb_reader_check(s->env, &dead)) != 0) {
		r = lmdb_fail("reader check", rc);
		goto fail;
	}
	if (dead > 0)
		log_info("ledger store: cleared %d stale reader slot%s", dead,
		    dead == 1 ? "" : "s");
	if ((r = write_txn(s, open_dbs, NULL)) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	mdb_env_close(s->env);
	free(s);
	return r;
}

void
ledger_store_close(struct ledger_store *s)
{
	if (s == NULL)
		return;
	mdb_env_close(s->env);
	free(s);
}

int
ledger_store_last(struct ledger_store *s, struct hp_ledger *out)
{
	MDB_txn *txn;
	int r;

	if ((r = begin(s, MDB_RDONLY, &txn)) != 0)
		return r;
	r = last_in(s, txn, out);
	mdb_txn_abort(txn);
	return r;
}

int
ledger_store_get(struct ledger_store *s, uint64_t seq, struct hp_ledger *out)
{
	MDB_txn *txn;
	MDB_val k, v;
	uint8_t kb[8];
	int r, rc;

	if (seq == 0) {
		hp_ledger_genesis(out);
		return 0;
	}
	if ((r = begin(s, MDB_RDONLY, &txn)) != 0)
		return r;
	seq_key(seq, kb);
	k.mv_size = sizeof(kb);
	k.mv_data = kb;
	rc = mdb_get(txn, s->ledgers, &k, &v);
	if (rc == MDB_NOTFOUND)
		r = HP_ENOENT;
	else if (rc != 0)
		r = lmdb_fail("get", rc);
	else
		r = decode(&k, &v, out);
	mdb_txn_abort(txn);
	return r;
}

int
ledger_store_first_seq(struct ledger_store *s, uint64_t *seq)
{
	MDB_cursor *c;
	MDB_txn *txn;
	MDB_val k, v;
	int r, rc;

	if ((r = begin(s, MDB_RDONLY, &txn)) != 0)
		return r;
	if ((rc = mdb_cursor_open(txn, s->ledgers, &c)) != 0) {
		mdb_txn_abort(txn);
		return lmdb_fail("cursor", rc);
	}
	r = edge(c, MDB_FIRST, &k, &v);
	if (r == 0)
		*seq = key_seq(&k);
	else if (r == HP_ENOENT) {
		*seq = 0;
		r = 0;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return r;
}

struct append_arg {
	const struct hp_ledger *l;
	const msgpack_sbuffer *packed;
	const struct ledger_raw *raw;	/* NULL or nraw records */
	size_t nraw;
};

static int
append_op(struct ledger_store *s, MDB_txn *txn, void *arg)
{
	const struct append_arg *a = arg;
	struct hp_ledger last;
	MDB_val k, v;
	uint8_t kb[8];
	int r, rc;

	if ((r = last_in(s, txn, &last)) != 0)
		return r;
	if (last.seq == UINT64_MAX || a->l->seq != last.seq + 1 ||
	    memcmp(a->l->prev_hash, last.hash, HP_HASH_BYTES) != 0)
		return HP_EINVAL;
	seq_key(a->l->seq, kb);
	k.mv_size = sizeof(kb);
	k.mv_data = kb;
	v.mv_size = a->packed->size;
	v.mv_data = a->packed->data;
	if ((rc = mdb_put(txn, s->ledgers, &k, &v, MDB_APPEND)) != 0)
		return lmdb_fail("put ledger", rc);
	for (size_t i = 0; i < a->nraw; i++) {
		uint8_t rk[9];

		if (a->raw[i].len == 0)
			continue;
		memcpy(rk, kb, 8);
		rk[8] = (uint8_t)a->raw[i].kind;
		k.mv_size = sizeof(rk);
		k.mv_data = rk;
		v.mv_size = a->raw[i].len;
		v.mv_data = (void *)a->raw[i].data;
		if ((rc = mdb_put(txn, s->raw, &k, &v, 0)) != 0)
			return lmdb_fail("put raw ledger data", rc);
	}
	return 0;
}

int
ledger_store_append(struct ledger_store *s, const struct hp_ledger *l)
{
	return ledger_store_append_raw(s, l, NULL, 0);
}

int
ledger_store_append_raw(struct ledger_store *s, const struct hp_ledger *l,
    const struct ledger_raw *raw, size_t nraw)
{
	struct hp_ledger check;
	struct append_arg a;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	if (l->nsigs > HP_LEDGER_MAX_SIGS)
		return HP_EINVAL;
	check = *l;
	hp_ledger_compute_hash(&check);
	if (memcmp(check.hash, l->hash, HP_HASH_BYTES) != 0)
		return HP_EINVAL;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	hp_ledger_pack(&pk, l);
	if (sb.data == NULL) {
		msgpack_sbuffer_destroy(&sb);
		return HP_ENOMEM;
	}
	a.l = l;
	a.packed = &sb;
	a.raw = raw;
	a.nraw = nraw;
	r = write_txn(s, append_op, &a);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

struct prune_arg {
	uint64_t keep;
	bool more;	/* out: another batch is due */
};

/* Delete up to PRUNE_BATCH of the ledgers that fall outside the newest keep. */
static int
prune_op(struct ledger_store *s, MDB_txn *txn, void *arg)
{
	struct prune_arg *a = arg;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t cutoff;
	int n = 0, r, rc;

	a->more = false;
	if ((rc = mdb_cursor_open(txn, s->ledgers, &c)) != 0)
		return lmdb_fail("cursor", rc);
	if ((r = edge(c, MDB_LAST, &k, &v)) != 0) {
		mdb_cursor_close(c);
		return r == HP_ENOENT ? 0 : r;
	}
	if (key_seq(&k) <= a->keep) {
		mdb_cursor_close(c);
		return 0;
	}
	cutoff = key_seq(&k) - a->keep;	/* delete seq <= cutoff */
	for (r = edge(c, MDB_FIRST, &k, &v); r == 0 && key_seq(&k) <= cutoff;
	    r = edge(c, MDB_FIRST, &k, &v)) {
		if (n == PRUNE_BATCH) {
			a->more = true;
			break;
		}
		if ((rc = mdb_cursor_del(c, 0)) != 0) {
			r = lmdb_fail("delete ledger", rc);
			break;
		}
		n++;
	}
	mdb_cursor_close(c);
	if (r != 0 && r != HP_ENOENT)
		return r;
	/* The raw records of the deleted ledgers go with them. */
	if ((rc = mdb_cursor_open(txn, s->raw, &c)) != 0)
		return lmdb_fail("cursor", rc);
	r = 0;
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0 &&
	    k.mv_size == 9 && key_seq(&k) <= cutoff)
		if ((rc = mdb_cursor_del(c, 0)) != 0) {
			r = lmdb_fail("delete raw ledger data", rc);
			break;
		}
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = lmdb_fail("raw ledger data cursor", rc);
	mdb_cursor_close(c);
	return r;
}

int
ledger_store_raw_get(struct ledger_store *s, uint64_t seq, int kind,
    uint8_t **out, size_t *len)
{
	MDB_txn *txn;
	MDB_val k, v;
	uint8_t rk[9];
	int r, rc;

	*out = NULL;
	*len = 0;
	seq_key(seq, rk);
	rk[8] = (uint8_t)kind;
	k.mv_size = sizeof(rk);
	k.mv_data = rk;
	if ((r = begin(s, MDB_RDONLY, &txn)) != 0)
		return r;
	rc = mdb_get(txn, s->raw, &k, &v);
	if (rc == MDB_NOTFOUND)
		r = HP_ENOENT;
	else if (rc != 0)
		r = lmdb_fail("get raw ledger data", rc);
	else if ((*out = malloc(v.mv_size ? v.mv_size : 1)) == NULL)
		r = HP_ENOMEM;
	else {
		memcpy(*out, v.mv_data, v.mv_size);
		*len = v.mv_size;
	}
	mdb_txn_abort(txn);
	return r;
}

int
ledger_store_prune(struct ledger_store *s, uint64_t keep)
{
	struct prune_arg a;
	int r;

	if (keep == 0)
		return 0;
	a.keep = keep;
	do {
		if ((r = write_txn(s, prune_op, &a)) != 0)
			return r;
	} while (a.more);
	return 0;
}

static int
meta_key(const char *key, MDB_val *k)
{
	size_t n = strlen(key);

	if (n == 0 || n > LEDGER_STORE_META_KEY_MAX)
		return HP_EINVAL;
	k->mv_size = n;
	k->mv_data = (void *)key;
	return 0;
}

struct meta_arg {
	MDB_val k;
	MDB_val v;
};

static int
meta_put_op(struct ledger_store *s, MDB_txn *txn, void *arg)
{
	struct meta_arg *a = arg;
	int rc;

	if ((rc = mdb_put(txn, s->meta, &a->k, &a->v, 0)) != 0)
		return lmdb_fail("put meta", rc);
	return 0;
}

int
ledger_store_meta_put(struct ledger_store *s, const char *key,
    const void *val, size_t len)
{
	struct meta_arg a;
	int r;

	if ((r = meta_key(key, &a.k)) != 0)
		return r;
	if (len > META_VAL_MAX)
		return HP_ETOOBIG;
	a.v.mv_size = len;
	a.v.mv_data = (void *)val;
	return write_txn(s, meta_put_op, &a);
}

int
ledger_store_meta_get(struct ledger_store *s, const char *key,
    void *buf, size_t bufsize, size_t *len)
{
	MDB_txn *txn;
	MDB_val k, v;
	int r, rc;

	if ((r = meta_key(key, &k)) != 0)
		return r;
	if ((r = begin(s, MDB_RDONLY, &txn)) != 0)
		return r;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		r = HP_ENOENT;
	else if (rc != 0)
		r = lmdb_fail("get meta", rc);
	else {
		*len = v.mv_size;
		if (v.mv_size > bufsize)
			r = HP_ETOOBIG;
		else if (v.mv_size > 0)
			memcpy(buf, v.mv_data, v.mv_size);
	}
	mdb_txn_abort(txn);
	return r;
}
