/*
 * user.c — the user protocol on one connection (hotpocket-js-client 0.5.7;
 * docs/gateway.md): the JSON handshake (user_challenge, the user's
 * signature over it, consensus signing our answer since only it holds the
 * node key), then the chosen protocol: stat, lcl, subscriptions, contract
 * inputs checked as HotPocket checks them on arrival, read requests and
 * ledger queries. Messages are decoded by common/usermsg; this file
 * decides what to do with them.
 */
#include "gw.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hash.h"
#include "log.h"
#include "mpack.h"
#include "proto.h"
#include "worker.h"

static const char *const reasons[R_COUNT] = {
	"bad_msg_format", "invalid_msg_type", "bad_sig", "max_ledger_expired",
	"max_ledger_offset_exceeded", "nonce_expired", "already_submitted",
	"round_inputs_overflow", "other",
};

const char *
gw_reason_name(enum gw_reason r)
{
	return r < R_COUNT ? reasons[r] : "other";
}

uint32_t
gw_fid(void)
{
	if (++gw.next_fid == 0)
		gw.next_fid = 1;
	return gw.next_fid;
}

static void
send_buf(struct conn *c, struct hp_ubuf *b)
{
	conn_send(c, b);
	free(b->data);
	b->data = NULL;
}

/* contract_input_status rejected; hash NULL for "no input" (the hash of
 * nothing, as HotPocket gives when there is no signature to hash). */
static void
reject(struct conn *c, const uint8_t *hash, enum gw_reason r)
{
	struct hp_ubuf b = { NULL, 0 };
	uint8_t none[32], zero[32] = { 0 };

	gw.c.rejected[r]++;
	if (r == R_ALREADY_SUBMITTED)
		return;		/* HotPocket never tells the user */
	if (hash == NULL) {
		hp_hash("", 0, none);
		hash = none;
	}
	if (hp_uenc_input_status(c->proto, hash, gw_reason_name(r), 0, zero,
	    &b) == 0)
		send_buf(c, &b);
}

void
user_open(struct conn *c)
{
	const struct hp_config *cfg = gw.cfg;
	struct hp_ubuf b = { NULL, 0 };
	uint8_t r[16];

	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(c->challenge, sizeof(c->challenge), r, sizeof(r));
	c->proto = HP_UPROTO_JSON;
	if (hp_uenc_user_challenge(cfg->contract.id, cfg->contract.version,
	    c->challenge, &b) != 0) {
		conn_close(c, "cannot encode user_challenge");
		return;
	}
	send_buf(c, &b);
}

void
user_send_users(void)
{
	struct hp_frame f;
	size_t n = 0;

	for (struct conn *c = gw.conns; c != NULL; c = c->next)
		if (c->state == C_VERIFIED)
			n++;
	hp_frame_begin(&f, HP_MSG_GW_USERS, 0, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_array(&f.pk, n);
	for (struct conn *c = gw.conns; c != NULL; c = c->next)
		if (c->state == C_VERIFIED) {
			msgpack_pack_bin(&f.pk, HP_PK_BYTES);
			msgpack_pack_bin_body(&f.pk, c->pk, HP_PK_BYTES);
		}
	hp_worker_send(HP_W_CONSENSUS, &f, -1);
}

static void
handshake(struct conn *c, const uint8_t *msg, size_t len)
{
	struct hp_uhandshake h;
	struct hp_frame f;

	if (hp_udec_handshake(msg, len, &h) != 0) {
		gw.c.handshake_failures++;
		conn_close(c, "malformed user_challenge_response");
		return;
	}
	if (crypto_sign_verify_detached(h.sig, (const uint8_t *)c->challenge,
	    strlen(c->challenge), h.pubkey) != 0) {
		gw.c.handshake_failures++;
		conn_close(c, "user_challenge_response: bad signature");
		return;
	}
	/* Refuse before answering: the client sees a closed socket. */
	if (conn_find_user(h.pubkey) != NULL) {
		gw.c.handshake_failures++;
		conn_close(c, "this user key is already connected");
		return;
	}
	if (conn_count_users() >= GW_MAX_USERS) {
		gw.c.handshake_failures++;
		conn_close(c, "%d users are connected already", GW_MAX_USERS);
		return;
	}
	memcpy(c->pk, h.pubkey, HP_PK_BYTES);
	c->has_pk = true;
	c->proto = h.proto;
	if (!h.has_server_challenge) {
		/* HotPocket answers nothing and takes the user in. */
		c->state = C_VERIFIED;
		c->verified = true;
		gw.c.handshakes++;
		user_send_users();
		return;
	}
	if (!gw.st.have || !hp_worker_sibling_up(HP_W_CONSENSUS)) {
		conn_close(c, "consensus is not connected; the client will"
		    " reconnect");
		return;
	}
	c->sign_id = gw_fid();
	hp_frame_begin(&f, HP_MSG_GW_SIGN_REQ, c->sign_id, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	hp_mpack_pack_cstr(&f.pk, h.server_challenge);
	if (hp_worker_send(HP_W_CONSENSUS, &f, -1) != 0) {
		conn_close(c, "consensus is not connected");
		return;
	}
	c->state = C_SIGNING;
}

void
user_sign_res(uint32_t id, const msgpack_object *body)
{
	const msgpack_object *sig = hp_mpack_get(body, 1);
	struct hp_ubuf b = { NULL, 0 };
	struct conn *c;
	char hex[2 * HP_PK_BYTES + 1];

	for (c = gw.conns; c != NULL; c = c->next)
		if (c->state == C_SIGNING && c->sign_id == id)
			break;
	if (c == NULL)
		return;		/* the user left meanwhile */
	c->sign_id = 0;
	if (sig == NULL || sig->type != MSGPACK_OBJECT_BIN ||
	    sig->via.bin.size != HP_SIG_BYTES) {
		conn_close(c, "consensus did not sign the handshake");
		return;
	}
	if (hp_uenc_server_challenge_response((const uint8_t *)sig->via.bin.ptr,
	    gw.node_pk, &gw.st.unl[0][0], gw.st.n_unl, &b) != 0) {
		conn_close(c, "cannot encode server_challenge_response");
		return;
	}
	send_buf(c, &b);
	if (c->state == C_CLOSING)
		return;
	c->state = C_VERIFIED;
	c->verified = true;
	gw.c.handshakes++;
	sodium_bin2hex(hex, sizeof(hex), c->pk, HP_PK_BYTES);
	log_info("user ed%s connected from %s:%u (%s)", hex, c->ip,
	    (unsigned)c->rport, c->proto == HP_UPROTO_BSON ? "bson" : "json");
	user_send_users();
}

void
user_closed(struct conn *c)
{
	if (c->verified)
		user_send_users();
}

void
user_consensus_down(void)
{
	for (struct conn *c = gw.conns; c != NULL; c = c->next)
		if (c->state == C_SIGNING)
			conn_close(c, "consensus went away during the"
			    " handshake");
}

/* ---- the nonce rule (HotPocket's input_nonce_map) ---- */

static struct gw_nonce *
nonce_find(const uint8_t pk[HP_PK_BYTES])
{
	for (size_t i = 0; i < GW_NONCES_MAX; i++)
		if (gw.nonces[i].used &&
		    memcmp(gw.nonces[i].pk, pk, HP_PK_BYTES) == 0)
			return &gw.nonces[i];
	return NULL;
}

static struct gw_nonce *
nonce_slot(void)
{
	uint64_t lcl = gw.st.lcl.seq;
	struct gw_nonce *old = &gw.nonces[0];

	for (size_t i = 0; i < GW_NONCES_MAX; i++)
		if (!gw.nonces[i].used)
			return &gw.nonces[i];
	/* Entries whose window has passed no longer constrain anything. */
	for (size_t i = 0; i < GW_NONCES_MAX; i++) {
		if (gw.nonces[i].max_ledger <= lcl)
			return &gw.nonces[i];
		if (gw.nonces[i].max_ledger < old->max_ledger)
			old = &gw.nonces[i];
	}
	return old;	/* consensus checks the nonce again */
}

static enum gw_reason
nonce_check(const uint8_t pk[HP_PK_BYTES], const struct hp_uinput *in,
    const uint8_t sig[HP_SIG_BYTES])
{
	struct gw_nonce *e = nonce_find(pk);

	if (e == NULL || in->nonce > e->nonce || e->max_ledger <= gw.st.lcl.seq)
		return R_COUNT;
	if (in->nonce == e->nonce && memcmp(sig, e->sig, HP_SIG_BYTES) == 0)
		return R_ALREADY_SUBMITTED;
	return R_NONCE_EXPIRED;
}

static void
nonce_record(const uint8_t pk[HP_PK_BYTES], const struct hp_uinput *in,
    const uint8_t sig[HP_SIG_BYTES])
{
	struct gw_nonce *e = nonce_find(pk);

	if (e == NULL)
		e = nonce_slot();
	memcpy(e->pk, pk, HP_PK_BYTES);
	memcpy(e->sig, sig, HP_SIG_BYTES);
	e->nonce = in->nonce;
	e->max_ledger = in->max_ledger_seq_no;
	e->used = true;
}

/* ---- messages after the handshake ---- */

static void
forward_input(struct conn *c, const struct hp_umsg *m)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_GW_INPUT, 0, 0);
	msgpack_pack_map(&f.pk, 4);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_bin(&f.pk, HP_PK_BYTES);
	msgpack_pack_bin_body(&f.pk, c->pk, HP_PK_BYTES);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, HP_SIG_BYTES);
	msgpack_pack_bin_body(&f.pk, m->sig, HP_SIG_BYTES);
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_bin(&f.pk, m->container_len);
	msgpack_pack_bin_body(&f.pk, m->container, m->container_len);
	msgpack_pack_uint32(&f.pk, 4);
	msgpack_pack_uint32(&f.pk, (uint32_t)c->proto);
	if (hp_worker_send(HP_W_CONSENSUS, &f, -1) != 0) {
		log_warnx("user input dropped: consensus is not connected");
		gw.c.rejected[R_OTHER]++;
		return;
	}
	gw.c.inputs_forwarded++;
}

static void
on_input(struct conn *c, const struct hp_umsg *m)
{
	const struct hp_config *cfg = gw.cfg;
	uint64_t lcl = gw.st.lcl.seq, off = cfg->contract.max_input_ledger_offset;
	uint64_t limit = cfg->contract.round_limits.user_input_bytes;
	struct hp_uinput in;
	enum gw_reason r;
	uint8_t hash[32];

	hp_hash(m->sig, HP_SIG_BYTES, hash);
	/* Consensus has no room for this node's users' inputs: refused
	 * before the signature check, the costly part, so that a flood
	 * costs the node little. */
	if (gw.st.inputs_full) {
		reject(c, hash, R_ROUND_INPUTS_OVERFLOW);
		return;
	}
	if (crypto_sign_verify_detached(m->sig, m->container,
	    m->container_len, c->pk) != 0) {
		reject(c, hash, R_BAD_SIG);
		return;
	}
	memset(&in, 0, sizeof(in));
	if (hp_udec_input(c->proto, m->container, m->container_len, &in) != 0) {
		reject(c, hash, R_BAD_MSG_FORMAT);
		return;
	}
	if (off != 0 && in.max_ledger_seq_no > lcl + off)
		r = R_MAX_LEDGER_OFFSET_EXCEEDED;
	else if (in.max_ledger_seq_no <= lcl)
		r = R_MAX_LEDGER_EXPIRED;
	else if (limit != 0 && c->round_bytes + in.input_len > limit)
		r = R_ROUND_INPUTS_OVERFLOW;
	else
		r = nonce_check(c->pk, &in, m->sig);
	if (r != R_COUNT) {
		reject(c, hash, r);
		hp_uinput_free(&in);
		return;
	}
	nonce_record(c->pk, &in, m->sig);
	c->round_bytes += in.input_len;
	hp_uinput_free(&in);
	forward_input(c, m);
}

static const char *
vote_name(uint64_t v)
{
	switch (v) {
	case 1: return "unreliable";
	case 2: return "desync";
	case 3: return "synced";
	}
	return "unknown";
}

static void
on_stat(struct conn *c)
{
	const struct hp_config *cfg = gw.cfg;
	const char *peers[GW_MAX_PEERS];
	struct hp_ubuf b = { NULL, 0 };
	struct hp_ustat s;

	memset(&s, 0, sizeof(s));
	s.ledger_seq = gw.st.lcl.seq;
	memcpy(s.ledger_hash, gw.st.lcl.hash, 32);
	s.vote_status = vote_name(gw.st.vote);
	s.round_time = gw.st.have ? gw.st.roundtime :
	    cfg->contract.consensus.roundtime;
	s.execution = gw.st.have ? gw.st.execution : cfg->contract.execute;
	s.read_requests = cfg->user.concurrent_read_requests != 0;
	s.full_history = gw.st.full_history;
	s.weakly_connected = gw.st.weak;
	s.unl = &gw.st.unl[0][0];
	s.n_unl = gw.st.n_unl;
	for (size_t i = 0; i < gw.st.n_peers; i++)
		peers[i] = gw.st.peers[i];
	s.peers = peers;
	s.n_peers = gw.st.n_peers;
	if (hp_uenc_stat(c->proto, &s, &b) == 0)
		send_buf(c, &b);
}

static void
on_subscription(struct conn *c, const struct hp_umsg *m)
{
	switch (m->channel) {
	case HP_UCH_UNL_CHANGE:
		c->sub_unl = m->enabled != 0;
		break;
	case HP_UCH_LEDGER_EVENT:
		c->sub_ledger = m->enabled != 0;
		break;
	default:
		/* No health statistics here, as in stock HotPocket. */
		conn_count_bad(c, "subscription to an unavailable channel");
		break;
	}
}

static void
on_read(struct conn *c, const struct hp_umsg *m)
{
	if (!gw.cfg->contract.execute ||
	    gw.cfg->user.concurrent_read_requests == 0)
		return;		/* HotPocket ignores them silently */
	gw.c.reads++;
	feed_read_request(c, m->id != NULL ? m->id : "", m->content,
	    m->content_len);
}

static void
verified_message(struct conn *c, const uint8_t *msg, size_t len)
{
	struct hp_ubuf b = { NULL, 0 };
	struct hp_umsg m;
	int sig_ok = 0;

	memset(&m, 0, sizeof(m));
	if (hp_udec_msg(c->proto, msg, len, &m, &sig_ok) != 0) {
		uint8_t hash[32];

		conn_count_bad(c, "a malformed message");
		if (m.type == HP_UM_SUBSCRIPTION ||
		    m.type == HP_UM_LEDGER_QUERY) {
			hp_umsg_free(&m);
			return;		/* no reply, as in HotPocket */
		}
		if (m.type == HP_UM_INPUT && sig_ok)
			hp_hash(m.sig, HP_SIG_BYTES, hash);
		reject(c, m.type == HP_UM_INPUT && sig_ok ? hash : NULL,
		    R_BAD_MSG_FORMAT);
		hp_umsg_free(&m);
		return;
	}
	switch (m.type) {
	case HP_UM_INPUT:
		on_input(c, &m);
		break;
	case HP_UM_READ:
		on_read(c, &m);
		break;
	case HP_UM_STAT:
		on_stat(c);
		break;
	case HP_UM_LCL:
		if (hp_uenc_lcl(c->proto, gw.st.lcl.seq, gw.st.lcl.hash,
		    &b) == 0)
			send_buf(c, &b);
		break;
	case HP_UM_SUBSCRIPTION:
		on_subscription(c, &m);
		break;
	case HP_UM_LEDGER_QUERY:
		gw.c.queries++;
		feed_ledger_query(c, m.id != NULL ? m.id : "", m.seq_no,
		    m.want_inputs, m.want_outputs);
		break;
	default:
		conn_count_bad(c, "a message of unknown type");
		reject(c, NULL, R_INVALID_MSG_TYPE);
		break;
	}
	hp_umsg_free(&m);
}

void
user_message(struct conn *c, const uint8_t *msg, size_t len)
{
	switch (c->state) {
	case C_CHALLENGE:
		handshake(c, msg, len);
		break;
	case C_SIGNING:
		conn_count_bad(c, "a message before the handshake ended");
		break;
	case C_VERIFIED:
		verified_message(c, msg, len);
		break;
	default:
		break;
	}
}
