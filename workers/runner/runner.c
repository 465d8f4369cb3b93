/*
 * runner.c — the contract run after each closed ledger (runner.h).
 *
 * A consensus run moves through: SESSION (waiting for the state worker
 * to open the read-write session), SPAWN (fds handed over, waiting for the
 * supervisor's pid), RUNNING (until CONTRACT_EXITED; its exec_timeout
 * timer asks for a SIGKILL), COMMIT (waiting for the committed hashes).
 * A read-only run goes through SPAWN and RUNNING only; up to
 * user.concurrent_read_requests of them (at least one) go at once, each
 * in its own struct run, but never beside a consensus run. Every run has
 * its own id: requests carry it, and answers are matched to their run by
 * it (any other id is ignored).
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
#define SESSION_RETRY_MS 20	/* a refused state session asked again */
#define SESSION_WAIT_MAX_MS 30000	/* ... this long without exec_timeout */

/* A read request waiting for its read-only run. */
struct readreq {
	uint32_t id;
	uint8_t pk[32];
	uint8_t *content;
	size_t len;
};

#define READ_RUNS_MAX 32	/* read-only runs at once, at most */

/* One contract run: the consensus run, or a read request's. */
struct run {
	enum phase phase;	/* IDLE: the slot is free */
	uint32_t id;
	uint64_t seq, time, start_ms;
	uint64_t asked_ms;	/* when the session was first asked for */
	int waited;		/* the session was refused once and asked again */
	uint8_t hash[32];
	int readonly;		/* a read request's run */
	uint32_t read_id;	/* its gateway request id */
	int in_fd;		/* the user input memfd until handed over */
	int ctl_fd, npl_fd;	/* our ends, kept open while it runs */
	struct runio *io;	/* its users; freed when it is over */
	json_t *args;		/* built at the start, used at the spawn */
	uv_timer_t timer;	/* exec_timeout */
	int timed_out;
	int spawned;
	int exited, status;	/* CONTRACT_EXITED: exited normally?, code */
	uint64_t run_ms;
};

static struct {
	uv_loop_t *loop;
	const struct hp_config *cfg;
	int enabled;		/* bin_path usable */
	uv_timer_t poll;	/* drains the output sockets */
	uint32_t last_id;	/* the last run id given out */

	struct run cons;	/* the consensus run */
	struct run rd[READ_RUNS_MAX];	/* read-only runs */
	size_t rd_max;		/* how many of rd may go at once */
	/* a RUN that came during read-only runs: it goes once they end */
	msgpack_sbuffer pending_run;
	int have_pending;
	struct readreq reads[READ_QUEUE];
	uint32_t nreads;

	/* hpctl show runner */
	uint64_t runs, timeouts, skipped, failed, read_runs, reads_refused;
	uint64_t last_seq, last_ms;
	char last_result[96];
	char last_state[9];
} rn;

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
run_init(uv_loop_t *loop, struct run *r)
{
	r->in_fd = r->ctl_fd = r->npl_fd = -1;
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
}

int
runner_init(uv_loop_t *loop, const struct hp_config *cfg)
{
	rn.loop = loop;
	rn.cfg = cfg;
	run_init(loop, &rn.cons);
	for (size_t i = 0; i < READ_RUNS_MAX; i++)
		run_init(loop, &rn.rd[i]);
	rn.rd_max = cfg->user.concurrent_read_requests == 0 ? 1 :
	    cfg->user.concurrent_read_requests > READ_RUNS_MAX ?
	    READ_RUNS_MAX : (size_t)cfg->user.concurrent_read_requests;
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
close_ends(struct run *r)
{
	if (r->ctl_fd >= 0)
		close(r->ctl_fd);
	if (r->npl_fd >= 0)
		close(r->npl_fd);
	if (r->in_fd >= 0)
		close(r->in_fd);
	r->ctl_fd = r->npl_fd = r->in_fd = -1;
}

/* Everything of a run let go: its slot is free again. */
static void
run_clear(struct run *r)
{
	uv_timer_stop(&r->timer);
	close_ends(r);
	runio_free(r->io);
	r->io = NULL;
	json_decref(r->args);
	r->args = NULL;
	r->phase = IDLE;
}

static int
active(const struct run *r)
{
	return r->phase == SPAWN || r->phase == RUNNING;
}

static size_t
reads_running(void)
{
	size_t n = 0;

	for (size_t i = 0; i < READ_RUNS_MAX; i++)
		n += rn.rd[i].phase != IDLE;
	return n;
}

/* The output sockets are drained only while some contract runs. */
static void
poll_update(void)
{
	int any = active(&rn.cons);

	for (size_t i = 0; !any && i < READ_RUNS_MAX; i++)
		any = active(&rn.rd[i]);
	if (!any)
		uv_timer_stop(&rn.poll);
}

static void send_done_zero(uint64_t seq);
static void next_run(void);

static void
send_session(enum hp_session_op op)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_STATE_SESSION, rn.cons.id, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, op);
	if (hp_worker_send(HP_W_STATE, &f, -1) != 0) {
		log_warnx("contract run for ledger %llu abandoned: the state"
		    " worker is not connected",
		    (unsigned long long)rn.cons.seq);
		rn.failed++;
		snprintf(rn.last_result, sizeof(rn.last_result), "abandoned:"
		    " state worker not connected");
		run_clear(&rn.cons);
		send_done_zero(rn.cons.seq);
		next_run();
	}
}

/* The end of a run, however it went: commit what the contract wrote. */
static void read_done(struct run *r);
static void npl_read(void);
static void ctl_read(void);
static void send_done(const uint8_t state[32], const uint8_t patch[32]);

static void
finish(struct run *r)
{
	uv_timer_stop(&r->timer);
	runio_poll(r->io);
	if (!r->readonly) {
		npl_read();
		ctl_read();
	}
	close_ends(r);
	if (r->readonly) {
		r->phase = IDLE;
		poll_update();
		read_done(r);
		return;
	}
	r->phase = COMMIT;
	poll_update();
	send_session(HP_SESSION_COMMIT);
}

/* ---- the args (§6.3) ---- */

static json_t *
build_args(const struct run *r, const msgpack_object *unl, json_t *users)
{
	char hex[65], pk[HP_PK_HEX_LEN + 1];
	json_t *a = json_object(), *u = json_object();

	hp_hash_hex(r->hash, 32, hex);
	json_object_set_new(a, "hp_version", json_string(HP_VERSION_STRING));
	json_object_set_new(a, "contract_id", json_string(rn.cfg->contract.id));
	json_object_set_new(a, "public_key",
	    json_string(rn.cfg->node.public_key_hex));
	json_object_set_new(a, "timestamp", json_integer(r->readonly ? 0 :
	    (json_int_t)r->time));
	json_object_set_new(a, "readonly", json_boolean(r->readonly));
	if (!r->readonly) {
		json_object_set_new(a, "lcl_seq_no",
		    json_integer((json_int_t)r->seq));
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
send_fd(const struct run *r, int target, int fd)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_CONTRACT_FD, r->id, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, (uint64_t)target);
	return hp_worker_send_sup(&f, fd);
}

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

	if (rn.cons.npl_fd < 0)
		return;
	hp_pubkey_to_hex(from, hex);
	/* Two packets, nothing between them: the library pairs them. */
	if (send(rn.cons.npl_fd, hex, strlen(hex), MSG_DONTWAIT |
	    MSG_NOSIGNAL) < 0 || send(rn.cons.npl_fd, data, len, MSG_DONTWAIT |
	    MSG_NOSIGNAL) < 0)
		log_debug("an NPL message for ledger %llu was not delivered",
		    (unsigned long long)rn.cons.seq);
}

/* Deliver what waited for this run; drop what is for older ledgers. */
static void
npl_flush(void)
{
	uint32_t j = 0;

	for (uint32_t i = 0; i < npl_nq; i++) {
		struct nplmsg *q = &npl_q[i];
		if (q->seq == rn.cons.seq && active(&rn.cons))
			npl_send(q->from, q->data, q->len);
		else if (q->seq > rn.cons.seq) {
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
	if (seq == rn.cons.seq && active(&rn.cons)) {
		npl_send((const uint8_t *)from->via.bin.ptr,
		    (const uint8_t *)d->via.bin.ptr, d->via.bin.size);
		return;
	}
	/* For a run about to start here (the other nodes' contracts may
	 * start first): keep it until then. */
	if (seq < rn.cons.seq || (seq == rn.cons.seq &&
	    rn.cons.phase == IDLE) || npl_nq >= NPL_WAITING)
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

/* Packets the consensus run's contract wrote on its NPL socket. */
static void
npl_read(void)
{
	static uint8_t buf[NPL_MAX];
	uint64_t lim = rn.cfg->contract.round_limits.npl_output_bytes;

	while (rn.cons.npl_fd >= 0) {
		ssize_t n = recv(rn.cons.npl_fd, buf, sizeof(buf),
		    MSG_DONTWAIT);
		struct hp_frame f;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		npl_out_bytes += (uint64_t)n;
		if (lim != 0 && npl_out_bytes > lim) {
			log_warnx("contract run for ledger %llu: NPL output"
			    " passed npl_output_bytes (%llu); its NPL socket"
			    " is closed", (unsigned long long)rn.cons.seq,
			    (unsigned long long)lim);
			close(rn.cons.npl_fd);
			rn.cons.npl_fd = -1;
			return;
		}
		hp_frame_begin(&f, HP_MSG_NPL_OUT, 0, 0);
		msgpack_pack_map(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_uint64(&f.pk, rn.cons.seq);
		msgpack_pack_uint32(&f.pk, 2);
		msgpack_pack_bin(&f.pk, (size_t)n);
		msgpack_pack_bin_body(&f.pk, buf, (size_t)n);
		hp_worker_send(HP_W_CONSENSUS, &f, -1);
	}
}

/* Control packets (§6.5: peer_changeset) the consensus run's contract
 * wrote: consensus checks and applies them. Nothing is ever sent to the
 * contract. A read-only run's control socket is never read. */
static void
ctl_read(void)
{
	static uint8_t buf[NPL_MAX];

	while (rn.cons.ctl_fd >= 0) {
		ssize_t n = recv(rn.cons.ctl_fd, buf, sizeof(buf),
		    MSG_DONTWAIT);
		struct hp_frame f;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		hp_frame_begin(&f, HP_MSG_CONTRACT_CONTROL, 0, 0);
		msgpack_pack_map(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_uint64(&f.pk, rn.cons.seq);
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
	if (active(&rn.cons)) {
		runio_poll(rn.cons.io);
		npl_read();
		ctl_read();
	}
	for (size_t i = 0; i < READ_RUNS_MAX; i++)
		if (active(&rn.rd[i]))
			runio_poll(rn.rd[i].io);
}

/* Ready to go (the session is open for a consensus run): hand the
 * contract's fds over and ask for it. */
static void
spawn(struct run *r)
{
	int ctl[2], npl[2], args, in = r->in_fd;
	char *text = json_dumps(r->args, JSON_COMPACT | JSON_PRESERVE_ORDER);
	struct hp_frame f;

	json_decref(r->args);
	r->args = NULL;
	args = text != NULL ? args_memfd(text) : HP_ENOMEM;
	free(text);
	r->in_fd = -1;
	if (args < 0 || in < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) != 0) {
		log_warn("contract run for ledger %llu: cannot prepare its fds",
		    (unsigned long long)r->seq);
		if (args >= 0)
			close(args);
		if (in >= 0)
			close(in);
		rn.failed++;
		snprintf(rn.last_result, sizeof(rn.last_result), "fds failed");
		finish(r);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, npl) != 0) {
		log_warn("contract run for ledger %llu: socketpair",
		    (unsigned long long)r->seq);
		close(args); close(in); close(ctl[0]); close(ctl[1]);
		rn.failed++;
		snprintf(rn.last_result, sizeof(rn.last_result), "fds failed");
		finish(r);
		return;
	}
	r->ctl_fd = ctl[0];
	r->npl_fd = npl[0];
	send_fd(r, 0, args);
	send_fd(r, FD_CONTROL, ctl[1]);
	if (r->readonly)
		close(npl[1]);	/* no NPL in read-only runs */
	else
		send_fd(r, FD_NPL, npl[1]);
	send_fd(r, FD_USER_IN, in);
	for (size_t i = 0; i < runio_count(r->io); i++)
		if (runio_contract_fd(r->io, i) >= 0)
			send_fd(r, RUNIO_FD_FIRST + (int)i,
			    runio_contract_fd(r->io, i));
	runio_handed_over(r->io);
	hp_frame_begin(&f, HP_MSG_SPAWN_CONTRACT, r->id, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, r->seq);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, r->hash, 32);
	msgpack_pack_uint32(&f.pk, 3);
	if (r->readonly)
		msgpack_pack_true(&f.pk);
	else
		msgpack_pack_false(&f.pk);
	hp_worker_send_sup(&f, -1);
	r->phase = SPAWN;
	r->start_ms = mono_ms();
	if (!r->readonly) {
		npl_out_bytes = 0;
		npl_flush();
	}
	if (!uv_is_active((uv_handle_t *)&rn.poll))
		uv_timer_start(&rn.poll, poll_cb, POLL_MS, POLL_MS);
}

/* A fresh run in slot r. */
static void
run_start(struct run *r, int readonly)
{
	run_clear(r);
	r->id = ++rn.last_id;
	r->readonly = readonly;
	r->timed_out = r->spawned = r->exited = 0;
	r->status = 0;
	r->run_ms = 0;
	r->io = runio_new();
}

void
runner_on_run(const msgpack_object *body)
{
	struct run *r = &rn.cons;
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
	if (r->phase != IDLE) {
		rn.skipped++;
		log_warnx("contract run for ledger %llu skipped: the run for"
		    " ledger %llu is still going", (unsigned long long)seq,
		    (unsigned long long)r->seq);
		send_done_zero(seq);
		return;
	}
	if (reads_running() > 0) {
		/* Read-only runs are going: this one waits for them all to
		 * end (each within exec_timeout), before any other read. */
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
	run_start(r, 0);
	r->seq = seq;
	r->time = t;
	memcpy(r->hash, h->via.bin.ptr, 32);
	json_t *users = json_object();
	if (r->io == NULL || runio_prepare(r->io, hp_mpack_get(body, 5), users,
	    &r->in_fd, rn.cfg->contract.round_limits.user_output_bytes) != 0)
		log_warnx("contract run for ledger %llu: cannot prepare its"
		    " user inputs and outputs", (unsigned long long)seq);
	if (r->io == NULL) {
		json_decref(users);
		rn.failed++;
		send_done_zero(seq);
		return;
	}
	r->args = build_args(r, hp_mpack_get(body, 4), users);
	r->phase = SESSION;
	r->asked_ms = mono_ms();
	r->waited = 0;
	send_session(HP_SESSION_BEGIN);
}

static void
session_retry_cb(uv_timer_t *t)
{
	struct run *r = t->data;

	if (r->phase == SESSION)
		send_session(HP_SESSION_BEGIN);
}

static void
timeout_cb(uv_timer_t *t)
{
	struct run *r = t->data;
	struct hp_frame f;

	if (!active(r))
		return;
	r->timed_out = 1;
	if (r->readonly)
		log_warnx("read-only contract run %u: exec_timeout (%llu ms)"
		    " reached; killing it", r->id, (unsigned long long)
		    rn.cfg->contract.round_limits.exec_timeout);
	else
		log_warnx("contract run for ledger %llu: exec_timeout (%llu ms)"
		    " reached; killing it", (unsigned long long)r->seq,
		    (unsigned long long)
		    rn.cfg->contract.round_limits.exec_timeout);
	hp_frame_begin(&f, HP_MSG_KILL_CONTRACT, r->id, 0);
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
	msgpack_pack_uint64(&f.pk, rn.cons.seq);
	runio_pack_done(rn.cons.io, &f.pk, state, root);
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

/* ---- read requests (read-only runs side by side, between consensus
 * runs) ---- */

static void
start_read(struct run *r)
{
	struct readreq rq = rn.reads[0];
	json_t *users = json_object();

	memmove(&rn.reads[0], &rn.reads[1], (rn.nreads - 1) *
	    sizeof(rn.reads[0]));
	rn.nreads--;
	run_start(r, 1);
	r->read_id = rq.id;
	/* The last consensus run's ledger: SPAWN_CONTRACT's fields. */
	r->seq = rn.cons.seq;
	memcpy(r->hash, rn.cons.hash, 32);
	if (r->io == NULL || runio_prepare_read(r->io, rq.pk, rq.content,
	    rq.len, users, &r->in_fd,
	    rn.cfg->contract.round_limits.user_output_bytes) != 0) {
		free(rq.content);
		json_decref(users);
		read_done(r);
		return;
	}
	free(rq.content);
	r->args = build_args(r, NULL, users);
	rn.read_runs++;
	/* No session: the mount serves the last commit, read-only. */
	spawn(r);
}

/* The read request's answer: the outputs, if any; the slot is free. */
static void
read_done(struct run *r)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_READ_RES, r->read_id, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	if (r->io != NULL)
		runio_pack_read(r->io, &f.pk);
	else
		msgpack_pack_array(&f.pk, 0);
	hp_worker_send(HP_W_GATEWAY, &f, -1);
	run_clear(r);
	next_run();
}

static struct run *
free_read_slot(void)
{
	for (size_t i = 0; i < rn.rd_max; i++)
		if (rn.rd[i].phase == IDLE)
			return &rn.rd[i];
	return NULL;
}

/*
 * Something ended or arrived: a RUN that waited goes first, once no
 * read-only run is left; else read requests start while there are free
 * slots and no consensus run.
 */
static void
next_run(void)
{
	struct run *r;

	if (rn.cons.phase != IDLE)
		return;
	if (rn.have_pending) {
		msgpack_unpacked res;
		if (reads_running() > 0)
			return;
		rn.have_pending = 0;
		if (hp_mpack_unpack((const uint8_t *)rn.pending_run.data,
		    rn.pending_run.size, &res) == 0) {
			runner_on_run(&res.data);
			msgpack_unpacked_destroy(&res);
		}
		if (rn.cons.phase != IDLE || rn.have_pending)
			return;
	}
	while (rn.enabled && rn.nreads > 0 && rn.cons.phase == IDLE &&
	    !rn.have_pending && (r = free_read_slot()) != NULL)
		start_read(r);
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
	struct run *r = &rn.cons;
	const msgpack_object *s, *p;
	bool ok = false;
	char err[160] = "";

	if (m->id != r->id || (r->phase != SESSION && r->phase != COMMIT))
		return;
	(void)hp_mpack_bool(m->body, 1, &ok);
	(void)hp_mpack_str(m->body, 4, err, sizeof(err));
	if (r->phase == SESSION) {
		uint64_t budget = rn.cfg->contract.round_limits.exec_timeout;

		/*
		 * The state worker refuses a session while it syncs the state
		 * to the ledger this run starts from (the node's own state had
		 * fallen behind). The run goes once the sync is done: skipping
		 * it would leave the node behind again at the next ledger, and
		 * so for good. Asked again every SESSION_RETRY_MS for as long
		 * as consensus waits for the run (its exec_timeout).
		 */
		if (!ok && mono_ms() - r->asked_ms + SESSION_RETRY_MS <
		    (budget > 0 ? budget : SESSION_WAIT_MAX_MS)) {
			if (!r->waited)
				log_info("contract run for ledger %llu waits for"
				    " the state: %s", (unsigned long long)r->seq,
				    err);
			r->waited = 1;
			uv_timer_start(&r->timer, session_retry_cb,
			    SESSION_RETRY_MS, 0);
			return;
		}
		if (!ok) {
			log_warnx("contract run for ledger %llu skipped: %s",
			    (unsigned long long)r->seq, err);
			rn.skipped++;
			run_clear(r);
			send_done_zero(r->seq);
			next_run();
			return;
		}
		spawn(r);
		return;
	}
	/* COMMIT: the run is over. */
	rn.last_seq = r->seq;
	rn.last_ms = r->run_ms;
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
		send_done_zero(r->seq);
	run_clear(r);
	finish_log(ok, err);
	next_run();
}

/* The consensus run's log line, once its commit answered. */
static void
finish_log(bool ok, const char *err)
{
	const struct run *r = &rn.cons;

	if (!ok)
		log_warnx("contract run for ledger %llu: commit failed: %s",
		    (unsigned long long)r->seq, err);
	if (!r->spawned)
		return;		/* said when the spawn failed */
	if (r->timed_out)
		log_warnx("contract run for ledger %llu: killed at exec_timeout"
		    " after %llu ms (state:%s)", (unsigned long long)r->seq,
		    (unsigned long long)r->run_ms, rn.last_state);
	else if (r->exited && r->status == 0)
		log_info("contract run for ledger %llu: exit 0 in %llu ms"
		    " (state:%s)", (unsigned long long)r->seq,
		    (unsigned long long)r->run_ms, rn.last_state);
	else
		log_warnx("contract run for ledger %llu: %s %d in %llu ms"
		    " (state:%s)", (unsigned long long)r->seq, r->exited ?
		    "exit" : "killed by signal", r->status,
		    (unsigned long long)r->run_ms, rn.last_state);
}

/* The run the supervisor's answer with this id is about, if any. */
static struct run *
run_by_id(uint32_t id)
{
	if (rn.cons.phase != IDLE && rn.cons.id == id)
		return &rn.cons;
	for (size_t i = 0; i < READ_RUNS_MAX; i++)
		if (rn.rd[i].phase != IDLE && rn.rd[i].id == id)
			return &rn.rd[i];
	return NULL;
}

void
runner_on_sup(struct hp_msg *m)
{
	struct run *r = run_by_id(m->id);
	char err[160] = "";
	uint64_t v = 0;
	bool exited = false;

	if (r == NULL)
		return;
	if (m->type == HP_MSG_CONTRACT_SPAWNED && r->phase == SPAWN) {
		if (hp_mpack_u64(m->body, 1, &v) != 0) {
			(void)hp_mpack_str(m->body, 2, err, sizeof(err));
			log_warnx("contract run for ledger %llu%s: not started:"
			    " %s", (unsigned long long)r->seq, r->readonly ?
			    " (read-only)" : "", err);
			rn.failed++;
			snprintf(rn.last_result, sizeof(rn.last_result),
			    "not started: %s", err);
			finish(r);
			return;
		}
		r->spawned = 1;
		r->phase = RUNNING;
		rn.runs++;
		log_debug("contract run for ledger %llu%s: pid %llu",
		    (unsigned long long)r->seq, r->readonly ? " (read-only)" :
		    "", (unsigned long long)v);
		if (rn.cfg->contract.round_limits.exec_timeout > 0)
			uv_timer_start(&r->timer, timeout_cb,
			    rn.cfg->contract.round_limits.exec_timeout, 0);
		return;
	}
	if (m->type == HP_MSG_CONTRACT_EXITED && r->phase == RUNNING) {
		(void)hp_mpack_bool(m->body, 1, &exited);
		(void)hp_mpack_u64(m->body, 2, &v);
		r->exited = exited;
		r->status = (int)v;
		if (hp_mpack_u64(m->body, 3, &r->run_ms) != 0)
			r->run_ms = mono_ms() - r->start_ms;
		if (r->timed_out) {
			rn.timeouts++;
			snprintf(rn.last_result, sizeof(rn.last_result),
			    "killed at exec_timeout");
		} else
			snprintf(rn.last_result, sizeof(rn.last_result), "%s %d",
			    exited ? "exit" : "killed by signal", r->status);
		finish(r);
	}
}

void
runner_state_down(void)
{
	struct run *r = &rn.cons;

	if (r->phase == SESSION || r->phase == COMMIT) {
		log_warnx("contract run for ledger %llu: the state worker went"
		    " away; its session is lost", (unsigned long long)r->seq);
		rn.failed++;
		run_clear(r);
		send_done_zero(r->seq);
		next_run();
	}
	/* SPAWN/RUNNING: the commit after the exit fails and is logged. */
}

void
runner_show(msgpack_packer *pk)
{
	static const char *const names[] = { "idle", "opening state session",
		"spawning", "running", "committing" };

	msgpack_pack_map(pk, 15);
	hp_mpack_kv_str(pk, "contract", !rn.cfg->contract.execute ? "off (execute"
	    " false)" : rn.enabled ? "on" : "off (bin_path not absolute)");
	hp_mpack_kv_str(pk, "phase", names[rn.cons.phase]);
	hp_mpack_kv_u64(pk, "current_ledger", rn.cons.phase != IDLE ?
	    rn.cons.seq : 0);
	hp_mpack_kv_u64(pk, "runs", rn.runs);
	hp_mpack_kv_u64(pk, "timeouts", rn.timeouts);
	hp_mpack_kv_u64(pk, "skipped", rn.skipped);
	hp_mpack_kv_u64(pk, "failed", rn.failed);
	hp_mpack_kv_u64(pk, "last_ledger", rn.last_seq);
	hp_mpack_kv_str(pk, "last_result", rn.last_result);
	hp_mpack_kv_u64(pk, "last_duration_ms", rn.last_ms);
	hp_mpack_kv_str(pk, "last_state_hash", rn.last_state);
	hp_mpack_kv_u64(pk, "read_runs", rn.read_runs);
	hp_mpack_kv_u64(pk, "read_runs_running", reads_running());
	hp_mpack_kv_u64(pk, "reads_waiting", rn.nreads);
	hp_mpack_kv_u64(pk, "reads_refused", rn.reads_refused);
}

void
runner_shutdown(void)
{
	uv_timer_stop(&rn.poll);
	run_clear(&rn.cons);
	for (size_t i = 0; i < READ_RUNS_MAX; i++)
		run_clear(&rn.rd[i]);
	for (uint32_t i = 0; i < rn.nreads; i++)
		free(rn.reads[i].content);
	rn.nreads = 0;
	msgpack_sbuffer_destroy(&rn.pending_run);
}
