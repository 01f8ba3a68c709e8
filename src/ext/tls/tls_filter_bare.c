/*
 * tls_filter_bare.c - TLS from the first byte ("tls on" listeners, SOCKS
 * over TLS as stunnel and gost call it): the socket carries TLS records and
 * nothing else; the SOCKS greeting is the first plaintext.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext/tls/tls_int.h"

static struct tls_filter *bare(struct stream_filter *f)
{
	return (struct tls_filter *)f;
}

/* Moves what OpenSSL wrote into the output buffer, as is. */
static int collect(struct tls_filter *b)
{
	const uint8_t *p;
	size_t n = tls_conn_pending(&b->c, &p);
	if (n == 0)
		return 0;
	if (bytebuf_append(&b->c.out, p, n, TLS_OBUF_MAX) < 0) {
		snprintf(b->base.why, sizeof(b->base.why), "TLS output exceeds %u bytes",
			 TLS_OBUF_MAX);
		b->c.broken = true;
		return -1;
	}
	tls_conn_collected(&b->c);
	return 0;
}

static int bare_input(struct stream_filter *f, const uint8_t *p, size_t n)
{
	if (tls_conn_feed(&bare(f)->c, p, n) < 0) {
		snprintf(f->why, sizeof(f->why), "TLS: out of memory");
		return -1;
	}
	return 0;
}

static ssize_t bare_read(struct stream_filter *f, uint8_t *out, size_t cap)
{
	struct tls_filter *b = bare(f);
	int h = tls_conn_handshake(&b->c, f->why, sizeof(f->why));
	ssize_t r = FILTER_NONE;
	if (h < 0)
		r = FILTER_ERROR;
	else if (h > 0)
		r = tls_conn_read(&b->c, out, cap, f->why, sizeof(f->why));
	/* Handshake flights and alerts go out even when no plaintext does. */
	if (collect(b) < 0)
		return FILTER_ERROR;
	return r;
}

static int bare_write(struct stream_filter *f, const uint8_t *p, size_t n)
{
	struct tls_filter *b = bare(f);
	if (tls_conn_write(&b->c, p, n, f->why, sizeof(f->why)) < 0)
		return -1;
	return collect(b);
}

static size_t bare_output(struct stream_filter *f, const uint8_t **p)
{
	return bytebuf_peek(&bare(f)->c.out, p);
}

static void bare_output_done(struct stream_filter *f, size_t n)
{
	bytebuf_consume(&bare(f)->c.out, n);
}

static void bare_shutdown(struct stream_filter *f)
{
	struct tls_filter *b = bare(f);
	tls_conn_shutdown(&b->c);
	collect(b);
}

static void bare_free(struct stream_filter *f)
{
	struct tls_filter *b = bare(f);
	tls_conn_fini(&b->c);
	free(b);
}

static const struct stream_filter_ops bare_ops = {
	.name = "tls",
	.input = bare_input,
	.read = bare_read,
	.write = bare_write,
	.output = bare_output,
	.output_done = bare_output_done,
	.shutdown = bare_shutdown,
	.free = bare_free,
};

struct stream_filter *tls_bare_new(SSL_CTX *ctx, void (*ready)(void *, struct tls_conn *),
				   void *arg, char *why, size_t whycap)
{
	struct tls_filter *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(why, whycap, "TLS: out of memory");
		return NULL;
	}
	if (tls_conn_init(&b->c, ctx, why, whycap) < 0) {
		free(b);
		return NULL;
	}
	b->c.ready = ready;
	b->c.ready_arg = arg;
	b->base.ops = &bare_ops;
	return &b->base;
}
