/*
 * contract.c — the supervisor spawns the sandboxed contract process for the
 * runner (DESIGN §2), which may not fork itself.
 *
 * The runner hands over the descriptors the contract gets (HP_MSG_CONTRACT_FD:
 * stdin holding the args JSON, the control and NPL channels, the user input
 * fd), then asks for the spawn (HP_MSG_SPAWN_CONTRACT). Everything else comes
 * from the supervisor's own hp.cfg, never from the runner: argv = bin_path
 * followed by bin_args split on spaces, env = contract.environment plus PATH,
 * rlimits from round_limits, the uid from contract.run_as or the system user
 * hpd-contract. As root the contract gets new mount, pid, ipc and net
 * namespaces: the node directory is covered by an empty tmpfs (cfg/, keys,
 * stores and logs out of sight) with only the statefs mount put back at
 * NODE/mnt, /proc is the new pid namespace's, and there is no network. A
 * small init (pid 1 of the namespace) waits for the contract and exits with
 * its status (128 + signal when it was killed), so a SIGKILL at exec_timeout
 * ends every process the contract started. The contract itself runs with
 * no_new_privs and a seccomp deny-list (EPERM). In development mode (not
 * root) there are no namespaces and no uid change; that is said once, and
 * the init is a plain parent (a child subreaper) that passes a signal
 * death on.
 *
 * post_exec.sh (HotPocket §6.9): when the contract exits normally and
 * NODE/mnt/state/post_exec.sh exists, the init starts it in the same
 * sandbox (uid, namespaces, rlimits, env, no_new_privs, deny-list) with
 * cwd = the state directory and one argument "<lcl seq> <lcl hash hex>",
 * through a helper that waits for it: exit 0 deletes the script, 3..125
 * keeps it, anything else is an error. The helper tells the supervisor the
 * script's status through a pipe; the init exits (and the run is reported
 * over) only once everything is done, so exec_timeout covers the script.
 *
 * The contract's stdout and stderr (and the script's) go to
 * NODE/log/contract/stdout.log and stderr.log (appended, a marker line
 * before each run, rotated at contract.log.max_mbytes_per_file keeping
 * contract.log.max_file_count files) when contract.log.enable is on, else
 * to /dev/null. The exit is seen through a pidfd and reported as
 * HP_MSG_CONTRACT_EXITED.
 *
 * Several contracts may run at once, each in a slot of its own keyed by
 * the run id (the frame id of CONTRACT_FD, SPAWN_CONTRACT and
 * KILL_CONTRACT, echoed by CONTRACT_SPAWNED and CONTRACT_EXITED): its
 * handed-over fds, pidfd, post_exec.sh pipe and exit watch. Either one
 * consensus run goes, or up to READ_RUNS_MAX read-only runs (read
 * requests: no post_exec.sh, no contract logs) go side by side; a spawn
 * that would break that rule is refused. Every slot's contract gets the
 * same sandbox.
 */
#include "hpd.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "mpack.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

#define CONTRACT_ARGV_MAX 64
#define CONTRACT_ENV_MAX 256
#define POST_EXEC_NAME "post_exec.sh"
#define POST_EXEC_MAGIC 0x68706578u	/* "hpex" */

/* What the post_exec.sh helper tells the supervisor (one write). */
struct post_exec_report {
	uint32_t magic;
	int32_t status;		/* the script's wait status */
};

#define READ_RUNS_MAX 32	/* read-only runs at once */
/* Slots: the running contracts plus room for runs whose fds are arriving
 * and for exits whose watch is still closing. */
#define RUN_SLOTS (READ_RUNS_MAX + 8)

/* One contract run, from its first handed-over fd to its exit. */
struct run {
	int used;		/* fds arriving, or the contract running */
	uint32_t id;		/* the runner's run id */
	int fds[HP_CONTRACT_FD_MAX + 1];	/* handed over, -1 when none */
	pid_t pid;		/* 0 when not (or no longer) running */
	int pidfd;
	uv_poll_t poll;
	int polling;		/* until the poll handle is closed */
	struct hp_channel *ch;	/* the runner channel that asked for it */
	uint64_t started_ms;
	uint64_t seq;		/* the run's ledger */
	int post_fd;		/* read end of the post_exec.sh report pipe */
	/* For the child: the script's argument and the pipe's write end. */
	char post_arg[96];
	int post_wfd;
	int readonly;		/* a read request's run: no post_exec.sh, no
				   logs (HotPocket logs consensus runs only) */
};

static struct {
	struct hpd_ids ids;
	int ready;		/* contract_init succeeded */
	struct run runs[RUN_SLOTS];
} ct;

static void
drop_fds(struct run *r)
{
	for (int i = 0; i <= HP_CONTRACT_FD_MAX; i++)
		if (r->fds[i] >= 0) {
			close(r->fds[i]);
			r->fds[i] = -1;
		}
}

/* The slot gives up its fds and may be taken again once not polling. */
static void
run_release(struct run *r)
{
	drop_fds(r);
	r->used = 0;
	r->pid = 0;
}

static struct run *
run_find(uint32_t id)
{
	for (int i = 0; i < RUN_SLOTS; i++)
		if (ct.runs[i].used && ct.runs[i].id == id)
			return &ct.runs[i];
	return NULL;
}

/* id's slot, taken when it has none yet; NULL when every slot is busy. */
static struct run *
run_get(uint32_t id)
{
	struct run *r = run_find(id);

	for (int i = 0; r == NULL && i < RUN_SLOTS; i++)
		if (!ct.runs[i].used && !ct.runs[i].polling) {
			r = &ct.runs[i];
			r->used = 1;
			r->id = id;
			r->pid = 0;
			r->readonly = 0;
		}
	return r;
}

/* Contracts running: all of them, and how many are consensus runs. */
static int
running(int *consensus)
{
	int n = 0;

	*consensus = 0;
	for (int i = 0; i < RUN_SLOTS; i++)
		if (ct.runs[i].used && ct.runs[i].pid != 0) {
			n++;
			*consensus += !ct.runs[i].readonly;
		}
	return n;
}

/* "uid:gid", both decimal and non-zero. */
static int
parse_run_as(const char *s, struct hpd_ids *ids)
{
	char *end;
	unsigned long u, g;

	errno = 0;
	u = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != ':')
		return HP_EINVAL;
	s = end + 1;
	g = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || u == 0 || g == 0 ||
	    u > UINT32_MAX - 1 || g > UINT32_MAX - 1)
		return HP_EINVAL;
	ids->uid = (uid_t)u;
	ids->gid = (gid_t)g;
	return 0;
}

/* The contract's uid must be able to walk down to NODE/mnt/state. */
static void
check_reachable(void)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s", sv.dir);
	for (char *slash = strrchr(path, '/'); slash != NULL && slash != path;
	    slash = strrchr(path, '/')) {
		*slash = '\0';
		if (stat(path, &st) != 0)
			continue;
		if (!(st.st_mode & S_IXOTH) && st.st_uid != ct.ids.uid &&
		    !((st.st_mode & S_IXGRP) && st.st_gid == ct.ids.gid))
			log_warnx("%s (mode %04o) is not searchable by the"
			    " contract's uid %d: contract runs will fail to"
			    " enter NODE/mnt/state; chmod o+x %s", path,
			    (unsigned)(st.st_mode & 07777), (int)ct.ids.uid,
			    path);
	}
}

int
contract_init(void)
{
	char path[PATH_MAX];

	for (int i = 0; i < RUN_SLOTS; i++) {
		struct run *r = &ct.runs[i];
		for (int j = 0; j <= HP_CONTRACT_FD_MAX; j++)
			r->fds[j] = -1;
		r->pidfd = r->post_fd = r->post_wfd = -1;
		r->poll.data = r;
	}
	if (sv.cfg.contract.run_as != NULL && sv.cfg.contract.run_as[0]) {
		if (parse_run_as(sv.cfg.contract.run_as, &ct.ids) != 0) {
			log_errx("%s/%s: contract.run_as: must be \"uid:gid\""
			    " with both non-zero, got \"%s\"", sv.dir,
			    HPD_CFG_REL, sv.cfg.contract.run_as);
			return HP_EINVAL;
		}
	} else if (sv.privsep) {
		if (users_ensure("contract", &ct.ids) != 0)
			return HP_EIO;
	} else {
		ct.ids.uid = geteuid();
		ct.ids.gid = getegid();
	}
	if (sv.privsep) {
		for (int i = 0; i < HP_W_COUNT; i++)
			if (sv.w[i].ids.uid == ct.ids.uid) {
				log_errx("contract.run_as uid %d is the %s"
				    " worker's; give the contract its own uid",
				    (int)ct.ids.uid, sv.w[i].name);
				return HP_EINVAL;
			}
	} else if (sv.cfg.contract.execute)
		log_warnx("development mode: the contract runs under uid %d"
		    " without namespaces; only no_new_privs, rlimits and the"
		    " seccomp deny-list apply", (int)geteuid());
	if (sv.cfg.contract.log.enable) {
		snprintf(path, sizeof(path), "%s/log/contract", sv.dir);
		if (mkdir(path, 0750) != 0 && errno != EEXIST) {
			log_warn("mkdir %s", path);
			return HP_EIO;
		}
	}
	if (sv.privsep && sv.cfg.contract.execute)
		check_reachable();
	ct.ready = 1;
	return 0;
}

/* ---- the child side (runs between clone and exec; never returns) ---- */

static void
cfail(const char *what)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "hpd: contract setup failed: %s:"
	    " %s\n", what, strerror(errno));
	(void)!write(2, buf, (size_t)n);
	_exit(125);
}

static const int denied[] = {
	SCMP_SYS(ptrace), SCMP_SYS(mount), SCMP_SYS(umount2),
	SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load),
	SCMP_SYS(init_module), SCMP_SYS(finit_module),
	SCMP_SYS(delete_module), SCMP_SYS(bpf), SCMP_SYS(perf_event_open),
	SCMP_SYS(keyctl), SCMP_SYS(add_key), SCMP_SYS(request_key),
	SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(userfaultfd),
	SCMP_SYS(reboot), SCMP_SYS(swapon), SCMP_SYS(swapoff),
	SCMP_SYS(pivot_root), SCMP_SYS(chroot), SCMP_SYS(open_by_handle_at),
	SCMP_SYS(open_tree), SCMP_SYS(move_mount), SCMP_SYS(fsopen),
	SCMP_SYS(fsmount), SCMP_SYS(fsconfig), SCMP_SYS(fspick),
	SCMP_SYS(mount_setattr),
};

static void
deny_list(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = ctx == NULL;

	for (size_t i = 0; r == 0 && i < sizeof(denied) / sizeof(denied[0]);
	    i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0);
	/* New namespaces through clone: user namespaces above all. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone),
		    1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
		    SCMP_SYS(clone3), 0);
	if (r == 0)
		r = seccomp_load(ctx);
	if (ctx != NULL)
		seccomp_release(ctx);
	if (r != 0) {
		errno = -r;
		cfail("seccomp");
	}
}

static void
set_limit(int res, uint64_t v, const char *name)
{
	struct rlimit rl = { (rlim_t)v, (rlim_t)v };

	if (v != 0 && setrlimit(res, &rl) != 0)
		cfail(name);
}

/* path is dir or below it. */
static int
path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '\0' ||
	    path[n] == '/');
}

/*
 * Cover the node directory with an empty tmpfs and put the statefs mount
 * back at NODE/mnt: nothing of cfg/, ledger/, state/ or log/ is left in
 * the contract's view, and the path to its working directory is
 * searchable by the contract's uid. Then every mount is made read-only
 * but statefs, and /tmp and /dev/shm get empty tmpfs of their own: the
 * contract writes to its state and nowhere else that outlives the run.
 */
static void
hide_node_dir(void)
{
	static const char *const scratch[] = { "/tmp", "/dev/shm" };
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	struct mount_attr rw = { .attr_clr = MOUNT_ATTR_RDONLY };
	char mnt[PATH_MAX];
	struct stat st;
	int tree;

	snprintf(mnt, sizeof(mnt), "%s/mnt", sv.dir);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		cfail("making mounts private");
	if ((tree = (int)syscall(SYS_open_tree, AT_FDCWD, mnt,
	    OPEN_TREE_CLONE | O_CLOEXEC)) < 0)
		cfail(mnt);
	if (mount("hpd-node", sv.dir, "tmpfs", MS_NOSUID | MS_NODEV |
	    MS_NOEXEC, "mode=0755,size=16k") != 0)
		cfail("tmpfs over the node directory");
	if (mkdir(mnt, 0755) != 0)
		cfail("mkdir mnt in the tmpfs");
	if (syscall(SYS_move_mount, tree, "", AT_FDCWD, mnt,
	    MOVE_MOUNT_F_EMPTY_PATH) != 0)
		cfail("putting statefs back at NODE/mnt");
	close(tree);
	/* Where /proc cannot be mounted again (a container masking parts of
	 * it), the contract sees the host's: said in its stderr log. */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	    NULL) != 0) {
		static const char msg[] = "hpd: note: /proc of the contract's"
		    " pid namespace could not be mounted\n";
		(void)!write(2, msg, sizeof(msg) - 1);
	}
	if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &ro,
	    sizeof(ro)) != 0)
		cfail("making the contract's mounts read-only");
	if (syscall(SYS_mount_setattr, AT_FDCWD, mnt, 0, &rw, sizeof(rw)) != 0)
		cfail("making statefs writable again");
	/* Not over the node directory's own path (a node under /tmp): that
	 * scratch directory stays read-only instead. */
	for (size_t i = 0; i < sizeof(scratch) / sizeof(scratch[0]); i++)
		if (!path_under(sv.dir, scratch[i]) &&
		    stat(scratch[i], &st) == 0 && S_ISDIR(st.st_mode) &&
		    mount("hpd-scratch", scratch[i], "tmpfs", MS_NOSUID |
		    MS_NODEV, "mode=1777,size=64m") != 0)
			cfail(scratch[i]);
}

/*
 * What the contract and post_exec.sh run under: rlimits, the contract's
 * uid, cwd = the state directory, no_new_privs and the deny-list.
 */
static void
enter_sandbox(void)
{
	char cwd[PATH_MAX];

	set_limit(RLIMIT_CPU, sv.cfg.contract.round_limits.proc_cpu_seconds,
	    "RLIMIT_CPU");
	set_limit(RLIMIT_AS, sv.cfg.contract.round_limits.proc_mem_bytes,
	    "RLIMIT_AS");
	set_limit(RLIMIT_NOFILE, sv.cfg.contract.round_limits.proc_ofd_count,
	    "RLIMIT_NOFILE");
	if (sv.privsep) {
		if (setgroups(1, &ct.ids.gid) != 0)
			cfail("setgroups");
		if (setresgid(ct.ids.gid, ct.ids.gid, ct.ids.gid) != 0)
			cfail("setresgid");
		if (setresuid(ct.ids.uid, ct.ids.uid, ct.ids.uid) != 0)
			cfail("setresuid");
		if (getuid() == 0 || geteuid() == 0 || setuid(0) == 0)
			cfail("uid drop did not stick");
	}
	snprintf(cwd, sizeof(cwd), "%s/mnt/state", sv.dir);
	if (chdir(cwd) != 0)
		cfail(cwd);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		cfail("PR_SET_NO_NEW_PRIVS");
	deny_list();
}

static void
exec_contract(char **argv, char **envp)
{
	setpgid(0, 0);
	enter_sandbox();
	execve(argv[0], argv, envp);
	cfail(argv[0]);
}

static void
cnote(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)!write(2, buf, (size_t)n < sizeof(buf) ? (size_t)n :
		    sizeof(buf) - 1);
}

/*
 * The post_exec.sh helper, forked by the init after a normal contract
 * exit: in the sandbox, runs the script when there is one, waits for it,
 * deletes it on exit 0 and reports its status to the supervisor.
 */
static void
post_exec(struct run *r, char **envp)
{
	char *argv[] = { POST_EXEC_NAME, r->post_arg, NULL };
	struct post_exec_report rep = { POST_EXEC_MAGIC, 0 };
	struct stat st;
	sigset_t none;
	pid_t pid;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		cfail("PR_SET_PDEATHSIG");
	enter_sandbox();
	if (stat(POST_EXEC_NAME, &st) != 0)
		_exit(0);
	if ((pid = _Fork()) < 0)
		cfail("fork for " POST_EXEC_NAME);
	if (pid == 0) {
		execve(POST_EXEC_NAME, argv, envp);
		cnote("hpd: cannot run " POST_EXEC_NAME ": %s\n",
		    strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &rep.status, 0) < 0)
		if (errno != EINTR)
			cfail("waitpid " POST_EXEC_NAME);
	if (WIFEXITED(rep.status) && WEXITSTATUS(rep.status) == 0) {
		if (unlink(POST_EXEC_NAME) != 0)
			cnote("hpd: " POST_EXEC_NAME " exited 0 but cannot be"
			    " deleted: %s\n", strerror(errno));
	} else if (WIFEXITED(rep.status) && WEXITSTATUS(rep.status) >= 3 &&
	    WEXITSTATUS(rep.status) <= 125)
		cnote("hpd: " POST_EXEC_NAME " exited %d: kept\n",
		    WEXITSTATUS(rep.status));
	else if (WIFEXITED(rep.status))
		cnote("hpd: error: " POST_EXEC_NAME " exited %d\n",
		    WEXITSTATUS(rep.status));
	else
		cnote("hpd: error: " POST_EXEC_NAME " killed by signal %d\n",
		    WTERMSIG(rep.status));
	if (r->post_wfd >= 0)
		(void)!write(r->post_wfd, &rep, sizeof(rep));
	_exit(0);
}

/*
 * The contract's init: pid 1 of its pid namespace (as root) or its parent
 * and child subreaper (development mode). Waits for every process under
 * it, starts the post_exec.sh helper after a normal exit of the contract,
 * then exits with the contract's status: the same signal when it was
 * killed where that can be passed on, else 128 + the signal.
 */
static void
contract_init_proc(struct run *r, char **argv, char **envp)
{
	struct rlimit nocore = { 0, 0 };
	sigset_t all;
	pid_t c, p;
	int status = 0, null;

	prctl(PR_SET_NAME, "contract-init", 0, 0, 0);
	if (sv.privsep)
		hide_node_dir();
	else if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
		cfail("PR_SET_CHILD_SUBREAPER");
	/*
	 * _Fork, not fork: fork runs the supervisor's atfork handlers, and
	 * libuv's closes the fds its signal pipe had in the supervisor and
	 * opens a new pipe — by number, over whatever place_fds() put
	 * there (a user's output socket), which the contract then lacks.
	 */
	if ((c = _Fork()) < 0)
		cfail("fork");
	if (c == 0) {
		if (!sv.privsep && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
		    != 0)
			cfail("PR_SET_PDEATHSIG");
		exec_contract(argv, envp);
	}
	/* Holding only the logs (for post_exec.sh) and the report pipe, so
	 * the runner sees its channels close. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if ((null = open("/dev/null", O_RDONLY)) < 0 || dup2(null, 0) != 0)
		cfail("/dev/null");
	if (r->post_wfd > 3)
		syscall(SYS_close_range, 3, r->post_wfd - 1, 0);
	else
		syscall(SYS_close_range, 3, ~0U, 0);
	for (;;) {
		int st;
		if ((p = waitpid(-1, &st, 0)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p != c)
			continue;
		status = st;
		if (WIFEXITED(st) && !r->readonly && (p = _Fork()) == 0)
			post_exec(r, envp);
		if (p < 0)
			cnote("hpd: error: cannot start the " POST_EXEC_NAME
			    " helper: %s\n", strerror(errno));
	}
	if (WIFSIGNALED(status)) {
		setrlimit(RLIMIT_CORE, &nocore);
		signal(WTERMSIG(status), SIG_DFL);
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		raise(WTERMSIG(status));
		_exit(128 + WTERMSIG(status));
	}
	_exit(WEXITSTATUS(status));
}

static void
place_fds(struct run *r, int out, int err)
{
	int moved[HP_CONTRACT_FD_MAX + 1];

	/* Move everything out of the way first, then put each in place. */
	for (int i = 0; i <= HP_CONTRACT_FD_MAX; i++) {
		moved[i] = -1;
		if (r->fds[i] >= 0 &&
		    (moved[i] = fcntl(r->fds[i], F_DUPFD_CLOEXEC,
		    HP_CONTRACT_FD_MAX + 1)) < 0)
			cfail("fcntl");
	}
	if ((out = fcntl(out, F_DUPFD_CLOEXEC, HP_CONTRACT_FD_MAX + 1)) < 0 ||
	    (err = fcntl(err, F_DUPFD_CLOEXEC, HP_CONTRACT_FD_MAX + 1)) < 0 ||
	    (r->post_wfd >= 0 && (r->post_wfd = fcntl(r->post_wfd,
	    F_DUPFD_CLOEXEC, HP_CONTRACT_FD_MAX + 1)) < 0))
		cfail("fcntl");
	if (dup2(out, 1) != 1 || dup2(err, 2) != 2)
		cfail("dup2");
	for (int i = 0; i <= HP_CONTRACT_FD_MAX; i++) {
		if (i == 1 || i == 2)
			continue;
		if (moved[i] >= 0) {
			if (dup2(moved[i], i) != i)
				cfail("dup2");
		} else if (i == 0) {
			int null = open("/dev/null", O_RDONLY);
			if (null < 0 || dup2(null, 0) != 0)
				cfail("/dev/null");
		}
	}
	/* Above the contract's fds only the report pipe stays (CLOEXEC). */
	if (r->post_wfd > HP_CONTRACT_FD_MAX + 1)
		syscall(SYS_close_range, HP_CONTRACT_FD_MAX + 1,
		    r->post_wfd - 1, 0);
	syscall(SYS_close_range, r->post_wfd > HP_CONTRACT_FD_MAX ?
	    r->post_wfd + 1 : HP_CONTRACT_FD_MAX + 1, ~0U, 0);
	for (int i = 3; i <= HP_CONTRACT_FD_MAX; i++)
		if (moved[i] < 0)
			close(i);
	lseek(0, 0, SEEK_SET);
}

static void
contract_child(struct run *r, int out, int err, char **argv, char **envp)
{
	sigset_t none;

	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		cfail("PR_SET_PDEATHSIG");
	place_fds(r, out, err);
	contract_init_proc(r, argv, envp);
}

/* ---- the supervisor side ---- */

/*
 * path → path.1 → … → path.(max_file_count - 1); the oldest falls off, as
 * do files left beyond the count by an earlier, larger setting.
 */
static void
rotate_log(const char *path)
{
	char from[PATH_MAX + 24], to[PATH_MAX + 24];
	unsigned max = sv.cfg.contract.log.max_file_count > 1000 ? 1000 :
	    (unsigned)sv.cfg.contract.log.max_file_count;

	for (unsigned i = max > 1 ? max : 1; ; i++) {
		snprintf(to, sizeof(to), "%s.%u", path, i);
		if (unlink(to) != 0 && errno == ENOENT)
			break;
	}
	for (unsigned i = max > 1 ? max - 1 : 1; i > 1; i--) {
		snprintf(from, sizeof(from), "%s.%u", path, i - 1);
		snprintf(to, sizeof(to), "%s.%u", path, i);
		if (rename(from, to) != 0 && errno != ENOENT)
			log_warn("contract log: rename %s", from);
	}
	snprintf(to, sizeof(to), "%s.1", path);
	if (max > 1 ? rename(path, to) : unlink(path))
		log_warn("contract log: rotating %s", path);
}

/*
 * NODE/log/contract/NAME for one run, rotated first when it has grown past
 * contract.log.max_mbytes_per_file (0: never), with the run's marker line.
 */
static int
open_log(const struct run *r, const char *name, const char *lcl)
{
	char path[PATH_MAX], mark[160], when[32];
	uint64_t max = sv.cfg.contract.log.max_mbytes_per_file * 1024 * 1024;
	struct stat st;
	struct tm tm;
	time_t now = time(NULL);
	int fd, n;

	if (!sv.cfg.contract.log.enable || r->readonly)
		return open("/dev/null", O_WRONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/log/contract/%s", sv.dir, name);
	if (max > 0 && lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size >= max)
		rotate_log(path);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0640);
	if (fd < 0) {
		log_warn("contract log %s", path);
		return open("/dev/null", O_WRONLY | O_CLOEXEC);
	}
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(mark, sizeof(mark), "---- hpd: contract run for ledger"
	    " %s at %s ----\n", lcl, when);
	(void)!write(fd, mark, (size_t)n);
	return fd;
}

static void
reply(uint32_t type, uint32_t id, const struct hp_channel *ch, int ok,
    const char *error, uint64_t a, uint64_t b, uint64_t c)
{
	struct worker *w = &sv.w[HP_W_RUNNER];
	struct hp_frame f;

	/* A restarted runner knows nothing of its predecessor's runs. */
	if (w->ch == NULL || (type == HP_MSG_CONTRACT_EXITED && w->ch != ch))
		return;
	hp_frame_begin(&f, type, id, 0);
	if (type == HP_MSG_CONTRACT_SPAWNED) {
		msgpack_pack_map(&f.pk, 1);
		msgpack_pack_uint32(&f.pk, ok ? 1 : 2);
		if (ok)
			msgpack_pack_uint64(&f.pk, a);
		else
			hp_mpack_pack_cstr(&f.pk, error);
	} else {
		msgpack_pack_map(&f.pk, 3);
		msgpack_pack_uint32(&f.pk, 1);
		if (ok)
			msgpack_pack_true(&f.pk);
		else
			msgpack_pack_false(&f.pk);
		msgpack_pack_uint32(&f.pk, 2);
		msgpack_pack_uint64(&f.pk, b);
		msgpack_pack_uint32(&f.pk, 3);
		msgpack_pack_uint64(&f.pk, c);
	}
	hp_chan_send(w->ch, &f, -1);
}

static void
poll_closed(uv_handle_t *h)
{
	struct run *r = h->data;

	close(r->pidfd);
	r->pidfd = -1;
	r->polling = 0;
}

/* What the post_exec.sh helper reported, if a script ran. */
static void
post_exec_result(struct run *r)
{
	struct post_exec_report rep;
	ssize_t n;
	int st;

	if (r->post_fd < 0)
		return;
	n = read(r->post_fd, &rep, sizeof(rep));
	close(r->post_fd);
	r->post_fd = -1;
	if (n != (ssize_t)sizeof(r) || rep.magic != POST_EXEC_MAGIC)
		return;
	st = rep.status;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		log_info("contract run for ledger %llu: " POST_EXEC_NAME
		    " exited 0 and was deleted", (unsigned long long)r->seq);
	else if (WIFEXITED(st) && WEXITSTATUS(st) >= 3 &&
	    WEXITSTATUS(st) <= 125)
		log_info("contract run for ledger %llu: " POST_EXEC_NAME
		    " exited %d and is kept", (unsigned long long)r->seq,
		    WEXITSTATUS(st));
	else
		log_warnx("contract run for ledger %llu: " POST_EXEC_NAME
		    " failed: %s %d (its output is in the contract log)",
		    (unsigned long long)r->seq, WIFEXITED(st) ? "exit" :
		    "killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) :
		    WTERMSIG(st));
}

static void
exit_cb(uv_poll_t *h, int status, int events)
{
	struct run *r = h->data;
	siginfo_t si;
	uint64_t ms = now_ms() - r->started_ms;

	(void)status; (void)events;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED | WNOHANG) != 0 ||
	    si.si_pid == 0)
		return;
	uv_poll_stop(&r->poll);
	uv_close((uv_handle_t *)&r->poll, poll_closed);
	log_debug("contract (pid %d, run %u) %s %d after %llu ms", (int)r->pid,
	    r->id, si.si_code == CLD_EXITED ? "exited with" :
	    "killed by signal", si.si_status, (unsigned long long)ms);
	post_exec_result(r);
	run_release(r);
	reply(HP_MSG_CONTRACT_EXITED, r->id, r->ch, si.si_code == CLD_EXITED,
	    NULL, 0, (uint64_t)si.si_status, ms);
}

static int
split_args(char *buf, char **argv)
{
	int argc = 0;

	argv[argc++] = sv.cfg.contract.bin_path;
	for (char *p = strtok(buf, " "); p != NULL && argc <
	    CONTRACT_ARGV_MAX - 1; p = strtok(NULL, " "))
		argv[argc++] = p;
	argv[argc] = NULL;
	return argc;
}

/* Why r may not start now, or NULL. */
static const char *
refusal(const struct run *r)
{
	int consensus, n = running(&consensus);

	if (!r->readonly && n > 0)
		return "a contract is already running";
	if (r->readonly && consensus > 0)
		return "a consensus run is going";
	if (r->readonly && n >= READ_RUNS_MAX)
		return "too many read-only runs at once";
	return NULL;
}

static void
spawn(struct run *r, uint64_t seq, const uint8_t *hash)
{
	static char argbuf[4096];
	char *argv[CONTRACT_ARGV_MAX], *envp[CONTRACT_ENV_MAX];
	char hex[65], lcl[96];
	const char *why;
	struct clone_args ca;
	int pidfd = -1, out, err, n = 0, has_path = 0, pp[2] = { -1, -1 };
	long pid;

	why = !ct.ready ? "the contract sandbox is not set up (see the hpd"
	    " log at start)" : refusal(r);
	if (why == NULL && (sv.cfg.contract.bin_path == NULL ||
	    sv.cfg.contract.bin_path[0] != '/'))
		why = "contract.bin_path must be an absolute path";
	if (why != NULL) {
		reply(HP_MSG_CONTRACT_SPAWNED, r->id, NULL, 0, why, 0, 0, 0);
		run_release(r);
		return;
	}
	snprintf(argbuf, sizeof(argbuf), "%s", sv.cfg.contract.bin_args ?
	    sv.cfg.contract.bin_args : "");
	split_args(argbuf, argv);
	for (size_t i = 0; i < sv.cfg.contract.environment_count &&
	    n < CONTRACT_ENV_MAX - 2; i++) {
		const struct hp_env_var *e = &sv.cfg.contract.environment[i];
		size_t len = strlen(e->key) + strlen(e->value) + 2;
		if ((envp[n] = malloc(len)) == NULL)
			break;
		snprintf(envp[n], len, "%s=%s", e->key, e->value);
		has_path |= strcmp(e->key, "PATH") == 0;
		n++;
	}
	if (!has_path)
		envp[n++] = strdup("PATH=/usr/local/bin:/usr/bin:/bin");
	envp[n] = NULL;

	/* post_exec.sh's argument: "<lcl seq> <lcl hash hex>". */
	if (hash != NULL)
		hp_hash_hex(hash, 32, hex);
	else
		memset(hex, '0', 64);
	hex[64] = '\0';
	snprintf(r->post_arg, sizeof(r->post_arg), "%llu %s",
	    (unsigned long long)seq, hex);
	snprintf(lcl, sizeof(lcl), "%llu%s%.8s", (unsigned long long)seq,
	    hash != NULL ? "-" : "", hash != NULL ? hex : "");
	if (!r->readonly && pipe2(pp, O_CLOEXEC | O_NONBLOCK) != 0)
		log_warn("contract run for ledger %llu: post_exec.sh report"
		    " pipe", (unsigned long long)seq);
	r->post_wfd = pp[1];

	out = open_log(r, "stdout.log", lcl);
	err = open_log(r, "stderr.log", lcl);
	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_PIDFD | (sv.privsep ? CLONE_NEWPID | CLONE_NEWNS |
	    CLONE_NEWIPC | CLONE_NEWNET : 0);
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	ca.exit_signal = SIGCHLD;
	pid = out < 0 || err < 0 ? -1 : syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0)
		contract_child(r, out, err, argv, envp);
	for (int i = 0; i < n; i++)
		free(envp[i]);
	if (out >= 0)
		close(out);
	if (err >= 0)
		close(err);
	if (pp[1] >= 0)
		close(pp[1]);
	r->post_wfd = -1;
	drop_fds(r);
	if (pid < 0) {
		if (pp[0] >= 0)
			close(pp[0]);
		char msg[128];
		snprintf(msg, sizeof(msg), "cannot start the contract: %s",
		    strerror(errno));
		log_warnx("%s", msg);
		reply(HP_MSG_CONTRACT_SPAWNED, r->id, NULL, 0, msg, 0, 0, 0);
		run_release(r);
		return;
	}
	fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	r->pid = (pid_t)pid;
	r->pidfd = pidfd;
	r->seq = seq;
	if (r->post_fd >= 0)
		close(r->post_fd);
	r->post_fd = pp[0];
	r->ch = sv.w[HP_W_RUNNER].ch;
	r->started_ms = now_ms();
	uv_poll_init(sv.loop, &r->poll, pidfd);
	r->poll.data = r;
	uv_poll_start(&r->poll, UV_READABLE, exit_cb);
	r->polling = 1;
	log_debug("contract for ledger %llu started (pid %d, run %u%s)",
	    (unsigned long long)seq, (int)pid, r->id, r->readonly ?
	    ", read-only" : "");
	reply(HP_MSG_CONTRACT_SPAWNED, r->id, NULL, 1, NULL, (uint64_t)pid, 0,
	    0);
}

static void
kill_run(struct run *r)
{
	if (r->used && r->pid != 0 && r->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, r->pidfd, SIGKILL, NULL, 0);
}

void
contract_kill(void)
{
	for (int i = 0; i < RUN_SLOTS; i++)
		kill_run(&ct.runs[i]);
}

void
contract_on_msg(struct hp_msg *m)
{
	const msgpack_object *h;
	struct run *r;
	uint64_t v = 0;

	switch (m->type) {
	case HP_MSG_CONTRACT_FD:
		if (m->fd < 0 || hp_mpack_u64(m->body, 1, &v) != 0 ||
		    (v != 0 && (v < HP_CONTRACT_FD_MIN ||
		    v > HP_CONTRACT_FD_MAX))) {
			log_warnx("runner sent a contract fd without a valid"
			    " target; dropped");
			break;
		}
		if ((r = run_get(m->id)) == NULL) {
			log_warnx("runner sent a contract fd for run %u while"
			    " %d runs are in hand; dropped", m->id, RUN_SLOTS);
			break;
		}
		if (r->pid != 0) {
			log_warnx("runner sent a contract fd for run %u, which"
			    " is already running; dropped", m->id);
			break;
		}
		if (r->fds[v] >= 0)
			close(r->fds[v]);
		r->fds[v] = m->fd;
		m->fd = -1;
		break;
	case HP_MSG_SPAWN_CONTRACT: {
		bool ro = false;
		if ((r = run_get(m->id)) == NULL || r->pid != 0) {
			reply(HP_MSG_CONTRACT_SPAWNED, m->id, NULL, 0,
			    r == NULL ? "too many contract runs in hand" :
			    "this run is already running", 0, 0, 0);
			break;
		}
		(void)hp_mpack_u64(m->body, 1, &v);
		(void)hp_mpack_bool(m->body, 3, &ro);
		r->readonly = ro;
		h = hp_mpack_get(m->body, 2);
		spawn(r, v, h != NULL && h->type == MSGPACK_OBJECT_BIN &&
		    h->via.bin.size == 32 ? (const uint8_t *)h->via.bin.ptr :
		    NULL);
		break;
	}
	case HP_MSG_KILL_CONTRACT:
		if ((r = run_find(m->id)) != NULL)
			kill_run(r);
		break;
	default:
		break;
	}
}

void
contract_runner_gone(void)
{
	for (int i = 0; i < RUN_SLOTS; i++) {
		struct run *r = &ct.runs[i];
		if (!r->used)
			continue;
		if (r->pid == 0)
			run_release(r);
		else {
			kill_run(r);
			r->ch = NULL;
		}
	}
}
