/*
 * usermsg.c — the user protocol codec (usermsg.h): HotPocket's client
 * messages in JSON and BSON, the input container and the per-user
 * collapsed output tree.
 *
 * Encoders write through one small writer with a JSON back end (text built
 * by hand, because output bytes may be pasted into it unchanged) and a
 * BSON back end (libbson), so each message is described once. Strings are
 * escaped for JSON with control characters as \uXXXX or their short form;
 * bytes that are not well-formed UTF-8 become U+FFFD, one per byte, so the
 * text always parses. Decoders read either a jansson object or a libbson
 * document through the same accessors. BSON is only ever walked one level
 * at a time with bson_iter (libbson's bson_validate recurses without a
 * depth limit), every element is checked for corruption, and a key seen
 * twice makes the message malformed.
 */
#include "usermsg.h"
#include "err.h"

#include <blake3.h>
#include <bson.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_VERSION_STR	"0.6.4"
#define ID_MAX		256	/* bytes of a request id */
#define CHALLENGE_MAX	32	/* characters of a server challenge */
#define PEERS_MAX	100	/* peers listed in stat_response */
#define W_DEPTH		24	/* nesting the writer allows */

/* ---- writer ---- */

struct w {
	enum hp_uproto proto;
	int err;
	int depth;
	int isarr[W_DEPTH];
	int first[W_DEPTH];	/* JSON: nothing written yet at this level */
	uint32_t idx[W_DEPTH];	/* BSON: next array index */
	char *p;		/* JSON text */
	size_t len, cap;
	bson_t doc[W_DEPTH];	/* BSON: open documents; doc[1] is the top */
};

static void
w_init(struct w *w, enum hp_uproto proto)
{
	memset(w, 0, sizeof(*w));
	w->proto = proto;
}

static void
w_fail(struct w *w, int err)
{
	if (w->err == 0)
		w->err = err;
}

static void
w_put(struct w *w, const void *b, size_t n)
{
	if (w->err != 0)
		return;
	if (n > w->cap - w->len) {
		size_t ncap = w->cap ? w->cap : 256;
		char *np;

		while (n > ncap - w->len) {
			if (ncap > SIZE_MAX / 2) {
				w_fail(w, HP_ENOMEM);
				return;
			}
			ncap *= 2;
		}
		if ((np = realloc(w->p, ncap)) == NULL) {
			w_fail(w, HP_ENOMEM);
			return;
		}
		w->p = np;
		w->cap = ncap;
	}
	memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void
w_puts(struct w *w, const char *s)
{
	w_put(w, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at b, or 0 if there is none. */
static size_t
utf8_seq(const uint8_t *b, size_t left)
{
	uint8_t c = b[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n > left || b[1] < lo || b[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (b[i] < 0x80 || b[i] > 0xbf)
			return 0;
	return n;
}

/* b as a quoted JSON string (see the top of the file). */
static void
w_jstr(struct w *w, const uint8_t *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char esc[8];
	size_t i = 0, run = 0, k;

	w_put(w, "\"", 1);
	while (i < n) {
		uint8_t c = b[i];

		if (c >= 0x20 && c != '"' && c != '\\' &&
		    (k = utf8_seq(b + i, n - i)) != 0) {
			i += k;
			run += k;
			continue;
		}
		w_put(w, b + i - run, run);
		run = 0;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			w_put(w, esc, 2);
		} else if (c == '\n')
			w_puts(w, "\\n");
		else if (c == '\r')
			w_puts(w, "\\r");
		else if (c == '\t')
			w_puts(w, "\\t");
		else if (c == '\b')
			w_puts(w, "\\b");
		else if (c == '\f')
			w_puts(w, "\\f");
		else if (c < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = digits[c >> 4];
			esc[5] = digits[c & 15];
			w_put(w, esc, 6);
		} else
			w_puts(w, "\\ufffd");
		i++;
	}
	w_put(w, b + i - run, run);
	w_put(w, "\"", 1);
}

/* Starts a value: the JSON comma and key, or the BSON key (into kbuf). */
static const char *
w_key(struct w *w, const char *key, char kbuf[16])
{
	const char *k = key;
	int d = w->depth;

	if (d == 0)
		return k;
	if (w->proto == HP_UPROTO_BSON) {
		if (w->isarr[d])
			bson_uint32_to_string(w->idx[d]++, &k, kbuf, 16);
		return k;
	}
	if (!w->first[d])
		w_put(w, ",", 1);
	w->first[d] = 0;
	if (!w->isarr[d]) {
		w_jstr(w, (const uint8_t *)key, strlen(key));
		w_put(w, ":", 1);
	}
	return k;
}

static void
w_bson_check(struct w *w, bool ok)
{
	if (!ok)
		w_fail(w, HP_ETOOBIG);
}

static void
w_open(struct w *w, const char *key, int arr)
{
	char kbuf[16];
	const char *k;
	int d = w->depth;

	if (w->err != 0)
		return;
	if (d + 1 >= W_DEPTH) {
		w_fail(w, HP_EINVAL);
		return;
	}
	k = w_key(w, key, kbuf);
	if (w->proto == HP_UPROTO_JSON)
		w_put(w, arr ? "[" : "{", 1);
	else if (d == 0)
		bson_init(&w->doc[1]);
	else if (arr)
		w_bson_check(w, bson_append_array_begin(&w->doc[d], k, -1,
		    &w->doc[d + 1]));
	else
		w_bson_check(w, bson_append_document_begin(&w->doc[d], k, -1,
		    &w->doc[d + 1]));
	if (w->err != 0)
		return;		/* a child that was not begun is not ended */
	w->depth = ++d;
	w->isarr[d] = arr;
	w->first[d] = 1;
	w->idx[d] = 0;
}

static void
w_close(struct w *w)
{
	int d = w->depth;

	if (w->err != 0)
		return;
	w->depth = d - 1;
	if (w->proto == HP_UPROTO_JSON) {
		w_put(w, w->isarr[d] ? "]" : "}", 1);
		return;
	}
	if (d == 1)
		return;
	if (w->isarr[d])
		w_bson_check(w, bson_append_array_end(&w->doc[d - 1],
		    &w->doc[d]));
	else
		w_bson_check(w, bson_append_document_end(&w->doc[d - 1],
		    &w->doc[d]));
}

static void
w_str(struct w *w, const char *key, const char *s)
{
	char kbuf[16];
	const char *k;
	size_t n = strlen(s);

	if (w->err != 0)
		return;
	k = w_key(w, key, kbuf);
	if (w->proto == HP_UPROTO_JSON) {
		w_jstr(w, (const uint8_t *)s, n);
		return;
	}
	if (n > INT32_MAX || !bson_utf8_validate(s, n, false)) {
		w_fail(w, HP_EINVAL);
		return;
	}
	w_bson_check(w, bson_append_utf8(&w->doc[w->depth], k, -1, s,
	    (int)n));
}

/* Bytes: a BSON binary of subtype 0x80, or, in JSON, lowercase hex after
 * the text prefix pfx. */
static void
w_bin(struct w *w, const char *key, const char *pfx, const uint8_t *b,
    size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char kbuf[16], hx[128];
	const char *k;
	size_t i, j;

	if (w->err != 0)
		return;
	k = w_key(w, key, kbuf);
	if (w->proto == HP_UPROTO_BSON) {
		if (n > INT32_MAX - 64) {
			w_fail(w, HP_ETOOBIG);
			return;
		}
		w_bson_check(w, bson_append_binary(&w->doc[w->depth], k, -1,
		    BSON_SUBTYPE_USER, b, (uint32_t)n));
		return;
	}
	w_put(w, "\"", 1);
	w_puts(w, pfx);
	for (i = 0; i < n; ) {
		for (j = 0; j < sizeof(hx) && i < n; i++) {
			hx[j++] = digits[b[i] >> 4];
			hx[j++] = digits[b[i] & 15];
		}
		w_put(w, hx, j);
	}
	w_put(w, "\"", 1);
}

static void
w_hex(struct w *w, const char *key, const uint8_t *b, size_t n)
{
	w_bin(w, key, "", b, n);
}

/* A user or node public key: 0xED || key. */
static void
w_key32(struct w *w, const char *key, const uint8_t pk[32])
{
	uint8_t b[33];

	if (w->proto == HP_UPROTO_JSON) {
		w_bin(w, key, "ed", pk, 32);
		return;
	}
	b[0] = 0xed;
	memcpy(b + 1, pk, 32);
	w_bin(w, key, "", b, 33);
}

static void
w_u64(struct w *w, const char *key, uint64_t v)
{
	char kbuf[16], num[24];
	const char *k;

	if (w->err != 0)
		return;
	k = w_key(w, key, kbuf);
	if (w->proto == HP_UPROTO_JSON) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
		w_puts(w, num);
	} else if (v <= INT32_MAX)
		w_bson_check(w, bson_append_int32(&w->doc[w->depth], k, -1,
		    (int32_t)v));
	else if (v <= INT64_MAX)
		w_bson_check(w, bson_append_int64(&w->doc[w->depth], k, -1,
		    (int64_t)v));
	else
		w_fail(w, HP_EINVAL);
}

static void
w_bool(struct w *w, const char *key, int v)
{
	char kbuf[16];
	const char *k;

	if (w->err != 0)
		return;
	k = w_key(w, key, kbuf);
	if (w->proto == HP_UPROTO_JSON)
		w_puts(w, v ? "true" : "false");
	else
		w_bson_check(w, bson_append_bool(&w->doc[w->depth], k, -1,
		    v != 0));
}

static void
w_null(struct w *w, const char *key)
{
	char kbuf[16];
	const char *k;

	if (w->err != 0)
		return;
	k = w_key(w, key, kbuf);
	if (w->proto == HP_UPROTO_JSON)
		w_puts(w, "null");
	else
		w_bson_check(w, bson_append_null(&w->doc[w->depth], k, -1));
}

/* Contract output or read content: JSON by HotPocket's embedding rule,
 * BSON as binary. */
static void
w_embed(struct w *w, const char *key, const uint8_t *b, size_t n)
{
	char kbuf[16];

	if (w->err != 0)
		return;
	if (w->proto == HP_UPROTO_BSON) {
		w_bin(w, key, "", b, n);
		return;
	}
	(void)w_key(w, key, kbuf);
	if (hp_ujson_embed(b, n))
		w_put(w, b, n);
	else
		w_jstr(w, b, n);
}

static int
w_finish(struct w *w, struct hp_ubuf *out)
{
	out->data = NULL;
	out->len = 0;
	if (w->err == 0 && w->depth != 0)
		w->err = HP_EINVAL;
	if (w->proto == HP_UPROTO_JSON) {
		if (w->err != 0) {
			free(w->p);
			return w->err;
		}
		out->data = (uint8_t *)w->p;
		out->len = w->len;
		return 0;
	}
	/* Children live in their parent's buffer: close them before the top
	 * document is destroyed. */
	for (int d = w->depth; d > 1; d--) {
		if (w->isarr[d])
			bson_append_array_end(&w->doc[d - 1], &w->doc[d]);
		else
			bson_append_document_end(&w->doc[d - 1], &w->doc[d]);
	}
	if (w->err == 0) {
		out->len = w->doc[1].len;
		if ((out->data = malloc(out->len)) == NULL)
			w->err = HP_ENOMEM;
		else
			memcpy(out->data, bson_get_data(&w->doc[1]), out->len);
	}
	bson_destroy(&w->doc[1]);
	if (w->err != 0)
		out->len = 0;
	return w->err;
}

/* ---- hashing ---- */

void
hp_uoutput_hash(const uint8_t pubkey[32], const struct hp_ublob *outputs,
    size_t n, uint8_t out[32])
{
	blake3_hasher h;
	uint8_t ed = 0xed;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, &ed, 1);
	blake3_hasher_update(&h, pubkey, 32);
	for (size_t i = 0; i < n; i++)
		blake3_hasher_update(&h, outputs[i].data, outputs[i].len);
	blake3_hasher_finalize(&h, out, 32);
}

/*
 * The tree is never stored: level k has ceil(n / 16^k) nodes, node j of
 * level k > 0 has the children 16j .. 16j+15 of level k-1 that exist, and
 * a node with one child is that child. Hashes are computed on the way
 * down, with memory only for the recursion (at most 17 levels).
 */
static size_t
tree_count(size_t n, size_t k)
{
	while (k-- > 0)
		n = n / 16 + (n % 16 != 0);
	return n;
}

static size_t
tree_top(size_t n)
{
	size_t k = 0;

	while (tree_count(n, k) > 1)
		k++;
	return k;
}

/* Number of children of node j at level k > 0. */
static size_t
tree_children(size_t n, size_t k, size_t j)
{
	size_t c = tree_count(n, k - 1) - 16 * j;

	return c > 16 ? 16 : c;
}

static void
tree_hash(const uint8_t *leaves, size_t n, size_t k, size_t j,
    uint8_t out[32])
{
	blake3_hasher h;
	uint8_t child[32];
	size_t c;

	while (k > 0 && (c = tree_children(n, k, j)) == 1) {
		k--;
		j *= 16;
	}
	if (k == 0) {
		memcpy(out, leaves + 32 * j, 32);
		return;
	}
	blake3_hasher_init(&h);
	for (size_t i = 0; i < c; i++) {
		tree_hash(leaves, n, k - 1, 16 * j + i, child);
		blake3_hasher_update(&h, child, 32);
	}
	blake3_hasher_finalize(&h, out, 32);
}

void
hp_utree_root(const uint8_t *leaves, size_t nleaves, uint8_t out[32])
{
	if (nleaves == 0) {
		memset(out, 0, 32);
		return;
	}
	tree_hash(leaves, nleaves, tree_top(nleaves), 0, out);
}

/* Node j of level k as the user at leaf self sees it: null for the
 * user's leaf, an array for a group holding it, else a hash. */
static void
w_tree_node(struct w *w, const char *key, const uint8_t *leaves, size_t n,
    size_t k, size_t j, size_t self)
{
	uint8_t hash[32];
	size_t c = 0;

	while (k > 0 && (c = tree_children(n, k, j)) == 1) {
		k--;
		j *= 16;
	}
	if (k == 0 && j == self) {
		w_null(w, key);
	} else if (k == 0) {
		w_hex(w, key, leaves + 32 * j, 32);
	} else if ((4 * k >= sizeof(size_t) * 8 ? 0 : self >> (4 * k)) != j) {
		tree_hash(leaves, n, k, j, hash);
		w_hex(w, key, hash, 32);
	} else {
		w_open(w, key, 1);
		for (size_t i = 0; i < c; i++)
			w_tree_node(w, NULL, leaves, n, k - 1, 16 * j + i,
			    self);
		w_close(w);
	}
}

int
hp_ujson_embed(const uint8_t *b, size_t len)
{
	size_t dots = 0;

	if (len == 0)
		return 0;
	if ((b[0] == '"' && b[len - 1] == '"') ||
	    (b[0] == '{' && b[len - 1] == '}') ||
	    (b[0] == '[' && b[len - 1] == ']'))
		return 1;
	if ((len == 4 && memcmp(b, "true", 4) == 0) ||
	    (len == 5 && memcmp(b, "false", 5) == 0))
		return 1;
	for (size_t i = 0; i < len; i++) {
		if (b[i] == '.') {
			if (++dots > 1)
				return 0;
		} else if (b[i] < '0' || b[i] > '9')
			return 0;
	}
	return 1;
}

/* ---- encoders ---- */

int
hp_uenc_user_challenge(const char *contract_id,
    const char *contract_version, const char challenge[33],
    struct hp_ubuf *out)
{
	struct w w;

	w_init(&w, HP_UPROTO_JSON);
	w_open(&w, NULL, 0);
	w_str(&w, "hp_version", HP_VERSION_STR);
	w_str(&w, "type", "user_challenge");
	w_str(&w, "contract_id", contract_id);
	w_str(&w, "contract_version", contract_version);
	w_str(&w, "challenge", challenge);
	w_close(&w);
	return w_finish(&w, out);
}

static void
w_keys(struct w *w, const char *key, const uint8_t *keys, size_t n)
{
	w_open(w, key, 1);
	for (size_t i = 0; i < n; i++)
		w_key32(w, NULL, keys + 32 * i);
	w_close(w);
}

int
hp_uenc_server_challenge_response(const uint8_t sig[64],
    const uint8_t pubkey[32], const uint8_t *unl, size_t n,
    struct hp_ubuf *out)
{
	struct w w;

	w_init(&w, HP_UPROTO_JSON);
	w_open(&w, NULL, 0);
	w_str(&w, "type", "server_challenge_response");
	w_hex(&w, "sig", sig, 64);
	w_key32(&w, "pubkey", pubkey);
	w_keys(&w, "unl", unl, n);
	w_close(&w);
	return w_finish(&w, out);
}

int
hp_uenc_input_status(enum hp_uproto proto, const uint8_t input_hash[32],
    const char *reason, uint64_t ledger_seq, const uint8_t ledger_hash[32],
    struct hp_ubuf *out)
{
	struct w w;

	w_init(&w, proto);
	w_open(&w, NULL, 0);
	w_str(&w, "type", "contract_input_status");
	w_str(&w, "status", reason == NULL ? "accepted" : "rejected");
	if (reason != NULL)
		w_str(&w, "reason", reason);
	w_hex(&w, "input_hash", input_hash, input_hash == NULL ? 0 : 32);
	if (reason == NULL) {
		w_u64(&w, "ledger_seq_no", ledger_seq);
		w_hex(&w, "ledger_hash", ledger_hash, 32);
	}
	w_close(&w);
	return w_finish(&w, out);
}

int
hp_uenc_read_response(enum hp_uproto proto, const char *reply_for,
    const uint8_t *content, size_t len, struct hp_ubuf *out)
{
	struct w w;

	w_init(&w, proto);
	w_open(&w, NULL, 0);
	w_str(&w, "type", "contract_read_response");
	w_str(&w, "reply_for", reply_for);
	w_embed(&w, "content", content, len);
	w_close(&w);
	return w_finish(&w, out);
}

int
hp_uenc_contract_output(enum hp_uproto proto, uint64_t ledger_seq,
    const uint8_t ledger_hash[32], const struct hp_ublob *outputs, size_t n,
    const uint8_t output_hash[32], const uint8_t *leaves, size_t nleaves,
    size_t self, const uint8_t *sig_keys, const uint8_t *sigs, size_t nsigs,
    struct hp_ubuf *out)
{
	struct w w;

	out->data = NULL;
	out->len = 0;
	/* With two or more leaves the root is a group, so the tree is an
	 * array as the client expects. */
	if (nleaves < 2 || self >= nleaves)
		return HP_EINVAL;
	w_init(&w, proto);
	w_open(&w, NULL, 0);
	w_str(&w, "type", "contract_output");
	w_u64(&w, "ledger_seq_no", ledger_seq);
	w_hex(&w, "ledger_hash", ledger_hash, 32);
	w_open(&w, "outputs", 1);
	for (size_t i = 0; i < n; i++)
		w_embed(&w, NULL, outputs[i].data, outputs[i].len);
	w_close(&w);
	w_hex(&w, "output_hash", output_hash, 32);
	w_tree_node(&w, "hash_tree", leaves, nleaves, tree_top(nleaves), 0,
	    self);
	w_open(&w, "unl_sig", 1);
	for (size_t i = 0; i < nsigs; i++) {
		w_open(&w, NULL, 1);
		w_key32(&w, NULL, sig_keys + 32 * i);
		w_hex(&w, NULL, sigs + 64 * i, 64);
		w_close(&w);
	}
	w_close(&w);
	w_close(&w);
	return w_finish(&w, out);
}

int
hp_uenc_stat(enum hp_uproto proto, const struct hp_ustat *s,
    struct hp_ubuf *out)
{
	struct w w;
	size_t np = s->n_peers > PEERS_MAX ? PEERS_MAX : s->n_peers;

	w_init(&w, proto);
	w_open(&w, NULL, 0);
	w_str(&w, "type", "stat_response");
	w_str(&w, "hp_version", HP_VERSION_STR);
	w_u64(&w, "ledger_seq_no", s->ledger_seq);
	w_hex(&w, "ledger_hash", s->ledger_hash, 32);
	w_str(&w, "vote_status", s->vote_status);
	w_u64(&w, "round_time", s->round_time);
	w_bool(&w, "contract_execution_enabled", s->execution);
	w_bool(&w, "read_requests_enabled", s->read_requests);
	w_bool(&w, "is_full_history_node", s->full_history);
	w_bool(&w, "weakly_connected", s->weakly_connected);
	w_keys(&w, "current_unl", s->unl, s->n_unl);
	w_open(&w, "peers", 1);
	for (size_t i = 0; i < np; i++)
		w_str(&w, NULL, s->peers[i]);
	w_close(&w);
	w_close(&w);
	return w_finish(&w, out);
}

int
hp_uenc_lcl(enum hp_uproto proto, uint64_t seq, const uint8_t hash[32],
    struct hp_ubuf *out)
{
	struct w w;

	w_init(&w, proto);
	w_open(&w, NULL, 0);
	w_str(&w, "type", "lcl_response");
	w_u64(&w, "ledger_seq_no", seq);
	w_hex(&w, "ledger_hash", hash, 32);
	w_close(&w);
	return w_finish(&w, out);
}

int
hp_uenc_unl_change(enum hp_uproto proto, const uint8_t *unl, size_t n,
    struct hp_ubuf *out)
{
	struct w w;

	w_init(&w, proto);
	w_open(&w, NULL, 0);
	w_str(&w, "type", "unl_change");
	w_keys(&w, "unl", unl, n);
	w_close(&w);
	return w_finish(&w, out);
}

/* The ledger's fields, inside an object the caller opened. */
static void
w_ledger_fields(struct w *w, const struct hp_uledger *l)
{
	w_u64(w, "seq_no", l->seq_no);
	w_u64(w, "timestamp", l->timestamp);
	w_hex(w, "hash", l->hash, 32);
	w_hex(w, "prev_hash", l->prev_hash, 32);
	w_hex(w, "state_hash", l->state_hash, 32);
	w_hex(w, "config_hash", l->config_hash, 32);
	w_hex(w, "user_hash", l->user_hash, 32);
	w_hex(w, "input_hash", l->input_hash, 32);
	w_hex(w, "output_hash", l->output_hash, 32);
}

int
hp_uenc_ledger_created(enum hp_uproto proto, const struct hp_uledger *l,
    struct hp_ubuf *out)
{
	struct w w;

	w_init(&w, proto);
	w_open(&w, NULL, 0);
	w_str(&w, "type", "ledger_event");
	w_str(&w, "event", "ledger_created");
	w_open(&w, "ledger", 0);
	w_ledger_fields(&w, l);
	w_close(&w);
	w_close(&w);
	return w_finish(&w, out);
}

int
hp_uenc_vote_status(enum hp_uproto proto, const char *status,
    struct hp_ubuf *out)
{
	struct w w;

	w_init(&w, proto);
	w_open(&w, NULL, 0);
	w_str(&w, "type", "ledger_event");
	w_str(&w, "event", "vote_status");
	w_str(&w, "vote_status", status);
	w_close(&w);
	return w_finish(&w, out);
}

int
hp_uenc_ledger_query_result(enum hp_uproto proto, const char *reply_for,
    const char *error, const struct hp_uledger *l,
    const struct hp_uinput_rec *inputs, size_t ninputs,
    const struct hp_uoutput_rec *outputs, size_t noutputs,
    struct hp_ubuf *out)
{
	struct w w;

	w_init(&w, proto);
	w_open(&w, NULL, 0);
	w_str(&w, "type", "ledger_query_result");
	w_str(&w, "reply_for", reply_for);
	if (error != NULL)
		w_str(&w, "error", error);
	else
		w_null(&w, "error");
	w_open(&w, "results", 1);
	if (error == NULL && l != NULL) {
		w_open(&w, NULL, 0);
		w_ledger_fields(&w, l);
		if (inputs != NULL) {
			w_open(&w, "inputs", 1);
			for (size_t i = 0; i < ninputs; i++) {
				const struct hp_uinput_rec *in = &inputs[i];

				w_open(&w, NULL, 0);
				w_key32(&w, "pubkey", in->pubkey);
				w_hex(&w, "hash", in->hash, 32);
				w_u64(&w, "nonce", in->nonce);
				w_hex(&w, "blob", in->blob.data, in->blob.len);
				w_close(&w);
			}
			w_close(&w);
		}
		if (outputs != NULL) {
			w_open(&w, "outputs", 1);
			for (size_t i = 0; i < noutputs; i++) {
				const struct hp_uoutput_rec *o = &outputs[i];

				w_open(&w, NULL, 0);
				w_key32(&w, "pubkey", o->pubkey);
				w_hex(&w, "hash", o->hash, 32);
				w_open(&w, "blobs", 1);
				for (size_t j = 0; j < o->nblobs; j++)
					w_hex(&w, NULL, o->blobs[j].data,
					    o->blobs[j].len);
				w_close(&w);
				w_close(&w);
			}
			w_close(&w);
		}
		w_close(&w);
	}
	w_close(&w);
	w_close(&w);
	return w_finish(&w, out);
}

/* ---- decoders ---- */

/* One JSON object or BSON document, read by field name. */
struct rd {
	enum hp_uproto proto;
	json_t *j;
	json_t *owned;		/* the parsed root, if this reader holds it */
	bson_t b;
};

/* Every element of a BSON document must be well-formed at this level;
 * deeper levels are checked when a reader enters them. */
static int
bdoc_check(const bson_t *b)
{
	bson_iter_t it;

	if (!bson_iter_init(&it, b))
		return HP_EFORMAT;
	while (bson_iter_next(&it))
		;
	return it.err_off != 0 ? HP_EFORMAT : 0;
}

static int
rd_open(struct rd *r, enum hp_uproto proto, const uint8_t *buf, size_t len)
{
	json_error_t e;

	memset(r, 0, sizeof(*r));
	r->proto = proto;
	if (proto == HP_UPROTO_BSON) {
		if (buf == NULL || !bson_init_static(&r->b, buf, len))
			return HP_EFORMAT;
		return bdoc_check(&r->b);
	}
	if (proto != HP_UPROTO_JSON || buf == NULL)
		return HP_EFORMAT;
	r->owned = json_loadb((const char *)buf, len,
	    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
	if (r->owned == NULL)
		return HP_EFORMAT;
	r->j = r->owned;
	return json_is_object(r->j) ? 0 : HP_EFORMAT;
}

static void
rd_close(struct rd *r)
{
	json_decref(r->owned);
	r->owned = NULL;
}

/* BSON: the one element named key; a second one is malformed. */
static int
rd_bfind(const struct rd *r, const char *key, bson_iter_t *out)
{
	bson_iter_t it;
	int found = 0;

	if (!bson_iter_init(&it, &r->b))
		return HP_EFORMAT;
	while (bson_iter_next(&it)) {
		if (strcmp(bson_iter_key(&it), key) != 0)
			continue;
		if (found++)
			return HP_EFORMAT;
		*out = it;
	}
	return found ? 0 : HP_ENOENT;
}

/* The value named key: *j in JSON, *it in BSON; HP_ENOENT when absent. */
static int
rd_find(const struct rd *r, const char *key, json_t **j, bson_iter_t *it)
{
	*j = NULL;
	if (r->proto != HP_UPROTO_JSON)
		return rd_bfind(r, key, it);
	*j = json_object_get(r->j, key);
	return *j != NULL ? 0 : HP_ENOENT;
}

static int
rd_str(const struct rd *r, const char *key, const char **s, size_t *n)
{
	bson_iter_t it;
	uint32_t l;
	json_t *v;
	int e;

	if ((e = rd_find(r, key, &v, &it)) != 0)
		return e;
	if (r->proto == HP_UPROTO_JSON) {
		if (!json_is_string(v))
			return HP_EFORMAT;
		*s = json_string_value(v);
		*n = json_string_length(v);
		return 0;
	}
	if (!BSON_ITER_HOLDS_UTF8(&it))
		return HP_EFORMAT;
	*s = bson_iter_utf8(&it, &l);
	*n = l;
	return bson_utf8_validate(*s, *n, true) ? 0 : HP_EFORMAT;
}

static int
str_is(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* A string field that must equal lit. */
static int
rd_str_is(const struct rd *r, const char *key, const char *lit)
{
	const char *s;
	size_t n;

	if (rd_str(r, key, &s, &n) != 0 || !str_is(s, n, lit))
		return HP_EFORMAT;
	return 0;
}

/* Bytes: a JSON string's UTF-8 or a BSON binary of any subtype. */
static int
rd_blob(const struct rd *r, const char *key, const uint8_t **p, size_t *n)
{
	bson_iter_t it;
	uint32_t l;
	int e;

	if (r->proto == HP_UPROTO_JSON) {
		const char *s;

		e = rd_str(r, key, &s, n);
		*p = (const uint8_t *)s;
		return e;
	}
	if ((e = rd_bfind(r, key, &it)) != 0)
		return e;
	if (!BSON_ITER_HOLDS_BINARY(&it))
		return HP_EFORMAT;
	bson_iter_binary(&it, NULL, &l, p);
	*n = l;
	return *p == NULL && l > 0 ? HP_EFORMAT : 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly n bytes: 2n hex digits in JSON, a binary in BSON. */
static int
rd_fixed(const struct rd *r, const char *key, uint8_t *out, size_t n)
{
	const uint8_t *p;
	const char *s;
	size_t len;
	int e;

	if (r->proto == HP_UPROTO_BSON) {
		if ((e = rd_blob(r, key, &p, &len)) != 0)
			return e;
		if (len != n)
			return HP_EFORMAT;
		memcpy(out, p, n);
		return 0;
	}
	if ((e = rd_str(r, key, &s, &len)) != 0)
		return e;
	if (len != 2 * n)
		return HP_EFORMAT;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return HP_EFORMAT;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* A non-negative integer: a JSON integer (not a real), BSON int32/64. */
static int
rd_u64(const struct rd *r, const char *key, uint64_t *v)
{
	bson_iter_t it;
	json_t *j;
	int64_t x;
	int e;

	if ((e = rd_find(r, key, &j, &it)) != 0)
		return e;
	if (r->proto == HP_UPROTO_JSON) {
		if (!json_is_integer(j))
			return HP_EFORMAT;
		x = json_integer_value(j);
	} else if (BSON_ITER_HOLDS_INT32(&it))
		x = bson_iter_int32(&it);
	else if (BSON_ITER_HOLDS_INT64(&it))
		x = bson_iter_int64(&it);
	else
		return HP_EFORMAT;
	if (x < 0)
		return HP_EFORMAT;
	*v = (uint64_t)x;
	return 0;
}

static int
rd_bool(const struct rd *r, const char *key, int *v)
{
	bson_iter_t it;
	json_t *j;
	int e;

	if ((e = rd_find(r, key, &j, &it)) != 0)
		return e;
	if (r->proto == HP_UPROTO_JSON) {
		if (!json_is_boolean(j))
			return HP_EFORMAT;
		*v = json_is_true(j);
		return 0;
	}
	if (!BSON_ITER_HOLDS_BOOL(&it))
		return HP_EFORMAT;
	*v = bson_iter_bool(&it);
	return 0;
}

/* A nested object (arr 0) or array (arr 1) as a reader of its own. */
static int
rd_sub(const struct rd *r, const char *key, int arr, struct rd *sub)
{
	const uint8_t *p;
	bson_iter_t it;
	uint32_t l;
	json_t *j;
	int e;

	memset(sub, 0, sizeof(*sub));
	sub->proto = r->proto;
	if ((e = rd_find(r, key, &j, &it)) != 0)
		return e;
	if (r->proto == HP_UPROTO_JSON) {
		if (arr ? !json_is_array(j) : !json_is_object(j))
			return HP_EFORMAT;
		sub->j = j;
		return 0;
	}
	if (arr ? !BSON_ITER_HOLDS_ARRAY(&it) : !BSON_ITER_HOLDS_DOCUMENT(&it))
		return HP_EFORMAT;
	if (arr)
		bson_iter_array(&it, &l, &p);
	else
		bson_iter_document(&it, &l, &p);
	if (p == NULL || !bson_init_static(&sub->b, p, l))
		return HP_EFORMAT;
	return bdoc_check(&sub->b);
}

static int
include_item(const char *s, size_t n, struct hp_umsg *m)
{
	if (str_is(s, n, "inputs"))
		m->want_inputs = 1;
	else if (str_is(s, n, "outputs"))
		m->want_outputs = 1;
	else
		return HP_EFORMAT;
	return 0;
}

/* ledger_query's include: an array of "inputs" and "outputs". */
static int
rd_include(const struct rd *r, struct hp_umsg *m)
{
	struct rd a;
	bson_iter_t it;
	const char *s;
	uint32_t l;
	json_t *v;
	size_t i;
	int e;

	if ((e = rd_sub(r, "include", 1, &a)) != 0)
		return HP_EFORMAT;
	if (r->proto == HP_UPROTO_JSON) {
		json_array_foreach(a.j, i, v) {
			if (!json_is_string(v) ||
			    include_item(json_string_value(v),
			    json_string_length(v), m) != 0)
				return HP_EFORMAT;
		}
		return 0;
	}
	if (!bson_iter_init(&it, &a.b))
		return HP_EFORMAT;
	while (bson_iter_next(&it)) {
		if (!BSON_ITER_HOLDS_UTF8(&it))
			return HP_EFORMAT;
		s = bson_iter_utf8(&it, &l);
		if (include_item(s, l, m) != 0)
			return HP_EFORMAT;
	}
	return 0;
}

static int
dup_bytes(const uint8_t *p, size_t n, uint8_t **out)
{
	if ((*out = malloc(n ? n : 1)) == NULL)
		return HP_ENOMEM;
	if (n > 0)
		memcpy(*out, p, n);
	return 0;
}

/* A request id: a string of at most ID_MAX bytes without NUL. */
static int
rd_id(const struct rd *r, char **out)
{
	const char *s;
	size_t n;

	if (rd_str(r, "id", &s, &n) != 0 || n > ID_MAX ||
	    memchr(s, '\0', n) != NULL)
		return HP_EFORMAT;
	if ((*out = malloc(n + 1)) == NULL)
		return HP_ENOMEM;
	memcpy(*out, s, n);
	(*out)[n] = '\0';
	return 0;
}

int
hp_udec_handshake(const uint8_t *buf, size_t len, struct hp_uhandshake *out)
{
	uint8_t key[33];
	const char *s;
	struct rd r;
	size_t n;
	int e;

	memset(out, 0, sizeof(*out));
	if ((e = rd_open(&r, HP_UPROTO_JSON, buf, len)) != 0)
		goto done;
	e = HP_EFORMAT;
	if (rd_str_is(&r, "type", "user_challenge_response") != 0 ||
	    rd_fixed(&r, "sig", out->sig, 64) != 0 ||
	    rd_fixed(&r, "pubkey", key, 33) != 0 || key[0] != 0xed)
		goto done;
	memcpy(out->pubkey, key + 1, 32);
	switch (rd_str(&r, "server_challenge", &s, &n)) {
	case HP_ENOENT:
		break;
	case 0:
		if (n == 0 || n > CHALLENGE_MAX || memchr(s, '\0', n) != NULL)
			goto done;
		memcpy(out->server_challenge, s, n);
		out->has_server_challenge = 1;
		break;
	default:
		goto done;
	}
	if (rd_str(&r, "protocol", &s, &n) != 0)
		goto done;
	if (str_is(s, n, "json"))
		out->proto = HP_UPROTO_JSON;
	else if (str_is(s, n, "bson"))
		out->proto = HP_UPROTO_BSON;
	else
		goto done;
	e = 0;
done:
	rd_close(&r);
	if (e != 0)
		memset(out, 0, sizeof(*out));
	return e;
}

static int
dec_input(const struct rd *r, struct hp_umsg *m, int *sig_ok)
{
	const uint8_t *p;
	size_t n;

	if (rd_fixed(r, "sig", m->sig, 64) != 0)
		return HP_EFORMAT;
	if (sig_ok != NULL)
		*sig_ok = 1;
	if (rd_blob(r, "input_container", &p, &n) != 0)
		return HP_EFORMAT;
	m->container_len = n;
	return dup_bytes(p, n, &m->container);
}

static int
dec_read(const struct rd *r, struct hp_umsg *m)
{
	const uint8_t *p;
	size_t n;
	int e;

	if ((e = rd_id(r, &m->id)) != 0)
		return e;
	if (rd_blob(r, "content", &p, &n) != 0)
		return HP_EFORMAT;
	m->content_len = n;
	return dup_bytes(p, n, &m->content);
}

static int
dec_subscription(const struct rd *r, struct hp_umsg *m)
{
	const char *s;
	size_t n;

	if (rd_str(r, "channel", &s, &n) != 0)
		return HP_EFORMAT;
	if (str_is(s, n, "unl_change"))
		m->channel = HP_UCH_UNL_CHANGE;
	else if (str_is(s, n, "ledger_event"))
		m->channel = HP_UCH_LEDGER_EVENT;
	else if (str_is(s, n, "health_event"))
		m->channel = HP_UCH_HEALTH_EVENT;
	else
		return HP_EFORMAT;
	return rd_bool(r, "enabled", &m->enabled) != 0 ? HP_EFORMAT : 0;
}

static int
dec_ledger_query(const struct rd *r, struct hp_umsg *m)
{
	struct rd params;
	int e;

	if ((e = rd_id(r, &m->id)) != 0)
		return e;
	if (rd_str_is(r, "filter_by", "seq_no") != 0 ||
	    rd_sub(r, "params", 0, &params) != 0 ||
	    rd_u64(&params, "seq_no", &m->seq_no) != 0)
		return HP_EFORMAT;
	return rd_include(r, m);
}

int
hp_udec_msg(enum hp_uproto proto, const uint8_t *buf, size_t len,
    struct hp_umsg *out, int *sig_ok)
{
	const char *t;
	struct rd r;
	size_t n;
	int e;

	memset(out, 0, sizeof(*out));
	if (sig_ok != NULL)
		*sig_ok = 0;
	if ((e = rd_open(&r, proto, buf, len)) != 0 ||
	    (e = rd_str(&r, "type", &t, &n)) != 0) {
		rd_close(&r);
		return HP_EFORMAT;
	}
	if (str_is(t, n, "contract_input")) {
		out->type = HP_UM_INPUT;
		e = dec_input(&r, out, sig_ok);
	} else if (str_is(t, n, "contract_read_request")) {
		out->type = HP_UM_READ;
		e = dec_read(&r, out);
	} else if (str_is(t, n, "stat"))
		out->type = HP_UM_STAT;
	else if (str_is(t, n, "lcl"))
		out->type = HP_UM_LCL;
	else if (str_is(t, n, "subscription")) {
		out->type = HP_UM_SUBSCRIPTION;
		e = dec_subscription(&r, out);
	} else if (str_is(t, n, "ledger_query")) {
		out->type = HP_UM_LEDGER_QUERY;
		e = dec_ledger_query(&r, out);
	} else
		out->type = HP_UM_UNKNOWN;
	rd_close(&r);
	if (e != 0) {
		enum hp_umsg_type type = out->type;
		uint8_t sig[64];

		memcpy(sig, out->sig, sizeof(sig));
		hp_umsg_free(out);
		out->type = type;
		memcpy(out->sig, sig, sizeof(sig));
	}
	return e;
}

void
hp_umsg_free(struct hp_umsg *m)
{
	free(m->container);
	free(m->id);
	free(m->content);
	memset(m, 0, sizeof(*m));
}

int
hp_udec_input(enum hp_uproto proto, const uint8_t *buf, size_t len,
    struct hp_uinput *out)
{
	const uint8_t *p;
	struct rd r;
	size_t n;
	int e;

	memset(out, 0, sizeof(*out));
	if ((e = rd_open(&r, proto, buf, len)) != 0)
		goto done;
	e = HP_EFORMAT;
	if (rd_blob(&r, "input", &p, &n) != 0 ||
	    rd_u64(&r, "nonce", &out->nonce) != 0 || out->nonce == 0 ||
	    rd_u64(&r, "max_ledger_seq_no", &out->max_ledger_seq_no) != 0)
		goto done;
	out->input_len = n;
	e = dup_bytes(p, n, &out->input);
done:
	rd_close(&r);
	if (e != 0)
		memset(out, 0, sizeof(*out));
	return e;
}

void
hp_uinput_free(struct hp_uinput *in)
{
	free(in->input);
	memset(in, 0, sizeof(*in));
}
