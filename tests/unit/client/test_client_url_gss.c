/*
 * test_client_url_gss.c - GSS-API proxy URLs (socks5+gssapi://,
 * socks5h+gssapi://): the schemes and their defaults, the ?options
 * (src/client/url_gss.c), bad options, the URL printed back, and the
 * handshake engine refusing a GSS-API proxy on a bare fd.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "stp/stp.h"

static void test_gss_schemes(void **state)
{
	struct stp_proxy p;
	enum stp_err err = STP_ERR_COUNT;
	char buf[300];

	assert_int_equal(stp_proxy_parse(&p, "socks5+gssapi://proxy.example", &err), 0);
	assert_int_equal(p.kind, STP_SOCKS5);
	assert_true(p.gss.on);
	assert_int_equal(p.tls.mode, STP_TLS_NONE);
	assert_int_equal(p.gss.level, STP_GSS_CONF); /* the safe default */
	assert_false(p.gss.spnego);
	assert_string_equal(p.gss.service, "");
	assert_int_equal(p.port, 1080);
	assert_string_equal(stp_proxy_str(&p, buf, sizeof(buf)),
			    "socks5+gssapi://proxy.example:1080");
	assert_int_equal(stp_proxy_parse(&p, "SOCKS5H+GSSAPI://h:9", &err), 0);
	assert_int_equal(p.kind, STP_SOCKS5H);
	assert_true(p.gss.on);
	assert_int_equal(stp_proxy_parse(&p, "socks5://h", &err), 0);
	assert_false(p.gss.on);
	assert_int_equal(stp_proxy_parse(&p, "socks4+gssapi://h", &err), -1);
	assert_int_equal(err, STP_ERR_URL_SCHEME);
}

static void test_gss_options(void **state)
{
	struct stp_proxy p;
	enum stp_err err;

	assert_int_equal(stp_proxy_parse(&p,
					 "socks5h+gssapi://h/?gss-service=socks%40proxy.example"
					 "&gss-protection=integrity&gss-mech=spnego",
					 &err),
			 0);
	assert_string_equal(p.gss.service, "socks@proxy.example");
	assert_int_equal(p.gss.level, STP_GSS_INTEGRITY);
	assert_true(p.gss.spnego);
	assert_int_equal(stp_proxy_parse(&p,
					 "socks5+gssapi://h?gss-protection=none"
					 "&gss-service=rcmd/h.example@REALM&gss-mech=krb5",
					 &err),
			 0);
	assert_int_equal(p.gss.level, STP_GSS_NONE);
	assert_string_equal(p.gss.service, "rcmd/h.example@REALM");
	assert_false(p.gss.spnego);
}

static void test_gss_bad(void **state)
{
	static const char *const bad[] = {
		"socks5+gssapi://h?gss-protection=selective",
		"socks5+gssapi://h?gss-mech=ntlm",
		"socks5+gssapi://h?gss-service=",
		"socks5+gssapi://h?gss-service=a%20b",
		"socks5+gssapi://h?ca=/x.pem", /* a TLS option */
		"socks5+gssapi://h?gss-protection",
		"socks5s://h?gss-protection=none", /* a GSS option on a TLS URL */
		"socks5://h?gss-protection=none",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct stp_proxy p;
		enum stp_err err = STP_OK;
		if (stp_proxy_parse(&p, bad[i], &err) == 0)
			fail_msg("accepted %s", bad[i]);
		assert_true(err == STP_ERR_URL_OPTION || err == STP_ERR_URL_SYNTAX);
	}
}

static void test_gss_needs_conn(void **state)
{
	struct stp_proxy p;
	struct stp_handshake h;
	enum stp_err err;

	assert_int_equal(stp_proxy_parse(&p, "socks5+gssapi://h", &err), 0);
	assert_int_equal(stp_handshake_init(&h, &p, 0, STP_CMD_CONNECT, "1.2.3.4", 80, NULL, &err),
			 -1);
	assert_int_equal(err, STP_ERR_TLS_NEEDS_CONN);
	assert_non_null(strstr(stp_strerror(STP_ERR_GSS_REFUSED), "X'01' X'FF'"));
	assert_int_equal(stp_err_errno(STP_ERR_GSS_CREDENTIALS), EACCES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gss_schemes),
		cmocka_unit_test(test_gss_options),
		cmocka_unit_test(test_gss_bad),
		cmocka_unit_test(test_gss_needs_conn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
