/*
 * wire.c — peer frames as bytes (wire.h): the reader that checks a frame's
 * length against its type's limit before allocating, and the msgpack codecs
 * of HELLO, REQUIREMENT and the peer list.
 */
#include "wire.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mpack.h"
#include "proto.h"

#define HELLO_MAX	512
#define SMALL_MAX	32
#define LIST_RES_MAX	(32u * 1024)

bool
wire_type_known(uint8_t type)
{
	return wire_type_max(type) != 0;
}

uint32_t
wire_type_max(uint8_t type)
{
	switch (type) {
	case WIRE_HELLO:
		return HELLO_MAX;
	case WIRE_REQUIREMENT:
	case WIRE_LIST_REQ:
	case WIRE_PING:
		return SMALL_MAX;
	case WIRE_LIST_RES:
		return LIST_RES_MAX;
	default:
		if (type >= 1 && type <= HP_PT_MAX)
			return hp_peer_ptype_max(type);
		return 0;
	}
}

const char *
wire_type_name(uint8_t type)
{
	switch (type) {
	case WIRE_HELLO: return "HELLO";
	case WIRE_REQUIREMENT: return "REQUIREMENT";
	case WIRE_LIST_REQ: return "PEERLIST_REQ";
	case WIRE_LIST_RES: return "PEERLIST_RES";
	case WIRE_PING: return "PING";
	case HP_PT_PROPOSAL: return "PROPOSAL";
	case HP_PT_LEDGER_REQ: return "LEDGER_REQ";
	case HP_PT_LEDGER_RES: return "LEDGER_RES";
	case HP_PT_STATE_REQ: return "STATE_REQ";
	case HP_PT_STATE_RES: return "STATE_RES";
	case HP_PT_INPUT: return "INPUT";
	case HP_PT_NPL: return "NPL";
	case HP_PT_OUTSIG: return "OUTSIG";
	default: return "unknown";
	}
}

void
wire_reader_init(struct wire_reader *r, uint64_t max_msg)
{
	memset(r, 0, sizeof(*r));
	r->max_msg = max_msg;
}

void
wire_reader_free(struct wire_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->hlen = r->got = 0;
	r->done = false;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

void
wire_hdr_encode(uint8_t hdr[WIRE_HDR_LEN], uint8_t type, uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	hdr[4] = type;
}

/* The header is complete: check the length and prepare for the payload. */
static int
start_payload(struct wire_reader *r)
{
	uint64_t limit;
	bool known;

	r->len = get_be32(r->hdr);
	r->type = r->hdr[4];
	known = wire_type_known(r->type);
	limit = known ? wire_type_max(r->type) : WIRE_UNKNOWN_MAX;
	if (r->max_msg != 0 && limit > r->max_msg)
		limit = r->max_msg;
	if (r->len > limit)
		return HP_ETOOBIG;
	r->skip = !known || (r->hello_only && r->type != WIRE_HELLO);
	r->got = 0;
	if (!r->skip && r->len > 0 && (r->buf = malloc(r->len)) == NULL)
		return HP_ENOMEM;
	return 0;
}

int
wire_reader_next(struct wire_reader *r, const uint8_t **p, size_t *n,
    struct wire_frame *f)
{
	static const uint8_t empty[1];
	size_t take;
	int rc;

	if (r->done) {
		free(r->buf);
		r->buf = NULL;
		r->hlen = r->got = 0;
		r->done = false;
	}
	if (r->hlen < WIRE_HDR_LEN) {
		take = WIRE_HDR_LEN - r->hlen;
		if (take > *n)
			take = *n;
		memcpy(r->hdr + r->hlen, *p, take);
		r->hlen += take;
		*p += take;
		*n -= take;
		if (r->hlen < WIRE_HDR_LEN)
			return 0;
		if ((rc = start_payload(r)) != 0)
			return rc;
	}
	if (r->got < r->len) {
		take = r->len - r->got;
		if (take > *n)
			take = *n;
		if (!r->skip)
			memcpy(r->buf + r->got, *p, take);
		r->got += take;
		*p += take;
		*n -= take;
		if (r->got < r->len)
			return 0;
	}
	f->type = r->type;
	f->len = r->len;
	f->skipped = r->skip;
	f->payload = r->skip ? NULL : r->buf != NULL ? r->buf : empty;
	r->done = true;
	return 1;
}

/* Append a frame header now and patch its length once the body is in. */
static size_t
frame_begin(msgpack_sbuffer *sb, uint8_t type)
{
	uint8_t hdr[WIRE_HDR_LEN];
	size_t at = sb->size;

	wire_hdr_encode(hdr, type, 0);
	msgpack_sbuffer_write(sb, (const char *)hdr, sizeof(hdr));
	return at;
}

static void
frame_end(msgpack_sbuffer *sb, size_t at)
{
	uint8_t *hdr = (uint8_t *)sb->data + at;

	wire_hdr_encode(hdr, hdr[4], (uint32_t)(sb->size - at - WIRE_HDR_LEN));
}


void
wire_hello_encode(msgpack_sbuffer *sb, const struct wire_hello *h)
{
	msgpack_packer pk;
	size_t at = frame_begin(sb, WIRE_HELLO);

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 6);
	msgpack_pack_uint32(&pk, 1);
	hp_mpack_pack_cstr(&pk, h->contract_id);
	msgpack_pack_uint32(&pk, 2);
	msgpack_pack_uint64(&pk, h->version);
	msgpack_pack_uint32(&pk, 3);
	hp_mpack_pack_bin(&pk, h->pk, sizeof(h->pk));
	msgpack_pack_uint32(&pk, 4);
	hp_mpack_pack_bin(&pk, h->sig, sizeof(h->sig));
	msgpack_pack_uint32(&pk, 5);
	msgpack_pack_uint32(&pk, h->listen_port);
	msgpack_pack_uint32(&pk, 6);
	if (h->need_forwarding)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	frame_end(sb, at);
}

void
wire_requirement_encode(msgpack_sbuffer *sb, bool need_forwarding)
{
	msgpack_packer pk;
	size_t at = frame_begin(sb, WIRE_REQUIREMENT);

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_uint32(&pk, 1);
	if (need_forwarding)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	frame_end(sb, at);
}

void
wire_list_encode(msgpack_sbuffer *sb, const struct wire_addr *a, size_t n)
{
	char buf[WIRE_HOST_MAX + 8];
	msgpack_packer pk;
	size_t at = frame_begin(sb, WIRE_LIST_RES);

	if (n > WIRE_LIST_MAX)
		n = WIRE_LIST_MAX;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_array(&pk, n);
	for (size_t i = 0; i < n; i++) {
		wire_addr_format(&a[i], buf, sizeof(buf));
		hp_mpack_pack_cstr(&pk, buf);
	}
	frame_end(sb, at);
}

void
wire_empty_encode(msgpack_sbuffer *sb, uint8_t type)
{
	msgpack_packer pk;
	size_t at = frame_begin(sb, type);

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 0);
	frame_end(sb, at);
}

/* A bin field of exactly len bytes. */
static int
get_bin(const msgpack_object *map, uint64_t key, uint8_t *out, size_t len)
{
	const msgpack_object *o = hp_mpack_get(map, key);

	if (o == NULL)
		return HP_ENOENT;
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != len)
		return HP_EFORMAT;
	memcpy(out, o->via.bin.ptr, len);
	return 0;
}

static int
unpack_map(const uint8_t *p, size_t len, msgpack_unpacked *res)
{
	int rc;

	if (len == 0)
		return HP_EFORMAT;
	msgpack_unpacked_init(res);
	if ((rc = hp_mpack_unpack(p, len, res)) != 0) {
		msgpack_unpacked_destroy(res);
		return rc < 0 ? rc : HP_EFORMAT;
	}
	if (res->data.type != MSGPACK_OBJECT_MAP) {
		msgpack_unpacked_destroy(res);
		return HP_EFORMAT;
	}
	return 0;
}

int
wire_hello_decode(const uint8_t *p, size_t len, struct wire_hello *h)
{
	msgpack_unpacked res;
	const msgpack_object *m;
	uint64_t port = 0;
	int rc;

	memset(h, 0, sizeof(*h));
	if ((rc = unpack_map(p, len, &res)) != 0)
		return rc;
	m = &res.data;
	if ((rc = hp_mpack_str(m, 1, h->contract_id,
	    sizeof(h->contract_id))) != 0 ||
	    (rc = hp_mpack_u64(m, 2, &h->version)) != 0 ||
	    (rc = get_bin(m, 3, h->pk, sizeof(h->pk))) != 0 ||
	    (rc = get_bin(m, 4, h->sig, sizeof(h->sig))) != 0 ||
	    (rc = hp_mpack_u64(m, 5, &port)) != 0 ||
	    (rc = hp_mpack_bool(m, 6, &h->need_forwarding)) != 0)
		goto out;
	if (port > 65535) {
		rc = HP_EFORMAT;
		goto out;
	}
	h->listen_port = (uint16_t)port;
out:
	msgpack_unpacked_destroy(&res);
	return rc == HP_ENOENT ? HP_EFORMAT : rc;
}

int
wire_requirement_decode(const uint8_t *p, size_t len, bool *need)
{
	msgpack_unpacked res;
	int rc;

	if ((rc = unpack_map(p, len, &res)) != 0)
		return rc;
	rc = hp_mpack_bool(&res.data, 1, need);
	msgpack_unpacked_destroy(&res);
	return rc == HP_ENOENT ? HP_EFORMAT : rc;
}

int
wire_empty_decode(const uint8_t *p, size_t len)
{
	msgpack_unpacked res;
	int rc;

	if ((rc = unpack_map(p, len, &res)) != 0)
		return rc;
	msgpack_unpacked_destroy(&res);
	return 0;
}

int
wire_list_decode(const uint8_t *p, size_t len, struct wire_addr *out,
    size_t max, size_t *n, size_t *skipped)
{
	const msgpack_object *arr;
	msgpack_unpacked res;
	int rc;

	*n = *skipped = 0;
	if ((rc = unpack_map(p, len, &res)) != 0)
		return rc;
	arr = hp_mpack_get(&res.data, 1);
	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY) {
		rc = HP_EFORMAT;
		goto out;
	}
	if (arr->via.array.size > WIRE_LIST_MAX) {
		rc = HP_ETOOBIG;
		goto out;
	}
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *o = &arr->via.array.ptr[i];

		if (*n >= max || o->type != MSGPACK_OBJECT_STR ||
		    wire_addr_parse(o->via.str.ptr, o->via.str.size,
		    &out[*n], true) != 0) {
			(*skipped)++;
			continue;
		}
		(*n)++;
	}
out:
	msgpack_unpacked_destroy(&res);
	return rc;
}

bool
wire_host_numeric(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1;
}

static bool
host_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
	    c == ':' || c == '%';
}

int
wire_addr_parse(const char *s, size_t len, struct wire_addr *a,
    bool numeric_only)
{
	size_t colon, hlen, i;
	const char *host;
	unsigned long port = 0;

	memset(a, 0, sizeof(*a));
	for (colon = len; colon > 0 && s[colon - 1] != ':'; colon--)
		;
	if (colon < 2 || colon == len || len - colon > 5)
		return HP_EFORMAT;
	for (i = colon; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return HP_EFORMAT;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	if (port < 1 || port > 65535)
		return HP_EFORMAT;
	host = s;
	hlen = colon - 1;
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen > WIRE_HOST_MAX)
		return HP_EFORMAT;
	for (i = 0; i < hlen; i++)
		if (!host_char_ok(host[i]))
			return HP_EFORMAT;
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	a->port = (uint16_t)port;
	if (numeric_only && !wire_host_numeric(a->host))
		return HP_EFORMAT;
	return 0;
}

void
wire_addr_format(const struct wire_addr *a, char *buf, size_t size)
{
	snprintf(buf, size, "%s:%u", a->host, (unsigned)a->port);
}

bool
wire_addr_equal(const struct wire_addr *a, const struct wire_addr *b)
{
	return a->port == b->port && strcmp(a->host, b->host) == 0;
}
