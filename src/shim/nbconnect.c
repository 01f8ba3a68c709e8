/*
 * nbconnect.c - connect() through the proxy on the application's own fd,
 * for blocking and non-blocking sockets alike.
 *
 * The fd is connected to the proxy and the whole SOCKS handshake runs
 * inside the connect() call, with a deadline (timeout, default 30 s),
 * using poll() on the fd and MSG_DONTWAIT I/O: the fd's O_NONBLOCK flag is
 * never touched. Then:
 *
 *   blocking fd      connect() returns 0, or -1 with the mapped errno.
 *   non-blocking fd  connect() returns -1/EINPROGRESS either way. On
 *                    success the socket is already a working tunnel, so
 *                    poll/select/epoll report it writable at once and
 *                    SO_ERROR reads 0. On failure the socket is shut down
 *                    (poll says POLLOUT|POLLHUP, waking every kind of
 *                    waiter) and getsockopt(SO_ERROR) reports the mapped
 *                    errno once, as the kernel would.
 *
 * Why not finish the handshake later, in the background? The fd must stay
 * a real TCP socket to the proxy (getsockname, setsockopt, epoll
 * registrations are bound to it), and a connected TCP socket is writable
 * as soon as the proxy accepts: the application would write its request
 * into the middle of the handshake. Holding that back needs hooks in
 * poll/select/epoll_wait/io_uring, which cannot be made exact (epoll hands
 * back the caller's data, not the fd). docs/stpify.md has the details.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/sockaddr.h"
#include "shim/shim.h"

static int64_t nb_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t shim_deadline(int timeout_ms) { return nb_now_ms() + timeout_ms; }

int shim_remaining(int64_t deadline)
{
	int64_t left = deadline - nb_now_ms();
	return left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* 1 ready, 0 timeout, -1 error. */
static int nb_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int n = shim_real.poll(&p, 1, shim_remaining(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -1 : n == 0 ? 0 : 1;
	}
}

int shim_sock_type(int fd, int *family)
{
	int type = 0;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(type);

	if (shim_real.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -1;
	len = sizeof(ss);
	if (shim_real.getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	*family = ss.ss_family;
	return type;
}

int shim_sa_to_family(const struct sockaddr *sa, int family, struct sockaddr_storage *out,
		      socklen_t *len)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == family) {
		*len = sa_len(sa);
		memcpy(out, sa, *len);
		return 0;
	}
	if (sa->sa_family == AF_INET && family == AF_INET6) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = s4->sin_port;
		s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(s6->sin6_addr.s6_addr + 12, &s4->sin_addr, 4);
		*len = sizeof(*s6);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && family == AF_INET) {
		struct sockaddr_storage tmp;
		memcpy(&tmp, sa, sizeof(struct sockaddr_in6));
		sa_unmap(&tmp);
		if (tmp.ss_family != AF_INET)
			return -1;
		memcpy(out, &tmp, sizeof(struct sockaddr_in));
		*len = sizeof(struct sockaddr_in);
		return 0;
	}
	return -1;
}

int shim_connect_proxy(int fd, int64_t deadline)
{
	struct sockaddr_storage px;
	socklen_t pxlen, elen = sizeof(int);
	int family = AF_INET, soerr = 0;

	if (shim_sock_type(fd, &family) < 0)
		return -1;
	if (shim_policy_proxy_addr(family, sockswap_v6only(fd), &px, &pxlen) < 0)
		return -1;
	if (shim_real.connect(fd, (struct sockaddr *)&px, pxlen) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return -1;
	int w = nb_wait(fd, POLLOUT, deadline);
	if (w <= 0) {
		if (w == 0)
			errno = ETIMEDOUT;
		return -1;
	}
	if (shim_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) < 0)
		return -1;
	if (soerr != 0) {
		errno = soerr;
		return -1;
	}
	return 0;
}

enum stp_step shim_handshake_run(struct stp_handshake *h, int64_t deadline)
{
	for (;;) {
		enum stp_step r = stp_handshake_step(h);
		if (r != STP_WANT_READ && r != STP_WANT_WRITE)
			return r;
		int w = nb_wait(h->fd, stp_handshake_events(h), deadline);
		if (w == 0) {
			h->err = STP_ERR_TIMEOUT;
			return STP_ERROR;
		}
		if (w < 0) {
			h->err = STP_ERR_SYSTEM;
			h->sys_errno = errno;
			return STP_ERROR;
		}
	}
}

/* Connect + handshake. 0, or -1 with errno set to what connect() should
 * report. */
static int nb_tunnel(int fd, const struct sockaddr *sa, const char *name, const char *what)
{
	int64_t deadline = shim_deadline(shim_conf.timeout_ms);
	struct stp_proxy proxy = shim_conf.proxy;
	struct stp_handshake h;
	enum stp_err err;

	if (shim_connect_proxy(fd, deadline) < 0) {
		int e = errno;
		shim_log(SHIM_LOG_ERROR, "connect %s: proxy unreachable: %s", what, strerror(e));
		errno = e;
		return -1;
	}
	if (name != NULL)
		shim_policy_proxy_for_name(&proxy);
	if (stp_handshake_init(&h, &proxy, fd, STP_CMD_CONNECT, name,
			       (uint16_t)sa_port(sa), name ? NULL : sa, &err) < 0) {
		shim_log(SHIM_LOG_ERROR, "connect %s: %s", what, stp_strerror(err));
		errno = stp_err_errno(err);
		return -1;
	}
	stp_handshake_set_io(&h, &shim_real_io);
	if (shim_handshake_run(&h, deadline) != STP_DONE) {
		shim_log(SHIM_LOG_ERROR, "connect %s: %s%s%s", what, stp_strerror(h.err),
			 h.sys_errno ? ": " : "", h.sys_errno ? strerror(h.sys_errno) : "");
		errno = h.err == STP_ERR_SYSTEM || h.err == STP_ERR_IO ? h.sys_errno
								  : stp_err_errno(h.err);
		if (errno == 0)
			errno = stp_err_errno(h.err);
		return -1;
	}
	shim_log(SHIM_LOG_INFO, "connect %s: through the proxy", what);
	return 0;
}

/* True when fd cannot reach any of the proxy's addresses: an AF_INET
 * socket and an IPv6-only proxy, or an IPV6_V6ONLY socket and an IPv4 one. */
static bool nb_needs_swap(int fd)
{
	struct sockaddr_storage px;
	socklen_t pxlen;
	int family;

	if (shim_sock_type(fd, &family) < 0)
		return false;
	return shim_policy_proxy_addr(family, sockswap_v6only(fd), &px, &pxlen) < 0;
}

/*
 * The tunnel on fd itself, or, when fd cannot reach the proxy, on a
 * dual-stack replacement (sockswap.c) that takes fd's place once the
 * handshake is done. On failure fd is left as it was. 0, or -1 with errno.
 */
static int nb_tunnel_fd(int fd, const struct sockaddr *sa, const char *name, const char *what,
			struct shim_fd *st)
{
	int family = AF_INET, e;

	if (!nb_needs_swap(fd))
		return nb_tunnel(fd, sa, name, what);
	shim_sock_type(fd, &family);
	bool v6only = sockswap_v6only(fd);
	int nfd = sockswap_open(fd, SOCK_STREAM);
	if (nfd < 0) {
		e = errno;
		shim_log(SHIM_LOG_ERROR, "connect %s: no socket to reach the proxy: %s", what,
			 strerror(e));
		errno = e;
		return -1;
	}
	if (nb_tunnel(nfd, sa, name, what) < 0 || sockswap_install(nfd, fd) < 0) {
		e = errno;
		shim_real.close(nfd);
		errno = e;
		return -1;
	}
	st->app_family = family;
	st->app_v6only = v6only;
	shim_log(SHIM_LOG_DEBUG, "connect %s: fd %d replaced by an IPv6 socket", what, fd);
	return 0;
}

int tcp_connect_via_proxy(int fd, const struct sockaddr *sa, socklen_t salen)
{
	char name[STP_NAME_MAX + 1], what[SA_STR_MAX + STP_NAME_MAX + 8];
	const char *target = NULL;
	struct shim_fd st = { .kind = SHIM_FD_TCP, .ctl = -1 };
	int fl = fcntl(fd, F_GETFL);
	bool nonblock = fl >= 0 && (fl & O_NONBLOCK);

	if (fakedns_is_fake(sa)) {
		if (!fakedns_name(sa, name, sizeof(name))) {
			shim_log(SHIM_LOG_ERROR, "connect: %s is a fake-DNS address nobody handed out",
				 sa_str(sa, what, sizeof(what)));
			errno = EHOSTUNREACH;
			return -1;
		}
		target = name;
		snprintf(what, sizeof(what), "%s:%u", name, sa_port(sa));
	} else {
		sa_str(sa, what, sizeof(what));
	}
	memcpy(&st.peer, sa, salen < sizeof(st.peer) ? salen : sizeof(st.peer));
	st.peerlen = salen;
	shim_enter();
	int rc = nb_tunnel_fd(fd, sa, target, what, &st);
	int e = errno;
	shim_leave();
	if (rc < 0 && !nonblock) {
		errno = e;
		return -1;
	}
	if (rc < 0) {
		st.pending_err = e;
		shutdown(fd, SHUT_RDWR);
	}
	fdtab_put(fd, &st);
	if (!nonblock)
		return 0;
	errno = EINPROGRESS;
	return -1;
}
