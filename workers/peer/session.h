/*
 * session.h — one TLS connection to another node.
 *
 * A session owns a non-blocking TCP socket, its SSL object and a uv_poll_t.
 * It moves CONNECTING (outbound only) → HANDSHAKE → HELLO (TLS is up, both
 * sides send HELLO) → VERIFIED (the peer's HELLO checked out), and to
 * CLOSING from anywhere. Until VERIFIED only HELLO is read; every other
 * frame is skipped unbuffered and counted. Verified frames go to
 * mesh_frame().
 *
 * Ownership: the mesh list (mesh.h) holds every session; session_close()
 * starts closing, and the memory, socket and SSL are released in the
 * handle's close callback, so a session pointer stays valid until the loop
 * turns. Code that walks the list skips sessions in S_CLOSING. Frames are
 * queued as reference-counted buffers shared by every session they go to.
 */
#ifndef HP_PEER_SESSION_H
#define HP_PEER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <msgpack.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <uv.h>

#include "keys.h"
#include "wire.h"

#define SESSION_HELLO_MS	5000
#define SESSION_WINDOW_MS	60000
#define SESSION_OUTQ_MAX	(64u * 1024 * 1024)

enum session_state {
	S_CONNECTING,
	S_HANDSHAKE,
	S_HELLO,
	S_VERIFIED,
	S_CLOSING,
};

/* A frame ready to send, shared between sessions. */
struct outbuf {
	unsigned refs;
	size_t len;
	uint8_t data[];
};

struct outq {
	struct outq *next;
	struct outbuf *b;
	size_t off;
};

struct known;

struct session {
	uv_poll_t poll;
	struct session *next;	/* mesh list */
	uint64_t id;		/* for logs */
	enum session_state state;
	bool outbound;
	int fd;
	SSL *ssl;
	bool want_write;	/* an SSL call asked to wait for POLLOUT */
	int events;		/* what poll watches now */
	char ip[INET6_ADDRSTRLEN];
	uint16_t rport;
	struct known *known;	/* outbound: the entry dialled */

	/* From the peer's HELLO. */
	uint8_t pk[HP_PK_BYTES];
	uint16_t listen_port;
	bool peer_needs_fwd;
	bool sent_need;		/* what we last told it */
	bool is_unl;

	struct wire_reader rd;
	struct outq *oq_head, *oq_tail;
	size_t oq_bytes;

	uint64_t created_ms, verified_ms, last_rx_ms, last_tx_ms;
	uint64_t bytes_in, bytes_out, frames_in, frames_out;
	struct {
		uint64_t start, bytes, bad, badsig, dup;
	} win;
};

/* Take an accepted socket (ownership of fd passes in, even on error). */
int session_accept(int fd, const struct sockaddr *sa, socklen_t len);
/* Dial sa for known entry k; on 0, k->s is the new session. */
int session_dial(struct known *k, const struct sockaddr *sa, socklen_t len);

/* Queue a frame; takes a reference on b. May close s (queue overflow). */
void session_send(struct session *s, struct outbuf *b);
/* Queue the bytes of sb (one or more whole frames), copied. */
void session_send_sb(struct session *s, const msgpack_sbuffer *sb);

void session_close(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Count a violation against the host and close. */
void session_violation(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Per-minute counters; each closes s with a violation past its limit. */
void session_count_bad(struct session *s, const char *what);
void session_count_dup(struct session *s);

/* Timeouts, keepalive and the per-minute windows; from the mesh tick. */
void session_tick(struct session *s, uint64_t now);

struct outbuf *outbuf_new(uint8_t type, const void *payload, size_t len);
struct outbuf *outbuf_copy(const void *bytes, size_t len);
void outbuf_unref(struct outbuf *b);

const char *session_state_name(enum session_state st);

#endif
