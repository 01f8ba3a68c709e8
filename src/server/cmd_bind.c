/*
 * cmd_bind.c - BIND (RFC 1928 section 4; SOCKS4 CD 2). The first reply
 * carries the address the server listens on for the one peer; the second
 * carries the peer's address once it connects, then the relay starts. The
 * wait is bounded by timeouts.bind_accept, and ends if the client goes away.
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
#include "server/server.h"
#include "server/session_int.h"

struct bind_state {
	int lfd;
	ev_io accept_io;
	ev_io client_io; /* notices the client closing while we wait */
};

static void bind_destroy(struct session *s)
{
	struct bind_state *st = s->cmd_data;
	ev_io_stop(s->w->loop, &st->accept_io);
	ev_io_stop(s->w->loop, &st->client_io);
	if (st->lfd >= 0)
		close(st->lfd);
	free(st);
	s->cmd_data = NULL;
	s->cmd_ops = NULL;
}

static const struct session_cmd_ops bind_ops = { "bind", bind_destroy };

static void on_bind_timeout(EV_P_ ev_timer *w, int revents)
{
	struct session *s = w->data;
	char tag[SA_STR_MAX + 300];
	log_info("%s: no peer connected to the BIND socket in time",
		 session_tag(s, tag, sizeof(tag)));
	session_reply(s, SOCKS5_REP_TTL_EXPIRED, NULL, true);
}

static void on_client_during_wait(EV_P_ ev_io *w, int revents)
{
	struct session *s = w->data;
	struct bind_state *st = s->cmd_data;
	if (conn_peer_gone(&s->conn)) {
		session_close(s, "client closed while waiting for the BIND peer");
		return;
	}
	/* Early data stays queued in the socket for the relay. */
	ev_io_stop(EV_A_ & st->client_io);
}

static void on_peer(EV_P_ ev_io *w, int revents)
{
	struct session *s = w->data;
	struct bind_state *st = s->cmd_data;
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	int one = 1;

	int fd = accept4(st->lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
			return;
		static struct log_rate rl = LOG_RATE_INIT("accept on BIND socket");
		log_warn_rl(&rl, "session %llu: accept on BIND socket", (unsigned long long)s->id);
		session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
		return;
	}
	sa_unmap(&peer);
	if (!session_allowed(s, RULE_CMD_BINDREPLY, (struct sockaddr *)&peer, NULL,
			     (uint16_t)sa_port((struct sockaddr *)&peer), true)) {
		close(fd);
		session_reply(s, SOCKS5_REP_NOT_ALLOWED, NULL, true);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_timer_stop(EV_A_ & s->timer);
	bind_destroy(s); /* only one peer: the listening socket goes */
	s->relay.fd[1] = fd;
	if (session_reply(s, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&peer, false) < 0)
		return;
	s->relay.fd[1] = -1;
	session_start_relay(s, fd);
}

/* Listens where the peer can reach us: the listener's external address if
 * configured, else the address the client reached us on. */
static int open_bind_socket(struct session *s, struct sockaddr_storage *where)
{
	session_bind_address(s, where);
	int fd = session_socket(s, where->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)where, sa_len((struct sockaddr *)where)) < 0 ||
	    listen(fd, 1) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	socklen_t len = sizeof(*where);
	getsockname(fd, (struct sockaddr *)where, &len);
	sa_unmap(where);
	return fd;
}

void cmd_bind_start(struct session *s)
{
	struct sockaddr_storage dst;
	socklen_t dlen;
	const struct sockaddr *dsa = NULL;
	const char *dname = NULL;

	if (s->target.atyp == SOCKS_ATYP_DOMAIN)
		dname = s->target.u.name;
	else if (sa_from_socks(&dst, &dlen, &s->target) == 0)
		dsa = (struct sockaddr *)&dst;
	if (!session_allowed(s, RULE_CMD_BIND, dsa, dname, s->target.port, true)) {
		session_reply(s, SOCKS5_REP_NOT_ALLOWED, NULL, true);
		return;
	}
	struct bind_state *st = calloc(1, sizeof(*st));
	if (!st) {
		session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
		return;
	}
	s->cmd_data = st;
	s->cmd_ops = &bind_ops;
	st->lfd = open_bind_socket(s, &s->bound);
	if (st->lfd < 0) {
		static struct log_rate rl = LOG_RATE_INIT("BIND socket");
		log_warn_rl(&rl, "session %llu: BIND socket", (unsigned long long)s->id);
		session_reply(s, session_errno_rep(errno), NULL, true);
		return;
	}
	if (session_reply(s, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&s->bound, false) < 0)
		return;
	ev_io_init(&st->accept_io, on_peer, st->lfd, EV_READ);
	st->accept_io.data = s;
	ev_io_start(s->w->loop, &st->accept_io);
	ev_io_init(&st->client_io, on_client_during_wait, s->conn.fd, EV_READ);
	st->client_io.data = s;
	ev_io_start(s->w->loop, &st->client_io);
	session_arm_timer(s, s->conf->timeouts.bind_accept, on_bind_timeout);
}
