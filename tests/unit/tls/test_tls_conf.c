/*
 * test_tls_conf.c - the TLS keys of stpd.conf (docs/tls.md, docs/config.md):
 * tls { }, auth { methods ssl }, listen { tls; require-tls }, client rules'
 * require-tls, their defaults and the checks over the whole file; parsed
 * by tls_conf.c through the config registry.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ext/ext_conf.h"
#include "ext/tls/tls_conf.h"
#include "policy/conf.h"

static int setup(void **state)
{
	char err[256];
	return ext_conf_register_all(err, sizeof(err));
}

static struct stp_conf *parse(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return conf_parse_string("t.conf", text, strlen(text), err, errlen);
}

static void expect_error(const char *text, const char *needle)
{
	char err[2048];
	struct stp_conf *c = parse(text, err, sizeof(err));
	if (c) {
		conf_unref(c);
		fail_msg("parsed, want an error with '%s':\n%s", needle, text);
	}
	if (!strstr(err, needle))
		fail_msg("want '%s' in:\n%s", needle, err);
}

static void test_defaults(void **state)
{
	char err[2048];
	struct stp_conf *c = parse("listen 127.0.0.1:1080\n", err, sizeof(err));
	assert_non_null(c);
	assert_false(c->auth_methods & AUTH_BIT_SSL);
	assert_true(tls_conf_get(c)->udp_naked);
	assert_int_equal(tls_conf_get(c)->min_version, 12);
	assert_int_equal(tls_conf_get(c)->client_cert, TLS_CLIENT_CERT_NONE);
	assert_int_equal(tls_conf_get(c)->subauth, 0);
	assert_false(tls_conf_get(c)->cert_user);
	assert_false(tls_conf_listener_tls(&c->listeners[0]));
	assert_false(tls_conf_listener_require(&c->listeners[0]));
	conf_unref(c);
}

static void test_everything(void **state)
{
	static const char text[] =
		"listen 127.0.0.1:1080 { name plain; require-tls on }\n"
		"listen 127.0.0.1:1443 { name tls; tls on }\n"
		"auth { methods ssl userpass none; backend file; users-file /u }\n"
		"tls {\n"
		"  cert /c.pem\n  key /k.pem\n  client-ca /ca.pem\n  client-cert require\n"
		"  cert-user on\n  subauth userpass none\n  udp-naked off\n  min-version 1.3\n"
		"}\n"
		"client pass { from 10.0.0.0/8; require-tls on }\n"
		"client pass { from 127.0.0.0/8 }\n"
		"request pass\n";
	char err[2048];
	struct stp_conf *c = parse(text, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->auth_methods, AUTH_BIT_SSL | AUTH_BIT_USERPASS | AUTH_BIT_NONE);
	assert_string_equal(tls_conf_get(c)->cert, "/c.pem");
	assert_string_equal(tls_conf_get(c)->key, "/k.pem");
	assert_string_equal(tls_conf_get(c)->client_ca, "/ca.pem");
	assert_int_equal(tls_conf_get(c)->client_cert, TLS_CLIENT_CERT_REQUIRE);
	assert_true(tls_conf_get(c)->cert_user);
	assert_int_equal(tls_conf_get(c)->subauth, AUTH_BIT_USERPASS | AUTH_BIT_NONE);
	assert_false(tls_conf_get(c)->udp_naked);
	assert_int_equal(tls_conf_get(c)->min_version, 13);
	assert_true(tls_conf_listener_require(&c->listeners[0]));
	assert_false(tls_conf_listener_tls(&c->listeners[0]));
	assert_true(tls_conf_listener_tls(&c->listeners[1]));
	assert_true(tls_conf_rule_require(&c->client_rules[0]));
	assert_false(tls_conf_rule_require(&c->client_rules[1]));
	conf_unref(c);
}

static void test_errors(void **state)
{
	expect_error("auth { methods ssl }\n", "need 'cert' and 'key'");
	expect_error("listen 127.0.0.1:1 { tls on }\n", "need 'cert' and 'key'");
	expect_error("tls { cert /c }\nauth { methods ssl }\n", "need 'cert' and 'key'");
	expect_error("tls { client-cert optional }\n", "'client-cert optional' needs 'client-ca'");
	expect_error("tls { client-cert maybe }\n", "none, optional or require");
	expect_error("tls { subauth gssapi }\n", "unknown subauth method 'gssapi'");
	expect_error("tls { subauth userpass }\n", "subauth userpass with backend file needs");
	expect_error("tls { min-version 1.1 }\n", "'min-version' is 1.2 or 1.3");
	expect_error("tls { udp-naked maybe }\n", "'udp-naked' is on or off");
	expect_error("tls { cert-user cn }\n", "'cert-user' is on or off");
	expect_error("listen 127.0.0.1:1 { require-tls yes }\n", "'require-tls' is on or off");
	expect_error("client pass { require-tls 1 }\n", "'require-tls' is on or off");
	expect_error("tls { cert /a }\ntls { cert /b }\n", "cert");
	expect_error("request pass { require-tls on }\n", "require-tls");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_everything),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
