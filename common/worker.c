/*
 * worker.c — the common worker skeleton (worker.h).
 */
#include "worker.h"
#include "channel.h"
#include "err.h"
#include "keys.h"
#include "log.h"
#include "mpack.h"
#include "proto.h"
#include "sandbox.h"

#include "hpd_config.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* One live channel to a sibling; heap-allocated so that a replaced
 * channel can finish closing on its own. */
struct sibling {
	struct hp_channel ch;
	int id;			/* enum hp_worker_id */
	uint64_t generation;
};

struct listener {
	char name[16];
	uint64_t port;
	int fd;
};

static struct {
	uv_loop_t loop;
	const struct hp_worker_role *r;
	const char *role;
	const char *dir;
	int store_fd;
	char store_path[64];
	struct hp_config cfg;
	int have_cfg;
	int self;
	int test_hooks;
	int dev;
	int stopping;
	struct hp_channel sup;
	struct sibling *sib[HP_W_COUNT];
	struct listener lis[2];
} w;

static void
pack_channels(msgpack_packer *pk)
{
	int n = 0;

	for (int i = 0; i < HP_W_COUNT; i++)
		if (w.sib[i] != NULL && w.sib[i]->ch.hello_done)
			n++;
	msgpack_pack_array(pk, n);
	for (int i = 0; i < HP_W_COUNT; i++)
		if (w.sib[i] != NULL && w.sib[i]->ch.hello_done)
			hp_mpack_pack_cstr(pk, hp_worker_names[i]);
}

static void
send_status(uint32_t type, uint64_t seq)
{
	struct hp_frame f;

	hp_frame_begin(&f, type, 0, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, seq);
	msgpack_pack_uint32(&f.pk, 2);
	pack_channels(&f.pk);
	hp_chan_send(&w.sup, &f, -1);
}

static void
sibling_msg(struct hp_channel *ch, struct hp_msg *m)
{
	struct sibling *s = ch->data;

	if (m->type == HP_MSG_HELLO) {
		if (strcmp(ch->peer_role, hp_worker_names[s->id]) != 0) {
			log_warnx("channel meant for %s greets as %s; closing",
			    hp_worker_names[s->id], ch->peer_role);
			hp_chan_close(ch, HP_EPROTO);
			return;
		}
		log_debug("channel to %s up (generation %llu)", ch->peer_role,
		    (unsigned long long)s->generation);
		send_status(HP_MSG_STATUS, 0);
		if (w.r->sibling_up != NULL)
			w.r->sibling_up(s->id);
		return;
	}
	if (w.sib[s->id] == s && w.r->sibling_msg != NULL)
		w.r->sibling_msg(s->id, m);
}

static void
sibling_closed(struct hp_channel *ch, int err)
{
	struct sibling *s = ch->data;
	int current = w.sib[s->id] == s;

	if (current)
		w.sib[s->id] = NULL;
	if (!current || w.stopping)
		;	/* superseded, or we are leaving: nothing to report */
	else if (err == HP_EEOF)
		log_info("channel to %s closed: sibling restarting",
		    hp_worker_names[s->id]);
	else if (err != 0)
		log_warnx("channel to %s closed: %s", hp_worker_names[s->id],
		    hp_strerror(err));
	if (current && !w.sup.closing)
		send_status(HP_MSG_STATUS, 0);
	if (current && !w.stopping && ch->hello_done &&
	    w.r->sibling_down != NULL)
		w.r->sibling_down(s->id);
	free(s);
}

static void
take_channel(struct hp_msg *m)
{
	char role[32];
	uint64_t gen = 0;
	int id;

	if (hp_mpack_str(m->body, 1, role, sizeof(role)) != 0 ||
	    hp_mpack_u64(m->body, 2, &gen) != 0 ||
	    (id = hp_worker_lookup(role)) < 0 ||
	    !hp_workers_linked(w.self, id)) {
		log_warnx("CHANNEL_NEW for an unexpected sibling; ignored");
		return;
	}
	struct sibling *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		log_warnx("out of memory for the channel to %s", role);
		return;
	}
	if (w.sib[id] != NULL) {
		/*
		 * Superseded: a new channel means a new instance of the
		 * sibling, whether or not the old channel's end has been read
		 * yet. It is down now (a state session the old runner opened
		 * is aborted, say): sibling_closed() will not say so, as the
		 * channel is no longer the current one when it runs.
		 */
		struct sibling *old = w.sib[id];
		int was_up = old->ch.hello_done;

		w.sib[id] = NULL;
		hp_chan_close(&old->ch, 0);
		if (was_up && !w.stopping) {
			log_info("channel to %s replaced: sibling restarted",
			    hp_worker_names[id]);
			if (w.r->sibling_down != NULL)
				w.r->sibling_down(id);
		}
	}
	s->id = id;
	s->generation = gen;
	int fd = m->fd;
	m->fd = -1;
	if (hp_chan_open_policy(&w.loop, &s->ch, fd,
	    hp_sibling_policy(w.self, id), w.role, sibling_msg, sibling_closed,
	    s) != 0) {
		free(s);
		return;
	}
	w.sib[id] = s;
}

static void
take_listener(struct hp_msg *m)
{
	char name[16];
	uint64_t port = 0;

	if (hp_mpack_str(m->body, 1, name, sizeof(name)) != 0 ||
	    hp_mpack_u64(m->body, 2, &port) != 0) {
		log_warnx("malformed LISTENER; ignored");
		return;
	}
	if (w.r->listener != NULL) {
		int fd = m->fd;
		m->fd = -1;
		log_info("listening socket for %s (port %llu) received", name,
		    (unsigned long long)port);
		w.r->listener(name, fd);
		return;
	}
	for (int i = 0; i < 2; i++) {
		struct listener *l = &w.lis[i];
		if (l->fd >= 0 && strcmp(l->name, name) != 0)
			continue;
		if (l->fd >= 0)
			close(l->fd);
		snprintf(l->name, sizeof(l->name), "%s", name);
		l->port = port;
		l->fd = m->fd;
		m->fd = -1;
		log_info("holding the %s listening socket (port %llu)", name,
		    (unsigned long long)port);
		return;
	}
}

static void
report_config(enum hp_config_diag sev, const char *msg, void *arg)
{
	if (sev == HP_CONFIG_ERROR)
		log_errx("configuration: %s", msg);
}

static void
take_config(struct hp_msg *m)
{
	const msgpack_object *o = hp_mpack_get(m->body, 1);
	int r;

	if (w.have_cfg) {
		log_warnx("second CONFIG ignored");
		return;
	}
	if (o == NULL || o->type != MSGPACK_OBJECT_STR)
		fatalx("malformed CONFIG from the supervisor");
	if (w.self == HP_W_CONSENSUS)
		r = hp_config_parse("hp.cfg", o->via.str.ptr, o->via.str.size,
		    &w.cfg, report_config, NULL);
	else
		r = hp_config_parse_public("hp.cfg", o->via.str.ptr,
		    o->via.str.size, &w.cfg, report_config, NULL);
	if (r != 0)
		fatalx("the supervisor's configuration does not load: %s",
		    hp_strerror(r));
	w.have_cfg = 1;
	if (w.r->init != NULL && w.r->init(&w.loop, &w.cfg) != 0)
		fatalx("%s initialisation failed", w.role);
	hp_chan_send_empty(&w.sup, HP_MSG_READY, 0);
}

static void
answer_query(struct hp_msg *m)
{
	const msgpack_object *arr = hp_mpack_get(m->body, 1);
	char args[8][64], *argv[8], msg[256] = "ok";
	struct hp_frame f;
	int argc = 0, code;

	if (arr != NULL && arr->type == MSGPACK_OBJECT_ARRAY &&
	    arr->via.array.size <= 8) {
		for (uint32_t i = 0; i < arr->via.array.size; i++) {
			const msgpack_object *a = &arr->via.array.ptr[i];
			if (a->type != MSGPACK_OBJECT_STR || a->via.str.size >= 64)
				break;
			memcpy(args[argc], a->via.str.ptr, a->via.str.size);
			args[argc][a->via.str.size] = '\0';
			argv[argc] = args[argc];
			argc++;
		}
	}
	/* Pack the answer; the role packs the data object itself. */
	hp_frame_begin(&f, HP_MSG_CTL_ANSWER, m->id, 0);
	if (w.r->show == NULL) {
		msgpack_pack_map(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_uint32(&f.pk, 2);
		hp_mpack_pack_cstr(&f.pk, "this worker has nothing to show yet");
		hp_chan_send(&w.sup, &f, -1);
		return;
	}
	/* The data object goes last so that show() can pack it directly. */
	msgpack_sbuffer data;
	msgpack_packer dpk;
	msgpack_sbuffer_init(&data);
	msgpack_packer_init(&dpk, &data, msgpack_sbuffer_write);
	code = w.r->show(argc, argv, &dpk, msg, sizeof(msg));
	msgpack_pack_map(&f.pk, code == 0 ? 3 : 2);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, (uint32_t)code);
	msgpack_pack_uint32(&f.pk, 2);
	hp_mpack_pack_cstr(&f.pk, msg);
	if (code == 0) {
		msgpack_pack_uint32(&f.pk, 3);
		msgpack_sbuffer_write(&f.sb, data.data, data.size);
	}
	msgpack_sbuffer_destroy(&data);
	hp_chan_send(&w.sup, &f, -1);
}

int
hp_worker_send(int sibling, struct hp_frame *f, int fd)
{
	if (sibling < 0 || sibling >= HP_W_COUNT || w.sib[sibling] == NULL ||
	    !w.sib[sibling]->ch.hello_done) {
		hp_frame_free(f);
		if (fd >= 0)
			close(fd);
		return HP_EAGAIN;
	}
	return hp_chan_send(&w.sib[sibling]->ch, f, fd);
}

int
hp_worker_send_sup(struct hp_frame *f, int fd)
{
	return hp_chan_send(&w.sup, f, fd);
}

int
hp_worker_sibling_up(int sibling)
{
	return sibling >= 0 && sibling < HP_W_COUNT && w.sib[sibling] != NULL &&
	    w.sib[sibling]->ch.hello_done;
}

const char *
hp_worker_dir(void)
{
	return w.dir;
}

const char *
hp_worker_store(void)
{
	if (w.store_fd <= 2)
		return NULL;
	snprintf(w.store_path, sizeof(w.store_path), "/proc/self/fd/%d",
	    w.store_fd);
	return w.store_path;
}

int
hp_worker_test_hooks(void)
{
	return w.test_hooks;
}

int
hp_worker_dev(void)
{
	return w.dev;
}

static void
close_all(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
sup_msg(struct hp_channel *ch, struct hp_msg *m)
{
	uint64_t v = 0;

	switch (m->type) {
	case HP_MSG_HELLO:
		log_debug("supervisor channel up");
		break;
	case HP_MSG_CONFIG:
		take_config(m);
		break;
	case HP_MSG_CTL_QUERY:
		answer_query(m);
		break;
	case HP_MSG_PING:
		if (hp_mpack_u64(m->body, 1, &v) == 0)
			send_status(HP_MSG_PONG, v);
		break;
	case HP_MSG_SHUTDOWN:
		log_info("shutting down");
		w.stopping = 1;
		if (w.r->shutdown != NULL)
			w.r->shutdown();
		uv_stop(&w.loop);
		break;
	case HP_MSG_CHANNEL_NEW:
		take_channel(m);
		break;
	case HP_MSG_LISTENER:
		take_listener(m);
		break;
	case HP_MSG_LOG_LEVEL:
		if (hp_mpack_u64(m->body, 1, &v) == 0 && v <= HP_LOG_ERR) {
			log_set_level((enum hp_log_level)v);
			log_info("log level now %s",
			    log_level_name((enum hp_log_level)v));
		}
		break;
	case HP_MSG_TEST_SIGSYS:
		if (!w.test_hooks) {
			log_warnx("TEST_SIGSYS refused: test hooks are off");
			break;
		}
		log_warnx("test hook: making a forbidden syscall");
		/* ptrace(2) is on no worker's allow-list. */
		syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
		log_errx("forbidden syscall was not stopped by the sandbox");
		_exit(3);
	default:
		if (w.r->sup_msg != NULL)
			w.r->sup_msg(m);
		break;
	}
}

static void
sup_closed(struct hp_channel *ch, int err)
{
	/* bgpd: a child that loses its parent exits. */
	if (err == HP_EEOF)
		log_errx("lost connection to the supervisor; exiting");
	else
		log_errx("supervisor channel failed: %s; exiting",
		    hp_strerror(err));
	_exit(1);
}

static void
usage(const char *role)
{
	fprintf(stderr, "usage: hpd-%s --dir DIR [--dev] [--log-level"
	    " dbg|inf|wrn|err] [--test-hooks]\n"
	    "hpd-%s is one of hpd's workers; `hpd run DIR` starts it with its"
	    " channel on fd 3.\n", role, role);
	exit(100);
}

int
hp_worker_main(int argc, char **argv, const char *role)
{
	static struct hp_worker_role plain;

	plain.name = role;
	hp_worker_run(argc, argv, &plain);
}

int
hp_worker_run(int argc, char **argv, const struct hp_worker_role *r)
{
	const char *role = r->name;
	int allow_root = 0, level = HP_LOG_INF;
	struct stat st;

	w.r = r;
	log_init(role, HP_LOG_INF);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dev") == 0)
			allow_root = w.dev = 1;
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			w.dir = argv[++i];
		else if (strcmp(argv[i], "--store-fd") == 0 && i + 1 < argc)
			w.store_fd = atoi(argv[++i]);
		else if (strcmp(argv[i], "--test-hooks") == 0)
			w.test_hooks = HPD_TEST_HOOKS;
		else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
			if ((level = log_level_parse(argv[++i])) < 0)
				usage(role);
		} else
			usage(role);
	}
	log_set_level((enum hp_log_level)level);
	if (fstat(3, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "hpd-%s: fd 3 is not the supervisor's channel;"
		    " workers are started by `hpd run DIR`, not by hand\n", role);
		exit(100);
	}
	w.role = role;
	w.self = hp_worker_lookup(role);
	for (int i = 0; i < 2; i++)
		w.lis[i].fd = -1;
	fcntl(3, F_SETFL, fcntl(3, F_GETFL) | O_NONBLOCK);
	fcntl(3, F_SETFD, FD_CLOEXEC);

	/* Timestamps read the zone file once, and jansson seeds its hash
	 * tables from /dev/urandom once: both while files are allowed. */
	tzset();
	json_object_seed(0);
	if (hp_crypto_init() != 0)
		fatalx("libsodium initialisation failed");
	if (uv_loop_init(&w.loop) != 0)
		fatalx("event loop initialisation failed");
	if (w.store_fd > 2)
		fcntl(w.store_fd, F_SETFD, FD_CLOEXEC);
	if (r->pre_sandbox != NULL && r->pre_sandbox(w.dir) != 0)
		exit(1);
	if (hp_sandbox_enter(role, allow_root, r->syscalls, r->nsyscalls) != 0)
		exit(1);
	if (hp_chan_open_policy(&w.loop, &w.sup, 3, hp_sup_policy(w.self, 0),
	    role, sup_msg, sup_closed, NULL) != 0)
		fatalx("cannot open the supervisor channel");
	log_debug("started (uid %d)", (int)getuid());

	uv_run(&w.loop, UV_RUN_DEFAULT);

	/* SHUTDOWN: close everything and leave. */
	for (int i = 0; i < HP_W_COUNT; i++)
		if (w.sib[i] != NULL)
			hp_chan_close(&w.sib[i]->ch, 0);
	for (int i = 0; i < 2; i++)
		if (w.lis[i].fd >= 0)
			close(w.lis[i].fd);
	w.sup.on_close = NULL;
	hp_chan_close(&w.sup, 0);
	uv_walk(&w.loop, close_all, NULL);
	uv_run(&w.loop, UV_RUN_DEFAULT);
	uv_loop_close(&w.loop);
	if (w.have_cfg)
		hp_config_free(&w.cfg);
	exit(0);
}
