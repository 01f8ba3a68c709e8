/*
 * test_proto_tunnel.c - SETUP_UDP_TUNNEL's messages (src/proto/tunnel.c,
 * docs/protocol.md 5.10): X'20' and X'21' requests, X'21''s reply with and
 * without the DTLS token, and the TLS-transport frames; each cut at every
 * byte, fed one byte at a time, corrupted, and written back.
 */
#include <string.h>

#include "proto/tunnel.h"
#include "proto_check.h"

static struct tunnel_setup ts;
static struct tunnel_relay tr;
static struct tunnel_relay_reply rr;
static uint8_t rr_trans = TUNNEL_TRANS_DTLS;

static enum socks_res parse_ts(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return tunnel_setup_parse(&ts, p, n, used, err);
}

static enum socks_res parse_tr(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return tunnel_relay_parse(&tr, p, n, used, err);
}

static enum socks_res parse_rr(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return tunnel_relay_reply_parse(&rr, rr_trans, p, n, used, err);
}

/* to the remote 192.0.2.1:1443 over DTLS as gwa/secret, far 10.0.0.2:53 */
static const uint8_t setup_up[] = { 5,   0x20, 0, 1,   192, 0,   2, 1,   0x05, 0xa3, 1,
				    1,   1,    3, 'g', 'w', 'a', 6, 's', 'e',  'c',  'r',
				    'e', 't',  1, 10,  0,   0,   2, 0,   53 };
/* to stpd.example:1443 over TLS with the certificate, far [2001:db8::2]:5004 */
static const uint8_t setup_cert[] = {
	5,   0x20, 0,   3,    12,   's', 't', 'p', 'd', '.',  'e', 'x',  'a',  'm',
	'p', 'l',  'e', 0x05, 0xa3, 1,   2,   2,   4,   0x20, 1,   0xd,  0xb8, 0,
	0,   0,    0,   0,    0,    0,   0,   0,   0,   0,    2,   0x13, 0x8c,
};
/* TUNNEL RELAY to 10.0.0.2:53 over DTLS */
static const uint8_t relay[] = { 5, 0x21, 0, 1, 10, 0, 0, 2, 0, 53, 1, 1 };
/* its reply: the DTLS port 198.51.100.1:40000 and the token 0..15 */
static const uint8_t reply_dtls[] = { 5, 0, 0, 1, 198, 51, 100, 1,  0x9c, 0x40, 0,  1,  2,
				      3, 4, 5, 6, 7,   8,  9,   10, 11,   12,   13, 14, 15 };
/* a refusal: no token whatever the transport */
static const uint8_t reply_refused[] = { 5, 2, 0, 1, 0, 0, 0, 0, 0, 0 };

static void test_stream(void **state)
{
	(void)state;
	pc_case = "setup userpass";
	pc_check_stream(parse_ts, setup_up, sizeof(setup_up));
	pc_case = "setup cert";
	pc_check_stream(parse_ts, setup_cert, sizeof(setup_cert));
	pc_case = "relay";
	pc_check_stream(parse_tr, relay, sizeof(relay));
	pc_case = "reply dtls";
	rr_trans = TUNNEL_TRANS_DTLS;
	pc_check_stream(parse_rr, reply_dtls, sizeof(reply_dtls));
	pc_case = "reply refused";
	pc_check_stream(parse_rr, reply_refused, sizeof(reply_refused));
}

/* Every cut short of the whole message is MORE: the RFC 1928 part alone
 * is never enough, and the DTLS reply waits for its whole token. */
static void test_cuts(void **state)
{
	size_t used = 0;
	(void)state;
	for (size_t k = 0; k < sizeof(setup_up); k++) {
		pc_case = "setup cut";
		pc_at = k;
		pc_assert(pc_run(parse_ts, setup_up, k, &used, NULL) == SOCKS_MORE);
	}
	for (size_t k = 0; k < sizeof(relay); k++) {
		pc_case = "relay cut";
		pc_at = k;
		pc_assert(pc_run(parse_tr, relay, k, &used, NULL) == SOCKS_MORE);
	}
	rr_trans = TUNNEL_TRANS_DTLS;
	for (size_t k = 0; k < sizeof(reply_dtls); k++) {
		pc_case = "reply cut";
		pc_at = k;
		pc_assert(pc_run(parse_rr, reply_dtls, k, &used, NULL) == SOCKS_MORE);
	}
	/* the same success reply on TLS has no token: done after BND */
	rr_trans = TUNNEL_TRANS_TLS;
	pc_case = "reply tls";
	pc_assert(pc_run(parse_rr, reply_dtls, sizeof(reply_dtls), &used, NULL) == SOCKS_DONE);
	pc_assert(used == 10 && !rr.has_token);
}

static void test_fields(void **state)
{
	size_t used = 0;
	(void)state;
	pc_case = "setup userpass";
	pc_assert(pc_run(parse_ts, setup_up, sizeof(setup_up), &used, NULL) == SOCKS_DONE);
	pc_assert(used == sizeof(setup_up) && ts.trans == TUNNEL_TRANS_DTLS);
	pc_assert(ts.cred == TUNNEL_CRED_USERPASS && strcmp(ts.user, "gwa") == 0);
	pc_assert(strcmp(ts.pass, "secret") == 0 && ts.ulen == 3 && ts.plen == 6);
	pc_assert(ts.remote.port == 1443 && ts.far.port == 53);
	pc_assert(memcmp(ts.far.u.v4, "\x0a\x00\x00\x02", 4) == 0);
	pc_case = "setup cert";
	pc_assert(pc_run(parse_ts, setup_cert, sizeof(setup_cert), &used, NULL) == SOCKS_DONE);
	pc_assert(ts.trans == TUNNEL_TRANS_TLS && ts.cred == TUNNEL_CRED_CERT);
	pc_assert(strcmp(ts.remote.u.name, "stpd.example") == 0 && ts.user[0] == '\0');
	pc_assert(ts.far.atyp == SOCKS_ATYP_IPV6 && ts.far.port == 5004);
	pc_case = "relay";
	pc_assert(pc_run(parse_tr, relay, sizeof(relay), &used, NULL) == SOCKS_DONE);
	pc_assert(tr.trans == TUNNEL_TRANS_DTLS && tr.far.port == 53);
	pc_case = "reply dtls";
	rr_trans = TUNNEL_TRANS_DTLS;
	pc_assert(pc_run(parse_rr, reply_dtls, sizeof(reply_dtls), &used, NULL) == SOCKS_DONE);
	pc_assert(rr.rep == 0 && rr.has_token && rr.token[15] == 15 && rr.bnd.port == 40000);
	pc_case = "reply refused";
	pc_assert(pc_run(parse_rr, reply_refused, sizeof(reply_refused), &used, NULL) ==
		  SOCKS_DONE);
	pc_assert(rr.rep == SOCKS5_REP_NOT_ALLOWED && !rr.has_token && used == 10);
}

static void test_errors(void **state)
{
	uint8_t b[sizeof(setup_up)];
	(void)state;
	memcpy(b, setup_up, sizeof(b));
	b[0] = 4;
	pc_case = "version";
	pc_expect_bad(parse_ts, b, 1, SOCKS5_REP_GENERAL_FAILURE);
	b[0] = 5;
	b[1] = 0x21;
	pc_case = "not X'20'";
	pc_expect_bad(parse_ts, b, 2, SOCKS5_REP_CMD_NOT_SUPPORTED);
	b[1] = 0x20;
	b[10] = 2;
	pc_case = "tver";
	pc_expect_bad(parse_ts, b, 11, SOCKS5_REP_GENERAL_FAILURE);
	b[10] = 1;
	b[11] = 3;
	pc_case = "trans";
	pc_expect_bad(parse_ts, b, 12, SOCKS5_REP_GENERAL_FAILURE);
	b[11] = 1;
	b[12] = 9;
	pc_case = "cred";
	pc_expect_bad(parse_ts, b, 13, SOCKS5_REP_GENERAL_FAILURE);
	b[12] = 1;
	b[13] = 0;
	pc_case = "empty uname";
	pc_expect_bad(parse_ts, b, 14, SOCKS5_REP_GENERAL_FAILURE);
	b[13] = 3;
	b[17] = 0;
	pc_case = "empty passwd";
	pc_expect_bad(parse_ts, b, 18, SOCKS5_REP_GENERAL_FAILURE);
	b[17] = 6;
	b[24] = 2;
	pc_case = "far atyp";
	pc_expect_bad(parse_ts, b, 25, SOCKS5_REP_ATYP_NOT_SUPPORTED);
	uint8_t r[sizeof(relay)];
	memcpy(r, relay, sizeof(r));
	r[11] = 0;
	pc_case = "relay trans";
	pc_expect_bad(parse_tr, r, sizeof(r), SOCKS5_REP_GENERAL_FAILURE);
}

static size_t write_ts(uint8_t *dst, size_t cap, const void *arg)
{
	return tunnel_setup_write(dst, cap, arg);
}

static size_t write_tr(uint8_t *dst, size_t cap, const void *arg)
{
	return tunnel_relay_write(dst, cap, arg);
}

static size_t write_rr(uint8_t *dst, size_t cap, const void *arg)
{
	return tunnel_relay_reply_write(dst, cap, arg);
}

static void test_writers(void **state)
{
	size_t used = 0;
	(void)state;
	pc_assert(pc_run(parse_ts, setup_up, sizeof(setup_up), &used, NULL) == SOCKS_DONE);
	struct tunnel_setup a = ts;
	pc_case = "write setup userpass";
	pc_check_writer(write_ts, &a, setup_up, sizeof(setup_up));
	pc_assert(pc_run(parse_ts, setup_cert, sizeof(setup_cert), &used, NULL) == SOCKS_DONE);
	a = ts;
	pc_case = "write setup cert";
	pc_check_writer(write_ts, &a, setup_cert, sizeof(setup_cert));
	pc_assert(pc_run(parse_tr, relay, sizeof(relay), &used, NULL) == SOCKS_DONE);
	struct tunnel_relay b = tr;
	pc_case = "write relay";
	pc_check_writer(write_tr, &b, relay, sizeof(relay));
	rr_trans = TUNNEL_TRANS_DTLS;
	pc_assert(pc_run(parse_rr, reply_dtls, sizeof(reply_dtls), &used, NULL) == SOCKS_DONE);
	struct tunnel_relay_reply c = rr;
	pc_case = "write reply";
	pc_check_writer(write_rr, &c, reply_dtls, sizeof(reply_dtls));
}

static void test_frames(void **state)
{
	const uint8_t f[] = { 0, 3, 'a', 'b', 'c', 0, 0, 0xff };
	const uint8_t *d = NULL;
	size_t used = 0, len = 0;
	uint8_t h[2];
	(void)state;
	for (size_t k = 0; k < 5; k++)
		assert_int_equal(tunnel_frame_parse(f, k, &used, &d, &len), SOCKS_MORE);
	assert_int_equal(tunnel_frame_parse(f, sizeof(f), &used, &d, &len), SOCKS_DONE);
	assert_true(used == 5 && len == 3 && d == f + 2);
	/* an empty datagram is a frame too */
	assert_int_equal(tunnel_frame_parse(f + 5, 2, &used, &d, &len), SOCKS_DONE);
	assert_true(used == 2 && len == 0);
	assert_int_equal(tunnel_frame_parse(f + 7, 1, &used, &d, &len), SOCKS_MORE);
	assert_int_equal(tunnel_frame_head(h, 65535), 2);
	assert_true(h[0] == 0xff && h[1] == 0xff);
	assert_int_equal(tunnel_frame_head(h, 65536), 0);
	assert_string_equal(tunnel_trans_name(TUNNEL_TRANS_DTLS), "dtls");
	assert_null(tunnel_trans_name(9));
	assert_string_equal(socks5_rep_name(SOCKS5_REP_TUNNEL_AUTH),
			    "tunnel: the two servers did not authenticate");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream),  cmocka_unit_test(test_cuts),
		cmocka_unit_test(test_fields),  cmocka_unit_test(test_errors),
		cmocka_unit_test(test_writers), cmocka_unit_test(test_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
