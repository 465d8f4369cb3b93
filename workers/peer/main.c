/*
 * hpd-peer — the peer worker: TLS connections to other nodes of the
 * cluster, their identity check, discovery, forwarding and dedup. It holds
 * no node key: consensus signs its ephemeral TLS identity once at start.
 * This file is the role: hooks for the worker core, and the messages from
 * the consensus worker decoded and handed to the mesh.
 */
#include <netinet/in.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "err.h"
#include "known.h"
#include "log.h"
#include "mesh.h"
#include "mpack.h"
#include "proto.h"
#include "worker.h"

/* On top of the common list: dialling out. */
static const int peer_syscalls[] = {
	SCMP_SYS(socket), SCMP_SYS(connect),
};

static void
request_signature(void)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_PEER_SIGN_REQ, 0, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_bin(&f.pk, mesh.tls.spki_len);
	msgpack_pack_bin_body(&f.pk, mesh.tls.spki, mesh.tls.spki_len);
	if (hp_worker_send(HP_W_CONSENSUS, &f, -1) == 0)
		log_debug("asked consensus to sign our TLS identity");
}

static const msgpack_object *
get_bin(const msgpack_object *body, uint64_t key)
{
	const msgpack_object *o = hp_mpack_get(body, key);

	return o != NULL && o->type == MSGPACK_OBJECT_BIN ? o : NULL;
}

static void
take_unl(const msgpack_object *body)
{
	const msgpack_object *arr = hp_mpack_get(body, 1);
	uint8_t *keys = NULL;
	bool pub = false;
	uint32_t n;

	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY ||
	    hp_mpack_bool(body, 2, &pub) != 0) {
		log_warnx("malformed PEER_UNL from consensus; ignored");
		return;
	}
	n = arr->via.array.size;
	if (n > 0 && (keys = calloc(n, HP_PK_BYTES)) == NULL)
		return;
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *k = &arr->via.array.ptr[i];

		if (k->type != MSGPACK_OBJECT_BIN ||
		    k->via.bin.size != HP_PK_BYTES) {
			log_warnx("PEER_UNL entry %u is not a public key;"
			    " ignored", i);
			free(keys);
			return;
		}
		memcpy(keys + (size_t)i * HP_PK_BYTES, k->via.bin.ptr,
		    HP_PK_BYTES);
	}
	mesh_set_unl(keys, n, pub);
	free(keys);
}

static bool
is_state_ptype(uint64_t ptype)
{
	return ptype == HP_PT_STATE_REQ || ptype == HP_PT_STATE_RES;
}

/* A payload from consensus or, for state sync only, from state. */
static void
take_send(int from, const msgpack_object *body)
{
	const msgpack_object *payload = get_bin(body, 2), *to;
	const char *who = hp_worker_names[from];
	uint64_t ptype = 0, max;
	bool unl_only = false;
	int rc;

	if (hp_mpack_u64(body, 1, &ptype) != 0 || ptype < 1 ||
	    ptype > HP_PT_MAX || payload == NULL ||
	    ((rc = hp_mpack_bool(body, 3, &unl_only)) != 0 &&
	    rc != HP_ENOENT)) {
		log_warnx("malformed PEER_SEND from %s; ignored", who);
		return;
	}
	if (is_state_ptype(ptype) != (from == HP_W_STATE) ||
	    (from == HP_W_STATE && hp_mpack_get(body, 4) == NULL)) {
		log_warnx("PEER_SEND of %s from %s is not that worker's to"
		    " send; ignored", wire_type_name((uint8_t)ptype), who);
		return;
	}
	max = hp_peer_ptype_max((uint32_t)ptype);
	if (mesh.cfg->mesh.max_bytes_per_msg != 0 &&
	    max > mesh.cfg->mesh.max_bytes_per_msg)
		max = mesh.cfg->mesh.max_bytes_per_msg;
	if (payload->via.bin.size > max) {
		log_warnx("PEER_SEND: %u-byte %s is over the %llu-byte limit;"
		    " not sent", payload->via.bin.size,
		    wire_type_name((uint8_t)ptype), (unsigned long long)max);
		return;
	}
	to = hp_mpack_get(body, 4);
	if (to != NULL && (to->type != MSGPACK_OBJECT_BIN ||
	    to->via.bin.size != HP_PK_BYTES)) {
		log_warnx("PEER_SEND: the target is not a public key; not"
		    " sent");
		return;
	}
	mesh_send((uint8_t)ptype, (const uint8_t *)payload->via.bin.ptr,
	    payload->via.bin.size, unl_only,
	    to != NULL ? (const uint8_t *)to->via.bin.ptr : NULL);
}

/* Strings of an array object into strs/lens (at most max); their count. */
static size_t
str_list(const msgpack_object *arr, const char **strs, size_t *lens,
    size_t max)
{
	size_t n = 0;

	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY)
		return 0;
	for (uint32_t i = 0; i < arr->via.array.size && n < max; i++) {
		const msgpack_object *o = &arr->via.array.ptr[i];
		if (o->type != MSGPACK_OBJECT_STR)
			continue;
		strs[n] = o->via.str.ptr;
		lens[n++] = o->via.str.size;
	}
	return n;
}

/* The contract's peer_changeset: HotPocket applies it only while peer
 * discovery is off (discovery would undo it). */
static void
take_changeset(const msgpack_object *body)
{
	const char *add[256], *rem[256];
	size_t addl[256], reml[256], na, nr;
	bool all = false;

	if (mesh.cfg->mesh.peer_discovery.enabled) {
		log_info("peer_changeset from the contract ignored:"
		    " mesh.peer_discovery is on");
		return;
	}
	na = str_list(hp_mpack_get(body, 1), add, addl, 256);
	nr = str_list(hp_mpack_get(body, 2), rem, reml, 256);
	(void)hp_mpack_bool(body, 3, &all);
	known_changeset(add, addl, na, rem, reml, nr, all);
}

static void
take_known(const msgpack_object *body)
{
	const msgpack_object *arr = hp_mpack_get(body, 1);
	const char **strs;
	size_t *lens, n = 0;

	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY) {
		log_warnx("malformed PEER_KNOWN_LOAD from consensus; ignored");
		return;
	}
	strs = calloc(arr->via.array.size + 1, sizeof(*strs));
	lens = calloc(arr->via.array.size + 1, sizeof(*lens));
	if (strs != NULL && lens != NULL) {
		for (uint32_t i = 0; i < arr->via.array.size; i++) {
			const msgpack_object *o = &arr->via.array.ptr[i];

			if (o->type != MSGPACK_OBJECT_STR)
				continue;
			strs[n] = o->via.str.ptr;
			lens[n++] = o->via.str.size;
		}
		known_load(strs, lens, n);
	}
	free(strs);
	free(lens);
}

static void
peer_sibling_msg(int from, struct hp_msg *m)
{
	const msgpack_object *sig;

	if (from == HP_W_STATE && m->type == HP_MSG_PEER_SEND)
		take_send(from, m->body);
	if (from != HP_W_CONSENSUS)
		return;
	switch (m->type) {
	case HP_MSG_PEER_SIGN_RES:
		if ((sig = get_bin(m->body, 1)) == NULL)
			log_warnx("malformed PEER_SIGN_RES from consensus");
		else
			mesh_identity((const uint8_t *)sig->via.bin.ptr,
			    sig->via.bin.size);
		break;
	case HP_MSG_PEER_UNL:
		take_unl(m->body);
		break;
	case HP_MSG_PEER_SEND:
		take_send(from, m->body);
		break;
	case HP_MSG_PEER_KNOWN_LOAD:
		take_known(m->body);
		break;
	case HP_MSG_PEER_CHANGESET:
		take_changeset(m->body);
		break;
	case HP_MSG_PEER_REPORT: {
		const msgpack_object *k = get_bin(m->body, 1);
		uint64_t why = 0;
		bool origin = false;
		if (k != NULL && k->via.bin.size == HP_PK_BYTES &&
		    hp_mpack_u64(m->body, 2, &why) == 0) {
			hp_mpack_bool(m->body, 3, &origin);
			mesh_report((const uint8_t *)k->via.bin.ptr, why, origin);
		}
		break;
	}
	default:
		break;
	}
}

static void
peer_sibling_up(int id)
{
	if (id != HP_W_CONSENSUS)
		return;
	if (!mesh.have_sig)
		request_signature();
	else
		mesh_report_conns();
}

static void
peer_listener(const char *name, int fd)
{
	if (strcmp(name, "mesh") != 0) {
		log_warnx("listening socket \"%s\" is not for this worker;"
		    " closed", name);
		close(fd);
		return;
	}
	mesh_listener(fd);
}

static int
peer_show(int argc, char **argv, msgpack_packer *pk, char *msg,
    size_t msgsize)
{
	if (argc < 1 || strcmp(argv[0], "peers") != 0) {
		snprintf(msg, msgsize, "usage: hpctl show peers");
		return 100;
	}
	mesh_show(pk);
	return 0;
}

static int
peer_pre_sandbox(const char *dir)
{
	return mesh_pre_sandbox(dir) == 0 ? 0 : -1;
}

static int
peer_init(uv_loop_t *loop, const struct hp_config *cfg)
{
	int rc;

	if ((rc = mesh_init(loop, cfg)) != 0) {
		log_errx("peer setup failed: %s", hp_strerror(rc));
		return -1;
	}
	/* Consensus may have been up before we had a configuration. */
	if (hp_worker_sibling_up(HP_W_CONSENSUS))
		request_signature();
	return 0;
}

static const struct hp_worker_role peer_role = {
	.name = "peer",
	.syscalls = peer_syscalls,
	.nsyscalls = sizeof(peer_syscalls) / sizeof(peer_syscalls[0]),
	.pre_sandbox = peer_pre_sandbox,
	.init = peer_init,
	.sibling_msg = peer_sibling_msg,
	.sibling_up = peer_sibling_up,
	.listener = peer_listener,
	.show = peer_show,
	.shutdown = mesh_shutdown,
};

int
main(int argc, char **argv)
{
	hp_worker_run(argc, argv, &peer_role);
}
