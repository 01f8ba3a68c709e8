/*
 * mc_ext.c - the multicast extension as seen by stpd's registry.
 */
#include "ext/mcast/mc.h"
#include "ext/mcast/mc_conf.h"
#include "policy/rules.h"
#include "proto/featdoc.h"
#include "proto/mcast.h"
#include "server/ext.h"
#include "server/session.h"

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

/* Feature discovery: the suite members' frames are sealed with and the
 * group limits, for both JOIN forms. */
static void mc_describe(const struct session *s, struct feat_writer *w)
{
	static const uint8_t joins[] = { SOCKS_CMD_JOIN_MCAST, MCAST_CMD_JOIN_FILTER };
	const struct mc_conf *m = mc_conf_get(session_conf(s));
	uint8_t suite = (uint8_t)m->encryption;

	for (size_t i = 0; i < sizeof(joins); i++) {
		feat_put_codes(w, FEAT_SCOPE_COMMAND, joins[i], "suites", &suite, 1);
		feat_put_uint(w, FEAT_SCOPE_COMMAND, joins[i], "max-members", m->max_members);
		feat_put_uint(w, FEAT_SCOPE_COMMAND, joins[i], "max-time", m->max_time);
		feat_put_uint(w, FEAT_SCOPE_COMMAND, joins[i], "idle-timeout", m->idle_timeout);
		feat_put_uint(w, FEAT_SCOPE_COMMAND, joins[i], "rate", m->rate);
	}
	feat_put_uint(w, FEAT_SCOPE_COMMAND, MCAST_CMD_JOIN_FILTER, "sources-max",
		      MCAST_SOURCES_MAX);
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
	.gauges = mc_hub_gauges,
	.describe = mc_describe,
};
