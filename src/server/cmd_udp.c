/*
 * cmd_udp.c - UDP ASSOCIATE (RFC 1928 section 7).
 *
 * One client-facing UDP socket per association, on the address the client
 * reached us on (advertised as the listener's udp-advertise address when the
 * server sits behind NAT), and one target-facing socket per address family,
 * made on first use. The client is pinned to the address it declared, or to
 * its control connection's IP and the port of its first datagram. Every
 * datagram is checked against the request rules (udpassociate outbound,
 * udpreply inbound). The association ends with its TCP control connection.
 *
 * Datagrams move in batches (udpbatch.c: recvmmsg/sendmmsg, slots with
 * room for the largest header in front, so replies get their header
 * prepended without a copy). Once the client's port is known the
 * client-facing socket is connected to it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "server/cmd.h"
#include "server/resolve.h"
#include "server/server.h"
#include "server/session_int.h"
#include "server/udpbatch.h"

#define UDP_NAME_CACHE 4    /* resolved names kept per association */
#define UDP_MAX_PAYLOAD 65535

struct udp_name {
	char name[SOCKS_DOMAIN_MAX + 1];
	struct sockaddr_storage addr;
};

struct udp_counts {
	uint64_t up, down;                    /* datagrams relayed */
	uint64_t frag, foreign, bad, denied, unresolved, send_err, early;
};

struct udp_state {
	int cfd;                              /* client side */
	int rfd[2];                           /* target side: [0] IPv4, [1] IPv6 */
	ev_io cio, rio[2];
	struct sockaddr_storage pin;          /* the client's UDP address */
	bool pin_port_known;
	bool connected;                       /* cfd connect()ed to pin */
	struct udp_counts n;
	ev_tstamp last;
	struct udp_name cache[UDP_NAME_CACHE];
	unsigned cache_next;
	/* one datagram waiting for a name look-up */
	struct lookup *lookup;
	uint8_t *pending;
	size_t pending_len;
	struct socks_addr pending_dst;
};

static void udp_destroy(struct session *s)
{
	struct udp_state *st = s->cmd_data;
	char tag[SA_STR_MAX + 300];

	log_info("%s: udp datagrams up=%llu down=%llu dropped frag=%llu foreign=%llu bad=%llu "
		 "denied=%llu unresolved=%llu before-client=%llu send-errors=%llu",
		 session_tag(s, tag, sizeof(tag)), (unsigned long long)st->n.up,
		 (unsigned long long)st->n.down, (unsigned long long)st->n.frag,
		 (unsigned long long)st->n.foreign, (unsigned long long)st->n.bad,
		 (unsigned long long)st->n.denied, (unsigned long long)st->n.unresolved,
		 (unsigned long long)st->n.early, (unsigned long long)st->n.send_err);
	resolver_cancel(st->lookup);
	free(st->pending);
	ev_io_stop(s->w->loop, &st->cio);
	if (st->cfd >= 0)
		close(st->cfd);
	for (int i = 0; i < 2; i++) {
		ev_io_stop(s->w->loop, &st->rio[i]);
		if (st->rfd[i] >= 0)
			close(st->rfd[i]);
	}
	free(st);
	s->cmd_data = NULL;
}

static const struct session_cmd_ops udp_ops = { "udpassociate", udp_destroy };

/* Sends what is queued on fd; the association counts as active only
 * when a datagram went out. */
static void flush_batch(struct session *s, struct udp_batch *b, int fd, uint64_t *count,
			uint64_t *bytes)
{
	struct udp_state *st = s->cmd_data;
	uint64_t before = *count;
	if (b->n_out == 0)
		return;
	st->n.send_err += udp_batch_send(b, fd, count, bytes);
	if (*count != before)
		st->last = ev_now(s->w->loop);
}

/* ---- target -> client ---- */

static void on_target(EV_P_ ev_io *w, int revents)
{
	struct session *s = w->data;
	struct udp_state *st = s->cmd_data;
	struct udp_batch *b = s->w->udp;
	unsigned n = udp_batch_recv(b, w->fd);
	const struct sockaddr *to = st->connected ? NULL : (const struct sockaddr *)&st->pin;

	for (unsigned i = 0; i < n; i++) {
		struct sockaddr *from = (struct sockaddr *)&b->from[i];
		uint8_t *data = udp_batch_data(b, i);
		struct socks_addr a;
		if (!st->pin_port_known) {
			st->n.early++; /* the client has not sent yet: no port to send to */
			continue;
		}
		if (!session_allowed(s, RULE_CMD_UDPREPLY, from, NULL, (uint16_t)sa_port(from),
				     st->n.denied == 0)) {
			st->n.denied++;
			continue;
		}
		sa_to_socks(&a, from);
		size_t hl = socks_addr_wire_len(&a) + 3;
		socks_udp_write(data - hl, hl, 0, &a);
		udp_batch_queue(b, data - hl, hl + b->in[i].msg_len, hl, to);
	}
	flush_batch(s, b, st->cfd, &st->n.down, &s->down);
}

/* ---- client -> target ---- */

static int target_socket(struct session *s, int family)
{
	struct udp_state *st = s->cmd_data;
	int i = family == AF_INET6 ? 1 : 0;
	const struct conf_listener *l = s->listener;

	if (st->rfd[i] >= 0)
		return st->rfd[i];
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (l->has_external && l->external.ss_family == family) {
		struct sockaddr_storage src = l->external;
		sa_set_port((struct sockaddr *)&src, 0);
		if (bind(fd, (struct sockaddr *)&src, sa_len((struct sockaddr *)&src)) < 0) {
			close(fd);
			return -1;
		}
	}
	st->rfd[i] = fd;
	ev_io_init(&st->rio[i], on_target, fd, EV_READ);
	st->rio[i].data = s;
	ev_io_start(s->w->loop, &st->rio[i]);
	return fd;
}

/* The socket to send a datagram for dst on, or -1 when the rules deny it
 * or no socket can be made (counted). */
static int target_fd_for(struct session *s, const struct sockaddr_storage *dst, const char *name)
{
	struct udp_state *st = s->cmd_data;
	if (!session_allowed(s, RULE_CMD_UDPASSOCIATE, (const struct sockaddr *)dst, name,
			     (uint16_t)sa_port((const struct sockaddr *)dst), st->n.denied == 0)) {
		st->n.denied++;
		return -1;
	}
	int fd = target_socket(s, dst->ss_family);
	if (fd < 0)
		st->n.send_err++;
	return fd;
}

/* One datagram on its own (after a name look-up). */
static void send_to_target(struct session *s, const struct sockaddr_storage *dst,
			   const char *name, const uint8_t *data, size_t len)
{
	struct udp_state *st = s->cmd_data;
	int fd = target_fd_for(s, dst, name);
	if (fd < 0)
		return;
	if (sendto(fd, data, len, MSG_DONTWAIT, (const struct sockaddr *)dst,
		   sa_len((const struct sockaddr *)dst)) < 0) {
		st->n.send_err++;
		return;
	}
	st->n.up++;
	s->up += len;
	st->last = ev_now(s->w->loop);
}

static const struct udp_name *cache_find(struct udp_state *st, const char *name)
{
	for (int i = 0; i < UDP_NAME_CACHE; i++)
		if (st->cache[i].name[0] && strcasecmp(st->cache[i].name, name) == 0)
			return &st->cache[i];
	return NULL;
}

static void on_resolved(void *ctx, int status, const struct sockaddr_storage *addrs, size_t n)
{
	struct session *s = ctx;
	struct udp_state *st = s->cmd_data;

	if (status == 0 && n > 0) {
		struct udp_name *c = &st->cache[st->cache_next++ % UDP_NAME_CACHE];
		snprintf(c->name, sizeof(c->name), "%s", st->pending_dst.u.name);
		c->addr = addrs[0];
		sa_set_port((struct sockaddr *)&c->addr, 0);
		struct sockaddr_storage dst = addrs[0];
		sa_set_port((struct sockaddr *)&dst, st->pending_dst.port);
		send_to_target(s, &dst, c->name, st->pending, st->pending_len);
	} else {
		st->n.unresolved++;
	}
	free(st->pending);
	st->pending = NULL;
}

/* The target of a datagram to a name: from the cache (true, *dst set), or
 * the datagram is copied aside for a look-up (false). */
static bool to_domain(struct session *s, const struct socks_addr *dst, const uint8_t *data,
		      size_t len, struct sockaddr_storage *out)
{
	struct udp_state *st = s->cmd_data;
	const struct udp_name *c = cache_find(st, dst->u.name);
	if (c) {
		*out = c->addr;
		sa_set_port((struct sockaddr *)out, dst->port);
		return true;
	}
	/* One look-up at a time; datagrams meanwhile are dropped, as a
	 * congested link would. */
	if (st->pending || !(st->pending = malloc(len ? len : 1))) {
		st->n.unresolved++;
		return false;
	}
	memcpy(st->pending, data, len);
	st->pending_len = len;
	st->pending_dst = *dst;
	if (resolver_lookup(s->w->resolver, dst->u.name, dst->port, on_resolved, s,
			    &st->lookup) < 0) {
		free(st->pending);
		st->pending = NULL;
		st->n.unresolved++;
	}
	return false;
}

/* Once the client's port is known, the client-facing socket is connected
 * to it: the kernel then drops other sources and replies need no address
 * (no route look-up per datagram). Kept unconnected when that fails, e.g.
 * a declared address of the other family. */
static void connect_client(struct udp_state *st)
{
	st->connected = connect(st->cfd, (struct sockaddr *)&st->pin,
				sa_len((struct sockaddr *)&st->pin)) == 0;
}

/* True when the datagram comes from the pinned client (learning the port
 * from the first one when it was not declared). */
static bool from_client(struct udp_state *st, struct sockaddr_storage *from)
{
	if (!sa_equal_addr((struct sockaddr *)from, (struct sockaddr *)&st->pin))
		return false;
	if (!st->pin_port_known) {
		sa_set_port((struct sockaddr *)&st->pin, sa_port((struct sockaddr *)from));
		st->pin_port_known = true;
		connect_client(st);
		return true;
	}
	return sa_port((struct sockaddr *)from) == sa_port((struct sockaddr *)&st->pin);
}

static void on_client_dgram(EV_P_ ev_io *w, int revents)
{
	struct session *s = w->data;
	struct udp_state *st = s->cmd_data;
	struct udp_batch *b = s->w->udp;
	unsigned n = udp_batch_recv(b, st->cfd);
	int qfd = -1; /* the socket the queued datagrams go out on */

	for (unsigned i = 0; i < n; i++) {
		const uint8_t *buf = udp_batch_data(b, i);
		struct socks_udp_hdr h;
		struct socks_err err;
		struct sockaddr_storage dst;
		const char *name = NULL;
		if (!from_client(st, &b->from[i])) {
			st->n.foreign++;
			continue;
		}
		if (socks_udp_parse(&h, buf, b->in[i].msg_len, &err) != SOCKS_DONE) {
			st->n.bad++;
			continue;
		}
		if (h.frag != 0) {
			st->n.frag++; /* stp does not reassemble (RFC 1928 allows this) */
			continue;
		}
		const uint8_t *data = buf + h.hdrlen;
		size_t len = b->in[i].msg_len - h.hdrlen;
		if (h.addr.atyp == SOCKS_ATYP_DOMAIN) {
			if (!to_domain(s, &h.addr, data, len, &dst))
				continue;
			name = h.addr.u.name;
		} else {
			socklen_t dlen;
			sa_from_socks(&dst, &dlen, &h.addr);
		}
		int fd = target_fd_for(s, &dst, name);
		if (fd < 0)
			continue;
		if (fd != qfd)
			flush_batch(s, b, qfd, &st->n.up, &s->up);
		qfd = fd;
		udp_batch_queue(b, data, len, 0, (struct sockaddr *)&dst);
	}
	flush_batch(s, b, qfd, &st->n.up, &s->up);
}

/* ---- lifetime ---- */

static void on_control(struct session *s)
{
	/* Bytes on the control connection mean nothing here: dropped. Its
	 * end (FIN, TLS close_notify or an error) ends the association: the
	 * core closes the session. */
	s->hs->inlen = 0;
}

static void on_udp_idle(EV_P_ ev_timer *w, int revents)
{
	struct session *s = w->data;
	struct udp_state *st = s->cmd_data;
	ev_tstamp left = st->last + s->conf->timeouts.udp_idle - ev_now(EV_A);
	if (left > 0) {
		w->repeat = left;
		ev_timer_again(EV_A_ w);
		return;
	}
	session_close(s, "udp idle timeout");
}

/* The client's declared address, or its control connection's IP when it
 * declared zeros (RFC 1928: "MAY use ... all zeros"). */
static void set_pin(struct session *s, struct udp_state *st)
{
	struct sockaddr_storage decl;
	socklen_t len;
	bool zero_addr = true;

	st->pin = s->client;
	st->pin_port_known = false;
	if (sa_from_socks(&decl, &len, &s->target) == 0) {
		static const uint8_t zeros[16];
		zero_addr = memcmp(s->target.u.v6, zeros,
				   s->target.atyp == SOCKS_ATYP_IPV4 ? 4 : 16) == 0;
		if (!zero_addr)
			st->pin = decl;
	}
	if (s->target.port != 0) {
		sa_set_port((struct sockaddr *)&st->pin, s->target.port);
		st->pin_port_known = true;
	}
}

static int open_client_socket(struct session *s, struct udp_state *st,
			      struct sockaddr_storage *bound)
{
	struct sockaddr_storage where = s->local;
	socklen_t len = sizeof(*bound);

	sa_set_port((struct sockaddr *)&where, 0);
	st->cfd = socket(where.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (st->cfd < 0 ||
	    bind(st->cfd, (struct sockaddr *)&where, sa_len((struct sockaddr *)&where)) < 0)
		return -1;
	getsockname(st->cfd, (struct sockaddr *)bound, &len);
	sa_unmap(bound);
	if (s->listener->has_udp_advertise) {
		unsigned port = sa_port((struct sockaddr *)bound);
		*bound = s->listener->udp_advertise;
		sa_set_port((struct sockaddr *)bound, port);
	}
	return 0;
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
	st->cfd = st->rfd[0] = st->rfd[1] = -1;
	s->cmd_data = st;
	s->cmd_ops = &udp_ops;
	set_pin(s, st);
	if (open_client_socket(s, st, &s->bound) < 0) {
		log_warn("session %llu: UDP relay socket", (unsigned long long)s->id);
		session_reply(s, session_errno_rep(errno), NULL, true);
		return;
	}
	if (session_reply(s, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&s->bound, false) < 0)
		return;
	if (st->pin_port_known)
		connect_client(st);
	st->last = ev_now(s->w->loop);
	ev_io_init(&st->cio, on_client_dgram, st->cfd, EV_READ);
	st->cio.data = s;
	ev_io_start(s->w->loop, &st->cio);
	session_watch_control(s, on_control);
	if (s->conf->timeouts.udp_idle) {
		ev_timer_init(&s->timer, on_udp_idle, s->conf->timeouts.udp_idle,
			      s->conf->timeouts.udp_idle);
		s->timer.data = s;
		ev_timer_start(s->w->loop, &s->timer);
	}
}
