/*
 * mx_conf.c - see mx_conf.h.
 */
#include "ext/mux/mx_conf.h"

#include <stddef.h>
#include <string.h>

static void k_number(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct mx_conf *m = data;
	if (strcmp(s->key, "max-streams") == 0)
		conf_ext_uint(p, s, 1, 10000, &m->max_streams);
	else if (strcmp(s->key, "window") == 0)
		conf_ext_uint(p, s, 16384, 16777216, &m->window);
}

static void mx_conf_defaults(void *data)
{
	*(struct mx_conf *)data = (struct mx_conf){ .max_streams = 100, .window = 262144 };
}

static const struct conf_ext_key mx_keys[] = {
	{ "max-streams", 1, 1, true, k_number },
	{ "window", 1, 1, true, k_number },
};

static const struct conf_ext_section mx_section = {
	.name = "mux",
	.what = "a mux block",
	.keys = mx_keys,
	.n_keys = sizeof(mx_keys) / sizeof(mx_keys[0]),
	.settings_size = sizeof(struct mx_conf),
	.init_defaults = mx_conf_defaults,
};

static const struct conf_ext_command mx_commands[] = {
	{ "mux", RULE_CMD_MUX },
};

const struct conf_ext mx_conf_ext = {
	.name = "mux",
	.section = &mx_section,
	.commands = mx_commands,
	.n_commands = sizeof(mx_commands) / sizeof(mx_commands[0]),
};

const struct mx_conf *mx_conf_get(const struct stp_conf *c)
{
	return conf_ext_get(c, &mx_conf_ext);
}
