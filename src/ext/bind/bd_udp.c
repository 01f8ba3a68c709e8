/*
 * bd_udp.c - a UDP bind of LISTEN: a UDP port on the server that any peer
 * may send to (udpbindreply rules permitting). The datagram relay core
 * (server/dgram.h) carries it: the bound port is its target-facing socket,
 * the client's side is a second socket pinned to the client, and the
 * datagrams between them carry the RFC 1928 section 7 header: from a peer,
 * it names the sender; to a peer, the destination, and the datagram leaves
 * from the bound port. The relay is the bind's flow's, so the bind's log
 * line has its bytes; it lives as long as the control connection (no idle
 * timeout).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/sockaddr.h"
#include "ext/bind/bd.h"
#include "server/dgram.h"
#include "server/flow.h"
#include "server/session.h"

static int udp_decap(void *ctx, const uint8_t *p, size_t len, struct dgram_dst *dst, size_t *hdrlen)
{
	struct bd_udp *u = ctx;
	struct socks_udp_hdr *h = &u->h;
	struct socks_err err;
	if (socks_udp_parse(h, p, len, &err) != SOCKS_DONE || h->frag != 0)
		return -1; /* counted as dropped by the relay's totals */
	*hdrlen = h->hdrlen;
	dgram_socks_dst(h, dst);
	return 0;
}

/* Both ways the peer is what the rules look at (udpbindreply). */
static bool udp_allow(void *ctx, enum dgram_dir dir, const struct sockaddr *addr, const char *name,
		      bool log)
{
	struct bd_udp *u = ctx;
	(void)dir;
	return session_allowed(u->ctl->s, RULE_CMD_UDPBINDREPLY, addr, name,
			       (uint16_t)sa_port(addr), log);
}

static const struct dgram_ops bd_udp_ops = {
	.decap = udp_decap,
	.encap = dgram_socks_encap, /* the reply names its sender */
	.allow = udp_allow,
};

/* The method's datagram protection (GSS-API, RFC 1961 section 5), as
 * UDP ASSOCIATE has it: the control session's guard, which lives as long
 * as the control connection, and so as long as this bind. */
static int udp_unseal(void *ctx, uint8_t *p, size_t len)
{
	struct bd_udp *u = ctx;
	const struct session_dgram_guard *g = session_dgram_guard(u->ctl->s);
	return g->unseal(g->ctx, p, len);
}

static uint8_t *udp_seal(void *ctx, uint8_t *p, size_t *len, size_t room)
{
	struct bd_udp *u = ctx;
	const struct session_dgram_guard *g = session_dgram_guard(u->ctl->s);
	return g->seal(g->ctx, p, len, room);
}

static const struct dgram_ops bd_udp_guarded_ops = {
	.decap = udp_decap,
	.encap = dgram_socks_encap,
	.allow = udp_allow,
	.unseal = udp_unseal,
	.seal = udp_seal,
};

int bd_udp_open(struct bd_ctl *c, unsigned i, const struct mbind_entry *e, struct mbind_bound *out)
{
	struct bd_udp *u = &c->udp[c->n_udp];
	struct sockaddr_storage where, relay;
	socklen_t len = sizeof(where);
	(void)i;
	u->ctl = c;
	session_bind_address(c->s, &where);
	sa_set_port((struct sockaddr *)&where, e->port);
	int fd = session_socket(c->s, where.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&where, sa_len((struct sockaddr *)&where)) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&where, &len);
	sa_unmap(&where);

	struct dgram_params p = { .ops = session_dgram_guard(c->s) ? &bd_udp_guarded_ops :
								     &bd_udp_ops,
				  .ctx = u };
	dgram_params_from_session(&p, c->s);
	p.idle_secs = 0; /* lives with the control connection */
	p.pin = c->client;
	sa_set_port((struct sockaddr *)&p.pin, e->arg);
	p.pin_port = e->arg != 0;
	p.has_target_fd = true;
	p.target_fd = fd;
	struct dgram_relay *r = dgram_relay_new(&p, &relay);
	if (!r) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	dgram_advertised(c->s, &relay);
	flow_own_dgram(u->flow, r); /* the flow frees it, and the bound socket */
	dgram_relay_start(r);
	c->n_udp++;
	out->kind = MBIND_KIND_UDP;
	sa_to_socks(&out->bnd, (struct sockaddr *)&where);
	sa_to_socks(&out->relay, (struct sockaddr *)&relay);
	return 0;
}
