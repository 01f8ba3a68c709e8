/*
 * test_proto_request.c - SOCKS5 requests and replies (src/proto/request.c).
 */
#include <string.h>

#include "proto_check.h"

static struct socks5_request req;
static struct socks5_reply rep;

struct msg {
	uint8_t code;
	struct socks_addr a;
};

static enum socks_res parse_req(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return socks5_request_parse(&req, p, n, used, err);
}

static enum socks_res parse_rep(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return socks5_reply_parse(&rep, p, n, used, err);
}

static size_t write_req(uint8_t *dst, size_t cap, const void *arg)
{
	const struct msg *m = arg;

	return socks5_request_write(dst, cap, m->code, &m->a);
}

static size_t write_rep(uint8_t *dst, size_t cap, const void *arg)
{
	const struct msg *m = arg;

	return socks5_reply_write(dst, cap, m->code, &m->a);
}

static size_t write_rep_null(uint8_t *dst, size_t cap, const void *arg)
{
	return socks5_reply_write(dst, cap, *(const uint8_t *)arg, NULL);
}

static void test_request_stream(void **state)
{
	assert_int_equal(pc_check_kind(parse_req, WC_REQUEST), 8);
}

static void test_reply_stream(void **state)
{
	assert_int_equal(pc_check_kind(parse_rep, WC_REPLY), 5);
}

static void test_request_roundtrip(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		struct msg m;

		if (c->kind != WC_REQUEST)
			continue;
		pc_case = c->name;
		pc_check_done(parse_req, c->bytes, c->len);
		pc_assert(req.cmd == c->code && req.dst.atyp == c->atyp && req.dst.port == c->port);
		m.code = req.cmd;
		m.a = req.dst;
		pc_check_writer(write_req, &m, c->bytes, c->len);
	}
}

static void test_reply_roundtrip(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		struct msg m;

		if (c->kind != WC_REPLY)
			continue;
		pc_case = c->name;
		pc_check_done(parse_rep, c->bytes, c->len);
		pc_assert(rep.rep == c->code && rep.bnd.atyp == c->atyp && rep.bnd.port == c->port);
		m.code = rep.rep;
		m.a = rep.bnd;
		pc_check_writer(write_rep, &m, c->bytes, c->len);
	}
}

static void test_domain_fields(void **state)
{
	pc_case = "example";
	pc_check_done(parse_req, (const uint8_t *)"\x05\x01\x00\x03\x0b" "example.com" "\x01\xbb",
		      18);
	assert_int_equal(req.cmd, SOCKS_CMD_CONNECT);
	assert_int_equal(req.dst.atyp, SOCKS_ATYP_DOMAIN);
	assert_int_equal(req.dst.namelen, 11);
	assert_string_equal(req.dst.u.name, "example.com");
	assert_int_equal(req.dst.port, 443);
}

/* The parser takes every CMD; dispatch decides what is supported. */
static void test_any_cmd(void **state)
{
	uint8_t wire[] = {0x05, 0, 0x00, 0x01, 1, 2, 3, 4, 0, 80};

	pc_case = "cmd";
	for (unsigned cmd = 0; cmd <= 0xff; cmd++) {
		wire[1] = (uint8_t)cmd;
		pc_check_done(parse_req, wire, sizeof(wire));
		assert_int_equal(req.cmd, cmd);
	}
}

static void test_rsv_ignored(void **state)
{
	uint8_t wire[] = {0x05, 0x01, 0xff, 0x01, 1, 2, 3, 4, 0, 80};

	pc_case = "rsv";
	pc_check_done(parse_req, wire, sizeof(wire));
	pc_check_done(parse_rep, wire, sizeof(wire));
}

static void test_bad_version(void **state)
{
	static const uint8_t vers[] = {0x00, 0x04, 0x06, 0xff};
	struct socks_err e;

	pc_case = "version";
	for (size_t i = 0; i < sizeof(vers); i++) {
		uint8_t wire[] = {vers[i], 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80};

		pc_expect_bad(parse_req, wire, 1, SOCKS5_REP_GENERAL_FAILURE);
		pc_expect_bad(parse_req, wire, sizeof(wire), SOCKS5_REP_GENERAL_FAILURE);
		pc_expect_bad(parse_rep, wire, 1, -1);
	}
	assert_int_equal(pc_run(parse_req, (const uint8_t *)"\x04", 1, NULL, &e), SOCKS_BAD);
	assert_string_equal(e.why, "bad version");
}

static void test_bad_addresses(void **state)
{
	pc_case = "atyp";
	pc_expect_bad_str(parse_req, "\x05\x01\x00\x02", SOCKS5_REP_ATYP_NOT_SUPPORTED);
	pc_expect_bad_str(parse_req, "\x05\x01\x00\x00\x00\x00\x00\x00\x00\x00",
			  SOCKS5_REP_ATYP_NOT_SUPPORTED);
	pc_expect_bad_str(parse_rep, "\x05\x00\x00\x05", SOCKS5_REP_ATYP_NOT_SUPPORTED);
	pc_case = "domain";
	pc_expect_bad_str(parse_req, "\x05\x01\x00\x03\x00", SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad_str(parse_req, "\x05\x01\x00\x03\x03" "a" "\x00", SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad_str(parse_req, "\x05\x01\x00\x03\x02" "a" "\x00\x00\x50",
			  SOCKS5_REP_GENERAL_FAILURE);
}

static void test_reply_null_bnd(void **state)
{
	static const uint8_t expect[] = {0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0};
	uint8_t code = SOCKS5_REP_CONN_REFUSED;

	pc_case = "null bnd";
	pc_check_writer(write_rep_null, &code, expect, sizeof(expect));
}

static void test_writer_refuses_invalid(void **state)
{
	struct socks_addr a = {.atyp = SOCKS_ATYP_DOMAIN, .namelen = 0};
	uint8_t buf[SOCKS5_REQUEST_MAX];

	assert_int_equal(socks5_request_write(buf, sizeof(buf), 1, &a), 0);
	assert_int_equal(socks5_reply_write(buf, sizeof(buf), 0, &a), 0);
	a.atyp = 0x07;
	assert_int_equal(socks5_request_write(buf, sizeof(buf), 1, &a), 0);
}

/* The largest request fits SOCKS5_REQUEST_MAX exactly. */
static void test_max_size(void **state)
{
	struct socks_addr a = {.atyp = SOCKS_ATYP_DOMAIN, .namelen = 255, .port = 1};
	uint8_t buf[SOCKS5_REQUEST_MAX];

	memset(a.u.name, 'x', 255);
	assert_int_equal(socks5_request_write(buf, sizeof(buf), 1, &a), SOCKS5_REQUEST_MAX);
	assert_int_equal(socks5_reply_write(buf, sizeof(buf), 0, &a), SOCKS5_REPLY_MAX);
	assert_int_equal(socks5_request_write(buf, sizeof(buf) - 1, 1, &a), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_stream),
		cmocka_unit_test(test_reply_stream),
		cmocka_unit_test(test_request_roundtrip),
		cmocka_unit_test(test_reply_roundtrip),
		cmocka_unit_test(test_domain_fields),
		cmocka_unit_test(test_any_cmd),
		cmocka_unit_test(test_rsv_ignored),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_reply_null_bnd),
		cmocka_unit_test(test_writer_refuses_invalid),
		cmocka_unit_test(test_max_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
