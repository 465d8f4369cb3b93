/*
 * sandbox.h — what a worker does to itself right after exec: no new
 * privileges, not dumpable, no core files, and a seccomp allow-list for
 * its role (default action: kill the process, so a forbidden syscall
 * shows up as a SIGSYS death in the supervisor).
 *
 * The uid/gid drop and the capability bounding set are done by the
 * supervisor between fork and exec (supervisor/supervise.c); the worker
 * checks the result.
 */
#ifndef HP_SANDBOX_H
#define HP_SANDBOX_H

#include <stddef.h>

/* Returns 0 or HP_EIO; on failure the worker must not go on. */
/* extra: more syscalls for this role (SCMP_SYS numbers), may be NULL. */
int hp_sandbox_enter(const char *role, int allow_root, const int *extra,
    size_t nextra);

#endif
