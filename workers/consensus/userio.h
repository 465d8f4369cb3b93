/*
 * userio.h — user inputs and contract outputs in the consensus worker.
 *
 * Inputs come from the gateway (HP_MSG_GW_INPUT) and from other nodes
 * (HP_PT_INPUT, HotPocket's NUP). Each is verified here — signature over
 * the exact container bytes, container format, ledger window, nonce — and
 * held in a pool; the round votes their ordered hashes. When a ledger
 * closes its inputs are stored with it, the gateway is told which were
 * accepted or rejected, and the runner runs the contract over them.
 *
 * Outputs: the runner reports each run's outputs and their Merkle root
 * (HP_MSG_RUN_DONE); the root is voted as the next ledger's output_hash.
 * When that ledger closes, every node signs the root and sends the
 * signature to the others (HP_PT_OUTSIG); once signatures from enough of
 * the UNL for the client's check (80 %) are in, the outputs go to the
 * gateway (HP_MSG_GW_OUTPUTS) and are stored with the ledger.
 *
 * docs/user-io.md has the flow and its limits.
 */
#ifndef HP_USERIO_H
#define HP_USERIO_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "ledger.h"
#include "ledger_store.h"
#include "proposal.h"

void userio_init(void);
void userio_free(void);

void userio_gw_msg(struct hp_msg *m);
void userio_runner_msg(struct hp_msg *m);
void userio_peer_input(const uint8_t from[32], const uint8_t *p, size_t len);
/* An NPL message from another node's contract (HP_PT_NPL): verified and
 * handed to our runner. */
void userio_peer_npl(const uint8_t from[32], const uint8_t *p, size_t len);
void userio_peer_outsig(const uint8_t from[32], const uint8_t *p,
    size_t len);

/*
 * A ledger closed here, before it is stored: fill raw (room for 2) with
 * the records to store with it; they stay valid until userio_closed().
 * Returns the number of records.
 */
size_t userio_raw(const struct hp_ledger *l, const struct hp_set *users,
    const struct hp_set *inputs, struct ledger_raw *raw);
/* The ledger is durable: settle its inputs, run the contract, sign the
 * outputs root it carries. */
int userio_closed(const struct hp_ledger *l, const struct hp_set *users,
    const struct hp_set *inputs);	/* 1: a RUN went to the runner */
/* The lcl, vote or UNL changed (or the gateway came up): tell the
 * gateway. */
void userio_status(void);
void userio_status_force(void);

/* hpctl show consensus: "inputs", a map (pool, relayed queue, whether
 * this node's users' inputs are refused, counters). */
void userio_show(msgpack_packer *pk);

#endif
