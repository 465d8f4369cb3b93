/*
 * worker.h — the life of a worker process, shared by all five.
 *
 * hp_worker_main() checks that fd 3 is the supervisor's channel, enters the
 * sandbox, exchanges HELLO, reports READY, answers heartbeats with its
 * sibling channels, accepts fresh sibling channels and listening sockets,
 * applies log levels, and exits cleanly on SHUTDOWN. End of file on fd 3
 * means the supervisor is gone: the worker exits at once.
 */
#ifndef HP_WORKER_H
#define HP_WORKER_H

/* role: "consensus", "peer", ...; never returns. */
int hp_worker_main(int argc, char **argv, const char *role)
    __attribute__((noreturn));

#endif
