/*
 * peerprobe.c — a misbehaving peer for the integration tests
 * (tests/integration/test_peer_abuse.py). It takes the identity of a node
 * whose hp.cfg it is given (that node must not be running), makes its own
 * TLS identity with the peer worker's tlsid.c and signs it with the node
 * key exactly as the consensus worker does, connects to one node's mesh
 * port over TLS 1.3, exchanges valid HELLOs, then sends what one case
 * asks for (see usage()) and lingers a moment to see whether the node
 * closes the session.
 *
 * It prints one line on stdout: what it sent and whether the session was
 * closed by the peer. Exit 0 when everything was sent, 1 with a message
 * on stderr otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "err.h"
#include "hash.h"
#include "keys.h"
#include "proposal.h"
#include "proto.h"
#include "tlsid.h"
#include "wire.h"

#define HELLO_WAIT_MS	5000
#define REPLAY_GAP_MS	300
#define STALE_ROUNDS	20
#define GARBAGE_BYTES	4096
#define OVERSIZED_TAIL	1024

struct probe {
	struct hp_config cfg;
	const char *cid;
	uint64_t roundtime;
	struct tlsid tls;
	int fd;
	SSL *ssl;
	bool need_fwd;		/* ask the peer to forward our proposals */
	bool closed;		/* the peer closed the session */
	char what[256];		/* what was sent, for the report line */
};

static noreturn void
usage(void)
{
	fprintf(stderr,
	    "usage: peerprobe --cfg HP_CFG --connect HOST:PORT --case CASE\n"
	    "                 [--contract ID] [--roundtime MS] [--linger MS]\n"
	    "                 [--need-forwarding]\n"
	    "The node key of HP_CFG is the prober's identity; --contract and\n"
	    "--roundtime default to that file's. --need-forwarding claims weak\n"
	    "connectivity in the HELLO, so that the peer forwards what we send.\n"
	    "Cases, each sent after a valid HELLO:\n"
	    "  valid      one correctly signed stage-0 proposal for the current\n"
	    "             round\n"
	    "  badsig     the same with its signature bytes flipped\n"
	    "  stale      correctly signed, for a round %d roundtimes ago\n"
	    "  replay     one valid proposal sent twice, %d ms apart (same bytes)\n"
	    "  reencoded  one valid proposal, then the same proposal encoded\n"
	    "             differently (same hash, other bytes), %d ms apart\n"
	    "  oversized  a PROPOSAL header announcing one byte over its limit,\n"
	    "             then %d bytes\n"
	    "  garbage    %d random bytes inside TLS; the first is never 0, so\n"
	    "             read as a frame header they announce at least 16 MiB\n"
	    "  tlsgarbage %d random bytes on the TCP socket under TLS\n",
	    STALE_ROUNDS, REPLAY_GAP_MS, REPLAY_GAP_MS, OVERSIZED_TAIL,
	    GARBAGE_BYTES, GARBAGE_BYTES);
	exit(2);
}

static noreturn void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static noreturn void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("peerprobe: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
report_cfg(enum hp_config_diag sev, const char *msg, void *arg)
{
	fprintf(stderr, "peerprobe: %s: %s\n",
	    sev == HP_CONFIG_ERROR ? "error" : "warning", msg);
}

static void
dial(struct probe *pr, const char *hostport)
{
	struct addrinfo hints, *res, *ai;
	struct wire_addr a;
	char port[8];
	struct timeval tv = { .tv_sec = 5 };
	int rc;

	if (wire_addr_parse(hostport, strlen(hostport), &a, false) != 0)
		die("--connect %s: HOST:PORT expected", hostport);
	snprintf(port, sizeof(port), "%u", (unsigned)a.port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(a.host, port, &hints, &res)) != 0)
		die("--connect %s: %s", hostport, gai_strerror(rc));
	pr->fd = -1;
	for (ai = res; ai != NULL && pr->fd < 0; ai = ai->ai_next) {
		pr->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (pr->fd < 0)
			continue;
		setsockopt(pr->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(pr->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			close(pr->fd);
			pr->fd = -1;
		}
	}
	freeaddrinfo(res);
	if (pr->fd < 0)
		die("cannot connect to %s: %s", hostport, strerror(errno));
	setsockopt(pr->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if ((pr->ssl = SSL_new(pr->tls.ctx)) == NULL ||
	    SSL_set_fd(pr->ssl, pr->fd) != 1)
		die("cannot set up TLS: %s", tlsid_error());
	if (SSL_connect(pr->ssl) != 1)
		die("TLS handshake with %s failed: %s", hostport,
		    tlsid_error());
}

static void
send_bytes(struct probe *pr, const void *p, size_t len, const char *what)
{
	errno = 0;
	if (len > INT32_MAX || SSL_write(pr->ssl, p, (int)len) != (int)len)
		die("sending %s failed: %s", what, errno != 0 ?
		    strerror(errno) : tlsid_error());
}

static void
send_hello(struct probe *pr)
{
	struct wire_hello h;
	msgpack_sbuffer sb;
	uint8_t *bind;
	size_t len;

	memset(&h, 0, sizeof(h));
	snprintf(h.contract_id, sizeof(h.contract_id), "%s", pr->cid);
	h.version = WIRE_VERSION;
	h.need_forwarding = pr->need_fwd;
	memcpy(h.pk, pr->cfg.node.keys.pk, HP_PK_BYTES);
	if (tlsid_binding(pr->cid, pr->tls.spki, pr->tls.spki_len, &bind,
	    &len) != 0)
		die("out of memory");
	if (hp_sign(&pr->cfg.node.keys, bind, len, h.sig) != 0)
		die("cannot sign the TLS identity with node.private_key");
	free(bind);
	msgpack_sbuffer_init(&sb);
	wire_hello_encode(&sb, &h);
	send_bytes(pr, sb.data, sb.size, "HELLO");
	msgpack_sbuffer_destroy(&sb);
}

/*
 * Read for up to ms milliseconds. With rd, stop at the first HELLO and
 * check it (returns 1); otherwise discard what comes. Sets pr->closed when
 * the peer ends the session. Returns 0 when the time is up.
 */
static int
read_for(struct probe *pr, uint64_t ms, struct wire_reader *rd)
{
	uint64_t end = mono_ms() + ms;
	uint8_t buf[16384];
	struct wire_frame f;
	struct wire_hello h;
	struct pollfd pfd = { .fd = pr->fd, .events = POLLIN };
	int n, e, r;

	while (!pr->closed) {
		uint64_t now = mono_ms();

		if (now >= end)
			return 0;
		if (SSL_pending(pr->ssl) == 0 &&
		    poll(&pfd, 1, (int)(end - now)) <= 0)
			continue;
		ERR_clear_error();
		errno = 0;
		n = SSL_read(pr->ssl, buf, sizeof(buf));
		if (n <= 0) {
			e = SSL_get_error(pr->ssl, n);
			if (e == SSL_ERROR_WANT_READ)
				continue;
			pr->closed = true;
			break;
		}
		if (rd == NULL)
			continue;
		const uint8_t *p = buf;
		size_t left = (size_t)n;

		while ((r = wire_reader_next(rd, &p, &left, &f)) == 1) {
			if (f.type != WIRE_HELLO || f.skipped)
				continue;
			if (wire_hello_decode(f.payload, f.len, &h) != 0)
				die("the peer's HELLO does not decode");
			if (strcmp(h.contract_id, pr->cid) != 0)
				die("the peer serves contract %s, not %s",
				    h.contract_id, pr->cid);
			return 1;
		}
		if (r < 0)
			die("cannot read the peer's frames: %s",
			    hp_strerror(r));
	}
	return 0;
}

static void
wait_hello(struct probe *pr)
{
	struct wire_reader rd;

	wire_reader_init(&rd, 0);
	rd.hello_only = true;
	if (read_for(pr, HELLO_WAIT_MS, &rd) != 1)
		die(pr->closed ? "the peer closed the session before its HELLO"
		    " (was our HELLO refused? see its log)" :
		    "no HELLO from the peer within %d ms", HELLO_WAIT_MS);
	wire_reader_free(&rd);
}

/* A stage-0 proposal for the round that starts at `round`, signed. */
static void
make_proposal(struct probe *pr, uint64_t round, struct hp_proposal *p)
{
	uint8_t h[HP_HASH_BYTES];

	memset(p, 0, sizeof(*p));
	memcpy(p->pubkey, pr->cfg.node.keys.pk, HP_PK_BYTES);
	p->stage = 0;
	p->time = p->round = round;
	p->time_config = (uint32_t)(pr->roundtime * 100 +
	    pr->cfg.contract.consensus.stage_slice);
	randombytes_buf(p->node_nonce, sizeof(p->node_nonce));
	p->users.width = HP_PROPOSAL_USER_WIDTH;
	p->inputs.width = HP_PROPOSAL_INPUT_WIDTH;
	p->nonces.width = HP_PROPOSAL_NONCE_WIDTH;
	hp_proposal_hash(p, h);
	if (hp_sign(&pr->cfg.node.keys, h, sizeof(h), p->sig) != 0)
		die("cannot sign a proposal with node.private_key");
}

static uint64_t
current_round(const struct probe *pr)
{
	uint64_t rt = pr->roundtime, now = wall_ms();
	uint64_t offset = hp_stdhash(pr->cid, strlen(pr->cid)) % rt;

	return (now - offset) / rt * rt + offset;
}

static void
pack(const struct hp_proposal *p, msgpack_sbuffer *sb)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	hp_proposal_pack(&pk, p);
}

static void
send_frame(struct probe *pr, uint8_t type, const void *payload, size_t len,
    const char *what)
{
	uint8_t *b;

	if ((b = malloc(WIRE_HDR_LEN + len)) == NULL)
		die("out of memory");
	wire_hdr_encode(b, type, (uint32_t)len);
	memcpy(b + WIRE_HDR_LEN, payload, len);
	send_bytes(pr, b, WIRE_HDR_LEN + len, what);
	free(b);
}

/* One proposal, packed, in a PROPOSAL frame. */
static void
send_proposal(struct probe *pr, const struct hp_proposal *p, const char *what)
{
	msgpack_sbuffer sb;

	pack(p, &sb);
	send_frame(pr, HP_PT_PROPOSAL, sb.data, sb.size, what);
	msgpack_sbuffer_destroy(&sb);
}

/* Wait between two copies; the session must still be open for the second. */
static void
gap(struct probe *pr)
{
	read_for(pr, REPLAY_GAP_MS, NULL);
	if (pr->closed)
		die("the peer closed the session after the first copy");
}

/*
 * The stage field re-encoded from a positive fixint to uint8 (0xcc 0x00):
 * other bytes, so the peer worker's byte dedup lets it through, but the
 * same proposal and hash, so consensus must see it as a replay. Checked
 * here by decoding it again.
 */
static void
reencode(const struct hp_proposal *p, msgpack_sbuffer *sb)
{
	/* array16 (3) + bin8 header (2) + pubkey (32) → stage */
	const size_t at = 3 + 2 + HP_PK_BYTES;
	struct hp_proposal q;
	uint8_t h1[HP_HASH_BYTES], h2[HP_HASH_BYTES];
	msgpack_sbuffer canon;
	int rc;

	pack(p, &canon);
	if (canon.size <= at || (uint8_t)canon.data[0] != 0xdc ||
	    (uint8_t)canon.data[3] != 0xc4 || (uint8_t)canon.data[4] != 32 ||
	    canon.data[at] != 0)
		die("hp_proposal_pack's layout changed; cannot re-encode the"
		    " stage field");
	msgpack_sbuffer_init(sb);
	msgpack_sbuffer_write(sb, canon.data, at);
	msgpack_sbuffer_write(sb, "\xcc\x00", 2);
	msgpack_sbuffer_write(sb, canon.data + at + 1, canon.size - at - 1);
	msgpack_sbuffer_destroy(&canon);
	if ((rc = hp_proposal_unpack((const uint8_t *)sb->data, sb->size,
	    &q)) != 0)
		die("the re-encoded proposal does not decode: %s",
		    hp_strerror(rc));
	hp_proposal_hash(p, h1);
	hp_proposal_hash(&q, h2);
	hp_proposal_free(&q);
	if (memcmp(h1, h2, sizeof(h1)) != 0)
		die("the re-encoded proposal hashes differently");
}

static void
run_case(struct probe *pr, const char *c)
{
	struct hp_proposal p;
	msgpack_sbuffer sb;
	uint8_t *b;
	uint64_t round = current_round(pr);

	memset(&p, 0, sizeof(p));
	if (strcmp(c, "valid") == 0) {
		make_proposal(pr, round, &p);
		send_proposal(pr, &p, "a valid proposal");
		snprintf(pr->what, sizeof(pr->what), "one valid stage-0"
		    " proposal for round %llu", (unsigned long long)round);
	} else if (strcmp(c, "badsig") == 0) {
		make_proposal(pr, round, &p);
		for (size_t i = 0; i < sizeof(p.sig); i++)
			p.sig[i] ^= 0xff;
		send_proposal(pr, &p, "a badly signed proposal");
		snprintf(pr->what, sizeof(pr->what), "one proposal for round"
		    " %llu with its signature flipped",
		    (unsigned long long)round);
	} else if (strcmp(c, "stale") == 0) {
		round -= STALE_ROUNDS * pr->roundtime;
		make_proposal(pr, round, &p);
		send_proposal(pr, &p, "a stale proposal");
		snprintf(pr->what, sizeof(pr->what), "one signed proposal for"
		    " round %llu, %d rounds ago", (unsigned long long)round,
		    STALE_ROUNDS);
	} else if (strcmp(c, "replay") == 0) {
		make_proposal(pr, round, &p);
		send_proposal(pr, &p, "a proposal");
		gap(pr);
		send_proposal(pr, &p, "the proposal again");
		snprintf(pr->what, sizeof(pr->what), "one valid proposal for"
		    " round %llu twice, %d ms apart", (unsigned long long)round,
		    REPLAY_GAP_MS);
	} else if (strcmp(c, "reencoded") == 0) {
		make_proposal(pr, round, &p);
		send_proposal(pr, &p, "a proposal");
		reencode(&p, &sb);
		gap(pr);
		send_frame(pr, HP_PT_PROPOSAL, sb.data, sb.size,
		    "the re-encoded proposal");
		msgpack_sbuffer_destroy(&sb);
		snprintf(pr->what, sizeof(pr->what), "one valid proposal for"
		    " round %llu, then re-encoded %d ms later",
		    (unsigned long long)round, REPLAY_GAP_MS);
	} else if (strcmp(c, "oversized") == 0) {
		uint32_t len = hp_peer_ptype_max(HP_PT_PROPOSAL) + 1;

		if ((b = calloc(1, WIRE_HDR_LEN + OVERSIZED_TAIL)) == NULL)
			die("out of memory");
		wire_hdr_encode(b, HP_PT_PROPOSAL, len);
		send_bytes(pr, b, WIRE_HDR_LEN + OVERSIZED_TAIL,
		    "an oversized frame");
		free(b);
		snprintf(pr->what, sizeof(pr->what), "a PROPOSAL header for"
		    " %u bytes, then %d", (unsigned)len, OVERSIZED_TAIL);
	} else if (strcmp(c, "garbage") == 0 || strcmp(c, "tlsgarbage") == 0) {
		if ((b = malloc(GARBAGE_BYTES)) == NULL)
			die("out of memory");
		randombytes_buf(b, GARBAGE_BYTES);
		if (c[0] == 'g') {
			b[0] |= 0x01;
			send_bytes(pr, b, GARBAGE_BYTES, "garbage");
		} else if (write(pr->fd, b, GARBAGE_BYTES) != GARBAGE_BYTES)
			die("writing garbage to the socket failed: %s",
			    strerror(errno));
		free(b);
		snprintf(pr->what, sizeof(pr->what), "%d random bytes %s",
		    GARBAGE_BYTES, c[0] == 'g' ? "inside TLS" :
		    "under TLS");
	} else
		usage();
	hp_proposal_free(&p);
}

static uint64_t
arg_ms(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || s[0] == '\0' || v == 0 ||
	    v > 3600000)
		die("%s: milliseconds from 1 to 3600000 expected, got \"%s\"",
		    opt, s);
	return v;
}

int
main(int argc, char **argv)
{
	const char *cfg_path = NULL, *connect_to = NULL, *cse = NULL;
	const char *cid = NULL;
	uint64_t roundtime = 0, linger = 500, t0;
	struct probe pr;
	int rc;

	memset(&pr, 0, sizeof(pr));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--need-forwarding") == 0) {
			pr.need_fwd = true;
			continue;
		}
		if (v == NULL)
			usage();
		if (strcmp(a, "--cfg") == 0)
			cfg_path = v;
		else if (strcmp(a, "--connect") == 0)
			connect_to = v;
		else if (strcmp(a, "--contract") == 0)
			cid = v;
		else if (strcmp(a, "--case") == 0)
			cse = v;
		else if (strcmp(a, "--roundtime") == 0)
			roundtime = arg_ms(a, v);
		else if (strcmp(a, "--linger") == 0)
			linger = arg_ms(a, v);
		else
			usage();
		i++;
	}
	if (cfg_path == NULL || connect_to == NULL || cse == NULL)
		usage();

	signal(SIGPIPE, SIG_IGN);
	if (hp_crypto_init() != 0)
		die("libsodium does not initialise");
	if ((rc = hp_config_load(cfg_path, &pr.cfg, report_cfg, NULL)) != 0)
		die("cannot load %s: %s", cfg_path, hp_strerror(rc));
	pr.cid = cid != NULL ? cid : pr.cfg.contract.id;
	if (strlen(pr.cid) > WIRE_CID_MAX)
		die("--contract: at most %d bytes", WIRE_CID_MAX);
	pr.roundtime = roundtime != 0 ? roundtime :
	    pr.cfg.contract.consensus.roundtime;
	if (tlsid_init(&pr.tls) != 0)
		die("cannot make a TLS identity: %s", tlsid_error());

	dial(&pr, connect_to);
	send_hello(&pr);
	wait_hello(&pr);
	run_case(&pr, cse);
	t0 = mono_ms();
	read_for(&pr, linger, NULL);
	printf("peerprobe: %s: sent %s; session %s after %llu ms\n", cse,
	    pr.what, pr.closed ? "closed by the peer" : "still open",
	    (unsigned long long)(mono_ms() - t0));
	if (!pr.closed)
		SSL_shutdown(pr.ssl);
	SSL_free(pr.ssl);
	close(pr.fd);
	SSL_CTX_free(pr.tls.ctx);
	hp_config_free(&pr.cfg);
	return 0;
}
