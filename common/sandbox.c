/*
 * sandbox.c — per-worker seccomp allow-lists with libseccomp (sandbox.h).
 *
 * The lists hold what a worker's event loop needs: socket I/O on the fds it
 * was given, memory management, time, futexes, and threads (clone only
 * with CLONE_THREAD, so no worker can fork). clone3 answers ENOSYS so
 * glibc falls back to clone, which can be checked. Everything else kills
 * the process.
 */
#include "sandbox.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static const int base_syscalls[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(close), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
	SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(shutdown),
	SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(eventfd2), SCMP_SYS(pipe2), SCMP_SYS(fcntl), SCMP_SYS(ioctl),
	SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect),
	SCMP_SYS(madvise), SCMP_SYS(brk),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
	SCMP_SYS(gettimeofday), SCMP_SYS(getrandom),
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
	SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
	SCMP_SYS(getegid), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack), SCMP_SYS(tgkill),
	SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(restart_syscall),
	SCMP_SYS(prlimit64), SCMP_SYS(getrlimit), SCMP_SYS(uname),
	/* glibc's qsort asks for the memory size before sorting > 1 KiB */
	SCMP_SYS(sysinfo),
	SCMP_SYS(accept4), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt),
	SCMP_SYS(getsockname), SCMP_SYS(getpeername),
};

static int
add_rules(scmp_filter_ctx ctx, const int *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, list[i], 0) != 0)
			return HP_EIO;
	return 0;
}

int
hp_sandbox_enter(const char *role, int allow_root, const int *extra,
    size_t nextra)
{
	struct rlimit nocore = { 0, 0 };
	scmp_filter_ctx ctx;
	int r;

	if (!allow_root && (getuid() == 0 || geteuid() == 0)) {
		log_errx("refusing to run as root: the supervisor must start"
		    " this worker under its own uid");
		return HP_EIO;
	}
	if (setrlimit(RLIMIT_CORE, &nocore) != 0 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		log_err("sandbox setup for %s", role);
		return HP_EIO;
	}

	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		return HP_EIO;
	r = add_rules(ctx, base_syscalls,
	    sizeof(base_syscalls) / sizeof(base_syscalls[0]));
	if (r == 0 && extra != NULL)
		r = add_rules(ctx, extra, nextra);
	/* Threads yes, new processes no. */
	if (r == 0 && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) != 0)
		r = HP_EIO;
	if (r == 0 && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
	    SCMP_SYS(clone3), 0) != 0)
		r = HP_EIO;
	if (r == 0 && seccomp_load(ctx) != 0)
		r = HP_EIO;
	seccomp_release(ctx);
	if (r != 0)
		log_errx("cannot install the seccomp filter for %s", role);
	return r;
}
