/*
 * sockswap.c - putting a dual-stack IPv6 socket in place of the
 * application's socket when that socket cannot reach the proxy (or the
 * UDP relay): an AF_INET socket and an IPv6-only proxy, or an AF_INET6
 * socket with IPV6_V6ONLY and an IPv4 proxy. The replacement reaches both
 * families (IPv4 as ::ffff:a.b.c.d), so it can talk to the proxy and,
 * for UDP, still send directly to the bypassed destinations of the
 * application's own family.
 *
 * The new socket gets the application's options (the table below:
 * those a client sets before connect()/sendto() and that change what it
 * observes), then takes the application's fd number with dup3(), keeping
 * the file status flags (O_NONBLOCK...) and close-on-exec. What the
 * application sees of the family is answered from the fd table
 * (preload.c: getsockname, SO_DOMAIN, IPV6_V6ONLY; udpassoc.c: datagram
 * sources). The limits of the approach are in docs/stpify.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "common/sockaddr.h"
#include "shim/shim.h"

enum { SW_ANY, SW_TCP, SW_V4, SW_V6 };
enum { SW_PLAIN, SW_BUF }; /* SW_BUF: the kernel reports twice what was set */

struct sw_opt {
	int level, name;  /* read from the old socket */
	int tlevel, tname; /* written to the new one (0: the same) */
	int when;         /* SW_TCP: stream sockets; SW_V4/SW_V6: old family */
	int kind;
};

/* Copied only when the old socket's value differs from the new socket's
 * default: an option the application never set stays untouched (setting
 * SO_RCVBUF, even to its default, would turn off buffer auto-tuning). */
static const struct sw_opt sw_opts[] = {
	{ SOL_SOCKET, SO_REUSEADDR, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_REUSEPORT, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_KEEPALIVE, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_RCVBUF, 0, 0, SW_ANY, SW_BUF },
	{ SOL_SOCKET, SO_SNDBUF, 0, 0, SW_ANY, SW_BUF },
	{ SOL_SOCKET, SO_LINGER, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_RCVTIMEO, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_SNDTIMEO, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_RCVLOWAT, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_BROADCAST, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_OOBINLINE, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_PRIORITY, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_MARK, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_BINDTODEVICE, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_TIMESTAMP, 0, 0, SW_ANY, SW_PLAIN },
	{ SOL_SOCKET, SO_TIMESTAMPNS, 0, 0, SW_ANY, SW_PLAIN },
	{ IPPROTO_TCP, TCP_NODELAY, 0, 0, SW_TCP, SW_PLAIN },
	{ IPPROTO_TCP, TCP_CORK, 0, 0, SW_TCP, SW_PLAIN },
	{ IPPROTO_TCP, TCP_KEEPIDLE, 0, 0, SW_TCP, SW_PLAIN },
	{ IPPROTO_TCP, TCP_KEEPINTVL, 0, 0, SW_TCP, SW_PLAIN },
	{ IPPROTO_TCP, TCP_KEEPCNT, 0, 0, SW_TCP, SW_PLAIN },
	{ IPPROTO_TCP, TCP_USER_TIMEOUT, 0, 0, SW_TCP, SW_PLAIN },
	{ IPPROTO_TCP, TCP_NOTSENT_LOWAT, 0, 0, SW_TCP, SW_PLAIN },
	{ IPPROTO_TCP, TCP_CONGESTION, 0, 0, SW_TCP, SW_PLAIN },
	{ IPPROTO_TCP, TCP_SYNCNT, 0, 0, SW_TCP, SW_PLAIN },
	{ IPPROTO_TCP, TCP_WINDOW_CLAMP, 0, 0, SW_TCP, SW_PLAIN },
	/* IPv4 options: kept as they are (Linux takes IPPROTO_IP options on
	 * an IPv6 socket and applies them to its IPv4 traffic) and, for the
	 * header fields, also set for the IPv6 traffic. */
	{ IPPROTO_IP, IP_TOS, 0, 0, SW_V4, SW_PLAIN },
	{ IPPROTO_IP, IP_TOS, IPPROTO_IPV6, IPV6_TCLASS, SW_V4, SW_PLAIN },
	{ IPPROTO_IP, IP_TTL, 0, 0, SW_V4, SW_PLAIN },
	{ IPPROTO_IP, IP_TTL, IPPROTO_IPV6, IPV6_UNICAST_HOPS, SW_V4, SW_PLAIN },
	{ IPPROTO_IP, IP_MTU_DISCOVER, 0, 0, SW_V4, SW_PLAIN },
	{ IPPROTO_IP, IP_PKTINFO, 0, 0, SW_V4, SW_PLAIN },
	{ IPPROTO_IP, IP_RECVTOS, 0, 0, SW_V4, SW_PLAIN },
	{ IPPROTO_IP, IP_RECVTTL, 0, 0, SW_V4, SW_PLAIN },
	{ IPPROTO_IP, IP_RECVERR, 0, 0, SW_V4, SW_PLAIN },
	{ IPPROTO_IPV6, IPV6_TCLASS, 0, 0, SW_V6, SW_PLAIN },
	{ IPPROTO_IPV6, IPV6_UNICAST_HOPS, 0, 0, SW_V6, SW_PLAIN },
	{ IPPROTO_IPV6, IPV6_MTU_DISCOVER, 0, 0, SW_V6, SW_PLAIN },
	{ IPPROTO_IPV6, IPV6_MTU, 0, 0, SW_V6, SW_PLAIN },
	{ IPPROTO_IPV6, IPV6_DONTFRAG, 0, 0, SW_V6, SW_PLAIN },
	{ IPPROTO_IPV6, IPV6_RECVPKTINFO, 0, 0, SW_V6, SW_PLAIN },
	{ IPPROTO_IPV6, IPV6_RECVTCLASS, 0, 0, SW_V6, SW_PLAIN },
	{ IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 0, 0, SW_V6, SW_PLAIN },
	{ IPPROTO_IPV6, IPV6_RECVERR, 0, 0, SW_V6, SW_PLAIN },
};

static bool sw_applies(const struct sw_opt *o, int type, int family)
{
	switch (o->when) {
	case SW_TCP:
		return type == SOCK_STREAM;
	case SW_V4:
		return family == AF_INET;
	case SW_V6:
		return family == AF_INET6;
	default:
		return true;
	}
}

static void sw_copy_one(int from, int to, const struct sw_opt *o)
{
	unsigned char a[64], b[64];
	socklen_t alen = sizeof(a), blen = sizeof(b);
	int tlevel = o->tlevel ? o->tlevel : o->level;
	int tname = o->tlevel ? o->tname : o->name;

	if (shim_real.getsockopt(from, o->level, o->name, a, &alen) < 0)
		return;
	if (shim_real.getsockopt(to, tlevel, tname, b, &blen) < 0)
		return;
	if (alen == blen && memcmp(a, b, alen) == 0)
		return;
	if (o->kind == SW_BUF) {
		int v;
		memcpy(&v, a, sizeof(v));
		v /= 2;
		/* beyond rmem_max/wmem_max only with CAP_NET_ADMIN, as set */
		int force = o->name == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
		if (setsockopt(to, SOL_SOCKET, force, &v, sizeof(v)) < 0)
			setsockopt(to, SOL_SOCKET, o->name, &v, sizeof(v));
		return;
	}
	if (setsockopt(to, tlevel, tname, a, alen) < 0)
		shim_log(SHIM_LOG_DEBUG, "socket option %d/%d not carried over: %s", o->level,
			 o->name, strerror(errno));
}

int sockswap_open(int fd, int type)
{
	int family, proto = 0;
	socklen_t len = sizeof(proto);

	if (shim_sock_type(fd, &family) != type) {
		errno = ENOTSOCK;
		return -1;
	}
	shim_real.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len);
	int nfd = shim_real.socket(AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
	if (nfd < 0)
		return -1;
	int off = 0; /* dual-stack, whatever net.ipv6.bindv6only says */
	if (setsockopt(nfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0) {
		int e = errno;
		shim_real.close(nfd);
		errno = e;
		return -1;
	}
	for (size_t i = 0; i < sizeof(sw_opts) / sizeof(sw_opts[0]); i++)
		if (sw_applies(&sw_opts[i], type, family))
			sw_copy_one(fd, nfd, &sw_opts[i]);
	return nfd;
}

int sockswap_bind_port(int fd, int nfd, unsigned port)
{
	struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int on = 1, was = 0, e;
	socklen_t len = sizeof(was);

	if (port == 0)
		return shim_real.bind(nfd, (struct sockaddr *)&any, sizeof(any));
	/* fd still holds the port until dup3 closes it: both sockets need
	 * SO_REUSEADDR for the bind; nfd gets the application's value back. */
	shim_real.getsockopt(nfd, SOL_SOCKET, SO_REUSEADDR, &was, &len);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	setsockopt(nfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	int rc = shim_real.bind(nfd, (struct sockaddr *)&any, sizeof(any));
	e = errno;
	setsockopt(nfd, SOL_SOCKET, SO_REUSEADDR, &was, sizeof(was));
	errno = e;
	return rc;
}

int sockswap_install(int nfd, int fd)
{
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);

	if (fl < 0 || fdfl < 0 || fcntl(nfd, F_SETFL, fl) < 0)
		return -1;
	if (shim_real.dup3(nfd, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
		return -1;
	shim_real.close(nfd);
	return 0;
}

bool sockswap_v6only(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	/* fails (ENOPROTOOPT) on an AF_INET socket: false */
	return shim_real.getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len) == 0 && v != 0;
}

bool sockswap_reaches(int fd, const struct sockaddr *sa)
{
	int family;
	bool v4 = sa->sa_family == AF_INET;

	if (sa->sa_family == AF_INET6)
		v4 = IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	if (shim_sock_type(fd, &family) < 0)
		return false;
	if (family == AF_INET)
		return v4;
	return !(v4 && sockswap_v6only(fd));
}

int sockswap_view(const struct sockaddr *real, int family, struct sockaddr_storage *out,
		  socklen_t *len)
{
	if (real->sa_family == family || family != AF_INET)
		return shim_sa_to_family(real, family, out, len);
	if (shim_sa_to_family(real, AF_INET, out, len) == 0)
		return 0; /* ::ffff:a.b.c.d */
	/* A real IPv6 address has no IPv4 form: loopback stays loopback,
	 * anything else reads as the wildcard, with the port. */
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)real;
	struct sockaddr_in *s4 = (struct sockaddr_in *)out;
	memset(out, 0, sizeof(*out));
	s4->sin_family = AF_INET;
	s4->sin_port = s6->sin6_port;
	if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*len = sizeof(*s4);
	return 0;
}
