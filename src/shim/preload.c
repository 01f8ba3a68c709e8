/*
 * preload.c - the hooks libstpify.so puts in front of libc. Each one
 * resolves the real symbols once (shim_init), passes through everything
 * stpify does not own (non-INET sockets, bypassed targets, untracked
 * fds, and every call made while stpify itself is working), and hands the
 * rest to nbconnect.c (TCP), udpassoc.c (UDP), bindmap.c (BIND) or the
 * fake-DNS resolver below.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/sockaddr.h"
#include "shim/mcastmap.h"
#include "shim/shim.h"

/*
 * SHIM_HOOK(name): the hook for libc's name is defined as stpify_name and
 * exported as name by alias (after proxychains-ng's HOOKFUNC, which names
 * its hooks pxcng_name where it must). The source then holds no function
 * called connect, recv, close or write: a reader, ctags or cscope never
 * takes stpd's or libstp's own calls to them for calls into the shim, and
 * a hook is found by its stpify_ name. The alias is the one exported
 * symbol (stpify.map); stpify_name stays hidden (-fvisibility=hidden). The
 * declaration of stpify_name takes libc's own prototype, so a hook whose
 * definition drifts from it does not compile.
 */
#define SHIM_HOOK(name)                                                                   \
	extern __typeof__(name) stpify_##name;                                            \
	extern __typeof__(name) name __attribute__((alias("stpify_" #name), visibility("default")))

/* Called by every hook first: true when the call is ours to look at. */
static bool hook_active(void)
{
	shim_init();
	return !shim_busy();
}

static bool hook_inet(const struct sockaddr *sa)
{
	return sa != NULL && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

#define NEED_REAL(fn)                  \
	do {                           \
		if (shim_real.fn == NULL) { \
			errno = ENOSYS; \
			return -1;      \
		}                       \
	} while (0)

/* ------------------------------------------------------------------ */
/* connect, listen, accept                                             */

static void hook_clear_peer(struct shim_fd *st, void *arg) { st->udp_connected = false; }

static int hook_connect_tracked(int fd, const struct shim_fd *st)
{
	if (st->kind == SHIM_FD_TCP && st->pending_err) {
		errno = st->pending_err;
		return -1;
	}
	errno = EISCONN;
	return -1;
}

SHIM_HOOK(connect);
int stpify_connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	const struct sockaddr *sa = addr.__sockaddr__;
	struct shim_fd st;
	int family, type;

	if (!hook_active() || sa == NULL)
		return shim_real.connect(fd, sa, len);
	NEED_REAL(connect);
	type = shim_sock_type(fd, &family);
	if (type == SOCK_DGRAM && (family == AF_INET || family == AF_INET6)) {
		int r;
		if (shim_conf.serve && !shim_busy() && servemap_connect(fd, sa, &r))
			return r;
		if (sa->sa_family == AF_UNSPEC || shim_policy_bypass_sa(sa)) {
			fdtab_update(fd, hook_clear_peer, NULL);
			return shim_real.connect(fd, sa, len);
		}
		return udp_connect(fd, sa, len);
	}
	if (type != SOCK_STREAM || !hook_inet(sa) || shim_policy_bypass_sa(sa))
		return shim_real.connect(fd, sa, len);
	if (fdtab_get(fd, &st))
		return hook_connect_tracked(fd, &st);
	return tcp_connect_via_proxy(fd, sa, len);
}

SHIM_HOOK(listen);
int stpify_listen(int fd, int backlog)
{
	if (!hook_active() || !bindmap_wants(fd)) {
		int r = shim_real.listen(fd, backlog);
		if (r == 0 && !shim_busy())
			servemap_listen(fd);
		return r;
	}
	return bindmap_listen(fd);
}

/* A connection our serve thread made for a proxy peer: the program sees
 * the peer's real address (servemap.c). */
static void hook_serve_peer(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct sockaddr_storage real, view;
	socklen_t vlen;
	if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
		return;
	if (!servemap_peer(fd, (uint16_t)sa_port(addr), &real))
		return;
	if (shim_sa_to_family((struct sockaddr *)&real, addr->sa_family, &view, &vlen) < 0)
		return;
	memcpy(addr, &view, *len < vlen ? *len : vlen);
	*len = vlen;
}

static int hook_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	struct shim_fd st;

	if (hook_active() && fdtab_get(fd, &st) && st.kind == SHIM_FD_BIND)
		return bindmap_accept(fd, addr, len, flags);
	int r = shim_real.accept4(fd, addr, len, flags);
	if (r >= 0 && addr && len && shim_conf.serve && !shim_busy())
		hook_serve_peer(r, addr, len);
	return r;
}

SHIM_HOOK(accept);
int stpify_accept(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
	return hook_accept(fd, addr.__sockaddr__, len, 0);
}

SHIM_HOOK(accept4);
int stpify_accept4(int fd, __SOCKADDR_ARG addr, socklen_t *len, int flags)
{
	return hook_accept(fd, addr.__sockaddr__, len, flags);
}

/* ------------------------------------------------------------------ */
/* fds: close and dup keep the table right and protect internal fds    */

SHIM_HOOK(close);
int stpify_close(int fd)
{
	shim_init();
	NEED_REAL(close);
	if (shim_busy())
		return shim_real.close(fd);
	if (fdtab_internal(fd)) {
		/* "rude programs" (proxychains-ng): closing every fd must not
		 * cut an association's control connection from under it. */
		shim_log(SHIM_LOG_DEBUG, "close(%d): internal fd, left open", fd);
		errno = EBADF;
		return -1;
	}
	mcastmap_drop(fd); /* multicast: closing the control connection leaves */
	if (shim_conf.serve)
		servemap_drop(fd);
	if (fdtab_tracked(fd)) {
		int ctl = fdtab_drop(fd);
		if (ctl >= 0) {
			fdtab_set_internal(ctl, false);
			shim_real.close(ctl);
		}
	}
	return shim_real.close(fd);
}

SHIM_HOOK(dup);
int stpify_dup(int fd)
{
	shim_init();
	NEED_REAL(dup);
	int n = shim_real.dup(fd);
	if (n >= 0 && fdtab_tracked(fd))
		fdtab_dup(fd, n);
	return n;
}

static int hook_dup23(int oldfd, int newfd, int flags, bool three)
{
	shim_init();
	if (!shim_busy() && newfd != oldfd && fdtab_internal(newfd))
		fdtab_evacuate(newfd);
	int n = three ? shim_real.dup3(oldfd, newfd, flags) : shim_real.dup2(oldfd, newfd);
	if (n >= 0 && oldfd != newfd)
		mcastmap_drop(newfd);
	if (n >= 0 && oldfd != newfd && (fdtab_tracked(oldfd) || fdtab_tracked(newfd))) {
		int ctl = fdtab_tracked(oldfd) ? -1 : fdtab_drop(newfd);
		if (ctl >= 0) {
			fdtab_set_internal(ctl, false);
			shim_real.close(ctl);
		}
		fdtab_dup(oldfd, newfd);
	}
	return n;
}

SHIM_HOOK(dup2);
int stpify_dup2(int oldfd, int newfd) { return hook_dup23(oldfd, newfd, 0, false); }
SHIM_HOOK(dup3);
int stpify_dup3(int oldfd, int newfd, int flags) { return hook_dup23(oldfd, newfd, flags, true); }

/* ------------------------------------------------------------------ */
/* addresses and SO_ERROR as the application expects them             */

static int hook_copy_sa(const struct sockaddr_storage *ss, socklen_t n, struct sockaddr *out,
			socklen_t *len)
{
	memcpy(out, ss, n < *len ? n : *len);
	*len = n;
	return 0;
}

SHIM_HOOK(getpeername);
int stpify_getpeername(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
	struct sockaddr_storage real, view;
	socklen_t rlen = sizeof(real), vlen;
	struct shim_fd st;

	if (!hook_active() || len == NULL || !fdtab_get(fd, &st)) {
		int r = shim_real.getpeername(fd, addr.__sockaddr__, len);
		/* a served UDP socket connected to a proxy peer (servemap.c) */
		if (r == 0 && hook_active() && shim_conf.serve && !shim_busy())
			servemap_fix_src(fd, addr.__sockaddr__, len);
		return r;
	}
	if (st.peerlen > 0 &&
	    (st.kind == SHIM_FD_TCP || (st.kind == SHIM_FD_UDP && st.udp_connected)))
		return hook_copy_sa(&st.peer, st.peerlen, addr.__sockaddr__, len);
	/* a replaced UDP socket connect()ed to a direct peer by the kernel */
	if (st.app_family == 0 || shim_real.getpeername(fd, (struct sockaddr *)&real, &rlen) < 0 ||
	    sockswap_view((struct sockaddr *)&real, st.app_family, &view, &vlen) < 0)
		return shim_real.getpeername(fd, addr.__sockaddr__, len);
	return hook_copy_sa(&view, vlen, addr.__sockaddr__, len);
}

/* A replaced socket (sockswap.c) answers in the family the application
 * created it with: the address it bound (UDP), or the replacement's own
 * address seen from that family. */
static int hook_sockname_swapped(int fd, const struct shim_fd *st, struct sockaddr *out,
				 socklen_t *len)
{
	struct sockaddr_storage real, view;
	socklen_t rlen = sizeof(real), vlen;

	if (st->kind == SHIM_FD_UDP && sa_port((struct sockaddr *)&st->app_local) != 0)
		return hook_copy_sa(&st->app_local, sa_len((struct sockaddr *)&st->app_local),
				    out, len);
	if (shim_real.getsockname(fd, (struct sockaddr *)&real, &rlen) < 0)
		return -1;
	if (sockswap_view((struct sockaddr *)&real, st->app_family, &view, &vlen) < 0)
		return shim_real.getsockname(fd, out, len);
	return hook_copy_sa(&view, vlen, out, len);
}

SHIM_HOOK(getsockname);
int stpify_getsockname(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
	struct shim_fd st;

	if (!hook_active() || len == NULL)
		return shim_real.getsockname(fd, addr.__sockaddr__, len);
	bool tracked = fdtab_get(fd, &st);
	if (tracked && st.kind == SHIM_FD_BIND && !st.bind_done)
		return hook_copy_sa(&st.bound.sa, st.bound.salen, addr.__sockaddr__, len);
	if (mcastmap_sockname(fd, addr.__sockaddr__, len))
		return 0;
	struct sockaddr_storage pub, view;
	socklen_t vlen;
	if (shim_conf.serve && servemap_sockname(fd, &pub)) {
		struct sockaddr_storage mine;
		socklen_t ml = sizeof(mine);
		if (shim_real.getsockname(fd, (struct sockaddr *)&mine, &ml) == 0 &&
		    shim_sa_to_family((struct sockaddr *)&pub, mine.ss_family, &view, &vlen) == 0)
			return hook_copy_sa(&view, vlen, addr.__sockaddr__, len);
	}
	if (tracked && st.app_family != 0)
		return hook_sockname_swapped(fd, &st, addr.__sockaddr__, len);
	return shim_real.getsockname(fd, addr.__sockaddr__, len);
}

/* ------------------------------------------------------------------ */
/* multicast: group memberships become JOINs through the proxy (mcastmap.c) */

/* A relayed stream (shim.h) has no TCP socket under it: TCP and IP
 * options (TCP_NODELAY, keep-alive tuning, TOS...) are accepted and do
 * nothing, so programs that set them go on as over TCP. */
static bool hook_relayed_opt(int fd, int level)
{
	struct shim_fd st;
	return (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) &&
	       !shim_busy() && fdtab_tracked(fd) && fdtab_get(fd, &st) && st.relayed;
}

SHIM_HOOK(setsockopt);
int stpify_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (hook_relayed_opt(fd, level))
		return 0;
	return mcastmap_setsockopt(fd, level, name, val, len);
}

/* A socket that joined a group before bind() joins through the proxy now. */
SHIM_HOOK(bind);
int stpify_bind(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	shim_init();
	NEED_REAL(bind);
	if (!shim_busy() && mcastmap_pending(fd))
		return mcastmap_bind(fd, addr.__sockaddr__, len);
	int r = shim_real.bind(fd, addr.__sockaddr__, len);
	if (r == 0 && !shim_busy())
		servemap_bind(fd, addr.__sockaddr__);
	return r;
}

static void hook_take_err(struct shim_fd *st, void *arg)
{
	*(int *)arg = st->pending_err;
	st->pending_err = 0;
}

/* SO_DOMAIN and IPV6_V6ONLY of a replaced socket: what the application
 * created. True when *v is the answer. */
static bool hook_sockopt_swapped(int fd, int level, int name, int *v)
{
	struct shim_fd st;
	bool domain = level == SOL_SOCKET && name == SO_DOMAIN;

	if (!domain && !(level == IPPROTO_IPV6 && name == IPV6_V6ONLY))
		return false;
	if (!fdtab_get(fd, &st) || st.app_family == 0)
		return false;
	if (domain)
		*v = st.app_family;
	else if (st.app_family == AF_INET6)
		*v = st.app_v6only;
	else
		return false;
	return true;
}

SHIM_HOOK(getsockopt);
int stpify_getsockopt(int fd, int level, int name, void *__restrict val,
		      socklen_t *__restrict len)
{
	int v;

	shim_init();
	if (!shim_busy() && fdtab_tracked(fd) && val != NULL && len != NULL &&
	    *len >= sizeof(int) && hook_sockopt_swapped(fd, level, name, &v)) {
		memcpy(val, &v, sizeof(v));
		*len = sizeof(int);
		return 0;
	}
	if (!shim_busy() && level == SOL_SOCKET && name == SO_ERROR && fdtab_tracked(fd) &&
	    val != NULL && len != NULL && *len >= sizeof(int)) {
		int e = 0;
		fdtab_update(fd, hook_take_err, &e);
		if (e != 0) {
			memcpy(val, &e, sizeof(e));
			*len = sizeof(int);
			return 0;
		}
	}
	if (val != NULL && len != NULL && *len >= sizeof(int) && hook_relayed_opt(fd, level)) {
		memset(val, 0, sizeof(int));
		*len = sizeof(int);
		return 0;
	}
	return shim_real.getsockopt(fd, level, name, val, len);
}

/* ------------------------------------------------------------------ */
/* datagrams                                                           */

/* Is this send ours? dst may be NULL (a connected or tracked socket). */
static bool hook_udp_send(int fd, const struct sockaddr *dst)
{
	int family;

	if (!hook_active())
		return false;
	if (dst == NULL)
		return fdtab_tracked(fd) && udp_wants_proxy(fd, NULL);
	if (!hook_inet(dst) || shim_policy_bypass_sa(dst))
		return false;
	return shim_sock_type(fd, &family) == SOCK_DGRAM;
}

static bool hook_udp_recv(int fd)
{
	struct shim_fd st;

	return hook_active() && fdtab_tracked(fd) && fdtab_get(fd, &st) &&
	       st.kind == SHIM_FD_UDP;
}

static ssize_t hook_send1(int fd, const void *buf, size_t n, int flags,
			  const struct sockaddr *dst, socklen_t dlen)
{
	struct iovec iov = { (void *)buf, n };
	struct msghdr m = { .msg_name = (void *)dst, .msg_namelen = dst ? dlen : 0,
			    .msg_iov = &iov, .msg_iovlen = 1 };
	return udp_sendmsg(fd, &m, flags);
}

static ssize_t hook_recv1(int fd, void *buf, size_t n, int flags, struct sockaddr *src,
			  socklen_t *slen)
{
	struct iovec iov = { buf, n };
	struct msghdr m = { .msg_name = src, .msg_namelen = slen ? *slen : 0,
			    .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r = udp_recvmsg(fd, &m, flags);
	if (r >= 0 && slen != NULL)
		*slen = m.msg_namelen;
	return r;
}

SHIM_HOOK(sendto);
ssize_t stpify_sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG addr,
		      socklen_t alen)
{
	const struct sockaddr *dst = addr.__sockaddr__;

	if (mcastmap_tracked(fd) && hook_active() && mcastmap_wants_send(fd, dst))
		return mcastmap_sendto1(fd, buf, n, flags);
	if (shim_conf.serve && hook_active()) {
		ssize_t r = servemap_sendto(fd, buf, n, dst);
		if (r != -2)
			return r;
	}
	if (hook_udp_send(fd, dst))
		return hook_send1(fd, buf, n, flags, dst, alen);
	return shim_real.sendto(fd, buf, n, flags, dst, alen);
}

SHIM_HOOK(send);
ssize_t stpify_send(int fd, const void *buf, size_t n, int flags)
{
	if (fdtab_tracked(fd) && hook_udp_send(fd, NULL))
		return hook_send1(fd, buf, n, flags, NULL, 0);
	shim_init();
	return shim_real.send(fd, buf, n, flags);
}

SHIM_HOOK(write);
ssize_t stpify_write(int fd, const void *buf, size_t n)
{
	if (fdtab_tracked(fd) && hook_udp_send(fd, NULL))
		return hook_send1(fd, buf, n, 0, NULL, 0);
	shim_init();
	return shim_real.write(fd, buf, n);
}

SHIM_HOOK(sendmsg);
ssize_t stpify_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	shim_init();
	if (msg != NULL && mcastmap_tracked(fd) && !shim_busy() &&
	    mcastmap_wants_send(fd, msg->msg_name))
		return mcastmap_sendmsg(fd, msg, flags);
	if (msg != NULL && shim_conf.serve && !shim_busy() && msg->msg_iovlen == 1) {
		ssize_t r = servemap_sendto(fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len,
					    msg->msg_name);
		if (r != -2)
			return r;
	}
	if (msg != NULL && hook_udp_send(fd, msg->msg_name))
		return udp_sendmsg(fd, msg, flags);
	return shim_real.sendmsg(fd, msg, flags);
}

/* One sendmsg per message (the syscall may be off, see mmsg.c). */
SHIM_HOOK(sendmmsg);
int stpify_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	unsigned int i;

	shim_init();
	if (!mmsg_filtered && (vlen == 0 || vec == NULL ||
			       (!hook_udp_send(fd, vec[0].msg_hdr.msg_name) &&
				!mcastmap_tracked(fd))))
		return shim_real.sendmmsg(fd, vec, vlen, flags);
	for (i = 0; i < vlen; i++) {
		ssize_t r = sendmsg(fd, &vec[i].msg_hdr, flags);
		if (r < 0)
			return i > 0 ? (int)i : -1;
		vec[i].msg_len = (unsigned int)r;
	}
	return (int)i;
}

SHIM_HOOK(recvfrom);
ssize_t stpify_recvfrom(int fd, void *buf, size_t n, int flags, __SOCKADDR_ARG addr,
			socklen_t *alen)
{
	if (mcastmap_tracked(fd) && hook_active())
		return mcastmap_recv1(fd, buf, n, flags, addr.__sockaddr__, alen);
	if (hook_udp_recv(fd))
		return hook_recv1(fd, buf, n, flags, addr.__sockaddr__, alen);
	ssize_t r = shim_real.recvfrom(fd, buf, n, flags, addr.__sockaddr__, alen);
	if (r >= 0 && shim_conf.serve && !shim_busy())
		servemap_fix_src(fd, addr.__sockaddr__, alen);
	return r;
}

SHIM_HOOK(recv);
ssize_t stpify_recv(int fd, void *buf, size_t n, int flags)
{
	if (mcastmap_tracked(fd) && hook_active())
		return mcastmap_recv1(fd, buf, n, flags, NULL, NULL);
	if (fdtab_tracked(fd) && hook_udp_recv(fd))
		return hook_recv1(fd, buf, n, flags, NULL, NULL);
	shim_init();
	return shim_real.recv(fd, buf, n, flags);
}

SHIM_HOOK(read);
ssize_t stpify_read(int fd, void *buf, size_t n)
{
	if (mcastmap_tracked(fd) && hook_active())
		return mcastmap_recv1(fd, buf, n, 0, NULL, NULL);
	if (fdtab_tracked(fd) && hook_udp_recv(fd))
		return hook_recv1(fd, buf, n, 0, NULL, NULL);
	shim_init();
	return shim_real.read(fd, buf, n);
}

SHIM_HOOK(recvmsg);
ssize_t stpify_recvmsg(int fd, struct msghdr *msg, int flags)
{
	shim_init();
	if (msg != NULL && mcastmap_tracked(fd) && !shim_busy())
		return mcastmap_recvmsg(fd, msg, flags);
	if (msg != NULL && hook_udp_recv(fd))
		return udp_recvmsg(fd, msg, flags);
	ssize_t r = shim_real.recvmsg(fd, msg, flags);
	if (r >= 0 && msg != NULL && shim_conf.serve && !shim_busy())
		servemap_fix_src(fd, msg->msg_name, &msg->msg_namelen);
	return r;
}

/* One recvmsg per message; the timeout is not applied (mmsg.c). */
SHIM_HOOK(recvmmsg);
int stpify_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
		    struct timespec *tmo)
{
	unsigned int i;

	shim_init();
	if (!mmsg_filtered && (vlen == 0 || vec == NULL ||
			       (!hook_udp_recv(fd) && !mcastmap_tracked(fd))))
		return shim_real.recvmmsg(fd, vec, vlen, flags, tmo);
	for (i = 0; i < vlen; i++) {
		int f = i == 0 ? flags & ~MSG_WAITFORONE : flags | MSG_DONTWAIT;
		ssize_t r = recvmsg(fd, &vec[i].msg_hdr, f);
		if (r < 0) {
			if (i == 0)
				return -1;
			break;
		}
		vec[i].msg_len = (unsigned int)r;
	}
	return (int)i;
}

/* ------------------------------------------------------------------ */
/* names: a fake address per name, so DNS never leaves the host        */

static bool hook_numeric(const char *name)
{
	struct in6_addr a6;
	struct in_addr a4;
	char tmp[INET6_ADDRSTRLEN + 8];
	const char *pct = strchr(name, '%');

	if (inet_pton(AF_INET, name, &a4) == 1)
		return true;
	if (pct != NULL && (size_t)(pct - name) < sizeof(tmp)) {
		memcpy(tmp, name, (size_t)(pct - name));
		tmp[pct - name] = '\0';
		name = tmp; /* fe80::1%eth0 */
	}
	/* inet_aton accepts "127.1" and "0x7f.1", as getaddrinfo does */
	return inet_pton(AF_INET6, name, &a6) == 1 || inet_aton(name, &a4) != 0;
}

/* True when the name is for the fake resolver. */
static bool hook_fake_name(const char *name)
{
	return name != NULL && *name != '\0' && !hook_numeric(name) &&
	       !shim_policy_bypass_name(name);
}

SHIM_HOOK(getaddrinfo);
int stpify_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res)
{
	struct addrinfo h = { 0 };
	struct sockaddr_storage fake;
	int family, rc;

	if (!hook_active() || (hints && (hints->ai_flags & AI_NUMERICHOST)) ||
	    !hook_fake_name(node))
		return shim_real.getaddrinfo(node, service, hints, res);
	if (hints != NULL)
		h = *hints;
	if (h.ai_family != AF_UNSPEC && h.ai_family != AF_INET && h.ai_family != AF_INET6)
		return shim_real.getaddrinfo(node, service, hints, res);
	family = h.ai_family == AF_INET6 ? AF_INET6 : AF_INET;
	if (fakedns_addr(node, family, &fake) < 0)
		return EAI_FAIL;
	/* The real getaddrinfo on the family's wildcard builds the list
	 * (socket types, the service's port); only the address changes. */
	h.ai_family = family;
	h.ai_flags = (h.ai_flags & ~(AI_ADDRCONFIG | AI_CANONNAME | AI_V4MAPPED | AI_ALL |
				     AI_PASSIVE)) | AI_NUMERICHOST;
	h.ai_canonname = NULL;
	h.ai_addr = NULL;
	h.ai_next = NULL;
	rc = shim_real.getaddrinfo(family == AF_INET6 ? "::" : "0.0.0.0", service, &h, res);
	if (rc != 0)
		return rc;
	for (struct addrinfo *ai = *res; ai != NULL; ai = ai->ai_next) {
		unsigned port = sa_port(ai->ai_addr);
		memcpy(ai->ai_addr, &fake, sa_len((struct sockaddr *)&fake));
		sa_set_port(ai->ai_addr, port);
	}
	if (hints != NULL && (hints->ai_flags & AI_CANONNAME) && *res != NULL) {
		free((*res)->ai_canonname); /* glibc frees it apart from the list */
		(*res)->ai_canonname = strdup(node);
	}
	char where[SA_STR_MAX];
	shim_log(SHIM_LOG_DEBUG, "getaddrinfo %s -> %s (fake)", node,
		 sa_str((struct sockaddr *)&fake, where, sizeof(where)));
	return 0;
}

/*
 * A hostent in the caller's buffer: the name, no aliases, one address.
 * Returns 0 or ERANGE.
 */
static int hook_hostent(const char *name, int family, struct hostent *he, char *buf,
			size_t cap)
{
	struct sockaddr_storage fake;
	size_t alen = family == AF_INET6 ? 16 : 4, nlen = strlen(name) + 1;
	size_t need = 4 * sizeof(char *) + alen + nlen + sizeof(char *);
	char **ptrs;
	char *p;

	if (cap < need)
		return ERANGE;
	if (fakedns_addr(name, family, &fake) < 0)
		return ENOENT;
	/* pointers first: buf may be unaligned */
	p = buf + ((sizeof(char *) - ((uintptr_t)buf % sizeof(char *))) % sizeof(char *));
	ptrs = (char **)p;
	p += 3 * sizeof(char *);
	memcpy(p, family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&fake)->sin6_addr
				     : (void *)&((struct sockaddr_in *)&fake)->sin_addr, alen);
	ptrs[0] = NULL; /* aliases */
	ptrs[1] = p;    /* addr_list */
	ptrs[2] = NULL;
	memcpy(p + alen, name, nlen);
	he->h_name = p + alen;
	he->h_aliases = &ptrs[0];
	he->h_addrtype = family;
	he->h_length = (int)alen;
	he->h_addr_list = &ptrs[1];
	return 0;
}

SHIM_HOOK(gethostbyname2_r);
int stpify_gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
			    size_t buflen, struct hostent **result, int *h_errnop)
{
	if (!hook_active() || !hook_fake_name(name) || (af != AF_INET && af != AF_INET6))
		return shim_real.gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
	int rc = hook_hostent(name, af, ret, buf, buflen);
	*result = rc == 0 ? ret : NULL;
	if (h_errnop)
		*h_errnop = rc == 0 ? 0 : rc == ERANGE ? NETDB_INTERNAL : NO_RECOVERY;
	return rc;
}

SHIM_HOOK(gethostbyname_r);
int stpify_gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
			   struct hostent **result, int *h_errnop)
{
	if (!hook_active() || !hook_fake_name(name))
		return shim_real.gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
	return gethostbyname2_r(name, AF_INET, ret, buf, buflen, result, h_errnop);
}

static __thread struct hostent hook_he;
static __thread char hook_hebuf[STP_NAME_MAX + 128];

SHIM_HOOK(gethostbyname2);
struct hostent *stpify_gethostbyname2(const char *name, int af)
{
	if (!hook_active() || !hook_fake_name(name) || (af != AF_INET && af != AF_INET6))
		return shim_real.gethostbyname2(name, af);
	if (hook_hostent(name, af, &hook_he, hook_hebuf, sizeof(hook_hebuf)) != 0) {
		h_errno = NO_RECOVERY;
		return NULL;
	}
	return &hook_he;
}

SHIM_HOOK(gethostbyname);
struct hostent *stpify_gethostbyname(const char *name)
{
	if (!hook_active() || !hook_fake_name(name))
		return shim_real.gethostbyname(name);
	return gethostbyname2(name, AF_INET);
}

/* A fake address reads back as its name. */
SHIM_HOOK(getnameinfo);
int stpify_getnameinfo(const struct sockaddr *__restrict sa, socklen_t salen,
		       char *__restrict host, socklen_t hostlen, char *__restrict serv,
		       socklen_t servlen, int flags)
{
	char name[STP_NAME_MAX + 1];

	if (!hook_active() || host == NULL || hostlen == 0 || (flags & NI_NUMERICHOST) ||
	    !fakedns_name(sa, name, sizeof(name)))
		return shim_real.getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
	if (strlen(name) >= hostlen)
		return EAI_OVERFLOW;
	int rc = serv ? shim_real.getnameinfo(sa, salen, NULL, 0, serv, servlen,
					       flags | NI_NUMERICHOST) : 0;
	if (rc == 0)
		strcpy(host, name);
	return rc;
}
