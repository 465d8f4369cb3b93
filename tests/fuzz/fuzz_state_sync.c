/*
 * fuzz_state_sync — the state sync engine's decoders of peer data: the
 * request server (serve(): DIR, FILE and CHUNKS requests answered from a
 * real store) and the directory-entry decoder of responses
 * (take_entry()). The first input byte picks the target; the rest is the
 * msgpack payload as it would arrive from a peer.
 *
 * sync.c is included so that its static decoders can be reached.
 */
#include "../../workers/state/sync.c"

#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t from[32] = { 1 };

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/hpd-fuzz-sync.XXXXXX";
	static const uint8_t zeros[SFS_CHUNK];
	static uint8_t buf[2 * SFS_CHUNK + 100];
	struct sfs_view *v;
	struct sfs_attr d, f, l;

	log_set_level(HP_LOG_ERR);
	if (mkdtemp(dir) == NULL || sfs_open(dir, &sy.store) != 0 ||
	    sfs_begin_rw(sy.store, &v) != 0)
		abort();
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 31);
	if (sfs_mkdir(v, SFS_STATE_INO, "d", 0755, &d) != 0 ||
	    sfs_create(v, d.ino, "f", 0644, &f) != 0 ||
	    sfs_write(v, f.ino, 0, sizeof(buf), buf) != (ssize_t)sizeof(buf) ||
	    sfs_symlink(v, SFS_STATE_INO, "l", "d/f", &l) != 0 ||
	    sfs_commit(v, NULL, NULL) != 0)
		abort();
	hp_hash(zeros, SFS_CHUNK, sy.zchunk);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_unpacked res;
	struct item it;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		serve(from, data + 1, size - 1);
		return 0;
	}
	if (hp_mpack_unpack(data + 1, size - 1, &res) != 0)
		return 0;
	memset(&it, 0, sizeof(it));
	if (res.data.type == MSGPACK_OBJECT_ARRAY)
		for (uint32_t i = 0; i < res.data.via.array.size; i++)
			if (take_entry(&it, &res.data.via.array.ptr[i]) != 0)
				break;
	for (size_t i = 0; i < it.nents; i++) {
		free(it.ents[i].name);
		free(it.ents[i].target);
	}
	free(it.ents);
	msgpack_unpacked_destroy(&res);
	return 0;
}
