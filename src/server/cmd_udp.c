/*
 * cmd_udp.c - UDP ASSOCIATE (RFC 1928 section 7), a user of the datagram
 * relay core (dgram.c).
 *
 * One client-facing UDP socket per association, on the address the client
 * reached us on (advertised as the listener's udp-advertise address when the
 * server sits behind NAT), and one target-facing socket per address family,
 * made on first use (bound to the listener's external address). The client
 * is pinned to the address it declared, or to its control connection's IP
 * and the port of its first datagram. Every datagram is checked against the
 * request rules (udpassociate outbound, udpreply inbound). This file adds
 * what is ASSOCIATE's own: the SOCKS UDP header (decap/encap below), the
 * pin from the request, and the lifetime: the association ends with its
 * TCP control connection, or after timeouts { udp-idle }.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "server/cmd.h"
#include "server/dgram.h"
#include "server/session_int.h"

struct udp_state {
	struct dgram_relay *relay;
	struct socks_udp_hdr h;               /* the last client header; names point into it */
	uint64_t frag, bad;                   /* client datagrams dropped by decap */
};

static void udp_destroy(struct session *s)
{
	struct udp_state *st = s->cmd_data;
	static const struct dgram_counts none;
	const struct dgram_counts *n = st->relay ? dgram_relay_counts(st->relay) : &none;
	char tag[SA_STR_MAX + 300];

	s->up = n->up_bytes;
	s->down = n->down_bytes;
	log_info("%s: udp datagrams up=%llu down=%llu dropped frag=%llu foreign=%llu bad=%llu "
		 "denied=%llu unresolved=%llu before-client=%llu send-errors=%llu",
		 session_tag(s, tag, sizeof(tag)), (unsigned long long)n->up,
		 (unsigned long long)n->down, (unsigned long long)st->frag,
		 (unsigned long long)n->foreign, (unsigned long long)st->bad,
		 (unsigned long long)n->denied, (unsigned long long)n->unresolved,
		 (unsigned long long)n->early, (unsigned long long)n->send_err);
	if (n->unsealed_bad)
		log_info("%s: udp datagrams failing the method's protection: %llu",
			 session_tag(s, tag, sizeof(tag)), (unsigned long long)n->unsealed_bad);
	dgram_relay_free(st->relay);
	free(st);
	s->cmd_data = NULL;
}

static const struct session_cmd_ops udp_ops = { "udpassociate", udp_destroy };

/* ---- the SOCKS UDP header ---- */

/*  +----+------+------+----------+----------+----------+
 *  |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
 *  +----+------+------+----------+----------+----------+
 *  | 2  |  1   |  1   | Variable |    2     | Variable |
 */
static int udp_decap(void *ctx, const uint8_t *p, size_t len, struct dgram_dst *dst,
		     size_t *hdrlen)
{
	struct session *s = ctx;
	struct udp_state *st = s->cmd_data;
	struct socks_udp_hdr *h = &st->h;
	struct socks_err err;

	if (socks_udp_parse(h, p, len, &err) != SOCKS_DONE) {
		st->bad++;
		return -1;
	}
	if (h->frag != 0) {
		st->frag++; /* stp does not reassemble (RFC 1928 allows this) */
		return -1;
	}
	*hdrlen = h->hdrlen;
	dgram_socks_dst(h, dst);
	return 0;
}

static bool udp_allow(void *ctx, enum dgram_dir dir, const struct sockaddr *addr,
		      const char *name, bool log)
{
	return session_allowed(ctx, dir == DGRAM_UP ? RULE_CMD_UDPASSOCIATE : RULE_CMD_UDPREPLY,
			       addr, name, (uint16_t)sa_port(addr), log);
}

static void udp_idle(void *ctx)
{
	session_close(ctx, "udp idle timeout");
}

static const struct dgram_ops udp_dgram_ops = {
	.decap = udp_decap,
	.encap = dgram_socks_encap, /* the reply names its sender */
	.allow = udp_allow,
	.idle = udp_idle,
};

/* The method's datagram protection (session_dgram_guard), when it has one. */
static int udp_unseal(void *ctx, uint8_t *p, size_t len)
{
	const struct session_dgram_guard *g = session_dgram_guard(ctx);
	return g->unseal(g->ctx, p, len);
}

static uint8_t *udp_seal(void *ctx, uint8_t *p, size_t *len, size_t room)
{
	const struct session_dgram_guard *g = session_dgram_guard(ctx);
	return g->seal(g->ctx, p, len, room);
}

static const struct dgram_ops udp_guarded_ops = {
	.decap = udp_decap,
	.encap = dgram_socks_encap, /* the reply names its sender */
	.allow = udp_allow,
	.idle = udp_idle,
	.unseal = udp_unseal,
	.seal = udp_seal,
};

/* ---- lifetime ---- */

static void on_control(struct session *s)
{
	/* Bytes on the control connection mean nothing here: dropped. Its
	 * end (FIN, TLS close_notify or an error) ends the association: the
	 * core closes the session. */
	s->hs->inlen = 0;
}

/* The client's declared address, or its control connection's IP when it
 * declared zeros (RFC 1928: "MAY use ... all zeros"); its port when it
 * declared one, else learned from its first datagram. */
static void set_pin(struct session *s, struct dgram_params *p)
{
	struct sockaddr_storage decl;
	socklen_t len;
	bool zero_addr = true;

	p->pin = s->client;
	p->pin_port = false;
	if (sa_from_socks(&decl, &len, &s->target) == 0) {
		static const uint8_t zeros[16];
		zero_addr = memcmp(s->target.u.v6, zeros,
				   s->target.atyp == SOCKS_ATYP_IPV4 ? 4 : 16) == 0;
		if (!zero_addr)
			p->pin = decl;
	}
	if (s->target.port != 0) {
		sa_set_port((struct sockaddr *)&p->pin, s->target.port);
		p->pin_port = true;
	}
}

/* The relay, its client-facing socket next to our end of the control
 * connection; *bound is what the reply advertises. */
static struct dgram_relay *open_relay(struct session *s, struct sockaddr_storage *bound)
{
	struct dgram_params p = { .ops = session_dgram_guard(s) ? &udp_guarded_ops : &udp_dgram_ops,
				  .ctx = s };

	dgram_params_from_session(&p, s);
	set_pin(s, &p);
	struct dgram_relay *r = dgram_relay_new(&p, bound);
	if (r)
		dgram_advertised(s, bound);
	return r;
}

void cmd_udp_start(struct session *s)
{
	if (!session_allowed(s, RULE_CMD_UDPASSOCIATE, NULL, NULL, 0, true)) {
		session_reply(s, SOCKS5_REP_NOT_ALLOWED, NULL, true);
		return;
	}
	struct udp_state *st = calloc(1, sizeof(*st));
	if (!st) {
		session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
		return;
	}
	s->cmd_data = st;
	s->cmd_ops = &udp_ops;
	st->relay = open_relay(s, &s->bound);
	if (!st->relay) {
		static struct log_rate rl = LOG_RATE_INIT("UDP relay socket");
		log_warn_rl(&rl, "session %llu: UDP relay socket", (unsigned long long)s->id);
		session_reply(s, session_errno_rep(errno), NULL, true);
		return;
	}
	if (session_reply(s, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&s->bound, false) < 0)
		return;
	dgram_relay_start(st->relay);
	session_watch_control(s, on_control);
}
