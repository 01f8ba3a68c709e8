/*
 * test_client_errors.c - the error table (src/client/errors.c): every
 * value has its own text, and the errno mapping docs/client.md promises.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "stp/stp.h"

static void test_every_error_has_distinct_text(void **state)
{
	for (int i = 0; i < STP_ERR_COUNT; i++) {
		const char *t = stp_strerror((enum stp_err)i);
		assert_non_null(t);
		if (strcmp(t, "unknown libstp error") == 0)
			fail_msg("error %d has no text", i);
		for (int k = 0; k < i; k++)
			if (strcmp(t, stp_strerror((enum stp_err)k)) == 0)
				fail_msg("errors %d and %d share '%s'", k, i, t);
	}
	assert_string_equal(stp_strerror(STP_ERR_COUNT), "unknown libstp error");
	assert_string_equal(stp_strerror((enum stp_err)-1), "unknown libstp error");
}

struct map {
	enum stp_err err;
	int errnum;
	int rep;
	const char *text_has;
};

static const struct map maps[] = {
	{ STP_ERR_REP_GENERAL_FAILURE, ECONNABORTED, 1, "(X'01')" },
	{ STP_ERR_REP_NOT_ALLOWED, EACCES, 2, "(X'02')" },
	{ STP_ERR_REP_NET_UNREACHABLE, ENETUNREACH, 3, "(X'03')" },
	{ STP_ERR_REP_HOST_UNREACHABLE, EHOSTUNREACH, 4, "(X'04')" },
	{ STP_ERR_REP_CONN_REFUSED, ECONNREFUSED, 5, "proxy refused: connection refused (X'05')" },
	{ STP_ERR_REP_TTL_EXPIRED, ETIMEDOUT, 6, "(X'06')" },
	{ STP_ERR_REP_CMD_NOT_SUPPORTED, EOPNOTSUPP, 7, "(X'07')" },
	{ STP_ERR_REP_ATYP_NOT_SUPPORTED, EAFNOSUPPORT, 8, "(X'08')" },
	{ STP_ERR_REP_PTCL_NOT_SUPPORTED, EPROTONOSUPPORT, 9, "(X'09')" },
	{ STP_ERR_REP_OTHER, ECONNABORTED, 0, "unassigned" },
	{ STP_ERR_AUTH_FAILED, EACCES, 0, "authentication failed" },
	{ STP_ERR_NO_METHOD, EACCES, 0, "X'FF'" },
	{ STP_ERR_PROXY_UNREACHABLE, ECONNREFUSED, 0, "unreachable" },
	{ STP_ERR_PROXY_CLOSED, ECONNRESET, 0, "closed" },
	{ STP_ERR_TIMEOUT, ETIMEDOUT, 0, "timed out" },
	{ STP_ERR_PROTOCOL, EPROTO, 0, "protocol" },
	{ STP_ERR_SOCKS4_REJECTED, ECONNREFUSED, 0, "91" },
	{ STP_ERR_SOCKS4_NO_IDENTD, EACCES, 0, "92" },
	{ STP_ERR_SOCKS4_IDENT_MISMATCH, EACCES, 0, "93" },
	{ STP_ERR_TARGET_FAMILY, EAFNOSUPPORT, 0, "family" },
	{ STP_ERR_URL_SCHEME, EINVAL, 0, "bad proxy URL" },
	{ STP_ERR_UNSUPPORTED, EOPNOTSUPP, 0, "command" },
	{ STP_OK, 0, 0, "success" },
};

static void test_errno_and_rep_mapping(void **state)
{
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		const struct map *m = &maps[i];
		if (stp_err_errno(m->err) != m->errnum)
			fail_msg("%s: errno %d, want %d", stp_strerror(m->err),
				 stp_err_errno(m->err), m->errnum);
		assert_int_equal(stp_err_rep(m->err), m->rep);
		if (strstr(stp_strerror(m->err), m->text_has) == NULL)
			fail_msg("'%s' lacks '%s'", stp_strerror(m->err), m->text_has);
	}
}

/* Only the nine SOCKS5 reply errors carry a reply code, and nothing maps
 * to errno 0 except success (a failed call must never look like success). */
static void test_rep_only_on_reply_errors(void **state)
{
	for (int i = 0; i < STP_ERR_COUNT; i++) {
		bool is_rep = i >= STP_ERR_REP_GENERAL_FAILURE && i <= STP_ERR_REP_PTCL_NOT_SUPPORTED;
		assert_int_equal(stp_err_rep((enum stp_err)i) != 0, is_rep);
		if (i != STP_OK)
			assert_int_not_equal(stp_err_errno((enum stp_err)i), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_error_has_distinct_text),
		cmocka_unit_test(test_errno_and_rep_mapping),
		cmocka_unit_test(test_rep_only_on_reply_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
