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

/* Checks the request rules for rule_cmd toward target (an address or a
 * name, and its port) and opens a flow of cmd for it: the first matching
 * pass rule's `sessions` slot is held until flow_close. NULL when blocked
 * or out of memory: *why says which, the denial is logged. */
struct flow *flow_open(struct session *s, uint32_t rule_cmd, uint8_t cmd,
		       const struct socks_addr *target, const char **why);

/* flow_open for a target name the command has resolved: the rules see the
 * name and that address together (as CONNECT checks each address), the
 * flow keeps the name. resolved is ignored when target is an address. */
struct flow *flow_open_at(struct session *s, uint32_t rule_cmd, uint8_t cmd,
			  const struct socks_addr *target, const struct sockaddr *resolved,
			  const char **why);

/* The pass rule that opened the flow. */
const struct rule *flow_rule(const struct flow *f);
/* "SESSION.N", for log lines about the flow. */
const char *flow_tag(const struct flow *f, char *out, size_t cap);
/* Bytes (or, for a datagram flow, what its log line calls up/down) moved. */
void flow_count(struct flow *f, uint64_t up, uint64_t down);
void flow_reply(struct flow *f, uint8_t rep);
/* The flow's own relay between `client` (a connection the flow carries: a
 * data connection, a bind's accepted peer; the flow takes it over, filter
 * and all) and the `target` socket (taken over too). Bytes count into the
 * flow. When the relay ends, done(f, reason) runs, or flow_close(f,
 * reason) when done is NULL. 0, or -1 when it could not start (out of
 * memory): the caller still owns both. */
struct conn;
int flow_relay_stream(struct flow *f, struct conn *client, int target,
		      void (*done)(struct flow *f, const char *reason));

/* The flow takes over a datagram relay its request set up (dgram.h; the
 * caller starts it and handles its idle op): the payload bytes it moved go
 * into the flow's line, and flow_close frees it. */
struct dgram_relay;
void flow_own_dgram(struct flow *f, struct dgram_relay *r);

/* The user's pointer for the flow (NULL until set), e.g. for a relay's
 * done callback to find its owner. */
void flow_set_data(struct flow *f, void *data);
void *flow_data(const struct flow *f);
/* Bytes counted so far, with those of a relay still running. */
void flow_counts(const struct flow *f, uint64_t *up, uint64_t *down);

/* Writes the flow's log line and frees it; its rule slot is given back, a
 * relay it runs is stopped and its sockets closed. */
void flow_close(struct flow *f, const char *result);

#endif
