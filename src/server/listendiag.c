/*
 * listendiag.c - see listendiag.h. One SOCK_DIAG_BY_FAMILY dump of TCP
 * listeners per family; filtering by port and address is done here (the
 * list of listeners is short, so no in-kernel bytecode is needed).
 */
#include "server/listendiag.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/sockaddr.h"

struct listening {
	int family;
	uint8_t addr[16];
	unsigned port;
	bool v6only;
	ino_t inode;
};

static bool is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool is_v4mapped(const uint8_t a[16])
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };
	return memcmp(a, prefix, 12) == 0;
}

/* Does a connection to `ours` (our listener: IPv6 ones are V6ONLY) reach l? */
static bool covers(const struct sockaddr *ours, const struct listening *l)
{
	if (ours->sa_family == AF_INET) {
		const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)ours)->sin_addr;
		if (l->family == AF_INET)
			return is_zero(l->addr, 4) || is_zero(a, 4) || memcmp(l->addr, a, 4) == 0;
		/* a dual-stack IPv6 socket takes IPv4 as ::ffff:a.b.c.d */
		return !l->v6only && (is_zero(l->addr, 16) ||
				      (is_v4mapped(l->addr) &&
				       (is_zero(a, 4) || memcmp(l->addr + 12, a, 4) == 0)));
	}
	const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in6 *)ours)->sin6_addr;
	if (l->family != AF_INET6 || is_v4mapped(l->addr))
		return false;
	return is_zero(l->addr, 16) || is_zero(a, 16) || memcmp(l->addr, a, 16) == 0;
}

static void read_msg(const struct inet_diag_msg *m, size_t len, struct listening *l)
{
	memset(l, 0, sizeof(*l));
	l->family = m->idiag_family;
	memcpy(l->addr, m->id.idiag_src, l->family == AF_INET ? 4 : 16);
	l->port = ntohs(m->id.idiag_sport);
	l->inode = m->idiag_inode;
	size_t off = NLMSG_ALIGN(sizeof(*m));
	while (off + sizeof(struct nlattr) <= len) {
		const struct nlattr *a = (const struct nlattr *)((const char *)m + off);
		if (a->nla_len < sizeof(*a) || off + a->nla_len > len)
			break;
		if ((a->nla_type & NLA_TYPE_MASK) == INET_DIAG_SKV6ONLY &&
		    a->nla_len >= sizeof(*a) + 1)
			l->v6only = *((const uint8_t *)a + NLA_HDRLEN) != 0;
		off += NLA_ALIGN(a->nla_len);
	}
}

static void describe(const struct listening *l, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (l->family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, l->addr, 4);
		a->sin_port = htons((uint16_t)l->port);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, l->addr, 16);
		a->sin6_port = htons((uint16_t)l->port);
	}
	sa_str((const struct sockaddr *)&ss, out, cap);
	size_t n = strlen(out);
	snprintf(out + n, cap - n, " (socket inode %lu)", (unsigned long)l->inode);
}

static bool is_ours(ino_t inode, const ino_t *ours, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ours[i] == inode)
			return true;
	return false;
}

/* Dumps one family's TCP listeners; 1 and who on a foreign one covering
 * addr, 0 on none, -1 with err. */
static int scan(int fd, int family, const struct sockaddr *addr, const ino_t *ours,
		size_t n_ours, char *who, size_t whocap, char *err, size_t errlen)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = {
		.nlh = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = (unsigned)family },
		.r = { .sdiag_family = (uint8_t)family, .sdiag_protocol = IPPROTO_TCP,
		       .idiag_states = 1u << TCP_LISTEN },
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	unsigned port = sa_port(addr);
	int found = 0;

	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		snprintf(err, errlen, "sock_diag: send: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		long buf[8192 / sizeof(long)];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "sock_diag: recv: %s", n < 0 ? strerror(errno) : "EOF");
			return -1;
		}
		/* NLMSG_OK/NEXT by hand: the macros mix signed and unsigned. */
		const char *p = (const char *)buf;
		size_t left = (size_t)n;
		while (left >= sizeof(struct nlmsghdr)) {
			const struct nlmsghdr *h = (const struct nlmsghdr *)p;
			if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > left)
				break;
			if (h->nlmsg_type == NLMSG_DONE)
				return found;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				snprintf(err, errlen, "sock_diag: %s",
					 strerror(h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) ? -e->error
											    : EPROTO));
				return -1;
			}
			if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY && !found &&
			    h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
				struct listening l;
				read_msg(NLMSG_DATA(h), h->nlmsg_len - NLMSG_HDRLEN, &l);
				if (l.port == port && covers(addr, &l) &&
				    !is_ours(l.inode, ours, n_ours)) {
					describe(&l, who, whocap);
					found = 1; /* read on to NLMSG_DONE: the socket is reused */
				}
			}
			size_t step = NLMSG_ALIGN(h->nlmsg_len);
			if (step >= left)
				break;
			p += step;
			left -= step;
		}
	}
}

int listendiag_foreign(const struct sockaddr *addr, const ino_t *ours, size_t n_ours, char *who,
		       size_t whocap, char *err, size_t errlen)
{
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		snprintf(err, errlen, "sock_diag: socket: %s", strerror(errno));
		return -1;
	}
	/* The kernel answers at once; never let start-up hang on it. */
	struct timeval tv = { 2, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int r = scan(fd, AF_INET6, addr, ours, n_ours, who, whocap, err, errlen);
	if (r == 0 && addr->sa_family == AF_INET)
		r = scan(fd, AF_INET, addr, ours, n_ours, who, whocap, err, errlen);
	close(fd);
	return r;
}
