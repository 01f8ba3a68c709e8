/*
 * nbconnect.c - connect() through the proxy on the application's own fd,
 * for blocking and non-blocking sockets alike (or, for a proxy address
 * out of the fd's reach, on a dual-stack replacement that takes over the
 * fd's number once the handshake is done: sockswap.c).
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

#include "client/client.h"
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

/* One proxy address on fd. 0, or -1 with errno (ETIMEDOUT at the deadline). */
static int nb_connect_one(int fd, const struct sockaddr_storage *px, socklen_t pxlen,
			  int64_t deadline)
{
	socklen_t elen = sizeof(int);
	int soerr = 0;

	if (shim_real.connect(fd, (const struct sockaddr *)px, pxlen) == 0)
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

/*
 * The proxy's addresses in turn (shim_policy_proxy_addr_at's order: fd's
 * family first), until one accepts or the deadline passes. An address fd
 * reaches is tried on fd; one it cannot (an IPv6 proxy from an AF_INET
 * socket, an IPv4 one from an IPV6_V6ONLY socket) on a dual-stack
 * replacement (sockswap.c) when swap is set, else skipped. One socket
 * allows one attempt at a time, so this is not Happy Eyeballs: an address
 * that drops SYNs spends the deadline (libstp's own connections,
 * eyeballs.c, race them). A refused or unreachable address moves on at
 * once; connect(AF_UNSPEC) returns a socket to its unconnected state
 * before its next attempt, as Linux needs before a second connect() on a
 * TCP socket whose first one failed. The connected socket (fd or the
 * replacement, for the caller to install), or -1 with errno and no
 * replacement left open.
 */
static int nb_connect_proxy(int fd, bool swap, int64_t deadline)
{
	struct sockaddr_storage px;
	socklen_t pxlen;
	int family = AF_INET, err = 0, nfd = -1, r;
	bool tried_fd = false, tried_nfd = false;
	char where[SA_STR_MAX];

	if (shim_sock_type(fd, &family) < 0)
		return -1;
	bool v6only = sockswap_v6only(fd);
	for (int i = 0; (r = shim_policy_proxy_addr_at(family, v6only, i, &px, &pxlen)) >= 0; i++) {
		if (r == 1 && !swap)
			continue; /* out of fd's reach */
		if (r == 1 && nfd < 0 && (nfd = sockswap_open(fd, SOCK_STREAM)) < 0) {
			err = errno;
			shim_log(SHIM_LOG_DEBUG, "no socket to reach the proxy: %s", strerror(err));
			swap = false; /* fd's own addresses may still answer */
			continue;
		}
		int s = r == 0 ? fd : nfd;
		bool *tried = s == fd ? &tried_fd : &tried_nfd;
		if (*tried) {
			struct sockaddr unspec = { .sa_family = AF_UNSPEC };
			shim_real.connect(s, &unspec, sizeof(unspec));
		}
		*tried = true;
		if (nb_connect_one(s, &px, pxlen, deadline) == 0) {
			if (s == fd && nfd >= 0)
				shim_real.close(nfd);
			return s;
		}
		err = errno;
		shim_log(SHIM_LOG_DEBUG, "proxy %s%s: %s",
			 sa_str((struct sockaddr *)&px, where, sizeof(where)),
			 s == fd ? "" : " (replacement socket)", strerror(err));
		if (err == ETIMEDOUT || shim_remaining(deadline) == 0)
			break;
	}
	if (nfd >= 0)
		shim_real.close(nfd);
	errno = err != 0 ? err : EAFNOSUPPORT; /* EAFNOSUPPORT: no address tried */
	return -1;
}

int shim_connect_proxy(int fd, int64_t deadline)
{
	return nb_connect_proxy(fd, false, deadline) < 0 ? -1 : 0;
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

/* A GSS-API proxy (method X'01', RFC 1961) or a TLS one (socks5+tls://,
 * X'86', when the connect is not a multiplexed stream): the method and
 * CONNECT through libstp's connection object on s. With protection (GSS-API
 * levels 1, 2; TLS always) every byte must be wrapped, so the connection
 * goes to a relay thread and *relay is the socketpair end that takes the
 * application's fd number. */
static int nb_gss(int s, const struct stp_proxy *proxy, const struct sockaddr *sa,
		  const char *name, const char *what, int64_t deadline, int *relay)
{
	enum stp_err err;
	if (client_conn_connect_fd(s, proxy, name, (uint16_t)sa_port(sa), name ? NULL : sa, deadline,
				  relay, &err) < 0) {
		shim_log(SHIM_LOG_ERROR, "connect %s: %s%s%s", what, stp_strerror(err),
			 stp_err_detail()[0] ? ": " : "", stp_err_detail());
		errno = stp_err_errno(err);
		return -1;
	}
	return 0;
}

/* The CONNECT handshake on s, connected to the proxy. 0, or -1 with errno
 * set to what connect() should report. *relay: see nb_gss (-1: none). */
static int nb_handshake(int s, const struct sockaddr *sa, const char *name, const char *what,
			int64_t deadline, int *relay)
{
	struct stp_proxy proxy = shim_conf.proxy;
	struct stp_handshake h;
	enum stp_err err;

	*relay = -1;
	if (name != NULL)
		shim_policy_proxy_for_name(&proxy);
	client_pipe_prepare(&proxy, deadline); /* learns whether to pipeline (TLS too) */
	if (proxy.gss.on || proxy.tls.mode != STP_TLS_NONE)
		return nb_gss(s, &proxy, sa, name, what, deadline, relay);
	if (stp_handshake_init(&h, &proxy, s, STP_CMD_CONNECT, name,
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
	return 0;
}

/* A stream of the shared multiplexed connection (libstp muxauto.c) in
 * fd's place: its socketpair end takes fd's number, O_NONBLOCK and
 * close-on-exec, as with GSS-API's relay. 0, -1 with errno (the proxy
 * refused the stream), or -2: connect plainly. */
static int nb_mux(int fd, const struct sockaddr *sa, const char *name, const char *what,
		  int64_t deadline, struct shim_fd *st)
{
	struct stp_proxy proxy = shim_conf.proxy;
	enum stp_err err;

	if (name != NULL)
		shim_policy_proxy_for_name(&proxy);
	if (!client_mux_eligible(&proxy))
		return -2;
	int s = client_mux_connect(&proxy, name, (uint16_t)sa_port(sa), name ? NULL : sa,
				   deadline, &err);
	if (s == -2)
		return -2;
	if (s < 0) {
		shim_log(SHIM_LOG_ERROR, "connect %s: %s", what, stp_strerror(err));
		errno = stp_err_errno(err);
		return -1;
	}
	if (sockswap_install(s, fd) < 0) {
		int e = errno;
		shim_real.close(s);
		errno = e;
		return -1;
	}
	st->relayed = true;
	shim_log(SHIM_LOG_INFO, "connect %s: through the proxy (a multiplexed stream)", what);
	return 0;
}

/*
 * Connect + handshake, on fd itself or, when the proxy address that
 * answered is out of fd's reach, on a dual-stack replacement (sockswap.c)
 * that takes fd's place once the handshake is done. On failure fd is the
 * program's socket still. 0, or -1 with errno set to what connect()
 * should report.
 */
static int nb_tunnel(int fd, const struct sockaddr *sa, const char *name, const char *what,
		     struct shim_fd *st)
{
	int64_t deadline = shim_deadline(shim_conf.timeout_ms);
	int family = AF_INET, e;

	shim_sock_type(fd, &family);
	bool v6only = sockswap_v6only(fd);
	int m = nb_mux(fd, sa, name, what, deadline, st);
	if (m != -2)
		return m;
	int s = nb_connect_proxy(fd, true, deadline);
	if (s < 0) {
		e = errno;
		shim_log(SHIM_LOG_ERROR, "connect %s: proxy unreachable: %s", what, strerror(e));
		errno = e;
		return -1;
	}
	int relay = -1;
	if (nb_handshake(s, sa, name, what, deadline, &relay) < 0 ||
	    (relay < 0 && s != fd && sockswap_install(s, fd) < 0)) {
		e = errno;
		if (s != fd)
			shim_real.close(s);
		errno = e;
		return -1;
	}
	if (relay >= 0) {
		/* GSS-API protection or TLS: the relay thread holds the proxy
		 * connection; the plaintext end takes fd's number (and its
		 * O_NONBLOCK and close-on-exec). */
		if (s != fd)
			shim_real.close(s);
		if (sockswap_install(relay, fd) < 0) {
			e = errno;
			shim_real.close(relay);
			errno = e;
			return -1;
		}
		st->relayed = true;
		shim_log(SHIM_LOG_DEBUG, "connect %s: %s through a relay thread", what,
			 shim_conf.proxy.tls.mode != STP_TLS_NONE ? "TLS" : "GSS-API protection");
		s = fd;
	}
	if (s != fd) {
		st->app_family = family;
		st->app_v6only = v6only;
		shim_log(SHIM_LOG_DEBUG, "connect %s: fd %d replaced by an IPv6 socket", what, fd);
	}
	shim_log(SHIM_LOG_INFO, "connect %s: through the proxy", what);
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
	int rc = nb_tunnel(fd, sa, target, what, &st);
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
