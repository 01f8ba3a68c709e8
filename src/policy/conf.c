/*
 * conf.c - the configuration snapshot: allocation, the embedded default,
 * command-line overrides, reference counting and the human summary. The
 * parser lives in conf_parse.c.
 */
#include "policy/conf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "common/sockaddr.h"
#include "policy/conf_internal.h"

#define CONF_DEFAULT_FILE "embedded default"

struct stp_conf *conf_new(void)
{
	struct stp_conf *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	c->auth_methods = AUTH_BIT_NONE;
	c->userpass_backend = USERPASS_FILE;
	c->backends[0] = USERPASS_FILE;
	c->n_backends = 1;
	c->auth_cache = (struct auth_cache_conf){ .ttl = 0, .size = 1024 };
	c->auth_down_time = 10;
	c->ldap.timeout = 5;
	snprintf(c->ldap.filter, sizeof(c->ldap.filter), "(uid=%%u)");
	snprintf(c->ldap.group_name_attribute, sizeof(c->ldap.group_name_attribute), "cn");
	c->radius.timeout = 3;
	c->radius.retries = 1;
	snprintf(c->radius.nas_identifier, sizeof(c->radius.nas_identifier), "stpd");
	snprintf(c->pam_service, sizeof(c->pam_service), "stpd");
	c->timeouts = (struct conf_timeouts){
		.handshake = 10, .connect = 30, .connect_attempt_delay = 250, .idle = 3600,
		.bind_accept = 120, .udp_idle = 300, .dns = 10, .drain = 10,
	};
	c->limits = (struct conf_limits){
		.max_sessions = 10000, .max_sessions_per_client = 1000,
		.max_dns_pending = 1024, .relay_buffer = 65536,
	};
	c->log_target = LOG_TO_STDERR;
	c->log_format = LOG_FMT_TEXT;
	c->log_level = LOG_INFO;
	if (conf_ext_settings_init(c) < 0) {
		conf_unref(c);
		return NULL;
	}
	return c;
}

struct conf_listener *conf_listener_add(struct stp_conf *c)
{
	struct conf_listener *l = realloc(c->listeners, (c->n_listeners + 1) * sizeof(*l));
	if (!l)
		return NULL;
	c->listeners = l;
	l = &c->listeners[c->n_listeners++];
	memset(l, 0, sizeof(*l));
	return l;
}

void conf_rule_set_file(struct rule *r, const char *file)
{
	size_t n = strlen(file);
	/* The tail of a long path says more than its head. */
	if (n >= sizeof(r->file))
		snprintf(r->file, sizeof(r->file), "...%s", file + n - (sizeof(r->file) - 4));
	else
		memcpy(r->file, file, n + 1);
}

struct rule *conf_rule_add(struct rule **rules, size_t *n, const char *file, int line,
			   enum rule_action action)
{
	struct rule *r = realloc(*rules, (*n + 1) * sizeof(*r));
	if (!r)
		return NULL;
	*rules = r;
	r = &r[(*n)++];
	memset(r, 0, sizeof(*r));
	conf_rule_set_file(r, file);
	r->line = line;
	r->action = action;
	r->log_level = -1;
	atomic_init(&r->active, 0);
	return r;
}

/* With the extensions' data each one holds. */
static void conf_listeners_free(struct conf_listener *ls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		conf_ext_slots_free(ls[i].ext);
	free(ls);
}

static void conf_rules_free(struct rule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++)
		conf_ext_slots_free(rules[i].ext);
	free(rules);
}

static int conf_default_listener(struct stp_conf *c)
{
	struct conf_listener *l = conf_listener_add(c);
	if (!l)
		return -1;
	snprintf(l->name, sizeof(l->name), "default");
	return sa_parse(&l->addr, &l->addrlen, "127.0.0.1:1080", 1080);
}

static int conf_default_client_rules(struct stp_conf *c)
{
	struct rule *r = conf_rule_add(&c->client_rules, &c->n_client_rules, CONF_DEFAULT_FILE, 0,
				       RULE_PASS);
	if (!r)
		return -1;
	if (rule_cidr_parse(&r->from[0], "127.0.0.0/8") < 0 ||
	    rule_cidr_parse(&r->from[1], "::1/128") < 0)
		return -1;
	r->n_from = 2;
	return 0;
}

static int conf_default_request_rules(struct stp_conf *c)
{
	return conf_rule_add(&c->request_rules, &c->n_request_rules, CONF_DEFAULT_FILE, 0,
			     RULE_PASS) ? 0 : -1;
}

int conf_fill_defaults(struct stp_conf *c)
{
	if (c->n_listeners == 0 && conf_default_listener(c) < 0)
		return -1;
	if (c->n_client_rules == 0 && conf_default_client_rules(c) < 0)
		return -1;
	if (c->n_request_rules == 0 && conf_default_request_rules(c) < 0)
		return -1;
	return 0;
}

struct stp_conf *conf_default(void)
{
	struct stp_conf *c = conf_new();
	if (c && conf_fill_defaults(c) < 0) {
		conf_unref(c);
		return NULL;
	}
	return c;
}

static void conf_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void conf_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Parses every address before touching c, so a bad one leaves c as it was. */
int conf_set_listeners(struct stp_conf *c, const char *const *addrs, size_t n, char *err,
		       size_t errlen)
{
	if (n == 0) {
		conf_errf(err, errlen, "no listen address given");
		return -1;
	}
	struct conf_listener *ls = calloc(n, sizeof(*ls));
	if (!ls) {
		conf_errf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (sa_parse(&ls[i].addr, &ls[i].addrlen, addrs[i], -1) < 0 ||
		    sa_port((struct sockaddr *)&ls[i].addr) == 0) {
			conf_errf(err, errlen, "bad listen address '%s' (want ADDR:PORT or [V6]:PORT)",
				  addrs[i]);
			free(ls);
			return -1;
		}
		sa_str((struct sockaddr *)&ls[i].addr, ls[i].name, sizeof(ls[i].name));
		for (size_t j = 0; j < i; j++) {
			if (sa_equal((struct sockaddr *)&ls[i].addr, (struct sockaddr *)&ls[j].addr)) {
				conf_errf(err, errlen, "listen address '%s' given twice", addrs[i]);
				free(ls);
				return -1;
			}
		}
	}
	conf_listeners_free(c->listeners, c->n_listeners);
	c->listeners = ls;
	c->n_listeners = n;
	return 0;
}

bool conf_names_file(const struct stp_conf *c, const char *path)
{
	if (!path[0])
		return false;
	if (strcmp(c->path, path) == 0 || (c->users_file[0] && strcmp(c->users_file, path) == 0) ||
	    (c->radius.line && strcmp(c->radius.secret_file, path) == 0) ||
	    (c->ldap.line && strcmp(c->ldap.bind_password_file, path) == 0))
		return true;
	for (unsigned i = 0; i < c->n_files; i++)
		if (strcmp(c->files[i], path) == 0)
			return true;
	return false;
}

int conf_set_users_file(struct stp_conf *c, const char *path, char *err, size_t errlen)
{
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(c->users_file)) {
		conf_errf(err, errlen, "bad users file path (1-%zu characters)",
			  sizeof(c->users_file) - 1);
		return -1;
	}
	memcpy(c->users_file, path, n + 1);
	c->users_file_line = 0;
	c->auth_methods = AUTH_BIT_USERPASS;
	c->userpass_backend = USERPASS_FILE;
	c->backends[0] = USERPASS_FILE;
	c->n_backends = 1;
	return 0;
}

bool conf_backend_used(const struct stp_conf *c, enum conf_userpass_backend b)
{
	for (size_t i = 0; i < c->n_backends; i++)
		if (c->backends[i] == b)
			return true;
	return false;
}

/* One pass rule per RULE_LIST_MAX ranges, so any number of ranges fits. */
int conf_set_allow(struct stp_conf *c, const char *const *cidrs, size_t n, char *err,
		   size_t errlen)
{
	struct rule *rules = NULL;
	size_t n_rules = 0;
	if (n == 0) {
		conf_errf(err, errlen, "no address range given");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct rule *r = n_rules ? &rules[n_rules - 1] : NULL;
		if (!r || r->n_from == RULE_LIST_MAX) {
			r = conf_rule_add(&rules, &n_rules, "--allow", 0, RULE_PASS);
			if (!r) {
				conf_errf(err, errlen, "out of memory");
				free(rules);
				return -1;
			}
		}
		if (rule_cidr_parse(&r->from[r->n_from], cidrs[i]) < 0) {
			conf_errf(err, errlen, "bad address range '%s' (want ADDR or ADDR/PREFIX)",
				  cidrs[i]);
			free(rules);
			return -1;
		}
		r->n_from++;
	}
	conf_rules_free(c->client_rules, c->n_client_rules);
	c->client_rules = rules;
	c->n_client_rules = n_rules;
	return 0;
}

struct stp_conf *conf_ref(struct stp_conf *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void conf_unref(struct stp_conf *c)
{
	if (!c)
		return;
	/* acq_rel: the last owner must see every other owner's writes. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	conf_listeners_free(c->listeners, c->n_listeners);
	conf_rules_free(c->client_rules, c->n_client_rules);
	conf_rules_free(c->request_rules, c->n_request_rules);
	conf_ext_settings_free(c);
	free(c);
}

/* Appends to out like snprintf, never past outlen. */
static void conf_cat(char *out, size_t outlen, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void conf_cat(char *out, size_t outlen, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	if (*pos >= outlen)
		return;
	va_start(ap, fmt);
	int w = vsnprintf(out + *pos, outlen - *pos, fmt, ap);
	va_end(ap);
	if (w > 0)
		*pos += (size_t)w;
}

static void conf_describe_listeners(const struct stp_conf *c, char *out, size_t outlen,
				    size_t *pos)
{
	char addr[SA_STR_MAX], ext[SA_STR_MAX];
	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct conf_listener *l = &c->listeners[i];
		conf_cat(out, outlen, pos, "listen %s (%s)%s", sa_str((struct sockaddr *)&l->addr,
			 addr, sizeof(addr)), l->name, l->proxy_protocol ? " proxy-protocol" : "");
		if (l->has_udp_advertise)
			conf_cat(out, outlen, pos, " udp-advertise %s",
				 sa_str((struct sockaddr *)&l->udp_advertise, ext, sizeof(ext)));
		if (l->has_external)
			conf_cat(out, outlen, pos, " external %s",
				 sa_str((struct sockaddr *)&l->external, ext, sizeof(ext)));
		conf_cat(out, outlen, pos, "\n");
	}
}

static void conf_describe_auth(const struct stp_conf *c, char *out, size_t outlen, size_t *pos)
{
	conf_cat(out, outlen, pos, "auth:");
	if (c->auth_methods & AUTH_BIT_NONE)
		conf_cat(out, outlen, pos, " none");
	if (c->auth_methods & AUTH_BIT_USERPASS) {
		static const char *const names[] = { "file", "pam", "ldap", "radius" };
		conf_cat(out, outlen, pos, " userpass (");
		for (size_t i = 0; i < c->n_backends; i++) {
			enum conf_userpass_backend b = c->backends[i];
			conf_cat(out, outlen, pos, "%s%s", i ? ", then " : "", names[b]);
			if (b == USERPASS_PAM)
				conf_cat(out, outlen, pos, " service %s", c->pam_service);
			else if (b == USERPASS_FILE)
				conf_cat(out, outlen, pos, " %s", c->users_file);
			else if (b == USERPASS_LDAP)
				conf_cat(out, outlen, pos, " %s", c->ldap.uri);
			else
				conf_cat(out, outlen, pos, " %zu server%s", c->radius.n_servers,
					 c->radius.n_servers == 1 ? "" : "s");
		}
		conf_cat(out, outlen, pos, ")");
		if (c->auth_cache.ttl)
			conf_cat(out, outlen, pos, " cache %us x %u", c->auth_cache.ttl,
				 c->auth_cache.size);
	}
	if (c->auth_methods & AUTH_BIT_GSSAPI)
		conf_cat(out, outlen, pos, " gssapi");
	conf_cat(out, outlen, pos, "\n");
}

void conf_describe(const struct stp_conf *c, char *out, size_t outlen)
{
	size_t pos = 0;
	if (outlen == 0)
		return;
	out[0] = '\0';
	conf_cat(out, outlen, &pos, "config: %s\n", c->path[0] ? c->path : CONF_DEFAULT_FILE);
	conf_describe_listeners(c, out, outlen, &pos);
	conf_describe_auth(c, out, outlen, &pos);
	if (c->workers)
		conf_cat(out, outlen, &pos, "workers: %u", c->workers);
	else
		conf_cat(out, outlen, &pos, "workers: one per core");
	conf_cat(out, outlen, &pos, ", resolver: %s", c->has_resolver ? c->resolver :
		 "/etc/resolv.conf");
	if (c->run_as_user[0])
		conf_cat(out, outlen, &pos, ", user: %s", c->run_as_user);
	if (c->no_seccomp)
		conf_cat(out, outlen, &pos, ", seccomp: off");
	conf_cat(out, outlen, &pos, "\nlog: %s %s %s\n",
		 c->log_target == LOG_TO_SYSLOG ? "syslog" : "stderr",
		 c->log_format == LOG_FMT_JSON ? "json" : "text", cv_log_level_name(c->log_level));
	conf_cat(out, outlen, &pos, "rules: %zu client, %zu request\n", c->n_client_rules,
		 c->n_request_rules);
}
