/*
 * ac_ext.c - the auto-configuration extension as seen by stpd's registry:
 * CMD X'F4' on the workers, and the PAC listener as a process-wide part.
 */
#include "ext/autoconf/ac.h"
#include "proto/autoconf.h"
#include "proto/featdoc.h"
#include "proto/socks.h"
#include "server/ext.h"
#include "server/session.h"

/* Without a profile X'F4' answers X'07': discovery leaves it out. */
static bool ac_enabled(const struct stp_conf *c)
{
	const struct ac_conf *ac = ac_conf_get(c);
	return ac && ac->n_profiles > 0;
}

/* Feature discovery: how many profiles, the shortest `refresh` among them
 * (before authentication the profile a client will get is not known, so
 * the soonest it may have to ask again), and whether PAC is served too. */
static void ac_describe(const struct session *s, struct feat_writer *w)
{
	const struct ac_conf *ac = ac_conf_get(session_conf(s));
	unsigned refresh = 0;

	if (!ac || ac->n_profiles == 0)
		return;
	for (size_t i = 0; i < ac->n_profiles; i++)
		if (i == 0 || ac->profiles[i].refresh < refresh)
			refresh = ac->profiles[i].refresh;
	feat_put_uint(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_AUTOCONFIG, "profiles", ac->n_profiles);
	feat_put_uint(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_AUTOCONFIG, "refresh", refresh);
	feat_put_uint(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_AUTOCONFIG, "doc-max", ACDOC_MAX);
	if (ac->n_http > 0)
		feat_put_flag(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_AUTOCONFIG, "pac");
}

static const struct stp_command ac_commands[] = {
	{ SOCKS_CMD_AUTOCONFIG, RULE_CMD_AUTOCONFIG, false, ac_cmd_start },
};

const struct stp_ext ext_autoconf = {
	.name = "autoconf",
	.commands = ac_commands,
	.n_commands = sizeof(ac_commands) / sizeof(ac_commands[0]),
	.server_start = ac_http_start,
	.server_stop = ac_http_stop,
	.describe = ac_describe,
	.commands_enabled = ac_enabled,
};
