/*
 * users.c — the system users the workers run as ("hpd-consensus", ...,
 * one per worker so that RLIMIT_NPROC, ptrace and file ownership keep them
 * apart) and the "hpd" group that may use the control socket. Missing ones
 * are created with useradd/groupadd.
 */
#include "hpd.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int
run(char *const argv[])
{
	int status;
	pid_t pid = _Fork();	/* exec only: no atfork handlers */

	if (pid < 0)
		return HP_EIO;
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return HP_EIO;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : HP_EIO;
}

int
users_ensure_admin_group(gid_t *gid)
{
	struct group *gr = getgrnam("hpd");

	if (gr == NULL) {
		char *argv[] = { "/usr/sbin/groupadd", "--system", "hpd", NULL };
		if (run(argv) != 0 || (gr = getgrnam("hpd")) == NULL) {
			log_warnx("cannot create the group hpd; only root may"
			    " use the control socket");
			return HP_EIO;
		}
		log_info("created system group hpd (members may use hpctl)");
	}
	*gid = gr->gr_gid;
	return 0;
}

int
users_ensure(const char *role, struct hpd_ids *ids)
{
	char name[32];
	struct passwd *pw;

	snprintf(name, sizeof(name), "hpd-%s", role);
	if ((pw = getpwnam(name)) == NULL) {
		char *argv[] = { "/usr/sbin/useradd", "--system", "--user-group",
		    "--no-create-home", "--home-dir", "/nonexistent", "--shell",
		    "/usr/sbin/nologin", "--comment", "hpd worker", name, NULL };
		if (run(argv) != 0 || (pw = getpwnam(name)) == NULL) {
			log_errx("cannot create the system user %s; create it"
			    " (useradd --system --user-group %s) and start"
			    " again", name, name);
			return HP_EIO;
		}
		log_info("created system user %s (uid %d)", name,
		    (int)pw->pw_uid);
	}
	if (pw->pw_uid == 0) {
		log_errx("system user %s has uid 0; a worker must never run as"
		    " root", name);
		return HP_EINVAL;
	}
	ids->uid = pw->pw_uid;
	ids->gid = pw->pw_gid;
	return 0;
}
