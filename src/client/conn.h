/*
 * conn.h - struct stp_conn, libstp's connection object, shared by its
 * files: conn.c (open, read, write, close), conn_tls.c (OpenSSL over memory
 * BIOs, X'86' framing), conn_x86.c (method X'86' negotiation) and
 * conn_relay.c (the relay loop and the relay thread).
 *
 * OpenSSL never touches the socket: it reads ciphertext from rbio and
 * writes it to wbio, and this layer moves bytes between the BIOs and the
 * socket. That keeps the X'86' framing (VER|STATE|LEN around TLS data) in
 * one place, and lets the blocking and non-blocking paths share the code.
 */
#ifndef STP_CLIENT_CONN_H
#define STP_CLIENT_CONN_H

#include <gssapi/gssapi.h>
#include <openssl/ssl.h>
#include <poll.h>

#include "client/client.h"
#include "common/bytebuf.h"

#define CONN_OUT_MAX (256 * 1024) /* queued bytes before writes say EAGAIN */

struct conn_tls {
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *rbio, *wbio;     /* owned by ssl */
	uint8_t out_state;    /* X'86': STATE of the frames we send */
	uint8_t in_state;     /* X'86': highest STATE received so far */
	uint8_t hdr[4];       /* X'86': a frame header being read */
	size_t hdr_len;
	size_t frame_left;    /* X'86': DATA bytes of the current frame still due */
	bool handshake_done, shut_sent, peer_closed;
	char version[16], cipher[64];
};

/* Method X'01' (conn_gss.c): the context and, at levels 1 and 2, the
 * frames being read and the plaintext of the last one. */
struct conn_gss {
	bool on;              /* the method ran: the handshake engine skips its greeting */
	bool wrap;            /* levels 1, 2: data in X'03' frames */
	uint8_t level;        /* agreed */
	gss_ctx_id_t ctx;
	OM_uint32 flags, max_plain;
	uint8_t *in;          /* bytes read, not yet a whole frame */
	size_t in_len, in_cap;
	uint8_t *plain;       /* the last frame's plaintext */
	size_t plain_len, plain_off;
};

struct stp_conn {
	int fd;
	bool nonblock;
	enum stp_tls_mode mode;  /* STP_TLS_NONE: plain TCP, no conn_tls */
	struct conn_tls tls;
	struct conn_gss gss;     /* gss.on: method X'01' (never with TLS) */
	struct bytebuf out;      /* bytes for the socket: ciphertext, or plaintext */
	bool eof;                /* the socket reached its end */
	bool req_sent;           /* X'86' pipelined: the SOCKS request went with the options */
	struct stp_addr bound;
	char host[STP_NAME_MAX + 1]; /* the proxy's host, for the error text */
};

/* ---- conn.c ---- */
/* Queues n bytes for the socket. -1 when out of memory. */
int conn_queue(struct stp_conn *c, const uint8_t *p, size_t n);
/* Sends queued bytes without blocking: 1 all out, 0 some left, -1 error. */
int conn_send_some(struct stp_conn *c, enum stp_err *err);
/* Waits for events on the socket, or until the deadline. 1, or -1 with
 * *err (TIMEOUT, SYSTEM). */
int conn_wait(struct stp_conn *c, short events, int64_t deadline, enum stp_err *err);
/* Reads exactly n plaintext bytes (TLS or not) by the deadline. */
int conn_read_exact(struct stp_conn *c, uint8_t *buf, size_t n, int64_t deadline,
		    enum stp_err *err);
/* Writes n plaintext bytes and sends them by the deadline. */
int conn_write_all(struct stp_conn *c, const uint8_t *buf, size_t n, int64_t deadline,
		   enum stp_err *err);
ssize_t conn_read_some(struct stp_conn *c, void *buf, size_t cap, enum stp_err *err);

/* ---- conn_tls.c ---- */
/* Context and SSL for c->mode, verification as the options say. */
int conn_tls_init(struct stp_conn *c, const struct stp_proxy *p, enum stp_err *err);
void conn_tls_free(struct stp_conn *c);
/* Ciphertext from the socket into rbio (X'86': frame headers removed and
 * checked). -1 with *err on a framing error. */
int conn_tls_input(struct stp_conn *c, const uint8_t *p, size_t n, enum stp_err *err);
/* Moves what OpenSSL wrote to wbio into c->out (X'86': framed in
 * tls.out_state). -1 when out of memory. */
int conn_tls_collect(struct stp_conn *c);
/* The TLS handshake by the deadline; on failure *err is TLS_HANDSHAKE,
 * TLS_UNTRUSTED or TLS_NAME and stp_err_detail() has the reason. */
int conn_tls_handshake(struct stp_conn *c, int64_t deadline, enum stp_err *err);
/* SSL_read: > 0 bytes, 0 end of data, -1 with errno EAGAIN (needs input)
 * or with *err. */
ssize_t conn_tls_read(struct stp_conn *c, void *buf, size_t cap, enum stp_err *err);
int conn_tls_write(struct stp_conn *c, const void *buf, size_t n, enum stp_err *err);
/* Queues close_notify (X'86': in X'04'). */
int conn_tls_shutdown(struct stp_conn *c, enum stp_err *err);
/* Decrypted bytes SSL holds, or records still in the memory BIO: a read
 * now returns data (or consumes them) without the socket. */
bool conn_tls_pending(const struct stp_conn *c);

/* ---- conn_x86.c ---- */
/* Method X'86' up to the SOCKS request: greeting, TLS, options and
 * sub-authentication. */
int conn_x86_negotiate(struct stp_conn *c, const struct stp_proxy *p, int64_t deadline,
		       const uint8_t *req, size_t req_len, enum stp_err *err);

/* ---- conn_gss.c ---- */
/* Method X'01' up to the SOCKS request: greeting, context, level. */
int conn_gss_negotiate(struct stp_conn *c, const struct stp_proxy *p, int64_t deadline,
		       enum stp_err *err);
/* Levels 1, 2: wraps n plaintext bytes into X'03' frames queued in c->out. */
int conn_gss_write(struct stp_conn *c, const void *buf, size_t n, enum stp_err *err);
/* Levels 1, 2: plaintext, as conn_tls_read. */
ssize_t conn_gss_read(struct stp_conn *c, void *buf, size_t cap, enum stp_err *err);
/* A whole RFC 1928 UDP datagram p[0..len) <-> one X'03' frame in out
 * (cap): the length written, or -1 (does not fit, does not unwrap, a
 * replay, no confidentiality at level 2). */
ssize_t conn_gss_seal_dgram(struct stp_conn *c, const uint8_t *p, size_t len, uint8_t *out,
			    size_t cap);
ssize_t conn_gss_unseal_dgram(struct stp_conn *c, const uint8_t *p, size_t len, uint8_t *out,
			      size_t cap);
/* Plaintext (or a whole frame) is waiting without reading the socket. */
bool conn_gss_pending(const struct stp_conn *c);
void conn_gss_free(struct stp_conn *c);

/* ---- conn.c ---- */
/* Plaintext bytes into c->out, through TLS or GSS-API when there is one. */
int conn_put(struct stp_conn *c, const void *buf, size_t n, enum stp_err *err);

#endif
