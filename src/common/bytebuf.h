/*
 * bytebuf.h - a growable byte queue: bytes are appended at the end and
 * consumed from the front. The output buffers of the TLS and GSS-API
 * filters, libstp's connections and both ends of the multiplexer are all
 * one of these, so the compact-then-grow logic lives in one place.
 */
#ifndef STP_COMMON_BYTEBUF_H
#define STP_COMMON_BYTEBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bytebuf {
	uint8_t *p;
	size_t off, len, cap; /* the queued bytes are p[off, len) */
};

/* Room for n more bytes after len: consumed bytes are reclaimed first, then
 * the buffer doubles (from 4 KiB) up to max. -1 when len + n would pass
 * max, or out of memory; the queued bytes are kept either way. */
int bytebuf_reserve(struct bytebuf *b, size_t n, size_t max);

/* bytebuf_reserve, then the n bytes of p copied in. */
int bytebuf_append(struct bytebuf *b, const void *p, size_t n, size_t max);

/* How many bytes are queued. */
static inline size_t bytebuf_used(const struct bytebuf *b)
{
	return b->len - b->off;
}

/* The queued bytes: *p points at them; returns their count. */
static inline size_t bytebuf_peek(const struct bytebuf *b, const uint8_t **p)
{
	*p = b->p + b->off;
	return b->len - b->off;
}

/* n queued bytes were used (sent, parsed): they leave the front. */
void bytebuf_consume(struct bytebuf *b, size_t n);

/* Appends what next(ctx, &chunk) yields, each chunk valid only until the
 * next call (nghttp2_session_mem_send's contract), until at least batch
 * bytes are queued or next returns 0: many small frames leave in one
 * write. -1 when next fails or out of memory. */
int bytebuf_gather(struct bytebuf *b, size_t batch, ssize_t (*next)(void *ctx, const uint8_t **chunk),
		   void *ctx);

void bytebuf_free(struct bytebuf *b);

/* bytebuf_free that zeroes the memory first: for buffers that held
 * plaintext that a protection layer keeps off the wire. */
void bytebuf_free_wipe(struct bytebuf *b);

#endif
