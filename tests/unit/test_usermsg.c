/*
 * test_usermsg.c — the user protocol codec (common/usermsg.c).
 *
 * Decoders: every message's happy path in JSON and BSON (BSON built with
 * libbson the way hotpocket-js-client's bson package sends it: binary
 * subtype 0, integers as int64) and every way a field can be missing,
 * mistyped, oversized or duplicated. Encoders: the exact JSON text for
 * fixed inputs, and BSON parsed back with libbson to check each element's
 * type (binary subtype 0x80, int32 or int64 by size, arrays).
 *
 * The output tree roots for 1, 2, 16, 17 and 300 leaves are hard-coded
 * from an independent implementation in node (usermsg_vectors.js --roots,
 * BLAKE3 from the npm blake3 package). Every collapsed tree is re-hashed
 * here from its JSON text, and, when node and tests/interop/node_modules
 * are present, whole contract_output messages in both protocols are fed
 * to hotpocket-js-client 0.5.7's own output check (usermsg_vectors.js).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <bson.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "hash.h"
#include "usermsg.h"

#define SIG_HEX \
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" \
	"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
#define KEY_HEX \
	"ed1111111111111111111111111111111111111111111111111111111111111111"
#define H32_AA \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define H32_BB \
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void
tohex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

static void
seq_bytes(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)i;
}

static const uint8_t *
u8(const char *s)
{
	return (const uint8_t *)s;
}

/* ---- handshake ---- */

static int
hs(const char *text, struct hp_uhandshake *h)
{
	return hp_udec_handshake(u8(text), strlen(text), h);
}

static void
test_handshake_ok(void **state)
{
	struct hp_uhandshake h;
	uint8_t sig[64];

	(void)state;
	seq_bytes(sig, 64);
	assert_int_equal(hs("{\"type\":\"user_challenge_response\","
	    "\"sig\":\"" SIG_HEX "\",\"pubkey\":\"" KEY_HEX "\","
	    "\"server_challenge\":\"0123456789abcdef0123456789abcdef\","
	    "\"protocol\":\"bson\"}", &h), 0);
	assert_memory_equal(h.sig, sig, 64);
	for (int i = 0; i < 32; i++)
		assert_int_equal(h.pubkey[i], 0x11);
	assert_true(h.has_server_challenge);
	assert_string_equal(h.server_challenge,
	    "0123456789abcdef0123456789abcdef");
	assert_int_equal(h.proto, HP_UPROTO_BSON);

	assert_int_equal(hs("{\"type\":\"user_challenge_response\","
	    "\"sig\":\"" SIG_HEX "\",\"pubkey\":\"" KEY_HEX "\","
	    "\"protocol\":\"json\",\"extra\":1}", &h), 0);
	assert_false(h.has_server_challenge);
	assert_int_equal(h.proto, HP_UPROTO_JSON);
}

static void
test_handshake_bad(void **state)
{
	static const char *bad[] = {
		"",
		"not json",
		"[]",
		"{\"type\":\"user_challenge_response\"",
		/* wrong type */
		"{\"type\":\"user_challenge\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"" KEY_HEX "\",\"protocol\":\"json\"}",
		/* no sig, short sig, sig not hex, sig a number */
		"{\"type\":\"user_challenge_response\","
		"\"pubkey\":\"" KEY_HEX "\",\"protocol\":\"json\"}",
		"{\"type\":\"user_challenge_response\",\"sig\":\"0011\","
		"\"pubkey\":\"" KEY_HEX "\",\"protocol\":\"json\"}",
		"{\"type\":\"user_challenge_response\",\"sig\":\"zz"
		SIG_HEX "\",\"pubkey\":\"" KEY_HEX "\",\"protocol\":\"json\"}",
		"{\"type\":\"user_challenge_response\",\"sig\":5,"
		"\"pubkey\":\"" KEY_HEX "\",\"protocol\":\"json\"}",
		/* key without prefix, with a wrong prefix, one byte short */
		"{\"type\":\"user_challenge_response\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"" H32_AA "\",\"protocol\":\"json\"}",
		"{\"type\":\"user_challenge_response\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"ee" H32_AA "\",\"protocol\":\"json\"}",
		"{\"type\":\"user_challenge_response\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"edaa" H32_AA "\",\"protocol\":\"json\"}",
		/* server_challenge empty, 33 characters, not a string */
		"{\"type\":\"user_challenge_response\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"" KEY_HEX "\",\"server_challenge\":\"\","
		"\"protocol\":\"json\"}",
		"{\"type\":\"user_challenge_response\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"" KEY_HEX "\",\"server_challenge\":"
		"\"0123456789abcdef0123456789abcdef0\",\"protocol\":\"json\"}",
		"{\"type\":\"user_challenge_response\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"" KEY_HEX "\",\"server_challenge\":7,"
		"\"protocol\":\"json\"}",
		"{\"type\":\"user_challenge_response\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"" KEY_HEX "\",\"server_challenge\":\"a\\u0000b\","
		"\"protocol\":\"json\"}",
		/* unknown or missing protocol */
		"{\"type\":\"user_challenge_response\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"" KEY_HEX "\",\"protocol\":\"xml\"}",
		"{\"type\":\"user_challenge_response\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"" KEY_HEX "\"}",
		/* a duplicate field */
		"{\"type\":\"user_challenge_response\",\"sig\":\"" SIG_HEX "\","
		"\"pubkey\":\"" KEY_HEX "\",\"protocol\":\"json\","
		"\"protocol\":\"bson\"}",
	};
	struct hp_uhandshake h;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("case %zu\n", i);
		assert_int_equal(hs(bad[i], &h), HP_EFORMAT);
	}
	/* Exactly 32 characters is allowed. */
	assert_int_equal(hs("{\"type\":\"user_challenge_response\","
	    "\"sig\":\"" SIG_HEX "\",\"pubkey\":\"" KEY_HEX "\","
	    "\"server_challenge\":\"x\",\"protocol\":\"json\"}", &h), 0);
	assert_string_equal(h.server_challenge, "x");
}

/* ---- client messages ---- */

static int
jmsg(const char *text, struct hp_umsg *m, int *sig_ok)
{
	return hp_udec_msg(HP_UPROTO_JSON, u8(text), strlen(text), m, sig_ok);
}

static int
bmsg(bson_t *b, struct hp_umsg *m, int *sig_ok)
{
	int r = hp_udec_msg(HP_UPROTO_BSON, bson_get_data(b), b->len, m,
	    sig_ok);

	bson_destroy(b);
	return r;
}

static void
test_msg_input(void **state)
{
	static const char container[] =
	    "{\"input\":\"hi \\\"x\\\"\",\"nonce\":5,\"max_ledger_seq_no\":9}";
	struct hp_umsg m;
	uint8_t sig[64];
	bson_t *b;
	int ok;

	(void)state;
	seq_bytes(sig, 64);
	/* The signed bytes are the unescaped JSON string value. */
	assert_int_equal(jmsg("{\"type\":\"contract_input\","
	    "\"input_container\":"
	    "\"{\\\"input\\\":\\\"hi \\\\\\\"x\\\\\\\"\\\",\\\"nonce\\\":5,"
	    "\\\"max_ledger_seq_no\\\":9}\",\"sig\":\"" SIG_HEX "\"}",
	    &m, &ok), 0);
	assert_int_equal(m.type, HP_UM_INPUT);
	assert_int_equal(ok, 1);
	assert_int_equal(m.container_len, strlen(container));
	assert_memory_equal(m.container, container, strlen(container));
	assert_memory_equal(m.sig, sig, 64);
	hp_umsg_free(&m);

	/* BSON: raw binary of any subtype. */
	b = BCON_NEW("type", BCON_UTF8("contract_input"),
	    "input_container", BCON_BIN(BSON_SUBTYPE_BINARY, u8("\x01\x02"), 2),
	    "sig", BCON_BIN(BSON_SUBTYPE_USER, sig, 64));
	assert_int_equal(bmsg(b, &m, &ok), 0);
	assert_int_equal(m.type, HP_UM_INPUT);
	assert_int_equal(m.container_len, 2);
	assert_memory_equal(m.container, "\x01\x02", 2);
	assert_memory_equal(m.sig, sig, 64);
	hp_umsg_free(&m);

	/* A good sig but no container: the sig is still handed back. */
	assert_int_equal(jmsg("{\"type\":\"contract_input\",\"sig\":\""
	    SIG_HEX "\"}", &m, &ok), HP_EFORMAT);
	assert_int_equal(m.type, HP_UM_INPUT);
	assert_int_equal(ok, 1);
	assert_memory_equal(m.sig, sig, 64);
	assert_null(m.container);
	hp_umsg_free(&m);

	/* Container not a string; sig missing, short, or mistyped. */
	assert_int_equal(jmsg("{\"type\":\"contract_input\","
	    "\"input_container\":"
	    "{},\"sig\":\"" SIG_HEX "\"}", &m, &ok), HP_EFORMAT);
	assert_int_equal(ok, 1);
	hp_umsg_free(&m);
	assert_int_equal(jmsg("{\"type\":\"contract_input\","
	    "\"input_container\":"
	    "\"x\"}", &m, &ok), HP_EFORMAT);
	assert_int_equal(ok, 0);
	assert_int_equal(jmsg("{\"type\":\"contract_input\","
	    "\"input_container\":"
	    "\"x\",\"sig\":\"abcd\"}", &m, &ok), HP_EFORMAT);
	assert_int_equal(ok, 0);
	b = BCON_NEW("type", BCON_UTF8("contract_input"),
	    "input_container", BCON_UTF8("x"),
	    "sig", BCON_BIN(BSON_SUBTYPE_BINARY, sig, 64));
	assert_int_equal(bmsg(b, &m, &ok), HP_EFORMAT);
	assert_int_equal(ok, 1);
	hp_umsg_free(&m);
	b = BCON_NEW("type", BCON_UTF8("contract_input"),
	    "input_container", BCON_BIN(BSON_SUBTYPE_BINARY, u8("x"), 1),
	    "sig", BCON_BIN(BSON_SUBTYPE_BINARY, sig, 63));
	assert_int_equal(bmsg(b, &m, &ok), HP_EFORMAT);
	assert_int_equal(ok, 0);
	/* sig_ok may be NULL. */
	assert_int_equal(jmsg("{\"type\":\"contract_input\"}", &m, NULL),
	    HP_EFORMAT);
}

static void
test_msg_read(void **state)
{
	char text[600], id[300];
	struct hp_umsg m;
	bson_t *b;

	(void)state;
	assert_int_equal(jmsg("{\"type\":\"contract_read_request\","
	    "\"id\":\"17\",\"content\":\"ping\\n\"}", &m, NULL), 0);
	assert_int_equal(m.type, HP_UM_READ);
	assert_string_equal(m.id, "17");
	assert_int_equal(m.content_len, 5);
	assert_memory_equal(m.content, "ping\n", 5);
	hp_umsg_free(&m);

	b = BCON_NEW("type", BCON_UTF8("contract_read_request"),
	    "id", BCON_UTF8("q"),
	    "content", BCON_BIN(BSON_SUBTYPE_USER, u8("\0\xff"), 2));
	assert_int_equal(bmsg(b, &m, NULL), 0);
	assert_string_equal(m.id, "q");
	assert_int_equal(m.content_len, 2);
	assert_memory_equal(m.content, "\0\xff", 2);
	hp_umsg_free(&m);

	/* Empty content is content. */
	assert_int_equal(jmsg("{\"type\":\"contract_read_request\","
	    "\"id\":\"1\",\"content\":\"\"}", &m, NULL), 0);
	assert_non_null(m.content);
	assert_int_equal(m.content_len, 0);
	hp_umsg_free(&m);

	/* An id of 256 bytes is the most allowed. */
	memset(id, 'i', 256);
	id[256] = '\0';
	snprintf(text, sizeof(text), "{\"type\":\"contract_read_request\","
	    "\"id\":\"%s\",\"content\":\"c\"}", id);
	assert_int_equal(jmsg(text, &m, NULL), 0);
	assert_int_equal(strlen(m.id), 256);
	hp_umsg_free(&m);
	id[256] = 'i';
	id[257] = '\0';
	snprintf(text, sizeof(text), "{\"type\":\"contract_read_request\","
	    "\"id\":\"%s\",\"content\":\"c\"}", id);
	assert_int_equal(jmsg(text, &m, NULL), HP_EFORMAT);
	assert_int_equal(m.type, HP_UM_READ);
	assert_null(m.id);

	assert_int_equal(jmsg("{\"type\":\"contract_read_request\","
	    "\"id\":5,\"content\":\"c\"}", &m, NULL), HP_EFORMAT);
	assert_int_equal(jmsg("{\"type\":\"contract_read_request\","
	    "\"id\":\"a\\u0000b\",\"content\":\"c\"}", &m, NULL), HP_EFORMAT);
	assert_int_equal(jmsg("{\"type\":\"contract_read_request\","
	    "\"id\":\"5\"}", &m, NULL), HP_EFORMAT);
	assert_int_equal(jmsg("{\"type\":\"contract_read_request\","
	    "\"id\":\"5\",\"content\":[]}", &m, NULL), HP_EFORMAT);
	/* BSON content must be binary. */
	b = BCON_NEW("type", BCON_UTF8("contract_read_request"),
	    "id", BCON_UTF8("q"), "content", BCON_UTF8("ping"));
	assert_int_equal(bmsg(b, &m, NULL), HP_EFORMAT);
	/* BSON strings must be UTF-8. */
	b = BCON_NEW("type", BCON_UTF8("contract_read_request"),
	    "content", BCON_BIN(BSON_SUBTYPE_USER, u8("x"), 1));
	BSON_APPEND_UTF8(b, "id", "\xff\xfe");
	assert_int_equal(bmsg(b, &m, NULL), HP_EFORMAT);
}

static void
test_msg_simple(void **state)
{
	struct hp_umsg m;
	bson_t *b;

	(void)state;
	assert_int_equal(jmsg("{\"type\":\"stat\"}", &m, NULL), 0);
	assert_int_equal(m.type, HP_UM_STAT);
	assert_int_equal(jmsg("{\"type\":\"lcl\",\"x\":[1,2]}", &m, NULL), 0);
	assert_int_equal(m.type, HP_UM_LCL);
	assert_int_equal(jmsg("{\"type\":\"transfer\"}", &m, NULL), 0);
	assert_int_equal(m.type, HP_UM_UNKNOWN);
	b = BCON_NEW("type", BCON_UTF8("lcl"));
	assert_int_equal(bmsg(b, &m, NULL), 0);
	assert_int_equal(m.type, HP_UM_LCL);
	b = BCON_NEW("type", BCON_UTF8("stat"));
	assert_int_equal(bmsg(b, &m, NULL), 0);
	assert_int_equal(m.type, HP_UM_STAT);

	/* No string type, or nothing parseable: type stays 0. */
	assert_int_equal(jmsg("{\"type\":1}", &m, NULL), HP_EFORMAT);
	assert_int_equal(m.type, 0);
	assert_int_equal(jmsg("{}", &m, NULL), HP_EFORMAT);
	assert_int_equal(jmsg("\"stat\"", &m, NULL), HP_EFORMAT);
	assert_int_equal(jmsg("{\"type\":\"stat\"} x", &m, NULL), HP_EFORMAT);
	assert_int_equal(jmsg("{\"type\":\"stat\",\"type\":\"lcl\"}", &m,
	    NULL), HP_EFORMAT);
	assert_int_equal(hp_udec_msg(HP_UPROTO_JSON, NULL, 0, &m, NULL),
	    HP_EFORMAT);
	assert_int_equal(hp_udec_msg(HP_UPROTO_BSON, u8(""), 0, &m, NULL),
	    HP_EFORMAT);
	/* A JSON message on a BSON session. */
	assert_int_equal(hp_udec_msg(HP_UPROTO_BSON, u8("{\"type\":\"stat\"}"),
	    15, &m, NULL), HP_EFORMAT);
	b = BCON_NEW("type", BCON_INT32(3));
	assert_int_equal(bmsg(b, &m, NULL), HP_EFORMAT);
	/* BSON allows a key twice; the codec does not. */
	b = BCON_NEW("type", BCON_UTF8("stat"), "type", BCON_UTF8("lcl"));
	assert_int_equal(bmsg(b, &m, NULL), HP_EFORMAT);
}

static void
test_msg_bson_corrupt(void **state)
{
	uint8_t buf[64];
	struct hp_umsg m;
	bson_t *b;
	size_t n;

	(void)state;
	b = BCON_NEW("type", BCON_UTF8("stat"), "z", BCON_INT32(1));
	n = b->len;
	memcpy(buf, bson_get_data(b), n);
	bson_destroy(b);
	assert_int_equal(hp_udec_msg(HP_UPROTO_BSON, buf, n, &m, NULL), 0);
	/* Every shorter length is refused. */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(hp_udec_msg(HP_UPROTO_BSON, buf, i, &m, NULL),
		    HP_EFORMAT);
	/* The string's length runs past the document. */
	buf[11] = 0x40;
	assert_int_equal(hp_udec_msg(HP_UPROTO_BSON, buf, n, &m, NULL),
	    HP_EFORMAT);
	buf[11] = 5;
	/* An unknown element type after the type field. */
	buf[20] = 0x7e;
	assert_int_equal(hp_udec_msg(HP_UPROTO_BSON, buf, n, &m, NULL),
	    HP_EFORMAT);
}

static void
test_msg_subscription(void **state)
{
	static const struct {
		const char *name;
		enum hp_uchannel ch;
	} chans[] = {
		{ "unl_change", HP_UCH_UNL_CHANGE },
		{ "ledger_event", HP_UCH_LEDGER_EVENT },
		{ "health_event", HP_UCH_HEALTH_EVENT },
	};
	char text[128];
	struct hp_umsg m;
	bson_t *b;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "{\"type\":\"subscription\","
		    "\"channel\":\"%s\",\"enabled\":%s}", chans[i].name,
		    i == 1 ? "false" : "true");
		assert_int_equal(jmsg(text, &m, NULL), 0);
		assert_int_equal(m.type, HP_UM_SUBSCRIPTION);
		assert_int_equal(m.channel, chans[i].ch);
		assert_int_equal(m.enabled, i != 1);
	}
	b = BCON_NEW("type", BCON_UTF8("subscription"),
	    "channel", BCON_UTF8("ledger_event"), "enabled", BCON_BOOL(true));
	assert_int_equal(bmsg(b, &m, NULL), 0);
	assert_int_equal(m.channel, HP_UCH_LEDGER_EVENT);
	assert_int_equal(m.enabled, 1);

	assert_int_equal(jmsg("{\"type\":\"subscription\",\"channel\":\"x\","
	    "\"enabled\":true}", &m, NULL), HP_EFORMAT);
	assert_int_equal(m.type, HP_UM_SUBSCRIPTION);
	assert_int_equal(jmsg("{\"type\":\"subscription\",\"channel\":"
	    "\"unl_change\",\"enabled\":1}", &m, NULL), HP_EFORMAT);
	assert_int_equal(jmsg("{\"type\":\"subscription\",\"channel\":"
	    "\"unl_change\"}", &m, NULL), HP_EFORMAT);
	b = BCON_NEW("type", BCON_UTF8("subscription"),
	    "channel", BCON_UTF8("unl_change"), "enabled", BCON_INT32(1));
	assert_int_equal(bmsg(b, &m, NULL), HP_EFORMAT);
}

static void
test_msg_ledger_query(void **state)
{
	struct hp_umsg m;
	bson_t *b;

	(void)state;
	assert_int_equal(jmsg("{\"type\":\"ledger_query\",\"id\":\"query_seq_"
	    "no_1\",\"filter_by\":\"seq_no\",\"params\":{\"seq_no\":42},"
	    "\"include\":[\"inputs\",\"outputs\"]}", &m, NULL), 0);
	assert_int_equal(m.type, HP_UM_LEDGER_QUERY);
	assert_string_equal(m.id, "query_seq_no_1");
	assert_int_equal(m.seq_no, 42);
	assert_true(m.want_inputs && m.want_outputs);
	hp_umsg_free(&m);
	assert_int_equal(jmsg("{\"type\":\"ledger_query\",\"id\":\"q\","
	    "\"filter_by\":\"seq_no\",\"params\":{\"seq_no\":0},"
	    "\"include\":[]}", &m, NULL), 0);
	assert_int_equal(m.seq_no, 0);
	assert_false(m.want_inputs || m.want_outputs);
	hp_umsg_free(&m);

	/* BSON: params.seq_no as Long (what the client sends) or int32. */
	b = BCON_NEW("type", BCON_UTF8("ledger_query"), "id", BCON_UTF8("q"),
	    "filter_by", BCON_UTF8("seq_no"),
	    "params", "{", "seq_no", BCON_INT64(5000000000LL), "}",
	    "include", "[", BCON_UTF8("outputs"), "]");
	assert_int_equal(bmsg(b, &m, NULL), 0);
	assert_int_equal(m.seq_no, 5000000000ULL);
	assert_false(m.want_inputs);
	assert_true(m.want_outputs);
	hp_umsg_free(&m);
	b = BCON_NEW("type", BCON_UTF8("ledger_query"), "id", BCON_UTF8("q"),
	    "filter_by", BCON_UTF8("seq_no"),
	    "params", "{", "seq_no", BCON_INT32(7), "}",
	    "include", "[", BCON_UTF8("inputs"), "]");
	assert_int_equal(bmsg(b, &m, NULL), 0);
	assert_int_equal(m.seq_no, 7);
	assert_true(m.want_inputs);
	hp_umsg_free(&m);

	static const char *bad[] = {
		"{\"type\":\"ledger_query\",\"id\":\"q\","
		"\"filter_by\":\"hash\","
		"\"params\":{\"seq_no\":1},\"include\":[]}",
		"{\"type\":\"ledger_query\",\"id\":\"q\","
		"\"filter_by\":\"seq_no\","
		"\"params\":{\"seq_no\":-1},\"include\":[]}",
		"{\"type\":\"ledger_query\",\"id\":\"q\","
		"\"filter_by\":\"seq_no\","
		"\"params\":{\"seq_no\":1.5},\"include\":[]}",
		"{\"type\":\"ledger_query\",\"id\":\"q\","
		"\"filter_by\":\"seq_no\","
		"\"params\":{\"seq_no\":\"1\"},\"include\":[]}",
		"{\"type\":\"ledger_query\",\"id\":\"q\","
		"\"filter_by\":\"seq_no\","
		"\"params\":[1],\"include\":[]}",
		"{\"type\":\"ledger_query\",\"id\":\"q\","
		"\"filter_by\":\"seq_no\","
		"\"include\":[]}",
		"{\"type\":\"ledger_query\",\"id\":\"q\","
		"\"filter_by\":\"seq_no\","
		"\"params\":{\"seq_no\":1},\"include\":[\"blobs\"]}",
		"{\"type\":\"ledger_query\",\"id\":\"q\","
		"\"filter_by\":\"seq_no\","
		"\"params\":{\"seq_no\":1},\"include\":[1]}",
		"{\"type\":\"ledger_query\",\"id\":\"q\","
		"\"filter_by\":\"seq_no\","
		"\"params\":{\"seq_no\":1},\"include\":\"inputs\"}",
		"{\"type\":\"ledger_query\",\"id\":\"q\","
		"\"filter_by\":\"seq_no\","
		"\"params\":{\"seq_no\":1}}",
		("{\"type\":\"ledger_query\",\"filter_by\":\"seq_no\","
		"\"params\":{\"seq_no\":1},\"include\":[]}"),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("case %zu\n", i);
		assert_int_equal(jmsg(bad[i], &m, NULL), HP_EFORMAT);
		assert_int_equal(m.type, HP_UM_LEDGER_QUERY);
		assert_null(m.id);
	}
	b = BCON_NEW("type", BCON_UTF8("ledger_query"), "id", BCON_UTF8("q"),
	    "filter_by", BCON_UTF8("seq_no"),
	    "params", "{", "seq_no", BCON_DOUBLE(1.0), "}",
	    "include", "[", "]");
	assert_int_equal(bmsg(b, &m, NULL), HP_EFORMAT);
	b = BCON_NEW("type", BCON_UTF8("ledger_query"), "id", BCON_UTF8("q"),
	    "filter_by", BCON_UTF8("seq_no"),
	    "params", "{", "seq_no", BCON_INT64(-3), "}",
	    "include", "[", "]");
	assert_int_equal(bmsg(b, &m, NULL), HP_EFORMAT);
	b = BCON_NEW("type", BCON_UTF8("ledger_query"), "id", BCON_UTF8("q"),
	    "filter_by", BCON_UTF8("seq_no"),
	    "params", "{", "seq_no", BCON_INT32(1), "seq_no", BCON_INT32(2),
	    "}", "include", "[", "]");
	assert_int_equal(bmsg(b, &m, NULL), HP_EFORMAT);
}

/* ---- input container ---- */

static int
jin(const char *text, struct hp_uinput *in)
{
	return hp_udec_input(HP_UPROTO_JSON, u8(text), strlen(text), in);
}

static int
bin_(bson_t *b, struct hp_uinput *in)
{
	int r = hp_udec_input(HP_UPROTO_BSON, bson_get_data(b), b->len, in);

	bson_destroy(b);
	return r;
}

static void
test_input_container(void **state)
{
	struct hp_uinput in;
	bson_t *b;

	(void)state;
	assert_int_equal(jin("{\"input\":\"hello\",\"nonce\":1700000000000,"
	    "\"max_ledger_seq_no\":12}", &in), 0);
	assert_int_equal(in.input_len, 5);
	assert_memory_equal(in.input, "hello", 5);
	assert_int_equal(in.nonce, 1700000000000ULL);
	assert_int_equal(in.max_ledger_seq_no, 12);
	hp_uinput_free(&in);
	assert_int_equal(jin("{\"input\":\"\",\"nonce\":1,"
	    "\"max_ledger_seq_no\":0}", &in), 0);
	assert_non_null(in.input);
	assert_int_equal(in.input_len, 0);
	hp_uinput_free(&in);

	static const char *bad[] = {
		"{\"input\":\"x\",\"nonce\":0,\"max_ledger_seq_no\":1}",
		"{\"input\":\"x\",\"nonce\":1.5,\"max_ledger_seq_no\":1}",
		"{\"input\":\"x\",\"nonce\":1.0,\"max_ledger_seq_no\":1}",
		"{\"input\":\"x\",\"nonce\":1e3,\"max_ledger_seq_no\":1}",
		"{\"input\":\"x\",\"nonce\":-4,\"max_ledger_seq_no\":1}",
		"{\"input\":\"x\",\"nonce\":\"4\",\"max_ledger_seq_no\":1}",
		"{\"input\":\"x\",\"nonce\":4}",
		"{\"input\":\"x\",\"nonce\":4,\"max_ledger_seq_no\":-1}",
		"{\"input\":\"x\",\"nonce\":4,\"max_ledger_seq_no\":true}",
		"{\"input\":5,\"nonce\":4,\"max_ledger_seq_no\":1}",
		"{\"nonce\":4,\"max_ledger_seq_no\":1}",
		"{\"input\":\"x\",\"nonce\":4,\"nonce\":5,"
		"\"max_ledger_seq_no\":1}",
		"{\"input\":\"x\",\"nonce\":99999999999999999999,"
		"\"max_ledger_seq_no\":1}",
		"[\"x\",4,1]",
		"{\"input\":\"x\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("case %zu\n", i);
		assert_int_equal(jin(bad[i], &in), HP_EFORMAT);
		assert_null(in.input);
	}

	/* BSON: int64 (the client's Long) and int32, any binary subtype. */
	b = BCON_NEW("input", BCON_BIN(BSON_SUBTYPE_BINARY, u8("\0hi"), 3),
	    "nonce", BCON_INT64(1700000000000LL),
	    "max_ledger_seq_no", BCON_INT64(11));
	assert_int_equal(bin_(b, &in), 0);
	assert_int_equal(in.input_len, 3);
	assert_memory_equal(in.input, "\0hi", 3);
	assert_int_equal(in.nonce, 1700000000000ULL);
	assert_int_equal(in.max_ledger_seq_no, 11);
	hp_uinput_free(&in);
	b = BCON_NEW("input", BCON_BIN(BSON_SUBTYPE_USER, u8("x"), 1),
	    "nonce", BCON_INT32(3), "max_ledger_seq_no", BCON_INT32(4));
	assert_int_equal(bin_(b, &in), 0);
	assert_int_equal(in.nonce, 3);
	assert_int_equal(in.max_ledger_seq_no, 4);
	hp_uinput_free(&in);
	b = BCON_NEW("input", BCON_BIN(BSON_SUBTYPE_UUID, u8("x"), 1),
	    "nonce", BCON_INT64(3), "max_ledger_seq_no", BCON_INT32(4));
	assert_int_equal(bin_(b, &in), 0);
	hp_uinput_free(&in);

	b = BCON_NEW("input", BCON_BIN(BSON_SUBTYPE_BINARY, u8("x"), 1),
	    "nonce", BCON_INT64(0), "max_ledger_seq_no", BCON_INT64(4));
	assert_int_equal(bin_(b, &in), HP_EFORMAT);
	b = BCON_NEW("input", BCON_BIN(BSON_SUBTYPE_BINARY, u8("x"), 1),
	    "nonce", BCON_DOUBLE(3.0), "max_ledger_seq_no", BCON_INT64(4));
	assert_int_equal(bin_(b, &in), HP_EFORMAT);
	b = BCON_NEW("input", BCON_BIN(BSON_SUBTYPE_BINARY, u8("x"), 1),
	    "nonce", BCON_INT64(3), "max_ledger_seq_no", BCON_INT32(-1));
	assert_int_equal(bin_(b, &in), HP_EFORMAT);
	b = BCON_NEW("input", BCON_UTF8("x"),
	    "nonce", BCON_INT64(3), "max_ledger_seq_no", BCON_INT64(4));
	assert_int_equal(bin_(b, &in), HP_EFORMAT);
	assert_int_equal(hp_udec_input(HP_UPROTO_BSON, u8("{}"), 2, &in),
	    HP_EFORMAT);
}

/* ---- the embedding rule ---- */

static void
test_embed_rule(void **state)
{
	static const struct {
		const char *s;
		int embed;
	} t[] = {
		{ "", 0 }, { "\"x\"", 1 }, { "\"", 1 },
		{ "\"a\" and \"b\"", 1 },
		{ "{\"a\":1}", 1 }, { "{", 0 }, { "{]", 0 }, { "[1,2]", 1 },
		{ "[]", 1 }, { "true", 1 }, { "false", 1 }, { "null", 0 },
		{ "True", 0 }, { "truex", 0 }, { "123", 1 }, { "1.5", 1 },
		{ "1.5.", 0 }, { ".", 1 }, { "-1", 0 }, { "1e5", 0 },
		{ " 1", 0 }, { "hello", 0 }, { "x\"", 0 }, { "\"x", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		print_message("%s\n", t[i].s);
		assert_int_equal(hp_ujson_embed(u8(t[i].s), strlen(t[i].s)),
		    t[i].embed);
	}
}

/* ---- JSON encoders: exact text ---- */

static void
expect_buf(int r, struct hp_ubuf *b, const char *text)
{
	assert_int_equal(r, 0);
	assert_int_equal(b->len, strlen(text));
	assert_memory_equal(b->data, text, b->len);
	free(b->data);
}

/* call encodes into the caller's local b, which must equal text. */
#define expect(call, text)	expect_buf((call), &b, (text))

static void
test_json_handshake_enc(void **state)
{
	uint8_t sig[64], key[32], unl[64];
	struct hp_ubuf b;

	(void)state;
	seq_bytes(sig, 64);
	memset(key, 0x11, 32);
	memset(unl, 0xaa, 32);
	memset(unl + 32, 0xbb, 32);
	expect(hp_uenc_user_challenge("c-1", "1.0",
	    "00112233445566778899aabbccddeeff", &b),
	    "{\"hp_version\":\"0.6.4\",\"type\":\"user_challenge\","
	    "\"contract_id\":\"c-1\",\"contract_version\":\"1.0\","
	    "\"challenge\":\"00112233445566778899aabbccddeeff\"}");
	expect(hp_uenc_server_challenge_response(sig, key, unl, 2, &b),
	    "{\"type\":\"server_challenge_response\",\"sig\":\"" SIG_HEX "\","
	    "\"pubkey\":\"" KEY_HEX "\",\"unl\":[\"ed" H32_AA "\",\"ed" H32_BB
	    "\"]}");
	expect(hp_uenc_server_challenge_response(sig, key, NULL, 0, &b),
	    "{\"type\":\"server_challenge_response\",\"sig\":\"" SIG_HEX "\","
	    "\"pubkey\":\"" KEY_HEX "\",\"unl\":[]}");
}

static void
test_json_status_enc(void **state)
{
	uint8_t h[32], lh[32];
	struct hp_ubuf b;

	(void)state;
	memset(h, 0xaa, 32);
	memset(lh, 0xbb, 32);
	expect(hp_uenc_input_status(HP_UPROTO_JSON, h, NULL, 7, lh, &b),
	    "{\"type\":\"contract_input_status\",\"status\":\"accepted\","
	    "\"input_hash\":\"" H32_AA "\",\"ledger_seq_no\":7,"
	    "\"ledger_hash\":\"" H32_BB "\"}");
	expect(hp_uenc_input_status(HP_UPROTO_JSON, h, "nonce_expired", 0,
	    NULL, &b),
	    "{\"type\":\"contract_input_status\",\"status\":\"rejected\","
	    "\"reason\":\"nonce_expired\",\"input_hash\":\"" H32_AA "\"}");
	expect(hp_uenc_input_status(HP_UPROTO_JSON, NULL, "invalid_msg_type",
	    0, NULL, &b),
	    "{\"type\":\"contract_input_status\",\"status\":\"rejected\","
	    "\"reason\":\"invalid_msg_type\",\"input_hash\":\"\"}");
	expect(hp_uenc_lcl(HP_UPROTO_JSON, 18446744073709551615ULL, lh, &b),
	    "{\"type\":\"lcl_response\",\"ledger_seq_no\":18446744073709551615,"
	    "\"ledger_hash\":\"" H32_BB "\"}");
	expect(hp_uenc_unl_change(HP_UPROTO_JSON, NULL, 0, &b),
	    "{\"type\":\"unl_change\",\"unl\":[]}");
	expect(hp_uenc_unl_change(HP_UPROTO_JSON, h, 1, &b),
	    "{\"type\":\"unl_change\",\"unl\":[\"ed" H32_AA "\"]}");
	expect(hp_uenc_vote_status(HP_UPROTO_JSON, "synced", &b),
	    "{\"type\":\"ledger_event\",\"event\":\"vote_status\","
	    "\"vote_status\":\"synced\"}");
}

static void
test_json_read_enc(void **state)
{
	struct hp_ubuf b;

	(void)state;
	expect(hp_uenc_read_response(HP_UPROTO_JSON, "7", u8("read:ping"), 9,
	    &b), "{\"type\":\"contract_read_response\",\"reply_for\":\"7\","
	    "\"content\":\"read:ping\"}");
	expect(hp_uenc_read_response(HP_UPROTO_JSON, "7", u8("{\"a\":1}"), 7,
	    &b), "{\"type\":\"contract_read_response\",\"reply_for\":\"7\","
	    "\"content\":{\"a\":1}}");
	expect(hp_uenc_read_response(HP_UPROTO_JSON, "7", u8(""), 0, &b),
	    "{\"type\":\"contract_read_response\",\"reply_for\":\"7\","
	    "\"content\":\"\"}");
	expect(hp_uenc_read_response(HP_UPROTO_JSON, "7", u8("null"), 4, &b),
	    "{\"type\":\"contract_read_response\",\"reply_for\":\"7\","
	    "\"content\":\"null\"}");
	/* Escapes; invalid UTF-8 (a lone continuation byte, a truncated
	 * sequence, an overlong, a surrogate) becomes U+FFFD per byte;
	 * well-formed multibyte text passes. */
	static const char raw[] = "a\"\\/\n\r\t\b\f\x01\x1f\x7f"
	    "\x80|\xc3|\xc0\xaf|\xed\xa0\x80|"
	    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	expect(hp_uenc_read_response(HP_UPROTO_JSON, "q\"\n", u8(raw),
	    sizeof(raw) - 1, &b),
	    "{\"type\":\"contract_read_response\",\"reply_for\":\"q\\\"\\n\","
	    "\"content\":\"a\\\"\\\\/\\n\\r\\t\\b\\f\\u0001\\u001f\x7f"
	    "\\ufffd|\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|"
	    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}");
}

static void
test_json_stat_enc(void **state)
{
	static const char *peers[] = { "10.0.0.1:22860", "b:1" };
	struct hp_ustat s;
	uint8_t unl[32];
	struct hp_ubuf b;

	(void)state;
	memset(&s, 0, sizeof(s));
	memset(unl, 0xaa, 32);
	memset(s.ledger_hash, 0xbb, 32);
	s.ledger_seq = 3;
	s.vote_status = "synced";
	s.round_time = 1000;
	s.execution = 1;
	s.full_history = 1;
	s.unl = unl;
	s.n_unl = 1;
	s.peers = peers;
	s.n_peers = 2;
	expect(hp_uenc_stat(HP_UPROTO_JSON, &s, &b),
	    "{\"type\":\"stat_response\",\"hp_version\":\"0.6.4\","
	    "\"ledger_seq_no\":3,\"ledger_hash\":\"" H32_BB "\","
	    "\"vote_status\":\"synced\",\"round_time\":1000,"
	    "\"contract_execution_enabled\":true,"
	    "\"read_requests_enabled\":false,\"is_full_history_node\":true,"
	    "\"weakly_connected\":false,\"current_unl\":[\"ed" H32_AA "\"],"
	    "\"peers\":[\"10.0.0.1:22860\",\"b:1\"]}");
	s.n_unl = 0;
	s.n_peers = 0;
	s.peers = NULL;
	expect(hp_uenc_stat(HP_UPROTO_JSON, &s, &b),
	    "{\"type\":\"stat_response\",\"hp_version\":\"0.6.4\","
	    "\"ledger_seq_no\":3,\"ledger_hash\":\"" H32_BB "\","
	    "\"vote_status\":\"synced\",\"round_time\":1000,"
	    "\"contract_execution_enabled\":true,"
	    "\"read_requests_enabled\":false,\"is_full_history_node\":true,"
	    "\"weakly_connected\":false,\"current_unl\":[],\"peers\":[]}");
}

static void
ledger_fixture(struct hp_uledger *l)
{
	memset(l, 0, sizeof(*l));
	l->seq_no = 9;
	l->timestamp = 1700000000000ULL;
	memset(l->hash, 0xaa, 32);
	memset(l->prev_hash, 0xbb, 32);
}

#define Z64 "0000000000000000000000000000000000000000000000000000000000000000"
#define LEDGER_JSON \
	"\"seq_no\":9,\"timestamp\":1700000000000,\"hash\":\"" H32_AA "\"," \
	"\"prev_hash\":\"" H32_BB "\",\"state_hash\":\"" Z64 "\"," \
	"\"config_hash\":\"" Z64 "\",\"user_hash\":\"" Z64 "\"," \
	"\"input_hash\":\"" Z64 "\",\"output_hash\":\"" Z64 "\""

static void
test_json_ledger_enc(void **state)
{
	struct hp_uinput_rec in;
	struct hp_uoutput_rec out;
	struct hp_ublob blobs[2] = { { u8("hi"), 2 }, { u8(""), 0 } };
	struct hp_uledger l;
	struct hp_ubuf b;

	(void)state;
	ledger_fixture(&l);
	expect(hp_uenc_ledger_created(HP_UPROTO_JSON, &l, &b),
	    "{\"type\":\"ledger_event\",\"event\":\"ledger_created\","
	    "\"ledger\":{" LEDGER_JSON "}}");
	expect(hp_uenc_ledger_query_result(HP_UPROTO_JSON, "q", NULL, NULL,
	    NULL, 0, NULL, 0, &b),
	    "{\"type\":\"ledger_query_result\",\"reply_for\":\"q\","
	    "\"error\":null,\"results\":[]}");
	expect(hp_uenc_ledger_query_result(HP_UPROTO_JSON, "q", "exec_failure",
	    &l, NULL, 0, NULL, 0, &b),
	    "{\"type\":\"ledger_query_result\",\"reply_for\":\"q\","
	    "\"error\":\"exec_failure\",\"results\":[]}");
	expect(hp_uenc_ledger_query_result(HP_UPROTO_JSON, "q", NULL, &l,
	    NULL, 0, NULL, 0, &b),
	    "{\"type\":\"ledger_query_result\",\"reply_for\":\"q\","
	    "\"error\":null,\"results\":[{" LEDGER_JSON "}]}");
	/* Asked for but empty: still arrays. */
	expect(hp_uenc_ledger_query_result(HP_UPROTO_JSON, "q", NULL, &l,
	    &in, 0, &out, 0, &b),
	    "{\"type\":\"ledger_query_result\",\"reply_for\":\"q\","
	    "\"error\":null,\"results\":[{" LEDGER_JSON ",\"inputs\":[],"
	    "\"outputs\":[]}]}");
	memset(in.pubkey, 0x11, 32);
	memset(in.hash, 0xaa, 32);
	in.nonce = 5;
	in.blob = blobs[0];
	memset(out.pubkey, 0x11, 32);
	memset(out.hash, 0xbb, 32);
	out.blobs = blobs;
	out.nblobs = 2;
	expect(hp_uenc_ledger_query_result(HP_UPROTO_JSON, "q", NULL, &l,
	    &in, 1, &out, 1, &b),
	    "{\"type\":\"ledger_query_result\",\"reply_for\":\"q\","
	    "\"error\":null,\"results\":[{" LEDGER_JSON ",\"inputs\":[{"
	    "\"pubkey\":\"" KEY_HEX "\",\"hash\":\"" H32_AA "\",\"nonce\":5,"
	    "\"blob\":\"6869\"}],\"outputs\":[{\"pubkey\":\"" KEY_HEX "\","
	    "\"hash\":\"" H32_BB "\",\"blobs\":[\"6869\",\"\"]}]}]}");
}

/* ---- BSON encoders: types ---- */

static void
bparse(struct hp_ubuf *b, bson_t *doc)
{
	assert_true(bson_init_static(doc, b->data, b->len));
	assert_true(bson_validate(doc, BSON_VALIDATE_UTF8, NULL));
}

static void
bexpect_bin(const bson_t *doc, const char *path, const uint8_t *v, size_t n)
{
	bson_iter_t it;
	bson_subtype_t st;
	const uint8_t *p;
	uint32_t l;

	assert_true(bson_iter_init_find(&it, doc, path) ||
	    (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path,
	    &it)));
	assert_true(BSON_ITER_HOLDS_BINARY(&it));
	bson_iter_binary(&it, &st, &l, &p);
	assert_int_equal(st, 0x80);
	assert_int_equal(l, n);
	if (n > 0)
		assert_memory_equal(p, v, n);
}

static bson_iter_t
bfind(const bson_t *doc, const char *path)
{
	bson_iter_t it, d;

	assert_true(bson_iter_init(&it, doc));
	assert_true(bson_iter_find_descendant(&it, path, &d));
	return d;
}

static void
test_bson_enc(void **state)
{
	static const char *peers[] = { "h:1" };
	uint8_t h[32], lh[32], key33[33], unl[64];
	struct hp_ublob blob = { u8("hi"), 2 };
	struct hp_uinput_rec in;
	struct hp_uoutput_rec out;
	struct hp_uledger l;
	struct hp_ustat s;
	struct hp_ubuf b;
	bson_iter_t it;
	bson_t doc;

	(void)state;
	memset(h, 0xaa, 32);
	memset(lh, 0xbb, 32);
	memset(unl, 0xaa, 32);
	memset(unl + 32, 0xbb, 32);
	key33[0] = 0xed;
	memset(key33 + 1, 0xaa, 32);

	assert_int_equal(hp_uenc_input_status(HP_UPROTO_BSON, h, NULL,
	    (uint64_t)INT32_MAX, lh, &b), 0);
	bparse(&b, &doc);
	it = bfind(&doc, "status");
	assert_string_equal(bson_iter_utf8(&it, NULL), "accepted");
	bexpect_bin(&doc, "input_hash", h, 32);
	bexpect_bin(&doc, "ledger_hash", lh, 32);
	it = bfind(&doc, "ledger_seq_no");
	assert_true(BSON_ITER_HOLDS_INT32(&it));
	assert_int_equal(bson_iter_int32(&it), INT32_MAX);
	assert_false(bson_has_field(&doc, "reason"));
	free(b.data);

	assert_int_equal(hp_uenc_lcl(HP_UPROTO_BSON, (uint64_t)INT32_MAX + 1,
	    lh, &b), 0);
	bparse(&b, &doc);
	it = bfind(&doc, "ledger_seq_no");
	assert_true(BSON_ITER_HOLDS_INT64(&it));
	assert_int_equal(bson_iter_int64(&it), (int64_t)INT32_MAX + 1);
	free(b.data);
	/* Beyond int64 cannot be written. */
	assert_int_equal(hp_uenc_lcl(HP_UPROTO_BSON, UINT64_MAX, lh, &b),
	    HP_EINVAL);
	assert_null(b.data);

	assert_int_equal(hp_uenc_input_status(HP_UPROTO_BSON, NULL,
	    "bad_msg_format", 0, NULL, &b), 0);
	bparse(&b, &doc);
	bexpect_bin(&doc, "input_hash", NULL, 0);
	it = bfind(&doc, "reason");
	assert_string_equal(bson_iter_utf8(&it, NULL), "bad_msg_format");
	free(b.data);

	assert_int_equal(hp_uenc_read_response(HP_UPROTO_BSON, "r", u8("\"x\""),
	    3, &b), 0);
	bparse(&b, &doc);
	bexpect_bin(&doc, "content", u8("\"x\""), 3);
	it = bfind(&doc, "reply_for");
	assert_string_equal(bson_iter_utf8(&it, NULL), "r");
	free(b.data);

	memset(&s, 0, sizeof(s));
	s.ledger_seq = 1;
	s.vote_status = "desync";
	s.round_time = 1000;
	s.read_requests = 1;
	s.unl = unl;
	s.n_unl = 2;
	s.peers = peers;
	s.n_peers = 1;
	assert_int_equal(hp_uenc_stat(HP_UPROTO_BSON, &s, &b), 0);
	bparse(&b, &doc);
	it = bfind(&doc, "current_unl");
	assert_true(BSON_ITER_HOLDS_ARRAY(&it));
	bexpect_bin(&doc, "current_unl.0", key33, 33);
	it = bfind(&doc, "peers");
	assert_true(BSON_ITER_HOLDS_ARRAY(&it));
	it = bfind(&doc, "peers.0");
	assert_string_equal(bson_iter_utf8(&it, NULL), "h:1");
	it = bfind(&doc, "read_requests_enabled");
	assert_true(BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it));
	it = bfind(&doc, "weakly_connected");
	assert_true(BSON_ITER_HOLDS_BOOL(&it) && !bson_iter_bool(&it));
	it = bfind(&doc, "round_time");
	assert_true(BSON_ITER_HOLDS_INT32(&it));
	free(b.data);

	assert_int_equal(hp_uenc_unl_change(HP_UPROTO_BSON, NULL, 0, &b), 0);
	bparse(&b, &doc);
	it = bfind(&doc, "unl");
	assert_true(BSON_ITER_HOLDS_ARRAY(&it));
	free(b.data);

	ledger_fixture(&l);
	assert_int_equal(hp_uenc_ledger_created(HP_UPROTO_BSON, &l, &b), 0);
	bparse(&b, &doc);
	it = bfind(&doc, "ledger.timestamp");
	assert_true(BSON_ITER_HOLDS_INT64(&it));
	it = bfind(&doc, "ledger.seq_no");
	assert_true(BSON_ITER_HOLDS_INT32(&it));
	bexpect_bin(&doc, "ledger.hash", l.hash, 32);
	bexpect_bin(&doc, "ledger.output_hash", l.output_hash, 32);
	free(b.data);

	memset(&in, 0, sizeof(in));
	in.blob = blob;
	in.nonce = 1700000000000ULL;
	memset(in.pubkey, 0xaa, 32);
	memset(&out, 0, sizeof(out));
	memset(out.pubkey, 0xaa, 32);
	out.blobs = &blob;
	out.nblobs = 1;
	assert_int_equal(hp_uenc_ledger_query_result(HP_UPROTO_BSON, "q", NULL,
	    &l, &in, 1, &out, 1, &b), 0);
	bparse(&b, &doc);
	it = bfind(&doc, "error");
	assert_true(BSON_ITER_HOLDS_NULL(&it));
	it = bfind(&doc, "results");
	assert_true(BSON_ITER_HOLDS_ARRAY(&it));
	bexpect_bin(&doc, "results.0.inputs.0.blob", u8("hi"), 2);
	bexpect_bin(&doc, "results.0.inputs.0.pubkey", key33, 33);
	it = bfind(&doc, "results.0.inputs.0.nonce");
	assert_true(BSON_ITER_HOLDS_INT64(&it));
	bexpect_bin(&doc, "results.0.outputs.0.blobs.0", u8("hi"), 2);
	free(b.data);

	assert_int_equal(hp_uenc_ledger_query_result(HP_UPROTO_BSON, "q",
	    "exec_failure", NULL, NULL, 0, NULL, 0, &b), 0);
	bparse(&b, &doc);
	it = bfind(&doc, "results");
	assert_true(BSON_ITER_HOLDS_ARRAY(&it));
	it = bfind(&doc, "error");
	assert_string_equal(bson_iter_utf8(&it, NULL), "exec_failure");
	free(b.data);

	assert_int_equal(hp_uenc_vote_status(HP_UPROTO_BSON, "\xff", &b),
	    HP_EINVAL);
}

/* ---- hashes and trees ---- */

static void
test_leaf(size_t i, uint8_t out[32])
{
	memset(out, 0xa5, 32);
	out[0] = (uint8_t)(i & 0xff);
	out[1] = (uint8_t)((i >> 8) & 0xff);
}

static uint8_t *
test_leaves(size_t n)
{
	uint8_t *l = malloc(32 * n + 1);

	assert_non_null(l);
	for (size_t i = 0; i < n; i++)
		test_leaf(i, l + 32 * i);
	return l;
}

static void
unhex(const char *s, uint8_t *out, size_t n)
{
	assert_int_equal(strlen(s), 2 * n);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void
test_output_hash(void **state)
{
	struct hp_ublob o[2] = { { u8("hello"), 5 }, { u8("world"), 5 } };
	uint8_t key[32], h[32];
	char hex[65];

	(void)state;
	memset(key, 0x11, 32);
	hp_uoutput_hash(key, o, 2, h);
	tohex(h, 32, hex);
	/* node: blake3.hash(ed || 0x11*32 || "hello" || "world") */
	assert_string_equal(hex,
	    "1ad9f99f0dad90399e711b91e88a7819d20e5501a56a649778ad0f3775ca8fc9");
}

static void
test_tree_root(void **state)
{
	/* node tests/unit/usermsg_vectors.js --roots */
	static const struct {
		size_t n;
		const char *root;
	} v[] = {
		{ 1, "0000a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5"
		    "a5a5a5a5" },
		{ 2, "658c78d3bbf5de82c69a1c560311aeb5b16ab77fb90835a83e3ce93c"
		    "5e75d588" },
		{ 16, "cdd6c12619028acc3b0c47e4914d104a19da109cf3caffb1bcff7e59"
		    "c841d993" },
		{ 17, "615c0f8f1df9e4cd7f96c16275e2bdf95b09718f1a294c47c76d436a"
		    "479b7edd" },
		{ 300, "2f7b77f4f3418e2741cf0b7bd2c27e5d59a0490a1883cb4ef348"
		    "1109c8bc2446" },
	};
	uint8_t root[32], zero[32] = { 0 }, two[64];
	char hex[65];

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t *l = test_leaves(v[i].n);

		hp_utree_root(l, v[i].n, root);
		tohex(root, 32, hex);
		assert_string_equal(hex, v[i].root);
		free(l);
	}
	hp_utree_root(NULL, 0, root);
	assert_memory_equal(root, zero, 32);
	/* Two leaves: BLAKE3(user hash || state hash). */
	test_leaf(0, two);
	test_leaf(1, two + 32);
	hp_hash(two, 64, zero);
	hp_utree_root(two, 2, root);
	assert_memory_equal(root, zero, 32);
}

/* Root of a collapsed JSON tree with self standing for null. */
static int
json_tree_root(json_t *t, const uint8_t self[32], int *nulls,
    uint8_t out[32])
{
	uint8_t *buf;
	json_t *v;
	size_t i, n;

	if (!json_is_array(t) || (n = json_array_size(t)) < 2)
		return -1;
	buf = malloc(32 * n);
	assert_non_null(buf);
	json_array_foreach(t, i, v) {
		if (json_is_null(v)) {
			memcpy(buf + 32 * i, self, 32);
			++*nulls;
		} else if (json_is_string(v))
			unhex(json_string_value(v), buf + 32 * i, 32);
		else if (json_tree_root(v, self, nulls, buf + 32 * i) != 0) {
			free(buf);
			return -1;
		}
	}
	hp_hash(buf, 32 * n, out);
	free(buf);
	return 0;
}

/* Writes one contract_output case for usermsg_vectors.js. */
static void
vector_line(FILE *f, const char *proto, const uint8_t pk[32],
    const uint8_t node[32], const uint8_t *leaves, size_t n,
    const uint8_t root[32], struct hp_ubuf *b)
{
	char hex[65], nhex[65];

	tohex(pk, 32, hex);
	tohex(node, 32, nhex);
	fprintf(f, "{\"proto\":\"%s\",\"pubkey\":\"ed%s\","
	    "\"trusted\":[\"ed%s\"],\"msg\":\"", proto, hex, nhex);
	for (size_t i = 0; i < b->len; i++)
		fprintf(f, "%02x", b->data[i]);
	fprintf(f, "\",\"leaves\":[");
	for (size_t i = 0; i < n; i++) {
		tohex(leaves + 32 * i, 32, hex);
		fprintf(f, "%s\"%s\"", i ? "," : "", hex);
	}
	tohex(root, 32, hex);
	fprintf(f, "],\"root\":\"%s\"}\n", hex);
}

/* The user's output hash h at leaf self, and the node's signature over
 * the new root. */
static void
set_leaf(uint8_t *leaves, size_t n, size_t self, const uint8_t h[32],
    const uint8_t *nsk, uint8_t root[32], uint8_t sig[64])
{
	memcpy(leaves + 32 * self, h, 32);
	hp_utree_root(leaves, n, root);
	crypto_sign_detached(sig, NULL, root, 32, nsk);
}

static void
test_contract_output(void **state)
{
	static const size_t sizes[] = { 2, 16, 17, 300 };
	uint8_t upk[32], usk[64], npk[32], nsk[64], oh[32], root[32], sig[64];
	uint8_t lh[32], r2[32];
	struct hp_ublob outs[2] = { { u8("Echoing: hello"), 14 },
	    { u8("\x00\x01\xff"), 3 } };
	char path[] = "/tmp/test_usermsg.XXXXXX", cmd[1200], line[512];
	struct hp_ubuf b;
	json_error_t je;
	json_t *msg;
	int fd, cases = 0, oks = 0;
	FILE *f, *p;

	(void)state;
	assert_int_equal(sodium_init() >= 0, 1);
	crypto_sign_keypair(upk, usk);
	crypto_sign_keypair(npk, nsk);
	memset(lh, 0x42, 32);
	hp_uoutput_hash(upk, outs, 2, oh);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);

	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		size_t n = sizes[si];
		uint8_t *leaves = test_leaves(n);

		for (size_t self = 0; self < n; self++) {
			int nulls = 0;

			/* Every self for small trees; a spread for 300. */
			if (n > 17 && self % 37 != 0 && self != 255 &&
			    self != 256 && self != n - 1)
				continue;
			set_leaf(leaves, n, self, oh, nsk, root, sig);
			assert_int_equal(hp_uenc_contract_output(HP_UPROTO_JSON,
			    5, lh, outs, 1, oh, leaves, n, self, npk, sig, 1,
			    &b), 0);
			msg = json_loadb((const char *)b.data, b.len, 0, &je);
			assert_non_null(msg);
			assert_int_equal(json_tree_root(json_object_get(msg,
			    "hash_tree"), oh, &nulls, r2), 0);
			assert_int_equal(nulls, 1);
			assert_memory_equal(r2, root, 32);
			json_decref(msg);
			free(b.data);

			/* The JSON check hashes parsed values: give the
			 * client raw text it sees as a string. */
			{
				struct hp_ublob o1 = outs[0];
				uint8_t oh1[32];

				hp_uoutput_hash(upk, &o1, 1, oh1);
				set_leaf(leaves, n, self, oh1, nsk, root, sig);
				assert_int_equal(hp_uenc_contract_output(
				    HP_UPROTO_JSON, 5, lh, &o1, 1, oh1, leaves,
				    n, self, npk, sig, 1, &b), 0);
				vector_line(f, "json", upk, npk, leaves, n,
				    root, &b);
				free(b.data);
				cases++;
			}

			set_leaf(leaves, n, self, oh, nsk, root, sig);
			assert_int_equal(hp_uenc_contract_output(HP_UPROTO_BSON,
			    5, lh, outs, 2, oh, leaves, n, self, npk, sig, 1,
			    &b), 0);
			vector_line(f, "bson", upk, npk, leaves, n, root, &b);
			free(b.data);
			cases++;
			test_leaf(self, leaves + 32 * self);
		}
		free(leaves);
	}
	fclose(f);

	/* The exact text for the single-user case: [null, state]. */
	{
		uint8_t l2[64];
		char want[1024], sh[65], ohx[65], pkx[65], sx[129], lhx[65];

		memcpy(l2, oh, 32);
		test_leaf(9, l2 + 32);
		assert_int_equal(hp_uenc_contract_output(HP_UPROTO_JSON, 5, lh,
		    outs, 1, oh, l2, 2, 0, npk, sig, 1, &b), 0);
		tohex(l2 + 32, 32, sh);
		tohex(oh, 32, ohx);
		tohex(npk, 32, pkx);
		tohex(sig, 64, sx);
		tohex(lh, 32, lhx);
		snprintf(want, sizeof(want), "{\"type\":\"contract_output\","
		    "\"ledger_seq_no\":5,\"ledger_hash\":\"%s\",\"outputs\":"
		    "[\"Echoing: hello\"],\"output_hash\":\"%s\",\"hash_tree\":"
		    "[null,\"%s\"],\"unl_sig\":[[\"ed%s\",\"%s\"]]}", lhx, ohx,
		    sh, pkx, sx);
		expect_buf(0, &b, want);
		assert_int_equal(hp_uenc_contract_output(HP_UPROTO_JSON, 5, lh,
		    outs, 1, oh, l2, 1, 0, npk, sig, 1, &b), HP_EINVAL);
		assert_int_equal(hp_uenc_contract_output(HP_UPROTO_JSON, 5, lh,
		    outs, 1, oh, l2, 2, 2, npk, sig, 1, &b), HP_EINVAL);
	}

	/* The real client's check, when node and its modules are here. */
	snprintf(cmd, sizeof(cmd), "test -d %s/../interop/node_modules/"
	    "hotpocket-js-client && command -v node >/dev/null",
	    USERMSG_TEST_DIR);
	if (system(cmd) != 0) {
		unlink(path);
		print_message("node or tests/interop/node_modules missing: "
		    "client check skipped\n");
		return;
	}
	snprintf(cmd, sizeof(cmd), "node %s/usermsg_vectors.js %s 2>&1",
	    USERMSG_TEST_DIR, path);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p) != NULL) {
		if (strncmp(line, "ok ", 3) == 0)
			oks++;
		else
			print_message("%s", line);
	}
	assert_int_equal(pclose(p), 0);
	unlink(path);
	assert_int_equal(oks, cases);
	print_message("hotpocket-js-client accepted %d messages\n", oks);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_ok),
		cmocka_unit_test(test_handshake_bad),
		cmocka_unit_test(test_msg_input),
		cmocka_unit_test(test_msg_read),
		cmocka_unit_test(test_msg_simple),
		cmocka_unit_test(test_msg_bson_corrupt),
		cmocka_unit_test(test_msg_subscription),
		cmocka_unit_test(test_msg_ledger_query),
		cmocka_unit_test(test_input_container),
		cmocka_unit_test(test_embed_rule),
		cmocka_unit_test(test_json_handshake_enc),
		cmocka_unit_test(test_json_status_enc),
		cmocka_unit_test(test_json_read_enc),
		cmocka_unit_test(test_json_stat_enc),
		cmocka_unit_test(test_json_ledger_enc),
		cmocka_unit_test(test_bson_enc),
		cmocka_unit_test(test_output_hash),
		cmocka_unit_test(test_tree_root),
		cmocka_unit_test(test_contract_output),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
