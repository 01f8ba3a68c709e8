/*
 * servemap.c - application servers behind the proxy (`serve yes` /
 * STP_SERVE=1, docs/stpify.md): a program's listen() on a wildcard TCP
 * address, or bind() of a UDP socket to a wildcard address and a port,
 * also opens a bind on the proxy (stpd's LISTEN X'10', the same port when
 * it is free there, else any), so peers reach the unmodified server
 * through the proxy while it keeps its own socket and event loop.
 *
 * A thread per bind (inside the re-entry guard, so libstp's calls and
 * ours go to libc) holds the control connection. TCP: each announced
 * peer is taken on a new connection (ACCEPT X'11') and joined to a new
 * loopback connection to the program's own listening socket by a thread
 * of its own; accept() then reports the peer's real address, found by the
 * loopback connection's port. UDP: datagrams from each peer reach the
 * program from a loopback socket of that peer (up to SERVE_UDP_PEERS),
 * and the program's recvfrom()/recvmsg() report the real peer; what it
 * sends to a peer with sendto()/sendmsg() leaves the proxy from the bound
 * port (stp_listen_udp_sendto), as do answers on the loopback socket.
 * A served UDP socket the program connect()s to a peer (socat's
 * UDP-LISTEN, TFTP-style servers) is really connected to that peer's
 * loopback socket, so every send call without an address, sendmmsg()
 * included, goes back through the bind; getpeername() and recvfrom()
 * report the real peer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/sockaddr.h"
#include "shim/shim.h"

#define SERVE_PEERS     4096 /* loopback port -> real peer, for accept() */
#define SERVE_UDP_PEERS 64

static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint16_t port; /* our loopback end's port, 0: free */
	struct sockaddr_storage peer;
	struct sockaddr_storage bound; /* where the peer reached us on the proxy */
} peers[SERVE_PEERS];

/* Connections the program accepted from a proxy peer: fd -> the proxy's
 * address, what getsockname() reports (an RTSP server names it in its
 * Transport header; loopback would send the peer to itself). */
static struct {
	int fd; /* -1: free */
	struct sockaddr_storage bound;
} conns[SERVE_PEERS];
static bool conns_ready;

/* Open addressing from port % SERVE_PEERS; a full table overwrites the
 * home slot (that peer is then reported as loopback). */
static void peer_note(uint16_t port, const struct stp_addr *peer, const struct stp_addr *bound)
{
	pthread_mutex_lock(&peers_lock);
	unsigned home = port % SERVE_PEERS, i = home;
	for (unsigned k = 0; k < SERVE_PEERS; k++, i = (i + 1) % SERVE_PEERS)
		if (peers[i].port == 0 || peers[i].port == port)
			break;
	if (peers[i].port != 0 && peers[i].port != port)
		i = home;
	peers[i].port = port;
	memcpy(&peers[i].peer, &peer->sa, peer->salen);
	memset(&peers[i].bound, 0, sizeof(peers[i].bound));
	memcpy(&peers[i].bound, &bound->sa, bound->salen);
	pthread_mutex_unlock(&peers_lock);
}

bool servemap_peer(int fd, uint16_t port, struct sockaddr_storage *out)
{
	bool found = false;
	struct sockaddr_storage bound;
	pthread_mutex_lock(&peers_lock);
	unsigned i = port % SERVE_PEERS;
	for (unsigned k = 0; k < SERVE_PEERS; k++, i = (i + 1) % SERVE_PEERS) {
		if (peers[i].port == port) {
			*out = peers[i].peer;
			bound = peers[i].bound;
			peers[i].port = 0;
			found = true;
			break;
		}
	}
	if (found) {
		if (!conns_ready) {
			for (unsigned k = 0; k < SERVE_PEERS; k++)
				conns[k].fd = -1;
			conns_ready = true;
		}
		unsigned j = (unsigned)fd % SERVE_PEERS;
		for (unsigned k = 0; k < SERVE_PEERS; k++, j = (j + 1) % SERVE_PEERS) {
			if (conns[j].fd < 0 || conns[j].fd == fd) {
				conns[j].fd = fd;
				conns[j].bound = bound;
				break;
			}
		}
	}
	pthread_mutex_unlock(&peers_lock);
	return found;
}

bool servemap_sockname(int fd, struct sockaddr_storage *out)
{
	bool found = false;
	pthread_mutex_lock(&peers_lock);
	for (unsigned k = 0; conns_ready && k < SERVE_PEERS; k++) {
		if (conns[k].fd == fd) {
			*out = conns[k].bound;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&peers_lock);
	return found;
}

void servemap_drop(int fd)
{
	pthread_mutex_lock(&peers_lock);
	for (unsigned k = 0; conns_ready && k < SERVE_PEERS; k++)
		if (conns[k].fd == fd)
			conns[k].fd = -1;
	pthread_mutex_unlock(&peers_lock);
}

struct serve {
	struct stp_listen *l;
	int kind;
	struct sockaddr_storage app; /* the program's socket, as loopback */
	socklen_t applen;
	/* UDP: our per-peer loopback socket's port -> the real peer, for
	 * the program's recvfrom (under lock) */
	pthread_mutex_t lock;
	struct {
		uint16_t port;
		struct sockaddr_storage peer;
	} map[SERVE_UDP_PEERS];
};

/* The program's served UDP sockets (fd -> serve), for its sendto/recvfrom. */
#define SERVE_FDS 64
static pthread_mutex_t fds_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int fd;
	struct serve *sv;
} served[SERVE_FDS];
static int n_served;

static struct serve *served_udp(int fd)
{
	struct serve *sv = NULL;
	pthread_mutex_lock(&fds_lock);
	for (int i = 0; i < n_served; i++)
		if (served[i].fd == fd)
			sv = served[i].sv;
	pthread_mutex_unlock(&fds_lock);
	return sv;
}

static bool is_loopback(const struct sockaddr *sa)
{
	struct sockaddr_storage u;
	memcpy(&u, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						 : sizeof(struct sockaddr_in));
	sa_unmap(&u);
	if (u.ss_family == AF_INET)
		return ((struct sockaddr_in *)&u)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
	return u.ss_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&u)->sin6_addr);
}

ssize_t servemap_sendto(int fd, const void *buf, size_t n, const struct sockaddr *dst)
{
	enum stp_err err;
	if (dst == NULL || (dst->sa_family != AF_INET && dst->sa_family != AF_INET6) ||
	    is_loopback(dst))
		return -2;
	struct serve *sv = served_udp(fd);
	if (!sv)
		return -2;
	struct sockaddr_storage real;
	memcpy(&real, dst, dst->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						      : sizeof(struct sockaddr_in));
	sa_unmap(&real);
	shim_enter();
	ssize_t r = stp_listen_udp_sendto(sv->l, 0, buf, n, (struct sockaddr *)&real, &err);
	shim_leave();
	if (r < 0)
		errno = stp_err_errno(err);
	return r;
}

void servemap_fix_src(int fd, struct sockaddr *src, socklen_t *len)
{
	if (src == NULL || len == NULL || *len == 0 ||
	    (src->sa_family != AF_INET && src->sa_family != AF_INET6) || !is_loopback(src))
		return;
	struct serve *sv = served_udp(fd);
	if (!sv)
		return;
	uint16_t port = (uint16_t)sa_port(src);
	struct sockaddr_storage real;
	bool found = false;
	pthread_mutex_lock(&sv->lock);
	for (int i = 0; i < SERVE_UDP_PEERS; i++) {
		if (sv->map[i].port == port) {
			real = sv->map[i].peer;
			found = true;
		}
	}
	pthread_mutex_unlock(&sv->lock);
	struct sockaddr_storage view;
	socklen_t vlen;
	if (!found || shim_sa_to_family((struct sockaddr *)&real, src->sa_family, &view, &vlen) < 0)
		return;
	memcpy(src, &view, *len < vlen ? *len : vlen);
	*len = vlen;
}

bool servemap_connect(int fd, const struct sockaddr *sa, int *ret)
{
	if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    is_loopback(sa))
		return false;
	struct serve *sv = served_udp(fd);
	if (!sv)
		return false;
	struct sockaddr_storage want, lo;
	memcpy(&want, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						    : sizeof(struct sockaddr_in));
	sa_unmap(&want);
	uint16_t port = 0;
	pthread_mutex_lock(&sv->lock);
	for (int i = 0; i < SERVE_UDP_PEERS; i++)
		if (sv->map[i].port != 0 &&
		    sa_equal((struct sockaddr *)&sv->map[i].peer, (struct sockaddr *)&want))
			port = sv->map[i].port;
	lo = sv->app; /* loopback of the program's family */
	pthread_mutex_unlock(&sv->lock);
	if (port == 0)
		return false;
	sa_set_port((struct sockaddr *)&lo, port);
	*ret = shim_real.connect(fd, (struct sockaddr *)&lo, sv->applen);
	shim_log(SHIM_LOG_DEBUG, "serve: udp fd %d connected to a proxy peer via loopback port %u",
		 fd, port);
	return true;
}

struct serve_peer {
	struct serve *sv;
	struct stp_arrival a;
};

/* The program's socket seen from loopback: same family and port. */
static void app_addr(int fd, struct sockaddr_storage *out, socklen_t *len)
{
	*len = sizeof(*out);
	shim_real.getsockname(fd, (struct sockaddr *)out, len);
	if (out->ss_family == AF_INET)
		((struct sockaddr_in *)out)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)out)->sin6_addr = in6addr_loopback;
}

static void pump(int a, int b)
{
	int fds[2] = { a, b };
	bool eof[2] = { false, false };
	char *buf = malloc(65536);
	while (buf && (!eof[0] || !eof[1])) {
		struct pollfd p[2] = { { .fd = eof[0] ? -1 : a, .events = POLLIN },
				       { .fd = eof[1] ? -1 : b, .events = POLLIN } };
		if (shim_real.poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (!p[i].revents)
				continue;
			ssize_t n = shim_real.recv(fds[i], buf, 65536, 0);
			if (n <= 0) {
				eof[i] = true;
				shutdown(fds[1 - i], SHUT_WR);
				if (n < 0)
					goto out;
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = shim_real.send(fds[1 - i], buf + off, (size_t)(n - off),
							   MSG_NOSIGNAL);
				if (w <= 0)
					goto out;
				off += w;
			}
		}
	}
out:
	free(buf);
}

static void *tcp_peer(void *arg)
{
	struct serve_peer *p = arg;
	struct serve *sv = p->sv;
	enum stp_err err;
	shim_enter();
	int local = shim_real.socket(sv->app.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_storage me = sv->app;
	socklen_t len = sv->applen;
	sa_set_port((struct sockaddr *)&me, 0);
	if (local < 0 || shim_real.bind(local, (struct sockaddr *)&me, len) < 0 ||
	    shim_real.getsockname(local, (struct sockaddr *)&me, &len) < 0) {
		stp_listen_refuse(sv->l, &p->a, &err);
		goto out;
	}
	peer_note((uint16_t)sa_port((struct sockaddr *)&me), &p->a.peer,
		  stp_listen_bound(sv->l, 0));
	int fd = stp_listen_accept(sv->l, &p->a, shim_conf.timeout_ms, &err);
	if (fd < 0) {
		shim_log(SHIM_LOG_INFO, "serve: accept: %s", stp_strerror(err));
		goto out;
	}
	if (shim_real.connect(local, (struct sockaddr *)&sv->app, sv->applen) == 0)
		pump(fd, local);
	shim_real.close(fd);
out:
	if (local >= 0)
		shim_real.close(local);
	free(p);
	return NULL;
}

static void detach(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	if (pthread_create(&t, &attr, fn, arg) != 0)
		free(arg);
	pthread_attr_destroy(&attr);
}

static void *tcp_loop(void *arg)
{
	struct serve *sv = arg;
	enum stp_err err;
	shim_enter();
	for (;;) {
		struct serve_peer *p = calloc(1, sizeof(*p));
		if (!p)
			break;
		p->sv = sv;
		if (stp_listen_next(sv->l, &p->a, -1, &err) < 0) {
			free(p);
			shim_log(SHIM_LOG_ERROR, "serve: the proxy ended the bind: %s",
				 stp_strerror(err));
			break;
		}
		detach(tcp_peer, p);
	}
	return NULL; /* the listen object stays: peer threads may still use it */
}

struct udp_peer {
	int fd;
	struct sockaddr_storage peer;
	time_t used;
};

static void *udp_loop(void *arg)
{
	struct serve *sv = arg;
	struct udp_peer up[SERVE_UDP_PEERS];
	char *buf = malloc(65536);
	enum stp_err err;
	shim_enter();
	for (int i = 0; i < SERVE_UDP_PEERS; i++)
		up[i].fd = -1;
	while (buf) {
		struct pollfd p[1 + SERVE_UDP_PEERS];
		p[0] = (struct pollfd){ .fd = stp_listen_udp_fd(sv->l, 0), .events = POLLIN };
		for (int i = 0; i < SERVE_UDP_PEERS; i++)
			p[1 + i] = (struct pollfd){ .fd = up[i].fd, .events = POLLIN };
		if (shim_real.poll(p, 1 + SERVE_UDP_PEERS, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents) {
			struct stp_addr src;
			ssize_t n = stp_listen_udp_recvfrom(sv->l, 0, buf, 65536, &src, 0, &err);
			if (n >= 0 && src.salen > 0) {
				int k = -1, oldest = 0;
				for (int i = 0; i < SERVE_UDP_PEERS; i++) {
					if (up[i].fd >= 0 &&
					    sa_equal((struct sockaddr *)&up[i].peer,
						     (struct sockaddr *)&src.sa))
						k = i;
					if (up[i].fd < 0 || up[i].used < up[oldest].used)
						oldest = up[oldest].fd < 0 ? oldest : i;
				}
				if (k < 0) {
					k = oldest;
					if (up[k].fd >= 0)
						shim_real.close(up[k].fd);
					up[k].fd = shim_real.socket(sv->app.ss_family,
								    SOCK_DGRAM | SOCK_CLOEXEC, 0);
					if (up[k].fd >= 0 &&
					    shim_real.connect(up[k].fd, (struct sockaddr *)&sv->app,
							      sv->applen) < 0) {
						shim_real.close(up[k].fd);
						up[k].fd = -1;
					}
					memcpy(&up[k].peer, &src.sa, src.salen);
					struct sockaddr_storage me;
					socklen_t ml = sizeof(me);
					pthread_mutex_lock(&sv->lock);
					sv->map[k].port = 0;
					if (up[k].fd >= 0 &&
					    shim_real.getsockname(up[k].fd, (struct sockaddr *)&me,
								  &ml) == 0) {
						sv->map[k].port = (uint16_t)sa_port((struct sockaddr *)&me);
						memset(&sv->map[k].peer, 0, sizeof(sv->map[k].peer));
						memcpy(&sv->map[k].peer, &src.sa, src.salen);
					}
					pthread_mutex_unlock(&sv->lock);
				}
				if (up[k].fd >= 0) {
					up[k].used = time(NULL);
					shim_real.send(up[k].fd, buf, (size_t)n, 0);
				}
			} else if (n < 0 && err != STP_ERR_TIMEOUT) {
				break;
			}
		}
		for (int i = 0; i < SERVE_UDP_PEERS; i++) {
			if (up[i].fd < 0 || !p[1 + i].revents)
				continue;
			ssize_t n = shim_real.recv(up[i].fd, buf, 65536, MSG_DONTWAIT);
			if (n >= 0)
				stp_listen_udp_sendto(sv->l, 0, buf, (size_t)n,
						      (struct sockaddr *)&up[i].peer, &err);
		}
	}
	free(buf);
	return NULL;
}

/* Opens the bind (same port, else any) and its thread. */
static void serve_start(int fd, enum stp_bind_kind kind)
{
	struct serve *sv = calloc(1, sizeof(*sv));
	enum stp_err err;
	char text[STP_ADDR_STR_MAX];
	if (!sv)
		return;
	sv->kind = kind;
	pthread_mutex_init(&sv->lock, NULL);
	app_addr(fd, &sv->app, &sv->applen);
	struct stp_bind_spec spec = { .kind = kind,
				      .port = (uint16_t)sa_port((struct sockaddr *)&sv->app) };
	shim_enter();
	sv->l = stp_listen_open(&shim_conf.proxy, &spec, 1, shim_conf.timeout_ms, &err);
	if (!sv->l) {
		spec.port = 0;
		sv->l = stp_listen_open(&shim_conf.proxy, &spec, 1, shim_conf.timeout_ms, &err);
	}
	shim_leave();
	if (!sv->l) {
		shim_log(SHIM_LOG_ERROR, "serve: no bind on the proxy for fd %d: %s", fd,
			 stp_strerror(err));
		free(sv);
		return;
	}
	if (kind == STP_BIND_UDP) {
		pthread_mutex_lock(&fds_lock);
		if (n_served < SERVE_FDS) {
			served[n_served].fd = fd;
			served[n_served++].sv = sv;
		}
		pthread_mutex_unlock(&fds_lock);
	}
	shim_log(SHIM_LOG_INFO, "serve: %s fd %d reachable at %s",
		 kind == STP_BIND_TCP ? "tcp" : "udp", fd,
		 stp_addr_str(stp_listen_bound(sv->l, 0), text, sizeof(text)));
	detach(kind == STP_BIND_TCP ? tcp_loop : udp_loop, sv);
}

static bool wildcard(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == 0;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

void servemap_listen(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int family;
	if (!shim_conf.serve || !shim_conf.have_proxy ||
	    shim_sock_type(fd, &family) != SOCK_STREAM ||
	    shim_real.getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    !wildcard((struct sockaddr *)&ss))
		return;
	/* Remote peers queue at the proxy (binds' backlog); the serve threads
	 * then connect them over loopback all at once. With the program's own
	 * small backlog (python's http.server asks for 5) the overflowed
	 * handshakes hang for up to a minute in SYN-cookie and retransmit
	 * back-off: give the loopback side the kernel's maximum. */
	shim_real.listen(fd, SOMAXCONN);
	serve_start(fd, STP_BIND_TCP);
}

void servemap_bind(int fd, const struct sockaddr *sa)
{
	int family;
	if (!shim_conf.serve || !shim_conf.have_proxy || sa == NULL || !wildcard(sa) ||
	    sa_port(sa) == 0 || shim_sock_type(fd, &family) != SOCK_DGRAM)
		return;
	serve_start(fd, STP_BIND_UDP);
}
