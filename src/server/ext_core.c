/*
 * ext_core.c - RFC 1928's own commands and methods, registered like any
 * extension.
 */
#include "policy/rules.h"
#include "proto/socks.h"
#include "server/cmd.h"
#include "server/ext.h"

extern const struct stp_method core_methods[];
extern const size_t n_core_methods;

static const struct stp_command core_commands[] = {
	{ SOCKS_CMD_CONNECT, RULE_CMD_CONNECT, true, cmd_connect_start },
	{ SOCKS_CMD_BIND, RULE_CMD_BIND, true, cmd_bind_start },
	{ SOCKS_CMD_UDP_ASSOCIATE, RULE_CMD_UDPASSOCIATE, false, cmd_udp_start },
};

const struct stp_ext ext_core = {
	.name = "core",
	.commands = core_commands,
	.n_commands = sizeof(core_commands) / sizeof(core_commands[0]),
	.methods = core_methods,
	.n_methods = 2,
};
