/*
 * test_proto_ptcl.c - TRANSPARENT (CMD X'04') requests (src/proto/ptcl.c):
 * the trailer PTCL S.ATYP S.ADDR S.PORT and the whole request, cut at
 * every byte, fed one byte at a time, corrupted, and written back.
 */
#include <string.h>

#include "proto_check.h"

static struct socks_ptcl tr;
static struct socks5_tp_request tpr;

static enum socks_res parse_tr(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return socks_ptcl_parse(&tr, p, n, used, err);
}

static enum socks_res parse_tpr(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return socks5_tp_request_parse(&tpr, p, n, used, err);
}

struct tp_args {
	uint8_t ptcl;
	struct socks_addr dst, src;
};

static size_t write_tr(uint8_t *dst, size_t cap, const void *arg)
{
	const struct tp_args *a = arg;
	return socks_ptcl_write(dst, cap, a->ptcl, &a->src);
}

static size_t write_tpr(uint8_t *dst, size_t cap, const void *arg)
{
	const struct tp_args *a = arg;
	return socks5_tp_request_write(dst, cap, &a->dst, a->ptcl, &a->src);
}

/* UDP to 10.0.0.2:53 from 192.0.2.7:5300 */
static const uint8_t req_v4[] = {
	5, 4, 0, 1, 10, 0, 0, 2, 0, 53, 0x11, 1, 192, 0, 2, 7, 0x14, 0xb4
};
/* TCP to [2001:db8::2]:80 from [2001:db8::7]:40000 */
static const uint8_t req_v6[] = {
	5,  4, 0, 4,    0x20, 1,   0xd,  0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,    0,
	80, 6, 4, 0x20, 1,    0xd, 0xb8, 0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0x9c, 0x40,
};
/* UDP to dns.example:53 from 192.0.2.7:5300 */
static const uint8_t req_name[] = {
	5,   4,   0,   3, 11, 'd',  'n', 's', '.', 'e', 'x', 'a',  'm',
	'p', 'l', 'e', 0, 53, 0x11, 1,   192, 0,   2,   7,   0x14, 0xb4
};
/* a source given by name (stpd answers X'08'; the codec parses it) */
static const uint8_t req_sname[] = { 5,  4,    0, 1, 10,  0,   0,   2,    0,
				     53, 0x11, 3, 3, 'c', 'l', 'i', 0x14, 0xb4 };

static void test_stream(void **state)
{
	(void)state;
	pc_case = "v4";
	pc_check_stream(parse_tpr, req_v4, sizeof(req_v4));
	pc_case = "v6";
	pc_check_stream(parse_tpr, req_v6, sizeof(req_v6));
	pc_case = "name";
	pc_check_stream(parse_tpr, req_name, sizeof(req_name));
	pc_case = "source name";
	pc_check_stream(parse_tpr, req_sname, sizeof(req_sname));
	/* the trailer alone, after the 10-byte IPv4 request part */
	pc_case = "trailer";
	pc_check_stream(parse_tr, req_v4 + 10, sizeof(req_v4) - 10);
}

/* Every cut short of the whole request is MORE, never DONE with a partial
 * trailer (the RFC 1928 part alone is not enough for X'04'). */
static void test_cuts(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(req_v6); k++) {
		size_t used = 0;
		pc_case = "v6 cut";
		pc_at = k;
		pc_assert(pc_run(parse_tpr, req_v6, k, &used, NULL) == SOCKS_MORE);
	}
}

static void test_fields(void **state)
{
	size_t used = 0;
	(void)state;
	pc_case = "v4";
	pc_assert(pc_run(parse_tpr, req_v4, sizeof(req_v4), &used, NULL) == SOCKS_DONE);
	pc_assert(used == sizeof(req_v4) && tpr.has_ptcl && tpr.req.cmd == SOCKS_CMD_TRANSPARENT);
	pc_assert(tpr.ext.ptcl == SOCKS_PTCL_UDP && tpr.ext.src.atyp == SOCKS_ATYP_IPV4);
	pc_assert(tpr.ext.src.port == 5300 && tpr.req.dst.port == 53);
	pc_assert(memcmp(tpr.ext.src.u.v4, "\xc0\x00\x02\x07", 4) == 0);
	pc_case = "v6";
	pc_assert(pc_run(parse_tpr, req_v6, sizeof(req_v6), &used, NULL) == SOCKS_DONE);
	pc_assert(tpr.ext.ptcl == SOCKS_PTCL_TCP && tpr.ext.src.atyp == SOCKS_ATYP_IPV6);
	pc_assert(tpr.ext.src.port == 40000 && tpr.req.dst.port == 80);
	pc_case = "name";
	pc_assert(pc_run(parse_tpr, req_name, sizeof(req_name), &used, NULL) == SOCKS_DONE);
	pc_assert(strcmp(tpr.req.dst.u.name, "dns.example") == 0);
	pc_case = "source name";
	pc_assert(pc_run(parse_tpr, req_sname, sizeof(req_sname), &used, NULL) == SOCKS_DONE);
	pc_assert(tpr.ext.src.atyp == SOCKS_ATYP_DOMAIN && strcmp(tpr.ext.src.u.name, "cli") == 0);
}

/* Only CMD X'04' has the trailer: CONNECT ends after DST.PORT. */
static void test_other_cmd(void **state)
{
	uint8_t conn[sizeof(req_v4)];
	size_t used = 0;
	(void)state;
	memcpy(conn, req_v4, sizeof(conn));
	conn[1] = SOCKS_CMD_CONNECT;
	pc_case = "connect";
	pc_assert(pc_run(parse_tpr, conn, sizeof(conn), &used, NULL) == SOCKS_DONE);
	pc_assert(used == 10 && !tpr.has_ptcl);
}

/* Any PTCL parses (X'09' is the server's answer); an unknown S.ATYP is BAD
 * X'08', an empty source name BAD X'01'. */
static void test_errors(void **state)
{
	uint8_t b[sizeof(req_v4)];
	size_t used = 0;
	(void)state;
	memcpy(b, req_v4, sizeof(b));
	b[10] = 132; /* SCTP */
	pc_case = "sctp";
	pc_assert(pc_run(parse_tpr, b, sizeof(b), &used, NULL) == SOCKS_DONE &&
		  tpr.ext.ptcl == 132);
	b[10] = 0x11;
	b[11] = 2;
	pc_case = "s.atyp 2";
	pc_expect_bad(parse_tpr, b, 12, SOCKS5_REP_ATYP_NOT_SUPPORTED);
	b[11] = 3;
	b[12] = 0;
	pc_case = "empty source name";
	pc_expect_bad(parse_tpr, b, 13, SOCKS5_REP_GENERAL_FAILURE);
}

static void test_writers(void **state)
{
	struct tp_args a = { .ptcl = SOCKS_PTCL_UDP };
	(void)state;
	a.dst.atyp = SOCKS_ATYP_IPV4;
	memcpy(a.dst.u.v4, "\x0a\x00\x00\x02", 4);
	a.dst.port = 53;
	a.src.atyp = SOCKS_ATYP_IPV4;
	memcpy(a.src.u.v4, "\xc0\x00\x02\x07", 4);
	a.src.port = 5300;
	pc_case = "write v4";
	pc_check_writer(write_tpr, &a, req_v4, sizeof(req_v4));
	pc_check_writer(write_tr, &a, req_v4 + 10, sizeof(req_v4) - 10);
	a.dst.atyp = SOCKS_ATYP_DOMAIN;
	a.dst.namelen = 11;
	memcpy(a.dst.u.name, "dns.example", 12);
	pc_case = "write name";
	pc_check_writer(write_tpr, &a, req_name, sizeof(req_name));
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(socks_ptcl_name(6), "tcp");
	assert_string_equal(socks_ptcl_name(17), "udp");
	assert_null(socks_ptcl_name(132));
	assert_string_equal(socks5_rep_name(SOCKS5_REP_PTCL_NOT_SUPPORTED),
			    "PTCL type not supported");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream), cmocka_unit_test(test_cuts),
		cmocka_unit_test(test_fields), cmocka_unit_test(test_other_cmd),
		cmocka_unit_test(test_errors), cmocka_unit_test(test_writers),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
