/*
 * test_proto_autoconf.c - the X'F4' configuration frame and document
 * (src/proto/autoconf.c): every cut point, byte by byte, trailing bytes,
 * every byte corrupted; each malformed line; the writer.
 */
#include <stdio.h>
#include <string.h>

#include "proto/autoconf.h"
#include "proto_check.h"

static const uint8_t *doc;
static size_t doclen;

static enum socks_res parse_frame(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return acdoc_frame_parse(p, n, used, &doc, &doclen, err);
}

#define DOC1                                                                                 \
	"stp-autoconfig 1\nprofile office\nproxy 127.0.0.1:1080\ndirect .intranet.example\n" \
	"direct 10.0.0.0/8\ndns remote\nrefresh 300\nx-future some value\n"

/* A frame of text (LEN from its length) into buf; its length. */
static size_t frame(uint8_t *buf, const char *text)
{
	size_t n = strlen(text);
	buf[0] = (uint8_t)(n >> 8);
	buf[1] = (uint8_t)n;
	memcpy(buf + 2, text, n);
	return n + 2;
}

static void test_valid_stream(void **state)
{
	uint8_t buf[ACDOC_HDR + sizeof(DOC1)];
	size_t n = frame(buf, DOC1), used = 0;
	struct socks_err err;

	(void)state;
	pc_case = "doc1";
	/* Cuts, one byte at a time, trailing bytes, every byte corrupted. */
	pc_check_stream(parse_frame, buf, n);
	assert_int_equal(acdoc_frame_parse(buf, n, &used, &doc, &doclen, &err), SOCKS_DONE);
	assert_int_equal(used, n);
	assert_int_equal(doclen, n - 2);
	assert_ptr_equal(doc, buf + 2);
}

static void test_lines(void **state)
{
	uint8_t buf[ACDOC_HDR + sizeof(DOC1)];
	size_t n = frame(buf, DOC1), used, off = 0, count = 0;
	struct socks_err err;
	struct acdoc_line l;

	(void)state;
	assert_int_equal(acdoc_frame_parse(buf, n, &used, &doc, &doclen, &err), SOCKS_DONE);
	while (acdoc_next(doc, doclen, &off, &l)) {
		if (count == 0)
			assert_true(acdoc_key_is(&l, "stp-autoconfig"));
		if (count == 3) {
			assert_true(acdoc_key_is(&l, "direct"));
			assert_int_equal(l.value_len, strlen(".intranet.example"));
			assert_memory_equal(l.value, ".intranet.example", l.value_len);
		}
		if (count == 7) /* an unknown key is a line like any other */
			assert_memory_equal(l.value, "some value", l.value_len);
		count++;
	}
	assert_int_equal(count, 8);
	assert_int_equal(off, doclen);
}

static void expect_bad_doc(const char *text)
{
	uint8_t buf[ACDOC_HDR + 512];
	size_t n = frame(buf, text);

	pc_case = text;
	pc_expect_bad(parse_frame, buf, n, SOCKS5_REP_GENERAL_FAILURE);
	struct socks_err err;
	assert_int_equal(acdoc_check((const uint8_t *)text, strlen(text), &err), SOCKS_BAD);
}

static void test_bad_docs(void **state)
{
	(void)state;
	expect_bad_doc("stp-autoconfig 2\n"); /* another version */
	expect_bad_doc("stp-autoconfig 01\n");
	expect_bad_doc("stp-autoconfig 1x\n");
	expect_bad_doc("proxy 127.0.0.1:1080\n");       /* no version line first */
	expect_bad_doc("stp-autoconfig 1");             /* no LF at the end */
	expect_bad_doc("stp-autoconfig 1\r\n");         /* CR is not a value byte */
	expect_bad_doc("stp-autoconfig 1\n\n");         /* empty line */
	expect_bad_doc("stp-autoconfig 1\nProxy x\n");  /* upper case key */
	expect_bad_doc("stp-autoconfig 1\nproxy\n");    /* no value */
	expect_bad_doc("stp-autoconfig 1\nproxy \n");   /* empty value */
	expect_bad_doc("stp-autoconfig 1\nproxy  x\n"); /* value starts with a space */
	expect_bad_doc("stp-autoconfig 1\nproxy\tx\n");
	expect_bad_doc("stp-autoconfig 1\nproxy x\x80\n");
	expect_bad_doc("stp-autoconfig 1\nproxy x\0\n");
	expect_bad_doc("stp-autoconfig 1\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa x\n"); /* key of 33 */
}

static void test_bad_len(void **state)
{
	static const uint8_t zero[] = { 0, 0 };
	static const uint8_t big[] = { 0x20, 0x01 }; /* 8193 */

	(void)state;
	pc_case = "len";
	pc_expect_bad(parse_frame, zero, sizeof(zero), SOCKS5_REP_GENERAL_FAILURE);
	pc_expect_bad(parse_frame, big, sizeof(big), SOCKS5_REP_GENERAL_FAILURE);
}

static void test_value_max(void **state)
{
	char text[64 + ACDOC_VALUE_MAX + 4];
	int k = snprintf(text, sizeof(text), "stp-autoconfig 1\nproxy ");

	(void)state;
	memset(text + k, 'a', ACDOC_VALUE_MAX);
	strcpy(text + k + ACDOC_VALUE_MAX, "\n");
	struct socks_err err;
	assert_int_equal(acdoc_check((uint8_t *)text, strlen(text), &err), SOCKS_DONE);
	text[k + ACDOC_VALUE_MAX] = 'a';
	strcpy(text + k + ACDOC_VALUE_MAX + 1, "\n");
	assert_int_equal(acdoc_check((uint8_t *)text, strlen(text), &err), SOCKS_BAD);
}

static size_t write_line(uint8_t *dst, size_t cap, const void *arg)
{
	(void)arg;
	return acdoc_put(dst, cap, 0, "proxy", "127.0.0.1:1080");
}

static void test_writer(void **state)
{
	static const char expect[] = "proxy 127.0.0.1:1080\n";
	uint8_t buf[ACDOC_MAX + 2];

	(void)state;
	pc_case = "writer";
	pc_check_writer(write_line, NULL, (const uint8_t *)expect, sizeof(expect) - 1);
	assert_int_equal(acdoc_put_version(buf, sizeof(buf)), 17);
	assert_memory_equal(buf, "stp-autoconfig 1\n", 17);
	assert_int_equal(acdoc_put(buf, sizeof(buf), 17, "dns", "remote"), 28);
	/* Values and keys the reader would refuse are never written. */
	assert_int_equal(acdoc_put(buf, sizeof(buf), 0, "Proxy", "x"), 0);
	assert_int_equal(acdoc_put(buf, sizeof(buf), 0, "proxy", ""), 0);
	assert_int_equal(acdoc_put(buf, sizeof(buf), 0, "proxy", " x"), 0);
	assert_int_equal(acdoc_put(buf, sizeof(buf), 0, "proxy", "a\nb"), 0);
	assert_int_equal(acdoc_frame_header(buf, 2, 0), 0);
	assert_int_equal(acdoc_frame_header(buf, 2, ACDOC_MAX + 1), 0);
	assert_int_equal(acdoc_frame_header(buf, 1, 10), 0);
	assert_int_equal(acdoc_frame_header(buf, 2, 300), 2);
	assert_int_equal(buf[0], 1);
	assert_int_equal(buf[1], 44);
	/* The document never grows past ACDOC_MAX, whatever cap says. */
	size_t at = acdoc_put_version(buf, sizeof(buf)), last = at;
	char v[ACDOC_VALUE_MAX + 1];
	memset(v, 'v', ACDOC_VALUE_MAX);
	v[ACDOC_VALUE_MAX] = '\0';
	while ((at = acdoc_put(buf, sizeof(buf), at, "direct", v)) != 0)
		last = at;
	assert_true(last <= ACDOC_MAX);
	assert_true(last + 8 + ACDOC_VALUE_MAX > ACDOC_MAX);
	struct socks_err err;
	assert_int_equal(acdoc_check(buf, last, &err), SOCKS_DONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_stream), cmocka_unit_test(test_lines),
		cmocka_unit_test(test_bad_docs),     cmocka_unit_test(test_bad_len),
		cmocka_unit_test(test_value_max),    cmocka_unit_test(test_writer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
