/*
 * runio.h — the users of one contract run: their inputs in a memfd at
 * 4 KiB-aligned offsets, one SOCK_STREAM pair each for outputs (4-byte
 * big-endian length frames, hotpocket-protocols §6.4), the outputs read
 * while the contract runs, and, after the run, their hashes and Merkle
 * root (§4).
 *
 * Each run has its own struct runio (runio_new); several may be in use at
 * once (read-only runs side by side). The caller owns it and frees it with
 * runio_free(), which closes every socket and frees the outputs.
 * Users' sockets become the contract's fds RUNIO_FD_FIRST, +1, ...
 */
#ifndef HP_RUNIO_H
#define HP_RUNIO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <msgpack.h>

#define RUNIO_FD_FIRST 6	/* 3 control, 4 NPL, 5 user_in */

struct runio;

/* An empty context; NULL when out of memory. */
struct runio *runio_new(void);
/* Closes its sockets and frees it; NULL is fine. */
void runio_free(struct runio *ri);

/*
 * Set up the users of a consensus run from HP_MSG_RUN's field 5 (NULL:
 * none): fills users (the args' "users" object) and *in_fd (the input
 * memfd, the caller's; pass it on). out_limit: bytes of output per user
 * (0: no limit of the config's own). Once per context. 0 or HP_E*.
 */
int runio_prepare(struct runio *ri, const msgpack_object *users,
    json_t *args_users, int *in_fd, uint64_t out_limit);
/* The same for a read-only run: one user, one input. */
int runio_prepare_read(struct runio *ri, const uint8_t pk[32],
    const uint8_t *content, size_t len, json_t *args_users, int *in_fd,
    uint64_t out_limit);
/* The contract's end of user i's socket (i < runio_count()), or -1. */
size_t runio_count(const struct runio *ri);
int runio_contract_fd(const struct runio *ri, size_t i);
/* The contract's ends were passed on (the channel owns them now). */
void runio_handed_over(struct runio *ri);
/* Read what is there from every user socket, without blocking. */
void runio_poll(struct runio *ri);

/*
 * After the run (and its state commit): pack, for HP_MSG_RUN_DONE,
 * fields 2 (root), 3 (leaves) and 4 (users' outputs) given the state hash
 * after the run; *root gets the root (zero when no user had output).
 */
void runio_pack_done(struct runio *ri, msgpack_packer *pk,
    const uint8_t state[32], uint8_t root[32]);
/* For HP_MSG_READ_RES: the single user's outputs as an array of bin. */
void runio_pack_read(struct runio *ri, msgpack_packer *pk);

#endif
