/*
 * ac_cmd.c - CMD X'F4' "get configuration" (docs/protocol.md 5.5): after
 * authentication, so the request rules see the user. Without profiles the
 * answer is X'07', as from a server without the command. Otherwise the
 * first request rule matching (command autoconfig) decides: block or no
 * match is X'02'; pass selects the profile (its `profile`, else the
 * first). The reply is
 * X'00' with BND 0.0.0.0:0, then LEN DOC, then the server closes.
 */
#include "ext/autoconf/ac.h"
#include "proto/autoconf.h"
#include "proto/socks.h"
#include "server/session.h"

void ac_cmd_start(struct session *s)
{
	const struct stp_conf *c = session_conf(s);
	const struct ac_conf *ac = ac_conf_get(c);
	uint8_t buf[ACDOC_HDR + ACDOC_MAX];

	/* Nothing to serve: as if the command were not there. */
	if (!ac || ac->n_profiles == 0) {
		session_finish(s, SOCKS5_REP_CMD_NOT_SUPPORTED, "no autoconfig profile");
		return;
	}
	if (!session_allowed(s, RULE_CMD_AUTOCONFIG, NULL, NULL, 0, true)) {
		session_finish(s, SOCKS5_REP_NOT_ALLOWED, "blocked");
		return;
	}
	const struct rule *r = session_match_rule(s, RULE_CMD_AUTOCONFIG, NULL, NULL, 0);
	const char *name = ac_conf_rule_profile(r);
	const struct ac_profile *pr = name ? ac_conf_profile(ac, name) : &ac->profiles[0];
	if (!pr) { /* the config check makes every named profile exist */
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "no such autoconfig profile");
		return;
	}
	size_t n = ac_doc_build(buf + ACDOC_HDR, sizeof(buf) - ACDOC_HDR, c, pr);
	if (n == 0 || acdoc_frame_header(buf, ACDOC_HDR, n) == 0) {
		session_warnx(s, "autoconfig: profile '%s' does not fit in %u bytes", pr->name,
			      ACDOC_MAX);
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "autoconfig document too large");
		return;
	}
	session_info(s, "autoconfig: profile %s, %zu bytes", pr->name, n);
	/* The reply, then the frame: the session closes once both are out. */
	if (session_reply(s, SOCKS5_REP_SUCCEEDED, NULL, false) < 0)
		return;
	session_close_after_output(s, "autoconfig sent");
	session_send(s, buf, ACDOC_HDR + n);
}
