/*
 * test_conn.c - the client connection object (src/server/conn.c) on real
 * socketpairs: plain reads and writes, the end of stream, a peer that went
 * away, and a stream filter in front: records come out one per read, the
 * filter's output reaches the socket, its end and its errors are reported
 * as conn.h says.
 *
 * The filter here is a tiny length-prefixed framing ("records" of
 * LEN DATA, LEN 0 = orderly end, LEN 255 = protocol error), XOR-ed with a
 * key byte: enough to tell filtered from plain bytes without OpenSSL.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/conn.h"
#include "server/filter.h"

#define KEY 0x5a

struct xfilter {
	struct stream_filter f;
	uint8_t in[4096];
	size_t inlen;
	uint8_t out[4096];
	size_t outlen;
	int shutdowns;
	bool freed;
};

static int x_input(struct stream_filter *f, const uint8_t *p, size_t n)
{
	struct xfilter *x = (struct xfilter *)f;
	if (x->inlen + n > sizeof(x->in)) {
		snprintf(f->why, sizeof(f->why), "too much input");
		return -1;
	}
	memcpy(x->in + x->inlen, p, n);
	x->inlen += n;
	return 0;
}

static ssize_t x_read(struct stream_filter *f, uint8_t *out, size_t cap)
{
	struct xfilter *x = (struct xfilter *)f;
	if (x->inlen == 0)
		return FILTER_NONE;
	size_t len = x->in[0];
	if (len == 0)
		return FILTER_EOF;
	if (len == 255) {
		snprintf(f->why, sizeof(f->why), "bad record");
		return FILTER_ERROR;
	}
	if (x->inlen < 1 + len || cap < len)
		return FILTER_NONE;
	for (size_t i = 0; i < len; i++)
		out[i] = x->in[1 + i] ^ KEY;
	memmove(x->in, x->in + 1 + len, x->inlen - 1 - len);
	x->inlen -= 1 + len;
	return (ssize_t)len;
}

static int x_write(struct stream_filter *f, const uint8_t *p, size_t n)
{
	struct xfilter *x = (struct xfilter *)f;
	assert_true(n < 255 && x->outlen + 1 + n <= sizeof(x->out));
	x->out[x->outlen++] = (uint8_t)n;
	for (size_t i = 0; i < n; i++)
		x->out[x->outlen++] = p[i] ^ KEY;
	return 0;
}

static size_t x_output(struct stream_filter *f, const uint8_t **p)
{
	struct xfilter *x = (struct xfilter *)f;
	*p = x->out;
	return x->outlen;
}

static void x_output_done(struct stream_filter *f, size_t n)
{
	struct xfilter *x = (struct xfilter *)f;
	memmove(x->out, x->out + n, x->outlen - n);
	x->outlen -= n;
}

static void x_shutdown(struct stream_filter *f)
{
	struct xfilter *x = (struct xfilter *)f;
	if (x->shutdowns++ == 0)
		x->out[x->outlen++] = 0;
}

static void x_free(struct stream_filter *f)
{
	((struct xfilter *)f)->freed = true;
}

static const struct stream_filter_ops x_ops = {
	"xor", x_input, x_read, x_write, x_output, x_output_done, x_shutdown, x_free,
};

/* sp[0]: the conn's end (non-blocking); sp[1]: the test's end. */
static void pair(int sp[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
}

static void record(int fd, const char *text)
{
	uint8_t b[256];
	size_t n = strlen(text);
	b[0] = (uint8_t)n;
	for (size_t i = 0; i < n; i++)
		b[1 + i] = (uint8_t)text[i] ^ KEY;
	assert_int_equal(write(fd, b, 1 + n), (ssize_t)(1 + n));
}

static void test_plain(void **state)
{
	int sp[2];
	uint8_t buf[64];
	struct conn c;
	(void)state;
	pair(sp);
	conn_init(&c, sp[0]);
	assert_true(conn_can_splice(&c));
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(conn_peer_gone(&c), 0);
	assert_int_equal(write(sp[1], "hello", 5), 5);
	assert_int_equal(conn_peer_gone(&c), 0); /* peeking consumes nothing */
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(conn_write(&c, (const uint8_t *)"world", 5), 5);
	assert_int_equal(conn_flush(&c), 1);
	assert_false(conn_has_output(&c));
	assert_int_equal(read(sp[1], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "world", 5);
	assert_int_equal(conn_end(&c), 1);
	conn_fin(&c);
	assert_int_equal(read(sp[1], buf, sizeof(buf)), 0); /* our FIN */
	close(sp[1]);
	assert_int_equal(conn_peer_gone(&c), 1);
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), 0);
	conn_close(&c);
	assert_int_equal(c.fd, -1);
}

static void test_filter_records_one_per_read(void **state)
{
	int sp[2];
	uint8_t buf[64];
	struct conn c;
	struct xfilter x = { .f.ops = &x_ops };
	(void)state;
	pair(sp);
	conn_init(&c, sp[0]);
	/* Bytes read before the filter was set are its first input. */
	uint8_t early[] = { 2, 'h' ^ KEY, 'i' ^ KEY };
	assert_int_equal(conn_set_filter(&c, &x.f, early, sizeof(early)), 0);
	assert_false(conn_can_splice(&c));
	/* Two records in one segment: two reads, one record each. */
	record(sp[1], "one");
	record(sp[1], "two!");
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "hi", 2);
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "one", 3);
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "two!", 4);
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
	/* Writes go through the filter and out. */
	assert_int_equal(conn_write(&c, (const uint8_t *)"ok", 2), 2);
	assert_false(conn_has_output(&c));
	uint8_t got[8];
	assert_int_equal(read(sp[1], got, sizeof(got)), 3);
	assert_int_equal(got[0], 2);
	assert_int_equal(got[1], 'o' ^ KEY);
	/* The peer's orderly end is the end of the stream. */
	uint8_t end = 0;
	assert_int_equal(write(sp[1], &end, 1), 1);
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), 0);
	assert_false(c.fin); /* TLS's end, not the socket's */
	/* Closing sends our end once and frees the filter. */
	conn_close(&c);
	assert_true(x.freed);
	assert_int_equal(x.shutdowns, 1);
	assert_int_equal(read(sp[1], got, sizeof(got)), 1);
	assert_int_equal(got[0], 0);
	close(sp[1]);
}

static void test_filter_errors(void **state)
{
	int sp[2];
	uint8_t buf[64];
	struct conn c;
	struct xfilter x = { .f.ops = &x_ops };
	(void)state;
	pair(sp);
	conn_init(&c, sp[0]);
	assert_int_equal(conn_set_filter(&c, &x.f, NULL, 0), 0);
	uint8_t bad = 255;
	assert_int_equal(write(sp[1], &bad, 1), 1);
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EPROTO);
	assert_string_equal(conn_why(&c), "bad record");
	assert_string_equal(conn_kind(&c), "xor");
	conn_close(&c);
	close(sp[1]);

	/* A FIN without the filter's end still ends the stream. */
	struct xfilter y = { .f.ops = &x_ops };
	pair(sp);
	conn_init(&c, sp[0]);
	assert_int_equal(conn_set_filter(&c, &y.f, NULL, 0), 0);
	close(sp[1]);
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), 0);
	assert_true(c.fin);
	conn_close(&c);
}

/* conn_drop_filter: the filter is freed and the socket is read and
 * written as it is (GSS-API at level 0). */
static void test_drop_filter(void **state)
{
	int sp[2];
	uint8_t buf[64];
	struct conn c;
	struct xfilter x = { .f.ops = &x_ops };
	(void)state;
	pair(sp);
	conn_init(&c, sp[0]);
	assert_int_equal(conn_set_filter(&c, &x.f, NULL, 0), 0);
	record(sp[1], "framed");
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), 6);
	conn_drop_filter(&c);
	assert_true(x.freed);
	assert_true(conn_can_splice(&c));
	assert_string_equal(conn_kind(&c), "plain");
	assert_int_equal(write(sp[1], "raw", 3), 3);
	assert_int_equal(conn_read(&c, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "raw", 3);
	assert_int_equal(conn_write(&c, (const uint8_t *)"out", 3), 3);
	assert_int_equal(read(sp[1], buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "out", 3);
	conn_drop_filter(&c); /* none left: nothing happens */
	conn_close(&c);
	close(sp[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drop_filter),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_filter_records_one_per_read),
		cmocka_unit_test(test_filter_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
