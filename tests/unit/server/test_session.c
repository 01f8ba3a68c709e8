/*
 * test_session.c - the session state machine (src/server/session.c) driven
 * over a socketpair: a worker without listeners (worker_init_loop), one end
 * handed to session_start(), the test speaking SOCKS5 on the other, all at
 * once, split at every byte and byte by byte, and asserting the replies,
 * the states and the end of the session.
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "server/session_int.h"
#include "srv_harness.h"

#define CONF_NONE "client pass { from 127.0.0.0/8 }\nrequest pass\n"

struct fx {
	struct worker w;
	int sv[2];     /* [0] the session's, [1] the test's */
	char dir[64];  /* temp dir for the users file, "" when none */
};

/* 127.0.0.1:40000 as the client: the client rule admits it. */
static struct sockaddr_storage client_addr(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	memset(&ss, 0, sizeof(ss));
	in->sin_family = AF_INET;
	in->sin_port = htons(40000);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return ss;
}

static struct fx *fx_new(const char *conf)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	struct snapshot *snap = h_snapshot(conf);
	h_worker(&f->w, snap);
	snapshot_unref(snap);
	return f;
}

/* A worker whose config asks for RFC 1929 against a users file with
 * alice:secret, checked by the auth pool's threads. */
static struct fx *fx_new_userpass(void)
{
	char dir[64] = "/tmp/stp-test-session-XXXXXX";
	char path[128], conf[512];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/users", dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	const char *hash = crypt("secret", "$6$saltsaltsalt$");
	assert_non_null(hash);
	fprintf(fp, "alice:%s\n", hash);
	fclose(fp);
	snprintf(conf, sizeof(conf),
		 "auth { methods userpass; users-file %s }\n" CONF_NONE, path);
	struct fx *f = fx_new(conf);
	snprintf(f->dir, sizeof(f->dir), "%s", dir);
	f->w.auth = authpool_attach(f->w.loop);
	return f;
}

static void fx_start(struct fx *f)
{
	struct sockaddr_storage peer = client_addr();
	h_pair(f->sv);
	session_start(&f->w, &f->w.snap->conf->listeners[0], f->sv[0], &peer);
	assert_int_equal(f->w.n_sessions, 1);
}

static struct session *fx_session(struct fx *f)
{
	return f->w.sessions; /* the only one; NULL once closed */
}

static void fx_free(struct fx *f)
{
	h_worker_free(&f->w);
	close(f->sv[1]);
	if (f->dir[0]) {
		char path[128];
		snprintf(path, sizeof(path), "%s/users", f->dir);
		unlink(path);
		rmdir(f->dir);
	}
	free(f);
}

static bool closed(void *arg)
{
	return ((struct fx *)arg)->w.n_sessions == 0;
}

/* Everything the server sends until it closes: the transcript. */
static size_t transcript(struct fx *f, uint8_t *buf, size_t cap)
{
	ssize_t n = h_read_to_eof(&f->w, f->sv[1], buf, cap);
	assert_true(n >= 0);
	assert_true(h_spin(&f->w, 10, closed, f));
	return (size_t)n;
}

static bool input_taken(void *arg)
{
	struct fx *f = arg;
	struct session *s = fx_session(f);
	int pending = 0;
	if (!s || s->state == SS_AUTH_WAIT || s->state == SS_CLOSED)
		return true; /* it reads no more now */
	assert_int_equal(ioctl(f->sv[0], FIONREAD, &pending), 0);
	return pending == 0;
}

/* Sends p in pieces cut at `cuts` (sorted offsets), letting the session
 * read each piece before the next is sent. */
static void send_cut(struct fx *f, const uint8_t *p, size_t n, const size_t *cuts, size_t ncuts)
{
	size_t at = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : n;
		h_write(f->sv[1], p + at, to - at);
		assert_true(h_spin(&f->w, 10, input_taken, f));
		at = to;
	}
}

static const uint8_t greet_none[] = { 0x05, 0x01, 0x00 };
static const uint8_t req_unknown[] = { 0x05, 0x09, 0x00, 0x01, 127, 0, 0, 1, 0x00, 0x50 };
static const uint8_t reply_fail4[] = { 0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0 }; /* [1]: REP */

/* ---- single phases ---- */

static void test_greeting_none(void **state)
{
	struct fx *f = fx_new(CONF_NONE);
	uint8_t buf[2];
	fx_start(f);
	assert_int_equal(fx_session(f)->state, SS_GREETING);
	h_write(f->sv[1], greet_none, sizeof(greet_none));
	assert_int_equal(h_read(&f->w, f->sv[1], buf, 2), 2);
	assert_int_equal(buf[0], 0x05);
	assert_int_equal(buf[1], 0x00);
	assert_int_equal(fx_session(f)->state, SS_REQUEST);
	fx_free(f);
}

static void test_no_acceptable_method(void **state)
{
	struct fx *f = fx_new(CONF_NONE);
	static const uint8_t greet[] = { 0x05, 0x02, 0x02, 0x01 }; /* userpass, GSSAPI */
	uint8_t buf[16];
	fx_start(f);
	h_write(f->sv[1], greet, sizeof(greet));
	size_t n = transcript(f, buf, sizeof(buf));
	assert_int_equal(n, 2);
	assert_int_equal(buf[0], 0x05);
	assert_int_equal(buf[1], 0xFF);
	fx_free(f);
}

static void test_unknown_command(void **state)
{
	struct fx *f = fx_new(CONF_NONE);
	uint8_t buf[32];
	fx_start(f);
	h_write(f->sv[1], greet_none, sizeof(greet_none));
	h_write(f->sv[1], req_unknown, sizeof(req_unknown));
	size_t n = transcript(f, buf, sizeof(buf));
	assert_int_equal(n, 2 + 10);
	assert_int_equal(buf[1], 0x00);
	assert_int_equal(buf[2], 0x05);
	assert_int_equal(buf[3], 0x07); /* command not supported */
	fx_free(f);
}

static void test_bad_atyp(void **state)
{
	struct fx *f = fx_new(CONF_NONE);
	static const uint8_t req[] = { 0x05, 0x01, 0x00, 0x05, 1, 2, 3, 4, 0x00, 0x50 };
	uint8_t buf[32];
	fx_start(f);
	h_write(f->sv[1], greet_none, sizeof(greet_none));
	h_write(f->sv[1], req, sizeof(req));
	size_t n = transcript(f, buf, sizeof(buf));
	assert_int_equal(n, 2 + 10);
	assert_int_equal(buf[3], 0x08); /* address type not supported */
	fx_free(f);
}

static void test_bad_version_no_reply(void **state)
{
	struct fx *f = fx_new(CONF_NONE);
	static const uint8_t greet[] = { 0x06, 0x01, 0x00 };
	uint8_t buf[16];
	fx_start(f);
	h_write(f->sv[1], greet, sizeof(greet));
	assert_int_equal(transcript(f, buf, sizeof(buf)), 0); /* RFC 1928: closed, no reply */
	fx_free(f);
}

static void test_eof_in_greeting(void **state)
{
	struct fx *f = fx_new(CONF_NONE);
	uint8_t buf[16];
	fx_start(f);
	h_write(f->sv[1], greet_none, 2); /* VER NMETHODS, then the client goes */
	assert_true(h_spin(&f->w, 10, input_taken, f));
	assert_int_equal(fx_session(f)->state, SS_GREETING);
	shutdown(f->sv[1], SHUT_WR);
	assert_int_equal(transcript(f, buf, sizeof(buf)), 0);
	fx_free(f);
}

static void test_eof_in_request(void **state)
{
	struct fx *f = fx_new(CONF_NONE);
	uint8_t buf[16];
	fx_start(f);
	h_write(f->sv[1], greet_none, sizeof(greet_none));
	h_write(f->sv[1], req_unknown, 5);
	assert_int_equal(h_read(&f->w, f->sv[1], buf, 2), 2);
	assert_true(h_spin(&f->w, 10, input_taken, f));
	assert_int_equal(fx_session(f)->state, SS_REQUEST);
	shutdown(f->sv[1], SHUT_WR);
	assert_int_equal(transcript(f, buf, sizeof(buf)), 0);
	fx_free(f);
}

static void test_handshake_timeout(void **state)
{
	struct fx *f = fx_new("timeouts { handshake 1 }\n" CONF_NONE);
	uint8_t buf[16];
	fx_start(f);
	h_write(f->sv[1], greet_none, sizeof(greet_none));
	assert_int_equal(h_read(&f->w, f->sv[1], buf, 2), 2);
	assert_int_equal(fx_session(f)->state, SS_REQUEST);
	/* No request: the phase timer closes the session, without a reply. */
	assert_int_equal(transcript(f, buf, sizeof(buf)), 0);
	fx_free(f);
}

/* ---- one write, every split, byte by byte: the same transcript ---- */

static size_t run_cut(struct fx *f, const uint8_t *p, size_t n, const size_t *cuts,
		      size_t ncuts, uint8_t *out, size_t cap)
{
	fx_start(f);
	send_cut(f, p, n, cuts, ncuts);
	return transcript(f, out, cap);
}

/* Checks that handshake `p` gives transcript `want` however it is cut. */
static void check_splits(struct fx *(*mk)(void), const uint8_t *p, size_t n, const uint8_t *want,
			 size_t wantlen)
{
	uint8_t got[64];
	size_t cuts[128];
	struct fx *f;

	assert_true(n <= sizeof(cuts) / sizeof(cuts[0]));
	f = mk();
	size_t len = run_cut(f, p, n, NULL, 0, got, sizeof(got));
	assert_int_equal(len, wantlen);
	assert_memory_equal(got, want, wantlen);
	fx_free(f);

	for (size_t k = 1; k < n; k++) { /* two writes, cut after byte k */
		f = mk();
		cuts[0] = k;
		len = run_cut(f, p, n, cuts, 1, got, sizeof(got));
		if (len != wantlen || memcmp(got, want, wantlen) != 0)
			fail_msg("cut at %zu: %zu bytes back, want %zu", k, len, wantlen);
		fx_free(f);
	}

	f = mk(); /* one byte at a time */
	for (size_t k = 1; k < n; k++)
		cuts[k - 1] = k;
	len = run_cut(f, p, n, cuts, n - 1, got, sizeof(got));
	assert_int_equal(len, wantlen);
	assert_memory_equal(got, want, wantlen);
	fx_free(f);
}

static struct fx *mk_none(void)
{
	return fx_new(CONF_NONE);
}

static void test_split_none(void **state)
{
	uint8_t hs[sizeof(greet_none) + sizeof(req_unknown)], want[12];
	memcpy(hs, greet_none, sizeof(greet_none));
	memcpy(hs + sizeof(greet_none), req_unknown, sizeof(req_unknown));
	want[0] = 0x05;
	want[1] = 0x00;
	memcpy(want + 2, reply_fail4, sizeof(reply_fail4));
	want[3] = 0x07;
	check_splits(mk_none, hs, sizeof(hs), want, sizeof(want));
}

static const uint8_t greet_up[] = { 0x05, 0x02, 0x00, 0x02 }; /* none or userpass */

static void test_split_userpass(void **state)
{
	static const uint8_t up[] = { 0x01, 5, 'a', 'l', 'i', 'c', 'e', 6, 's', 'e', 'c', 'r', 'e', 't' };
	uint8_t hs[sizeof(greet_up) + sizeof(up) + sizeof(req_unknown)], want[2 + 2 + 10];
	memcpy(hs, greet_up, sizeof(greet_up));
	memcpy(hs + sizeof(greet_up), up, sizeof(up));
	memcpy(hs + sizeof(greet_up) + sizeof(up), req_unknown, sizeof(req_unknown));
	want[0] = 0x05;
	want[1] = 0x02; /* the server picks userpass: none is not configured */
	want[2] = 0x01;
	want[3] = 0x00; /* RFC 1929 success */
	memcpy(want + 4, reply_fail4, sizeof(reply_fail4));
	want[5] = 0x07;
	check_splits(fx_new_userpass, hs, sizeof(hs), want, sizeof(want));
}

static void test_userpass_wrong(void **state)
{
	static const uint8_t up[] = { 0x01, 5, 'a', 'l', 'i', 'c', 'e', 5, 'w', 'r', 'o', 'n', 'g' };
	uint8_t buf[16];
	struct fx *f = fx_new_userpass();
	fx_start(f);
	h_write(f->sv[1], greet_up, sizeof(greet_up));
	h_write(f->sv[1], up, sizeof(up));
	size_t n = transcript(f, buf, sizeof(buf));
	assert_int_equal(n, 4);
	assert_int_equal(buf[1], 0x02);
	assert_int_equal(buf[2], 0x01);
	assert_int_not_equal(buf[3], 0x00); /* RFC 1929 failure, then closed */
	fx_free(f);
}

/* ---- CONNECT to a loopback listener of the test, then the relay ---- */

static void test_connect_relay(void **state)
{
	struct fx *f = fx_new(CONF_NONE);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	uint8_t buf[32], req[10] = { 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1 };
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	memcpy(req + 8, &a.sin_port, 2);

	fx_start(f);
	h_write(f->sv[1], greet_none, sizeof(greet_none));
	h_write(f->sv[1], req, sizeof(req));
	assert_int_equal(h_read(&f->w, f->sv[1], buf, 12), 12);
	assert_int_equal(buf[3], 0x00); /* succeeded */
	assert_int_equal(buf[5], 0x01); /* BND: an IPv4 address */
	int t = accept(lfd, NULL, NULL); /* connected already: the reply says so */
	assert_true(t >= 0);
	assert_int_equal(fx_session(f)->state, SS_RELAY);
	assert_null(fx_session(f)->hs); /* handshake memory is gone */

	h_write(f->sv[1], "ping", 4);
	assert_int_equal(h_read(&f->w, t, buf, 4), 4);
	assert_memory_equal(buf, "ping", 4);
	h_write(t, "pong!", 5);
	assert_int_equal(h_read(&f->w, f->sv[1], buf, 5), 5);
	assert_memory_equal(buf, "pong!", 5);
	assert_int_equal(fx_session(f)->relay.half[0].bytes, 4); /* up */
	assert_int_equal(fx_session(f)->relay.half[1].bytes, 5); /* down */

	/* Both ends close: the session ends with its byte counts. */
	close(t);
	shutdown(f->sv[1], SHUT_WR);
	assert_int_equal(transcript(f, buf, sizeof(buf)), 0);
	close(lfd);
	fx_free(f);
}

/* ---- pipelined: greeting, sub-negotiation, CONNECT and the first data in
 * one write, and cut at every byte: the target gets the data, the client
 * the same answers (docs/protocol.md 5.11) ---- */

static const uint8_t up_alice[] = { 0x01, 5, 'a', 'l', 'i', 'c', 'e', 6, 's', 'e', 'c', 'r', 'e', 't' };

/* One run: p (ending in 5 bytes "hello") cut at cuts; the answers must be
 * `pre` (choice, status) then a CONNECT reply that succeeded, and the
 * target must read "hello" and its answer reach the client. */
static void run_pipelined(struct fx *(*mk)(void), int lfd, const uint8_t *p, size_t n,
			  const size_t *cuts, size_t ncuts, const uint8_t *pre, size_t prelen)
{
	struct fx *f = mk();
	uint8_t buf[32];
	fx_start(f);
	send_cut(f, p, n, cuts, ncuts);
	assert_int_equal(h_read(&f->w, f->sv[1], buf, prelen + 10), prelen + 10);
	if (memcmp(buf, pre, prelen) != 0)
		fail_msg("cut at %zu: wrong method/auth answer", ncuts ? cuts[0] : 0);
	assert_int_equal(buf[prelen + 1], 0x00); /* succeeded */
	int t = accept(lfd, NULL, NULL);
	assert_true(t >= 0);
	assert_int_equal(h_read(&f->w, t, buf, 5), 5);
	assert_memory_equal(buf, "hello", 5);
	h_write(t, "world", 5);
	assert_int_equal(h_read(&f->w, f->sv[1], buf, 5), 5);
	assert_memory_equal(buf, "world", 5);
	close(t);
	shutdown(f->sv[1], SHUT_WR);
	assert_int_equal(transcript(f, buf, sizeof(buf)), 0);
	fx_free(f);
}

static void check_pipelined(struct fx *(*mk)(void), const uint8_t *auth, size_t alen,
			    const uint8_t *greet, size_t glen, const uint8_t *pre, size_t prelen)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	uint8_t req[10] = { 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1 }, p[64];
	size_t cuts[64], n = 0;
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &slen), 0);
	memcpy(req + 8, &a.sin_port, 2);
	memcpy(p, greet, glen);
	n = glen;
	if (alen > 0) /* method none: no RFC 1929 request (auth is NULL) */
		memcpy(p + n, auth, alen);
	n += alen;
	memcpy(p + n, req, sizeof(req));
	n += sizeof(req);
	memcpy(p + n, "hello", 5);
	n += 5;

	run_pipelined(mk, lfd, p, n, NULL, 0, pre, prelen); /* one write */
	for (size_t k = 1; k < n; k++) {                   /* two writes, cut after k */
		cuts[0] = k;
		run_pipelined(mk, lfd, p, n, cuts, 1, pre, prelen);
	}
	for (size_t k = 1; k < n; k++) /* one byte at a time */
		cuts[k - 1] = k;
	run_pipelined(mk, lfd, p, n, cuts, n - 1, pre, prelen);
	close(lfd);
}

static void test_pipelined_none(void **state)
{
	static const uint8_t pre[] = { 0x05, 0x00 };
	check_pipelined(mk_none, NULL, 0, greet_none, sizeof(greet_none), pre, sizeof(pre));
}

static void test_pipelined_userpass(void **state)
{
	static const uint8_t greet[] = { 0x05, 0x01, 0x02 }; /* userpass alone, as libstp sends */
	static const uint8_t pre[] = { 0x05, 0x02, 0x01, 0x00 };
	check_pipelined(fx_new_userpass, up_alice, sizeof(up_alice), greet, sizeof(greet), pre,
			sizeof(pre));
}

static int group_setup(void **state)
{
	return authpool_start(2);
}

static int group_teardown(void **state)
{
	authpool_stop();
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_none),
		cmocka_unit_test(test_no_acceptable_method),
		cmocka_unit_test(test_unknown_command),
		cmocka_unit_test(test_bad_atyp),
		cmocka_unit_test(test_bad_version_no_reply),
		cmocka_unit_test(test_eof_in_greeting),
		cmocka_unit_test(test_eof_in_request),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_split_none),
		cmocka_unit_test(test_split_userpass),
		cmocka_unit_test(test_userpass_wrong),
		cmocka_unit_test(test_connect_relay),
		cmocka_unit_test(test_pipelined_none),
		cmocka_unit_test(test_pipelined_userpass),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
