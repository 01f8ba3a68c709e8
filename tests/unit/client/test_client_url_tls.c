/*
 * test_client_url_tls.c - TLS proxy URLs: the schemes, the ?options
 * (src/client/url.c, url_tls.c), the URL printed back, and the handshake
 * engine refusing TLS proxies on a bare fd.
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

struct scheme_case {
	const char *url;
	enum stp_proxy_kind kind;
	enum stp_tls_mode mode;
};

static const struct scheme_case schemes[] = {
	{ "socks5+tls://h:1443", STP_SOCKS5, STP_TLS_WRAP },
	{ "socks5h+tls://h", STP_SOCKS5H, STP_TLS_WRAP },
	{ "SOCKS4+TLS://h", STP_SOCKS4, STP_TLS_WRAP },
	{ "socks4a+tls://h", STP_SOCKS4A, STP_TLS_WRAP },
	{ "socks5s://h", STP_SOCKS5, STP_TLS_X86 },
	{ "socks5hs://u:p@h:1", STP_SOCKS5H, STP_TLS_X86 },
	{ "socks5://h", STP_SOCKS5, STP_TLS_NONE },
	{ "socks5h://h", STP_SOCKS5H, STP_TLS_NONE },
};

static void test_tls_schemes(void **state)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		struct stp_proxy p;
		enum stp_err err = STP_ERR_COUNT;
		if (stp_proxy_parse(&p, schemes[i].url, &err) != 0)
			fail_msg("%s: %s", schemes[i].url, stp_strerror(err));
		assert_int_equal(p.kind, schemes[i].kind);
		assert_int_equal(p.tls.mode, schemes[i].mode);
		/* Verification on, system store, no client certificate. */
		assert_false(p.tls.insecure);
		assert_false(p.tls.udp_naked);
		assert_string_equal(p.tls.ca, "");
		assert_string_equal(p.tls.cert, "");
		assert_string_equal(p.tls.sni, "");
	}
}

static void test_tls_options(void **state)
{
	struct stp_proxy p;
	enum stp_err err;

	assert_int_equal(stp_proxy_parse(&p,
					 "socks5hs://alice:pw@[::1]:1081/?ca=/etc/ca%20x.pem"
					 "&cert=/c.pem&key=/k.pem&sni=proxy.example&udp-naked=1",
					 &err),
			 0);
	assert_int_equal(err, STP_OK);
	assert_string_equal(p.host, "::1");
	assert_int_equal(p.port, 1081);
	assert_string_equal(p.user, "alice");
	assert_string_equal(p.tls.ca, "/etc/ca x.pem");
	assert_string_equal(p.tls.cert, "/c.pem");
	assert_string_equal(p.tls.key, "/k.pem");
	assert_string_equal(p.tls.sni, "proxy.example");
	assert_true(p.tls.udp_naked);
	assert_false(p.tls.insecure);

	/* key defaults to the cert file; insecure only when asked. */
	assert_int_equal(stp_proxy_parse(&p, "socks5+tls://h?cert=/both.pem&insecure=1", &err), 0);
	assert_string_equal(p.tls.key, "/both.pem");
	assert_true(p.tls.insecure);
	assert_int_equal(stp_proxy_parse(&p, "socks5+tls://h?insecure=0&udp-naked=no", &err), 0);
	assert_false(p.tls.insecure);
	assert_false(p.tls.udp_naked);
	/* Empty query. */
	assert_int_equal(stp_proxy_parse(&p, "socks5s://h?", &err), 0);
}

struct bad_case {
	const char *url;
	enum stp_err err;
};

static const struct bad_case bad[] = {
	{ "socks5s://h?bogus=1", STP_ERR_URL_OPTION },
	{ "socks5s://h?insecure=maybe", STP_ERR_URL_OPTION },
	{ "socks5s://h?insecure", STP_ERR_URL_OPTION },
	{ "socks5s://h?=1", STP_ERR_URL_OPTION },
	{ "socks5s://h?ca=", STP_ERR_URL_OPTION },
	{ "socks5s://h?ca=%zz", STP_ERR_URL_OPTION },
	{ "socks5s://h?ca=a%00b", STP_ERR_URL_OPTION },
	{ "socks5s://h?key=/k.pem", STP_ERR_URL_OPTION }, /* a key without its cert */
	{ "socks5s://h?sni=bad%20name", STP_ERR_URL_OPTION },
	{ "socks5s://h?ca=x#frag", STP_ERR_URL_OPTION },
	{ "socks5s://h?udp-naked=1&&", STP_ERR_URL_OPTION },
	{ "socks5s://h/path?ca=x", STP_ERR_URL_SYNTAX },
	{ "socks5s://h#frag", STP_ERR_URL_SYNTAX },
	/* Plain schemes take no options at all (as before). */
	{ "socks5://h?ca=x", STP_ERR_URL_SYNTAX },
	{ "socks5h://h?insecure=1", STP_ERR_URL_SYNTAX },
	/* Not schemes. */
	{ "socks5+ssl://h", STP_ERR_URL_SCHEME },
	{ "socks4s://h", STP_ERR_URL_SCHEME },
	{ "socks5tls://h", STP_ERR_URL_SCHEME },
	{ "socks5s+tls://h", STP_ERR_URL_SCHEME },
};

static void test_tls_bad(void **state)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct stp_proxy p;
		enum stp_err err = STP_OK;
		if (stp_proxy_parse(&p, bad[i].url, &err) != -1)
			fail_msg("%s: accepted", bad[i].url);
		if (err != bad[i].err)
			fail_msg("%s: got '%s', want '%s'", bad[i].url, stp_strerror(err),
				 stp_strerror(bad[i].err));
	}
}

/* A path as long as the field allows fits; one more byte does not. */
static void test_tls_path_length(void **state)
{
	static char url[STP_PATH_MAX + 64], path[STP_PATH_MAX + 1];
	struct stp_proxy p;
	enum stp_err err;

	memset(path, 'a', STP_PATH_MAX - 1);
	path[STP_PATH_MAX - 1] = '\0';
	snprintf(url, sizeof(url), "socks5s://h?ca=%s", path);
	assert_int_equal(stp_proxy_parse(&p, url, &err), 0);
	assert_int_equal(strlen(p.tls.ca), STP_PATH_MAX - 1);
	path[STP_PATH_MAX - 1] = 'a';
	path[STP_PATH_MAX] = '\0';
	snprintf(url, sizeof(url), "socks5s://h?ca=%s", path);
	assert_int_equal(stp_proxy_parse(&p, url, &err), -1);
	assert_int_equal(err, STP_ERR_URL_OPTION);
}

static void test_tls_str(void **state)
{
	struct stp_proxy p;
	char out[600];

	assert_int_equal(stp_proxy_parse(&p, "socks5h+tls://u:secret@h:1443?insecure=1", NULL), 0);
	assert_string_equal(stp_proxy_str(&p, out, sizeof(out)), "socks5h+tls://u@h:1443");
	assert_true(stp_proxy_remote_dns(&p));
	assert_int_equal(stp_proxy_parse(&p, "socks5s://[::1]", NULL), 0);
	assert_string_equal(stp_proxy_str(&p, out, sizeof(out)), "socks5s://[::1]:1080");
	assert_false(stp_proxy_remote_dns(&p));
}

/* The fd-level engine cannot do TLS: it says so instead of speaking plain
 * SOCKS to a TLS proxy (stpify relies on this to fail closed). */
static void test_engine_refuses_tls(void **state)
{
	struct stp_proxy p;
	struct stp_handshake h;
	enum stp_err err = STP_OK;

	assert_int_equal(stp_proxy_parse(&p, "socks5s://h", NULL), 0);
	assert_int_equal(stp_handshake_init(&h, &p, 5, STP_CMD_CONNECT, "1.2.3.4", 80, NULL, &err),
			 -1);
	assert_int_equal(err, STP_ERR_TLS_NEEDS_CONN);
	assert_int_equal(stp_err_errno(err), EPROTONOSUPPORT);
}

static void test_tls_error_texts(void **state)
{
	assert_string_equal(stp_strerror(STP_ERR_TLS_HANDSHAKE), "TLS handshake failed");
	assert_string_equal(stp_strerror(STP_ERR_TLS_UNTRUSTED), "proxy certificate not trusted");
	assert_string_equal(stp_strerror(STP_ERR_TLS_NAME), "proxy certificate name mismatch");
	assert_non_null(strstr(stp_strerror(STP_ERR_TLS_UDP_NAKED), "udp-naked=1"));
	assert_string_equal(stp_err_detail(), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_schemes),
		cmocka_unit_test(test_tls_options),
		cmocka_unit_test(test_tls_bad),
		cmocka_unit_test(test_tls_path_length),
		cmocka_unit_test(test_tls_str),
		cmocka_unit_test(test_engine_refuses_tls),
		cmocka_unit_test(test_tls_error_texts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
