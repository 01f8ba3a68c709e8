/*
 * lg_target.c - the far end of every benchmark: a TCP sink, TCP source,
 * TCP echo or UDP echo, served on 127.0.0.2, 127.0.0.3, ... by threads that
 * share each port through SO_REUSEPORT. Several addresses spread the
 * proxy's outgoing connections over more 4-tuples, so the ephemeral port
 * range does not run out in the connection-rate runs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"

#define T_BUF (256 * 1024)
#define T_ROUNDS 16      /* reads or writes per event, so one peer cannot starve others */
#define T_BATCH 64       /* datagrams per recvmmsg */
#define T_DGRAM_MAX 2048

enum t_role { T_LISTEN, T_CONN, T_UDP };

/* One socket a target thread watches; conns sit on a list for teardown. */
struct t_sock {
	enum t_role role;
	int fd;
	uint8_t *pend; /* echo bytes the peer has not taken yet */
	size_t plen, poff;
	struct t_sock *prev, *next;
};

struct t_thread {
	struct lg_targets *t;
	int ep;
	uint8_t *buf;
	struct t_sock *conns;  /* accepted connections */
	struct t_sock *socks;  /* listeners / UDP sockets, n of them */
	int nsocks;
};

static struct t_thread g_thr[LG_MAX_THREADS];

static int t_watch(int ep, int op, struct t_sock *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };
	return epoll_ctl(ep, op, s->fd, &ev);
}

static void t_conn_close(struct t_thread *th, struct t_sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		th->conns = s->next;
	if (s->next)
		s->next->prev = s->prev;
	close(s->fd);
	free(s->pend);
	free(s);
}

static void t_accept(struct t_thread *th, struct t_sock *l)
{
	uint32_t events = th->t->kind == LG_T_SOURCE ? EPOLLIN | EPOLLOUT : EPOLLIN;

	for (int i = 0; i < T_BATCH; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				fprintf(stderr, "loadgen: target accept: %s\n", strerror(errno));
			return;
		}
		struct t_sock *s = calloc(1, sizeof(*s));
		if (!s) {
			close(fd);
			return;
		}
		s->role = T_CONN;
		s->fd = fd;
		s->next = th->conns;
		if (th->conns)
			th->conns->prev = s;
		th->conns = s;
		if (t_watch(th->ep, EPOLL_CTL_ADD, s, events) < 0)
			t_conn_close(th, s);
	}
}

/* Reads and discards; counts bytes for the "up" direction. */
static bool t_sink(struct t_thread *th, struct t_sock *s)
{
	uint64_t got = 0;
	bool open = true;

	for (int i = 0; i < T_ROUNDS; i++) {
		ssize_t n = recv(s->fd, th->buf, T_BUF, 0);
		if (n > 0) {
			got += (uint64_t)n;
			continue;
		}
		open = n < 0 && (errno == EAGAIN || errno == EINTR);
		break;
	}
	if (got)
		atomic_fetch_add_explicit(&th->t->bytes_in, got, memory_order_relaxed);
	return open;
}

static bool t_source(struct t_thread *th, struct t_sock *s, uint32_t events)
{
	if (events & EPOLLIN) {
		ssize_t n = recv(s->fd, th->buf, T_BUF, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return false;
	}
	if (!(events & EPOLLOUT))
		return true;
	for (int i = 0; i < T_ROUNDS; i++) {
		ssize_t n = send(s->fd, th->buf, T_BUF, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
	}
	return true;
}

/* Echo: what cannot be sent back now waits in s->pend, and reading stops
 * until it is gone (the peer's window is the back pressure). */
static bool t_echo(struct t_thread *th, struct t_sock *s, uint32_t events)
{
	if (s->plen > s->poff) {
		ssize_t n = send(s->fd, s->pend + s->poff, s->plen - s->poff, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		s->poff += (size_t)n;
		if (s->poff < s->plen)
			return true;
		s->plen = s->poff = 0;
		return t_watch(th->ep, EPOLL_CTL_MOD, s, EPOLLIN) == 0;
	}
	for (int i = 0; i < T_ROUNDS; i++) {
		ssize_t n = recv(s->fd, th->buf, 64 * 1024, 0);
		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		ssize_t w = send(s->fd, th->buf, (size_t)n, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN)
			return false;
		if (w < 0)
			w = 0;
		if (w < n) {
			size_t left = (size_t)(n - w);
			uint8_t *p = realloc(s->pend, left);
			if (!p)
				return false;
			memcpy(p, th->buf + w, left);
			s->pend = p;
			s->plen = left;
			s->poff = 0;
			return t_watch(th->ep, EPOLL_CTL_MOD, s, EPOLLOUT) == 0;
		}
	}
	return true;
}

static void t_udp_echo(struct t_thread *th, struct t_sock *s)
{
	struct mmsghdr msgs[T_BATCH];
	struct iovec iov[T_BATCH];
	struct sockaddr_in from[T_BATCH];

	for (int round = 0; round < T_ROUNDS; round++) {
		for (int i = 0; i < T_BATCH; i++) {
			iov[i].iov_base = th->buf + (size_t)i * T_DGRAM_MAX;
			iov[i].iov_len = T_DGRAM_MAX;
			memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
			msgs[i].msg_hdr.msg_name = &from[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(s->fd, msgs, T_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++)
			iov[i].iov_len = msgs[i].msg_len;
		/* A datagram the socket cannot take now is dropped, as UDP would. */
		sendmmsg(s->fd, msgs, (unsigned)n, MSG_DONTWAIT);
		if (n < T_BATCH)
			return;
	}
}

static void t_event(struct t_thread *th, struct t_sock *s, uint32_t events)
{
	bool open = true;

	switch (s->role) {
	case T_LISTEN:
		t_accept(th, s);
		return;
	case T_UDP:
		t_udp_echo(th, s);
		return;
	case T_CONN:
		break;
	}
	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN))
		open = false;
	else if (th->t->kind == LG_T_SINK)
		open = t_sink(th, s);
	else if (th->t->kind == LG_T_SOURCE)
		open = t_source(th, s, events);
	else
		open = t_echo(th, s, events);
	if (!open)
		t_conn_close(th, s);
}

static void *t_main(void *arg)
{
	struct t_thread *th = arg;
	struct epoll_event evs[256];

	while (!atomic_load(&th->t->stop)) {
		int n = epoll_wait(th->ep, evs, 256, 50);
		for (int i = 0; i < n; i++)
			t_event(th, evs[i].data.ptr, evs[i].events);
	}
	while (th->conns)
		t_conn_close(th, th->conns);
	return NULL;
}

/* Binds a socket of the target's kind to addr (port 0: pick one). */
static int t_bind(enum lg_tkind kind, struct sockaddr_in *addr, char *err, size_t errlen)
{
	int udp = kind == LG_T_UDP_ECHO, one = 1;
	int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);
	socklen_t len = sizeof(*addr);
	char ip[INET_ADDRSTRLEN];

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 ||
	    (!udp && listen(fd, 4096) < 0) ||
	    getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
		inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof(ip));
		snprintf(err, errlen, "target %s:%u: %s", ip, ntohs(addr->sin_port),
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (udp) {
		int sz = 4 << 20; /* bursts of a whole window from many flows */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	return fd;
}

static int t_thread_init(struct lg_targets *t, int k, char *err, size_t errlen)
{
	struct t_thread *th = &g_thr[k];
	size_t bufsize = t->kind == LG_T_UDP_ECHO ? (size_t)T_BATCH * T_DGRAM_MAX : T_BUF;

	memset(th, 0, sizeof(*th));
	th->t = t;
	th->ep = epoll_create1(EPOLL_CLOEXEC);
	th->buf = malloc(bufsize);
	th->socks = calloc((size_t)t->n, sizeof(*th->socks));
	if (th->ep < 0 || !th->buf || !th->socks) {
		snprintf(err, errlen, "target thread: %s", strerror(errno));
		return -1;
	}
	memset(th->buf, 'x', bufsize);
	for (int i = 0; i < t->n; i++) {
		struct t_sock *s = &th->socks[i];
		s->role = t->kind == LG_T_UDP_ECHO ? T_UDP : T_LISTEN;
		if ((s->fd = t_bind(t->kind, &t->addr[i], err, errlen)) < 0)
			return -1;
		th->nsocks++;
		if (t_watch(th->ep, EPOLL_CTL_ADD, s, EPOLLIN) < 0) {
			snprintf(err, errlen, "epoll: %s", strerror(errno));
			return -1;
		}
	}
	t->ep[k] = th->ep;
	return 0;
}

int lg_targets_start(struct lg_targets *t, enum lg_tkind kind, int naddr, int nthreads,
		     char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->n = naddr;
	t->nthreads = nthreads;
	for (int i = 0; i < naddr; i++) {
		t->addr[i].sin_family = AF_INET;
		t->addr[i].sin_addr.s_addr = htonl(0x7F000002u + (uint32_t)i); /* 127.0.0.2+i */
	}
	/* Thread 0 picks the ports; the others join them through SO_REUSEPORT. */
	for (int k = 0; k < nthreads; k++)
		if (t_thread_init(t, k, err, errlen) < 0)
			return -1;
	for (int k = 0; k < nthreads; k++)
		if (pthread_create(&t->th[k], NULL, t_main, &g_thr[k]) != 0) {
			snprintf(err, errlen, "pthread_create failed");
			t->nthreads = k;
			return -1;
		}
	return 0;
}

void lg_targets_stop(struct lg_targets *t)
{
	atomic_store(&t->stop, true);
	for (int k = 0; k < t->nthreads; k++) {
		struct t_thread *th = &g_thr[k];
		pthread_join(t->th[k], NULL);
		for (int i = 0; i < th->nsocks; i++)
			close(th->socks[i].fd);
		close(th->ep);
		free(th->buf);
		free(th->socks);
	}
	t->nthreads = 0;
}
