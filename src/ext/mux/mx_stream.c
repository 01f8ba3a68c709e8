/*
 * mx_stream.c - one HTTP/2 CONNECT stream of a multiplexed session
 * (docs/protocol.md 5.11): a flow of the session (its rule check and log
 * line), a non-blocking connect to the target, and the relay both ways
 * under HTTP/2 flow control. Client -> target: DATA is buffered until the
 * target takes it, and only then does the stream's window open again
 * (nghttp2_session_consume_stream), so a slow target holds at most one
 * window. Target -> client: the target is read only when the stream's
 * buffer is empty, and the buffer empties only as nghttp2 sends DATA
 * within the client's window, so a client that does not read one stream
 * stops only that stream's target.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sockaddr.h"
#include "ext/mux/mx.h"
#include "server/ext.h"
#include "server/flow.h"
#include "server/resolve.h"
#include "server/session.h"

static void st_io_set(struct mx_stream *st, int ev)
{
	struct ev_loop *loop = st->m->loop;
	if (st->fd < 0 || (ev_is_active(&st->io) && st->io.events == ev))
		return;
	ev_io_stop(loop, &st->io);
	if (!ev)
		return;
	/* Same fd: ev_io_modify, which (unlike ev_io_set) does not make libev
	 * register the fd with epoll again (EPOLL_CTL_ADD, EEXIST, MOD). */
	ev_io_modify(&st->io, ev);
	ev_io_start(loop, &st->io);
}

/* Which events the target socket waits for now. */
static void st_arm(struct mx_stream *st)
{
	int ev = 0;
	if (st->fd >= 0 && st->connected && st->target_eof && st->client_eof &&
	    bytebuf_used(&st->up) == 0) {
		/* Both FINs are through: the socket has nothing more to give. Closed
		 * now, not when the stream ends, so its EOF (level-triggered) does
		 * not wake the loop again meanwhile. */
		ev_io_stop(st->m->loop, &st->io);
		close(st->fd);
		st->fd = -1;
		return;
	}
	if (!st->connected) {
		ev = EV_WRITE;
	} else {
		if (bytebuf_used(&st->up) > 0)
			ev |= EV_WRITE;
		if (st->replied && !st->target_eof && st->downoff == st->downlen)
			ev |= EV_READ;
	}
	st_io_set(st, ev);
}

/* HTTP status for a SOCKS reply code: docs/protocol.md 5.11. */
static const char *status_for(uint8_t rep)
{
	switch (rep) {
	case SOCKS5_REP_SUCCEEDED: return "200";
	case SOCKS5_REP_NOT_ALLOWED: return "403";
	case SOCKS5_REP_TTL_EXPIRED: return "504";
	case SOCKS5_REP_ATYP_NOT_SUPPORTED: return "400";
	default: return "502";
	}
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

/* Answers the CONNECT: 200 starts the relay, anything else ends the
 * stream (and the flow) after the headers. */
static void st_respond(struct mx_stream *st, uint8_t rep)
{
	char repbuf[8];
	snprintf(repbuf, sizeof(repbuf), "%u", rep);
	nghttp2_nv nva[] = { NV(":status", status_for(rep)), NV("socks-rep", repbuf) };
	st->replied = true;
	if (st->f)
		flow_reply(st->f, rep);
	if (rep == SOCKS5_REP_SUCCEEDED) {
		nghttp2_data_provider prd = { .source.ptr = st, .read_callback = mxs_read_cb };
		nghttp2_submit_response(st->m->h2, st->id, nva, 2, &prd);
		st_arm(st);
	} else {
		/* END_STREAM with the headers; the stream closes when the
		 * client ends its side (what it sends meanwhile is dropped). */
		nghttp2_submit_response(st->m->h2, st->id, nva, 2, NULL);
		if (st->fd >= 0) {
			ev_io_stop(st->m->loop, &st->io);
			close(st->fd);
			st->fd = -1;
		}
	}
	mx_step(st->m);
}

static void st_flush_up(struct mx_stream *st)
{
	size_t wrote = 0;
	const uint8_t *q;
	size_t len;
	while ((len = bytebuf_peek(&st->up, &q)) > 0) {
		ssize_t n = send(st->fd, q, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			nghttp2_submit_rst_stream(st->m->h2, NGHTTP2_FLAG_NONE, st->id,
						  NGHTTP2_CONNECT_ERROR);
			return;
		}
		bytebuf_consume(&st->up, (size_t)n);
		wrote += (size_t)n;
	}
	if (bytebuf_used(&st->up) == 0) {
		if (st->client_eof)
			shutdown(st->fd, SHUT_WR);
	}
	if (wrote) {
		st->nup += wrote;
		/* The window opens as the target takes the bytes. */
		nghttp2_session_consume_stream(st->m->h2, st->id, wrote);
	}
}

static void st_read_down(struct mx_stream *st)
{
	ssize_t n = recv(st->fd, st->down, sizeof(st->down), 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		nghttp2_submit_rst_stream(st->m->h2, NGHTTP2_FLAG_NONE, st->id,
					  NGHTTP2_CONNECT_ERROR);
		return;
	}
	if (n == 0)
		st->target_eof = true;
	st->downoff = 0;
	st->downlen = (size_t)n;
	if (st->deferred) {
		st->deferred = false;
		nghttp2_session_resume_data(st->m->h2, st->id);
	}
}

static void st_try_next(struct mx_stream *st, int err);

static void on_target(EV_P_ ev_io *w, int revents)
{
	struct mx_stream *st = w->data;
	struct mx *m = st->m;
	(void)loop;
	if (!st->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(st->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			st_try_next(st, err);
			return;
		}
		st->connected = true;
		ev_timer_stop(m->loop, &st->timer);
		free(st->addrs);
		st->addrs = NULL;
		st_flush_up(st); /* data the client sent before the 200 */
		st_respond(st, SOCKS5_REP_SUCCEEDED);
		return;
	}
	if (revents & EV_WRITE)
		st_flush_up(st);
	if ((revents & EV_READ) && st->downoff == st->downlen)
		st_read_down(st);
	st_arm(st);
	mx_step(m);
}

/* Addresses still to try (a name's; one for a literal). */
struct mx_addrs {
	struct sockaddr_storage a[RESOLVE_MAX_ADDRS];
	size_t n, next;
};

/* Tries the next address (in order: a failed one hands over at once; the
 * connect timeout bounds the whole), or answers with the last error. */
static void st_connect(struct mx_stream *st, int last_err)
{
	struct mx_addrs *as = st->addrs;
	while (as && as->next < as->n) {
		struct sockaddr_storage *sa = &as->a[as->next++];
		/* Where the stream's rule sends it (to-compartment), as CONNECT. */
		int fd = ext_open_socket(st->m->s, flow_rule(st->f), sa->ss_family,
					 SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			last_err = errno;
			continue;
		}
		if (connect(fd, (struct sockaddr *)sa, sa_len((struct sockaddr *)sa)) < 0 &&
		    errno != EINPROGRESS) {
			last_err = errno;
			close(fd);
			continue;
		}
		int one = 1; /* as CONNECT's target sockets (cmd_connect.c) */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		st->fd = fd;
		ev_io_init(&st->io, on_target, fd, EV_WRITE);
		st->io.data = st;
		ev_io_start(st->m->loop, &st->io);
		return;
	}
	ev_timer_stop(st->m->loop, &st->timer);
	st_respond(st, session_errno_rep(last_err ? last_err : EHOSTUNREACH));
}

static void st_try_next(struct mx_stream *st, int err)
{
	ev_io_stop(st->m->loop, &st->io);
	close(st->fd);
	st->fd = -1;
	st_connect(st, err);
}

static void on_timeout(EV_P_ ev_timer *w, int revents)
{
	struct mx_stream *st = w->data;
	(void)loop;
	(void)revents;
	if (st->lookup) {
		resolver_cancel(st->lookup);
		st->lookup = NULL;
	}
	if (st->fd >= 0) {
		ev_io_stop(st->m->loop, &st->io);
		close(st->fd);
		st->fd = -1;
	}
	st_respond(st, session_errno_rep(ETIMEDOUT));
}

static void on_addrs(void *ctx, int status, const struct sockaddr_storage *addrs, size_t n)
{
	struct mx_stream *st = ctx;
	struct session *s = st->m->s;
	st->lookup = NULL;
	if (status != 0) {
		ev_timer_stop(st->m->loop, &st->timer);
		st_respond(st, resolver_rep(status));
		return;
	}
	/* Every address passes the request rules, as for CONNECT. */
	for (size_t i = 0; i < n && st->addrs->n < RESOLVE_MAX_ADDRS; i++)
		if (session_allowed(s, RULE_CMD_CONNECT, (const struct sockaddr *)&addrs[i],
				    st->host, st->port, true))
			st->addrs->a[st->addrs->n++] = addrs[i];
	if (st->addrs->n == 0) {
		ev_timer_stop(st->m->loop, &st->timer);
		st_respond(st, SOCKS5_REP_NOT_ALLOWED);
		return;
	}
	st_connect(st, 0);
}

void mxs_start(struct mx_stream *st)
{
	struct mx *m = st->m;
	struct session *s = m->s;
	struct socks_addr a;
	uint8_t rep = mx_req_target(&st->req, &a);
	if (rep != SOCKS5_REP_SUCCEEDED) {
		st_respond(st, rep); /* 400 */
		return;
	}
	const char *why = NULL;
	st->f = flow_open(s, RULE_CMD_CONNECT, SOCKS_CMD_CONNECT, &a, &why);
	if (!st->f) {
		st_respond(st, SOCKS5_REP_NOT_ALLOWED);
		return;
	}
	st->addrs = calloc(1, sizeof(*st->addrs));
	if (!st->addrs) {
		st_respond(st, SOCKS5_REP_GENERAL_FAILURE);
		return;
	}
	unsigned secs = session_conf(s)->timeouts.connect;
	ev_timer_init(&st->timer, on_timeout, secs ? (ev_tstamp)secs : 30., 0.);
	st->timer.data = st;
	ev_timer_start(m->loop, &st->timer);
	if (a.atyp == SOCKS_ATYP_DOMAIN) {
		snprintf(st->host, sizeof(st->host), "%s", a.u.name);
		st->port = a.port;
		if (resolver_lookup(session_resolver(s), a.u.name, a.port, on_addrs, st,
				    &st->lookup) < 0) {
			ev_timer_stop(m->loop, &st->timer);
			st_respond(st, SOCKS5_REP_GENERAL_FAILURE);
		}
		return;
	}
	socklen_t len;
	if (sa_from_socks(&st->addrs->a[0], &len, &a) < 0) {
		ev_timer_stop(m->loop, &st->timer);
		st_respond(st, SOCKS5_REP_ATYP_NOT_SUPPORTED);
		return;
	}
	st->addrs->n = 1;
	st_connect(st, 0);
}

int mxs_up(struct mx_stream *st, const uint8_t *p, size_t n)
{
	if (st->replied && !st->connected) { /* refused: nowhere to go */
		nghttp2_session_consume_stream(st->m->h2, st->id, n);
		return 0;
	}
	/* bounded by the stream's window, not here */
	if (bytebuf_append(&st->up, p, n, SIZE_MAX) < 0)
		return -1;
	if (st->connected && st->fd >= 0) {
		st_flush_up(st);
		st_arm(st);
	}
	return 0;
}

void mxs_client_end(struct mx_stream *st)
{
	st->client_eof = true;
	if (st->connected && st->fd >= 0 && bytebuf_used(&st->up) == 0) {
		shutdown(st->fd, SHUT_WR);
		st_arm(st); /* closes it when the target's FIN came first */
	}
}

ssize_t mxs_read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
		    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	(void)h2;
	(void)id;
	(void)user;
	struct mx_stream *st = src->ptr;
	if (st->downoff < st->downlen) {
		size_t n = st->downlen - st->downoff;
		if (n > len)
			n = len;
		memcpy(buf, st->down + st->downoff, n);
		st->downoff += n;
		st->ndown += n;
		if (st->downoff == st->downlen)
			st_arm(st); /* empty: read the target again */
		return (ssize_t)n;
	}
	if (st->target_eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	st->deferred = true;
	st_arm(st);
	return NGHTTP2_ERR_DEFERRED;
}

static void st_unlink(struct mx_stream *st)
{
	if (st->prev)
		st->prev->next = st->next;
	else
		st->m->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
}

static void st_free(struct mx_stream *st, const char *reason)
{
	struct ev_loop *loop = st->m->loop;
	st_unlink(st);
	ev_timer_stop(loop, &st->timer);
	if (st->lookup)
		resolver_cancel(st->lookup);
	if (st->fd >= 0) {
		ev_io_stop(loop, &st->io);
		close(st->fd);
	}
	if (st->f) {
		flow_count(st->f, st->nup, st->ndown);
		flow_close(st->f, reason);
	}
	free(st->addrs);
	bytebuf_free(&st->up);
	free(st);
}

void mxs_free(struct mx_stream *st, uint32_t error_code)
{
	char why[64];
	if (error_code == NGHTTP2_NO_ERROR)
		snprintf(why, sizeof(why), "stream closed");
	else
		snprintf(why, sizeof(why), "stream reset (%s)", nghttp2_http2_strerror(error_code));
	st_free(st, why);
}

void mxs_free_all(struct mx *m, const char *reason)
{
	while (m->streams)
		st_free(m->streams, reason);
}
