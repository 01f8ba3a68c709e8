/*
 * ext_core.c - RFC 1928's own commands and methods, registered like any
 * extension.
 */
#include "policy/rules.h"
#include "proto/featdoc.h"
#include "proto/socks.h"
#include "server/cmd.h"
#include "server/ext.h"
#include "server/session.h"
#include "server/udpbatch.h"

extern const struct stp_method core_methods[];
extern const size_t n_core_methods;

static const struct stp_command core_commands[] = {
	{ SOCKS_CMD_CONNECT, RULE_CMD_CONNECT, true, cmd_connect_start },
	{ SOCKS_CMD_BIND, RULE_CMD_BIND, true, cmd_bind_start },
	{ SOCKS_CMD_UDP_ASSOCIATE, RULE_CMD_UDPASSOCIATE, false, cmd_udp_start },
};

/* Feature discovery: the limits and timeouts (seconds) the config sets,
 * server-wide and per command (docs/protocol.md 5.6 lists the names). */
static void core_describe(const struct session *s, struct feat_writer *w)
{
	const struct stp_conf *c = session_conf(s);
	feat_put_uint(w, FEAT_SCOPE_SERVER, 0, "max-sessions", c->limits.max_sessions);
	feat_put_uint(w, FEAT_SCOPE_SERVER, 0, "max-sessions-per-client",
		      c->limits.max_sessions_per_client);
	feat_put_uint(w, FEAT_SCOPE_SERVER, 0, "handshake-timeout", c->timeouts.handshake);
	feat_put_uint(w, FEAT_SCOPE_SERVER, 0, "idle-timeout", c->timeouts.idle);
	feat_put_uint(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_CONNECT, "timeout", c->timeouts.connect);
	feat_put_uint(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_BIND, "accept-timeout",
		      c->timeouts.bind_accept);
	feat_put_uint(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_UDP_ASSOCIATE, "idle-timeout",
		      c->timeouts.udp_idle);
	feat_put_uint(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_UDP_ASSOCIATE, "datagram-max",
		      UDP_SLOT_PAYLOAD);
}

const struct stp_ext ext_core = {
	.name = "core",
	.commands = core_commands,
	.n_commands = sizeof(core_commands) / sizeof(core_commands[0]),
	.methods = core_methods,
	.n_methods = 2,
	.describe = core_describe,
};
