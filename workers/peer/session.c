/*
 * session.c — one TLS connection to another node (session.h): the
 * non-blocking connect, the TLS handshake and I/O driven by a uv_poll_t on
 * the socket (common/net.h: every TLS call that would block returns
 * HP_EAGAIN and the poll mask follows it), the frame reader, the HELLO
 * check that binds the peer's node key to the certificate it presented,
 * and the per-session limits.
 */
#include "session.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ban.h"
#include "err.h"
#include "known.h"
#include "log.h"
#include "mesh.h"
#include "net.h"
#include "proto.h"
#include "tlsid.h"

static void on_poll(uv_poll_t *h, int status, int events);

const char *
session_state_name(enum session_state st)
{
	switch (st) {
	case S_CONNECTING: return "connecting";
	case S_HANDSHAKE: return "handshake";
	case S_HELLO: return "hello";
	case S_VERIFIED: return "verified";
	case S_CLOSING: return "closing";
	}
	return "?";
}

struct outbuf *
outbuf_copy(const void *bytes, size_t len)
{
	struct outbuf *b = malloc(sizeof(*b) + len);

	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->len = len;
	memcpy(b->data, bytes, len);
	return b;
}

struct outbuf *
outbuf_new(uint8_t type, const void *payload, size_t len)
{
	struct outbuf *b;

	if (len > UINT32_MAX ||
	    (b = malloc(sizeof(*b) + WIRE_HDR_LEN + len)) == NULL)
		return NULL;
	b->refs = 1;
	b->len = WIRE_HDR_LEN + len;
	wire_hdr_encode(b->data, type, (uint32_t)len);
	if (len > 0)
		memcpy(b->data + WIRE_HDR_LEN, payload, len);
	return b;
}

void
outbuf_unref(struct outbuf *b)
{
	if (b != NULL && --b->refs == 0)
		free(b);
}

static void
on_closed(uv_handle_t *h)
{
	struct session *s = h->data;
	struct session **pp;
	struct outq *q, *nq;

	for (pp = &mesh.sessions; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	for (q = s->oq_head; q != NULL; q = nq) {
		nq = q->next;
		outbuf_unref(q->b);
		free(q);
	}
	wire_reader_free(&s->rd);
	SSL_free(s->ssl);
	close(s->fd);
	free(s);
}

static void
set_events(struct session *s)
{
	int ev = UV_READABLE;

	if (s->state == S_CLOSING)
		return;
	if (s->state == S_CONNECTING || s->want_write)
		ev = s->state == S_CONNECTING ? UV_WRITABLE : ev | UV_WRITABLE;
	if (ev != s->events) {
		s->events = ev;
		uv_poll_start(&s->poll, ev, on_poll);
	}
}

static void
vclose(struct session *s, int level, const char *fmt, va_list ap)
{
	enum session_state was = s->state;
	char why[256];

	if (s->state == S_CLOSING)
		return;
	vsnprintf(why, sizeof(why), fmt, ap);
	if (level >= HP_LOG_INF && was == S_VERIFIED)
		log_info("session %llu %s %s:%u closed: %s",
		    (unsigned long long)s->id, s->outbound ? "to" : "from",
		    s->ip, (unsigned)s->rport, why);
	else if (level >= HP_LOG_WRN)
		log_warnx("session %llu %s %s:%u closed: %s",
		    (unsigned long long)s->id, s->outbound ? "to" : "from",
		    s->ip, (unsigned)s->rport, why);
	else
		log_debug("session %llu %s %s:%u closed: %s",
		    (unsigned long long)s->id, s->outbound ? "to" : "from",
		    s->ip, (unsigned)s->rport, why);
	if (was >= S_HELLO && was <= S_VERIFIED)
		SSL_shutdown(s->ssl);	/* best effort, never waits */
	ERR_clear_error();
	s->state = S_CLOSING;
	uv_close((uv_handle_t *)&s->poll, on_closed);
	mesh_session_closed(s, was);
}

void
session_close(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vclose(s, HP_LOG_INF, fmt, ap);
	va_end(ap);
}

static void
close_quiet(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
close_quiet(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vclose(s, HP_LOG_DBG, fmt, ap);
	va_end(ap);
}

void
session_violation(struct session *s, const char *fmt, ...)
{
	uint64_t now = mesh_now();
	va_list ap;

	if (s->state == S_CLOSING)
		return;
	mesh.c.violations++;
	if (ban_violation(s->ip, now)) {
		mesh.c.bans++;
		log_warnx("banning %s for %d s: %d violations within %d s",
		    s->ip, BAN_MS / 1000, BAN_VIOLATIONS,
		    BAN_WINDOW_MS / 1000);
	}
	va_start(ap, fmt);
	vclose(s, HP_LOG_WRN, fmt, ap);
	va_end(ap);
}

void
session_count_bad(struct session *s, const char *what)
{
	uint64_t max = mesh.cfg->mesh.max_bad_msgs_per_min;

	mesh.c.dropped_bad++;
	s->win.bad++;
	log_debug("session %llu: dropped %s", (unsigned long long)s->id,
	    what);
	if (max != 0 && s->win.bad > max)
		session_violation(s, "more than %llu bad messages in a minute"
		    " (mesh.max_bad_msgs_per_min)", (unsigned long long)max);
}

void
session_count_dup(struct session *s)
{
	uint64_t max = mesh.cfg->mesh.max_dup_msgs_per_min;

	mesh.c.dropped_dup++;
	s->win.dup++;
	if (max != 0 && s->win.dup > max)
		session_violation(s, "more than %llu duplicate messages in a"
		    " minute (mesh.max_dup_msgs_per_min)",
		    (unsigned long long)max);
}

static void
flush(struct session *s)
{
	while (s->oq_head != NULL && s->state != S_CLOSING) {
		struct outq *q = s->oq_head;
		bool ww;
		int n;

		n = hp_tls_write(s->ssl, q->b->data + q->off,
		    q->b->len - q->off, &ww);
		if (n > 0) {
			q->off += (size_t)n;
			s->oq_bytes -= (size_t)n;
			s->bytes_out += (uint64_t)n;
			if (q->off < q->b->len)
				continue;
			s->frames_out++;
			s->oq_head = q->next;
			if (s->oq_head == NULL)
				s->oq_tail = NULL;
			outbuf_unref(q->b);
			free(q);
			continue;
		}
		if (n != HP_EAGAIN)
			close_quiet(s, "write failed: %s", n == HP_EIO ?
			    strerror(errno) : hp_tls_error());
		else if (ww)
			s->want_write = true;
		return;
	}
}

void
session_send(struct session *s, struct outbuf *b)
{
	struct outq *q;

	if (s->state == S_CLOSING || s->state < S_HELLO)
		return;
	if (s->oq_bytes + b->len > SESSION_OUTQ_MAX) {
		session_close(s, "peer reads too slowly: %zu bytes queued",
		    s->oq_bytes);
		return;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		session_close(s, "out of memory for the send queue");
		return;
	}
	b->refs++;
	q->b = b;
	if (s->oq_tail != NULL)
		s->oq_tail->next = q;
	else
		s->oq_head = q;
	s->oq_tail = q;
	s->oq_bytes += b->len;
	s->last_tx_ms = mesh_now();
	if (!s->want_write) {
		flush(s);
		set_events(s);
	}
}

void
session_send_sb(struct session *s, const msgpack_sbuffer *sb)
{
	struct outbuf *b = outbuf_copy(sb->data, sb->size);

	if (b == NULL) {
		session_close(s, "out of memory for a frame");
		return;
	}
	session_send(s, b);
	outbuf_unref(b);
}

static void
send_hello(struct session *s)
{
	const struct hp_config *cfg = mesh.cfg;
	struct wire_hello h;
	msgpack_sbuffer sb;

	memset(&h, 0, sizeof(h));
	snprintf(h.contract_id, sizeof(h.contract_id), "%s", cfg->contract.id);
	h.version = WIRE_VERSION;
	memcpy(h.pk, mesh.pk, sizeof(h.pk));
	memcpy(h.sig, mesh.sig, sizeof(h.sig));
	h.listen_port = cfg->mesh.listen ? cfg->mesh.port : 0;
	h.need_forwarding = mesh.weak;
	s->sent_need = mesh.weak;
	msgpack_sbuffer_init(&sb);
	wire_hello_encode(&sb, &h);
	session_send_sb(s, &sb);
	msgpack_sbuffer_destroy(&sb);
}

static void
check_hello(struct session *s, const struct wire_frame *f)
{
	const char *cid = mesh.cfg->contract.id;
	uint8_t spki[TLSID_SPKI_MAX], *bind = NULL;
	size_t spki_len, bind_len;
	struct wire_hello h;
	int rc;

	if (wire_hello_decode(f->payload, f->len, &h) != 0) {
		mesh.c.bad_hello++;
		session_close(s, "malformed HELLO");
		return;
	}
	if (strcmp(h.contract_id, cid) != 0) {
		mesh.c.bad_hello++;
		session_close(s, "HELLO for contract %.64s, ours is %s",
		    h.contract_id, cid);
		return;
	}
	if (h.version != WIRE_VERSION) {
		mesh.c.bad_hello++;
		session_close(s, "peer protocol version %llu, ours is %d",
		    (unsigned long long)h.version, WIRE_VERSION);
		return;
	}
	if ((rc = tlsid_peer_spki(s->ssl, spki, sizeof(spki),
	    &spki_len)) != 0 ||
	    (rc = tlsid_binding(cid, spki, spki_len, &bind, &bind_len)) != 0) {
		mesh.c.bad_hello++;
		session_close(s, "no usable TLS certificate: %s",
		    hp_strerror(rc));
		return;
	}
	rc = hp_verify(h.pk, bind, bind_len, h.sig);
	free(bind);
	if (rc != 0) {
		mesh.c.bad_hello++;
		session_close(s, "HELLO signature does not cover the TLS"
		    " certificate presented");
		return;
	}
	if (memcmp(h.pk, mesh.pk, HP_PK_BYTES) == 0) {
		if (s->known != NULL)
			known_mark_self(s->known);
		close_quiet(s, "connected to ourselves");
		return;
	}
	memcpy(s->pk, h.pk, sizeof(s->pk));
	s->listen_port = h.listen_port;
	s->peer_needs_fwd = h.need_forwarding;
	s->state = S_VERIFIED;
	s->verified_ms = mesh_now();
	s->rd.hello_only = false;
	mesh_session_verified(s);
}

static void
handle_frame(struct session *s, const struct wire_frame *f)
{
	s->frames_in++;
	if (!wire_type_known(f->type)) {
		session_count_bad(s, "a frame of unknown type");
		return;
	}
	if (f->skipped) {
		mesh.c.dropped_unverified++;
		return;
	}
	if (f->type == WIRE_HELLO) {
		if (s->state == S_VERIFIED)
			session_count_bad(s, "a second HELLO");
		else
			check_hello(s, f);
		return;
	}
	mesh_frame(s, f);
}

/* Plaintext from TLS. Returns -1 once the session is closing. */
static int
feed(struct session *s, const uint8_t *p, size_t n)
{
	uint64_t max = mesh.cfg->mesh.max_bytes_per_min;
	struct wire_frame f;
	int r;

	s->bytes_in += n;
	s->win.bytes += n;
	s->last_rx_ms = mesh_now();
	if (max != 0 && s->win.bytes > max) {
		session_violation(s, "more than %llu bytes in a minute"
		    " (mesh.max_bytes_per_min)", (unsigned long long)max);
		return -1;
	}
	while ((r = wire_reader_next(&s->rd, &p, &n, &f)) == 1) {
		handle_frame(s, &f);
		if (s->state == S_CLOSING)
			return -1;
	}
	if (r == HP_ETOOBIG) {
		mesh.c.dropped_bad++;
		session_violation(s, "%s frame of %u bytes is over its limit",
		    wire_type_name(s->rd.type), (unsigned)s->rd.len);
		return -1;
	}
	if (r < 0) {
		session_close(s, "cannot read a frame: %s", hp_strerror(r));
		return -1;
	}
	return 0;
}

static void
read_all(struct session *s)
{
	uint8_t buf[16384];
	int n;

	for (;;) {
		n = hp_tls_read(s->ssl, buf, sizeof(buf), &s->want_write);
		if (n > 0) {
			if (feed(s, buf, (size_t)n) != 0)
				return;
			continue;
		}
		if (n == HP_EEOF)
			close_quiet(s, "closed by the peer");
		else if (n == HP_EIO)
			close_quiet(s, "connection lost%s%s", errno ? ": " : "",
			    errno ? strerror(errno) : "");
		else if (n != HP_EAGAIN) {
			/* Bytes that are not TLS on an open session. */
			mesh.c.tls_errors++;
			session_violation(s, "TLS error: %s", hp_tls_error());
		}
		return;
	}
}

static void
pump(struct session *s)
{
	const char *why;
	int r;

	s->want_write = false;
	if (s->state == S_HANDSHAKE) {
		r = hp_tls_handshake(s->ssl, &s->want_write, &why);
		if (r == HP_EAGAIN) {
			set_events(s);
			return;
		}
		if (r != 0) {
			close_quiet(s, "TLS handshake failed: %s", why);
			return;
		}
		s->state = S_HELLO;
		send_hello(s);
	}
	flush(s);
	if (s->state != S_CLOSING)
		read_all(s);
	if (s->state != S_CLOSING)
		flush(s);
	set_events(s);
}

static void
connected(struct session *s)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		close_quiet(s, "connect: %s", strerror(err));
		return;
	}
	s->state = S_HANDSHAKE;
	pump(s);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct session *s = h->data;

	if (s->state == S_CLOSING)
		return;
	if (status < 0 && s->state == S_CONNECTING) {
		connected(s);
		return;
	}
	if (status < 0) {
		close_quiet(s, "poll: %s", uv_strerror(status));
		return;
	}
	if (s->state == S_CONNECTING)
		connected(s);
	else
		pump(s);
}

static struct session *
session_new(int fd, bool outbound, const struct sockaddr *sa)
{
	struct session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return NULL;
	}
	s->fd = fd;
	s->outbound = outbound;
	s->id = ++mesh.next_id;
	hp_addr_text(sa, s->ip, sizeof(s->ip), &s->rport);
	s->created_ms = s->last_rx_ms = s->last_tx_ms = mesh_now();
	s->win.start = s->created_ms;
	wire_reader_init(&s->rd, mesh.cfg->mesh.max_bytes_per_msg);
	s->rd.hello_only = true;
	if (hp_tls_attach(mesh.loop, mesh.tls.ctx, fd, &s->ssl,
	    &s->poll) != 0) {
		log_warnx("cannot set up a session with %s: %s", s->ip,
		    hp_tls_error());
		SSL_free(s->ssl);
		close(fd);
		free(s);
		return NULL;
	}
	if (outbound)
		SSL_set_connect_state(s->ssl);
	else
		SSL_set_accept_state(s->ssl);
	s->poll.data = s;
	s->next = mesh.sessions;
	mesh.sessions = s;
	return s;
}

int
session_accept(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct session *s;

	if ((s = session_new(fd, false, sa)) == NULL)
		return HP_ENOMEM;
	s->state = S_HANDSHAKE;
	s->events = UV_READABLE;
	uv_poll_start(&s->poll, UV_READABLE, on_poll);
	log_debug("session %llu from %s:%u accepted",
	    (unsigned long long)s->id, s->ip, (unsigned)s->rport);
	return 0;
}

int
session_dial(struct known *k, const struct sockaddr *sa, socklen_t len)
{
	struct session *s;
	int fd;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0)
		return HP_EIO;
	if (connect(fd, sa, len) != 0 && errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		errno = e;
		return HP_EIO;
	}
	if ((s = session_new(fd, true, sa)) == NULL)
		return HP_ENOMEM;
	s->state = S_CONNECTING;
	s->known = k;
	k->s = s;
	s->events = UV_WRITABLE;
	uv_poll_start(&s->poll, UV_WRITABLE, on_poll);
	log_debug("session %llu dialling %s:%u", (unsigned long long)s->id,
	    s->ip, (unsigned)s->rport);
	return 0;
}

void
session_tick(struct session *s, uint64_t now)
{
	const struct hp_config *cfg = mesh.cfg;
	uint64_t idle = cfg->mesh.idle_timeout;
	uint64_t maxsig = cfg->mesh.max_bad_msgsigs_per_min;

	if (s->state == S_CLOSING)
		return;
	if (s->state != S_VERIFIED && now - s->created_ms >= SESSION_HELLO_MS) {
		close_quiet(s, "no valid HELLO within %d s",
		    SESSION_HELLO_MS / 1000);
		return;
	}
	if (s->state == S_VERIFIED && idle != 0 && now - s->last_rx_ms >= idle) {
		session_close(s, "idle for %llu ms (mesh.idle_timeout)",
		    (unsigned long long)(now - s->last_rx_ms));
		return;
	}
	if (maxsig != 0 && s->win.badsig > maxsig) {
		session_violation(s, "more than %llu messages with bad"
		    " signatures in a minute (mesh.max_bad_msgsigs_per_min)",
		    (unsigned long long)maxsig);
		return;
	}
	if (now - s->win.start >= SESSION_WINDOW_MS) {
		memset(&s->win, 0, sizeof(s->win));
		s->win.start = now;
	}
	/* Keep a quiet but healthy session from idling out at the peer. */
	if (s->state == S_VERIFIED && idle != 0 &&
	    now - s->last_tx_ms >= idle / 3) {
		msgpack_sbuffer sb;

		msgpack_sbuffer_init(&sb);
		wire_empty_encode(&sb, WIRE_PING);
		session_send_sb(s, &sb);
		msgpack_sbuffer_destroy(&sb);
	}
}
