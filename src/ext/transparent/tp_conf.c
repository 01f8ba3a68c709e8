/*
 * tp_conf.c - the `transparent { }` section and the `ptcl` request-rule key
 * (tp_conf.h), registered with the config registry.
 */
#include "ext/transparent/tp_conf.h"

#include <stdlib.h>
#include <string.h>

#include "ext/transparent/tp_engine.h"

#define TP_IDLE_MAX 604800u /* one week, as the core's timeouts */

/* The engines this program has (tp_engines.c, in the module's library).
 * Weak: a program that parses configs without the module (the config
 * fuzzer, policy unit tests) has none and accepts every engine name; stpd
 * always links it when the module is built. */
extern const struct tp_engine_ops *tp_engine_find(const char *name) __attribute__((weak));

static const char *const engine_names[] = {
	[TP_ENGINE_USER] = "user",
	[TP_ENGINE_KERNEL] = "kernel",
	[TP_ENGINE_REMOTE] = "remote",
};

/* The settings block: the public struct first, then what checks need. */
struct tp_settings {
	struct tp_conf conf;
	int engine_line, relay_line;
	bool present; /* the file has a key of the section */
};

static void k_engine(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tp_settings *t = data;
	t->present = true;
	for (size_t i = 0; i < sizeof(engine_names) / sizeof(engine_names[0]); i++) {
		if (strcmp(s->args[0], engine_names[i]) != 0)
			continue;
		if (tp_engine_find && !tp_engine_find(engine_names[i])) {
			conf_error(p, s->line, "engine '%s' is not built in", engine_names[i]);
			return;
		}
		t->conf.engine = (enum tp_engine_kind)i;
		t->conf.engine_name = engine_names[i];
		t->engine_line = s->line;
		return;
	}
	conf_error(p, s->line, "'engine' is user, kernel or remote, not '%.64s'", s->args[0]);
}

static void set_string(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
}

/* relay unix:PATH | relay HOST:PORT; relay-tls-ca/-cert/-key FILE */
static void k_relay(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tp_settings *t = data;
	t->present = true;
	const char *v = s->args[0];
	if (v[0] == '\0' || strlen(v) > 4096) {
		conf_error(p, s->line, "bad value for '%s'", s->key);
		return;
	}
	if (strcmp(s->key, "relay") == 0) {
		if (strncmp(v, "unix:", 5) != 0 && !strrchr(v, ':')) {
			conf_error(p, s->line, "'relay' is unix:PATH or HOST:PORT, not '%.64s'", v);
			return;
		}
		set_string(&t->conf.relay, v);
		t->relay_line = s->line;
	} else if (strcmp(s->key, "relay-tls-ca") == 0) {
		conf_ext_note_file(p, s); /* relay-tls-*: the broker may open them */
		set_string(&t->conf.relay_ca, v);
	} else if (strcmp(s->key, "relay-tls-cert") == 0) {
		conf_ext_note_file(p, s);
		set_string(&t->conf.relay_cert, v);
	} else {
		conf_ext_note_file(p, s);
		set_string(&t->conf.relay_key, v);
	}
}

/* yes|no, and on|off as the core's booleans */
static void k_end_on_fin(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tp_settings *t = data;
	t->present = true;
	const char *v = s->args[0];
	if (strcmp(v, "yes") == 0 || strcmp(v, "on") == 0)
		t->conf.end_on_fin = true;
	else if (strcmp(v, "no") == 0 || strcmp(v, "off") == 0)
		t->conf.end_on_fin = false;
	else
		conf_error(p, s->line, "'end-on-fin' is yes or no, not '%.64s'", v);
}

static void k_idle(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tp_settings *t = data;
	t->present = true;
	unsigned secs = t->conf.idle_ms / 1000;
	conf_ext_uint(p, s, 0, TP_IDLE_MAX, &secs);
	t->conf.idle_ms = secs * 1000u;
}

/* ptcl tcp|udp [tcp|udp] in a request rule */
static void k_ptcl(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tp_conf_rule *r = data;
	for (size_t i = 0; i < s->nargs; i++) {
		if (strcmp(s->args[i], "tcp") == 0)
			r->ptcls |= TP_RULE_PTCL_TCP;
		else if (strcmp(s->args[i], "udp") == 0)
			r->ptcls |= TP_RULE_PTCL_UDP;
		else
			conf_error(p, s->line, "'ptcl' is tcp and/or udp, not '%.64s'", s->args[i]);
	}
}

static void tp_defaults(void *data)
{
	struct tp_settings *t = data;
	*t = (struct tp_settings){ .conf = { .engine = TP_ENGINE_USER,
					     .engine_name = "user",
					     .end_on_fin = true,
					     .idle_ms = 300u * 1000u } };
}

static void tp_check(struct conf_parser *p, const struct stp_conf *c, const void *settings)
{
	const struct tp_settings *t = settings;
	(void)c;
	if (t->conf.engine == TP_ENGINE_REMOTE && !t->conf.relay)
		conf_error(p, t->engine_line,
			   "engine remote needs 'relay unix:PATH' or "
			   "'relay HOST:PORT'");
	if (t->conf.engine != TP_ENGINE_REMOTE && t->conf.relay)
		conf_error(p, t->relay_line, "'relay' is for engine remote");
}

static void tp_free(void *settings)
{
	struct tp_settings *t = settings;
	free(t->conf.relay);
	free(t->conf.relay_ca);
	free(t->conf.relay_cert);
	free(t->conf.relay_key);
}

#define KEY1(name, fn)               \
	{                            \
		name, 1, 1, true, fn \
	}
static const struct conf_ext_key tp_keys[] = {
	KEY1("end-on-fin", k_end_on_fin),
	KEY1("engine", k_engine),
	KEY1("idle", k_idle),
	KEY1("relay", k_relay),
	KEY1("relay-tls-ca", k_relay),
	KEY1("relay-tls-cert", k_relay),
	KEY1("relay-tls-key", k_relay),
};

static const struct conf_ext_section tp_section = {
	.name = "transparent",
	.what = "a transparent block",
	.keys = tp_keys,
	.n_keys = sizeof(tp_keys) / sizeof(tp_keys[0]),
	.settings_size = sizeof(struct tp_settings),
	.init_defaults = tp_defaults,
	.check = tp_check,
	.free = tp_free,
};

static const struct conf_ext_rule_key tp_rule_keys[] = {
	{ CONF_IN_REQUEST_RULE, { "ptcl", 1, 2, true, k_ptcl } },
};

const struct conf_ext tp_conf_ext = {
	.name = "transparent",
	.section = &tp_section,
	.rule_keys = tp_rule_keys,
	.n_rule_keys = sizeof(tp_rule_keys) / sizeof(tp_rule_keys[0]),
	.rule_size = sizeof(struct tp_conf_rule),
};

const struct tp_conf *tp_conf_get(const struct stp_conf *c)
{
	const struct tp_settings *t = conf_ext_get(c, &tp_conf_ext);
	return t ? &t->conf : NULL;
}

bool tp_conf_present(const struct stp_conf *c)
{
	const struct tp_settings *t = conf_ext_get(c, &tp_conf_ext);
	return t && t->present;
}

unsigned tp_conf_rule_ptcls(const struct rule *r)
{
	const struct tp_conf_rule *d = r ? conf_ext_rule(r, &tp_conf_ext) : NULL;
	return d && d->ptcls ? d->ptcls : TP_RULE_PTCL_TCP | TP_RULE_PTCL_UDP;
}
