/*
 * test_addrorder.c - common/addrorder.c: the Happy Eyeballs order of a
 * name's addresses (IPv6 first, families alternating, each family's own
 * order kept) and which error is kept when every address failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/addrorder.h"
#include "common/sockaddr.h"

/* Fills a[] from "1.2.3.4"-or-"::1" texts; returns the count. */
static size_t addrs(struct sockaddr_storage *a, const char *const *texts)
{
	size_t n = 0;
	for (; texts[n]; n++) {
		socklen_t len;
		assert_int_equal(sa_parse(&a[n], &len, texts[n], 80), 0);
	}
	return n;
}

static void check_order(int first, const char *const *in, const char *const *want)
{
	struct sockaddr_storage a[ADDR_ORDER_MAX + 2];
	char buf[SA_STR_MAX], exp[SA_STR_MAX];
	size_t n = addrs(a, in);

	addr_interleave(a, n, first);
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_storage w;
		socklen_t len;
		assert_int_equal(sa_parse(&w, &len, want[i], 80), 0);
		assert_string_equal(sa_str((struct sockaddr *)&a[i], buf, sizeof(buf)),
				    sa_str((struct sockaddr *)&w, exp, sizeof(exp)));
	}
}

static void test_v4_first_then_v6(void **state)
{
	(void)state;
	check_order(AF_INET6, (const char *const[]){ "10.0.0.1", "10.0.0.2", "[fd00::1]", "[fd00::2]",
					   "[fd00::3]", NULL },
		    (const char *const[]){ "[fd00::1]", "10.0.0.1", "[fd00::2]", "10.0.0.2",
					   "[fd00::3]" });
}

static void test_v6_first_kept(void **state)
{
	(void)state;
	check_order(AF_INET6, (const char *const[]){ "[fd00::1]", "[fd00::2]", "10.0.0.1", NULL },
		    (const char *const[]){ "[fd00::1]", "10.0.0.1", "[fd00::2]" });
}

/* libstp passes the family getaddrinfo put first (RFC 6724 may rank IPv4
 * above a ULA IPv6 address). */
static void test_v4_preferred(void **state)
{
	(void)state;
	check_order(AF_INET, (const char *const[]){ "[fd00::1]", "[fd00::2]", "10.0.0.1",
						 "10.0.0.2", "10.0.0.3", NULL },
		    (const char *const[]){ "10.0.0.1", "[fd00::1]", "10.0.0.2", "[fd00::2]",
					   "10.0.0.3" });
	/* No address of the preferred family: the list as it was. */
	check_order(AF_INET, (const char *const[]){ "[fd00::2]", "[fd00::1]", NULL },
		    (const char *const[]){ "[fd00::2]", "[fd00::1]" });
}

static void test_one_family_unchanged(void **state)
{
	(void)state;
	check_order(AF_INET6, (const char *const[]){ "10.0.0.3", "10.0.0.1", "10.0.0.2", NULL },
		    (const char *const[]){ "10.0.0.3", "10.0.0.1", "10.0.0.2" });
	check_order(AF_INET6, (const char *const[]){ "10.0.0.3", NULL }, (const char *const[]){ "10.0.0.3" });
}

static void test_more_than_max_left_in_place(void **state)
{
	struct sockaddr_storage a[ADDR_ORDER_MAX + 2];
	char buf[SA_STR_MAX];
	(void)state;
	for (size_t i = 0; i < ADDR_ORDER_MAX + 2; i++) {
		char t[32];
		socklen_t len;
		snprintf(t, sizeof(t), i % 4 == 0 ? "[fd00::%zx]" : "10.0.0.%zu", i + 1);
		assert_int_equal(sa_parse(&a[i], &len, t, 80), 0);
	}
	addr_interleave(a, ADDR_ORDER_MAX + 2, AF_INET6);
	assert_string_equal(sa_str((struct sockaddr *)&a[0], buf, sizeof(buf)), "[fd00::1]:80");
	assert_string_equal(sa_str((struct sockaddr *)&a[1], buf, sizeof(buf)), "10.0.0.2:80");
	assert_string_equal(sa_str((struct sockaddr *)&a[ADDR_ORDER_MAX], buf, sizeof(buf)),
			    "[fd00::11]:80");
	assert_string_equal(sa_str((struct sockaddr *)&a[ADDR_ORDER_MAX + 1], buf, sizeof(buf)),
			    "10.0.0.18:80");
}

static void test_better_err(void **state)
{
	(void)state;
	assert_int_equal(addr_better_err(0, ENETUNREACH), ENETUNREACH);
	/* A refusal from the target beats this host's missing IPv6 route,
	 * whichever came last. */
	assert_int_equal(addr_better_err(ECONNREFUSED, ENETUNREACH), ECONNREFUSED);
	assert_int_equal(addr_better_err(ENETUNREACH, ECONNREFUSED), ECONNREFUSED);
	assert_int_equal(addr_better_err(ENETUNREACH, EHOSTUNREACH), EHOSTUNREACH);
	assert_int_equal(addr_better_err(EHOSTUNREACH, EADDRNOTAVAIL), EHOSTUNREACH);
	/* Equal weight: the later one. */
	assert_int_equal(addr_better_err(EHOSTUNREACH, ETIMEDOUT), ETIMEDOUT);
	assert_int_equal(addr_better_err(ECONNREFUSED, ECONNREFUSED), ECONNREFUSED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4_first_then_v6),
		cmocka_unit_test(test_v6_first_kept),
		cmocka_unit_test(test_v4_preferred),
		cmocka_unit_test(test_one_family_unchanged),
		cmocka_unit_test(test_more_than_max_left_in_place),
		cmocka_unit_test(test_better_err),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
