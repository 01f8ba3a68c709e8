/*
 * listener.c - listening sockets: one SO_REUSEPORT socket per configured
 * address per worker, so the kernel spreads connections over the workers.
 * Accepts in batches; on EMFILE/ENFILE pauses accepting for a moment instead
 * of spinning on a socket it cannot drain.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "server/server.h"
#include "server/session_int.h"

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_SECS 0.2

int listener_open(const struct conf_listener *cl, char *err, size_t errlen)
{
	char where[SA_STR_MAX];
	int one = 1;
	int fd = socket(cl->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	sa_str((const struct sockaddr *)&cl->addr, where, sizeof(where));
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", where, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (cl->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* Replies are small and latency matters more than segment count. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cl->addr, cl->addrlen) < 0) {
		snprintf(err, errlen, "listen %s: bind: %s", where, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, 4096) < 0) {
		snprintf(err, errlen, "listen %s: listen: %s", where, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void on_accept(EV_P_ ev_io *w, int revents)
{
	struct listener *l = w->data;
	struct worker *wk = l->w;

	for (int i = 0; i < ACCEPT_BATCH && !wk->draining; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			session_start(wk, l->conf, fd, &peer);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			log_warn("accept on %s", l->conf->name);
			listener_pause(wk, ACCEPT_PAUSE_SECS);
			return;
		default:
			return; /* EAGAIN: drained */
		}
	}
}

void listener_start(struct listener *l)
{
	ev_io_init(&l->io, on_accept, l->fd, EV_READ);
	l->io.data = l;
	ev_io_start(l->w->loop, &l->io);
}

static void on_resume(EV_P_ ev_timer *t, int revents)
{
	struct worker *w = t->data;
	if (w->draining)
		return;
	for (size_t i = 0; i < w->n_listeners; i++)
		if (w->listeners[i].fd >= 0)
			ev_io_start(EV_A_ & w->listeners[i].io);
}

void listener_pause(struct worker *w, double secs)
{
	for (size_t i = 0; i < w->n_listeners; i++)
		ev_io_stop(w->loop, &w->listeners[i].io);
	ev_timer_stop(w->loop, &w->accept_pause);
	ev_timer_init(&w->accept_pause, on_resume, secs, 0.);
	w->accept_pause.data = w;
	ev_timer_start(w->loop, &w->accept_pause);
}

void listener_close_all(struct worker *w)
{
	ev_timer_stop(w->loop, &w->accept_pause);
	for (size_t i = 0; i < w->n_listeners; i++) {
		ev_io_stop(w->loop, &w->listeners[i].io);
		if (w->listeners[i].fd >= 0)
			close(w->listeners[i].fd);
		w->listeners[i].fd = -1;
	}
}
