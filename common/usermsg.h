/*
 * usermsg.h — the user protocol's messages (hotpocket-js-client 0.5.7) in
 * JSON and BSON: decoders for what clients send, encoders for what the
 * node sends, the input container, and the per-user collapsed Merkle tree
 * of contract outputs. Pure functions: no I/O, no globals. Every decoder
 * takes untrusted bytes, checks each limit before it allocates, and is
 * fuzzed (tests/fuzz/fuzz_usermsg_json.c, fuzz_usermsg_bson.c).
 *
 * Keys and hashes are raw bytes here; the codec writes them as lowercase
 * hex (JSON) or binary subtype 0x80 (BSON). A user public key is the
 * 32-byte ed25519 key; on the wire it is 0xED || key ("ed" + 64 hex).
 *
 * Ownership: a decoded struct owns its buffers (free with its _free
 * function). Encoders fill a struct hp_ubuf the caller frees with free();
 * on failure it is left empty (data NULL). Encoders return 0, HP_ENOMEM,
 * HP_ETOOBIG (a BSON document over 2 GiB) or HP_EINVAL (a string that is
 * not UTF-8 in BSON, an integer above 2^63-1 in BSON, a bad tree index).
 * Decoders read hex in either case; encoders write lowercase. In JSON
 * text the encoders write, bytes that are not well-formed UTF-8 become
 * U+FFFD, one per byte, so a message always parses.
 */
#ifndef HP_USERMSG_H
#define HP_USERMSG_H

#include <stddef.h>
#include <stdint.h>

enum hp_uproto { HP_UPROTO_JSON = 0, HP_UPROTO_BSON = 1 };

struct hp_ubuf {
	uint8_t *data;
	size_t len;
};

/* ---- handshake (always JSON) ---- */

/* {"hp_version","type":"user_challenge","contract_id","contract_version",
 * "challenge"} with challenge = 32 lowercase hex characters. */
int hp_uenc_user_challenge(const char *contract_id,
    const char *contract_version, const char challenge[33],
    struct hp_ubuf *out);

struct hp_uhandshake {
	uint8_t pubkey[32];
	uint8_t sig[64];		/* over the challenge's hex text */
	int has_server_challenge;
	char server_challenge[33];	/* NUL-terminated, <= 32 chars */
	enum hp_uproto proto;
};
/* user_challenge_response; HP_EFORMAT on anything malformed (type, field
 * types, key not 33 bytes or not 0xED-prefixed, sig not 64 bytes,
 * server_challenge empty, over 32 characters or holding NUL, unknown or
 * missing protocol, a field given twice). Unknown fields are ignored.
 * The signature is NOT verified here. */
int hp_udec_handshake(const uint8_t *buf, size_t len,
    struct hp_uhandshake *out);

/* {"type":"server_challenge_response","sig","pubkey","unl":[...]}; unl is
 * n sorted 32-byte keys, always written as an array. */
int hp_uenc_server_challenge_response(const uint8_t sig[64],
    const uint8_t pubkey[32], const uint8_t *unl, size_t n,
    struct hp_ubuf *out);

/* ---- client → node, after the handshake ---- */

enum hp_umsg_type {
	HP_UM_INPUT = 1,	/* contract_input */
	HP_UM_READ,		/* contract_read_request */
	HP_UM_STAT,		/* stat */
	HP_UM_LCL,		/* lcl */
	HP_UM_SUBSCRIPTION,	/* subscription */
	HP_UM_LEDGER_QUERY,	/* ledger_query (filter_by seq_no) */
	HP_UM_UNKNOWN,		/* a well-formed message of another type:
				   reply invalid_msg_type */
};

enum hp_uchannel {
	HP_UCH_UNL_CHANGE = 1,
	HP_UCH_LEDGER_EVENT = 2,
	HP_UCH_HEALTH_EVENT = 3,
};

struct hp_umsg {
	enum hp_umsg_type type;
	/* HP_UM_INPUT: the exact signed container bytes (the unescaped JSON
	 * string value, or the raw BSON binary) and the signature. */
	uint8_t *container;
	size_t container_len;
	uint8_t sig[64];
	/* HP_UM_READ and HP_UM_LEDGER_QUERY: the request id (NUL-terminated,
	 * at most 256 bytes). */
	char *id;
	/* HP_UM_READ: the request content (JSON: the string's UTF-8 bytes;
	 * BSON: the binary). */
	uint8_t *content;
	size_t content_len;
	/* HP_UM_SUBSCRIPTION */
	enum hp_uchannel channel;
	int enabled;
	/* HP_UM_LEDGER_QUERY */
	uint64_t seq_no;
	int want_inputs, want_outputs;
};

/*
 * Decode one message in the session's protocol. Returns 0, or
 * HP_EFORMAT when it does not parse, has no string type, or a known type
 * has missing or mistyped fields (the caller replies bad_msg_format,
 * except for subscription and ledger_query, which get no reply). When
 * *sig_ok is non-NULL it is set to 1 if the input's sig field was
 * extracted (for the input hash of a bad_msg_format rejection) and the
 * sig is copied to out->sig even if the rest failed. On HP_EFORMAT
 * out->type still names the type when it was recognised (0 when the
 * message had no string type), and out holds no buffers. A field given
 * twice (JSON or BSON) is malformed; unknown fields are ignored. JSON
 * integers must be integers (1.0 and 1e3 are not); BSON ones int32 or
 * int64; both non-negative. A request id holds no NUL.
 */
int hp_udec_msg(enum hp_uproto proto, const uint8_t *buf, size_t len,
    struct hp_umsg *out, int *sig_ok);
void hp_umsg_free(struct hp_umsg *m);

/* The input container {input, nonce, max_ledger_seq_no} (§3.2): input a
 * string (JSON) or binary (BSON), nonce > 0 and max_ledger_seq_no as
 * non-negative integers (BSON int32 or int64). Anything else HP_EFORMAT.
 * out->input is malloc'd (may be zero-length, never NULL on success). */
struct hp_uinput {
	uint8_t *input;
	size_t input_len;
	uint64_t nonce;
	uint64_t max_ledger_seq_no;
};
int hp_udec_input(enum hp_uproto proto, const uint8_t *buf, size_t len,
    struct hp_uinput *out);
void hp_uinput_free(struct hp_uinput *in);

/* ---- node → client ---- */

/* contract_input_status: reason NULL means accepted (then seq and
 * ledger_hash are written); otherwise rejected with that reason.
 * input_hash NULL writes an empty hash ("" or a zero-length binary), as
 * for a message that did not parse or had an unknown type. */
int hp_uenc_input_status(enum hp_uproto proto, const uint8_t input_hash[32],
    const char *reason, uint64_t ledger_seq, const uint8_t ledger_hash[32],
    struct hp_ubuf *out);

/* contract_read_response {reply_for, content}; content embedded with
 * HotPocket's JSON rule (hp_ujson_embed) in JSON, binary in BSON. */
int hp_uenc_read_response(enum hp_uproto proto, const char *reply_for,
    const uint8_t *content, size_t len, struct hp_ubuf *out);

struct hp_ublob {
	const uint8_t *data;
	size_t len;
};

/*
 * contract_output for one user: outputs (n), that user's output hash,
 * the tree's leaves (nleaves 32-byte hashes: sorted user output hashes,
 * then the state hash), the index of this user's leaf, and the UNL
 * signatures (nsigs pairs of 32-byte key and 64-byte signature over the
 * root). hash_tree is the collapsed 16-ary tree with null for this
 * user's leaf (hp_utree_root for the root definition). nleaves must be
 * at least 2 (one user and the state hash) and self < nleaves, else
 * HP_EINVAL.
 */
int hp_uenc_contract_output(enum hp_uproto proto, uint64_t ledger_seq,
    const uint8_t ledger_hash[32], const struct hp_ublob *outputs, size_t n,
    const uint8_t output_hash[32], const uint8_t *leaves, size_t nleaves,
    size_t self, const uint8_t *sig_keys, const uint8_t *sigs, size_t nsigs,
    struct hp_ubuf *out);

/* The ledger fields the protocol shows. */
struct hp_uledger {
	uint64_t seq_no;
	uint64_t timestamp;
	uint8_t hash[32], prev_hash[32], state_hash[32], config_hash[32],
	    user_hash[32], input_hash[32], output_hash[32];
};

struct hp_ustat {
	uint64_t ledger_seq;
	uint8_t ledger_hash[32];
	const char *vote_status;	/* unknown|unreliable|desync|synced */
	uint64_t round_time;
	int execution, read_requests, full_history, weakly_connected;
	const uint8_t *unl;		/* n_unl 32-byte keys */
	size_t n_unl;
	const char *const *peers;	/* n_peers "host:port"; the first 100
					   are written */
	size_t n_peers;
};
int hp_uenc_stat(enum hp_uproto proto, const struct hp_ustat *s,
    struct hp_ubuf *out);
int hp_uenc_lcl(enum hp_uproto proto, uint64_t seq, const uint8_t hash[32],
    struct hp_ubuf *out);
int hp_uenc_unl_change(enum hp_uproto proto, const uint8_t *unl, size_t n,
    struct hp_ubuf *out);
/* ledger_event {event:"ledger_created", ledger:{...}} */
int hp_uenc_ledger_created(enum hp_uproto proto, const struct hp_uledger *l,
    struct hp_ubuf *out);
/* ledger_event {event:"vote_status", vote_status} */
int hp_uenc_vote_status(enum hp_uproto proto, const char *status,
    struct hp_ubuf *out);

struct hp_uinput_rec {		/* a ledger's input, for ledger_query */
	uint8_t pubkey[32];
	uint8_t hash[32];
	uint64_t nonce;
	struct hp_ublob blob;
};
struct hp_uoutput_rec {		/* a ledger's outputs for one user */
	uint8_t pubkey[32];
	uint8_t hash[32];
	const struct hp_ublob *blobs;
	size_t nblobs;
};
/*
 * ledger_query_result {reply_for, error, results}. l NULL: results []
 * (no such ledger). error non-NULL: that error and results []. inputs /
 * outputs NULL: the field is left out (not asked for); otherwise written
 * as an array even when empty. JSON writes blobs as hex.
 */
int hp_uenc_ledger_query_result(enum hp_uproto proto, const char *reply_for,
    const char *error, const struct hp_uledger *l,
    const struct hp_uinput_rec *inputs, size_t ninputs,
    const struct hp_uoutput_rec *outputs, size_t noutputs,
    struct hp_ubuf *out);

/* ---- hashing helpers ---- */

/* BLAKE3(0xED || pubkey || output_1 || ... || output_n). */
void hp_uoutput_hash(const uint8_t pubkey[32], const struct hp_ublob *outputs,
    size_t n, uint8_t out[32]);
/* Root of HotPocket's 16-ary tree over nleaves leaves: groups of 16, each
 * parent BLAKE3 of its children joined, a group of one collapses into
 * its child, repeated until one remains. nleaves 0: all zero. */
void hp_utree_root(const uint8_t *leaves, size_t nleaves, uint8_t out[32]);
/* HotPocket's rule: 1 when bytes are pasted into JSON as a value
 * unchanged ("..." / {...} / [...] / true / false / digits with at most
 * one '.'), 0 when they are written as an escaped string. */
int hp_ujson_embed(const uint8_t *b, size_t len);

#endif
