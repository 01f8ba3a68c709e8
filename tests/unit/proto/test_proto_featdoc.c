/*
 * test_proto_featdoc.c - the features document of X'87' / X'F3'
 * (src/proto/featdoc.c): every cut point, byte by byte, trailing bytes and
 * corruption; each malformed entry; forward compatibility (unknown FVER,
 * SCOPE, TYPE); the writer's filter and its truncation at every capacity.
 */
#include <string.h>

#include "proto/featdoc.h"
#include "proto_check.h"

static struct feat_doc doc;

static enum socks_res parse_doc(const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	return feat_doc_parse(&doc, p, n, used, err);
}

/* A document with one entry of each type, in scopes server, method,
 * command, version, as stpd writes them. */
static size_t sample(uint8_t *buf, size_t cap)
{
	static const uint8_t versions[] = { 4, 5 }, methods[] = { 0x87, 0x00 };
	struct feat_writer w;
	feat_writer_init(&w, buf, cap);
	feat_put_codes(&w, FEAT_SCOPE_SERVER, 0, "versions", versions, 2);
	feat_put_codes(&w, FEAT_SCOPE_SERVER, 0, "methods", methods, 2);
	feat_put_uint(&w, FEAT_SCOPE_SERVER, 0, "max-sessions", 10000);
	feat_put_flag(&w, FEAT_SCOPE_METHOD, 0x86, "udp-naked");
	feat_put_text(&w, FEAT_SCOPE_COMMAND, 0x01, "note", "hello world");
	feat_put_uint(&w, FEAT_SCOPE_VERSION, 4, "big", 0x0102030405060708ull);
	return feat_writer_finish(&w);
}

static void test_stream(void **state)
{
	uint8_t buf[512];
	size_t n = sample(buf, sizeof(buf));
	static const uint8_t empty[] = { 0x01, 0x00, 0x00, 0x00 };
	pc_case = "sample";
	pc_check_stream(parse_doc, buf, n);
	pc_case = "empty";
	pc_check_stream(parse_doc, empty, sizeof(empty));
}

static void test_walk(void **state)
{
	uint8_t buf[512];
	size_t n = sample(buf, sizeof(buf)), used = 0, off = 0, count = 0;
	struct feat_entry e;
	pc_case = "walk";
	pc_assert(feat_doc_parse(&doc, buf, n, &used, NULL) == SOCKS_DONE && used == n);
	pc_assert(doc.ver == FEAT_VER && doc.flags == 0 && doc.len == n - FEAT_HDR_LEN);
	while (feat_next(&doc, &off, &e))
		count++;
	assert_int_equal(count, 6);
	assert_true(feat_find(&doc, FEAT_SCOPE_SERVER, 0, "max-sessions", &e));
	assert_int_equal(e.type, FEAT_T_UINT);
	assert_int_equal(e.vlen, 2);
	assert_int_equal(e.uint, 10000);
	assert_true(feat_find(&doc, FEAT_SCOPE_SERVER, 0, "methods", &e));
	assert_int_equal(e.vlen, 2);
	assert_memory_equal(e.value, "\x87\x00", 2);
	assert_true(feat_find(&doc, FEAT_SCOPE_METHOD, 0x86, "udp-naked", &e));
	assert_int_equal(e.type, FEAT_T_FLAG);
	assert_true(feat_find(&doc, FEAT_SCOPE_COMMAND, 1, "note", &e));
	assert_memory_equal(e.value, "hello world", 11);
	assert_true(feat_find(&doc, FEAT_SCOPE_VERSION, 4, "big", &e));
	assert_true(e.uint == 0x0102030405060708ull && e.vlen == 8);
	assert_false(feat_find(&doc, FEAT_SCOPE_SERVER, 0, "absent", &e));
}

/* The exact bytes of one entry, so the layout is pinned by a test. */
static void test_layout(void **state)
{
	uint8_t buf[64];
	struct feat_writer w;
	feat_writer_init(&w, buf, sizeof(buf));
	assert_true(feat_put_uint(&w, FEAT_SCOPE_COMMAND, 0x03, "idle-timeout", 300));
	size_t n = feat_writer_finish(&w);
	static const uint8_t want[] = { 0x01, 0x00, 0x00, 0x13, 0x02, 0x03, 0x01, 0x0c,
					'i',  'd',  'l',  'e',  '-',  't',  'i',  'm',
					'e',  'o',  'u',  't',  0x02, 0x01, 0x2c };
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void test_bad(void **state)
{
	/* LEN over FEAT_DOC_MAX: BAD from the header alone. */
	pc_expect_bad_str(parse_doc, "\x01\x00\x10\x01", 1);
	/* an entry running past LEN */
	pc_expect_bad_str(parse_doc, "\x01\x00\x00\x07\x00\x00\x04\x01x\x00\x00", 1);
	pc_expect_bad_str(parse_doc, "\x01\x00\x00\x03\x00\x00\x04", 1);
	/* NLEN 0, NLEN 33, a name byte outside [a-z0-9-] */
	pc_expect_bad_str(parse_doc, "\x01\x00\x00\x05\x00\x00\x04\x00\x00", 1);
	pc_expect_bad_str(parse_doc,
			  "\x01\x00\x00\x26\x00\x00\x04\x21"
			  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x00",
			  1);
	pc_expect_bad_str(parse_doc, "\x01\x00\x00\x06\x00\x00\x04\x01X\x00", 1);
	pc_expect_bad_str(parse_doc, "\x01\x00\x00\x06\x00\x00\x04\x01_\x00", 1);
	/* UINT of 0 and 9 bytes, FLAG with a value, TEXT with X'7F' and X'0A' */
	pc_expect_bad_str(parse_doc, "\x01\x00\x00\x06\x00\x00\x01\x01x\x00", 1);
	pc_expect_bad_str(parse_doc,
			  "\x01\x00\x00\x0f\x00\x00\x01\x01x\x09"
			  "123456789",
			  1);
	pc_expect_bad_str(parse_doc, "\x01\x00\x00\x07\x00\x00\x04\x01x\x01\x01", 1);
	pc_expect_bad_str(parse_doc, "\x01\x00\x00\x07\x00\x00\x02\x01x\x01\x7f", 1);
	pc_expect_bad_str(parse_doc, "\x01\x00\x00\x07\x00\x00\x02\x01x\x01\x0a", 1);
}

/* Forward compatibility: another FVER is framed by LEN and not looked
 * into; unknown SCOPE and TYPE values are entries like any other. */
static void test_unknown(void **state)
{
	static const uint8_t v2[] = { 0x02, 0xff, 0x00, 0x03, 0xde, 0xad, 0x00 };
	static const uint8_t odd[] = { 0x01, 0x80, 0x00, 0x08, 0x09, 0x07,
				       0x7e, 0x01, 'z',  0x02, 0xff, 0x00 };
	size_t used = 0, off = 0;
	struct feat_entry e;
	pc_case = "fver 2";
	pc_check_stream(parse_doc, v2, sizeof(v2));
	pc_assert(feat_doc_parse(&doc, v2, sizeof(v2), &used, NULL) == SOCKS_DONE);
	pc_assert(doc.ver == 2 && !feat_next(&doc, &off, &e));
	pc_case = "unknown scope and type";
	pc_check_stream(parse_doc, odd, sizeof(odd));
	pc_assert(feat_doc_parse(&doc, odd, sizeof(odd), &used, NULL) == SOCKS_DONE);
	pc_assert(feat_next(&doc, &off, &e) && e.scope == 9 && e.code == 7 && e.type == 0x7e);
	pc_assert(e.vlen == 2 && e.value[0] == 0xff && !feat_next(&doc, &off, &e));
}

/* Every capacity: a well-formed document whose entries are a prefix of
 * the full one, flagged truncated exactly when something was left out. */
static void test_truncation(void **state)
{
	uint8_t full[512], buf[512];
	size_t n_full = sample(full, sizeof(full));
	for (size_t cap = 0; cap <= n_full; cap++) {
		size_t n = sample(buf, cap), used = 0;
		pc_at = cap;
		pc_case = "truncation";
		if (cap < FEAT_HDR_LEN) {
			pc_assert(n == 0);
			continue;
		}
		pc_assert(n <= cap);
		pc_assert(feat_doc_parse(&doc, buf, n, &used, NULL) == SOCKS_DONE && used == n);
		pc_assert(((doc.flags & FEAT_FLAG_TRUNCATED) != 0) == (cap < n_full));
		pc_assert(memcmp(buf + FEAT_HDR_LEN, full + FEAT_HDR_LEN, n - FEAT_HDR_LEN) == 0);
	}
}

/* Entries about a method or command not kept are dropped without a
 * trace; server entries always pass; malformed ones are refused. */
static void test_filter(void **state)
{
	uint8_t buf[256];
	size_t used = 0;
	struct feat_writer w;
	struct feat_entry e;
	feat_writer_init(&w, buf, sizeof(buf));
	feat_writer_keep(&w, FEAT_SCOPE_COMMAND, 0x01);
	assert_true(feat_put_flag(&w, FEAT_SCOPE_COMMAND, 0x02, "dropped"));
	assert_true(feat_put_flag(&w, FEAT_SCOPE_METHOD, 0x86, "dropped"));
	assert_true(feat_put_flag(&w, FEAT_SCOPE_COMMAND, 0x01, "kept"));
	assert_true(feat_put_flag(&w, FEAT_SCOPE_SERVER, 0, "server"));
	assert_false(feat_put_flag(&w, FEAT_SCOPE_SERVER, 0, "Bad"));
	assert_false(feat_put_flag(&w, FEAT_SCOPE_SERVER, 0, ""));
	assert_false(feat_put_text(&w, FEAT_SCOPE_SERVER, 0, "t", "tab\there"));
	size_t n = feat_writer_finish(&w);
	assert_int_equal(feat_doc_parse(&doc, buf, n, &used, NULL), SOCKS_DONE);
	assert_int_equal(doc.flags, 0);
	assert_false(feat_find(&doc, FEAT_SCOPE_COMMAND, 0x02, "dropped", &e));
	assert_false(feat_find(&doc, FEAT_SCOPE_METHOD, 0x86, "dropped", &e));
	assert_true(feat_find(&doc, FEAT_SCOPE_COMMAND, 0x01, "kept", &e));
	assert_true(feat_find(&doc, FEAT_SCOPE_SERVER, 0, "server", &e));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream),  cmocka_unit_test(test_walk),
		cmocka_unit_test(test_layout),  cmocka_unit_test(test_bad),
		cmocka_unit_test(test_unknown), cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
