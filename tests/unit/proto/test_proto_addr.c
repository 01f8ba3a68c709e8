/*
 * test_proto_addr.c - ATYP ADDR PORT (src/proto/addr.c).
 */
#include <string.h>

#include "proto_check.h"

static struct socks_addr out;

static enum socks_res parse(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return socks_addr_parse(&out, p, n, used, err);
}

static size_t write_addr(uint8_t *dst, size_t cap, const void *arg)
{
	return socks_addr_write(dst, cap, arg);
}

static void test_cases_stream(void **state)
{
	assert_int_equal(pc_check_kind(parse, WC_ADDR), 5);
}

/* Every case: the reported fields, then the writer reproduces the bytes. */
static void test_cases_fields_roundtrip(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		struct socks_addr copy;

		if (c->kind != WC_ADDR)
			continue;
		pc_case = c->name;
		pc_check_done(parse, c->bytes, c->len);
		pc_assert(out.atyp == c->atyp && out.port == c->port);
		pc_assert(socks_addr_wire_len(&out) == c->len);
		copy = out;
		pc_check_writer(write_addr, &copy, c->bytes, c->len);
	}
}

static void test_ipv4_ipv6_values(void **state)
{
	static const uint8_t v4[] = {0x01, 10, 1, 2, 3, 0x12, 0x34};
	static const uint8_t v6[] = {0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
				     0,    0,    0,    0,    0,    0, 0, 0x42, 0xff, 0xfe};

	pc_case = "v4";
	pc_check_done(parse, v4, sizeof(v4));
	assert_int_equal(out.atyp, SOCKS_ATYP_IPV4);
	assert_memory_equal(out.u.v4, v4 + 1, 4);
	assert_int_equal(out.port, 0x1234);
	pc_case = "v6";
	pc_check_done(parse, v6, sizeof(v6));
	assert_int_equal(out.atyp, SOCKS_ATYP_IPV6);
	assert_memory_equal(out.u.v6, v6 + 1, 16);
	assert_int_equal(out.port, 0xfffe);
}

static void test_domain_255(void **state)
{
	static const char name[] = WC_NAME255;
	uint8_t wire[SOCKS_ADDR_MAX];

	wire[0] = SOCKS_ATYP_DOMAIN;
	wire[1] = 255;
	memcpy(wire + 2, name, 255);
	wire[257] = 0x01;
	wire[258] = 0x02;
	pc_case = "name255";
	pc_check_done(parse, wire, sizeof(wire));
	assert_int_equal(out.namelen, 255);
	assert_string_equal(out.u.name, name);
	assert_int_equal(out.port, 0x0102);
}

static void test_unknown_atyp(void **state)
{
	static const uint8_t bad[] = {0x00, 0x02, 0x05, 0x06, 0x7f, 0xff};

	pc_case = "atyp";
	for (size_t i = 0; i < sizeof(bad); i++) {
		uint8_t wire[7] = {bad[i], 127, 0, 0, 1, 0, 80};

		/* Decided from the first byte alone. */
		pc_expect_bad(parse, wire, 1, SOCKS5_REP_ATYP_NOT_SUPPORTED);
		pc_expect_bad(parse, wire, sizeof(wire), SOCKS5_REP_ATYP_NOT_SUPPORTED);
	}
}

static void test_empty_domain(void **state)
{
	pc_case = "empty domain";
	pc_expect_bad_str(parse, "\x03\x00", SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad_str(parse, "\x03\x00\x00\x50", SOCKS5_REP_GENERAL_FAILURE);
}

static void test_nul_in_domain(void **state)
{
	static const uint8_t wire[] = {0x03, 5, 'a', 'b', 0, 'd', 'e', 0, 80};

	pc_case = "nul";
	/* MORE up to the NUL, BAD from the moment it arrives. */
	for (size_t k = 0; k < 5; k++) {
		pc_at = k;
		pc_assert(pc_run(parse, wire, k, NULL, NULL) == SOCKS_MORE);
	}
	for (size_t k = 5; k <= sizeof(wire); k++)
		pc_expect_bad(parse, wire, k, SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad_str(parse, "\x03\x01\x00\x00\x50", SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad_str(parse, "\x03\x02" "a" "\x00\x00\x50", SOCKS5_REP_GENERAL_FAILURE);
}

/* BAD and MORE leave the output alone. */
static void test_output_untouched(void **state)
{
	memset(&out, 0x5A, sizeof(out));
	pc_case = "untouched";
	pc_assert(pc_run(parse, (const uint8_t *)"\x01\x7f\x00", 3, NULL, NULL) == SOCKS_MORE);
	pc_expect_bad_str(parse, "\x09", -1);
	for (size_t k = 0; k < sizeof(out); k++)
		assert_int_equal(((uint8_t *)&out)[k], 0x5A);
}

static void test_write_refuses_invalid(void **state)
{
	struct socks_addr a = {.atyp = 0x02};
	uint8_t buf[SOCKS_ADDR_MAX];

	assert_int_equal(socks_addr_wire_len(&a), 0);
	assert_int_equal(socks_addr_write(buf, sizeof(buf), &a), 0);
	a.atyp = SOCKS_ATYP_DOMAIN;
	a.namelen = 0;
	assert_int_equal(socks_addr_wire_len(&a), 0);
	assert_int_equal(socks_addr_write(buf, sizeof(buf), &a), 0);
	memcpy(a.u.name, "ab\0d", 5);
	a.namelen = 4;
	assert_int_equal(socks_addr_write(buf, sizeof(buf), &a), 0);
	a.namelen = 2;
	assert_int_equal(socks_addr_write(buf, sizeof(buf), &a), 6);
	assert_memory_equal(buf, "\x03\x02" "ab" "\x00\x00", 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases_stream),
		cmocka_unit_test(test_cases_fields_roundtrip),
		cmocka_unit_test(test_ipv4_ipv6_values),
		cmocka_unit_test(test_domain_255),
		cmocka_unit_test(test_unknown_atyp),
		cmocka_unit_test(test_empty_domain),
		cmocka_unit_test(test_nul_in_domain),
		cmocka_unit_test(test_output_untouched),
		cmocka_unit_test(test_write_refuses_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
