/*
 * fuzz_ws_handshake.c — libFuzzer target for the gateway's HTTP upgrade
 * parser (workers/gateway/ws.c: ws_upgrade_parse, ws_upgrade_response).
 *
 * The input is parsed whole and then as it would arrive in two reads cut
 * at every length the first byte picks; both must agree. A request that
 * parses must give a key of base64 characters within the limit, a length
 * within the input, and a 101 answer carrying a 28-character accept value.
 * Seeds are in tests/fuzz/corpus/ws_handshake/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char key[WS_KEY_MAX + 1], key2[WS_KEY_MAX + 1], resp[WS_RESPONSE_MAX];
	size_t used = 0, used2 = 0, cut;
	const char *acc;
	int r, r2, n;

	if (size == 0)
		return 0;
	cut = data[0] % size;
	data++;
	size--;
	r = ws_upgrade_parse(data, size, key, &used);
	if (r != 0 && r != HP_EAGAIN && r != HP_EFORMAT && r != HP_ETOOBIG)
		abort();
	/* A prefix never parses to something the whole does not. */
	r2 = ws_upgrade_parse(data, cut, key2, &used2);
	if (r2 == 0 && (r != 0 || used2 != used || strcmp(key, key2) != 0))
		abort();
	if (r != 0)
		return 0;
	if (used > size || used > WS_HTTP_MAX || strlen(key) == 0 ||
	    strlen(key) > WS_KEY_MAX)
		abort();
	n = ws_upgrade_response(key, resp, sizeof(resp));
	if (n <= 0 || (size_t)n >= sizeof(resp))
		abort();
	acc = strstr(resp, "Sec-WebSocket-Accept: ");
	if (acc == NULL || strlen(acc) != strlen("Sec-WebSocket-Accept: ") +
	    28 + 4)
		abort();
	return 0;
}
