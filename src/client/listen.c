/*
 * listen.c - binds for application servers through stpd (stp_listen_*,
 * docs/client.md; the wire is docs/protocol.md section 5.9).
 *
 * The control connection runs the handshake engine with LISTEN as its
 * request; the engine reads the RFC 1928 part of the reply and stops, and
 * the bind list that follows is read here. Each UDP bind has a local UDP
 * socket made before the request (its port goes in the request, so the
 * proxy pins it), connected to the bind's relay once the reply names it.
 * ACCEPT runs on a fresh connection with the same engine.
 *
 * Through a TLS (socks5s://, socks5+tls://) or GSS-API proxy both the
 * control and the data connections are libstp connection objects (conn.c):
 * the control messages are read as plaintext through it, and an accepted
 * data connection goes to a relay thread (conn_relay.c), so the caller
 * gets a socketpair end, as with stp_connect.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "client/conn.h"
#include "common/log.h"
#include "common/sockaddr.h"
#include "proto/mbind.h"

struct stp_listen {
	struct stp_proxy proxy;
	int ctl;               /* the control connection's socket (non-blocking) */
	struct stp_conn *conn; /* TLS or GSS-API proxies: the control connection */
	pthread_mutex_t lock;  /* conn: REFUSE may come from other threads */
	unsigned n;
	enum stp_bind_kind kind[STP_LISTEN_MAX];
	struct stp_addr bound[STP_LISTEN_MAX];
	int udp[STP_LISTEN_MAX];   /* UDP binds: connected to the relay; else -1 */
	uint8_t in[MBIND_MSG_MAX]; /* a control message being read */
	size_t inlen;
	bool gone;
};

static int fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return -1;
}

static enum stp_err rep_err(uint8_t rep)
{
	if (rep == MBIND_REP_NO_ARRIVAL)
		return STP_ERR_BIND_NO_ARRIVAL;
	if (rep == MBIND_REP_LIMIT)
		return STP_ERR_BIND_LIMIT;
	if (rep >= SOCKS5_REP_GENERAL_FAILURE && rep <= SOCKS5_REP_PTCL_NOT_SUPPORTED)
		return (enum stp_err)(STP_ERR_REP_GENERAL_FAILURE + rep - 1);
	return STP_ERR_REP_OTHER;
}

/* Plaintext from the control connection now: as recv(2) with
 * MSG_DONTWAIT (through the connection object when there is one). */
static ssize_t ctl_recv(struct stp_listen *l, uint8_t *p, size_t n, enum stp_err *err)
{
	if (l->conn == NULL)
		return recv(l->ctl, p, n, MSG_DONTWAIT);
	enum stp_err e = STP_OK;
	pthread_mutex_lock(&l->lock);
	ssize_t r = conn_send_some(l->conn, &e) < 0 ? -1 : conn_read_some(l->conn, p, n, &e);
	int saved = errno;
	pthread_mutex_unlock(&l->lock);
	errno = saved;
	if (r < 0 && e != STP_OK) {
		errno = EIO;
		return fail(err, e);
	}
	if (r < 0 && errno != EAGAIN) {
		errno = EIO;
		return fail(err, e);
	}
	return r;
}

/* Exactly n bytes before the deadline. */
static int read_full(struct stp_listen *l, uint8_t *p, size_t n, int64_t deadline,
		     enum stp_err *err)
{
	int fd = l->ctl;
	size_t got = 0;
	while (got < n) {
		ssize_t r = ctl_recv(l, p + got, n - got, err);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			return fail(err, STP_ERR_PROXY_CLOSED);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return fail(err, STP_ERR_IO);
		int w = client_wait(fd, POLLIN, deadline);
		if (w <= 0)
			return fail(err, w == 0 ? STP_ERR_TIMEOUT : STP_ERR_SYSTEM);
	}
	return 0;
}

/* An address block from the control connection, byte-exact. */
static int read_addr(struct stp_listen *l, struct socks_addr *a, int64_t deadline,
		     enum stp_err *err)
{
	uint8_t buf[SOCKS_ADDR_MAX];
	size_t have = 1, used;
	if (read_full(l, buf, 1, deadline, err) < 0)
		return -1;
	for (;;) {
		enum socks_res r = socks_addr_parse(a, buf, have, &used, NULL);
		if (r == SOCKS_DONE)
			return 0;
		if (r == SOCKS_BAD || have == sizeof(buf))
			return fail(err, STP_ERR_PROTOCOL);
		if (read_full(l, buf + have, 1, deadline, err) < 0)
			return -1;
		have++;
	}
}

/* Greeting, authentication and `req` through the engine on fd; the reply
 * code in *rep (its BND in *bnd). 0 when a reply came, whatever its code. */
static int run_request(const struct stp_proxy *proxy, struct stp_conn *c, int fd,
		       const uint8_t *req, size_t len, uint8_t *rep, struct stp_addr *bnd,
		       int64_t deadline, enum stp_err *err)
{
	struct stp_handshake h;
	enum stp_err e;
	const struct sockaddr *any = (const struct sockaddr *)&(
		struct sockaddr_in){ .sin_family = AF_INET };
	if ((c ? client_conn_hs_init(c, &h, proxy, STP_CMD_CONNECT, NULL, 0, any, &e) :
		 stp_handshake_init(&h, proxy, fd, STP_CMD_CONNECT, NULL, 0, any, &e)) < 0)
		return fail(err, e);
	if (client_handshake_set_raw_request(&h, req, len) < 0)
		return fail(err, STP_ERR_INVALID);
	if ((c ? client_conn_hs_run(c, &h, deadline) : client_handshake_run(&h, deadline)) !=
		    STP_DONE &&
	    !(h.err >= STP_ERR_REP_GENERAL_FAILURE && h.err <= STP_ERR_REP_OTHER)) {
		errno = h.sys_errno;
		return fail(err, h.err);
	}
	*rep = h.rep;
	if (bnd)
		*bnd = h.bound;
	return 0;
}

static void fix_unspecified(struct stp_addr *a, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (!client_addr_unspecified(a) || getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	sa_unmap(&ss);
	sa_set_port((struct sockaddr *)&ss, a->port);
	a->sa = ss;
	a->salen = sa_len((struct sockaddr *)&ss);
}

/* A UDP socket next to the control connection's local address. */
static int udp_socket(int ctl, uint16_t *port)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	if (getsockname(ctl, (struct sockaddr *)&local, &len) < 0)
		return -1;
	sa_set_port((struct sockaddr *)&local, 0);
	int fd = socket(local.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&local, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&local, &len) < 0) {
		close(fd);
		return -1;
	}
	*port = (uint16_t)sa_port((struct sockaddr *)&local);
	return fd;
}

/* The bind list after a X'00' reply. */
static int read_binds(struct stp_listen *l, int64_t deadline, enum stp_err *err)
{
	uint8_t n;
	if (read_full(l, &n, 1, deadline, err) < 0)
		return -1;
	if (n != l->n)
		return fail(err, STP_ERR_PROTOCOL);
	for (unsigned i = 0; i < n; i++) {
		uint8_t kind;
		struct socks_addr bnd, relay;
		if (read_full(l, &kind, 1, deadline, err) < 0 ||
		    read_addr(l, &bnd, deadline, err) < 0)
			return -1;
		if (kind != (uint8_t)l->kind[i])
			return fail(err, STP_ERR_PROTOCOL);
		client_addr_from_socks(&l->bound[i], &bnd);
		fix_unspecified(&l->bound[i], l->ctl);
		if (kind != MBIND_KIND_UDP)
			continue;
		if (read_addr(l, &relay, deadline, err) < 0)
			return -1;
		struct stp_addr r;
		client_addr_from_socks(&r, &relay);
		fix_unspecified(&r, l->ctl);
		if (r.salen == 0 || connect(l->udp[i], (struct sockaddr *)&r.sa, r.salen) < 0)
			return fail(err, r.salen ? STP_ERR_SYSTEM : STP_ERR_PROTOCOL);
	}
	return 0;
}

struct stp_listen *stp_listen_open(const struct stp_proxy *proxy, const struct stp_bind_spec *binds,
				   unsigned n, int timeout_ms, enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);
	struct mbind_request req = { .dst = { .atyp = SOCKS_ATYP_IPV4 }, .n = (uint8_t)n };
	uint8_t buf[MBIND_REQUEST_MAX];
	enum stp_err e = STP_OK;

	if (!proxy || !binds || n == 0 || n > STP_LISTEN_MAX) {
		fail(err, STP_ERR_INVALID);
		return NULL;
	}
	if (proxy->kind != STP_SOCKS5 && proxy->kind != STP_SOCKS5H) {
		fail(err, STP_ERR_UNSUPPORTED);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		if (binds[i].kind != STP_BIND_UDP)
			continue;
		/* As stp_udp_open: TLS covers the control connection only, so
		 * clear datagrams need udp-naked=1. (GSS-API seals each
		 * datagram with the control connection's context: dgram_gss.) */
		if (proxy->tls.mode != STP_TLS_NONE && !proxy->tls.udp_naked) {
			fail(err, STP_ERR_TLS_UDP_NAKED);
			return NULL;
		}
	}
	struct stp_listen *l = calloc(1, sizeof(*l));
	if (!l) {
		fail(err, STP_ERR_NOMEM);
		return NULL;
	}
	l->proxy = *proxy;
	l->n = n;
	pthread_mutex_init(&l->lock, NULL);
	for (unsigned i = 0; i < STP_LISTEN_MAX; i++)
		l->udp[i] = -1;
	l->ctl = -1;
	if (client_proxy_needs_conn(proxy)) {
		l->conn = client_conn_connect(proxy, deadline, &e);
		if (l->conn == NULL)
			goto out;
		l->ctl = stp_conn_fd(l->conn);
	} else {
		l->ctl = client_proxy_connect_until(proxy, deadline, &e);
		if (l->ctl < 0)
			goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		l->kind[i] = binds[i].kind;
		req.e[i].port = binds[i].port;
		if (binds[i].kind == STP_BIND_TCP) {
			req.e[i].kind = MBIND_KIND_TCP;
			req.e[i].arg = binds[i].backlog;
		} else if (binds[i].kind == STP_BIND_UDP) {
			req.e[i].kind = MBIND_KIND_UDP;
			l->udp[i] = udp_socket(l->ctl, &req.e[i].arg);
			if (l->udp[i] < 0) {
				e = STP_ERR_SYSTEM;
				goto out;
			}
		} else {
			e = STP_ERR_INVALID;
			goto out;
		}
	}
	size_t len = mbind_request_write(buf, sizeof(buf), &req);
	uint8_t rep = 0;
	if (run_request(proxy, l->conn, l->ctl, buf, len, &rep, NULL, deadline, &e) < 0)
		goto out;
	if (rep != SOCKS5_REP_SUCCEEDED) {
		e = rep_err(rep);
		goto out;
	}
	if (read_binds(l, deadline, &e) < 0)
		goto out;
	log_debug("listen: %u binds on control fd %d", n, l->ctl);
	if (err)
		*err = STP_OK;
	return l;
out:
	stp_listen_close(l);
	fail(err, e);
	return NULL;
}

unsigned stp_listen_count(const struct stp_listen *l)
{
	return l->n;
}

const struct stp_addr *stp_listen_bound(const struct stp_listen *l, unsigned i)
{
	return i < l->n ? &l->bound[i] : NULL;
}

int stp_listen_fd(const struct stp_listen *l)
{
	return l->ctl;
}

int stp_listen_udp_fd(const struct stp_listen *l, unsigned i)
{
	return i < l->n ? l->udp[i] : -1;
}

/* Reads what is there; a whole message into *m returns 1. */
static int poll_msg(struct stp_listen *l, struct mbind_msg *m, enum stp_err *err)
{
	for (;;) {
		size_t used;
		if (l->inlen > 0) {
			enum socks_res r = mbind_msg_parse(m, l->in, l->inlen, &used, NULL);
			if (r == SOCKS_BAD || (r == SOCKS_DONE && m->type == MBIND_MSG_REFUSE))
				return fail(err, STP_ERR_PROTOCOL);
			if (r == SOCKS_DONE) {
				memmove(l->in, l->in + used, l->inlen - used);
				l->inlen -= used;
				return 1;
			}
		}
		/* One byte at a time past what a message needs: never more than
		 * the message, so the buffer cannot overflow. */
		ssize_t r = ctl_recv(l, l->in + l->inlen, 1, err);
		if (r == 1) {
			l->inlen++;
			continue;
		}
		if (r == 0) {
			l->gone = true;
			return fail(err, STP_ERR_PROXY_CLOSED);
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return l->conn ? -1 : fail(err, STP_ERR_IO);
	}
}

int stp_listen_next(struct stp_listen *l, struct stp_arrival *a, int timeout_ms, enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);
	if (l->gone)
		return fail(err, STP_ERR_PROXY_CLOSED);
	for (;;) {
		struct mbind_msg m;
		int r = poll_msg(l, &m, err);
		if (r < 0)
			return -1;
		if (r == 1 && m.type == MBIND_MSG_ARRIVAL) {
			if (m.bind >= l->n || l->kind[m.bind] != STP_BIND_TCP)
				return fail(err, STP_ERR_PROTOCOL);
			a->bind = m.bind;
			memcpy(a->id, m.id, sizeof(a->id));
			client_addr_from_socks(&a->peer, &m.peer);
			if (err)
				*err = STP_OK;
			return 0;
		}
		if (r == 1)
			continue; /* CLOSED: an arrival nobody took */
		int w = client_wait(l->ctl, POLLIN, deadline);
		if (w <= 0)
			return fail(err, w == 0 ? STP_ERR_TIMEOUT : STP_ERR_SYSTEM);
	}
}

int stp_listen_accept(struct stp_listen *l, const struct stp_arrival *a, int timeout_ms,
		      enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);
	struct mbind_accept acc;
	uint8_t buf[MBIND_ACCEPT_MAX], rep = 0;
	enum stp_err e = STP_OK;
	if (sa_to_socks(&acc.peer, (const struct sockaddr *)&a->peer.sa) < 0)
		return fail(err, STP_ERR_INVALID);
	memcpy(acc.id, a->id, sizeof(acc.id));
	size_t len = mbind_accept_write(buf, sizeof(buf), &acc);
	if (l->conn != NULL) {
		struct stp_conn *c = client_conn_connect(&l->proxy, deadline, &e);
		if (c == NULL)
			return fail(err, e);
		if (run_request(&l->proxy, c, stp_conn_fd(c), buf, len, &rep, NULL, deadline, &e) <
			    0 ||
		    rep != SOCKS5_REP_SUCCEEDED) {
			stp_conn_close(c);
			return fail(err, e != STP_OK ? e : rep_err(rep));
		}
		/* The peer's bytes are TLS (or GSS-API) records on the socket:
		 * a relay thread gives the caller a plain socket. */
		int fd = client_conn_to_thread(c, &e);
		if (fd < 0)
			return fail(err, e);
		if (err)
			*err = STP_OK;
		return fd;
	}
	int fd = client_proxy_connect_until(&l->proxy, deadline, &e);
	if (fd < 0)
		return fail(err, e);
	if (run_request(&l->proxy, NULL, fd, buf, len, &rep, NULL, deadline, &e) < 0 ||
	    rep != SOCKS5_REP_SUCCEEDED) {
		close(fd);
		return fail(err, e != STP_OK ? e : rep_err(rep));
	}
	client_set_blocking(fd, true);
	if (err)
		*err = STP_OK;
	return fd;
}

int stp_listen_refuse(struct stp_listen *l, const struct stp_arrival *a, enum stp_err *err)
{
	struct mbind_msg m = { .type = MBIND_MSG_REFUSE };
	uint8_t buf[MBIND_MSG_MAX];
	memcpy(m.id, a->id, sizeof(m.id));
	size_t n = mbind_msg_write(buf, sizeof(buf), &m);
	if (l->conn != NULL) {
		pthread_mutex_lock(&l->lock);
		int r = conn_write_all(l->conn, buf, n, client_deadline(5000), err);
		pthread_mutex_unlock(&l->lock);
		return r;
	}
	if (send(l->ctl, buf, n, MSG_NOSIGNAL) != (ssize_t)n)
		return fail(err, STP_ERR_IO);
	return 0;
}

/* GSS-API levels 1, 2 (RFC 1961 section 5, docs/protocol.md 5.7): a whole
 * RFC 1928 UDP datagram in p[0..len) <-> one X'03' frame, in place, with
 * the control connection's context, under the lock its reads and writes
 * take (a context is not thread-safe). len when there is no protection;
 * -1: too big, or does not unseal (dropped by the caller). */
static ssize_t dgram_gss(struct stp_listen *l, bool seal, uint8_t *p, size_t len, size_t cap)
{
	if (l->conn == NULL || !l->conn->gss.wrap)
		return (ssize_t)len;
	pthread_mutex_lock(&l->lock);
	ssize_t n = seal ? conn_gss_seal_dgram(l->conn, p, len, p, cap) :
			   conn_gss_unseal_dgram(l->conn, p, len, p, cap);
	pthread_mutex_unlock(&l->lock);
	return n;
}

ssize_t stp_listen_udp_recvfrom(struct stp_listen *l, unsigned i, void *buf, size_t cap,
				struct stp_addr *src, int timeout_ms, enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);
	uint8_t pkt[65536];
	if (i >= l->n || l->udp[i] < 0)
		return fail(err, STP_ERR_INVALID);
	for (;;) {
		int w = client_wait(l->udp[i], POLLIN, deadline);
		if (w <= 0)
			return fail(err, w == 0 ? STP_ERR_TIMEOUT : STP_ERR_SYSTEM);
		ssize_t r = recv(l->udp[i], pkt, sizeof(pkt), MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0)
			return fail(err, STP_ERR_IO);
		if ((r = dgram_gss(l, false, pkt, (size_t)r, sizeof(pkt))) < 0)
			continue; /* fails the GSS-API protection: dropped */
		struct stp_addr from;
		ssize_t off = stp_udp_unwrap(pkt, (size_t)r, &from);
		if (off < 0)
			continue; /* FRAG or a bad header: dropped (RFC 1928 section 7) */
		size_t n = (size_t)(r - off) < cap ? (size_t)(r - off) : cap;
		memcpy(buf, pkt + off, n);
		if (src)
			*src = from;
		if (err)
			*err = STP_OK;
		return (ssize_t)n;
	}
}

ssize_t stp_listen_udp_sendto(struct stp_listen *l, unsigned i, const void *buf, size_t len,
			      const struct sockaddr *dst, enum stp_err *err)
{
	uint8_t pkt[65536];
	struct socks_addr a;
	if (i >= l->n || l->udp[i] < 0 || sa_to_socks(&a, dst) < 0)
		return fail(err, STP_ERR_INVALID);
	size_t hl = socks_udp_write(pkt, sizeof(pkt), 0, &a);
	if (hl == 0 || len > sizeof(pkt) - hl)
		return fail(err, STP_ERR_INVALID);
	memcpy(pkt + hl, buf, len);
	ssize_t n = dgram_gss(l, true, pkt, hl + len, sizeof(pkt));
	if (n < 0)
		return fail(err, STP_ERR_GSS_PROTECTION);
	if (send(l->udp[i], pkt, (size_t)n, 0) < 0)
		return fail(err, STP_ERR_IO);
	if (err)
		*err = STP_OK;
	return (ssize_t)len;
}

void stp_listen_close(struct stp_listen *l)
{
	if (!l)
		return;
	if (l->conn != NULL)
		stp_conn_close(l->conn); /* closes l->ctl */
	else if (l->ctl >= 0)
		close(l->ctl);
	for (unsigned i = 0; i < STP_LISTEN_MAX; i++)
		if (l->udp[i] >= 0)
			close(l->udp[i]);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
