/*
 * ac_ext.c - the auto-configuration extension as seen by stpd's registry:
 * CMD X'F4' on the workers, and the PAC listener as a process-wide part.
 */
#include "ext/autoconf/ac.h"
#include "proto/socks.h"
#include "server/ext.h"

static const struct stp_command ac_commands[] = {
	{ SOCKS_CMD_AUTOCONFIG, RULE_CMD_AUTOCONFIG, false, ac_cmd_start },
};

const struct stp_ext ext_autoconf = {
	.name = "autoconf",
	.commands = ac_commands,
	.n_commands = sizeof(ac_commands) / sizeof(ac_commands[0]),
	.server_start = ac_http_start,
	.server_stop = ac_http_stop,
};
