/*
 * muxauto.c - automatic multiplexing (docs/client.md, docs/protocol.md
 * 5.11): stp_connect, stp_conn_open and stpify's connect() open their
 * CONNECTs as streams of one shared multiplexed connection per proxy
 * (mux.c) when the proxy's features document lists CMD X'30' for this
 * client.
 *
 * One connection per proxy and user per process, shared by every thread;
 * more (up to MA_CONNS) when the streams in use on every open one reach
 * MA_SPREAD: each connection has its own thread here and is one session
 * of one stpd worker (by the kernel's SO_REUSEPORT hash), so a busy
 * program's streams spread over the cores on both ends instead of
 * queueing behind one thread (bench/NOTES.md "libstp's mux client"). Each
 * connect takes the least busy connection.
 * TLS proxies (socks5+tls://, X'86') too: the connection is a TLS one
 * (mux_tls.c), so one TLS handshake serves every stream; the table tells
 * them apart by all TLS options as well (a client certificate can name the
 * user, docs/tls.md section 3; a connection verified against one CA, or
 * not at all, must not serve a caller that asked for another).
 * A connection that died is replaced by the next connect. A stream the
 * proxy refuses (rules, target unreachable) is the caller's error, as the
 * plain CONNECT's would be.
 *
 * Which proxies: when the features are cached (discovery, pipeline.c
 * asks for them), X'30' must be in the commands for this client. When
 * nothing is known the switch is simply tried: greeting, method, X'30'
 * step by step costs what a plain CONNECT costs, and asking discovery
 * first would cost a connection more. A proxy that answers X'30' with a
 * SOCKS failure (X'07' from servers without multiplexing, X'02' from
 * rules) is left alone for STP_FEATURES_TTL, and this connect opens a
 * plain one (the one extra connection a non-multiplexing proxy costs a
 * process). A proxy that cannot be reached falls back too (the plain path
 * reports it per address). Any other failure (no method, authentication,
 * not SOCKS) is the caller's error: a plain connection would meet it too,
 * and a server that takes one connection only must not be asked twice.
 * STP_MUX=0 turns all of it off (stp_mux_open still works).
 *
 * fork(): the child must not write into the parent's HTTP/2 connection
 * (both would use the same stream ids), and the child has no mux thread.
 * An atfork handler makes the child forget every connection (its copies
 * of the descriptors are closed; the parent's go on); the child opens its
 * own on its first connect. Streams the child inherited end there.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/log.h"
#include "common/sockaddr.h"
#include "proto/socks.h"

#define MA_N 8
#define MA_CONNS 4  /* multiplexed connections per proxy and user, at most */
#define MA_SPREAD 8 /* streams in use on each before another is opened */
#define MA_MORE_BACKOFF 10 /* s without extra connections after one failed */
#define MA_MORE_TIMEOUT 3000 /* ms for opening one of them, at most */

/* One shared connection; freed by whoever drops the last reference. */
struct ma_conn {
	struct stp_mux *m;
	unsigned refs; /* the table's, plus one per stp_mux_connect under way */
};

static struct ma_entry {
	bool used;
	char host[STP_NAME_MAX + 1], user[STP_NAME_MAX + 1];
	uint16_t port;
	struct stp_tls_opts tls; /* mode NONE: a plain proxy */
	struct ma_conn *c; /* NULL: none open */
	time_t off;        /* the switch failed: plain connections until TTL */
	time_t used_at;
	struct ma_conn *more[MA_CONNS - 1]; /* opened by load (ma_spread) */
	bool opening;      /* a thread is opening one of `more` */
	time_t more_off;   /* one of `more` failed to open: none for a while */
} ma_tab[MA_N];
static pthread_mutex_t ma_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ma_once = PTHREAD_ONCE_INIT;

static void ma_child(void)
{
	pthread_mutex_init(&ma_lock, NULL);
	for (size_t i = 0; i < MA_N; i++) {
		if (ma_tab[i].c != NULL)
			client_mux_abandon(ma_tab[i].c->m);
		ma_tab[i].c = NULL; /* leaked: the parent's memory, its thread is gone */
		for (size_t j = 0; j < MA_CONNS - 1; j++) {
			if (ma_tab[i].more[j] != NULL)
				client_mux_abandon(ma_tab[i].more[j]->m);
			ma_tab[i].more[j] = NULL;
		}
		ma_tab[i].opening = false;
	}
}

/* A program's exit ends the shared connections; a TLS one says so with
 * close_notify (as the relay threads of conn_relay.c do), not a bare FIN,
 * and its thread stops. Registered after the first TLS one is open, so
 * after OpenSSL's exit handler, and so run before it. */
static void ma_exit(void)
{
	/* another thread may be opening a connection under the lock: wait a
	 * little, as client_mux_goodbye does, then give up the goodbyes */
	if (!client_lock_briefly(&ma_lock, 200))
		return;
	for (size_t i = 0; i < MA_N; i++) {
		if (ma_tab[i].c != NULL)
			client_mux_goodbye(ma_tab[i].c->m);
		for (size_t j = 0; j < MA_CONNS - 1; j++)
			if (ma_tab[i].more[j] != NULL)
				client_mux_goodbye(ma_tab[i].more[j]->m);
	}
	pthread_mutex_unlock(&ma_lock);
}

static void ma_init(void) { pthread_atfork(NULL, NULL, ma_child); }

static pthread_once_t ma_exit_once = PTHREAD_ONCE_INIT;
static void ma_exit_hook(void) { atexit(ma_exit); }

static bool ma_enabled(void)
{
	const char *v = getenv("STP_MUX");
	return v == NULL || strcmp(v, "0") != 0;
}

bool client_mux_eligible(const struct stp_proxy *p)
{
	return (p->kind == STP_SOCKS5 || p->kind == STP_SOCKS5H) && !p->gss.on && ma_enabled();
}

static bool ma_fresh(time_t at, time_t now)
{
	return at != 0 && now >= at && now - at < STP_FEATURES_TTL;
}

static bool ma_same_tls(const struct stp_tls_opts *a, const struct stp_tls_opts *b)
{
	return a->mode == b->mode && a->insecure == b->insecure && strcmp(a->sni, b->sni) == 0 &&
	       strcmp(a->ca, b->ca) == 0 && strcmp(a->cert, b->cert) == 0 &&
	       strcmp(a->key, b->key) == 0;
}

/* p's entry, made if missing (a free slot, else the least recently used
 * one without a connection); NULL when every slot holds a connection.
 * Under ma_lock. */
static struct ma_entry *ma_find(const struct stp_proxy *p)
{
	const char *user = p->has_auth ? p->user : "";
	struct ma_entry *slot = NULL;
	for (size_t i = 0; i < MA_N; i++) {
		struct ma_entry *e = &ma_tab[i];
		if (e->used && e->port == p->port && strcmp(e->host, p->host) == 0 &&
		    strcmp(e->user, user) == 0 && ma_same_tls(&e->tls, &p->tls))
			return e;
		if (!e->used)
			slot = slot && !slot->used ? slot : e;
		else if (e->c == NULL && !e->opening &&
			 (slot == NULL || (slot->used && e->used_at < slot->used_at)))
			slot = e;
	}
	if (slot == NULL)
		return NULL;
	memset(slot, 0, sizeof(*slot));
	slot->used = true;
	snprintf(slot->host, sizeof(slot->host), "%s", p->host);
	snprintf(slot->user, sizeof(slot->user), "%s", user);
	slot->port = p->port;
	slot->tls = p->tls;
	return slot;
}

static void ma_put(struct ma_conn *c)
{
	/* under ma_lock */
	if (--c->refs == 0) {
		stp_mux_close(c->m);
		free(c);
	}
}

/* The least busy of e's connections (e->c is open), after opening one
 * more when every one has MA_SPREAD streams in use and there is room.
 * Only one thread opens at a time, without ma_lock: the others go on with
 * the open ones meanwhile. A failure (limits on the proxy, say) only
 * stops more for MA_MORE_BACKOFF seconds. NULL (rare): e->c is gone, use
 * a plain connection. Under ma_lock. */
static struct ma_conn *ma_spread(struct ma_entry *e, const struct stp_proxy *p, int64_t deadline)
{
	struct ma_conn *best = e->c;
	if (best == NULL) /* it died and failed to reopen while we were opening */
		return NULL;
	unsigned load = client_mux_load(best->m);
	size_t room = MA_CONNS - 1;
	for (size_t i = 0; i < MA_CONNS - 1; i++) {
		struct ma_conn *c = e->more[i];
		if (c != NULL && client_mux_dead(c->m)) {
			ma_put(c);
			c = e->more[i] = NULL;
		}
		if (c == NULL) {
			room = room < MA_CONNS - 1 ? room : i;
			continue;
		}
		unsigned l = client_mux_load(c->m);
		if (l < load) {
			best = c;
			load = l;
		}
	}
	time_t now = time(NULL);
	if (load < MA_SPREAD || room == MA_CONNS - 1 || e->opening ||
	    (e->more_off != 0 && now >= e->more_off && now - e->more_off < MA_MORE_BACKOFF))
		return best;
	e->opening = true;
	pthread_mutex_unlock(&ma_lock);
	/* Bounded more tightly than the caller's deadline: a stream on a
	 * busy connection beats waiting for a slow proxy's handshake. */
	enum stp_err oe;
	int left = client_remaining(deadline);
	struct stp_mux *m =
		stp_mux_open(p, left < 0 || left > MA_MORE_TIMEOUT ? MA_MORE_TIMEOUT : left, &oe);
	struct ma_conn *c = m != NULL ? calloc(1, sizeof(*c)) : NULL;
	pthread_mutex_lock(&ma_lock);
	e->opening = false;
	if (c == NULL) {
		if (m != NULL)
			stp_mux_close(m);
		else
			log_debug("mux: another connection to %s:%u failed (%s)", p->host, p->port,
				  stp_strerror(oe));
		e->more_off = now;
		return ma_spread(e, p, deadline); /* e->c may have changed meanwhile */
	}
	c->m = m;
	c->refs = 1;
	e->more[room] = c;
	log_debug("mux: connection %zu to %s:%u (%u streams on each)", room + 2, p->host, p->port,
		  load);
	return c;
}

/* Whether to try X'30' with p: false when its cached features say it is
 * not for us. */
static bool ma_offered(const struct stp_proxy *p)
{
	struct stp_features f;
	if (!client_features_cached(p, &f) || !f.supported || f.n_commands == 0)
		return true; /* unknown: try (see the top) */
	return memchr(f.commands, SOCKS_CMD_MUX, f.n_commands) != NULL;
}

static bool ma_refused(enum stp_err e)
{
	return e >= STP_ERR_REP_GENERAL_FAILURE && e <= STP_ERR_REP_OTHER;
}

/* The shared connection to p, opened if needed, with a reference for the
 * caller; NULL with *err STP_OK: use a plain connection; NULL with
 * another *err: fail with it. */
static struct ma_conn *ma_get(const struct stp_proxy *p, int64_t deadline, enum stp_err *err)
{
	pthread_once(&ma_once, ma_init);
	pthread_mutex_lock(&ma_lock);
	struct ma_conn *c = NULL;
	struct ma_entry *e = ma_find(p);
	time_t now = time(NULL);
	*err = STP_OK;
	if (e == NULL || ma_fresh(e->off, now))
		goto out;
	e->used_at = now;
	if (e->c != NULL && client_mux_dead(e->c->m)) {
		log_debug("mux: connection to %s:%u died, reconnecting", p->host, p->port);
		ma_put(e->c);
		e->c = NULL;
	}
	if (e->c == NULL) {
		/* Held across the open: other threads wait for this one's
		 * connection rather than each opening their own. */
		if (!ma_offered(p))
			goto out;
		enum stp_err oe;
		int left = client_remaining(deadline);
		struct stp_mux *m = stp_mux_open(p, left < 0 ? 30000 : left, &oe);
		if (m == NULL) {
			if (oe == STP_ERR_PROXY_UNREACHABLE || oe == STP_ERR_PROXY_RESOLVE) {
				/* The plain path tries again and reports it in
				 * its own words (stpify: each address's errno). */
			} else if (ma_refused(oe)) {
				log_debug("mux: %s:%u refused X'30' (%s): plain connections for %d s",
					  p->host, p->port, stp_strerror(oe), STP_FEATURES_TTL);
				e->off = now;
			} else {
				*err = oe;
			}
			goto out;
		}
		e->c = calloc(1, sizeof(*e->c));
		if (e->c == NULL) {
			stp_mux_close(m);
			goto out;
		}
		e->c->m = m;
		e->c->refs = 1;
		if (p->tls.mode != STP_TLS_NONE)
			pthread_once(&ma_exit_once, ma_exit_hook);
		log_debug("mux: one connection to %s:%u for every stream", p->host, p->port);
	}
	c = ma_spread(e, p, deadline);
	if (c != NULL)
		c->refs++;
out:
	pthread_mutex_unlock(&ma_lock);
	return c;
}

int client_mux_connect(const struct stp_proxy *p, const char *host, uint16_t port,
		       const struct sockaddr *sa, int64_t deadline, enum stp_err *err)
{
	char name[INET6_ADDRSTRLEN];
	struct sockaddr_storage ss;
	if (!client_mux_eligible(p))
		return -2;
	if (host != NULL && !stp_proxy_remote_dns(p)) {
		/* socks5:// resolves here, as a plain CONNECT does: the proxy
		 * gets the address, never the name */
		struct socks_addr t;
		socklen_t sl = 0;
		enum stp_err te = STP_OK;
		if (client_target_encode(&t, p, host, port, NULL, &te) < 0 ||
		    sa_from_socks(&ss, &sl, &t) < 0) {
			if (te == STP_OK)
				te = STP_ERR_TARGET_FAMILY;
			if (err)
				*err = te;
			errno = stp_err_errno(te);
			return -1;
		}
		sa = (const struct sockaddr *)&ss;
		host = NULL;
	}
	if (host == NULL) {
		const void *a = sa->sa_family == AF_INET
					? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
					: (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
		    !inet_ntop(sa->sa_family, a, name, sizeof(name)))
			return -2;
		host = name;
		port = (uint16_t)sa_port(sa);
	}
	enum stp_err e = STP_OK;
	struct ma_conn *c = ma_get(p, deadline, &e);
	if (c == NULL && e == STP_OK)
		return -2;
	if (c == NULL) {
		if (err)
			*err = e;
		errno = stp_err_errno(e);
		return -1;
	}
	int left = client_remaining(deadline);
	int fd = stp_mux_connect(c->m, host, port, left < 0 ? -1 : left, &e);
	pthread_mutex_lock(&ma_lock);
	ma_put(c);
	pthread_mutex_unlock(&ma_lock);
	if (fd >= 0) {
		log_debug("connect %s:%u: a stream of the multiplexed connection", host, port);
		if (err)
			*err = STP_OK;
		return fd;
	}
	/* The connection died under us: a plain one this time (the next
	 * connect reconnects). Anything else is the stream's own answer. */
	if (e == STP_ERR_PROXY_CLOSED)
		return -2;
	if (err)
		*err = e;
	errno = stp_err_errno(e);
	return -1;
}
