/*
 * mc_policy.c - what the request rules grant a member: the first request
 * rule matching mcast-join for the group and port decides; a pass rule
 * grants what its `mcast` key says (send, receive, or both when absent).
 */
#include <time.h>

#include "ext/mcast/mc.h"
#include "ext/mcast/mc_conf.h"
#include "policy/rules.h"
#include "server/session.h"

/* The rule session_allowed() just passed: the same context, matched again
 * (rules are immutable in the snapshot, so the answer is the same). */
static const struct rule *passing_rule(struct session *s, const struct sockaddr *group,
				       uint16_t port)
{
	return session_match_rule(s, RULE_CMD_MCAST_JOIN, group, NULL, port);
}

uint8_t mc_policy_perms(struct session *s, const struct sockaddr *group, uint16_t port)
{
	/* Logs a denial, and holds the rule's session slot like any command. */
	if (!session_allowed(s, RULE_CMD_MCAST_JOIN, group, NULL, port, true))
		return 0;
	const struct rule *r = passing_rule(s, group, port);
	uint8_t perms = 0, granted = mc_conf_rule_perms(r);
	if (granted == 0)
		return MCAST_KEYF_SEND | MCAST_KEYF_RECV;
	if (granted & RULE_MCAST_SEND)
		perms |= MCAST_KEYF_SEND;
	if (granted & RULE_MCAST_RECV)
		perms |= MCAST_KEYF_RECV;
	return perms;
}
