/*
 * fuzz_check.c - the streaming-contract checker used by every target.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

/* Output structs are compared byte for byte; none is larger than this. */
#define FUZZ_OUT_MAX 16384 /* struct mbind_reply: 16 binds of two addresses */

void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
	abort();
}

uint8_t *fuzz_dup(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n > 0 ? n : 1);

	FUZZ_CHECK(d != NULL);
	if (n > 0)
		memcpy(d, p, n);
	return d;
}

/* One run on an exact-size copy, with the per-call invariants. */
static enum socks_res fuzz_run(fuzz_parse_fn fn, void *out, size_t outsize, const uint8_t *p,
			       size_t n, size_t *used)
{
	uint8_t *d = fuzz_dup(p, n);
	struct socks_err err = {0, NULL};
	enum socks_res r;

	memset(out, 0, outsize);
	*used = (size_t)-1;
	r = fn(out, n > 0 ? d : d + 1, n, used, &err);
	free(d);
	FUZZ_CHECK(r == SOCKS_MORE || r == SOCKS_DONE || r == SOCKS_BAD);
	if (r == SOCKS_DONE)
		FUZZ_CHECK(*used > 0 && *used <= n);
	if (r == SOCKS_BAD)
		FUZZ_CHECK(err.why != NULL && err.why[0] != '\0');
	return r;
}

enum socks_res fuzz_check_stream(fuzz_parse_fn fn, void *out, size_t outsize, const uint8_t *data,
				 size_t size, size_t max, size_t *used)
{
	static uint8_t first[FUZZ_OUT_MAX];
	enum socks_res state = SOCKS_MORE, r;
	size_t u, done_at = 0;
	size_t last = size < max + 1 ? size : max + 1;

	FUZZ_CHECK(outsize <= sizeof(first));
	for (size_t k = 0; k <= last; k++) {
		r = fuzz_run(fn, out, outsize, data, k, &u);
		/* Once decided, more bytes never change the verdict. */
		if (state != SOCKS_MORE)
			FUZZ_CHECK(r == state);
		if (r == SOCKS_MORE) {
			FUZZ_CHECK(k < max);
		} else if (r == SOCKS_DONE && state == SOCKS_MORE) {
			FUZZ_CHECK(u == k); /* DONE exactly when the last byte came */
			done_at = u;
			memcpy(first, out, outsize);
		} else if (r == SOCKS_DONE) {
			FUZZ_CHECK(u == done_at && memcmp(first, out, outsize) == 0);
		}
		state = r;
	}
	/* The whole input, however long, gives the same answer. */
	r = fuzz_run(fn, out, outsize, data, size, &u);
	FUZZ_CHECK(r == state);
	if (r == SOCKS_DONE)
		FUZZ_CHECK(u == done_at && memcmp(first, out, outsize) == 0);
	*used = u;
	return r;
}
