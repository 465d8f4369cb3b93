/*
 * channel.c — frames, the HELLO exchange, fd passing and the libuv-driven
 * channel (channel.h).
 */
#include "channel.h"
#include "err.h"
#include "log.h"
#include "mpack.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "build_id.h"

void
hp_frame_begin(struct hp_frame *f, uint32_t type, uint32_t id, uint32_t origin)
{
	uint32_t hdr[4] = { type, 0, id, origin };

	msgpack_sbuffer_init(&f->sb);
	msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
	msgpack_sbuffer_write(&f->sb, (const char *)hdr, sizeof(hdr));
}

int
hp_frame_end(struct hp_frame *f, int has_fd)
{
	uint32_t len;

	if (f->sb.size >= HP_FRAME_FD_BIT)
		return HP_ETOOBIG;
	len = (uint32_t)f->sb.size | (has_fd ? HP_FRAME_FD_BIT : 0);
	memcpy(f->sb.data + 4, &len, sizeof(len));
	return 0;
}

void
hp_frame_free(struct hp_frame *f)
{
	msgpack_sbuffer_destroy(&f->sb);
}

int
hp_frame_hdr_decode(const uint8_t *buf, uint32_t max_frame,
    struct hp_frame_hdr *h)
{
	uint32_t raw[4];

	memcpy(raw, buf, sizeof(raw));
	h->type = raw[0];
	h->has_fd = (raw[1] & HP_FRAME_FD_BIT) != 0;
	h->len = raw[1] & ~HP_FRAME_FD_BIT;
	h->id = raw[2];
	h->origin = raw[3];
	/* A body is at least one msgpack byte. */
	if (h->len < HP_FRAME_HDR_LEN + 1)
		return HP_EFORMAT;
	if (h->len > max_frame)
		return HP_ETOOBIG;
	return 0;
}

int
hp_frame_parse(const struct hp_chan_policy *pol, const uint8_t *buf,
    size_t avail, struct hp_msg *msg, size_t *consumed)
{
	struct hp_frame_hdr h;
	int r;

	if (avail < HP_FRAME_HDR_LEN)
		return HP_EAGAIN;
	if ((r = hp_frame_hdr_decode(buf, pol->max_frame, &h)) != 0)
		return r;
	/* Refuse a disallowed type as soon as the header is in. */
	if (!hp_policy_may_recv(pol, h.type))
		return HP_ETYPE;
	if (h.has_fd != hp_policy_takes_fd(pol, h.type))
		return HP_EPROTO;
	if (avail < h.len)
		return HP_EAGAIN;
	if ((r = hp_mpack_unpack(buf + HP_FRAME_HDR_LEN,
	    h.len - HP_FRAME_HDR_LEN, &msg->res)) != 0)
		return r;
	msg->type = h.type;
	msg->id = h.id;
	msg->origin = h.origin;
	msg->fd = -1;
	msg->body = &msg->res.data;
	*consumed = h.len;
	return 0;
}

int
hp_hello_decode(const msgpack_object *body, struct hp_hello *h)
{
	int r;

	if ((r = hp_mpack_u64(body, 1, &h->proto)) != 0 ||
	    (r = hp_mpack_str(body, 2, h->build_id, sizeof(h->build_id))) != 0 ||
	    (r = hp_mpack_str(body, 3, h->role, sizeof(h->role))) != 0 ||
	    (r = hp_mpack_u64(body, 4, &h->max_frame)) != 0)
		return r < 0 ? r : HP_EFORMAT;
	return 0;
}

ssize_t
hp_sendmsg_fd(int sock, const void *buf, size_t len, int fd)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { 0 };
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

ssize_t
hp_recvmsg_fds(int sock, void *buf, size_t len, int *fds, int maxfds,
    int *nfds)
{
	struct iovec iov = { buf, len };
	struct msghdr mh = { 0 };
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * HP_CHAN_MAX_FDS)];
	} cm;
	ssize_t n;
	int bad = 0;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	    c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < cnt; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*nfds < maxfds)
				fds[(*nfds)++] = fd;
			else {
				close(fd);
				bad = 1;
			}
		}
	}
	if (bad || (mh.msg_flags & MSG_CTRUNC)) {
		errno = EPROTO;
		return -1;
	}
	return n;
}

/* ---- the libuv channel ---- */

static void chan_poll_cb(uv_poll_t *h, int status, int events);

static void
chan_closed_cb(uv_handle_t *h)
{
	struct hp_channel *ch = h->data;

	if (ch->on_close != NULL)
		ch->on_close(ch, ch->err);
}

void
hp_chan_close(struct hp_channel *ch, int err)
{
	struct hp_outbuf *o, *next;

	if (ch->closing)
		return;
	ch->closing = 1;
	ch->err = err;
	for (o = ch->out_head; o != NULL; o = next) {
		next = o->next;
		if (o->fd >= 0)
			close(o->fd);
		free(o->data);
		free(o);
	}
	ch->out_head = ch->out_tail = NULL;
	for (int i = 0; i < ch->nfds; i++)
		close(ch->fds[i]);
	ch->nfds = 0;
	free(ch->rbuf);
	ch->rbuf = NULL;
	uv_poll_stop(&ch->poll);
	uv_close((uv_handle_t *)&ch->poll, chan_closed_cb);
	close(ch->fd);
	ch->fd = -1;
}

static void
chan_update_events(struct hp_channel *ch)
{
	int ev = UV_READABLE | UV_DISCONNECT;

	if (ch->closing)
		return;
	if (ch->out_head != NULL)
		ev |= UV_WRITABLE;
	uv_poll_start(&ch->poll, ev, chan_poll_cb);
}

static int
chan_flush(struct hp_channel *ch)
{
	while (ch->out_head != NULL) {
		struct hp_outbuf *o = ch->out_head;
		ssize_t n = hp_sendmsg_fd(ch->fd, o->data + o->off,
		    o->len - o->off, o->off == 0 ? o->fd : -1);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return errno == EPIPE || errno == ECONNRESET ?
			    HP_EEOF : HP_EIO;
		}
		if (o->off == 0 && o->fd >= 0) {
			close(o->fd);
			o->fd = -1;
		}
		o->off += (size_t)n;
		ch->out_bytes -= (size_t)n;
		if (o->off == o->len) {
			ch->out_head = o->next;
			if (ch->out_head == NULL)
				ch->out_tail = NULL;
			free(o->data);
			free(o);
			ch->tx_frames++;
		}
	}
	return 0;
}

int
hp_chan_send(struct hp_channel *ch, struct hp_frame *f, int fd)
{
	struct hp_outbuf *o;
	uint32_t type;
	int r;

	memcpy(&type, f->sb.data, sizeof(type));
	if (ch->closing) {
		r = HP_EEOF;
		goto fail;
	}
	if (!hp_policy_may_send(ch->pol, type)) {
		log_warnx("%s channel: refusing to send %s (0x%06x): not allowed"
		    " on this channel", ch->pol->name, hp_msg_name(type), type);
		r = HP_ETYPE;
		goto fail;
	}
	if ((r = hp_frame_end(f, fd >= 0)) != 0)
		goto fail;
	if (ch->out_bytes + f->sb.size > HP_CHAN_MAX_QUEUE) {
		r = HP_ETOOBIG;
		hp_chan_close(ch, r);
		goto fail;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL) {
		r = HP_ENOMEM;
		goto fail;
	}
	o->len = f->sb.size;
	o->data = (uint8_t *)msgpack_sbuffer_release(&f->sb);
	o->fd = fd;
	if (ch->out_tail != NULL)
		ch->out_tail->next = o;
	else
		ch->out_head = o;
	ch->out_tail = o;
	ch->out_bytes += o->len;
	if ((r = chan_flush(ch)) != 0) {
		hp_chan_close(ch, r);
		return r;
	}
	chan_update_events(ch);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	hp_frame_free(f);
	return r;
}

int
hp_chan_send_empty(struct hp_channel *ch, uint32_t type, uint32_t id)
{
	struct hp_frame f;

	hp_frame_begin(&f, type, id, 0);
	msgpack_pack_map(&f.pk, 0);
	return hp_chan_send(ch, &f, -1);
}

static int
chan_send_hello(struct hp_channel *ch)
{
	struct hp_frame f;

	hp_frame_begin(&f, HP_MSG_HELLO, 0, 0);
	msgpack_pack_map(&f.pk, 4);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, HP_PROTO_VERSION);
	msgpack_pack_uint32(&f.pk, 2);
	hp_mpack_pack_cstr(&f.pk, HPD_BUILD_ID);
	msgpack_pack_uint32(&f.pk, 3);
	hp_mpack_pack_cstr(&f.pk, ch->local_role);
	msgpack_pack_uint32(&f.pk, 4);
	msgpack_pack_uint32(&f.pk, ch->pol->max_frame);
	return hp_chan_send(ch, &f, -1);
}

static int
chan_check_hello(struct hp_channel *ch, struct hp_msg *m)
{
	struct hp_hello h;

	if (m->type != HP_MSG_HELLO) {
		log_warnx("%s channel: first frame is %s, not HELLO",
		    ch->pol->name, hp_msg_name(m->type));
		return HP_EPROTO;
	}
	if (hp_hello_decode(m->body, &h) != 0) {
		log_warnx("%s channel: malformed HELLO", ch->pol->name);
		return HP_EPROTO;
	}
	if (h.proto != HP_PROTO_VERSION || strcmp(h.build_id,
	    HPD_BUILD_ID) != 0) {
		log_warnx("%s channel: peer %s speaks protocol %llu build %s;"
		    " this is protocol %d build %s: restart hpd so that all"
		    " its programs come from one build", ch->pol->name, h.role,
		    (unsigned long long)h.proto, h.build_id, HP_PROTO_VERSION,
		    HPD_BUILD_ID);
		return HP_EPROTO;
	}
	snprintf(ch->peer_role, sizeof(ch->peer_role), "%s", h.role);
	ch->hello_done = 1;
	return 0;
}

static int
chan_dispatch(struct hp_channel *ch)
{
	size_t off = 0;
	int r = 0;

	while (!ch->closing) {
		struct hp_msg m;
		size_t used;

		r = hp_frame_parse(ch->pol, ch->rbuf + off, ch->rlen - off, &m,
		    &used);
		if (r == HP_EAGAIN) {
			r = 0;
			break;
		}
		if (r != 0) {
			log_warnx("%s channel from %s: bad frame: %s",
			    ch->pol->name, ch->peer_role[0] ? ch->peer_role :
			    "?", hp_strerror(r));
			break;
		}
		off += used;
		ch->rx_frames++;
		if (m.type != HP_MSG_HELLO &&
		    hp_policy_takes_fd(ch->pol, m.type)) {
			if (ch->nfds == 0) {
				msgpack_unpacked_destroy(&m.res);
				log_warnx("%s channel: %s without its fd",
				    ch->pol->name, hp_msg_name(m.type));
				r = HP_EPROTO;
				break;
			}
			m.fd = ch->fds[0];
			memmove(ch->fds, ch->fds + 1,
			    sizeof(int) * (size_t)--ch->nfds);
		}
		if (ch->pol->hello && !ch->hello_done) {
			r = chan_check_hello(ch, &m);
			msgpack_unpacked_destroy(&m.res);
			if (r != 0) {
				/* A first frame that is not HELLO may own an fd. */
				if (m.fd >= 0)
					close(m.fd);
				break;
			}
			m.type = HP_MSG_HELLO;
			m.body = NULL;
			/* Tell the owner the peer is known (ch->peer_role). */
			ch->on_msg(ch, &m);
			continue;
		}
		if (m.type == HP_MSG_HELLO && ch->pol->hello) {
			msgpack_unpacked_destroy(&m.res);
			log_warnx("%s channel: second HELLO", ch->pol->name);
			r = HP_EPROTO;
			break;
		}
		ch->on_msg(ch, &m);
		if (m.fd >= 0)
			close(m.fd);
		msgpack_unpacked_destroy(&m.res);
	}
	if (!ch->closing && off > 0) {
		memmove(ch->rbuf, ch->rbuf + off, ch->rlen - off);
		ch->rlen -= off;
	}
	/* Any fd not claimed by a frame yet must belong to one in flight. */
	if (!ch->closing && ch->rlen == 0 && ch->nfds > 0 && r == 0) {
		log_warnx("%s channel: fd sent without a frame", ch->pol->name);
		r = HP_EPROTO;
	}
	return r;
}

static int
chan_read(struct hp_channel *ch)
{
	for (;;) {
		size_t want = ch->rcap - ch->rlen;
		ssize_t n;

		if (want == 0) {
			/* Grow only up to the frame the header announces. */
			struct hp_frame_hdr h;
			size_t need = ch->rcap * 2;
			int r;

			if (ch->rlen >= HP_FRAME_HDR_LEN &&
			    (r = hp_frame_hdr_decode(ch->rbuf, ch->pol->max_frame,
			    &h)) != 0)
				return r;
			if (need > ch->pol->max_frame)
				need = ch->pol->max_frame;
			if (need <= ch->rcap)
				return HP_ETOOBIG;
			uint8_t *nb = realloc(ch->rbuf, need);
			if (nb == NULL)
				return HP_ENOMEM;
			ch->rbuf = nb;
			ch->rcap = need;
			want = ch->rcap - ch->rlen;
		}
		n = hp_recvmsg_fds(ch->fd, ch->rbuf + ch->rlen, want, ch->fds,
		    HP_CHAN_MAX_FDS, &ch->nfds);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return errno == ECONNRESET ? HP_EEOF : HP_EIO;
		}
		if (n == 0)
			return HP_EEOF;
		ch->rlen += (size_t)n;
		int r = chan_dispatch(ch);
		if (r != 0 || ch->closing)
			return r;
	}
}

static void
chan_poll_cb(uv_poll_t *h, int status, int events)
{
	struct hp_channel *ch = h->data;
	int r = 0;

	if (ch->closing)
		return;
	if (status < 0) {
		/*
		 * libuv turns a socket error (EPOLLERR) into a bad status; a
		 * peer that exits with our bytes unread causes one. Read what
		 * it sent before, then the error itself: ECONNRESET is EOF.
		 */
		r = chan_read(ch);
		hp_chan_close(ch, r != 0 ? r : HP_EIO);
		return;
	}
	if (events & UV_WRITABLE)
		r = chan_flush(ch);
	if (r == 0 && (events & (UV_READABLE | UV_DISCONNECT)))
		r = chan_read(ch);
	if (r != 0) {
		hp_chan_close(ch, r);
		return;
	}
	chan_update_events(ch);
}

int
hp_chan_open(uv_loop_t *loop, struct hp_channel *ch, int fd,
    enum hp_chan_kind kind, const char *local_role, hp_chan_msg_cb on_msg,
    hp_chan_close_cb on_close, void *data)
{
	return hp_chan_open_policy(loop, ch, fd, hp_chan_policy(kind),
	    local_role, on_msg, on_close, data);
}

int
hp_chan_open_policy(uv_loop_t *loop, struct hp_channel *ch, int fd,
    const struct hp_chan_policy *pol, const char *local_role,
    hp_chan_msg_cb on_msg, hp_chan_close_cb on_close, void *data)
{
	memset(ch, 0, sizeof(*ch));
	ch->fd = fd;
	ch->pol = pol;
	snprintf(ch->local_role, sizeof(ch->local_role), "%s", local_role);
	ch->on_msg = on_msg;
	ch->on_close = on_close;
	ch->data = data;
	ch->rcap = 4096;
	if ((ch->rbuf = malloc(ch->rcap)) == NULL) {
		close(fd);
		return HP_ENOMEM;
	}
	if (uv_poll_init(loop, &ch->poll, fd) != 0) {
		free(ch->rbuf);
		close(fd);
		return HP_EIO;
	}
	ch->poll.data = ch;
	chan_update_events(ch);
	/* From here on failures arrive through on_close. */
	if (ch->pol->hello)
		(void)chan_send_hello(ch);
	return 0;
}

/* ---- blocking helpers ---- */

int
hp_fd_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return HP_EIO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

int
hp_fd_read_frame(int fd, const struct hp_chan_policy *pol, int timeout_ms,
    uint8_t **bufp, struct hp_msg *msg)
{
	uint8_t hdr[HP_FRAME_HDR_LEN];
	struct hp_frame_hdr h;
	uint8_t *buf = NULL;
	size_t have = 0, want = HP_FRAME_HDR_LEN;
	long deadline = now_ms() + timeout_ms;
	int r;

	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		long left = deadline - now_ms();
		if (left <= 0) {
			r = HP_EAGAIN;
			goto fail;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			r = HP_EIO;
			goto fail;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		uint8_t *dst = buf == NULL ? hdr + have : buf + have;
		ssize_t n = read(fd, dst, want - have);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			r = HP_EIO;
			goto fail;
		}
		if (n == 0) {
			r = HP_EEOF;
			goto fail;
		}
		have += (size_t)n;
		if (have < want)
			continue;
		if (buf == NULL) {
			if ((r = hp_frame_hdr_decode(hdr, pol->max_frame, &h)) != 0)
				goto fail;
			if ((buf = malloc(h.len)) == NULL) {
				r = HP_ENOMEM;
				goto fail;
			}
			memcpy(buf, hdr, HP_FRAME_HDR_LEN);
			want = h.len;
			continue;
		}
		break;
	}
	size_t used;
	if ((r = hp_frame_parse(pol, buf, have, msg, &used)) != 0)
		goto fail;
	*bufp = buf;
	return 0;
fail:
	free(buf);
	return r;
}
