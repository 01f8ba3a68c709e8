/*
 * test_conf_ext.c - a new extension adds to stpd.conf through the registry
 * alone (policy/conf_ext.h): a test-only extension "demo" with its section
 * `demo { level N; note TEXT }`, a key in request rules (`weight N`), one
 * in listen blocks (`demo-tag NAME`) and a command name, linked with the
 * policy library only. Its settings are parsed, checked and freed with the
 * snapshot; its errors carry line numbers like the core's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/conf.h"
#include "policy/conf_ext.h"

#define DEMO_CMD_BIT (1u << 20)

struct demo_conf {
	unsigned level; /* default 1 */
	char *note;     /* owned: released by the free hook */
};

struct demo_rule {
	unsigned weight;
};

struct demo_listener {
	char tag[16];
};

static int demo_freed; /* free hook calls */

static void k_level(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	conf_ext_uint(p, s, 0, 9, &((struct demo_conf *)data)->level);
}

static void k_note(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct demo_conf *d = data;
	free(d->note);
	d->note = strdup(s->args[0]);
	if (!d->note)
		conf_error(p, s->line, "out of memory");
}

static void k_weight(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	conf_ext_uint(p, s, 1, 100, &((struct demo_rule *)data)->weight);
}

static void k_tag(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	conf_ext_string(p, s, ((struct demo_listener *)data)->tag, 16);
}

static void demo_defaults(void *data)
{
	((struct demo_conf *)data)->level = 1;
}

static void demo_check(struct conf_parser *p, const struct stp_conf *c, const void *data)
{
	const struct demo_conf *d = data;
	if (d->level > 5 && !d->note)
		conf_error(p, conf_first_line(p, "demo"), "'level' above 5 needs a 'note'");
}

static void demo_free(void *data)
{
	free(((struct demo_conf *)data)->note);
	demo_freed++;
}

static const struct conf_ext_key demo_keys[] = {
	{ "level", 1, 1, true, k_level },
	{ "note", 1, 1, true, k_note },
};

static const struct conf_ext_section demo_section = {
	.name = "demo",
	.what = "a demo block",
	.keys = demo_keys,
	.n_keys = 2,
	.settings_size = sizeof(struct demo_conf),
	.init_defaults = demo_defaults,
	.check = demo_check,
	.free = demo_free,
};

static const struct conf_ext_rule_key demo_rule_keys[] = {
	{ CONF_IN_REQUEST_RULE, { "weight", 1, 1, true, k_weight } },
	{ CONF_IN_LISTEN, { "demo-tag", 1, 1, true, k_tag } },
};

static const struct conf_ext_command demo_commands[] = {
	{ "demo-cmd", DEMO_CMD_BIT },
};

static const struct conf_ext demo_ext = {
	.name = "demo",
	.section = &demo_section,
	.rule_keys = demo_rule_keys,
	.n_rule_keys = 2,
	.listener_size = sizeof(struct demo_listener),
	.rule_size = sizeof(struct demo_rule),
	.commands = demo_commands,
	.n_commands = 1,
};

static void demo_register(void)
{
	char err[256] = "";
	assert_int_equal(conf_ext_register(&demo_ext, err, sizeof(err)), 0);
	assert_string_equal(err, "");
}

static struct stp_conf *parse(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return conf_parse_string("t.conf", text, strlen(text), err, errlen);
}

static void expect_errors(const char *text, const char *want)
{
	char err[2048];
	struct stp_conf *c = parse(text, err, sizeof(err));
	if (c) {
		conf_unref(c);
		fail_msg("parsed, want:\n%s", want);
	}
	assert_string_equal(err, want);
}

/* First, before registration: the core knows nothing of "demo". */
static void test_unregistered(void **state)
{
	expect_errors("demo { level 3 }\n", "t.conf:1: unknown keyword 'demo' in the top level\n");
	struct stp_conf *c = conf_default();
	assert_non_null(c);
	assert_null(conf_ext_get(c, &demo_ext));
	conf_unref(c);
}

static void test_parsed(void **state)
{
	demo_register();
	demo_register(); /* again: a no-op */
	char err[1024];
	struct stp_conf *c = parse("listen 127.0.0.1:1 { demo-tag blue }\n"
				   "listen 127.0.0.1:2\n"
				   "demo {\n  level 3\n  note \"hello there\"\n}\n"
				   "request pass { weight 5; command connect demo-cmd }\n"
				   "request block\n",
				   err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	const struct demo_conf *d = conf_ext_get(c, &demo_ext);
	assert_non_null(d);
	assert_int_equal(d->level, 3);
	assert_string_equal(d->note, "hello there");
	const struct demo_listener *l = conf_ext_listener(&c->listeners[0], &demo_ext);
	assert_non_null(l);
	assert_string_equal(l->tag, "blue");
	assert_null(conf_ext_listener(&c->listeners[1], &demo_ext));
	const struct demo_rule *r = conf_ext_rule(&c->request_rules[0], &demo_ext);
	assert_non_null(r);
	assert_int_equal(r->weight, 5);
	assert_null(conf_ext_rule(&c->request_rules[1], &demo_ext));
	assert_int_equal(c->request_rules[0].commands, RULE_CMD_CONNECT | DEMO_CMD_BIT);
	assert_string_equal(conf_command_name(DEMO_CMD_BIT), "demo-cmd");
	assert_string_equal(conf_command_name(RULE_CMD_BIND), "bind");
	assert_string_equal(conf_command_name(1u << 30), "unknown");
	int freed = demo_freed;
	conf_unref(c);
	assert_int_equal(demo_freed, freed + 1); /* the free hook ran with the snapshot */
}

static void test_defaults(void **state)
{
	demo_register();
	struct stp_conf *c = conf_default();
	assert_non_null(c);
	const struct demo_conf *d = conf_ext_get(c, &demo_ext);
	assert_non_null(d);
	assert_int_equal(d->level, 1);
	assert_null(d->note);
	conf_unref(c);
}

static void test_errors(void **state)
{
	demo_register();
	expect_errors("demo {\n  level 12\n}\n",
		      "t.conf:2: 'level' wants a number from 0 to 9, not '12'\n");
	expect_errors("demo { level 3 }\n\ndemo { level 4 }\n",
		      "t.conf:3: duplicate 'level' in a demo block (first at line 1)\n");
	expect_errors("demo {\n  colour red\n}\n",
		      "t.conf:2: unknown keyword 'colour' in a demo block\n");
	expect_errors("demo { workers 2 }\n", "t.conf:1: 'workers' is not valid in a demo block\n");
	expect_errors("demo\n", "t.conf:1: 'demo' needs a block: demo { ... }\n");
	expect_errors("demo { level 1 2 }\n", "t.conf:1: 'level' takes 1 value, not 2\n");
	expect_errors("client pass {\n  weight 2\n}\n",
		      "t.conf:2: 'weight' is not valid in a client rule\n");
	expect_errors("request pass { weight 0 }\n",
		      "t.conf:1: 'weight' wants a number from 1 to 100, not '0'\n");
	expect_errors("request pass { weight 1; weight 2 }\n",
		      "t.conf:1: duplicate 'weight' in a request rule (first at line 1)\n");
	expect_errors("listen 127.0.0.1:1 { demo-tag \"\" }\n",
		      "t.conf:1: 'demo-tag' wants 1 to 15 characters\n");
	expect_errors("request pass { command demo }\n",
		      "t.conf:1: unknown command 'demo' (connect, bind, bindreply, udpassociate, "
		      "udpreply, transparent, demo-cmd)\n");
	/* The whole-file check points at the first demo block. */
	expect_errors("workers 1\n\ndemo { level 7 }\n",
		      "t.conf:3: 'level' above 5 needs a 'note'\n");
	/* Settings freed on a failed parse too (ASan's leak check sees the note). */
	int freed = demo_freed;
	expect_errors("demo { note x; level 12 }\n",
		      "t.conf:1: 'level' wants a number from 0 to 9, not '12'\n");
	assert_int_equal(demo_freed, freed + 1);
}

static void dummy_key(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
}

/* What the registry refuses, with nothing of the refused one left behind. */
static void test_register_refused(void **state)
{
	static const struct conf_ext_key k[] = { { "level", 1, 1, true, dummy_key } };
	static const struct conf_ext_section log_again = { .name = "log", .what = "a log block",
							    .keys = k, .n_keys = 1 };
	static const struct conf_ext_section demo_again = { .name = "demo", .what = "x",
							     .keys = k, .n_keys = 1 };
	static const struct conf_ext_command core_bit[] = { { "conn2", RULE_CMD_CONNECT } };
	static const struct conf_ext_command taken_name[] = { { "demo-cmd", 1u << 21 } };
	static const struct conf_ext_rule_key core_key[] = {
		{ CONF_IN_REQUEST_RULE, { "fresh-key", 1, 1, true, dummy_key } },
		{ CONF_IN_REQUEST_RULE, { "port", 1, 1, true, dummy_key } },
	};
	static const struct conf_ext bad[] = {
		{ .name = "a", .section = &log_again },
		{ .name = "b", .section = &demo_again },
		{ .name = "c", .commands = core_bit, .n_commands = 1 },
		{ .name = "d", .commands = taken_name, .n_commands = 1 },
		{ .name = "e", .rule_keys = core_key, .n_rule_keys = 2 },
	};
	char err[256], buf[2048];
	demo_register();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(conf_ext_register(&bad[i], err, sizeof(err)), -1);
		assert_non_null(strstr(err, bad[i].name));
	}
	/* "fresh-key" was undone with "e": not a keyword anywhere. */
	expect_errors("request pass { fresh-key 1 }\n",
		      "t.conf:1: unknown keyword 'fresh-key' in a request rule\n");
	struct stp_conf *c = parse("demo { level 2 }\n", buf, sizeof(buf));
	assert_non_null(c);
	conf_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unregistered), /* first: before any registration */
		cmocka_unit_test(test_parsed),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_register_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
