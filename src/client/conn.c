/*
 * conn.c - struct stp_conn: CONNECT through any proxy, with the data
 * through TLS when the proxy URL asks for it (socks5+tls://, socks5s://),
 * or GSS-API's per-message protection (socks5+gssapi://, conn_gss.c).
 *
 * The SOCKS messages are still made and parsed by the handshake engine
 * (handshake.c); its send/recv hooks come here, so for TLS they go through
 * SSL instead of the socket. The hooks get the connection as their ctx.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/conn.h"
#include "common/log.h"

static int conn_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return -1;
}

/* ---- the socket side ---- */

int conn_queue(struct stp_conn *c, const uint8_t *p, size_t n)
{
	/* unbounded here: conn_write stops callers at CONN_OUT_MAX */
	return bytebuf_append(&c->out, p, n, SIZE_MAX);
}

int conn_send_some(struct stp_conn *c, enum stp_err *err)
{
	const uint8_t *q;
	size_t len;
	while ((len = bytebuf_peek(&c->out, &q)) > 0) {
		ssize_t n = send(c->fd, q, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS))
			return 0; /* EINPROGRESS: a Fast Open connect under way */
		if (n < 0)
			return conn_fail(err, STP_ERR_IO);
		bytebuf_consume(&c->out, (size_t)n);
	}
	return 1;
}

int conn_wait(struct stp_conn *c, short events, int64_t deadline, enum stp_err *err)
{
	int w = client_wait(c->fd, events, deadline);

	if (w == 0)
		return conn_fail(err, STP_ERR_TIMEOUT);
	if (w < 0)
		return conn_fail(err, STP_ERR_SYSTEM);
	return 1;
}

int conn_put(struct stp_conn *c, const void *buf, size_t n, enum stp_err *err)
{
	if (c->mode != STP_TLS_NONE)
		return conn_tls_write(c, buf, n, err);
	if (c->gss.wrap)
		return conn_gss_write(c, buf, n, err);
	return conn_queue(c, buf, n) < 0 ? conn_fail(err, STP_ERR_NOMEM) : 0;
}

int conn_write_all(struct stp_conn *c, const uint8_t *buf, size_t n, int64_t deadline,
		   enum stp_err *err)
{
	int r;

	if (n > 0 && conn_put(c, buf, n, err) < 0)
		return -1;
	while ((r = conn_send_some(c, err)) == 0)
		if (conn_wait(c, POLLOUT, deadline, err) < 0)
			return -1;
	return r < 0 ? -1 : 0;
}

/* Plaintext now: > 0, 0 at the end, -1 with errno EAGAIN or *err. */
ssize_t conn_read_some(struct stp_conn *c, void *buf, size_t cap, enum stp_err *err)
{
	if (c->mode != STP_TLS_NONE)
		return conn_tls_read(c, buf, cap, err);
	if (c->gss.wrap)
		return conn_gss_read(c, buf, cap, err);
	for (;;) {
		ssize_t n = recv(c->fd, buf, cap, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return conn_fail(err, STP_ERR_IO);
		return n;
	}
}

int conn_read_exact(struct stp_conn *c, uint8_t *buf, size_t n, int64_t deadline,
		    enum stp_err *err)
{
	size_t got = 0;

	while (got < n) {
		if (conn_send_some(c, err) < 0)
			return -1;
		ssize_t r = conn_read_some(c, buf + got, n - got, err);
		if (r == 0)
			return conn_fail(err, STP_ERR_PROXY_CLOSED);
		if (r < 0 && errno != EAGAIN)
			return -1;
		if (r < 0 && conn_wait(c, POLLIN | (bytebuf_used(&c->out) ? POLLOUT : 0), deadline, err) < 0)
			return -1;
		if (r > 0)
			got += (size_t)r;
	}
	return 0;
}

/* ---- opening ---- */

static void conn_free(struct stp_conn *c)
{
	if (c->mode != STP_TLS_NONE)
		conn_tls_free(c);
	conn_gss_free(c);
	if (c->fd >= 0)
		close(c->fd);
	bytebuf_free(&c->out);
	free(c);
}

struct stp_conn *client_conn_connect(const struct stp_proxy *proxy, int64_t deadline,
				     enum stp_err *err)
{
	return client_conn_connect_req(proxy, deadline, NULL, 0, err);
}

struct stp_conn *client_conn_connect_req(const struct stp_proxy *proxy, int64_t deadline,
					 const uint8_t *req, size_t req_len, enum stp_err *err)
{
	struct stp_conn *c = calloc(1, sizeof(*c));
	enum stp_err e = STP_OK;

	if (c == NULL) {
		conn_fail(err, STP_ERR_NOMEM);
		return NULL;
	}
	c->mode = proxy->tls.mode;
	snprintf(c->host, sizeof(c->host), "%s", proxy->host);
	c->fd = -1;
	/* The files first: a bad ca= fails before the proxy is bothered. */
	if (c->mode != STP_TLS_NONE && conn_tls_init(c, proxy, &e) < 0)
		goto fail;
	c->fd = client_proxy_connect_until(proxy, deadline, &e);
	if (c->fd < 0)
		goto fail;
	{
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (c->mode == STP_TLS_WRAP && conn_tls_handshake(c, deadline, &e) < 0)
		goto fail;
	if (c->mode == STP_TLS_X86 &&
	    conn_x86_negotiate(c, proxy, deadline, req, req_len, &e) < 0)
		goto fail;
	if (proxy->gss.on && conn_gss_negotiate(c, proxy, deadline, &e) < 0)
		goto fail;
	return c;
fail:;
	int saved = errno;
	conn_free(c);
	errno = saved;
	conn_fail(err, e);
	return NULL;
}

/* The engine's hooks: the connection's plaintext (ctx is the conn). */
static ssize_t conn_hook_send(void *ctx, int fd, const void *buf, size_t len, int flags)
{
	struct stp_conn *c = ctx;
	enum stp_err e;

	(void)flags;
	if (c == NULL || c->fd != fd) {
		errno = EBADF;
		return -1;
	}
	if (conn_put(c, buf, len, &e) < 0 || conn_send_some(c, &e) < 0) {
		errno = EIO;
		return -1;
	}
	return (ssize_t)len;
}

static ssize_t conn_hook_recv(void *ctx, int fd, void *buf, size_t len, int flags)
{
	struct stp_conn *c = ctx;
	enum stp_err e;

	(void)flags;
	if (c == NULL || c->fd != fd) {
		errno = EBADF;
		return -1;
	}
	if (conn_send_some(c, &e) < 0) {
		errno = EIO;
		return -1;
	}
	ssize_t n = conn_read_some(c, buf, len, &e);
	if (n < 0 && errno != EAGAIN)
		errno = EIO;
	return n;
}

int client_conn_hs_init(struct stp_conn *c, struct stp_handshake *h,
			const struct stp_proxy *proxy, enum stp_cmd cmd, const char *host,
			uint16_t port, const struct sockaddr *sa, enum stp_err *err)
{
	/* The engine itself speaks plain SOCKS: the TLS is ours. */
	struct stp_proxy plain = *proxy;

	plain.tls.mode = STP_TLS_NONE;
	plain.gss.on = false;
	if (stp_handshake_init(h, &plain, c ? c->fd : 0, cmd, host, port, sa, err) < 0)
		return -1;
	if (c == NULL || (c->mode == STP_TLS_NONE && !c->gss.on))
		return 0;
	stp_handshake_set_io(h, &(struct stp_io){ conn_hook_send, conn_hook_recv, c });
	/* Inside X'86' the SOCKS request is the first plaintext of X'03'
	 * (sent already when the negotiation pipelined it); after X'01' the
	 * method is chosen already. socks5+tls:// pipelines as plain TCP
	 * does, keyed by its own mode. */
	if (c->req_sent)
		client_handshake_request_sent(h);
	else if (c->mode == STP_TLS_X86 || c->gss.on)
		client_handshake_skip_greeting(h);
	else
		client_handshake_pipe(h, (uint8_t)c->mode, client_pipe_method(proxy));
	return 0;
}

enum stp_step client_conn_hs_run(struct stp_conn *c, struct stp_handshake *h, int64_t deadline)
{
	if (c->mode == STP_TLS_NONE && !c->gss.on)
		return client_handshake_run(h, deadline);
	for (;;) {
		enum stp_step r = stp_handshake_step(h);
		if (r != STP_WANT_READ && r != STP_WANT_WRITE)
			return r;
		/* The hooks leave ciphertext queued when the socket is full. */
		short ev = (short)(POLLIN | (bytebuf_used(&c->out) > 0 ? POLLOUT : 0));
		enum stp_err e;
		if (conn_wait(c, ev, deadline, &e) < 0 || conn_send_some(c, &e) < 0) {
			h->err = e;
			h->sys_errno = errno;
			return STP_ERROR;
		}
	}
}

/* A stream of the multiplexed connection as a plain connection object
 * (no bound address: streams have none). */
static struct stp_conn *conn_of_stream(int fd, enum stp_err *err)
{
	struct stp_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		conn_fail(err, STP_ERR_NOMEM);
		return NULL;
	}
	c->fd = fd;
	c->mode = STP_TLS_NONE;
	return c;
}

/* mux: try a stream of the shared multiplexed connection first
 * (muxauto.c); callers that tried already pass false. */
static struct stp_conn *conn_open(const struct stp_proxy *proxy, const char *host,
				  uint16_t port, const struct sockaddr *sa, int timeout_ms,
				  bool mux, enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);
	struct stp_handshake h;
	struct stp_conn *c;

	if (proxy == NULL || (host == NULL && sa == NULL)) {
		conn_fail(err, STP_ERR_INVALID);
		return NULL;
	}
	/* Check the target before the proxy is bothered with it. */
	if (client_conn_hs_init(NULL, &h, proxy, STP_CMD_CONNECT, host, port, sa, err) < 0)
		return NULL;
	int fd = mux ? client_mux_connect(proxy, host, port, sa, deadline, err) : -2;
	if (fd != -2)
		return fd < 0 ? NULL : conn_of_stream(fd, err);
	client_pipe_prepare(proxy, deadline);
	/* X'86' may send the request behind its option list (conn_x86.c). */
	c = client_conn_connect_req(proxy, deadline, h.req, h.req_len, err);
	if (c == NULL)
		return NULL;
	if (client_conn_hs_init(c, &h, proxy, STP_CMD_CONNECT, host, port, sa, err) < 0 ||
	    client_conn_hs_run(c, &h, deadline) != STP_DONE) {
		enum stp_err e = h.err ? h.err : STP_ERR_PROTOCOL;
		int saved = h.sys_errno ? h.sys_errno : stp_err_errno(e);
		conn_free(c);
		errno = saved;
		conn_fail(err, e);
		return NULL;
	}
	c->bound = h.bound;
	if (err)
		*err = STP_OK;
	return c;
}

struct stp_conn *stp_conn_open(const struct stp_proxy *proxy, const char *host, uint16_t port,
			       int timeout_ms, enum stp_err *err)
{
	if (host == NULL) {
		conn_fail(err, STP_ERR_INVALID);
		return NULL;
	}
	return conn_open(proxy, host, port, NULL, timeout_ms, true, err);
}

struct stp_conn *stp_conn_open_sa(const struct stp_proxy *proxy, const struct sockaddr *sa,
				  int timeout_ms, enum stp_err *err)
{
	if (sa == NULL) {
		conn_fail(err, STP_ERR_INVALID);
		return NULL;
	}
	return conn_open(proxy, NULL, 0, sa, timeout_ms, true, err);
}

struct stp_conn *client_conn_open_plain(const struct stp_proxy *proxy, const char *host,
					uint16_t port, const struct sockaddr *sa, int timeout_ms,
					enum stp_err *err)
{
	return conn_open(proxy, host, port, sa, timeout_ms, false, err);
}

/* ---- data ---- */

void stp_conn_set_nonblocking(struct stp_conn *c, bool on)
{
	c->nonblock = on;
}

ssize_t stp_conn_read(struct stp_conn *c, void *buf, size_t cap, enum stp_err *err)
{
	for (;;) {
		if (conn_send_some(c, err) < 0)
			return -1;
		ssize_t n = conn_read_some(c, buf, cap, err);
		if (n >= 0 || errno != EAGAIN) {
			if (n >= 0 && err)
				*err = STP_OK;
			return n;
		}
		if (c->nonblock) {
			errno = EAGAIN;
			return conn_fail(err, STP_ERR_IO);
		}
		if (conn_wait(c, stp_conn_events(c), -1, err) < 0)
			return -1;
	}
}

ssize_t stp_conn_write(struct stp_conn *c, const void *buf, size_t len, enum stp_err *err)
{
	if (c->nonblock) {
		if (bytebuf_used(&c->out) >= CONN_OUT_MAX) {
			/* Try first: the socket may have room by now. */
			if (conn_send_some(c, err) < 0)
				return -1;
			if (bytebuf_used(&c->out) >= CONN_OUT_MAX) {
				errno = EAGAIN;
				return conn_fail(err, STP_ERR_IO);
			}
		}
		if (conn_put(c, buf, len, err) < 0)
			return -1;
		if (conn_send_some(c, err) < 0)
			return -1;
	} else if (conn_write_all(c, buf, len, -1, err) < 0) {
		return -1;
	}
	if (err)
		*err = STP_OK;
	return (ssize_t)len;
}

int stp_conn_flush(struct stp_conn *c, enum stp_err *err)
{
	if (c->nonblock)
		return conn_send_some(c, err);
	return conn_write_all(c, NULL, 0, -1, err) < 0 ? -1 : 1;
}

int stp_conn_shutdown(struct stp_conn *c, enum stp_err *err)
{
	if (c->mode == STP_TLS_NONE) {
		/* Queued bytes first, then the FIN. */
		if (conn_write_all(c, NULL, 0, -1, err) < 0)
			return -1;
		return shutdown(c->fd, SHUT_WR) < 0 ? conn_fail(err, STP_ERR_IO) : 0;
	}
	if (conn_tls_shutdown(c, err) < 0)
		return -1;
	if (c->nonblock)
		return conn_send_some(c, err) < 0 ? -1 : 0;
	return conn_write_all(c, NULL, 0, -1, err);
}

int stp_conn_fd(const struct stp_conn *c)
{
	return c->fd;
}

short stp_conn_events(const struct stp_conn *c)
{
	return (short)(POLLIN | (bytebuf_used(&c->out) > 0 ? POLLOUT : 0));
}

bool stp_conn_pending(const struct stp_conn *c)
{
	if (c->gss.wrap)
		return conn_gss_pending(c);
	return c->mode != STP_TLS_NONE && conn_tls_pending(c);
}

const struct stp_addr *stp_conn_bound(const struct stp_conn *c)
{
	return &c->bound;
}

const char *stp_conn_tls_version(const struct stp_conn *c)
{
	return c->mode != STP_TLS_NONE ? c->tls.version : "";
}

const char *stp_conn_tls_cipher(const struct stp_conn *c)
{
	return c->mode != STP_TLS_NONE ? c->tls.cipher : "";
}

void stp_conn_close(struct stp_conn *c)
{
	enum stp_err e;

	if (c == NULL)
		return;
	/* close_notify if we have not sent it: best effort, never blocking. */
	if (c->mode != STP_TLS_NONE && conn_tls_shutdown(c, &e) == 0)
		conn_send_some(c, &e);
	conn_free(c);
}

/* ---- a GSS-API or TLS proxy on a socket someone else connected (stpify) ---- */

/* Method X'01' (or TLS: socks5+tls://, X'86' with its sub-authentication)
 * and one request on fd, a socket someone else connected to the proxy (fd
 * stays theirs: never closed here). The connection object holding the
 * context, or NULL with *err and errno. */
static struct stp_conn *gss_request_fd(int fd, const struct stp_proxy *proxy, enum stp_cmd cmd,
				       const char *host, uint16_t port, const struct sockaddr *sa,
				       int64_t deadline, struct stp_handshake *h, enum stp_err *err)
{
	struct stp_conn *c = calloc(1, sizeof(*c));
	enum stp_err e = STP_OK;

	if (c == NULL) {
		conn_fail(err, STP_ERR_NOMEM);
		return NULL;
	}
	c->fd = fd;
	c->mode = proxy->tls.mode;
	snprintf(c->host, sizeof(c->host), "%s", proxy->host);
	if (c->mode != STP_TLS_NONE) {
		/* The request first, for X'86' to send behind its options. */
		if (client_conn_hs_init(NULL, h, proxy, cmd, host, port, sa, &e) < 0 ||
		    conn_tls_init(c, proxy, &e) < 0 ||
		    (c->mode == STP_TLS_WRAP && conn_tls_handshake(c, deadline, &e) < 0) ||
		    (c->mode == STP_TLS_X86 &&
		     conn_x86_negotiate(c, proxy, deadline, h->req, h->req_len, &e) < 0))
			goto fail;
	} else if (conn_gss_negotiate(c, proxy, deadline, &e) < 0) {
		goto fail;
	}
	if (client_conn_hs_init(c, h, proxy, cmd, host, port, sa, &e) < 0)
		goto fail;
	if (client_conn_hs_run(c, h, deadline) != STP_DONE) {
		e = h->err ? h->err : STP_ERR_PROTOCOL;
		errno = h->sys_errno ? h->sys_errno : stp_err_errno(e);
		goto fail;
	}
	return c;
fail:;
	int saved = errno;
	c->fd = -1; /* the caller's socket */
	conn_free(c);
	errno = saved;
	conn_fail(err, e);
	return NULL;
}

int client_conn_connect_fd(int fd, const struct stp_proxy *proxy, const char *host, uint16_t port,
			  const struct sockaddr *sa, int64_t deadline, int *relay_fd,
			  enum stp_err *err)
{
	struct stp_handshake h;
	enum stp_err e = STP_OK;

	*relay_fd = -1;
	struct stp_conn *c = gss_request_fd(fd, proxy, STP_CMD_CONNECT, host, port, sa, deadline,
					    &h, err);
	if (c == NULL)
		return -1;
	if (!c->gss.wrap && c->mode == STP_TLS_NONE) {
		/* Level none: fd carries the target's bytes from here. */
		c->fd = -1;
		conn_free(c);
		return 0;
	}
	/* Levels 1, 2 and TLS: the proxy connection moves to a new fd
	 * number, for a relay thread; the caller puts the plaintext end in
	 * fd's place. */
	c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (c->fd < 0) {
		int saved = errno;
		conn_free(c);
		errno = saved;
		return conn_fail(err, STP_ERR_SYSTEM);
	}
	*relay_fd = client_conn_to_thread(c, &e);
	return *relay_fd < 0 ? conn_fail(err, e) : 0;
}

int client_gss_associate_fd(int fd, const struct stp_proxy *proxy, const struct sockaddr *decl,
			    int64_t deadline, struct stp_handshake *h, struct stp_conn **gss,
			    enum stp_err *err)
{
	*gss = NULL;
	struct stp_conn *c = gss_request_fd(fd, proxy, STP_CMD_UDP_ASSOCIATE, NULL, 0, decl,
					    deadline, h, err);
	if (c == NULL)
		return -1;
	/* stpd sends nothing more on the control connection: the caller
	 * watches fd for its end, the context stays for the datagrams. */
	c->fd = -1;
	if (c->gss.wrap)
		*gss = c;
	else
		conn_free(c);
	return 0;
}

ssize_t client_gss_seal(struct stp_conn *c, const uint8_t *p, size_t len, uint8_t *out, size_t cap)
{
	return conn_gss_seal_dgram(c, p, len, out, cap);
}

ssize_t client_gss_unseal(struct stp_conn *c, const uint8_t *p, size_t len, uint8_t *out,
			  size_t cap)
{
	return conn_gss_unseal_dgram(c, p, len, out, cap);
}

void client_gss_release(struct stp_conn *c)
{
	if (c != NULL)
		conn_free(c);
}
