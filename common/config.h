/*
 * config.h — hp.cfg: HotPocket's sections and field names, every field
 * optional with HotPocket's default.
 *
 * hp_config_load() reads and validates a file; every problem is reported as
 * "FILE: SECTION.FIELD: RULE, got VALUE" (one line each) through the
 * caller's error callback, and unknown keys are reported as warnings.
 * The struct owns every string and array in it; hp_config_free() releases
 * them and wipes the private key.
 */
#ifndef HP_CONFIG_H
#define HP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"

#define HP_VERSION_STRING "0.6.4"
#define HP_MIN_CONFIG_VERSION "0.6.3"

enum hp_role { HP_ROLE_VALIDATOR, HP_ROLE_OBSERVER };
enum hp_history { HP_HISTORY_CUSTOM, HP_HISTORY_FULL };
enum hp_mode { HP_MODE_PRIVATE, HP_MODE_PUBLIC };

struct hp_env_var {
	char *key;
	char *value;
};

struct hp_peer_addr {
	char *host;
	uint16_t port;
};

struct hp_config {
	char *hp_version;

	struct {
		char *public_key_hex;	/* "ed" + 64 hex */
		char *private_key_hex;	/* "ed" + 128 hex */
		struct hp_keypair keys;	/* decoded and checked */
		enum hp_role role;
		enum hp_history history;
		uint64_t max_primary_shards;
		uint64_t max_raw_shards;
	} node;

	struct {
		char *id;		/* UUID */
		bool execute;
		char *run_as;		/* "uid:gid" or "" */
		struct {
			bool enable;
			uint64_t max_mbytes_per_file;
			uint64_t max_file_count;
		} log;
		/* The patchable part (patch.cfg). */
		char *version;
		char **unl;		/* hex public keys, sorted, unique */
		size_t unl_count;
		char *bin_path;
		char *bin_args;
		struct hp_env_var *environment;	/* sorted by key */
		size_t environment_count;
		uint64_t max_input_ledger_offset;
		struct {
			enum hp_mode mode;
			uint64_t roundtime;	/* ms, 1..3600000 */
			uint64_t stage_slice;	/* percent, 1..33 */
			uint64_t threshold;	/* percent, 1..100 */
		} consensus;
		struct {
			enum hp_mode mode;
		} npl;
		struct {
			uint64_t user_input_bytes;
			uint64_t user_output_bytes;
			uint64_t npl_output_bytes;
			uint64_t proc_cpu_seconds;
			uint64_t proc_mem_bytes;
			uint64_t proc_ofd_count;
			uint64_t exec_timeout;	/* ms, 0 = none */
		} round_limits;
	} contract;

	struct {
		uint16_t port;
		bool listen;
		uint64_t idle_timeout;
		struct hp_peer_addr *known_peers;
		size_t known_peers_count;
		bool msg_forwarding;
		uint64_t max_connections;
		uint64_t max_known_connections;
		uint64_t max_in_connections_per_host;
		uint64_t max_bytes_per_msg;	/* 0 in file → 5 MB */
		uint64_t max_bytes_per_min;
		uint64_t max_bad_msgs_per_min;
		uint64_t max_bad_msgsigs_per_min;
		uint64_t max_dup_msgs_per_min;
		struct {
			bool enabled;
			uint64_t interval;	/* ms, <= 65535 */
		} peer_discovery;
	} mesh;

	struct {
		uint16_t port;
		bool listen;
		uint64_t idle_timeout;
		uint64_t max_bytes_per_msg;	/* 0 in file → 5 MB */
		uint64_t max_bytes_per_min;
		uint64_t max_bad_msgs_per_min;
		uint64_t max_connections;
		uint64_t max_in_connections_per_host;
		uint64_t concurrent_read_requests;	/* <= 32 */
	} user;

	struct {
		bool external;
		int log_level;		/* enum hp_log_level */
	} hpfs;

	struct {
		int log_level;		/* enum hp_log_level */
		uint64_t max_mbytes_per_file;
		uint64_t max_file_count;
		bool log_console;
		bool log_file;
	} log;
};

/* Severity of one diagnostic from the loader. */
enum hp_config_diag { HP_CONFIG_ERROR, HP_CONFIG_WARNING };

/*
 * Called once per diagnostic with a complete one-line message (no newline),
 * e.g. "cfg/hp.cfg: contract.consensus.roundtime: must be an integer from 1
 * to 3600000, got 0".
 */
typedef void (*hp_config_report_fn)(enum hp_config_diag sev, const char *msg,
    void *arg);

/* Fill cfg with HotPocket's defaults (no keys, no contract id). */
void hp_config_defaults(struct hp_config *cfg);

/*
 * Load and validate a file. Returns 0 when there are no errors (warnings may
 * have been reported), HP_EINVAL when the content is invalid, HP_EIO or
 * HP_ENOENT when the file cannot be read. cfg is valid only on 0; on error
 * it is freed already. report may be NULL.
 */
int hp_config_load(const char *path, struct hp_config *cfg,
    hp_config_report_fn report, void *arg);

/* The same from a memory buffer; name is used in messages in place of a path. */
int hp_config_parse(const char *name, const char *json, size_t len,
    struct hp_config *cfg, hp_config_report_fn report, void *arg);

/*
 * The same for a worker's copy, which the supervisor sends without
 * node.private_key: the key must be absent and node.keys holds only the
 * public key.
 */
int hp_config_parse_public(const char *name, const char *json, size_t len,
    struct hp_config *cfg, hp_config_report_fn report, void *arg);

/*
 * Write cfg as a complete hp.cfg (every field, 4-space indentation) to path
 * atomically (temp file + fsync + rename), mode 0600.
 */
int hp_config_write(const char *path, const struct hp_config *cfg);

void hp_config_free(struct hp_config *cfg);

/*
 * patch.cfg (hotpocket-protocols §6.8): the patchable part of the contract
 * section — version, unl, bin_path, bin_args, environment,
 * max_input_ledger_offset, consensus, npl, round_limits — as a JSON object
 * in HotPocket's key order (caller json_decref()s; NULL: no memory).
 */
struct json_t;
struct json_t *hp_config_patch_json(const struct hp_config *cfg);
/* 1 when key is one of those fields. */
int hp_config_is_patch_key(const char *key);
/* Merge src into dst as HotPocket's devkit merges hp.cfg.override:
 * objects key by key, everything else replaces. */
void hp_json_merge(struct json_t *dst, struct json_t *src);

#endif
