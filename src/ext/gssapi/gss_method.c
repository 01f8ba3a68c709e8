/*
 * gss_method.c - method X'01' on the server (RFC 1961) and the module's
 * registration (ext_gssapi). After the method choice:
 *
 *   client                                  stpd
 *   X'01' X'01' LEN token        ------->   gss_accept_sec_context
 *                                <-------   X'01' X'01' LEN token (if any)
 *   ... until the context is established ...
 *   X'01' X'02' LEN wrap(level)  ------->
 *                                <-------   X'01' X'02' LEN wrap(level chosen)
 *   X'01' X'03' LEN wrap(request) <------>  X'01' X'03' LEN wrap(reply, data)
 *                                           (levels 1, 2; level 0: clear)
 *   any failure                  <-------   X'01' X'FF', then close
 *
 * Decisions (docs/protocol.md, "Method X'01'"):
 * - Level chosen: the client's, raised to the configured minimum; level 3
 *   (selective) is answered with 2; level 0 (curl's, not in RFC 1961) means
 *   no per-message protection and is accepted when the minimum is none.
 * - A level token of exactly one octet is taken as an unwrapped level (the
 *   NEC variant curl sends with --socks5-gssapi-nec) and answered the same
 *   way; a wrapped token is never one octet long.
 * - The context must offer what the level needs (GSS_C_INTEG_FLAG,
 *   GSS_C_CONF_FLAG), else the answer is the abort.
 * - The principal, mapped (gss_conf_map_user), becomes the session's user.
 * - Context establishment runs inside the session: gss_accept_sec_context
 *   with a keytab needs no network (the replay cache is a local file).
 */
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/gssapi/gss_conf.h"
#include "ext/gssapi/gss_int.h"
#include "proto/featdoc.h"
#include "proto/gssframe.h"
#include "server/ext.h"
#include "server/session.h"
#include "server/stats.h"

static struct gss_filter *gf_of(struct session *s)
{
	struct stream_filter *f = session_filter(s);
	return f && strcmp(f->ops->name, "gssapi") == 0 ? (struct gss_filter *)f : NULL;
}

/* The RFC 1961 refusal: X'01' X'FF', a log line, then close. */
static void refuse(struct session *s, const char *why)
{
	static struct log_rate rl = LOG_RATE_INIT("GSS-API refusal");
	char tag[SA_STR_MAX + 300];
	uint8_t abort_msg[GSSFRAME_ABORT_LEN];
	log_warnx_rl(&rl, "%s: GSS-API refused: %s", session_tag(s, tag, sizeof(tag)), why);
	stats_auth(SOCKS_METHOD_GSSAPI, STATS_BE_NONE, false);
	session_close_after_output(s, "GSS-API authentication failed");
	session_send(s, abort_msg, gssframe_abort_write(abort_msg, sizeof(abort_msg)));
}

static int send_frame(struct session *s, uint8_t mtyp, const void *tok, size_t len)
{
	uint8_t hdr[GSSFRAME_HDR_LEN];
	gssframe_hdr_write(hdr, sizeof(hdr), mtyp, (uint16_t)len);
	if (session_send(s, hdr, sizeof(hdr)) < 0)
		return -1;
	return len ? session_send(s, tok, len) : 0;
}

/* Kerberos's default keytab file, resolved at start: without a `keytab`
 * key the sessions use a copy of it, as of a named one. */
static char default_keytab[CONF_PATH_MAX];

static const char *keytab_path(const struct gss_conf *g)
{
	return g->keytab[0] ? g->keytab : default_keytab;
}

/* Acceptor credentials from the configured keytab (or the default one). */
static gss_cred_id_t acquire(const struct gss_conf *g, char *why, size_t cap)
{
	OM_uint32 major, minor;
	gss_name_t name = GSS_C_NO_NAME;
	gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
	if (g->principal[0]) {
		/* "socks/host@REALM" is a Kerberos principal; "socks@host" a
		 * host-based service name. */
		gss_buffer_desc b = { strlen(g->principal), (void *)g->principal };
		gss_OID type = strchr(g->principal, '/') ? GSS_KRB5_NT_PRINCIPAL_NAME :
							   GSS_C_NT_HOSTBASED_SERVICE;
		major = gss_import_name(&minor, &b, type, &name);
		if (GSS_ERROR(major)) {
			char st[200];
			gss_status_str(major, minor, st, sizeof(st));
			snprintf(why, cap, "principal '%.100s': %s", g->principal, st);
			return GSS_C_NO_CREDENTIAL;
		}
	}
	/* The copy of a keytab stpd's user cannot read (gss_keytab.c). */
	char kt[CONF_PATH_MAX];
	gss_keytab_begin(keytab_path(g), kt, sizeof(kt));
	gss_key_value_element_desc kv = { "keytab", kt };
	gss_key_value_set_desc store = { kt[0] ? 1 : 0, &kv };
	major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
				      GSS_C_ACCEPT, &store, &cred, NULL, NULL);
	gss_keytab_end();
	gss_release_name(&minor, &name);
	if (GSS_ERROR(major)) {
		char st[200];
		gss_status_str(major, minor, st, sizeof(st));
		snprintf(why, cap, "acceptor credentials (keytab %.150s): %s",
			 g->keytab[0] ? g->keytab : "default", st);
		return GSS_C_NO_CREDENTIAL;
	}
	return cred;
}

static bool gss_enabled(const struct stp_conf *c)
{
	return c->auth_methods & AUTH_BIT_GSSAPI;
}

static void gss_start(struct session *s)
{
	char why[400];
	if (session_filter(s)) {
		/* Stream filters do not stack (a "tls on" listener). */
		refuse(s, "not available on a TLS listener");
		return;
	}
	gss_cred_id_t cred = acquire(gss_conf_get(session_conf(s)), why, sizeof(why));
	if (cred == GSS_C_NO_CREDENTIAL) {
		refuse(s, why);
		return;
	}
	struct gss_filter *g = gss_filter_new(cred);
	if (!g) {
		OM_uint32 minor;
		gss_release_cred(&minor, &cred);
		refuse(s, "out of memory");
		return;
	}
	if (session_set_filter(s, &g->base) < 0)
		return;
	session_pump(s); /* the client may have sent its first token already */
}

static void name_of(gss_name_t n, char *out, size_t cap)
{
	OM_uint32 minor;
	gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
	if (GSS_ERROR(gss_display_name(&minor, n, &b, NULL)) || b.length == 0 || b.length >= cap ||
	    memchr(b.value, '\0', b.length))
		snprintf(out, cap, "?");
	else
		snprintf(out, cap, "%.*s", (int)b.length, (char *)b.value);
	gss_release_buffer(&minor, &b);
}

/* The first token names its mechanism (RFC 2743 section 3.1: X'60' LEN,
 * then the mech OID): SPNEGO's is 1.3.6.1.5.5.2. The accepted context
 * reports the mechanism inside SPNEGO, so the log line asks the token. */
static bool is_spnego(const struct gssframe *fr)
{
	static const uint8_t oid[] = { 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02 };
	size_t off = 2;
	if (fr->len < 2 || fr->token[0] != 0x60)
		return false;
	if (fr->token[1] & 0x80)
		off += fr->token[1] & 0x7f;
	return fr->len >= off + sizeof(oid) && memcmp(fr->token + off, oid, sizeof(oid)) == 0;
}

static void on_context_token(struct session *s, struct gss_filter *g, const struct gssframe *fr)
{
	if (g->ctx == GSS_C_NO_CONTEXT)
		g->spnego = is_spnego(fr);
	OM_uint32 major, minor, flags = 0;
	gss_buffer_desc in = { fr->len, (void *)fr->token }, out = GSS_C_EMPTY_BUFFER;
	gss_name_t src = GSS_C_NO_NAME;
	gss_OID mech = GSS_C_NO_OID;

	major = gss_accept_sec_context(&minor, &g->ctx, g->cred, &in, GSS_C_NO_CHANNEL_BINDINGS,
				       &src, &mech, &out, &flags, NULL, NULL);
	if (GSS_ERROR(major)) {
		char st[300];
		gss_status_str(major, minor, st, sizeof(st));
		gss_release_buffer(&minor, &out);
		gss_release_name(&minor, &src);
		refuse(s, st);
		return;
	}
	int rc = out.length ? send_frame(s, GSSFRAME_AUTH, out.value, out.length) : 0;
	gss_release_buffer(&minor, &out);
	if (rc < 0 || (major & GSS_S_CONTINUE_NEEDED)) {
		gss_release_name(&minor, &src);
		return;
	}
	g->flags = flags;
	name_of(src, g->principal, sizeof(g->principal));
	gss_release_name(&minor, &src);
	/* The mech the context ended with: SPNEGO reports the one inside. */
	const char *inner = mech && gss_oid_equal(mech, gss_mech_krb5) ? "krb5" : "other";
	snprintf(g->mech, sizeof(g->mech), "%s%s", g->spnego ? "spnego/" : "", inner);
	g->step = GSS_STEP_LEVEL;
}

/* The level stpd answers with, or -1 when the context cannot give it. */
static int choose_level(const struct gss_filter *g, unsigned min_level, uint8_t asked)
{
	int lv = asked == GSS_LEVEL_SELECTIVE ? GSS_LEVEL_CONF : asked;
	if (lv < (int)min_level)
		lv = (int)min_level;
	if (lv == GSS_LEVEL_INTEGRITY && !(g->flags & GSS_C_INTEG_FLAG))
		return -1;
	if (lv == GSS_LEVEL_CONF && !(g->flags & GSS_C_CONF_FLAG))
		return -1;
	return lv;
}

/* The level octet from an X'02' token: 0 or -1 (refused, why set). */
static int level_in(struct gss_filter *g, const struct gssframe *fr, uint8_t *level, char *why,
		    size_t cap)
{
	if (fr->len == 1) {
		g->nec = true;
		*level = fr->token[0];
	} else {
		OM_uint32 major, minor;
		gss_buffer_desc in = { fr->len, (void *)fr->token }, out = GSS_C_EMPTY_BUFFER;
		major = gss_unwrap(&minor, g->ctx, &in, &out, NULL, NULL);
		if (GSS_ERROR(major)) {
			char st[300];
			gss_status_str(major, minor, st, sizeof(st));
			snprintf(why, cap, "protection level message: %s", st);
			return -1;
		}
		size_t n = out.length;
		*level = n == 1 ? ((uint8_t *)out.value)[0] : 0;
		gss_release_buffer(&minor, &out);
		if (n != 1) {
			snprintf(why, cap, "protection level message holds %zu octets, not 1", n);
			return -1;
		}
	}
	if (*level > GSS_LEVEL_SELECTIVE) {
		snprintf(why, cap, "protection level X'%02x' is not defined", *level);
		return -1;
	}
	return 0;
}

/* Answers the level in the form it came in (wrapped without confidentiality). */
static int level_out(struct session *s, struct gss_filter *g, uint8_t level)
{
	if (g->nec)
		return send_frame(s, GSSFRAME_PROT, &level, 1);
	OM_uint32 major, minor;
	gss_buffer_desc in = { 1, &level }, out = GSS_C_EMPTY_BUFFER;
	major = gss_wrap(&minor, g->ctx, 0, GSS_C_QOP_DEFAULT, &in, NULL, &out);
	if (GSS_ERROR(major)) {
		char st[300];
		gss_status_str(major, minor, st, sizeof(st));
		refuse(s, st);
		return -1;
	}
	int rc = send_frame(s, GSSFRAME_PROT, out.value, out.length);
	gss_release_buffer(&minor, &out);
	return rc;
}

static void on_level(struct session *s, struct gss_filter *g, const struct gssframe *fr)
{
	char why[400], tag[SA_STR_MAX + 300], user[GSS_CONF_NAME_MAX];
	uint8_t asked;
	const struct gss_conf *conf = gss_conf_get(session_conf(s));

	if (level_in(g, fr, &asked, why, sizeof(why)) < 0) {
		refuse(s, why);
		return;
	}
	int lv = choose_level(g, conf->min_level, asked);
	if (lv < 0) {
		snprintf(why, sizeof(why), "the %s context cannot give protection level %u",
			 g->mech, asked);
		refuse(s, why);
		return;
	}
	if (level_out(s, g, (uint8_t)lv) < 0)
		return;
	if (gss_filter_protect(g, (uint8_t)lv) < 0) {
		refuse(s, g->base.why);
		return;
	}
	g->step = GSS_STEP_DONE;
	/* What only the handshake needed goes now (the frame buffer may be
	 * 64 KiB; fr pointed into it and is not used again). */
	OM_uint32 minor;
	bytebuf_free_wipe(&g->acc);
	gss_release_cred(&minor, &g->cred);
	gss_conf_map_user(conf, g->principal, user, sizeof(user));
	session_set_user(s, user);
	/* Under protection, UDP ASSOCIATE's datagrams are wrapped too (RFC
	 * 1961 section 5, gss_dgram.c). */
	if (lv != GSS_LEVEL_NONE) {
		g->guard = (struct session_dgram_guard){ gss_dgram_unseal, gss_dgram_seal, g };
		session_set_dgram_guard(s, &g->guard);
	}
	log_info("%s: GSS-API principal=%s mech=%s protection=%s (asked %s)%s",
		 session_tag(s, tag, sizeof(tag)), g->principal, g->mech,
		 gss_level_name((uint8_t)lv), gss_level_name(asked), g->nec ? " unwrapped" : "");
	/* Level 0: the filter has nothing left to do (no per-message
	 * protection); without it the relay can splice. g is freed with it. */
	if (lv == GSS_LEVEL_NONE)
		session_drop_filter(s);
	stats_auth(SOCKS_METHOD_GSSAPI, STATS_BE_GSSAPI, true);
	session_method_done(s, true);
}

static void gss_input(struct session *s)
{
	struct gss_filter *g = gf_of(s);
	if (!g || g->step == GSS_STEP_DONE)
		return;
	size_t inlen;
	const uint8_t *in = session_input(s, &inlen, NULL);
	/* The filter hands out one frame at a time: everything here belongs
	 * to the frame being collected. */
	if (bytebuf_append(&g->acc, in, inlen, GSSFRAME_MAX) < 0) {
		refuse(s, "frame too large");
		return;
	}
	session_consume(s, inlen);
	struct gssframe fr;
	struct socks_err err = { 0 };
	size_t used = 0;
	enum socks_res r = gssframe_parse(&fr, g->acc.p + g->acc.off, g->acc.len - g->acc.off,
					  &used, &err);
	if (r == SOCKS_MORE)
		return;
	if (r == SOCKS_BAD) {
		refuse(s, err.why);
		return;
	}
	if (fr.mtyp == GSSFRAME_ABORT) {
		char tag[SA_STR_MAX + 300];
		log_info("%s: GSS-API: client aborted (X'01' X'FF')",
			 session_tag(s, tag, sizeof(tag)));
		session_close(s, "GSS-API aborted by the client");
		return;
	}
	/* Consumed before it is handled (the session may be gone after); the
	 * token stays where it is until the next append. */
	bytebuf_consume(&g->acc, used);
	enum gss_step step = g->step;
	if (step == GSS_STEP_CONTEXT && fr.mtyp == GSSFRAME_AUTH)
		on_context_token(s, g, &fr);
	else if (step == GSS_STEP_LEVEL && fr.mtyp == GSSFRAME_PROT)
		on_level(s, g, &fr);
	else {
		char why[120];
		snprintf(why, sizeof(why), "MTYP X'%02x' (%s) during %s", fr.mtyp,
			 gssframe_mtyp_name(fr.mtyp),
			 step == GSS_STEP_CONTEXT ? "context establishment" : "level negotiation");
		refuse(s, why);
	}
}

/* Fail at start, not at the first client, when the keytab does not load. */
static int gss_worker_init(struct worker *w)
{
	const struct stp_conf *c = worker_conf(w);
	if (!(c->auth_methods & AUTH_BIT_GSSAPI))
		return 0;
	char why[400];
	gss_cred_id_t cred = acquire(gss_conf_get(c), why, sizeof(why));
	if (cred == GSS_C_NO_CREDENTIAL) {
		log_warnx("gssapi: %s", why);
		return -1;
	}
	OM_uint32 minor;
	gss_release_cred(&minor, &cred);
	return 0;
}

/* Whether stpd drops from root to `user` (decided at start): Kerberos,
 * running as that user, may then be unable to open the keytab. */
static bool dropping;
/* The keytab of c copied for the sessions (gss_keytab.c), when stpd
 * drops its privileges; else no copy. The default keytab is read at
 * start only: the broker opens only what the file names, so a reload
 * keeps the copy (name it with `keytab` to have reloads re-read it). */
static int keytab_copy(const struct stp_conf *c, bool reload, char *why, size_t cap)
{
	const struct gss_conf *g = gss_conf_get(c);
	const char *path = keytab_path(g);
	if (!dropping || !(c->auth_methods & AUTH_BIT_GSSAPI) || path[0] != '/') {
		gss_keytab_drop();
		return 0;
	}
	if (reload && !g->keytab[0] && gss_keytab_is(path)) {
		log_info("gssapi: keeping the copy of the default keytab %s read at start "
			 "(a `keytab` key makes reloads read it again)", path);
		return 0;
	}
	int n = gss_keytab_load(path, why, cap);
	if (n >= 0)
		log_info("gssapi: %skeytab %s read (%d keys) for stpd's user",
			 g->keytab[0] ? "" : "Kerberos's default ", path, n);
	return n;
}

/* As root, before the drop: the copy of the keytab stpd starts with. */
static int gss_server_start(const struct stp_conf *c, char *err, size_t errlen)
{
	char why[600];
	dropping = c->run_as_user[0] && geteuid() == 0;
	if (dropping)
		gss_keytab_default(default_keytab, sizeof(default_keytab));
	if (keytab_copy(c, false, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "gssapi: %s", why);
		return -1;
	}
	return 0;
}

/* A reload reads the keytab again (a rotated key, a new path), through
 * the broker when stpd's user cannot; when that fails, sessions keep the
 * copy they had if the path is the same. */
static void gss_reloaded(const struct stp_conf *c)
{
	char why[600];
	if (keytab_copy(c, true, why, sizeof(why)) < 0)
		log_warnx("gssapi: reload: %s; keeping the keys read before", why);
}

static void gss_server_stop(void)
{
	gss_keytab_drop();
}

/* Feature discovery: the mechanisms gss_accept_sec_context takes with the
 * keytab's credentials (MIT's default set: Kerberos alone or inside
 * SPNEGO), and the protection levels stpd agrees to: the configured
 * minimum and above (RFC 1961 4: 0 none, 1 integrity, 2 confidentiality). */
static void gss_describe(const struct session *s, struct feat_writer *w)
{
	static const uint8_t all[] = { 0, 1, 2 };
	unsigned min = gss_conf_get(session_conf(s))->min_level;
	const uint8_t m = SOCKS_METHOD_GSSAPI;
	if (min > 2)
		min = 2;
	feat_put_text(w, FEAT_SCOPE_METHOD, m, "mechanisms", "krb5 spnego");
	feat_put_codes(w, FEAT_SCOPE_METHOD, m, "levels", all + min, sizeof(all) - min);
	feat_put_uint(w, FEAT_SCOPE_METHOD, m, "min-level", min);
}

static const struct stp_method gss_methods[] = {
	{ SOCKS_METHOD_GSSAPI, gss_enabled, gss_start, gss_input },
};

const struct stp_ext ext_gssapi = {
	.name = "gssapi",
	.methods = gss_methods,
	.n_methods = sizeof(gss_methods) / sizeof(gss_methods[0]),
	.worker_init = gss_worker_init,
	.describe = gss_describe,
	.server_start = gss_server_start,
	.server_stop = gss_server_stop,
	.reloaded = gss_reloaded,
};
