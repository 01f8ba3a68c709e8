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
	/* TLS proxies (socks5+tls://, socks5s://; docs/client.md, docs/tls.md).
	 * stp_err_detail() adds OpenSSL's reason to the last of these. */
	STP_ERR_URL_OPTION,    /* unknown or bad ?option, or one a plain proxy cannot use */
	STP_ERR_TLS_CONFIG,    /* ca=, cert= or key= file does not load */
	STP_ERR_TLS_HANDSHAKE, /* the TLS handshake with the proxy failed */
	STP_ERR_TLS_UNTRUSTED, /* the proxy's certificate does not verify (expired, unknown CA) */
	STP_ERR_TLS_NAME,      /* the proxy's certificate is for another name */
	STP_ERR_TLS_NEEDS_CONN, /* a TLS proxy given to the fd-level handshake engine */
	STP_ERR_TLS_UDP_NAKED, /* UDP through a TLS proxy without udp-naked=1 */
	/* multicast (stp_mcast_*, docs/mcast.md): JOIN refusals, then the
	 * notices that end a membership */
	STP_ERR_MCAST_NO_SEND,   /* X'B0': receive only, and STP_MCAST_SEND was asked for */
	STP_ERR_MCAST_NO_RECV,   /* X'B1': send only, and STP_MCAST_RECV was asked for */
	STP_ERR_MCAST_REFUSED,   /* X'B2': neither sending nor receiving allowed */
	STP_ERR_MCAST_NOT_GROUP, /* X'B6': not a multicast address */
	STP_ERR_MCAST_BANDWIDTH, /* notice X'B3': the group went over its bandwidth */
	STP_ERR_MCAST_TIME,      /* notice X'B4': the membership's time limit */
	STP_ERR_MCAST_IDLE,      /* notice X'B5': the relay saw no packet for too long */
	/* GSS-API proxies (socks5+gssapi://; method X'01', RFC 1961).
	 * stp_err_detail() adds the GSS-API status text. */
	STP_ERR_GSS_CREDENTIALS, /* no usable ticket here (kinit), or the KDC refused */
	STP_ERR_GSS_REFUSED,     /* the proxy refused the context (X'01' X'FF') */
	STP_ERR_GSS_PROTECTION,  /* the proxy chose less protection than asked, or wrap failed */
	/* client auto-configuration (stp_autoconf_*, CMD X'F4') */
	STP_ERR_AUTOCONF,        /* the configuration document is malformed or of another version */
	/* binds for application servers (stp_listen_*, docs/client.md) */
	STP_ERR_BIND_NO_ARRIVAL, /* X'0A': ACCEPT of an arrival that is gone (or not ours) */
	STP_ERR_BIND_LIMIT,      /* X'0B': over the proxy's per-control-connection limits */
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
#define STP_PATH_MAX 1024

/* TLS to the proxy: the scheme picks the mode, ?options the rest.
 *   socks5+tls:// socks5h+tls:// socks4+tls:// socks4a+tls://  STP_TLS_WRAP
 *   socks5s://    socks5hs://                                  STP_TLS_X86
 *   ?ca=FILE  cert=FILE&key=FILE  insecure=1  sni=NAME  udp-naked=1
 * The certificate is verified by default (system CA store without ca=),
 * against the proxy's host (or sni=NAME). */
enum stp_tls_mode {
	STP_TLS_NONE,  /* plain TCP */
	STP_TLS_WRAP,  /* SOCKS inside TLS from the first byte ("tls on" listener) */
	STP_TLS_X86,   /* method X'86': TLS negotiated inside SOCKS5 (seed 004) */
};

struct stp_tls_opts {
	enum stp_tls_mode mode;
	bool insecure;               /* insecure=1: no certificate verification */
	bool udp_naked;              /* udp-naked=1: UDP allowed (datagrams outside TLS) */
	char sni[STP_NAME_MAX + 1];  /* "" : the proxy's host when it is a name */
	char ca[STP_PATH_MAX];       /* "" : the system CA store */
	char cert[STP_PATH_MAX];     /* client certificate (PEM), "" : none */
	char key[STP_PATH_MAX];
};

/* GSS-API to the proxy (method X'01', RFC 1961; docs/client.md), with the
 * user's Kerberos credential cache (KRB5CCNAME, kinit):
 *   socks5+gssapi://  socks5h+gssapi://
 *   ?gss-service=NAME       host-based service (default "rcmd@HOST", as curl
 *                           and Dante) or a Kerberos principal with a '/'
 *   gss-protection=LEVEL    none, integrity or confidentiality (the default):
 *                           the least the proxy may choose
 *   gss-mech=krb5|spnego    the mechanism (default krb5) */
enum stp_gss_level { STP_GSS_NONE = 0, STP_GSS_INTEGRITY = 1, STP_GSS_CONF = 2 };

struct stp_gss_opts {
	bool on;
	enum stp_gss_level level;
	bool spnego;
	char service[STP_NAME_MAX + 1]; /* "" : rcmd@HOST */
};

struct stp_proxy {
	enum stp_proxy_kind kind;
	char host[STP_NAME_MAX + 1]; /* name or address, IPv6 without brackets */
	uint16_t port;
	bool has_auth;               /* user (and pass) were given */
	char user[STP_NAME_MAX + 1]; /* percent-decoded; SOCKS4 sends it as USERID */
	char pass[STP_NAME_MAX + 1];
	struct stp_tls_opts tls;     /* TLS to the proxy (mode STP_TLS_NONE: plain) */
	struct stp_gss_opts gss;     /* GSS-API to the proxy (on: method X'01') */
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
	STP_CMD_AUTOCONFIG = 0xF4, /* stp's "get configuration": use stp_autoconf_fetch */
	STP_CMD_RESOLVE = 0xF0, /* Tor's RESOLVE: BND of the reply is the name's address
				 * (SOCKS5 only; the proxy closes after it) */
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

/*
 * The I/O a handshake runs on: send(2) and recv(2) by default. Each call
 * gets ctx back, so a hook finds its own state (a TLS connection, a
 * table of real libc functions) without a global or a thread-local.
 * The engine always passes MSG_DONTWAIT (and MSG_NOSIGNAL to send); a hook
 * returns what send/recv would, errno included (EAGAIN: try again later).
 */
struct stp_io {
	ssize_t (*send_fn)(void *ctx, int fd, const void *buf, size_t len, int flags);
	ssize_t (*recv_fn)(void *ctx, int fd, void *buf, size_t len, int flags);
	void *ctx;
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
	struct stp_io io;      /* send/recv under the engine (stp_handshake_set_io) */
	int fd;
	int state;
	int cmd;
	bool io_ok;            /* a byte went through: errors are no longer "unreachable" */
	uint8_t pipe;          /* pipelined: 1 + the one method offered; 0: not (fills
				  padding, the layout of libstp.so.2 is unchanged) */
	uint8_t pipe_mode;     /* the TLS mode the engine runs inside (the pipelining
				  cache's key; padding too) */
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
/* Replaces send(2) and recv(2) for this handshake (call after init): a
 * TLS layer, or an LD_PRELOAD library whose own send/recv are hooks and
 * which passes the real ones. *io is copied. NULL, or a NULL function in
 * it, restores the libc function. (Before soname libstp.so.1 the hooks
 * took no ctx.) */
void stp_handshake_set_io(struct stp_handshake *h, const struct stp_io *io);
/* TRANSPARENT (CMD X'04') with this engine: after stp_handshake_init with
 * STP_CMD_CONNECT and the target, turns the request into X'04' with PTCL
 * (STP_PTCL_UDP, STP_PTCL_TCP) and the source src (its address and port)
 * after DST.PORT. The reply is read as CONNECT's; h->bound is then where
 * the plain packets go. 0, or -1 with *err (STP_ERR_UNSUPPORTED for SOCKS4,
 * STP_ERR_INVALID for a bad source). */
int stp_handshake_transparent(struct stp_handshake *h, int ptcl, const struct sockaddr *src,
			      enum stp_err *err);
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

/* Multiplexing (CMD X'30', docs/protocol.md 5.11, docs/client.md): one
 * connection to the proxy, switched to HTTP/2, carries many streams.
 * stp_mux_open connects and authenticates (plain socks5:// or socks5h://,
 * method X'00' or X'02'; else STP_ERR_UNSUPPORTED) and starts a thread
 * that runs the connection; a refusal is STP_ERR_REP_OTHER (X'0E') or
 * STP_ERR_REP_CMD_NOT_SUPPORTED (a server without multiplexing).
 * stp_mux_connect opens one stream to host:port (a name goes to the proxy)
 * and returns a socket (one end of a socketpair: blocking, close-on-exec)
 * carrying the target's bytes, or -1 with *err (the proxy's socks-rep as
 * STP_ERR_REP_*; STP_ERR_TIMEOUT, also while the proxy's max-streams are
 * all open). shutdown(SHUT_WR) on it ends our side of the stream, close()
 * resets it. Thread-safe. stp_mux_close ends every stream and the
 * connection. */
struct stp_mux;
struct stp_mux *stp_mux_open(const struct stp_proxy *proxy, int timeout_ms, enum stp_err *err);
int stp_mux_connect(struct stp_mux *m, const char *host, uint16_t port, int timeout_ms,
		    enum stp_err *err);
void stp_mux_close(struct stp_mux *m);

/* BIND. stp_bind opens the listening side: b->bound is where the peer must
 * connect (an unspecified BND.ADDR is replaced with the proxy's address).
 * stp_bind_accept waits for the second reply and fills b->peer; b->fd then
 * carries the peer's data. host/port: the expected peer (NULL, 0: any). */
struct stp_bind {
	int fd;
	struct stp_addr bound;
	struct stp_addr peer;
	struct stp_handshake hs;
	struct stp_conn *conn;  /* TLS proxies: the connection until accept (private) */
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

/* SETUP_UDP_TUNNEL (CMD X'20', docs/protocol.md 5.10, docs/client.md): the
 * proxy carries this association's datagrams through another stpd
 * (remote_host:remote_port, a TLS listener there) to one far endpoint, over
 * DTLS (STP_TUNNEL_DTLS) or TLS (STP_TUNNEL_TLS) between the two servers.
 * The proxy presents user/password to the remote stpd (both NULL: none),
 * or, with client_cert, its own configured certificate. The result is a
 * UDP association: stp_udp_sendto to any address goes to the far
 * endpoint, stp_udp_recvfrom gives its replies, stp_udp_close ends the
 * tunnel on both servers. Far-side failures: STP_ERR_REP_OTHER with the
 * reply X'0C' (the servers did not authenticate) or X'0D' (the remote
 * refused) in stp_err_detail(); the remote unreachable: X'03'..X'05'.
 * The whole request must fit in STP_HS_BUF bytes (else STP_ERR_INVALID). */
#define STP_TUNNEL_DTLS 1
#define STP_TUNNEL_TLS 2
struct stp_tunnel_opts {
	const char *remote_host;
	uint16_t remote_port;
	int transport;
	const char *user, *password;
	bool client_cert;
	const char *far_host;
	uint16_t far_port;
};
struct stp_udp *stp_tunnel_open(const struct stp_proxy *proxy, const struct stp_tunnel_opts *o,
				int timeout_ms, enum stp_err *err);
/* The same request with the handshake engine, for a UDP socket of the
 * caller's own (stpify): after stp_handshake_init with
 * STP_CMD_UDP_ASSOCIATE (DST: the socket's address, as for ASSOCIATE),
 * turns the request into X'20' with o. The reply is read as ASSOCIATE's:
 * h->bound is where datagrams go, each with the RFC 1928 section 7 header
 * (its DST is not used), and replies come from o's far endpoint. 0, or -1
 * with *err (STP_ERR_INVALID: o incomplete, or too long). */
int stp_handshake_tunnel(struct stp_handshake *h, const struct stp_tunnel_opts *o,
			 enum stp_err *err);

/* TRANSPARENT (CMD X'04', seed 003; docs/client.md). The proxy relays
 * plain, unsocksified PTCL packets between one source address and port and
 * the target: no header on datagrams, a plain TCP connection for TCP.
 * stp_transparent_open makes the data socket (UDP for STP_PTCL_UDP, TCP
 * for STP_PTCL_TCP) on `src` (NULL: the control connection's local
 * address, a port the kernel picks), declares it as S.ADDR:S.PORT, and
 * connects it to the BND the proxy answers (an unspecified BND means the
 * proxy's address). The target is host:port (a name or a literal) or sa.
 * What is written on stp_transparent_fd reaches the target as it is. The
 * association lives as long as the control connection: the proxy ends it
 * when stp_transparent_close closes it, and may end it itself (for TCP
 * when the target sends FIN; stpd then closes the control connection).
 * A proxy without TRANSPARENT answers X'07' (STP_ERR_REP_CMD_NOT_SUPPORTED),
 * one that does not relay the PTCL X'09'. Returns NULL with *err. */
#define STP_PTCL_TCP 6
#define STP_PTCL_UDP 17
struct stp_transparent;
struct stp_transparent *stp_transparent_open(const struct stp_proxy *proxy, int ptcl,
					     const char *host, uint16_t port,
					     const struct sockaddr *sa, const struct sockaddr *src,
					     int timeout_ms, enum stp_err *err);
/* The data socket (blocking): connected to BND, from the declared source. */
int stp_transparent_fd(const struct stp_transparent *t);
/* The control connection: readable with EOF when the proxy ended it. */
int stp_transparent_control_fd(const struct stp_transparent *t);
/* BND: where the data socket sends. */
const struct stp_addr *stp_transparent_bound(const struct stp_transparent *t);
/* Closes the data socket and the control connection (the association). */
void stp_transparent_close(struct stp_transparent *t);

/* The datagram header alone, for callers that own their UDP socket.
 * stp_udp_header writes RSV FRAG=0 ATYP ADDR PORT for host (a name or a
 * literal, sent as is) or sa into dst; returns its length, or 0 when it
 * does not fit or the target is bad. stp_udp_unwrap parses one and
 * returns the offset of the payload, or -1 (bad header, or FRAG != 0). */
#define STP_UDP_HDR_MAX 262
size_t stp_udp_header(uint8_t *dst, size_t cap, const char *host, uint16_t port,
		      const struct sockaddr *sa);
ssize_t stp_udp_unwrap(const uint8_t *p, size_t n, struct stp_addr *src);

/* ---------------------------------------------------------------------- */
/* Connections: CONNECT through any proxy, TLS ones included.              */
/*
 * Through a TLS proxy the socket carries TLS records, so the application
 * cannot use it for data: it reads and writes through the connection
 * object instead (plain proxies work the same way, with no TLS). The fd is
 * for poll(2) only. Also, with a TLS proxy:
 *   - stp_connect / stp_connect_sa return one end of a socketpair(AF_UNIX)
 *     whose other end a detached relay thread joins to the TLS connection;
 *   - stp_bind / stp_bind_accept work the same way (b->fd is the socketpair
 *     once the peer is in);
 *   - stp_udp_open needs udp-naked=1 (the datagrams are plain RFC 1928
 *     UDP; TLS protects only the control connection).
 */
struct stp_conn;
/* CONNECT to host:port (or sa when host is NULL). NULL with *err. */
struct stp_conn *stp_conn_open(const struct stp_proxy *proxy, const char *host, uint16_t port,
			       int timeout_ms, enum stp_err *err);
struct stp_conn *stp_conn_open_sa(const struct stp_proxy *proxy, const struct sockaddr *sa,
				  int timeout_ms, enum stp_err *err);
/* Blocking by default; non-blocking calls return -1 with errno EAGAIN and
 * stp_conn_events() says what to poll the fd for. The fd's own flags are
 * never used. */
void stp_conn_set_nonblocking(struct stp_conn *c, bool on);
/* Up to cap bytes of the target's data: > 0, 0 at its end (close_notify or
 * FIN), -1 with *err (errno EAGAIN when non-blocking and nothing is in). */
ssize_t stp_conn_read(struct stp_conn *c, void *buf, size_t cap, enum stp_err *err);
/* Takes all len bytes (TLS: encrypted and queued, then sent as the socket
 * allows). Returns len, or -1 with *err (errno EAGAIN: the queue is full;
 * poll for stp_conn_events() and call again). */
ssize_t stp_conn_write(struct stp_conn *c, const void *buf, size_t len, enum stp_err *err);
/* Sends what is queued. 1 all sent, 0 some left (non-blocking), -1 error. */
int stp_conn_flush(struct stp_conn *c, enum stp_err *err);
/* Ends our direction: TLS close_notify (X'86': in an X'04' frame), plain:
 * shutdown(SHUT_WR). The target's data can still be read. */
int stp_conn_shutdown(struct stp_conn *c, enum stp_err *err);
int stp_conn_fd(const struct stp_conn *c);
/* POLLIN, plus POLLOUT while ciphertext waits to be sent. */
short stp_conn_events(const struct stp_conn *c);
/* True when data is already decrypted: read it before polling again. */
bool stp_conn_pending(const struct stp_conn *c);
/* BND of the reply (the proxy's address toward the target). */
const struct stp_addr *stp_conn_bound(const struct stp_conn *c);
/* The negotiated TLS version and cipher ("" for plain proxies). */
const char *stp_conn_tls_version(const struct stp_conn *c);
const char *stp_conn_tls_cipher(const struct stp_conn *c);
/* Orderly close (close_notify if not sent yet), frees c. NULL is fine. */
void stp_conn_close(struct stp_conn *c);
/* netcat's loop: in_fd -> c and c -> out_fd (in_fd may equal out_fd)
 * until both directions end. in_fd's EOF becomes stp_conn_shutdown; the
 * target's end becomes shutdown(out_fd, SHUT_WR), or close(out_fd) when
 * out_fd is not a socket. Returns 0, or -1 with *err. Does not close c. */
int stp_conn_relay(struct stp_conn *c, int in_fd, int out_fd, enum stp_err *err);

/* ---------------------------------------------------------------------- */
/* Look-ups through the proxy (docs/protocol.md 5.3, 5.4; SOCKS5 only:
 * STP_ERR_UNSUPPORTED for a socks4 URL). A proxy without the command
 * answers STP_ERR_REP_CMD_NOT_SUPPORTED; a name that does not resolve is
 * STP_ERR_REP_HOST_UNREACHABLE; one the proxy's rules refuse,
 * STP_ERR_REP_NOT_ALLOWED.                                                */

/* Tor's RESOLVE X'F0': the first address the proxy finds for host, in
 * out->sa (port 0). 0, or -1 with *err. */
int stp_resolve(const struct stp_proxy *proxy, const char *host, struct stp_addr *out,
		int timeout_ms, enum stp_err *err);
/* Tor's RESOLVE_PTR X'F1': the name of sa's address (its PTR record) into
 * name[cap]. 0, or -1 with *err (STP_ERR_INVALID: cap too small). */
int stp_resolve_ptr(const struct stp_proxy *proxy, const struct sockaddr *sa, char *name,
		    size_t cap, int timeout_ms, enum stp_err *err);
/* stp's DNS QUERY X'F2': query (a whole DNS message, 12..1232 bytes,
 * asking one question whose QNAME is qname, without a trailing dot or ""
 * for the root, and whose QTYPE is qtype) is answered by the proxy's
 * resolver; the whole answer (any RCODE) goes to answer[cap], with the
 * query's ID. Its length, or -1 with *err (STP_ERR_INVALID and errno
 * EMSGSIZE: cap is too small; 65535 always fits). */
ssize_t stp_dns_query(const struct stp_proxy *proxy, const char *qname, uint16_t qtype,
		      const void *query, size_t len, void *answer, size_t cap, int timeout_ms,
		      enum stp_err *err);

/* More about the last error of this thread (OpenSSL's verify reason, the
 * file that did not load...), or "" when there is nothing to add. */
const char *stp_err_detail(void);

/* ---------------------------------------------------------------------- */
/* Multicast through the proxy (stpd's JOIN_MCAST_GROUP, docs/mcast.md)     */
/*
 * A membership holds the TCP control connection (one JOIN on it), the
 * keys, a UDP socket joined to the intranet group the proxy relays the
 * group to, and a UDP socket for sealed frames to the relay. Payloads are
 * sealed and opened here (AES-256-GCM or ChaCha20-Poly1305, as the proxy
 * chose); the caller sees plain datagrams. The control connection stays
 * open for the membership's life: a notice or EOF on it ends the
 * membership (stp_mcast_check). Plain SOCKS5 proxies only (socks5://,
 * socks5h://): a TLS proxy gets STP_ERR_UNSUPPORTED for now.
 */
struct stp_mcast;

enum {
	STP_MCAST_SEND = 0x01, /* sending is required: X'B0' fails with STP_ERR_MCAST_NO_SEND */
	STP_MCAST_RECV = 0x02, /* receiving is required: X'B1' fails with STP_ERR_MCAST_NO_RECV */
};

/* An RFC 3678 source filter (JOIN X'85'). INCLUDE: 1..32 sources;
 * EXCLUDE: 0..32. Every source has the group's family. */
#define STP_MCAST_SOURCES_MAX 32
enum stp_mcast_fmode { STP_MCAST_ANY = 0, STP_MCAST_INCLUDE = 1, STP_MCAST_EXCLUDE = 2 };
struct stp_mcast_filter {
	enum stp_mcast_fmode mode;
	unsigned nsrc;
	struct sockaddr_storage src[STP_MCAST_SOURCES_MAX]; /* ports ignored */
};

/* JOIN group:port (group: an IPv4 or IPv6 multicast literal) or sa (group
 * and port in one sockaddr; pass the other as NULL / 0). filter NULL: any
 * source. flags: STP_MCAST_SEND | STP_MCAST_RECV, what the caller cannot do
 * without; 0 accepts any grant but X'B2'. The receiving socket joins the
 * intranet group on the interface that holds the control connection's
 * local address. NULL with *err: a refusal maps to its STP_ERR_MCAST_* or
 * STP_ERR_REP_* value. */
struct stp_mcast *stp_mcast_join(const struct stp_proxy *proxy, const char *group,
				 uint16_t port, const struct sockaddr *sa, unsigned flags,
				 const struct stp_mcast_filter *filter, int timeout_ms,
				 enum stp_err *err);
/* Seals one payload and sends it to the relay. len, or -1 with *err
 * (STP_ERR_MCAST_NO_SEND when the grant was receive only). */
ssize_t stp_mcast_send(struct stp_mcast *m, const void *buf, size_t len, enum stp_err *err);
/* Waits up to timeout_ms for a group datagram: frames that do not
 * authenticate, replays and our own frames are dropped. Copies at most
 * cap bytes of payload and fills *from (may be NULL) with its source: the
 * outside sender, or the inside member's address. -1 with *err:
 * STP_ERR_TIMEOUT, STP_ERR_MCAST_NO_RECV (send-only grant), or what ended
 * the membership (a notice's STP_ERR_MCAST_*, STP_ERR_PROXY_CLOSED). */
ssize_t stp_mcast_recv(struct stp_mcast *m, void *buf, size_t cap, struct stp_addr *from,
		       int timeout_ms, enum stp_err *err);
/* Call when the control fd polls readable: 0 while the membership lives,
 * -1 with *err once a notice or EOF ended it (then recv/send fail too). */
int stp_mcast_check(struct stp_mcast *m, enum stp_err *err);
/* Sends LEAVE and waits for its reply; the membership is over, its
 * sockets stay open until stp_mcast_close. 0, or -1 with *err. */
int stp_mcast_leave(struct stp_mcast *m, int timeout_ms, enum stp_err *err);
/* Closes everything (closing the control connection also leaves). */
void stp_mcast_close(struct stp_mcast *m);

/* For event loops: the intranet socket (-1 for a send-only grant), the
 * control connection, and the socket frames to the relay go out of. */
int stp_mcast_fd(const struct stp_mcast *m);
int stp_mcast_control_fd(const struct stp_mcast *m);
int stp_mcast_send_fd(const struct stp_mcast *m);
bool stp_mcast_can_send(const struct stp_mcast *m);
bool stp_mcast_can_recv(const struct stp_mcast *m);
/* The JOIN's reply code (X'00', X'B0' or X'B1'). */
uint8_t stp_mcast_rep(const struct stp_mcast *m);
/* Where the proxy relays the group (ADDR:PORT of the reply) and where
 * member frames go (the proxy's address, same port). */
const struct stp_addr *stp_mcast_intranet(const struct stp_mcast *m);
const struct stp_addr *stp_mcast_relay(const struct stp_mcast *m);

/* The framing alone, for callers that do their own socket I/O (stpify).
 * stp_mcast_seal writes the member frame for pt[0..n) into out; returns
 * its length, or 0 (cap too small, or not allowed to send). Each call
 * uses the next sequence number. stp_mcast_open opens the relay frame
 * frame[0..n) in place: returns the payload's offset in frame and sets
 * *len and *from, or -1 when it is dropped (malformed, not authentic, a
 * replay, our own). STP_MCAST_PEEK checks without recording the sequence
 * number, so the same frame opens again (MSG_PEEK). */
#define STP_MCAST_OVERHEAD (14 + 1 + 16 + 2 + 16) /* largest header + tag */
enum { STP_MCAST_PEEK = 0x01 };
size_t stp_mcast_seal(struct stp_mcast *m, const void *pt, size_t n, uint8_t *out, size_t cap);
ssize_t stp_mcast_open(struct stp_mcast *m, uint8_t *frame, size_t n, size_t *len,
		       struct stp_addr *from, unsigned flags);
/* Hands the intranet socket to the caller (who closes it); the
 * membership no longer reads or closes it. -1 when there is none. */
int stp_mcast_take_fd(struct stp_mcast *m);

/* ---------------------------------------------------------------------- */
/* Client auto-configuration (docs/client.md, docs/protocol.md 5.5): the
 * proxy says, per client and user, which destinations go through it and
 * which go direct, which method and credentials to use, and who resolves
 * names. One source of truth in stpd.conf; libstp fetches it with CMD
 * X'F4' after authentication, caches it in the process and on disk
 * ($XDG_CACHE_HOME/stp, else ~/.cache/stp; one file per proxy and user)
 * and fetches it again once its refresh interval has passed. */
struct stp_autoconf;

/* CMD X'F4' now, through proxy (authenticating as the URL says, else with
 * the proxy host's ~/.netrc entry, if any). NULL with *err: the proxy's
 * refusal (STP_ERR_REP_CMD_NOT_SUPPORTED from a server without the
 * command, STP_ERR_REP_NOT_ALLOWED when its rules refuse), or
 * STP_ERR_AUTOCONF for a bad document. */
struct stp_autoconf *stp_autoconf_fetch(const struct stp_proxy *proxy, int timeout_ms,
					enum stp_err *err);
/* The cached document while it is fresh (this process's copy, then the
 * disk's), else stp_autoconf_fetch (and the caches are updated); a stale
 * copy when the fetch fails. The caller frees the result. */
struct stp_autoconf *stp_autoconf_get(const struct stp_proxy *proxy, int timeout_ms,
				      enum stp_err *err);
/* A document's bytes (DOC, without LEN) into an object. */
struct stp_autoconf *stp_autoconf_parse(const void *doc, size_t len, enum stp_err *err);
void stp_autoconf_free(struct stp_autoconf *ac);
/* The document as received (for caching, or handing to a child process). */
const char *stp_autoconf_text(const struct stp_autoconf *ac, size_t *len);
const char *stp_autoconf_profile(const struct stp_autoconf *ac);
/* Seconds the document stays fresh. */
unsigned stp_autoconf_refresh(const struct stp_autoconf *ac);
/* Names are resolved by the proxy (dns remote, the default). */
bool stp_autoconf_remote_dns(const struct stp_autoconf *ac);
/* Whether host (a name or an address literal) at port goes direct: `route`
 * and `via` entries send it through a proxy, then `direct-port` and `direct`
 * entries send it direct, else the document's default. NO_PROXY (the
 * environment) still wins: what it names is direct. port 0: unknown. */
bool stp_autoconf_direct(const struct stp_autoconf *ac, const char *host, uint16_t port);
bool stp_autoconf_direct_addr(const struct stp_autoconf *ac, const struct sockaddr *sa);
/* When a `route` entry names host: sets proxy's host and port to the
 * proxy it names (after stp_autoconf_apply: kind and credentials stay) and
 * returns true. Such destinations are never direct (but NO_PROXY wins). */
bool stp_autoconf_route(const struct stp_autoconf *ac, const char *host, uint16_t port,
			struct stp_proxy *proxy);
/* Applies the document to proxy: the first proxy it names (host, port),
 * socks5h:// or socks5:// as its DNS handling says, TLS method X'86' for
 * `method tls`, and for `method userpass` with `credentials netrc` the
 * user and password of the proxy host's ~/.netrc entry unless the URL
 * has them. 0, or -1 with *err (proxy address unreadable). */
int stp_autoconf_apply(const struct stp_autoconf *ac, struct stp_proxy *proxy,
		       enum stp_err *err);
/* The i-th (from 0) proxy the document serves, in its order of
 * preference, into proxy's host and port: 0, or -1 past the last. After
 * stp_autoconf_apply, libstp itself tries the next ones whenever the
 * first is unreachable (every call that connects to the proxy). */
int stp_autoconf_proxy_at(const struct stp_autoconf *ac, size_t i, struct stp_proxy *proxy);
/* The cache file of proxy's document into out: 0, or -1 without a
 * cache directory (no $XDG_CACHE_HOME, no $HOME). */
int stp_autoconf_cache_path(const struct stp_proxy *proxy, char *out, size_t cap);
/* Feature discovery (method X'87', docs/protocol.md 5.6, docs/client.md)  */
/*
 * What a proxy offers to this client, learned before authenticating and
 * without side effects: versions, methods, commands, and entries with
 * details (X'86' sub-methods, multicast suites, limits, timeouts). The
 * answer is cached per proxy (host, port, TLS mode) in the process for
 * STP_FEATURES_TTL seconds; STP_FEATURES_FRESH asks again. A proxy that
 * does not know X'87' is not an error: f->supported is false and the
 * lists are empty (assume RFC 1928).
 */
#define STP_FEATURES_DOC_MAX (4 + 4096)
#define STP_FEATURES_TTL     300

enum stp_feat_scope {
	STP_FEAT_SERVER = 0x00,  /* code 0: the listener as a whole */
	STP_FEAT_METHOD = 0x01,  /* code: a METHOD */
	STP_FEAT_COMMAND = 0x02, /* code: a CMD */
	STP_FEAT_VERSION = 0x03, /* code: a SOCKS version (4) */
};

enum stp_feat_type {
	STP_FEAT_UINT = 0x01,  /* value: uint */
	STP_FEAT_TEXT = 0x02,  /* value: text (printable ASCII) */
	STP_FEAT_CODES = 0x03, /* value: len octets */
	STP_FEAT_FLAG = 0x04,  /* present: true */
};

struct stp_features {
	bool supported; /* the proxy answered X'87' */
	bool truncated; /* the proxy left entries out (they did not fit) */
	bool cached;    /* out: came from the process's cache */
	uint8_t versions[8];
	size_t n_versions;
	uint8_t methods[255]; /* in the proxy's preference order */
	size_t n_methods;
	uint8_t commands[255];
	size_t n_commands;
	/* private: the document as received, walked by stp_features_next */
	size_t doc_len;
	uint8_t doc[STP_FEATURES_DOC_MAX];
};

struct stp_feature {
	uint8_t scope, code, type; /* enum stp_feat_scope, stp_feat_type (others: skip) */
	char name[33];
	size_t len;           /* value bytes */
	const uint8_t *value; /* points into the stp_features */
	uint64_t uint;        /* STP_FEAT_UINT */
};

enum { STP_FEATURES_FRESH = 0x01 };

/* Asks the proxy (one connection, greeting X'87' alone, closed after) or
 * the cache. Plain and socks5s:// proxies are asked in the clear, as the
 * greeting is; socks5+tls:// ones inside TLS. 0, or -1 with *err (the
 * proxy unreachable, a malformed document: STP_ERR_PROTOCOL). SOCKS4
 * proxies: f->supported false, no connection. */
int stp_features_get(const struct stp_proxy *proxy, struct stp_features *f, unsigned flags,
		     int timeout_ms, enum stp_err *err);
/* Parses a document (FVER LEN ENTRIES, as after VER X'87') into f. 0, or
 * -1 when it is malformed or incomplete. */
int stp_features_parse(struct stp_features *f, const uint8_t *doc, size_t len);
bool stp_features_has_method(const struct stp_features *f, uint8_t method);
bool stp_features_has_command(const struct stp_features *f, uint8_t cmd);
/* Walks the entries: *cursor starts at 0. false at the end. */
bool stp_features_next(const struct stp_features *f, size_t *cursor, struct stp_feature *e);
bool stp_features_find(const struct stp_features *f, uint8_t scope, uint8_t code, const char *name,
		       struct stp_feature *e);
/* Path choice: the first of prefs[0..n) the proxy offers in scope
 * (STP_FEAT_METHOD or STP_FEAT_COMMAND), or -1 when none is (or the proxy
 * does not do discovery). E.g. {X'04', X'03'}: TRANSPARENT, else UDP
 * ASSOCIATE. */
int stp_features_pick(const struct stp_features *f, uint8_t scope, const uint8_t *prefs, size_t n);
/* Drops the process's cache. */
void stp_features_flush(void);

/* A name's address as the proxy would see it, chosen by discovery: through
 * the proxy's RESOLVE X'F0' when it offers it to this client (no DNS from
 * here); otherwise, for socks5:// and socks4:// (local resolution), with
 * getaddrinfo here; for socks5h:// and socks4a:// never locally
 * (STP_ERR_UNSUPPORTED). *via_proxy says which was used. 0, or -1. */
int stp_lookup(const struct stp_proxy *proxy, const char *name, struct stp_addr *out,
	       bool *via_proxy, int timeout_ms, enum stp_err *err);
/* Binds for application servers (stpd's LISTEN X'10' / ACCEPT X'11',        */
/* docs/protocol.md section 5.9, docs/client.md)                             */
/*
 * One control connection holds n binds on the proxy: TCP ports that accept
 * any number of peers, and UDP ports any peer may send to. Each peer that
 * connects to a TCP bind is announced (stp_listen_next); the caller takes
 * it (stp_listen_accept: a new connection to the proxy that then carries
 * the peer's bytes) or refuses it. A UDP bind's datagrams arrive with
 * their sender through stp_listen_udp_recvfrom; what stp_listen_udp_sendto
 * sends leaves the proxy from the bound port. Closing the control
 * connection (stp_listen_close) ends every bind and every peer. SOCKS5
 * proxies: plain, TLS (socks5s://, socks5+tls://) and GSS-API. Through TLS
 * or GSS-API, stp_listen_accept returns a socketpair end joined to the
 * data connection by a relay thread (as stp_connect); UDP binds need
 * udp-naked=1 with TLS (STP_ERR_TLS_UDP_NAKED) and are STP_ERR_UNSUPPORTED
 * with GSS-API (datagrams are not sealed).
 */
struct stp_listen;

enum stp_bind_kind { STP_BIND_TCP = 1, STP_BIND_UDP = 2 };
#define STP_LISTEN_MAX 16
struct stp_bind_spec {
	enum stp_bind_kind kind;
	uint16_t port;    /* port asked for on the proxy; 0: any */
	uint16_t backlog; /* TCP: listen backlog; 0: the proxy's default */
};

struct stp_arrival {
	unsigned bind;            /* index in the specs given to stp_listen_open */
	uint8_t id[8];
	struct stp_addr peer;
};

/* Opens the binds (all or none). NULL with *err: a refusal maps to
 * STP_ERR_REP_* or STP_ERR_BIND_LIMIT. */
struct stp_listen *stp_listen_open(const struct stp_proxy *proxy,
				   const struct stp_bind_spec *binds, unsigned n, int timeout_ms,
				   enum stp_err *err);
unsigned stp_listen_count(const struct stp_listen *l);
/* Where peers reach bind i (an unspecified address is replaced with the
 * proxy's), or NULL for a bad i. */
const struct stp_addr *stp_listen_bound(const struct stp_listen *l, unsigned i);
/* Waits up to timeout_ms for the next peer announced on the control
 * connection. 0, or -1 with STP_ERR_TIMEOUT or STP_ERR_PROXY_CLOSED (the
 * binds are gone). Arrivals the proxy closed unclaimed are skipped. */
int stp_listen_next(struct stp_listen *l, struct stp_arrival *a, int timeout_ms,
		    enum stp_err *err);
/* Takes arrival a: a blocking fd carrying the peer's stream, or -1 with
 * *err (STP_ERR_BIND_NO_ARRIVAL when it timed out on the proxy). */
int stp_listen_accept(struct stp_listen *l, const struct stp_arrival *a, int timeout_ms,
		      enum stp_err *err);
/* Refuses arrival a: the proxy closes the peer. 0, or -1 with *err. */
int stp_listen_refuse(struct stp_listen *l, const struct stp_arrival *a, enum stp_err *err);
/* UDP bind i: one datagram from a peer (payload, its sender in *src), or
 * one to a peer. As stp_udp_recvfrom / stp_udp_sendto_sa. */
ssize_t stp_listen_udp_recvfrom(struct stp_listen *l, unsigned i, void *buf, size_t cap,
				struct stp_addr *src, int timeout_ms, enum stp_err *err);
ssize_t stp_listen_udp_sendto(struct stp_listen *l, unsigned i, const void *buf, size_t len,
			      const struct sockaddr *dst, enum stp_err *err);
/* For event loops: the control connection, and UDP bind i's socket (-1
 * for a TCP bind). */
int stp_listen_fd(const struct stp_listen *l);
int stp_listen_udp_fd(const struct stp_listen *l, unsigned i);
void stp_listen_close(struct stp_listen *l);

#ifdef __cplusplus
}
#endif

#endif
