/*
 * disc_conf.c - see disc_conf.h: no section and no keys, only the command
 * name rules use.
 */
#include "ext/discovery/disc_conf.h"

static const struct conf_ext_command disc_commands[] = {
	{ "discover", RULE_CMD_DISCOVER },
};

const struct conf_ext disc_conf_ext = {
	.name = "discovery",
	.commands = disc_commands,
	.n_commands = sizeof(disc_commands) / sizeof(disc_commands[0]),
};
