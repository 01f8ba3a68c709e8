/*
 * conf_keys.c - the keys of stpd.conf outside rules: global settings, the
 * log, timeouts, limits and auth blocks, and listeners; plus the checks that
 * need the whole file. Rules are in conf_rule_keys.c; extensions' sections
 * and keys come from the registry (conf_ext.c).
 */
#include <stdio.h>
#include <string.h>

#include "common/addrorder.h"
#include "common/sockaddr.h"
#include "policy/conf_authkeys.h"
#include "policy/conf_internal.h"
#include "policy/conf_parse.h"

#define CONF_TIMEOUT_MAX 604800u /* one week */

/* Copies a value already checked to fit. */
static void conf_set_str(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static const char *arg(const struct conf_stmt *s, size_t i)
{
	return s->args[i].text;
}

/* Stores a number in [min, max] or reports "'KEY' wants ...". */
static void conf_set_uint(struct conf_parser *p, const struct conf_stmt *s, unsigned min,
			  unsigned max, unsigned *out)
{
	if (cv_uint(arg(s, 0), min, max, out) < 0)
		conf_error(p, s->line, "'%s' wants a number from %u to %u, not '%.64s'", s->key, min,
			   max, arg(s, 0));
}

static void conf_copy(struct conf_parser *p, const struct conf_stmt *s, char *dst, size_t cap)
{
	if (strlen(arg(s, 0)) >= cap || arg(s, 0)[0] == '\0')
		conf_error(p, s->line, "'%s' wants 1 to %zu characters", s->key, cap - 1);
	else
		conf_set_str(dst, cap, arg(s, 0));
}

/* ---- top level ---- */

static void *k_workers(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	conf_set_uint(p, s, 0, 1024, &p->conf->workers);
	return ctx;
}

/* An IP literal only: resolving the resolver would need a resolver. */
static void *k_resolver(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *v = arg(s, 0);
	if (strlen(v) >= sizeof(p->conf->resolver) || sa_parse(&ss, &len, v, 53) < 0 ||
	    sa_port((struct sockaddr *)&ss) == 0) {
		conf_error(p, s->line,
			   "bad resolver '%.64s' (want an IP address, ADDR:PORT or [V6]:PORT)", v);
		return ctx;
	}
	p->conf->has_resolver = true;
	conf_set_str(p->conf->resolver, sizeof(p->conf->resolver), v);
	return ctx;
}

static void *k_user(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	if (cv_ident(arg(s, 0)) < 0)
		conf_error(p, s->line, "bad user name '%.64s' (letters, digits, '.', '_', '-')",
			   arg(s, 0));
	else
		conf_set_str(p->conf->run_as_user, sizeof(p->conf->run_as_user), arg(s, 0));
	return ctx;
}

/* seccomp on|off: the workers' and the broker's filters (on by default). */
static void *k_seccomp(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	bool on = true;
	if (cv_bool(arg(s, 0), &on) < 0)
		conf_error(p, s->line, "'seccomp' is on or off, not '%.64s'", arg(s, 0));
	else
		p->conf->no_seccomp = !on;
	return ctx;
}

/* log, timeouts, limits, auth: the block's keys write to p->conf. */
static void *k_block(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	return ctx;
}

/* ---- log { } ---- */

static void *k_log_target(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	if (strcmp(arg(s, 0), "stderr") == 0)
		p->conf->log_target = LOG_TO_STDERR;
	else if (strcmp(arg(s, 0), "syslog") == 0)
		p->conf->log_target = LOG_TO_SYSLOG;
	else
		conf_error(p, s->line, "'target' is stderr or syslog, not '%.64s'", arg(s, 0));
	return ctx;
}

static void *k_log_format(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	if (strcmp(arg(s, 0), "text") == 0)
		p->conf->log_format = LOG_FMT_TEXT;
	else if (strcmp(arg(s, 0), "json") == 0)
		p->conf->log_format = LOG_FMT_JSON;
	else
		conf_error(p, s->line, "'format' is text or json, not '%.64s'", arg(s, 0));
	return ctx;
}

static void *k_log_level(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	if (cv_log_level(arg(s, 0), &p->conf->log_level) < 0)
		conf_error(p, s->line,
			   "'level' is error, warning, notice, info or debug, not '%.64s'",
			   arg(s, 0));
	return ctx;
}

/* ---- timeouts { } and limits { } ---- */

static void *k_timeout(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct conf_timeouts *t = &p->conf->timeouts;
	unsigned *field = s->kw == KW_HANDSHAKE ? &t->handshake :
			  s->kw == KW_CONNECT ? &t->connect :
			  s->kw == KW_IDLE ? &t->idle :
			  s->kw == KW_BIND_ACCEPT ? &t->bind_accept :
			  s->kw == KW_UDP_IDLE ? &t->udp_idle :
			  s->kw == KW_DRAIN    ? &t->drain :
						 &t->dns;
	conf_set_uint(p, s, 0, CONF_TIMEOUT_MAX, field);
	return ctx;
}

static void *k_attempt_delay(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	conf_set_uint(p, s, HE_ATTEMPT_DELAY_MIN, HE_ATTEMPT_DELAY_MAX,
		      &p->conf->timeouts.connect_attempt_delay);
	return ctx;
}

static void *k_limit(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct conf_limits *l = &p->conf->limits;
	switch (s->kw) {
	case KW_SESSIONS:
		conf_set_uint(p, s, 1, 1000000, &l->max_sessions);
		break;
	case KW_SESSIONS_PER_CLIENT:
		conf_set_uint(p, s, 1, 1000000, &l->max_sessions_per_client);
		break;
	case KW_DNS_PENDING:
		conf_set_uint(p, s, 1, 65536, &l->max_dns_pending);
		break;
	default:
		conf_set_uint(p, s, 1024, 16u << 20, &l->relay_buffer);
		break;
	}
	return ctx;
}

/* ---- auth { } ---- */

/* A list of method names as conf_auth_bits. */
static void *k_auth_methods(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	unsigned bits = 0;
	for (size_t i = 0; i < s->nargs; i++) {
		if (strcmp(arg(s, i), "none") == 0)
			bits |= AUTH_BIT_NONE;
		else if (strcmp(arg(s, i), "userpass") == 0)
			bits |= AUTH_BIT_USERPASS;
		else if (strcmp(arg(s, i), "ssl") == 0)
			bits |= AUTH_BIT_SSL;
		else if (strcmp(arg(s, i), "gssapi") == 0)
			bits |= AUTH_BIT_GSSAPI;
		else
			conf_error(p, s->line,
				   "unknown auth method '%.64s' (none, userpass, ssl or gssapi)",
				   arg(s, i));
	}
	if (bits)
		p->conf->auth_methods = bits;
	return ctx;
}

static void *k_auth_users_file(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	conf_copy(p, s, p->conf->users_file, sizeof(p->conf->users_file));
	p->conf->users_file_line = s->line;
	return ctx;
}

static void *k_auth_pam_service(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	if (cv_ident(arg(s, 0)) < 0)
		conf_error(p, s->line, "bad PAM service name '%.64s'", arg(s, 0));
	else
		conf_set_str(p->conf->pam_service, sizeof(p->conf->pam_service), arg(s, 0));
	return ctx;
}

/* ---- listen ADDR { } ---- */

static void *k_listen(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct stp_conf *c = p->conf;
	struct conf_listener *l = conf_listener_add(c);
	if (!l) {
		conf_oom(p, s->line);
		return NULL;
	}
	struct sockaddr *sa = (struct sockaddr *)&l->addr;
	if (sa_parse(&l->addr, &l->addrlen, arg(s, 0), -1) < 0 || sa_port(sa) == 0) {
		conf_error(p, s->line, "bad listen address '%.64s' (want ADDR:PORT or [V6]:PORT)",
			   arg(s, 0));
		return l;
	}
	sa_str(sa, l->name, sizeof(l->name));
	for (size_t i = 0; i + 1 < c->n_listeners; i++)
		if (sa_equal((struct sockaddr *)&c->listeners[i].addr, sa))
			conf_error(p, s->line, "listen address %s is already used", l->name);
	return l;
}

static void *k_listen_name(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct conf_listener *l = ctx;
	if (!l)
		return ctx;
	if (cv_ident(arg(s, 0)) < 0) {
		conf_error(p, s->line, "bad listener name '%.64s' (1-63 letters, digits, '.', '_', '-')",
			   arg(s, 0));
		return ctx;
	}
	for (size_t i = 0; i < p->conf->n_listeners; i++)
		if (&p->conf->listeners[i] != l && strcmp(p->conf->listeners[i].name, arg(s, 0)) == 0)
			conf_error(p, s->line, "listener name '%s' is already used", arg(s, 0));
	conf_set_str(l->name, sizeof(l->name), arg(s, 0));
	return ctx;
}

static void *k_listen_proxy(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct conf_listener *l = ctx;
	if (l && cv_bool(arg(s, 0), &l->proxy_protocol) < 0)
		conf_error(p, s->line, "'proxy-protocol' is on or off, not '%.64s'", arg(s, 0));
	return ctx;
}

/* tcp-fastopen: on by default (the kernel decides whether it is used:
 * net.ipv4.tcp_fastopen bit 2 enables the server side). */
static void *k_listen_fastopen(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct conf_listener *l = ctx;
	bool on = true;
	if (l && cv_bool(arg(s, 0), &on) < 0)
		conf_error(p, s->line, "'tcp-fastopen' is on or off, not '%.64s'", arg(s, 0));
	if (l)
		l->no_fastopen = !on;
	return ctx;
}

/* udp-advertise and external: an IP address; a port, if any, is ignored. */
static void *k_listen_addr(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct conf_listener *l = ctx;
	if (!l)
		return ctx;
	bool ext = s->kw == KW_EXTERNAL;
	struct sockaddr_storage *ss = ext ? &l->external : &l->udp_advertise;
	socklen_t len;
	if (sa_parse(ss, &len, arg(s, 0), 0) < 0) {
		conf_error(p, s->line, "bad address '%.64s' for '%s' (want an IP address)",
			   arg(s, 0), s->key);
		return ctx;
	}
	sa_set_port((struct sockaddr *)ss, 0);
	if (ext)
		l->has_external = true;
	else
		l->has_udp_advertise = true;
	return ctx;
}

/* ---- tables ---- */

#define KEY1(kw, fn) { kw, 1, 1, true, NULL, false, fn }
#define N(a) (sizeof(a) / sizeof(a[0]))

static const struct conf_key log_keys[] = {
	KEY1(KW_FORMAT, k_log_format),
	KEY1(KW_LEVEL, k_log_level),
	KEY1(KW_TARGET, k_log_target),
};
static const struct conf_section sec_log = { SEC_LOG, "a log block", log_keys, N(log_keys) };

static const struct conf_key timeout_keys[] = {
	KEY1(KW_BIND_ACCEPT, k_timeout), KEY1(KW_CONNECT, k_timeout),
	KEY1(KW_CONNECT_ATTEMPT_DELAY, k_attempt_delay), KEY1(KW_DNS, k_timeout),
	KEY1(KW_DRAIN, k_timeout),
	KEY1(KW_HANDSHAKE, k_timeout), KEY1(KW_IDLE, k_timeout), KEY1(KW_UDP_IDLE, k_timeout),
};
static const struct conf_section sec_timeouts = { SEC_TIMEOUTS, "a timeouts block",
						  timeout_keys, N(timeout_keys) };

static const struct conf_key limit_keys[] = {
	KEY1(KW_DNS_PENDING, k_limit), KEY1(KW_RELAY_BUFFER, k_limit),
	KEY1(KW_SESSIONS, k_limit), KEY1(KW_SESSIONS_PER_CLIENT, k_limit),
};
static const struct conf_section sec_limits = { SEC_LIMITS, "a limits block", limit_keys,
						N(limit_keys) };

static const struct conf_key auth_keys[] = {
	{ KW_BACKEND, 1, AUTH_CHAIN_MAX, true, NULL, false, conf_k_auth_backend },
	KEY1(KW_CACHE_SIZE, conf_k_auth_cache),
	KEY1(KW_CACHE_TTL, conf_k_auth_cache),
	KEY1(KW_DOWN_TIME, conf_k_auth_cache),
	{ KW_METHODS, 1, 8, true, NULL, false, k_auth_methods },
	KEY1(KW_PAM_SERVICE, k_auth_pam_service),
	KEY1(KW_USERS_FILE, k_auth_users_file),
};
static const struct conf_section sec_auth = { SEC_AUTH, "an auth block", auth_keys,
					      N(auth_keys) };

static const struct conf_key listen_keys[] = {
	KEY1(KW_EXTERNAL, k_listen_addr),
	KEY1(KW_NAME, k_listen_name),
	KEY1(KW_PROXY_PROTOCOL, k_listen_proxy),
	KEY1(KW_TCP_FASTOPEN, k_listen_fastopen),
	KEY1(KW_UDP_ADVERTISE, k_listen_addr),
};
const struct conf_section conf_sec_listen = { SEC_LISTEN, "a listen block", listen_keys,
					     N(listen_keys) };

static const struct conf_key top_keys[] = {
	{ KW_AUTH, 0, 0, false, &sec_auth, true, k_block },
	{ KW_CLIENT, 1, 1, false, &conf_sec_client_rule, false, conf_key_client },
	{ KW_LDAP, 0, 0, true, &conf_sec_ldap, true, conf_k_ldap },
	{ KW_LIMITS, 0, 0, false, &sec_limits, true, k_block },
	{ KW_LISTEN, 1, 1, false, &conf_sec_listen, false, k_listen },
	{ KW_LOG, 0, 0, false, &sec_log, true, k_block },
	{ KW_RADIUS, 0, 0, true, &conf_sec_radius, true, conf_k_radius },
	{ KW_REQUEST, 1, 1, false, &conf_sec_request_rule, false, conf_key_request },
	KEY1(KW_RESOLVER, k_resolver),
	KEY1(KW_SECCOMP, k_seccomp),
	{ KW_TIMEOUTS, 0, 0, false, &sec_timeouts, true, k_block },
	KEY1(KW_USER, k_user),
	KEY1(KW_WORKERS, k_workers),
};
const struct conf_section conf_sec_top = { SEC_TOP, "the top level", top_keys, N(top_keys) };

/* ---- checks over the whole file ---- */

static bool conf_listener_known(const struct stp_conf *c, const char *name)
{
	if (c->n_listeners == 0)
		return strcmp(name, "default") == 0; /* the one conf_fill_defaults adds */
	for (size_t i = 0; i < c->n_listeners; i++)
		if (strcmp(c->listeners[i].name, name) == 0)
			return true;
	return false;
}

static void conf_check_listener_refs(struct conf_parser *p, const struct rule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < rules[i].n_listeners; j++)
			if (!conf_listener_known(p->conf, rules[i].listeners[j]))
				conf_error(p, rules[i].line, "no listener named '%s'",
					   rules[i].listeners[j]);
}

void conf_check_final(struct conf_parser *p)
{
	struct stp_conf *c = p->conf;
	conf_check_listener_refs(p, c->client_rules, c->n_client_rules);
	conf_check_listener_refs(p, c->request_rules, c->n_request_rules);
	if ((c->auth_methods & AUTH_BIT_USERPASS) && conf_backend_used(c, USERPASS_FILE) &&
	    c->users_file[0] == '\0') {
		int line = p->seen[SEC_AUTH][KW_METHODS] ? p->seen[SEC_AUTH][KW_METHODS] :
							    p->seen[SEC_TOP][KW_AUTH];
		conf_error(p, line, "auth method userpass with backend file needs 'users-file'");
	}
	conf_ext_check_all(p);
	conf_check_auth_backends(p, conf_auth_used(c) & AUTH_BIT_USERPASS);
}
