/*
 * lg_conn.c - the client side of a SOCKS5 handshake, non-blocking, one
 * epoll event at a time. Messages are sent one by one, each only after the
 * previous answer: servers that take one recv() for one message (microsocks)
 * would otherwise be measured failing rather than relaying.
 *
 *   connect -> VER NMETHODS METHODS -> VER METHOD
 *          [-> VER ULEN UNAME PLEN PASSWD -> VER STATUS]   (RFC 1929, --userpass)
 *           -> VER CMD RSV ATYP ADDR PORT -> VER REP RSV ATYP ADDR PORT
 *
 * With --pipeline the three messages leave in one write and the answers
 * are read in order (docs/protocol.md 5.11): only for servers that say
 * they take it (stpd's discovery flag "pipelining").
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"

/* Set once by main() before any worker starts, read-only afterwards. */
static const char *lg_user, *lg_pass;
static bool lg_pipeline;

void lg_conn_pipeline(bool on)
{
	lg_pipeline = on;
}

void lg_conn_userpass(const char *user, const char *pass)
{
	lg_user = user;
	lg_pass = pass;
}

void lg_addr_from_sin(struct socks_addr *a, const struct sockaddr_in *sin)
{
	memset(a, 0, sizeof(*a));
	a->atyp = SOCKS_ATYP_IPV4;
	memcpy(a->u.v4, &sin->sin_addr, 4);
	a->port = ntohs(sin->sin_port);
}

int lg_conn_watch(struct lg_conn *c, int ep, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	if (c->events == events)
		return 0;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		return -1;
	c->events = events;
	return 0;
}

void lg_conn_close(struct lg_conn *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
}

int lg_conn_open(struct lg_conn *c, int ep, const struct sockaddr_in *to, uint8_t cmd,
		 const struct socks_addr *dst, bool direct)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };

	c->hs = LG_HS_CONNECTING;
	c->state = 0;
	c->cmd = cmd;
	c->direct = direct;
	c->dst = *dst;
	c->outlen = c->outoff = c->inlen = c->surplus = c->done_bytes = 0;
	c->why = NULL;
	c->started = lg_now_ns();
	c->deadline = c->started + LG_OP_TIMEOUT_NS;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->why = "socket";
		return -1;
	}
	c->events = EPOLLOUT;
	if ((connect(c->fd, (const struct sockaddr *)to, sizeof(*to)) < 0 &&
	     errno != EINPROGRESS) ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		c->why = "connect";
		lg_conn_close(c);
		return -1;
	}
	return 0;
}

/* Writes what is left of c->out. 1 sent, 0 would block, -1 error. */
static int send_out(struct lg_conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (n < 0)
			return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		c->outoff += (size_t)n;
	}
	return 1;
}

/* Appends to c->in. 1 got bytes, 0 would block, -1 error or EOF. */
static int recv_in(struct lg_conn *c)
{
	ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
	if (n > 0) {
		c->inlen += (size_t)n;
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	c->why = n == 0 ? "proxy closed during the handshake" : "recv";
	return -1;
}

static enum lg_step fail(struct lg_conn *c, const char *why)
{
	if (!c->why)
		c->why = why;
	return LG_STEP_FAIL;
}

/* Sends the next message now; waits for writability only if it must. */
static enum lg_step start_send(struct lg_conn *c, int ep, enum lg_hs next, size_t len)
{
	c->outlen = len;
	c->outoff = 0;
	c->hs = next;
	int r = send_out(c);
	if (r < 0)
		return fail(c, "send");
	if (r == 0)
		return lg_conn_watch(c, ep, EPOLLOUT) < 0 ? fail(c, "epoll") : LG_STEP_MORE;
	c->hs = next + 1; /* GREETING -> CHOICE, AUTH -> AUTH_STATUS, REQUEST -> REPLY */
	c->inlen = 0;
	return lg_conn_watch(c, ep, EPOLLIN) < 0 ? fail(c, "epoll") : LG_STEP_MORE;
}

static enum lg_step on_connected(struct lg_conn *c, int ep)
{
	uint8_t method = lg_user ? SOCKS_METHOD_USERPASS : SOCKS_METHOD_NONE;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
		errno = soerr;
		return fail(c, "connect refused or failed");
	}
	if (c->direct) {
		c->hs = LG_HS_DONE;
		return LG_STEP_DONE;
	}
	size_t n = socks5_greeting_write(c->out, sizeof(c->out), &method, 1);
	if (lg_pipeline && lg_user)
		n += socks_userpass_write(c->out + n, sizeof(c->out) - n, lg_user, lg_pass);
	if (lg_pipeline)
		n += socks5_request_write(c->out + n, sizeof(c->out) - n, c->cmd, &c->dst);
	return start_send(c, ep, LG_HS_GREETING, n);
}

static enum lg_step send_request(struct lg_conn *c, int ep)
{
	return start_send(c, ep, LG_HS_REQUEST,
			  socks5_request_write(c->out, sizeof(c->out), c->cmd, &c->dst));
}

static enum lg_step on_auth_status(struct lg_conn *c, int ep);
static enum lg_step on_reply(struct lg_conn *c);

/* Pipelined: the message after this answer went out already; the rest of
 * c->in (answers sent together) belongs to the next one. */
static enum lg_step pipelined_next(struct lg_conn *c, size_t used, enum lg_hs next, bool ok)
{
	if (!ok)
		return fail(c, "proxy chose another method");
	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
	c->hs = next;
	if (c->inlen == 0)
		return LG_STEP_MORE;
	return next == LG_HS_AUTH_STATUS ? on_auth_status(c, -1) : on_reply(c);
}

static enum lg_step on_choice(struct lg_conn *c, int ep)
{
	struct socks_err err = { 0, NULL };
	size_t used = 0;
	uint8_t method = 0xFF;

	switch (socks5_choice_parse(&method, c->in, c->inlen, &used, &err)) {
	case SOCKS_MORE:
		return LG_STEP_MORE;
	case SOCKS_BAD:
		return fail(c, err.why);
	case SOCKS_DONE:
		break;
	}
	if (lg_pipeline)
		return pipelined_next(c, used, lg_user ? LG_HS_AUTH_STATUS : LG_HS_REPLY,
				      method == (lg_user ? SOCKS_METHOD_USERPASS : SOCKS_METHOD_NONE));
	if (used != c->inlen)
		return fail(c, "bytes after the method choice");
	if (lg_user && method == SOCKS_METHOD_USERPASS)
		return start_send(c, ep, LG_HS_AUTH,
				  socks_userpass_write(c->out, sizeof(c->out), lg_user, lg_pass));
	if (method != SOCKS_METHOD_NONE || lg_user)
		return fail(c, lg_user ? "proxy refused username/password"
				       : "proxy wants authentication");
	return send_request(c, ep);
}

static enum lg_step on_auth_status(struct lg_conn *c, int ep)
{
	struct socks_err err = { 0, NULL };
	size_t used = 0;
	uint8_t status = 0xFF;

	switch (socks_userpass_status_parse(&status, c->in, c->inlen, &used, &err)) {
	case SOCKS_MORE:
		return LG_STEP_MORE;
	case SOCKS_BAD:
		return fail(c, err.why);
	case SOCKS_DONE:
		break;
	}
	if (status != 0)
		return fail(c, "username/password rejected");
	if (lg_pipeline)
		return pipelined_next(c, used, LG_HS_REPLY, true);
	if (used != c->inlen)
		return fail(c, "bytes after the auth status");
	return send_request(c, ep);
}

static enum lg_step on_reply(struct lg_conn *c)
{
	struct socks_err err = { 0, NULL };
	size_t used = 0;

	switch (socks5_reply_parse(&c->reply, c->in, c->inlen, &used, &err)) {
	case SOCKS_MORE:
		return c->inlen == sizeof(c->in) ? fail(c, "reply too long") : LG_STEP_MORE;
	case SOCKS_BAD:
		return fail(c, err.why);
	case SOCKS_DONE:
		break;
	}
	if (c->reply.rep != SOCKS5_REP_SUCCEEDED)
		return fail(c, socks5_rep_name(c->reply.rep));
	/* A target that talks first (the source) may already be behind it. */
	c->surplus = c->inlen - used;
	c->hs = LG_HS_DONE;
	return LG_STEP_DONE;
}

enum lg_step lg_conn_step(struct lg_conn *c, int ep, uint32_t events)
{
	int r;

	if (events & EPOLLERR && c->hs != LG_HS_CONNECTING)
		return fail(c, "socket error");
	switch (c->hs) {
	case LG_HS_CONNECTING:
		return on_connected(c, ep);
	case LG_HS_GREETING:
	case LG_HS_AUTH:
	case LG_HS_REQUEST:
		if ((r = send_out(c)) < 0)
			return fail(c, "send");
		if (r == 0)
			return LG_STEP_MORE;
		c->hs++;
		c->inlen = 0;
		return lg_conn_watch(c, ep, EPOLLIN) < 0 ? fail(c, "epoll") : LG_STEP_MORE;
	case LG_HS_CHOICE:
	case LG_HS_AUTH_STATUS:
	case LG_HS_REPLY:
		if ((r = recv_in(c)) < 0)
			return LG_STEP_FAIL;
		if (r == 0)
			return LG_STEP_MORE;
		if (c->hs == LG_HS_CHOICE)
			return on_choice(c, ep);
		return c->hs == LG_HS_AUTH_STATUS ? on_auth_status(c, ep) : on_reply(c);
	case LG_HS_DONE:
		return LG_STEP_DONE;
	}
	return fail(c, "bad state");
}
