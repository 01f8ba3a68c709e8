/*
 * filter.h - a stream filter on the client side of a session: TLS (method
 * X'86' with its framing, or TLS from the first byte on a "tls on"
 * listener). The session and the relay move ciphertext between the socket
 * and the filter and read or write plaintext through it; the filter never
 * touches the socket (redis connection.h: one ops table for TCP and TLS).
 *
 *   socket --recv--> input() ... read()  --> plaintext for the parsers/relay
 *   socket <--send-- output()/output_done() <-- write() <-- replies/relay
 *
 * Output appears after input() too (a TLS handshake answers on its own), so
 * callers flush output() after every input() and read(), not only after
 * write().
 */
#ifndef STP_SERVER_FILTER_H
#define STP_SERVER_FILTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stream_filter;

/* read() results besides a byte count. */
#define FILTER_NONE 0     /* nothing yet: feed more input */
#define FILTER_ERROR (-1) /* protocol error: f->why says what */
#define FILTER_EOF (-2)   /* the peer closed cleanly (TLS close_notify) */

struct stream_filter_ops {
	const char *name; /* "tls" or "x86", for logs */
	/* Takes n bytes read from the socket. 0, or -1 (f->why set). */
	int (*input)(struct stream_filter *f, const uint8_t *p, size_t n);
	/* Up to cap bytes of plaintext: a count, FILTER_NONE, FILTER_ERROR or
	 * FILTER_EOF. Plaintext the filter already holds comes out before
	 * anything new is needed from the socket. */
	ssize_t (*read)(struct stream_filter *f, uint8_t *out, size_t cap);
	/* Takes n bytes of plaintext (all of them). 0, or -1 (f->why set). */
	int (*write)(struct stream_filter *f, const uint8_t *p, size_t n);
	/* Bytes waiting for the socket: count, with *p pointing at them. */
	size_t (*output)(struct stream_filter *f, const uint8_t **p);
	/* n bytes of output() were sent. */
	void (*output_done)(struct stream_filter *f, size_t n);
	/* Queues the orderly end (TLS close_notify, in a STATE X'04' frame for
	 * X'86'). Idempotent; does nothing after a protocol error. */
	void (*shutdown)(struct stream_filter *f);
	void (*free)(struct stream_filter *f);
};

struct stream_filter {
	const struct stream_filter_ops *ops;
	char why[160]; /* last error, for the log line and the close reason */
};

#endif
