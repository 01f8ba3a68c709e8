/*
 * tp_user.c - the user-space relay engine of TRANSPARENT (tp_engine.h,
 * engine "user"): the fallback where nftables is not available or wanted.
 *
 * PTCL UDP: the datagram core (dgram.c) with no header: its client-facing
 * socket is bound on BND and connect()ed to S.ADDR:S.PORT at once, so the
 * kernel drops datagrams from any other address or port; every datagram
 * goes to DST, and only datagrams from DST come back.
 * PTCL TCP: a listening socket on BND that accepts one connection, from
 * S.ADDR:S.PORT exactly (any other is reset and counted), connects to DST
 * and hands both to the splice relay (relay.c); with end_on_fin the relay
 * ends when the target's FIN has been passed on.
 * Packets of another protocol to BND meet no socket of theirs: the kernel
 * answers them (RST, ICMP port unreachable) and nothing is relayed.
 *
 * Each engine belongs to one worker loop and has its own pipe cache and
 * datagram slots, so it needs nothing of the worker but the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sockaddr.h"
#include "ext/transparent/tp_conf.h"
#include "ext/transparent/tp_engine.h"
#include "server/dgram.h"
#include "server/relay.h"
#include "server/udpbatch.h"

#define TP_PIPES_CACHED 16
#define TP_RELAY_BUFFER 65536

struct tp_engine {
	struct ev_loop *loop;
	struct pipepool *pipes;
	struct udp_batch *batch;
	struct tp_relay *relays; /* list, for destroy */
};

struct tp_relay {
	struct tp_engine *e;
	struct tp_relay *prev, *next;
	struct tp_assoc a;
	struct tp_engine_cb cb;
	void *arg;
	unsigned idle_secs;

	struct dgram_relay *dg; /* UDP */

	/* TCP: listening, then connecting to DST, then relaying */
	int lfd, tfd;
	ev_io lio, tio, cio;
	ev_timer wait; /* idle while no connection is relayed */
	struct conn client;
	struct relay relay;
	bool relaying;
	uint64_t refused; /* connections from another source, reset */
};

/* ---- relays ---- */

static void counters_of(struct tp_relay *r, struct tp_counters *c)
{
	memset(c, 0, sizeof(*c));
	if (r->dg) {
		const struct dgram_counts *n = dgram_relay_counts(r->dg);
		c->pkts_up = n->up;
		c->bytes_up = n->up_bytes;
		c->pkts_down = n->down;
		c->bytes_down = n->down_bytes;
	} else {
		/* the splice relay counts bytes, not segments */
		c->bytes_up = r->relay.half[0].bytes;
		c->bytes_down = r->relay.half[1].bytes;
	}
}

/* Stops and frees r: when this returns no socket of r is open, so nothing
 * more is relayed. */
static void relay_free(struct tp_relay *r, struct tp_counters *final)
{
	struct ev_loop *loop = r->e->loop;
	if (final)
		counters_of(r, final);
	dgram_relay_free(r->dg);
	if (r->relaying) {
		relay_stop(&r->relay);
		conn_close(&r->client);
		close(r->relay.fd[1]);
	} else if (r->client.fd >= 0) {
		ev_io_stop(loop, &r->cio);
		close(r->client.fd);
	}
	ev_io_stop(loop, &r->lio);
	ev_io_stop(loop, &r->tio);
	ev_timer_stop(loop, &r->wait);
	if (r->lfd >= 0)
		close(r->lfd);
	if (r->tfd >= 0)
		close(r->tfd);
	if (r->prev)
		r->prev->next = r->next;
	else
		r->e->relays = r->next;
	if (r->next)
		r->next->prev = r->prev;
	free(r);
}

/* The relay ended on its own: freed first, then the control side hears. */
static void relay_ended(struct tp_relay *r, const char *why)
{
	struct tp_counters c;
	struct tp_engine_cb cb = r->cb;
	void *arg = r->arg;
	relay_free(r, &c);
	cb.ended(arg, why, &c);
}

/* ---- UDP ---- */

static int udp_decap(void *ctx, const uint8_t *p, size_t len, struct dgram_dst *dst, size_t *hdrlen)
{
	struct tp_relay *r = ctx;
	(void)p;
	(void)len;
	dst->addr = r->a.dst;
	dst->name = NULL;
	*hdrlen = 0;
	return 0;
}

/* Only DST's answers go back to the client: the target-facing socket is
 * not connected, and a pinhole to DST is not one to every host. */
static bool udp_allow(void *ctx, enum dgram_dir dir, const struct sockaddr *addr, const char *name,
		      bool log)
{
	struct tp_relay *r = ctx;
	(void)name;
	(void)log;
	return dir == DGRAM_UP || sa_equal(addr, (const struct sockaddr *)&r->a.dst);
}

static void udp_idle(void *ctx)
{
	relay_ended(ctx, "idle");
}

static const struct dgram_ops udp_ops = {
	.decap = udp_decap,
	.allow = udp_allow,
	.idle = udp_idle,
};

static int open_udp(struct tp_relay *r, struct sockaddr_storage *bound)
{
	struct dgram_params p = {
		.loop = r->e->loop,
		.batch = r->e->batch,
		.ops = &udp_ops,
		.ctx = r,
		.local = r->a.bnd,
		.pin = r->a.src,
		.pin_port = true,
		.idle_secs = r->idle_secs,
		.open_socket = r->a.open_socket,
		.sock_ctx = r->a.sock_ctx,
	};
	r->dg = dgram_relay_new(&p, bound);
	if (!r->dg)
		return -1;
	dgram_relay_start(r->dg);
	return 0;
}

/* ---- TCP ---- */

static void tcp_relay_done(struct relay *rl, const char *why)
{
	struct tp_relay *r = (struct tp_relay *)((char *)rl - offsetof(struct tp_relay, relay));
	relay_ended(r, why);
}

/* DST answered (or not): relay, the client socket having been watched by
 * this loop since accept (relay_start reuses its epoll registration). */
static void on_target(EV_P_ ev_io *w, int revents)
{
	struct tp_relay *r = w->data;
	int err = 0;
	socklen_t len = sizeof(err);
	(void)revents;
	ev_io_stop(EV_A, &r->tio);
	if (getsockopt(r->tfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		relay_ended(r, err == ECONNREFUSED ? "target refused" : "target unreachable");
		return;
	}
	ev_io_stop(EV_A, &r->cio);
	ev_timer_stop(EV_A, &r->wait);
	conn_init(&r->client, r->client.fd);
	if (relay_start(&r->relay, EV_A, r->e->pipes, &r->client, r->tfd, NULL, 0, r->idle_secs,
			TP_RELAY_BUFFER, tcp_relay_done) < 0) {
		relay_stop(&r->relay);
		relay_ended(r, "out of memory");
		return;
	}
	r->relaying = true;
	r->tfd = -1; /* the relay's now: conn_close(&r->relay.target) */
	r->relay.end_after_eof[1] = r->a.end_on_fin;
}

/* Client bytes before DST answered: they wait in the socket. */
static void on_client_early(EV_P_ ev_io *w, int revents)
{
	(void)revents;
	ev_io_stop(EV_A, w);
}

static void reset_close(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/* A TCP socket of the association, where tp_assoc says. */
static int relay_socket(const struct tp_relay *r, bool target, int family)
{
	int type = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
	if (r->a.open_socket)
		return r->a.open_socket(r->a.sock_ctx, target, family, type);
	return socket(family, type, 0);
}

static void on_accept(EV_P_ ev_io *w, int revents)
{
	struct tp_relay *r = w->data;
	(void)revents;
	for (int i = 0; i < 16; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(r->lfd, (struct sockaddr *)&peer, &plen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		sa_unmap(&peer);
		if (!sa_equal((struct sockaddr *)&peer, (struct sockaddr *)&r->a.src)) {
			r->refused++; /* another address or port: MUST be dropped */
			reset_close(fd);
			continue;
		}
		/* One connection per association: the listener goes. */
		ev_io_stop(EV_A, &r->lio);
		close(r->lfd);
		r->lfd = -1;
		r->client.fd = fd;
		ev_io_init(&r->cio, on_client_early, fd, EV_READ);
		r->cio.data = r;
		ev_io_start(EV_A, &r->cio);
		r->tfd = relay_socket(r, true, r->a.dst.ss_family);
		if (r->tfd < 0 || (connect(r->tfd, (struct sockaddr *)&r->a.dst,
					   sa_len((struct sockaddr *)&r->a.dst)) < 0 &&
				   errno != EINPROGRESS)) {
			relay_ended(r, errno == ECONNREFUSED ? "target refused" :
							       "target unreachable");
			return;
		}
		/* Even a connect that succeeded at once is relayed from the next
		 * wake-up, so the client socket's watcher is registered first. */
		ev_io_init(&r->tio, on_target, r->tfd, EV_WRITE);
		r->tio.data = r;
		ev_io_start(EV_A, &r->tio);
		return;
	}
}

static void on_wait_idle(EV_P_ ev_timer *w, int revents)
{
	(void)revents;
	(void)loop;
	relay_ended(w->data, "idle");
}

static int open_tcp(struct tp_relay *r, struct sockaddr_storage *bound)
{
	socklen_t len = sizeof(*bound);
	int one = 1;
	r->lfd = relay_socket(r, false, r->a.bnd.ss_family);
	if (r->lfd < 0)
		return -1;
	setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(r->lfd, (struct sockaddr *)&r->a.bnd, sa_len((struct sockaddr *)&r->a.bnd)) < 0 ||
	    listen(r->lfd, 4) < 0 || getsockname(r->lfd, (struct sockaddr *)bound, &len) < 0)
		return -1;
	sa_unmap(bound);
	ev_io_init(&r->lio, on_accept, r->lfd, EV_READ);
	r->lio.data = r;
	ev_io_start(r->e->loop, &r->lio);
	if (r->idle_secs) {
		ev_timer_init(&r->wait, on_wait_idle, r->idle_secs, 0);
		r->wait.data = r;
		ev_timer_start(r->e->loop, &r->wait);
	}
	return 0;
}

/* ---- the engine ---- */

static struct tp_engine *user_create(struct ev_loop *loop, const struct tp_conf *conf, char *err,
				     size_t errlen)
{
	struct tp_engine *e = calloc(1, sizeof(*e));
	(void)conf;
	if (e) {
		e->loop = loop;
		e->pipes = pipepool_new(TP_PIPES_CACHED);
		e->batch = udp_batch_new();
	}
	if (!e || !e->pipes || !e->batch) {
		snprintf(err, errlen, "user engine: out of memory");
		if (e) {
			pipepool_free(e->pipes);
			udp_batch_free(e->batch);
		}
		free(e);
		return NULL;
	}
	return e;
}

static void user_destroy(struct tp_engine *e)
{
	if (!e)
		return;
	while (e->relays)
		relay_free(e->relays, NULL);
	pipepool_free(e->pipes);
	udp_batch_free(e->batch);
	free(e);
}

static struct tp_relay *user_open(struct tp_engine *e, const struct tp_assoc *a,
				  const struct tp_engine_cb *cb, void *arg)
{
	struct sockaddr_storage bound;
	struct tp_relay *r;

	if (a->ptcl != SOCKS_PTCL_UDP && a->ptcl != SOCKS_PTCL_TCP) {
		errno = EPROTONOSUPPORT;
		return NULL;
	}
	if (!(r = calloc(1, sizeof(*r))))
		return NULL;
	r->e = e;
	r->a = *a;
	r->cb = *cb;
	r->arg = arg;
	r->lfd = r->tfd = r->client.fd = -1;
	r->idle_secs = (a->idle_ms + 999) / 1000;
	r->next = e->relays;
	if (e->relays)
		e->relays->prev = r;
	e->relays = r;
	if ((a->ptcl == SOCKS_PTCL_UDP ? open_udp(r, &bound) : open_tcp(r, &bound)) < 0) {
		int saved = errno;
		relay_free(r, NULL);
		errno = saved;
		return NULL;
	}
	/* Synchronous: BND is known now. The control side expects this from
	 * inside open() (tp_engine.h). */
	cb->opened(arg, 0, &bound);
	return r;
}

static void user_counters(struct tp_relay *r, struct tp_counters *out)
{
	counters_of(r, out);
}

static void user_close(struct tp_relay *r, struct tp_counters *final)
{
	relay_free(r, final);
}

const struct tp_engine_ops tp_engine_user = {
	.name = "user",
	.create = user_create,
	.destroy = user_destroy,
	.open = user_open,
	.counters = user_counters,
	.close = user_close,
};
