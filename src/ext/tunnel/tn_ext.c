/*
 * tn_ext.c - the tunnel module's registry entry: SETUP_UDP_TUNNEL X'20'
 * (a client asks this stpd for a tunnel to another stpd) and TUNNEL RELAY
 * X'21' (another stpd asks this one to be the tunnel's far end).
 * docs/protocol.md section 5.10.
 */
#include "ext/tunnel/tn_int.h"
#include "proto/featdoc.h"
#include "proto/tunnel.h"
#include "server/ext.h"
#include "server/session.h"

/* Feature discovery: the transports each side offers (a far end without
 * tunnel { cert key } has no DTLS), the idle time and the largest
 * datagram. */
static void tn_describe(const struct session *s, struct feat_writer *w)
{
	const struct tn_conf *c = tn_conf_get(session_conf(s));
	static const uint8_t both[] = { TUNNEL_TRANS_DTLS, TUNNEL_TRANS_TLS };
	static const uint8_t tls_only[] = { TUNNEL_TRANS_TLS };
	bool dtls = c->cert[0] && c->key[0];

	feat_put_codes(w, FEAT_SCOPE_COMMAND, TUNNEL_CMD_SETUP, "transports", both, 2);
	feat_put_codes(w, FEAT_SCOPE_COMMAND, TUNNEL_CMD_RELAY, "transports",
		       dtls ? both : tls_only, dtls ? 2 : 1);
	for (uint8_t cmd = TUNNEL_CMD_SETUP; cmd <= TUNNEL_CMD_RELAY; cmd++) {
		feat_put_uint(w, FEAT_SCOPE_COMMAND, cmd, "idle-timeout", c->idle);
		feat_put_uint(w, FEAT_SCOPE_COMMAND, cmd, "datagram-max", TN_DGRAM_MAX);
	}
}

static const struct stp_command tn_commands[] = {
	{ TUNNEL_CMD_SETUP, RULE_CMD_TUNNEL, false, tn_local_start },
	{ TUNNEL_CMD_RELAY, RULE_CMD_TUNNEL_RELAY, false, tn_remote_start },
};

const struct stp_ext ext_tunnel = {
	.name = "tunnel",
	.commands = tn_commands,
	.n_commands = sizeof(tn_commands) / sizeof(tn_commands[0]),
	.describe = tn_describe,
};
