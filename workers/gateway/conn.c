/*
 * conn.c — the user port's connections (gw.h): accept under the
 * configured limits, TLS (1.2 or later, the node's certificate from
 * cfg/tls.crt and cfg/tls.key) driven by a uv_poll_t on the non-blocking
 * socket through common/net.h, the HTTP upgrade, WebSocket bytes in and
 * out through ws.c, back-pressure, the handshake and idle timers, and the
 * per-minute byte and bad-message limits.
 */
#include "gw.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "net.h"

/* Where the supervisor puts the certificate and key for this worker. */
#define TLS_CRT_FD	5
#define TLS_KEY_FD	6

static void on_poll(uv_poll_t *h, int status, int events);
static void on_accept(uv_poll_t *h, int status, int events);

static BIO *
open_pem(int fd, const char *dir, const char *rel)
{
	char path[4096];
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		return BIO_new_fd(fd, BIO_CLOSE);
	snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : ".", rel);
	return BIO_new_file(path, "r");
}

/* The certificate (with any chain after it) and the key. */
static int
load_cert(SSL_CTX *ctx, const char *dir)
{
	BIO *crt = open_pem(TLS_CRT_FD, dir, "cfg/tls.crt");
	BIO *key = open_pem(TLS_KEY_FD, dir, "cfg/tls.key");
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	int ok = 0;

	if (crt == NULL || key == NULL) {
		log_errx("cannot read the user port's certificate or key"
		    " (cfg/tls.crt, cfg/tls.key): %s", hp_tls_error());
		goto out;
	}
	if ((x = PEM_read_bio_X509(crt, NULL, NULL, NULL)) == NULL ||
	    SSL_CTX_use_certificate(ctx, x) != 1) {
		log_errx("cfg/tls.crt: not a PEM certificate: %s",
		    hp_tls_error());
		goto out;
	}
	for (;;) {
		X509 *ca = PEM_read_bio_X509(crt, NULL, NULL, NULL);

		if (ca == NULL)
			break;
		if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
			X509_free(ca);
			break;
		}
	}
	ERR_clear_error();
	if ((pkey = PEM_read_bio_PrivateKey(key, NULL, NULL, NULL)) == NULL ||
	    SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_errx("cfg/tls.key: not the key of cfg/tls.crt: %s",
		    hp_tls_error());
		goto out;
	}
	ok = 1;
out:
	X509_free(x);
	EVP_PKEY_free(pkey);
	BIO_free(crt);
	BIO_free(key);
	return ok ? 0 : -1;
}

int
conn_pre_sandbox(const char *dir)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		log_errx("TLS setup failed: %s", hp_tls_error());
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (load_cert(ctx, dir) != 0) {
		SSL_CTX_free(ctx);
		return -1;
	}
	gw.tls = ctx;
	return 0;
}

uint64_t
gw_now(void)
{
	return uv_now(gw.loop);
}

static void
tick(uv_timer_t *t)
{
	uint64_t now = gw_now(), idle = gw.cfg->user.idle_timeout;

	for (struct conn *c = gw.conns; c != NULL; c = c->next) {
		if (c->state == C_CLOSING)
			continue;
		if (c->state != C_VERIFIED &&
		    now - c->last_rx_ms >= GW_HANDSHAKE_MS) {
			gw.c.handshake_failures++;
			conn_close(c, "no handshake within %d s",
			    GW_HANDSHAKE_MS / 1000);
			continue;
		}
		if (c->state == C_VERIFIED && idle != 0 &&
		    now - c->last_rx_ms >= idle) {
			conn_close(c, "idle for %llu ms (user.idle_timeout)",
			    (unsigned long long)(now - c->last_rx_ms));
			continue;
		}
		if (now - c->win.start >= GW_WINDOW_MS) {
			memset(&c->win, 0, sizeof(c->win));
			c->win.start = now;
		}
	}
}

int
conn_init(uv_loop_t *loop, const struct hp_config *cfg)
{
	struct rlimit rl;

	gw.loop = loop;
	gw.cfg = cfg;
	gw.max_msg = cfg->user.max_bytes_per_msg != 0 ?
	    (size_t)cfg->user.max_bytes_per_msg : GW_DEFAULT_MAX_MSG;
	/* Keep descriptors for the channels and the listening socket. */
	gw.max_conns = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 64)
		gw.max_conns = (size_t)rl.rlim_cur - 32;
	if (uv_timer_init(loop, &gw.tick) != 0 ||
	    uv_timer_init(loop, &gw.resume) != 0 ||
	    uv_timer_start(&gw.tick, tick, 250, 250) != 0)
		return HP_EIO;
	return 0;
}

static void
set_events(struct conn *c)
{
	const uint8_t *p;
	size_t n;
	int ev = c->paused ? 0 : UV_READABLE;

	if (c->state == C_CLOSING)
		return;
	ws_out(&c->ws, &p, &n);
	if (c->want_write || (c->state == C_TLS && ev == 0) ||
	    (n > 0 && c->state != C_TLS))
		ev |= UV_WRITABLE;
	if (ev == 0)
		ev = UV_WRITABLE;
	if (ev != c->events) {
		c->events = ev;
		uv_poll_start(&c->poll, ev, on_poll);
	}
}

static void
on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct conn **pp;

	for (pp = &gw.conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	gw.nconns--;
	ws_free(&c->ws);
	free(c->http);
	SSL_free(c->ssl);
	close(c->fd);
	free(c);
	/* A slot is free again. */
	if (!gw.listening && !gw.stopping && gw.listen_fd >= 0 &&
	    !uv_is_active((uv_handle_t *)&gw.resume) &&
	    uv_poll_start(&gw.listen_poll, UV_READABLE, on_accept) == 0)
		gw.listening = true;
}

static void
vclose(struct conn *c, int quiet, const char *fmt, va_list ap)
{
	enum conn_state was = c->state;
	char why[256];

	if (c->state == C_CLOSING)
		return;
	vsnprintf(why, sizeof(why), fmt, ap);
	if (was == C_VERIFIED && !quiet)
		log_info("user connection %llu from %s:%u closed: %s",
		    (unsigned long long)c->id, c->ip, (unsigned)c->rport, why);
	else
		log_debug("user connection %llu from %s:%u closed: %s",
		    (unsigned long long)c->id, c->ip, (unsigned)c->rport, why);
	if (was != C_TLS)
		SSL_shutdown(c->ssl);	/* best effort, never waits */
	ERR_clear_error();
	c->state = C_CLOSING;
	gw.c.closed++;
	uv_close((uv_handle_t *)&c->poll, on_closed);
	user_closed(c);
	(void)was;
}

void
conn_close(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vclose(c, 0, fmt, ap);
	va_end(ap);
}

static void
close_quiet(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
close_quiet(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vclose(c, 1, fmt, ap);
	va_end(ap);
}

/* Write what ws has ready; end the connection once a close went out. */
static void
flush(struct conn *c)
{
	const uint8_t *p;
	size_t n;
	int w;

	if (c->state == C_CLOSING || c->state == C_TLS)
		return;
	for (;;) {
		ws_out(&c->ws, &p, &n);
		if (n == 0)
			break;
		w = hp_tls_write(c->ssl, p, n, &c->want_write);
		if (w == HP_EAGAIN)
			return;
		if (w < 0) {
			close_quiet(c, "write failed: %s", w == HP_EIO ?
			    strerror(errno) : hp_tls_error());
			return;
		}
		c->bytes_out += (uint64_t)w;
		gw.c.bytes_out += (uint64_t)w;
		ws_consume(&c->ws, (size_t)w);
	}
	if (ws_done(&c->ws))
		close_quiet(c, "WebSocket closed (code %u)",
		    (unsigned)c->ws.close_code);
}

static void
check_pressure(struct conn *c)
{
	size_t q = ws_queued(&c->ws);

	if (q > GW_OUT_MAX) {
		conn_close(c, "user reads too slowly: %zu bytes queued", q);
		return;
	}
	c->paused = q > GW_OUT_PAUSE;
}

void
conn_send(struct conn *c, const struct hp_ubuf *b)
{
	if (c->state == C_CLOSING || !c->ws_up)
		return;
	if (ws_send(&c->ws, b->data, b->len) != 0)
		return;
	c->msgs_out++;
	check_pressure(c);
	if (c->state == C_CLOSING)
		return;
	if (!c->want_write)
		flush(c);
	set_events(c);
}

void
conn_ws_close(struct conn *c, uint16_t code, const char *reason)
{
	if (c->state == C_CLOSING)
		return;
	if (!c->ws_up) {
		close_quiet(c, "%s", reason);
		return;
	}
	ws_close(&c->ws, code, reason);
	if (!c->want_write)
		flush(c);
	set_events(c);
}

void
conn_count_bad(struct conn *c, const char *what)
{
	uint64_t max = gw.cfg->user.max_bad_msgs_per_min;

	gw.c.bad_msgs++;
	c->win.bad++;
	log_debug("user connection %llu: %s", (unsigned long long)c->id,
	    what);
	if (max != 0 && c->win.bad > max)
		conn_ws_close(c, 1008, "too many bad messages");
}

static void
on_ws_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct conn *c = arg;

	if (c->state == C_CLOSING)
		return;
	c->msgs_in++;
	user_message(c, msg, len);
}

static void
upgrade(struct conn *c)
{
	char key[WS_KEY_MAX + 1], resp[WS_RESPONSE_MAX];
	size_t used = 0;
	int r, n;

	r = ws_upgrade_parse(c->http, c->http_len, key, &used);
	if (r == HP_EAGAIN)
		return;
	if (r != 0) {
		static const char bad[] = "HTTP/1.1 400 Bad Request\r\n"
		    "Connection: close\r\nContent-Length: 0\r\n\r\n";
		ws_raw(&c->ws, bad, sizeof(bad) - 1, 1);
		gw.c.handshake_failures++;
		log_debug("user connection %llu: bad upgrade request: %s",
		    (unsigned long long)c->id, hp_strerror(r));
		return;
	}
	if ((n = ws_upgrade_response(key, resp, sizeof(resp))) < 0 ||
	    ws_raw(&c->ws, resp, (size_t)n, 0) != 0) {
		close_quiet(c, "cannot answer the upgrade");
		return;
	}
	c->ws_up = true;
	c->state = C_CHALLENGE;
	user_open(c);
	if (c->state != C_CLOSING && used < c->http_len)
		ws_feed(&c->ws, c->http + used, c->http_len - used);
	free(c->http);
	c->http = NULL;
	c->http_len = 0;
}

/* Plaintext from TLS. Returns -1 once the connection is closing. */
static int
feed(struct conn *c, const uint8_t *p, size_t n)
{
	uint64_t max = gw.cfg->user.max_bytes_per_min;

	c->bytes_in += n;
	gw.c.bytes_in += n;
	c->win.bytes += n;
	c->last_rx_ms = gw_now();
	if (max != 0 && c->win.bytes > max) {
		conn_close(c, "more than %llu bytes in a minute"
		    " (user.max_bytes_per_min)", (unsigned long long)max);
		return -1;
	}
	if (c->state == C_HTTP) {
		size_t take = n;
		uint8_t *h;

		if (c->http_len + take > WS_HTTP_MAX)
			take = WS_HTTP_MAX - c->http_len;
		if (take == 0) {
			close_quiet(c, "upgrade request too long");
			return -1;
		}
		if ((h = realloc(c->http, c->http_len + take)) == NULL) {
			close_quiet(c, "out of memory");
			return -1;
		}
		memcpy(h + c->http_len, p, take);
		c->http = h;
		c->http_len += take;
		upgrade(c);
		if (c->state == C_HTTP && c->http_len >= WS_HTTP_MAX)
			close_quiet(c, "upgrade request too long");
		/* Bytes past the request in this read go to ws below. */
		if (c->state == C_CLOSING || take == n || !c->ws_up)
			return c->state == C_CLOSING ? -1 : 0;
		p += take;
		n -= take;
	}
	if (ws_feed(&c->ws, p, n) != 0) {
		flush(c);
		close_quiet(c, "WebSocket protocol failure");
	}
	if (c->state != C_CLOSING)
		check_pressure(c);
	return c->state == C_CLOSING ? -1 : 0;
}

static void
read_all(struct conn *c)
{
	uint8_t buf[16384];
	int n;

	while (!c->paused && c->state != C_CLOSING && !ws_done(&c->ws)) {
		n = hp_tls_read(c->ssl, buf, sizeof(buf), &c->want_write);
		if (n > 0) {
			if (feed(c, buf, (size_t)n) != 0)
				return;
			continue;
		}
		if (n == HP_EEOF)
			close_quiet(c, "closed by the user");
		else if (n == HP_EIO)
			close_quiet(c, "connection lost");
		else if (n != HP_EAGAIN)
			close_quiet(c, "TLS error: %s", hp_tls_error());
		return;
	}
}

static void
pump(struct conn *c)
{
	const char *why;
	int r;

	c->want_write = false;
	if (c->state == C_TLS) {
		r = hp_tls_handshake(c->ssl, &c->want_write, &why);
		if (r == HP_EAGAIN) {
			set_events(c);
			return;
		}
		if (r != 0) {
			gw.c.handshake_failures++;
			close_quiet(c, "TLS handshake failed: %s", why);
			return;
		}
		c->state = C_HTTP;
		c->last_rx_ms = gw_now();
	}
	flush(c);
	if (c->state != C_CLOSING)
		read_all(c);
	if (c->state != C_CLOSING)
		flush(c);
	set_events(c);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;

	if (c->state == C_CLOSING)
		return;
	if (status < 0) {
		close_quiet(c, "poll: %s", uv_strerror(status));
		return;
	}
	pump(c);
}

static bool
allowed(const char *ip)
{
	const struct hp_config *cfg = gw.cfg;
	uint64_t max = cfg->user.max_in_connections_per_host, n = 0;

	if (gw.nconns >= gw.max_conns)
		return false;
	if (cfg->user.max_connections != 0 &&
	    gw.nconns >= cfg->user.max_connections)
		return false;
	if (max == 0)
		return true;
	for (struct conn *c = gw.conns; c != NULL; c = c->next)
		if (c->state != C_CLOSING && strcmp(c->ip, ip) == 0)
			n++;
	return n < max;
}

static void
start_conn(int fd, const struct sockaddr *sa)
{
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->id = ++gw.next_id;
	hp_addr_text(sa, c->ip, sizeof(c->ip), &c->rport);
	c->created_ms = c->last_rx_ms = c->win.start = gw_now();
	if (ws_init(&c->ws, gw.max_msg, on_ws_msg, c) != 0 ||
	    hp_tls_attach(gw.loop, gw.tls, fd, &c->ssl, &c->poll) != 0) {
		log_warnx("cannot set up a user connection from %s: %s",
		    c->ip, hp_tls_error());
		ws_free(&c->ws);
		SSL_free(c->ssl);
		close(fd);
		free(c);
		return;
	}
	SSL_set_accept_state(c->ssl);
	c->poll.data = c;
	c->state = C_TLS;
	c->next = gw.conns;
	gw.conns = c;
	gw.nconns++;
	gw.c.accepted++;
	c->events = UV_READABLE;
	uv_poll_start(&c->poll, UV_READABLE, on_poll);
}

static void
resume(uv_timer_t *t)
{
	if (gw.listen_fd >= 0 && !gw.listening &&
	    uv_poll_start(&gw.listen_poll, UV_READABLE, on_accept) == 0)
		gw.listening = true;
}

static void
pause_accept(uint64_t ms)
{
	if (!gw.listening)
		return;
	uv_poll_stop(&gw.listen_poll);
	gw.listening = false;
	if (ms != 0)
		uv_timer_start(&gw.resume, resume, ms, 0);
}

static void
on_accept(uv_poll_t *h, int status, int events)
{
	struct sockaddr_storage ss;
	char ip[INET6_ADDRSTRLEN];
	socklen_t len;
	uint16_t port;
	int fd;

	if (status < 0) {
		log_warnx("user listening socket: %s", uv_strerror(status));
		return;
	}
	for (;;) {
		if (gw.nconns >= gw.max_conns) {
			/* Resumes when a connection closes. */
			pause_accept(0);
			return;
		}
		len = sizeof(ss);
		if ((fd = hp_accept(gw.listen_fd, &ss, &len)) < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				log_warnx("accept on user.port: %s; pausing",
				    strerror(errno));
				pause_accept(500);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("accept on user.port");
			return;
		}
		hp_addr_text((struct sockaddr *)&ss, ip, sizeof(ip), &port);
		if (!allowed(ip)) {
			log_debug("refused a user connection from %s:%u", ip,
			    (unsigned)port);
			gw.c.refused++;
			close(fd);
			continue;
		}
		start_conn(fd, (struct sockaddr *)&ss);
	}
}

void
conn_listener(int fd)
{
	if (gw.listen_fd >= 0) {
		log_warnx("a second user listening socket; keeping the first");
		close(fd);
		return;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	gw.listen_fd = fd;
	if (uv_poll_init(gw.loop, &gw.listen_poll, fd) != 0 ||
	    uv_poll_start(&gw.listen_poll, UV_READABLE, on_accept) != 0) {
		log_warnx("cannot watch the user listening socket");
		return;
	}
	gw.listening = true;
	log_info("accepting users on port %u", (unsigned)gw.cfg->user.port);
}

struct conn *
conn_find(uint64_t id)
{
	for (struct conn *c = gw.conns; c != NULL; c = c->next)
		if (c->id == id && c->state != C_CLOSING)
			return c;
	return NULL;
}

struct conn *
conn_find_user(const uint8_t pk[HP_PK_BYTES])
{
	for (struct conn *c = gw.conns; c != NULL; c = c->next)
		if (c->state != C_CLOSING && c->has_pk &&
		    memcmp(c->pk, pk, HP_PK_BYTES) == 0)
			return c;
	return NULL;
}

size_t
conn_count_users(void)
{
	size_t n = 0;

	for (struct conn *c = gw.conns; c != NULL; c = c->next)
		if (c->state != C_CLOSING && c->has_pk)
			n++;
	return n;
}

void
conn_shutdown(void)
{
	gw.stopping = true;
	for (struct conn *c = gw.conns; c != NULL; c = c->next)
		close_quiet(c, "gateway shutting down");
	uv_timer_stop(&gw.tick);
	uv_timer_stop(&gw.resume);
	if (gw.listening)
		uv_poll_stop(&gw.listen_poll);
	gw.listening = false;
}
