/*
 * mount.c — the statefs FUSE mount on NODE/mnt, made by the supervisor on
 * the state worker's behalf (DESIGN §2; spec/privsep-anchors.md §5.4).
 *
 * The supervisor opens /dev/fuse, mounts "fuse.hpd-state" with that
 * descriptor, and hands the descriptor to the state worker as its "fuse"
 * listener once the worker is READY; the worker needs neither
 * CAP_SYS_ADMIN nor fusermount3. A FUSE connection cannot be resumed, so
 * every start of the state worker gets a fresh mount: the old one is
 * detached (MNT_DETACH), which also clears a mount left stale by a crash.
 * The supervisor never looks inside the mount: a request there would
 * wait for the worker. It raises the mount's read-ahead (the kernel's
 * default, 128 KiB, makes a sequential read one FUSE round trip per
 * 128 KiB); the worker asks for the same in its FUSE init, and the
 * kernel keeps the smaller of the two.
 *
 * In development mode (not root) nothing is mounted and the node runs
 * without statefs.
 */
#include "hpd.h"
#include "err.h"
#include "log.h"
#include "mpack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define FUSE_MAJOR 10
#define FUSE_MINOR 229

#define STATEFS_READ_AHEAD_KB 4096	/* the worker's max_readahead too */

/* A mounted /dev/fuse descriptor not yet handed to a worker, or -1. */
static int fuse_fd = -1;
static int dev_warned;

static void
mnt_path(char *buf, size_t size)
{
	snprintf(buf, size, "%s/mnt", sv.dir);
}

void
statefs_unmount(void)
{
	char path[PATH_MAX];

	if (fuse_fd >= 0) {
		close(fuse_fd);
		fuse_fd = -1;
	}
	if (!sv.privsep)
		return;
	mnt_path(path, sizeof(path));
	/* Mounts may be stacked by earlier crashes: detach them all. */
	for (int i = 0; i < 16; i++) {
		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			continue;
		if (errno != EINVAL && errno != ENOENT)
			log_warn("cannot unmount %s", path);
		break;
	}
}

static int
open_fuse(void)
{
	struct stat st;
	int fd;

	if ((fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)) < 0) {
		log_errx("/dev/fuse is not usable: %s; statefs needs it: load"
		    " the fuse module (modprobe fuse), or give the container"
		    " the device (docker run --device /dev/fuse --cap-add"
		    " SYS_ADMIN, or a privileged container)", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) ||
	    major(st.st_rdev) != FUSE_MAJOR || minor(st.st_rdev) != FUSE_MINOR) {
		log_errx("/dev/fuse is not usable: it is not the FUSE device"
		    " (%s %u:%u, expected character device %d:%d); statefs"
		    " needs it: give the container the real device (docker run"
		    " --device /dev/fuse) or recreate it (mknod /dev/fuse c"
		    " 10 229)", S_ISCHR(st.st_mode) ? "character device" :
		    "not a character device", major(st.st_rdev),
		    minor(st.st_rdev), FUSE_MAJOR, FUSE_MINOR);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The device number of the mount on path, from /proc/self/mountinfo (the
 * last mount there wins, as in path lookup): stat(2) of the mount point
 * would be a FUSE request, and no worker serves it yet.
 */
static int
mount_dev(const char *path, unsigned *major, unsigned *minor)
{
	char line[PATH_MAX + 512], mp[PATH_MAX + 1];
	unsigned ma, mi;
	int found = 0;
	FILE *fp;

	if ((fp = fopen("/proc/self/mountinfo", "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, "%*u %*u %u:%u %*s %4096s", &ma, &mi, mp) != 3)
			continue;
		if (strcmp(mp, path) == 0) {
			*major = ma;
			*minor = mi;
			found = 1;
		}
	}
	fclose(fp);
	return found ? 0 : -1;
}

/* Read-ahead of the new mount's backing device info; a failure only
 * costs speed. */
static void
set_read_ahead(const char *path)
{
	char sys[64], val[16];
	unsigned ma, mi;
	int fd, n;

	if (mount_dev(path, &ma, &mi) != 0) {
		log_warnx("statefs: %s is not in /proc/self/mountinfo; the"
		    " kernel's default read-ahead stays", path);
		return;
	}
	snprintf(sys, sizeof(sys), "/sys/class/bdi/%u:%u/read_ahead_kb", ma,
	    mi);
	n = snprintf(val, sizeof(val), "%d", STATEFS_READ_AHEAD_KB);
	if ((fd = open(sys, O_WRONLY | O_CLOEXEC)) < 0 ||
	    write(fd, val, (size_t)n) != n)
		log_warn("statefs: cannot set %s; the kernel's default"
		    " read-ahead stays", sys);
	if (fd >= 0)
		close(fd);
}

int
statefs_mount(void)
{
	const struct hpd_ids *ids = &sv.w[HP_W_STATE].ids;
	char path[PATH_MAX], opts[256];
	int fd;

	if (!sv.privsep) {
		if (!dev_warned)
			log_warnx("statefs is not mounted: mounting FUSE needs"
			    " root, and this is development mode; the state"
			    " worker runs without a mount (run hpd as root for"
			    " %s/mnt)", sv.dir);
		dev_warned = 1;
		return 0;
	}
	if (fuse_fd >= 0)
		return 0;	/* a fresh mount is waiting for its worker */
	statefs_unmount();
	if ((fd = open_fuse()) < 0)
		return HP_EIO;
	mnt_path(path, sizeof(path));
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,"
	    "group_id=%u,allow_other,default_permissions", fd,
	    (unsigned)ids->uid, (unsigned)ids->gid);
	if (mount("hpd-state", path, "fuse.hpd-state", MS_NOSUID | MS_NODEV,
	    opts) != 0) {
		int e = errno;
		log_errx("cannot mount statefs on %s: %s; %s", path, strerror(e),
		    e == EPERM ? "mounting needs CAP_SYS_ADMIN (in a container:"
		    " --cap-add SYS_ADMIN --device /dev/fuse, or privileged)" :
		    e == ENOENT || e == ENOTDIR ? "the mount point is missing:"
		    " create it (mkdir) or recreate the node with hpd new" :
		    e == ENODEV ? "the kernel has no FUSE: load the fuse"
		    " module (modprobe fuse)" :
		    "check that /dev/fuse is the FUSE device and the directory"
		    " is usable");
		close(fd);
		return HP_EIO;
	}
	fuse_fd = fd;
	set_read_ahead(path);
	log_info("statefs mounted on %s", path);
	return 0;
}

void
statefs_send_fd(struct worker *w)
{
	struct hp_frame f;

	if (fuse_fd < 0 || w->ch == NULL)
		return;
	hp_frame_begin(&f, HP_MSG_LISTENER, 0, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 1);
	hp_mpack_pack_cstr(&f.pk, "fuse");
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 0);
	/* The channel closes its copy once sent: from then on only the
	 * worker holds the connection, and its death ends it (ENOTCONN). */
	hp_chan_send(w->ch, &f, fuse_fd);
	fuse_fd = -1;
}
