/*
 * channel.h — hpd's IPC channel: framed msgpack over unix stream sockets,
 * with fd passing, driven by libuv.
 *
 * Frame: a 16-byte header in host byte order — type u32, len u32 (total
 * length including the header; bit 31 set means one fd is attached), id u32
 * (request id or object id), origin u32 (endpoint id assigned by the
 * supervisor) — then exactly one msgpack object. The length is checked
 * against the channel's max_frame before anything is allocated; the body
 * must pass hp_mpack_check() and end exactly at len; the type must be on
 * the channel's allow-list for that direction (proto.h), and only types
 * that the policy says carry an fd may have one. Anything else closes the
 * channel. The first frame each way is HELLO when the policy asks for it;
 * its protocol version and build id must match ours.
 *
 * An attached fd travels in the same sendmsg as the frame's first byte; the
 * receiver keeps arriving fds in a small FIFO and hands the first one to
 * the frame marked with the fd bit.
 *
 * Ownership: the caller owns struct hp_channel and may free it only after
 * its close callback has run. A message handed to the message callback is
 * valid only during the call; if the callback keeps msg->fd it sets it to
 * -1, otherwise the channel closes it.
 */
#ifndef HP_CHANNEL_H
#define HP_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

#include "proto.h"

#define HP_FRAME_HDR_LEN 16
#define HP_FRAME_FD_BIT 0x80000000u
#define HP_CHAN_MAX_FDS 4
#define HP_CHAN_MAX_QUEUE (64u * 1024 * 1024)

struct hp_frame_hdr {
	uint32_t type;
	uint32_t len;		/* without the fd bit */
	uint32_t id;
	uint32_t origin;
	int has_fd;
};

/* An outgoing frame being built: pack the body into pk, then hp_frame_end. */
struct hp_frame {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

/* A received message; body points into the channel's buffer. */
struct hp_msg {
	uint32_t type;
	uint32_t id;
	uint32_t origin;
	int fd;			/* -1 when none */
	const msgpack_object *body;
	msgpack_unpacked res;
};

/* Start a frame; reserves the header. */
void hp_frame_begin(struct hp_frame *f, uint32_t type, uint32_t id,
    uint32_t origin);
/* Patch the header length (and the fd bit). HP_ETOOBIG past 2^31 bytes. */
int hp_frame_end(struct hp_frame *f, int has_fd);
void hp_frame_free(struct hp_frame *f);

/* Decode and check a header; HP_ETOOBIG / HP_EFORMAT on a bad length. */
int hp_frame_hdr_decode(const uint8_t *buf, uint32_t max_frame,
    struct hp_frame_hdr *h);

/*
 * Parse one frame from buf[0..avail): HP_EAGAIN when more bytes are needed,
 * a negative code when the frame is invalid for this policy, or 0 with
 * *consumed set and msg filled (msg->fd = -1; the caller attaches fds).
 * On 0 the caller must msgpack_unpacked_destroy(&msg->res).
 */
int hp_frame_parse(const struct hp_chan_policy *pol, const uint8_t *buf,
    size_t avail, struct hp_msg *msg, size_t *consumed);

/* HELLO body (proto.h). */
struct hp_hello {
	uint64_t proto;
	char build_id[64];
	char role[32];
	uint64_t max_frame;
};
int hp_hello_decode(const msgpack_object *body, struct hp_hello *h);

struct hp_channel;
typedef void (*hp_chan_msg_cb)(struct hp_channel *ch, struct hp_msg *msg);
typedef void (*hp_chan_close_cb)(struct hp_channel *ch, int err);

struct hp_outbuf {
	struct hp_outbuf *next;
	uint8_t *data;
	size_t len, off;
	int fd;
};

struct hp_channel {
	uv_poll_t poll;
	int fd;
	const struct hp_chan_policy *pol;
	char local_role[32];
	char peer_role[32];
	int hello_done;
	uint8_t *rbuf;
	size_t rlen, rcap;
	int fds[HP_CHAN_MAX_FDS];
	int nfds;
	struct hp_outbuf *out_head, *out_tail;
	size_t out_bytes;
	int closing;
	int err;
	hp_chan_msg_cb on_msg;
	hp_chan_close_cb on_close;
	void *data;
	uint64_t rx_frames, tx_frames;
};

/*
 * Take ownership of a connected, non-blocking unix stream socket and start
 * reading. Sends HELLO first when the policy asks for it.
 */
int hp_chan_open(uv_loop_t *loop, struct hp_channel *ch, int fd,
    enum hp_chan_kind kind, const char *local_role, hp_chan_msg_cb on_msg,
    hp_chan_close_cb on_close, void *data);

/* The same with an explicit policy (sibling channels: hp_sibling_policy). */
int hp_chan_open_policy(uv_loop_t *loop, struct hp_channel *ch, int fd,
    const struct hp_chan_policy *pol, const char *local_role,
    hp_chan_msg_cb on_msg, hp_chan_close_cb on_close, void *data);

/*
 * Queue a finished frame. Takes ownership of the frame's bytes (f is left
 * empty) and of fd (closed once sent; -1 for none). HP_ETYPE when the
 * policy does not allow sending this type.
 */
int hp_chan_send(struct hp_channel *ch, struct hp_frame *f, int fd);

/* Convenience: a frame whose body is an empty map. */
int hp_chan_send_empty(struct hp_channel *ch, uint32_t type, uint32_t id);

/* Close (idempotent); on_close(ch, err) runs later from the loop. */
void hp_chan_close(struct hp_channel *ch, int err);

/* Blocking I/O for hpctl and tests. */
int hp_fd_write_all(int fd, const void *buf, size_t len);
/*
 * Read exactly one frame from a blocking socket within timeout_ms. On 0,
 * *buf holds the frame (caller frees after destroying msg->res).
 */
int hp_fd_read_frame(int fd, const struct hp_chan_policy *pol,
    int timeout_ms, uint8_t **buf, struct hp_msg *msg);

/* sendmsg()/recvmsg() wrappers with one optional fd. */
ssize_t hp_sendmsg_fd(int sock, const void *buf, size_t len, int fd);
ssize_t hp_recvmsg_fds(int sock, void *buf, size_t len, int *fds,
    int maxfds, int *nfds);

#endif
