/*
 * sessionlog.c - see sessionlog.h.
 */
#include "server/sessionlog.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "policy/conf_ext.h"
#include "policy/rules.h"
#include "server/ext.h"
#include "server/server.h"
#include "server/session_int.h"

/* The names rules use, the core's and the extensions' (conf_ext.h). */
const char *rule_cmd_name(uint32_t rule_cmd)
{
	return conf_command_name(rule_cmd);
}

static const char *session_cmd_name(const struct session *s)
{
	if (s->target.atyp == 0) /* no request parsed */
		return "-";
	return socks5_cmd_name(s->cmd);
}

static const char *target_str(const struct session *s, char *out, size_t cap)
{
	if (s->target.atyp == 0)
		return strcpy(out, "-");
	return socks_addr_str(&s->target, out, cap);
}

/* Modules' fields (ext.h log_fields) appended to line: ` k=v` in text,
 * `,"k":"v"` in JSON. Values are the module's (names from the config). */
static void add_ext_fields(char *line, size_t cap, const struct session *s, const struct rule *r,
			   bool deny, bool json)
{
	struct ext_log_field f[EXT_LOG_FIELDS_MAX];
	size_t n = ext_log_fields(s, r, deny, f, EXT_LOG_FIELDS_MAX), len = strlen(line);
	for (size_t i = 0; i < n && len < cap; i++) {
		int w = json ? snprintf(line + len, cap - len, ",\"%s\":\"%s\"", f[i].key, f[i].value)
			     : snprintf(line + len, cap - len, " %s=%s", f[i].key, f[i].value);
		if (w < 0)
			break;
		len += (size_t)w;
	}
}

/* Escapes a value for JSON into out. */
static const char *j(char *out, size_t cap, const char *v)
{
	log_json_escape(out, cap, v);
	return out;
}

void sessionlog_session(const struct session *s, const char *result)
{
	char client[SA_STR_MAX], target[SA_STR_MAX], bound[SA_STR_MAX];
	char line[4096];
	const char *user = s->user[0] ? s->user : "-";
	const char *rep = s->rep_sent ? socks5_rep_name(s->rep) : "-";
	double dur = ev_now(s->w->loop) - s->started;
	int level = s->rule && s->rule->log_level >= 0 ? s->rule->log_level : LOG_INFO;

	if (level > log_getlevel())
		return; /* formatting is most of a short session's user-space cost */
	sa_str((const struct sockaddr *)&s->client, client, sizeof(client));
	target_str(s, target, sizeof(target));
	if (s->bound.ss_family)
		sa_str((const struct sockaddr *)&s->bound, bound, sizeof(bound));
	else
		strcpy(bound, "-");
	if (log_json()) {
		char e1[600], e2[600], e3[300], e4[300];
		snprintf(line, sizeof(line),
			 "\"event\":\"session\",\"id\":%llu,\"client\":\"%s\",\"listener\":\"%s\","
			 "\"user\":\"%s\",\"cmd\":\"%s\",\"target\":\"%s\",\"bound\":\"%s\","
			 "\"up\":%llu,\"down\":%llu,\"duration\":%.3f,\"rep\":\"%s\","
			 "\"result\":\"%s\"",
			 (unsigned long long)s->id, client, j(e1, sizeof(e1), s->listener->name),
			 j(e2, sizeof(e2), user), session_cmd_name(s),
			 j(e3, sizeof(e3), target), bound, (unsigned long long)s->up,
			 (unsigned long long)s->down, dur, rep, j(e4, sizeof(e4), result));
		add_ext_fields(line, sizeof(line), s, s->pass_rule, false, true);
		log_record(level, "", line);
		return;
	}
	snprintf(line, sizeof(line),
		 "session id=%llu client=%s listener=%s user=%s cmd=%s target=%s bound=%s "
		 "up=%llu down=%llu duration=%.3f rep=\"%s\" result=\"%s\"",
		 (unsigned long long)s->id, client, s->listener->name, user, session_cmd_name(s),
		 target, bound, (unsigned long long)s->up, (unsigned long long)s->down, dur, rep,
		 result);
	add_ext_fields(line, sizeof(line), s, s->pass_rule, false, false);
	log_record(level, line, NULL);
}

void sessionlog_deny(const struct session *s, uint32_t rule_cmd, const struct sockaddr *dst_addr,
		     const char *dst_name, uint16_t dst_port, const struct rule *r,
		     const char *why)
{
	char client[SA_STR_MAX], target[SA_STR_MAX], rule[300], line[4096];
	const char *user = s->user[0] ? s->user : "-";
	int level = r && r->log_level >= 0 ? r->log_level : LOG_NOTICE;
	/* A client refused at admission (rule_cmd 0) can repeat it at will and
	 * has no session line; a request's denial belongs to an admitted
	 * session and is written like its session line. */
	static struct log_rate rl_admission = LOG_RATE_INIT("deny (client rule)");

	if (level > log_getlevel())
		return;
	if (rule_cmd == 0 && !log_rate_pass(&rl_admission, level))
		return;
	sa_str((const struct sockaddr *)&s->client, client, sizeof(client));
	rules_describe(r, rule, sizeof(rule));
	if (dst_name) {
		struct socks_addr a = { .atyp = SOCKS_ATYP_DOMAIN, .port = dst_port };
		a.namelen = (uint8_t)strnlen(dst_name, SOCKS_DOMAIN_MAX);
		memcpy(a.u.name, dst_name, a.namelen);
		socks_addr_str(&a, target, sizeof(target));
	} else if (dst_addr) {
		sa_str(dst_addr, target, sizeof(target));
	} else {
		strcpy(target, "-");
	}
	if (log_json()) {
		char e1[600], e2[300];
		snprintf(line, sizeof(line),
			 "\"event\":\"deny\",\"id\":%llu,\"client\":\"%s\",\"listener\":\"%s\","
			 "\"user\":\"%s\",\"cmd\":\"%s\",\"target\":\"%s\",\"rule\":\"%s\","
			 "\"why\":\"%s\"",
			 (unsigned long long)s->id, client, s->listener->name,
			 j(e1, sizeof(e1), user), rule_cmd_name(rule_cmd),
			 j(e2, sizeof(e2), target), rule, why);
		add_ext_fields(line, sizeof(line), s, r, true, true);
		log_record(level, "", line);
		return;
	}
	snprintf(line, sizeof(line),
		 "deny id=%llu client=%s listener=%s user=%s cmd=%s target=%s rule=\"%s\" why=\"%s\"",
		 (unsigned long long)s->id, client, s->listener->name, user,
		 rule_cmd_name(rule_cmd), target, rule, why);
	add_ext_fields(line, sizeof(line), s, r, true, false);
	log_record(level, line, NULL);
}

void sessionlog_flow(const struct session *s, const struct flow *f, const char *result)
{
	char client[SA_STR_MAX], target[SA_STR_MAX], line[4096];
	const char *user = s->user[0] ? s->user : "-";
	const char *rep = f->rep_set ? socks5_rep_name(f->rep) : "-";
	double dur = ev_now(s->w->loop) - f->started;
	int level = f->rule && f->rule->log_level >= 0 ? f->rule->log_level : LOG_INFO;

	if (level > log_getlevel())
		return;
	sa_str((const struct sockaddr *)&s->client, client, sizeof(client));
	socks_addr_str(&f->target, target, sizeof(target));
	if (log_json()) {
		char e1[600], e2[600], e3[300], e4[300];
		snprintf(line, sizeof(line),
			 "\"event\":\"flow\",\"id\":\"%llu.%u\",\"client\":\"%s\","
			 "\"listener\":\"%s\",\"user\":\"%s\",\"cmd\":\"%s\",\"target\":\"%s\","
			 "\"up\":%llu,\"down\":%llu,\"duration\":%.3f,\"rep\":\"%s\","
			 "\"result\":\"%s\"",
			 (unsigned long long)s->id, f->n, client,
			 j(e1, sizeof(e1), s->listener->name), j(e2, sizeof(e2), user),
			 socks5_cmd_name(f->cmd), j(e3, sizeof(e3), target),
			 (unsigned long long)f->up, (unsigned long long)f->down, dur, rep,
			 j(e4, sizeof(e4), result));
		add_ext_fields(line, sizeof(line), s, f->rule, false, true);
		log_record(level, "", line);
		return;
	}
	snprintf(line, sizeof(line),
		 "flow id=%llu.%u client=%s listener=%s user=%s cmd=%s target=%s up=%llu down=%llu "
		 "duration=%.3f rep=\"%s\" result=\"%s\"",
		 (unsigned long long)s->id, f->n, client, s->listener->name, user,
		 socks5_cmd_name(f->cmd), target, (unsigned long long)f->up,
		 (unsigned long long)f->down, dur, rep, result);
	/* Each flow's own rule: one session's flows may go to different
	 * compartments (multicast groups, binds). */
	add_ext_fields(line, sizeof(line), s, f->rule, false, false);
	log_record(level, line, NULL);
}

void sessionlog_auth_failed(const struct session *s, const char *user, const char *why)
{
	char client[SA_STR_MAX], line[1024], safe[256];
	size_t i;
	static struct log_rate rl = LOG_RATE_INIT("auth failed");

	if (!log_rate_pass(&rl, LOG_WARNING))
		return;

	/* The user name is client input: print it safely. */
	for (i = 0; user[i] && i < sizeof(safe) - 1; i++)
		safe[i] = (user[i] > 0x20 && user[i] < 0x7f) ? user[i] : '?';
	safe[i] = '\0';
	sa_str((const struct sockaddr *)&s->client, client, sizeof(client));
	if (log_json()) {
		char e1[600];
		snprintf(line, sizeof(line),
			 "\"event\":\"auth-failed\",\"id\":%llu,\"client\":\"%s\",\"user\":\"%s\","
			 "\"why\":\"%s\"",
			 (unsigned long long)s->id, client, j(e1, sizeof(e1), safe), why);
		log_record(LOG_WARNING, "", line);
		return;
	}
	snprintf(line, sizeof(line), "auth failed id=%llu client=%s user=%s why=\"%s\"",
		 (unsigned long long)s->id, client, safe, why);
	log_record(LOG_WARNING, line, NULL);
}
