/*
 * net.c — TCP and TLS plumbing for the gateway and the peer worker
 * (net.h): address text, accept, and the non-blocking OpenSSL calls with
 * their results sorted into hpd's error codes.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>

#include "err.h"

void
hp_addr_text(const struct sockaddr *sa, char *ip, size_t size,
    uint16_t *port)
{
	ip[0] = '\0';
	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, size);
		*port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip,
			    size);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, ip, size);
		*port = ntohs(in6->sin6_port);
	}
}

int
hp_accept(int listen_fd, struct sockaddr_storage *ss, socklen_t *len)
{
	socklen_t cap = *len;
	int fd;

	for (;;) {
		*len = cap;
		fd = accept4(listen_fd, (struct sockaddr *)ss, len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0 || (errno != ECONNABORTED && errno != EINTR))
			return fd;
	}
}

const char *
hp_tls_error(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "no OpenSSL error recorded";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

int
hp_tls_attach(uv_loop_t *loop, SSL_CTX *ctx, int fd, SSL **ssl,
    uv_poll_t *poll)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((*ssl = SSL_new(ctx)) == NULL)
		return HP_ENOMEM;
	if (SSL_set_fd(*ssl, fd) != 1) {
		SSL_free(*ssl);
		*ssl = NULL;
		return HP_ENOMEM;
	}
	if (uv_poll_init(loop, poll, fd) != 0) {
		SSL_free(*ssl);
		*ssl = NULL;
		return HP_EIO;
	}
	return 0;
}

int
hp_tls_handshake(SSL *ssl, bool *want_write, const char **why)
{
	int r, e;

	if ((r = SSL_do_handshake(ssl)) == 1)
		return 0;
	e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*want_write = e == SSL_ERROR_WANT_WRITE;
		return HP_EAGAIN;
	}
	*why = e == SSL_ERROR_SYSCALL ? "connection lost" : hp_tls_error();
	return HP_EPROTO;
}

int
hp_tls_read(SSL *ssl, void *buf, size_t cap, bool *want_write)
{
	int n, e;

	n = SSL_read(ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (n > 0)
		return n;
	e = SSL_get_error(ssl, n);
	switch (e) {
	case SSL_ERROR_WANT_WRITE:
		*want_write = true;
		/* FALLTHROUGH */
	case SSL_ERROR_WANT_READ:
		return HP_EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return HP_EEOF;
	case SSL_ERROR_SYSCALL:
		return HP_EIO;
	default:
		return HP_ECRYPTO;
	}
}

int
hp_tls_write(SSL *ssl, const void *p, size_t n, bool *wants_write)
{
	int w, e;

	w = SSL_write(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (w > 0)
		return w;
	e = SSL_get_error(ssl, w);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		*wants_write = e == SSL_ERROR_WANT_WRITE;
		return HP_EAGAIN;
	}
	return e == SSL_ERROR_SYSCALL ? HP_EIO : HP_ECRYPTO;
}
