/*
 * mpack.c — the msgpack pre-pass validator and typed accessors (mpack.h).
 */
#include "mpack.h"
#include "err.h"

#include <string.h>

struct cursor {
	const uint8_t *p;
	size_t left;
};

static int
take(struct cursor *c, size_t n, const uint8_t **out)
{
	if (n > c->left)
		return HP_ETRUNC;
	if (out != NULL)
		*out = c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

static int
read_be(struct cursor *c, size_t n, uint64_t *v)
{
	const uint8_t *b;
	int r;

	if ((r = take(c, n, &b)) != 0)
		return r;
	*v = 0;
	for (size_t i = 0; i < n; i++)
		*v = (*v << 8) | b[i];
	return 0;
}

static int check_obj(struct cursor *c, int depth);

static int
check_container(struct cursor *c, uint64_t n, int per_elem, int depth)
{
	int r;

	/* Every element needs at least one byte: a count above the bytes
	 * left is a lie, and is refused before msgpack-c allocates for it. */
	if (n > c->left || n * (uint64_t)per_elem > c->left)
		return HP_ETOOBIG;
	if (depth >= HP_MPACK_MAX_DEPTH)
		return HP_ETOOBIG;
	for (uint64_t i = 0; i < n * (uint64_t)per_elem; i++)
		if ((r = check_obj(c, depth + 1)) != 0)
			return r;
	return 0;
}

static int
check_obj(struct cursor *c, int depth)
{
	const uint8_t *b;
	uint64_t n;
	int r;

	if ((r = take(c, 1, &b)) != 0)
		return r;
	uint8_t t = b[0];

	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
		return 0;
	if (t >= 0xa0 && t <= 0xbf)
		return take(c, t & 0x1f, NULL);
	if (t >= 0x90 && t <= 0x9f)
		return check_container(c, t & 0x0f, 1, depth);
	if (t >= 0x80 && t <= 0x8f)
		return check_container(c, t & 0x0f, 2, depth);

	switch (t) {
	case 0xcc: case 0xd0: return take(c, 1, NULL);
	case 0xcd: case 0xd1: return take(c, 2, NULL);
	case 0xce: case 0xd2: case 0xca: return take(c, 4, NULL);
	case 0xcf: case 0xd3: case 0xcb: return take(c, 8, NULL);
	case 0xd9: case 0xc4:
		if ((r = read_be(c, 1, &n)) != 0) return r;
		return take(c, n, NULL);
	case 0xda: case 0xc5:
		if ((r = read_be(c, 2, &n)) != 0) return r;
		return take(c, n, NULL);
	case 0xdb: case 0xc6:
		if ((r = read_be(c, 4, &n)) != 0) return r;
		return take(c, n, NULL);
	case 0xdc:
		if ((r = read_be(c, 2, &n)) != 0) return r;
		return check_container(c, n, 1, depth);
	case 0xdd:
		if ((r = read_be(c, 4, &n)) != 0) return r;
		return check_container(c, n, 1, depth);
	case 0xde:
		if ((r = read_be(c, 2, &n)) != 0) return r;
		return check_container(c, n, 2, depth);
	case 0xdf:
		if ((r = read_be(c, 4, &n)) != 0) return r;
		return check_container(c, n, 2, depth);
	case 0xd4: return take(c, 2, NULL);	/* fixext 1: type + 1 */
	case 0xd5: return take(c, 3, NULL);
	case 0xd6: return take(c, 5, NULL);
	case 0xd7: return take(c, 9, NULL);
	case 0xd8: return take(c, 17, NULL);
	case 0xc7:
		if ((r = read_be(c, 1, &n)) != 0) return r;
		return take(c, n + 1, NULL);
	case 0xc8:
		if ((r = read_be(c, 2, &n)) != 0) return r;
		return take(c, n + 1, NULL);
	case 0xc9:
		if ((r = read_be(c, 4, &n)) != 0) return r;
		return take(c, n + 1, NULL);
	default:
		return HP_EFORMAT;	/* 0xc1 is never used */
	}
}

int
hp_mpack_check(const uint8_t *buf, size_t len)
{
	struct cursor c = { buf, len };
	int r;

	if ((r = check_obj(&c, 0)) != 0)
		return r;
	return c.left == 0 ? 0 : HP_EFORMAT;
}

int
hp_mpack_unpack(const uint8_t *buf, size_t len, msgpack_unpacked *res)
{
	size_t off = 0;
	int r;

	if ((r = hp_mpack_check(buf, len)) != 0)
		return r;
	msgpack_unpacked_init(res);
	if (msgpack_unpack_next(res, (const char *)buf, len, &off) !=
	    MSGPACK_UNPACK_SUCCESS || off != len) {
		msgpack_unpacked_destroy(res);
		return HP_EFORMAT;
	}
	return 0;
}

const msgpack_object *
hp_mpack_get(const msgpack_object *map, uint64_t key)
{
	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    kv->key.via.u64 == key)
			return &kv->val;
	}
	return NULL;
}

const msgpack_object *
hp_mpack_get_s(const msgpack_object *map, const char *key)
{
	size_t klen = strlen(key);

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == klen &&
		    memcmp(kv->key.via.str.ptr, key, klen) == 0)
			return &kv->val;
	}
	return NULL;
}

int
hp_mpack_u64(const msgpack_object *map, uint64_t key, uint64_t *out)
{
	const msgpack_object *o = hp_mpack_get(map, key);

	if (o == NULL)
		return HP_ENOENT;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return HP_EFORMAT;
	*out = o->via.u64;
	return 0;
}

int
hp_mpack_bool(const msgpack_object *map, uint64_t key, bool *out)
{
	const msgpack_object *o = hp_mpack_get(map, key);

	if (o == NULL)
		return HP_ENOENT;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return HP_EFORMAT;
	*out = o->via.boolean;
	return 0;
}

int
hp_mpack_str(const msgpack_object *map, uint64_t key, char *out,
    size_t outsize)
{
	const msgpack_object *o = hp_mpack_get(map, key);

	if (o == NULL)
		return HP_ENOENT;
	if (o->type != MSGPACK_OBJECT_STR)
		return HP_EFORMAT;
	if (o->via.str.size >= outsize)
		return HP_ETOOBIG;
	/* An empty str may have a NULL pointer. */
	if (o->via.str.size > 0) {
		if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
			return HP_EFORMAT;
		memcpy(out, o->via.str.ptr, o->via.str.size);
	}
	out[o->via.str.size] = '\0';
	return 0;
}

void
hp_mpack_pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
	msgpack_pack_bin(pk, n);
	if (n > 0)
		msgpack_pack_bin_body(pk, p, n);
}

void
hp_mpack_pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void
hp_mpack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	hp_mpack_pack_cstr(pk, k);
	if (v == NULL)
		msgpack_pack_nil(pk);
	else
		hp_mpack_pack_cstr(pk, v);
}

void
hp_mpack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	hp_mpack_pack_cstr(pk, k);
	msgpack_pack_uint64(pk, v);
}

void
hp_mpack_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
	hp_mpack_pack_cstr(pk, k);
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void
hp_mpack_kv_hex(msgpack_packer *pk, const char *k, const uint8_t *h, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char hex[2 * 64 + 1];

	if (n > 64)
		n = 64;
	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[h[i] >> 4];
		hex[2 * i + 1] = digits[h[i] & 15];
	}
	hex[2 * n] = '\0';
	hp_mpack_kv_str(pk, k, hex);
}
