/*
 * test_config.c — hp.cfg loading, checking and writing (common/config.c).
 *
 * Each rule gets its own test that feeds a minimal valid config with one
 * field changed and checks the exact line reported through the callback.
 * Keys are generated at start-up; files live in a mkdtemp directory under
 * /tmp that is removed at the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "keys.h"
#include "log.h"

#define NAME	"/x/cfg/hp.cfg"
#define UUID	"3b241101-e2bb-4255-8caf-4136c566a962"
#define MAXMSG	256
#define MB5	(5 * 1024 * 1024)

static char pk[HP_PK_HEX_LEN + 1], sk[HP_SK_HEX_LEN + 1];
static char pk2[HP_PK_HEX_LEN + 1], sk2[HP_SK_HEX_LEN + 1];
static char pku[HP_PK_HEX_LEN + 1];	/* pk in upper case */
static char tmpdir[64];

static struct {
	int n;
	enum hp_config_diag sev[MAXMSG];
	char *text[MAXMSG];
} msgs;

static void
collect(enum hp_config_diag sev, const char *msg, void *arg)
{
	assert_null(strchr(msg, '\n'));
	assert_true(msgs.n < MAXMSG);
	msgs.sev[msgs.n] = sev;
	msgs.text[msgs.n] = strdup(msg);
	assert_non_null(msgs.text[msgs.n]);
	msgs.n++;
}

static void
msgs_clear(void)
{
	for (int i = 0; i < msgs.n; i++)
		free(msgs.text[i]);
	msgs.n = 0;
}

static int
count(enum hp_config_diag sev)
{
	int n = 0;

	for (int i = 0; i < msgs.n; i++)
		n += msgs.sev[i] == sev;
	return n;
}

static void
dump_msgs(void)
{
	for (int i = 0; i < msgs.n; i++)
		print_message("  [%s] %s\n", msgs.sev[i] == HP_CONFIG_ERROR ?
		    "error" : "warning", msgs.text[i]);
}

static bool
has_msg(enum hp_config_diag sev, const char *text)
{
	for (int i = 0; i < msgs.n; i++)
		if (msgs.sev[i] == sev && strcmp(msgs.text[i], text) == 0)
			return true;
	print_message("expected: %s\nreceived:\n", text);
	dump_msgs();
	return false;
}

static bool
has_substr(enum hp_config_diag sev, const char *text)
{
	for (int i = 0; i < msgs.n; i++)
		if (msgs.sev[i] == sev && strstr(msgs.text[i], text) != NULL)
			return true;
	print_message("expected a message containing: %s\nreceived:\n", text);
	dump_msgs();
	return false;
}

/* Replace @PK@, @SK@, @PK2@, @SK2@, @PKU@ and @ID@ in a template. */
static char *
subst(const char *t)
{
	static const struct {
		const char *tok;
		const char *val;
	} map[] = {
		{ "@PK2@", pk2 }, { "@SK2@", sk2 }, { "@PKU@", pku },
		{ "@PK@", pk }, { "@SK@", sk }, { "@ID@", UUID },
	};
	size_t cap = strlen(t) * 2 + 4096, o = 0;
	char *out = malloc(cap);

	assert_non_null(out);
	while (*t != '\0') {
		size_t i;

		for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
			size_t l = strlen(map[i].tok);

			if (strncmp(t, map[i].tok, l) == 0) {
				size_t vl = strlen(map[i].val);

				assert_true(o + vl < cap);
				memcpy(out + o, map[i].val, vl);
				o += vl;
				t += l;
				break;
			}
		}
		if (i == sizeof(map) / sizeof(map[0])) {
			assert_true(o + 1 < cap);
			out[o++] = *t++;
		}
	}
	out[o] = '\0';
	return out;
}

static int
parse_raw(const char *tmpl, struct hp_config *cfg)
{
	char *text = subst(tmpl);
	int rc;

	msgs_clear();
	rc = hp_config_parse(NAME, text, strlen(text), cfg, collect, NULL);
	free(text);
	return rc;
}

/* The minimal valid config merged with patch (a JSON object template). */
static char *
with_patch(const char *patch)
{
	json_t *base, *p;
	json_error_t err;
	char *b, *t, *out;

	b = subst("{\"node\":{\"public_key\":\"@PK@\","
	    "\"private_key\":\"@SK@\"},\"contract\":{\"id\":\"@ID@\"}}");
	t = subst(patch);
	base = json_loads(b, 0, &err);
	p = json_loads(t, 0, &err);
	if (p == NULL)
		fail_msg("bad patch in test: %s: %s", t, err.text);
	assert_non_null(base);
	assert_int_equal(json_object_update_recursive(base, p), 0);
	out = json_dumps(base, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	assert_non_null(out);
	json_decref(base);
	json_decref(p);
	free(b);
	free(t);
	return out;
}

static int
parse_patch(const char *patch, struct hp_config *cfg)
{
	char *text = with_patch(patch);
	int rc;

	msgs_clear();
	rc = hp_config_parse(NAME, text, strlen(text), cfg, collect, NULL);
	free(text);
	return rc;
}

/* patch must give exactly one error, with this text after "NAME: ". */
static void
expect_error(const char *patch, const char *msg)
{
	struct hp_config cfg;
	char *m = subst(msg);
	char *full;
	int rc;

	rc = parse_patch(patch, &cfg);
	assert_int_equal(rc, HP_EINVAL);
	assert_true(asprintf(&full, NAME ": %s", m) > 0);
	free(m);
	if (!has_msg(HP_CONFIG_ERROR, full) || count(HP_CONFIG_ERROR) != 1) {
		free(full);
		fail_msg("want exactly one error: %s", msg);
	}
	free(full);
	/* cfg is freed (zeroed) on error. */
	assert_null(cfg.hp_version);
	assert_null(cfg.contract.run_as);
}

static void
expect_ok(const char *patch, struct hp_config *cfg)
{
	int rc = parse_patch(patch, cfg);

	if (rc != 0)
		dump_msgs();
	assert_int_equal(rc, 0);
	assert_int_equal(count(HP_CONFIG_ERROR), 0);
}

static char *
path_in_tmp(const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static char *
read_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	FILE *f;

	assert_int_equal(stat(path, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), st.st_size);
	fclose(f);
	buf[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	return buf;
}

/* ---- rule tests: one changed field, one exact message ---- */

#define ERR_TEST(name, patch, msg)			\
	static void					\
	name(void **state)				\
	{						\
		expect_error(patch, msg);		\
	}

ERR_TEST(t_hp_version_old, "{\"hp_version\":\"0.6.2\"}",
    "hp_version: must be a version number (digits and dots) of at least "
    "0.6.3, got \"0.6.2\"")
ERR_TEST(t_hp_version_garbage, "{\"hp_version\":\"0.6.x\"}",
    "hp_version: must be a version number (digits and dots) of at least "
    "0.6.3, got \"0.6.x\"")
ERR_TEST(t_hp_version_type, "{\"hp_version\":0.7}",
    "hp_version: must be a version number (digits and dots) of at least "
    "0.6.3, got real number 0.7")
ERR_TEST(t_pubkey_format, "{\"node\":{\"public_key\":\"ed1234\"}}",
    "node.public_key: must be a public key (\"ed\" followed by 64 hex "
    "digits), got \"ed1234\"")
ERR_TEST(t_pubkey_type, "{\"node\":{\"public_key\":42}}",
    "node.public_key: must be a public key (\"ed\" followed by 64 hex "
    "digits), got integer 42")
ERR_TEST(t_seckey_format, "{\"node\":{\"private_key\":\"edsecretzz\"}}",
    "node.private_key: must be a private key (\"ed\" followed by 128 hex "
    "digits), got a string of 10 characters (not shown)")
ERR_TEST(t_key_mismatch, "{\"node\":{\"private_key\":\"@SK2@\"}}",
    "node.private_key: must be the private key of node.public_key "
    "(signing and verifying \"hotpocket\" failed), got a different key; "
    "run `hpd rekey DIR` to create the node's key pair")
ERR_TEST(t_role, "{\"node\":{\"role\":\"leader\"}}",
    "node.role: must be \"validator\" or \"observer\", got \"leader\"")
ERR_TEST(t_role_type, "{\"node\":{\"role\":1}}",
    "node.role: must be \"validator\" or \"observer\", got integer 1")
ERR_TEST(t_history, "{\"node\":{\"history\":\"partial\"}}",
    "node.history: must be \"custom\" or \"full\", got \"partial\"")
ERR_TEST(t_primary_shards,
    "{\"node\":{\"history_config\":{\"max_primary_shards\":0}}}",
    "node.history_config.max_primary_shards: must be greater than 0 when "
    "node.history is \"custom\", got 0")
ERR_TEST(t_raw_shards_negative,
    "{\"node\":{\"history_config\":{\"max_raw_shards\":-1}}}",
    "node.history_config.max_raw_shards: must be a non-negative integer, "
    "got -1")
ERR_TEST(t_history_config_type, "{\"node\":{\"history_config\":[]}}",
    "node.history_config: must be an object, got array")
ERR_TEST(t_contract_id, "{\"contract\":{\"id\":\"not-a-uuid\"}}",
    "contract.id: must be a UUID (8-4-4-4-12 hex digits), got "
    "\"not-a-uuid\"")
ERR_TEST(t_contract_id_empty, "{\"contract\":{\"id\":\"\"}}",
    "contract.id: must be a UUID (8-4-4-4-12 hex digits), got \"\"")
ERR_TEST(t_contract_id_hyphen,
    "{\"contract\":{\"id\":\"3b241101-e2bb-4255-8caf+4136c566a962\"}}",
    "contract.id: must be a UUID (8-4-4-4-12 hex digits), got "
    "\"3b241101-e2bb-4255-8caf+4136c566a962\"")
ERR_TEST(t_execute_type, "{\"contract\":{\"execute\":1}}",
    "contract.execute: must be a boolean (true or false), got integer 1")
ERR_TEST(t_run_as_name, "{\"contract\":{\"run_as\":\"root\"}}",
    "contract.run_as: must be \"\" or \"uid:gid\" with numeric ids, got "
    "\"root\"")
ERR_TEST(t_run_as_half, "{\"contract\":{\"run_as\":\"1000:\"}}",
    "contract.run_as: must be \"\" or \"uid:gid\" with numeric ids, got "
    "\"1000:\"")
ERR_TEST(t_run_as_big, "{\"contract\":{\"run_as\":\"1:4294967295\"}}",
    "contract.run_as: must be \"\" or \"uid:gid\" with numeric ids, got "
    "\"1:4294967295\"")
ERR_TEST(t_contract_log_count,
    "{\"contract\":{\"log\":{\"max_file_count\":\"10\"}}}",
    "contract.log.max_file_count: must be a non-negative integer, got "
    "string \"10\"")
ERR_TEST(t_version_empty, "{\"contract\":{\"version\":\"\"}}",
    "contract.version: must be a non-empty string, got \"\"")
ERR_TEST(t_version_type, "{\"contract\":{\"version\":null}}",
    "contract.version: must be a non-empty string, got null")
ERR_TEST(t_unl_empty, "{\"contract\":{\"unl\":[]}}",
    "contract.unl: must be a non-empty array of public keys, got []")
ERR_TEST(t_unl_type, "{\"contract\":{\"unl\":\"@PK@\"}}",
    "contract.unl: must be a non-empty array of public keys, got string "
    "\"@PK@\"")
ERR_TEST(t_unl_entry, "{\"contract\":{\"unl\":[\"@PK@\",\"edzz\"]}}",
    "contract.unl[1]: must be a public key (\"ed\" followed by 64 hex "
    "digits), got \"edzz\"")
ERR_TEST(t_unl_entry_type, "{\"contract\":{\"unl\":[\"@PK@\",true]}}",
    "contract.unl[1]: must be a public key (\"ed\" followed by 64 hex "
    "digits), got boolean true")
ERR_TEST(t_unl_duplicate,
    "{\"contract\":{\"unl\":[\"@PK@\",\"@PK2@\",\"@PKU@\"]}}",
    "contract.unl[2]: must not repeat contract.unl[0], got \"@PK@\"")
ERR_TEST(t_bin_path_type, "{\"contract\":{\"bin_path\":[\"/bin/sh\"]}}",
    "contract.bin_path: must be a string, got array")
ERR_TEST(t_bin_args_type, "{\"contract\":{\"bin_args\":false}}",
    "contract.bin_args: must be a string, got boolean false")
ERR_TEST(t_env_type, "{\"contract\":{\"environment\":[]}}",
    "contract.environment: must be an object of string values, got array")
ERR_TEST(t_env_value, "{\"contract\":{\"environment\":{\"A\":\"1\","
    "\"B\":2}}}",
    "contract.environment.B: must be a string, got integer 2")
ERR_TEST(t_env_name, "{\"contract\":{\"environment\":{\"A=B\":\"1\"}}}",
    "contract.environment: variable names must be non-empty and must not "
    "contain '=', got \"A=B\"")
ERR_TEST(t_ledger_offset,
    "{\"contract\":{\"max_input_ledger_offset\":65536}}",
    "contract.max_input_ledger_offset: must be an integer from 0 to 65535, "
    "got 65536")
ERR_TEST(t_consensus_mode, "{\"contract\":{\"consensus\":{\"mode\":"
    "\"secret\"}}}",
    "contract.consensus.mode: must be \"private\" or \"public\", got "
    "\"secret\"")
ERR_TEST(t_roundtime_zero, "{\"contract\":{\"consensus\":{\"roundtime\":0}}}",
    "contract.consensus.roundtime: must be an integer from 1 to 3600000, "
    "got 0")
ERR_TEST(t_roundtime_big,
    "{\"contract\":{\"consensus\":{\"roundtime\":3600001}}}",
    "contract.consensus.roundtime: must be an integer from 1 to 3600000, "
    "got 3600001")
ERR_TEST(t_roundtime_string,
    "{\"contract\":{\"consensus\":{\"roundtime\":\"1000\"}}}",
    "contract.consensus.roundtime: must be an integer from 1 to 3600000, "
    "got string \"1000\"")
ERR_TEST(t_roundtime_real,
    "{\"contract\":{\"consensus\":{\"roundtime\":1000.0}}}",
    "contract.consensus.roundtime: must be an integer from 1 to 3600000, "
    "got real number 1000.0")
ERR_TEST(t_stage_slice, "{\"contract\":{\"consensus\":{\"stage_slice\":34}}}",
    "contract.consensus.stage_slice: must be an integer from 1 to 33, "
    "got 34")
ERR_TEST(t_threshold, "{\"contract\":{\"consensus\":{\"threshold\":0}}}",
    "contract.consensus.threshold: must be an integer from 1 to 100, got 0")
ERR_TEST(t_threshold_big, "{\"contract\":{\"consensus\":{\"threshold\":101}}}",
    "contract.consensus.threshold: must be an integer from 1 to 100, "
    "got 101")
ERR_TEST(t_npl_mode, "{\"contract\":{\"npl\":{\"mode\":\"open\"}}}",
    "contract.npl.mode: must be \"private\" or \"public\", got \"open\"")
ERR_TEST(t_round_limits_negative,
    "{\"contract\":{\"round_limits\":{\"proc_mem_bytes\":-5}}}",
    "contract.round_limits.proc_mem_bytes: must be a non-negative integer, "
    "got -5")
ERR_TEST(t_round_limits_real,
    "{\"contract\":{\"round_limits\":{\"exec_timeout\":1.5}}}",
    "contract.round_limits.exec_timeout: must be a non-negative integer, "
    "got real number 1.5")
ERR_TEST(t_mesh_port_zero, "{\"mesh\":{\"port\":0}}",
    "mesh.port: must be an integer from 1 to 65535, got 0")
ERR_TEST(t_mesh_port_big, "{\"mesh\":{\"port\":65536}}",
    "mesh.port: must be an integer from 1 to 65535, got 65536")
ERR_TEST(t_user_port, "{\"user\":{\"port\":-80}}",
    "user.port: must be an integer from 1 to 65535, got -80")
ERR_TEST(t_listen_type, "{\"mesh\":{\"listen\":\"yes\"}}",
    "mesh.listen: must be a boolean (true or false), got string \"yes\"")
ERR_TEST(t_peers_type, "{\"mesh\":{\"known_peers\":\"a:1\"}}",
    "mesh.known_peers: must be an array of \"host:port\" strings, got "
    "string \"a:1\"")
ERR_TEST(t_peer_port_alpha,
    "{\"mesh\":{\"known_peers\":[\"x:1\",\"y:2\",\"a:b\"]}}",
    "mesh.known_peers[2]: must be \"host:port\" with a port from 1 to "
    "65535, got \"a:b\"")
ERR_TEST(t_peer_no_port, "{\"mesh\":{\"known_peers\":[\"host\"]}}",
    "mesh.known_peers[0]: must be \"host:port\" with a port from 1 to "
    "65535, got \"host\"")
ERR_TEST(t_peer_port_zero, "{\"mesh\":{\"known_peers\":[\"h:0\"]}}",
    "mesh.known_peers[0]: must be \"host:port\" with a port from 1 to "
    "65535, got \"h:0\"")
ERR_TEST(t_peer_port_big, "{\"mesh\":{\"known_peers\":[\"h:65536\"]}}",
    "mesh.known_peers[0]: must be \"host:port\" with a port from 1 to "
    "65535, got \"h:65536\"")
ERR_TEST(t_peer_no_host, "{\"mesh\":{\"known_peers\":[\":22860\"]}}",
    "mesh.known_peers[0]: must be \"host:port\" with a port from 1 to "
    "65535, got \":22860\"")
ERR_TEST(t_peer_type, "{\"mesh\":{\"known_peers\":[22860]}}",
    "mesh.known_peers[0]: must be \"host:port\" with a port from 1 to "
    "65535, got integer 22860")
ERR_TEST(t_known_conn_zero,
    "{\"mesh\":{\"max_connections\":5,\"max_known_connections\":0}}",
    "mesh.max_known_connections: must be an integer from 1 to 5 "
    "(mesh.max_connections) when mesh.max_connections is not 0, got 0")
ERR_TEST(t_known_conn_big,
    "{\"mesh\":{\"max_connections\":5,\"max_known_connections\":6}}",
    "mesh.max_known_connections: must be an integer from 1 to 5 "
    "(mesh.max_connections) when mesh.max_connections is not 0, got 6")
ERR_TEST(t_bytes_per_msg_negative, "{\"user\":{\"max_bytes_per_msg\":-1}}",
    "user.max_bytes_per_msg: must be a non-negative integer, got -1")
ERR_TEST(t_discovery_interval,
    "{\"mesh\":{\"peer_discovery\":{\"interval\":65536}}}",
    "mesh.peer_discovery.interval: must be an integer from 0 to 65535, "
    "got 65536")
ERR_TEST(t_discovery_enabled,
    "{\"mesh\":{\"peer_discovery\":{\"enabled\":null}}}",
    "mesh.peer_discovery.enabled: must be a boolean (true or false), "
    "got null")
ERR_TEST(t_read_requests, "{\"user\":{\"concurrent_read_requests\":33}}",
    "user.concurrent_read_requests: must be an integer from 0 to 32, "
    "got 33")
ERR_TEST(t_hpfs_level, "{\"hpfs\":{\"log\":{\"log_level\":\"trace\"}}}",
    "hpfs.log.log_level: must be one of \"dbg\", \"inf\", \"wrn\", "
    "\"err\", got \"trace\"")
ERR_TEST(t_hpfs_external, "{\"hpfs\":{\"external\":\"false\"}}",
    "hpfs.external: must be a boolean (true or false), got string "
    "\"false\"")
ERR_TEST(t_log_level, "{\"log\":{\"log_level\":\"debug\"}}",
    "log.log_level: must be one of \"dbg\", \"inf\", \"wrn\", \"err\", "
    "got \"debug\"")
ERR_TEST(t_loggers_entry, "{\"log\":{\"loggers\":[\"console\",\"syslog\"]}}",
    "log.loggers[1]: must be \"console\" or \"file\", got \"syslog\"")
ERR_TEST(t_loggers_type, "{\"log\":{\"loggers\":\"console\"}}",
    "log.loggers: must be an array of \"console\" and \"file\", got "
    "string \"console\"")
ERR_TEST(t_section_type, "{\"mesh\":[1,2]}",
    "mesh: must be an object, got array")
ERR_TEST(t_section_null, "{\"log\":null}",
    "log: must be an object, got null")

/* ---- errors that need the whole document ---- */

static void
t_missing_public_key(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_raw("{\"node\":{\"private_key\":\"@SK@\"},"
	    "\"contract\":{\"id\":\"@ID@\"}}", &cfg), HP_EINVAL);
	assert_true(has_msg(HP_CONFIG_ERROR, NAME ": node.public_key: "
	    "required but missing; run `hpd rekey DIR` to create the node's "
	    "key pair"));
	assert_int_equal(count(HP_CONFIG_ERROR), 1);
}

static void
t_missing_private_key(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_raw("{\"node\":{\"public_key\":\"@PK@\"},"
	    "\"contract\":{\"id\":\"@ID@\"}}", &cfg), HP_EINVAL);
	assert_true(has_msg(HP_CONFIG_ERROR, NAME ": node.private_key: "
	    "required but missing; run `hpd rekey DIR` to create the node's "
	    "key pair"));
	assert_int_equal(count(HP_CONFIG_ERROR), 1);
}

static void
t_missing_keys_and_id(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_raw("{}", &cfg), HP_EINVAL);
	assert_true(has_substr(HP_CONFIG_ERROR, NAME ": node.public_key: "
	    "required but missing; run `hpd rekey DIR`"));
	assert_true(has_substr(HP_CONFIG_ERROR, NAME ": node.private_key: "
	    "required but missing; run `hpd rekey DIR`"));
	assert_true(has_msg(HP_CONFIG_ERROR, NAME ": contract.id: required "
	    "but missing; set a UUID, e.g. from "
	    "`cat /proc/sys/kernel/random/uuid`"));
	assert_int_equal(count(HP_CONFIG_ERROR), 3);
}

static void
t_secret_not_echoed(void **state)
{
	struct hp_config cfg;
	char *patch;

	/* A valid-looking but wrong-length private key: no key text shown. */
	assert_true(asprintf(&patch, "{\"node\":{\"private_key\":\"%.100s\"}}",
	    sk) > 0);
	assert_int_equal(parse_patch(patch, &cfg), HP_EINVAL);
	free(patch);
	assert_true(has_substr(HP_CONFIG_ERROR, "node.private_key: must be a "
	    "private key (\"ed\" followed by 128 hex digits), got a string of "
	    "100 characters (not shown)"));
	for (int i = 0; i < msgs.n; i++)
		assert_null(strstr(msgs.text[i], sk + 2 + 10));
}

static void
t_all_errors_reported(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_patch("{\"contract\":{\"consensus\":"
	    "{\"roundtime\":0,\"threshold\":0}},\"mesh\":{\"port\":0},"
	    "\"log\":{\"log_level\":\"x\"}}", &cfg), HP_EINVAL);
	assert_int_equal(count(HP_CONFIG_ERROR), 4);
	assert_true(has_substr(HP_CONFIG_ERROR,
	    "contract.consensus.roundtime: must be an integer from 1 to "
	    "3600000, got 0"));
	assert_true(has_substr(HP_CONFIG_ERROR,
	    "contract.consensus.threshold: must be an integer from 1 to 100, "
	    "got 0"));
	assert_true(has_substr(HP_CONFIG_ERROR,
	    "mesh.port: must be an integer from 1 to 65535, got 0"));
	assert_true(has_substr(HP_CONFIG_ERROR,
	    "log.log_level: must be one of"));
}

static void
t_diag_cap(void **state)
{
	struct hp_config cfg;
	char *patch, *p;
	size_t cap = 200 * 8 + 64;

	patch = p = malloc(cap);
	assert_non_null(patch);
	p += sprintf(p, "{\"log\":{\"loggers\":[");
	for (int i = 0; i < 200; i++)
		p += sprintf(p, "%s\"x\"", i ? "," : "");
	sprintf(p, "]}}");
	assert_int_equal(parse_patch(patch, &cfg), HP_EINVAL);
	free(patch);
	assert_int_equal(msgs.n, 101);
	assert_true(has_msg(HP_CONFIG_ERROR, NAME ": more than 100 problems, "
	    "the rest are not shown"));
}

static void
t_unl_too_many(void **state)
{
	struct hp_config cfg;
	char *patch, *p;
	size_t cap = 1025 * 72 + 64;

	patch = p = malloc(cap);
	assert_non_null(patch);
	p += sprintf(p, "{\"contract\":{\"unl\":[");
	for (int i = 0; i < 1025; i++)
		p += sprintf(p, "%s\"%s\"", i ? "," : "", pk);
	sprintf(p, "]}}");
	assert_int_equal(parse_patch(patch, &cfg), HP_EINVAL);
	free(patch);
	assert_true(has_msg(HP_CONFIG_ERROR, NAME ": contract.unl: must have "
	    "at most 1024 entries, got 1025"));
	assert_int_equal(count(HP_CONFIG_ERROR), 1);
}

static void
t_peers_too_many(void **state)
{
	struct hp_config cfg;
	char *patch, *p;
	size_t cap = 2000 * 12 + 64;

	patch = p = malloc(cap);
	assert_non_null(patch);
	p += sprintf(p, "{\"mesh\":{\"known_peers\":[");
	for (int i = 0; i < 2000; i++)
		p += sprintf(p, "%s\"h:%d\"", i ? "," : "", i + 1);
	sprintf(p, "]}}");
	assert_int_equal(parse_patch(patch, &cfg), HP_EINVAL);
	free(patch);
	assert_true(has_msg(HP_CONFIG_ERROR, NAME ": mesh.known_peers: must "
	    "have at most 1024 entries, got 2000"));
	assert_int_equal(count(HP_CONFIG_ERROR), 1);
}

static void
t_env_too_many(void **state)
{
	struct hp_config cfg;
	char *patch, *p;
	size_t cap = 1025 * 20 + 64;

	patch = p = malloc(cap);
	assert_non_null(patch);
	p += sprintf(p, "{\"contract\":{\"environment\":{");
	for (int i = 0; i < 1025; i++)
		p += sprintf(p, "%s\"V%d\":\"x\"", i ? "," : "", i);
	sprintf(p, "}}}");
	assert_int_equal(parse_patch(patch, &cfg), HP_EINVAL);
	free(patch);
	assert_true(has_msg(HP_CONFIG_ERROR, NAME ": contract.environment: "
	    "must have at most 1024 entries, got 1025"));
	assert_int_equal(count(HP_CONFIG_ERROR), 1);
}

/* ---- JSON syntax and document shape ---- */

static void
t_bad_json(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_raw("{\n  \"node\": {\n    \"role\": ,\n  }\n}",
	    &cfg), HP_EINVAL);
	assert_int_equal(msgs.n, 1);
	assert_true(has_substr(HP_CONFIG_ERROR, NAME ": invalid JSON at line "
	    "3, column 13: "));
}

static void
t_bad_json_eof(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_raw("{\"node\": {", &cfg), HP_EINVAL);
	assert_true(has_substr(HP_CONFIG_ERROR, NAME ": invalid JSON at line "
	    "1, column 10: "));
}

/* jansson quotes the bad token raw; the message must stay one line. */
static void
t_bad_json_newline_in_token(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_raw("{\"a\\\n\":1}", &cfg), HP_EINVAL);
	assert_int_equal(msgs.n, 1);
	assert_true(has_msg(HP_CONFIG_ERROR, NAME ": invalid JSON at line 2, "
	    "column 0: invalid escape near '\\\"a\\\\\\x0a'"));
}

static void
t_duplicate_key(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_raw("{\"log\":{},\n\"log\":{}}", &cfg),
	    HP_EINVAL);
	assert_true(has_substr(HP_CONFIG_ERROR, NAME ": invalid JSON at line "
	    "2, column "));
	assert_true(has_substr(HP_CONFIG_ERROR, "duplicate object key"));
}

static void
t_integer_overflow(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_raw("{\"mesh\":{\"idle_timeout\":"
	    "99999999999999999999}}", &cfg), HP_EINVAL);
	assert_true(has_substr(HP_CONFIG_ERROR, NAME ": invalid JSON at line "
	    "1, column "));
	assert_true(has_substr(HP_CONFIG_ERROR, "too big integer"));
}

static void
t_top_level_array(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_raw("[1]", &cfg), HP_EINVAL);
	assert_true(has_msg(HP_CONFIG_ERROR, NAME ": the top level must be "
	    "an object, got array"));
	assert_int_equal(msgs.n, 1);
}

static void
t_unknown_keys(void **state)
{
	struct hp_config cfg;

	expect_ok("{\"appbill\":{\"mode\":\"\"},\"mesh\":{\"foo\":1},"
	    "\"contract\":{\"consensus\":{\"bar\\n\":true}}}", &cfg);
	assert_int_equal(count(HP_CONFIG_WARNING), 3);
	assert_true(has_msg(HP_CONFIG_WARNING, NAME ": appbill: unknown key, "
	    "ignored"));
	assert_true(has_msg(HP_CONFIG_WARNING, NAME ": mesh.foo: unknown key, "
	    "ignored"));
	assert_true(has_msg(HP_CONFIG_WARNING, NAME ": contract.consensus."
	    "bar\\x0a: unknown key, ignored"));
	hp_config_free(&cfg);
}

/* ---- files ---- */

static void
t_missing_file(void **state)
{
	struct hp_config cfg;
	char *path = path_in_tmp("nonexistent.cfg");
	char *want;

	msgs_clear();
	assert_int_equal(hp_config_load(path, &cfg, collect, NULL),
	    HP_ENOENT);
	assert_true(asprintf(&want, "%s: cannot open: %s", path,
	    strerror(ENOENT)) > 0);
	assert_true(has_msg(HP_CONFIG_ERROR, want));
	free(want);
	free(path);
}

static void
t_file_too_big(void **state)
{
	struct hp_config cfg;
	char *path = path_in_tmp("big.cfg");
	size_t len = 1024 * 1024 + 1;
	char *buf = malloc(len), *want;

	assert_non_null(buf);
	memset(buf, ' ', len);
	buf[0] = '{';
	buf[len - 1] = '}';
	write_file(path, buf, len);
	free(buf);
	msgs_clear();
	assert_int_equal(hp_config_load(path, &cfg, collect, NULL),
	    HP_EINVAL);
	assert_true(asprintf(&want, "%s: file is 1048577 bytes, larger than "
	    "the 1048576-byte (1 MiB) limit for hp.cfg", path) > 0);
	assert_true(has_msg(HP_CONFIG_ERROR, want));
	assert_int_equal(msgs.n, 1);
	free(want);
	unlink(path);
	free(path);
}

static void
t_not_regular_file(void **state)
{
	struct hp_config cfg;

	msgs_clear();
	assert_int_equal(hp_config_load(tmpdir, &cfg, collect, NULL),
	    HP_EIO);
	assert_true(has_substr(HP_CONFIG_ERROR, ": cannot read: not a "
	    "regular file"));
}

static void
t_load_file(void **state)
{
	struct hp_config cfg;
	char *path = path_in_tmp("load.cfg");
	char *text = with_patch("{\"log\":{\"log_level\":\"err\"}}");

	write_file(path, text, strlen(text));
	free(text);
	msgs_clear();
	assert_int_equal(hp_config_load(path, &cfg, collect, NULL), 0);
	assert_int_equal(msgs.n, 0);
	assert_int_equal(cfg.log.log_level, HP_LOG_ERR);
	hp_config_free(&cfg);
	unlink(path);
	free(path);
}

/* ---- values that are accepted ---- */

static void
t_defaults(void **state)
{
	struct hp_config cfg;

	assert_int_equal(parse_raw("{\"node\":{\"public_key\":\"@PK@\","
	    "\"private_key\":\"@SK@\"},\"contract\":{\"id\":\"@ID@\"}}",
	    &cfg), 0);
	assert_int_equal(msgs.n, 0);
	assert_string_equal(cfg.hp_version, HP_VERSION_STRING);
	assert_string_equal(cfg.node.public_key_hex, pk);
	assert_string_equal(cfg.node.private_key_hex, sk);
	assert_int_equal(cfg.node.role, HP_ROLE_VALIDATOR);
	assert_int_equal(cfg.node.history, HP_HISTORY_CUSTOM);
	assert_int_equal(cfg.node.max_primary_shards, 1);
	assert_int_equal(cfg.node.max_raw_shards, 0);
	assert_string_equal(cfg.contract.id, UUID);
	assert_true(cfg.contract.execute);
	assert_string_equal(cfg.contract.run_as, "");
	assert_false(cfg.contract.log.enable);
	assert_int_equal(cfg.contract.log.max_mbytes_per_file, 5);
	assert_int_equal(cfg.contract.log.max_file_count, 10);
	assert_string_equal(cfg.contract.version, "1.0");
	assert_int_equal(cfg.contract.unl_count, 1);
	assert_string_equal(cfg.contract.unl[0], pk);
	assert_string_equal(cfg.contract.bin_path,
	    "<your contract binary here>");
	assert_string_equal(cfg.contract.bin_args, "");
	assert_int_equal(cfg.contract.environment_count, 0);
	assert_int_equal(cfg.contract.max_input_ledger_offset, 10);
	assert_int_equal(cfg.contract.consensus.mode, HP_MODE_PRIVATE);
	assert_int_equal(cfg.contract.consensus.roundtime, 1000);
	assert_int_equal(cfg.contract.consensus.stage_slice, 25);
	assert_int_equal(cfg.contract.consensus.threshold, 80);
	assert_int_equal(cfg.contract.npl.mode, HP_MODE_PRIVATE);
	assert_int_equal(cfg.contract.round_limits.user_input_bytes, 0);
	assert_int_equal(cfg.contract.round_limits.user_output_bytes, 0);
	assert_int_equal(cfg.contract.round_limits.npl_output_bytes, 0);
	assert_int_equal(cfg.contract.round_limits.proc_cpu_seconds, 0);
	assert_int_equal(cfg.contract.round_limits.proc_mem_bytes, 0);
	assert_int_equal(cfg.contract.round_limits.proc_ofd_count, 0);
	assert_int_equal(cfg.contract.round_limits.exec_timeout, 300000);
	assert_int_equal(cfg.mesh.port, 22860);
	assert_true(cfg.mesh.listen);
	assert_int_equal(cfg.mesh.idle_timeout, 120000);
	assert_int_equal(cfg.mesh.known_peers_count, 0);
	assert_true(cfg.mesh.msg_forwarding);
	assert_int_equal(cfg.mesh.max_connections, 0);
	assert_int_equal(cfg.mesh.max_known_connections, 0);
	assert_int_equal(cfg.mesh.max_in_connections_per_host, 0);
	assert_int_equal(cfg.mesh.max_bytes_per_msg, MB5);
	assert_int_equal(cfg.mesh.max_bytes_per_min, 0);
	assert_int_equal(cfg.mesh.max_bad_msgs_per_min, 0);
	assert_int_equal(cfg.mesh.max_bad_msgsigs_per_min, 0);
	assert_int_equal(cfg.mesh.max_dup_msgs_per_min, 0);
	assert_true(cfg.mesh.peer_discovery.enabled);
	assert_int_equal(cfg.mesh.peer_discovery.interval, 30000);
	assert_int_equal(cfg.user.port, 8080);
	assert_true(cfg.user.listen);
	assert_int_equal(cfg.user.idle_timeout, 0);
	assert_int_equal(cfg.user.max_bytes_per_msg, MB5);
	assert_int_equal(cfg.user.max_bytes_per_min, 0);
	assert_int_equal(cfg.user.max_bad_msgs_per_min, 0);
	assert_int_equal(cfg.user.max_connections, 0);
	assert_int_equal(cfg.user.max_in_connections_per_host, 0);
	assert_int_equal(cfg.user.concurrent_read_requests, 4);
	assert_false(cfg.hpfs.external);
	assert_int_equal(cfg.hpfs.log_level, HP_LOG_WRN);
	assert_int_equal(cfg.log.log_level, HP_LOG_INF);
	assert_int_equal(cfg.log.max_mbytes_per_file, 5);
	assert_int_equal(cfg.log.max_file_count, 10);
	assert_true(cfg.log.log_console);
	assert_true(cfg.log.log_file);
	hp_config_free(&cfg);
	assert_null(cfg.node.private_key_hex);
	assert_null(cfg.contract.unl);
}

static void
t_keys_decoded(void **state)
{
	struct hp_config cfg;
	struct hp_keypair kp;

	assert_int_equal(hp_keypair_from_hex(pk, sk, &kp), 0);
	/* Upper-case hex is accepted and stored lower-cased. */
	expect_ok("{\"node\":{\"public_key\":\"@PKU@\"}}", &cfg);
	assert_string_equal(cfg.node.public_key_hex, pk);
	assert_memory_equal(cfg.node.keys.pk, kp.pk, HP_PK_BYTES);
	assert_memory_equal(cfg.node.keys.sk, kp.sk, HP_SK_BYTES);
	hp_config_free(&cfg);
	hp_keypair_wipe(&kp);
}

static void
t_max_bytes_per_msg_zero(void **state)
{
	struct hp_config cfg;

	expect_ok("{\"mesh\":{\"max_bytes_per_msg\":0},"
	    "\"user\":{\"max_bytes_per_msg\":0}}", &cfg);
	assert_int_equal(cfg.mesh.max_bytes_per_msg, 5 * 1024 * 1024);
	assert_int_equal(cfg.user.max_bytes_per_msg, 5 * 1024 * 1024);
	hp_config_free(&cfg);
	expect_ok("{\"mesh\":{\"max_bytes_per_msg\":1234},"
	    "\"user\":{\"max_bytes_per_msg\":99}}", &cfg);
	assert_int_equal(cfg.mesh.max_bytes_per_msg, 1234);
	assert_int_equal(cfg.user.max_bytes_per_msg, 99);
	hp_config_free(&cfg);
}

static void
t_versions_accepted(void **state)
{
	static const char *const ok[] = { "0.6.3", "0.6.4", "0.6.10", "0.7",
	    "1", "0.6.3.1", "10.0.0" };
	struct hp_config cfg;
	char *patch;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_true(asprintf(&patch, "{\"hp_version\":\"%s\"}", ok[i])
		    > 0);
		expect_ok(patch, &cfg);
		free(patch);
		assert_string_equal(cfg.hp_version, ok[i]);
		hp_config_free(&cfg);
	}
	expect_error("{\"hp_version\":\"0.6\"}", "hp_version: must be a "
	    "version number (digits and dots) of at least 0.6.3, got \"0.6\"");
	expect_error("{\"hp_version\":\"0.6.3.\"}", "hp_version: must be a "
	    "version number (digits and dots) of at least 0.6.3, got "
	    "\"0.6.3.\"");
}

static void
t_unl_sorted(void **state)
{
	struct hp_config cfg;
	const char *lo, *hi;

	expect_ok("{\"contract\":{\"unl\":[\"@PK2@\",\"@PKU@\"]}}", &cfg);
	assert_int_equal(cfg.contract.unl_count, 2);
	lo = strcmp(pk, pk2) < 0 ? pk : pk2;
	hi = lo == pk ? pk2 : pk;
	assert_string_equal(cfg.contract.unl[0], lo);
	assert_string_equal(cfg.contract.unl[1], hi);
	hp_config_free(&cfg);
}

static void
t_environment_sorted(void **state)
{
	struct hp_config cfg;

	expect_ok("{\"contract\":{\"environment\":{\"ZED\":\"z\",\"ALPHA\":"
	    "\"a b\",\"MID\":\"\"}}}", &cfg);
	assert_int_equal(cfg.contract.environment_count, 3);
	assert_string_equal(cfg.contract.environment[0].key, "ALPHA");
	assert_string_equal(cfg.contract.environment[0].value, "a b");
	assert_string_equal(cfg.contract.environment[1].key, "MID");
	assert_string_equal(cfg.contract.environment[1].value, "");
	assert_string_equal(cfg.contract.environment[2].key, "ZED");
	hp_config_free(&cfg);
}

static void
t_known_peers_parsed(void **state)
{
	struct hp_config cfg;

	expect_ok("{\"mesh\":{\"known_peers\":[\"10.0.0.1:22861\","
	    "\"node.example.org:1\",\"::1:65535\"]}}", &cfg);
	assert_int_equal(cfg.mesh.known_peers_count, 3);
	assert_string_equal(cfg.mesh.known_peers[0].host, "10.0.0.1");
	assert_int_equal(cfg.mesh.known_peers[0].port, 22861);
	assert_string_equal(cfg.mesh.known_peers[1].host, "node.example.org");
	assert_int_equal(cfg.mesh.known_peers[1].port, 1);
	assert_string_equal(cfg.mesh.known_peers[2].host, "::1");
	assert_int_equal(cfg.mesh.known_peers[2].port, 65535);
	hp_config_free(&cfg);
}

static void
t_accepted_edges(void **state)
{
	struct hp_config cfg;

	expect_ok("{\"node\":{\"history\":\"full\",\"role\":\"observer\","
	    "\"history_config\":{\"max_primary_shards\":0}},"
	    "\"contract\":{\"run_as\":\"1000:1000\",\"consensus\":"
	    "{\"roundtime\":3600000,\"stage_slice\":33,\"threshold\":100,"
	    "\"mode\":\"public\"},\"max_input_ledger_offset\":65535},"
	    "\"mesh\":{\"max_connections\":5,\"max_known_connections\":5,"
	    "\"peer_discovery\":{\"interval\":65535},\"port\":65535},"
	    "\"user\":{\"concurrent_read_requests\":32,\"port\":1},"
	    "\"log\":{\"loggers\":[]}}", &cfg);
	assert_int_equal(cfg.node.history, HP_HISTORY_FULL);
	assert_int_equal(cfg.node.role, HP_ROLE_OBSERVER);
	assert_int_equal(cfg.node.max_primary_shards, 0);
	assert_string_equal(cfg.contract.run_as, "1000:1000");
	assert_int_equal(cfg.contract.consensus.mode, HP_MODE_PUBLIC);
	assert_int_equal(cfg.mesh.port, 65535);
	assert_int_equal(cfg.user.port, 1);
	assert_false(cfg.log.log_console);
	assert_false(cfg.log.log_file);
	hp_config_free(&cfg);
}

/* ---- writing ---- */

static void
assert_cfg_equal(const struct hp_config *a, const struct hp_config *b)
{
	size_t i;

	assert_string_equal(a->hp_version, b->hp_version);
	assert_string_equal(a->node.public_key_hex, b->node.public_key_hex);
	assert_string_equal(a->node.private_key_hex, b->node.private_key_hex);
	assert_memory_equal(&a->node.keys, &b->node.keys,
	    sizeof(a->node.keys));
	assert_int_equal(a->node.role, b->node.role);
	assert_int_equal(a->node.history, b->node.history);
	assert_int_equal(a->node.max_primary_shards,
	    b->node.max_primary_shards);
	assert_int_equal(a->node.max_raw_shards, b->node.max_raw_shards);
	assert_string_equal(a->contract.id, b->contract.id);
	assert_int_equal(a->contract.execute, b->contract.execute);
	assert_string_equal(a->contract.run_as, b->contract.run_as);
	assert_memory_equal(&a->contract.log, &b->contract.log,
	    sizeof(a->contract.log));
	assert_string_equal(a->contract.version, b->contract.version);
	assert_int_equal(a->contract.unl_count, b->contract.unl_count);
	for (i = 0; i < a->contract.unl_count; i++)
		assert_string_equal(a->contract.unl[i], b->contract.unl[i]);
	assert_string_equal(a->contract.bin_path, b->contract.bin_path);
	assert_string_equal(a->contract.bin_args, b->contract.bin_args);
	assert_int_equal(a->contract.environment_count,
	    b->contract.environment_count);
	for (i = 0; i < a->contract.environment_count; i++) {
		assert_string_equal(a->contract.environment[i].key,
		    b->contract.environment[i].key);
		assert_string_equal(a->contract.environment[i].value,
		    b->contract.environment[i].value);
	}
	assert_int_equal(a->contract.max_input_ledger_offset,
	    b->contract.max_input_ledger_offset);
	assert_memory_equal(&a->contract.consensus, &b->contract.consensus,
	    sizeof(a->contract.consensus));
	assert_int_equal(a->contract.npl.mode, b->contract.npl.mode);
	assert_memory_equal(&a->contract.round_limits,
	    &b->contract.round_limits, sizeof(a->contract.round_limits));
	assert_int_equal(a->mesh.port, b->mesh.port);
	assert_int_equal(a->mesh.listen, b->mesh.listen);
	assert_int_equal(a->mesh.idle_timeout, b->mesh.idle_timeout);
	assert_int_equal(a->mesh.known_peers_count, b->mesh.known_peers_count);
	for (i = 0; i < a->mesh.known_peers_count; i++) {
		assert_string_equal(a->mesh.known_peers[i].host,
		    b->mesh.known_peers[i].host);
		assert_int_equal(a->mesh.known_peers[i].port,
		    b->mesh.known_peers[i].port);
	}
	assert_int_equal(a->mesh.msg_forwarding, b->mesh.msg_forwarding);
	assert_int_equal(a->mesh.max_connections, b->mesh.max_connections);
	assert_int_equal(a->mesh.max_known_connections,
	    b->mesh.max_known_connections);
	assert_int_equal(a->mesh.max_in_connections_per_host,
	    b->mesh.max_in_connections_per_host);
	assert_int_equal(a->mesh.max_bytes_per_msg, b->mesh.max_bytes_per_msg);
	assert_int_equal(a->mesh.max_bytes_per_min, b->mesh.max_bytes_per_min);
	assert_int_equal(a->mesh.max_bad_msgs_per_min,
	    b->mesh.max_bad_msgs_per_min);
	assert_int_equal(a->mesh.max_bad_msgsigs_per_min,
	    b->mesh.max_bad_msgsigs_per_min);
	assert_int_equal(a->mesh.max_dup_msgs_per_min,
	    b->mesh.max_dup_msgs_per_min);
	assert_int_equal(a->mesh.peer_discovery.enabled,
	    b->mesh.peer_discovery.enabled);
	assert_int_equal(a->mesh.peer_discovery.interval,
	    b->mesh.peer_discovery.interval);
	assert_memory_equal(&a->user, &b->user, sizeof(a->user));
	assert_memory_equal(&a->hpfs, &b->hpfs, sizeof(a->hpfs));
	assert_memory_equal(&a->log, &b->log, sizeof(a->log));
}

static const char full_patch[] =
    "{\"hp_version\":\"0.6.3\","
    "\"node\":{\"role\":\"observer\",\"history\":\"full\","
    "\"history_config\":{\"max_primary_shards\":7,\"max_raw_shards\":3}},"
    "\"contract\":{\"execute\":false,\"run_as\":\"10001:10002\","
    "\"log\":{\"enable\":true,\"max_mbytes_per_file\":7,"
    "\"max_file_count\":3},\"version\":\"2.5\","
    "\"unl\":[\"@PK2@\",\"@PK@\"],\"bin_path\":\"/usr/bin/node\","
    "\"bin_args\":\"index.js --x \\\"q\\\"\","
    "\"environment\":{\"B\":\"2\",\"A\":\"\\u00e9\"},"
    "\"max_input_ledger_offset\":0,"
    "\"consensus\":{\"mode\":\"public\",\"roundtime\":2000,"
    "\"stage_slice\":20,\"threshold\":67},\"npl\":{\"mode\":\"public\"},"
    "\"round_limits\":{\"user_input_bytes\":1,\"user_output_bytes\":2,"
    "\"npl_output_bytes\":3,\"proc_cpu_seconds\":4,\"proc_mem_bytes\":5,"
    "\"proc_ofd_count\":6,\"exec_timeout\":0}},"
    "\"mesh\":{\"port\":22861,\"listen\":false,\"idle_timeout\":5,"
    "\"known_peers\":[\"b.example:2\",\"10.1.1.1:22860\"],"
    "\"msg_forwarding\":false,\"max_connections\":9,"
    "\"max_known_connections\":4,\"max_in_connections_per_host\":2,"
    "\"max_bytes_per_msg\":0,\"max_bytes_per_min\":8,"
    "\"max_bad_msgs_per_min\":9,\"max_bad_msgsigs_per_min\":10,"
    "\"max_dup_msgs_per_min\":11,"
    "\"peer_discovery\":{\"enabled\":false,\"interval\":1000}},"
    "\"user\":{\"port\":8081,\"listen\":false,\"idle_timeout\":12,"
    "\"max_bytes_per_msg\":4096,\"max_bytes_per_min\":13,"
    "\"max_bad_msgs_per_min\":14,\"max_connections\":15,"
    "\"max_in_connections_per_host\":16,\"concurrent_read_requests\":0},"
    "\"hpfs\":{\"external\":true,\"log\":{\"log_level\":\"dbg\"}},"
    "\"log\":{\"log_level\":\"wrn\",\"max_mbytes_per_file\":1,"
    "\"max_file_count\":2,\"loggers\":[\"file\"]}}";

static void
t_round_trip(void **state)
{
	struct hp_config a, b;
	char *path = path_in_tmp("rt.cfg"), *tmp = path_in_tmp("rt.cfg.tmp");
	struct stat st;

	expect_ok(full_patch, &a);
	assert_int_equal(a.mesh.max_bytes_per_msg, MB5);
	assert_int_equal(hp_config_write(path, &a), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(tmp, &st), -1);
	msgs_clear();
	assert_int_equal(hp_config_load(path, &b, collect, NULL), 0);
	assert_int_equal(msgs.n, 0);
	assert_cfg_equal(&a, &b);
	hp_config_free(&b);
	/* Writing over an existing file works the same. */
	assert_int_equal(hp_config_write(path, &a), 0);
	assert_int_equal(hp_config_load(path, &b, collect, NULL), 0);
	assert_cfg_equal(&a, &b);
	hp_config_free(&a);
	hp_config_free(&b);
	unlink(path);
	free(path);
	free(tmp);
}

static void
t_round_trip_defaults(void **state)
{
	struct hp_config a, b;
	char *path = path_in_tmp("rtd.cfg");

	expect_ok("{}", &a);
	assert_int_equal(hp_config_write(path, &a), 0);
	msgs_clear();
	assert_int_equal(hp_config_load(path, &b, collect, NULL), 0);
	assert_int_equal(msgs.n, 0);
	assert_cfg_equal(&a, &b);
	hp_config_free(&a);
	hp_config_free(&b);
	unlink(path);
	free(path);
}

/* The written file has every field, HotPocket's nesting and order. */
static void
t_write_format(void **state)
{
	static const char *const order[] = {
		"{\n    \"hp_version\": \"0.6.4\",\n    \"node\": {\n"
		"        \"public_key\": ",
		"\"role\": \"validator\",", "\"history\": \"custom\",",
		"\"history_config\": {\n"
		"            \"max_primary_shards\": 1,\n"
		"            \"max_raw_shards\": 0\n        }\n    },",
		"\"contract\": {", "\"execute\": true,", "\"run_as\": \"\",",
		"\"log\": {\n            \"enable\": false,\n"
		"            \"max_mbytes_per_file\": 5,\n"
		"            \"max_file_count\": 10\n        },",
		"\"version\": \"1.0\",", "\"unl\": [", "\"bin_path\": ",
		"\"bin_args\": \"\",", "\"environment\": {},",
		"\"max_input_ledger_offset\": 10,",
		"\"consensus\": {\n            \"mode\": \"private\",\n"
		"            \"roundtime\": 1000,\n"
		"            \"stage_slice\": 25,\n"
		"            \"threshold\": 80\n        },",
		"\"npl\": {\n            \"mode\": \"private\"\n        },",
		"\"round_limits\": {\n            \"user_input_bytes\": 0,",
		"\"exec_timeout\": 300000\n        }\n    },",
		"\"mesh\": {\n        \"port\": 22860,", "\"known_peers\": [],",
		"\"max_bytes_per_msg\": 5242880,",
		"\"max_dup_msgs_per_min\": 0,",
		"\"peer_discovery\": {\n            \"enabled\": true,\n"
		"            \"interval\": 30000\n        }\n    },",
		"\"user\": {\n        \"port\": 8080,",
		"\"concurrent_read_requests\": 4\n    },",
		"\"hpfs\": {\n        \"external\": false,\n"
		"        \"log\": {\n            \"log_level\": \"wrn\"\n"
		"        }\n    },",
		"\"log\": {\n        \"log_level\": \"inf\",\n"
		"        \"max_mbytes_per_file\": 5,\n"
		"        \"max_file_count\": 10,\n"
		"        \"loggers\": [\n            \"console\",\n"
		"            \"file\"\n        ]\n    }\n}\n",
	};
	struct hp_config cfg;
	char *path = path_in_tmp("fmt.cfg"), *text;
	const char *p;
	size_t len;

	expect_ok("{}", &cfg);
	assert_int_equal(hp_config_write(path, &cfg), 0);
	hp_config_free(&cfg);
	text = read_file(path, &len);
	assert_true(len > 0 && text[len - 1] == '\n' && text[len - 2] == '}');
	p = text;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *q = strstr(p, order[i]);

		if (q == NULL)
			fail_msg("not found in order: %s\nin:\n%s", order[i],
			    text);
		p = q + strlen(order[i]);
	}
	assert_int_equal(*p, '\0');
	free(text);
	unlink(path);
	free(path);
}

static void
t_write_unset_fields_left_out(void **state)
{
	struct hp_config cfg, back;
	char *path = path_in_tmp("new.cfg");

	/* What `hpd new` starts from: defaults without keys or id. */
	hp_config_defaults(&cfg);
	assert_int_equal(hp_config_write(path, &cfg), 0);
	msgs_clear();
	assert_int_equal(hp_config_load(path, &back, collect, NULL),
	    HP_EINVAL);
	assert_int_equal(count(HP_CONFIG_ERROR), 4);
	assert_true(has_substr(HP_CONFIG_ERROR, "node.public_key: required"));
	assert_true(has_substr(HP_CONFIG_ERROR, "node.private_key: required"));
	assert_true(has_substr(HP_CONFIG_ERROR, "contract.id: required"));
	assert_true(has_substr(HP_CONFIG_ERROR, "contract.unl: must be a "
	    "non-empty array of public keys, got []"));
	hp_config_free(&cfg);
	unlink(path);
	free(path);
}

static void
t_write_bad_dir(void **state)
{
	struct hp_config cfg;

	hp_config_defaults(&cfg);
	assert_int_equal(hp_config_write("/nonexistent-dir/x/hp.cfg", &cfg),
	    HP_EIO);
	hp_config_free(&cfg);
}

static void
t_null_report(void **state)
{
	struct hp_config cfg;
	const char *bad = "{\"mesh\":{\"port\":0}}";

	assert_int_equal(hp_config_parse(NAME, bad, strlen(bad), &cfg, NULL,
	    NULL), HP_EINVAL);
}

/* ---- fixtures ---- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

static int
group_setup(void **state)
{
	struct hp_keypair kp;
	int i;

	if (hp_crypto_init() != 0)
		return -1;
	hp_keypair_generate(&kp);
	hp_pubkey_to_hex(kp.pk, pk);
	hp_seckey_to_hex(kp.sk, sk);
	hp_keypair_generate(&kp);
	hp_pubkey_to_hex(kp.pk, pk2);
	hp_seckey_to_hex(kp.sk, sk2);
	hp_keypair_wipe(&kp);
	for (i = 0; pk[i] != '\0'; i++)
		pku[i] = (pk[i] >= 'a' && pk[i] <= 'f') ?
		    (char)(pk[i] - 'a' + 'A') : pk[i];
	pku[i] = '\0';
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	msgs_clear();
	return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_hp_version_old),
		cmocka_unit_test(t_hp_version_garbage),
		cmocka_unit_test(t_hp_version_type),
		cmocka_unit_test(t_pubkey_format),
		cmocka_unit_test(t_pubkey_type),
		cmocka_unit_test(t_seckey_format),
		cmocka_unit_test(t_key_mismatch),
		cmocka_unit_test(t_role),
		cmocka_unit_test(t_role_type),
		cmocka_unit_test(t_history),
		cmocka_unit_test(t_primary_shards),
		cmocka_unit_test(t_raw_shards_negative),
		cmocka_unit_test(t_history_config_type),
		cmocka_unit_test(t_contract_id),
		cmocka_unit_test(t_contract_id_empty),
		cmocka_unit_test(t_contract_id_hyphen),
		cmocka_unit_test(t_execute_type),
		cmocka_unit_test(t_run_as_name),
		cmocka_unit_test(t_run_as_half),
		cmocka_unit_test(t_run_as_big),
		cmocka_unit_test(t_contract_log_count),
		cmocka_unit_test(t_version_empty),
		cmocka_unit_test(t_version_type),
		cmocka_unit_test(t_unl_empty),
		cmocka_unit_test(t_unl_type),
		cmocka_unit_test(t_unl_entry),
		cmocka_unit_test(t_unl_entry_type),
		cmocka_unit_test(t_unl_duplicate),
		cmocka_unit_test(t_bin_path_type),
		cmocka_unit_test(t_bin_args_type),
		cmocka_unit_test(t_env_type),
		cmocka_unit_test(t_env_value),
		cmocka_unit_test(t_env_name),
		cmocka_unit_test(t_ledger_offset),
		cmocka_unit_test(t_consensus_mode),
		cmocka_unit_test(t_roundtime_zero),
		cmocka_unit_test(t_roundtime_big),
		cmocka_unit_test(t_roundtime_string),
		cmocka_unit_test(t_roundtime_real),
		cmocka_unit_test(t_stage_slice),
		cmocka_unit_test(t_threshold),
		cmocka_unit_test(t_threshold_big),
		cmocka_unit_test(t_npl_mode),
		cmocka_unit_test(t_round_limits_negative),
		cmocka_unit_test(t_round_limits_real),
		cmocka_unit_test(t_mesh_port_zero),
		cmocka_unit_test(t_mesh_port_big),
		cmocka_unit_test(t_user_port),
		cmocka_unit_test(t_listen_type),
		cmocka_unit_test(t_peers_type),
		cmocka_unit_test(t_peer_port_alpha),
		cmocka_unit_test(t_peer_no_port),
		cmocka_unit_test(t_peer_port_zero),
		cmocka_unit_test(t_peer_port_big),
		cmocka_unit_test(t_peer_no_host),
		cmocka_unit_test(t_peer_type),
		cmocka_unit_test(t_known_conn_zero),
		cmocka_unit_test(t_known_conn_big),
		cmocka_unit_test(t_bytes_per_msg_negative),
		cmocka_unit_test(t_discovery_interval),
		cmocka_unit_test(t_discovery_enabled),
		cmocka_unit_test(t_read_requests),
		cmocka_unit_test(t_hpfs_level),
		cmocka_unit_test(t_hpfs_external),
		cmocka_unit_test(t_log_level),
		cmocka_unit_test(t_loggers_entry),
		cmocka_unit_test(t_loggers_type),
		cmocka_unit_test(t_section_type),
		cmocka_unit_test(t_section_null),
		cmocka_unit_test(t_missing_public_key),
		cmocka_unit_test(t_missing_private_key),
		cmocka_unit_test(t_missing_keys_and_id),
		cmocka_unit_test(t_secret_not_echoed),
		cmocka_unit_test(t_all_errors_reported),
		cmocka_unit_test(t_diag_cap),
		cmocka_unit_test(t_unl_too_many),
		cmocka_unit_test(t_peers_too_many),
		cmocka_unit_test(t_env_too_many),
		cmocka_unit_test(t_bad_json),
		cmocka_unit_test(t_bad_json_eof),
		cmocka_unit_test(t_bad_json_newline_in_token),
		cmocka_unit_test(t_duplicate_key),
		cmocka_unit_test(t_integer_overflow),
		cmocka_unit_test(t_top_level_array),
		cmocka_unit_test(t_unknown_keys),
		cmocka_unit_test(t_missing_file),
		cmocka_unit_test(t_file_too_big),
		cmocka_unit_test(t_not_regular_file),
		cmocka_unit_test(t_load_file),
		cmocka_unit_test(t_defaults),
		cmocka_unit_test(t_keys_decoded),
		cmocka_unit_test(t_max_bytes_per_msg_zero),
		cmocka_unit_test(t_versions_accepted),
		cmocka_unit_test(t_unl_sorted),
		cmocka_unit_test(t_environment_sorted),
		cmocka_unit_test(t_known_peers_parsed),
		cmocka_unit_test(t_accepted_edges),
		cmocka_unit_test(t_round_trip),
		cmocka_unit_test(t_round_trip_defaults),
		cmocka_unit_test(t_write_format),
		cmocka_unit_test(t_write_unset_fields_left_out),
		cmocka_unit_test(t_write_bad_dir),
		cmocka_unit_test(t_null_report),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
