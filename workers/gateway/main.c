/*
 * hpd-gateway — the gateway worker: the user port (TLS WebSocket, the
 * HotPocket user protocol in JSON and BSON) between hotpocket clients and
 * the consensus and runner workers. It holds no node key: consensus signs
 * each user handshake. This file is the role: hooks for the worker core,
 * sibling messages handed to user.c and feed.c, and hpctl show gateway.
 * docs/gateway.md describes the worker.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "gw.h"
#include "log.h"
#include "proto.h"
#include "worker.h"

struct gw gw = { .listen_fd = -1 };

static int
gw_pre_sandbox(const char *dir)
{
	return conn_pre_sandbox(dir);
}

static int
gw_init(uv_loop_t *loop, const struct hp_config *cfg)
{
	int rc;

	if (hp_pubkey_from_hex(cfg->node.public_key_hex, gw.node_pk) != 0) {
		log_errx("node.public_key is not a public key");
		return -1;
	}
	if ((rc = conn_init(loop, cfg)) != 0) {
		log_errx("gateway setup failed: %s", hp_strerror(rc));
		return -1;
	}
	return 0;
}

static void
gw_sibling_msg(int from, struct hp_msg *m)
{
	if (from == HP_W_RUNNER) {
		if (m->type == HP_MSG_READ_RES)
			feed_read_res(m->id, m->body);
		return;
	}
	if (from != HP_W_CONSENSUS)
		return;
	switch (m->type) {
	case HP_MSG_GW_SIGN_RES:
		user_sign_res(m->id, m->body);
		break;
	case HP_MSG_GW_STATUS:
		feed_status(m->body);
		break;
	case HP_MSG_GW_SETTLED:
		feed_settled(m->body);
		break;
	case HP_MSG_GW_OUTPUTS:
		feed_outputs(m->body);
		break;
	case HP_MSG_GW_LEDGER_RES:
		feed_ledger_res(m->id, m->body);
		break;
	default:
		break;
	}
}

static void
gw_sibling_up(int id)
{
	if (id == HP_W_CONSENSUS)
		user_send_users();
}

static void
gw_sibling_down(int id)
{
	if (id == HP_W_CONSENSUS) {
		user_consensus_down();
		feed_consensus_down();
	} else if (id == HP_W_RUNNER)
		feed_runner_down();
}

static void
gw_listener(const char *name, int fd)
{
	if (strcmp(name, "user") != 0) {
		log_warnx("listening socket \"%s\" is not for this worker;"
		    " closed", name);
		close(fd);
		return;
	}
	conn_listener(fd);
}

static int
gw_show(int argc, char **argv, msgpack_packer *pk, char *msg,
    size_t msgsize)
{
	if (argc == 1 && strcmp(argv[0], "gateway") == 0) {
		feed_show(pk);
		return 0;
	}
	snprintf(msg, msgsize, "the gateway answers: show gateway");
	return 100;
}

static const struct hp_worker_role gw_role = {
	.name = "gateway",
	.pre_sandbox = gw_pre_sandbox,
	.init = gw_init,
	.sibling_msg = gw_sibling_msg,
	.sibling_up = gw_sibling_up,
	.sibling_down = gw_sibling_down,
	.listener = gw_listener,
	.show = gw_show,
	.shutdown = conn_shutdown,
};

int
main(int argc, char **argv)
{
	hp_worker_run(argc, argv, &gw_role);
}
