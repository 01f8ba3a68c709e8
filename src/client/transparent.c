/*
 * transparent.c - TRANSPARENT (CMD X'04', seed 003): a relay of plain PTCL
 * packets from one source address and port to one target (stp.h).
 *
 * The data socket is made and bound first, so that its address and port
 * can be declared as S.ADDR:S.PORT; the proxy drops everything else. It
 * is connected to BND once the reply is in: for UDP the kernel then drops
 * datagrams from anyone but the relay.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "common/log.h"
#include "common/sockaddr.h"

struct stp_transparent {
	int ctl;
	struct stp_conn *conn; /* TLS proxies: ctl's connection */
	int data;
	struct stp_addr bound;
};

static void *tp_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return NULL;
}

/* The data socket on src, or on the control connection's local address
 * (port 0); *local gets the address and port it has. */
static int data_socket(int ctl, int ptcl, const struct sockaddr *src,
		       struct sockaddr_storage *local)
{
	socklen_t len = sizeof(*local);
	int one = 1, fd;

	if (src) {
		len = sa_len(src);
		memcpy(local, src, len);
	} else {
		if (getsockname(ctl, (struct sockaddr *)local, &len) < 0)
			return -1;
		sa_set_port((struct sockaddr *)local, 0);
	}
	fd = socket(local->ss_family,
		    (ptcl == STP_PTCL_TCP ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (ptcl == STP_PTCL_TCP)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	len = sizeof(*local);
	if (bind(fd, (struct sockaddr *)local, sa_len((struct sockaddr *)local)) < 0 ||
	    getsockname(fd, (struct sockaddr *)local, &len) < 0) {
		close(fd);
		return -1;
	}
	sa_unmap(local);
	return fd;
}

/* BND, an unspecified address meaning the proxy's. */
static int bound_addr(struct stp_transparent *t, const struct stp_addr *bnd)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	t->bound = *bnd;
	if (bnd->salen == 0)
		return -1; /* a name: not resolved here */
	if (!client_addr_unspecified(bnd))
		return 0;
	if (getpeername(t->ctl, (struct sockaddr *)&peer, &len) < 0)
		return -1;
	sa_set_port((struct sockaddr *)&peer, bnd->port);
	memcpy(&t->bound.sa, &peer, len);
	t->bound.salen = len;
	return 0;
}

/* connect() within the deadline; the socket ends up blocking. */
static int connect_until(int fd, const struct stp_addr *to, int64_t deadline)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (client_set_blocking(fd, false) < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&to->sa, to->salen) < 0) {
		if (errno != EINPROGRESS)
			return -1;
		if (client_wait(fd, POLLOUT, deadline) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			return -1;
		if (soerr) {
			errno = soerr;
			return -1;
		}
	}
	return client_set_blocking(fd, true);
}

static struct stp_transparent *tp_open(struct stp_transparent *t, const struct stp_proxy *proxy,
				       int ptcl, const char *host, uint16_t port,
				       const struct sockaddr *sa, const struct sockaddr *src,
				       int64_t deadline, enum stp_err *err)
{
	struct sockaddr_storage local;
	struct stp_handshake h;
	enum stp_err e = STP_OK;

	if (proxy->kind == STP_SOCKS4 || proxy->kind == STP_SOCKS4A)
		return tp_fail(err, STP_ERR_UNSUPPORTED);
	/* TLS covers the control connection only, as for UDP ASSOCIATE. */
	if (proxy->tls.mode != STP_TLS_NONE && !proxy->tls.udp_naked)
		return tp_fail(err, STP_ERR_TLS_UDP_NAKED);
	if (proxy->tls.mode != STP_TLS_NONE) {
		t->conn = client_conn_connect(proxy, deadline, &e);
		t->ctl = t->conn ? stp_conn_fd(t->conn) : -1;
	} else {
		t->ctl = client_proxy_connect_until(proxy, deadline, &e);
	}
	if (t->ctl < 0)
		return tp_fail(err, e);
	/* src NULL: the control connection's address, known once connected;
	 * a non-blocking connect may still be under way, so wait for it. */
	if (!src && client_wait(t->ctl, POLLOUT, deadline) <= 0)
		return tp_fail(err, STP_ERR_TIMEOUT);
	t->data = data_socket(t->ctl, ptcl, src, &local);
	if (t->data < 0)
		return tp_fail(err, STP_ERR_SYSTEM);
	if (t->conn != NULL ?
		    client_conn_hs_init(t->conn, &h, proxy, STP_CMD_CONNECT, host, port, sa, &e) <
			    0 :
		    stp_handshake_init(&h, proxy, t->ctl, STP_CMD_CONNECT, host, port, sa, &e) < 0)
		return tp_fail(err, e);
	if (client_handshake_transparent(&h, (uint8_t)ptcl, (struct sockaddr *)&local) < 0)
		return tp_fail(err, STP_ERR_INVALID);
	if ((t->conn != NULL ? client_conn_hs_run(t->conn, &h, deadline) :
			       client_handshake_run(&h, deadline)) != STP_DONE) {
		errno = h.sys_errno;
		return tp_fail(err, h.err);
	}
	if (bound_addr(t, &h.bound) < 0 || t->bound.sa.ss_family != local.ss_family)
		return tp_fail(err, STP_ERR_PROTOCOL);
	if (connect_until(t->data, &t->bound, deadline) < 0)
		return tp_fail(err, errno == ETIMEDOUT ? STP_ERR_TIMEOUT : STP_ERR_SYSTEM);
	char where[STP_ADDR_STR_MAX];
	log_debug("TRANSPARENT %s association on fd %d, relay %s",
		  ptcl == STP_PTCL_TCP ? "tcp" : "udp", t->ctl,
		  stp_addr_str(&t->bound, where, sizeof(where)));
	if (err)
		*err = STP_OK;
	return t;
}

struct stp_transparent *stp_transparent_open(const struct stp_proxy *proxy, int ptcl,
					     const char *host, uint16_t port,
					     const struct sockaddr *sa, const struct sockaddr *src,
					     int timeout_ms, enum stp_err *err)
{
	struct stp_transparent *t;

	if (proxy == NULL || (ptcl != STP_PTCL_TCP && ptcl != STP_PTCL_UDP) ||
	    (host == NULL && sa == NULL))
		return tp_fail(err, STP_ERR_INVALID);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return tp_fail(err, STP_ERR_NOMEM);
	t->ctl = t->data = -1;
	if (tp_open(t, proxy, ptcl, host, port, sa, src, client_deadline(timeout_ms), err) ==
	    NULL) {
		int saved = errno;
		stp_transparent_close(t);
		errno = saved;
		return NULL;
	}
	return t;
}

int stp_transparent_fd(const struct stp_transparent *t)
{
	return t->data;
}
int stp_transparent_control_fd(const struct stp_transparent *t)
{
	return t->ctl;
}
const struct stp_addr *stp_transparent_bound(const struct stp_transparent *t)
{
	return &t->bound;
}

void stp_transparent_close(struct stp_transparent *t)
{
	if (t == NULL)
		return;
	if (t->data >= 0)
		close(t->data);
	if (t->conn != NULL)
		stp_conn_close(t->conn);
	else if (t->ctl >= 0)
		close(t->ctl);
	free(t);
}
