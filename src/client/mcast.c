/*
 * mcast.c - multicast memberships through stpd (docs/mcast.md): JOIN on
 * a control connection of its own, the two UDP sockets, LEAVE, notices.
 *
 * The greeting and authentication are the handshake engine's (handshake.c):
 * it is started as a CONNECT and its request is swapped for the JOIN before
 * the first byte goes out. The engine reads exactly the RFC 1928 part of
 * the reply (never past it), so LEN|KEY are still in the socket for us.
 *
 * One JOIN per control connection. The protocol allows more (further JOINs
 * on the same connection, replies in order), but then a notice or EOF ends
 * them all at once; a connection each keeps every membership independent.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/mcast.h"
#include "common/log.h"
#include "common/sockaddr.h"

static void *mc_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return NULL;
}

static int mc_fail_int(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return -1;
}

/* ---- the request ---- */

static int mc_filter_encode(struct mcast_filter *out, const struct stp_mcast_filter *f,
			    uint8_t atyp)
{
	memset(out, 0, sizeof(*out));
	if (f->nsrc > STP_MCAST_SOURCES_MAX || (f->mode == STP_MCAST_INCLUDE && f->nsrc == 0))
		return -1;
	out->mode = f->mode == STP_MCAST_INCLUDE ? MCAST_FMODE_INCLUDE : MCAST_FMODE_EXCLUDE;
	out->nsrc = (uint8_t)f->nsrc;
	out->atyp = atyp;
	for (unsigned i = 0; i < f->nsrc; i++) {
		struct socks_addr a;
		if (sa_to_socks(&a, (const struct sockaddr *)&f->src[i]) < 0 || a.atyp != atyp)
			return -1; /* every source has the group's family */
		memcpy(out->src[i], a.u.v6, atyp == SOCKS_ATYP_IPV4 ? 4 : 16);
	}
	return 0;
}

/* group/port or sa, and the filter, into a JOIN (X'05') or JOIN with
 * source filter (X'85'). */
static int mc_request(struct mcast_request *r, const char *group, uint16_t port,
		      const struct sockaddr *sa, const struct stp_mcast_filter *f, enum stp_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memset(r, 0, sizeof(*r));
	if (sa == NULL && (group == NULL || !client_literal_parse(&ss, &len, group, port)))
		return mc_fail_int(err, group ? STP_ERR_TARGET_NAME : STP_ERR_INVALID);
	if (sa_to_socks(&r->group, sa ? sa : (struct sockaddr *)&ss) < 0)
		return mc_fail_int(err, STP_ERR_TARGET_FAMILY);
	r->cmd = SOCKS_CMD_JOIN_MCAST;
	if (f == NULL || f->mode == STP_MCAST_ANY)
		return 0;
	r->cmd = MCAST_CMD_JOIN_FILTER;
	if ((f->mode != STP_MCAST_INCLUDE && f->mode != STP_MCAST_EXCLUDE) ||
	    mc_filter_encode(&r->filter, f, r->group.atyp) < 0)
		return mc_fail_int(err, STP_ERR_INVALID);
	return 0;
}

/* ---- control connection I/O ---- */

/* Exactly n bytes before the deadline. */
static int mc_read_full(int fd, uint8_t *p, size_t n, int64_t deadline, enum stp_err *err)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, p + got, n - got, MSG_DONTWAIT);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			return mc_fail_int(err, STP_ERR_PROXY_CLOSED);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return mc_fail_int(err, STP_ERR_IO);
		int w = client_wait(fd, POLLIN, deadline);
		if (w <= 0)
			return mc_fail_int(err, w == 0 ? STP_ERR_TIMEOUT : STP_ERR_SYSTEM);
	}
	return 0;
}

static int mc_write_all(int fd, const uint8_t *p, size_t n, int64_t deadline, enum stp_err *err)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = send(fd, p + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return mc_fail_int(err, STP_ERR_IO);
		int w = client_wait(fd, POLLOUT, deadline);
		if (w <= 0)
			return mc_fail_int(err, w == 0 ? STP_ERR_TIMEOUT : STP_ERR_SYSTEM);
	}
	return 0;
}

/*
 * The KEY block after a JOIN reply (docs/mcast.md 3.2): LEN, then LEN
 * bytes. LEN 0 means no encryption; otherwise FLAGS must match REP
 * (X'03' for X'00', X'02' for X'B0', X'01' for X'B1').
 */
static int mc_read_key(struct stp_mcast *m, int64_t deadline, enum stp_err *err)
{
	uint8_t len, kb[255];
	uint8_t want = m->rep == SOCKS5_REP_SUCCEEDED		? (MCAST_KEYF_SEND | MCAST_KEYF_RECV)
		       : m->rep == SOCKS5_REP_MCAST_NO_SEND ? MCAST_KEYF_RECV
		       : m->rep == SOCKS5_REP_MCAST_NO_RECV ? MCAST_KEYF_SEND
							    : 0;

	if (mc_read_full(m->ctl, &len, 1, deadline, err) < 0 ||
	    mc_read_full(m->ctl, kb, len, deadline, err) < 0)
		return -1;
	m->encrypted = len > 0;
	if (len == 0)
		return 0;
	if (mcast_keyblock_parse(&m->key, kb, len, NULL) != SOCKS_DONE ||
	    (m->rep != SOCKS5_REP_MCAST_NEITHER && m->key.flags != want)) {
		OPENSSL_cleanse(kb, sizeof(kb));
		return mc_fail_int(err, STP_ERR_PROTOCOL);
	}
	OPENSSL_cleanse(kb, sizeof(kb));
	return 0;
}

/* Greeting, authentication and the JOIN, then the reply's LEN|KEY. */
static int mc_handshake(struct stp_mcast *m, const struct stp_proxy *proxy,
			const struct mcast_request *req, int64_t deadline, enum stp_err *err)
{
	struct stp_handshake h;
	enum stp_err e;

	if (stp_handshake_init(&h, proxy, m->ctl, STP_CMD_CONNECT, NULL, 0,
			       (const struct sockaddr *)&(struct sockaddr_in){ .sin_family = AF_INET },
			       &e) < 0)
		return mc_fail_int(err, e);
	/* The engine sends h.req as the request: make it the JOIN. */
	h.req_len = mcast_request_write(h.req, sizeof(h.req), req);
	if (h.req_len == 0)
		return mc_fail_int(err, STP_ERR_INVALID);
	if (client_handshake_run(&h, deadline) != STP_DONE) {
		bool replied = h.err >= STP_ERR_REP_GENERAL_FAILURE && h.err <= STP_ERR_REP_OTHER;
		if (!replied) {
			errno = h.sys_errno;
			return mc_fail_int(err, h.err);
		}
	}
	m->rep = h.rep;
	m->intranet = h.bound;
	log_debug("multicast: JOIN on fd %d answered %s", m->ctl, socks5_rep_name(h.rep));
	if (mcast_reply_has_key(req->cmd, m->rep) && mc_read_key(m, deadline, err) < 0)
		return -1;
	return 0;
}

/* What the caller asked for against what the proxy granted. */
static enum stp_err mc_grant_err(uint8_t rep, unsigned flags)
{
	if (rep == SOCKS5_REP_MCAST_NO_SEND && !(flags & STP_MCAST_SEND))
		return STP_OK;
	if (rep == SOCKS5_REP_MCAST_NO_RECV && !(flags & STP_MCAST_RECV))
		return STP_OK;
	return mcast_rep_err(rep);
}

/* ---- sockets ---- */

/* The interface that holds addr (the control connection's local address):
 * the intranet group is joined there. 0 (route lookup) when none does. */
static unsigned mc_ifindex(const struct sockaddr *addr)
{
	struct ifaddrs *all, *ifa;
	unsigned idx = 0;

	if (getifaddrs(&all) < 0)
		return 0;
	for (ifa = all; ifa != NULL && idx == 0; ifa = ifa->ifa_next)
		if (ifa->ifa_addr != NULL && ifa->ifa_addr->sa_family == addr->sa_family &&
		    sa_equal_addr(ifa->ifa_addr, addr))
			idx = if_nametoindex(ifa->ifa_name);
	freeifaddrs(all);
	return idx;
}

/* A socket bound to the intranet group I:P and joined to it on ifindex
 * (docs/mcast.md 3.1). SO_REUSEADDR: several members on one host share
 * I:P, and each gets every datagram. */
static int mc_open_rx(const struct stp_addr *intranet, unsigned ifindex)
{
	struct sockaddr_storage ss = intranet->sa;
	struct group_req gr = { .gr_interface = ifindex };
	int one = 1, fam = ss.ss_family;
	int fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (fam == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_scope_id = ifindex;
	memcpy(&gr.gr_group, &ss, sizeof(ss));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, intranet->salen) < 0 ||
	    setsockopt(fd, fam == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP, MCAST_JOIN_GROUP, &gr,
		       sizeof(gr)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* A socket from the control connection's local address (the relay knows
 * members by that IP, docs/mcast.md 4.4) connected to the relay. */
static int mc_open_tx(const struct sockaddr_storage *local, socklen_t llen,
		      const struct stp_addr *relay)
{
	struct sockaddr_storage me = *local;
	int fd = socket(me.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa_set_port((struct sockaddr *)&me, 0);
	if (bind(fd, (struct sockaddr *)&me, llen) < 0 ||
	    connect(fd, (const struct sockaddr *)&relay->sa, relay->salen) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int mc_open_sockets(struct stp_mcast *m, enum stp_err *err)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local), plen = sizeof(m->relay.sa);

	if (m->intranet.salen == 0)
		return mc_fail_int(err, STP_ERR_PROTOCOL); /* a name, not a group */
	memset(&m->relay, 0, sizeof(m->relay));
	if (getsockname(m->ctl, (struct sockaddr *)&local, &llen) < 0 ||
	    getpeername(m->ctl, (struct sockaddr *)&m->relay.sa, &plen) < 0)
		return mc_fail_int(err, STP_ERR_SYSTEM);
	m->relay.salen = plen;
	m->relay.port = m->intranet.port;
	sa_set_port((struct sockaddr *)&m->relay.sa, m->intranet.port);
	if (stp_mcast_can_send(m) && (m->tx = mc_open_tx(&local, llen, &m->relay)) < 0)
		return mc_fail_int(err, STP_ERR_SYSTEM);
	if (stp_mcast_can_recv(m) &&
	    (m->rx = mc_open_rx(&m->intranet, mc_ifindex((struct sockaddr *)&local))) < 0)
		return mc_fail_int(err, STP_ERR_SYSTEM);
	return 0;
}

/* ---- join ---- */

static struct stp_mcast *mc_join(struct stp_mcast *m, const struct stp_proxy *proxy,
				 const struct mcast_request *req, unsigned flags,
				 int64_t deadline, enum stp_err *err)
{
	enum stp_err e = STP_OK;
	char a[STP_ADDR_STR_MAX], b[STP_ADDR_STR_MAX];

	m->ctl = client_proxy_connect_until(proxy, deadline, &e);
	if (m->ctl < 0)
		return mc_fail(err, e);
	if (mc_handshake(m, proxy, req, deadline, err) < 0)
		return NULL;
	if ((e = mc_grant_err(m->rep, flags)) != STP_OK)
		return mc_fail(err, e);
	if (mcast_crypto_init(m) < 0)
		return mc_fail(err, STP_ERR_NOMEM);
	if (mc_open_sockets(m, err) < 0)
		return NULL;
	log_debug("multicast: member %u of %s, intranet %s, relay %s",
		  (unsigned)m->key.member_id, socks5_rep_name(m->rep),
		  stp_addr_str(&m->intranet, a, sizeof(a)), stp_addr_str(&m->relay, b, sizeof(b)));
	if (err)
		*err = STP_OK;
	return m;
}

struct stp_mcast *stp_mcast_join(const struct stp_proxy *proxy, const char *group,
				 uint16_t port, const struct sockaddr *sa, unsigned flags,
				 const struct stp_mcast_filter *filter, int timeout_ms,
				 enum stp_err *err)
{
	struct mcast_request req;
	struct stp_mcast *m;

	client_debug_on();
	if (proxy == NULL)
		return mc_fail(err, STP_ERR_INVALID);
	if ((proxy->kind != STP_SOCKS5 && proxy->kind != STP_SOCKS5H) ||
	    proxy->tls.mode != STP_TLS_NONE || proxy->gss.on)
		return mc_fail(err, STP_ERR_UNSUPPORTED);
	if (mc_request(&req, group, port, sa, filter, err) < 0)
		return NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return mc_fail(err, STP_ERR_NOMEM);
	m->ctl = m->rx = m->tx = -1;
	m->group = req.group;
	if (mc_join(m, proxy, &req, flags, client_deadline(timeout_ms), err) == NULL) {
		int saved = errno;
		stp_mcast_close(m);
		errno = saved;
		return NULL;
	}
	return m;
}

/* ---- control connection after the JOIN: notices, LEAVE ---- */

/* Whatever the control connection says now (non-blocking). 1 when a whole
 * message is in m->in (*rep set), 0 when more is needed, -1 when it
 * ended (m->over, m->end_err). */
static int mc_ctl_poll(struct stp_mcast *m, uint8_t *rep)
{
	struct mcast_reply r;
	size_t used = 0;

	for (;;) {
		enum socks_res res = mcast_reply_parse(&r, SOCKS_CMD_LEAVE_MCAST, m->in, m->in_len,
						       &used, NULL);
		if (res == SOCKS_DONE) {
			memmove(m->in, m->in + used, m->in_len - used);
			m->in_len -= used;
			*rep = r.rep;
			return 1;
		}
		if (res == SOCKS_BAD || m->in_len == sizeof(m->in)) {
			m->end_err = STP_ERR_PROTOCOL;
			break;
		}
		ssize_t n = recv(m->ctl, m->in + m->in_len, sizeof(m->in) - m->in_len, MSG_DONTWAIT);
		if (n > 0) {
			m->in_len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		m->end_err = n == 0 ? STP_ERR_PROXY_CLOSED : STP_ERR_IO;
		break;
	}
	m->over = true;
	return -1;
}

/* A notice (X'B3'-X'B5') ends the membership; nothing else may come
 * unasked. */
static void mc_unsolicited(struct stp_mcast *m, uint8_t rep)
{
	m->over = true;
	m->end_err = rep >= SOCKS5_REP_MCAST_BANDWIDTH && rep <= SOCKS5_REP_MCAST_IDLE
			     ? mcast_rep_err(rep)
			     : STP_ERR_PROTOCOL;
	log_debug("multicast: control fd %d: %s", m->ctl, stp_strerror(m->end_err));
}

int stp_mcast_check(struct stp_mcast *m, enum stp_err *err)
{
	uint8_t rep;

	if (!m->over && mc_ctl_poll(m, &rep) == 1)
		mc_unsolicited(m, rep);
	if (m->over)
		return mc_fail_int(err, m->end_err == STP_OK ? STP_ERR_INVALID : m->end_err);
	if (err)
		*err = STP_OK;
	return 0;
}

int stp_mcast_leave(struct stp_mcast *m, int timeout_ms, enum stp_err *err)
{
	struct mcast_request req = { .cmd = SOCKS_CMD_LEAVE_MCAST, .group = m->group };
	uint8_t msg[SOCKS5_REQUEST_MAX], rep;
	int64_t deadline = client_deadline(timeout_ms);
	size_t n = mcast_request_write(msg, sizeof(msg), &req);
	int r;

	if (stp_mcast_check(m, err) < 0)
		return -1;
	if (mc_write_all(m->ctl, msg, n, deadline, err) < 0)
		return -1;
	while ((r = mc_ctl_poll(m, &rep)) == 0) {
		int w = client_wait(m->ctl, POLLIN, deadline);
		if (w <= 0)
			return mc_fail_int(err, w == 0 ? STP_ERR_TIMEOUT : STP_ERR_SYSTEM);
	}
	if (r < 0)
		return mc_fail_int(err, m->end_err);
	m->over = true;
	m->end_err = mcast_rep_err(rep);
	if (rep >= SOCKS5_REP_MCAST_BANDWIDTH && rep <= SOCKS5_REP_MCAST_IDLE)
		return mc_fail_int(err, m->end_err); /* a notice overtook our LEAVE */
	if (rep != SOCKS5_REP_SUCCEEDED)
		return mc_fail_int(err, m->end_err);
	if (err)
		*err = STP_OK;
	return 0;
}

void stp_mcast_close(struct stp_mcast *m)
{
	if (m == NULL)
		return;
	if (m->rx >= 0)
		close(m->rx);
	if (m->tx >= 0)
		close(m->tx);
	if (m->ctl >= 0)
		close(m->ctl); /* the proxy leaves the group for us */
	mcast_crypto_free(m);
	free(m);
}

/* ---- datagrams ---- */

ssize_t stp_mcast_send(struct stp_mcast *m, const void *buf, size_t len, enum stp_err *err)
{
	if (!stp_mcast_can_send(m))
		return mc_fail_int(err, STP_ERR_MCAST_NO_SEND);
	if (m->over)
		return mc_fail_int(err, m->end_err == STP_OK ? STP_ERR_INVALID : m->end_err);
	if (len > sizeof(m->pkt) - STP_MCAST_OVERHEAD)
		return mc_fail_int(err, STP_ERR_INVALID);
	size_t n = stp_mcast_seal(m, buf, len, m->pkt, sizeof(m->pkt));
	if (n == 0)
		return mc_fail_int(err, STP_ERR_SYSTEM);
	if (send(m->tx, m->pkt, n, MSG_NOSIGNAL) < 0)
		return mc_fail_int(err, STP_ERR_IO);
	if (err)
		*err = STP_OK;
	return (ssize_t)len;
}

/* One datagram from the intranet socket. 1 with a payload, 0 when there
 * was none or it was dropped, -1 on error. */
static int mc_take(struct stp_mcast *m, void *buf, size_t cap, struct stp_addr *from,
		   size_t *len, enum stp_err *err)
{
	ssize_t n = recv(m->rx, m->pkt, sizeof(m->pkt), MSG_DONTWAIT);
	size_t plen;

	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		return mc_fail_int(err, STP_ERR_IO);
	}
	ssize_t off = stp_mcast_open(m, m->pkt, (size_t)n, &plen, from, 0);
	if (off < 0)
		return 0;
	*len = plen < cap ? plen : cap;
	memcpy(buf, m->pkt + off, *len);
	return 1;
}

ssize_t stp_mcast_recv(struct stp_mcast *m, void *buf, size_t cap, struct stp_addr *from,
		       int timeout_ms, enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);

	if (m->rx < 0)
		return mc_fail_int(err, stp_mcast_can_recv(m) ? STP_ERR_INVALID
							      : STP_ERR_MCAST_NO_RECV);
	for (;;) {
		struct pollfd p[2] = { { .fd = m->rx, .events = POLLIN },
				       { .fd = m->over ? -1 : m->ctl, .events = POLLIN } };
		size_t len;
		int n;
		if (m->over)
			return mc_fail_int(err, m->end_err == STP_OK ? STP_ERR_INVALID : m->end_err);
		n = poll(p, 2, client_remaining(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return mc_fail_int(err, n == 0 ? STP_ERR_TIMEOUT : STP_ERR_SYSTEM);
		if (p[0].revents) {
			int r = mc_take(m, buf, cap, from, &len, err);
			if (r < 0)
				return -1;
			if (r > 0) {
				if (err)
					*err = STP_OK;
				return (ssize_t)len;
			}
		}
		if (p[1].revents && stp_mcast_check(m, err) < 0)
			return -1;
	}
}

/* ---- accessors ---- */

int stp_mcast_fd(const struct stp_mcast *m) { return m->rx; }
int stp_mcast_control_fd(const struct stp_mcast *m) { return m->ctl; }
int stp_mcast_send_fd(const struct stp_mcast *m) { return m->tx; }
uint8_t stp_mcast_rep(const struct stp_mcast *m) { return m->rep; }
const struct stp_addr *stp_mcast_intranet(const struct stp_mcast *m) { return &m->intranet; }
const struct stp_addr *stp_mcast_relay(const struct stp_mcast *m) { return &m->relay; }

bool stp_mcast_can_send(const struct stp_mcast *m)
{
	return m->rep == SOCKS5_REP_SUCCEEDED || m->rep == SOCKS5_REP_MCAST_NO_RECV;
}

bool stp_mcast_can_recv(const struct stp_mcast *m)
{
	return m->rep == SOCKS5_REP_SUCCEEDED || m->rep == SOCKS5_REP_MCAST_NO_SEND;
}

int stp_mcast_take_fd(struct stp_mcast *m)
{
	int fd = m->rx;

	m->rx = -1;
	return fd;
}
