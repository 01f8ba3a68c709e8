/*
 * mcastmap.c - multicast receivers and senders under stpify
 * (docs/stpify.md, "Multicast"; the protocol is docs/mcast.md).
 *
 * setsockopt(IP_ADD_MEMBERSHIP / IPV6_JOIN_GROUP / MCAST_JOIN_GROUP /
 * the source-specific forms) on an INET datagram socket bound to port GP
 * sends JOIN for the group G:GP to the proxy (libstp's stp_mcast_join, one
 * control connection per socket, protected like an association's). The
 * proxy relays the group, sealed, to an intranet group I:P; libstp's
 * socket bound to I:P and joined to it is dup3()ed over the application's
 * fd, so its poll/select/epoll and blocking reads wait for the group's
 * frames. The recv hooks open each frame (AEAD, replay window) and report
 * the payload from the sender the frame names. A sendto() to G:GP is
 * sealed and goes to the relay. A socket joined before bind() joins at
 * bind(). IP_DROP_MEMBERSHIP sends LEAVE; close() ends the control
 * connection, which leaves too.
 *
 * Source filters: every change (a source added, removed, blocked,
 * unblocked) is a new JOIN with the whole filter (X'85'), then the old
 * membership is closed: the proxy keys its relays by (group, port, filter).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/sockaddr.h"
#include "shim/mcastmap.h"
#include "shim/shim.h"

#define MCM_BUF (65536 + 64)

enum { MCM_NONE = 0, MCM_PENDING = 1, MCM_JOINED = 2 };

struct mcm {
	int fd;
	int family;                    /* the application socket's family */
	struct sockaddr_storage group; /* G, port GP (0 while pending) */
	struct sockaddr_storage bound; /* what the application bound */
	socklen_t boundlen;
	struct stp_mcast_filter filter;
	struct stp_mcast *m;           /* NULL while pending */
	bool told;                     /* its end was logged */
	struct mcm *next;
};

static unsigned char mcm_state[SHIM_FD_MAX]; /* MCM_*, read without the lock */
static struct mcm *mcm_list;
static pthread_mutex_t mcm_lock = PTHREAD_MUTEX_INITIALIZER;    /* the list, frames */
static pthread_mutex_t mcm_join_lock = PTHREAD_MUTEX_INITIALIZER; /* one JOIN at a time */
static __thread uint8_t *mcm_tbuf; /* one frame, per thread */

/* setsockopt is not among shim_real's symbols: only this file needs it. */
static int (*mcm_real_setsockopt)(int, int, int, const void *, socklen_t);
static pthread_once_t mcm_once = PTHREAD_ONCE_INIT;

static void mcm_load(void)
{
	void *p = dlsym(RTLD_NEXT, "setsockopt");
	memcpy(&mcm_real_setsockopt, &p, sizeof(p));
}

static int mcm_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	pthread_once(&mcm_once, mcm_load);
	if (mcm_real_setsockopt == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return mcm_real_setsockopt(fd, level, name, val, len);
}

static bool mcm_fd_ok(int fd) { return fd >= 0 && fd < SHIM_FD_MAX; }

static int mcm_get_state(int fd)
{
	return mcm_fd_ok(fd) ? __atomic_load_n(&mcm_state[fd], __ATOMIC_ACQUIRE) : MCM_NONE;
}

static void mcm_set_state(int fd, int st)
{
	__atomic_store_n(&mcm_state[fd], (unsigned char)st, __ATOMIC_RELEASE);
}

bool mcastmap_tracked(int fd) { return mcm_get_state(fd) == MCM_JOINED; }
bool mcastmap_pending(int fd) { return mcm_get_state(fd) == MCM_PENDING; }

/* Call with mcm_lock held. */
static struct mcm *mcm_find(int fd)
{
	for (struct mcm *e = mcm_list; e != NULL; e = e->next)
		if (e->fd == fd)
			return e;
	return NULL;
}

static void mcm_unlink(struct mcm *e)
{
	for (struct mcm **pp = &mcm_list; *pp != NULL; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			return;
		}
}

/* ---- the options ---- */

enum mcm_op { OP_JOIN, OP_LEAVE, OP_JOIN_SRC, OP_LEAVE_SRC, OP_BLOCK, OP_UNBLOCK };

struct mcm_req {
	enum mcm_op op;
	struct sockaddr_storage group;
	struct sockaddr_storage source; /* the *_SRC, BLOCK, UNBLOCK forms */
};

bool mcastmap_option(int level, int name)
{
	if (level != IPPROTO_IP && level != IPPROTO_IPV6)
		return false;
	switch (name) {
	case MCAST_JOIN_GROUP:
	case MCAST_LEAVE_GROUP:
	case MCAST_JOIN_SOURCE_GROUP:
	case MCAST_LEAVE_SOURCE_GROUP:
	case MCAST_BLOCK_SOURCE:
	case MCAST_UNBLOCK_SOURCE: return true;
	}
	if (level == IPPROTO_IPV6)
		return name == IPV6_ADD_MEMBERSHIP || name == IPV6_DROP_MEMBERSHIP;
	return name == IP_ADD_MEMBERSHIP || name == IP_DROP_MEMBERSHIP ||
	       name == IP_ADD_SOURCE_MEMBERSHIP || name == IP_DROP_SOURCE_MEMBERSHIP ||
	       name == IP_BLOCK_SOURCE || name == IP_UNBLOCK_SOURCE;
}

static void mcm_v4(struct sockaddr_storage *ss, const struct in_addr *a)
{
	struct sockaddr_in *s = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	s->sin_family = AF_INET;
	s->sin_addr = *a;
}

/* RFC 3678's protocol-independent forms (both levels). */
static int mcm_decode_any(int name, const void *val, socklen_t len, struct mcm_req *r)
{
	if (name == MCAST_JOIN_GROUP || name == MCAST_LEAVE_GROUP) {
		const struct group_req *g = val;
		if (len < sizeof(*g))
			return -1;
		r->op = name == MCAST_JOIN_GROUP ? OP_JOIN : OP_LEAVE;
		r->group = g->gr_group;
		return 0;
	}
	const struct group_source_req *g = val;
	if (len < sizeof(*g))
		return -1;
	r->op = name == MCAST_JOIN_SOURCE_GROUP	   ? OP_JOIN_SRC
		: name == MCAST_LEAVE_SOURCE_GROUP ? OP_LEAVE_SRC
		: name == MCAST_BLOCK_SOURCE	   ? OP_BLOCK
						   : OP_UNBLOCK;
	r->group = g->gsr_group;
	r->source = g->gsr_source;
	return 0;
}

/* The option's value into *r. -1 when it is too short to be one. */
static int mcm_decode(int level, int name, const void *val, socklen_t len, struct mcm_req *r)
{
	memset(r, 0, sizeof(*r));
	if (val == NULL)
		return -1;
	if (name >= MCAST_JOIN_GROUP && name <= MCAST_LEAVE_SOURCE_GROUP)
		return mcm_decode_any(name, val, len, r);
	if (level == IPPROTO_IPV6) {
		const struct ipv6_mreq *m6 = val;
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&r->group;
		if (len < sizeof(*m6))
			return -1;
		r->op = name == IPV6_ADD_MEMBERSHIP ? OP_JOIN : OP_LEAVE;
		s->sin6_family = AF_INET6;
		s->sin6_addr = m6->ipv6mr_multiaddr;
		return 0;
	}
	if (name == IP_ADD_MEMBERSHIP || name == IP_DROP_MEMBERSHIP) {
		/* struct ip_mreq or ip_mreqn: both start with the group */
		if (len < sizeof(struct ip_mreq))
			return -1;
		r->op = name == IP_ADD_MEMBERSHIP ? OP_JOIN : OP_LEAVE;
		mcm_v4(&r->group, &((const struct ip_mreq *)val)->imr_multiaddr);
		return 0;
	}
	const struct ip_mreq_source *ms = val;
	if (len < sizeof(*ms))
		return -1;
	r->op = name == IP_ADD_SOURCE_MEMBERSHIP    ? OP_JOIN_SRC
		: name == IP_DROP_SOURCE_MEMBERSHIP ? OP_LEAVE_SRC
		: name == IP_BLOCK_SOURCE	    ? OP_BLOCK
						    : OP_UNBLOCK;
	mcm_v4(&r->group, &ms->imr_multiaddr);
	mcm_v4(&r->source, &ms->imr_sourceaddr);
	return 0;
}

/* ---- joining ---- */

static int mcm_fail(int e)
{
	errno = e;
	return -1;
}

/* The application's socket options that matter for reading, carried over
 * to the socket that replaces it. */
static void mcm_copy_opts(int from, int to)
{
	int v;
	struct timeval tv;
	socklen_t len = sizeof(v);

	if (shim_real.getsockopt(from, SOL_SOCKET, SO_RCVBUF, &v, &len) == 0) {
		v /= 2; /* the kernel reports twice what was set */
		mcm_setsockopt(to, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	}
	len = sizeof(tv);
	if (shim_real.getsockopt(from, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0)
		mcm_setsockopt(to, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	len = sizeof(v);
	if (shim_real.getsockopt(from, SOL_SOCKET, SO_TIMESTAMP, &v, &len) == 0 && v)
		mcm_setsockopt(to, SOL_SOCKET, SO_TIMESTAMP, &v, sizeof(v));
}

/* libstp's intranet socket takes the place of fd: same number, same
 * O_NONBLOCK and close-on-exec. */
static int mcm_install_rx(int fd, struct stp_mcast *m)
{
	int rx = stp_mcast_take_fd(m);
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);

	if (rx < 0)
		return 0; /* a send-only grant: the socket stays as it is */
	mcm_copy_opts(fd, rx);
	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(rx, F_SETFL, fcntl(rx, F_GETFL) | O_NONBLOCK);
	int r = shim_real.dup3(rx, fd, fdfl >= 0 && (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0);
	int e = errno;
	shim_real.close(rx);
	return r < 0 ? mcm_fail(e) : 0;
}

static void mcm_protect(struct stp_mcast *m, bool on)
{
	fdtab_set_internal(stp_mcast_control_fd(m), on);
	if (stp_mcast_send_fd(m) >= 0)
		fdtab_set_internal(stp_mcast_send_fd(m), on);
}

static void mcm_close_membership(struct stp_mcast *m)
{
	mcm_protect(m, false);
	shim_enter();
	stp_mcast_close(m);
	shim_leave();
}

/* JOIN e's group and filter through the proxy and put the intranet socket
 * in fd's place; a previous membership of e is closed after. Called with
 * mcm_join_lock held. 0, or -1 with errno. */
static int mcm_join(struct mcm *e)
{
	enum stp_err err;
	char where[SA_STR_MAX], in[STP_ADDR_STR_MAX];
	const struct stp_mcast_filter *f = e->filter.mode != STP_MCAST_ANY ? &e->filter : NULL;

	shim_enter();
	struct stp_mcast *m = stp_mcast_join(&shim_conf.proxy, NULL, 0,
					     (struct sockaddr *)&e->group, 0, f,
					     shim_conf.timeout_ms, &err);
	shim_leave();
	sa_str((struct sockaddr *)&e->group, where, sizeof(where));
	if (m == NULL) {
		shim_log(SHIM_LOG_ERROR, "multicast %s: join through the proxy failed: %s", where,
			 stp_strerror(err));
		return mcm_fail(stp_err_errno(err));
	}
	if (mcm_install_rx(e->fd, m) < 0) {
		int saved = errno;
		shim_enter();
		stp_mcast_close(m);
		shim_leave();
		return mcm_fail(saved);
	}
	mcm_protect(m, true);
	pthread_mutex_lock(&mcm_lock);
	struct stp_mcast *old = e->m;
	e->m = m;
	e->told = false;
	pthread_mutex_unlock(&mcm_lock);
	mcm_set_state(e->fd, MCM_JOINED);
	if (old != NULL)
		mcm_close_membership(old);
	shim_log(SHIM_LOG_INFO, "multicast %s: joined through the proxy on fd %d (%s), intranet %s",
		 where, e->fd,
		 stp_mcast_can_send(m) && stp_mcast_can_recv(m) ? "send and receive"
		 : stp_mcast_can_send(m)			? "send only"
								: "receive only",
		 stp_addr_str(stp_mcast_intranet(m), in, sizeof(in)));
	return 0;
}

/* A new entry for fd; joins now if fd is bound, else at bind(). */
static int mcm_add(int fd, int family, const struct mcm_req *r)
{
	struct mcm *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return mcm_fail(ENOMEM);
	e->fd = fd;
	e->family = family;
	e->group = r->group;
	sa_unmap(&e->group);
	e->boundlen = sizeof(e->bound);
	if (shim_real.getsockname(fd, (struct sockaddr *)&e->bound, &e->boundlen) < 0) {
		free(e);
		return -1;
	}
	if (r->op == OP_JOIN_SRC) {
		e->filter.mode = STP_MCAST_INCLUDE;
		e->filter.nsrc = 1;
		e->filter.src[0] = r->source;
	}
	unsigned port = sa_port((struct sockaddr *)&e->bound);
	sa_set_port((struct sockaddr *)&e->group, port);
	if (port != 0 && mcm_join(e) < 0) {
		free(e);
		return -1;
	}
	pthread_mutex_lock(&mcm_lock);
	e->next = mcm_list;
	mcm_list = e;
	pthread_mutex_unlock(&mcm_lock);
	if (port == 0)
		mcm_set_state(fd, MCM_PENDING);
	return 0;
}

/* ---- filters ---- */

static int mcm_src_index(const struct stp_mcast_filter *f, const struct sockaddr_storage *s)
{
	for (unsigned i = 0; i < f->nsrc; i++)
		if (sa_equal_addr((const struct sockaddr *)&f->src[i], (const struct sockaddr *)s))
			return (int)i;
	return -1;
}

/* Applies a source change to e->filter (kernel errno semantics). 1 when
 * the filter changed, 0 when the op leaves the group, -1 with errno. */
static int mcm_filter_op(struct mcm *e, const struct mcm_req *r)
{
	struct stp_mcast_filter *f = &e->filter;
	int i = mcm_src_index(f, &r->source);
	bool adding = r->op == OP_JOIN_SRC || r->op == OP_BLOCK;
	enum stp_mcast_fmode mode = r->op == OP_JOIN_SRC || r->op == OP_LEAVE_SRC
					    ? STP_MCAST_INCLUDE
					    : STP_MCAST_EXCLUDE;

	if (r->op == OP_BLOCK && f->mode == STP_MCAST_ANY)
		f->mode = STP_MCAST_EXCLUDE; /* any source = EXCLUDE nothing */
	if (f->mode != mode)
		return mcm_fail(EINVAL);
	if (adding && i >= 0)
		return mcm_fail(EADDRNOTAVAIL);
	if (!adding && i < 0)
		return mcm_fail(EADDRNOTAVAIL);
	if (adding) {
		if (f->nsrc == STP_MCAST_SOURCES_MAX)
			return mcm_fail(ENOBUFS);
		f->src[f->nsrc++] = r->source;
		return 1;
	}
	f->src[i] = f->src[--f->nsrc];
	return f->mode == STP_MCAST_INCLUDE && f->nsrc == 0 ? 0 : 1;
}

/* ---- leaving ---- */

/* Ends e's membership (LEAVE when asked to) and forgets e. */
static void mcm_remove(struct mcm *e, bool leave)
{
	pthread_mutex_lock(&mcm_lock);
	mcm_unlink(e);
	mcm_set_state(e->fd, MCM_NONE);
	pthread_mutex_unlock(&mcm_lock);
	if (e->m != NULL && leave) {
		const struct stp_addr *i = stp_mcast_intranet(e->m);
		struct group_req gr = { .gr_interface = 0 };
		enum stp_err err;
		memcpy(&gr.gr_group, &i->sa, i->salen);
		shim_enter();
		stp_mcast_leave(e->m, shim_conf.timeout_ms, &err);
		shim_leave();
		/* The socket stays bound to I:P; it no longer listens to I. */
		mcm_setsockopt(e->fd, i->sa.ss_family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP,
			       MCAST_LEAVE_GROUP, &gr, sizeof(gr));
	}
	if (e->m != NULL)
		mcm_close_membership(e->m);
	free(e);
}

void mcastmap_drop(int fd)
{
	if (mcm_get_state(fd) == MCM_NONE)
		return;
	pthread_mutex_lock(&mcm_join_lock);
	pthread_mutex_lock(&mcm_lock);
	struct mcm *e = mcm_find(fd);
	pthread_mutex_unlock(&mcm_lock);
	if (e != NULL)
		mcm_remove(e, false);
	pthread_mutex_unlock(&mcm_join_lock);
}

/* ---- the hooks ---- */

static bool mcm_same_group(const struct mcm *e, const struct sockaddr_storage *g)
{
	return sa_equal_addr((const struct sockaddr *)&e->group, (const struct sockaddr *)g);
}

/* One option on fd, which has entry e (or none). Called with
 * mcm_join_lock held. */
static int mcm_apply(int fd, int family, struct mcm *e, const struct mcm_req *r)
{
	if (e == NULL) {
		if (r->op == OP_JOIN || r->op == OP_JOIN_SRC)
			return mcm_add(fd, family, r);
		return mcm_fail(EADDRNOTAVAIL);
	}
	if (!mcm_same_group(e, &r->group)) {
		shim_log(SHIM_LOG_ERROR, "multicast: fd %d already holds a group: stpify carries "
			 "one group per socket", fd);
		return mcm_fail(r->op == OP_JOIN || r->op == OP_JOIN_SRC ? EOPNOTSUPP
									  : EADDRNOTAVAIL);
	}
	if (r->op == OP_JOIN)
		return mcm_fail(EADDRINUSE);
	if (r->op == OP_LEAVE) {
		mcm_remove(e, true);
		return 0;
	}
	struct stp_mcast_filter saved = e->filter;
	int c = mcm_filter_op(e, r);
	if (c == 0) {
		mcm_remove(e, true);
		return 0;
	}
	if (c < 0 || e->m == NULL) /* pending: the JOIN at bind() takes the filter */
		return c < 0 ? -1 : 0;
	if (mcm_join(e) < 0) {
		int err = errno;
		e->filter = saved;
		return mcm_fail(err);
	}
	return 0;
}

int mcastmap_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct mcm_req r;
	int family, rc;

	if (!mcastmap_option(level, name))
		return mcm_setsockopt(fd, level, name, val, len);
	shim_init();
	if (shim_busy() || !shim_conf.have_proxy || !mcm_fd_ok(fd) ||
	    shim_sock_type(fd, &family) != SOCK_DGRAM ||
	    (family != AF_INET && family != AF_INET6) ||
	    mcm_decode(level, name, val, len, &r) < 0 ||
	    (r.group.ss_family != AF_INET && r.group.ss_family != AF_INET6) ||
	    shim_policy_bypass_sa((struct sockaddr *)&r.group))
		return mcm_setsockopt(fd, level, name, val, len);
	pthread_mutex_lock(&mcm_join_lock);
	pthread_mutex_lock(&mcm_lock);
	struct mcm *e = mcm_find(fd);
	pthread_mutex_unlock(&mcm_lock);
	rc = mcm_apply(fd, family, e, &r);
	pthread_mutex_unlock(&mcm_join_lock);
	return rc;
}

int mcastmap_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int rc = shim_real.bind(fd, sa, len);

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&mcm_join_lock);
	pthread_mutex_lock(&mcm_lock);
	struct mcm *e = mcm_find(fd);
	pthread_mutex_unlock(&mcm_lock);
	if (e != NULL && e->m == NULL) {
		e->boundlen = sizeof(e->bound);
		shim_real.getsockname(fd, (struct sockaddr *)&e->bound, &e->boundlen);
		sa_set_port((struct sockaddr *)&e->group, sa_port((struct sockaddr *)&e->bound));
		if (mcm_join(e) < 0) {
			int err = errno;
			mcm_remove(e, false);
			rc = mcm_fail(err);
		}
	}
	pthread_mutex_unlock(&mcm_join_lock);
	return rc;
}

bool mcastmap_sockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	bool found = false;

	if (!mcastmap_tracked(fd) || len == NULL)
		return false;
	pthread_mutex_lock(&mcm_lock);
	struct mcm *e = mcm_find(fd);
	if (e != NULL) {
		memcpy(sa, &e->bound, e->boundlen < *len ? e->boundlen : *len);
		*len = e->boundlen;
		found = true;
	}
	pthread_mutex_unlock(&mcm_lock);
	return found;
}

/* The proxy's word on the control connection, logged once: after a
 * notice or EOF the group is silent. Called with mcm_lock held. */
static void mcm_watch(struct mcm *e)
{
	enum stp_err err;
	char where[SA_STR_MAX];

	if (e->m == NULL || e->told)
		return;
	shim_enter();
	int r = stp_mcast_check(e->m, &err);
	shim_leave();
	if (r == 0)
		return;
	e->told = true;
	shim_log(SHIM_LOG_ERROR, "multicast %s: the proxy ended the membership: %s",
		 sa_str((struct sockaddr *)&e->group, where, sizeof(where)), stp_strerror(err));
}

static size_t mcm_scatter(struct msghdr *msg, const uint8_t *p, size_t n)
{
	size_t got = 0;

	for (size_t i = 0; i < (size_t)msg->msg_iovlen && got < n; i++) {
		size_t k = msg->msg_iov[i].iov_len < n - got ? msg->msg_iov[i].iov_len : n - got;
		memcpy(msg->msg_iov[i].iov_base, p + got, k);
		got += k;
	}
	return got;
}

static void mcm_set_name(struct msghdr *msg, const struct stp_addr *from, int family)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (msg->msg_name == NULL)
		return;
	if (from->salen == 0 || shim_sa_to_family((const struct sockaddr *)&from->sa, family, &ss,
						  &len) < 0) {
		msg->msg_namelen = 0;
		return;
	}
	memcpy(msg->msg_name, &ss, len < msg->msg_namelen ? len : msg->msg_namelen);
	msg->msg_namelen = len;
}

/* Opens the frame in buf[0..n): the payload's offset, or -1 to drop it. */
static ssize_t mcm_open(int fd, uint8_t *buf, size_t n, size_t *len, struct stp_addr *from,
			int flags, int *family)
{
	ssize_t off = -1;

	pthread_mutex_lock(&mcm_lock);
	struct mcm *e = mcm_find(fd);
	if (e != NULL && e->m != NULL) {
		*family = e->family;
		off = stp_mcast_open(e->m, buf, n, len, from, (flags & MSG_PEEK) ? STP_MCAST_PEEK : 0);
	}
	pthread_mutex_unlock(&mcm_lock);
	return off;
}

ssize_t mcastmap_recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (mcm_tbuf == NULL && (mcm_tbuf = malloc(MCM_BUF)) == NULL)
		return mcm_fail(ENOMEM);
	for (;;) {
		struct iovec iov = { mcm_tbuf, MCM_BUF };
		struct msghdr in = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = msg->msg_control,
				     .msg_controllen = msg->msg_controllen };
		ssize_t n = shim_real.recvmsg(fd, &in, flags & ~MSG_TRUNC);
		if (n < 0) {
			int e = errno;
			pthread_mutex_lock(&mcm_lock);
			struct mcm *m = mcm_find(fd);
			if (m != NULL && (e == EAGAIN || e == EWOULDBLOCK))
				mcm_watch(m);
			pthread_mutex_unlock(&mcm_lock);
			return mcm_fail(e);
		}
		struct stp_addr from;
		size_t len = 0;
		int family = AF_INET;
		ssize_t off = mcm_open(fd, mcm_tbuf, (size_t)n, &len, &from, flags, &family);
		if (off < 0) {
			shim_log(SHIM_LOG_DEBUG, "multicast fd %d: dropped a frame", fd);
			if (flags & MSG_PEEK) /* take it out of the queue */
				shim_real.recv(fd, mcm_tbuf, 1, MSG_DONTWAIT);
			continue;
		}
		size_t got = mcm_scatter(msg, mcm_tbuf + off, len);
		msg->msg_controllen = in.msg_controllen;
		msg->msg_flags = (in.msg_flags & ~MSG_TRUNC) | (got < len ? MSG_TRUNC : 0);
		mcm_set_name(msg, &from, family);
		return (flags & MSG_TRUNC) ? (ssize_t)len : (ssize_t)got;
	}
}

bool mcastmap_wants_send(int fd, const struct sockaddr *dst)
{
	struct sockaddr_storage d;
	bool yes = false;

	if (!mcastmap_tracked(fd) || dst == NULL ||
	    (dst->sa_family != AF_INET && dst->sa_family != AF_INET6))
		return false;
	memcpy(&d, dst, sa_len(dst));
	sa_unmap(&d);
	pthread_mutex_lock(&mcm_lock);
	struct mcm *e = mcm_find(fd);
	yes = e != NULL && e->m != NULL &&
	      sa_equal((struct sockaddr *)&d, (struct sockaddr *)&e->group);
	pthread_mutex_unlock(&mcm_lock);
	return yes;
}

/* Gathers the payload into buf + MCAST_MHDR_LEN (where sealing in place
 * wants it). -1 when it does not fit. */
static ssize_t mcm_gather(const struct msghdr *msg, uint8_t *buf)
{
	size_t n = 0, cap = MCM_BUF - STP_MCAST_OVERHEAD;

	for (size_t i = 0; i < (size_t)msg->msg_iovlen; i++) {
		if (msg->msg_iov[i].iov_len > cap - n)
			return -1;
		memcpy(buf + 14 + n, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
		n += msg->msg_iov[i].iov_len;
	}
	return (ssize_t)n;
}

ssize_t mcastmap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (mcm_tbuf == NULL && (mcm_tbuf = malloc(MCM_BUF)) == NULL)
		return mcm_fail(ENOMEM);
	ssize_t n = mcm_gather(msg, mcm_tbuf);
	size_t flen = 0;
	int tx = -1;

	if (n < 0)
		return mcm_fail(EMSGSIZE);
	pthread_mutex_lock(&mcm_lock);
	struct mcm *e = mcm_find(fd);
	if (e != NULL && e->m != NULL && stp_mcast_can_send(e->m)) {
		/* sealed in place: header in front, ciphertext over the payload */
		flen = stp_mcast_seal(e->m, mcm_tbuf + 14, (size_t)n, mcm_tbuf, MCM_BUF);
		tx = stp_mcast_send_fd(e->m);
	}
	pthread_mutex_unlock(&mcm_lock);
	if (tx < 0 || flen == 0)
		return mcm_fail(tx < 0 ? EACCES : EMSGSIZE); /* receive only: not allowed to send */
	if (shim_real.send(tx, mcm_tbuf, flen, (flags & MSG_DONTWAIT) | MSG_NOSIGNAL) < 0) {
		int err = errno;
		pthread_mutex_lock(&mcm_lock);
		if ((e = mcm_find(fd)) != NULL)
			mcm_watch(e);
		pthread_mutex_unlock(&mcm_lock);
		/* A relay that went away answers with ICMP: for a datagram that
		 * is a loss, not an error (the log line says why). */
		if (err != ECONNREFUSED)
			return mcm_fail(err);
	}
	return n;
}

ssize_t mcastmap_recv1(int fd, void *buf, size_t n, int flags, struct sockaddr *src,
		       socklen_t *slen)
{
	struct iovec iov = { buf, n };
	struct msghdr m = { .msg_name = src, .msg_namelen = slen ? *slen : 0,
			    .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r = mcastmap_recvmsg(fd, &m, flags);

	if (r >= 0 && slen != NULL)
		*slen = m.msg_namelen;
	return r;
}

ssize_t mcastmap_sendto1(int fd, const void *buf, size_t n, int flags)
{
	struct iovec iov = { (void *)buf, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	return mcastmap_sendmsg(fd, &m, flags);
}
