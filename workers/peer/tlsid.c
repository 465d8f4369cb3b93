/*
 * tlsid.c — the peer TLS context and its ephemeral ed25519 certificate
 * (tlsid.h).
 */
#include "tlsid.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "net.h"
#include "proto.h"

#define READ_BUFFER	(256 * 1024)	/* TLS bytes read at once, at most */

/* Identity comes from the HELLO; the chain is not checked. */
static int
accept_any(int ok, X509_STORE_CTX *x)
{
	return 1;
}

static X509 *
make_cert(EVP_PKEY *key)
{
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	X509 *crt;
	X509_NAME *name;

	if ((crt = X509_new()) == NULL)
		return NULL;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt)) == NULL)
		goto fail;
	name = X509_get_subject_name(crt);
	if (X509_set_version(crt, 2) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(crt), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(crt),
	    10L * 365 * 24 * 3600) == NULL ||
	    X509_set_pubkey(crt, key) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"hpd peer", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(crt, name) != 1 ||
	    X509_sign(crt, key, NULL) == 0)	/* ed25519: no digest */
		goto fail;
	BN_free(bn);
	return crt;
fail:
	BN_free(bn);
	X509_free(crt);
	return NULL;
}

int
tlsid_init(struct tlsid *t)
{
	EVP_PKEY *key = NULL;
	X509 *crt = NULL;
	unsigned char *p;
	int len, rc = HP_ECRYPTO;

	memset(t, 0, sizeof(*t));
	if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1 ||
	    (key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL ||
	    (crt = make_cert(key)) == NULL ||
	    (t->ctx = SSL_CTX_new(TLS_method())) == NULL)
		goto out;
	len = i2d_PUBKEY(key, NULL);
	if (len <= 0 || (size_t)len > sizeof(t->spki))
		goto out;
	p = t->spki;
	if (i2d_PUBKEY(key, &p) != len)
		goto out;
	t->spki_len = (size_t)len;
	if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_use_certificate(t->ctx, crt) != 1 ||
	    SSL_CTX_use_PrivateKey(t->ctx, key) != 1 ||
	    SSL_CTX_check_private_key(t->ctx) != 1)
		goto out;
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER |
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(t->ctx, 0);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Read whatever the socket has, up to READ_BUFFER, in one read(2),
	 * not a record's header and then its body: a state sync moves
	 * hundreds of MB in 16 KiB records. The buffers stay with the
	 * session (a node has one per peer). */
	SSL_CTX_set_read_ahead(t->ctx, 1);
	SSL_CTX_set_default_read_buffer_len(t->ctx, READ_BUFFER);
	rc = 0;
out:
	if (rc != 0) {
		log_warnx("TLS identity setup failed: %s", hp_tls_error());
		SSL_CTX_free(t->ctx);
		t->ctx = NULL;
	}
	X509_free(crt);
	EVP_PKEY_free(key);
	return rc;
}

int
tlsid_peer_spki(SSL *ssl, uint8_t *out, size_t cap, size_t *len)
{
	X509 *crt = SSL_get0_peer_certificate(ssl);
	EVP_PKEY *key;
	unsigned char *p = out;
	int n;

	if (crt == NULL || (key = X509_get0_pubkey(crt)) == NULL)
		return HP_ENOENT;
	n = i2d_PUBKEY(key, NULL);
	if (n <= 0)
		return HP_ENOENT;
	if ((size_t)n > cap)
		return HP_ETOOBIG;
	if (i2d_PUBKEY(key, &p) != n)
		return HP_ECRYPTO;
	*len = (size_t)n;
	return 0;
}

int
tlsid_binding(const char *cid, const uint8_t *spki, size_t spki_len,
    uint8_t **out, size_t *len)
{
	size_t dl = strlen(HP_PEER_TLS_DOMAIN), cl = strlen(cid);
	uint8_t *b;

	if ((b = malloc(dl + cl + spki_len)) == NULL)
		return HP_ENOMEM;
	memcpy(b, HP_PEER_TLS_DOMAIN, dl);
	memcpy(b + dl, cid, cl);
	memcpy(b + dl + cl, spki, spki_len);
	*out = b;
	*len = dl + cl + spki_len;
	return 0;
}

const char *
tlsid_error(void)
{
	return hp_tls_error();
}
