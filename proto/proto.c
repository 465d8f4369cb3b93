/*
 * proto.c — channel allow-lists and the worker table (proto.h).
 */
#include "proto.h"

#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const uint32_t sup_recv[] = { HP_MSG_HELLO, HP_MSG_READY,
	HP_MSG_PONG, HP_MSG_STATUS, HP_MSG_CTL_ANSWER };
static const uint32_t sup_send[] = { HP_MSG_HELLO, HP_MSG_PING,
	HP_MSG_SHUTDOWN, HP_MSG_CHANNEL_NEW, HP_MSG_LISTENER,
	HP_MSG_LOG_LEVEL, HP_MSG_TEST_SIGSYS, HP_MSG_CONFIG, HP_MSG_CTL_QUERY };
static const uint32_t worker_fd_types[] = { HP_MSG_CHANNEL_NEW,
	HP_MSG_LISTENER };
/* The runner's supervisor channel: the common lists plus contract spawns. */
static const uint32_t sup_recv_runner[] = { HP_MSG_HELLO, HP_MSG_READY,
	HP_MSG_PONG, HP_MSG_STATUS, HP_MSG_CTL_ANSWER, HP_MSG_CONTRACT_FD,
	HP_MSG_SPAWN_CONTRACT, HP_MSG_KILL_CONTRACT };
static const uint32_t sup_send_runner[] = { HP_MSG_HELLO, HP_MSG_PING,
	HP_MSG_SHUTDOWN, HP_MSG_CHANNEL_NEW, HP_MSG_LISTENER,
	HP_MSG_LOG_LEVEL, HP_MSG_TEST_SIGSYS, HP_MSG_CONFIG, HP_MSG_CTL_QUERY,
	HP_MSG_CONTRACT_SPAWNED, HP_MSG_CONTRACT_EXITED };
static const uint32_t sup_fd_types_runner[] = { HP_MSG_CONTRACT_FD };
/* The consensus worker's supervisor channel: plus patch checks. */
static const uint32_t sup_recv_cons[] = { HP_MSG_HELLO, HP_MSG_READY,
	HP_MSG_PONG, HP_MSG_STATUS, HP_MSG_CTL_ANSWER, HP_MSG_PATCH_CHECK,
	HP_MSG_CONS_HEALTH };
static const uint32_t sup_send_cons[] = { HP_MSG_HELLO, HP_MSG_PING,
	HP_MSG_SHUTDOWN, HP_MSG_CHANNEL_NEW, HP_MSG_LISTENER,
	HP_MSG_LOG_LEVEL, HP_MSG_TEST_SIGSYS, HP_MSG_CONFIG, HP_MSG_CTL_QUERY,
	HP_MSG_PATCH_STATUS };
static const uint32_t sibling_types[] = { HP_MSG_HELLO };
static const uint32_t cons_to_peer[] = { HP_MSG_HELLO, HP_MSG_PEER_SIGN_RES,
	HP_MSG_PEER_UNL, HP_MSG_PEER_SEND, HP_MSG_PEER_KNOWN_LOAD,
	HP_MSG_PEER_REPORT, HP_MSG_PEER_CHANGESET };
static const uint32_t peer_to_cons[] = { HP_MSG_HELLO, HP_MSG_PEER_SIGN_REQ,
	HP_MSG_PEER_RECV, HP_MSG_PEER_CONNS, HP_MSG_PEER_KNOWN_SAVE };
static const uint32_t cons_to_state[] = { HP_MSG_HELLO,
	HP_MSG_STATE_SYNC_TARGET };
static const uint32_t state_to_peer[] = { HP_MSG_HELLO, HP_MSG_PEER_SEND };
static const uint32_t peer_to_state[] = { HP_MSG_HELLO, HP_MSG_PEER_RECV };
static const uint32_t state_to_cons[] = { HP_MSG_HELLO, HP_MSG_STATE_HASHES };
static const uint32_t cons_to_runner[] = { HP_MSG_HELLO, HP_MSG_RUN,
	HP_MSG_NPL_IN };
static const uint32_t runner_to_cons[] = { HP_MSG_HELLO, HP_MSG_RUN_DONE,
	HP_MSG_NPL_OUT, HP_MSG_CONTRACT_CONTROL };
static const uint32_t cons_to_gw[] = { HP_MSG_HELLO, HP_MSG_GW_SIGN_RES,
	HP_MSG_GW_STATUS, HP_MSG_GW_SETTLED, HP_MSG_GW_OUTPUTS,
	HP_MSG_GW_LEDGER_RES };
static const uint32_t gw_to_cons[] = { HP_MSG_HELLO, HP_MSG_GW_SIGN_REQ,
	HP_MSG_GW_INPUT, HP_MSG_GW_USERS, HP_MSG_GW_LEDGER_QUERY };
static const uint32_t gw_to_runner[] = { HP_MSG_HELLO, HP_MSG_READ_REQ };
static const uint32_t runner_to_gw[] = { HP_MSG_HELLO, HP_MSG_READ_RES };
static const uint32_t runner_to_state[] = { HP_MSG_HELLO,
	HP_MSG_STATE_SESSION };
static const uint32_t state_to_runner[] = { HP_MSG_HELLO,
	HP_MSG_STATE_SESSION_RES };
static const uint32_t ctl_req[] = { HP_CTL_REQUEST };
static const uint32_t ctl_rep[] = { HP_CTL_REPLY };

static const struct hp_chan_policy policies[] = {
	/* 2 MiB: CONFIG carries hp.cfg, which may be up to 1 MiB. */
	[HP_CHAN_SUP_TO_WORKER] = { "supervisor", sup_recv, N(sup_recv),
	    sup_send, N(sup_send), 2 * 1024 * 1024, 1, NULL, 0 },
	[HP_CHAN_WORKER_TO_SUP] = { "worker", sup_send, N(sup_send),
	    sup_recv, N(sup_recv), 2 * 1024 * 1024, 1, worker_fd_types,
	    N(worker_fd_types) },
	[HP_CHAN_SIBLING] = { "sibling", sibling_types, N(sibling_types),
	    sibling_types, N(sibling_types), 64 * 1024, 1, NULL, 0 },
	[HP_CHAN_CTL_SERVER] = { "control", ctl_req, N(ctl_req),
	    ctl_rep, N(ctl_rep), 16 * 1024, 0, NULL, 0 },
	[HP_CHAN_CTL_CLIENT] = { "hpctl", ctl_rep, N(ctl_rep),
	    ctl_req, N(ctl_req), 1024 * 1024, 0, NULL, 0 },
};

const struct hp_chan_policy *
hp_chan_policy(enum hp_chan_kind kind)
{
	return &policies[kind];
}

static const struct hp_chan_policy sup_runner_pol = { "supervisor<-runner",
	sup_recv_runner, N(sup_recv_runner), sup_send_runner,
	N(sup_send_runner), 2 * 1024 * 1024, 1, sup_fd_types_runner,
	N(sup_fd_types_runner) };
static const struct hp_chan_policy runner_sup_pol = { "runner<-supervisor",
	sup_send_runner, N(sup_send_runner), sup_recv_runner,
	N(sup_recv_runner), 2 * 1024 * 1024, 1, worker_fd_types,
	N(worker_fd_types) };

static const struct hp_chan_policy sup_cons_pol = { "supervisor<-consensus",
	sup_recv_cons, N(sup_recv_cons), sup_send_cons, N(sup_send_cons),
	2 * 1024 * 1024, 1, NULL, 0 };
static const struct hp_chan_policy cons_sup_pol = { "consensus<-supervisor",
	sup_send_cons, N(sup_send_cons), sup_recv_cons, N(sup_recv_cons),
	2 * 1024 * 1024, 1, worker_fd_types, N(worker_fd_types) };

const struct hp_chan_policy *
hp_sup_policy(int worker, int sup)
{
	if (worker == HP_W_RUNNER)
		return sup ? &sup_runner_pol : &runner_sup_pol;
	if (worker == HP_W_CONSENSUS)
		return sup ? &sup_cons_pol : &cons_sup_pol;
	return &policies[sup ? HP_CHAN_SUP_TO_WORKER : HP_CHAN_WORKER_TO_SUP];
}

/* Bulk channels carry ledgers and, later, state: 16 MiB frames. */
#define SIBLING_MAX_FRAME (16u * 1024 * 1024)

static const struct hp_chan_policy cons_peer_pol = { "consensus<-peer",
	peer_to_cons, N(peer_to_cons), cons_to_peer, N(cons_to_peer),
	SIBLING_MAX_FRAME, 1, NULL, 0 };
static const struct hp_chan_policy peer_cons_pol = { "peer<-consensus",
	cons_to_peer, N(cons_to_peer), peer_to_cons, N(peer_to_cons),
	SIBLING_MAX_FRAME, 1, NULL, 0 };

/* State and consensus exchange only small messages (hashes). */
static const struct hp_chan_policy cons_state_pol = { "consensus<-state",
	state_to_cons, N(state_to_cons), cons_to_state, N(cons_to_state),
	64 * 1024, 1, NULL, 0 };
static const struct hp_chan_policy state_cons_pol = { "state<-consensus",
	cons_to_state, N(cons_to_state), state_to_cons, N(state_to_cons),
	64 * 1024, 1, NULL, 0 };

/* State sync: chunk data both ways, responses up to 8 MiB. */
static const struct hp_chan_policy state_peer_pol = { "state<-peer",
	peer_to_state, N(peer_to_state), state_to_peer, N(state_to_peer),
	SIBLING_MAX_FRAME, 1, NULL, 0 };
static const struct hp_chan_policy peer_state_pol = { "peer<-state",
	state_to_peer, N(state_to_peer), peer_to_state, N(peer_to_state),
	SIBLING_MAX_FRAME, 1, NULL, 0 };

/* Consensus starts runs (with their inputs) and gets their outputs back;
 * the runner opens and commits state sessions. */
static const struct hp_chan_policy cons_runner_pol = { "consensus<-runner",
	runner_to_cons, N(runner_to_cons), cons_to_runner, N(cons_to_runner),
	SIBLING_MAX_FRAME, 1, NULL, 0 };
static const struct hp_chan_policy runner_cons_pol = { "runner<-consensus",
	cons_to_runner, N(cons_to_runner), runner_to_cons, N(runner_to_cons),
	SIBLING_MAX_FRAME, 1, NULL, 0 };

/* The gateway hands user inputs in and gets statuses, outputs and
 * ledgers back; read requests go to the runner. */
static const struct hp_chan_policy cons_gw_pol = { "consensus<-gateway",
	gw_to_cons, N(gw_to_cons), cons_to_gw, N(cons_to_gw),
	SIBLING_MAX_FRAME, 1, NULL, 0 };
static const struct hp_chan_policy gw_cons_pol = { "gateway<-consensus",
	cons_to_gw, N(cons_to_gw), gw_to_cons, N(gw_to_cons),
	SIBLING_MAX_FRAME, 1, NULL, 0 };
static const struct hp_chan_policy gw_runner_pol = { "gateway<-runner",
	runner_to_gw, N(runner_to_gw), gw_to_runner, N(gw_to_runner),
	SIBLING_MAX_FRAME, 1, NULL, 0 };
static const struct hp_chan_policy runner_gw_pol = { "runner<-gateway",
	gw_to_runner, N(gw_to_runner), runner_to_gw, N(runner_to_gw),
	SIBLING_MAX_FRAME, 1, NULL, 0 };
static const struct hp_chan_policy state_runner_pol = { "state<-runner",
	runner_to_state, N(runner_to_state), state_to_runner,
	N(state_to_runner), 64 * 1024, 1, NULL, 0 };
static const struct hp_chan_policy runner_state_pol = { "runner<-state",
	state_to_runner, N(state_to_runner), runner_to_state,
	N(runner_to_state), 64 * 1024, 1, NULL, 0 };

const struct hp_chan_policy *
hp_sibling_policy(int self, int peer)
{
	if (self == HP_W_CONSENSUS && peer == HP_W_RUNNER)
		return &cons_runner_pol;
	if (self == HP_W_RUNNER && peer == HP_W_CONSENSUS)
		return &runner_cons_pol;
	if (self == HP_W_CONSENSUS && peer == HP_W_GATEWAY)
		return &cons_gw_pol;
	if (self == HP_W_GATEWAY && peer == HP_W_CONSENSUS)
		return &gw_cons_pol;
	if (self == HP_W_GATEWAY && peer == HP_W_RUNNER)
		return &gw_runner_pol;
	if (self == HP_W_RUNNER && peer == HP_W_GATEWAY)
		return &runner_gw_pol;
	if (self == HP_W_STATE && peer == HP_W_RUNNER)
		return &state_runner_pol;
	if (self == HP_W_RUNNER && peer == HP_W_STATE)
		return &runner_state_pol;
	if (self == HP_W_CONSENSUS && peer == HP_W_PEER)
		return &cons_peer_pol;
	if (self == HP_W_PEER && peer == HP_W_CONSENSUS)
		return &peer_cons_pol;
	if (self == HP_W_CONSENSUS && peer == HP_W_STATE)
		return &cons_state_pol;
	if (self == HP_W_STATE && peer == HP_W_CONSENSUS)
		return &state_cons_pol;
	if (self == HP_W_STATE && peer == HP_W_PEER)
		return &state_peer_pol;
	if (self == HP_W_PEER && peer == HP_W_STATE)
		return &peer_state_pol;
	return &policies[HP_CHAN_SIBLING];
}

uint32_t
hp_peer_ptype_max(uint32_t ptype)
{
	switch (ptype) {
	case HP_PT_PROPOSAL: return 1024 * 1024;
	case HP_PT_LEDGER_REQ: return 1024;
	case HP_PT_LEDGER_RES: return 8 * 1024 * 1024;
	case HP_PT_STATE_REQ: return 64 * 1024;
	case HP_PT_STATE_RES: return 8 * 1024 * 1024;
	case HP_PT_INPUT: return 6 * 1024 * 1024;
	case HP_PT_NPL: return 256 * 1024;
	case HP_PT_OUTSIG: return 1024;
	default: return 0;
	}
}

static int
in_list(const uint32_t *list, size_t n, uint32_t type)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == type)
			return 1;
	return 0;
}

int
hp_policy_may_recv(const struct hp_chan_policy *p, uint32_t type)
{
	return in_list(p->recv, p->nrecv, type);
}

int
hp_policy_may_send(const struct hp_chan_policy *p, uint32_t type)
{
	return in_list(p->send, p->nsend, type);
}

int
hp_policy_takes_fd(const struct hp_chan_policy *p, uint32_t type)
{
	return in_list(p->fd_types, p->nfd_types, type);
}

const char *
hp_msg_name(uint32_t type)
{
	switch (type) {
	case HP_MSG_HELLO: return "HELLO";
	case HP_MSG_READY: return "READY";
	case HP_MSG_PING: return "PING";
	case HP_MSG_PONG: return "PONG";
	case HP_MSG_SHUTDOWN: return "SHUTDOWN";
	case HP_MSG_CHANNEL_NEW: return "CHANNEL_NEW";
	case HP_MSG_LISTENER: return "LISTENER";
	case HP_MSG_LOG_LEVEL: return "LOG_LEVEL";
	case HP_MSG_STATUS: return "STATUS";
	case HP_MSG_TEST_SIGSYS: return "TEST_SIGSYS";
	case HP_MSG_CONFIG: return "CONFIG";
	case HP_MSG_CTL_QUERY: return "CTL_QUERY";
	case HP_MSG_CTL_ANSWER: return "CTL_ANSWER";
	case HP_MSG_CONTRACT_SPAWNED: return "CONTRACT_SPAWNED";
	case HP_MSG_CONTRACT_EXITED: return "CONTRACT_EXITED";
	case HP_MSG_RUN: return "RUN";
	case HP_MSG_STATE_SESSION_RES: return "STATE_SESSION_RES";
	case HP_MSG_STATE_SESSION: return "STATE_SESSION";
	case HP_MSG_CONTRACT_FD: return "CONTRACT_FD";
	case HP_MSG_SPAWN_CONTRACT: return "SPAWN_CONTRACT";
	case HP_MSG_KILL_CONTRACT: return "KILL_CONTRACT";
	case HP_MSG_PEER_SIGN_RES: return "PEER_SIGN_RES";
	case HP_MSG_PEER_UNL: return "PEER_UNL";
	case HP_MSG_PEER_SEND: return "PEER_SEND";
	case HP_MSG_PEER_KNOWN_LOAD: return "PEER_KNOWN_LOAD";
	case HP_MSG_PEER_REPORT: return "PEER_REPORT";
	case HP_MSG_STATE_SYNC_TARGET: return "STATE_SYNC_TARGET";
	case HP_MSG_PEER_SIGN_REQ: return "PEER_SIGN_REQ";
	case HP_MSG_PEER_RECV: return "PEER_RECV";
	case HP_MSG_PEER_CONNS: return "PEER_CONNS";
	case HP_MSG_PEER_KNOWN_SAVE: return "PEER_KNOWN_SAVE";
	case HP_MSG_STATE_HASHES: return "STATE_HASHES";
	case HP_MSG_PATCH_CHECK: return "PATCH_CHECK";
	case HP_MSG_PATCH_STATUS: return "PATCH_STATUS";
	case HP_MSG_CONS_HEALTH: return "CONS_HEALTH";
	case HP_MSG_GW_SIGN_RES: return "GW_SIGN_RES";
	case HP_MSG_GW_STATUS: return "GW_STATUS";
	case HP_MSG_GW_SETTLED: return "GW_SETTLED";
	case HP_MSG_GW_OUTPUTS: return "GW_OUTPUTS";
	case HP_MSG_GW_LEDGER_RES: return "GW_LEDGER_RES";
	case HP_MSG_NPL_IN: return "NPL_IN";
	case HP_MSG_GW_SIGN_REQ: return "GW_SIGN_REQ";
	case HP_MSG_GW_INPUT: return "GW_INPUT";
	case HP_MSG_GW_USERS: return "GW_USERS";
	case HP_MSG_GW_LEDGER_QUERY: return "GW_LEDGER_QUERY";
	case HP_MSG_READ_REQ: return "READ_REQ";
	case HP_MSG_RUN_DONE: return "RUN_DONE";
	case HP_MSG_NPL_OUT: return "NPL_OUT";
	case HP_MSG_READ_RES: return "READ_RES";
	case HP_MSG_PEER_CHANGESET: return "PEER_CHANGESET";
	case HP_MSG_CONTRACT_CONTROL: return "CONTRACT_CONTROL";
	case HP_CTL_REQUEST: return "CTL_REQUEST";
	case HP_CTL_REPLY: return "CTL_REPLY";
	default: return "UNKNOWN";
	}
}

const char *const hp_worker_names[HP_W_COUNT] = {
	"consensus", "peer", "state", "gateway", "runner",
};

int
hp_worker_lookup(const char *name)
{
	for (int i = 0; i < HP_W_COUNT; i++)
		if (strcmp(name, hp_worker_names[i]) == 0)
			return i;
	return -1;
}

int
hp_workers_linked(int a, int b)
{
	static const unsigned char links[HP_W_COUNT][HP_W_COUNT] = {
		/*              cons peer state gw run */
		[HP_W_CONSENSUS] = { 0, 1, 1, 1, 1 },
		[HP_W_PEER] =      { 1, 0, 1, 0, 0 },
		[HP_W_STATE] =     { 1, 1, 0, 0, 1 },
		[HP_W_GATEWAY] =   { 1, 0, 0, 0, 1 },
		[HP_W_RUNNER] =    { 1, 0, 1, 1, 0 },
	};

	if (a < 0 || b < 0 || a >= HP_W_COUNT || b >= HP_W_COUNT)
		return 0;
	return links[a][b];
}
