/*
 * bd_listen.c - LISTEN X'10': one control connection, N TCP binds and M
 * UDP binds (docs/protocol.md section 5.9). The reply lists every bind's
 * address; from then on the server announces each peer that arrives on a
 * TCP bind (ARRIVAL, with an id), the client takes it with ACCEPT on a new
 * connection (bd_claim.c) or refuses it (REFUSE), and an arrival nobody
 * takes in accept-timeout seconds is closed (CLOSED X'06'). Accepting
 * pauses while max-pending arrivals wait or max-peers peers relay; the
 * kernel's backlog holds the rest. Everything ends with the control
 * connection.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/bind/bd.h"
#include "server/flow.h"
#include "server/session.h"

static void process_input(struct session *s);

/* ---- sending on the control connection ---- */

/* -1: the session is gone (write error), touch nothing of it. */
static int send_msg(struct bd_ctl *c, const struct mbind_msg *m)
{
	uint8_t buf[MBIND_MSG_MAX];
	size_t n = mbind_msg_write(buf, sizeof(buf), m);
	return n ? session_send(c->s, buf, n) : 0;
}

/* ---- accepting ---- */

static void set_paused(struct bd_ctl *c)
{
	bool pause = c->pending >= c->conf->max_pending || c->peers >= c->conf->max_peers;
	if (pause == c->paused)
		return;
	c->paused = pause;
	for (unsigned i = 0; i < c->n_tcp; i++) {
		if (pause)
			ev_io_stop(c->loop, &c->tcp[i].io);
		else
			ev_io_start(c->loop, &c->tcp[i].io);
	}
}

static void unlink_arrival(struct bd_arrival *a)
{
	struct bd_ctl *c = a->ctl;
	if (a->prev)
		a->prev->next = a->next;
	else
		c->arrivals = a->next;
	if (a->next)
		a->next->prev = a->prev;
}

/* A data connection handed over by an ACCEPT ends: its place in the
 * client limits goes back (session_take_conn kept it). */
static void uncount(struct bd_arrival *a)
{
	if (a->counted)
		session_uncount(&a->ctl->client);
	a->counted = false;
}

/* A pending arrival ends without its ACCEPT: expired, refused, the peer
 * left, or its control is going. */
static void drop_pending(struct bd_arrival *a, const char *why)
{
	struct bd_ctl *c = a->ctl;
	ev_timer_stop(c->loop, &a->timer);
	ev_io_stop(c->loop, &a->watch);
	uncount(a); /* claimed, not yet relaying: the control is going */
	close(a->fd);
	flow_close(a->flow, why);
	unlink_arrival(a);
	c->pending--;
	free(a);
}

static void on_arrival_timeout(EV_P_ ev_timer *t, int revents)
{
	struct bd_arrival *a = t->data;
	struct bd_ctl *c = a->ctl;
	if (!bd_table_remove(a))
		return; /* an ACCEPT took it just now: the claim wins */
	struct mbind_msg m = { .type = MBIND_MSG_CLOSED, .rep = SOCKS5_REP_TTL_EXPIRED };
	memcpy(m.id, a->id, MBIND_ID_LEN);
	drop_pending(a, "accept timeout");
	set_paused(c);
	send_msg(c, &m);
}

/* A parked peer is readable: it left (FIN or RST), or it sent bytes
 * first. Peeking consumes nothing; bytes stop the watch (the data
 * connection gets them, and sees the peer's end then). */
static void on_peer_readable(EV_P_ ev_io *w, int revents)
{
	struct bd_arrival *a = w->data;
	struct bd_ctl *c = a->ctl;
	uint8_t b;
	ssize_t r = recv(a->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	ev_io_stop(c->loop, &a->watch);
	if (r > 0 || !bd_table_remove(a))
		return; /* bytes first, or an ACCEPT took it just now: the claim wins */
	struct mbind_msg m = { .type = MBIND_MSG_CLOSED, .rep = MBIND_REP_PEER_GONE };
	memcpy(m.id, a->id, MBIND_ID_LEN);
	drop_pending(a, r == 0 ? "peer closed before accept" : "peer reset before accept");
	set_paused(c);
	send_msg(c, &m);
}

static int announce(struct bd_ctl *c, struct bd_arrival *a)
{
	struct mbind_msg m = { .type = MBIND_MSG_ARRIVAL, .bind = a->bind->index };
	memcpy(m.id, a->id, MBIND_ID_LEN);
	m.peer = a->peer;
	return send_msg(c, &m);
}

/* One peer on bind b: the rules for it (listenreply), a flow, an id, the
 * table, the announcement. */
static void take_peer(struct bd_tcp *b, int fd, const struct sockaddr_storage *from)
{
	struct bd_ctl *c = b->ctl;
	struct bd_arrival *a = calloc(1, sizeof(*a));
	const char *why;
	if (!a) {
		close(fd);
		return;
	}
	a->ctl = c;
	a->bind = b;
	a->fd = fd;
	sa_to_socks(&a->peer, (const struct sockaddr *)from);
	a->flow = flow_open(c->s, RULE_CMD_LISTENREPLY, MBIND_CMD_ACCEPT, &a->peer, &why);
	if (!a->flow) {
		close(fd); /* denied: the deny line says why; the client never hears */
		free(a);
		return;
	}
	flow_set_data(a->flow, a);
	if (getrandom(a->id, sizeof(a->id), 0) != (ssize_t)sizeof(a->id)) {
		flow_close(a->flow, "no random id");
		close(fd);
		free(a);
		return;
	}
	a->state = BD_PENDING;
	a->next = c->arrivals;
	if (c->arrivals)
		c->arrivals->prev = a;
	c->arrivals = a;
	c->pending++;
	ev_timer_init(&a->timer, on_arrival_timeout, (ev_tstamp)c->conf->accept_timeout, 0.);
	a->timer.data = a;
	ev_timer_start(c->loop, &a->timer);
	ev_io_init(&a->watch, on_peer_readable, fd, EV_READ);
	a->watch.data = a;
	ev_io_start(c->loop, &a->watch);
	bd_table_add(a);
	set_paused(c);
	announce(c, a);
}

static void on_bind_readable(EV_P_ ev_io *w, int revents)
{
	struct bd_tcp *b = w->data;
	struct bd_ctl *c = b->ctl;
	int one = 1;
	/* A few per wake-up, and never past the limits. */
	for (int k = 0; k < 16 && !c->paused; k++) {
		struct sockaddr_storage from;
		socklen_t len = sizeof(from);
		int fd = accept4(b->fd, (struct sockaddr *)&from, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				static struct log_rate rl = LOG_RATE_INIT(
					"accept on a LISTEN bind");
				log_warn_rl(&rl, "accept on a LISTEN bind");
			}
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		sa_unmap(&from);
		struct session *s = c->s;
		take_peer(b, fd, &from);
		if (session_ending(s))
			return; /* announcing failed: the session is closing */
	}
}

/* ---- claimed arrivals (handed over by bd_claim.c) ---- */

static void on_peer_done(struct flow *f, const char *reason)
{
	struct bd_arrival *a = flow_data(f);
	struct bd_ctl *c = a->ctl;
	uint64_t up, down;
	flow_counts(f, &up, &down);
	flow_count(a->bind->flow, up, down);
	flow_close(f, reason);
	uncount(a);
	unlink_arrival(a);
	c->peers--;
	free(a);
	set_paused(c);
}

static void start_relay(struct bd_ctl *c, struct bd_arrival *a)
{
	uint8_t buf[SOCKS5_REPLY_MAX];
	size_t n = socks5_reply_write(buf, sizeof(buf), SOCKS5_REP_SUCCEEDED, &a->peer);
	ev_timer_stop(c->loop, &a->timer);
	ev_io_stop(c->loop, &a->watch);
	c->pending--;
	/* The reply is the data connection's first bytes; a fresh socket
	 * takes them whole. */
	if (conn_write(&a->conn, buf, n) != (ssize_t)n ||
	    flow_relay_stream(a->flow, &a->conn, a->fd, on_peer_done) < 0) {
		conn_close(&a->conn);
		close(a->fd);
		flow_close(a->flow, "data connection failed");
		uncount(a);
		unlink_arrival(a);
		free(a);
		return;
	}
	flow_reply(a->flow, SOCKS5_REP_SUCCEEDED);
	a->state = BD_RELAYING;
	c->peers++;
}

static void on_wake(EV_P_ ev_async *w, int revents)
{
	struct bd_ctl *c = w->data;
	struct bd_arrival *a;
	while ((a = bd_table_take_claimed(c)))
		start_relay(c, a);
	set_paused(c);
}

/* ---- the end ---- */

static void bd_destroy(struct session *s)
{
	struct bd_ctl *c = session_handler_data(s);
	if (!c)
		return;
	const char *why = session_close_reason(s);
	ev_timer_stop(c->loop, &c->body_timer);
	if (c->started) {
		ev_async_stop(c->loop, &c->wake);
		/* After this no ACCEPT can reach us; the claims that did are ours
		 * to close. */
		for (struct bd_arrival *a = bd_table_detach(c), *next; a; a = next) {
			next = a->cnext;
			conn_close(&a->conn);
		}
	}
	while (c->arrivals) {
		struct bd_arrival *a = c->arrivals;
		if (a->state == BD_RELAYING) {
			uint64_t up, down;
			flow_counts(a->flow, &up, &down);
			flow_count(a->bind->flow, up, down);
			flow_close(a->flow, why); /* stops the relay, closes both ends */
			uncount(a);
			unlink_arrival(a);
			free(a);
		} else {
			drop_pending(a, why); /* pending or claimed: the peer was never relayed */
		}
	}
	for (unsigned i = 0; i < c->n_tcp; i++) {
		ev_io_stop(c->loop, &c->tcp[i].io);
		if (c->tcp[i].fd >= 0)
			close(c->tcp[i].fd);
	}
	/* The binds' flows (and the UDP relays they own) close with the
	 * session (flow_close_all), after this. */
	free(c);
}

static const struct session_cmd_ops bd_ops = { "listen", bd_destroy };

/* ---- the request ---- */

static int open_tcp(struct bd_ctl *c, unsigned i, const struct mbind_entry *e,
		    struct mbind_bound *out)
{
	struct sockaddr_storage where;
	socklen_t len = sizeof(where);
	int one = 1;
	unsigned backlog = e->arg ? e->arg : c->conf->backlog;
	if (backlog > c->conf->max_backlog)
		backlog = c->conf->max_backlog;
	session_bind_address(c->s, &where);
	sa_set_port((struct sockaddr *)&where, e->port);
	int fd = session_socket(c->s, where.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&where, sa_len((struct sockaddr *)&where)) < 0 ||
	    listen(fd, (int)backlog) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&where, &len);
	sa_unmap(&where);
	struct bd_tcp *b = &c->tcp[c->n_tcp++];
	b->ctl = c;
	b->index = (uint8_t)i;
	b->fd = fd;
	ev_io_init(&b->io, on_bind_readable, fd, EV_READ);
	b->io.data = b;
	out->kind = MBIND_KIND_TCP;
	sa_to_socks(&out->bnd, (struct sockaddr *)&where);
	return 0;
}

/* The request's header was consumed by the core; the parser wants it
 * whole, so it is written back in front of the body. */
static enum socks_res parse_request(struct session *s, struct mbind_request *req, size_t *body,
				    struct socks_err *err)
{
	uint8_t buf[MBIND_REQUEST_MAX];
	size_t len, cap, used;
	const uint8_t *in = session_input(s, &len, &cap);
	size_t h = socks5_request_write(buf, sizeof(buf), MBIND_CMD_LISTEN, session_target(s));
	size_t take = len < sizeof(buf) - h ? len : sizeof(buf) - h;
	memcpy(buf + h, in, take);
	enum socks_res r = mbind_request_parse(req, buf, h + take, &used, err);
	if (r == SOCKS_MORE && h + take == sizeof(buf))
		return SOCKS_BAD; /* cannot happen: MBIND_REQUEST_MAX bounds it */
	if (r == SOCKS_DONE)
		*body = used - h;
	return r;
}

static int fail(struct bd_ctl *c, uint8_t rep, const char *why)
{
	session_warnx(c->s, "LISTEN refused: %s", why);
	return session_finish(c->s, rep, why);
}

/* Opens the binds: flows (the rules: listen for TCP, udpbind for UDP),
 * sockets, relays; then the reply. */
static void open_binds(struct bd_ctl *c, const struct mbind_request *req)
{
	struct session *s = c->s;
	struct mbind_reply rep = { .rep = SOCKS5_REP_SUCCEEDED, .n = req->n };
	const char *why;
	if (req->n > c->conf->max_binds) {
		fail(c, MBIND_REP_LIMIT, "more binds than max-binds");
		return;
	}
	for (unsigned i = 0; i < req->n; i++) {
		/* As UDP ASSOCIATE: X'86' without UDP-Naked has no agreed way
		 * to carry datagrams. */
		if (req->e[i].kind == MBIND_KIND_UDP && session_udp_refused(s)) {
			fail(c, SOCKS5_REP_CMD_NOT_SUPPORTED, "UDP bind without UDP-Naked");
			return;
		}
	}
	for (unsigned i = 0; i < req->n; i++) {
		const struct mbind_entry *e = &req->e[i];
		bool udp = e->kind == MBIND_KIND_UDP;
		struct flow *f = flow_open(s, udp ? RULE_CMD_UDPBIND : RULE_CMD_LISTEN,
					   MBIND_CMD_LISTEN, &req->dst, &why);
		if (!f) {
			fail(c, SOCKS5_REP_NOT_ALLOWED, why);
			return;
		}
		int rc;
		if (udp) {
			c->udp[c->n_udp].flow = f;
			rc = bd_udp_open(c, i, e, &rep.b[i]);
		} else {
			c->tcp[c->n_tcp].flow = f; /* open_tcp fills the rest */
			c->tcp[c->n_tcp].fd = -1;
			rc = open_tcp(c, i, e, &rep.b[i]);
		}
		if (rc < 0) {
			fail(c,
			     e->port && errno == EADDRINUSE ? SOCKS5_REP_NOT_ALLOWED :
							      SOCKS5_REP_GENERAL_FAILURE,
			     "cannot open a bind socket");
			return;
		}
		flow_reply(f, SOCKS5_REP_SUCCEEDED);
	}
	rep.bnd = rep.b[0].bnd;
	uint8_t buf[MBIND_REPLY_MAX];
	size_t n = mbind_reply_write(buf, sizeof(buf), &rep);
	session_note_reply(s, SOCKS5_REP_SUCCEEDED);
	ev_async_init(&c->wake, on_wake);
	c->wake.data = c;
	ev_async_start(c->loop, &c->wake);
	c->started = true;
	if (session_send(s, buf, n) < 0)
		return;
	for (unsigned i = 0; i < c->n_tcp; i++)
		ev_io_start(c->loop, &c->tcp[i].io);
	session_info(s, "LISTEN: %u TCP and %u UDP binds", c->n_tcp, c->n_udp);
}

static void on_body_timeout(EV_P_ ev_timer *t, int revents)
{
	struct bd_ctl *c = t->data;
	fail(c, SOCKS5_REP_GENERAL_FAILURE, "LISTEN request incomplete");
}

/* ---- control input: the body first, then REFUSE messages ---- */

static void refuse(struct bd_ctl *c, const uint8_t id[MBIND_ID_LEN])
{
	for (struct bd_arrival *a = c->arrivals; a; a = a->next) {
		if (a->state != BD_PENDING || memcmp(a->id, id, MBIND_ID_LEN) != 0)
			continue;
		if (bd_table_remove(a)) {
			drop_pending(a, "refused by the client");
			set_paused(c);
		}
		return;
	}
	/* Unknown or already gone: the CLOSED the client will see, or saw. */
}

static void process_input(struct session *s)
{
	struct bd_ctl *c = session_handler_data(s);
	struct socks_err err = { 0, NULL };
	size_t len, cap, used;

	if (!c->started) {
		struct mbind_request req;
		size_t body = 0;
		memset(&req, 0, sizeof(req));
		enum socks_res r = parse_request(s, &req, &body, &err);
		if (r == SOCKS_MORE)
			return;
		ev_timer_stop(c->loop, &c->body_timer);
		if (r == SOCKS_BAD) {
			fail(c, err.rep, err.why);
			return;
		}
		session_consume(s, body);
		open_binds(c, &req);
		if (session_ending(s))
			return;
	}
	for (;;) {
		const uint8_t *in = session_input(s, &len, &cap);
		struct mbind_msg m;
		if (len == 0)
			return;
		enum socks_res r = mbind_msg_parse(&m, in, len, &used, &err);
		if (r == SOCKS_MORE)
			return;
		if (r == SOCKS_BAD || m.type != MBIND_MSG_REFUSE) {
			session_warnx(s, "LISTEN control: %s",
				      r == SOCKS_BAD ? err.why : "not a client message");
			session_close(s, "bad control message");
			return;
		}
		session_consume(s, used);
		refuse(c, m.id);
	}
}

void bd_listen_start(struct session *s)
{
	struct bd_ctl *c = calloc(1, sizeof(*c));
	if (!c) {
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	c->s = s;
	c->loop = session_loop(s);
	c->conf = bd_conf_get(session_conf(s));
	snprintf(c->user, sizeof(c->user), "%s", session_user(s));
	c->client = *session_client(s);
	session_set_handler(s, &bd_ops, c);
	ev_timer_init(&c->body_timer, on_body_timeout,
		      (ev_tstamp)session_conf(s)->timeouts.handshake, 0.);
	c->body_timer.data = c;
	if (session_conf(s)->timeouts.handshake) /* 0: none */
		ev_timer_start(c->loop, &c->body_timer);
	session_watch_control(s, process_input);
	process_input(s); /* the body may be here already */
}
