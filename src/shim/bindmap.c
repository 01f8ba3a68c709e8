/*
 * bindmap.c - listen()/accept() mapped onto SOCKS BIND (when bind is on):
 * the FTP-style reverse channel, where a peer connects to an address the
 * proxy opened on our behalf.
 *
 * listen(fd): a control connection to the proxy sends BIND and reads the
 * first reply (where the proxy listens); that connection is then dup2()ed
 * over the application's fd, keeping its O_NONBLOCK and close-on-exec, so
 * poll/select/epoll on the listening fd wake up when the second reply (the
 * peer) arrives. getsockname(fd) reports the proxy's address.
 * accept(fd): reads the second reply; the connection itself is returned as
 * the accepted fd and the listening fd is replaced by an idle socket.
 *
 * Limits (SOCKS BIND has them): one peer per listen(); a second accept()
 * fails with EINVAL; register the fd with epoll after listen(), not before.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "common/sockaddr.h"
#include "shim/shim.h"

bool bindmap_wants(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int family;

	if (!shim_conf.bind || !shim_conf.have_proxy || shim_conf.proxy_naddr == 0)
		return false;
	if (shim_sock_type(fd, &family) != SOCK_STREAM ||
	    (family != AF_INET && family != AF_INET6))
		return false;
	if (shim_real.getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	/* A wildcard listener goes to the proxy; one on a specific address
	 * only when that address would be proxied (loopback stays local
	 * unless proxy_loopback is on). */
	struct sockaddr_storage probe = ss;
	sa_set_port((struct sockaddr *)&probe, 1);
	if (ss.ss_family == AF_INET &&
	    ((struct sockaddr_in *)&ss)->sin_addr.s_addr == 0)
		return true;
	if (ss.ss_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr))
		return true;
	return !shim_policy_bypass_sa((struct sockaddr *)&probe);
}

/* Puts newfd's file (a socket) in fd's place, keeping fd's flags. */
static int bind_replace(int fd, int newfd)
{
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);

	if (fl < 0 || fdfl < 0)
		return -1;
	fcntl(newfd, F_SETFL, fl);
	if (shim_real.dup2(newfd, fd) < 0)
		return -1;
	fcntl(fd, F_SETFD, fdfl);
	return 0;
}

static int bind_start(int fd, struct shim_fd *st)
{
	int64_t deadline = shim_deadline(shim_conf.timeout_ms);
	struct sockaddr_storage px;
	socklen_t plen = sizeof(px);
	enum stp_err err;
	int ctl;

	if (shim_policy_proxy_addr(AF_INET, false, &px, &plen) < 0 &&
	    shim_policy_proxy_addr(AF_INET6, false, &px, &plen) < 0)
		return -1;
	ctl = shim_real.socket(px.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl < 0)
		return -1;
	st->hs = calloc(1, sizeof(*st->hs));
	if (st->hs == NULL || shim_connect_proxy(ctl, deadline) < 0)
		goto fail;
	if (stp_handshake_init(st->hs, &shim_conf.proxy, ctl, STP_CMD_BIND, "0.0.0.0", 0, NULL,
			       &err) < 0) {
		errno = stp_err_errno(err);
		goto fail;
	}
	stp_handshake_set_io(st->hs, &shim_real_io);
	if (shim_handshake_run(st->hs, deadline) != STP_BOUND) {
		shim_log(SHIM_LOG_ERROR, "BIND: %s", stp_strerror(st->hs->err));
		errno = stp_err_errno(st->hs->err);
		goto fail;
	}
	st->bound = st->hs->bound;
	if (st->bound.salen == 0)
		goto fail;
	struct sockaddr *b = (struct sockaddr *)&st->bound.sa;
	struct sockaddr_storage zero = { .ss_family = b->sa_family };
	if (sa_equal_addr(b, (struct sockaddr *)&zero)) {
		socklen_t l = sizeof(st->bound.sa);
		shim_real.getpeername(ctl, b, &l);
		sa_set_port(b, st->bound.port);
	}
	if (bind_replace(fd, ctl) < 0)
		goto fail;
	st->ctl = ctl;
	fdtab_set_internal(ctl, true);
	return 0;
fail:;
	int e = errno;
	shim_real.close(ctl);
	free(st->hs);
	st->hs = NULL;
	errno = e ? e : EPROTO;
	return -1;
}

int bindmap_listen(int fd)
{
	struct shim_fd st = { .kind = SHIM_FD_BIND, .ctl = -1 };
	char where[SA_STR_MAX];

	shim_enter();
	int rc = bind_start(fd, &st);
	shim_leave();
	if (rc < 0)
		return -1;
	fdtab_put(fd, &st);
	shim_log(SHIM_LOG_INFO, "listen fd %d: BIND at the proxy, %s", fd,
		 sa_str((struct sockaddr *)&st.bound.sa, where, sizeof(where)));
	return 0;
}

/* After the second reply: the control connection becomes the accepted
 * fd, an idle socket takes the listener's place. */
static int bind_finish(int fd, struct shim_fd *st, int flags)
{
	int ctl = st->ctl;
	int idle = shim_real.socket(st->bound.sa.ss_family, SOCK_STREAM, 0);
	struct shim_fd tcp = { .kind = SHIM_FD_TCP, .ctl = -1 };

	if (idle >= 0) {
		bind_replace(fd, idle);
		shim_real.close(idle);
	}
	fdtab_set_internal(ctl, false);
	int fl = fcntl(ctl, F_GETFL);
	fcntl(ctl, F_SETFL, (flags & SOCK_NONBLOCK) ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	fcntl(ctl, F_SETFD, (flags & SOCK_CLOEXEC) ? FD_CLOEXEC : 0);
	if (st->hs->peer.salen > 0) {
		tcp.peerlen = st->hs->peer.salen;
		tcp.peer = st->hs->peer.sa;
	}
	fdtab_put(ctl, &tcp);
	return ctl;
}

static void bind_mark_done(struct shim_fd *st, void *arg) { st->bind_done = true; }

int bindmap_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	struct shim_fd st;
	enum stp_step r;
	int fl = fcntl(fd, F_GETFL);

	if (!fdtab_get(fd, &st) || st.kind != SHIM_FD_BIND || st.bind_done || st.hs == NULL) {
		errno = EINVAL;
		return -1;
	}
	shim_enter();
	if (fl >= 0 && (fl & O_NONBLOCK))
		r = stp_handshake_step(st.hs);
	else
		r = shim_handshake_run(st.hs, shim_deadline(0x7fffffff));
	shim_leave();
	if (r == STP_WANT_READ || r == STP_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (r != STP_DONE) {
		errno = stp_err_errno(st.hs->err);
		return -1;
	}
	fdtab_update(fd, bind_mark_done, NULL);
	if (addr != NULL && len != NULL && st.hs->peer.salen > 0) {
		socklen_t n = st.hs->peer.salen;
		memcpy(addr, &st.hs->peer.sa, n < *len ? n : *len);
		*len = n;
	}
	return bind_finish(fd, &st, flags);
}
