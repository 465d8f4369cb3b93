/*
 * fuzz_channel.c — libFuzzer target for the IPC frame parser
 * (common/channel.c).
 *
 * The first input byte picks a channel policy (the five kinds and the two
 * consensus/peer sibling policies); the rest is a byte stream parsed frame
 * by frame with hp_frame_parse(), as a channel's read buffer would be.
 * Every frame accepted must be one the policy may receive, lie within the
 * stream and have a body that the typed accessors can walk; every refusal
 * must be one of the documented codes, and HP_EAGAIN only when the frame
 * really is incomplete. Seeds are in tests/fuzz/corpus/channel/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "err.h"
#include "mpack.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct hp_chan_policy *
pick_policy(uint8_t b)
{
	switch (b % 7) {
	case 0: return hp_chan_policy(HP_CHAN_SUP_TO_WORKER);
	case 1: return hp_chan_policy(HP_CHAN_WORKER_TO_SUP);
	case 2: return hp_chan_policy(HP_CHAN_SIBLING);
	case 3: return hp_chan_policy(HP_CHAN_CTL_SERVER);
	case 4: return hp_chan_policy(HP_CHAN_CTL_CLIENT);
	case 5: return hp_sibling_policy(HP_W_CONSENSUS, HP_W_PEER);
	default: return hp_sibling_policy(HP_W_PEER, HP_W_CONSENSUS);
	}
}

/* Read the fields a handler would, whatever their types. */
static void
walk_body(const msgpack_object *body, uint32_t type)
{
	char s[64];
	uint64_t u;
	bool b;

	for (uint64_t k = 0; k <= 4; k++) {
		(void)hp_mpack_u64(body, k, &u);
		(void)hp_mpack_bool(body, k, &b);
		if (hp_mpack_str(body, k, s, sizeof(s)) == 0 &&
		    strlen(s) >= sizeof(s))
			abort();
	}
	(void)hp_mpack_get_s(body, "data");
	if (type == HP_MSG_HELLO) {
		struct hp_hello h;

		if (hp_hello_decode(body, &h) == 0 &&
		    (strlen(h.build_id) >= sizeof(h.build_id) ||
		    strlen(h.role) >= sizeof(h.role)))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct hp_chan_policy *pol;
	size_t off = 1;

	if (size < 1)
		return 0;
	pol = pick_policy(data[0]);
	while (off < size) {
		const uint8_t *p = data + off;
		size_t avail = size - off, used = 0;
		struct hp_frame_hdr h;
		struct hp_msg m;
		int r;

		r = hp_frame_parse(pol, p, avail, &m, &used);
		if (r == HP_EAGAIN) {
			/* Only a frame that is really cut short waits. */
			if (avail >= HP_FRAME_HDR_LEN &&
			    (hp_frame_hdr_decode(p, pol->max_frame, &h) != 0 ||
			    h.len <= avail))
				abort();
			break;
		}
		if (r != 0) {
			if (r != HP_EFORMAT && r != HP_ETOOBIG &&
			    r != HP_ETYPE && r != HP_EPROTO && r != HP_ETRUNC)
				abort();
			break;
		}
		if (used <= HP_FRAME_HDR_LEN || used > avail ||
		    used > pol->max_frame || m.fd != -1 ||
		    m.body != &m.res.data || !hp_policy_may_recv(pol, m.type))
			abort();
		if (hp_frame_hdr_decode(p, pol->max_frame, &h) != 0 ||
		    h.len != used || h.type != m.type ||
		    h.has_fd != hp_policy_takes_fd(pol, m.type))
			abort();
		walk_body(m.body, m.type);
		msgpack_unpacked_destroy(&m.res);
		off += used;
	}
	return 0;
}
