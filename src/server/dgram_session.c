/*
 * dgram_session.c - what a command's datagram relay takes from its session
 * (see dgram.h): the worker's loop, slots and resolver, our end of the
 * control connection, the listener's external and udp-advertise addresses,
 * timeouts { udp-idle }. The glue lives here so that dgram.c knows no
 * session and a command outside src/server needs no session internals.
 */
#include "common/sockaddr.h"
#include "server/dgram.h"
#include "server/ext.h"
#include "server/server.h"
#include "server/session_int.h"

/* The client-facing socket is made where the client arrived (no rule: the
 * arriving compartment), target-facing ones where the command's rule says. */
static int session_dgram_socket(void *ctx, bool target, int domain, int type)
{
	struct session *s = ctx;
	return ext_open_socket(s, target ? s->rule : NULL, domain, type, 0);
}

void dgram_params_from_session(struct dgram_params *p, const struct session *s)
{
	const struct conf_listener *l = s->listener;

	p->loop = s->w->loop;
	p->batch = s->w->udp;
	p->resolver = session_resolver(s); /* where the command's rule sends it */
	p->local = s->local;
	sa_set_port((struct sockaddr *)&p->local, 0);
	p->source = l->has_external ? &l->external : NULL;
	p->idle_secs = s->conf->timeouts.udp_idle;
	p->open_socket = session_dgram_socket;
	p->sock_ctx = (struct session *)s; /* the relay dies with its session */
}

void dgram_advertised(const struct session *s, struct sockaddr_storage *bound)
{
	const struct conf_listener *l = s->listener;

	if (l->has_udp_advertise) {
		unsigned port = sa_port((struct sockaddr *)bound);
		*bound = l->udp_advertise;
		sa_set_port((struct sockaddr *)bound, port);
	}
}
