/*
 * test_peer_mesh.c — the peer worker end to end: real hpd-peer processes,
 * under their real sandbox, on loopback.
 *
 * The test stands in for the supervisor (fd 3: HELLO, CONFIG, LISTENER,
 * CHANNEL_NEW, CTL_QUERY for "show peers", SHUTDOWN) and for the consensus
 * worker (it signs the TLS identity with the node key the way consensus
 * does, and records PEER_CONNS / PEER_RECV / PEER_KNOWN_SAVE). A raw TLS
 * client built from the worker's own tlsid.c and wire.c plays a hostile or
 * scripted peer. Every case starts its own processes and stops them; a
 * worker killed by its sandbox fails the case.
 *
 * The binary is found next to the build tree (../../hpd-peer from this
 * test) or in $HPD_PEER_BIN; $HPD_PEER_LOG sets its log level (default
 * wrn).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "err.h"
#include "keys.h"
#include "mpack.h"
#include "proto.h"
#include "tlsid.h"
#include "wire.h"

#define MAXN 4
#define CID "5c6a1f3e-2b8d-4d4e-9a51-0c3f7d2e8b10"

struct node {
	int i;
	struct hp_keypair kp;
	char cid[40];
	char cfg[4096];
	int listen_fd;
	uint16_t port;
	pid_t pid;
	int status;
	bool exited;
	struct hp_channel sup, cons;
	bool sup_open, cons_open;
	int cons_child_fd;
	bool ready, signed_id;
	uint8_t conns[MAXN * 2][HP_PK_BYTES];
	int nconns;
	int nrecv;
	uint8_t from[HP_PK_BYTES];
	uint8_t payload[512];
	size_t payload_len;
	int known_saves;
	char known_saved[8][80];
	int nknown_saved;
	/* The last "show peers" answer. */
	bool shown;
	uint64_t verified, weak, dropped_dup, dropped_bad, dropped_unverified,
	    bad_hello, violations, bans, refused, forwarded;
};

static uv_loop_t loop;
static uv_timer_t wake;
static struct node nodes[MAXN];
static int nnodes;
static bool stopping;
static char peer_bin[PATH_MAX];

static void
on_wake(uv_timer_t *t)
{
}

static struct node *
node_of(struct hp_channel *ch)
{
	return ch->data;
}

static uint64_t
map_u64(const msgpack_object *m, const char *k)
{
	const msgpack_object *o = hp_mpack_get_s(m, k);

	if (o == NULL)
		return UINT64_MAX;
	if (o->type == MSGPACK_OBJECT_BOOLEAN)
		return o->via.boolean;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return o->via.u64;
	return UINT64_MAX;
}

static void
take_show(struct node *n, const msgpack_object *data)
{
	const msgpack_object *s = hp_mpack_get_s(data, "sessions");
	const msgpack_object *c = hp_mpack_get_s(data, "counters");

	n->verified = 0;
	if (s != NULL && s->type == MSGPACK_OBJECT_ARRAY)
		for (uint32_t i = 0; i < s->via.array.size; i++)
			if (map_u64(&s->via.array.ptr[i], "verified") == 1)
				n->verified++;
	n->weak = map_u64(data, "weak");
	assert_non_null(c);
	n->dropped_dup = map_u64(c, "dropped_dup");
	n->dropped_bad = map_u64(c, "dropped_bad");
	n->dropped_unverified = map_u64(c, "dropped_unverified");
	n->bad_hello = map_u64(c, "bad_hello");
	n->violations = map_u64(c, "violations");
	n->bans = map_u64(c, "bans");
	n->refused = map_u64(c, "refused");
	n->forwarded = map_u64(c, "forwarded");
	n->shown = true;
}

static void
cons_msg(struct hp_channel *ch, struct hp_msg *m)
{
	struct node *n = node_of(ch);
	const msgpack_object *o, *p;
	uint8_t *msg, sig[HP_SIG_BYTES];
	size_t len;
	struct hp_frame f;

	switch (m->type) {
	case HP_MSG_PEER_SIGN_REQ:
		o = hp_mpack_get(m->body, 1);
		assert_non_null(o);
		assert_int_equal(o->type, MSGPACK_OBJECT_BIN);
		assert_int_equal(tlsid_binding(n->cid, (const uint8_t *)
		    o->via.bin.ptr, o->via.bin.size, &msg, &len), 0);
		hp_sign(&n->kp, msg, len, sig);
		free(msg);
		hp_frame_begin(&f, HP_MSG_PEER_SIGN_RES, 0, 0);
		msgpack_pack_map(&f.pk, 1);
		msgpack_pack_uint32(&f.pk, 1);
		msgpack_pack_bin(&f.pk, sizeof(sig));
		msgpack_pack_bin_body(&f.pk, sig, sizeof(sig));
		hp_chan_send(&n->cons, &f, -1);
		n->signed_id = true;
		break;
	case HP_MSG_PEER_CONNS:
		o = hp_mpack_get(m->body, 1);
		assert_non_null(o);
		n->nconns = 0;
		for (uint32_t i = 0; i < o->via.array.size &&
		    i < MAXN * 2; i++)
			memcpy(n->conns[n->nconns++],
			    o->via.array.ptr[i].via.bin.ptr, HP_PK_BYTES);
		break;
	case HP_MSG_PEER_RECV:
		o = hp_mpack_get(m->body, 1);
		p = hp_mpack_get(m->body, 3);
		assert_non_null(o);
		assert_non_null(p);
		memcpy(n->from, o->via.bin.ptr, HP_PK_BYTES);
		n->payload_len = p->via.bin.size < sizeof(n->payload) ?
		    p->via.bin.size : sizeof(n->payload);
		memcpy(n->payload, p->via.bin.ptr, n->payload_len);
		n->nrecv++;
		break;
	case HP_MSG_PEER_KNOWN_SAVE:
		o = hp_mpack_get(m->body, 1);
		assert_non_null(o);
		n->known_saves++;
		n->nknown_saved = 0;
		for (uint32_t i = 0; i < o->via.array.size && i < 8; i++) {
			const msgpack_object *s = &o->via.array.ptr[i];

			snprintf(n->known_saved[n->nknown_saved++], 80, "%.*s",
			    (int)s->via.str.size, s->via.str.ptr);
		}
		break;
	default:
		break;
	}
}

static void
chan_closed(struct hp_channel *ch, int err)
{
}

static void
sup_msg(struct hp_channel *ch, struct hp_msg *m)
{
	struct node *n = node_of(ch);
	const msgpack_object *d;
	struct hp_frame f;
	int sp[2];

	switch (m->type) {
	case HP_MSG_HELLO:
		hp_frame_begin(&f, HP_MSG_CONFIG, 0, 0);
		msgpack_pack_map(&f.pk, 1);
		msgpack_pack_uint32(&f.pk, 1);
		hp_mpack_pack_cstr(&f.pk, n->cfg);
		hp_chan_send(&n->sup, &f, -1);
		break;
	case HP_MSG_READY:
		n->ready = true;
		hp_frame_begin(&f, HP_MSG_LISTENER, 0, 0);
		msgpack_pack_map(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, 1);
		hp_mpack_pack_cstr(&f.pk, "mesh");
		msgpack_pack_uint32(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, n->port);
		hp_chan_send(&n->sup, &f, dup(n->listen_fd));
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM |
		    SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp), 0);
		hp_frame_begin(&f, HP_MSG_CHANNEL_NEW, 0, 0);
		msgpack_pack_map(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, 1);
		hp_mpack_pack_cstr(&f.pk, "consensus");
		msgpack_pack_uint32(&f.pk, 2);
		msgpack_pack_uint32(&f.pk, 1);
		hp_chan_send(&n->sup, &f, sp[1]);
		assert_int_equal(hp_chan_open_policy(&loop, &n->cons, sp[0],
		    hp_sibling_policy(HP_W_CONSENSUS, HP_W_PEER), "consensus",
		    cons_msg, chan_closed, n), 0);
		n->cons_open = true;
		break;
	case HP_MSG_CTL_ANSWER:
		d = hp_mpack_get(m->body, 3);
		assert_non_null(d);
		take_show(n, d);
		break;
	default:
		break;
	}
}

static void
pk_hex(const uint8_t *pk, char *out)
{
	hp_pubkey_to_hex(pk, out);
}

/* knows: bitmask of nodes in mesh.known_peers. */
static void
node_config(struct node *n, unsigned knows, const char *cid,
    const char *mesh_extra, const char *mode)
{
	char unl[MAXN * 80] = "", known[MAXN * 32] = "", hex[80];
	size_t off;

	for (int j = 0; j < nnodes; j++) {
		pk_hex(nodes[j].kp.pk, hex);
		off = strlen(unl);
		snprintf(unl + off, sizeof(unl) - off, "%s\"%s\"",
		    j ? "," : "", hex);
		if (knows & (1u << j)) {
			off = strlen(known);
			snprintf(known + off, sizeof(known) - off,
			    "%s\"127.0.0.1:%u\"", off ? "," : "",
			    (unsigned)nodes[j].port);
		}
	}
	snprintf(n->cid, sizeof(n->cid), "%s", cid);
	pk_hex(n->kp.pk, hex);
	snprintf(n->cfg, sizeof(n->cfg),
	    "{\"node\":{\"public_key\":\"%s\"},"
	    "\"contract\":{\"id\":\"%s\",\"unl\":[%s],"
	    "\"consensus\":{\"mode\":\"%s\"}},"
	    "\"mesh\":{\"port\":%u,\"known_peers\":[%s]%s%s}}",
	    hex, cid, unl, mode, (unsigned)n->port, known,
	    mesh_extra[0] ? "," : "", mesh_extra);
}

static void
node_prepare(int i)
{
	struct node *n = &nodes[i];
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int one = 1;

	memset(n, 0, sizeof(*n));
	n->i = i;
	assert_int_equal(hp_keypair_generate(&n->kp), 0);
	n->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(n->listen_fd >= 0);
	setsockopt(n->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(n->listen_fd, (struct sockaddr *)&sa,
	    sizeof(sa)), 0);
	assert_int_equal(listen(n->listen_fd, 64), 0);
	getsockname(n->listen_fd, (struct sockaddr *)&sa, &len);
	n->port = ntohs(sa.sin_port);
}

static void
node_start(struct node *n)
{
	const char *lvl = getenv("HPD_PEER_LOG");
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sp), 0);
	n->pid = fork();
	assert_true(n->pid >= 0);
	if (n->pid == 0) {
		/* LeakSanitizer cannot run inside the seccomp sandbox. */
		char asan[512];
		const char *prev = getenv("ASAN_OPTIONS");

		snprintf(asan, sizeof(asan), "%s%sdetect_leaks=0",
		    prev != NULL ? prev : "", prev != NULL ? ":" : "");
		setenv("ASAN_OPTIONS", asan, 1);
		dup2(sp[1], 3);
		execl(peer_bin, "hpd-peer", "--dir", "/nonexistent", "--dev",
		    "--log-level", lvl != NULL ? lvl : "wrn", (char *)NULL);
		_exit(127);
	}
	close(sp[1]);
	fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK);
	assert_int_equal(hp_chan_open(&loop, &n->sup, sp[0],
	    HP_CHAN_SUP_TO_WORKER, "hpd", sup_msg, chan_closed, n), 0);
	n->sup_open = true;
}

static void
check_alive(void)
{
	for (int i = 0; i < nnodes; i++) {
		struct node *n = &nodes[i];

		if (n->pid <= 0 || n->exited || stopping)
			continue;
		if (waitpid(n->pid, &n->status, WNOHANG) == n->pid) {
			n->exited = true;
			fail_msg("hpd-peer %d died: %s %d", i,
			    WIFSIGNALED(n->status) ? "signal" : "exit",
			    WIFSIGNALED(n->status) ? WTERMSIG(n->status) :
			    WEXITSTATUS(n->status));
		}
	}
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

typedef bool (*cond_fn)(void *arg);

/* Run the loop until cond holds or ms pass; false on timeout. */
static bool
run_until(cond_fn cond, void *arg, uint64_t ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end) {
		if (cond != NULL && cond(arg))
			return true;
		uv_run(&loop, UV_RUN_ONCE);
		check_alive();
	}
	return cond != NULL && cond(arg);
}

static bool
has_conn(struct node *n, const struct node *to)
{
	for (int i = 0; i < n->nconns; i++)
		if (memcmp(n->conns[i], to->kp.pk, HP_PK_BYTES) == 0)
			return true;
	return false;
}

static bool
shown(void *arg)
{
	return ((struct node *)arg)->shown;
}

static void
show(struct node *n)
{
	struct hp_frame f;

	n->shown = false;
	hp_frame_begin(&f, HP_MSG_CTL_QUERY, 7, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_array(&f.pk, 1);
	hp_mpack_pack_cstr(&f.pk, "peers");
	hp_chan_send(&n->sup, &f, -1);
	assert_true(run_until(shown, n, 3000));
}

static void
cluster_setup(int count)
{
	nnodes = count;
	stopping = false;
	assert_int_equal(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &wake);
	uv_timer_start(&wake, on_wake, 20, 20);
	for (int i = 0; i < count; i++)
		node_prepare(i);
}

static void
cluster_start(void)
{
	for (int i = 0; i < nnodes; i++)
		node_start(&nodes[i]);
}

static void
close_handle(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
cluster_stop(void)
{
	uint64_t end;

	stopping = true;
	for (int i = 0; i < nnodes; i++) {
		struct node *n = &nodes[i];

		if (n->sup_open && !n->exited)
			hp_chan_send_empty(&n->sup, HP_MSG_SHUTDOWN, 0);
	}
	run_until(NULL, NULL, 200);
	end = now_ms() + 3000;
	for (int i = 0; i < nnodes; i++) {
		struct node *n = &nodes[i];

		while (!n->exited && now_ms() < end) {
			if (waitpid(n->pid, &n->status, WNOHANG) == n->pid)
				n->exited = true;
			else
				usleep(10000);
		}
		if (!n->exited) {
			kill(n->pid, SIGKILL);
			waitpid(n->pid, &n->status, 0);
			fail_msg("hpd-peer %d did not exit on SHUTDOWN", i);
		}
		if (WIFSIGNALED(n->status))
			fail_msg("hpd-peer %d killed by signal %d", i,
			    WTERMSIG(n->status));
		assert_int_equal(WEXITSTATUS(n->status), 0);
		if (n->sup_open)
			hp_chan_close(&n->sup, 0);
		if (n->cons_open)
			hp_chan_close(&n->cons, 0);
		close(n->listen_fd);
	}
	uv_walk(&loop, close_handle, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
}

struct pair {
	struct node *a, *b;
};

static bool
connected_pair(void *arg)
{
	struct pair *p = arg;

	return has_conn(p->a, p->b) && has_conn(p->b, p->a);
}

static void
wait_connected(struct node *a, struct node *b)
{
	struct pair p = { a, b };

	if (!run_until(connected_pair, &p, 8000))
		fail_msg("nodes %d and %d did not verify each other", a->i,
		    b->i);
}

static void
peer_send(struct node *n, uint8_t ptype, const void *payload, size_t len)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_PEER_SEND, 0, 0);
	msgpack_pack_map(&f.pk, 3);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, ptype);
	msgpack_pack_uint32(&f.pk, 2);
	msgpack_pack_bin(&f.pk, len);
	msgpack_pack_bin_body(&f.pk, payload, len);
	msgpack_pack_uint32(&f.pk, 3);
	msgpack_pack_false(&f.pk);
	hp_chan_send(&n->cons, &f, -1);
}

struct want_recv {
	struct node *n;
	int count;
};

static bool
got_recv(void *arg)
{
	struct want_recv *w = arg;

	return w->n->nrecv >= w->count;
}

/* Two nodes that know each other verify, and a proposal crosses once. */
static void
test_two_nodes(void **state)
{
	const char prop[] = "proposal one";
	struct want_recv w;

	cluster_setup(2);
	node_config(&nodes[0], 2, CID, "", "public");
	node_config(&nodes[1], 1, CID, "", "public");
	cluster_start();
	wait_connected(&nodes[0], &nodes[1]);
	assert_true(nodes[0].signed_id && nodes[1].signed_id);

	peer_send(&nodes[0], HP_PT_PROPOSAL, prop, sizeof(prop));
	peer_send(&nodes[0], HP_PT_PROPOSAL, prop, sizeof(prop));
	w.n = &nodes[1];
	w.count = 1;
	assert_true(run_until(got_recv, &w, 3000));
	run_until(NULL, NULL, 300);
	assert_int_equal(nodes[1].nrecv, 1);
	assert_memory_equal(nodes[1].from, nodes[0].kp.pk, HP_PK_BYTES);
	assert_int_equal(nodes[1].payload_len, sizeof(prop));
	assert_memory_equal(nodes[1].payload, prop, sizeof(prop));

	show(&nodes[1]);
	assert_int_equal(nodes[1].verified, 1);
	assert_int_equal(nodes[1].dropped_dup, 1);
	assert_int_equal(nodes[1].weak, 0);
	show(&nodes[0]);
	assert_int_equal(nodes[0].verified, 1);
	cluster_stop();
}

/* A line a - b - c with a UNL of three: a and c are weak and ask b to
 * forward; a proposal from c reaches a through b. */
static void
test_forwarding(void **state)
{
	const char prop[] = "proposal from c";
	struct want_recv w;

	cluster_setup(3);
	node_config(&nodes[0], 2, CID, "\"peer_discovery\":{\"enabled\":false}",
	    "public");
	node_config(&nodes[1], 0, CID, "\"peer_discovery\":{\"enabled\":false}",
	    "public");
	node_config(&nodes[2], 2, CID, "\"peer_discovery\":{\"enabled\":false}",
	    "public");
	cluster_start();
	wait_connected(&nodes[0], &nodes[1]);
	wait_connected(&nodes[2], &nodes[1]);
	show(&nodes[0]);
	assert_int_equal(nodes[0].weak, 1);
	show(&nodes[1]);
	assert_int_equal(nodes[1].weak, 0);
	run_until(NULL, NULL, 200);	/* REQUIREMENT frames settle */

	peer_send(&nodes[2], HP_PT_PROPOSAL, prop, sizeof(prop));
	w.n = &nodes[0];
	w.count = 1;
	assert_true(run_until(got_recv, &w, 3000));
	assert_memory_equal(nodes[0].payload, prop, sizeof(prop));
	assert_memory_equal(nodes[0].from, nodes[1].kp.pk, HP_PK_BYTES);
	assert_int_equal(nodes[1].nrecv, 1);
	show(&nodes[1]);
	assert_true(nodes[1].forwarded >= 1);
	cluster_stop();
}

/* a and c only know b; discovery through b connects them. */
static bool
ac_connected(void *arg)
{
	return has_conn(&nodes[0], &nodes[2]) && has_conn(&nodes[2], &nodes[0]);
}

static bool
saved(void *arg)
{
	return ((struct node *)arg)->known_saves > 0;
}

static void
test_discovery(void **state)
{
	const char *d = "\"peer_discovery\":{\"enabled\":true,\"interval\":200}";

	cluster_setup(3);
	node_config(&nodes[0], 2, CID, d, "public");
	node_config(&nodes[1], 0, CID, d, "public");
	node_config(&nodes[2], 2, CID, d, "public");
	cluster_start();
	if (!run_until(ac_connected, NULL, 10000))
		fail_msg("discovery did not connect a and c");
	if (!run_until(saved, &nodes[0], 8000))
		fail_msg("node a never sent PEER_KNOWN_SAVE");
	cluster_stop();
}

/* A node of another contract is never verified and is counted. */
static void
test_wrong_contract(void **state)
{
	cluster_setup(2);
	node_config(&nodes[0], 2, CID, "", "public");
	node_config(&nodes[1], 1, "00000000-0000-4000-8000-000000000000", "",
	    "public");
	cluster_start();
	run_until(NULL, NULL, 2500);
	assert_int_equal(nodes[0].nconns, 0);
	show(&nodes[0]);
	assert_int_equal(nodes[0].verified, 0);
	assert_true(nodes[0].bad_hello >= 1);
	cluster_stop();
}

/* A scripted peer over TLS. */
struct rawpeer {
	SSL *ssl;
	int fd;
};

static struct tlsid client_tls;

static bool
raw_connect(struct rawpeer *r, const struct node *n)
{
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(n->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(r->fd >= 0);
	assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)),
	    0);
	r->ssl = SSL_new(client_tls.ctx);
	SSL_set_fd(r->ssl, r->fd);
	return SSL_connect(r->ssl) == 1;
}

static void
raw_close(struct rawpeer *r)
{
	SSL_free(r->ssl);
	close(r->fd);
}

static void
raw_write(struct rawpeer *r, const void *p, size_t len)
{
	assert_int_equal(SSL_write(r->ssl, p, (int)len), (int)len);
}

static void
raw_hello(struct rawpeer *r, const struct hp_keypair *kp, const char *cid)
{
	struct wire_hello h;
	msgpack_sbuffer sb;
	uint8_t *msg;
	size_t len;

	memset(&h, 0, sizeof(h));
	snprintf(h.contract_id, sizeof(h.contract_id), "%s", cid);
	h.version = WIRE_VERSION;
	memcpy(h.pk, kp->pk, HP_PK_BYTES);
	assert_int_equal(tlsid_binding(cid, client_tls.spki,
	    client_tls.spki_len, &msg, &len), 0);
	hp_sign(kp, msg, len, h.sig);
	free(msg);
	msgpack_sbuffer_init(&sb);
	wire_hello_encode(&sb, &h);
	raw_write(r, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

static void
raw_frame(struct rawpeer *r, uint8_t type, const void *p, size_t len)
{
	uint8_t hdr[WIRE_HDR_LEN];

	wire_hdr_encode(hdr, type, (uint32_t)len);
	raw_write(r, hdr, sizeof(hdr));
	if (len > 0)
		raw_write(r, p, len);
}

static bool
conns_has(void *arg)
{
	struct node *n = &nodes[0];

	return n->nconns > 0 && memcmp(n->conns[0], arg, HP_PK_BYTES) == 0;
}

/*
 * Frames before HELLO are ignored; a verified scripted peer's proposal is
 * delivered, its duplicate dropped, an unknown type counted; a HELLO whose
 * signature does not cover the presented certificate is refused.
 */
static void
test_scripted_peer(void **state)
{
	struct hp_keypair other;
	struct rawpeer r;
	struct want_recv w = { &nodes[0], 1 };
	const char prop[] = "scripted";

	cluster_setup(1);
	node_config(&nodes[0], 0, CID, "", "public");
	cluster_start();
	while (!nodes[0].signed_id)
		run_until(NULL, NULL, 50);
	run_until(NULL, NULL, 200);

	assert_int_equal(hp_keypair_generate(&other), 0);
	assert_true(raw_connect(&r, &nodes[0]));
	raw_frame(&r, HP_PT_PROPOSAL, "early", 5);
	raw_hello(&r, &other, CID);
	assert_true(run_until(conns_has, other.pk, 3000));
	raw_frame(&r, HP_PT_PROPOSAL, prop, sizeof(prop));
	raw_frame(&r, HP_PT_PROPOSAL, prop, sizeof(prop));
	raw_frame(&r, 0x7f, "xx", 2);
	assert_true(run_until(got_recv, &w, 3000));
	run_until(NULL, NULL, 300);
	assert_int_equal(nodes[0].nrecv, 1);
	assert_memory_equal(nodes[0].from, other.pk, HP_PK_BYTES);
	show(&nodes[0]);
	assert_int_equal(nodes[0].dropped_unverified, 1);
	assert_int_equal(nodes[0].dropped_dup, 1);
	assert_int_equal(nodes[0].dropped_bad, 1);
	assert_int_equal(nodes[0].verified, 1);
	raw_close(&r);

	/* Signed over another contract id: bad HELLO. */
	assert_true(raw_connect(&r, &nodes[0]));
	raw_hello(&r, &other, "not-our-contract");
	run_until(NULL, NULL, 500);
	show(&nodes[0]);
	assert_int_equal(nodes[0].bad_hello, 1);
	raw_close(&r);
	cluster_stop();
}

/* Oversized frames are violations; the fifth bans the host. */
static void
test_violations_ban(void **state)
{
	struct rawpeer r;

	cluster_setup(1);
	node_config(&nodes[0], 0, CID, "", "public");
	cluster_start();
	while (!nodes[0].signed_id)
		run_until(NULL, NULL, 50);
	run_until(NULL, NULL, 200);
	for (int i = 0; i < 5; i++) {
		assert_true(raw_connect(&r, &nodes[0]));
		/* A 2 MiB proposal: over its 1 MiB limit, refused on the
		 * header. */
		raw_write(&r, "\x00\x20\x00\x00\x01", 5);
		run_until(NULL, NULL, 150);
		raw_close(&r);
	}
	show(&nodes[0]);
	assert_int_equal(nodes[0].violations, 5);
	assert_int_equal(nodes[0].bans, 1);
	assert_false(raw_connect(&r, &nodes[0]));
	raw_close(&r);
	run_until(NULL, NULL, 100);
	show(&nodes[0]);
	assert_true(nodes[0].refused >= 1);
	cluster_stop();
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_nodes),
		cmocka_unit_test(test_forwarding),
		cmocka_unit_test(test_discovery),
		cmocka_unit_test(test_wrong_contract),
		cmocka_unit_test(test_scripted_peer),
		cmocka_unit_test(test_violations_ban),
	};
	char self[PATH_MAX];
	const char *env = getenv("HPD_PEER_BIN");
	ssize_t n;

	signal(SIGPIPE, SIG_IGN);
	if (env != NULL)
		snprintf(peer_bin, sizeof(peer_bin), "%s", env);
	else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return 1;
		self[n] = '\0';
		snprintf(peer_bin, sizeof(peer_bin), "%s/../../hpd-peer",
		    dirname(self));
	}
	if (access(peer_bin, X_OK) != 0) {
		fprintf(stderr, "test_peer_mesh: %s not found\n", peer_bin);
		return 1;
	}
	if (hp_crypto_init() != 0 || tlsid_init(&client_tls) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
