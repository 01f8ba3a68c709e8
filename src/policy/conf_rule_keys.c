/*
 * conf_rule_keys.c - "client pass|block { ... }" and "request pass|block
 * { ... }": the keys of a rule body. List keys (from, to, user, ...) may
 * repeat and add to the list; the others may appear once per rule.
 * Extensions add keys of their own (conf_ext.h).
 */
#include <stdio.h>
#include <string.h>

#include "policy/conf_ext.h"
#include "policy/conf_internal.h"
#include "policy/conf_parse.h"

static void *conf_key_rule(struct conf_parser *p, const struct conf_stmt *s, struct rule **rules,
			   size_t *n)
{
	enum rule_action action = RULE_BLOCK;
	const char *v = s->args[0].text;
	if (strcmp(v, "pass") == 0)
		action = RULE_PASS;
	else if (strcmp(v, "block") != 0)
		conf_error(p, s->line, "'%s' is followed by pass or block, not '%.64s'", s->key, v);
	/* Added even after an error, so its body is still checked. */
	struct rule *r = conf_rule_add(rules, n, p->file, s->line, action);
	if (!r)
		conf_oom(p, s->line);
	return r;
}

void *conf_key_client(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	return conf_key_rule(p, s, &p->conf->client_rules, &p->conf->n_client_rules);
}

void *conf_key_request(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	return conf_key_rule(p, s, &p->conf->request_rules, &p->conf->n_request_rules);
}

/* Room for one more entry in a rule list, or an error. */
static bool rule_room(struct conf_parser *p, const struct conf_stmt *s, size_t n)
{
	if (n < RULE_LIST_MAX)
		return true;
	conf_error(p, s->line, "too many '%s' values in one rule (at most %d)", s->key,
		   RULE_LIST_MAX);
	return false;
}

static void *r_from(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct rule *r = ctx;
	for (size_t i = 0; r && i < s->nargs && rule_room(p, s, r->n_from); i++) {
		if (rule_cidr_parse(&r->from[r->n_from], s->args[i].text) < 0)
			conf_error(p, s->line, "bad address range '%.64s' (want ADDR or ADDR/PREFIX)",
				   s->args[i].text);
		else
			r->n_from++;
	}
	return ctx;
}

/* "to" takes address ranges and host names (or ".suffix" names) mixed. */
static void *r_to(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct rule *r = ctx;
	for (size_t i = 0; r && i < s->nargs; i++) {
		const char *v = s->args[i].text;
		if (cv_looks_like_addr(v)) {
			if (!rule_room(p, s, r->n_to))
				break;
			if (rule_cidr_parse(&r->to[r->n_to], v) < 0)
				conf_error(p, s->line,
					   "bad address range '%.64s' (want ADDR or ADDR/PREFIX)", v);
			else
				r->n_to++;
		} else {
			if (!rule_room(p, s, r->n_to_names))
				break;
			if (cv_domain(v, r->to_names[r->n_to_names], RULE_STR_MAX) < 0)
				conf_error(p, s->line,
					   "bad host name '%.64s' (want host.example or .example)", v);
			else
				r->n_to_names++;
		}
	}
	return ctx;
}

static void *r_port(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct rule *r = ctx;
	for (size_t i = 0; r && i < s->nargs && rule_room(p, s, r->n_ports); i++) {
		if (cv_port_range(s->args[i].text, &r->ports[r->n_ports]) < 0)
			conf_error(p, s->line, "bad port '%.64s' (want 1-65535, or LOW-HIGH with LOW <= HIGH)",
				   s->args[i].text);
		else
			r->n_ports++;
	}
	return ctx;
}

/* user, group and listener: lists of names, checked for length only (user
 * names are whatever RFC 1929 clients send). */
static void *r_names(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct rule *r = ctx;
	if (!r)
		return ctx;
	size_t *n = s->kw == KW_USER ? &r->n_users : s->kw == KW_GROUP ? &r->n_groups :
									    &r->n_listeners;
	size_t cap = s->kw == KW_USER ? sizeof(r->users[0]) : sizeof(r->groups[0]);
	for (size_t i = 0; i < s->nargs && rule_room(p, s, *n); i++) {
		const char *v = s->args[i].text;
		if (v[0] == '\0' || strlen(v) >= cap) {
			conf_error(p, s->line, "bad %s '%.64s' (1 to %zu characters)", s->key, v,
				   cap - 1);
			continue;
		}
		char *dst = s->kw == KW_USER ? r->users[*n] : s->kw == KW_GROUP ? r->groups[*n] :
										   r->listeners[*n];
		memcpy(dst, v, strlen(v) + 1);
		(*n)++;
	}
	return ctx;
}

/* The names are the core's and the registered extensions' (conf_ext.h). */
static void *r_command(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct rule *r = ctx;
	char names[512], hint[200];
	for (size_t i = 0; r && i < s->nargs; i++) {
		uint32_t bit;
		if (cv_command(s->args[i].text, &bit) < 0 &&
		    conf_ext_absent_hint(s->args[i].text, hint, sizeof(hint))) {
			conf_error(p, s->line, "%s", hint);
		} else if (cv_command(s->args[i].text, &bit) < 0) {
			cv_command_list(names, sizeof(names));
			conf_error(p, s->line, "unknown command '%.64s' (%s)", s->args[i].text, names);
		} else {
			r->commands |= bit;
		}
	}
	return ctx;
}

static void *r_time(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct rule *r = ctx;
	if (r && cv_time_range(s->args[0].text, &r->minute_from, &r->minute_to) < 0)
		conf_error(p, s->line, "bad time window '%.64s' (want HH:MM-HH:MM, 00:00 to 23:59)",
			   s->args[0].text);
	else if (r)
		r->has_time = true;
	return ctx;
}

static void *r_days(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct rule *r = ctx;
	for (size_t i = 0; r && i < s->nargs; i++)
		if (cv_days(s->args[i].text, &r->weekdays) < 0)
			conf_error(p, s->line,
				   "bad day '%.64s' (want sun, mon, tue, wed, thu, fri, sat or a range "
				   "like mon-fri)", s->args[i].text);
	return ctx;
}

static void *r_log(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct rule *r = ctx;
	if (r && cv_log_level(s->args[0].text, &r->log_level) < 0)
		conf_error(p, s->line, "'log' is error, warning, notice, info or debug, not '%.64s'",
			   s->args[0].text);
	return ctx;
}

static void *r_number(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct rule *r = ctx;
	unsigned max = s->kw == KW_SESSIONS ? 1000000u : 604800u;
	unsigned v;
	if (!r)
		return ctx;
	if (cv_uint(s->args[0].text, 1, max, &v) < 0)
		conf_error(p, s->line, "'%s' wants a number from 1 to %u, not '%.64s'", s->key, max,
			   s->args[0].text);
	else if (s->kw == KW_SESSIONS)
		r->max_sessions = v;
	else
		r->idle_timeout = v;
	return ctx;
}

#define LIST(kw, fn) { kw, 1, RULE_LIST_MAX, false, NULL, false, fn }
#define ONE(kw, fn) { kw, 1, 1, true, NULL, false, fn }
#define N(a) (sizeof(a) / sizeof(a[0]))

/* Client rules decide on the connection alone. */
static const struct conf_key client_rule_keys[] = {
	{ KW_DAYS, 1, 7, true, NULL, false, r_days },
	LIST(KW_FROM, r_from),
	LIST(KW_LISTENER, r_names),
	ONE(KW_LOG, r_log),
	ONE(KW_SESSIONS, r_number),
	ONE(KW_TIME, r_time),
};
const struct conf_section conf_sec_client_rule = { SEC_CLIENT_RULE, "a client rule",
						   client_rule_keys, N(client_rule_keys) };

static const struct conf_key request_rule_keys[] = {
	LIST(KW_COMMAND, r_command),
	{ KW_DAYS, 1, 7, true, NULL, false, r_days },
	LIST(KW_FROM, r_from),
	LIST(KW_GROUP, r_names),
	ONE(KW_IDLE_TIMEOUT, r_number),
	LIST(KW_LISTENER, r_names),
	ONE(KW_LOG, r_log),
	LIST(KW_PORT, r_port),
	ONE(KW_SESSIONS, r_number),
	ONE(KW_TIME, r_time),
	{ KW_TO, 1, 2 * RULE_LIST_MAX, false, NULL, false, r_to },
	LIST(KW_USER, r_names),
};
const struct conf_section conf_sec_request_rule = { SEC_REQUEST_RULE, "a request rule",
						    request_rule_keys, N(request_rule_keys) };
