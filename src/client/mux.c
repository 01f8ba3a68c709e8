/*
 * mux.c - multiplexed connections to a proxy (docs/protocol.md 5.11,
 * docs/client.md): one SOCKS connection switched to HTTP/2 with CMD X'30',
 * and one CONNECT stream per stp_mux_connect. A thread per stp_mux runs
 * nghttp2's client session; each stream reaches the caller as one end of a
 * socketpair, so any code that reads and writes an fd can use it.
 *
 * Per stream, the costs are wake-ups more than bytes (bench/NOTES.md
 * "libstp's mux client"): the thread waits in epoll, where each socket is
 * registered once (edge-triggered, keyed by stream id so a late event for
 * a closed stream finds nothing), not in a poll() over every stream per
 * turn; a caller that finds the thread idle sends its HEADERS itself, and
 * one that finds it busy queues the request without waiting for its
 * mutex; everything nghttp2 has to send in a turn leaves in one write.
 *
 * Flow control both ways is HTTP/2's: a stream's window opens only as the
 * caller reads its socket (what the socketpair does not take waits in the
 * stream's buffer, at most one window), and the caller's writes are read
 * only when nghttp2 may send them; a caller that stops reading one stream
 * holds up that stream only. socks5:// proxies with method X'00' or X'02',
 * and TLS proxies (socks5+tls://, X'86'): mux_tls.c opens those and moves
 * the HTTP/2 bytes through TLS (m->tc). Not GSS-API.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "client/mux_tls.h"
#include "common/bytebuf.h"
#include "proto/socks.h"
#include "stp/stp.h"

#define MUX_MAX_STREAMS 1024
#define MUX_DOWN_MAX (256 * 1024) /* our stream window: what one stream may buffer */
#define MUX_OUT_BATCH (64 * 1024) /* nghttp2 output gathered for one write */
#define MUX_IN_TURN 8             /* reads of the connection per turn, then the streams */

/* epoll keys: a stream's is its id (odd, client-initiated); these are even. */
#define KEY_WAKE 0
#define KEY_CONN 2

/* A caller of stp_mux_connect waiting for its stream's response. Each has
 * its own semaphore, posted once for its stream only (response, close,
 * drop, connection death) with the outcome copied in, so the caller wakes
 * without taking the mutex again: one condition for all of them woke every
 * waiting caller on every response, and each then queued for the mutex
 * the thread was holding (bench/NOTES.md "Multiplexing, profiled"). */
struct mux_waiter {
	sem_t sem;
	int status, rep; /* the stream's; status 0: it ended before a response */
	enum stp_err err; /* with status 0: why (PROXY_CLOSED, NOMEM: no stream id) */
	bool released;   /* set with the mutex held: the stream may be freed now */
};

struct mux_stream {
	int32_t id;       /* 0 while queued (not submitted yet) */
	int fd;           /* our end of the socketpair, non-blocking; -1 when closed */
	size_t slot;      /* index in m->streams */
	char authority[STP_NAME_MAX + 16];
	int status;       /* 0 until the response; HTTP status */
	int rep;          /* socks-rep header, -1 when absent */
	bool done;        /* closed (reset, or both ends) */
	bool local_eof;   /* the caller shut its side: END_STREAM sent */
	bool deferred;
	bool readable;    /* input may be waiting: an edge since recv found fd empty */
	bool hup;         /* the caller shut or closed its end (sticky: keep reading) */
	bool want_out;    /* fd is registered for EPOLLOUT (down bytes wait) */
	bool active;      /* counted in m->active: the caller's side is open */
	struct bytebuf down; /* received, not yet taken by the socketpair */
	bool remote_eof;  /* END_STREAM from the proxy: shut our end after down */
	struct mux_waiter *waiter; /* the caller still waiting for the response, or NULL */
	struct mux_stream *next;   /* the submit queue */
};

struct stp_mux {
	int fd;           /* to the proxy, non-blocking */
	struct stp_conn *tc; /* TLS proxies: the connection fd belongs to (mux_tls.c) */
	int ep;           /* epoll: fd, wake, every stream's socket */
	int wake;         /* eventfd */
	pthread_t thread;
	pthread_mutex_t mu; /* nghttp2 and the streams */
	nghttp2_session *h2;
	struct mux_stream *streams[MUX_MAX_STREAMS];
	size_t n;
	atomic_bool dead;
	bool stop;
	bool conn_in;     /* fd may have input: an edge since recv found it empty */
	bool conn_hup;    /* fd saw its end (sticky: read until recv says so) */
	atomic_uint active; /* streams whose caller's side is open: the load */
	/* Requests of callers that found the mutex taken, submitted by the
	 * thread at its next turn. qmu guards the queue and qclosed only. */
	pthread_mutex_t qmu;
	struct mux_stream *qhead, **qtail;
	bool qclosed;     /* the thread is gone: nothing more is queued */
	atomic_bool sleeping; /* the thread is (about to be) in epoll_wait */
	struct bytebuf out;   /* nghttp2 output the socket did not take yet */
};

/* The stream with this id, if it is still ours: nghttp2's stream data
 * while nghttp2 has the stream, else (closed, bytes still going to the
 * caller) a look through the list. */
static struct mux_stream *find(struct stp_mux *m, int32_t id)
{
	struct mux_stream *st = nghttp2_session_get_stream_user_data(m->h2, id);
	if (st)
		return st;
	for (size_t i = 0; i < m->n; i++)
		if (m->streams[i]->id == id)
			return m->streams[i];
	return NULL;
}

/* The caller's side of st is over (its EOF, or the stream's end): the
 * load muxauto spreads streams by no longer counts it. */
static void stream_inactive(struct stp_mux *m, struct mux_stream *st)
{
	if (st->active) {
		st->active = false;
		atomic_fetch_sub(&m->active, 1);
	}
}

/* Hands st's outcome to the caller waiting for it, if any, and lets it go:
 * after this the caller never touches st. A refused stream the proxy left
 * open is reset here, as the caller no longer can. */
static void stream_release(struct stp_mux *m, struct mux_stream *st)
{
	struct mux_waiter *w = st->waiter;
	if (!w)
		return;
	st->waiter = NULL;
	w->status = st->status;
	w->rep = st->rep;
	w->err = STP_ERR_PROXY_CLOSED;
	w->released = true;
	if (st->status != 200) {
		stream_inactive(m, st);
		if (!st->done)
			nghttp2_submit_rst_stream(m->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
	}
	sem_post(&w->sem);
}

/* ---- handshake: greeting, RFC 1929, X'30' (blocking, before the thread) ---- */

/* 0, or -1 with *err: TIMEOUT, PROXY_CLOSED (end of file), IO. */
static int io_all(int fd, uint8_t *p, size_t n, bool wr, int timeout_ms, enum stp_err *err)
{
	while (n > 0) {
		struct pollfd pf = { fd, wr ? POLLOUT : POLLIN, 0 };
		int w = poll(&pf, 1, timeout_ms);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			*err = w == 0 ? STP_ERR_TIMEOUT : STP_ERR_IO;
			return -1;
		}
		ssize_t r = wr ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0) {
			*err = r == 0 ? STP_ERR_PROXY_CLOSED : STP_ERR_IO;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* The X'30' reply: 0, or -1 with *err; *replied when a SOCKS reply came
 * (a refusal, not a broken exchange). */
static int handshake_reply(int fd, uint8_t *buf, int t, bool *replied, enum stp_err *err)
{
	/* Servers that do not know X'30' may close or answer garbage instead
	 * of X'07' (Dante closes): all mean "not supported here". */
	if (io_all(fd, buf, 4, false, t, err) < 0) {
		if (*err != STP_ERR_TIMEOUT)
			*err = STP_ERR_REP_CMD_NOT_SUPPORTED;
		return -1;
	}
	size_t rest = buf[3] == SOCKS_ATYP_IPV4 ? 6 : buf[3] == SOCKS_ATYP_IPV6 ? 18 : 0;
	*err = STP_ERR_REP_CMD_NOT_SUPPORTED;
	if (buf[0] != 5 || !rest || io_all(fd, buf + 4, rest, false, t, err) < 0)
		return -1;
	*replied = true;
	if (buf[1] != 0) {
		*err = buf[1] == SOCKS5_REP_CMD_NOT_SUPPORTED ? STP_ERR_REP_CMD_NOT_SUPPORTED
		       : buf[1] == SOCKS5_REP_NOT_ALLOWED    ? STP_ERR_REP_NOT_ALLOWED
							     : STP_ERR_REP_OTHER;
		return -1;
	}
	return 0;
}

/* Greeting, RFC 1929 and X'30'. When discovery said the proxy takes
 * pipelined input (pipeline.c), all three leave in one write and the
 * answers are read after it: the switch costs no round trip of its own. */
static int handshake_steps(int fd, const struct stp_proxy *p, bool piped, int t, bool *replied,
			   enum stp_err *err)
{
	static const uint8_t req[] = { 5, SOCKS_CMD_MUX, 0, 1, 0, 0, 0, 0, 0, 0 };
	uint8_t buf[1100];
	uint8_t method = p->has_auth ? SOCKS_METHOD_USERPASS : SOCKS_METHOD_NONE;
	size_t n = socks5_greeting_write(buf, sizeof(buf), &method, 1);
	*err = STP_ERR_PROTOCOL;
	if (piped) {
		size_t a = method == SOCKS_METHOD_USERPASS
				   ? socks_userpass_write(buf + n, sizeof(buf) - n, p->user, p->pass)
				   : 0;
		if (method == SOCKS_METHOD_USERPASS && !a) {
			*err = STP_ERR_URL_USERINFO;
			return -1;
		}
		memcpy(buf + n + a, req, sizeof(req));
		n += a + sizeof(req);
	}
	if (io_all(fd, buf, n, true, t, err) < 0 || io_all(fd, buf, 2, false, t, err) < 0)
		return -1;
	if (buf[0] != 5 || buf[1] != method) {
		*err = buf[0] == 5 && buf[1] == SOCKS_METHOD_NOACCEPT ? STP_ERR_NO_METHOD
									    : STP_ERR_PROTOCOL;
		return -1;
	}
	if (!piped)
		client_pipe_seen(p);
	if (method == SOCKS_METHOD_USERPASS) {
		n = piped ? 0 : socks_userpass_write(buf, sizeof(buf), p->user, p->pass);
		if ((!piped && (!n || io_all(fd, buf, n, true, t, err) < 0)) ||
		    io_all(fd, buf, 2, false, t, err) < 0)
			return -1;
		if (buf[1] != 0) {
			*err = STP_ERR_AUTH_FAILED;
			return -1;
		}
	}
	if (!piped) {
		memcpy(buf, req, sizeof(req));
		if (io_all(fd, buf, sizeof(req), true, t, err) < 0)
			return -1;
	}
	return handshake_reply(fd, buf, t, replied, err);
}

/* As every handshake (handshake.c, mux_tls.c): one step by step counts
 * toward asking discovery, and a pipelined one that fails in a way
 * pipelining may explain turns pipelining off for this proxy. */
static int handshake(int fd, const struct stp_proxy *p, int t, enum stp_err *err)
{
	bool piped = client_pipe_method(p) == (p->has_auth ? SOCKS_METHOD_USERPASS
							     : SOCKS_METHOD_NONE);
	bool replied = false;

	if (handshake_steps(fd, p, piped, t, &replied, err) == 0)
		return 0;
	/* A refused password or X'30' is a SOCKS answer, not pipelining's
	 * fault; a close or garbage before the X'30' reply may be. */
	if (piped && !replied && *err != STP_ERR_AUTH_FAILED && *err != STP_ERR_TIMEOUT)
		client_pipe_forget(p);
	return -1;
}


/* ---- the thread: everything below runs with m->mu held ---- */

static void stream_drop(struct stp_mux *m, struct mux_stream *st)
{
	st->done = true;
	stream_release(m, st); /* before st is freed under its waiter */
	stream_inactive(m, st);
	struct mux_stream *last = m->streams[--m->n];
	m->streams[st->slot] = last;
	last->slot = st->slot;
	if (st->fd >= 0)
		close(st->fd); /* also leaves the epoll set */
	bytebuf_free(&st->down);
	free(st);
}

/* EPOLLOUT on st's socket only while bytes wait for it: registered all
 * the time, every read by the caller would wake the thread. */
static void stream_watch_out(struct stp_mux *m, struct mux_stream *st, bool on)
{
	if (st->want_out == on || st->fd < 0)
		return;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET | (on ? EPOLLOUT : 0),
				  .data.u64 = (uint64_t)st->id };
	if (epoll_ctl(m->ep, EPOLL_CTL_MOD, st->fd, &ev) == 0)
		st->want_out = on;
}

/* Hands received bytes to the socketpair; the stream's window opens by
 * what it took. May free st. */
static void stream_flush_down(struct stp_mux *m, struct mux_stream *st)
{
	size_t took = 0;
	const uint8_t *q;
	size_t len;
	while (st->fd >= 0 && (len = bytebuf_peek(&st->down, &q)) > 0) {
		ssize_t n = send(st->fd, q, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				stream_watch_out(m, st, true);
				break;
			}
			nghttp2_submit_rst_stream(m->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
			bytebuf_consume(&st->down, bytebuf_used(&st->down));
			break;
		}
		bytebuf_consume(&st->down, (size_t)n);
		took += (size_t)n;
	}
	if (took && !st->done)
		nghttp2_session_consume_stream(m->h2, st->id, took);
	if (bytebuf_used(&st->down) == 0) {
		stream_watch_out(m, st, false);
		if (st->remote_eof && st->fd >= 0)
			shutdown(st->fd, SHUT_WR);
		if (st->done)
			stream_drop(m, st);
	}
}

static ssize_t cb_read(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
		       uint32_t *flags, nghttp2_data_source *src, void *user)
{
	(void)h2;
	(void)id;
	struct mux_stream *st = src->ptr;
	/* Edge-triggered: after a short read the socket was empty, and the
	 * caller's next write (or close) is a new event. A stream's first
	 * call, right behind its HEADERS, so costs no system call. */
	ssize_t n = st->fd < 0 ? 0 : !st->readable ? -1 : recv(st->fd, buf, len, MSG_DONTWAIT);
	if (n < 0 && (!st->readable || errno == EAGAIN || errno == EWOULDBLOCK)) {
		st->readable = false;
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n <= 0) { /* the caller shut its side (or closed it) */
		st->local_eof = true;
		stream_inactive(user, st);
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	if ((size_t)n < len && !st->hup)
		st->readable = false;
	return n;
}

static int cb_header(nghttp2_session *h2, const nghttp2_frame *fr, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	(void)h2;
	(void)flags;
	struct mux_stream *st = find(user, fr->hd.stream_id);
	char v[16];
	if (!st || valuelen >= sizeof(v))
		return 0;
	memcpy(v, value, valuelen);
	v[valuelen] = '\0';
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
		st->status = atoi(v);
	else if (namelen == 9 && memcmp(name, "socks-rep", 9) == 0)
		st->rep = atoi(v);
	return 0;
}

static int cb_frame_recv(nghttp2_session *h2, const nghttp2_frame *fr, void *user)
{
	(void)h2;
	struct stp_mux *m = user;
	if (fr->hd.stream_id == 0 || (fr->hd.type != NGHTTP2_HEADERS && fr->hd.type != NGHTTP2_DATA))
		return 0;
	struct mux_stream *st = find(m, fr->hd.stream_id);
	if (!st)
		return 0;
	if (fr->hd.type == NGHTTP2_HEADERS && st->status != 0)
		stream_release(m, st);
	if (fr->hd.flags & NGHTTP2_FLAG_END_STREAM) {
		st->remote_eof = true;
		if (bytebuf_used(&st->down) == 0 && st->fd >= 0 && st->status == 200)
			shutdown(st->fd, SHUT_WR);
	}
	return 0;
}

static int cb_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
		   size_t len, void *user)
{
	(void)flags;
	struct stp_mux *m = user;
	nghttp2_session_consume_connection(h2, len);
	struct mux_stream *st = find(m, id);
	if (!st)
		return 0;
	if (bytebuf_used(&st->down) == 0 && st->fd >= 0) { /* the usual case: straight through */
		ssize_t n = send(st->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			nghttp2_session_consume_stream(h2, id, (size_t)n);
			data += n;
			len -= (size_t)n;
			if (len == 0)
				return 0;
		}
	}
	/* bounded by the stream's window */
	if (bytebuf_append(&st->down, data, len, SIZE_MAX) < 0) {
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
		return 0;
	}
	stream_flush_down(m, st);
	return 0;
}

static int cb_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	(void)h2;
	struct stp_mux *m = user;
	struct mux_stream *st = find(m, id);
	if (!st)
		return 0;
	st->done = true;
	stream_release(m, st);
	if (code != NGHTTP2_NO_ERROR || bytebuf_used(&st->down) == 0)
		stream_drop(m, st);
	return 0;
}

/* What nghttp2 has to send, gathered (up to MUX_OUT_BATCH) and written in
 * one send: per stream, a HEADERS, a DATA and an END_STREAM that are due
 * in one turn leave together, and with them every other stream's. 0, or
 * -1 when the connection is over. */
static ssize_t h2_next(void *h2, const uint8_t **chunk)
{
	return nghttp2_session_mem_send(h2, chunk);
}

static int mux_send(struct stp_mux *m)
{
	if (m->tc)
		return client_mux_tls_send(m->tc, m->h2);
	for (;;) {
		const uint8_t *q;
		size_t len;
		while ((len = bytebuf_peek(&m->out, &q)) > 0) {
			ssize_t n = send(m->fd, q, len, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0)
				return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
			bytebuf_consume(&m->out, (size_t)n);
		}
		if (bytebuf_gather(&m->out, MUX_OUT_BATCH, h2_next, m->h2) < 0)
			return -1;
		if (bytebuf_used(&m->out) == 0)
			return 0;
	}
}

/* Input from the proxy into nghttp2, until the socket is empty (edge-
 * triggered) or MUX_IN_TURN reads (the streams get their turn, and
 * conn_in stays set). 0, or -1 when the connection is over. */
static int conn_recv(struct stp_mux *m)
{
	if (m->tc) {
		/* reads the socket until EAGAIN (this is edge-triggered); what
		 * SSL keeps decrypted or a whole record still waiting is read
		 * at the next turn, without waiting for an edge */
		int r = client_mux_tls_recv(m->tc, m->h2);
		m->conn_in = r == 0 && client_mux_tls_pending(m->tc);
		return r;
	}
	uint8_t buf[16384];
	for (int i = 0; i < MUX_IN_TURN && m->conn_in; i++) {
		ssize_t n = recv(m->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			m->conn_in = false;
			break;
		}
		if (n <= 0 || nghttp2_session_mem_recv(m->h2, buf, (size_t)n) < 0)
			return -1;
		if ((size_t)n < sizeof(buf) && !m->conn_hup)
			m->conn_in = false; /* empty now: more is a new edge */
	}
	return 0;
}

/* An event on a stream's socket (by id: a closed stream's is ignored). */
static void stream_event(struct stp_mux *m, int32_t id, uint32_t ev)
{
	struct mux_stream *st = find(m, id);
	if (!st)
		return;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		st->readable = true;
		if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			st->hup = true; /* sticky: its edge may come with the last bytes */
		if (st->deferred && !st->local_eof) {
			st->deferred = false;
			nghttp2_session_resume_data(m->h2, st->id);
		}
	}
	if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && bytebuf_used(&st->down) > 0)
		stream_flush_down(m, st);
}

/* The connection died: every stream's socket is closed at once, so a
 * caller blocked in read() or poll() sees the end instead of waiting for
 * ever (what it had not taken is lost: the stream is cut short). An
 * AF_UNIX socket cannot be reset like TCP: the caller reads end of file
 * (ECONNRESET only when it had written bytes the thread had not read yet)
 * and its writes fail with EPIPE. */
static void streams_abort(struct stp_mux *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct mux_stream *st = m->streams[i];
		if (st->fd >= 0) {
			close(st->fd);
			st->fd = -1;
		}
		st->done = true;
	}
}

/* The thread ends (death or stp_mux_close): every waiter must see it. */
static void waiters_wake_all(struct stp_mux *m)
{
	for (size_t i = 0; i < m->n; i++)
		stream_release(m, m->streams[i]);
}

/* Submits st's CONNECT. Its socket joins the epoll set first, keyed by
 * the id the request is about to get. STP_OK, or why not (st untouched
 * but for its id). */
static enum stp_err stream_submit(struct stp_mux *m, struct mux_stream *st)
{
	if (atomic_load(&m->dead) || m->stop)
		return STP_ERR_PROXY_CLOSED;
	if (m->n >= MUX_MAX_STREAMS)
		return STP_ERR_NOMEM;
	nghttp2_nv nva[] = {
		{ (uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)st->authority, 10, strlen(st->authority),
		  NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = cb_read };
	uint32_t next = nghttp2_session_get_next_stream_id(m->h2);
	if (next > INT32_MAX)
		return STP_ERR_PROXY_CLOSED; /* ids used up: a new connection is due */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u64 = next };
	if (epoll_ctl(m->ep, EPOLL_CTL_ADD, st->fd, &ev) < 0)
		return STP_ERR_SYSTEM;
	int32_t id = nghttp2_submit_request(m->h2, NULL, nva, 2, &prd, st);
	if (id < 0) {
		epoll_ctl(m->ep, EPOLL_CTL_DEL, st->fd, NULL);
		return STP_ERR_NOMEM;
	}
	st->id = id;
	st->slot = m->n;
	m->streams[m->n++] = st;
	st->active = true;
	atomic_fetch_add(&m->active, 1);
	return STP_OK;
}

/* A queued request the thread could not submit (or will not: it ends):
 * the caller gets err. */
static void stream_refuse(struct mux_stream *st, enum stp_err err)
{
	struct mux_waiter *w = st->waiter;
	close(st->fd);
	free(st);
	w->status = 0;
	w->err = err;
	w->released = true;
	sem_post(&w->sem);
}

static struct mux_stream *queue_take(struct stp_mux *m, bool close_it)
{
	pthread_mutex_lock(&m->qmu);
	struct mux_stream *q = m->qhead;
	m->qhead = NULL;
	m->qtail = &m->qhead;
	if (close_it)
		m->qclosed = true;
	pthread_mutex_unlock(&m->qmu);
	return q;
}

static void queue_submit(struct stp_mux *m)
{
	for (struct mux_stream *q = queue_take(m, false), *nx; q; q = nx) {
		nx = q->next;
		q->next = NULL;
		enum stp_err e = stream_submit(m, q);
		if (e != STP_OK)
			stream_refuse(q, e);
	}
}

/* Whether the thread may block in epoll_wait: nothing queued. After it
 * said so, a caller that queues sees `sleeping` and wakes it. */
static bool may_sleep(struct stp_mux *m)
{
	atomic_store(&m->sleeping, true);
	pthread_mutex_lock(&m->qmu);
	bool empty = m->qhead == NULL;
	pthread_mutex_unlock(&m->qmu);
	if (!empty)
		atomic_store(&m->sleeping, false);
	return empty;
}

static void *mux_thread(void *arg)
{
	struct stp_mux *m = arg;
	struct epoll_event evs[64];
	pthread_mutex_lock(&m->mu);
	while (!m->stop && !atomic_load(&m->dead)) {
		queue_submit(m);
		if (mux_send(m) < 0 ||
		    (!nghttp2_session_want_read(m->h2) && !nghttp2_session_want_write(m->h2) &&
		     bytebuf_used(&m->out) == 0)) {
			atomic_store(&m->dead, true);
			break;
		}
		int timeout = m->conn_in || !may_sleep(m) ? 0 : 1000;
		pthread_mutex_unlock(&m->mu);
		int r = epoll_wait(m->ep, evs, 64, timeout);
		atomic_store(&m->sleeping, false);
		pthread_mutex_lock(&m->mu);
		for (int i = 0; i < r; i++) {
			uint64_t key = evs[i].data.u64;
			uint32_t ev = evs[i].events;
			if (key == KEY_WAKE) {
				uint64_t v;
				ssize_t rd = read(m->wake, &v, sizeof(v));
				(void)rd;
			} else if (key == KEY_CONN) {
				if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					m->conn_in = true;
				if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					m->conn_hup = true;
			} else {
				stream_event(m, (int32_t)key, ev);
			}
		}
		if (m->conn_in && conn_recv(m) < 0) {
			atomic_store(&m->dead, true);
			break;
		}
	}
	if (atomic_load(&m->dead))
		streams_abort(m);
	waiters_wake_all(m);
	for (struct mux_stream *q = queue_take(m, true), *nx; q; q = nx) {
		nx = q->next;
		stream_refuse(q, STP_ERR_PROXY_CLOSED);
	}
	pthread_mutex_unlock(&m->mu);
	if (m->tc)
		OPENSSL_thread_stop(); /* as conn_relay.c's threads */
	return NULL;
}
/* ---- the API ---- */

static nghttp2_session *client_new(struct stp_mux *m)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	nghttp2_session *h2 = NULL;
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_close);
	if (nghttp2_option_new(&opt) == 0) {
		nghttp2_option_set_no_auto_window_update(opt, 1);
		if (nghttp2_session_client_new2(&h2, cbs, m, opt) != 0)
			h2 = NULL;
		nghttp2_option_del(opt);
	}
	nghttp2_session_callbacks_del(cbs);
	if (!h2)
		return NULL;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, MUX_DOWN_MAX },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
	};
	if (nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
	    nghttp2_session_set_local_window_size(h2, NGHTTP2_FLAG_NONE, 0, 1 << 30) != 0) {
		nghttp2_session_del(h2);
		return NULL;
	}
	return h2;
}

/* The epoll set (the connection fd, edge-triggered; the wake eventfd) and
 * the submit queue. 0, or -1 (nothing left open). */
static int mux_fds_init(struct stp_mux *m, int fd)
{
	m->ep = epoll_create1(EPOLL_CLOEXEC);
	m->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event w = { .events = EPOLLIN, .data.u64 = KEY_WAKE };
	struct epoll_event c = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				 .data.u64 = KEY_CONN };
	if (m->ep < 0 || m->wake < 0 || epoll_ctl(m->ep, EPOLL_CTL_ADD, m->wake, &w) < 0 ||
	    epoll_ctl(m->ep, EPOLL_CTL_ADD, fd, &c) < 0) {
		if (m->ep >= 0)
			close(m->ep);
		if (m->wake >= 0)
			close(m->wake);
		return -1;
	}
	m->conn_in = true; /* the proxy's SETTINGS may be there already */
	m->qtail = &m->qhead;
	pthread_mutex_init(&m->qmu, NULL);
	return 0;
}

static void mux_fds_close(struct stp_mux *m)
{
	close(m->ep);
	close(m->wake);
	pthread_mutex_destroy(&m->qmu);
}

struct stp_mux *stp_mux_open(const struct stp_proxy *proxy, int timeout_ms, enum stp_err *err)
{
	enum stp_err e = STP_ERR_INVALID;
	if (!proxy || (proxy->kind != STP_SOCKS5 && proxy->kind != STP_SOCKS5H) || proxy->gss.on) {
		*err = STP_ERR_UNSUPPORTED;
		return NULL;
	}
	struct stp_conn *tc = NULL;
	int fd;
	if (proxy->tls.mode != STP_TLS_NONE) {
		tc = client_mux_tls_dial(proxy, timeout_ms, &e);
		fd = tc ? client_mux_tls_fd(tc) : -1;
	} else {
		client_pipe_prepare(proxy, client_deadline(timeout_ms));
		fd = stp_proxy_connect(proxy, timeout_ms, &e);
		if (fd >= 0 && handshake(fd, proxy, timeout_ms, &e) < 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		*err = e;
		return NULL;
	}
	struct stp_mux *m = calloc(1, sizeof(*m));
	if (!m || mux_fds_init(m, fd) < 0) {
		free(m);
		tc ? stp_conn_close(tc) : (void)close(fd);
		*err = STP_ERR_NOMEM;
		return NULL;
	}
	m->fd = fd;
	m->tc = tc;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	/* Frames are small and must leave at once (Nagle would hold a DATA
	 * behind the HEADERS until the ACK: 40 ms a stream). */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_mutex_init(&m->mu, NULL);
	m->h2 = client_new(m);
	if (!m->h2 || pthread_create(&m->thread, NULL, mux_thread, m) != 0) {
		if (m->h2)
			nghttp2_session_del(m->h2);
		mux_fds_close(m);
		tc ? stp_conn_close(tc) : (void)close(fd);
		free(m);
		*err = STP_ERR_NOMEM;
		return NULL;
	}
	return m;
}

static enum stp_err rep_err(int rep)
{
	if (rep >= 1 && rep <= 9)
		return (enum stp_err)(STP_ERR_REP_GENERAL_FAILURE + rep - 1);
	return STP_ERR_REP_OTHER;
}

static void wake(struct stp_mux *m)
{
	uint64_t one = 1;
	ssize_t r = write(m->wake, &one, sizeof(one));
	(void)r;
}

/* For the thread's next turn (the caller found the mutex taken: the
 * thread is busy, and will see the queue before it sleeps). false: the
 * thread is gone. */
static bool queue_push(struct stp_mux *m, struct mux_stream *st)
{
	pthread_mutex_lock(&m->qmu);
	bool ok = !m->qclosed;
	if (ok) {
		*m->qtail = st;
		m->qtail = &st->next;
	}
	pthread_mutex_unlock(&m->qmu);
	if (ok && atomic_exchange(&m->sleeping, false))
		wake(m);
	return ok;
}

/* The caller gave up on a stream that is not released: still queued, it
 * is taken out; submitted, it is reset (the thread frees it). With m->mu
 * held. */
static void stream_abandon(struct stp_mux *m, struct mux_stream *st)
{
	st->waiter = NULL;
	if (st->id == 0) { /* the thread submits the queue under m->mu: still there */
		pthread_mutex_lock(&m->qmu);
		struct mux_stream **pp = &m->qhead;
		while (*pp != st)
			pp = &(*pp)->next;
		*pp = st->next;
		if (m->qtail == &st->next)
			m->qtail = pp;
		pthread_mutex_unlock(&m->qmu);
		close(st->fd);
		free(st);
		return;
	}
	stream_inactive(m, st);
	if (!st->done)
		nghttp2_submit_rst_stream(m->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
	wake(m);
}

int stp_mux_connect(struct stp_mux *m, const char *host, uint16_t port, int timeout_ms,
		    enum stp_err *err)
{
	int sp[2];
	if (!m || !host || !*host || strlen(host) > STP_NAME_MAX) {
		*err = STP_ERR_INVALID;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		*err = STP_ERR_SYSTEM;
		return -1;
	}
	struct mux_stream *st = calloc(1, sizeof(*st));
	if (!st) {
		close(sp[0]);
		close(sp[1]);
		*err = STP_ERR_NOMEM;
		return -1;
	}
	st->fd = sp[1];
	st->rep = -1;
	/* st->fd stays blocking for nobody: the thread only ever uses it with
	 * MSG_DONTWAIT, epoll, shutdown and close (no fcntl calls per stream). */
	snprintf(st->authority, sizeof(st->authority), strchr(host, ':') ? "[%s]:%u" : "%s:%u",
		 host, port);
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	if (timeout_ms >= 0) {
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	struct mux_waiter w = { .status = 0 };
	sem_init(&w.sem, 0, 0);
	st->waiter = &w;
	/* The thread idle (waiting in epoll): the HEADERS leave from here, and
	 * its next wake-up is the response. The thread busy: queued for it,
	 * rather than waiting for its mutex and waking it again after. */
	enum stp_err e = STP_OK;
	if (pthread_mutex_trylock(&m->mu) == 0) {
		e = stream_submit(m, st);
		if (e == STP_OK && mux_send(m) < 0)
			wake(m); /* the thread finds out and ends the connection */
		pthread_mutex_unlock(&m->mu);
	} else if (!queue_push(m, st)) {
		e = STP_ERR_PROXY_CLOSED;
	}
	if (e != STP_OK) {
		sem_destroy(&w.sem);
		close(sp[0]);
		close(sp[1]);
		free(st);
		*err = e;
		return -1;
	}
	int rc;
	do
		rc = timeout_ms < 0 ? sem_wait(&w.sem) : sem_clockwait(&w.sem, CLOCK_MONOTONIC, &dl);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) { /* timed out, unless the thread let it go just now */
		pthread_mutex_lock(&m->mu);
		if (!w.released) { /* so st is still there */
			stream_abandon(m, st);
			pthread_mutex_unlock(&m->mu);
			sem_destroy(&w.sem);
			close(sp[0]);
			*err = STP_ERR_TIMEOUT;
			return -1;
		}
		pthread_mutex_unlock(&m->mu);
	}
	sem_destroy(&w.sem);
	/* 200 even when the stream is already over: what it received is in
	 * the socketpair, then end of file. */
	if (w.status == 200)
		return sp[0];
	if (w.status == 0)
		*err = w.err;
	else
		*err = w.rep >= 0 ? rep_err(w.rep) : STP_ERR_PROTOCOL;
	close(sp[0]);
	return -1;
}

bool client_mux_dead(struct stp_mux *m)
{
	return atomic_load(&m->dead);
}

unsigned client_mux_load(struct stp_mux *m)
{
	return atomic_load(&m->active);
}

void client_mux_abandon(struct stp_mux *m)
{
	/* After fork(), in the child: the thread is not there and its mutex
	 * may be held for ever; close the child's copies of the descriptors
	 * (the parent's connection goes on) and leak the rest (with TLS, the
	 * SSL state: a close_notify from here would end the parent's). */
	close(m->fd);
	close(m->ep);
	close(m->wake);
	for (size_t i = 0; i < m->n; i++)
		if (m->streams[i]->fd >= 0)
			close(m->streams[i]->fd);
	for (struct mux_stream *q = m->qhead; q; q = q->next)
		close(q->fd);
}

void client_mux_goodbye(struct stp_mux *m)
{
	/* At exit other threads may still be in there: never wait for them
	 * long (a turn of the mux thread holds the lock briefly: a bare
	 * trylock lost the close_notify about one exit in ten). The thread
	 * is stopped too: it must not touch SSL once OpenSSL's own exit
	 * handler has freed its state. */
	if (!m->tc || !client_lock_briefly(&m->mu, 200))
		return;
	if (!atomic_load(&m->dead))
		client_mux_tls_goodbye(m->tc);
	m->stop = true;
	wake(m);
	pthread_mutex_unlock(&m->mu);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	pthread_timedjoin_np(m->thread, NULL, &until);
}

void stp_mux_close(struct stp_mux *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_mutex_unlock(&m->mu);
	wake(m);
	pthread_join(m->thread, NULL);
	while (m->n)
		stream_drop(m, m->streams[0]);
	nghttp2_session_del(m->h2);
	if (m->tc)
		stp_conn_close(m->tc); /* close_notify, best effort */
	else
		close(m->fd);
	mux_fds_close(m);
	pthread_mutex_destroy(&m->mu);
	bytebuf_free(&m->out);
	free(m);
}
