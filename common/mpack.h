/*
 * mpack.h — bounds checks for msgpack bytes from another process, and small
 * typed accessors over msgpack-c objects.
 *
 * msgpack-c's C unpacker trusts element counts: a 5-byte array header can
 * make it allocate gigabytes. hp_mpack_check() walks exactly one object and
 * rejects it unless every count and length fits in the bytes that remain,
 * nesting stays within HP_MPACK_MAX_DEPTH, and the object ends exactly at
 * len. Only then is the buffer handed to msgpack_unpack_next(), and
 * hp_mpack_unpack() does both. Unpacked str/bin objects point into the
 * caller's buffer, which must outlive them.
 */
#ifndef HP_MPACK_H
#define HP_MPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define HP_MPACK_MAX_DEPTH 16

/* 0 when buf[0..len) is exactly one well-bounded msgpack object. */
int hp_mpack_check(const uint8_t *buf, size_t len);

/* hp_mpack_check + msgpack_unpack_next; on 0, *obj is valid until
 * msgpack_unpacked_destroy(res). */
int hp_mpack_unpack(const uint8_t *buf, size_t len, msgpack_unpacked *res);

/* Map lookup by unsigned integer key; NULL when absent or obj is no map. */
const msgpack_object *hp_mpack_get(const msgpack_object *map, uint64_t key);
/* Map lookup by string key. */
const msgpack_object *hp_mpack_get_s(const msgpack_object *map, const char *key);

/* Typed reads; each returns HP_EFORMAT when the type is wrong and
 * HP_ENOENT when the key is missing. */
int hp_mpack_u64(const msgpack_object *map, uint64_t key, uint64_t *out);
int hp_mpack_bool(const msgpack_object *map, uint64_t key, bool *out);
/* Copies a str into out (NUL-terminated); HP_ETOOBIG when it does not fit. */
int hp_mpack_str(const msgpack_object *map, uint64_t key, char *out,
    size_t outsize);

/* Pack a NUL-terminated string. */
void hp_mpack_pack_cstr(msgpack_packer *pk, const char *s);
/* A bin of n bytes (p may be NULL when n is 0). */
void hp_mpack_pack_bin(msgpack_packer *pk, const void *p, size_t n);

/* One "key": value pair of a map with string keys (hpctl show replies). */
void hp_mpack_kv_str(msgpack_packer *pk, const char *k, const char *v);	/* NULL → nil */
void hp_mpack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v);
void hp_mpack_kv_bool(msgpack_packer *pk, const char *k, bool v);
/* n bytes as lower-case hex (n <= 64). */
void hp_mpack_kv_hex(msgpack_packer *pk, const char *k, const uint8_t *h,
    size_t n);

#endif
