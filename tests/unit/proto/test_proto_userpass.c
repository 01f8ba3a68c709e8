/*
 * test_proto_userpass.c - RFC 1929 (src/proto/userpass.c).
 */
#include <string.h>

#include "proto_check.h"

static struct socks_userpass up;
static uint8_t status;

struct creds {
	const char *user, *pass;
};

static enum socks_res parse_up(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return socks_userpass_parse(&up, p, n, used, err);
}

static enum socks_res parse_status(const uint8_t *p, size_t n, size_t *used,
				   struct socks_err *err)
{
	return socks_userpass_status_parse(&status, p, n, used, err);
}

static size_t write_up(uint8_t *dst, size_t cap, const void *arg)
{
	const struct creds *c = arg;

	return socks_userpass_write(dst, cap, c->user, c->pass);
}

static size_t write_status(uint8_t *dst, size_t cap, const void *arg)
{
	return socks_userpass_status_write(dst, cap, *(const uint8_t *)arg);
}

static void test_userpass_stream(void **state)
{
	assert_int_equal(pc_check_kind(parse_up, WC_USERPASS), 5);
}

static void test_status_stream(void **state)
{
	assert_int_equal(pc_check_kind(parse_status, WC_USERPASS_STATUS), 2);
}

static void test_userpass_roundtrip(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		struct socks_userpass copy;
		struct creds cr;

		if (c->kind != WC_USERPASS)
			continue;
		pc_case = c->name;
		pc_check_done(parse_up, c->bytes, c->len);
		pc_assert(up.ulen == c->code && strlen(up.user) == up.ulen);
		pc_assert(strlen(up.pass) == up.plen && c->len == 3u + up.ulen + up.plen);
		copy = up;
		cr.user = copy.user;
		cr.pass = copy.pass;
		pc_check_writer(write_up, &cr, c->bytes, c->len);
	}
}

static void test_status_roundtrip(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		uint8_t s;

		if (c->kind != WC_USERPASS_STATUS)
			continue;
		pc_case = c->name;
		pc_check_done(parse_status, c->bytes, c->len);
		pc_assert(status == c->code);
		s = status;
		pc_check_writer(write_status, &s, c->bytes, c->len);
	}
}

static void test_values(void **state)
{
	pc_case = "alice";
	pc_check_done(parse_up, (const uint8_t *)"\x01\x05" "alice" "\x06" "secret", 14);
	assert_int_equal(up.ulen, 5);
	assert_string_equal(up.user, "alice");
	assert_int_equal(up.plen, 6);
	assert_string_equal(up.pass, "secret");
}

static void test_empty_user_allowed(void **state)
{
	memset(&up, 'x', sizeof(up));
	pc_case = "ulen 0";
	pc_check_done(parse_up, (const uint8_t *)"\x01\x00\x02" "pw", 5);
	assert_int_equal(up.ulen, 0);
	assert_string_equal(up.user, "");
	assert_string_equal(up.pass, "pw");
}

static void test_bad_version(void **state)
{
	static const uint8_t vers[] = {0x00, 0x02, 0x05, 0xff};

	pc_case = "version";
	for (size_t i = 0; i < sizeof(vers); i++) {
		uint8_t wire[5] = {vers[i], 1, 'u', 1, 'p'};

		pc_expect_bad(parse_up, wire, 1, -1);
		pc_expect_bad(parse_up, wire, sizeof(wire), -1);
	}
}

static void test_nul_refused(void **state)
{
	static const uint8_t in_user[] = {0x01, 3, 'a', 0, 'b', 1, 'p'};
	static const uint8_t in_pass[] = {0x01, 1, 'u', 3, 'p', 0, 'q'};
	struct socks_err e;

	pc_case = "nul user";
	pc_assert(pc_run(parse_up, in_user, 3, NULL, NULL) == SOCKS_MORE);
	pc_expect_bad(parse_up, in_user, 4, -1);
	assert_int_equal(pc_run(parse_up, in_user, sizeof(in_user), NULL, &e), SOCKS_BAD);
	assert_string_equal(e.why, "NUL in username");
	assert_int_not_equal(e.rep, 0); /* a failure STATUS */
	pc_case = "nul pass";
	pc_assert(pc_run(parse_up, in_pass, 5, NULL, NULL) == SOCKS_MORE);
	pc_expect_bad(parse_up, in_pass, 6, -1);
	assert_int_equal(pc_run(parse_up, in_pass, sizeof(in_pass), NULL, &e), SOCKS_BAD);
	assert_string_equal(e.why, "NUL in password");
}

static void test_status_versions(void **state)
{
	pc_case = "status v5";
	pc_check_done(parse_status, (const uint8_t *)"\x05\x00", 2);
	assert_int_equal(status, 0);
	pc_check_done(parse_status, (const uint8_t *)"\x01\xff", 2);
	assert_int_equal(status, 0xff);
	pc_expect_bad_str(parse_status, "\x00", -1);
	pc_expect_bad_str(parse_status, "\x02\x00", -1);
	pc_expect_bad_str(parse_status, "\x04\x00", -1);
}

static void test_writer_limits(void **state)
{
	char long_name[257];
	uint8_t buf[600];

	memset(long_name, 'n', 256);
	long_name[256] = '\0';
	assert_int_equal(socks_userpass_write(buf, sizeof(buf), long_name, "p"), 0);
	assert_int_equal(socks_userpass_write(buf, sizeof(buf), "u", long_name), 0);
	long_name[255] = '\0';
	assert_int_equal(socks_userpass_write(buf, sizeof(buf), long_name, long_name), 513);
	assert_int_equal(socks_userpass_write(buf, sizeof(buf), NULL, NULL), 3);
	assert_memory_equal(buf, "\x01\x00\x00", 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_userpass_stream),
		cmocka_unit_test(test_status_stream),
		cmocka_unit_test(test_userpass_roundtrip),
		cmocka_unit_test(test_status_roundtrip),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_empty_user_allowed),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_nul_refused),
		cmocka_unit_test(test_status_versions),
		cmocka_unit_test(test_writer_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
