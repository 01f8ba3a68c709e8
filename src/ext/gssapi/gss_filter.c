/*
 * gss_filter.c - the stream filter of method X'01' (gss_int.h has the
 * phases). Decisions (docs/protocol.md, "Method X'01'"):
 *
 * - In WRAP, every frame the client sends must be MTYP X'03'; an abort
 *   (X'01' X'FF') or another MTYP ends the session with a log line.
 * - At level 2 a token that arrives without confidentiality is refused
 *   (a client must not downgrade what was agreed); at level 1 a token
 *   with confidentiality is accepted (it is integrity-protected too).
 * - We cut plaintext into tokens of at most max_plain bytes, the most
 *   gss_wrap_size_limit() allows for a 65535-byte token.
 * - There is no closing message in RFC 1961: shutdown queues nothing and
 *   the TCP FIN ends the stream.
 */
#include <gssapi/gssapi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext/gssapi/gss_int.h"
#include "proto/gssframe.h"

static struct gss_filter *gf(struct stream_filter *f)
{
	return (struct gss_filter *)f;
}

__attribute__((format(printf, 2, 3))) static int fail(struct gss_filter *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->base.why, sizeof(g->base.why), fmt, ap);
	va_end(ap);
	return -1;
}

void gss_status_str(OM_uint32 major, OM_uint32 minor, char *out, size_t cap)
{
	OM_uint32 min2, ctx = 0;
	gss_buffer_desc m = GSS_C_EMPTY_BUFFER, n = GSS_C_EMPTY_BUFFER;
	gss_display_status(&min2, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &m);
	ctx = 0;
	if (minor)
		gss_display_status(&min2, minor, GSS_C_MECH_CODE, GSS_C_NO_OID, &ctx, &n);
	snprintf(out, cap, "%.*s%s%.*s", (int)m.length, m.value ? (char *)m.value : "?",
		 n.length ? ": " : "", (int)n.length, n.value ? (char *)n.value : "");
	gss_release_buffer(&min2, &m);
	gss_release_buffer(&min2, &n);
}

/* ---- filter ops ---- */

static int f_input(struct stream_filter *f, const uint8_t *p, size_t n)
{
	struct gss_filter *g = gf(f);
	if (bytebuf_append(&g->in, p, n, GSS_IN_MAX) < 0)
		return fail(g, "GSS-API: input exceeds %u bytes", GSS_IN_MAX);
	return 0;
}

/* HANDSHAKE and CLEAR: bytes as they came, in HANDSHAKE never past the end
 * of the current frame. A bad header is handed out as it is: the method's
 * parser refuses it with the right log line. */
static ssize_t read_through(struct gss_filter *g, uint8_t *out, size_t cap)
{
	const uint8_t *p = g->in.p + g->in.off;
	size_t have = g->in.len - g->in.off;
	if (have == 0)
		return FILTER_NONE;
	size_t n = have;
	if (g->phase == GSS_PH_HANDSHAKE) {
		if (g->frame_left == 0) {
			if (have < GSSFRAME_ABORT_LEN)
				return FILTER_NONE;
			if (p[0] != GSSFRAME_VER || p[1] == GSSFRAME_ABORT)
				g->frame_left = GSSFRAME_ABORT_LEN;
			else if (have < GSSFRAME_HDR_LEN)
				return FILTER_NONE;
			else
				g->frame_left = GSSFRAME_HDR_LEN + ((size_t)p[2] << 8 | p[3]);
		}
		if (n > g->frame_left)
			n = g->frame_left;
		g->frame_left -= n > cap ? cap : n;
	}
	if (n > cap)
		n = cap;
	memcpy(out, p, n);
	bytebuf_consume(&g->in, n);
	return (ssize_t)n;
}

/* WRAP: the next frame's plaintext into g->plain. 1 done, 0 need more, -1. */
static int unwrap_next(struct gss_filter *g)
{
	struct gssframe fr;
	struct socks_err err = { 0 };
	size_t used = 0;
	enum socks_res r = gssframe_parse(&fr, g->in.p + g->in.off, g->in.len - g->in.off, &used,
					  &err);
	if (r == SOCKS_MORE)
		return 0;
	if (r == SOCKS_BAD)
		return fail(g, "GSS-API: bad frame: %s", err.why);
	if (fr.mtyp == GSSFRAME_ABORT)
		return fail(g, "GSS-API: client sent abort (X'01' X'FF') during data flow");
	if (fr.mtyp != GSSFRAME_DATA)
		return fail(g, "GSS-API: MTYP X'%02x' during data flow (want X'03')", fr.mtyp);
	OM_uint32 major, minor;
	int conf_state = 0;
	gss_buffer_desc in = { fr.len, (void *)fr.token }, out = GSS_C_EMPTY_BUFFER;
	major = gss_unwrap(&minor, g->ctx, &in, &out, &conf_state, NULL);
	bytebuf_consume(&g->in, used);
	if (GSS_ERROR(major)) {
		char why[120];
		gss_status_str(major, minor, why, sizeof(why));
		return fail(g, "GSS-API: gss_unwrap failed: %s", why);
	}
	if (g->conf && !conf_state) {
		gss_release_buffer(&minor, &out);
		return fail(g, "GSS-API: token without confidentiality at level 2");
	}
	int rc = bytebuf_append(&g->plain, out.value, out.length, GSS_IN_MAX);
	gss_release_buffer(&minor, &out);
	if (rc < 0)
		return fail(g, "GSS-API: plaintext exceeds %u bytes", GSS_IN_MAX);
	return 1;
}

static ssize_t f_read(struct stream_filter *f, uint8_t *out, size_t cap)
{
	struct gss_filter *g = gf(f);
	if (g->phase != GSS_PH_WRAP)
		return read_through(g, out, cap);
	/* Empty tokens are legal: keep going until plaintext or need more. */
	while (g->plain.len == g->plain.off) {
		int r = unwrap_next(g);
		if (r < 0)
			return FILTER_ERROR;
		if (r == 0)
			return FILTER_NONE;
	}
	size_t n = g->plain.len - g->plain.off;
	if (n > cap)
		n = cap;
	memcpy(out, g->plain.p + g->plain.off, n);
	bytebuf_consume(&g->plain, n);
	return (ssize_t)n;
}

static int wrap_one(struct gss_filter *g, const uint8_t *p, size_t n)
{
	OM_uint32 major, minor;
	int conf_state = 0;
	gss_buffer_desc in = { n, (void *)p }, out = GSS_C_EMPTY_BUFFER;
	major = gss_wrap(&minor, g->ctx, g->conf, GSS_C_QOP_DEFAULT, &in, &conf_state, &out);
	if (GSS_ERROR(major)) {
		char why[120];
		gss_status_str(major, minor, why, sizeof(why));
		return fail(g, "GSS-API: gss_wrap failed: %s", why);
	}
	uint8_t hdr[GSSFRAME_HDR_LEN];
	int rc = -1;
	if (out.length <= GSSFRAME_TOKEN_MAX &&
	    gssframe_hdr_write(hdr, sizeof(hdr), GSSFRAME_DATA, (uint16_t)out.length) &&
	    bytebuf_append(&g->out, hdr, sizeof(hdr), GSS_BUF_MAX) == 0 &&
	    bytebuf_append(&g->out, out.value, out.length, GSS_BUF_MAX) == 0)
		rc = 0;
	gss_release_buffer(&minor, &out);
	return rc < 0 ? fail(g, "GSS-API: output exceeds %u bytes", GSS_BUF_MAX) : 0;
}

static int f_write(struct stream_filter *f, const uint8_t *p, size_t n)
{
	struct gss_filter *g = gf(f);
	if (g->phase != GSS_PH_WRAP) {
		if (bytebuf_append(&g->out, p, n, GSS_BUF_MAX) < 0)
			return fail(g, "GSS-API: output exceeds %u bytes", GSS_BUF_MAX);
		return 0;
	}
	while (n > 0) {
		size_t k = n < g->max_plain ? n : g->max_plain;
		if (wrap_one(g, p, k) < 0)
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}

static size_t f_output(struct stream_filter *f, const uint8_t **p)
{
	struct gss_filter *g = gf(f);
	*p = g->out.p + g->out.off;
	return g->out.len - g->out.off;
}

static void f_output_done(struct stream_filter *f, size_t n)
{
	bytebuf_consume(&gf(f)->out, n);
}

static void f_shutdown(struct stream_filter *f)
{
	(void)f; /* RFC 1961 has no closing message: the FIN says it */
}

static void f_free(struct stream_filter *f)
{
	struct gss_filter *g = gf(f);
	OM_uint32 minor;
	if (g->ctx != GSS_C_NO_CONTEXT)
		gss_delete_sec_context(&minor, &g->ctx, GSS_C_NO_BUFFER);
	if (g->cred != GSS_C_NO_CREDENTIAL)
		gss_release_cred(&minor, &g->cred);
	bytebuf_free_wipe(&g->in);
	bytebuf_free_wipe(&g->plain);
	bytebuf_free_wipe(&g->out);
	bytebuf_free_wipe(&g->acc);
	free(g);
}

static const struct stream_filter_ops gss_ops = {
	.name = "gssapi",
	.input = f_input,
	.read = f_read,
	.write = f_write,
	.output = f_output,
	.output_done = f_output_done,
	.shutdown = f_shutdown,
	.free = f_free,
};

struct gss_filter *gss_filter_new(gss_cred_id_t cred)
{
	struct gss_filter *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->base.ops = &gss_ops;
	g->phase = GSS_PH_HANDSHAKE;
	g->step = GSS_STEP_CONTEXT;
	g->cred = cred;
	g->ctx = GSS_C_NO_CONTEXT;
	return g;
}

int gss_filter_protect(struct gss_filter *g, uint8_t level)
{
	if (level == GSS_LEVEL_NONE) {
		g->phase = GSS_PH_CLEAR;
		return 0;
	}
	g->conf = level == GSS_LEVEL_CONF;
	OM_uint32 major, minor, max = 0;
	major = gss_wrap_size_limit(&minor, g->ctx, g->conf, GSS_C_QOP_DEFAULT, GSSFRAME_TOKEN_MAX,
				    &max);
	if (GSS_ERROR(major) || max == 0) {
		char why[120];
		gss_status_str(major, minor, why, sizeof(why));
		return fail(g, "GSS-API: gss_wrap_size_limit failed: %s", why);
	}
	g->max_plain = max;
	g->phase = GSS_PH_WRAP;
	return 0;
}
