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
 * sends the new hashes to consensus. A RUN that arrives while a
 * consensus run is going is skipped and logged.
 *
 * Users and their inputs come with the RUN (runio.h); their outputs are
 * read while the contract runs and, after the commit, go to consensus
 * with their Merkle root (HP_MSG_RUN_DONE); every RUN gets its RUN_DONE,
 * with a zero root when it did not run. Read requests from the gateway
 * wait in a queue of 32 and run read-only (no session: the mount serves
 * the last commit, writes fail with EROFS) between consensus runs, up to
 * user.concurrent_read_requests (at least one) side by side, each with
 * its own fds, users (struct runio) and exec_timeout timer. They never
 * overlap a consensus run, whose open session the mount would show them:
 * a RUN that arrives while some are going waits until they have all ended
 * (each within exec_timeout; none is killed for it), and no new one starts
 * before that RUN is over.
 *
 * NPL packets the contract writes go to consensus (HP_MSG_NPL_OUT), which
 * signs and broadcasts them; NPL messages for the running ledger come back
 * as HP_MSG_NPL_IN and reach the contract as a key packet and a payload
 * packet.
 *
 * All calls run on the worker's loop; the module owns its fds and timers.
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
/* HP_MSG_NPL_IN from consensus: delivered to the running contract, or
 * kept for the run of its ledger if that has not started. */
void runner_on_npl(const msgpack_object *body);
/* HP_MSG_READ_REQ from the gateway: a read-only run, queued. */
void runner_on_read(struct hp_msg *m);
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
