/*
 * blocking.c - CONNECT and BIND as blocking calls with a deadline, built
 * on the handshake engine.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "common/log.h"
#include "common/sockaddr.h"

static int blk_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return -1;
}

/* Opens the proxy connection and runs a handshake on it up to `until`
 * (STP_DONE or STP_BOUND). The fd stays non-blocking. */
static int blk_handshake(struct stp_handshake *h, const struct stp_proxy *proxy,
			 enum stp_cmd cmd, const char *host, uint16_t port,
			 const struct sockaddr *sa, int64_t deadline, enum stp_err *err)
{
	enum stp_err e = STP_OK;
	struct stp_handshake tmp;
	int fd;

	/* Check the target before the proxy is bothered with it. */
	client_pipe_prepare(proxy, deadline);
	if (stp_handshake_init(&tmp, proxy, 0, cmd, host, port, sa, &e) < 0)
		return blk_fail(err, e);
	fd = client_proxy_connect_until(proxy, deadline, &e);
	if (fd < 0)
		return blk_fail(err, e);
	/* Re-initialise on the real fd; the target is encoded already, so a
	 * local name lookup is not repeated. */
	*h = tmp;
	h->fd = fd;
	enum stp_step r = client_handshake_run(h, deadline);
	if (r == STP_ERROR) {
		int saved = h->sys_errno;
		close(fd);
		errno = saved ? saved : stp_err_errno(h->err);
		return blk_fail(err, h->err);
	}
	return fd;
}

static int blk_done(int fd, enum stp_err *err)
{
	if (client_set_blocking(fd, true) < 0) {
		close(fd);
		return blk_fail(err, STP_ERR_SYSTEM);
	}
	if (err)
		*err = STP_OK;
	return fd;
}

/* TLS proxies: the connection goes to a relay thread, the caller gets
 * a socketpair end (conn_relay.c). */
static int blk_tls_fd(struct stp_conn *c, enum stp_err *err)
{
	return c == NULL ? -1 : client_conn_to_thread(c, err);
}

int stp_connect(const struct stp_proxy *proxy, const char *host, uint16_t port, int timeout_ms,
		enum stp_err *err)
{
	struct stp_handshake h;
	int fd;

	if (proxy == NULL || host == NULL)
		return blk_fail(err, STP_ERR_INVALID);
	int64_t deadline = client_deadline(timeout_ms);
	/* A stream's fd first, TLS proxies included: no relay thread then. */
	fd = client_mux_connect(proxy, host, port, NULL, deadline, err);
	if (fd != -2)
		return fd;
	if (client_proxy_needs_conn(proxy))
		return blk_tls_fd(client_conn_open_plain(proxy, host, port, NULL,
							 client_remaining(deadline), err),
				  err);
	fd = blk_handshake(&h, proxy, STP_CMD_CONNECT, host, port, NULL, deadline, err);
	return fd < 0 ? -1 : blk_done(fd, err);
}

int stp_connect_sa(const struct stp_proxy *proxy, const struct sockaddr *sa, int timeout_ms,
		   enum stp_err *err)
{
	struct stp_handshake h;
	int fd;

	if (proxy == NULL || sa == NULL)
		return blk_fail(err, STP_ERR_INVALID);
	int64_t deadline = client_deadline(timeout_ms);
	fd = client_mux_connect(proxy, NULL, 0, sa, deadline, err);
	if (fd != -2)
		return fd;
	if (client_proxy_needs_conn(proxy))
		return blk_tls_fd(client_conn_open_plain(proxy, NULL, 0, sa,
							 client_remaining(deadline), err),
				  err);
	fd = blk_handshake(&h, proxy, STP_CMD_CONNECT, NULL, 0, sa, deadline, err);
	return fd < 0 ? -1 : blk_done(fd, err);
}

/* BND.ADDR 0.0.0.0 (or ::) means "my address": use the one we reached the
 * proxy at, which is what a peer can reach too. */
static void blk_fix_unspecified(struct stp_addr *a, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (!client_addr_unspecified(a) || getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	sa_set_port((struct sockaddr *)&ss, a->port);
	memcpy(&a->sa, &ss, len);
	a->salen = len;
}

/* BIND through a TLS proxy: b->conn holds the connection until the peer
 * is in; b->fd is its socket meanwhile (to poll only). */
static int blk_tls_bind(struct stp_bind *b, const struct stp_proxy *proxy, const char *host,
			uint16_t port, int64_t deadline, enum stp_err *err)
{
	enum stp_err e = STP_OK;
	struct stp_conn *c;

	if (client_conn_hs_init(NULL, &b->hs, proxy, STP_CMD_BIND, host, port, NULL, &e) < 0)
		return blk_fail(err, e);
	if ((c = client_conn_connect(proxy, deadline, &e)) == NULL)
		return blk_fail(err, e);
	if (client_conn_hs_init(c, &b->hs, proxy, STP_CMD_BIND, host, port, NULL, &e) < 0 ||
	    client_conn_hs_run(c, &b->hs, deadline) != STP_BOUND) {
		e = e != STP_OK ? e : b->hs.err ? b->hs.err : STP_ERR_PROTOCOL;
		stp_conn_close(c);
		return blk_fail(err, e);
	}
	b->conn = c;
	b->fd = stp_conn_fd(c);
	b->bound = b->hs.bound;
	blk_fix_unspecified(&b->bound, b->fd);
	if (err)
		*err = STP_OK;
	return 0;
}

/* The second reply through TLS; then the relay thread takes over. */
static int blk_tls_accept(struct stp_bind *b, int64_t deadline, enum stp_err *err)
{
	enum stp_step r = client_conn_hs_run(b->conn, &b->hs, deadline);

	if (r != STP_DONE)
		return blk_fail(err, r == STP_ERROR ? b->hs.err : STP_ERR_PROTOCOL);
	b->peer = b->hs.peer;
	b->fd = client_conn_to_thread(b->conn, err);
	b->conn = NULL;
	return b->fd < 0 ? -1 : 0;
}

int stp_bind(struct stp_bind *b, const struct stp_proxy *proxy, const char *host, uint16_t port,
	     int timeout_ms, enum stp_err *err)
{
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	if (proxy == NULL)
		return blk_fail(err, STP_ERR_INVALID);
	if (client_proxy_needs_conn(proxy))
		return blk_tls_bind(b, proxy, host, port, client_deadline(timeout_ms), err);
	int fd = blk_handshake(&b->hs, proxy, STP_CMD_BIND, host, port, NULL,
			       client_deadline(timeout_ms), err);
	if (fd < 0)
		return -1;
	b->fd = fd;
	b->bound = b->hs.bound;
	blk_fix_unspecified(&b->bound, fd);
	if (err)
		*err = STP_OK;
	return 0;
}

int stp_bind_accept(struct stp_bind *b, int timeout_ms, enum stp_err *err)
{
	if (b->fd < 0)
		return blk_fail(err, STP_ERR_INVALID);
	if (b->conn != NULL)
		return blk_tls_accept(b, client_deadline(timeout_ms), err);
	enum stp_step r = client_handshake_run(&b->hs, client_deadline(timeout_ms));
	if (r != STP_DONE) {
		/* A timeout leaves the handshake resumable: call again. */
		errno = b->hs.sys_errno ? b->hs.sys_errno : stp_err_errno(b->hs.err);
		return blk_fail(err, r == STP_ERROR ? b->hs.err : STP_ERR_PROTOCOL);
	}
	b->peer = b->hs.peer;
	if (blk_done(b->fd, err) < 0) {
		b->fd = -1;
		return -1;
	}
	return 0;
}

void stp_bind_close(struct stp_bind *b)
{
	if (b->conn != NULL) {
		stp_conn_close(b->conn); /* closes b->fd too */
		b->conn = NULL;
		b->fd = -1;
	}
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}
