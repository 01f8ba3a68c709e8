/*
 * test_tp_conf.c - the transparent { } block and the `ptcl` request-rule
 * key (src/ext/transparent/tp_conf.c, docs/config.md), as the module reads
 * them, and the engine table (tp_engines.c) the `engine` key checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ext/ext_conf.h"
#include "ext/transparent/tp_conf.h"
#include "ext/transparent/tp_engine.h"
#include "policy/conf.h"
#include "policy/rules.h"

static int setup(void **state)
{
	char err[256];
	(void)state;
	return ext_conf_register(err, sizeof(err));
}

static struct stp_conf *parse(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return conf_parse_string("t.conf", text, strlen(text), err, errlen);
}

static struct stp_conf *parse_ok(const char *text)
{
	char err[2048];
	struct stp_conf *c = parse(text, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	return c;
}

static void expect_error(const char *text, const char *msg)
{
	char err[2048];
	struct stp_conf *c = parse(text, err, sizeof(err));
	if (c) {
		conf_unref(c);
		fail_msg("parsed: %s", text);
	}
	if (!strstr(err, msg))
		fail_msg("'%s' not in '%s'", msg, err);
}

static void test_defaults(void **state)
{
	struct stp_conf *c = parse_ok("");
	const struct tp_conf *t = tp_conf_get(c);
	(void)state;
	assert_non_null(t);
	assert_int_equal(t->engine, TP_ENGINE_USER);
	assert_string_equal(t->engine_name, "user");
	assert_null(t->relay);
	assert_true(t->end_on_fin);
	assert_int_equal(t->idle_ms, 300000);
	assert_false(tp_conf_present(c)); /* stpd -t prints no engine line */
	conf_unref(c);
}

static void test_block(void **state)
{
	struct stp_conf *c = parse_ok("transparent {\n engine user\n end-on-fin no\n idle 42\n}\n");
	const struct tp_conf *t = tp_conf_get(c);
	(void)state;
	assert_int_equal(t->engine, TP_ENGINE_USER);
	assert_false(t->end_on_fin);
	assert_int_equal(t->idle_ms, 42000);
	assert_true(tp_conf_present(c));
	conf_unref(c);
	c = parse_ok("transparent { idle 0; end-on-fin yes }\n");
	assert_int_equal(tp_conf_get(c)->idle_ms, 0);
	assert_true(tp_conf_get(c)->end_on_fin);
	conf_unref(c);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("transparent {\n engine fast\n}\n",
		     "t.conf:2: 'engine' is user, kernel or remote, not 'fast'");
	expect_error("transparent { end-on-fin maybe }\n", "t.conf:1: 'end-on-fin' is yes or no");
	expect_error("transparent { idle 9999999 }\n", "t.conf:1:");
	expect_error("transparent { idle 1; idle 2 }\n", "duplicate 'idle'");
	expect_error("transparent { relay unix:/run/tp.sock }\n", "'relay' is for engine remote");
	expect_error("transparent { nonsense 1 }\n", "t.conf:1:");
	expect_error("request pass { command transparent; ptcl sctp }\n",
		     "'ptcl' is tcp and/or udp, not 'sctp'");
}

/* kernel and remote parse; where this build lacks them, `stpd -t` says so
 * at the line. */
static void test_engines(void **state)
{
	char err[2048];
	static const char *const names[] = { "kernel", "remote" };
	(void)state;
	assert_non_null(tp_engine_find("user"));
	assert_string_equal(tp_engine_find("user")->name, "user");
	assert_null(tp_engine_find("bogus"));
	for (size_t i = 0; i < 2; i++) {
		char text[256], msg[128];
		snprintf(text, sizeof(text), "transparent {\n engine %s\n relay unix:/run/tp\n}\n",
			 names[i]);
		struct stp_conf *c = parse(text, err, sizeof(err));
		if (tp_engine_find(names[i])) {
			if (i == 0) /* relay is for remote only */
				assert_non_null(strstr(err, "'relay' is for engine remote"));
			else
				assert_non_null(c);
		} else {
			assert_null(c);
			snprintf(msg, sizeof(msg), "t.conf:2: engine '%s' is not built in",
				 names[i]);
			if (!strstr(err, msg))
				fail_msg("'%s' not in '%s'", msg, err);
		}
		if (c)
			conf_unref(c);
	}
}

static void test_rule_ptcl(void **state)
{
	struct stp_conf *c = parse_ok("request pass { command transparent; ptcl tcp }\n"
				      "request pass { command transparent; ptcl udp tcp }\n"
				      "request pass\n");
	(void)state;
	assert_int_equal(c->n_request_rules, 3);
	assert_int_equal(tp_conf_rule_ptcls(&c->request_rules[0]), TP_RULE_PTCL_TCP);
	assert_int_equal(tp_conf_rule_ptcls(&c->request_rules[1]),
			 TP_RULE_PTCL_TCP | TP_RULE_PTCL_UDP);
	/* no key: both */
	assert_int_equal(tp_conf_rule_ptcls(&c->request_rules[2]),
			 TP_RULE_PTCL_TCP | TP_RULE_PTCL_UDP);
	assert_int_equal(conf_command_name(RULE_CMD_TRANSPARENT)[0], 't');
	conf_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),  cmocka_unit_test(test_block),
		cmocka_unit_test(test_errors),    cmocka_unit_test(test_engines),
		cmocka_unit_test(test_rule_ptcl),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
