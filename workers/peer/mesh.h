/*
 * mesh.h — the peer worker's state: our identity, the sessions, the UNL
 * and mode from consensus, weak connectivity, dedup and forwarding,
 * discovery, and the counters hpctl shows.
 *
 * There is one mesh per process (the global `mesh`); every function runs
 * on the worker's loop. The mesh owns the session list (session.h), the
 * known peers (known.h) and the host bans (ban.h).
 */
#ifndef HP_PEER_MESH_H
#define HP_PEER_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

#include "config.h"
#include "dedup.h"
#include "keys.h"
#include "session.h"
#include "tlsid.h"

#define MESH_TICK_MS	250

struct mesh_counters {
	uint64_t dropped_dup;		/* proposals seen already */
	uint64_t dropped_bad;		/* unknown type, oversized, malformed */
	uint64_t dropped_unverified;	/* frames before a valid HELLO */
	uint64_t bad_hello;		/* contract id, version, signature */
	uint64_t violations;
	uint64_t bans;
	uint64_t accepted, refused, dialled, forwarded;
	/* dropped by consensus after delivery (HP_MSG_PEER_REPORT) */
	uint64_t rep_malformed, rep_not_unl, rep_bad_sig, rep_stale, rep_replay;
	uint64_t tls_errors;	/* garbage under TLS on an open session */
};

struct mesh {
	uv_loop_t *loop;
	const struct hp_config *cfg;
	struct tlsid tls;
	uint8_t pk[HP_PK_BYTES];
	uint8_t sig[HP_SIG_BYTES];	/* node key over our TLS identity */
	bool have_sig;
	int listen_fd;
	uv_poll_t listen_poll;
	bool listening;
	uv_timer_t tick;
	struct session *sessions;
	uint64_t next_id;

	uint8_t (*unl)[HP_PK_BYTES];
	size_t unl_count;
	bool public_mode;	/* contract.consensus.mode */
	bool self_in_unl;
	bool weak;

	struct dedup dedup;
	uint64_t next_discovery_ms;
	struct mesh_counters c;
};

extern struct mesh mesh;

/* Before the sandbox: TLS context and key, resolve configured names. */
int mesh_pre_sandbox(const char *dir);
int mesh_init(uv_loop_t *loop, const struct hp_config *cfg);
void mesh_shutdown(void);

/* Consensus dropped a payload that came through the session to pk;
 * origin: pk also signed it (not merely relayed it), so the session is
 * charged for it under the mesh limits. */
void mesh_report(const uint8_t *pk, uint64_t reason, int origin);

/* The consensus worker's signature over our TLS identity arrived. */
void mesh_identity(const uint8_t *sig, size_t len);
/* The supervisor's listening socket for mesh.port (ownership passes). */
void mesh_listener(int fd);
/* UNL keys (n * 32 bytes) and whether consensus is public. */
void mesh_set_unl(const uint8_t *keys, size_t n, bool public_mode);
/* A consensus payload to send; to == NULL means every eligible peer. */
void mesh_send(uint8_t ptype, const uint8_t *payload, size_t len,
    bool unl_only, const uint8_t *to);
/* Tell consensus the verified set (on a change, or when it comes up). */
void mesh_report_conns(void);

/* From session.c. */
void mesh_session_verified(struct session *s);
void mesh_session_closed(struct session *s, enum session_state was);
void mesh_frame(struct session *s, const struct wire_frame *f);
/* Whether a verified session to pk exists. */
bool mesh_pk_connected(const uint8_t *pk);
/* Counts of live sessions. */
void mesh_count(size_t *total, size_t *outbound);
size_t mesh_count_inbound_from(const char *ip);
uint64_t mesh_now(void);

/* hpctl show peers. */
void mesh_show(msgpack_packer *pk);

#endif
