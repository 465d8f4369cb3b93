/*
 * hpd-runner — the runner worker: it runs the contract after each closed
 * ledger (runner.h), with the state worker's read-write session and the
 * supervisor spawning the sandboxed process, and answers hpctl show runner.
 */
#include "log.h"
#include "proto.h"
#include "runner.h"
#include "worker.h"

#include <seccomp.h>
#include <stdio.h>
#include <string.h>

static int
init(uv_loop_t *loop, const struct hp_config *cfg)
{
	return runner_init(loop, cfg);
}

static void
sibling_msg(int from, struct hp_msg *m)
{
	if (from == HP_W_CONSENSUS && m->type == HP_MSG_RUN)
		runner_on_run(m->body);
	else if (from == HP_W_CONSENSUS && m->type == HP_MSG_NPL_IN)
		runner_on_npl(m->body);
	else if (from == HP_W_STATE && m->type == HP_MSG_STATE_SESSION_RES)
		runner_on_session(m);
	else if (from == HP_W_GATEWAY && m->type == HP_MSG_READ_REQ)
		runner_on_read(m);
}

static void
sibling_down(int id)
{
	if (id == HP_W_STATE)
		runner_state_down();
}

static void
sup_msg(struct hp_msg *m)
{
	if (m->type == HP_MSG_CONTRACT_SPAWNED ||
	    m->type == HP_MSG_CONTRACT_EXITED)
		runner_on_sup(m);
}

static int
show(int argc, char **argv, msgpack_packer *pk, char *msg, size_t msgsize)
{
	if (argc == 1 && strcmp(argv[0], "runner") == 0) {
		runner_show(pk);
		return 0;
	}
	snprintf(msg, msgsize, "the runner answers: show runner");
	return 100;
}

/* The args and input memfds (inputs written at their offsets), the
 * control, NPL and user output socket pairs. */
static const int runner_syscalls[] = {
	SCMP_SYS(memfd_create), SCMP_SYS(socketpair), SCMP_SYS(pwrite64),
};

static const struct hp_worker_role role = {
	.name = "runner",
	.syscalls = runner_syscalls,
	.nsyscalls = sizeof(runner_syscalls) / sizeof(runner_syscalls[0]),
	.init = init,
	.sibling_msg = sibling_msg,
	.sibling_down = sibling_down,
	.sup_msg = sup_msg,
	.show = show,
	.shutdown = runner_shutdown,
};

int
main(int argc, char **argv)
{
	hp_worker_run(argc, argv, &role);
}
