/*
 * fuzz_usermsg_json.c — libFuzzer target for the user protocol's JSON
 * decoders (common/usermsg.c): the handshake, every client message and
 * the input container.
 *
 * Whatever a decoder accepts must hold to usermsg.h: server_challenge of
 * 1..32 characters, ids of at most 256 bytes, nonce above 0, a container
 * for every input. Accepted ids and contents are echoed back through the
 * encoders, whose output must be well-formed JSON when the content is
 * written as a string. Seeds are in tests/fuzz/corpus/usermsg_json/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "usermsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
must_parse(const struct hp_ubuf *b)
{
	json_error_t e;
	json_t *j;

	j = json_loadb((const char *)b->data, b->len, JSON_ALLOW_NUL, &e);
	if (j == NULL)
		abort();
	json_decref(j);
}

static void
check_msg(const struct hp_umsg *m)
{
	struct hp_ubuf b;
	int r;

	switch (m->type) {
	case HP_UM_INPUT:
		if (m->container == NULL)
			abort();
		break;
	case HP_UM_READ:
		if (m->id == NULL || strlen(m->id) > 256 || m->content == NULL)
			abort();
		r = hp_uenc_read_response(HP_UPROTO_JSON, m->id, m->content,
		    m->content_len, &b);
		if (r != 0)
			abort();
		if (!hp_ujson_embed(m->content, m->content_len))
			must_parse(&b);
		free(b.data);
		break;
	case HP_UM_LEDGER_QUERY:
		if (m->id == NULL || strlen(m->id) > 256)
			abort();
		break;
	case HP_UM_SUBSCRIPTION:
		if (m->channel < HP_UCH_UNL_CHANGE ||
		    m->channel > HP_UCH_HEALTH_EVENT)
			abort();
		break;
	default:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hp_uhandshake h;
	struct hp_uinput in;
	struct hp_umsg m;
	int r, ok;

	r = hp_udec_handshake(data, size, &h);
	if (r == 0 && h.has_server_challenge &&
	    (strlen(h.server_challenge) == 0 ||
	    strlen(h.server_challenge) > 32))
		abort();
	if (r != 0 && r != HP_EFORMAT && r != HP_ENOMEM)
		abort();

	r = hp_udec_msg(HP_UPROTO_JSON, data, size, &m, &ok);
	if (r == 0)
		check_msg(&m);
	else if (r != HP_EFORMAT && r != HP_ENOMEM)
		abort();
	if (ok && m.type != HP_UM_INPUT)
		abort();
	if (r == 0 && m.type == HP_UM_INPUT) {
		if (hp_udec_input(HP_UPROTO_JSON, m.container, m.container_len,
		    &in) == 0)
			hp_uinput_free(&in);
	}
	hp_umsg_free(&m);

	r = hp_udec_input(HP_UPROTO_JSON, data, size, &in);
	if (r == 0) {
		if (in.nonce == 0 || in.input == NULL)
			abort();
		hp_uinput_free(&in);
	} else if (r != HP_EFORMAT && r != HP_ENOMEM)
		abort();
	return 0;
}
