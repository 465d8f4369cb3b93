/*
 * test_state_hash.c — the statefs hash definition (docs/state-hash.md)
 * against an independent reference written here from the definition
 * with the BLAKE3 API alone (no store code), the test vectors of the
 * document, and the property the definition exists for: the hash is a
 * function of content, whatever sequence of operations produced it.
 *
 * Each case builds trees in fresh stores under a mkdtemp directory in
 * /dev/shm (/tmp when that is missing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blake3.h>

#include "err.h"
#include "store.h"

#define OK(x)	assert_int_equal((x), 0)
#define MiB	(1024 * 1024)
#define BIG	(5 * MiB + 7)

static char base[64];
static int nstore;

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
group_setup(void **state)
{
	const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(base, sizeof(base), "%s/test_state_hash.XXXXXX", root);
	return mkdtemp(base) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	return nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct sfs *
fresh(void)
{
	char dir[128];
	struct sfs *s;

	snprintf(dir, sizeof(dir), "%s/%d", base, ++nstore);
	OK(sfs_open(dir, &s));
	return s;
}

static void
hex(const uint8_t h[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
}

static void
assert_hex(const uint8_t h[32], const char *want)
{
	char got[65];

	hex(h, got);
	assert_string_equal(got, want);
}

/* ---- the reference, from the definition only ---- */

static void
ref_b3(const void *p, size_t len, uint8_t out[32])
{
	blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, p, len);
	blake3_hasher_finalize(&h, out, 32);
}

static void
ref_file(unsigned mode, const uint8_t *bytes, uint64_t size, uint8_t out[32])
{
	uint64_t n = (size + 65535) / 65536;
	uint8_t *ch = malloc(n * 32 + 1), hdr[12], gh[32];
	blake3_hasher h;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t len = size - i * 65536 < 65536 ? size - i * 65536 :
		    65536;

		ref_b3(bytes + i * 65536, len, ch + 32 * i);
	}
	blake3_hasher_init(&h);
	blake3_hasher_update(&h, "hpd file v1", 11);
	hdr[0] = hdr[1] = 0;
	hdr[2] = (mode & 07777) >> 8;
	hdr[3] = mode & 0xff;
	for (int i = 0; i < 8; i++)
		hdr[4 + i] = (uint8_t)(size >> (56 - 8 * i));
	blake3_hasher_update(&h, hdr, 12);
	for (uint64_t g = 0; g < n; g += 256) {
		ref_b3(ch + 32 * g, 32 * (n - g < 256 ? n - g : 256), gh);
		blake3_hasher_update(&h, gh, 32);
	}
	blake3_hasher_finalize(&h, out, 32);
	free(ch);
}

static void
ref_link(const char *target, uint8_t out[32])
{
	blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, "hpd symlink v1", 14);
	blake3_hasher_update(&h, target, strlen(target));
	blake3_hasher_finalize(&h, out, 32);
}

struct ref_entry {
	const char *name;
	uint8_t hash[32];
};

/* entries given in byte order of name */
static void
ref_dir(unsigned mode, const struct ref_entry *e, int n, uint8_t out[32])
{
	uint8_t m[4] = { 0, 0, (mode & 07777) >> 8, mode & 0xff }, l[2];
	blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, "hpd dir v1", 10);
	blake3_hasher_update(&h, m, 4);
	for (int i = 0; i < n; i++) {
		size_t len = strlen(e[i].name);

		if (i > 0)
			assert_true(strcmp(e[i - 1].name, e[i].name) < 0);
		l[0] = (uint8_t)(len >> 8);
		l[1] = (uint8_t)len;
		blake3_hasher_update(&h, l, 2);
		blake3_hasher_update(&h, e[i].name, len);
		blake3_hasher_update(&h, e[i].hash, 32);
	}
	blake3_hasher_finalize(&h, out, 32);
}

static uint8_t *
big_bytes(void)
{
	uint8_t *p = malloc(BIG);

	assert_non_null(p);
	for (size_t k = 0; k < BIG; k++)
		p[k] = (uint8_t)(k % 251);
	return p;
}

/* ---- store helpers ---- */

static uint64_t
put_file(struct sfs_view *v, uint64_t parent, const char *name, mode_t mode,
    const void *data, size_t len)
{
	struct sfs_attr a;

	OK(sfs_create(v, parent, name, mode, &a));
	if (len > 0)
		assert_int_equal(sfs_write(v, a.ino, 0, len, data),
		    (ssize_t)len);
	return a.ino;
}

static void
commit_check(struct sfs *s, struct sfs_view *v, uint8_t st[32],
    uint8_t pt[32])
{
	OK(sfs_commit(v, st, pt));
	OK(sfs_verify(s));
}

/* The tree of hpfs-reference §3.6 plus a symlink, in a plain order. */
static void
build_v3(struct sfs *s, uint8_t st[32], uint8_t pt[32])
{
	struct sfs_view *v;
	struct sfs_attr d;
	uint8_t *big = big_bytes();

	OK(sfs_begin_rw(s, &v));
	put_file(v, SFS_STATE_INO, "a.txt", 0644, "hello world", 11);
	OK(sfs_mkdir(v, SFS_STATE_INO, "sub", 0700, &d));
	put_file(v, d.ino, "big.bin", 0600, big, BIG);
	OK(sfs_symlink(v, SFS_STATE_INO, "link", "a.txt", &d));
	assert_int_equal(sfs_write(v, SFS_PATCH_INO, 0, 7, "{\"x\":1}"), 7);
	commit_check(s, v, st, pt);
	free(big);
}

/* ---- vectors ---- */

static void
test_vector_empty(void **state)
{
	struct sfs *s = fresh();
	uint8_t st[32], pt[32], want[32];

	OK(sfs_hashes(s, st, pt));
	ref_dir(0755, NULL, 0, want);
	assert_memory_equal(st, want, 32);
	ref_file(0644, NULL, 0, want);
	assert_memory_equal(pt, want, 32);
	assert_hex(st, "dcd6a53f1e6ef1e536bf5ada88648be3"
	    "baf0c686a3e048340295924d02705958");
	assert_hex(pt, "27a879e1a9dbe7b605a07e78dc9d522f"
	    "5c74c854db5222f6ec1c4ae46f087a17");
	OK(sfs_verify(s));
	sfs_close(s);
}

static void
test_vector_hello(void **state)
{
	struct sfs *s = fresh();
	struct sfs_view *v;
	struct ref_entry e[1] = { { "a.txt", { 0 } } };
	uint8_t st[32], pt[32], want[32];

	OK(sfs_begin_rw(s, &v));
	put_file(v, SFS_STATE_INO, "a.txt", 0644, "hello world", 11);
	assert_int_equal(sfs_write(v, SFS_PATCH_INO, 0, 7, "{\"x\":1}"), 7);
	commit_check(s, v, st, pt);
	ref_file(0644, (const uint8_t *)"hello world", 11, e[0].hash);
	assert_hex(e[0].hash, "c2819f13f01259a02c7412d5ada3118b"
	    "5b89cfc4cfb1cb6b694c227e22afe125");
	ref_dir(0755, e, 1, want);
	assert_memory_equal(st, want, 32);
	ref_file(0644, (const uint8_t *)"{\"x\":1}", 7, want);
	assert_memory_equal(pt, want, 32);
	assert_hex(st, "a1a01e51ab93c23337194ee30f971b82"
	    "083355ca48a10fcb3a6825f63ffb4743");
	assert_hex(pt, "43a424aef98e0fb87392f8b96b57873c"
	    "4753772a8c490c34fa7b75d4a6ef5c3d");
	sfs_close(s);
}

static void
test_vector_tree(void **state)
{
	struct sfs *s = fresh();
	struct ref_entry sub[1] = { { "big.bin", { 0 } } };
	struct ref_entry top[3] = { { "a.txt", { 0 } }, { "link", { 0 } },
	    { "sub", { 0 } } };
	uint8_t st[32], pt[32], want[32], *big = big_bytes();

	build_v3(s, st, pt);
	ref_file(0600, big, BIG, sub[0].hash);
	assert_hex(sub[0].hash, "20b29f0121974e9f316bfa5dd4f0e467"
	    "87250796c5e9de4e4a2f79b0b36290ce");
	ref_file(0644, (const uint8_t *)"hello world", 11, top[0].hash);
	ref_link("a.txt", top[1].hash);
	assert_hex(top[1].hash, "e60caefef48c562e672af4eacd22efb8"
	    "75803dffba3202bfd32366d04f2c1e51");
	ref_dir(0700, sub, 1, top[2].hash);
	assert_hex(top[2].hash, "6e894023ae62da76da97b80bc2b6906b"
	    "09d2f08b25e70cc271c845da4e2574af");
	ref_dir(0755, top, 3, want);
	assert_memory_equal(st, want, 32);
	assert_hex(st, "64e8f72ee3f988971a9dff25097b0d6c"
	    "3d954077f213dd914d7a0fcb18867eff");
	free(big);
	sfs_close(s);
}

/* A sparse file over two groups, a setuid file and a sticky dir. */
static void
test_vector_sparse_modes(void **state)
{
	struct sfs *s = fresh();
	struct sfs_view *v;
	struct sfs_attr a, in;
	struct ref_entry top[3] = { { "sparse", { 0 } }, { "suid", { 0 } },
	    { "tmp", { 0 } } };
	uint64_t size = 20 * MiB;
	uint8_t st[32], pt[32], want[32], *zeros = calloc(1, size);

	assert_non_null(zeros);
	OK(sfs_begin_rw(s, &v));
	OK(sfs_create(v, SFS_STATE_INO, "sparse", 0644, &a));
	assert_int_equal(sfs_write(v, a.ino, size - 3, 3, "end"), 3);
	put_file(v, SFS_STATE_INO, "suid", 04755, NULL, 0);
	OK(sfs_mkdir(v, SFS_STATE_INO, "tmp", 01777, &a));
	memset(&in, 0, sizeof(in));
	commit_check(s, v, st, pt);
	memcpy(zeros + size - 3, "end", 3);
	ref_file(0644, zeros, size, top[0].hash);
	assert_hex(top[0].hash, "dfe6fe9815caf88b889f3cf912ecd7f6"
	    "c6a34b398f42fa8fec50886e7ff83acd");
	ref_file(04755, NULL, 0, top[1].hash);
	ref_dir(01777, NULL, 0, top[2].hash);
	ref_dir(0755, top, 3, want);
	assert_memory_equal(st, want, 32);
	assert_hex(st, "b2ed08a61ba504a13ff1b3761941eb3c"
	    "b6859ac111d0113f11f4ab088d726edb");
	free(zeros);
	sfs_close(s);
}

/* ---- history independence ---- */

/* The v3 tree again, by a long way round. */
static void
build_v3_other(struct sfs *s, uint8_t st[32], uint8_t pt[32])
{
	struct sfs_view *v;
	struct sfs_attr d, f, in;
	uint8_t *big = big_bytes(), junk[1000];
	uint64_t n = (BIG + SFS_CHUNK - 1) / SFS_CHUNK;

	memset(junk, 0xab, sizeof(junk));
	memset(&in, 0, sizeof(in));
	/* Session 1: parts of it, in another order, with detours. */
	OK(sfs_begin_rw(s, &v));
	assert_int_equal(sfs_write(v, SFS_PATCH_INO, 0, 18,
	    "{\"x\":2, \"y\": true}"), 18);
	OK(sfs_mkdir(v, SFS_STATE_INO, "tmpdir", 0755, &d));
	OK(sfs_create(v, d.ino, "partial", 0666, &f));
	/* big.bin chunk by chunk from the end, with junk first. */
	assert_int_equal(sfs_write(v, f.ino, 3, sizeof(junk), junk),
	    sizeof(junk));
	for (uint64_t i = n; i-- > 0;) {
		uint64_t off = i * SFS_CHUNK;
		size_t len = BIG - off < SFS_CHUNK ? BIG - off : SFS_CHUNK;

		assert_int_equal(sfs_write(v, f.ino, off, len, big + off),
		    (ssize_t)len);
	}
	/* Grow past the end, truncate into the middle, re-extend, rewrite. */
	in.size = 9 * MiB + 3;
	OK(sfs_setattr(v, f.ino, SFS_SET_SIZE, &in, NULL));
	in.size = 2 * MiB + 17;
	OK(sfs_setattr(v, f.ino, SFS_SET_SIZE, &in, NULL));
	in.size = BIG;
	OK(sfs_setattr(v, f.ino, SFS_SET_SIZE, &in, NULL));
	assert_int_equal(sfs_write(v, f.ino, 2 * MiB, BIG - 2 * MiB,
	    big + 2 * MiB), BIG - 2 * MiB);
	in.mode = 0600;
	OK(sfs_setattr(v, f.ino, SFS_SET_MODE, &in, NULL));
	put_file(v, SFS_STATE_INO, "a.txt", 0600, "hello", 5);
	OK(sfs_commit(v, NULL, NULL));

	/* Session 2: rename into place, fix modes and content. */
	OK(sfs_begin_rw(s, &v));
	OK(sfs_rename(v, SFS_STATE_INO, "tmpdir", SFS_STATE_INO, "sub", 0));
	OK(sfs_rename(v, d.ino, "partial", d.ino, "big.bin", 0));
	in.mode = 0700;
	OK(sfs_setattr(v, d.ino, SFS_SET_MODE, &in, NULL));
	OK(sfs_lookup(v, SFS_STATE_INO, "a.txt", &f));
	assert_int_equal(sfs_write(v, f.ino, 5, 6, " world"), 6);
	in.mode = 0644;
	in.mtime_ns = 1;
	in.atime_ns = 2;
	OK(sfs_setattr(v, f.ino, SFS_SET_MODE | SFS_SET_MTIME | SFS_SET_ATIME,
	    &in, NULL));
	OK(sfs_symlink(v, SFS_STATE_INO, "link", "b.txt", &f));
	OK(sfs_unlink(v, SFS_STATE_INO, "link"));
	OK(sfs_symlink(v, SFS_STATE_INO, "link", "a.txt", &f));
	put_file(v, SFS_STATE_INO, "gone", 0644, junk, sizeof(junk));
	OK(sfs_unlink(v, SFS_STATE_INO, "gone"));
	in.size = 0;
	OK(sfs_setattr(v, SFS_PATCH_INO, SFS_SET_SIZE, &in, NULL));
	assert_int_equal(sfs_write(v, SFS_PATCH_INO, 0, 7, "{\"x\":1}"), 7);
	commit_check(s, v, st, pt);
	free(big);
}

static void
test_order_independent(void **state)
{
	struct sfs *s1 = fresh(), *s2 = fresh();
	uint8_t st1[32], pt1[32], st2[32], pt2[32];

	build_v3(s1, st1, pt1);
	build_v3_other(s2, st2, pt2);
	assert_memory_equal(st1, st2, 32);
	assert_memory_equal(pt1, pt2, 32);
	sfs_close(s1);
	sfs_close(s2);
}

static void
state_hash(struct sfs_view *v, uint8_t h[32])
{
	OK(sfs_node_hash(v, SFS_STATE_INO, h));
}

static void
test_content_not_history(void **state)
{
	struct sfs *s = fresh();
	struct sfs_view *v;
	struct sfs_attr a, b, in;
	uint8_t h0[32], h1[32], h2[32], *zeros = calloc(1, 3 * MiB);

	assert_non_null(zeros);
	memset(&in, 0, sizeof(in));
	OK(sfs_begin_rw(s, &v));
	/* Sparse and written zeros are the same content. */
	OK(sfs_create(v, SFS_STATE_INO, "z", 0644, &a));
	in.size = 3 * MiB;
	OK(sfs_setattr(v, a.ino, SFS_SET_SIZE, &in, NULL));
	OK(sfs_node_hash(v, a.ino, h0));
	OK(sfs_create(v, SFS_STATE_INO, "w", 0644, &b));
	assert_int_equal(sfs_write(v, b.ino, 0, 3 * MiB, zeros), 3 * MiB);
	OK(sfs_node_hash(v, b.ino, h1));
	assert_memory_equal(h0, h1, 32);
	/* Data then zeros over it is a hole again. */
	assert_int_equal(sfs_write(v, b.ino, 100000, 5, "abcde"), 5);
	OK(sfs_node_hash(v, b.ino, h2));
	assert_memory_not_equal(h0, h2, 32);
	assert_int_equal(sfs_write(v, b.ino, 100000, 5, zeros), 5);
	OK(sfs_node_hash(v, b.ino, h2));
	assert_memory_equal(h0, h2, 32);

	/* Times do not count; mode bits do, and only the content ones. */
	state_hash(v, h0);
	in.mtime_ns = 99;
	in.atime_ns = 98;
	OK(sfs_setattr(v, a.ino, SFS_SET_MTIME | SFS_SET_ATIME, &in, NULL));
	state_hash(v, h1);
	assert_memory_equal(h0, h1, 32);
	in.mode = 0600;
	OK(sfs_setattr(v, a.ino, SFS_SET_MODE, &in, NULL));
	state_hash(v, h1);
	assert_memory_not_equal(h0, h1, 32);
	in.mode = 02644;
	OK(sfs_setattr(v, a.ino, SFS_SET_MODE, &in, NULL));
	state_hash(v, h2);
	assert_memory_not_equal(h1, h2, 32);
	assert_memory_not_equal(h0, h2, 32);
	in.mode = 0644;
	OK(sfs_setattr(v, a.ino, SFS_SET_MODE, &in, NULL));
	state_hash(v, h1);
	assert_memory_equal(h0, h1, 32);

	/* One byte, one name, one type: different hashes. */
	assert_int_equal(sfs_write(v, a.ino, 2 * MiB, 1, "x"), 1);
	state_hash(v, h1);
	assert_memory_not_equal(h0, h1, 32);
	assert_int_equal(sfs_write(v, a.ino, 2 * MiB, 1, "y"), 1);
	state_hash(v, h2);
	assert_memory_not_equal(h1, h2, 32);
	assert_int_equal(sfs_write(v, a.ino, 2 * MiB, 1, zeros), 1);
	state_hash(v, h1);
	assert_memory_equal(h0, h1, 32);
	OK(sfs_rename(v, SFS_STATE_INO, "z", SFS_STATE_INO, "y", 0));
	state_hash(v, h1);
	assert_memory_not_equal(h0, h1, 32);
	OK(sfs_rename(v, SFS_STATE_INO, "y", SFS_STATE_INO, "z", 0));
	state_hash(v, h1);
	assert_memory_equal(h0, h1, 32);
	put_file(v, SFS_STATE_INO, "e", 0755, NULL, 0);
	state_hash(v, h1);
	OK(sfs_unlink(v, SFS_STATE_INO, "e"));
	OK(sfs_mkdir(v, SFS_STATE_INO, "e", 0755, &a));
	state_hash(v, h2);
	assert_memory_not_equal(h1, h2, 32);
	OK(sfs_rmdir(v, SFS_STATE_INO, "e"));
	state_hash(v, h1);
	assert_memory_equal(h0, h1, 32);
	/* The size counts even where the bytes are holes. */
	in.size = 3 * MiB + 1;
	OK(sfs_setattr(v, b.ino, SFS_SET_SIZE, &in, NULL));
	state_hash(v, h1);
	assert_memory_not_equal(h0, h1, 32);
	in.size = 3 * MiB;
	OK(sfs_setattr(v, b.ino, SFS_SET_SIZE, &in, NULL));
	state_hash(v, h1);
	assert_memory_equal(h0, h1, 32);
	commit_check(s, v, h1, h2);
	assert_memory_equal(h0, h1, 32);
	free(zeros);
	sfs_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_empty),
		cmocka_unit_test(test_vector_hello),
		cmocka_unit_test(test_vector_tree),
		cmocka_unit_test(test_vector_sparse_modes),
		cmocka_unit_test(test_order_independent),
		cmocka_unit_test(test_content_not_history),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
