/*
 * test_proto_gssframe.c - the method X'01' codec (src/proto/gssframe.c,
 * RFC 1961 framing): every MTYP at every cut point and one byte at a time,
 * trailing bytes left alone, every byte corrupted, every bad VER and MTYP
 * refused at the first byte that shows it, the two-byte abort, round trips
 * through the writers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/gssframe.h"
#include "proto_check.h"

static struct gssframe frame;

static enum socks_res parse(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return gssframe_parse(&frame, p, n, used, err);
}

static void test_every_mtyp_stream(void **state)
{
	static const uint8_t tok[] = { 0x60, 0x81, 0x05, 0x06, 0x09, 0x2a };
	for (uint8_t m = GSSFRAME_AUTH; m <= GSSFRAME_DATA; m++) {
		uint8_t b[GSSFRAME_HDR_LEN + sizeof(tok)];
		assert_int_equal(gssframe_hdr_write(b, sizeof(b), m, sizeof(tok)), 4);
		memcpy(b + 4, tok, sizeof(tok));
		pc_check_stream(parse, b, sizeof(b));
		size_t used = 0;
		assert_int_equal(parse(b, sizeof(b), &used, NULL), SOCKS_DONE);
		assert_int_equal(used, sizeof(b));
		assert_int_equal(frame.mtyp, m);
		assert_int_equal(frame.len, sizeof(tok));
		assert_ptr_equal(frame.token, b + 4);
	}
}

static void test_empty_token(void **state)
{
	const uint8_t b[] = { 0x01, 0x01, 0x00, 0x00 };
	pc_check_stream(parse, b, sizeof(b));
	size_t used = 0;
	assert_int_equal(parse(b, sizeof(b), &used, NULL), SOCKS_DONE);
	assert_int_equal(frame.len, 0);
	assert_int_equal(used, 4);
}

/* LEN MSB first, up to 65535: every prefix of a maximal frame is MORE. */
static void test_max_len(void **state)
{
	uint8_t *b = calloc(1, GSSFRAME_MAX);
	assert_non_null(b);
	assert_int_equal(gssframe_hdr_write(b, GSSFRAME_MAX, GSSFRAME_DATA, 65535), 4);
	assert_memory_equal(b, "\x01\x03\xff\xff", 4);
	size_t used;
	for (size_t n = 0; n < GSSFRAME_MAX; n += 997)
		assert_int_equal(parse(b, n, &used, NULL), SOCKS_MORE);
	assert_int_equal(parse(b, GSSFRAME_MAX - 1, &used, NULL), SOCKS_MORE);
	assert_int_equal(parse(b, GSSFRAME_MAX, &used, NULL), SOCKS_DONE);
	assert_int_equal(frame.len, 65535);
	assert_int_equal(used, GSSFRAME_MAX);
	free(b);
}

static void test_abort(void **state)
{
	uint8_t b[2];
	assert_int_equal(gssframe_abort_write(b, sizeof(b)), 2);
	assert_memory_equal(b, "\x01\xff", 2);
	assert_int_equal(gssframe_abort_write(b, 1), 0);
	pc_check_stream(parse, b, sizeof(b));
	size_t used = 0;
	assert_int_equal(parse(b, 2, &used, NULL), SOCKS_DONE);
	assert_int_equal(used, 2);
	assert_int_equal(frame.mtyp, GSSFRAME_ABORT);
	assert_null(frame.token);
	/* the abort has no header form */
	assert_int_equal(gssframe_hdr_write(b, sizeof(b), GSSFRAME_ABORT, 0), 0);
}

static void test_bad_ver_at_first_byte(void **state)
{
	for (unsigned v = 0; v < 256; v++) {
		if (v == GSSFRAME_VER)
			continue;
		const uint8_t b[] = { (uint8_t)v, 0x01, 0x00, 0x00 };
		for (size_t n = 1; n <= sizeof(b); n++)
			pc_expect_bad(parse, b, n, SOCKS5_REP_GENERAL_FAILURE);
	}
}

static void test_bad_mtyp_at_second_byte(void **state)
{
	for (unsigned m = 0; m < 256; m++) {
		if ((m >= GSSFRAME_AUTH && m <= GSSFRAME_DATA) || m == GSSFRAME_ABORT)
			continue;
		const uint8_t b[] = { 0x01, (uint8_t)m, 0x00, 0x01, 0x00 };
		for (size_t n = 2; n <= sizeof(b); n++)
			pc_expect_bad(parse, b, n, SOCKS5_REP_GENERAL_FAILURE);
	}
}

static size_t write_hdr(uint8_t *dst, size_t cap, const void *arg)
{
	(void)arg;
	return gssframe_hdr_write(dst, cap, GSSFRAME_PROT, 0x1234);
}

static void test_writer(void **state)
{
	pc_check_writer(write_hdr, NULL, (const uint8_t *)"\x01\x02\x12\x34", 4);
}

static void test_names(void **state)
{
	assert_string_equal(gssframe_mtyp_name(GSSFRAME_AUTH), "authentication");
	assert_string_equal(gssframe_mtyp_name(0x04), "unknown");
	assert_string_equal(gss_level_name(GSS_LEVEL_NONE), "none");
	assert_string_equal(gss_level_name(GSS_LEVEL_CONF), "confidentiality");
	assert_string_equal(gss_level_name(0x04), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_mtyp_stream),
		cmocka_unit_test(test_empty_token),
		cmocka_unit_test(test_max_len),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_bad_ver_at_first_byte),
		cmocka_unit_test(test_bad_mtyp_at_second_byte),
		cmocka_unit_test(test_writer),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
