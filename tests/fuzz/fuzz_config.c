/*
 * fuzz_config.c — libFuzzer target for the hp.cfg parser (common/config.c).
 *
 * Feeds the input to hp_config_parse() as the contents of a file, with a
 * report callback that only checks each message is one line, and frees the
 * result on success. Seeds are in tests/fuzz/corpus/config/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_line(enum hp_config_diag sev, const char *msg, void *arg)
{
	if (strchr(msg, '\n') != NULL || *msg == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hp_config cfg;
	int rc;

	rc = hp_config_parse("fuzz/hp.cfg", (const char *)data, size, &cfg,
	    check_line, NULL);
	if (rc == 0)
		hp_config_free(&cfg);
	else if (rc != HP_EINVAL && rc != HP_ENOMEM)
		abort();
	return 0;
}
