/*
 * mux_tls.c - a multiplexed connection (mux.c) to a TLS proxy
 * (docs/protocol.md 5.11, docs/client.md): the connection is the one a
 * plain stp_conn_open would make (conn.c: TCP, then TLS from the first
 * byte for socks5+tls://, or method X'86' with its options and
 * sub-authentication for socks5s://, client certificate from the URL's
 * cert=), then the X'30' switch inside TLS, then HTTP/2 in the same TLS
 * stream. One TLS handshake carries every stream.
 *
 *   socks5+tls://   [TLS] 05 01 M  ->  05 M  [RFC 1929]  05 30 00 01 0..0  -> reply
 *   socks5s://      05 01 86, TLS, options, [sub-auth]   [X'03'] 05 30 ...  -> reply
 *
 * When discovery says the proxy takes pipelined input (pipeline.c), the
 * messages inside TLS leave in one write after the TLS handshake: greeting,
 * RFC 1929 and X'30' (socks5+tls://), or the option list, sub-method list,
 * RFC 1929 and X'30' (X'86', conn_x86.c); else each waits for its answer.
 * The mux thread then moves HTTP/2
 * bytes through the connection object: what nghttp2 has to send is
 * gathered into records of up to 16 KiB (one SSL_write, not one record per
 * frame), and reads drain SSL's buffers as well as the socket.
 */
#include <errno.h>
#include <string.h>

#include "client/conn.h"
#include "client/mux_tls.h"
#include "common/log.h"
#include "proto/socks.h"

#define MUX_TLS_RECORD 16384 /* TLS's largest plaintext record */

static int mt_fail(enum stp_err *err, enum stp_err e)
{
	*err = e;
	return -1;
}

static const uint8_t mt_req[] = { 5, SOCKS_CMD_MUX, 0, 1, 0, 0, 0, 0, 0, 0 };

/* socks5+tls://: the greeting and RFC 1929 inside TLS, as handshake.c
 * would send them (one method offered: the one the URL's userinfo says).
 * Pipelined (the proxy takes it, pipeline.c, and will pick that method):
 * greeting, RFC 1929 and X'30' in one SSL_write; *sent says the switch
 * went too. */
static int mt_method(struct stp_conn *c, const struct stp_proxy *p, bool *sent, int64_t dl,
		     enum stp_err *err)
{
	uint8_t buf[3 + 3 + 2 * 256 + sizeof(mt_req)];
	uint8_t method = p->has_auth ? SOCKS_METHOD_USERPASS : SOCKS_METHOD_NONE;
	bool piped = client_pipe_method(p) == (int)method;
	size_t n = socks5_greeting_write(buf, sizeof(buf), &method, 1), a = 0;

	if (piped && method == SOCKS_METHOD_USERPASS &&
	    (a = socks_userpass_write(buf + n, sizeof(buf) - n, p->user, p->pass)) == 0)
		return mt_fail(err, STP_ERR_URL_USERINFO);
	if (piped) {
		memcpy(buf + n + a, mt_req, sizeof(mt_req));
		n += a + sizeof(mt_req);
		*sent = true;
		log_debug("mux: fd %d: greeting%s and X'30' in one TLS write (pipelined)", c->fd,
			  a ? ", RFC 1929" : "");
	}
	if (conn_write_all(c, buf, n, dl, err) < 0 || conn_read_exact(c, buf, 2, dl, err) < 0)
		return -1;
	if (buf[0] != 5 || buf[1] != method)
		return mt_fail(err, buf[0] == 5 && buf[1] == SOCKS_METHOD_NOACCEPT ?
					    STP_ERR_NO_METHOD :
					    STP_ERR_PROTOCOL);
	if (!piped)
		client_pipe_seen(p);
	if (method != SOCKS_METHOD_USERPASS)
		return 0;
	n = piped ? 0 : socks_userpass_write(buf, sizeof(buf), p->user, p->pass);
	if (!piped && n == 0)
		return mt_fail(err, STP_ERR_URL_USERINFO);
	if ((n > 0 && conn_write_all(c, buf, n, dl, err) < 0) ||
	    conn_read_exact(c, buf, 2, dl, err) < 0)
		return -1;
	return buf[1] == 0 ? 0 : mt_fail(err, STP_ERR_AUTH_FAILED);
}

/* X'30' (unless it went already) and its reply. A server that does not
 * know X'30' may close or answer garbage instead of X'07' (as mux.c's
 * plain switch): all of it is "not supported here", which sends muxauto.c
 * to plain connections. */
static int mt_switch(struct stp_conn *c, bool sent, int64_t dl, bool *replied, enum stp_err *err)
{
	uint8_t r[22];

	if (!sent && conn_write_all(c, mt_req, sizeof(mt_req), dl, err) < 0)
		return -1;
	if (conn_read_exact(c, r, 4, dl, err) < 0)
		return *err == STP_ERR_TIMEOUT ? -1 : mt_fail(err, STP_ERR_REP_CMD_NOT_SUPPORTED);
	size_t rest = r[3] == SOCKS_ATYP_IPV4 ? 6 : r[3] == SOCKS_ATYP_IPV6 ? 18 : 0;
	if (r[0] != 5 || rest == 0 || conn_read_exact(c, r + 4, rest, dl, err) < 0)
		return mt_fail(err, STP_ERR_REP_CMD_NOT_SUPPORTED);
	*replied = true; /* a SOCKS refusal, not a broken exchange */
	if (r[1] == 0)
		return 0;
	return mt_fail(err, r[1] == SOCKS5_REP_CMD_NOT_SUPPORTED ? STP_ERR_REP_CMD_NOT_SUPPORTED :
			    r[1] == SOCKS5_REP_NOT_ALLOWED       ? STP_ERR_REP_NOT_ALLOWED :
								   STP_ERR_REP_OTHER);
}

struct stp_conn *client_mux_tls_dial(const struct stp_proxy *p, int timeout_ms, enum stp_err *err)
{
	int64_t dl = client_deadline(timeout_ms);
	bool sent = false, replied = false;

	client_pipe_prepare(p, dl);
	/* X'86' sends X'30' behind its option list when it pipelines. */
	struct stp_conn *c = client_conn_connect_req(p, dl, mt_req, sizeof(mt_req), err);
	if (c == NULL)
		return NULL;
	sent = c->req_sent;
	if ((c->mode == STP_TLS_WRAP && mt_method(c, p, &sent, dl, err) < 0) ||
	    mt_switch(c, sent, dl, &replied, err) < 0) {
		/* Pipelined, a close or garbage may be the pipelining's fault
		 * (a refused password or a refused X'30' is not). */
		if (sent && !replied && *err != STP_ERR_AUTH_FAILED && *err != STP_ERR_TIMEOUT)
			client_pipe_forget(p);
		stp_conn_close(c);
		return NULL;
	}
	log_debug("mux: fd %d: X'30' accepted inside TLS %s (%s%s)", c->fd, c->tls.version,
		  c->mode == STP_TLS_X86 ? "method X'86'" : "TLS listener",
		  sent ? ", pipelined" : "");
	return c;
}

int client_mux_tls_send(struct stp_conn *c, nghttp2_session *h2)
{
	uint8_t rec[MUX_TLS_RECORD];
	enum stp_err e;

	for (;;) {
		int r = conn_send_some(c, &e);
		if (r <= 0)
			return r; /* -1: over; 0: the socket is full (POLLOUT) */
		/* nghttp2 hands out a frame (or a DATA frame's parts) per call,
		 * its pointer good until the next call: gather them into one
		 * record, so small frames do not cost a record each. A chunk
		 * that does not fit goes on its own, and then to the socket. */
		size_t n = 0;
		const uint8_t *data;
		ssize_t k = 0;
		while (n < sizeof(rec) && (k = nghttp2_session_mem_send(h2, &data)) > 0) {
			if ((size_t)k > sizeof(rec) - n) {
				if ((n > 0 && conn_put(c, rec, n, &e) < 0) ||
				    conn_put(c, data, (size_t)k, &e) < 0)
					return -1;
				n = 0;
				break;
			}
			memcpy(rec + n, data, (size_t)k);
			n += (size_t)k;
		}
		if (k < 0 || (n > 0 && conn_put(c, rec, n, &e) < 0))
			return -1;
		if (k == 0 && n == 0 && bytebuf_used(&c->out) == 0)
			return 0; /* nothing more to send */
	}
}

int client_mux_tls_recv(struct stp_conn *c, nghttp2_session *h2)
{
	uint8_t buf[MUX_TLS_RECORD];
	enum stp_err e;

	for (;;) {
		/* A failure sets e but may leave an old EAGAIN in errno. */
		e = STP_OK;
		errno = 0;
		ssize_t n = conn_read_some(c, buf, sizeof(buf), &e);
		if (n < 0 && e == STP_OK && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1; /* close_notify, a FIN, or a TLS error: the connection is over */
		if (nghttp2_session_mem_recv(h2, buf, (size_t)n) < 0)
			return -1;
	}
}

void client_mux_tls_goodbye(struct stp_conn *c)
{
	enum stp_err e;

	if (conn_tls_shutdown(c, &e) == 0)
		conn_send_some(c, &e);
}

bool client_mux_tls_wants_out(const struct stp_conn *c)
{
	return bytebuf_used(&c->out) > 0;
}

bool client_mux_tls_pending(const struct stp_conn *c)
{
	/* the switch's reply was read exactly: what came behind it may wait */
	return conn_tls_pending(c);
}

int client_mux_tls_fd(const struct stp_conn *c)
{
	return c->fd;
}
