/*
 * mc_policy.c - what the request rules grant a member: the first request
 * rule matching mcast-join for the group and port decides; a pass rule
 * grants what its `mcast` key says (send, receive, or both when absent).
 * Each membership is a flow of the control session: it holds a slot of
 * that rule's `sessions` limit while joined, and ends with its own log line.
 */
#include <time.h>

#include "ext/mcast/mc.h"
#include "policy/rules.h"
#include "server/flow.h"
#include "server/session.h"

static uint8_t perms_of(const struct rule *r)
{
	uint8_t perms = 0;
	if (r->mcast_perms == 0)
		return MCAST_KEYF_SEND | MCAST_KEYF_RECV;
	if (r->mcast_perms & RULE_MCAST_SEND)
		perms |= MCAST_KEYF_SEND;
	if (r->mcast_perms & RULE_MCAST_RECV)
		perms |= MCAST_KEYF_RECV;
	return perms;
}

struct flow *mc_policy_open(struct session *s, const struct mcast_request *req, uint8_t *perms)
{
	const char *why;
	struct flow *f = flow_open(s, RULE_CMD_MCAST_JOIN, req->cmd, &req->group, &why);
	if (f)
		*perms = perms_of(flow_rule(f));
	return f; /* NULL: blocked, the denial is logged */
}
