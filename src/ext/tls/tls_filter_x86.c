/*
 * tls_filter_x86.c - method X'86': TLS records inside VER/STATE/LEN frames
 * (seed 004, "SSL record framing"). Decisions (docs/tls.md):
 *
 * - A frame may hold several TLS records and a record may span frames of
 *   the same STATE; we accept both. We send whole records only, as many as
 *   fit in one frame.
 * - Each frame's STATE is checked when the frame is processed, against the
 *   phase of the session at that moment, never when its bytes arrive: the
 *   client's last handshake flight (X'01') and its option list (X'02') often
 *   share a TCP segment, and a client may send its request (X'03') right
 *   behind its option list. A frame of a later STATE waits in `raw` until
 *   the session reaches that phase; if the session still needs bytes of the
 *   current phase when only such a frame is left, the peer skipped a step.
 * - X'04' (closing) is accepted in any phase; after it only X'04' may follow.
 * - Frames we send carry the phase's STATE: X'01' until the handshake
 *   completes, X'02' for the option answer and sub-authentication, X'03'
 *   from the SOCKS reply on, X'04' for our close_notify.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext/tls/tls_int.h"
#include "proto/tlsframe.h"

/* Frames of a later STATE we keep while the session catches up. */
#define X86_RAW_MAX (64 * 1024 + TLSFRAME_HDR_LEN)

struct tls_x86 {
	struct tls_filter tf; /* first */
	enum x86_phase phase;
	bool failed;          /* framing error: nothing more is processed or sent */
	bool closing_in;      /* the peer sent X'04' */
	uint8_t *raw;         /* unprocessed input: a partial header, waiting frames */
	size_t rawlen, rawcap;
	size_t frame_left;    /* DATA bytes of the current frame still to come */
};

enum verdict { V_ACCEPT, V_WAIT, V_REJECT };

static struct tls_x86 *x86(struct stream_filter *f)
{
	return (struct tls_x86 *)f;
}

static enum verdict classify(const struct tls_x86 *x, uint8_t state)
{
	if (x->closing_in || state == TLSFRAME_CLOSING)
		return state == TLSFRAME_CLOSING ? V_ACCEPT : V_REJECT;
	switch (x->phase) {
	case X86_HANDSHAKE:
		return state == TLSFRAME_HANDSHAKE ? V_ACCEPT : V_WAIT;
	case X86_OPTIONS:
		return state == TLSFRAME_OPTIONS ? V_ACCEPT :
		       state == TLSFRAME_DATA ? V_WAIT : V_REJECT;
	default:
		return state == TLSFRAME_DATA ? V_ACCEPT : V_REJECT;
	}
}

static const char *phase_name(enum x86_phase ph)
{
	return ph == X86_HANDSHAKE ? "the TLS handshake" :
	       ph == X86_OPTIONS ? "option negotiation" : "data flow";
}

__attribute__((format(printf, 2, 3))) static int fail(struct tls_x86 *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->tf.base.why, sizeof(x->tf.base.why), fmt, ap);
	va_end(ap);
	x->failed = true;
	return -1;
}

/* Our STATE for what we send now. */
static uint8_t out_state(const struct tls_x86 *x)
{
	if (x->tf.c.shut_sent)
		return TLSFRAME_CLOSING;
	return x->phase == X86_HANDSHAKE ? TLSFRAME_HANDSHAKE :
	       x->phase == X86_OPTIONS ? TLSFRAME_OPTIONS : TLSFRAME_DATA;
}

/* Length of the TLS record at p (header + body), or n if p holds less. */
static size_t record_len(const uint8_t *p, size_t n)
{
	if (n < 5)
		return n;
	size_t len = 5 + ((size_t)p[3] << 8 | p[4]);
	return len < n ? len : n;
}

/* Frames what OpenSSL wrote: whole records, as many per frame as fit. */
static int collect(struct tls_x86 *x)
{
	struct tls_conn *c = &x->tf.c;
	const uint8_t *p;
	size_t n = tls_conn_pending(c, &p);
	uint8_t state = out_state(x);

	if (n == 0)
		return 0;
	if (tls_obuf_reserve(&c->out, n + (n / 16384 + 2) * TLSFRAME_HDR_LEN) < 0)
		return fail(x, "TLS output exceeds %u bytes", TLS_OBUF_MAX);
	size_t off = 0;
	while (off < n) {
		size_t len = 0;
		while (off + len < n) {
			size_t r = record_len(p + off + len, n - off - len);
			if (len > 0 && len + r > TLSFRAME_DATA_MAX)
				break;
			len += r;
		}
		if (len > TLSFRAME_DATA_MAX) /* cannot happen: records are < 18 KiB */
			len = TLSFRAME_DATA_MAX;
		uint8_t *dst = c->out.p + c->out.len;
		tlsframe_hdr_write(dst, TLSFRAME_HDR_LEN, state, (uint16_t)len);
		memcpy(dst + TLSFRAME_HDR_LEN, p + off, len);
		c->out.len += TLSFRAME_HDR_LEN + len;
		off += len;
	}
	tls_conn_collected(c);
	return 0;
}

/* Processes frames from p[0..n) as far as the phase allows; *used says how
 * far. The DATA of an accepted frame streams into OpenSSL as it arrives. */
static int process(struct tls_x86 *x, const uint8_t *p, size_t n, size_t *used)
{
	size_t pos = 0;
	while (pos < n) {
		if (x->frame_left == 0) {
			struct tlsframe_hdr h;
			struct socks_err err = { 0 };
			size_t u;
			enum socks_res r = tlsframe_hdr_parse(&h, p + pos, n - pos, &u, &err);
			if (r == SOCKS_BAD)
				return fail(x, "bad X'86' frame: %s (got X'%02x')", err.why,
					    p[pos] != TLSFRAME_VER ? p[pos] : p[pos + 1]);
			if (r == SOCKS_MORE)
				break;
			enum verdict v = classify(x, h.state);
			if (v == V_WAIT)
				break;
			if (v == V_REJECT)
				return fail(x, "X'86' frame with STATE X'%02x' during %s", h.state,
					    x->closing_in ? "closing" : phase_name(x->phase));
			if (h.state == TLSFRAME_CLOSING)
				x->closing_in = true;
			x->frame_left = h.len;
			pos += u;
			continue;
		}
		size_t take = n - pos < x->frame_left ? n - pos : x->frame_left;
		if (tls_conn_feed(&x->tf.c, p + pos, take) < 0)
			return fail(x, "TLS: out of memory");
		pos += take;
		x->frame_left -= take;
	}
	*used = pos;
	return 0;
}

static int process_raw(struct tls_x86 *x)
{
	size_t used = 0;
	if (x->rawlen == 0)
		return 0;
	if (process(x, x->raw, x->rawlen, &used) < 0)
		return -1;
	memmove(x->raw, x->raw + used, x->rawlen - used);
	x->rawlen -= used;
	return 0;
}

static int x86_input(struct stream_filter *f, const uint8_t *p, size_t n)
{
	struct tls_x86 *x = x86(f);
	size_t used = 0;

	if (x->failed)
		return -1;
	if (x->rawlen == 0) {
		/* The usual case in data flow: nothing waits, parse in place. */
		if (process(x, p, n, &used) < 0)
			return -1;
		p += used;
		n -= used;
	}
	if (n == 0)
		return 0;
	if (x->rawlen + n > X86_RAW_MAX)
		return fail(x, "X'86' peer sent more than %u bytes ahead of %s", X86_RAW_MAX,
			    phase_name(x->phase));
	if (x->rawlen + n > x->rawcap) {
		/* Grows only while frames wait; most sessions hold a few bytes. */
		size_t cap = x->rawlen + n < 4096 ? 4096 : X86_RAW_MAX;
		uint8_t *q = realloc(x->raw, cap);
		if (!q)
			return fail(x, "TLS: out of memory");
		x->raw = q;
		x->rawcap = cap;
	}
	memcpy(x->raw + x->rawlen, p, n);
	x->rawlen += n;
	return process_raw(x);
}

/* A frame of a later STATE is next while the phase still wants bytes. */
static bool stalled(const struct tls_x86 *x)
{
	return x->frame_left == 0 && x->rawlen >= 2 && x->raw[0] == TLSFRAME_VER &&
	       classify(x, x->raw[1]) == V_WAIT;
}

static ssize_t stall_error(struct tls_x86 *x)
{
	fail(x, "X'86' peer sent STATE X'%02x' while %s still needed bytes", x->raw[1],
	     phase_name(x->phase));
	return FILTER_ERROR;
}

static ssize_t x86_read(struct stream_filter *f, uint8_t *out, size_t cap)
{
	struct tls_x86 *x = x86(f);
	struct tls_conn *c = &x->tf.c;

	if (x->failed)
		return FILTER_ERROR;
	if (x->phase == X86_HANDSHAKE) {
		int h = tls_conn_handshake(c, f->why, sizeof(f->why));
		if (collect(x) < 0 || h < 0)
			return FILTER_ERROR;
		if (h == 0)
			return stalled(x) ? stall_error(x) : FILTER_NONE;
		/* Our last flight went out as X'01'; what follows is X'02'. */
		x->phase = X86_OPTIONS;
		if (process_raw(x) < 0)
			return FILTER_ERROR;
	}
	ssize_t r = tls_conn_read(c, out, cap, f->why, sizeof(f->why));
	if (collect(x) < 0)
		return FILTER_ERROR;
	if (r == FILTER_NONE && stalled(x))
		return stall_error(x);
	return r;
}

int tls_x86_set_phase(struct stream_filter *f, enum x86_phase ph)
{
	struct tls_x86 *x = x86(f);
	if (x->failed || collect(x) < 0)
		return -1;
	x->phase = ph;
	return process_raw(x);
}

static int x86_write(struct stream_filter *f, const uint8_t *p, size_t n)
{
	struct tls_x86 *x = x86(f);
	if (x->failed)
		return -1;
	if (tls_conn_write(&x->tf.c, p, n, f->why, sizeof(f->why)) < 0)
		return -1;
	return collect(x);
}

static size_t x86_output(struct stream_filter *f, const uint8_t **p)
{
	return tls_obuf_get(&x86(f)->tf.c.out, p);
}

static void x86_output_done(struct stream_filter *f, size_t n)
{
	tls_obuf_done(&x86(f)->tf.c.out, n);
}

static void x86_shutdown(struct stream_filter *f)
{
	struct tls_x86 *x = x86(f);
	if (x->failed)
		return;
	collect(x); /* anything queued goes out under the old STATE */
	tls_conn_shutdown(&x->tf.c);
	collect(x);
}

static void x86_free(struct stream_filter *f)
{
	struct tls_x86 *x = x86(f);
	tls_conn_fini(&x->tf.c);
	free(x->raw);
	free(x);
}

static const struct stream_filter_ops x86_ops = {
	.name = "x86",
	.input = x86_input,
	.read = x86_read,
	.write = x86_write,
	.output = x86_output,
	.output_done = x86_output_done,
	.shutdown = x86_shutdown,
	.free = x86_free,
};

struct stream_filter *tls_x86_new(SSL_CTX *ctx, void (*ready)(void *, struct tls_conn *),
				  void *arg, char *why, size_t whycap)
{
	struct tls_x86 *x = calloc(1, sizeof(*x));
	if (!x) {
		snprintf(why, whycap, "TLS: out of memory");
		return NULL;
	}
	if (tls_conn_init(&x->tf.c, ctx, why, whycap) < 0) {
		free(x);
		return NULL;
	}
	x->tf.c.ready = ready;
	x->tf.c.ready_arg = arg;
	x->tf.base.ops = &x86_ops;
	x->phase = X86_HANDSHAKE;
	return &x->tf.base;
}
