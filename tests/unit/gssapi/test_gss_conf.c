/*
 * test_gss_conf.c - the gssapi { } block of stpd.conf (docs/config.md):
 * defaults, every key, auth { methods gssapi }, the errors with their
 * file:line, and the principal-to-user mapping (gss_conf_map_user); parsed
 * by gss_conf.c through the config registry.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ext/ext_conf.h"
#include "ext/gssapi/gss_conf.h"
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
	assert_false(c->auth_methods & AUTH_BIT_GSSAPI);
	const struct gss_conf *g = gss_conf_get(c);
	assert_non_null(g);
	assert_string_equal(g->keytab, "");
	assert_string_equal(g->principal, "");
	assert_int_equal(g->n_maps, 0);
	assert_int_equal(g->min_level, 0);
	conf_unref(c);
}

static void test_everything(void **state)
{
	static const char text[] = "listen 127.0.0.1:1080\n"
				   "auth { methods gssapi none }\n"
				   "gssapi {\n"
				   "\tkeytab /etc/stpd/socks.keytab\n"
				   "\tprincipal socks/proxy.example.org@EXAMPLE.ORG\n"
				   "\tmap admin@EXAMPLE.ORG root\n"
				   "\tmap *@EXAMPLE.ORG %u\n"
				   "\tprotection confidentiality\n"
				   "}\n";
	char err[2048], user[256];
	struct stp_conf *c = parse(text, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->auth_methods, AUTH_BIT_GSSAPI | AUTH_BIT_NONE);
	const struct gss_conf *g = gss_conf_get(c);
	assert_string_equal(g->keytab, "/etc/stpd/socks.keytab");
	assert_string_equal(g->principal, "socks/proxy.example.org@EXAMPLE.ORG");
	assert_int_equal(g->n_maps, 2);
	assert_int_equal(g->min_level, 2);
	gss_conf_map_user(g, "admin@EXAMPLE.ORG", user, sizeof(user));
	assert_string_equal(user, "root");
	gss_conf_map_user(g, "alice@EXAMPLE.ORG", user, sizeof(user));
	assert_string_equal(user, "alice");
	gss_conf_map_user(g, "bob@OTHER.ORG", user, sizeof(user));
	assert_string_equal(user, "bob@OTHER.ORG"); /* no map: the principal itself */
	gss_conf_map_user(g, "host/x.example.org@EXAMPLE.ORG", user, sizeof(user));
	assert_string_equal(user, "host/x.example.org");
	conf_unref(c);
}

static void test_errors(void **state)
{
	expect_error(
		"auth { methods gssapi }\ngssapi { protection selective }\n",
		"t.conf:2: 'protection' is none, integrity or confidentiality, not 'selective'");
	expect_error("auth { methods gssapi }\ngssapi { map onlyone }\n", "t.conf:2:");
	expect_error("auth { methods gssapi }\ngssapi { keytab a; keytab b }\n", "t.conf:2:");
	expect_error("gssapi { protection none }\n",
		     "t.conf:1: a gssapi block without 'methods gssapi' in auth");
	expect_error("auth { methods gssapi }\ngssapi { flavour x }\n", "t.conf:2:");
	/* 33 map lines: one too many */
	char text[33 * 32 + 64];
	size_t n = (size_t)snprintf(text, sizeof(text), "auth { methods gssapi }\ngssapi {\n");
	for (int i = 0; i < 33; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "map u%d@R u%d\n", i, i);
	snprintf(text + n, sizeof(text) - n, "}\n");
	expect_error(text, "more than 32 'map' lines");
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
