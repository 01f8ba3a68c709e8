/*
 * test_client_url.c - proxy URLs and the environment (src/client/url.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stp/stp.h"

struct url_ok {
	const char *url;
	enum stp_proxy_kind kind;
	const char *host;
	uint16_t port;
	bool has_auth;
	const char *user, *pass;
};

static const struct url_ok good[] = {
	{ "socks5://127.0.0.1:1080", STP_SOCKS5, "127.0.0.1", 1080, false, "", "" },
	{ "socks5h://proxy.example:9050", STP_SOCKS5H, "proxy.example", 9050, false, "", "" },
	{ "socks4://10.1.2.3:1", STP_SOCKS4, "10.1.2.3", 1, false, "", "" },
	{ "socks4a://h:65535", STP_SOCKS4A, "h", 65535, false, "", "" },
	{ "SOCKS5H://Proxy", STP_SOCKS5H, "Proxy", 1080, false, "", "" },
	{ "socks5://[::1]:1081", STP_SOCKS5, "::1", 1081, false, "", "" },
	{ "socks5://[2001:db8::7]", STP_SOCKS5, "2001:db8::7", 1080, false, "", "" },
	{ "socks5://127.0.0.1/", STP_SOCKS5, "127.0.0.1", 1080, false, "", "" },
	{ "socks5://alice:s3cret@h:2", STP_SOCKS5, "h", 2, true, "alice", "s3cret" },
	{ "socks5://alice@h", STP_SOCKS5, "h", 1080, true, "alice", "" },
	{ "socks5://a%40b:p%3Aq%25@h", STP_SOCKS5, "h", 1080, true, "a@b", "p:q%" },
	{ "socks5://u:p@ss@h", STP_SOCKS5, "h", 1080, true, "u", "p@ss" },
	{ "socks5://u:%e2%82%AC@[::1]:5", STP_SOCKS5, "::1", 5, true, "u", "\xe2\x82\xac" },
	{ "socks4://bob@h", STP_SOCKS4, "h", 1080, true, "bob", "" },
};

static void test_url_good(void **state)
{
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct stp_proxy p;
		enum stp_err err = STP_ERR_COUNT;
		const struct url_ok *c = &good[i];

		if (stp_proxy_parse(&p, c->url, &err) != 0)
			fail_msg("%s: rejected: %s", c->url, stp_strerror(err));
		assert_int_equal(err, STP_OK);
		assert_int_equal(p.kind, c->kind);
		assert_string_equal(p.host, c->host);
		assert_int_equal(p.port, c->port);
		assert_int_equal(p.has_auth, c->has_auth);
		assert_string_equal(p.user, c->user);
		assert_string_equal(p.pass, c->pass);
	}
}

struct url_bad {
	const char *url;
	enum stp_err err;
};

static const struct url_bad bad[] = {
	{ "", STP_ERR_URL_SCHEME },
	{ "127.0.0.1:1080", STP_ERR_URL_SCHEME },
	{ "http://127.0.0.1:8080", STP_ERR_URL_SCHEME },
	{ "socks://h", STP_ERR_URL_SCHEME },
	{ "socks6://h", STP_ERR_URL_SCHEME },
	{ "socks5:/h", STP_ERR_URL_SCHEME },
	{ "socks5://", STP_ERR_URL_HOST },
	{ "socks5://:1080", STP_ERR_URL_HOST },
	{ "socks5://::1:1080", STP_ERR_URL_HOST },
	{ "socks5://[::1", STP_ERR_URL_HOST },
	{ "socks5://[nothex]:1", STP_ERR_URL_HOST },
	{ "socks5://[::1]x", STP_ERR_URL_HOST },
	{ "socks5://ho st", STP_ERR_URL_HOST },
	{ "socks5://h:", STP_ERR_URL_PORT },
	{ "socks5://h:0", STP_ERR_URL_PORT },
	{ "socks5://h:65536", STP_ERR_URL_PORT },
	{ "socks5://h:123456", STP_ERR_URL_PORT },
	{ "socks5://h:12a", STP_ERR_URL_PORT },
	{ "socks5://h:-1", STP_ERR_URL_PORT },
	{ "socks5://[::1]:", STP_ERR_URL_PORT },
	{ "socks5://h/path", STP_ERR_URL_SYNTAX },
	{ "socks5://h:1?x=1", STP_ERR_URL_SYNTAX },
	{ "socks5://h#frag", STP_ERR_URL_SYNTAX },
	{ "socks5://@h", STP_ERR_URL_USERINFO },
	{ "socks5://:pw@h", STP_ERR_URL_USERINFO },
	{ "socks5://u%zz:p@h", STP_ERR_URL_USERINFO },
	{ "socks5://u:p%4@h", STP_ERR_URL_USERINFO },
	{ "socks5://u:p%@h", STP_ERR_URL_USERINFO },
	{ "socks5://u%00:p@h", STP_ERR_URL_USERINFO },
};

static void test_url_bad(void **state)
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

/* A user name of exactly 255 bytes fits RFC 1929; 256 does not. */
static void test_url_userinfo_lengths(void **state)
{
	char url[700], user[300];
	struct stp_proxy p;
	enum stp_err err;

	memset(user, 'u', 255);
	user[255] = '\0';
	snprintf(url, sizeof(url), "socks5://%s:pw@h", user);
	assert_int_equal(stp_proxy_parse(&p, url, &err), 0);
	assert_int_equal(strlen(p.user), 255);
	user[255] = 'u';
	user[256] = '\0';
	snprintf(url, sizeof(url), "socks5://%s:pw@h", user);
	assert_int_equal(stp_proxy_parse(&p, url, &err), -1);
	assert_int_equal(err, STP_ERR_URL_USERINFO);
	/* %41 decodes to one byte: 255 escapes are still 255 bytes. */
	url[0] = '\0';
	strcat(url, "socks5://");
	for (int i = 0; i < 85; i++)
		strcat(url, "%41BC");
	strcat(url, "@h");
	assert_int_equal(stp_proxy_parse(&p, url, &err), 0);
	assert_int_equal(strlen(p.user), 255);
}

static void test_url_host_length(void **state)
{
	char url[400], host[300];
	struct stp_proxy p;
	enum stp_err err;

	memset(host, 'a', 256);
	host[256] = '\0';
	snprintf(url, sizeof(url), "socks5://%s:1", host);
	assert_int_equal(stp_proxy_parse(&p, url, &err), -1);
	assert_int_equal(err, STP_ERR_URL_HOST);
	host[255] = '\0';
	snprintf(url, sizeof(url), "socks5://%s:1", host);
	assert_int_equal(stp_proxy_parse(&p, url, &err), 0);
}

static void test_url_remote_dns_and_str(void **state)
{
	struct stp_proxy p;
	char out[600];

	assert_int_equal(stp_proxy_parse(&p, "socks5h://u:secret@[::1]:7", NULL), 0);
	assert_true(stp_proxy_remote_dns(&p));
	stp_proxy_str(&p, out, sizeof(out));
	assert_string_equal(out, "socks5h://u@[::1]:7");
	assert_null(strstr(out, "secret"));
	assert_int_equal(stp_proxy_parse(&p, "socks4a://h", NULL), 0);
	assert_true(stp_proxy_remote_dns(&p));
	assert_int_equal(stp_proxy_parse(&p, "socks5://h", NULL), 0);
	assert_false(stp_proxy_remote_dns(&p));
	assert_int_equal(stp_proxy_parse(&p, "socks4://h", NULL), 0);
	assert_false(stp_proxy_remote_dns(&p));
}

static void test_env_precedence(void **state)
{
	struct stp_proxy p;
	enum stp_err err;

	unsetenv("STP_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	assert_int_equal(stp_proxy_from_env(&p, &err), -1);
	assert_int_equal(err, STP_ERR_NO_PROXY);

	setenv("all_proxy", "socks4://lower:3", 1);
	assert_int_equal(stp_proxy_from_env(&p, &err), 0);
	assert_string_equal(p.host, "lower");

	setenv("ALL_PROXY", "socks5://upper:2", 1);
	assert_int_equal(stp_proxy_from_env(&p, &err), 0);
	assert_string_equal(p.host, "upper");

	setenv("STP_PROXY", "socks5h://mine:1", 1);
	assert_int_equal(stp_proxy_from_env(&p, &err), 0);
	assert_string_equal(p.host, "mine");
	assert_int_equal(p.kind, STP_SOCKS5H);

	/* Empty counts as unset, so the next one is used. */
	setenv("STP_PROXY", "", 1);
	assert_int_equal(stp_proxy_from_env(&p, &err), 0);
	assert_string_equal(p.host, "upper");

	/* A bad value is reported, not skipped. */
	setenv("STP_PROXY", "http://x", 1);
	assert_int_equal(stp_proxy_from_env(&p, &err), -1);
	assert_int_equal(err, STP_ERR_URL_SCHEME);
	unsetenv("STP_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_good),
		cmocka_unit_test(test_url_bad),
		cmocka_unit_test(test_url_userinfo_lengths),
		cmocka_unit_test(test_url_host_length),
		cmocka_unit_test(test_url_remote_dns_and_str),
		cmocka_unit_test(test_env_precedence),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
