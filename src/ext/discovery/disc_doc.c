/*
 * disc_doc.c - the features document, derived from the registry so it is
 * never out of date: versions and methods as the greeting would answer
 * them, the registered commands the request rules may pass for this client,
 * then every module's describe hook (ext.h) for details and limits.
 */
#include <string.h>

#include "ext/discovery/disc.h"
#include "proto/featdoc.h"
#include "proto/socks.h"
#include "server/ext.h"
#include "server/session.h"

/* Registered commands (each code once) that may pass for this session;
 * those reachable over SOCKS4 go to v4 as well. */
static void disc_commands(const struct session *s, bool user_known, struct feat_writer *w,
			  uint8_t *cmds, size_t *n, uint8_t *v4, size_t *n4)
{
	size_t n_ext;
	const struct stp_ext *const *all = ext_all(&n_ext);
	*n = *n4 = 0;
	for (size_t i = 0; i < n_ext; i++) {
		if (all[i]->commands_enabled && !all[i]->commands_enabled(session_conf(s)))
			continue;
		for (size_t j = 0; j < all[i]->n_commands; j++) {
			const struct stp_command *c = &all[i]->commands[j];
			if (memchr(cmds, c->code, *n) ||
			    !session_may_pass(s, c->rule_bit, user_known))
				continue;
			cmds[(*n)++] = c->code;
			feat_writer_keep(w, FEAT_SCOPE_COMMAND, c->code);
			if (c->socks4)
				v4[(*n4)++] = c->code;
		}
	}
}

size_t disc_doc_build(const struct session *s, bool user_known, uint8_t *buf, size_t cap)
{
	struct feat_writer w;
	uint8_t methods[256], cmds[256], v4[256], versions[2];
	size_t n_methods, n_cmds, n4, n_versions = 0;

	feat_writer_init(&w, buf, cap);
	n_methods = session_methods_acceptable(s, methods, sizeof(methods));
	for (size_t i = 0; i < n_methods; i++)
		feat_writer_keep(&w, FEAT_SCOPE_METHOD, methods[i]);
	disc_commands(s, user_known, &w, cmds, &n_cmds, v4, &n4);
	/* SOCKS4 has no methods: it is served exactly when X'00' would be. */
	bool socks4 = memchr(methods, SOCKS_METHOD_NONE, n_methods) != NULL && n4 > 0;
	if (socks4)
		versions[n_versions++] = SOCKS4_VER;
	versions[n_versions++] = SOCKS5_VER;

	/* The three lists first: a truncated document still has them. */
	feat_put_codes(&w, FEAT_SCOPE_SERVER, 0, "versions", versions, n_versions);
	feat_put_codes(&w, FEAT_SCOPE_SERVER, 0, "methods", methods, n_methods);
	feat_put_codes(&w, FEAT_SCOPE_SERVER, 0, "commands", cmds, n_cmds);
	if (socks4)
		feat_put_codes(&w, FEAT_SCOPE_VERSION, SOCKS4_VER, "commands", v4, n4);
	/* stpd parses its input however it is cut: a client may send greeting,
	 * sub-negotiation, request and first data in one write (5.11). */
	feat_put_flag(&w, FEAT_SCOPE_SERVER, 0, "pipelining");
	if (user_known && session_user(s)[0])
		feat_put_text(&w, FEAT_SCOPE_SERVER, 0, "user", session_user(s));
	ext_describe(s, &w);
	return feat_writer_finish(&w);
}
