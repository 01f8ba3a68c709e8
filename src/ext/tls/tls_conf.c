/*
 * tls_conf.c - the TLS keys of stpd.conf and their checks (tls_conf.h),
 * registered with the config registry: the core's parser knows them only
 * through it.
 */
#include "ext/tls/tls_conf.h"

#include <string.h>

static struct tls_conf *settings(void *data)
{
	return data;
}

/* cert, key, client-ca: a path. */
static void k_file(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tls_conf *t = settings(data);
	char *dst = strcmp(s->key, "cert") == 0 ? t->cert :
		    strcmp(s->key, "key") == 0  ? t->key :
						  t->client_ca;
	conf_ext_file(p, s, dst, CONF_PATH_MAX);
}

static void k_client_cert(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tls_conf *t = settings(data);
	const char *v = s->args[0];
	if (strcmp(v, "none") == 0)
		t->client_cert = TLS_CLIENT_CERT_NONE;
	else if (strcmp(v, "optional") == 0)
		t->client_cert = TLS_CLIENT_CERT_OPTIONAL;
	else if (strcmp(v, "require") == 0)
		t->client_cert = TLS_CLIENT_CERT_REQUIRE;
	else
		conf_error(p, s->line, "'client-cert' is none, optional or require, not '%.64s'", v);
}

/* cert-user, udp-naked: on or off. */
static void k_bool(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tls_conf *t = settings(data);
	conf_ext_bool(p, s, strcmp(s->key, "cert-user") == 0 ? &t->cert_user : &t->udp_naked);
}

/* The methods that may run inside X'86' (never ssl itself). */
static void k_subauth(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	unsigned bits = 0;
	for (size_t i = 0; i < s->nargs; i++) {
		if (strcmp(s->args[i], "none") == 0)
			bits |= AUTH_BIT_NONE;
		else if (strcmp(s->args[i], "userpass") == 0)
			bits |= AUTH_BIT_USERPASS;
		else
			conf_error(p, s->line, "unknown subauth method '%.64s' (none or userpass)",
				   s->args[i]);
	}
	settings(data)->subauth = bits;
}

static void k_min_version(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	if (strcmp(s->args[0], "1.2") == 0)
		settings(data)->min_version = 12;
	else if (strcmp(s->args[0], "1.3") == 0)
		settings(data)->min_version = 13;
	else
		conf_error(p, s->line, "'min-version' is 1.2 or 1.3, not '%.64s'", s->args[0]);
}

/* listen { tls on|off; require-tls on|off } */
static void k_listen(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tls_conf_listener *l = data;
	conf_ext_bool(p, s, strcmp(s->key, "tls") == 0 ? &l->tls : &l->require_tls);
}

/* client pass { require-tls on|off } */
static void k_rule(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tls_conf_rule *r = data;
	conf_ext_bool(p, s, &r->require_tls);
}

static void tls_conf_defaults(void *data)
{
	settings(data)->udp_naked = true;
	settings(data)->min_version = 12;
}

/* Settings that only make sense together. */
static void tls_conf_check(struct conf_parser *p, const struct stp_conf *c, const void *data)
{
	const struct tls_conf *t = data;
	bool used = c->auth_methods & AUTH_BIT_SSL;
	int tls_line = conf_first_line(p, "tls");
	int line = tls_line ? tls_line : conf_first_line(p, "auth");
	for (size_t i = 0; i < c->n_listeners; i++)
		used = used || tls_conf_listener_tls(&c->listeners[i]);
	if (used && (!t->cert[0] || !t->key[0]))
		conf_error(p, line ? line : 1,
			   "auth method ssl and 'tls on' listeners need 'cert' and 'key' in a tls block");
	if (t->client_cert != TLS_CLIENT_CERT_NONE && !t->client_ca[0])
		conf_error(p, tls_line, "'client-cert %s' needs 'client-ca'",
			   t->client_cert == TLS_CLIENT_CERT_REQUIRE ? "require" : "optional");
	if ((t->subauth & AUTH_BIT_USERPASS) && conf_backend_used(c, USERPASS_FILE) &&
	    c->users_file[0] == '\0')
		conf_error(p, tls_line, "subauth userpass with backend file needs 'users-file'");
}

/* RFC 1929 inside X'86' needs the users file loaded like the method itself. */
static unsigned tls_conf_auth_used(const struct stp_conf *c, const void *data)
{
	return data ? ((const struct tls_conf *)data)->subauth : 0;
}

#define KEY1(name, fn) { name, 1, 1, true, fn }

static const struct conf_ext_key tls_keys[] = {
	KEY1("cert", k_file),
	KEY1("cert-user", k_bool),
	KEY1("client-ca", k_file),
	KEY1("client-cert", k_client_cert),
	KEY1("key", k_file),
	KEY1("min-version", k_min_version),
	{ "subauth", 1, 2, true, k_subauth },
	KEY1("udp-naked", k_bool),
};

static const struct conf_ext_section tls_section = {
	.name = "tls",
	.what = "a tls block",
	.keys = tls_keys,
	.n_keys = sizeof(tls_keys) / sizeof(tls_keys[0]),
	.settings_size = sizeof(struct tls_conf),
	.init_defaults = tls_conf_defaults,
	.check = tls_conf_check,
};

static const struct conf_ext_rule_key tls_rule_keys[] = {
	{ CONF_IN_LISTEN, KEY1("require-tls", k_listen) },
	{ CONF_IN_LISTEN, KEY1("tls", k_listen) },
	{ CONF_IN_CLIENT_RULE, KEY1("require-tls", k_rule) },
};

const struct conf_ext tls_conf_ext = {
	.name = "tls",
	.section = &tls_section,
	.rule_keys = tls_rule_keys,
	.n_rule_keys = sizeof(tls_rule_keys) / sizeof(tls_rule_keys[0]),
	.listener_size = sizeof(struct tls_conf_listener),
	.rule_size = sizeof(struct tls_conf_rule),
	.auth_used = tls_conf_auth_used,
};

const struct tls_conf *tls_conf_get(const struct stp_conf *c)
{
	return conf_ext_get(c, &tls_conf_ext);
}

bool tls_conf_listener_tls(const struct conf_listener *l)
{
	const struct tls_conf_listener *x = l ? conf_ext_listener(l, &tls_conf_ext) : NULL;
	return x && x->tls;
}

bool tls_conf_listener_require(const struct conf_listener *l)
{
	const struct tls_conf_listener *x = l ? conf_ext_listener(l, &tls_conf_ext) : NULL;
	return x && x->require_tls;
}

bool tls_conf_rule_require(const struct rule *r)
{
	const struct tls_conf_rule *x = r ? conf_ext_rule(r, &tls_conf_ext) : NULL;
	return x && x->require_tls;
}
