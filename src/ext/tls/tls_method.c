/*
 * tls_method.c - method X'86' (and its IANA code X'06') on the server, the
 * "tls on" listener hook, and the module's registration (ext_tls).
 *
 * Method X'86' after the method choice (docs/tls.md has the whole wire):
 *
 *   client                                   stpd
 *   X'01' frames: TLS handshake   <------>   X'01' frames
 *   X'02': LEN OPTIONS            ------->
 *                                 <-------   X'02': LEN OPTIONS (the subset)
 *   [sub-authentication, X'02' frames:
 *    X'05' NMETHODS METHODS       ------->
 *                                 <-------   X'05' METHOD (X'FF': none, then close)
 *    e.g. RFC 1929 request        <------>   RFC 1929 status]
 *   X'03': SOCKS request, data    <------>   X'03': reply, data
 *   X'04': close_notify           <------>   X'04': close_notify
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/tls/tls_int.h"
#include "proto/featdoc.h"
#include "proto/tlsframe.h"
#include "server/ext.h"
#include "server/session.h"

enum x86_step { STEP_OPTIONS, STEP_SUBMETHODS, STEP_SUB };

static void settings_of(const struct session *s, struct tls_settings *t)
{
	tls_settings_get(session_conf(s), session_listener(s), session_client_rule(s), t);
}

static struct tls_filter *tf_of(struct session *s)
{
	return (struct tls_filter *)session_filter(s);
}

static void warn(struct session *s, const char *what)
{
	static struct log_rate rl = LOG_RATE_INIT("TLS session error");
	char tag[SA_STR_MAX + 300];
	log_warnx_rl(&rl, "%s: %s", session_tag(s, tag, sizeof(tag)), what);
}

/* Ends the session once what is queued is written (then close_notify). */
static void close_after(struct session *s, const char *reason)
{
	session_close_after_output(s, reason);
}

/* Handshake complete: the user from the client certificate, one log line. */
static void on_ready(void *arg, struct tls_conn *c)
{
	struct session *s = arg;
	struct tls_settings t;
	char desc[400], tag[SA_STR_MAX + 300];

	settings_of(s, &t);
	char user[256];
	if (t.cert_user && !session_user(s)[0] && tls_conn_peer_user(c, user, sizeof(user)))
		session_set_user(s, user);
	tls_conn_describe(c, desc, sizeof(desc));
	log_info("%s: TLS %s %s", session_tag(s, tag, sizeof(tag)),
		 session_filter(s) && session_filter(s)->ops->name[0] == 'x' ? "X'86'" : "listener",
		 desc);
}

static SSL_CTX *ctx_for(struct session *s, const struct tls_settings *t)
{
	char err[600];
	SSL_CTX *ctx = tls_ctx_get(&t->params, err, sizeof(err));
	if (!ctx)
		warn(s, err);
	return ctx;
}

/* ---- "tls on" listeners ---- */

static int tls_session_open(struct session *s)
{
	struct tls_settings t;
	char why[200];

	settings_of(s, &t);
	session_require_tls(s, t.require_tls);
	if (!t.listener_tls)
		return 0;
	SSL_CTX *ctx = ctx_for(s, &t);
	if (!ctx) {
		session_close(s, "TLS not available");
		return -1;
	}
	struct stream_filter *f = tls_bare_new(ctx, on_ready, s, why, sizeof(why));
	SSL_CTX_free(ctx); /* the SSL holds its own reference */
	if (!f) {
		warn(s, why);
		session_close(s, why);
		return -1;
	}
	return session_set_filter(s, f);
}

/* ---- method X'86' ---- */

static bool ssl_enabled(const struct stp_conf *c)
{
	struct tls_settings t;
	tls_settings_get(c, NULL, NULL, &t);
	return t.method_ssl;
}

static void ssl_start(struct session *s)
{
	struct tls_settings t;
	char why[200];

	settings_of(s, &t);
	SSL_CTX *ctx = ctx_for(s, &t);
	if (!ctx) {
		session_close(s, "TLS not available");
		return;
	}
	struct stream_filter *f = tls_x86_new(ctx, on_ready, s, why, sizeof(why));
	SSL_CTX_free(ctx);
	if (!f) {
		warn(s, why);
		session_close(s, why);
		return;
	}
	if (session_set_filter(s, f) < 0)
		return;
	tf_of(s)->step = STEP_OPTIONS;
	session_pump(s); /* the client may have sent its ClientHello already */
}

/* Option negotiation is over: the SOCKS request follows in X'03'. */
static void finish(struct session *s)
{
	size_t inlen;
	session_input(s, &inlen, NULL);
	if (inlen > 0) {
		/* Only X'02' frames were processed so far: these bytes sit in
		 * option negotiation where nothing more belongs. */
		warn(s, "X'86': unexpected bytes after option negotiation in STATE X'02'");
		session_close(s, "X'86': bytes after option negotiation");
		return;
	}
	session_refuse_udp(s, !tf_of(s)->udp_naked);
	struct stream_filter *f = session_filter(s);
	if (tls_x86_set_phase(f, X86_DATA) < 0) {
		warn(s, f->why);
		session_close(s, f->why);
		return;
	}
	session_method_done(s, true);
}

static void sub_done(struct session *s, bool ok)
{
	if (ok)
		finish(s);
}

static void opts_str(const uint8_t *o, size_t n, char *out, size_t cap)
{
	size_t pos = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && pos + 4 < cap; i++)
		pos += (size_t)snprintf(out + pos, cap - pos, "%s%02x", i ? "," : "", o[i]);
	if (n == 0)
		snprintf(out, cap, "-");
}

static void on_submethods(struct session *s);

static void on_options(struct session *s)
{
	struct tlsopt_list l;
	size_t used = 0;
	struct tls_settings t;
	uint8_t ans[2], buf[4];
	size_t n = 0;
	char offered[800], agreed[16], tag[SA_STR_MAX + 300];

	size_t inlen;
	const uint8_t *in = session_input(s, &inlen, NULL);
	if (tlsopt_parse(&l, in, inlen, &used, NULL) != SOCKS_DONE)
		return;
	session_consume(s, used);
	settings_of(s, &t);
	/* A user named by a verified client certificate needs nothing more. */
	bool have_user = session_user(s)[0] != '\0';
	bool sub_needed = t.subauth && !(t.subauth & AUTH_BIT_NONE) && !have_user;
	bool sub = t.subauth && !have_user && tlsopt_has(&l, TLSOPT_SUBAUTH);
	bool udp = t.udp_naked && tlsopt_has(&l, TLSOPT_UDP_NAKED);
	if (sub)
		ans[n++] = TLSOPT_SUBAUTH;
	if (udp)
		ans[n++] = TLSOPT_UDP_NAKED;
	tf_of(s)->udp_naked = udp;
	opts_str(l.opt, l.n, offered, sizeof(offered));
	opts_str(ans, n, agreed, sizeof(agreed));
	log_info("%s: X'86' options offered=%s agreed=%s", session_tag(s, tag, sizeof(tag)),
		 offered, agreed);
	if (sub_needed && !sub) {
		warn(s, "X'86': client does not offer subauthentication, which is required");
		close_after(s, "X'86' subauthentication required");
	}
	size_t len = tlsopt_write(buf, sizeof(buf), ans, n);
	if (session_send(s, buf, len) < 0 || session_ending(s))
		return;
	if (sub) {
		tf_of(s)->step = STEP_SUBMETHODS;
		/* A pipelining client's sub-method list may have come in the
		 * same TLS record as its options: no more input will call. */
		on_submethods(s);
		return;
	}
	finish(s);
}

/* The sub-method: the first the config allows (userpass before none) that
 * the client lists. */
static const struct stp_method *pick_sub(const struct tls_settings *t,
					 const struct socks5_greeting *g)
{
	if ((t->subauth & AUTH_BIT_USERPASS) && socks5_greeting_has(g, SOCKS_METHOD_USERPASS))
		return ext_find_method(SOCKS_METHOD_USERPASS);
	if ((t->subauth & AUTH_BIT_NONE) && socks5_greeting_has(g, SOCKS_METHOD_NONE))
		return ext_find_method(SOCKS_METHOD_NONE);
	return NULL;
}

static void on_submethods(struct session *s)
{
	struct socks5_greeting g;
	struct socks_err err = { 0 };
	size_t used = 0;
	struct tls_settings t;
	uint8_t choice[2];
	char tag[SA_STR_MAX + 300];

	size_t inlen;
	const uint8_t *in = session_input(s, &inlen, NULL);
	enum socks_res r = socks5_greeting_parse(&g, in, inlen, &used, &err);
	if (r == SOCKS_MORE)
		return;
	if (r == SOCKS_BAD) {
		char why[200];
		snprintf(why, sizeof(why), "X'86': bad subauthentication method list: %s",
			 err.why ? err.why : "malformed");
		warn(s, why);
		session_close(s, "X'86': bad subauthentication method list");
		return;
	}
	session_consume(s, used);
	settings_of(s, &t);
	const struct stp_method *m = pick_sub(&t, &g);
	size_t n = socks5_choice_write(choice, sizeof(choice),
				       m ? m->code : SOCKS_METHOD_NOACCEPT);
	log_info("%s: X'86' subauthentication %s", session_tag(s, tag, sizeof(tag)),
		 m ? socks_method_name(m->code) : "refused: no acceptable method");
	if (!m)
		close_after(s, "X'86': no acceptable subauthentication");
	if (session_send(s, choice, n) < 0 || !m)
		return;
	tf_of(s)->step = STEP_SUB;
	session_set_method_code(s, m->code);
	session_run_method(s, m, sub_done);
}

static void ssl_input(struct session *s)
{
	if (!session_filter(s))
		return;
	switch (tf_of(s)->step) {
	case STEP_OPTIONS: on_options(s); break;
	case STEP_SUBMETHODS: on_submethods(s); break;
	default: break; /* the sub-method has the input */
	}
}

/* ---- registration ---- */

static int tls_worker_init(struct worker *w)
{
	/* Fail at start, not at the first client, when TLS is configured
	 * but its files do not load. */
	const struct stp_conf *c = worker_conf(w);
	struct tls_settings t;
	bool any = false;
	tls_settings_get(c, NULL, NULL, &t);
	any = t.method_ssl;
	for (size_t i = 0; i < c->n_listeners && !any; i++) {
		tls_settings_get(c, &c->listeners[i], NULL, &t);
		any = t.listener_tls;
	}
	if (!any)
		return 0;
	char err[600];
	SSL_CTX *ctx = tls_ctx_get(&t.params, err, sizeof(err));
	if (!ctx) {
		log_warnx("%s", err);
		return -1;
	}
	SSL_CTX_free(ctx);
	return 0;
}

static void tls_worker_fini(struct worker *w)
{
	(void)w;
	tls_ctx_cache_clear();
}

/* Feature discovery: what X'86' (and X'06') bring for this client. */
static void tls_describe(const struct session *s, struct feat_writer *w)
{
	static const uint8_t codes[] = { SOCKS_METHOD_SSL, SOCKS_METHOD_SSL_IANA };
	struct tls_settings t;
	uint8_t sub[2];
	size_t n = 0;

	settings_of(s, &t);
	if (t.subauth & AUTH_BIT_USERPASS)
		sub[n++] = SOCKS_METHOD_USERPASS;
	if (t.subauth & AUTH_BIT_NONE)
		sub[n++] = SOCKS_METHOD_NONE;
	for (size_t i = 0; i < sizeof(codes); i++) {
		feat_put_codes(w, FEAT_SCOPE_METHOD, codes[i], "subauth", sub, n);
		if (t.udp_naked)
			feat_put_flag(w, FEAT_SCOPE_METHOD, codes[i], "udp-naked");
		if (t.cert_user)
			feat_put_flag(w, FEAT_SCOPE_METHOD, codes[i], "cert-user");
	}
	if (t.listener_tls)
		feat_put_flag(w, FEAT_SCOPE_SERVER, 0, "tls-listener");
}

static const struct stp_method tls_methods[] = {
	{ SOCKS_METHOD_SSL, ssl_enabled, ssl_start, ssl_input },
	{ SOCKS_METHOD_SSL_IANA, ssl_enabled, ssl_start, ssl_input },
};

const struct stp_ext ext_tls = {
	.name = "tls",
	.methods = tls_methods,
	.n_methods = sizeof(tls_methods) / sizeof(tls_methods[0]),
	.methods_tls = true,
	.worker_init = tls_worker_init,
	.worker_fini = tls_worker_fini,
	.session_open = tls_session_open,
	.describe = tls_describe,
};
