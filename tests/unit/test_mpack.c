/*
 * test_mpack.c — the msgpack pre-pass validator and typed accessors
 * (common/mpack.c).
 *
 * Valid objects of every msgpack format are built with msgpack-c's packer
 * and must pass hp_mpack_check(), unpack, and fail at every shorter length.
 * Hand-written byte strings cover what a hostile peer might send: counts
 * and lengths past the end, trailing bytes, deep nesting, the reserved
 * byte 0xc1. The accessor tests check each error code on a map that holds
 * one field of every kind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "err.h"
#include "mpack.h"

typedef void (*pack_fn)(msgpack_packer *pk);

static void
pk_nil(msgpack_packer *pk)
{
	msgpack_pack_nil(pk);
}

static void
pk_true(msgpack_packer *pk)
{
	msgpack_pack_true(pk);
}

static void
pk_false(msgpack_packer *pk)
{
	msgpack_pack_false(pk);
}

static void
pk_fixint(msgpack_packer *pk)
{
	msgpack_pack_uint8(pk, 5);
}

static void
pk_u8(msgpack_packer *pk)
{
	msgpack_pack_uint8(pk, 200);
}

static void
pk_u16(msgpack_packer *pk)
{
	msgpack_pack_uint16(pk, 60000);
}

static void
pk_u32(msgpack_packer *pk)
{
	msgpack_pack_uint32(pk, 4000000000u);
}

static void
pk_u64(msgpack_packer *pk)
{
	msgpack_pack_uint64(pk, UINT64_MAX);
}

static void
pk_negfix(msgpack_packer *pk)
{
	msgpack_pack_int8(pk, -3);
}

static void
pk_i8(msgpack_packer *pk)
{
	msgpack_pack_int8(pk, -100);
}

static void
pk_i16(msgpack_packer *pk)
{
	msgpack_pack_int16(pk, -30000);
}

static void
pk_i32(msgpack_packer *pk)
{
	msgpack_pack_int32(pk, -2000000000);
}

static void
pk_i64(msgpack_packer *pk)
{
	msgpack_pack_int64(pk, INT64_MIN);
}

static void
pk_f32(msgpack_packer *pk)
{
	msgpack_pack_float(pk, 1.5f);
}

static void
pk_f64(msgpack_packer *pk)
{
	msgpack_pack_double(pk, -2.25);
}

static void
pack_str_n(msgpack_packer *pk, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)('a' + i % 26);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
	free(s);
}

static void
pk_fixstr(msgpack_packer *pk)
{
	pack_str_n(pk, 5);
}

static void
pk_str8(msgpack_packer *pk)
{
	pack_str_n(pk, 200);
}

static void
pk_str16(msgpack_packer *pk)
{
	pack_str_n(pk, 1000);
}

static void
pk_str32(msgpack_packer *pk)
{
	pack_str_n(pk, 70000);
}

static void
pk_fixstr_empty(msgpack_packer *pk)
{
	pack_str_n(pk, 0);
}

static void
pack_bin_n(msgpack_packer *pk, size_t n)
{
	uint8_t *b = malloc(n + 1);

	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7);
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, b, n);
	free(b);
}

static void
pk_bin8(msgpack_packer *pk)
{
	pack_bin_n(pk, 3);
}

static void
pk_bin16(msgpack_packer *pk)
{
	pack_bin_n(pk, 300);
}

static void
pk_bin32(msgpack_packer *pk)
{
	pack_bin_n(pk, 70000);
}

static void
pk_fixarray(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 3);
	msgpack_pack_uint8(pk, 1);
	msgpack_pack_nil(pk);
	hp_mpack_pack_cstr(pk, "x");
}

static void
pk_array16(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 20);
	for (int i = 0; i < 20; i++)
		msgpack_pack_int(pk, i - 10);
}

static void
pk_array32(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 70000);
	for (int i = 0; i < 70000; i++)
		msgpack_pack_nil(pk);
}

static void
pk_fixmap(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	msgpack_pack_uint8(pk, 1);
	hp_mpack_pack_cstr(pk, "one");
	hp_mpack_pack_cstr(pk, "two");
	msgpack_pack_array(pk, 0);
}

static void
pk_map16(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 17);
	for (int i = 0; i < 17; i++) {
		msgpack_pack_int(pk, i);
		msgpack_pack_true(pk);
	}
}

static void
pk_map32(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 66000);
	for (int i = 0; i < 66000; i++) {
		msgpack_pack_int(pk, i);
		msgpack_pack_nil(pk);
	}
}

static void
pack_ext_n(msgpack_packer *pk, size_t n)
{
	char *b = malloc(n + 1);

	assert_non_null(b);
	memset(b, 0x5a, n);
	msgpack_pack_ext(pk, n, 42);
	msgpack_pack_ext_body(pk, b, n);
	free(b);
}

static void
pk_fixext1(msgpack_packer *pk)
{
	pack_ext_n(pk, 1);
}

static void
pk_fixext2(msgpack_packer *pk)
{
	pack_ext_n(pk, 2);
}

static void
pk_fixext4(msgpack_packer *pk)
{
	pack_ext_n(pk, 4);
}

static void
pk_fixext8(msgpack_packer *pk)
{
	pack_ext_n(pk, 8);
}

static void
pk_fixext16(msgpack_packer *pk)
{
	pack_ext_n(pk, 16);
}

static void
pk_ext8(msgpack_packer *pk)
{
	pack_ext_n(pk, 5);
}

static void
pk_ext16(msgpack_packer *pk)
{
	pack_ext_n(pk, 300);
}

static void
pk_ext32(msgpack_packer *pk)
{
	pack_ext_n(pk, 70000);
}

static void
pk_nested(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 3);
	msgpack_pack_uint8(pk, 1);
	msgpack_pack_array(pk, 2);
	msgpack_pack_map(pk, 1);
	hp_mpack_pack_cstr(pk, "k");
	msgpack_pack_double(pk, 0.5);
	pack_bin_n(pk, 4);
	msgpack_pack_uint8(pk, 2);
	pack_ext_n(pk, 3);
	hp_mpack_pack_cstr(pk, "s");
	msgpack_pack_map(pk, 0);
}

static const struct {
	const char *name;
	pack_fn pack;
	uint8_t first;		/* expected format byte */
	uint8_t first_mask;	/* bits of the first byte that name the format */
	msgpack_object_type type;
} objs[] = {
	{ "nil", pk_nil, 0xc0, 0xff, MSGPACK_OBJECT_NIL },
	{ "true", pk_true, 0xc3, 0xff, MSGPACK_OBJECT_BOOLEAN },
	{ "false", pk_false, 0xc2, 0xff, MSGPACK_OBJECT_BOOLEAN },
	{ "positive fixint", pk_fixint, 0x00, 0x80,
	    MSGPACK_OBJECT_POSITIVE_INTEGER },
	{ "uint8", pk_u8, 0xcc, 0xff, MSGPACK_OBJECT_POSITIVE_INTEGER },
	{ "uint16", pk_u16, 0xcd, 0xff, MSGPACK_OBJECT_POSITIVE_INTEGER },
	{ "uint32", pk_u32, 0xce, 0xff, MSGPACK_OBJECT_POSITIVE_INTEGER },
	{ "uint64", pk_u64, 0xcf, 0xff, MSGPACK_OBJECT_POSITIVE_INTEGER },
	{ "negative fixint", pk_negfix, 0xe0, 0xe0,
	    MSGPACK_OBJECT_NEGATIVE_INTEGER },
	{ "int8", pk_i8, 0xd0, 0xff, MSGPACK_OBJECT_NEGATIVE_INTEGER },
	{ "int16", pk_i16, 0xd1, 0xff, MSGPACK_OBJECT_NEGATIVE_INTEGER },
	{ "int32", pk_i32, 0xd2, 0xff, MSGPACK_OBJECT_NEGATIVE_INTEGER },
	{ "int64", pk_i64, 0xd3, 0xff, MSGPACK_OBJECT_NEGATIVE_INTEGER },
	{ "float32", pk_f32, 0xca, 0xff, MSGPACK_OBJECT_FLOAT32 },
	{ "float64", pk_f64, 0xcb, 0xff, MSGPACK_OBJECT_FLOAT64 },
	{ "empty fixstr", pk_fixstr_empty, 0xa0, 0xff, MSGPACK_OBJECT_STR },
	{ "fixstr", pk_fixstr, 0xa0, 0xe0, MSGPACK_OBJECT_STR },
	{ "str8", pk_str8, 0xd9, 0xff, MSGPACK_OBJECT_STR },
	{ "str16", pk_str16, 0xda, 0xff, MSGPACK_OBJECT_STR },
	{ "str32", pk_str32, 0xdb, 0xff, MSGPACK_OBJECT_STR },
	{ "bin8", pk_bin8, 0xc4, 0xff, MSGPACK_OBJECT_BIN },
	{ "bin16", pk_bin16, 0xc5, 0xff, MSGPACK_OBJECT_BIN },
	{ "bin32", pk_bin32, 0xc6, 0xff, MSGPACK_OBJECT_BIN },
	{ "fixarray", pk_fixarray, 0x90, 0xf0, MSGPACK_OBJECT_ARRAY },
	{ "array16", pk_array16, 0xdc, 0xff, MSGPACK_OBJECT_ARRAY },
	{ "array32", pk_array32, 0xdd, 0xff, MSGPACK_OBJECT_ARRAY },
	{ "fixmap", pk_fixmap, 0x80, 0xf0, MSGPACK_OBJECT_MAP },
	{ "map16", pk_map16, 0xde, 0xff, MSGPACK_OBJECT_MAP },
	{ "map32", pk_map32, 0xdf, 0xff, MSGPACK_OBJECT_MAP },
	{ "fixext1", pk_fixext1, 0xd4, 0xff, MSGPACK_OBJECT_EXT },
	{ "fixext2", pk_fixext2, 0xd5, 0xff, MSGPACK_OBJECT_EXT },
	{ "fixext4", pk_fixext4, 0xd6, 0xff, MSGPACK_OBJECT_EXT },
	{ "fixext8", pk_fixext8, 0xd7, 0xff, MSGPACK_OBJECT_EXT },
	{ "fixext16", pk_fixext16, 0xd8, 0xff, MSGPACK_OBJECT_EXT },
	{ "ext8", pk_ext8, 0xc7, 0xff, MSGPACK_OBJECT_EXT },
	{ "ext16", pk_ext16, 0xc8, 0xff, MSGPACK_OBJECT_EXT },
	{ "ext32", pk_ext32, 0xc9, 0xff, MSGPACK_OBJECT_EXT },
	{ "nested", pk_nested, 0x80, 0xf0, MSGPACK_OBJECT_MAP },
};
#define NOBJS (sizeof(objs) / sizeof(objs[0]))

static void
build(pack_fn fn, msgpack_sbuffer *sb)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	fn(&pk);
}

/* Every format, as msgpack-c writes it, passes and unpacks. */
static void
test_accepts_every_type(void **state)
{
	for (size_t i = 0; i < NOBJS; i++) {
		msgpack_sbuffer sb;
		msgpack_unpacked res;
		const uint8_t *b;

		build(objs[i].pack, &sb);
		b = (const uint8_t *)sb.data;
		print_message("%s: %zu bytes\n", objs[i].name, sb.size);
		assert_true(sb.size > 0);
		assert_int_equal(b[0] & objs[i].first_mask, objs[i].first);
		assert_int_equal(hp_mpack_check(b, sb.size), 0);
		assert_int_equal(hp_mpack_unpack(b, sb.size, &res), 0);
		assert_int_equal(res.data.type, objs[i].type);
		msgpack_unpacked_destroy(&res);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* The unpacked values are the ones packed (spot checks on large ones). */
static void
test_unpacked_values(void **state)
{
	msgpack_sbuffer sb;
	msgpack_unpacked res;

	build(pk_str32, &sb);
	assert_int_equal(hp_mpack_unpack((uint8_t *)sb.data, sb.size, &res), 0);
	assert_int_equal(res.data.via.str.size, 70000);
	assert_int_equal(res.data.via.str.ptr[69999], 'a' + 69999 % 26);
	msgpack_unpacked_destroy(&res);
	msgpack_sbuffer_destroy(&sb);

	build(pk_map32, &sb);
	assert_int_equal(hp_mpack_unpack((uint8_t *)sb.data, sb.size, &res), 0);
	assert_int_equal(res.data.via.map.size, 66000);
	assert_int_equal(res.data.via.map.ptr[65999].key.via.u64, 65999);
	msgpack_unpacked_destroy(&res);
	msgpack_sbuffer_destroy(&sb);

	build(pk_i64, &sb);
	assert_int_equal(hp_mpack_unpack((uint8_t *)sb.data, sb.size, &res), 0);
	assert_true(res.data.via.i64 == INT64_MIN);
	msgpack_unpacked_destroy(&res);
	msgpack_sbuffer_destroy(&sb);

	build(pk_ext16, &sb);
	assert_int_equal(hp_mpack_unpack((uint8_t *)sb.data, sb.size, &res), 0);
	assert_int_equal(res.data.via.ext.type, 42);
	assert_int_equal(res.data.via.ext.size, 300);
	msgpack_unpacked_destroy(&res);
	msgpack_sbuffer_destroy(&sb);
}

/* Each valid object cut short at every length is refused. */
static void
test_truncated_everywhere(void **state)
{
	for (size_t i = 0; i < NOBJS; i++) {
		msgpack_sbuffer sb;
		uint8_t *copy;
		size_t step;

		build(objs[i].pack, &sb);
		/* Big objects: every length near the ends, a stride between. */
		step = sb.size > 4096 ? 97 : 1;
		for (size_t n = 0; n < sb.size; n += (n < 64 ||
		    n + 64 >= sb.size) ? 1 : step) {
			int r;

			/* An exact-size copy so ASan sees any read past n. */
			copy = malloc(n ? n : 1);
			assert_non_null(copy);
			memcpy(copy, sb.data, n);
			r = hp_mpack_check(copy, n);
			if (r != HP_ETRUNC && r != HP_ETOOBIG)
				fail_msg("%s cut to %zu of %zu bytes: got %d",
				    objs[i].name, n, sb.size, r);
			free(copy);
		}
		msgpack_sbuffer_destroy(&sb);
	}
}

/* One object followed by anything is not one object. */
static void
test_trailing_bytes(void **state)
{
	static const uint8_t two_nils[] = { 0xc0, 0xc0 };
	static const uint8_t map_then_junk[] = { 0x81, 0x01, 0x02, 0xff };

	assert_int_equal(hp_mpack_check(two_nils, 1), 0);
	assert_int_equal(hp_mpack_check(two_nils, 2), HP_EFORMAT);
	assert_int_equal(hp_mpack_check(map_then_junk, 3), 0);
	assert_int_equal(hp_mpack_check(map_then_junk, 4), HP_EFORMAT);

	for (size_t i = 0; i < NOBJS; i++) {
		msgpack_sbuffer sb;
		msgpack_unpacked res;

		build(objs[i].pack, &sb);
		msgpack_sbuffer_write(&sb, "\x00", 1);
		assert_int_equal(hp_mpack_check((uint8_t *)sb.data, sb.size),
		    HP_EFORMAT);
		assert_int_equal(hp_mpack_unpack((uint8_t *)sb.data, sb.size,
		    &res), HP_EFORMAT);
		msgpack_sbuffer_destroy(&sb);
	}
}

static size_t
heap_in_use(void)
{
	return mallinfo2().uordblks;
}

/*
 * A 5-byte array32 header claiming 0xff000000 elements: refused as too
 * big, and hp_mpack_unpack never reaches msgpack-c (which would try to
 * allocate 0xff000000 objects).
 */
static void
test_huge_count_refused(void **state)
{
	static const uint8_t arr[] = { 0xdd, 0xff, 0x00, 0x00, 0x00 };
	static const uint8_t map[] = { 0xdf, 0xff, 0x00, 0x00, 0x00 };
	static const uint8_t arr16[] = { 0xdc, 0xff, 0xff, 0xc0, 0xc0 };
	msgpack_unpacked res;
	size_t before;

	assert_int_equal(hp_mpack_check(arr, sizeof(arr)), HP_ETOOBIG);
	assert_int_equal(hp_mpack_check(map, sizeof(map)), HP_ETOOBIG);
	assert_int_equal(hp_mpack_check(arr16, sizeof(arr16)), HP_ETOOBIG);

	before = heap_in_use();
	assert_int_equal(hp_mpack_unpack(arr, sizeof(arr), &res), HP_ETOOBIG);
	assert_int_equal(hp_mpack_unpack(map, sizeof(map), &res), HP_ETOOBIG);
	assert_int_equal(heap_in_use(), before);
}

/* A map needs two objects per entry: the count is checked against that. */
static void
test_map_count_past_end(void **state)
{
	static const uint8_t fix3[] = { 0x83, 0x01, 0x02 };
	static const uint8_t fix2_3bytes[] = { 0x82, 0x01, 0x02, 0x03 };
	static const uint8_t map16[] = { 0xde, 0x00, 0x10, 0x01, 0x02 };
	static const uint8_t map32[] = { 0xdf, 0x00, 0x00, 0x00, 0x02, 0x01,
	    0x02, 0x03 };
	static const uint8_t ok[] = { 0x82, 0x01, 0x02, 0x03, 0x04 };

	assert_int_equal(hp_mpack_check(fix3, sizeof(fix3)), HP_ETOOBIG);
	assert_int_equal(hp_mpack_check(fix2_3bytes, sizeof(fix2_3bytes)),
	    HP_ETOOBIG);
	assert_int_equal(hp_mpack_check(map16, sizeof(map16)), HP_ETOOBIG);
	assert_int_equal(hp_mpack_check(map32, sizeof(map32)), HP_ETOOBIG);
	assert_int_equal(hp_mpack_check(ok, sizeof(ok)), 0);
}

static size_t
nest(uint8_t *buf, int depth, uint8_t open, uint8_t leaf)
{
	size_t n = 0;

	for (int i = 0; i < depth; i++) {
		buf[n++] = open;
		if (open == 0x81)	/* a map: key first, value nests */
			buf[n++] = 0x01;
	}
	buf[n++] = leaf;
	return n;
}

/* HP_MPACK_MAX_DEPTH containers nest; one more is refused. */
static void
test_nesting_depth(void **state)
{
	uint8_t buf[3 * HP_MPACK_MAX_DEPTH + 8];
	msgpack_unpacked res;
	size_t n;

	assert_int_equal(HP_MPACK_MAX_DEPTH, 16);

	/* 16 arrays around a nil; the innermost array at depth 15. */
	n = nest(buf, HP_MPACK_MAX_DEPTH, 0x91, 0xc0);
	assert_int_equal(hp_mpack_check(buf, n), 0);
	assert_int_equal(hp_mpack_unpack(buf, n, &res), 0);
	msgpack_unpacked_destroy(&res);
	/* 15 arrays around an empty one: still 16 levels. */
	n = nest(buf, HP_MPACK_MAX_DEPTH - 1, 0x91, 0x90);
	assert_int_equal(hp_mpack_check(buf, n), 0);

	/* 17 levels, whether the last is empty or not. */
	n = nest(buf, HP_MPACK_MAX_DEPTH + 1, 0x91, 0xc0);
	assert_int_equal(hp_mpack_check(buf, n), HP_ETOOBIG);
	n = nest(buf, HP_MPACK_MAX_DEPTH, 0x91, 0x90);
	assert_int_equal(hp_mpack_check(buf, n), HP_ETOOBIG);
	n = nest(buf, HP_MPACK_MAX_DEPTH, 0x91, 0x80);
	assert_int_equal(hp_mpack_check(buf, n), HP_ETOOBIG);

	/* The same with maps. */
	n = nest(buf, HP_MPACK_MAX_DEPTH, 0x81, 0xc0);
	assert_int_equal(hp_mpack_check(buf, n), 0);
	n = nest(buf, HP_MPACK_MAX_DEPTH + 1, 0x81, 0xc0);
	assert_int_equal(hp_mpack_check(buf, n), HP_ETOOBIG);

	/* Deep nesting in a later element counts as much as in the first. */
	buf[0] = 0x92;
	buf[1] = 0xc0;
	n = 2 + nest(buf + 2, HP_MPACK_MAX_DEPTH, 0x91, 0xc0);
	assert_int_equal(hp_mpack_check(buf, n), HP_ETOOBIG);
	n = 2 + nest(buf + 2, HP_MPACK_MAX_DEPTH - 1, 0x91, 0xc0);
	assert_int_equal(hp_mpack_check(buf, n), 0);
}

/* str, bin and ext lengths that run past the end. */
static void
test_lengths_past_end(void **state)
{
	static const struct {
		const char *name;
		uint8_t b[8];
		size_t n;
	} cases[] = {
		{ "fixstr 5 with 2", { 0xa5, 'a', 'b' }, 3 },
		{ "str8 16 with 2", { 0xd9, 0x10, 'a', 'b' }, 4 },
		{ "str16 256 with 1", { 0xda, 0x01, 0x00, 'a' }, 4 },
		{ "str32 2^32-1", { 0xdb, 0xff, 0xff, 0xff, 0xff, 'a' }, 6 },
		{ "bin8 5 with 1", { 0xc4, 0x05, 0x00 }, 3 },
		{ "bin16 2 with 1", { 0xc5, 0x00, 0x02, 0x00 }, 4 },
		{ "bin32 2^32-1", { 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00 }, 6 },
		{ "ext8 2 with type only", { 0xc7, 0x02, 0x01 }, 3 },
		{ "ext32 2^32-1", { 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01 }, 6 },
		{ "fixext4 with 3", { 0xd6, 0x01, 0x00, 0x00, 0x00 }, 5 },
		{ "uint32 with 3", { 0xce, 0x00, 0x00, 0x00 }, 4 },
		{ "str16 length cut", { 0xda, 0x00 }, 2 },
		{ "array of a short str", { 0x91, 0xa3, 'a', 'b' }, 4 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = hp_mpack_check(cases[i].b, cases[i].n);
		if (r != HP_ETRUNC)
			fail_msg("%s: got %d, want HP_ETRUNC", cases[i].name, r);
	}
}

/* 0xc1 is reserved: refused alone and inside containers. */
static void
test_reserved_byte(void **state)
{
	static const uint8_t alone[] = { 0xc1 };
	static const uint8_t in_array[] = { 0x92, 0x01, 0xc1 };
	static const uint8_t as_key[] = { 0x81, 0xc1, 0x01 };
	static const uint8_t as_value[] = { 0x81, 0x01, 0xc1 };
	msgpack_unpacked res;

	assert_int_equal(hp_mpack_check(alone, 1), HP_EFORMAT);
	assert_int_equal(hp_mpack_check(in_array, 3), HP_EFORMAT);
	assert_int_equal(hp_mpack_check(as_key, 3), HP_EFORMAT);
	assert_int_equal(hp_mpack_check(as_value, 3), HP_EFORMAT);
	assert_int_equal(hp_mpack_unpack(in_array, 3, &res), HP_EFORMAT);
}

/* Zero bytes is no object. */
static void
test_empty_input(void **state)
{
	uint8_t b = 0xc0;

	assert_int_equal(hp_mpack_check(&b, 0), HP_ETRUNC);
}

/*
 * The accessor fixture: {1: 42, 2: "hello", 3: true, 4: -1, 5: "a\0b",
 * 6: nil, 7: 40 x "x", 8: 1.5, 9: "", "s": 7, 10: false}.
 */
struct acc {
	msgpack_sbuffer sb;
	msgpack_unpacked res;
	const msgpack_object *map;
};

static int
acc_setup(void **state)
{
	struct acc *a = calloc(1, sizeof(*a));
	msgpack_packer pk;

	if (a == NULL)
		return -1;
	msgpack_sbuffer_init(&a->sb);
	msgpack_packer_init(&pk, &a->sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 11);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_uint8(&pk, 42);
	msgpack_pack_uint8(&pk, 2);
	hp_mpack_pack_cstr(&pk, "hello");
	msgpack_pack_uint8(&pk, 3);
	msgpack_pack_true(&pk);
	msgpack_pack_uint8(&pk, 4);
	msgpack_pack_int8(&pk, -1);
	msgpack_pack_uint8(&pk, 5);
	msgpack_pack_str(&pk, 3);
	msgpack_pack_str_body(&pk, "a\0b", 3);
	msgpack_pack_uint8(&pk, 6);
	msgpack_pack_nil(&pk);
	msgpack_pack_uint8(&pk, 7);
	hp_mpack_pack_cstr(&pk, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	msgpack_pack_uint8(&pk, 8);
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_uint8(&pk, 9);
	hp_mpack_pack_cstr(&pk, "");
	hp_mpack_pack_cstr(&pk, "s");
	msgpack_pack_uint8(&pk, 7);
	msgpack_pack_uint8(&pk, 10);
	msgpack_pack_false(&pk);
	if (hp_mpack_unpack((uint8_t *)a->sb.data, a->sb.size, &a->res) != 0) {
		msgpack_sbuffer_destroy(&a->sb);
		free(a);
		return -1;
	}
	a->map = &a->res.data;
	*state = a;
	return 0;
}

static int
acc_teardown(void **state)
{
	struct acc *a = *state;

	msgpack_unpacked_destroy(&a->res);
	msgpack_sbuffer_destroy(&a->sb);
	free(a);
	return 0;
}

static void
test_u64(void **state)
{
	struct acc *a = *state;
	uint64_t v = 99;

	assert_int_equal(hp_mpack_u64(a->map, 1, &v), 0);
	assert_int_equal(v, 42);
	v = 99;
	assert_int_equal(hp_mpack_u64(a->map, 2, &v), HP_EFORMAT);
	assert_int_equal(hp_mpack_u64(a->map, 3, &v), HP_EFORMAT);
	assert_int_equal(hp_mpack_u64(a->map, 4, &v), HP_EFORMAT);
	assert_int_equal(hp_mpack_u64(a->map, 6, &v), HP_EFORMAT);
	assert_int_equal(hp_mpack_u64(a->map, 8, &v), HP_EFORMAT);
	assert_int_equal(hp_mpack_u64(a->map, 99, &v), HP_ENOENT);
	assert_int_equal(v, 99);
	/* The string key "s" is not the integer key of anything. */
	assert_int_equal(hp_mpack_u64(a->map, 's', &v), HP_ENOENT);
}

static void
test_str(void **state)
{
	struct acc *a = *state;
	char out[32], six[6], five[5];

	memset(out, 'z', sizeof(out));
	assert_int_equal(hp_mpack_str(a->map, 2, out, sizeof(out)), 0);
	assert_string_equal(out, "hello");
	assert_int_equal(hp_mpack_str(a->map, 2, six, sizeof(six)), 0);
	assert_string_equal(six, "hello");
	assert_int_equal(hp_mpack_str(a->map, 2, five, sizeof(five)),
	    HP_ETOOBIG);
	assert_int_equal(hp_mpack_str(a->map, 7, out, sizeof(out)),
	    HP_ETOOBIG);
	assert_int_equal(hp_mpack_str(a->map, 9, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(hp_mpack_str(a->map, 5, out, sizeof(out)),
	    HP_EFORMAT);
	assert_int_equal(hp_mpack_str(a->map, 1, out, sizeof(out)),
	    HP_EFORMAT);
	assert_int_equal(hp_mpack_str(a->map, 6, out, sizeof(out)),
	    HP_EFORMAT);
	assert_int_equal(hp_mpack_str(a->map, 99, out, sizeof(out)),
	    HP_ENOENT);
}

static void
test_bool(void **state)
{
	struct acc *a = *state;
	bool b = false;

	assert_int_equal(hp_mpack_bool(a->map, 3, &b), 0);
	assert_true(b);
	assert_int_equal(hp_mpack_bool(a->map, 10, &b), 0);
	assert_false(b);
	assert_int_equal(hp_mpack_bool(a->map, 1, &b), HP_EFORMAT);
	assert_int_equal(hp_mpack_bool(a->map, 2, &b), HP_EFORMAT);
	assert_int_equal(hp_mpack_bool(a->map, 6, &b), HP_EFORMAT);
	assert_int_equal(hp_mpack_bool(a->map, 99, &b), HP_ENOENT);
}

/* Lookups in something that is not a map find nothing. */
static void
test_not_a_map(void **state)
{
	struct acc *a = *state;
	const msgpack_object *s = hp_mpack_get(a->map, 2);
	uint64_t v;
	bool b;
	char out[8];

	assert_non_null(s);
	assert_int_equal(s->type, MSGPACK_OBJECT_STR);
	assert_null(hp_mpack_get(s, 1));
	assert_null(hp_mpack_get(NULL, 1));
	assert_null(hp_mpack_get_s(s, "s"));
	assert_null(hp_mpack_get_s(NULL, "s"));
	assert_int_equal(hp_mpack_u64(s, 1, &v), HP_ENOENT);
	assert_int_equal(hp_mpack_bool(s, 1, &b), HP_ENOENT);
	assert_int_equal(hp_mpack_str(s, 1, out, sizeof(out)), HP_ENOENT);
}

static void
test_get_s(void **state)
{
	struct acc *a = *state;
	const msgpack_object *o;

	o = hp_mpack_get_s(a->map, "s");
	assert_non_null(o);
	assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(o->via.u64, 7);
	assert_null(hp_mpack_get_s(a->map, ""));
	assert_null(hp_mpack_get_s(a->map, "ss"));
	/* Integer key 1 is not the string "1". */
	assert_null(hp_mpack_get_s(a->map, "1"));
}

/* hp_mpack_pack_cstr writes a str that reads back unchanged. */
static void
test_pack_cstr(void **state)
{
	static const char *strs[] = { "", "a", "role-consensus",
	    "0123456789012345678901234567890123456789" };

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_unpacked res;
		char out[64];

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 1);
		msgpack_pack_uint8(&pk, 1);
		hp_mpack_pack_cstr(&pk, strs[i]);
		assert_int_equal(hp_mpack_unpack((uint8_t *)sb.data, sb.size,
		    &res), 0);
		assert_int_equal(hp_mpack_str(&res.data, 1, out, sizeof(out)),
		    0);
		assert_string_equal(out, strs[i]);
		msgpack_unpacked_destroy(&res);
		msgpack_sbuffer_destroy(&sb);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_every_type),
		cmocka_unit_test(test_unpacked_values),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_huge_count_refused),
		cmocka_unit_test(test_map_count_past_end),
		cmocka_unit_test(test_nesting_depth),
		cmocka_unit_test(test_lengths_past_end),
		cmocka_unit_test(test_reserved_byte),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test_setup_teardown(test_u64, acc_setup,
		    acc_teardown),
		cmocka_unit_test_setup_teardown(test_str, acc_setup,
		    acc_teardown),
		cmocka_unit_test_setup_teardown(test_bool, acc_setup,
		    acc_teardown),
		cmocka_unit_test_setup_teardown(test_not_a_map, acc_setup,
		    acc_teardown),
		cmocka_unit_test_setup_teardown(test_get_s, acc_setup,
		    acc_teardown),
		cmocka_unit_test(test_pack_cstr),
	};

	return cmocka_run_group_tests_name("mpack", tests, NULL, NULL);
}
