/*
 * test_disc_session.c - method X'87' in the session state machine
 * (session_method_skip in src/server/session.c, src/ext/discovery):
 * X'87' alone, the document, then a new greeting and a request on the same
 * connection, sent in one write, cut at every byte and byte by byte (the
 * same transcript each time); X'87' with refused methods (the document,
 * then X'FF'); X'87' offered twice; X'87' next to X'00' (X'00' only).
 */
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/featdoc.h"
#include "server/session_int.h"
#include "srv_harness.h"

#define CONF "client pass { from 127.0.0.0/8 }\nrequest pass\n"

struct fx {
	struct worker w;
	int sv[2];
};

static bool closed(void *arg)
{
	return ((struct fx *)arg)->w.n_sessions == 0;
}

static bool input_taken(void *arg)
{
	struct fx *f = arg;
	struct session *s = f->w.sessions;
	int pending = 0;
	if (!s || s->state == SS_CLOSED)
		return true;
	assert_int_equal(ioctl(f->sv[0], FIONREAD, &pending), 0);
	return pending == 0;
}

/* Runs one connection: p sent in pieces cut at every `step` bytes (0: one
 * write); returns what the server sent until it closed. */
static size_t run(const uint8_t *p, size_t n, size_t step, uint8_t *out, size_t cap)
{
	struct fx f;
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(40000),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_storage peer;
	memset(&f, 0, sizeof(f));
	memset(&peer, 0, sizeof(peer));
	memcpy(&peer, &in, sizeof(in));
	struct snapshot *snap = h_snapshot(CONF);
	h_worker(&f.w, snap);
	snapshot_unref(snap);
	h_pair(f.sv);
	session_start(&f.w, &f.w.snap->conf->listeners[0], f.sv[0], &peer);
	for (size_t at = 0; at < n;) {
		size_t len = step && n - at > step ? step : n - at;
		h_write(f.sv[1], p + at, len);
		assert_true(h_spin(&f.w, 10, input_taken, &f));
		at += len;
	}
	ssize_t got = h_read_to_eof(&f.w, f.sv[1], out, cap);
	assert_true(got >= 0);
	assert_true(h_spin(&f.w, 10, closed, &f));
	h_worker_free(&f.w);
	close(f.sv[1]);
	return (size_t)got;
}

/* out[0..n) starts with 05 87 and a well-formed document: its length. */
static size_t check_doc(const uint8_t *out, size_t n)
{
	struct feat_doc d;
	struct feat_entry e;
	size_t used = 0;
	assert_true(n > 2 && out[0] == 0x05 && out[1] == 0x87);
	assert_int_equal(feat_doc_parse(&d, out + 2, n - 2, &used, NULL), SOCKS_DONE);
	assert_true(feat_find(&d, FEAT_SCOPE_SERVER, 0, "methods", &e));
	assert_int_equal(e.vlen, 2);
	assert_memory_equal(e.value, "\x00\x87", 2); /* X'87' last */
	assert_true(feat_find(&d, FEAT_SCOPE_SERVER, 0, "commands", &e));
	assert_non_null(memchr(e.value, 0x01, e.vlen));
	return 2 + used;
}

static void test_then_new_greeting(void **state)
{
	/* X'87' alone; X'00'; a request for an unknown command (X'07', close) */
	static const uint8_t hs[] = { 0x05, 0x01, 0x87, 0x05, 0x01, 0x00, 0x05, 0x09, 0x00,
				      0x01, 127,  0,    0,    1,    0x00, 0x50 };
	static const uint8_t tail[] = { 0x05, 0x00, 0x05, 0x07, 0x00, 0x01, 0, 0, 0, 0, 0, 0 };
	uint8_t whole[2048], got[2048];
	size_t n = run(hs, sizeof(hs), 0, whole, sizeof(whole));
	size_t doc = check_doc(whole, n);
	assert_int_equal(n, doc + sizeof(tail));
	assert_memory_equal(whole + doc, tail, sizeof(tail));
	for (size_t step = 1; step < sizeof(hs); step++) {
		size_t m = run(hs, sizeof(hs), step, got, sizeof(got));
		if (m != n || memcmp(got, whole, n) != 0)
			fail_msg("pieces of %zu: %zu bytes back, want %zu", step, m, n);
	}
}

static void test_with_refused_methods(void **state)
{
	/* userpass and GSSAPI are not enabled: the document, then X'FF' */
	static const uint8_t hs[] = { 0x05, 0x03, 0x02, 0x87, 0x01 };
	uint8_t out[2048];
	size_t n = run(hs, sizeof(hs), 0, out, sizeof(out));
	size_t doc = check_doc(out, n);
	assert_int_equal(n, doc + 2);
	assert_memory_equal(out + doc, "\x05\xff", 2);
}

static void test_twice(void **state)
{
	static const uint8_t hs[] = { 0x05, 0x01, 0x87, 0x05, 0x01, 0x87 };
	uint8_t out[2048];
	size_t n = run(hs, sizeof(hs), 1, out, sizeof(out));
	size_t doc = check_doc(out, n);
	assert_int_equal(n, doc + 2);
	assert_memory_equal(out + doc, "\x05\xff", 2);
}

static void test_next_to_none(void **state)
{
	static const uint8_t hs[] = { 0x05, 0x02, 0x87, 0x00, 0x05, 0x09, 0x00,
				      0x01, 127,  0,    0,    1,    0x00, 0x50 };
	static const uint8_t want[] = { 0x05, 0x00, 0x05, 0x07, 0x00, 0x01, 0, 0, 0, 0, 0, 0 };
	uint8_t out[2048];
	size_t n = run(hs, sizeof(hs), 0, out, sizeof(out));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_then_new_greeting),
		cmocka_unit_test(test_with_refused_methods),
		cmocka_unit_test(test_twice),
		cmocka_unit_test(test_next_to_none),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
