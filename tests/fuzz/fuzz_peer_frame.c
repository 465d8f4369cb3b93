/*
 * fuzz_peer_frame.c — libFuzzer target for the peer worker's wire code
 * (workers/peer/wire.c): the frame reader, and the HELLO, REQUIREMENT,
 * peer-list and "host:port" decoders.
 *
 * The first input byte picks how the rest is cut into reads (1 to 256
 * bytes each) and whether the reader is in hello-only mode; every frame
 * that comes out is handed to the decoder of its type, and a HELLO or list
 * that decodes must encode and decode again to the same value. The same
 * bytes after the first are also given to each decoder whole. Seeds are in
 * tests/fuzz/corpus/peer_frame/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_hello(const uint8_t *p, size_t len)
{
	struct wire_hello h, h2;
	msgpack_sbuffer sb;

	if (wire_hello_decode(p, len, &h) != 0)
		return;
	msgpack_sbuffer_init(&sb);
	wire_hello_encode(&sb, &h);
	if (sb.size < WIRE_HDR_LEN ||
	    wire_hello_decode((const uint8_t *)sb.data + WIRE_HDR_LEN,
	    sb.size - WIRE_HDR_LEN, &h2) != 0 ||
	    memcmp(&h, &h2, sizeof(h)) != 0)
		abort();
	msgpack_sbuffer_destroy(&sb);
}

static void
check_list(const uint8_t *p, size_t len)
{
	struct wire_addr a[WIRE_LIST_MAX], b[WIRE_LIST_MAX];
	size_t n, n2, skipped;
	msgpack_sbuffer sb;

	if (wire_list_decode(p, len, a, WIRE_LIST_MAX, &n, &skipped) != 0)
		return;
	if (n + skipped > WIRE_LIST_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!wire_host_numeric(a[i].host) || a[i].port == 0)
			abort();
	msgpack_sbuffer_init(&sb);
	wire_list_encode(&sb, a, n);
	if (wire_list_decode((const uint8_t *)sb.data + WIRE_HDR_LEN,
	    sb.size - WIRE_HDR_LEN, b, WIRE_LIST_MAX, &n2, &skipped) != 0 ||
	    n2 != n || skipped != 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!wire_addr_equal(&a[i], &b[i]))
			abort();
	msgpack_sbuffer_destroy(&sb);
}

static void
decode_any(uint8_t type, const uint8_t *p, size_t len)
{
	bool need;

	switch (type) {
	case WIRE_HELLO:
		check_hello(p, len);
		break;
	case WIRE_REQUIREMENT:
		wire_requirement_decode(p, len, &need);
		break;
	case WIRE_LIST_RES:
		check_list(p, len);
		break;
	case WIRE_LIST_REQ:
	case WIRE_PING:
		wire_empty_decode(p, len);
		break;
	default:
		break;
	}
}

static void
check_addr(const uint8_t *p, size_t len)
{
	struct wire_addr a, b;
	char text[WIRE_HOST_MAX + 8];

	if (wire_addr_parse((const char *)p, len, &a, false) != 0)
		return;
	wire_addr_format(&a, text, sizeof(text));
	if (wire_addr_parse(text, strlen(text), &b, false) != 0 ||
	    !wire_addr_equal(&a, &b))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_reader r;
	struct wire_frame f;
	const uint8_t *p;
	size_t left, chunk, n;
	int rc;

	if (size < 1)
		return 0;
	chunk = (size_t)(data[0] & 0x7f) * 2 + 1;
	wire_reader_init(&r, 5u * 1024 * 1024);
	r.hello_only = (data[0] & 0x80) != 0;
	p = data + 1;
	left = size - 1;
	while (left > 0) {
		n = left < chunk ? left : chunk;
		left -= n;
		while ((rc = wire_reader_next(&r, &p, &n, &f)) == 1) {
			if (f.len > wire_type_max(f.type) && !f.skipped)
				abort();
			if (f.payload != NULL)
				decode_any(f.type, f.payload, f.len);
		}
		if (rc < 0)
			break;
		if (n != 0)
			abort();	/* 0 means the input was used up */
	}
	wire_reader_free(&r);

	decode_any(WIRE_HELLO, data + 1, size - 1);
	decode_any(WIRE_REQUIREMENT, data + 1, size - 1);
	decode_any(WIRE_LIST_RES, data + 1, size - 1);
	decode_any(WIRE_PING, data + 1, size - 1);
	check_addr(data + 1, size - 1);
	return 0;
}
