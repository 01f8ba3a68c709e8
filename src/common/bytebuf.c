/*
 * bytebuf.c - the growable byte queue of bytebuf.h.
 */
#include <stdlib.h>
#include <string.h>

#include "common/bytebuf.h"

int bytebuf_reserve(struct bytebuf *b, size_t n, size_t max)
{
	size_t used = b->len - b->off;
	if (n > max || used > max - n)
		return -1; /* checked first: len + n below could wrap */
	if (b->off > 0 && used == 0)
		b->off = b->len = 0;
	if (b->cap - b->len >= n)
		return 0;
	if (b->off > 0) { /* slide the queued bytes down before growing */
		memmove(b->p, b->p + b->off, used);
		b->len = used;
		b->off = 0;
		if (b->cap - b->len >= n)
			return 0;
	}
	size_t need = b->len + n, cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap = cap > max / 2 ? max : cap * 2;
	if (cap > max)
		cap = max;
	uint8_t *q = realloc(b->p, cap);
	if (!q)
		return -1;
	b->p = q;
	b->cap = cap;
	return 0;
}

int bytebuf_append(struct bytebuf *b, const void *p, size_t n, size_t max)
{
	if (bytebuf_reserve(b, n, max) < 0)
		return -1;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

void bytebuf_consume(struct bytebuf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

int bytebuf_gather(struct bytebuf *b, size_t batch, ssize_t (*next)(void *ctx, const uint8_t **chunk),
		   void *ctx)
{
	while (bytebuf_used(b) < batch) {
		const uint8_t *chunk;
		ssize_t n = next(ctx, &chunk);
		if (n <= 0)
			return n < 0 ? -1 : 0;
		if (bytebuf_append(b, chunk, (size_t)n, SIZE_MAX) < 0)
			return -1;
	}
	return 0;
}

void bytebuf_free(struct bytebuf *b)
{
	free(b->p);
	*b = (struct bytebuf){ 0 };
}

void bytebuf_free_wipe(struct bytebuf *b)
{
	if (b->p)
		explicit_bzero(b->p, b->cap);
	bytebuf_free(b);
}
