/*
 * test_proto_dnsq.c - DNS QUERY X'F2' framing (src/proto/dnsq.c): LEN MSG
 * after the request and after the second reply. Every cut, one byte at a
 * time, trailing bytes, every byte corrupted (proto_check.c), the bounds
 * of LEN, and the writer.
 */
#include <string.h>

#include "proto/dnsq.h"
#include "proto_check.h"

static struct dnsq_frame frame;

static enum socks_res parse_query(const uint8_t *p, size_t n, size_t *used,
				  struct socks_err *err)
{
	return dnsq_query_parse(&frame, p, n, used, err);
}

static enum socks_res parse_answer(const uint8_t *p, size_t n, size_t *used,
				   struct socks_err *err)
{
	return dnsq_answer_parse(&frame, p, n, used, err);
}

/* LEN 29, a query for example.com AAAA. */
static const uint8_t QUERY[] = { 0x00, 0x1d, 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
				 7,    'e',  'x',  'a',  'm',  'p',  'l', 'e', 3, 'c', 'o', 'm',
				 0,    0,    0x1c, 0,    1 };

static void test_query_frame(void **state)
{
	size_t used = 0;

	(void)state;
	pc_check_stream(parse_query, QUERY, sizeof(QUERY));
	pc_assert(pc_run(parse_query, QUERY, sizeof(QUERY), &used, NULL) == SOCKS_DONE);
	pc_assert(used == sizeof(QUERY) && frame.off == 2 && frame.len == 29);
	pc_check_stream(parse_answer, QUERY, sizeof(QUERY));
}

struct frame_arg {
	const uint8_t *msg;
	size_t len;
};

static size_t write_frame(uint8_t *dst, size_t cap, const void *arg)
{
	const struct frame_arg *f = arg;
	return dnsq_frame_write(dst, cap, f->msg, f->len);
}

static void test_writer(void **state)
{
	struct frame_arg f = { QUERY + 2, sizeof(QUERY) - 2 };
	uint8_t buf[8];

	(void)state;
	pc_check_writer(write_frame, &f, QUERY, sizeof(QUERY));
	assert_int_equal(dnsq_frame_write(buf, sizeof(buf), QUERY, 0), 0);
}

static void test_bounds(void **state)
{
	static uint8_t big[2 + DNSQ_ANSWER_MAX];
	size_t used = 0;

	(void)state;
	/* shorter than a header: BAD at once, for both */
	pc_expect_bad_str(parse_query, "\x00\x0b", SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad_str(parse_answer, "\x00\x00", SOCKS5_REP_GENERAL_FAILURE);
	/* a query of 1232 is fine, 1233 is not; an answer may be 65535 */
	big[0] = DNSQ_QUERY_MAX >> 8;
	big[1] = DNSQ_QUERY_MAX & 0xFF;
	pc_assert(pc_run(parse_query, big, 2 + DNSQ_QUERY_MAX, &used, NULL) == SOCKS_DONE);
	pc_assert(pc_run(parse_query, big, 1 + DNSQ_QUERY_MAX, &used, NULL) == SOCKS_MORE);
	big[1]++;
	pc_expect_bad(parse_query, big, 2, SOCKS5_REP_GENERAL_FAILURE);
	pc_assert(pc_run(parse_answer, big, 2, &used, NULL) == SOCKS_MORE);
	big[0] = big[1] = 0xFF;
	pc_assert(pc_run(parse_answer, big, sizeof(big), &used, NULL) == SOCKS_DONE);
	pc_assert(used == sizeof(big) && frame.len == DNSQ_ANSWER_MAX);
	pc_assert(pc_run(parse_answer, big, sizeof(big) - 1, &used, NULL) == SOCKS_MORE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_frame),
		cmocka_unit_test(test_writer),
		cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
