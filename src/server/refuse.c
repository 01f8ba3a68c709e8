/*
 * refuse.c - the answer to a client refused at admission for a session
 * limit (limits { sessions, sessions-per-client }, a client rule's
 * `sessions`). Instead of a bare reset the client gets the one refusal its
 * protocol defines before any request:
 *   SOCKS5  method reply X'05' X'FF' (no acceptable methods): the only answer
 *           RFC 1928 has for a greeting. A request reply (X'02') would need
 *           the method and its sub-negotiation first, i.e. more work and a
 *           longer hold for a client we are shedding.
 *   SOCKS4  reply CD 91 (X'5B', request rejected or failed).
 *   other   (TLS, a PROXY header where none is expected, noise): closed
 *           without a reply.
 * What this may pin is bounded: a refused connection holds only its fd and
 * its session (no per-client slot, no rule slot), waits at most
 * REFUSE_WAIT_SECS for the client's first byte, and at most
 * REFUSE_WAITING_MAX such connections wait per worker; beyond that the
 * connection is closed at once, as before. Refused connections write no
 * session line: the refusal line (rate-limited, log.h) is their record.
 */
#include <stdio.h>

#include "proto/socks.h"
#include "server/server.h"
#include "server/session_int.h"

#define REFUSE_WAIT_SECS 1
#define REFUSE_WAITING_MAX 64

static void on_refuse_timeout(EV_P_ ev_timer *t, int revents)
{
	struct session *s = t->data;
	session_close(s, s->close_reason);
}

void session_refuse(struct session *s, const char *why)
{
	struct worker *w = s->w;

	s->quiet = true;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", why);
	if (w->n_refusing >= REFUSE_WAITING_MAX || w->draining) {
		session_close(s, why);
		return;
	}
	w->n_refusing++;
	s->refusing = true;
	session_set_state(s, SS_REFUSING);
	session_arm_timer(s, REFUSE_WAIT_SECS, on_refuse_timeout);
	session_update_io(s);
}

void session_refuse_input(struct session *s)
{
	uint8_t out[SOCKS4_REPLY_LEN];
	static const uint8_t zero_ip[4];
	size_t n = 0;

	if (s->hs->inlen == 0)
		return;
	if (s->hs->in[0] == SOCKS5_VER)
		n = socks5_choice_write(out, sizeof(out), SOCKS_METHOD_NOACCEPT);
	else if (s->hs->in[0] == SOCKS4_VER)
		n = socks4_reply_write(out, sizeof(out), SOCKS4_REP_REJECTED, 0, zero_ip);
	s->hs->inlen = 0; /* the rest is not read */
	if (n == 0) {
		session_close(s, s->close_reason);
		return;
	}
	s->closing_after_flush = true;
	session_send(s, out, n);
}

void session_refuse_end(struct session *s)
{
	if (s->refusing) {
		s->refusing = false;
		s->w->n_refusing--;
	}
}
