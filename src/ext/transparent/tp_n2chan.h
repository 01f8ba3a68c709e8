/*
 * tp_n2chan.h - one N2 connection's byte stream (a Unix socket, or TCP
 * with TLS) and its message framing, shared by the control side
 * (tp_remote.c) and the relay daemon (src/relayd). Non-blocking: the
 * owner's event loop calls n2chan_fill and n2chan_flush when the socket is
 * ready; n2chan_next hands out whole messages.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "proto/n2.h"

#define N2CHAN_IN  4096
#define N2CHAN_OUT 65536 /* ~470 OPENs: enough for a burst, bounded */

struct n2chan {
	int fd;
	SSL *ssl; /* NULL on a Unix socket */
	uint8_t in[N2CHAN_IN];
	size_t inlen;
	uint8_t out[N2CHAN_OUT];
	size_t outlen;
};

void n2chan_init(struct n2chan *c, int fd, SSL *ssl);
/* Closes the socket and frees the TLS state. */
void n2chan_close(struct n2chan *c);
/* Reads what the socket has. 1: bytes came or none yet (EAGAIN); 0: the
 * peer closed; -1: error. */
int n2chan_fill(struct n2chan *c);
/* The next whole message: 1 (in *m), 0 none yet, -1 a protocol error
 * (why in *why). */
int n2chan_next(struct n2chan *c, struct n2_msg *m, const char **why);
/* Queues m: -1 when it cannot be written or the queue is full. */
int n2chan_send(struct n2chan *c, const struct n2_msg *m);
/* Writes what is queued: 0 all written, 1 some left (wait for writable),
 * -1 error. */
int n2chan_flush(struct n2chan *c);
/* TLS may hold decrypted bytes the socket no longer signals. */
bool n2chan_pending(const struct n2chan *c);
