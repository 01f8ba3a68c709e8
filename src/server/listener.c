/*
 * listener.c - listening sockets: one SO_REUSEPORT socket per configured
 * address per worker, so the kernel spreads connections over the workers.
 * Accepts in batches. Out of file descriptors (EMFILE/ENFILE), a worker
 * refuses new connections at once instead of leaving them in the backlog:
 * it closes its spare descriptor, accepts and closes the connection, and
 * opens the spare again (the client sees its connection closed, not a
 * hang). It logs the shortage once when it starts, once per
 * LOG_RATE_INTERVAL while it lasts and once when an accept succeeds again,
 * with the number refused. Without a spare (ENOBUFS, ENOMEM, or the spare
 * could not be reopened) it pauses accepting for a moment instead of
 * spinning on a socket it cannot drain.
 */
#include <fcntl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "server/broker.h"
#include "server/ext.h"
#include "server/listendiag.h"
#include "server/server.h"
#include "server/session_int.h"

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_SECS 0.2
#define LISTENER_TFO_QLEN 256 /* SYNs with data pending at once (listener_fastopen) */

/* A socket of the listener's family with the options every bind here uses:
 * SO_REUSEADDR (a restart is not blocked by the old instance's TIME_WAIT or
 * draining connections) and, for IPv6, V6ONLY (an IPv6 listener claims only
 * IPv6, so [::]:P and 0.0.0.0:P are separate listeners). */
static int listener_socket(const struct conf_listener *cl)
{
	int one = 1;
	/* A module may make it elsewhere (a compartment's namespace). */
	int fd = ext_listen_socket(cl, cl->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				   0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (cl->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	return fd;
}

/*
 * SO_REUSEPORT lets any socket of the same user join our group, so a second
 * stpd on the same address would bind without error and take a share of the
 * connections under its own policy. Before any worker binds, bind a probe
 * socket with the same options but WITHOUT SO_REUSEPORT. The kernel then
 * applies its ordinary rules (inet_csk_bind_conflict), which are exactly
 * "someone else is there":
 *  - any listening socket on an overlapping address (same address, the
 *    wildcard vs a specific one, a dual-stack [::] vs IPv4), of any user and
 *    with or without SO_REUSEPORT, makes it fail with EADDRINUSE;
 *  - TIME_WAIT and still-open connections of an old instance (SO_REUSEADDR,
 *    not listening) do not, so a restart right after the old one stopped
 *    listening works;
 *  - the probe never listens and is closed before our own sockets bind, so
 *    it cannot collide with them; every address is probed before the first
 *    worker binds, so our own 0.0.0.0:P does not block our own 127.0.0.1:P.
 * Port 0 is refused by the config (each worker would get its own port).
 * Addresses a reload adds (listener_reload.c) are not probed: after the drop the
 * probe could not bind a low port, and SO_REUSEPORT groups only sockets
 * of one uid, so another user's listener still makes bind fail. Two instances
 * started at the same moment can both pass the probe before either listens;
 * listener_check_alone closes that window afterwards.
 */
int listener_check_free(const struct conf_listener *cl, char *err, size_t errlen)
{
	char where[SA_STR_MAX];
	int fd = listener_socket(cl);

	sa_str((const struct sockaddr *)&cl->addr, where, sizeof(where));
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", where, strerror(errno));
		return -1;
	}
	if (bind(fd, (const struct sockaddr *)&cl->addr, cl->addrlen) == 0) {
		close(fd);
		return 0;
	}
	if (errno == EADDRINUSE)
		snprintf(err, errlen,
			 "listen %s: address already in use: another process listens on %s "
			 "(or on an address covering it); not starting a second server there",
			 where, where);
	else
		snprintf(err, errlen, "listen %s: bind: %s", where, strerror(errno));
	close(fd);
	return -1;
}

/*
 * After every worker listens: no listening socket but ours may cover our
 * addresses. A check before binding cannot see an instance that binds in the
 * same instant; this one can, because whichever of two instances checks
 * last sees the other's sockets (both listen before they check), so at most
 * one of them keeps running. Our sockets are known by inode (fstat), which
 * is what sock_diag reports. When the socket table cannot be read (no
 * sock_diag in a sandbox), the probe alone has to do: say so, start anyway.
 */
int listener_check_alone(const struct worker *ws, unsigned n_workers, char *err, size_t errlen)
{
	size_t n_lis = n_workers ? ws[0].n_listeners : 0, n_ours = 0;
	ino_t *ours = calloc(n_workers * n_lis + 1, sizeof(*ours));
	char who[SA_STR_MAX + 40], where[SA_STR_MAX], why[256];
	int rc = 0;

	if (!ours) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (unsigned w = 0; w < n_workers; w++)
		for (size_t i = 0; i < ws[w].n_listeners; i++) {
			struct stat st;
			if (fstat(ws[w].listeners[i].fd, &st) == 0)
				ours[n_ours++] = st.st_ino;
		}
	for (size_t i = 0; i < n_lis && rc == 0; i++) {
		const struct conf_listener *cl = ws[0].listeners[i].conf;
		const struct sockaddr *sa = (const struct sockaddr *)&cl->addr;
		int r = listendiag_foreign(sa, ours, n_ours, who, sizeof(who), why, sizeof(why));
		sa_str(sa, where, sizeof(where));
		if (r < 0) {
			log_info("listen %s: cannot list listening sockets (%s); relying on the "
				 "check before binding", where, why);
			break;
		}
		if (r > 0) {
			snprintf(err, errlen,
				 "listen %s: address already in use: another process listens on %s "
				 "(started at the same time?); not starting a second server there",
				 where, who);
			rc = -1;
		}
	}
	free(ours);
	return rc;
}

/*
 * TCP Fast Open (RFC 7413): a client with a cookie sends its greeting (and
 * with libstp's pipelining the whole handshake) in the SYN, so the first
 * round trip carries SOCKS bytes. stpd takes them like any other input. The
 * kernel decides whether it is used: net.ipv4.tcp_fastopen bit 2 (value 2
 * or 3) enables the server side; without it the option is inert. The queue
 * bounds the connections whose SYN data was accepted before the handshake
 * completed (the kernel's defence against SYN floods with data). Linux
 * takes the option on a listening socket too, so a reload can turn it on
 * or off (queue 0) on a kept listener.
 */
int listener_fastopen(int fd, bool on)
{
	int qlen = on ? LISTENER_TFO_QLEN : 0; /* 0: the kernel takes no SYN data */
	return setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen));
}

/* bind(2) on cl's address refused with EACCES (a port below 1024 after
 * the drop): the broker's socket, bound in cl's place (stpd's namespace or
 * a compartment's) if its own copy of the file lists the address there;
 * -1 without a broker or a channel. */
static int broker_bound(const struct conf_listener *cl, const struct worker *w)
{
	if (!w || !broker_running())
		return -1;
	return broker_listen(w->id, (const struct sockaddr *)&cl->addr, cl->addrlen,
			     ext_listener_place(cl));
}

int listener_open(const struct conf_listener *cl, const struct worker *w, char *err,
		  size_t errlen)
{
	char where[SA_STR_MAX];
	int one = 1;
	int fd = listener_socket(cl);

	sa_str((const struct sockaddr *)&cl->addr, where, sizeof(where));
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", where, strerror(errno));
		return -1;
	}
	/* Our workers share the port; listener_check_free ran first. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	/* Replies are small and latency matters more than segment count. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cl->addr, cl->addrlen) < 0) {
		int e = errno;
		close(fd);
		fd = e == EACCES ? broker_bound(cl, w) : -1;
		if (fd < 0) {
			snprintf(err, errlen, "listen %s: bind: %s", where, strerror(e));
			return -1;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (listen(fd, 4096) < 0) {
		snprintf(err, errlen, "listen %s: listen: %s", where, strerror(errno));
		close(fd);
		return -1;
	}
	if (!cl->no_fastopen && listener_fastopen(fd, true) < 0)
		log_debug("listen %s: TCP_FASTOPEN: %s", where, strerror(errno));
	return fd;
}

int listener_spare_open(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* EMFILE/ENFILE: refuse one connection with the spare descriptor. True
 * when one was refused and the spare is back (the caller goes on). */
static bool refuse_one(struct listener *l, int err)
{
	struct worker *w = l->w;
	double now = ev_now(w->loop);
	bool refused = false;

	if (w->spare_fd >= 0) {
		close(w->spare_fd);
		int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			refused = true;
		}
		w->spare_fd = listener_spare_open();
	}
	if (refused) {
		stats_limit(STATS_LIM_ACCEPT);
		w->fd_refused++;
	}
	if (!w->fd_short) {
		w->fd_short = true;
		w->fd_logged = now;
		w->fd_refused_logged = 0;
		log_warnx("worker %u: out of file descriptors (%s): refusing new connections "
			  "on %s until some are free",
			  w->id, strerror(err), l->conf->name);
	} else if (now - w->fd_logged >= LOG_RATE_INTERVAL) {
		log_warnx("worker %u: still out of file descriptors: refused %llu connections "
			  "in the last %.0f s",
			  w->id, (unsigned long long)(w->fd_refused - w->fd_refused_logged),
			  now - w->fd_logged);
		w->fd_logged = now;
		w->fd_refused_logged = w->fd_refused;
	}
	return refused && w->spare_fd >= 0;
}

static void fds_back(struct worker *w)
{
	log_info("worker %u: file descriptors available again; %llu connections were refused",
		 w->id, (unsigned long long)w->fd_refused);
	w->fd_short = false;
	w->fd_refused = 0;
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
			if (wk->fd_short)
				fds_back(wk);
			session_start(wk, l->conf, fd, &peer);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
			continue;
		case EMFILE:
		case ENFILE:
			if (refuse_one(l, errno))
				continue;
			if (wk->spare_fd >= 0)
				return; /* nothing was waiting */
			listener_pause(wk, ACCEPT_PAUSE_SECS);
			return;
		case ENOBUFS:
		case ENOMEM:
		{
			/* A flood of connections reaches this at will. */
			static struct log_rate rl = LOG_RATE_INIT("accept failed");
			log_warn_rl(&rl, "accept on %s", l->conf->name);
			stats_limit(STATS_LIM_ACCEPT);
		}
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
