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
 * - Checking the frame header is not enough: OpenSSL buffers, and bytes of
 *   an accepted frame may still be unused when the phase moves on (the
 *   options sent in X'01' right behind the client's Finished). So OpenSSL
 *   only ever holds TLS input of one STATE (`fed_state`): a frame of another
 *   STATE waits until OpenSSL has used up every byte of the last one
 *   (drained()), and every result is charged to that STATE: the handshake
 *   to X'01', plaintext to X'02'/X'03' as the phase says, close_notify to
 *   X'04'. A phase ends only when its input is used up.
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
	uint8_t fed_state;    /* STATE of the TLS input OpenSSL holds; 0: none yet */
	/* TLS record boundaries in what OpenSSL was fed: a record header byte
	 * count (0-4) and the body bytes still due. */
	uint8_t rec_hdr[5], rec_hdr_have;
	size_t rec_left;
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

/* The STATE whose plaintext a phase reads. */
static uint8_t phase_state(enum x86_phase ph)
{
	return ph == X86_HANDSHAKE ? TLSFRAME_HANDSHAKE :
	       ph == X86_OPTIONS ? TLSFRAME_OPTIONS : TLSFRAME_DATA;
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
	if (bytebuf_reserve(&c->out, n + (n / 16384 + 2) * TLSFRAME_HDR_LEN, TLS_OBUF_MAX) < 0)
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

/* Follows the record headers in the bytes fed to OpenSSL. */
static void track_records(struct tls_x86 *x, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (x->rec_left > 0) {
			size_t k = n < x->rec_left ? n : x->rec_left;
			x->rec_left -= k;
			p += k;
			n -= k;
			continue;
		}
		x->rec_hdr[x->rec_hdr_have++] = *p++;
		n--;
		if (x->rec_hdr_have == sizeof(x->rec_hdr)) {
			x->rec_left = (size_t)x->rec_hdr[3] << 8 | x->rec_hdr[4];
			x->rec_hdr_have = 0;
		}
	}
}

/* OpenSSL has used every byte of fed_state: the frame is complete, what it
 * was fed ends on a record boundary (our own count, so as not to depend on
 * how OpenSSL buffers part of a record it has taken from the BIO), its read
 * BIO is empty and it holds no unread record or plaintext. Only then may
 * bytes of another STATE go in. */
static bool drained(struct tls_x86 *x)
{
	struct tls_conn *c = &x->tf.c;
	return x->frame_left == 0 && x->rec_hdr_have == 0 && x->rec_left == 0 &&
	       BIO_ctrl_pending(c->rbio) == 0 && !SSL_has_pending(c->ssl);
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
			if (h.len > 0 && h.state != x->fed_state) {
				if (x->fed_state && !drained(x))
					break; /* OpenSSL still holds bytes of the last STATE */
				x->fed_state = h.state;
			}
			if (h.state == TLSFRAME_CLOSING)
				x->closing_in = true;
			x->frame_left = h.len;
			pos += u;
			continue;
		}
		size_t take = n - pos < x->frame_left ? n - pos : x->frame_left;
		if (tls_conn_feed(&x->tf.c, p + pos, take) < 0)
			return fail(x, "TLS: out of memory");
		track_records(x, p + pos, take);
		pos += take;
		x->frame_left -= take;
	}
	*used = pos;
	return 0;
}

/* Processes waiting frames as far as the phase and OpenSSL allow: 1 if
 * any byte was used, 0 if none, -1 on error. */
static int process_raw(struct tls_x86 *x)
{
	size_t used = 0;
	if (x->rawlen == 0)
		return 0;
	if (process(x, x->raw, x->rawlen, &used) < 0)
		return -1;
	memmove(x->raw, x->raw + used, x->rawlen - used);
	x->rawlen -= used;
	return used > 0;
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
	return process_raw(x) < 0 ? -1 : 0;
}

/* OpenSSL wants more bytes but the next frame cannot give them: one of a
 * later STATE (the peer skipped a step), or one of another STATE behind
 * part of a record (a record across a change of STATE). FILTER_ERROR with
 * the reason, or FILTER_NONE (wait for the socket). */
static ssize_t starved(struct tls_x86 *x)
{
	if (x->frame_left > 0 || x->rawlen < 2 || x->raw[0] != TLSFRAME_VER)
		return FILTER_NONE;
	enum verdict v = classify(x, x->raw[1]);
	if (v == V_WAIT)
		fail(x, "X'86' peer sent STATE X'%02x' while %s still needed bytes", x->raw[1],
		     phase_name(x->phase));
	else if (v == V_ACCEPT && x->raw[1] != x->fed_state && !drained(x))
		fail(x, "X'86' TLS record spans frames with STATE X'%02x' and X'%02x'",
		     x->fed_state, x->raw[1]);
	return x->failed ? FILTER_ERROR : FILTER_NONE;
}

/* Runs the handshake on what OpenSSL holds, feeding it waiting frames as
 * it uses up the last: 1 complete, 0 wants more, -1 failed. */
static int handshake_step(struct tls_x86 *x)
{
	struct tls_conn *c = &x->tf.c;
	const uint8_t *p;
	for (;;) {
		int h = tls_conn_handshake(c, x->tf.base.why, sizeof(x->tf.base.why));
		/* X'04' carries close_notify or an alert, which fail the
		 * handshake; if it moved the handshake on instead, it held
		 * handshake messages. Nothing OpenSSL answered to them is sent. */
		bool moved = h == 1 || tls_conn_pending(c, &p) > 0;
		if (h >= 0 && x->fed_state == TLSFRAME_CLOSING && moved)
			return fail(x, "X'86' frame with STATE X'04' carried %s",
				    "TLS handshake messages");
		if (collect(x) < 0 || h < 0)
			return -1;
		if (h == 1)
			return 1;
		int r = process_raw(x);
		if (r <= 0)
			return r;
	}
}

/* A phase ends only when OpenSSL has used up its STATE: a byte left would
 * be used in the next phase. (X'04' is accepted in every phase.) */
static int end_phase(struct tls_x86 *x, enum x86_phase next)
{
	if (x->fed_state && x->fed_state != TLSFRAME_CLOSING && !drained(x))
		return fail(x, "X'86' frame with STATE X'%02x' during %s", x->fed_state,
			    phase_name(next));
	x->phase = next;
	return process_raw(x) < 0 ? -1 : 0;
}

/* What OpenSSL read is charged to the STATE of the bytes it came from. */
static ssize_t check_read(struct tls_x86 *x, ssize_t r)
{
	if (r > 0 && x->fed_state == TLSFRAME_CLOSING)
		fail(x, "X'86' frame with STATE X'04' carried data");
	else if (r > 0 && x->fed_state != phase_state(x->phase))
		fail(x, "X'86' frame with STATE X'%02x' during %s", x->fed_state,
		     phase_name(x->phase));
	else if (r == FILTER_EOF && x->fed_state != TLSFRAME_CLOSING)
		fail(x, "X'86' close_notify in a frame with STATE X'%02x'", x->fed_state);
	return x->failed ? FILTER_ERROR : r;
}

static ssize_t x86_read(struct stream_filter *f, uint8_t *out, size_t cap)
{
	struct tls_x86 *x = x86(f);
	struct tls_conn *c = &x->tf.c;

	if (x->failed)
		return FILTER_ERROR;
	if (x->phase == X86_HANDSHAKE) {
		int h = handshake_step(x);
		if (h < 0)
			return FILTER_ERROR;
		if (h == 0)
			return starved(x);
		/* Our last flight went out as X'01'; what follows is X'02'.
		 * The client has nothing more to send in X'01' (2.4). */
		if (end_phase(x, X86_OPTIONS) < 0)
			return FILTER_ERROR;
	}
	for (;;) {
		ssize_t r = tls_conn_read(c, out, cap, f->why, sizeof(f->why));
		if (collect(x) < 0)
			return FILTER_ERROR;
		if (r != FILTER_NONE)
			return check_read(x, r);
		/* OpenSSL used up its input: frames that waited for that go in. */
		int more = process_raw(x);
		if (more < 0)
			return FILTER_ERROR;
		if (more == 0)
			return starved(x);
	}
}

int tls_x86_set_phase(struct stream_filter *f, enum x86_phase ph)
{
	struct tls_x86 *x = x86(f);
	if (x->failed || collect(x) < 0)
		return -1;
	return end_phase(x, ph);
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
	return bytebuf_peek(&x86(f)->tf.c.out, p);
}

static void x86_output_done(struct stream_filter *f, size_t n)
{
	bytebuf_consume(&x86(f)->tf.c.out, n);
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
