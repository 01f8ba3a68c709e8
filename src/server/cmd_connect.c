/*
 * cmd_connect.c - CONNECT (RFC 1928 section 4; SOCKS4 CD 1): resolve a
 * domain without blocking, check the request rules for every address, try
 * the addresses with Happy Eyeballs (RFC 8305), reply with the outgoing socket's real address and
 * hand both sockets to the relay.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/addrorder.h"
#include "common/log.h"
#include "common/sockaddr.h"
#include "server/cmd.h"
#include "server/resolve.h"
#include "server/server.h"
#include "server/session_int.h"

/* One address of the target and the connect() in flight to it, if any. */
struct connect_try { /* calloc'd: io is safe to stop before it starts */
	struct sockaddr_storage addr;
	int fd; /* -1: not started, or finished and closed */
	ev_io io;
	struct session *s;
};

/* Happy Eyeballs v2 (RFC 8305): the addresses are tried in the order of
 * addr_interleave(); each attempt still running after the attempt delay
 * (timeouts { connect-attempt-delay }) gets company from the next address,
 * a failed one hands over at once. The first to connect wins and the
 * others are closed; the session timer (timeouts { connect }) bounds the
 * whole. A target with one address takes exactly the old path: no delay
 * timer is armed when there is no next address to start. */
struct connect_state {
	struct lookup *lookup;
	struct connect_try *tries; /* n of them: one for a literal */
	size_t n, next;            /* next: the first not started */
	unsigned running;          /* attempts with a connect() in flight */
	ev_timer delay;
	int last_err;              /* addr_better_err() of the failures */
	bool any_allowed;
};

static void tries_close(struct session *s, struct connect_state *st)
{
	for (size_t i = 0; i < st->next && i < st->n; i++) {
		struct connect_try *t = &st->tries[i];
		if (t->fd < 0)
			continue;
		ev_io_stop(s->w->loop, &t->io);
		close(t->fd);
		t->fd = -1;
	}
	st->running = 0;
}

static void connect_destroy(struct session *s)
{
	struct connect_state *st = s->cmd_data;
	resolver_cancel(st->lookup);
	ev_timer_stop(s->w->loop, &st->delay);
	tries_close(s, st);
	free(st->tries);
	free(st);
	s->cmd_data = NULL;
}

static const struct session_cmd_ops connect_ops = { "connect", connect_destroy };

static void try_next(struct session *s);

/* t won: the other attempts are dropped, t's socket goes to the relay. */
static void connected(struct session *s, struct connect_try *t)
{
	struct connect_state *st = s->cmd_data;
	socklen_t len = sizeof(s->bound);
	int fd = t->fd;

	ev_io_stop(s->w->loop, &t->io);
	t->fd = -1;
	getsockname(fd, (struct sockaddr *)&s->bound, &len);
	sa_unmap(&s->bound);
	ev_timer_stop(s->w->loop, &st->delay);
	tries_close(s, st);
	s->relay.fd[1] = fd; /* owned by the session from here */
	if (session_reply(s, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&s->bound, false) < 0)
		return;
	s->relay.fd[1] = -1;
	/* The look-up results are not needed while relaying. */
	connect_destroy(s);
	s->cmd_ops = NULL;
	session_start_relay(s, fd);
}

static void all_failed(struct session *s)
{
	struct connect_state *st = s->cmd_data;
	char tag[SA_STR_MAX + 300], target[SA_STR_MAX];

	if (!st->any_allowed) {
		session_reply(s, SOCKS5_REP_NOT_ALLOWED, NULL, true); /* denial logged */
		return;
	}
	uint8_t rep = session_errno_rep(st->last_err);
	log_info("%s: connect to %s failed: %s", session_tag(s, tag, sizeof(tag)),
		 socks_addr_str(&s->target, target, sizeof(target)), strerror(st->last_err));
	session_reply(s, rep, NULL, true);
}

/* An attempt ended in err: the next address starts now rather than after
 * the delay (RFC 8305 section 5); with none left and none running, the
 * CONNECT has failed. */
static void try_failed(struct session *s, int err)
{
	struct connect_state *st = s->cmd_data;
	char tag[SA_STR_MAX + 300];

	st->last_err = addr_better_err(st->last_err, err);
	if (st->n > 1)
		log_debug("%s: connect attempt failed: %s", session_tag(s, tag, sizeof(tag)),
			  strerror(err));
	if (st->next < st->n) {
		ev_timer_stop(s->w->loop, &st->delay);
		try_next(s);
	} else if (st->running == 0) {
		all_failed(s);
	}
}

static void on_connect(EV_P_ ev_io *w, int revents)
{
	struct connect_try *t = w->data;
	struct session *s = t->s;
	struct connect_state *st = s->cmd_data;
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0) {
		connected(s, t);
		return;
	}
	ev_io_stop(s->w->loop, &t->io);
	close(t->fd);
	t->fd = -1;
	st->running--;
	try_failed(s, err);
}

/* Starts t's connect. 1 connecting, 0 connected, -1 failed (errno). */
static int start_connect(struct session *s, struct connect_try *t)
{
	const struct conf_listener *l = s->listener;
	const struct sockaddr *addr = (const struct sockaddr *)&t->addr;
	int one = 1;

	t->fd = session_socket(s, addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->fd < 0)
		return -1;
	setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (l->has_external && l->external.ss_family == addr->sa_family) {
		struct sockaddr_storage src = l->external;
		sa_set_port((struct sockaddr *)&src, 0);
		if (bind(t->fd, (struct sockaddr *)&src, sa_len((struct sockaddr *)&src)) < 0)
			goto fail;
	}
	if (connect(t->fd, addr, sa_len(addr)) == 0)
		return 0;
	if (errno == EINPROGRESS) {
		/* A target on this host has usually completed the handshake
		 * before connect() returns (loopback runs it inline): then go
		 * on at once instead of a round through the loop (epoll_ctl
		 * twice, getsockopt). getpeername succeeds only once
		 * connected; for a remote target it costs one failed call
		 * next to a network round trip. */
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		if (getpeername(t->fd, (struct sockaddr *)&peer, &plen) == 0)
			return 0;
		ev_io_init(&t->io, on_connect, t->fd, EV_WRITE);
		t->io.data = t;
		t->s = s;
		ev_io_start(s->w->loop, &t->io);
		return 1;
	}
fail:;
	int saved = errno;
	close(t->fd);
	t->fd = -1;
	errno = saved;
	return -1;
}

static void on_attempt_delay(EV_P_ ev_timer *w, int revents)
{
	try_next(w->data);
}

/* Starts the next allowed address. Failures to start move on at once;
 * a connect in flight with more addresses behind it arms the delay. */
static void try_next(struct session *s)
{
	struct connect_state *st = s->cmd_data;
	const char *name = s->target.atyp == SOCKS_ATYP_DOMAIN ? s->target.u.name : NULL;

	while (st->next < st->n) {
		struct connect_try *t = &st->tries[st->next++];
		/* Rules see every resolved address, so a name cannot smuggle a
		 * connection to a blocked network. */
		bool last = st->next == st->n;
		if (!session_allowed(s, RULE_CMD_CONNECT, (const struct sockaddr *)&t->addr, name,
				     s->target.port, last && !st->any_allowed))
			continue;
		st->any_allowed = true;
		if (st->n > 1) {
			char tag[SA_STR_MAX + 300], where[SA_STR_MAX];
			log_debug("%s: connect attempt %zu of %zu to %s",
				  session_tag(s, tag, sizeof(tag)), st->next, st->n,
				  sa_str((const struct sockaddr *)&t->addr, where, sizeof(where)));
		}
		int r = start_connect(s, t);
		if (r == 0) {
			connected(s, t);
			return;
		}
		if (r == 1) {
			st->running++;
			if (st->next < st->n) {
				ev_timer_init(&st->delay, on_attempt_delay,
					      s->conf->timeouts.connect_attempt_delay / 1000., 0.);
				st->delay.data = s;
				ev_timer_start(s->w->loop, &st->delay);
			}
			return;
		}
		st->last_err = addr_better_err(st->last_err, errno);
	}
	if (st->running == 0)
		all_failed(s);
}

static void on_resolved(void *ctx, int status, const struct sockaddr_storage *addrs, size_t n)
{
	struct session *s = ctx;
	struct connect_state *st = s->cmd_data;
	char tag[SA_STR_MAX + 300];

	if (status != 0) {
		log_info("%s: resolving %s failed: %s", session_tag(s, tag, sizeof(tag)),
			 s->target.u.name, resolver_strerror(status));
		session_reply(s, resolver_rep(status), NULL, true);
		return;
	}
	if (!(st->tries = calloc(n, sizeof(st->tries[0])))) {
		session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
		return;
	}
	struct sockaddr_storage order[RESOLVE_MAX_ADDRS];
	memcpy(order, addrs, n * sizeof(addrs[0]));
	addr_interleave(order, n, AF_INET6);
	for (size_t i = 0; i < n; i++) {
		st->tries[i].addr = order[i];
		st->tries[i].fd = -1;
	}
	st->n = n;
	try_next(s);
}

static void on_connect_timeout(EV_P_ ev_timer *w, int revents)
{
	struct session *s = w->data;
	char tag[SA_STR_MAX + 300], target[SA_STR_MAX];
	log_info("%s: connect to %s timed out", session_tag(s, tag, sizeof(tag)),
		 socks_addr_str(&s->target, target, sizeof(target)));
	session_reply(s, SOCKS5_REP_TTL_EXPIRED, NULL, true);
}

void cmd_connect_start(struct session *s)
{
	struct connect_state *st = calloc(1, sizeof(*st));
	if (!st) {
		session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
		return;
	}
	ev_init(&st->delay, on_attempt_delay);
	s->cmd_data = st;
	s->cmd_ops = &connect_ops;
	session_arm_timer(s, s->conf->timeouts.connect, on_connect_timeout);

	if (s->target.atyp != SOCKS_ATYP_DOMAIN) {
		socklen_t len;
		if (!(st->tries = calloc(1, sizeof(*st->tries)))) {
			session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
			return;
		}
		sa_from_socks(&st->tries[0].addr, &len, &s->target);
		st->tries[0].fd = -1;
		st->n = 1;
		try_next(s);
		return;
	}
	/* The name is looked up where the rule matching it by name sends the
	 * request (a compartment's own DNS); each address is checked again. */
	const struct rule *by_name = session_match_rule(s, RULE_CMD_CONNECT, NULL,
							s->target.u.name, s->target.port);
	if (resolver_lookup(session_resolver_for(s, by_name), s->target.u.name, s->target.port,
			    on_resolved, s, &st->lookup) < 0) {
		static struct log_rate rl = LOG_RATE_INIT("too many DNS look-ups pending");
		char tag[SA_STR_MAX + 300];
		log_warnx_rl(&rl, "%s: too many DNS look-ups pending",
			     session_tag(s, tag, sizeof(tag)));
		session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
	}
}
