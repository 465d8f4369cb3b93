/*
 * tlsid.h — the peer worker's TLS context and its ephemeral identity.
 *
 * At start the worker makes a fresh ed25519 key and a self-signed
 * certificate for it, and one SSL_CTX for both directions: TLS 1.3 only,
 * both ends present a certificate, any self-signed certificate is
 * accepted. Who a peer is comes from its HELLO, where the node key signs
 * HP_PEER_TLS_DOMAIN || contract id || the SubjectPublicKeyInfo DER of
 * that certificate (tlsid_binding).
 *
 * tlsid_init() reads OpenSSL's configuration, so it runs before the
 * sandbox. The context and key live until exit.
 */
#ifndef HP_PEER_TLSID_H
#define HP_PEER_TLSID_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define TLSID_SPKI_MAX 512

struct tlsid {
	SSL_CTX *ctx;
	uint8_t spki[TLSID_SPKI_MAX];	/* our certificate's SPKI DER */
	size_t spki_len;
};

int tlsid_init(struct tlsid *t);

/* The SPKI DER of the certificate the peer presented on ssl; HP_ENOENT
 * when there is none, HP_ETOOBIG when it does not fit in cap. */
int tlsid_peer_spki(SSL *ssl, uint8_t *out, size_t cap, size_t *len);

/*
 * The bytes the node key signs: DOMAIN || cid || spki, into out (malloc'd,
 * caller frees).
 */
int tlsid_binding(const char *cid, const uint8_t *spki, size_t spki_len,
    uint8_t **out, size_t *len);

/* The same as hp_tls_error() (net.h); tests/tools/peerprobe.c calls it
 * by this name. */
const char *tlsid_error(void);

#endif
