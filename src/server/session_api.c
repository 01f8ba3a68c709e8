/*
 * session_api.c - the functions session.h gives commands and extensions
 * instead of struct session's fields.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "server/server.h"
#include "server/session_int.h"

struct ev_loop *session_loop(const struct session *s)
{
	return s->w->loop;
}

const struct stp_conf *session_conf(const struct session *s)
{
	return s->conf;
}

const struct conf_listener *session_listener(const struct session *s)
{
	return s->listener;
}

const struct rule *session_client_rule(const struct session *s)
{
	return s->client_rule;
}

const struct sockaddr_storage *session_client(const struct session *s)
{
	return &s->client;
}

uint8_t session_cmd(const struct session *s)
{
	return s->cmd;
}

const struct socks_addr *session_target(const struct session *s)
{
	return &s->target;
}

/* Names of a request resolve where the rule that passed it sends it (a
 * compartment's resolver, ext.h), else with the worker's. */
struct resolver *session_resolver(const struct session *s)
{
	return session_resolver_for((struct session *)s, s->pass_rule);
}

const char *session_user(const struct session *s)
{
	return s->user;
}

void session_set_user(struct session *s, const char *user)
{
	snprintf(s->user, sizeof(s->user), "%s", user);
	free(s->groups);
	s->groups = NULL;
	s->n_groups = 0;
}

struct stream_filter *session_filter(const struct session *s)
{
	return s->conn.filter;
}

const char *session_close_reason(const struct session *s)
{
	return s->state == SS_CLOSED || s->closing_after_flush ? s->close_reason : "";
}

bool session_ending(const struct session *s)
{
	return s->state == SS_CLOSED || s->closing_after_flush;
}

void session_require_tls(struct session *s, bool on)
{
	s->require_tls = on;
}

void session_set_dgram_guard(struct session *s, const struct session_dgram_guard *g)
{
	s->dgram_guard = g;
}

const struct session_dgram_guard *session_dgram_guard(const struct session *s)
{
	return s->dgram_guard;
}

void session_refuse_udp(struct session *s, bool on)
{
	s->no_udp = on;
}

bool session_udp_refused(const struct session *s)
{
	return s->no_udp;
}

void session_set_method_code(struct session *s, uint8_t code)
{
	if (s->hs)
		s->hs->method = code;
}

const uint8_t *session_input(const struct session *s, size_t *len, size_t *cap)
{
	*len = s->hs ? s->hs->inlen : 0;
	if (cap)
		*cap = s->hs ? sizeof(s->hs->in) : 0;
	return s->hs ? s->hs->in : NULL;
}

void session_set_handler(struct session *s, const struct session_cmd_ops *ops, void *data)
{
	s->cmd_ops = ops;
	s->cmd_data = data;
}

void *session_handler_data(const struct session *s)
{
	return s->cmd_data;
}

void session_note_reply(struct session *s, uint8_t rep)
{
	s->rep = rep;
	s->rep_sent = true;
}

void session_set_bound(struct session *s, const struct sockaddr *sa)
{
	memset(&s->bound, 0, sizeof(s->bound));
	memcpy(&s->bound, sa, sa_len(sa));
	sa_unmap(&s->bound);
}

void session_close_after_output(struct session *s, const char *reason)
{
	s->closing_after_flush = true;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
}

int session_finish(struct session *s, uint8_t rep, const char *reason)
{
	session_close_after_output(s, reason);
	session_reply(s, rep, NULL, false);
	return -1;
}

__attribute__((format(printf, 3, 0)))
static void vlog_tagged(const struct session *s, int level, const char *fmt, va_list ap)
{
	char tag[SA_STR_MAX + 300], msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (level == LOG_WARNING)
		log_warnx("%s: %s", session_tag(s, tag, sizeof(tag)), msg);
	else
		log_info("%s: %s", session_tag(s, tag, sizeof(tag)), msg);
}

void session_warnx(const struct session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog_tagged(s, LOG_WARNING, fmt, ap);
	va_end(ap);
}

void session_info(const struct session *s, const char *fmt, ...)
{
	va_list ap;
	if (log_getlevel() < LOG_INFO)
		return;
	va_start(ap, fmt);
	vlog_tagged(s, LOG_INFO, fmt, ap);
	va_end(ap);
}

void session_bind_address(const struct session *s, struct sockaddr_storage *out)
{
	const struct conf_listener *l = s->listener;
	*out = l->has_external ? l->external : s->local;
	sa_set_port((struct sockaddr *)out, 0);
}

size_t session_output_queued(const struct session *s)
{
	return s->hs ? s->hs->outlen - s->hs->outoff : 0;
}
