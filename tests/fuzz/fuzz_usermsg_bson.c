/*
 * fuzz_usermsg_bson.c — libFuzzer target for the user protocol's BSON
 * decoders (common/usermsg.c): every client message and the input
 * container, plus the (always JSON) handshake on the same bytes.
 *
 * Accepted messages must hold to usermsg.h and re-encode; every buffer a
 * decoder returns must lie in memory it owns (ASan checks the reads).
 * Seeds are in tests/fuzz/corpus/usermsg_bson/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bson.h>

#include "err.h"
#include "usermsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
reencode(const struct hp_umsg *m)
{
	struct hp_ubuf b;
	bson_t doc;

	if (m->type != HP_UM_READ)
		return;
	if (m->id == NULL || strlen(m->id) > 256 || m->content == NULL)
		abort();
	if (hp_uenc_read_response(HP_UPROTO_BSON, m->id, m->content,
	    m->content_len, &b) != 0)
		abort();
	if (!bson_init_static(&doc, b.data, b.len) ||
	    !bson_validate(&doc, BSON_VALIDATE_UTF8, NULL))
		abort();
	free(b.data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hp_uhandshake h;
	struct hp_uinput in;
	struct hp_umsg m;
	volatile uint8_t sink = 0;
	int r, ok;

	r = hp_udec_msg(HP_UPROTO_BSON, data, size, &m, &ok);
	if (r == 0) {
		reencode(&m);
		if (m.type == HP_UM_INPUT) {
			for (size_t i = 0; i < m.container_len; i++)
				sink ^= m.container[i];
			if (hp_udec_input(HP_UPROTO_BSON, m.container,
			    m.container_len, &in) == 0)
				hp_uinput_free(&in);
		}
	} else if (r != HP_EFORMAT && r != HP_ENOMEM)
		abort();
	hp_umsg_free(&m);

	r = hp_udec_input(HP_UPROTO_BSON, data, size, &in);
	if (r == 0) {
		if (in.nonce == 0 || in.input == NULL)
			abort();
		for (size_t i = 0; i < in.input_len; i++)
			sink ^= in.input[i];
		hp_uinput_free(&in);
	} else if (r != HP_EFORMAT && r != HP_ENOMEM)
		abort();

	(void)hp_udec_handshake(data, size, &h);
	(void)sink;
	return 0;
}
