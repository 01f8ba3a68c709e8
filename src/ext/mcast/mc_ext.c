/*
 * mc_ext.c - the multicast extension as seen by stpd's registry.
 */
#include "ext/mcast/mc.h"
#include "ext/mcast/mc_conf.h"
#include "policy/rules.h"
#include "proto/mcast.h"
#include "server/ext.h"

static int mc_worker_init(struct worker *w)
{
	(void)w;
	return mc_hub_attach();
}

static void mc_worker_fini(struct worker *w)
{
	(void)w;
	mc_hub_detach();
}

static const struct stp_command mc_commands[] = {
	{ SOCKS_CMD_JOIN_MCAST, RULE_CMD_MCAST_JOIN, false, mc_cmd_join },
	{ MCAST_CMD_JOIN_FILTER, RULE_CMD_MCAST_JOIN, false, mc_cmd_join },
	{ SOCKS_CMD_LEAVE_MCAST, RULE_CMD_MCAST_LEAVE, false, mc_cmd_leave },
};

const struct stp_ext ext_mcast = {
	.name = "mcast",
	.commands = mc_commands,
	.n_commands = sizeof(mc_commands) / sizeof(mc_commands[0]),
	.worker_init = mc_worker_init,
	.worker_fini = mc_worker_fini,
};
