/*
 * test_proto_n2.c - N2, the control side <-> relay proxy messages
 * (src/proto/n2.c, docs/protocol.md "N2"). Every message type is written,
 * parsed back field for field, and put through every cut point, byte-wise
 * arrival, trailing bytes and corruption (proto_check.h); then the BAD
 * cases one by one.
 */
#include <string.h>

#include "proto/n2.h"
#include "proto_check.h"

static struct n2_msg got;

static enum socks_res parse_n2(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return n2_parse(&got, p, n, used, err);
}

static size_t write_n2(uint8_t *dst, size_t cap, const void *arg)
{
	return n2_write(dst, cap, arg);
}

static struct n2_addr v4(uint8_t last, uint16_t port)
{
	struct n2_addr a = { .atyp = SOCKS_ATYP_IPV4, .ip = { 10, 0, 0, last }, .port = port };

	return a;
}

static struct n2_addr v6(uint8_t last, uint16_t port)
{
	struct n2_addr a = { .atyp = SOCKS_ATYP_IPV6, .ip = { 0xfd, 0x77 }, .port = port };

	a.ip[15] = last;
	return a;
}

static bool addr_eq(const struct n2_addr *a, const struct n2_addr *b)
{
	return a->atyp == b->atyp && a->port == b->port && memcmp(a->ip, b->ip, 16) == 0;
}

static bool open_eq(const struct n2_open *a, const struct n2_open *b)
{
	return a->ptcl == b->ptcl && a->flags == b->flags && a->idle_ms == b->idle_ms &&
	       addr_eq(&a->src, &b->src) && addr_eq(&a->dst, &b->dst) && addr_eq(&a->bnd, &b->bnd);
}

static const struct n2_counters some = { 1, 0x1122334455667788ULL, 3, 0xFFFFFFFFFFFFFFFFULL };

/* Writes m, checks the writer's contract, parses it back, compares. */
static void roundtrip(const struct n2_msg *m, size_t expect_len)
{
	uint8_t buf[N2_MSG_MAX];
	size_t n = n2_write(buf, sizeof(buf), m), used = 0;

	pc_case = n2_type_name(m->type);
	pc_assert(n == expect_len);
	pc_check_writer(write_n2, m, buf, n);
	pc_check_stream(parse_n2, buf, n);
	memset(&got, 0xAA, sizeof(got));
	pc_assert(pc_run(parse_n2, buf, n, &used, NULL) == SOCKS_DONE && used == n);
	pc_assert(got.type == m->type && got.id == m->id);
}

static void test_hello(void **state)
{
	struct n2_msg m = { .type = N2_HELLO, .id = 0, .u.version = N2_VERSION };
	static const uint8_t wire[] = { 0x01, 0, 0, 0, 0, 0, 1, 0x01 };
	uint8_t buf[16];

	pc_assert(n2_write(buf, sizeof(buf), &m) == sizeof(wire));
	pc_assert(memcmp(buf, wire, sizeof(wire)) == 0);
	roundtrip(&m, sizeof(wire));
	pc_assert(got.u.version == N2_VERSION);
}

static void test_open(void **state)
{
	struct n2_msg m = { .type = N2_OPEN, .id = 0x01020304 };

	m.u.open = (struct n2_open){ 17,          N2_OPEN_END_ON_FIN, 300000,
				     v4(2, 5000), v4(9, 53),          v4(1, 0) };
	roundtrip(&m, N2_HDR_LEN + 6 + 3 * 7);
	pc_assert(open_eq(&got.u.open, &m.u.open));
	m.u.open = (struct n2_open){ 6, 0, 0, v6(2, 65535), v6(9, 80), v6(1, 40000) };
	roundtrip(&m, N2_HDR_LEN + 6 + 3 * 19);
	pc_assert(open_eq(&got.u.open, &m.u.open));
	/* families may differ between the three: the relay decides */
	m.u.open.dst = v4(9, 80);
	roundtrip(&m, N2_HDR_LEN + 6 + 2 * 19 + 7);
	pc_assert(open_eq(&got.u.open, &m.u.open));
}

static void test_opened(void **state)
{
	struct n2_msg m = { .type = N2_OPENED, .id = 7 };

	m.u.opened.rep = 0;
	m.u.opened.bnd = v4(1, 40000);
	roundtrip(&m, N2_HDR_LEN + 1 + 7);
	pc_assert(got.u.opened.rep == 0 && got.u.opened.bnd.port == 40000);
	m.u.opened.rep = SOCKS5_REP_PTCL_NOT_SUPPORTED;
	m.u.opened.bnd = v6(1, 0);
	roundtrip(&m, N2_HDR_LEN + 1 + 19);
	pc_assert(got.u.opened.rep == 9 && got.u.opened.bnd.ip[15] == 1);
}

static void test_empty_bodies(void **state)
{
	struct n2_msg m = { .type = N2_COUNTERS, .id = 0xFFFFFFFF };

	roundtrip(&m, N2_HDR_LEN);
	m.type = N2_CLOSE;
	roundtrip(&m, N2_HDR_LEN);
}

static void test_counters(void **state)
{
	struct n2_msg m = { .type = N2_COUNTS, .id = 9 };

	m.u.counts = some;
	roundtrip(&m, N2_HDR_LEN + 32);
	pc_assert(memcmp(&got.u.counts, &some, sizeof(some)) == 0);
	m.type = N2_CLOSED;
	roundtrip(&m, N2_HDR_LEN + 32);
	pc_assert(memcmp(&got.u.counts, &some, sizeof(some)) == 0);
}

static void test_ended(void **state)
{
	struct n2_msg m = { .type = N2_ENDED, .id = 9 };

	strcpy(m.u.ended.why, "fin");
	m.u.ended.c = some;
	roundtrip(&m, N2_HDR_LEN + 1 + 3 + 32);
	pc_assert(strcmp(got.u.ended.why, "fin") == 0);
	strcpy(m.u.ended.why, "target refused");
	roundtrip(&m, N2_HDR_LEN + 1 + 14 + 32);
	pc_assert(strcmp(got.u.ended.why, "target refused") == 0);
	pc_assert(memcmp(&got.u.ended.c, &some, sizeof(some)) == 0);
	memset(m.u.ended.why, 'x', N2_WHY_MAX);
	m.u.ended.why[N2_WHY_MAX] = '\0';
	roundtrip(&m, N2_HDR_LEN + 1 + N2_WHY_MAX + 32);
	pc_assert(strlen(got.u.ended.why) == N2_WHY_MAX);
}

/* The writer refuses what the parser would refuse. */
static void test_writer_refuses(void **state)
{
	uint8_t buf[N2_MSG_MAX];
	struct n2_msg m = { .type = N2_ENDED, .id = 1 };

	pc_assert(n2_write(buf, sizeof(buf), &m) == 0); /* empty why */
	strcpy(m.u.ended.why, "tab\there");
	pc_assert(n2_write(buf, sizeof(buf), &m) == 0);
	strcpy(m.u.ended.why, "caf\xc3\xa9");
	pc_assert(n2_write(buf, sizeof(buf), &m) == 0);
	m = (struct n2_msg){ .type = N2_CLOSE, .id = 0 };
	pc_assert(n2_write(buf, sizeof(buf), &m) == 0); /* ID 0 is HELLO's */
	m = (struct n2_msg){ .type = N2_HELLO, .id = 3 };
	pc_assert(n2_write(buf, sizeof(buf), &m) == 0);
	m = (struct n2_msg){ .type = 0x09, .id = 3 };
	pc_assert(n2_write(buf, sizeof(buf), &m) == 0);
	m = (struct n2_msg){ .type = N2_OPEN, .id = 3 };
	m.u.open = (struct n2_open){ 17, 0, 0, v4(2, 1), v4(3, 1), v4(4, 1) };
	m.u.open.dst.atyp = SOCKS_ATYP_DOMAIN;
	pc_assert(n2_write(buf, sizeof(buf), &m) == 0);
	m.u.open.dst.atyp = SOCKS_ATYP_IPV4;
	m.u.open.flags = 0x02;
	pc_assert(n2_write(buf, sizeof(buf), &m) == 0);
}

static void test_bad(void **state)
{
	pc_case = "bad";
	/* unknown TYPE: BAD at the first byte */
	pc_expect_bad_str(parse_n2, "\x00", -1);
	pc_expect_bad_str(parse_n2, "\x09", -1);
	pc_expect_bad_str(parse_n2, "\xff", -1);
	/* HELLO with an ID, another message with ID 0 */
	pc_expect_bad_str(parse_n2, "\x01\x00\x00\x00\x01\x00\x01\x01", -1);
	pc_expect_bad_str(parse_n2, "\x06\x00\x00\x00\x00\x00\x00", -1);
	/* LEN over N2_BODY_MAX: BAD before the body arrives */
	pc_expect_bad_str(parse_n2, "\x06\x00\x00\x00\x01\x00\x81", -1);
	pc_expect_bad_str(parse_n2, "\x06\x00\x00\x00\x01\xff\xff", -1);
	/* body of the wrong length */
	pc_expect_bad_str(parse_n2, "\x06\x00\x00\x00\x01\x00\x01\x00", -1);
	pc_expect_bad_str(parse_n2, "\x01\x00\x00\x00\x00\x00\x00", -1);
	pc_expect_bad_str(parse_n2, "\x01\x00\x00\x00\x00\x00\x02\x01\x01", -1);
	/* OPEN with a domain DST, with a reserved flag */
	pc_expect_bad_str(parse_n2,
			  "\x02\x00\x00\x00\x01\x00\x1b"
			  "\x11\x00\x00\x00\x00\x00"
			  "\x01\x0a\x00\x00\x02\x13\x88"
			  "\x03\x01\x61\x00\x35\x00\x00"
			  "\x01\x0a\x00\x00\x01\x00\x00",
			  -1);
	pc_expect_bad_str(parse_n2,
			  "\x02\x00\x00\x00\x01\x00\x1b"
			  "\x11\x80\x00\x00\x00\x00"
			  "\x01\x0a\x00\x00\x02\x13\x88"
			  "\x01\x0a\x00\x00\x09\x00\x35"
			  "\x01\x0a\x00\x00\x01\x00\x00",
			  -1);
	/* ENDED: empty reason, a control byte, a reason longer than its body */
	pc_expect_bad_str(parse_n2,
			  "\x08\x00\x00\x00\x01\x00\x21\x00"
			  "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
			  -1);
	pc_expect_bad_str(parse_n2,
			  "\x08\x00\x00\x00\x01\x00\x22\x01\x1f"
			  "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
			  -1);
	pc_expect_bad_str(parse_n2,
			  "\x08\x00\x00\x00\x01\x00\x03\x05"
			  "ab",
			  -1);
}

/* Names for log lines. */
static void test_names(void **state)
{
	pc_assert(strcmp(n2_type_name(N2_ENDED), "ENDED") == 0);
	pc_assert(strcmp(n2_type_name(0), "unknown") == 0);
	pc_assert(strcmp(n2_type_name(0x42), "unknown") == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),          cmocka_unit_test(test_open),
		cmocka_unit_test(test_opened),         cmocka_unit_test(test_empty_bodies),
		cmocka_unit_test(test_counters),       cmocka_unit_test(test_ended),
		cmocka_unit_test(test_writer_refuses), cmocka_unit_test(test_bad),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
