/*
 * fuzz_mpack.c — libFuzzer target for the msgpack pre-pass validator
 * (common/mpack.c).
 *
 * Whatever hp_mpack_check() accepts must unpack with msgpack-c, consume
 * every byte, nest no deeper than HP_MPACK_MAX_DEPTH, and keep its str and
 * bin bytes inside the input; the object is then walked with the typed
 * accessors. What it refuses as truncated or malformed, msgpack-c must
 * not take for one whole object either (such input announces no count
 * past its own length, so msgpack-c may safely be asked; the two may
 * name the fault differently: msgpack-c calls an ext32 of length 2^32-1 a
 * parse error, not a truncation). Seeds are in tests/fuzz/corpus/mpack/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "err.h"
#include "mpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *in_lo, *in_hi;

static void
inside(const char *p, size_t n)
{
	if (n > 0 && ((const uint8_t *)p < in_lo ||
	    (const uint8_t *)p + n > in_hi))
		abort();
}

static size_t
walk(const msgpack_object *o, int depth)
{
	size_t nodes = 1;
	char s[16];
	uint64_t u;
	bool b;

	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		inside(o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		inside(o->via.bin.ptr, o->via.bin.size);
		break;
	case MSGPACK_OBJECT_EXT:
		inside(o->via.ext.ptr, o->via.ext.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		if (depth >= HP_MPACK_MAX_DEPTH)
			abort();
		for (uint32_t i = 0; i < o->via.array.size; i++)
			nodes += walk(&o->via.array.ptr[i], depth + 1);
		break;
	case MSGPACK_OBJECT_MAP:
		if (depth >= HP_MPACK_MAX_DEPTH)
			abort();
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			nodes += walk(&o->via.map.ptr[i].key, depth + 1);
			nodes += walk(&o->via.map.ptr[i].val, depth + 1);
		}
		for (uint64_t k = 0; k < 4; k++) {
			(void)hp_mpack_u64(o, k, &u);
			(void)hp_mpack_bool(o, k, &b);
			if (hp_mpack_str(o, k, s, sizeof(s)) == 0 &&
			    strlen(s) >= sizeof(s))
				abort();
		}
		(void)hp_mpack_get_s(o, "a");
		break;
	default:
		break;
	}
	return nodes;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_unpacked res;
	size_t off = 0;
	int r;

	r = hp_mpack_check(data, size);
	if (r == 0) {
		if (hp_mpack_unpack(data, size, &res) != 0)
			abort();
		in_lo = data;
		in_hi = data + size;
		/* Every object takes at least one input byte. */
		if (walk(&res.data, 0) > size)
			abort();
		msgpack_unpacked_destroy(&res);
		return 0;
	}
	if (r != HP_ETRUNC && r != HP_ETOOBIG && r != HP_EFORMAT)
		abort();
	if (hp_mpack_unpack(data, size, &res) != r)
		abort();
	if (r == HP_ETRUNC || r == HP_EFORMAT) {
		msgpack_unpacked_init(&res);
		if (msgpack_unpack_next(&res, (const char *)data, size, &off) ==
		    MSGPACK_UNPACK_SUCCESS && off == size)
			abort();
		msgpack_unpacked_destroy(&res);
	}
	return 0;
}
