/*
 * deploy.c — `hpd deploy DIR BUNDLE`: put a contract bundle into a stopped
 * node's state, so that every node of a new cluster starts from the same
 * state hash.
 *
 * BUNDLE is a directory. Its files become the contract's state (/state
 * is emptied first, in the same session, so the result depends only on
 * the bundle). An optional BUNDLE/hp.cfg.override is not copied: it is
 * merged into DIR/cfg/hp.cfg the way HotPocket's devkit does it (objects
 * merge key by key, everything else replaces), and the merged file must
 * validate before anything is written. The state is written in one
 * statefs session: either all of it is committed or none.
 */
#include "hpd.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OVERRIDE "hp.cfg.override"

struct totals {
	uint64_t files, dirs, bytes;
};

static void
report_stderr(enum hp_config_diag sev, const char *msg, void *arg)
{
	fprintf(stderr, "%s: %s\n", sev == HP_CONFIG_ERROR ? "error" :
	    "warning", msg);
}

/* Merge BUNDLE/hp.cfg.override into DIR/cfg/hp.cfg; 0 when absent. */
static int
apply_override(const char *dir, const char *bundle)
{
	char opath[PATH_MAX], cpath[PATH_MAX], name[PATH_MAX + 32];
	json_error_t err;
	json_t *over, *cfg;
	struct hp_config check;
	char *text;
	int r = -1;

	snprintf(opath, sizeof(opath), "%s/%s", bundle, OVERRIDE);
	if (access(opath, F_OK) != 0)
		return 0;
	if ((over = json_load_file(opath, JSON_REJECT_DUPLICATES, &err)) == NULL
	    || !json_is_object(over)) {
		fprintf(stderr, "hpd deploy: %s: %s (line %d, column %d); it must"
		    " be a JSON object of hp.cfg fields\n", opath,
		    over ? "not an object" : err.text, err.line, err.column);
		json_decref(over);
		return -1;
	}
	snprintf(cpath, sizeof(cpath), "%s/%s", dir, HPD_CFG_REL);
	if ((cfg = json_load_file(cpath, JSON_REJECT_DUPLICATES, &err)) == NULL) {
		fprintf(stderr, "hpd deploy: %s: %s\n", cpath, err.text);
		json_decref(over);
		return -1;
	}
	hp_json_merge(cfg, over);
	text = json_dumps(cfg, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	snprintf(name, sizeof(name), "%s merged with %s", cpath, opath);
	if (text != NULL && hp_config_parse(name, text, strlen(text), &check,
	    report_stderr, NULL) == 0) {
		hp_config_free(&check);
		char tmp[PATH_MAX + 8];
		snprintf(tmp, sizeof(tmp), "%s.tmp", cpath);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		size_t len = strlen(text);
		if (fd >= 0 && write(fd, text, len) == (ssize_t)len &&
		    write(fd, "\n", 1) == 1 && fsync(fd) == 0 &&
		    close(fd) == 0 && rename(tmp, cpath) == 0) {
			printf("merged %s into %s\n", opath, cpath);
			r = 0;
		} else
			fprintf(stderr, "hpd deploy: cannot write %s: %s\n",
			    cpath, strerror(errno));
	} else if (text != NULL)
		fprintf(stderr, "hpd deploy: the merged configuration is"
		    " invalid; nothing was changed\n");
	if (text != NULL) {
		memset(text, 0, strlen(text));	/* holds the private key */
		free(text);
	}
	json_decref(cfg);
	json_decref(over);
	return r;
}

/* Remove everything under ino (a directory), depth first. */
struct names {
	char (*v)[SFS_NAME_MAX + 1];
	mode_t *modes;
	size_t n, cap;
};

static int
collect(void *arg, const char *name, const struct sfs_attr *a, uint64_t c)
{
	struct names *ns = arg;

	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;
		void *v = realloc(ns->v, cap * sizeof(*ns->v));
		void *m = realloc(ns->modes, cap * sizeof(*ns->modes));
		if (v == NULL || m == NULL)
			return 1;
		ns->v = v;
		ns->modes = m;
		ns->cap = cap;
	}
	snprintf(ns->v[ns->n], sizeof(ns->v[0]), "%s", name);
	ns->modes[ns->n++] = a->mode;
	return 0;
}

static int
empty_dir(struct sfs_view *v, uint64_t ino)
{
	struct names ns = { 0 };
	struct sfs_attr a;
	int r;

	if ((r = sfs_readdir(v, ino, 0, collect, &ns)) < 0)
		goto out;
	for (size_t i = 0; i < ns.n && r >= 0; i++) {
		if (S_ISDIR(ns.modes[i])) {
			if ((r = sfs_lookup(v, ino, ns.v[i], &a)) < 0 ||
			    (r = empty_dir(v, a.ino)) < 0)
				break;
			r = sfs_rmdir(v, ino, ns.v[i]);
		} else
			r = sfs_unlink(v, ino, ns.v[i]);
	}
out:
	free(ns.v);
	free(ns.modes);
	return r < 0 ? r : 0;
}

static int
copy_file(struct sfs_view *v, uint64_t parent, const char *name,
    const char *path, mode_t mode, struct totals *t)
{
	struct sfs_attr a;
	static char buf[SFS_CHUNK];
	uint64_t off = 0;
	ssize_t n;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if ((r = sfs_create(v, parent, name, mode & 07777, &a)) < 0) {
		close(fd);
		return r;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		ssize_t w = sfs_write(v, a.ino, off, (size_t)n, buf);
		if (w != n) {
			close(fd);
			return w < 0 ? (int)w : -EIO;
		}
		off += (uint64_t)n;
	}
	close(fd);
	if (n < 0)
		return -errno;
	t->files++;
	t->bytes += off;
	return 0;
}

static int
copy_tree(struct sfs_view *v, uint64_t parent, const char *src, int top,
    struct totals *t)
{
	DIR *d = opendir(src);
	struct dirent *e;
	int r = 0;

	if (d == NULL)
		return -errno;
	while (r == 0 && (e = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;
		struct sfs_attr a;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    (top && strcmp(e->d_name, OVERRIDE) == 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", src, e->d_name);
		if (lstat(path, &st) != 0) {
			r = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			if ((r = sfs_mkdir(v, parent, e->d_name,
			    st.st_mode & 07777, &a)) == 0)
				r = copy_tree(v, a.ino, path, 0, t);
			t->dirs++;
		} else if (S_ISREG(st.st_mode))
			r = copy_file(v, parent, e->d_name, path, st.st_mode, t);
		else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlink(path, target, sizeof(target) - 1);
			if (n < 0) {
				r = -errno;
				break;
			}
			target[n] = '\0';
			r = sfs_symlink(v, parent, e->d_name, target, &a);
		} else
			fprintf(stderr, "hpd deploy: %s is not a file, directory"
			    " or symbolic link; skipped\n", path);
		if (r < 0)
			fprintf(stderr, "hpd deploy: %s: %s\n", path, strerror(-r));
	}
	closedir(d);
	return r;
}

int
node_deploy(const char *dir, const char *bundle)
{
	char path[PATH_MAX], hex[65];
	struct hp_config cfg;
	struct sfs *s = NULL;
	struct sfs_view *v = NULL;
	struct totals t = { 0 };
	uint8_t state[32], patch[32];
	struct stat st;
	int r;

	if (stat(bundle, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "hpd deploy: %s is not a directory; a bundle is a"
		    " directory of the contract's files (and optionally %s)\n",
		    bundle, OVERRIDE);
		return 1;
	}
	if (node_is_running(dir)) {
		fprintf(stderr, "hpd deploy: the node in %s is running; stop it"
		    " first\n", dir);
		return 1;
	}
	if (node_load_config(dir, &cfg) != 0)
		return 1;
	hp_config_free(&cfg);
	if (apply_override(dir, bundle) != 0)
		return 1;

	snprintf(path, sizeof(path), "%s/state", dir);
	if ((r = sfs_open(path, &s)) != 0) {
		fprintf(stderr, "hpd deploy: cannot open the state store in %s:"
		    " %s\n", path, hp_strerror(r));
		return 1;
	}
	if ((r = sfs_begin_rw(s, &v)) != 0) {
		fprintf(stderr, "hpd deploy: cannot start a state session: %s\n",
		    hp_strerror(r));
		sfs_close(s);
		return 1;
	}
	if ((r = empty_dir(v, SFS_STATE_INO)) < 0 ||
	    (r = copy_tree(v, SFS_STATE_INO, bundle, 1, &t)) < 0) {
		fprintf(stderr, "hpd deploy: nothing was deployed (%s)\n",
		    strerror(-r));
		sfs_abort(v);
		sfs_close(s);
		return 1;
	}
	if ((r = sfs_commit(v, state, patch)) != 0) {
		fprintf(stderr, "hpd deploy: commit failed: %s\n", hp_strerror(r));
		sfs_close(s);
		return 1;
	}
	sfs_close(s);
	hp_hash_hex(state, 32, hex);
	printf("deployed %s into %s: %llu files, %llu directories, %llu bytes;"
	    " state hash %s\n", bundle, dir, (unsigned long long)t.files,
	    (unsigned long long)t.dirs, (unsigned long long)t.bytes, hex);
	return 0;
}
