/*
 * supervise.c — `hpd run`: start the five workers, watch them, restart
 * them, and stop them all cleanly.
 *
 * Each worker is forked and exec'ed from an O_PATH handle opened at start
 * (so a restart runs the same build as the supervisor even if the files on
 * disk were replaced), with its channel on fd 3, its stderr on a pipe the
 * supervisor reads, its own uid and gid, an empty capability bounding set
 * and PR_SET_PDEATHSIG. Deaths are seen through a pidfd. Restart policy
 * (DESIGN §2): backoff from 1 s doubling to 60 s, reset after 30 s of
 * READY; more than 5 deaths in 300 s, or one death by SIGSYS, leaves the
 * worker FAILED until `hpctl restart`. Heartbeats every 2 s; a worker that
 * misses 5 in a row is killed and restarted.
 */
#include "hpd.h"
#include "err.h"
#include "log.h"
#include "mpack.h"

#include "hpd_config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sodium.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define STABLE_MS 30000
#define TALLY_WINDOW_MS 300000
#define TALLY_MAX 5
#define HEARTBEAT_MS 2000
#define HEARTBEAT_MISSES 5
#define START_TIMEOUT_MS 10000
#define WORKER_STOP_MS 3000
#define SHUTDOWN_KILL_MS 3500

struct supervisor sv;

uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *
wstate_name(enum wstate s)
{
	static const char *const names[] = { "stopped", "starting", "ready",
	    "backoff", "failed", "stopping" };
	return names[s];
}

static void check_all_exited(void);
static void handout_channels(struct worker *w);

/* ---- channel to a worker ---- */

static uint32_t
channel_mask(const msgpack_object *body)
{
	const msgpack_object *arr = hp_mpack_get(body, 2);
	uint32_t mask = 0;
	char name[32];

	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY)
		return 0;
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *o = &arr->via.array.ptr[i];
		if (o->type != MSGPACK_OBJECT_STR ||
		    o->via.str.size >= sizeof(name))
			continue;
		memcpy(name, o->via.str.ptr, o->via.str.size);
		name[o->via.str.size] = '\0';
		int id = hp_worker_lookup(name);
		if (id >= 0)
			mask |= 1u << id;
	}
	return mask;
}

static void
send_listener(struct worker *w, int idx, const char *name)
{
	struct hp_frame f;
	int fd;

	if (sv.listen_fd[idx] < 0 || (fd = dup(sv.listen_fd[idx])) < 0)
		return;
	hp_frame_begin(&f, HP_MSG_LISTENER, 0, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 1);
	hp_mpack_pack_cstr(&f.pk, name);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, sv.listen_port[idx]);
	hp_chan_send(w->ch, &f, fd);
}

static void
send_config(struct worker *w)
{
	const char *text = w->id == HP_W_CONSENSUS ? sv.cfg_text :
	    sv.cfg_text_public;
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_CONFIG, 0, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	hp_mpack_pack_cstr(&f.pk, text);
	hp_chan_send(w->ch, &f, -1);
}

static void
maybe_notify_ready(void)
{
	for (int i = 0; i < HP_W_COUNT; i++)
		if (sv.w[i].state != WS_READY)
			return;
	if (!sv.notified_ready) {
		sv.notified_ready = 1;
		log_info("all %d workers ready (%llu ms after start)",
		    HP_W_COUNT, (unsigned long long)(now_ms() - sv.start_ms));
		sd_notify(0, "READY=1\nSTATUS=all workers ready");
	}
}

static void
on_worker_msg(struct hp_channel *ch, struct hp_msg *m)
{
	struct worker *w = ch->data;

	if (w == NULL)
		return;
	switch (m->type) {
	case HP_MSG_HELLO:
		if (strcmp(ch->peer_role, w->name) != 0) {
			log_warnx("worker %s greets as %s; closing", w->name,
			    ch->peer_role);
			hp_chan_close(ch, HP_EPROTO);
			break;
		}
		send_config(w);
		break;
	case HP_MSG_CTL_ANSWER:
		control_answer(m->id, m);
		break;
	case HP_MSG_READY:
		if (w->state != WS_STARTING)
			break;
		w->state = WS_READY;
		w->ready_ms = now_ms();
		log_info("%s ready (pid %d, uid %d)", w->name, (int)w->pid,
		    (int)w->ids.uid);
		if (w->id == HP_W_PEER)
			send_listener(w, 0, "mesh");
		if (w->id == HP_W_GATEWAY)
			send_listener(w, 1, "user");
		if (w->id == HP_W_STATE)
			statefs_send_fd(w);
		if (w->log_level >= 0)
			worker_send_log_level(w, w->log_level);
		handout_channels(w);
		maybe_notify_ready();
		break;
	case HP_MSG_PONG:
	case HP_MSG_STATUS:
		if (m->type == HP_MSG_PONG) {
			uint64_t seq = 0;
			if (hp_mpack_u64(m->body, 1, &seq) == 0 &&
			    seq <= w->ping_seq)
				w->pong_seq = seq;
			w->missed_pings = 0;
		}
		w->channels = channel_mask(m->body);
		break;
	case HP_MSG_PATCH_CHECK:
		if (w->id == HP_W_CONSENSUS)
			patch_check(w, m->body);
		break;
	case HP_MSG_CONS_HEALTH:
		if (w->id == HP_W_CONSENSUS) {
			uint64_t v[3] = { 0, 0, 0 };
			for (int i = 0; i < 3; i++)
				(void)hp_mpack_u64(m->body, (uint64_t)i + 1,
				    &v[i]);
			sv.unl_live = v[0];
			sv.unl_n = v[1];
			sv.unl_quorum = v[2];
			sv.health_known = 1;
		}
		break;
	default:
		if (w->id == HP_W_RUNNER)
			contract_on_msg(m);
		break;
	}
}

static void
on_worker_chan_closed(struct hp_channel *ch, int err)
{
	struct worker *w = ch->data;

	if (w != NULL && w->ch == ch) {
		w->ch = NULL;
		if (w->id == HP_W_RUNNER)
			contract_runner_gone();
		if (err != 0 && err != HP_EEOF)
			log_warnx("channel to %s closed: %s", w->name,
			    hp_strerror(err));
	}
	free(ch);
}

/* Give w a fresh channel to each linked sibling that is ready. */
static void
handout_channels(struct worker *w)
{
	for (int i = 0; i < HP_W_COUNT; i++) {
		struct worker *s = &sv.w[i];
		struct hp_frame f;
		int sp[2];

		if (!hp_workers_linked(w->id, i) || s->state != WS_READY ||
		    s->ch == NULL || w->ch == NULL)
			continue;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0, sp) != 0) {
			log_warn("socketpair for %s-%s", w->name, s->name);
			continue;
		}
		w->generation++;
		s->generation++;
		hp_frame_begin(&f, HP_MSG_CHANNEL_NEW, 0, 0);
		msgpack_pack_map(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, 1);
		hp_mpack_pack_cstr(&f.pk, s->name);
		msgpack_pack_uint32(&f.pk, 2);
		msgpack_pack_uint64(&f.pk, w->generation);
		hp_chan_send(w->ch, &f, sp[0]);
		hp_frame_begin(&f, HP_MSG_CHANNEL_NEW, 0, 0);
		msgpack_pack_map(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, 1);
		hp_mpack_pack_cstr(&f.pk, w->name);
		msgpack_pack_uint32(&f.pk, 2);
		msgpack_pack_uint64(&f.pk, s->generation);
		hp_chan_send(s->ch, &f, sp[1]);
		log_debug("channel %s <-> %s handed out", w->name, s->name);
	}
}

/* ---- starting ---- */

static void
drop_bounding_set(void)
{
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL)
			break;
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

static void
child_fail(const char *what)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "hpd: worker setup failed: %s: %s\n",
	    what, strerror(errno));
	(void)!write(2, buf, (size_t)n);
	_exit(126);
}

/* Runs in the forked child; never returns. */
static void
child_exec(struct worker *w, int chfd, int logfd, pid_t parent)
{
	char lvl[8];
	char *argv[12];
	char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	const char *store = w->id == HP_W_CONSENSUS ? "ledger" :
	    w->id == HP_W_STATE ? "state" : NULL;
	int argc = 0, devnull;
	sigset_t all;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if ((devnull = open("/dev/null", O_RDWR)) < 0)
		child_fail("open /dev/null");
	if (dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
		child_fail("dup2");
	if (chfd == 3) {
		if (fcntl(3, F_SETFD, 0) != 0)
			child_fail("fcntl");
	} else if (dup2(chfd, 3) != 3)
		child_fail("dup2");
	/* Keep the executable's handle as fd 4. */
	if (dup2(w->binfd, 4) != 4 || fcntl(4, F_SETFD, FD_CLOEXEC) != 0)
		child_fail("dup2");
	/*
	 * A worker that owns a store gets its directory as fd 5 (O_PATH), so
	 * it needs no search permission on the node directory above it.
	 */
	if (store != NULL) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", sv.dir, store);
		int sfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (sfd < 0 || dup2(sfd, 5) != 5)
			child_fail(path);
	}
	/*
	 * The gateway gets the user port's certificate and key as fds 5 and
	 * 6, opened here as root: it cannot reach cfg/ under its own uid.
	 */
	if (w->id == HP_W_GATEWAY) {
		char crt[PATH_MAX], key[PATH_MAX];
		snprintf(crt, sizeof(crt), "%s/%s", sv.dir, HPD_TLS_CRT_REL);
		snprintf(key, sizeof(key), "%s/%s", sv.dir, HPD_TLS_KEY_REL);
		int cfd = open(crt, O_RDONLY | O_CLOEXEC);
		if (cfd < 0 || dup2(cfd, 5) != 5 || fcntl(5, F_SETFD, 0) != 0)
			child_fail(crt);
		int kfd = open(key, O_RDONLY | O_CLOEXEC);
		if (kfd < 0 || dup2(kfd, 6) != 6 || fcntl(6, F_SETFD, 0) != 0)
			child_fail(key);
	}
	if (syscall(SYS_close_range, store != NULL ? 6 :
	    w->id == HP_W_GATEWAY ? 7 : 5, ~0U, 0) != 0)
		child_fail("close_range");

	if (sv.privsep) {
		drop_bounding_set();
		if (setgroups(1, &w->ids.gid) != 0)
			child_fail("setgroups");
		if (setresgid(w->ids.gid, w->ids.gid, w->ids.gid) != 0)
			child_fail("setresgid");
		if (setresuid(w->ids.uid, w->ids.uid, w->ids.uid) != 0)
			child_fail("setresuid");
		if (getuid() == 0 || geteuid() == 0 || setuid(0) == 0)
			child_fail("uid drop did not stick");
	}
	/* After the credential change, which clears it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		child_fail("PR_SET_PDEATHSIG");
	if (getppid() != parent)
		_exit(1);

	argv[argc++] = (char *)w->name;
	argv[argc++] = "--dir";
	argv[argc++] = sv.dir;
	if (store != NULL) {
		argv[argc++] = "--store-fd";
		argv[argc++] = "5";
	}
	snprintf(lvl, sizeof(lvl), "%s", log_level_name(
	    (enum hp_log_level)(w->log_level >= 0 ? w->log_level :
	    sv.cfg.log.log_level)));
	argv[argc++] = "--log-level";
	argv[argc++] = lvl;
	if (!sv.privsep)
		argv[argc++] = "--dev";
	if (sv.test_hooks)
		argv[argc++] = "--test-hooks";
	argv[argc] = NULL;
	syscall(SYS_execveat, 4, "", argv, envp, AT_EMPTY_PATH);
	child_fail("execveat");
}

static void pid_exit_cb(uv_poll_t *h, int status, int events);

int
worker_start(struct worker *w)
{
	int sp[2], lp[2];
	pid_t pid, parent = getpid();

	/* Every state worker gets a fresh FUSE mount (mount.c). */
	if (w->id == HP_W_STATE && statefs_mount() != 0)
		return HP_EIO;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
	    sp) != 0)
		return HP_EIO;
	if (pipe2(lp, O_CLOEXEC) != 0) {
		close(sp[0]);
		close(sp[1]);
		return HP_EIO;
	}
	/* No atfork handlers in a child that only sets up fds and execs
	 * (libuv's would reopen its signal pipe over fds by number). */
	if ((pid = _Fork()) < 0) {
		log_warn("fork for %s", w->name);
		close(sp[0]); close(sp[1]); close(lp[0]); close(lp[1]);
		return HP_EIO;
	}
	if (pid == 0)
		child_exec(w, sp[1], lp[1], parent);
	close(sp[1]);
	close(lp[1]);

	w->pid = pid;
	w->state = WS_STARTING;
	w->started_ms = now_ms();
	w->ready_ms = 0;
	w->ping_seq = w->pong_seq = 0;
	w->missed_pings = 0;
	w->channels = 0;
	w->want_stop = 0;
	logsink_attach(w, lp[0]);

	if ((w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0)
		fatal("pidfd_open for %s", w->name);
	fcntl(w->pidfd, F_SETFD, FD_CLOEXEC);
	uv_poll_init(sv.loop, &w->pidpoll, w->pidfd);
	w->pidpoll.data = w;
	uv_poll_start(&w->pidpoll, UV_READABLE, pid_exit_cb);
	w->pidpoll_active = 1;

	if ((w->ch = calloc(1, sizeof(*w->ch))) == NULL)
		fatalx("out of memory");
	if (hp_chan_open_policy(sv.loop, w->ch, sp[0], hp_sup_policy(w->id, 1),
	    "hpd", on_worker_msg, on_worker_chan_closed, w) != 0) {
		free(w->ch);
		w->ch = NULL;
	}
	log_debug("started %s (pid %d)", w->name, (int)pid);
	return 0;
}

/* ---- deaths and restarts ---- */

static void
describe_exit(const siginfo_t *si, char *buf, size_t size, int *sigsys)
{
	*sigsys = 0;
	if (si->si_code == CLD_EXITED) {
		snprintf(buf, size, "exit code %d", si->si_status);
		return;
	}
	if (si->si_status == SIGSYS) {
		*sigsys = 1;
		snprintf(buf, size, "signal %d (SIGSYS: forbidden syscall,"
		    " killed by seccomp)", si->si_status);
		return;
	}
	snprintf(buf, size, "signal %d (SIG%s)%s", si->si_status,
	    sigabbrev_np(si->si_status) ? sigabbrev_np(si->si_status) : "?",
	    si->si_code == CLD_DUMPED ? ", core dumped" : "");
}

static void
restart_timer_cb(uv_timer_t *t)
{
	struct worker *w = t->data;

	if (w->state != WS_BACKOFF || sv.stopping)
		return;
	log_info("restarting %s (restart %u)", w->name, w->restarts + 1);
	w->restarts++;
	if (worker_start(w) != 0) {
		w->state = WS_BACKOFF;
		uv_timer_start(&w->restart_timer, restart_timer_cb,
		    w->backoff_ms, 0);
	}
}

static unsigned
deaths_in_window(struct worker *w, uint64_t now)
{
	unsigned n = 0, have = w->ndeaths < 8 ? w->ndeaths : 8;

	for (unsigned i = 0; i < have; i++)
		if (now - w->deaths[i] <= TALLY_WINDOW_MS)
			n++;
	return n;
}

static void
pidpoll_closed(uv_handle_t *h)
{
	struct worker *w = h->data;

	close(w->pidfd);
	w->pidfd = -1;
	w->pidpoll_active = 0;
	check_all_exited();
}

static void
pid_exit_cb(uv_poll_t *h, int status, int events)
{
	struct worker *w = h->data;
	siginfo_t si;
	uint64_t now = now_ms();

	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG) != 0 ||
	    si.si_pid == 0)
		return;
	uv_poll_stop(&w->pidpoll);
	describe_exit(&si, w->last_exit, sizeof(w->last_exit),
	    &w->last_exit_sigsys);
	if (w->ch != NULL) {
		w->ch->data = NULL;
		hp_chan_close(w->ch, 0);
		w->ch = NULL;
	}
	w->channels = 0;
	w->pid = 0;
	/* The pid handle closes asynchronously; its callback frees the fd. */
	uv_close((uv_handle_t *)&w->pidpoll, pidpoll_closed);

	if (sv.stopping || w->want_stop) {
		uv_timer_stop(&w->restart_timer);
		log_info("%s stopped (%s)", w->name, w->last_exit);
		w->state = WS_STOPPED;
		if (w->want_stop == 2) {	/* hpctl restart */
			w->want_stop = 0;
			w->state = WS_BACKOFF;
			uv_timer_start(&w->restart_timer, restart_timer_cb, 0, 0);
		}
		return;
	}

	w->deaths[w->ndeaths++ % 8] = now;
	if (w->last_exit_sigsys) {
		log_errx("SECURITY: %s (pid %d) was killed by the sandbox: %s;"
		    " it stays failed until `hpctl restart %s`", w->name,
		    (int)si.si_pid, w->last_exit, w->name);
		w->state = WS_FAILED;
		return;
	}
	log_warnx("%s (pid %d) died: %s", w->name, (int)si.si_pid,
	    w->last_exit);
	if (deaths_in_window(w, now) > TALLY_MAX) {
		log_errx("%s died %u times in %d s; it stays failed until"
		    " `hpctl restart %s`", w->name, deaths_in_window(w, now),
		    TALLY_WINDOW_MS / 1000, w->name);
		w->state = WS_FAILED;
		return;
	}
	if (w->ready_ms != 0 && now - w->ready_ms >= STABLE_MS)
		w->backoff_ms = BACKOFF_MIN_MS;
	uint64_t delay = w->backoff_ms;
	w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
	    w->backoff_ms * 2;
	w->next_start_ms = now + delay;
	w->state = WS_BACKOFF;
	log_info("%s restarts in %llu ms", w->name, (unsigned long long)delay);
	uv_timer_start(&w->restart_timer, restart_timer_cb, delay, 0);
}

static void
kill_worker(struct worker *w, int sig)
{
	if (w->pidfd >= 0 && w->pid > 0)
		syscall(SYS_pidfd_send_signal, w->pidfd, sig, NULL, 0);
}

static void
stop_timeout_cb(uv_timer_t *t)
{
	struct worker *w = t->data;

	if (w->state == WS_STOPPING && w->pid > 0) {
		log_warnx("%s did not stop within %d ms; killing it", w->name,
		    WORKER_STOP_MS);
		kill_worker(w, SIGKILL);
	}
}

static void
worker_request_stop(struct worker *w, int then)
{
	uv_timer_stop(&w->restart_timer);
	if (w->pid == 0) {
		w->state = WS_STOPPED;
		if (then == 2) {
			w->state = WS_BACKOFF;
			uv_timer_start(&w->restart_timer, restart_timer_cb, 0, 0);
		}
		return;
	}
	w->want_stop = then;
	w->state = WS_STOPPING;
	if (w->ch != NULL)
		hp_chan_send_empty(w->ch, HP_MSG_SHUTDOWN, 0);
	else
		kill_worker(w, SIGTERM);
	uv_timer_start(&w->restart_timer, stop_timeout_cb, WORKER_STOP_MS, 0);
}

void
worker_stop(struct worker *w)
{
	if (w->state == WS_STOPPED)
		return;
	worker_request_stop(w, 1);
}

void
worker_restart(struct worker *w)
{
	/* An operator's restart clears the failed state and the tally. */
	w->ndeaths = 0;
	w->backoff_ms = BACKOFF_MIN_MS;
	worker_request_stop(w, 2);
}

void
worker_send_log_level(struct worker *w, int level)
{
	struct hp_frame f;

	w->log_level = level;
	if (w->ch == NULL || w->state != WS_READY)
		return;
	hp_frame_begin(&f, HP_MSG_LOG_LEVEL, 0, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, (uint32_t)level);
	hp_chan_send(w->ch, &f, -1);
}

int
worker_send_test_sigsys(struct worker *w)
{
	if (!sv.test_hooks)
		return HP_EINVAL;
	if (w->ch == NULL || w->state != WS_READY)
		return HP_EAGAIN;
	return hp_chan_send_empty(w->ch, HP_MSG_TEST_SIGSYS, 0);
}

/* ---- heartbeats ---- */

static void
heartbeat_cb(uv_timer_t *t)
{
	uint64_t now = now_ms();

	for (int i = 0; i < HP_W_COUNT; i++) {
		struct worker *w = &sv.w[i];
		struct hp_frame f;

		if (w->state == WS_STARTING &&
		    now - w->started_ms > START_TIMEOUT_MS) {
			log_warnx("%s not ready after %d ms; killing it",
			    w->name, START_TIMEOUT_MS);
			kill_worker(w, SIGKILL);
			continue;
		}
		if (w->state != WS_READY || w->ch == NULL)
			continue;
		if (w->ping_seq > w->pong_seq &&
		    ++w->missed_pings >= HEARTBEAT_MISSES) {
			log_warnx("%s missed %d heartbeats; killing it",
			    w->name, HEARTBEAT_MISSES);
			kill_worker(w, SIGKILL);
			continue;
		}
		hp_frame_begin(&f, HP_MSG_PING, 0, 0);
		msgpack_pack_map(&f.pk, 1);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_uint64(&f.pk, ++w->ping_seq);
		hp_chan_send(w->ch, &f, -1);
	}
	if (sd_watchdog_enabled(0, NULL) > 0)
		sd_notify(0, "WATCHDOG=1");
}

/* ---- shutdown ---- */

static void
check_all_exited(void)
{
	if (!sv.stopping)
		return;
	for (int i = 0; i < HP_W_COUNT; i++)
		if (sv.w[i].pid > 0 || sv.w[i].pidpoll_active)
			return;
	uv_stop(sv.loop);
}

static void
shutdown_kill_cb(uv_timer_t *t)
{
	for (int i = 0; i < HP_W_COUNT; i++)
		if (sv.w[i].pid > 0) {
			log_warnx("%s still running; killing it", sv.w[i].name);
			kill_worker(&sv.w[i], SIGKILL);
		}
}

void
supervisor_shutdown(void)
{
	if (sv.stopping)
		return;
	sv.stopping = 1;
	log_info("stopping");
	sd_notify(0, "STOPPING=1");
	control_close();
	uv_timer_stop(&sv.heartbeat);
	for (int i = 0; i < HP_W_COUNT; i++) {
		struct worker *w = &sv.w[i];
		uv_timer_stop(&w->restart_timer);
		if (w->pid > 0) {
			w->state = WS_STOPPING;
			if (w->ch != NULL)
				hp_chan_send_empty(w->ch, HP_MSG_SHUTDOWN, 0);
			else
				kill_worker(w, SIGTERM);
		} else
			w->state = WS_STOPPED;
	}
	uv_timer_start(&sv.stop_timer, shutdown_kill_cb, SHUTDOWN_KILL_MS, 0);
	check_all_exited();
}

static void
signal_cb(uv_signal_t *s, int signum)
{
	if (signum == SIGHUP) {
		log_info("SIGHUP: configuration reload is not supported yet;"
		    " restart hpd to apply changes");
		return;
	}
	log_info("received %s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	supervisor_shutdown();
}

/* ---- setup ---- */

static int
open_lock(const char *dir)
{
	char path[PATH_MAX], buf[32];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, HPD_LOCK_REL);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		fprintf(stderr, "hpd run: cannot open %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fprintf(stderr, "hpd run: another hpd is already running on %s"
		    " (pid %s); stop it first (hpctl -d %s status shows it)\n",
		    dir, buf[0] ? buf : "?", dir);
		close(fd);
		return -1;
	}
	if (ftruncate(fd, 0) == 0) {
		int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
		(void)!pwrite(fd, buf, (size_t)n, 0);
	}
	return fd;
}

static int
open_binaries(void)
{
	char exe[PATH_MAX], path[PATH_MAX + 32];
	const char *dirs[3];
	int nd = 0;
	ssize_t n;

	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) < 0)
		return -1;
	exe[n] = '\0';
	snprintf(sv.exe_dir, sizeof(sv.exe_dir), "%s", dirname(exe));
	if (getenv("HPD_LIBEXECDIR") != NULL)
		dirs[nd++] = getenv("HPD_LIBEXECDIR");
	dirs[nd++] = sv.exe_dir;
	dirs[nd++] = HPD_LIBEXECDIR;
	for (int i = 0; i < HP_W_COUNT; i++) {
		struct worker *w = &sv.w[i];
		w->binfd = -1;
		for (int d = 0; d < nd && w->binfd < 0; d++) {
			snprintf(path, sizeof(path), "%s/hpd-%s", dirs[d],
			    w->name);
			if (access(path, X_OK) == 0)
				w->binfd = open(path, O_PATH | O_CLOEXEC);
		}
		if (w->binfd < 0) {
			fprintf(stderr, "hpd run: cannot find the worker program"
			    " hpd-%s in %s or %s; reinstall hpd (or set"
			    " HPD_LIBEXECDIR)\n", w->name, sv.exe_dir,
			    HPD_LIBEXECDIR);
			return -1;
		}
	}
	return 0;
}

static int
bind_listener(int idx, const char *field, uint16_t port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6,
	    .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET,
	    .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	int one = 1, zero = 0, fd;

	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) != 0) {
			if (errno == EADDRINUSE)
				goto inuse;
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
		if (fd < 0)
			goto fail;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) != 0)
			goto inuse;
	}
	if (listen(fd, 128) != 0)
		goto fail;
	sv.listen_fd[idx] = fd;
	sv.listen_port[idx] = port;
	return 0;
inuse:
	fprintf(stderr, "hpd run: cannot listen on %s %u: %s; another program"
	    " (or node) uses this port: choose another %s in %s/%s\n", field,
	    port, strerror(errno), field, sv.dir, HPD_CFG_REL);
	close(fd);
	return -1;
fail:
	fprintf(stderr, "hpd run: cannot listen on %s %u: %s\n", field, port,
	    strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static void
hand_over(const char *store, const struct worker *w)
{
	char path[PATH_MAX], file[PATH_MAX + 300];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", sv.dir, store);
	if (chown(path, w->ids.uid, w->ids.gid) != 0 || chmod(path, 0700) != 0)
		log_warn("cannot hand %s to hpd-%s", path, w->name);
	if ((d = opendir(path)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
		if (lchown(file, w->ids.uid, w->ids.gid) != 0)
			log_warn("cannot hand %s to hpd-%s", file, w->name);
	}
	closedir(d);
}

static int
prepare_privsep(void)
{
	if (geteuid() != 0) {
		sv.privsep = 0;
		for (int i = 0; i < HP_W_COUNT; i++) {
			sv.w[i].ids.uid = geteuid();
			sv.w[i].ids.gid = getegid();
		}
		log_warnx("running as uid %d, not root: development mode."
		    " Workers run under this uid without separate users;"
		    " seccomp and no_new_privs still apply. Run as root for"
		    " full privilege separation.", (int)geteuid());
		return 0;
	}
	sv.privsep = 1;
	for (int i = 0; i < HP_W_COUNT; i++)
		if (users_ensure(sv.w[i].name, &sv.w[i].ids) != 0)
			return -1;
	if (users_ensure_admin_group(&sv.admin_gid) != 0)
		sv.admin_gid = 0;
	/* Each store belongs to the one worker that owns it (DESIGN §4),
	 * files included (hpd deploy writes the state store as root). */
	hand_over("ledger", &sv.w[HP_W_CONSENSUS]);
	hand_over("state", &sv.w[HP_W_STATE]);
	return 0;
}

/*
 * The peer worker cannot resolve names in its sandbox: give it
 * mesh.known_peers with host names replaced by their first address.
 */
static void
resolve_known_peers(json_t *root)
{
	json_t *peers = json_object_get(json_object_get(root, "mesh"),
	    "known_peers");
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	char host[256], ip[INET6_ADDRSTRLEN], out[300];
	unsigned char probe[sizeof(struct in6_addr)];
	json_t *v;
	size_t i;

	json_array_foreach(peers, i, v) {
		const char *s = json_string_value(v), *colon;
		if (s == NULL || (colon = strrchr(s, ':')) == NULL ||
		    (size_t)(colon - s) >= sizeof(host))
			continue;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		if (inet_pton(AF_INET, host, probe) == 1 ||
		    inet_pton(AF_INET6, host, probe) == 1)
			continue;
		if (getaddrinfo(host, NULL, &hints, &ai) != 0) {
			log_warnx("mesh.known_peers: cannot resolve %s; it will"
			    " not be dialled", host);
			continue;
		}
		if (ai->ai_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)
			    ai->ai_addr)->sin_addr, ip, sizeof(ip));
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)
			    ai->ai_addr)->sin6_addr, ip, sizeof(ip));
		freeaddrinfo(ai);
		snprintf(out, sizeof(out), "%s%s", ip, colon);
		log_info("mesh.known_peers: %s is %s", s, out);
		json_array_set_new(peers, i, json_string(out));
	}
}

/* The configuration as the workers get it (supervisor never re-parses it). */
static int
load_cfg_text(void)
{
	char path[PATH_MAX];
	json_error_t err;
	json_t *root, *node;

	snprintf(path, sizeof(path), "%s/%s", sv.dir, HPD_CFG_REL);
	if ((root = json_load_file(path, JSON_REJECT_DUPLICATES, &err)) == NULL)
		return -1;
	resolve_known_peers(root);
	sv.cfg_text = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT);
	if ((node = json_object_get(root, "node")) != NULL)
		json_object_del(node, "private_key");
	sv.cfg_text_public = json_dumps(root, JSON_PRESERVE_ORDER |
	    JSON_COMPACT);
	json_decref(root);
	return sv.cfg_text && sv.cfg_text_public ? 0 : -1;
}

int
supervise_reload_cfg_text(void)
{
	if (sv.cfg_text != NULL)
		sodium_memzero(sv.cfg_text, strlen(sv.cfg_text));
	free(sv.cfg_text);
	free(sv.cfg_text_public);
	sv.cfg_text = sv.cfg_text_public = NULL;
	return load_cfg_text();
}

static void
ensure_stdio(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
			if (open("/dev/null", O_RDWR) != fd)
				_exit(1);
}

int
supervise_run(const char *dir)
{
	static uv_loop_t loop;
	int lockfd;

	ensure_stdio();
	if (realpath(dir, sv.dir) == NULL) {
		fprintf(stderr, "hpd run: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	for (int i = 0; i < HP_W_COUNT; i++) {
		sv.w[i].id = i;
		sv.w[i].name = hp_worker_names[i];
		sv.w[i].pidfd = -1;
		sv.w[i].log_level = -1;
		sv.w[i].backoff_ms = BACKOFF_MIN_MS;
		strcpy(sv.w[i].last_exit, "-");
	}
	sv.listen_fd[0] = sv.listen_fd[1] = -1;
	sv.ctl_fd = -1;
	sv.start_ms = now_ms();
	sv.test_hooks = HPD_TEST_HOOKS && getenv("HPD_TEST_HOOKS") != NULL &&
	    strcmp(getenv("HPD_TEST_HOOKS"), "1") == 0;

	if (node_load_config(sv.dir, &sv.cfg) != 0)
		return 1;
	if ((lockfd = open_lock(sv.dir)) < 0)
		return 1;
	if (load_cfg_text() != 0) {
		fprintf(stderr, "hpd run: cannot read %s/%s again\n", sv.dir,
		    HPD_CFG_REL);
		return 1;
	}
	log_init("hpd", (enum hp_log_level)sv.cfg.log.log_level);
	logsink_open(sv.dir, &sv.cfg);
	log_info("hpd %s starting on %s (contract %s, public key %s)",
	    HPD_VERSION, sv.dir, sv.cfg.contract.id,
	    sv.cfg.node.public_key_hex);
	if (sv.test_hooks)
		log_warnx("test hooks are on (HPD_TEST_HOOKS=1): never in"
		    " production");
	if (patch_init(sv.dir, &sv.cfg) != 0)
		log_warnx("patch.cfg could not be brought up to date; the"
		    " contract may see an old one");
	if (open_binaries() != 0 || prepare_privsep() != 0 ||
	    contract_init() != 0 || statefs_mount() != 0)
		return 1;
	if (sv.cfg.mesh.listen &&
	    bind_listener(0, "mesh.port", sv.cfg.mesh.port) != 0)
		return 1;
	if (sv.cfg.user.listen &&
	    bind_listener(1, "user.port", sv.cfg.user.port) != 0)
		return 1;
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);

	if (uv_loop_init(&loop) != 0)
		fatalx("event loop initialisation failed");
	sv.loop = &loop;
	if (control_open() != 0)
		return 1;
	uv_signal_init(sv.loop, &sv.sigterm);
	uv_signal_init(sv.loop, &sv.sigint);
	uv_signal_init(sv.loop, &sv.sighup);
	uv_signal_start(&sv.sigterm, signal_cb, SIGTERM);
	uv_signal_start(&sv.sigint, signal_cb, SIGINT);
	uv_signal_start(&sv.sighup, signal_cb, SIGHUP);
	uv_timer_init(sv.loop, &sv.heartbeat);
	uv_timer_init(sv.loop, &sv.stop_timer);
	uv_timer_start(&sv.heartbeat, heartbeat_cb, HEARTBEAT_MS, HEARTBEAT_MS);

	for (int i = 0; i < HP_W_COUNT; i++) {
		uv_timer_init(sv.loop, &sv.w[i].restart_timer);
		sv.w[i].restart_timer.data = &sv.w[i];
		if (worker_start(&sv.w[i]) != 0)
			fatalx("cannot start %s", sv.w[i].name);
	}

	uv_run(sv.loop, UV_RUN_DEFAULT);

	statefs_unmount();
	log_info("stopped");
	logsink_close();
	hp_config_free(&sv.cfg);
	if (sv.cfg_text != NULL)
		sodium_memzero(sv.cfg_text, strlen(sv.cfg_text));
	free(sv.cfg_text);
	free(sv.cfg_text_public);
	close(lockfd);
	return 0;
}
