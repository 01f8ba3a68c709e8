/*
 * conn_tls.c - the client's TLS: OpenSSL 3 over a memory BIO pair, the
 * certificate checks, and the X'86' frames around the records (docs/tls.md
 * section 1):
 *
 *   +-----+-------+-----+----------+
 *   | VER | STATE | LEN |   DATA   |      VER X'01', LEN MSB first,
 *   +-----+-------+-----+----------+      DATA: TLS records
 *   |  1  |   1   |  2  | 0-65535  |
 *   +-----+-------+-----+----------+
 *
 * We send whole records only: what one SSL call wrote to wbio is framed at
 * once. We accept any cut of records into frames; STATE may only grow
 * (X'01' after our handshake is fine until the first X'02', 2.4).
 */
#include <errno.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "client/conn.h"
#include "common/log.h"
#include "proto/tlsframe.h"

static int tls_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return -1;
}

/* OpenSSL's first queued reason, or fallback. */
static const char *tls_reason(const char *fallback)
{
	unsigned long e = ERR_peek_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : fallback;
}

static bool tls_is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int tls_ctx(struct conn_tls *t, const struct stp_tls_opts *o, enum stp_err *err)
{
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (t->ctx == NULL)
		return tls_fail(err, STP_ERR_NOMEM);
	/* TLS 1.2 and 1.3 only, as stpd (docs/tls.md section 3). */
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (o->ca[0] != '\0' ? SSL_CTX_load_verify_locations(t->ctx, o->ca, NULL) != 1
			     : SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
		client_err_detail("ca=%s: %s", o->ca[0] ? o->ca : "(system store)",
				  tls_reason("cannot load"));
		return tls_fail(err, STP_ERR_TLS_CONFIG);
	}
	if (o->cert[0] != '\0' &&
	    (SSL_CTX_use_certificate_chain_file(t->ctx, o->cert) != 1 ||
	     SSL_CTX_use_PrivateKey_file(t->ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
	     SSL_CTX_check_private_key(t->ctx) != 1)) {
		client_err_detail("cert=%s key=%s: %s", o->cert, o->key, tls_reason("cannot load"));
		return tls_fail(err, STP_ERR_TLS_CONFIG);
	}
	SSL_CTX_set_verify(t->ctx, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	return 0;
}

/* The name the certificate must carry: sni=NAME, else the proxy's host. */
static int tls_names(struct conn_tls *t, const struct stp_proxy *p)
{
	const char *name = p->tls.sni[0] ? p->tls.sni : p->host;

	if (!tls_is_ip(name) && SSL_set_tlsext_host_name(t->ssl, name) != 1)
		return -1;
	if (p->tls.insecure)
		return 0;
	X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (tls_is_ip(name))
		return X509_VERIFY_PARAM_set1_ip_asc(vp, name) == 1 ? 0 : -1;
	return SSL_set1_host(t->ssl, name) == 1 ? 0 : -1;
}

int conn_tls_init(struct stp_conn *c, const struct stp_proxy *p, enum stp_err *err)
{
	struct conn_tls *t = &c->tls;

	ERR_clear_error();
	client_err_detail("%s", "");
	if (tls_ctx(t, &p->tls, err) < 0)
		return -1;
	t->ssl = SSL_new(t->ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		t->rbio = t->wbio = NULL;
		return tls_fail(err, STP_ERR_NOMEM);
	}
	/* An empty read BIO means "wait for the socket", not end of stream. */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	SSL_set_connect_state(t->ssl);
	if (tls_names(t, p) < 0) {
		client_err_detail("cannot set the expected name: %s", tls_reason("error"));
		return tls_fail(err, STP_ERR_TLS_CONFIG);
	}
	t->out_state = TLSFRAME_HANDSHAKE;
	return 0;
}

void conn_tls_free(struct stp_conn *c)
{
	SSL_free(c->tls.ssl); /* frees both BIOs */
	SSL_CTX_free(c->tls.ctx);
	c->tls.ssl = NULL;
	c->tls.ctx = NULL;
}

/* One frame's STATE, as it arrives. */
static int tls_frame_state(struct stp_conn *c, uint8_t state, enum stp_err *err)
{
	if (state < c->tls.in_state) {
		client_err_detail("X'86': proxy sent STATE X'%02X' after X'%02X'", state,
				  c->tls.in_state);
		return tls_fail(err, STP_ERR_PROTOCOL);
	}
	if (state != c->tls.in_state)
		log_debug("conn fd %d: X'86' frames from the proxy: STATE X'%02X' (%s)", c->fd,
			  state, tlsframe_state_name(state));
	c->tls.in_state = state;
	return 0;
}

/* X'86': takes headers out, passes DATA to rbio. */
static int tls_deframe(struct stp_conn *c, const uint8_t *p, size_t n, enum stp_err *err)
{
	struct conn_tls *t = &c->tls;

	while (n > 0) {
		if (t->frame_left > 0) {
			size_t k = n < t->frame_left ? n : t->frame_left;
			if (BIO_write(t->rbio, p, (int)k) != (int)k)
				return tls_fail(err, STP_ERR_NOMEM);
			t->frame_left -= k;
			p += k;
			n -= k;
			continue;
		}
		t->hdr[t->hdr_len++] = *p++;
		n--;
		struct tlsframe_hdr h;
		struct socks_err why = { 0, NULL };
		enum socks_res r = tlsframe_hdr_parse(&h, t->hdr, t->hdr_len, NULL, &why);
		if (r == SOCKS_BAD) {
			client_err_detail("X'86': bad frame from the proxy: %s", why.why);
			return tls_fail(err, STP_ERR_PROTOCOL);
		}
		if (r == SOCKS_MORE)
			continue;
		t->hdr_len = 0;
		t->frame_left = h.len;
		if (tls_frame_state(c, h.state, err) < 0)
			return -1;
	}
	return 0;
}

int conn_tls_input(struct stp_conn *c, const uint8_t *p, size_t n, enum stp_err *err)
{
	if (c->mode == STP_TLS_X86)
		return tls_deframe(c, p, n, err);
	if (n > 0 && BIO_write(c->tls.rbio, p, (int)n) != (int)n)
		return tls_fail(err, STP_ERR_NOMEM);
	return 0;
}

int conn_tls_collect(struct stp_conn *c)
{
	struct conn_tls *t = &c->tls;
	uint8_t buf[TLSFRAME_DATA_MAX];
	int n;

	while ((n = BIO_read(t->wbio, buf, sizeof(buf))) > 0) {
		if (c->mode == STP_TLS_X86) {
			uint8_t hdr[TLSFRAME_HDR_LEN];
			tlsframe_hdr_write(hdr, sizeof(hdr), t->out_state, (uint16_t)n);
			if (conn_queue(c, hdr, sizeof(hdr)) < 0)
				return -1;
		}
		if (conn_queue(c, buf, (size_t)n) < 0)
			return -1;
	}
	return 0;
}

/* Why the handshake failed, as an error value plus detail. */
static int tls_handshake_err(struct stp_conn *c, enum stp_err *err)
{
	long vr = SSL_get_verify_result(c->tls.ssl);

	if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		client_err_detail("%s (proxy %s)", X509_verify_cert_error_string(vr), c->host);
		return tls_fail(err, STP_ERR_TLS_NAME);
	}
	if (vr != X509_V_OK) {
		client_err_detail("%s", X509_verify_cert_error_string(vr));
		return tls_fail(err, STP_ERR_TLS_UNTRUSTED);
	}
	client_err_detail("%s", c->eof ? "the proxy closed the connection"
					: tls_reason("protocol error"));
	return tls_fail(err, STP_ERR_TLS_HANDSHAKE);
}

/* Reads what the socket has into rbio. 1 got bytes, 0 nothing yet
 * (EAGAIN), -1 error; c->eof at the end of the stream. */
static int tls_pull(struct stp_conn *c, enum stp_err *err)
{
	uint8_t buf[16384];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return tls_fail(err, STP_ERR_IO);
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		return conn_tls_input(c, buf, (size_t)n, err) < 0 ? -1 : 1;
	}
}

bool conn_tls_pending(const struct stp_conn *c)
{
	/* Not SSL_has_pending: it is also true for a partial record, which
	 * only the socket can complete, and a caller that polls on it would
	 * spin. What came behind an exactly read message waits in the BIO
	 * while the socket may have nothing more to wake poll. */
	return SSL_pending(c->tls.ssl) > 0 || BIO_ctrl_pending(c->tls.rbio) > 0;
}

int conn_tls_handshake(struct stp_conn *c, int64_t deadline, enum stp_err *err)
{
	struct conn_tls *t = &c->tls;

	for (;;) {
		ERR_clear_error();
		int r = SSL_do_handshake(t->ssl);
		int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
		if (conn_tls_collect(c) < 0)
			return tls_fail(err, STP_ERR_NOMEM);
		if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) {
			/* Our alert tells the proxy why (best effort). */
			enum stp_err ignored;
			conn_send_some(c, &ignored);
			return tls_handshake_err(c, err);
		}
		if (conn_write_all(c, NULL, 0, deadline, err) < 0)
			return -1;
		if (r == 1)
			break;
		int got;
		while ((got = tls_pull(c, err)) == 0 && !c->eof)
			if (conn_wait(c, POLLIN, deadline, err) < 0)
				return -1;
		if (got < 0)
			return -1;
		if (got == 0 && c->eof)
			return tls_handshake_err(c, err);
	}
	t->handshake_done = true;
	snprintf(t->version, sizeof(t->version), "%s", SSL_get_version(t->ssl));
	snprintf(t->cipher, sizeof(t->cipher), "%s", SSL_get_cipher_name(t->ssl));
	log_debug("conn fd %d: TLS %s %s with %s%s", c->fd, t->version, t->cipher, c->host,
		  SSL_get_verify_mode(t->ssl) == SSL_VERIFY_NONE ? " (not verified: insecure=1)"
								 : ", certificate verified");
	return 0;
}

ssize_t conn_tls_read(struct stp_conn *c, void *buf, size_t cap, enum stp_err *err)
{
	struct conn_tls *t = &c->tls;

	if (t->peer_closed)
		return 0;
	for (;;) {
		ERR_clear_error();
		int r = SSL_read(t->ssl, buf, cap > 65536 ? 65536 : (int)cap);
		int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
		/* Reading may answer (a key update): send that too. */
		if (conn_tls_collect(c) < 0)
			return tls_fail(err, STP_ERR_NOMEM);
		if (r > 0)
			return r;
		if (e == SSL_ERROR_ZERO_RETURN) {
			t->peer_closed = true;
			return 0;
		}
		if (e != SSL_ERROR_WANT_READ) {
			client_err_detail("TLS: %s", tls_reason("protocol error"));
			return tls_fail(err, STP_ERR_IO);
		}
		int got = tls_pull(c, err);
		if (got < 0)
			return -1;
		if (got == 0 && c->eof) {
			/* A FIN without close_notify: the end, though unsigned. */
			log_debug("conn fd %d: proxy closed without close_notify", c->fd);
			t->peer_closed = true;
			return 0;
		}
		if (got == 0) {
			errno = EAGAIN;
			return -1;
		}
	}
}

int conn_tls_write(struct stp_conn *c, const void *buf, size_t n, enum stp_err *err)
{
	const uint8_t *p = buf;

	if (c->tls.shut_sent)
		return tls_fail(err, STP_ERR_INVALID);
	while (n > 0) {
		int chunk = n > 16384 ? 16384 : (int)n;
		ERR_clear_error();
		int r = SSL_write(c->tls.ssl, p, chunk);
		if (r <= 0) {
			client_err_detail("TLS write: %s", tls_reason("failed"));
			return tls_fail(err, STP_ERR_IO);
		}
		/* Collected per record, so each frame holds whole records. */
		if (conn_tls_collect(c) < 0)
			return tls_fail(err, STP_ERR_NOMEM);
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int conn_tls_shutdown(struct stp_conn *c, enum stp_err *err)
{
	struct conn_tls *t = &c->tls;

	if (t->shut_sent || !t->handshake_done)
		return 0;
	t->shut_sent = true;
	t->out_state = TLSFRAME_CLOSING;
	ERR_clear_error();
	if (SSL_shutdown(t->ssl) < 0)
		ERR_clear_error();
	return conn_tls_collect(c) < 0 ? tls_fail(err, STP_ERR_NOMEM) : 0;
}
