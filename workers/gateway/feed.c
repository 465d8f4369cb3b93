/*
 * feed.c — what the gateway learns from its siblings, turned into user
 * messages: the cluster status from consensus (stat, lcl, ledger and UNL
 * events), settled inputs, signed contract outputs, ledger query answers,
 * and read request answers from the runner. Every body is checked field
 * by field: a sibling is trusted to be sane, not to be right.
 */
#include "gw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "mpack.h"
#include "proto.h"
#include "worker.h"

static const msgpack_object *
get_arr(const msgpack_object *o, uint64_t key)
{
	const msgpack_object *a = hp_mpack_get(o, key);

	return a != NULL && a->type == MSGPACK_OBJECT_ARRAY ? a : NULL;
}

static int
is_bin(const msgpack_object *o, size_t n)
{
	return o->type == MSGPACK_OBJECT_BIN && (n == 0 || o->via.bin.size == n);
}

static int
get_hash(const msgpack_object *map, uint64_t key, uint8_t out[32])
{
	const msgpack_object *o = hp_mpack_get(map, key);

	if (o == NULL || !is_bin(o, 32))
		return HP_EFORMAT;
	memcpy(out, o->via.bin.ptr, 32);
	return 0;
}

static int
ledger_decode(const msgpack_object *m, struct gw_ledger *l)
{
	if (m == NULL || m->type != MSGPACK_OBJECT_MAP ||
	    hp_mpack_u64(m, 1, &l->seq) != 0 ||
	    hp_mpack_u64(m, 2, &l->time) != 0 ||
	    get_hash(m, 3, l->hash) != 0 ||
	    get_hash(m, 4, l->prev_hash) != 0 ||
	    get_hash(m, 5, l->state_hash) != 0 ||
	    get_hash(m, 6, l->patch_hash) != 0 ||
	    get_hash(m, 7, l->user_hash) != 0 ||
	    get_hash(m, 8, l->input_hash) != 0 ||
	    get_hash(m, 9, l->output_hash) != 0)
		return HP_EFORMAT;
	return 0;
}

static void
ledger_to_user(const struct gw_ledger *g, struct hp_uledger *u)
{
	u->seq_no = g->seq;
	u->timestamp = g->time;
	memcpy(u->hash, g->hash, 32);
	memcpy(u->prev_hash, g->prev_hash, 32);
	memcpy(u->state_hash, g->state_hash, 32);
	memcpy(u->config_hash, g->patch_hash, 32);
	memcpy(u->user_hash, g->user_hash, 32);
	memcpy(u->input_hash, g->input_hash, 32);
	memcpy(u->output_hash, g->output_hash, 32);
}

static bool
opt_bool(const msgpack_object *m, uint64_t key)
{
	bool v = false;

	hp_mpack_bool(m, key, &v);
	return v;
}

static int
status_decode(const msgpack_object *body, struct gw_status *st)
{
	const msgpack_object *unl = get_arr(body, 4), *peers = get_arr(body, 5);

	memset(st, 0, sizeof(*st));
	if (ledger_decode(hp_mpack_get(body, 1), &st->lcl) != 0 ||
	    hp_mpack_u64(body, 2, &st->vote) != 0 ||
	    hp_mpack_u64(body, 3, &st->roundtime) != 0 || unl == NULL ||
	    unl->via.array.size > GW_MAX_UNL)
		return HP_EFORMAT;
	for (uint32_t i = 0; i < unl->via.array.size; i++) {
		const msgpack_object *k = &unl->via.array.ptr[i];

		if (!is_bin(k, HP_PK_BYTES))
			return HP_EFORMAT;
		memcpy(st->unl[i], k->via.bin.ptr, HP_PK_BYTES);
	}
	st->n_unl = unl->via.array.size;
	for (uint32_t i = 0; peers != NULL && i < peers->via.array.size &&
	    st->n_peers < GW_MAX_PEERS; i++) {
		const msgpack_object *p = &peers->via.array.ptr[i];

		if (p->type != MSGPACK_OBJECT_STR ||
		    p->via.str.size >= sizeof(st->peers[0]))
			continue;
		memcpy(st->peers[st->n_peers], p->via.str.ptr, p->via.str.size);
		st->peers[st->n_peers++][p->via.str.size] = '\0';
	}
	st->execution = opt_bool(body, 6);
	st->reads = opt_bool(body, 7);
	st->full_history = opt_bool(body, 8);
	st->weak = opt_bool(body, 9);
	st->inputs_full = opt_bool(body, 10);
	st->have = true;
	return 0;
}

enum channel { CH_LEDGER, CH_UNL };

/* One message, encoded once per protocol, to every subscriber of ch. */
static void
broadcast(enum channel ch, const struct hp_ubuf b[2])
{
	for (struct conn *c = gw.conns; c != NULL; c = c->next) {
		if (c->state != C_VERIFIED)
			continue;
		if ((ch == CH_LEDGER && !c->sub_ledger) ||
		    (ch == CH_UNL && !c->sub_unl))
			continue;
		if (b[c->proto].data != NULL)
			conn_send(c, &b[c->proto]);
	}
}

static void
free_pair(struct hp_ubuf b[2])
{
	free(b[0].data);
	free(b[1].data);
	memset(b, 0, 2 * sizeof(*b));
}

static void
announce(const struct gw_status *old, const struct gw_status *st)
{
	struct hp_ubuf b[2] = { { NULL, 0 }, { NULL, 0 } };
	struct hp_uledger l;

	if (!old->have || old->lcl.seq != st->lcl.seq ||
	    memcmp(old->lcl.hash, st->lcl.hash, 32) != 0) {
		ledger_to_user(&st->lcl, &l);
		hp_uenc_ledger_created(HP_UPROTO_JSON, &l, &b[0]);
		hp_uenc_ledger_created(HP_UPROTO_BSON, &l, &b[1]);
		broadcast(CH_LEDGER, b);
		free_pair(b);
	}
	if (old->have && old->vote != st->vote) {
		const char *v = st->vote == 1 ? "unreliable" :
		    st->vote == 2 ? "desync" : st->vote == 3 ? "synced" :
		    "unknown";
		hp_uenc_vote_status(HP_UPROTO_JSON, v, &b[0]);
		hp_uenc_vote_status(HP_UPROTO_BSON, v, &b[1]);
		broadcast(CH_LEDGER, b);
		free_pair(b);
	}
	if (old->have && (old->n_unl != st->n_unl ||
	    memcmp(old->unl, st->unl, st->n_unl * HP_PK_BYTES) != 0)) {
		hp_uenc_unl_change(HP_UPROTO_JSON, &st->unl[0][0], st->n_unl,
		    &b[0]);
		hp_uenc_unl_change(HP_UPROTO_BSON, &st->unl[0][0], st->n_unl,
		    &b[1]);
		broadcast(CH_UNL, b);
		free_pair(b);
	}
}

void
feed_status(const msgpack_object *body)
{
	struct gw_status *st = malloc(sizeof(*st)), *old;

	if (st == NULL)
		return;
	if (status_decode(body, st) != 0) {
		log_warnx("malformed GW_STATUS from consensus; ignored");
		free(st);
		return;
	}
	if ((old = malloc(sizeof(*old))) == NULL) {
		free(st);
		return;
	}
	*old = gw.st;
	gw.st = *st;
	if (old->lcl.seq != st->lcl.seq)
		for (struct conn *c = gw.conns; c != NULL; c = c->next)
			c->round_bytes = 0;
	announce(old, st);
	free(old);
	free(st);
}

static void
send_status(struct conn *c, const uint8_t *hash, const char *reason,
    uint64_t seq, const uint8_t lhash[32])
{
	struct hp_ubuf b = { NULL, 0 };

	if (hp_uenc_input_status(c->proto, hash, reason, seq, lhash, &b) == 0)
		conn_send(c, &b);
	free(b.data);
}

static enum gw_reason
reason_of(const msgpack_object *o)
{
	for (int r = 0; r < R_COUNT; r++) {
		const char *n = gw_reason_name((enum gw_reason)r);

		if (o->via.str.size == strlen(n) &&
		    memcmp(o->via.str.ptr, n, o->via.str.size) == 0)
			return (enum gw_reason)r;
	}
	return R_OTHER;
}

void
feed_settled(const msgpack_object *body)
{
	const msgpack_object *acc = get_arr(body, 3), *rej = get_arr(body, 4);
	uint8_t lhash[32], zero[32] = { 0 };
	uint64_t seq;

	if (hp_mpack_u64(body, 1, &seq) != 0 || get_hash(body, 2, lhash) != 0) {
		log_warnx("malformed GW_SETTLED from consensus; ignored");
		return;
	}
	for (uint32_t i = 0; acc != NULL && i < acc->via.array.size; i++) {
		const msgpack_object *e = &acc->via.array.ptr[i];
		struct conn *c;

		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 2 ||
		    !is_bin(&e->via.array.ptr[0], HP_PK_BYTES) ||
		    !is_bin(&e->via.array.ptr[1], 32))
			continue;
		gw.c.inputs_accepted++;
		c = conn_find_user((const uint8_t *)e->via.array.ptr[0].via.bin.ptr);
		if (c != NULL && c->state == C_VERIFIED)
			send_status(c, (const uint8_t *)
			    e->via.array.ptr[1].via.bin.ptr, NULL, seq, lhash);
	}
	for (uint32_t i = 0; rej != NULL && i < rej->via.array.size; i++) {
		const msgpack_object *e = &rej->via.array.ptr[i];
		enum gw_reason r;
		struct conn *c;

		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 3 ||
		    !is_bin(&e->via.array.ptr[0], HP_PK_BYTES) ||
		    !is_bin(&e->via.array.ptr[1], 32) ||
		    e->via.array.ptr[2].type != MSGPACK_OBJECT_STR)
			continue;
		r = reason_of(&e->via.array.ptr[2]);
		gw.c.rejected[r]++;
		if (r == R_ALREADY_SUBMITTED || r == R_OTHER)
			continue;
		c = conn_find_user((const uint8_t *)e->via.array.ptr[0].via.bin.ptr);
		if (c != NULL && c->state == C_VERIFIED)
			send_status(c, (const uint8_t *)
			    e->via.array.ptr[1].via.bin.ptr, gw_reason_name(r),
			    0, zero);
	}
}

/* Copy an array of fixed-size bins into one buffer; NULL when malformed. */
static uint8_t *
flat_bins(const msgpack_object *a, size_t size, size_t *n)
{
	uint8_t *out;

	*n = 0;
	if (a == NULL || a->via.array.size == 0)
		return NULL;
	if ((out = calloc(a->via.array.size, size)) == NULL)
		return NULL;
	for (uint32_t i = 0; i < a->via.array.size; i++) {
		if (!is_bin(&a->via.array.ptr[i], size)) {
			free(out);
			return NULL;
		}
		memcpy(out + (size_t)i * size, a->via.array.ptr[i].via.bin.ptr,
		    size);
	}
	*n = a->via.array.size;
	return out;
}

static void
output_to_user(const msgpack_object *e, uint64_t seq, const uint8_t *lhash,
    const uint8_t *leaves, size_t nleaves, const uint8_t *keys,
    const uint8_t *sigs, size_t nsigs)
{
	const msgpack_object *outs;
	struct hp_ubuf b = { NULL, 0 };
	struct hp_ublob *blobs = NULL;
	const uint8_t *ohash;
	struct conn *c;
	size_t self;

	if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 3 ||
	    !is_bin(&e->via.array.ptr[0], HP_PK_BYTES) ||
	    !is_bin(&e->via.array.ptr[1], 32) ||
	    e->via.array.ptr[2].type != MSGPACK_OBJECT_ARRAY)
		return;
	c = conn_find_user((const uint8_t *)e->via.array.ptr[0].via.bin.ptr);
	if (c == NULL || c->state != C_VERIFIED)
		return;
	ohash = (const uint8_t *)e->via.array.ptr[1].via.bin.ptr;
	for (self = 0; self < nleaves; self++)
		if (memcmp(leaves + self * 32, ohash, 32) == 0)
			break;
	if (self == nleaves) {
		log_warnx("GW_OUTPUTS: a user's output hash is not a leaf");
		return;
	}
	outs = &e->via.array.ptr[2];
	if (outs->via.array.size > 0 &&
	    (blobs = calloc(outs->via.array.size, sizeof(*blobs))) == NULL)
		return;
	for (uint32_t i = 0; i < outs->via.array.size; i++) {
		if (!is_bin(&outs->via.array.ptr[i], 0)) {
			free(blobs);
			return;
		}
		blobs[i].data = (const uint8_t *)outs->via.array.ptr[i].via.bin.ptr;
		blobs[i].len = outs->via.array.ptr[i].via.bin.size;
	}
	if (hp_uenc_contract_output(c->proto, seq, lhash, blobs,
	    outs->via.array.size, ohash, leaves, nleaves, self, keys, sigs,
	    nsigs, &b) == 0) {
		conn_send(c, &b);
		gw.c.outputs_sent++;
	}
	free(b.data);
	free(blobs);
}

void
feed_outputs(const msgpack_object *body)
{
	const msgpack_object *sigs = get_arr(body, 4), *users = get_arr(body, 5);
	uint8_t lhash[32], *leaves, *keys = NULL, *sg = NULL;
	size_t nleaves, nsigs = 0;
	uint64_t seq;

	if (hp_mpack_u64(body, 1, &seq) != 0 || get_hash(body, 2, lhash) != 0 ||
	    sigs == NULL || users == NULL ||
	    (leaves = flat_bins(get_arr(body, 3), 32, &nleaves)) == NULL) {
		log_warnx("malformed GW_OUTPUTS from consensus; ignored");
		return;
	}
	if (sigs->via.array.size > 0 &&
	    ((keys = calloc(sigs->via.array.size, HP_PK_BYTES)) == NULL ||
	    (sg = calloc(sigs->via.array.size, HP_SIG_BYTES)) == NULL))
		goto out;
	for (uint32_t i = 0; i < sigs->via.array.size; i++) {
		const msgpack_object *p = &sigs->via.array.ptr[i];

		if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size < 2 ||
		    !is_bin(&p->via.array.ptr[0], HP_PK_BYTES) ||
		    !is_bin(&p->via.array.ptr[1], HP_SIG_BYTES))
			continue;
		memcpy(keys + nsigs * HP_PK_BYTES, p->via.array.ptr[0].via.bin.ptr,
		    HP_PK_BYTES);
		memcpy(sg + nsigs * HP_SIG_BYTES, p->via.array.ptr[1].via.bin.ptr,
		    HP_SIG_BYTES);
		nsigs++;
	}
	for (uint32_t i = 0; i < users->via.array.size; i++)
		output_to_user(&users->via.array.ptr[i], seq, lhash, leaves,
		    nleaves, keys, sg, nsigs);
out:
	free(leaves);
	free(keys);
	free(sg);
}

/* ---- ledger queries ---- */

static void
query_reply(struct conn *c, const char *reply_for, const char *error,
    const struct hp_uledger *l, const struct hp_uinput_rec *in, size_t nin,
    const struct hp_uoutput_rec *out, size_t nout)
{
	struct hp_ubuf b = { NULL, 0 };

	if (hp_uenc_ledger_query_result(c->proto, reply_for, error, l, in, nin,
	    out, nout, &b) == 0)
		conn_send(c, &b);
	free(b.data);
}

int
feed_ledger_query(struct conn *c, const char *id, uint64_t seq, int inputs,
    int outputs)
{
	static const struct hp_uinput_rec no_in[1];
	static const struct hp_uoutput_rec no_out[1];
	struct gw_pending *q = NULL;
	struct hp_frame f;

	if (seq == 0) {
		struct hp_uledger genesis;

		memset(&genesis, 0, sizeof(genesis));
		query_reply(c, id, NULL, &genesis, inputs ? no_in : NULL, 0,
		    outputs ? no_out : NULL, 0);
		return 0;
	}
	for (size_t i = 0; i < GW_QUERIES_MAX && q == NULL; i++)
		if (gw.queries[i].fid == 0)
			q = &gw.queries[i];
	if (q == NULL || !hp_worker_sibling_up(HP_W_CONSENSUS)) {
		query_reply(c, id, "exec_failure", NULL, NULL, 0, NULL, 0);
		return HP_EAGAIN;
	}
	memset(q, 0, sizeof(*q));
	q->fid = gw_fid();
	q->conn = c->id;
	snprintf(q->reply_for, sizeof(q->reply_for), "%s", id);
	q->want_inputs = inputs != 0;
	q->want_outputs = outputs != 0;
	hp_frame_begin(&f, HP_MSG_GW_LEDGER_QUERY, q->fid, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, seq);
	msgpack_pack_uint32(&f.pk, 2);
	if (inputs)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	msgpack_pack_uint32(&f.pk, 3);
	if (outputs)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	if (hp_worker_send(HP_W_CONSENSUS, &f, -1) != 0) {
		q->fid = 0;
		query_reply(c, id, "exec_failure", NULL, NULL, 0, NULL, 0);
		return HP_EAGAIN;
	}
	return 0;
}

static int
inputs_decode(const msgpack_object *a, struct hp_uinput_rec **out, size_t *n)
{
	struct hp_uinput_rec *r;

	*out = NULL;
	*n = 0;
	if (a == NULL || a->via.array.size == 0)
		return 0;
	if ((r = calloc(a->via.array.size, sizeof(*r))) == NULL)
		return HP_ENOMEM;
	for (uint32_t i = 0; i < a->via.array.size; i++) {
		const msgpack_object *e = &a->via.array.ptr[i];

		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 4 ||
		    !is_bin(&e->via.array.ptr[0], HP_PK_BYTES) ||
		    !is_bin(&e->via.array.ptr[1], 32) ||
		    e->via.array.ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    !is_bin(&e->via.array.ptr[3], 0)) {
			free(r);
			return HP_EFORMAT;
		}
		memcpy(r[i].pubkey, e->via.array.ptr[0].via.bin.ptr, 32);
		memcpy(r[i].hash, e->via.array.ptr[1].via.bin.ptr, 32);
		r[i].nonce = e->via.array.ptr[2].via.u64;
		r[i].blob.data = (const uint8_t *)e->via.array.ptr[3].via.bin.ptr;
		r[i].blob.len = e->via.array.ptr[3].via.bin.size;
	}
	*out = r;
	*n = a->via.array.size;
	return 0;
}

static void
outputs_free(struct hp_uoutput_rec *r, size_t n)
{
	for (size_t i = 0; r != NULL && i < n; i++)
		free((void *)r[i].blobs);
	free(r);
}

static int
outputs_decode(const msgpack_object *a, struct hp_uoutput_rec **out,
    size_t *n)
{
	struct hp_uoutput_rec *r;

	*out = NULL;
	*n = 0;
	if (a == NULL || a->via.array.size == 0)
		return 0;
	if ((r = calloc(a->via.array.size, sizeof(*r))) == NULL)
		return HP_ENOMEM;
	for (uint32_t i = 0; i < a->via.array.size; i++) {
		const msgpack_object *e = &a->via.array.ptr[i], *bl;
		struct hp_ublob *blobs = NULL;

		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 3 ||
		    !is_bin(&e->via.array.ptr[0], HP_PK_BYTES) ||
		    !is_bin(&e->via.array.ptr[1], 32) ||
		    e->via.array.ptr[2].type != MSGPACK_OBJECT_ARRAY)
			goto bad;
		bl = &e->via.array.ptr[2];
		if (bl->via.array.size > 0 &&
		    (blobs = calloc(bl->via.array.size, sizeof(*blobs))) == NULL)
			goto bad;
		r[i].blobs = blobs;
		for (uint32_t j = 0; j < bl->via.array.size; j++) {
			if (!is_bin(&bl->via.array.ptr[j], 0))
				goto bad;
			blobs[j].data = (const uint8_t *)
			    bl->via.array.ptr[j].via.bin.ptr;
			blobs[j].len = bl->via.array.ptr[j].via.bin.size;
		}
		memcpy(r[i].pubkey, e->via.array.ptr[0].via.bin.ptr, 32);
		memcpy(r[i].hash, e->via.array.ptr[1].via.bin.ptr, 32);
		r[i].nblobs = bl->via.array.size;
	}
	*out = r;
	*n = a->via.array.size;
	return 0;
bad:
	outputs_free(r, a->via.array.size);
	return HP_EFORMAT;
}

void
feed_ledger_res(uint32_t id, const msgpack_object *body)
{
	static const struct hp_uinput_rec no_in[1];
	static const struct hp_uoutput_rec no_out[1];
	struct hp_uinput_rec *in = NULL;
	struct hp_uoutput_rec *out = NULL;
	struct gw_pending *q = NULL;
	struct gw_ledger gl;
	struct hp_uledger l;
	size_t nin = 0, nout = 0;
	char err[64];
	bool found = false;
	struct conn *c;

	for (size_t i = 0; i < GW_QUERIES_MAX && q == NULL; i++)
		if (gw.queries[i].fid == id && id != 0)
			q = &gw.queries[i];
	if (q == NULL)
		return;
	q->fid = 0;
	if ((c = conn_find(q->conn)) == NULL || c->state != C_VERIFIED)
		return;
	if (hp_mpack_str(body, 5, err, sizeof(err)) == 0) {
		query_reply(c, q->reply_for, "exec_failure", NULL, NULL, 0,
		    NULL, 0);
		return;
	}
	hp_mpack_bool(body, 1, &found);
	if (!found) {
		query_reply(c, q->reply_for, NULL, NULL, NULL, 0, NULL, 0);
		return;
	}
	if (ledger_decode(hp_mpack_get(body, 2), &gl) != 0 ||
	    inputs_decode(get_arr(body, 3), &in, &nin) != 0 ||
	    outputs_decode(get_arr(body, 4), &out, &nout) != 0) {
		log_warnx("malformed GW_LEDGER_RES from consensus");
		query_reply(c, q->reply_for, "exec_failure", NULL, NULL, 0,
		    NULL, 0);
		free(in);
		return;
	}
	ledger_to_user(&gl, &l);
	query_reply(c, q->reply_for, NULL, &l,
	    q->want_inputs ? (in != NULL ? in : no_in) : NULL, nin,
	    q->want_outputs ? (out != NULL ? out : no_out) : NULL, nout);
	free(in);
	outputs_free(out, nout);
}

void
feed_consensus_down(void)
{
	for (size_t i = 0; i < GW_QUERIES_MAX; i++)
		gw.queries[i].fid = 0;
}

/* ---- read requests ---- */

static size_t
read_slots(void)
{
	uint64_t n = gw.cfg->user.concurrent_read_requests;

	return n > 32 ? 32 : (size_t)n;
}

static int
read_send(struct gw_pending *slot, const struct gw_pending *r)
{
	struct hp_frame f;

	*slot = *r;
	slot->content = NULL;
	slot->fid = gw_fid();
	hp_frame_begin(&f, HP_MSG_READ_REQ, slot->fid, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_bin(&f.pk, HP_PK_BYTES);
	msgpack_pack_bin_body(&f.pk, r->pk, HP_PK_BYTES);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, r->content_len);
	msgpack_pack_bin_body(&f.pk, r->content, r->content_len);
	if (hp_worker_send(HP_W_RUNNER, &f, -1) != 0) {
		slot->fid = 0;
		return HP_EAGAIN;
	}
	return 0;
}

static struct gw_pending *
free_read_slot(void)
{
	for (size_t i = 0; i < read_slots(); i++)
		if (gw.reads[i].fid == 0)
			return &gw.reads[i];
	return NULL;
}

static void
read_dispatch(void)
{
	struct gw_pending *slot;

	while (gw.readq_len > 0 && (slot = free_read_slot()) != NULL) {
		struct gw_pending r = gw.readq[0];

		memmove(gw.readq, gw.readq + 1,
		    (gw.readq_len - 1) * sizeof(*gw.readq));
		gw.readq_len--;
		if (conn_find(r.conn) != NULL && read_send(slot, &r) != 0)
			gw.c.reads_dropped++;
		free(r.content);
	}
}

int
feed_read_request(struct conn *c, const char *id, const uint8_t *content,
    size_t len)
{
	struct gw_pending r, *slot;

	memset(&r, 0, sizeof(r));
	r.conn = c->id;
	snprintf(r.reply_for, sizeof(r.reply_for), "%s", id);
	memcpy(r.pk, c->pk, HP_PK_BYTES);
	r.content = (uint8_t *)content;
	r.content_len = len;
	if (!hp_worker_sibling_up(HP_W_RUNNER)) {
		gw.c.reads_dropped++;
		return HP_EAGAIN;
	}
	if ((slot = free_read_slot()) != NULL) {
		if (read_send(slot, &r) != 0) {
			gw.c.reads_dropped++;
			return HP_EAGAIN;
		}
		return 0;
	}
	if (gw.readq == NULL &&
	    (gw.readq = calloc(GW_READS_QUEUED, sizeof(*gw.readq))) == NULL)
		return HP_ENOMEM;
	if (gw.readq_len >= GW_READS_QUEUED) {
		gw.c.reads_dropped++;
		return HP_ETOOBIG;
	}
	if ((r.content = malloc(len > 0 ? len : 1)) == NULL)
		return HP_ENOMEM;
	memcpy(r.content, content, len);
	gw.readq[gw.readq_len++] = r;
	return 0;
}

void
feed_read_res(uint32_t id, const msgpack_object *body)
{
	const msgpack_object *outs = get_arr(body, 1);
	struct gw_pending *r = NULL;
	struct conn *c;

	for (size_t i = 0; i < 32 && r == NULL; i++)
		if (id != 0 && gw.reads[i].fid == id)
			r = &gw.reads[i];
	if (r == NULL)
		return;
	r->fid = 0;
	gw.c.reads_answered++;
	c = conn_find(r->conn);
	for (uint32_t i = 0; c != NULL && outs != NULL &&
	    i < outs->via.array.size; i++) {
		const msgpack_object *o = &outs->via.array.ptr[i];
		struct hp_ubuf b = { NULL, 0 };

		if (!is_bin(o, 0))
			continue;
		if (hp_uenc_read_response(c->proto, r->reply_for,
		    (const uint8_t *)o->via.bin.ptr, o->via.bin.size, &b) == 0)
			conn_send(c, &b);
		free(b.data);
	}
	read_dispatch();
}

void
feed_runner_down(void)
{
	for (size_t i = 0; i < 32; i++)
		gw.reads[i].fid = 0;
	for (size_t i = 0; i < gw.readq_len; i++)
		free(gw.readq[i].content);
	gw.readq_len = 0;
}

/* ---- hpctl show gateway ---- */

void
feed_show(msgpack_packer *pk)
{
	const struct gw_counters *c = &gw.c;
	size_t conns = 0, users = 0;

	for (struct conn *x = gw.conns; x != NULL; x = x->next) {
		if (x->state == C_CLOSING)
			continue;
		conns++;
		if (x->state == C_VERIFIED)
			users++;
	}
	msgpack_pack_map(pk, 18);
	hp_mpack_kv_u64(pk, "port", gw.cfg->user.port);
	hp_mpack_kv_bool(pk, "listening", gw.listening);
	hp_mpack_kv_u64(pk, "connections", conns);
	hp_mpack_kv_u64(pk, "verified_users", users);
	hp_mpack_kv_u64(pk, "accepted", c->accepted);
	hp_mpack_kv_u64(pk, "refused", c->refused);
	hp_mpack_kv_u64(pk, "closed", c->closed);
	hp_mpack_kv_u64(pk, "handshakes", c->handshakes);
	hp_mpack_kv_u64(pk, "handshake_failures", c->handshake_failures);
	hp_mpack_kv_u64(pk, "bytes_in", c->bytes_in);
	hp_mpack_kv_u64(pk, "bytes_out", c->bytes_out);
	hp_mpack_kv_u64(pk, "inputs_forwarded", c->inputs_forwarded);
	hp_mpack_kv_u64(pk, "inputs_accepted", c->inputs_accepted);
	hp_mpack_pack_cstr(pk, "inputs_rejected");
	msgpack_pack_map(pk, R_COUNT);
	for (int r = 0; r < R_COUNT; r++)
		hp_mpack_kv_u64(pk, gw_reason_name((enum gw_reason)r),
		    c->rejected[r]);
	hp_mpack_pack_cstr(pk, "read_requests");
	msgpack_pack_map(pk, 3);
	hp_mpack_kv_u64(pk, "received", c->reads);
	hp_mpack_kv_u64(pk, "answered", c->reads_answered);
	hp_mpack_kv_u64(pk, "dropped", c->reads_dropped);
	hp_mpack_kv_u64(pk, "ledger_queries", c->queries);
	hp_mpack_kv_u64(pk, "outputs_sent", c->outputs_sent);
	hp_mpack_kv_u64(pk, "bad_messages", c->bad_msgs);
}
