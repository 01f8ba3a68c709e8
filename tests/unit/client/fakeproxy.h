/*
 * fakeproxy.h - a scripted SOCKS server on the other end of a socketpair,
 * for driving the handshake engine in unit tests. Single-threaded: the
 * test alternates between the engine's steps and the fake's writes.
 */
#ifndef STP_TEST_FAKEPROXY_H
#define STP_TEST_FAKEPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stp/stp.h"

struct fake {
	int cli, srv; /* the engine's end, the fake proxy's end */
	struct stp_handshake h;
	unsigned want_write; /* how often the engine said STP_WANT_WRITE */
};

/* One round: what the client must send, then what the proxy answers. */
struct xchg {
	const uint8_t *expect;
	size_t elen;
	const uint8_t *reply;
	size_t rlen;
};

#define XC(e, r) { e, sizeof(e), r, sizeof(r) }
#define XC_LAST(e) { e, sizeof(e), NULL, 0 }

void fake_open(struct fake *f);
void fake_close(struct fake *f);
/* Steps until the engine waits to read, then checks it sent exactly want. */
void fake_expect(struct fake *f, const uint8_t *want, size_t n);
/* Writes p (one byte per step when bytewise); every step before the last
 * byte must report STP_WANT_READ. Returns the step after the last byte. */
enum stp_step fake_feed(struct fake *f, const uint8_t *p, size_t n, bool bytewise);
/* Runs a script; returns the step after the last reply (a script whose
 * last round has no reply returns STP_WANT_READ after checking it). */
enum stp_step fake_run(struct fake *f, const struct xchg *x, size_t n, bool bytewise);
/* After STP_DONE: the bytes the proxy sent after its reply must all still
 * be in the socket, in full. */
void fake_check_trailing(struct fake *f, const uint8_t *want, size_t n);

#endif
