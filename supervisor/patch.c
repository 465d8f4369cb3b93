/*
 * patch.c — the contract's configuration file, patch.cfg
 * (hotpocket-protocols §6.8), on the supervisor's side.
 *
 * At start, before any worker runs, the supervisor writes the patchable
 * part of hp.cfg's contract section into the state's /patch.cfg, unless
 * the file already says the same (HotPocket writes it at every start; a
 * node whose hp.cfg is older than the cluster's agreed patch then simply
 * differs, syncs the cluster's file and applies it).
 *
 * A contract changes its configuration by rewriting ../patch.cfg
 * (ctx.updateConfig). The new patch hash is voted like the state hash;
 * once a ledger carries it, the consensus worker asks the supervisor to
 * check it (HP_MSG_PATCH_CHECK). The supervisor reads NODE/mnt/patch.cfg,
 * makes sure its hash is the agreed one, merges its fields into
 * cfg/hp.cfg (after validating the result), logs "Contract config updated
 * from patch file." and restarts the consensus and runner workers so that
 * they run with the new UNL, timing, limits and contract command. The
 * answer (HP_MSG_PATCH_STATUS) tells consensus whether the file matched.
 */
#include "hpd.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "mpack.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blake3.h"

#define PATCH_MAX (1024 * 1024)
#define CHUNK (64 * 1024)
#define GROUP 256

/* node(/patch.cfg) of docs/state-hash.md for a file of these bytes. */
static void
file_hash(const uint8_t *data, size_t len, uint32_t mode, uint8_t out[32])
{
	blake3_hasher h, g;
	uint8_t be[12], ch[32];
	size_t n = (len + CHUNK - 1) / CHUNK;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, "hpd file v1", 11);
	for (int i = 0; i < 4; i++)
		be[i] = (uint8_t)(mode >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		be[4 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	blake3_hasher_update(&h, be, sizeof(be));
	for (size_t c = 0; c < n; c++) {
		size_t off = c * CHUNK, l = len - off < CHUNK ? len - off : CHUNK;
		if (c % GROUP == 0)
			blake3_hasher_init(&g);
		hp_hash(data + off, l, ch);
		blake3_hasher_update(&g, ch, 32);
		if (c % GROUP == GROUP - 1 || c == n - 1) {
			blake3_hasher_finalize(&g, ch, 32);
			blake3_hasher_update(&h, ch, 32);
		}
	}
	blake3_hasher_finalize(&h, out, 32);
}

/* The patch fields of a JSON object, others dropped; NULL if not one. */
static json_t *
patch_fields(json_t *obj)
{
	json_t *out, *v;
	const char *k;

	if (!json_is_object(obj) || (out = json_object()) == NULL)
		return NULL;
	json_object_foreach(obj, k, v)
		if (hp_config_is_patch_key(k))
			json_object_set(out, k, v);
	return out;
}

static void
report_log(enum hp_config_diag sev, const char *msg, void *arg)
{
	char *err = arg;

	if (sev == HP_CONFIG_ERROR && err[0] == '\0')
		snprintf(err, 256, "%s", msg);
}

int
cfg_merge_write(const char *cfgpath, json_t *over, const char *what,
    char *err, size_t errsize, struct hp_config *out)
{
	json_error_t jerr;
	json_t *cfg;
	struct hp_config check;
	char *text, tmp[PATH_MAX + 8], first[256] = "";
	int fd, r = -1;
	size_t len;

	err[0] = '\0';
	if ((cfg = json_load_file(cfgpath, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		snprintf(err, errsize, "%s: %s", cfgpath, jerr.text);
		return -1;
	}
	hp_json_merge(cfg, over);
	text = json_dumps(cfg, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	json_decref(cfg);
	if (text == NULL) {
		snprintf(err, errsize, "out of memory");
		return -1;
	}
	len = strlen(text);
	if (hp_config_parse(what, text, len, &check, report_log, first) != 0) {
		snprintf(err, errsize, "the merged configuration is invalid:"
		    " %s", first);
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", cfgpath);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len ||
	    write(fd, "\n", 1) != 1 || fsync(fd) != 0 || close(fd) != 0 ||
	    rename(tmp, cfgpath) != 0) {
		snprintf(err, errsize, "cannot write %s: %s", cfgpath,
		    strerror(errno));
		hp_config_free(&check);
		goto out;
	}
	if (out != NULL)
		*out = check;
	else
		hp_config_free(&check);
	r = 0;
out:
	memset(text, 0, len);	/* holds the private key */
	free(text);
	return r;
}

/* ---- at start ---- */

int
patch_init(const char *dir, const struct hp_config *cfg)
{
	char path[PATH_MAX];
	struct sfs *s = NULL;
	struct sfs_view *v = NULL;
	struct sfs_attr a;
	json_t *want, *have = NULL;
	char *text = NULL, *buf = NULL;
	uint8_t st[32], pt[32];
	ssize_t n;
	int r = -1;

	if ((want = hp_config_patch_json(cfg)) == NULL ||
	    (text = json_dumps(want, JSON_INDENT(4) | JSON_PRESERVE_ORDER)) ==
	    NULL)
		goto out;
	snprintf(path, sizeof(path), "%s/state", dir);
	if (sfs_open(path, &s) != 0) {
		log_warnx("cannot open the state store in %s to write"
		    " patch.cfg", path);
		goto out;
	}
	if (sfs_begin_rw(s, &v) != 0 || (buf = malloc(PATCH_MAX + 1)) == NULL)
		goto out;
	n = sfs_read(v, SFS_PATCH_INO, 0, PATCH_MAX, buf);
	if (n >= 0) {
		buf[n] = '\0';
		have = json_loads(buf, JSON_REJECT_DUPLICATES, NULL);
	}
	if (have != NULL) {
		json_t *pf = patch_fields(have);
		int same = pf != NULL && json_equal(pf, want);
		json_decref(pf);
		if (same) {
			sfs_abort(v);
			v = NULL;
			r = 0;
			goto out;
		}
	}
	memset(&a, 0, sizeof(a));
	a.size = 0;
	if (sfs_setattr(v, SFS_PATCH_INO, SFS_SET_SIZE, &a, NULL) != 0 ||
	    sfs_write(v, SFS_PATCH_INO, 0, strlen(text), text) !=
	    (ssize_t)strlen(text)) {
		log_warnx("cannot write patch.cfg into the state");
		goto out;
	}
	r = sfs_commit(v, st, pt);
	v = NULL;
	if (r == 0)
		log_info("patch.cfg written from hp.cfg's contract section");
out:
	if (v != NULL)
		sfs_abort(v);
	sfs_close(s);
	json_decref(want);
	json_decref(have);
	free(text);
	free(buf);
	return r;
}

/* ---- a patch agreed in a ledger ---- */

static void
reply(struct worker *w, const uint8_t hash[32], int status)
{
	struct hp_frame f;

	if (w->ch == NULL)
		return;
	hp_frame_begin(&f, HP_MSG_PATCH_STATUS, 0, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_bin(&f.pk, 32);
	msgpack_pack_bin_body(&f.pk, hash, 32);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_uint32(&f.pk, (uint32_t)status);
	hp_chan_send(w->ch, &f, -1);
}

/* Read NODE/mnt/patch.cfg; its bytes (NUL-terminated) or NULL. */
static char *
read_mounted(const char *dir, size_t *len, uint32_t *mode)
{
	char path[PATH_MAX];
	struct stat st;
	char *buf;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/mnt/patch.cfg", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || st.st_size > PATCH_MAX ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return NULL;
	}
	*len = 0;
	while ((n = read(fd, buf + *len, (size_t)st.st_size - *len)) > 0)
		*len += (size_t)n;
	close(fd);
	buf[*len] = '\0';
	*mode = st.st_mode & 07777;
	return buf;
}

/*
 * The file is read in a libuv worker thread: a read through the FUSE
 * mount waits on the state worker, and the supervisor's loop must never
 * wait on a worker. One check at a time; consensus asks again with the
 * next ledger.
 */
struct check {
	uv_work_t req;
	uint8_t agreed[32];
	uint64_t seq;
	char *text;
	size_t len;
	uint32_t mode;
};
static int checking;

static void
check_read(uv_work_t *req)
{
	struct check *c = req->data;

	c->text = read_mounted(sv.dir, &c->len, &c->mode);
}

static void
check_done(uv_work_t *req, int status)
{
	struct check *c = req->data;
	struct worker *w = &sv.w[HP_W_CONSENSUS];
	uint8_t got[32];
	char cfgpath[PATH_MAX], err[512];
	json_t *doc, *pf = NULL, *cur = NULL, *over = NULL;
	struct hp_config ncfg;

	checking = 0;
	if (status != 0 || c->text == NULL) {
		reply(w, c->agreed, PATCH_NOT_HERE);
		goto out;
	}
	file_hash((const uint8_t *)c->text, c->len, c->mode, got);
	if (memcmp(got, c->agreed, 32) != 0) {
		/* Not committed here yet (a sync or a run is under way). */
		reply(w, c->agreed, PATCH_NOT_HERE);
		goto out;
	}
	doc = json_loads(c->text, JSON_REJECT_DUPLICATES, NULL);
	pf = patch_fields(doc);
	json_decref(doc);
	cur = hp_config_patch_json(&sv.cfg);
	if (pf == NULL) {
		log_warnx("patch.cfg agreed at ledger %llu is not a JSON object;"
		    " the configuration is unchanged",
		    (unsigned long long)c->seq);
		reply(w, c->agreed, PATCH_MATCHES);
		goto out;
	}
	/* Fields the file leaves out keep their values. */
	over = json_deep_copy(cur);
	hp_json_merge(over, pf);
	if (cur != NULL && over != NULL && json_equal(over, cur)) {
		reply(w, c->agreed, PATCH_MATCHES);
		goto out;
	}
	snprintf(cfgpath, sizeof(cfgpath), "%s/%s", sv.dir, HPD_CFG_REL);
	doc = json_pack("{s:O}", "contract", pf);
	if (doc == NULL || cfg_merge_write(cfgpath, doc, "patch.cfg merged"
	    " into hp.cfg", err, sizeof(err), &ncfg) != 0) {
		log_warnx("patch.cfg agreed at ledger %llu cannot be applied:"
		    " %s; the configuration is unchanged",
		    (unsigned long long)c->seq, err);
		json_decref(doc);
		reply(w, c->agreed, PATCH_MATCHES);
		goto out;
	}
	json_decref(doc);
	hp_config_free(&sv.cfg);
	sv.cfg = ncfg;
	supervise_reload_cfg_text();
	log_info("Contract config updated from patch file.");
	reply(w, c->agreed, PATCH_APPLIED);
	/* They read the configuration at start. */
	worker_restart(&sv.w[HP_W_CONSENSUS]);
	worker_restart(&sv.w[HP_W_RUNNER]);
out:
	json_decref(pf);
	json_decref(cur);
	json_decref(over);
	free(c->text);
	free(c);
}

void
patch_check(struct worker *w, const msgpack_object *body)
{
	const msgpack_object *h = hp_mpack_get(body, 1);
	struct check *c;

	(void)w;
	if (checking || h == NULL || h->type != MSGPACK_OBJECT_BIN ||
	    h->via.bin.size != 32 || (c = calloc(1, sizeof(*c))) == NULL)
		return;
	memcpy(c->agreed, h->via.bin.ptr, 32);
	(void)hp_mpack_u64(body, 2, &c->seq);
	c->req.data = c;
	if (uv_queue_work(sv.loop, &c->req, check_read, check_done) != 0) {
		free(c);
		return;
	}
	checking = 1;
}
