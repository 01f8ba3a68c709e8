/*
 * tn_chan.h - the local stpd's connection to the remote stpd (tn_local.c's
 * thread): the TLS control connection (and, for DTLS, the DTLS
 * association), non-blocking, each wait a poll(2) that also watches the
 * thread's stop descriptor and a deadline.
 */
#ifndef STP_EXT_TUNNEL_TN_CHAN_H
#define STP_EXT_TUNNEL_TN_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "ext/tunnel/tn_int.h"

#define TN_CHAN_IN  8192
#define TN_CHAN_OUT 65536

struct tn_chan {
	int tcp, dfd, stopfd;
	SSL_CTX *tctx, *dctx;
	SSL *tls, *dtls;
	uint8_t in[TN_CHAN_IN]; /* TLS plaintext read, not yet parsed */
	size_t inlen;
	uint8_t out[TN_CHAN_OUT]; /* TLS frames not yet written */
	size_t outlen;
	bool stopped;
};

void tn_chan_init(struct tn_chan *c, int stopfd);
void tn_chan_close(struct tn_chan *c);
/* Monotonic milliseconds. */
long long tn_now_ms(void);
/* Waits until fd is ready for ev (POLLIN/POLLOUT), the stop descriptor
 * fires (c->stopped, -1) or the deadline passes (-1, errno ETIMEDOUT). */
int tn_chan_wait(struct tn_chan *c, int fd, short ev, long long deadline);
/* Runs SSL_do_handshake on ssl (over fd) to the end: 0, or -1. */
int tn_chan_handshake(struct tn_chan *c, SSL *ssl, int fd, long long deadline);
/* Writes all of p on the TLS connection: 0, or -1. */
int tn_chan_write(struct tn_chan *c, const uint8_t *p, size_t n, long long deadline);
/* Reads more TLS plaintext into c->in: 0 (some came), -1 (closed: errno
 * 0 for the peer's close, else the error; or stopped / timed out). */
int tn_chan_read(struct tn_chan *c, long long deadline);
/* Reads what is there without waiting: 1 bytes came, 0 none, -1 closed. */
int tn_chan_read_now(struct tn_chan *c);
/* Queues a frame of p for the TLS transport: false when it does not fit
 * (the datagram is dropped). */
bool tn_chan_queue_frame(struct tn_chan *c, const uint8_t *p, size_t n);
/* Writes queued frames without waiting: 0, or -1 on an error. */
int tn_chan_flush(struct tn_chan *c);

#endif
