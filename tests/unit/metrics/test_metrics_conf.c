/*
 * test_metrics_conf.c - the metrics { } section (mt_conf.c through the
 * config registry): its addresses, who `allow` admits (also IPv4 clients
 * seen as ::ffff:a.b.c.d on an IPv6 listener), the loopback-only default,
 * and the errors with their lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ext/ext_conf.h"
#include "ext/metrics/mt_conf.h"
#include "policy/conf.h"

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

static struct sockaddr_storage addr(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static bool allowed(const struct mt_conf *m, const char *ip)
{
	struct sockaddr_storage ss = addr(ip);
	return mt_conf_allowed(m, (const struct sockaddr *)&ss);
}

static void test_allow(void **state)
{
	char err[1024];
	(void)state;
	struct stp_conf *c = parse("listen 127.0.0.1:1080\n"
				   "metrics {\n\thttp 127.0.0.1:9180 [::1]:9181\n"
				   "\tallow 10.0.5.0/24 2001:db8::/32\n\tallow 192.0.2.7\n}\n",
				   err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	const struct mt_conf *m = mt_conf_get(c);
	assert_int_equal(m->n_http, 2);
	assert_int_equal(m->http[1].ss_family, AF_INET6);
	assert_int_equal(m->n_allow, 3);
	assert_true(allowed(m, "10.0.5.200"));
	assert_true(allowed(m, "::ffff:10.0.5.1")); /* a v4 client on a v6 listener */
	assert_true(allowed(m, "192.0.2.7"));
	assert_true(allowed(m, "2001:db8::1"));
	assert_false(allowed(m, "10.0.6.1"));
	assert_false(allowed(m, "192.0.2.8"));
	assert_false(allowed(m, "127.0.0.1")); /* an allow list replaces the default */
	conf_unref(c);
}

static void test_default_loopback(void **state)
{
	char err[1024];
	(void)state;
	struct stp_conf *c = parse("listen 127.0.0.1:1080\nmetrics { http 127.0.0.1:9180 }\n", err,
				   sizeof(err));
	if (!c)
		fail_msg("%s", err);
	const struct mt_conf *m = mt_conf_get(c);
	assert_int_equal(m->n_allow, 0);
	assert_true(allowed(m, "127.0.0.1"));
	assert_true(allowed(m, "127.9.8.7"));
	assert_true(allowed(m, "::1"));
	assert_true(allowed(m, "::ffff:127.0.0.1"));
	assert_false(allowed(m, "10.0.0.1"));
	assert_false(allowed(m, "::2"));
	conf_unref(c);
}

static void test_errors(void **state)
{
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{ "metrics {\n\thttp 127.0.0.1\n}\n", "t.conf:2: bad address '127.0.0.1' for 'http'" },
		{ "metrics {\n\thttp nowhere:80\n}\n", "t.conf:2: bad address 'nowhere:80' for 'http'" },
		{ "metrics {\n\thttp 127.0.0.1:1 127.0.0.1:2 127.0.0.1:3 127.0.0.1:4 "
		  "127.0.0.1:5\n}\n",
		  "t.conf:2: 'http' takes at most 4" },
		{ "metrics {\n\tallow 10.0.0.0/33\n}\n",
		  "t.conf:2: bad address or CIDR '10.0.0.0/33' for 'allow'" },
		{ "metrics {\n\tallow\n}\n", "t.conf:2:" },
		{ "metrics {\n\tport 9180\n}\n", "t.conf:2:" },
		{ "metrics { http 127.0.0.1:1 }\nmetrics { http 127.0.0.1:2 }\n", "t.conf:2:" },
	};
	char err[1024];
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct stp_conf *c = parse(bad[i].text, err, sizeof(err));
		if (c)
			fail_msg("accepted: %s", bad[i].text);
		if (!strstr(err, bad[i].msg))
			fail_msg("for %s: got '%s', want '%s'", bad[i].text, err, bad[i].msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allow),
		cmocka_unit_test(test_default_loopback),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
