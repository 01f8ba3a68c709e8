/*
 * rd_conn.c - one N2 control connection to stp-relayd: HELLO, then OPEN,
 * COUNTERS and CLOSE from the control side, answered with OPENED, COUNTS
 * and CLOSED; ENDED when a relay ends on its own (FIN, idle). When the
 * connection goes, for whatever reason, every relay it opened is closed
 * (seed 003 section 4: the relay configuration dies with its control
 * connection).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/transparent/tp_n2chan.h"
#include "relayd/relayd.h"

#define RD_HELLO_TIMEOUT 10. /* seconds */

struct rd_relay {
	struct rd_relay *next;
	struct rd_conn *c;
	uint32_t id; /* the control side's */
	struct tp_relay *r;
	bool opened; /* OPENED X'00' sent */
	struct tp_assoc a;
	char desc[200];
};

struct rd_conn {
	struct rd_conn *prev, *next;
	struct relayd *d;
	unsigned long num;
	char peer[64];
	struct n2chan ch;
	ev_io io;
	ev_timer hello_w; /* TLS handshake and HELLO must be done by then */
	bool hello_sent, hello_seen, handshaking;
	struct rd_relay *relays;
};

static void conn_arm(struct rd_conn *c)
{
	int ev = EV_READ | (c->ch.outlen > 0 ? EV_WRITE : 0);

	if (c->io.events != ev) {
		ev_io_stop(c->d->loop, &c->io);
		ev_io_set(&c->io, c->ch.fd, ev);
		ev_io_start(c->d->loop, &c->io);
	}
}

static void send_msg(struct rd_conn *c, const struct n2_msg *m)
{
	if (n2chan_send(&c->ch, m) != 0)
		log_warnx("conn %lu: output full, %s for relay %" PRIu32 " dropped", c->num,
			  n2_type_name(m->type), m->id);
	conn_arm(c);
}

static void counters_to(struct n2_counters *o, const struct tp_counters *k)
{
	o->pkts_up = k->pkts_up;
	o->bytes_up = k->bytes_up;
	o->pkts_down = k->pkts_down;
	o->bytes_down = k->bytes_down;
}

static struct rd_relay **relay_slot(struct rd_conn *c, uint32_t id)
{
	struct rd_relay **pp = &c->relays;

	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

/* The one line per association, from the final counters. */
static void relay_log(const struct rd_relay *rr, const char *why, const struct tp_counters *k)
{
	log_info("conn %lu relay %" PRIu32 ": %s ended (%s): up %" PRIu64 " pkts %" PRIu64
		 " bytes, down %" PRIu64 " pkts %" PRIu64 " bytes",
		 rr->c->num, rr->id, rr->desc, why, k->pkts_up, k->bytes_up, k->pkts_down,
		 k->bytes_down);
}

static void describe(struct rd_relay *rr, const struct tp_assoc *a,
		     const struct sockaddr_storage *bnd)
{
	char s[SA_STR_MAX], b[SA_STR_MAX], t[SA_STR_MAX];

	snprintf(rr->desc, sizeof(rr->desc), "%s %s -> %s -> %s",
		 a->ptcl == IPPROTO_TCP ? "tcp" :
		 a->ptcl == IPPROTO_UDP ? "udp" :
					  "ptcl?",
		 sa_str((const struct sockaddr *)&a->src, s, sizeof(s)),
		 sa_str((const struct sockaddr *)bnd, b, sizeof(b)),
		 sa_str((const struct sockaddr *)&a->dst, t, sizeof(t)));
}

/* ---- engine callbacks ---- */
static void relay_opened(void *arg, uint8_t rep, const struct sockaddr_storage *bnd)
{
	struct rd_relay *rr = arg;
	struct rd_conn *c = rr->c;
	struct n2_msg m = { .type = N2_OPENED, .id = rr->id };
	struct socks_addr sa;

	m.u.opened.rep = rep;
	m.u.opened.bnd.atyp = SOCKS_ATYP_IPV4;
	if (rep == 0 && bnd && sa_to_socks(&sa, (const struct sockaddr *)bnd) == 0) {
		m.u.opened.bnd.atyp = sa.atyp;
		memcpy(m.u.opened.bnd.ip, sa.u.v6, sa.atyp == SOCKS_ATYP_IPV4 ? 4 : 16);
		m.u.opened.bnd.port = sa.port;
		rr->opened = true;
		describe(rr, &rr->a, bnd);
		log_info("conn %lu relay %" PRIu32 ": %s opened", c->num, rr->id, rr->desc);
	}
	send_msg(c, &m);
	if (rep != 0) {
		*relay_slot(c, rr->id) = rr->next;
		free(rr);
	}
}

static void relay_ended(void *arg, const char *why, const struct tp_counters *k)
{
	struct rd_relay *rr = arg;
	struct rd_conn *c = rr->c;
	struct n2_msg m = { .type = N2_ENDED, .id = rr->id };

	snprintf(m.u.ended.why, sizeof(m.u.ended.why), "%s", why);
	counters_to(&m.u.ended.c, k);
	relay_log(rr, why, k);
	send_msg(c, &m);
	*relay_slot(c, rr->id) = rr->next;
	free(rr);
}

static const struct tp_engine_cb relay_cb = { relay_opened, relay_ended };

/* ---- requests ---- */
static int addr_from(struct sockaddr_storage *ss, const struct n2_addr *a)
{
	struct socks_addr sa;
	socklen_t len;

	memset(&sa, 0, sizeof(sa));
	sa.atyp = a->atyp;
	sa.port = a->port;
	memcpy(sa.u.v6, a->ip, 16);
	memset(ss, 0, sizeof(*ss));
	return sa_from_socks(ss, &len, &sa);
}

/* BND unspecified (a control side on another host does not know our
 * addresses): our address toward S, as the routing table picks it, port
 * kept. 0, or -1 with errno (ENETUNREACH: no route toward S). */
static int bnd_toward_src(struct tp_assoc *a)
{
	static const uint8_t zeros[16];
	socklen_t len = sizeof(a->bnd);
	unsigned port = sa_port((struct sockaddr *)&a->bnd);
	bool unspec = a->bnd.ss_family == AF_INET ?
			      ((struct sockaddr_in *)&a->bnd)->sin_addr.s_addr == 0 :
			      memcmp(&((struct sockaddr_in6 *)&a->bnd)->sin6_addr, zeros, 16) == 0;
	int fd, rc, saved;

	if (!unspec || a->src.ss_family != a->bnd.ss_family)
		return 0;
	fd = socket(a->src.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	rc = connect(fd, (struct sockaddr *)&a->src, sa_len((struct sockaddr *)&a->src));
	if (rc == 0)
		rc = getsockname(fd, (struct sockaddr *)&a->bnd, &len);
	saved = errno;
	close(fd);
	errno = saved;
	if (rc == 0)
		sa_set_port((struct sockaddr *)&a->bnd, port);
	return rc;
}

/* 0, or -1 when the connection was closed (a protocol error). */
static int on_open(struct rd_conn *c, const struct n2_msg *m)
{
	struct tp_assoc a;
	struct rd_relay *rr;

	if (*relay_slot(c, m->id)) {
		rd_conn_close(c, "OPEN for an ID in use");
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.ptcl = m->u.open.ptcl;
	a.end_on_fin = m->u.open.flags & N2_OPEN_END_ON_FIN;
	a.idle_ms = m->u.open.idle_ms;
	rr = calloc(1, sizeof(*rr));
	if (!rr || addr_from(&a.src, &m->u.open.src) != 0 ||
	    addr_from(&a.dst, &m->u.open.dst) != 0 || addr_from(&a.bnd, &m->u.open.bnd) != 0) {
		free(rr);
		rd_conn_close(c, "out of memory");
		return -1;
	}
	rr->c = c;
	rr->id = m->id;
	rr->a = a;
	describe(rr, &a, &a.bnd);
	rr->next = c->relays;
	c->relays = rr;
	rr->r = bnd_toward_src(&rr->a) == 0 ? c->d->ops->open(c->d->engine, &rr->a, &relay_cb, rr) :
					      NULL;
	if (!rr->r) {
		int e = errno;

		log_warnx("conn %lu relay %" PRIu32 ": %s refused: %s", c->num, rr->id, rr->desc,
			  strerror(e));
		relay_opened(rr, tp_rep_of_errno(e), NULL);
	}
	return 0;
}

static void on_counters(struct rd_conn *c, const struct n2_msg *m)
{
	struct rd_relay *rr = *relay_slot(c, m->id);
	struct n2_msg out = { .type = N2_COUNTS, .id = m->id };
	struct tp_counters k = { 0, 0, 0, 0 };

	/* An ID that already ended (ENDED crossed this request) gets zeros. */
	if (rr && rr->r)
		c->d->ops->counters(rr->r, &k);
	counters_to(&out.u.counts, &k);
	send_msg(c, &out);
}

static void relay_close(struct rd_conn *c, struct rd_relay *rr, const char *why,
			struct tp_counters *k)
{
	c->d->ops->close(rr->r, k);
	relay_log(rr, why, k);
	*relay_slot(c, rr->id) = rr->next;
	free(rr);
}

static void on_close(struct rd_conn *c, const struct n2_msg *m)
{
	struct rd_relay *rr = *relay_slot(c, m->id);
	struct n2_msg out = { .type = N2_CLOSED, .id = m->id };
	struct tp_counters k = { 0, 0, 0, 0 };

	if (rr)
		relay_close(c, rr, "close", &k);
	counters_to(&out.u.counts, &k);
	send_msg(c, &out);
}

/* 0 to go on, -1 when the connection was closed. */
static int dispatch(struct rd_conn *c, const struct n2_msg *m)
{
	if (!c->hello_seen) {
		if (m->type != N2_HELLO || m->u.version != N2_VERSION) {
			rd_conn_close(c, "no HELLO with version 1");
			return -1;
		}
		c->hello_seen = true;
		ev_timer_stop(c->d->loop, &c->hello_w);
		return 0;
	}
	switch (m->type) {
	case N2_OPEN:
		return on_open(c, m);
	case N2_COUNTERS:
		on_counters(c, m);
		break;
	case N2_CLOSE:
		on_close(c, m);
		break;
	default:
		log_warnx("conn %lu: %s from the control side", c->num, n2_type_name(m->type));
		rd_conn_close(c, "unexpected message");
		return -1;
	}
	return 0;
}

/* ---- the connection ---- */
static int handshake(struct rd_conn *c)
{
	int rc = SSL_accept(c->ch.ssl);

	if (rc == 1) {
		c->handshaking = false;
		log_info("conn %lu: TLS from %s, %s", c->num, c->peer, SSL_get_version(c->ch.ssl));
		return 0;
	}
	switch (SSL_get_error(c->ch.ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return 1;
	case SSL_ERROR_WANT_WRITE:
		ev_io_stop(c->d->loop, &c->io);
		ev_io_set(&c->io, c->ch.fd, EV_READ | EV_WRITE);
		ev_io_start(c->d->loop, &c->io);
		return 1;
	default:
		return -1;
	}
}

/* Takes in what the socket has and dispatches every whole message:
 * 0, or -1 when the connection was closed. */
static int conn_read(struct rd_conn *c)
{
	struct n2_msg m;
	const char *why = NULL;
	int fill, rc;

	do {
		fill = n2chan_fill(&c->ch);
		while ((rc = n2chan_next(&c->ch, &m, &why)) == 1)
			if (dispatch(c, &m) != 0)
				return -1;
		if (rc < 0) {
			log_warnx("conn %lu: %s", c->num, why);
			rd_conn_close(c, "protocol error");
			return -1;
		}
		if (fill <= 0) {
			rd_conn_close(c, fill == 0 ? "closed by the control side" : "read error");
			return -1;
		}
	} while (n2chan_pending(&c->ch));
	return 0;
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rd_conn *c = w->data;

	if (c->handshaking) {
		int rc = handshake(c);

		if (rc < 0)
			rd_conn_close(c, "TLS handshake failed");
		if (rc != 0)
			return;
	}
	if (!c->hello_sent) {
		struct n2_msg h = { .type = N2_HELLO, .id = 0, .u.version = N2_VERSION };

		c->hello_sent = true;
		send_msg(c, &h);
	}
	if ((revents & EV_READ) && conn_read(c) != 0)
		return;
	if (n2chan_flush(&c->ch) < 0) {
		rd_conn_close(c, "write error");
		return;
	}
	conn_arm(c);
}

static void hello_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	rd_conn_close(w->data, "no TLS handshake and HELLO in time");
}

void rd_conn_new(struct relayd *d, int fd, SSL *ssl, const char *peer)
{
	struct rd_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		log_warnx("control connection from %s: out of memory", peer);
		if (ssl)
			SSL_free(ssl);
		close(fd);
		return;
	}
	c->d = d;
	c->num = ++d->next_conn;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	n2chan_init(&c->ch, fd, ssl);
	c->handshaking = ssl != NULL;
	c->next = d->conns;
	if (d->conns)
		d->conns->prev = c;
	d->conns = c;
	log_info("conn %lu: control connection from %s", c->num, c->peer);
	ev_io_init(&c->io, conn_cb, fd, EV_READ | EV_WRITE);
	c->io.data = c;
	ev_io_start(d->loop, &c->io);
	ev_timer_init(&c->hello_w, hello_timeout_cb, RD_HELLO_TIMEOUT, 0.);
	c->hello_w.data = c;
	ev_timer_start(d->loop, &c->hello_w);
}

void rd_conn_close(struct rd_conn *c, const char *why)
{
	struct relayd *d = c->d;
	unsigned n = 0;

	while (c->relays) {
		struct tp_counters k;

		relay_close(c, c->relays, "control-lost", &k);
		n++;
	}
	log_info("conn %lu: closed (%s), %u relays closed with it", c->num, why, n);
	ev_io_stop(d->loop, &c->io);
	ev_timer_stop(d->loop, &c->hello_w);
	n2chan_close(&c->ch);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}
