/*
 * hpd.h — the supervisor's shared declarations.
 *
 * The supervisor owns the node directory, the configuration, the keys on
 * disk, the listening sockets and the control socket; it forks and execs
 * the workers, watches them and restarts them. It never parses network
 * data.
 */
#ifndef HPD_H
#define HPD_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "channel.h"
#include "config.h"
#include "proto.h"

/* Node directory layout (DESIGN §4). */
#define HPD_CFG_REL "cfg/hp.cfg"
#define HPD_TLS_KEY_REL "cfg/tls.key"
#define HPD_TLS_CRT_REL "cfg/tls.crt"
#define HPD_CTL_SOCK_REL "ctl.sock"
#define HPD_LOCK_REL "hpd.lock"

/* node.c: the commands that work on a node directory. */
int node_new(const char *dir);
int node_check_config(const char *dir, int quiet);
int node_rekey(const char *dir);
int node_is_running(const char *dir);
/* deploy.c: put a contract bundle into a stopped node's state. */
int node_deploy(const char *dir, const char *bundle);
/* Load DIR/cfg/hp.cfg, printing every diagnostic to stderr. */
int node_load_config(const char *dir, struct hp_config *cfg);

/* tlscert.c: a self-signed certificate for the user port. */
int tls_make_self_signed(const char *keypath, const char *crtpath,
    const char *common_name);

/* users.c: per-worker system users. */
struct hpd_ids {
	uid_t uid;
	gid_t gid;
};
/* Find or create the system user "hpd-ROLE"; also the "hpd" group. */
int users_ensure(const char *role, struct hpd_ids *ids);
int users_ensure_admin_group(gid_t *gid);

/* Worker states, as shown by hpctl status. */
enum wstate {
	WS_STOPPED,	/* by the operator */
	WS_STARTING,	/* forked, no READY yet */
	WS_READY,
	WS_BACKOFF,	/* died; restart scheduled */
	WS_FAILED,	/* died too often, or by SIGSYS: waits for hpctl */
	WS_STOPPING,
};
const char *wstate_name(enum wstate s);

struct worker {
	int id;			/* enum hp_worker_id */
	const char *name;
	int binfd;		/* O_PATH handle on the executable */
	struct hpd_ids ids;
	enum wstate state;
	pid_t pid;
	int pidfd;
	uv_poll_t pidpoll;
	int pidpoll_active;
	struct hp_channel *ch;	/* heap; freed in its close callback */
	uv_pipe_t *logpipe;	/* heap; the worker's stderr */
	uv_timer_t restart_timer;
	uint64_t started_ms;	/* monotonic */
	uint64_t ready_ms;
	unsigned restarts;
	uint64_t deaths[8];	/* ring of death times (ms) */
	unsigned ndeaths;
	uint64_t backoff_ms;
	uint64_t next_start_ms;
	char last_exit[96];
	int last_exit_sigsys;
	uint64_t ping_seq;
	uint64_t pong_seq;
	unsigned missed_pings;
	uint32_t channels;	/* bitmask of siblings the worker reports up */
	uint64_t generation;	/* counts sibling channels handed out */
	int log_level;
	int want_stop;		/* stop requested: do not restart */
};

struct supervisor {
	/* UNL liveness as the consensus worker last reported it */
	int health_known;
	uint64_t unl_live, unl_n, unl_quorum;
	uv_loop_t *loop;
	char dir[4096];
	struct hp_config cfg;
	int privsep;		/* running as root with per-worker uids */
	int test_hooks;
	struct worker w[HP_W_COUNT];
	int listen_fd[2];	/* mesh, user */
	uint16_t listen_port[2];
	int ctl_fd;
	uv_poll_t ctl_poll;
	gid_t admin_gid;
	uint64_t start_ms;
	int notified_ready;
	int stopping;
	uv_timer_t heartbeat;
	uv_timer_t stop_timer;
	uv_signal_t sigterm, sigint, sighup;
	char exe_dir[4096];
	char *cfg_text;		/* hp.cfg as loaded, for consensus */
	char *cfg_text_public;	/* the same without node.private_key */
};

extern struct supervisor sv;

uint64_t now_ms(void);

/* supervise.c */
int supervise_run(const char *dir);
int worker_start(struct worker *w);
void worker_stop(struct worker *w);
void worker_restart(struct worker *w);
/* Re-read cfg/hp.cfg into the text the workers get (after a change). */
int supervise_reload_cfg_text(void);

/* patch.c: the contract's patch.cfg. */
int patch_init(const char *dir, const struct hp_config *cfg);
void patch_check(struct worker *w, const msgpack_object *body);
/* Merge over into the hp.cfg at cfgpath, validate, write atomically;
 * *out (optional) gets the new configuration. 0, or -1 with err set. */
struct json_t;
int cfg_merge_write(const char *cfgpath, struct json_t *over,
    const char *what, char *err, size_t errsize, struct hp_config *out);
void worker_send_log_level(struct worker *w, int level);
int worker_send_test_sigsys(struct worker *w);
void supervisor_shutdown(void);

/* mount.c: the statefs FUSE mount on NODE/mnt (DESIGN §2). */
/* A fresh mount for the next state worker (no-op while one waits, and in
 * development mode); 0 or HP_EIO after saying why. */
int statefs_mount(void);
/* Hand the waiting mount's /dev/fuse fd to the READY state worker. */
void statefs_send_fd(struct worker *w);
/* Detach every mount on NODE/mnt and drop a waiting fd. */
void statefs_unmount(void);

/* contract.c: spawning the sandboxed contract for the runner. */
/* Resolve the contract's uid and log directory; at start, after the
 * worker users exist. */
int contract_init(void);
/* A contract message from the runner (HP_MSG_CONTRACT_FD, ..._SPAWN, ..._KILL). */
void contract_on_msg(struct hp_msg *m);
/* SIGKILL the running contract, if any. */
void contract_kill(void);
/* The runner's channel closed: drop handed-over fds, kill the contract. */
void contract_runner_gone(void);

/* control.c */
int control_open(void);
void control_close(void);
/* A worker answered a relayed hpctl query (HP_MSG_CTL_ANSWER). */
void control_answer(uint32_t qid, const struct hp_msg *m);

/* logsink.c: worker stderr lines → supervisor stderr and log file. */
int logsink_open(const char *dir, const struct hp_config *cfg);
void logsink_line(const char *line, size_t len);
int logsink_attach(struct worker *w, int read_fd);
void logsink_close(void);

#endif
