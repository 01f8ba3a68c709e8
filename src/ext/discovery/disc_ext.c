/*
 * disc_ext.c - feature discovery as seen by stpd's registry
 * (docs/protocol.md 5.6): method X'87', which answers a greeting with the
 * features document before any authentication and hands back to the
 * greeting (session_method_skip), and CMD X'F3', the same document after
 * authentication, for the authenticated user. Neither has side effects
 * beyond the log: no socket, no look-up, no rule slot kept.
 */
#include "ext/discovery/disc.h"
#include "ext/discovery/disc_conf.h"
#include "policy/rules.h"
#include "proto/featdoc.h"
#include "proto/socks.h"
#include "server/ext.h"
#include "server/session.h"

/* The request rules decide per client (and listener, time): a blocked
 * client is not offered X'87' at all, as if this stpd did not know it. */
static bool disc_offered(const struct session *s, uint8_t code)
{
	(void)code;
	const struct rule *r = session_match_rule(s, RULE_CMD_DISCOVER, NULL, NULL, 0);
	return r && r->action == RULE_PASS;
}

/* The method choice (2 bytes) is queued ahead, and the next choice (2
 * bytes) may follow in the same flight. */
/* stpd's cap on one features message (docs/protocol.md 5.6): the document
 * and its VER/LEN header, small enough for one segment. */
#define DISC_SEND_MAX 1536
#define DISC_METHOD_DOC_MAX (DISC_SEND_MAX - 4)

static void disc_method_start(struct session *s)
{
	uint8_t doc[DISC_METHOD_DOC_MAX];
	size_t n = disc_doc_build(s, false, doc, sizeof(doc));
	if (session_send(s, doc, n) < 0)
		return;
	session_info(s, "features sent (%zu bytes%s)", n,
		     doc[1] & FEAT_FLAG_TRUNCATED ? ", truncated" : "");
	session_method_skip(s);
}

static const struct stp_method disc_methods[] = {
	{ SOCKS_METHOD_FEATURES, NULL, disc_method_start, NULL },
};

/* CMD X'F3': an RFC 1928 reply (BND 0.0.0.0:0), the document, then the
 * connection closes, as after RESOLVE. */
static void disc_cmd_start(struct session *s)
{
	uint8_t doc[DISC_SEND_MAX - SOCKS5_REPLY_MAX];
	if (!session_allowed(s, RULE_CMD_DISCOVER, NULL, NULL, 0, true)) {
		session_finish(s, SOCKS5_REP_NOT_ALLOWED, "blocked");
		return;
	}
	size_t n = disc_doc_build(s, true, doc, sizeof(doc));
	if (session_reply(s, SOCKS5_REP_SUCCEEDED, NULL, false) < 0)
		return;
	session_close_after_output(s, "features sent");
	session_send(s, doc, n);
}

static const struct stp_command disc_commands[] = {
	{ SOCKS_CMD_FEATURES, RULE_CMD_DISCOVER, false, disc_cmd_start },
};

const struct stp_ext ext_discovery = {
	.name = "discovery",
	.commands = disc_commands,
	.n_commands = sizeof(disc_commands) / sizeof(disc_commands[0]),
	.methods = disc_methods,
	.n_methods = sizeof(disc_methods) / sizeof(disc_methods[0]),
	.methods_informational = true,
	.method_offered = disc_offered,
};
