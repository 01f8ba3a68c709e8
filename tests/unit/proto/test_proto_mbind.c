/*
 * test_proto_mbind.c - the bind extension's codec (src/proto/mbind.c):
 * LISTEN X'10' and its reply, the control messages, ACCEPT X'11'. Every
 * message goes through the stream checks (every cut is MORE, byte by byte,
 * trailing bytes, every byte corrupted) and its writer through the cap
 * checks.
 */
#include <string.h>

#include "proto/mbind.h"
#include "proto_check.h"

static struct mbind_request req;
static struct mbind_reply rep;
static struct mbind_msg msg;
static struct mbind_accept acc;

static enum socks_res p_req(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	memset(&req, 0, sizeof(req));
	return mbind_request_parse(&req, p, n, used, err);
}
static enum socks_res p_rep(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	memset(&rep, 0, sizeof(rep));
	return mbind_reply_parse(&rep, p, n, used, err);
}
static enum socks_res p_msg(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	memset(&msg, 0, sizeof(msg));
	return mbind_msg_parse(&msg, p, n, used, err);
}
static enum socks_res p_acc(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	memset(&acc, 0, sizeof(acc));
	return mbind_accept_parse(&acc, p, n, used, err);
}
static size_t w_req(uint8_t *d, size_t cap, const void *a)
{
	return mbind_request_write(d, cap, a);
}
static size_t w_rep(uint8_t *d, size_t cap, const void *a)
{
	return mbind_reply_write(d, cap, a);
}
static size_t w_msg(uint8_t *d, size_t cap, const void *a)
{
	return mbind_msg_write(d, cap, a);
}
static size_t w_acc(uint8_t *d, size_t cap, const void *a)
{
	return mbind_accept_write(d, cap, a);
}

/* Two TCP binds and one UDP bind, peers from 10.0.0.0:0 (any port). */
static const uint8_t
	listen3[] = { 0x05, 0x10, 0x00, 0x01, 10,   0,    0,    0, 0,
		      0,    3,    0x01, 0x00, 0x00, 0x00, 0x80, /* TCP any port, backlog 128 */
		      0x01, 0x1f, 0x90, 0x00, 0x00,             /* TCP 8080, default backlog */
		      0x02, 0x00, 0x35, 0x13, 0x88 /* UDP 53, client port 5000 */ };

static void test_listen(void **state)
{
	size_t used = 0;
	pc_case = "listen3";
	pc_check_stream(p_req, listen3, sizeof(listen3));
	assert_int_equal(p_req(listen3, sizeof(listen3), &used, NULL), SOCKS_DONE);
	assert_int_equal(used, sizeof(listen3));
	assert_int_equal(req.n, 3);
	assert_int_equal(req.dst.atyp, SOCKS_ATYP_IPV4);
	assert_int_equal(req.e[0].kind, MBIND_KIND_TCP);
	assert_int_equal(req.e[0].arg, 128);
	assert_int_equal(req.e[1].port, 8080);
	assert_int_equal(req.e[2].kind, MBIND_KIND_UDP);
	assert_int_equal(req.e[2].port, 53);
	assert_int_equal(req.e[2].arg, 5000);
	struct mbind_request copy = req;
	pc_check_writer(w_req, &copy, listen3, sizeof(listen3));
}

static void test_listen_bad(void **state)
{
	uint8_t b[sizeof(listen3)];
	memcpy(b, listen3, sizeof(b));
	b[10] = 0; /* NBIND 0 */
	pc_expect_bad(p_req, b, sizeof(b), SOCKS5_REP_GENERAL_FAILURE);
	b[10] = MBIND_MAX + 1;
	pc_expect_bad(p_req, b, sizeof(b), SOCKS5_REP_GENERAL_FAILURE);
	memcpy(b, listen3, sizeof(b));
	b[16] = 0x03; /* unknown KIND */
	pc_expect_bad(p_req, b, 17, SOCKS5_REP_CMD_NOT_SUPPORTED);
	memcpy(b, listen3, sizeof(b));
	b[1] = 0x11;
	pc_expect_bad(p_req, b, sizeof(b), SOCKS5_REP_CMD_NOT_SUPPORTED);
	b[0] = 0x04;
	pc_expect_bad(p_req, b, 1, SOCKS5_REP_GENERAL_FAILURE);
	struct mbind_request empty = { .n = 0 };
	uint8_t out[64];
	assert_int_equal(mbind_request_write(out, sizeof(out), &empty), 0);
}

/* Success: first bind 192.0.2.1:40000; TCP then UDP with its relay. */
static const uint8_t reply2[] = { 0x05, 0x00, 0x00, 0x01, 192,  0,    2,    1,    0x9c, 0x40,
				  2,    0x01, 0x01, 192,  0,    2,    1,    0x9c, 0x40, 0x02,
				  0x01, 192,  0,    2,    1,    0x00, 0x35, 0x04, 0,    0,
				  0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
				  0,    0,    0,    1,    0x9c, 0x41 };

static void test_reply(void **state)
{
	size_t used = 0;
	pc_case = "reply2";
	pc_check_stream(p_rep, reply2, sizeof(reply2));
	assert_int_equal(p_rep(reply2, sizeof(reply2), &used, NULL), SOCKS_DONE);
	assert_int_equal(rep.n, 2);
	assert_int_equal(rep.b[1].kind, MBIND_KIND_UDP);
	assert_int_equal(rep.b[1].bnd.port, 53);
	assert_int_equal(rep.b[1].relay.atyp, SOCKS_ATYP_IPV6);
	assert_int_equal(rep.b[1].relay.port, 40001);
	struct mbind_reply copy = rep;
	pc_check_writer(w_rep, &copy, reply2, sizeof(reply2));
}

/* A refusal is the plain RFC 1928 form: nothing follows. */
static void test_reply_refused(void **state)
{
	static const uint8_t limit[] = { 0x05, MBIND_REP_LIMIT, 0x00, 0x01, 0, 0, 0, 0, 0, 0 };
	size_t used = 0;
	pc_case = "refused";
	pc_check_stream(p_rep, limit, sizeof(limit));
	assert_int_equal(p_rep(limit, sizeof(limit), &used, NULL), SOCKS_DONE);
	assert_int_equal(used, sizeof(limit));
	assert_int_equal(rep.rep, MBIND_REP_LIMIT);
	assert_int_equal(rep.n, 0);
	struct mbind_reply copy = rep;
	pc_check_writer(w_rep, &copy, limit, sizeof(limit));
}

static const uint8_t arrival[] = { 0x01, 0x02, 1,   2,   3,   4,   5,   6,   7,   8,    0x03, 9,
				   'p',  'e',  'e', 'r', '.', 't', 'e', 's', 't', 0x12, 0x34 };
static const uint8_t closed[] = { 0x02, 1, 2, 3, 4, 5, 6, 7, 8, SOCKS5_REP_TTL_EXPIRED };
static const uint8_t refuse[] = { 0x03, 8, 7, 6, 5, 4, 3, 2, 1 };

static void test_msgs(void **state)
{
	size_t used = 0;
	struct mbind_msg copy;

	pc_case = "arrival";
	pc_check_stream(p_msg, arrival, sizeof(arrival));
	assert_int_equal(p_msg(arrival, sizeof(arrival), &used, NULL), SOCKS_DONE);
	assert_int_equal(msg.bind, 2);
	assert_int_equal(msg.peer.port, 0x1234);
	assert_string_equal(msg.peer.u.name, "peer.test");
	copy = msg;
	pc_check_writer(w_msg, &copy, arrival, sizeof(arrival));

	pc_case = "closed";
	pc_check_stream(p_msg, closed, sizeof(closed));
	assert_int_equal(p_msg(closed, sizeof(closed), &used, NULL), SOCKS_DONE);
	assert_int_equal(msg.rep, SOCKS5_REP_TTL_EXPIRED);
	copy = msg;
	pc_check_writer(w_msg, &copy, closed, sizeof(closed));

	pc_case = "refuse";
	pc_check_stream(p_msg, refuse, sizeof(refuse));
	assert_int_equal(p_msg(refuse, sizeof(refuse), &used, NULL), SOCKS_DONE);
	assert_memory_equal(msg.id, refuse + 1, MBIND_ID_LEN);
	copy = msg;
	pc_check_writer(w_msg, &copy, refuse, sizeof(refuse));

	static const uint8_t junk[] = { 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	pc_expect_bad(p_msg, junk, sizeof(junk), SOCKS5_REP_CMD_NOT_SUPPORTED);
}

static const uint8_t accept4[] = { 0x05, 0x11, 0x00, 0x01, 198,  51,   100,  7,    0xc3,
				   0x50, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03 };

static void test_accept(void **state)
{
	size_t used = 0;
	pc_case = "accept";
	pc_check_stream(p_acc, accept4, sizeof(accept4));
	assert_int_equal(p_acc(accept4, sizeof(accept4), &used, NULL), SOCKS_DONE);
	assert_int_equal(acc.peer.port, 50000);
	assert_memory_equal(acc.id, accept4 + 10, MBIND_ID_LEN);
	struct mbind_accept copy = acc;
	pc_check_writer(w_acc, &copy, accept4, sizeof(accept4));
	uint8_t b[sizeof(accept4)];
	memcpy(b, accept4, sizeof(b));
	b[1] = 0x10;
	pc_expect_bad(p_acc, b, sizeof(b), SOCKS5_REP_CMD_NOT_SUPPORTED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen), cmocka_unit_test(test_listen_bad),
		cmocka_unit_test(test_reply),  cmocka_unit_test(test_reply_refused),
		cmocka_unit_test(test_msgs),   cmocka_unit_test(test_accept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
