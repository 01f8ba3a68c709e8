/*
 * resolve.h - asynchronous name look-ups with c-ares on a worker's libev
 * loop, with a bound on the look-ups pending at once.
 */
#ifndef STP_SERVER_RESOLVE_H
#define STP_SERVER_RESOLVE_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RESOLVE_MAX_ADDRS 16

struct resolver;
struct lookup;

/* status 0: addrs[0..n) with port set; else a c-ares status code. Never
 * called after resolver_cancel(). */
typedef void (*lookup_cb)(void *ctx, int status, const struct sockaddr_storage *addrs, size_t n);

/* servers: NULL for /etc/resolv.conf, else "ADDR[:PORT]" / "[V6]:PORT". */
struct resolver *resolver_new(struct ev_loop *loop, const char *servers, unsigned timeout_secs,
			      unsigned max_pending, char *err, size_t errlen);
/* Where a resolver makes its sockets (the compartments' seam): open
 * returns a socket of that domain/type/protocol, or -1 with errno. */
struct resolver_sockets {
	int (*open)(void *ctx, int domain, int type, int protocol);
	void *ctx;
};
/* resolver_new with its sockets made by socks->open (copied), and names
 * looked up in DNS only (no hosts file of stpd's host). */
struct resolver *resolver_new_in(struct ev_loop *loop, const char *servers, unsigned timeout_secs,
				 unsigned max_pending, const struct resolver_sockets *socks,
				 char *err, size_t errlen);
void resolver_free(struct resolver *r);
/* Look-ups (and raw queries) r still has running: a resolver a module
 * retires is freed once this is 0, so no caller's look-up fails for it. */
unsigned resolver_pending(const struct resolver *r);
/* Starts a look-up; *slot holds its handle until the callback runs (it is
 * cleared first), which may happen before this returns. -1 when max_pending
 * look-ups are already running (or out of memory), or r is NULL (as the
 * other look-ups). */
int resolver_lookup(struct resolver *r, const char *name, uint16_t port, lookup_cb cb, void *ctx,
		    struct lookup **slot);
/* A reverse (PTR) look-up of sa's address: status 0 and the first name,
 * else a c-ares status code (name NULL). The same slot and cancel rules as
 * resolver_lookup(). */
typedef void (*lookup_name_cb)(void *ctx, int status, const char *name);
int resolver_reverse(struct resolver *r, const struct sockaddr *sa, lookup_name_cb cb, void *ctx,
		     struct lookup **slot);
/* A raw query (a whole DNS message, ares_send): status 0 and the server's
 * whole answer abuf[0..alen) (valid during the call only) whatever its
 * RCODE (a channel with ARES_FLAG_NOCHECKRESP: SERVFAIL, NOTIMP and
 * REFUSED come back too), else a c-ares status code (no answer at all).
 * c-ares retries over TCP when the answer is truncated. The
 * same slot and cancel rules as resolver_lookup(). */
typedef void (*lookup_raw_cb)(void *ctx, int status, const uint8_t *abuf, size_t alen);
int resolver_send(struct resolver *r, const uint8_t *q, size_t qlen, lookup_raw_cb cb, void *ctx,
		  struct lookup **slot);
void resolver_cancel(struct lookup *l);
const char *resolver_strerror(int status);
/* SOCKS5 reply for a failed look-up. */
uint8_t resolver_rep(int status);

#endif
