/*
 * resolve.c - see resolve.h.
 *
 * c-ares tells us which sockets it wants watched (sock_state_cb); we keep an
 * ev_io per socket and one ev_timer for its retransmission timeouts, and
 * call ares_process_fd() from both. A cancelled look-up keeps its struct
 * until c-ares calls back, with the owner's pointer cleared.
 *
 * Raw queries (resolver_send) go through a second channel of their own,
 * created with ARES_FLAG_NOCHECKRESP: there c-ares hands a SERVFAIL,
 * NOTIMP or REFUSED answer back as it is instead of trying the next server
 * and keeping only an error code, so a DNS QUERY client gets the RCODE
 * (docs/protocol.md 5.4). Look-ups for CONNECT keep c-ares' checks.
 */
#include "server/resolve.h"

#include <ares.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "server/stats.h"

#define RESOLVE_MAX_SOCKS 16

struct resolver_sock {
	ev_io io;
	struct resolver *r;
	ares_socket_t fd;
	bool used;
};

struct resolver {
	struct ev_loop *loop;
	ares_channel channel;
	ev_timer timer;
	struct resolver_sock socks[RESOLVE_MAX_SOCKS];
	unsigned pending, max_pending;
	struct resolver *raw;   /* the NOCHECKRESP channel for resolver_send */
	struct resolver *owner; /* raw's: counts its queries against max_pending */
	struct resolver_sockets sockfns; /* open NULL: c-ares makes its own */
};

struct lookup {
	struct resolver *r;
	lookup_cb cb;
	lookup_name_cb name_cb; /* a reverse look-up */
	lookup_raw_cb raw_cb;   /* a raw query */
	void *ctx;              /* NULL once cancelled */
	struct lookup **slot;   /* the owner's handle, cleared when done */
	uint16_t port;
	uint64_t t0;            /* stats_now_us() when asked */
};

static void arm_timer(struct resolver *r)
{
	struct timeval tv, *tvp = ares_timeout(r->channel, NULL, &tv);
	ev_timer_stop(r->loop, &r->timer);
	if (tvp && r->pending > 0) {
		double secs = (double)tvp->tv_sec + (double)tvp->tv_usec / 1e6;
		ev_timer_set(&r->timer, secs > 0 ? secs : 0.001, 0.);
		ev_timer_start(r->loop, &r->timer);
	}
}

static void on_sock(EV_P_ ev_io *w, int revents)
{
	struct resolver_sock *rs = w->data;
	struct resolver *r = rs->r;
	ares_process_fd(r->channel, (revents & EV_READ) ? rs->fd : ARES_SOCKET_BAD,
			(revents & EV_WRITE) ? rs->fd : ARES_SOCKET_BAD);
	arm_timer(r);
}

static void on_timer(EV_P_ ev_timer *w, int revents)
{
	struct resolver *r = w->data;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(r);
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolver *r = data;
	struct resolver_sock *slot = NULL, *free_slot = NULL;

	for (int i = 0; i < RESOLVE_MAX_SOCKS; i++) {
		if (r->socks[i].used && r->socks[i].fd == fd)
			slot = &r->socks[i];
		else if (!r->socks[i].used && !free_slot)
			free_slot = &r->socks[i];
	}
	if (!slot) {
		if (!readable && !writable)
			return;
		if (!free_slot) {
			static struct log_rate rl = LOG_RATE_INIT("too many DNS sockets");
			log_warnx_rl(&rl, "resolver: too many DNS sockets");
			return;
		}
		slot = free_slot;
		slot->used = true;
		slot->fd = fd;
		slot->r = r;
		slot->io.data = slot;
	} else {
		ev_io_stop(r->loop, &slot->io);
	}
	if (!readable && !writable) {
		slot->used = false;
		return;
	}
	ev_io_init(&slot->io, on_sock, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	slot->io.data = slot;
	ev_io_start(r->loop, &slot->io);
}

/* c-ares' socket functions, for resolver_new_in: only socket creation
 * differs from c-ares' own; the rest are the plain system calls. */
static ares_socket_t rs_socket(int domain, int type, int protocol, void *data)
{
	struct resolver *r = data;
	int fd = r->sockfns.open(r->sockfns.ctx, domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
	return fd < 0 ? ARES_SOCKET_BAD : fd;
}

static int rs_close(ares_socket_t fd, void *data)
{
	(void)data;
	return close(fd);
}

static int rs_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len, void *data)
{
	(void)data;
	return connect(fd, sa, len);
}

static ares_ssize_t rs_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
				struct sockaddr *from, ares_socklen_t *fromlen, void *data)
{
	(void)data;
	return recvfrom(fd, buf, len, flags, from, fromlen);
}

static ares_ssize_t rs_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *data)
{
	(void)data;
	return writev(fd, iov, n);
}

static const struct ares_socket_functions rs_funcs = {
	rs_socket, rs_close, rs_connect, rs_recvfrom, rs_sendv,
};

static struct resolver *resolver_make(struct ev_loop *loop, const char *servers,
				      unsigned timeout_secs, int flags,
				      const struct resolver_sockets *socks, char *err, size_t errlen)
{
	struct resolver *r = calloc(1, sizeof(*r));
	struct ares_options opts;
	int optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	int rc;

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = sock_state;
	opts.sock_state_cb_data = r;
	opts.timeout = (int)(timeout_secs ? timeout_secs * 1000 / 3 : 3000);
	opts.tries = 3;
	opts.flags = flags;
	if (flags)
		optmask |= ARES_OPT_FLAGS;
	if (socks) {
		/* A compartment's names come from its DNS, never from the
		 * hosts file of the namespace stpd runs in. */
		opts.lookups = (char *)"b";
		optmask |= ARES_OPT_LOOKUPS;
	}
	rc = ares_init_options(&r->channel, &opts, optmask);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		free(r);
		return NULL;
	}
	if (servers && *servers) {
		rc = ares_set_servers_ports_csv(r->channel, servers);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "resolver %s: %s", servers, ares_strerror(rc));
			ares_destroy(r->channel);
			free(r);
			return NULL;
		}
	}
	if (socks) {
		r->sockfns = *socks;
		ares_set_socket_functions(r->channel, &rs_funcs, r);
	}
	r->loop = loop;
	ev_timer_init(&r->timer, on_timer, 1., 0.);
	r->timer.data = r;
	return r;
}

static void resolver_destroy(struct resolver *r)
{
	/* Calls every pending callback with ARES_EDESTRUCTION. */
	ares_destroy(r->channel);
	for (int i = 0; i < RESOLVE_MAX_SOCKS; i++)
		if (r->socks[i].used)
			ev_io_stop(r->loop, &r->socks[i].io);
	ev_timer_stop(r->loop, &r->timer);
	free(r);
}

struct resolver *resolver_new(struct ev_loop *loop, const char *servers, unsigned timeout_secs,
			      unsigned max_pending, char *err, size_t errlen)
{
	return resolver_new_in(loop, servers, timeout_secs, max_pending, NULL, err, errlen);
}

/* Two channels: r for look-ups, and r->raw (same servers and sockets) with
 * ARES_FLAG_NOCHECKRESP for resolver_send, so DNS QUERY answers with
 * SERVFAIL/NOTIMP/REFUSED reach the client. */
struct resolver *resolver_new_in(struct ev_loop *loop, const char *servers, unsigned timeout_secs,
				 unsigned max_pending, const struct resolver_sockets *socks,
				 char *err, size_t errlen)
{
	struct resolver *r = resolver_make(loop, servers, timeout_secs, 0, socks, err, errlen);
	if (!r)
		return NULL;
	r->raw = resolver_make(loop, servers, timeout_secs, ARES_FLAG_NOCHECKRESP, socks, err,
			       errlen);
	if (!r->raw) {
		resolver_destroy(r);
		return NULL;
	}
	r->raw->owner = r;
	r->max_pending = max_pending ? max_pending : 1024;
	return r;
}

void resolver_free(struct resolver *r)
{
	if (!r)
		return;
	resolver_destroy(r->raw); /* its callbacks count down r->pending */
	resolver_destroy(r);
}

unsigned resolver_pending(const struct resolver *r)
{
	return r ? r->pending : 0;
}

static void on_result(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct lookup *l = arg;
	struct sockaddr_storage addrs[RESOLVE_MAX_ADDRS];
	size_t n = 0;

	l->r->pending--;
	if (status == ARES_SUCCESS && res) {
		for (struct ares_addrinfo_node *a = res->nodes; a && n < RESOLVE_MAX_ADDRS;
		     a = a->ai_next) {
			if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
				continue;
			memset(&addrs[n], 0, sizeof(addrs[n]));
			memcpy(&addrs[n], a->ai_addr, (size_t)a->ai_addrlen);
			if (a->ai_family == AF_INET)
				((struct sockaddr_in *)&addrs[n])->sin_port = htons(l->port);
			else
				((struct sockaddr_in6 *)&addrs[n])->sin6_port = htons(l->port);
			n++;
		}
		if (n == 0)
			status = ARES_ENODATA;
	}
	if (res)
		ares_freeaddrinfo(res);
	stats_dns(stats_now_us() - l->t0, status == ARES_SUCCESS);
	if (l->slot)
		*l->slot = NULL;
	if (l->ctx)
		l->cb(l->ctx, status, addrs, n);
	free(l);
}

/* A look-up counted against r's max_pending, or NULL (limit, memory). */
static struct lookup *lookup_start(struct resolver *r, void *ctx, struct lookup **slot)
{
	struct lookup *l;

	if (r->pending >= r->max_pending) {
		stats_limit(STATS_LIM_DNS_PENDING);
		return NULL;
	}
	if (!(l = calloc(1, sizeof(*l))))
		return NULL;
	l->r = r;
	l->ctx = ctx;
	l->slot = slot;
	*slot = l;
	r->pending++;
	l->t0 = stats_now_us();
	return l;
}

int resolver_lookup(struct resolver *r, const char *name, uint16_t port, lookup_cb cb, void *ctx,
		    struct lookup **slot)
{
	struct ares_addrinfo_hints hints;
	struct lookup *l;

	*slot = NULL;
	if (!r)
		return -1; /* a module's resolver that could not be made (session_resolver_for) */
	if (!(l = lookup_start(r, ctx, slot)))
		return -1;
	l->cb = cb;
	l->port = port;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = ARES_AI_NOSORT;
	/* May call on_result before returning (e.g. a name in /etc/hosts). */
	ares_getaddrinfo(r->channel, name, NULL, &hints, on_result, l);
	arm_timer(r);
	return 0;
}

static void on_host(void *arg, int status, int timeouts, struct hostent *h)
{
	struct lookup *l = arg;
	const char *name = NULL;

	(void)timeouts;
	l->r->pending--;
	if (status == ARES_SUCCESS) {
		if (h && h->h_name && h->h_name[0])
			name = h->h_name;
		else
			status = ARES_ENODATA;
	}
	stats_dns(stats_now_us() - l->t0, status == ARES_SUCCESS);
	if (l->slot)
		*l->slot = NULL;
	if (l->ctx)
		l->name_cb(l->ctx, status, name);
	free(l);
}

int resolver_reverse(struct resolver *r, const struct sockaddr *sa, lookup_name_cb cb, void *ctx,
		     struct lookup **slot)
{
	struct lookup *l;
	const void *addr;
	int addrlen;

	*slot = NULL;
	if (!r)
		return -1; /* a module's resolver that could not be made (session_resolver_for) */
	if (sa->sa_family == AF_INET) {
		addr = &((const struct sockaddr_in *)sa)->sin_addr;
		addrlen = 4;
	} else if (sa->sa_family == AF_INET6) {
		addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		addrlen = 16;
	} else {
		return -1;
	}
	if (!(l = lookup_start(r, ctx, slot)))
		return -1;
	l->name_cb = cb;
	/* May call on_host before returning (an address in /etc/hosts). */
	ares_gethostbyaddr(r->channel, addr, addrlen, sa->sa_family, on_host, l);
	arm_timer(r);
	return 0;
}

static void on_raw(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *l = arg;

	(void)timeouts;
	l->r->pending--;
	l->r->owner->pending--;
	if (status == ARES_SUCCESS && (!abuf || alen <= 0))
		status = ARES_EBADRESP;
	stats_dns(stats_now_us() - l->t0, status == ARES_SUCCESS);
	if (l->slot)
		*l->slot = NULL;
	if (l->ctx)
		l->raw_cb(l->ctx, status, status == ARES_SUCCESS ? abuf : NULL,
			  status == ARES_SUCCESS ? (size_t)alen : 0);
	free(l);
}

int resolver_send(struct resolver *r, const uint8_t *q, size_t qlen, lookup_raw_cb cb, void *ctx,
		  struct lookup **slot)
{
	struct lookup *l;

	*slot = NULL;
	if (!r)
		return -1; /* a module's resolver that could not be made (session_resolver_for) */
	if (qlen > 65535 || !(l = lookup_start(r, ctx, slot)))
		return -1;
	l->r = r->raw; /* on_raw counts down both */
	l->raw_cb = cb;
	r->raw->pending++; /* arms the raw channel's timer */
	/* c-ares sets its own ID on the wire and gives the answer back with
	 * the caller's; the hosts file is not consulted (a raw query). */
	ares_send(r->raw->channel, q, (int)qlen, on_raw, l);
	arm_timer(r->raw);
	return 0;
}

void resolver_cancel(struct lookup *l)
{
	if (l) {
		l->ctx = NULL;
		l->slot = NULL;
	}
}

const char *resolver_strerror(int status)
{
	return ares_strerror(status);
}

uint8_t resolver_rep(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
	case ARES_EBADNAME:
	case ARES_ETIMEOUT:
	case ARES_ECONNREFUSED:
	case ARES_ESERVFAIL:
	case ARES_EREFUSED:
		return 0x04; /* host unreachable */
	default:
		return 0x01;
	}
}
