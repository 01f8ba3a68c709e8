/*
 * test_dq_msg.c - what stpd reads in DNS QUERY messages and how long it
 * keeps answers (src/ext/resolve/dq_msg.c, dq_cache.c): the question and
 * its EDNS bits, the cache TTL of positive and negative answers (RFC 2308),
 * aging, and the cache's keys, bound and ID rewrite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ext/resolve/dq_cache.h"
#include "ext/resolve/dq_msg.h"

/* example.com AAAA, id 0x1234, RD; then an OPT (1232, DO). */
static const uint8_t QUERY[] = { 0x12, 0x34, 0x01, 0x00, 0,   1,   0,    0,   0,   0,
				 0,    1,    7,    'e',  'x', 'a', 'm',  'p', 'l', 'e',
				 3,    'c',  'o',  'm',  0,   0,   28,   0,   1,   0,
				 0,    41,   0x04, 0xd0, 0,   0,   0x80, 0,   0,   0 };

/* The answer: two AAAA records, TTL 300 and 120. */
static const uint8_t ANSWER[] = {
	0x12, 0x34, 0x81, 0x80, 0,    1,   0,    2,    0, 0,   0,    0, 7,    'e', 'x',  'a',  'm',
	'p',  'l',  'e',  3,    'c',  'o', 'm',  0,    0, 28,  0,    1, 0xc0, 12,  0,    28,   0,
	1,    0,    0,    0x01, 0x2c, 0,   16,   0x20, 1, 0xd, 0xb8, 0, 0,    0,   0,    0,    0,
	0,    0,    0,    0,    0,    1,   0xc0, 12,   0, 28,  0,    1, 0,    0,   0x00, 0x78, 0,
	16,   0x20, 1,    0xd,  0xb8, 0,   0,    0,    0, 0,   0,    0, 0,    0,   0,    0,    2,
};

/* NXDOMAIN with the SOA: TTL 3600, MINIMUM 300. */
static const uint8_t NXDOMAIN[] = {
	0x12, 0x34, 0x81, 0x83, 0,    1,    0,    0,    0,    1, 0,    0,  7,   'e',  'x',
	'a',  'm',  'p',  'l',  'e',  3,    'c',  'o',  'm',  0, 0,    28, 0,   1,    0xc0,
	12,   0,    6,    0,    1,    0,    0,    0x0e, 0x10, 0, 30,   2,  'n', 's',  0xc0,
	12,   2,    'h',  'm',  0xc0, 12,   0,    0,    0,    1, 0,    0,  4,   0xb0, 0,
	0,    0,    0x78, 0,    9,    0x3a, 0x80, 0,    0,    1, 0x2c,
};

static void test_question(void **state)
{
	struct dq_question q;

	(void)state;
	assert_int_equal(dq_question(&q, QUERY, sizeof(QUERY)), 0);
	assert_string_equal(q.name, "example.com");
	assert_int_equal(q.id, 0x1234);
	assert_int_equal(q.type, 28);
	assert_int_equal(q.class, 1);
	assert_true(q.edns && q.edns_do);
	assert_int_equal(q.flags & 0x8000, 0);
	/* every cut is refused, never read past (an ASan build checks) */
	for (size_t n = 0; n < sizeof(QUERY); n++) {
		uint8_t *d = malloc(n ? n : 1);
		memcpy(d, QUERY, n);
		if (dq_question(&q, d, n) == 0)
			fail_msg("a %zu-byte cut was taken", n);
		free(d);
	}
}

static void test_cache_ttl(void **state)
{
	uint8_t m[sizeof(NXDOMAIN)];

	(void)state;
	assert_int_equal(dq_cache_ttl(ANSWER, sizeof(ANSWER), 3600), 120);
	/* RFC 2308: min(SOA TTL, MINIMUM), capped by the caller */
	assert_int_equal(dq_cache_ttl(NXDOMAIN, sizeof(NXDOMAIN), 3600), 300);
	assert_int_equal(dq_cache_ttl(NXDOMAIN, sizeof(NXDOMAIN), 60), 60);
	/* NODATA (NOERROR, no answers) is negative too */
	memcpy(m, NXDOMAIN, sizeof(m));
	m[3] = 0x80;
	assert_int_equal(dq_cache_ttl(m, sizeof(m), 3600), 300);
	/* SERVFAIL, REFUSED, TC: never */
	m[3] = 0x82;
	assert_int_equal(dq_cache_ttl(m, sizeof(m), 3600), 0);
	m[3] = 0x85;
	assert_int_equal(dq_cache_ttl(m, sizeof(m), 3600), 0);
	memcpy(m, NXDOMAIN, sizeof(m));
	m[2] |= 0x02;
	assert_int_equal(dq_cache_ttl(m, sizeof(m), 3600), 0);
	/* no SOA: no negative caching */
	assert_int_equal(dq_cache_ttl(NXDOMAIN, 29, 3600), 0);
	/* malformed: cut inside a record */
	assert_int_equal(dq_cache_ttl(ANSWER, sizeof(ANSWER) - 1, 3600), 0);
}

static void test_age(void **state)
{
	uint8_t m[sizeof(ANSWER)];

	(void)state;
	memcpy(m, ANSWER, sizeof(m));
	dq_age(m, sizeof(m), 100);
	assert_int_equal(dq_cache_ttl(m, sizeof(m), 3600), 20);
	assert_int_equal(m[29 + 9], 200); /* 300 - 100 */
	dq_age(m, sizeof(m), 1000);       /* never below 0 */
	assert_int_equal(dq_cache_ttl(m, sizeof(m), 3600), 0);
	assert_memory_equal(m, ANSWER, 12);
}

static void test_cache(void **state)
{
	struct dq_cache *c = dq_cache_new(2);
	struct dq_question q, other;
	uint8_t *hit;
	size_t len = 0;

	(void)state;
	assert_non_null(c);
	assert_int_equal(dq_question(&q, QUERY, sizeof(QUERY)), 0);
	dq_cache_put(c, &q, ANSWER, sizeof(ANSWER), 120);
	/* another ID, the name in other case: the same answer, the asker's ID */
	q.id = 0xBEEF;
	strcpy(q.name, "EXAMPLE.com");
	hit = dq_cache_get(c, &q, &len);
	assert_non_null(hit);
	assert_int_equal(len, sizeof(ANSWER));
	assert_int_equal(hit[0], 0xBE);
	assert_int_equal(hit[1], 0xEF);
	assert_memory_equal(hit + 2, ANSWER + 2, 10);
	free(hit);
	/* DO, RD and the type are part of the key */
	other = q;
	other.edns_do = false;
	assert_null(dq_cache_get(c, &other, &len));
	other = q;
	other.flags &= (uint16_t)~0x0100;
	assert_null(dq_cache_get(c, &other, &len));
	other = q;
	other.type = 1;
	assert_null(dq_cache_get(c, &other, &len));
	/* TTL 0 is not kept; two more entries push the first out (bound 2) */
	dq_cache_put(c, &other, ANSWER, sizeof(ANSWER), 0);
	assert_int_equal(dq_cache_count(c), 1);
	dq_cache_put(c, &other, ANSWER, sizeof(ANSWER), 60);
	strcpy(other.name, "b.example.com");
	dq_cache_put(c, &other, ANSWER, sizeof(ANSWER), 90);
	assert_int_equal(dq_cache_count(c), 2);
	other.type = 1;
	strcpy(other.name, "example.com");
	assert_null(dq_cache_get(c, &other, &len)); /* the one closest to expiry went */
	hit = dq_cache_get(c, &q, &len);
	assert_non_null(hit);
	free(hit);
	dq_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_question),
		cmocka_unit_test(test_cache_ttl),
		cmocka_unit_test(test_age),
		cmocka_unit_test(test_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
