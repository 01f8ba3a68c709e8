/*
 * test_proto_proxyproto.c - PROXY protocol v1/v2 (src/proto/proxyproto.c).
 * The hand-written address parsers are checked against glibc's inet_pton.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "proto/proxyproto.h"
#include "proto_check.h"

static struct proxy_hdr hdr;

static enum socks_res parse(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return proxyproto_parse(&hdr, p, n, used, err);
}

#define PP2SIG WC_PP2SIG

static void test_cases_stream(void **state)
{
	assert_int_equal(pc_check_kind(parse, WC_PROXY), 10);
}

static void test_cases_fields(void **state)
{
	for (size_t i = 0; i < WIRE_CASES_N; i++) {
		const struct wire_case *c = &wire_cases[i];

		if (c->kind != WC_PROXY)
			continue;
		pc_case = c->name;
		pc_check_done(parse, c->bytes, c->len);
		pc_assert(hdr.family == (enum proxy_family)c->code && hdr.sport == c->port);
		pc_assert(hdr.local == (c->code == PROXY_FAM_UNSPEC));
	}
}

static void test_v1_values(void **state)
{
	pc_case = "tcp4";
	pc_check_done(parse, (const uint8_t *)"PROXY TCP4 192.168.0.1 10.0.0.255 56324 443\r\n",
		      45);
	assert_false(hdr.local);
	assert_int_equal(hdr.family, PROXY_FAM_INET);
	assert_memory_equal(hdr.src, "\xc0\xa8\x00\x01", 4);
	assert_memory_equal(hdr.dst, "\x0a\x00\x00\xff", 4);
	assert_int_equal(hdr.sport, 56324);
	assert_int_equal(hdr.dport, 443);
	pc_case = "tcp6";
	pc_check_done(parse, (const uint8_t *)"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n",
		      48);
	assert_int_equal(hdr.family, PROXY_FAM_INET6);
	assert_memory_equal(hdr.src, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	assert_memory_equal(hdr.dst, "\0\0\0\0\0\0\0\0\0\0\xff\xff\x0a\0\0\x01", 16);
	assert_int_equal(hdr.sport, 0);
	assert_int_equal(hdr.dport, 65535);
	pc_case = "unknown";
	memset(&hdr, 0x55, sizeof(hdr));
	pc_check_done(parse, (const uint8_t *)"PROXY UNKNOWN whatever\r\n", 24);
	assert_true(hdr.local);
	assert_int_equal(hdr.family, PROXY_FAM_UNSPEC);
	assert_int_equal(hdr.sport, 0);
}

static void test_v2_values(void **state)
{
	static const uint8_t v6[] = PP2SIG "\x21\x21\x00\x24"
				    "\xfe\x80\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
				    "\xfe\x80\0\0\0\0\0\0\0\0\0\0\0\0\0\x02"
				    "\x12\x34\xab\xcd";
	static const uint8_t local[] = PP2SIG "\x20\x31\x00\x02" "xy";

	pc_case = "v6";
	pc_check_done(parse, v6, sizeof(v6) - 1);
	assert_false(hdr.local);
	assert_int_equal(hdr.family, PROXY_FAM_INET6);
	assert_memory_equal(hdr.src, v6 + 16, 16);
	assert_memory_equal(hdr.dst, v6 + 32, 16);
	assert_int_equal(hdr.sport, 0x1234);
	assert_int_equal(hdr.dport, 0xabcd);
	/* LOCAL ignores the family byte, even AF_UNIX, and skips the block. */
	pc_case = "local unix";
	pc_check_done(parse, local, sizeof(local) - 1);
	assert_true(hdr.local);
	assert_int_equal(hdr.family, PROXY_FAM_UNSPEC);
}

/* A stream that is not a PROXY header is BAD at its first wrong byte. */
static void test_signature_early_bad(void **state)
{
	static const char *const v1 = "PROXY ";
	static const uint8_t v2[] = PP2SIG;

	pc_case = "first byte";
	pc_expect_bad_str(parse, "G", -1);
	pc_expect_bad_str(parse, "\x05", -1);
	pc_expect_bad_str(parse, "\x04", -1);
	pc_case = "v1 sig";
	for (size_t i = 1; i < 6; i++) {
		uint8_t b[6];

		memcpy(b, v1, 6);
		b[i] ^= 0x20;
		pc_at = i;
		pc_assert(pc_run(parse, b, i, NULL, NULL) == SOCKS_MORE);
		pc_expect_bad(parse, b, i + 1, -1);
	}
	pc_case = "v2 sig";
	for (size_t i = 1; i < 12; i++) {
		uint8_t b[12];

		memcpy(b, v2, 12);
		b[i] ^= 0x01;
		pc_at = i;
		pc_assert(pc_run(parse, b, i, NULL, NULL) == SOCKS_MORE);
		pc_expect_bad(parse, b, i + 1, -1);
	}
}

static void test_v1_bad(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
		"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
		"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
		"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
		"PROXY TCP6 ::1 :::1 1 2\r\n",
		"PROXY TCP6 1::2::3 ::1 1 2\r\n",
		"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
		"PROXY TCP6 1:2:3:4:5:6:7:8:: ::1 1 2\r\n",
		"PROXY TCP6 12345::1 ::1 1 2\r\n",
		"PROXY TCP6 [::1] ::1 1 2\r\n",
		"PROXY TCP6 ::1%eth0 ::1 1 2\r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"PROXY TCP4\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pc_case = bad[i];
		pc_expect_bad(parse, (const uint8_t *)bad[i], strlen(bad[i]), -1);
	}
	pc_case = "embedded NUL";
	pc_expect_bad_str(parse, "PROXY TCP4 1.2.3.4 5.6.7.8 1\x00 2\r\n", -1);
}

/* 107 bytes is the v1 limit: BAD once 107 bytes hold no complete line. */
static void test_v1_too_long(void **state)
{
	uint8_t line[120];

	memcpy(line, "PROXY UNKNOWN ", 14);
	memset(line + 14, 'a', sizeof(line) - 14);
	pc_case = "long";
	pc_at = 106;
	pc_assert(pc_run(parse, line, 106, NULL, NULL) == SOCKS_MORE);
	pc_expect_bad(parse, line, 107, -1);
	/* CR at 105, LF at 106: exactly 107, fine. */
	line[105] = '\r';
	line[106] = '\n';
	pc_check_done(parse, line, 107);
	/* CR at 106 cannot end a line within 107 bytes. */
	line[105] = 'a';
	line[106] = '\r';
	pc_expect_bad(parse, line, 107, -1);
}

static void test_v2_bad(void **state)
{
	pc_case = "v2 version 1";
	pc_expect_bad_str(parse, PP2SIG "\x11", -1);
	pc_case = "v2 version 3";
	pc_expect_bad_str(parse, PP2SIG "\x31", -1);
	pc_case = "v2 command 2";
	pc_expect_bad_str(parse, PP2SIG "\x22", -1);
	pc_case = "v2 unix";
	pc_expect_bad_str(parse, PP2SIG "\x21\x31", -1);
	pc_case = "v2 unspec transport";
	pc_expect_bad_str(parse, PP2SIG "\x21\x10", -1);
	pc_case = "v2 family 4";
	pc_expect_bad_str(parse, PP2SIG "\x21\x41", -1);
	pc_case = "v2 transport 3";
	pc_expect_bad_str(parse, PP2SIG "\x21\x13", -1);
	pc_case = "v2 short inet";
	pc_expect_bad_str(parse, PP2SIG "\x21\x11\x00\x0b", -1);
	pc_case = "v2 short inet6";
	pc_expect_bad_str(parse, PP2SIG "\x21\x21\x00\x23", -1);
	pc_case = "v2 too long";
	/* 216 + 1024 is the cap: decided from the length field alone. */
	pc_expect_bad_str(parse, PP2SIG "\x21\x11\x04\xd9", -1);
	pc_expect_bad_str(parse, PP2SIG "\x20\x00\xff\xff", -1);
}

static void test_v2_max_len(void **state)
{
	static uint8_t buf[PROXYPROTO_MAX + 4];

	memcpy(buf, PP2SIG "\x21\x11", 14);
	buf[14] = (uint8_t)(PROXYPROTO_V2_LEN_MAX >> 8);
	buf[15] = (uint8_t)PROXYPROTO_V2_LEN_MAX;
	pc_case = "max";
	pc_at = PROXYPROTO_MAX - 1;
	pc_assert(pc_run(parse, buf, PROXYPROTO_MAX - 1, NULL, NULL) == SOCKS_MORE);
	pc_check_done(parse, buf, PROXYPROTO_MAX);
	pc_check_trailing(parse, buf, PROXYPROTO_MAX);
}

/* v1 TCP4/TCP6 address text against inet_pton, over one address string. */
static void pp_compare(const char *text)
{
	char line[160];
	uint8_t ref4[4], ref6[16];
	int ok4 = inet_pton(AF_INET, text, ref4) == 1;
	int ok6 = inet_pton(AF_INET6, text, ref6) == 1;
	size_t used, n;
	enum socks_res r;

	pc_case = text;
	n = (size_t)snprintf(line, sizeof(line), "PROXY TCP4 %s 1.1.1.1 1 2\r\n", text);
	r = pc_run(parse, (const uint8_t *)line, n, &used, NULL);
	pc_assert(r == (ok4 ? SOCKS_DONE : SOCKS_BAD));
	if (ok4)
		pc_assert(memcmp(hdr.src, ref4, 4) == 0);
	n = (size_t)snprintf(line, sizeof(line), "PROXY TCP6 %s ::1 1 2\r\n", text);
	if (n >= PROXYPROTO_V1_MAX)
		return;
	r = pc_run(parse, (const uint8_t *)line, n, &used, NULL);
	pc_assert(r == (ok6 ? SOCKS_DONE : SOCKS_BAD));
	if (ok6)
		pc_assert(memcmp(hdr.src, ref6, 16) == 0);
}

static void test_addresses_vs_inet_pton(void **state)
{
	static const char *const known[] = {
		"0.0.0.0", "255.255.255.255", "1.2.3.4", "01.2.3.4", "1.2.3.04", "1.2.3.256",
		"1.2.3", "1.2.3.4.", ".1.2.3.4", "1..2.3", "1.2.3.4.5", "1234.1.1.1", "0x1.1.1.1",
		"::", "::1", "1::", "1::2", "::ffff:1.2.3.4", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
		"1:2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5:1.2.3.4", "1:2:3:4:5::1.2.3.4",
		"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8::",
		"::1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", ":::", ":1::", "1:::2",
		"1::2::3", ":", "1:", ":1", "0000:0000::0001", "00000::1", "abcd:EF01::", "g::1",
		"fe80::1:2", "1::1.2.3", "1::1.2.3.4.5", "::ffff:256.1.1.1", "::1.2.3.4:5",
		"1.2.3.4::", WC_V6MAX, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
	};
	static const char alphabet[] = "0123456789abcdefABCDEF:::....";
	uint32_t seed = 12345;
	char text[48];

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		pp_compare(known[i]);
	/* Random strings over the characters that matter. */
	for (int round = 0; round < 200000; round++) {
		size_t len;

		seed = seed * 1103515245u + 12345u;
		len = 1 + (seed >> 16) % 40;
		for (size_t k = 0; k < len; k++) {
			seed = seed * 1103515245u + 12345u;
			text[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		text[len] = '\0';
		pp_compare(text);
	}
}

/* Ports: every value, and the text forms around the edges. */
static void test_ports(void **state)
{
	char line[80];

	pc_case = "ports";
	for (unsigned port = 0; port <= 65535; port += 251) {
		size_t n = (size_t)snprintf(line, sizeof(line), "PROXY TCP4 1.1.1.1 2.2.2.2 %u %u\r\n",
					    port, 65535 - port);

		pc_check_done(parse, (const uint8_t *)line, n);
		assert_int_equal(hdr.sport, port);
		assert_int_equal(hdr.dport, 65535 - port);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases_stream),
		cmocka_unit_test(test_cases_fields),
		cmocka_unit_test(test_v1_values),
		cmocka_unit_test(test_v2_values),
		cmocka_unit_test(test_signature_early_bad),
		cmocka_unit_test(test_v1_bad),
		cmocka_unit_test(test_v1_too_long),
		cmocka_unit_test(test_v2_bad),
		cmocka_unit_test(test_v2_max_len),
		cmocka_unit_test(test_addresses_vs_inet_pton),
		cmocka_unit_test(test_ports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
