/*
 * wire.h — the peer protocol's frames, as bytes: the incremental frame
 * reader, the per-type size limits, and the codecs of the frames the peer
 * worker itself understands (HELLO, REQUIREMENT, PEERLIST_RES). Pure code:
 * no libuv, no OpenSSL, no clock, so that the fuzzer links it alone.
 *
 * A frame inside TLS is a 4-byte big-endian payload length, a 1-byte type,
 * then the payload. Types 1..HP_PT_MAX are consensus payloads (proto.h
 * HP_PT_*), opaque to the peer worker; types from 0x80 are the peer
 * worker's own. Control payloads are one msgpack map with small unsigned
 * keys, checked with hp_mpack_check() before unpacking.
 *
 * Ownership: struct wire_reader is the caller's; wire_reader_free() releases
 * the payload buffer it holds. A frame returned by wire_reader_next() points
 * into the reader and is valid until the next call. Decoders copy what they
 * keep into the caller's structs.
 */
#ifndef HP_PEER_WIRE_H
#define HP_PEER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "keys.h"

#define WIRE_VERSION		1	/* peer protocol version in HELLO */
#define WIRE_HDR_LEN		5
#define WIRE_CID_MAX		64	/* contract id bytes in HELLO */
#define WIRE_HOST_MAX		63	/* numeric address, or a host name */
#define WIRE_LIST_MAX		256	/* entries in a peer list */
#define WIRE_UNKNOWN_MAX	(64u * 1024)	/* skipped unknown frames */

enum wire_type {
	WIRE_HELLO = 0x80,
	WIRE_REQUIREMENT = 0x81,
	WIRE_LIST_REQ = 0x82,
	WIRE_LIST_RES = 0x83,
	WIRE_PING = 0x84,
};

/* Whether type is one of ours or a consensus payload type we know. */
bool wire_type_known(uint8_t type);
/* The payload limit for type (0 for unknown types), before max_msg. */
uint32_t wire_type_max(uint8_t type);
const char *wire_type_name(uint8_t type);

/* One frame out of the reader. payload is NULL when it was skipped. */
struct wire_frame {
	uint8_t type;
	uint32_t len;
	const uint8_t *payload;
	bool skipped;		/* unknown type, or not wanted (hello_only) */
};

struct wire_reader {
	uint64_t max_msg;	/* mesh.max_bytes_per_msg */
	bool hello_only;	/* skip every payload but HELLO unread */
	uint8_t hdr[WIRE_HDR_LEN];
	size_t hlen;
	uint8_t type;
	uint32_t len;
	uint8_t *buf;
	size_t got;
	bool skip;
	bool done;		/* the last frame returned; free it next */
};

void wire_reader_init(struct wire_reader *r, uint64_t max_msg);
void wire_reader_free(struct wire_reader *r);

/*
 * Consume bytes from *p (advancing *p and *n). Returns 1 with *f set when a
 * frame is complete, 0 when the input is used up without completing one,
 * HP_ETOOBIG when a frame announces more than its type's limit or max_msg
 * (checked on the header, before anything is allocated), HP_ENOMEM.
 */
int wire_reader_next(struct wire_reader *r, const uint8_t **p, size_t *n,
    struct wire_frame *f);

/* Write the 5-byte header. */
void wire_hdr_encode(uint8_t hdr[WIRE_HDR_LEN], uint8_t type, uint32_t len);

struct wire_hello {
	char contract_id[WIRE_CID_MAX + 1];
	uint64_t version;
	uint8_t pk[HP_PK_BYTES];
	uint8_t sig[HP_SIG_BYTES];
	uint16_t listen_port;	/* 0: does not listen */
	bool need_forwarding;
};

/* An address in a peer list or the known list: host and port. */
struct wire_addr {
	char host[WIRE_HOST_MAX + 1];
	uint16_t port;
};

/*
 * Encoders append one whole frame (header included) to sb, which the
 * caller has initialised.
 */
void wire_hello_encode(msgpack_sbuffer *sb, const struct wire_hello *h);
void wire_requirement_encode(msgpack_sbuffer *sb, bool need_forwarding);
void wire_list_encode(msgpack_sbuffer *sb, const struct wire_addr *a,
    size_t n);
void wire_empty_encode(msgpack_sbuffer *sb, uint8_t type);

/* Decoders take a payload; HP_EFORMAT / HP_ETOOBIG on bad input. */
int wire_hello_decode(const uint8_t *p, size_t len, struct wire_hello *h);
int wire_requirement_decode(const uint8_t *p, size_t len, bool *need);
/* Accepts up to max entries; entries that are not numeric IPv4/IPv6
 * addresses with a port from 1 are skipped and counted in *skipped. */
int wire_list_decode(const uint8_t *p, size_t len, struct wire_addr *out,
    size_t max, size_t *n, size_t *skipped);
/* A list request or ping: an empty map. */
int wire_empty_decode(const uint8_t *p, size_t len);

/*
 * "host:port" (host may be a name, an IPv4 address, or an IPv6 address
 * with or without brackets; the port follows the last colon). Returns
 * HP_EFORMAT when malformed. numeric_only rejects names.
 */
int wire_addr_parse(const char *s, size_t len, struct wire_addr *a,
    bool numeric_only);
/* Whether host is a numeric IPv4 or IPv6 address. */
bool wire_host_numeric(const char *host);
/* "host:port" into buf (hp.cfg's form: no brackets). */
void wire_addr_format(const struct wire_addr *a, char *buf, size_t size);
bool wire_addr_equal(const struct wire_addr *a, const struct wire_addr *b);

#endif
