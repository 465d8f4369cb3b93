/*
 * runner.c — the contract run after each closed ledger (runner.h).
 *
 * One run at a time moves through: SESSION (waiting for the state worker
 * to open the read-write session), SPAWN (fds handed over, waiting for the
 * supervisor's pid), RUNNING (until CONTRACT_EXITED; the exec_timeout timer
 * asks for a SIGKILL), COMMIT (waiting for the committed hashes). Requests
 * carry the run's id and answers with another id are ignored.
 */
#include "runner.h"
#include "runio.h"

#include "err.h"
#include "hash.h"
#include "keys.h"
#include "log.h"
#include "mpack.h"
#include "proto.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Where the contract finds its fds (supervisor/contract.c places them). */
#define FD_CONTROL 3
#define FD_NPL 4
#define FD_USER_IN 5

enum phase { IDLE, SESSION, SPAWN, RUNNING, COMMIT };

#define READ_QUEUE 32		/* read requests waiting */
#define POLL_MS 5		/* output sockets drained this often */

/* A read request waiting for its read-only run. */
struct readreq {
	uint32_t id;
	uint8_t pk[32];
	uint8_t *content;
	size_t len;
};

static struct {
	uv_loop_t *loop;
	const struct hp_config *cfg;
	int enabled;		/* bin_path usable */
	uv_timer_t timer;	/* exec_timeout */
	uv_timer_t poll;	/* drains the output sockets */

	/* the run in progress */
	enum phase phase;
	uint32_t id;
	uint64_t seq, time, start_ms;
	uint8_t hash[32];
	int readonly;		/* a read request's run */
	uint32_t read_id;	/* its gateway request id */
	int in_fd;		/* the user input memfd until handed over */
	/* a RUN that came during a read-only run: it goes next */
	msgpack_sbuffer pending_run;
	int have_pending;
	struct readreq reads[READ_QUEUE];
	uint32_t nreads;
	int ctl_fd, npl_fd;	/* our ends, kept open while it runs */
	int timed_out;
	int spawned;
	int exited, status;	/* CONTRACT_EXITED: exited normally?, code */
	uint64_t run_ms;

	/* hpctl show runner */
	uint64_t runs, timeouts, skipped, failed, read_runs, reads_refused;
	uint64_t last_seq, last_ms;
	char last_result[96];
	char last_state[9];
} rn = { .ctl_fd = -1, .npl_fd = -1, .in_fd = -1 };

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
runner_init(uv_loop_t *loop, const struct hp_config *cfg)
{
	rn.loop = loop;
	rn.cfg = cfg;
	uv_timer_init(loop, &rn.timer);
	uv_timer_init(loop, &rn.poll);
	msgpack_sbuffer_init(&rn.pending_run);
	snprintf(rn.last_result, sizeof(rn.last_result), "none yet");
	snprintf(rn.last_state, sizeof(rn.last_state), "-");
	if (!cfg->contract.execute) {
		log_info("contract.execute is off: the contract does not run");
		return 0;
	}
	if (cfg->contract.bin_path == NULL || cfg->contract.bin_path[0] != '/') {
		log_warnx("contract.bin_path \"%s\" is not an absolute path:"
		    " the contract does not run; set it in hp.cfg (e.g."
		    " \"/usr/bin/node\") or deploy a bundle with an"
		    " hp.cfg.override", cfg->contract.bin_path ?
		    cfg->contract.bin_path : "");
		return 0;
	}
	rn.enabled = 1;
	return 0;
}

static void
close_ends(void)
{
	if (rn.ctl_fd >= 0)
		close(rn.ctl_fd);
	if (rn.npl_fd >= 0)
		close(rn.npl_fd);
	if (rn.in_fd >= 0)
		close(rn.in_fd);
	rn.ctl_fd = rn.npl_fd = rn.in_fd = -1;
}

static void send_done_zero(uint64_t seq);

static void
send_session(enum hp_session_op op)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_STATE_SESSION, rn.id, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, op);
	if (hp_worker_send(HP_W_STATE, &f, -1) != 0) {
		log_warnx("contract run for ledger %llu abandoned: the state"
		    " worker is not connected", (unsigned long long)rn.seq);
		rn.failed++;
		snprintf(rn.last_result, sizeof(rn.last_result), "abandoned:"
		    " state worker not connected");
		close_ends();
		rn.phase = IDLE;
		send_done_zero(rn.seq);
	}
}

/* The end of a run, however it went: commit what the contract wrote. */
static void read_done(void);
static void next_run(void);
static void npl_read(void);
static void ctl_read(void);
static void send_done(const uint8_t state[32], const uint8_t patch[32]);

static void
finish(void)
{
	uv_timer_stop(&rn.timer);
	uv_timer_stop(&rn.poll);
	runio_poll();
	npl_read();
	ctl_read();
	close_ends();
	if (rn.readonly) {
		read_done();
		return;
	}
	rn.phase = COMMIT;
	send_session(HP_SESSION_COMMIT);
}

/* ---- the args (§6.3) ---- */

static json_t *
build_args(const msgpack_object *unl, json_t *users)
{
	char hex[65], pk[HP_PK_HEX_LEN + 1];
	json_t *a = json_object(), *u = json_object();

	hp_hash_hex(rn.hash, 32, hex);
	json_object_set_new(a, "hp_version", json_string(HP_VERSION_STRING));
	json_object_set_new(a, "contract_id", json_string(rn.cfg->contract.id));
	json_object_set_new(a, "public_key",
	    json_string(rn.cfg->node.public_key_hex));
	json_object_set_new(a, "timestamp", json_integer(rn.readonly ? 0 :
	    (json_int_t)rn.time));
	json_object_set_new(a, "readonly", json_boolean(rn.readonly));
	if (!rn.readonly) {
		json_object_set_new(a, "lcl_seq_no",
		    json_integer((json_int_t)rn.seq));
		json_object_set_new(a, "lcl_hash", json_string(hex));
		json_object_set_new(a, "npl_fd", json_integer(FD_NPL));
	}
	json_object_set_new(a, "control_fd", json_integer(FD_CONTROL));
	json_object_set_new(a, "user_in_fd", json_integer(FD_USER_IN));
	json_object_set_new(a, "users", users);
	for (uint32_t i = 0; unl != NULL && unl->type == MSGPACK_OBJECT_ARRAY &&
	    i < unl->via.array.size; i++) {
		const msgpack_object *e = &unl->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
		    e->via.array.ptr[0].type != MSGPACK_OBJECT_BIN ||
		    e->via.array.ptr[0].via.bin.size != HP_PK_BYTES ||
		    e->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			continue;
		hp_pubkey_to_hex((const uint8_t *)e->via.array.ptr[0].via.bin.ptr,
		    pk);
		json_t *o = json_object();
		json_object_set_new(o, "active_on", json_integer(
		    (json_int_t)e->via.array.ptr[1].via.u64));
		json_object_set_new(u, pk, o);
	}
	json_object_set_new(a, "unl", u);
	return a;
}

/* The args JSON in a sealed memfd: no pipe to fill up, no writer to wait. */
static int
args_memfd(const char *text)
{
	size_t len = strlen(text), off = 0;
	int fd = memfd_create("hpd-contract-args", MFD_CLOEXEC |
	    MFD_ALLOW_SEALING);

	if (fd < 0)
		return HP_EIO;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return HP_EIO;
		}
		off += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
	    F_SEAL_WRITE | F_SEAL_SEAL) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return HP_EIO;
	}
	return fd;
}

static int
send_fd(int target, int fd)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_CONTRACT_FD, rn.id, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, (uint64_t)target);
	return hp_worker_send_sup(&f, fd);
}

static json_t *pending_args;	/* built at RUN, used once the session opens */

/* ---- NPL (§6.6): packets out to consensus, key + payload in ---- */

#define NPL_MAX (128u * 1024)
#define NPL_WAITING 256		/* messages for a run not started yet */

struct nplmsg {
	uint64_t seq;
	uint8_t from[32];
	uint8_t *data;
	size_t len;
};
static struct nplmsg npl_q[NPL_WAITING];
static uint32_t npl_nq;
static uint64_t npl_out_bytes;

static void
npl_send(const uint8_t from[32], const uint8_t *data, size_t len)
{
	char hex[HP_PK_HEX_LEN + 1];

	if (rn.npl_fd < 0)
		return;
	hp_pubkey_to_hex(from, hex);
	/* Two packets, nothing between them: the library pairs them. */
	if (send(rn.npl_fd, hex, strlen(hex), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ||
	    send(rn.npl_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("an NPL message for ledger %llu was not delivered",
		    (unsigned long long)rn.seq);
}

/* Deliver what waited for this run; drop what is for older ledgers. */
static void
npl_flush(void)
{
	uint32_t j = 0;

	for (uint32_t i = 0; i < npl_nq; i++) {
		struct nplmsg *q = &npl_q[i];
		if (q->seq == rn.seq && !rn.readonly &&
		    (rn.phase == RUNNING || rn.phase == SPAWN))
			npl_send(q->from, q->data, q->len);
		else if (q->seq > rn.seq) {
			npl_q[j++] = *q;
			continue;
		}
		free(q->data);
	}
	npl_nq = j;
}

void
runner_on_npl(const msgpack_object *body)
{
	const msgpack_object *from = hp_mpack_get(body, 2);
	const msgpack_object *d = hp_mpack_get(body, 3);
	uint64_t seq = 0;
	struct nplmsg *q;

	if (from == NULL || d == NULL || from->type != MSGPACK_OBJECT_BIN ||
	    from->via.bin.size != 32 || d->type != MSGPACK_OBJECT_BIN ||
	    d->via.bin.size > NPL_MAX || hp_mpack_u64(body, 1, &seq) != 0)
		return;
	if (!rn.readonly && seq == rn.seq &&
	    (rn.phase == RUNNING || rn.phase == SPAWN)) {
		npl_send((const uint8_t *)from->via.bin.ptr,
		    (const uint8_t *)d->via.bin.ptr, d->via.bin.size);
		return;
	}
	/* For a run about to start here (the other nodes' contracts may
	 * start first): keep it until then. */
	if (seq < rn.seq || (seq == rn.seq && rn.phase == IDLE) ||
	    npl_nq >= NPL_WAITING)
		return;
	q = &npl_q[npl_nq];
	if ((q->data = malloc(d->via.bin.size ? d->via.bin.size : 1)) == NULL)
		return;
	memcpy(q->data, d->via.bin.ptr, d->via.bin.size);
	q->len = d->via.bin.size;
	q->seq = seq;
	memcpy(q->from, from->via.bin.ptr, 32);
	npl_nq++;
}

/* Packets the contract wrote on its NPL socket. */
static void
npl_read(void)
{
	static uint8_t buf[NPL_MAX];
	uint64_t lim = rn.cfg->contract.round_limits.npl_output_bytes;

	while (rn.npl_fd >= 0 && !rn.readonly) {
		ssize_t n = recv(rn.npl_fd, buf, sizeof(buf), MSG_DONTWAIT);
		struct hp_frame f;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		npl_out_bytes += (uint64_t)n;
		if (lim != 0 && npl_out_bytes > lim) {
			log_warnx("contract run for ledger %llu: NPL output"
			    " passed npl_output_bytes (%llu); its NPL socket"
			    " is closed", (unsigned long long)rn.seq,
			    (unsigned long long)lim);
			close(rn.npl_fd);
			rn.npl_fd = -1;
			return;
		}
		hp_frame_begin(&f, HP_MSG_NPL_OUT, 0, 0);
		msgpack_pack_map(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_uint64(&f.pk, rn.seq);
		msgpack_pack_uint32(&f.pk, 2);
		msgpack_pack_bin(&f.pk, (size_t)n);
		msgpack_pack_bin_body(&f.pk, buf, (size_t)n);
		hp_worker_send(HP_W_CONSENSUS, &f, -1);
	}
}

/* Control packets (§6.5: peer_changeset) the contract wrote: consensus
 * checks and applies them. Nothing is ever sent to the contract. */
static void
ctl_read(void)
{
	static uint8_t buf[NPL_MAX];

	while (rn.ctl_fd >= 0 && !rn.readonly) {
		ssize_t n = recv(rn.ctl_fd, buf, sizeof(buf), MSG_DONTWAIT);
		struct hp_frame f;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		hp_frame_begin(&f, HP_MSG_CONTRACT_CONTROL, 0, 0);
		msgpack_pack_map(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_uint64(&f.pk, rn.seq);
		msgpack_pack_uint32(&f.pk, 2);
		msgpack_pack_bin(&f.pk, (size_t)n);
		msgpack_pack_bin_body(&f.pk, buf, (size_t)n);
		hp_worker_send(HP_W_CONSENSUS, &f, -1);
	}
}

static void
poll_cb(uv_timer_t *t)
{
	(void)t;
	runio_poll();
	npl_read();
	ctl_read();
}

/* The session is open: hand the contract's fds over and ask for it. */
static void
spawn(void)
{
	int ctl[2], npl[2], args, in = rn.in_fd;
	char *text = json_dumps(pending_args, JSON_COMPACT | JSON_PRESERVE_ORDER);
	struct hp_frame f;

	json_decref(pending_args);
	pending_args = NULL;
	args = text != NULL ? args_memfd(text) : HP_ENOMEM;
	free(text);
	rn.in_fd = -1;
	if (args < 0 || in < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) != 0) {
		log_warn("contract run for ledger %llu: cannot prepare its fds",
		    (unsigned long long)rn.seq);
		if (args >= 0)
			close(args);
		if (in >= 0)
			close(in);
		rn.failed++;
		snprintf(rn.last_result, sizeof(rn.last_result), "fds failed");
		finish();
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, npl) != 0) {
		log_warn("contract run for ledger %llu: socketpair",
		    (unsigned long long)rn.seq);
		close(args); close(in); close(ctl[0]); close(ctl[1]);
		rn.failed++;
		snprintf(rn.last_result, sizeof(rn.last_result), "fds failed");
		finish();
		return;
	}
	rn.ctl_fd = ctl[0];
	rn.npl_fd = npl[0];
	send_fd(0, args);
	send_fd(FD_CONTROL, ctl[1]);
	if (rn.readonly)
		close(npl[1]);	/* no NPL in read-only runs */
	else
		send_fd(FD_NPL, npl[1]);
	send_fd(FD_USER_IN, in);
	for (size_t i = 0; i < runio_count(); i++)
		if (runio_contract_fd(i) >= 0)
			send_fd(RUNIO_FD_FIRST + (int)i, runio_contract_fd(i));
	runio_handed_over();
	hp_frame_begin(&f, HP_MSG_SPAWN_CONTRACT, rn.id, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, rn.seq);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, rn.hash, 32);
	msgpack_pack_uint32(&f.pk, 3);
	if (rn.readonly)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	hp_worker_send_sup(&f, -1);
	rn.phase = SPAWN;
	rn.start_ms = mono_ms();
	npl_out_bytes = 0;
	npl_flush();
	uv_timer_start(&rn.poll, poll_cb, POLL_MS, POLL_MS);
}

void
runner_on_run(const msgpack_object *body)
{
	const msgpack_object *h;
	uint64_t seq = 0, t = 0;

	if (hp_mpack_u64(body, 1, &seq) != 0 || hp_mpack_u64(body, 3, &t) != 0 ||
	    (h = hp_mpack_get(body, 2)) == NULL ||
	    h->type != MSGPACK_OBJECT_BIN || h->via.bin.size != 32) {
		log_warnx("malformed RUN from consensus; ignored");
		return;
	}
	/* Every RUN gets its RUN_DONE: consensus waits for it before it
	 * proposes again (zero root when there was no run). */
	if (!rn.enabled) {
		send_done_zero(seq);
		return;
	}
	if (rn.phase != IDLE && rn.readonly) {
		/* A read-only run is going: this one is next. */
		msgpack_packer pk;
		if (rn.have_pending) {
			msgpack_unpacked old;
			uint64_t oseq = 0;
			rn.skipped++;
			if (hp_mpack_unpack((const uint8_t *)rn.pending_run.data,
			    rn.pending_run.size, &old) == 0) {
				(void)hp_mpack_u64(&old.data, 1, &oseq);
				msgpack_unpacked_destroy(&old);
				send_done_zero(oseq);
			}
		}
		msgpack_sbuffer_clear(&rn.pending_run);
		msgpack_packer_init(&pk, &rn.pending_run, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, *body);
		rn.have_pending = 1;
		return;
	}
	if (rn.phase != IDLE) {
		rn.skipped++;
		log_warnx("contract run for ledger %llu skipped: the run for"
		    " ledger %llu is still going", (unsigned long long)seq,
		    (unsigned long long)rn.seq);
		send_done_zero(seq);
		return;
	}
	rn.id++;
	rn.seq = seq;
	rn.time = t;
	rn.readonly = 0;
	memcpy(rn.hash, h->via.bin.ptr, 32);
	rn.timed_out = rn.spawned = rn.exited = 0;
	rn.status = 0;
	rn.run_ms = 0;
	json_t *users = json_object();
	if (rn.in_fd >= 0)
		close(rn.in_fd);
	if (runio_prepare(hp_mpack_get(body, 5), users, &rn.in_fd,
	    rn.cfg->contract.round_limits.user_output_bytes) != 0)
		log_warnx("contract run for ledger %llu: cannot prepare its"
		    " user inputs and outputs", (unsigned long long)seq);
	json_decref(pending_args);
	pending_args = build_args(hp_mpack_get(body, 4), users);
	rn.phase = SESSION;
	send_session(HP_SESSION_BEGIN);
}

static void
timeout_cb(uv_timer_t *t)
{
	struct hp_frame f;

	(void)t;
	if (rn.phase != RUNNING && rn.phase != SPAWN)
		return;
	rn.timed_out = 1;
	log_warnx("contract run for ledger %llu: exec_timeout (%llu ms)"
	    " reached; killing it", (unsigned long long)rn.seq,
	    (unsigned long long)rn.cfg->contract.round_limits.exec_timeout);
	hp_frame_begin(&f, HP_MSG_KILL_CONTRACT, rn.id, 0);
	msgpack_pack_map(&f.pk, 0);
	hp_worker_send_sup(&f, -1);
}

/* Outputs and their root to consensus: they become the next ledger's
 * output_hash. */
static void
send_done(const uint8_t state[32], const uint8_t patch[32])
{
	struct hp_frame f;
	uint8_t root[32];

	hp_frame_begin(&f, HP_MSG_RUN_DONE, 0, 0);
	msgpack_pack_map(&f.pk, 6);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, rn.seq);
	runio_pack_done(&f.pk, state, root);
	msgpack_pack_uint32(&f.pk, 5);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, state, 32);
	msgpack_pack_uint32(&f.pk, 6);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, patch, 32);
	hp_worker_send(HP_W_CONSENSUS, &f, -1);
}

/* No run (skipped, failed): nothing to deliver for that ledger. */
static void
send_done_zero(uint64_t seq)
{
	struct hp_frame f;
	static const uint8_t zero[32];

	hp_frame_begin(&f, HP_MSG_RUN_DONE, 0, 0);
	msgpack_pack_map(&f.pk, 4);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, seq);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, zero, 32);
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_array(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 4);
	msgpack_pack_array(&f.pk, 0);
	hp_worker_send(HP_W_CONSENSUS, &f, -1);
}

/* ---- read requests (read-only runs, one at a time between runs) ---- */

static void
start_read(void)
{
	struct readreq rq = rn.reads[0];
	json_t *users = json_object();

	memmove(&rn.reads[0], &rn.reads[1], (rn.nreads - 1) *
	    sizeof(rn.reads[0]));
	rn.nreads--;
	rn.id++;
	rn.readonly = 1;
	rn.read_id = rq.id;
	rn.timed_out = rn.spawned = rn.exited = 0;
	rn.status = 0;
	rn.run_ms = 0;
	if (rn.in_fd >= 0)
		close(rn.in_fd);
	if (runio_prepare_read(rq.pk, rq.content, rq.len, users, &rn.in_fd,
	    rn.cfg->contract.round_limits.user_output_bytes) != 0) {
		free(rq.content);
		json_decref(users);
		read_done();
		return;
	}
	free(rq.content);
	json_decref(pending_args);
	pending_args = build_args(NULL, users);
	rn.read_runs++;
	/* No session: the mount serves the last commit, read-only. */
	spawn();
}

static void
read_done(void)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_READ_RES, rn.read_id, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	runio_pack_read(&f.pk);
	hp_worker_send(HP_W_GATEWAY, &f, -1);
	runio_reset();
	rn.readonly = 0;
	rn.phase = IDLE;
	next_run();
}

/* Idle again: a RUN that waited goes first, then read requests. */
static void
next_run(void)
{
	if (rn.phase != IDLE)
		return;
	if (rn.have_pending) {
		msgpack_unpacked res;
		rn.have_pending = 0;
		if (hp_mpack_unpack((const uint8_t *)rn.pending_run.data,
		    rn.pending_run.size, &res) == 0) {
			runner_on_run(&res.data);
			msgpack_unpacked_destroy(&res);
		}
		if (rn.phase != IDLE)
			return;
	}
	if (rn.nreads > 0 && rn.enabled)
		start_read();
}

void
runner_on_read(struct hp_msg *m)
{
	const msgpack_object *pk = hp_mpack_get(m->body, 1);
	const msgpack_object *c = hp_mpack_get(m->body, 2);
	struct readreq *rq;
	struct hp_frame f;

	if (pk == NULL || c == NULL || pk->type != MSGPACK_OBJECT_BIN ||
	    pk->via.bin.size != 32 || c->type != MSGPACK_OBJECT_BIN)
		return;
	if (!rn.enabled || rn.nreads >= READ_QUEUE) {
		rn.reads_refused++;
		hp_frame_begin(&f, HP_MSG_READ_RES, m->id, 0);
		msgpack_pack_map(&f.pk, 1);
		msgpack_pack_uint32(&f.pk, 2);
		hp_mpack_pack_cstr(&f.pk, !rn.enabled ? "the contract does"
		    " not run here" : "too many read requests waiting");
		hp_worker_send(HP_W_GATEWAY, &f, -1);
		return;
	}
	rq = &rn.reads[rn.nreads];
	if ((rq->content = malloc(c->via.bin.size ? c->via.bin.size : 1)) ==
	    NULL)
		return;
	memcpy(rq->content, c->via.bin.ptr, c->via.bin.size);
	rq->len = c->via.bin.size;
	rq->id = m->id;
	memcpy(rq->pk, pk->via.bin.ptr, 32);
	rn.nreads++;
	next_run();
}

static void finish_log(bool ok, const char *err);

void
runner_on_session(struct hp_msg *m)
{
	const msgpack_object *s, *p;
	bool ok = false;
	char err[160] = "";

	if (m->id != rn.id || (rn.phase != SESSION && rn.phase != COMMIT))
		return;
	(void)hp_mpack_bool(m->body, 1, &ok);
	(void)hp_mpack_str(m->body, 4, err, sizeof(err));
	if (rn.phase == SESSION) {
		if (!ok) {
			log_warnx("contract run for ledger %llu skipped: %s",
			    (unsigned long long)rn.seq, err);
			rn.skipped++;
			json_decref(pending_args);
			pending_args = NULL;
			runio_reset();
			rn.phase = IDLE;
			send_done_zero(rn.seq);
			next_run();
			return;
		}
		spawn();
		return;
	}
	/* COMMIT: the run is over. */
	rn.phase = IDLE;
	rn.last_seq = rn.seq;
	rn.last_ms = rn.run_ms;
	if ((s = hp_mpack_get(m->body, 2)) != NULL &&
	    s->type == MSGPACK_OBJECT_BIN && s->via.bin.size == 32) {
		char hex[65];
		hp_hash_hex((const uint8_t *)s->via.bin.ptr, 32, hex);
		memcpy(rn.last_state, hex, 8);
		rn.last_state[8] = '\0';
	}
	p = hp_mpack_get(m->body, 3);
	if (ok && s != NULL && s->type == MSGPACK_OBJECT_BIN &&
	    s->via.bin.size == 32 && p != NULL &&
	    p->type == MSGPACK_OBJECT_BIN && p->via.bin.size == 32)
		send_done((const uint8_t *)s->via.bin.ptr,
		    (const uint8_t *)p->via.bin.ptr);
	else
		send_done_zero(rn.seq);
	runio_reset();
	finish_log(ok, err);
	next_run();
}

/* The run's log line, once its commit answered. */
static void
finish_log(bool ok, const char *err)
{
	if (!ok)
		log_warnx("contract run for ledger %llu: commit failed: %s",
		    (unsigned long long)rn.seq, err);
	if (!rn.spawned)
		return;		/* said when the spawn failed */
	if (rn.timed_out)
		log_warnx("contract run for ledger %llu: killed at exec_timeout"
		    " after %llu ms (state:%s)", (unsigned long long)rn.seq,
		    (unsigned long long)rn.run_ms, rn.last_state);
	else if (rn.exited && rn.status == 0)
		log_info("contract run for ledger %llu: exit 0 in %llu ms"
		    " (state:%s)", (unsigned long long)rn.seq,
		    (unsigned long long)rn.run_ms, rn.last_state);
	else
		log_warnx("contract run for ledger %llu: %s %d in %llu ms"
		    " (state:%s)", (unsigned long long)rn.seq, rn.exited ?
		    "exit" : "killed by signal", rn.status,
		    (unsigned long long)rn.run_ms, rn.last_state);
}

void
runner_on_sup(struct hp_msg *m)
{
	char err[160] = "";
	uint64_t v = 0;
	bool exited = false;

	if (m->id != rn.id)
		return;
	if (m->type == HP_MSG_CONTRACT_SPAWNED && rn.phase == SPAWN) {
		if (hp_mpack_u64(m->body, 1, &v) != 0) {
			(void)hp_mpack_str(m->body, 2, err, sizeof(err));
			log_warnx("contract run for ledger %llu: not started:"
			    " %s", (unsigned long long)rn.seq, err);
			rn.failed++;
			snprintf(rn.last_result, sizeof(rn.last_result),
			    "not started: %s", err);
			finish();
			return;
		}
		rn.spawned = 1;
		rn.phase = RUNNING;
		rn.runs++;
		log_debug("contract run for ledger %llu: pid %llu",
		    (unsigned long long)rn.seq, (unsigned long long)v);
		if (rn.cfg->contract.round_limits.exec_timeout > 0)
			uv_timer_start(&rn.timer, timeout_cb,
			    rn.cfg->contract.round_limits.exec_timeout, 0);
		return;
	}
	if (m->type == HP_MSG_CONTRACT_EXITED && rn.phase == RUNNING) {
		(void)hp_mpack_bool(m->body, 1, &exited);
		(void)hp_mpack_u64(m->body, 2, &v);
		rn.exited = exited;
		rn.status = (int)v;
		if (hp_mpack_u64(m->body, 3, &rn.run_ms) != 0)
			rn.run_ms = mono_ms() - rn.start_ms;
		if (rn.timed_out) {
			rn.timeouts++;
			snprintf(rn.last_result, sizeof(rn.last_result),
			    "killed at exec_timeout");
		} else
			snprintf(rn.last_result, sizeof(rn.last_result), "%s %d",
			    exited ? "exit" : "killed by signal", rn.status);
		finish();
	}
}

void
runner_state_down(void)
{
	if (rn.phase == SESSION || rn.phase == COMMIT) {
		log_warnx("contract run for ledger %llu: the state worker went"
		    " away; its session is lost", (unsigned long long)rn.seq);
		json_decref(pending_args);
		pending_args = NULL;
		rn.failed++;
		rn.phase = IDLE;
		if (!rn.readonly)
			send_done_zero(rn.seq);
	}
	/* SPAWN/RUNNING: the commit after the exit fails and is logged. */
}

void
runner_show(msgpack_packer *pk)
{
	static const char *const names[] = { "idle", "opening state session",
		"spawning", "running", "committing" };

	msgpack_pack_map(pk, 14);
	hp_mpack_kv_str(pk, "contract", !rn.cfg->contract.execute ? "off (execute"
	    " false)" : rn.enabled ? "on" : "off (bin_path not absolute)");
	hp_mpack_kv_str(pk, "phase", names[rn.phase]);
	hp_mpack_kv_u64(pk, "current_ledger", rn.phase != IDLE ? rn.seq : 0);
	hp_mpack_kv_u64(pk, "runs", rn.runs);
	hp_mpack_kv_u64(pk, "timeouts", rn.timeouts);
	hp_mpack_kv_u64(pk, "skipped", rn.skipped);
	hp_mpack_kv_u64(pk, "failed", rn.failed);
	hp_mpack_kv_u64(pk, "last_ledger", rn.last_seq);
	hp_mpack_kv_str(pk, "last_result", rn.last_result);
	hp_mpack_kv_u64(pk, "last_duration_ms", rn.last_ms);
	hp_mpack_kv_str(pk, "last_state_hash", rn.last_state);
	hp_mpack_kv_u64(pk, "read_runs", rn.read_runs);
	hp_mpack_kv_u64(pk, "reads_waiting", rn.nreads);
	hp_mpack_kv_u64(pk, "reads_refused", rn.reads_refused);
}

void
runner_shutdown(void)
{
	uv_timer_stop(&rn.timer);
	uv_timer_stop(&rn.poll);
	runio_reset();
	for (uint32_t i = 0; i < rn.nreads; i++)
		free(rn.reads[i].content);
	rn.nreads = 0;
	msgpack_sbuffer_destroy(&rn.pending_run);
	close_ends();
	json_decref(pending_args);
	pending_args = NULL;
}
