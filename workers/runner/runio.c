/*
 * runio.c — a contract run's users: inputs, output sockets, outputs and
 * their hashes (runio.h).
 */
#include "runio.h"

#include "err.h"
#include "hash.h"
#include "keys.h"
#include "log.h"
#include "mpack.h"
#include "proto.h"
#include "usermsg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_USERS (HP_CONTRACT_FD_MAX - RUNIO_FD_FIRST + 1)
/* What one run may hand back in total: it travels in one IPC frame. */
#define RUN_OUT_MAX (12u * 1024 * 1024)
#define USER_OUT_MAX (4u * 1024 * 1024)
#define FRAME_HDR 4
#define ALIGN 4096

struct out {
	uint8_t *data;
	size_t len;
};

struct ruser {
	uint8_t pk[32];
	int fd;			/* ours, non-blocking; -1 once closed */
	int cfd;		/* the contract's end until handed over */
	uint8_t *buf;		/* a partial frame */
	size_t blen, bcap;
	struct out *outs;
	size_t nouts, capouts;
	uint64_t bytes;		/* payload bytes so far */
	int over;		/* went past its limit: closed */
	uint8_t hash[32];
};

struct runio {
	struct ruser *u;
	size_t n;
	uint64_t limit;
	uint64_t total;
};

static void
user_close(struct ruser *u)
{
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}

struct runio *
runio_new(void)
{
	return calloc(1, sizeof(struct runio));
}

void
runio_free(struct runio *ri)
{
	if (ri == NULL)
		return;
	for (size_t i = 0; i < ri->n; i++) {
		struct ruser *u = &ri->u[i];
		user_close(u);
		if (u->cfd >= 0)
			close(u->cfd);
		for (size_t j = 0; j < u->nouts; j++)
			free(u->outs[j].data);
		free(u->outs);
		free(u->buf);
	}
	free(ri->u);
	free(ri);
}

static int
write_at(int fd, const uint8_t *p, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return HP_EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int
add_user(struct runio *ri, const uint8_t pk[32])
{
	struct ruser *u = &ri->u[ri->n];
	int sv[2];

	memset(u, 0, sizeof(*u));
	u->fd = u->cfd = -1;
	memcpy(u->pk, pk, 32);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return HP_EIO;
	u->fd = sv[0];
	u->cfd = sv[1];
	if (fcntl(u->fd, F_SETFL, O_NONBLOCK) != 0) {
		close(sv[0]);
		close(sv[1]);
		u->fd = u->cfd = -1;
		return HP_EIO;
	}
	/* The contract only writes; the node only reads. */
	shutdown(u->fd, SHUT_WR);
	ri->n++;
	return 0;
}

static json_t *
user_entry(size_t i)
{
	json_t *a = json_array();

	json_array_append_new(a, json_integer((json_int_t)(RUNIO_FD_FIRST + i)));
	return a;
}

static void
set_user(struct runio *ri, json_t *args_users, size_t i, json_t *entry)
{
	char hex[HP_PK_HEX_LEN + 1];

	hp_pubkey_to_hex(ri->u[i].pk, hex);
	json_object_set_new(args_users, hex, entry);
}

int
runio_prepare(struct runio *ri, const msgpack_object *users,
    json_t *args_users, int *in_fd, uint64_t out_limit)
{
	uint32_t n = 0;
	off_t off = 0;
	int fd;

	ri->limit = out_limit;
	*in_fd = -1;
	if ((fd = memfd_create("hpd-user-inputs", MFD_CLOEXEC)) < 0)
		return HP_EIO;
	*in_fd = fd;
	if (users != NULL && users->type == MSGPACK_OBJECT_ARRAY)
		n = users->via.array.size;
	if (n > MAX_USERS) {
		log_warnx("%u users in this run; the contract gets the first %u"
		    " (one descriptor each)", n, (unsigned)MAX_USERS);
		n = MAX_USERS;
	}
	if (n == 0)
		return 0;
	if ((ri->u = calloc(n, sizeof(*ri->u))) == NULL)
		return HP_ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *e = &users->via.array.ptr[i], *k, *ins;
		json_t *entry;

		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2)
			continue;
		k = &e->via.array.ptr[0];
		ins = &e->via.array.ptr[1];
		if (k->type != MSGPACK_OBJECT_BIN || k->via.bin.size != 32 ||
		    ins->type != MSGPACK_OBJECT_ARRAY)
			continue;
		if (add_user(ri, (const uint8_t *)k->via.bin.ptr) != 0)
			return HP_EIO;
		entry = user_entry(ri->n - 1);
		for (uint32_t j = 0; j < ins->via.array.size; j++) {
			const msgpack_object *in = &ins->via.array.ptr[j], *b;
			json_t *pair;

			if (in->type != MSGPACK_OBJECT_ARRAY ||
			    in->via.array.size != 3)
				continue;
			b = &in->via.array.ptr[2];
			if (b->type != MSGPACK_OBJECT_BIN)
				continue;
			if (write_at(fd, (const uint8_t *)b->via.bin.ptr,
			    b->via.bin.size, off) != 0) {
				json_decref(entry);
				return HP_EIO;
			}
			pair = json_array();
			json_array_append_new(pair, json_integer(off));
			json_array_append_new(pair,
			    json_integer((json_int_t)b->via.bin.size));
			json_array_append_new(entry, pair);
			off += ((off_t)b->via.bin.size + ALIGN - 1) &
			    ~(off_t)(ALIGN - 1);
		}
		set_user(ri, args_users, ri->n - 1, entry);
	}
	return 0;
}

int
runio_prepare_read(struct runio *ri, const uint8_t pk[32],
    const uint8_t *content, size_t len, json_t *args_users, int *in_fd,
    uint64_t out_limit)
{
	json_t *entry, *pair;
	int fd;

	ri->limit = out_limit;
	*in_fd = -1;
	if ((fd = memfd_create("hpd-read-input", MFD_CLOEXEC)) < 0)
		return HP_EIO;
	*in_fd = fd;
	if ((ri->u = calloc(1, sizeof(*ri->u))) == NULL)
		return HP_ENOMEM;
	if (add_user(ri, pk) != 0 || write_at(fd, content, len, 0) != 0)
		return HP_EIO;
	entry = user_entry(0);
	pair = json_array();
	json_array_append_new(pair, json_integer(0));
	json_array_append_new(pair, json_integer((json_int_t)len));
	json_array_append_new(entry, pair);
	set_user(ri, args_users, 0, entry);
	return 0;
}

size_t
runio_count(const struct runio *ri)
{
	return ri->n;
}

int
runio_contract_fd(const struct runio *ri, size_t i)
{
	return i < ri->n ? ri->u[i].cfd : -1;
}

void
runio_handed_over(struct runio *ri)
{
	/* hp_worker_send_sup() took them (and closes them). */
	for (size_t i = 0; i < ri->n; i++)
		ri->u[i].cfd = -1;
}

static uint64_t
user_limit(const struct runio *ri)
{
	uint64_t lim = USER_OUT_MAX;

	if (ri->limit != 0 && ri->limit < lim)
		lim = ri->limit;
	return lim;
}

/* Past its limit: close our end; the contract's writes fail (EPIPE). */
static void
overflow(const struct runio *ri, struct ruser *u)
{
	char hex[9];

	hp_hash_hex(u->pk, 4, hex);
	log_warnx("contract output to user %s passed its limit (%llu bytes);"
	    " its socket is closed", hex,
	    (unsigned long long)user_limit(ri));
	u->over = 1;
	user_close(u);
}

/* Split complete frames out of u->buf. */
static void
frames(struct runio *ri, struct ruser *u)
{
	size_t at = 0;

	while (u->fd >= 0 && u->blen - at >= FRAME_HDR) {
		const uint8_t *h = u->buf + at;
		uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
		    (uint32_t)h[2] << 8 | h[3];
		struct out o;

		if (u->bytes + len > user_limit(ri) ||
		    ri->total + len > RUN_OUT_MAX) {
			overflow(ri, u);
			break;
		}
		if (u->blen - at - FRAME_HDR < len)
			break;
		if (u->nouts == u->capouts) {
			size_t cap = u->capouts ? u->capouts * 2 : 8;
			struct out *no = realloc(u->outs, cap * sizeof(*no));
			if (no == NULL) {
				overflow(ri, u);
				break;
			}
			u->outs = no;
			u->capouts = cap;
		}
		if ((o.data = malloc(len ? len : 1)) == NULL) {
			overflow(ri, u);
			break;
		}
		memcpy(o.data, h + FRAME_HDR, len);
		o.len = len;
		u->outs[u->nouts++] = o;
		u->bytes += len;
		ri->total += len;
		at += FRAME_HDR + len;
	}
	memmove(u->buf, u->buf + at, u->blen - at);
	u->blen -= at;
}

static void
read_user(struct runio *ri, struct ruser *u)
{
	for (;;) {
		ssize_t n;

		if (u->fd < 0)
			return;
		if (u->bcap - u->blen < 65536) {
			/* A frame never needs more than its limit + header. */
			size_t cap = u->bcap ? u->bcap * 2 : 131072;
			uint8_t *nb;
			if (cap > user_limit(ri) + FRAME_HDR + 131072) {
				overflow(ri, u);
				return;
			}
			if ((nb = realloc(u->buf, cap)) == NULL) {
				overflow(ri, u);
				return;
			}
			u->buf = nb;
			u->bcap = cap;
		}
		n = read(u->fd, u->buf + u->blen, u->bcap - u->blen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;		/* EAGAIN: later */
		if (n == 0) {
			user_close(u);	/* the contract closed it */
			return;
		}
		u->blen += (size_t)n;
		frames(ri, u);
	}
}

void
runio_poll(struct runio *ri)
{
	for (size_t i = 0; i < ri->n; i++)
		read_user(ri, &ri->u[i]);
}

static int
cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}


void
runio_pack_done(struct runio *ri, msgpack_packer *pk, const uint8_t state[32],
    uint8_t root[32])
{
	uint8_t *leaves;
	size_t nl = 0, nwith = 0;

	runio_poll(ri);
	for (size_t i = 0; i < ri->n; i++) {
		struct ruser *u = &ri->u[i];
		struct hp_ublob *b;

		if (u->nouts == 0)
			continue;
		if ((b = calloc(u->nouts, sizeof(*b))) == NULL)
			continue;
		for (size_t j = 0; j < u->nouts; j++) {
			b[j].data = u->outs[j].data;
			b[j].len = u->outs[j].len;
		}
		hp_uoutput_hash(u->pk, b, u->nouts, u->hash);
		free(b);
		nwith++;
	}
	leaves = malloc((nwith + 1) * 32);
	memset(root, 0, 32);
	if (leaves != NULL && nwith > 0) {
		for (size_t i = 0; i < ri->n; i++)
			if (ri->u[i].nouts > 0)
				memcpy(leaves + 32 * nl++, ri->u[i].hash, 32);
		qsort(leaves, nl, 32, cmp_hash);
		memcpy(leaves + 32 * nl++, state, 32);
		hp_utree_root(leaves, nl, root);
	} else
		nl = 0;
	msgpack_pack_uint32(pk, 2);
	hp_mpack_pack_bin(pk, root, 32);
	msgpack_pack_uint32(pk, 3);
	msgpack_pack_array(pk, nl);
	for (size_t i = 0; i < nl; i++)
		hp_mpack_pack_bin(pk, leaves + 32 * i, 32);
	msgpack_pack_uint32(pk, 4);
	msgpack_pack_array(pk, nl ? nwith : 0);
	for (size_t i = 0; nl && i < ri->n; i++) {
		struct ruser *u = &ri->u[i];
		if (u->nouts == 0)
			continue;
		msgpack_pack_array(pk, 3);
		hp_mpack_pack_bin(pk, u->pk, 32);
		hp_mpack_pack_bin(pk, u->hash, 32);
		msgpack_pack_array(pk, u->nouts);
		for (size_t j = 0; j < u->nouts; j++)
			hp_mpack_pack_bin(pk, u->outs[j].data, u->outs[j].len);
	}
	free(leaves);
}

void
runio_pack_read(struct runio *ri, msgpack_packer *pk)
{
	struct ruser *u = ri->n > 0 ? &ri->u[0] : NULL;

	runio_poll(ri);
	msgpack_pack_array(pk, u != NULL ? u->nouts : 0);
	for (size_t j = 0; u != NULL && j < u->nouts; j++)
		hp_mpack_pack_bin(pk, u->outs[j].data, u->outs[j].len);
}
