/*
 * test_client_noproxy.c - NO_PROXY matching (src/client/noproxy.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "stp/stp.h"

struct np_case {
	const char *list, *host;
	bool match;
};

static const struct np_case cases[] = {
	/* names: the entry and everything under it, as curl does */
	{ "example.com", "example.com", true },
	{ "example.com", "www.example.com", true },
	{ "example.com", "a.b.example.com", true },
	{ "example.com", "notexample.com", false },
	{ "example.com", "example.com.evil", false },
	{ "example.com", "com", false },
	{ ".example.com", "example.com", true },
	{ ".example.com", "www.example.com", true },
	{ ".example.com", "wwwexample.com", false },
	{ "Example.COM", "www.example.com", true },
	{ "example.com", "WWW.Example.Com", true },
	{ "example.com", "www.example.com.", true },
	{ "example.com.", "www.example.com", true },
	{ "localhost", "localhost", true },
	{ "localhost", "localhost6", false },
	/* lists */
	{ "a.test, b.test ,c.test", "b.test", true },
	{ "a.test, b.test ,c.test", "c.test", true },
	{ "a.test,,b.test", "d.test", false },
	{ "", "example.com", false },
	{ ",,,", "example.com", false },
	/* '*' */
	{ "*", "anything.at.all", true },
	{ "*", "192.0.2.1", true },
	{ "a.test,*", "b.test", true },
	{ "*.example.com", "www.example.com", false }, /* no globs: '*' only alone */
	/* addresses: exact */
	{ "192.0.2.7", "192.0.2.7", true },
	{ "192.0.2.7", "192.0.2.8", false },
	{ "::1", "::1", true },
	{ "[::1]", "::1", true },
	{ "::1", "[::1]", true },
	{ "::1", "::2", false },
	/* CIDR */
	{ "10.0.0.0/8", "10.200.3.4", true },
	{ "10.0.0.0/8", "11.0.0.1", false },
	{ "192.168.1.0/25", "192.168.1.127", true },
	{ "192.168.1.0/25", "192.168.1.128", false },
	{ "127.0.0.0/8", "::ffff:127.0.0.1", true },
	{ "0.0.0.0/0", "203.0.113.9", true },
	{ "fe80::/10", "fe80::1", true },
	{ "fe80::/10", "febf::1", true },
	{ "fe80::/10", "fec0::1", false },
	{ "[2001:db8::]/32", "2001:db8:ffff::1", true },
	{ "10.0.0.0/8", "::a00:1", false }, /* v4 range never matches a real v6 */
	/* an address entry does not match names, and names never resolve */
	{ "127.0.0.1", "localhost", false },
	{ "10.0.0.0/8", "ten.example", false },
	/* unreadable entries are skipped, not fatal */
	{ "10.0.0.0/33,good.test", "good.test", true },
	{ "10.0.0.0/33", "10.0.0.1", false },
	{ "10.0.0.0/x", "10.0.0.1", false },
	{ "a:b", "a", false },
};

static void test_noproxy_cases(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct stp_noproxy *np = stp_noproxy_new(cases[i].list);
		assert_non_null(np);
		if (stp_noproxy_match(np, cases[i].host) != cases[i].match)
			fail_msg("NO_PROXY '%s', host '%s': want %s", cases[i].list, cases[i].host,
				 cases[i].match ? "match" : "no match");
		stp_noproxy_free(np);
	}
}

/* Entries split on spaces and tabs as well as commas: every one of them is
 * kept (the array was once sized by commas only, and "a b" wrote past it:
 * run under ASan, this overflowed the heap). */
static void test_noproxy_blank_separated(void **state)
{
	static const char *const lists[] = {
		"a b",
		"a.test b.test\tc.test  d.test\t\te.test",
		" a.test\tb.test ,c.test, d.test e.test ",
		"10.0.0.0/8 192.0.2.1\t::1 * ",
	};
	static const char *const hosts[] = { "a.test", "b.test", "c.test", "d.test", "e.test" };

	struct stp_noproxy *np = stp_noproxy_new(lists[0]);
	assert_non_null(np);
	assert_true(stp_noproxy_match(np, "a"));
	assert_true(stp_noproxy_match(np, "b"));
	assert_false(stp_noproxy_match(np, "c"));
	stp_noproxy_free(np);
	for (size_t l = 1; l <= 2; l++) {
		np = stp_noproxy_new(lists[l]);
		assert_non_null(np);
		for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
			if (!stp_noproxy_match(np, hosts[i]))
				fail_msg("NO_PROXY '%s': '%s' lost", lists[l], hosts[i]);
		assert_false(stp_noproxy_match(np, "f.test"));
		stp_noproxy_free(np);
	}
	np = stp_noproxy_new(lists[3]);
	assert_non_null(np);
	assert_true(stp_noproxy_match(np, "name.example")); /* the '*' last */
	stp_noproxy_free(np);
}

static void test_noproxy_sockaddr(void **state)
{
	struct stp_noproxy *np = stp_noproxy_new("127.0.0.0/8, ::1");
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(80) };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };

	inet_pton(AF_INET, "127.5.6.7", &s4.sin_addr);
	assert_true(stp_noproxy_match_addr(np, (struct sockaddr *)&s4));
	inet_pton(AF_INET, "128.0.0.1", &s4.sin_addr);
	assert_false(stp_noproxy_match_addr(np, (struct sockaddr *)&s4));
	inet_pton(AF_INET6, "::1", &s6.sin6_addr);
	assert_true(stp_noproxy_match_addr(np, (struct sockaddr *)&s6));
	inet_pton(AF_INET6, "::ffff:127.0.0.9", &s6.sin6_addr);
	assert_true(stp_noproxy_match_addr(np, (struct sockaddr *)&s6));
	inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
	assert_false(stp_noproxy_match_addr(np, (struct sockaddr *)&s6));
	assert_false(stp_noproxy_match_addr(np, NULL));
	assert_false(stp_noproxy_match(NULL, "x"));
	stp_noproxy_free(np);
}

static void test_noproxy_env(void **state)
{
	struct stp_noproxy *np;

	unsetenv("NO_PROXY");
	setenv("no_proxy", "lower.test", 1);
	np = stp_noproxy_from_env();
	assert_true(stp_noproxy_match(np, "lower.test"));
	stp_noproxy_free(np);

	setenv("NO_PROXY", "upper.test", 1);
	np = stp_noproxy_from_env();
	assert_true(stp_noproxy_match(np, "upper.test"));
	assert_false(stp_noproxy_match(np, "lower.test"));
	stp_noproxy_free(np);

	unsetenv("NO_PROXY");
	unsetenv("no_proxy");
	np = stp_noproxy_from_env();
	assert_non_null(np);
	assert_false(stp_noproxy_match(np, "lower.test"));
	stp_noproxy_free(np);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_noproxy_cases),
		cmocka_unit_test(test_noproxy_blank_separated),
		cmocka_unit_test(test_noproxy_sockaddr),
		cmocka_unit_test(test_noproxy_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
