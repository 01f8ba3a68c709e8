/*
 * dgram.c - the datagram relay core (see dgram.h).
 *
 * A wake-up on either side reads up to UDP_BATCH datagrams with one
 * recvmmsg into the worker's slots, filters and frames them in place, and
 * sends the survivors with one sendmmsg per target socket (udpbatch.c).
 * Replies get their header written into the slot's headroom, so no
 * datagram is copied, except one waiting for a name look-up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sockaddr.h"
#include "proto/socks.h"
#include "server/dgram.h"
#include "server/idle.h"
#include "server/resolve.h"

#define DGRAM_NAME_CACHE 4 /* resolved names kept per relay */

struct dgram_name {
	char name[SOCKS_DOMAIN_MAX + 1];
	struct sockaddr_storage addr;
};

struct dgram_relay {
	struct ev_loop *loop;
	struct udp_batch *batch;
	struct resolver *resolver;
	const struct dgram_ops *ops;
	void *ctx;
	int (*open_socket)(void *sock_ctx, bool target, int domain, int type);
	void *sock_ctx;

	int cfd;                              /* client side */
	int rfd[2];                           /* target side: [0] IPv4, [1] IPv6 */
	ev_io cio, rio[2];
	struct sockaddr_storage pin;          /* the client's UDP address */
	bool pin_port_known;
	bool connected;                       /* cfd connect()ed to pin */
	struct sockaddr_storage source;
	bool has_source;

	struct dgram_counts n;
	unsigned idle_secs;
	ev_tstamp last;                       /* a datagram last went out */
	ev_timer idle;

	struct dgram_name cache[DGRAM_NAME_CACHE];
	unsigned cache_next;
	/* one datagram waiting for a name look-up */
	struct lookup *lookup;
	uint8_t *pending;
	size_t pending_len;
	char pending_name[SOCKS_DOMAIN_MAX + 1];
	uint16_t pending_port;
};

static bool allowed(struct dgram_relay *r, enum dgram_dir dir, const struct sockaddr *addr,
		    const char *name)
{
	if (!r->ops->allow || r->ops->allow(r->ctx, dir, addr, name, r->n.denied == 0))
		return true;
	r->n.denied++;
	return false;
}

/* Sends what is queued on fd; the relay counts as active only when a
 * datagram went out. */
static void flush_batch(struct dgram_relay *r, int fd, uint64_t *count, uint64_t *bytes)
{
	struct udp_batch *b = r->batch;
	uint64_t before = *count;
	if (b->n_out == 0)
		return;
	r->n.send_err += udp_batch_send(b, fd, count, bytes);
	if (*count != before)
		r->last = ev_now(r->loop);
}

/* ---- target -> client ---- */

static void on_target(EV_P_ ev_io *w, int revents)
{
	struct dgram_relay *r = w->data;
	struct udp_batch *b = r->batch;
	unsigned n = udp_batch_recv(b, w->fd);
	const struct sockaddr *to = r->connected ? NULL : (const struct sockaddr *)&r->pin;

	for (unsigned i = 0; i < n; i++) {
		struct sockaddr *from = (struct sockaddr *)&b->from[i];
		uint8_t *data = udp_batch_data(b, i);
		size_t len = b->in[i].msg_len;
		if (!r->pin_port_known) {
			r->n.early++; /* the client has not sent yet: no port to send to */
			continue;
		}
		if (!allowed(r, DGRAM_DOWN, from, NULL))
			continue;
		size_t hl = r->ops->encap ? r->ops->encap(r->ctx, from, data, len) : 0;
		uint8_t *start = data - hl;
		size_t total = hl + len;
		if (r->ops->seal) {
			start = r->ops->seal(r->ctx, start, &total, DGRAM_HEADROOM - hl);
			if (!start) {
				r->n.unsealed_bad++;
				continue;
			}
		}
		udp_batch_queue(b, start, total, total - len, to);
	}
	flush_batch(r, r->cfd, &r->n.down, &r->n.down_bytes);
}

/* ---- client -> target ---- */

static int dgram_socket(struct dgram_relay *r, bool target, int family)
{
	int type = SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
	return r->open_socket ? r->open_socket(r->sock_ctx, target, family, type)
			      : socket(family, type, 0);
}

static int target_socket(struct dgram_relay *r, int family)
{
	int i = family == AF_INET6 ? 1 : 0;

	if (r->rfd[i] >= 0)
		return r->rfd[i];
	int fd = dgram_socket(r, true, family);
	if (fd < 0)
		return -1;
	if (r->has_source && r->source.ss_family == family) {
		struct sockaddr_storage src = r->source;
		sa_set_port((struct sockaddr *)&src, 0);
		if (bind(fd, (struct sockaddr *)&src, sa_len((struct sockaddr *)&src)) < 0) {
			close(fd);
			return -1;
		}
	}
	r->rfd[i] = fd;
	ev_io_init(&r->rio[i], on_target, fd, EV_READ);
	r->rio[i].data = r;
	ev_io_start(r->loop, &r->rio[i]);
	return fd;
}

/* The socket to send a datagram for dst on, or -1 when the rules deny it
 * or no socket can be made (counted). */
static int target_fd_for(struct dgram_relay *r, const struct sockaddr_storage *dst,
			 const char *name)
{
	if (!allowed(r, DGRAM_UP, (const struct sockaddr *)dst, name))
		return -1;
	int fd = target_socket(r, dst->ss_family);
	if (fd < 0)
		r->n.send_err++;
	return fd;
}

/* One datagram on its own (after a name look-up). */
static void send_to_target(struct dgram_relay *r, const struct sockaddr_storage *dst,
			   const char *name, const uint8_t *data, size_t len)
{
	int fd = target_fd_for(r, dst, name);
	if (fd < 0)
		return;
	if (sendto(fd, data, len, MSG_DONTWAIT, (const struct sockaddr *)dst,
		   sa_len((const struct sockaddr *)dst)) < 0) {
		r->n.send_err++;
		return;
	}
	r->n.up++;
	r->n.up_bytes += len;
	r->last = ev_now(r->loop);
}

static const struct dgram_name *cache_find(struct dgram_relay *r, const char *name)
{
	for (int i = 0; i < DGRAM_NAME_CACHE; i++)
		if (r->cache[i].name[0] && strcasecmp(r->cache[i].name, name) == 0)
			return &r->cache[i];
	return NULL;
}

static void on_resolved(void *ctx, int status, const struct sockaddr_storage *addrs, size_t n)
{
	struct dgram_relay *r = ctx;

	if (status == 0 && n > 0) {
		struct dgram_name *c = &r->cache[r->cache_next++ % DGRAM_NAME_CACHE];
		snprintf(c->name, sizeof(c->name), "%s", r->pending_name);
		c->addr = addrs[0];
		sa_set_port((struct sockaddr *)&c->addr, 0);
		struct sockaddr_storage dst = addrs[0];
		sa_set_port((struct sockaddr *)&dst, r->pending_port);
		send_to_target(r, &dst, c->name, r->pending, r->pending_len);
	} else {
		r->n.unresolved++;
	}
	free(r->pending);
	r->pending = NULL;
}

/* The address of a datagram to a name: from the cache (true, *out set),
 * or the datagram is copied aside for a look-up (false). */
static bool to_name(struct dgram_relay *r, const struct dgram_dst *dst, const uint8_t *data,
		    size_t len, struct sockaddr_storage *out)
{
	const struct dgram_name *c = cache_find(r, dst->name);
	if (c) {
		*out = c->addr;
		sa_set_port((struct sockaddr *)out, dst->port);
		return true;
	}
	/* One look-up at a time; datagrams meanwhile are dropped, as a
	 * congested link would. */
	if (!r->resolver || r->pending || !(r->pending = malloc(len ? len : 1))) {
		r->n.unresolved++;
		return false;
	}
	memcpy(r->pending, data, len);
	r->pending_len = len;
	snprintf(r->pending_name, sizeof(r->pending_name), "%s", dst->name);
	r->pending_port = dst->port;
	if (resolver_lookup(r->resolver, r->pending_name, dst->port, on_resolved, r,
			    &r->lookup) < 0) {
		free(r->pending);
		r->pending = NULL;
		r->n.unresolved++;
	}
	return false;
}

/* Once the client's port is known, the client-facing socket is connected
 * to it: the kernel then drops other sources and replies need no address
 * (no route look-up per datagram). Kept unconnected when that fails, e.g.
 * a pinned address of the other family. */
static void connect_client(struct dgram_relay *r)
{
	r->connected = connect(r->cfd, (struct sockaddr *)&r->pin,
			       sa_len((struct sockaddr *)&r->pin)) == 0;
}

/* True when the datagram comes from the pinned client (learning the port
 * from the first one when it was not fixed). */
static bool from_client(struct dgram_relay *r, struct sockaddr_storage *from)
{
	if (!sa_equal_addr((struct sockaddr *)from, (struct sockaddr *)&r->pin))
		return false;
	if (!r->pin_port_known) {
		sa_set_port((struct sockaddr *)&r->pin, sa_port((struct sockaddr *)from));
		r->pin_port_known = true;
		connect_client(r);
		return true;
	}
	return sa_port((struct sockaddr *)from) == sa_port((struct sockaddr *)&r->pin);
}

static void on_client(EV_P_ ev_io *w, int revents)
{
	struct dgram_relay *r = w->data;
	struct udp_batch *b = r->batch;
	unsigned n = udp_batch_recv(b, r->cfd);
	int qfd = -1; /* the socket the queued datagrams go out on */

	for (unsigned i = 0; i < n; i++) {
		uint8_t *buf = udp_batch_data(b, i);
		size_t dlen = b->in[i].msg_len;
		struct dgram_dst d;
		size_t hl;
		if (!from_client(r, &b->from[i])) {
			r->n.foreign++;
			continue;
		}
		if (r->ops->unseal) {
			int u = r->ops->unseal(r->ctx, buf, dlen);
			if (u < 0) {
				r->n.unsealed_bad++;
				continue;
			}
			dlen = (size_t)u;
		}
		d.name = NULL;
		if (r->ops->decap(r->ctx, buf, dlen, &d, &hl) < 0)
			continue;
		const uint8_t *data = buf + hl;
		size_t len = dlen - hl;
		if (d.name && !to_name(r, &d, data, len, &d.addr))
			continue;
		int fd = target_fd_for(r, &d.addr, d.name);
		if (fd < 0)
			continue;
		if (fd != qfd)
			flush_batch(r, qfd, &r->n.up, &r->n.up_bytes);
		qfd = fd;
		udp_batch_queue(b, data, len, 0, (struct sockaddr *)&d.addr);
	}
	flush_batch(r, qfd, &r->n.up, &r->n.up_bytes);
}

/* ---- lifetime ---- */

static void on_idle(EV_P_ ev_timer *w, int revents)
{
	struct dgram_relay *r = w->data;
	if (!idle_rearm(EV_A, w, r->last, r->idle_secs))
		r->ops->idle(r->ctx);
}

struct dgram_relay *dgram_relay_new(const struct dgram_params *p, struct sockaddr_storage *bound)
{
	struct dgram_relay *r = calloc(1, sizeof(*r));
	struct sockaddr_storage where = p->local;
	socklen_t len = sizeof(*bound);

	if (!r)
		return NULL;
	r->loop = p->loop;
	r->batch = p->batch;
	r->resolver = p->resolver;
	r->ops = p->ops;
	r->ctx = p->ctx;
	r->cfd = r->rfd[0] = r->rfd[1] = -1;
	r->pin = p->pin;
	r->pin_port_known = p->pin_port;
	if (p->source) {
		r->source = *p->source;
		r->has_source = true;
	}
	r->idle_secs = p->idle_secs;
	r->open_socket = p->open_socket;
	r->sock_ctx = p->sock_ctx;
	r->cfd = dgram_socket(r, false, where.ss_family);
	if (r->cfd < 0 ||
	    bind(r->cfd, (struct sockaddr *)&where, sa_len((struct sockaddr *)&where)) < 0) {
		int e = errno;
		dgram_relay_free(r);
		errno = e;
		return NULL;
	}
	getsockname(r->cfd, (struct sockaddr *)bound, &len);
	sa_unmap(bound);
	if (p->has_target_fd) {
		struct sockaddr_storage t;
		socklen_t tl = sizeof(t);
		getsockname(p->target_fd, (struct sockaddr *)&t, &tl);
		int i = t.ss_family == AF_INET6 ? 1 : 0;
		r->rfd[i] = p->target_fd;
		ev_io_init(&r->rio[i], on_target, p->target_fd, EV_READ);
		r->rio[i].data = r;
	}
	return r;
}

void dgram_relay_start(struct dgram_relay *r)
{
	if (r->pin_port_known)
		connect_client(r);
	r->last = ev_now(r->loop);
	ev_io_init(&r->cio, on_client, r->cfd, EV_READ);
	r->cio.data = r;
	ev_io_start(r->loop, &r->cio);
	for (int i = 0; i < 2; i++)
		if (r->rfd[i] >= 0 && !ev_is_active(&r->rio[i]))
			ev_io_start(r->loop, &r->rio[i]); /* a user's target socket */
	if (r->idle_secs && r->ops->idle) {
		ev_timer_init(&r->idle, on_idle, r->idle_secs, r->idle_secs);
		r->idle.data = r;
		ev_timer_start(r->loop, &r->idle);
	}
}

void dgram_relay_free(struct dgram_relay *r)
{
	if (!r)
		return;
	resolver_cancel(r->lookup);
	free(r->pending);
	ev_timer_stop(r->loop, &r->idle);
	ev_io_stop(r->loop, &r->cio);
	if (r->cfd >= 0)
		close(r->cfd);
	for (int i = 0; i < 2; i++) {
		ev_io_stop(r->loop, &r->rio[i]);
		if (r->rfd[i] >= 0)
			close(r->rfd[i]);
	}
	free(r);
}

const struct dgram_counts *dgram_relay_counts(const struct dgram_relay *r)
{
	return &r->n;
}

void dgram_socks_dst(const struct socks_udp_hdr *h, struct dgram_dst *dst)
{
	if (h->addr.atyp == SOCKS_ATYP_DOMAIN) {
		dst->name = h->addr.u.name;
		dst->port = h->addr.port;
	} else {
		socklen_t dlen;
		sa_from_socks(&dst->addr, &dlen, &h->addr);
	}
}

size_t dgram_socks_encap(void *ctx, const struct sockaddr *from, uint8_t *payload, size_t len)
{
	struct socks_addr a;

	(void)ctx;
	(void)len;
	sa_to_socks(&a, from);
	size_t hl = socks_addr_wire_len(&a) + 3;
	socks_udp_write(payload - hl, hl, 0, &a);
	return hl;
}

