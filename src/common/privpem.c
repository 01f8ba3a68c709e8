/*
 * privpem.c - PEM files through privfile_open into an SSL_CTX (privpem.h).
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>

#include "common/privfile.h"
#include "common/privpem.h"

/* A PEM file as a BIO, opened through privfile_open. */
static BIO *pem_bio(const char *path)
{
	FILE *fp = privfile_fopen(path);
	if (!fp)
		return NULL;
	BIO *b = BIO_new_fp(fp, BIO_CLOSE);
	if (!b)
		fclose(fp);
	return b;
}

/* The end of the file ends a PEM sequence: not an error. */
static void clear_eof(void)
{
	unsigned long e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
		ERR_clear_error();
}

int privpem_use_chain(SSL_CTX *ctx, const char *path)
{
	BIO *b = pem_bio(path);
	X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
	int ok = x && SSL_CTX_use_certificate(ctx, x) == 1;
	X509_free(x);
	if (ok && SSL_CTX_clear_chain_certs(ctx) != 1)
		ok = 0;
	while (ok && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			X509_free(x);
			ok = 0;
		}
	}
	if (ok)
		clear_eof();
	BIO_free(b);
	return ok;
}

int privpem_use_key(SSL_CTX *ctx, const char *path)
{
	BIO *b = pem_bio(path);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	int ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1;
	EVP_PKEY_free(k);
	BIO_free(b);
	return ok;
}

int privpem_load_ca(SSL_CTX *ctx, const char *path, bool names)
{
	BIO *b = pem_bio(path);
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	X509 *x;
	int n = 0, ok = b != NULL;
	while (ok && (x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL)) != NULL) {
		ok = X509_STORE_add_cert(st, x) == 1 && (!names || SSL_CTX_add_client_CA(ctx, x) == 1);
		X509_free(x);
		n++;
	}
	if (ok && n > 0)
		clear_eof();
	BIO_free(b);
	return ok && n > 0;
}
