/*
 * rs_conf.c - see rs_conf.h: the extension has no section and no keys of
 * its own, only the command names rules use.
 */
#include "ext/resolve/rs_conf.h"

static const struct conf_ext_command rs_commands[] = {
	{ "resolve", RULE_CMD_RESOLVE },
	{ "resolve-ptr", RULE_CMD_RESOLVE_PTR },
};

const struct conf_ext rs_conf_ext = {
	.name = "resolve",
	.commands = rs_commands,
	.n_commands = sizeof(rs_commands) / sizeof(rs_commands[0]),
};
