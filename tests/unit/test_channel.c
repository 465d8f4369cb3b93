/*
 * test_channel.c — the IPC frame codec and the libuv channel
 * (common/channel.c).
 *
 * The first half feeds hand-made frames to hp_frame_parse(): round trips,
 * every truncation, and each way a header or body can be wrong for a
 * policy. The second half runs real channels over socketpair(2) on one uv
 * loop: a supervisor end and a worker end talk to each other, or one end
 * faces a raw socket that writes crafted bytes (bad HELLOs, types from the
 * wrong direction, oversized headers, fd bits without fds). Every live
 * test checks at teardown that the loop has no handle left and that the
 * process has exactly the fds it had before, so a leaked fd fails the
 * test. The last tests drive the blocking helpers used by hpctl.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <uv.h>

#include "build_id.h"
#include "channel.h"
#include "err.h"
#include "log.h"
#include "mpack.h"
#include "proto.h"

#define TIMEOUT_MS	5000
#define MAXREC		16

/* ---- helpers shared by both halves ---- */

static char logbuf[8192];
static size_t loglen;

/* Keep warnings for the asserts, and show them in the test log. */
static void
log_to_buf(const char *line, unsigned long len)
{
	if (loglen + len < sizeof(logbuf)) {
		memcpy(logbuf + loglen, line, len);
		loglen += len;
		logbuf[loglen] = '\0';
	}
	(void)!write(STDOUT_FILENO, line, len);
}

static void
log_reset(void)
{
	loglen = 0;
	logbuf[0] = '\0';
}

static const struct hp_chan_policy *
pol(enum hp_chan_kind kind)
{
	return hp_chan_policy(kind);
}

/* Frame bytes in a heap buffer of exactly their size (ASan sees overreads). */
struct bytes {
	uint8_t *p;
	size_t n;
};

static struct bytes
frame_bytes(struct hp_frame *f, int fd_bit)
{
	struct bytes b;

	assert_int_equal(hp_frame_end(f, fd_bit), 0);
	b.n = f->sb.size;
	b.p = malloc(b.n);
	assert_non_null(b.p);
	memcpy(b.p, f->sb.data, b.n);
	hp_frame_free(f);
	return b;
}

/* A frame whose body is {1: u1, 2: u2}. */
static struct bytes
frame_u(uint32_t type, uint32_t id, uint32_t origin, uint64_t u1,
    uint64_t u2, int fd_bit)
{
	struct hp_frame f;

	hp_frame_begin(&f, type, id, origin);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, u1);
	msgpack_pack_uint8(&f.pk, 2);
	msgpack_pack_uint64(&f.pk, u2);
	return frame_bytes(&f, fd_bit);
}

/* A bare 16-byte header. */
static void
put_hdr(uint8_t *b, uint32_t type, uint32_t len, uint32_t id, uint32_t origin)
{
	uint32_t h[4] = { type, len, id, origin };

	memcpy(b, h, sizeof(h));
}

static void
pack_hello(msgpack_packer *pk, uint64_t proto, const char *build,
    const char *role, uint64_t max_frame)
{
	msgpack_pack_map(pk, 4);
	msgpack_pack_uint8(pk, 1);
	msgpack_pack_uint64(pk, proto);
	msgpack_pack_uint8(pk, 2);
	hp_mpack_pack_cstr(pk, build);
	msgpack_pack_uint8(pk, 3);
	hp_mpack_pack_cstr(pk, role);
	msgpack_pack_uint8(pk, 4);
	msgpack_pack_uint64(pk, max_frame);
}

static uint8_t
pattern(size_t i, size_t n)
{
	return (uint8_t)(i * 131 + n);
}

/* The bin body length that makes a frame total bytes long. */
static size_t
bin_len_for(size_t total)
{
	size_t n = total - HP_FRAME_HDR_LEN - 3;	/* bin16 header */

	if (n > 0xffff)
		n = total - HP_FRAME_HDR_LEN - 5;	/* bin32 header */
	assert_true(n >= 256);
	return n;
}

/* A frame whose body is a bin of pattern bytes, total bytes long. */
static void
frame_of_size(struct hp_frame *f, uint32_t type, uint32_t id, size_t total)
{
	size_t n = bin_len_for(total);
	uint8_t *b;

	b = malloc(n);
	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = pattern(i, n);
	hp_frame_begin(f, type, id, 0);
	msgpack_pack_bin(&f->pk, n);
	msgpack_pack_bin_body(&f->pk, b, n);
	free(b);
	assert_int_equal(f->sb.size, total);
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the DIR's own fd */
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* Whether every copy of a pipe's write end is closed (read end drained). */
static int
pipe_at_eof(int rfd)
{
	char c;
	ssize_t n;

	assert_int_equal(fcntl(rfd, F_SETFL, O_NONBLOCK), 0);
	n = read(rfd, &c, 1);
	if (n < 0)
		assert_int_equal(errno, EAGAIN);
	return n == 0;
}

/* ---- the frame codec ---- */

static void
test_frame_roundtrip(void **state)
{
	struct bytes b = frame_u(HP_MSG_PING, 77, 3, 12345, 0, 0);
	struct hp_msg m;
	uint32_t len;
	size_t used = 0;
	uint64_t v;

	memcpy(&len, b.p + 4, 4);
	assert_int_equal(len, b.n);
	assert_int_equal(hp_frame_parse(pol(HP_CHAN_WORKER_TO_SUP), b.p, b.n,
	    &m, &used), 0);
	assert_int_equal(used, b.n);
	assert_int_equal(m.type, HP_MSG_PING);
	assert_int_equal(m.id, 77);
	assert_int_equal(m.origin, 3);
	assert_int_equal(m.fd, -1);
	assert_ptr_equal(m.body, &m.res.data);
	assert_int_equal(m.body->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(hp_mpack_u64(m.body, 1, &v), 0);
	assert_int_equal(v, 12345);
	msgpack_unpacked_destroy(&m.res);
	free(b.p);
}

/* hp_frame_end writes the total length and the fd bit into the header. */
static void
test_frame_end_header(void **state)
{
	struct hp_frame f;
	struct hp_frame_hdr h;
	uint32_t raw[4];

	hp_frame_begin(&f, HP_MSG_LISTENER, 0x01020304, 0xa0b0c0d0);
	msgpack_pack_map(&f.pk, 0);
	assert_int_equal(f.sb.size, HP_FRAME_HDR_LEN + 1);
	assert_int_equal(hp_frame_end(&f, 1), 0);
	memcpy(raw, f.sb.data, sizeof(raw));
	assert_int_equal(raw[0], HP_MSG_LISTENER);
	assert_int_equal(raw[1], HP_FRAME_FD_BIT | 17);
	assert_int_equal(raw[2], 0x01020304);
	assert_int_equal(raw[3], 0xa0b0c0d0);
	assert_int_equal(hp_frame_hdr_decode((uint8_t *)f.sb.data, 65536, &h),
	    0);
	assert_int_equal(h.len, 17);
	assert_true(h.has_fd);
	assert_int_equal(h.id, 0x01020304);
	assert_int_equal(h.origin, 0xa0b0c0d0);
	/* Ending again without the fd clears the bit. */
	assert_int_equal(hp_frame_end(&f, 0), 0);
	memcpy(raw, f.sb.data, sizeof(raw));
	assert_int_equal(raw[1], 17);
	hp_frame_free(&f);
}

/* Frames back to back in one buffer come out one by one. */
static void
test_frame_stream(void **state)
{
	struct bytes a = frame_u(HP_MSG_PING, 1, 0, 10, 0, 0);
	struct bytes b = frame_u(HP_MSG_SHUTDOWN, 2, 0, 20, 0, 0);
	struct bytes c = frame_u(HP_MSG_CHANNEL_NEW, 3, 0, 30, 1, 1);
	size_t n = a.n + b.n + c.n, off = 0, used;
	uint8_t *buf = malloc(n);
	uint32_t want[] = { HP_MSG_PING, HP_MSG_SHUTDOWN, HP_MSG_CHANNEL_NEW };

	assert_non_null(buf);
	memcpy(buf, a.p, a.n);
	memcpy(buf + a.n, b.p, b.n);
	memcpy(buf + a.n + b.n, c.p, c.n);
	for (int i = 0; i < 3; i++) {
		struct hp_msg m;
		uint64_t v;

		assert_int_equal(hp_frame_parse(pol(HP_CHAN_WORKER_TO_SUP),
		    buf + off, n - off, &m, &used), 0);
		assert_int_equal(m.type, want[i]);
		assert_int_equal(m.id, i + 1);
		assert_int_equal(hp_mpack_u64(m.body, 1, &v), 0);
		assert_int_equal(v, 10 * (i + 1));
		msgpack_unpacked_destroy(&m.res);
		off += used;
	}
	assert_int_equal(off, n);
	free(buf);
	free(a.p);
	free(b.p);
	free(c.p);
}

/* Every proper prefix of a frame asks for more. */
static void
test_frame_truncated(void **state)
{
	struct bytes b = frame_u(HP_MSG_PING, 5, 6, 1ULL << 40, 7, 0);

	for (size_t n = 0; n < b.n; n++) {
		uint8_t *p = malloc(n ? n : 1);
		struct hp_msg m;
		size_t used = 999;
		int r;

		assert_non_null(p);
		memcpy(p, b.p, n);
		r = hp_frame_parse(pol(HP_CHAN_WORKER_TO_SUP), p, n, &m, &used);
		if (r != HP_EAGAIN)
			fail_msg("prefix %zu of %zu: got %d", n, b.n, r);
		assert_int_equal(used, 999);
		free(p);
	}
	free(b.p);
}

/* A length that cannot even hold the header plus one body byte. */
static void
test_frame_len_too_small(void **state)
{
	uint8_t b[HP_FRAME_HDR_LEN + 1];
	struct hp_frame_hdr h;
	struct hp_msg m;
	size_t used;
	uint32_t lens[] = { 0, 1, 15, 16, HP_FRAME_FD_BIT | 16 };

	b[HP_FRAME_HDR_LEN] = 0x80;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		put_hdr(b, HP_MSG_PING, lens[i], 0, 0);
		assert_int_equal(hp_frame_hdr_decode(b, 65536, &h), HP_EFORMAT);
		assert_int_equal(hp_frame_parse(pol(HP_CHAN_WORKER_TO_SUP), b,
		    sizeof(b), &m, &used), HP_EFORMAT);
	}
	/* 17 is the smallest frame: the header and an empty fixmap. */
	put_hdr(b, HP_MSG_PING, 17, 0, 0);
	assert_int_equal(hp_frame_parse(pol(HP_CHAN_WORKER_TO_SUP), b,
	    sizeof(b), &m, &used), 0);
	assert_int_equal(used, 17);
	msgpack_unpacked_destroy(&m.res);
}

/* A length past max_frame is refused with only the header in hand. */
static void
test_frame_too_big(void **state)
{
	static const enum hp_chan_kind kinds[] = { HP_CHAN_SUP_TO_WORKER,
	    HP_CHAN_WORKER_TO_SUP, HP_CHAN_SIBLING, HP_CHAN_CTL_SERVER,
	    HP_CHAN_CTL_CLIENT };
	uint8_t *b = malloc(HP_FRAME_HDR_LEN);
	struct hp_msg m;
	size_t used;

	assert_non_null(b);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct hp_chan_policy *p = pol(kinds[i]);
		uint32_t type = p->recv[0];
		uint32_t fdbit = hp_policy_takes_fd(p, type) ?
		    HP_FRAME_FD_BIT : 0;

		put_hdr(b, type, p->max_frame + 1, 0, 0);
		assert_int_equal(hp_frame_parse(p, b, HP_FRAME_HDR_LEN, &m,
		    &used), HP_ETOOBIG);
		put_hdr(b, type, (HP_FRAME_FD_BIT - 1) | fdbit, 0, 0);
		assert_int_equal(hp_frame_parse(p, b, HP_FRAME_HDR_LEN, &m,
		    &used), HP_ETOOBIG);
		/* Exactly max_frame is fine: wait for the body. */
		put_hdr(b, type, p->max_frame | fdbit, 0, 0);
		assert_int_equal(hp_frame_parse(p, b, HP_FRAME_HDR_LEN, &m,
		    &used), HP_EAGAIN);
	}
	free(b);
}

static void
test_frame_unknown_type(void **state)
{
	uint8_t b[HP_FRAME_HDR_LEN];
	struct hp_msg m;
	size_t used;
	uint32_t types[] = { 0, 0x010000, 0x01ffff, 0x7f0001, 0xdeadbeef,
	    0x02ffff };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		put_hdr(b, types[i], 17, 0, 0);
		for (int k = HP_CHAN_SUP_TO_WORKER; k <= HP_CHAN_CTL_CLIENT; k++)
			assert_int_equal(hp_frame_parse(pol(k), b, sizeof(b),
			    &m, &used), HP_ETYPE);
	}
}

/* A type that is valid only in the other direction. */
static void
test_frame_wrong_direction(void **state)
{
	static const struct {
		enum hp_chan_kind kind;
		uint32_t type;
	} cases[] = {
		{ HP_CHAN_SUP_TO_WORKER, HP_MSG_PING },
		{ HP_CHAN_SUP_TO_WORKER, HP_MSG_SHUTDOWN },
		{ HP_CHAN_SUP_TO_WORKER, HP_MSG_CHANNEL_NEW },
		{ HP_CHAN_WORKER_TO_SUP, HP_MSG_READY },
		{ HP_CHAN_WORKER_TO_SUP, HP_MSG_PONG },
		{ HP_CHAN_SIBLING, HP_MSG_PING },
		{ HP_CHAN_CTL_SERVER, HP_CTL_REPLY },
		{ HP_CHAN_CTL_CLIENT, HP_CTL_REQUEST },
		{ HP_CHAN_CTL_SERVER, HP_MSG_HELLO },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bytes b = frame_u(cases[i].type, 1, 0, 1, 1,
		    cases[i].type == HP_MSG_CHANNEL_NEW);
		struct hp_msg m;
		size_t used;

		/* Refused from the header alone, and with the whole frame. */
		assert_int_equal(hp_frame_parse(pol(cases[i].kind), b.p,
		    HP_FRAME_HDR_LEN, &m, &used), HP_ETYPE);
		assert_int_equal(hp_frame_parse(pol(cases[i].kind), b.p, b.n,
		    &m, &used), HP_ETYPE);
		free(b.p);
	}
}

/* The fd bit must be set exactly on the types that carry an fd. */
static void
test_frame_fd_bit(void **state)
{
	const struct hp_chan_policy *w = pol(HP_CHAN_WORKER_TO_SUP);
	struct bytes b;
	struct hp_msg m;
	size_t used;

	b = frame_u(HP_MSG_PING, 1, 0, 1, 0, 1);
	assert_int_equal(hp_frame_parse(w, b.p, HP_FRAME_HDR_LEN, &m, &used),
	    HP_EPROTO);
	assert_int_equal(hp_frame_parse(w, b.p, b.n, &m, &used), HP_EPROTO);
	free(b.p);

	b = frame_u(HP_MSG_HELLO, 0, 0, 1, 0, 1);
	assert_int_equal(hp_frame_parse(w, b.p, b.n, &m, &used), HP_EPROTO);
	free(b.p);

	b = frame_u(HP_MSG_CHANNEL_NEW, 1, 0, 1, 0, 0);
	assert_int_equal(hp_frame_parse(w, b.p, b.n, &m, &used), HP_EPROTO);
	free(b.p);

	b = frame_u(HP_MSG_LISTENER, 1, 0, 1, 0, 0);
	assert_int_equal(hp_frame_parse(w, b.p, b.n, &m, &used), HP_EPROTO);
	free(b.p);

	b = frame_u(HP_MSG_LISTENER, 1, 0, 1, 0, 1);
	assert_int_equal(hp_frame_parse(w, b.p, b.n, &m, &used), 0);
	assert_int_equal(m.type, HP_MSG_LISTENER);
	assert_int_equal(m.fd, -1);	/* the channel attaches it */
	msgpack_unpacked_destroy(&m.res);
	free(b.p);

	/* The sibling and control policies take no fd at all. */
	b = frame_u(HP_CTL_REQUEST, 1, 0, 1, 0, 1);
	assert_int_equal(hp_frame_parse(pol(HP_CHAN_CTL_SERVER), b.p, b.n, &m,
	    &used), HP_EPROTO);
	free(b.p);
}

/* The body must be exactly one valid object ending at len. */
static void
test_frame_bad_body(void **state)
{
	const struct hp_chan_policy *w = pol(HP_CHAN_WORKER_TO_SUP);
	struct hp_frame f;
	struct bytes b;
	struct hp_msg m;
	size_t used;
	uint32_t len;
	uint8_t raw[HP_FRAME_HDR_LEN + 4];

	/* {1: 1} followed by one stray byte inside the frame. */
	hp_frame_begin(&f, HP_MSG_PING, 1, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_nil(&f.pk);
	b = frame_bytes(&f, 0);
	assert_int_equal(hp_frame_parse(w, b.p, b.n, &m, &used), HP_EFORMAT);
	/* With the length one shorter the stray byte is the next frame's. */
	len = (uint32_t)b.n - 1;
	memcpy(b.p + 4, &len, 4);
	assert_int_equal(hp_frame_parse(w, b.p, b.n, &m, &used), 0);
	assert_int_equal(used, b.n - 1);
	msgpack_unpacked_destroy(&m.res);
	free(b.p);

	/* The reserved byte, a body cut by the length, a lying count. */
	put_hdr(raw, HP_MSG_PING, 17, 0, 0);
	raw[16] = 0xc1;
	assert_int_equal(hp_frame_parse(w, raw, 17, &m, &used), HP_EFORMAT);
	put_hdr(raw, HP_MSG_PING, 18, 0, 0);
	raw[16] = 0xcd;		/* uint16 with one byte */
	raw[17] = 0x01;
	assert_int_equal(hp_frame_parse(w, raw, 18, &m, &used), HP_ETRUNC);
	put_hdr(raw, HP_MSG_PING, 20, 0, 0);
	memcpy(raw + 16, "\xdd\xff\x00\x00", 4);
	assert_int_equal(hp_frame_parse(w, raw, 20, &m, &used), HP_ETRUNC);
	put_hdr(raw, HP_MSG_PING, 20, 0, 0);
	memcpy(raw + 16, "\x8f\x01\x02\x03", 4);
	assert_int_equal(hp_frame_parse(w, raw, 20, &m, &used), HP_ETOOBIG);
}

static void
test_hello_decode(void **state)
{
	struct hp_frame f;
	struct bytes b;
	struct hp_msg m;
	struct hp_hello h;
	size_t used;

	hp_frame_begin(&f, HP_MSG_HELLO, 0, 0);
	pack_hello(&f.pk, 1, "abc123", "consensus", 65536);
	b = frame_bytes(&f, 0);
	assert_int_equal(hp_frame_parse(pol(HP_CHAN_WORKER_TO_SUP), b.p, b.n,
	    &m, &used), 0);
	assert_int_equal(hp_hello_decode(m.body, &h), 0);
	assert_int_equal(h.proto, 1);
	assert_string_equal(h.build_id, "abc123");
	assert_string_equal(h.role, "consensus");
	assert_int_equal(h.max_frame, 65536);
	msgpack_unpacked_destroy(&m.res);
	free(b.p);

	/* No role. */
	hp_frame_begin(&f, HP_MSG_HELLO, 0, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 2);
	hp_mpack_pack_cstr(&f.pk, "abc");
	msgpack_pack_uint8(&f.pk, 4);
	msgpack_pack_uint8(&f.pk, 1);
	b = frame_bytes(&f, 0);
	assert_int_equal(hp_frame_parse(pol(HP_CHAN_WORKER_TO_SUP), b.p, b.n,
	    &m, &used), 0);
	assert_int_equal(hp_hello_decode(m.body, &h), HP_ENOENT);
	msgpack_unpacked_destroy(&m.res);
	free(b.p);

	/* A role longer than the field. */
	hp_frame_begin(&f, HP_MSG_HELLO, 0, 0);
	pack_hello(&f.pk, 1, "abc", "0123456789012345678901234567890123",
	    65536);
	b = frame_bytes(&f, 0);
	assert_int_equal(hp_frame_parse(pol(HP_CHAN_WORKER_TO_SUP), b.p, b.n,
	    &m, &used), 0);
	assert_int_equal(hp_hello_decode(m.body, &h), HP_ETOOBIG);
	msgpack_unpacked_destroy(&m.res);
	free(b.p);
}

/* ---- live channels ---- */

struct rec {
	uint32_t type, id, origin;
	int fd;			/* an fd kept from the message, or -1 */
	int has_body;
	uint64_t u1, u2;	/* body keys 1 and 2 when integers */
	char s1[64];		/* body key 1 when a str */
	size_t bin_len;		/* the body's length when it is a bin */
	int bin_ok;		/* and its bytes are the pattern */
};

struct end {
	struct hp_channel ch;
	int opened;
	int closed;
	int close_err;
	int keep_fds;
	int nrec;
	struct rec rec[MAXREC];
};

struct fx {
	uv_loop_t loop;
	uv_timer_t timer;
	int timed_out;
	struct end sup, wrk;
	int raw;		/* the raw socket end, or -1 */
	int fds_before;
};

static void
on_msg(struct hp_channel *ch, struct hp_msg *m)
{
	struct end *e = ch->data;
	struct rec *r;
	const msgpack_object *o;

	assert_true(e->nrec < MAXREC);
	r = &e->rec[e->nrec++];
	memset(r, 0, sizeof(*r));
	r->type = m->type;
	r->id = m->id;
	r->origin = m->origin;
	r->fd = -1;
	if (m->body != NULL) {
		r->has_body = 1;
		(void)hp_mpack_u64(m->body, 1, &r->u1);
		(void)hp_mpack_u64(m->body, 2, &r->u2);
		(void)hp_mpack_str(m->body, 1, r->s1, sizeof(r->s1));
		if (m->body->type == MSGPACK_OBJECT_BIN) {
			o = m->body;
			r->bin_len = o->via.bin.size;
			r->bin_ok = 1;
			for (size_t i = 0; i < r->bin_len; i++)
				if ((uint8_t)o->via.bin.ptr[i] !=
				    pattern(i, r->bin_len))
					r->bin_ok = 0;
		}
	}
	if (m->fd >= 0 && e->keep_fds) {
		r->fd = m->fd;
		m->fd = -1;
	}
}

static void
on_close(struct hp_channel *ch, int err)
{
	struct end *e = ch->data;

	assert_false(e->closed);
	e->closed = 1;
	e->close_err = err;
}

static void
timeout_cb(uv_timer_t *t)
{
	struct fx *fx = t->data;

	fx->timed_out = 1;
}

static int
group_setup(void **state)
{
	uv_loop_t loop;

	/* libuv opens a process-wide pipe with its first loop; do it now so
	 * the per-test fd counts only see the test's own fds. */
	if (uv_loop_init(&loop) != 0 || uv_loop_close(&loop) != 0)
		return -1;
	log_set_sink(log_to_buf);
	return 0;
}

static int
group_teardown(void **state)
{
	log_set_sink(NULL);
	return 0;
}

static int
fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	log_reset();
	fx->fds_before = count_fds();
	fx->raw = -1;
	if (uv_loop_init(&fx->loop) != 0 ||
	    uv_timer_init(&fx->loop, &fx->timer) != 0)
		return -1;
	fx->timer.data = fx;
	*state = fx;
	return 0;
}

/* Run the loop until e has n records or is closed, or the timeout. */
static void
run_until_recs(struct fx *fx, struct end *e, int n)
{
	fx->timed_out = 0;
	uv_timer_start(&fx->timer, timeout_cb, TIMEOUT_MS, 0);
	while (e->nrec < n && !e->closed && !fx->timed_out)
		uv_run(&fx->loop, UV_RUN_ONCE);
	uv_timer_stop(&fx->timer);
	if (e->nrec < n)
		fail_msg("%s end has %d of %d messages (%s)",
		    e == &fx->sup ? "supervisor" : "worker", e->nrec, n,
		    e->closed ? hp_strerror(e->close_err) : "timed out");
}

static void
run_until_closed(struct fx *fx, struct end *e)
{
	fx->timed_out = 0;
	uv_timer_start(&fx->timer, timeout_cb, TIMEOUT_MS, 0);
	while (!e->closed && !fx->timed_out)
		uv_run(&fx->loop, UV_RUN_ONCE);
	uv_timer_stop(&fx->timer);
	if (!e->closed)
		fail_msg("%s end still open after %d ms",
		    e == &fx->sup ? "supervisor" : "worker", TIMEOUT_MS);
}

/* Let the loop run what is ready now, without blocking. */
static void
run_idle(struct fx *fx)
{
	for (int i = 0; i < 10; i++)
		uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static int
fx_teardown(void **state)
{
	struct fx *fx = *state;
	struct end *ends[] = { &fx->sup, &fx->wrk };
	int fds_after, rc = 0;

	for (int i = 0; i < 2; i++) {
		struct end *e = ends[i];

		if (e->opened && !e->closed) {
			hp_chan_close(&e->ch, 0);
			run_until_closed(fx, e);
		}
		for (int j = 0; j < e->nrec; j++)
			if (e->rec[j].fd >= 0)
				close(e->rec[j].fd);
	}
	if (fx->raw >= 0)
		close(fx->raw);
	uv_close((uv_handle_t *)&fx->timer, NULL);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&fx->loop) != 0) {
		print_error("the loop still has handles\n");
		rc = -1;
	}
	fds_after = count_fds();
	if (fds_after != fx->fds_before) {
		print_error("%d fds before the test, %d after\n",
		    fx->fds_before, fds_after);
		rc = -1;
	}
	free(fx);
	return rc;
}

static void
make_socketpair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
}

static void
open_sup(struct fx *fx, int fd)
{
	assert_int_equal(hp_chan_open(&fx->loop, &fx->sup.ch, fd,
	    HP_CHAN_SUP_TO_WORKER, "hpd", on_msg, on_close, &fx->sup), 0);
	fx->sup.opened = 1;
}

static void
open_wrk(struct fx *fx, int fd)
{
	assert_int_equal(hp_chan_open(&fx->loop, &fx->wrk.ch, fd,
	    HP_CHAN_WORKER_TO_SUP, "consensus", on_msg, on_close, &fx->wrk), 0);
	fx->wrk.opened = 1;
}

/* A supervisor end and a worker end, HELLOs exchanged. */
static void
open_both(struct fx *fx)
{
	int sv[2];

	make_socketpair(sv);
	open_sup(fx, sv[0]);
	open_wrk(fx, sv[1]);
	run_until_recs(fx, &fx->sup, 1);
	run_until_recs(fx, &fx->wrk, 1);
}

/* A worker end facing the raw socket, which plays the supervisor. */
static void
open_wrk_raw(struct fx *fx)
{
	int sv[2];

	make_socketpair(sv);
	fx->raw = sv[0];
	open_wrk(fx, sv[1]);
}

static void
raw_send(struct fx *fx, struct hp_frame *f, int fd_bit, int fd)
{
	assert_int_equal(hp_frame_end(f, fd_bit), 0);
	assert_int_equal(hp_sendmsg_fd(fx->raw, f->sb.data, f->sb.size, fd),
	    (ssize_t)f->sb.size);
	hp_frame_free(f);
}

static void
raw_hello(struct fx *fx, uint64_t proto, const char *build, const char *role)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_HELLO, 0, 0);
	pack_hello(&f.pk, proto, build, role, 65536);
	raw_send(fx, &f, 0, -1);
}

static void
raw_frame(struct fx *fx, uint32_t type, int fd_bit, int fd)
{
	struct hp_frame f;

	hp_frame_begin(&f, type, 1, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint8(&f.pk, 1);
	hp_mpack_pack_cstr(&f.pk, "peer");
	msgpack_pack_uint8(&f.pk, 2);
	msgpack_pack_uint8(&f.pk, 1);
	raw_send(fx, &f, fd_bit, fd);
}

static void
test_chan_hello(void **state)
{
	struct fx *fx = *state;

	open_both(fx);
	assert_int_equal(fx->sup.nrec, 1);
	assert_int_equal(fx->sup.rec[0].type, HP_MSG_HELLO);
	assert_false(fx->sup.rec[0].has_body);
	assert_string_equal(fx->sup.ch.peer_role, "consensus");
	assert_true(fx->sup.ch.hello_done);
	assert_int_equal(fx->wrk.nrec, 1);
	assert_int_equal(fx->wrk.rec[0].type, HP_MSG_HELLO);
	assert_string_equal(fx->wrk.ch.peer_role, "hpd");
	assert_true(fx->wrk.ch.hello_done);
	assert_int_equal(fx->sup.ch.tx_frames, 1);
	assert_int_equal(fx->wrk.ch.rx_frames, 1);
	assert_false(fx->sup.closed);
	assert_false(fx->wrk.closed);

	/* A clean close reports 0 here and EOF at the peer. */
	hp_chan_close(&fx->sup.ch, 0);
	run_until_closed(fx, &fx->sup);
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->sup.close_err, 0);
	assert_int_equal(fx->wrk.close_err, HP_EEOF);
}

/* The HELLO the channel sends is what the protocol says. */
static void
test_chan_hello_on_wire(void **state)
{
	struct fx *fx = *state;
	struct hp_hello h;
	struct hp_msg m;
	uint8_t *buf;

	open_wrk_raw(fx);
	assert_int_equal(hp_fd_read_frame(fx->raw, pol(HP_CHAN_SUP_TO_WORKER),
	    1000, &buf, &m), 0);
	assert_int_equal(m.type, HP_MSG_HELLO);
	assert_int_equal(hp_hello_decode(m.body, &h), 0);
	assert_int_equal(h.proto, HP_PROTO_VERSION);
	assert_string_equal(h.build_id, HPD_BUILD_ID);
	assert_string_equal(h.role, "consensus");
	assert_int_equal(h.max_frame, pol(HP_CHAN_WORKER_TO_SUP)->max_frame);
	msgpack_unpacked_destroy(&m.res);
	free(buf);

	/* A HELLO from the raw end completes the worker's side. */
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	run_until_recs(fx, &fx->wrk, 1);
	assert_string_equal(fx->wrk.ch.peer_role, "hpd");
}

/*
 * Messages sent right behind a HELLO, before the peer's HELLO has been
 * read (here before the peer end even exists), arrive after it in order.
 */
static void
test_chan_order(void **state)
{
	struct fx *fx = *state;
	struct hp_frame f;
	int sv[2];

	make_socketpair(sv);
	open_sup(fx, sv[0]);
	hp_frame_begin(&f, HP_MSG_PING, 1, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 7);
	assert_int_equal(hp_chan_send(&fx->sup.ch, &f, -1), 0);
	assert_int_equal(hp_chan_send_empty(&fx->sup.ch, HP_MSG_LOG_LEVEL, 2),
	    0);
	assert_int_equal(hp_chan_send_empty(&fx->sup.ch, HP_MSG_SHUTDOWN, 3),
	    0);
	open_wrk(fx, sv[1]);
	assert_int_equal(hp_chan_send_empty(&fx->wrk.ch, HP_MSG_READY, 4), 0);

	run_until_recs(fx, &fx->wrk, 4);
	assert_int_equal(fx->wrk.rec[0].type, HP_MSG_HELLO);
	assert_int_equal(fx->wrk.rec[1].type, HP_MSG_PING);
	assert_int_equal(fx->wrk.rec[1].id, 1);
	assert_int_equal(fx->wrk.rec[1].u1, 7);
	assert_int_equal(fx->wrk.rec[2].type, HP_MSG_LOG_LEVEL);
	assert_int_equal(fx->wrk.rec[2].id, 2);
	assert_int_equal(fx->wrk.rec[3].type, HP_MSG_SHUTDOWN);
	assert_int_equal(fx->wrk.rec[3].id, 3);
	assert_true(fx->wrk.rec[3].has_body);

	run_until_recs(fx, &fx->sup, 2);
	assert_int_equal(fx->sup.rec[0].type, HP_MSG_HELLO);
	assert_int_equal(fx->sup.rec[1].type, HP_MSG_READY);
	assert_int_equal(fx->sup.rec[1].id, 4);
	run_idle(fx);
	assert_int_equal(fx->wrk.nrec, 4);
	assert_int_equal(fx->sup.nrec, 2);
	assert_false(fx->sup.closed);
	assert_false(fx->wrk.closed);
}

static void
send_with_fd(struct hp_channel *ch, uint32_t type, const char *name,
    uint64_t n, int fd)
{
	struct hp_frame f;

	hp_frame_begin(&f, type, (uint32_t)n, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint8(&f.pk, 1);
	hp_mpack_pack_cstr(&f.pk, name);
	msgpack_pack_uint8(&f.pk, 2);
	msgpack_pack_uint64(&f.pk, n);
	assert_int_equal(hp_chan_send(ch, &f, fd), 0);
	assert_null(f.sb.data);	/* the channel took the bytes */
}

/* CHANNEL_NEW carries a working fd; the sender's copy is closed. */
static void
test_chan_fd_passing(void **state)
{
	struct fx *fx = *state;
	int p[2];
	char buf[8];
	struct rec *r;

	open_both(fx);
	fx->wrk.keep_fds = 1;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	send_with_fd(&fx->sup.ch, HP_MSG_CHANNEL_NEW, "peer", 1, p[1]);
	run_until_recs(fx, &fx->wrk, 2);
	r = &fx->wrk.rec[1];
	assert_int_equal(r->type, HP_MSG_CHANNEL_NEW);
	assert_string_equal(r->s1, "peer");
	assert_int_equal(r->u2, 1);
	assert_true(r->fd >= 0);
	assert_int_equal(fcntl(r->fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(write(r->fd, "hello", 5), 5);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	close(r->fd);
	r->fd = -1;
	assert_true(pipe_at_eof(p[0]));
	close(p[0]);
}

/* Several fd-carrying frames queued back to back keep their pairing. */
static void
test_chan_fd_back_to_back(void **state)
{
	struct fx *fx = *state;
	enum { N = 8 };
	int p[N][2];

	open_both(fx);
	fx->wrk.keep_fds = 1;
	for (int i = 0; i < N; i++) {
		assert_int_equal(pipe2(p[i], O_CLOEXEC), 0);
		send_with_fd(&fx->sup.ch, i % 3 == 2 ? HP_MSG_LISTENER :
		    HP_MSG_CHANNEL_NEW, i % 3 == 2 ? "mesh" : "peer",
		    (uint64_t)i, p[i][1]);
	}
	run_until_recs(fx, &fx->wrk, 1 + N);
	for (int i = 0; i < N; i++) {
		struct rec *r = &fx->wrk.rec[1 + i];
		char c = (char)('a' + i), got = 0;

		assert_int_equal(r->type, i % 3 == 2 ? HP_MSG_LISTENER :
		    HP_MSG_CHANNEL_NEW);
		assert_int_equal(r->u2, i);
		assert_true(r->fd >= 0);
		assert_int_equal(write(r->fd, &c, 1), 1);
		assert_int_equal(read(p[i][0], &got, 1), 1);
		assert_int_equal(got, c);
		close(r->fd);
		r->fd = -1;
		assert_true(pipe_at_eof(p[i][0]));
		close(p[i][0]);
	}
	assert_false(fx->wrk.closed);
}

/* An fd the message callback does not keep is closed by the channel. */
static void
test_chan_fd_unclaimed_closed(void **state)
{
	struct fx *fx = *state;
	int p[2];

	open_both(fx);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	send_with_fd(&fx->sup.ch, HP_MSG_LISTENER, "user", 8080, p[1]);
	run_until_recs(fx, &fx->wrk, 2);
	assert_int_equal(fx->wrk.rec[1].type, HP_MSG_LISTENER);
	assert_int_equal(fx->wrk.rec[1].u2, 8080);
	assert_int_equal(fx->wrk.rec[1].fd, -1);
	assert_true(pipe_at_eof(p[0]));
	close(p[0]);
}

static void
test_chan_bad_build_id(void **state)
{
	struct fx *fx = *state;

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, "0123456789ab-bogus", "hpd");
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EPROTO);
	assert_int_equal(fx->wrk.nrec, 0);
	assert_false(fx->wrk.ch.hello_done);
	assert_non_null(strstr(logbuf, "0123456789ab-bogus"));
	assert_non_null(strstr(logbuf, "restart hpd"));
}

static void
test_chan_bad_proto(void **state)
{
	struct fx *fx = *state;

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION + 1, HPD_BUILD_ID, "hpd");
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EPROTO);
	assert_int_equal(fx->wrk.nrec, 0);
}

static void
test_chan_malformed_hello(void **state)
{
	struct fx *fx = *state;
	struct hp_frame f;

	open_wrk_raw(fx);
	hp_frame_begin(&f, HP_MSG_HELLO, 0, 0);
	msgpack_pack_map(&f.pk, 2);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, HP_PROTO_VERSION);
	msgpack_pack_uint8(&f.pk, 2);
	hp_mpack_pack_cstr(&f.pk, HPD_BUILD_ID);
	raw_send(fx, &f, 0, -1);
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EPROTO);
	assert_int_equal(fx->wrk.nrec, 0);
	assert_non_null(strstr(logbuf, "malformed HELLO"));
}

/* Anything but HELLO first is refused, even a type the policy allows. */
static void
test_chan_first_not_hello(void **state)
{
	struct fx *fx = *state;

	open_wrk_raw(fx);
	raw_frame(fx, HP_MSG_PING, 0, -1);
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EPROTO);
	assert_int_equal(fx->wrk.nrec, 0);
	assert_non_null(strstr(logbuf, "not HELLO"));
}

/* The same with an fd attached: the fd must not leak. */
static void
test_chan_first_not_hello_fd(void **state)
{
	struct fx *fx = *state;
	int p[2];

	open_wrk_raw(fx);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	raw_frame(fx, HP_MSG_CHANNEL_NEW, 1, p[1]);
	close(p[1]);
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EPROTO);
	assert_int_equal(fx->wrk.nrec, 0);
	assert_true(pipe_at_eof(p[0]));
	close(p[0]);
}

static void
test_chan_second_hello(void **state)
{
	struct fx *fx = *state;

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EPROTO);
	assert_int_equal(fx->wrk.nrec, 1);
	assert_int_equal(fx->wrk.rec[0].type, HP_MSG_HELLO);
}

/* A type the worker may send but not receive closes the worker's end. */
static void
test_chan_disallowed_type(void **state)
{
	struct fx *fx = *state;

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	raw_frame(fx, HP_MSG_READY, 0, -1);
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_ETYPE);
	assert_int_equal(fx->wrk.nrec, 1);
}

/* PING coming into the supervisor (from a worker) closes its end. */
static void
test_chan_ping_to_supervisor(void **state)
{
	struct fx *fx = *state;
	int sv[2];

	make_socketpair(sv);
	fx->raw = sv[1];
	open_sup(fx, sv[0]);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "consensus");
	run_until_recs(fx, &fx->sup, 1);
	assert_string_equal(fx->sup.ch.peer_role, "consensus");
	raw_frame(fx, HP_MSG_PING, 0, -1);
	run_until_closed(fx, &fx->sup);
	assert_int_equal(fx->sup.close_err, HP_ETYPE);
	assert_int_equal(fx->sup.nrec, 1);
}

static void
test_chan_unknown_type(void **state)
{
	struct fx *fx = *state;

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	raw_frame(fx, 0x7f0001, 0, -1);
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_ETYPE);
}

/* Only the header of an oversized frame is sent: no body is awaited. */
static void
test_chan_oversized_header(void **state)
{
	struct fx *fx = *state;
	uint8_t hdr[HP_FRAME_HDR_LEN];

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	put_hdr(hdr, HP_MSG_PING, pol(HP_CHAN_WORKER_TO_SUP)->max_frame + 1,
	    1, 0);
	assert_int_equal(write(fx->raw, hdr, sizeof(hdr)), sizeof(hdr));
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_ETOOBIG);
	assert_int_equal(fx->wrk.nrec, 1);
}

/* A header too short for any body. */
static void
test_chan_short_len(void **state)
{
	struct fx *fx = *state;
	uint8_t hdr[HP_FRAME_HDR_LEN];

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	put_hdr(hdr, HP_MSG_PING, HP_FRAME_HDR_LEN, 1, 0);
	assert_int_equal(write(fx->raw, hdr, sizeof(hdr)), sizeof(hdr));
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EFORMAT);
}

static void
test_chan_eof(void **state)
{
	struct fx *fx = *state;

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	run_until_recs(fx, &fx->wrk, 1);
	close(fx->raw);
	fx->raw = -1;
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EEOF);
}

/* EOF in the middle of a frame is still EOF. */
static void
test_chan_eof_mid_frame(void **state)
{
	struct fx *fx = *state;
	struct bytes b = frame_u(HP_MSG_PING, 1, 0, 1, 2, 0);

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	assert_int_equal(write(fx->raw, b.p, b.n - 1), (ssize_t)b.n - 1);
	free(b.p);
	run_until_recs(fx, &fx->wrk, 1);
	run_idle(fx);
	assert_false(fx->wrk.closed);
	close(fx->raw);
	fx->raw = -1;
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EEOF);
	assert_int_equal(fx->wrk.nrec, 1);
}

/*
 * A peer that sends and exits without reading what we sent: the socket
 * reports an error (ECONNRESET) along with the data, which must still be
 * delivered before the close, and the close is EOF, not an I/O error.
 */
static void
test_chan_peer_exit_unread(void **state)
{
	struct fx *fx = *state;

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	raw_frame(fx, HP_MSG_LOG_LEVEL, 0, -1);
	close(fx->raw);
	fx->raw = -1;
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.nrec, 2);
	assert_int_equal(fx->wrk.rec[1].type, HP_MSG_LOG_LEVEL);
	assert_string_equal(fx->wrk.rec[1].s1, "peer");
	assert_int_equal(fx->wrk.close_err, HP_EEOF);
}

/* The fd bit on a frame that came without SCM_RIGHTS. */
static void
test_chan_fd_bit_without_fd(void **state)
{
	struct fx *fx = *state;

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	raw_frame(fx, HP_MSG_CHANNEL_NEW, 1, -1);
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EPROTO);
	assert_int_equal(fx->wrk.nrec, 1);
	assert_non_null(strstr(logbuf, "without its fd"));
}

/* An fd attached to a frame that takes none is refused and closed. */
static void
test_chan_fd_without_frame(void **state)
{
	struct fx *fx = *state;
	int p[2];

	open_wrk_raw(fx);
	raw_hello(fx, HP_PROTO_VERSION, HPD_BUILD_ID, "hpd");
	run_until_recs(fx, &fx->wrk, 1);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	raw_frame(fx, HP_MSG_PING, 0, p[1]);
	close(p[1]);
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EPROTO);
	assert_true(pipe_at_eof(p[0]));
	close(p[0]);
}

/* A type the policy may not send is refused; the channel stays usable. */
static void
test_chan_send_refused(void **state)
{
	struct fx *fx = *state;
	struct hp_frame f;
	int p[2];

	open_both(fx);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	hp_frame_begin(&f, HP_MSG_READY, 1, 0);
	msgpack_pack_map(&f.pk, 0);
	assert_int_equal(hp_chan_send(&fx->sup.ch, &f, p[1]), HP_ETYPE);
	assert_true(pipe_at_eof(p[0]));	/* the fd was closed */
	close(p[0]);
	assert_int_equal(hp_chan_send_empty(&fx->wrk.ch, HP_MSG_PING, 2),
	    HP_ETYPE);
	assert_int_equal(hp_chan_send_empty(&fx->sup.ch, HP_CTL_REPLY, 3),
	    HP_ETYPE);
	assert_int_equal(hp_chan_send_empty(&fx->sup.ch, 0xdeadbeef, 4),
	    HP_ETYPE);
	assert_false(fx->sup.ch.closing);
	assert_false(fx->wrk.ch.closing);

	assert_int_equal(hp_chan_send_empty(&fx->sup.ch, HP_MSG_PING, 5), 0);
	assert_int_equal(hp_chan_send_empty(&fx->wrk.ch, HP_MSG_PONG, 6), 0);
	run_until_recs(fx, &fx->wrk, 2);
	run_until_recs(fx, &fx->sup, 2);
	assert_int_equal(fx->wrk.rec[1].type, HP_MSG_PING);
	assert_int_equal(fx->wrk.rec[1].id, 5);
	assert_int_equal(fx->sup.rec[1].type, HP_MSG_PONG);
	assert_int_equal(fx->sup.rec[1].id, 6);
	run_idle(fx);
	assert_false(fx->sup.closed);
	assert_false(fx->wrk.closed);
}

/* Sending on a closed channel fails and still takes the fd. */
static void
test_chan_send_after_close(void **state)
{
	struct fx *fx = *state;
	struct hp_frame f;
	int p[2];

	open_both(fx);
	hp_chan_close(&fx->sup.ch, 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	hp_frame_begin(&f, HP_MSG_CHANNEL_NEW, 1, 0);
	msgpack_pack_map(&f.pk, 0);
	assert_int_equal(hp_chan_send(&fx->sup.ch, &f, p[1]), HP_EEOF);
	assert_true(pipe_at_eof(p[0]));
	close(p[0]);
	run_until_closed(fx, &fx->sup);
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_EEOF);
}

/*
 * Frames around the read buffer's growth steps (it starts at 4 KiB and
 * doubles), and at the policy's max_frame, arrive whole and in order.
 */
static void
test_chan_large_frames(void **state)
{
	struct fx *fx = *state;
	const size_t max = pol(HP_CHAN_WORKER_TO_SUP)->max_frame;
	const size_t sizes[] = { 4095, 4096, 4097, 8191, 8193, 30000, max - 1,
	    max, 300, 65535, 65536, 65537, max };
	const size_t n = sizeof(sizes) / sizeof(sizes[0]);
	struct hp_frame f;

	assert_true(max >= 65537);
	assert_true(max <= HP_CHAN_MAX_QUEUE / 4);
	open_both(fx);
	for (size_t i = 0; i < n; i++) {
		frame_of_size(&f, HP_MSG_PING, (uint32_t)i, sizes[i]);
		assert_int_equal(hp_chan_send(&fx->sup.ch, &f, -1), 0);
	}
	run_until_recs(fx, &fx->wrk, 1 + (int)n);
	for (size_t i = 0; i < n; i++) {
		struct rec *r = &fx->wrk.rec[1 + i];

		assert_int_equal(r->type, HP_MSG_PING);
		assert_int_equal(r->id, i);
		assert_int_equal(r->bin_len, bin_len_for(sizes[i]));
		assert_true(r->bin_ok);
	}
	run_idle(fx);
	assert_int_equal(fx->sup.ch.out_bytes, 0);
	assert_null(fx->sup.ch.out_head);

	/* One byte more than the receiver's max_frame closes it. */
	frame_of_size(&f, HP_MSG_PING, 99, max + 1);
	assert_int_equal(hp_chan_send(&fx->sup.ch, &f, -1), 0);
	run_until_closed(fx, &fx->wrk);
	assert_int_equal(fx->wrk.close_err, HP_ETOOBIG);
	assert_int_equal(fx->wrk.nrec, 1 + (int)n);
	run_until_closed(fx, &fx->sup);
	assert_int_equal(fx->sup.close_err, HP_EEOF);
}

/* ---- blocking helpers ---- */

struct bfx {
	int sv[2];
	int fds_before;
};

static int
bfx_setup(void **state)
{
	struct bfx *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return -1;
	log_reset();
	b->fds_before = count_fds();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b->sv) != 0)
		return -1;
	*state = b;
	return 0;
}

static int
bfx_teardown(void **state)
{
	struct bfx *b = *state;
	int rc = 0;

	for (int i = 0; i < 2; i++)
		if (b->sv[i] >= 0)
			close(b->sv[i]);
	if (count_fds() != b->fds_before) {
		print_error("fd leak: %d before, %d after\n", b->fds_before,
		    count_fds());
		rc = -1;
	}
	free(b);
	return rc;
}

static struct bytes
ctl_reply(uint32_t id, uint64_t code, const char *msg)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_CTL_REPLY, id, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, code);
	msgpack_pack_uint8(&f.pk, 2);
	hp_mpack_pack_cstr(&f.pk, msg);
	msgpack_pack_uint8(&f.pk, 3);
	msgpack_pack_map(&f.pk, 1);
	hp_mpack_pack_cstr(&f.pk, "workers");
	msgpack_pack_uint8(&f.pk, 5);
	return frame_bytes(&f, 0);
}

static void
test_fd_read_frame(void **state)
{
	struct bfx *b = *state;
	struct bytes r1 = ctl_reply(7, 0, "ok"), r2 = ctl_reply(8, 1, "no");
	uint8_t *cat = malloc(r1.n + r2.n), *buf;
	struct hp_frame f;
	struct hp_msg m;
	uint64_t code;
	char msg[16];

	/* Two replies in one write: each read takes exactly one. */
	assert_non_null(cat);
	memcpy(cat, r1.p, r1.n);
	memcpy(cat + r1.n, r2.p, r2.n);
	assert_int_equal(hp_fd_write_all(b->sv[0], cat, r1.n + r2.n), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(hp_fd_read_frame(b->sv[1],
		    pol(HP_CHAN_CTL_CLIENT), 1000, &buf, &m), 0);
		assert_int_equal(m.type, HP_CTL_REPLY);
		assert_int_equal(m.id, 7 + i);
		assert_int_equal(hp_mpack_u64(m.body, 1, &code), 0);
		assert_int_equal(code, i);
		assert_int_equal(hp_mpack_str(m.body, 2, msg, sizeof(msg)), 0);
		assert_string_equal(msg, i == 0 ? "ok" : "no");
		assert_non_null(hp_mpack_get_s(hp_mpack_get(m.body, 3),
		    "workers"));
		msgpack_unpacked_destroy(&m.res);
		free(buf);
	}
	free(cat);
	free(r1.p);
	free(r2.p);

	/* And a request the other way, read by the server policy. */
	hp_frame_begin(&f, HP_CTL_REQUEST, 9, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_array(&f.pk, 1);
	hp_mpack_pack_cstr(&f.pk, "status");
	assert_int_equal(hp_frame_end(&f, 0), 0);
	assert_int_equal(hp_fd_write_all(b->sv[1], f.sb.data, f.sb.size), 0);
	hp_frame_free(&f);
	assert_int_equal(hp_fd_read_frame(b->sv[0], pol(HP_CHAN_CTL_SERVER),
	    1000, &buf, &m), 0);
	assert_int_equal(m.type, HP_CTL_REQUEST);
	assert_int_equal(m.id, 9);
	msgpack_unpacked_destroy(&m.res);
	free(buf);
}

/* Nothing, part of a header, a header alone, all but one byte: time out. */
static void
test_fd_read_frame_timeout(void **state)
{
	struct bfx *b = *state;
	struct bytes r = ctl_reply(1, 0, "ok");
	const size_t cuts[] = { 0, 5, HP_FRAME_HDR_LEN, r.n - 1 };

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct hp_msg m;
		uint8_t *buf = NULL;
		long t0, dt;

		if (cuts[i] > 0)
			assert_int_equal(hp_fd_write_all(b->sv[0], r.p,
			    cuts[i]), 0);
		t0 = now_ms();
		assert_int_equal(hp_fd_read_frame(b->sv[1],
		    pol(HP_CHAN_CTL_CLIENT), 100, &buf, &m), HP_EAGAIN);
		dt = now_ms() - t0;
		assert_true(dt >= 99 && dt < 2000);
		assert_null(buf);
		/* The bytes read so far are lost: use a fresh pair. */
		close(b->sv[0]);
		close(b->sv[1]);
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
		    0, b->sv), 0);
	}
	free(r.p);
}

static void
test_fd_read_frame_errors(void **state)
{
	struct bfx *b = *state;
	struct bytes r;
	uint8_t hdr[HP_FRAME_HDR_LEN], *buf = NULL;
	struct hp_msg m;
	long t0;

	/* A request where a reply is due. */
	r = frame_u(HP_CTL_REQUEST, 1, 0, 1, 0, 0);
	assert_int_equal(hp_fd_write_all(b->sv[0], r.p, r.n), 0);
	assert_int_equal(hp_fd_read_frame(b->sv[1], pol(HP_CHAN_CTL_CLIENT),
	    1000, &buf, &m), HP_ETYPE);
	assert_null(buf);
	free(r.p);

	/* Too big: refused at once, without waiting for the body. */
	put_hdr(hdr, HP_CTL_REPLY, pol(HP_CHAN_CTL_CLIENT)->max_frame + 1, 1,
	    0);
	assert_int_equal(hp_fd_write_all(b->sv[0], hdr, sizeof(hdr)), 0);
	t0 = now_ms();
	assert_int_equal(hp_fd_read_frame(b->sv[1], pol(HP_CHAN_CTL_CLIENT),
	    3000, &buf, &m), HP_ETOOBIG);
	assert_true(now_ms() - t0 < 1000);

	/* Too short. */
	put_hdr(hdr, HP_CTL_REPLY, 10, 1, 0);
	assert_int_equal(hp_fd_write_all(b->sv[0], hdr, sizeof(hdr)), 0);
	assert_int_equal(hp_fd_read_frame(b->sv[1], pol(HP_CHAN_CTL_CLIENT),
	    1000, &buf, &m), HP_EFORMAT);

	/* A bad body. */
	put_hdr(hdr, HP_CTL_REPLY, 17, 1, 0);
	assert_int_equal(hp_fd_write_all(b->sv[0], hdr, sizeof(hdr)), 0);
	assert_int_equal(hp_fd_write_all(b->sv[0], "\xc1", 1), 0);
	assert_int_equal(hp_fd_read_frame(b->sv[1], pol(HP_CHAN_CTL_CLIENT),
	    1000, &buf, &m), HP_EFORMAT);

	/* The other end goes away. */
	close(b->sv[0]);
	b->sv[0] = -1;
	assert_int_equal(hp_fd_read_frame(b->sv[1], pol(HP_CHAN_CTL_CLIENT),
	    1000, &buf, &m), HP_EEOF);
}

/* A reply far larger than the socket buffer, from another process. */
static void
test_fd_read_frame_large(void **state)
{
	struct bfx *b = *state;
	const size_t total = 900 * 1024;
	size_t n = total - HP_FRAME_HDR_LEN - 5;	/* bin32 header */
	struct hp_msg m;
	uint8_t *buf;
	pid_t pid;
	int st, ok = 1;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct hp_frame f;
		uint8_t *body = malloc(n);

		if (body == NULL)
			_exit(2);
		for (size_t i = 0; i < n; i++)
			body[i] = pattern(i, n);
		hp_frame_begin(&f, HP_CTL_REPLY, 42, 0);
		msgpack_pack_bin(&f.pk, n);
		msgpack_pack_bin_body(&f.pk, body, n);
		if (f.sb.size != total || hp_frame_end(&f, 0) != 0 ||
		    hp_fd_write_all(b->sv[0], f.sb.data, f.sb.size) != 0)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(hp_fd_read_frame(b->sv[1], pol(HP_CHAN_CTL_CLIENT),
	    5000, &buf, &m), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(m.id, 42);
	assert_int_equal(m.body->type, MSGPACK_OBJECT_BIN);
	assert_int_equal(m.body->via.bin.size, n);
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)m.body->via.bin.ptr[i] != pattern(i, n))
			ok = 0;
	assert_true(ok);
	msgpack_unpacked_destroy(&m.res);
	free(buf);
}

int
main(void)
{
#define LIVE(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)
#define BLOCKING(t) cmocka_unit_test_setup_teardown(t, bfx_setup, bfx_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_roundtrip),
		cmocka_unit_test(test_frame_end_header),
		cmocka_unit_test(test_frame_stream),
		cmocka_unit_test(test_frame_truncated),
		cmocka_unit_test(test_frame_len_too_small),
		cmocka_unit_test(test_frame_too_big),
		cmocka_unit_test(test_frame_unknown_type),
		cmocka_unit_test(test_frame_wrong_direction),
		cmocka_unit_test(test_frame_fd_bit),
		cmocka_unit_test(test_frame_bad_body),
		cmocka_unit_test(test_hello_decode),
		LIVE(test_chan_hello),
		LIVE(test_chan_hello_on_wire),
		LIVE(test_chan_order),
		LIVE(test_chan_fd_passing),
		LIVE(test_chan_fd_back_to_back),
		LIVE(test_chan_fd_unclaimed_closed),
		LIVE(test_chan_bad_build_id),
		LIVE(test_chan_bad_proto),
		LIVE(test_chan_malformed_hello),
		LIVE(test_chan_first_not_hello),
		LIVE(test_chan_first_not_hello_fd),
		LIVE(test_chan_second_hello),
		LIVE(test_chan_disallowed_type),
		LIVE(test_chan_ping_to_supervisor),
		LIVE(test_chan_unknown_type),
		LIVE(test_chan_oversized_header),
		LIVE(test_chan_short_len),
		LIVE(test_chan_eof),
		LIVE(test_chan_eof_mid_frame),
		LIVE(test_chan_peer_exit_unread),
		LIVE(test_chan_fd_bit_without_fd),
		LIVE(test_chan_fd_without_frame),
		LIVE(test_chan_send_refused),
		LIVE(test_chan_send_after_close),
		LIVE(test_chan_large_frames),
		BLOCKING(test_fd_read_frame),
		BLOCKING(test_fd_read_frame_timeout),
		BLOCKING(test_fd_read_frame_errors),
		BLOCKING(test_fd_read_frame_large),
	};
#undef LIVE
#undef BLOCKING

	return cmocka_run_group_tests_name("channel", tests, group_setup,
	    group_teardown);
}
