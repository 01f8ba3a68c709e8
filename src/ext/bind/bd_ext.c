/*
 * bd_ext.c - the bind extension's registry entry: LISTEN X'10' (a control
 * connection with N TCP and M UDP binds) and ACCEPT X'11' (a data
 * connection taking one arrival). docs/protocol.md section 5.9.
 */
#include "ext/bind/bd.h"
#include "proto/featdoc.h"
#include "server/ext.h"
#include "server/session.h"

/* Feature discovery: the bind kinds and the binds { } limits a LISTEN
 * control connection runs under (over them: REP X'0B'), and how long an
 * arrival waits for its ACCEPT. */
static void bd_describe(const struct session *s, struct feat_writer *w)
{
	static const uint8_t kinds[] = { MBIND_KIND_TCP, MBIND_KIND_UDP };
	const struct bd_conf *b = bd_conf_get(session_conf(s));
	const uint8_t l = MBIND_CMD_LISTEN, sc = FEAT_SCOPE_COMMAND;
	feat_put_codes(w, sc, l, "kinds", kinds, sizeof(kinds));
	feat_put_uint(w, sc, l, "binds-per-request", MBIND_MAX);
	feat_put_uint(w, sc, l, "max-binds", b->max_binds);
	feat_put_uint(w, sc, l, "max-pending", b->max_pending);
	feat_put_uint(w, sc, l, "max-peers", b->max_peers);
	feat_put_uint(w, sc, l, "max-backlog", b->max_backlog);
	feat_put_uint(w, sc, l, "accept-timeout", b->accept_timeout);
	feat_put_uint(w, sc, MBIND_CMD_ACCEPT, "accept-timeout", b->accept_timeout);
}

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
	.describe = bd_describe,
};
