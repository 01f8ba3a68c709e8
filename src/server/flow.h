/*
 * flow.h - one request carried by a control session. A control connection
 * that keeps serving requests after its first reply (multicast JOIN/LEAVE
 * today; binds, tunnels, TRANSPARENT and streams as they land) gives each
 * request a flow: its own rule match and `sessions` slot, reply code,
 * counters and one log line when it ends ("flow id=SESSION.N ..."). The
 * session's own line still closes the connection. Flows still open when the
 * session closes end with its reason.
 */
#ifndef STP_SERVER_FLOW_H
#define STP_SERVER_FLOW_H

#include <stdint.h>
#include <sys/socket.h>

#include "proto/socks.h"

struct flow;
struct rule;
struct session;

/* Checks the request rules for rule_cmd toward dst (dst_addr and/or
 * dst_name, port in target) and opens a flow of cmd for target: the first
 * matching pass rule's `sessions` slot is held until flow_close. NULL when
 * blocked or out of memory: *why says which, the denial is logged. */
struct flow *flow_open(struct session *s, uint32_t rule_cmd, uint8_t cmd,
		       const struct socks_addr *target, const struct sockaddr *dst_addr,
		       const char **why);

/* The pass rule that opened the flow. */
const struct rule *flow_rule(const struct flow *f);
/* "SESSION.N", for log lines about the flow. */
const char *flow_tag(const struct flow *f, char *out, size_t cap);
/* Bytes (or, for a datagram flow, what its log line calls up/down) moved. */
void flow_count(struct flow *f, uint64_t up, uint64_t down);
void flow_reply(struct flow *f, uint8_t rep);
/* Writes the flow's log line and frees it; its rule slot is given back. */
void flow_close(struct flow *f, const char *result);

#endif
