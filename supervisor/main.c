/*
 * main.c — the hpd command line: new, run, check-config, rekey, version.
 */
#include "hpd.h"
#include "keys.h"
#include "log.h"

#include "build_id.h"
#include "hpd_config.h"

#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: hpd COMMAND [DIR [BUNDLE]]\n"
    "\n"
    "  new DIR           create a node directory: keys, cfg/hp.cfg with\n"
    "                    defaults and the node's own key in the UNL, and a\n"
    "                    self-signed TLS certificate for the user port\n"
    "  run DIR           run the node in the foreground (supervisor and\n"
    "                    its five workers); stop it with SIGTERM or Ctrl-C\n"
    "  check-config DIR  validate DIR/cfg/hp.cfg and report every problem\n"
    "  rekey DIR         give a stopped node new keys (its own UNL entry\n"
    "                    follows)\n"
    "  deploy DIR BUNDLE put a contract bundle (a directory) into a stopped\n"
    "                    node's state; BUNDLE/hp.cfg.override is merged\n"
    "                    into DIR/cfg/hp.cfg\n"
    "  version           print the version\n"
    "\n"
    "See hpd(8), hp.cfg(5) and hpctl(8).\n";

static int
usage(FILE *f, int code)
{
	fputs(usage_text, f);
	return code;
}

int
main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	log_init("hpd", HP_LOG_INF);
	if (cmd == NULL)
		return usage(stderr, 100);
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "help") == 0)
		return usage(stdout, 0);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("hpd %s (build %s, HotPocket config %s)\n", HPD_VERSION,
		    HPD_BUILD_ID, HP_VERSION_STRING);
		return 0;
	}
	if (strcmp(cmd, "deploy") == 0) {
		if (argc != 4) {
			fprintf(stderr, "hpd deploy: expected DIR and BUNDLE\n\n");
			return usage(stderr, 100);
		}
		if (hp_crypto_init() != 0)
			return 1;
		return node_deploy(argv[2], argv[3]);
	}
	if (argc != 3) {
		fprintf(stderr, "hpd %s: expected one argument, the node"
		    " directory\n\n", cmd);
		return usage(stderr, 100);
	}
	if (hp_crypto_init() != 0) {
		fprintf(stderr, "hpd: libsodium initialisation failed\n");
		return 1;
	}
	if (strcmp(cmd, "new") == 0)
		return node_new(argv[2]);
	if (strcmp(cmd, "check-config") == 0)
		return node_check_config(argv[2], 0);
	if (strcmp(cmd, "rekey") == 0)
		return node_rekey(argv[2]);
	if (strcmp(cmd, "run") == 0)
		return supervise_run(argv[2]);
	fprintf(stderr, "hpd: unknown command \"%s\"\n\n", cmd);
	return usage(stderr, 100);
}
