/*
 * test_proto_socks4.c - SOCKS4 and 4a (src/proto/socks4.c).
 */
#include <string.h>

#include "proto_check.h"

static struct socks4_request req;
static struct socks4_reply rep;

struct req_args {
	uint8_t cmd;
	struct socks_addr a;
	char userid[256];
};

static enum socks_res parse_req(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return socks4_request_parse(&req, p, n, used, err);
}

static enum socks_res parse_rep(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return socks4_reply_parse(&rep, p, n, used, err);
}

static size_t write_req(uint8_t *dst, size_t cap, const void *arg)
{
	const struct req_args *r = arg;

	return socks4_request_write(dst, cap, r->cmd, &r->a, r->userid);
}

static size_t write_rep(uint8_t *dst, size_t cap, const void *arg)
{
	const struct socks4_reply *r = arg;

	return socks4_reply_write(dst, cap, r->rep, r->port, r->ip);
}

static void test_request_stream(void **state)
{
	assert_int_equal(pc_check_kind(parse_req, WC_SOCKS4), 7);
}

static void test_reply_stream(void **state)
{
	assert_int_equal(pc_check_kind(parse_rep, WC_SOCKS4_REPLY), 2);
}

static void test_request_roundtrip(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		struct req_args r;

		if (c->kind != WC_SOCKS4)
			continue;
		pc_case = c->name;
		pc_check_done(parse_req, c->bytes, c->len);
		pc_assert(req.cmd == c->code && req.dst.atyp == c->atyp && req.dst.port == c->port);
		r.cmd = req.cmd;
		r.a = req.dst;
		memcpy(r.userid, req.userid, sizeof(r.userid));
		pc_check_writer(write_req, &r, c->bytes, c->len);
	}
}

static void test_reply_roundtrip(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		struct socks4_reply r;

		if (c->kind != WC_SOCKS4_REPLY)
			continue;
		pc_case = c->name;
		pc_check_done(parse_rep, c->bytes, c->len);
		pc_assert(rep.rep == c->code && rep.port == c->port);
		r = rep;
		pc_check_writer(write_rep, &r, c->bytes, c->len);
	}
}

static void test_values(void **state)
{
	pc_case = "v4";
	pc_check_done(parse_req, (const uint8_t *)"\x04\x01\x00\x50\x01\x02\x03\x04" "bob" "\x00",
		      12);
	assert_int_equal(req.dst.atyp, SOCKS_ATYP_IPV4);
	assert_memory_equal(req.dst.u.v4, "\x01\x02\x03\x04", 4);
	assert_string_equal(req.userid, "bob");
	pc_case = "4a";
	pc_check_done(parse_req,
		      (const uint8_t *)"\x04\x02\x01\xbb\x00\x00\x00\x07" "me" "\x00" "host.example"
				       "\x00",
		      24);
	assert_int_equal(req.cmd, 2);
	assert_int_equal(req.dst.atyp, SOCKS_ATYP_DOMAIN);
	assert_int_equal(req.dst.namelen, 12);
	assert_string_equal(req.dst.u.name, "host.example");
	assert_int_equal(req.dst.port, 443);
	assert_string_equal(req.userid, "me");
}

/* Any 0.0.0.x with x != 0 marks 4a (the writer always uses 0.0.0.1). */
static void test_4a_marker_values(void **state)
{
	uint8_t wire[] = {0x04, 0x01, 0x00, 0x50, 0, 0, 0, 0, 0, 'h', 0};

	pc_case = "marker";
	for (unsigned x = 1; x <= 0xff; x++) {
		wire[7] = (uint8_t)x;
		pc_check_done(parse_req, wire, sizeof(wire));
		assert_int_equal(req.dst.atyp, SOCKS_ATYP_DOMAIN);
		assert_string_equal(req.dst.u.name, "h");
	}
}

/* 0.0.0.0 is a plain (if useless) IPv4 address, not the 4a marker. */
static void test_zero_ip_is_not_4a(void **state)
{
	pc_case = "0.0.0.0";
	pc_check_done(parse_req, (const uint8_t *)"\x04\x01\x00\x50\x00\x00\x00\x00\x00", 9);
	assert_int_equal(req.dst.atyp, SOCKS_ATYP_IPV4);
	pc_case = "0.0.1.1";
	pc_check_done(parse_req, (const uint8_t *)"\x04\x01\x00\x50\x00\x00\x01\x01\x00", 9);
	assert_int_equal(req.dst.atyp, SOCKS_ATYP_IPV4);
}

static void test_bad_version(void **state)
{
	static const uint8_t vers[] = {0x00, 0x05, 0x03, 0xff};
	struct socks_err e;

	pc_case = "version";
	for (size_t i = 0; i < sizeof(vers); i++) {
		uint8_t wire[] = {vers[i], 1, 0, 80, 1, 2, 3, 4, 0};

		pc_expect_bad(parse_req, wire, 1, SOCKS4_REP_REJECTED);
		pc_expect_bad(parse_req, wire, sizeof(wire), SOCKS4_REP_REJECTED);
	}
	assert_int_equal(pc_run(parse_req, (const uint8_t *)"\x05", 1, NULL, &e), SOCKS_BAD);
	assert_string_equal(e.why, "bad version");
}

/* USERID: 255 bytes + NUL is fine; 256 bytes without a NUL is BAD right
 * when the 256th byte arrives. Same for the 4a HOST. */
static void test_field_limits(void **state)
{
	uint8_t wire[8 + 257 + 257];

	memcpy(wire, "\x04\x01\x00\x50\x0a\x00\x00\x01", 8);
	memset(wire + 8, 'u', 256);
	pc_case = "userid 256";
	pc_at = 8 + 255;
	pc_assert(pc_run(parse_req, wire, 8 + 255, NULL, NULL) == SOCKS_MORE);
	pc_expect_bad(parse_req, wire, 8 + 256, SOCKS4_REP_REJECTED);
	wire[8 + 255] = 0;
	pc_case = "userid 255";
	pc_check_done(parse_req, wire, 8 + 256);
	assert_int_equal(strlen(req.userid), 255);

	/* 4a: userid "", then the host. */
	memcpy(wire, "\x04\x01\x00\x50\x00\x00\x00\x01\x00", 9);
	memset(wire + 9, 'h', 256);
	pc_case = "host 256";
	pc_at = 9 + 255;
	pc_assert(pc_run(parse_req, wire, 9 + 255, NULL, NULL) == SOCKS_MORE);
	pc_expect_bad(parse_req, wire, 9 + 256, SOCKS4_REP_REJECTED);
	wire[9 + 255] = 0;
	pc_case = "host 255";
	pc_check_done(parse_req, wire, 9 + 256);
	assert_int_equal(req.dst.namelen, 255);
	pc_case = "empty host";
	pc_expect_bad_str(parse_req, "\x04\x01\x00\x50\x00\x00\x00\x01\x00\x00", SOCKS4_REP_REJECTED);
	pc_expect_bad_str(parse_req, "\x04\x01\x00\x50\x00\x00\x00\x01" "id" "\x00\x00",
			  SOCKS4_REP_REJECTED);
}

static void test_writer_refuses(void **state)
{
	struct socks_addr a = {.atyp = SOCKS_ATYP_IPV6};
	char uid[257];
	uint8_t buf[SOCKS4_REQUEST_MAX + 8];

	assert_int_equal(socks4_request_write(buf, sizeof(buf), 1, &a, ""), 0);
	/* An IPv4 address in 0.0.0.x would read back as 4a. */
	a.atyp = SOCKS_ATYP_IPV4;
	memcpy(a.u.v4, "\x00\x00\x00\x05", 4);
	assert_int_equal(socks4_request_write(buf, sizeof(buf), 1, &a, ""), 0);
	memcpy(a.u.v4, "\x00\x00\x00\x00", 4);
	assert_int_equal(socks4_request_write(buf, sizeof(buf), 1, &a, NULL), 9);
	memset(uid, 'u', 256);
	uid[256] = '\0';
	assert_int_equal(socks4_request_write(buf, sizeof(buf), 1, &a, uid), 0);
	a.atyp = SOCKS_ATYP_DOMAIN;
	a.namelen = 0;
	assert_int_equal(socks4_request_write(buf, sizeof(buf), 1, &a, ""), 0);
	/* Both fields at 255: SOCKS4_REQUEST_MAX exactly. */
	uid[255] = '\0';
	a.namelen = 255;
	memset(a.u.name, 'n', 255);
	assert_int_equal(socks4_request_write(buf, sizeof(buf), 1, &a, uid), SOCKS4_REQUEST_MAX);
}

static void test_reply_checks(void **state)
{
	uint8_t buf[SOCKS4_REPLY_LEN];

	pc_case = "reply vn";
	pc_expect_bad_str(parse_rep, "\x04", SOCKS4_REP_REJECTED);
	pc_expect_bad_str(parse_rep, "\x05\x5a\x00\x00\x00\x00\x00\x00", SOCKS4_REP_REJECTED);
	assert_int_equal(socks4_reply_write(buf, sizeof(buf), SOCKS4_REP_REJECTED, 7, NULL), 8);
	assert_memory_equal(buf, "\x00\x5b\x00\x07\x00\x00\x00\x00", 8);
	assert_int_equal(socks4_reply_write(buf, 7, SOCKS4_REP_GRANTED, 7, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_stream),
		cmocka_unit_test(test_reply_stream),
		cmocka_unit_test(test_request_roundtrip),
		cmocka_unit_test(test_reply_roundtrip),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_4a_marker_values),
		cmocka_unit_test(test_zero_ip_is_not_4a),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_field_limits),
		cmocka_unit_test(test_writer_refuses),
		cmocka_unit_test(test_reply_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
