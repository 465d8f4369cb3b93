/*
 * proto.h — every IPC message type of hpd, in one place, and the allow-list
 * of each channel kind.
 *
 * A frame is a 16-byte header (channel.h) plus one msgpack object. Message
 * bodies are maps with small unsigned integer keys, listed beside each type
 * below; control replies carry a "data" value whose maps use string keys so
 * that hpctl can print them as JSON unchanged.
 *
 * The high byte of a type names its subsystem: 0x01 lifecycle (supervisor
 * and workers), 0x02 control (hpctl). Later subsystems take 0x10 consensus,
 * 0x20 peer, 0x30 state, 0x40 gateway, 0x50 runner.
 */
#ifndef HP_PROTO_H
#define HP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define HP_PROTO_VERSION 1

enum hp_msg_type {
	/* {1: proto u32, 2: build_id str, 3: role str, 4: max_frame u32} */
	HP_MSG_HELLO = 0x010001,
	/* worker → supervisor, once its setup is done: {} */
	HP_MSG_READY = 0x010002,
	/* supervisor → worker heartbeat: {1: seq u64} */
	HP_MSG_PING = 0x010003,
	/* worker → supervisor: {1: seq u64, 2: [sibling role str...]} */
	HP_MSG_PONG = 0x010004,
	/* supervisor → worker: exit cleanly now: {} */
	HP_MSG_SHUTDOWN = 0x010005,
	/* supervisor → worker, fd attached: a fresh channel to a sibling:
	 * {1: role str, 2: generation u64} */
	HP_MSG_CHANNEL_NEW = 0x010006,
	/* supervisor → worker, fd attached: a bound listening socket:
	 * {1: name str ("mesh" | "user"), 2: port u64} */
	HP_MSG_LISTENER = 0x010007,
	/* supervisor → worker: {1: level u64 (0 dbg .. 3 err)} */
	HP_MSG_LOG_LEVEL = 0x010008,
	/* worker → supervisor when its sibling channels change: as PONG */
	HP_MSG_STATUS = 0x010009,
	/* supervisor → worker, test builds only: make a forbidden syscall */
	HP_MSG_TEST_SIGSYS = 0x01000a,
	/* supervisor → worker, right after HELLO: {1: hp.cfg text str}; every
	 * worker but consensus gets it without node.private_key */
	HP_MSG_CONFIG = 0x01000b,
	/* supervisor → worker, an hpctl "show" relayed: {1: argv [str...]};
	 * id is the supervisor's query id */
	HP_MSG_CTL_QUERY = 0x01000c,
	/* worker → supervisor: {1: code u64, 2: message str, 3: data}; same id */
	HP_MSG_CTL_ANSWER = 0x01000d,
	/* supervisor → runner, the answer to HP_MSG_SPAWN_CONTRACT (same id):
	 * {1: pid u64} when the contract started, or {2: error str} */
	HP_MSG_CONTRACT_SPAWNED = 0x01000e,
	/* supervisor → runner, the contract it spawned has exited and been
	 * reaped (same id as the spawn): {1: exited bool (else killed by a
	 * signal), 2: exit status or signal number u64, 3: run ms u64} */
	HP_MSG_CONTRACT_EXITED = 0x01000f,

	/* consensus → supervisor: a stored ledger carries this patch hash;
	 * apply /patch.cfg if it is that file and differs from hp.cfg:
	 * {1: patch hash bin(32), 2: ledger seq u64} */
	HP_MSG_PATCH_CHECK = 0x010010,
	/* supervisor → consensus, the answer: {1: patch hash bin(32),
	 * 2: status u64 (enum hp_patch_status)} */
	HP_MSG_PATCH_STATUS = 0x010011,
	/* consensus → supervisor, when it changes: {1: UNL members live u64
	 * (this node included, if a member), 2: UNL size u64, 3: votes a
	 * ledger needs u64} */
	HP_MSG_CONS_HEALTH = 0x010012,

	/* consensus → peer: the node key's signature over the peer worker's
	 * TLS identity (see HP_PEER_TLS_DOMAIN): {1: sig bin(64)} */
	HP_MSG_PEER_SIGN_RES = 0x100001,
	/* consensus → peer: the UNL and consensus mode, at start and on every
	 * change: {1: [pubkey bin(32)...], 2: public bool} */
	HP_MSG_PEER_UNL = 0x100002,
	/* consensus → peer: send a consensus payload: {1: ptype u64,
	 * 2: payload bin, 3: unl_only bool, 4: to pubkey bin(32) (absent =
	 * every verified peer)} */
	HP_MSG_PEER_SEND = 0x100003,
	/* consensus → peer: known peers loaded from the ledger store at start:
	 * {1: ["host:port"...]} */
	HP_MSG_PEER_KNOWN_LOAD = 0x100004,
	/* consensus → peer: a payload from this peer was dropped:
	 * {1: from pubkey bin(32), 2: reason u64 (enum hp_peer_report),
	 * 3: origin bool (the payload's signer is that peer itself)} */
	HP_MSG_PEER_REPORT = 0x100005,
	/* consensus → state: the cluster's hashes in a stored ledger differ
	 * from the state worker's; sync to them (docs/state-sync.md). Sent
	 * again with each ledger while they differ, and once with the
	 * worker's own hashes when they agree again: {1: state bin(32),
	 * 2: patch bin(32), 3: [pubkey bin(32)...] (UNL peers connected)} */
	HP_MSG_STATE_SYNC_TARGET = 0x100006,
	/* consensus → runner, after each stored ledger when contract.execute
	 * is on: run the contract over it: {1: seq u64, 2: hash bin(32),
	 * 3: time u64 (ms since the epoch), 4: [[UNL pubkey bin(32),
	 * active_on u64 (round of its newest proposal, ms; 0 never)]...],
	 * 5: [[user pubkey bin(32), [[input hash bin(32), nonce u64,
	 * blob bin]...]]...] (every user the round agreed on, sorted by key,
	 * each with its inputs of that ledger in ledger order)} */
	HP_MSG_RUN = 0x100007,

	/* consensus → gateway, the answer to HP_MSG_GW_SIGN_REQ (same id):
	 * {1: sig bin(64)} over server_challenge || contract id || contract
	 * version, or {2: error str} */
	HP_MSG_GW_SIGN_RES = 0x100008,
	/* consensus → gateway, when the channel comes up, at every ledger
	 * close (stored or synced) and when the vote status or UNL changes:
	 * {1: lcl ledger map (below), 2: vote u64 (enum round_vote: 0 unknown,
	 * 1 unreliable, 2 desync, 3 synced), 3: roundtime ms u64,
	 * 4: [UNL pubkey bin(32)...] (sorted), 5: ["host:port"...] peers,
	 * 6: contract execution on bool, 7: read requests on bool,
	 * 8: full history bool, 9: weakly connected bool}.
	 * A ledger map: {1: seq u64, 2: time u64, 3: hash, 4: prev_hash,
	 * 5: state_hash, 6: patch_hash, 7: user_hash, 8: input_hash,
	 * 9: output_hash} (hashes bin(32)). */
	HP_MSG_GW_STATUS = 0x100009,
	/* consensus → gateway: inputs settled at a ledger close (HotPocket's
	 * contract_input_status): {1: ledger seq u64, 2: ledger hash bin(32),
	 * 3: [[user pubkey bin(32), input hash bin(32)]...] accepted in that
	 * ledger, 4: [[user pubkey bin(32), input hash bin(32), reason str]...]
	 * rejected at consensus (bad_sig, max_ledger_expired, nonce_expired,
	 * ...)} */
	HP_MSG_GW_SETTLED = 0x10000a,
	/* consensus → gateway: the agreed outputs of a contract run, at the
	 * close of the ledger whose output_hash is their root:
	 * {1: ledger seq u64, 2: ledger hash bin(32), 3: [leaf bin(32)...]
	 * (user output hashes sorted ascending, then the post-run state
	 * hash: the Merkle tree's leaves), 4: [[UNL pubkey bin(32),
	 * sig bin(64)]...] signatures over the root, 5: [[user pubkey bin(32),
	 * output hash bin(32), [output bin...]]...]} */
	HP_MSG_GW_OUTPUTS = 0x10000b,
	/* consensus → gateway, the answer to HP_MSG_GW_LEDGER_QUERY (same id):
	 * {1: found bool, 2: ledger map (as in GW_STATUS; when found),
	 * 3: [[user pubkey bin(32), input hash bin(32), nonce u64,
	 * blob bin]...] (when inputs were asked for), 4: [[user pubkey
	 * bin(32), output hash bin(32), [blob bin...]]...] (when outputs were
	 * asked for), 5: error str (a failure, e.g. the store)} */
	HP_MSG_GW_LEDGER_RES = 0x10000c,
	/* consensus → runner: an NPL message from a UNL peer for the ledger
	 * the running contract is at: {1: ledger seq u64, 2: sender pubkey
	 * bin(32), 3: payload bin} */
	HP_MSG_NPL_IN = 0x10000d,
	/* consensus → peer: the contract's peer_changeset (hotpocket-protocols
	 * §6.5), applied when mesh.peer_discovery is off: {1: ["host:port"...]
	 * to add, 2: ["host:port"...] to remove, 3: remove all bool} */
	HP_MSG_PEER_CHANGESET = 0x10000e,

	/* peer → consensus: sign our TLS identity: {1: tls public key DER bin} */
	HP_MSG_PEER_SIGN_REQ = 0x200001,
	/* peer → consensus: a consensus payload from a verified peer:
	 * {1: from pubkey bin(32), 2: ptype u64, 3: payload bin} */
	HP_MSG_PEER_RECV = 0x200002,
	/* peer → consensus: the verified peers now connected:
	 * {1: [pubkey bin(32)...]} */
	HP_MSG_PEER_CONNS = 0x200003,
	/* peer → consensus: known peers to persist: {1: ["host:port"...]} */
	HP_MSG_PEER_KNOWN_SAVE = 0x200004,

	/* state → consensus: the committed root hashes, after every commit
	 * and when the channel comes up: {1: state bin(32), 2: patch bin(32)} */
	HP_MSG_STATE_HASHES = 0x300001,
	/* state → runner, the answer to HP_MSG_STATE_SESSION (same id):
	 * {1: ok bool, 2: state bin(32), 3: patch bin(32) (the committed
	 * roots after the operation), 4: error str (when not ok)} */
	HP_MSG_STATE_SESSION_RES = 0x300002,

	/* gateway → consensus: sign a user handshake: {1: server_challenge
	 * str (at most 32 characters)}; answered with HP_MSG_GW_SIGN_RES */
	HP_MSG_GW_SIGN_REQ = 0x400001,
	/* gateway → consensus: a user input that passed the gateway's checks
	 * (signature, format, ledger window, nonce): {1: user pubkey bin(32),
	 * 2: sig bin(64), 3: container bin (the exact signed bytes),
	 * 4: protocol u64 (0 json, 1 bson)}. Consensus verifies it again,
	 * relays it to the peers and settles it (HP_MSG_GW_SETTLED). */
	HP_MSG_GW_INPUT = 0x400002,
	/* gateway → consensus: the users connected and verified now, on every
	 * change: {1: [pubkey bin(32)...]} */
	HP_MSG_GW_USERS = 0x400003,
	/* gateway → consensus: {1: seq u64, 2: inputs bool, 3: outputs bool};
	 * answered with HP_MSG_GW_LEDGER_RES */
	HP_MSG_GW_LEDGER_QUERY = 0x400004,
	/* gateway → runner: a read request: {1: user pubkey bin(32),
	 * 2: content bin}; answered with HP_MSG_READ_RES (same id) */
	HP_MSG_READ_REQ = 0x400005,

	/* runner → state: open, commit or abort the read-write session the
	 * contract writes through NODE/mnt: {1: op u64 (enum hp_session_op)} */
	HP_MSG_STATE_SESSION = 0x500001,
	/* runner → supervisor, fd attached: a descriptor for the next contract
	 * process, to become fd `target` there: {1: target u64 (0 or
	 * HP_CONTRACT_FD_MIN..HP_CONTRACT_FD_MAX)} */
	HP_MSG_CONTRACT_FD = 0x500002,
	/* runner → supervisor: spawn the contract with the fds given since the
	 * last spawn; the supervisor takes argv, env and limits from its own
	 * hp.cfg: {1: ledger seq u64 (for the log)}; id names the run */
	HP_MSG_SPAWN_CONTRACT = 0x500003,
	/* runner → supervisor: SIGKILL the running contract (exec_timeout): {} */
	HP_MSG_KILL_CONTRACT = 0x500004,

	/* runner → consensus: a consensus run is over: {1: ledger seq u64
	 * (the run's lcl), 2: output root bin(32) (zero when no user had
	 * output), 3: [leaf bin(32)...] (as in HP_MSG_GW_OUTPUTS),
	 * 4: [[user pubkey bin(32), output hash bin(32), [output bin...]]...],
	 * 5: state hash after the run bin(32), 6: patch hash bin(32)} */
	HP_MSG_RUN_DONE = 0x500005,
	/* runner → consensus: an NPL message the contract sent:
	 * {1: ledger seq u64, 2: payload bin} */
	HP_MSG_NPL_OUT = 0x500006,
	/* runner → gateway, the answer to HP_MSG_READ_REQ (same id):
	 * {1: [output bin...]} or {2: error str} */
	HP_MSG_READ_RES = 0x500007,
	/* runner → consensus: a packet the contract wrote on its control
	 * socket during a consensus run (at most 128 KiB): {1: ledger seq u64,
	 * 2: packet bin} */
	HP_MSG_CONTRACT_CONTROL = 0x500008,

	/* hpctl → supervisor: {1: argv [str...]} */
	HP_CTL_REQUEST = 0x020001,
	/* supervisor → hpctl: {1: code u64 (0 ok, 1 failed, 100 usage),
	 * 2: message str, 3: data (any)} */
	HP_CTL_REPLY = 0x020002,
};

/*
 * Payload types carried by the peer network (HP_MSG_PEER_SEND /
 * HP_MSG_PEER_RECV). The peer worker does not look inside them; it knows
 * each one's size limit, whether it is forwarded (only proposals), and
 * which worker it belongs to: HP_PT_STATE_* go to and come from the state
 * worker, always to one named peer; the rest belong to consensus.
 */
enum hp_peer_ptype {
	HP_PT_PROPOSAL = 1,	/* signed round proposal (round.h) */
	HP_PT_LEDGER_REQ = 2,	/* ledger sync request */
	HP_PT_LEDGER_RES = 3,	/* ledger sync response */
	HP_PT_STATE_REQ = 4,	/* state sync request (docs/state-sync.md) */
	HP_PT_STATE_RES = 5,	/* state sync response */
	HP_PT_INPUT = 6,	/* a user input relayed (HotPocket's NUP) */
	HP_PT_NPL = 7,		/* a contract's NPL message, signed */
	HP_PT_OUTSIG = 8,	/* a UNL member's signature over an output root */
	HP_PT_MAX = 8
};
/* Why consensus dropped a payload (HP_MSG_PEER_REPORT). */
enum hp_peer_report {
	HP_REPORT_MALFORMED = 1,	/* does not decode */
	HP_REPORT_NOT_UNL = 2,		/* signer not in our UNL */
	HP_REPORT_BAD_SIG = 3,		/* signature does not verify */
	HP_REPORT_STALE = 4,		/* for a round long past, or in the future */
	HP_REPORT_REPLAY = 5,		/* a proposal we already processed */
};

/* Per-type payload size limits in bytes. */
uint32_t hp_peer_ptype_max(uint32_t ptype);

/* Domain string prefixed to what the node key signs for the peer TLS
 * identity: DOMAIN || contract id || TLS public key DER. */
#define HP_PEER_TLS_DOMAIN "hpd peer tls identity v1\n"

/* HP_MSG_PATCH_STATUS: the file says what hp.cfg says (or cannot be
 * applied, logged); it was applied (consensus and runner restart); it is
 * not this node's committed patch.cfg yet (ask again later). */
enum hp_patch_status { PATCH_MATCHES = 0, PATCH_APPLIED = 1,
	PATCH_NOT_HERE = 2 };

/* HP_MSG_STATE_SESSION operations. */
enum hp_session_op {
	HP_SESSION_BEGIN = 1,
	HP_SESSION_COMMIT = 2,
	HP_SESSION_ABORT = 3,
};

/* Descriptor numbers a contract may be given besides stdin (fd 0). */
#define HP_CONTRACT_FD_MIN 3
#define HP_CONTRACT_FD_MAX 255

/* Which end of a channel this process is. */
enum hp_chan_kind {
	HP_CHAN_SUP_TO_WORKER,	/* the supervisor's end of fd 3 */
	HP_CHAN_WORKER_TO_SUP,	/* a worker's fd 3 */
	HP_CHAN_SIBLING,	/* worker ↔ worker */
	HP_CHAN_CTL_SERVER,	/* the supervisor's end of a hpctl connection */
	HP_CHAN_CTL_CLIENT,	/* hpctl */
};

struct hp_chan_policy {
	const char *name;
	const uint32_t *recv;	/* allowed incoming types */
	size_t nrecv;
	const uint32_t *send;	/* allowed outgoing types */
	size_t nsend;
	uint32_t max_frame;	/* bytes, header included */
	int hello;		/* HELLO must open the channel each way */
	const uint32_t *fd_types;	/* incoming types that carry an fd */
	size_t nfd_types;
};

const struct hp_chan_policy *hp_chan_policy(enum hp_chan_kind kind);
/* The policy of the supervisor channel of worker `worker` (enum
 * hp_worker_id): the supervisor's end when sup is non-zero, else the
 * worker's fd 3. The runner's adds the contract spawn messages. */
const struct hp_chan_policy *hp_sup_policy(int worker, int sup);
/* The policy of worker self's end of its channel to worker peer. */
const struct hp_chan_policy *hp_sibling_policy(int self, int peer);

int hp_policy_may_recv(const struct hp_chan_policy *p, uint32_t type);
int hp_policy_may_send(const struct hp_chan_policy *p, uint32_t type);
int hp_policy_takes_fd(const struct hp_chan_policy *p, uint32_t type);

const char *hp_msg_name(uint32_t type);

/* The five workers, in start order. */
enum hp_worker_id {
	HP_W_CONSENSUS,
	HP_W_PEER,
	HP_W_STATE,
	HP_W_GATEWAY,
	HP_W_RUNNER,
	HP_W_COUNT
};

extern const char *const hp_worker_names[HP_W_COUNT];
int hp_worker_lookup(const char *name);	/* -1 when unknown */

/* Whether two workers have a direct channel (DESIGN §2 "talks to"). */
int hp_workers_linked(int a, int b);

#endif
