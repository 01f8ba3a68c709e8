/*
 * test_proto_greeting.c - method greeting and method choice
 * (src/proto/greeting.c).
 */
#include <string.h>

#include "proto_check.h"

static struct socks5_greeting greeting;
static uint8_t choice;

static enum socks_res parse_greeting(const uint8_t *p, size_t n, size_t *used,
				     struct socks_err *err)
{
	return socks5_greeting_parse(&greeting, p, n, used, err);
}

static enum socks_res parse_choice(const uint8_t *p, size_t n, size_t *used,
				   struct socks_err *err)
{
	return socks5_choice_parse(&choice, p, n, used, err);
}

static size_t write_greeting(uint8_t *dst, size_t cap, const void *arg)
{
	const struct socks5_greeting *g = arg;

	return socks5_greeting_write(dst, cap, g->methods, g->nmethods);
}

static size_t write_choice(uint8_t *dst, size_t cap, const void *arg)
{
	return socks5_choice_write(dst, cap, *(const uint8_t *)arg);
}

static void test_greeting_stream(void **state)
{
	assert_int_equal(pc_check_kind(parse_greeting, WC_GREETING), 5);
}

static void test_choice_stream(void **state)
{
	assert_int_equal(pc_check_kind(parse_choice, WC_CHOICE), 3);
}

static void test_greeting_roundtrip(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		struct socks5_greeting copy;

		if (c->kind != WC_GREETING)
			continue;
		pc_case = c->name;
		pc_check_done(parse_greeting, c->bytes, c->len);
		pc_assert(greeting.nmethods == c->code);
		pc_assert(memcmp(greeting.methods, c->bytes + 2, c->code) == 0);
		copy = greeting;
		pc_check_writer(write_greeting, &copy, c->bytes, c->len);
	}
}

static void test_choice_roundtrip(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		uint8_t m;

		if (c->kind != WC_CHOICE)
			continue;
		pc_case = c->name;
		pc_check_done(parse_choice, c->bytes, c->len);
		pc_assert(choice == c->code);
		m = choice;
		pc_check_writer(write_choice, &m, c->bytes, c->len);
	}
}

static void test_zero_methods(void **state)
{
	memset(&greeting, 0xEE, sizeof(greeting));
	pc_case = "zero";
	pc_check_done(parse_greeting, (const uint8_t *)"\x05\x00", 2);
	assert_int_equal(greeting.nmethods, 0);
	assert_false(socks5_greeting_has(&greeting, SOCKS_METHOD_NONE));
	assert_false(socks5_greeting_has(&greeting, 0xEE));
}

static void test_has(void **state)
{
	pc_case = "has";
	pc_check_done(parse_greeting, (const uint8_t *)"\x05\x03\x00\x02\x86", 5);
	assert_true(socks5_greeting_has(&greeting, SOCKS_METHOD_NONE));
	assert_true(socks5_greeting_has(&greeting, SOCKS_METHOD_USERPASS));
	assert_true(socks5_greeting_has(&greeting, SOCKS_METHOD_SSL));
	assert_false(socks5_greeting_has(&greeting, SOCKS_METHOD_GSSAPI));
	assert_false(socks5_greeting_has(&greeting, SOCKS_METHOD_SSL_IANA));
	/* A stale method beyond nmethods does not count. */
	greeting.methods[3] = SOCKS_METHOD_GSSAPI;
	assert_false(socks5_greeting_has(&greeting, SOCKS_METHOD_GSSAPI));
}

static void test_bad_version(void **state)
{
	static const uint8_t vers[] = {0x00, 0x01, 0x04, 0x06, 0x15, 'G', 0xff};

	for (size_t i = 0; i < sizeof(vers); i++) {
		uint8_t wire[3] = {vers[i], 1, 0};
		struct socks_err e;

		pc_case = "greeting version";
		pc_expect_bad(parse_greeting, wire, 1, SOCKS5_REP_GENERAL_FAILURE);
		pc_expect_bad(parse_greeting, wire, 3, SOCKS5_REP_GENERAL_FAILURE);
		assert_int_equal(pc_run(parse_greeting, wire, 3, NULL, &e), SOCKS_BAD);
		assert_string_equal(e.why, "bad version");
		pc_case = "choice version";
		pc_expect_bad(parse_choice, wire, 1, SOCKS5_REP_GENERAL_FAILURE);
		pc_expect_bad(parse_choice, wire, 2, SOCKS5_REP_GENERAL_FAILURE);
	}
}

static void test_writer_limits(void **state)
{
	uint8_t methods[256] = {0};
	uint8_t buf[300];

	assert_int_equal(socks5_greeting_write(buf, sizeof(buf), methods, 256), 0);
	assert_int_equal(socks5_greeting_write(buf, sizeof(buf), methods, 255), 257);
	assert_int_equal(socks5_greeting_write(buf, 2, NULL, 0), 2);
	assert_memory_equal(buf, "\x05\x00", 2);
	assert_int_equal(socks5_greeting_write(buf, 1, NULL, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_stream),
		cmocka_unit_test(test_choice_stream),
		cmocka_unit_test(test_greeting_roundtrip),
		cmocka_unit_test(test_choice_roundtrip),
		cmocka_unit_test(test_zero_methods),
		cmocka_unit_test(test_has),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_writer_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
