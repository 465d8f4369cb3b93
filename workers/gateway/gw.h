/*
 * gw.h — the gateway worker's state, shared by its files:
 *   conn.c    the user port: accept, TLS on a uv_poll_t, the HTTP upgrade,
 *             WebSocket I/O (ws.c), per-connection limits and timers;
 *   user.c    the user protocol on a connection: handshake, then stat,
 *             lcl, subscriptions, inputs, read requests, ledger queries;
 *   feed.c    what comes from consensus and the runner, turned into
 *             messages for the users connected here;
 *   main.c    the worker role (hooks) and hpctl show gateway.
 *
 * Ownership: gw.conns lists every connection; conn_close() starts closing
 * and the memory is released in the poll handle's close callback, so a
 * struct conn pointer stays valid until the loop turns. Code that walks
 * the list skips closing connections. Connections are found again after
 * an asynchronous answer by their 64-bit id, never by pointer.
 */
#ifndef HP_GW_H
#define HP_GW_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "config.h"
#include "keys.h"
#include "usermsg.h"
#include "ws.h"

#define GW_MAX_USERS		64	/* verified users (HotPocket's cap) */
#define GW_HANDSHAKE_MS		5000	/* silence allowed before verified */
#define GW_WINDOW_MS		60000	/* the per-minute limits' window */
#define GW_DEFAULT_MAX_MSG	(5u * 1024 * 1024)
#define GW_OUT_PAUSE		(8u * 1024 * 1024)  /* stop reading above */
#define GW_OUT_MAX		(64u * 1024 * 1024) /* close above */
#define GW_MAX_UNL		256
#define GW_MAX_PEERS		100
#define GW_NONCES_MAX		4096
#define GW_QUERIES_MAX		64	/* ledger queries in flight */
#define GW_READS_QUEUED		256	/* read requests waiting for a slot */

enum conn_state {
	C_TLS,		/* TLS handshake */
	C_HTTP,		/* reading the upgrade request */
	C_CHALLENGE,	/* user_challenge sent, waiting for the response */
	C_SIGNING,	/* waiting for consensus to sign our answer */
	C_VERIFIED,	/* handshake done, the chosen protocol in use */
	C_CLOSING,
};

struct conn {
	uv_poll_t poll;
	struct conn *next;
	uint64_t id;
	enum conn_state state;
	int fd;
	SSL *ssl;
	bool want_write;
	bool paused;		/* not reading: output over GW_OUT_PAUSE */
	int events;
	char ip[INET6_ADDRSTRLEN];
	uint16_t rport;

	uint8_t *http;		/* the upgrade request so far */
	size_t http_len;
	struct ws ws;
	bool ws_up;

	char challenge[33];	/* what the user signs, hex */
	uint32_t sign_id;	/* GW_SIGN_REQ in flight */
	uint8_t pk[HP_PK_BYTES];
	bool has_pk;		/* pk claimed: signing or verified */
	bool verified;
	enum hp_uproto proto;
	bool sub_unl, sub_ledger;
	uint64_t round_bytes;	/* input bytes forwarded this ledger */

	uint64_t created_ms, last_rx_ms;
	struct {
		uint64_t start, bytes, bad;
	} win;
	uint64_t bytes_in, bytes_out, msgs_in, msgs_out;
};

struct gw_ledger {
	uint64_t seq, time;
	uint8_t hash[32], prev_hash[32], state_hash[32], patch_hash[32],
	    user_hash[32], input_hash[32], output_hash[32];
};

/* The last HP_MSG_GW_STATUS. */
struct gw_status {
	bool have;
	struct gw_ledger lcl;
	uint64_t vote;
	uint64_t roundtime;
	uint8_t unl[GW_MAX_UNL][HP_PK_BYTES];
	size_t n_unl;
	char peers[GW_MAX_PEERS][64];
	size_t n_peers;
	bool execution, reads, full_history, weak;
	bool inputs_full;	/* consensus takes no input of ours now */
};

/* The last input accepted per user (HotPocket's nonce map). */
struct gw_nonce {
	uint8_t pk[HP_PK_BYTES];
	uint64_t nonce, max_ledger;
	uint8_t sig[HP_SIG_BYTES];
	bool used;
};

/* A read request or ledger query waiting for its answer. */
struct gw_pending {
	uint32_t fid;		/* frame id, 0 = free */
	uint64_t conn;
	char reply_for[257];
	uint8_t pk[HP_PK_BYTES];
	uint8_t *content;	/* read requests queued, not yet sent */
	size_t content_len;
	bool want_inputs, want_outputs;	/* ledger queries */
};

enum gw_reason {
	R_BAD_MSG_FORMAT, R_INVALID_MSG_TYPE, R_BAD_SIG, R_MAX_LEDGER_EXPIRED,
	R_MAX_LEDGER_OFFSET_EXCEEDED, R_NONCE_EXPIRED, R_ALREADY_SUBMITTED,
	R_ROUND_INPUTS_OVERFLOW, R_OTHER, R_COUNT
};

struct gw_counters {
	uint64_t accepted, refused, closed, handshakes, handshake_failures;
	uint64_t bytes_in, bytes_out;
	uint64_t inputs_forwarded, inputs_accepted;
	uint64_t rejected[R_COUNT];
	uint64_t reads, reads_answered, reads_dropped;
	uint64_t queries, outputs_sent, bad_msgs;
};

struct gw {
	uv_loop_t *loop;
	const struct hp_config *cfg;
	uint8_t node_pk[HP_PK_BYTES];
	SSL_CTX *tls;
	size_t max_msg;
	size_t max_conns;	/* hard cap from the descriptor limit */

	int listen_fd;
	uv_poll_t listen_poll;
	bool listening;
	bool stopping;
	uv_timer_t tick;
	uv_timer_t resume;	/* accept again after EMFILE */

	struct conn *conns;
	size_t nconns;
	uint64_t next_id;
	uint32_t next_fid;

	struct gw_status st;
	struct gw_nonce nonces[GW_NONCES_MAX];
	struct gw_pending reads[32];	/* in flight to the runner */
	struct gw_pending *readq;	/* waiting: GW_READS_QUEUED */
	size_t readq_len;
	struct gw_pending queries[GW_QUERIES_MAX];

	struct gw_counters c;
};

extern struct gw gw;

uint64_t gw_now(void);
uint32_t gw_fid(void);
const char *gw_reason_name(enum gw_reason r);

/* conn.c */
int conn_pre_sandbox(const char *dir);
int conn_init(uv_loop_t *loop, const struct hp_config *cfg);
void conn_listener(int fd);
void conn_send(struct conn *c, const struct hp_ubuf *b);
void conn_close(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Send a close frame (code, reason), then end the connection. */
void conn_ws_close(struct conn *c, uint16_t code, const char *reason);
struct conn *conn_find(uint64_t id);
struct conn *conn_find_user(const uint8_t pk[HP_PK_BYTES]);
size_t conn_count_users(void);
void conn_shutdown(void);
void conn_count_bad(struct conn *c, const char *what);

/* user.c */
void user_open(struct conn *c);
void user_message(struct conn *c, const uint8_t *msg, size_t len);
void user_closed(struct conn *c);
void user_sign_res(uint32_t id, const msgpack_object *body);
void user_send_users(void);
void user_consensus_down(void);

/* feed.c */
void feed_status(const msgpack_object *body);
void feed_settled(const msgpack_object *body);
void feed_outputs(const msgpack_object *body);
void feed_ledger_res(uint32_t id, const msgpack_object *body);
void feed_read_res(uint32_t id, const msgpack_object *body);
int feed_read_request(struct conn *c, const char *id, const uint8_t *content,
    size_t len);
int feed_ledger_query(struct conn *c, const char *id, uint64_t seq,
    int inputs, int outputs);
void feed_runner_down(void);
void feed_consensus_down(void);
void feed_show(msgpack_packer *pk);

#endif
