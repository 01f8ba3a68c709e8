/*
 * handshake.c - the non-blocking client handshake engine (after curl's
 * lib/socks.c): one state enum, one setter that logs old -> new, and
 * resumable partial reads and writes. The caller owns the socket and polls
 * it; every step does what the socket allows and says what to wait for.
 *
 * Two rules make it safe on an application's socket:
 *   - I/O uses MSG_DONTWAIT | MSG_NOSIGNAL, so a blocking fd never blocks
 *     here and its flags are never touched;
 *   - each read asks for exactly the bytes the current message still lacks
 *     (hs_need), so nothing after the proxy's reply is ever consumed.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "client/client.h"
#include "common/log.h"
#include "common/sockaddr.h"

enum hs_state {
	HS_GREETING,    /* sending VER NMETHODS METHODS */
	HS_CHOICE,      /* reading VER METHOD */
	HS_AUTH,        /* sending the RFC 1929 request */
	HS_AUTH_STATUS, /* reading VER STATUS */
	HS_REQUEST,     /* sending the SOCKS5 or SOCKS4 request */
	HS_REPLY,       /* reading the (first) reply */
	HS_REPLY2,      /* BIND: reading the second reply */
	HS_DONE,
	HS_FAILED,
	HS_COUNT
};

/* What a message handler returns when the engine should keep going. */
#define HS_GO_ON (-1)

static const char *const hs_names[HS_COUNT] = {
	[HS_GREETING] = "GREETING",
	[HS_CHOICE] = "CHOICE",
	[HS_AUTH] = "AUTH",
	[HS_AUTH_STATUS] = "AUTH_STATUS",
	[HS_REQUEST] = "REQUEST",
	[HS_REPLY] = "REPLY",
	[HS_REPLY2] = "REPLY2",
	[HS_DONE] = "DONE",
	[HS_FAILED] = "FAILED",
};

static bool hs_socks4(const struct stp_handshake *h)
{
	return h->proxy.kind == STP_SOCKS4 || h->proxy.kind == STP_SOCKS4A;
}

const char *stp_handshake_state(const struct stp_handshake *h)
{
	if (h->state < 0 || h->state >= HS_COUNT || hs_names[h->state] == NULL)
		return "?";
	return hs_names[h->state];
}

/*
 * Pipelined (docs/protocol.md 5.11): the greeting offers only the method the
 * proxy will pick, its sub-negotiation and the request follow in the same
 * write. False (and pipelining off) when the three do not fit in h->out.
 */
static bool hs_load_pipelined(struct stp_handshake *h)
{
	uint8_t method = (uint8_t)(h->pipe - 1);
	size_t n = socks5_greeting_write(h->out, sizeof(h->out), &method, 1), a = 0;

	if (n > 0 && method == SOCKS_METHOD_USERPASS) {
		a = socks_userpass_write(h->out + n, sizeof(h->out) - n, h->proxy.user,
					 h->proxy.pass);
		if (a == 0)
			n = 0;
	}
	if (n == 0 || n + a + h->req_len > sizeof(h->out)) {
		h->pipe = 0;
		return false;
	}
	memcpy(h->out + n + a, h->req, h->req_len);
	h->out_len = n + a + h->req_len;
	return true;
}

/* Loads the message a sending state sends. */
static void hs_load(struct stp_handshake *h, enum hs_state st)
{
	h->out_off = 0;
	h->out_len = 0;
	if (st == HS_GREETING && h->pipe && hs_load_pipelined(h))
		return;
	if (st == HS_GREETING) {
		const uint8_t methods[] = { SOCKS_METHOD_NONE, SOCKS_METHOD_USERPASS };
		h->out_len = socks5_greeting_write(h->out, sizeof(h->out), methods,
						   h->proxy.has_auth ? 2 : 1);
	} else if (st == HS_AUTH) {
		h->out_len = socks_userpass_write(h->out, sizeof(h->out), h->proxy.user,
						  h->proxy.pass);
	} else if (st == HS_REQUEST) {
		memcpy(h->out, h->req, h->req_len);
		h->out_len = h->req_len;
	}
}

/* The one place the state changes. Pipelined, the sub-negotiation and the
 * request went out with the greeting: their states become the reads. */
static void hs_state(struct stp_handshake *h, enum hs_state st)
{
	if (h->pipe && st == HS_AUTH)
		st = HS_AUTH_STATUS;
	else if (h->pipe && st == HS_REQUEST)
		st = HS_REPLY;
	log_debug("handshake fd %d: %s -> %s", h->fd, stp_handshake_state(h), hs_names[st]);
	h->state = (int)st;
	h->in_len = 0;
	hs_load(h, st);
}

/* The proxy as the pipelining cache knows it: with the TLS mode the
 * engine runs inside (conn.c hands the engine a plain copy). */
static void hs_pipe_note(struct stp_handshake *h, void (*note)(const struct stp_proxy *))
{
	enum stp_tls_mode saved = h->proxy.tls.mode;

	h->proxy.tls.mode = (enum stp_tls_mode)h->pipe_mode;
	note(&h->proxy);
	h->proxy.tls.mode = saved;
}

static enum stp_step hs_fail(struct stp_handshake *h, enum stp_err err, int sys_errno)
{
	/* Failures pipelining may explain (not a refusal of the target or of
	 * the password): the next handshakes with this proxy go step by step. */
	if (h->pipe && (err == STP_ERR_NO_METHOD || err == STP_ERR_PROTOCOL ||
			err == STP_ERR_PROXY_CLOSED || err == STP_ERR_IO))
		hs_pipe_note(h, client_pipe_forget);
	h->err = err;
	h->sys_errno = sys_errno;
	hs_state(h, HS_FAILED);
	log_debug("handshake fd %d failed: %s%s%s", h->fd, stp_strerror(err),
		  sys_errno ? ": " : "", sys_errno ? strerror(sys_errno) : "");
	return STP_ERROR;
}

/* A socket error before any byte went through means the connect to the
 * proxy itself failed (a non-blocking connect reports it on first I/O). */
static enum stp_step hs_io_fail(struct stp_handshake *h, int e)
{
	/* With Fast Open the greeting "went through" before the SYN was
	 * answered: a refusal still means the proxy was not reached. */
	bool connecting = e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH;
	return hs_fail(h, h->io_ok && !connecting ? STP_ERR_IO : STP_ERR_PROXY_UNREACHABLE, e);
}

int stp_handshake_init(struct stp_handshake *h, const struct stp_proxy *proxy, int fd,
		       enum stp_cmd cmd, const char *host, uint16_t port,
		       const struct sockaddr *sa, enum stp_err *err)
{
	struct socks_addr dst;
	enum stp_err e;

	client_debug_on();
	memset(h, 0, sizeof(*h));
	stp_handshake_set_io(h, NULL);
	h->fd = fd;
	h->cmd = (int)cmd;
	h->proxy = *proxy;
	h->pipe_mode = (uint8_t)proxy->tls.mode;
	if (fd < 0 || ((cmd < STP_CMD_CONNECT || cmd > STP_CMD_UDP_ASSOCIATE) &&
			cmd != STP_CMD_AUTOCONFIG && (cmd != STP_CMD_RESOLVE || hs_socks4(h)))) {
		e = STP_ERR_INVALID;
		goto fail;
	}
	/* TLS needs a connection object (conn.c), never a bare fd. */
	if (client_proxy_needs_conn(proxy)) {
		e = STP_ERR_TLS_NEEDS_CONN;
		goto fail;
	}
	if (client_target_encode(&dst, proxy, host, port, sa, &e) < 0)
		goto fail;
	if (hs_socks4(h)) {
		if (cmd == STP_CMD_UDP_ASSOCIATE || cmd == STP_CMD_AUTOCONFIG) {
			e = STP_ERR_UNSUPPORTED;
			goto fail;
		}
		h->req_len = socks4_request_write(h->req, sizeof(h->req), (uint8_t)cmd, &dst,
						  proxy->has_auth ? proxy->user : "");
	} else {
		h->req_len = socks5_request_write(h->req, sizeof(h->req), (uint8_t)cmd, &dst);
	}
	if (h->req_len == 0) {
		e = STP_ERR_TARGET_NAME;
		goto fail;
	}
	h->state = hs_socks4(h) ? HS_REQUEST : HS_GREETING;
	if (h->state == HS_GREETING) {
		int m = client_pipe_method(proxy);
		h->pipe = m >= 0 ? (uint8_t)(m + 1) : 0;
	}
	hs_load(h, (enum hs_state)h->state);
	return 0;
fail:
	h->state = HS_FAILED;
	h->err = e;
	if (err)
		*err = e;
	return -1;
}

int client_handshake_set_request(struct stp_handshake *h, uint8_t cmd,
				 const struct socks_addr *dst)
{
	size_t n = socks5_request_write(h->req, sizeof(h->req), cmd, dst);

	if (n == 0 || hs_socks4(h))
		return -1;
	h->req_len = n;
	h->cmd = cmd;
	/* Already at the request (inside X'86'): what is loaded is the old one.
	 * Pipelined, it rides in the greeting's write. */
	if (h->state == HS_REQUEST && h->out_off == 0)
		hs_load(h, HS_REQUEST);
	else if (h->state == HS_GREETING && h->pipe && h->out_off == 0)
		hs_load(h, HS_GREETING);
	return 0;
}

int stp_handshake_transparent(struct stp_handshake *h, int ptcl, const struct sockaddr *src,
			      enum stp_err *err)
{
	if (ptcl < 0 || ptcl > 255 || src == NULL ||
	    client_handshake_transparent(h, (uint8_t)ptcl, src) < 0) {
		if (err)
			*err = hs_socks4(h) ? STP_ERR_UNSUPPORTED : STP_ERR_INVALID;
		return -1;
	}
	return 0;
}

int client_handshake_transparent(struct stp_handshake *h, uint8_t ptcl, const struct sockaddr *src)
{
	struct socks5_request req;
	struct socks_addr s;
	uint8_t buf[STP_HS_BUF];
	size_t used, n;

	if (hs_socks4(h) || h->state == HS_FAILED || sa_to_socks(&s, src) < 0 ||
	    socks5_request_parse(&req, h->req, h->req_len, &used, NULL) != SOCKS_DONE)
		return -1;
	n = socks5_tp_request_write(buf, sizeof(buf), &req.dst, ptcl, &s);
	if (n == 0)
		return -1;
	memcpy(h->req, buf, n);
	h->req_len = n;
	if (h->state == HS_REQUEST)
		hs_load(h, HS_REQUEST);
	else if (h->state == HS_GREETING && h->pipe && h->out_off == 0)
		hs_load(h, HS_GREETING);
	return 0;
}

int client_handshake_set_raw_request(struct stp_handshake *h, const uint8_t *req, size_t n)
{
	if (hs_socks4(h) || h->state == HS_FAILED || n == 0 || n > sizeof(h->req))
		return -1;
	memcpy(h->req, req, n);
	h->req_len = n;
	/* Already at the request (inside X'86', after X'01'): reload it. */
	if (h->state == HS_REQUEST && h->out_off == 0)
		hs_load(h, HS_REQUEST);
	return 0;
}

void client_handshake_pipe(struct stp_handshake *h, uint8_t mode, int method)
{
	h->pipe_mode = mode;
	if (h->state != HS_GREETING || h->out_off != 0)
		return;
	h->pipe = method >= 0 ? (uint8_t)(method + 1) : 0;
	hs_load(h, HS_GREETING);
}

void client_handshake_request_sent(struct stp_handshake *h)
{
	h->pipe = 0;
	if (h->state == HS_GREETING || h->state == HS_REQUEST) {
		log_debug("handshake fd %d: request sent with X'86' (pipelined)", h->fd);
		h->state = HS_REQUEST;
		hs_state(h, HS_REPLY);
	}
}

void client_handshake_skip_greeting(struct stp_handshake *h)
{
	h->pipe = 0; /* the request is sent alone */
	if (h->state == HS_GREETING)
		hs_state(h, HS_REQUEST);
}

/* The default I/O: libc's, ctx unused. */
static ssize_t hs_libc_send(void *ctx, int fd, const void *buf, size_t len, int flags)
{
	(void)ctx;
	return send(fd, buf, len, flags);
}

static ssize_t hs_libc_recv(void *ctx, int fd, void *buf, size_t len, int flags)
{
	(void)ctx;
	return recv(fd, buf, len, flags);
}

void stp_handshake_set_io(struct stp_handshake *h, const struct stp_io *io)
{
	h->io.send_fn = io && io->send_fn ? io->send_fn : hs_libc_send;
	h->io.recv_fn = io && io->recv_fn ? io->recv_fn : hs_libc_recv;
	h->io.ctx = io ? io->ctx : NULL;
}

/* Sends what is left of h->out. STP_DONE when all of it is out. */
static enum stp_step hs_send(struct stp_handshake *h)
{
	while (h->out_off < h->out_len) {
		ssize_t n = h->io.send_fn(h->io.ctx, h->fd, h->out + h->out_off,
					  h->out_len - h->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		/* EINPROGRESS: a Fast Open connect still under way (eyeballs.c). */
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS))
			return STP_WANT_WRITE;
		if (n < 0)
			return hs_io_fail(h, errno);
		h->out_off += (size_t)n;
		h->io_ok = true;
	}
	return STP_DONE;
}

/*
 * Total length of the message being read, as far as the bytes in hand
 * tell. It only decides how much to ask recv() for; the codec judges the
 * bytes. A SOCKS5 reply:
 *
 * +----+-----+-------+------+----------+----------+
 * |VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
 * +----+-----+-------+------+----------+----------+
 * | 1  |  1  | X'00' |  1   | Variable |    2     |
 * +----+-----+-------+------+----------+----------+
 *
 * needs 5 bytes (up to the domain length octet) before its size is known.
 */
static size_t hs_need(const struct stp_handshake *h)
{
	if (h->state == HS_CHOICE || h->state == HS_AUTH_STATUS)
		return 2;
	if (hs_socks4(h))
		return SOCKS4_REPLY_LEN;
	if (h->in_len < 5)
		return 5;
	switch (h->in[3]) {
	case SOCKS_ATYP_IPV4: return 4 + 4 + 2;
	case SOCKS_ATYP_IPV6: return 4 + 16 + 2;
	case SOCKS_ATYP_DOMAIN: return 4 + 1 + (size_t)h->in[4] + 2;
	default: return 5; /* the codec calls it BAD */
	}
}

static enum stp_err hs_rep5_err(uint8_t rep)
{
	if (rep >= SOCKS5_REP_GENERAL_FAILURE && rep <= SOCKS5_REP_PTCL_NOT_SUPPORTED)
		return (enum stp_err)(STP_ERR_REP_GENERAL_FAILURE + rep - 1);
	/* an extension's code (a tunnel's X'0C'/X'0D', ...): say which */
	client_err_detail("reply X'%02X': %s", rep, socks5_rep_name(rep));
	return STP_ERR_REP_OTHER;
}

static int hs_on_choice(struct stp_handshake *h)
{
	uint8_t method = 0;

	if (socks5_choice_parse(&method, h->in, h->in_len, NULL, NULL) != SOCKS_DONE)
		return hs_fail(h, STP_ERR_PROTOCOL, 0);
	log_debug("handshake fd %d: proxy chose method %s%s", h->fd, socks_method_name(method),
		  h->pipe ? " (pipelined)" : "");
	if (h->pipe && method != h->pipe - 1)
		return hs_fail(h, method == SOCKS_METHOD_NOACCEPT ? STP_ERR_NO_METHOD
								  : STP_ERR_PROTOCOL, 0);
	if (!h->pipe && method != SOCKS_METHOD_NOACCEPT)
		hs_pipe_note(h, client_pipe_seen);
	if (method == SOCKS_METHOD_NONE)
		hs_state(h, HS_REQUEST);
	else if (method == SOCKS_METHOD_USERPASS && h->proxy.has_auth)
		hs_state(h, HS_AUTH);
	else if (method == SOCKS_METHOD_NOACCEPT)
		return hs_fail(h, STP_ERR_NO_METHOD, 0);
	else
		return hs_fail(h, STP_ERR_PROTOCOL, 0); /* a method we never offered */
	return HS_GO_ON;
}

static int hs_on_auth_status(struct stp_handshake *h)
{
	uint8_t status = 0xFF;

	if (socks_userpass_status_parse(&status, h->in, h->in_len, NULL, NULL) != SOCKS_DONE)
		return hs_fail(h, STP_ERR_PROTOCOL, 0);
	if (status != 0)
		return hs_fail(h, STP_ERR_AUTH_FAILED, 0);
	hs_state(h, HS_REQUEST);
	return HS_GO_ON;
}

/* After a reply that succeeded: BIND waits for its second reply. */
static int hs_granted(struct stp_handshake *h)
{
	if (h->state == HS_REPLY && h->cmd == STP_CMD_BIND) {
		hs_state(h, HS_REPLY2);
		return STP_BOUND;
	}
	hs_state(h, HS_DONE);
	return STP_DONE;
}

static int hs_on_reply5(struct stp_handshake *h)
{
	struct socks5_reply r;
	struct stp_addr *where = h->state == HS_REPLY2 ? &h->peer : &h->bound;
	char text[STP_ADDR_STR_MAX];

	if (socks5_reply_parse(&r, h->in, h->in_len, NULL, NULL) != SOCKS_DONE)
		return hs_fail(h, STP_ERR_PROTOCOL, 0);
	h->rep = r.rep;
	client_addr_from_socks(where, &r.bnd);
	log_debug("handshake fd %d: reply %s, address %s", h->fd, socks5_rep_name(r.rep),
		  stp_addr_str(where, text, sizeof(text)));
	if (r.rep != SOCKS5_REP_SUCCEEDED)
		return hs_fail(h, hs_rep5_err(r.rep), 0);
	return hs_granted(h);
}

static int hs_on_reply4(struct stp_handshake *h)
{
	struct socks4_reply r;
	struct socks_addr a = { .atyp = SOCKS_ATYP_IPV4 };
	struct stp_addr *where = h->state == HS_REPLY2 ? &h->peer : &h->bound;

	if (socks4_reply_parse(&r, h->in, h->in_len, NULL, NULL) != SOCKS_DONE)
		return hs_fail(h, STP_ERR_PROTOCOL, 0);
	h->rep = r.rep;
	memcpy(a.u.v4, r.ip, 4);
	a.port = r.port;
	client_addr_from_socks(where, &a);
	log_debug("handshake fd %d: SOCKS4 reply %s", h->fd, socks4_rep_name(r.rep));
	switch (r.rep) {
	case SOCKS4_REP_GRANTED: return hs_granted(h);
	case SOCKS4_REP_REJECTED: return hs_fail(h, STP_ERR_SOCKS4_REJECTED, 0);
	case SOCKS4_REP_NO_IDENTD: return hs_fail(h, STP_ERR_SOCKS4_NO_IDENTD, 0);
	case SOCKS4_REP_IDENT_MISMATCH: return hs_fail(h, STP_ERR_SOCKS4_IDENT_MISMATCH, 0);
	default: return hs_fail(h, STP_ERR_PROTOCOL, 0);
	}
}

/* Reads toward the end of the current message; on a whole one, parses it
 * and moves on. Returns the step to report, or HS_GO_ON. */
static int hs_recv(struct stp_handshake *h)
{
	size_t need;

	while (h->in_len < (need = hs_need(h))) {
		if (need > sizeof(h->in))
			return hs_fail(h, STP_ERR_PROTOCOL, 0); /* cannot happen: 4+1+255+2 */
		ssize_t n = h->io.recv_fn(h->io.ctx, h->fd, h->in + h->in_len, need - h->in_len,
					  MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return STP_WANT_READ;
		if (n < 0)
			return hs_io_fail(h, errno);
		if (n == 0)
			return hs_fail(h, h->io_ok ? STP_ERR_PROXY_CLOSED : STP_ERR_PROXY_UNREACHABLE,
				       0);
		h->in_len += (size_t)n;
		h->io_ok = true;
	}
	switch (h->state) {
	case HS_CHOICE: return hs_on_choice(h);
	case HS_AUTH_STATUS: return hs_on_auth_status(h);
	default: return hs_socks4(h) ? hs_on_reply4(h) : hs_on_reply5(h);
	}
}

static enum hs_state hs_after_send(const struct stp_handshake *h)
{
	switch (h->state) {
	case HS_GREETING: return HS_CHOICE;
	case HS_AUTH: return HS_AUTH_STATUS;
	default: return HS_REPLY;
	}
}

enum stp_step stp_handshake_step(struct stp_handshake *h)
{
	int r;

	for (;;) {
		switch (h->state) {
		case HS_GREETING:
		case HS_AUTH:
		case HS_REQUEST:
			if ((r = hs_send(h)) != STP_DONE)
				return (enum stp_step)r;
			hs_state(h, hs_after_send(h));
			break;
		case HS_CHOICE:
		case HS_AUTH_STATUS:
		case HS_REPLY:
		case HS_REPLY2:
			if ((r = hs_recv(h)) != HS_GO_ON)
				return (enum stp_step)r;
			break;
		case HS_DONE: return STP_DONE;
		default: return STP_ERROR;
		}
	}
}

short stp_handshake_events(const struct stp_handshake *h)
{
	switch (h->state) {
	case HS_GREETING:
	case HS_AUTH:
	case HS_REQUEST: return POLLOUT;
	case HS_CHOICE:
	case HS_AUTH_STATUS:
	case HS_REPLY:
	case HS_REPLY2: return POLLIN;
	default: return 0;
	}
}
