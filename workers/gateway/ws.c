/*
 * ws.c — the HTTP upgrade and WebSocket framing of the user port (ws.h).
 * wslay parses and writes frames; this file feeds it from memory, builds
 * whole messages from data frames under the message limit (wslay does not
 * buffer them here), answers a close frame with 1000 "Bye!" as HotPocket
 * does, and collects wslay's output for the transport.
 */
#include "ws.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* Message buffers over this are released after each message. */
#define WS_KEEP_BUF	(64u * 1024)

static const uint8_t *
find_end(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n' &&
		    buf[i + 2] == '\r' && buf[i + 3] == '\n')
			return buf + i;
	return NULL;
}

static int
key_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

/* One header line [p, e) without its CRLF; copies the key if it is one. */
static int
header_line(const char *p, const char *e, char *key, int *have_key)
{
	static const char name[] = "sec-websocket-key";
	const char *colon = memchr(p, ':', (size_t)(e - p));
	size_t vlen;

	if (colon == NULL || colon == p)
		return HP_EFORMAT;
	if ((size_t)(colon - p) != sizeof(name) - 1 ||
	    strncasecmp(p, name, sizeof(name) - 1) != 0)
		return 0;
	for (p = colon + 1; p < e && (*p == ' ' || *p == '\t'); p++)
		;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	vlen = (size_t)(e - p);
	if (*have_key || vlen == 0 || vlen > WS_KEY_MAX)
		return HP_EFORMAT;
	for (size_t i = 0; i < vlen; i++)
		if (!key_char((unsigned char)p[i]))
			return HP_EFORMAT;
	memcpy(key, p, vlen);
	key[vlen] = '\0';
	*have_key = 1;
	return 0;
}

int
ws_upgrade_parse(const uint8_t *buf, size_t len, char key[WS_KEY_MAX + 1],
    size_t *used)
{
	const uint8_t *end;
	const char *p, *e, *stop;
	int have_key = 0, r;

	end = find_end(buf, len > WS_HTTP_MAX ? WS_HTTP_MAX : len);
	if (end == NULL)
		return len >= WS_HTTP_MAX ? HP_ETOOBIG : HP_EAGAIN;
	p = (const char *)buf;
	stop = (const char *)end + 2;	/* keep the last header's CRLF */
	if ((size_t)(stop - p) < 4 || memcmp(p, "GET ", 4) != 0)
		return HP_EFORMAT;
	for (e = p; e < stop && *e != '\r'; e++)
		;
	if (e - p < 14 || memcmp(e - 9, " HTTP/1.", 8) != 0)
		return HP_EFORMAT;
	for (p = e + 2; p < stop; p = e + 2) {
		for (e = p; e < stop && *e != '\r'; e++)
			;
		if (e >= stop || e + 1 >= stop || e[1] != '\n')
			return HP_EFORMAT;
		if ((r = header_line(p, e, key, &have_key)) != 0)
			return r;
	}
	if (!have_key)
		return HP_EFORMAT;
	*used = (size_t)(end - buf) + 4;
	return 0;
}

int
ws_upgrade_response(const char *key, char *out, size_t outsize)
{
	unsigned char md[EVP_MAX_MD_SIZE], b64[64];
	char in[WS_KEY_MAX + sizeof(WS_GUID)];
	unsigned int mdlen = 0;
	size_t klen = strlen(key);
	int n;

	if (klen == 0 || klen > WS_KEY_MAX)
		return HP_EINVAL;
	memcpy(in, key, klen);
	memcpy(in + klen, WS_GUID, sizeof(WS_GUID) - 1);
	if (EVP_Digest(in, klen + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(),
	    NULL) != 1)
		return HP_EIO;
	EVP_EncodeBlock(b64, md, (int)mdlen);
	n = snprintf(out, outsize, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n\r\n", b64);
	if (n < 0 || (size_t)n >= outsize)
		return HP_ETOOBIG;
	return n;
}

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *user)
{
	struct ws *w = user;

	if (w->failed || w->in_len == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > w->in_len)
		len = w->in_len;
	memcpy(buf, w->in, len);
	w->in += len;
	w->in_len -= len;
	return (ssize_t)len;
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *user)
{
	struct ws *w = user;
	size_t pending = w->out_len - w->out_off, room;

	if (pending >= WS_OUT_CHUNK) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	room = WS_OUT_CHUNK - pending;
	if (len > room)
		len = room;
	if (w->out_off > 0) {
		memmove(w->out, w->out + w->out_off, pending);
		w->out_len = pending;
		w->out_off = 0;
	}
	if (w->out_len + len > w->out_cap) {
		size_t cap = w->out_len + len < 4096 ? 4096 : w->out_len + len;
		uint8_t *p = realloc(w->out, cap);

		if (p == NULL) {
			wslay_event_set_error(ctx, WSLAY_ERR_NOMEM);
			return -1;
		}
		w->out = p;
		w->out_cap = cap;
	}
	memcpy(w->out + w->out_len, data, len);
	w->out_len += len;
	return (ssize_t)len;
}

static void
fail(struct ws *w, uint16_t code, const char *reason)
{
	if (w->failed)
		return;
	ws_close(w, code, reason);
	w->failed = 1;
}

static void
frame_start(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *a, void *user)
{
	struct ws *w = user;
	uint64_t total;

	w->frame_data = 0;
	if (w->failed)
		return;
	if (a->opcode & 0x8) {
		if (a->opcode == WSLAY_CONNECTION_CLOSE && w->close_code == 0)
			ws_close(w, WSLAY_CODE_NORMAL_CLOSURE, "Bye!");
		return;
	}
	if ((a->opcode == WSLAY_CONTINUATION_FRAME) != (w->in_msg != 0)) {
		fail(w, WSLAY_CODE_PROTOCOL_ERROR, "unexpected frame");
		return;
	}
	total = (uint64_t)w->msg_len + a->payload_length;
	if (a->payload_length > w->max_msg || total > w->max_msg) {
		fail(w, WSLAY_CODE_PROTOCOL_ERROR,
		    "payload message exceeded maximum messagesize");
		return;
	}
	if (total > w->msg_cap) {
		uint8_t *p = realloc(w->msg, (size_t)total);

		if (p == NULL) {
			fail(w, WSLAY_CODE_INTERNAL_SERVER_ERROR, "no memory");
			return;
		}
		w->msg = p;
		w->msg_cap = (size_t)total;
	}
	w->in_msg = 1;
	w->frame_data = 1;
	w->frame_fin = a->fin;
}

static void
frame_chunk(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_chunk_arg *a, void *user)
{
	struct ws *w = user;

	if (!w->frame_data || w->failed || a->data_length == 0)
		return;
	if (a->data_length > w->msg_cap - w->msg_len) {
		fail(w, WSLAY_CODE_PROTOCOL_ERROR, "frame longer than announced");
		return;
	}
	memcpy(w->msg + w->msg_len, a->data, a->data_length);
	w->msg_len += a->data_length;
}

static void
frame_end(wslay_event_context_ptr ctx, void *user)
{
	struct ws *w = user;

	if (!w->frame_data || w->failed || !w->frame_fin)
		return;
	w->frame_data = 0;
	w->in_msg = 0;
	if (w->close_code == 0)
		w->on_msg(w->arg, w->msg, w->msg_len);
	w->msg_len = 0;
	if (w->msg_cap > WS_KEEP_BUF) {
		free(w->msg);
		w->msg = NULL;
		w->msg_cap = 0;
	}
}

static const struct wslay_event_callbacks callbacks = {
	.recv_callback = recv_cb,
	.send_callback = send_cb,
	.on_frame_recv_start_callback = frame_start,
	.on_frame_recv_chunk_callback = frame_chunk,
	.on_frame_recv_end_callback = frame_end,
};

int
ws_init(struct ws *w, size_t max_msg, ws_msg_fn on_msg, void *arg)
{
	memset(w, 0, sizeof(*w));
	w->max_msg = max_msg;
	w->on_msg = on_msg;
	w->arg = arg;
	if (wslay_event_context_server_init(&w->ctx, &callbacks, w) != 0)
		return HP_ENOMEM;
	/* Data frames come to frame_chunk, which enforces max_msg before it
	 * allocates; wslay buffers only control frames (125 bytes at most). */
	wslay_event_config_set_no_buffering(w->ctx, 1);
	return 0;
}

void
ws_free(struct ws *w)
{
	if (w->ctx != NULL)
		wslay_event_context_free(w->ctx);
	free(w->msg);
	free(w->out);
	memset(w, 0, sizeof(*w));
}

int
ws_feed(struct ws *w, const uint8_t *p, size_t n)
{
	int r = 0;

	if (w->failed || !wslay_event_want_read(w->ctx))
		return 0;
	w->in = p;
	w->in_len = n;
	if (wslay_event_recv(w->ctx) != 0)
		r = HP_EPROTO;
	w->in = NULL;
	w->in_len = 0;
	ws_pump(w);
	return r;
}

int
ws_send(struct ws *w, const uint8_t *p, size_t n)
{
	struct wslay_event_msg m = { WSLAY_BINARY_FRAME, p, n };

	if (w->close_code != 0 || w->failed)
		return HP_EPROTO;
	if (wslay_event_queue_msg(w->ctx, &m) != 0)
		return HP_ENOMEM;
	ws_pump(w);
	return 0;
}

int
ws_raw(struct ws *w, const void *p, size_t n, int last)
{
	uint8_t *o;

	if (w->out_len + n > WS_OUT_CHUNK)
		return HP_ETOOBIG;
	if ((o = realloc(w->out, w->out_len + n)) == NULL)
		return HP_ENOMEM;
	memcpy(o + w->out_len, p, n);
	w->out = o;
	w->out_len += n;
	w->out_cap = w->out_len;
	if (last) {
		w->failed = 1;
		wslay_event_shutdown_read(w->ctx);
	}
	return 0;
}

void
ws_close(struct ws *w, uint16_t code, const char *reason)
{
	if (w->close_code != 0)
		return;
	w->close_code = code;
	wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason,
	    reason != NULL ? strlen(reason) : 0);
	wslay_event_shutdown_read(w->ctx);
	ws_pump(w);
}

void
ws_pump(struct ws *w)
{
	if (wslay_event_want_write(w->ctx))
		wslay_event_send(w->ctx);
}

void
ws_out(struct ws *w, const uint8_t **p, size_t *n)
{
	*n = w->out_len - w->out_off;
	*p = *n > 0 ? w->out + w->out_off : NULL;
}

void
ws_consume(struct ws *w, size_t n)
{
	w->out_off += n;
	if (w->out_off < w->out_len)
		return;
	w->out_off = w->out_len = 0;
	if (w->out_cap > 16384) {
		free(w->out);
		w->out = NULL;
		w->out_cap = 0;
	}
	ws_pump(w);
}

size_t
ws_queued(const struct ws *w)
{
	return wslay_event_get_queued_msg_length(w->ctx) +
	    (w->out_len - w->out_off);
}

int
ws_done(const struct ws *w)
{
	return (w->failed || w->close_code != 0 ||
	    !wslay_event_want_read(w->ctx)) &&
	    !wslay_event_want_write(w->ctx) && w->out_len == w->out_off;
}
