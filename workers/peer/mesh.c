/*
 * mesh.c — the peer worker's view of the network (mesh.h): the identity
 * signed by consensus, the listening socket and who may connect, the
 * verified set and what consensus is told about it, duplicate sessions,
 * UNL membership and weak connectivity, proposal dedup and forwarding,
 * peer-list requests, the periodic tick, and hpctl show peers.
 */
#include "mesh.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ban.h"
#include "channel.h"
#include "err.h"
#include "known.h"
#include "log.h"
#include "mpack.h"
#include "net.h"
#include "proto.h"
#include "worker.h"

struct mesh mesh = { .listen_fd = -1 };

static bool stopping;

uint64_t
mesh_now(void)
{
	return uv_now(mesh.loop);
}

static void
pk_hex(const uint8_t *pk, char out[HP_PK_HEX_LEN + 1])
{
	hp_pubkey_to_hex(pk, out);
}

static bool
in_unl(const uint8_t *pk)
{
	for (size_t i = 0; i < mesh.unl_count; i++)
		if (memcmp(mesh.unl[i], pk, HP_PK_BYTES) == 0)
			return true;
	return false;
}

void
mesh_count(size_t *total, size_t *outbound)
{
	*total = *outbound = 0;
	for (struct session *s = mesh.sessions; s != NULL; s = s->next) {
		if (s->state == S_CLOSING)
			continue;
		(*total)++;
		if (s->outbound)
			(*outbound)++;
	}
}

size_t
mesh_count_inbound_from(const char *ip)
{
	size_t n = 0;

	for (struct session *s = mesh.sessions; s != NULL; s = s->next)
		if (s->state != S_CLOSING && !s->outbound &&
		    strcmp(s->ip, ip) == 0)
			n++;
	return n;
}

bool
mesh_pk_connected(const uint8_t *pk)
{
	for (struct session *s = mesh.sessions; s != NULL; s = s->next)
		if (s->state == S_VERIFIED &&
		    memcmp(s->pk, pk, HP_PK_BYTES) == 0)
			return true;
	return false;
}

void
mesh_report_conns(void)
{
	struct hp_frame f;
	size_t n = 0;

	if (stopping || !hp_worker_sibling_up(HP_W_CONSENSUS))
		return;
	for (struct session *s = mesh.sessions; s != NULL; s = s->next)
		if (s->state == S_VERIFIED)
			n++;
	hp_frame_begin(&f, HP_MSG_PEER_CONNS, 0, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_array(&f.pk, n);
	for (struct session *s = mesh.sessions; s != NULL; s = s->next) {
		if (s->state != S_VERIFIED)
			continue;
		msgpack_pack_bin(&f.pk, HP_PK_BYTES);
		msgpack_pack_bin_body(&f.pk, s->pk, HP_PK_BYTES);
	}
	hp_worker_send(HP_W_CONSENSUS, &f, -1);
}

static void
send_requirement(struct session *s)
{
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	wire_requirement_encode(&sb, mesh.weak);
	s->sent_need = mesh.weak;
	session_send_sb(s, &sb);
	msgpack_sbuffer_destroy(&sb);
}

/*
 * HotPocket's rule: weakly connected when the UNL members we reach, plus
 * ourselves if we are one, are fewer than 70 % of the UNL.
 */
static void
recompute_weak(void)
{
	size_t n = mesh.self_in_unl ? 1 : 0;
	bool weak;

	for (struct session *s = mesh.sessions; s != NULL; s = s->next)
		if (s->state == S_VERIFIED && s->is_unl)
			n++;
	weak = mesh.unl_count > 0 && 10 * n < 7 * mesh.unl_count;
	if (weak == mesh.weak)
		return;
	mesh.weak = weak;
	log_info("%s connected: %zu of %zu UNL members reachable%s",
	    weak ? "weakly" : "strongly", n, mesh.unl_count,
	    weak ? "; asking peers to forward proposals" : "");
	for (struct session *s = mesh.sessions; s != NULL; s = s->next)
		if (s->state == S_VERIFIED && s->sent_need != weak)
			send_requirement(s);
}

static void
conns_changed(void)
{
	if (stopping)
		return;
	mesh_report_conns();
	recompute_weak();
}

/* Of two verified sessions to one node, the one to close. */
static struct session *
dup_loser(struct session *s, struct session *t)
{
	const uint8_t *ds = s->outbound ? mesh.pk : s->pk;
	const uint8_t *dt = t->outbound ? mesh.pk : t->pk;

	if (s->outbound == t->outbound)
		return s;	/* same dialler: keep the older */
	/* Keep the connection dialled by the smaller key. */
	return memcmp(ds, dt, HP_PK_BYTES) < 0 ? t : s;
}

void
mesh_report(const uint8_t *pk, uint64_t reason, int origin)
{
	switch (reason) {
	case HP_REPORT_MALFORMED: mesh.c.rep_malformed++; break;
	case HP_REPORT_NOT_UNL: mesh.c.rep_not_unl++; break;
	case HP_REPORT_BAD_SIG: mesh.c.rep_bad_sig++; break;
	case HP_REPORT_STALE: mesh.c.rep_stale++; break;
	case HP_REPORT_REPLAY: mesh.c.rep_replay++; break;
	default: return;
	}
	/* A relay forwards what others signed before anyone checks it:
	 * only the signer's own session is charged. */
	if (!origin)
		return;
	for (struct session *s = mesh.sessions; s != NULL; s = s->next) {
		if (s->state != S_VERIFIED || memcmp(s->pk, pk, HP_PK_BYTES))
			continue;
		/* mesh.max_bad_msgsigs_per_min counts these per session. */
		if (reason == HP_REPORT_BAD_SIG || reason == HP_REPORT_MALFORMED)
			s->win.badsig++;
		else
			s->win.bad++;
	}
}

void
mesh_session_verified(struct session *s)
{
	char hex[HP_PK_HEX_LEN + 1];

	pk_hex(s->pk, hex);
	if (s->known != NULL) {
		s->known->have_pk = true;
		memcpy(s->known->pk, s->pk, HP_PK_BYTES);
	}
	for (struct session *t = mesh.sessions; t != NULL; t = t->next) {
		struct session *loser;

		if (t == s || t->state != S_VERIFIED ||
		    memcmp(t->pk, s->pk, HP_PK_BYTES) != 0)
			continue;
		loser = dup_loser(s, t);
		log_debug("two sessions to %s: keeping session %llu",
		    hex, (unsigned long long)(loser == s ? t : s)->id);
		session_close(loser, "duplicate session to %.12s", hex);
		if (loser == s)
			return;
		break;
	}
	s->is_unl = in_unl(s->pk);
	if (s->sent_need != mesh.weak)
		send_requirement(s);
	if (s->state == S_CLOSING)
		return;
	log_info("peer %s verified (%s %s:%u%s)", hex,
	    s->outbound ? "to" : "from", s->ip, (unsigned)s->rport,
	    s->is_unl ? ", UNL" : "");
	conns_changed();
}

void
mesh_session_closed(struct session *s, enum session_state was)
{
	if (s->known != NULL) {
		struct known *k = s->known;

		s->known = NULL;
		k->s = NULL;
		if (!stopping)
			known_session_ended(k, was == S_VERIFIED);
	}
	if (was == S_VERIFIED)
		conns_changed();
}

/* State sync payloads belong to the state worker, the rest to consensus. */
static void
deliver(struct session *s, const struct wire_frame *f)
{
	int to = f->type == HP_PT_STATE_REQ || f->type == HP_PT_STATE_RES ?
	    HP_W_STATE : HP_W_CONSENSUS;
	struct hp_frame fr;

	hp_frame_begin(&fr, HP_MSG_PEER_RECV, 0, 0);
	msgpack_pack_map(&fr.pk, 3);
	msgpack_pack_uint32(&fr.pk, 1);
	msgpack_pack_bin(&fr.pk, HP_PK_BYTES);
	msgpack_pack_bin_body(&fr.pk, s->pk, HP_PK_BYTES);
	msgpack_pack_uint32(&fr.pk, 2);
	msgpack_pack_uint32(&fr.pk, f->type);
	msgpack_pack_uint32(&fr.pk, 3);
	msgpack_pack_bin(&fr.pk, f->len);
	msgpack_pack_bin_body(&fr.pk, f->payload, f->len);
	hp_worker_send(to, &fr, -1);
}

/*
 * HotPocket's forwarding: a proposal from a weakly connected sender goes to
 * every other peer; otherwise only to peers that asked for forwarding. In
 * private mode only UNL peers get proposals at all. The frame goes on
 * unchanged.
 */
static void
forward(struct session *from, const struct wire_frame *f)
{
	struct outbuf *b = NULL;

	for (struct session *t = mesh.sessions; t != NULL; t = t->next) {
		if (t == from || t->state != S_VERIFIED)
			continue;
		if (!from->peer_needs_fwd && !t->peer_needs_fwd)
			continue;
		if (!mesh.public_mode && !t->is_unl)
			continue;
		if (b == NULL &&
		    (b = outbuf_new(f->type, f->payload, f->len)) == NULL)
			return;
		session_send(t, b);
		mesh.c.forwarded++;
	}
	outbuf_unref(b);
}

static void
answer_list(struct session *s)
{
	struct wire_addr *a;
	msgpack_sbuffer sb;
	size_t n;

	if ((a = calloc(WIRE_LIST_MAX, sizeof(*a))) == NULL)
		return;
	n = known_list_for(s, a, WIRE_LIST_MAX);
	msgpack_sbuffer_init(&sb);
	wire_list_encode(&sb, a, n);
	session_send_sb(s, &sb);
	msgpack_sbuffer_destroy(&sb);
	free(a);
}

static void
take_list(struct session *s, const struct wire_frame *f)
{
	struct wire_addr *a;
	size_t n, skipped;

	if ((a = calloc(WIRE_LIST_MAX, sizeof(*a))) == NULL)
		return;
	if (wire_list_decode(f->payload, f->len, a, WIRE_LIST_MAX, &n,
	    &skipped) != 0)
		session_count_bad(s, "a malformed peer list");
	else {
		if (skipped > 0)
			log_debug("session %llu: %zu peer list entries were not"
			    " numeric addresses", (unsigned long long)s->id,
			    skipped);
		known_merge(a, n);
	}
	free(a);
}

void
mesh_frame(struct session *s, const struct wire_frame *f)
{
	bool need;

	switch (f->type) {
	case WIRE_PING:
	case WIRE_LIST_REQ:
		if (wire_empty_decode(f->payload, f->len) != 0)
			session_count_bad(s, "a malformed PING or PEERLIST_REQ");
		else if (f->type == WIRE_LIST_REQ)
			answer_list(s);
		return;
	case WIRE_REQUIREMENT:
		if (wire_requirement_decode(f->payload, f->len, &need) != 0)
			session_count_bad(s, "a malformed REQUIREMENT");
		else
			s->peer_needs_fwd = need;
		return;
	case WIRE_LIST_RES:
		take_list(s, f);
		return;
	default:
		break;
	}
	if (f->type == HP_PT_PROPOSAL &&
	    dedup_seen(&mesh.dedup, f->payload, f->len)) {
		session_count_dup(s);
		return;
	}
	deliver(s, f);
	if (f->type == HP_PT_PROPOSAL && mesh.cfg->mesh.msg_forwarding)
		forward(s, f);
}

void
mesh_send(uint8_t ptype, const uint8_t *payload, size_t len, bool unl_only,
    const uint8_t *to)
{
	bool restrict_unl = unl_only ||
	    (ptype == HP_PT_PROPOSAL && !mesh.public_mode);
	struct outbuf *b;

	if ((b = outbuf_new(ptype, payload, len)) == NULL) {
		log_warnx("out of memory for a %zu-byte %s", len,
		    wire_type_name(ptype));
		return;
	}
	/* Our own proposal coming back through forwarders is a duplicate. */
	if (ptype == HP_PT_PROPOSAL)
		dedup_seen(&mesh.dedup, payload, len);
	for (struct session *s = mesh.sessions; s != NULL; s = s->next) {
		if (s->state != S_VERIFIED)
			continue;
		if (to != NULL && memcmp(s->pk, to, HP_PK_BYTES) != 0)
			continue;
		if (restrict_unl && !s->is_unl)
			continue;
		session_send(s, b);
	}
	outbuf_unref(b);
}

void
mesh_set_unl(const uint8_t *keys, size_t n, bool public_mode)
{
	uint8_t (*unl)[HP_PK_BYTES] = NULL;

	if (n > 0 && (unl = calloc(n, HP_PK_BYTES)) == NULL) {
		log_warnx("out of memory for a UNL of %zu keys", n);
		return;
	}
	if (n > 0)
		memcpy(unl, keys, n * HP_PK_BYTES);
	free(mesh.unl);
	mesh.unl = unl;
	mesh.unl_count = n;
	mesh.public_mode = public_mode;
	mesh.self_in_unl = in_unl(mesh.pk);
	for (struct session *s = mesh.sessions; s != NULL; s = s->next)
		if (s->state == S_VERIFIED)
			s->is_unl = in_unl(s->pk);
	recompute_weak();
}

static bool
inbound_allowed(const char *ip)
{
	const struct hp_config *cfg = mesh.cfg;
	size_t total, out;

	mesh_count(&total, &out);
	if (cfg->mesh.max_connections != 0) {
		if (total >= cfg->mesh.max_connections)
			return false;
		/* HotPocket keeps max_known_connections for dialling. */
		if (total - out + cfg->mesh.max_known_connections >=
		    cfg->mesh.max_connections)
			return false;
	}
	if (cfg->mesh.max_in_connections_per_host != 0 &&
	    mesh_count_inbound_from(ip) >=
	    cfg->mesh.max_in_connections_per_host)
		return false;
	return true;
}

static void
on_accept(uv_poll_t *h, int status, int events)
{
	struct sockaddr_storage ss;
	char ip[INET6_ADDRSTRLEN];
	socklen_t len;
	uint16_t port;
	int fd;

	if (status < 0) {
		log_warnx("mesh listening socket: %s", uv_strerror(status));
		return;
	}
	for (;;) {
		len = sizeof(ss);
		if ((fd = hp_accept(mesh.listen_fd, &ss, &len)) < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("accept on mesh.port");
			return;
		}
		hp_addr_text((struct sockaddr *)&ss, ip, sizeof(ip), &port);
		if (ban_active(ip, mesh_now()) || !inbound_allowed(ip)) {
			log_debug("refused a connection from %s:%u", ip,
			    (unsigned)port);
			mesh.c.refused++;
			close(fd);
			continue;
		}
		mesh.c.accepted++;
		session_accept(fd, (struct sockaddr *)&ss, len);
	}
}

static void
start_listening(void)
{
	if (mesh.listening || mesh.listen_fd < 0 || !mesh.have_sig)
		return;
	if (uv_poll_init(mesh.loop, &mesh.listen_poll, mesh.listen_fd) != 0 ||
	    uv_poll_start(&mesh.listen_poll, UV_READABLE, on_accept) != 0) {
		log_warnx("cannot watch the mesh listening socket");
		return;
	}
	mesh.listening = true;
	log_info("accepting peers on port %u", (unsigned)mesh.cfg->mesh.port);
}

void
mesh_listener(int fd)
{
	if (mesh.listen_fd >= 0) {
		log_warnx("a second mesh listening socket; keeping the first");
		close(fd);
		return;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	mesh.listen_fd = fd;
	start_listening();
}

void
mesh_identity(const uint8_t *sig, size_t len)
{
	const struct hp_config *cfg = mesh.cfg;
	uint8_t *bind;
	size_t bind_len;
	int rc;

	if (mesh.have_sig)
		return;
	if (len != HP_SIG_BYTES) {
		log_warnx("PEER_SIGN_RES carries %zu bytes, not a signature",
		    len);
		return;
	}
	if (tlsid_binding(cfg->contract.id, mesh.tls.spki, mesh.tls.spki_len,
	    &bind, &bind_len) != 0)
		return;
	rc = hp_verify(cfg->node.keys.pk, bind, bind_len, sig);
	free(bind);
	if (rc != 0) {
		log_errx("the consensus worker's signature over our TLS"
		    " identity does not verify with node.public_key; not"
		    " connecting to peers");
		return;
	}
	memcpy(mesh.sig, sig, HP_SIG_BYTES);
	mesh.have_sig = true;
	log_info("TLS identity signed by the node key");
	start_listening();
	known_tick(mesh_now());
}

static void
discover(uint64_t now)
{
	const struct hp_config *cfg = mesh.cfg;
	uint64_t interval = cfg->mesh.peer_discovery.interval;
	struct session *s;
	msgpack_sbuffer sb;
	size_t total, out, n = 0;
	uint32_t pick;

	if (!cfg->mesh.peer_discovery.enabled || interval == 0 ||
	    now < mesh.next_discovery_ms)
		return;
	mesh_count(&total, &out);
	/* HotPocket slows down once it dials all it may. */
	if (cfg->mesh.max_connections != 0 &&
	    out >= cfg->mesh.max_known_connections)
		interval *= 5;
	mesh.next_discovery_ms = now + interval;
	for (s = mesh.sessions; s != NULL; s = s->next)
		if (s->state == S_VERIFIED)
			n++;
	if (n == 0)
		return;
	pick = randombytes_uniform((uint32_t)n);
	for (s = mesh.sessions; s != NULL; s = s->next)
		if (s->state == S_VERIFIED && pick-- == 0)
			break;
	msgpack_sbuffer_init(&sb);
	wire_empty_encode(&sb, WIRE_LIST_REQ);
	session_send_sb(s, &sb);
	msgpack_sbuffer_destroy(&sb);
}

static void
on_tick(uv_timer_t *t)
{
	uint64_t now = mesh_now();

	for (struct session *s = mesh.sessions; s != NULL; s = s->next)
		session_tick(s, now);
	if (!mesh.have_sig)
		return;
	known_tick(now);
	discover(now);
}

int
mesh_pre_sandbox(const char *dir)
{
	if (tlsid_init(&mesh.tls) != 0)
		return HP_ECRYPTO;
	return known_pre_sandbox(dir);
}

int
mesh_init(uv_loop_t *loop, const struct hp_config *cfg)
{
	uint8_t *keys = NULL;
	size_t n = 0;
	int rc;

	mesh.loop = loop;
	mesh.cfg = cfg;
	memcpy(mesh.pk, cfg->node.keys.pk, HP_PK_BYTES);
	dedup_init(&mesh.dedup);
	/* Until consensus says otherwise, the UNL and mode of hp.cfg. */
	if (cfg->contract.unl_count > 0 &&
	    (keys = calloc(cfg->contract.unl_count, HP_PK_BYTES)) == NULL)
		return HP_ENOMEM;
	for (size_t i = 0; i < cfg->contract.unl_count; i++)
		if (hp_pubkey_from_hex(cfg->contract.unl[i],
		    keys + n * HP_PK_BYTES) == 0)
			n++;
	mesh_set_unl(keys, n, cfg->contract.consensus.mode == HP_MODE_PUBLIC);
	free(keys);
	if ((rc = known_init()) != 0)
		return rc;
	if (uv_timer_init(loop, &mesh.tick) != 0 ||
	    uv_timer_start(&mesh.tick, on_tick, MESH_TICK_MS,
	    MESH_TICK_MS) != 0)
		return HP_EIO;
	return 0;
}

void
mesh_shutdown(void)
{
	stopping = true;
	uv_timer_stop(&mesh.tick);
	if (mesh.listening) {
		uv_poll_stop(&mesh.listen_poll);
		uv_close((uv_handle_t *)&mesh.listen_poll, NULL);
		mesh.listening = false;
	}
	for (struct session *s = mesh.sessions; s != NULL; s = s->next)
		session_close(s, "shutting down");
	if (mesh.listen_fd >= 0)
		close(mesh.listen_fd);
	mesh.listen_fd = -1;
	known_free();
}

static void
show_session(msgpack_packer *pk, const struct session *s, uint64_t now)
{
	char hex[HP_PK_HEX_LEN + 1], addr[INET6_ADDRSTRLEN + 8];

	snprintf(addr, sizeof(addr), "%s:%u", s->ip, (unsigned)s->rport);
	msgpack_pack_map(pk, 14);
	hp_mpack_pack_cstr(pk, "pubkey");
	if (s->state == S_VERIFIED) {
		pk_hex(s->pk, hex);
		hp_mpack_pack_cstr(pk, hex);
	} else
		msgpack_pack_nil(pk);
	hp_mpack_kv_str(pk, "address", addr);
	hp_mpack_kv_str(pk, "direction", s->outbound ? "out" : "in");
	hp_mpack_kv_str(pk, "state", session_state_name(s->state));
	hp_mpack_kv_bool(pk, "verified", s->state == S_VERIFIED);
	hp_mpack_kv_bool(pk, "is_unl", s->is_unl);
	hp_mpack_kv_bool(pk, "needs_forwarding", s->peer_needs_fwd);
	hp_mpack_kv_u64(pk, "listen_port", s->listen_port);
	hp_mpack_kv_u64(pk, "age_ms", now - s->created_ms);
	hp_mpack_kv_u64(pk, "bytes_in", s->bytes_in);
	hp_mpack_kv_u64(pk, "bytes_out", s->bytes_out);
	hp_mpack_kv_u64(pk, "frames_in", s->frames_in);
	hp_mpack_kv_u64(pk, "frames_out", s->frames_out);
	hp_mpack_kv_u64(pk, "queued_bytes", s->oq_bytes);
}

void
mesh_show(msgpack_packer *pk)
{
	const struct mesh_counters *c = &mesh.c;
	char hex[HP_PK_HEX_LEN + 1];
	uint64_t now = mesh_now();
	size_t n = 0;

	pk_hex(mesh.pk, hex);
	msgpack_pack_map(pk, 12);
	hp_mpack_kv_str(pk, "pubkey", hex);
	hp_mpack_kv_u64(pk, "listen_port", mesh.cfg->mesh.listen ?
	    mesh.cfg->mesh.port : 0);
	hp_mpack_kv_bool(pk, "listening", mesh.listening);
	hp_mpack_kv_bool(pk, "identity_signed", mesh.have_sig);
	hp_mpack_kv_bool(pk, "weak", mesh.weak);
	hp_mpack_kv_bool(pk, "public", mesh.public_mode);
	hp_mpack_kv_u64(pk, "unl_size", mesh.unl_count);
	hp_mpack_kv_bool(pk, "self_in_unl", mesh.self_in_unl);
	for (struct session *s = mesh.sessions; s != NULL; s = s->next)
		if (s->state != S_CLOSING)
			n++;
	hp_mpack_pack_cstr(pk, "sessions");
	msgpack_pack_array(pk, n);
	for (struct session *s = mesh.sessions; s != NULL; s = s->next)
		if (s->state != S_CLOSING)
			show_session(pk, s, now);
	hp_mpack_pack_cstr(pk, "counters");
	msgpack_pack_map(pk, 16);
	hp_mpack_kv_u64(pk, "tls_errors", c->tls_errors);
	hp_mpack_kv_u64(pk, "dropped_malformed", c->rep_malformed);
	hp_mpack_kv_u64(pk, "dropped_not_unl", c->rep_not_unl);
	hp_mpack_kv_u64(pk, "dropped_bad_sig", c->rep_bad_sig);
	hp_mpack_kv_u64(pk, "dropped_stale", c->rep_stale);
	hp_mpack_kv_u64(pk, "dropped_replay", c->rep_replay);
	hp_mpack_kv_u64(pk, "dropped_dup", c->dropped_dup);
	hp_mpack_kv_u64(pk, "dropped_bad", c->dropped_bad);
	hp_mpack_kv_u64(pk, "dropped_unverified", c->dropped_unverified);
	hp_mpack_kv_u64(pk, "bad_hello", c->bad_hello);
	hp_mpack_kv_u64(pk, "violations", c->violations);
	hp_mpack_kv_u64(pk, "bans", c->bans);
	hp_mpack_kv_u64(pk, "accepted", c->accepted);
	hp_mpack_kv_u64(pk, "refused", c->refused);
	hp_mpack_kv_u64(pk, "dialled", c->dialled);
	hp_mpack_kv_u64(pk, "forwarded", c->forwarded);
	hp_mpack_pack_cstr(pk, "known");
	known_show(pk);
	hp_mpack_pack_cstr(pk, "banned");
	ban_show(pk, now);
}
