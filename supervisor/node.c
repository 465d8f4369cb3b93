/*
 * node.c — `hpd new`, `hpd check-config` and `hpd rekey`: creating and
 * checking a node directory (DESIGN §4: cfg/, ledger/, state/, mnt/, log/).
 */
#include "hpd.h"
#include "err.h"
#include "keys.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void
report_stderr(enum hp_config_diag sev, const char *msg, void *arg)
{
	fprintf(stderr, "%s: %s\n", sev == HP_CONFIG_ERROR ? "error" :
	    "warning", msg);
}

int
node_load_config(const char *dir, struct hp_config *cfg)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, HPD_CFG_REL);
	int r = hp_config_load(path, cfg, report_stderr, NULL);
	if (r == HP_ENOENT)
		fprintf(stderr, "error: %s does not exist: is %s a node"
		    " directory? Create one with `hpd new %s`\n", path, dir,
		    dir);
	else if (r == HP_EIO)
		fprintf(stderr, "error: cannot read %s: %s\n", path,
		    strerror(errno));
	return r;
}

static void
make_uuid(char out[37])
{
	uint8_t b[16];
	static const char hex[] = "0123456789abcdef";
	int o = 0;

	randombytes_buf(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

static int
dir_is_empty_or_absent(const char *dir)
{
	struct stat st;
	char probe[PATH_MAX];

	if (stat(dir, &st) != 0)
		return errno == ENOENT ? 1 : -1;
	if (!S_ISDIR(st.st_mode))
		return 0;
	snprintf(probe, sizeof(probe), "%s/%s", dir, HPD_CFG_REL);
	if (access(probe, F_OK) == 0)
		return 0;
	snprintf(probe, sizeof(probe), "%s/cfg", dir);
	return access(probe, F_OK) != 0;
}

static int
mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int
set_keys(struct hp_config *cfg, const struct hp_keypair *kp)
{
	char pk[HP_PK_HEX_LEN + 1], sk[HP_SK_HEX_LEN + 1];

	hp_pubkey_to_hex(kp->pk, pk);
	hp_seckey_to_hex(kp->sk, sk);
	free(cfg->node.public_key_hex);
	if (cfg->node.private_key_hex != NULL) {
		sodium_memzero(cfg->node.private_key_hex,
		    strlen(cfg->node.private_key_hex));
		free(cfg->node.private_key_hex);
	}
	cfg->node.public_key_hex = strdup(pk);
	cfg->node.private_key_hex = strdup(sk);
	sodium_memzero(sk, sizeof(sk));
	cfg->node.keys = *kp;
	return cfg->node.public_key_hex && cfg->node.private_key_hex ?
	    0 : HP_ENOMEM;
}

int
node_new(const char *dir)
{
	static const char *const subdirs[] = { "cfg", "ledger", "state",
	    "mnt", "log" };
	struct hp_config cfg;
	struct hp_keypair kp;
	char path[PATH_MAX], crt[PATH_MAX], uuid[37];
	int e;

	if ((e = dir_is_empty_or_absent(dir)) != 1) {
		if (e < 0)
			fprintf(stderr, "hpd new: cannot use %s: %s\n", dir,
			    strerror(errno));
		else
			fprintf(stderr, "hpd new: %s already holds a node (or is"
			    " not a directory); refusing to overwrite it. Pick"
			    " another directory, or remove this one first.\n",
			    dir);
		return 1;
	}
	if (mkdir_p(dir, 0750) != 0) {
		fprintf(stderr, "hpd new: cannot create %s: %s\n", dir,
		    strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subdirs[i]);
		if (mkdir(path, 0750) != 0 && errno != EEXIST) {
			fprintf(stderr, "hpd new: cannot create %s: %s\n",
			    path, strerror(errno));
			return 1;
		}
	}

	hp_config_defaults(&cfg);
	if (hp_keypair_generate(&kp) != 0 || set_keys(&cfg, &kp) != 0) {
		fprintf(stderr, "hpd new: key generation failed\n");
		return 1;
	}
	hp_keypair_wipe(&kp);
	make_uuid(uuid);
	cfg.contract.id = strdup(uuid);
	cfg.contract.unl = calloc(1, sizeof(char *));
	if (cfg.contract.id == NULL || cfg.contract.unl == NULL) {
		fprintf(stderr, "hpd new: out of memory\n");
		return 1;
	}
	cfg.contract.unl[0] = strdup(cfg.node.public_key_hex);
	cfg.contract.unl_count = 1;

	snprintf(path, sizeof(path), "%s/%s", dir, HPD_CFG_REL);
	if (hp_config_write(path, &cfg) != 0) {
		fprintf(stderr, "hpd new: cannot write %s: %s\n", path,
		    strerror(errno));
		hp_config_free(&cfg);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, HPD_TLS_KEY_REL);
	snprintf(crt, sizeof(crt), "%s/%s", dir, HPD_TLS_CRT_REL);
	if (tls_make_self_signed(path, crt, uuid) != 0) {
		fprintf(stderr, "hpd new: cannot create the TLS certificate"
		    " %s\n", crt);
		hp_config_free(&cfg);
		return 1;
	}
	printf("created node %s\n  public key  %s\n  contract id %s\n"
	    "start it with: hpd run %s\n", dir, cfg.node.public_key_hex,
	    cfg.contract.id, dir);
	hp_config_free(&cfg);
	return 0;
}

int
node_check_config(const char *dir, int quiet)
{
	struct hp_config cfg;

	if (node_load_config(dir, &cfg) != 0)
		return 1;
	if (!quiet)
		printf("%s/%s: ok\n", dir, HPD_CFG_REL);
	hp_config_free(&cfg);
	return 0;
}

/* Whether an hpd holds the node's lock (a running node). */
int
node_is_running(const char *dir)
{
	char path[PATH_MAX];
	int fd, busy;

	snprintf(path, sizeof(path), "%s/%s", dir, HPD_LOCK_REL);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	busy = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close(fd);
	return busy;
}

int
node_rekey(const char *dir)
{
	struct hp_config cfg;
	struct hp_keypair kp;
	char path[PATH_MAX], old[HP_PK_HEX_LEN + 1];

	if (node_is_running(dir)) {
		fprintf(stderr, "hpd rekey: the node in %s is running; stop it"
		    " first\n", dir);
		return 1;
	}
	if (node_load_config(dir, &cfg) != 0)
		return 1;
	snprintf(old, sizeof(old), "%s", cfg.node.public_key_hex);
	if (hp_keypair_generate(&kp) != 0 || set_keys(&cfg, &kp) != 0) {
		fprintf(stderr, "hpd rekey: key generation failed\n");
		hp_config_free(&cfg);
		return 1;
	}
	hp_keypair_wipe(&kp);
	for (size_t i = 0; i < cfg.contract.unl_count; i++) {
		if (strcmp(cfg.contract.unl[i], old) != 0)
			continue;
		free(cfg.contract.unl[i]);
		cfg.contract.unl[i] = strdup(cfg.node.public_key_hex);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, HPD_CFG_REL);
	if (hp_config_write(path, &cfg) != 0) {
		fprintf(stderr, "hpd rekey: cannot write %s: %s\n", path,
		    strerror(errno));
		hp_config_free(&cfg);
		return 1;
	}
	printf("new public key %s (was %s)\n", cfg.node.public_key_hex, old);
	hp_config_free(&cfg);
	return 0;
}
