/*
 * tn_ext.c - the tunnel module's registry entry: SETUP_UDP_TUNNEL X'20'
 * (a client asks this stpd for a tunnel to another stpd) and TUNNEL RELAY
 * X'21' (another stpd asks this one to be the tunnel's far end).
 * docs/protocol.md section 5.10.
 */
#include "ext/tunnel/tn_int.h"
#include "proto/tunnel.h"
#include "server/ext.h"

static const struct stp_command tn_commands[] = {
	{ TUNNEL_CMD_SETUP, RULE_CMD_TUNNEL, false, tn_local_start },
	{ TUNNEL_CMD_RELAY, RULE_CMD_TUNNEL_RELAY, false, tn_remote_start },
};

const struct stp_ext ext_tunnel = {
	.name = "tunnel",
	.commands = tn_commands,
	.n_commands = sizeof(tn_commands) / sizeof(tn_commands[0]),
};
