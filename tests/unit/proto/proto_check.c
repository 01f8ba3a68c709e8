/*
 * proto_check.c - shared parser and writer checks for the codec tests.
 */
#include <stdlib.h>
#include <string.h>

#include "proto_check.h"

const char *pc_case;
size_t pc_at;

/* Values each byte is replaced with by the corruption check, besides
 * neighbours and bit flips of the original. */
static const uint8_t pc_evil[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0a, 0x0d,
				  0x20, 0x3a, 0x7f, 0x80, 0xfe, 0xff};

/* Prefixes of corrupted inputs are also run when the case is this short. */
#define PC_CORRUPT_PREFIX_MAX 64

uint8_t *pc_dup(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n > 0 ? n : 1);

	pc_assert(d != NULL);
	if (n > 0)
		memcpy(d, p, n);
	return d;
}

enum socks_res pc_run(pc_parse_fn fn, const uint8_t *p, size_t n, size_t *used,
		      struct socks_err *err)
{
	uint8_t *d = pc_dup(p, n);
	size_t u = (size_t)-1;
	struct socks_err e = {0xEE, NULL};
	enum socks_res r;

	/* A zero-length input is passed with a pointer to nothing readable. */
	r = fn(n > 0 ? d : d + 1, n, &u, &e);
	free(d);
	pc_assert(r == SOCKS_MORE || r == SOCKS_DONE || r == SOCKS_BAD);
	if (r == SOCKS_DONE)
		pc_assert(u > 0 && u <= n);
	if (r == SOCKS_BAD)
		pc_assert(e.why != NULL && e.why[0] != '\0');
	if (used)
		*used = u;
	if (err)
		*err = e;
	return r;
}

void pc_expect_bad(pc_parse_fn fn, const uint8_t *p, size_t n, int rep)
{
	struct socks_err e;

	pc_at = n;
	pc_assert(pc_run(fn, p, n, NULL, &e) == SOCKS_BAD);
	if (rep >= 0)
		pc_assert(e.rep == rep);
}

void pc_check_done(pc_parse_fn fn, const uint8_t *p, size_t n)
{
	size_t used;

	pc_at = n;
	pc_assert(pc_run(fn, p, n, &used, NULL) == SOCKS_DONE);
	pc_assert(used == n);
}

void pc_check_cuts(pc_parse_fn fn, const uint8_t *p, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		pc_at = k;
		pc_assert(pc_run(fn, p, k, NULL, NULL) == SOCKS_MORE);
	}
	pc_check_done(fn, p, n);
}

/*
 * Like a session: bytes arrive one at a time into a buffer, the parser is
 * re-run on all of it, and after DONE the used bytes are dropped. The
 * message is sent three times back to back, so each DONE must leave the
 * next message's first bytes alone.
 */
void pc_check_bytewise(pc_parse_fn fn, const uint8_t *p, size_t n)
{
	const size_t rounds = 3;
	uint8_t *buf = malloc(n);
	size_t fill = 0, done = 0;

	pc_assert(buf != NULL);
	for (size_t i = 0; i < rounds * n; i++) {
		size_t used;
		enum socks_res r;

		buf[fill++] = p[i % n];
		pc_at = i;
		r = pc_run(fn, buf, fill, &used, NULL);
		if ((i + 1) % n != 0) {
			pc_assert(r == SOCKS_MORE);
			continue;
		}
		pc_assert(r == SOCKS_DONE && used == n && fill == n);
		memmove(buf, buf + used, fill - used);
		fill -= used;
		done++;
	}
	pc_assert(done == rounds && fill == 0);
	free(buf);
}

/* Bytes after the message (the next phase's) are neither consumed nor
 * changed, whatever they are. */
void pc_check_trailing(pc_parse_fn fn, const uint8_t *p, size_t n)
{
	static const uint8_t tails[][4] = {
		{0x00, 0x00, 0x00, 0x00}, {0xff, 0xff, 0xff, 0xff},
		{0x05, 0x01, 0x00, 0x01}, {'G', 'E', 'T', ' '},
		{'\r', '\n', '\r', '\n'},
	};

	for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
		for (size_t extra = 1; extra <= 4; extra++) {
			uint8_t *d = malloc(n + extra);
			size_t used = 0;
			struct socks_err e;
			enum socks_res r;

			pc_assert(d != NULL);
			memcpy(d, p, n);
			memcpy(d + n, tails[t], extra);
			pc_at = n + extra;
			r = fn(d, n + extra, &used, &e);
			pc_assert(r == SOCKS_DONE && used == n);
			pc_assert(memcmp(d, p, n) == 0 && memcmp(d + n, tails[t], extra) == 0);
			free(d);
		}
	}
}

/* One corrupted input: no crash, sane result, and a DONE is reproducible
 * from just the bytes it says it used. */
static void pc_corrupt_one(pc_parse_fn fn, const uint8_t *c, size_t n, size_t i)
{
	size_t used, used2;

	pc_at = i;
	if (pc_run(fn, c, n, &used, NULL) == SOCKS_DONE) {
		pc_assert(pc_run(fn, c, used, &used2, NULL) == SOCKS_DONE);
		pc_assert(used2 == used);
	}
	if (n > PC_CORRUPT_PREFIX_MAX)
		return;
	for (size_t k = 0; k < n; k++)
		(void)pc_run(fn, c, k, NULL, NULL);
}

void pc_check_corrupt(pc_parse_fn fn, const uint8_t *p, size_t n)
{
	uint8_t *c = pc_dup(p, n);

	for (size_t i = 0; i < n; i++) {
		uint8_t vals[sizeof(pc_evil) + 4];
		size_t nv = sizeof(pc_evil);

		memcpy(vals, pc_evil, sizeof(pc_evil));
		vals[nv++] = (uint8_t)(p[i] ^ 0x01);
		vals[nv++] = (uint8_t)(p[i] ^ 0x80);
		vals[nv++] = (uint8_t)(p[i] + 1);
		vals[nv++] = (uint8_t)(p[i] - 1);
		for (size_t v = 0; v < nv; v++) {
			c[i] = vals[v];
			pc_corrupt_one(fn, c, n, i);
		}
		c[i] = p[i];
	}
	free(c);
}

void pc_check_stream(pc_parse_fn fn, const uint8_t *p, size_t n)
{
	pc_check_cuts(fn, p, n);
	pc_check_bytewise(fn, p, n);
	pc_check_trailing(fn, p, n);
	pc_check_corrupt(fn, p, n);
}

size_t pc_check_kind(pc_parse_fn fn, enum wire_kind kind)
{
	size_t count = 0;

	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		if (wire_cases[i].kind != kind)
			continue;
		pc_case = wire_cases[i].name;
		pc_check_stream(fn, wire_cases[i].bytes, wire_cases[i].len);
		count++;
	}
	pc_assert(count > 0);
	return count;
}

void pc_check_writer(pc_write_fn w, const void *arg, const uint8_t *expect, size_t n)
{
	const size_t slack = 8;
	uint8_t *buf = malloc(n + slack);

	pc_assert(buf != NULL);
	for (size_t cap = 0; cap < n; cap++) {
		uint8_t *d = malloc(cap > 0 ? cap : 1);

		pc_assert(d != NULL);
		memset(d, 0xA5, cap > 0 ? cap : 1);
		pc_at = cap;
		pc_assert(w(d, cap, arg) == 0);
		for (size_t k = 0; k < cap; k++)
			pc_assert(d[k] == 0xA5);
		free(d);
	}
	memset(buf, 0xA5, n + slack);
	pc_at = n + slack;
	pc_assert(w(buf, n + slack, arg) == n);
	pc_assert(memcmp(buf, expect, n) == 0);
	for (size_t k = n; k < n + slack; k++)
		pc_assert(buf[k] == 0xA5);
	free(buf);
	buf = malloc(n);
	pc_assert(buf != NULL);
	pc_at = n;
	pc_assert(w(buf, n, arg) == n);
	pc_assert(memcmp(buf, expect, n) == 0);
	free(buf);
}
