/*
 * test_ledger_store.c — the LMDB ledger store
 * (workers/consensus/ledger_store.c).
 *
 * Each test opens a fresh store in its own directory under a mkdtemp
 * directory in /dev/shm (tmpfs, so that ten thousand synced commits take
 * seconds; /tmp when /dev/shm is missing). Ledgers are chained with real
 * hashes and carry filler signatures: the store checks the chain, not the
 * signatures. The growth test starts from a 64 KiB map
 * (HPD_LEDGER_MAPSIZE) and appends 10,000 ledgers. The crash test forks a
 * child that appends (and now and then prunes) without end, SIGKILLs it at
 * a random moment, and checks after each kill that the store reopens and
 * holds an unbroken chain whose every hash recomputes; the seed is printed
 * so that a failure can be replayed with LEDGER_CRASH_SEED.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "ledger.h"
#include "ledger_store.h"

#define TINY_MAP	"65536"
#define MANY		10000
#define KILLS		8

static char base[64];
static char dir[128];
static int ntest;

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
group_setup(void **state)
{
	const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(base, sizeof(base), "%s/test_ledger_store.XXXXXX", root);
	return mkdtemp(base) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	return nftw(base, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* A fresh store directory for each test (created by ledger_store_open). */
static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/t%d", base, ++ntest);
	unsetenv("HPD_LEDGER_MAPSIZE");
	return 0;
}

static struct ledger_store *
open_store(void)
{
	struct ledger_store *s;

	assert_int_equal(ledger_store_open(dir, &s), 0);
	assert_non_null(s);
	return s;
}

/* The ledger after prev, with nsigs filler signatures. */
static void
next_ledger(const struct hp_ledger *prev, struct hp_ledger *l,
    uint32_t nsigs)
{
	uint64_t seq = prev->seq + 1;

	memset(l, 0, sizeof(*l));
	l->seq = seq;
	l->time = 1700000000000ULL + seq * 1000;
	memcpy(l->prev_hash, prev->hash, HP_HASH_BYTES);
	memcpy(l->state_hash, &seq, sizeof(seq));
	memset(l->nonce, (int)(seq & 0xff), HP_HASH_BYTES);
	l->nsigs = nsigs;
	for (uint32_t i = 0; i < nsigs; i++) {
		memset(l->sigs[i].pk, (int)i, HP_PK_BYTES);
		memset(l->sigs[i].sig, (int)(seq + i), HP_SIG_BYTES);
	}
	hp_ledger_compute_hash(l);
}

/* Append n ledgers after the current last one; returns the new last seq. */
static uint64_t
append_n(struct ledger_store *s, uint64_t n)
{
	static struct hp_ledger last, l;

	assert_int_equal(ledger_store_last(s, &last), 0);
	for (uint64_t i = 0; i < n; i++) {
		next_ledger(&last, &l, (uint32_t)((last.seq + 1) % 5));
		assert_int_equal(ledger_store_append(s, &l), 0);
		last = l;
	}
	return last.seq;
}

/*
 * Walk the stored chain from the oldest kept ledger to the last one: no
 * gap, each hash recomputes, each prev_hash is its predecessor's hash.
 * Returns the last seq.
 */
static uint64_t
check_chain(struct ledger_store *s)
{
	static struct hp_ledger last, prev, l, check;
	uint64_t first;

	assert_int_equal(ledger_store_last(s, &last), 0);
	assert_int_equal(ledger_store_first_seq(s, &first), 0);
	if (last.seq == 0) {
		assert_int_equal(first, 0);
		return 0;
	}
	assert_true(first >= 1 && first <= last.seq);
	if (first == 1)
		hp_ledger_genesis(&prev);
	else
		assert_int_equal(ledger_store_get(s, first - 1, &prev),
		    HP_ENOENT);
	for (uint64_t seq = first; seq <= last.seq; seq++) {
		assert_int_equal(ledger_store_get(s, seq, &l), 0);
		assert_int_equal(l.seq, seq);
		check = l;
		hp_ledger_compute_hash(&check);
		assert_memory_equal(check.hash, l.hash, HP_HASH_BYTES);
		if (seq > first || first == 1)
			assert_memory_equal(l.prev_hash, prev.hash,
			    HP_HASH_BYTES);
		prev = l;
	}
	assert_memory_equal(&prev, &last, sizeof(last));
	assert_int_equal(ledger_store_get(s, last.seq + 1, &l), HP_ENOENT);
	return last.seq;
}

static void
test_empty(void **state)
{
	static struct hp_ledger l, g;
	struct ledger_store *s = open_store();
	uint64_t first = 99;
	char path[192];
	struct stat st;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	hp_ledger_genesis(&g);
	memset(&l, 0xee, sizeof(l));
	assert_int_equal(ledger_store_last(s, &l), 0);
	assert_memory_equal(&l, &g, sizeof(l));
	assert_int_equal(ledger_store_first_seq(s, &first), 0);
	assert_int_equal(first, 0);
	assert_int_equal(ledger_store_get(s, 1, &l), HP_ENOENT);
	memset(&l, 0xee, sizeof(l));
	assert_int_equal(ledger_store_get(s, 0, &l), 0);
	assert_memory_equal(&l, &g, sizeof(l));
	ledger_store_close(s);
	ledger_store_close(NULL);
}

static void
test_append_reopen(void **state)
{
	static struct hp_ledger g, l[6], got;
	struct ledger_store *s = open_store();
	uint64_t first;

	hp_ledger_genesis(&g);
	next_ledger(&g, &l[1], 0);
	for (int i = 2; i <= 5; i++)
		next_ledger(&l[i - 1], &l[i], (uint32_t)i);
	l[5].nsigs = HP_LEDGER_MAX_SIGS;
	hp_ledger_compute_hash(&l[5]);
	for (int i = 1; i <= 5; i++) {
		assert_int_equal(ledger_store_append(s, &l[i]), 0);
		assert_int_equal(ledger_store_last(s, &got), 0);
		assert_memory_equal(&got, &l[i], sizeof(got));
	}
	for (int round = 0; round < 2; round++) {
		for (int i = 1; i <= 5; i++) {
			assert_int_equal(ledger_store_get(s, (uint64_t)i,
			    &got), 0);
			assert_memory_equal(&got, &l[i], sizeof(got));
		}
		assert_int_equal(ledger_store_last(s, &got), 0);
		assert_memory_equal(&got, &l[5], sizeof(got));
		assert_int_equal(ledger_store_first_seq(s, &first), 0);
		assert_int_equal(first, 1);
		assert_int_equal(check_chain(s), 5);
		ledger_store_close(s);
		s = open_store();
	}
	ledger_store_close(s);
}

static void
test_append_refused(void **state)
{
	static struct hp_ledger g, last, bad, got, other;
	struct ledger_store *s = open_store();

	/* The first ledger must follow genesis. */
	hp_ledger_genesis(&g);
	memset(g.hash, 0x01, HP_HASH_BYTES);
	next_ledger(&g, &bad, 1);
	assert_int_equal(ledger_store_append(s, &bad), HP_EINVAL);
	hp_ledger_genesis(&g);
	g.seq = 1;
	next_ledger(&g, &bad, 1);
	assert_int_equal(ledger_store_append(s, &bad), HP_EINVAL);
	assert_int_equal(ledger_store_last(s, &got), 0);
	assert_int_equal(got.seq, 0);

	assert_int_equal(append_n(s, 3), 3);
	assert_int_equal(ledger_store_last(s, &last), 0);
	assert_int_equal(ledger_store_get(s, 2, &other), 0);

	/* Same seq again, a gap, an older ledger replayed. */
	assert_int_equal(ledger_store_append(s, &last), HP_EINVAL);
	next_ledger(&last, &bad, 0);
	bad.seq = 5;
	hp_ledger_compute_hash(&bad);
	assert_int_equal(ledger_store_append(s, &bad), HP_EINVAL);
	assert_int_equal(ledger_store_append(s, &other), HP_EINVAL);

	/* Right seq, wrong prev_hash. */
	next_ledger(&other, &bad, 0);
	bad.seq = 4;
	hp_ledger_compute_hash(&bad);
	assert_int_equal(ledger_store_append(s, &bad), HP_EINVAL);

	/* Right chain, but the hash does not recompute. */
	next_ledger(&last, &bad, 0);
	bad.output_hash[3] ^= 1;
	assert_int_equal(ledger_store_append(s, &bad), HP_EINVAL);
	next_ledger(&last, &bad, 0);
	bad.hash[0] ^= 1;
	assert_int_equal(ledger_store_append(s, &bad), HP_EINVAL);

	/* Too many signatures. */
	next_ledger(&last, &bad, 0);
	bad.nsigs = HP_LEDGER_MAX_SIGS + 1;
	assert_int_equal(ledger_store_append(s, &bad), HP_EINVAL);

	/* Nothing changed, now or after reopening. */
	for (int round = 0; round < 2; round++) {
		assert_int_equal(ledger_store_last(s, &got), 0);
		assert_memory_equal(&got, &last, sizeof(got));
		assert_int_equal(ledger_store_get(s, 4, &got), HP_ENOENT);
		assert_int_equal(ledger_store_get(s, 5, &got), HP_ENOENT);
		assert_int_equal(check_chain(s), 3);
		ledger_store_close(s);
		s = open_store();
	}

	/* And the right ledger still goes in. */
	next_ledger(&last, &bad, 0);
	assert_int_equal(ledger_store_append(s, &bad), 0);
	assert_int_equal(check_chain(s), 4);
	ledger_store_close(s);
}

static void
test_prune(void **state)
{
	static struct hp_ledger got;
	struct ledger_store *s = open_store();
	uint64_t first;

	assert_int_equal(ledger_store_prune(s, 5), 0);	/* empty: no-op */
	assert_int_equal(append_n(s, 20), 20);
	assert_int_equal(ledger_store_prune(s, 0), 0);
	assert_int_equal(ledger_store_first_seq(s, &first), 0);
	assert_int_equal(first, 1);
	assert_int_equal(ledger_store_prune(s, 20), 0);
	assert_int_equal(ledger_store_first_seq(s, &first), 0);
	assert_int_equal(first, 1);

	assert_int_equal(ledger_store_prune(s, 5), 0);
	assert_int_equal(ledger_store_first_seq(s, &first), 0);
	assert_int_equal(first, 16);
	assert_int_equal(ledger_store_get(s, 15, &got), HP_ENOENT);
	assert_int_equal(ledger_store_get(s, 1, &got), HP_ENOENT);
	assert_int_equal(ledger_store_get(s, 16, &got), 0);
	assert_int_equal(check_chain(s), 20);

	/* Appending goes on from the kept tail, across a reopen. */
	assert_int_equal(append_n(s, 3), 23);
	ledger_store_close(s);
	s = open_store();
	assert_int_equal(check_chain(s), 23);
	assert_int_equal(ledger_store_prune(s, 1), 0);
	assert_int_equal(ledger_store_first_seq(s, &first), 0);
	assert_int_equal(first, 23);
	assert_int_equal(check_chain(s), 23);
	assert_int_equal(append_n(s, 1), 24);
	ledger_store_close(s);
}

/* Raw records (a ledger's inputs and outputs) go in with their ledger,
 * come back byte for byte, survive a reopen, and are pruned with it; a
 * refused append stores none. */
static void
test_raw(void **state)
{
	static struct hp_ledger last, l;
	struct ledger_store *s = open_store();
	struct ledger_raw raw[2];
	uint8_t *got;
	size_t len;

	assert_int_equal(ledger_store_last(s, &last), 0);
	for (uint64_t i = 1; i <= 10; i++) {
		char in[32], out[32];
		snprintf(in, sizeof(in), "inputs of %llu", (unsigned long long)i);
		snprintf(out, sizeof(out), "outputs of %llu",
		    (unsigned long long)i);
		raw[0] = (struct ledger_raw){ LEDGER_RAW_INPUTS, in,
		    strlen(in) };
		raw[1] = (struct ledger_raw){ LEDGER_RAW_OUTPUTS, out,
		    i % 2 ? strlen(out) : 0 };
		next_ledger(&last, &l, 1);
		assert_int_equal(ledger_store_append_raw(s, &l, raw, 2), 0);
		last = l;
	}
	/* A refused append (wrong seq) stores no raw record. */
	l.seq = 20;
	raw[0] = (struct ledger_raw){ LEDGER_RAW_INPUTS, "x", 1 };
	assert_int_equal(ledger_store_append_raw(s, &l, raw, 1), HP_EINVAL);
	assert_int_equal(ledger_store_raw_get(s, 20, LEDGER_RAW_INPUTS, &got,
	    &len), HP_ENOENT);
	ledger_store_close(s);
	s = open_store();
	assert_int_equal(ledger_store_raw_get(s, 3, LEDGER_RAW_INPUTS, &got,
	    &len), 0);
	assert_int_equal(len, strlen("inputs of 3"));
	assert_memory_equal(got, "inputs of 3", len);
	free(got);
	assert_int_equal(ledger_store_raw_get(s, 3, LEDGER_RAW_OUTPUTS, &got,
	    &len), 0);
	assert_memory_equal(got, "outputs of 3", len);
	free(got);
	/* len 0: nothing stored. */
	assert_int_equal(ledger_store_raw_get(s, 4, LEDGER_RAW_OUTPUTS, &got,
	    &len), HP_ENOENT);
	assert_null(got);
	assert_int_equal(ledger_store_prune(s, 4), 0);
	assert_int_equal(ledger_store_raw_get(s, 6, LEDGER_RAW_INPUTS, &got,
	    &len), HP_ENOENT);
	assert_int_equal(ledger_store_raw_get(s, 1, LEDGER_RAW_OUTPUTS, &got,
	    &len), HP_ENOENT);
	assert_int_equal(ledger_store_raw_get(s, 7, LEDGER_RAW_INPUTS, &got,
	    &len), 0);
	assert_memory_equal(got, "inputs of 7", len);
	free(got);
	assert_int_equal(check_chain(s), 10);
	ledger_store_close(s);
}

static void
test_meta(void **state)
{
	struct ledger_store *s = open_store();
	char key[LEDGER_STORE_META_KEY_MAX + 2];
	char buf[64];
	size_t len = 0;

	assert_int_equal(ledger_store_meta_get(s, "peers", buf, sizeof(buf),
	    &len), HP_ENOENT);
	assert_int_equal(ledger_store_meta_put(s, "peers", "a:1,b:2", 7), 0);
	assert_int_equal(ledger_store_meta_get(s, "peers", buf, sizeof(buf),
	    &len), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "a:1,b:2", 7);

	/* Too small a buffer: the size is told and buf left alone. */
	memset(buf, 'x', sizeof(buf));
	len = 0;
	assert_int_equal(ledger_store_meta_get(s, "peers", buf, 3, &len),
	    HP_ETOOBIG);
	assert_int_equal(len, 7);
	assert_int_equal(buf[0], 'x');
	assert_int_equal(ledger_store_meta_get(s, "peers", NULL, 0, &len),
	    HP_ETOOBIG);
	assert_int_equal(len, 7);

	/* Replace, empty value, other key. */
	assert_int_equal(ledger_store_meta_put(s, "peers", "c:3", 3), 0);
	assert_int_equal(ledger_store_meta_put(s, "empty", "", 0), 0);
	assert_int_equal(ledger_store_meta_get(s, "empty", NULL, 0, &len), 0);
	assert_int_equal(len, 0);

	/* Key limits. */
	assert_int_equal(ledger_store_meta_put(s, "", "v", 1), HP_EINVAL);
	assert_int_equal(ledger_store_meta_get(s, "", buf, sizeof(buf),
	    &len), HP_EINVAL);
	memset(key, 'k', sizeof(key));
	key[LEDGER_STORE_META_KEY_MAX] = '\0';
	assert_int_equal(ledger_store_meta_put(s, key, "v", 1), 0);
	key[LEDGER_STORE_META_KEY_MAX] = 'k';
	key[LEDGER_STORE_META_KEY_MAX + 1] = '\0';
	assert_int_equal(ledger_store_meta_put(s, key, "v", 1), HP_EINVAL);
	assert_int_equal(ledger_store_meta_put(s, "big", buf, (1U << 20) + 1),
	    HP_ETOOBIG);

	/* Metadata and ledgers live side by side and survive a reopen. */
	assert_int_equal(append_n(s, 2), 2);
	ledger_store_close(s);
	s = open_store();
	assert_int_equal(ledger_store_meta_get(s, "peers", buf, sizeof(buf),
	    &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "c:3", 3);
	key[LEDGER_STORE_META_KEY_MAX] = '\0';
	assert_int_equal(ledger_store_meta_get(s, key, buf, sizeof(buf),
	    &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(check_chain(s), 2);
	ledger_store_close(s);
}

static void
test_mapsize_env(void **state)
{
	const char *bad[] = { "", "abc", "12k", "0", "-5",
	    "99999999999999999999", "68719476737" };
	struct ledger_store *s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("HPD_LEDGER_MAPSIZE", bad[i], 1);
		s = (struct ledger_store *)1;
		assert_int_equal(ledger_store_open(dir, &s), HP_EINVAL);
		assert_null(s);
	}
	setenv("HPD_LEDGER_MAPSIZE", "1000", 1);	/* rounded to a page */
	s = open_store();
	assert_int_equal(append_n(s, 3), 3);
	ledger_store_close(s);
}

static void
test_map_growth(void **state)
{
	struct ledger_store *s;
	uint64_t first;
	char path[192];
	struct stat st;

	setenv("HPD_LEDGER_MAPSIZE", TINY_MAP, 1);
	s = open_store();
	assert_int_equal(append_n(s, MANY), MANY);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > 16 * atol(TINY_MAP));
	assert_int_equal(check_chain(s), MANY);
	ledger_store_close(s);

	/* Reopened with the tiny size, LMDB keeps the file's size. */
	s = open_store();
	assert_int_equal(append_n(s, 100), MANY + 100);
	assert_int_equal(ledger_store_prune(s, 10), 0);	/* several batches */
	assert_int_equal(ledger_store_first_seq(s, &first), 0);
	assert_int_equal(first, MANY + 100 - 9);
	assert_int_equal(check_chain(s), MANY + 100);
	assert_int_equal(append_n(s, 1), MANY + 101);
	ledger_store_close(s);
}

/* The child of the crash test: append for ever, prune now and then. */
static void
crash_child(void)
{
	static struct hp_ledger last, l;
	struct ledger_store *s;

	if (ledger_store_open(dir, &s) != 0 || ledger_store_last(s, &last) != 0)
		_exit(2);
	for (;;) {
		next_ledger(&last, &l, (uint32_t)(last.seq % 7));
		if (ledger_store_append(s, &l) != 0)
			_exit(3);
		last = l;
		if (l.seq % 250 == 0 && ledger_store_prune(s, 200) != 0)
			_exit(4);
	}
}

static void
test_crash_safety(void **state)
{
	const char *e = getenv("LEDGER_CRASH_SEED");
	unsigned int seed = e != NULL ? (unsigned int)strtoul(e, NULL, 10) :
	    (unsigned int)time(NULL) ^ (unsigned int)getpid();
	struct ledger_store *s;
	uint64_t seq, prev = 0;
	struct timespec ts;
	int status;
	pid_t pid;

	printf("crash test seed %u (LEDGER_CRASH_SEED)\n", seed);
	srand(seed);
	setenv("HPD_LEDGER_MAPSIZE", TINY_MAP, 1);
	for (int k = 0; k < KILLS; k++) {
		/* No env is open in this process when it forks. */
		fflush(stdout);
		pid = fork();
		assert_true(pid != -1);
		if (pid == 0)
			crash_child();
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(1 + rand() % 200) * 1000000L;
		nanosleep(&ts, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);

		s = open_store();
		seq = check_chain(s);
		assert_true(seq >= prev);
		printf("kill %d: last ledger %llu\n", k,
		    (unsigned long long)seq);
		prev = seq;
		ledger_store_close(s);
	}
	assert_true(prev > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_empty, setup),
		cmocka_unit_test_setup(test_append_reopen, setup),
		cmocka_unit_test_setup(test_append_refused, setup),
		cmocka_unit_test_setup(test_prune, setup),
		cmocka_unit_test_setup(test_meta, setup),
		cmocka_unit_test_setup(test_raw, setup),
		cmocka_unit_test_setup(test_mapsize_env, setup),
		cmocka_unit_test_setup(test_map_growth, setup),
		cmocka_unit_test_setup(test_crash_safety, setup),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
