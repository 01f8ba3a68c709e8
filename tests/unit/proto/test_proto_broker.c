/*
 * test_proto_broker.c - the compartment broker's messages
 * (src/proto/broker.c, docs/compartments.md). Each message is written,
 * parsed back field for field, and put through every cut point, byte-wise
 * arrival, trailing bytes and corruption (proto_check.h); then the BAD
 * cases one by one.
 */
#include <string.h>

#include "proto/broker.h"
#include "proto_check.h"

static struct broker_request rq;
static struct broker_reply rp;

static enum socks_res parse_rq(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return broker_request_parse(&rq, p, n, used, err);
}

static enum socks_res parse_rp(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return broker_reply_parse(&rp, p, n, used, err);
}

static size_t write_rq(uint8_t *dst, size_t cap, const void *arg)
{
	return broker_request_write(dst, cap, arg);
}

static size_t write_rp(uint8_t *dst, size_t cap, const void *arg)
{
	return broker_reply_write(dst, cap, arg);
}

static const uint8_t socket_req[] = { 1, 1, 4, 1, 6, 4, 'a', 'p', 'p', '1', 6,
				      'i', 'n', 's', 'i', 'd', 'e' };
static const uint8_t reload_req[] = { 1, 2 };
static const uint8_t reply_failed[] = { 1, 2, 0, 13 };

static void test_socket_request(void **state)
{
	struct broker_request w = { .op = BROKER_OP_SOCKET, .family = BROKER_FAMILY_INET,
				    .type = BROKER_TYPE_STREAM, .proto = BROKER_PROTO_TCP };
	size_t used = 0;
	struct socks_err err;

	strcpy(w.in, "app1");
	strcpy(w.out, "inside");
	pc_case = "socket";
	pc_check_writer(write_rq, &w, socket_req, sizeof(socket_req));
	pc_assert(broker_request_parse(&rq, socket_req, sizeof(socket_req), &used, &err) ==
		  SOCKS_DONE);
	pc_assert(used == sizeof(socket_req));
	pc_assert(rq.op == w.op && rq.family == w.family && rq.type == w.type &&
		  rq.proto == w.proto && strcmp(rq.in, "app1") == 0 &&
		  strcmp(rq.out, "inside") == 0);
	pc_check_stream(parse_rq, socket_req, sizeof(socket_req));
}

static void test_reload_and_reply(void **state)
{
	struct broker_request w = { .op = BROKER_OP_RELOAD };
	struct broker_reply r = { BROKER_ST_FAILED, 13 };
	size_t used = 0;
	struct socks_err err;

	pc_case = "reload";
	pc_check_writer(write_rq, &w, reload_req, sizeof(reload_req));
	pc_check_stream(parse_rq, reload_req, sizeof(reload_req));
	pc_case = "reply";
	pc_check_writer(write_rp, &r, reply_failed, sizeof(reply_failed));
	pc_assert(broker_reply_parse(&rp, reply_failed, 4, &used, &err) == SOCKS_DONE);
	pc_assert(used == 4 && rp.status == BROKER_ST_FAILED && rp.err == 13);
	pc_check_stream(parse_rp, reply_failed, sizeof(reply_failed));
}

static const uint8_t open_req[] = { 1, 3, 0, 12, '/', 'e', 't', 'c', '/', 's', 't',
				    'p', '/', 'k', 'e', 'y' };

static void test_open(void **state)
{
	struct broker_request w = { .op = BROKER_OP_OPEN };
	size_t used = 0;
	struct socks_err err;
	uint8_t buf[BROKER_REQUEST_MAX];

	strcpy(w.path, "/etc/stp/key");
	pc_case = "open";
	pc_check_writer(write_rq, &w, open_req, sizeof(open_req));
	pc_assert(broker_request_parse(&rq, open_req, sizeof(open_req), &used, &err) ==
		  SOCKS_DONE);
	pc_assert(used == sizeof(open_req) && rq.op == BROKER_OP_OPEN &&
		  strcmp(rq.path, "/etc/stp/key") == 0);
	pc_check_stream(parse_rq, open_req, sizeof(open_req));
	/* The longest path fits BROKER_REQUEST_MAX; one more octet does not. */
	memset(w.path, 'a', BROKER_PATH_MAX);
	w.path[0] = '/';
	w.path[BROKER_PATH_MAX] = '\0';
	pc_assert(broker_request_write(buf, sizeof(buf), &w) == BROKER_REQUEST_MAX);
	pc_assert(broker_request_parse(&rq, buf, BROKER_REQUEST_MAX, &used, &err) == SOCKS_DONE);
	strcpy(w.path, "relative");
	pc_assert(broker_request_write(buf, sizeof(buf), &w) == 0);
}

static const uint8_t listen4_req[] = { 1, 4, 4, 0, 80, 127, 0, 0, 1, 0 };
static const uint8_t listen6_req[] = { 1, 4, 6, 0x04, 0x38, 0, 0, 0, 0, 0, 0, 0, 0,
				       0, 0, 0, 0, 0, 0, 0, 1, 0 };
/* Port 81 in compartment "app1". */
static const uint8_t listen_place_req[] = { 1, 4, 4, 0, 81, 127, 0, 0, 1, 4, 'a', 'p', 'p', '1' };

static void test_listen(void **state)
{
	struct broker_request w = { .op = BROKER_OP_LISTEN, .family = BROKER_FAMILY_INET,
				    .port = 80, .addr = { 127, 0, 0, 1 } };
	size_t used = 0;
	struct socks_err err;

	pc_case = "listen4";
	pc_check_writer(write_rq, &w, listen4_req, sizeof(listen4_req));
	pc_assert(broker_request_parse(&rq, listen4_req, sizeof(listen4_req), &used, &err) ==
		  SOCKS_DONE);
	pc_assert(used == sizeof(listen4_req) && rq.op == BROKER_OP_LISTEN && rq.port == 80 &&
		  rq.family == 4 && memcmp(rq.addr, w.addr, 4) == 0);
	pc_check_stream(parse_rq, listen4_req, sizeof(listen4_req));
	pc_case = "listen6";
	memset(&w.addr, 0, sizeof(w.addr));
	w.addr[15] = 1;
	w.family = BROKER_FAMILY_INET6;
	w.port = 1080;
	pc_check_writer(write_rq, &w, listen6_req, sizeof(listen6_req));
	pc_check_stream(parse_rq, listen6_req, sizeof(listen6_req));
	w.port = 0;
	uint8_t buf[BROKER_REQUEST_MAX];
	pc_assert(broker_request_write(buf, sizeof(buf), &w) == 0);

	/* In a compartment: PLACE after the address. */
	pc_case = "listen_place";
	w = (struct broker_request){ .op = BROKER_OP_LISTEN, .family = BROKER_FAMILY_INET,
				     .port = 81, .addr = { 127, 0, 0, 1 }, .out = "app1" };
	pc_check_writer(write_rq, &w, listen_place_req, sizeof(listen_place_req));
	pc_assert(broker_request_parse(&rq, listen_place_req, sizeof(listen_place_req), &used,
				       &err) == SOCKS_DONE);
	pc_assert(used == sizeof(listen_place_req) && rq.port == 81 &&
		  strcmp(rq.out, "app1") == 0);
	pc_check_stream(parse_rq, listen_place_req, sizeof(listen_place_req));
	/* A bad octet in PLACE, a PLACE.LEN over 63: BAD; the writer refuses them. */
	uint8_t bad[sizeof(listen_place_req)];
	memcpy(bad, listen_place_req, sizeof(bad));
	bad[11] = '/';
	pc_assert(broker_request_parse(&rq, bad, sizeof(bad), &used, &err) == SOCKS_BAD);
	bad[11] = 'p';
	bad[9] = BROKER_NAME_MAX + 1;
	pc_assert(broker_request_parse(&rq, bad, sizeof(bad), &used, &err) == SOCKS_BAD);
	strcpy(w.out, "a/b");
	pc_assert(broker_request_write(buf, sizeof(buf), &w) == 0);
}

static void test_bad(void **state)
{
	pc_case = "bad";
	pc_expect_bad_str(parse_rq, "\x02\x01", -1);                  /* version */
	pc_expect_bad_str(parse_rq, "\x01\x09", -1);                  /* op */
	pc_expect_bad_str(parse_rq, "\x01\x03\x00\x00", -1);          /* empty path */
	pc_expect_bad_str(parse_rq, "\x01\x03\x02\x00", -1);          /* 512 octets */
	pc_expect_bad_str(parse_rq, "\x01\x03\x00\x02" "a/", -1);     /* relative */
	pc_expect_bad_str(parse_rq, "\x01\x03\x00\x03/a\x00", -1);     /* NUL */
	pc_expect_bad_str(parse_rq, "\x01\x04\x05", -1);                /* family */
	pc_expect_bad_str(parse_rq, "\x01\x04\x04\x00\x00", -1);        /* port 0 */
	pc_expect_bad_str(parse_rq, "\x01\x01\x05\x01\x00", -1);      /* family */
	pc_expect_bad_str(parse_rq, "\x01\x01\x04\x03\x00", -1);      /* type */
	pc_expect_bad_str(parse_rq, "\x01\x01\x04\x01\x11", -1);      /* UDP on a stream */
	pc_expect_bad_str(parse_rq, "\x01\x01\x04\x02\x06", -1);      /* TCP on datagrams */
	pc_expect_bad_str(parse_rq, "\x01\x01\x04\x01\x00\x00", -1);  /* empty name */
	pc_expect_bad_str(parse_rq, "\x01\x01\x04\x01\x00\x40", -1);  /* 64 octets */
	pc_expect_bad_str(parse_rq, "\x01\x01\x06\x02\x00\x01/", -1); /* octet */
	pc_expect_bad_str(parse_rq, "\x01\x01\x06\x02\x00\x01" "a\x01\x00", -1);
	pc_expect_bad_str(parse_rp, "\x02\x00\x00\x00", -1);
	pc_expect_bad_str(parse_rp, "\x01\x04\x00\x00", -1);

	/* The writer refuses what the parser would. */
	struct broker_request w = { .op = BROKER_OP_SOCKET, .family = 4, .type = 1 };
	uint8_t buf[BROKER_REQUEST_MAX];
	strcpy(w.in, "a b");
	strcpy(w.out, "x");
	pc_assert(broker_request_write(buf, sizeof(buf), &w) == 0);
	strcpy(w.in, "a");
	w.proto = 17;
	pc_assert(broker_request_write(buf, sizeof(buf), &w) == 0);
	struct broker_reply r = { 9, 0 };
	pc_assert(broker_reply_write(buf, sizeof(buf), &r) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket_request),
		cmocka_unit_test(test_reload_and_reply),
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
