/*
 * cons.h — what the consensus worker's main file (consensus.c) shares with
 * its user I/O part (userio.c). One worker, one thread: these are plain
 * accessors to consensus.c's state.
 */
#ifndef HP_CONS_H
#define HP_CONS_H

#include <stddef.h>
#include <stdint.h>

struct hp_config;
struct round;
struct ledger_store;

const struct hp_config *cons_cfg(void);
struct uv_loop_s *cons_loop(void);
struct round *cons_round(void);
struct ledger_store *cons_store(void);
/* The UNL: n sorted 32-byte keys. */
const uint8_t *cons_unl(uint32_t *n);
int cons_in_unl(const uint8_t pk[32]);
/* Send a consensus payload through the peer worker (to NULL: every
 * verified peer). 0 or HP_E*. */
int cons_peer_send(uint32_t ptype, const uint8_t *payload, size_t len,
    int unl_only, const uint8_t *to);
/* The vote status (enum round_vote) and the UNL members' newest proposal
 * round (ms; 0 never) for the contract's args. */
int cons_vote(void);
uint64_t cons_active_on(const uint8_t pk[32]);
/* The verified peers connected now ("host:port" is not known here; they
 * are shown by key). */
uint32_t cons_npeers(void);
/* The runner's RUN_DONE for ledger seq, with the state and patch hashes
 * after the run (NULL when there was no run): the round goes on. */
void cons_run_done(uint64_t seq, const uint8_t *state, const uint8_t *patch);

#endif
