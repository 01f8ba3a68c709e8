/*
 * tn_session.c - what both sides of a tunnel do the same way on their
 * control session (docs/protocol.md 5.10): read the request's body behind
 * the header the core consumed, time it out, open the flow (a refusal
 * answered with the right code), and refuse stray bytes once the tunnel
 * runs. tn_local.c (X'20') and tn_remote.c (X'21') each had a copy.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "ext/tunnel/tn_int.h"
#include "proto/tunnel.h"
#include "server/flow.h"
#include "server/session.h"

_Static_assert(TUNNEL_SETUP_MAX >= TUNNEL_RELAY_MAX, "one buffer holds either request");

bool tn_read_body(struct session *s, uint8_t cmd, tn_parse_fn parse, void *out, ev_timer *timer,
		  const char *what)
{
	uint8_t buf[TUNNEL_SETUP_MAX];
	struct socks_err err = { 0, NULL };
	size_t len, cap, used;
	const uint8_t *in = session_input(s, &len, &cap);
	/* the codec reads whole requests: the header again, then the body */
	size_t h = socks5_request_write(buf, sizeof(buf), cmd, session_target(s));
	size_t take = len < sizeof(buf) - h ? len : sizeof(buf) - h;
	memcpy(buf + h, in, take);
	enum socks_res r = parse(out, buf, h + take, &used, &err);
	OPENSSL_cleanse(buf, sizeof(buf)); /* X'20' carries a password */
	if (r == SOCKS_MORE)
		return false;
	ev_timer_stop(session_loop(s), timer);
	if (r == SOCKS_BAD) {
		session_warnx(s, "%s refused: %s", what, err.why);
		session_finish(s, err.rep, err.why);
		return false;
	}
	session_consume(s, used - h);
	session_watch_control(s, NULL);
	return true;
}

void tn_body_timer(struct session *s, ev_timer *w, void (*cb)(EV_P_ ev_timer *, int), void *data)
{
	unsigned secs = session_conf(s)->timeouts.handshake;
	ev_timer_init(w, cb, (ev_tstamp)secs, 0.);
	w->data = data;
	if (secs)
		ev_timer_start(session_loop(s), w);
}

struct flow *tn_flow_open(struct session *s, uint32_t rule_bit, uint8_t cmd,
			  const struct socks_addr *target, const struct sockaddr *resolved)
{
	const char *why;
	struct flow *f = flow_open_at(s, rule_bit, cmd, target, resolved, &why);
	if (!f)
		session_finish(s,
			       strcmp(why, "out of memory") == 0 ? SOCKS5_REP_GENERAL_FAILURE :
								   SOCKS5_REP_NOT_ALLOWED,
			       why);
	return f;
}

void tn_quiet_control(struct session *s)
{
	size_t len, cap;
	session_input(s, &len, &cap);
	if (len) {
		session_warnx(s, "tunnel: unexpected bytes on the control connection");
		session_close(s, "bad tunnel control input");
	}
}
