/*
 * bd_ext.c - the bind extension's registry entry: LISTEN X'10' (a control
 * connection with N TCP and M UDP binds) and ACCEPT X'11' (a data
 * connection taking one arrival). docs/protocol.md section 5.9.
 */
#include "ext/bind/bd.h"
#include "server/ext.h"

static const struct stp_command bd_commands[] = {
	{ MBIND_CMD_LISTEN, RULE_CMD_LISTEN, false, bd_listen_start },
	/* ACCEPT is authorised by its arrival (same user, same client
	 * address); the peer passed listenreply when it arrived. */
	{ MBIND_CMD_ACCEPT, RULE_CMD_LISTENREPLY, false, bd_accept_start },
};

const struct stp_ext ext_bind = {
	.name = "bind",
	.commands = bd_commands,
	.n_commands = sizeof(bd_commands) / sizeof(bd_commands[0]),
};
