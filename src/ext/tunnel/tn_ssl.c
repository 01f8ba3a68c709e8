/*
 * tn_ssl.c - the OpenSSL contexts of a tunnel. Made per tunnel: setting up
 * a tunnel costs a handshake anyway, and a context per tunnel follows the
 * config snapshot the session runs under without any shared state. The
 * files are read through privfile (privpem.h): after the drop, the broker
 * opens the root-only ones.
 */
#include "ext/tunnel/tn_int.h"

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/privpem.h"

const char *tn_ssl_error(char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, cap);
	else
		snprintf(buf, cap, "unknown TLS error");
	ERR_clear_error();
	return buf;
}

SSL_CTX *tn_client_ctx(const struct tn_conf *c, bool dtls, bool with_cert, char *err, size_t errlen)
{
	char e[256];
	SSL_CTX *ctx = SSL_CTX_new(dtls ? DTLS_client_method() : TLS_client_method());
	if (!ctx) {
		snprintf(err, errlen, "SSL_CTX_new: %s", tn_ssl_error(e, sizeof(e)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, dtls ? DTLS1_2_VERSION : TLS1_2_VERSION);
	int ok = c->ca[0] ? privpem_load_ca(ctx, c->ca, false) :
			    SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		snprintf(err, errlen, "tunnel ca %s: %s", c->ca, tn_ssl_error(e, sizeof(e)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (with_cert) {
		if (!c->client_cert[0] || !c->client_key[0]) {
			snprintf(err, errlen, "no tunnel { client-cert client-key } configured");
			SSL_CTX_free(ctx);
			return NULL;
		}
		if (privpem_use_chain(ctx, c->client_cert) != 1 ||
		    privpem_use_key(ctx, c->client_key) != 1) {
			snprintf(err, errlen, "tunnel client-cert: %s", tn_ssl_error(e, sizeof(e)));
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

SSL_CTX *tn_dtls_server_ctx(const struct tn_conf *c, char *err, size_t errlen)
{
	char e[256];
	if (!c->cert[0] || !c->key[0]) {
		snprintf(err, errlen, "no tunnel { cert key } configured for DTLS");
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(DTLS_server_method());
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) != 1 ||
	    privpem_use_chain(ctx, c->cert) != 1 || privpem_use_key(ctx, c->key) != 1) {
		snprintf(err, errlen, "tunnel DTLS cert/key: %s", tn_ssl_error(e, sizeof(e)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int tn_ssl_expect_peer(SSL *ssl, const char *host, bool is_ip)
{
	if (is_ip) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
		return X509_VERIFY_PARAM_set1_ip_asc(vp, host) == 1 ? 0 : -1;
	}
	SSL_set_tlsext_host_name(ssl, host);
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}
