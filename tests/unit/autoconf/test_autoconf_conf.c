/*
 * test_autoconf_conf.c - the autoconfig { } section and the `profile` key
 * of request rules (ac_conf.c through the config registry), the profile a
 * client gets (ac_conf_select), and the profile written as the X'F4'
 * document and as a PAC file (ac_doc.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "ext/autoconf/ac.h"
#include "ext/ext_conf.h"
#include "policy/conf.h"
#include "proto/autoconf.h"

static int setup(void **state)
{
	char err[256];
	(void)state;
	return ext_conf_register_all(err, sizeof(err));
}

static struct stp_conf *parse(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return conf_parse_string("t.conf", text, strlen(text), err, errlen);
}

static const char *const CONF =
	"listen 127.0.0.1:1080\n"
	"autoconfig {\n"
	"\thttp 127.0.0.1:8080 [::1]:8080\n"
	"\tprofile office\n"
	"\tproxy 127.0.0.1:1080 proxy2.example:1080\n"
	"\tvia secure.intranet.example\n"
	"\troute 127.0.0.1:1081 .lab.example 192.0.2.0/24\n"
	"\tdirect .intranet.example 10.0.0.0/8\n"
	"\tdirect fe80::/10\n"
	"\tdirect-port 8443 9000-9100\n"
	"\tmethod userpass; credentials netrc; refresh 300\n"
	"}\n"
	"autoconfig {\n"
	"\tprofile lab\n"
	"\tdefault direct\n"
	"\tvia 192.0.2.0/24\n"
	"\tdns local\n"
	"}\n"
	"request block { from 10.66.0.0/16; command autoconfig }\n"
	"request pass { from 10.9.0.0/16; command autoconfig; profile lab }\n"
	"request pass { user alice; command autoconfig; profile office }\n"
	"request pass { command autoconfig; profile lab }\n";

static void test_profiles(void **state)
{
	char err[2048];
	(void)state;
	struct stp_conf *c = parse(CONF, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	const struct ac_conf *ac = ac_conf_get(c);
	assert_int_equal(ac->n_http, 2);
	assert_int_equal(ac->http[1].ss_family, AF_INET6);
	assert_int_equal(ac->n_profiles, 2);
	const struct ac_profile *o = ac_conf_profile(ac, "office");
	assert_non_null(o);
	assert_int_equal(o->n_proxies, 2);
	assert_string_equal(o->proxies[1], "proxy2.example:1080");
	assert_int_equal(o->n_via, 1);
	assert_int_equal(o->n_direct, 3);
	assert_int_equal(o->n_ports, 2);
	assert_int_equal(o->ports[1].lo, 9000);
	assert_int_equal(o->ports[1].hi, 9100);
	assert_int_equal(o->method, AC_METHOD_USERPASS);
	assert_int_equal(o->creds, AC_CREDS_NETRC);
	assert_int_equal(o->refresh, 300);
	const struct ac_profile *l = ac_conf_profile(ac, "lab");
	assert_int_equal(l->dflt, AC_ROUTE_DIRECT);
	assert_int_equal(l->dns, AC_DNS_LOCAL);
	assert_int_equal(l->refresh, 3600);
	assert_int_equal(l->n_proxies, 0);
	conf_unref(c);
}

static const struct ac_profile *select_for(const struct stp_conf *c, const char *addr,
					   const char *user, const struct rule **r)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	inet_pton(AF_INET, addr, &sin.sin_addr);
	struct rule_ctx ctx = { .client = (struct sockaddr *)&sin,
				.user = user,
				.now = time(NULL) };
	return ac_conf_select(c, &ctx, r);
}

static void test_select(void **state)
{
	char err[2048];
	const struct rule *r;
	(void)state;
	struct stp_conf *c = parse(CONF, err, sizeof(err));
	assert_non_null(c);
	assert_null(select_for(c, "10.66.1.1", "alice", &r)); /* blocked first */
	assert_non_null(r);
	assert_int_equal(r->line, 19);
	assert_string_equal(select_for(c, "10.9.0.1", "alice", &r)->name, "lab");
	assert_string_equal(select_for(c, "10.1.0.1", "alice", &r)->name, "office");
	assert_string_equal(select_for(c, "10.1.0.1", NULL, &r)->name, "lab");
	assert_string_equal(select_for(c, "10.1.0.1", "bob", &r)->name, "lab");
	conf_unref(c);
	/* A pass rule without `profile`: the first one. No rule matching: none. */
	c = parse("autoconfig { profile a; profile b }\nrequest pass { from 10.0.0.0/8 }\n", err,
		  sizeof(err));
	assert_non_null(c);
	assert_string_equal(select_for(c, "10.1.0.1", NULL, &r)->name, "a");
	assert_null(select_for(c, "192.0.2.1", NULL, &r));
	assert_null(r);
	conf_unref(c);
}

static void test_document(void **state)
{
	char err[2048];
	uint8_t doc[ACDOC_MAX];
	struct socks_err serr;
	(void)state;
	struct stp_conf *c = parse(CONF, err, sizeof(err));
	assert_non_null(c);
	const struct ac_conf *ac = ac_conf_get(c);
	size_t n = ac_doc_build(doc, sizeof(doc), c, ac_conf_profile(ac, "office"));
	static const char want[] =
		"stp-autoconfig 1\nprofile office\nrefresh 300\nproxy 127.0.0.1:1080\n"
		"proxy proxy2.example:1080\nmethod userpass\ncredentials netrc\ndns remote\n"
		"default proxy\nroute 127.0.0.1:1081 .lab.example\nroute 127.0.0.1:1081 "
		"192.0.2.0/24\n"
		"via secure.intranet.example\ndirect .intranet.example\n"
		"direct 10.0.0.0/8\ndirect fe80::/10\ndirect-port 8443\ndirect-port 9000-9100\n";
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(doc, want, n);
	assert_int_equal(acdoc_check(doc, n, &serr), SOCKS_DONE);
	/* No proxy named: the first listener. Too small a buffer: 0. */
	n = ac_doc_build(doc, sizeof(doc), c, ac_conf_profile(ac, "lab"));
	assert_non_null(memmem(doc, n, "proxy 127.0.0.1:1080\n", 21));
	assert_non_null(memmem(doc, n, "dns local\ndefault direct\nvia 192.0.2.0/24\n", 41));
	assert_int_equal(ac_doc_build(doc, 20, c, ac_conf_profile(ac, "lab")), 0);
	conf_unref(c);
}

static void test_pac(void **state)
{
	char err[2048], pac[AC_PAC_MAX];
	struct sockaddr_in sin = { .sin_family = AF_INET };
	(void)state;
	struct stp_conf *c = parse(CONF, err, sizeof(err));
	assert_non_null(c);
	const struct ac_conf *ac = ac_conf_get(c);
	size_t n = ac_pac_build(pac, sizeof(pac), c, ac_conf_profile(ac, "office"),
				(struct sockaddr *)&sin);
	assert_true(n > 0 && n == strlen(pac));
	static const char *const lines[] = {
		"// stpd autoconfig: profile \"office\" for 0.0.0.0; refresh 300 s\n",
		"function FindProxyForURL(url, host) {\n",
		"\tif (h == \"secure.intranet.example\" || dnsDomainIs(h, "
		"\".secure.intranet.example\")) "
		"return \"SOCKS5 127.0.0.1:1080; SOCKS5 proxy2.example:1080\";\n",
		"\tif (port >= 8443 && port <= 8443) return \"DIRECT\";\n",
		"\tif (h == \"lab.example\" || dnsDomainIs(h, \".lab.example\")) return "
		"\"SOCKS5 127.0.0.1:1081\";\n",
		"\tif (v4 && isInNet(h, \"192.0.2.0\", \"255.255.255.0\")) return "
		"\"SOCKS5 127.0.0.1:1081\";\n",
		"\tif (h == \"intranet.example\" || dnsDomainIs(h, \".intranet.example\")) return "
		"\"DIRECT\";\n",
		"\tif (v4 && isInNet(h, \"10.0.0.0\", \"255.0.0.0\")) return \"DIRECT\";\n",
		"\tif (v6 && typeof isInNetEx == \"function\" && isInNetEx(h, \"fe80::/10\")) "
		"return "
		"\"DIRECT\";\n",
		"\treturn \"SOCKS5 127.0.0.1:1080; SOCKS5 proxy2.example:1080\";\n}\n",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!strstr(pac, lines[i]))
			fail_msg("no line %zu '%s' in:\n%s", i, lines[i], pac);
	/* route, via, direct-port, direct: the order the PAC tests them. */
	assert_true(strstr(pac, "lab.example") < strstr(pac, "secure.intranet"));
	assert_true(strstr(pac, "secure.intranet") < strstr(pac, "port >= 8443"));
	assert_true(strstr(pac, "port >= 8443") < strstr(pac, "\"intranet.example\""));
	n = ac_pac_build(pac, sizeof(pac), c, ac_conf_profile(ac, "lab"), (struct sockaddr *)&sin);
	assert_non_null(strstr(pac, "\treturn \"DIRECT\";\n}\n"));
	assert_int_equal(ac_pac_build(pac, 100, c, ac_conf_profile(ac, "lab"),
				      (struct sockaddr *)&sin),
			 0);
	conf_unref(c);
}

static void expect_error(const char *text, int line, const char *needle)
{
	char err[2048], want[64];
	struct stp_conf *c = parse(text, err, sizeof(err));
	if (c) {
		conf_unref(c);
		fail_msg("parsed: %s", text);
	}
	snprintf(want, sizeof(want), "t.conf:%d:", line);
	if (!strstr(err, want) || !strstr(err, needle))
		fail_msg("want '%s' ... '%s' in:\n%s", want, needle, err);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("autoconfig {\n direct .a.example\n}\n", 2,
		     "needs a 'profile NAME' before it");
	expect_error("autoconfig { profile a; profile a }\n", 1, "duplicate profile 'a'");
	expect_error("autoconfig { profile \"x y\" }\n", 1, "bad profile name");
	expect_error("autoconfig { profile a\n dns remote\n dns local }\n", 3,
		     "duplicate 'dns' in profile 'a'");
	expect_error("autoconfig { profile a; direct a..b }\n", 1, "bad 'direct' entry 'a..b'");
	expect_error("autoconfig { profile a; via 10.0.0.0/33 }\n", 1, "bad 'via' entry");
	expect_error("autoconfig { profile a; direct-port 0 }\n", 1, "bad port '0'");
	expect_error("autoconfig { profile a; direct-port 90-80 }\n", 1, "bad port '90-80'");
	expect_error("autoconfig { profile a; proxy host }\n", 1, "bad proxy 'host'");
	expect_error("autoconfig { profile a; route 127.0.0.1:1 a..b }\n", 1,
		     "bad 'route' destination 'a..b'");
	expect_error("autoconfig { profile a; route x.example .a }\n", 1, "bad proxy 'x.example'");
	expect_error("autoconfig { profile a; route 127.0.0.1:1 }\n", 1,
		     "'route' needs at least 2 values");
	expect_error("autoconfig { profile a; proxy \"a\\\"b:1\" }\n", 1, "bad proxy");
	expect_error("autoconfig { profile a; method gssapi }\n", 1,
		     "'method' is none, userpass or tls, not 'gssapi'");
	expect_error("autoconfig { profile a; dns both }\n", 1, "'dns' is remote or local");
	expect_error("autoconfig { profile a; refresh 5 }\n", 1, "from 10 to 604800");
	expect_error("autoconfig { http 127.0.0.1 }\n", 1, "bad address '127.0.0.1' for 'http'");
	expect_error("autoconfig { http 127.0.0.1:8080 }\n", 1, "'http' serves profiles");
	expect_error("autoconfig { profile a }\nrequest pass { command autoconfig; profile b }\n",
		     2, "no autoconfig profile 'b'");
	expect_error("client pass { profile a }\n", 1, "'profile' is not valid in a client rule");
	/* 64 direct entries of 200 characters: over a document. */
	static char big[64 * 220 + 100];
	int k = snprintf(big, sizeof(big), "autoconfig {\n profile huge\n");
	for (int i = 0; i < 64; i++) {
		k += snprintf(big + k, sizeof(big) - (size_t)k, " direct %02d", i);
		memset(big + k, 'a', 190);
		k += 190;
		k += snprintf(big + k, sizeof(big) - (size_t)k, ".example\n");
	}
	snprintf(big + k, sizeof(big) - (size_t)k, "}\n");
	expect_error(big, 2, "profile 'huge' is over 7936 bytes as a document");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profiles), cmocka_unit_test(test_select),
		cmocka_unit_test(test_document), cmocka_unit_test(test_pac),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
