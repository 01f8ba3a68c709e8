/*
 * test_tlsframe.c - the method X'86' codec (src/ext/tls/tlsframe.c): frame
 * headers and option lists at every cut point, one byte at a time, every
 * bad VER and STATE, round trips. Inputs are exact-size heap copies, so an
 * ASan build catches a read past n.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/tlsframe.h"

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);
	assert_non_null(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

static enum socks_res hdr(const uint8_t *p, size_t n, struct tlsframe_hdr *h, size_t *used,
			  struct socks_err *err)
{
	uint8_t *q = dup_exact(p, n);
	enum socks_res r = tlsframe_hdr_parse(h, q, n, used, err);
	free(q);
	return r;
}

static void test_header_every_state(void **state)
{
	for (uint8_t st = TLSFRAME_HANDSHAKE; st <= TLSFRAME_CLOSING; st++) {
		const uint8_t b[] = { 0x01, st, 0x12, 0x34, 0xAA };
		struct tlsframe_hdr h;
		size_t used = 0;
		assert_int_equal(hdr(b, sizeof(b), &h, &used, NULL), SOCKS_DONE);
		assert_int_equal(used, 4);
		assert_int_equal(h.state, st);
		assert_int_equal(h.len, 0x1234); /* MSB first */
	}
}

static void test_header_cuts(void **state)
{
	const uint8_t b[] = { 0x01, 0x03, 0xFF, 0xFF };
	struct tlsframe_hdr h;
	size_t used;
	for (size_t n = 0; n < sizeof(b); n++)
		assert_int_equal(hdr(b, n, &h, &used, NULL), SOCKS_MORE);
	assert_int_equal(hdr(b, 4, &h, &used, NULL), SOCKS_DONE);
	assert_int_equal(h.len, 65535);
}

static void test_header_bad_version_at_first_byte(void **state)
{
	for (unsigned v = 0; v < 256; v++) {
		if (v == TLSFRAME_VER)
			continue;
		const uint8_t b[] = { (uint8_t)v, 0x01, 0x00, 0x00 };
		struct tlsframe_hdr h;
		struct socks_err err = { 0 };
		size_t used;
		/* known bad from the first byte on: no need to wait */
		for (size_t n = 1; n <= sizeof(b); n++) {
			assert_int_equal(hdr(b, n, &h, &used, &err), SOCKS_BAD);
			assert_non_null(err.why);
		}
	}
}

static void test_header_bad_state(void **state)
{
	for (unsigned st = 0; st < 256; st++) {
		if (st >= TLSFRAME_HANDSHAKE && st <= TLSFRAME_CLOSING)
			continue;
		const uint8_t b[] = { 0x01, (uint8_t)st, 0x00, 0x05 };
		struct tlsframe_hdr h;
		struct socks_err err = { 0 };
		size_t used;
		assert_int_equal(hdr(b, 1, &h, &used, &err), SOCKS_MORE);
		for (size_t n = 2; n <= sizeof(b); n++)
			assert_int_equal(hdr(b, n, &h, &used, &err), SOCKS_BAD);
		assert_non_null(strstr(err.why, "STATE"));
	}
}

static void test_header_roundtrip(void **state)
{
	uint8_t b[4];
	assert_int_equal(tlsframe_hdr_write(b, 3, 1, 0), 0);
	for (unsigned len = 0; len <= 65535; len += 257) {
		struct tlsframe_hdr h;
		size_t used;
		assert_int_equal(tlsframe_hdr_write(b, sizeof(b), TLSFRAME_OPTIONS, (uint16_t)len),
				 4);
		assert_int_equal(hdr(b, 4, &h, &used, NULL), SOCKS_DONE);
		assert_int_equal(h.len, len);
		assert_int_equal(h.state, TLSFRAME_OPTIONS);
	}
}

static void test_options_cuts_and_trailing(void **state)
{
	const uint8_t b[] = { 0x03, 0x01, 0x10, 0x42, 0x05 /* next message */ };
	struct tlsopt_list l;
	size_t used = 0;
	for (size_t n = 0; n < 4; n++) {
		uint8_t *q = dup_exact(b, n);
		assert_int_equal(tlsopt_parse(&l, q, n, &used, NULL), SOCKS_MORE);
		free(q);
	}
	uint8_t *q = dup_exact(b, sizeof(b));
	assert_int_equal(tlsopt_parse(&l, q, sizeof(b), &used, NULL), SOCKS_DONE);
	free(q);
	assert_int_equal(used, 4);
	assert_int_equal(l.n, 3);
	assert_true(tlsopt_has(&l, TLSOPT_SUBAUTH));
	assert_true(tlsopt_has(&l, TLSOPT_UDP_NAKED));
	assert_false(tlsopt_has(&l, 0x05));
}

static void test_options_empty_and_full(void **state)
{
	uint8_t opts[255], b[256];
	struct tlsopt_list l;
	size_t used;
	for (size_t i = 0; i < sizeof(opts); i++)
		opts[i] = (uint8_t)i;
	assert_int_equal(tlsopt_write(b, sizeof(b), opts, 0), 1);
	assert_int_equal(tlsopt_parse(&l, b, 1, &used, NULL), SOCKS_DONE);
	assert_int_equal(l.n, 0);
	assert_false(tlsopt_has(&l, 0));
	assert_int_equal(tlsopt_write(b, sizeof(b), opts, 255), 256);
	assert_int_equal(tlsopt_write(b, 255, opts, 255), 0);
	assert_int_equal(tlsopt_parse(&l, b, 256, &used, NULL), SOCKS_DONE);
	assert_int_equal(used, 256);
	assert_memory_equal(l.opt, opts, 255);
}

static void test_state_names(void **state)
{
	assert_string_equal(tlsframe_state_name(1), "handshake");
	assert_string_equal(tlsframe_state_name(2), "options");
	assert_string_equal(tlsframe_state_name(3), "data");
	assert_string_equal(tlsframe_state_name(4), "closing");
	assert_string_equal(tlsframe_state_name(9), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_every_state),
		cmocka_unit_test(test_header_cuts),
		cmocka_unit_test(test_header_bad_version_at_first_byte),
		cmocka_unit_test(test_header_bad_state),
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_options_cuts_and_trailing),
		cmocka_unit_test(test_options_empty_and_full),
		cmocka_unit_test(test_state_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
