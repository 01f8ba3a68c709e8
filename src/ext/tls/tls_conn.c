/*
 * tls_conn.c - one server-side SSL over a memory BIO pair, and the growable
 * output buffer (a bytebuf) the filters hand to the socket. See tls_int.h.
 */
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext/tls/tls_int.h"

/* ---- errors ---- */

/* OpenSSL's first queued reason, plus the certificate verdict when the
 * handshake failed on a certificate. */
static void conn_why(struct tls_conn *c, const char *what, int sslerr, char *why, size_t cap)
{
	unsigned long e = ERR_peek_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;
	long vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;

	if (!reason)
		reason = sslerr == SSL_ERROR_SYSCALL ? "unexpected end of data" : "protocol error";
	if (vr != X509_V_OK && !c->handshake_done)
		snprintf(why, cap, "%s: %s (client certificate: %s)", what, reason,
			 X509_verify_cert_error_string(vr));
	else
		snprintf(why, cap, "%s: %s", what, reason);
	ERR_clear_error();
}

/* ---- the connection ---- */

int tls_conn_init(struct tls_conn *c, SSL_CTX *ctx, char *why, size_t whycap)
{
	memset(c, 0, sizeof(*c));
	ERR_clear_error();
	c->ssl = SSL_new(ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->rbio || !c->wbio) {
		snprintf(why, whycap, "TLS: out of memory");
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		SSL_free(c->ssl);
		c->ssl = NULL;
		return -1;
	}
	/* An empty read BIO means "wait for the socket", not end of stream. */
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_accept_state(c->ssl);
	return 0;
}

void tls_conn_fini(struct tls_conn *c)
{
	SSL_free(c->ssl); /* frees both BIOs */
	c->ssl = NULL;
	bytebuf_free(&c->out);
	memset(&c->out, 0, sizeof(c->out));
}

int tls_conn_feed(struct tls_conn *c, const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	return BIO_write(c->rbio, p, (int)n) == (int)n ? 0 : -1;
}

int tls_conn_handshake(struct tls_conn *c, char *why, size_t whycap)
{
	if (c->handshake_done)
		return 1;
	if (c->broken) {
		snprintf(why, whycap, "TLS handshake already failed");
		return -1;
	}
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshake_done = true;
		if (c->ready)
			c->ready(c->ready_arg, c);
		return 1;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	c->broken = true;
	conn_why(c, "TLS handshake failed", e, why, whycap);
	return -1;
}

ssize_t tls_conn_read(struct tls_conn *c, uint8_t *out, size_t cap, char *why, size_t whycap)
{
	if (c->peer_closed)
		return FILTER_EOF;
	if (c->broken) {
		snprintf(why, whycap, "TLS connection failed earlier");
		return FILTER_ERROR;
	}
	ERR_clear_error();
	int r = SSL_read(c->ssl, out, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (r > 0)
		return r;
	int e = SSL_get_error(c->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return FILTER_NONE;
	case SSL_ERROR_ZERO_RETURN:
		c->peer_closed = true;
		return FILTER_EOF;
	default:
		c->broken = true;
		conn_why(c, "TLS read failed", e, why, whycap);
		return FILTER_ERROR;
	}
}

int tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n, char *why, size_t whycap)
{
	if (c->broken || c->shut_sent) {
		snprintf(why, whycap, "TLS write after %s", c->broken ? "an error" : "close_notify");
		return -1;
	}
	ERR_clear_error();
	while (n > 0) {
		int chunk = n > 16384 ? 16384 : (int)n;
		int r = SSL_write(c->ssl, p, chunk);
		if (r <= 0) {
			/* A memory BIO takes everything: any failure is fatal. */
			c->broken = true;
			conn_why(c, "TLS write failed", SSL_get_error(c->ssl, r), why, whycap);
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

void tls_conn_shutdown(struct tls_conn *c)
{
	if (c->broken || c->shut_sent || !c->handshake_done)
		return;
	c->shut_sent = true;
	ERR_clear_error();
	/* Queues close_notify; we do not wait for the peer's here: the filter
	 * reads it like any other input (FILTER_EOF). */
	if (SSL_shutdown(c->ssl) < 0)
		ERR_clear_error();
}

size_t tls_conn_pending(struct tls_conn *c, const uint8_t **p)
{
	char *data = NULL;
	long n = BIO_get_mem_data(c->wbio, &data);
	*p = (const uint8_t *)data;
	return n > 0 ? (size_t)n : 0;
}

void tls_conn_collected(struct tls_conn *c)
{
	(void)BIO_reset(c->wbio);
}

static bool user_char_ok(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '@' || ch == '-';
}

bool tls_conn_peer_user(const struct tls_conn *c, char *out, size_t cap)
{
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	if (!peer || SSL_get_verify_result(c->ssl) != X509_V_OK)
		return false;
	char cn[256];
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
					  sizeof(cn));
	if (n <= 0 || (size_t)n >= cap)
		return false;
	for (int i = 0; i < n; i++)
		if (!user_char_ok((unsigned char)cn[i]))
			return false;
	memcpy(out, cn, (size_t)n + 1);
	return true;
}

void tls_conn_describe(const struct tls_conn *c, char *out, size_t cap)
{
	char cn[256] = "none";
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	if (peer) {
		if (SSL_get_verify_result(c->ssl) != X509_V_OK)
			snprintf(cn, sizeof(cn), "unverified");
		else if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
						   sizeof(cn)) <= 0)
			snprintf(cn, sizeof(cn), "verified-without-cn");
		for (char *q = cn; *q; q++)
			if (!user_char_ok((unsigned char)*q) && *q != ' ')
				*q = '?';
	}
	snprintf(out, cap, "version=%s cipher=%s client-cert=%s", SSL_get_version(c->ssl),
		 SSL_get_cipher_name(c->ssl), cn);
}
