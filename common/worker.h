/*
 * worker.h — the life of a worker process, shared by all five.
 *
 * hp_worker_run() checks that fd 3 is the supervisor's channel, enters the
 * sandbox, exchanges HELLO, waits for the supervisor's CONFIG, calls the
 * role's init hook, reports READY, answers heartbeats with its sibling
 * channels, accepts fresh sibling channels and listening sockets, relays
 * hpctl queries to the role, applies log levels, and exits cleanly on
 * SHUTDOWN. End of file on fd 3 means the supervisor is gone: the worker
 * exits at once.
 *
 * Every hook is optional. Hooks run on the worker's one libuv loop.
 */
#ifndef HP_WORKER_H
#define HP_WORKER_H

#include <stddef.h>

#include <msgpack.h>
#include <uv.h>

#include "channel.h"
#include "config.h"

struct hp_worker_role {
	const char *name;
	/* Extra syscalls this role's seccomp allow-list needs (SCMP_SYS). */
	const int *syscalls;
	size_t nsyscalls;
	/* Before the sandbox: open what must be opened while files are
	 * reachable (the ledger store, ...). dir is the node directory. */
	int (*pre_sandbox)(const char *dir);
	/* cfg stays valid (owned by the worker core) until exit. Non-zero
	 * return: the worker exits with status 1. */
	int (*init)(uv_loop_t *loop, const struct hp_config *cfg);
	/* A frame from sibling `from` (enum hp_worker_id), already checked
	 * against the channel's allow-list. Keep m->fd by setting it to -1. */
	void (*sibling_msg)(int from, struct hp_msg *m);
	void (*sibling_up)(int id);
	void (*sibling_down)(int id);
	/* A listening socket from the supervisor; the role owns fd. */
	void (*listener)(const char *name, int fd);
	/*
	 * hpctl show ARGS: pack one data object into pk and return 0, or
	 * write a message into msg and return 1 (failed) or 100 (usage)
	 * without packing anything.
	 */
	int (*show)(int argc, char **argv, msgpack_packer *pk, char *msg,
	    size_t msgsize);
	/* A frame from the supervisor that the worker core does not handle
	 * itself, already checked against the channel's allow-list
	 * (hp_sup_policy). Keep m->fd by setting it to -1. */
	void (*sup_msg)(struct hp_msg *m);
	/* SHUTDOWN received: stop timers, flush, close handles. */
	void (*shutdown)(void);
};

/* Never returns. */
int hp_worker_run(int argc, char **argv, const struct hp_worker_role *role)
    __attribute__((__noreturn__));

/* Kept for workers with no hooks yet. */
int hp_worker_main(int argc, char **argv, const char *role)
    __attribute__((__noreturn__));

/* Send a frame to a sibling; takes ownership of f and fd. HP_EAGAIN when
 * the sibling is not connected right now. */
int hp_worker_send(int sibling, struct hp_frame *f, int fd);
int hp_worker_sibling_up(int sibling);
/* Send a frame to the supervisor; takes ownership of f and fd. */
int hp_worker_send_sup(struct hp_frame *f, int fd);

/* The node directory given by the supervisor (--dir). */
const char *hp_worker_dir(void);
/* The worker's own store directory as a path that needs no search
 * permission above it (/proc/self/fd/N, from --store-fd), or NULL. */
const char *hp_worker_store(void);
/* Whether the supervisor started this worker with --test-hooks (test
 * builds with HPD_TEST_HOOKS=1) or --dev (development mode, not root). */
int hp_worker_test_hooks(void);
int hp_worker_dev(void);

#endif
