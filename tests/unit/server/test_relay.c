/*
 * test_relay.c - the TCP relay (src/server/relay.c) between two
 * socketpairs, driven by a worker's loop (srv_harness.c): bytes both ways
 * with their counters, early bytes first, half-close each way, large
 * transfers under back-pressure (spliced over AF_UNIX and loopback TCP,
 * buffered as after splice's EINVAL, buffered through a filtered client
 * connection), and the idle timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/conn.h"
#include "server/filter.h"
#include "server/relay.h"
#include "srv_harness.h"

#define KEY 0x5a

/* ---- a stream filter: every byte XOR KEY, no framing, unbounded ---- */

struct xstream {
	struct stream_filter f;
	uint8_t *in, *out;
	size_t inlen, outlen, incap, outcap;
};

static void grow(uint8_t **b, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	*cap = need * 2;
	*b = realloc(*b, *cap);
	assert_non_null(*b);
}

static int xs_input(struct stream_filter *f, const uint8_t *p, size_t n)
{
	struct xstream *x = (struct xstream *)f;
	grow(&x->in, &x->incap, x->inlen + n);
	memcpy(x->in + x->inlen, p, n);
	x->inlen += n;
	return 0;
}

static ssize_t xs_read(struct stream_filter *f, uint8_t *out, size_t cap)
{
	struct xstream *x = (struct xstream *)f;
	size_t n = x->inlen < cap ? x->inlen : cap;
	if (n == 0)
		return FILTER_NONE;
	for (size_t i = 0; i < n; i++)
		out[i] = x->in[i] ^ KEY;
	memmove(x->in, x->in + n, x->inlen - n);
	x->inlen -= n;
	return (ssize_t)n;
}

static int xs_write(struct stream_filter *f, const uint8_t *p, size_t n)
{
	struct xstream *x = (struct xstream *)f;
	grow(&x->out, &x->outcap, x->outlen + n);
	for (size_t i = 0; i < n; i++)
		x->out[x->outlen + i] = p[i] ^ KEY;
	x->outlen += n;
	return 0;
}

static size_t xs_output(struct stream_filter *f, const uint8_t **p)
{
	struct xstream *x = (struct xstream *)f;
	*p = x->out;
	return x->outlen;
}

static void xs_output_done(struct stream_filter *f, size_t n)
{
	struct xstream *x = (struct xstream *)f;
	memmove(x->out, x->out + n, x->outlen - n);
	x->outlen -= n;
}

static void xs_shutdown(struct stream_filter *f)
{
	(void)f;
}

static void xs_free(struct stream_filter *f)
{
	struct xstream *x = (struct xstream *)f;
	free(x->in);
	free(x->out);
	free(x);
}

static const struct stream_filter_ops xs_ops = {
	"xor", xs_input, xs_read, xs_write, xs_output, xs_output_done, xs_shutdown, xs_free,
};

/* ---- fixture ---- */

/* UNIX_PAIRS splice (Linux 6.x splices AF_UNIX streams); BUFFERED is the
 * same pairs on the path a relay takes for good once splice says EINVAL
 * (forced here: no socket on this kernel refuses); FILTERED has a filter on
 * the client connection, always buffered. */
enum kind { UNIX_PAIRS, TCP_PAIRS, BUFFERED, FILTERED };

struct rfx {
	struct worker w;
	int c[2], t[2]; /* client and target pairs: [0] the relay's, [1] the test's */
	struct conn client;
	struct relay r;
	bool done;
	char reason[64];
	uint8_t key; /* what the test's client end XORs with (0: plain) */
};

static void on_done(struct relay *r, const char *reason)
{
	struct rfx *f = (struct rfx *)((char *)r - offsetof(struct rfx, r));
	f->done = true;
	snprintf(f->reason, sizeof(f->reason), "%s", reason);
}

static bool relay_done(void *arg)
{
	return ((struct rfx *)arg)->done;
}

/* A connected loopback TCP pair: [0] non-blocking, [1] blocking with a
 * 10 s timeout (as h_pair). */
static void tcp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	sv[1] = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(sv[1], (struct sockaddr *)&a, sizeof(a)), 0);
	sv[0] = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	assert_true(sv[0] >= 0);
	close(l);
	/* Fixed buffers (no autotuning): the back-pressure test can bound
	 * what sits in them. */
	int sz = 65536;
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static struct rfx *rfx_new(enum kind k, const uint8_t *early, size_t earlylen, unsigned idle)
{
	struct rfx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	struct snapshot *snap = h_snapshot("request pass\n");
	h_worker(&f->w, snap);
	snapshot_unref(snap);
	if (k == TCP_PAIRS) {
		tcp_pair(f->c);
		tcp_pair(f->t);
	} else {
		h_pair(f->c);
		h_pair(f->t);
	}
	conn_init(&f->client, f->c[0]);
	if (k == FILTERED) {
		struct xstream *x = calloc(1, sizeof(*x));
		assert_non_null(x);
		x->f.ops = &xs_ops;
		assert_int_equal(conn_set_filter(&f->client, &x->f, NULL, 0), 0);
		f->key = KEY;
	}
	assert_int_equal(relay_start(&f->r, f->w.loop, f->w.pipes, &f->client, f->t[0], early,
				     earlylen, idle, 65536, on_done),
			 0);
	assert_int_equal(f->r.use_splice, k != FILTERED);
	if (k == BUFFERED)
		f->r.use_splice = false; /* what relay.c does on EINVAL */
	return f;
}

static void rfx_free(struct rfx *f)
{
	relay_stop(&f->r);
	conn_close(&f->client);
	close(f->t[0]);
	close(f->c[1]);
	close(f->t[1]);
	h_worker_free(&f->w);
	free(f);
}

static void xor(uint8_t *p, size_t n, uint8_t key)
{
	for (size_t i = 0; i < n; i++)
		p[i] ^= key;
}

/* The client side as the test sees it: XOR-ed when filtered. */
static void client_send(struct rfx *f, const char *text)
{
	uint8_t b[256];
	size_t n = strlen(text);
	memcpy(b, text, n);
	xor(b, n, f->key);
	h_write(f->c[1], b, n);
}

static void client_expect(struct rfx *f, const char *text)
{
	uint8_t b[256];
	size_t n = strlen(text);
	assert_int_equal(h_read(&f->w, f->c[1], b, n), n);
	xor(b, n, f->key);
	assert_memory_equal(b, text, n);
}

static void target_expect(struct rfx *f, const char *text)
{
	uint8_t b[256];
	size_t n = strlen(text);
	assert_int_equal(h_read(&f->w, f->t[1], b, n), n);
	assert_memory_equal(b, text, n);
}

/* ---- both ways, counters, early bytes ---- */

static void both_ways(enum kind k)
{
	struct rfx *f = rfx_new(k, (const uint8_t *)"EARLY", 5, 0);
	target_expect(f, "EARLY"); /* before anything the client sends next */
	client_send(f, "hello");
	target_expect(f, "hello");
	h_write(f->t[1], "world!", 6);
	client_expect(f, "world!");
	client_send(f, "again");
	target_expect(f, "again");
	assert_int_equal(f->r.half[0].bytes, 5 + 5 + 5); /* client -> target, early included */
	assert_int_equal(f->r.half[1].bytes, 6);
	assert_false(f->done);
	rfx_free(f);
}

static void test_both_ways_unix(void **state)
{
	both_ways(UNIX_PAIRS);
}

static void test_both_ways_tcp(void **state)
{
	both_ways(TCP_PAIRS);
}

static void test_both_ways_buffered(void **state)
{
	both_ways(BUFFERED);
}

static void test_both_ways_filtered(void **state)
{
	both_ways(FILTERED);
}

/* ---- half-close ---- */

static void half_close(enum kind k, bool client_first)
{
	struct rfx *f = rfx_new(k, NULL, 0, 0);
	int first = client_first ? f->c[1] : f->t[1];
	int other = client_first ? f->t[1] : f->c[1];

	shutdown(first, SHUT_WR);
	assert_true(h_eof(&f->w, other)); /* the FIN went across */
	assert_false(f->done);
	/* The other direction still flows. */
	if (client_first) {
		h_write(f->t[1], "late", 4);
		client_expect(f, "late");
	} else {
		client_send(f, "late");
		target_expect(f, "late");
	}
	assert_false(f->done);
	shutdown(other, SHUT_WR);
	assert_true(h_eof(&f->w, first));
	assert_true(h_spin(&f->w, 10, relay_done, f));
	assert_string_equal(f->reason, "closed");
	assert_int_equal(f->r.half[client_first ? 1 : 0].bytes, 4);
	assert_int_equal(f->r.half[client_first ? 0 : 1].bytes, 0);
	rfx_free(f);
}

static void test_half_close_client_unix(void **state)
{
	half_close(UNIX_PAIRS, true);
}

static void test_half_close_target_unix(void **state)
{
	half_close(UNIX_PAIRS, false);
}

static void test_half_close_client_tcp(void **state)
{
	half_close(TCP_PAIRS, true);
}

static void test_half_close_client_buffered(void **state)
{
	half_close(BUFFERED, true);
}

static void test_half_close_target_filtered(void **state)
{
	half_close(FILTERED, false);
}

/* ---- large transfers under back-pressure ---- */

#define BIG (8u << 20)
#define CHUNK 65536

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + i / 4093);
}

/* Writes what the (non-blocking) fd takes of the pattern from *off. */
static void pump_out(int fd, size_t *off, size_t total, uint8_t key)
{
	uint8_t b[CHUNK];
	while (*off < total) {
		size_t n = total - *off < CHUNK ? total - *off : CHUNK;
		for (size_t i = 0; i < n; i++)
			b[i] = pattern(*off + i) ^ key;
		ssize_t k = send(fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k <= 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			return;
		}
		*off += (size_t)k;
	}
}

/* Reads what fd has and checks it against the pattern from *off. */
static void pump_in(int fd, size_t *off, uint8_t key)
{
	uint8_t b[CHUNK];
	for (;;) {
		ssize_t k = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (k <= 0) {
			assert_true(k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
			return;
		}
		for (ssize_t i = 0; i < k; i++)
			if ((b[i] ^ key) != pattern(*off + (size_t)i))
				fail_msg("byte %zu differs", *off + (size_t)i);
		*off += (size_t)k;
	}
}

/* SO_SNDBUF + SO_RCVBUF (the kernel's doubled values: an upper bound). */
static size_t sockbufs(int fd)
{
	int snd = 0, rcv = 0;
	socklen_t len = sizeof(int);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, &len), 0);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, &len), 0);
	return (size_t)snd + (size_t)rcv;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* BIG bytes one way. First the receiver reads nothing: the sender must
 * stall after a bounded amount (the relay stops reading its source while
 * its own buffer or pipe is full), and nothing may be lost or reordered
 * once the receiver drains. */
static void big(enum kind k, bool upstream)
{
	struct rfx *f = rfx_new(k, NULL, 0, 0);
	int src = upstream ? f->c[1] : f->t[1], dst = upstream ? f->t[1] : f->c[1];
	uint8_t skey = upstream ? f->key : 0, dkey = upstream ? 0 : f->key;
	size_t sent = 0, got = 0, still = 0;

	fcntl(src, F_SETFL, O_NONBLOCK);
	fcntl(dst, F_SETFL, O_NONBLOCK);
	/* Stalled: 50 rounds in a row without the sender getting a byte in. */
	double end = now() + 20;
	while (still < 50 && now() < end) {
		size_t before = sent;
		pump_out(src, &sent, BIG, skey);
		h_turn(&f->w);
		still = sent == before ? still + 1 : 0;
	}
	assert_int_equal(still, 50);
	/* What is held in between: the four sockets' buffers on the way plus
	 * one relay buffer (64 KiB) or pipe: nothing read ahead beyond. */
	const struct relay_half *h = &f->r.half[upstream ? 0 : 1];
	int fds[4] = { src, upstream ? f->c[0] : f->t[0], upstream ? f->t[0] : f->c[0], dst };
	size_t bound = h->pipecap > 65536 ? h->pipecap : 65536;
	for (int i = 0; i < 4; i++)
		bound += sockbufs(fds[i]);
	if (sent > bound)
		fail_msg("%zu bytes taken with the receiver not reading, more than %zu", sent, bound);
	assert_true(h->blen - h->boff <= 65536);
	assert_true(h->inpipe <= h->pipecap);

	end = now() + 60;
	while (got < BIG && now() < end) {
		pump_out(src, &sent, BIG, skey);
		h_turn(&f->w);
		pump_in(dst, &got, dkey);
	}
	assert_int_equal(got, BIG);
	assert_int_equal(h->bytes, BIG);
	assert_int_equal(f->r.half[upstream ? 1 : 0].bytes, 0);
	assert_false(f->done);
	rfx_free(f);
}

static void test_big_up_unix(void **state)
{
	big(UNIX_PAIRS, true);
}

static void test_big_down_unix(void **state)
{
	big(UNIX_PAIRS, false);
}

static void test_big_up_tcp(void **state)
{
	big(TCP_PAIRS, true);
}

static void test_big_up_buffered(void **state)
{
	big(BUFFERED, true);
}

static void test_big_down_buffered(void **state)
{
	big(BUFFERED, false);
}

static void test_big_down_filtered(void **state)
{
	big(FILTERED, false);
}

static void test_big_up_filtered(void **state)
{
	big(FILTERED, true);
}

/* ---- idle timeout ---- */

static void test_idle_timeout(void **state)
{
	struct rfx *f = rfx_new(UNIX_PAIRS, NULL, 0, 1);
	uint8_t b[16];
	double t0 = now();
	client_send(f, "x");
	target_expect(f, "x");
	assert_true(h_spin(&f->w, 10, relay_done, f));
	assert_string_equal(f->reason, "idle timeout");
	assert_true(now() - t0 >= 0.9);
	/* The relay does not close the sockets itself: the session does. */
	assert_int_equal(recv(f->t[1], b, sizeof(b), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	rfx_free(f);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_both_ways_unix),
		cmocka_unit_test(test_both_ways_tcp),
		cmocka_unit_test(test_both_ways_buffered),
		cmocka_unit_test(test_both_ways_filtered),
		cmocka_unit_test(test_half_close_client_unix),
		cmocka_unit_test(test_half_close_target_unix),
		cmocka_unit_test(test_half_close_client_tcp),
		cmocka_unit_test(test_half_close_client_buffered),
		cmocka_unit_test(test_half_close_target_filtered),
		cmocka_unit_test(test_big_up_unix),
		cmocka_unit_test(test_big_down_unix),
		cmocka_unit_test(test_big_up_tcp),
		cmocka_unit_test(test_big_up_buffered),
		cmocka_unit_test(test_big_down_buffered),
		cmocka_unit_test(test_big_up_filtered),
		cmocka_unit_test(test_big_down_filtered),
		cmocka_unit_test(test_idle_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
