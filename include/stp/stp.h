/*
 * stp.h - libstp, the client side of stp: reach a host through a SOCKS
 * proxy (SOCKS5 with RFC 1929 user/password, SOCKS4 and 4a).
 *
 * Three layers, each usable on its own:
 *   1. Proxy configuration: URL parsing, STP_PROXY / ALL_PROXY, NO_PROXY.
 *   2. A non-blocking handshake engine that drives CONNECT, BIND or
 *      UDP ASSOCIATE on a socket the caller owns (stp_handshake_*). It never
 *      blocks, never changes the socket's flags and never reads a byte past
 *      the proxy's reply: whatever follows belongs to the application.
 *   3. Blocking calls with deadlines built on the engine: stp_connect,
 *      stp_bind / stp_bind_accept, stp_udp_*.
 *
 * Every failure has its own enum stp_err value; stp_strerror() describes it
 * and stp_err_errno() gives the errno a socket call would have set. The
 * library never exits and never prints, except debug lines when
 * stp_set_debug(true) (or STP_DEBUG=1 in the environment) asks for them.
 *
 * See docs/client.md for the URL formats, the error table and examples.
 */
#ifndef STP_STP_H
#define STP_STP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */

enum stp_err {
	STP_OK = 0,
	/* proxy configuration */
	STP_ERR_URL_SCHEME,    /* not socks5:// socks5h:// socks4:// socks4a:// */
	STP_ERR_URL_USERINFO,  /* bad user:password (escape, length, ':' missing) */
	STP_ERR_URL_HOST,      /* empty, too long, or a bad [IPv6] literal */
	STP_ERR_URL_PORT,      /* not a number in 1..65535 */
	STP_ERR_URL_SYNTAX,    /* anything after host:port (a path, query, ...) */
	STP_ERR_NO_PROXY,      /* no proxy configured (STP_PROXY, ALL_PROXY unset) */
	/* reaching the proxy */
	STP_ERR_PROXY_RESOLVE, /* the proxy's host name does not resolve */
	STP_ERR_PROXY_UNREACHABLE, /* no address of the proxy accepted a connection */
	STP_ERR_PROXY_CLOSED,  /* the proxy closed the connection mid-handshake */
	STP_ERR_IO,            /* read or write failed on the proxy connection */
	STP_ERR_TIMEOUT,       /* the deadline passed */
	/* handshake */
	STP_ERR_PROTOCOL,      /* the proxy sent something that is not SOCKS */
	STP_ERR_NO_METHOD,     /* SOCKS5: no acceptable method (X'FF') */
	STP_ERR_AUTH_FAILED,   /* RFC 1929: user/password rejected */
	/* the target */
	STP_ERR_TARGET_NAME,   /* empty name, over 255 bytes, or holds a NUL */
	STP_ERR_TARGET_FAMILY, /* address family the protocol cannot carry (IPv6 via SOCKS4) */
	STP_ERR_TARGET_RESOLVE, /* local resolution failed (socks5:// and socks4:// resolve locally) */
	STP_ERR_UNSUPPORTED,   /* the protocol lacks the command (UDP via SOCKS4) */
	/* SOCKS5 replies X'01'..X'09' and any other non-zero code */
	STP_ERR_REP_GENERAL_FAILURE,  /* X'01' */
	STP_ERR_REP_NOT_ALLOWED,      /* X'02' */
	STP_ERR_REP_NET_UNREACHABLE,  /* X'03' */
	STP_ERR_REP_HOST_UNREACHABLE, /* X'04' */
	STP_ERR_REP_CONN_REFUSED,     /* X'05' */
	STP_ERR_REP_TTL_EXPIRED,      /* X'06' */
	STP_ERR_REP_CMD_NOT_SUPPORTED, /* X'07' */
	STP_ERR_REP_ATYP_NOT_SUPPORTED, /* X'08' */
	STP_ERR_REP_PTCL_NOT_SUPPORTED, /* X'09' (extension) */
	STP_ERR_REP_OTHER,            /* any other code; see stp_handshake.rep */
	/* SOCKS4 replies */
	STP_ERR_SOCKS4_REJECTED,       /* 91: rejected or failed */
	STP_ERR_SOCKS4_NO_IDENTD,      /* 92: identd unreachable */
	STP_ERR_SOCKS4_IDENT_MISMATCH, /* 93: identd disagrees with USERID */
	/* local */
	STP_ERR_INVALID,       /* bad argument */
	STP_ERR_NOMEM,
	STP_ERR_SYSTEM,        /* a system call failed; errno says which */
	STP_ERR_COUNT
};

/* Static text, e.g. "proxy refused: connection refused (X'05')". */
const char *stp_strerror(enum stp_err err);
/* The errno a failed connect() would report: X'05' -> ECONNREFUSED, ... */
int stp_err_errno(enum stp_err err);
/* The SOCKS5 reply code behind err (1..9), or 0 when err is not one. */
int stp_err_rep(enum stp_err err);

/* Debug lines (state changes, addresses) on stderr. */
void stp_set_debug(bool on);

/* ---------------------------------------------------------------------- */
/* Proxy configuration                                                      */

enum stp_proxy_kind {
	STP_SOCKS5,  /* socks5://  names resolved locally */
	STP_SOCKS5H, /* socks5h:// names sent to the proxy */
	STP_SOCKS4,  /* socks4://  IPv4 only, names resolved locally */
	STP_SOCKS4A, /* socks4a:// names sent to the proxy */
};

#define STP_DEFAULT_PORT 1080
#define STP_NAME_MAX 255

struct stp_proxy {
	enum stp_proxy_kind kind;
	char host[STP_NAME_MAX + 1]; /* name or address, IPv6 without brackets */
	uint16_t port;
	bool has_auth;               /* user (and pass) were given */
	char user[STP_NAME_MAX + 1]; /* percent-decoded; SOCKS4 sends it as USERID */
	char pass[STP_NAME_MAX + 1];
};

/* scheme://[user[:pass]@]host[:port][/]  ->  *out. 0, or -1 with *err. */
int stp_proxy_parse(struct stp_proxy *out, const char *url, enum stp_err *err);
/* STP_PROXY, else ALL_PROXY, else all_proxy. -1 with STP_ERR_NO_PROXY when
 * none is set (or set to the empty string). */
int stp_proxy_from_env(struct stp_proxy *out, enum stp_err *err);
/* The URL again, with the password left out (for log lines). */
const char *stp_proxy_str(const struct stp_proxy *p, char *out, size_t cap);
/* True when names are sent to the proxy (socks5h, socks4a). */
bool stp_proxy_remote_dns(const struct stp_proxy *p);

/* A NO_PROXY list: comma-separated entries, each
 *   '*'                 everything
 *   example.com         example.com and every name under it (curl's rule;
 *   .example.com        a leading dot means the same)
 *   192.0.2.7, ::1      exactly that address (brackets allowed: [::1])
 *   10.0.0.0/8, fe80::/10  addresses in that range
 * Names compare case-insensitively, a trailing dot ignored. Names are never
 * resolved: an address entry only matches an address literal. */
struct stp_noproxy;
/* NULL only when out of memory. Entries that cannot be read are skipped. */
struct stp_noproxy *stp_noproxy_new(const char *list);
/* NO_PROXY, else no_proxy; an empty list when neither is set. */
struct stp_noproxy *stp_noproxy_from_env(void);
void stp_noproxy_free(struct stp_noproxy *np);
/* host: a name or an address literal (IPv6 with or without brackets). */
bool stp_noproxy_match(const struct stp_noproxy *np, const char *host);
bool stp_noproxy_match_addr(const struct stp_noproxy *np, const struct sockaddr *sa);

/* ---------------------------------------------------------------------- */
/* Addresses the proxy reports (BND.ADDR, the BIND peer, UDP sources)       */

struct stp_addr {
	struct sockaddr_storage sa; /* valid when salen > 0 */
	socklen_t salen;
	char name[STP_NAME_MAX + 1]; /* set instead when the proxy sent a name */
	uint16_t port;
};

/* "1.2.3.4:80", "[::1]:80", "name:80". Returns out. */
const char *stp_addr_str(const struct stp_addr *a, char *out, size_t cap);
#define STP_ADDR_STR_MAX 320

/* ---------------------------------------------------------------------- */
/* The non-blocking handshake engine                                       */

enum stp_cmd {
	STP_CMD_CONNECT = 1,
	STP_CMD_BIND = 2,
	STP_CMD_UDP_ASSOCIATE = 3,
};

enum stp_step {
	STP_WANT_READ,  /* wait until the socket is readable, then step again */
	STP_WANT_WRITE, /* wait until the socket is writable, then step again */
	STP_BOUND,      /* BIND: first reply in, h->bound is where the proxy
			 * listens; step again (on readable) for the peer */
	STP_DONE,       /* h->bound (and for BIND h->peer) are set; the socket
			 * now carries the application's data */
	STP_ERROR,      /* h->err says why; h->sys_errno for STP_ERR_IO etc. */
};

#define STP_HS_BUF 640 /* the largest message: a SOCKS4a request, 8 + 256 + 256 */

/*
 * One handshake in progress. Embed it anywhere (no allocation); only the
 * fields marked "out" are for the caller, the rest is private.
 */
struct stp_handshake {
	enum stp_err err;      /* out: valid after STP_ERROR */
	int sys_errno;         /* out: errno behind STP_ERR_IO / PROXY_UNREACHABLE */
	uint8_t rep;           /* out: the reply code received (SOCKS5 or SOCKS4) */
	struct stp_addr bound; /* out: BND of the (first) reply */
	struct stp_addr peer;  /* out: BIND only, from the second reply */

	/* private */
	ssize_t (*io_send)(int fd, const void *buf, size_t len, int flags);
	ssize_t (*io_recv)(int fd, void *buf, size_t len, int flags);
	int fd;
	int state;
	int cmd;
	bool io_ok;            /* a byte went through: errors are no longer "unreachable" */
	struct stp_proxy proxy;
	uint8_t req[STP_HS_BUF]; /* the request, built at init */
	size_t req_len;
	uint8_t out[STP_HS_BUF]; /* the message being sent */
	size_t out_len, out_off;
	uint8_t in[STP_HS_BUF];  /* the message being received */
	size_t in_len;
};

/*
 * Prepares a handshake on fd, a stream socket connected or connecting
 * (non-blocking connect in progress) to the proxy. The target is either
 * host + port (host: a name or an address literal) or sa; pass the other
 * as NULL. For BIND the target is the expected peer, for UDP ASSOCIATE the
 * address the datagrams will come from (NULL/"0.0.0.0" and 0: unknown).
 * A name with socks5:// or socks4:// is resolved here with getaddrinfo,
 * which blocks: pass sa (or use socks5h / socks4a) to avoid that.
 * Returns 0, or -1 with *err.
 */
int stp_handshake_init(struct stp_handshake *h, const struct stp_proxy *proxy, int fd,
		       enum stp_cmd cmd, const char *host, uint16_t port,
		       const struct sockaddr *sa, enum stp_err *err);
/* Replaces send(2) and recv(2) for this handshake (call after init). For
 * an LD_PRELOAD library whose own send/recv are hooks: pass the real ones.
 * The engine always passes MSG_DONTWAIT (and MSG_NOSIGNAL to send). NULL
 * restores the libc function. */
void stp_handshake_set_io(struct stp_handshake *h,
			  ssize_t (*send_fn)(int fd, const void *buf, size_t len, int flags),
			  ssize_t (*recv_fn)(int fd, void *buf, size_t len, int flags));
/* Does as much as the socket allows without blocking. */
enum stp_step stp_handshake_step(struct stp_handshake *h);
/* The poll(2) events the last step asked for (POLLIN or POLLOUT), 0 when
 * the handshake is over. */
short stp_handshake_events(const struct stp_handshake *h);
/* Name of the current state, for logs. */
const char *stp_handshake_state(const struct stp_handshake *h);

/* ---------------------------------------------------------------------- */
/* Blocking calls. timeout_ms < 0 waits forever; the deadline covers every
 * step of the call (resolving the proxy excepted). Returned fds are
 * blocking and close-on-exec; the caller closes them.                    */

/* A TCP connection to the proxy, trying every address of its name. */
int stp_proxy_connect(const struct stp_proxy *proxy, int timeout_ms, enum stp_err *err);

/* CONNECT: an fd connected to host:port (or to sa when host is NULL)
 * through the proxy, or -1 with *err. */
int stp_connect(const struct stp_proxy *proxy, const char *host, uint16_t port,
		int timeout_ms, enum stp_err *err);
int stp_connect_sa(const struct stp_proxy *proxy, const struct sockaddr *sa, int timeout_ms,
		   enum stp_err *err);

/* BIND. stp_bind opens the listening side: b->bound is where the peer must
 * connect (an unspecified BND.ADDR is replaced with the proxy's address).
 * stp_bind_accept waits for the second reply and fills b->peer; b->fd then
 * carries the peer's data. host/port: the expected peer (NULL, 0: any). */
struct stp_bind {
	int fd;
	struct stp_addr bound;
	struct stp_addr peer;
	struct stp_handshake hs;
};
int stp_bind(struct stp_bind *b, const struct stp_proxy *proxy, const char *host, uint16_t port,
	     int timeout_ms, enum stp_err *err);
int stp_bind_accept(struct stp_bind *b, int timeout_ms, enum stp_err *err);
void stp_bind_close(struct stp_bind *b);

/* UDP ASSOCIATE. The association lives as long as its control connection;
 * datagrams go through a UDP socket connected to the proxy's relay. */
struct stp_udp;
struct stp_udp *stp_udp_open(const struct stp_proxy *proxy, int timeout_ms, enum stp_err *err);
/* Sends one datagram to host:port (a name or a literal) or to sa. Returns
 * len, or -1 with *err. */
ssize_t stp_udp_sendto(struct stp_udp *u, const void *buf, size_t len, const char *host,
		       uint16_t port, enum stp_err *err);
ssize_t stp_udp_sendto_sa(struct stp_udp *u, const void *buf, size_t len,
			  const struct sockaddr *sa, enum stp_err *err);
/* Waits up to timeout_ms for one datagram, strips the header, copies at
 * most cap bytes of payload and fills *src. Returns the payload length
 * copied; -1 with STP_ERR_TIMEOUT, or STP_ERR_PROXY_CLOSED when the proxy
 * ended the association. Datagrams with FRAG != 0 or a bad header are
 * dropped, as RFC 1928 section 7 says. */
ssize_t stp_udp_recvfrom(struct stp_udp *u, void *buf, size_t cap, struct stp_addr *src,
			 int timeout_ms, enum stp_err *err);
/* For event loops: the UDP socket and the control connection. */
int stp_udp_fd(const struct stp_udp *u);
int stp_udp_control_fd(const struct stp_udp *u);
/* Where datagrams go (the relay's address). */
const struct stp_addr *stp_udp_relay(const struct stp_udp *u);
void stp_udp_close(struct stp_udp *u);

/* The datagram header alone, for callers that own their UDP socket.
 * stp_udp_header writes RSV FRAG=0 ATYP ADDR PORT for host (a name or a
 * literal, sent as is) or sa into dst; returns its length, or 0 when it
 * does not fit or the target is bad. stp_udp_unwrap parses one and
 * returns the offset of the payload, or -1 (bad header, or FRAG != 0). */
#define STP_UDP_HDR_MAX 262
size_t stp_udp_header(uint8_t *dst, size_t cap, const char *host, uint16_t port,
		      const struct sockaddr *sa);
ssize_t stp_udp_unwrap(const uint8_t *p, size_t n, struct stp_addr *src);

#ifdef __cplusplus
}
#endif

#endif
