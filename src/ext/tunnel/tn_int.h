/*
 * tn_int.h - the tunnel module's pieces (docs/protocol.md 5.10): the local
 * side (tn_local.c, a client's X'20'), the remote side (tn_remote.c,
 * another stpd's X'21') and the OpenSSL contexts both use (tn_ssl.c).
 */
#ifndef STP_EXT_TUNNEL_TN_INT_H
#define STP_EXT_TUNNEL_TN_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "ext/tunnel/tn_conf.h"
#include "proto/socks.h"

struct flow;
struct session;
struct sockaddr;

/* The largest datagram payload a tunnel carries. On the TLS transport the
 * remote side reads frames through the session's handshake buffer
 * (SOCKS_HANDSHAKE_MAX), which bounds it there: docs/protocol.md 5.10. */
#define TN_DGRAM_MAX 1500

void tn_local_start(struct session *s);
void tn_remote_start(struct session *s);

/* ---- the control session, both sides (tn_session.c) ---- */

/* A request codec: tunnel_setup_parse or tunnel_relay_parse's shape. */
typedef enum socks_res (*tn_parse_fn)(void *out, const uint8_t *p, size_t n, size_t *used,
				      struct socks_err *err);
/* The request's body, after the header the core consumed (cmd, DST =
 * session_target). true: parsed into out, its bytes consumed, timer
 * stopped and the control watcher cleared. false: wait for more, or it
 * was malformed (logged as "WHAT refused: ..." and answered: the session
 * is finished). */
bool tn_read_body(struct session *s, uint8_t cmd, tn_parse_fn parse, void *out, ev_timer *timer,
		  const char *what);
/* Starts w (cb, data) for timeouts { handshake } seconds (0: never). */
void tn_body_timer(struct session *s, ev_timer *w, void (*cb)(EV_P_ ev_timer *, int),
		   void *data);
/* flow_open_at; a refusal is answered (X'02', or X'01' out of memory)
 * and NULL returned: the session, and the caller's state, are gone then. */
struct flow *tn_flow_open(struct session *s, uint32_t rule_bit, uint8_t cmd,
			  const struct socks_addr *target, const struct sockaddr *resolved);
/* The control watcher once the tunnel runs: any byte ends the session. */
void tn_quiet_control(struct session *s);

/* A client context for the remote stpd: TLS (dtls false) or DTLS 1.2,
 * verifying the peer against conf->ca (the system's store when unset),
 * with the client certificate when with_cert. NULL with err filled. */
SSL_CTX *tn_client_ctx(const struct tn_conf *c, bool dtls, bool with_cert, char *err,
		       size_t errlen);
/* The DTLS 1.2 server context of the far end: conf->cert and conf->key. */
SSL_CTX *tn_dtls_server_ctx(const struct tn_conf *c, char *err, size_t errlen);
/* The peer's name or address for verification (IP SAN, or DNS name). */
int tn_ssl_expect_peer(SSL *ssl, const char *host, bool is_ip);
/* OpenSSL's first queued error as text (and the queue cleared). */
const char *tn_ssl_error(char *buf, size_t cap);

#endif
