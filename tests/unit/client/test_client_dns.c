/*
 * test_client_dns.c - the DNS codec behind `stp resolve` (src/cli/cli_dns.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "cli/cli.h"

static void test_query_bytes(void **state)
{
	uint8_t buf[DNS_MSG_MAX];
	const uint8_t want[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
				 3, 'w', 'e', 'b', 3, 's', 't', 'p', 4, 't', 'e', 's', 't', 0,
				 0, 28, 0, 1 };

	assert_int_equal(dns_query_write(buf, sizeof(buf), 0x1234, "web.stp.test", DNS_TYPE_AAAA),
			 sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	/* a trailing dot is the same name */
	assert_int_equal(dns_query_write(buf, sizeof(buf), 0x1234, "web.stp.test.", DNS_TYPE_AAAA),
			 sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void test_query_bad_names(void **state)
{
	uint8_t buf[DNS_MSG_MAX];
	char label[70];

	assert_int_equal(dns_query_write(buf, sizeof(buf), 1, "", DNS_TYPE_A), 0);
	assert_int_equal(dns_query_write(buf, sizeof(buf), 1, ".", DNS_TYPE_A), 0);
	assert_int_equal(dns_query_write(buf, sizeof(buf), 1, "a..b", DNS_TYPE_A), 0);
	memset(label, 'x', 64);
	label[64] = '\0';
	assert_int_equal(dns_query_write(buf, sizeof(buf), 1, label, DNS_TYPE_A), 0);
	label[63] = '\0';
	assert_int_not_equal(dns_query_write(buf, sizeof(buf), 1, label, DNS_TYPE_A), 0);
	assert_int_equal(dns_query_write(buf, 10, 1, "a.b", DNS_TYPE_A), 0);
}

/* A response for both.stp.test with a compressed A and AAAA answer and a
 * CNAME-ish record of another type that must be skipped. */
static const uint8_t RESP[] = {
	0xAB, 0xCD, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0,
	4, 'b', 'o', 't', 'h', 3, 's', 't', 'p', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1,
	/* TXT, to be skipped */
	0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 3, 2, 'h', 'i',
	/* A 127.0.0.1 */
	0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1,
	/* AAAA ::1 */
	0xC0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
};

static void test_response_parse(void **state)
{
	struct dns_answer a;

	assert_int_equal(dns_response_parse(&a, RESP, sizeof(RESP), 0xABCD), 0);
	assert_int_equal(a.rcode, 0);
	assert_int_equal(a.naddr, 2);
	assert_int_equal(a.addr[0].family, AF_INET);
	assert_memory_equal(a.addr[0].addr, "\x7f\0\0\x01", 4);
	assert_int_equal(a.addr[1].family, AF_INET6);
	assert_int_equal(a.addr[1].addr[15], 1);
	/* someone else's id */
	assert_int_equal(dns_response_parse(&a, RESP, sizeof(RESP), 0xABCE), -1);
	/* every truncation is refused, never read past */
	for (size_t n = 0; n < sizeof(RESP); n++) {
		if (dns_response_parse(&a, RESP, n, 0xABCD) != -1)
			fail_msg("accepted %zu of %zu bytes", n, sizeof(RESP));
	}
}

static void test_response_flags(void **state)
{
	struct dns_answer a;
	uint8_t m[sizeof(RESP)];

	memcpy(m, RESP, sizeof(m));
	m[2] &= 0x7F; /* a query, not a response */
	assert_int_equal(dns_response_parse(&a, m, sizeof(m), 0xABCD), -1);
	memcpy(m, RESP, sizeof(m));
	m[2] |= 0x02; /* TC */
	assert_int_equal(dns_response_parse(&a, m, sizeof(m), 0xABCD), -1);
	/* NXDOMAIN with no answers */
	const uint8_t nx[] = { 0, 7, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0,
			       1, 'x', 0, 0, 1, 0, 1 };
	assert_int_equal(dns_response_parse(&a, nx, sizeof(nx), 7), 0);
	assert_int_equal(a.rcode, DNS_RCODE_NXDOMAIN);
	assert_int_equal(a.naddr, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_bytes),
		cmocka_unit_test(test_query_bad_names),
		cmocka_unit_test(test_response_parse),
		cmocka_unit_test(test_response_flags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
