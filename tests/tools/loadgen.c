/*
 * loadgen.c — a load generator for hpd's user port (bench/inputs.py). It
 * speaks the real user protocol the way hotpocket-js-client does in JSON
 * mode: N connections, each with its own ed25519 user key, spread over the
 * given nodes' user ports; TLS (the node's self-signed certificate is
 * accepted), the WebSocket upgrade, the user handshake, then
 * contract_input messages whose containers were all built, signed and
 * framed before the timed phase, so that signing costs nothing while the
 * nodes are measured.
 *
 * Closed loop by default: each connection keeps at most --window inputs
 * outstanding (sent, and neither rejected nor echoed back in a
 * contract_output). With --rate R the inputs leave at R per second in all,
 * still capped by the window. It counts contract_input_status accepted and
 * rejected (by reason) and times each input from its send to the
 * contract_output whose outputs hold "echo:<input>" (the echo contract,
 * tests/interop/client/echo-contract.js) and to its accepted status.
 *
 * Prints a human summary and one "RESULT {json}" line on stdout. Exit 0
 * when the run happened, 1 with a message on stderr otherwise, 2 on bad
 * usage. `loadgen --verify-rate` only measures ed25519 verifies per second
 * on this machine, the ceiling for a node that checks every signature.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "hash.h"

#define MAX_PORTS	16
#define SETUP_WAIT_MS	10000	/* each handshake step */
#define FLUSH_CHUNK	(64 * 1024)	/* bytes coalesced per SSL_write */
#define LCL_EVERY_NS	500000000ull	/* lcl refresh during the run */
#define REASONS		10

/* IN_LOST: accepted, but no output within --output-wait; given up. */
enum in_state {
	IN_UNSENT, IN_SENT, IN_ACCEPTED, IN_DONE, IN_REJECTED, IN_LOST
};

/* One pre-signed input: its ready-to-send masked frame and its timings. */
struct input {
	uint8_t *frame;
	uint32_t len;
	uint8_t state;
	uint8_t got_output;
	uint64_t key;		/* first 8 bytes of BLAKE3(sig) */
	uint64_t t_send, t_status, t_output;
};

struct conn {
	int idx, fd, port;
	SSL *ssl;
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	struct input *in;
	uint32_t n_in, next, outstanding;
	uint32_t oldest;	/* inputs before it are all settled */
	uint8_t *rbuf;
	size_t rlen, rcap;
	uint8_t out[FLUSH_CHUNK];
	size_t olen, ooff;
	bool want_write, dead;
};

struct opts {
	const char *host;
	int ports[MAX_PORTS], n_ports;
	int conns;
	double duration, warmup, drain, output_wait;
	double rate;
	uint32_t window;
	uint64_t inputs;
	uint32_t size;
	uint64_t ledger_offset;
};

static struct opts o = {
	.host = "127.0.0.1", .conns = 8, .duration = 10, .warmup = 2,
	.drain = 10, .output_wait = 5, .window = 16, .inputs = 100000, .size = 16,
	.ledger_offset = 10,
};

static struct conn *conns;
static uint64_t lcl, lcl_first, lcl_last, max_ledger;
static uint64_t *idx_keys;	/* open addressing: key -> input */
static uint32_t *idx_vals;
static uint64_t idx_mask;
static const char *reason_names[REASONS];
static uint64_t reason_counts[REASONS];
static uint64_t n_other_reason, n_unknown_status, n_outputs_msgs, n_closed;
static uint64_t t_start, t_warm, t_end;
static uint64_t n_accepted_window, n_lost;

static noreturn void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen --ports P[,P...] [--host 127.0.0.1] [--conns N]\n"
	    "               [--duration S] [--warmup S] [--drain S]\n"
	    "               [--window W] [--rate R] [--inputs N] [--size B]\n"
	    "               [--ledger-offset K] [--output-wait S]\n"
	    "       loadgen --verify-rate [--duration S]\n");
	exit(2);
}

static noreturn void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "loadgen: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* ---- ed25519 verify rate ---- */

static int
verify_rate(double seconds)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	uint8_t msg[128], sig[crypto_sign_BYTES];
	uint64_t t0, t, n = 0;

	crypto_sign_keypair(pk, sk);
	randombytes_buf(msg, sizeof(msg));
	crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk);
	t0 = now_ns();
	do {
		for (int i = 0; i < 100; i++)
			if (crypto_sign_verify_detached(sig, msg, sizeof(msg),
			    pk) != 0)
				die("verify failed");
		n += 100;
		t = now_ns();
	} while (t - t0 < (uint64_t)(seconds * 1e9));
	printf("RESULT {\"verify_per_s\": %.0f}\n", n / ((t - t0) / 1e9));
	return 0;
}

/* ---- WebSocket frames ---- */

/* A masked binary frame around payload; caller frees. */
static uint8_t *
ws_frame(const void *payload, size_t n, uint32_t *outlen)
{
	uint8_t *f = xmalloc(n + 14), mask[4];
	const uint8_t *p = payload;
	size_t h = 0;

	f[h++] = 0x82;
	if (n < 126) {
		f[h++] = 0x80 | (uint8_t)n;
	} else if (n < 65536) {
		f[h++] = 0x80 | 126;
		f[h++] = (uint8_t)(n >> 8);
		f[h++] = (uint8_t)n;
	} else {
		f[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			f[h++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	randombytes_buf(mask, 4);
	memcpy(f + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < n; i++)
		f[h + i] = p[i] ^ mask[i & 3];
	*outlen = (uint32_t)(h + n);
	return f;
}

/*
 * The next complete server message in b: its payload and opcode,
 * and how many bytes it took. 0 when more bytes are needed.
 */
static size_t
ws_parse(const uint8_t *b, size_t len, const uint8_t **payload, size_t *plen,
    int *op)
{
	size_t h = 2;
	uint64_t n;

	if (len < 2)
		return 0;
	if (b[1] & 0x80)
		die("the node sent a masked frame");
	*op = b[0] & 0x0f;
	n = b[1] & 0x7f;
	if (n == 126) {
		if (len < 4)
			return 0;
		n = (uint64_t)b[2] << 8 | b[3];
		h = 4;
	} else if (n == 127) {
		if (len < 10)
			return 0;
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | b[2 + i];
		h = 10;
	}
	if (len - h < n)
		return 0;
	*payload = b + h;
	*plen = n;
	return h + n;
}

static void
rbuf_reserve(struct conn *c, size_t more)
{
	if (c->rlen + more <= c->rcap)
		return;
	while (c->rlen + more > c->rcap)
		c->rcap = c->rcap ? c->rcap * 2 : 65536;
	c->rbuf = realloc(c->rbuf, c->rcap);
	if (c->rbuf == NULL)
		die("out of memory");
}

/* ---- setup: blocking TLS, upgrade and handshake ---- */

static void
ssl_write_all(struct conn *c, const void *buf, size_t n)
{
	if (SSL_write(c->ssl, buf, (int)n) != (int)n)
		die("conn %d (port %d): TLS write failed", c->idx, c->port);
}

static void
send_text(struct conn *c, const char *text)
{
	uint32_t len;
	uint8_t *f = ws_frame(text, strlen(text), &len);

	ssl_write_all(c, f, len);
	free(f);
}

/* The next data message as parsed JSON; caller decrefs. */
static json_t *
recv_json(struct conn *c)
{
	for (;;) {
		const uint8_t *p;
		size_t plen, used;
		int op, r;

		used = ws_parse(c->rbuf, c->rlen, &p, &plen, &op);
		if (used > 0) {
			json_t *j = NULL;

			if (op == 8)
				die("conn %d (port %d): closed by the node "
				    "during setup", c->idx, c->port);
			if (op == 1 || op == 2) {
				j = json_loadb((const char *)p, plen, 0, NULL);
				if (j == NULL)
					die("conn %d: bad JSON from the node",
					    c->idx);
			}
			memmove(c->rbuf, c->rbuf + used, c->rlen - used);
			c->rlen -= used;
			if (j != NULL)
				return j;
			continue;
		}
		rbuf_reserve(c, 16384);
		r = SSL_read(c->ssl, c->rbuf + c->rlen, 16384);
		if (r <= 0)
			die("conn %d (port %d): connection lost during setup",
			    c->idx, c->port);
		c->rlen += (size_t)r;
	}
}

static const char *
jstr(json_t *j, const char *k)
{
	const char *s = json_string_value(json_object_get(j, k));

	return s ? s : "";
}

static void
upgrade(struct conn *c)
{
	char req[512], *end;
	uint8_t key[16];
	char k64[32];
	int r;

	randombytes_buf(key, sizeof(key));
	sodium_bin2base64(k64, sizeof(k64), key, sizeof(key),
	    sodium_base64_VARIANT_ORIGINAL);
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s:%d\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    o.host, c->port, k64);
	ssl_write_all(c, req, strlen(req));
	for (;;) {
		rbuf_reserve(c, 4096);
		r = SSL_read(c->ssl, c->rbuf + c->rlen, 4095);
		if (r <= 0)
			die("conn %d (port %d): no upgrade answer", c->idx,
			    c->port);
		c->rlen += (size_t)r;
		c->rbuf[c->rlen] = 0;
		end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
		if (end != NULL)
			break;
	}
	if (strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) != 0)
		die("conn %d (port %d): upgrade refused: %.40s", c->idx,
		    c->port, (char *)c->rbuf);
	end += 4;
	c->rlen -= (size_t)(end - (char *)c->rbuf);
	memmove(c->rbuf, end, c->rlen);
}

static void
handshake(struct conn *c)
{
	uint8_t sig[crypto_sign_BYTES], sc[16];
	char sighex[2 * crypto_sign_BYTES + 1], pkhex[2 * 32 + 1];
	char schex[33], msg[512];
	const char *ch;
	json_t *j;

	j = recv_json(c);
	if (strcmp(jstr(j, "type"), "user_challenge") != 0)
		die("conn %d: expected user_challenge, got %s", c->idx,
		    jstr(j, "type"));
	ch = jstr(j, "challenge");
	crypto_sign_detached(sig, NULL, (const uint8_t *)ch, strlen(ch),
	    c->sk);
	sodium_bin2hex(sighex, sizeof(sighex), sig, sizeof(sig));
	sodium_bin2hex(pkhex, sizeof(pkhex), c->pk, 32);
	randombytes_buf(sc, sizeof(sc));
	sodium_bin2hex(schex, sizeof(schex), sc, sizeof(sc));
	json_decref(j);
	snprintf(msg, sizeof(msg), "{\"type\":\"user_challenge_response\","
	    "\"sig\":\"%s\",\"pubkey\":\"ed%s\",\"server_challenge\":\"%s\","
	    "\"protocol\":\"json\"}", sighex, pkhex, schex);
	send_text(c, msg);
	j = recv_json(c);
	if (strcmp(jstr(j, "type"), "server_challenge_response") != 0)
		die("conn %d: expected server_challenge_response, got %s",
		    c->idx, jstr(j, "type"));
	json_decref(j);
}

static uint64_t
ask_lcl(struct conn *c)
{
	uint64_t seq;
	json_t *j;

	send_text(c, "{\"type\":\"lcl\"}");
	for (;;) {
		j = recv_json(c);
		if (strcmp(jstr(j, "type"), "lcl_response") == 0)
			break;
		json_decref(j);
	}
	seq = (uint64_t)json_integer_value(json_object_get(j,
	    "ledger_seq_no"));
	json_decref(j);
	return seq;
}

static void
conn_open(struct conn *c, SSL_CTX *ctx)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { SETUP_WAIT_MS / 1000, 0 };
	int one = 1;

	crypto_sign_keypair(c->pk, c->sk);
	sa.sin_port = htons((uint16_t)c->port);
	if (inet_pton(AF_INET, o.host, &sa.sin_addr) != 1)
		die("--host %s: not an IPv4 address", o.host);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa,
	    sizeof(sa)) != 0)
		die("conn %d: connect to %s:%d: %s", c->idx, o.host, c->port,
		    strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c->ssl = SSL_new(ctx);
	SSL_set_fd(c->ssl, c->fd);
	if (SSL_connect(c->ssl) != 1)
		die("conn %d (port %d): TLS handshake failed", c->idx,
		    c->port);
	upgrade(c);
	handshake(c);
}

/* ---- pre-signed inputs ---- */

static void
index_put(uint64_t key, uint32_t val)
{
	uint64_t i = key & idx_mask;

	while (idx_keys[i] != 0)
		i = (i + 1) & idx_mask;
	idx_keys[i] = key;
	idx_vals[i] = val;
}

static struct input *
index_get(uint64_t key)
{
	uint64_t i = key & idx_mask;

	while (idx_keys[i] != 0) {
		if (idx_keys[i] == key) {
			uint32_t v = idx_vals[i];

			return &conns[v >> 24].in[v & 0xffffff];
		}
		i = (i + 1) & idx_mask;
	}
	return NULL;
}

static uint64_t
key_of(const uint8_t *h)
{
	uint64_t k = 0;

	for (int i = 0; i < 8; i++)
		k = k << 8 | h[i];
	return k ? k : 1;
}

/*
 * The input text: "<conn>.<index>." padded with 'x' to --size, so that
 * its echo names the input it answers.
 */
static void
presign(struct conn *c, uint32_t n)
{
	char text[4096], cont[4600], msg[5200], sighex[129];
	uint8_t sig[crypto_sign_BYTES], h[HP_HASH_BYTES];
	int tl, cl, ml;

	c->in = calloc(n, sizeof(*c->in));
	if (c->in == NULL)
		die("out of memory");
	c->n_in = n;
	for (uint32_t i = 0; i < n; i++) {
		tl = snprintf(text, sizeof(text), "%d.%u.", c->idx, i);
		while ((uint32_t)tl < o.size && tl < (int)sizeof(text) - 1)
			text[tl++] = 'x';
		text[tl] = 0;
		cl = snprintf(cont, sizeof(cont), "{\"input\":\"%s\",\"nonce\":"
		    "%u,\"max_ledger_seq_no\":%llu}", text, i + 1,
		    (unsigned long long)max_ledger);
		crypto_sign_detached(sig, NULL, (uint8_t *)cont, (size_t)cl,
		    c->sk);
		sodium_bin2hex(sighex, sizeof(sighex), sig, sizeof(sig));
		hp_hash(sig, sizeof(sig), h);
		ml = snprintf(msg, sizeof(msg), "{\"type\":\"contract_input\","
		    "\"input_container\":\"{\\\"input\\\":\\\"%s\\\","
		    "\\\"nonce\\\":%u,\\\"max_ledger_seq_no\\\":%llu}\","
		    "\"sig\":\"%s\"}", text, i + 1,
		    (unsigned long long)max_ledger, sighex);
		c->in[i].frame = ws_frame(msg, (size_t)ml, &c->in[i].len);
		c->in[i].key = key_of(h);
		index_put(c->in[i].key, (uint32_t)c->idx << 24 | i);
	}
}

/* ---- the timed phase ---- */

static void
conn_dead(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	n_closed++;
	fprintf(stderr, "loadgen: conn %d (port %d): %s\n", c->idx, c->port,
	    why);
}

static void
count_reason(const char *r)
{
	for (int i = 0; i < REASONS; i++) {
		if (reason_names[i] == NULL)
			reason_names[i] = strdup(r);
		if (strcmp(reason_names[i], r) == 0) {
			reason_counts[i]++;
			return;
		}
	}
	n_other_reason++;
}

static void
settle(struct conn *c, struct input *in)
{
	if (in->state == IN_SENT || in->state == IN_ACCEPTED)
		c->outstanding--;
}

static void
on_status(struct conn *c, json_t *j, uint64_t t)
{
	const char *hex = jstr(j, "input_hash");
	uint8_t h[8];
	struct input *in;

	if (strlen(hex) != 64 || sodium_hex2bin(h, sizeof(h), hex, 16, NULL,
	    NULL, NULL) != 0 || (in = index_get(key_of(h))) == NULL) {
		n_unknown_status++;
		return;
	}
	if (strcmp(jstr(j, "status"), "accepted") == 0) {
		if (in->t_status != 0 || (in->state != IN_SENT &&
		    in->state != IN_LOST))
			return;
		in->t_status = t;
		if (t >= t_warm && t < t_end)
			n_accepted_window++;
		if (in->state == IN_LOST)
			return;
		in->state = in->got_output ? IN_DONE : IN_ACCEPTED;
		if (in->got_output)
			settle(c, in);
		return;
	}
	count_reason(jstr(j, "reason"));
	if (in->state == IN_SENT || in->state == IN_ACCEPTED) {
		settle(c, in);
		in->state = IN_REJECTED;
	}
}

static void
on_output(struct conn *c, json_t *j, uint64_t t)
{
	json_t *outs = json_object_get(j, "outputs"), *v;
	size_t k;

	n_outputs_msgs++;
	json_array_foreach(outs, k, v) {
		const char *s = json_string_value(v);
		unsigned ci, ii;
		struct input *in;

		/* "echo:" from the JS echo contract, "Echo: " from c-echo. */
		if (s == NULL || (sscanf(s, "echo:%u.%u.", &ci, &ii) != 2 &&
		    sscanf(s, "Echo: %u.%u.", &ci, &ii) != 2) ||
		    (int)ci != c->idx || ii >= c->n_in)
			continue;
		in = &c->in[ii];
		if (in->got_output)
			continue;
		in->got_output = 1;
		in->t_output = t;
		if (in->state == IN_ACCEPTED) {
			settle(c, in);
			in->state = IN_DONE;
		}
	}
}

static void
on_message(struct conn *c, const uint8_t *p, size_t n, uint64_t t)
{
	json_t *j = json_loadb((const char *)p, n, 0, NULL);
	const char *type;

	if (j == NULL)
		die("conn %d: bad JSON from the node: %.80s", c->idx,
		    (const char *)p);
	type = jstr(j, "type");
	if (strcmp(type, "contract_input_status") == 0)
		on_status(c, j, t);
	else if (strcmp(type, "contract_output") == 0)
		on_output(c, j, t);
	else if (strcmp(type, "lcl_response") == 0) {
		lcl = (uint64_t)json_integer_value(json_object_get(j,
		    "ledger_seq_no"));
		if (lcl_first == 0 && t >= t_warm)
			lcl_first = lcl;
		if (t < t_end)
			lcl_last = lcl;
	}
	json_decref(j);
}

static void
conn_read(struct conn *c)
{
	uint64_t t = now_ns();

	for (;;) {
		int r, op;
		size_t used, plen, off = 0;
		const uint8_t *p;

		rbuf_reserve(c, 65536);
		r = SSL_read(c->ssl, c->rbuf + c->rlen, 65536);
		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return;
			conn_dead(c, "connection closed by the node");
			return;
		}
		c->rlen += (size_t)r;
		for (;;) {
			used = ws_parse(c->rbuf + off, c->rlen - off, &p, &plen,
			    &op);
			if (used == 0)
				break;
			off += used;
			if (op == 8) {
				conn_dead(c, "close frame from the node");
				return;
			}
			if (op == 1 || op == 2)
				on_message(c, p, plen, t);
		}
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
}

static void
conn_flush(struct conn *c, int ep)
{
	while (c->ooff < c->olen) {
		int r = SSL_write(c->ssl, c->out + c->ooff,
		    (int)(c->olen - c->ooff));

		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);

			if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
				if (!c->want_write) {
					struct epoll_event ev = {
						.events = EPOLLIN | EPOLLOUT,
						.data.ptr = c };

					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
					c->want_write = true;
				}
				return;
			}
			conn_dead(c, "TLS write failed");
			return;
		}
		c->ooff += (size_t)r;
	}
	c->ooff = c->olen = 0;
	if (c->want_write) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->want_write = false;
	}
}

/*
 * Give up on inputs whose output is overdue (--output-wait after the
 * accepted status, or after the send when no status came), so that a
 * ledger whose outputs never reach the user does not stall the window.
 */
static void
expire(struct conn *c, uint64_t t)
{
	uint64_t wait = (uint64_t)(o.output_wait * 1e9);

	for (uint32_t k = c->oldest; k < c->next; k++) {
		struct input *in = &c->in[k];

		if (in->state == IN_SENT && t - in->t_send > 4 * wait) {
			settle(c, in);
			in->state = IN_LOST;
			n_lost++;
		} else if (in->state == IN_ACCEPTED && t - in->t_status > wait) {
			settle(c, in);
			in->state = IN_LOST;
			n_lost++;
		}
		if (k == c->oldest && in->state != IN_SENT &&
		    in->state != IN_ACCEPTED)
			c->oldest++;
	}
}

/* Queue the connection's next input into its out buffer. */
static bool
queue_one(struct conn *c, uint64_t t)
{
	struct input *in;

	if (c->dead || c->next >= c->n_in || c->outstanding >= o.window)
		return false;
	in = &c->in[c->next];
	if (c->olen + in->len > sizeof(c->out))
		return false;
	memcpy(c->out + c->olen, in->frame, in->len);
	c->olen += in->len;
	in->state = IN_SENT;
	in->t_send = t;
	c->next++;
	c->outstanding++;
	return true;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct_ms(uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return -1;
	return v[(size_t)(p * (double)(n - 1))] / 1e6;
}

static void
run(void)
{
	int ep = epoll_create1(0);
	uint64_t t0, t, sent_total = 0, last_lcl_ask = 0, t_stop, last_exp = 0;
	uint32_t rr = 0;
	struct epoll_event evs[256];

	for (int i = 0; i < o.conns; i++) {
		struct epoll_event ev = { .events = EPOLLIN,
			.data.ptr = &conns[i] };
		struct timeval tv = { 0, 0 };

		setsockopt(conns[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		fcntl(conns[i].fd, F_SETFL, fcntl(conns[i].fd, F_GETFL) |
		    O_NONBLOCK);
		epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
	}
	t0 = t_start = now_ns();
	t_warm = t0 + (uint64_t)(o.warmup * 1e9);
	t_end = t_warm + (uint64_t)(o.duration * 1e9);
	t_stop = t_end + (uint64_t)(o.drain * 1e9);
	for (;;) {
		uint64_t budget = UINT64_MAX, outstanding = 0;
		int n;

		t = now_ns();
		if (t >= t_stop)
			break;
		if (t - last_lcl_ask >= LCL_EVERY_NS && !conns[0].dead &&
		    conns[0].olen + 16 < sizeof(conns[0].out)) {
			uint32_t len;
			uint8_t *f = ws_frame("{\"type\":\"lcl\"}", 14, &len);

			memcpy(conns[0].out + conns[0].olen, f, len);
			conns[0].olen += len;
			free(f);
			last_lcl_ask = t;
		}
		if (t - last_exp >= 100000000ull) {
			for (int i = 0; i < o.conns; i++)
				expire(&conns[i], t);
			last_exp = t;
		}
		if (t < t_end) {
			if (o.rate > 0) {
				double due = o.rate * (double)(t - t0) / 1e9;

				budget = due > (double)sent_total ?
				    (uint64_t)(due - (double)sent_total) : 0;
			}
			/* One input per connection in turn, so that the
			 * rate is spread over every user. */
			for (bool any = true; any && budget > 0;) {
				any = false;
				for (int k = 0; k < o.conns && budget > 0; k++) {
					struct conn *c = &conns[(rr + k) %
					    o.conns];

					if (queue_one(c, t)) {
						any = true;
						sent_total++;
						budget--;
					}
				}
				rr++;
			}
		}
		for (int i = 0; i < o.conns; i++) {
			if (conns[i].olen > conns[i].ooff && !conns[i].want_write)
				conn_flush(&conns[i], ep);
			if (!conns[i].dead)
				outstanding += conns[i].outstanding;
		}
		if (t >= t_end && outstanding == 0)
			break;
		n = epoll_wait(ep, evs, 256, 1);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c->dead)
				continue;
			if (evs[i].events & EPOLLOUT)
				conn_flush(c, ep);
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				conn_read(c);
		}
	}
	close(ep);
}

static void
report(void)
{
	uint64_t *lat_out, *lat_acc, n_out = 0, n_acc = 0, sent = 0,
	    sent_window = 0, missing_out = 0, accepted = 0, unsent = 0,
	    rejected = 0, no_output = 0, users_short = 0;
	size_t cap = 0;
	double dur = o.duration;
	uint64_t ledgers = lcl_last > lcl_first ? lcl_last - lcl_first : 0;

	for (int i = 0; i < o.conns; i++)
		cap += conns[i].n_in;
	lat_out = xmalloc((cap + 1) * sizeof(uint64_t));
	lat_acc = xmalloc((cap + 1) * sizeof(uint64_t));
	for (int i = 0; i < o.conns; i++) {
		struct conn *c = &conns[i];

		unsent += c->n_in - c->next;
		for (uint32_t k = 0; k < c->next; k++) {
			struct input *in = &c->in[k];

			sent++;
			if (in->state == IN_ACCEPTED || in->state == IN_DONE ||
			    (in->state == IN_LOST && in->t_status != 0))
				accepted++;
			if (in->state == IN_REJECTED)
				rejected++;
			if (in->t_send < t_warm || in->t_send >= t_end)
				continue;
			sent_window++;
			if (in->got_output)
				lat_out[n_out++] = in->t_output - in->t_send;
			else if (in->state != IN_REJECTED)
				missing_out++;
			if (in->t_status != 0)
				lat_acc[n_acc++] = in->t_status - in->t_send;
		}
	}
	qsort(lat_out, n_out, sizeof(uint64_t), cmp_u64);
	qsort(lat_acc, n_acc, sizeof(uint64_t), cmp_u64);
	/* Which users went without outputs, and from where on: a whole
	 * window missing points at one ledger's outputs, not at load. */
	for (int i = 0; i < o.conns; i++) {
		struct conn *c = &conns[i];
		uint32_t miss = 0, first = 0;

		for (uint32_t k = 0; k < c->next; k++)
			if (!c->in[k].got_output &&
			    c->in[k].state != IN_REJECTED && miss++ == 0)
				first = k;
		no_output += miss;
		users_short += miss > 0;
		if (miss > 0)
			fprintf(stderr, "loadgen: user %d (key ed%02x%02x%02x.., "
			    "port %d): %u of %u inputs without output, from "
			    "input %u (%s, sent %.3fs into the run)\n", i,
			    c->pk[0], c->pk[1], c->pk[2], c->port, miss, c->next,
			    first, c->in[first].t_status ? "accepted" :
			    "no status", (double)(c->in[first].t_send -
			    t_start) / 1e9);
	}
	printf("conns %d  window %u  rate %s  duration %.1fs (+%.1fs warmup)\n",
	    o.conns, o.window, o.rate > 0 ? "open" : "closed", o.duration,
	    o.warmup);
	printf("sent %llu (in window %llu), accepted %llu, rejected %llu, "
	    "unsent %llu, connections lost %llu\n",
	    (unsigned long long)sent, (unsigned long long)sent_window,
	    (unsigned long long)accepted, (unsigned long long)rejected,
	    (unsigned long long)unsent, (unsigned long long)n_closed);
	for (int i = 0; i < REASONS && reason_names[i]; i++)
		printf("  rejected %s: %llu\n", reason_names[i],
		    (unsigned long long)reason_counts[i]);
	printf("committed %.1f inputs/s; ledgers in window %llu (%.1f inputs "
	    "per ledger)\n", n_accepted_window / dur,
	    (unsigned long long)ledgers,
	    ledgers ? (double)n_accepted_window / (double)ledgers : 0.0);
	printf("input->output ms p50 %.1f p99 %.1f max %.1f (%llu samples, "
	    "%llu without output; %llu given up after %.0fs)\n", pct_ms(lat_out, n_out, 0.5),
	    pct_ms(lat_out, n_out, 0.99), pct_ms(lat_out, n_out, 1.0),
	    (unsigned long long)n_out, (unsigned long long)missing_out,
	    (unsigned long long)n_lost, o.output_wait);
	printf("input->accepted ms p50 %.1f p99 %.1f\n",
	    pct_ms(lat_acc, n_acc, 0.5), pct_ms(lat_acc, n_acc, 0.99));
	printf("RESULT {\"inputs_per_s\": %.1f, \"p50_ms\": %.1f, "
	    "\"p99_ms\": %.1f, \"acc_p50_ms\": %.1f, \"acc_p99_ms\": %.1f, "
	    "\"sent\": %llu, \"accepted\": %llu, \"rejected\": %llu, "
	    "\"missing_outputs\": %llu, \"unsent\": %llu, \"ledgers\": %llu, "
	    "\"closed\": %llu, \"no_output_all\": %llu, "
	    "\"users_without_some_output\": %llu, \"reasons\": {",
	    n_accepted_window / dur, pct_ms(lat_out, n_out, 0.5),
	    pct_ms(lat_out, n_out, 0.99), pct_ms(lat_acc, n_acc, 0.5),
	    pct_ms(lat_acc, n_acc, 0.99), (unsigned long long)sent,
	    (unsigned long long)accepted, (unsigned long long)rejected,
	    (unsigned long long)missing_out, (unsigned long long)unsent,
	    (unsigned long long)ledgers, (unsigned long long)n_closed,
	    (unsigned long long)no_output, (unsigned long long)users_short);
	for (int i = 0; i < REASONS && reason_names[i]; i++)
		printf("%s\"%s\": %llu", i ? ", " : "", reason_names[i],
		    (unsigned long long)reason_counts[i]);
	printf("}}\n");
	free(lat_out);
	free(lat_acc);
}

static void
parse_ports(const char *s)
{
	char *copy = strdup(s), *tok, *save = NULL;

	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (o.n_ports == MAX_PORTS)
			usage();
		o.ports[o.n_ports] = atoi(tok);
		if (o.ports[o.n_ports] <= 0 || o.ports[o.n_ports] > 65535)
			usage();
		o.n_ports++;
	}
	free(copy);
}

int
main(int argc, char **argv)
{
	bool verify = false;
	uint64_t per_conn, t_sign;
	SSL_CTX *ctx;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--verify-rate") == 0) {
			verify = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--ports") == 0)
			parse_ports(v);
		else if (strcmp(a, "--host") == 0)
			o.host = v;
		else if (strcmp(a, "--conns") == 0)
			o.conns = atoi(v);
		else if (strcmp(a, "--duration") == 0)
			o.duration = atof(v);
		else if (strcmp(a, "--warmup") == 0)
			o.warmup = atof(v);
		else if (strcmp(a, "--drain") == 0)
			o.drain = atof(v);
		else if (strcmp(a, "--rate") == 0)
			o.rate = atof(v);
		else if (strcmp(a, "--output-wait") == 0)
			o.output_wait = atof(v);
		else if (strcmp(a, "--window") == 0)
			o.window = (uint32_t)atoi(v);
		else if (strcmp(a, "--inputs") == 0)
			o.inputs = strtoull(v, NULL, 10);
		else if (strcmp(a, "--size") == 0)
			o.size = (uint32_t)atoi(v);
		else if (strcmp(a, "--ledger-offset") == 0)
			o.ledger_offset = strtoull(v, NULL, 10);
		else
			usage();
	}
	if (sodium_init() < 0)
		die("libsodium did not initialise");
	if (verify)
		return verify_rate(o.duration > 0 ? o.duration : 1);
	if (o.n_ports == 0 || o.conns <= 0 || o.conns > 255 ||
	    o.window == 0 || o.duration <= 0 || o.size > 3000)
		usage();
	per_conn = (o.inputs + (uint64_t)o.conns - 1) / (uint64_t)o.conns;
	if (per_conn == 0 || per_conn > 0xffffff)
		usage();
	signal(SIGPIPE, SIG_IGN);
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		die("no TLS context");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	conns = calloc((size_t)o.conns, sizeof(*conns));
	if (conns == NULL)
		die("out of memory");
	for (int i = 0; i < o.conns; i++) {
		conns[i].idx = i;
		conns[i].port = o.ports[i % o.n_ports];
		conn_open(&conns[i], ctx);
	}
	for (idx_mask = 1; idx_mask < 2 * per_conn * (uint64_t)o.conns;)
		idx_mask <<= 1;
	idx_keys = calloc(idx_mask, sizeof(*idx_keys));
	idx_vals = calloc(idx_mask, sizeof(*idx_vals));
	if (idx_keys == NULL || idx_vals == NULL)
		die("out of memory");
	idx_mask--;
	lcl = ask_lcl(&conns[0]);
	max_ledger = lcl + o.ledger_offset;
	t_sign = now_ns();
	for (int i = 0; i < o.conns; i++)
		presign(&conns[i], (uint32_t)per_conn);
	fprintf(stderr, "loadgen: %d connections ready, %llu inputs signed in "
	    "%.1fs, lcl %llu, max_ledger_seq_no %llu\n", o.conns,
	    (unsigned long long)(per_conn * (uint64_t)o.conns),
	    (now_ns() - t_sign) / 1e9, (unsigned long long)lcl,
	    (unsigned long long)max_ledger);
	run();
	if (lcl_last + 2 >= max_ledger)
		fprintf(stderr, "loadgen: the lcl %llu came near the inputs' "
		    "max_ledger_seq_no %llu: raise --ledger-offset\n",
		    (unsigned long long)lcl_last,
		    (unsigned long long)max_ledger);
	report();
	return 0;
}
