/*
 * shim.h - stpify's private interfaces: the real libc symbols, the
 * configuration and bypass policy, the fake-DNS table, the per-fd table,
 * and the three tunnels (TCP CONNECT, UDP ASSOCIATE, BIND).
 *
 * Threading: every table has its own lock; hooks copy what they need under
 * the lock and do I/O outside it. A thread-local guard (shim_enter/leave)
 * makes every hook a plain pass-through while stpify itself is working, so
 * libstp's own calls to connect/send/getaddrinfo never re-enter the shim.
 */
#ifndef STP_SHIM_SHIM_H
#define STP_SHIM_SHIM_H

#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "stp/stp.h"

/* ---- real symbols (realsym.c) ---- */

struct shim_real {
	int (*socket)(int, int, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*close)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*getaddrinfo)(const char *, const char *, const struct addrinfo *,
			   struct addrinfo **);
	void (*freeaddrinfo)(struct addrinfo *);
	struct hostent *(*gethostbyname)(const char *);
	struct hostent *(*gethostbyname2)(const char *, int);
	int (*gethostbyname_r)(const char *, struct hostent *, char *, size_t,
			       struct hostent **, int *);
	int (*gethostbyname2_r)(const char *, int, struct hostent *, char *, size_t,
				struct hostent **, int *);
	int (*getnameinfo)(const struct sockaddr *, socklen_t, char *, socklen_t, char *,
			   socklen_t, int);
};

extern struct shim_real shim_real;
/* The handshake engine's I/O (stp_handshake_set_io) on the real send and
 * recv, so libstp's handshake never re-enters our hooks. */
extern const struct stp_io shim_real_io;
/* Resolves every symbol once (pthread_once). */
void shim_init(void);

/* The re-entry guard: true while stpify's own code runs on this thread. */
bool shim_busy(void);
void shim_enter(void);
void shim_leave(void);

/* ---- logging (policy.c) ---- */

enum shim_level { SHIM_LOG_ERROR = 0, SHIM_LOG_INFO = 1, SHIM_LOG_DEBUG = 2 };
void shim_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- configuration and bypass decisions (policy.c) ---- */

#define SHIM_PROXY_ADDRS 8

struct shim_conf {
	bool have_proxy;
	struct stp_proxy proxy;
	/* the proxy's addresses, resolved once, then the served alternates' */
	struct sockaddr_storage proxy_sa[SHIM_PROXY_ADDRS];
	socklen_t proxy_salen[SHIM_PROXY_ADDRS];
	int proxy_naddr;
	struct stp_noproxy *noproxy;
	int log_level;
	bool bind;           /* map listen/accept onto SOCKS BIND */
	bool serve;          /* listen() / UDP bind() also open a proxy bind (servemap.c) */
	bool proxy_loopback; /* socksify loopback targets too */
	bool remote_dns;     /* fake DNS (default), else getaddrinfo passes through */
	int timeout_ms;      /* connect + handshake deadline */
	/* connected UDP sockets: TRANSPARENT X'04' first (SHIM_TP_YES), only
	 * when the proxy advertises it for UDP (SHIM_TP_AUTO), never (SHIM_TP_NO) */
	enum { SHIM_TP_NO, SHIM_TP_YES, SHIM_TP_AUTO } udp_transparent;
	uint32_t fake4_net, fake4_mask;  /* host order */
	uint8_t fake6_net[16];
	int fake6_prefix;
	/* The proxy's served configuration at launch (STPIFY_AUTOCONF, from
	 * the launcher): when set, its routes replace the loopback default.
	 * Decisions read shim_ac_current(), which replaces it after refresh. */
	struct stp_autoconf *autoconf;
};

extern struct shim_conf shim_conf;

/* ---- the served configuration over time (acrefresh.c) ---- */

/* ac (owned from now on) was fetched through asked just now. */
void shim_ac_init(struct stp_autoconf *ac, const struct stp_proxy *asked);
/* The document in use for a routing decision (NULL: none); once it is
 * older than its refresh, starts a fetch on a thread of its own. */
const struct stp_autoconf *shim_ac_current(void);
/* Reads STPIFY_CONFIG (if set), then the environment; once. */
void shim_conf_load(void);
/* True when a connection or datagram to sa must go direct. */
bool shim_policy_bypass_sa(const struct sockaddr *sa);
/* True when a name must be resolved locally (NO_PROXY, localhost, ...). */
bool shim_policy_bypass_name(const char *name);
/* The proxy address to use from a socket of this family (an IPv6 socket
 * without IPV6_V6ONLY also reaches an IPv4 proxy, mapped). 0, or -1 with
 * EAFNOSUPPORT when no address of the proxy is reachable from it. */
int shim_policy_proxy_addr(int family, bool v6only, struct sockaddr_storage *out,
			   socklen_t *len);
/* The nth (from 0) of all the proxy's addresses, in the order
 * shim_connect_proxy tries them from a socket of family (v6only: with
 * IPV6_V6ONLY): those of its family first, in the resolver's order, then
 * the others. 0 when that socket reaches it (*out in its family, IPv4
 * mapped for a dual-stack IPv6 socket), 1 when only a dual-stack IPv6
 * socket does (*out in AF_INET6 form), -1 (EAFNOSUPPORT) past the last. */
int shim_policy_proxy_addr_at(int family, bool v6only, int nth, struct sockaddr_storage *out,
			      socklen_t *len);
/* The proxy as the handshake should see it: names always go to the proxy. */
void shim_policy_proxy_for_name(struct stp_proxy *out);

/* ---- fake DNS (fakedns.c) ---- */

void fakedns_init(void);
/* The fake address for name (allocated if new), in family AF_INET or
 * AF_INET6. 0, or -1 when the table cannot be used. */
int fakedns_addr(const char *name, int family, struct sockaddr_storage *out);
/* True when sa is in a fake range; copies the name (if known) to name. */
bool fakedns_is_fake(const struct sockaddr *sa);
bool fakedns_name(const struct sockaddr *sa, char *name, size_t cap);
/* After fork in the child: the shared table's lock is process-shared. */

/* ---- per-fd state (fdtab.c) ---- */

enum shim_fd_kind {
	SHIM_FD_TCP = 1,  /* a tunnelled TCP connection (or one that failed) */
	SHIM_FD_UDP,      /* a UDP socket with an association */
	SHIM_FD_BIND,     /* a listening socket mapped onto SOCKS BIND */
};

struct shim_fd {
	int refs;         /* fds sharing this state (dup, dup2) */
	int kind;
	struct sockaddr_storage peer; /* what the application connected to */
	socklen_t peerlen;
	int pending_err;  /* TCP: SO_ERROR to report once */
	/* UDP */
	int ctl;          /* internal fd: the association's control connection */
	struct sockaddr_storage relay;
	socklen_t relaylen;
	bool udp_connected;
	bool transparent;    /* the association is TRANSPARENT X'04' to peer: no header */
	bool no_transparent; /* the proxy refused it for this socket: UDP ASSOCIATE */
	bool tunnel;         /* the association is a tunnel X'20' to tunnel_far */
	struct sockaddr_storage tunnel_far;
	struct sockaddr_storage last_fake; /* last fake-DNS destination sent to */
	unsigned gss_id; /* GSS-API levels 1, 2: the context sealing datagrams (gssdgram.c) */
	/* BIND */
	struct stp_handshake *hs;
	struct stp_addr bound;
	bool bind_done;
	/* The socket was replaced by a dual-stack IPv6 one (sockswap.c):
	 * the family and IPV6_V6ONLY the application created it with, and
	 * (UDP) the address it had bound, port 0 when none. */
	int app_family;   /* 0: not replaced */
	/* TCP: fd is a socketpair end served by a libstp thread (a
	 * multiplexed stream, or GSS-API's relay): TCP and IP options are
	 * accepted and ignored (preload.c), as there is no TCP socket. */
	bool relayed;
	bool app_v6only;
	struct sockaddr_storage app_local;
};

#define SHIM_FD_MAX 65536

/* Fast check used by the hot hooks: does stpify track fd at all? */
bool fdtab_tracked(int fd);
bool fdtab_internal(int fd);
void fdtab_set_internal(int fd, bool on);
/* A copy of fd's state; false if untracked. */
bool fdtab_get(int fd, struct shim_fd *out);
/* Stores a new state for fd (replacing any). */
void fdtab_put(int fd, const struct shim_fd *st);
/* Runs fn on fd's state under the lock. */
void fdtab_update(int fd, void (*fn)(struct shim_fd *, void *), void *arg);
/* Forgets fd; returns the control fd to close when the last ref went, or -1. */
int fdtab_drop(int fd);
/* newfd now shares oldfd's state. */
void fdtab_dup(int oldfd, int newfd);
/* Moves an internal fd out of the way of an application's dup2 target. */
int fdtab_evacuate(int fd);
void fdtab_atfork_prepare(void);
void fdtab_atfork_parent(void);
void fdtab_atfork_child(void);

/* ---- TCP CONNECT (nbconnect.c) ---- */

/* connect(fd, sa) through the proxy; returns what connect() returns. */
int tcp_connect_via_proxy(int fd, const struct sockaddr *sa, socklen_t salen);

/* ---- GSS-API sealed datagrams (gssdgram.c) ---- */

struct stp_conn;
/* Keeps c (client_gss_associate_fd's context): its id, or 0 (c freed). */
unsigned gssdgram_add(struct stp_conn *c);
/* Frees id's context (0: none). */
void gssdgram_drop(unsigned id);
/* Seals (seal) or unseals one datagram with id's context: the length in
 * out, or -1 with errno (ENOTCONN: the association is gone; EMSGSIZE: too
 * big, or for unsealing: does not unwrap, a replay, a downgrade). */
ssize_t gssdgram_seal(unsigned id, bool seal, const uint8_t *p, size_t len, uint8_t *out,
		      size_t cap);
void gssdgram_atfork_prepare(void);
void gssdgram_atfork_parent(void);
void gssdgram_atfork_child(void);

/* ---- UDP ASSOCIATE (udpassoc.c) ---- */

/* For fd (an INET datagram socket) and destination sa (NULL: the
 * recorded peer), returns true when the datagram must go through the
 * association. */
bool udp_wants_proxy(int fd, const struct sockaddr *sa);
int udp_connect(int fd, const struct sockaddr *sa, socklen_t len);
ssize_t udp_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t udp_recvmsg(int fd, struct msghdr *msg, int flags);

/* ---- UDP through a tunnel (udptunnel.c) ---- */

/* The `tunnel` setting: "[dtls|tls://][USER[:PASS]@]HOST:PORT [DEST...]"
 * (DEST in NO_PROXY's syntax; none: every proxied destination). 0, or -1
 * (logged with where; the tunnel is then off). */
int shim_tunnel_conf(const char *val, const char *where);
bool shim_tunnel_on(void);
/* Does a datagram to dst (a proxied destination) go through the tunnel? */
bool shim_tunnel_wants(const struct sockaddr *dst);
/* Turns h (initialised for UDP ASSOCIATE) into X'20' toward far (a fake
 * address: its name). 0, or -1 with *err. */
int shim_tunnel_request(struct stp_handshake *h, const struct sockaddr *far, enum stp_err *err);
/* "dtls://USER@HOST:PORT" (no password) or "off", for the log. */
void shim_tunnel_describe(char *out, size_t cap);

/* ---- BIND (bindmap.c) ---- */

bool bindmap_wants(int fd);
int bindmap_listen(int fd);
int bindmap_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags);

/* ---- application servers (servemap.c) ---- */

/* After a successful listen(): a wildcard TCP listener also gets a bind on
 * the proxy. After a successful bind() of a UDP socket to a wildcard
 * address and a port: the same for datagrams. */
void servemap_listen(int fd);
void servemap_bind(int fd, const struct sockaddr *sa);
/* A served UDP socket sending to a (non-loopback) peer: the datagram goes
 * out of the proxy's bound port. The count, -1 with errno, or -2 when fd
 * is not served or dst is not a peer (the caller sends as usual). */
ssize_t servemap_sendto(int fd, const void *buf, size_t n, const struct sockaddr *dst);
/* A datagram a served UDP socket got from one of our loopback sockets:
 * *src becomes the real peer. */
void servemap_fix_src(int fd, struct sockaddr *src, socklen_t *len);
/* connect() of a served UDP socket to a peer that has sent to it: the
 * socket is connected to that peer's loopback socket instead, so send(),
 * write(), sendmsg() and sendmmsg() without an address reach the peer
 * through the bind, and only its datagrams are received. true when
 * handled (*ret is connect()'s result, errno set); false: not served, or
 * a peer not heard from (connect() goes the usual way). */
bool servemap_connect(int fd, const struct sockaddr *sa, int *ret);
/* The real peer behind our loopback connection from `port` (once); the
 * accepted fd then reports the proxy's address as its own (below). */
bool servemap_peer(int fd, uint16_t port, struct sockaddr_storage *out);
/* An accepted connection from a proxy peer: the proxy's address. */
bool servemap_sockname(int fd, struct sockaddr_storage *out);
void servemap_drop(int fd);

/* ---- replacing a socket that cannot reach the proxy (sockswap.c) ---- */

/* A new dual-stack AF_INET6 socket of fd's type and protocol, with fd's
 * socket options (those listed in sockswap.c), non-blocking and
 * close-on-exec until installed. The new fd, or -1 with errno. */
int sockswap_open(int fd, int type);
/* Binds nfd to [::]:port while fd still holds port (0: any port). */
int sockswap_bind_port(int fd, int nfd, unsigned port);
/* dup3()s nfd over fd with fd's file status flags and close-on-exec,
 * then closes nfd. 0, or -1 with errno (fd is left as it was). */
int sockswap_install(int nfd, int fd);
/* True when fd (as it is now) can exchange packets with sa. */
bool sockswap_reaches(int fd, const struct sockaddr *sa);
/* IPV6_V6ONLY of fd; false for an AF_INET socket. */
bool sockswap_v6only(int fd);
/* real (an address of the replacement) as the application's family
 * sees it. 0 or -1. */
int sockswap_view(const struct sockaddr *real, int family, struct sockaddr_storage *out,
		  socklen_t *len);

/* ---- sendmmsg/recvmmsg (mmsg.c) ---- */

extern bool mmsg_filtered; /* the raw syscalls fail with ENOSYS */
void mmsg_install(void);

/* ---- helpers (nbconnect.c) ---- */

/* Connects fd (blocking or not; its flags are left alone) to the first of
 * the proxy's addresses it reaches that accepts (shim_policy_proxy_addr_at's
 * order), waiting until the deadline. 0, or -1 with errno. */
int shim_connect_proxy(int fd, int64_t deadline);
/* Runs a handshake to the end with the real poll. */
enum stp_step shim_handshake_run(struct stp_handshake *h, int64_t deadline);
int64_t shim_deadline(int timeout_ms);
int shim_remaining(int64_t deadline);
/* SOCK_STREAM / SOCK_DGRAM of fd, and its family; -1 when not a socket. */
int shim_sock_type(int fd, int *family);
/* sa converted to family (IPv4 <-> IPv4-mapped IPv6). 0 or -1. */
int shim_sa_to_family(const struct sockaddr *sa, int family, struct sockaddr_storage *out,
		      socklen_t *len);

#endif
