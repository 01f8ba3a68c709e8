/*
 * session.c - the per-client state machine of stpd: PROXY header, method
 * greeting (or a SOCKS4 request), method sub-negotiation, request, then a
 * command handler, then the relay. Every path ends in session_close().
 */
#include "server/session_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "proto/proxyproto.h"
#include "server/ext.h"
#include "server/conn.h"
#include "server/filter.h"
#include "server/server.h"
#include "server/sessionlog.h"

static const char *const state_names[] = {
	[SS_PROXYHDR] = "proxy-header", [SS_GREETING] = "greeting", [SS_AUTH] = "auth",
	[SS_AUTH_WAIT] = "auth-wait",   [SS_REQUEST] = "request",   [SS_COMMAND] = "command",
	[SS_RELAY] = "relay",           [SS_CLOSED] = "closed",         [SS_REFUSING] = "refusing",
};

static void advance(struct session *s);
static void on_client(EV_P_ ev_io *w, int revents);

/* Lines any client can cause at will are rate-limited (log.h). */
static struct log_rate rl_filter = LOG_RATE_INIT("TLS/filter error");

const char *session_state_name(enum session_state st)
{
	return st < sizeof(state_names) / sizeof(state_names[0]) && state_names[st] ? state_names[st]
										  : "?";
}

void session_set_state(struct session *s, enum session_state st)
{
	if (log_getlevel() >= LOG_DEBUG)
		log_debug("session %llu: %s -> %s", (unsigned long long)s->id,
			  state_names[s->state], state_names[st]);
	s->state = st;
}

const char *session_tag(const struct session *s, char *out, size_t cap)
{
	char client[SA_STR_MAX];
	snprintf(out, cap, "id=%llu client=%s user=%s", (unsigned long long)s->id,
		 sa_str((const struct sockaddr *)&s->client, client, sizeof(client)),
		 s->user[0] ? s->user : "-");
	return out;
}

uint8_t session_errno_rep(int err)
{
	switch (err) {
	case 0: return SOCKS5_REP_SUCCEEDED;
	case ECONNREFUSED: return SOCKS5_REP_CONN_REFUSED;
	case ENETUNREACH:
	case ENETDOWN: return SOCKS5_REP_NET_UNREACHABLE;
	case EHOSTUNREACH:
	case EHOSTDOWN:
	case EADDRNOTAVAIL: return SOCKS5_REP_HOST_UNREACHABLE;
	case ETIMEDOUT: return SOCKS5_REP_TTL_EXPIRED;
	case EACCES:
	case EPERM: return SOCKS5_REP_NOT_ALLOWED;
	case EAFNOSUPPORT:
	case EPROTONOSUPPORT: return SOCKS5_REP_ATYP_NOT_SUPPORTED;
	default: return SOCKS5_REP_GENERAL_FAILURE;
	}
}

/* ---- client I/O during the handshake ---- */

static void set_io(struct session *s, int events)
{
	if (s->io.events == events && ev_is_active(&s->io))
		return;
	ev_io_stop(s->w->loop, &s->io);
	if (events) {
		ev_io_set(&s->io, s->conn.fd, events);
		ev_io_start(s->w->loop, &s->io);
	}
}

/* Wanted events follow from the state: read while a parser wants bytes,
 * write while a reply is queued. */
void session_update_io(struct session *s)
{
	int ev = 0;
	if (!s->hs)
		return;
	if (s->hs->outlen > s->hs->outoff || conn_has_output(&s->conn))
		ev |= EV_WRITE;
	else if (s->state == SS_PROXYHDR || s->state == SS_GREETING || s->state == SS_AUTH ||
		 s->state == SS_REQUEST || s->state == SS_REFUSING ||
		 (s->state == SS_COMMAND && s->on_control))
		ev |= EV_READ;
	set_io(s, ev);
}

/* 1 when everything is written, 0 when it would block, -1 on error. */
static int flush_out(struct session *s)
{
	struct handshake *hs = s->hs;
	/* Cleartext queued before a filter (the method choice) goes first,
	 * straight to the socket; then what the filter holds. */
	while (hs->outlen > hs->outoff) {
		ssize_t n = conn_write_clear(&s->conn, hs->out + hs->outoff,
					     hs->outlen - hs->outoff);
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
		hs->outoff += (size_t)n;
	}
	hs->outlen = hs->outoff = 0;
	return conn_flush(&s->conn);
}

/* Moves the queued output into a heap block of want bytes (at most
 * SESSION_OUT_MAX); freed with the handshake (hs_free). */
static int hs_grow_out(struct handshake *hs, size_t want)
{
	uint8_t *big = malloc(want);
	if (!big)
		return -1;
	memcpy(big, hs->out, hs->outlen);
	if (hs->out != hs->out_small)
		free(hs->out);
	hs->out = big;
	hs->outcap = want;
	return 0;
}

static void hs_free(struct handshake *hs)
{
	if (hs && hs->out != hs->out_small)
		free(hs->out);
	free(hs);
}

/*
 * A pipelining client (docs/protocol.md 5.11) sent its next message with
 * this one: it reads our answers only together, so the method choice and
 * the RFC 1929 status wait for the request's reply and leave in one
 * segment with it (bench/ttfb.py: 22 -> 20 segments per connection). Only
 * before the request and only while more input is buffered: the parsers
 * run on it in this same turn, and session_update_io asks for EV_WRITE, so
 * nothing waits longer than one loop turn (a password checked on the auth
 * pool ends the turn: the choice then leaves alone). Not through a filter:
 * TLS has its own records.
 */
static bool hold_answer(const struct session *s)
{
	return !s->conn.filter && s->hs && s->hs->inlen > 0 && !s->closing_after_flush &&
	       (s->state == SS_GREETING || s->state == SS_AUTH || s->state == SS_AUTH_WAIT);
}

int session_send(struct session *s, const uint8_t *p, size_t n)
{
	struct handshake *hs = s->hs;
	if (s->conn.filter && hs) {
		if (conn_write(&s->conn, p, n) < 0 && errno == EPROTO) {
			session_close(s, conn_why(&s->conn));
			return -1;
		}
	} else if (!hs || hs->outlen + n > SESSION_OUT_MAX) {
		session_close(s, "reply does not fit");
		return -1;
	} else if (hs->outlen + n > hs->outcap && hs_grow_out(hs, hs->outlen + n) < 0) {
		session_close(s, "out of memory");
		return -1;
	} else {
		memcpy(hs->out + hs->outlen, p, n);
		hs->outlen += n;
	}
	if (hold_answer(s)) {
		session_update_io(s); /* out at the latest on the next turn */
		return 0;
	}
	int f = flush_out(s);
	if (f < 0) {
		session_close(s, "client write error");
		return -1;
	}
	if (f > 0 && s->closing_after_flush) {
		session_close(s, s->close_reason);
		return -1;
	}
	session_update_io(s);
	return 0;
}

int session_reply(struct session *s, uint8_t rep, const struct sockaddr *bnd, bool close)
{
	struct socks_addr a;
	if (bnd && sa_to_socks(&a, bnd) < 0)
		bnd = NULL;
	return session_reply_addr(s, rep, bnd ? &a : NULL, close);
}

int session_reply_addr(struct session *s, uint8_t rep, const struct socks_addr *bnd, bool close)
{
	uint8_t buf[SOCKS5_REPLY_MAX];
	size_t n;

	if (s->version == SOCKS4_VER) {
		static const uint8_t zero[4];
		uint8_t r4 = rep == SOCKS5_REP_SUCCEEDED ? SOCKS4_REP_GRANTED
							 : SOCKS4_REP_REJECTED;
		bool v4 = bnd && bnd->atyp == SOCKS_ATYP_IPV4;
		n = socks4_reply_write(buf, sizeof(buf), r4, v4 ? bnd->port : 0,
				       v4 ? bnd->u.v4 : zero);
	} else {
		n = socks5_reply_write(buf, sizeof(buf), rep, bnd);
	}
	session_note_reply(s, rep);
	if (close)
		session_close_after_output(s, socks5_rep_name(rep));
	return session_send(s, buf, n);
}

void session_arm_timer(struct session *s, unsigned secs, void (*cb)(EV_P_ ev_timer *, int))
{
	ev_timer_stop(s->w->loop, &s->timer);
	if (secs == 0)
		return;
	ev_timer_init(&s->timer, cb, (ev_tstamp)secs, 0.);
	s->timer.data = s;
	ev_timer_start(s->w->loop, &s->timer);
}

static void on_handshake_timeout(EV_P_ ev_timer *w, int revents)
{
	struct session *s = w->data;
	log_info("session %llu: handshake timeout in %s", (unsigned long long)s->id,
		 state_names[s->state]);
	session_close(s, "handshake timeout");
}

/* ---- rules ---- */

/* The request-rule context of what the session knows so far; groups must
 * hold AUTH_GROUPS_MAX entries and outlive ctx. */
static void request_ctx(const struct session *s, uint32_t rule_cmd, const char **groups,
			struct rule_ctx *ctx)
{
	for (size_t i = 0; i < s->n_groups; i++)
		groups[i] = s->groups[i];
	*ctx = (struct rule_ctx){
		.client = (const struct sockaddr *)&s->client,
		.listener = s->listener->name,
		.listener_conf = s->listener,
		.user = s->user[0] ? s->user : NULL,
		.groups = groups,
		.n_groups = s->n_groups,
		.command = rule_cmd,
		.now = time(NULL),
	};
}

const struct rule *session_match_rule(const struct session *s, uint32_t rule_cmd,
				      const struct sockaddr *dst_addr, const char *dst_name,
				      uint16_t dst_port)
{
	const char *groups[AUTH_GROUPS_MAX];
	struct rule_ctx ctx;
	request_ctx(s, rule_cmd, groups, &ctx);
	ctx.dst_name = dst_name;
	ctx.dst_addr = dst_addr;
	ctx.dst_port = dst_port;
	return rules_match(s->conf->request_rules, s->conf->n_request_rules, &ctx);
}

bool session_may_pass(const struct session *s, uint32_t rule_cmd, bool user_known)
{
	const char *groups[AUTH_GROUPS_MAX];
	struct rule_ctx ctx;
	request_ctx(s, rule_cmd, groups, &ctx);
	return rules_may_pass(s->conf->request_rules, s->conf->n_request_rules, &ctx,
			      !user_known);
}

bool session_allowed(struct session *s, uint32_t rule_cmd, const struct sockaddr *dst_addr,
		     const char *dst_name, uint16_t dst_port, bool log_denial)
{
	const struct rule *r = session_match_rule(s, rule_cmd, dst_addr, dst_name, dst_port);
	/* Replies and datagrams ride on the command's session: only the
	 * command itself takes a rule's session slot and settings. */
	bool is_command = rule_cmd != RULE_CMD_UDPREPLY && rule_cmd != RULE_CMD_BINDREPLY &&
			  !s->rule;
	const char *why = NULL;
	if (!r || r->action != RULE_PASS)
		why = "blocked";
	else if (is_command && !rule_slot_take(r))
		why = "session limit of rule reached";
	if (why) {
		if (log_denial)
			sessionlog_deny(s, rule_cmd, dst_addr, dst_name, dst_port, r, why);
		return false;
	}
	if (is_command) {
		s->rule = r;
		s->rule_held = r->max_sessions > 0;
	}
	s->pass_rule = r;
	return true;
}

const struct rule *session_pass_rule(const struct session *s)
{
	return s->pass_rule;
}

int session_socket(struct session *s, int domain, int type, int protocol)
{
	return ext_open_socket(s, s->pass_rule, domain, type, protocol);
}

bool session_resolver_is_default(const struct session *s, const struct resolver *r)
{
	return r != NULL && r == s->w->resolver;
}

struct resolver *session_resolver_for(struct session *s, const struct rule *r)
{
	struct resolver *res = ext_resolver(s, r);
	if (res == EXT_RESOLVER_FAILED)
		return NULL; /* look-ups fail (resolve.h) */
	return res ? res : s->w->resolver;
}

/* ---- phases ---- */

static bool admit(struct session *s)
{
	const struct stp_conf *c = s->conf;
	struct rule_ctx ctx = {
		.client = (const struct sockaddr *)&s->client,
		.listener = s->listener->name,
		.listener_conf = s->listener,
		.now = time(NULL),
	};
	const char *why;
	const struct rule *r = rules_match(c->client_rules, c->n_client_rules, &ctx);
	/* Every refusal here can be repeated by a client at will: its line is
	 * rate-limited and it writes no session line (s->quiet). */
	if (!r || r->action != RULE_PASS) {
		sessionlog_deny(s, 0, NULL, NULL, 0, r, "client blocked");
		s->quiet = true;
		session_close(s, "client blocked by rule"); /* no reply: says nothing */
		return false;
	}
	if (!rule_slot_take(r)) {
		stats_limit(STATS_LIM_RULE_SESSIONS);
		sessionlog_deny(s, 0, NULL, NULL, 0, r, "session limit of rule reached");
		session_refuse(s, "client rule session limit");
		return false;
	}
	s->client_rule = r;
	s->client_rule_held = r->max_sessions > 0;
	if (!limits_acquire((const struct sockaddr *)&s->client, &c->limits, &why)) {
		static struct log_rate rl = LOG_RATE_INIT("refused client");
		char tag[SA_STR_MAX + 300];
		stats_limit(strstr(why, "server session") ? STATS_LIM_SESSIONS
							   : STATS_LIM_PER_CLIENT);
		if (log_rate_pass(&rl, LOG_WARNING))
			log_warnx("refused %s: %s", session_tag(s, tag, sizeof(tag)), why);
		session_refuse(s, why);
		return false;
	}
	s->counted_client = true;
	return true;
}

/* Drops `used` bytes from the front of the input buffer. */
void session_consume(struct session *s, size_t used)
{
	struct handshake *hs = s->hs;
	memmove(hs->in, hs->in + used, hs->inlen - used);
	hs->inlen -= used;
}

static void bad_input(struct session *s, const struct socks_err *err, const char *what)
{
	static struct log_rate rl = LOG_RATE_INIT("bad client input");
	char tag[SA_STR_MAX + 300];
	if (!log_rate_pass(&rl, LOG_WARNING))
		return;
	log_warnx("%s: bad %s: %s", session_tag(s, tag, sizeof(tag)), what,
		  err->why ? err->why : "malformed");
}

/* MORE with a full buffer can never complete: a protocol error. */
static bool buffer_full(struct session *s, const char *what)
{
	if (s->hs->inlen < sizeof(s->hs->in))
		return false;
	static struct log_rate rl = LOG_RATE_INIT("handshake too long");
	char tag[SA_STR_MAX + 300];
	log_warnx_rl(&rl, "%s: %s exceeds %zu bytes", session_tag(s, tag, sizeof(tag)), what,
		     sizeof(s->hs->in));
	session_close(s, "handshake too long");
	return true;
}

static void do_proxyhdr(struct session *s)
{
	struct proxy_hdr ph;
	struct socks_err err = { 0 };
	size_t used = 0;
	enum socks_res r = proxyproto_parse(&ph, s->hs->in, s->hs->inlen, &used, &err);
	if (r == SOCKS_MORE) {
		buffer_full(s, "PROXY header");
		return;
	}
	if (r == SOCKS_BAD) {
		bad_input(s, &err, "PROXY header");
		session_close(s, "bad PROXY header");
		return;
	}
	session_consume(s, used);
	if (!ph.local && ph.family == PROXY_FAM_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&s->client;
		memset(&s->client, 0, sizeof(s->client));
		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, ph.src, 4);
		a->sin_port = htons(ph.sport);
	} else if (!ph.local && ph.family == PROXY_FAM_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->client;
		memset(&s->client, 0, sizeof(s->client));
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, ph.src, 16);
		a->sin6_port = htons(ph.sport);
		sa_unmap(&s->client);
	}
	if (!admit(s) || ext_session_open(s) < 0)
		return;
	session_set_state(s, SS_GREETING);
	if (s->conn.filter)
		session_pump(s);
	else
		advance(s);
}

static void dispatch(struct session *s)
{
	const struct stp_command *cmd = ext_find_command(s->cmd);
	if (cmd && s->no_udp && s->cmd == SOCKS_CMD_UDP_ASSOCIATE) {
		/* X'86' without UDP-Naked: no agreed way to carry datagrams
		 * (docs/tls.md). */
		char tag[SA_STR_MAX + 300];
		log_info("%s: UDP ASSOCIATE refused: UDP-Naked not agreed",
			 session_tag(s, tag, sizeof(tag)));
		session_finish(s, SOCKS5_REP_CMD_NOT_SUPPORTED, "UDP without UDP-Naked");
		return;
	}
	if (!cmd || (s->version == SOCKS4_VER && !cmd->socks4)) {
		char tag[SA_STR_MAX + 300];
		log_info("%s: command 0x%02x not supported", session_tag(s, tag, sizeof(tag)),
			 s->cmd);
		session_finish(s, SOCKS5_REP_CMD_NOT_SUPPORTED, "command not supported");
		return;
	}
	if (s->cmd != SOCKS_CMD_CONNECT) {
		/* Our end of the client connection: BIND and UDP ASSOCIATE open
		 * their sockets next to it. CONNECT never needs it, so it skips
		 * the syscall. */
		socklen_t len = sizeof(s->local);
		getsockname(s->conn.fd, (struct sockaddr *)&s->local, &len);
		sa_unmap(&s->local);
	}
	ev_timer_stop(s->w->loop, &s->timer);
	session_set_state(s, SS_COMMAND);
	session_update_io(s);
	cmd->start(s);
}

static void do_socks4(struct session *s)
{
	struct socks4_request req;
	struct socks_err err = { 0 };
	size_t used = 0;
	enum socks_res r = socks4_request_parse(&req, s->hs->in, s->hs->inlen, &used, &err);
	if (r == SOCKS_MORE) {
		buffer_full(s, "SOCKS4 request");
		return;
	}
	s->version = SOCKS4_VER;
	if (r == SOCKS_BAD) {
		if (s->hs->inlen >= 2)
			s->cmd = s->hs->in[1];
		bad_input(s, &err, "SOCKS4 request");
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "bad SOCKS4 request");
		return;
	}
	session_consume(s, used);
	s->cmd = req.cmd;
	s->target = req.dst;
	if (!(s->conf->auth_methods & AUTH_BIT_NONE) || (s->require_tls && !s->conn.filter)) {
		/* SOCKS4 has no authentication: it cannot satisfy a server that
		 * requires one, nor a listener that requires TLS. */
		char tag[SA_STR_MAX + 300];
		log_info("%s: SOCKS4 refused: authentication required",
			 session_tag(s, tag, sizeof(tag)));
		session_finish(s, SOCKS5_REP_NOT_ALLOWED, "SOCKS4 without authentication");
		return;
	}
	dispatch(s);
}

static void choose_method(struct session *s, uint8_t *methods, size_t n);

static void do_greeting(struct session *s)
{
	struct socks5_greeting g;
	struct socks_err err = { 0 };
	size_t used = 0;

	if (s->hs->inlen == 0)
		return;
	if (s->hs->in[0] == SOCKS4_VER) {
		do_socks4(s);
		return;
	}
	enum socks_res r = socks5_greeting_parse(&g, s->hs->in, s->hs->inlen, &used, &err);
	if (r == SOCKS_MORE) {
		buffer_full(s, "greeting");
		return;
	}
	if (r == SOCKS_BAD) {
		bad_input(s, &err, "greeting");
		session_close(s, "bad greeting"); /* RFC 1928: no reply to a bad version */
		return;
	}
	session_consume(s, used);
	s->version = SOCKS5_VER;
	s->hs->n_offered = g.nmethods;
	memcpy(s->hs->offered, g.methods, g.nmethods);
	choose_method(s, g.methods, g.nmethods);
}

/* Whether this session may use method `code` at all. Downgrade protection:
 * where TLS is required, only methods that bring it count (and those that
 * carry no session, like X'87'); inside TLS, no method that would start it
 * again. A method that handed back (session_method_skip) is done. */
static bool method_allowed(const struct session *s, uint8_t code)
{
	bool tls = ext_method_tls(code);
	if (s->hs->skipped[code / 8] & (1u << (code % 8)))
		return false;
	if ((s->conn.filter && tls) || !ext_method_offered(s, code))
		return false;
	return !(s->require_tls && !s->conn.filter && !tls && !ext_method_informational(code));
}

size_t session_methods_acceptable(const struct session *s, uint8_t *out, size_t cap)
{
	size_t n_ext, k = 0;
	const struct stp_ext *const *all = ext_all(&n_ext);
	for (size_t i = 0; s->hs && i < n_ext; i++)
		for (size_t j = 0; j < all[i]->n_methods; j++) {
			const struct stp_method *m = &all[i]->methods[j];
			if ((m->enabled && !m->enabled(s->conf)) || !method_allowed(s, m->code))
				continue;
			if (k < cap)
				out[k++] = m->code;
		}
	return k;
}

/* Answers a greeting (or what remains of one) offering methods[0..n). */
static void choose_method(struct session *s, uint8_t *methods, size_t n)
{
	uint8_t kept = 0;
	for (size_t i = 0; i < n; i++)
		if (method_allowed(s, methods[i]))
			methods[kept++] = methods[i];
	const struct stp_method *m = ext_choose_method(s->conf, methods, kept);
	uint8_t choice[2];
	size_t len = socks5_choice_write(choice, sizeof(choice),
					 m ? m->code : SOCKS_METHOD_NOACCEPT);
	if (!m) {
		char tag[SA_STR_MAX + 300];
		log_info("%s: no acceptable authentication method among %zu offered",
			 session_tag(s, tag, sizeof(tag)), n);
		session_close_after_output(s, "no acceptable method");
		session_send(s, choice, len);
		return;
	}
	s->hs->method = m->code;
	s->method = m;
	if (session_send(s, choice, len) < 0)
		return;
	session_set_state(s, SS_AUTH);
	m->start(s);
}

void session_method_skip(struct session *s)
{
	struct handshake *hs = s->hs;
	uint8_t rest[255];
	size_t n = 0;

	if (!hs || session_ending(s))
		return;
	hs->skipped[hs->method / 8] |= (uint8_t)(1u << (hs->method % 8));
	for (size_t i = 0; i < hs->n_offered; i++)
		if (hs->offered[i] != hs->method)
			rest[n++] = hs->offered[i];
	hs->n_offered = 0;
	s->method = NULL; /* hs->method still names it for the log line */
	session_set_state(s, SS_GREETING);
	if (n > 0) {
		choose_method(s, rest, n);
		return;
	}
	session_update_io(s);
	/* A new greeting the client sent ahead is in the buffer already. */
	if (s->conn.filter)
		session_pump(s);
	else if (hs->inlen > 0)
		advance(s);
}

void session_method_done(struct session *s, bool ok)
{
	if (s->sub_done) {
		void (*done)(struct session *, bool) = s->sub_done;
		s->sub_done = NULL;
		s->method = s->outer_method;
		s->outer_method = NULL;
		done(s, ok);
		return;
	}
	if (!ok)
		return; /* the method closed the session */
	session_set_state(s, SS_REQUEST);
	session_update_io(s);
	if (s->conn.filter)
		session_pump(s);
	else
		advance(s);
}

void session_run_method(struct session *s, const struct stp_method *m,
			void (*done)(struct session *s, bool ok))
{
	s->outer_method = s->method;
	s->sub_done = done;
	s->method = m;
	m->start(s);
	/* Bytes the client sent ahead belong to m now. */
	if (s->state == SS_AUTH && s->method == m && m->on_input && s->hs->inlen > 0)
		m->on_input(s);
}

static void do_request(struct session *s)
{
	struct socks5_request req;
	struct socks_err err = { 0 };
	size_t used = 0;
	enum socks_res r = socks5_request_parse(&req, s->hs->in, s->hs->inlen, &used, &err);
	if (r == SOCKS_MORE) {
		buffer_full(s, "request");
		return;
	}
	if (r == SOCKS_BAD) {
		bad_input(s, &err, "request");
		if (s->hs->inlen >= 2)
			s->cmd = s->hs->in[1];
		session_finish(s, err.rep, "bad request");
		return;
	}
	session_consume(s, used);
	s->cmd = req.cmd;
	s->target = req.dst;
	dispatch(s);
}

/* Runs parsers over buffered input until one needs more bytes. */
static void advance(struct session *s)
{
	enum session_state before;
	do {
		before = s->state;
		switch (s->state) {
		case SS_PROXYHDR: do_proxyhdr(s); break;
		case SS_GREETING: do_greeting(s); break;
		case SS_AUTH:
			if (s->method && s->method->on_input && s->hs->inlen > 0)
				s->method->on_input(s);
			break;
		case SS_REQUEST:
			if (s->hs->inlen > 0)
				do_request(s);
			break;
		case SS_REFUSING: session_refuse_input(s); break;
		default: return;
		}
		/* A parser that closed the session returns with SS_CLOSED. */
	} while (s->state != before && s->state != SS_CLOSED && s->hs && s->hs->inlen > 0);
}

/* True while the state takes client bytes (see session_update_io). */
static bool wants_input(const struct session *s)
{
	return s->hs && (s->state == SS_PROXYHDR || s->state == SS_GREETING ||
			 s->state == SS_AUTH || s->state == SS_REQUEST || s->state == SS_REFUSING);
}

/* Reads plaintext into the handshake buffer and runs the parsers on it, one
 * read (with a filter: one TLS record) at a time, while the state wants
 * input: a method may move the filter to its next phase before the next
 * record is looked at. Plain sockets are read once per wake-up (a second
 * recv would only say EAGAIN); a filter's are read until it and the socket
 * are empty, since the socket will not signal what the filter holds. */
static void read_input(struct session *s)
{
	while (wants_input(s) && s->hs->inlen < sizeof(s->hs->in)) {
		struct handshake *hs = s->hs;
		ssize_t n = conn_read(&s->conn, hs->in + hs->inlen, sizeof(hs->in) - hs->inlen);
		if (n == 0) {
			session_close(s, s->conn.fin ? "client closed during handshake"
						     : "client closed (close_notify) during handshake");
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				break;
			if (errno == EPROTO) {
				char tag[SA_STR_MAX + 300];
				log_warnx_rl(&rl_filter, "%s: %s", session_tag(s, tag, sizeof(tag)),
					     conn_why(&s->conn));
				session_close(s, conn_why(&s->conn));
			} else {
				session_close(s, "client read error during handshake");
			}
			return;
		}
		hs->inlen += (size_t)n;
		advance(s);
		if (!s->conn.filter)
			return; /* the parsers did the rest */
	}
	if (s->state == SS_CLOSED || !s->hs || !s->conn.filter)
		return;
	if (s->conn.filter && flush_out(s) < 0) {
		session_close(s, "client write error");
		return;
	}
	if (wants_input(s) && s->hs->inlen == sizeof(s->hs->in))
		buffer_full(s, "handshake");
	else
		session_update_io(s);
}

void session_pump(struct session *s)
{
	if (wants_input(s) && s->hs->inlen > 0)
		advance(s); /* plaintext left from before (a method finished) */
	read_input(s);
}

int session_set_filter(struct session *s, struct stream_filter *f)
{
	struct handshake *hs = s->hs;
	/* The client sent its first TLS bytes right behind what came before
	 * (greeting, PROXY header): they are the filter's. */
	int r = conn_set_filter(&s->conn, f, hs->in, hs->inlen);
	hs->inlen = 0;
	if (r < 0) {
		session_close(s, f->why);
		return -1;
	}
	return 0;
}

bool session_drop_filter(struct session *s)
{
	struct stream_filter *f = s->conn.filter;
	struct handshake *hs = s->hs;
	if (f == NULL)
		return true;
	if (hs == NULL || hs->outlen > hs->outoff || conn_has_output(&s->conn))
		return false;
	/* What the client sent behind the method's last message is plaintext
	 * the parsers have not seen: it goes where they read. */
	for (;;) {
		if (hs->inlen == sizeof(hs->in))
			return false; /* maybe more inside: keep the filter */
		ssize_t n = f->ops->read(f, hs->in + hs->inlen, sizeof(hs->in) - hs->inlen);
		if (n == FILTER_NONE)
			break;
		if (n < 0)
			return false; /* its error or end shows on the next read */
		hs->inlen += (size_t)n;
	}
	conn_drop_filter(&s->conn);
	return true;
}

int session_read_control(struct session *s)
{
	struct handshake *hs = s->hs;
	size_t before = hs->inlen;
	while (hs->inlen < sizeof(hs->in)) {
		ssize_t n = conn_read(&s->conn, hs->in + hs->inlen, sizeof(hs->in) - hs->inlen);
		if (n == 0) {
			session_close(s, s->conn.fin ? "control connection closed"
						     : "control connection closed (close_notify)");
			return -1;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			session_close(s, errno == EPROTO ? conn_why(&s->conn)
							 : "control connection error");
			return -1;
		}
		hs->inlen += (size_t)n;
		if (!s->conn.filter)
			break;
	}
	if (s->conn.filter && flush_out(s) < 0) { /* TLS may answer (key update) */
		session_close(s, "client write error");
		return -1;
	}
	return (int)(hs->inlen - before);
}

void session_watch_control(struct session *s, void (*on_input)(struct session *s))
{
	s->on_control = on_input;
	session_update_io(s);
}

static void on_client(EV_P_ ev_io *w, int revents)
{
	struct session *s = w->data;

	if (revents & EV_WRITE) {
		int f = flush_out(s);
		if (f < 0) {
			session_close(s, "client write error");
			return;
		}
		if (f > 0 && s->closing_after_flush) {
			session_close(s, s->close_reason);
			return;
		}
		if (f > 0 && s->relay_peer >= 0) {
			int peer = s->relay_peer;
			s->relay_peer = -1;
			s->relay.fd[1] = -1;
			session_start_relay(s, peer);
			return;
		}
		session_update_io(s);
	}
	if (!(revents & EV_READ) || s->state == SS_CLOSED)
		return;
	if (s->state == SS_COMMAND && s->on_control) {
		if (session_read_control(s) > 0)
			s->on_control(s);
		return;
	}
	read_input(s);
}

void session_start(struct worker *w, const struct conf_listener *l, int fd,
		   const struct sockaddr_storage *peer)
{
	struct session *s = calloc(1, sizeof(*s));

	if (s)
		s->hs = calloc(1, sizeof(*s->hs));
	if (s && s->hs) {
		s->hs->out = s->hs->out_small;
		s->hs->outcap = sizeof(s->hs->out_small);
	}
	if (!s || !s->hs) {
		static struct log_rate rl = LOG_RATE_INIT("out of memory for a new session");
		log_warnx_rl(&rl, "out of memory for a new session");
		free(s);
		close(fd);
		return;
	}
	s->id = atomic_fetch_add(&g_server.next_session_id, 1) + 1;
	s->w = w;
	s->listener = l;
	s->snap = snapshot_ref(w->snap);
	s->conf = s->snap->conf;
	conn_init(&s->conn, fd);
	s->relay.fd[1] = -1;
	s->relay_peer = -1;
	s->client = *peer;
	sa_unmap(&s->client);
	s->started = ev_now(w->loop);
	s->state = SS_GREETING;
	ev_io_init(&s->io, on_client, fd, EV_READ);
	s->io.data = s;

	s->next = w->sessions;
	if (w->sessions)
		w->sessions->prev = s;
	w->sessions = s;
	w->n_sessions++;
	atomic_fetch_add(&g_server.sessions, 1);
	stats_inc(&w->stats.accepted);
	stats_inc(&w->stats.sessions);

	session_arm_timer(s, s->conf->timeouts.handshake, on_handshake_timeout);
	if (l->proxy_protocol) {
		s->state = SS_PROXYHDR;
	} else if (!admit(s) || ext_session_open(s) < 0) {
		return;
	}
	session_update_io(s);
}

/* ---- relay hand-over ---- */

static void on_relay_done(struct relay *r, const char *reason)
{
	struct session *s = (struct session *)((char *)r - offsetof(struct session, relay));
	s->up = r->half[0].bytes;
	s->down = r->half[1].bytes;
	if (s->conn.filter && reason == conn_why(&s->conn)) {
		/* A protocol error of the client's TLS stream: a warning, as
		 * during the handshake (docs/tls.md 2.7). */
		session_warnx(s, "%s", reason);
	}
	session_close(s, reason);
}

void session_start_relay(struct session *s, int peer)
{
	const struct stp_conf *c = s->conf;
	unsigned idle = s->rule && s->rule->idle_timeout ? s->rule->idle_timeout
							 : c->timeouts.idle;
	struct handshake *hs = s->hs;

	if (!s->conn.filter && hs->outlen > hs->outoff) {
		/* The reply is not all out yet (EAGAIN): relaying starts once it
		 * is, so it cannot be overtaken or lost with hs. */
		s->relay_peer = peer;
		s->relay.fd[1] = peer; /* closed with the session meanwhile */
		session_update_io(s);
		return;
	}
	ev_io_stop(s->w->loop, &s->io);
	ev_timer_stop(s->w->loop, &s->timer);
	session_set_state(s, SS_RELAY);
	if (relay_start(&s->relay, s->w->loop, s->w->pipes, &s->conn, peer, hs->in, hs->inlen,
			idle, c->limits.relay_buffer, on_relay_done) < 0) {
		s->relay.fd[1] = peer;
		session_close(s, "out of memory");
		return;
	}
	if (log_getlevel() >= LOG_DEBUG) {
		char tag[SA_STR_MAX + 300];
		log_debug("%s: relay by %s", session_tag(s, tag, sizeof(tag)),
			  s->relay.use_splice ? "splice" : "copy (stream filter)");
	}
	/* The handshake state is no longer needed: keep idle sessions small. */
	s->hs = NULL;
	hs_free(hs);
}

/* ---- the end ---- */

void session_close(struct session *s, const char *reason)
{
	struct worker *w = s->w;

	if (s->state == SS_CLOSED)
		return;
	if (s->state == SS_RELAY) {
		s->up = s->relay.half[0].bytes;
		s->down = s->relay.half[1].bytes;
	}
	session_set_state(s, SS_CLOSED);
	if (reason != s->close_reason)
		snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
	/* The reason may live in the command's state, which destroy frees:
	 * the log line and the flows get a copy (close_reason is short). */
	char why[256];
	snprintf(why, sizeof(why), "%s", reason);
	reason = why;
	ev_io_stop(w->loop, &s->io);
	ev_timer_stop(w->loop, &s->timer);
	if (s->cmd_ops && s->cmd_ops->destroy)
		s->cmd_ops->destroy(s);
	flow_close_all(s, reason);
	session_refuse_end(s);
	if (!s->quiet)
		sessionlog_session(s, reason);

	relay_stop(&s->relay);
	if (s->relay.fd[1] >= 0)
		close(s->relay.fd[1]);
	conn_close(&s->conn);
	if (s->hs) {
		if (s->auth_pending) {
			/* The pool still holds the job: its callback frees it. */
			s->hs->auth->ctx = w; /* the job's owner is gone */
			auth_cancel(s->hs->auth);
			w->auth_orphans++;
		} else if (s->hs->auth) {
			explicit_bzero(s->hs->auth, sizeof(*s->hs->auth));
			free(s->hs->auth);
		}
		uint8_t *out = s->hs->out; /* the bzero takes the pointer too */
		explicit_bzero(s->hs, sizeof(*s->hs));
		s->hs->out = out;
		hs_free(s->hs);
		s->hs = NULL;
	}
	if (s->rule_held)
		rule_slot_give(s->rule);
	if (s->client_rule_held)
		rule_slot_give(s->client_rule);
	if (s->counted_client)
		limits_release((const struct sockaddr *)&s->client);
	free(s->groups);
	snapshot_unref(s->snap);

	if (s->prev)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->n_sessions--;
	atomic_fetch_sub(&g_server.sessions, 1);
	atomic_fetch_sub_explicit(&w->stats.sessions, 1, memory_order_relaxed);
	stats_inc(&w->stats.closed[s->target.atyp ? s->cmd : 0]);
	stats_add(&w->stats.bytes_up, s->up);
	stats_add(&w->stats.bytes_down, s->down);
	if (s->rep_sent && s->version == 5)
		stats_inc(&w->stats.replies[s->rep]);
	/* Freed by the worker before its next poll: callers up the stack may
	 * still look at s->state (SS_CLOSED) after this returns. */
	s->next = w->dead;
	w->dead = s;
	worker_session_ended(w);
}

struct conn *session_run_conn(struct session *s)
{
	if (s->state == SS_CLOSED || s->closing_after_flush ||
	    (s->hs && (s->hs->outoff < s->hs->outlen || conn_has_output(&s->conn))))
		return NULL;
	ev_io_stop(s->w->loop, &s->io);
	ev_timer_stop(s->w->loop, &s->timer);
	s->on_control = NULL;
	return &s->conn;
}

int session_take_conn(struct session *s, struct conn *out, bool *counted, const char *reason)
{
	if (s->state == SS_CLOSED || s->closing_after_flush ||
	    (s->hs && s->hs->outoff < s->hs->outlen))
		return -1;
	if (counted) {
		/* The connection lives on: so does its place in the limits. */
		*counted = s->counted_client;
		s->counted_client = false;
	}
	ev_io_stop(s->w->loop, &s->io);
	*out = s->conn;
	conn_init(&s->conn, -1); /* session_close then closes nothing */
	session_close(s, reason);
	return 0;
}

void session_uncount(const struct sockaddr_storage *client)
{
	limits_release((const struct sockaddr *)client);
}
