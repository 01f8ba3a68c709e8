/*
 * lg_tls.c - `throughput` and `connrate` with --tls (SOCKS over TLS: TLS
 * from the first byte, plain SOCKS5 inside) or --blocking (the same code
 * without TLS, the base the TLS figures are compared with).
 *
 * Unlike the rest of loadgen this path is blocking: one thread per stream
 * (throughput) or per client (connrate), each holding one connection at a
 * time, with 5 s socket timeouts as the deadline. OpenSSL over a blocking
 * socket is a few lines; inside the epoll state machine it would be a
 * second handshake engine. connrate therefore measures full TLS handshakes
 * per second for C threads. No session is ever resumed (each SSL_new()
 * starts from nothing) and the server certificate is NOT verified: the
 * benchmark's certificate is self-signed and only loopback is used.
 *
 *   [TLS ClientHello ... Finished]   (--tls)
 *   VER NMETHODS METHODS -> VER METHOD
 *   [VER ULEN UNAME PLEN PASSWD -> VER STATUS]   (--userpass, RFC 1929)
 *   VER CMD RSV ATYP ADDR PORT -> VER REP RSV ATYP ADDR PORT
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "loadgen.h"

#define BL_CHUNK (256 * 1024)
#define BL_SAMPLES_MAX (256u * 1024) /* latency samples per connrate thread */

struct bl_conn {
	int fd;
	SSL *ssl;        /* NULL without --tls */
	uint8_t in[512];
	size_t inlen;
	size_t surplus;  /* bytes after the reply, at in + inlen - surplus */
	const char *why; /* static text for the last failure */
};

struct bl_thread {
	struct lg_run *run;
	SSL_CTX *ctx;
	int id;
	pthread_t th;
	uint8_t *buf;
	uint32_t *lat;
	size_t nlat;
};

static int bl_fail(struct bl_conn *c, const char *why)
{
	if (!c->why)
		c->why = why;
	return -1;
}

static int bl_write(struct bl_conn *c, const void *p, size_t n)
{
	size_t done = 0;

	if (c->ssl)
		return SSL_write_ex(c->ssl, p, n, &done) == 1 ? 0 : bl_fail(c, "TLS write failed");
	while (done < n) {
		ssize_t r = send(c->fd, (const uint8_t *)p + done, n - done, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return bl_fail(c, "send failed");
		done += (size_t)r;
	}
	return 0;
}

/* One read: > 0 bytes, -1 on EOF, error or timeout. */
static ssize_t bl_read(struct bl_conn *c, void *p, size_t n)
{
	if (c->ssl) {
		size_t got = 0;
		if (SSL_read_ex(c->ssl, p, n, &got) == 1)
			return (ssize_t)got;
		return bl_fail(c, SSL_get_error(c->ssl, 0) == SSL_ERROR_ZERO_RETURN
					  ? "proxy closed the TLS session" : "TLS read failed");
	}
	for (;;) {
		ssize_t r = recv(c->fd, p, n, 0);
		if (r > 0)
			return r;
		if (r < 0 && errno == EINTR)
			continue;
		return bl_fail(c, r == 0 ? "proxy closed the connection" : "recv failed or timed out");
	}
}

static int bl_fill(struct bl_conn *c)
{
	if (c->inlen == sizeof(c->in))
		return bl_fail(c, "handshake message too long");
	ssize_t n = bl_read(c, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n < 0)
		return -1;
	c->inlen += (size_t)n;
	return 0;
}

static int bl_choice(struct bl_conn *c, uint8_t *method)
{
	struct socks_err err = { 0, NULL };
	size_t used = 0;

	for (c->inlen = 0;;) {
		switch (socks5_choice_parse(method, c->in, c->inlen, &used, &err)) {
		case SOCKS_DONE: return used == c->inlen ? 0 : bl_fail(c, "bytes after the choice");
		case SOCKS_BAD: return bl_fail(c, err.why);
		case SOCKS_MORE: if (bl_fill(c) < 0) return -1;
		}
	}
}

static int bl_auth_status(struct bl_conn *c, uint8_t *status)
{
	struct socks_err err = { 0, NULL };
	size_t used = 0;

	for (c->inlen = 0;;) {
		switch (socks_userpass_status_parse(status, c->in, c->inlen, &used, &err)) {
		case SOCKS_DONE: return used == c->inlen ? 0 : bl_fail(c, "bytes after the status");
		case SOCKS_BAD: return bl_fail(c, err.why);
		case SOCKS_MORE: if (bl_fill(c) < 0) return -1;
		}
	}
}

static int bl_reply(struct bl_conn *c)
{
	struct socks_err err = { 0, NULL };
	struct socks5_reply reply;
	size_t used = 0;

	for (c->inlen = 0;;) {
		switch (socks5_reply_parse(&reply, c->in, c->inlen, &used, &err)) {
		case SOCKS_DONE:
			c->surplus = c->inlen - used;
			return reply.rep == SOCKS5_REP_SUCCEEDED ? 0
								 : bl_fail(c, socks5_rep_name(reply.rep));
		case SOCKS_BAD: return bl_fail(c, err.why);
		case SOCKS_MORE: if (bl_fill(c) < 0) return -1;
		}
	}
}

/* The SOCKS5 exchange, one message at a time (see lg_conn.c for why). */
static int bl_socks(struct bl_conn *c, const struct lg_opts *o, const struct sockaddr_in *to)
{
	uint8_t out[SOCKS_USERPASS_MAX], method = o->user ? SOCKS_METHOD_USERPASS : SOCKS_METHOD_NONE;
	uint8_t chosen = 0xFF, status = 0xFF;
	struct socks_addr dst;

	if (bl_write(c, out, socks5_greeting_write(out, sizeof(out), &method, 1)) < 0 ||
	    bl_choice(c, &chosen) < 0)
		return -1;
	if (chosen != method)
		return bl_fail(c, "proxy chose another method");
	if (o->user) {
		if (bl_write(c, out, socks_userpass_write(out, sizeof(out), o->user, o->pass)) < 0 ||
		    bl_auth_status(c, &status) < 0)
			return -1;
		if (status != 0)
			return bl_fail(c, "username/password rejected");
	}
	lg_addr_from_sin(&dst, to);
	if (bl_write(c, out, socks5_request_write(out, sizeof(out), SOCKS_CMD_CONNECT, &dst)) < 0)
		return -1;
	return bl_reply(c);
}

static void bl_close(struct bl_conn *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl); /* sends close_notify; does not wait for the peer's */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	ERR_clear_error(); /* a failed cycle must not leave its errors to the next */
}

/* Connects to the proxy (or the target with --direct), TLS and SOCKS. */
static int bl_open(struct bl_thread *t, struct bl_conn *c, int tidx)
{
	const struct lg_opts *o = t->run->o;
	struct timeval tv = { .tv_sec = (time_t)(LG_OP_TIMEOUT_NS / 1000000000ull) };
	const struct sockaddr_in *to = &t->run->tg->addr[tidx];

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return bl_fail(c, "socket");
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return bl_fail(c, "setsockopt");
	if (connect(c->fd, (const struct sockaddr *)lg_first_hop(t->run, tidx), sizeof(*to)) < 0)
		return bl_fail(c, "connect refused or failed");
	if (o->direct)
		return 0;
	if (t->ctx) {
		if (!(c->ssl = SSL_new(t->ctx)) || SSL_set_fd(c->ssl, c->fd) != 1)
			return bl_fail(c, "SSL_new");
		if (SSL_connect(c->ssl) != 1)
			return bl_fail(c, "TLS handshake failed");
	}
	return bl_socks(c, o, to);
}

static void bl_error(struct bl_thread *t, struct bl_conn *c, atomic_uint_fast64_t *counter)
{
	if (atomic_load(&t->run->phase) == LG_STOP)
		return; /* a cycle cut short by the end of the run */
	atomic_fetch_add(counter, 1);
	lg_run_error(t->run, "%s", c->why ? c->why : "failed");
}

/* ---- throughput: one stream per thread ---- */

static void *bl_stream_main(void *arg)
{
	struct bl_thread *t = arg;
	struct lg_run *run = t->run;
	struct bl_conn c;
	bool up = run->o->dir == LG_UP;

	if (bl_open(t, &c, t->id % run->tg->n) < 0) {
		bl_error(t, &c, &run->failed);
		bl_close(&c);
		return NULL;
	}
	if (c.surplus)
		atomic_fetch_add(&run->bytes, c.surplus);
	atomic_fetch_add(&run->ready, 1);
	while (atomic_load(&run->phase) != LG_STOP) {
		ssize_t n = up ? (bl_write(&c, t->buf, BL_CHUNK) < 0 ? -1 : BL_CHUNK)
			       : bl_read(&c, t->buf, BL_CHUNK);
		if (n < 0) {
			bl_error(t, &c, &run->errors);
			break;
		}
		if (!up)
			atomic_fetch_add_explicit(&run->bytes, (uint64_t)n, memory_order_relaxed);
	}
	bl_close(&c);
	return NULL;
}

/* ---- connrate: one client per thread ---- */

/* One cycle: open, send --size bytes, read them back, close. */
static int bl_cycle(struct bl_thread *t, struct bl_conn *c, int tidx)
{
	size_t size = t->run->o->size, got = 0;
	uint8_t *echo = t->buf + size;

	if (bl_open(t, c, tidx) < 0)
		return -1;
	if (c->surplus)
		return bl_fail(c, "bytes before the echo");
	if (bl_write(c, t->buf, size) < 0)
		return -1;
	while (got < size) {
		ssize_t n = bl_read(c, echo + got, size - got);
		if (n < 0)
			return -1;
		got += (size_t)n;
	}
	return memcmp(echo, t->buf, size) == 0 ? 0 : bl_fail(c, "echo differs");
}

static void *bl_cycle_main(void *arg)
{
	struct bl_thread *t = arg;
	struct lg_run *run = t->run;
	uint64_t nerrors = 0;

	for (unsigned k = 0; atomic_load(&run->phase) != LG_STOP && nerrors < LG_ERROR_CAP; k++) {
		struct bl_conn c;
		uint64_t t0 = lg_now_ns();
		int r = bl_cycle(t, &c, (int)(((unsigned)t->id + k) % (unsigned)run->tg->n));
		uint64_t t1 = lg_now_ns();
		if (r < 0) {
			nerrors++;
			bl_error(t, &c, &run->errors);
		} else if (atomic_load(&run->phase) == LG_MEASURE) {
			if (t->nlat < BL_SAMPLES_MAX)
				t->lat[t->nlat++] = (uint32_t)((t1 - t0) / 1000);
		}
		if (r == 0)
			atomic_fetch_add_explicit(&run->count, 1, memory_order_relaxed);
		bl_close(&c);
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static void bl_percentiles(struct bl_thread *t, int n, struct lg_result *res)
{
	size_t total = 0, at = 0;
	for (int i = 0; i < n; i++)
		total += t[i].nlat;
	uint32_t *all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		return;
	for (int i = 0; i < n; i++) {
		memcpy(all + at, t[i].lat, t[i].nlat * sizeof(*all));
		at += t[i].nlat;
	}
	qsort(all, total, sizeof(*all), cmp_u32);
	res->p50_ms = lg_percentile(all, total, 50) / 1000.0;
	res->p90_ms = lg_percentile(all, total, 90) / 1000.0;
	res->p99_ms = lg_percentile(all, total, 99) / 1000.0;
	free(all);
}

static SSL_CTX *bl_ctx(struct lg_run *run)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		lg_run_error(run, "SSL_CTX_new failed");
		return NULL;
	}
	/* Benchmark only: the server's certificate is self-signed, never checked. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* full handshakes */
	return ctx;
}

/* Starts n threads; false (with the error recorded) if any failed to. */
static bool bl_start(struct lg_run *run, struct bl_thread *t, int n, void *(*fn)(void *),
		     int *started)
{
	for (*started = 0; *started < n; (*started)++)
		if (pthread_create(&t[*started].th, NULL, fn, &t[*started]) != 0) {
			lg_run_error(run, "pthread_create failed");
			return false;
		}
	return true;
}

int lg_mode_blocking(struct lg_run *run, struct lg_result *res)
{
	const struct lg_opts *o = run->o;
	bool rate = o->mode == LG_CONNRATE;
	int n = rate ? o->clients : o->streams, started = 0, rc = -1;
	struct bl_thread *t = calloc((size_t)n, sizeof(*t));
	SSL_CTX *ctx = o->tls ? bl_ctx(run) : NULL;
	uint64_t delta = 0;

	if (!t || (o->tls && !ctx))
		goto out;
	for (int i = 0; i < n; i++) {
		t[i] = (struct bl_thread){ .run = run, .ctx = ctx, .id = i };
		t[i].buf = malloc(rate ? 2 * o->size : BL_CHUNK);
		t[i].lat = rate ? malloc(BL_SAMPLES_MAX * sizeof(*t[i].lat)) : NULL;
		if (!t[i].buf || (rate && !t[i].lat)) {
			lg_run_error(run, "out of memory");
			goto out;
		}
		memset(t[i].buf, 'a' + i % 26, rate ? o->size : BL_CHUNK);
	}
	/* connrate has no set-up phase: every cycle is a fresh connection. */
	atomic_store(&run->phase, rate ? LG_WARMUP : LG_SETUP);
	if (!bl_start(run, t, n, rate ? bl_cycle_main : bl_stream_main, &started))
		goto out;
	if (rate) {
		res->seconds = lg_timeline(run, &run->count, &delta);
		res->per_s = (double)delta / res->seconds;
		res->received = delta;
		rc = 0;
	} else if (lg_wait_ready(run, (uint64_t)n, LG_SETUP_SECS)) {
		atomic_uint_fast64_t *counter = o->dir == LG_UP ? &run->tg->bytes_in : &run->bytes;
		res->seconds = lg_timeline(run, counter, &delta);
		res->mb_s = (double)delta / res->seconds / 1e6;
		rc = 0;
	} else {
		lg_run_error(run, "only %lu of %d streams set up",
			     (unsigned long)atomic_load(&run->ready), n);
	}
out:
	atomic_store(&run->phase, LG_STOP);
	for (int i = 0; i < started; i++)
		pthread_join(t[i].th, NULL);
	if (rc == 0 && rate)
		bl_percentiles(t, n, res);
	for (int i = 0; t && i < n; i++) {
		free(t[i].buf);
		free(t[i].lat);
	}
	free(t);
	SSL_CTX_free(ctx);
	return rc;
}
