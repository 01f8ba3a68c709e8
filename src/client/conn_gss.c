/*
 * conn_gss.c - method X'01' (GSS-API, RFC 1961) on the client, up to the
 * SOCKS request, then the per-message protection of every byte:
 *
 *  client                                    proxy
 *  05 01 01                         -->
 *                                   <--      05 01
 *  01 01 LEN init_sec_context token -->
 *                                   <--      01 01 LEN token   (until complete)
 *  01 02 LEN wrap(level)            -->
 *                                   <--      01 02 LEN wrap(level chosen)
 *  levels 1, 2: 01 03 LEN wrap(data) both ways; level 0: clear bytes
 *  X'01' X'FF' from the proxy at any step: refused.
 *
 * Decisions (docs/client.md): credentials are the user's default ccache
 * (KRB5CCNAME); we ask for mutual authentication, integrity and
 * confidentiality flags whatever the level; "none" is sent as level 0
 * (curl's value, which stpd reads as no per-message protection); a level
 * chosen below the one asked for ends the connection.
 */
#include <errno.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "client/conn.h"
#include "common/log.h"
#include "proto/gssframe.h"

static gss_OID_desc spnego_oid = { 6, (void *)"\x2b\x06\x01\x05\x05\x02" };

static int gss_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return -1;
}

static void gss_detail(const char *what, OM_uint32 major, OM_uint32 minor)
{
	OM_uint32 min2, mctx = 0;
	gss_buffer_desc a = GSS_C_EMPTY_BUFFER, b = GSS_C_EMPTY_BUFFER;
	gss_display_status(&min2, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &mctx, &a);
	mctx = 0;
	if (minor)
		gss_display_status(&min2, minor, GSS_C_MECH_CODE, GSS_C_NO_OID, &mctx, &b);
	client_err_detail("%s: %.*s%s%.*s", what, (int)a.length, a.value ? (char *)a.value : "?",
			  b.length ? ": " : "", (int)b.length, b.value ? (char *)b.value : "");
	gss_release_buffer(&min2, &a);
	gss_release_buffer(&min2, &b);
}

static int send_frame(struct stp_conn *c, uint8_t mtyp, const void *tok, size_t len,
		      int64_t deadline, enum stp_err *err)
{
	uint8_t hdr[GSSFRAME_HDR_LEN];
	if (len > GSSFRAME_TOKEN_MAX)
		return gss_fail(err, STP_ERR_GSS_CREDENTIALS);
	gssframe_hdr_write(hdr, sizeof(hdr), mtyp, (uint16_t)len);
	if (conn_queue(c, hdr, sizeof(hdr)) < 0 || (len && conn_queue(c, tok, len) < 0))
		return gss_fail(err, STP_ERR_NOMEM);
	return conn_write_all(c, NULL, 0, deadline, err);
}

/* One frame of type mtyp into *tok (malloc'd, *len bytes). The abort is
 * STP_ERR_GSS_REFUSED. */
static int read_frame(struct stp_conn *c, uint8_t mtyp, uint8_t **tok, size_t *len,
		      int64_t deadline, enum stp_err *err)
{
	uint8_t hdr[GSSFRAME_HDR_LEN];
	struct gssframe fr;
	*tok = NULL;
	if (conn_read_exact(c, hdr, 2, deadline, err) < 0)
		return -1;
	if (hdr[0] == GSSFRAME_VER && hdr[1] == GSSFRAME_ABORT) {
		client_err_detail("the proxy sent X'01' X'FF'");
		return gss_fail(err, STP_ERR_GSS_REFUSED);
	}
	if (conn_read_exact(c, hdr + 2, 2, deadline, err) < 0)
		return -1;
	if (gssframe_parse(&fr, hdr, sizeof(hdr), NULL, NULL) == SOCKS_BAD || hdr[1] != mtyp)
		return gss_fail(err, STP_ERR_PROTOCOL);
	*len = (size_t)hdr[2] << 8 | hdr[3];
	*tok = malloc(*len ? *len : 1);
	if (!*tok)
		return gss_fail(err, STP_ERR_NOMEM);
	if (conn_read_exact(c, *tok, *len, deadline, err) < 0) {
		free(*tok);
		*tok = NULL;
		return -1;
	}
	return 0;
}

/* The clear part: we offer X'01' only. */
static int gss_method(struct stp_conn *c, int64_t deadline, enum stp_err *err)
{
	const uint8_t methods[] = { SOCKS_METHOD_GSSAPI };
	uint8_t greet[4], choice[2], method = 0;
	size_t n = socks5_greeting_write(greet, sizeof(greet), methods, 1);

	if (conn_queue(c, greet, n) < 0)
		return gss_fail(err, STP_ERR_NOMEM);
	if (conn_write_all(c, NULL, 0, deadline, err) < 0 ||
	    conn_read_exact(c, choice, 2, deadline, err) < 0)
		return -1;
	if (socks5_choice_parse(&method, choice, 2, NULL, NULL) != SOCKS_DONE)
		return gss_fail(err, STP_ERR_PROTOCOL);
	log_debug("conn fd %d: proxy chose method %s", c->fd, socks_method_name(method));
	if (method == SOCKS_METHOD_NOACCEPT)
		return gss_fail(err, STP_ERR_NO_METHOD);
	return method == SOCKS_METHOD_GSSAPI ? 0 : gss_fail(err, STP_ERR_PROTOCOL);
}

static int import_target(const struct stp_proxy *p, gss_name_t *out)
{
	char name[2 * STP_NAME_MAX + 2];
	const char *svc = p->gss.service[0] ? p->gss.service : "rcmd";
	gss_OID type = GSS_C_NT_HOSTBASED_SERVICE;
	if (strchr(svc, '/'))
		type = GSS_KRB5_NT_PRINCIPAL_NAME, snprintf(name, sizeof(name), "%s", svc);
	else if (strchr(svc, '@'))
		snprintf(name, sizeof(name), "%s", svc);
	else
		snprintf(name, sizeof(name), "%s@%s", svc, p->host);
	OM_uint32 major, minor;
	gss_buffer_desc b = { strlen(name), name };
	major = gss_import_name(&minor, &b, type, out);
	if (GSS_ERROR(major)) {
		gss_detail(name, major, minor);
		return -1;
	}
	return 0;
}

/* RFC 1961 section 3: tokens until the context is established. */
static int gss_context(struct stp_conn *c, const struct stp_proxy *p, int64_t deadline,
		       enum stp_err *err)
{
	gss_name_t target;
	if (import_target(p, &target) < 0)
		return gss_fail(err, STP_ERR_GSS_CREDENTIALS);
	OM_uint32 major, minor, flags = 0;
	OM_uint32 want = GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG |
			 GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG;
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	uint8_t *tok = NULL;
	size_t toklen = 0;
	int rc = -1;
	for (;;) {
		gss_buffer_desc in = { toklen, tok }, out = GSS_C_EMPTY_BUFFER;
		major = gss_init_sec_context(&minor, GSS_C_NO_CREDENTIAL, &ctx, target,
					     p->gss.spnego ? &spnego_oid : (gss_OID)gss_mech_krb5,
					     want, 0, GSS_C_NO_CHANNEL_BINDINGS,
					     tok ? &in : GSS_C_NO_BUFFER, NULL, &out, &flags, NULL);
		free(tok);
		tok = NULL;
		if (GSS_ERROR(major)) {
			gss_detail("gss_init_sec_context", major, minor);
			gss_release_buffer(&minor, &out);
			gss_fail(err, STP_ERR_GSS_CREDENTIALS);
			break;
		}
		int s = out.length ?
				send_frame(c, GSSFRAME_AUTH, out.value, out.length, deadline, err) :
				0;
		gss_release_buffer(&minor, &out);
		if (s < 0)
			break;
		if (!(major & GSS_S_CONTINUE_NEEDED)) {
			rc = 0;
			break;
		}
		if (read_frame(c, GSSFRAME_AUTH, &tok, &toklen, deadline, err) < 0)
			break;
	}
	gss_release_name(&minor, &target);
	c->gss.ctx = ctx;
	c->gss.flags = flags;
	return rc;
}

/* RFC 1961 section 4. */
static int gss_level(struct stp_conn *c, const struct stp_proxy *p, int64_t deadline,
		     enum stp_err *err)
{
	OM_uint32 major, minor;
	uint8_t asked = (uint8_t)p->gss.level;
	gss_buffer_desc in = { 1, &asked }, out = GSS_C_EMPTY_BUFFER;
	major = gss_wrap(&minor, c->gss.ctx, 0, GSS_C_QOP_DEFAULT, &in, NULL, &out);
	if (GSS_ERROR(major)) {
		gss_detail("gss_wrap", major, minor);
		return gss_fail(err, STP_ERR_GSS_PROTECTION);
	}
	int s = send_frame(c, GSSFRAME_PROT, out.value, out.length, deadline, err);
	gss_release_buffer(&minor, &out);
	uint8_t *tok;
	size_t len;
	if (s < 0 || read_frame(c, GSSFRAME_PROT, &tok, &len, deadline, err) < 0)
		return -1;
	gss_buffer_desc t = { len, tok }, lv = GSS_C_EMPTY_BUFFER;
	major = gss_unwrap(&minor, c->gss.ctx, &t, &lv, NULL, NULL);
	free(tok);
	if (GSS_ERROR(major) || lv.length != 1) {
		gss_release_buffer(&minor, &lv);
		return gss_fail(err, STP_ERR_PROTOCOL);
	}
	uint8_t chosen = ((uint8_t *)lv.value)[0];
	gss_release_buffer(&minor, &lv);
	log_debug("conn fd %d: GSS-API protection asked %s, proxy chose %s", c->fd,
		  gss_level_name(asked), gss_level_name(chosen));
	if (chosen < asked || chosen > GSS_LEVEL_CONF) {
		client_err_detail("asked %s, the proxy chose %s", gss_level_name(asked),
				  gss_level_name(chosen));
		return gss_fail(err, STP_ERR_GSS_PROTECTION);
	}
	c->gss.level = chosen;
	if (chosen == GSS_LEVEL_NONE)
		return 0;
	OM_uint32 max = 0;
	major = gss_wrap_size_limit(&minor, c->gss.ctx, chosen == GSS_LEVEL_CONF, GSS_C_QOP_DEFAULT,
				    GSSFRAME_TOKEN_MAX, &max);
	if (GSS_ERROR(major) || max == 0) {
		gss_detail("gss_wrap_size_limit", major, minor);
		return gss_fail(err, STP_ERR_GSS_PROTECTION);
	}
	c->gss.max_plain = max;
	c->gss.wrap = true;
	return 0;
}

int conn_gss_negotiate(struct stp_conn *c, const struct stp_proxy *p, int64_t deadline,
		       enum stp_err *err)
{
	c->gss.on = true;
	if (gss_method(c, deadline, err) < 0 || gss_context(c, p, deadline, err) < 0)
		return -1;
	return gss_level(c, p, deadline, err);
}

/* ---- data: levels 1 and 2 ---- */

int conn_gss_write(struct stp_conn *c, const void *buf, size_t n, enum stp_err *err)
{
	const uint8_t *p = buf;
	bool conf = c->gss.level == GSS_LEVEL_CONF;
	while (n > 0) {
		size_t k = n < c->gss.max_plain ? n : c->gss.max_plain;
		OM_uint32 major, minor;
		gss_buffer_desc in = { k, (void *)p }, out = GSS_C_EMPTY_BUFFER;
		major = gss_wrap(&minor, c->gss.ctx, conf, GSS_C_QOP_DEFAULT, &in, NULL, &out);
		if (GSS_ERROR(major) || out.length > GSSFRAME_TOKEN_MAX) {
			gss_detail("gss_wrap", major, minor);
			gss_release_buffer(&minor, &out);
			return gss_fail(err, STP_ERR_GSS_PROTECTION);
		}
		uint8_t hdr[GSSFRAME_HDR_LEN];
		gssframe_hdr_write(hdr, sizeof(hdr), GSSFRAME_DATA, (uint16_t)out.length);
		int q = conn_queue(c, hdr, sizeof(hdr)) < 0 ||
			conn_queue(c, out.value, out.length) < 0;
		gss_release_buffer(&minor, &out);
		if (q)
			return gss_fail(err, STP_ERR_NOMEM);
		p += k;
		n -= k;
	}
	return 0;
}

/* A whole X'03' frame in gss.in: unwrapped into gss.plain. 1, 0 (more
 * needed), -1. */
static int unwrap_frame(struct stp_conn *c, enum stp_err *err)
{
	struct conn_gss *g = &c->gss;
	struct gssframe fr;
	size_t used = 0;
	enum socks_res r = gssframe_parse(&fr, g->in, g->in_len, &used, NULL);
	if (r == SOCKS_MORE)
		return 0;
	if (r == SOCKS_BAD || fr.mtyp != GSSFRAME_DATA) {
		client_err_detail("GSS-API: %s frame during data flow",
				  r == SOCKS_BAD ? "bad" : gssframe_mtyp_name(fr.mtyp));
		return gss_fail(err, STP_ERR_PROTOCOL);
	}
	OM_uint32 major, minor;
	int conf_state = 0;
	gss_buffer_desc in = { fr.len, (void *)fr.token }, out = GSS_C_EMPTY_BUFFER;
	major = gss_unwrap(&minor, g->ctx, &in, &out, &conf_state, NULL);
	memmove(g->in, g->in + used, g->in_len - used);
	g->in_len -= used;
	if (GSS_ERROR(major) || (g->level == GSS_LEVEL_CONF && !conf_state)) {
		gss_detail("gss_unwrap", major, minor);
		gss_release_buffer(&minor, &out);
		return gss_fail(err, STP_ERR_GSS_PROTECTION);
	}
	free(g->plain);
	g->plain = NULL;
	g->plain_len = g->plain_off = 0;
	if (out.length) {
		g->plain = malloc(out.length);
		if (!g->plain) {
			gss_release_buffer(&minor, &out);
			return gss_fail(err, STP_ERR_NOMEM);
		}
		memcpy(g->plain, out.value, out.length);
		g->plain_len = out.length;
	}
	gss_release_buffer(&minor, &out);
	return 1;
}

ssize_t conn_gss_read(struct stp_conn *c, void *buf, size_t cap, enum stp_err *err)
{
	struct conn_gss *g = &c->gss;
	for (;;) {
		if (g->plain_off < g->plain_len) {
			size_t n = g->plain_len - g->plain_off;
			if (n > cap)
				n = cap;
			memcpy(buf, g->plain + g->plain_off, n);
			g->plain_off += n;
			return (ssize_t)n;
		}
		int u = unwrap_frame(c, err);
		if (u < 0)
			return -1;
		if (u > 0)
			continue;
		if (g->in_cap < GSSFRAME_MAX) {
			uint8_t *q = realloc(g->in, GSSFRAME_MAX);
			if (!q)
				return gss_fail(err, STP_ERR_NOMEM);
			g->in = q;
			g->in_cap = GSSFRAME_MAX;
		}
		ssize_t n = recv(c->fd, g->in + g->in_len, g->in_cap - g->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -1;
		if (n < 0)
			return gss_fail(err, STP_ERR_IO);
		if (n == 0) {
			if (g->in_len > 0) {
				client_err_detail("GSS-API: the proxy closed inside a frame");
				return gss_fail(err, STP_ERR_PROTOCOL);
			}
			c->eof = true;
			return 0;
		}
		g->in_len += (size_t)n;
	}
}

bool conn_gss_pending(const struct stp_conn *c)
{
	const struct conn_gss *g = &c->gss;
	struct gssframe fr;
	return g->plain_off < g->plain_len ||
	       (g->in_len && gssframe_parse(&fr, g->in, g->in_len, NULL, NULL) != SOCKS_MORE);
}

void conn_gss_free(struct stp_conn *c)
{
	OM_uint32 minor;
	if (c->gss.ctx != GSS_C_NO_CONTEXT)
		gss_delete_sec_context(&minor, (gss_ctx_id_t *)&c->gss.ctx, GSS_C_NO_BUFFER);
	free(c->gss.in);
	free(c->gss.plain);
	memset(&c->gss, 0, sizeof(c->gss));
}

/* ---- datagrams (RFC 1961 section 5): one X'03' frame per datagram ---- */

ssize_t conn_gss_seal_dgram(struct stp_conn *c, const uint8_t *p, size_t len, uint8_t *out,
			    size_t cap)
{
	OM_uint32 major, minor;
	gss_buffer_desc in = { len, (void *)p }, w = GSS_C_EMPTY_BUFFER;
	major = gss_wrap(&minor, c->gss.ctx, c->gss.level == GSS_LEVEL_CONF, GSS_C_QOP_DEFAULT, &in,
			 NULL, &w);
	ssize_t n = -1;
	if (!GSS_ERROR(major) && w.length <= GSSFRAME_TOKEN_MAX &&
	    GSSFRAME_HDR_LEN + w.length <= cap) {
		gssframe_hdr_write(out, cap, GSSFRAME_DATA, (uint16_t)w.length);
		memcpy(out + GSSFRAME_HDR_LEN, w.value, w.length);
		n = (ssize_t)(GSSFRAME_HDR_LEN + w.length);
	}
	gss_release_buffer(&minor, &w);
	return n;
}

ssize_t conn_gss_unseal_dgram(struct stp_conn *c, const uint8_t *p, size_t len, uint8_t *out,
			      size_t cap)
{
	struct gssframe fr;
	size_t used = 0;
	if (gssframe_parse(&fr, p, len, &used, NULL) != SOCKS_DONE || used != len ||
	    fr.mtyp != GSSFRAME_DATA)
		return -1;
	OM_uint32 major, minor;
	int conf_state = 0;
	gss_buffer_desc in = { fr.len, (void *)fr.token }, u = GSS_C_EMPTY_BUFFER;
	major = gss_unwrap(&minor, c->gss.ctx, &in, &u, &conf_state, NULL);
	ssize_t n = -1;
	if (!GSS_ERROR(major) && !(major & GSS_S_DUPLICATE_TOKEN) && u.length <= cap &&
	    (conf_state || c->gss.level != GSS_LEVEL_CONF)) {
		memcpy(out, u.value, u.length);
		n = (ssize_t)u.length;
	}
	gss_release_buffer(&minor, &u);
	return n;
}
