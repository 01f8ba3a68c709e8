/*
 * test_mcast_conf.c - the mcast { } block and the `mcast` key of request
 * rules (mc_conf.c through the config registry, docs/config.md), as the
 * multicast module reads them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <sys/socket.h>

#include "ext/ext_conf.h"
#include "ext/mcast/mc_conf.h"
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

static void test_defaults(void **state)
{
	char err[1024];
	struct stp_conf *c = parse("", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(mc_conf_get(c)->encryption, MCAST_ENC_AES256GCM);
	assert_int_equal(mc_conf_get(c)->max_members, 64);
	assert_int_equal(mc_conf_get(c)->idle_timeout, 600);
	assert_int_equal(mc_conf_get(c)->ttl, 16);
	assert_int_equal(mc_conf_get(c)->rate, 0);
	assert_string_equal(mc_conf_get(c)->external_if, "");
	assert_int_equal(mc_conf_get(c)->pool4.family, AF_INET);
	assert_int_equal(mc_conf_get(c)->pool4.prefix, 16);
	assert_int_equal(mc_conf_get(c)->pool4.addr[0], 239);
	assert_int_equal(mc_conf_get(c)->pool6.family, AF_INET6);
	assert_int_equal(mc_conf_get(c)->pool6.addr[1], 0x15);
	conf_unref(c);
}

static void test_block(void **state)
{
	char err[1024];
	struct stp_conf *c = parse("mcast {\n"
				   "  external-interface eth1\n"
				   "  internal-interface br0\n"
				   "  pool 239.192.0.0/14 ff18::/32\n"
				   "  encryption chacha20-poly1305\n"
				   "  max-members 5; max-time 3600; idle-timeout 0\n"
				   "  rate 125000; burst 250000; ttl 4\n"
				   "}\n",
				   err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_string_equal(mc_conf_get(c)->external_if, "eth1");
	assert_string_equal(mc_conf_get(c)->internal_if, "br0");
	assert_int_equal(mc_conf_get(c)->pool4.prefix, 14);
	assert_int_equal(mc_conf_get(c)->pool6.addr[1], 0x18);
	assert_int_equal(mc_conf_get(c)->encryption, MCAST_ENC_CHACHA20);
	assert_int_equal(mc_conf_get(c)->max_members, 5);
	assert_int_equal(mc_conf_get(c)->max_time, 3600);
	assert_int_equal(mc_conf_get(c)->idle_timeout, 0);
	assert_int_equal(mc_conf_get(c)->rate, 125000);
	assert_int_equal(mc_conf_get(c)->burst, 250000);
	assert_int_equal(mc_conf_get(c)->ttl, 4);
	conf_unref(c);
	c = parse("mcast { encryption off }\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(mc_conf_get(c)->encryption, MCAST_ENC_OFF);
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
	expect_error("mcast {\n encryption rot13\n}\n", 2, "aes-256-gcm, chacha20-poly1305 or off");
	expect_error("mcast { pool 10.0.0.0/8 }\n", 1, "multicast prefix");
	expect_error("mcast { pool 239.1.1.1/32 }\n", 1, "too small");
	expect_error("mcast { pool 239.1.0.0/16 239.2.0.0/16 }\n", 1, "one IPv4 and one IPv6");
	expect_error("mcast { external-interface a/b }\n", 1, "bad interface name");
	expect_error("mcast { ttl 0 }\n", 1, "from 1 to 255");
	expect_error("mcast { rate 1 }\nmcast { rate 2 }\n", 2, "rate");
	expect_error("mcast { listen 1.2.3.4:1 }\n", 1, "not valid");
	expect_error("request pass { mcast everything }\n", 1, "send and/or receive");
}

static void test_rule_perms(void **state)
{
	char err[1024];
	struct stp_conf *c = parse("request pass { command mcast-join; mcast send }\n"
				   "request pass { command mcast-join; mcast receive }\n"
				   "request pass { command mcast-join; mcast send receive }\n"
				   "request pass { }\n",
				   err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->n_request_rules, 4);
	assert_int_equal(mc_conf_rule_perms(&c->request_rules[0]), RULE_MCAST_SEND);
	assert_int_equal(mc_conf_rule_perms(&c->request_rules[1]), RULE_MCAST_RECV);
	assert_int_equal(mc_conf_rule_perms(&c->request_rules[2]), RULE_MCAST_SEND | RULE_MCAST_RECV);
	assert_int_equal(mc_conf_rule_perms(&c->request_rules[3]), 0);
	conf_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_block),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_rule_perms),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
