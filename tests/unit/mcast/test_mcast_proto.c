/*
 * test_mcast_proto.c - the multicast extension's codec (src/proto/mcast.c):
 * requests with and without a source filter, replies with LEN|KEY, the KEY
 * block and the datagram headers. Stream parsers go through every cut,
 * one byte at a time, trailing bytes and every byte corrupted.
 */
#include <string.h>

#include "proto/mcast.h"
#include "proto_check.h"

static struct mcast_request req;
static struct mcast_reply rep;
static uint8_t rep_cmd;

static enum socks_res parse_req(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return mcast_request_parse(&req, p, n, used, err);
}

static enum socks_res parse_rep(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return mcast_reply_parse(&rep, rep_cmd, p, n, used, err);
}

static size_t write_req(uint8_t *dst, size_t cap, const void *arg)
{
	return mcast_request_write(dst, cap, arg);
}

/* JOIN 239.1.2.3:5000, plain. */
static const uint8_t join4[] = { 5, 0x05, 0, 1, 239, 1, 2, 3, 0x13, 0x88 };
/* JOIN ff1e::1:5 port 5000 with INCLUDE { 2001:db8::1 }. */
static const uint8_t join6_incl[] = {
	5, 0x85, 0, 4, 0xff, 0x1e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5, 0x13, 0x88,
	1, 1, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
};
/* JOIN 232.1.1.1:9 EXCLUDE { 10.0.0.1, 10.0.0.2 }. */
static const uint8_t join4_excl[] = { 5, 0x85, 0, 1, 232, 1, 1, 1, 0, 9,
				      2, 2, 1, 10, 0, 0, 1, 1, 10, 0, 0, 2 };

static void test_request_plain(void **state)
{
	size_t used = 0;
	pc_case = "join4";
	pc_check_stream(parse_req, join4, sizeof(join4));
	pc_assert(pc_run(parse_req, join4, sizeof(join4), &used, NULL) == SOCKS_DONE);
	pc_assert(used == sizeof(join4) && req.cmd == 0x05 && req.filter.mode == 0);
	pc_assert(req.group.port == 5000 && req.group.u.v4[0] == 239);
	pc_check_writer(write_req, &req, join4, sizeof(join4));
}

static void test_request_filters(void **state)
{
	size_t used = 0;
	pc_case = "join6_incl";
	pc_check_stream(parse_req, join6_incl, sizeof(join6_incl));
	pc_assert(pc_run(parse_req, join6_incl, sizeof(join6_incl), &used, NULL) == SOCKS_DONE);
	pc_assert(req.cmd == MCAST_CMD_JOIN_FILTER && req.filter.mode == MCAST_FMODE_INCLUDE);
	pc_assert(req.filter.nsrc == 1 && req.filter.atyp == SOCKS_ATYP_IPV6);
	pc_assert(req.filter.src[0][0] == 0x20 && req.filter.src[0][15] == 1);
	pc_check_writer(write_req, &req, join6_incl, sizeof(join6_incl));

	pc_case = "join4_excl";
	pc_check_stream(parse_req, join4_excl, sizeof(join4_excl));
	pc_assert(pc_run(parse_req, join4_excl, sizeof(join4_excl), &used, NULL) == SOCKS_DONE);
	pc_assert(req.filter.mode == MCAST_FMODE_EXCLUDE && req.filter.nsrc == 2);
	pc_assert(req.filter.src[1][3] == 2);
	pc_check_writer(write_req, &req, join4_excl, sizeof(join4_excl));
}

static void test_request_bad_filters(void **state)
{
	/* unknown mode */
	static const uint8_t mode[] = { 5, 0x85, 0, 1, 239, 1, 1, 1, 0, 9, 3, 0 };
	/* INCLUDE nothing */
	static const uint8_t empty[] = { 5, 0x85, 0, 1, 239, 1, 1, 1, 0, 9, 1, 0 };
	/* 33 sources */
	static const uint8_t many[] = { 5, 0x85, 0, 1, 239, 1, 1, 1, 0, 9, 1, 33 };
	/* a domain source */
	static const uint8_t dom[] = { 5, 0x85, 0, 1, 239, 1, 1, 1, 0, 9, 1, 1, 3, 1, 'a' };
	/* mixed families */
	static const uint8_t mixed[] = { 5, 0x85, 0, 1, 239, 1, 1, 1, 0, 9, 2, 2, 1, 1, 2, 3, 4,
					 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	pc_case = "bad filters";
	pc_expect_bad(parse_req, mode, sizeof(mode), SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad(parse_req, empty, sizeof(empty), SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad(parse_req, many, sizeof(many), SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad(parse_req, dom, sizeof(dom), SOCKS5_REP_ATYP_NOT_SUPPORTED);
	pc_expect_bad(parse_req, mixed, sizeof(mixed), SOCKS5_REP_GENERAL_FAILURE);
}

static void test_is_group(void **state)
{
	static const uint8_t a224[4] = { 224, 0, 0, 1 }, a239[4] = { 239, 255, 255, 255 };
	static const uint8_t a240[4] = { 240, 0, 0, 1 }, a10[4] = { 10, 0, 0, 1 };
	uint8_t v6[16] = { 0xff, 0x15 };
	assert_true(mcast_addr_is_group(SOCKS_ATYP_IPV4, a224));
	assert_true(mcast_addr_is_group(SOCKS_ATYP_IPV4, a239));
	assert_false(mcast_addr_is_group(SOCKS_ATYP_IPV4, a240));
	assert_false(mcast_addr_is_group(SOCKS_ATYP_IPV4, a10));
	assert_true(mcast_addr_is_group(SOCKS_ATYP_IPV6, v6));
	v6[0] = 0xfe;
	assert_false(mcast_addr_is_group(SOCKS_ATYP_IPV6, v6));
	assert_false(mcast_addr_is_group(SOCKS_ATYP_DOMAIN, a224));
}

static struct mcast_keyblock sample_key(uint8_t flags)
{
	struct mcast_keyblock k = { .suite = MCAST_SUITE_AES256GCM, .flags = flags,
				    .member_id = 0x01020304 };
	for (int i = 0; i < MCAST_KEY_LEN; i++) {
		k.send_key[i] = (uint8_t)(0x10 + i);
		k.recv_key[i] = (uint8_t)(0x80 + i);
	}
	return k;
}

/* Every grant reply round-trips with its key; the exact bytes of one are
 * pinned so the layout cannot drift from docs/mcast.md. */
static void test_reply_with_key(void **state)
{
	static const struct socks_addr in = { .atyp = SOCKS_ATYP_IPV4, .port = 40000,
					      .u.v4 = { 239, 255, 0, 1 } };
	uint8_t buf[MCAST_REPLY_MAX];
	struct mcast_keyblock k = sample_key(MCAST_KEYF_SEND | MCAST_KEYF_RECV);
	size_t n = mcast_reply_write(buf, sizeof(buf), SOCKS_CMD_JOIN_MCAST, 0x00, &in, &k);

	assert_int_equal(n, 10 + 1 + 6 + 64);
	static const uint8_t head[] = { 5, 0, 0, 1, 239, 255, 0, 1, 0x9c, 0x40, 70,
					1, 3, 1, 2, 3, 4, 0x10 };
	assert_memory_equal(buf, head, sizeof(head));
	assert_int_equal(buf[17 + 32], 0x80); /* RECV_KEY after SEND_KEY */
	rep_cmd = SOCKS_CMD_JOIN_MCAST;
	pc_case = "reply+key";
	pc_check_stream(parse_rep, buf, n);
	size_t used;
	pc_assert(pc_run(parse_rep, buf, n, &used, NULL) == SOCKS_DONE && used == n);
	pc_assert(rep.has_key && rep.encrypted && rep.key.member_id == 0x01020304);
	pc_assert(memcmp(rep.key.recv_key, k.recv_key, 32) == 0);

	/* receive only: no SEND_KEY */
	k = sample_key(MCAST_KEYF_RECV);
	n = mcast_reply_write(buf, sizeof(buf), SOCKS_CMD_JOIN_MCAST, 0xB0, &in, &k);
	assert_int_equal(n, 10 + 1 + 6 + 32);
	assert_int_equal(buf[10], 38);
	assert_int_equal(buf[17], 0x80);
	pc_assert(pc_run(parse_rep, buf, n, &used, NULL) == SOCKS_DONE);
	pc_assert(rep.rep == 0xB0 && rep.key.flags == MCAST_KEYF_RECV);

	/* encryption off: LEN 0 */
	n = mcast_reply_write(buf, sizeof(buf), SOCKS_CMD_JOIN_MCAST, 0x00, &in, NULL);
	assert_int_equal(n, 11);
	assert_int_equal(buf[10], 0);
	pc_assert(pc_run(parse_rep, buf, n, &used, NULL) == SOCKS_DONE);
	pc_assert(rep.has_key && !rep.encrypted);
}

static void test_reply_plain_forms(void **state)
{
	static const struct socks_addr g = { .atyp = SOCKS_ATYP_IPV4, .port = 9,
					     .u.v4 = { 239, 1, 1, 1 } };
	uint8_t buf[MCAST_REPLY_MAX];
	size_t used;

	/* LEAVE replies, failures and notices have no LEN. */
	assert_int_equal(mcast_reply_write(buf, sizeof(buf), SOCKS_CMD_LEAVE_MCAST, 0, &g, NULL), 10);
	assert_int_equal(mcast_reply_write(buf, sizeof(buf), SOCKS_CMD_JOIN_MCAST, 0x02, &g, NULL),
			 10);
	assert_int_equal(mcast_reply_write(buf, sizeof(buf), SOCKS_CMD_JOIN_MCAST, 0xB6, &g, NULL),
			 10);
	/* B2 keeps the LEN (0). */
	assert_int_equal(mcast_reply_write(buf, sizeof(buf), SOCKS_CMD_JOIN_MCAST, 0xB2, &g, NULL),
			 11);
	rep_cmd = SOCKS_CMD_JOIN_MCAST;
	pc_assert(pc_run(parse_rep, buf, 11, &used, NULL) == SOCKS_DONE && used == 11);
	pc_assert(rep.rep == 0xB2 && rep.has_key && !rep.encrypted);
	rep_cmd = SOCKS_CMD_LEAVE_MCAST;
	mcast_reply_write(buf, sizeof(buf), SOCKS_CMD_LEAVE_MCAST, MCAST_NOTE_BANDWIDTH, &g, NULL);
	pc_check_stream(parse_rep, buf, 10);
}

/* LEN above the longest KEY block is refused as soon as LEN arrives: with
 * a 255-byte domain address, waiting for the block would need more than
 * MCAST_REPLY_MAX bytes, more than a client's input buffer holds. */
static void test_reply_len_too_big(void **state)
{
	uint8_t buf[MCAST_REPLY_MAX + 255];
	struct socks_err err = { 0, NULL };
	size_t used = 0, n = 0;

	buf[n++] = 5;
	buf[n++] = 0x00;
	buf[n++] = 0;
	buf[n++] = SOCKS_ATYP_DOMAIN;
	buf[n++] = 255;
	memset(buf + n, 'a', 255);
	n += 255;
	buf[n++] = 0x13;
	buf[n++] = 0x88;
	buf[n++] = 255; /* LEN */
	assert_true(n <= MCAST_REPLY_MAX);
	memset(buf + n, 0, 255);
	rep_cmd = SOCKS_CMD_JOIN_MCAST;
	assert_int_equal(mcast_reply_parse(&rep, rep_cmd, buf, n, &used, &err), SOCKS_BAD);
	assert_string_equal(err.why, "KEY block longer than 70 bytes");
	assert_int_equal(err.rep, SOCKS5_REP_GENERAL_FAILURE);
	assert_int_equal(mcast_reply_parse(&rep, rep_cmd, buf, n + 255, &used, &err), SOCKS_BAD);
	/* The largest legal LEN still waits for its block. */
	buf[n - 1] = MCAST_KEYBLOCK_MAX;
	assert_int_equal(mcast_reply_parse(&rep, rep_cmd, buf, n, &used, &err), SOCKS_MORE);
	buf[n - 1] = MCAST_KEYBLOCK_MAX + 1;
	assert_int_equal(mcast_reply_parse(&rep, rep_cmd, buf, n, &used, &err), SOCKS_BAD);
}

static void test_keyblock_bad(void **state)
{
	uint8_t buf[MCAST_KEYBLOCK_MAX];
	struct mcast_keyblock k = sample_key(MCAST_KEYF_SEND), out;
	struct socks_err err;
	size_t n = mcast_keyblock_write(buf, sizeof(buf), &k);

	assert_int_equal(n, 38);
	assert_int_equal(mcast_keyblock_parse(&out, buf, n, &err), SOCKS_DONE);
	assert_int_equal(mcast_keyblock_parse(&out, buf, n - 1, &err), SOCKS_BAD);
	buf[1] = 3; /* flags say two keys, one is there */
	assert_int_equal(mcast_keyblock_parse(&out, buf, n, &err), SOCKS_BAD);
	buf[1] = 1;
	buf[0] = 9; /* unknown suite */
	assert_int_equal(mcast_keyblock_parse(&out, buf, n, &err), SOCKS_BAD);
	k.member_id = 0;
	assert_int_equal(mcast_keyblock_write(buf, sizeof(buf), &k), 0);
	for (size_t cap = 0; cap < 38; cap++)
		assert_int_equal(mcast_keyblock_write(buf, cap, &k), 0);
}

static void test_frames(void **state)
{
	uint8_t buf[64];
	struct mcast_frame f = { .kind = MCAST_KIND_MEMBER, .id = 7, .seq = 0x0102030405060708ull };
	struct mcast_frame g;
	struct socks_err err;

	assert_int_equal(mcast_frame_hdr_write(buf, sizeof(buf), &f), 14);
	static const uint8_t mh[] = { 1, 1, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8 };
	assert_memory_equal(buf, mh, sizeof(mh));
	assert_int_equal(mcast_frame_parse(&g, buf, 14, &err), SOCKS_DONE);
	assert_int_equal(g.id, 7);
	assert_true(g.seq == f.seq);
	for (size_t n = 0; n < 14; n++)
		assert_int_equal(mcast_frame_parse(&g, buf, n, &err), SOCKS_BAD);

	f.kind = MCAST_KIND_RELAY;
	f.id = 0;
	f.src.atyp = SOCKS_ATYP_IPV4;
	memcpy(f.src.u.v4, (uint8_t[]){ 10, 77, 1, 2 }, 4);
	f.src.port = 5001;
	assert_int_equal(mcast_frame_hdr_write(buf, sizeof(buf), &f), 21);
	assert_int_equal(mcast_frame_parse(&g, buf, 21, &err), SOCKS_DONE);
	assert_int_equal(g.hdrlen, 21);
	assert_int_equal(g.src.port, 5001);
	assert_int_equal(g.src.u.v4[3], 2);
	for (size_t n = 0; n < 21; n++)
		assert_int_equal(mcast_frame_parse(&g, buf, n, &err), SOCKS_BAD);
	buf[14] = 3; /* domain source */
	assert_int_equal(mcast_frame_parse(&g, buf, 21, &err), SOCKS_BAD);
	buf[0] = 2;
	assert_int_equal(mcast_frame_parse(&g, buf, 21, &err), SOCKS_BAD);
	for (size_t cap = 0; cap < 21; cap++)
		assert_int_equal(mcast_frame_hdr_write(buf, cap, &f), 0);

	uint8_t nonce[MCAST_NONCE_LEN];
	mcast_nonce(nonce, 0x0102030405060708ull);
	static const uint8_t want[] = { 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8 };
	assert_memory_equal(nonce, want, sizeof(want));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_plain),
		cmocka_unit_test(test_request_filters),
		cmocka_unit_test(test_request_bad_filters),
		cmocka_unit_test(test_is_group),
		cmocka_unit_test(test_reply_with_key),
		cmocka_unit_test(test_reply_plain_forms),
		cmocka_unit_test(test_reply_len_too_big),
		cmocka_unit_test(test_keyblock_bad),
		cmocka_unit_test(test_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
