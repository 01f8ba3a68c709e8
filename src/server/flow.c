/*
 * flow.c - requests of a control session (flow.h): rule slot, counters and
 * the flow's log line.
 */
#include "server/flow.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "policy/rules.h"
#include "server/dgram.h"
#include "server/server.h"
#include "server/session_int.h"
#include "server/sessionlog.h"

struct flow *flow_open(struct session *s, uint32_t rule_cmd, uint8_t cmd,
		       const struct socks_addr *target, const char **why)
{
	return flow_open_at(s, rule_cmd, cmd, target, NULL, why);
}

struct flow *flow_open_at(struct session *s, uint32_t rule_cmd, uint8_t cmd,
			  const struct socks_addr *target, const struct sockaddr *resolved,
			  const char **why)
{
	char name[SOCKS_DOMAIN_MAX + 1];
	const char *dst_name = NULL;
	struct sockaddr_storage ss;
	const struct sockaddr *dst_addr = NULL;
	if (target->atyp == SOCKS_ATYP_DOMAIN) {
		memcpy(name, target->u.name, target->namelen);
		name[target->namelen] = '\0';
		dst_name = name;
		dst_addr = resolved; /* rules see both, as for CONNECT */
	} else {
		socklen_t len;
		sa_from_socks(&ss, &len, target);
		dst_addr = (const struct sockaddr *)&ss;
	}
	const struct rule *r = session_match_rule(s, rule_cmd, dst_addr, dst_name, target->port);
	*why = NULL;
	if (!r || r->action != RULE_PASS)
		*why = "blocked";
	else if (!rule_slot_take(r))
		*why = "session limit of rule reached";
	if (*why) {
		sessionlog_deny(s, rule_cmd, dst_addr, dst_name, target->port, r, *why);
		return NULL;
	}
	struct flow *f = calloc(1, sizeof(*f));
	if (!f) {
		rule_slot_give(r);
		*why = "out of memory";
		return NULL;
	}
	f->s = s;
	f->n = ++s->flows_opened;
	f->cmd = cmd;
	f->target = *target;
	f->rule = r;
	s->pass_rule = r; /* session_socket() makes the flow's sockets where r says */
	f->started = ev_now(s->w->loop);
	f->next = s->flows;
	if (s->flows)
		s->flows->prev = f;
	s->flows = f;
	return f;
}

const struct rule *flow_rule(const struct flow *f)
{
	return f->rule;
}

const char *flow_tag(const struct flow *f, char *out, size_t cap)
{
	snprintf(out, cap, "%llu.%u", (unsigned long long)f->s->id, f->n);
	return out;
}

void flow_count(struct flow *f, uint64_t up, uint64_t down)
{
	f->up += up;
	f->down += down;
}

void flow_reply(struct flow *f, uint8_t rep)
{
	f->rep = rep;
	f->rep_set = true;
}

static void on_flow_relay_done(struct relay *r, const char *reason)
{
	struct flow *f = (struct flow *)((char *)r - offsetof(struct flow, relay));
	if (f->relay_done)
		f->relay_done(f, reason);
	else
		flow_close(f, reason);
}

int flow_relay_stream(struct flow *f, struct conn *client, int target,
		      void (*done)(struct flow *f, const char *reason))
{
	struct session *s = f->s;
	f->client = *client;
	f->relay_done = done;
	if (relay_start(&f->relay, s->w->loop, s->w->pipes, &f->client, target, NULL, 0,
			s->conf->timeouts.idle, s->conf->limits.relay_buffer,
			on_flow_relay_done) < 0) {
		relay_stop(&f->relay);
		return -1;
	}
	f->relaying = true;
	return 0;
}

void flow_own_dgram(struct flow *f, struct dgram_relay *r)
{
	f->dgram = r;
}

void flow_set_data(struct flow *f, void *data)
{
	f->data = data;
}

void *flow_data(const struct flow *f)
{
	return f->data;
}

void flow_counts(const struct flow *f, uint64_t *up, uint64_t *down)
{
	*up = f->up;
	*down = f->down;
	if (f->relaying) {
		*up += f->relay.half[0].bytes;
		*down += f->relay.half[1].bytes;
	}
	if (f->dgram) {
		const struct dgram_counts *n = dgram_relay_counts(f->dgram);
		*up += n->up_bytes;
		*down += n->down_bytes;
	}
}

void flow_close(struct flow *f, const char *result)
{
	struct session *s = f->s;
	if (f->dgram) {
		const struct dgram_counts *n = dgram_relay_counts(f->dgram);
		f->up += n->up_bytes;
		f->down += n->down_bytes;
		if (n->unsealed_bad) { /* a method's datagram protection (a bind's UDP port) */
			char tag[SA_STR_MAX + 300];
			log_info("%s: udp datagrams failing the method's protection: %llu",
				 session_tag(s, tag, sizeof(tag)),
				 (unsigned long long)n->unsealed_bad);
		}
		dgram_relay_free(f->dgram);
		f->dgram = NULL;
	}
	if (f->relaying) {
		relay_stop(&f->relay);
		f->up += f->relay.half[0].bytes;
		f->down += f->relay.half[1].bytes;
		conn_close(&f->client);
		close(f->relay.fd[1]);
		f->relaying = false;
	}
	sessionlog_flow(s, f, result);
	stats_inc(&stats_here()->flows);
	stats_add(&stats_here()->bytes_up, f->up);
	stats_add(&stats_here()->bytes_down, f->down);
	if (f->rep_set)
		stats_inc(&stats_here()->replies[f->rep]);
	rule_slot_give(f->rule);
	if (f->prev)
		f->prev->next = f->next;
	else
		s->flows = f->next;
	if (f->next)
		f->next->prev = f->prev;
	free(f);
}

void flow_close_all(struct session *s, const char *result)
{
	while (s->flows)
		flow_close(s->flows, result);
}
