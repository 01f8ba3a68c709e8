/*
 * test_bytebuf.c - the byte queue shared by the TLS and GSS-API filters,
 * libstp's connections and the multiplexer (src/common/bytebuf.c): bytes
 * come out in the order they went in across growth and compaction, the
 * bound is exact, a refused append keeps what was queued, and gather stops
 * at its batch, at an empty producer and on a producer's error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/bytebuf.h"

static void test_fifo_across_growth_and_compaction(void **state)
{
	(void)state;
	struct bytebuf b = { 0 };
	uint8_t in[10000], got[10000];
	size_t wrote = 0, read = 0;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	/* append 700, consume 300, ...: the front moves while the buffer grows
	 * and is later slid down */
	while (wrote < sizeof(in)) {
		size_t n = sizeof(in) - wrote < 700 ? sizeof(in) - wrote : 700;
		assert_int_equal(bytebuf_append(&b, in + wrote, n, SIZE_MAX), 0);
		wrote += n;
		const uint8_t *p;
		size_t have = bytebuf_peek(&b, &p);
		size_t take = have < 300 ? have : 300;
		memcpy(got + read, p, take);
		read += take;
		bytebuf_consume(&b, take);
	}
	const uint8_t *p;
	size_t have = bytebuf_peek(&b, &p);
	assert_int_equal(read + have, sizeof(in));
	memcpy(got + read, p, have);
	bytebuf_consume(&b, have);
	assert_memory_equal(in, got, sizeof(in));
	assert_int_equal(bytebuf_used(&b), 0);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);
	assert_true(b.cap <= 8192); /* compaction, not growth without end */
	bytebuf_free(&b);
	assert_null(b.p);
}

static void test_bound_is_exact_and_refusal_keeps_bytes(void **state)
{
	(void)state;
	struct bytebuf b = { 0 };
	uint8_t chunk[1000];
	memset(chunk, 0xab, sizeof(chunk));
	assert_int_equal(bytebuf_append(&b, chunk, 1000, 3000), 0);
	assert_int_equal(bytebuf_append(&b, chunk, 1000, 3000), 0);
	assert_int_equal(bytebuf_append(&b, chunk, 1000, 3000), 0); /* exactly max */
	assert_int_equal(bytebuf_append(&b, chunk, 1, 3000), -1);
	assert_int_equal(bytebuf_used(&b), 3000);
	assert_true(b.cap <= 3000);
	/* room made at the front counts again */
	bytebuf_consume(&b, 500);
	assert_int_equal(bytebuf_append(&b, chunk, 500, 3000), 0);
	assert_int_equal(bytebuf_append(&b, chunk, 1, 3000), -1);
	assert_int_equal(bytebuf_used(&b), 3000);
	/* a length that would wrap size_t is refused, not allocated */
	assert_int_equal(bytebuf_reserve(&b, SIZE_MAX, SIZE_MAX), -1);
	bytebuf_free_wipe(&b);
	assert_null(b.p);
	assert_int_equal(b.cap, 0);
}

struct producer {
	int calls, chunks, fail_at;
	uint8_t chunk[100];
};

static ssize_t next_chunk(void *ctx, const uint8_t **out)
{
	struct producer *pr = ctx;
	pr->calls++;
	if (pr->fail_at && pr->calls == pr->fail_at)
		return -1;
	if (pr->chunks == 0)
		return 0;
	pr->chunks--;
	memset(pr->chunk, pr->calls, sizeof(pr->chunk));
	*out = pr->chunk;
	return sizeof(pr->chunk);
}

static void test_gather(void **state)
{
	(void)state;
	struct bytebuf b = { 0 };
	struct producer pr = { .chunks = 50 };
	/* stops once the batch is reached */
	assert_int_equal(bytebuf_gather(&b, 1000, next_chunk, &pr), 0);
	assert_int_equal(bytebuf_used(&b), 1000);
	assert_int_equal(pr.calls, 10);
	assert_int_equal(b.p[0], 1);
	assert_int_equal(b.p[999], 10); /* each chunk copied before the next call */
	/* stops when the producer is empty */
	bytebuf_consume(&b, 1000);
	assert_int_equal(bytebuf_gather(&b, 1 << 20, next_chunk, &pr), 0);
	assert_int_equal(bytebuf_used(&b), 4000);
	/* an error is reported */
	struct producer bad = { .chunks = 5, .fail_at = 3 };
	assert_int_equal(bytebuf_gather(&b, 1 << 20, next_chunk, &bad), -1);
	bytebuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo_across_growth_and_compaction),
		cmocka_unit_test(test_bound_is_exact_and_refusal_keeps_bytes),
		cmocka_unit_test(test_gather),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
