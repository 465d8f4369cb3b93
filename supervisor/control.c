/*
 * control.c — the control socket DIR/ctl.sock that hpctl talks to.
 *
 * The socket is mode 0660, owned by root and the "hpd" group; a caller is
 * accepted when SO_PEERCRED shows root, the supervisor's own uid, or a
 * member of that group. Each connection carries requests (HP_CTL_REQUEST:
 * an argv) and gets one HP_CTL_REPLY each: code 0 ok, 1 failed, 100 usage,
 * a message, and data (maps with string keys, printed by hpctl as text or
 * JSON). Every request that changes something is logged with the caller's
 * uid and pid.
 */
#include "hpd.h"
#include "err.h"
#include "log.h"
#include "mpack.h"

#include "hpd_config.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_MAX_ARGS 8
#define CTL_MAX_CONNS 32

struct ctl_conn {
	struct hp_channel ch;
	struct ucred cred;
};

static int nconns;

/* hpctl queries relayed to a worker, waiting for its answer. */
#define MAX_PENDING 64
static struct pending {
	uint32_t qid;		/* 0 = free */
	uint32_t req_id;	/* the hpctl request id */
	struct ctl_conn *conn;
	/* "show sync" asks the state worker, then consensus, and merges */
	int sync_stage;		/* 0: plain relay; 1: state asked; 2: consensus */
	msgpack_sbuffer state;	/* the state worker's data, stage 2 */
} pending[MAX_PENDING];
static uint32_t next_qid = 1;

static void relay(struct ctl_conn *c, uint32_t id, int owner,
    char argv[][64], int argc);
static void relay_sync(struct ctl_conn *c, uint32_t id, int stage,
    const msgpack_object *state);
static int show_owner(const char *what);

static void
reply(struct ctl_conn *c, uint32_t id, unsigned code, const char *msg,
    void (*pack_data)(msgpack_packer *, void *), void *arg)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_CTL_REPLY, id, 0);
	msgpack_pack_map(&f.pk, pack_data ? 3 : 2);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, code);
	msgpack_pack_uint32(&f.pk, 2);
	hp_mpack_pack_cstr(&f.pk, msg);
	if (pack_data != NULL) {
		msgpack_pack_uint32(&f.pk, 3);
		pack_data(&f.pk, arg);
	}
	hp_chan_send(&c->ch, &f, -1);
}

static void
pack_worker(msgpack_packer *pk, struct worker *w, uint64_t now)
{
	int nch = 0;

	msgpack_pack_map(pk, 11);
	hp_mpack_kv_str(pk, "name", w->name);
	hp_mpack_kv_str(pk, "state", wstate_name(w->state));
	hp_mpack_kv_u64(pk, "pid", (uint64_t)w->pid);
	hp_mpack_kv_u64(pk, "uid", (uint64_t)w->ids.uid);
	hp_mpack_kv_u64(pk, "uptime_ms", w->pid > 0 ? now - w->started_ms : 0);
	hp_mpack_kv_u64(pk, "restarts", w->restarts);
	hp_mpack_kv_str(pk, "last_exit", w->last_exit);
	hp_mpack_pack_cstr(pk, "last_exit_sigsys");
	if (w->last_exit_sigsys)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	hp_mpack_kv_u64(pk, "deaths_recent", w->ndeaths < 8 ? w->ndeaths : 8);
	hp_mpack_kv_u64(pk, "retry_in_ms", w->state == WS_BACKOFF &&
	    w->next_start_ms > now ? w->next_start_ms - now : 0);
	hp_mpack_pack_cstr(pk, "channels");
	for (int i = 0; i < HP_W_COUNT; i++)
		if (w->channels & (1u << i))
			nch++;
	msgpack_pack_array(pk, nch);
	for (int i = 0; i < HP_W_COUNT; i++)
		if (w->channels & (1u << i))
			hp_mpack_pack_cstr(pk, hp_worker_names[i]);
}

static void
pack_status(msgpack_packer *pk, void *arg)
{
	uint64_t now = now_ms();
	int ready = 0;

	for (int i = 0; i < HP_W_COUNT; i++)
		ready += sv.w[i].state == WS_READY;
	msgpack_pack_map(pk, 10);
	hp_mpack_pack_cstr(pk, "warnings");
	if (sv.health_known && sv.unl_live < sv.unl_quorum &&
	    sv.w[HP_W_CONSENSUS].state == WS_READY) {
		char w[256];
		snprintf(w, sizeof(w), "only %llu of %llu UNL members are live;"
		    " a ledger needs %llu: no ledger can close until more come"
		    " online", (unsigned long long)sv.unl_live,
		    (unsigned long long)sv.unl_n,
		    (unsigned long long)sv.unl_quorum);
		msgpack_pack_array(pk, 1);
		hp_mpack_pack_cstr(pk, w);
	} else
		msgpack_pack_array(pk, 0);
	hp_mpack_kv_str(pk, "version", HPD_VERSION);
	hp_mpack_kv_str(pk, "dir", sv.dir);
	hp_mpack_kv_u64(pk, "pid", (uint64_t)getpid());
	hp_mpack_kv_u64(pk, "uptime_ms", now - sv.start_ms);
	hp_mpack_kv_str(pk, "privsep", sv.privsep ? "full" : "development");
	hp_mpack_kv_str(pk, "public_key", sv.cfg.node.public_key_hex);
	hp_mpack_kv_str(pk, "contract_id", sv.cfg.contract.id);
	hp_mpack_kv_u64(pk, "workers_ready", (uint64_t)ready);
	hp_mpack_pack_cstr(pk, "workers");
	msgpack_pack_array(pk, HP_W_COUNT);
	for (int i = 0; i < HP_W_COUNT; i++)
		pack_worker(pk, &sv.w[i], now);
}

static int
arg_worker(struct ctl_conn *c, uint32_t id, const char *name)
{
	int w = hp_worker_lookup(name);

	if (w < 0) {
		char msg[160];
		snprintf(msg, sizeof(msg), "unknown worker \"%s\"; workers are:"
		    " consensus, peer, state, gateway, runner", name);
		reply(c, id, 100, msg, NULL, NULL);
	}
	return w;
}

static void
audit(struct ctl_conn *c, const char *what, const char *worker)
{
	log_info("control: uid %d (pid %d) asked to %s %s", (int)c->cred.uid,
	    (int)c->cred.pid, what, worker);
}

static void
handle(struct ctl_conn *c, uint32_t id, char argv[][64], int argc)
{
	char msg[200];
	int w;

	if (argc >= 1 && strcmp(argv[0], "show") == 0) {
		int owner = argc >= 2 ? show_owner(argv[1]) : -1;
		if (owner < 0)
			reply(c, id, 100, "show what? consensus, ledger [SEQ],"
			    " peers, state, sync, runner, gateway", NULL, NULL);
		else if (strcmp(argv[1], "sync") == 0)
			relay_sync(c, id, 1, NULL);
		else
			relay(c, id, owner, argv + 1, argc - 1);
		return;
	}
	/* "state begin|commit|abort": a state session by hand (test hooks). */
	if (argc >= 2 && strcmp(argv[0], "state") == 0) {
		audit(c, "run a state session command:", argv[1]);
		relay(c, id, HP_W_STATE, argv, argc);
		return;
	}
	if (argc == 1 && strcmp(argv[0], "status") == 0) {
		reply(c, id, 0, "ok", pack_status, NULL);
		return;
	}
	if (argc == 2 && (strcmp(argv[0], "restart") == 0 ||
	    strcmp(argv[0], "stop") == 0 || strcmp(argv[0], "start") == 0)) {
		if ((w = arg_worker(c, id, argv[1])) < 0)
			return;
		struct worker *wk = &sv.w[w];
		audit(c, argv[0], wk->name);
		if (argv[0][2] == 's') {	/* restart */
			worker_restart(wk);
			snprintf(msg, sizeof(msg), "%s restarting", wk->name);
		} else if (strcmp(argv[0], "stop") == 0) {
			if (wk->state == WS_STOPPED) {
				snprintf(msg, sizeof(msg), "%s is already"
				    " stopped", wk->name);
				reply(c, id, 0, msg, NULL, NULL);
				return;
			}
			worker_stop(wk);
			snprintf(msg, sizeof(msg), "%s stopping", wk->name);
		} else {
			if (wk->pid > 0 || wk->state == WS_BACKOFF) {
				snprintf(msg, sizeof(msg), "%s is already %s;"
				    " use restart to start it afresh", wk->name,
				    wstate_name(wk->state));
				reply(c, id, 1, msg, NULL, NULL);
				return;
			}
			worker_restart(wk);
			snprintf(msg, sizeof(msg), "%s starting", wk->name);
		}
		reply(c, id, 0, msg, NULL, NULL);
		return;
	}
	if (argc == 4 && strcmp(argv[0], "log") == 0 &&
	    strcmp(argv[1], "level") == 0) {
		int lvl = log_level_parse(argv[3]);
		if (lvl < 0) {
			reply(c, id, 100, "log level must be one of dbg, inf,"
			    " wrn, err", NULL, NULL);
			return;
		}
		if (strcmp(argv[2], "hpd") == 0) {
			audit(c, "set log level on", "hpd");
			log_set_level((enum hp_log_level)lvl);
		} else {
			if ((w = arg_worker(c, id, argv[2])) < 0)
				return;
			audit(c, "set log level on", sv.w[w].name);
			worker_send_log_level(&sv.w[w], lvl);
		}
		snprintf(msg, sizeof(msg), "log level of %s is now %s", argv[2],
		    argv[3]);
		reply(c, id, 0, msg, NULL, NULL);
		return;
	}
	if (argc == 3 && strcmp(argv[0], "debug") == 0 &&
	    strcmp(argv[1], "sigsys") == 0) {
		if ((w = arg_worker(c, id, argv[2])) < 0)
			return;
		audit(c, "trigger a forbidden syscall in", sv.w[w].name);
		int r = worker_send_test_sigsys(&sv.w[w]);
		if (r == HP_EINVAL)
			reply(c, id, 1, "test hooks are off: start hpd with"
			    " HPD_TEST_HOOKS=1 (tests only)", NULL, NULL);
		else if (r != 0)
			reply(c, id, 1, "worker is not ready", NULL, NULL);
		else
			reply(c, id, 0, "sent", NULL, NULL);
		return;
	}
	snprintf(msg, sizeof(msg), "unknown command \"%s\"; commands: status,"
	    " show consensus|ledger [SEQ]|peers|state|sync|runner|gateway,"
	    " restart|stop|start WORKER,"
	    " log level WORKER|hpd LEVEL",
	    argc > 0 ? argv[0] : "");
	reply(c, id, 100, msg, NULL, NULL);
}

/* Which worker answers "show WHAT". */
static int
show_owner(const char *what)
{
	if (strcmp(what, "consensus") == 0 || strcmp(what, "ledger") == 0)
		return HP_W_CONSENSUS;
	if (strcmp(what, "peers") == 0)
		return HP_W_PEER;
	if (strcmp(what, "state") == 0 || strcmp(what, "sync") == 0)
		return HP_W_STATE;
	if (strcmp(what, "runner") == 0)
		return HP_W_RUNNER;
	if (strcmp(what, "gateway") == 0)
		return HP_W_GATEWAY;
	return -1;
}

/* Relay argv to worker `owner`; its answer comes back in control_answer. */
static int
relay_stage(struct ctl_conn *c, uint32_t id, int owner, char argv[][64],
    int argc, int stage, const msgpack_object *state);

static void
relay(struct ctl_conn *c, uint32_t id, int owner, char argv[][64], int argc)
{
	relay_stage(c, id, owner, argv, argc, 0, NULL);
}

/*
 * "show sync": every stage of bringing this node up to the cluster — the
 * config (patch.cfg) and the ledgers from consensus, the state from the
 * state worker — in one answer {config, state, ledger}.
 */
static void
relay_sync(struct ctl_conn *c, uint32_t id, int stage,
    const msgpack_object *state)
{
	char argv[1][64] = { "sync" };

	relay_stage(c, id, stage == 1 ? HP_W_STATE : HP_W_CONSENSUS, argv, 1,
	    stage, state);
}

static int
relay_stage(struct ctl_conn *c, uint32_t id, int owner, char argv[][64],
    int argc, int stage, const msgpack_object *state)
{
	struct hp_frame f;
	struct worker *w;

	w = &sv.w[owner];
	if (w->state != WS_READY || w->ch == NULL) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s worker is %s; try again when it"
		    " is ready", w->name, wstate_name(w->state));
		reply(c, id, 1, msg, NULL, NULL);
		return -1;
	}
	for (int i = 0; i < MAX_PENDING; i++) {
		if (pending[i].qid != 0)
			continue;
		pending[i].qid = next_qid++;
		if (next_qid == 0)
			next_qid = 1;
		pending[i].req_id = id;
		pending[i].conn = c;
		pending[i].sync_stage = stage;
		msgpack_sbuffer_init(&pending[i].state);
		if (state != NULL) {
			msgpack_packer pk;
			msgpack_packer_init(&pk, &pending[i].state,
			    msgpack_sbuffer_write);
			msgpack_pack_object(&pk, *state);
		}
		hp_frame_begin(&f, HP_MSG_CTL_QUERY, pending[i].qid, 0);
		msgpack_pack_map(&f.pk, 1);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_array(&f.pk, (size_t)argc);
		for (int a = 0; a < argc; a++)
			hp_mpack_pack_cstr(&f.pk, argv[a]);
		hp_chan_send(w->ch, &f, -1);
		return 0;
	}
	reply(c, id, 1, "too many queries in flight", NULL, NULL);
	return -1;
}

/* The merged "show sync" answer: consensus's {config, ledger} with the
 * state worker's data as "state". */
static void
reply_sync(struct pending *p, const struct hp_msg *m)
{
	const msgpack_object *d = hp_mpack_get(m->body, 3);
	uint64_t code = 1;
	struct hp_frame f;
	msgpack_unpacked st;
	uint32_t n = 0;

	(void)hp_mpack_u64(m->body, 1, &code);
	if (d != NULL && d->type == MSGPACK_OBJECT_MAP)
		n = d->via.map.size;
	hp_frame_begin(&f, HP_CTL_REPLY, p->req_id, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, 0);
	msgpack_pack_uint32(&f.pk, 2);
	hp_mpack_pack_cstr(&f.pk, "ok");
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_map(&f.pk, (code == 0 ? n : 0) + 1);
	for (uint32_t i = 0; code == 0 && i < n; i++) {
		msgpack_pack_object(&f.pk, d->via.map.ptr[i].key);
		msgpack_pack_object(&f.pk, d->via.map.ptr[i].val);
	}
	hp_mpack_pack_cstr(&f.pk, "state");
	if (hp_mpack_unpack((const uint8_t *)p->state.data, p->state.size,
	    &st) == 0) {
		msgpack_pack_object(&f.pk, st.data);
		msgpack_unpacked_destroy(&st);
	} else
		msgpack_pack_nil(&f.pk);
	hp_chan_send(&p->conn->ch, &f, -1);
}

void
control_answer(uint32_t qid, const struct hp_msg *m)
{
	for (int i = 0; i < MAX_PENDING; i++) {
		struct hp_frame f;
		const msgpack_object *o;

		if (pending[i].qid != qid || qid == 0)
			continue;
		pending[i].qid = 0;
		if (pending[i].conn == NULL) {
			msgpack_sbuffer_destroy(&pending[i].state);
			return;		/* hpctl went away */
		}
		if (pending[i].sync_stage == 1) {
			const msgpack_object *d = hp_mpack_get(m->body, 3);
			msgpack_object nil = { .type = MSGPACK_OBJECT_NIL };
			msgpack_sbuffer_destroy(&pending[i].state);
			relay_sync(pending[i].conn, pending[i].req_id, 2,
			    d != NULL ? d : &nil);
			return;
		}
		if (pending[i].sync_stage == 2) {
			reply_sync(&pending[i], m);
			msgpack_sbuffer_destroy(&pending[i].state);
			return;
		}
		msgpack_sbuffer_destroy(&pending[i].state);
		/* Re-pack the answer as the reply; the data passes through. */
		hp_frame_begin(&f, HP_CTL_REPLY, pending[i].req_id, 0);
		o = m->body;
		msgpack_pack_object(&f.pk, *o);
		hp_chan_send(&pending[i].conn->ch, &f, -1);
		return;
	}
}

static void
conn_msg(struct hp_channel *ch, struct hp_msg *m)
{
	struct ctl_conn *c = ch->data;
	const msgpack_object *arr = hp_mpack_get(m->body, 1);
	char argv[CTL_MAX_ARGS][64];
	int argc = 0;

	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY ||
	    arr->via.array.size > CTL_MAX_ARGS) {
		reply(c, m->id, 100, "malformed request", NULL, NULL);
		return;
	}
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *o = &arr->via.array.ptr[i];
		if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= 64 ||
		    memchr(o->via.str.ptr, '\0', o->via.str.size)) {
			reply(c, m->id, 100, "malformed request argument",
			    NULL, NULL);
			return;
		}
		memcpy(argv[argc], o->via.str.ptr, o->via.str.size);
		argv[argc++][o->via.str.size] = '\0';
	}
	handle(c, m->id, argv, argc);
}

static void
conn_closed(struct hp_channel *ch, int err)
{
	for (int i = 0; i < MAX_PENDING; i++)
		if (pending[i].conn == ch->data)
			pending[i].conn = NULL;
	nconns--;
	free(ch->data);
}

static int
caller_allowed(const struct ucred *cr)
{
	if (cr->uid == 0 || cr->uid == geteuid())
		return 1;
	if (sv.admin_gid == 0)
		return 0;
	if (cr->gid == sv.admin_gid)
		return 1;
	struct passwd *pw = getpwuid(cr->uid);
	gid_t groups[64];
	int n = 64;
	if (pw == NULL || getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		return 0;
	for (int i = 0; i < n; i++)
		if (groups[i] == sv.admin_gid)
			return 1;
	return 0;
}

static void
accept_cb(uv_poll_t *h, int status, int events)
{
	struct ctl_conn *c;
	socklen_t len = sizeof(struct ucred);
	int fd;

	while ((fd = accept4(sv.ctl_fd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) >= 0) {
		if (nconns >= CTL_MAX_CONNS || (c = calloc(1, sizeof(*c))) ==
		    NULL) {
			close(fd);
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) != 0
		    || !caller_allowed(&c->cred)) {
			log_warnx("control: refused a connection from uid %d:"
			    " not root and not in the hpd group",
			    (int)c->cred.uid);
			close(fd);
			free(c);
			continue;
		}
		if (hp_chan_open(sv.loop, &c->ch, fd, HP_CHAN_CTL_SERVER, "hpd",
		    conn_msg, conn_closed, c) != 0) {
			free(c);
			continue;
		}
		nconns++;
	}
}

int
control_open(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", sv.dir, HPD_CTL_SOCK_REL);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "hpd run: the control socket path %s is longer"
		    " than %zu bytes; use a shorter node directory path\n",
		    path, sizeof(sa.sun_path) - 1);
		return -1;
	}
	strcpy(sa.sun_path, path);
	/* We hold the node lock, so any socket file here is stale. */
	unlink(path);
	sv.ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	mode_t old = umask(0117);
	int r = bind(sv.ctl_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r != 0 || listen(sv.ctl_fd, 16) != 0) {
		fprintf(stderr, "hpd run: cannot create the control socket %s:"
		    " %s\n", path, strerror(errno));
		return -1;
	}
	if (sv.admin_gid != 0 && chown(path, 0, sv.admin_gid) != 0)
		log_warn("chown %s", path);
	uv_poll_init(sv.loop, &sv.ctl_poll, sv.ctl_fd);
	uv_poll_start(&sv.ctl_poll, UV_READABLE, accept_cb);
	return 0;
}

void
control_close(void)
{
	char path[PATH_MAX];

	if (sv.ctl_fd < 0)
		return;
	uv_poll_stop(&sv.ctl_poll);
	uv_close((uv_handle_t *)&sv.ctl_poll, NULL);
	close(sv.ctl_fd);
	sv.ctl_fd = -1;
	snprintf(path, sizeof(path), "%s/%s", sv.dir, HPD_CTL_SOCK_REL);
	unlink(path);
}
