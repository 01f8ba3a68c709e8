/*
 * srv_harness.c - see srv_harness.h.
 */
#include "srv_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ext/ext_conf.h"
#include "server/session_int.h"

#define WAIT_SECS 10.0

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct snapshot *h_snapshot(const char *text)
{
	char err[2048] = "";
	/* As stpd does before its first parse: the extensions this build has. */
	if (ext_conf_register(err, sizeof(err)) < 0)
		fail_msg("registry: %s", err);
	struct stp_conf *c = conf_parse_string("test.conf", text, strlen(text), err, sizeof(err));
	if (!c)
		fail_msg("config: %s", err);
	struct snapshot *s = snapshot_new(c, err, sizeof(err));
	if (!s)
		fail_msg("snapshot: %s", err);
	return s;
}

void h_worker(struct worker *w, struct snapshot *snap)
{
	char err[512] = "";
	if (worker_init_loop(w, 0, snap, err, sizeof(err)) < 0)
		fail_msg("worker: %s", err);
}

void h_worker_free(struct worker *w)
{
	while (w->sessions)
		session_close(w->sessions, "test over");
	worker_fini(w);
}

static void on_tick(EV_P_ ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
}

/* Runs the loop until something happens in it, or 5 ms (timers, other
 * threads' async sends and the test's own writes are all seen then). */
static void wait_a_little(struct worker *w, int fd)
{
	ev_timer tick;
	(void)fd;
	ev_timer_init(&tick, on_tick, 0.005, 0.);
	ev_timer_start(w->loop, &tick);
	ev_run(w->loop, EVRUN_ONCE);
	ev_timer_stop(w->loop, &tick);
}

void h_turn(struct worker *w)
{
	ev_run(w->loop, EVRUN_NOWAIT);
}

bool h_spin(struct worker *w, double secs, bool (*done)(void *arg), void *arg)
{
	double end = now() + secs;
	for (;;) {
		h_turn(w);
		if (done(arg))
			return true;
		if (now() > end)
			return false;
		wait_a_little(w, -1);
	}
}

void h_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	/* The test's end blocks (with a timeout as a backstop) so a write of
	 * a handshake never comes back short. */
	struct timeval tv = { .tv_sec = 10 };
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

void h_write(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		assert_true(k > 0);
		b += k;
		n -= (size_t)k;
	}
}

size_t h_read(struct worker *w, int fd, uint8_t *buf, size_t n)
{
	double end = now() + WAIT_SECS;
	size_t got = 0;
	while (got < n && now() < end) {
		h_turn(w);
		ssize_t k = recv(fd, buf + got, n - got, MSG_DONTWAIT);
		if (k == 0)
			break;
		if (k > 0) {
			got += (size_t)k;
			continue;
		}
		wait_a_little(w, fd);
	}
	return got;
}

ssize_t h_read_to_eof(struct worker *w, int fd, uint8_t *buf, size_t cap)
{
	double end = now() + WAIT_SECS;
	size_t got = 0;
	while (now() < end) {
		h_turn(w);
		ssize_t k = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
		if (k == 0)
			return (ssize_t)got;
		if (k > 0) {
			got += (size_t)k;
			assert_true(got < cap);
			continue;
		}
		wait_a_little(w, fd);
	}
	return -1;
}

bool h_eof(struct worker *w, int fd)
{
	uint8_t b[64];
	return h_read_to_eof(w, fd, b, sizeof(b)) == 0;
}
