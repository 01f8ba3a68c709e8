/*
 * mux.c - multiplexed connections to a proxy (docs/protocol.md 5.11,
 * docs/client.md): one SOCKS connection switched to HTTP/2 with CMD X'30',
 * and one CONNECT stream per stp_mux_connect. A thread per stp_mux runs
 * nghttp2's client session; each stream reaches the caller as one end of a
 * socketpair, so any code that reads and writes an fd can use it.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "client/mux_tls.h"
#include "proto/socks.h"
#include "stp/stp.h"

#define MUX_MAX_STREAMS 1024
#define MUX_DOWN_MAX (256 * 1024) /* our stream window: what one stream may buffer */

/* A caller of stp_mux_connect waiting for its stream's response. Each has
 * its own semaphore, posted once for its stream only (response, close,
 * drop, connection death) with the outcome copied in, so the caller wakes
 * without taking the mutex again: one condition for all of them woke every
 * waiting caller on every response, and each then queued for the mutex
 * the thread was holding (bench/NOTES.md "Multiplexing, profiled"). */
struct mux_waiter {
	sem_t sem;
	int status, rep; /* the stream's; status 0: it ended before a response */
	bool released;   /* set with the mutex held: the stream may be freed now */
};

struct mux_stream {
	int32_t id;
	int fd;           /* our end of the socketpair, non-blocking; -1 when closed */
	char authority[STP_NAME_MAX + 16];
	int status;       /* 0 until the response; HTTP status */
	int rep;          /* socks-rep header, -1 when absent */
	bool done;        /* closed (reset, or both ends) */
	bool local_eof;   /* the caller shut its side: END_STREAM sent */
	bool deferred;
	uint8_t *down;    /* received, not yet taken by the socketpair */
	size_t downlen, downoff, downcap;
	bool remote_eof;  /* END_STREAM from the proxy: shut our end after down */
	struct mux_waiter *waiter; /* the caller still waiting for the response, or NULL */
};

struct stp_mux {
	int fd;           /* to the proxy, non-blocking */
	struct stp_conn *tc; /* TLS proxies: the connection fd belongs to (mux_tls.c) */
	int wake[2];
	pthread_t thread;
	pthread_mutex_t mu;
	nghttp2_session *h2;
	struct mux_stream *streams[MUX_MAX_STREAMS];
	size_t n;
	bool dead, stop;
	bool wake_pending; /* a byte is in the wake pipe the thread has not drained */
	uint8_t *out;
	size_t outlen, outoff;
};

static struct mux_stream *find(struct stp_mux *m, int32_t id)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->streams[i]->id == id)
			return m->streams[i];
	return NULL;
}

static bool alive(const struct stp_mux *m, const struct mux_stream *st)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->streams[i] == st)
			return true;
	return false;
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
	w->released = true;
	if (st->status != 200 && !st->done)
		nghttp2_submit_rst_stream(m->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
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

/* The X'30' reply: 0, or -1 with *err. */
static int handshake_reply(int fd, uint8_t *buf, int t, enum stp_err *err)
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
static int handshake(int fd, const struct stp_proxy *p, int t, enum stp_err *err)
{
	static const uint8_t req[] = { 5, SOCKS_CMD_MUX, 0, 1, 0, 0, 0, 0, 0, 0 };
	uint8_t buf[1100];
	uint8_t method = p->has_auth ? SOCKS_METHOD_USERPASS : SOCKS_METHOD_NONE;
	bool piped = client_pipe_method(p) == (int)method;
	size_t n = socks5_greeting_write(buf, sizeof(buf), &method, 1);
	*err = STP_ERR_PROTOCOL;
	if (piped) {
		size_t a = method == SOCKS_METHOD_USERPASS
				   ? socks_userpass_write(buf + n, sizeof(buf) - n, p->user, p->pass)
				   : 0;
		if (method == SOCKS_METHOD_USERPASS && !a)
			return -1;
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
	return handshake_reply(fd, buf, t, err);
}

/* ---- the thread: everything below runs with m->mu held ---- */

static void stream_drop(struct stp_mux *m, struct mux_stream *st)
{
	st->done = true;
	stream_release(m, st); /* before st is freed under its waiter */
	for (size_t i = 0; i < m->n; i++)
		if (m->streams[i] == st) {
			m->streams[i] = m->streams[--m->n];
			break;
		}
	if (st->fd >= 0)
		close(st->fd);
	free(st->down);
	free(st);
}

/* Hands received bytes to the socketpair; the stream's window opens by
 * what it took. */
static void stream_flush_down(struct stp_mux *m, struct mux_stream *st)
{
	size_t took = 0;
	while (st->fd >= 0 && st->downoff < st->downlen) {
		ssize_t n = send(st->fd, st->down + st->downoff, st->downlen - st->downoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			nghttp2_submit_rst_stream(m->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
			st->downoff = st->downlen;
			break;
		}
		st->downoff += (size_t)n;
		took += (size_t)n;
	}
	if (took && !st->done)
		nghttp2_session_consume_stream(m->h2, st->id, took);
	if (st->downoff == st->downlen) {
		st->downoff = st->downlen = 0;
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
	(void)user;
	struct mux_stream *st = src->ptr;
	ssize_t n = st->fd < 0 ? 0 : recv(st->fd, buf, len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n <= 0) { /* the caller shut its side (or closed it) */
		st->local_eof = true;
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
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
	struct mux_stream *st = find(m, fr->hd.stream_id);
	if (!st)
		return 0;
	if (fr->hd.type == NGHTTP2_HEADERS && st->status != 0)
		stream_release(m, st);
	if ((fr->hd.type == NGHTTP2_HEADERS || fr->hd.type == NGHTTP2_DATA) &&
	    (fr->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		st->remote_eof = true;
		if (st->downoff == st->downlen && st->fd >= 0 && st->status == 200)
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
	if (st->downlen + len > st->downcap) {
		size_t cap = st->downcap ? st->downcap * 2 : 16384;
		while (cap < st->downlen + len)
			cap *= 2;
		uint8_t *b = realloc(st->down, cap);
		if (!b) {
			nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
			return 0;
		}
		st->down = b;
		st->downcap = cap;
	}
	memcpy(st->down + st->downlen, data, len);
	st->downlen += len;
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
	if (code != NGHTTP2_NO_ERROR || st->downoff == st->downlen)
		stream_drop(m, st);
	return 0;
}

/* 0, or -1 when the connection is over. */
static int mux_send(struct stp_mux *m)
{
	if (m->tc)
		return client_mux_tls_send(m->tc, m->h2);
	for (;;) {
		while (m->outoff < m->outlen) {
			ssize_t n = send(m->fd, m->out + m->outoff, m->outlen - m->outoff,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0)
				return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
			m->outoff += (size_t)n;
		}
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(m->h2, &data);
		if (n <= 0)
			return n < 0 ? -1 : 0;
		uint8_t *b = realloc(m->out, (size_t)n);
		if (!b)
			return -1;
		m->out = b;
		memcpy(m->out, data, (size_t)n);
		m->outlen = (size_t)n;
		m->outoff = 0;
	}
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

static void *mux_thread(void *arg)
{
	struct stp_mux *m = arg;
	struct pollfd pf[MUX_MAX_STREAMS + 2];
	struct mux_stream *who[MUX_MAX_STREAMS + 2];
	pthread_mutex_lock(&m->mu);
	while (!m->stop && !m->dead) {
		if (mux_send(m) < 0 ||
		    (!nghttp2_session_want_read(m->h2) && !nghttp2_session_want_write(m->h2) &&
		     m->outoff == m->outlen)) {
			m->dead = true;
			break;
		}
		size_t k = 0;
		pf[k++] = (struct pollfd){ m->wake[0], POLLIN, 0 };
		bool out = m->tc ? client_mux_tls_wants_out(m->tc) : m->outoff < m->outlen;
		pf[k++] = (struct pollfd){ m->fd, (short)(POLLIN | (out ? POLLOUT : 0)), 0 };
		for (size_t i = 0; i < m->n; i++) {
			struct mux_stream *st = m->streams[i];
			short ev = 0;
			if (st->deferred && !st->local_eof)
				ev |= POLLIN;
			if (st->downoff < st->downlen)
				ev |= POLLOUT;
			if (ev && st->fd >= 0) {
				who[k] = st;
				pf[k++] = (struct pollfd){ st->fd, ev, 0 };
			}
		}
		pthread_mutex_unlock(&m->mu);
		/* TLS: records already read may wait in SSL's buffers. */
		bool pending = m->tc && client_mux_tls_pending(m->tc);
		int r = poll(pf, k, pending ? 0 : 1000);
		pthread_mutex_lock(&m->mu);
		if (r < 0 || (r == 0 && !pending))
			continue;
		if (pf[0].revents) {
			char b[64];
			while (read(m->wake[0], b, sizeof(b)) > 0)
				;
			m->wake_pending = false;
		}
		if (m->tc && ((pf[1].revents & (POLLIN | POLLHUP | POLLERR)) || pending)) {
			if (client_mux_tls_recv(m->tc, m->h2) < 0) {
				m->dead = true;
				break;
			}
		} else if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			uint8_t buf[16384];
			ssize_t n = recv(m->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
			    (n > 0 && nghttp2_session_mem_recv(m->h2, buf, (size_t)n) < 0)) {
				m->dead = true;
				break;
			}
		}
		for (size_t j = 2; j < k; j++) {
			struct mux_stream *st = who[j];
			if (!pf[j].revents || !alive(m, st))
				continue;
			if (pf[j].revents & (POLLIN | POLLHUP) && st->deferred) {
				st->deferred = false;
				nghttp2_session_resume_data(m->h2, st->id);
			}
			if (pf[j].revents & (POLLOUT | POLLERR))
				stream_flush_down(m, st);
		}
	}
	if (m->dead)
		streams_abort(m);
	waiters_wake_all(m);
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
	if (!m || pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
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
		close(m->wake[0]);
		close(m->wake[1]);
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

/* With m->mu held. One byte wakes the thread's poll for everything asked
 * before it drains the pipe: callers behind the first skip the write. */
static void wake(struct stp_mux *m)
{
	if (m->wake_pending)
		return;
	m->wake_pending = true;
	ssize_t r = write(m->wake[1], "x", 1);
	(void)r;
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
	 * MSG_DONTWAIT, poll, shutdown and close (no fcntl calls per stream). */
	snprintf(st->authority, sizeof(st->authority), strchr(host, ':') ? "[%s]:%u" : "%s:%u",
		 host, port);
	nghttp2_nv nva[] = {
		{ (uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)st->authority, 10, strlen(st->authority),
		  NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = cb_read };
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
	pthread_mutex_lock(&m->mu);
	int32_t id = -1;
	if (!m->dead && m->n < MUX_MAX_STREAMS)
		id = nghttp2_submit_request(m->h2, NULL, nva, 2, &prd, st);
	if (id < 0) {
		pthread_mutex_unlock(&m->mu);
		close(sp[0]);
		close(sp[1]);
		free(st);
		*err = m->dead ? STP_ERR_PROXY_CLOSED : STP_ERR_NOMEM;
		return -1;
	}
	struct mux_waiter w = { .status = 0 };
	sem_init(&w.sem, 0, 0);
	st->id = id;
	st->waiter = &w;
	m->streams[m->n++] = st;
	wake(m);
	pthread_mutex_unlock(&m->mu);
	int rc;
	do
		rc = timeout_ms < 0 ? sem_wait(&w.sem) : sem_clockwait(&w.sem, CLOCK_MONOTONIC, &dl);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) { /* timed out, unless the thread let it go just now */
		pthread_mutex_lock(&m->mu);
		if (!w.released) { /* so st is still there */
			st->waiter = NULL;
			if (!st->done)
				nghttp2_submit_rst_stream(m->h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
			wake(m);
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
		*err = STP_ERR_PROXY_CLOSED;
	else
		*err = w.rep >= 0 ? rep_err(w.rep) : STP_ERR_PROTOCOL;
	close(sp[0]);
	return -1;
}

bool client_mux_dead(struct stp_mux *m)
{
	pthread_mutex_lock(&m->mu);
	bool dead = m->dead;
	pthread_mutex_unlock(&m->mu);
	return dead;
}

void client_mux_abandon(struct stp_mux *m)
{
	/* After fork(), in the child: the thread is not there and its mutex
	 * may be held for ever; close the child's copies of the descriptors
	 * (the parent's connection goes on) and leak the rest (with TLS, the
	 * SSL state: a close_notify from here would end the parent's). */
	close(m->fd);
	close(m->wake[0]);
	close(m->wake[1]);
	for (size_t i = 0; i < m->n; i++)
		if (m->streams[i]->fd >= 0)
			close(m->streams[i]->fd);
}

void client_mux_goodbye(struct stp_mux *m)
{
	/* At exit other threads may still be in there: never wait for them
	 * long. The thread is stopped too: it must not touch SSL once
	 * OpenSSL's own exit handler has freed its state. */
	if (!m->tc || pthread_mutex_trylock(&m->mu) != 0)
		return;
	if (!m->dead)
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
	wake(m);
	pthread_mutex_unlock(&m->mu);
	pthread_join(m->thread, NULL);
	while (m->n)
		stream_drop(m, m->streams[0]);
	nghttp2_session_del(m->h2);
	if (m->tc)
		stp_conn_close(m->tc); /* close_notify, best effort */
	else
		close(m->fd);
	close(m->wake[0]);
	close(m->wake[1]);
	pthread_mutex_destroy(&m->mu);
	free(m->out);
	free(m);
}
