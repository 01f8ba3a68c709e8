/*
 * test_rules.c - rule matching: CIDR (IPv4, IPv6, IPv4-mapped), domain
 * names and suffixes, ports, time windows (also across midnight), weekdays,
 * users and groups, commands, listeners, missing context, first match wins.
 * Runs with TZ=UTC so local time is predictable.
 */
#include "policy_test.h"

#include <stdlib.h>
#include <time.h>

/* 2024-01-01 00:00 UTC, a Monday. */
#define MONDAY_0000 ((time_t)1704067200)
#define AT(day, h, m) (MONDAY_0000 + (time_t)(day) * 86400 + (h) * 3600 + (m) * 60)

static struct sockaddr_storage client_ss, dst_ss;

/* A request context: client 10.0.0.1, listener "main", connect, no target. */
static struct rule_ctx base_ctx(void)
{
	client_ss = pt_addr("10.0.0.1:5555");
	struct rule_ctx ctx = {
		.client = (struct sockaddr *)&client_ss,
		.listener = "main",
		.command = RULE_CMD_CONNECT,
		.now = AT(0, 12, 0),
	};
	return ctx;
}

static void set_dst(struct rule_ctx *ctx, const char *addr)
{
	dst_ss = pt_addr(addr);
	ctx->dst_addr = (struct sockaddr *)&dst_ss;
	ctx->dst_port = (uint16_t)sa_port(ctx->dst_addr);
}

/* Parses one request rule body and tells whether ctx matches it. */
static bool matches(const char *body, const struct rule_ctx *ctx)
{
	char text[1024];
	snprintf(text, sizeof(text), "listen 127.0.0.1:1 { name main }\n"
				     "listen 127.0.0.1:2 { name other }\n"
				     "request pass { %s }\n", body);
	struct stp_conf *c = pt_parse(text);
	bool hit = rules_match(c->request_rules, c->n_request_rules, ctx) != NULL;
	conf_unref(c);
	return hit;
}

static bool cidr(const char *range, const char *addr)
{
	struct rule_cidr c;
	struct sockaddr_storage ss = pt_addr(addr);
	assert_int_equal(rule_cidr_parse(&c, range), 0);
	return rule_cidr_match(&c, (struct sockaddr *)&ss);
}

static void test_cidr_parse(void **state)
{
	struct rule_cidr c;
	assert_int_equal(rule_cidr_parse(&c, "10.1.2.3/8"), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_int_equal(c.addr[0], 10);
	assert_int_equal(c.addr[1], 0); /* host bits cleared */
	assert_int_equal(rule_cidr_parse(&c, "192.0.2.255/25"), 0);
	assert_int_equal(c.addr[3], 128);
	assert_int_equal(rule_cidr_parse(&c, "::1"), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(rule_cidr_parse(&c, "1.2.3.4"), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(rule_cidr_parse(&c, "fe80::/10"), 0);
	assert_int_equal(c.prefix, 10);
	assert_int_equal(rule_cidr_parse(&c, "::ffff:1.2.3.4/104"), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_int_equal(rule_cidr_parse(&c, "::ffff:0:0/95"), 0); /* not purely mapped */
	assert_int_equal(c.family, AF_INET6);
	static const char *const bad[] = { "", "/8", "10.0.0.0/33", "::/129", "10.0.0.0/",
					   "10.0.0.0/1a", "10.0.0.0/+8", "10.0.0.0/0008",
					   "example.com", "10.0.0/8", "1.2.3.4/8/8", "[::1]" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (rule_cidr_parse(&c, bad[i]) == 0)
			fail_msg("'%s' parsed", bad[i]);
}

static void test_cidr_match(void **state)
{
	assert_true(cidr("10.0.0.0/8", "10.255.255.255"));
	assert_false(cidr("10.0.0.0/8", "11.0.0.0"));
	assert_true(cidr("192.168.16.0/20", "192.168.31.255"));
	assert_false(cidr("192.168.16.0/20", "192.168.32.0"));
	assert_false(cidr("192.168.16.0/20", "192.168.15.255"));
	assert_true(cidr("1.2.3.4/32", "1.2.3.4"));
	assert_false(cidr("1.2.3.4/32", "1.2.3.5"));
	assert_true(cidr("1.2.3.4/31", "1.2.3.5"));
	assert_true(cidr("0.0.0.0/0", "203.0.113.9"));
	assert_false(cidr("0.0.0.0/0", "::1"));
	assert_true(cidr("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(cidr("2001:db8::/32", "2001:db9::1"));
	assert_true(cidr("fe80::/10", "febf::1"));
	assert_false(cidr("fe80::/10", "fec0::1"));
	assert_true(cidr("::/0", "::1"));
	/* IPv4-mapped clients match IPv4 ranges, and only those. */
	assert_true(cidr("1.2.3.0/24", "::ffff:1.2.3.4"));
	assert_false(cidr("1.2.3.0/24", "::ffff:1.2.4.4"));
	assert_false(cidr("::/0", "::ffff:1.2.3.4"));
	assert_false(cidr("::/0", "1.2.3.4"));
	assert_true(cidr("::ffff:1.2.3.0/120", "1.2.3.99"));
	assert_true(cidr("::ffff:1.2.3.0/120", "::ffff:1.2.3.99"));
	/* Not an INET address: no match. */
	struct rule_cidr c;
	struct sockaddr sa = { .sa_family = AF_UNIX };
	assert_int_equal(rule_cidr_parse(&c, "0.0.0.0/0"), 0);
	assert_false(rule_cidr_match(&c, &sa));
	assert_false(rule_cidr_match(&c, NULL));
}

static void test_from_and_listener(void **state)
{
	struct rule_ctx ctx = base_ctx();
	assert_true(matches("from 10.0.0.0/8", &ctx));
	assert_true(matches("from 192.0.2.0/24 10.0.0.1", &ctx));
	assert_false(matches("from 192.0.2.0/24 ::/0", &ctx));
	client_ss = pt_addr("::ffff:10.0.0.1");
	assert_true(matches("from 10.0.0.0/24", &ctx));
	assert_true(matches("listener main", &ctx));
	assert_true(matches("listener other main", &ctx));
	assert_false(matches("listener other", &ctx));
	ctx.listener = NULL;
	assert_false(matches("listener main", &ctx));
	ctx.client = NULL;
	assert_false(matches("from 0.0.0.0/0", &ctx));
	assert_true(matches("", &ctx)); /* empty lists are "any" */
}

static void test_domains(void **state)
{
	struct rule_ctx ctx = base_ctx();
	static const struct {
		const char *pattern, *name;
		bool hit;
	} cases[] = {
		{ ".example.com", "example.com", true },
		{ ".example.com", "www.example.com", true },
		{ ".example.com", "a.b.example.com", true },
		{ ".example.com", "WWW.Example.COM", true },
		{ ".example.com", "www.example.com.", true },
		{ ".example.com", "example.com.", true },
		{ ".example.com", "badexample.com", false },
		{ ".example.com", "example.com.evil", false },
		{ ".example.com", "xample.com", false },
		{ ".example.com", "com", false },
		{ ".example.com", ".", false },
		{ ".example.com", "", false },
		{ ".example.com.", "www.example.com", true },
		{ "host.test", "host.test", true },
		{ "host.test", "HOST.test.", true },
		{ "host.test", "a.host.test", false },
		{ "host.test", "host.tes", false },
		{ "host.test", "host.testx", false },
		{ "Host.Test", "host.test", true },
		{ ".com", "example.com", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[128];
		snprintf(body, sizeof(body), "to %s", cases[i].pattern);
		ctx.dst_name = cases[i].name;
		if (matches(body, &ctx) != cases[i].hit)
			fail_msg("'%s' vs '%s': want %d", cases[i].pattern, cases[i].name,
				 cases[i].hit);
	}
	/* A name rule needs a name; an address rule needs an address. */
	ctx.dst_name = NULL;
	set_dst(&ctx, "10.1.1.1:80");
	assert_false(matches("to .example.com", &ctx));
	assert_true(matches("to 10.0.0.0/8", &ctx));
	ctx.dst_addr = NULL;
	ctx.dst_name = "www.example.com";
	assert_false(matches("to 10.0.0.0/8", &ctx));
	/* Both kinds in one rule: either may match. */
	assert_true(matches("to 10.0.0.0/8 .example.com", &ctx));
	ctx.dst_name = "other.test";
	assert_false(matches("to 10.0.0.0/8 .example.com", &ctx));
	set_dst(&ctx, "10.1.1.1:80");
	assert_true(matches("to 10.0.0.0/8 .example.com", &ctx));
	set_dst(&ctx, "[2001:db8::5]:80");
	assert_false(matches("to 10.0.0.0/8 .example.com", &ctx));
	assert_true(matches("to 10.0.0.0/8 2001:db8::/64", &ctx));
}

static void test_ports(void **state)
{
	struct rule_ctx ctx = base_ctx();
	set_dst(&ctx, "192.0.2.1:443");
	assert_true(matches("port 443", &ctx));
	assert_true(matches("port 80 443", &ctx));
	assert_false(matches("port 80 444", &ctx));
	assert_true(matches("port 400-443", &ctx));
	assert_true(matches("port 443-500", &ctx));
	assert_false(matches("port 444-500", &ctx));
	assert_false(matches("port 1-442", &ctx));
	ctx.dst_port = 65535;
	assert_true(matches("port 1-65535", &ctx));
	ctx.dst_port = 0; /* unknown */
	assert_false(matches("port 1-65535", &ctx));
	assert_true(matches("to 192.0.2.0/24", &ctx));
}

static void test_time_windows(void **state)
{
	struct rule_ctx ctx = base_ctx();
	static const struct {
		const char *window;
		int h, m;
		bool hit;
	} cases[] = {
		{ "08:00-18:00", 7, 59, false }, { "08:00-18:00", 8, 0, true },
		{ "08:00-18:00", 12, 0, true },  { "08:00-18:00", 18, 0, true },
		{ "08:00-18:00", 18, 1, false }, { "22:00-06:00", 21, 59, false },
		{ "22:00-06:00", 22, 0, true },  { "22:00-06:00", 23, 59, true },
		{ "22:00-06:00", 0, 0, true },   { "22:00-06:00", 6, 0, true },
		{ "22:00-06:00", 6, 1, false },  { "22:00-06:00", 12, 0, false },
		{ "00:00-23:59", 23, 59, true }, { "00:00-23:59", 0, 0, true },
		{ "12:30-12:30", 12, 30, true }, { "12:30-12:30", 12, 31, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[64];
		snprintf(body, sizeof(body), "time %s", cases[i].window);
		ctx.now = AT(2, cases[i].h, cases[i].m) + 59; /* seconds do not count */
		if (matches(body, &ctx) != cases[i].hit)
			fail_msg("%s at %02d:%02d: want %d", cases[i].window, cases[i].h, cases[i].m,
				 cases[i].hit);
	}
	ctx.now = 0; /* unknown time: a time rule does not match */
	assert_false(matches("time 00:00-23:59", &ctx));
	assert_false(matches("days sun-sat", &ctx));
	assert_true(matches("", &ctx));
}

static void test_weekdays(void **state)
{
	struct rule_ctx ctx = base_ctx();
	ctx.now = AT(0, 9, 0); /* Monday */
	assert_true(matches("days mon-fri", &ctx));
	assert_true(matches("days mon", &ctx));
	assert_false(matches("days tue-fri", &ctx));
	assert_true(matches("days fri-mon", &ctx));
	assert_false(matches("days sat sun", &ctx));
	ctx.now = AT(6, 9, 0); /* Sunday */
	assert_true(matches("days sat sun", &ctx));
	assert_true(matches("days fri-mon", &ctx));
	assert_false(matches("days mon-fri", &ctx));
	ctx.now = AT(5, 23, 30); /* Saturday night */
	assert_true(matches("days sat; time 22:00-06:00", &ctx));
	assert_false(matches("days sun; time 22:00-06:00", &ctx));
	ctx.now = AT(6, 1, 0); /* Sunday 01:00: the day is the day it is */
	assert_false(matches("days sat; time 22:00-06:00", &ctx));
}

/* Local time is what counts: UTC 23:30 Monday is Tuesday in Tokyo. */
static void test_timezone(void **state)
{
	struct rule_ctx ctx = base_ctx();
	ctx.now = AT(0, 23, 30);
	assert_true(matches("days mon; time 23:00-23:59", &ctx));
	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	bool tokyo_ok = matches("days tue; time 08:30-08:30", &ctx);
	setenv("TZ", "UTC", 1);
	tzset();
	assert_true(tokyo_ok);
}

static void test_users_and_groups(void **state)
{
	struct rule_ctx ctx = base_ctx();
	const char *groups[] = { "dev", "staff" };
	assert_false(matches("user alice", &ctx)); /* no user */
	assert_true(matches("user alice -", &ctx));
	assert_false(matches("group staff", &ctx));
	ctx.user = "alice";
	assert_true(matches("user alice", &ctx));
	assert_true(matches("user bob alice", &ctx));
	assert_false(matches("user Alice", &ctx)); /* exact */
	assert_false(matches("user alic", &ctx));
	assert_false(matches("user -", &ctx));
	assert_false(matches("group staff", &ctx)); /* no groups */
	ctx.groups = groups;
	ctx.n_groups = 2;
	assert_true(matches("group staff", &ctx));
	assert_true(matches("group ops dev", &ctx));
	assert_false(matches("group ops", &ctx));
	assert_true(matches("user alice; group staff", &ctx));
	assert_false(matches("user bob; group staff", &ctx));
	ctx.n_groups = 1;
	assert_false(matches("group staff", &ctx));
	/* Directory group names hold spaces, quotes and more: quoted in the
	 * config (\" and \\ the only escapes), matched byte for byte. */
	const char *dir_groups[] = { "Domain Admins", "R&D \"core\"", "a;b{c}#d" };
	ctx.groups = dir_groups;
	ctx.n_groups = 3;
	assert_true(matches("group \"Domain Admins\"", &ctx));
	assert_false(matches("group \"domain admins\"", &ctx)); /* exact */
	assert_false(matches("group Domain", &ctx));
	assert_true(matches("group ops \"R&D \\\"core\\\"\"", &ctx));
	assert_true(matches("group \"a;b{c}#d\"", &ctx));
}

static void test_commands(void **state)
{
	struct rule_ctx ctx = base_ctx();
	static const struct {
		const char *name;
		uint32_t bit;
	} cmds[] = {
		{ "connect", RULE_CMD_CONNECT },     { "bind", RULE_CMD_BIND },
		{ "bindreply", RULE_CMD_BINDREPLY }, { "udpassociate", RULE_CMD_UDPASSOCIATE },
		{ "udpreply", RULE_CMD_UDPREPLY },   { "transparent", RULE_CMD_TRANSPARENT },
		{ "mcast-join", RULE_CMD_MCAST_JOIN }, { "mcast-leave", RULE_CMD_MCAST_LEAVE },
	};
	for (size_t i = 0; i < 8; i++) {
		char body[64];
		snprintf(body, sizeof(body), "command %s", cmds[i].name);
		for (size_t j = 0; j < 8; j++) {
			ctx.command = cmds[j].bit;
			if (matches(body, &ctx) != (i == j))
				fail_msg("rule '%s', command %s", body, cmds[j].name);
		}
	}
	ctx.command = RULE_CMD_UDPREPLY;
	assert_true(matches("command udpassociate udpreply", &ctx));
	assert_true(matches("", &ctx));
	ctx.command = 0; /* a client-level decision */
	assert_false(matches("command connect", &ctx));
	assert_true(matches("from 10.0.0.0/8", &ctx));
}

static void test_first_match_wins(void **state)
{
	struct stp_conf *c = pt_parse(
		"request block { to 169.254.0.0/16 }\n"      /* 1 */
		"request pass { user alice; port 22 }\n"     /* 2 */
		"request block { port 22 }\n"                /* 3 */
		"request pass { to .example.com }\n"         /* 4 */
		"request pass { command connect; port 1-1023 }\n"); /* 5 */
	struct rule_ctx ctx = base_ctx();
	char desc[64];
	const struct rule *r;

	set_dst(&ctx, "169.254.169.254:80");
	r = rules_match(c->request_rules, c->n_request_rules, &ctx);
	assert_ptr_equal(r, &c->request_rules[0]);
	assert_int_equal(r->action, RULE_BLOCK);
	ctx.user = "alice";
	set_dst(&ctx, "192.0.2.1:22");
	r = rules_match(c->request_rules, c->n_request_rules, &ctx);
	assert_ptr_equal(r, &c->request_rules[1]);
	rules_describe(r, desc, sizeof(desc));
	assert_string_equal(desc, "rule at t.conf:2");
	ctx.user = "bob";
	r = rules_match(c->request_rules, c->n_request_rules, &ctx);
	assert_ptr_equal(r, &c->request_rules[2]);
	assert_int_equal(r->action, RULE_BLOCK);
	ctx.dst_addr = NULL;
	ctx.dst_name = "www.example.com";
	ctx.dst_port = 8443;
	assert_ptr_equal(rules_match(c->request_rules, c->n_request_rules, &ctx),
			 &c->request_rules[3]);
	ctx.dst_name = "other.test";
	assert_null(rules_match(c->request_rules, c->n_request_rules, &ctx)); /* no match */
	ctx.dst_port = 80;
	assert_ptr_equal(rules_match(c->request_rules, c->n_request_rules, &ctx),
			 &c->request_rules[4]);
	ctx.command = RULE_CMD_BIND;
	assert_null(rules_match(c->request_rules, c->n_request_rules, &ctx));
	assert_null(rules_match(c->request_rules, 0, &ctx));
	conf_unref(c);
}

/* rules_may_pass (feature discovery): the rules text's verdict for a
 * command with the destination unknown, and the user unknown or known. */
static bool may_pass(const char *rules, const struct rule_ctx *ctx, bool user_unknown)
{
	char text[2048];
	snprintf(text, sizeof(text), "listen 127.0.0.1:1 { name main }\n%s", rules);
	struct stp_conf *c = pt_parse(text);
	bool yes = rules_may_pass(c->request_rules, c->n_request_rules, ctx, user_unknown);
	conf_unref(c);
	return yes;
}

static void test_may_pass(void **state)
{
	struct rule_ctx ctx = base_ctx();
	/* a pass rule for some destinations only: may pass */
	assert_true(may_pass("request pass { command connect; to 192.0.2.0/24 }\n", &ctx, true));
	/* no rule at all, or only another command's: no */
	assert_false(may_pass("request pass { command bind }\n", &ctx, true));
	/* a block for some destinations does not hide a later pass */
	assert_true(may_pass("request block { to 10.0.0.0/8 }\nrequest pass { }\n", &ctx, true));
	assert_true(may_pass("request block { port 25 }\nrequest pass { }\n", &ctx, true));
	/* a block of the command for this client does */
	assert_false(may_pass("request block { command connect }\nrequest pass { }\n", &ctx, true));
	assert_false(may_pass("request block { from 10.0.0.0/8 }\nrequest pass { }\n", &ctx, true));
	/* ... but not for another client, listener or command */
	assert_true(
		may_pass("request block { from 192.0.2.0/24 }\nrequest pass { }\n", &ctx, true));
	assert_true(may_pass("request block { command bind }\nrequest pass { }\n", &ctx, true));
	/* users: before authentication a rule naming one may match, and a
	 * block naming one is not sure to */
	assert_true(may_pass("request pass { user alice }\n", &ctx, true));
	assert_true(may_pass("request block { user bob }\nrequest pass { }\n", &ctx, true));
	/* once the user is known, it is matched exactly */
	assert_false(may_pass("request pass { user alice }\n", &ctx, false));
	ctx.user = "alice";
	assert_true(may_pass("request pass { user alice }\n", &ctx, false));
	assert_false(may_pass("request block { user alice }\nrequest pass { }\n", &ctx, false));
}

static void test_client_rules(void **state)
{
	struct stp_conf *c = pt_parse("listen 127.0.0.1:1 { name main }\n"
				      "client block { from 10.0.0.66 }\n"
				      "client pass { from 10.0.0.0/8; listener main; time 08:00-18:00 }\n"
				      "client block\n");
	struct rule_ctx ctx = base_ctx();
	ctx.command = 0;
	assert_ptr_equal(rules_match(c->client_rules, c->n_client_rules, &ctx),
			 &c->client_rules[1]);
	ctx.now = AT(0, 19, 0);
	assert_ptr_equal(rules_match(c->client_rules, c->n_client_rules, &ctx),
			 &c->client_rules[2]);
	ctx.now = AT(0, 9, 0);
	client_ss = pt_addr("10.0.0.66");
	assert_ptr_equal(rules_match(c->client_rules, c->n_client_rules, &ctx),
			 &c->client_rules[0]);
	conf_unref(c);
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_from_and_listener),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_time_windows),
		cmocka_unit_test(test_weekdays),
		cmocka_unit_test(test_timezone),
		cmocka_unit_test(test_users_and_groups),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_first_match_wins),
		cmocka_unit_test(test_client_rules),
		cmocka_unit_test(test_may_pass),
	};
	return cmocka_run_group_tests(tests, pt_setup, NULL);
}
