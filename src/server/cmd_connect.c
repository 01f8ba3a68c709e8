/*
 * cmd_connect.c - CONNECT (RFC 1928 section 4; SOCKS4 CD 1): resolve a
 * domain without blocking, check the request rules for every address, try
 * each address in turn, reply with the outgoing socket's real address and
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

#include "common/log.h"
#include "common/sockaddr.h"
#include "server/cmd.h"
#include "server/resolve.h"
#include "server/server.h"
#include "server/session_int.h"

struct connect_state {
	struct lookup *lookup;
	struct sockaddr_storage *addrs; /* n of them: one for a literal */
	size_t n, next;
	int fd;
	ev_io io;
	int last_err;
	bool any_allowed;
};

static void connect_destroy(struct session *s)
{
	struct connect_state *st = s->cmd_data;
	resolver_cancel(st->lookup);
	ev_io_stop(s->w->loop, &st->io);
	if (st->fd >= 0)
		close(st->fd);
	free(st->addrs);
	free(st);
	s->cmd_data = NULL;
}

static const struct session_cmd_ops connect_ops = { "connect", connect_destroy };

static void try_next(struct session *s);

static void connected(struct session *s)
{
	struct connect_state *st = s->cmd_data;
	socklen_t len = sizeof(s->bound);
	int fd = st->fd;

	ev_io_stop(s->w->loop, &st->io);
	getsockname(fd, (struct sockaddr *)&s->bound, &len);
	sa_unmap(&s->bound);
	st->fd = -1;
	s->relay.fd[1] = fd; /* owned by the session from here */
	if (session_reply(s, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&s->bound, false) < 0)
		return;
	s->relay.fd[1] = -1;
	/* The look-up results are not needed while relaying. */
	connect_destroy(s);
	s->cmd_ops = NULL;
	session_start_relay(s, fd);
}

static void on_connect(EV_P_ ev_io *w, int revents)
{
	struct session *s = w->data;
	struct connect_state *st = s->cmd_data;
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(st->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0) {
		connected(s);
		return;
	}
	st->last_err = err;
	ev_io_stop(s->w->loop, &st->io);
	close(st->fd);
	st->fd = -1;
	try_next(s);
}

/* Starts a connect to addr. 1 connecting, 0 connected, -1 failed (errno). */
static int start_connect(struct session *s, const struct sockaddr_storage *addr)
{
	struct connect_state *st = s->cmd_data;
	const struct conf_listener *l = s->listener;
	int one = 1;

	st->fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (st->fd < 0)
		return -1;
	setsockopt(st->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (l->has_external && l->external.ss_family == addr->ss_family) {
		struct sockaddr_storage src = l->external;
		sa_set_port((struct sockaddr *)&src, 0);
		if (bind(st->fd, (struct sockaddr *)&src, sa_len((struct sockaddr *)&src)) < 0)
			goto fail;
	}
	if (connect(st->fd, (const struct sockaddr *)addr, sa_len((const struct sockaddr *)addr)) == 0)
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
		if (getpeername(st->fd, (struct sockaddr *)&peer, &plen) == 0)
			return 0;
		ev_io_init(&st->io, on_connect, st->fd, EV_WRITE);
		st->io.data = s;
		ev_io_start(s->w->loop, &st->io);
		return 1;
	}
fail:;
	int saved = errno;
	close(st->fd);
	st->fd = -1;
	errno = saved;
	return -1;
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

static void try_next(struct session *s)
{
	struct connect_state *st = s->cmd_data;
	const char *name = s->target.atyp == SOCKS_ATYP_DOMAIN ? s->target.u.name : NULL;

	while (st->next < st->n) {
		const struct sockaddr_storage *a = &st->addrs[st->next++];
		/* Rules see every resolved address, so a name cannot smuggle a
		 * connection to a blocked network. */
		bool last = st->next == st->n;
		if (!session_allowed(s, RULE_CMD_CONNECT, (const struct sockaddr *)a, name,
				     s->target.port, last && !st->any_allowed))
			continue;
		st->any_allowed = true;
		int r = start_connect(s, a);
		if (r == 1)
			return;
		if (r == 0) {
			connected(s);
			return;
		}
		st->last_err = errno;
	}
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
	if (!(st->addrs = malloc(n * sizeof(addrs[0])))) {
		session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
		return;
	}
	memcpy(st->addrs, addrs, n * sizeof(addrs[0]));
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
	st->fd = -1;
	s->cmd_data = st;
	s->cmd_ops = &connect_ops;
	session_arm_timer(s, s->conf->timeouts.connect, on_connect_timeout);

	if (s->target.atyp != SOCKS_ATYP_DOMAIN) {
		socklen_t len;
		if (!(st->addrs = malloc(sizeof(*st->addrs)))) {
			session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
			return;
		}
		sa_from_socks(&st->addrs[0], &len, &s->target);
		st->n = 1;
		try_next(s);
		return;
	}
	if (resolver_lookup(s->w->resolver, s->target.u.name, s->target.port, on_resolved, s,
			    &st->lookup) < 0) {
		static struct log_rate rl = LOG_RATE_INIT("too many DNS look-ups pending");
		char tag[SA_STR_MAX + 300];
		log_warnx_rl(&rl, "%s: too many DNS look-ups pending",
			     session_tag(s, tag, sizeof(tag)));
		session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
	}
}
