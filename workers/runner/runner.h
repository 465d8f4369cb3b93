/*
 * runner.h — one contract run per closed ledger (hotpocket-protocols §6).
 *
 * A run: consensus says a ledger was stored (HP_MSG_RUN); the runner asks
 * the state worker for the read-write session (HP_MSG_STATE_SESSION begin),
 * builds the args JSON (§6.3) into a sealed memfd, makes the control and
 * NPL SOCK_SEQPACKET pairs and the (empty) user input memfd, hands the
 * contract's ends to the supervisor (HP_MSG_CONTRACT_FD) and asks it to
 * spawn the contract (HP_MSG_SPAWN_CONTRACT); the runner never forks. At
 * exec_timeout it asks for a SIGKILL. Whatever the end (exit, crash,
 * kill), the session is committed, as HotPocket does, and the state worker
 * sends the new hashes to consensus. A RUN that arrives while a run is
 * going is skipped and logged.
 *
 * Not in this step: read-only runs, user inputs and outputs (the users map
 * is empty), NPL and control traffic (the channels exist, nothing is read
 * or sent), post_exec.sh and patch.cfg changes.
 *
 * All calls run on the worker's loop; the module owns its fds and timer.
 */
#ifndef HP_RUNNER_H
#define HP_RUNNER_H

#include <msgpack.h>
#include <uv.h>

#include "channel.h"
#include "config.h"

int runner_init(uv_loop_t *loop, const struct hp_config *cfg);
/* HP_MSG_RUN from consensus. */
void runner_on_run(const msgpack_object *body);
/* HP_MSG_STATE_SESSION_RES from the state worker. */
void runner_on_session(struct hp_msg *m);
/* HP_MSG_CONTRACT_SPAWNED / HP_MSG_CONTRACT_EXITED from the supervisor. */
void runner_on_sup(struct hp_msg *m);
/* The state worker's channel went down. */
void runner_state_down(void);
/* hpctl show runner: one map. */
void runner_show(msgpack_packer *pk);
void runner_shutdown(void);

#endif
