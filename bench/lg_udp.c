/*
 * lg_udp.c - `udp`: F flows, each a UDP ASSOCIATE (control connection plus
 * one UDP socket) sending --size-byte datagrams to the UDP echo through the
 * relay, with at most --window datagrams in flight. A flow that hears
 * nothing for U_LOSS_MS writes off what is in flight as lost and goes on,
 * so a dropped datagram costs a pause, never a stall. Datagrams/s counts
 * echoes received while measuring; loss compares all sent and received
 * after a short drain.
 *
 * Control connections live on w->ep (lg_conn's epoll); that epoll is itself
 * watched by u_ep next to the UDP sockets (data.ptr NULL marks it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"

#define U_MAX_DGRAM 8192
#define U_LOSS_MS 100
#define U_DRAIN_MS 300
#define U_RX_BATCH 64

struct u_flow {
	struct lg_conn *ctl;
	int ufd;
	bool ready;
	int tidx;
	uint8_t hdr[SOCKS_UDP_HDR_MAX];
	size_t hdrlen;
	uint64_t sent, recvd, written_off;
	uint64_t last_progress; /* ns */
};

struct u_worker {
	int u_ep;
	struct u_flow *flows;
	uint8_t tx[U_MAX_DGRAM + SOCKS_UDP_HDR_MAX];
	uint8_t rx[U_MAX_DGRAM + SOCKS_UDP_HDR_MAX];
	uint64_t sent, recvd;
};

static struct u_flow *u_flow_of(struct lg_worker *w, struct lg_conn *c)
{
	struct u_worker *uw = w->mode;
	return &uw->flows[c - w->conns];
}

static void u_fail(struct lg_worker *w, struct u_flow *f, const char *why)
{
	f->ctl->why = why;
	lg_worker_fail(w, f->ctl, "udp flow");
	lg_conn_close(f->ctl);
	if (f->ufd >= 0)
		close(f->ufd);
	f->ufd = -1;
	f->ready = false;
}

/* Points the UDP socket at the relay (or the echo) and counts the flow ready. */
static void u_flow_ready(struct lg_worker *w, struct u_flow *f, const struct sockaddr_in *to)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = f };
	struct u_worker *uw = w->mode;

	if (connect(f->ufd, (const struct sockaddr *)to, sizeof(*to)) < 0 ||
	    epoll_ctl(uw->u_ep, EPOLL_CTL_ADD, f->ufd, &ev) < 0) {
		u_fail(w, f, "udp connect");
		return;
	}
	f->ready = true;
	f->last_progress = lg_now_ns();
	atomic_fetch_add(&w->run->ready, 1);
}

static void u_ctl_event(struct lg_worker *w, struct lg_conn *c, uint32_t events)
{
	struct u_flow *f = u_flow_of(w, c);
	struct sockaddr_in relay;
	uint8_t junk[64];

	if (c->hs != LG_HS_DONE) {
		if (lg_worker_handshake(w, c, events, false) <= 0)
			return;
		c->deadline = 0;
		if (c->reply.bnd.atyp != SOCKS_ATYP_IPV4) {
			u_fail(w, f, "relay address is not IPv4");
			return;
		}
		memset(&relay, 0, sizeof(relay));
		relay.sin_family = AF_INET;
		relay.sin_port = htons(c->reply.bnd.port);
		memcpy(&relay.sin_addr, c->reply.bnd.u.v4, 4);
		if (relay.sin_addr.s_addr == INADDR_ANY) /* "same address as the proxy" */
			relay.sin_addr = w->run->o->proxy.sin_addr;
		if (!lg_is_loopback(&relay)) {
			u_fail(w, f, "relay address is not loopback");
			return;
		}
		if (lg_conn_watch(c, w->ep, EPOLLIN) < 0)
			u_fail(w, f, "epoll");
		else
			u_flow_ready(w, f, &relay);
		return;
	}
	ssize_t n = recv(c->fd, junk, sizeof(junk), 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		u_fail(w, f, "control connection closed");
}

static uint64_t u_inflight(const struct u_flow *f)
{
	uint64_t done = f->recvd + f->written_off;
	return f->sent > done ? f->sent - done : 0;
}

static void u_send(struct lg_worker *w, struct u_flow *f)
{
	struct u_worker *uw = w->mode;
	size_t size = w->run->o->size;
	uint64_t window = (uint64_t)w->run->o->window;

	if (u_inflight(f) == 0)
		f->last_progress = lg_now_ns();
	memcpy(uw->tx, f->hdr, f->hdrlen);
	while (u_inflight(f) < window) {
		memcpy(uw->tx + f->hdrlen, &f->sent, sizeof(f->sent)); /* a sequence number */
		ssize_t n = send(f->ufd, uw->tx, f->hdrlen + size, 0);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ENOBUFS)
				u_fail(w, f, "udp send failed");
			return;
		}
		f->sent++;
	}
}

static void u_recv(struct lg_worker *w, struct u_flow *f)
{
	struct u_worker *uw = w->mode;
	size_t size = w->run->o->size;
	uint64_t got = 0;

	for (int i = 0; i < U_RX_BATCH; i++) {
		ssize_t n = recv(f->ufd, uw->rx, sizeof(uw->rx), MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				u_fail(w, f, "udp recv failed (relay gone?)");
			break;
		}
		size_t off = 0;
		if (!w->run->o->direct) {
			struct socks_udp_hdr h;
			struct socks_err err;
			if (socks_udp_parse(&h, uw->rx, (size_t)n, &err) != SOCKS_DONE)
				continue;
			off = h.hdrlen;
		}
		if ((size_t)n - off != size)
			continue;
		got++;
	}
	if (got) {
		f->recvd += got;
		/* A written-off datagram may still arrive late: take it back. */
		if (f->recvd + f->written_off > f->sent)
			f->written_off = f->sent - f->recvd;
		f->last_progress = lg_now_ns();
		atomic_fetch_add_explicit(&w->run->count, got, memory_order_relaxed);
	}
}

/* Loss detection and (while sending) refilling every window. */
static void u_tick(struct lg_worker *w, bool sending)
{
	struct u_worker *uw = w->mode;
	uint64_t now = lg_now_ns();

	for (size_t k = 0; k < w->nconns; k++) {
		struct u_flow *f = &uw->flows[k];
		if (!f->ready) {
			if (f->ctl->fd >= 0 && f->ctl->deadline && now > f->ctl->deadline)
				u_fail(w, f, "association timed out");
			continue;
		}
		if (u_inflight(f) && now - f->last_progress > U_LOSS_MS * 1000000ull) {
			f->written_off += u_inflight(f);
			f->last_progress = now;
		}
		if (sending)
			u_send(w, f);
	}
}

static void u_ctl_events(struct lg_worker *w)
{
	struct epoll_event evs[64];
	int n = epoll_wait(w->ep, evs, 64, 0);
	for (int i = 0; i < n; i++) {
		struct lg_conn *c = evs[i].data.ptr;
		if (c->fd >= 0)
			u_ctl_event(w, c, evs[i].events);
	}
}

static void u_loop(struct lg_worker *w, uint64_t until)
{
	struct u_worker *uw = w->mode;
	struct epoll_event evs[64];

	for (;;) {
		int phase = atomic_load(&w->run->phase);
		bool sending = phase == LG_WARMUP || phase == LG_MEASURE;
		if (phase == LG_STOP && until == 0)
			until = lg_now_ns() + U_DRAIN_MS * 1000000ull;
		if ((phase == LG_STOP && lg_now_ns() >= until) || w->nerrors >= LG_ERROR_CAP)
			return;
		int n = epoll_wait(uw->u_ep, evs, 64, LG_TICK_MS);
		for (int i = 0; i < n; i++) {
			struct u_flow *f = evs[i].data.ptr;
			if (!f)
				u_ctl_events(w);
			else if (f->ufd >= 0) {
				u_recv(w, f);
				if (sending && f->ufd >= 0)
					u_send(w, f);
			}
		}
		u_tick(w, sending);
	}
}

/* Binds the flow's UDP socket and starts the association (or, direct,
 * aims the socket at the echo right away). */
static void u_flow_open(struct lg_worker *w, struct u_flow *f)
{
	struct lg_run *run = w->run;
	struct sockaddr_in me = { .sin_family = AF_INET };
	socklen_t len = sizeof(me);
	struct socks_addr dst;
	int sz = 4 << 20;

	me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->ufd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->ufd < 0 || bind(f->ufd, (struct sockaddr *)&me, sizeof(me)) < 0 ||
	    getsockname(f->ufd, (struct sockaddr *)&me, &len) < 0) {
		u_fail(w, f, "udp socket");
		return;
	}
	setsockopt(f->ufd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(f->ufd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	lg_addr_from_sin(&dst, &run->tg->addr[f->tidx]);
	f->hdrlen = run->o->direct ? 0 : socks_udp_write(f->hdr, sizeof(f->hdr), 0, &dst);
	if (run->o->direct) {
		f->ctl->fd = -1;
		u_flow_ready(w, f, &run->tg->addr[f->tidx]);
		return;
	}
	/* DST of UDP ASSOCIATE: where our datagrams will come from (RFC 1928 s.4). */
	lg_addr_from_sin(&dst, &me);
	if (lg_conn_open(f->ctl, w->ep, &run->o->proxy, SOCKS_CMD_UDP_ASSOCIATE, &dst, false) < 0)
		u_fail(w, f, "open");
}

static void *u_main(void *arg)
{
	struct lg_worker *w = arg;
	struct u_worker *uw = calloc(1, sizeof(*uw));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	if (!uw)
		return NULL;
	w->mode = uw;
	uw->flows = calloc(w->nconns ? w->nconns : 1, sizeof(*uw->flows));
	uw->u_ep = epoll_create1(EPOLL_CLOEXEC);
	if (!uw->flows || uw->u_ep < 0 || epoll_ctl(uw->u_ep, EPOLL_CTL_ADD, w->ep, &ev) < 0) {
		lg_worker_fail(w, NULL, "udp worker");
		free(uw->flows);
		free(uw);
		w->mode = NULL;
		return NULL;
	}
	memset(uw->tx, 'd', sizeof(uw->tx));
	for (size_t k = 0; k < w->nconns; k++) {
		struct u_flow *f = &uw->flows[k];
		f->ctl = &w->conns[k];
		f->tidx = (int)(((size_t)w->id + k * (size_t)w->run->o->threads) %
				(size_t)w->run->tg->n);
		u_flow_open(w, f);
	}
	u_loop(w, 0);
	for (size_t k = 0; k < w->nconns; k++) {
		uw->sent += uw->flows[k].sent;
		uw->recvd += uw->flows[k].recvd;
		if (uw->flows[k].ufd >= 0)
			close(uw->flows[k].ufd);
	}
	close(uw->u_ep);
	return NULL; /* uw stays in w->mode for the totals */
}

int lg_mode_udp(struct lg_run *run, struct lg_result *res)
{
	const struct lg_opts *o = run->o;
	struct lg_worker w[LG_MAX_THREADS];
	char err[256];
	uint64_t delta = 0;
	int rc = 0;

	if (o->size < sizeof(uint64_t) || o->size > U_MAX_DGRAM) {
		lg_run_error(run, "--size must be 8..%d for udp", U_MAX_DGRAM);
		return -1;
	}
	if (lg_workers_init(run, w, (size_t)o->streams, err, sizeof(err)) < 0 ||
	    lg_workers_start(run, w, u_main) < 0) {
		lg_run_error(run, "%s", err);
		return -1;
	}
	if (lg_wait_ready(run, (uint64_t)o->streams, LG_SETUP_SECS)) {
		res->seconds = lg_timeline(run, &run->count, &delta);
		res->per_s = (double)delta / res->seconds;
	} else {
		lg_run_error(run, "only %lu of %d associations set up",
			     (unsigned long)atomic_load(&run->ready), o->streams);
		rc = -1;
	}
	atomic_store(&run->phase, LG_STOP);
	lg_workers_finish(run, w);
	for (int i = 0; i < o->threads; i++) {
		struct u_worker *uw = w[i].mode;
		if (!uw)
			continue;
		res->sent += uw->sent;
		res->received += uw->recvd;
		free(uw->flows);
		free(uw);
	}
	if (res->sent)
		res->loss_pct = 100.0 * (double)(res->sent - (res->received < res->sent ?
							       res->received : res->sent)) /
				(double)res->sent;
	return rc;
}
