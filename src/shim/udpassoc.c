/*
 * udpassoc.c - UDP through the proxy (RFC 1928 section 7) on the
 * application's own UDP socket.
 *
 * The association is made lazily, on the first datagram (or connect())
 * to a proxied destination: an internal TCP control connection to the
 * proxy (protected from the application's close/dup2, see fdtab.c) carries
 * UDP ASSOCIATE, declaring the socket's address. Datagrams then go from
 * the application's socket to the relay with the header
 *
 * +----+------+------+----------+----------+----------+
 * |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
 * +----+------+------+----------+----------+----------+
 * | 2  |  1   |  1   | Variable |    2     | Variable |
 * +----+------+------+----------+----------+----------+
 *
 * prepended, and datagrams from the relay have it stripped; the source it
 * names becomes the address recvfrom() reports. The socket itself is never
 * connect()ed at the kernel level: an application's connect() is recorded
 * and applied here (send() uses it, datagrams from elsewhere are dropped),
 * so the same socket can still reach bypassed destinations directly.
 * When the proxy closes the control connection, the next send makes a new
 * association.
 *
 * With udp_transparent on, a connected socket asks for TRANSPARENT X'04'
 * to its peer first (seed 003, docs/stpify.md): datagrams then go to the
 * relay as they are, with no header, and all come from the peer. A proxy
 * that answers X'07' (no such command) or X'09' (no UDP relay) gets UDP
 * ASSOCIATE on a new control connection, and is not asked again; X'02'
 * (its rules refuse it) gets ASSOCIATE for this socket. A
 * datagram to another destination, or a connect() elsewhere, ends the
 * TRANSPARENT association and the socket makes a new one.
 *
 * A destination the `tunnel` setting names (udptunnel.c) gets a tunnel
 * instead: the request is SETUP_UDP_TUNNEL X'20' to that one destination,
 * the datagrams carry the header as for ASSOCIATE. Like TRANSPARENT, it
 * reaches one peer: a datagram elsewhere ends it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "client/client.h"
#include "common/sockaddr.h"
#include "shim/shim.h"

#define UDP_PKT_MAX 65536
#define UDP_IOV_MAX 64

static pthread_mutex_t udp_create_lock = PTHREAD_MUTEX_INITIALIZER;
static bool tp_unsupported; /* the proxy said X'07'/X'09' once: under udp_create_lock */
static __thread uint8_t *udp_pkt; /* one datagram as received, per thread */
static __thread uint8_t *udp_gss; /* GSS-API: the datagram sealed / unsealed, per thread */

/* A datagram unsealed under MSG_PEEK, kept (per thread) for the read that
 * takes it out: unsealing the same token twice is a replay to GSS-API. */
static __thread struct udp_peeked {
	int fd;
	uint8_t *sealed, *plain;
	size_t slen, plen; /* slen 0: nothing kept */
} udp_peeked = { .fd = -1 };

/* udp_pkt[0..n) from fd's relay, unsealed into udp_gss: the length, or -1
 * (fails the protection). */
static ssize_t udp_unseal(int fd, unsigned gss_id, size_t n, bool peek)
{
	struct udp_peeked *k = &udp_peeked;

	if (k->slen != 0 && k->fd == fd && k->slen == n && memcmp(k->sealed, udp_pkt, n) == 0) {
		memcpy(udp_gss, k->plain, k->plen);
		if (!peek)
			k->slen = 0;
		return (ssize_t)k->plen;
	}
	/* Copied before unsealing: gss_unwrap may rewrite its input (MIT
	 * krb5 does so for integrity-only tokens). */
	bool keep = peek && (k->sealed != NULL || (k->sealed = malloc(UDP_PKT_MAX)) != NULL) &&
		    (k->plain != NULL || (k->plain = malloc(UDP_PKT_MAX)) != NULL);
	k->slen = 0;
	if (keep)
		memcpy(k->sealed, udp_pkt, n);
	ssize_t r = gssdgram_seal(gss_id, false, udp_pkt, n, udp_gss, UDP_PKT_MAX);
	if (r >= 0 && keep) {
		memcpy(k->plain, udp_gss, (size_t)r);
		k->fd = fd;
		k->slen = n;
		k->plen = (size_t)r;
	}
	return r;
}

/* The per-thread buffers (gss: the second one too). 0, or -1 ENOMEM. */
static int udp_buffers(bool gss)
{
	if ((udp_pkt == NULL && (udp_pkt = malloc(UDP_PKT_MAX)) == NULL) ||
	    (gss && udp_gss == NULL && (udp_gss = malloc(UDP_PKT_MAX)) == NULL)) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

bool udp_wants_proxy(int fd, const struct sockaddr *sa)
{
	struct shim_fd st;

	if (sa != NULL)
		return !shim_policy_bypass_sa(sa);
	return fdtab_get(fd, &st) && st.kind == SHIM_FD_UDP && st.udp_connected;
}

/* Still open? The proxy ends an association only by closing (or
 * resetting) the control connection. */
static bool udp_ctl_alive(int ctl)
{
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	char c;

	if (shim_real.poll(&p, 1, 0) <= 0)
		return true;
	ssize_t n = shim_real.recv(ctl, &c, 1, MSG_DONTWAIT | MSG_PEEK);
	return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR));
}

/* Binds fd to the wildcard address, port 0, unless it is bound already. */
static int udp_ensure_bound(int fd, struct sockaddr_storage *local, socklen_t *len)
{
	*len = sizeof(*local);
	if (shim_real.getsockname(fd, (struct sockaddr *)local, len) < 0)
		return -1;
	if (sa_port((struct sockaddr *)local) != 0)
		return 0;
	struct sockaddr_storage any = { .ss_family = local->ss_family };
	if (shim_real.bind(fd, (struct sockaddr *)&any, sa_len((struct sockaddr *)&any)) < 0)
		return -1;
	*len = sizeof(*local);
	return shim_real.getsockname(fd, (struct sockaddr *)local, len);
}

static bool udp_unspecified(const struct sockaddr *sa)
{
	static const uint8_t zero[16];

	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == 0;
	return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, zero, 16) == 0;
}

/*
 * fd cannot exchange datagrams with the proxy's side (an AF_INET socket
 * and an IPv6 relay, an IPV6_V6ONLY socket and an IPv4 one): a dual-stack
 * socket takes its place (sockswap.c), on the port fd had bound, and st
 * records what the application sees. When another socket holds that port
 * in the other family, may_move (nothing declared yet) takes a new port:
 * the proxied traffic works, direct peers sending to the old port are
 * not heard.
 */
static int udp_swap(int fd, struct shim_fd *st, bool may_move)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	int family;

	if (shim_sock_type(fd, &family) != SOCK_DGRAM ||
	    shim_real.getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
		return -1;
	bool v6only = sockswap_v6only(fd);
	int nfd = sockswap_open(fd, SOCK_DGRAM);
	if (nfd < 0)
		return -1;
	unsigned port = sa_port((struct sockaddr *)&local);
	int rc = port != 0 ? sockswap_bind_port(fd, nfd, port) : 0;
	if (rc < 0 && errno == EADDRINUSE && may_move) {
		shim_log(SHIM_LOG_INFO, "UDP fd %d: port %u is taken for IPv%s, moving", fd, port,
			 family == AF_INET ? "6" : "4");
		rc = sockswap_bind_port(fd, nfd, 0);
	}
	if (rc < 0 || sockswap_install(nfd, fd) < 0) {
		int e = errno;
		shim_log(SHIM_LOG_ERROR, "UDP fd %d: cannot replace it by an IPv6 socket: %s", fd,
			 strerror(e));
		shim_real.close(nfd);
		errno = e;
		return -1;
	}
	if (st->app_family == 0) {
		st->app_family = family;
		st->app_v6only = v6only;
		st->app_local = local;
	}
	shim_log(SHIM_LOG_DEBUG, "UDP fd %d: replaced by an IPv6 socket to reach the proxy", fd);
	return 0;
}

/* A control connection to the proxy's addresses of one family, in turn
 * (IPV6_V6ONLY: never an IPv4-mapped address, the proxy must see the
 * address the datagrams will come from). The fd, or -1 with errno
 * (EAFNOSUPPORT: the proxy has no address of that family). */
static int udp_ctl_family(int family, int64_t deadline)
{
	struct sockaddr_storage px;
	socklen_t plen = sizeof(px);
	int on = 1, e;

	if (shim_policy_proxy_addr(family, true, &px, &plen) < 0)
		return -1;
	int ctl = shim_real.socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl < 0)
		return -1;
	fdtab_set_internal(ctl, true);
	if ((family != AF_INET6 ||
	     setsockopt(ctl, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == 0) &&
	    shim_connect_proxy(ctl, deadline) == 0)
		return ctl;
	e = errno;
	fdtab_set_internal(ctl, false);
	shim_real.close(ctl);
	errno = e;
	return -1;
}

/* A control connection to the proxy: to its addresses of fd's family,
 * then, when it has none or none accepts, to its other ones. */
static int udp_ctl_open(int fd, int64_t deadline)
{
	int family = AF_INET, err = EAFNOSUPPORT;

	shim_sock_type(fd, &family);
	int order[2] = { family, family == AF_INET ? AF_INET6 : AF_INET };
	for (int i = 0; i < 2; i++) {
		int ctl = udp_ctl_family(order[i], deadline);
		if (ctl >= 0)
			return ctl;
		if (errno != EAFNOSUPPORT)
			err = errno; /* what an address answered beats "none of this family" */
		if (err == ETIMEDOUT || shim_remaining(deadline) == 0)
			break;
	}
	errno = err;
	return -1;
}

/* The request on ctl: TRANSPARENT to peer (when not NULL), else UDP
 * ASSOCIATE, declaring decl. *h holds the reply. Through a GSS-API proxy
 * (ASSOCIATE only: tp_peer never asks it for TRANSPARENT) libstp runs the
 * method and the request, and *gss_id is the context that seals the
 * datagrams at levels 1 and 2 (0 at level none). */
static int udp_request(int ctl, const struct sockaddr *peer, const struct sockaddr *decl,
		       struct stp_handshake *h, int64_t deadline, unsigned *gss_id)
{
	struct stp_proxy proxy = shim_conf.proxy;
	char name[STP_NAME_MAX + 1];
	const char *host = NULL;
	enum stp_err err;
	int rc;

	*gss_id = 0;
	if (proxy.gss.on && !peer) {
		struct stp_conn *c;
		if (client_gss_associate_fd(ctl, &proxy, decl, deadline, h, &c, &err) < 0) {
			shim_log(SHIM_LOG_ERROR, "UDP ASSOCIATE: %s", stp_strerror(err));
			errno = stp_err_errno(err);
			return -1;
		}
		if (c != NULL && (*gss_id = gssdgram_add(c)) == 0) {
			errno = ENOMEM;
			return -1;
		}
		return 0;
	}
	if (peer && fakedns_is_fake(peer)) {
		if (!fakedns_name(peer, name, sizeof(name))) {
			errno = EHOSTUNREACH;
			return -1;
		}
		host = name;
		shim_policy_proxy_for_name(&proxy);
	}
	struct sockaddr_storage dst;
	if (peer && !host) {
		memcpy(&dst, peer, sa_len(peer));
		sa_unmap(&dst);
	}
	rc = peer ? stp_handshake_init(h, &proxy, ctl, STP_CMD_CONNECT, host,
				       (uint16_t)sa_port(peer), host ? NULL : (struct sockaddr *)&dst,
				       &err)
		  : stp_handshake_init(h, &proxy, ctl, STP_CMD_UDP_ASSOCIATE, NULL, 0, decl, &err);
	if (rc == 0 && peer)
		rc = stp_handshake_transparent(h, STP_PTCL_UDP, decl, &err);
	if (rc < 0) {
		errno = stp_err_errno(err);
		return -1;
	}
	stp_handshake_set_io(h, &shim_real_io);
	if (shim_handshake_run(h, deadline) != STP_DONE) {
		shim_log(peer && (h->rep == 0x07 || h->rep == 0x09 || h->rep == 0x02) ? SHIM_LOG_INFO
										       : SHIM_LOG_ERROR,
			 "%s: %s", peer ? "TRANSPARENT" : "UDP ASSOCIATE", stp_strerror(h->err));
		errno = stp_err_errno(h->err);
		return -1;
	}
	return 0;
}

/* SETUP_UDP_TUNNEL X'20' toward far on ctl, declaring decl (as
 * ASSOCIATE). *h holds the reply. */
static int udp_tunnel_request(int ctl, const struct sockaddr *far, const struct sockaddr *decl,
			      struct stp_handshake *h, int64_t deadline)
{
	enum stp_err err;

	if (stp_handshake_init(h, &shim_conf.proxy, ctl, STP_CMD_UDP_ASSOCIATE, NULL, 0, decl,
			       &err) < 0 ||
	    shim_tunnel_request(h, far, &err) < 0) {
		errno = stp_err_errno(err);
		return -1;
	}
	stp_handshake_set_io(h, &shim_real_io);
	if (shim_handshake_run(h, deadline) != STP_DONE) {
		shim_log(SHIM_LOG_ERROR, "SETUP_UDP_TUNNEL: reply X'%02X': %s", h->rep,
			 stp_strerror(h->err));
		errno = stp_err_errno(h->err);
		return -1;
	}
	return 0;
}

/* The UDP ASSOCIATE (or TRANSPARENT, to peer; or a tunnel, to far) handshake on a fresh control
 * connection. The control fd, or -1 with errno; st->relay is where
 * datagrams go, in the family of fd (which may have been replaced to
 * reach it). */
static int udp_associate(int fd, struct shim_fd *st, const struct sockaddr *peer,
			 const struct sockaddr *far)
{
	int64_t deadline = shim_deadline(shim_conf.timeout_ms);
	struct sockaddr_storage local, decl, px;
	socklen_t llen, dlen = sizeof(decl), plen = sizeof(px);
	struct stp_handshake h;
	int ctl, e;

	memset(&h, 0, sizeof(h));
	ctl = udp_ctl_open(fd, deadline);
	if (ctl < 0)
		return -1;
	/* Replaced before its port is declared when it cannot reach the
	 * proxy's family; the relay is nearly always of that family. */
	if (shim_real.getpeername(ctl, (struct sockaddr *)&px, &plen) < 0 ||
	    (!sockswap_reaches(fd, (struct sockaddr *)&px) && udp_swap(fd, st, true) < 0))
		goto fail;
	if (udp_ensure_bound(fd, &local, &llen) < 0)
		goto fail;
	/* Declare where datagrams will come from: the control connection's
	 * address (what the proxy sees) with the socket's port. */
	if (shim_real.getsockname(ctl, (struct sockaddr *)&decl, &dlen) < 0)
		goto fail;
	sa_set_port((struct sockaddr *)&decl, sa_port((struct sockaddr *)&local));
	sa_unmap(&decl);
	st->transparent = false;
	st->tunnel = false;
	if (far) {
		if (udp_tunnel_request(ctl, far, (struct sockaddr *)&decl, &h, deadline) < 0)
			goto fail;
		st->tunnel = true;
		memcpy(&st->tunnel_far, far, sa_len(far));
	} else if (peer && udp_request(ctl, peer, (struct sockaddr *)&decl, &h, deadline,
				       &st->gss_id) == 0) {
		st->transparent = true;
	} else if (peer && (h.rep == 0x07 || h.rep == 0x09 || h.rep == 0x02)) {
		/* This proxy has no TRANSPARENT for UDP (X'07', X'09'), or not
		 * for this socket (X'02'): ASSOCIATE, on a new control
		 * connection (it closed this one). */
		if (h.rep != 0x02)
			tp_unsupported = true;
		st->no_transparent = true;
		fdtab_set_internal(ctl, false);
		shim_real.close(ctl);
		if ((ctl = udp_ctl_open(fd, deadline)) < 0)
			return -1;
		if (udp_request(ctl, NULL, (struct sockaddr *)&decl, &h, deadline, &st->gss_id) < 0)
			goto fail;
	} else if (peer) {
		goto fail;
	} else if (udp_request(ctl, NULL, (struct sockaddr *)&decl, &h, deadline, &st->gss_id) <
		   0) {
		goto fail;
	}
	if (h.bound.salen == 0) {
		errno = EPROTO;
		goto fail;
	}
	struct sockaddr_storage r = h.bound.sa;
	if (udp_unspecified((struct sockaddr *)&r)) {
		socklen_t l = sizeof(r);
		shim_real.getpeername(ctl, (struct sockaddr *)&r, &l);
		sa_set_port((struct sockaddr *)&r, h.bound.port);
	}
	if (!sockswap_reaches(fd, (struct sockaddr *)&r) && udp_swap(fd, st, false) < 0)
		goto fail;
	int family = AF_INET;
	shim_sock_type(fd, &family);
	if (shim_sa_to_family((struct sockaddr *)&r, family, &st->relay, &st->relaylen) < 0) {
		errno = EAFNOSUPPORT;
		goto fail;
	}
	char where[SA_STR_MAX];
	shim_log(SHIM_LOG_INFO, "UDP %s for fd %d, relay %s%s",
		 st->tunnel      ? "tunnel association" :
		 st->transparent ? "TRANSPARENT association" :
				   "association",
		 fd, sa_str((struct sockaddr *)&st->relay, where, sizeof(where)),
		 st->gss_id ? ", datagrams sealed by GSS-API" : "");
	return ctl;
fail:
	e = errno;
	gssdgram_drop(st->gss_id);
	st->gss_id = 0;
	fdtab_set_internal(ctl, false);
	shim_real.close(ctl);
	errno = e;
	return -1;
}

/* n bytes from ctl by deadline (real calls: ctl is ours). 0, or -1. */
static int ctl_read(int ctl, uint8_t *buf, size_t n, int64_t deadline)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd p = { .fd = ctl, .events = POLLIN };
		int left = shim_remaining(deadline);
		if (left == 0 || shim_real.poll(&p, 1, left) <= 0)
			return -1;
		ssize_t r = shim_real.recv(ctl, buf + got, n - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* udp_transparent auto: does the proxy advertise TRANSPARENT with PTCL
 * UDP (feature discovery, docs/protocol.md 5.6: command X'04', `ptcls`)?
 * Asked once per process on a connection of its own (greeting X'87'
 * alone), under udp_create_lock; a proxy without discovery, or one behind
 * TLS from the first byte (not asked), gets UDP ASSOCIATE. */
static int tp_advertised = -1; /* -1 not asked yet, 0 no, 1 yes */

static bool tp_offered(int fd, int64_t deadline)
{
	static const uint8_t greeting[] = { 0x05, 0x01, 0x87 };
	static const uint8_t prefs[] = { 0x04, 0x03 }; /* TRANSPARENT, else UDP ASSOCIATE */
	uint8_t head[2], doc[STP_FEATURES_DOC_MAX];
	static struct stp_features f; /* large: under udp_create_lock */
	struct stp_feature e;
	int ctl;

	if (tp_advertised >= 0)
		return tp_advertised == 1;
	tp_advertised = 0;
	if (shim_conf.proxy.tls.mode == STP_TLS_WRAP || (ctl = udp_ctl_open(fd, deadline)) < 0)
		return false;
	if (shim_real.send(ctl, greeting, sizeof(greeting), MSG_NOSIGNAL) == 3 &&
	    ctl_read(ctl, head, 2, deadline) == 0 && head[0] == 0x05 && head[1] == 0x87 &&
	    ctl_read(ctl, doc, 4, deadline) == 0) {
		size_t len = (size_t)doc[2] << 8 | doc[3];
		if (4 + len <= sizeof(doc) && ctl_read(ctl, doc + 4, len, deadline) == 0 &&
		    stp_features_parse(&f, doc, 4 + len) == 0 &&
		    stp_features_pick(&f, STP_FEAT_COMMAND, prefs, sizeof(prefs)) == 0x04 &&
		    stp_features_find(&f, STP_FEAT_COMMAND, 0x04, "ptcls", &e) &&
		    memchr(e.value, 0x11, e.len) != NULL)
			tp_advertised = 1;
	}
	fdtab_set_internal(ctl, false);
	shim_real.close(ctl);
	shim_log(SHIM_LOG_DEBUG, "udp_transparent auto: the proxy %s TRANSPARENT for UDP",
		 tp_advertised ? "advertises" : "does not advertise");
	return tp_advertised == 1;
}

/* The peer a new association of fd asks TRANSPARENT for: peer (a
 * connect() under way) or the one recorded, when the option is on (auto:
 * and the proxy advertises it) and the proxy has not refused it. */
static const struct sockaddr *tp_peer(int fd, const struct shim_fd *n,
				      const struct sockaddr *peer)
{
	/* RFC 1961 frames UDP ASSOCIATE's datagrams only: no TRANSPARENT
	 * through a GSS-API proxy */
	if (shim_conf.udp_transparent == SHIM_TP_NO || tp_unsupported || n->no_transparent ||
	    shim_conf.proxy.gss.on)
		return NULL;
	if (!peer && !(n->kind == SHIM_FD_UDP && n->udp_connected))
		return NULL;
	if (shim_conf.udp_transparent == SHIM_TP_AUTO &&
	    !tp_offered(fd, shim_deadline(shim_conf.timeout_ms)))
		return NULL;
	if (peer)
		return peer;
	return n->kind == SHIM_FD_UDP && n->udp_connected ? (const struct sockaddr *)&n->peer
							  : NULL;
}

/* fd's association, made (or remade) if needed; peer: see tp_peer; far:
 * a tunnel to it (shim_tunnel_wants). 0 with *st, or -1. */
static int udp_ensure(int fd, struct shim_fd *st, const struct sockaddr *peer,
		      const struct sockaddr *far)
{
	int family, ctl;

	if (fdtab_get(fd, st) && st->kind == SHIM_FD_UDP && st->ctl >= 0 &&
	    udp_ctl_alive(st->ctl))
		return 0;
	if (shim_sock_type(fd, &family) != SOCK_DGRAM) {
		errno = ENOTSOCK;
		return -1;
	}
	pthread_mutex_lock(&udp_create_lock);
	if (fdtab_get(fd, st) && st->kind == SHIM_FD_UDP && st->ctl >= 0 &&
	    udp_ctl_alive(st->ctl)) {
		pthread_mutex_unlock(&udp_create_lock);
		return 0;
	}
	struct shim_fd n = { .kind = SHIM_FD_UDP, .ctl = -1 };
	if (fdtab_get(fd, st) && st->kind == SHIM_FD_UDP) {
		n = *st; /* keeps the recorded peer and what was replaced */
		if (st->ctl >= 0) {
			fdtab_set_internal(st->ctl, false);
			shim_real.close(st->ctl);
		}
		gssdgram_drop(st->gss_id);
		n.gss_id = 0;
	}
	ctl = udp_associate(fd, &n, far ? NULL : tp_peer(fd, &n, peer), far);
	int e = errno;
	n.ctl = ctl;
	if (ctl >= 0 || n.app_family != 0)
		fdtab_put(fd, &n); /* a replaced socket stays tracked */
	pthread_mutex_unlock(&udp_create_lock);
	if (ctl < 0) {
		errno = e;
		return -1;
	}
	*st = n;
	return 0;
}

static void udp_set_peer(struct shim_fd *st, void *arg)
{
	const struct sockaddr *sa = arg;

	st->udp_connected = sa != NULL;
	if (sa != NULL) {
		st->peerlen = sa_len(sa);
		memcpy(&st->peer, sa, st->peerlen);
	}
}

/* Ends fd's association (its control connection): the next send makes a
 * new one. */
static void udp_drop_assoc(struct shim_fd *st, void *arg)
{
	(void)arg;
	if (st->ctl >= 0) {
		fdtab_set_internal(st->ctl, false);
		shim_real.close(st->ctl);
	}
	gssdgram_drop(st->gss_id);
	st->gss_id = 0;
	st->ctl = -1;
	st->transparent = false;
	st->tunnel = false;
}

/* The tunnel a datagram to dst needs (dst itself), or NULL. */
static const struct sockaddr *udp_tunnel_far(const struct sockaddr *dst)
{
	return dst && shim_tunnel_wants(dst) ? dst : NULL;
}

/* A live association of st that cannot carry a datagram to far (NULL: not
 * through a tunnel): a tunnel leads to one destination only. */
static bool udp_assoc_mismatch(const struct shim_fd *st, const struct sockaddr *far)
{
	if (st->kind != SHIM_FD_UDP || st->ctl < 0)
		return false;
	if (st->tunnel != (far != NULL))
		return true;
	return far && !sa_equal(far, (const struct sockaddr *)&st->tunnel_far);
}

int udp_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct shim_fd st;

	/* A TRANSPARENT association is to one peer: another one needs a new
	 * association. */
	const struct sockaddr *far = udp_tunnel_far(sa);
	if (fdtab_get(fd, &st) && st.kind == SHIM_FD_UDP &&
	    ((st.transparent && !sa_equal(sa, (struct sockaddr *)&st.peer)) ||
	     udp_assoc_mismatch(&st, far)))
		fdtab_update(fd, udp_drop_assoc, NULL);
	shim_enter();
	int rc = udp_ensure(fd, &st, sa, far);
	shim_leave();
	if (rc < 0)
		return -1;
	fdtab_update(fd, udp_set_peer, (void *)sa);
	return 0;
}

static void udp_set_last_fake(struct shim_fd *st, void *arg)
{
	const struct sockaddr *sa = arg;

	memcpy(&st->last_fake, sa, sa_len(sa));
}

/* The header for a datagram to sa (a fake address becomes its name). */
static size_t udp_header(uint8_t *hdr, size_t cap, const struct sockaddr *sa)
{
	char name[STP_NAME_MAX + 1];

	if (fakedns_is_fake(sa)) {
		if (!fakedns_name(sa, name, sizeof(name)))
			return 0;
		return stp_udp_header(hdr, cap, name, (uint16_t)sa_port(sa), NULL);
	}
	struct sockaddr_storage tmp;
	memcpy(&tmp, sa, sa_len(sa));
	sa_unmap(&tmp);
	return stp_udp_header(hdr, cap, NULL, 0, (struct sockaddr *)&tmp);
}

/* GSS-API levels 1, 2 (RFC 1961 section 5): header and payload gathered,
 * sealed into one X'03' frame, sent to the relay. The payload's length,
 * or -1 (EMSGSIZE: too big once sealed). */
static ssize_t udp_send_sealed(int fd, const struct shim_fd *st, const struct msghdr *msg,
			       int flags, const uint8_t *hdr, size_t hlen)
{
	if (udp_buffers(true) < 0)
		return -1;
	size_t len = hlen;
	memcpy(udp_pkt, hdr, hlen);
	for (size_t i = 0; i < msg->msg_iovlen; i++) {
		if (msg->msg_iov[i].iov_len > UDP_PKT_MAX - len) {
			errno = EMSGSIZE;
			return -1;
		}
		memcpy(udp_pkt + len, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
		len += msg->msg_iov[i].iov_len;
	}
	ssize_t n = gssdgram_seal(st->gss_id, true, udp_pkt, len, udp_gss, UDP_PKT_MAX);
	if (n < 0)
		return -1;
	struct iovec iov = { udp_gss, (size_t)n };
	struct msghdr m = *msg;
	m.msg_name = (void *)&st->relay;
	m.msg_namelen = st->relaylen;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	if (shim_real.sendmsg(fd, &m, flags | MSG_NOSIGNAL) < 0)
		return -1;
	return (ssize_t)(len - hlen);
}

ssize_t udp_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	uint8_t hdr[STP_UDP_HDR_MAX];
	struct iovec iov[UDP_IOV_MAX + 1];
	struct shim_fd st;
	const struct sockaddr *dst = msg->msg_name;

	if (msg->msg_iovlen > UDP_IOV_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	bool known = fdtab_get(fd, &st) && st.kind == SHIM_FD_UDP;
	const struct sockaddr *far = NULL;
	if (shim_tunnel_on())
		far = udp_tunnel_far(dst                       ? dst :
				     known && st.udp_connected ? (struct sockaddr *)&st.peer :
								 NULL);
	if (known && ((st.transparent && ((dst && !sa_equal(dst, (struct sockaddr *)&st.peer)) ||
					  !st.udp_connected)) ||
		      udp_assoc_mismatch(&st, far)))
		fdtab_update(fd, udp_drop_assoc, NULL); /* to elsewhere: a new association */
	struct sockaddr_storage far_copy;
	if (far) { /* st is overwritten below, and far may point into it */
		memcpy(&far_copy, far, sa_len(far));
		far = (struct sockaddr *)&far_copy;
	}
	shim_enter();
	int rc = udp_ensure(fd, &st, NULL, far);
	shim_leave();
	if (rc < 0)
		return -1;
	if (st.transparent) {
		/* plain datagrams to the relay */
		struct msghdr m = *msg;
		m.msg_name = &st.relay;
		m.msg_namelen = st.relaylen;
		return shim_real.sendmsg(fd, &m, flags | MSG_NOSIGNAL);
	}
	if (dst == NULL)
		dst = (struct sockaddr *)&st.peer;
	size_t hlen = udp_header(hdr, sizeof(hdr), dst);
	if (hlen == 0) {
		errno = EHOSTUNREACH;
		return -1;
	}
	if (st.gss_id != 0)
		return udp_send_sealed(fd, &st, msg, flags, hdr, hlen);
	iov[0].iov_base = hdr;
	iov[0].iov_len = hlen;
	memcpy(iov + 1, msg->msg_iov, msg->msg_iovlen * sizeof(struct iovec));
	struct msghdr m = *msg;
	m.msg_name = &st.relay;
	m.msg_namelen = st.relaylen;
	m.msg_iov = iov;
	m.msg_iovlen = msg->msg_iovlen + 1;
	ssize_t n = shim_real.sendmsg(fd, &m, flags | MSG_NOSIGNAL);
	if (n < 0)
		return -1;
	if (fakedns_is_fake(dst) && !sa_equal(dst, (struct sockaddr *)&st.last_fake))
		fdtab_update(fd, udp_set_last_fake, (void *)dst);
	return n < (ssize_t)hlen ? 0 : n - (ssize_t)hlen;
}

/* Copies len bytes of p into the caller's iovecs; returns bytes copied. */
static size_t udp_scatter(const struct msghdr *msg, const uint8_t *p, size_t len)
{
	size_t done = 0;

	for (size_t i = 0; i < msg->msg_iovlen && done < len; i++) {
		size_t n = msg->msg_iov[i].iov_len;
		if (n > len - done)
			n = len - done;
		memcpy(msg->msg_iov[i].iov_base, p + done, n);
		done += n;
	}
	return done;
}

static void udp_set_name(struct msghdr *msg, const struct sockaddr *sa, socklen_t len)
{
	if (msg->msg_name == NULL)
		return;
	memcpy(msg->msg_name, sa, len < msg->msg_namelen ? len : msg->msg_namelen);
	msg->msg_namelen = len;
}

/*
 * The source a relayed datagram names, as the application should see it:
 * in its socket's family, a name turned into its fake address. A reply to
 * a datagram sent to a name comes from the address the proxy resolved it
 * to, which the application never saw: on a connected socket every
 * datagram is from the peer (the kernel's rule), and on an unconnected one
 * a source with the port of the last name sent to is reported as that
 * name's fake address.
 */
static int udp_source(const struct shim_fd *st, const struct stp_addr *src, int family,
		      struct sockaddr_storage *out, socklen_t *len)
{
	struct sockaddr_storage fake;
	const struct sockaddr *peer = (const struct sockaddr *)&st->peer;
	const struct sockaddr *last = (const struct sockaddr *)&st->last_fake;

	if (st->udp_connected && fakedns_is_fake(peer))
		return shim_sa_to_family(peer, family, out, len);
	if (!st->udp_connected && src->salen > 0 && fakedns_is_fake(last) &&
	    sa_port(last) == src->port)
		return shim_sa_to_family(last, family, out, len);

	if (src->salen == 0) {
		if (fakedns_addr(src->name, family, &fake) < 0)
			return -1;
		sa_set_port((struct sockaddr *)&fake, src->port);
		return shim_sa_to_family((struct sockaddr *)&fake, family, out, len);
	}
	return shim_sa_to_family((const struct sockaddr *)&src->sa, family, out, len);
}

/* The source of a direct datagram as the application sees it. On a
 * replaced (dual-stack) socket, a datagram the application's own socket
 * could not have received is dropped: an IPv6 source on an AF_INET socket,
 * an IPv4 one on an IPV6_V6ONLY socket. */
static bool udp_direct_source(const struct shim_fd *st, const struct sockaddr_storage *from,
			      socklen_t fromlen, struct sockaddr_storage *src, socklen_t *srclen)
{
	const struct sockaddr_in6 *f6 = (const struct sockaddr_in6 *)from;

	if (st->app_family == 0) {
		*src = *from;
		*srclen = fromlen;
		return true;
	}
	if (st->app_v6only && from->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&f6->sin6_addr))
		return false;
	return shim_sa_to_family((const struct sockaddr *)from, st->app_family, src, srclen) == 0;
}

ssize_t udp_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct shim_fd st;

	if (!fdtab_get(fd, &st) || st.kind != SHIM_FD_UDP)
		return shim_real.recvmsg(fd, msg, flags);
	/* a replaced socket reports sources in the family it was made with */
	int app_family = st.app_family ? st.app_family : st.relay.ss_family;
	if (udp_buffers(st.gss_id != 0) < 0)
		return -1;
	for (;;) {
		struct sockaddr_storage from, src;
		socklen_t srclen;
		struct iovec iov = { udp_pkt, UDP_PKT_MAX };
		struct msghdr m = *msg;
		struct stp_addr sa;
		m.msg_name = &from;
		m.msg_namelen = sizeof(from);
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		ssize_t n = shim_real.recvmsg(fd, &m, flags & ~MSG_TRUNC);
		if (n < 0)
			return -1;
		msg->msg_controllen = m.msg_controllen;
		msg->msg_flags = m.msg_flags & ~MSG_TRUNC;
		ssize_t off = -1;
		bool keep;
		const uint8_t *pkt = udp_pkt;
		bool from_relay = sa_equal((struct sockaddr *)&from, (struct sockaddr *)&st.relay);
		if (st.gss_id != 0 && from_relay) {
			/* RFC 1961 section 5: one sealed frame; one that fails
			 * the protection is dropped here, never delivered */
			n = udp_unseal(fd, st.gss_id, (size_t)n, flags & MSG_PEEK);
			if (n < 0) {
				shim_log(SHIM_LOG_INFO,
					 "UDP fd %d: dropped a datagram failing the "
					 "GSS-API protection",
					 fd);
				if (flags & MSG_PEEK)
					shim_real.recv(fd, udp_pkt, 1, MSG_DONTWAIT);
				continue;
			}
			pkt = udp_gss;
		}
		if (st.transparent && sa_equal((struct sockaddr *)&from, (struct sockaddr *)&st.relay)) {
			/* TRANSPARENT: no header, everything is from the peer */
			off = 0;
			keep = shim_sa_to_family((struct sockaddr *)&st.peer, app_family, &src,
						 &srclen) == 0;
		} else {
			if (from_relay)
				off = stp_udp_unwrap(pkt, (size_t)n, &sa);
			keep = off >= 0 && udp_source(&st, &sa, app_family, &src, &srclen) == 0 &&
			       (!st.udp_connected || sa_equal((struct sockaddr *)&src,
							      (struct sockaddr *)&st.peer));
		}
		if (off < 0 && !from_relay && !st.udp_connected) {
			/* A direct datagram from a bypassed peer: as it is. */
			off = 0;
			keep = udp_direct_source(&st, &from, m.msg_namelen, &src, &srclen);
		}
		if (!keep) {
			shim_log(SHIM_LOG_DEBUG, "UDP fd %d: dropped a datagram (%s)", fd,
				 off < 0 ? "bad header or not from the relay" : "not from the peer");
			if (flags & MSG_PEEK) /* take it out of the queue */
				shim_real.recv(fd, udp_pkt, 1, MSG_DONTWAIT);
			continue;
		}
		size_t plen = (size_t)n - (size_t)off;
		size_t got = udp_scatter(msg, pkt + off, plen);
		if (got < plen)
			msg->msg_flags |= MSG_TRUNC;
		udp_set_name(msg, (struct sockaddr *)&src, srclen);
		return (flags & MSG_TRUNC) ? (ssize_t)plen : (ssize_t)got;
	}
}
