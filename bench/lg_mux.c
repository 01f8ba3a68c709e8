/*
 * lg_mux.c - `connrate --mux`: the connection cycle as HTTP/2 CONNECT
 * streams of stpd's multiplexing (CMD X'30', docs/protocol.md 5.11).
 * Each worker thread holds --mux-conns / threads proxy connections (set up
 * blocking: TCP, with --tls a TLS handshake, greeting, X'30', preface),
 * then runs them non-blocking in its epoll loop with an nghttp2 client
 * session each. The --clients are concurrent streams spread over those
 * connections; each loops: HEADERS CONNECT to the TCP echo and --size bytes
 * of DATA in the same write, the echo read back (one cycle, its latency
 * from the HEADERS to the last echoed byte), then END_STREAM, and the next
 * stream opens at once (the old one closes in the background, as a closed
 * socket's FIN does). All of one loop turn's frames leave in one write per
 * connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "loadgen.h"

#define MX_MAX_PAYLOAD 4096
#define MX_SAMPLES_MAX (2u * 1000 * 1000)
#define MX_IN 65536

struct mx_conn;

struct mx_stream {
	struct mx_conn *mc;
	int32_t id;
	size_t got;
	int sent;        /* 0 payload pending, 1 sent, 2 EOF due, 3 EOF sent */
	uint64_t started;
};

struct mx_conn {
	struct lg_conn lc; /* fd and epoll bookkeeping (data.ptr) */
	struct lg_worker *w;
	SSL *ssl;
	nghttp2_session *h2;
	uint8_t *out;
	size_t outlen, outoff, outcap;
	int clients;     /* streams this connection keeps open */
	unsigned next_target;
	bool dead;
};

struct mx_worker {
	struct mx_conn *conns;
	int nconns;
	const uint8_t *payload;
};

static uint8_t payload[MX_MAX_PAYLOAD];
static SSL_CTX *tls_ctx;

/* ---- set-up (blocking) ---- */

static int io_all(struct mx_conn *mc, uint8_t *p, size_t n, bool wr)
{
	while (n > 0) {
		int r;
		if (mc->ssl)
			r = wr ? SSL_write(mc->ssl, p, (int)n) : SSL_read(mc->ssl, p, (int)n);
		else
			r = (int)(wr ? send(mc->lc.fd, p, n, MSG_NOSIGNAL) : recv(mc->lc.fd, p, n, 0));
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int mx_setup(struct lg_run *run, struct mx_conn *mc, char *why, size_t wl)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	mc->lc.fd = fd;
	if (fd < 0 || connect(fd, (const struct sockaddr *)&run->o->proxy,
			      sizeof(run->o->proxy)) < 0) {
		snprintf(why, wl, "connect: %s", strerror(errno));
		return -1;
	}
	/* Frames are small and must leave at once. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (run->o->tls) {
		mc->ssl = SSL_new(tls_ctx);
		if (!mc->ssl || SSL_set_fd(mc->ssl, fd) != 1 || SSL_connect(mc->ssl) != 1) {
			snprintf(why, wl, "TLS handshake failed");
			return -1;
		}
	}
	uint8_t b[32] = { 5, 1, 0 };
	if (io_all(mc, b, 3, true) < 0 || io_all(mc, b, 2, false) < 0 || b[1] != 0) {
		snprintf(why, wl, "greeting refused");
		return -1;
	}
	static const uint8_t req[] = { 5, SOCKS_CMD_MUX, 0, 1, 0, 0, 0, 0, 0, 0 };
	memcpy(b, req, sizeof(req));
	if (io_all(mc, b, sizeof(req), true) < 0 || io_all(mc, b, 10, false) < 0 ||
	    b[1] != 0) {
		snprintf(why, wl, "X'30' refused (REP %u)", b[1]);
		return -1;
	}
	lg_set_nonblock(fd);
	return 0;
}

/* ---- output: everything nghttp2 has, one write ---- */

static int mx_write(struct mx_conn *mc)
{
	for (;;) {
		if (mc->outoff == mc->outlen) {
			mc->outoff = mc->outlen = 0;
			const uint8_t *d;
			ssize_t n;
			while ((n = nghttp2_session_mem_send(mc->h2, &d)) > 0) {
				if (mc->outlen + (size_t)n > mc->outcap) {
					size_t cap = mc->outcap ? mc->outcap * 2 : 65536;
					while (cap < mc->outlen + (size_t)n)
						cap *= 2;
					uint8_t *nb = realloc(mc->out, cap);
					if (!nb)
						return -1;
					mc->out = nb;
					mc->outcap = cap;
				}
				memcpy(mc->out + mc->outlen, d, (size_t)n);
				mc->outlen += (size_t)n;
			}
			if (n < 0)
				return -1;
			if (mc->outlen == 0)
				return 1;
		}
		size_t left = mc->outlen - mc->outoff;
		ssize_t n;
		if (mc->ssl) {
			int r = SSL_write(mc->ssl, mc->out + mc->outoff, (int)left);
			if (r <= 0) {
				int e = SSL_get_error(mc->ssl, r);
				return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
			}
			n = r;
		} else {
			n = send(mc->lc.fd, mc->out + mc->outoff, left, MSG_NOSIGNAL);
			if (n < 0)
				return errno == EAGAIN || errno == EINTR ? 0 : -1;
		}
		mc->outoff += (size_t)n;
	}
}

/* ---- streams ---- */

static ssize_t cb_read(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
		       uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct mx_stream *st = src->ptr;
	size_t size = ((struct mx_conn *)user)->w->run->o->size;
	(void)h2;
	(void)id;
	if (st->sent == 0) {
		size_t n = size < len ? size : len; /* size <= 4096 < frame size */
		memcpy(buf, payload, n);
		st->sent = 1;
		return (ssize_t)n;
	}
	if (st->sent == 2) {
		st->sent = 3;
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	return NGHTTP2_ERR_DEFERRED;
}

static int mx_open(struct mx_conn *mc)
{
	struct lg_run *run = mc->w->run;
	struct mx_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return -1;
	const struct sockaddr_in *t = &run->tg->addr[mc->next_target++ % (unsigned)run->tg->n];
	char auth[32];
	char ip[16];
	inet_ntop(AF_INET, &t->sin_addr, ip, sizeof(ip));
	snprintf(auth, sizeof(auth), "%s:%u", ip, ntohs(t->sin_port));
	nghttp2_nv nva[] = {
		{ (uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)auth, 10, strlen(auth), NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = cb_read };
	st->mc = mc;
	st->started = lg_now_ns();
	st->id = nghttp2_submit_request(mc->h2, NULL, nva, 2, &prd, st);
	if (st->id < 0) {
		free(st);
		return -1;
	}
	return 0;
}

static void mx_count(struct lg_worker *w, uint64_t started)
{
	if (atomic_load(&w->run->phase) == LG_MEASURE && w->nlat < w->caplat)
		w->lat[w->nlat++] = (uint32_t)((lg_now_ns() - started) / 1000);
	atomic_fetch_add_explicit(&w->run->count, 1, memory_order_relaxed);
}

static int cb_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
		   size_t len, void *user)
{
	struct mx_conn *mc = user;
	struct mx_stream *st = nghttp2_session_get_stream_user_data(h2, id);
	size_t size = mc->w->run->o->size;
	(void)flags;
	if (!st)
		return 0;
	if (st->got + len > size || memcmp(data, payload + st->got, len) != 0) {
		lg_run_error(mc->w->run, "mux: echo differs");
		atomic_fetch_add(&mc->w->run->errors, 1);
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	st->got += len;
	if (st->got == size) {
		mx_count(mc->w, st->started);
		st->sent = 2; /* END_STREAM, as a client's close */
		nghttp2_session_resume_data(h2, id);
		if (atomic_load(&mc->w->run->phase) != LG_STOP && mx_open(mc) < 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return 0;
}

static int cb_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	struct mx_conn *mc = user;
	struct mx_stream *st = nghttp2_session_get_stream_user_data(h2, id);
	if (!st)
		return 0;
	if (st->got < mc->w->run->o->size) {
		/* Ended before its echo: a failure; its client starts over. */
		struct lg_conn tmp = { .why = code ? nghttp2_http2_strerror(code)
						   : "stream ended before the echo" };
		lg_worker_fail(mc->w, &tmp, "mux stream");
		if (atomic_load(&mc->w->run->phase) != LG_STOP)
			mx_open(mc);
	}
	free(st);
	return 0;
}

static int cb_header(nghttp2_session *h2, const nghttp2_frame *fr, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	(void)h2;
	(void)flags;
	(void)user;
	if (fr->hd.type == NGHTTP2_HEADERS && namelen == 7 && memcmp(name, ":status", 7) == 0 &&
	    !(valuelen == 3 && memcmp(value, "200", 3) == 0))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream: cb_close */
	return 0;
}

static nghttp2_session *mx_h2(struct mx_conn *mc)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_session *h2 = NULL;
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_close);
	nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
	if (nghttp2_session_client_new(&h2, cbs, mc) != 0)
		h2 = NULL;
	nghttp2_session_callbacks_del(cbs);
	if (!h2)
		return NULL;
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 } };
	if (nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, iv, 1) != 0) {
		nghttp2_session_del(h2);
		return NULL;
	}
	return h2;
}

/* ---- the loop ---- */

static void mx_kill(struct mx_conn *mc, const char *why)
{
	if (mc->dead)
		return;
	mc->dead = true;
	mc->lc.why = why;
	lg_worker_fail(mc->w, &mc->lc, "mux connection");
	epoll_ctl(mc->w->ep, EPOLL_CTL_DEL, mc->lc.fd, NULL);
}

static void mx_read(struct mx_conn *mc)
{
	uint8_t buf[MX_IN];
	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t n;
		if (mc->ssl) {
			int r = SSL_read(mc->ssl, buf, sizeof(buf));
			if (r <= 0) {
				int e = SSL_get_error(mc->ssl, r);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				mx_kill(mc, "TLS read failed");
				return;
			}
			n = r;
		} else {
			n = recv(mc->lc.fd, buf, sizeof(buf), 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n <= 0) {
				mx_kill(mc, n == 0 ? "proxy closed" : "recv failed");
				return;
			}
		}
		if (nghttp2_session_mem_recv(mc->h2, buf, (size_t)n) < 0) {
			mx_kill(mc, "HTTP/2 error");
			return;
		}
		if ((size_t)n < sizeof(buf) && !(mc->ssl && SSL_pending(mc->ssl)))
			return;
	}
}

static void mx_event(struct lg_worker *w, struct lg_conn *c, uint32_t events)
{
	struct mx_conn *mc = (struct mx_conn *)c;
	(void)w;
	if (mc->dead)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		mx_read(mc);
	if (mc->dead)
		return;
	int r = mx_write(mc);
	if (r < 0) {
		mx_kill(mc, "write failed");
		return;
	}
	if (lg_conn_watch(c, w->ep, r == 0 ? EPOLLIN | EPOLLOUT : EPOLLIN) < 0)
		mx_kill(mc, "epoll");
}

static void mx_fail(struct lg_worker *w, struct lg_conn *c, const char *why)
{
	(void)w;
	mx_kill((struct mx_conn *)c, why);
}

static void *mx_main(void *arg)
{
	struct lg_worker *w = arg;
	struct mx_worker *xw = w->mode;
	for (int i = 0; i < xw->nconns; i++) {
		struct mx_conn *mc = &xw->conns[i];
		for (int k = 0; k < mc->clients; k++)
			mx_open(mc);
		mx_event(w, &mc->lc, 0);
	}
	/* lg_worker_loop dispatches by lg_conn pointer: each mx_conn starts
	 * with one, and w->nconns is 0 so no deadlines are scanned (a stream
	 * that never answers shows as a rate of 0, and STOP ends the run). */
	lg_worker_loop(w, mx_event, mx_fail);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

int lg_mode_mux(struct lg_run *run, struct lg_result *res)
{
	const struct lg_opts *o = run->o;
	struct lg_worker w[LG_MAX_THREADS];
	struct mx_worker xw[LG_MAX_THREADS];
	char err[256];
	uint64_t delta = 0;
	int nconns = o->mux_conns > 0 ? o->mux_conns : o->threads;

	if (o->direct || o->size == 0 || o->size > MX_MAX_PAYLOAD || nconns > o->clients) {
		lg_run_error(run, "--mux: needs --proxy, --size 1..%d, --mux-conns <= --clients",
			     MX_MAX_PAYLOAD);
		return -1;
	}
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)('a' + i % 26);
	if (o->tls) {
		OPENSSL_init_ssl(0, NULL);
		tls_ctx = SSL_CTX_new(TLS_client_method());
		if (!tls_ctx)
			return -1;
		SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL); /* loopback bench only */
	}
	if (lg_workers_init(run, w, 0, err, sizeof(err)) < 0) {
		lg_run_error(run, "%s", err);
		return -1;
	}
	int at = 0;
	for (int i = 0; i < o->threads; i++) {
		int mine = nconns / o->threads + (i < nconns % o->threads);
		xw[i] = (struct mx_worker){ .conns = calloc((size_t)(mine ? mine : 1),
							    sizeof(struct mx_conn)),
					    .nconns = mine };
		w[i].mode = &xw[i];
		w[i].caplat = MX_SAMPLES_MAX;
		w[i].lat = malloc(MX_SAMPLES_MAX * sizeof(*w[i].lat));
		if (!xw[i].conns || !w[i].lat) {
			lg_run_error(run, "out of memory");
			return -1;
		}
		for (int k = 0; k < mine; k++, at++) {
			struct mx_conn *mc = &xw[i].conns[k];
			mc->w = &w[i];
			mc->next_target = (unsigned)at;
			mc->clients = o->clients / nconns + (at < o->clients % nconns);
			if (mx_setup(run, mc, err, sizeof(err)) < 0 || !(mc->h2 = mx_h2(mc))) {
				lg_run_error(run, "mux set-up: %s", err);
				atomic_fetch_add(&run->failed, 1);
				return -1;
			}
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &mc->lc };
			mc->lc.events = EPOLLIN;
			mc->lc.hs = LG_HS_DONE;
			if (epoll_ctl(w[i].ep, EPOLL_CTL_ADD, mc->lc.fd, &ev) < 0)
				return -1;
		}
	}
	atomic_store(&run->phase, LG_WARMUP);
	if (lg_workers_start(run, w, mx_main) < 0) {
		lg_run_error(run, "pthread_create failed");
		return -1;
	}
	res->seconds = lg_timeline(run, &run->count, &delta);
	res->per_s = (double)delta / res->seconds;
	res->received = delta;
	size_t total = 0;
	for (int i = 0; i < o->threads; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].nlat;
	}
	uint32_t *all = malloc((total ? total : 1) * sizeof(*all));
	for (int i = 0, off = 0; all && i < o->threads; i++) {
		memcpy(all + off, w[i].lat, w[i].nlat * sizeof(*all));
		off += (int)w[i].nlat;
	}
	if (all) {
		qsort(all, total, sizeof(*all), cmp_u32);
		res->p50_ms = lg_percentile(all, total, 50) / 1000.0;
		res->p90_ms = lg_percentile(all, total, 90) / 1000.0;
		res->p99_ms = lg_percentile(all, total, 99) / 1000.0;
		free(all);
	}
	for (int i = 0; i < o->threads; i++) {
		for (int k = 0; k < xw[i].nconns; k++) {
			struct mx_conn *mc = &xw[i].conns[k];
			nghttp2_session_del(mc->h2); /* frees no stream data: ours leak at exit */
			if (mc->ssl)
				SSL_free(mc->ssl);
			close(mc->lc.fd);
			free(mc->out);
		}
		free(xw[i].conns);
		free(w[i].lat);
		close(w[i].ep);
		free(w[i].conns);
	}
	return 0;
}
