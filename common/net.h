/*
 * net.h — TCP and TLS plumbing shared by the workers that hold network
 * connections (the gateway's user port, the peer worker's mesh): peer
 * addresses as text, accepting on a listening socket, and TLS on a
 * non-blocking socket watched by a uv_poll_t.
 *
 * The TLS calls never block. Each one either makes progress or returns
 * HP_EAGAIN and says which way the socket must become ready; the caller
 * keeps its poll mask in step and calls again from its poll callback.
 * Connection state, buffers and what a failure means stay with the
 * caller: these functions only drive OpenSSL and sort its results into
 * hpd's error codes.
 *
 * Ownership: the caller owns every SSL object, socket and uv_poll_t; on
 * failure hp_tls_attach() leaves nothing behind for the caller to free
 * except the socket, which stays the caller's in every case.
 */
#ifndef HP_NET_H
#define HP_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <uv.h>

/* The numeric IP and port of sa; IPv4-mapped IPv6 is shown as IPv4.
 * Other families give "" and port 0. */
void hp_addr_text(const struct sockaddr *sa, char *ip, size_t size,
    uint16_t *port);

/*
 * The next connection waiting on a non-blocking listening socket, itself
 * non-blocking and close-on-exec, with its address in ss (len in/out).
 * Aborted connections and interrupted calls are skipped. Returns the new
 * socket, or -1 with errno set (EAGAIN when none is waiting).
 */
int hp_accept(int listen_fd, struct sockaddr_storage *ss, socklen_t *len);

/* The last OpenSSL error as text, for logs; clears the error queue. The
 * text lives in a static buffer until the next call. */
const char *hp_tls_error(void);

/*
 * TCP_NODELAY on the connected socket fd, a new SSL from ctx bound to fd,
 * and poll initialised on loop for fd. Returns 0, or HP_ENOMEM (SSL
 * setup; hp_tls_error() tells more) or HP_EIO (poll), with *ssl NULL.
 */
int hp_tls_attach(uv_loop_t *loop, SSL_CTX *ctx, int fd, SSL **ssl,
    uv_poll_t *poll);

/*
 * One step of the TLS handshake. Returns 0 once it is complete;
 * HP_EAGAIN while it waits for the socket, with *want_write true when it
 * waits to write and false when it waits to read; or HP_EPROTO when it
 * failed, with *why saying how ("connection lost" or OpenSSL's error).
 */
int hp_tls_handshake(SSL *ssl, bool *want_write, const char **why);

/*
 * Up to cap bytes of plaintext into buf. Returns the count (> 0);
 * HP_EAGAIN when nothing is ready, with *want_write set to true when
 * OpenSSL must first write (left as it was otherwise); HP_EEOF when the
 * other end closed TLS; HP_EIO when the connection was lost (errno may
 * say why, or be 0); HP_ECRYPTO on a TLS error (hp_tls_error() says
 * which).
 */
int hp_tls_read(SSL *ssl, void *buf, size_t cap, bool *want_write);

/*
 * Write up to n bytes of p (at most INT32_MAX at once). Returns the count
 * taken (> 0); HP_EAGAIN when the socket is not ready, with *wants_write
 * true when it waits to write and false when it waits to read; HP_EIO
 * when the system call failed (errno says why); or HP_ECRYPTO on a TLS
 * error (hp_tls_error() says which).
 */
int hp_tls_write(SSL *ssl, const void *p, size_t n, bool *wants_write);

#endif
