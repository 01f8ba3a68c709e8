/*
 * mux_tls.h - the TLS connection under a multiplexed connection (mux_tls.c):
 * opened as stp_conn_open opens one (TLS from the first byte, or method
 * X'86' with its sub-authentication), switched with X'30' inside TLS, then
 * HTTP/2 through it. mux.c's thread calls these with its mutex held.
 */
#ifndef STP_CLIENT_MUX_TLS_H
#define STP_CLIENT_MUX_TLS_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>

#include "client/client.h"

/* TCP, TLS (X'86': method, options, sub-authentication), greeting and
 * RFC 1929 for socks5+tls://, X'30' and its reply: the connection ready
 * for the HTTP/2 preface, or NULL with *err as mux.c's plain switch gives
 * them (a SOCKS failure in reply to X'30' is STP_ERR_REP_*). */
struct stp_conn *client_mux_tls_dial(const struct stp_proxy *p, int timeout_ms, enum stp_err *err);
/* What nghttp2 has to send, encrypted and written without blocking:
 * 0 (done, or the socket is full: see wants_out), -1 the connection is over. */
int client_mux_tls_send(struct stp_conn *c, nghttp2_session *h2);
/* Everything readable now (socket and SSL's buffers) into nghttp2: 0, or
 * -1 the connection is over (close_notify, FIN, TLS or HTTP/2 error). */
int client_mux_tls_recv(struct stp_conn *c, nghttp2_session *h2);
/* close_notify (X'86': in an X'04' frame), sent without blocking. */
void client_mux_tls_goodbye(struct stp_conn *c);
/* Plaintext or records are buffered: read before polling the socket. */
bool client_mux_tls_pending(const struct stp_conn *c);
/* Ciphertext is queued for the socket: poll for POLLOUT. */
bool client_mux_tls_wants_out(const struct stp_conn *c);
int client_mux_tls_fd(const struct stp_conn *c);

#endif
