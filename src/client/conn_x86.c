/*
 * conn_x86.c - method X'86' (seed 004) up to the SOCKS request, as stpd
 * implements it (docs/tls.md section 2):
 *
 *  client                                   proxy
 *  05 01 86                   (clear)  -->
 *                                      <--  05 86
 *  [01] TLS handshake                  <->  [01]
 *  [02] LEN OPTIONS  (01 if user:pass, 10 if udp-naked=1)
 *                                      <--  [02] LEN OPTIONS (the subset used)
 *  if X'01' was agreed:
 *  [02] 05 01 02                       -->
 *                                      <--  [02] 05 02   (or 05 FF)
 *  [02] RFC 1929 request               -->
 *                                      <--  [02] 01 00
 *  then the SOCKS request in [03] (handshake.c, through conn.c's hooks).
 *
 * Pipelined (x86_pipelined): after the TLS handshake, [02] options, sub-
 * method list and RFC 1929 request and [03] SOCKS request in one send.
 *
 * [nn] is the frame STATE; everything after the method choice is TLS.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "client/conn.h"
#include "common/log.h"
#include "proto/tlsframe.h"

static int x86_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return -1;
}

/* The clear part: we offer X'86' only (X'06' is accepted back: the same). */
static int x86_method(struct stp_conn *c, int64_t deadline, enum stp_err *err)
{
	const uint8_t methods[] = { SOCKS_METHOD_SSL };
	uint8_t greet[4], choice[2], method = 0;
	size_t n = socks5_greeting_write(greet, sizeof(greet), methods, 1);

	if (conn_queue(c, greet, n) < 0)
		return x86_fail(err, STP_ERR_NOMEM);
	if (conn_write_all(c, NULL, 0, deadline, err) < 0)
		return -1;
	/* Exactly two bytes: the proxy's TLS starts only after our hello. */
	for (size_t got = 0; got < 2;) {
		ssize_t r = recv(c->fd, choice + got, 2 - got, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (conn_wait(c, POLLIN, deadline, err) < 0)
				return -1;
			continue;
		}
		if (r <= 0)
			return x86_fail(err, r == 0 ? STP_ERR_PROXY_CLOSED : STP_ERR_IO);
		got += (size_t)r;
	}
	if (socks5_choice_parse(&method, choice, 2, NULL, NULL) != SOCKS_DONE)
		return x86_fail(err, STP_ERR_PROTOCOL);
	log_debug("conn fd %d: proxy chose method %s", c->fd, socks_method_name(method));
	if (method == SOCKS_METHOD_NOACCEPT)
		return x86_fail(err, STP_ERR_NO_METHOD);
	if (method != SOCKS_METHOD_SSL && method != SOCKS_METHOD_SSL_IANA)
		return x86_fail(err, STP_ERR_PROTOCOL);
	return 0;
}

/* Sends our option list. */
static int x86_options(struct stp_conn *c, const struct stp_proxy *p, int64_t deadline,
		       enum stp_err *err)
{
	uint8_t opts[2], msg[2 + 1];
	size_t n = 0;

	if (p->has_auth)
		opts[n++] = TLSOPT_SUBAUTH;
	if (p->tls.udp_naked)
		opts[n++] = TLSOPT_UDP_NAKED;
	n = tlsopt_write(msg, sizeof(msg), opts, n);
	return conn_write_all(c, msg, n, deadline, err);
}

/* Sub-authentication: RFC 1928 method choice, then RFC 1929, in X'02'.
 * The method that ran, or -1. */
static int x86_subauth(struct stp_conn *c, const struct stp_proxy *p, int64_t deadline,
		       enum stp_err *err)
{
	const uint8_t methods[] = { SOCKS_METHOD_USERPASS };
	uint8_t buf[3 + 2 * 256], reply[2], method = 0, status = 0xFF;
	size_t n = socks5_greeting_write(buf, sizeof(buf), methods, 1);

	if (conn_write_all(c, buf, n, deadline, err) < 0 ||
	    conn_read_exact(c, reply, 2, deadline, err) < 0)
		return -1;
	if (socks5_choice_parse(&method, reply, 2, NULL, NULL) != SOCKS_DONE)
		return x86_fail(err, STP_ERR_PROTOCOL);
	if (method == SOCKS_METHOD_NOACCEPT)
		return x86_fail(err, STP_ERR_NO_METHOD);
	if (method == SOCKS_METHOD_NONE)
		return SOCKS_METHOD_NONE;
	if (method != SOCKS_METHOD_USERPASS)
		return x86_fail(err, STP_ERR_PROTOCOL);
	n = socks_userpass_write(buf, sizeof(buf), p->user, p->pass);
	if (n == 0)
		return x86_fail(err, STP_ERR_URL_USERINFO);
	if (conn_write_all(c, buf, n, deadline, err) < 0 ||
	    conn_read_exact(c, reply, 2, deadline, err) < 0)
		return -1;
	if (socks_userpass_status_parse(&status, reply, 2, NULL, NULL) != SOCKS_DONE)
		return x86_fail(err, STP_ERR_PROTOCOL);
	return status == 0 ? SOCKS_METHOD_USERPASS : x86_fail(err, STP_ERR_AUTH_FAILED);
}

/* The proxy's option answer (both paths). */
static int x86_read_options(struct stp_conn *c, struct tlsopt_list *agreed, int64_t deadline,
			    enum stp_err *err)
{
	uint8_t answer[1 + 255];

	if (conn_read_exact(c, answer, 1, deadline, err) < 0 ||
	    conn_read_exact(c, answer + 1, answer[0], deadline, err) < 0)
		return -1;
	tlsopt_parse(agreed, answer, 1u + answer[0], NULL, NULL);
	log_debug("conn fd %d: X'86' options agreed: %u of them%s%s", c->fd, agreed->n,
		  tlsopt_has(agreed, TLSOPT_SUBAUTH) ? ", subauthentication" : "",
		  tlsopt_has(agreed, TLSOPT_UDP_NAKED) ? ", UDP-Naked" : "");
	return 0;
}

/*
 * Pipelined (docs/protocol.md 5.11, docs/tls.md 2.5), when discovery says
 * the proxy takes it and the last step-by-step negotiation with these
 * credentials showed what the proxy runs (sub = X'02': sub-authentication
 * by RFC 1929; -1: none): in X'02' the option list and, for X'02', the
 * sub-method list and the RFC 1929 request; then the SOCKS request (when
 * the caller has one) in X'03'; all of it leaves in one send. Exactly the bytes the step-by-step path sends, only earlier: the
 * proxy keeps the X'03' frame until its last X'02' message is out.
 */
static int x86_pipelined(struct stp_conn *c, const struct stp_proxy *p, int sub,
			 const uint8_t *req, size_t req_len, int64_t deadline, enum stp_err *err)
{
	const uint8_t methods[] = { SOCKS_METHOD_USERPASS };
	uint8_t buf[3 + 3 + 3 + 2 * 256], opts[2], reply[2], status = 0xFF;
	struct tlsopt_list agreed;
	size_t o = 0, n;

	if (p->has_auth)
		opts[o++] = TLSOPT_SUBAUTH;
	if (p->tls.udp_naked)
		opts[o++] = TLSOPT_UDP_NAKED;
	/* One record per message: stpd before 2026-12 read a sub-method list
	 * that shared its record with the option list only when more input
	 * came (tls_method.c); records of one send cost no round trip. */
	n = tlsopt_write(buf, sizeof(buf), opts, o);
	if (conn_put(c, buf, n, err) < 0)
		return -1;
	if (sub == SOCKS_METHOD_USERPASS) {
		n = socks5_greeting_write(buf, sizeof(buf), methods, 1);
		if (conn_put(c, buf, n, err) < 0)
			return -1;
		n = socks_userpass_write(buf, sizeof(buf), p->user, p->pass);
		if (n == 0)
			return x86_fail(err, STP_ERR_URL_USERINFO);
		if (conn_put(c, buf, n, err) < 0)
			return -1;
	}
	if (req != NULL && req_len > 0) {
		c->tls.out_state = TLSFRAME_DATA;
		if (conn_put(c, req, req_len, err) < 0)
			return -1;
		c->req_sent = true;
	}
	log_debug("conn fd %d: X'86' options%s%s in one write (pipelined)", c->fd,
		  sub == SOCKS_METHOD_USERPASS ? ", sub-authentication" : "",
		  c->req_sent ? ", request" : "");
	if (conn_write_all(c, NULL, 0, deadline, err) < 0 ||
	    x86_read_options(c, &agreed, deadline, err) < 0)
		return -1;
	/* What runs must be what we sent for: else the proxy takes our bytes
	 * as a skipped or a superfluous step and closes anyway. */
	if (tlsopt_has(&agreed, TLSOPT_SUBAUTH) != (sub == SOCKS_METHOD_USERPASS))
		return x86_fail(err, STP_ERR_PROTOCOL);
	if (sub != SOCKS_METHOD_USERPASS)
		return 0;
	if (conn_read_exact(c, reply, 2, deadline, err) < 0)
		return -1;
	if (reply[0] != SOCKS5_VER || reply[1] != SOCKS_METHOD_USERPASS)
		return x86_fail(err, reply[0] == SOCKS5_VER && reply[1] == SOCKS_METHOD_NOACCEPT ?
					     STP_ERR_NO_METHOD :
					     STP_ERR_PROTOCOL);
	if (conn_read_exact(c, reply, 2, deadline, err) < 0)
		return -1;
	if (socks_userpass_status_parse(&status, reply, 2, NULL, NULL) != SOCKS_DONE)
		return x86_fail(err, STP_ERR_PROTOCOL);
	return status == 0 ? 0 : x86_fail(err, STP_ERR_AUTH_FAILED);
}

/* Step by step: the option list, then sub-authentication when agreed. *sub
 * is what ran, for the next negotiation to pipeline. */
static int x86_stepwise(struct stp_conn *c, const struct stp_proxy *p, int *sub,
			int64_t deadline, enum stp_err *err)
{
	struct tlsopt_list agreed;

	if (x86_options(c, p, deadline, err) < 0 || x86_read_options(c, &agreed, deadline, err) < 0) {
		/* TLS 1.3: a refused client certificate shows up here, as an
		 * alert after our side of the handshake was done. */
		if (*err == STP_ERR_IO)
			*err = STP_ERR_TLS_HANDSHAKE;
		return -1;
	}
	if (tlsopt_has(&agreed, TLSOPT_SUBAUTH)) {
		*sub = x86_subauth(c, p, deadline, err);
		if (*sub < 0)
			return -1;
	}
	if (p->tls.udp_naked && !tlsopt_has(&agreed, TLSOPT_UDP_NAKED))
		log_debug("conn fd %d: the proxy did not agree to UDP-Naked", c->fd);
	return 0;
}

int conn_x86_negotiate(struct stp_conn *c, const struct stp_proxy *p, int64_t deadline,
		       const uint8_t *req, size_t req_len, enum stp_err *err)
{
	int plan = client_pipe_x86(p), sub = -1, r;

	if (x86_method(c, deadline, err) < 0 || conn_tls_handshake(c, deadline, err) < 0)
		return -1;
	c->tls.out_state = TLSFRAME_OPTIONS;
	if (plan != -2)
		r = x86_pipelined(c, p, plan, req, req_len, deadline, err);
	else
		r = x86_stepwise(c, p, &sub, deadline, err);
	if (r < 0) {
		/* Failures pipelining may explain (not a refused password):
		 * the next negotiations with this proxy go step by step. */
		if (plan != -2 && (*err == STP_ERR_PROTOCOL || *err == STP_ERR_NO_METHOD ||
				   *err == STP_ERR_PROXY_CLOSED || *err == STP_ERR_IO))
			client_pipe_forget(p);
		/* As x86_stepwise: a refused client certificate (TLS 1.3). */
		if (plan != -2 && *err == STP_ERR_IO)
			*err = STP_ERR_TLS_HANDSHAKE;
		return -1;
	}
	if (plan == -2)
		client_pipe_x86_seen(p, sub);
	c->tls.out_state = TLSFRAME_DATA;
	return 0;
}
