/*
 * ws.h — the user port's WebSocket layer, free of sockets and TLS so that
 * it can be fuzzed: the HTTP upgrade request parser and its 101 answer
 * (RFC 6455 §4.2), and a wslay server context over memory buffers that
 * turns plaintext bytes into whole messages and queues whole messages as
 * single unfragmented binary frames.
 *
 * What the user port speaks (hotpocket-js-client 0.5.7, HotPocket's hpws):
 * any request path, no extensions, no subprotocol; client frames masked,
 * binary or text, fragmented or not; ping answered by pong, a close frame
 * by close 1000; a message over the limit closes with 1002.
 *
 * Ownership: struct ws is the caller's; ws_free() releases what ws_init()
 * allocated. Messages handed to the on_msg callback are valid only during
 * the call. ws_out() points into the ws's own output buffer.
 */
#ifndef HP_GW_WS_H
#define HP_GW_WS_H

#include <stddef.h>
#include <stdint.h>

#include <wslay/wslay.h>

/* The upgrade request, headers included, must fit in this. */
#define WS_HTTP_MAX		8192
/* Sec-WebSocket-Key: 16 bytes in base64 are 24 characters. */
#define WS_KEY_MAX		64
/* The 101 answer always fits in this. */
#define WS_RESPONSE_MAX		256
/* Output bytes a ws holds before wslay is told to wait. */
#define WS_OUT_CHUNK		(256u * 1024)

/*
 * Parse an HTTP upgrade request from the start of buf. Returns 0 with the
 * key copied (NUL-terminated) and *used set to the request's length (any
 * bytes after it are already WebSocket frames); HP_EAGAIN when the request
 * is not complete yet; HP_ETOOBIG when it is longer than WS_HTTP_MAX;
 * HP_EFORMAT when it is not a GET with a usable Sec-WebSocket-Key.
 */
int ws_upgrade_parse(const uint8_t *buf, size_t len,
    char key[WS_KEY_MAX + 1], size_t *used);

/* The 101 Switching Protocols answer for key into out (NUL-terminated);
 * returns its length, or a negative HP_E* code. */
int ws_upgrade_response(const char *key, char *out, size_t outsize);

typedef void (*ws_msg_fn)(void *arg, const uint8_t *msg, size_t len);

struct ws {
	wslay_event_context_ptr ctx;
	size_t max_msg;		/* largest message accepted */
	ws_msg_fn on_msg;
	void *arg;

	/* Input being fed (ws_feed). */
	const uint8_t *in;
	size_t in_len;

	/* The message being assembled from data frames. */
	uint8_t *msg;
	size_t msg_len, msg_cap;
	int in_msg;		/* a data frame without FIN was seen */
	int frame_data;		/* the current frame is a data frame */
	int frame_fin;

	/* Bytes ready for the transport. */
	uint8_t *out;
	size_t out_len, out_cap, out_off;

	int failed;		/* the session must close (close queued) */
	uint16_t close_code;	/* what we closed with, 0 none */
};

int ws_init(struct ws *w, size_t max_msg, ws_msg_fn on_msg, void *arg);
void ws_free(struct ws *w);

/*
 * Feed plaintext from the client. Whole messages go to on_msg as they
 * complete. Returns 0, or a negative HP_E* code when the session must
 * close now (the close frame, if any, is already in the output).
 */
int ws_feed(struct ws *w, const uint8_t *p, size_t n);

/* Queue one binary message (copied). */
int ws_send(struct ws *w, const uint8_t *p, size_t n);

/* Put bytes before any frame in the output: the HTTP answer. With
 * last set, the session ends once they are flushed (a refused upgrade). */
int ws_raw(struct ws *w, const void *p, size_t n, int last);

/* Queue a close frame with code and reason; reading stops. */
void ws_close(struct ws *w, uint16_t code, const char *reason);

/* Move queued frames into the output buffer, as far as it has room. */
void ws_pump(struct ws *w);

/* Bytes waiting for the transport, and how many it took. */
void ws_out(struct ws *w, const uint8_t **p, size_t *n);
void ws_consume(struct ws *w, size_t n);

/* Bytes queued in wslay and in the output buffer. */
size_t ws_queued(const struct ws *w);

/* A close frame went out (or must) and nothing more will be read: the
 * session ends once the output is flushed. */
int ws_done(const struct ws *w);

#endif
