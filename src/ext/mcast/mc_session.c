/*
 * mc_session.c - JOIN_MCAST_GROUP (X'05', X'85' with a source filter) and
 * LEAVE_MCAST_GROUP (X'06') on a control connection (docs/mcast.md).
 *
 * The connection stays open after the first request: more JOINs and
 * LEAVEs follow on it, each answered in order; closing it leaves every
 * group it joined. The server ends it after a refusal when it holds no
 * group, and after a notice (bandwidth, time limit, idle relay).
 *
 * The session core watches the control connection (session_watch_control):
 * session_input() collects the requests in plaintext, whatever carries them,
 * session_send() writes the replies.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/mcast/mc.h"
#include "mcrypto/mc_crypt.h"
#include "server/ext.h"
#include "server/flow.h"
#include "server/session.h"

#define MC_CONN_GROUPS 16 /* groups one control connection may hold */

struct mc_conn;

struct mc_membership {
	struct mc_member m;        /* linked into the relay */
	struct socks_addr group;   /* M.ADDR M.PORT as asked, for LEAVE and notices */
	ev_timer limit;            /* max time in the group */
	struct mc_conn *conn;
	struct flow *flow;         /* this membership's request (server/flow.h) */
};

struct mc_conn {
	struct session *s;
	ev_async notify;           /* a relay kicked one of our members */
	bool first_filter;         /* the first request's filter block is still due */
	struct mc_membership *g[MC_CONN_GROUPS];
	unsigned n;
};

static void process(struct mc_conn *c);

static const char *note_reason(uint8_t note)
{
	switch (note) {
	case MCAST_NOTE_BANDWIDTH: return "multicast group over its bandwidth";
	case MCAST_NOTE_TIME: return "multicast membership time limit";
	case MCAST_NOTE_IDLE: return "multicast relay idle";
	default: return "multicast notice";
	}
}

/* Queues one reply (with LEN|KEY when the format wants it). close: the
 * session ends, with reason, once it is written. -1 when closed already. */
static int send_reply(struct mc_conn *c, uint8_t cmd, uint8_t rep, const struct socks_addr *addr,
		      const struct mcast_keyblock *key, bool close, const char *reason)
{
	struct session *s = c->s;
	uint8_t buf[MCAST_REPLY_MAX];
	static const struct socks_addr none = { .atyp = SOCKS_ATYP_IPV4 };
	size_t n = mcast_reply_write(buf, sizeof(buf), cmd, rep,
				     addr && addr->atyp != SOCKS_ATYP_DOMAIN ? addr : &none, key);

	session_note_reply(s, rep);
	if (close) {
		/* Nothing more is read: a client that keeps sending while we
		 * flush must not wake us up in a loop. */
		session_watch_control(s, NULL);
		session_close_after_output(s, reason);
	}
	return session_send(s, buf, n);
}

/* A refusal: the connection ends with it unless it holds groups. */
static int refuse(struct mc_conn *c, uint8_t cmd, uint8_t rep, const struct socks_addr *group,
		  const char *why)
{
	char tag[SA_STR_MAX + 300], g[SA_STR_MAX];
	log_info("%s: multicast %s %s refused: %s", session_tag(c->s, tag, sizeof(tag)),
		 cmd == SOCKS_CMD_LEAVE_MCAST ? "leave" : "join",
		 socks_addr_str(group, g, sizeof(g)), why);
	return send_reply(c, cmd, rep, group, NULL, c->n == 0, why);
}

/* Leaves the group, logs the member's counters, ends its flow with
 * `result` and frees membership i. */
static void membership_free(struct mc_conn *c, unsigned i, const char *result)
{
	struct mc_membership *ms = c->g[i];
	char tag[SA_STR_MAX + 300], g[SA_STR_MAX];

	/* Out of the relay first: the hub thread no longer touches ms->m, so
	 * its counters can be read without the lock. */
	mc_hub_leave(&ms->m);
	log_info("%s: multicast left %s: sent=%llu dropped=%llu",
		 session_tag(c->s, tag, sizeof(tag)), socks_addr_str(&ms->group, g, sizeof(g)),
		 (unsigned long long)ms->m.sent, (unsigned long long)ms->m.dropped);
	ev_timer_stop(session_loop(c->s), &ms->limit);
	flow_count(ms->flow, ms->m.sent_bytes, 0);
	flow_close(ms->flow, result);
	explicit_bzero(ms->m.send_key, sizeof(ms->m.send_key));
	free(ms);
	c->g[i] = c->g[--c->n];
	c->g[c->n] = NULL;
}

static void mc_destroy(struct session *s)
{
	struct mc_conn *c = session_handler_data(s);

	while (c->n > 0)
		membership_free(c, c->n - 1, session_close_reason(s));
	ev_async_stop(session_loop(s), &c->notify);
	free(c);
}

static const struct session_cmd_ops mc_ops = { "mcast", mc_destroy };

/* ---- notices ---- */

static void notice_and_close(struct mc_conn *c, const struct socks_addr *group, uint8_t note)
{
	char tag[SA_STR_MAX + 300], g[SA_STR_MAX];
	if (session_ending(c->s))
		return; /* one final message is enough */
	static struct log_rate rl = LOG_RATE_INIT("multicast control connection closed");
	log_warnx_rl(&rl, "%s: multicast %s: %s, closing the control connection",
		     session_tag(c->s, tag, sizeof(tag)), socks_addr_str(group, g, sizeof(g)),
		     note_reason(note));
	/* Plain reply form; X'06' selects it (no LEN|KEY). */
	send_reply(c, SOCKS_CMD_LEAVE_MCAST, note, group, NULL, true, note_reason(note));
}

static void on_notify(EV_P_ ev_async *a, int revents)
{
	struct mc_conn *c = a->data;
	for (unsigned i = 0; i < c->n; i++) {
		uint8_t note = mc_hub_kicked(&c->g[i]->m);
		if (note) {
			notice_and_close(c, &c->g[i]->group, note);
			return;
		}
	}
}

static void on_limit(EV_P_ ev_timer *t, int revents)
{
	struct mc_membership *ms = t->data;
	notice_and_close(ms->conn, &ms->group, MCAST_NOTE_TIME);
}

/* ---- JOIN ---- */

static struct mc_membership *find(struct mc_conn *c, const struct socks_addr *group,
				  unsigned *idx)
{
	for (unsigned i = 0; i < c->n; i++) {
		const struct socks_addr *a = &c->g[i]->group;
		if (a->atyp == group->atyp && a->port == group->port &&
		    memcmp(a->u.v6, group->u.v6, a->atyp == SOCKS_ATYP_IPV4 ? 4 : 16) == 0) {
			*idx = i;
			return c->g[i];
		}
	}
	return NULL;
}

/* Checks that need no policy: an IP multicast group, a usable filter, room
 * on this connection. NULL, or why not with the reply code in *rep. */
static const char *join_checks(struct mc_conn *c, const struct mcast_request *req,
			       struct mc_key *key, uint8_t *rep)
{
	unsigned idx;
	*rep = SOCKS5_REP_GENERAL_FAILURE;
	if (req->group.atyp == SOCKS_ATYP_DOMAIN) {
		*rep = SOCKS5_REP_ATYP_NOT_SUPPORTED;
		return "a group is an IP address";
	}
	if (!mcast_addr_is_group(req->group.atyp, req->group.u.v6)) {
		*rep = MCAST_REP_NOT_GROUP;
		return "not a multicast address";
	}
	if (mc_key_make(key, &req->group, &req->filter) < 0)
		return "sources of another family than the group";
	if (find(c, &req->group, &idx))
		return "already joined on this connection";
	if (c->n >= MC_CONN_GROUPS)
		return "too many groups on one connection";
	return NULL;
}

static uint8_t grant_rep(uint8_t perms)
{
	if (perms == (MCAST_KEYF_SEND | MCAST_KEYF_RECV))
		return SOCKS5_REP_SUCCEEDED;
	return perms == MCAST_KEYF_RECV ? SOCKS5_REP_MCAST_NO_SEND : SOCKS5_REP_MCAST_NO_RECV;
}

static struct mc_membership *membership_new(struct mc_conn *c, uint8_t perms,
					    const struct mc_settings *set)
{
	struct mc_membership *ms = calloc(1, sizeof(*ms));
	if (!ms)
		return NULL;
	ms->conn = c;
	ms->m.perms = perms;
	ms->m.client = *session_client(c->s);
	sa_set_port((struct sockaddr *)&ms->m.client, 0);
	ms->m.loop = session_loop(c->s);
	ms->m.notify = &c->notify;
	if ((perms & MCAST_KEYF_SEND) && set->suite != MCAST_SUITE_NONE &&
	    mc_random(ms->m.send_key, sizeof(ms->m.send_key)) < 0) {
		free(ms);
		return NULL;
	}
	return ms;
}

static void log_join(struct mc_conn *c, const struct mc_membership *ms,
		     const struct mc_grant *g)
{
	char tag[SA_STR_MAX + 300], grp[SA_STR_MAX], in[SA_STR_MAX];
	log_info("%s: multicast joined %s as member %u (%s%s), intranet %s%s",
		 session_tag(c->s, tag, sizeof(tag)), socks_addr_str(&ms->group, grp, sizeof(grp)),
		 ms->m.id, (ms->m.perms & MCAST_KEYF_SEND) ? "send" : "",
		 (ms->m.perms & MCAST_KEYF_RECV) ? (ms->m.perms & MCAST_KEYF_SEND ? "+receive"
										  : "receive")
						 : "",
		 sa_str((const struct sockaddr *)&g->int_sa, in, sizeof(in)),
		 g->created ? ", relay started" : "");
}

/* A relay socket of a JOIN that rule r passed: the real group's side where
 * r sends the session (to-compartment), the members' side where it came
 * from (server/ext.h, the socket seam). */
struct join_sockets {
	struct session *s;
	const struct rule *r;
};

static int join_socket(void *ctx, bool outside, int domain, int type)
{
	const struct join_sockets *js = ctx;
	return ext_open_socket(js->s, outside ? js->r : NULL, domain, type, 0);
}

static int do_join(struct mc_conn *c, const struct mcast_request *req)
{
	struct session *s = c->s;
	struct mc_settings set;
	struct mc_key key;
	struct mc_grant g;
	struct sockaddr_storage gsa;
	socklen_t glen;
	const char *why = NULL;
	uint8_t rep = 0;

	if ((why = join_checks(c, req, &key, &rep)) != NULL)
		return refuse(c, req->cmd, rep, &req->group, why);
	sa_from_socks(&gsa, &glen, &req->group);
	uint8_t perms = 0;
	struct flow *f = mc_policy_open(s, req, &perms);
	if (!f)
		return refuse(c, req->cmd, SOCKS5_REP_MCAST_NEITHER, &req->group,
			      "rules allow neither sending nor receiving");
	mc_settings_get(session_conf(s), &set);
	struct join_sockets js = { s, flow_rule(f) };
	struct mc_sockets sk = { join_socket, &js };
	ext_socket_place(s, js.r, key.place, sizeof(key.place));
	struct mc_membership *ms = membership_new(c, perms, &set);
	if (!ms) {
		why = "out of memory";
		rep = SOCKS5_REP_GENERAL_FAILURE;
	} else if (mc_hub_join(&ms->m, &key, &set, &sk, &g, &rep, &why) < 0) {
		free(ms);
		ms = NULL;
	}
	if (!ms) {
		flow_reply(f, rep);
		flow_close(f, why);
		return refuse(c, req->cmd, rep, &req->group, why);
	}
	ms->group = req->group;
	ms->flow = f;
	flow_reply(f, grant_rep(perms));
	c->g[c->n++] = ms;
	ev_timer_init(&ms->limit, on_limit, (ev_tstamp)set.max_time, 0.);
	ms->limit.data = ms;
	if (set.max_time)
		ev_timer_start(session_loop(s), &ms->limit);
	log_join(c, ms, &g);

	struct socks_addr where;
	sa_to_socks(&where, (struct sockaddr *)&g.int_sa);
	struct mcast_keyblock kb = { .suite = g.suite, .flags = perms, .member_id = ms->m.id };
	memcpy(kb.send_key, ms->m.send_key, sizeof(kb.send_key));
	if (perms & MCAST_KEYF_RECV)
		memcpy(kb.recv_key, g.recv_key, sizeof(kb.recv_key));
	int rc = send_reply(c, req->cmd, grant_rep(perms), &where,
			    g.suite == MCAST_SUITE_NONE ? NULL : &kb, false, NULL);
	explicit_bzero(&kb, sizeof(kb));
	explicit_bzero(&g, sizeof(g));
	return rc;
}

/* ---- LEAVE ---- */

static int do_leave(struct mc_conn *c, const struct mcast_request *req)
{
	unsigned idx;
	struct mc_membership *ms = find(c, &req->group, &idx);

	if (!ms)
		return refuse(c, req->cmd, SOCKS5_REP_GENERAL_FAILURE, &req->group,
			      "not a member of that group on this connection");
	membership_free(c, idx, "left");
	return send_reply(c, req->cmd, SOCKS5_REP_SUCCEEDED, &req->group, NULL, false, NULL);
}

static int handle(struct mc_conn *c, const struct mcast_request *req)
{
	switch (req->cmd) {
	case SOCKS_CMD_JOIN_MCAST:
	case MCAST_CMD_JOIN_FILTER:
		return do_join(c, req);
	case SOCKS_CMD_LEAVE_MCAST:
		return do_leave(c, req);
	default:
		return send_reply(c, req->cmd, SOCKS5_REP_CMD_NOT_SUPPORTED, &req->group, NULL, true,
				  "command not supported on a multicast connection");
	}
}

/* ---- the control connection ---- */

static void bad(struct mc_conn *c, const struct socks_err *err)
{
	static struct log_rate rl = LOG_RATE_INIT("bad multicast request");
	char tag[SA_STR_MAX + 300];
	log_warnx_rl(&rl, "%s: bad multicast request: %s", session_tag(c->s, tag, sizeof(tag)),
		     err->why ? err->why : "malformed");
	send_reply(c, 0, err->rep, NULL, NULL, true, "bad multicast request");
}

/* Handles every complete request in the session's input. */
static void process(struct mc_conn *c)
{
	struct session *s = c->s;
	const uint8_t *in;
	size_t inlen, cap;

	while (!session_ending(s) && (in = session_input(s, &inlen, &cap), inlen > 0)) {
		struct mcast_request req;
		struct socks_err err = { 0 };
		size_t used = 0;
		enum socks_res r;
		if (c->first_filter) {
			/* The request itself was parsed by the session. */
			req.cmd = session_cmd(s);
			req.group = *session_target(s);
			r = mcast_filter_parse(&req.filter, in, inlen, &used, &err);
		} else {
			r = mcast_request_parse(&req, in, inlen, &used, &err);
		}
		if (r == SOCKS_MORE) {
			if (inlen == cap)
				session_close(s, "multicast request too long");
			return;
		}
		if (r == SOCKS_BAD) {
			bad(c, &err);
			return;
		}
		c->first_filter = false;
		session_consume(s, used);
		if (handle(c, &req) < 0)
			return;
	}
}

static void on_ctl(struct session *s)
{
	process(session_handler_data(s));
}

static void start(struct session *s)
{
	struct mc_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		session_reply(s, SOCKS5_REP_GENERAL_FAILURE, NULL, true);
		return;
	}
	c->s = s;
	session_set_handler(s, &mc_ops, c);
	session_watch_control(s, on_ctl);
	ev_async_init(&c->notify, on_notify);
	c->notify.data = c;
	ev_async_start(session_loop(s), &c->notify);

	if (session_cmd(s) == MCAST_CMD_JOIN_FILTER) {
		c->first_filter = true;
		process(c);
		return;
	}
	struct mcast_request req = { .cmd = session_cmd(s), .group = *session_target(s) };
	if (handle(c, &req) == 0)
		process(c);
}

void mc_cmd_join(struct session *s)
{
	start(s);
}

void mc_cmd_leave(struct session *s)
{
	start(s);
}
