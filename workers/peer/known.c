/*
 * known.c — the known peer list and dialling (known.h).
 *
 * The peer worker cannot resolve host names inside its sandbox (no files,
 * no DNS): the supervisor resolves the host names of mesh.known_peers
 * before it hands the configuration over, so every configured address
 * arrives numeric, and peers learned by discovery must be numeric too.
 */
#include "known.h"

#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ban.h"
#include "channel.h"
#include "err.h"
#include "log.h"
#include "mesh.h"
#include "mpack.h"
#include "net.h"
#include "proto.h"
#include "session.h"
#include "worker.h"

static struct known **kl;
static size_t kn, kcap;
static bool dirty;
static uint64_t last_save;

int
known_pre_sandbox(const char *dir)
{
	return 0;
}

static void
fill_addrs(struct known *k)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&k->sa[0];
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&k->sa[0];

	memset(&k->sa[0], 0, sizeof(k->sa[0]));
	if (inet_pton(AF_INET, k->a.host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(k->a.port);
		k->salen[0] = sizeof(*in);
		k->nsa = 1;
		return;
	}
	if (inet_pton(AF_INET6, k->a.host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(k->a.port);
		k->salen[0] = sizeof(*in6);
		k->nsa = 1;
		return;
	}
}

/* Add a; true when it is new. */
static bool
add_entry(const struct wire_addr *a, bool from_cfg)
{
	char text[WIRE_HOST_MAX + 8];
	struct known *k;

	for (size_t i = 0; i < kn; i++)
		if (wire_addr_equal(&kl[i]->a, a))
			return false;
	if (kn >= kcap || (k = calloc(1, sizeof(*k))) == NULL)
		return false;
	k->a = *a;
	k->from_cfg = from_cfg;
	k->backoff_ms = KNOWN_BACKOFF_MIN;
	fill_addrs(k);
	if (k->nsa == 0) {
		wire_addr_format(a, text, sizeof(text));
		log_warnx("known peer %s is not a numeric address and cannot"
		    " be dialled (the supervisor resolves configured names at"
		    " start)", text);
	}
	kl[kn++] = k;
	return true;
}

int
known_init(void)
{
	const struct hp_config *cfg = mesh.cfg;

	kcap = cfg->mesh.known_peers_count + KNOWN_MAX;
	if ((kl = calloc(kcap, sizeof(*kl))) == NULL)
		return HP_ENOMEM;
	for (size_t i = 0; i < cfg->mesh.known_peers_count; i++) {
		struct wire_addr a;

		memset(&a, 0, sizeof(a));
		if (strlen(cfg->mesh.known_peers[i].host) > WIRE_HOST_MAX) {
			log_warnx("mesh.known_peers: host %.40s... is longer"
			    " than %d characters; ignored",
			    cfg->mesh.known_peers[i].host, WIRE_HOST_MAX);
			continue;
		}
		snprintf(a.host, sizeof(a.host), "%s",
		    cfg->mesh.known_peers[i].host);
		a.port = cfg->mesh.known_peers[i].port;
		add_entry(&a, true);
	}
	return 0;
}

void
known_free(void)
{
	for (size_t i = 0; i < kn; i++) {
		if (kl[i]->s != NULL)
			kl[i]->s->known = NULL;
		free(kl[i]);
	}
	free(kl);
	kl = NULL;
	kn = kcap = 0;
}

void
known_load(const char *const *strs, const size_t *lens, size_t n)
{
	struct wire_addr a;
	size_t added = 0;

	for (size_t i = 0; i < n; i++)
		if (wire_addr_parse(strs[i], lens[i], &a, false) == 0 &&
		    kn < KNOWN_MAX && add_entry(&a, false))
			added++;
	if (added > 0)
		log_info("%zu known peer(s) loaded from the ledger store",
		    added);
}

void
known_merge(const struct wire_addr *a, size_t n)
{
	size_t added = 0;

	for (size_t i = 0; i < n && kn < KNOWN_MAX; i++)
		if (add_entry(&a[i], false))
			added++;
	if (added > 0) {
		log_debug("discovery: %zu new known peer(s)", added);
		dirty = true;
	}
}

static void
drop_at(size_t i)
{
	if (kl[i]->s != NULL)
		kl[i]->s->known = NULL;
	free(kl[i]);
	memmove(&kl[i], &kl[i + 1], (kn - i - 1) * sizeof(*kl));
	kn--;
}

void
known_changeset(const char *const *add, const size_t *addlen, size_t nadd,
    const char *const *rem, const size_t *remlen, size_t nrem, bool all)
{
	struct wire_addr a;
	size_t added = 0, removed = 0;

	for (size_t i = kn; all && i-- > 0;) {
		drop_at(i);
		removed++;
	}
	for (size_t r = 0; !all && r < nrem; r++) {
		if (wire_addr_parse(rem[r], remlen[r], &a, false) != 0)
			continue;
		for (size_t i = 0; i < kn; i++)
			if (wire_addr_equal(&kl[i]->a, &a)) {
				drop_at(i);
				removed++;
				break;
			}
	}
	for (size_t i = 0; i < nadd && kn < kcap; i++)
		if (wire_addr_parse(add[i], addlen[i], &a, false) == 0 &&
		    add_entry(&a, false))
			added++;
	log_info("peer_changeset from the contract: %zu known peer(s) added,"
	    " %zu removed", added, removed);
	dirty = true;
}

static void
save(uint64_t now)
{
	char text[WIRE_HOST_MAX + 8];
	struct hp_frame f;
	size_t n = 0;

	if (!hp_worker_sibling_up(HP_W_CONSENSUS))
		return;
	for (size_t i = 0; i < kn; i++)
		if (!kl[i]->is_self)
			n++;
	hp_frame_begin(&f, HP_MSG_PEER_KNOWN_SAVE, 0, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_array(&f.pk, n);
	for (size_t i = 0; i < kn; i++) {
		if (kl[i]->is_self)
			continue;
		wire_addr_format(&kl[i]->a, text, sizeof(text));
		hp_mpack_pack_cstr(&f.pk, text);
	}
	if (hp_worker_send(HP_W_CONSENSUS, &f, -1) == 0) {
		dirty = false;
		last_save = now;
	}
}

void
known_tick(uint64_t now)
{
	const struct hp_config *cfg = mesh.cfg;
	char ip[INET6_ADDRSTRLEN];
	size_t total, out;
	uint16_t port;

	mesh_count(&total, &out);
	for (size_t i = 0; i < kn; i++) {
		struct known *k = kl[i];
		int j;

		if (k->is_self || k->nsa == 0 || k->s != NULL ||
		    k->dead_until > now || k->next_dial_ms > now ||
		    (k->have_pk && mesh_pk_connected(k->pk)))
			continue;
		if (cfg->mesh.max_connections != 0 &&
		    (out >= cfg->mesh.max_known_connections ||
		    total >= cfg->mesh.max_connections))
			break;
		j = k->next_sa % k->nsa;
		hp_addr_text((struct sockaddr *)&k->sa[j], ip, sizeof(ip),
		    &port);
		if (ban_active(ip, now))
			continue;
		if (session_dial(k, (struct sockaddr *)&k->sa[j],
		    k->salen[j]) != 0) {
			log_debug("cannot dial %s:%u: %s", ip, (unsigned)port,
			    strerror(errno));
			known_session_ended(k, false);
			continue;
		}
		mesh.c.dialled++;
		total++;
		out++;
	}
	if (dirty && now - last_save >= KNOWN_SAVE_MS)
		save(now);
}

void
known_session_ended(struct known *k, bool verified)
{
	char text[WIRE_HOST_MAX + 8];
	uint64_t now = mesh_now();

	if (k->is_self)
		return;
	if (verified) {
		k->fails = 0;
		k->backoff_ms = KNOWN_BACKOFF_MIN;
		k->next_dial_ms = now + KNOWN_BACKOFF_MIN;
		return;
	}
	k->fails++;
	if (k->nsa > 0)
		k->next_sa = (k->next_sa + 1) % k->nsa;
	k->next_dial_ms = now + k->backoff_ms;
	k->backoff_ms *= 2;
	if (k->backoff_ms > KNOWN_BACKOFF_MAX)
		k->backoff_ms = KNOWN_BACKOFF_MAX;
	if (k->fails >= KNOWN_DEAD_FAILS) {
		wire_addr_format(&k->a, text, sizeof(text));
		log_info("known peer %s: %d dials failed in a row; not"
		    " dialling it for %d minutes", text, KNOWN_DEAD_FAILS,
		    KNOWN_DEAD_MS / 60000);
		k->dead_until = now + KNOWN_DEAD_MS;
		k->fails = 0;
		k->backoff_ms = KNOWN_BACKOFF_MIN;
	}
}

void
known_mark_self(struct known *k)
{
	char text[WIRE_HOST_MAX + 8];

	if (k->is_self)
		return;
	wire_addr_format(&k->a, text, sizeof(text));
	log_info("known peer %s is this node; not dialling it again", text);
	k->is_self = true;
	dirty = true;
}

static void
list_add(struct wire_addr *out, size_t max, size_t *n,
    const struct wire_addr *a)
{
	if (*n >= max)
		return;
	for (size_t i = 0; i < *n; i++)
		if (wire_addr_equal(&out[i], a))
			return;
	out[(*n)++] = *a;
}

size_t
known_list_for(const struct session *s, struct wire_addr *out, size_t max)
{
	uint64_t now = mesh_now();
	struct wire_addr a;
	uint16_t port;
	size_t n = 0;

	for (size_t i = 0; i < kn; i++) {
		const struct known *k = kl[i];

		if (k->is_self || k->nsa == 0 || k->dead_until > now)
			continue;
		memset(&a, 0, sizeof(a));
		if (wire_host_numeric(k->a.host))
			a = k->a;
		else {
			hp_addr_text((const struct sockaddr *)&k->sa[0],
			    a.host, sizeof(a.host), &port);
			a.port = k->a.port;
		}
		if (strcmp(a.host, s->ip) == 0 && a.port == s->listen_port)
			continue;	/* the requester itself */
		list_add(out, max, &n, &a);
	}
	/* Our peers' listen addresses as we see them (not in HotPocket):
	 * nodes that only dial out get discovered too. */
	for (const struct session *t = mesh.sessions; t != NULL; t = t->next) {
		if (t == s || t->state != S_VERIFIED || t->listen_port == 0)
			continue;
		memset(&a, 0, sizeof(a));
		snprintf(a.host, sizeof(a.host), "%s", t->ip);
		a.port = t->listen_port;
		list_add(out, max, &n, &a);
	}
	return n;
}

static const char *
dial_state(const struct known *k, uint64_t now)
{
	if (k->is_self)
		return "self";
	if (k->nsa == 0)
		return "unresolved";
	if (k->s != NULL)
		return k->s->state == S_VERIFIED ? "connected" : "connecting";
	if (k->have_pk && mesh_pk_connected(k->pk))
		return "connected-other";
	if (k->dead_until > now)
		return "dead";
	if (k->next_dial_ms > now)
		return "backoff";
	return "idle";
}

void
known_show(msgpack_packer *pk)
{
	char text[WIRE_HOST_MAX + 8], hex[HP_PK_HEX_LEN + 1];
	uint64_t now = mesh_now();

	msgpack_pack_array(pk, kn);
	for (size_t i = 0; i < kn; i++) {
		const struct known *k = kl[i];
		uint64_t wait = k->dead_until > now ? k->dead_until - now :
		    k->next_dial_ms > now ? k->next_dial_ms - now : 0;

		wire_addr_format(&k->a, text, sizeof(text));
		msgpack_pack_map(pk, 6);
		hp_mpack_pack_cstr(pk, "address");
		hp_mpack_pack_cstr(pk, text);
		hp_mpack_pack_cstr(pk, "state");
		hp_mpack_pack_cstr(pk, dial_state(k, now));
		hp_mpack_pack_cstr(pk, "from_config");
		if (k->from_cfg)
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		hp_mpack_pack_cstr(pk, "failures");
		msgpack_pack_uint32(pk, k->fails);
		hp_mpack_pack_cstr(pk, "next_dial_ms");
		msgpack_pack_uint64(pk, wait);
		hp_mpack_pack_cstr(pk, "pubkey");
		if (k->have_pk) {
			hp_pubkey_to_hex(k->pk, hex);
			hp_mpack_pack_cstr(pk, hex);
		} else
			msgpack_pack_nil(pk);
	}
}
