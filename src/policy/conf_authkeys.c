/*
 * conf_authkeys.c - the keys of the authentication backends: the backend
 * chain and the cache in auth { }, and the ldap { } and radius { } blocks.
 * Values are only checked here; files named (secrets, CA) are read when the
 * snapshot is built (src/auth/authset.c), so `stpd -t` reports them too.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/sockaddr.h"
#include "policy/conf_authkeys.h"
#include "policy/conf_internal.h"

static const char *arg(const struct conf_stmt *s, size_t i)
{
	return s->args[i].text;
}

static void set_uint(struct conf_parser *p, const struct conf_stmt *s, unsigned min, unsigned max,
		     unsigned *out)
{
	if (cv_uint(arg(s, 0), min, max, out) < 0)
		conf_error(p, s->line, "'%s' wants a number from %u to %u, not '%.64s'", s->key,
			   min, max, arg(s, 0));
}

/* A string value that must fit cap (with its NUL) and not be empty. */
static void set_str(struct conf_parser *p, const struct conf_stmt *s, char *dst, size_t cap)
{
	size_t n = strlen(arg(s, 0));
	if (n == 0 || n >= cap) {
		conf_error(p, s->line, "'%s' wants 1 to %zu characters", s->key, cap - 1);
		return;
	}
	memcpy(dst, arg(s, 0), n + 1);
}

/* ---- auth { } ---- */

void *conf_k_auth_backend(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	static const char *const names[] = { "file", "pam", "ldap", "radius" };
	struct stp_conf *c = p->conf;
	size_t n = 0;

	for (size_t i = 0; i < s->nargs; i++) {
		size_t k = 0;
		while (k < 4 && strcmp(arg(s, i), names[k]) != 0)
			k++;
		if (k == 4) {
			conf_error(p, s->line,
				   "unknown backend '%.64s' (file, pam, ldap or radius)",
				   arg(s, i));
			continue;
		}
		for (size_t j = 0; j < n; j++)
			if (c->backends[j] == (enum conf_userpass_backend)k)
				conf_error(p, s->line, "backend '%s' is listed twice", names[k]);
		if (n < AUTH_CHAIN_MAX)
			c->backends[n++] = (enum conf_userpass_backend)k;
	}
	if (n > 0) {
		c->n_backends = n;
		c->userpass_backend = c->backends[0];
	}
	return ctx;
}

void *conf_k_auth_cache(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct stp_conf *c = p->conf;
	if (s->kw == KW_CACHE_TTL)
		set_uint(p, s, 0, 86400, &c->auth_cache.ttl);
	else if (s->kw == KW_CACHE_SIZE)
		set_uint(p, s, 1, 1000000, &c->auth_cache.size);
	else
		set_uint(p, s, 0, 3600, &c->auth_down_time);
	return ctx;
}

/* ---- radius { } ---- */

void *conf_k_radius(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	p->conf->radius.line = s->line;
	return ctx;
}

/* "ADDR:PORT" or "[V6]:PORT", a literal address: a name would need a look-up
 * on every try, and its failure would look like a dead server. */
static void k_radius_server(struct conf_parser *p, const struct conf_stmt *s)
{
	struct auth_radius_conf *r = &p->conf->radius;
	for (size_t i = 0; i < s->nargs; i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		if (sa_parse(&ss, &len, arg(s, i), 1812) < 0) {
			conf_error(p, s->line,
				   "bad RADIUS server '%.64s' (want ADDR, ADDR:PORT or [V6]:PORT)",
				   arg(s, i));
			continue;
		}
		if (r->n_servers == AUTHCONF_RADIUS_SERVERS) {
			conf_error(p, s->line, "more than %d RADIUS servers",
				   AUTHCONF_RADIUS_SERVERS);
			return;
		}
		sa_str((struct sockaddr *)&ss, r->servers[r->n_servers++], sizeof(r->servers[0]));
	}
}

/* group-attribute class|filter-id ...: the Access-Accept attributes whose
 * values are the user's groups. */
static void k_radius_group_attrs(struct conf_parser *p, const struct conf_stmt *s,
				 struct auth_radius_conf *r)
{
	r->n_group_attrs = 0;
	for (size_t i = 0; i < s->nargs; i++) {
		unsigned id;
		if (strcasecmp(arg(s, i), "class") == 0)
			id = 25;
		else if (strcasecmp(arg(s, i), "filter-id") == 0)
			id = 11;
		else {
			conf_error(p, s->line,
				   "'group-attribute' is Class or Filter-Id, not '%.64s'",
				   arg(s, i));
			continue;
		}
		if (r->n_group_attrs < 2 && (r->n_group_attrs == 0 || r->group_attrs[0] != id))
			r->group_attrs[r->n_group_attrs++] = id;
	}
}

static void *k_radius_key(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct auth_radius_conf *r = &p->conf->radius;
	switch (s->kw) {
	case KW_SERVER:
		k_radius_server(p, s);
		break;
	case KW_SECRET_FILE:
		set_str(p, s, r->secret_file, sizeof(r->secret_file));
		break;
	case KW_TIMEOUT:
		set_uint(p, s, 1, 60, &r->timeout);
		break;
	case KW_RETRIES:
		set_uint(p, s, 0, 10, &r->retries);
		break;
	case KW_NAS_IDENTIFIER:
		set_str(p, s, r->nas_identifier, sizeof(r->nas_identifier));
		break;
	case KW_GROUP_ATTRIBUTE:
		k_radius_group_attrs(p, s, r);
		break;
	default: /* KW_METHOD */
		if (strcmp(arg(s, 0), "pap") == 0)
			r->chap = false;
		else if (strcmp(arg(s, 0), "chap") == 0)
			r->chap = true;
		else
			conf_error(p, s->line, "'method' is pap or chap, not '%.64s'", arg(s, 0));
		break;
	}
	return ctx;
}

/* ---- ldap { } ---- */

void *conf_k_ldap(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	p->conf->ldap.line = s->line;
	return ctx;
}

/* A template holds %u (or %d where allowed) and no other '%' escape. */
static void check_template(struct conf_parser *p, const struct conf_stmt *s, const char *t,
			   bool dn_ok)
{
	bool has_u = false;
	for (const char *q = t; *q; q++) {
		if (*q != '%')
			continue;
		if (q[1] == 'u')
			has_u = true;
		else if (!(q[1] == 'd' && dn_ok) && q[1] != '%')
			conf_error(p, s->line, "'%s': unknown escape '%%%c' (%s)", s->key,
				   q[1] ? q[1] : ' ', dn_ok ? "%u, %d or %%" : "%u or %%");
		if (q[1])
			q++;
	}
	if (!has_u && !dn_ok)
		conf_error(p, s->line, "'%s' must hold %%u (the user name)", s->key);
}

static void *k_ldap_key(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct auth_ldap_conf *l = &p->conf->ldap;
	switch (s->kw) {
	case KW_URI:
		set_str(p, s, l->uri, sizeof(l->uri));
		if (strncmp(l->uri, "ldap://", 7) != 0 && strncmp(l->uri, "ldaps://", 8) != 0)
			conf_error(p, s->line, "'uri' wants ldap://HOST[:PORT] or ldaps://...");
		break;
	case KW_STARTTLS:
		if (cv_bool(arg(s, 0), &l->starttls) < 0)
			conf_error(p, s->line, "'starttls' is on or off, not '%.64s'", arg(s, 0));
		break;
	case KW_CA_FILE:
		set_str(p, s, l->ca_file, sizeof(l->ca_file));
		break;
	case KW_USER_DN:
		set_str(p, s, l->user_dn, sizeof(l->user_dn));
		check_template(p, s, l->user_dn, false);
		break;
	case KW_BIND_DN:
		set_str(p, s, l->bind_dn, sizeof(l->bind_dn));
		break;
	case KW_BIND_PASSWORD_FILE:
		set_str(p, s, l->bind_password_file, sizeof(l->bind_password_file));
		break;
	case KW_BASE:
		set_str(p, s, l->base, sizeof(l->base));
		break;
	case KW_FILTER:
		set_str(p, s, l->filter, sizeof(l->filter));
		check_template(p, s, l->filter, false);
		break;
	case KW_GROUP_ATTRIBUTE:
		set_str(p, s, l->group_attribute, sizeof(l->group_attribute));
		break;
	case KW_GROUP_BASE:
		set_str(p, s, l->group_base, sizeof(l->group_base));
		break;
	case KW_GROUP_FILTER:
		set_str(p, s, l->group_filter, sizeof(l->group_filter));
		check_template(p, s, l->group_filter, true);
		break;
	case KW_GROUP_NAME_ATTRIBUTE:
		set_str(p, s, l->group_name_attribute, sizeof(l->group_name_attribute));
		break;
	default: /* KW_TIMEOUT */
		set_uint(p, s, 1, 300, &l->timeout);
		break;
	}
	return ctx;
}

#define KEY1(kw, fn)                            \
	{                                       \
		kw, 1, 1, true, NULL, false, fn \
	}
#define N(a) (sizeof(a) / sizeof(a[0]))

static const struct conf_key radius_keys[] = {
	{ KW_GROUP_ATTRIBUTE, 1, 2, true, NULL, false, k_radius_key },
	KEY1(KW_METHOD, k_radius_key),
	KEY1(KW_NAS_IDENTIFIER, k_radius_key),
	KEY1(KW_RETRIES, k_radius_key),
	KEY1(KW_SECRET_FILE, k_radius_key),
	{ KW_SERVER, 1, AUTHCONF_RADIUS_SERVERS, false, NULL, false, k_radius_key },
	KEY1(KW_TIMEOUT, k_radius_key),
};
const struct conf_section conf_sec_radius = { SEC_RADIUS, "a radius block", radius_keys,
					      N(radius_keys) };

static const struct conf_key ldap_keys[] = {
	KEY1(KW_BASE, k_ldap_key),
	KEY1(KW_BIND_DN, k_ldap_key),
	KEY1(KW_BIND_PASSWORD_FILE, k_ldap_key),
	KEY1(KW_CA_FILE, k_ldap_key),
	KEY1(KW_FILTER, k_ldap_key),
	KEY1(KW_GROUP_ATTRIBUTE, k_ldap_key),
	KEY1(KW_GROUP_BASE, k_ldap_key),
	KEY1(KW_GROUP_FILTER, k_ldap_key),
	KEY1(KW_GROUP_NAME_ATTRIBUTE, k_ldap_key),
	KEY1(KW_STARTTLS, k_ldap_key),
	KEY1(KW_TIMEOUT, k_ldap_key),
	KEY1(KW_URI, k_ldap_key),
	KEY1(KW_USER_DN, k_ldap_key),
};
const struct conf_section conf_sec_ldap = { SEC_LDAP, "an ldap block", ldap_keys, N(ldap_keys) };

/* ---- checks over the whole file ---- */

static void check_ldap(struct conf_parser *p, int use_line)
{
	const struct auth_ldap_conf *l = &p->conf->ldap;
	if (l->line == 0) {
		conf_error(p, use_line, "backend ldap needs an ldap { } block");
		return;
	}
	if (l->uri[0] == '\0')
		conf_error(p, l->line, "the ldap block needs 'uri'");
	if (l->user_dn[0] == '\0' && l->base[0] == '\0')
		conf_error(p, l->line,
			   "the ldap block needs 'user-dn' (bind as the user) or "
			   "'base' (search, then bind)");
	if (l->user_dn[0] != '\0' && l->base[0] != '\0')
		conf_error(p, l->line, "'user-dn' and 'base' exclude each other");
	if ((l->bind_dn[0] != '\0') != (l->bind_password_file[0] != '\0'))
		conf_error(p, l->line, "'bind-dn' and 'bind-password-file' go together");
	if (l->starttls && strncmp(l->uri, "ldaps://", 8) == 0)
		conf_error(p, l->line, "'starttls on' is for ldap:// URIs, not ldaps://");
	if (l->group_filter[0] != '\0' && l->group_base[0] == '\0' && l->base[0] == '\0')
		conf_error(p, l->line, "'group-filter' needs 'group-base'");
}

static void check_radius(struct conf_parser *p, int use_line)
{
	const struct auth_radius_conf *r = &p->conf->radius;
	if (r->line == 0) {
		conf_error(p, use_line, "backend radius needs a radius { } block");
		return;
	}
	if (r->n_servers == 0)
		conf_error(p, r->line, "the radius block needs 'server'");
	if (r->secret_file[0] == '\0')
		conf_error(p, r->line, "the radius block needs 'secret-file'");
}

void conf_check_auth_backends(struct conf_parser *p, bool userpass_used)
{
	struct stp_conf *c = p->conf;
	int line = p->seen[SEC_AUTH][KW_BACKEND];
	if (!line)
		line = p->seen[SEC_TOP][KW_AUTH];
	if (!userpass_used)
		return;
	if (conf_backend_used(c, USERPASS_LDAP))
		check_ldap(p, line);
	if (conf_backend_used(c, USERPASS_RADIUS))
		check_radius(p, line);
}
