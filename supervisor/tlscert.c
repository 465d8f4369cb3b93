/*
 * tlscert.c — the self-signed certificate `hpd new` makes for the user
 * port (ECDSA P-256, ten years, CN = the contract id).
 */
#include "hpd.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <unistd.h>

static FILE *
open_private(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	return fd < 0 ? NULL : fdopen(fd, "w");
}

int
tls_make_self_signed(const char *keypath, const char *crtpath,
    const char *common_name)
{
	EVP_PKEY *key = NULL;
	X509 *crt = NULL;
	FILE *f = NULL;
	int ok = 0;

	if ((key = EVP_EC_gen("P-256")) == NULL || (crt = X509_new()) == NULL)
		goto out;
	X509_set_version(crt, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(crt), (long)time(NULL));
	X509_gmtime_adj(X509_getm_notBefore(crt), -3600);
	X509_gmtime_adj(X509_getm_notAfter(crt), 10L * 365 * 24 * 3600);
	X509_set_pubkey(crt, key);
	X509_NAME *name = X509_get_subject_name(crt);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"hpd", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)common_name, -1, -1, 0);
	X509_set_issuer_name(crt, name);
	if (X509_sign(crt, key, EVP_sha256()) == 0)
		goto out;

	if ((f = open_private(keypath, 0600)) == NULL ||
	    !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) ||
	    fflush(f) != 0 || fsync(fileno(f)) != 0)
		goto out;
	fclose(f);
	if ((f = open_private(crtpath, 0644)) == NULL ||
	    !PEM_write_X509(f, crt) || fflush(f) != 0 || fsync(fileno(f)) != 0)
		goto out;
	ok = 1;
out:
	if (f != NULL)
		fclose(f);
	X509_free(crt);
	EVP_PKEY_free(key);
	return ok ? 0 : -1;
}
