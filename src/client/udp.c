/*
 * udp.c - UDP ASSOCIATE (RFC 1928 section 7): the association, and the
 * header added to and stripped from every datagram.
 *
 * The UDP socket is bound to the local address of the control connection
 * and declared in the request, so a proxy that pins clients (stpd does)
 * knows where datagrams come from; it is then connected to the relay, so
 * the kernel drops datagrams from anyone else.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "client/client.h"
#include "client/conn.h"
#include "common/log.h"
#include "common/sockaddr.h"

#define UDP_DGRAM_MAX 65535

struct stp_udp {
	int ctl;  /* the TCP control connection: the association's lifetime */
	struct stp_conn *conn; /* TLS proxies: ctl's connection (ctl is its fd) */
	int udp;
	struct stp_proxy proxy;
	struct stp_addr relay;
	uint8_t pkt[UDP_DGRAM_MAX]; /* one received datagram, header included */
	uint8_t gss[UDP_DGRAM_MAX]; /* GSS-API levels 1, 2: the datagram as framed */
};

/* GSS-API at levels 1 and 2 wraps every datagram (RFC 1961 section 5). */
static bool udp_sealed(const struct stp_udp *u)
{
	return u->conn != NULL && u->conn->gss.wrap;
}

static void *udp_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return NULL;
}

/* A UDP socket on the control connection's local address, port 0. */
static int udp_socket_near(int ctl, struct sockaddr_storage *local, socklen_t *len)
{
	int fd;

	*len = sizeof(*local);
	if (getsockname(ctl, (struct sockaddr *)local, len) < 0)
		return -1;
	sa_set_port((struct sockaddr *)local, 0);
	fd = socket(local->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)local, *len) < 0 ||
	    getsockname(fd, (struct sockaddr *)local, len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The relay's address: BND, with an unspecified address replaced by the
 * proxy's (what most servers mean by 0.0.0.0). */
static int udp_relay_addr(struct stp_udp *u, const struct stp_addr *bnd)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	u->relay = *bnd;
	if (bnd->salen == 0)
		return -1; /* a name: stp does not resolve relay names */
	if (!client_addr_unspecified(bnd))
		return 0;
	if (getpeername(u->ctl, (struct sockaddr *)&peer, &len) < 0)
		return -1;
	sa_set_port((struct sockaddr *)&peer, bnd->port);
	memcpy(&u->relay.sa, &peer, len);
	u->relay.salen = len;
	return 0;
}

static struct stp_udp *udp_open(struct stp_udp *u, const struct stp_proxy *proxy,
				const struct stp_tunnel_opts *tun, int64_t deadline, enum stp_err *err)
{
	struct sockaddr_storage local;
	socklen_t len;
	struct stp_handshake h;
	enum stp_err e = STP_OK;

	if (proxy->kind == STP_SOCKS4 || proxy->kind == STP_SOCKS4A)
		return udp_fail(err, STP_ERR_UNSUPPORTED);
	/* TLS covers the control connection only: the caller must say that
	 * clear datagrams are fine (docs/client.md). */
	if (proxy->tls.mode != STP_TLS_NONE && !proxy->tls.udp_naked)
		return udp_fail(err, STP_ERR_TLS_UDP_NAKED);
	u->proxy = *proxy;
	if (client_proxy_needs_conn(proxy)) {
		u->conn = client_conn_connect(proxy, deadline, &e);
		u->ctl = u->conn ? stp_conn_fd(u->conn) : -1;
	} else {
		u->ctl = client_proxy_connect_until(proxy, deadline, &e);
	}
	if (u->ctl < 0)
		return udp_fail(err, e);
	u->udp = udp_socket_near(u->ctl, &local, &len);
	if (u->udp < 0)
		return udp_fail(err, STP_ERR_SYSTEM);
	if (u->conn != NULL
		    ? client_conn_hs_init(u->conn, &h, proxy, STP_CMD_UDP_ASSOCIATE, NULL, 0,
					  (struct sockaddr *)&local, &e) < 0
		    : stp_handshake_init(&h, proxy, u->ctl, STP_CMD_UDP_ASSOCIATE, NULL, 0,
					 (struct sockaddr *)&local, &e) < 0)
		return udp_fail(err, e);
	if (tun && client_handshake_tunnel(&h, tun) < 0)
		return udp_fail(err, STP_ERR_INVALID);
	if ((u->conn != NULL ? client_conn_hs_run(u->conn, &h, deadline)
			     : client_handshake_run(&h, deadline)) != STP_DONE) {
		errno = h.sys_errno;
		return udp_fail(err, h.err);
	}
	if (udp_relay_addr(u, &h.bound) < 0)
		return udp_fail(err, STP_ERR_PROTOCOL);
	if (u->relay.sa.ss_family != local.ss_family) {
		/* The relay speaks the other family: our declared address was
		 * only a hint, so an unbound socket of the right family will do. */
		close(u->udp);
		u->udp = socket(u->relay.sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (u->udp < 0)
			return udp_fail(err, STP_ERR_SYSTEM);
	}
	if (connect(u->udp, (struct sockaddr *)&u->relay.sa, u->relay.salen) < 0)
		return udp_fail(err, STP_ERR_SYSTEM);
	char where[STP_ADDR_STR_MAX];
	log_debug("UDP association on fd %d, relay %s", u->ctl,
		  stp_addr_str(&u->relay, where, sizeof(where)));
	if (err)
		*err = STP_OK;
	return u;
}

static struct stp_udp *udp_new(const struct stp_proxy *proxy, const struct stp_tunnel_opts *tun,
			       int timeout_ms, enum stp_err *err)
{
	struct stp_udp *u;

	if (proxy == NULL)
		return udp_fail(err, STP_ERR_INVALID);
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return udp_fail(err, STP_ERR_NOMEM);
	u->ctl = u->udp = -1;
	if (udp_open(u, proxy, tun, client_deadline(timeout_ms), err) == NULL) {
		int saved = errno;
		stp_udp_close(u);
		errno = saved;
		return NULL;
	}
	return u;
}

struct stp_udp *stp_udp_open(const struct stp_proxy *proxy, int timeout_ms, enum stp_err *err)
{
	return udp_new(proxy, NULL, timeout_ms, err);
}

struct stp_udp *stp_tunnel_open(const struct stp_proxy *proxy, const struct stp_tunnel_opts *o,
				int timeout_ms, enum stp_err *err)
{
	if (o == NULL)
		return udp_fail(err, STP_ERR_INVALID);
	return udp_new(proxy, o, timeout_ms, err);
}

void stp_udp_close(struct stp_udp *u)
{
	if (u == NULL)
		return;
	if (u->udp >= 0)
		close(u->udp);
	if (u->conn != NULL)
		stp_conn_close(u->conn); /* close_notify, and closes ctl */
	else if (u->ctl >= 0)
		close(u->ctl);
	free(u);
}

int stp_udp_fd(const struct stp_udp *u) { return u->udp; }
int stp_udp_control_fd(const struct stp_udp *u) { return u->ctl; }
const struct stp_addr *stp_udp_relay(const struct stp_udp *u) { return &u->relay; }

/*
 * +----+------+------+----------+----------+----------+
 * |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
 * +----+------+------+----------+----------+----------+
 * | 2  |  1   |  1   | Variable |    2     | Variable |
 * +----+------+------+----------+----------+----------+
 */
size_t stp_udp_header(uint8_t *dst, size_t cap, const char *host, uint16_t port,
		      const struct sockaddr *sa)
{
	/* Names go to the proxy as they are: the header has no local step. */
	static const struct stp_proxy as_is = { .kind = STP_SOCKS5H };
	struct socks_addr a;
	enum stp_err e;

	if ((sa == NULL && host == NULL) || client_target_encode(&a, &as_is, host, port, sa, &e) < 0)
		return 0;
	return socks_udp_write(dst, cap, 0, &a);
}

ssize_t stp_udp_unwrap(const uint8_t *p, size_t n, struct stp_addr *src)
{
	struct socks_udp_hdr hdr;

	if (socks_udp_parse(&hdr, p, n, NULL) != SOCKS_DONE || hdr.frag != 0)
		return -1;
	if (src)
		client_addr_from_socks(src, &hdr.addr);
	return (ssize_t)hdr.hdrlen;
}

static ssize_t udp_send(struct stp_udp *u, const struct socks_addr *a, const void *buf,
			size_t len, enum stp_err *err)
{
	uint8_t hdr[SOCKS_UDP_HDR_MAX];
	size_t hlen = socks_udp_write(hdr, sizeof(hdr), 0, a);
	struct iovec iov[2] = { { hdr, hlen }, { (void *)buf, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

	if (hlen == 0 || len > UDP_DGRAM_MAX - hlen) {
		if (err)
			*err = hlen == 0 ? STP_ERR_TARGET_NAME : STP_ERR_INVALID;
		return -1;
	}
	if (udp_sealed(u)) {
		/* The whole datagram, header and data, in one X'03' frame. */
		memcpy(u->pkt, hdr, hlen);
		memcpy(u->pkt + hlen, buf, len);
		ssize_t n = conn_gss_seal_dgram(u->conn, u->pkt, hlen + len, u->gss, sizeof(u->gss));
		if (n < 0) {
			if (err)
				*err = STP_ERR_GSS_PROTECTION;
			return -1;
		}
		iov[0] = (struct iovec){ u->gss, (size_t)n };
		msg.msg_iovlen = 1;
	}
	if (sendmsg(u->udp, &msg, MSG_NOSIGNAL) < 0) {
		if (err)
			*err = STP_ERR_IO;
		return -1;
	}
	if (err)
		*err = STP_OK;
	return (ssize_t)len;
}

ssize_t stp_udp_sendto(struct stp_udp *u, const void *buf, size_t len, const char *host,
		       uint16_t port, enum stp_err *err)
{
	struct socks_addr a;
	enum stp_err e;

	if (host == NULL) {
		if (err)
			*err = STP_ERR_INVALID;
		return -1;
	}
	if (client_target_encode(&a, &u->proxy, host, port, NULL, &e) < 0) {
		if (err)
			*err = e;
		return -1;
	}
	return udp_send(u, &a, buf, len, err);
}

ssize_t stp_udp_sendto_sa(struct stp_udp *u, const void *buf, size_t len,
			  const struct sockaddr *sa, enum stp_err *err)
{
	struct socks_addr a;

	if (sa == NULL || sa_to_socks(&a, sa) < 0) {
		if (err)
			*err = sa == NULL ? STP_ERR_INVALID : STP_ERR_TARGET_FAMILY;
		return -1;
	}
	return udp_send(u, &a, buf, len, err);
}

/* The proxy may only close the control connection (or reset it): either
 * ends the association. Stray bytes on it are read and ignored. */
static bool udp_control_gone(struct stp_udp *u)
{
	char junk[256];
	ssize_t n;

	if (u->conn != NULL) {
		/* Through TLS: the proxy's close_notify ends it too. */
		enum stp_err e;
		stp_conn_set_nonblocking(u->conn, true);
		n = stp_conn_read(u->conn, junk, sizeof(junk), &e);
	} else {
		n = recv(u->ctl, junk, sizeof(junk), MSG_DONTWAIT);
	}

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* One datagram from the relay, payload copied to buf. 0 after dropping a
 * bad one, -1 on error. */
static ssize_t udp_take(struct stp_udp *u, void *buf, size_t cap, struct stp_addr *src,
			bool *got, enum stp_err *err)
{
	bool sealed = udp_sealed(u);
	ssize_t n = recv(u->udp, sealed ? u->gss : u->pkt, sizeof(u->pkt), MSG_DONTWAIT);
	ssize_t off;

	*got = false;
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		*err = STP_ERR_IO;
		return -1;
	}
	if (sealed) {
		n = conn_gss_unseal_dgram(u->conn, u->gss, (size_t)n, u->pkt, sizeof(u->pkt));
		if (n < 0) {
			log_debug("UDP: dropped a datagram that fails GSS-API protection");
			return 0;
		}
	}
	off = stp_udp_unwrap(u->pkt, (size_t)n, src);
	if (off < 0) {
		log_debug("UDP: dropped a datagram with a bad header or FRAG != 0");
		return 0;
	}
	size_t plen = (size_t)(n - off) < cap ? (size_t)(n - off) : cap;
	memcpy(buf, u->pkt + off, plen);
	*got = true;
	return (ssize_t)plen;
}

ssize_t stp_udp_recvfrom(struct stp_udp *u, void *buf, size_t cap, struct stp_addr *src,
			 int timeout_ms, enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);
	struct stp_addr dummy;
	enum stp_err e = STP_OK;

	for (;;) {
		struct pollfd p[2] = { { .fd = u->udp, .events = POLLIN },
				       { .fd = u->ctl, .events = POLLIN } };
		int n = poll(p, 2, client_remaining(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = STP_ERR_SYSTEM;
			break;
		}
		if (n == 0) {
			e = STP_ERR_TIMEOUT;
			break;
		}
		if (p[0].revents) {
			bool got;
			ssize_t r = udp_take(u, buf, cap, src ? src : &dummy, &got, &e);
			if (r < 0)
				break;
			if (got) {
				if (err)
					*err = STP_OK;
				return r;
			}
		}
		if (p[1].revents && udp_control_gone(u)) {
			e = STP_ERR_PROXY_CLOSED;
			break;
		}
	}
	if (err)
		*err = e;
	return -1;
}
