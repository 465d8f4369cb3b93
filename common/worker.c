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
	const char *role;
	int self;
	int test_hooks;
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
	}
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
	if (w.sib[id] != NULL)
		hp_chan_close(&w.sib[id]->ch, 0);	/* superseded */
	s->id = id;
	s->generation = gen;
	int fd = m->fd;
	m->fd = -1;
	if (hp_chan_open(&w.loop, &s->ch, fd, HP_CHAN_SIBLING, w.role,
	    sibling_msg, sibling_closed, s) != 0) {
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
		hp_chan_send_empty(ch, HP_MSG_READY, 0);
		break;
	case HP_MSG_PING:
		if (hp_mpack_u64(m->body, 1, &v) == 0)
			send_status(HP_MSG_PONG, v);
		break;
	case HP_MSG_SHUTDOWN:
		log_info("shutting down");
		w.stopping = 1;
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
		/* socket(2) is on no worker's allow-list in this build. */
		syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
		log_errx("forbidden syscall was not stopped by the sandbox");
		_exit(3);
	default:
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
	fprintf(stderr, "usage: hpd-%s [--dev] [--log-level dbg|inf|wrn|err]"
	    " [--test-hooks]\n"
	    "hpd-%s is one of hpd's workers; `hpd run DIR` starts it with its"
	    " channel on fd 3.\n", role, role);
	exit(100);
}

int
hp_worker_main(int argc, char **argv, const char *role)
{
	int allow_root = 0, level = HP_LOG_INF;
	struct stat st;

	log_init(role, HP_LOG_INF);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dev") == 0)
			allow_root = 1;
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

	/* Timestamps read the zone file once; do it while files are allowed. */
	tzset();
	if (hp_crypto_init() != 0)
		fatalx("libsodium initialisation failed");
	if (uv_loop_init(&w.loop) != 0)
		fatalx("event loop initialisation failed");
	if (hp_sandbox_enter(role, allow_root) != 0)
		exit(1);
	if (hp_chan_open(&w.loop, &w.sup, 3, HP_CHAN_WORKER_TO_SUP, role,
	    sup_msg, sup_closed, NULL) != 0)
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
	exit(0);
}
