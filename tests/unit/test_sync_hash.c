/*
 * test_sync_hash.c — the state sync engine verifies every directory
 * listing and file chunk list it receives by recomputing the node hash
 * (workers/state/sync.c); those recomputations must agree with the
 * store's own hash tree (tree.c) on every kind of node, or a node could
 * never finish a sync. This builds varied trees in a real store and
 * checks sync's functions against sfs_node_hash, and that a tampered
 * listing, mode, size or chunk list no longer matches.
 *
 * sync.c is included so that its static hash functions can be called.
 */
#include "../../workers/state/sync.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ftw.h>

static char base[] = "/tmp/hpd-synchash.XXXXXX";

struct chunks {
	uint8_t (*h)[32];
	uint64_t n;
};

static int
chunk_cb2(void *arg, uint64_t index, const uint8_t hash[32])
{
	struct chunks *c = arg;

	c->h = realloc(c->h, (size_t)(index + 1) * 32);
	memcpy(c->h[index], hash, 32);
	if (index + 1 > c->n)
		c->n = index + 1;
	return 0;
}

/* The file node as sync computes it from a FILE response: group hashes
 * over 256 chunk hashes each, then the node. */
static void
sync_file_hash(struct sfs_view *v, uint64_t ino, uint32_t mode,
    uint64_t size, uint8_t out[32])
{
	struct chunks c = { NULL, 0 };
	uint64_t ngroups;
	uint8_t (*groups)[32];

	assert_int_equal(sfs_file_chunks(v, ino, chunk_cb2, &c), 0);
	ngroups = (c.n + 255) / 256;
	groups = calloc(ngroups ? ngroups : 1, 32);
	for (uint64_t g = 0; g < ngroups; g++) {
		uint64_t first = g * 256, cnt = c.n - first < 256 ?
		    c.n - first : 256;
		hp_hash(c.h[first], (size_t)cnt * 32, groups[g]);
	}
	assert_int_equal(file_node(mode, size, (const uint8_t (*)[32])groups,
	    ngroups, out), 0);
	free(groups);
	free(c.h);
}

struct tlisting {
	struct rent e[64];
	size_t n;
	struct sfs_view *v;
	uint64_t dir;
};

static int
list_cb2(void *arg, const char *name, mode_t mode, uint64_t size,
    const uint8_t hash[32])
{
	struct tlisting *l = arg;
	struct rent *e = &l->e[l->n++];

	e->name = strdup(name);
	e->mode = (uint32_t)mode;
	e->size = size;
	memcpy(e->hash, hash, 32);
	return 0;
}

static void
check_tree(struct sfs_view *v, uint64_t dir)
{
	struct tlisting l;
	struct sfs_attr a;
	uint8_t want[32], got[32];

	memset(&l, 0, sizeof(l));
	assert_int_equal(sfs_dir_list_hashed(v, dir, list_cb2, &l), 0);
	assert_int_equal(sfs_getattr(v, dir, &a), 0);
	assert_int_equal(dir_node((uint32_t)a.mode, l.e, l.n, got), 0);
	assert_int_equal(sfs_node_hash(v, dir, want), 0);
	assert_memory_equal(got, want, 32);
	/* A listing with one entry's hash changed, or a different mode,
	 * does not verify. */
	if (l.n > 0) {
		l.e[0].hash[0] ^= 1;
		dir_node((uint32_t)a.mode, l.e, l.n, got);
		assert_memory_not_equal(got, want, 32);
		l.e[0].hash[0] ^= 1;
	}
	dir_node((uint32_t)a.mode ^ 01, l.e, l.n, got);
	assert_memory_not_equal(got, want, 32);

	for (size_t i = 0; i < l.n; i++) {
		struct sfs_attr c;
		assert_int_equal(sfs_lookup(v, dir, l.e[i].name, &c), 0);
		if (S_ISDIR(c.mode))
			check_tree(v, c.ino);
		else if (S_ISREG(c.mode)) {
			sync_file_hash(v, c.ino, (uint32_t)c.mode, c.size, got);
			assert_memory_equal(got, l.e[i].hash, 32);
			sync_file_hash(v, c.ino, (uint32_t)c.mode ^ 02, c.size,
			    got);
			assert_memory_not_equal(got, l.e[i].hash, 32);
			sync_file_hash(v, c.ino, (uint32_t)c.mode, c.size + 1,
			    got);
			assert_memory_not_equal(got, l.e[i].hash, 32);
		} else if (S_ISLNK(c.mode)) {
			char target[4096];
			assert_true(sfs_readlink(v, c.ino, target,
			    sizeof(target)) > 0);
			link_node(target, got);
			assert_memory_equal(got, l.e[i].hash, 32);
		}
		free(l.e[i].name);
	}
}

static void
write_pattern(struct sfs_view *v, uint64_t ino, uint64_t off, size_t len,
    uint8_t seed)
{
	uint8_t *buf = malloc(len);

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 7);
	assert_int_equal(sfs_write(v, ino, off, len, buf), (ssize_t)len);
	free(buf);
}

static void
test_sync_hashes_match_store(void **state)
{
	struct sfs *s;
	struct sfs_view *v;
	struct sfs_attr d, sub, f, l;
	char dir[64];
	static const uint8_t zeros[SFS_CHUNK];

	hp_hash(zeros, SFS_CHUNK, sy.zchunk);
	snprintf(dir, sizeof(dir), "%s/store", base);
	assert_int_equal(sfs_open(dir, &s), 0);
	assert_int_equal(sfs_begin_rw(s, &v), 0);
	assert_int_equal(sfs_mkdir(v, SFS_STATE_INO, "dir", 0750, &d), 0);
	assert_int_equal(sfs_mkdir(v, d.ino, "sub", 01777, &sub), 0);
	assert_int_equal(sfs_create(v, SFS_STATE_INO, "empty", 0600, &f), 0);
	assert_int_equal(sfs_create(v, d.ino, "small", 04755, &f), 0);
	write_pattern(v, f.ino, 0, 100, 1);
	/* More than one group of 256 chunks, with a hole in the middle. */
	assert_int_equal(sfs_create(v, sub.ino, "big", 0644, &f), 0);
	write_pattern(v, f.ino, 0, 3 * SFS_CHUNK + 5, 2);
	write_pattern(v, f.ino, 300ULL * SFS_CHUNK + 17, 1000, 3);
	/* A sparse file that ends inside a hole. */
	assert_int_equal(sfs_create(v, d.ino, "sparse", 0644, &f), 0);
	write_pattern(v, f.ino, 5 * SFS_CHUNK, 10, 4);
	struct sfs_attr set = { .size = 9 * SFS_CHUNK + 123 };
	assert_int_equal(sfs_setattr(v, f.ino, SFS_SET_SIZE, &set, &f), 0);
	assert_int_equal(sfs_symlink(v, d.ino, "link", "sub/big", &l), 0);
	check_tree(v, SFS_STATE_INO);
	assert_int_equal(sfs_commit(v, NULL, NULL), 0);
	assert_int_equal(sfs_begin_ro(s, &v), 0);
	check_tree(v, SFS_STATE_INO);
	sfs_end(v);
	sfs_close(s);
}

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_hashes_match_store),
	};
	int r;

	if (mkdtemp(base) == NULL)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return r;
}
