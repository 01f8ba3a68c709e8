/*
 * fakeproxy.c - see fakeproxy.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakeproxy.h"

void fake_open(struct fake *f)
{
	int sv[2];

	memset(f, 0, sizeof(*f));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->cli = sv[0];
	f->srv = sv[1];
	/* The engine's end stays blocking on purpose: the engine must not
	 * block anyway (MSG_DONTWAIT) and must not change the fd's flags. */
	assert_int_equal(fcntl(f->srv, F_SETFL, O_NONBLOCK), 0);
}

void fake_close(struct fake *f)
{
	assert_int_equal(fcntl(f->cli, F_GETFL) & O_NONBLOCK, 0);
	close(f->cli);
	close(f->srv);
}

static enum stp_step fake_step(struct fake *f)
{
	enum stp_step r = stp_handshake_step(&f->h);
	if (r == STP_WANT_WRITE)
		f->want_write++;
	return r;
}

void fake_expect(struct fake *f, const uint8_t *want, size_t n)
{
	uint8_t got[2048];
	size_t have = 0;

	for (int guard = 0; guard < 100000; guard++) {
		enum stp_step r = fake_step(f);
		if (r == STP_WANT_READ)
			break;
		if (r != STP_WANT_WRITE)
			fail_msg("engine stopped (step %d, %s) while sending", r,
				 stp_strerror(f->h.err));
		ssize_t k = recv(f->srv, got + have, sizeof(got) - have, 0);
		if (k > 0)
			have += (size_t)k;
	}
	assert_int_equal(stp_handshake_events(&f->h), 0x001 /* POLLIN */);
	for (;;) {
		ssize_t k = recv(f->srv, got + have, sizeof(got) - have, 0);
		if (k <= 0)
			break;
		have += (size_t)k;
	}
	assert_int_equal(have, n);
	assert_memory_equal(got, want, n);
}

enum stp_step fake_feed(struct fake *f, const uint8_t *p, size_t n, bool bytewise)
{
	enum stp_step r = STP_WANT_READ;
	size_t chunk = bytewise ? 1 : n;

	for (size_t off = 0; off < n; off += chunk) {
		if (off > 0 && r != STP_WANT_READ)
			fail_msg("engine gave %d after %zu of %zu bytes", r, off, n);
		if (chunk > n - off)
			chunk = n - off;
		assert_int_equal(send(f->srv, p + off, chunk, 0), (ssize_t)chunk);
		r = fake_step(f);
	}
	return r;
}

enum stp_step fake_run(struct fake *f, const struct xchg *x, size_t n, bool bytewise)
{
	enum stp_step r = STP_WANT_READ;

	for (size_t i = 0; i < n; i++) {
		fake_expect(f, x[i].expect, x[i].elen);
		if (x[i].reply == NULL)
			return STP_WANT_READ;
		r = fake_feed(f, x[i].reply, x[i].rlen, bytewise);
		if (i + 1 < n && r != STP_WANT_READ && r != STP_WANT_WRITE)
			fail_msg("round %zu: engine stopped early with %d (%s)", i, r,
				 stp_strerror(f->h.err));
	}
	return r;
}

void fake_check_trailing(struct fake *f, const uint8_t *want, size_t n)
{
	uint8_t got[256];
	ssize_t k = recv(f->cli, got, sizeof(got), MSG_DONTWAIT);

	assert_int_equal(k, (ssize_t)n);
	assert_memory_equal(got, want, n);
}
