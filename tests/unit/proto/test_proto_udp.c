/*
 * test_proto_udp.c - the UDP ASSOCIATE datagram header (src/proto/udp.c).
 * A datagram is whole: every cut gives BAD, never MORE.
 */
#include <string.h>

#include "proto_check.h"

static struct socks_udp_hdr hdr;

struct udp_args {
	uint8_t frag;
	struct socks_addr a;
};

/* Adapts the datagram parser to the harness: used = header length. */
static enum socks_res parse_udp(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	enum socks_res r = socks_udp_parse(&hdr, p, n, err);

	if (r == SOCKS_DONE)
		*used = hdr.hdrlen;
	return r;
}

static size_t write_udp(uint8_t *dst, size_t cap, const void *arg)
{
	const struct udp_args *u = arg;

	return socks_udp_write(dst, cap, u->frag, &u->a);
}

/* Header of a case: parse the whole datagram for it. */
static size_t case_hdrlen(const struct wire_case *c)
{
	size_t used = 0;

	pc_assert(pc_run(parse_udp, c->bytes, c->len, &used, NULL) == SOCKS_DONE);
	return used;
}

static void test_cases_fields_roundtrip(void **state)
{
	size_t count = 0;

	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		struct udp_args u;
		size_t h;

		if (c->kind != WC_UDP)
			continue;
		pc_case = c->name;
		h = case_hdrlen(c);
		pc_assert(hdr.frag == c->code && hdr.addr.atyp == c->atyp &&
			  hdr.addr.port == c->port);
		pc_assert(h == 3 + socks_addr_wire_len(&hdr.addr));
		u.frag = hdr.frag;
		u.a = hdr.addr;
		pc_check_writer(write_udp, &u, c->bytes, h);
		count++;
	}
	assert_int_equal(count, 5);
}

/* Every cut: BAD while the header is incomplete, DONE (same header) after. */
static void test_cuts_never_more(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		size_t h;

		if (c->kind != WC_UDP)
			continue;
		pc_case = c->name;
		h = case_hdrlen(c);
		for (size_t k = 0; k < h; k++)
			pc_expect_bad(parse_udp, c->bytes, k, SOCKS5_REP_GENERAL_FAILURE);
		for (size_t k = h; k <= c->len; k++) {
			size_t used;

			pc_at = k;
			pc_assert(pc_run(parse_udp, c->bytes, k, &used, NULL) == SOCKS_DONE);
			pc_assert(used == h);
		}
	}
}

static void test_trailing_and_corrupt(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];
		size_t h;

		if (c->kind != WC_UDP)
			continue;
		pc_case = c->name;
		h = case_hdrlen(c);
		/* DATA is trailing bytes to the header parser. */
		pc_check_trailing(parse_udp, c->bytes, h);
		pc_check_corrupt(parse_udp, c->bytes, c->len);
	}
}

static void test_never_more_on_junk(void **state)
{
	uint8_t junk[64];

	pc_case = "junk";
	for (size_t v = 0; v < 256; v += 17) {
		memset(junk, (int)v, sizeof(junk));
		for (size_t k = 0; k <= sizeof(junk); k++) {
			pc_at = k;
			pc_assert(pc_run(parse_udp, junk, k, NULL, NULL) != SOCKS_MORE);
		}
	}
}

static void test_frag_reported(void **state)
{
	uint8_t wire[] = {0, 0, 0, 0x01, 1, 2, 3, 4, 0, 53, 'x'};

	pc_case = "frag";
	for (unsigned f = 0; f <= 0xff; f++) {
		size_t used;

		wire[2] = (uint8_t)f;
		pc_assert(pc_run(parse_udp, wire, sizeof(wire), &used, NULL) == SOCKS_DONE);
		assert_int_equal(hdr.frag, f);
		assert_int_equal(hdr.hdrlen, 10);
	}
}

static void test_rsv_ignored(void **state)
{
	static const uint8_t wire[] = {0xff, 0x7f, 0, 0x01, 1, 2, 3, 4, 0, 53};

	pc_case = "rsv";
	pc_check_done(parse_udp, wire, sizeof(wire));
}

static void test_bad_addresses(void **state)
{
	pc_case = "atyp";
	pc_expect_bad_str(parse_udp, "\x00\x00\x00\x02\x01\x02\x03\x04\x00\x35",
			  SOCKS5_REP_ATYP_NOT_SUPPORTED);
	pc_case = "domain";
	pc_expect_bad_str(parse_udp, "\x00\x00\x00\x03\x00\x00\x35", SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad_str(parse_udp, "\x00\x00\x00\x03\x02\x00" "a" "\x00\x35",
			  SOCKS5_REP_GENERAL_FAILURE);
	pc_case = "short ipv6";
	pc_expect_bad_str(parse_udp, "\x00\x00\x00\x04\x00\x00\x00\x00", SOCKS5_REP_GENERAL_FAILURE);
}

static void test_writer_refuses_invalid(void **state)
{
	struct socks_addr a = {.atyp = 0x09};
	uint8_t buf[SOCKS_UDP_HDR_MAX];

	assert_int_equal(socks_udp_write(buf, sizeof(buf), 0, &a), 0);
	a.atyp = SOCKS_ATYP_DOMAIN;
	assert_int_equal(socks_udp_write(buf, sizeof(buf), 0, &a), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases_fields_roundtrip),
		cmocka_unit_test(test_cuts_never_more),
		cmocka_unit_test(test_trailing_and_corrupt),
		cmocka_unit_test(test_never_more_on_junk),
		cmocka_unit_test(test_frag_reported),
		cmocka_unit_test(test_rsv_ignored),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_writer_refuses_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
