/*
 * client.h - libstp's private helpers, shared by its files and its unit
 * tests. The public API is include/stp/stp.h.
 */
#ifndef STP_CLIENT_CLIENT_H
#define STP_CLIENT_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/socks.h"
#include "stp/stp.h"

/* ---- targets (target.c) ---- */

/* host (a name or a literal) + port, or sa, into the wire address the
 * proxy kind wants. Names are resolved locally (blocking getaddrinfo) for
 * socks5:// and socks4://. 0, or -1 with *err. */
int client_target_encode(struct socks_addr *out, const struct stp_proxy *p, const char *host,
		      uint16_t port, const struct sockaddr *sa, enum stp_err *err);
/* An address literal (IPv4, IPv6, or [IPv6]) into *out. false if host is
 * not one. */
bool client_literal_parse(struct sockaddr_storage *out, socklen_t *len, const char *host,
		       uint16_t port);
/* Wire address -> public address. */
void client_addr_from_socks(struct stp_addr *out, const struct socks_addr *a);
/* 0.0.0.0 or :: */
bool client_addr_unspecified(const struct stp_addr *a);

/* ---- deadlines and sockets (net.c) ---- */

/* Absolute deadline in ms on CLOCK_MONOTONIC; -1 means none. */
int64_t client_deadline(int timeout_ms);
/* ms left before deadline (>= 0), or -1 for no deadline. */
int client_remaining(int64_t deadline);
/* poll(fd, events) until ready or the deadline. 1 ready, 0 timeout, -1 error. */
int client_wait(int fd, short events, int64_t deadline);
/* pthread_mutex_timedlock for at most ms: for exit handlers, which must not
 * wait long for a thread still working but lose their chance to a bare
 * trylock that meets a short turn. True when locked. */
bool client_lock_briefly(pthread_mutex_t *mu, long ms);
/* write(2) until all n bytes are out (blocking fd); false on error or 0. */
bool client_write_all(int fd, const uint8_t *p, size_t n);
/* Runs the engine until it returns something other than WANT_*. */
enum stp_step client_handshake_run(struct stp_handshake *h, int64_t deadline);
/* Replaces the request the engine will send (any SOCKS5 CMD with DST),
 * before anything of it is sent; the engine reads an RFC 1928 reply to it
 * as to CONNECT. -1 for a SOCKS4 proxy or a DST that does not encode. */
int client_handshake_set_request(struct stp_handshake *h, uint8_t cmd,
				 const struct socks_addr *dst);
/* TRANSPARENT: the request h was prepared with (any command, DST) becomes
 * CMD X'04' with PTCL and src (an address and port) after DST.PORT. -1 for
 * SOCKS4 or a source that cannot be written. */
int client_handshake_transparent(struct stp_handshake *h, uint8_t ptcl, const struct sockaddr *src);
/* Method X'86' already chose the method: start at the request. */
void client_handshake_skip_greeting(struct stp_handshake *h);
/* Inside TLS (conn.c): mode is the connection's TLS mode (the pipelining
 * cache's key); method >= 0 pipelines greeting, sub-negotiation and request
 * with that one method (client_pipe_method), -1 goes step by step. */
void client_handshake_pipe(struct stp_handshake *h, uint8_t mode, int method);
/* X'86' sent the request already, behind its option list (conn_x86.c):
 * the engine only reads the reply. */
void client_handshake_request_sent(struct stp_handshake *h);
/* Replaces the request with req[0..n) whole (an extension's request with
 * a body: LISTEN, ACCEPT, SETUP_UDP_TUNNEL); the reply is read as RFC
 * 1928's. -1 when it does not fit or the handshake is SOCKS4. */
int client_handshake_set_raw_request(struct stp_handshake *h, const uint8_t *req, size_t n);
/* Rewrites the loaded request into SETUP_UDP_TUNNEL X'20' for o
 * (tunnel.c); -1 when o is invalid or it does not fit. */
int client_handshake_tunnel(struct stp_handshake *h, const struct stp_tunnel_opts *o);
/* Connects to the proxy: every address of its name, Happy Eyeballs. The
 * fd (non-blocking), or -1 with *err and errno set. */
int client_proxy_connect_until(const struct stp_proxy *proxy, int64_t deadline, enum stp_err *err);
/* autoconf.c: the i-th (from 0) proxy served after the first one in the
 * document applied to p (stp_autoconf_apply): *out is p with that host and
 * port. false past the last, or when no document was applied to p. */
bool client_autoconf_alternate(const struct stp_proxy *p, size_t i, struct stp_proxy *out);
/* eyeballs.c: connects to the first of a[0..n) to answer (RFC 8305
 * section 5, attempts HE_ATTEMPT_DELAY_MS apart, in the order given). The
 * non-blocking fd, or -1 with errno: ETIMEDOUT at the deadline, else the
 * failure that says most about the proxy. Each result is a debug line
 * "connect to proxy ADDR: RESULT". */
int client_he_connect(const struct sockaddr_storage *a, size_t n, int64_t deadline);
int client_set_blocking(int fd, bool blocking);

/* ---- pipelining (pipeline.c, docs/protocol.md 5.11) ---- */
/* The method to pipeline greeting, sub-negotiation and request with (the
 * one the proxy will pick), or -1: do not pipeline. Caches only. */
int client_pipe_method(const struct stp_proxy *p);
/* A full (unpipelined) handshake with p got a method choice. */
void client_pipe_seen(const struct stp_proxy *p);
/* A pipelined handshake with p failed: no pipelining to p for a while. */
void client_pipe_forget(const struct stp_proxy *p);
/* X'86' (conn_x86.c): a step-by-step negotiation with p learned that
 * sub-authentication runs with method sub (X'02'), or not at all (-1). */
void client_pipe_x86_seen(const struct stp_proxy *p, int sub);
/* X'86': -2 do not pipeline; else what to pipeline behind the option
 * list: -1 nothing (the request), X'02' the sub-method list and RFC 1929. */
int client_pipe_x86(const struct stp_proxy *p);
/* Blocking callers, before connecting: asks discovery (once per TTL) when
 * p was seen before and its features are not cached. */
void client_pipe_prepare(const struct stp_proxy *p, int64_t deadline);
void client_pipe_flush(void);
/* features.c: p's features from the cache only (no connection). */
bool client_features_cached(const struct stp_proxy *p, struct stp_features *f);
/* pipeline.c: a pipelined handshake with p failed at off (read from the
 * disk cache): pipelining to p stays off until off + STP_FEATURES_TTL. */
void client_pipe_off_since(const struct stp_proxy *p, time_t off);
/* What X'86' negotiation with a proxy learned (pipeline.c): sub 0 nothing,
 * 1 no sub-authentication, 4 RFC 1929; who, the credentials it ran with. */
struct pipe_x86 {
	uint8_t who, sub;
};
/* pipeline.c: this process's knowledge (false: none); taking the disk's
 * when the process has none. */
bool client_pipe_x86_get(const struct stp_proxy *p, struct pipe_x86 *x);
void client_pipe_x86_put(const struct stp_proxy *p, const struct pipe_x86 *x);
/* featcache.c: the disk copy of p's features (any age; false: none, off
 * with STP_FEATURES_CACHE=0, or ignored; x may be NULL), saving one,
 * marking in it that pipelining to p failed now, and recording in it
 * what X'86' negotiation learned (only in a file that exists). */
bool client_featcache_load(const struct stp_proxy *p, struct stp_features *f, time_t *fetched,
			   time_t *off, struct pipe_x86 *x);
void client_featcache_save(const struct stp_proxy *p, const struct stp_features *f,
			   time_t fetched, time_t off, const struct pipe_x86 *x);
void client_featcache_off(const struct stp_proxy *p);
void client_featcache_x86(const struct stp_proxy *p, const struct pipe_x86 *x);

/* ---- automatic multiplexing (muxauto.c, mux.c) ---- */
/* A socks5 proxy (plain or TLS, not GSS-API) and STP_MUX is not 0. */
bool client_mux_eligible(const struct stp_proxy *p);
/* CONNECT host:port (or sa) as a stream of p's shared multiplexed
 * connection: a socketpair end (blocking), -1 with *err and errno (the
 * proxy refused the stream), or -2: not multiplexed, connect plainly. */
int client_mux_connect(const struct stp_proxy *p, const char *host, uint16_t port,
		       const struct sockaddr *sa, int64_t deadline, enum stp_err *err);
/* mux.c: whether the connection is over; forgetting it in a fork child. */
bool client_mux_dead(struct stp_mux *m);
/* mux.c: streams whose caller's side is open (how busy m is). */
unsigned client_mux_load(struct stp_mux *m);
void client_mux_abandon(struct stp_mux *m);
/* At exit: a TLS connection's close_notify, so the proxy sees a clean end,
 * and its thread stopped (at most 1 s); nothing for plain ones (the
 * kernel's FIN is theirs). */
void client_mux_goodbye(struct stp_mux *m);

/* ---- logging (errors.c) ---- */
bool client_debug_on(void);
/* Sets stp_err_detail() for this thread. */
void client_err_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- proxy URLs (url.c, url_tls.c) ---- */
/* Percent-decodes s[0..n) into out (cap with the NUL); -1 on a bad escape,
 * an encoded NUL or an overflow. */
int client_url_decode(char *out, size_t cap, const char *s, size_t n);
/* Walks the ?options of a proxy URL (q: after the '?'): key=value pairs
 * split at '&', each value percent-decoded, handed to one(opts, key, val)
 * (its -1: a bad key or value). A pair without '=' or key, a key of 20
 * octets or more, a '#', a bad escape or a value over STP_PATH_MAX - 1
 * octets is -1. A key given twice is handed twice (the last one wins). */
int client_url_query(const char *q, int (*one)(void *opts, const char *key, const char *val),
		     void *opts);
/* The ?options of a TLS proxy URL (q: after the '?'). 0, or -1 with *err. */
int client_url_tls_query(struct stp_tls_opts *o, const char *q, enum stp_err *err);
/* The ?options of a GSS-API proxy URL (url_gss.c). 0, or -1 with *err. */
int client_url_gss_query(struct stp_gss_opts *o, const char *q, enum stp_err *err);
/* The proxy needs the connection object (conn.c): TLS or GSS-API. */
bool client_proxy_needs_conn(const struct stp_proxy *p);

/* ---- connections (conn.c, conn_tls.c, conn_x86.c, conn_relay.c) ---- */
/* TCP to the proxy, then TLS (and for X'86' the method, the options and
 * sub-authentication): ready for the SOCKS request. NULL with *err. */
struct stp_conn *client_conn_connect(const struct stp_proxy *proxy, int64_t deadline,
				     enum stp_err *err);
/* The same, with the SOCKS request (req[0..req_len), may be NULL): method
 * X'86' sends it behind its option list when pipelining is known
 * (conn_x86.c); the connection then says so (client_conn_hs_init reads
 * only the reply). */
struct stp_conn *client_conn_connect_req(const struct stp_proxy *proxy, int64_t deadline,
					 const uint8_t *req, size_t req_len, enum stp_err *err);
/* stp_handshake_init for a request on c (fd -1: only checks the target). */
int client_conn_hs_init(struct stp_conn *c, struct stp_handshake *h,
			const struct stp_proxy *proxy, enum stp_cmd cmd, const char *host,
			uint16_t port, const struct sockaddr *sa, enum stp_err *err);
/* stp_conn_open(_sa) (host, else sa) without trying a multiplexed stream:
 * for callers that tried client_mux_connect already. */
struct stp_conn *client_conn_open_plain(const struct stp_proxy *proxy, const char *host,
					uint16_t port, const struct sockaddr *sa, int timeout_ms,
					enum stp_err *err);
/* Runs the handshake engine through c until DONE, BOUND or ERROR. */
enum stp_step client_conn_hs_run(struct stp_conn *c, struct stp_handshake *h, int64_t deadline);
/* Hands c to a detached relay thread; returns the application's end of
 * a socketpair (blocking, close-on-exec), or -1 with *err (c is closed). */
int client_conn_to_thread(struct stp_conn *c, enum stp_err *err);
/* For stpify: method X'01' (or TLS, X'86') and CONNECT on fd, a socket
 * already connected to the GSS-API (or TLS) proxy (blocking, poll to the
 * deadline). GSS-API level none: fd then carries the target's bytes and
 * *relay_fd is -1. Levels 1 and 2, and TLS: the proxy connection moves to a new fd number served by a relay thread, and
 * *relay_fd is the plaintext end of its socketpair, for the caller to put
 * in fd's place. 0, or -1 with *err and errno (fd is left open). */
int client_conn_connect_fd(int fd, const struct stp_proxy *proxy, const char *host,
			   uint16_t port, const struct sockaddr *sa, int64_t deadline,
			   int *relay_fd, enum stp_err *err);
/* For stpify: method X'01' and UDP ASSOCIATE declaring decl on fd, a
 * socket connected to the GSS-API proxy (it stays the caller's, as the
 * association's control connection); h holds the reply (the relay).
 * Levels 1, 2: *gss is the context that seals and unseals the datagrams
 * (RFC 1961 section 5, client_gss_seal/unseal; client_gss_release frees
 * it); level none: *gss is NULL. 0, or -1 with *err and errno. */
int client_gss_associate_fd(int fd, const struct stp_proxy *proxy, const struct sockaddr *decl,
			    int64_t deadline, struct stp_handshake *h, struct stp_conn **gss,
			    enum stp_err *err);
/* A whole RFC 1928 UDP datagram <-> one X'03' frame: the length written
 * to out, or -1 (does not fit, does not unwrap, a replay, no
 * confidentiality at level 2). Not thread-safe on one context. */
ssize_t client_gss_seal(struct stp_conn *c, const uint8_t *p, size_t len, uint8_t *out, size_t cap);
ssize_t client_gss_unseal(struct stp_conn *c, const uint8_t *p, size_t len, uint8_t *out,
			  size_t cap);
void client_gss_release(struct stp_conn *c);

/* ---- auto-configuration (netrc.c, autoconf.c) ---- */
/* The login and password of host in $NETRC or ~/.netrc (else its default
 * entry): 0, or -1 when there is none. */
int client_netrc_lookup(const char *host, char *user, size_t ucap, char *pass, size_t pcap);

#endif
