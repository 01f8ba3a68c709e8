/*
 * tp_remote.c - TRANSPARENT's "remote" engine: the relays run in
 * stp-relayd, spoken to over N2 (docs/protocol.md) on a Unix socket
 * (`relay unix:PATH`) or TLS with a client certificate (`relay HOST:PORT`
 * with relay-tls-ca/-cert/-key). The workers then need no CAP_NET_ADMIN.
 *
 * open() is asynchronous: opened() comes when OPENED arrives. counters()
 * returns the last COUNTS and asks for fresh ones. close() waits (bounded)
 * for CLOSED, so the final counters and "nothing passes afterwards" hold
 * when it returns, as the seam promises; other messages that arrive
 * meanwhile stay queued for the loop. When the connection is lost every
 * relay ends with "relay-lost" (opens not yet answered get X'01').
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/privpem.h"
#include "common/sockaddr.h"
#include "ext/transparent/tp_conf.h"
#include "ext/transparent/tp_engine.h"
#include "ext/transparent/tp_n2chan.h"

#define REMOTE_WAIT_MS 2000 /* connect, handshake, HELLO, CLOSED */

struct tp_engine {
	struct ev_loop *loop;
	char relay[256];
	char host[256]; /* TLS: the name or address checked in the certificate */
	SSL_CTX *tls;
	struct n2chan ch;
	bool up;
	ev_io io;
	uint32_t next_id;
	struct tp_relay *relays;
};

struct tp_relay {
	struct tp_engine *e;
	struct tp_relay *prev, *next;
	uint32_t id;
	struct tp_engine_cb cb;
	void *arg;
	bool pending; /* OPEN sent, OPENED not yet in */
	struct tp_counters last;
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Waits until fd is ready for ev (POLLIN/POLLOUT) or deadline: 0 / -1. */
static int wait_fd(int fd, short ev, long deadline)
{
	struct pollfd p = { fd, ev, 0 };
	long left = deadline - now_ms();

	if (left <= 0)
		return -1;
	return poll(&p, 1, (int)left) > 0 ? 0 : -1;
}

/* ---- relays ---- */
static void relay_unlink(struct tp_relay *r)
{
	struct tp_engine *e = r->e;

	if (r->prev)
		r->prev->next = r->next;
	else
		e->relays = r->next;
	if (r->next)
		r->next->prev = r->prev;
}

static struct tp_relay *relay_find(struct tp_engine *e, uint32_t id)
{
	struct tp_relay *r = e->relays;

	while (r && r->id != id)
		r = r->next;
	return r;
}

static void counters_from(struct tp_counters *k, const struct n2_counters *n)
{
	k->pkts_up = n->pkts_up;
	k->bytes_up = n->bytes_up;
	k->pkts_down = n->pkts_down;
	k->bytes_down = n->bytes_down;
}

/* ---- the connection ---- */
static void conn_down(struct tp_engine *e, const char *why)
{
	struct tp_relay *r;

	if (!e->up)
		return;
	log_warnx("transparent: relay %s lost: %s", e->relay, why);
	ev_io_stop(e->loop, &e->io);
	n2chan_close(&e->ch);
	e->up = false;
	/* One at a time from the head: a callback may close other relays. */
	while ((r = e->relays) != NULL) {
		struct tp_engine_cb cb = r->cb;
		void *arg = r->arg;
		struct tp_counters k = r->last;
		bool pending = r->pending;

		relay_unlink(r);
		free(r);
		if (pending)
			cb.opened(arg, SOCKS5_REP_GENERAL_FAILURE, NULL);
		else
			cb.ended(arg, "relay-lost", &k);
	}
}

static void conn_arm(struct tp_engine *e)
{
	int ev = EV_READ | (e->ch.outlen > 0 ? EV_WRITE : 0);

	if (e->io.events != ev) {
		ev_io_stop(e->loop, &e->io);
		ev_io_set(&e->io, e->ch.fd, ev);
		ev_io_start(e->loop, &e->io);
	}
}

static void on_opened(struct tp_engine *e, struct tp_relay *r, const struct n2_msg *m)
{
	struct sockaddr_storage bnd;
	struct socks_addr sa;
	socklen_t len;

	if (!r->pending)
		return;
	r->pending = false;
	memset(&sa, 0, sizeof(sa));
	sa.atyp = m->u.opened.bnd.atyp;
	sa.port = m->u.opened.bnd.port;
	memcpy(sa.u.v6, m->u.opened.bnd.ip, 16);
	if (m->u.opened.rep != 0 || sa_from_socks(&bnd, &len, &sa) != 0) {
		struct tp_engine_cb cb = r->cb;
		void *arg = r->arg;

		relay_unlink(r);
		free(r);
		cb.opened(arg, m->u.opened.rep ? m->u.opened.rep : SOCKS5_REP_GENERAL_FAILURE,
			  NULL);
		return;
	}
	r->cb.opened(r->arg, 0, &bnd);
}

static void dispatch(struct tp_engine *e, const struct n2_msg *m)
{
	struct tp_relay *r = relay_find(e, m->id);

	/* Answers about relays already gone (an ENDED crossed our CLOSE) are
	 * dropped. */
	if (!r)
		return;
	switch (m->type) {
	case N2_OPENED:
		on_opened(e, r, m);
		break;
	case N2_COUNTS:
		counters_from(&r->last, &m->u.counts);
		break;
	case N2_ENDED: {
		struct tp_engine_cb cb = r->cb;
		void *arg = r->arg;
		struct tp_counters k;

		counters_from(&k, &m->u.ended.c);
		relay_unlink(r);
		free(r);
		cb.ended(arg, m->u.ended.why, &k);
		break;
	}
	default:
		break; /* CLOSED after a close() that stopped waiting */
	}
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tp_engine *e = w->data;
	struct n2_msg m;
	const char *why = NULL;
	int fill, rc = 0;

	if (revents & EV_READ) {
		do {
			fill = n2chan_fill(&e->ch);
			while (e->up && (rc = n2chan_next(&e->ch, &m, &why)) == 1)
				dispatch(e, &m);
			if (!e->up)
				return;
			if (rc < 0) {
				conn_down(e, why);
				return;
			}
			if (fill <= 0) {
				conn_down(e, fill == 0 ? "closed by the relay" : "read error");
				return;
			}
		} while (n2chan_pending(&e->ch));
	}
	if (n2chan_flush(&e->ch) < 0) {
		conn_down(e, "write error");
		return;
	}
	conn_arm(e);
}

/* A connected, non-blocking socket to the relay, or -1. */
static int dial(struct tp_engine *e, long deadline)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, err = 0;
	socklen_t elen = sizeof(err);

	if (strncmp(e->relay, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

		memset(&ss, 0, sizeof(ss));
		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", e->relay + 5);
		len = sizeof(*sun);
	} else if (sa_parse(&ss, &len, e->relay, -1) != 0) {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;

		if (getaddrinfo(e->host, strrchr(e->relay, ':') + 1, &hints, &ai) != 0 || !ai) {
			errno = EHOSTUNREACH;
			return -1;
		}
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		len = ai->ai_addrlen;
		freeaddrinfo(ai);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) != 0 &&
	    (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) != 0 ||
	     getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0)) {
		close(fd);
		errno = err ? err : ETIMEDOUT;
		return -1;
	}
	return fd;
}

static int tls_handshake(struct tp_engine *e, int fd, long deadline)
{
	SSL *ssl = SSL_new(e->tls);
	const char *reason;
	int rc;

	if (!ssl || SSL_set_fd(ssl, fd) != 1)
		goto fail;
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* The relay's certificate must name what `relay` says. */
	if (sa_parse(&(struct sockaddr_storage){ 0 }, &(socklen_t){ 0 }, e->host, 0) == 0) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), e->host);
	} else {
		SSL_set_tlsext_host_name(ssl, e->host);
		SSL_set1_host(ssl, e->host);
	}
	while ((rc = SSL_connect(ssl)) != 1) {
		int err = SSL_get_error(ssl, rc);

		if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
			goto fail;
		if (wait_fd(fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) != 0)
			goto fail;
	}
	n2chan_init(&e->ch, fd, ssl);
	return 0;
fail:
	reason = ERR_reason_error_string(ERR_peek_last_error());
	log_warnx("transparent: relay %s: TLS handshake failed: %s", e->relay,
		  reason ? reason : "timeout");
	ERR_clear_error();
	SSL_free(ssl);
	return -1;
}

/* Reads until one whole message is in or deadline: 1, or -1. */
static int read_msg(struct tp_engine *e, struct n2_msg *m, long deadline)
{
	const char *why = NULL;

	for (;;) {
		int rc = n2chan_next(&e->ch, m, &why);

		if (rc != 0)
			return rc;
		if (!n2chan_pending(&e->ch) && wait_fd(e->ch.fd, POLLIN, deadline) != 0)
			return -1;
		if (n2chan_fill(&e->ch) <= 0)
			return -1;
	}
}

static int flush_all(struct tp_engine *e, long deadline)
{
	int rc;

	while ((rc = n2chan_flush(&e->ch)) == 1)
		if (wait_fd(e->ch.fd, POLLOUT, deadline) != 0)
			return -1;
	return rc;
}

/* Connects, shakes hands, exchanges HELLO: bounded by REMOTE_WAIT_MS. */
static int conn_up(struct tp_engine *e)
{
	long deadline = now_ms() + REMOTE_WAIT_MS;
	struct n2_msg m = { .type = N2_HELLO, .id = 0, .u.version = N2_VERSION };
	int fd = dial(e, deadline);

	if (fd < 0) {
		log_warn("transparent: relay %s: connect", e->relay);
		return -1;
	}
	if (e->tls) {
		if (tls_handshake(e, fd, deadline) != 0) {
			close(fd);
			errno = ECONNREFUSED;
			return -1;
		}
	} else {
		n2chan_init(&e->ch, fd, NULL);
	}
	if (n2chan_send(&e->ch, &m) != 0 || flush_all(e, deadline) != 0 ||
	    read_msg(e, &m, deadline) != 1 || m.type != N2_HELLO || m.u.version != N2_VERSION) {
		log_warnx("transparent: relay %s: no N2 HELLO version 1", e->relay);
		n2chan_close(&e->ch);
		errno = EPROTO;
		return -1;
	}
	e->up = true;
	ev_io_init(&e->io, io_cb, e->ch.fd, EV_READ);
	e->io.data = e;
	ev_io_start(e->loop, &e->io);
	log_info("transparent: relay %s: connected", e->relay);
	return 0;
}

/* ---- the ops ---- */
static SSL_CTX *tls_client(const struct tp_conf *conf, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!conf->relay_ca || !conf->relay_cert || !conf->relay_key) {
		snprintf(err, errlen,
			 "remote engine: relay %s is TLS: relay-tls-ca, relay-tls-cert "
			 "and relay-tls-key are needed",
			 conf->relay);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Through privfile (privpem.h): the workers load them after the drop,
	 * and the broker opens root-only ones. */
	if (!ctx || privpem_load_ca(ctx, conf->relay_ca, false) != 1 ||
	    privpem_use_chain(ctx, conf->relay_cert) != 1 || privpem_use_key(ctx, conf->relay_key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen,
			 "remote engine: cannot load relay-tls-ca %s, -cert %s or -key %s",
			 conf->relay_ca, conf->relay_cert, conf->relay_key);
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

static struct tp_engine *remote_create(struct ev_loop *loop, const struct tp_conf *conf, char *err,
				       size_t errlen)
{
	struct tp_engine *e;
	const char *colon;

	if (!conf->relay || !conf->relay[0]) {
		snprintf(err, errlen, "remote engine: no `relay unix:PATH` or `relay HOST:PORT`");
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "remote engine: out of memory");
		return NULL;
	}
	e->loop = loop;
	e->next_id = 1;
	e->ch.fd = -1;
	snprintf(e->relay, sizeof(e->relay), "%s", conf->relay);
	if (strncmp(e->relay, "unix:", 5) != 0) {
		colon = strrchr(e->relay, ':');
		if (!colon || colon == e->relay || !colon[1]) {
			snprintf(err, errlen, "remote engine: relay %s: want HOST:PORT", e->relay);
			free(e);
			return NULL;
		}
		/* "[v6]:port" -> "v6", "host:port" -> "host" */
		if (e->relay[0] == '[')
			snprintf(e->host, sizeof(e->host), "%.*s", (int)(colon - e->relay - 2),
				 e->relay + 1);
		else
			snprintf(e->host, sizeof(e->host), "%.*s", (int)(colon - e->relay),
				 e->relay);
		e->tls = tls_client(conf, err, errlen);
		if (!e->tls) {
			free(e);
			return NULL;
		}
	}
	/* Not fatal: the relay may start later; open() connects again. */
	conn_up(e);
	return e;
}

static void remote_destroy(struct tp_engine *e)
{
	/* stp-relayd closes every relay of a connection that goes away. */
	while (e->relays) {
		struct tp_relay *r = e->relays;

		relay_unlink(r);
		free(r);
	}
	if (e->up) {
		ev_io_stop(e->loop, &e->io);
		n2chan_close(&e->ch);
	}
	SSL_CTX_free(e->tls);
	free(e);
}

static void addr_to(struct n2_addr *out, const struct sockaddr_storage *ss)
{
	struct socks_addr sa;
	struct sockaddr_storage u = *ss;

	sa_unmap(&u);
	memset(out, 0, sizeof(*out));
	if (sa_to_socks(&sa, (const struct sockaddr *)&u) != 0)
		return; /* atyp 0: n2_write refuses it */
	out->atyp = sa.atyp;
	memcpy(out->ip, sa.u.v6, sa.atyp == SOCKS_ATYP_IPV4 ? 4 : 16);
	out->port = sa.port;
}

static struct tp_relay *remote_open(struct tp_engine *e, const struct tp_assoc *a,
				    const struct tp_engine_cb *cb, void *arg)
{
	struct n2_msg m = { .type = N2_OPEN };
	struct tp_relay *r;

	if (!e->up && conn_up(e) != 0) {
		errno = ECONNREFUSED;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	m.id = r->id = e->next_id++;
	if (e->next_id == 0)
		e->next_id = 1;
	m.u.open.ptcl = a->ptcl;
	m.u.open.flags = a->end_on_fin ? N2_OPEN_END_ON_FIN : 0;
	m.u.open.idle_ms = a->idle_ms;
	addr_to(&m.u.open.src, &a->src);
	addr_to(&m.u.open.dst, &a->dst);
	addr_to(&m.u.open.bnd, &a->bnd);
	if (n2chan_send(&e->ch, &m) != 0) {
		free(r);
		errno = a->src.ss_family == AF_INET || a->src.ss_family == AF_INET6 ? ENOBUFS :
										      EAFNOSUPPORT;
		return NULL;
	}
	r->e = e;
	r->cb = *cb;
	r->arg = arg;
	r->pending = true;
	r->next = e->relays;
	if (e->relays)
		e->relays->prev = r;
	e->relays = r;
	conn_arm(e);
	return r;
}

static void remote_counters(struct tp_relay *r, struct tp_counters *out)
{
	struct n2_msg m = { .type = N2_COUNTERS, .id = r->id };

	*out = r->last;
	if (r->e->up && n2chan_send(&r->e->ch, &m) == 0)
		conn_arm(r->e);
}

/*
 * Finds CLOSED (or ENDED) for id among the whole messages in the input
 * buffer and takes it out, leaving the others in order for io_cb. 1 found,
 * 0 not yet.
 */
static int take_closed(struct n2chan *ch, uint32_t id, struct tp_counters *k)
{
	size_t off = 0, used;
	struct n2_msg m;
	struct socks_err err;

	while (n2_parse(&m, ch->in + off, ch->inlen - off, &used, &err) == SOCKS_DONE) {
		/* An ENDED that crossed our CLOSE carries the real final counters
		 * (the CLOSED that follows it has zeros and is then ignored). */
		if ((m.type == N2_CLOSED || m.type == N2_ENDED) && m.id == id) {
			counters_from(k, m.type == N2_CLOSED ? &m.u.counts : &m.u.ended.c);
			memmove(ch->in + off, ch->in + off + used, ch->inlen - off - used);
			ch->inlen -= used;
			return 1;
		}
		off += used;
	}
	return 0;
}

static void remote_close(struct tp_relay *r, struct tp_counters *final)
{
	struct tp_engine *e = r->e;
	struct n2_msg m = { .type = N2_CLOSE, .id = r->id };
	long deadline = now_ms() + REMOTE_WAIT_MS;
	struct tp_counters k = r->last;
	int found = 0;

	relay_unlink(r);
	free(r);
	if (e->up && n2chan_send(&e->ch, &m) == 0 && flush_all(e, deadline) == 0) {
		while (!(found = take_closed(&e->ch, m.id, &k)) && e->ch.inlen < sizeof(e->ch.in)) {
			if (!n2chan_pending(&e->ch) && wait_fd(e->ch.fd, POLLIN, deadline) != 0)
				break;
			if (n2chan_fill(&e->ch) <= 0)
				break;
		}
		/* What else came in is dispatched by the loop, not from here. */
		if (e->ch.inlen > 0)
			ev_feed_event(e->loop, &e->io, EV_READ);
	}
	if (!found && e->up)
		log_warnx("transparent: relay %s: no CLOSED for relay %u, last counters kept",
			  e->relay, m.id);
	if (final)
		*final = k;
}

const struct tp_engine_ops tp_engine_remote = {
	.name = "remote",
	.create = remote_create,
	.destroy = remote_destroy,
	.open = remote_open,
	.counters = remote_counters,
	.close = remote_close,
};
